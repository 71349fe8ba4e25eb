//! `meta`: loads a property of the packet (`uapi::meta` keys: interface, protocol, packet type)
//! into a register, in host byte order, or sets one (the mark) from a register.

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

/// `meta <key> set` from `sreg`.
pub(super) fn encode_set(m: &mut MessageBuilder<'_>, key: u32, sreg: u32) {
    m.be32(meta::KEY, key).be32(meta::SREG, sreg);
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    let key = tb.required_be32(meta::KEY, "NFTA_META_KEY")?;
    if let Some(sreg) = tb.be32(meta::SREG, "NFTA_META_SREG")? {
        return Ok(Expr::MetaSet { key, sreg });
    }
    let dreg = tb.required_be32(meta::DREG, "NFTA_META_DREG")?;
    Ok(Expr::Meta { key, dreg })
}
