//! nf_tables expressions: the kernel's VM instructions, one enum variant each, encoded as
//! `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } }` and decoded back from dumps.
//!
//! Byte-order rules (docs/WIRE-NOTES.md#byte-order, docs/WIRE-NOTES.md#cmp-width): expression
//! *parameters* (registers, offsets, lengths, keys) are big-endian u32 (u16 for `queue`); *data*
//! compared against a register is raw bytes in the register's layout: network order for payload
//! loads, host order for `meta`/`ct` values; the compat `target` info is a host-endian C struct.
//! The caller builds data accordingly (see `stmt`, which does it for every match scanban uses). A
//! `cmp` length is not checked against the load width by the kernel (docs/WIRE-NOTES.md#cmp-width),
//! so `stmt` always derives one from the other.

use nfnl::attr::{Attr, AttrIter};
use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use crate::uapi::{data, expr, LIST_ELEM};

/// `NFT_REG_VERDICT` and `NFT_REG_1`: the registers scanban's rules use.
pub const REG_VERDICT: u32 = 0;
pub const REG_1: u32 = 1;

/// Netfilter / nf_tables verdict codes.
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_CONTINUE: i32 = -1;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
const NFT_RETURN: i32 = -5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Continue,
    Return,
    Jump(String),
    Goto(String),
    /// A code we do not name (e.g. NF_QUEUE, which the kernel refuses in rules anyway,
    /// docs/WIRE-NOTES.md#queue-expression).
    Code(i32),
}

/// `enum nft_payload_bases`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadBase {
    Link = 0,
    Network = 1,
    Transport = 2,
}

/// `enum nft_cmp_ops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq = 0,
    Neq = 1,
    Lt = 2,
    Lte = 3,
    Gt = 4,
    Gte = 5,
}

/// Keys of `enum nft_meta_keys` scanban uses.
pub mod meta_key {
    pub const IIF: u32 = 4;
    pub const OIF: u32 = 5;
    pub const NFPROTO: u32 = 15;
    pub const L4PROTO: u32 = 16;
    pub const PKTTYPE: u32 = 19;
}

/// Keys of `enum nft_ct_keys`.
pub mod ct_key {
    pub const STATE: u32 = 0;
}

/// Keys of `enum nft_socket_keys`.
pub mod socket_key {
    pub const TRANSPARENT: u32 = 0;
    pub const MARK: u32 = 1;
    pub const WILDCARD: u32 = 2;
}

