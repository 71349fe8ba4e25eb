//! Who a probe is counted against: an IPv4 address, or an IPv6 prefix (a /64 by default: one
//! host commonly owns a whole /64, and hopping inside it must not reset its score). An IPv6
//! address that carries an IPv4 address (`::ffff:a.b.c.d`, `::a.b.c.d`) is that IPv4 address.
//! Which prefix a given source gets (never one that covers a protected address) is decided by
//! [`crate::Allowlist::key_for`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::inet::{mask_v6, prefix_mask_v4};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKey {
    V4(Ipv4Addr),
    /// The address masked to `len` bits, and `len`.
    V6(Ipv6Addr, u8),
    /// An IPv4 prefix counted and banned as a whole (the distributed-scan tier): the address
    /// masked to `len` bits, and `len`.
    V4Net(Ipv4Addr, u8),
    /// An IPv6 prefix counted and banned as a whole (the distributed-scan tier), wider than the
    /// per-source prefix.
    V6Net(Ipv6Addr, u8),
}

/// `addr` with an embedded IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, as dual-stack sockets
/// show IPv4 peers, or the deprecated IPv4-compatible `::a.b.c.d`) as that IPv4 address.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(a) => a.to_ipv4().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

impl SourceKey {
    /// The key of `addr` at the configured IPv6 prefix, with no regard to what it covers.
    pub fn new(addr: IpAddr, ipv6_prefix: u8) -> Self {
        match canonical(addr) {
            IpAddr::V4(a) => SourceKey::V4(a),
            IpAddr::V6(a) => {
                let len = ipv6_prefix.min(128);
                SourceKey::V6(mask_v6(a, len), len)
            }
        }
    }

    /// The prefix of `addr` the distributed-scan tier aggregates it under: its IPv4 /`v4_len`
    /// or IPv6 /`v6_len`.
    pub fn aggregate(addr: IpAddr, v4_len: u8, v6_len: u8) -> Self {
        match canonical(addr) {
            IpAddr::V4(a) => {
                let len = v4_len.min(32);
                SourceKey::V4Net(Ipv4Addr::from(u32::from(a) & prefix_mask_v4(len)), len)
            }
            IpAddr::V6(a) => {
                let len = v6_len.min(128);
                SourceKey::V6Net(mask_v6(a, len), len)
            }
        }
    }

    /// The prefix key this key is aggregated under (itself if it is one already): the daemon
    /// shards by it, so every source of a prefix is counted by one detector.
    pub fn aggregate_key(&self, v4_len: u8, v6_len: u8) -> Self {
        match *self {
            SourceKey::V4(a) => SourceKey::aggregate(IpAddr::V4(a), v4_len, v6_len),
            SourceKey::V6(a, _) => SourceKey::aggregate(IpAddr::V6(a), v4_len, v6_len),
            k => k,
        }
    }

    /// Whether `addr` falls under this key.
    pub fn contains(&self, addr: &IpAddr) -> bool {
        match (self, canonical(*addr)) {
            (SourceKey::V4(k), IpAddr::V4(a)) => *k == a,
            (SourceKey::V6(k, len) | SourceKey::V6Net(k, len), IpAddr::V6(a)) => {
                mask_v6(a, *len) == *k
            }
            (SourceKey::V4Net(k, len), IpAddr::V4(a)) => {
                u32::from(a) & prefix_mask_v4(*len) == u32::from(*k)
            }
            _ => false,
        }
    }

    /// Whether this key is a whole prefix of the distributed-scan tier.
    pub fn is_aggregate(&self) -> bool {
        matches!(self, SourceKey::V4Net(..) | SourceKey::V6Net(..))
    }

    /// The first address and the length of the block this key covers.
    pub fn block(&self) -> (IpAddr, u8) {
        match *self {
            SourceKey::V4(a) => (IpAddr::V4(a), 32),
            SourceKey::V4Net(a, len) => (IpAddr::V4(a), len),
            SourceKey::V6(a, len) | SourceKey::V6Net(a, len) => (IpAddr::V6(a), len),
        }
    }

    /// The key widened to at most `ipv6_prefix` bits: every key a source can get (narrowed or
    /// not) widens to the same one, so it picks the shard.
    pub fn widen(&self, ipv6_prefix: u8) -> Self {
        match *self {
            SourceKey::V6(a, len) if len > ipv6_prefix => {
                SourceKey::V6(mask_v6(a, ipv6_prefix), ipv6_prefix)
            }
            k => k,
        }
    }

