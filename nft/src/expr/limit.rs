//! `limit`: matches while a token bucket of `rate` per `unit_secs` (plus `burst`) has tokens.

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::Expr;
use crate::uapi::limit;

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "limit";

/// `enum nft_limit_type`: what the bucket counts. A type this crate does not name keeps its
/// number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitType {
    Packets,
    Bytes,
    Unknown(u32),
}

impl LimitType {
    pub fn from_code(code: u32) -> Self {
        match code {
            limit::PKTS => LimitType::Packets,
            limit::PKT_BYTES => LimitType::Bytes,
            other => LimitType::Unknown(other),
        }
    }

    pub fn code(self) -> u32 {
        match self {
            LimitType::Packets => limit::PKTS,
            LimitType::Bytes => limit::PKT_BYTES,
            LimitType::Unknown(code) => code,
        }
    }
}

pub(super) fn encode(
    m: &mut MessageBuilder<'_>,
    rate: u64,
    unit_secs: u64,
    burst: u32,
    kind: LimitType,
    invert: bool,
) {
    let flags = if invert { limit::F_INV } else { 0 };
    m.be64(limit::RATE, rate)
        .be64(limit::UNIT, unit_secs)
        .be32(limit::BURST, burst)
        .be32(limit::TYPE, kind.code())
        .be32(limit::FLAGS, flags);
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    let kind = tb
        .be32(limit::TYPE, "NFTA_LIMIT_TYPE")?
        .unwrap_or(limit::PKTS);
    let flags = tb.be32(limit::FLAGS, "NFTA_LIMIT_FLAGS")?.unwrap_or(0);
    Ok(Expr::Limit {
        rate: tb.be64(limit::RATE, "NFTA_LIMIT_RATE")?.unwrap_or(0),
        unit_secs: tb.be64(limit::UNIT, "NFTA_LIMIT_UNIT")?.unwrap_or(0),
        burst: tb.be32(limit::BURST, "NFTA_LIMIT_BURST")?.unwrap_or(0),
        kind: LimitType::from_code(kind),
        invert: flags & limit::F_INV != 0,
    })
}
