//! Internet numbers the whole workspace shares, defined once here: IP protocol numbers, TCP flag
//! bits, and IPv6/IPv4 prefix masks.
//!
//! They live in `detector` because it is the crate everything else already depends on and that
//! depends on nothing: the packet parser reads these numbers, and the `nft` crate writes the same
//! ones into kernel rules (`meta l4proto tcp`, `tcp flags`, `ip6 saddr & mask`). The kernel's ban
//! lookup of an IPv6 prefix matches only while the rule masks the address exactly as the
//! detector masked its key, which is why both use [`prefix_mask_v6`].

use std::net::Ipv6Addr;

/// IP protocol numbers (`IPPROTO_*`, linux/in.h and linux/in6.h): the transports scanban counts (and SCTP),
/// the ICMPs replay reads, and the IPv6 extension headers the parser walks through.
pub mod ipproto {
    pub const HOPOPTS: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AH: u8 = 51;
    pub const ESP: u8 = 50;
    pub const ICMPV6: u8 = 58;
    pub const DSTOPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
    pub const SCTP: u8 = 132;
}

/// TCP flag bits (the header's 14th byte; linux/tcp.h `TCPHDR_*`).
pub mod tcp_flag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    /// The six classic flags; ECE and CWR (0x40, 0x80) are congestion signalling.
    pub const CLASSIC: u8 = 0x3f;
}

/// The mask of an IPv6 prefix of `len` bits (128 or more: the whole address).
pub const fn prefix_mask_v6(len: u8) -> u128 {
    let len = if len > 128 { 128 } else { len as u32 };
    match u128::MAX.checked_shl(128 - len) {
        Some(mask) => mask,
        None => 0,
    }
}

/// The mask of an IPv4 prefix of `len` bits (32 or more: the whole address).
pub const fn prefix_mask_v4(len: u8) -> u32 {
    let len = if len > 32 { 32 } else { len as u32 };
    match u32::MAX.checked_shl(32 - len) {
        Some(mask) => mask,
        None => 0,
    }
}

/// The first `len` bits of `a`.
pub fn mask_v6(a: Ipv6Addr, len: u8) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(a) & prefix_mask_v6(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_masks_keep_the_first_len_bits() {
        assert_eq!(prefix_mask_v6(0), 0);
        assert_eq!(prefix_mask_v6(128), u128::MAX);
        assert_eq!(prefix_mask_v6(200), u128::MAX);
        let m56 = prefix_mask_v6(56).to_be_bytes();
        assert_eq!((m56[6], m56[7]), (0xff, 0));
        assert_eq!(prefix_mask_v4(0), 0);
        assert_eq!(prefix_mask_v4(24), 0xffff_ff00);
        assert_eq!(prefix_mask_v4(32), u32::MAX);
        let a: Ipv6Addr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(
            mask_v6(a, 64),
            "2001:db8:1:2::".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(mask_v6(a, 128), a);
    }
}
