//! `Shards`: the detectors, one per shard of the source space, each behind its own lock so
//! queue threads rarely wait on each other. Every key of one source (a narrowed /128 and its
//! prefix alike) belongs to one shard, whichever queue carried its probes; so does every source
//! of one `prefix-v4`/`prefix-v6` prefix, which the distributed-scan tier counts together.

use std::sync::Mutex;

use detector::{Allowlist, Detector, SourceKey};

pub struct Shards {
    detectors: Vec<Mutex<Detector>>,
    ipv6_prefix: u8,
    /// The distributed-scan tier's prefix lengths: a shard owns whole prefixes.
    prefix_v4: u8,
    prefix_v6: u8,
}

impl Shards {
    /// Enough shards that queue threads rarely wait on the same lock.
    pub const COUNT: usize = 8;

    /// `COUNT` detectors with `config` (made for `COUNT` shards) and `allow`, drawing bans
    /// from one shared rate limiter; `seed` is their random seed (each shard its own).
    pub fn new(config: &detector::Config, seed: u64, allow: &Allowlist) -> Self {
        let first = Detector::new(config.clone(), seed);
        let limiter = first.limiter();
        let detectors = std::iter::once(first)
            .chain(
                (1..Self::COUNT)
                    .map(|i| Detector::new(config.clone(), seed.wrapping_add(i as u64))),
            )
            .map(|mut d| {
                d.set_allowlist(allow.clone());
                d.share_limiter(limiter.clone());
                Mutex::new(d)
            })
            .collect();
        Shards {
            detectors,
            ipv6_prefix: config.ipv6_prefix,
            prefix_v4: config.prefix_v4,
            prefix_v6: config.prefix_v6,
        }
    }

    /// The detector that owns `key`.
    pub fn owner(&self, key: &SourceKey) -> &Mutex<Detector> {
        &self.detectors[self.index_of(key)]
    }

    /// Which detector (`at`) owns `key`.
    pub fn index_of(&self, key: &SourceKey) -> usize {
        key.aggregate_key(self.prefix_v4, self.prefix_v6)
            .shard(Self::COUNT)
    }

    /// Detector `i` (`index_of`), `i` below `COUNT`.
    pub fn at(&self, i: usize) -> &Mutex<Detector> {
        &self.detectors[i]
    }

    pub fn ipv6_prefix(&self) -> u8 {
        self.ipv6_prefix
    }

    /// The detector stops treating `key` as banned and counts it afresh.
    pub fn forget(&self, key: &SourceKey) {
        if let Ok(mut d) = self.owner(key).lock() {
            d.forget(key);
        }
    }

    /// Runs `f` on every detector, one lock at a time.
    pub fn each(&self, mut f: impl FnMut(&mut Detector)) {
        for d in &self.detectors {
            if let Ok(mut d) = d.lock() {
                f(&mut d);
            }
        }
    }

    /// Every detector's counters, summed.
    pub fn counters(&self) -> detector::Counters {
        let mut sum = detector::Counters::default();
        self.each(|d| sum += d.counters());
        sum
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use super::*;

    #[test]
    fn every_key_of_one_source_has_one_owner() {
        let config = detector::Config {
            ipv6_prefix: 64,
            ..detector::Config::default()
        };
        let shards = Shards::new(&config, 1, &Allowlist::default());
        let addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 0x99));
        let narrowed = SourceKey::new(addr, 128);
        let prefix = SourceKey::new(addr, 64);
        assert_ne!(narrowed, prefix);
        assert!(std::ptr::eq(shards.owner(&narrowed), shards.owner(&prefix)));
        // The shards are spread: 64 sources do not all land in one.
        let owners: std::collections::HashSet<*const Mutex<Detector>> = (0..64u16)
            .map(|i| {
                let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 1));
                shards.owner(&SourceKey::new(a, 64)) as *const _
            })
            .collect();
        assert!(owners.len() > 1);
        // Every source of one /24 (and its prefix ban) has one owner.
        let v4 = |i: u8| SourceKey::V4(std::net::Ipv4Addr::new(203, 0, 113, i));
        for i in 1..=255 {
            assert!(std::ptr::eq(shards.owner(&v4(i)), shards.owner(&v4(0))));
        }
        let net = SourceKey::aggregate(IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9)), 24, 48);
        assert!(std::ptr::eq(shards.owner(&net), shards.owner(&v4(0))));
        let in_48 = SourceKey::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0xff, 0, 0, 0, 1)),
            64,
        );
        assert!(std::ptr::eq(shards.owner(&in_48), shards.owner(&prefix)));
    }
}
