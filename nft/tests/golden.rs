//! Our encoder against the reference one: the messages `nft --debug=mnl -f` printed for
//! fixtures/nft/*.nft (nft 1.0.6, kernel 6.18), decoded into attribute trees and compared with
//! what `nft::Batch` builds for the same objects.
//!
//! Intended differences, removed from nft's side before comparing:
//! - `NFTA_LOOKUP_SET_ID` and `NFTA_SET_ELEM_LIST_SET_ID`: nft names a set created in the same
//!   batch by its transaction id as well as by name; the kernel resolves the name alone (the
//!   kernel tests install rules and elements in the set's own batch).
//! - nft's `NFTA_SET_ID` numbering counts its anonymous sets too; ours counts ours.
//! - `NFTA_BITWISE_OP`: nft 1.0.6 sends it (as MASK_XOR, the default) for prefix masks but not
//!   for flag tests; we never send it, which every kernel reads as MASK_XOR.
//! - message flags: nft's debug print shows only REQUEST/MULTI/ACK/ECHO and never ACK (it asks
//!   for echoes instead); we ask for an ACK per object (docs/WIRE-NOTES.md#begin-end-acks).
//!
//! The captures hold host-endian netlink headers and meta/ct data of a little-endian machine.
#![cfg(target_endian = "little")]

use nfnl::attr::AttrIter;
use nfnl::message::Messages;
use nft::rule::tcp_flag;
use nft::{BaseChain, Batch, Chain, Element, Family, Hook, KeyType, Rule, Set, Table, Verdict};

/// One attribute: type, and either its value or its children.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Leaf(u16, Vec<u8>),
    Nest(u16, Vec<Node>),
}

fn tree(bytes: &[u8]) -> Vec<Node> {
    AttrIter::new(bytes)
        .map(|a| {
            let a = a.unwrap();
            if a.nested_flag() {
                Node::Nest(a.kind(), tree(a.value()))
            } else {
                Node::Leaf(a.kind(), a.value().to_vec())
            }
        })
        .collect()
}

/// Removes attributes of type `kind` at the top level of a message.
fn without(mut nodes: Vec<Node>, kind: u16) -> Vec<Node> {
    nodes.retain(|n| !matches!(n, Node::Leaf(k, _) | Node::Nest(k, _) if *k == kind));
    nodes
}

/// Removes `kind` everywhere below the nest path (used for lookup's SET_ID inside expressions).
fn without_deep(
    nodes: Vec<Node>,
    kind: u16,
    inside: &str,
    name_of: &dyn Fn(&[Node]) -> Option<String>,
) -> Vec<Node> {
    nodes
        .into_iter()
        .map(|n| match n {
            Node::Nest(k, children) => {
                let is_target = name_of(&children).as_deref() == Some(inside);
                let children = without_deep(children, kind, inside, name_of);
                let children = if is_target {
                    children
                        .into_iter()
                        .map(|c| match c {
                            Node::Nest(2, data) => Node::Nest(2, without(data, kind)),
                            other => other,
                        })
                        .collect()
                } else {
                    children
                };
                Node::Nest(k, children)
            }
            leaf => leaf,
        })
        .collect()
}

fn expr_name(children: &[Node]) -> Option<String> {
    children.iter().find_map(|c| match c {
        Node::Leaf(1, v) => std::str::from_utf8(v)
            .ok()
            .map(|s| s.trim_end_matches('\0').to_string()),
        _ => None,
    })
}

