//! Byte positions of the header fields `packet` reads, by protocol (smoltcp's `mod field`): every
//! offset the parser uses is named once, next to the header it belongs to. The `nft` crate's
//! rules load the same fields (`ip saddr`, `tcp dport`, `tcp flags`) from these ranges.

pub type Field = core::ops::Range<usize>;

/// RFC 791.
pub mod ipv4 {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const FLG_OFF: Field = 6..8;
    pub const PROTOCOL: usize = 9;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
    /// The header without options; `IHL` (low nibble of `VER_IHL`, in words) says the rest.
    pub const HEADER_LEN: usize = 20;
    /// The fragment offset within `FLG_OFF`, in 8-byte units.
    pub const FRAG_OFFSET_MASK: u16 = 0x1fff;
}

/// RFC 8200.
pub mod ipv6 {
    use super::Field;
    pub const NXT_HDR: usize = 6;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
    pub const HEADER_LEN: usize = 40;
}

/// The IPv6 extension headers: all start with the next header and (except the fragment
/// header) a length, in 8-byte units past the first 8 (in 4-byte units past 8 for AH).
pub mod ext {
    use super::Field;
    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
    /// What every extension header has at least.
    pub const MIN_LEN: usize = 2;
    /// The fragment header: offset (13 bits, then flags) and its fixed length.
    pub const FRAG_OFFSET: Field = 2..4;
    pub const FRAG_OFFSET_MASK: u16 = 0xfff8;
    pub const FRAG_LEN: usize = 8;
}

/// RFC 9293.
pub mod tcp {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    /// Data offset in words, in the high nibble.
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const HEADER_LEN: usize = 20;
}

/// RFC 768.
pub mod udp {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const HEADER_LEN: usize = 8;
}

/// RFC 9260: the common header, then the first chunk's type.
pub mod sctp {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const CHUNK_TYPE: usize = 12;
    /// The common header (12 bytes) and one chunk header (4).
    pub const HEADER_LEN: usize = 16;
    pub const INIT: u8 = 1;
    pub const COOKIE_ECHO: u8 = 10;
}

/// RFC 792 and RFC 4443: ICMP and ICMPv6 share the layout of an error: type, code, checksum,
/// four unused bytes, then as much of the packet in error as fits.
pub mod icmp {
    use super::Field;
    pub const TYPE: Field = 0..1;
    pub const CODE: Field = 1..2;
    /// Where the quoted (inner) packet starts.
    pub const QUOTE: usize = 8;
    /// ICMP destination unreachable and its codes that answer a probe.
    pub const V4_UNREACH: u8 = 3;
    pub const V4_HOST: u8 = 1;
    pub const V4_PROTOCOL: u8 = 2;
    pub const V4_PORT: u8 = 3;
    pub const V4_ADMIN: u8 = 13;
    /// ICMPv6 destination unreachable and its codes that answer a probe.
    pub const V6_UNREACH: u8 = 1;
    pub const V6_ADMIN: u8 = 1;
    pub const V6_ADDRESS: u8 = 3;
    pub const V6_PORT: u8 = 4;
}
