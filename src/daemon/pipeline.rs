//! The pipeline every input feeds, whatever the input: observe a packet in the detector shard
//! that owns its source, then write the bans a batch decided in one transaction (sparing a
//! source with an aged management session) and hand them to the follow-up thread. An input (the
//! queue reader) is a loop around one `Pipeline`; nothing here knows where packets come from.

use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use detector::packet::sensor_mark;
use std::net::{IpAddr, Ipv4Addr};

use detector::{Action, Ignored, Observation, Outcome, SourceKey, BATCH_WINDOW};
use nfnl::NlSocket;

use crate::bans::{self, Ban, COMMENT_MAX};
use crate::latency::{Acked, Probe};

use super::follow_up::{self, Report};
use super::retry;
use super::shards::Shards;
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

/// A queued packet as the pipeline reads it (`Pipeline::packet`), and what observing it gave.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    /// The probe (an answer read into the probe it answers), with the interface toward its
    /// source; or why it could not be read.
    parsed: Result<Observation, Ignored>,
    queued: Queued,
    ifindex: Option<u32>,
    seen: Probe,
    /// The detector shard that owns its source.
    shard: usize,
    pub outcome: Outcome,
}

impl Packet {
    /// The interface toward the packet's source.
    pub fn ifindex(&self) -> Option<u32> {
        self.ifindex
    }
}

/// Fills the unused end of a window (never observed).
const EMPTY_OBSERVATION: Observation = Observation {
    src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    proto: detector::Proto::Tcp,
    src_port: 0,
    dst_port: 0,
    tcp_flags: 0,
    ifindex: None,
};

/// One input's handle on the pipeline: its own nf_tables socket (a ban is written by the thread
/// that decided it, with no hand-over in its path) and the bans its current batch decided.
pub struct Pipeline {
    shared: Arc<Shared>,
    nft: NlSocket,
    decided: Vec<Decided>,
    /// One shard's packets of the batch being observed (index in the batch, observation),
    /// kept between batches.
    window: Vec<(usize, Observation)>,
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
            window: Vec::with_capacity(nfnl::queue::RECV_SLOTS),
            seen: Vec::with_capacity(BAN_BATCH_MAX),
            follow_up,
        }
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Reads a queued packet for `observe_batch`: `sensor_mark` is the packet's mark where
    /// scanban's own sensor may have written one (managed mode): a probe whose transport header
    /// the copy range cut is read from it (`detector::packet::sensor_mark`). `ifindex`: the
    /// interface toward the source (a probe's input interface, an answer's output interface),
    /// for the observation and the LAN-side check.
    pub fn packet(
        payload: &[u8],
        seen: Probe,
        ifindex: Option<u32>,
        sensor_mark: Option<u32>,
        queued: Queued,
    ) -> Packet {
        let parsed = match (queued, sensor_mark) {
            (Queued::Answer, _) => detector::packet::reply::parse(payload),
            (Queued::Probe, mark) => match (detector::packet::parse(payload), mark) {
                (Err(Ignored::Truncated), Some(mark)) => {
                    sensor_mark::observation(payload, mark).ok_or(Ignored::Truncated)
                }
                (parsed, _) => parsed,
            },
        };
        Packet {
            parsed: parsed.map(|o| Observation { ifindex, ..o }),
            queued,
            ifindex,
            seen,
            shard: 0,
            outcome: Outcome::Repeat,
        }
    }

    /// Observes a batch of packets (`now_ms` on the daemon's clock), each in the detector shard
    /// that owns its source, writing each packet's `outcome`; the bans they decide wait for
    /// `write_bans`. `Banned`/`AlreadyBanned`: the source is banned, drop its probe at once, so
    /// a fast scan is cut right at the threshold, before the kernel set has the element.
    ///
    /// One lock per shard per batch, and the shard sees its packets together
    /// (`Detector::observe_batch`, which overlaps their cache misses), in their order: a
    /// source's probes are counted in the order they came.
    pub fn observe_batch(&mut self, now_ms: u64, packets: &mut [Packet]) {
        let shared = Arc::clone(&self.shared);
        let shards = &shared.shards;
        let prefix = shards.ipv6_prefix();
        // Taken for the call (and given back: its memory stays), so that `decide` may borrow.
        let mut window = std::mem::take(&mut self.window);
        // A packet that does not parse is counted by the first shard.
        for p in packets.iter_mut() {
            p.shard = match &p.parsed {
                Ok(o) => shards.index_of(&SourceKey::new(o.src, prefix)),
                Err(_) => 0,
            };
        }
        for shard in 0..Shards::COUNT {
            if !packets.iter().any(|p| p.shard == shard) {
                continue;
            }
            let Ok(mut d) = shards.at(shard).lock() else {
                for p in packets.iter_mut().filter(|p| p.shard == shard) {
                    p.outcome = Outcome::Repeat;
                }
                continue;
            };
            window.clear();
            for (i, p) in packets.iter_mut().enumerate() {
                if p.shard != shard {
                    continue;
                }
                match p.parsed {
                    Ok(o) => window.push((i, o)),
                    // The forward sensor queues only what `reply` reads, so an answer it cannot
                    // read is rare (cut short); a probe is counted by reason.
                    Err(e) if p.queued == Queued::Answer => p.outcome = Outcome::Ignored(e),
                    Err(e) => p.outcome = d.ignore(e),
                }
            }
            // A window at a time: the detector keeps at least 32 actions, so none is dropped
            // before it is taken here.
            for part in window.chunks(BATCH_WINDOW) {
                let mut obs = [EMPTY_OBSERVATION; BATCH_WINDOW];
                for (slot, (_, o)) in obs.iter_mut().zip(part) {
                    *slot = *o;
                }
                let mut outcomes = [Outcome::Repeat; BATCH_WINDOW];
                d.observe_batch(now_ms, &obs[..part.len()], &mut outcomes);
                for ((i, _), outcome) in part.iter().zip(outcomes) {
                    let p = &mut packets[*i];
                    p.outcome = outcome;
                    // Each `Banned` outcome pushed one action, in order: the probe that
                    // decided the ban is this packet.
                    if outcome == Outcome::Banned {
                        if let Some(action) = d.poll_action() {
                            self.decide(action, p.seen, p.ifindex);
                        }
                    }
                }
                if let Some((i, _)) = part.last() {
                    while let Some(action) = d.poll_action() {
                        self.decide(action, packets[*i].seen, packets[*i].ifindex);
                    }
                }
            }
        }
        self.window = window;
    }

    fn decide(&mut self, action: Action, seen: Probe, ifindex: Option<u32>) {
        // Bans are rate-limited upstream; past this many in one batch, the source is banned
        // again on its next new port.
        if self.decided.len() < BAN_BATCH_MAX {
            let lan = self.shared.lan.contains(ifindex);
            self.decided.push(Decided { action, seen, lan });
        }
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
