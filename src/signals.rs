//! SIGTERM/SIGINT (stop) and SIGHUP (reload) as events the main loop polls for.
//!
//! The signals are blocked in the main thread before any other thread starts (threads inherit
//! the mask) and read from a signalfd, so no handler runs asynchronously and no thread is
//! interrupted in the middle of a netlink exchange.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    Stop,
    Reload,
}

pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks SIGTERM, SIGINT and SIGHUP for this thread (and the threads it will start) and
    /// opens a signalfd for them. Call before spawning threads.
    pub fn install() -> io::Result<Self> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGINT);
        set.add(Signal::SIGHUP);
        set.thread_block().map_err(io::Error::from)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io::Error::from)?;
        Ok(Signals { fd })
    }

    /// Waits up to `timeout` for a signal.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Option<SignalEvent>> {
        if !nfnl::socket::poll_readable(self.fd.as_raw_fd(), timeout)? {
            return Ok(None);
        }
        match self.fd.read_signal() {
            Ok(Some(info)) => Ok(match info.ssi_signo as i32 {
                s if s == Signal::SIGHUP as i32 => Some(SignalEvent::Reload),
                _ => Some(SignalEvent::Stop),
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(io::Error::from(e)),
        }
    }
}
