//! What the host knows about itself, read from /proc and /etc: its own addresses and on-link
//! IPv6 prefixes, its gateways, its DNS resolvers (the auto-allowlist: banning any of them would
//! cut the admin off), and its established TCP sessions (an aged one to a management port spares
//! its peer: see `sessions`).
//!
//! All of it comes from text files of the daemon's own network namespace, so no rtnetlink code
//! is needed. The kernel prints IPv4 addresses in /proc/net/{route,tcp} as a native-endian u32
//! of the network-order bytes, hence `to_ne_bytes` below; IPv6 addresses are 32 hex digits in
//! network order (if_inet6, ipv6_route) or four native-endian u32 words (tcp6).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use detector::inet::mask_v6;
use detector::source::canonical;
use detector::Cidr;

/// Where resolvers are written down: the stub's file, and the upstream servers behind a local
/// stub as systemd-resolved and OpenWrt (dnsmasq's upstreams, from netifd) keep them.
pub const RESOLV_CONF_FILES: [&str; 4] = [
    "/etc/resolv.conf",
    "/run/systemd/resolve/resolv.conf",
    "/tmp/resolv.conf.d/resolv.conf.auto",
    "/tmp/resolv.conf.auto",
];

/// Addresses of this host: `LOCAL` entries of /proc/net/fib_trie and /proc/net/if_inet6.
pub fn own_addresses(fib_trie: &str, if_inet6: &str) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start_matches([' ', '|', '-', '+']);
        if let Ok(a) = t.trim().parse::<Ipv4Addr>() {
            last = Some(a);
        } else if t.contains("host LOCAL") {
            if let Some(a) = last {
                out.insert(IpAddr::V4(a));
            }
        }
    }
    for line in if_inet6.lines() {
        if let Some(a) = line.split_whitespace().next().and_then(hex_v6) {
            out.insert(IpAddr::V6(a));
        }
    }
    out
}

/// The host's on-link IPv6 prefixes: each global address of /proc/net/if_inet6 with its
/// prefix length (a neighbour on one of them is one host, not a /64 to ban).
pub fn on_link_prefixes(if_inet6: &str) -> Vec<Cidr> {
    let mut out = Vec::new();
    for line in if_inet6.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(a), Some(len), Some(scope)) = (
            f.first().and_then(|a| hex_v6(a)),
            f.get(2).and_then(|l| u8::from_str_radix(l, 16).ok()),
            f.get(3),
        ) else {
            continue;
        };
        // Scope 00 is global; host (10) and link (20) scopes are never tracked anyway.
        if *scope != "00" || len > 128 {
            continue;
        }
        let c = Cidr {
            addr: IpAddr::V6(mask_v6(a, len)),
            len,
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Next hops of routes with a gateway, from /proc/net/route and /proc/net/ipv6_route.
pub fn gateways(route: &str, ipv6_route: &str) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for line in route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let Some(gw) = f.get(2).and_then(|g| hex_v4_native(g)) {
            if !gw.is_unspecified() {
                out.insert(IpAddr::V4(gw));
            }
        }
    }
    for line in ipv6_route.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let Some(gw) = f.get(4).and_then(|g| hex_v6(g)) {
            if !gw.is_unspecified() {
                out.insert(IpAddr::V6(gw));
            }
        }
    }
    out
}

/// `nameserver` lines of resolv.conf.
pub fn resolvers(resolv_conf: &str) -> BTreeSet<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next())?
        })
        // A scoped address (fe80::1%eth0) names its interface after '%'.
        .filter_map(|a| a.split('%').next()?.parse().ok())
        .collect()
}

/// The `nameserver` addresses of every file in `RESOLV_CONF_FILES` that exists.
pub fn all_resolvers() -> BTreeSet<IpAddr> {
    RESOLV_CONF_FILES
        .iter()
        .flat_map(|f| resolvers(&read(f)))
        .collect()
}

/// An established TCP connection: its peer (IPv4 for an IPv4 peer of a dual-stack socket,
/// shown in tcp6 as `::ffff:a.b.c.d`), the peer's port and the local port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Session {
    pub peer: IpAddr,
    pub peer_port: u16,
    pub local_port: u16,
}

/// ESTABLISHED (state 01) connections in /proc/net/tcp or tcp6.
pub fn established_sessions(tcp: &str) -> Vec<Session> {
    let mut out = Vec::new();
    for line in tcp.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(3) != Some(&"01") {
            continue;
        }
        let (Some((_, local)), Some((addr, port))) = (
            f.get(1).and_then(|l| l.split_once(':')),
            f.get(2).and_then(|r| r.split_once(':')),
        ) else {
            continue;
        };
        let peer = match addr.len() {
            8 => hex_v4_native(addr).map(IpAddr::V4),
            32 => hex_v6_words(addr).map(IpAddr::V6),
            _ => None,
        };
        let (Some(peer), Ok(peer_port), Ok(local_port)) = (
            peer,
            u16::from_str_radix(port, 16),
            u16::from_str_radix(local, 16),
        ) else {
            continue;
        };
        out.push(Session {
            peer: canonical(peer),
            peer_port,
            local_port,
        });
    }
    out
}

