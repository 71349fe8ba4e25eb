//! `observe_batch` is `observe` in order: the same outcomes, actions and counters over random
//! histories that evict, ban (sources and prefixes), repeat, ignore and expire within and across
//! batches; and each `Banned` outcome of a batch pushed exactly one action, in order (what the
//! daemon relies on to tell which probe decided which ban).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use detector::{Action, Allowlist, Cidr, Config, Detector, Outcome, Proto, BATCH_WINDOW};

mod common;
use common::{probe, SYN};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A source from a small world: IPv4 sources crowded into four /24s (so prefixes fill up and
/// get banned), IPv6 sources in a few /64s of two /48s, an allowlisted source, and a
/// never-tracked one.
fn source(rng: &mut Rng) -> IpAddr {
    match rng.below(10) {
        0..=5 => IpAddr::V4(Ipv4Addr::new(
            203,
            0,
            113 + rng.below(4) as u8,
            rng.below(40) as u8 + 1,
        )),
        6..=7 => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            rng.below(2) as u16 + 1,
            rng.below(6) as u16,
            0,
            0,
            0,
            rng.below(3) as u16 + 1,
        )),
        8 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        _ => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
    }
}

fn drain(d: &mut Detector) -> Vec<Action> {
    std::iter::from_fn(|| d.poll_action()).collect()
}

#[test]
fn a_batch_is_the_same_as_observing_one_by_one() {
    let mut windows_with_bans = 0;
    let mut evicted = 0;
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let config = Config {
            capacity: 48,
            prefix_capacity: 6,
            offender_capacity: 16,
            allow: vec!["198.51.100.0/24".parse().unwrap()],
            ..Config::default()
        };
        let allow = Allowlist::new([
            "198.51.100.0/24".parse::<Cidr>().unwrap(),
            "2001:db8:2::5".parse::<Cidr>().unwrap(),
        ]);
        let mut one = Detector::new(config.clone(), seed);
        let mut batched = Detector::new(config, seed);
        one.set_allowlist(allow.clone());
        batched.set_allowlist(allow);
        let mut now = 0u64;
        for _ in 0..40 {
            now += rng.below(3_000);
            let len = 1 + rng.below(2 * BATCH_WINDOW as u64 + 3) as usize;
            let batch: Vec<_> = (0..len)
                .map(|_| {
                    let proto =
                        [Proto::Tcp, Proto::Tcp, Proto::Udp, Proto::Sctp][rng.below(4) as usize];
                    let flags = [SYN, 0x10, 0x01, 0x00][rng.below(4) as usize];
                    probe(source(&mut rng), proto, 1 + rng.below(60) as u16, flags)
                })
                .collect();
            let expected: Vec<Outcome> = batch.iter().map(|o| one.observe(now, o)).collect();
            let mut got = vec![Outcome::Repeat; len];
            batched.observe_batch(now, &batch, &mut got);
            assert_eq!(got, expected, "seed {seed}");
            let actions = drain(&mut batched);
            assert_eq!(actions, drain(&mut one), "seed {seed}");
            let banned = got.iter().filter(|o| **o == Outcome::Banned).count();
            assert_eq!(actions.len(), banned, "seed {seed}: one action per Banned");
            windows_with_bans += usize::from(banned > 0);
            if rng.below(4) == 0 {
                one.on_timer(now);
                batched.on_timer(now);
            }
        }
        assert_eq!(batched.counters(), one.counters(), "seed {seed}");
        evicted += one.counters().evicted;
    }
    // The histories did what they are for.
    assert!(windows_with_bans > 1_000, "{windows_with_bans}");
    assert!(evicted > 10_000, "{evicted}");
}
