//! `bitwise`: `dreg = (sreg & mask) ^ xor` over `len` bytes.

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::Expr;
use crate::uapi::{bitwise, data};

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "bitwise";

pub(super) fn encode(
    m: &mut MessageBuilder<'_>,
    sreg: u32,
    dreg: u32,
    len: u32,
    mask: &[u8],
    xor: &[u8],
) {
    // No NFTA_BITWISE_OP: MASK_XOR is the kernel's default, and kernels before 5.6 do not know
    // the attribute (nft sends it for some statements, not others).
    m.be32(bitwise::SREG, sreg)
        .be32(bitwise::DREG, dreg)
        .be32(bitwise::LEN, len)
        .nest(bitwise::MASK, |m| {
            m.bytes(data::VALUE, mask);
        })
        .nest(bitwise::XOR, |m| {
            m.bytes(data::VALUE, xor);
        });
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    Ok(Expr::Bitwise {
        sreg: tb.required_be32(bitwise::SREG, "NFTA_BITWISE_SREG")?,
        dreg: tb.required_be32(bitwise::DREG, "NFTA_BITWISE_DREG")?,
        len: tb.required_be32(bitwise::LEN, "NFTA_BITWISE_LEN")?,
        mask: tb.data_value(bitwise::MASK)?,
        xor: tb.data_value(bitwise::XOR)?,
    })
}
