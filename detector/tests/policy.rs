//! The policy's promises, as properties over generated probe sequences (proptest) and as
//! scenarios with a fake clock.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use detector::{Action, Allowlist, Cidr, Config, Detector, Outcome, Proto, SourceKey};
use proptest::prelude::*;

mod common;
use common::{probe, SYN};

fn v4(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + i)) // 203.0.113.0/24 and up
}

fn bans(d: &mut Detector) -> Vec<(SourceKey, u64)> {
    let mut out = Vec::new();
    while let Some(Action::Ban {
        key, duration_ms, ..
    }) = d.poll_action()
    {
        out.push((key, duration_ms));
    }
    out
}

proptest! {
    #[test]
    fn allowlisted_sources_are_never_banned(ports in proptest::collection::vec(any::<u16>(), 1..200),
                                            host in 0u32..256) {
        let c = Config { allow: vec!["203.0.113.0/24".parse().unwrap()], ..Config::default() };
        let mut d = Detector::new(c, 1);
        for (i, p) in ports.iter().enumerate() {
            let o = d.observe(i as u64, &probe(v4(host % 256), Proto::Tcp, *p, SYN));
            prop_assert_eq!(o, Outcome::Ignored(detector::Ignored::Allowlisted));
        }
        prop_assert!(d.poll_action().is_none());
        prop_assert_eq!(d.counters().tracked, 0);
    }

    #[test]
    fn tracked_sources_never_exceed_capacity(sources in proptest::collection::vec((any::<u32>(), any::<u16>()), 1..2000)) {
        let c = Config { capacity: 64, ..Config::default() };
        let mut d = Detector::new(c, 2);
        for (i, (s, p)) in sources.iter().enumerate() {
            d.observe(i as u64, &probe(IpAddr::V4(Ipv4Addr::from(*s | 0x0100_0000)), Proto::Udp, *p, 0));
            prop_assert!(d.counters().tracked <= 64);
        }
    }

    #[test]
    fn a_burst_scores_the_same_in_any_order(mut ports in proptest::collection::btree_set(1u16..3000, 1..15).prop_map(|s| s.into_iter().collect::<Vec<_>>()),
                                            seed in any::<u64>()) {
        let run = |ports: &[u16]| {
            let mut d = Detector::new(Config::default(), 3);
            let mut last = Outcome::Repeat;
            for p in ports {
                last = d.observe(1000, &probe(v4(1), Proto::Tcp, *p, SYN));
                if last == Outcome::Banned { break; }
            }
            (last, d.score(&SourceKey::new(v4(1), 64), 1000), d.poll_action().map(|Action::Ban { evidence, .. }| evidence.score))
        };
        let first = run(&ports);
        // A deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..ports.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            ports.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let banned_first = first.0 == Outcome::Banned;
        let second = run(&ports);
        prop_assert_eq!(banned_first, second.0 == Outcome::Banned);
        if !banned_first {
            prop_assert_eq!(first.1, second.1);
        }
    }

    #[test]
    fn probes_slower_than_the_leak_never_ban(ports in proptest::collection::vec(1u16..65535, 1..300)) {
        // Each new port's weight leaks away before the next arrives: the short-horizon score
        // never builds (the long-horizon tier, off here, is what catches such scans).
        let c = Config { slow_threshold: 0, ..Config::default() };
        let mut d = Detector::new(c.clone(), 4);
        let mut now = 0;
        for p in ports {
            let w = if p < 1024 { c.weight_privileged } else { c.weight_other };
            now += u64::from(w) * c.leak_every_ms;
            let o = d.observe(now, &probe(v4(9), Proto::Tcp, p, SYN));
            prop_assert!(o != Outcome::Banned && o != Outcome::Suppressed, "{:?}", o);
        }
    }

    #[test]
    fn any_bytes_parse_or_are_ignored(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let mut d = Detector::new(Config::default(), 5);
        let _ = d.observe_packet(0, &bytes, None);
    }
}

