//! The fuzz corpus (detector/fuzz/corpus/parse, seeded from the real captures) and every
//! fixture capture replayed through the parser on stable Rust, so CI guards against regressions
//! without nightly. `SCANBAN_WRITE_CORPUS=1 cargo test -p detector --test corpus` rewrites the
//! seeds from the captures.

use std::path::Path;

fn fixture_packets() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pcap");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        if !f.to_string_lossy().contains(".pcap") {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        for frame in detector::pcap::frames(&bytes).unwrap() {
            if let Some(ip) = frame.unwrap().ip() {
                out.push(ip.to_vec());
            }
        }
    }
    out
}

#[test]
fn corpus_and_captures_parse_without_panicking() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse");
    let packets = fixture_packets();
    assert!(packets.len() > 4000);
    if std::env::var_os("SCANBAN_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&corpus).unwrap();
        // One seed per distinct (version, protocol, flags) shape.
        let mut seen = std::collections::BTreeSet::new();
        for p in &packets {
            let shape = (
                p[0] >> 4,
                detector::packet::parse(p)
                    .map(|o| (o.proto, o.tcp_flags))
                    .ok(),
            );
            if seen.insert(format!("{shape:?}")) {
                std::fs::write(corpus.join(format!("seed-{}.bin", seen.len())), p).unwrap();
            }
        }
    }
    let mut parsed = 0;
    for p in &packets {
        parsed += detector::packet::parse(p).is_ok() as usize;
        for cut in [0, 1, 19, 20, 39, 40, 41, 54] {
            let _ = detector::packet::parse(&p[..cut.min(p.len())]);
        }
    }
    assert!(
        parsed > packets.len() * 9 / 10,
        "{parsed} of {}",
        packets.len()
    );
    let mut seeds = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = detector::packet::parse(&bytes);
        seeds += 1;
    }
    assert!(seeds >= 5, "corpus seeded");
}
