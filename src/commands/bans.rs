//! `ban`, `unban` and `list`: bans in the kernel (and the state file) by hand.

use std::path::Path;
use std::time::Duration;

use detector::SourceKey;

use crate::settings::{self, Settings};
use crate::{bans, cli, duration, json, ruleset, state};

use super::{socket, Error};

/// Why an address or prefix cannot be a ban.
#[derive(Debug)]
pub enum KeyError {
    V4Prefix(u8),
    /// IPv6 bans are per address or per `ipv6-prefix`.
    V6Prefix(u8),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::V4Prefix(p) => write!(
                f,
                "IPv4 bans are per address, or per /{p} (prefix-v4) for a whole prefix"
            ),
            KeyError::V6Prefix(p) => write!(
                f,
                "IPv6 bans are per /{p} (ipv6-prefix); give an address or a /{p} prefix"
            ),
        }
    }
}

fn key_of(s: &Settings, target: settings::Cidr) -> Result<SourceKey, KeyError> {
    let full = if target.addr.is_ipv4() { 32 } else { 128 };
    // A whole prefix, as the distributed-scan tier bans it.
    let whole = if target.addr.is_ipv4() {
        s.prefix_v4
    } else {
        s.prefix_v6
    };
    if target.len == whole && target.len != full {
        return Ok(SourceKey::aggregate(target.addr, s.prefix_v4, s.prefix_v6));
    }
    if target.addr.is_ipv4() && target.len != 32 {
        return Err(KeyError::V4Prefix(s.prefix_v4));
    }
    if target.addr.is_ipv6() && target.len != full && target.len != s.ipv6_prefix {
        return Err(KeyError::V6Prefix(s.ipv6_prefix));
    }
    Ok(SourceKey::new(target.addr, s.ipv6_prefix))
}

/// The addresses of a ban list: one `ADDR[/LEN]` per line, `#` starts a comment. Every line is
/// checked before anything is written; the first bad one is the error, with its line number.
fn read_ban_list(s: &Settings, path: &Path) -> Result<Vec<SourceKey>, Error> {
    let text = if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t).map_err(file_error(path))?;
        t
    } else {
        std::fs::read_to_string(path).map_err(file_error(path))?
    };
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |problem| Error::Line {
            path: path.to_path_buf(),
            line: n + 1,
            problem,
        };
        let cidr: settings::Cidr = line.parse().map_err(at)?;
        keys.push(key_of(s, cidr).map_err(|e| at(e.to_string()))?);
    }
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(*k));
    Ok(keys)
}

pub fn ban(s: &Settings, target: cli::BanTarget, duration: Option<Duration>) -> Result<(), Error> {
    let keys = match &target {
        cli::BanTarget::One(c) => vec![key_of(s, *c).map_err(Error::Key)?],
        cli::BanTarget::File(p) => read_ban_list(s, p)?,
    };
    let d = duration.unwrap_or(s.ban_time);
    let mut sock = socket()?;
    // The sets and the drop rules must exist even if the daemon never ran; a running daemon's
    // table is left as it is.
    let drops = nft::dump::list_rules(
        &mut sock,
        nft::Family::Inet,
        ruleset::TABLE,
        Some("prerouting"),
    )
    .map(|r| r.len())
    .unwrap_or(0);
    let f = nft::probe::probe(&mut sock)?;
    if drops == 0 {
        let mut b = nft::Batch::new();
        let parts = ruleset::Parts {
            bans: true,
            sensor: false,
            forward: false,
        };
        ruleset::build(s, &f, parts).install(&mut b);
        b.send(&mut sock)?;
    }
    let comment = format!("banned by hand for {}", duration::Human(d));
    let all: Vec<bans::Ban> = keys
        .iter()
        .map(|key| bans::Ban {
            key: *key,
            duration_ms: d.as_millis() as u64,
            comment: comment.clone(),
        })
        .collect();
    // Before 6.12 a re-ban must delete the element first, or it keeps its old timeout. An
    // element that expires between the listing and the write makes the delete fail: list again.
    let mut written = Ok(());
    for _ in 0..3 {
        let present: Vec<SourceKey> = if f.timeout_refresh {
            Vec::new()
        } else {
            let wanted: std::collections::HashSet<SourceKey> = keys.iter().copied().collect();
            bans::list(&mut sock, s)
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.key)
                .filter(|k| wanted.contains(k))
                .collect()
        };
        written = bans::add_replacing(&mut sock, &all, &present);
        match &written {
            Err(e) if e.is_not_found() => {}
            _ => break,
        }
    }
    written.map_err(|source| Error::WriteBans {
        source,
        set_size: s.set_size,
    })?;
    match (&target, keys.as_slice()) {
        (cli::BanTarget::One(_), [key]) => println!("banned {key} for {}", duration::Human(d)),
        _ => println!(
            "banned {} address(es) for {}",
            keys.len(),
            duration::Human(d)
        ),
    }
    Ok(())
}

