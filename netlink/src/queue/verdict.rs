//! Verdicts: single (`NFQNL_MSG_VERDICT`), batch (`NFQNL_MSG_VERDICT_BATCH`, every queued id ≤ N)
//! and several in one datagram.
//!
//! `VerdictBatcher` turns a run of per-packet decisions, in arrival order, into the fewest
//! messages: each run of equal verdicts (and equal marks) becomes one batch verdict for the run's
//! last id, and all of them go out in one `send`. A batch verdict's `NFQA_MARK` replaces the mark
//! of every packet it releases, so packets that must leave with different marks (each its own
//! mark with a bit added, say) end runs, and become one message each. The kernel
//! walks the datagram in order (G23), so a later batch never catches an earlier packet that a
//! previous message in the same datagram already released; and the kernel's "id ≤ N" compares
//! with wrap-around (`nfq_id_after`), as we do.

use crate::error::EncodeError;
use crate::message::{family, nfnl_type, subsys, MessageBuilder, NfGenMsg, NLM_F_REQUEST};

use super::{attr, msg};

/// Netfilter verdict codes (`linux/netfilter.h`).
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NF_QUEUE: u32 = 3;
const NF_REPEAT: u32 = 4;

/// What happens to a queued packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    /// Re-run the hook; pair with a mark and a rule that skips marked packets, or it loops.
    Repeat,
    /// Send to another queue.
    Queue(u16),
}

impl Verdict {
    pub fn code(self) -> u32 {
        match self {
            Verdict::Accept => NF_ACCEPT,
            Verdict::Drop => NF_DROP,
            Verdict::Repeat => NF_REPEAT,
            Verdict::Queue(n) => NF_QUEUE | (u32::from(n) << 16),
        }
    }
}

/// Appends one `NFQNL_MSG_VERDICT` for packet `id`.
pub fn encode_verdict(
    buf: &mut Vec<u8>,
    queue: u16,
    seq: u32,
    id: u32,
    verdict: Verdict,
    mark: Option<u32>,
) -> Result<usize, EncodeError> {
    encode(buf, msg::VERDICT, queue, seq, id, verdict, mark)
}

/// Appends one `NFQNL_MSG_VERDICT_BATCH`: `verdict` for every queued packet with id ≤ `max_id`.
pub fn encode_verdict_batch(
    buf: &mut Vec<u8>,
    queue: u16,
    seq: u32,
    max_id: u32,
    verdict: Verdict,
    mark: Option<u32>,
) -> Result<usize, EncodeError> {
    encode(buf, msg::VERDICT_BATCH, queue, seq, max_id, verdict, mark)
}

fn encode(
    buf: &mut Vec<u8>,
    kind: u8,
    queue: u16,
    seq: u32,
    id: u32,
    verdict: Verdict,
    mark: Option<u32>,
) -> Result<usize, EncodeError> {
    let mut hdr = [0u8; 8]; // struct nfqnl_msg_verdict_hdr: be32 verdict, be32 id
    hdr[..4].copy_from_slice(&verdict.code().to_be_bytes());
    hdr[4..].copy_from_slice(&id.to_be_bytes());
    let mut m = MessageBuilder::new(
        buf,
        nfnl_type(subsys::QUEUE, kind),
        NLM_F_REQUEST,
        seq,
        NfGenMsg::new(family::UNSPEC, queue),
    );
    m.bytes(attr::VERDICT_HDR, &hdr);
    if let Some(mark) = mark {
        m.be32(attr::MARK, mark);
    }
    m.finish()
}

#[derive(Debug, Clone, Copy)]
struct Run {
    verdict: Verdict,
    mark: Option<u32>,
    last_id: u32,
    len: u32,
}

/// Collects per-packet verdicts in arrival order and encodes them as few messages as possible,
/// into a buffer it reuses (no allocation once warm).
#[derive(Debug)]
pub struct VerdictBatcher {
    queue: u16,
    mark: Option<u32>,
    run: Option<Run>,
    buf: Vec<u8>,
    pending: usize,
}

impl VerdictBatcher {
    pub fn new(queue: u16) -> Self {
        VerdictBatcher {
            queue,
            mark: None,
            run: None,
            buf: Vec::with_capacity(4096),
            pending: 0,
        }
    }

    /// Sets a mark to apply with every verdict (e.g. so a ruleset can skip packets already seen).
    pub fn with_mark(mut self, mark: Option<u32>) -> Self {
        self.mark = mark;
        self
    }

    /// Records the verdict for the next packet in arrival order, with the batcher's mark.
    pub fn push(&mut self, id: u32, verdict: Verdict) {
        self.push_marked(id, verdict, self.mark);
    }

    /// Records the verdict for the next packet in arrival order, with its own mark (`None`:
    /// the kernel leaves the packet's mark as it is). The kernel replaces the packet's whole
    /// mark with `mark`: to add a bit, pass the packet's mark with the bit set.
    pub fn push_marked(&mut self, id: u32, verdict: Verdict, mark: Option<u32>) {
        self.pending += 1;
        match &mut self.run {
            Some(run) if run.verdict == verdict && run.mark == mark => {
                run.last_id = id;
                run.len += 1;
            }
            _ => {
                self.close_run();
                self.run = Some(Run {
                    verdict,
                    mark,
                    last_id: id,
                    len: 1,
                });
            }
        }
    }

    fn close_run(&mut self) {
        let Some(run) = self.run.take() else { return };
        // Always a batch verdict, even for a run of one: "every id ≤ N" also releases a packet
        // we never read (a datagram lost to a full socket buffer without fail-open), which a
        // single verdict would leave queued until the queue is destroyed. seq is irrelevant:
        // verdicts carry no NLM_F_ACK.
        let r = encode_verdict_batch(
            &mut self.buf,
            self.queue,
            0,
            run.last_id,
            run.verdict,
            run.mark,
        );
        // A verdict message is 36 bytes; it cannot exceed attribute limits.
        debug_assert!(r.is_ok());
    }

