//! Router mode: reading an ANSWER into the observation of the probe it answers. A router has no
//! socket for the hosts behind it, so it cannot tell a closed port of theirs itself; their
//! answers can: a TCP RST in a connection's reply direction, or an ICMP/ICMPv6 destination
//! unreachable (port, protocol, address/host, administratively prohibited) quoting the probe.
//! The router's own host/address unreachable (neighbour resolution failed for an unassigned
//! address of a routed prefix) is one too.
//!
//! The observation is the probe's: `src` the scanner (the RST's destination, the quoted
//! packet's source), `dst` the probed host, `dst_port` the probed port, `tcp_flags` a flag set
//! that gives the probe's kind its weight (`ProbeKind::of`):
//! - RST+ACK answers a SYN, NULL, FIN or Xmas probe: counted as a SYN (full weight by port);
//!   a RST without ACK answers an ACK-family probe (ACK, Window, Maimon): counted as an ACK
//!   (`weight-ack`);
//! - a port/protocol unreachable or admin-prohibited counts as the quoted probe itself (its
//!   TCP flags when quoted, else a SYN; UDP and SCTP by port; another protocol by number,
//!   as -sO probes count);
//! - a host/address unreachable says the probed ADDRESS is unassigned, whatever the port: an
//!   address sweep of one port hits one port on many addresses, so each distinct unassigned
//!   address counts as a distinct "port" (`ProbeKind::UnassignedAddress`, `weight-stealth`:
//!   the router's ICMP rate limit lets six such answers per scanner through at once, so the
//!   ban must come within six), keyed `ADDRESS_PORT | the address's low 15 bits` under
//!   `Proto::Ip` (a routed /24 or even /17 maps one-to-one; never a protocol number, which
//!   stays below 256); evidence shows it as `ip/32768` and up.
//!
//! Same contract as `parse`: never panics, never allocates, typed `Ignored` reasons.

use std::net::IpAddr;

use super::field::{icmp, tcp};
use super::{be16, network, transport, Ignored, Observation, Proto};
use crate::inet::ipproto;
use crate::inet::tcp_flag::{ACK, RST, SYN};

/// The flag bit of an unassigned-address "port" (see the module doc).
pub const ADDRESS_PORT: u16 = 0x8000;

/// The "port" an unassigned address counts as.
pub fn address_port(addr: &IpAddr) -> u16 {
    let low = match addr {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => u128::from(*a) as u32,
    };
    ADDRESS_PORT | (low as u16 & !ADDRESS_PORT)
}

/// Parses an answer (from its IP header) into the observation of the probe it answers.
/// `OtherProtocol`: not an answer scanban counts (a RST-less TCP segment, another ICMP type or
/// code).
pub fn parse(b: &[u8]) -> Result<Observation, Ignored> {
    let n = network(b)?;
    match (n.protocol, n.src) {
        (ipproto::TCP, _) => {
            let t = n
                .transport
                .get(..tcp::HEADER_LEN)
                .ok_or(Ignored::Truncated)?;
            let flags = t[tcp::FLAGS];
            if flags & RST == 0 {
                return Err(Ignored::OtherProtocol);
            }
            // The probe's kind from the answer's ACK bit (RFC 9293 3.10.7.1: a closed port
            // answers a segment with ACK by a bare RST, any other by RST+ACK).
            let probe_flags = if flags & ACK != 0 { SYN } else { ACK };
            Ok(Observation {
                src: n.dst,
                dst: n.src,
                proto: Proto::Tcp,
                src_port: be16(t, tcp::DST_PORT),
                dst_port: be16(t, tcp::SRC_PORT),
                tcp_flags: probe_flags,
                ifindex: None,
            })
        }
        (ipproto::ICMP, IpAddr::V4(_)) => {
            let h = n.transport.get(..icmp::QUOTE).ok_or(Ignored::Truncated)?;
            let (ty, code) = (h[icmp::TYPE.start], h[icmp::CODE.start]);
            let unassigned = match (ty, code) {
                (icmp::V4_UNREACH, icmp::V4_HOST) => true,
                (icmp::V4_UNREACH, icmp::V4_PORT | icmp::V4_PROTOCOL | icmp::V4_ADMIN) => false,
                _ => return Err(Ignored::OtherProtocol),
            };
            quoted(&n.transport[icmp::QUOTE..], unassigned)
        }
        (ipproto::ICMPV6, IpAddr::V6(_)) => {
            let h = n.transport.get(..icmp::QUOTE).ok_or(Ignored::Truncated)?;
            let (ty, code) = (h[icmp::TYPE.start], h[icmp::CODE.start]);
            let unassigned = match (ty, code) {
                (icmp::V6_UNREACH, icmp::V6_ADDRESS) => true,
                (icmp::V6_UNREACH, icmp::V6_PORT | icmp::V6_ADMIN) => false,
                _ => return Err(Ignored::OtherProtocol),
            };
            quoted(&n.transport[icmp::QUOTE..], unassigned)
        }
        _ => Err(Ignored::OtherProtocol),
    }
}

