//! Sources that are never tracked or banned: the configured CIDRs plus, from the daemon, the
//! host's own addresses, gateways and resolvers. Replaceable at run time without touching the
//! tracking state.
//!
//! It also decides each source's key (`key_for`), because an IPv6 key is a prefix and a prefix
//! must never cover what the allowlist protects: a scanner next to an allowlisted admin, or a
//! probe spoofed from the host's own /64, would otherwise ban the admin or the host's LAN. Such
//! a key is narrowed to the one address (/128), which the kernel's host set matches; a source
//! that is itself protected gets no key at all. Sources on one of the host's own on-link
//! prefixes are neighbours, one host each, and are keyed per address too.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use crate::inet::{mask_v6, prefix_mask_v4};
use crate::source::{self, canonical, SourceKey};

/// An address with a prefix length: `192.0.2.0/24`, `2001:db8::/32`; a bare address is a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    /// Whether the two blocks share an address (one contains the other).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let shorter = if self.len <= other.len { self } else { other };
        let longer = if self.len <= other.len { other } else { self };
        shorter.contains(&longer.addr)
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = prefix_mask_v4(self.len);
                u32::from(net) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => mask_v6(net, self.len) == mask_v6(*a, self.len),
            _ => false,
        }
    }

    pub fn host(addr: IpAddr) -> Self {
        Cidr {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{s}` is not an address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { addr, len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// IPv6 blocks no key may cover besides the allowlist: loopback, the unspecified address, the
/// IPv4-compatible and IPv4-mapped ranges (the whole ::/64 holds them), link-local and multicast.
const SPECIAL_V6: [(Ipv6Addr, u8); 5] = [
    (Ipv6Addr::UNSPECIFIED, 96),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];

/// Why a key is one address rather than the configured IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Narrowed {
    /// The key is the configured prefix (or an IPv4 address).
    #[default]
    No,
    /// The source is on one of the host's own on-link prefixes: a neighbour is one host.
    OnLink,
    /// The prefix holds a protected address (allowlisted, own, gateway, resolver, loopback...).
    CoversProtected,
}

/// The key a source is counted and banned under, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyed {
    /// The source itself is protected: never tracked, never banned.
    Protected,
    Key(SourceKey, Narrowed),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    cidrs: Vec<Cidr>,
    /// The host's own on-link IPv6 prefixes: sources there are keyed per address.
    on_link: Vec<Cidr>,
}

impl Allowlist {
    pub fn new(cidrs: impl IntoIterator<Item = Cidr>) -> Self {
        let mut cidrs: Vec<Cidr> = cidrs.into_iter().collect();
        cidrs.sort_by_key(|c| (c.addr, c.len));
        cidrs.dedup();
        Allowlist {
            cidrs,
            on_link: Vec::new(),
        }
    }

    /// The host's on-link prefixes (IPv6; others are ignored), whose sources are keyed per address.
    pub fn with_on_link(mut self, prefixes: impl IntoIterator<Item = Cidr>) -> Self {
        self.on_link = prefixes.into_iter().filter(|c| c.addr.is_ipv6()).collect();
        self.on_link.sort_by_key(|c| (c.addr, c.len));
        self.on_link.dedup();
        self
    }

    /// Linear: allowlists are a handful of entries, and this runs before any table lookup.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        let ip = canonical(*ip);
        self.cidrs.iter().any(|c| c.contains(&ip))
    }

    pub fn entries(&self) -> &[Cidr] {
        &self.cidrs
    }

    pub fn on_link(&self) -> &[Cidr] {
        &self.on_link
    }

    /// The key for `addr` with IPv6 sources at `ipv6_prefix`: none if the source is protected,
    /// one address if the prefix would cover a protected address or the source is a neighbour.
    /// Runs per probe: two linear passes over a few dozen entries, no allocation.
    pub fn key_for(&self, addr: &IpAddr, ipv6_prefix: u8) -> Keyed {
        let addr = canonical(*addr);
        if source::never_tracked(&addr) || self.contains(&addr) {
            return Keyed::Protected;
        }
        let IpAddr::V6(a) = addr else {
            return Keyed::Key(SourceKey::new(addr, ipv6_prefix), Narrowed::No);
        };
        let one = |why| Keyed::Key(SourceKey::V6(a, 128), why);
        if ipv6_prefix >= 128 {
            return one(Narrowed::No);
        }
        if self.on_link.iter().any(|c| c.contains(&addr)) {
            return one(Narrowed::OnLink);
        }
        let wide = SourceKey::V6(mask_v6(a, ipv6_prefix), ipv6_prefix);
        if self.covers_protected(&wide) {
            return one(Narrowed::CoversProtected);
        }
        Keyed::Key(wide, Narrowed::No)
    }

    /// Whether a whole prefix (the distributed-scan tier) may be banned: it covers no protected
    /// address and overlaps none of the host's own on-link prefixes.
    pub fn may_ban_prefix(&self, key: &SourceKey) -> bool {
        let (addr, len) = key.block();
        let block = Cidr { addr, len };
        !self.covers_protected(key) && !self.on_link.iter().any(|c| c.overlaps(&block))
    }

    /// Whether a ban on `key` would cover a protected address (or the key's own addresses are
    /// protected): what restored and remote bans are checked against.
    pub fn covers_protected(&self, key: &SourceKey) -> bool {
        let (addr, len) = key.block();
        let block = Cidr { addr, len };
        if source::never_tracked(&block.addr) {
            return true;
        }
        let special = SPECIAL_V6.iter().map(|&(addr, len)| Cidr {
            addr: IpAddr::V6(addr),
            len,
        });
        self.cidrs
            .iter()
            .copied()
            .chain(special)
            .any(|c| c.overlaps(&block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_match_their_family_only() {
        let l = Allowlist::new(
            ["192.0.2.0/24", "2001:db8:5::/48", "198.51.100.7"].map(|s| s.parse().unwrap()),
        );
        assert!(l.contains(&"192.0.2.200".parse().unwrap()));
        assert!(!l.contains(&"192.0.3.1".parse().unwrap()));
        assert!(l.contains(&"2001:db8:5:1::1".parse().unwrap()));
        assert!(!l.contains(&"2001:db8:6::1".parse().unwrap()));
        assert!(l.contains(&"198.51.100.7".parse().unwrap()));
        assert!(!l.contains(&"198.51.100.8".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(&"203.0.113.1".parse().unwrap()));
        assert!(!all.contains(&"2001:db8::1".parse().unwrap()));
        assert!("192.0.2.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn key(l: &Allowlist, a: &str) -> Keyed {
        l.key_for(&ip(a), 64)
    }

    #[test]
    fn a_prefix_key_never_covers_a_protected_address() {
        let l = Allowlist::new(["2001:db8:1:2::10", "2001:db8:5::/48"].map(|s| s.parse().unwrap()));
        // The allowlisted admin's neighbour in the same /64: that address only.
        assert_eq!(
            key(&l, "2001:db8:1:2::66"),
            Keyed::Key(
                SourceKey::V6("2001:db8:1:2::66".parse().unwrap(), 128),
                Narrowed::CoversProtected
            )
        );
        assert_eq!(key(&l, "2001:db8:1:2::10"), Keyed::Protected);
        // Inside an allowlisted /48: protected; a /64 elsewhere: the /64.
        assert_eq!(key(&l, "2001:db8:5:7::1"), Keyed::Protected);
        assert_eq!(
            key(&l, "2001:db8:9:9::1"),
            Keyed::Key(
                SourceKey::V6("2001:db8:9:9::".parse().unwrap(), 64),
                Narrowed::No
            )
        );
        // An allowlisted block wider than the key that holds it is protected too.
        let wide = Allowlist::new(["2001:db8::/32".parse().unwrap()]);
        assert_eq!(key(&wide, "2001:db8:7::1"), Keyed::Protected);
    }

    #[test]
    fn the_loopback_prefix_and_embedded_ipv4_are_never_a_prefix_key() {
        let l = Allowlist::new(["192.0.2.1".parse().unwrap()]);
        // ::2 is IPv4-compatible 0.0.0.2, never tracked; ::1:0:0:2 sits in ::/64 with ::1.
        assert_eq!(key(&l, "::2"), Keyed::Protected);
        assert_eq!(
            key(&l, "::1:0:0:2"),
            Keyed::Key(
                SourceKey::V6("::1:0:0:2".parse().unwrap(), 128),
                Narrowed::CoversProtected
            )
        );
        // Mapped and compatible addresses are the IPv4 address, allowlist included.
        assert_eq!(key(&l, "::ffff:192.0.2.1"), Keyed::Protected);
        assert_eq!(
            key(&l, "::ffff:192.0.2.9"),
            Keyed::Key(SourceKey::V4("192.0.2.9".parse().unwrap()), Narrowed::No)
        );
    }

    #[test]
    fn on_link_neighbours_are_one_host_each() {
        let l = Allowlist::new([]).with_on_link(["2001:db8:aa::/48".parse().unwrap()]);
        assert_eq!(
            key(&l, "2001:db8:aa:1::5"),
            Keyed::Key(
                SourceKey::V6("2001:db8:aa:1::5".parse().unwrap(), 128),
                Narrowed::OnLink
            )
        );
        assert!(matches!(
            key(&l, "2001:db8:ab::5"),
            Keyed::Key(SourceKey::V6(_, 64), Narrowed::No)
        ));
    }

    #[test]
    fn restored_keys_are_checked_for_what_they_cover() {
        let l = Allowlist::new(["2001:db8:1:2::10", "192.0.2.53"].map(|s| s.parse().unwrap()));
        let k = |a: &str, len| SourceKey::V6(a.parse().unwrap(), len);
        assert!(l.covers_protected(&k("2001:db8:1:2::", 64)));
        assert!(!l.covers_protected(&k("2001:db8:1:2::11", 128)));
        assert!(l.covers_protected(&k("::", 64)), "holds ::1");
        assert!(l.covers_protected(&SourceKey::V4("192.0.2.53".parse().unwrap())));
        assert!(!l.covers_protected(&SourceKey::V4("192.0.2.54".parse().unwrap())));
    }
}
