//! Queued packet messages (`NFQNL_MSG_PACKET`) as a zero-copy view.
//!
//! Layout facts (docs/WIRE-NOTES.md#queued-packets): `nfgen_family` is the packet's protocol family
//! (2 or 10, even for inet rules) and `res_id` the queue number; `NFQA_PACKET_HDR` is a packed
//! 7-byte struct (be32 id, be16 hw_protocol, u8 hook); `NFQA_CAP_LEN` appears only when the payload
//! was cut to the copy range; `NFQA_TIMESTAMP` only if the skb has one. Unknown attributes (newer
//! kernels add some) are skipped.
//!
//! Contract: `PacketView::parse` never panics and never allocates; the view borrows the receive
//! buffer.

use crate::attr::AttrIter;
use crate::error::DecodeError;
use crate::message::{subsys, Message};

use super::{attr, msg};

/// `NFQA_SKB_INFO` bits.
pub mod skb_info {
    pub const CSUMNOTREADY: u32 = 1 << 0;
    pub const GSO: u32 = 1 << 1;
    pub const CSUM_NOTVERIFIED: u32 = 1 << 2;
}

/// One queued packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketView<'a> {
    /// Queue the packet came from.
    pub queue: u16,
    /// `NFPROTO_IPV4` (2) or `NFPROTO_IPV6` (10).
    pub family: u8,
    /// Id to answer with; per queue, increasing, wrapping.
    pub id: u32,
    /// Link-layer protocol (ETH_P_IP 0x0800, ETH_P_IPV6 0x86dd), host value.
    pub hw_protocol: u16,
    /// Netfilter hook (0 prerouting, 1 input, 2 forward, 3 output, 4 postrouting).
    pub hook: u8,
    /// The packet from its network header, possibly cut to the copy range.
    pub payload: &'a [u8],
    /// Original length when `payload` was truncated.
    pub cap_len: Option<u32>,
    pub mark: Option<u32>,
    pub in_ifindex: Option<u32>,
    pub out_ifindex: Option<u32>,
    /// (seconds, microseconds) since the epoch, when the skb carries a timestamp.
    pub timestamp: Option<(u64, u64)>,
    /// `NFQA_SKB_INFO` bits (see `skb_info`), 0 when absent.
    pub skb_info: u32,
}

impl<'a> PacketView<'a> {
    /// Reads a packet message. Fails on anything that is not `NFQNL_MSG_PACKET` or lacks the
    /// packet header.
    pub fn parse(msg: &Message<'a>) -> Result<Self, DecodeError> {
        if msg.subsystem() != subsys::QUEUE || msg.subsystem_msg() != msg::PACKET {
            return Err(DecodeError::Missing {
                what: "NFQNL_MSG_PACKET",
            });
        }
        let (gen, attrs) = msg.nfgen()?;
        let mut p = PacketView {
            queue: gen.res_id,
            family: gen.family,
            id: 0,
            hw_protocol: 0,
            hook: 0,
            payload: &[],
            cap_len: None,
            mark: None,
            in_ifindex: None,
            out_ifindex: None,
            timestamp: None,
            skb_info: 0,
        };
        let mut have_hdr = false;
        for a in AttrIter::new(attrs) {
            let a = a?;
            match a.kind() {
                attr::PACKET_HDR => {
                    let h = a.fixed::<7>("NFQA_PACKET_HDR")?;
                    p.id = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
                    p.hw_protocol = u16::from_be_bytes([h[4], h[5]]);
                    p.hook = h[6];
                    have_hdr = true;
                }
                attr::PAYLOAD => p.payload = a.value(),
                attr::CAP_LEN => p.cap_len = Some(a.be32("NFQA_CAP_LEN")?),
                attr::MARK => p.mark = Some(a.be32("NFQA_MARK")?),
                attr::IFINDEX_INDEV => p.in_ifindex = Some(a.be32("NFQA_IFINDEX_INDEV")?),
                attr::IFINDEX_OUTDEV => p.out_ifindex = Some(a.be32("NFQA_IFINDEX_OUTDEV")?),
                attr::TIMESTAMP => {
                    let t = a.fixed::<16>("NFQA_TIMESTAMP")?;
                    let sec = u64::from_be_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]);
                    let usec =
                        u64::from_be_bytes([t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15]]);
                    p.timestamp = Some((sec, usec));
                }
                attr::SKB_INFO => p.skb_info = a.be32("NFQA_SKB_INFO")?,
                _ => {}
            }
        }
        if !have_hdr {
            return Err(DecodeError::Missing {
                what: "NFQA_PACKET_HDR",
            });
        }
        Ok(p)
    }

    /// Whether the kernel cut the payload to the copy range.
    pub fn is_truncated(&self) -> bool {
        self.cap_len.is_some()
    }

    /// Length of the packet on the wire side (before truncation).
    pub fn original_len(&self) -> usize {
        self.cap_len.map_or(self.payload.len(), |l| l as usize)
    }
}