#[test]
fn tcp_80_and_udp_80_are_two_ports_and_repeats_add_nothing() {
    let mut d = Detector::new(Config::default(), 6);
    assert_eq!(
        d.observe(0, &probe(v4(1), Proto::Tcp, 80, SYN)),
        Outcome::Counted { score: 3 }
    );
    assert_eq!(
        d.observe(0, &probe(v4(1), Proto::Udp, 80, 0)),
        Outcome::Counted { score: 6 }
    );
    for _ in 0..50 {
        assert_eq!(
            d.observe(0, &probe(v4(1), Proto::Tcp, 80, SYN)),
            Outcome::Repeat
        );
    }
    assert!(d.poll_action().is_none());
}

#[test]
fn ipv6_sources_in_one_64_add_up_and_ipv4_is_untouched() {
    let mut d = Detector::new(Config::default(), 7);
    for i in 0..7u16 {
        let src = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 7, 7, 0, 0, 0, i + 1));
        d.observe(0, &probe(src, Proto::Tcp, 20 + i, SYN));
    }
    let b = bans(&mut d);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].0.to_string(), "2001:db8:7:7::/64");
}

#[test]
fn ten_ipv6_sources_on_one_port_ban_nobody() {
    // The article's tool read these as IPv4 and banned an unrelated address.
    let mut d = Detector::new(Config::default(), 8);
    for i in 0..10u16 {
        let mut pkt = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        pkt.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 1).octets());
        pkt.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        pkt.extend_from_slice(&[
            0x9c, 0x40, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, SYN, 0, 0, 0, 0, 0, 0,
        ]);
        assert_eq!(
            d.observe_packet(0, &pkt, Some(2)),
            Outcome::Counted { score: 3 }
        );
    }
    assert!(bans(&mut d).is_empty());
    assert_eq!(d.counters().tracked, 10);
}

#[test]
fn repeat_offenders_are_banned_longer_up_to_the_cap() {
    let c = Config {
        ban_jitter_percent: 0,
        ban_ms: 1000,
        ban_max_ms: 5000,
        ..Config::default()
    };
    let mut d = Detector::new(c, 9);
    let mut durations = Vec::new();
    for round in 0..5u64 {
        for p in 0..7u16 {
            d.observe(round * 10_000, &probe(v4(3), Proto::Tcp, 100 + p, SYN));
        }
        durations.extend(bans(&mut d).into_iter().map(|b| b.1));
    }
    assert_eq!(durations, vec![1000, 2000, 4000, 5000, 5000]);
}

#[test]
fn jitter_spreads_bans_within_bounds() {
    let mut d = Detector::new(Config::default(), 10);
    for s in 0..40u32 {
        for p in 0..7u16 {
            d.observe(
                u64::from(s) * 1000,
                &probe(v4(100 + s), Proto::Tcp, 1 + p, SYN),
            );
        }
    }
    let b = bans(&mut d);
    assert_eq!(b.len(), 40);
    let distinct: std::collections::BTreeSet<u64> = b.iter().map(|x| x.1).collect();
    assert!(distinct.len() > 30, "spread: {distinct:?}");
    assert!(b.iter().all(|x| (3_420_000..=3_780_000).contains(&x.1)));
}

#[test]
fn the_ban_rate_limit_holds_a_flood_back() {
    let c = Config::default();
    let mut d = Detector::new(c.clone(), 11);
    // 1000 "scanners" at the same instant (a spoofed flood of stealth probes).
    for s in 0..1000u32 {
        for p in 0..3u16 {
            d.observe(5000, &probe(v4(s), Proto::Tcp, 1 + p, 0x01));
        }
    }
    let first = bans(&mut d).len() as u32;
    assert_eq!(first, c.ban_burst);
    assert_eq!(d.counters().suppressed, u64::from(1000 - c.ban_burst));
    // One second later, the rate lets `ban_rate` more through.
    for s in 2000..3000u32 {
        for p in 0..3u16 {
            d.observe(6000, &probe(v4(s), Proto::Tcp, 1 + p, 0x01));
        }
    }
    assert_eq!(bans(&mut d).len() as u32, c.ban_rate);
}

