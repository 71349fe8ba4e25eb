//! Ban latency, measured two ways, to the kernel's ACK of the ban element (after which the drop
//! rule matches):
//!
//! - *from arrival*: from the kernel's receive timestamp of the probe that crossed the threshold
//!   (`NFQA_TIMESTAMP`, wall clock, microseconds). This includes the time the probe waited in the
//!   kernel's queue and in the socket buffer, and the queue thread's wake-up. Queued packets carry
//!   the timestamp only while the kernel stamps received packets, which the daemon asks for
//!   (`enable_arrival_stamps`); without one, the ban is not timed this way and says so.
//! - *from receive*: from the return of the `recvmmsg` that read the probe's batch (monotonic
//!   clock): what scanban itself adds.
//!
//! The last `CAPACITY` samples of each are kept in fixed rings, so the figures in `status`
//! describe recent bans and the memory never grows. Nothing here runs per packet: a packet only
//! hands its already-parsed timestamp along (`Probe`), and the clocks are read once per ban
//! transaction, at the ACK.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::warn;
use nfnl::queue::QueueSocket;

use crate::stats::Counter;

/// Samples kept; a little over the 1,000 bans the benchmark measures.
pub const CAPACITY: usize = 1024;

pub struct Latencies {
    /// Microseconds, saturated at u32::MAX (71 minutes: far past any real latency).
    ring: Box<[u32; CAPACITY]>,
    next: usize,
    len: usize,
}

/// Percentiles over the samples in the ring, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub samples: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            ring: Box::new([0; CAPACITY]),
            next: 0,
            len: 0,
        }
    }
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        self.ring[self.next] = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        self.next = (self.next + 1) % CAPACITY;
        self.len = (self.len + 1).min(CAPACITY);
    }

    /// Nearest-rank percentiles (the p99 of 1,000 samples is the 990th smallest).
    pub fn summary(&self) -> Summary {
        if self.len == 0 {
            return Summary::default();
        }
        let mut v: Vec<u32> = self.ring[..self.len].to_vec();
        v.sort_unstable();
        let rank = |p: usize| u64::from(v[(p * v.len()).div_ceil(100).max(1) - 1]);
        Summary {
            samples: self.len as u64,
            p50_us: rank(50),
            p99_us: rank(99),
            max_us: u64::from(v[v.len() - 1]),
        }
    }
}

/// Asks the kernel to stamp received packets for as long as `q` is open, so that queued probes
/// carry their arrival time. Costs one clock read per packet the host receives (see
/// docs/BENCHMARKS.md §7); hosts where a program holds a socket with `SO_TIMESTAMP*` (ntpd, for
/// one) already pay it. A failure only costs the arrival figures.
pub fn enable_arrival_stamps(q: &QueueSocket) {
    if let Err(e) = q.socket().enable_receive_timestamps() {
        warn!(
            "queue {}: SO_TIMESTAMPNS: {e}; ban latencies from the probe's arrival unavailable",
            q.config().queue
        );
    }
}

/// The probe that decided a ban: when scanban received its batch, and the kernel's receive
/// timestamp (seconds, microseconds since the epoch), when the packet had one.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub received: Instant,
    pub stamp: Option<(u64, u64)>,
}

/// The moment the kernel acknowledged a ban transaction, on both clocks.
#[derive(Debug, Clone, Copy)]
pub struct Acked {
    pub at: Instant,
    pub wall: SystemTime,
}

