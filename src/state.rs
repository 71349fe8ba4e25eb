//! `--state-file`: active bans saved across reboots. The kernel keeps bans across daemon
//! restarts by itself; a reboot empties it, so the daemon writes the bans (with the time each
//! has left and its reason) and puts them back in one transaction at start.
//!
//! Router flash wears with every write, so the file is rewritten only when it no longer says
//! what the kernel holds: a ban added, renewed, lifted or reset. A ban that merely expired needs
//! no write, since loading skips it anyway. The daemon compares every `state-every` (default
//! 5 minutes, 1 hour on OpenWrt) and at a clean stop, atomically.
//!
//! Format: a `# saved_at UNIX_SECONDS` line, then one `SOURCE MS_LEFT REASON...` per ban.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use detector::SourceKey;

use crate::bans::{Ban, Listed};
use crate::settings::Cidr;

/// How far the time a saved ban has left may drift from the kernel's before the file counts
/// as out of date (the file keeps whole seconds; the comparison runs at other moments).
const DRIFT_MS: u64 = 60_000;

/// Bans with less than this left are neither restored nor worth saving.
const MIN_LEFT_MS: u64 = 1000;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn render(bans: &[Listed], saved_at: u64) -> String {
    let mut out = format!("# scanban bans\n# saved_at {saved_at}\n");
    for b in bans {
        let Some(left) = b.expires_ms.filter(|&l| l > 0) else {
            continue;
        };
        let reason = b.comment.as_deref().unwrap_or("").replace('\n', " ");
        out.push_str(&format!("{} {left} {reason}\n", b.key));
    }
    out
}

/// The bans still worth restoring `now` (unix seconds): time left minus time since saving.
pub fn parse(text: &str, now: u64, ipv6_prefix: u8) -> Vec<Ban> {
    let mut saved_at = now;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# saved_at ") {
            saved_at = t.trim().parse().unwrap_or(now);
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut f = line.splitn(3, ' ');
        let (Some(src), Some(left)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(cidr) = src.parse::<Cidr>() else {
            continue;
        };
        let Ok(left_ms) = left.parse::<u64>() else {
            continue;
        };
        let gone_ms = now.saturating_sub(saved_at).saturating_mul(1000);
        let remaining = left_ms.saturating_sub(gone_ms);
        if remaining < MIN_LEFT_MS {
            continue;
        }
        out.push(Ban {
            key: key_of_saved(cidr, ipv6_prefix),
            duration_ms: remaining,
            comment: f.next().unwrap_or("restored").to_string(),
        });
    }
    out
}

/// A saved source as a key: an IPv4 address, one IPv6 address (a narrowed ban), the prefix, or
/// a wider prefix banned whole (the distributed-scan tier: an IPv4 prefix, or an IPv6 one wider
/// than `ipv6_prefix`).
fn key_of_saved(cidr: Cidr, ipv6_prefix: u8) -> SourceKey {
    match cidr.addr {
        std::net::IpAddr::V6(a) if cidr.len == 128 => SourceKey::V6(a, 128),
        std::net::IpAddr::V6(a) if cidr.len < ipv6_prefix => {
            SourceKey::V6Net(detector::inet::mask_v6(a, cidr.len), cidr.len)
        }
        std::net::IpAddr::V4(a) if cidr.len < 32 => {
            SourceKey::aggregate(std::net::IpAddr::V4(a), cidr.len, 128)
        }
        a => SourceKey::new(a, ipv6_prefix),
    }
}

/// Rewrites the state file without `key`, for `scanban unban` (the daemon may be down, and
/// would otherwise restore the ban at its next start). `Ok(false)`: the file did not hold it.
pub fn remove(path: &Path, key: &SourceKey, ipv6_prefix: u8) -> std::io::Result<bool> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let (kept, removed) = without(&text, key, ipv6_prefix);
    if removed {
        crate::atomic_file::write(path, kept.as_bytes(), true)?;
    }
    Ok(removed)
}

