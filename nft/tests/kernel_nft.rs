//! nf_tables against the real kernel, each test in its own network namespace, checked with `nft`
//! (JSON and text listings) as the independent oracle.

use std::time::Duration;

use nfnl::{Error, NlSocket};
use nft::probe::{self, Features};
use nft::rule::{ct_state, tcp_flag};
use nft::uapi::set::F_TIMEOUT;
use nft::{
    dump, BaseChain, Batch, Chain, Element, Family, Hook, KeyType, Rule, Set, Table, Verdict,
};
use serde_json::Value;
use testbed::{wait_for, Testbed};

const T: &str = "scanban";

fn socket(tb: &Testbed) -> NlSocket {
    tb.in_server(NlSocket::open).expect("netlink socket")
}

fn nft_json(tb: &Testbed, args: &str) -> Value {
    let out = tb.sh(&tb.server, &format!("nft -j {args}")).unwrap();
    serde_json::from_str(&out).unwrap()
}

/// Objects of one kind ("table", "set", "chain", "rule", "element") in `nft -j list ...` output.
fn objects<'a>(v: &'a Value, kind: &str) -> Vec<&'a Value> {
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get(kind))
        .collect()
}

fn set(name: &str, key: KeyType, size: u32) -> Set {
    Set {
        family: Family::Inet,
        table: T.into(),
        name: name.into(),
        key,
        flags: F_TIMEOUT,
        size: Some(size),
        timeout_ms: None,
        comment: Some("scanban bans".into()),
        raw_key: None,
    }
}

fn base_chain(name: &str, hook: Hook, priority: i32) -> Chain {
    Chain {
        family: Family::Inet,
        table: T.into(),
        name: name.into(),
        base: Some(BaseChain {
            hook,
            priority,
            kind: "filter".into(),
            policy: Verdict::Accept,
        }),
    }
}

/// The shape of what scanban installs: ban sets, the early drop, and the sensor.
fn scanban_rules(f: &Features) -> Vec<Rule> {
    let r = |c: &str| Rule::new(Family::Inet, T, c);
    let queue = |rule: Rule| {
        if f.native_queue {
            rule.queue(0, 2, true, false)
        } else {
            rule.queue_compat(0, 2, true, false)
        }
    };
    vec![
        r("prerouting").ip_saddr_in("banned4").counter().drop(),
        r("prerouting")
            .ip6_saddr_prefix_in(64, "banned6")
            .counter()
            .drop(),
        r("sensor").iif_loopback().ret(),
        r("sensor").pkttype_not_host().ret(),
        r("sensor")
            .ct_state_in(ct_state::ESTABLISHED | ct_state::RELATED)
            .ret(),
        r("sensor").socket_transparent(0).ret(),
        r("sensor").socket_transparent(1).ret(),
        queue(r("sensor").tcp_flags(tcp_flag::SYN | tcp_flag::ACK, tcp_flag::SYN)),
        queue(r("sensor").l4proto_udp().ct_state_in(ct_state::NEW)).with_comment("udp probes"),
    ]
}

fn install(sock: &mut NlSocket, f: &Features) -> Result<(), Error> {
    let mut b = Batch::new();
    b.add_table(&Table::new(Family::Inet, T));
    b.add_set(&set("banned4", KeyType::Ipv4Addr, 65536));
    b.add_set(&set("banned6", KeyType::Ipv6Addr, 65536));
    b.add_chain(&base_chain("prerouting", Hook::Prerouting, -450));
    b.add_chain(&base_chain("sensor", Hook::Input, -10));
    for r in scanban_rules(f) {
        b.add_rule(&r);
    }
    b.send(sock)
}

fn nft_status(tb: &Testbed, cmd: &str) -> bool {
    tb.exec(&tb.server, &["bash", "-c", cmd])
        .unwrap()
        .status
        .success()
}

