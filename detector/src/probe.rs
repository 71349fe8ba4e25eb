//! What kind of probe an observation is, and what it weighs. nmap's scan types map onto kinds:
//! -sS/-sT SYN, -sA/-sW ACK, -sM FIN+ACK (Maimon), -sN NULL, -sF FIN, -sX XMAS, -sU UDP,
//! -sY/-sZ SCTP, -sO IP protocol.
//!
//! Weights are per kind (`Config`): connection attempts weigh by port (privileged more); the
//! flag combinations no client sends weigh `weight_stealth`; ACK-family probes weigh
//! `weight_ack`, low, because a host also sees the odd late ACK or FIN of a connection whose
//! state expired (that is one port, and distinct ports decide); SCTP and IP-protocol probes have
//! their own weights.

use crate::config::Config;
use crate::evidence::stealth;
use crate::inet::tcp_flag::{ACK, CLASSIC, FIN, PSH, RST, SYN, URG};
use crate::packet::{Observation, Proto};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// SYN without ACK: a connection attempt (-sS, -sT).
    Syn,
    /// ACK without SYN, FIN or RST (-sA, -sW; also a late ACK of an expired connection).
    Ack,
    /// FIN+ACK (-sM; also a late FIN of an expired connection).
    FinAck,
    Null,
    Fin,
    Xmas,
    SynFin,
    SynRst,
    /// Any other TCP flag combination (SYN+ACK, RST: answers, not probes of this host; PSH or URG
    /// alone). Weighs by port, as before kinds existed.
    OtherTcp,
    Udp,
    /// SCTP INIT or COOKIE ECHO.
    Sctp,
    /// A packet of an IP protocol the host was asked whether it speaks (-sO).
    IpProtocol,
    /// Router mode: a probe of an address of a routed prefix that no host holds (the router's
    /// host/address unreachable, `packet::reply`): its "port" is the address
    /// (`reply::address_port`). Weighs `weight_stealth`: no client tries several addresses
    /// nobody holds, and the router's ICMP rate limit lets only a burst of six such answers
    /// per scanner through (then one a second), so a fast sweep must be caught within six.
    UnassignedAddress,
}

impl ProbeKind {
    pub fn of(obs: &Observation) -> ProbeKind {
        match obs.proto {
            Proto::Udp => return ProbeKind::Udp,
            Proto::Sctp => return ProbeKind::Sctp,
            Proto::Ip if obs.dst_port & crate::packet::reply::ADDRESS_PORT != 0 => {
                return ProbeKind::UnassignedAddress
            }
            Proto::Ip => return ProbeKind::IpProtocol,
            Proto::Tcp => {}
        }
        let f = obs.tcp_flags & CLASSIC;
        if f & SYN != 0 && f & FIN != 0 {
            ProbeKind::SynFin
        } else if f & SYN != 0 && f & RST != 0 {
            ProbeKind::SynRst
        } else if f & (SYN | ACK) == SYN {
            ProbeKind::Syn
        } else if f & (SYN | RST) != 0 {
            ProbeKind::OtherTcp
        } else if f & ACK != 0 {
            if f & FIN != 0 {
                ProbeKind::FinAck
            } else {
                ProbeKind::Ack
            }
        } else if f == 0 {
            ProbeKind::Null
        } else if f & (FIN | PSH | URG) == FIN | PSH | URG {
            ProbeKind::Xmas
        } else if f & FIN != 0 {
            ProbeKind::Fin
        } else {
            ProbeKind::OtherTcp
        }
    }

    /// The score a new (distinct) port or protocol of this kind adds.
    pub fn weight(self, port: u16, c: &Config) -> u32 {
        match self {
            ProbeKind::Syn | ProbeKind::OtherTcp | ProbeKind::Udp => {
                if port < 1024 {
                    c.weight_privileged
                } else {
                    c.weight_other
                }
            }
            ProbeKind::Null
            | ProbeKind::Fin
            | ProbeKind::Xmas
            | ProbeKind::SynFin
            | ProbeKind::SynRst
            | ProbeKind::UnassignedAddress => c.weight_stealth,
            ProbeKind::Ack | ProbeKind::FinAck => c.weight_ack,
            ProbeKind::Sctp => c.weight_sctp,
            ProbeKind::IpProtocol => c.weight_protocol,
        }
    }

