//! `--state-file`: active bans saved across reboots. The kernel keeps bans across daemon
//! restarts by itself; a reboot empties it, so the daemon writes the bans (with the time each
//! has left and its reason) on shutdown and every few minutes, atomically and rarely (router
//! flash wears), and puts them back in one transaction at start.
//!
//! Format: a `# saved_at UNIX_SECONDS` line, then one `SOURCE MS_LEFT REASON...` per ban.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use detector::SourceKey;

use crate::bans::{Ban, Listed};
use crate::settings::Cidr;

/// How often the daemon rewrites the file (besides at shutdown).
pub const SAVE_EVERY: Duration = Duration::from_secs(300);

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
        if remaining < 1000 {
            continue;
        }
        out.push(Ban {
            key: SourceKey::new(cidr.addr, ipv6_prefix),
            duration_ms: remaining,
            comment: f.next().unwrap_or("restored").to_string(),
        });
    }
    out
}

pub fn save(path: &Path, bans: &[Listed]) -> std::io::Result<()> {
    crate::atomic_file::write(path, render(bans, unix_now()).as_bytes(), true)
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
}