#[test]
fn probes_agree_with_nft_and_leave_nothing_behind() {
    let Some(tb) = Testbed::new("nftprobe") else {
        return;
    };
    let mut sock = socket(&tb);
    let f = probe::probe(&mut sock).unwrap();
    let empty = tb.sh(&tb.server, "nft list ruleset").unwrap();
    assert!(
        empty.trim().is_empty(),
        "probe committed something: {empty}"
    );

    // The oracle: nft itself, in a scratch table.
    tb.sh(
        &tb.server,
        "nft add table inet o && nft add chain inet o c '{ type filter hook input priority 0; }'",
    )
    .unwrap();
    let queue = nft_status(&tb, "nft add rule inet o c queue num 0 bypass");
    let socket_expr = nft_status(&tb, "nft add rule inet o c socket transparent 0");
    let compat = nft_status(
        &tb,
        "iptables-nft -A INPUT -j NFQUEUE --queue-num 0 --queue-bypass",
    );
    assert_eq!(f.native_queue, queue, "{f:?}");
    assert_eq!(f.socket, socket_expr, "{f:?}");
    assert_eq!(f.compat_queue, compat, "{f:?}");
    assert_eq!(f.destroy, probe::kernel_at_least(6, 3), "{f:?}");
}

#[test]
fn scanban_ruleset_installs_as_nft_reads_it() {
    let Some(tb) = Testbed::new("nftrules") else {
        return;
    };
    let mut sock = socket(&tb);
    let f = probe::probe(&mut sock).unwrap();
    install(&mut sock, &f).unwrap();

    let j = nft_json(&tb, "list ruleset");
    let tables = objects(&j, "table");
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0]["family"], "inet");
    assert_eq!(tables[0]["name"], T);
    let sets = objects(&j, "set");
    assert_eq!(sets.len(), 2);
    for (s, ty) in sets.iter().zip(["ipv4_addr", "ipv6_addr"]) {
        assert_eq!(s["type"], ty);
        assert_eq!(s["flags"], serde_json::json!(["timeout"]));
        assert_eq!(s["size"], 65536);
        assert_eq!(s["comment"], "scanban bans");
    }
    let chains = objects(&j, "chain");
    let pre = chains.iter().find(|c| c["name"] == "prerouting").unwrap();
    assert_eq!(
        (pre["hook"].as_str(), pre["prio"].as_i64()),
        (Some("prerouting"), Some(-450))
    );
    assert_eq!(pre["policy"], "accept");
    let sensor = chains.iter().find(|c| c["name"] == "sensor").unwrap();
    assert_eq!(
        (sensor["hook"].as_str(), sensor["prio"].as_i64()),
        (Some("input"), Some(-10))
    );
    let rules = objects(&j, "rule");
    let expected = scanban_rules(&f);
    assert_eq!(rules.len(), expected.len());

    // nft's own text for each installed rule is the text we print for it.
    for chain in ["prerouting", "sensor"] {
        let listing = tb
            .sh(&tb.server, &format!("nft list chain inet {T} {chain}"))
            .unwrap();
        let theirs: Vec<String> = listing
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("table") && !l.starts_with("chain"))
            .filter(|l| !l.starts_with("type ") && *l != "}")
            .map(strip_counter_values)
            .collect();
        let ours: Vec<String> = expected
            .iter()
            .filter(|r| r.chain == chain)
            .map(|r| r.to_nft().split(" # ").next().unwrap().to_string())
            .collect();
        assert_eq!(theirs, ours, "chain {chain}");
    }

    // And our dump reads back what we wrote.
    let dumped = dump::list_rules(&mut sock, Family::Inet, T, None).unwrap();
    assert_eq!(dumped.len(), expected.len());
    for (d, e) in dumped.iter().zip(&expected) {
        assert_eq!(d.chain, e.chain);
        assert_eq!(d.exprs, e.exprs, "rule {}", e.to_nft());
        assert_eq!(d.comment, e.comment);
    }
    let sets = dump::list_sets(&mut sock, Family::Inet, T).unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].size, Some(65536));
    assert_eq!(sets[0].comment.as_deref(), Some("scanban bans"));
    let chains = dump::list_chains(&mut sock, Family::Inet, T).unwrap();
    assert_eq!(chains.len(), 2);
    assert!(chains.contains(&base_chain("prerouting", Hook::Prerouting, -450)));

    // Installing again is a no-op for existing objects (create-if-absent), but appends rules:
    // replacing a chain's rules is flush + add in one batch.
    let mut b = Batch::new();
    b.add_table(&Table::new(Family::Inet, T));
    b.add_chain(&base_chain("sensor", Hook::Input, -10));
    b.flush_chain(Family::Inet, T, "sensor");
    for r in scanban_rules(&f)
        .into_iter()
        .filter(|r| r.chain == "sensor")
    {
        b.add_rule(&r);
    }
    b.send(&mut sock).unwrap();
    let rules = dump::list_rules(&mut sock, Family::Inet, T, Some("sensor")).unwrap();
    assert_eq!(
        rules.len(),
        expected.iter().filter(|r| r.chain == "sensor").count()
    );
}

