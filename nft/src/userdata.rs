//! The `USERDATA` blob nft attaches to tables, sets, elements and rules: a list of TLVs
//! `{u8 type, u8 len, value}` that the kernel stores without reading. We write the same TLVs nft
//! does so that `nft list` shows our comments, and read them back from dumps.
//!
//! Captured from `nft --debug=mnl` (fixtures/nft): a set carries `KEYBYTEORDER` (u32 host-endian,
//! 2 = big-endian) then `COMMENT`; elements and rules carry `COMMENT` (type 0). Comments are
//! NUL-terminated; nft limits them to 128 bytes and all userdata to 256 (`NFT_USERDATA_MAXLEN`).

/// TLV type of a comment, by object.
pub mod kind {
    pub const TABLE_COMMENT: u8 = 0;
    pub const RULE_COMMENT: u8 = 0;
    pub const ELEM_COMMENT: u8 = 0;
    pub const SET_KEYBYTEORDER: u8 = 0;
    pub const SET_COMMENT: u8 = 7;
}

/// `enum byteorder` of nft's datatypes: what `SET_KEYBYTEORDER` says for address keys.
pub const BYTEORDER_BIG_ENDIAN: u32 = 2;

/// Longest comment nft accepts (`NFT_USERDATA_MAXLEN` is for the whole blob).
pub const MAX_COMMENT: usize = 128;

/// Appends one TLV; values over 255 bytes cannot be expressed and are cut (comments are
/// already limited to `MAX_COMMENT` by `comment`).
pub fn push(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    let value = &value[..value.len().min(255)];
    out.push(kind);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

/// Appends a comment TLV, cut to `MAX_COMMENT - 1` bytes on a character boundary, NUL-terminated.
pub fn push_comment(out: &mut Vec<u8>, kind: u8, comment: &str) {
    let mut end = comment.len().min(MAX_COMMENT - 1);
    while !comment.is_char_boundary(end) {
        end -= 1;
    }
    let mut v = Vec::with_capacity(end + 1);
    v.extend_from_slice(&comment.as_bytes()[..end]);
    v.push(0);
    push(out, kind, &v);
}

/// The value of the first TLV of `kind`; `None` if absent or the blob is malformed.
pub fn find(blob: &[u8], kind: u8) -> Option<&[u8]> {
    let mut rest = blob;
    while rest.len() >= 2 {
        let (k, len) = (rest[0], rest[1] as usize);
        let value = rest.get(2..2 + len)?;
        if k == kind {
            return Some(value);
        }
        rest = &rest[2 + len..];
    }
    None
}

/// The comment TLV of `kind` as text.
pub fn comment(blob: &[u8], kind: u8) -> Option<String> {
    let v = find(blob, kind)?;
    let text = v.split(|&b| b == 0).next().unwrap_or(&[]);
    Some(String::from_utf8_lossy(text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_userdata_as_nft_writes_it() {
        // From fixtures/nft/ruleset.mnl.txt: set banned4 with comment "scanban bans".
        let mut blob = Vec::new();
        push(
            &mut blob,
            kind::SET_KEYBYTEORDER,
            &BYTEORDER_BIG_ENDIAN.to_ne_bytes(),
        );
        push_comment(&mut blob, kind::SET_COMMENT, "scanban bans");
        let mut expected = vec![0x00, 0x04];
        expected.extend_from_slice(&2u32.to_ne_bytes());
        expected.extend_from_slice(&[0x07, 0x0d]);
        expected.extend_from_slice(b"scanban bans\0");
        assert_eq!(blob, expected);
        assert_eq!(
            comment(&blob, kind::SET_COMMENT).as_deref(),
            Some("scanban bans")
        );
    }

    #[test]
    fn long_comments_are_cut_on_a_char_boundary_and_malformed_blobs_read_as_none() {
        let mut blob = Vec::new();
        push_comment(&mut blob, 0, &"é".repeat(100));
        let c = comment(&blob, 0).unwrap();
        assert!(c.len() < MAX_COMMENT && c.chars().all(|ch| ch == 'é'));
        assert_eq!(find(&[0, 9, 1], 0), None);
        assert_eq!(find(&[], 0), None);
    }
}
