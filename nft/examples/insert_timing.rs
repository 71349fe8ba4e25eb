//! Times inserting set elements with one `nft::Batch`: 1 element, and 10,000 and 100,000 elements
//! in one transaction; prints the median of N runs in microseconds. Used by bench/nft-insert.sh, which
//! runs it inside a throwaway namespace next to the `nft` binary doing the same work.
//!
//! usage: insert_timing RUNS

use std::time::Instant;

use nfnl::NlSocket;
use nft::uapi::set::F_TIMEOUT;
use nft::{Batch, Element, Family, KeyType, Set, Table};

fn main() -> Result<(), nfnl::Error> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    let mut sock = NlSocket::open()?;
    for count in [1usize, 10_000, 100_000] {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let mut b = Batch::new();
            b.remove_table(Family::Inet, "timing", true);
            b.add_table(&Table::new(Family::Inet, "timing"));
            b.add_set(&Set {
                family: Family::Inet,
                table: "timing".into(),
                name: "s".into(),
                key: KeyType::Ipv6Addr,
                flags: F_TIMEOUT,
                size: Some(200_000),
                timeout_ms: None,
                comment: None,
                raw_key: None,
            });
            b.send(&mut sock)?;
            let elements: Vec<Element> = (0..count as u32)
                .map(|i| {
                    let mut key = [0u8; 16];
                    key[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                    key[12..].copy_from_slice(&i.to_be_bytes());
                    let mut e = Element::new(&key);
                    e.timeout_ms = Some(3_600_000);
                    e
                })
                .collect();
            let start = Instant::now();
            let mut b = Batch::new();
            b.add_elements(Family::Inet, "timing", "s", &elements);
            b.send(&mut sock)?;
            times.push(start.elapsed().as_micros());
        }
        times.sort_unstable();
        println!(
            "scanban batch, {count} elements: median {} us",
            times[runs / 2]
        );
    }
    Ok(())
}
