//! ACKs and errors (`NLMSG_ERROR`) and the tracker that matches them to requests.
//!
//! Wire facts (docs/WIRE-NOTES.md#acks, docs/WIRE-NOTES.md#ack-format):
//! - `struct nlmsgerr { int error; struct nlmsghdr msg; }`, host-endian; `error` is 0 for an ACK
//!   and `-errno` otherwise; the echoed header's seq is the request's seq.
//! - with `NETLINK_CAP_ACK` (we always set it) only the request's header is echoed and the reply
//!   carries `NLM_F_CAPPED`; without it the whole request follows.
//! - with `NETLINK_EXT_ACK` errors carry `NLM_F_ACK_TLVS` and TLVs after the echo: a message
//!   string and the offset of the offending attribute within the request.
//! - an ACK of 0 inside an nf_tables batch does *not* mean committed: the batch layer must look at
//!   every reply before declaring success.

use std::fmt;

use crate::attr::AttrIter;
use crate::error::DecodeError;
use crate::message::{Message, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_ACK_TLVS, NLM_F_CAPPED};

/// Extended-ACK TLV types (`linux/netlink.h`, `enum nlmsgerr_attrs`).
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;

/// One parsed `NLMSG_ERROR`, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<'a> {
    /// Positive errno, 0 for success.
    pub errno: i32,
    /// Sequence number of the request this answers.
    pub seq: u32,
    /// Type of the request this answers.
    pub request_type: u16,
    /// Extended ACK message, e.g. "Queue already bound" style explanations.
    pub ext_msg: Option<&'a str>,
    /// Byte offset of the offending attribute, from the start of the request's `nlmsghdr`.
    pub ext_offset: Option<u32>,
    /// Type of a required attribute the kernel found missing.
    pub missing_attr: Option<u32>,
}

impl<'a> Ack<'a> {
    /// Reads an `NLMSG_ERROR` message; `Ok(None)` for any other message type.
    pub fn parse(msg: &Message<'a>) -> Result<Option<Ack<'a>>, DecodeError> {
        if msg.msg_type != NLMSG_ERROR {
            return Ok(None);
        }
        let p = msg.payload;
        let need = 4 + NLMSG_HDRLEN;
        if p.len() < need {
            return Err(DecodeError::Truncated {
                what: "nlmsgerr",
                need,
                have: p.len(),
            });
        }
        let error = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
        let orig = &p[4..need];
        let orig_len = u32::from_ne_bytes([orig[0], orig[1], orig[2], orig[3]]) as usize;
        let request_type = u16::from_ne_bytes([orig[4], orig[5]]);
        let seq = u32::from_ne_bytes([orig[8], orig[9], orig[10], orig[11]]);

        let mut ack = Ack {
            errno: error.saturating_neg().max(0),
            seq,
            request_type,
            ext_msg: None,
            ext_offset: None,
            missing_attr: None,
        };
        if msg.flags & NLM_F_ACK_TLVS != 0 {
            // Success ACKs and capped errors echo only the header; otherwise the whole request.
            let echoed = if error == 0 || msg.flags & NLM_F_CAPPED != 0 {
                NLMSG_HDRLEN
            } else {
                crate::attr::align4(orig_len.max(NLMSG_HDRLEN))
            };
            let tlvs = p.get(4 + echoed..).unwrap_or(&[]);
            for a in AttrIter::new(tlvs).flatten() {
                match a.kind() {
                    NLMSGERR_ATTR_MSG => ack.ext_msg = a.str("NLMSGERR_ATTR_MSG").ok(),
                    NLMSGERR_ATTR_OFFS => ack.ext_offset = a.ne32("NLMSGERR_ATTR_OFFS").ok(),
                    NLMSGERR_ATTR_MISS_TYPE => {
                        ack.missing_attr = a.ne32("NLMSGERR_ATTR_MISS_TYPE").ok()
                    }
                    _ => {}
                }
            }
        }
        Ok(Some(ack))
    }

    pub fn is_ok(&self) -> bool {
        self.errno == 0
    }
}

/// A request the kernel refused: which one, why, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// What the request was, in words: "bind queue 0", "chain inet scanban sensor".
    pub request: String,
    pub seq: u32,
    /// Positive errno.
    pub errno: i32,
    pub extack: Option<String>,
    pub offset: Option<u32>,
}

