//! Native `queue` (CONFIG_NFT_QUEUE, docs/WIRE-NOTES.md#queue-expression): hands the packet to NFQUEUE `num` (spread over
//! `total` queues); its parameters are big-endian u16.

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::Expr;
use crate::uapi::queue;

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "queue";

pub(super) fn encode(m: &mut MessageBuilder<'_>, num: u16, total: u16, flags: u16) {
    m.be16(queue::NUM, num)
        .be16(queue::TOTAL, total)
        .be16(queue::FLAGS, flags);
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    Ok(Expr::Queue {
        num: tb.be16(queue::NUM, "NFTA_QUEUE_NUM")?.unwrap_or(0),
        // The kernel's own default: one queue.
        total: tb.be16(queue::TOTAL, "NFTA_QUEUE_TOTAL")?.unwrap_or(1),
        flags: tb.be16(queue::FLAGS, "NFTA_QUEUE_FLAGS")?.unwrap_or(0),
    })
}
