//! What the fleet's decisions ask of the kernel, without the kernel: the decisions in force per
//! target, and which of them the remote-ban sets must hold.
//!
//! - One address (`Ip` scope, or a `Range` of one address) is one element of `remote4` or
//!   `remote6`, with the longest time any of its decisions has left; when that decision goes,
//!   the element is written again with the next longest (or lifted).
//! - The kernel refuses overlapping intervals, while LAPI decisions overlap (a /16 over a /24, the
//!   same range twice). Two CIDR blocks are either disjoint or nested, so the union of the ranges
//!   in force is exactly the ranges no other range in force contains: only those are written, and
//!   when one of them ends, what it covered is written in its place.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use detector::inet::prefix_mask_v4;

use crate::fleet::Target;

/// One decision in force, in the book: `expires_ms` on the sink's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub id: u64,
    pub expires_ms: u64,
    /// Interned origin and scenario (`Names`).
    pub origin: u16,
    pub scenario: u16,
}

/// Strings that repeat across many decisions (origins, scenarios), stored once.
#[derive(Debug, Default)]
pub struct Names {
    all: Vec<String>,
    index: HashMap<String, u16>,
}

impl Names {
    pub fn intern(&mut self, s: &str) -> u16 {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        // A LAPI with more than 65,535 distinct origins or scenarios shares the last slot.
        let Ok(i) = u16::try_from(self.all.len()) else {
            return u16::MAX;
        };
        self.all.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }

    pub fn get(&self, i: u16) -> &str {
        self.all.get(usize::from(i)).map_or("?", |s| s.as_str())
    }
}

/// Every address's bits: 32 or 128.
pub fn full_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// `addr` with the bits past `len` cleared.
pub fn masked(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) & prefix_mask_v4(len.min(32))).into()),
        IpAddr::V6(a) => IpAddr::V6(detector::inet::mask_v6(a, len.min(128))),
    }
}

pub fn is_host(t: &Target) -> bool {
    t.prefix_len >= full_len(&t.addr)
}

/// Decisions kept per target: the longest-lived. More on one address only matter if the
/// longer ones are deleted first, and without a bound a machine pushing decisions on one
/// address would grow the book (and each insert's cost) without end.
pub const MAX_PER_TARGET: usize = 16;

/// The decisions in force, by target.
#[derive(Debug, Default)]
pub struct Book {
    /// Single addresses: the decision that lives longest (what the kernel element carries).
    /// Keyed by the bare address of each family: an IPv4 entry is 32 bytes instead of the 48 a
    /// `Target` key costs, 2 MB less for 100,000 decisions.
    hosts4: HashMap<u32, Held>,
    hosts6: HashMap<[u8; 16], Held>,
    /// CIDR ranges, likewise.
    ranges: HashMap<Target, Held>,
    /// Further decisions on a target already held: rare (the same address from CAPI and from a
    /// machine of the fleet), so kept apart to keep the common entry small.
    more: HashMap<Target, Vec<Held>>,
}

/// An address target, from a key of `Book::hosts4`.
fn host4(a: u32) -> Target {
    Target {
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        prefix_len: 32,
    }
}

/// An address target, from a key of `Book::hosts6`.
fn host6(a: [u8; 16]) -> Target {
    Target {
        addr: IpAddr::V6(Ipv6Addr::from(a)),
        prefix_len: 128,
    }
}

impl Book {
    /// The decision whose time the kernel element of `t` carries.
    pub fn primary(&self, t: &Target) -> Option<Held> {
        match t.addr {
            _ if !is_host(t) => self.ranges.get(t).copied(),
            IpAddr::V4(a) => self.hosts4.get(&u32::from(a)).copied(),
            IpAddr::V6(a) => self.hosts6.get(&a.octets()).copied(),
        }
    }

    fn remove_primary(&mut self, t: &Target) -> Option<Held> {
        match t.addr {
            _ if !is_host(t) => self.ranges.remove(t),
            IpAddr::V4(a) => self.hosts4.remove(&u32::from(a)),
            IpAddr::V6(a) => self.hosts6.remove(&a.octets()),
        }
    }

    fn insert_primary(&mut self, t: Target, h: Held) {
        match t.addr {
            _ if !is_host(&t) => self.ranges.insert(t, h),
            IpAddr::V4(a) => self.hosts4.insert(u32::from(a), h),
            IpAddr::V6(a) => self.hosts6.insert(a.octets(), h),
        };
    }

    fn holds(&self, t: &Target) -> bool {
        self.primary(t).is_some()
    }

