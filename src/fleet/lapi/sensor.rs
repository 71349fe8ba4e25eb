//! The sensor side: each local ban becomes a LAPI alert with its decision, pushed by a thread of
//! its own so nothing of it is ever on the ban path. The follow-up thread hands each ban to an
//! `AlertQueue` (bounded: full means dropped and counted, never a wait); the pusher thread logs
//! in, pushes batches, backs off while the LAPI is down and keeps what failed to push again.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use detector::{Evidence, SourceKey};
use log::{info, warn};

use super::credentials::MachineCredentials;
use super::http::Url;
use super::time;
use super::watcher::{Error, Watcher, SCENARIO};
use super::{Backoff, Stop};
use crate::fleet::Target;
use crate::json;

/// Alerts held for the LAPI at most (about 1.5 MB at worst); past that, new ones are dropped.
pub const CAPACITY: usize = 4096;
/// Alerts in one `POST /v1/alerts`.
pub const BATCH: usize = 100;

/// One local ban, as the LAPI will be told of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanAlert {
    pub target: Target,
    pub duration_ms: u64,
    /// `tcp/22 tcp/80 udp/53`, the ports shown in the evidence.
    pub ports: String,
    pub score: u32,
    pub distinct_ports: u32,
    pub probes: u32,
    /// Wall-clock times (Unix ms) of the first counted probe and of the ban.
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// The evidence line scanban logs for the ban.
    pub summary: String,
}

impl BanAlert {
    /// From a ban as the follow-up thread has it: the key, the duration, the evidence (whose
    /// times are on the detector's clock, `detector_now_ms` now, `unix_now_ms` on the wall).
    pub fn new(
        key: &SourceKey,
        duration_ms: u64,
        e: &Evidence,
        detector_now_ms: u64,
        unix_now_ms: u64,
    ) -> Self {
        let (addr, prefix_len) = match *key {
            SourceKey::V4(a) => (IpAddr::V4(a), 32),
            SourceKey::V4Net(a, l) => (IpAddr::V4(a), l),
            SourceKey::V6(a, l) | SourceKey::V6Net(a, l) => (IpAddr::V6(a), l),
        };
        let wall = |ms: u64| unix_now_ms.saturating_sub(detector_now_ms.saturating_sub(ms));
        BanAlert {
            target: Target { addr, prefix_len },
            duration_ms,
            ports: e
                .ports()
                .iter()
                .map(|(p, n)| format!("{}/{n}", p.name()))
                .collect::<Vec<_>>()
                .join(" "),
            score: e.score,
            distinct_ports: e.distinct_ports,
            probes: e.probes,
            first_seen_ms: wall(e.first_ms),
            last_seen_ms: wall(e.last_ms),
            summary: e.to_string(),
        }
    }

    fn is_single(&self) -> bool {
        self.target.prefix_len == if self.target.addr.is_ipv4() { 32 } else { 128 }
    }

    /// The alert (models.Alert of the LAPI's API) with its one decision, as JSON text.
    pub fn to_json(&self) -> String {
        let single = self.is_single();
        let (scope, value) = if single {
            ("Ip", self.target.addr.to_string())
        } else {
            (
                "Range",
                format!("{}/{}", self.target.addr, self.target.prefix_len),
            )
        };
        // Only these two texts can hold characters JSON must escape; the rest are addresses,
        // numbers, times and constants. One template rather than a builder call per member:
        // the template is the smaller code.
        let quote = |s: &str| {
            let mut out = String::new();
            json::push_string(&mut out, s);
            out
        };
        let message = quote(&format!("scanban banned {value}: {}", self.summary));
        let ports = quote(&self.ports);
        let (start_at, stop_at) = (
            time::format(self.first_seen_ms),
            time::format(self.last_seen_ms),
        );
        // The LAPI counts a decision's duration from the alert's stop_at: the ban's time.
        format!(
            concat!(
                r#"{{"scenario": "{scenario}", "scenario_hash": "", "scenario_version": "{version}", "#,
                r#""message": {message}, "events_count": {probes}, "start_at": "{start_at}", "#,
                r#""stop_at": "{stop_at}", "capacity": 0, "leakspeed": "0", "simulated": false, "#,
                r#""remediation": true, "events": [{{"timestamp": "{stop_at}", "meta": ["#,
                r#"{{"key": "ports", "value": {ports}}}, {{"key": "score", "value": "{score}"}}, "#,
                r#"{{"key": "distinct_ports", "value": "{distinct}"}}, "#,
                r#"{{"key": "probes", "value": "{probes}"}}, "#,
                r#"{{"key": "first_seen", "value": "{start_at}"}}, "#,
                r#"{{"key": "last_seen", "value": "{stop_at}"}}]}}], "#,
                r#""source": {{"scope": "{scope}", "value": "{value}", "{kind}": "{value}"}}, "#,
                r#""decisions": [{{"type": "ban", "duration": "{duration}ms", "origin": "scanban", "#,
                r#""scenario": "{scenario}", "scope": "{scope}", "value": "{value}"}}]}}"#
            ),
            scenario = SCENARIO,
            version = env!("CARGO_PKG_VERSION"),
            message = message,
            probes = self.probes,
            start_at = start_at,
            stop_at = stop_at,
            ports = ports,
            score = self.score,
            distinct = self.distinct_ports,
            scope = scope,
            value = value,
            kind = if single { "ip" } else { "range" },
            duration = self.duration_ms.max(1),
        )
    }
}

