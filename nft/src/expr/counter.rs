//! `counter`: packets and bytes that reached it.

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::Expr;
use crate::uapi::counter;

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "counter";

pub(super) fn encode(m: &mut MessageBuilder<'_>, packets: u64, bytes: u64) {
    // nft sends an empty counter; values only when restoring counts.
    if packets != 0 || bytes != 0 {
        m.be64(counter::BYTES, bytes)
            .be64(counter::PACKETS, packets);
    }
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    Ok(Expr::Counter {
        bytes: tb.be64(counter::BYTES, "NFTA_COUNTER_BYTES")?.unwrap_or(0),
        packets: tb
            .be64(counter::PACKETS, "NFTA_COUNTER_PACKETS")?
            .unwrap_or(0),
    })
}