    /// Packets recorded since the last flush.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Encodes what is pending and hands the datagram to `send` (not called when nothing is
    /// pending). Returns how many packets it covered. The buffer is reused afterwards, whether
    /// `send` succeeded or not: a failed verdict send leaves the packets queued in the kernel,
    /// where the next batch verdict (ids ≤ N) or fail-open releases them.
    pub fn flush<E>(&mut self, send: impl FnOnce(&[u8]) -> Result<(), E>) -> Result<usize, E> {
        self.close_run();
        let packets = self.pending;
        self.pending = 0;
        if self.buf.is_empty() {
            return Ok(0);
        }
        let r = send(&self.buf);
        self.buf.clear();
        r.map(|()| packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::AttrIter;
    use crate::message::Messages;

    /// (message kind, verdict code, id) of every message in a datagram.
    fn decode(datagram: &[u8]) -> Vec<(u8, u32, u32)> {
        Messages::new(datagram)
            .map(|m| {
                let m = m.unwrap();
                let (gen, attrs) = m.nfgen().unwrap();
                assert_eq!(gen.res_id, 7);
                let hdr = AttrIter::new(attrs)
                    .map(|a| a.unwrap())
                    .find(|a| a.kind() == attr::VERDICT_HDR)
                    .unwrap()
                    .fixed::<8>("hdr")
                    .unwrap();
                (
                    m.subsystem_msg(),
                    u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]),
                    u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]),
                )
            })
            .collect()
    }

    #[test]
    fn runs_become_batch_verdicts_in_one_datagram() {
        let mut b = VerdictBatcher::new(7);
        for (id, v) in [
            (10, Verdict::Accept),
            (11, Verdict::Accept),
            (12, Verdict::Drop),
            (13, Verdict::Accept),
            (14, Verdict::Accept),
            (15, Verdict::Accept),
        ] {
            b.push(id, v);
        }
        assert_eq!(b.pending(), 6);
        let mut sent = Vec::new();
        let n = b
            .flush(|d| {
                sent = d.to_vec();
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(n, 6);
        assert_eq!(
            decode(&sent),
            vec![
                (msg::VERDICT_BATCH, NF_ACCEPT, 11),
                (msg::VERDICT_BATCH, NF_DROP, 12),
                (msg::VERDICT_BATCH, NF_ACCEPT, 15),
            ]
        );
        // Nothing pending: nothing sent.
        assert_eq!(b.flush(|_| -> Result<(), ()> { panic!("sent") }), Ok(0));
    }

    /// The mark of every message in a datagram (`None` where it has no `NFQA_MARK`).
    fn marks(datagram: &[u8]) -> Vec<Option<u32>> {
        Messages::new(datagram)
            .map(|m| {
                let m = m.unwrap();
                let (_, attrs) = m.nfgen().unwrap();
                AttrIter::new(attrs)
                    .map(|a| a.unwrap())
                    .find(|a| a.kind() == attr::MARK)
                    .map(|a| a.be32("mark").unwrap())
            })
            .collect()
    }

    #[test]
    fn a_change_of_mark_ends_a_run() {
        // Repeat with a bit added to each packet's own mark: packets with the same mark share a
        // message, a packet with another mark gets its own, a drop carries no mark.
        const BIT: u32 = 0x1000_0000;
        let mut b = VerdictBatcher::new(7);
        b.push_marked(20, Verdict::Repeat, Some(BIT));
        b.push_marked(21, Verdict::Repeat, Some(BIT));
        b.push_marked(22, Verdict::Repeat, Some(0x5 | BIT));
        b.push_marked(23, Verdict::Repeat, Some(BIT));
        b.push_marked(24, Verdict::Drop, None);
        b.push_marked(25, Verdict::Repeat, Some(BIT));
        let mut sent = Vec::new();
        assert_eq!(
            b.flush(|d| {
                sent = d.to_vec();
                Ok::<(), ()>(())
            }),
            Ok(6)
        );
        assert_eq!(
            decode(&sent),
            vec![
                (msg::VERDICT_BATCH, NF_REPEAT, 21),
                (msg::VERDICT_BATCH, NF_REPEAT, 22),
                (msg::VERDICT_BATCH, NF_REPEAT, 23),
                (msg::VERDICT_BATCH, NF_DROP, 24),
                (msg::VERDICT_BATCH, NF_REPEAT, 25),
            ]
        );
        assert_eq!(
            marks(&sent),
            vec![Some(BIT), Some(0x5 | BIT), Some(BIT), None, Some(BIT)]
        );
        // `push` keeps using the batcher's own mark.
        let mut b = VerdictBatcher::new(7).with_mark(Some(9));
        b.push(1, Verdict::Accept);
        b.flush(|d| {
            sent = d.to_vec();
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(marks(&sent), vec![Some(9)]);
    }

    #[test]
    fn verdict_codes_and_mark() {
        assert_eq!(Verdict::Queue(5).code(), 0x0005_0003);
        let mut buf = Vec::new();
        encode_verdict(&mut buf, 7, 1, 42, Verdict::Repeat, Some(0xdead)).unwrap();
        let m = Messages::new(&buf).next().unwrap().unwrap();
        let (_, attrs) = m.nfgen().unwrap();
        let mark = AttrIter::new(attrs)
            .map(|a| a.unwrap())
            .find(|a| a.kind() == attr::MARK)
            .unwrap();
        assert_eq!(mark.be32("mark").unwrap(), 0xdead);
        assert_eq!(decode(&buf), vec![(msg::VERDICT, NF_REPEAT, 42)]);
    }
}
