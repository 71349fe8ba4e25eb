//! Tables, chains, sets and set elements: the objects scanban installs, as plain values that
//! encode into nf_tables attributes and decode back from dumps.

use std::fmt;

use nfnl::attr::{align4, Attr, AttrIter};
use nfnl::message::family as nfproto;
use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use crate::expr::{parse_verdict, Verdict};
use crate::uapi::{chain, data, elem, set, table, LIST_ELEM};
use crate::userdata;

/// `nfgen_family` of a table (`NFPROTO_*`, defined once in `nfnl::message::family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet = nfproto::INET as isize,
    Ip = nfproto::IPV4 as isize,
    Ip6 = nfproto::IPV6 as isize,
}

impl Family {
    pub fn from_u8(v: u8) -> Option<Family> {
        match v {
            nfproto::INET => Some(Family::Inet),
            nfproto::IPV4 => Some(Family::Ip),
            nfproto::IPV6 => Some(Family::Ip6),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub family: Family,
    pub name: String,
    /// `NFT_TABLE_F_DORMANT` / `NFT_TABLE_F_OWNER` (see `uapi::table`).
    pub flags: u32,
}

impl Table {
    pub fn new(family: Family, name: &str) -> Self {
        Table {
            family,
            name: name.to_string(),
            flags: 0,
        }
    }

    pub(crate) fn encode(&self, m: &mut MessageBuilder<'_>) {
        m.str(table::NAME, &self.name)
            .be32(table::FLAGS, self.flags);
    }

    pub(crate) fn parse(family: Family, attrs: &[u8]) -> Result<Self, DecodeError> {
        let mut t = Table::new(family, "");
        for a in AttrIter::new(attrs) {
            let a = a?;
            match a.kind() {
                table::NAME => t.name = a.str("NFTA_TABLE_NAME")?.to_string(),
                table::FLAGS => t.flags = a.be32("NFTA_TABLE_FLAGS")?,
                _ => {}
            }
        }
        Ok(t)
    }
}

/// Netfilter hooks (`enum nf_inet_hooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Prerouting = 0,
    Input = 1,
    Forward = 2,
    Output = 3,
    Postrouting = 4,
}

impl Hook {
    fn from_u32(v: u32) -> Option<Hook> {
        Some(match v {
            0 => Hook::Prerouting,
            1 => Hook::Input,
            2 => Hook::Forward,
            3 => Hook::Output,
            4 => Hook::Postrouting,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
}

/// What makes a chain a base chain: its hook, priority, type and policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    pub hook: Hook,
    pub priority: i32,
    /// "filter", "nat", "route".
    pub kind: String,
    /// Accept or drop.
    pub policy: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub family: Family,
    pub table: String,
    pub name: String,
    pub base: Option<BaseChain>,
}

impl Chain {
    pub(crate) fn encode(&self, m: &mut MessageBuilder<'_>) {
        m.str(chain::TABLE, &self.table)
            .str(chain::NAME, &self.name);
        if let Some(b) = &self.base {
            let policy = match b.policy {
                Verdict::Drop => 0,
                _ => 1,
            };
            m.str(chain::TYPE, &b.kind)
                .be32(chain::POLICY, policy)
                .nest(chain::HOOK, |m| {
                    m.be32(chain::HOOK_HOOKNUM, b.hook as u32)
                        .be32(chain::HOOK_PRIORITY, b.priority as u32);
                });
        }
    }

    pub(crate) fn parse(family: Family, attrs: &[u8]) -> Result<Self, DecodeError> {
        let mut c = Chain {
            family,
            table: String::new(),
            name: String::new(),
            base: None,
        };
        let mut kind = None;
        let mut policy = Verdict::Accept;
        let mut hook = None;
        for a in AttrIter::new(attrs) {
            let a = a?;
            match a.kind() {
                chain::TABLE => c.table = a.str("NFTA_CHAIN_TABLE")?.to_string(),
                chain::NAME => c.name = a.str("NFTA_CHAIN_NAME")?.to_string(),
                chain::TYPE => kind = Some(a.str("NFTA_CHAIN_TYPE")?.to_string()),
                chain::POLICY if a.be32("NFTA_CHAIN_POLICY")? == 0 => policy = Verdict::Drop,
                chain::HOOK => {
                    let mut num = None;
                    let mut prio = 0i32;
                    for h in a.nested() {
                        let h = h?;
                        match h.kind() {
                            chain::HOOK_HOOKNUM => num = Hook::from_u32(h.be32("hooknum")?),
                            chain::HOOK_PRIORITY => prio = h.be32("priority")? as i32,
                            _ => {}
                        }
                    }
                    hook = num.map(|n| (n, prio));
                }
                _ => {}
            }
        }
        if let Some((hook, priority)) = hook {
            c.base = Some(BaseChain {
                hook,
                priority,
                kind: kind.unwrap_or_else(|| "filter".into()),
                policy,
            });
        }
        Ok(c)
    }
}

/// Set key types nft knows by number (`datatype.h`); lengths in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyType {
    Ipv4Addr,
    Ipv6Addr,
    InetService,
    /// A concatenation; each field padded to a 4-byte register (docs/WIRE-NOTES.md#set-keys).
    Concat(Vec<KeyType>),
}

impl KeyType {
    fn id(&self) -> u32 {
        match self {
            KeyType::Ipv4Addr => 7,
            KeyType::Ipv6Addr => 8,
            KeyType::InetService => 13,
            KeyType::Concat(parts) => parts.iter().fold(0, |acc, p| (acc << 6) | p.id()),
        }
    }

