//! nf_tables expressions: the kernel's VM instructions, one enum variant each, encoded as
//! `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } }` and decoded back from dumps.
//!
//! One file per expression holds its encode and its parse side by side, reading and writing
//! attributes by their `uapi` names; this module only dispatches on the expression's name.
//! Enumerated values this crate does not name (a newer payload base, cmp operator, limit type)
//! are kept as `Unknown(code)`, never read as a known one, so a dump re-encodes unchanged.
//!
//! Byte-order rules (G1, G14): expression *parameters* (registers, offsets, lengths, keys) are
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
    /// Native `queue` (CONFIG_NFT_QUEUE, G15/G16); `flags` are `uapi::queue::FLAG_*`.
    Queue {
        num: u16,
        total: u16,
        flags: u16,
    },
    /// nft_compat x_tables target, e.g. NFQUEUE revision 3 (G17).
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
    ("payload", payload::parse),
    ("meta", meta::parse),
    ("cmp", cmp::parse),
    ("bitwise", bitwise::parse),
    ("lookup", lookup::parse),
    ("ct", ct::parse),
    ("socket", socket::parse),
    ("counter", counter::parse),
    ("limit", limit::parse),
    ("immediate", immediate::parse),
    ("queue", queue::parse),
    ("target", target::parse),
];

