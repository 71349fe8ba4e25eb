//! Reading capture files (classic pcap and pcapng) from bytes, down to the IP header the
//! detector parses. No I/O: the caller reads the file.
//!
//! Supported: classic pcap in either byte order with micro- or nanosecond timestamps; pcapng
//! section, interface (with `if_tsresol`), enhanced and simple packet blocks, in either byte
//! order; link types Ethernet (with 802.1Q/802.1ad tags), Linux cooked v1 and v2, raw IP (101,
//! and 228/229), BSD loopback (0, 108). Malformed input ends the iteration with an error, never
//! a panic.

use std::fmt;

/// One captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Capture time in milliseconds since the epoch.
    pub time_ms: u64,
    pub linktype: u16,
    pub data: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The frame from its IP header on, if it carries IPv4 or IPv6.
    pub fn ip(&self) -> Option<&'a [u8]> {
        ip_payload(self.linktype, self.data)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapError {
    NotACapture,
    Truncated,
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::NotACapture => f.write_str("not a pcap or pcapng file"),
            PcapError::Truncated => f.write_str("capture file is truncated or corrupt"),
        }
    }
}

impl std::error::Error for PcapError {}

/// Iterates over the frames of a capture file.
pub fn frames(file: &[u8]) -> Result<Frames<'_>, PcapError> {
    let magic = file.get(..4).ok_or(PcapError::NotACapture)?;
    let kind = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => Kind::Classic {
            le: true,
            nanos: false,
        },
        [0xa1, 0xb2, 0xc3, 0xd4] => Kind::Classic {
            le: false,
            nanos: false,
        },
        [0x4d, 0x3c, 0xb2, 0xa1] => Kind::Classic {
            le: true,
            nanos: true,
        },
        [0xa1, 0xb2, 0x3c, 0x4d] => Kind::Classic {
            le: false,
            nanos: true,
        },
        [0x0a, 0x0d, 0x0d, 0x0a] => Kind::Ng {
            le: true,
            ifaces: [(0, 6); MAX_IFACES],
            nifaces: 0,
        },
        _ => return Err(PcapError::NotACapture),
    };
    let (pos, linktype) = match kind {
        Kind::Classic { le, .. } => {
            let h = file.get(..24).ok_or(PcapError::Truncated)?;
            (24, rd32(le, &h[20..24]) as u16)
        }
        Kind::Ng { .. } => (0, 0),
    };
    Ok(Frames {
        file,
        pos,
        kind,
        linktype,
        failed: false,
    })
}

const MAX_IFACES: usize = 16;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Classic {
        le: bool,
        nanos: bool,
    },
    /// `ifaces`: (linktype, timestamp resolution as a power of ten) per interface id.
    Ng {
        le: bool,
        ifaces: [(u16, u8); MAX_IFACES],
        nifaces: usize,
    },
}

pub struct Frames<'a> {
    file: &'a [u8],
    pos: usize,
    kind: Kind,
    linktype: u16,
    failed: bool,
}

fn rd32(le: bool, b: &[u8]) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    }
}

fn rd16(le: bool, b: &[u8]) -> u16 {
    if le {
        u16::from_le_bytes([b[0], b[1]])
    } else {
        u16::from_be_bytes([b[0], b[1]])
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = match self.kind {
            Kind::Classic { le, nanos } => self.next_classic(le, nanos),
            Kind::Ng { .. } => self.next_ng(),
        };
        if matches!(r, Some(Err(_))) {
            self.failed = true;
        }
        r
    }
}

