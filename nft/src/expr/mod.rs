//! nf_tables expressions: the kernel's VM instructions, one enum variant each, encoded as
//! `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } }` and decoded back from dumps.
//!
//! One file per expression holds its encode and its parse side by side, reading and writing
//! attributes by their `uapi` names; this module only dispatches on the expression's name.
//! Enumerated values this crate does not name (a newer payload base, cmp operator, limit type)
//! are kept as `Unknown(code)`, never read as a known one, so a dump re-encodes unchanged.
//!
//! Byte-order rules (docs/WIRE-NOTES.md#byte-order, docs/WIRE-NOTES.md#cmp-width): expression *parameters* (registers, offsets, lengths, keys) are
//! big-endian u32 (u16 for `queue`); *data* compared against a register is raw bytes in the
//! register's layout: network order for payload loads, host order for `meta`/`ct` values; the
//! compat `target` info is a host-endian C struct. The caller builds data accordingly (see
//! `rule`, which does it for every match scanban uses).

mod attrs;
mod bitwise;
mod cmp;
mod counter;
mod ct;
mod immediate;
mod limit;
mod lookup;
mod meta;
mod payload;
mod queue;
mod socket;
mod target;
mod verdict;

use nfnl::attr::Attr;
use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use crate::uapi::{expr, LIST_ELEM};
use attrs::Attrs;