/// Lifts a ban in the kernel and in the state file (else a daemon started later would restore
/// it). An IPv6 address is looked for as itself (a narrowed ban) and as its prefix.
pub fn unban(s: &Settings, target: Option<settings::Cidr>) -> Result<(), Error> {
    let Some(target) = target else {
        return unban_all(s);
    };
    let mut sock = socket()?;
    let remote = remote_bans_covering(&mut sock, target);
    let key = match key_of(s, target) {
        Ok(key) => key,
        Err(_) if !remote.is_empty() => {
            return Err(Error::RemoteBan {
                target: target.to_string(),
                by: remote,
            })
        }
        Err(e) => return Err(Error::Key(e)),
    };
    let mut keys = vec![key];
    if let (std::net::IpAddr::V6(a), 128) = (target.addr, target.len) {
        if s.ipv6_prefix < 128 {
            keys.insert(0, SourceKey::V6(a, 128));
        }
    }
    let mut lifted = Vec::new();
    for k in &keys {
        if bans::remove(&mut sock, k)? {
            lifted.push(*k);
        }
    }
    if let Some(path) = &s.state_file {
        for k in &keys {
            match state::remove(path, k, s.ipv6_prefix) {
                Ok(true) if !lifted.contains(k) => lifted.push(*k),
                Ok(_) => {}
                Err(source) => {
                    return Err(Error::StateFile {
                        path: path.clone(),
                        source,
                    })
                }
            }
        }
    }
    if lifted.is_empty() && !remote.is_empty() {
        return Err(Error::RemoteBan {
            target: target.to_string(),
            by: remote,
        });
    }
    if lifted.is_empty() {
        return Err(Error::NotBanned(key));
    }
    for k in lifted {
        println!("unbanned {k}");
    }
    if !remote.is_empty() {
        println!(
            "{target} stays banned by the fleet: {} (lift it on the LAPI)",
            remote.join(", ")
        );
    }
    Ok(())
}

/// The remote bans (fleet decisions) that cover `target`, as `BLOCK (remote:ORIGIN)`.
fn remote_bans_covering(sock: &mut nfnl::NlSocket, target: settings::Cidr) -> Vec<String> {
    bans::list_remote(sock)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.target
                .parse::<settings::Cidr>()
                .is_ok_and(|c| c.len <= target.len && c.contains(&target.addr))
        })
        .map(|r| format!("{} ({})", r.target, r.origin))
        .collect()
}

/// `unban --all`: every ban lifted, in the kernel and in the state file.
fn unban_all(s: &Settings) -> Result<(), Error> {
    let mut sock = socket()?;
    let n = bans::remove_all(&mut sock).map_err(no_table)?;
    if let Some(path) = s.state_file.as_ref().filter(|p| p.exists()) {
        state::save(path, &[]).map_err(|source| Error::StateFile {
            path: path.clone(),
            source,
        })?;
    }
    println!("unbanned all {n} ban(s)");
    Ok(())
}

/// One row of `list`: a local ban (origin `local`) or a remote one (`remote:ORIGIN`).
struct Row {
    source: String,
    expires_ms: Option<u64>,
    timeout_ms: Option<u64>,
    origin: String,
    reason: String,
}

/// Every ban in the kernel, local ones first, each with its origin.
pub fn list(s: &Settings, json: bool) -> Result<(), Error> {
    let mut sock = socket()?;
    let local = bans::list(&mut sock, s).map_err(no_table)?;
    let remote = bans::list_remote(&mut sock).map_err(no_table)?;
    let all: Vec<Row> = local
        .into_iter()
        .map(|b| Row {
            source: b.key.to_string(),
            expires_ms: b.expires_ms,
            timeout_ms: b.timeout_ms,
            origin: "local".into(),
            reason: b.comment.unwrap_or_default(),
        })
        .chain(remote.into_iter().map(|b| Row {
            source: b.target,
            expires_ms: b.expires_ms,
            timeout_ms: b.timeout_ms,
            origin: b.origin,
            reason: b.reason,
        }))
        .collect();
    if json {
        println!(
            "{}",
            json::array(all.iter().map(|b| {
                json::Object::new()
                    .str("source", &b.source)
                    .num("expires_s", b.expires_ms.unwrap_or(0) / 1000)
                    .num("timeout_s", b.timeout_ms.unwrap_or(0) / 1000)
                    .str("origin", &b.origin)
                    .str("reason", &b.reason)
                    .finish()
            }))
        );
        return Ok(());
    }
    let width = all.iter().map(|b| b.source.len()).max().unwrap_or(6).max(6);
    let origin_width = all.iter().map(|b| b.origin.len()).max().unwrap_or(6).max(6);
    println!(
        "{:<width$}  {:>10}  {:>10}  {:<origin_width$}  REASON",
        "SOURCE", "EXPIRES IN", "BANNED FOR", "ORIGIN"
    );
    for b in &all {
        let h = |ms: Option<u64>| {
            ms.map_or("-".into(), |v| {
                duration::Human(Duration::from_secs(v / 1000)).to_string()
            })
        };
        println!(
            "{:<width$}  {:>10}  {:>10}  {:<origin_width$}  {}",
            b.source,
            h(b.expires_ms),
            h(b.timeout_ms),
            b.origin,
            b.reason
        );
    }
    println!("{} ban(s)", all.len());
    Ok(())
}

/// A request on a table that does not exist is "no bans".
fn no_table(e: nfnl::Error) -> Error {
    if e.is_not_found() {
        Error::NoTable
    } else {
        e.into()
    }
}

fn file_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::File {
        path: path.to_path_buf(),
        source,
    }
}