impl<'a> Frames<'a> {
    fn next_classic(&mut self, le: bool, nanos: bool) -> Option<Result<Frame<'a>, PcapError>> {
        if self.pos >= self.file.len() {
            return None;
        }
        let Some(h) = self.file.get(self.pos..self.pos + 16) else {
            return Some(Err(PcapError::Truncated));
        };
        let sec = u64::from(rd32(le, &h[0..4]));
        let frac = u64::from(rd32(le, &h[4..8]));
        let caplen = rd32(le, &h[8..12]) as usize;
        let start = self.pos + 16;
        let Some(data) = self.file.get(start..start + caplen) else {
            return Some(Err(PcapError::Truncated));
        };
        self.pos = start + caplen;
        let time_ms = sec * 1000 + if nanos { frac / 1_000_000 } else { frac / 1000 };
        Some(Ok(Frame {
            time_ms,
            linktype: self.linktype,
            data,
        }))
    }

    fn next_ng(&mut self) -> Option<Result<Frame<'a>, PcapError>> {
        loop {
            if self.pos >= self.file.len() {
                return None;
            }
            let Some(h) = self.file.get(self.pos..self.pos + 8) else {
                return Some(Err(PcapError::Truncated));
            };
            let Kind::Ng { le, .. } = self.kind else {
                return None;
            };
            let btype_raw = [h[0], h[1], h[2], h[3]];
            let le = if btype_raw == [0x0a, 0x0d, 0x0d, 0x0a] {
                // A section header carries its own byte order.
                match self.file.get(self.pos + 8..self.pos + 12) {
                    Some([0x4d, 0x3c, 0x2b, 0x1a]) => true,
                    Some([0x1a, 0x2b, 0x3c, 0x4d]) => false,
                    _ => return Some(Err(PcapError::NotACapture)),
                }
            } else {
                le
            };
            let btype = rd32(le, &h[0..4]);
            let blen = rd32(le, &h[4..8]) as usize;
            if blen < 12 || blen % 4 != 0 {
                return Some(Err(PcapError::Truncated));
            }
            let Some(block) = self.file.get(self.pos..self.pos + blen) else {
                return Some(Err(PcapError::Truncated));
            };
            self.pos += blen;
            let body = &block[8..blen - 4];
            match btype {
                0x0a0d_0d0a => {
                    self.kind = Kind::Ng {
                        le,
                        ifaces: [(0, 6); MAX_IFACES],
                        nifaces: 0,
                    };
                }
                1 => {
                    // Interface description: linktype, then options; if_tsresol is code 9.
                    if body.len() < 8 {
                        return Some(Err(PcapError::Truncated));
                    }
                    let linktype = rd16(le, &body[0..2]);
                    let mut resol = 6u8;
                    let mut opts = &body[8..];
                    while opts.len() >= 4 {
                        let code = rd16(le, &opts[0..2]);
                        let len = usize::from(rd16(le, &opts[2..4]));
                        let Some(v) = opts.get(4..4 + len) else { break };
                        if code == 9 && len == 1 && v[0] & 0x80 == 0 {
                            resol = v[0];
                        }
                        if code == 0 {
                            break;
                        }
                        opts = opts.get(4 + ((len + 3) & !3)..).unwrap_or(&[]);
                    }
                    if let Kind::Ng {
                        ifaces, nifaces, ..
                    } = &mut self.kind
                    {
                        if *nifaces < MAX_IFACES {
                            ifaces[*nifaces] = (linktype, resol);
                            *nifaces += 1;
                        }
                    }
                }
                6 => {
                    if body.len() < 20 {
                        return Some(Err(PcapError::Truncated));
                    }
                    let iface = rd32(le, &body[0..4]) as usize;
                    let ts = (u64::from(rd32(le, &body[4..8])) << 32)
                        | u64::from(rd32(le, &body[8..12]));
                    let caplen = rd32(le, &body[12..16]) as usize;
                    let Some(data) = body.get(20..20 + caplen) else {
                        return Some(Err(PcapError::Truncated));
                    };
                    let (linktype, resol) = match self.kind {
                        Kind::Ng {
                            ifaces, nifaces, ..
                        } if iface < nifaces => ifaces[iface],
                        _ => return Some(Err(PcapError::Truncated)),
                    };
                    let per_ms = 10u64
                        .checked_pow(u32::from(resol).saturating_sub(3))
                        .unwrap_or(1);
                    return Some(Ok(Frame {
                        time_ms: ts / per_ms.max(1),
                        linktype,
                        data,
                    }));
                }
                3 => {
                    // Simple packet block: no timestamp, interface 0.
                    let (linktype, _) = match self.kind {
                        Kind::Ng {
                            ifaces, nifaces, ..
                        } if nifaces > 0 => ifaces[0],
                        _ => return Some(Err(PcapError::Truncated)),
                    };
                    let data = body.get(4..).unwrap_or(&[]);
                    return Some(Ok(Frame {
                        time_ms: 0,
                        linktype,
                        data,
                    }));
                }
                _ => {} // statistics, name resolution, custom: not frames
            }
        }
    }
}

