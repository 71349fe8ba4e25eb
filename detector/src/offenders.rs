//! Repeat offenders: a source banned again within the memory horizon gets the previous ban
//! times a factor, up to a cap. Bounded: beyond its capacity the offender seen longest ago is
//! forgotten (it would have been the first to age out anyway).

use std::collections::HashMap;

use crate::source::SourceKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offence {
    /// Bans within the memory horizon, this one included.
    pub count: u32,
    pub last_ban_ms: u64,
    pub last_duration_ms: u64,
}

pub struct Offenders {
    map: HashMap<SourceKey, Offence>,
    capacity: usize,
    memory_ms: u64,
}

impl Offenders {
    pub fn new(capacity: usize, memory_ms: u64) -> Self {
        let capacity = capacity.max(1);
        Offenders {
            map: HashMap::with_capacity(capacity),
            capacity,
            memory_ms,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Records a ban of `key` at `now_ms` and returns its offence number and duration, before
    /// jitter: `base_ms` for a first offence, else the previous duration times `factor`, at most
    /// `max_ms`.
    pub fn record(
        &mut self,
        key: SourceKey,
        now_ms: u64,
        base_ms: u64,
        factor: u32,
        max_ms: u64,
    ) -> Offence {
        let previous = self
            .map
            .get(&key)
            .copied()
            .filter(|o| now_ms.saturating_sub(o.last_ban_ms) <= self.memory_ms);
        let o = match previous {
            Some(p) => Offence {
                count: p.count.saturating_add(1),
                last_ban_ms: now_ms,
                last_duration_ms: p
                    .last_duration_ms
                    .saturating_mul(u64::from(factor))
                    .min(max_ms),
            },
            None => Offence {
                count: 1,
                last_ban_ms: now_ms,
                last_duration_ms: base_ms.min(max_ms),
            },
        };
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.expire(now_ms);
            if self.map.len() >= self.capacity {
                // Rare (a ban rate limit keeps offenders few): O(n) to find the oldest. Ties
                // (bans of one batch) go by key, not by the map's random order: the same
                // probes forget the same offender, in a replay as in the daemon.
                if let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(k, o)| (o.last_ban_ms, **k))
                    .map(|(k, _)| *k)
                {
                    self.map.remove(&oldest);
                }
            }
        }
        self.map.insert(key, o);
        o
    }

    pub fn set_memory(&mut self, memory_ms: u64) {
        self.memory_ms = memory_ms;
    }

    /// Records the duration actually applied (after jitter).
    pub fn set_duration(&mut self, key: &SourceKey, duration_ms: u64) {
        if let Some(o) = self.map.get_mut(key) {
            o.last_duration_ms = duration_ms;
        }
    }

    /// Ends the current ban early; the offence count stays for escalation.
    pub fn lift(&mut self, key: &SourceKey) {
        if let Some(o) = self.map.get_mut(key) {
            o.last_duration_ms = 0;
        }
    }

    /// Forgets offences older than the memory horizon.
    pub fn expire(&mut self, now_ms: u64) {
        let memory = self.memory_ms;
        self.map
            .retain(|_, o| now_ms.saturating_sub(o.last_ban_ms) <= memory);
    }

    pub fn get(&self, key: &SourceKey) -> Option<&Offence> {
        self.map.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const H: u64 = 3_600_000;

    #[test]
    fn escalates_caps_and_forgets() {
        let k = SourceKey::V4(Ipv4Addr::new(192, 0, 2, 9));
        let mut o = Offenders::new(10, 24 * H);
        let d: Vec<u64> = (0..6)
            .map(|i| o.record(k, i * H, H, 2, 7 * 24 * H).last_duration_ms)
            .collect();
        assert_eq!(d, vec![H, 2 * H, 4 * H, 8 * H, 16 * H, 32 * H]);
        let capped = (6..20)
            .map(|i| o.record(k, i * H, H, 2, 7 * 24 * H))
            .last()
            .unwrap();
        assert_eq!(capped.last_duration_ms, 7 * 24 * H);
        assert_eq!(capped.count, 20);
        // Past the memory horizon it is a first offence again.
        let fresh = o.record(k, 100 * H, H, 2, 7 * 24 * H);
        assert_eq!((fresh.count, fresh.last_duration_ms), (1, H));
    }

    #[test]
    fn bounded() {
        let mut o = Offenders::new(4, 24 * H);
        for i in 0..100u32 {
            o.record(SourceKey::V4(Ipv4Addr::from(i)), u64::from(i), H, 2, 10 * H);
        }
        assert_eq!(o.len(), 4);
        assert!(o.get(&SourceKey::V4(Ipv4Addr::from(99))).is_some());
    }
}