/// `text` without the lines of `key`, and whether there were any.
fn without(text: &str, key: &SourceKey, ipv6_prefix: u8) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut removed = false;
    for line in text.lines() {
        let saved = line
            .split(' ')
            .next()
            .filter(|_| !line.starts_with('#'))
            .and_then(|src| src.parse::<Cidr>().ok())
            .map(|c| key_of_saved(c, ipv6_prefix));
        if saved.as_ref() == Some(key) {
            removed = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    (out, removed)
}

pub fn save(path: &Path, bans: &[Listed]) -> std::io::Result<()> {
    crate::atomic_file::write(path, render(bans, unix_now()).as_bytes(), true)
}

/// Rewrites the file only if it no longer says what `bans` (the kernel's) say; `Ok(true)`
/// if it was written.
pub fn save_if_changed(path: &Path, bans: &[Listed], ipv6_prefix: u8) -> std::io::Result<bool> {
    // A file that cannot be read is rewritten (the write says what is wrong, if anything).
    let saved = load(path, ipv6_prefix).ok();
    if saved.is_some_and(|saved| same_bans(&saved, bans)) {
        return Ok(false);
    }
    save(path, bans)?;
    Ok(true)
}

/// Whether the saved bans (time left as of now) restore what the kernel holds: the same sources,
/// each with about the same time left.
fn same_bans(saved: &[Ban], kernel: &[Listed]) -> bool {
    let saved: BTreeMap<SourceKey, u64> = saved.iter().map(|b| (b.key, b.duration_ms)).collect();
    let kernel: BTreeMap<SourceKey, u64> = kernel
        .iter()
        .filter_map(|b| Some((b.key, b.expires_ms.filter(|&l| l >= MIN_LEFT_MS)?)))
        .collect();
    saved.len() == kernel.len()
        && saved.iter().all(|(key, left)| {
            kernel
                .get(key)
                .is_some_and(|k| k.abs_diff(*left) <= DRIFT_MS)
        })
}

pub fn load(path: &Path, ipv6_prefix: u8) -> std::io::Result<Vec<Ban>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(parse(&t, unix_now(), ipv6_prefix)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_less_the_time_that_passed() {
        let bans = vec![
            Listed {
                key: SourceKey::new("192.0.2.7".parse().unwrap(), 64),
                timeout_ms: Some(3_600_000),
                expires_ms: Some(3_000_000),
                comment: Some("score 21 from 9 ports (tcp/22), 1h ban #1".into()),
            },
            Listed {
                key: SourceKey::new("2001:db8:1:2::5".parse().unwrap(), 64),
                timeout_ms: Some(60_000),
                expires_ms: Some(50_000),
                comment: None,
            },
        ];
        let text = render(&bans, 1000);
        let back = parse(&text, 1000 + 100, 64);
        assert_eq!(back.len(), 1, "the second expired during the 100 s: {text}");
        assert_eq!(back[0].key, bans[0].key);
        assert_eq!(back[0].duration_ms, 3_000_000 - 100_000);
        assert!(back[0].comment.starts_with("score 21"));
        let back = parse(&text, 1000, 64);
        assert_eq!(back[1].key.to_string(), "2001:db8:1:2::/64");
        assert!(parse("garbage\n1.2.3 x y\n", 0, 64).is_empty());
    }

    fn listed(source: &str, left_ms: u64, reason: &str) -> Listed {
        Listed {
            key: SourceKey::new(source.parse().unwrap(), 64),
            timeout_ms: Some(3_600_000),
            expires_ms: Some(left_ms),
            comment: Some(reason.into()),
        }
    }

    #[test]
    fn only_a_change_of_bans_is_a_change_of_the_file() {
        let bans = vec![
            listed("192.0.2.7", 3_000_000, "score 21, 1h ban #1"),
            listed("2001:db8:1:2::5", 600_000, "score 30, 1h ban #1"),
        ];
        let text = render(&bans, 1000);
        // Ten minutes later the kernel's timers have run down as the file's have.
        let later = parse(&text, 1000 + 600, 64);
        let aged = vec![
            listed("192.0.2.7", 2_400_000, "score 21, 1h ban #1"),
            listed("2001:db8:1:2::5", 500, "about to expire"),
        ];
        assert_eq!(later.len(), 1, "the second expired: {text}");
        assert!(same_bans(&later, &aged), "expiry alone writes nothing");
        // A new ban, a renewed one (more time left), a lifted one: each is a change.
        let mut added = aged.clone();
        added.push(listed("198.51.100.9", 3_600_000, "by hand"));
        assert!(!same_bans(&later, &added));
        let renewed = vec![listed("192.0.2.7", 7_200_000, "score 21, 2h ban #2")];
        assert!(!same_bans(&later, &renewed));
        assert!(
            !same_bans(&later, &[]),
            "--reset or unban --all empties the file"
        );
        assert!(same_bans(&[], &[]));
    }

    #[test]
    fn save_if_changed_writes_once_per_change() {
        let dir = std::env::temp_dir().join(format!("scanban-state-{}", std::process::id()));
        let path = dir.join("state");
        let bans = vec![listed("192.0.2.7", 3_000_000, "score 21, 1h ban #1")];
        assert!(save_if_changed(&path, &bans, 64).unwrap(), "no file yet");
        assert!(
            !save_if_changed(&path, &bans, 64).unwrap(),
            "nothing changed"
        );
        assert!(save_if_changed(&path, &[], 64).unwrap(), "lifted");
        assert_eq!(load(&path, 64).unwrap().len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn narrowed_bans_keep_their_length_and_unban_removes_a_line() {
        let host = SourceKey::V6("2001:db8:1:2::66".parse().unwrap(), 128);
        let bans = vec![
            Listed {
                key: host,
                timeout_ms: Some(60_000),
                expires_ms: Some(50_000),
                comment: Some("per address".into()),
            },
            Listed {
                key: SourceKey::new("192.0.2.7".parse().unwrap(), 64),
                timeout_ms: Some(60_000),
                expires_ms: Some(50_000),
                comment: None,
            },
        ];
        let text = render(&bans, 1000);
        assert_eq!(parse(&text, 1000, 64)[0].key, host);
        let (kept, removed) = without(&text, &host, 64);
        assert!(removed);
        let back = parse(&kept, 1000, 64);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].key.to_string(), "192.0.2.7");
        assert!(kept.contains("# saved_at 1000"));
        assert!(!without(&kept, &host, 64).1);
    }
}