/// The sensor's counters (`lapi_alerts_*` in the stats).
#[derive(Debug, Default)]
pub struct SensorCounters {
    /// Alerts the LAPI accepted.
    pub pushed: AtomicU64,
    /// Alerts dropped: the queue was full, or the LAPI refused them `GIVE_UP_AFTER` times.
    pub dropped: AtomicU64,
    /// Pushes (or logins) that failed; their alerts are kept and pushed again.
    pub failed: AtomicU64,
    /// Alerts waiting to be pushed.
    pub pending: AtomicU64,
}

impl SensorCounters {
    /// Fills the sensor's part of the stats.
    pub fn figures(&self, f: &mut crate::stats::LapiFigures) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        f.alerts_pushed = get(&self.pushed);
        f.alerts_dropped = get(&self.dropped);
        f.alerts_pending = get(&self.pending);
        f.push_failures = get(&self.failed);
    }
}

/// The alerts not yet accepted by the LAPI, at most `capacity` (a failed batch goes back to the
/// front, so it may exceed that by one batch). A deque under a mutex: the follow-up thread's
/// `push` holds it for one `push_back`.
struct Pending {
    alerts: Mutex<VecDeque<BanAlert>>,
    ready: Condvar,
    capacity: usize,
}

impl Pending {
    /// Up to `n` alerts from the front, waiting up to `wait` for the first.
    fn take(&self, n: usize, wait: Duration) -> Vec<BanAlert> {
        let Ok(q) = self.alerts.lock() else {
            return Vec::new();
        };
        let Ok((mut q, _)) = self.ready.wait_timeout_while(q, wait, |q| q.is_empty()) else {
            return Vec::new();
        };
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    /// A batch that failed goes back to the front, in order.
    fn put_back(&self, batch: Vec<BanAlert>) {
        if let Ok(mut q) = self.alerts.lock() {
            for a in batch.into_iter().rev() {
                q.push_front(a);
            }
        }
    }

    fn len(&self) -> usize {
        self.alerts.lock().map_or(0, |q| q.len())
    }
}

/// Where the follow-up thread hands each ban. Cloneable; never waits for the LAPI.
#[derive(Clone)]
pub struct AlertQueue {
    pending: Arc<Pending>,
    counters: Arc<SensorCounters>,
}

impl AlertQueue {
    fn with_capacity(capacity: usize, counters: Arc<SensorCounters>) -> Self {
        AlertQueue {
            pending: Arc::new(Pending {
                alerts: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
                capacity,
            }),
            counters,
        }
    }

