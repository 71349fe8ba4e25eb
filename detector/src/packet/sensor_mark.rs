//! What the managed sensor tells the daemon through the packet mark, for an IPv6 probe whose
//! extension headers push the transport header past the queue's copy range: the rule that
//! queues it has matched the transport header in the kernel (`meta l4proto` and `tcp flags`
//! see through any extension header chain), so it writes the destination port and the kind it
//! matched into the mark, and the daemon needs no transport header bytes.
//!
//! Layout: the four bytes of the kernel register the mark is set from, in memory order, so the
//! same on every byte order: `[port high, port low, kind, MAGIC]`. The rule loads the port
//! (network order) into the register's first two bytes, the payload load zeroes the rest, and a
//! bitwise `& MASK ^ xor(kind)` writes the last two; `meta mark set` takes the register as the
//! host's u32, and NFQA_MARK brings that u32 back, so `u32::to_ne_bytes` gives the bytes again.

use std::net::{IpAddr, Ipv6Addr};

use super::{field, Observation, Proto};
use crate::inet::tcp_flag;

/// Tells a sensor mark from any other mark a packet may carry.
pub const MAGIC: u8 = 0xb5;

/// What the queue rule matched.
pub mod kind {
    pub const SYN: u8 = 1;
    /// NULL, FIN or XMAS (one rule matches all three; reported as FIN).
    pub const STEALTH: u8 = 2;
    /// ACK, Window or FIN+ACK (one rule; reported as ACK).
    pub const ACK: u8 = 3;
    pub const UDP: u8 = 4;
    pub const SCTP: u8 = 5;
}

/// The bitwise mask the rule applies to the register after loading the port.
pub const MASK: [u8; 4] = [0xff, 0xff, 0, 0];

/// The bitwise xor that writes `kind` and the magic byte.
pub const fn xor(kind: u8) -> [u8; 4] {
    [0, 0, kind, MAGIC]
}

/// The protocol, destination port and representative TCP flags a sensor mark says.
pub fn decode(mark: u32) -> Option<(Proto, u16, u8)> {
    let b = mark.to_ne_bytes();
    if b[3] != MAGIC {
        return None;
    }
    let port = u16::from_be_bytes([b[0], b[1]]);
    match b[2] {
        kind::SYN => Some((Proto::Tcp, port, tcp_flag::SYN)),
        kind::STEALTH => Some((Proto::Tcp, port, tcp_flag::FIN)),
        kind::ACK => Some((Proto::Tcp, port, tcp_flag::ACK)),
        kind::UDP => Some((Proto::Udp, port, 0)),
        kind::SCTP => Some((Proto::Sctp, port, 0)),
        _ => None,
    }
}

/// The observation of an IPv6 packet `b` (at least its fixed header) whose transport header the
/// copy range cut, from its sensor `mark`; `None` if the mark is not one.
pub fn observation(b: &[u8], mark: u32) -> Option<Observation> {
    use field::ipv6;
    let (proto, dst_port, tcp_flags) = decode(mark)?;
    let h = b.get(..ipv6::HEADER_LEN)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let addr = |f: field::Field| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&h[f]);
        IpAddr::V6(Ipv6Addr::from(a))
    };
    Some(Observation {
        src: addr(ipv6::SRC_ADDR),
        dst: addr(ipv6::DST_ADDR),
        proto,
        src_port: 0,
        dst_port,
        tcp_flags,
        ifindex: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{parse, Ignored};

    /// The mark the kernel would set for `port` and `kind`: the register bytes as the host's u32.
    fn kernel_mark(port: u16, kind: u8) -> u32 {
        let mut reg = [0u8; 4];
        reg[..2].copy_from_slice(&port.to_be_bytes());
        for i in 0..4 {
            reg[i] = (reg[i] & MASK[i]) ^ xor(kind)[i];
        }
        u32::from_ne_bytes(reg)
    }

    /// Real SYNs behind a 256-byte Destination Options header (fixtures/pcap/v6-syns.py),
    /// captured with a 128-byte snap length as the queue copies them: cut before the TCP header,
    /// and read from the mark.
    #[test]
    fn real_cut_probes_are_read_from_their_mark() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/pcap/");
        let bytes = std::fs::read(format!("{root}v6-dstopts-syn.pcap")).unwrap();
        let scanner: IpAddr = "2001:db8::2".parse().unwrap();
        let mut seen = 0u16;
        for frame in crate::pcap::frames(&bytes).unwrap() {
            let frame = frame.unwrap();
            let Some(ip) = frame.ip() else { continue };
            let from_scanner = ip.get(field::ipv6::SRC_ADDR)
                == Some(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2][..]);
            if !from_scanner || ip[field::ipv6::NXT_HDR] != crate::inet::ipproto::DSTOPTS {
                continue;
            }
            assert_eq!(parse(ip), Err(Ignored::Truncated));
            let port = 20 + seen;
            let o = observation(ip, kernel_mark(port, kind::SYN)).unwrap();
            assert_eq!((o.src, o.proto, o.dst_port), (scanner, Proto::Tcp, port));
            assert_eq!(o.dst, "2001:db8::1".parse::<IpAddr>().unwrap());
            seen += 1;
        }
        assert_eq!(seen, 10);
    }

    #[test]
    fn a_cut_probe_is_read_from_its_mark() {
        // IPv6, destination options of 256 bytes, then TCP: cut at 128 bytes.
        let mut p = vec![0x60, 0, 0, 0, 1, 20, 60, 64];
        p.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&[6, 31]);
        p.resize(128, 0);
        assert_eq!(parse(&p), Err(Ignored::Truncated));
        let o = observation(&p, kernel_mark(8443, kind::SYN)).unwrap();
        assert_eq!((o.proto, o.dst_port, o.tcp_flags), (Proto::Tcp, 8443, 0x02));
        assert_eq!(o.src, "2001:db8::2".parse::<IpAddr>().unwrap());
        let o = observation(&p, kernel_mark(161, kind::UDP)).unwrap();
        assert_eq!((o.proto, o.dst_port), (Proto::Udp, 161));
        // Any other mark says nothing.
        assert_eq!(observation(&p, 0x1000_0000), None);
        assert_eq!(observation(&p, kernel_mark(22, 9)), None);
        assert_eq!(observation(&p[..39], kernel_mark(22, kind::SYN)), None);
    }
}
