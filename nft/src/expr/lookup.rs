//! `lookup`: whether the register's bytes are a key of a named set (or, inverted, are not).

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::Expr;
use crate::uapi::lookup;

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "lookup";

pub(super) fn encode(m: &mut MessageBuilder<'_>, sreg: u32, set: &str, invert: bool) {
    m.be32(lookup::SREG, sreg).str(lookup::SET, set);
    if invert {
        m.be32(lookup::FLAGS, lookup::F_INV);
    }
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    let flags = tb.be32(lookup::FLAGS, "NFTA_LOOKUP_FLAGS")?.unwrap_or(0);
    Ok(Expr::Lookup {
        set: tb
            .str(lookup::SET, "NFTA_LOOKUP_SET")?
            .unwrap_or_default()
            .to_string(),
        sreg: tb.required_be32(lookup::SREG, "NFTA_LOOKUP_SREG")?,
        invert: flags & lookup::F_INV != 0,
    })
}
