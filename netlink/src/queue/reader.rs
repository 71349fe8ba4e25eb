//! `QueueSocket`: one bound queue, read in batches, answered in batches.
//!
//! - The socket sets `NETLINK_NO_ENOBUFS` and a forced receive buffer sized for the queue length,
//!   and reads with `recvmmsg` into preallocated slots: the per-packet path makes no allocation
//!   and no syscall beyond one receive and one verdict send per batch.
//! - Configuration replies share the socket with queued packets
//!   (docs/WIRE-NOTES.md#queue-socket-sharing). Packets that arrive while we wait for an ACK are
//!   kept (copied aside, a control-path allocation) and handed out first by the next `recv`, never
//!   dropped.
//! - Closing the socket makes the kernel drop whatever is still queued
//!   (docs/WIRE-NOTES.md#queue-bind), so `shutdown` releases everything pending with the given
//!   verdict before it unbinds.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use crate::ack::{AckTracker, Expect};
use crate::error::Error;
use crate::message::{Message, Messages};
use crate::socket::{Datagrams, NlSocket, RecvBatch};

use super::config::{encode_unbind, QueueConfig};
use super::packet::PacketView;
use super::stats;
use super::verdict::{encode_verdict_batch, Verdict, VerdictBatcher};

/// Datagrams read per `recvmmsg` (the kernel sends each queued packet in a datagram of its own).
pub const RECV_SLOTS: usize = 64;
/// Room for the netlink, nfgenmsg and attribute headers around the copied payload.
const MESSAGE_OVERHEAD: usize = 512;
/// Kernel bookkeeping per queued notification: "at least 768 bytes due to the skbuff overhead".
const SKB_TRUESIZE_ESTIMATE: usize = 768;

pub struct QueueSocket {
    sock: NlSocket,
    config: QueueConfig,
    batch: RecvBatch,
    /// Packets that arrived during a control exchange, to hand out before reading the socket.
    stash: VecDeque<Vec<u8>>,
    /// Highest packet id handed out, for `shutdown`.
    last_id: Cell<Option<u32>>,
    /// Error replies seen on the queue socket (e.g. a verdict for an unknown id).
    errors: Cell<u64>,
    scratch: Vec<u8>,
}

impl QueueSocket {
    /// Opens a socket and binds it to `config.queue`, configured in one message.
    ///
    /// If another process holds the queue the kernel answers EPERM (the owner check runs before
    /// anything else, docs/WIRE-NOTES.md#queue-bind); that becomes `Error::QueueTaken` naming the
    /// holder's port id.
    pub fn bind(config: &QueueConfig) -> Result<Self, Error> {
        let mut sock = NlSocket::open()?;
        sock.set_no_enobufs()?;
        let slot = slot_size(config);
        let want = config.max_len as usize * (slot + SKB_TRUESIZE_ESTIMATE);
        sock.set_recv_buffer(want.clamp(1 << 20, 256 << 20))?;
        let mut q = QueueSocket {
            sock,
            config: config.clone(),
            batch: RecvBatch::new(RECV_SLOTS, slot),
            stash: VecDeque::new(),
            last_id: Cell::new(None),
            errors: Cell::new(0),
            scratch: Vec::with_capacity(256),
        };
        q.apply_config(true).map_err(|e| q.explain_bind_error(e))?;
        Ok(q)
    }

    /// Sets the receive buffer (`bind` sizes it for the queue length). Returns the size the
    /// kernel reports, which counts its bookkeeping too.
    pub fn set_recv_buffer(&mut self, bytes: usize) -> io::Result<usize> {
        self.sock.set_recv_buffer(bytes)
    }

    /// Changes copy range, queue length or flags of the bound queue. Packets that arrive while
    /// the change is acknowledged are kept for the next `recv`.
    pub fn reconfigure(&mut self, config: &QueueConfig) -> Result<(), Error> {
        let previous = std::mem::replace(&mut self.config, config.clone());
        self.config.queue = previous.queue;
        if config.copy_range != previous.copy_range {
            self.batch = RecvBatch::new(RECV_SLOTS, slot_size(config));
        }
        self.apply_config(false)
    }

    fn apply_config(&mut self, bind: bool) -> Result<(), Error> {
        let seq = self.sock.next_seq();
        self.scratch.clear();
        let what = if bind {
            self.config.encode_bind(&mut self.scratch, seq)?;
            "bind"
        } else {
            self.config.encode_update(&mut self.scratch, seq)?;
            "configure"
        };
        let mut tracker = AckTracker::new();
        let label = format!("{what} queue {}", self.config.queue);
        tracker.expect(seq, label, Expect::Ack);
        let datagram = std::mem::take(&mut self.scratch);
        let stash = &mut self.stash;
        // The stash needs no limit of its own: every packet in it is waiting for our verdict,
        // and the kernel keeps at most `max_len` of those (beyond, it fails open or drops).
        let r = self
            .sock
            .transact(&datagram, &mut tracker, |m| stash.push_back(m.raw.to_vec()));
        self.scratch = datagram;
        r
    }

