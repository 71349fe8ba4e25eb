//! `meta`: loads a property of the packet (`uapi::meta` keys: interface, protocol, packet type)
//! into a register, in host byte order.

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::Expr;
use crate::uapi::meta;

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "meta";

pub(super) fn encode(m: &mut MessageBuilder<'_>, key: u32, dreg: u32) {
    m.be32(meta::KEY, key).be32(meta::DREG, dreg);
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    let key = tb.required_be32(meta::KEY, "NFTA_META_KEY")?;
    let dreg = tb.required_be32(meta::DREG, "NFTA_META_DREG")?;
    Ok(Expr::Meta { key, dreg })
}
