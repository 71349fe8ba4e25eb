//! `detector`: whether a source is port-scanning, decided without I/O.
//!
//! Sans-IO in the quinn-proto sense: no sockets, no clock, no threads, no logging. The caller
//! passes each probe with the time (`observe`), collects ban decisions (`poll_action`), and
//! calls `on_timer` when `next_deadline` says so. The same code runs in the daemon, in
//! `scanban replay` on a pcap, and in tests with a fake clock.
//!
//! Policy (see `Config` for the numbers): each *distinct* closed (protocol, port) a source
//! probes adds its weight to the source's score (privileged ports more, stealth probes most);
//! repeats add nothing; the score leaks over time; at the threshold the source is banned, unless
//! the ban rate limit says no. Memory is bounded by `Config::capacity` and allocated up front:
//! `observe` never allocates.
//!
//! Modules: [`packet`] (header parsing), [`inet`] (protocol numbers, TCP flags and prefix
//! masks shared with the `nft` crate), [`source`] (who is counted), [`allowlist`],
//! [`table`] (bounded tracking), [`offenders`] (ban escalation), [`ratelimit`], [`evidence`],
//! [`config`], [`pcap`] and [`replay`] (offline use).

#![forbid(unsafe_code)]

pub mod allowlist;
pub mod config;
pub mod evidence;
pub mod inet;
pub mod offenders;
pub mod packet;
pub mod pcap;
pub mod probe;
pub mod ratelimit;
pub mod replay;
pub mod source;
pub mod table;

use std::collections::VecDeque;
use std::net::IpAddr;

pub use allowlist::{Allowlist, Cidr, Keyed, Narrowed};
pub use config::Config;
pub use evidence::{Evidence, Tier};
pub use packet::{Ignored, Observation, Proto};
pub use probe::ProbeKind;
pub use source::SourceKey;

use evidence::SHOWN_PORTS;
use offenders::Offenders;
use ratelimit::{RateLimiter, SharedLimiter};
use table::{Inserted, Table};

/// A decision for the caller to carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Put `key` in the ban set for `duration_ms`.
    Ban {
        key: SourceKey,
        duration_ms: u64,
        evidence: Evidence,
    },
}

/// What one observation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ignored(Ignored),
    /// A new closed port for this source; its score now.
    Counted {
        score: u32,
    },
    /// A port this source already probed: nothing added.
    Repeat,
    /// The source crossed the threshold and a ban action is waiting in `poll_action`.
    Banned,
    /// The source was banned moments ago and this probe came before the kernel drop took
    /// effect (or through a queue the ban does not cover): drop it.
    AlreadyBanned,
    /// The source crossed the threshold but the ban rate limit held the ban back.
    Suppressed,
}

/// Counters for `scanban status` and the metrics file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub observed: u64,
    /// By `Ignored` reason, in `Ignored::ALL` order.
    pub ignored: [u64; 5],
    pub counted: u64,
    pub repeats: u64,
    /// Sources tracked now.
    pub tracked: u64,
    /// Sources forgotten to make room.
    pub evicted: u64,
    pub bans: u64,
    pub suppressed: u64,
    /// Ban actions dropped because nobody polled them (should stay 0).
    pub actions_dropped: u64,
    /// Probes from sources banned moments ago.
    pub already_banned: u64,
    /// Prefixes tracked now (the distributed-scan tier).
    pub prefixes: u64,
    /// Prefixes that reached their threshold but hold a protected address: not banned.
    pub prefix_protected: u64,
}

/// Sums the counters of several detectors (the daemon's shards).
impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, c: Counters) {
        // Destructured so that a new counter cannot be left out of the sum.
        let Counters {
            observed,
            ignored,
            counted,
            repeats,
            tracked,
            evicted,
            bans,
            suppressed,
            actions_dropped,
            already_banned,
            prefixes,
            prefix_protected,
        } = c;
        self.observed += observed;
        for (a, b) in self.ignored.iter_mut().zip(ignored) {
            *a += b;
        }
        self.counted += counted;
        self.repeats += repeats;
        self.tracked += tracked;
        self.evicted += evicted;
        self.bans += bans;
        self.suppressed += suppressed;
        self.actions_dropped += actions_dropped;
        self.already_banned += already_banned;
        self.prefixes += prefixes;
        self.prefix_protected += prefix_protected;
    }
}

