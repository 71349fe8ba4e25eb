//! The pipeline every input feeds, whatever the input: observe a packet in the detector shard
//! that owns its source, then write the bans a batch decided in one transaction (sparing a
//! source with an aged management session) and hand them to the follow-up thread. An input (the
//! queue reader) is a loop around one `Pipeline`; nothing here knows where packets come from.

use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use detector::packet::sensor_mark;
use std::net::{IpAddr, Ipv4Addr};

use detector::{Action, Detector, Ignored, Observation, Outcome, SourceKey, BATCH_WINDOW};
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
    /// source's probes are counted in the order they came. The shards take their turns in the
    /// order of their first packet, so the ban budget they share goes to sources about in the
    /// order their probes came (a fixed order would always serve one shard's sources first).
    pub fn observe_batch(&mut self, now_ms: u64, packets: &mut [Packet]) {
        let shards = &self.shared.shards;
        let prefix = shards.ipv6_prefix();
        // A packet that does not parse is counted by the first shard.
        for p in packets.iter_mut() {
            p.shard = match &p.parsed {
                Ok(o) => shards.index_of(&SourceKey::new(o.src, prefix)),
                Err(_) => 0,
            };
        }
        let mut done = [false; Shards::COUNT];
        for first in 0..packets.len() {
            let shard = packets[first].shard;
            if std::mem::replace(&mut done[shard], true) {
                continue;
            }
            let Ok(mut d) = shards.at(shard).lock() else {
                for p in packets.iter_mut().filter(|p| p.shard == shard) {
                    p.outcome = Outcome::Repeat;
                }
                continue;
            };
            let lan = &self.shared.lan;
            let decided = &mut self.decided;
            observe_shard(
                &mut d,
                now_ms,
                shard,
                packets,
                &mut self.window,
                |action, p| {
                    // Bans are rate-limited upstream; past this many in one batch, the source is
                    // banned again on its next new port.
                    if decided.len() < BAN_BATCH_MAX {
                        let lan = lan.contains(p.ifindex);
                        decided.push(Decided {
                            action,
                            seen: p.seen,
                            lan,
                        });
                    }
                },
            );
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

/// Observes the packets of `packets` that `shard` owns, in their order, with `d` (that shard's
/// detector, locked by the caller), writing each one's outcome, and hands each ban `d` decides
/// to `decided` with the packet whose probe decided it. `window` is room kept by the caller.
fn observe_shard(
    d: &mut Detector,
    now_ms: u64,
    shard: usize,
    packets: &mut [Packet],
    window: &mut Vec<(usize, Observation)>,
    mut decided: impl FnMut(Action, &Packet),
) {
    window.clear();
    for (i, p) in packets.iter_mut().enumerate() {
        if p.shard != shard {
            continue;
        }
        match p.parsed {
            Ok(o) => window.push((i, o)),
            // The forward sensor queues only what `reply` reads, so an answer it cannot read
            // is rare (cut short); a probe is counted by reason.
            Err(e) if p.queued == Queued::Answer => p.outcome = Outcome::Ignored(e),
            Err(e) => p.outcome = d.ignore(e),
        }
    }
    // A window at a time, its actions taken before the next: the detector keeps at least
    // `MIN_ACTIONS` of them, so none is dropped.
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
            // Each `Banned` outcome pushed one action, in order: the probe that decided the
            // ban is this packet.
            if outcome == Outcome::Banned {
                let action = d.poll_action();
                debug_assert!(action.is_some(), "a Banned outcome without its action");
                if let Some(action) = action {
                    decided(action, p);
                }
            }
        }
        // None is left (`Detector::observe_batch`); were one left, it would not be lost.
        while let Some(action) = d.poll_action() {
            debug_assert!(false, "an action without a Banned outcome");
            if let Some((i, _)) = part.last() {
                decided(action, &packets[*i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Instant;

    use detector::{Action, Config, Detector, Ignored, Observation, Outcome, Proto};

    use super::{observe_shard, Packet, Queued};
    use crate::latency::Probe;

    /// A SYN from 203.0.113.`host` to privileged port `port`, tagged with its place in the batch
    /// as its interface index.
    fn syn(i: usize, host: u8, port: u16, shard: usize) -> Packet {
        let src = IpAddr::V4(Ipv4Addr::new(203, 0, 113, host));
        Packet {
            parsed: Ok(Observation {
                src,
                dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                proto: Proto::Tcp,
                src_port: 40000,
                dst_port: port,
                tcp_flags: 0x02,
                ifindex: Some(i as u32),
            }),
            queued: Queued::Probe,
            ifindex: Some(i as u32),
            seen: Probe {
                received: Instant::now(),
                stamp: Some((i as u64, 0)),
            },
            shard,
            outcome: Outcome::Repeat,
        }
    }

    /// Two scanners interleaved in one shard's part of a batch of 90 (one on privileged ports,
    /// one on others: it takes more probes), both crossing the threshold inside it, in
    /// different windows of the detector's look-ahead, among
    /// another shard's packets and a packet that does not parse: each ban goes with the probe
    /// that decided it, every packet of the shard gets its outcome, the other shard's none.
    #[test]
    fn each_ban_goes_with_the_probe_that_decided_it() {
        let mut d = Detector::new(Config::default(), 1);
        let mut packets: Vec<Packet> = (0..90)
            .map(|i| match i % 3 {
                0 => syn(i, 1, 1 + (i / 3) as u16, 0),
                1 => syn(i, 2, 2001 + (i / 3) as u16, 0),
                _ => syn(i, 3, 201 + (i / 3) as u16, 5),
            })
            .collect();
        packets[86].parsed = Err(Ignored::Truncated);
        packets[86].shard = 0;
        let mut window = Vec::new();
        let mut bans = Vec::new();
        observe_shard(&mut d, 1_000, 0, &mut packets, &mut window, |action, p| {
            let Action::Ban { key, .. } = action;
            bans.push((key.to_string(), p.ifindex, p.seen.stamp));
        });
        let banned_at: Vec<usize> = (0..90)
            .filter(|&i| packets[i].outcome == Outcome::Banned)
            .collect();
        assert_eq!(banned_at.len(), 2, "{banned_at:?}");
        assert_eq!(bans.len(), 2);
        for ((key, ifindex, stamp), &i) in bans.iter().zip(&banned_at) {
            let Ok(o) = packets[i].parsed else {
                panic!("packet {i} parsed")
            };
            assert_eq!(*key, o.src.to_string());
            assert_eq!(*ifindex, Some(i as u32));
            assert_eq!(*stamp, Some((i as u64, 0)));
        }
        // In different windows of 16 of the shard's packets (two of every three are its).
        let window_of = |i: usize| (i - i / 3) / 16;
        assert_ne!(
            window_of(banned_at[0]),
            window_of(banned_at[1]),
            "{banned_at:?}"
        );
        for (i, p) in packets.iter().enumerate() {
            match (i % 3, i) {
                (_, 86) => assert_eq!(p.outcome, Outcome::Ignored(Ignored::Truncated)),
                (2, _) => assert_eq!(p.outcome, Outcome::Repeat, "packet {i}: other shard"),
                _ if i > banned_at[usize::from(i % 3 == 1)] => {
                    assert_eq!(p.outcome, Outcome::AlreadyBanned, "packet {i}")
                }
                _ => assert!(
                    matches!(p.outcome, Outcome::Counted { .. } | Outcome::Banned),
                    "packet {i}: {:?}",
                    p.outcome
                ),
            }
        }
        assert_eq!(d.counters().bans, 2);
        assert!(d.poll_action().is_none());
    }
}