    /// The evidence bit of this kind (`evidence::stealth`), 0 for the plain kinds.
    pub fn evidence_bit(self) -> u8 {
        match self {
            ProbeKind::Null => stealth::NULL,
            ProbeKind::Fin => stealth::FIN,
            ProbeKind::Xmas => stealth::XMAS,
            ProbeKind::SynFin => stealth::SYN_FIN,
            ProbeKind::SynRst => stealth::SYN_RST,
            ProbeKind::Ack => stealth::ACK,
            ProbeKind::FinAck => stealth::FIN_ACK,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse;
    use crate::pcap;

    fn tcp(flags: u8) -> Observation {
        Observation {
            src: "192.0.2.2".parse().unwrap(),
            dst: "192.0.2.1".parse().unwrap(),
            proto: Proto::Tcp,
            src_port: 40000,
            dst_port: 80,
            tcp_flags: flags,
            ifindex: None,
        }
    }

    #[test]
    fn tcp_flag_combinations() {
        let cases = [
            (SYN, ProbeKind::Syn),
            (SYN | 0xc0, ProbeKind::Syn), // ECN setup
            (ACK, ProbeKind::Ack),
            (ACK | PSH, ProbeKind::Ack),
            (FIN | ACK, ProbeKind::FinAck),
            (0, ProbeKind::Null),
            (FIN, ProbeKind::Fin),
            (FIN | PSH | URG, ProbeKind::Xmas),
            (SYN | FIN, ProbeKind::SynFin),
            (SYN | RST, ProbeKind::SynRst),
            (SYN | ACK, ProbeKind::OtherTcp),
            (RST, ProbeKind::OtherTcp),
            (RST | ACK, ProbeKind::OtherTcp),
            (PSH, ProbeKind::OtherTcp),
        ];
        for (flags, kind) in cases {
            assert_eq!(ProbeKind::of(&tcp(flags)), kind, "flags {flags:#04x}");
        }
    }

    #[test]
    fn weights_follow_the_settings() {
        let c = Config {
            weight_privileged: 3,
            weight_other: 1,
            weight_stealth: 7,
            weight_ack: 2,
            weight_sctp: 4,
            weight_protocol: 5,
            ..Config::default()
        };
        assert_eq!(ProbeKind::Syn.weight(22, &c), 3);
        assert_eq!(ProbeKind::Syn.weight(8080, &c), 1);
        assert_eq!(ProbeKind::Udp.weight(53, &c), 3);
        assert_eq!(ProbeKind::Xmas.weight(8080, &c), 7);
        assert_eq!(ProbeKind::Ack.weight(22, &c), 2);
        assert_eq!(ProbeKind::FinAck.weight(8080, &c), 2);
        assert_eq!(ProbeKind::Sctp.weight(80, &c), 4);
        assert_eq!(ProbeKind::IpProtocol.weight(47, &c), 5);
        // A lone stray ACK never bans with the defaults: distinct ports decide.
        let d = Config::default();
        assert!(ProbeKind::Ack.weight(22, &d) < d.threshold);
        assert!(ProbeKind::FinAck.weight(22, &d) < d.threshold);
        assert!(ProbeKind::Ack.weight(22, &d) <= d.weight_privileged);
    }

    /// The scanner's probes of a real capture, through a detector with the default policy: the
    /// distinct ports (or protocols) seen when the ban came, or None.
    fn ports_at_ban(file: &str, only: Proto) -> Option<u32> {
        use crate::{Detector, Outcome};
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/pcap/");
        let bytes = std::fs::read(format!("{root}{file}")).unwrap();
        let mut d = Detector::new(Config::default(), 1);
        let mut distinct = std::collections::BTreeSet::new();
        for frame in pcap::frames(&bytes).unwrap() {
            let frame = frame.unwrap();
            let Some(Ok(obs)) = frame.ip().map(parse) else {
                continue;
            };
            if obs.src != "192.0.2.2".parse::<std::net::IpAddr>().unwrap() || obs.proto != only {
                continue;
            }
            distinct.insert(obs.dst_port);
            if d.observe(frame.time_ms, &obs) == Outcome::Banned {
                return Some(distinct.len() as u32);
            }
        }
        None
    }

    /// With the default weights, real ACK, Window, Maimon, SCTP and IP-protocol scans are
    /// banned after threshold / weight distinct ports or protocols.
    #[test]
    fn real_scans_are_banned_after_threshold_over_weight() {
        let d = Config::default();
        let ack = d.threshold.div_ceil(d.weight_ack);
        assert_eq!(ports_at_ban("nmap-sA.pcap", Proto::Tcp), Some(ack));
        assert_eq!(ports_at_ban("nmap-sW.pcap", Proto::Tcp), Some(ack));
        assert_eq!(ports_at_ban("nmap-sM.pcap", Proto::Tcp), Some(ack));
        let sctp = d.threshold.div_ceil(d.weight_sctp);
        assert_eq!(ports_at_ban("nmap-sY.pcap", Proto::Sctp), Some(sctp));
        assert_eq!(ports_at_ban("nmap-sZ.pcap", Proto::Sctp), Some(sctp));
        let protocols = d.threshold.div_ceil(d.weight_protocol);
        assert_eq!(ports_at_ban("nmap-sO.pcap", Proto::Ip), Some(protocols));
    }

    /// Every probe of each real nmap capture in fixtures/pcap is of the kind its scan type says.
    #[test]
    fn real_captures_classify_as_their_scan_type() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/pcap/");
        let cases = [
            ("nmap-sS.pcap", ProbeKind::Syn),
            ("nmap-sN.pcap", ProbeKind::Null),
            ("nmap-sF.pcap", ProbeKind::Fin),
            ("nmap-sX.pcap", ProbeKind::Xmas),
            ("nmap-sA.pcap", ProbeKind::Ack),
            ("nmap-sW.pcap", ProbeKind::Ack),
            ("nmap-sM.pcap", ProbeKind::FinAck),
            ("nmap-sY.pcap", ProbeKind::Sctp),
            ("nmap-sZ.pcap", ProbeKind::Sctp),
            ("nmap-sO.pcap", ProbeKind::IpProtocol),
        ];
        for (file, kind) in cases {
            let bytes = std::fs::read(format!("{root}{file}")).unwrap();
            let mut seen = 0;
            for frame in pcap::frames(&bytes).unwrap() {
                let frame = frame.unwrap();
                let Some(ip) = frame.ip() else { continue };
                let Ok(obs) = parse(ip) else { continue };
                // The scanner's packets: from the capture's scanner address to the target.
                if obs.src != "192.0.2.2".parse::<std::net::IpAddr>().unwrap() {
                    continue;
                }
                let k = ProbeKind::of(&obs);
                if kind == ProbeKind::IpProtocol && obs.proto != Proto::Ip {
                    continue; // -sO also sends TCP, UDP, SCTP probes for those protocols
                }
                if obs.tcp_flags & (RST | SYN) == RST {
                    continue; // nmap's reset of a half-open connection (-sS on an open port)
                }
                if obs.proto == Proto::Tcp && kind != ProbeKind::Syn && k == ProbeKind::Syn {
                    continue; // nmap's host discovery
                }
                assert_eq!(k, kind, "{file}: {obs:?}");
                seen += 1;
            }
            assert!(seen >= 5, "{file}: {seen} probes");
        }
    }
}
