//! Verdicts as nf_tables carries them (`NFTA_DATA_VERDICT { NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN }`):
//! in an `immediate` expression and in verdict maps. The code is netfilter's `NF_*` (defined
//! once, in `nfnl`) or one of nf_tables' negative `NFT_*` codes (`uapi::verdict`).

use nfnl::attr::Attr;
use nfnl::message::MessageBuilder;
use nfnl::queue::{NF_ACCEPT, NF_DROP};
use nfnl::DecodeError;

use crate::uapi::{data, verdict};

/// `NF_ACCEPT` and `NF_DROP` as the signed `NFTA_VERDICT_CODE` holds them.
const ACCEPT: i32 = NF_ACCEPT as i32;
const DROP: i32 = NF_DROP as i32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Continue,
    Return,
    Jump(String),
    Goto(String),
    /// A code we do not name (e.g. NF_QUEUE, which the kernel refuses in rules anyway, docs/WIRE-NOTES.md#queue-expression).
    Code(i32),
}

/// Appends the attributes of an `NFTA_DATA_VERDICT` nest.
pub(super) fn encode(m: &mut MessageBuilder<'_>, v: &Verdict) {
    let (code, chain) = match v {
        Verdict::Accept => (ACCEPT, None),
        Verdict::Drop => (DROP, None),
        Verdict::Continue => (verdict::CONTINUE, None),
        Verdict::Return => (verdict::RETURN, None),
        Verdict::Jump(c) => (verdict::JUMP, Some(c)),
        Verdict::Goto(c) => (verdict::GOTO, Some(c)),
        Verdict::Code(c) => (*c, None),
    };
    m.be32(data::VERDICT_CODE, code as u32);
    if let Some(c) = chain {
        m.str(data::VERDICT_CHAIN, c);
    }
}

/// Decodes an `NFTA_DATA_VERDICT` nest.
pub fn parse_verdict(a: &Attr<'_>) -> Result<Verdict, DecodeError> {
    let mut code = None;
    let mut chain = None;
    for v in a.nested() {
        let v = v?;
        match v.kind() {
            data::VERDICT_CODE => code = Some(v.be32("NFTA_VERDICT_CODE")? as i32),
            data::VERDICT_CHAIN => chain = Some(v.str("NFTA_VERDICT_CHAIN")?.to_string()),
            _ => {}
        }
    }
    Ok(match (code, chain) {
        (Some(ACCEPT), _) => Verdict::Accept,
        (Some(DROP), _) => Verdict::Drop,
        (Some(verdict::CONTINUE), _) => Verdict::Continue,
        (Some(verdict::RETURN), _) => Verdict::Return,
        (Some(verdict::JUMP), Some(c)) => Verdict::Jump(c),
        (Some(verdict::GOTO), Some(c)) => Verdict::Goto(c),
        (Some(c), _) => Verdict::Code(c),
        (None, _) => {
            return Err(DecodeError::Missing {
                what: "NFTA_VERDICT_CODE",
            })
        }
    })
}
