//! Bans whose write failed (the table being restored, a set full): held, their sources' probes
//! dropped meanwhile, and written again by the main thread once a second for `RETRY_FOR`; then
//! given up and their sources forgotten, so their next probes count afresh.

use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use detector::Evidence;
use log::{error, warn};
use nfnl::NlSocket;

use crate::bans::{self, Ban};
use crate::duration;

use super::follow_up::{self, Report};
use super::shared::Shared;

/// How long a failed ban is tried again.
pub const RETRY_FOR: Duration = Duration::from_secs(60);
/// Failed bans waiting for a retry, at most.
const RETRY_MAX: usize = 4096;
/// Bans retried one by one per tick when they fail together (a full set refuses a whole
/// transaction for one element too many).
const RETRY_SINGLE_MAX: usize = 64;

/// A ban whose write failed, and when it first did.
pub struct Failed {
    ban: Ban,
    evidence: Evidence,
    since: Instant,
}

/// Holds the bans of a failed write for a retry (as many as there is room for; the others are
/// given up at once), and says why they failed.
pub fn hold(shared: &Shared, e: &nfnl::Error, written: Vec<Ban>, evidence: Vec<Evidence>) {
    shared.counts.ban_errors.fetch_add(1, Ordering::Relaxed);
    let full = bans::is_set_full(e);
    if full {
        shared.counts.set_full.fetch_add(1, Ordering::Relaxed);
    }
    let since = Instant::now();
    // A full set fails every ban until elements expire: say so once a minute.
    let say = !full || shared.set_full_said.lock().is_ok_and(|mut t| t.due(since));
    if say {
        let set_size = shared.settings.lock().map(|s| s.set_size).unwrap_or(0);
        error!(
            "writing {} ban(s): {} (trying again for {})",
            written.len(),
            bans::describe(e, set_size),
            duration::Human(RETRY_FOR)
        );
    }
    let Ok(mut r) = shared.retry.lock() else {
        return;
    };
    let room = RETRY_MAX.saturating_sub(r.len());
    let mut pending = written.into_iter().zip(evidence);
    r.extend(pending.by_ref().take(room).map(|(ban, evidence)| Failed {
        ban,
        evidence,
        since,
    }));
    // No room to retry: forget them now, they count afresh.
    for (ban, _) in pending {
        shared.shards.forget(&ban.key);
        shared.counts.bans_lost.fetch_add(1, Ordering::Relaxed);
    }
}

/// Bans waiting for a retry.
pub fn pending(shared: &Shared) -> usize {
    shared.retry.lock().map_or(0, |r| r.len())
}

/// Writes again the bans whose write failed; gives up on those older than `RETRY_FOR` and
/// forgets their source, so its next probes are counted (and banned) afresh.
pub fn retry_bans(sock: &mut NlSocket, shared: &Shared, follow_up: &SyncSender<Report>) {
    let failed = match shared.retry.lock() {
        Ok(mut r) if !r.is_empty() => std::mem::take(&mut *r),
        _ => return,
    };
    let now = Instant::now();
    let (expired, failed): (Vec<Failed>, Vec<Failed>) = failed
        .into_iter()
        .partition(|f| now.duration_since(f.since) >= RETRY_FOR);
    for f in &expired {
        shared.shards.forget(&f.ban.key);
        shared.counts.bans_lost.fetch_add(1, Ordering::Relaxed);
        warn!(
            "gave up writing the ban on {} after {}: it will be counted afresh",
            f.ban.key,
            duration::Human(RETRY_FOR)
        );
    }
    if failed.is_empty() {
        return;
    }
    // All in one transaction first; if that fails (one full set fails them all), one by one,
    // a bounded number per tick, so those that fit get in.
    let bans: Vec<Ban> = failed.iter().map(|f| f.ban.clone()).collect();
    let (written, left): (Vec<Failed>, Vec<Failed>) = if bans::add(sock, &bans).is_ok() {
        (failed, Vec::new())
    } else {
        let mut tries = 0;
        failed.into_iter().partition(|f| {
            tries += 1;
            tries <= RETRY_SINGLE_MAX && bans::add(sock, std::slice::from_ref(&f.ban)).is_ok()
        })
    };
    if let Ok(mut r) = shared.retry.lock() {
        r.extend(left);
    }
    let n = written.len() as u64;
    shared.counts.bans_retried.fetch_add(n, Ordering::Relaxed);
    shared.counts.bans_applied.fetch_add(n, Ordering::Relaxed);
    let report = Report {
        evidence: written.iter().map(|f| f.evidence).collect(),
        written: written.into_iter().map(|f| f.ban).collect(),
        spared: Vec::new(),
        lan_side: Vec::new(),
        dry_run: false,
    };
    follow_up::hand_over(follow_up, shared, report);
}
