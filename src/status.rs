//! `scanban status`: the running daemon's counters, from the stats file it rewrites.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::stats;

/// The daemon rewrites the file this often; older than three periods means it is not running.
pub const WRITE_EVERY: Duration = Duration::from_secs(5);

/// Prints the counters; returns false (exit 1) if there is no live daemon behind the file.
pub fn show(path: &Path, json: bool) -> bool {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "scanban status: no stats at {} ({e}); is `scanban run` running?",
                path.display()
            );
            return false;
        }
    };
    let pairs = stats::parse_text(&text);
    let get = |n: &str| pairs.iter().find(|(k, _)| k == n).and_then(|(_, v)| *v);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let age = get("written_at").map(|w| now.saturating_sub(w));
    let alive = get("pid").is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
    let fresh = age.is_some_and(|a| a <= 3 * WRITE_EVERY.as_secs());
    if json {
        println!("{}", stats::to_json(&pairs));
    } else {
        let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in &pairs {
            match v {
                Some(v) => println!("{k:<width$}  {v}"),
                None => println!("{k:<width$}  {}", stats::UNAVAILABLE),
            }
        }
    }
    if !(alive && fresh) {
        eprintln!(
            "scanban status: the daemon is not running (stats written {} s ago by pid {})",
            age.map_or("?".to_string(), |a| a.to_string()),
            get("pid").map_or("?".to_string(), |p| p.to_string())
        );
        return false;
    }
    true
}