/// Addresses of a prefix that must take part before the prefix is banned as a whole.
pub const PREFIX_MIN_SOURCES: u8 = 4;

/// Housekeeping period.
const TICK_MS: u64 = 1_000;

/// Observations `observe_batch` looks up before counting them: enough cache misses in flight to
/// overlap their waits, few enough that what they loaded is still in cache when counted.
pub const BATCH_WINDOW: usize = 16;

/// Ban actions a detector keeps until polled, at the least (twice `ban-burst` if more): a caller
/// that polls after each `observe_batch` of at most this many observations loses none.
pub const MIN_ACTIONS: usize = 32;
const _: () = assert!(BATCH_WINDOW <= MIN_ACTIONS);

/// No slot: a source not looked up (no table has this many slots).
const NO_SLOT: u32 = u32::MAX;

/// Slots of each table `on_timer` looks at per tick for spent tracks: its work is bounded
/// however many are spent (walking the oldest first was not).
const SWEEP_PER_TICK: usize = 1_024;

pub struct Detector {
    config: Config,
    allow: Allowlist,
    table: Table,
    /// The distributed-scan tier: one track per prefix.
    prefixes: Table,
    offenders: Offenders,
    limiter: SharedLimiter,
    actions: VecDeque<Action>,
    action_capacity: usize,
    counters: Counters,
    rng: u64,
    last_tick_ms: u64,
}