/// Link types this reader understands.
pub mod linktype {
    pub const NULL: u16 = 0;
    pub const ETHERNET: u16 = 1;
    pub const RAW: u16 = 101;
    pub const LOOP: u16 = 108;
    pub const LINUX_SLL: u16 = 113;
    pub const IPV4: u16 = 228;
    pub const IPV6: u16 = 229;
    pub const LINUX_SLL2: u16 = 276;
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// The IP packet inside a frame of `linktype`, or `None` if it carries something else.
pub fn ip_payload(link: u16, d: &[u8]) -> Option<&[u8]> {
    fn ip_by_type(ethertype: u16, rest: &[u8]) -> Option<&[u8]> {
        matches!(ethertype, ETH_P_IP | ETH_P_IPV6).then_some(rest)
    }
    match link {
        linktype::ETHERNET => {
            let mut at = 12;
            let mut ethertype = u16::from_be_bytes([*d.get(12)?, *d.get(13)?]);
            // 802.1Q and 802.1ad tags, possibly stacked.
            while ethertype == 0x8100 || ethertype == 0x88a8 {
                at += 4;
                ethertype = u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]);
            }
            ip_by_type(ethertype, d.get(at + 2..)?)
        }
        linktype::LINUX_SLL => {
            ip_by_type(u16::from_be_bytes([*d.get(14)?, *d.get(15)?]), d.get(16..)?)
        }
        linktype::LINUX_SLL2 => {
            ip_by_type(u16::from_be_bytes([*d.first()?, *d.get(1)?]), d.get(20..)?)
        }
        linktype::RAW | linktype::IPV4 | linktype::IPV6 => {
            matches!(d.first()? >> 4, 4 | 6).then_some(d)
        }
        linktype::NULL | linktype::LOOP => {
            // A 4-byte address family: host order for NULL, network order for LOOP; either
            // way the IP version nibble decides.
            let rest = d.get(4..)?;
            matches!(rest.first()? >> 4, 4 | 6).then_some(rest)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_and_truncation_reported() {
        assert_eq!(
            frames(b"hello world, not a capture").err(),
            Some(PcapError::NotACapture)
        );
        assert_eq!(frames(&[]).err(), Some(PcapError::NotACapture));
        let mut classic = vec![0xd4, 0xc3, 0xb2, 0xa1];
        classic.extend_from_slice(&[0; 16]);
        classic.extend_from_slice(&1u32.to_le_bytes());
        classic.extend_from_slice(&[0; 8]);
        classic.extend_from_slice(&100u32.to_le_bytes()); // caplen 100 with 4 bytes left
        classic.extend_from_slice(&[0; 8]);
        let got: Vec<_> = frames(&classic).unwrap().collect();
        assert_eq!(got, vec![Err(PcapError::Truncated)]);
    }

    #[test]
    fn link_layers() {
        let ip = [0x45u8, 0, 0, 20];
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
        eth.extend_from_slice(&ip);
        assert_eq!(ip_payload(linktype::ETHERNET, &eth), Some(&ip[..]));
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 0]);
        assert_eq!(ip_payload(linktype::ETHERNET, &arp), None);
        assert_eq!(ip_payload(linktype::RAW, &ip), Some(&ip[..]));
        let mut null = 2u32.to_ne_bytes().to_vec();
        null.extend_from_slice(&ip);
        assert_eq!(ip_payload(linktype::NULL, &null), Some(&ip[..]));
        assert_eq!(ip_payload(linktype::ETHERNET, &[0; 5]), None);
    }
}
