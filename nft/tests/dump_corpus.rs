//! Real nf_tables dump replies (fixtures/nft/dumps, recorded by `examples/capture_dumps.rs` from
//! a ruleset nft itself wrote) decoded on every run, and the `dump` fuzz corpus and regression
//! inputs replayed on stable Rust, so CI guards against regressions without nightly.

use std::path::{Path, PathBuf};

use nfnl::message::Messages;
use nft::dump::decode;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The dumps hold host-endian netlink headers of a little-endian machine.
#[cfg(target_endian = "little")]
#[test]
fn real_dumps_decode_to_the_ruleset_nft_wrote() {
    use nft::dump::Decoded;
    let dumps = files(&root().join("../fixtures/nft/dumps"));
    assert!(dumps.len() >= 6, "{dumps:?}");
    let (mut tables, mut chains, mut sets, mut rules, mut elements) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for f in &dumps {
        let data = std::fs::read(f).unwrap();
        for m in Messages::new(&data) {
            match decode(&m.unwrap()).unwrap_or_else(|e| panic!("{}: {e}", f.display())) {
                Decoded::Table(t) => tables.push(t.name),
                Decoded::Chain(c) => chains.push(c.name),
                Decoded::Set(s) => sets.push((s.name, s.size)),
                Decoded::Rule(r) => rules.push(r.chain),
                Decoded::Elements(e) => elements.extend(e),
                Decoded::Other => {}
            }
        }
    }
    assert!(tables.contains(&"scanban".to_string()), "{tables:?}");
    for c in ["prerouting", "sensor"] {
        assert!(chains.iter().any(|n| n == c), "{chains:?}");
    }
    assert!(
        sets.contains(&("banned4".to_string(), Some(65536))),
        "{sets:?}"
    );
    assert!(
        sets.contains(&("banned6".to_string(), Some(65536))),
        "{sets:?}"
    );
    assert_eq!(
        rules.iter().filter(|c| *c == "prerouting").count(),
        2,
        "{rules:?}"
    );
    assert!(
        rules.iter().filter(|c| *c == "sensor").count() >= 5,
        "{rules:?}"
    );
    let by_hand = elements
        .iter()
        .find(|e| e.key == [198, 51, 100, 9])
        .expect("198.51.100.9 in banned4");
    assert_eq!(by_hand.comment.as_deref(), Some("by hand"));
    assert_eq!(by_hand.timeout_ms, Some(2 * 3600 * 1000));
    assert!(
        elements.iter().any(|e| e.key.len() == 16),
        "an IPv6 element"
    );
}

/// An interval set as the kernel dumps it (nft 1.0.6 wrote it: 198.51.100.0/25 for 2 h with a
/// comment, 198.51.100.128/25 for 1 h, 203.0.113.7 for 30 min, 255.255.255.0/24 for 1 h): each
/// block a start element with the timeout and comment, and an `F_INTERVAL_END` element one past
/// its last address with neither; no end for the block at the top of the address space
/// (docs/WIRE-NOTES.md#interval-sets).
#[cfg(target_endian = "little")]
#[test]
fn a_real_interval_set_dump_decodes_to_start_and_end_elements() {
    use nft::dump::Decoded;
    use nft::uapi::elem::F_INTERVAL_END;
    let mut elements = Vec::new();
    for f in files(&root().join("../fixtures/nft/dumps")) {
        if !f.to_string_lossy().contains("elements-remote4_net") {
            continue;
        }
        let data = std::fs::read(&f).unwrap();
        for m in Messages::new(&data) {
            if let Decoded::Elements(e) = decode(&m.unwrap()).unwrap() {
                elements.extend(e);
            }
        }
    }
    let find = |key: [u8; 4], end: bool| {
        elements
            .iter()
            .find(|e| e.key == key && (e.flags & F_INTERVAL_END != 0) == end)
            .unwrap_or_else(|| panic!("{key:?} end={end}: {elements:?}"))
    };
    let first = find([198, 51, 100, 0], false);
    assert_eq!(first.timeout_ms, Some(2 * 3600 * 1000));
    assert_eq!(first.comment.as_deref(), Some("remote:cscli"));
    // Adjacent blocks: the first one's end and the second one's start share a key.
    let end = find([198, 51, 100, 128], true);
    assert_eq!((end.timeout_ms, end.comment.as_deref()), (None, None));
    assert_eq!(
        find([198, 51, 100, 128], false).timeout_ms,
        Some(3600 * 1000)
    );
    find([198, 51, 101, 0], true);
    assert_eq!(
        find([203, 0, 113, 7], false).timeout_ms,
        Some(30 * 60 * 1000)
    );
    find([203, 0, 113, 8], true);
    find([255, 255, 255, 0], false);
    let ends = elements.iter().filter(|e| e.flags & F_INTERVAL_END != 0);
    // nft's own marker at zero (see tests/golden.rs) comes back too.
    assert_eq!(ends.count(), 4, "{elements:?}");
    assert_eq!(elements.len(), 8, "{elements:?}");
}

/// Every expression of every rule the kernel dumped decodes, re-encodes and decodes again to
/// the same value: what scanban reads from the kernel it can write back unchanged.
#[cfg(target_endian = "little")]
#[test]
fn real_dump_expressions_round_trip() {
    use nfnl::attr::AttrIter;
    use nfnl::message::{MessageBuilder, NfGenMsg};
    use nft::dump::Decoded;
    use nft::Expr;
    let mut seen = std::collections::BTreeSet::new();
    for f in files(&root().join("../fixtures/nft/dumps")) {
        let data = std::fs::read(&f).unwrap();
        for m in Messages::new(&data) {
            let Ok(Decoded::Rule(rule)) = decode(&m.unwrap()) else {
                continue;
            };
            for e in &rule.exprs {
                let mut buf = Vec::new();
                let mut b = MessageBuilder::new(&mut buf, 0x0a06, 1, 1, NfGenMsg::default());
                e.encode(&mut b);
                b.finish().unwrap();
                let msg = Messages::new(&buf).next().unwrap().unwrap();
                let elem = AttrIter::new(msg.nfgen().unwrap().1)
                    .next()
                    .unwrap()
                    .unwrap();
                assert_eq!(&Expr::parse(&elem).unwrap(), e, "{}", f.display());
                seen.insert(e.name().to_string());
            }
        }
    }
    for name in [
        "payload",
        "meta",
        "cmp",
        "bitwise",
        "lookup",
        "ct",
        "socket",
        "immediate",
    ] {
        assert!(seen.contains(name), "no {name} in the dumps: {seen:?}");
    }
}

#[test]
fn corpus_and_regressions_replay_without_panicking() {
    let mut inputs = files(&root().join("../fixtures/nft/dumps"));
    inputs.extend(files(&root().join("fuzz/corpus/dump")));
    inputs.extend(files(&root().join("../fixtures/fuzz/dump")));
    for f in inputs {
        let data = std::fs::read(&f).unwrap();
        for cut in [0, data.len() / 3, data.len() / 2, data.len()] {
            for m in Messages::new(&data[..cut]).flatten() {
                let _ = decode(&m);
            }
        }
    }
}