/// `NFT_QUEUE_FLAG_*` (docs/WIRE-NOTES.md#queue-expression) and xt_NFQUEUE's `NFQ_FLAG_*`: the same
/// two bits.
pub mod queue_flag {
    pub const BYPASS: u16 = 0x1;
    pub const CPU_FANOUT: u16 = 0x2;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u32,
        dreg: u32,
    },
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
    Ct {
        key: u32,
        dreg: u32,
    },
    /// Loads a property of the local socket the packet belongs to; with no such socket the rule
    /// stops matching here (NFT_BREAK), which is how "a local socket exists" is expressed.
    Socket {
        key: u32,
        dreg: u32,
    },
    Counter {
        packets: u64,
        bytes: u64,
    },
    /// `rate` per `unit_secs`, `burst` extra; packets (or bytes with `bytes`).
    Limit {
        rate: u64,
        unit_secs: u64,
        burst: u32,
        bytes: bool,
        invert: bool,
    },
    Immediate {
        verdict: Verdict,
    },
    /// Native `queue` (CONFIG_NFT_QUEUE, docs/WIRE-NOTES.md#queue-expression).
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
            } => {
                m.be32(1, *dreg)
                    .be32(2, *base as u32)
                    .be32(3, *offset)
                    .be32(4, *len);
            }
            Expr::Meta { key, dreg } => {
                m.be32(2, *key).be32(1, *dreg);
            }
            Expr::Cmp { sreg, op, data } => {
                m.be32(1, *sreg).be32(2, *op as u32).nest(3, |m| {
                    m.bytes(data::VALUE, data);
                });
            }
            Expr::Bitwise {
                sreg,
                dreg,
                len,
                mask,
                xor,
            } => {
                // No NFTA_BITWISE_OP: MASK_XOR is the kernel's default, and kernels before 5.6
                // do not know the attribute (nft sends it for some statements, not others).
                m.be32(1, *sreg)
                    .be32(2, *dreg)
                    .be32(3, *len)
                    .nest(4, |m| {
                        m.bytes(data::VALUE, mask);
                    })
                    .nest(5, |m| {
                        m.bytes(data::VALUE, xor);
                    });
            }
            Expr::Lookup { sreg, set, invert } => {
                m.be32(2, *sreg).str(1, set);
                if *invert {
                    m.be32(5, 1); // NFT_LOOKUP_F_INV
                }
            }
            Expr::Ct { key, dreg } => {
                m.be32(2, *key).be32(1, *dreg);
            }
            Expr::Socket { key, dreg } => {
                // LEVEL (cgroup v2 ancestry) 0, as nft sends it; ignored for other keys.
                m.be32(1, *key).be32(2, *dreg).be32(3, 0);
            }
            Expr::Counter { packets, bytes } => {
                // nft sends an empty counter; values only when restoring counts.
                if *packets != 0 || *bytes != 0 {
                    m.be64(1, *bytes).be64(2, *packets);
                }
            }
            Expr::Limit {
                rate,
                unit_secs,
                burst,
                bytes,
                invert,
            } => {
                m.be64(1, *rate)
                    .be64(2, *unit_secs)
                    .be32(3, *burst)
                    .be32(4, u32::from(*bytes))
                    .be32(5, u32::from(*invert));
            }
            Expr::Immediate { verdict } => {
                m.be32(1, REG_VERDICT).nest(2, |m| {
                    m.nest(data::VERDICT, |m| encode_verdict(m, verdict));
                });
            }
            Expr::Queue { num, total, flags } => {
                m.be16(1, *num).be16(2, *total).be16(3, *flags);
            }
            Expr::Target { name, rev, info } => {
                m.str(1, name).be32(2, *rev).bytes(3, info);
            }
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
        const KNOWN: [&str; 12] = [
            "payload",
            "meta",
            "cmp",
            "bitwise",
            "lookup",
            "ct",
            "socket",
            "counter",
            "limit",
            "immediate",
            "queue",
            "target",
        ];
        if !KNOWN.contains(&name) {
            // Newer or unmodelled expressions are kept whole, their body never interpreted.
            return Ok(Expr::Other {
                name: name.to_string(),
                data: body.to_vec(),
            });
        }
        let mut f = Fields::default();
        for a in AttrIter::new(body) {
            let a = a?;
            f.set(name, a)?;
        }
        let need = |v: Option<u32>, what| v.ok_or(DecodeError::Missing { what });
        Ok(match name {
            "payload" => Expr::Payload {
                dreg: need(f.u[1], "payload dreg")?,
                base: match need(f.u[2], "payload base")? {
                    0 => PayloadBase::Link,
                    1 => PayloadBase::Network,
                    _ => PayloadBase::Transport,
                },
                offset: need(f.u[3], "payload offset")?,
                len: need(f.u[4], "payload len")?,
            },
            "meta" => Expr::Meta {
                key: need(f.u[2], "meta key")?,
                dreg: need(f.u[1], "meta dreg")?,
            },
            "cmp" => Expr::Cmp {
                sreg: need(f.u[1], "cmp sreg")?,
                op: match need(f.u[2], "cmp op")? {
                    0 => CmpOp::Eq,
                    1 => CmpOp::Neq,
                    2 => CmpOp::Lt,
                    3 => CmpOp::Lte,
                    4 => CmpOp::Gt,
                    _ => CmpOp::Gte,
                },
                data: f.data[3].clone().unwrap_or_default(),
            },
            "bitwise" => Expr::Bitwise {
                sreg: need(f.u[1], "bitwise sreg")?,
                dreg: need(f.u[2], "bitwise dreg")?,
                len: need(f.u[3], "bitwise len")?,
                mask: f.data[4].clone().unwrap_or_default(),
                xor: f.data[5].clone().unwrap_or_default(),
            },
            "lookup" => Expr::Lookup {
                set: f.text.clone().unwrap_or_default(),
                sreg: need(f.u[2], "lookup sreg")?,
                invert: f.u[5].unwrap_or(0) & 1 != 0,
            },
            "ct" => Expr::Ct {
                key: need(f.u[2], "ct key")?,
                dreg: f.u[1].unwrap_or(0),
            },
            "socket" => Expr::Socket {
                key: need(f.u[1], "socket key")?,
                dreg: need(f.u[2], "socket dreg")?,
            },
            "counter" => Expr::Counter {
                bytes: f.u64[1].unwrap_or(0),
                packets: f.u64[2].unwrap_or(0),
            },
            "limit" => Expr::Limit {
                rate: f.u64[1].unwrap_or(0),
                unit_secs: f.u64[2].unwrap_or(0),
                burst: f.u[3].unwrap_or(0),
                bytes: f.u[4].unwrap_or(0) == 1,
                invert: f.u[5].unwrap_or(0) & 1 != 0,
            },
            "immediate" => Expr::Immediate {
                verdict: f.verdict.clone().ok_or(DecodeError::Missing {
                    what: "immediate verdict",
                })?,
            },
            "queue" => Expr::Queue {
                num: f.u16[1].unwrap_or(0),
                total: f.u16[2].unwrap_or(1),
                flags: f.u16[3].unwrap_or(0),
            },
            "target" => Expr::Target {
                name: f.text.clone().unwrap_or_default(),
                rev: f.u[2].unwrap_or(0),
                info: f.raw[3].clone().unwrap_or_default(),
            },
            other => Expr::Other {
                name: other.to_string(),
                data: body.to_vec(),
            },
        })
    }
}

