//! A token bucket for new bans: a spoofed flood of "scanners" must not become a machine that
//! bans the internet, fills the kernel set, or floods the log. One bucket is shared by every
//! detector shard of a daemon ([`SharedLimiter`]), so the configured rate is the daemon's.

use std::sync::{Arc, Mutex};

/// One ban budget for several detectors. Taken only when a source crosses the threshold, so
/// the lock is far off the per-packet path.
pub type SharedLimiter = Arc<Mutex<RateLimiter>>;

#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_second: u32,
    burst: u32,
    /// Tokens in thousandths, so sub-second refills are exact in integers.
    milli_tokens: u64,
    updated_ms: u64,
}

impl RateLimiter {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let burst = burst.max(1);
        RateLimiter {
            per_second,
            burst,
            milli_tokens: u64::from(burst) * 1000,
            updated_ms: 0,
        }
    }

    /// A new rate and burst, keeping the tokens there are (up to the new burst).
    pub fn reconfigure(&mut self, per_second: u32, burst: u32) {
        self.per_second = per_second;
        self.burst = burst.max(1);
        self.milli_tokens = self.milli_tokens.min(u64::from(self.burst) * 1000);
    }

    pub fn rate(&self) -> (u32, u32) {
        (self.per_second, self.burst)
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.updated_ms);
        self.updated_ms = self.updated_ms.max(now_ms);
        let cap = u64::from(self.burst) * 1000;
        self.milli_tokens = (self.milli_tokens + elapsed * u64::from(self.per_second)).min(cap);
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut r = RateLimiter::new(20, 5);
        let issued = (0..100).filter(|_| r.try_take(1000)).count();
        assert_eq!(issued, 5, "the burst");
        assert!(
            !r.try_take(1049),
            "49 ms refills less than one token at 20/s"
        );
        assert!(r.try_take(1050), "50 ms refills one");
        // Over a long quiet time the bucket fills only to the burst.
        let later = (0..100).filter(|_| r.try_take(100_000)).count();
        assert_eq!(later, 5);
    }
}
