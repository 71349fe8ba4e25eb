//! Bans in the kernel: adding, listing and lifting elements of the ban sets. Used by the daemon
//! and by `scanban ban/unban/list`, which work whether or not the daemon runs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use detector::SourceKey;
use nfnl::{Error, NlSocket};
use nft::{dump, Batch, Element, Family};

use crate::ruleset::{SET4, SET4_NET, SET6, SET6_HOST, SET6_NET, TABLE};
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
