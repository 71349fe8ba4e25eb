//! `nfnl`: the netlink layer of scanban.
//!
//! - [`socket`]: the `NETLINK_NETFILTER` socket (netlink-sys), options, batched receive.
//! - [`message`]: datagrams to messages and back (netlink-packet-core headers), `nfgenmsg`.
//! - [`attr`]: zero-copy attribute reader, attribute writer.
//! - [`ack`]: ACK/error parsing with extended ACK, and the tracker matching replies to requests.
//! - [`queue`]: the nfnetlink_queue protocol and a batched reader.
//! - [`testbed`]: throwaway network namespaces for the kernel tests of every crate.
//!
//! No policy lives here: this crate turns typed values into bytes and bytes into typed values,
//! and moves them through a socket.

pub mod ack;
pub mod attr;
pub mod error;
pub mod message;
pub mod queue;
pub mod socket;
pub mod testbed;

pub use error::{DecodeError, EncodeError, Error};
pub use socket::NlSocket;
