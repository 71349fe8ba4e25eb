//! `RemoteBans` against the kernel, in a testbed's server namespace, with `nft` as the oracle and
//! connections from the attacker namespace as the proof that packets are dropped: a connect to
//! a closed port is refused (RST) when the packet gets through and times out when it is dropped.

use std::net::IpAddr;
use std::time::Duration;

use detector::{Allowlist, Cidr, SourceKey};
use nfnl::NlSocket;
use testbed::{wait_for, Testbed, ATTACKER_V4, SERVER_V4, SERVER_V6};

use super::RemoteBans;
use crate::fleet::{Applied, Decision, DecisionSink, Delta, Target};
use crate::ruleset::{self, Parts};
use crate::settings::Settings;

/// Sources on the attacker side beyond the testbed's own: routed back through it.
const SOURCES: [&str; 6] = [
    "198.51.100.7",
    "198.51.100.70",
    "198.51.100.200",
    "2001:db8:1::7",
    "2001:db8:1::8",
    "2001:db8:2::9",
];

/// A testbed with the table installed (bans part) and the extra sources, and a sink made in its
/// server namespace with `allow` as its allowlist.
fn setup(tag: &str, allow: &[&str]) -> Option<(Testbed, RemoteBans)> {
    let tb = Testbed::new(tag)?;
    for s in SOURCES {
        let len = if s.contains(':') { 64 } else { 24 };
        tb.add_attacker_addr(&format!("{s}/{len}")).unwrap();
    }
    tb.sh(
        &tb.server,
        "ip route add 198.51.100.0/24 via 192.0.2.2 && \
         ip -6 route add 2001:db8:1::/64 via 2001:db8::2 && \
         ip -6 route add 2001:db8:2::/64 via 2001:db8::2",
    )
    .unwrap();
    // Neighbour discovery may go out from a banned source, which the server then drops: the
    // neighbours are fixed, so only the connections under test depend on the bans.
    let mac = |ns: &str| tb.sh(ns, "cat /sys/class/net/veth0/address").unwrap();
    let (srv_mac, atk_mac) = (mac(&tb.server), mac(&tb.attacker));
    tb.sh(
        &tb.attacker,
        &format!(
            "ip -6 neigh replace {SERVER_V6} lladdr {} dev veth0 nud permanent",
            srv_mac.trim()
        ),
    )
    .unwrap();
    tb.sh(
        &tb.server,
        &format!(
            "ip -6 neigh replace 2001:db8::2 lladdr {} dev veth0 nud permanent",
            atk_mac.trim()
        ),
    )
    .unwrap();
    let mut allow: Vec<Cidr> = allow.iter().map(|c| c.parse().unwrap()).collect();
    allow.push(Cidr::host(SERVER_V4.parse().unwrap()));
    allow.push(Cidr::host(SERVER_V6.parse().unwrap()));
    let sink = tb.in_server(|| {
        let (sock, f) = install_ban_sets();
        RemoteBans::new(sock, Allowlist::new(allow), f.destroy)
    });
    Some((tb, sink))
}

/// The ban sets and prerouting as `run` installs them (no sensor), in the calling thread's
/// namespace; the socket and the kernel's features.
fn install_ban_sets() -> (NlSocket, nft::probe::Features) {
    let mut sock = NlSocket::open().unwrap();
    let f = nft::probe::probe(&mut sock).unwrap();
    let parts = Parts {
        bans: true,
        sensor: false,
        forward: false,
    };
    let mut b = nft::Batch::new();
    ruleset::build(&Settings::default(), &f, parts).install(&mut b);
    b.send(&mut sock).unwrap();
    (sock, f)
}

fn decision(id: u64, target: &str, secs: u64) -> Decision {
    let c: Cidr = target.parse().unwrap();
    Decision {
        id,
        target: Target {
            addr: c.addr,
            prefix_len: c.len,
        },
        duration_ms: secs * 1000,
        origin: "cscli".into(),
        scenario: "manual 'ban' from 'test'".into(),
    }
}

fn new(decisions: Vec<Decision>) -> Delta {
    Delta {
        new: decisions,
        deleted: Vec::new(),
        full: false,
    }
}

