//! The netfilter netlink socket (`NETLINK_NETFILTER`), over netlink-sys.
//!
//! One type for both roles, configured differently (docs/WIRE-NOTES.md#sockets):
//! - control sockets (nf_tables batches, queue config) keep ENOBUFS reporting, because a lost ACK
//!   is a correctness bug;
//! - queue sockets set `NETLINK_NO_ENOBUFS` (the kernel already counted or failed open whatever
//!   overflowed) and a forced large receive buffer, and read many datagrams per syscall with
//!   `recvmmsg`.
//!
//! Every socket sets `NETLINK_CAP_ACK` (errors echo only the request header, so a failed large
//! batch cannot flood the receive buffer) and `NETLINK_EXT_ACK` (errors say why).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use crate::ack::{Ack, AckTracker};
use crate::error::Error;
use crate::message::{Message, Messages, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP_INTR};

/// Most datagrams one `recvmmsg` call fills; bounds the stack arrays it needs.
pub const MAX_BATCH: usize = 64;

/// Datagrams read after the last expected ACK before `transact` returns anyway.
const DRAIN_AFTER_COMPLETE: u32 = 64;

/// How long a request waits for its reply. The kernel answers nfnetlink requests synchronously
/// inside `sendmsg` (docs/WIRE-NOTES.md#acks), so this only fires if something is badly wrong.
/// One receive of replies: large enough for a full dump datagram (the kernel fills up to 32 KiB
/// per dump step, more with large pages).
const REPLY_BUF: usize = 64 * 1024;
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct NlSocket {
    sock: Socket,
    portid: u32,
    seq: u32,
    /// Replies land here; kept between requests so a transaction allocates nothing.
    reply_buf: Vec<u8>,
    /// The buffer sizes last set or read (0: not known yet), so a small request costs no
    /// `getsockopt`/`setsockopt` round.
    sndbuf: usize,
    rcvbuf: usize,
}