/// "counter packets 3 bytes 180" -> "counter"
fn strip_counter_values(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        out.push(words[i]);
        if words[i] == "counter" && words.get(i + 1) == Some(&"packets") {
            i += 5;
        } else {
            i += 1;
        }
    }
    out.join(" ")
}

#[test]
fn ten_thousand_elements_in_one_batch() {
    let Some(tb) = Testbed::new("nft10k") else {
        return;
    };
    let mut sock = socket(&tb);
    let mut b = Batch::new();
    b.add_table(&Table::new(Family::Inet, T));
    b.add_set(&set("banned6", KeyType::Ipv6Addr, 20_000));
    let elements: Vec<Element> = (0..10_000u32)
        .map(|i| {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            key[4..8].copy_from_slice(&i.to_be_bytes());
            let mut e = Element::new(&key);
            e.timeout_ms = Some(3_600_000);
            e.comment = Some(format!("bulk {i}"));
            e
        })
        .collect();
    b.add_elements(Family::Inet, T, "banned6", &elements);
    assert!(b.len() > 3, "split over several NEWSETELEM messages");
    b.send(&mut sock).unwrap();

    let ours = dump::list_elements(&mut sock, Family::Inet, T, "banned6").unwrap();
    assert_eq!(ours.len(), 10_000);
    assert!(ours.iter().all(|e| e.timeout_ms == Some(3_600_000)));
    assert!(ours
        .iter()
        .any(|e| e.comment.as_deref() == Some("bulk 9999")));
    let j = nft_json(&tb, &format!("list set inet {T} banned6"));
    let count = objects(&j, "set")[0]["elem"].as_array().unwrap().len();
    assert_eq!(count, 10_000);
}

#[test]
fn elements_expire_and_show_their_comment() {
    let Some(tb) = Testbed::new("nftexpire") else {
        return;
    };
    let mut sock = socket(&tb);
    let mut b = Batch::new();
    b.add_table(&Table::new(Family::Inet, T));
    b.add_set(&set("banned4", KeyType::Ipv4Addr, 16));
    let mut short = Element::new(&[192, 0, 2, 10]);
    short.timeout_ms = Some(2000);
    short.comment = Some("scan: 21 ports".into());
    let mut long = Element::new(&[192, 0, 2, 11]);
    long.timeout_ms = Some(3_600_000);
    b.add_elements(Family::Inet, T, "banned4", &[short, long]);
    b.send(&mut sock).unwrap();

    let text = tb
        .sh(&tb.server, &format!("nft list set inet {T} banned4"))
        .unwrap();
    assert!(text.contains("192.0.2.10 timeout 2s expires"), "{text}");
    assert!(text.contains("comment \"scan: 21 ports\""), "{text}");
    let listed = dump::list_elements(&mut sock, Family::Inet, T, "banned4").unwrap();
    let e = listed.iter().find(|e| e.key == [192, 0, 2, 10]).unwrap();
    assert!(e.expiration_ms.unwrap() <= 2000);
    assert_eq!(e.comment.as_deref(), Some("scan: 21 ports"));

    let gone = wait_for(Duration::from_secs(10), || {
        let now = dump::list_elements(&mut sock, Family::Inet, T, "banned4").unwrap();
        (now.len() == 1).then_some(now)
    })
    .expect("the 2 s element expires");
    assert_eq!(gone[0].key, [192, 0, 2, 11]);
}

#[test]
fn a_broken_batch_changes_nothing_and_names_its_culprit() {
    let Some(tb) = Testbed::new("nftbroken") else {
        return;
    };
    let mut sock = socket(&tb);
    let mut b = Batch::new();
    b.add_table(&Table::new(Family::Inet, T));
    b.add_chain(&base_chain("prerouting", Hook::Prerouting, -450));
    b.add_rule(
        &Rule::new(Family::Inet, T, "prerouting")
            .ip_saddr_in("missing")
            .drop(),
    );
    let err = b.send(&mut sock).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "rule inet scanban prerouting: ip saddr @missing drop: No such file or directory"
        ),
        "{text}"
    );
    match err {
        Error::Request(r) => assert_eq!(r.errno, 2, "ENOENT"),
        other => panic!("{other}"),
    }
    let tables = tb.sh(&tb.server, "nft list tables").unwrap();
    assert!(tables.trim().is_empty(), "nothing committed: {tables}");
    assert!(dump::list_tables(&mut sock, None).unwrap().is_empty());
}

