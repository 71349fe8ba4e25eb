//! Decode errors: small, `Copy`, allocation-free, so that a malformed message on the packet path
//! costs nothing but a branch.

use std::fmt;

/// Why a netlink message or attribute could not be read.
///
/// `what` names the structure being read ("nlmsghdr", "NFQA_PACKET_HDR", ...) so a log line says
/// where the bytes stopped making sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the structure needs.
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A length field that is smaller than its own header or runs past the buffer.
    BadLength { what: &'static str, len: usize },
    /// A required attribute is absent.
    Missing { what: &'static str },
    /// A string attribute without its terminating NUL or not UTF-8.
    BadString { what: &'static str },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Truncated { what, need, have } => {
                write!(f, "{what}: truncated ({have} bytes, need {need})")
            }
            DecodeError::BadLength { what, len } => write!(f, "{what}: invalid length {len}"),
            DecodeError::Missing { what } => write!(f, "{what}: missing"),
            DecodeError::BadString { what } => {
                write!(f, "{what}: not a NUL-terminated UTF-8 string")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A message could not be encoded: an attribute or nest grew past the 16-bit `nla_len`.
///
/// The kernel's attribute length is a u16, so a nest holds at most 65,535 bytes. Callers that
/// build large lists (thousands of set elements) split them over several messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeError {
    pub attr_type: u16,
    pub len: usize,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "attribute {} is {} bytes, over the 65535-byte netlink attribute limit",
            self.attr_type, self.len
        )
    }
}

impl std::error::Error for EncodeError {}

/// Anything that can go wrong talking to the kernel over netlink.
#[derive(Debug)]
pub enum Error {
    /// The socket call itself failed.
    Io(std::io::Error),
    /// The kernel refused a request (errno, extended ACK, which request).
    Request(crate::ack::RequestError),
    /// The kernel sent bytes we could not read.
    Decode(DecodeError),
    /// A request could not be encoded.
    Encode(EncodeError),
    /// No reply within the deadline; names the requests still unanswered.
    Timeout { waiting_for: String },
    /// Another process (netlink port `portid`) holds the queue we tried to bind.
    QueueTaken { queue: u16, portid: u32 },
    /// A dump ended with `NLM_F_DUMP_INTR`: the objects changed while it ran, so what it listed
    /// may be inconsistent; the caller may dump again.
    DumpInterrupted { what: String },
}

impl Error {
    /// The kernel's errno (positive) when it refused a request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Request(r) => Some(r.errno),
            _ => None,
        }
    }

    /// The kernel refused a request for an object that does not exist (ENOENT).
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(libc::ENOENT)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "netlink socket: {e}"),
            Error::Request(e) => e.fmt(f),
            Error::Decode(e) => write!(f, "netlink reply: {e}"),
            Error::Encode(e) => write!(f, "netlink request: {e}"),
            Error::Timeout { waiting_for } => {
                write!(f, "no reply from the kernel for: {waiting_for}")
            }
            Error::QueueTaken { queue, portid } => write!(
                f,
                "queue {queue} is already bound by another process (netlink port {portid}); \
                 stop it or choose another queue number"
            ),
            Error::DumpInterrupted { what } => {
                write!(f, "{what}: dump interrupted by a concurrent change")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Request(e) => Some(e),
            Error::Decode(e) => Some(e),
            Error::Encode(e) => Some(e),
            Error::Timeout { .. } | Error::QueueTaken { .. } | Error::DumpInterrupted { .. } => {
                None
            }
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Error::Encode(e)
    }
}

impl From<crate::ack::RequestError> for Error {
    fn from(e: crate::ack::RequestError) -> Self {
        Error::Request(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::RequestError;

    fn refused(errno: i32) -> Error {
        Error::Request(RequestError {
            request: "set inet scanban banned4".into(),
            seq: 1,
            errno,
            extack: None,
            offset: None,
        })
    }

    #[test]
    fn errno_and_not_found_come_from_the_kernels_refusal_only() {
        assert_eq!(refused(libc::ENOENT).errno(), Some(libc::ENOENT));
        assert!(refused(libc::ENOENT).is_not_found());
        assert!(!refused(libc::ENFILE).is_not_found());
        let io = Error::Io(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(
            io.errno(),
            None,
            "a socket error is not the kernel refusing a request"
        );
        assert!(!io.is_not_found());
    }

    #[test]
    fn an_interrupted_dump_names_what_was_dumped() {
        let e = Error::DumpInterrupted {
            what: "rules of chain inet scanban sensor".into(),
        };
        assert_eq!(
            e.to_string(),
            "rules of chain inet scanban sensor: dump interrupted by a concurrent change"
        );
        assert_eq!(e.errno(), None);
    }
}