impl RequestError {
    pub fn from_ack(request: &str, ack: &Ack<'_>) -> Self {
        RequestError {
            request: request.to_string(),
            seq: ack.seq,
            errno: ack.errno,
            extack: ack.ext_msg.map(str::to_string),
            offset: ack.ext_offset,
        }
    }

    pub fn io_error(&self) -> std::io::Error {
        std::io::Error::from_raw_os_error(self.errno)
    }
}

/// The C library's text for an errno, without Rust's " (os error N)" suffix.
pub fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.request, strerror(self.errno))?;
        match (&self.extack, self.offset) {
            (Some(m), Some(o)) => write!(f, " (extack: {m}, at byte {o})"),
            (Some(m), None) => write!(f, " (extack: {m})"),
            (None, Some(o)) => write!(f, " (extack: attribute at byte {o})"),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for RequestError {}

/// What a request expects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Sent with `NLM_F_ACK`: exactly one reply, 0 or an error.
    Ack,
    /// Sent without `NLM_F_ACK` (batch BEGIN/END): a reply comes only on error. Commit-phase
    /// errors of an nf_tables batch are reported against the BEGIN seq (docs/WIRE-NOTES.md#acks).
    ErrorOnly,
}

#[derive(Debug)]
struct Pending {
    seq: u32,
    label: String,
    expect: Expect,
    outcome: Option<Result<(), RequestError>>,
}

/// Matches replies to the requests of one transaction.
///
/// Feed it every `NLMSG_ERROR` received; it is complete when every `Expect::Ack` request has its
/// reply. Errors are kept by seq so that the *first* one (the cause; later ENOENTs are usually
/// fallout) is what gets reported.
#[derive(Debug, Default)]
pub struct AckTracker {
    pending: Vec<Pending>,
}

