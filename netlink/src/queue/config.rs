//! Queue configuration: one `NFQNL_MSG_CONFIG` that binds and configures atomically.
//!
//! A freshly bound queue has copy mode NONE, and the kernel silently drops every packet it would
//! queue until PARAMS arrive (docs/WIRE-NOTES.md#queue-config). The kernel applies CMD, PARAMS,
//! QUEUE_MAXLEN and FLAGS of a single message in that order, so we always send them together. FLAGS
//! without MASK makes the kernel reject the whole message, BIND included
//! (docs/WIRE-NOTES.md#queue-config).

use crate::error::EncodeError;
use crate::message::{family, nfnl_type, subsys, MessageBuilder, NfGenMsg};
use crate::message::{NLM_F_ACK, NLM_F_REQUEST};

use super::{attr, msg};

/// `enum nfqnl_msg_config_cmds`.
pub mod cmd {
    pub const BIND: u8 = 1;
    pub const UNBIND: u8 = 2;
}

/// `enum nfqnl_config_mode`.
pub mod copy_mode {
    pub const NONE: u8 = 0;
    pub const META: u8 = 1;
    pub const PACKET: u8 = 2;
}

/// `NFQA_CFG_F_*`.
pub mod flags {
    pub const FAIL_OPEN: u32 = 1 << 0;
    pub const CONNTRACK: u32 = 1 << 1;
    pub const GSO: u32 = 1 << 2;
}

/// Enough for an IPv4 header with options (≤ 60) plus a TCP header with options (≤ 60), or an
/// IPv6 header with a few extension headers plus TCP: the detector needs headers, not data.
pub const DEFAULT_COPY_RANGE: u32 = 128;

/// Packets the kernel holds for us before it drops (or, with fail-open, accepts) new ones.
/// The kernel default is 1024; bursts of a fast scan deserve more, and each entry costs one skb.
pub const DEFAULT_MAX_LEN: u32 = 4096;

/// How a queue is bound and what the kernel sends us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub queue: u16,
    /// Bytes of each packet copied to us, from the network header.
    pub copy_range: u32,
    /// Queue length limit (`NFQA_CFG_QUEUE_MAXLEN`).
    pub max_len: u32,
    /// Accept instead of drop when the queue or our socket buffer is full.
    pub fail_open: bool,
    /// Take GSO packets whole, without the kernel segmenting and checksumming them first.
    pub gso: bool,
    /// Attach conntrack information (may load nf_conntrack_netlink).
    pub conntrack: bool,
}

impl QueueConfig {
    pub fn new(queue: u16) -> Self {
        QueueConfig {
            queue,
            copy_range: DEFAULT_COPY_RANGE,
            max_len: DEFAULT_MAX_LEN,
            fail_open: true,
            gso: true,
            conntrack: false,
        }
    }

    fn flag_bits(&self) -> u32 {
        let mut f = 0;
        if self.fail_open {
            f |= flags::FAIL_OPEN;
        }
        if self.gso {
            f |= flags::GSO;
        }
        if self.conntrack {
            f |= flags::CONNTRACK;
        }
        f
    }

    /// Appends the BIND + PARAMS + QUEUE_MAXLEN + FLAGS/MASK message, with `NLM_F_ACK`.
    pub fn encode_bind(&self, buf: &mut Vec<u8>, seq: u32) -> Result<usize, EncodeError> {
        self.encode(buf, seq, true)
    }

    /// Appends the same settings without BIND, for a queue this socket already holds (binding
    /// twice is EBUSY).
    pub fn encode_update(&self, buf: &mut Vec<u8>, seq: u32) -> Result<usize, EncodeError> {
        self.encode(buf, seq, false)
    }

    fn encode(&self, buf: &mut Vec<u8>, seq: u32, bind: bool) -> Result<usize, EncodeError> {
        let mut params = [0u8; 5]; // struct nfqnl_msg_config_params is packed: be32 + u8
        params[..4].copy_from_slice(&self.copy_range.to_be_bytes());
        params[4] = copy_mode::PACKET;
        let mut m = config_message(buf, self.queue, seq);
        if bind {
            m.bytes(attr::CFG_CMD, &cmd_bytes(cmd::BIND));
        }
        m.bytes(attr::CFG_PARAMS, &params)
            .be32(attr::CFG_QUEUE_MAXLEN, self.max_len)
            // The mask names every flag we manage, so turning one off takes effect too.
            .be32(
                attr::CFG_MASK,
                flags::FAIL_OPEN | flags::GSO | flags::CONNTRACK,
            )
            .be32(attr::CFG_FLAGS, self.flag_bits());
        m.finish()
    }
}

/// Appends an UNBIND message for `queue`, with `NLM_F_ACK`.
pub fn encode_unbind(buf: &mut Vec<u8>, queue: u16, seq: u32) -> Result<usize, EncodeError> {
    let mut m = config_message(buf, queue, seq);
    m.bytes(attr::CFG_CMD, &cmd_bytes(cmd::UNBIND));
    m.finish()
}

fn config_message(buf: &mut Vec<u8>, queue: u16, seq: u32) -> MessageBuilder<'_> {
    MessageBuilder::new(
        buf,
        nfnl_type(subsys::QUEUE, msg::CONFIG),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NfGenMsg::new(family::UNSPEC, queue),
    )
}

/// `struct nfqnl_msg_config_cmd { u8 command; u8 _pad; be16 pf; }`; pf only matters for the
/// obsolete PF_(UN)BIND commands, which we never send (docs/WIRE-NOTES.md#queue-bind).
fn cmd_bytes(command: u8) -> [u8; 4] {
    [command, 0, 0, 0]
}