/// Local ports that would receive a new connection or datagram: LISTEN (state 0A) sockets of
/// /proc/net/tcp{,6}, or unconnected (remote address all zeros) sockets of /proc/net/udp{,6}.
/// The fallback for kernels without the nft `socket` expression.
pub fn open_ports(table: &str, tcp: bool) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state)) = (f.get(1), f.get(2), f.get(3)) else {
            continue;
        };
        let open = if tcp {
            *state == "0A"
        } else {
            remote
                .split(':')
                .next()
                .is_some_and(|a| a.bytes().all(|b| b == b'0'))
        };
        if let Some(port) = local
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
        {
            if open {
                out.insert(port);
            }
        }
    }
    out
}

/// `FE0200C0` (a native-endian print of network-order bytes) -> 192.0.2.254.
fn hex_v4_native(h: &str) -> Option<Ipv4Addr> {
    let v = u32::from_str_radix(h, 16).ok()?;
    Some(Ipv4Addr::from(v.to_ne_bytes()))
}

/// 32 hex digits in network order.
fn hex_v6(h: &str) -> Option<Ipv6Addr> {
    if h.len() != 32 {
        return None;
    }
    u128::from_str_radix(h, 16).ok().map(Ipv6Addr::from)
}

/// 32 hex digits as four native-endian u32 words (the tcp6 format).
fn hex_v6_words(h: &str) -> Option<Ipv6Addr> {
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let word = u32::from_str_radix(h.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

/// Reads a file, treating a missing one as empty (a kernel without IPv6 has no if_inet6).
pub fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Fixtures captured by fixtures/proc/capture.sh in a namespace with 192.0.2.1/24 and
/// 2001:db8::1/64, gateways .254 and ::fe, and established connections from both.
/// The /proc files print native-endian words, so the captures are little-endian only.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn own_addresses_from_fib_trie_and_if_inet6() {
        let own = own_addresses(
            include_str!("../fixtures/proc/fib_trie.txt"),
            include_str!("../fixtures/proc/if_inet6.txt"),
        );
        for a in ["192.0.2.1", "127.0.0.1", "2001:db8::1", "::1"] {
            assert!(own.contains(&ip(a)), "{a} in {own:?}");
        }
        assert!(!own.contains(&ip("192.0.2.254")), "the peer is not ours");
        assert!(
            !own.contains(&ip("192.0.2.255")),
            "broadcast is not LOCAL host"
        );
    }

    #[test]
    fn gateways_from_route_tables() {
        let gw = gateways(
            include_str!("../fixtures/proc/route.txt"),
            include_str!("../fixtures/proc/ipv6_route.txt"),
        );
        assert!(gw.contains(&ip("192.0.2.254")), "{gw:?}");
        assert!(gw.contains(&ip("2001:db8::fe")), "{gw:?}");
        assert_eq!(gw.len(), 2, "{gw:?}");
    }

    #[test]
    fn established_sessions_v4_and_v6() {
        let p4 = established_sessions(include_str!("../fixtures/proc/tcp.txt"));
        assert_eq!(p4.len(), 1, "{p4:?}");
        assert_eq!(p4[0].peer, ip("192.0.2.254"));
        assert_eq!(p4[0].local_port, 22);
        let p6 = established_sessions(include_str!("../fixtures/proc/tcp6.txt"));
        assert_eq!(p6.len(), 1, "{p6:?}");
        assert_eq!(p6[0].peer, ip("2001:db8::fe"));
        assert_eq!(p6[0].local_port, 22);
    }

    #[test]
    fn on_link_prefixes_from_if_inet6() {
        let p = on_link_prefixes(include_str!("../fixtures/proc/if_inet6.txt"));
        assert_eq!(
            p,
            vec!["2001:db8::/64".parse::<Cidr>().unwrap()],
            "global scope only"
        );
    }

    #[test]
    fn open_ports_tcp_listeners_and_unconnected_udp() {
        let tcp: BTreeSet<u16> = open_ports(include_str!("../fixtures/proc/tcp.txt"), true);
        assert_eq!(
            tcp,
            [22].into_iter().collect(),
            "the established socket is not a listener"
        );
        assert_eq!(
            open_ports(include_str!("../fixtures/proc/tcp6.txt"), true),
            [22].into_iter().collect()
        );
        let udp = open_ports(include_str!("../fixtures/proc/udp.txt"), false);
        assert_eq!(
            udp,
            [5353].into_iter().collect(),
            "the connected client socket is not open"
        );
        assert_eq!(
            open_ports(include_str!("../fixtures/proc/udp6.txt"), false),
            [5353].into_iter().collect()
        );
    }

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch example\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver  2001:db8::53 \noptions edns0\n";
        assert_eq!(
            resolvers(text),
            [ip("192.0.2.53"), ip("fe80::1"), ip("2001:db8::53")]
                .into_iter()
                .collect()
        );
    }
}
