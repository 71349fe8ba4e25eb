//! `nfnl`: the netlink layer of scanban.
//!
//! - [`socket`]: the `NETLINK_NETFILTER` socket (netlink-sys), options, batched receive.
//! - [`message`]: datagrams to messages and back (netlink-packet-core headers), `nfgenmsg`.
//! - [`attr`]: zero-copy attribute reader, attribute writer.
//! - [`ack`]: ACK/error parsing with extended ACK, and the tracker matching replies to requests.
//! - [`queue`]: the nfnetlink_queue protocol and a batched reader.
//!
//! No policy lives here: this crate turns typed values into bytes and bytes into typed values,
//! and moves them through a socket.

// The only crate with `unsafe` (a few syscalls libc has no safe wrapper for): each block
// says why it is sound (docs/SECURITY.md, "How to audit this", lists them).
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod ack;
pub mod attr;
pub mod error;
pub mod message;
pub mod queue;
pub mod socket;

pub use error::{DecodeError, EncodeError, Error};
pub use socket::NlSocket;