impl Acked {
    pub fn now() -> Self {
        Acked {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// How long before `wall` the kernel stamped a packet: `None` without a stamp, for a stamp that
/// is not a time (microseconds past a second), or for one after `wall` (the wall clock was
/// stepped back meanwhile: no figure rather than a made-up one). Both are wall-clock readings,
/// so a clock step between the two skews this one figure; the stamp is truncated to the
/// microsecond, which can add up to 1 µs.
pub fn since_stamp(wall: SystemTime, stamp: Option<(u64, u64)>) -> Option<Duration> {
    let (sec, usec) = stamp?;
    let nanos = u32::try_from(usec).ok().filter(|u| *u < 1_000_000)? * 1_000;
    let at = UNIX_EPOCH.checked_add(Duration::new(sec, nanos))?;
    wall.duration_since(at).ok()
}

/// Both latencies of recent bans.
#[derive(Default)]
pub struct BanLatencies {
    from_arrival: Latencies,
    from_receive: Latencies,
    /// Bans timed from receive but not from arrival: their probe had no kernel timestamp (or
    /// one past the ACK), since the start.
    arrival_untimed: u64,
}

impl BanLatencies {
    /// Records the bans of one transaction, all acknowledged at `acked`.
    pub fn record(&mut self, acked: Acked, probes: &[Probe]) {
        for p in probes {
            self.from_receive
                .record(acked.at.saturating_duration_since(p.received));
            match since_stamp(acked.wall, p.stamp) {
                Some(d) => self.from_arrival.record(d),
                None => self.arrival_untimed += 1,
            }
        }
    }

    /// The counters of `scanban status`. A percentile without samples is unavailable, never 0.
    pub fn counters(&self) -> Vec<Counter> {
        let arrival = self.from_arrival.summary();
        let receive = self.from_receive.summary();
        let percentile = |name, help, s: &Summary, v: u64| Counter {
            name,
            help,
            value: (s.samples > 0).then_some(v),
            monotonic: false,
        };
        let samples = |name, help, v: u64| Counter {
            name,
            help,
            value: Some(v),
            monotonic: false,
        };
        vec![
            samples(
                "ban_latency_from_arrival_samples",
                "recent bans (at most 1024) timed from the probe's arrival: the kernel's receive \
                 timestamp of the probe that crossed the threshold, to the kernel's ACK of the ban",
                arrival.samples,
            ),
            percentile(
                "ban_latency_from_arrival_p50_us",
                "median ban latency from the probe's arrival (kernel receive timestamp) to the \
                 kernel's ACK, microseconds; unavailable without timed bans",
                &arrival,
                arrival.p50_us,
            ),
            percentile(
                "ban_latency_from_arrival_p99_us",
                "99th percentile of the ban latency from the probe's arrival, microseconds",
                &arrival,
                arrival.p99_us,
            ),
            percentile(
                "ban_latency_from_arrival_max_us",
                "slowest recent ban latency from the probe's arrival, microseconds",
                &arrival,
                arrival.max_us,
            ),
            Counter {
                name: "ban_latency_from_arrival_untimed",
                help: "bans whose probe carried no kernel receive timestamp (or one later than \
                       the ACK: the wall clock stepped back), so not timed from arrival",
                value: Some(self.arrival_untimed),
                monotonic: true,
            },
            samples(
                "ban_latency_from_receive_samples",
                "recent bans (at most 1024) timed from the receive: the return of the recvmmsg \
                 that read the probe's batch, to the kernel's ACK of the ban",
                receive.samples,
            ),
            percentile(
                "ban_latency_from_receive_p50_us",
                "median ban latency from the receive (recvmmsg return) to the kernel's ACK, \
                 microseconds; unavailable without timed bans",
                &receive,
                receive.p50_us,
            ),
            percentile(
                "ban_latency_from_receive_p99_us",
                "99th percentile of the ban latency from the receive, microseconds",
                &receive,
                receive.p99_us,
            ),
            percentile(
                "ban_latency_from_receive_max_us",
                "slowest recent ban latency from the receive, microseconds",
                &receive,
                receive.max_us,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_zero() {
        assert_eq!(Latencies::default().summary(), Summary::default());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut l = Latencies::default();
        // 1..=1000 µs in a scrambled order.
        for i in 0..1000u64 {
            l.record(Duration::from_micros((i * 7919) % 1000 + 1));
        }
        let s = l.summary();
        assert_eq!(s.samples, 1000);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.max_us, 1000);
    }

    #[test]
    fn ring_keeps_the_latest() {
        let mut l = Latencies::default();
        for _ in 0..CAPACITY {
            l.record(Duration::from_secs(1));
        }
        for _ in 0..CAPACITY {
            l.record(Duration::from_micros(80));
        }
        let s = l.summary();
        assert_eq!(s.samples, CAPACITY as u64);
        assert_eq!((s.p50_us, s.p99_us, s.max_us), (80, 80, 80));
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let mut l = Latencies::default();
        l.record(Duration::from_secs(100_000));
        assert_eq!(l.summary().max_us, u64::from(u32::MAX));
    }

    fn wall(sec: u64, micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(sec) + Duration::from_micros(micros)
    }

    #[test]
    fn age_of_a_stamp() {
        let now = wall(1_800_000_000, 500_250);
        assert_eq!(
            since_stamp(now, Some((1_800_000_000, 500_000))),
            Some(Duration::from_micros(250))
        );
        // Across a second boundary.
        assert_eq!(
            since_stamp(now, Some((1_799_999_999, 999_990))),
            Some(Duration::from_micros(500_260))
        );
        assert_eq!(
            since_stamp(now, Some((1_800_000_000, 500_250))),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn no_figure_without_a_usable_stamp() {
        let now = wall(1_800_000_000, 0);
        assert_eq!(since_stamp(now, None), None);
        // Later than now: the wall clock went back.
        assert_eq!(since_stamp(now, Some((1_800_000_000, 1))), None);
        // Not a time: microseconds past the second, or beyond SystemTime's range.
        assert_eq!(since_stamp(now, Some((1_799_999_999, 1_000_000))), None);
        assert_eq!(since_stamp(now, Some((1, u64::MAX))), None);
        assert_eq!(since_stamp(now, Some((u64::MAX, 0))), None);
    }

    fn value(counters: &[Counter], name: &str) -> Option<u64> {
        counters
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name}"))
            .value
    }

    #[test]
    fn a_stamped_probe_is_timed_from_arrival_and_from_receive() {
        let received = Instant::now();
        let acked = Acked {
            at: received + Duration::from_micros(20),
            wall: wall(1_800_000_000, 1_000),
        };
        let mut l = BanLatencies::default();
        l.record(
            acked,
            &[Probe {
                received,
                // 300 µs before the ACK: 280 µs in the kernel's queue, then 20 µs of ours.
                stamp: Some((1_800_000_000, 700)),
            }],
        );
        let c = l.counters();
        assert_eq!(value(&c, "ban_latency_from_arrival_samples"), Some(1));
        assert_eq!(value(&c, "ban_latency_from_arrival_p50_us"), Some(300));
        assert_eq!(value(&c, "ban_latency_from_arrival_max_us"), Some(300));
        assert_eq!(value(&c, "ban_latency_from_arrival_untimed"), Some(0));
        assert_eq!(value(&c, "ban_latency_from_receive_samples"), Some(1));
        assert_eq!(value(&c, "ban_latency_from_receive_p50_us"), Some(20));
        assert_eq!(value(&c, "ban_latency_from_receive_p99_us"), Some(20));
    }

    #[test]
    fn without_stamps_the_arrival_figures_are_unavailable_not_zero() {
        let received = Instant::now();
        let acked = Acked {
            at: received + Duration::from_micros(20),
            wall: wall(1_800_000_000, 0),
        };
        let mut l = BanLatencies::default();
        let c = l.counters();
        assert_eq!(value(&c, "ban_latency_from_receive_samples"), Some(0));
        assert_eq!(value(&c, "ban_latency_from_receive_p50_us"), None);
        l.record(
            acked,
            &[
                Probe {
                    received,
                    stamp: None,
                },
                Probe {
                    received,
                    stamp: Some((1_800_000_001, 0)),
                },
            ],
        );
        let c = l.counters();
        assert_eq!(value(&c, "ban_latency_from_receive_samples"), Some(2));
        assert_eq!(value(&c, "ban_latency_from_receive_p50_us"), Some(20));
        assert_eq!(value(&c, "ban_latency_from_arrival_samples"), Some(0));
        assert_eq!(value(&c, "ban_latency_from_arrival_untimed"), Some(2));
        for p in ["p50", "p99", "max"] {
            let name = format!("ban_latency_from_arrival_{p}_us");
            assert_eq!(value(&c, &name), None, "{name}");
        }
    }
}