/// (message type, attribute bytes after nfgenmsg) of every message from BATCH_BEGIN on, rebuilt
/// from the libmnl debug print: attribute headers `|LLLLL|FF|TTTTT|` and 4-byte data rows.
fn mnl_messages(text: &str) -> Vec<(u16, Vec<u8>)> {
    let mut out: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut started = false;
    for raw in text.lines() {
        let line = strip_ansi(raw);
        if line.contains("|  type | flags  |") {
            let t: u16 = line[1..7].trim().parse().unwrap();
            started |= t == 16;
            out.push((t, Vec::new()));
        } else if line.contains("|len |flags| type|") {
            let f: Vec<&str> = line.split('|').collect();
            let len: u16 = f[1].parse().unwrap();
            let mut kind: u16 = f[3].parse().unwrap();
            if f[2].starts_with('N') {
                kind |= 0x8000;
            }
            if f[2].ends_with('B') {
                kind |= 0x4000;
            }
            let body = &mut out.last_mut().unwrap().1;
            body.extend_from_slice(&len.to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
        } else if line.contains("|      data      |") {
            let hex = &line[2..13];
            let body = &mut out.last_mut().unwrap().1;
            body.extend(hex.split(' ').map(|h| u8::from_str_radix(h, 16).unwrap()));
        }
    }
    // Drop the cache-fill GET requests nft sends before its batch.
    let first = out.iter().position(|(t, _)| *t == 16).unwrap();
    assert!(started);
    out.split_off(first)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn ours(batch: &Batch) -> Vec<(u16, Vec<u8>)> {
    let bytes = batch.bytes_with_end();
    Messages::new(&bytes)
        .map(|m| {
            let m = m.unwrap();
            (m.msg_type, m.payload[4..].to_vec())
        })
        .collect()
}

/// The objects of fixtures/nft/ruleset.nft, built with the crate's vocabulary, in nft's order.
fn ruleset_batch() -> Batch {
    let t = "scanban";
    let mut b = Batch::new();
    b.add_table(&Table::new(Family::Inet, t));
    for (name, hook, priority) in [
        ("prerouting", Hook::Prerouting, -450),
        ("sensor", Hook::Input, -10),
    ] {
        b.add_chain(&Chain {
            family: Family::Inet,
            table: t.into(),
            name: name.into(),
            base: Some(BaseChain {
                hook,
                priority,
                kind: "filter".into(),
                policy: Verdict::Accept,
            }),
        });
    }
    for (name, key) in [
        ("banned4", KeyType::Ipv4Addr),
        ("banned6", KeyType::Ipv6Addr),
    ] {
        b.add_set(&Set {
            family: Family::Inet,
            table: t.into(),
            name: name.into(),
            key,
            flags: nft::uapi::set::F_TIMEOUT,
            size: Some(65536),
            timeout_ms: None,
            comment: Some("scanban bans".into()),
            raw_key: None,
        });
    }
    let r = |chain: &str| Rule::new(Family::Inet, t, chain);
    b.add_rule(
        &r("prerouting")
            .ip_saddr_in("banned4")
            .counter()
            .drop()
            .with_comment("drop banned"),
    );
    b.add_rule(
        &r("prerouting")
            .ip6_saddr_prefix_in(64, "banned6")
            .counter()
            .drop(),
    );
    b.add_rule(&r("sensor").iif_loopback().ret());
    b.add_rule(&r("sensor").pkttype_not_host().ret());
    b.add_rule(
        &r("sensor")
            .ct_state_in(nft::rule::ct_state::ESTABLISHED | nft::rule::ct_state::RELATED)
            .ret(),
    );
    b.add_rule(&r("sensor").socket_transparent(0).ret());
    b.add_rule(&r("sensor").socket_transparent(1).ret());
    b.add_rule(
        &r("sensor")
            .tcp_flags(tcp_flag::SYN | tcp_flag::ACK, tcp_flag::SYN)
            .counter(),
    );
    let mut e = Element::new(&[192, 0, 2, 7]);
    e.timeout_ms = Some(3_600_000);
    e.comment = Some("21 ports".into());
    b.add_elements(Family::Inet, t, "banned4", &[e]);
    b
}

#[test]
fn ruleset_matches_nft_attribute_for_attribute() {
    let theirs = mnl_messages(include_str!("../../fixtures/nft/ruleset.mnl.txt"));
    let ours = ours(&ruleset_batch());
    assert_eq!(
        theirs.iter().map(|m| m.0).collect::<Vec<_>>(),
        ours.iter().map(|m| m.0).collect::<Vec<_>>(),
        "same messages in the same order"
    );
    for (i, ((t, theirs), (_, ours))) in theirs.iter().zip(&ours).enumerate() {
        let mut expected = tree(theirs);
        let actual = tree(ours);
        match t & 0xff {
            9 => {
                // NEWSET: transaction ids differ by design (see module docs).
                expected = without(expected, nft::uapi::set::ID);
                let actual = without(actual.clone(), nft::uapi::set::ID);
                assert_eq!(actual, expected, "message {i} (NEWSET)");
                continue;
            }
            12 => expected = without(expected, nft::uapi::elem::LIST_SET_ID),
            6 => {
                expected = without_deep(expected, 4, "lookup", &expr_name);
                expected = without_deep(expected, 6, "bitwise", &expr_name);
            }
            _ => {}
        }
        assert_eq!(actual, expected, "message {i} (type {t:#x})");
    }
}

#[test]
fn queue_rule_matches_nft() {
    let theirs = mnl_messages(include_str!("../../fixtures/nft/queue.mnl.txt"));
    let rule = theirs.iter().find(|(t, _)| t & 0xff == 6).unwrap();
    let mut b = Batch::new();
    b.add_rule(&Rule::new(Family::Inet, "scanban", "sensor").queue(0, 2, true, false));
    let ours = ours(&b);
    assert_eq!(tree(&ours[1].1), tree(&rule.1));
}

/// Element-list nests renumbered as ours (libnftnl numbers them 1, 2, 3...; the kernel reads
/// any type), and what nft adds for its own listing dropped: the `F_INTERVAL_END` element at
/// address zero it puts before the first interval (the kernel needs none: a lookup below the
/// first start finds nothing either way) and element userdata (`NFTNL_UDATA_SET_ELEM_FLAGS`
/// with `INTERVAL_OPEN` on a block that reaches the top of the address space, so nft prints it
/// as a prefix).
fn interval_elements_as_ours(nodes: Vec<Node>) -> Vec<Node> {
    let is_zero_end = |e: &[Node]| {
        let flags = e.iter().any(|n| {
            matches!(n, Node::Leaf(k, v) if *k == nft::uapi::elem::FLAGS
                && v.as_slice() == nft::uapi::elem::F_INTERVAL_END.to_be_bytes())
        });
        let zero_key = e.iter().any(|n| match n {
            Node::Nest(k, key) if *k & 0x7fff == nft::uapi::elem::KEY => key
                .iter()
                .all(|d| matches!(d, Node::Leaf(_, v) if v.iter().all(|b| *b == 0))),
            _ => false,
        });
        flags && zero_key
    };
    without(nodes, nft::uapi::elem::LIST_SET_ID)
        .into_iter()
        .map(|n| match n {
            Node::Nest(k, list) if k & 0x7fff == nft::uapi::elem::LIST_ELEMENTS => Node::Nest(
                k,
                list.into_iter()
                    .filter_map(|e| match e {
                        Node::Nest(_, e) if is_zero_end(&e) => None,
                        Node::Nest(_, e) => Some(Node::Nest(
                            nft::uapi::LIST_ELEM,
                            without(e, nft::uapi::elem::USERDATA),
                        )),
                        other => Some(other),
                    })
                    .collect(),
            ),
            other => other,
        })
        .collect()
}

fn elements_listed(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .map(|n| match n {
            Node::Nest(k, list) if k & 0x7fff == nft::uapi::elem::LIST_ELEMENTS => list.len(),
            _ => 0,
        })
        .sum()
}

/// fixtures/nft/intervals.nft: interval sets with timeouts (the remote-ban sets) and CIDR blocks
/// as start and `F_INTERVAL_END` elements (docs/WIRE-NOTES.md#interval-sets).
#[test]
fn interval_sets_and_blocks_match_nft() {
    use nft::uapi::{elem, set};
    let theirs = mnl_messages(include_str!("../../fixtures/nft/intervals.mnl.txt"));
    let t = "scanban";
    let mut b = Batch::new();
    let remote = |name: &str, key| Set {
        family: Family::Inet,
        table: t.into(),
        name: name.into(),
        key,
        flags: set::F_INTERVAL | set::F_TIMEOUT,
        size: Some(65536),
        timeout_ms: None,
        comment: Some("remote bans".into()),
        raw_key: None,
    };
    let sets = [
        remote("remote4_net", KeyType::Ipv4Addr),
        remote("remote6_net", KeyType::Ipv6Addr),
    ];
    for s in &sets {
        b.add_set(s);
    }
    let block = |key: &[u8], len: u32, timeout_ms: u64| {
        let (mut start, end) = Element::prefix_interval(key, len);
        start.timeout_ms = Some(timeout_ms);
        std::iter::once(start).chain(end).collect::<Vec<_>>()
    };
    let mut v4 = block(&[192, 0, 2, 0], 24, 3_600_000);
    v4.extend(block(&[198, 51, 100, 128], 25, 600_000));
    v4.extend(block(&[255, 255, 255, 0], 24, 60_000));
    assert_eq!(v4.len(), 5, "the top block has no end element");
    assert_eq!(v4[1].flags, elem::F_INTERVAL_END);
    b.add_elements(Family::Inet, t, "remote4_net", &v4);
    let v6: [u8; 16] = "2001:db8:1::"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    b.add_elements(Family::Inet, t, "remote6_net", &block(&v6, 48, 7_200_000));
    let ours = ours(&b);

    let newsets: Vec<_> = theirs.iter().filter(|(t, _)| t & 0xff == 9).collect();
    assert_eq!(newsets.len(), 2);
    for (i, (_, theirs)) in newsets.iter().enumerate() {
        assert_eq!(
            without(tree(&ours[1 + i].1), set::ID),
            without(tree(theirs), set::ID),
            "NEWSET {}",
            sets[i].name
        );
    }
    // nft 1.0.6 sends the blocks of a set it creates in the same file twice: with the set,
    // then for the `add element` command; the kernel keeps one copy. We send them once.
    let theirs: Vec<Vec<Node>> = theirs
        .iter()
        .filter(|(t, _)| t & 0xff == 12)
        .map(|(_, a)| interval_elements_as_ours(tree(a)))
        .filter(|m| elements_listed(m) > 0)
        .collect();
    assert_eq!(theirs.len(), 4);
    assert_eq!(theirs[..2], theirs[2..]);
    let theirs = &theirs[2..];
    let ours: Vec<Vec<Node>> = ours
        .iter()
        .filter(|(t, _)| t & 0xff == 12)
        .map(|(_, a)| tree(a))
        .collect();
    assert_eq!(ours, theirs);
}
