//! `observe` allocates nothing once the detector exists, at capacity and under churn.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use detector::{Config, Detector, Observation, Proto};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
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
    COUNTING.store(true, Ordering::Relaxed);
    let mut t = 0;
    for round in 0..20u32 {
        for i in 0..3000u32 {
            t += 1;
            // New sources evicting old ones, known sources, repeats, and bans.
            d.observe(t, &obs(i * 7 + round, 2000 + (i % 30) as u16));
            // And a scanner that gets banned, again and again.
            d.observe(t, &obs(5_000_000 + i / 25, 100 + (i % 25) as u16));
        }
        while d.poll_action().is_some() {}
        d.on_timer(t);
    }
    COUNTING.store(false, Ordering::Relaxed);
    assert!(
        d.counters().bans > 0 && d.counters().evicted > 0,
        "{:?}",
        d.counters()
    );
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0);
}
