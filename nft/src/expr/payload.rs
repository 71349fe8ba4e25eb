//! `payload`: loads `len` bytes at `offset` from one of the packet's headers into a register,
//! in network byte order (docs/WIRE-NOTES.md#byte-order).

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::Expr;
use crate::uapi::payload;

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "payload";

/// `enum nft_payload_bases`. A base this crate does not name (`NFT_PAYLOAD_INNER_HEADER`, or a
/// newer one) keeps its number, so a dumped rule is shown and re-encoded as the kernel holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadBase {
    Link,
    Network,
    Transport,
    Unknown(u32),
}

impl PayloadBase {
    pub fn from_code(code: u32) -> Self {
        match code {
            payload::LL_HEADER => PayloadBase::Link,
            payload::NETWORK_HEADER => PayloadBase::Network,
            payload::TRANSPORT_HEADER => PayloadBase::Transport,
            other => PayloadBase::Unknown(other),
        }
    }

    pub fn code(self) -> u32 {
        match self {
            PayloadBase::Link => payload::LL_HEADER,
            PayloadBase::Network => payload::NETWORK_HEADER,
            PayloadBase::Transport => payload::TRANSPORT_HEADER,
            PayloadBase::Unknown(code) => code,
        }
    }
}

pub(super) fn encode(
    m: &mut MessageBuilder<'_>,
    base: PayloadBase,
    offset: u32,
    len: u32,
    dreg: u32,
) {
    m.be32(payload::DREG, dreg)
        .be32(payload::BASE, base.code())
        .be32(payload::OFFSET, offset)
        .be32(payload::LEN, len);
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    Ok(Expr::Payload {
        dreg: tb.required_be32(payload::DREG, "NFTA_PAYLOAD_DREG")?,
        base: PayloadBase::from_code(tb.required_be32(payload::BASE, "NFTA_PAYLOAD_BASE")?),
        offset: tb.required_be32(payload::OFFSET, "NFTA_PAYLOAD_OFFSET")?,
        len: tb.required_be32(payload::LEN, "NFTA_PAYLOAD_LEN")?,
    })
}