    /// Adds a decision, or renews it (same id). Past `MAX_PER_TARGET` on one target, the
    /// shortest-lived goes.
    pub fn insert(&mut self, t: Target, h: Held) {
        let mut all = self.take(&t);
        all.retain(|x| x.id != h.id);
        all.push(h);
        if all.len() > MAX_PER_TARGET {
            if let Some(i) = all
                .iter()
                .enumerate()
                .min_by_key(|(_, h)| (h.expires_ms, h.id))
                .map(|(i, _)| i)
            {
                all.swap_remove(i);
            }
        }
        self.put(t, all);
    }

    /// Whether a decision on `t`, a target not held yet, would pass `max` addresses of its
    /// family (or `max / 2` ranges, both families: a range is two set elements).
    pub fn full_for(&self, t: &Target, max: usize) -> bool {
        match t.addr {
            _ if !is_host(t) => self.ranges.len() >= max / 2,
            IpAddr::V4(_) => self.hosts4.len() >= max,
            IpAddr::V6(_) => self.hosts6.len() >= max,
        }
    }

    /// Removes decision `id` from `t`; whether it was there.
    pub fn remove(&mut self, t: &Target, id: u64) -> bool {
        let mut all = self.take(t);
        let before = all.len();
        all.retain(|x| x.id != id);
        let found = all.len() != before;
        self.put(*t, all);
        found
    }

    /// Drops decisions that ran out by `now_ms`, in the ranges only (`all`: the addresses too).
    pub fn expire(&mut self, now_ms: u64, all: bool) {
        self.ranges.retain(|_, h| h.expires_ms > now_ms);
        if all {
            self.hosts4.retain(|_, h| h.expires_ms > now_ms);
            self.hosts6.retain(|_, h| h.expires_ms > now_ms);
        }
        let mut more = std::mem::take(&mut self.more);
        more.retain(|t, v| {
            v.retain(|h| h.expires_ms > now_ms);
            !v.is_empty() && self.holds(t)
        });
        self.more = more;
    }

    fn take(&mut self, t: &Target) -> Vec<Held> {
        let mut all = self.more.remove(t).unwrap_or_default();
        if let Some(p) = self.remove_primary(t) {
            all.push(p);
        }
        all
    }

    /// Stores the decisions of `t`: the longest-lived as primary, the rest in `more`.
    fn put(&mut self, t: Target, mut all: Vec<Held>) {
        let Some(best) = all
            .iter()
            .enumerate()
            .max_by_key(|(_, h)| (h.expires_ms, h.id))
            .map(|(i, _)| i)
        else {
            return;
        };
        let primary = all.swap_remove(best);
        self.insert_primary(t, primary);
        if !all.is_empty() {
            self.more.insert(t, all);
        }
    }

    /// The addresses of one family (`v6`) and their primary decisions.
    pub fn hosts(&self, v6: bool) -> impl Iterator<Item = (Target, &Held)> {
        let four = self.hosts4.iter().map(|(a, h)| (host4(*a), h));
        let six = self.hosts6.iter().map(|(a, h)| (host6(*a), h));
        four.filter(move |_| !v6).chain(six.filter(move |_| v6))
    }

    /// Decisions in force.
    pub fn len(&self) -> usize {
        self.hosts4.len()
            + self.hosts6.len()
            + self.ranges.len()
            + self.more.values().map(Vec::len).sum::<usize>()
    }

    /// The ranges in force (at `now_ms`) that no other range in force contains: the union of all
    /// ranges, as the interval sets hold it.
    pub fn outermost_ranges(&self, now_ms: u64) -> Vec<(Target, Held)> {
        let live = |t: &Target| self.ranges.get(t).is_some_and(|h| h.expires_ms > now_ms);
        self.ranges
            .iter()
            .filter(|(_, h)| h.expires_ms > now_ms)
            .filter(|(t, _)| {
                !(0..t.prefix_len).any(|len| {
                    live(&Target {
                        addr: masked(t.addr, len),
                        prefix_len: len,
                    })
                })
            })
            .map(|(t, h)| (*t, *h))
            .collect()
    }

    /// Keeps only the targets `keep` accepts (all their decisions go with them); how many
    /// decisions went.
    pub fn retain(&mut self, mut keep: impl FnMut(&Target) -> bool) -> usize {
        let before = self.len();
        self.hosts4.retain(|a, _| keep(&host4(*a)));
        self.hosts6.retain(|a, _| keep(&host6(*a)));
        self.ranges.retain(|t, _| keep(t));
        let mut more = std::mem::take(&mut self.more);
        more.retain(|t, _| self.holds(t));
        self.more = more;
        before - self.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        let c: detector::Cidr = s.parse().unwrap();
        Target {
            addr: c.addr,
            prefix_len: c.len,
        }
    }

