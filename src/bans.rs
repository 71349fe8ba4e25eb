//! Bans in the kernel: adding, listing and lifting elements of the ban sets. Used by the daemon
//! and by `scanban ban/unban/list`, which work whether or not the daemon runs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use detector::SourceKey;
use nfnl::{Error, NlSocket};
use nft::{dump, Batch, Element, Family};

use crate::ruleset::{
    REMOTE4, REMOTE4_NET, REMOTE6, REMOTE6_NET, SET4, SET4_NET, SET6, SET6_HOST, SET6_NET, TABLE,
};
use crate::settings::Settings;

/// Set-element comments are stored by nft's rules in at most 128 bytes with the NUL.
pub const COMMENT_MAX: usize = 127;

/// One ban to write.
#[derive(Debug, Clone)]
pub struct Ban {
    pub key: SourceKey,
    pub duration_ms: u64,
    pub comment: String,
}

/// The set a key belongs in: IPv4, an IPv6 prefix, or one IPv6 address (narrowed keys, and
/// every IPv6 key with `ipv6-prefix 128`).
fn set_and_element(key: &SourceKey) -> (&'static str, Element) {
    let (bytes, len) = key.set_key();
    let set = match key {
        SourceKey::V4(_) => SET4,
        SourceKey::V6(_, 128) => SET6_HOST,
        SourceKey::V6(..) => SET6,
        SourceKey::V4Net(..) => SET4_NET,
        SourceKey::V6Net(..) => SET6_NET,
    };
    (set, Element::new(&bytes[..len]))
}

/// Writes bans in one transaction (one NEWSETELEM per set at most, split if huge).
pub fn add(sock: &mut NlSocket, bans: &[Ban]) -> Result<(), Error> {
    add_replacing(sock, bans, &[])
}