/// The probe an ICMP error quotes. ICMP guarantees the inner IP header and 8 bytes past it
/// (RFC 792; ICMPv6 as much as fits), enough for the ports of TCP, UDP and SCTP but not the
/// TCP flags or the SCTP chunk: those are read when quoted, else a SYN / any chunk.
fn quoted(inner: &[u8], unassigned: bool) -> Result<Observation, Ignored> {
    let n = network(inner)?;
    let mut obs = match transport(&n) {
        Ok(obs) => obs,
        // Cut short or an SCTP chunk other than INIT (or not quoted): the ports are enough.
        Err(Ignored::Truncated | Ignored::OtherProtocol | Ignored::Malformed)
            if matches!(n.protocol, ipproto::TCP | ipproto::UDP | ipproto::SCTP) =>
        {
            let t = n.transport.get(..4).ok_or(Ignored::Truncated)?;
            let proto = match n.protocol {
                ipproto::TCP => Proto::Tcp,
                ipproto::UDP => Proto::Udp,
                _ => Proto::Sctp,
            };
            let flags = match proto {
                Proto::Tcp => n.transport.get(tcp::FLAGS).copied().unwrap_or(SYN),
                _ => 0,
            };
            Observation {
                src: n.src,
                dst: n.dst,
                proto,
                src_port: u16::from_be_bytes([t[0], t[1]]),
                dst_port: u16::from_be_bytes([t[2], t[3]]),
                tcp_flags: flags,
                ifindex: None,
            }
        }
        // An error about an ICMP message (an echo to an unassigned address) is not a probe of
        // a port, but the address still says something in a sweep.
        Err(Ignored::OtherProtocol) if unassigned => Observation {
            src: n.src,
            dst: n.dst,
            proto: Proto::Ip,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
            ifindex: None,
        },
        Err(e) => return Err(e),
    };
    if unassigned {
        obs.proto = Proto::Ip;
        obs.src_port = 0;
        obs.dst_port = address_port(&obs.dst);
        obs.tcp_flags = 0;
    }
    Ok(obs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap;
    use crate::probe::ProbeKind;
    use crate::{Config, Detector, Outcome};

    /// The answers of a capture in `fixtures/pcap` (`record-router.sh`), parsed; frames that are
    /// no answer (neighbour discovery, a SYN+ACK of the open port) come back as errors.
    fn answers(file: &str) -> Vec<Result<Observation, Ignored>> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/pcap/");
        let bytes = std::fs::read(format!("{root}{file}")).unwrap();
        pcap::frames(&bytes)
            .unwrap()
            .filter_map(|f| f.unwrap().ip().map(parse))
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rst_ack_of_a_host_behind_is_the_syn_it_answers() {
        let all = answers("router-sS.pcap");
        let obs: Vec<Observation> = all.iter().filter_map(|r| r.ok()).collect();
        // nmap -sS -p 20-30,8080: eleven closed ports answer RST+ACK, 8080 a SYN+ACK.
        let mut ports: Vec<u16> = obs.iter().map(|o| o.dst_port).collect();
        ports.sort_unstable();
        assert_eq!(ports, (20..=30).collect::<Vec<u16>>());
        for o in &obs {
            assert_eq!((o.src, o.dst), (ip("192.0.2.2"), ip("198.51.100.10")));
            assert_eq!(ProbeKind::of(o), ProbeKind::Syn, "{o:?}");
        }
        assert!(all.contains(&Err(Ignored::OtherProtocol)), "the SYN+ACK");
    }

    #[test]
    fn bare_rst_is_an_ack_probe_and_weighs_as_one() {
        let obs: Vec<Observation> = answers("router-sA.pcap")
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(obs.len(), 11, "-sA -p 20-30");
        let c = Config::default();
        for o in &obs {
            assert_eq!(o.src, ip("192.0.2.2"));
            assert_eq!(ProbeKind::of(o), ProbeKind::Ack);
            assert_eq!(ProbeKind::of(o).weight(o.dst_port, &c), c.weight_ack);
        }
    }

    #[test]
    fn port_unreachable_is_the_udp_probe_it_quotes() {
        let obs: Vec<Observation> = answers("router-sU.pcap")
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        // The inside host's ICMP rate limit lets six of eleven answers out.
        assert_eq!(obs.len(), 6);
        for o in &obs {
            assert_eq!((o.src, o.dst), (ip("192.0.2.2"), ip("198.51.100.10")));
            assert_eq!(o.proto, Proto::Udp);
            assert!((50..=60).contains(&o.dst_port), "{o:?}");
        }
    }

    #[test]
    fn ipv6_rst_ack_is_the_syn_it_answers() {
        let obs: Vec<Observation> = answers("router-6-sS.pcap")
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(obs.len(), 11);
        for o in &obs {
            assert_eq!((o.src, o.dst), (ip("2001:db8:1::2"), ip("2001:db8:2::10")));
            assert_eq!(ProbeKind::of(o), ProbeKind::Syn);
        }
    }

    #[test]
    fn host_unreachables_of_a_sweep_count_each_address_once() {
        let obs: Vec<Observation> = answers("router-sweep.pcap")
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        assert!(obs.len() >= 6, "{obs:?}");
        let mut ports = Vec::new();
        for o in &obs {
            assert_eq!(o.src, ip("192.0.2.2"));
            assert_eq!(o.proto, Proto::Ip);
            assert_eq!(o.dst_port, address_port(&o.dst));
            assert!(o.dst_port > 255, "never a protocol number");
            ports.push(o.dst_port);
        }
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), obs.len(), "one port per address");
        // Through a detector with the default policy: the capture holds the router's first
        // six answers (its ICMP rate limit lets a burst of six through, then one a second);
        // three distinct unassigned addresses (`weight-stealth` 7 each) reach 21.
        let c = Config::default();
        assert_eq!(ProbeKind::of(&obs[0]), ProbeKind::UnassignedAddress);
        assert_eq!(
            ProbeKind::of(&obs[0]).weight(obs[0].dst_port, &c),
            c.weight_stealth
        );
        let mut d = Detector::new(c, 1);
        let outcomes: Vec<Outcome> = obs.iter().map(|o| d.observe(0, o)).collect();
        assert_eq!(outcomes[2], Outcome::Banned, "{outcomes:?}");
    }

    #[test]
    fn what_is_no_answer_is_ignored() {
        // Any probe read as an answer: a SYN has no RST, an echo request is no error.
        let syn = [
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 2, 198, 51, 100, 10, 0xc3, 0x50,
            0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(parse(&syn), Err(Ignored::OtherProtocol));
        let mut echo = syn;
        echo[9] = 1;
        echo[20] = 8;
        assert_eq!(parse(&echo), Err(Ignored::OtherProtocol));
        // A port unreachable cut before the quoted header.
        let mut cut = syn[..28].to_vec();
        cut[9] = 1;
        cut[20] = 3;
        cut[21] = 3;
        assert_eq!(parse(&cut), Err(Ignored::Truncated));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x9e37_79b9u32;
        let mut buf = [0u8; 128];
        for round in 0..20_000 {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            buf[0] = if round % 2 == 0 { 0x45 } else { 0x60 } | (buf[0] & 0x0f);
            // ICMP/ICMPv6 destination unreachable with a quoted header, half the time.
            if round % 4 < 2 {
                let (proto_at, l4) = if round % 2 == 0 { (9, 20) } else { (6, 40) };
                buf[proto_at] = if round % 2 == 0 { 1 } else { 58 };
                buf[l4] = if round % 2 == 0 { 3 } else { 1 };
                buf[l4 + 8] = if round % 2 == 0 { 0x45 } else { 0x60 };
            }
            let len = (state as usize) % buf.len();
            let _ = parse(&buf[..len]);
        }
    }
}
