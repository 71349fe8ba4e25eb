//! Sources that are never tracked or banned: the configured CIDRs plus, from the daemon, the
//! host's own addresses, gateways and resolvers. Replaceable at run time without touching the
//! tracking state.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address with a prefix length: `192.0.2.0/24`, `2001:db8::/32`; a bare address is a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(*a) & mask
            }
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    cidrs: Vec<Cidr>,
}

impl Allowlist {
    pub fn new(cidrs: impl IntoIterator<Item = Cidr>) -> Self {
        let mut cidrs: Vec<Cidr> = cidrs.into_iter().collect();
        cidrs.sort_by_key(|c| (c.addr, c.len));
        cidrs.dedup();
        Allowlist { cidrs }
    }

    /// Linear: allowlists are a handful of entries, and this runs before any table lookup.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.cidrs.iter().any(|c| c.contains(ip))
    }

    pub fn entries(&self) -> &[Cidr] {
        &self.cidrs
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
}