#[test]
fn builtin_never_tracked_and_replaceable_allowlist() {
    let mut d = Detector::new(Config::default(), 12);
    for src in ["127.0.0.1", "169.254.3.3", "fe80::1", "224.0.0.1"] {
        let o = d.observe(0, &probe(src.parse().unwrap(), Proto::Udp, 137, 0));
        assert_eq!(o, Outcome::Ignored(detector::Ignored::Allowlisted), "{src}");
    }
    assert!(matches!(
        d.observe(0, &probe(v4(5), Proto::Tcp, 1, SYN)),
        Outcome::Counted { .. }
    ));
    d.set_allowlist(Allowlist::new([Cidr::host(v4(5))]));
    assert_eq!(
        d.observe(0, &probe(v4(5), Proto::Tcp, 2, SYN)),
        Outcome::Ignored(detector::Ignored::Allowlisted)
    );
}

#[test]
fn idle_sources_are_forgotten_on_the_timer() {
    let c = Config::default();
    let slow = c.slow_leak_every_ms;
    let mut d = Detector::new(c, 13);
    d.observe(0, &probe(v4(1), Proto::Tcp, 22, SYN));
    d.observe(3 * slow - 5_000, &probe(v4(2), Proto::Tcp, 22, SYN));
    // Both short-horizon scores have leaked by 15 s; the long-horizon ones hold the sources
    // until their 3 points have leaked too, one per `slow-leak-every`.
    d.on_timer(3 * slow);
    assert_eq!(d.counters().tracked, 1, "v4(1) is spent, v4(2) not yet");
    assert!(d.score(&SourceKey::new(v4(2), 64), 3 * slow).is_some());
    assert_eq!(d.next_deadline(), 3 * slow + 1_000);
    d.on_timer(6 * slow);
    assert_eq!(d.counters().tracked, 0);
    assert_eq!(
        d.counters().prefixes,
        0,
        "their prefix is forgotten as well"
    );
}

#[test]
fn probes_right_after_a_ban_are_marked_for_dropping_until_it_ends() {
    let c = Config {
        ban_jitter_percent: 0,
        ban_ms: 60_000,
        ..Config::default()
    };
    let mut d = Detector::new(c, 14);
    for p in 0..6u16 {
        d.observe(0, &probe(v4(4), Proto::Tcp, 1 + p, SYN));
    }
    assert_eq!(
        d.observe(0, &probe(v4(4), Proto::Tcp, 7, SYN)),
        Outcome::Banned
    );
    assert_eq!(
        d.observe(10, &probe(v4(4), Proto::Tcp, 8, SYN)),
        Outcome::AlreadyBanned
    );
    assert_eq!(
        d.observe(10, &probe(v4(4), Proto::Udp, 8, 0)),
        Outcome::AlreadyBanned
    );
    assert_eq!(d.counters().already_banned, 2);
    // After the ban's end the source is counted from scratch again.
    assert_eq!(
        d.observe(60_000, &probe(v4(4), Proto::Tcp, 9, SYN)),
        Outcome::Counted { score: 3 }
    );
    // An admin's unban lifts it at once.
    for p in 0..7u16 {
        d.observe(70_000, &probe(v4(5), Proto::Tcp, 1 + p, SYN));
    }
    d.forget(&SourceKey::new(v4(5), 64));
    assert_eq!(
        d.observe(70_001, &probe(v4(5), Proto::Tcp, 50, SYN)),
        Outcome::Counted { score: 3 }
    );
}

#[test]
fn a_policy_reload_keeps_tracked_sources() {
    let mut d = Detector::new(Config::default(), 15);
    for p in 0..5u16 {
        d.observe(0, &probe(v4(6), Proto::Tcp, 1 + p, SYN));
    }
    assert_eq!(d.score(&SourceKey::new(v4(6), 64), 0), Some(15));
    d.set_policy(Config {
        threshold: 16,
        capacity: 1,
        ..Config::default()
    });
    assert_eq!(
        d.config().capacity,
        Config::default().capacity,
        "sizes stay"
    );
    assert_eq!(
        d.observe(0, &probe(v4(6), Proto::Tcp, 9, SYN)),
        Outcome::Banned
    );
}

