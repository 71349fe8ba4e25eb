//! Offline replay of a capture: which sources scanban would have banned, after how many probes.
//!
//! A capture holds more than the daemon would see. The kernel sensor queues inbound probes
//! addressed to this host's ports that have no local socket, and that conntrack does not know
//! as part of a connection: TCP packets without RST and other than SYN+ACK (SYN, ACK, FIN+ACK,
//! NULL, FIN, XMAS, ...), UDP, SCTP INIT/COOKIE ECHO, and IP protocols other than TCP, UDP,
//! ICMP and ICMPv6. Replay approximates that:
//! - *this host* is the addresses given, or else every address that answered a probe like a
//!   host does: a SYN-ACK or RST back to a TCP packet without ACK (a scanner's own RSTs
//!   answer SYN-ACKs, so they do not count), or more ICMP/ICMPv6 port-unreachables sent than
//!   received; or else, when nothing in the capture answers (a capture of inbound traffic only,
//!   `tcpdump -Q in`, or one taken behind a firewall that drops the answers), every unicast
//!   address that probes went to and that sent nothing. [`Report::host_source`] says which;
//!   without answers no port is known to be open, so every probe counts;
//! - a port is *open* if this host answered from it with a SYN-ACK (TCP) or sent UDP from it;
//! - a packet is *queued* if it goes to this host, to a port not open, and is one of the kinds
//!   above; a TCP packet with ACK only if this host never answered its flow with anything but a
//!   RST (a live connection has a socket, so the kernel's socket lookup would return it).
//!
//! Once banned, a source's packets stop reaching the sensor until the ban expires, as the
//! prerouting drop would make them. Conntrack state is not modelled (a UDP client's repeats
//! would be "established" to the kernel; here they are repeats, which add nothing anyway).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::inet::ipproto;
use crate::inet::tcp_flag::{ACK, RST, SYN};
use crate::packet::{self, field, Network, Proto};
use crate::pcap::{self, PcapError};
use crate::{Action, Config, Counters, Detector, Evidence, Outcome, SourceKey};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    pub key: SourceKey,
    /// The source's queued probes up to and including the one that triggered the ban.
    pub after_probes: u64,
    /// Capture time of that probe (ms since the epoch).
    pub at_ms: u64,
    pub duration_ms: u64,
    pub evidence: Evidence,
}

/// How replay decided which addresses are this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSource {
    /// The caller gave them (`scanban replay --host ADDR`).
    Given,
    /// The addresses that answered probes as a host does.
    Answers,
    /// Nothing answered: the unicast addresses probes went to that sent nothing themselves.
    InboundProbes,
    /// Neither answers nor silent probe targets: nothing counts.
    NoneFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub frames: u64,
    /// Frames without IPv4/IPv6 (ARP, ...).
    pub not_ip: u64,
    /// Frames the sensor would have queued.
    pub queued: u64,
    pub local: Vec<IpAddr>,
    pub host_source: HostSource,
    pub open_ports: usize,
    pub bans: Vec<BanRecord>,
    /// Queued probes per source that was never banned.
    pub unbanned: Vec<(SourceKey, u64)>,
    pub counters: Counters,
}