pub use crate::uapi::{REG_1, REG_VERDICT};
pub use cmp::CmpOp;
pub use limit::LimitType;
pub use payload::PayloadBase;
pub use target::nfqueue_v3_info;
pub use verdict::{parse_verdict, Verdict};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// Loads a `uapi::meta` key.
    Meta {
        key: u32,
        dreg: u32,
    },
    /// Sets a `uapi::meta` key (the packet mark) from a register, in host byte order.
    MetaSet {
        key: u32,
        sreg: u32,
    },
    Cmp {
        sreg: u32,
        op: CmpOp,
        data: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor` over `len` bytes.
    Bitwise {
        sreg: u32,
        dreg: u32,
        len: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Lookup {
        sreg: u32,
        set: String,
        invert: bool,
    },
    /// Loads a `uapi::ct` key.
    Ct {
        key: u32,
        dreg: u32,
    },
    /// Loads a `uapi::socket` key of the packet's local socket; breaks the rule without one.
    Socket {
        key: u32,
        dreg: u32,
    },
    Counter {
        packets: u64,
        bytes: u64,
    },
    /// `rate` per `unit_secs`, `burst` extra, counting packets or bytes (`kind`).
    Limit {
        rate: u64,
        unit_secs: u64,
        burst: u32,
        kind: LimitType,
        invert: bool,
    },
    Immediate {
        verdict: Verdict,
    },
    /// Native `queue` (CONFIG_NFT_QUEUE, docs/WIRE-NOTES.md#queue-expression); `flags` are `uapi::queue::FLAG_*`.
    Queue {
        num: u16,
        total: u16,
        flags: u16,
    },
    /// nft_compat x_tables target, e.g. NFQUEUE revision 3 (docs/WIRE-NOTES.md#compat-nfqueue).
    Target {
        name: String,
        rev: u32,
        info: Vec<u8>,
    },
    /// An expression this crate does not model, kept as its raw `NFTA_EXPR_DATA`.
    Other {
        name: String,
        data: Vec<u8>,
    },
}

/// Each modelled expression's kernel name (`NFTA_EXPR_NAME`) and its decoder.
type Parse = fn(&Attrs<'_>) -> Result<Expr, DecodeError>;
const PARSERS: [(&str, Parse); 12] = [
    (payload::NAME, payload::parse),
    (meta::NAME, meta::parse),
    (cmp::NAME, cmp::parse),
    (bitwise::NAME, bitwise::parse),
    (lookup::NAME, lookup::parse),
    (ct::NAME, ct::parse),
    (socket::NAME, socket::parse),
    (counter::NAME, counter::parse),
    (limit::NAME, limit::parse),
    (immediate::NAME, immediate::parse),
    (queue::NAME, queue::parse),
    (target::NAME, target::parse),
];

impl Expr {
    /// The expression's kernel name (`NFTA_EXPR_NAME`).
    pub fn name(&self) -> &str {
        match self {
            Expr::Payload { .. } => payload::NAME,
            Expr::Meta { .. } | Expr::MetaSet { .. } => meta::NAME,
            Expr::Cmp { .. } => cmp::NAME,
            Expr::Bitwise { .. } => bitwise::NAME,
            Expr::Lookup { .. } => lookup::NAME,
            Expr::Ct { .. } => ct::NAME,
            Expr::Socket { .. } => socket::NAME,
            Expr::Counter { .. } => counter::NAME,
            Expr::Limit { .. } => limit::NAME,
            Expr::Immediate { .. } => immediate::NAME,
            Expr::Queue { .. } => queue::NAME,
            Expr::Target { .. } => target::NAME,
            Expr::Other { name, .. } => name,
        }
    }

    /// Appends this expression as one element of an `NFTA_RULE_EXPRESSIONS` list.
    pub fn encode(&self, m: &mut MessageBuilder<'_>) {
        m.nest(LIST_ELEM, |m| {
            m.str(expr::NAME, self.name());
            if let Expr::Other { data, .. } = self {
                m.bytes(expr::DATA, data);
                return;
            }
            m.nest(expr::DATA, |m| self.encode_data(m));
        });
    }

    fn encode_data(&self, m: &mut MessageBuilder<'_>) {
        match self {
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => payload::encode(m, *base, *offset, *len, *dreg),
            Expr::Meta { key, dreg } => meta::encode(m, *key, *dreg),
            Expr::MetaSet { key, sreg } => meta::encode_set(m, *key, *sreg),
            Expr::Cmp { sreg, op, data } => cmp::encode(m, *sreg, *op, data),
            Expr::Bitwise {
                sreg,
                dreg,
                len,
                mask,
                xor,
            } => bitwise::encode(m, *sreg, *dreg, *len, mask, xor),
            Expr::Lookup { sreg, set, invert } => lookup::encode(m, *sreg, set, *invert),
            Expr::Ct { key, dreg } => ct::encode(m, *key, *dreg),
            Expr::Socket { key, dreg } => socket::encode(m, *key, *dreg),
            Expr::Counter { packets, bytes } => counter::encode(m, *packets, *bytes),
            Expr::Limit {
                rate,
                unit_secs,
                burst,
                kind,
                invert,
            } => limit::encode(m, *rate, *unit_secs, *burst, *kind, *invert),
            Expr::Immediate { verdict } => immediate::encode(m, verdict),
            Expr::Queue { num, total, flags } => queue::encode(m, *num, *total, *flags),
            Expr::Target { name, rev, info } => target::encode(m, name, *rev, info),
            Expr::Other { .. } => {}
        }
    }

    /// Decodes one `NFTA_LIST_ELEM` of a rule's expression list.
    pub fn parse(elem: &Attr<'_>) -> Result<Expr, DecodeError> {
        let mut name = None;
        let mut body: &[u8] = &[];
        for a in elem.nested() {
            let a = a?;
            match a.kind() {
                expr::NAME => name = Some(a.str("NFTA_EXPR_NAME")?),
                expr::DATA => body = a.value(),
                _ => {}
            }
        }
        let name = name.ok_or(DecodeError::Missing {
            what: "NFTA_EXPR_NAME",
        })?;
        match PARSERS.iter().find(|(n, _)| *n == name) {
            Some((_, parse)) => parse(&Attrs::parse(body)?),
            // Newer or unmodelled expressions are kept whole, their body never interpreted.
            None => Ok(Expr::Other {
                name: name.to_string(),
                data: body.to_vec(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