#[test]
fn shards_sharing_a_limiter_have_one_ban_budget() {
    // Two detectors (two shards of one daemon) with one budget of 5: 5 bans in all, not 5 each.
    let c = Config {
        ban_rate: 1,
        ban_burst: 5,
        ..Config::default()
    };
    let mut a = Detector::new(c.clone(), 1);
    let mut b = Detector::new(c, 2);
    b.share_limiter(a.limiter());
    for src in 0..20u32 {
        let d = if src % 2 == 0 { &mut a } else { &mut b };
        for port in 1..=7u16 {
            d.observe(1000, &probe(v4(src), Proto::Tcp, port, SYN));
        }
    }
    let issued = bans(&mut a).len() + bans(&mut b).len();
    assert_eq!(issued, 5, "one budget across both");
    assert_eq!(a.counters().suppressed + b.counters().suppressed, 15);
}

#[test]
fn an_ipv6_neighbour_of_an_allowlisted_admin_is_banned_alone() {
    let c = Config {
        allow: vec!["2001:db8:1:2::10".parse().unwrap()],
        ..Config::default()
    };
    let mut d = Detector::new(c.clone(), 1);
    d.set_allowlist(Allowlist::new(c.allow.iter().copied()));
    let scanner: IpAddr = "2001:db8:1:2::66".parse().unwrap();
    for port in 1..=7u16 {
        d.observe(1000, &probe(scanner, Proto::Tcp, port, SYN));
    }
    let mut got = Vec::new();
    while let Some(Action::Ban { key, evidence, .. }) = d.poll_action() {
        got.push((key, evidence));
    }
    assert_eq!(got.len(), 1);
    let (key, evidence) = got[0];
    assert_eq!(key, SourceKey::V6("2001:db8:1:2::66".parse().unwrap(), 128));
    assert!(!key.contains(&"2001:db8:1:2::10".parse().unwrap()));
    assert!(evidence.to_string().contains("per address"), "{evidence}");
    // The admin, probing as much, is never counted.
    let admin: IpAddr = "2001:db8:1:2::10".parse().unwrap();
    for port in 1..=50u16 {
        assert_eq!(
            d.observe(2000, &probe(admin, Proto::Tcp, port, SYN)),
            Outcome::Ignored(detector::Ignored::Allowlisted)
        );
    }
}

#[test]
fn spoofed_probes_from_the_loopback_prefix_or_embedded_ipv4_ban_nothing_wide() {
    let mut d = Detector::new(Config::default(), 1);
    d.set_allowlist(Allowlist::new(["192.0.2.1".parse::<Cidr>().unwrap()]));
    for src in ["::2", "::ffff:192.0.2.1", "::192.0.2.1", "::ffff:127.0.0.1"] {
        for port in 1..=30u16 {
            let o = d.observe(1000, &probe(src.parse().unwrap(), Proto::Tcp, port, SYN));
            assert_eq!(o, Outcome::Ignored(detector::Ignored::Allowlisted), "{src}");
        }
    }
    // In ::/64 but outside the embedded-IPv4 ranges: banned, as one address only.
    for port in 1..=7u16 {
        d.observe(
            1000,
            &probe("::1:0:0:2".parse().unwrap(), Proto::Tcp, port, SYN),
        );
    }
    assert_eq!(
        bans(&mut d)
            .iter()
            .map(|(k, _)| k.to_string())
            .collect::<Vec<_>>(),
        ["::1:0:0:2"]
    );
    // IPv4-mapped scanners are the IPv4 address.
    for port in 1..=7u16 {
        d.observe(
            1000,
            &probe("::ffff:203.0.113.9".parse().unwrap(), Proto::Tcp, port, SYN),
        );
    }
    assert_eq!(
        bans(&mut d)[0].0,
        SourceKey::V4("203.0.113.9".parse().unwrap())
    );
}
