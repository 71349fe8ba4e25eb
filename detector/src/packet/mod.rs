//! Reading the headers of a queued packet into an `Observation`: IPv4 (with options), IPv6 (through
//! its whole extension header chain), then TCP or UDP ports and TCP flags, the SCTP port of an INIT
//! or COOKIE ECHO, or for any other protocol the protocol number itself. The bytes start at the IP
//! header, possibly cut to the queue's copy range; a probe whose transport header lies past it
//! is read from what the sensor rule wrote into the packet mark ([`sensor_mark`]).
//!
//! Contract: `parse` never panics and never allocates, whatever the bytes; anything it cannot
//! or should not read comes back as a typed `Ignored` reason. Every index is checked with `get`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub mod reply;
pub mod sensor_mark;

/// Transport protocols scanban counts. `Ip` is a probe of an IP protocol itself (nmap -sO): its
/// "port" is the protocol number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
    Ip,
}

impl Proto {
    pub const ALL: [Proto; 4] = [Proto::Tcp, Proto::Udp, Proto::Sctp, Proto::Ip];

    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
            Proto::Ip => "ip",
        }
    }

    /// A small number per protocol, for compact port keys (`Proto::ALL` order).
    pub fn index(self) -> u32 {
        self as u32
    }

    /// The protocol of `index` (`Tcp` for an unknown one).
    pub fn from_index(index: u32) -> Proto {
        Proto::ALL
            .get(index as usize)
            .copied()
            .unwrap_or(Proto::Tcp)
    }
}

/// Why a packet was not turned into an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// Shorter than the headers it announces.
    Truncated,
    /// Not IPv4 or IPv6, or a header that contradicts itself.
    Malformed,
    /// A fragment other than the first: it carries no ports.
    Fragment,
    /// Not a probe of a port or protocol: ICMP, ICMPv6, or an SCTP packet other than INIT or
    /// COOKIE ECHO.
    OtherProtocol,
    /// Source never tracked: loopback, unspecified, multicast, link-local or allowlisted.
    Allowlisted,
}

impl Ignored {
    pub const ALL: [Ignored; 5] = [
        Ignored::Truncated,
        Ignored::Malformed,
        Ignored::Fragment,
        Ignored::OtherProtocol,
        Ignored::Allowlisted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Ignored::Truncated => "truncated",
            Ignored::Malformed => "malformed",
            Ignored::Fragment => "fragment",
            Ignored::OtherProtocol => "other_protocol",
            Ignored::Allowlisted => "allowlisted",
        }
    }
}

/// One probe as the detector sees it: the header fields it needs, and the interface it came in
/// on when the caller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: Proto,
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte (`inet::tcp_flag` bits); 0 for the other protocols.
    pub tcp_flags: u8,
    /// Input interface index, when known.
    pub ifindex: Option<u32>,
}

pub mod field;

use crate::inet::ipproto;

/// The big-endian u16 at `f` of `b`; callers pass a slice their header length already checked.
fn be16(b: &[u8], f: field::Field) -> u16 {
    u16::from_be_bytes([b[f.start], b[f.start + 1]])
}

/// The `N` bytes at `f` of `b` (a checked header, as for `be16`).
fn bytes<const N: usize>(b: &[u8], f: field::Field) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[f]);
    out
}

/// The network layer of a packet, as [`network`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The transport protocol number (`inet::ipproto`), after any IPv6 extension headers.
    pub protocol: u8,
    /// The bytes from the transport header on, as far as the copy range reaches.
    pub transport: &'a [u8],
}

/// Parses the IP and transport headers at the start of `b`.
pub fn parse(b: &[u8]) -> Result<Observation, Ignored> {
    transport(&network(b)?)
}