    /// Bytes of the key as the kernel stores it.
    pub fn len(&self) -> u32 {
        match self {
            KeyType::Ipv4Addr => 4,
            KeyType::Ipv6Addr => 16,
            KeyType::InetService => 2,
            // Each field of a concatenation takes whole 4-byte registers.
            KeyType::Concat(parts) => parts.iter().map(|p| align4(p.len() as usize) as u32).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn from_id(id: u32, len: u32) -> Option<KeyType> {
        Some(match (id, len) {
            (7, 4) => KeyType::Ipv4Addr,
            (8, 16) => KeyType::Ipv6Addr,
            (13, 2) => KeyType::InetService,
            _ => return None,
        })
    }

    pub fn name(&self) -> String {
        match self {
            KeyType::Ipv4Addr => "ipv4_addr".into(),
            KeyType::Ipv6Addr => "ipv6_addr".into(),
            KeyType::InetService => "inet_service".into(),
            KeyType::Concat(p) => p.iter().map(|k| k.name()).collect::<Vec<_>>().join(" . "),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub family: Family,
    pub table: String,
    pub name: String,
    pub key: KeyType,
    /// `NFT_SET_*` flags; `F_TIMEOUT` is required before any timeout is accepted
    /// (docs/WIRE-NOTES.md#set-timeouts).
    pub flags: u32,
    /// Most elements (`NFTA_SET_DESC_SIZE`); the kernel refuses inserts beyond it.
    pub size: Option<u32>,
    /// Default element timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    pub comment: Option<String>,
    /// Key type and length as dumped, when not one `KeyType` names.
    pub raw_key: Option<(u32, u32)>,
}

impl Set {
    pub(crate) fn encode(&self, m: &mut MessageBuilder<'_>, id: u32) {
        let mut flags = self.flags;
        if matches!(self.key, KeyType::Concat(_)) {
            flags |= set::F_CONCAT;
        }
        m.str(set::TABLE, &self.table)
            .str(set::NAME, &self.name)
            .be32(set::FLAGS, flags)
            .be32(set::KEY_TYPE, self.key.id())
            .be32(set::KEY_LEN, self.key.len())
            .be32(set::ID, id);
        if let Some(t) = self.timeout_ms {
            m.be64(set::TIMEOUT, t);
        }
        let key = self.key.clone();
        let size = self.size;
        m.nest(set::DESC, |m| {
            if let Some(s) = size {
                m.be32(set::DESC_SIZE, s);
            }
            if let KeyType::Concat(parts) = &key {
                m.nest(set::DESC_CONCAT, |m| {
                    for p in parts {
                        m.nest(LIST_ELEM, |m| {
                            m.be32(set::FIELD_LEN, p.len());
                        });
                    }
                });
            }
        });
        let mut ud = Vec::new();
        userdata::push(
            &mut ud,
            userdata::kind::SET_KEYBYTEORDER,
            &userdata::BYTEORDER_BIG_ENDIAN.to_ne_bytes(),
        );
        if let Some(c) = &self.comment {
            userdata::push_comment(&mut ud, userdata::kind::SET_COMMENT, c);
        }
        m.bytes(set::USERDATA, &ud);
    }

    pub(crate) fn parse(family: Family, attrs: &[u8]) -> Result<Self, DecodeError> {
        let mut s = Set {
            family,
            table: String::new(),
            name: String::new(),
            key: KeyType::Ipv4Addr,
            flags: 0,
            size: None,
            timeout_ms: None,
            comment: None,
            raw_key: None,
        };
        let (mut kt, mut kl) = (0, 0);
        for a in AttrIter::new(attrs) {
            let a = a?;
            match a.kind() {
                set::TABLE => s.table = a.str("NFTA_SET_TABLE")?.to_string(),
                set::NAME => s.name = a.str("NFTA_SET_NAME")?.to_string(),
                set::FLAGS => s.flags = a.be32("NFTA_SET_FLAGS")?,
                set::KEY_TYPE => kt = a.be32("NFTA_SET_KEY_TYPE")?,
                set::KEY_LEN => kl = a.be32("NFTA_SET_KEY_LEN")?,
                set::TIMEOUT => s.timeout_ms = Some(a.be64("NFTA_SET_TIMEOUT")?),
                set::DESC => {
                    for d in a.nested() {
                        let d = d?;
                        if d.kind() == set::DESC_SIZE {
                            s.size = Some(d.be32("NFTA_SET_DESC_SIZE")?);
                        }
                    }
                }
                set::USERDATA => {
                    s.comment = userdata::comment(a.value(), userdata::kind::SET_COMMENT)
                }
                _ => {}
            }
        }
        s.flags &= !set::F_CONCAT;
        match KeyType::from_id(kt, kl) {
            Some(k) => s.key = k,
            None => s.raw_key = Some((kt, kl)),
        }
        Ok(s)
    }
}

/// One set element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// The key in the set's layout (network order for addresses and ports).
    pub key: Vec<u8>,
    /// Lifetime in milliseconds (needs a set with `F_TIMEOUT`).
    pub timeout_ms: Option<u64>,
    /// Time left, in milliseconds: in dumps; on input, must not exceed the timeout.
    pub expiration_ms: Option<u64>,
    pub comment: Option<String>,
    /// `NFT_SET_ELEM_*` flags: `elem::F_INTERVAL_END` marks the (exclusive) end of an interval
    /// in a set with `F_INTERVAL` (docs/WIRE-NOTES.md#interval-sets).
    pub flags: u32,
}

impl Element {
    pub fn new(key: &[u8]) -> Self {
        Element {
            key: key.to_vec(),
            ..Default::default()
        }
    }

    /// The elements of the CIDR block `key`/`prefix_len` in an interval set: its first address,
    /// and the address after its last flagged `F_INTERVAL_END`, absent when the block reaches the
    /// top of the address space (docs/WIRE-NOTES.md#interval-sets). Host bits of `key` are
    /// cleared; a `prefix_len` beyond the key's bits is taken as the whole key.
    pub fn prefix_interval(key: &[u8], prefix_len: u32) -> (Element, Option<Element>) {
        let bits = key.len() as u32 * 8;
        let len = prefix_len.min(bits);
        let mut start = key.to_vec();
        for (i, byte) in start.iter_mut().enumerate() {
            let first_bit = i as u32 * 8;
            if first_bit + 8 <= len {
                continue;
            }
            let keep = len.saturating_sub(first_bit);
            // keep < 8 here; a shift by 8 on u8 would overflow.
            *byte &= !(0xffu8.checked_shr(keep).unwrap_or(0));
        }
        // start + 2^(bits - len), carried from the last prefix bit up.
        let mut end = start.clone();
        let mut carry = true;
        if len > 0 {
            let bit = len - 1;
            let (i, shift) = ((bit / 8) as usize, 7 - bit % 8);
            let (sum, over) = end[i].overflowing_add(1 << shift);
            end[i] = sum;
            carry = over;
            for b in end[..i].iter_mut().rev() {
                if !carry {
                    break;
                }
                let (sum, over) = b.overflowing_add(1);
                *b = sum;
                carry = over;
            }
        }
        let end = (!carry).then(|| Element {
            key: end,
            flags: elem::F_INTERVAL_END,
            ..Default::default()
        });
        (Element::new(&start), end)
    }

    pub(crate) fn encode(&self, m: &mut MessageBuilder<'_>) {
        // Attribute order as nft sends it: flags, timeout, expiration, key, userdata.
        m.nest(LIST_ELEM, |m| {
            if self.flags != 0 {
                m.be32(elem::FLAGS, self.flags);
            }
            if let Some(t) = self.timeout_ms {
                m.be64(elem::TIMEOUT, t);
            }
            if let Some(e) = self.expiration_ms {
                m.be64(elem::EXPIRATION, e);
            }
            m.nest(elem::KEY, |m| {
                m.bytes(data::VALUE, &self.key);
            });
            if let Some(c) = &self.comment {
                let mut ud = Vec::new();
                userdata::push_comment(&mut ud, userdata::kind::ELEM_COMMENT, c);
                m.bytes(elem::USERDATA, &ud);
            }
        });
    }

    /// Bytes `encode` appends, so batches can split element lists under the 64 KiB nest limit.
    pub(crate) fn encoded_len(&self) -> usize {
        let mut n = 4 + 4 + 4 + align4(self.key.len());
        n += if self.flags != 0 { 8 } else { 0 };
        n += self.timeout_ms.map_or(0, |_| 12);
        n += self.expiration_ms.map_or(0, |_| 12);
        n += self.comment.as_ref().map_or(0, |c| {
            4 + align4(2 + c.len().min(userdata::MAX_COMMENT - 1) + 1)
        });
        n
    }

    pub(crate) fn parse(a: &Attr<'_>) -> Result<Self, DecodeError> {
        let mut e = Element::default();
        for f in a.nested() {
            let f = f?;
            match f.kind() {
                elem::KEY => {
                    for k in f.nested() {
                        let k = k?;
                        if k.kind() == data::VALUE {
                            e.key = k.value().to_vec();
                        }
                    }
                }
                elem::FLAGS => e.flags = f.be32("NFTA_SET_ELEM_FLAGS")?,
                elem::TIMEOUT => e.timeout_ms = Some(f.be64("NFTA_SET_ELEM_TIMEOUT")?),
                elem::EXPIRATION => e.expiration_ms = Some(f.be64("NFTA_SET_ELEM_EXPIRATION")?),
                elem::USERDATA => {
                    e.comment = userdata::comment(f.value(), userdata::kind::ELEM_COMMENT)
                }
                elem::DATA => {
                    // Maps are not used by scanban; verdict maps would land here.
                    for d in f.nested().flatten() {
                        if d.kind() == data::VERDICT {
                            let _ = parse_verdict(&d);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfnl::message::{Messages, NfGenMsg};

    fn attrs(fill: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut m = MessageBuilder::new(&mut buf, 0x0a00, 1, 1, NfGenMsg::default());
        fill(&mut m);
        m.finish().unwrap();
        let msg = Messages::new(&buf).next().unwrap().unwrap();
        msg.nfgen().unwrap().1.to_vec()
    }

    #[test]
    fn objects_decode_what_they_encode() {
        let t = Table {
            family: Family::Ip6,
            name: "t".into(),
            flags: table::F_OWNER,
        };
        assert_eq!(
            Table::parse(Family::Ip6, &attrs(|m| t.encode(m))).unwrap(),
            t
        );

        let c = Chain {
            family: Family::Inet,
            table: "t".into(),
            name: "c".into(),
            base: Some(BaseChain {
                hook: Hook::Forward,
                priority: -150,
                kind: "filter".into(),
                policy: Verdict::Drop,
            }),
        };
        assert_eq!(
            Chain::parse(Family::Inet, &attrs(|m| c.encode(m))).unwrap(),
            c
        );
        let regular = Chain { base: None, ..c };
        assert_eq!(
            Chain::parse(Family::Inet, &attrs(|m| regular.encode(m))).unwrap(),
            regular
        );

        let s = Set {
            family: Family::Inet,
            table: "t".into(),
            name: "s".into(),
            key: KeyType::Ipv6Addr,
            flags: set::F_TIMEOUT | set::F_INTERVAL,
            size: Some(1000),
            timeout_ms: Some(60_000),
            comment: Some("bans".into()),
            raw_key: None,
        };
        assert_eq!(
            Set::parse(Family::Inet, &attrs(|m| s.encode(m, 1))).unwrap(),
            s
        );
        // A concatenation decodes to its raw type and length (nft's type id, 4-byte fields).
        let concat = Set {
            key: KeyType::Concat(vec![KeyType::Ipv4Addr, KeyType::InetService]),
            ..s.clone()
        };
        let back = Set::parse(Family::Inet, &attrs(|m| concat.encode(m, 2))).unwrap();
        assert_eq!(back.raw_key, Some(((7 << 6) | 13, 8)));

        let e = Element {
            key: vec![192, 0, 2, 1],
            timeout_ms: Some(5000),
            expiration_ms: Some(4000),
            comment: Some("c".into()),
            flags: 0,
        };
        let bytes = attrs(|m| e.encode(m));
        let elem = AttrIter::new(&bytes).next().unwrap().unwrap();
        assert_eq!(Element::parse(&elem).unwrap(), e);
        assert_eq!(e.encoded_len(), bytes.len());

        let end = Element {
            flags: elem::F_INTERVAL_END,
            ..Element::new(&[192, 0, 3, 0])
        };
        let bytes = attrs(|m| end.encode(m));
        let back = AttrIter::new(&bytes).next().unwrap().unwrap();
        assert_eq!(Element::parse(&back).unwrap(), end);
        assert_eq!(end.encoded_len(), bytes.len());
    }

    fn interval(key: &[u8], len: u32) -> (Vec<u8>, Option<Vec<u8>>) {
        let (start, end) = Element::prefix_interval(key, len);
        assert_eq!(start.flags, 0);
        if let Some(e) = &end {
            assert_eq!(e.flags, elem::F_INTERVAL_END);
        }
        (start.key, end.map(|e| e.key))
    }

    #[test]
    fn prefix_intervals_end_one_past_the_block() {
        assert_eq!(
            interval(&[192, 0, 2, 77], 24),
            (vec![192, 0, 2, 0], Some(vec![192, 0, 3, 0]))
        );
        assert_eq!(
            interval(&[198, 51, 100, 7], 32),
            (vec![198, 51, 100, 7], Some(vec![198, 51, 100, 8]))
        );
        assert_eq!(
            interval(&[198, 51, 100, 255], 32),
            (vec![198, 51, 100, 255], Some(vec![198, 51, 101, 0]))
        );
        assert_eq!(
            interval(&[10, 255, 255, 255], 8),
            (vec![10, 0, 0, 0], Some(vec![11, 0, 0, 0]))
        );
        assert_eq!(
            interval(&[198, 51, 100, 200], 25),
            (vec![198, 51, 100, 128], Some(vec![198, 51, 101, 0]))
        );
        // A block at the top of the address space has no end element.
        assert_eq!(
            interval(&[255, 255, 255, 9], 24),
            (vec![255, 255, 255, 0], None)
        );
        assert_eq!(interval(&[255, 255, 255, 255], 32), (vec![255; 4], None));
        assert_eq!(interval(&[1, 2, 3, 4], 0), (vec![0; 4], None));
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[5] = 0x01;
        v6[15] = 0x99;
        let mut end = [0u8; 16];
        end[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        end[5] = 0x02;
        let mut start = v6;
        start[15] = 0;
        assert_eq!(interval(&v6, 48), (start.to_vec(), Some(end.to_vec())));
        let mut last = v6;
        last[15] = 0x9a;
        assert_eq!(interval(&v6, 128), (v6.to_vec(), Some(last.to_vec())));
        let mut next = [0u8; 16];
        next[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb9]);
        start = [0u8; 16];
        start[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(interval(&v6, 32), (start.to_vec(), Some(next.to_vec())));
    }
}
