//! `Every`: the one timer of the daemon's periodic work (allowlist refresh, session reads,
//! reconcile, state saves, throttled log lines).

use std::time::{Duration, Instant};

/// Something done at most once per `period`.
#[derive(Debug, Clone, Copy)]
pub struct Every {
    period: Duration,
    last: Option<Instant>,
}

impl Every {
    /// Due at once, then once per `period`.
    pub fn now_due(period: Duration) -> Self {
        Every { period, last: None }
    }

    /// First due one `period` after `now`.
    pub fn starting_at(period: Duration, now: Instant) -> Self {
        Every {
            period,
            last: Some(now),
        }
    }

    /// Whether a period has passed since the last time (or it never ran); does not restart it.
    pub fn is_due(&self, now: Instant) -> bool {
        self.last
            .map_or(true, |l| now.saturating_duration_since(l) >= self.period)
    }

    /// Starts the period again from `now`.
    pub fn restart(&mut self, now: Instant) {
        self.last = Some(now);
    }

    /// `is_due`, and if so restarts the period: `if t.due(now) { work }`.
    pub fn due(&mut self, now: Instant) -> bool {
        let due = self.is_due(now);
        if due {
            self.restart(now);
        }
        due
    }

    pub fn set_period(&mut self, period: Duration) {
        self.period = period;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_once_per_period() {
        let start = Instant::now();
        let mut t = Every::now_due(Duration::from_secs(60));
        assert!(t.due(start));
        assert!(!t.due(start + Duration::from_secs(59)));
        assert!(t.due(start + Duration::from_secs(61)));
        assert!(!t.is_due(start + Duration::from_secs(62)));
    }

    #[test]
    fn a_timer_from_now_waits_a_period_and_may_change_its_period() {
        let start = Instant::now();
        let mut t = Every::starting_at(Duration::from_secs(2), start);
        assert!(!t.due(start + Duration::from_secs(1)));
        t.set_period(Duration::from_secs(1));
        assert!(t.is_due(start + Duration::from_secs(1)));
        assert!(t.due(start + Duration::from_secs(1)));
        t.restart(start + Duration::from_secs(5));
        assert!(!t.is_due(start + Duration::from_secs(5)));
    }
}
