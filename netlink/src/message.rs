//! Netlink messages: reading a datagram into messages, and building nfnetlink requests.
//!
//! The `nlmsghdr` is read and written through netlink-packet-core's `NetlinkBuffer`, after our own
//! bounds check (its `new_checked` formats an error string, which the packet path must not do).
//! Every nfnetlink message then carries a 4-byte `nfgenmsg` whose `res_id` is big-endian
//! (docs/WIRE-NOTES.md#byte-order).

use netlink_packet_core::NetlinkBuffer;

use crate::attr::{self, align4};
use crate::error::{DecodeError, EncodeError};

pub use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_APPEND, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_ECHO, NLM_F_EXCL, NLM_F_MULTIPART, NLM_F_REPLACE, NLM_F_REQUEST,
};

/// Control message types shared by every netlink family (`linux/netlink.h`).
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;
/// Message types below this are control messages, not family messages.
pub const NLMSG_MIN_TYPE: u16 = 0x10;

/// `sizeof(struct nlmsghdr)`.
pub const NLMSG_HDRLEN: usize = 16;
pub const NFGENMSG_LEN: usize = 4;

/// `NFNETLINK_V0`, the only nfnetlink version.
pub const NFNETLINK_V0: u8 = 0;

/// nfnetlink subsystems we speak (`linux/netfilter/nfnetlink.h`).
pub mod subsys {
    /// Batch begin/end live in subsystem 0 (`NFNL_SUBSYS_NONE`).
    pub const NONE: u8 = 0;
    pub const QUEUE: u8 = 3;
    pub const NFTABLES: u8 = 10;
}

/// Protocol families as nfnetlink uses them in `nfgen_family` (`NFPROTO_*`).
pub mod family {
    pub const UNSPEC: u8 = 0;
    pub const INET: u8 = 1;
    pub const IPV4: u8 = 2;
    pub const IPV6: u8 = 10;
}

/// nfnetlink message type: subsystem in the high byte, the subsystem's message in the low byte.
pub const fn nfnl_type(subsystem: u8, msg: u8) -> u16 {
    ((subsystem as u16) << 8) | msg as u16
}

/// The nfnetlink header that follows `nlmsghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NfGenMsg {
    pub family: u8,
    pub version: u8,
    /// Host value; big-endian on the wire.
    pub res_id: u16,
}

impl NfGenMsg {
    pub fn new(family: u8, res_id: u16) -> Self {
        NfGenMsg {
            family,
            version: NFNETLINK_V0,
            res_id,
        }
    }

    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        match buf.get(..NFGENMSG_LEN) {
            Some(b) => Ok(NfGenMsg {
                family: b[0],
                version: b[1],
                res_id: u16::from_be_bytes([b[2], b[3]]),
            }),
            None => Err(DecodeError::Truncated {
                what: "nfgenmsg",
                need: NFGENMSG_LEN,
                have: buf.len(),
            }),
        }
    }

    fn emit(&self, buf: &mut Vec<u8>) {
        buf.push(self.family);
        buf.push(self.version);
        buf.extend_from_slice(&self.res_id.to_be_bytes());
    }
}

/// One message of a received datagram, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub port: u32,
    /// Everything after the `nlmsghdr` (for nfnetlink: `nfgenmsg` then attributes).
    pub payload: &'a [u8],
    /// The whole message, header included (a valid datagram on its own).
    pub raw: &'a [u8],
}

impl<'a> Message<'a> {
    /// The nfnetlink subsystem (high byte of the type).
    pub fn subsystem(&self) -> u8 {
        (self.msg_type >> 8) as u8
    }

    /// The subsystem's message (low byte of the type).
    pub fn subsystem_msg(&self) -> u8 {
        self.msg_type as u8
    }

    /// Splits an nfnetlink payload into its `nfgenmsg` and its attribute bytes.
    pub fn nfgen(&self) -> Result<(NfGenMsg, &'a [u8]), DecodeError> {
        let hdr = NfGenMsg::parse(self.payload)?;
        Ok((hdr, &self.payload[NFGENMSG_LEN..]))
    }
}

/// Iterates over the messages of one datagram. Never panics; a lying `nlmsg_len` yields one
/// `Err` and ends the iteration.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    pub fn new(datagram: &'a [u8]) -> Self {
        Messages { rest: datagram }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < NLMSG_HDRLEN {
            let have = self.rest.len();
            self.rest = &[];
            return Some(Err(DecodeError::Truncated {
                what: "nlmsghdr",
                need: NLMSG_HDRLEN,
                have,
            }));
        }
        // Bounds are checked just above and below, so the unchecked view cannot panic.
        let buf = NetlinkBuffer::new(self.rest);
        let len = buf.length() as usize;
        if len < NLMSG_HDRLEN || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(DecodeError::BadLength {
                what: "nlmsghdr",
                len,
            }));
        }
        let msg = Message {
            msg_type: buf.message_type(),
            flags: buf.flags(),
            seq: buf.sequence_number(),
            port: buf.port_number(),
            payload: &self.rest[NLMSG_HDRLEN..len],
            raw: &self.rest[..len],
        };
        let advance = align4(len).min(self.rest.len());
        self.rest = &self.rest[advance..];
        Some(Ok(msg))
    }
}

/// Appends one nfnetlink request to a buffer: header, `nfgenmsg`, then attributes.
///
/// Several builders can be used one after another on the same buffer to put many messages in one
/// datagram (batches, multi-verdicts). Attribute errors (a nest over 64 KiB) are remembered and
/// reported by `finish`, so call sites stay linear.
pub struct MessageBuilder<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
    error: Option<EncodeError>,
}

