//! The stats file (and the Prometheus metrics file): every counter gathered once a tick and
//! written atomically. Names and meanings are `stats::Figures::counters`.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use log::debug;

use crate::atomic_file;
use crate::settings::Settings;
use crate::stats::{self, Figures};

use super::retry;
use super::shared::Shared;

/// What the kernel and the main thread know that `Shared` does not.
pub struct Outside {
    /// Elements in the kernel ban sets at the last reconcile.
    pub bans_active: u64,
    pub failed_open: u64,
}

pub fn write_stats(shared: &Shared, s: &Settings, outside: Outside) {
    let queues = nfnl::queue::stats::read().unwrap_or_default();
    let mine = |f: fn(&nfnl::queue::QueueStats) -> u32| -> u64 {
        queues
            .iter()
            .filter(|q| q.queue >= s.queue.first && q.queue <= s.queue.last)
            .map(|q| u64::from(f(q)))
            .sum()
    };
    let c = &shared.counts;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let figures = Figures {
        pid: u64::from(std::process::id()),
        written_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        uptime_seconds: shared.start.elapsed().as_secs(),
        packets: get(&c.packets),
        malformed: get(&c.malformed),
        detector: shared.shards.counters(),
        bans_applied: get(&c.bans_applied),
        ban_errors: get(&c.ban_errors),
        spared: get(&c.spared),
        lan_side: get(&c.lan_side),
        management_sessions_aged: shared
            .sessions
            .lock()
            .map_or(0, |x| x.aged(shared.now_ms()) as u64),
        bans_retried: get(&c.bans_retried),
        bans_lost: get(&c.bans_lost),
        bans_pending_retry: retry::pending(shared) as u64,
        bans_unlogged: get(&c.unlogged),
        set_full: get(&c.set_full),
        bans_active: outside.bans_active,
        queue_failed_open: outside.failed_open,
        queue_dropped: mine(|q| q.queue_dropped),
        queue_user_dropped: mine(|q| q.user_dropped),
        ruleset_repairs: get(&c.ruleset_repairs),
        lapi: shared.fleet.figures(),
    };
    let mut counters = figures.counters();
    counters.extend(
        shared
            .latencies
            .lock()
            .map(|l| l.counters())
            .unwrap_or_default(),
    );
    let text = stats::render_text(&counters);
    if let Err(e) = atomic_file::write(&s.stats_file, text.as_bytes(), false) {
        debug!("stats file {}: {e}", s.stats_file.display());
    }
    if let Some(p) = &s.metrics_file {
        let text = stats::render_prometheus(&counters);
        if let Err(e) = atomic_file::write(p, text.as_bytes(), false) {
            debug!("metrics file {}: {e}", p.display());
        }
    }
}