    fn explain_bind_error(&self, e: Error) -> Error {
        match e {
            Error::Request(r) if r.errno == libc::EPERM => {
                let holder = stats::read()
                    .ok()
                    .and_then(|all| all.into_iter().find(|s| s.queue == self.config.queue))
                    .map(|s| s.portid)
                    .filter(|&p| p != self.sock.portid());
                match holder {
                    Some(portid) => Error::QueueTaken {
                        queue: self.config.queue,
                        portid,
                    },
                    None => Error::Request(r),
                }
            }
            other => other,
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn portid(&self) -> u32 {
        self.sock.portid()
    }

    /// The descriptor, for callers that poll several sockets.
    pub fn socket(&self) -> &NlSocket {
        &self.sock
    }

    /// Error replies received on this socket so far (verdicts the kernel refused).
    pub fn errors(&self) -> u64 {
        self.errors.get()
    }

    /// Datagrams dropped because they exceeded a receive slot.
    pub fn truncated(&self) -> u64 {
        self.batch.truncated()
    }

    /// Waits for packets. Returns immediately if some are stashed.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        if !self.stash.is_empty() {
            return Ok(true);
        }
        self.sock.wait_readable(timeout)
    }

    /// Reads the next batch of datagrams (stashed ones first). Returns how many; 0 if none was
    /// waiting. Iterate them with `packets`.
    pub fn recv(&mut self) -> io::Result<usize> {
        if !self.stash.is_empty() {
            let stash = &mut self.stash;
            return Ok(self.batch.load_with(|| stash.pop_front()));
        }
        self.sock.recv_batch(&mut self.batch)
    }

    /// The packets of the last `recv`, in arrival order. Error replies (refused verdicts) are
    /// counted and skipped; a malformed message is yielded as `Err`.
    pub fn packets(&self) -> Packets<'_> {
        Packets {
            datagrams: self.batch.datagrams(),
            current: None,
            last_id: &self.last_id,
            errors: &self.errors,
        }
    }

    /// Sends the verdicts collected in `batcher` in one datagram.
    pub fn send_verdicts(&self, batcher: &mut VerdictBatcher) -> io::Result<usize> {
        batcher.flush(|d| self.sock.send(d))
    }

    /// Releases every packet still queued with `verdict` (reading the ones not yet seen), then
    /// unbinds. Bans and rules are not touched: with `bypass` on the rule, traffic flows on.
    pub fn shutdown(self, verdict: Verdict) -> Result<(), Error> {
        self.shutdown_with(|_| (verdict, None))
    }

    /// Like `shutdown`, with the verdict and mark of each packet chosen by `decide`: it is called
    /// with each packet read now, or, when none is left to read, once with `None` for a batch
    /// verdict that covers every packet handed out before (in case a verdict send failed).
    pub fn shutdown_with(
        mut self,
        mut decide: impl FnMut(Option<&PacketView<'_>>) -> (Verdict, Option<u32>),
    ) -> Result<(), Error> {
        let mut batcher = VerdictBatcher::new(self.config.queue);
        let mut answered = false;
        while self.recv()? > 0 {
            for p in self.packets().flatten() {
                let (verdict, mark) = decide(Some(&p));
                batcher.push_marked(p.id, verdict, mark);
            }
            // One datagram per receive batch keeps each send small, whatever the queue held.
            answered |= self.send_verdicts(&mut batcher)? > 0;
        }
        if let (false, Some(last)) = (answered, self.last_id.get()) {
            let (verdict, mark) = decide(None);
            self.scratch.clear();
            encode_verdict_batch(&mut self.scratch, self.config.queue, 0, last, verdict, mark)?;
            self.sock.send(&self.scratch)?;
        }
        let seq = self.sock.next_seq();
        self.scratch.clear();
        encode_unbind(&mut self.scratch, self.config.queue, seq)?;
        let mut tracker = AckTracker::new();
        tracker.expect(
            seq,
            format!("unbind queue {}", self.config.queue),
            Expect::Ack,
        );
        let datagram = std::mem::take(&mut self.scratch);
        // Packets that slip in before the unbind is processed are dropped by the kernel when the
        // queue goes away; there is nothing left to answer them with.
        self.sock.transact(&datagram, &mut tracker, |_| {})
    }
}

/// Iterator over the packets of one received batch.
pub struct Packets<'q> {
    datagrams: Datagrams<'q>,
    current: Option<Messages<'q>>,
    last_id: &'q Cell<Option<u32>>,
    errors: &'q Cell<u64>,
}

impl<'q> Iterator for Packets<'q> {
    type Item = Result<PacketView<'q>, crate::error::DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(msgs) = &mut self.current {
                match msgs.next() {
                    Some(Ok(m)) => {
                        if let Some(item) = self.classify(&m) {
                            return Some(item);
                        }
                        continue;
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.current = None,
                }
            }
            self.current = Some(Messages::new(self.datagrams.next()?));
        }
    }
}

impl<'q> Packets<'q> {
    fn classify(
        &mut self,
        m: &Message<'q>,
    ) -> Option<Result<PacketView<'q>, crate::error::DecodeError>> {
        if m.msg_type == crate::message::NLMSG_ERROR {
            self.errors.set(self.errors.get() + 1);
            return None;
        }
        if m.msg_type < crate::message::NLMSG_MIN_TYPE {
            return None; // NOOP, DONE, OVERRUN: nothing to answer
        }
        let r = PacketView::parse(m);
        if let Ok(p) = &r {
            self.last_id.set(Some(p.id));
        }
        Some(r)
    }
}

fn slot_size(config: &QueueConfig) -> usize {
    config.copy_range as usize + MESSAGE_OVERHEAD
}