    /// Queues one alert, or counts it dropped when the queue is full.
    pub fn push(&self, alert: BanAlert) {
        let Ok(mut q) = self.pending.alerts.lock() else {
            return;
        };
        if q.len() >= self.pending.capacity {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.push_back(alert);
        self.counters
            .pending
            .store(q.len() as u64, Ordering::Relaxed);
        drop(q);
        self.pending.ready.notify_one();
    }
}

/// What the pusher needs.
pub struct SensorConfig {
    pub url: Url,
    pub credentials: MachineCredentials,
    /// Connect/read/write timeout of one request.
    pub timeout: Duration,
}

/// The running sensor: its queue, its counters, its thread.
pub struct Sensor {
    pub queue: AlertQueue,
    pub counters: Arc<SensorCounters>,
    pub thread: JoinHandle<()>,
}

impl Sensor {
    /// Starts the pusher thread. After `stop` is set it makes one last push attempt of what is
    /// queued, then ends.
    pub fn spawn(config: SensorConfig, stop: Stop) -> std::io::Result<Sensor> {
        let counters = Arc::new(SensorCounters::default());
        let queue = AlertQueue::with_capacity(CAPACITY, Arc::clone(&counters));
        let (q, c) = (queue.clone(), Arc::clone(&counters));
        let thread = std::thread::Builder::new()
            .name("lapi-sensor".into())
            .spawn(move || pusher(config, &q, &c, &stop))?;
        Ok(Sensor {
            queue,
            counters,
            thread,
        })
    }
}

/// A batch the LAPI refused this many times in a row for its content is dropped (and counted).
const GIVE_UP_AFTER: u32 = 5;

/// Whether an error status refuses the alerts themselves, rather than saying the LAPI cannot
/// take them now (overloaded, a gateway) or does not take us (401/403: an admin fixes the
/// machine's credentials and the kept alerts go through). LAPI 1.4.6 answers a malformed alert
/// with 500 (fixtures/lapi/alerts-invalid.http), so 500 counts as a refusal too.
fn refused_for_its_content(status: u16) -> bool {
    matches!(status, 400 | 404 | 405 | 409 | 413 | 415 | 422 | 500)
}

fn pusher(config: SensorConfig, queue: &AlertQueue, counters: &SensorCounters, stop: &Stop) {
    let mut watcher = Watcher::new(config.url.clone(), &config.credentials, config.timeout);
    let mut backoff = Backoff::new();
    let mut down = false;
    // Answers in a row that refused the batch at the head of the queue for its content.
    let mut refusals = 0;
    loop {
        let stopping = stop.is_stopped();
        if !stopping && !backoff.due() {
            stop.wait(backoff.remaining());
            continue;
        }
        let wait = if stopping {
            Duration::ZERO
        } else {
            Duration::from_millis(500)
        };
        let batch = queue.pending.take(BATCH, wait);
        if batch.is_empty() {
            if stopping {
                break;
            }
            continue;
        }
        let n = batch.len();
        let body = json::array(batch.iter().map(BanAlert::to_json));
        match watcher.push(&body) {
            Ok(_) => {
                counters.pushed.fetch_add(n as u64, Ordering::Relaxed);
                refusals = 0;
                if down {
                    info!("LAPI {}: pushing alerts again", config.url);
                    down = false;
                }
                backoff.reset();
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                refusals = match e {
                    Error::Status(status, _) if refused_for_its_content(status) => refusals + 1,
                    _ => 0,
                };
                if refusals >= GIVE_UP_AFTER {
                    // The LAPI keeps refusing this batch itself: pushing it again would hold
                    // every later alert back for ever.
                    warn!(
                        "LAPI {}: {n} alert(s) refused {refusals} times ({e}); dropped",
                        config.url
                    );
                    counters.dropped.fetch_add(n as u64, Ordering::Relaxed);
                    refusals = 0;
                    backoff.failed();
                    continue;
                }
                queue.pending.put_back(batch);
                if !down {
                    warn!(
                        "LAPI {}: alert push failed ({e}); {} alert(s) kept, retrying with backoff",
                        config.url,
                        queue.pending.len()
                    );
                    down = true;
                }
                backoff.failed();
                if stopping {
                    break;
                }
            }
        }
        counters
            .pending
            .store(queue.pending.len() as u64, Ordering::Relaxed);
    }
    let left = queue.pending.len();
    if left > 0 {
        warn!("LAPI {}: {left} alert(s) not pushed at stop", config.url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::lapi::json::{parse, Value};

    fn alert(target: &str, prefix_len: u8) -> BanAlert {
        BanAlert {
            target: Target {
                addr: target.parse().unwrap(),
                prefix_len,
            },
            duration_ms: 3_600_000,
            ports: "tcp/22 tcp/80".into(),
            score: 21,
            distinct_ports: 9,
            probes: 12,
            first_seen_ms: 1_796_071_200_000,
            last_seen_ms: 1_796_071_260_000,
            summary: "score 21 from 9 ports (tcp/22,80 ...)".into(),
        }
    }

    #[test]
    fn alert_json_has_what_the_lapi_requires() {
        // The fields the LAPI's validation lists as required (fixtures/lapi/alerts-invalid.http).
        let required = [
            "capacity",
            "events",
            "events_count",
            "leakspeed",
            "message",
            "scenario",
            "scenario_hash",
            "scenario_version",
            "simulated",
            "source",
            "start_at",
            "stop_at",
        ];
        let v = parse(alert("192.0.2.66", 32).to_json().as_bytes()).unwrap();
        for k in required {
            assert!(v.get(k).is_some(), "{k} missing");
        }
        let d = &v.get("decisions").and_then(Value::items).unwrap()[0];
        assert_eq!(d.get("scope").and_then(Value::as_str), Some("Ip"));
        assert_eq!(d.get("value").and_then(Value::as_str), Some("192.0.2.66"));
        assert_eq!(d.get("duration").and_then(Value::as_str), Some("3600000ms"));
        assert_eq!(
            v.get("stop_at").and_then(Value::as_str),
            Some("2026-11-30T20:41:00Z")
        );

        let mut odd = alert("192.0.2.66", 32);
        odd.summary = "a \"quoted\" \\ line\n".into();
        let v = parse(odd.to_json().as_bytes()).unwrap();
        let message = v.get("message").and_then(Value::as_str).unwrap();
        assert!(message.ends_with(": a \"quoted\" \\ line\n"), "{message}");
        let v = parse(alert("2001:db8:5::", 64).to_json().as_bytes()).unwrap();
        let src = v.get("source").unwrap();
        assert_eq!(src.get("scope").and_then(Value::as_str), Some("Range"));
        assert_eq!(
            src.get("range").and_then(Value::as_str),
            Some("2001:db8:5::/64")
        );
        let v = parse(alert("2001:db8::7", 128).to_json().as_bytes()).unwrap();
        assert_eq!(
            v.get("source")
                .and_then(|s| s.get("scope"))
                .and_then(Value::as_str),
            Some("Ip")
        );
    }

    #[test]
    fn a_ban_becomes_an_alert_with_wall_clock_times() {
        use detector::evidence::SHOWN_PORTS;
        use detector::{Narrowed, Proto, Tier};
        let mut ports = [(Proto::Tcp, 0); SHOWN_PORTS];
        ports[0] = (Proto::Tcp, 22);
        ports[1] = (Proto::Udp, 53);
        let e = Evidence {
            score: 21,
            distinct_ports: 9,
            probes: 11,
            ports,
            shown: 2,
            stealth: 0,
            ban_ms: 3_600_000,
            offence: 1,
            first_ms: 10_000,
            last_ms: 12_500,
            narrowed: Narrowed::No,
            tier: Tier::Burst,
        };
        // The detector's clock reads 13,000 when the wall clock reads 1,796,071,260,000.
        let key = SourceKey::V6("2001:db8:5::".parse().unwrap(), 64);
        let a = BanAlert::new(&key, 3_600_000, &e, 13_000, 1_796_071_260_000);
        assert_eq!(
            a.target,
            Target {
                addr: "2001:db8:5::".parse().unwrap(),
                prefix_len: 64
            }
        );
        assert_eq!(a.ports, "tcp/22 udp/53");
        assert_eq!(
            (a.first_seen_ms, a.last_seen_ms),
            (1_796_071_257_000, 1_796_071_259_500)
        );
        assert!(!a.is_single());
        let a = BanAlert::new(
            &SourceKey::V4("192.0.2.66".parse().unwrap()),
            1,
            &e,
            13_000,
            0,
        );
        assert!(a.is_single());
        assert_eq!(
            a.first_seen_ms, 0,
            "a wall clock before the evidence saturates"
        );
    }

    #[test]
    fn only_refusals_of_the_content_give_a_batch_up() {
        let path = format!(
            "{}/fixtures/lapi/alerts-invalid.http",
            env!("CARGO_MANIFEST_DIR")
        );
        let raw = std::fs::read(path).unwrap();
        let r = crate::fleet::lapi::http::read_response(&mut raw.as_slice(), 1 << 20).unwrap();
        assert!(refused_for_its_content(r.status));
        for kept in [401, 403, 408, 429, 502, 503, 504] {
            assert!(!refused_for_its_content(kept), "{kept}");
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let counters = Arc::new(SensorCounters::default());
        let q = AlertQueue::with_capacity(2, Arc::clone(&counters));
        for _ in 0..5 {
            q.push(alert("192.0.2.66", 32));
        }
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(counters.pending.load(Ordering::Relaxed), 2);
        let batch = q.pending.take(10, Duration::ZERO);
        assert_eq!(batch.len(), 2);
        q.push(alert("192.0.2.67", 32));
        q.pending.put_back(batch);
        let again = q.pending.take(10, Duration::ZERO);
        assert_eq!(again.len(), 3);
        assert_eq!(again[2].target.addr.to_string(), "192.0.2.67");
    }
}