/// Like `add`, deleting the elements of `present` first in the same transaction: kernels before
/// 6.12 keep an existing element's timeout when it is added again, so a re-ban there is a
/// delete and an add. Every key in `present` must be in the sets (else ENOENT aborts it all).
pub fn add_replacing(
    sock: &mut NlSocket,
    bans: &[Ban],
    present: &[SourceKey],
) -> Result<(), Error> {
    let mut batch = Batch::new();
    let old = per_set(present.iter().map(set_and_element));
    for (set, old) in SETS.iter().zip(&old) {
        if !old.is_empty() {
            batch.delete_elements(Family::Inet, TABLE, set, old);
        }
    }
    let new = per_set(bans.iter().map(|b| {
        let (set, mut e) = set_and_element(&b.key);
        e.timeout_ms = Some(b.duration_ms.max(1000));
        e.comment = Some(b.comment.clone());
        (set, e)
    }));
    for (set, new) in SETS.iter().zip(&new) {
        if !new.is_empty() {
            batch.add_elements(Family::Inet, TABLE, set, new);
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    batch.send(sock)
}

/// The ban sets, in the order bans are listed.
const SETS: [&str; 5] = [SET4, SET6, SET6_HOST, SET4_NET, SET6_NET];

/// Elements sorted into the ban sets, in `SETS` order.
fn per_set(items: impl Iterator<Item = (&'static str, Element)>) -> [Vec<Element>; 5] {
    let mut out: [Vec<Element>; 5] = Default::default();
    for (set, e) in items {
        if let Some(i) = SETS.iter().position(|s| *s == set) {
            out[i].push(e);
        }
    }
    out
}

/// True if a write failed because a ban set is at its size (the kernel answers ENFILE).
pub fn is_set_full(e: &Error) -> bool {
    e.errno() == Some(nix::errno::Errno::ENFILE as i32)
}

/// An error writing bans, in words an admin can act on.
pub fn describe(e: &Error, set_size: u32) -> String {
    if is_set_full(e) {
        format!(
            "the ban set is full ({set_size} elements, --set-size); new bans wait until old \
             ones expire (a larger set-size takes effect when the table is created anew)"
        )
    } else {
        e.to_string()
    }
}

/// Lifts a ban. `Ok(false)` if there was none.
pub fn remove(sock: &mut NlSocket, key: &SourceKey) -> Result<bool, Error> {
    let (set, e) = set_and_element(key);
    let mut batch = Batch::new();
    batch.delete_elements(Family::Inet, TABLE, set, &[e]);
    match batch.send(sock) {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Lifts every ban in one transaction; how many there were. A running daemon notices at its
/// next reconcile (2 s) and forgets the sources, and does not put the bans back: the table is
/// intact, only emptied.
pub fn remove_all(sock: &mut NlSocket) -> Result<usize, Error> {
    let mut n = 0;
    let mut batch = Batch::new();
    for set in SETS {
        if let Some(elements) = set_elements(sock, set)? {
            n += elements.len();
            batch.flush_set(Family::Inet, TABLE, set);
        }
    }
    if n > 0 {
        batch.send(sock)?;
    }
    Ok(n)
}

/// The elements of one ban set; `None` for a set a table made by an older version has not
/// (the host set, the prefix sets).
fn set_elements(sock: &mut NlSocket, set: &str) -> Result<Option<Vec<Element>>, Error> {
    match dump::list_elements(sock, Family::Inet, TABLE, set) {
        Err(e) if set != SET4 && set != SET6 && e.is_not_found() => Ok(None),
        other => other.map(Some),
    }
}

/// A ban as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: SourceKey,
    pub timeout_ms: Option<u64>,
    pub expires_ms: Option<u64>,
    pub comment: Option<String>,
}

/// Every ban in the sets, IPv4 first, each set in kernel order, keys at the lengths `s` sets
/// (`ipv6-prefix`, `prefix-v4`, `prefix-v6`). A table made by an older version has no host or
/// prefix sets: those are then empty.
pub fn list(sock: &mut NlSocket, s: &Settings) -> Result<Vec<Listed>, Error> {
    let mut out = Vec::new();
    for set in SETS {
        let Some(elements) = set_elements(sock, set)? else {
            continue;
        };
        for e in elements {
            let key = match e.key.len() {
                4 => {
                    let a: [u8; 4] = e.key[..4].try_into().unwrap_or([0; 4]);
                    let a = IpAddr::V4(Ipv4Addr::from(a));
                    if set == SET4_NET {
                        SourceKey::aggregate(a, s.prefix_v4, s.prefix_v6)
                    } else {
                        SourceKey::new(a, s.ipv6_prefix)
                    }
                }
                16 => {
                    let a: [u8; 16] = e.key[..16].try_into().unwrap_or([0; 16]);
                    let a = IpAddr::V6(Ipv6Addr::from(a));
                    match set {
                        SET6_NET => SourceKey::aggregate(a, s.prefix_v4, s.prefix_v6),
                        SET6_HOST => SourceKey::new(a, 128),
                        _ => SourceKey::new(a, s.ipv6_prefix),
                    }
                }
                _ => continue,
            };
            out.push(Listed {
                key,
                timeout_ms: e.timeout_ms,
                expires_ms: e.expiration_ms,
                comment: e.comment,
            });
        }
    }
    Ok(out)
}

/// A remote ban (a fleet decision, `fleet::remote`) as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteListed {
    /// An address, or a CIDR range (`ADDR/LEN`; `START-END` for an interval that is none).
    pub target: String,
    pub timeout_ms: Option<u64>,
    pub expires_ms: Option<u64>,
    /// `remote:ORIGIN` (e.g. `remote:cscli`, `remote:CAPI`).
    pub origin: String,
    pub reason: String,
}

/// Every remote ban: the addresses, then the ranges (interval sets, read back from their start
/// and end elements). A table made by a version without remote sets has none.
pub fn list_remote(sock: &mut NlSocket) -> Result<Vec<RemoteListed>, Error> {
    let mut out = Vec::new();
    for set in [REMOTE4, REMOTE6, REMOTE4_NET, REMOTE6_NET] {
        let elements = match dump::list_elements(sock, Family::Inet, TABLE, set) {
            Err(e) if e.is_not_found() => continue,
            other => other?,
        };
        let interval = set == REMOTE4_NET || set == REMOTE6_NET;
        for (target, e) in remote_targets(elements, interval) {
            let comment = e.comment.unwrap_or_default();
            let (origin, reason) = match comment.split_once(' ') {
                Some((o, r)) if o.starts_with("remote:") => (o.to_string(), r.to_string()),
                _ if comment.starts_with("remote:") => (comment, String::new()),
                _ => ("remote".to_string(), comment),
            };
            out.push(RemoteListed {
                target,
                timeout_ms: e.timeout_ms,
                expires_ms: e.expiration_ms,
                origin,
                reason,
            });
        }
    }
    Ok(out)
}

/// The targets of a remote set's elements: each address, or in an interval set each start
/// element with the end element after it (docs/WIRE-NOTES.md#interval-sets).
fn remote_targets(mut elements: Vec<Element>, interval: bool) -> Vec<(String, Element)> {
    let value = |k: &[u8]| k.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let show = |k: &[u8]| match k.len() {
        4 => <[u8; 4]>::try_from(k)
            .map(|a| Ipv4Addr::from(a).to_string())
            .ok(),
        16 => <[u8; 16]>::try_from(k)
            .map(|a| Ipv6Addr::from(a).to_string())
            .ok(),
        _ => None,
    };
    let end_flag = nft::uapi::elem::F_INTERVAL_END;
    if !interval {
        return elements
            .into_iter()
            .filter_map(|e| show(&e.key).map(|t| (t, e)))
            .collect();
    }
    // In key order an end sorts before a start of the same key (adjacent ranges).
    elements.sort_by(|a, b| {
        (value(&a.key), a.flags & end_flag == 0).cmp(&(value(&b.key), b.flags & end_flag == 0))
    });
    let mut out = Vec::new();
    let mut i = 0;
    while i < elements.len() {
        let e = &elements[i];
        i += 1;
        if e.flags & end_flag != 0 {
            continue;
        }
        let Some(start) = show(&e.key) else { continue };
        let bits = e.key.len() as u32 * 8;
        let first = value(&e.key);
        // The block's size: up to the end element, or to the top of the address space.
        let size = match elements.get(i).filter(|n| n.flags & end_flag != 0) {
            Some(end) => {
                i += 1;
                Some(value(&end.key).wrapping_sub(first))
            }
            // 2^128 - first; the whole space (first 0) is too big for a u128.
            None if bits == 128 => (first != 0).then(|| first.wrapping_neg()),
            None => Some((1u128 << bits) - first),
        };
        let target = match size {
            Some(n) if n.is_power_of_two() && first % n == 0 => {
                format!("{start}/{}", bits - n.trailing_zeros())
            }
            // The whole IPv6 space (size 2^128 does not fit) or a range no prefix names.
            None => format!("{start}/0"),
            Some(n) => {
                let last = first.wrapping_add(n - 1).to_be_bytes();
                let last = &last[16 - e.key.len()..];
                format!("{start}-{}", show(last).unwrap_or_default())
            }
        };
        out.push((target, e.clone()));
    }
    out
}

#[cfg(test)]
mod remote_tests {
    use super::*;

    fn el(key: &[u8], end: bool) -> Element {
        Element {
            flags: if end {
                nft::uapi::elem::F_INTERVAL_END
            } else {
                0
            },
            ..Element::new(key)
        }
    }

    #[test]
    fn interval_elements_read_back_as_the_blocks_written() {
        let mut elements = Vec::new();
        for (key, len) in [
            (&[203, 0, 113, 128][..], 25),
            (&[203, 0, 113, 0][..], 25),
            (&[198, 51, 0, 0][..], 16),
            (&[255, 255, 255, 0][..], 24),
        ] {
            let (s, e) = Element::prefix_interval(key, len);
            elements.push(s);
            elements.extend(e);
        }
        // The kernel dumps in its own order.
        elements.reverse();
        let got: Vec<String> = remote_targets(elements, true)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(
            got,
            [
                "198.51.0.0/16",
                "203.0.113.0/25",
                "203.0.113.128/25",
                "255.255.255.0/24"
            ]
        );
        let odd = vec![el(&[192, 0, 2, 1], false), el(&[192, 0, 2, 4], true)];
        assert_eq!(remote_targets(odd, true)[0].0, "192.0.2.1-192.0.2.3");
        let v6 = Element::prefix_interval(
            &[0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            48,
        );
        let v6 = std::iter::once(v6.0).chain(v6.1).collect();
        assert_eq!(remote_targets(v6, true)[0].0, "2001:db8:1::/48");
        assert_eq!(remote_targets(vec![el(&[0; 16], false)], true)[0].0, "::/0");
    }
}