    fn held(id: u64, expires_ms: u64) -> Held {
        Held {
            id,
            expires_ms,
            origin: 0,
            scenario: 0,
        }
    }

    #[test]
    fn the_longest_decision_on_an_address_is_the_one_written() {
        let mut b = Book::default();
        let a = t("192.0.2.7");
        b.insert(a, held(1, 5_000));
        b.insert(a, held(2, 9_000));
        b.insert(a, held(3, 7_000));
        assert_eq!(b.primary(&a), Some(held(2, 9_000)));
        assert_eq!(b.len(), 3);
        // The longest goes: the next longest takes its place.
        assert!(b.remove(&a, 2));
        assert_eq!(b.primary(&a), Some(held(3, 7_000)));
        // A renewal (same id) replaces, never duplicates.
        b.insert(a, held(1, 20_000));
        assert_eq!(b.primary(&a), Some(held(1, 20_000)));
        assert_eq!(b.len(), 2);
        assert!(b.remove(&a, 1) && b.remove(&a, 3));
        assert!(!b.remove(&a, 3));
        assert_eq!(b.primary(&a), None);
        assert_eq!(b.len(), 0);
    }

    /// An attacker with machine credentials pushes decision after decision on one address: the
    /// book keeps the longest-lived few, not all.
    #[test]
    fn decisions_on_one_address_are_bounded_keeping_the_longest() {
        let mut b = Book::default();
        let a = t("198.51.100.9");
        for id in 0..1000 {
            b.insert(a, held(id, 1_000 + id * 10));
        }
        assert_eq!(b.len(), MAX_PER_TARGET);
        assert_eq!(b.primary(&a), Some(held(999, 10_990)));
        // What stays is the longest-lived: lifting the longest leaves the next longest.
        assert!(b.remove(&a, 999));
        assert_eq!(b.primary(&a), Some(held(998, 10_980)));
        assert!(!b.remove(&a, 0), "the shortest went long ago");
    }

    #[test]
    fn the_limit_counts_addresses_per_family_and_ranges_at_half() {
        let mut b = Book::default();
        b.insert(t("198.51.100.1"), held(1, 10));
        b.insert(t("198.51.100.2"), held(2, 10));
        b.insert(t("2001:db8::1"), held(3, 10));
        b.insert(t("198.51.100.0/25"), held(4, 10));
        assert!(b.full_for(&t("198.51.100.3"), 2));
        assert!(!b.full_for(&t("2001:db8::2"), 2));
        assert!(b.full_for(&t("2001:db8:1::/48"), 2), "2 / 2 = 1 range");
        assert!(!b.full_for(&t("2001:db8:1::/48"), 4));
    }

    #[test]
    fn only_ranges_no_other_range_contains_are_written() {
        let mut b = Book::default();
        b.insert(t("198.51.100.0/24"), held(1, 10_000));
        b.insert(t("198.51.100.128/25"), held(2, 30_000));
        b.insert(t("198.51.0.0/16"), held(3, 5_000));
        b.insert(t("192.0.2.0/24"), held(4, 10_000));
        b.insert(t("2001:db8::/32"), held(5, 10_000));
        b.insert(t("2001:db8:1::/48"), held(6, 10_000));
        let top = |now| {
            let mut v: Vec<String> = b
                .outermost_ranges(now)
                .iter()
                .map(|(t, _)| format!("{}/{}", t.addr, t.prefix_len))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            top(0),
            ["192.0.2.0/24", "198.51.0.0/16", "2001:db8::/32"].map(String::from)
        );
        // The /16 ends: the /24 under it is written; then the /24 ends: its /25 is.
        assert_eq!(
            top(5_000),
            ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"].map(String::from)
        );
        assert_eq!(top(10_000), ["198.51.100.128/25"].map(String::from));
        b.expire(10_000, false);
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn masks_clear_host_bits() {
        let a: IpAddr = "198.51.100.77".parse().unwrap();
        assert_eq!(masked(a, 24), "198.51.100.0".parse::<IpAddr>().unwrap());
        assert_eq!(masked(a, 0), "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(masked(a, 32), a);
        let b: IpAddr = "2001:db8:1:2::9".parse().unwrap();
        assert_eq!(masked(b, 48), "2001:db8:1::".parse::<IpAddr>().unwrap());
    }
}
