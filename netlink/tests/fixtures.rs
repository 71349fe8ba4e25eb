//! Decoding real kernel bytes (fixtures/nfqueue, captured on 6.18 by
//! `cargo run -p nfnl --example capture_fixtures`) and encoding byte-exact requests.
//!
//! The captures hold host-endian netlink headers from a little-endian machine, so the tests that
//! read them are gated on little-endian (as rust-netlink does); the codec itself is covered on
//! big-endian by the unit tests, which build their bytes on the running host.
#![cfg(target_endian = "little")]

use nfnl::ack::{Ack, AckTracker, Expect};
use nfnl::message::{family, Messages, NLM_F_CAPPED};
use nfnl::queue::{skb_info, PacketView, QueueConfig};

fn one_message(bytes: &[u8]) -> nfnl::message::Message<'_> {
    let mut it = Messages::new(bytes);
    let m = it.next().expect("one message").expect("well formed");
    assert!(it.next().is_none(), "exactly one message per datagram");
    m
}

#[test]
fn ipv4_tcp_syn() {
    let bytes = include_bytes!("../../fixtures/nfqueue/packet-v4-tcp-syn.bin");
    let p = PacketView::parse(&one_message(bytes)).unwrap();
    assert_eq!(p.queue, 0);
    assert_eq!(p.family, family::IPV4);
    assert_eq!(p.id, 1);
    assert_eq!(p.hw_protocol, 0x0800);
    assert_eq!(p.hook, 1, "NF_INET_LOCAL_IN");
    assert_eq!(p.in_ifindex, Some(2));
    assert_eq!(
        p.cap_len, None,
        "a 60-byte SYN fits the 128-byte copy range"
    );
    assert_eq!(p.payload.len(), 60);
    assert_eq!(p.payload[0], 0x45, "IPv4, 20-byte header");
    assert_eq!(p.payload[9], 6, "TCP");
    assert_eq!(&p.payload[12..16], &[192, 0, 2, 2]);
    assert_eq!(&p.payload[16..20], &[192, 0, 2, 1]);
    assert_eq!(u16::from_be_bytes([p.payload[22], p.payload[23]]), 7000);
    assert_eq!(p.payload[33], 0x02, "SYN only");
    assert_eq!(p.skb_info & skb_info::GSO, 0);
}

#[test]
fn ipv4_udp_and_truncation() {
    let bytes = include_bytes!("../../fixtures/nfqueue/packet-v4-udp.bin");
    let p = PacketView::parse(&one_message(bytes)).unwrap();
    assert_eq!(p.payload.len(), 20 + 8 + 7);
    assert_eq!(&p.payload[28..], b"scanban");
    assert!(!p.is_truncated());

    let bytes = include_bytes!("../../fixtures/nfqueue/packet-v4-udp-truncated.bin");
    let p = PacketView::parse(&one_message(bytes)).unwrap();
    assert_eq!(p.payload.len(), 128, "cut to the copy range");
    assert_eq!(p.cap_len, Some(20 + 8 + 1000));
    assert_eq!(p.original_len(), 1028);
    assert_eq!(p.payload[9], 17, "UDP");
}

#[test]
fn ipv6_tcp_syn() {
    let bytes = include_bytes!("../../fixtures/nfqueue/packet-v6-tcp-syn.bin");
    let p = PacketView::parse(&one_message(bytes)).unwrap();
    assert_eq!(p.family, family::IPV6);
    assert_eq!(p.hw_protocol, 0x86dd);
    assert_eq!(p.payload[0] >> 4, 6);
    assert_eq!(p.payload[6], 6, "next header TCP");
    let src: [u8; 16] = p.payload[8..24].try_into().unwrap();
    assert_eq!(
        std::net::Ipv6Addr::from(src),
        "2001:db8::2".parse::<std::net::Ipv6Addr>().unwrap()
    );
    assert_eq!(u16::from_be_bytes([p.payload[42], p.payload[43]]), 7002);
}

#[test]
fn config_ack() {
    let bytes = include_bytes!("../../fixtures/nfqueue/config-ack.bin");
    let m = one_message(bytes);
    assert_eq!(
        m.flags & NLM_F_CAPPED,
        NLM_F_CAPPED,
        "CAP_ACK: header-only echo"
    );
    let ack = Ack::parse(&m).unwrap().unwrap();
    assert!(ack.is_ok());
    assert_eq!(
        ack.request_type, 0x0302,
        "NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_CONFIG"
    );
    assert_eq!(ack.seq, m.seq, "the reply carries the request's seq");
}