/// The attributes of one expression body, read once without knowing the schema in advance:
/// every attribute is kept in the shapes it may be read as.
#[derive(Default)]
struct Fields {
    u: [Option<u32>; 8],
    u16: [Option<u16>; 8],
    u64: [Option<u64>; 8],
    data: [Option<Vec<u8>>; 8],
    raw: [Option<Vec<u8>>; 8],
    text: Option<String>,
    verdict: Option<Verdict>,
}

impl Fields {
    fn set(&mut self, name: &str, a: Attr<'_>) -> Result<(), DecodeError> {
        let k = a.kind() as usize;
        if k >= 8 {
            return Ok(()); // attributes newer than this crate
        }
        let v = a.value();
        if v.len() == 4 {
            self.u[k] = a.be32("expr u32").ok();
        }
        if v.len() == 2 {
            self.u16[k] = a.be16("expr u16").ok();
        }
        if v.len() == 8 {
            self.u64[k] = a.be64("expr u64").ok();
        }
        self.raw[k] = Some(v.to_vec());
        let string_attr = matches!((name, k), ("lookup", 1) | ("target", 1));
        if string_attr {
            self.text = Some(a.str("expr name")?.to_string());
        }
        let data_attr = matches!(
            (name, k),
            ("cmp", 3) | ("bitwise", 4) | ("bitwise", 5) | ("immediate", 2)
        );
        if data_attr {
            for d in a.nested() {
                let d = d?;
                match d.kind() {
                    data::VALUE => self.data[k] = Some(d.value().to_vec()),
                    data::VERDICT => self.verdict = Some(parse_verdict(&d)?),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

fn encode_verdict(m: &mut MessageBuilder<'_>, v: &Verdict) {
    let (code, chain) = match v {
        Verdict::Accept => (NF_ACCEPT, None),
        Verdict::Drop => (NF_DROP, None),
        Verdict::Continue => (NFT_CONTINUE, None),
        Verdict::Return => (NFT_RETURN, None),
        Verdict::Jump(c) => (NFT_JUMP, Some(c)),
        Verdict::Goto(c) => (NFT_GOTO, Some(c)),
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
        (Some(NF_ACCEPT), _) => Verdict::Accept,
        (Some(NF_DROP), _) => Verdict::Drop,
        (Some(NFT_CONTINUE), _) => Verdict::Continue,
        (Some(NFT_RETURN), _) => Verdict::Return,
        (Some(NFT_JUMP), Some(c)) => Verdict::Jump(c),
        (Some(NFT_GOTO), Some(c)) => Verdict::Goto(c),
        (Some(c), _) => Verdict::Code(c),
        (None, _) => {
            return Err(DecodeError::Missing {
                what: "NFTA_VERDICT_CODE",
            })
        }
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
    use nfnl::message::{Messages, NfGenMsg};

    fn round_trip(e: &Expr) -> Expr {
        let mut buf = Vec::new();
        let mut m = MessageBuilder::new(&mut buf, 0x0a06, 1, 1, NfGenMsg::default());
        e.encode(&mut m);
        m.finish().unwrap();
        let msg = Messages::new(&buf).next().unwrap().unwrap();
        let (_, attrs) = msg.nfgen().unwrap();
        let elem = AttrIter::new(attrs).next().unwrap().unwrap();
        Expr::parse(&elem).unwrap()
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
                key: meta_key::L4PROTO,
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
                key: ct_key::STATE,
                dreg: REG_1,
            },
            Expr::Socket {
                key: socket_key::TRANSPARENT,
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
                bytes: false,
                invert: false,
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
                flags: queue_flag::BYPASS | queue_flag::CPU_FANOUT,
            },
            Expr::Target {
                name: "NFQUEUE".into(),
                rev: 3,
                info: nfqueue_v3_info(0, 2, queue_flag::BYPASS),
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

    #[test]
    fn nfqueue_info_is_host_endian_and_aligned() {
        let info = nfqueue_v3_info(7, 1, 1);
        assert_eq!(info.len(), 8);
        assert_eq!(u16::from_ne_bytes([info[0], info[1]]), 7);
        assert_eq!(u16::from_ne_bytes([info[4], info[5]]), 1);
    }
}
