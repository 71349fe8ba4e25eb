//! `immediate`: loads a constant into a register; scanban's rules load only verdicts
//! (`NFT_REG_VERDICT`), which is how a rule ends in `accept`, `drop`, `jump` or `return`.

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::verdict::{self, parse_verdict, Verdict};
use super::Expr;
use crate::uapi::{data, immediate, REG_VERDICT};

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "immediate";

pub(super) fn encode(m: &mut MessageBuilder<'_>, v: &Verdict) {
    m.be32(immediate::DREG, REG_VERDICT)
        .nest(immediate::DATA, |m| {
            m.nest(data::VERDICT, |m| verdict::encode(m, v));
        });
}

/// An immediate that loads data rather than a verdict is not one scanban reads: it fails as a
/// missing verdict.
pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    let mut found = None;
    for d in tb.nested(immediate::DATA).into_iter().flatten() {
        let d = d?;
        if d.kind() == data::VERDICT {
            found = Some(parse_verdict(&d)?);
        }
    }
    let verdict = found.ok_or(DecodeError::Missing {
        what: "immediate verdict",
    })?;
    Ok(Expr::Immediate { verdict })
}