impl AckTracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn expect(&mut self, seq: u32, label: impl Into<String>, expect: Expect) {
        self.pending.push(Pending {
            seq,
            label: label.into(),
            expect,
            outcome: None,
        });
    }

    /// Records a reply. Returns false if it answers none of our requests (stale or foreign).
    pub fn on_ack(&mut self, ack: &Ack<'_>) -> bool {
        let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.seq == ack.seq && p.outcome.is_none())
        else {
            return false;
        };
        p.outcome = Some(if ack.is_ok() {
            Ok(())
        } else {
            Err(RequestError::from_ack(&p.label, ack))
        });
        true
    }

    /// Every request that asked for an ACK has one, or an error-only request failed: an error
    /// against a batch's BEGIN (a stale generation id, docs/WIRE-NOTES.md#generation-id) ends the
    /// transaction before any object message is answered.
    pub fn is_complete(&self) -> bool {
        let batch_failed = self
            .pending
            .iter()
            .any(|p| p.expect == Expect::ErrorOnly && matches!(p.outcome, Some(Err(_))));
        batch_failed
            || self
                .pending
                .iter()
                .all(|p| p.expect == Expect::ErrorOnly || p.outcome.is_some())
    }

    /// Requests still waiting for their ACK, by label.
    pub fn unanswered(&self) -> impl Iterator<Item = &str> {
        self.pending
            .iter()
            .filter(|p| p.expect == Expect::Ack && p.outcome.is_none())
            .map(|p| p.label.as_str())
    }

    /// The error with the lowest sequence number, if any.
    pub fn first_error(&self) -> Option<&RequestError> {
        self.pending
            .iter()
            .filter_map(|p| match &p.outcome {
                Some(Err(e)) => Some(e),
                _ => None,
            })
            .min_by_key(|e| e.seq)
    }

    /// The transaction's verdict: `Ok` only if no request failed.
    pub fn result(&self) -> Result<(), RequestError> {
        match self.first_error() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Outcome of one request by seq (`None` while unanswered or for error-only requests that
    /// succeeded).
    pub fn outcome(&self, seq: u32) -> Option<&Result<(), RequestError>> {
        self.pending
            .iter()
            .find(|p| p.seq == seq)
            .and_then(|p| p.outcome.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Messages, NLM_F_ACK_TLVS, NLM_F_CAPPED};

    /// Builds an NLMSG_ERROR the way the kernel does with CAP_ACK and EXT_ACK set.
    fn error_msg(errno: i32, seq: u32, tlvs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(-errno).to_ne_bytes());
        payload.extend_from_slice(&44u32.to_ne_bytes()); // orig len
        payload.extend_from_slice(&0x0302u16.to_ne_bytes()); // orig type
        payload.extend_from_slice(&5u16.to_ne_bytes()); // orig flags
        payload.extend_from_slice(&seq.to_ne_bytes());
        payload.extend_from_slice(&0u32.to_ne_bytes());
        for (t, v) in tlvs {
            crate::attr::put(&mut payload, *t, v).unwrap();
        }
        let flags = NLM_F_CAPPED | if tlvs.is_empty() { 0 } else { NLM_F_ACK_TLVS };
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&1234u32.to_ne_bytes());
        m.extend_from_slice(&payload);
        m
    }

    #[test]
    fn ack_and_error_with_extack() {
        let ok = error_msg(0, 3, &[]);
        let msg = Messages::new(&ok).next().unwrap().unwrap();
        let ack = Ack::parse(&msg).unwrap().unwrap();
        assert!(ack.is_ok());
        assert_eq!(ack.seq, 3);
        assert_eq!(ack.request_type, 0x0302);

        let err = error_msg(1, 4, &[(1, b"queue taken\0"), (2, &20u32.to_ne_bytes())]);
        let msg = Messages::new(&err).next().unwrap().unwrap();
        let ack = Ack::parse(&msg).unwrap().unwrap();
        assert_eq!(ack.errno, 1);
        assert_eq!(ack.ext_msg, Some("queue taken"));
        assert_eq!(ack.ext_offset, Some(20));
    }

    #[test]
    fn tracker_reports_the_first_error_with_its_label() {
        let mut t = AckTracker::new();
        t.expect(10, "batch", Expect::ErrorOnly);
        t.expect(11, "table inet scanban", Expect::Ack);
        t.expect(12, "chain inet scanban sensor", Expect::Ack);
        t.expect(13, "rule inet scanban sensor", Expect::Ack);
        assert!(!t.is_complete());

        for (errno, seq) in [(0, 11), (2, 13), (22, 12)] {
            let bytes = error_msg(errno, seq, &[]);
            let msg = Messages::new(&bytes).next().unwrap().unwrap();
            assert!(t.on_ack(&Ack::parse(&msg).unwrap().unwrap()));
        }
        assert!(t.is_complete());
        let e = t.result().unwrap_err();
        assert_eq!(e.seq, 12);
        assert_eq!(e.to_string(), "chain inet scanban sensor: Invalid argument");
        // A reply to nothing we sent is reported as foreign.
        let bytes = error_msg(0, 99, &[]);
        let msg = Messages::new(&bytes).next().unwrap().unwrap();
        assert!(!t.on_ack(&Ack::parse(&msg).unwrap().unwrap()));
    }

    #[test]
    fn an_error_against_the_batch_itself_completes_the_transaction() {
        let mut t = AckTracker::new();
        t.expect(20, "batch", Expect::ErrorOnly);
        t.expect(21, "table inet late", Expect::Ack);
        let bytes = error_msg(85, 20, &[]);
        let msg = Messages::new(&bytes).next().unwrap().unwrap();
        assert!(t.on_ack(&Ack::parse(&msg).unwrap().unwrap()));
        assert!(t.is_complete());
        assert_eq!(t.result().unwrap_err().request, "batch");
    }

    #[test]
    fn truncated_error_is_an_error_not_a_panic() {
        let mut bytes = error_msg(0, 1, &[]);
        bytes.truncate(16 + 8);
        bytes[..4].copy_from_slice(&24u32.to_ne_bytes());
        let msg = Messages::new(&bytes).next().unwrap().unwrap();
        assert!(Ack::parse(&msg).is_err());
    }
}
