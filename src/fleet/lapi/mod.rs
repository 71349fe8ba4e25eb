//! CrowdSec's Local API (LAPI), spoken by scanban: as a machine (`sensor`: each local ban pushed
//! as an alert with its decision) and as a bouncer (`bouncer`: the decision stream polled and
//! handed to a `DecisionSink`). Its own small HTTP/1.1 client (`http`) and JSON reader (`json`);
//! the JSON writer is `crate::json`. Nothing here touches the kernel.
//!
//! Entry points, for the daemon:
//! - `Sensor::spawn(SensorConfig, Stop) -> Sensor`: the pusher thread; give each ban written
//!   (not a dry run's) to `sensor.queue.push(BanAlert::new(&ban.key, ban.duration_ms, &evidence,
//!   detector_now_ms, unix_ms_now()))` (never blocks; a full queue is counted).
//! - `Bouncer::spawn(BouncerConfig, Box<dyn DecisionSink>, Stop) -> Bouncer`: the poll loop.
//! - `sensor_config(&Settings)` / `bouncer_config(&Settings)`: the configs from the settings
//!   (reading and checking the secret files), or None when the setting is not given.
//!
//! `Stop::stop()` ends both threads (join `.thread`): the bouncer within one request timeout,
//! the sensor after one last push of what it holds. `sensor.counters.figures(&mut f.lapi)` and
//! `bouncer.counters.figures(&mut f.lapi)` fill the stats.

mod bouncer;
mod credentials;
mod decisions;
mod http;
mod json;
mod sensor;
mod time;
#[cfg(feature = "tls")]
mod tls;
mod watcher;

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

// The daemon's glue uses these (see the entry points above); the tests use them all.
#[allow(unused_imports)]
pub use bouncer::{Bouncer, BouncerConfig, BouncerCounters};
#[allow(unused_imports)]
pub use credentials::{load_bouncer_key, MachineCredentials, Secret};
pub use http::Url;
#[allow(unused_imports)]
pub use sensor::{AlertQueue, BanAlert, Sensor, SensorConfig, SensorCounters};
#[allow(unused_imports)]
pub use time::unix_ms_now;

use crate::settings::Settings;

/// Timeout of one connect, read or write to the LAPI.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A stop flag the LAPI threads wait on: `stop()` wakes them at once.
#[derive(Clone, Default)]
pub struct Stop(Arc<(Mutex<bool>, Condvar)>);

impl Stop {
    pub fn new() -> Self {
        Stop::default()
    }

    pub fn stop(&self) {
        let (flag, cv) = &*self.0;
        if let Ok(mut f) = flag.lock() {
            *f = true;
        }
        cv.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        self.0 .0.lock().map_or(true, |f| *f)
    }

    /// Sleeps up to `d`; true if stopped (then at once).
    pub fn wait(&self, d: Duration) -> bool {
        let (flag, cv) = &*self.0;
        let Ok(guard) = flag.lock() else {
            return true;
        };
        match cv.wait_timeout_while(guard, d, |stopped| !*stopped) {
            Ok((g, _)) => *g,
            Err(_) => true,
        }
    }
}

/// Exponential backoff after failures: 1 s, doubling, at most 60 s.
pub(crate) struct Backoff {
    delay: Duration,
    next: Instant,
}

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

impl Backoff {
    fn new() -> Self {
        Backoff {
            delay: Duration::ZERO,
            next: Instant::now(),
        }
    }

    fn failed(&mut self) {
        self.delay = (self.delay * 2).clamp(BACKOFF_FIRST, BACKOFF_MAX);
        self.next = Instant::now() + self.delay;
    }

    fn reset(&mut self) {
        self.delay = Duration::ZERO;
        self.next = Instant::now();
    }

    fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    fn remaining(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }
}

/// A LAPI setting that cannot be used, naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