fn deleted(decisions: Vec<Decision>) -> Delta {
    Delta {
        new: Vec::new(),
        deleted: decisions,
        full: false,
    }
}

fn set(tb: &Testbed, name: &str) -> String {
    tb.sh(&tb.server, &format!("nft list set inet scanban {name}"))
        .unwrap()
}

/// What a TCP connect from `src` to a closed port of the server gets: "refused" or "timeout".
fn connect_from(tb: &Testbed, src: &str) -> String {
    let (family, dst) = if src.contains(':') {
        ("AF_INET6", SERVER_V6)
    } else {
        ("AF_INET", SERVER_V4)
    };
    tb.sh(
        &tb.attacker,
        &format!(
            "timeout 5 python3 -c '\
import socket\n\
s=socket.socket(socket.{family});s.settimeout(1);s.bind((\"{src}\",0))\n\
try:\n s.connect((\"{dst}\",9));print(\"connected\")\n\
except ConnectionRefusedError:\n print(\"refused\")\n\
except (socket.timeout, TimeoutError):\n print(\"timeout\")'"
        ),
    )
    .unwrap()
    .trim()
    .to_string()
}

#[test]
fn addresses_and_ranges_of_both_families_land_drop_and_lift() {
    let Some((tb, mut sink)) = setup("remote-land", &[]) else {
        return;
    };
    let all = vec![
        decision(1, "198.51.100.7", 3600),
        decision(2, "198.51.100.64/26", 3600),
        decision(3, "2001:db8:1::7", 3600),
        decision(4, "2001:db8:2::/48", 3600),
    ];
    let got = sink.apply(new(all.clone()));
    assert_eq!(
        got,
        Applied {
            added: 4,
            ..Default::default()
        }
    );
    let v4 = set(&tb, "remote4");
    assert!(v4.contains("198.51.100.7 timeout 1h"), "{v4}");
    assert!(
        v4.contains("comment \"remote:cscli manual 'ban' from 'test'\""),
        "{v4}"
    );
    assert!(set(&tb, "remote4_net").contains("198.51.100.64/26"));
    assert!(set(&tb, "remote6").contains("2001:db8:1::7"));
    assert!(set(&tb, "remote6_net").contains("2001:db8:2::/48"));
    for (src, expected) in [
        ("198.51.100.7", "timeout"),
        ("198.51.100.70", "timeout"),
        ("198.51.100.200", "refused"),
        ("2001:db8:1::7", "timeout"),
        ("2001:db8:2::9", "timeout"),
        ("2001:db8:1::8", "refused"),
        (ATTACKER_V4, "refused"),
    ] {
        assert_eq!(connect_from(&tb, src), expected, "from {src}");
    }
    // The remote rules counted what they dropped.
    let chain = tb
        .sh(&tb.server, "nft list chain inet scanban prerouting")
        .unwrap();
    let rule = chain.lines().find(|l| l.contains("@remote4_net")).unwrap();
    assert!(!rule.contains("packets 0 "), "{chain}");

    let got = sink.apply(deleted(all));
    assert_eq!(got.lifted, 4);
    for name in ["remote4", "remote6", "remote4_net", "remote6_net"] {
        assert!(!set(&tb, name).contains("elements"), "{}", set(&tb, name));
    }
    for src in [
        "198.51.100.7",
        "198.51.100.70",
        "2001:db8:1::7",
        "2001:db8:2::9",
    ] {
        assert_eq!(connect_from(&tb, src), "refused", "from {src}");
    }
    assert!(sink.is_empty());
}

#[test]
fn decisions_over_protected_addresses_are_refused() {
    let Some((tb, mut sink)) = setup("remote-allow", &["198.51.100.9"]) else {
        return;
    };
    let protected = vec![
        decision(1, "198.51.100.9", 3600),
        decision(2, "198.51.100.0/24", 3600),
        decision(3, "192.0.2.0/24", 3600),
        decision(4, SERVER_V6, 3600),
        decision(5, "2001:db8::/32", 3600),
        decision(6, "0.0.0.0/0", 3600),
        decision(7, "127.0.0.1", 3600),
    ];
    let mut delta = new(protected.clone());
    delta.new.push(decision(8, "198.51.100.7", 3600));
    let got = sink.apply(delta);
    assert_eq!((got.added, got.refused), (1, 7));
    // Refused again in a later answer: counted again, applied never.
    assert_eq!(sink.apply(new(protected)).refused, 7);
    assert_eq!(sink.totals().refused, 14);
    let v4 = set(&tb, "remote4");
    assert!(
        v4.contains("198.51.100.7") && !v4.contains("198.51.100.9"),
        "{v4}"
    );
    for name in ["remote6", "remote4_net", "remote6_net"] {
        assert!(!set(&tb, name).contains("elements"), "{}", set(&tb, name));
    }
}