impl NlSocket {
    /// Opens a nonblocking netfilter socket bound to a kernel-chosen port id.
    pub fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        let addr = sock.bind_auto()?;
        sock.set_non_blocking(true)?;
        sock.set_cap_ack(true)?;
        sock.set_ext_ack(true)?;
        // Sequence numbers only need to be unique per socket; starting from the clock makes a
        // reply to a previous process's socket with the same port id easy to tell apart.
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1);
        Ok(NlSocket {
            sock,
            portid: addr.port_number(),
            seq,
            reply_buf: vec![0u8; REPLY_BUF],
            sndbuf: 0,
            rcvbuf: 0,
        })
    }

    /// The netlink port id the kernel assigned (what `/proc/net/netfilter/nfnetlink_queue` shows).
    pub fn portid(&self) -> u32 {
        self.portid
    }

    /// A fresh sequence number.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Stops the kernel from reporting receive-buffer overruns as ENOBUFS. Queue sockets only.
    pub fn set_no_enobufs(&self) -> io::Result<()> {
        self.sock.set_no_enobufs(true)
    }

    /// Asks the kernel to timestamp every packet it receives, for as long as this socket is
    /// open, so that queued packets carry `NFQA_TIMESTAMP` (their arrival, wall clock).
    ///
    /// The kernel stamps received packets host-wide (one clock read each, in every namespace)
    /// while any socket has `SO_TIMESTAMP*` set; without one, packets queued from the input
    /// side (hooks up to FORWARD) carry no timestamp. Setting `SO_TIMESTAMPNS` on this netlink
    /// socket is such a socket, needs no IP socket and no privilege, and ends with the socket.
    /// The stamping starts a moment later (the kernel turns it on from a work queue).
    pub fn enable_receive_timestamps(&self) -> io::Result<()> {
        setsockopt_int(self.fd(), libc::SO_TIMESTAMPNS, 1)
    }

    /// Sets the receive buffer, beyond `rmem_max` when we have CAP_NET_ADMIN (SO_RCVBUFFORCE),
    /// else as large as the unprivileged limit allows. Returns the size the kernel reports.
    pub fn set_recv_buffer(&mut self, bytes: usize) -> io::Result<usize> {
        set_buffer(self.fd(), libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, bytes)?;
        self.rcvbuf = getsockopt_int(self.fd(), libc::SO_RCVBUF)?;
        Ok(self.rcvbuf)
    }

    /// Grows the receive buffer to at least `bytes`; never shrinks it.
    pub fn ensure_recv_buffer(&mut self, bytes: usize) -> io::Result<()> {
        if self.rcvbuf == 0 {
            self.rcvbuf = getsockopt_int(self.fd(), libc::SO_RCVBUF)?;
        }
        if self.rcvbuf < bytes {
            self.set_recv_buffer(bytes)?;
        }
        Ok(())
    }

    /// Grows the send buffer to at least `bytes`; never shrinks it.
    pub fn ensure_send_buffer(&mut self, bytes: usize) -> io::Result<()> {
        if self.sndbuf == 0 {
            self.sndbuf = getsockopt_int(self.fd(), libc::SO_SNDBUF)?;
        }
        if self.sndbuf < bytes {
            self.set_send_buffer(bytes)?;
        }
        Ok(())
    }

    /// Sets the send buffer; an nf_tables batch must fit in one `sendmsg`
    /// (docs/WIRE-NOTES.md#one-datagram).
    pub fn set_send_buffer(&mut self, bytes: usize) -> io::Result<usize> {
        set_buffer(self.fd(), libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, bytes)?;
        self.sndbuf = getsockopt_int(self.fd(), libc::SO_SNDBUF)?;
        Ok(self.sndbuf)
    }

    pub fn send_buffer(&self) -> io::Result<usize> {
        getsockopt_int(self.fd(), libc::SO_SNDBUF)
    }

    /// Sends one datagram to the kernel. A datagram is never split: a short send is an error.
    pub fn send(&self, datagram: &[u8]) -> io::Result<()> {
        let n = self.sock.send(datagram, 0)?;
        if n != datagram.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("netlink send wrote {n} of {} bytes", datagram.len()),
            ));
        }
        Ok(())
    }

    /// Receives one datagram without blocking. `WouldBlock` when none is queued; a datagram
    /// larger than `buf` is an error rather than silently cut.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let cap = buf.len();
        let n = self.sock.recv(&mut &mut buf[..], libc::MSG_TRUNC)?;
        if n > cap {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("netlink datagram of {n} bytes truncated to {cap}"),
            ));
        }
        Ok(n)
    }

    /// Waits until the socket is readable or `timeout` passes. Returns whether it is readable.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        poll_readable(self.fd(), timeout)
    }

    /// Receives up to `batch.slots()` datagrams in one `recvmmsg` call, without blocking.
    /// Returns how many arrived (0 when none was queued).
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.fill_from(self.fd())
    }

    /// Sends a datagram of requests and reads replies until `tracker` has an answer for every
    /// request that wants one. Messages that are not ACKs (queued packets, echoes, NEWGEN) go to
    /// `other` so that nothing is lost while waiting (docs/WIRE-NOTES.md#queue-socket-sharing).
    pub fn transact(
        &mut self,
        datagram: &[u8],
        tracker: &mut AckTracker,
        other: impl FnMut(&Message<'_>),
    ) -> Result<(), Error> {
        let mut buf = std::mem::take(&mut self.reply_buf);
        let r = self.transact_in(&mut buf, datagram, tracker, other);
        self.reply_buf = buf;
        r
    }

    fn transact_in(
        &mut self,
        buf: &mut [u8],
        datagram: &[u8],
        tracker: &mut AckTracker,
        mut other: impl FnMut(&Message<'_>),
    ) -> Result<(), Error> {
        self.send(datagram)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut after_complete = 0;
        loop {
            // Replies to a batch are queued before send returns, but errors for error-only
            // requests may sit behind the last ACK: once complete, drain what is there, but only
            // a bounded amount (a queue socket under a flood never runs dry).
            if tracker.is_complete() {
                after_complete += 1;
                if after_complete > DRAIN_AFTER_COMPLETE {
                    return tracker.result().map_err(Error::Request);
                }
            }
            match self.recv(buf) {
                Ok(n) => {
                    for msg in Messages::new(&buf[..n]) {
                        let msg = msg?;
                        match Ack::parse(&msg)? {
                            Some(ack) => {
                                tracker.on_ack(&ack);
                            }
                            None => other(&msg),
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if tracker.is_complete() {
                        return tracker.result().map_err(Error::Request);
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || !self.wait_readable(left)? {
                        return Err(Error::Timeout {
                            waiting_for: tracker.unanswered().collect::<Vec<_>>().join(", "),
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends a dump request (`NLM_F_DUMP`) and hands every reply message to `each` until
    /// `NLMSG_DONE`. A dump interrupted by a concurrent change (`NLM_F_DUMP_INTR`) is reported as
    /// `Error::DumpInterrupted` so the caller can retry.
    pub fn dump(
        &mut self,
        request: &[u8],
        seq: u32,
        label: &str,
        each: impl FnMut(&Message<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut buf = std::mem::take(&mut self.reply_buf);
        let r = self.dump_in(&mut buf, request, seq, label, each);
        self.reply_buf = buf;
        r
    }

    fn dump_in(
        &mut self,
        buf: &mut [u8],
        request: &[u8],
        seq: u32,
        label: &str,
        mut each: impl FnMut(&Message<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.send(request)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut interrupted = false;
        loop {
            match self.recv(buf) {
                Ok(n) => {
                    for msg in Messages::new(&buf[..n]) {
                        let msg = msg?;
                        if msg.seq != seq {
                            continue; // stale reply to an earlier request
                        }
                        interrupted |= msg.flags & NLM_F_DUMP_INTR != 0;
                        match msg.msg_type {
                            NLMSG_DONE if interrupted => {
                                return Err(Error::DumpInterrupted {
                                    what: label.to_string(),
                                })
                            }
                            NLMSG_DONE => return Ok(()),
                            NLMSG_ERROR => {
                                if let Some(ack) = Ack::parse(&msg)? {
                                    if !ack.is_ok() {
                                        return Err(Error::Request(
                                            crate::ack::RequestError::from_ack(label, &ack),
                                        ));
                                    }
                                }
                            }
                            _ => each(&msg)?,
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || !self.wait_readable(left)? {
                        return Err(Error::Timeout {
                            waiting_for: label.to_string(),
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl AsRawFd for NlSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

/// Preallocated storage for `recvmmsg`: `slots` datagrams of up to `slot_size` bytes each.
/// Reused for every call, so the receive path allocates nothing.
pub struct RecvBatch {
    data: Vec<u8>,
    slot_size: usize,
    lens: Vec<usize>,
    count: usize,
    truncated: u64,
}

impl RecvBatch {
    pub fn new(slots: usize, slot_size: usize) -> Self {
        let slots = slots.clamp(1, MAX_BATCH);
        RecvBatch {
            data: vec![0u8; slots * slot_size],
            slot_size,
            lens: vec![0; slots],
            count: 0,
            truncated: 0,
        }
    }

    pub fn slots(&self) -> usize {
        self.lens.len()
    }

    /// The datagrams received by the last call, in arrival order.
    pub fn datagrams(&self) -> Datagrams<'_> {
        Datagrams {
            batch: self,
            next: 0,
        }
    }

    /// Fills the slots from `next` instead of the socket (datagrams set aside earlier).
    /// Returns how many were loaded; one too large for a slot is counted as truncated.
    pub(crate) fn load_with(&mut self, mut next: impl FnMut() -> Option<Vec<u8>>) -> usize {
        self.count = 0;
        while self.count < self.slots() {
            let Some(d) = next() else { break };
            if d.len() > self.slot_size {
                self.truncated += 1;
                continue;
            }
            self.data[self.count * self.slot_size..][..d.len()].copy_from_slice(&d);
            self.lens[self.count] = d.len();
            self.count += 1;
        }
        self.count
    }

    /// Datagrams dropped so far because they did not fit a slot.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    fn fill_from(&mut self, fd: RawFd) -> io::Result<usize> {
        let slots = self.slots();
        // SAFETY: iovec and mmsghdr are plain C structs for which all-zero bytes (null
        // pointers, zero lengths) are a valid value.
        let mut iov: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        for (i, chunk) in self.data.chunks_mut(self.slot_size).take(slots).enumerate() {
            iov[i].iov_base = chunk.as_mut_ptr().cast();
            iov[i].iov_len = chunk.len();
            hdrs[i].msg_hdr.msg_iov = &mut iov[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `hdrs[..slots]` point at `slots` iovecs that each describe a distinct,
        // live, writable chunk of `self.data`; all of it outlives the call, and the kernel
        // writes at most `iov_len` bytes into each.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                slots as libc::c_uint,
                libc::MSG_DONTWAIT as _, // c_int on glibc, c_uint on musl
                std::ptr::null_mut(),
            )
        };
        self.count = 0;
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        let received = &hdrs[..n as usize];
        if received
            .iter()
            .any(|h| h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0)
        {
            self.compact_after_truncation(received);
        } else {
            for (len, h) in self.lens.iter_mut().zip(received) {
                *len = h.msg_len as usize;
            }
            self.count = received.len();
        }
        Ok(self.count)
    }

    /// Rare path: a truncated datagram left a hole; move the good ones down.
    fn compact_after_truncation(&mut self, hdrs: &[libc::mmsghdr]) {
        let mut out = 0;
        for (i, h) in hdrs.iter().enumerate() {
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                self.truncated += 1;
                continue;
            }
            let len = h.msg_len as usize;
            if out != i {
                self.data.copy_within(
                    i * self.slot_size..i * self.slot_size + len,
                    out * self.slot_size,
                );
            }
            self.lens[out] = len;
            out += 1;
        }
        self.count = out;
    }
}

/// Iterator over the datagrams of a `RecvBatch`.
pub struct Datagrams<'a> {
    batch: &'a RecvBatch,
    next: usize,
}

impl<'a> Iterator for Datagrams<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.next >= self.batch.count {
            return None;
        }
        let i = self.next;
        self.next += 1;
        Some(&self.batch.data[i * self.batch.slot_size..][..self.batch.lens[i]])
    }
}

fn set_buffer(fd: RawFd, force: libc::c_int, plain: libc::c_int, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if setsockopt_int(fd, force, v).is_ok() {
        return Ok(());
    }
    // Without CAP_NET_ADMIN the FORCE variant is refused; take what rmem_max/wmem_max allow.
    setsockopt_int(fd, plain, v)
}

fn setsockopt_int(fd: RawFd, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn getsockopt_int(fd: RawFd, opt: libc::c_int) -> io::Result<usize> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: passes a pointer to a live c_int and its size; the kernel writes at most `len`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v.max(0) as usize)
}

/// `poll(2)` on one descriptor for readability.
pub fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    loop {
        // SAFETY: one valid pollfd, count 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(r > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    /// recvmmsg works on any datagram socket; a Unix pair exercises the batch logic without
    /// privileges.
    #[test]
    fn recv_batch_reads_several_and_skips_oversized_datagrams() {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(&[1; 10]).unwrap();
        a.send(&[2; 100]).unwrap(); // larger than a slot
        a.send(&[3; 50]).unwrap(); // exactly a slot
        let mut batch = RecvBatch::new(4, 50);
        assert_eq!(batch.fill_from(b.as_raw_fd()).unwrap(), 2);
        let got: Vec<&[u8]> = batch.datagrams().collect();
        assert_eq!(got, vec![&[1u8; 10][..], &[3u8; 50][..]]);
        assert_eq!(batch.truncated(), 1);
        // Nothing left: 0, not an error.
        assert_eq!(batch.fill_from(b.as_raw_fd()).unwrap(), 0);
        assert_eq!(batch.datagrams().count(), 0);
    }

    #[test]
    fn recv_batch_stops_at_its_slot_count() {
        let (a, b) = UnixDatagram::pair().unwrap();
        for i in 0..5u8 {
            a.send(&[i; 8]).unwrap();
        }
        let mut batch = RecvBatch::new(3, 16);
        assert_eq!(batch.fill_from(b.as_raw_fd()).unwrap(), 3);
        assert_eq!(batch.fill_from(b.as_raw_fd()).unwrap(), 2);
        let got: Vec<u8> = batch.datagrams().map(|d| d[0]).collect();
        assert_eq!(got, vec![3, 4]);
    }

    #[test]
    fn stashed_datagrams_load_into_slots() {
        let mut batch = RecvBatch::new(2, 8);
        let mut stash =
            std::collections::VecDeque::from(vec![vec![1; 4], vec![2; 9], vec![3; 8], vec![4; 1]]);
        assert_eq!(batch.load_with(|| stash.pop_front()), 2);
        let got: Vec<&[u8]> = batch.datagrams().collect();
        assert_eq!(got, vec![&[1u8; 4][..], &[3u8; 8][..]]);
        assert_eq!(batch.truncated(), 1);
        assert_eq!(stash.len(), 1, "the rest waits for the next call");
    }
}
