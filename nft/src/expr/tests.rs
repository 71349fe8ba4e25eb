//! Round trips of every expression, and what happens to codes this crate does not name.

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
        Expr::MetaSet {
            key: meta::MARK,
            sreg: REG_1,
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
