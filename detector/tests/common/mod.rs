//! What the detector's integration tests share.

use std::net::{IpAddr, Ipv4Addr};

use detector::{Observation, Proto};

/// The TCP flags of a SYN.
pub const SYN: u8 = 0x02;

/// A probe from `src` to this host (192.0.2.1, or 2001:db8::1 for an IPv6 source).
pub fn probe(src: IpAddr, proto: Proto, port: u16, flags: u8) -> Observation {
    Observation {
        src,
        dst: if src.is_ipv4() {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
        } else {
            IpAddr::V6("2001:db8::1".parse().unwrap())
        },
        proto,
        src_port: 40000,
        dst_port: port,
        tcp_flags: flags,
        ifindex: None,
    }
}
