//! One expression's `NFTA_EXPR_DATA` read into a table indexed by attribute type, as the kernel's
//! `nla_parse` fills `tb[]`. Each expression's `parse` then reads the attributes it knows by their
//! uapi names, each in the shape its schema gives it; nothing is decoded before that.

use nfnl::attr::{Attr, AttrIter};
use nfnl::DecodeError;

use crate::uapi::data;

/// The highest attribute type any expression here reads; newer attributes are skipped.
const MAX_TYPE: usize = 15;

pub(super) struct Attrs<'a> {
    tb: [Option<Attr<'a>>; MAX_TYPE + 1],
}

impl<'a> Attrs<'a> {
    /// The attributes of `body`; of repeated types the last one counts, as in the kernel.
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut tb = [None; MAX_TYPE + 1];
        for a in AttrIter::new(body) {
            let a = a?;
            if let Some(slot) = tb.get_mut(usize::from(a.kind())) {
                *slot = Some(a);
            }
        }
        Ok(Attrs { tb })
    }

    fn get(&self, kind: u16) -> Option<&Attr<'a>> {
        self.tb.get(usize::from(kind)).and_then(Option::as_ref)
    }

    pub(super) fn be16(&self, kind: u16, what: &'static str) -> Result<Option<u16>, DecodeError> {
        self.get(kind).map(|a| a.be16(what)).transpose()
    }

    pub(super) fn be32(&self, kind: u16, what: &'static str) -> Result<Option<u32>, DecodeError> {
        self.get(kind).map(|a| a.be32(what)).transpose()
    }

    pub(super) fn be64(&self, kind: u16, what: &'static str) -> Result<Option<u64>, DecodeError> {
        self.get(kind).map(|a| a.be64(what)).transpose()
    }

    /// A big-endian u32 the expression cannot do without.
    pub(super) fn required_be32(&self, kind: u16, what: &'static str) -> Result<u32, DecodeError> {
        self.be32(kind, what)?.ok_or(DecodeError::Missing { what })
    }

    pub(super) fn str(
        &self,
        kind: u16,
        what: &'static str,
    ) -> Result<Option<&'a str>, DecodeError> {
        self.get(kind).map(|a| a.str(what)).transpose()
    }

    pub(super) fn bytes(&self, kind: u16) -> Option<&'a [u8]> {
        self.get(kind).map(Attr::value)
    }

    /// The nested `nft_data_attributes` of attribute `kind`.
    pub(super) fn nested(&self, kind: u16) -> Option<AttrIter<'a>> {
        self.get(kind).map(Attr::nested)
    }

    /// The `NFTA_DATA_VALUE` bytes inside attribute `kind`, empty when absent.
    pub(super) fn data_value(&self, kind: u16) -> Result<Vec<u8>, DecodeError> {
        let mut value = Vec::new();
        for d in self.nested(kind).into_iter().flatten() {
            let d = d?;
            if d.kind() == data::VALUE {
                value = d.value().to_vec();
            }
        }
        Ok(value)
    }
}
