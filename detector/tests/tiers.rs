//! The long-horizon (slow-scan) and prefix (distributed-scan) tiers, proved on real captures
//! from fixtures/pcap replayed with their timestamps rewritten: the detector is sans-IO, so a
//! scan that took seconds is replayed at nmap -T1 (a probe every 15 s) or -T0 (every 5 min),
//! and a minute of ordinary traffic is looped over a day.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use detector::replay::{self, BanRecord, Report};
use detector::{
    Action, Allowlist, Cidr, Config, Detector, Observation, Outcome, Proto, SourceKey, Tier,
};

mod common;
use common::{probe, SYN};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../fixtures/pcap/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One pcap record: its 16-byte header and its data.
type Record<'a> = (&'a [u8], &'a [u8]);

/// A classic little-endian pcap (microsecond or nanosecond) split into its global header and
/// its records.
fn records(pcap: &[u8]) -> (&[u8], Vec<Record<'_>>) {
    assert!(
        pcap[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || pcap[..4] == [0x4d, 0x3c, 0xb2, 0xa1],
        "a little-endian classic pcap"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let caplen = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push((&pcap[at..at + 16], &pcap[at + 16..at + 16 + caplen]));
        at += 16 + caplen;
    }
    (&pcap[..24], out)
}

/// The frame as an observation, if it is IPv4/IPv6 TCP or UDP (Ethernet link type).
fn observe_frame(data: &[u8]) -> Option<Observation> {
    let ip = detector::pcap::ip_payload(1, data)?;
    detector::packet::parse(ip).ok()
}

/// `pcap` with every frame's time set to `start_s` plus `interval_s` times the number of
/// `is_probe` frames before it: the scanner's probes one `interval_s` apart, each answer at its
/// probe's time. Repeated `loops` times, each copy `period_s` after the previous one.
fn retime(
    pcap: &[u8],
    is_probe: impl Fn(&Observation) -> bool,
    interval_s: u32,
    loops: u32,
    period_s: u32,
) -> Vec<u8> {
    let (header, recs) = records(pcap);
    let mut out = header.to_vec();
    let start_s = 1_700_000_000u32;
    for l in 0..loops {
        let mut probes = 0u32;
        for (rh, data) in &recs {
            let t = start_s + l * period_s + probes * interval_s;
            out.extend_from_slice(&t.to_le_bytes());
            // Keep the sub-second part: frames of one probe keep their order.
            out.extend_from_slice(&rh[4..8]);
            out.extend_from_slice(&rh[8..16]);
            out.extend_from_slice(data);
            if observe_frame(data).is_some_and(|o| is_probe(&o)) {
                probes += 1;
            }
        }
    }
    out
}

fn scanner_syn(o: &Observation) -> bool {
    o.src == IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)) && o.proto == Proto::Tcp && o.tcp_flags == 0x02
}

/// The replay of nmap-sS.pcap at one probe per `interval_s`, and its first ban, which must be
/// the scanner's by the slow tier (the scan outlasts the ban: later bans are its repeat
/// offences).
fn replay_at(interval_s: u32) -> (Report, BanRecord) {
    let pcap = retime(&fixture("nmap-sS.pcap"), scanner_syn, interval_s, 1, 0);
    let r = replay::run(&pcap, &Config::default(), &[]).unwrap();
    let scanner = SourceKey::V4("192.0.2.2".parse().unwrap());
    assert!(r.bans.iter().all(|b| b.key == scanner), "{:?}", r.bans);
    let first = r.bans.first().expect("banned").clone();
    assert_eq!(first.evidence.tier, Tier::Slow, "{}", first.evidence);
    assert!(first.evidence.to_string().contains("slow scan"));
    assert_eq!(first.evidence.offence, 1);
    (r, first)
}

#[test]
fn nmap_t1_is_banned_by_the_slow_tier_within_40_probes() {
    let (_, b) = replay_at(15);
    assert!(
        b.after_probes <= 40,
        "{} probes: {}",
        b.after_probes,
        b.evidence
    );
    eprintln!(
        "-T1: banned after {} probes, {} s",
        b.after_probes,
        (b.at_ms - b.evidence.first_ms) / 1000
    );
}

