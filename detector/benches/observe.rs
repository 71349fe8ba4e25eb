//! ns per observation, at capacity: for a source already tracked (one `observe` at a time, and
//! through `observe_batch` eight at a time, as the daemon's shards get them), a new source
//! (which evicts one by CLOCK), and an allowlisted source. The tracked sources sit four to a
//! /24, so the prefix tier (where it exists) holds every prefix without churn, and none of them
//! adds up to a distributed scan: what a busy host sees, not an attack. A plain timing loop (no
//! criterion): run with `cargo bench -p detector --bench observe`. Figures belong in
//! docs/BENCHMARKS.md, never in a test.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use detector::{Allowlist, Cidr, Config, Detector, Observation, Proto};

fn obs(src: u32, port: u16) -> Observation {
    Observation {
        src: IpAddr::V4(Ipv4Addr::from(src)),
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        proto: Proto::Tcp,
        src_port: 40000,
        dst_port: port,
        tcp_flags: 0x02,
        ifindex: None,
    }
}

/// Observations per `observe_batch` call in the batched rows.
const SHARD_BATCH: usize = 8;

fn time(label: &str, n: u32, mut f: impl FnMut(u32)) {
    // Best of five runs: the least disturbed by the rest of the machine.
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            for i in 0..n {
                f(i);
            }
            start.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min);
    println!("{label:<48} {best:>7.1} ns/observation");
}

fn main() {
    let config = Config {
        allow: vec!["198.51.100.0/24".parse().unwrap()],
        ..Config::default()
    };
    let capacity = config.capacity as u32;
    println!(
        "capacity {capacity} sources, {} bytes per tracked source",
        detector::table::Table::bytes_per_source()
    );
    let base = 0x0b00_0000u32; // 11.0.0.0/8: keys only, nothing is sent anywhere
                               // The i-th tracked source: four to a /24.
    let src = |i: u32| base + (i / 4) * 256 + i % 4;
    let mut d = Detector::new(config.clone(), 1);
    for i in 0..capacity {
        d.observe(0, &obs(src(i), 2000));
    }
    let mut now = 1u64;
    // Known source, repeated port: lookup, leak, referenced flag, repeat.
    time("tracked source, repeated port", 2_000_000, |i| {
        now += 1;
        black_box(d.observe(now, &obs(src((i * 7919) % capacity), 2000)));
    });
    // The same through `observe_batch`, eight at a time: what each detector shard gets of a
    // full queue batch (64 packets, spread over 8 shards), one clock reading per batch.
    let mut batch = [obs(0, 0); SHARD_BATCH];
    let mut outcomes = [detector::Outcome::Repeat; SHARD_BATCH];
    time(
        "tracked source, repeated port, batches of 8",
        2_000_000,
        |i| {
            let k = i as usize % SHARD_BATCH;
            batch[k] = obs(src((i * 7919) % capacity), 2000);
            if k == SHARD_BATCH - 1 {
                now += SHARD_BATCH as u64;
                d.observe_batch(now, &batch, &mut outcomes);
                black_box(&outcomes);
            }
        },
    );
    // Known source, new ports. 20 ms apart, each source's new ports come 22 minutes apart: no
    // tier adds them up (a new port a minute would be a slow scan, banned at the 30th).
    time("tracked source, new port", 2_000_000, |i| {
        now += 20;
        let o = d.observe(
            now,
            &obs(src((i * 7919) % capacity), 3000 + (i / capacity) as u16),
        );
        black_box(o);
        while d.poll_action().is_some() {}
    });
    // New ports as above (from 4000 up: none of them seen yet), through `observe_batch`, eight
    // at a time.
    time("tracked source, new port, batches of 8", 2_000_000, |i| {
        let k = i as usize % SHARD_BATCH;
        batch[k] = obs(src((i * 7919) % capacity), 4000 + (i / capacity) as u16);
        if k == SHARD_BATCH - 1 {
            now += 20 * SHARD_BATCH as u64;
            d.observe_batch(now, &batch, &mut outcomes);
            black_box(&outcomes);
            while d.poll_action().is_some() {}
        }
    });
    // New sources at capacity: each evicts one (the first unreferenced from CLOCK's hand).
    let mut next = 0x0c00_0000u32; // 12.0.0.0/8
    time("new source at capacity (evicts one)", 2_000_000, |_| {
        now += 1;
        next += 1;
        black_box(d.observe(now, &obs(next, 2000)));
    });
    time("allowlisted source", 2_000_000, |i| {
        black_box(d.observe(now, &obs(0xc633_6400 + (i & 0xff), 22)));
    });
    // IPv6 sources against an auto-allowlist the size of a router's (own addresses, gateways,
    // resolvers, an on-link prefix): the key is checked for every protected address it could
    // cover, per observation.
    let mut allow: Vec<Cidr> = (1..=24u16)
        .map(|i| Cidr::host(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))))
        .collect();
    allow.push("192.0.2.1".parse().unwrap());
    d.set_allowlist(Allowlist::new(allow).with_on_link(["2001:db8::/64".parse::<Cidr>().unwrap()]));
    let v6 = |i: u32| Observation {
        src: IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x100,
            (i % 4096) as u16,
            0,
            0,
            0,
            1,
        )),
        dst: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ..obs(0, 2000)
    };
    time(
        "IPv6 source, 25 protected addresses (keyed /64)",
        2_000_000,
        |i| {
            now += 1;
            black_box(d.observe(now, &v6(i)));
        },
    );
    let packet = {
        let mut p = vec![
            0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 11, 0, 0, 1, 192, 0, 2, 1,
        ];
        p.extend_from_slice(&[0x9c, 0x40, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0xa0, 0x02, 0, 0]);
        p.extend_from_slice(&[0; 24]);
        p
    };
    time("parse only (IPv4 TCP SYN)", 5_000_000, |_| {
        black_box(detector::packet::parse(black_box(&packet)).ok());
    });
    println!("{:?}", d.counters());
}