/// Whether `b` is TCP with none of SYN, RST and ACK (a NULL, FIN or Xmas probe): no connection
/// sends such a segment, so one a router forwards is a probe itself, not an answer. An IPv6
/// packet whose TCP header the copy range cut is one if its sensor `mark` says so (the forward
/// sensor's twin rule matched it in the kernel: `sensor_mark`).
pub fn is_stealth_tcp(b: &[u8], mark: Option<u32>) -> bool {
    use crate::inet::tcp_flag::{ACK, RST, SYN};
    let stealth = |o: Observation| o.proto == Proto::Tcp && o.tcp_flags & (SYN | RST | ACK) == 0;
    match parse(b) {
        Ok(o) => stealth(o),
        Err(Ignored::Truncated) => mark
            .and_then(|m| sensor_mark::observation(b, m))
            .is_some_and(stealth),
        Err(_) => false,
    }
}

/// The network layer of a packet: addresses, transport protocol and the transport header bytes
/// (after IPv6 extension headers). Errors as `parse`.
pub fn network(b: &[u8]) -> Result<Network<'_>, Ignored> {
    match b.first().map(|v| v >> 4) {
        Some(4) => network_v4(b),
        Some(6) => network_v6(b),
        Some(_) => Err(Ignored::Malformed),
        None => Err(Ignored::Truncated),
    }
}

fn network_v4(b: &[u8]) -> Result<Network<'_>, Ignored> {
    use field::ipv4::*;
    let h = b.get(..HEADER_LEN).ok_or(Ignored::Truncated)?;
    let ihl = usize::from(h[VER_IHL] & 0x0f) * 4;
    if ihl < HEADER_LEN {
        return Err(Ignored::Malformed);
    }
    if be16(h, FLG_OFF) & FRAG_OFFSET_MASK != 0 {
        return Err(Ignored::Fragment);
    }
    Ok(Network {
        src: IpAddr::V4(Ipv4Addr::from(bytes::<4>(h, SRC_ADDR))),
        dst: IpAddr::V4(Ipv4Addr::from(bytes::<4>(h, DST_ADDR))),
        protocol: h[PROTOCOL],
        transport: b.get(ihl..).ok_or(Ignored::Truncated)?,
    })
}

fn network_v6(b: &[u8]) -> Result<Network<'_>, Ignored> {
    use field::{ext, ipv6};
    let h = b.get(..ipv6::HEADER_LEN).ok_or(Ignored::Truncated)?;
    let src = IpAddr::V6(Ipv6Addr::from(bytes::<16>(h, ipv6::SRC_ADDR)));
    let dst = IpAddr::V6(Ipv6Addr::from(bytes::<16>(h, ipv6::DST_ADDR)));
    let mut next = h[ipv6::NXT_HDR];
    let mut at = ipv6::HEADER_LEN;
    // The whole chain, however long: every header moves `at` forward by 8 bytes or more, so the
    // walk ends at the end of the bytes (Truncated) at the latest; no count a scanner can exceed.
    loop {
        match next {
            ipproto::HOPOPTS
            | ipproto::ROUTING
            | ipproto::DSTOPTS
            | ipproto::MOBILITY
            | ipproto::HIP
            | ipproto::SHIM6 => {
                let e = b.get(at..at + ext::MIN_LEN).ok_or(Ignored::Truncated)?;
                next = e[ext::NXT_HDR];
                at += (usize::from(e[ext::LENGTH]) + 1) * 8;
            }
            ipproto::AH => {
                let e = b.get(at..at + ext::MIN_LEN).ok_or(Ignored::Truncated)?;
                next = e[ext::NXT_HDR];
                at += (usize::from(e[ext::LENGTH]) + 2) * 4;
            }
            ipproto::FRAGMENT => {
                let e = b.get(at..at + ext::FRAG_LEN).ok_or(Ignored::Truncated)?;
                if be16(e, ext::FRAG_OFFSET) & ext::FRAG_OFFSET_MASK != 0 {
                    return Err(Ignored::Fragment);
                }
                next = e[ext::NXT_HDR];
                at += ext::FRAG_LEN;
            }
            _ => {
                let transport = b.get(at..).ok_or(Ignored::Truncated)?;
                return Ok(Network {
                    src,
                    dst,
                    protocol: next,
                    transport,
                });
            }
        }
    }
}

