//! nft_compat `target`: an x_tables target run from an nf_tables rule, e.g. NFQUEUE revision 3
//! for kernels without nft_queue (docs/WIRE-NOTES.md#compat-nfqueue). Its info is the target's C struct, host-endian.

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::Expr;
use crate::uapi::target;

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "target";

pub(super) fn encode(m: &mut MessageBuilder<'_>, name: &str, rev: u32, info: &[u8]) {
    m.str(target::NAME, name)
        .be32(target::REV, rev)
        .bytes(target::INFO, info);
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    Ok(Expr::Target {
        name: tb
            .str(target::NAME, "NFTA_TARGET_NAME")?
            .unwrap_or_default()
            .to_string(),
        rev: tb.be32(target::REV, "NFTA_TARGET_REV")?.unwrap_or(0),
        info: tb.bytes(target::INFO).unwrap_or_default().to_vec(),
    })
}

/// `struct xt_NFQ_info_v3 { u16 queuenum; u16 queues_total; u16 flags; }` in host byte order,
/// padded to `XT_ALIGN` (8) as iptables-nft sends it (docs/WIRE-NOTES.md#compat-nfqueue).
pub fn nfqueue_v3_info(num: u16, total: u16, flags: u16) -> Vec<u8> {
    let mut info = Vec::with_capacity(8);
    info.extend_from_slice(&num.to_ne_bytes());
    info.extend_from_slice(&total.to_ne_bytes());
    info.extend_from_slice(&flags.to_ne_bytes());
    info.extend_from_slice(&[0, 0]);
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfqueue_info_is_host_endian_and_aligned() {
        let info = nfqueue_v3_info(7, 1, 1);
        assert_eq!(info.len(), 8);
        assert_eq!(u16::from_ne_bytes([info[0], info[1]]), 7);
        assert_eq!(u16::from_ne_bytes([info[4], info[5]]), 1);
    }
}