/// The URL to use: `lapi-url`, else the one the credentials file names.
fn url_of(settings: &Settings, from_file: Option<&str>) -> Result<Url, ConfigError> {
    let text = settings
        .lapi_url
        .as_deref()
        .or(from_file)
        .ok_or_else(|| ConfigError {
            setting: "lapi-url",
            problem: "not set (and the credentials file names no url)".into(),
        })?;
    #[allow(unused_mut)] // without the tls feature an https URL never parses
    let mut url = Url::parse(text).map_err(|e| ConfigError {
        setting: "lapi-url",
        problem: e.to_string(),
    })?;
    #[cfg(feature = "tls")]
    if url.https {
        let ca = settings.lapi_ca.as_deref().ok_or_else(|| ConfigError {
            setting: "lapi-ca",
            problem: format!("{url} is https: name the CA that signed its certificate"),
        })?;
        let tls = tls::Tls::with_ca(ca).map_err(|problem| ConfigError {
            setting: "lapi-ca",
            problem,
        })?;
        url.tls = Some(tls);
    }
    Ok(url)
}

/// The sensor's configuration when `lapi-credentials` is set.
pub fn sensor_config(settings: &Settings) -> Result<Option<SensorConfig>, ConfigError> {
    let Some(path) = &settings.lapi_credentials else {
        return Ok(None);
    };
    let credentials = MachineCredentials::load(path).map_err(|e| ConfigError {
        setting: "lapi-credentials",
        problem: e.to_string(),
    })?;
    let url = url_of(settings, credentials.url.as_deref())?;
    Ok(Some(SensorConfig {
        url,
        credentials,
        timeout: REQUEST_TIMEOUT,
    }))
}

/// The bouncer's configuration when `lapi-bouncer-key` is set.
pub fn bouncer_config(settings: &Settings) -> Result<Option<BouncerConfig>, ConfigError> {
    let Some(path) = &settings.lapi_bouncer_key else {
        return Ok(None);
    };
    let api_key = load_bouncer_key(path).map_err(|e| ConfigError {
        setting: "lapi-bouncer-key",
        problem: e.to_string(),
    })?;
    // A bouncer-only host has no machine credentials: the URL is `lapi-url`, or the machine
    // file's when both are set.
    let from_file = match &settings.lapi_credentials {
        Some(p) => MachineCredentials::load(p).ok().and_then(|c| c.url),
        None => None,
    };
    let url = url_of(settings, from_file.as_deref())?;
    Ok(Some(BouncerConfig {
        url,
        api_key,
        poll: settings.lapi_poll,
        timeout: REQUEST_TIMEOUT,
    }))
}

#[cfg(test)]
mod lapi_tests;

#[cfg(test)]
mod tests {
    use super::credentials::TempSecret;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn configs_from_settings() {
        let mut s = Settings::default();
        assert!(sensor_config(&s).unwrap().is_none());
        assert!(bouncer_config(&s).unwrap().is_none());

        let machine = TempSecret::new(
            "m.yaml",
            "url: http://198.51.100.10:8080\nlogin: a\npassword: b\n",
            0o600,
        );
        let key = TempSecret::new("b.key", "0123abcd\n", 0o600);
        s.lapi_credentials = Some(machine.0.clone());
        s.lapi_bouncer_key = Some(key.0.clone());
        let c = sensor_config(&s).unwrap().unwrap();
        assert_eq!(c.url.to_string(), "http://198.51.100.10:8080");
        let b = bouncer_config(&s).unwrap().unwrap();
        assert_eq!(
            (b.url.to_string(), b.poll),
            (c.url.to_string(), Duration::from_secs(1))
        );

        // lapi-url wins over the file's url.
        s.apply("lapi-url", Some("http://192.0.2.1:8081")).unwrap();
        assert_eq!(sensor_config(&s).unwrap().unwrap().url.port, 8081);

        // A bouncer alone needs lapi-url.
        let only = Settings {
            lapi_bouncer_key: Some(key.0.clone()),
            ..Settings::default()
        };
        assert_eq!(bouncer_config(&only).err().unwrap().setting, "lapi-url");

        // A world-readable secret is refused, naming the setting and not the secret.
        std::fs::set_permissions(&machine.0, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = sensor_config(&s).err().unwrap();
        assert_eq!(e.setting, "lapi-credentials");
        assert!(!e.to_string().contains("password: b"), "{e}");
        let https = s.apply("lapi-url", Some("https://192.0.2.1"));
        assert_eq!(https.is_ok(), cfg!(feature = "tls"), "{https:?}");
        assert!(s.apply("lapi-url", Some("http://lapi.example")).is_err());
    }
}