fn transport(n: &Network<'_>) -> Result<Observation, Ignored> {
    use field::{sctp, tcp, udp};
    let obs = |proto, src_port, dst_port, tcp_flags| Observation {
        src: n.src,
        dst: n.dst,
        proto,
        src_port,
        dst_port,
        tcp_flags,
        ifindex: None,
    };
    // Whole headers only: a probe cut short or with an impossible length field is not a
    // connection attempt a host would answer, and counting it would let a forger ban a
    // bystander with junk.
    match n.protocol {
        ipproto::TCP => {
            let t = n
                .transport
                .get(..tcp::HEADER_LEN)
                .ok_or(Ignored::Truncated)?;
            if usize::from(t[tcp::DATA_OFF] >> 4) * 4 < tcp::HEADER_LEN {
                return Err(Ignored::Malformed);
            }
            let (sp, dp) = (be16(t, tcp::SRC_PORT), be16(t, tcp::DST_PORT));
            Ok(obs(Proto::Tcp, sp, dp, t[tcp::FLAGS]))
        }
        ipproto::UDP => {
            let t = n
                .transport
                .get(..udp::HEADER_LEN)
                .ok_or(Ignored::Truncated)?;
            if usize::from(be16(t, udp::LENGTH)) < udp::HEADER_LEN {
                return Err(Ignored::Malformed);
            }
            let (sp, dp) = (be16(t, udp::SRC_PORT), be16(t, udp::DST_PORT));
            Ok(obs(Proto::Udp, sp, dp, 0))
        }
        ipproto::SCTP => {
            // The common header and the first chunk's header: INIT opens an association (nmap
            // -sY), COOKIE ECHO completes one the host never offered (-sZ); anything else is a
            // packet of an association, not a probe.
            let t = n
                .transport
                .get(..sctp::HEADER_LEN)
                .ok_or(Ignored::Truncated)?;
            if !matches!(t[sctp::CHUNK_TYPE], sctp::INIT | sctp::COOKIE_ECHO) {
                return Err(Ignored::OtherProtocol);
            }
            let (sp, dp) = (be16(t, sctp::SRC_PORT), be16(t, sctp::DST_PORT));
            Ok(obs(Proto::Sctp, sp, dp, 0))
        }
        // Echo requests and errors are how hosts talk about the network, never a probe of a
        // service.
        ipproto::ICMP | ipproto::ICMPV6 => Err(Ignored::OtherProtocol),
        // Any other protocol reaching the sensor is one the host was asked whether it speaks
        // (nmap -sO): the protocol number is the "port".
        p => Ok(obs(Proto::Ip, 0, u16::from(p), 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45,
            0,
            0,
            0,
            0,
            0,
            (frag >> 8) as u8,
            frag as u8,
            64,
            proto,
            0,
            0,
        ];
        p.extend_from_slice(&[192, 0, 2, 2, 192, 0, 2, 1]);
        p.extend_from_slice(l4);
        p
    }

    fn tcp(dport: u16, flags: u8) -> Vec<u8> {
        let mut t = vec![0xc3, 0x50];
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&[0; 8]);
        t.push(0x50); // data offset: 5 words
        t.push(flags);
        t.extend_from_slice(&[0; 6]);
        t
    }

    #[test]
    fn ipv4_tcp_and_udp() {
        let h = parse(&v4(6, 0x4000, &tcp(22, 0x02))).unwrap();
        assert_eq!(h.proto, Proto::Tcp);
        assert_eq!((h.src_port, h.dst_port, h.tcp_flags), (50000, 22, 0x02));
        assert_eq!(h.src, "192.0.2.2".parse::<IpAddr>().unwrap());
        let h = parse(&v4(17, 0, &[0, 53, 0, 161, 0, 8, 0, 0])).unwrap();
        assert_eq!((h.proto, h.dst_port, h.tcp_flags), (Proto::Udp, 161, 0));
    }

    #[test]
    fn ipv4_options_fragments_and_truncation() {
        let mut p = v4(6, 0, &[]);
        p[0] = 0x46; // 24-byte header
        p.extend_from_slice(&[1, 1, 1, 1]);
        p.extend_from_slice(&tcp(80, 0x02));
        assert_eq!(parse(&p).unwrap().dst_port, 80);
        assert_eq!(parse(&v4(6, 0x0010, &tcp(80, 2))), Err(Ignored::Fragment));
        assert_eq!(
            parse(&v4(6, 0x2000, &tcp(80, 2))).unwrap().dst_port,
            80,
            "first fragment"
        );
        assert_eq!(parse(&v4(6, 0, &tcp(80, 2)[..10])), Err(Ignored::Truncated));
        assert_eq!(parse(&v4(1, 0, &[8, 0, 0, 0])), Err(Ignored::OtherProtocol));
        let gre = parse(&v4(47, 0, &[0, 0, 8, 0])).unwrap();
        assert_eq!((gre.proto, gre.dst_port), (Proto::Ip, 47), "nmap -sO");
        let mut bad = v4(6, 0, &tcp(80, 2));
        bad[0] = 0x43;
        assert_eq!(parse(&bad), Err(Ignored::Malformed));
        assert_eq!(parse(&[]), Err(Ignored::Truncated));
    }

    #[test]
    fn cut_or_impossible_transport_headers_are_not_probes() {
        // TCP: fewer than 20 bytes, or a data offset below 5 words.
        assert_eq!(parse(&v4(6, 0, &tcp(80, 2)[..19])), Err(Ignored::Truncated));
        let mut short_doff = tcp(80, 2);
        short_doff[12] = 0x20;
        assert_eq!(parse(&v4(6, 0, &short_doff)), Err(Ignored::Malformed));
        // UDP: fewer than 8 bytes, or a length below the header's own.
        assert_eq!(parse(&v4(17, 0, &[0, 53, 0, 161])), Err(Ignored::Truncated));
        assert_eq!(
            parse(&v4(17, 0, &[0, 53, 0, 161, 0, 4, 0, 0])),
            Err(Ignored::Malformed)
        );
    }

    fn v6(next: u8, ext: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        p.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(ext);
        p
    }

    #[test]
    fn ipv6_through_extension_headers() {
        let h = parse(&v6(6, &tcp(443, 0x29))).unwrap();
        assert_eq!((h.dst_port, h.tcp_flags), (443, 0x29));
        assert!(h.src.is_ipv6(), "never read as IPv4");
        // hop-by-hop (8 bytes) -> destination options (16 bytes) -> UDP
        let mut ext = vec![60, 0, 0, 0, 0, 0, 0, 0, 17, 1];
        ext.extend_from_slice(&[0; 14]);
        ext.extend_from_slice(&[0, 1, 0, 53, 0, 8, 0, 0]);
        let h = parse(&v6(0, &ext)).unwrap();
        assert_eq!((h.proto, h.dst_port), (Proto::Udp, 53));
        // fragment header: first fragment is read, later ones are not
        let mut first = vec![6, 0, 0, 1, 0, 0, 0, 1];
        first.extend_from_slice(&tcp(25, 2));
        assert_eq!(parse(&v6(44, &first)).unwrap().dst_port, 25);
        let later = [6, 0, 0x05, 0x01, 0, 0, 0, 1];
        assert_eq!(parse(&v6(44, &later)), Err(Ignored::Fragment));
        // an extension header that runs past the copy range
        assert_eq!(parse(&v6(0, &[6, 200])), Err(Ignored::Truncated));
        // ESP hides the transport header: a probe of protocol 50 itself
        let esp = parse(&v6(50, &[0; 8])).unwrap();
        assert_eq!((esp.proto, esp.dst_port), (Proto::Ip, 50));
        // ICMPv6 is never a probe
        assert_eq!(parse(&v6(58, &[128, 0, 0, 0])), Err(Ignored::OtherProtocol));
        // a chain of hop-by-hop headers that runs to the end of the bytes
        let endless: Vec<u8> = std::iter::repeat([0u8, 0, 0, 0, 0, 0, 0, 0])
            .take(20)
            .flatten()
            .collect();
        assert_eq!(parse(&v6(0, &endless)), Err(Ignored::Truncated));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x2545_f491u32;
        let mut buf = [0u8; 96];
        for round in 0..20_000 {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            buf[0] = if round % 2 == 0 { 0x45 } else { 0x60 } | (buf[0] & 0x0f);
            let len = (state as usize) % buf.len();
            let _ = parse(&buf[..len]);
        }
    }
}
