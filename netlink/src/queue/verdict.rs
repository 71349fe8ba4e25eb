//! Verdicts: single (`NFQNL_MSG_VERDICT`), batch (`NFQNL_MSG_VERDICT_BATCH`, every queued id ≤ N)
//! and several in one datagram.
//!
//! `VerdictBatcher` turns a run of per-packet decisions, in arrival order, into the fewest
//! messages: each run of equal verdicts (and equal marks) becomes one batch verdict for the run's
//! last id, and all of them go out in one `send` (several in order, if a failed send left a long
//! backlog). A batch verdict's `NFQA_MARK` replaces the mark
//! of every packet it releases, so packets that must leave with different marks (each its own
//! mark with a bit added, say) end runs, and become one message each. The kernel
//! walks the datagram in order (docs/WIRE-NOTES.md#verdicts), so a later batch never catches an
//! earlier packet that a previous message in the same datagram already released; and the kernel's
//! "id ≤ N" compares with wrap-around (`nfq_id_after`), as we do.

use crate::error::EncodeError;
use crate::message::{family, nfnl_type, subsys, MessageBuilder, NfGenMsg, NLM_F_REQUEST};

use super::{attr, msg};

/// Netfilter verdict codes (`linux/netfilter.h`), defined here once: the queue sends them as a
/// big-endian u32 (`NFQA_VERDICT_HDR`), nf_tables as the signed code of an `NFTA_VERDICT_CODE`
/// (the `nft` crate reads these constants as `i32`).
pub const NF_DROP: u32 = 0;
pub const NF_ACCEPT: u32 = 1;
pub const NF_QUEUE: u32 = 3;
pub const NF_REPEAT: u32 = 4;

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

/// The largest datagram `flush` hands to `send`: whole messages only, far below any socket's send
/// buffer even when verdicts that a failed send kept make a flush longer than one batch.
const MAX_DATAGRAM: usize = 16 * 1024;

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
        // whose message we read but could not use (truncated, malformed), which a single
        // verdict would leave queued until the queue is destroyed. (A message that did not fit
        // in our socket buffer is no such packet: the kernel never queued it.) seq is
        // irrelevant: verdicts carry no NLM_F_ACK.
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

    /// Packets recorded whose verdicts have not gone out yet: since the last successful flush.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Encodes what is pending and hands it to `send`, in datagrams of whole messages (one,
    /// unless a backlog makes it longer than `MAX_DATAGRAM`; none when nothing is pending).
    /// Returns how many packets it covered.
    ///
    /// When `send` fails, the messages not sent are kept, in order, and go out first with the
    /// next flush: a later packet's batch verdict would release those packets too, but once a
    /// burst is over no later packet may come, and they would wait in the kernel's queue for
    /// good. A reader calls `flush` again when it goes idle with something `pending`.
    pub fn flush<E>(&mut self, mut send: impl FnMut(&[u8]) -> Result<(), E>) -> Result<usize, E> {
        self.close_run();
        let mut sent = 0;
        while sent < self.buf.len() {
            let end = sent + whole_messages(&self.buf[sent..], MAX_DATAGRAM);
            if let Err(e) = send(&self.buf[sent..end]) {
                self.buf.drain(..sent);
                return Err(e);
            }
            sent = end;
        }
        self.buf.clear();
        Ok(std::mem::take(&mut self.pending))
    }
}

/// Length of the longest run of whole netlink messages at the start of `buf` that fits in
/// `limit` bytes (at least one message).
fn whole_messages(buf: &[u8], limit: usize) -> usize {
    let mut end = 0;
    while let Some(len) = buf
        .get(end..end + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)
    {
        if len == 0 || (end > 0 && end + len > limit) {
            break;
        }
        end += len;
    }
    if end == 0 {
        buf.len()
    } else {
        end.min(buf.len())
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
    fn a_failed_send_keeps_its_verdicts_for_the_next_flush() {
        let mut b = VerdictBatcher::new(7);
        b.push(10, Verdict::Accept);
        b.push(11, Verdict::Drop);
        assert_eq!(b.flush(|_| Err("ENOMEM")), Err("ENOMEM"));
        assert_eq!(b.pending(), 2, "still owed");
        // Idle: the kept verdicts go out alone.
        let mut sent = Vec::new();
        assert_eq!(
            b.flush(|d| {
                sent.push(decode(d));
                Ok::<(), ()>(())
            }),
            Ok(2)
        );
        assert_eq!(
            sent,
            vec![vec![
                (msg::VERDICT_BATCH, NF_ACCEPT, 10),
                (msg::VERDICT_BATCH, NF_DROP, 11),
            ]]
        );
        // Or first, ahead of the next batch's.
        b.push(12, Verdict::Accept);
        assert_eq!(b.flush(|_| Err(())), Err(()));
        b.push(13, Verdict::Drop);
        sent.clear();
        b.flush(|d| {
            sent.push(decode(d));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            sent,
            vec![vec![
                (msg::VERDICT_BATCH, NF_ACCEPT, 12),
                (msg::VERDICT_BATCH, NF_DROP, 13),
            ]]
        );
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn a_long_backlog_goes_out_in_bounded_datagrams_of_whole_messages() {
        let mut b = VerdictBatcher::new(7).with_mark(Some(1));
        let verdict = |id: u32| {
            if id % 2 == 0 {
                Verdict::Accept
            } else {
                Verdict::Drop
            }
        };
        for id in 0..2000 {
            b.push(id, verdict(id));
        }
        // The second datagram fails: the first is gone, the rest is kept.
        let mut calls = 0;
        let mut sent = Vec::new();
        let r = b.flush(|d| {
            calls += 1;
            if calls == 2 {
                return Err(());
            }
            sent.extend(decode(d));
            Ok(())
        });
        assert_eq!(r, Err(()));
        let mut sizes = Vec::new();
        b.flush(|d| {
            sizes.push(d.len());
            sent.extend(decode(d));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(sizes.len() > 1);
        assert!(sizes.iter().all(|&n| n <= MAX_DATAGRAM), "{sizes:?}");
        let want: Vec<_> = (0..2000)
            .map(|id| (msg::VERDICT_BATCH, verdict(id).code(), id))
            .collect();
        assert_eq!(sent, want, "every verdict once, in order");
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
