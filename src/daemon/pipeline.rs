//! The pipeline every input feeds, whatever the input: observe a packet in the detector shard
//! that owns its source, then write the bans a batch decided in one transaction (sparing a
//! source with an aged management session) and hand them to the follow-up thread. An input (the
//! queue reader) is a loop around one `Pipeline`; nothing here knows where packets come from.

use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use detector::packet::sensor_mark;
use detector::{Action, Ignored, Outcome, SourceKey};
use nfnl::NlSocket;

use crate::bans::{self, Ban, COMMENT_MAX};
use crate::latency::{Acked, Probe};

use super::follow_up::{self, Report};
use super::retry;
use super::shared::Shared;

/// Most bans written in one transaction; more wait for the next one.
pub const BAN_BATCH_MAX: usize = 4096;

/// A ban decided by a detector, with its probe's times (batch received, kernel timestamp), and
/// whether that probe came from the LAN side (`lan-interfaces`).
struct Decided {
    action: Action,
    seen: Probe,
    lan: bool,
}

/// What a queued packet is: a probe of this host, or (router mode) an answer of a host behind
/// it or of the router itself, read into the probe it answers (`detector::packet::reply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Probe,
    Answer,
}

/// One input's handle on the pipeline: its own nf_tables socket (a ban is written by the thread
/// that decided it, with no hand-over in its path) and the bans its current batch decided.
pub struct Pipeline {
    shared: Arc<Shared>,
    nft: NlSocket,
    decided: Vec<Decided>,
    /// The probe times of the bans being written, kept between batches (no allocation per
    /// batch for what stays on this thread).
    seen: Vec<Probe>,
    follow_up: SyncSender<Report>,
}

impl Pipeline {
    pub fn new(shared: Arc<Shared>, nft: NlSocket, follow_up: SyncSender<Report>) -> Self {
        Pipeline {
            shared,
            nft,
            decided: Vec::with_capacity(BAN_BATCH_MAX),
            seen: Vec::with_capacity(BAN_BATCH_MAX),
            follow_up,
        }
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Observes one packet (`now_ms` on the daemon's clock); a ban it decides waits for
    /// `write_bans`. `Banned`/`AlreadyBanned`: the source is banned, drop its probe at once, so
    /// a fast scan is cut right at the threshold, before the kernel set has the element.
    ///
    /// `sensor_mark`: the packet's mark where scanban's own sensor may have written one
    /// (managed mode): a probe whose transport header the copy range cut is read from it
    /// (`detector::packet::sensor_mark`).
    ///
    /// `ifindex`: the interface toward the source (a probe's input interface, an answer's
    /// output interface), for the observation and the LAN-side check.
    pub fn observe(
        &mut self,
        now_ms: u64,
        seen: Probe,
        payload: &[u8],
        ifindex: Option<u32>,
        sensor_mark: Option<u32>,
        queued: Queued,
    ) -> Outcome {
        let shards = &self.shared.shards;
        // Parsed once here to pick the shard that owns the source; a packet that does not
        // parse is counted by the first shard.
        let parsed = match (queued, sensor_mark) {
            (Queued::Answer, _) => detector::packet::reply::parse(payload),
            (Queued::Probe, mark) => match (detector::packet::parse(payload), mark) {
                (Err(Ignored::Truncated), Some(mark)) => {
                    sensor_mark::observation(payload, mark).ok_or(Ignored::Truncated)
                }
                (parsed, _) => parsed,
            },
        };
        let shard = match &parsed {
            Ok(o) => shards.owner(&SourceKey::new(o.src, shards.ipv6_prefix())),
            Err(_) => shards.first(),
        };
        let Ok(mut d) = shard.lock() else {
            return Outcome::Repeat;
        };
        let outcome = match parsed {
            Ok(mut obs) => {
                obs.ifindex = ifindex;
                d.observe(now_ms, &obs)
            }
            // The forward sensor queues only what `reply` reads, so an answer it cannot read
            // is rare (cut short); a probe the detector reads again and counts by reason.
            Err(e) if queued == Queued::Answer => Outcome::Ignored(e),
            Err(_) => d.observe_packet(now_ms, payload, ifindex),
        };
        while let Some(action) = d.poll_action() {
            // Bans are rate-limited upstream; past this many in one batch, the source is
            // banned again on its next new port.
            if self.decided.len() < BAN_BATCH_MAX {
                let lan = self.shared.lan.contains(ifindex);
                self.decided.push(Decided { action, seen, lan });
            }
        }
        outcome
    }

    /// Writes the bans decided since the last call in one transaction; logging and everything
    /// else is left to the follow-up thread. A failed write goes to the retry list: the
    /// detector keeps the source as banned (its probes are dropped) while the main thread
    /// tries again.
    pub fn write_bans(&mut self) {
        if self.decided.is_empty() {
            return;
        }
        let mut report = self.spare();
        if !report.dry_run && !report.written.is_empty() {
            match bans::add(&mut self.nft, &report.written) {
                Ok(()) => {
                    let acked = Acked::now();
                    if let Ok(mut l) = self.shared.latencies.lock() {
                        l.record(acked, &self.seen);
                    }
                    let n = report.written.len() as u64;
                    let counts = &self.shared.counts;
                    counts.bans_applied.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    let written = std::mem::take(&mut report.written);
                    let evidence = std::mem::take(&mut report.evidence);
                    retry::hold(&self.shared, &e, written, evidence);
                }
            }
        }
        follow_up::hand_over(&self.follow_up, &self.shared, report);
    }

    /// Splits the decided bans into those to write and those an aged management session
    /// spares: checked here, once, before anything is written. A spared source is not banned,
    /// so the detector forgets it at once and its probes are no longer dropped.
    /// The probe times of the bans to write are left in `self.seen`; the report's vectors go
    /// to the follow-up thread with it.
    fn spare(&mut self) -> Report {
        let shared = &self.shared;
        let n = self.decided.len();
        let mut report = Report {
            written: Vec::with_capacity(n),
            evidence: Vec::with_capacity(n),
            spared: Vec::new(),
            lan_side: Vec::new(),
            dry_run: shared.dry_run,
        };
        let ban_lan = shared.lan.bans();
        self.seen.clear();
        let now_ms = shared.now_ms();
        let sessions = shared.sessions.lock();
        for d in self.decided.drain(..) {
            let Action::Ban {
                key,
                duration_ms,
                evidence,
            } = d.action;
            let aged = match &sessions {
                Ok(s) => s.sparing(&key, evidence.first_ms, now_ms),
                Err(_) => None,
            };
            if let Some(aged) = aged {
                report.spared.push((key, evidence, aged));
                continue;
            }
            if d.lan && !ban_lan {
                report.lan_side.push((key, evidence));
                continue;
            }
            report.written.push(Ban {
                key,
                duration_ms,
                comment: evidence.summary(COMMENT_MAX),
            });
            report.evidence.push(evidence);
            self.seen.push(d.seen);
        }
        drop(sessions);
        // Forgotten like a spared source: not banned, so its probes must not be dropped.
        let not_banned = report.spared.iter().map(|(k, _, _)| k);
        for key in not_banned.chain(report.lan_side.iter().map(|(k, _)| k)) {
            shared.shards.forget(key);
        }
        let spared = report.spared.len() as u64;
        shared.counts.spared.fetch_add(spared, Ordering::Relaxed);
        let lan = report.lan_side.len() as u64;
        shared.counts.lan_side.fetch_add(lan, Ordering::Relaxed);
        report
    }
}
