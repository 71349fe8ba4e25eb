//! `cmp`: compares a register with constant data. The data is in the register's layout (network
//! order after a payload load, host order after meta/ct, docs/WIRE-NOTES.md#byte-order); the kernel does not check its
//! length against the load's (docs/WIRE-NOTES.md#cmp-width), which is why `rule` derives one from the other.

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::Expr;
use crate::uapi::{cmp, data};

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "cmp";

/// `enum nft_cmp_ops`. An operator this crate does not name keeps its number: reading it as a
/// known one would show, and re-install, a different rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Unknown(u32),
}

impl CmpOp {
    pub fn from_code(code: u32) -> Self {
        match code {
            cmp::EQ => CmpOp::Eq,
            cmp::NEQ => CmpOp::Neq,
            cmp::LT => CmpOp::Lt,
            cmp::LTE => CmpOp::Lte,
            cmp::GT => CmpOp::Gt,
            cmp::GTE => CmpOp::Gte,
            other => CmpOp::Unknown(other),
        }
    }

    pub fn code(self) -> u32 {
        match self {
            CmpOp::Eq => cmp::EQ,
            CmpOp::Neq => cmp::NEQ,
            CmpOp::Lt => cmp::LT,
            CmpOp::Lte => cmp::LTE,
            CmpOp::Gt => cmp::GT,
            CmpOp::Gte => cmp::GTE,
            CmpOp::Unknown(code) => code,
        }
    }
}

pub(super) fn encode(m: &mut MessageBuilder<'_>, sreg: u32, op: CmpOp, value: &[u8]) {
    m.be32(cmp::SREG, sreg)
        .be32(cmp::OP, op.code())
        .nest(cmp::DATA, |m| {
            m.bytes(data::VALUE, value);
        });
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    Ok(Expr::Cmp {
        sreg: tb.required_be32(cmp::SREG, "NFTA_CMP_SREG")?,
        op: CmpOp::from_code(tb.required_be32(cmp::OP, "NFTA_CMP_OP")?),
        data: tb.data_value(cmp::DATA)?,
    })
}
