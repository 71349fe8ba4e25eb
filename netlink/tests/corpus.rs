//! The fuzz corpus of `netlink_messages` (netlink/fuzz/corpus, seeded from fixtures/nfqueue) and
//! any regression inputs in fixtures/fuzz/netlink_messages, replayed on stable Rust through the
//! same readers the fuzz target drives, so CI guards against regressions without nightly.

use std::path::{Path, PathBuf};

use nfnl::ack::Ack;
use nfnl::attr::AttrIter;
use nfnl::message::Messages;
use nfnl::queue::PacketView;

fn walk(attrs: AttrIter<'_>, depth: u32) -> usize {
    let mut n = 0;
    for a in attrs.flatten() {
        n += 1;
        let _ = (a.u8("f"), a.be16("f"), a.be32("f"), a.be64("f"), a.str("f"));
        if depth < 4 {
            n += walk(a.nested(), depth + 1);
        }
    }
    n
}

/// What the fuzz target does with one input; returns the messages that framed correctly.
fn replay(data: &[u8]) -> usize {
    let mut messages = 0;
    for m in Messages::new(data).flatten() {
        messages += 1;
        let _ = PacketView::parse(&m);
        let _ = Ack::parse(&m);
        if let Ok((_, attrs)) = m.nfgen() {
            walk(AttrIter::new(attrs), 0);
        }
    }
    messages
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn corpus_and_regressions_replay_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = files(&root.join("fuzz/corpus/netlink_messages"));
    assert!(seeds.len() >= 6, "corpus seeds: {seeds:?}");
    for f in &seeds {
        let data = std::fs::read(f).unwrap();
        // Seeds are real kernel datagrams from a little-endian host (netlink headers are host
        // order): there, each frames into at least one message; elsewhere they are just bytes.
        let framed = replay(&data);
        if cfg!(target_endian = "little") {
            assert!(framed >= 1, "{}", f.display());
        }
        // And every truncation of them is handled (what the fuzzer tries first).
        for cut in 0..data.len() {
            replay(&data[..cut]);
        }
    }
    for f in files(&root.join("../fixtures/fuzz/netlink_messages")) {
        replay(&std::fs::read(&f).unwrap());
    }
}