impl Detector {
    /// `seed` drives the ban-length jitter (the daemon passes randomness, tests a constant).
    pub fn new(config: Config, seed: u64) -> Self {
        let action_capacity = (config.ban_burst as usize * 2).max(MIN_ACTIONS);
        Detector {
            allow: Allowlist::new(config.allow.iter().copied()),
            table: Table::new(config.capacity),
            prefixes: Table::new(config.prefix_capacity),
            offenders: Offenders::new(config.offender_capacity, config.offender_memory_ms),
            limiter: SharedLimiter::new(std::sync::Mutex::new(RateLimiter::new(
                config.ban_rate,
                config.ban_burst,
            ))),
            actions: VecDeque::with_capacity(action_capacity),
            action_capacity,
            counters: Counters::default(),
            rng: seed | 1,
            last_tick_ms: 0,
            config,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ban budget, to share with the other detectors of one daemon (`share_limiter`).
    pub fn limiter(&self) -> SharedLimiter {
        SharedLimiter::clone(&self.limiter)
    }

    /// Draws bans from `limiter`, shared with other detectors: one rate for all of them.
    pub fn share_limiter(&mut self, limiter: SharedLimiter) {
        self.limiter = limiter;
    }

    /// Replaces the allowlist (configured plus automatic entries). Sources now on it are
    /// ignored from the next probe on; what was tracked of them ages out.
    pub fn set_allowlist(&mut self, allow: Allowlist) {
        self.allow = allow;
    }

    /// Replaces the policy (weights, threshold, leak, ban lengths, rate) keeping every tracked
    /// source and offence: a configuration reload loses no state. Table sizes are fixed at
    /// construction, so `capacity` and `offender_capacity` keep their old values.
    pub fn set_policy(&mut self, mut config: Config) {
        config.capacity = self.config.capacity;
        config.offender_capacity = self.config.offender_capacity;
        config.prefix_capacity = self.config.prefix_capacity;
        // Scores are kept in leak units: a new leak rate rescales them, so no score changes.
        let old = &self.config;
        let rescale = |v: u64, from: u64, to: u64| {
            (u128::from(v) * u128::from(to.max(1)) / u128::from(from.max(1))) as u64
        };
        let (f0, f1) = (old.leak_every_ms, config.leak_every_ms);
        let (s0, s1) = (old.slow_leak_every_ms, config.slow_leak_every_ms);
        if (f0, s0) != (f1, s1) {
            self.table.for_each_mut(|t| {
                t.score = rescale(t.score, f0, f1);
                t.slow = rescale(t.slow, s0, s1);
            });
        }
        let (p0, p1) = (old.prefix_leak_every_ms, config.prefix_leak_every_ms);
        if p0 != p1 {
            self.prefixes
                .for_each_mut(|t| t.score = rescale(t.score, p0, p1));
        }
        if let Ok(mut l) = self.limiter.lock() {
            if l.rate() != (config.ban_rate, config.ban_burst.max(1)) {
                l.reconfigure(config.ban_rate, config.ban_burst);
            }
        }
        self.offenders.set_memory(config.offender_memory_ms);
        self.config = config;
    }

    /// The key `addr` is counted and banned under (`None`: protected, never banned).
    pub fn key_for(&self, addr: &std::net::IpAddr) -> Option<SourceKey> {
        match self.allow.key_for(addr, self.config.ipv6_prefix) {
            Keyed::Protected => None,
            Keyed::Key(k, _) => Some(k),
        }
    }

    /// Parses a queued packet and observes it.
    pub fn observe_packet(&mut self, now_ms: u64, bytes: &[u8], ifindex: Option<u32>) -> Outcome {
        match packet::parse(bytes) {
            Ok(mut obs) => {
                obs.ifindex = ifindex;
                self.observe(now_ms, &obs)
            }
            Err(why) => self.ignore(why),
        }
    }

    /// Counts a packet that could not be observed, for `why` (the caller parsed it and failed).
    pub fn ignore(&mut self, why: Ignored) -> Outcome {
        self.counters.observed += 1;
        let i = Ignored::ALL.iter().position(|w| *w == why).unwrap_or(0);
        self.counters.ignored[i] += 1;
        Outcome::Ignored(why)
    }

    pub fn observe(&mut self, now_ms: u64, obs: &Observation) -> Outcome {
        let keyed = self.keyed(obs);
        self.count(now_ms, obs, keyed, NO_SLOT)
    }

    /// Observes `batch` at `now_ms`, writing the outcome of `batch[i]` to `out[i]`: the same
    /// outcomes, actions and counters as one `observe` per observation, in order, and each
    /// `Banned` outcome pushed exactly one action, in the same order. Cheaper per observation
    /// than `observe` where the tables outgrow the CPU's caches: it first looks up the source
    /// of every IPv4 probe of a window of `BATCH_WINDOW` (its own key: an IPv6 source's key
    /// takes the allowlist, and is left to the count), reading its track and its prefix's, so
    /// that the window's cache misses are in flight together instead of one after another;
    /// then counts each probe where its source was found (checked again: an earlier probe of
    /// the window may have moved it).
    ///
    /// Panics if `out` is shorter than `batch`.
    pub fn observe_batch(&mut self, now_ms: u64, batch: &[Observation], out: &mut [Outcome]) {
        assert!(out.len() >= batch.len(), "one outcome per observation");
        for (window, outs) in batch.chunks(BATCH_WINDOW).zip(out.chunks_mut(BATCH_WINDOW)) {
            let mut slots = [NO_SLOT; BATCH_WINDOW];
            let mut loaded = 0u64;
            for (obs, slot) in window.iter().zip(&mut slots) {
                if let IpAddr::V4(a) = obs.src {
                    if let Some(i) = self.table.find(&SourceKey::V4(a)) {
                        *slot = i;
                        loaded ^= self.table.load(i) ^ self.prefixes.load(self.table.hint(i));
                    }
                }
            }
            // What the loads read is of no use but to make them happen: without a use, the
            // compiler would drop them.
            std::hint::black_box(loaded);
            for ((obs, slot), o) in window.iter().zip(slots).zip(outs) {
                *o = self.count(now_ms, obs, self.keyed(obs), slot);
            }
        }
    }

    /// The key `obs` is counted under, or `Protected`.
    #[inline]
    fn keyed(&self, obs: &Observation) -> Keyed {
        // An IPv4 source is its own key: decided here, without the IPv6 keying's call (the
        // detector bench measured ~40 ns less per IPv4 observation this way).
        match obs.src {
            IpAddr::V4(_) if source::never_tracked(&obs.src) || self.allow.contains(&obs.src) => {
                Keyed::Protected
            }
            IpAddr::V4(a) => Keyed::Key(SourceKey::V4(a), Narrowed::No),
            IpAddr::V6(_) => self.allow.key_for(&obs.src, self.config.ipv6_prefix),
        }
    }

    /// Counts `obs` against `keyed`; `guess` is where the source's track was found a moment
    /// ago (`NO_SLOT`: not looked up), used if it still holds the source.
    fn count(&mut self, now_ms: u64, obs: &Observation, keyed: Keyed, guess: u32) -> Outcome {
        let (key, narrowed) = match keyed {
            Keyed::Protected => return self.ignore(Ignored::Allowlisted),
            Keyed::Key(key, narrowed) => (key, narrowed),
        };
        self.counters.observed += 1;
        let found = if self.table.holds(guess, &key) {
            Some(guess)
        } else {
            self.table.find(&key)
        };
        // A tracked source is not banned: its track goes at the ban and is not made again while
        // the ban lasts (the offender check below comes first). So only an untracked source
        // pays for the offender lookups.
        let mut new_source = false;
        let slot = match found {
            Some(i) => i,
            None => {
                new_source = true;
                // A banned prefix is checked where its track is missing (`count_prefix`).
                if self.is_banned(&key, now_ms) {
                    self.counters.already_banned += 1;
                    return Outcome::AlreadyBanned;
                }
                let (i, how) = self.table.insert(key, now_ms);
                if how == Inserted::NewAfterEviction {
                    self.counters.evicted += 1;
                }
                i
            }
        };
        let c = &self.config;
        let probe = ProbeKind::of(obs);
        let weight = u64::from(probe.weight(obs.dst_port, c));
        let kind = probe.evidence_bit();
        let (fast_unit, slow_unit) = (c.leak_every_ms.max(1), c.slow_leak_every_ms.max(1));
        let fast_bar = u64::from(c.threshold) * fast_unit;
        // The slow score leaks slower than the fast one under the same weights, so it is never
        // below it: a slow bar under `threshold` would ban what an admin raised `threshold` to
        // let through.
        let slow_bar = if c.slow_threshold == 0 {
            u64::MAX
        } else {
            u64::from(c.slow_threshold.max(c.threshold)) * slow_unit
        };
        // The source's guess at its prefix's slot, read before its track is borrowed below (only
        // a new port uses it). It is kept apart from the track, so its load need not wait for
        // the track's.
        let hint = self.table.hint(slot);
        // A source seen again is marked referenced (CLOCK's second chance, in the line written
        // here anyway); a new one is not, so a flood of sources seen once evicts its own.
        let track = if new_source {
            self.table.at_mut(slot)
        } else {
            self.table.touch(slot)
        };
        track.leak(now_ms);
        track.probes = track.probes.saturating_add(1);
        let mut prefix = None;
        let new_port = !track.repeats_last_port(obs.proto, obs.dst_port) && {
            // Not a retry of its last port: the prefix's track (where the source found it
            // last: `hint`) is checked now, so that its load overlaps the one of the source's
            // ports.
            if c.prefix_threshold != 0 {
                let pkey = SourceKey::aggregate(obs.src, c.prefix_v4, c.prefix_v6);
                let held = self.prefixes.holds(hint, &pkey);
                prefix = Some((pkey, held.then_some(hint)));
            }
            track.add_port(obs.proto, obs.dst_port)
        };
        if !new_port {
            self.counters.repeats += 1;
            return Outcome::Repeat;
        }
        self.counters.counted += 1;
        track.stealth |= kind;
        track.score = track.score.saturating_add(weight * fast_unit);
        track.slow = track.slow.saturating_add(weight * slow_unit);
        let tier = if track.score >= fast_bar {
            Tier::Burst
        } else if track.slow >= slow_bar {
            Tier::Slow
        } else {
            let score = (track.score / fast_unit) as u32;
            return match self.count_prefix(now_ms, obs, weight, new_source, slot, prefix) {
                Some(outcome) => outcome,
                None => Outcome::Counted { score },
            };
        };
        // A poisoned budget (a panic elsewhere) bans nothing rather than everything.
        let granted = self.limiter.lock().is_ok_and(|mut l| l.try_take(now_ms));
        if !granted {
            self.counters.suppressed += 1;
            return Outcome::Suppressed;
        }
        if let Some(track) = self.table.remove(&key) {
            self.ban(track, narrowed, now_ms, tier);
        }
        Outcome::Banned
    }

    /// Whether `key` is banned now (by the detector's own record).
    fn is_banned(&self, key: &SourceKey, now_ms: u64) -> bool {
        self.offenders
            .get(key)
            .is_some_and(|o| now_ms < o.last_ban_ms.saturating_add(o.last_duration_ms))
    }

    /// Adds a port new to its source to the source's prefix: the distributed-scan tier. Only
    /// ports new to the prefix count, so many clients of one NAT retrying the same closed port
    /// add one port's weight, however many they are; and a prefix is banned only when at least
    /// `PREFIX_MIN_SOURCES` of its addresses took part (one source is the per-source tiers'
    /// business: its neighbours are not to pay for it). `Some` when the prefix is banned.
    fn count_prefix(
        &mut self,
        now_ms: u64,
        obs: &Observation,
        weight: u64,
        new_source: bool,
        src_slot: u32,
        prefix: Option<(SourceKey, Option<u32>)>,
    ) -> Option<Outcome> {
        // `prefix`: the prefix key, and its slot if the source's guess held (`None` when the
        // tier is off).
        let (pkey, held) = prefix?;
        let c = &self.config;
        let unit = c.prefix_leak_every_ms.max(1);
        let bar = u64::from(c.prefix_threshold) * unit;
        let (slot, new_prefix) = if let Some(slot) = held {
            (slot, false)
        } else {
            // As for sources: a banned prefix has no track, and gets none while the ban lasts.
            let (slot, new_prefix) = match self.prefixes.find(&pkey) {
                Some(i) => (i, false),
                None => {
                    if self.is_banned(&pkey, now_ms) {
                        self.counters.already_banned += 1;
                        return Some(Outcome::AlreadyBanned);
                    }
                    (self.prefixes.insert(pkey, now_ms).0, true)
                }
            };
            self.table.set_hint(src_slot, slot);
            (slot, new_prefix)
        };
        // Like a source's: referenced when seen again, not when new.
        let track = if new_prefix {
            self.prefixes.at_mut(slot)
        } else {
            self.prefixes.touch(slot)
        };
        track.leak(now_ms);
        if new_source {
            track.sources = track.sources.saturating_add(1);
        }
        track.probes = track.probes.saturating_add(1);
        let new_port = track.add_port(obs.proto, obs.dst_port);
        if !new_port {
            return None;
        }
        track.score = track.score.saturating_add(weight * unit);
        if track.score < bar || track.sources < PREFIX_MIN_SOURCES {
            return None;
        }
        // Never a ban that covers a protected address or one of the host's own prefixes: the
        // prefix's sources stay counted one by one.
        if !self.allow.may_ban_prefix(&pkey) {
            track.score = 0;
            self.counters.prefix_protected += 1;
            return None;
        }
        let granted = self.limiter.lock().is_ok_and(|mut l| l.try_take(now_ms));
        if !granted {
            self.counters.suppressed += 1;
            return Some(Outcome::Suppressed);
        }
        let track = self.prefixes.remove(&pkey)?;
        self.ban(track, Narrowed::No, now_ms, Tier::Prefix);
        Some(Outcome::Banned)
    }

    fn ban(&mut self, track: table::Track, narrowed: allowlist::Narrowed, now_ms: u64, tier: Tier) {
        let key = track.key;
        let c = &self.config;
        let unit = match tier {
            Tier::Burst => c.leak_every_ms,
            Tier::Slow => c.slow_leak_every_ms,
            Tier::Prefix => c.prefix_leak_every_ms,
        }
        .max(1);
        let score = match tier {
            Tier::Slow => track.slow,
            _ => track.score,
        } / unit;
        let offence = self
            .offenders
            .record(key, now_ms, c.ban_ms, c.ban_factor, c.ban_max_ms);
        let duration_ms = self.jitter(offence.last_duration_ms);
        self.offenders.set_duration(&key, duration_ms);
        let mut ports = [(Proto::Tcp, 0u16); SHOWN_PORTS];
        let mut shown = 0;
        for (slot, p) in ports.iter_mut().zip(track.ports()) {
            *slot = p;
            shown += 1;
        }
        let evidence = Evidence {
            score: score as u32,
            distinct_ports: u32::from(track.distinct),
            probes: track.probes,
            ports,
            shown,
            stealth: track.stealth,
            ban_ms: duration_ms,
            offence: offence.count,
            first_ms: track.first_ms,
            last_ms: now_ms,
            narrowed,
            tier,
        };
        if self.actions.len() >= self.action_capacity {
            self.actions.pop_front();
            self.counters.actions_dropped += 1;
        }
        self.actions.push_back(Action::Ban {
            key,
            duration_ms,
            evidence,
        });
        self.counters.bans += 1;
    }

    /// `duration` spread by ±`ban_jitter_percent`, never past `ban_max_ms`, at least 1 s.
    fn jitter(&mut self, duration: u64) -> u64 {
        let pct = u64::from(self.config.ban_jitter_percent.min(50));
        if pct == 0 {
            return duration;
        }
        // xorshift64*: deterministic for a given seed, plenty for spreading expiries.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let span = duration / 100 * pct;
        let offset = if span == 0 { 0 } else { r % (2 * span + 1) };
        (duration - span + offset)
            .min(self.config.ban_max_ms)
            .max(1000)
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When `on_timer` should run next.
    pub fn next_deadline(&self) -> u64 {
        self.last_tick_ms + TICK_MS
    }

    /// Housekeeping: forgets sources and prefixes whose scores have leaked to nothing, looking
    /// at `SWEEP_PER_TICK` slots of each table per call (a sweep that goes round: a spent track
    /// is forgotten within `capacity / SWEEP_PER_TICK` ticks, 64 s at the default capacity and
    /// 8 s in each of the daemon's shards), and offences past the memory horizon.
    pub fn on_timer(&mut self, now_ms: u64) {
        self.last_tick_ms = now_ms;
        self.table.forget_spent(now_ms, SWEEP_PER_TICK);
        self.prefixes.forget_spent(now_ms, SWEEP_PER_TICK);
        self.offenders.expire(now_ms);
    }

    /// Forgets a source entirely, ban included (an admin lifted its ban and means it).
    pub fn forget(&mut self, key: &SourceKey) {
        self.table.remove(key);
        self.prefixes.remove(key);
        self.offenders.lift(key);
    }

    pub fn counters(&self) -> Counters {
        Counters {
            tracked: self.table.len() as u64,
            prefixes: self.prefixes.len() as u64,
            ..self.counters
        }
    }

    /// The score a source has now (after leak), if tracked.
    pub fn score(&self, key: &SourceKey, now_ms: u64) -> Option<u32> {
        self.table.get(key).map(|t| {
            let mut t = *t;
            t.leak(now_ms);
            (t.score / self.config.leak_every_ms.max(1)) as u32
        })
    }

    /// The long-horizon score a source has now (after leak), if tracked.
    pub fn slow_score(&self, key: &SourceKey, now_ms: u64) -> Option<u32> {
        self.table.get(key).map(|t| {
            let mut t = *t;
            t.leak(now_ms);
            (t.slow / self.config.slow_leak_every_ms.max(1)) as u32
        })
    }

    /// The score of the prefix `addr` is aggregated under (after leak), if tracked.
    pub fn prefix_score(&self, addr: &IpAddr, now_ms: u64) -> Option<u32> {
        let c = &self.config;
        let key = SourceKey::aggregate(*addr, c.prefix_v4, c.prefix_v6);
        self.prefixes.get(&key).map(|t| {
            let mut t = *t;
            t.leak(now_ms);
            (t.score / c.prefix_leak_every_ms.max(1)) as u32
        })
    }
}