#[test]
fn nmap_t0_is_banned_by_the_slow_tier_within_four_hours() {
    let (_, b) = replay_at(300);
    let took_ms = b.at_ms - b.evidence.first_ms;
    assert!(
        took_ms <= 4 * 3_600_000,
        "{took_ms} ms, {} probes",
        b.after_probes
    );
    eprintln!(
        "-T0: banned after {} probes, {} min",
        b.after_probes,
        took_ms / 60_000
    );
}

#[test]
fn without_the_slow_tier_neither_is_banned() {
    // The burst tier alone misses both: what the slow tier is for.
    let c = Config {
        slow_threshold: 0,
        ..Config::default()
    };
    for interval in [15, 300] {
        let pcap = retime(&fixture("nmap-sS.pcap"), scanner_syn, interval, 1, 0);
        let r = replay::run(&pcap, &c, &[]).unwrap();
        assert!(r.bans.is_empty(), "{interval} s: {:?}", r.bans);
        assert!(r.queued > 40);
    }
}

#[test]
fn a_day_of_ordinary_traffic_is_never_banned() {
    // normal-day.pcap: a minute of two clients of one /24 (and one IPv6 client) using the open
    // ports and knocking on closed 22, 53, 80, 123, 443, with retries. Looped every 10 minutes
    // for 24 h (144 copies), in real time within each copy.
    let pcap = fixture("normal-day.pcap");
    let day = retime(&pcap, |_| false, 0, 144, 600);
    let r = replay::run(&day, &Config::default(), &[]).unwrap();
    assert!(
        r.queued >= 144 * 20,
        "closed ports are hit: {} queued",
        r.queued
    );
    assert!(r.bans.is_empty(), "{:?}", r.bans);
    // The benign captures too, in the same day-long loop.
    for name in ["normal-traffic.pcap", "retry-closed-port.pcap"] {
        let day = retime(&fixture(name), |_| false, 0, 144, 600);
        let r = replay::run(&day, &Config::default(), &[]).unwrap();
        assert!(r.bans.is_empty(), "{name}: {:?}", r.bans);
    }
}

fn bans(d: &mut Detector) -> Vec<(SourceKey, Tier)> {
    let mut out = Vec::new();
    while let Some(Action::Ban { key, evidence, .. }) = d.poll_action() {
        out.push((key, evidence.tier));
    }
    out
}

fn in_24(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, i as u8))
}

#[test]
fn a_scan_spread_over_64_addresses_of_a_24_bans_the_prefix() {
    // Each address probes 5 of nmap's top ports (3 or 15 points: under 21), one every second;
    // together they cover 320 ports.
    let mut d = Detector::new(Config::default(), 1);
    let mut now = 0;
    let mut banned = Vec::new();
    'scan: for round in 0..5u32 {
        for a in 0..64u32 {
            now += 1_000;
            let port = (1 + a * 5 + round) as u16;
            match d.observe(now, &probe(in_24(a + 1), Proto::Tcp, port, SYN)) {
                Outcome::Banned => {
                    banned = bans(&mut d);
                    break 'scan;
                }
                Outcome::Counted { score } => assert!(score < 21),
                o => panic!("{o:?}"),
            }
        }
    }
    assert_eq!(
        banned,
        vec![(
            SourceKey::V4Net(Ipv4Addr::new(203, 0, 113, 0), 24),
            Tier::Prefix
        )]
    );
    // Any other address of the /24 is dropped from now on (the kernel's prefix drop does the
    // same a moment later).
    assert_eq!(
        d.observe(now, &probe(in_24(200), Proto::Tcp, 9, SYN)),
        Outcome::AlreadyBanned
    );
}

