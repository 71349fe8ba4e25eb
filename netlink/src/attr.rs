//! Netlink attributes (`struct nlattr`): a zero-copy reader and the low-level writer.
//!
//! Wire facts this module encodes (docs/WIRE-NOTES.md#byte-order, docs/WIRE-NOTES.md#nesting):
//! - the 4-byte `nlattr` header (`nla_len`, `nla_type`) is host-endian; nfnetlink *payloads* are
//!   big-endian, hence the `be*` accessors;
//! - the top two bits of `nla_type` are flags (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`); the kernel
//!   sets `NLA_F_NESTED` inconsistently on output, so the reader masks them off and callers decide
//!   nesting from the schema, never from the flag;
//! - every attribute is padded to 4 bytes; `nla_len` excludes the padding.
//!
//! Reader contract: `AttrIter` never panics and never allocates, whatever the bytes say. A length
//! that is too short or runs past the buffer ends the iteration with one `Err`.

use crate::error::{DecodeError, EncodeError};

pub const NLA_F_NESTED: u16 = 1 << 15;
pub const NLA_F_NET_BYTEORDER: u16 = 1 << 14;
pub const NLA_TYPE_MASK: u16 = 0x3fff;
pub const NLA_HDRLEN: usize = 4;

/// Netlink alignment: 4 bytes for headers and attributes.
pub const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// One attribute as it sits in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    raw_type: u16,
    value: &'a [u8],
}

impl<'a> Attr<'a> {
    /// The attribute type with the flag bits masked off.
    pub fn kind(&self) -> u16 {
        self.raw_type & NLA_TYPE_MASK
    }

    /// Whether the sender set `NLA_F_NESTED`. Informational only (see module docs).
    pub fn nested_flag(&self) -> bool {
        self.raw_type & NLA_F_NESTED != 0
    }

    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// The attribute's payload read as a list of attributes.
    pub fn nested(&self) -> AttrIter<'a> {
        AttrIter::new(self.value)
    }

    pub fn u8(&self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.fixed::<1>(what)?[0])
    }

    pub fn be16(&self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.fixed(what)?))
    }

    pub fn be32(&self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.fixed(what)?))
    }

    pub fn be64(&self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.fixed(what)?))
    }

    /// A host-endian u32 (the few nf_tables fields that are not big-endian,
    /// docs/WIRE-NOTES.md#byte-order).
    pub fn ne32(&self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_ne_bytes(self.fixed(what)?))
    }

    /// A NUL-terminated string (`NLA_NUL_STRING`/`NLA_STRING` as the kernel emits them). Bytes
    /// after the first NUL are ignored; a missing NUL is accepted only if the value is non-empty
    /// UTF-8, as the kernel's `NLA_STRING` policy allows.
    pub fn str(&self, what: &'static str) -> Result<&'a str, DecodeError> {
        let bytes = match self.value.iter().position(|&b| b == 0) {
            Some(nul) => &self.value[..nul],
            None => self.value,
        };
        std::str::from_utf8(bytes).map_err(|_| DecodeError::BadString { what })
    }

    /// The value as an exact-size array. The value must be at least `N` bytes; trailing bytes are
    /// tolerated because newer kernels sometimes grow structures.
    pub fn fixed<const N: usize>(&self, what: &'static str) -> Result<[u8; N], DecodeError> {
        match self.value.get(..N) {
            Some(head) => {
                let mut out = [0u8; N];
                out.copy_from_slice(head);
                Ok(out)
            }
            None => Err(DecodeError::Truncated {
                what,
                need: N,
                have: self.value.len(),
            }),
        }
    }
}

/// Iterates over the attributes in a buffer. Yields `Err` once and then stops if the buffer lies.
#[derive(Debug, Clone)]
pub struct AttrIter<'a> {
    rest: &'a [u8],
}

impl<'a> AttrIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        AttrIter { rest: buf }
    }
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = Result<Attr<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Trailing bytes shorter than a header are padding the kernel may leave; not an error.
        if self.rest.len() < NLA_HDRLEN {
            self.rest = &[];
            return None;
        }
        let len = u16::from_ne_bytes([self.rest[0], self.rest[1]]) as usize;
        let raw_type = u16::from_ne_bytes([self.rest[2], self.rest[3]]);
        if len < NLA_HDRLEN || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(DecodeError::BadLength {
                what: "nlattr",
                len,
            }));
        }
        let value = &self.rest[NLA_HDRLEN..len];
        // The last attribute may omit its padding.
        let advance = align4(len).min(self.rest.len());
        self.rest = &self.rest[advance..];
        Some(Ok(Attr { raw_type, value }))
    }
}