#[test]
fn removing_a_table_tolerates_absence_with_and_without_destroy() {
    let Some(tb) = Testbed::new("nftremove") else {
        return;
    };
    let mut sock = socket(&tb);
    // DESTROY exists from 6.3 on; older kernels (the kernel matrix boots 6.1) take the other
    // path only.
    let destroy = nft::probe::probe(&mut sock).unwrap().destroy;
    for have_destroy in [false, true].into_iter().filter(|d| !d || destroy) {
        let mut b = Batch::new();
        b.remove_table(Family::Inet, T, have_destroy);
        b.send(&mut sock).unwrap();
        let mut b = Batch::new();
        b.add_table(&Table::new(Family::Inet, T));
        b.send(&mut sock).unwrap();
        let mut b = Batch::new();
        b.remove_table(Family::Inet, T, have_destroy);
        b.send(&mut sock).unwrap();
        assert!(dump::list_tables(&mut sock, None).unwrap().is_empty());
    }
}

#[test]
fn a_stale_generation_is_refused() {
    let Some(tb) = Testbed::new("nftgenid") else {
        return;
    };
    let mut sock = socket(&tb);
    let gen = dump::generation(&mut sock).unwrap();
    let mut b = Batch::with_genid(gen);
    b.add_table(&Table::new(Family::Inet, T));
    b.send(&mut sock).unwrap();
    // Someone else changes the ruleset; our view is now stale.
    tb.sh(&tb.server, "nft add table inet other").unwrap();
    let mut b = Batch::with_genid(gen + 1);
    b.add_table(&Table::new(Family::Inet, "late"));
    let err = b.send(&mut sock).unwrap_err();
    match err {
        Error::Request(r) => assert_eq!(r.errno, 85, "ERESTART: {r}"),
        other => panic!("{other}"),
    }
}

#[test]
fn re_adding_an_element_refreshes_its_timeout_where_the_probe_says_so() {
    let Some(tb) = Testbed::new("nftrefresh") else {
        return;
    };
    let mut sock = socket(&tb);
    let f = probe::probe(&mut sock).unwrap();
    let mut b = Batch::new();
    b.add_table(&Table::new(Family::Inet, T));
    b.add_set(&set("banned4", KeyType::Ipv4Addr, 16));
    let mut e = Element::new(&[192, 0, 2, 20]);
    e.timeout_ms = Some(5_000);
    b.add_elements(Family::Inet, T, "banned4", &[e.clone()]);
    b.send(&mut sock).unwrap();

    e.timeout_ms = Some(3_600_000);
    let mut b = Batch::new();
    b.add_elements(Family::Inet, T, "banned4", &[e]);
    b.send(&mut sock).unwrap();
    let now = dump::list_elements(&mut sock, Family::Inet, T, "banned4").unwrap();
    let refreshed = now[0].expiration_ms.unwrap() > 5_000;
    assert_eq!(refreshed, f.timeout_refresh, "{f:?}, element {:?}", now[0]);
}

#[test]
fn rules_go_where_they_are_told() {
    let Some(tb) = Testbed::new("nftpos") else {
        return;
    };
    let mut sock = socket(&tb);
    let rule = |name: &str| Rule::new(Family::Inet, T, "c").counter().with_comment(name);
    let mut b = Batch::new();
    b.add_table(&Table::new(Family::Inet, T));
    b.add_chain(&Chain {
        family: Family::Inet,
        table: T.into(),
        name: "c".into(),
        base: None,
    });
    b.add_rule(&rule("A"));
    b.add_rule(&rule("B"));
    b.insert_rule_first(&rule("first"));
    b.send(&mut sock).unwrap();
    let order = |sock: &mut NlSocket| -> Vec<(String, u64)> {
        dump::list_rules(sock, Family::Inet, T, Some("c"))
            .unwrap()
            .into_iter()
            .map(|r| (r.comment.unwrap_or_default(), r.handle.unwrap()))
            .collect()
    };
    let now = order(&mut sock);
    assert_eq!(
        now.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["first", "A", "B"]
    );
    let (a, b_handle) = (now[1].1, now[2].1);
    let mut b = Batch::new();
    let mut after_a = rule("after A");
    after_a.position = Some(nft::Position::After(a));
    b.add_rule(&after_a);
    let mut before_b = rule("before B");
    before_b.position = Some(nft::Position::Before(b_handle));
    b.add_rule(&before_b);
    b.send(&mut sock).unwrap();
    let names: Vec<String> = order(&mut sock).into_iter().map(|r| r.0).collect();
    assert_eq!(names, ["first", "A", "after A", "before B", "B"]);
}

