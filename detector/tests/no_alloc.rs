//! `observe` and `observe_batch` allocate nothing once the detector exists, at capacity and under
//! churn.
//!
//! Runs without libtest (`harness = false` in Cargo.toml): the allocation counter is global, and
//! libtest's own main thread allocates now and then while a test runs (4 allocations, 900 bytes,
//! about 1 run in 4), which the counter cannot tell from the detector's.

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr};

use detector::{Config, Detector, Observation, Proto};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

// Counts every allocation of this test binary (no `unsafe` here: stats_alloc wraps System).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    observe_does_not_allocate();
    println!("no_alloc: observe and observe_batch allocated nothing over 180,000 observations");
}

fn observe_does_not_allocate() {
    let c = Config {
        capacity: 1024,
        ..Config::default()
    };
    let mut d = Detector::new(c, 1);
    let obs = |i: u32, port: u16| Observation {
        src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        proto: Proto::Tcp,
        src_port: 1,
        dst_port: port,
        tcp_flags: 0x02,
        ifindex: None,
    };
    // Warm up: fill to capacity once.
    for i in 0..1024 {
        d.observe(0, &obs(i, 2000));
    }
    let region = Region::new(GLOBAL);
    let mut t = 0;
    let mut batch = [obs(0, 0); 40];
    let mut outcomes = [detector::Outcome::Repeat; 40];
    for round in 0..20u32 {
        for i in 0..3000u32 {
            t += 1;
            // New sources evicting old ones, known sources, repeats, and bans.
            d.observe(t, &obs(i * 7 + round, 2000 + (i % 30) as u16));
            // And a scanner that gets banned, again and again.
            d.observe(t, &obs(5_000_000 + i / 25, 100 + (i % 25) as u16));
            // The same through `observe_batch`, 40 at a time.
            let j = i % 40;
            batch[j as usize] = obs(i * 11 + round, 3000 + (i % 30) as u16);
            if j == 39 {
                d.observe_batch(t, &batch, &mut outcomes);
                while d.poll_action().is_some() {}
            }
        }
        while d.poll_action().is_some() {}
        d.on_timer(t);
    }
    let change = region.change();
    assert!(
        d.counters().bans > 0 && d.counters().evicted > 0,
        "{:?}",
        d.counters()
    );
    assert_eq!(
        (change.allocations, change.reallocations),
        (0, 0),
        "{change:?}"
    );
}
