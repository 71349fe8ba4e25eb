//! The NFQUEUE input: one thread per queue receives a batch, has the pipeline observe its
//! packets, write the bans the batch decided, then sends every verdict of the batch in one
//! message. Nothing is allocated or logged per packet.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use detector::packet::is_stealth_tcp;
use detector::Outcome;
use log::{error, warn};
use nfnl::queue::{QueueSocket, Verdict, VerdictBatcher, RECV_SLOTS};

use crate::latency::Probe;
use crate::tail::{CameBack, Pass};

use super::pipeline::{Packet, Pipeline, Queued};
use crate::settings::Mode;

/// Netfilter hooks (`NF_INET_*`) of queued packets: router mode's answers.
const HOOK_FORWARD: u8 = 2;
const HOOK_OUTPUT: u8 = 3;

/// Reads queue `q` into `pipeline` until the daemon stops, then lets pending packets go as if
/// scanban had never seen them and unbinds.
pub fn read_queue(mut q: QueueSocket, mut pipeline: Pipeline) {
    let queue = q.config().queue;
    // How what we let through leaves: accept (managed) or repeat with a mark (tail).
    let pass = match pipeline.shared().settings.lock() {
        Ok(s) => Pass::for_settings(&s),
        Err(poisoned) => Pass::for_settings(&poisoned.into_inner()),
    };
    let managed = pipeline
        .shared()
        .settings
        .lock()
        .map_or(true, |s| s.mode == Mode::Managed);
    let mut came_back = CameBack::new(queue, pass);
    let mut batcher = VerdictBatcher::new(queue);
    // One batch's packets, and what else their verdicts need (id, the packet's own mark,
    // whether a router chain queued it), kept between batches: nothing is allocated per packet.
    let mut packets: Vec<Packet> = Vec::with_capacity(RECV_SLOTS);
    let mut verdicts: Vec<(u32, Option<u32>, bool)> = Vec::with_capacity(RECV_SLOTS);
    while !pipeline.shared().stopping() {
        match q.wait(Duration::from_millis(200)) {
            Ok(true) => {}
            Ok(false) => {
                send_kept(&mut q, &mut batcher);
                continue;
            }
            Err(e) => {
                error!("queue {queue}: {e}");
                break;
            }
        }
        if let Err(e) = q.recv() {
            error!("queue {queue}: {e}");
            continue;
        }
        let seen = Instant::now();
        let shared = pipeline.shared();
        let now = shared.ms_at(seen);
        let verdict = if shared.drop_probes.load(Ordering::Relaxed) {
            Verdict::Drop
        } else {
            Verdict::Accept
        };
        // A dry run only watches: the verdict is the configured one, banned or not.
        let enforce = !shared.dry_run;
        // Read the batch, observe it shard by shard, then decide each packet's verdict in
        // the order the packets came.
        packets.clear();
        verdicts.clear();
        for p in q.packets() {
            let counts = &pipeline.shared().counts;
            let Ok(p) = p else {
                counts.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            counts.packets.fetch_add(1, Ordering::Relaxed);
            let probe = Probe {
                received: seen,
                stamp: p.timestamp,
            };
            let sensor_mark = pass.sensor_mark(p.mark);
            // Router mode's chains queue answers (hook forward or output, managed mode only),
            // read into the probe they answer; the interface toward the scanner is the
            // answer's output one.
            let routed = managed && matches!(p.hook, HOOK_FORWARD | HOOK_OUTPUT);
            let packet = if routed {
                // A NULL, FIN or Xmas probe passing through is queued itself (nothing ties an
                // answer to it): a probe, from the interface it came in on (its port in the
                // mark if IPv6 extension headers pushed it past the copy range).
                if p.hook == HOOK_FORWARD && is_stealth_tcp(p.payload, sensor_mark) {
                    Pipeline::packet(p.payload, probe, p.in_ifindex, sensor_mark, Queued::Probe)
                } else {
                    Pipeline::packet(p.payload, probe, p.out_ifindex, None, Queued::Answer)
                }
            } else {
                Pipeline::packet(p.payload, probe, p.in_ifindex, sensor_mark, Queued::Probe)
            };
            packets.push(packet);
            verdicts.push((p.id, p.mark, routed));
        }
        pipeline.observe_batch(now, &mut packets);
        for (packet, &(id, raw_mark, routed)) in packets.iter().zip(&verdicts) {
            let outcome = packet.outcome;
            // What a router chain queued (an answer, or a NULL/FIN/Xmas probe passing through)
            // is accepted, but for a source just banned: the router holds no probe
            // (they were forwarded at once), so until the ban is in the kernel set the scan's
            // answers are all it would learn. Those are dropped, as its probes would be in
            // input mode (docs/ARCHITECTURE.md, "Router mode"); a LAN-side source that is not
            // banned (`ban-lan` off) keeps them.
            let v = if routed {
                match outcome {
                    Outcome::Banned | Outcome::AlreadyBanned
                        if enforce && !pipeline.shared().lan.spares(packet.ifindex()) =>
                    {
                        Verdict::Drop
                    }
                    _ => Verdict::Accept,
                }
            } else {
                match outcome {
                    Outcome::Banned | Outcome::AlreadyBanned if enforce => Verdict::Drop,
                    _ => verdict,
                }
            };
            if pass.came_back(raw_mark) {
                came_back.note();
            }
            let (v, mark) = pass.leave(v, raw_mark);
            batcher.push_marked(id, v, mark);
        }
        // Bans first: the set has the element before any packet of this batch moves on, and
        // the verdict syscall (which also runs the softirq work queued meanwhile) is not in
        // the ban's latency.
        pipeline.write_bans();
        if let Err(e) = q.send_verdicts(&mut batcher) {
            warn!("queue {queue}: sending verdicts: {e}");
        }
        came_back.say(seen);
    }
    // Release what is pending as if we had let it through: the host answers as it would
    // without us (managed), or the admin's rules decide (tail); after the verdicts already
    // decided, if a failed send kept some.
    if batcher.pending() > 0 {
        let _ = q.send_verdicts(&mut batcher);
    }
    if let Err(e) = q.shutdown_with(|p| pass.leave(Verdict::Accept, p.and_then(|p| p.mark))) {
        warn!("queue {queue}: shutdown: {e}");
    }
}

/// Verdicts a failed send kept: once the burst is over, no later packet's batch verdict would
/// release those packets, so they go out now.
fn send_kept(q: &mut QueueSocket, batcher: &mut VerdictBatcher) {
    if batcher.pending() > 0 {
        if let Err(e) = q.send_verdicts(batcher) {
            warn!("queue {}: sending verdicts: {e}", q.config().queue);
        }
    }
}