    /// The key as the kernel set stores it: 4 or 16 bytes, network order (IPv6 masked).
    pub fn set_key(&self) -> ([u8; 16], usize) {
        let mut out = [0u8; 16];
        match self {
            SourceKey::V4(a) | SourceKey::V4Net(a, _) => {
                out[..4].copy_from_slice(&a.octets());
                (out, 4)
            }
            SourceKey::V6(a, _) | SourceKey::V6Net(a, _) => (a.octets(), 16),
        }
    }

    pub fn is_ipv4(&self) -> bool {
        matches!(self, SourceKey::V4(_) | SourceKey::V4Net(..))
    }

    /// Which of `n` shards owns this key: stable, cheap, and spread over all shards. The
    /// daemon keeps one `Detector` per shard so queue threads rarely wait for each other while
    /// every probe of one source lands in the same detector whichever queue carried it. Callers
    /// pass the key widened to the configured prefix (`widen`), so a source narrowed to /128
    /// stays in its prefix's shard.
    pub fn shard(&self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let x: u64 = match self {
            SourceKey::V4(a) | SourceKey::V4Net(a, _) => u64::from(u32::from(*a)),
            SourceKey::V6(a, _) | SourceKey::V6Net(a, _) => {
                let v = u128::from(*a);
                (v >> 64) as u64 ^ v as u64
            }
        };
        // Fibonacci hashing: the high bits of a multiplicative hash.
        ((x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % n as u64) as usize
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKey::V4(a) => write!(f, "{a}"),
            SourceKey::V6(a, 128) => write!(f, "{a}"),
            SourceKey::V6(a, len) | SourceKey::V6Net(a, len) => write!(f, "{a}/{len}"),
            SourceKey::V4Net(a, len) => write!(f, "{a}/{len}"),
        }
    }
}

/// Addresses that are never a scanner to ban: they cannot be a remote source, or banning them
/// would only hurt this host (loopback, unspecified, multicast and broadcast, link-local).
pub fn never_tracked(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            a.is_loopback()
                || a.is_unspecified()
                || a.octets()[0] == 0
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_link_local()
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4() {
                return never_tracked(&IpAddr::V4(v4));
            }
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (a.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_sources_aggregate_by_prefix() {
        let a = SourceKey::new(ip("2001:db8:1:2::1"), 64);
        let b = SourceKey::new(ip("2001:db8:1:2:ffff::9"), 64);
        let c = SourceKey::new(ip("2001:db8:1:3::1"), 64);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            SourceKey::new(ip("2001:db8::5"), 128).to_string(),
            "2001:db8::5"
        );
        assert_eq!(SourceKey::new(ip("192.0.2.7"), 64).to_string(), "192.0.2.7");
        let (key, len) = a.set_key();
        assert_eq!(len, 16);
        assert_eq!(&key[..8], &[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2]);
        assert_eq!(&key[8..], &[0; 8]);
    }

    #[test]
    fn ipv4_in_ipv6_is_keyed_as_ipv4() {
        for a in ["::ffff:192.0.2.7", "::192.0.2.7"] {
            let k = SourceKey::new(ip(a), 64);
            assert_eq!(k, SourceKey::V4("192.0.2.7".parse().unwrap()), "{a}");
            assert!(k.contains(&ip("192.0.2.7")));
            assert!(k.contains(&ip(a)));
        }
        let k = SourceKey::new(ip("2001:db8:1:2::1"), 64);
        assert!(k.contains(&ip("2001:db8:1:2::ff")));
        assert!(!k.contains(&ip("2001:db8:1:3::1")));
        let host = SourceKey::new(ip("2001:db8:1:2::1"), 128);
        assert_eq!(host.widen(64), k);
        assert_eq!(host.widen(64).shard(8), k.shard(8));
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let mut counts = [0u32; 4];
        for i in 0..4000u32 {
            let k = SourceKey::V4(Ipv4Addr::from(0xc633_6400 + i));
            assert_eq!(k.shard(4), k.shard(4));
            counts[k.shard(4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert_eq!(SourceKey::V4(Ipv4Addr::LOCALHOST).shard(1), 0);
    }

    #[test]
    fn special_addresses_are_never_tracked() {
        for a in [
            "127.0.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.251",
            "255.255.255.255",
            "169.254.1.1",
            "::1",
            "::",
            "ff02::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::2",
            "::127.0.0.1",
        ] {
            assert!(never_tracked(&ip(a)), "{a}");
        }
        for a in ["192.0.2.7", "2001:db8::7", "::ffff:192.0.2.7"] {
            assert!(!never_tracked(&ip(a)), "{a}");
        }
    }
}