/// Replays `file` (pcap or pcapng bytes) through a detector built from `config`.
pub fn run(file: &[u8], config: &Config, local: &[IpAddr]) -> Result<Report, PcapError> {
    let mut report = Report {
        frames: 0,
        not_ip: 0,
        queued: 0,
        local: Vec::new(),
        host_source: HostSource::NoneFound,
        open_ports: 0,
        bans: Vec::new(),
        unbanned: Vec::new(),
        counters: Counters::default(),
    };
    // Pass 1: who is this host, which of its ports are open.
    let mut hosts: BTreeSet<IpAddr> = local.iter().copied().collect();
    let infer = hosts.is_empty();
    let mut open: BTreeSet<(IpAddr, Proto, u16)> = BTreeSet::new();
    let mut udp_senders: Vec<(IpAddr, u16)> = Vec::new();
    // (prober, prober port, target, target port) of TCP packets that can be probes: without
    // ACK, or with ACK but without SYN and RST (nmap -sA/-sW/-sM).
    let mut probes_seen: BTreeSet<(IpAddr, u16, IpAddr, u16)> = BTreeSet::new();
    // (peer, peer port, sender, sender port) of TCP packets other than RST: a live flow seen
    // from the side that sent it.
    let mut live_flows: BTreeSet<(IpAddr, u16, IpAddr, u16)> = BTreeSet::new();
    let mut unreachable_sent: BTreeMap<IpAddr, u32> = BTreeMap::new();
    let mut unreachable_received: BTreeMap<IpAddr, u32> = BTreeMap::new();
    // For captures without answers: where probes went, and who sent anything at all.
    let mut probed: BTreeSet<IpAddr> = BTreeSet::new();
    let mut senders: BTreeSet<IpAddr> = BTreeSet::new();
    for frame in pcap::frames(file)? {
        let frame = frame?;
        let Some(ip) = frame.ip() else { continue };
        let Ok(Network {
            src,
            dst,
            protocol,
            transport: l4,
        }) = packet::network(ip)
        else {
            continue;
        };
        let port = |f: field::Field| u16::from_be_bytes([l4[f.start], l4[f.start + 1]]);
        senders.insert(src);
        match (protocol, l4) {
            (ipproto::TCP, l4) if l4.len() > field::tcp::FLAGS => {
                let flags = l4[field::tcp::FLAGS];
                let sport = port(field::tcp::SRC_PORT);
                let dport = port(field::tcp::DST_PORT);
                let answers_probe = probes_seen.contains(&(dst, dport, src, sport));
                if flags & RST != 0 {
                    // A RST answers a probe to a closed port (with ACK after a SYN, without
                    // after an ACK probe); a scanner's RST to this host's SYN+ACK answers no
                    // probe, so it does not count.
                    if infer && answers_probe {
                        hosts.insert(src);
                    }
                    continue;
                }
                live_flows.insert((dst, dport, src, sport));
                if flags & SYN != 0 && flags & ACK != 0 {
                    open.insert((src, Proto::Tcp, sport));
                    if infer && answers_probe {
                        hosts.insert(src);
                    }
                } else if !answers_probe {
                    // SYN, or ACK without SYN (ACK, Window, Maimon probes or a flow's data).
                    probes_seen.insert((src, sport, dst, dport));
                    probed.insert(dst);
                }
            }
            (ipproto::UDP, l4) if l4.len() >= field::udp::DST_PORT.end => {
                udp_senders.push((src, port(field::udp::SRC_PORT)));
                probed.insert(dst);
            }
            // Port unreachable (ICMP 3/3, ICMPv6 1/4), and protocol unreachable (ICMP 3/2,
            // ICMPv6 parameter problem 4/1: unrecognised next header), which answer SCTP and
            // IP-protocol probes on a host that does not speak the protocol.
            (ipproto::ICMP, [3, 2 | 3, ..]) | (ipproto::ICMPV6, [1, 4, ..] | [4, 1, ..]) => {
                *unreachable_sent.entry(src).or_insert(0) += 1;
                *unreachable_received.entry(dst).or_insert(0) += 1;
            }
            (ipproto::ICMP | ipproto::ICMPV6, _) => {}
            // SCTP and any other protocol: where probes of them go.
            _ => {
                probed.insert(dst);
            }
        }
    }
    // A scanner's own stack also answers stray replies with port-unreachables, but far fewer
    // than the scanned host sends it.
    if infer {
        for (addr, sent) in &unreachable_sent {
            if *sent > unreachable_received.get(addr).copied().unwrap_or(0) {
                hosts.insert(*addr);
            }
        }
    }
    let host_source = if !infer {
        HostSource::Given
    } else if !hosts.is_empty() {
        HostSource::Answers
    } else {
        // No answers at all: an inbound-only capture. The host is where probes went, as long
        // as it never spoke (a scanner's address does) and can be one host's (not multicast or
        // broadcast).
        hosts.extend(
            probed
                .into_iter()
                .filter(|a| !senders.contains(a) && unicast(a)),
        );
        if hosts.is_empty() {
            HostSource::NoneFound
        } else {
            HostSource::InboundProbes
        }
    };
    for (src, port) in udp_senders {
        if hosts.contains(&src) {
            open.insert((src, Proto::Udp, port));
        }
    }

    // Pass 2: what the sensor would queue, through the detector.
    let mut det = Detector::new(config.clone(), 0x5ca1_ab1e);
    let mut probes: BTreeMap<SourceKey, u64> = BTreeMap::new();
    let mut banned: BTreeSet<SourceKey> = BTreeSet::new();
    let mut banned_until: BTreeMap<SourceKey, u64> = BTreeMap::new();
    for frame in pcap::frames(file)? {
        let frame = frame?;
        report.frames += 1;
        let Some(ip) = frame.ip() else {
            report.not_ip += 1;
            continue;
        };
        let now = frame.time_ms;
        if now >= det.next_deadline() {
            det.on_timer(now);
        }
        let obs = match packet::parse(ip) {
            Ok(o) => o,
            Err(_) => continue,
        };
        if !hosts.contains(&obs.dst) || open.contains(&(obs.dst, obs.proto, obs.dst_port)) {
            continue;
        }
        if obs.proto == Proto::Tcp {
            let f = obs.tcp_flags;
            // Answers (RST, SYN+ACK) are never queued; an ACK-bearing packet only outside a
            // flow this host keeps alive (which the socket lookup would return).
            if f & RST != 0 || f & (SYN | ACK) == SYN | ACK {
                continue;
            }
            let in_live_flow = live_flows.contains(&(obs.src, obs.src_port, obs.dst, obs.dst_port));
            if f & ACK != 0 && in_live_flow {
                continue;
            }
        }
        let Some(key) = det.key_for(&obs.src) else {
            continue;
        };
        // Dropped in prerouting by its own ban or by a ban of a prefix holding it.
        let dropped = banned_until
            .iter()
            .any(|(k, &until)| now < until && (*k == key || k.contains(&obs.src)));
        if dropped {
            continue; // dropped in prerouting
        }
        report.queued += 1;
        let n = probes.entry(key).or_insert(0);
        *n += 1;
        let count = *n;
        if det.observe(now, &obs) == Outcome::Banned {
            while let Some(Action::Ban {
                key,
                duration_ms,
                evidence,
            }) = det.poll_action()
            {
                banned.insert(key);
                banned_until.insert(key, now.saturating_add(duration_ms));
                // A prefix ban comes after the probes of all its sources.
                let after_probes = if key.is_aggregate() {
                    probes
                        .iter()
                        .filter(|(k, _)| key.contains(&k.block().0))
                        .map(|(_, n)| *n)
                        .sum()
                } else {
                    count
                };
                report.bans.push(BanRecord {
                    key,
                    after_probes,
                    at_ms: now,
                    duration_ms,
                    evidence,
                });
            }
        }
    }
    report.local = hosts.into_iter().collect();
    report.host_source = host_source;
    report.open_ports = open.len();
    report.unbanned = probes
        .into_iter()
        .filter(|(k, _)| !banned.contains(k))
        .collect();
    report.counters = det.counters();
    Ok(report)
}

/// An address one host can hold: not multicast, broadcast or unspecified.
fn unicast(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => !(v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    }
}