#[test]
fn a_cgnat_pool_of_clients_retrying_closed_ports_is_never_banned() {
    // 250 addresses of one /24, each client retrying one of a few closed ports its app uses
    // (http, https, an app port, DNS, NTP), all day: each port counts once for the prefix.
    let mut d = Detector::new(Config::default(), 2);
    let ports = [80u16, 443, 8443, 53, 123];
    let mut now = 0u64;
    for minute in 0..(24 * 60u64) {
        for a in 0..250u32 {
            if (u64::from(a) + minute) % 7 != 0 {
                continue;
            }
            now = minute * 60_000 + u64::from(a) * 200;
            let o = d.observe(
                now,
                &probe(in_24(a + 1), Proto::Tcp, ports[(a % 5) as usize], SYN),
            );
            assert!(
                matches!(o, Outcome::Counted { .. } | Outcome::Repeat),
                "minute {minute}, client {a}: {o:?}"
            );
        }
        if now >= d.next_deadline() {
            d.on_timer(now);
        }
    }
    assert!(bans(&mut d).is_empty());
    assert!(d.prefix_score(&in_24(1), now).unwrap_or(0) < 42);
}

#[test]
fn a_prefix_holding_a_protected_address_or_an_own_prefix_is_not_banned_whole() {
    // The /24 holds an allowlisted host; the IPv6 /48 overlaps the host's on-link /64.
    let allow = Allowlist::new(["203.0.113.250".parse::<Cidr>().unwrap()])
        .with_on_link(["2001:db8:7:1::/64".parse::<Cidr>().unwrap()]);
    let mut d = Detector::new(Config::default(), 3);
    d.set_allowlist(allow);
    let v6 = |i: u32| {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            7,
            0x100 + i as u16,
            0,
            0,
            0,
            1,
        ))
    };
    let mut now = 0;
    for a in 0..64u32 {
        for src in [in_24(a + 1), v6(a)] {
            for k in 0..3u32 {
                now += 1_000;
                let o = d.observe(now, &probe(src, Proto::Tcp, (1 + a * 3 + k) as u16, SYN));
                assert!(matches!(o, Outcome::Counted { .. }), "{src}: {o:?}");
            }
        }
    }
    assert!(bans(&mut d).is_empty());
    assert!(d.counters().prefix_protected >= 2, "{:?}", d.counters());
}

#[test]
fn an_ipv6_scan_spread_over_a_48_bans_the_48() {
    let mut d = Detector::new(Config::default(), 4);
    let mut now = 0;
    let mut out = Vec::new();
    for a in 0..64u32 {
        // A different /64 each time: the per-source keys never add up.
        let src = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 9, a as u16, 0, 0, 0, 1));
        for k in 0..2u32 {
            now += 1_000;
            if d.observe(now, &probe(src, Proto::Tcp, (1 + a * 2 + k) as u16, SYN))
                == Outcome::Banned
            {
                out = bans(&mut d);
            }
        }
        if !out.is_empty() {
            break;
        }
    }
    assert_eq!(
        out,
        vec![(
            SourceKey::V6Net(Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 0), 48),
            Tier::Prefix
        )]
    );
    assert_eq!(
        SourceKey::V6Net(Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 0), 48).to_string(),
        "2001:db8:9::/48"
    );
}

#[test]
fn bytes_per_tracked_source_and_prefix() {
    // What docs/BENCHMARKS.md states: both tiers of a source live in one slot, and a prefix
    // costs the same slot in its own table.
    assert_eq!(std::mem::size_of::<detector::table::Track>(), 128);
    assert_eq!(detector::table::Table::bytes_per_source(), 144);
}

#[test]
fn a_raised_threshold_is_not_undercut_by_the_slow_tier() {
    // The slow score is never below the fast one: with `threshold` above `slow-threshold`, a
    // fast scan must reach `threshold` (what an admin who raised it expects).
    let c = Config {
        threshold: 100,
        ..Config::default()
    };
    let mut d = Detector::new(c, 5);
    let src = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));
    for port in 1..=33u16 {
        let o = d.observe(u64::from(port), &probe(src, Proto::Tcp, port, SYN));
        assert!(matches!(o, Outcome::Counted { .. }), "port {port}: {o:?}");
    }
    assert_eq!(
        d.observe(34, &probe(src, Proto::Tcp, 34, SYN)),
        Outcome::Banned,
        "102 points"
    );
}
