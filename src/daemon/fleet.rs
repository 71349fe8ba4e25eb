//! The fleet in the daemon: the LAPI sensor (each local ban pushed to CrowdSec's Local API as
//! an alert, from the follow-up thread, never from the ban's path) and the LAPI bouncer (the
//! decision stream applied to the remote-ban sets by `fleet::remote::RemoteBans`). Each runs on
//! a thread of its own when its setting is given; neither is in any packet's path.

use std::sync::Arc;

use log::info;

use crate::fleet::lapi::{
    self, AlertQueue, Bouncer, BouncerConfig, BouncerCounters, Sensor, SensorConfig,
    SensorCounters, Stop,
};
use crate::fleet::remote::AllowlistUpdates;
use crate::settings::Settings;
use crate::stats::LapiFigures;

use super::Error;

/// The LAPI settings read and checked, secrets included: done before privileges are dropped,
/// since the credential files are readable by root alone.
pub struct FleetConfig {
    sensor: Option<SensorConfig>,
    bouncer: Option<BouncerConfig>,
}

pub fn config(settings: &Settings) -> Result<FleetConfig, Error> {
    Ok(FleetConfig {
        sensor: lapi::sensor_config(settings).map_err(Error::Fleet)?,
        bouncer: lapi::bouncer_config(settings).map_err(Error::Fleet)?,
    })
}

/// What the other threads see of the fleet: where bans go, and the counters.
#[derive(Clone, Default)]
pub struct FleetHandles {
    pub alerts: Option<AlertQueue>,
    sensor: Option<Arc<SensorCounters>>,
    bouncer: Option<Arc<BouncerCounters>>,
    allow_updates: Option<AllowlistUpdates>,
}

impl FleetHandles {
    /// Hands the bouncer's sink the allowlist read again: remote decisions it now protects are
    /// lifted at the next poll.
    pub fn allowlist(&self, allow: &detector::Allowlist) {
        if let Some(u) = &self.allow_updates {
            u.send(allow.clone());
        }
    }

    pub fn figures(&self) -> LapiFigures {
        let mut f = LapiFigures::default();
        if let Some(c) = &self.sensor {
            c.figures(&mut f);
        }
        if let Some(c) = &self.bouncer {
            c.figures(&mut f);
        }
        f
    }
}

/// The running fleet threads.
pub struct Fleet {
    stop: Stop,
    sensor: Option<Sensor>,
    bouncer: Option<Bouncer>,
    allow_updates: Option<AllowlistUpdates>,
}

impl Fleet {
    /// Starts the threads the settings ask for. A dry run pushes nothing and applies nothing:
    /// its bans are not real, and it writes to no set.
    pub fn start(
        config: FleetConfig,
        settings: &Settings,
        allow: &detector::Allowlist,
        features: &nft::probe::Features,
    ) -> Result<Fleet, Error> {
        let stop = Stop::new();
        let mut fleet = Fleet {
            stop,
            sensor: None,
            bouncer: None,
            allow_updates: None,
        };
        if settings.dry_run && (config.sensor.is_some() || config.bouncer.is_some()) {
            info!("dry run: no ban is pushed to the LAPI and no LAPI decision is applied");
            return Ok(fleet);
        }
        if let Some(c) = config.sensor {
            let url = c.url.to_string();
            fleet.sensor = Some(Sensor::spawn(c, fleet.stop.clone()).map_err(Error::Thread)?);
            info!("LAPI {url}: each ban is pushed as an alert (scenario scanban/port-scan)");
        }
        if let Some(c) = config.bouncer {
            let url = c.url.to_string();
            let every = detector::evidence::human_ms(c.poll.as_millis() as u64);
            let (sink, updates) = super::remote_sink(allow, features, settings.lapi_max_decisions)?;
            fleet.allow_updates = Some(updates);
            fleet.bouncer =
                Some(Bouncer::spawn(c, sink, fleet.stop.clone()).map_err(Error::Thread)?);
            info!("LAPI {url}: its ban decisions are applied to the remote-ban sets, polled every {every}");
        }
        Ok(fleet)
    }

    pub fn handles(&self) -> FleetHandles {
        FleetHandles {
            alerts: self.sensor.as_ref().map(|s| s.queue.clone()),
            sensor: self.sensor.as_ref().map(|s| Arc::clone(&s.counters)),
            bouncer: self.bouncer.as_ref().map(|b| Arc::clone(&b.counters)),
            allow_updates: self.allow_updates.clone(),
        }
    }

    /// Ends both threads: the sensor makes one last push of what is queued first.
    pub fn stop(self) {
        self.stop.stop();
        if let Some(b) = self.bouncer {
            let _ = b.thread.join();
        }
        if let Some(s) = self.sensor {
            let _ = s.thread.join();
        }
    }
}