/// Appends one attribute (header, value, padding) to `buf`.
pub fn put(buf: &mut Vec<u8>, kind: u16, value: &[u8]) -> Result<(), EncodeError> {
    let len = NLA_HDRLEN + value.len();
    let nla_len = u16::try_from(len).map_err(|_| EncodeError {
        attr_type: kind,
        len,
    })?;
    buf.extend_from_slice(&nla_len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    pad(buf);
    Ok(())
}

/// Opens a nested attribute; returns the offset `nest_end` needs. `NLA_F_NESTED` is always set
/// on nests we emit (libmnl does the same; nf_tables accepts it either way).
pub fn nest_start(buf: &mut Vec<u8>, kind: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    start
}

/// Closes the nest opened at `start`, writing its length.
pub fn nest_end(buf: &mut [u8], start: usize) -> Result<(), EncodeError> {
    let len = buf.len() - start;
    let kind = u16::from_ne_bytes([buf[start + 2], buf[start + 3]]) & NLA_TYPE_MASK;
    let nla_len = u16::try_from(len).map_err(|_| EncodeError {
        attr_type: kind,
        len,
    })?;
    buf[start..start + 2].copy_from_slice(&nla_len.to_ne_bytes());
    Ok(())
}

/// Pads `buf` with zeros to the next 4-byte boundary.
pub fn pad(buf: &mut Vec<u8>) {
    let padded = align4(buf.len());
    buf.resize(padded, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_then_reader_round_trip() {
        let mut buf = Vec::new();
        put(&mut buf, 1, &7u32.to_be_bytes()).unwrap();
        let n = nest_start(&mut buf, 2);
        put(&mut buf, 1, b"abc\0").unwrap();
        put(&mut buf, 2, &[9]).unwrap();
        nest_end(&mut buf, n).unwrap();
        assert_eq!(buf.len() % 4, 0);

        let attrs: Vec<_> = AttrIter::new(&buf).map(|a| a.unwrap()).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].kind(), 1);
        assert_eq!(attrs[0].be32("x").unwrap(), 7);
        assert_eq!(attrs[1].kind(), 2);
        assert!(attrs[1].nested_flag());
        let inner: Vec<_> = attrs[1].nested().map(|a| a.unwrap()).collect();
        assert_eq!(inner[0].str("s").unwrap(), "abc");
        assert_eq!(inner[1].u8("b").unwrap(), 9);
    }

    #[test]
    fn lying_lengths_end_iteration_with_one_error() {
        // nla_len 200 in a 8-byte buffer
        let mut buf = Vec::new();
        buf.extend_from_slice(&200u16.to_ne_bytes());
        buf.extend_from_slice(&1u16.to_ne_bytes());
        buf.extend_from_slice(&[0; 4]);
        let mut it = AttrIter::new(&buf);
        assert!(matches!(
            it.next(),
            Some(Err(DecodeError::BadLength { .. }))
        ));
        assert!(it.next().is_none());

        // nla_len 2, smaller than its own header
        let mut buf = Vec::new();
        buf.extend_from_slice(&2u16.to_ne_bytes());
        buf.extend_from_slice(&1u16.to_ne_bytes());
        let mut it = AttrIter::new(&buf);
        assert!(matches!(
            it.next(),
            Some(Err(DecodeError::BadLength { .. }))
        ));
        assert!(it.next().is_none());
    }

    #[test]
    fn short_values_are_errors_not_panics() {
        let mut buf = Vec::new();
        put(&mut buf, 3, &[1, 2]).unwrap();
        let a = AttrIter::new(&buf).next().unwrap().unwrap();
        assert!(a.be32("v").is_err());
        assert!(a.be64("v").is_err());
        assert_eq!(a.be16("v").unwrap(), 0x0102);
    }

    #[test]
    fn flags_are_masked_from_the_type() {
        let mut buf = Vec::new();
        put(&mut buf, 5 | NLA_F_NET_BYTEORDER, &[0; 4]).unwrap();
        let a = AttrIter::new(&buf).next().unwrap().unwrap();
        assert_eq!(a.kind(), 5);
    }

    #[test]
    fn oversized_attributes_are_refused() {
        let mut buf = Vec::new();
        assert!(put(&mut buf, 1, &vec![0u8; 70_000]).is_err());
        let n = nest_start(&mut buf, 4);
        buf.resize(buf.len() + 70_000, 0);
        assert_eq!(
            nest_end(&mut buf, n),
            Err(EncodeError {
                attr_type: 4,
                len: 70_004
            })
        );
    }

    #[test]
    fn any_bytes_never_panic() {
        // A cheap deterministic sweep; the fuzz target covers the rest.
        let mut state = 0x9e37_79b9u32;
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state & 0x1f) as u8
                })
                .collect();
            for attr in AttrIter::new(&bytes).flatten() {
                let _ = (attr.be32("x"), attr.str("s"), attr.nested().count());
            }
        }
    }
}