impl<'b> MessageBuilder<'b> {
    pub fn new(buf: &'b mut Vec<u8>, msg_type: u16, flags: u16, seq: u32, nfgen: NfGenMsg) -> Self {
        let start = buf.len();
        buf.resize(start + NLMSG_HDRLEN, 0);
        {
            // Length is written by `finish`; port 0 addresses the kernel.
            let mut nl = NetlinkBuffer::new(&mut buf[start..]);
            nl.set_message_type(msg_type);
            nl.set_flags(flags);
            nl.set_sequence_number(seq);
            nl.set_port_number(0);
        }
        nfgen.emit(buf);
        MessageBuilder {
            buf,
            start,
            error: None,
        }
    }

    fn record(&mut self, r: Result<(), EncodeError>) -> &mut Self {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
        self
    }

    pub fn bytes(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let r = attr::put(self.buf, kind, value);
        self.record(r)
    }

    pub fn u8(&mut self, kind: u16, v: u8) -> &mut Self {
        self.bytes(kind, &[v])
    }

    pub fn be16(&mut self, kind: u16, v: u16) -> &mut Self {
        self.bytes(kind, &v.to_be_bytes())
    }

    pub fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.bytes(kind, &v.to_be_bytes())
    }

    pub fn be64(&mut self, kind: u16, v: u64) -> &mut Self {
        self.bytes(kind, &v.to_be_bytes())
    }

    /// A NUL-terminated string, as `NLA_NUL_STRING`/`NLA_STRING` policies expect.
    pub fn str(&mut self, kind: u16, s: &str) -> &mut Self {
        let len = attr::NLA_HDRLEN + s.len() + 1;
        match u16::try_from(len) {
            Ok(nla_len) => {
                self.buf.extend_from_slice(&nla_len.to_ne_bytes());
                self.buf.extend_from_slice(&kind.to_ne_bytes());
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
                attr::pad(self.buf);
                self
            }
            Err(_) => self.record(Err(EncodeError {
                attr_type: kind,
                len,
            })),
        }
    }

    /// A nested attribute whose content `fill` writes.
    pub fn nest(&mut self, kind: u16, fill: impl FnOnce(&mut Self)) -> &mut Self {
        let at = attr::nest_start(self.buf, kind);
        fill(self);
        let r = attr::nest_end(self.buf, at);
        self.record(r)
    }

    /// Bytes written so far for this message, header included (before padding of the last one).
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the final length into the header. Returns the message length.
    pub fn finish(self) -> Result<usize, EncodeError> {
        if let Some(e) = self.error {
            self.buf.truncate(self.start);
            return Err(e);
        }
        let len = self.buf.len() - self.start;
        let Ok(len32) = u32::try_from(len) else {
            self.buf.truncate(self.start);
            return Err(EncodeError { attr_type: 0, len });
        };
        NetlinkBuffer::new(&mut self.buf[self.start..]).set_length(len32);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::AttrIter;

    #[test]
    fn build_then_read_two_messages_in_one_datagram() {
        let mut buf = Vec::new();
        let mut m = MessageBuilder::new(
            &mut buf,
            nfnl_type(subsys::QUEUE, 2),
            NLM_F_REQUEST | NLM_F_ACK,
            7,
            NfGenMsg::new(family::UNSPEC, 513),
        );
        m.be32(3, 1024).str(9, "x");
        m.finish().unwrap();
        let mut m = MessageBuilder::new(
            &mut buf,
            nfnl_type(subsys::QUEUE, 1),
            NLM_F_REQUEST,
            8,
            NfGenMsg::new(family::INET, 0),
        );
        m.nest(1, |m| {
            m.u8(2, 5);
        });
        m.finish().unwrap();

        let msgs: Vec<_> = Messages::new(&buf).map(|m| m.unwrap()).collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].subsystem(), subsys::QUEUE);
        assert_eq!(msgs[0].subsystem_msg(), 2);
        assert_eq!(msgs[0].seq, 7);
        assert_eq!(msgs[0].flags, NLM_F_REQUEST | NLM_F_ACK);
        let (gen, attrs) = msgs[0].nfgen().unwrap();
        assert_eq!(gen, NfGenMsg::new(family::UNSPEC, 513));
        // res_id is big-endian on the wire, whatever the host.
        assert_eq!(&msgs[0].payload[2..4], &[0x02, 0x01]);
        let a: Vec<_> = AttrIter::new(attrs).map(|a| a.unwrap()).collect();
        assert_eq!(a[0].be32("maxlen").unwrap(), 1024);
        assert_eq!(a[1].str("s").unwrap(), "x");
        assert_eq!(msgs[1].seq, 8);
    }

    #[test]
    fn lying_header_lengths_do_not_panic() {
        let mut buf = vec![0u8; 20];
        buf[..4].copy_from_slice(&1000u32.to_ne_bytes());
        let mut it = Messages::new(&buf);
        assert!(matches!(
            it.next(),
            Some(Err(DecodeError::BadLength { .. }))
        ));
        assert!(it.next().is_none());
        let mut it = Messages::new(&buf[..10]);
        assert!(matches!(
            it.next(),
            Some(Err(DecodeError::Truncated { .. }))
        ));
        buf[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(matches!(
            Messages::new(&buf).next(),
            Some(Err(DecodeError::BadLength { .. }))
        ));
    }

    #[test]
    fn oversized_nest_fails_the_message_and_rolls_back() {
        let mut buf = vec![1, 2, 3, 4];
        let mut m = MessageBuilder::new(&mut buf, 0x0a00, NLM_F_REQUEST, 1, NfGenMsg::default());
        m.nest(1, |m| {
            for _ in 0..20 {
                m.bytes(1, &[0u8; 4000]);
            }
        });
        assert!(m.finish().is_err());
        assert_eq!(buf, vec![1, 2, 3, 4]);
    }
}