#[test]
fn overlapping_decisions_are_written_as_their_union() {
    let Some((tb, mut sink)) = setup("remote-overlap", &[]) else {
        return;
    };
    let wide = decision(1, "198.51.0.0/16", 2);
    let mid_a = decision(2, "198.51.100.0/24", 3600);
    let mid_b = decision(3, "198.51.100.0/24", 7200);
    let inner = decision(4, "198.51.100.64/26", 3600);
    let host = decision(5, "198.51.100.70", 3600);
    let adjacent = [
        decision(6, "203.0.113.0/25", 3600),
        decision(7, "203.0.113.128/25", 3600),
    ];
    let mut all = vec![wide, mid_a.clone(), mid_b.clone(), inner, host.clone()];
    all.extend(adjacent);
    let got = sink.apply(new(all));
    assert_eq!((got.added, got.failed), (7, 0));
    let net = set(&tb, "remote4_net");
    assert!(net.contains("198.51.0.0/16"), "{net}");
    assert!(!net.contains("198.51.100.0/24"), "{net}");
    assert!(
        net.contains("203.0.113.0/25") && net.contains("203.0.113.128/25"),
        "{net}"
    );
    assert!(set(&tb, "remote4").contains("198.51.100.70"));
    // The /16 runs out in the kernel; the next apply writes the /24 it covered, with the
    // longest of its two decisions.
    wait_for(Duration::from_secs(10), || {
        sink.apply(Delta::default());
        set(&tb, "remote4_net")
            .contains("198.51.100.0/24 timeout 1h59m")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{}", set(&tb, "remote4_net")));
    assert_eq!(connect_from(&tb, "198.51.100.200"), "timeout");
    // The longer decision lifted: the other keeps the /24, with its own time.
    assert_eq!(sink.apply(deleted(vec![mid_b])).lifted, 1);
    let net = set(&tb, "remote4_net");
    assert!(net.contains("198.51.100.0/24 timeout 59m"), "{net}");
    // Both lifted: the /26 inside it is what remains, and the address keeps its own element.
    sink.apply(deleted(vec![mid_a]));
    let net = set(&tb, "remote4_net");
    assert!(
        net.contains("198.51.100.64/26") && !net.contains("/24"),
        "{net}"
    );
    assert_eq!(connect_from(&tb, "198.51.100.200"), "refused");
    assert_eq!(connect_from(&tb, "198.51.100.70"), "timeout");
    sink.apply(deleted(vec![decision(4, "198.51.100.64/26", 0)]));
    assert_eq!(
        connect_from(&tb, "198.51.100.70"),
        "timeout",
        "the address ban"
    );
    sink.apply(deleted(vec![host]));
    assert_eq!(connect_from(&tb, "198.51.100.70"), "refused");
}

#[test]
fn local_and_remote_bans_of_one_address_are_independent() {
    let Some((tb, mut sink)) = setup("remote-local", &[]) else {
        return;
    };
    let local = crate::bans::Ban {
        key: SourceKey::V4("198.51.100.7".parse().unwrap()),
        duration_ms: 3_600_000,
        comment: "banned by hand for 1h".into(),
    };
    let write_local = || {
        tb.in_server(|| {
            let mut sock = NlSocket::open().unwrap();
            crate::bans::add(&mut sock, std::slice::from_ref(&local)).unwrap();
        })
    };
    let lift_local = || {
        tb.in_server(|| {
            let mut sock = NlSocket::open().unwrap();
            assert!(crate::bans::remove(&mut sock, &local.key).unwrap());
        })
    };
    let remote = decision(1, "198.51.100.7", 3600);
    // Remote lifted, local kept.
    write_local();
    sink.apply(new(vec![remote.clone()]));
    sink.apply(deleted(vec![remote.clone()]));
    assert!(set(&tb, "banned4").contains("198.51.100.7"));
    assert!(!set(&tb, "remote4").contains("198.51.100.7"));
    assert_eq!(connect_from(&tb, "198.51.100.7"), "timeout");
    // Local lifted, remote kept.
    sink.apply(new(vec![remote]));
    lift_local();
    assert!(set(&tb, "remote4").contains("198.51.100.7"));
    assert_eq!(connect_from(&tb, "198.51.100.7"), "timeout");
    // The local listing never shows the remote ban.
    let listed = tb.in_server(|| {
        let mut sock = NlSocket::open().unwrap();
        crate::bans::list(&mut sock, &Settings::default()).unwrap()
    });
    assert!(listed.is_empty(), "{listed:?}");
}

#[test]
fn the_first_answer_replaces_what_the_remote_sets_held() {
    let Some((tb, mut sink)) = setup("remote-restart", &[]) else {
        return;
    };
    // Left by an earlier run: a decision LAPI deleted while scanban was down.
    tb.sh(
        &tb.server,
        "nft add element inet scanban remote4 '{ 198.51.100.200 timeout 1h }' && \
         nft add element inet scanban remote6_net '{ 2001:db8:2::/48 timeout 1h }'",
    )
    .unwrap();
    let got = sink.apply(new(vec![decision(9, "2001:db8:1::/64", 600)]));
    assert_eq!(got.added, 1);
    assert!(!set(&tb, "remote4").contains("198.51.100.200"));
    let net = set(&tb, "remote6_net");
    assert!(
        net.contains("2001:db8:1::/64") && !net.contains("2001:db8:2::"),
        "{net}"
    );
    assert_eq!(connect_from(&tb, "198.51.100.200"), "refused");
    assert_eq!(connect_from(&tb, "2001:db8:1::8"), "timeout");
}

/// A full answer of `n` addresses of 2001:db8:3::/64 (set elements only: nothing is sent to
/// them) and the two attacker-side sources, whose connections show the drop.
fn many(n: u64, with_sources: bool) -> Delta {
    let mut all: Vec<Decision> = (0..n)
        .map(|i| decision(100 + i, &format!("2001:db8:3::{i:x}"), 3600))
        .collect();
    if with_sources {
        all.push(decision(1, "198.51.100.7", 3600));
        all.push(decision(2, "2001:db8:1::7", 3600));
    }
    Delta {
        full: true,
        ..new(all)
    }
}

/// Elements `nft` lists in set `name`.
fn count(tb: &Testbed, name: &str) -> usize {
    set(tb, name).matches("expires").count()
}

#[test]
fn sets_are_filled_in_parts_and_a_restart_writes_only_the_difference() {
    let Some((tb, mut sink)) = setup("remote-parts", &[]) else {
        return;
    };
    // Into empty sets: several transactions (`TX_ELEMENTS` changes each, then the ranges).
    let n = 2 * super::TX_ELEMENTS as u64 + 100;
    let got = sink.apply(many(n, true));
    assert_eq!((got.added, got.failed), (n + 2, 0));
    assert_eq!(
        sink.totals().writes,
        5,
        "3 for remote6, 1 for remote4, 1 for the ranges"
    );
    assert_eq!(count(&tb, "remote6"), n as usize + 1);
    assert_eq!(count(&tb, "remote4"), 1);
    assert_eq!(connect_from(&tb, "198.51.100.7"), "timeout");
    assert_eq!(connect_from(&tb, "2001:db8:1::7"), "timeout");
    // Left by hand meanwhile: an element the book does not hold, and one it holds without a
    // timeout (its time is off).
    tb.sh(
        &tb.server,
        "nft add element inet scanban remote6 '{ 2001:db8:4::1 timeout 1h }' && \
         nft delete element inet scanban remote6 '{ 2001:db8:3::5 }' && \
         nft add element inet scanban remote6 '{ 2001:db8:3::5 }'",
    )
    .unwrap();
    // A restart: the sets hold the bans, and the next full answer lacks the two sources. Only
    // the difference is written (the sources and the hand-made element lifted, ::5 lifted and
    // added again with its time, in one transaction); nothing kept is lifted for a moment.
    let mut sink = tb.in_server(|| {
        let (sock, f) = install_ban_sets();
        RemoteBans::new(sock, Allowlist::new([]), f.destroy)
    });
    let got = sink.apply(many(n, false));
    assert_eq!((got.added, got.failed), (n, 0));
    assert_eq!(sink.totals().writes, 3, "remote4, remote6, the ranges");
    assert_eq!(count(&tb, "remote6"), n as usize);
    assert_eq!(count(&tb, "remote4"), 0);
    let v6 = set(&tb, "remote6");
    assert!(!v6.contains("2001:db8:4::1"), "{v6}");
    let renewed = v6
        .split(',')
        .find(|e| e.contains("2001:db8:3::5 "))
        .unwrap_or_default();
    assert!(renewed.contains("timeout"), "{renewed}");
    assert_eq!(connect_from(&tb, "2001:db8:1::7"), "refused");
    // The same answer again, to a sink that wrote it: nothing to write but the ranges.
    let got = sink.apply(many(n, false));
    assert_eq!((got.added, got.failed), (n, 0));
    assert_eq!(sink.totals().writes, 4);
}

/// A LAPI (or a machine of the fleet pushing alerts) sending more than `lapi-max-decisions`:
/// the rest is skipped and counted, the sets keep working, and room made by a deletion is used.
#[test]
fn decisions_past_the_limit_are_skipped_and_counted() {
    let Some((tb, sink)) = setup("remote-limit", &[]) else {
        return;
    };
    let mut sink = sink.limit(4);
    let hosts: Vec<Decision> = (0..10)
        .map(|i| decision(i + 1, &format!("198.51.100.{}", 20 + i), 3600))
        .collect();
    let got = sink.apply(new(hosts.clone()));
    assert_eq!((got.added, got.over_limit, got.failed), (4, 6, 0));
    assert_eq!(count(&tb, "remote4"), 4);
    // IPv6 has its own room; ranges half of it.
    let got = sink.apply(new(vec![
        decision(20, "2001:db8:1::7", 3600),
        decision(21, "2001:db8:5::/48", 3600),
        decision(22, "2001:db8:6::/48", 3600),
        decision(23, "2001:db8:7::/48", 3600),
    ]));
    assert_eq!((got.added, got.over_limit), (3, 1));
    assert_eq!(connect_from(&tb, "2001:db8:1::7"), "timeout");
    // A held decision deleted makes room for the next one.
    let held = hosts
        .iter()
        .find(|d| set(&tb, "remote4").contains(&d.target.addr.to_string()))
        .unwrap()
        .clone();
    assert_eq!(sink.apply(deleted(vec![held])).lifted, 1);
    let got = sink.apply(new(vec![decision(30, "198.51.100.7", 3600)]));
    assert_eq!((got.added, got.over_limit), (1, 0));
    assert_eq!(count(&tb, "remote4"), 4);
    assert_eq!(connect_from(&tb, "198.51.100.7"), "timeout");
}

/// VmRSS of this process, kB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 100,000 decisions as a LAPI startup answer might carry them: random addresses of both
/// families and some ranges (/8../32, /16../128), deterministic (xorshift).
fn startup_answer() -> Vec<Decision> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let origins = ["CAPI", "crowdsec", "cscli", "lists"];
    (0..100_000u64)
        .map(|id| {
            let r = next();
            let (addr, len): (IpAddr, u8) = match id % 100 {
                0..=84 => (std::net::Ipv4Addr::from(r as u32).into(), 32),
                85..=94 => (
                    std::net::Ipv6Addr::from(u128::from(r) << 64 | 7).into(),
                    128,
                ),
                95..=98 => (
                    std::net::Ipv4Addr::from(r as u32).into(),
                    8 + (r >> 40) as u8 % 25,
                ),
                _ => (
                    std::net::Ipv6Addr::from(u128::from(r) << 64).into(),
                    16 + (r >> 40) as u8 % 113,
                ),
            };
            Decision {
                id,
                target: Target {
                    addr: crate::fleet::book::masked(addr, len),
                    prefix_len: len,
                },
                duration_ms: 3_600_000 + (r >> 48) * 1000,
                origin: origins[(id % 4) as usize].into(),
                scenario: "crowdsecurity/ssh-bf".into(),
            }
        })
        .collect()
}

/// The benchmark behind docs/BENCHMARKS.md §8, run by bench/remote-load.sh (never by CI): a
/// startup answer of 100,000 decisions through `RemoteBans::apply` (into empty sets, so in
/// parts), timed, with the RSS it adds; then the elements the kernel holds written as an nft
/// file for the script to load with `nft -f` into the same sets. Asserts only what it loaded.
#[test]
#[ignore = "benchmark: bench/remote-load.sh runs it in release mode"]
fn bench_startup_load_of_100k_decisions() {
    use std::fmt::Write as _;
    let Some((tb, mut sink)) = setup("remote-bench", &[]) else {
        return;
    };
    let delta = new(startup_answer());
    let before = rss_kb();
    // Applied as a copy (made before the clock starts, freed by `apply`): `delta` stays, so
    // the RSS difference is what the sink keeps.
    let copy = delta.clone();
    let t0 = std::time::Instant::now();
    let got = sink.apply(copy);
    let took = t0.elapsed();
    let after = rss_kb();
    assert_eq!(got.failed, 0);
    assert_eq!(got.added + got.refused, 100_000);
    println!(
        "RemoteBans::apply, startup answer of 100000 decisions: {} us ({} added, {} refused)",
        took.as_micros(),
        got.added,
        got.refused
    );
    println!(
        "VmRSS before {before} kB, after {after} kB: the book adds {} kB",
        after.saturating_sub(before)
    );
    // The kernel's elements, as an nft file of the same sets' contents.
    let mut file = String::new();
    let mut held = 0;
    for name in ["remote4", "remote6", "remote4_net", "remote6_net"] {
        let listing = set(&tb, name);
        let Some(start) = listing.find("elements = {") else {
            continue;
        };
        let body = &listing[start + "elements = {".len()..];
        let body = &body[..body.find('}').unwrap()];
        let elements: Vec<&str> = body
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        held += elements.len();
        writeln!(file, "add element inet scanban {name} {{").unwrap();
        for e in elements {
            // `expires` is a dump-only field.
            let e = match (e.find(" expires "), e.find(" comment ")) {
                (Some(x), Some(c)) => format!("{}{}", &e[..x], &e[c..]),
                (Some(x), None) => e[..x].to_string(),
                _ => e.to_string(),
            };
            writeln!(file, "  {e},").unwrap();
        }
        writeln!(file, "}}").unwrap();
    }
    assert!(held >= got.added as usize * 9 / 10, "{held} elements held");
    println!("kernel holds {held} elements");
    if let Some(path) = std::env::var_os("SCANBAN_BENCH_NFT_FILE") {
        std::fs::write(path, file).unwrap();
    }
    drop(delta);
}

#[test]
fn a_failed_write_is_retried_and_a_rebuilt_table_refilled() {
    let Some((tb, mut sink)) = setup("remote-retry", &[]) else {
        return;
    };
    let install = || {
        tb.in_server(|| {
            install_ban_sets();
        })
    };
    sink.apply(new(vec![decision(1, "198.51.100.7", 3600)]));
    // The table is gone (a firewall reload): the write fails, and is counted.
    tb.sh(&tb.server, "nft delete table inet scanban").unwrap();
    let got = sink.apply(new(vec![decision(2, "2001:db8:2::/48", 3600)]));
    assert_eq!((got.added, got.failed), (0, 1));
    assert_eq!(sink.totals().write_errors, 1);
    // Rebuilt empty (the watchdog's repair): the next apply, with nothing new, writes it all.
    install();
    let got = sink.apply(Delta::default());
    assert_eq!(got, Applied::default());
    assert!(set(&tb, "remote4").contains("198.51.100.7"));
    assert!(set(&tb, "remote6_net").contains("2001:db8:2::/48"));
    // Deleted and rebuilt between two applies, with no error to tell: the handle does.
    tb.sh(&tb.server, "nft delete table inet scanban").unwrap();
    install();
    sink.apply(Delta::default());
    assert!(set(&tb, "remote4").contains("198.51.100.7"));
    assert_eq!(connect_from(&tb, "2001:db8:2::9"), "timeout");
}