#[test]
fn second_binder_gets_eperm_with_the_request_named() {
    let bytes = include_bytes!("../../fixtures/nfqueue/bind-eperm.bin");
    let ack = Ack::parse(&one_message(bytes)).unwrap().unwrap();
    assert_eq!(ack.errno, libc::EPERM);
    // The kernel gives no extended-ACK text for this refusal (checked on 6.18).
    assert_eq!(ack.ext_msg, None);
    let mut t = AckTracker::new();
    t.expect(ack.seq, "bind queue 0", Expect::Ack);
    assert!(t.on_ack(&ack));
    assert_eq!(
        t.result().unwrap_err().to_string(),
        "bind queue 0: Operation not permitted"
    );
}

/// Our config request, byte for byte, with each field named.
#[test]
fn bind_config_bytes() {
    let mut buf = Vec::new();
    QueueConfig::new(3)
        .encode_bind(&mut buf, 0x01020304)
        .unwrap();
    #[rustfmt::skip]
    let expected: [u8; 64] = [
        0x40, 0x00, 0x00, 0x00, // nlmsg_len 64
        0x02, 0x03,             // type: NFNL_SUBSYS_QUEUE(3) << 8 | NFQNL_MSG_CONFIG(2)
        0x05, 0x00,             // flags: REQUEST | ACK
        0x04, 0x03, 0x02, 0x01, // seq
        0x00, 0x00, 0x00, 0x00, // port 0: the kernel
        0x00, 0x00, 0x00, 0x03, // nfgenmsg: AF_UNSPEC, V0, res_id = queue 3 (big-endian)
        0x08, 0x00, 0x01, 0x00, // NFQA_CFG_CMD, len 8
        0x01, 0x00, 0x00, 0x00, //   BIND, pad, pf 0
        0x09, 0x00, 0x02, 0x00, // NFQA_CFG_PARAMS, len 9 (packed struct)
        0x00, 0x00, 0x00, 0x80, //   copy_range 128 (be32)
        0x02, 0x00, 0x00, 0x00, //   NFQNL_COPY_PACKET + 3 bytes padding
        0x08, 0x00, 0x03, 0x00, // NFQA_CFG_QUEUE_MAXLEN
        0x00, 0x00, 0x10, 0x00, //   4096
        0x08, 0x00, 0x04, 0x00, // NFQA_CFG_MASK
        0x00, 0x00, 0x00, 0x07, //   FAIL_OPEN | CONNTRACK | GSO
        0x08, 0x00, 0x05, 0x00, // NFQA_CFG_FLAGS
        0x00, 0x00, 0x00, 0x05, //   FAIL_OPEN | GSO
    ];
    assert_eq!(buf, expected);
}

/// Every prefix and every single-byte corruption of the real captures decodes or fails cleanly.
#[test]
fn corrupted_captures_never_panic() {
    let all: [&[u8]; 6] = [
        include_bytes!("../../fixtures/nfqueue/packet-v4-tcp-syn.bin"),
        include_bytes!("../../fixtures/nfqueue/packet-v4-udp.bin"),
        include_bytes!("../../fixtures/nfqueue/packet-v4-udp-truncated.bin"),
        include_bytes!("../../fixtures/nfqueue/packet-v6-tcp-syn.bin"),
        include_bytes!("../../fixtures/nfqueue/config-ack.bin"),
        include_bytes!("../../fixtures/nfqueue/bind-eperm.bin"),
    ];
    for bytes in all {
        for cut in 0..bytes.len() {
            decode_everything(&bytes[..cut]);
        }
        let mut copy = bytes.to_vec();
        for i in 0..copy.len() {
            for v in [0x00, 0x03, 0x7f, 0xff] {
                let old = copy[i];
                copy[i] = v;
                decode_everything(&copy);
                copy[i] = old;
            }
        }
    }
}

fn decode_everything(bytes: &[u8]) {
    for m in Messages::new(bytes).flatten() {
        let _ = PacketView::parse(&m);
        let _ = Ack::parse(&m);
    }
}
