//! Ban latency: from the queued packet that crossed the threshold to the kernel's ACK of the
//! element. The last `CAPACITY` samples are kept in a fixed ring, so the figures in `status`
//! describe recent bans and the memory never grows.

use std::time::Duration;

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
}
