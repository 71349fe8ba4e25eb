//! What the daemon's threads share: the detector shards, the settings a reload may change,
//! the counters, the ban book, and the hand-overs between threads (retry list, latencies).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ban_book::BanBook;
use crate::latency::BanLatencies;
use crate::sessions::Sessions;
use crate::settings::{ProbeVerdict, Settings};

use super::fleet::FleetHandles;
use super::lan_side::LanSide;
use super::retry::Failed;
use super::shards::Shards;
use super::timer::Every;

/// The daemon's own counters (the detectors keep theirs).
#[derive(Default)]
pub struct Counts {
    pub packets: AtomicU64,
    pub malformed: AtomicU64,
    pub bans_applied: AtomicU64,
    pub ban_errors: AtomicU64,
    /// Bans written on a retry, and bans given up (their source forgotten).
    pub bans_retried: AtomicU64,
    pub bans_lost: AtomicU64,
    pub spared: AtomicU64,
    /// LAN-side scanners reported and not banned (`ban-lan` off).
    pub lan_side: AtomicU64,
    pub set_full: AtomicU64,
    pub unlogged: AtomicU64,
    pub ruleset_repairs: AtomicU64,
}

pub struct Shared {
    pub shards: Shards,
    /// The verdict for probes; a reload may change it.
    pub drop_probes: AtomicBool,
    /// Settings the ban writer and follow-up read (set size, events); a reload may change them.
    pub settings: Mutex<Settings>,
    pub stop: AtomicBool,
    pub counts: Counts,
    pub start: Instant,
    /// What was written, to restore after a table deletion.
    pub book: Mutex<BanBook>,
    pub latencies: Mutex<BanLatencies>,
    /// Management sessions, as the main thread last read them.
    pub sessions: Mutex<Sessions>,
    /// Bans whose kernel write failed, for the main thread to retry.
    pub retry: Mutex<Vec<Failed>>,
    /// A dry run changes no verdict and writes no ban (restart-only).
    pub dry_run: bool,
    /// A full set fails every ban until elements expire: said once a minute.
    pub set_full_said: Mutex<Every>,
    /// LAN interfaces (`lan-interfaces`, `ban-lan`), kept by the main thread.
    pub lan: LanSide,
    /// The LAPI sensor's queue and the fleet's counters (empty without the fleet settings).
    pub fleet: FleetHandles,
}

impl Shared {
    pub fn new(settings: &Settings, shards: Shards, fleet: FleetHandles) -> Self {
        Shared {
            shards,
            drop_probes: AtomicBool::new(settings.verdict == ProbeVerdict::Drop),
            settings: Mutex::new(settings.clone()),
            stop: AtomicBool::new(false),
            counts: Counts::default(),
            start: Instant::now(),
            book: Mutex::new(BanBook::default()),
            latencies: Mutex::new(BanLatencies::default()),
            sessions: Mutex::new(Sessions::new(
                &settings.spare_ports,
                settings.spare_after.as_millis() as u64,
            )),
            retry: Mutex::new(Vec::new()),
            dry_run: settings.dry_run,
            set_full_said: Mutex::new(Every::now_due(Duration::from_secs(60))),
            lan: {
                let lan = LanSide::default();
                lan.update(&settings.lan_interfaces, settings.ban_lan);
                lan
            },
            fleet,
        }
    }

    /// Milliseconds on the daemon's clock (the detectors' and the sessions' time).
    pub fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    pub fn ms_at(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_millis() as u64
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}
