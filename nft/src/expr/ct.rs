//! `ct`: loads a property of the packet's conntrack entry (`uapi::ct` keys) into a register.

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::Expr;
use crate::uapi::ct;

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "ct";

pub(super) fn encode(m: &mut MessageBuilder<'_>, key: u32, dreg: u32) {
    m.be32(ct::KEY, key).be32(ct::DREG, dreg);
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    let key = tb.required_be32(ct::KEY, "NFTA_CT_KEY")?;
    // No DREG is a `ct ... set` statement (SREG); it loads nothing.
    let dreg = tb.be32(ct::DREG, "NFTA_CT_DREG")?.unwrap_or(0);
    Ok(Expr::Ct { key, dreg })
}