/// Interval sets (docs/WIRE-NOTES.md#interval-sets): CIDR blocks as start and end elements land
/// as nft reads them, adjacent blocks are accepted, an overlapping block is refused (the whole
/// batch with it), and a flush and a re-add of the same blocks in one batch commit.
#[test]
fn cidr_blocks_in_an_interval_set() {
    let Some(tb) = Testbed::new("nftintervals") else {
        return;
    };
    let mut sock = socket(&tb);
    let interval = Set {
        flags: F_TIMEOUT | nft::uapi::set::F_INTERVAL,
        ..set("r4", KeyType::Ipv4Addr, 1024)
    };
    let block = |key: &[u8], len: u32| {
        let (mut start, end) = Element::prefix_interval(key, len);
        start.timeout_ms = Some(3_600_000);
        std::iter::once(start).chain(end).collect::<Vec<_>>()
    };
    let mut blocks = block(&[198, 51, 100, 0], 25);
    blocks.extend(block(&[198, 51, 100, 128], 25));
    blocks.extend(block(&[192, 0, 2, 7], 32));
    blocks.extend(block(&[255, 255, 255, 0], 24));
    let mut b = Batch::new();
    b.add_table(&Table::new(Family::Inet, T));
    b.add_set(&interval);
    b.add_elements(Family::Inet, T, "r4", &blocks);
    b.send(&mut sock).unwrap();
    let listed = tb.sh(&tb.server, "nft list set inet scanban r4").unwrap();
    for b in [
        "198.51.100.0/25",
        "198.51.100.128/25",
        "192.0.2.7 ",
        "255.255.255.0/24",
    ] {
        assert!(listed.contains(b), "{b}: {listed}");
    }
    let has = |a: &str| nft_status(&tb, &format!("nft get element inet scanban r4 {{ {a} }}"));
    assert!(has("198.51.100.200") && has("192.0.2.7") && has("255.255.255.255"));
    assert!(!has("192.0.2.8") && !has("198.51.101.0"));

    // A /24 over the /25s, or an address inside one: refused, and nothing of the batch lands.
    // Verified on 6.18; the kernel matrix's 6.1 and 6.12 accept at least one of these overlaps,
    // so there it is not a fact to rely on (RemoteBans never writes overlapping blocks: it
    // writes their union, see src/fleet/book.rs).
    let refuses_overlaps = kernel_release() >= (6, 18);
    for (key, len) in [(&[198, 51, 100, 0][..], 24), (&[198, 51, 100, 9][..], 32)] {
        if !refuses_overlaps {
            break;
        }
        let mut b = Batch::new();
        b.add_elements(Family::Inet, T, "r4", &block(&[203, 0, 113, 0], 24));
        b.add_elements(Family::Inet, T, "r4", &block(key, len));
        let e = b.send(&mut sock).unwrap_err();
        // EEXIST, the extended ACK pointing at the overlapping element.
        assert_eq!(e.errno(), Some(17), "{e}");
        assert!(!has("203.0.113.1"));
    }

    // Flushed and written again in one transaction, as RemoteBans rewrites its ranges.
    let mut b = Batch::new();
    b.flush_set(Family::Inet, T, "r4");
    b.add_elements(Family::Inet, T, "r4", &blocks);
    b.send(&mut sock).unwrap();
    assert!(has("198.51.100.200") && has("192.0.2.7"));
    let dumped = tb
        .in_server(|| dump::list_elements(&mut sock, Family::Inet, T, "r4"))
        .unwrap();
    let ends = dumped
        .iter()
        .filter(|e| e.flags & nft::uapi::elem::F_INTERVAL_END != 0)
        .count();
    assert_eq!((dumped.len(), ends), (7, 3), "{dumped:?}");
}

/// The running kernel's (major, minor), from /proc/sys/kernel/osrelease.
fn kernel_release() -> (u32, u32) {
    let text = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = text.trim().split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}