impl Expr {
    /// The expression's kernel name (`NFTA_EXPR_NAME`).
    pub fn name(&self) -> &str {
        match self {
            Expr::Payload { .. } => "payload",
            Expr::Meta { .. } => "meta",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Lookup { .. } => "lookup",
            Expr::Ct { .. } => "ct",
            Expr::Socket { .. } => "socket",
            Expr::Counter { .. } => "counter",
            Expr::Limit { .. } => "limit",
            Expr::Immediate { .. } => "immediate",
            Expr::Queue { .. } => "queue",
            Expr::Target { .. } => "target",
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
mod tests {
    use super::*;
    use crate::uapi::{ct, meta, queue, socket};
    use nfnl::attr::AttrIter;
    use nfnl::message::{Messages, NfGenMsg};

    /// The `NFTA_LIST_ELEM` bytes `e` encodes to.
    fn encoded(e: &Expr) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut m = MessageBuilder::new(&mut buf, 0x0a06, 1, 1, NfGenMsg::default());
        e.encode(&mut m);
        m.finish().unwrap();
        let msg = Messages::new(&buf).next().unwrap().unwrap();
        msg.nfgen().unwrap().1.to_vec()
    }

    fn parsed(elem: &[u8]) -> Expr {
        let elem = AttrIter::new(elem).next().unwrap().unwrap();
        Expr::parse(&elem).unwrap()
    }

    fn round_trip(e: &Expr) -> Expr {
        parsed(&encoded(e))
    }

    #[test]
    fn every_expression_round_trips() {
        let all = vec![
            Expr::Payload {
                base: PayloadBase::Network,
                offset: 12,
                len: 4,
                dreg: REG_1,
            },
            Expr::Meta {
                key: meta::L4PROTO,
                dreg: REG_1,
            },
            Expr::Cmp {
                sreg: REG_1,
                op: CmpOp::Neq,
                data: vec![6],
            },
            Expr::Bitwise {
                sreg: REG_1,
                dreg: REG_1,
                len: 16,
                mask: vec![0xff; 16],
                xor: vec![0; 16],
            },
            Expr::Lookup {
                sreg: REG_1,
                set: "banned4".into(),
                invert: true,
            },
            Expr::Ct {
                key: ct::STATE,
                dreg: REG_1,
            },
            Expr::Socket {
                key: socket::TRANSPARENT,
                dreg: REG_1,
            },
            Expr::Counter {
                packets: 0,
                bytes: 0,
            },
            Expr::Counter {
                packets: 5,
                bytes: 300,
            },
            Expr::Limit {
                rate: 10,
                unit_secs: 1,
                burst: 5,
                kind: LimitType::Packets,
                invert: false,
            },
            Expr::Limit {
                rate: 1_000_000,
                unit_secs: 60,
                burst: 0,
                kind: LimitType::Bytes,
                invert: true,
            },
            Expr::Immediate {
                verdict: Verdict::Drop,
            },
            Expr::Immediate {
                verdict: Verdict::Jump("sensor".into()),
            },
            Expr::Queue {
                num: 2,
                total: 4,
                flags: queue::FLAG_BYPASS | queue::FLAG_CPU_FANOUT,
            },
            Expr::Target {
                name: "NFQUEUE".into(),
                rev: 3,
                info: nfqueue_v3_info(0, 2, queue::FLAG_BYPASS),
            },
            Expr::Other {
                name: "future".into(),
                data: [&8u16.to_ne_bytes()[..], &1u16.to_ne_bytes(), &[0, 0, 0, 1]].concat(),
            },
        ];
        for e in &all {
            assert_eq!(&round_trip(e), e);
        }
    }

    /// Codes this crate does not name come back as themselves: decoded as `Unknown`, never as a
    /// known value, and re-encoded to the very bytes they were read from.
    #[test]
    fn unknown_enum_values_are_kept_and_re_encoded_unchanged() {
        let unknown = [
            Expr::Cmp {
                sreg: REG_1,
                op: CmpOp::Unknown(9),
                data: vec![6],
            },
            Expr::Payload {
                base: PayloadBase::Unknown(3), // NFT_PAYLOAD_INNER_HEADER
                offset: 0,
                len: 4,
                dreg: REG_1,
            },
            Expr::Limit {
                rate: 1,
                unit_secs: 1,
                burst: 0,
                kind: LimitType::Unknown(7),
                invert: false,
            },
        ];
        for e in &unknown {
            let bytes = encoded(e);
            let back = parsed(&bytes);
            assert_eq!(&back, e);
            assert_eq!(encoded(&back), bytes, "{e:?}");
        }
        for code in 0..16 {
            assert_eq!(CmpOp::from_code(code).code(), code);
            assert_eq!(PayloadBase::from_code(code).code(), code);
            assert_eq!(LimitType::from_code(code).code(), code);
        }
        assert_eq!(CmpOp::from_code(5), CmpOp::Gte);
        assert_eq!(CmpOp::from_code(6), CmpOp::Unknown(6));
        assert_eq!(PayloadBase::from_code(2), PayloadBase::Transport);
        assert_eq!(PayloadBase::from_code(3), PayloadBase::Unknown(3));
    }

    /// The attribute numbers on the wire are the kernel's: a cmp `!= 6` on register 1 is
    /// NFTA_CMP_SREG 1, NFTA_CMP_OP NFT_CMP_NEQ, NFTA_CMP_DATA { NFTA_DATA_VALUE 06 }.
    #[test]
    fn cmp_encodes_to_the_kernel_layout() {
        let e = Expr::Cmp {
            sreg: REG_1,
            op: CmpOp::Neq,
            data: vec![6],
        };
        let nla = |len: u16, kind: u16| [len.to_ne_bytes(), kind.to_ne_bytes()].concat();
        let body: Vec<u8> = [
            nla(8, 1),
            vec![0, 0, 0, 1],
            nla(8, 2),
            vec![0, 0, 0, 1],
            nla(12, 3 | nfnl::attr::NLA_F_NESTED),
            nla(5, 1),
            vec![6, 0, 0, 0],
        ]
        .concat();
        let bytes = encoded(&e);
        assert!(bytes.ends_with(&body), "{bytes:02x?}");
    }

    #[test]
    fn nfqueue_info_is_host_endian_and_aligned() {
        let info = nfqueue_v3_info(7, 1, 1);
        assert_eq!(info.len(), 8);
        assert_eq!(u16::from_ne_bytes([info[0], info[1]]), 7);
        assert_eq!(u16::from_ne_bytes([info[4], info[5]]), 1);
    }
}
