//! The daemon's counters as a file: written atomically every few seconds by `run`, read by
//! `scanban status`, optionally also in Prometheus text format for node_exporter's textfile
//! collector (how sshguard and CrowdSec's bouncers are scraped).
//!
//! Format: one `name value` per line, names in `[a-z0-9_]`, values unsigned integers, `#`
//! comments. The daemon's pid and the time of writing are counters like the others, so `status`
//! can tell a live daemon from a stale file.

use std::fmt::Write;

/// A named counter with its help text (the help goes into the Prometheus output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
    /// Counters only grow (`_total` in Prometheus); gauges go up and down.
    pub monotonic: bool,
}

pub fn render_text(counters: &[Counter]) -> String {
    let mut out = String::from("# scanban status: name value\n");
    for c in counters {
        let _ = writeln!(out, "{} {}", c.name, c.value);
    }
    out
}

pub fn render_prometheus(counters: &[Counter]) -> String {
    let mut out = String::new();
    for c in counters {
        let (name, kind) = if c.monotonic {
            (format!("scanban_{}_total", c.name), "counter")
        } else {
            (format!("scanban_{}", c.name), "gauge")
        };
        let _ = writeln!(out, "# HELP {name} {}", c.help);
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {}", c.value);
    }
    out
}

/// Reads a stats file back into `(name, value)` pairs, in file order; bad lines are skipped.
pub fn parse_text(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (n, v) = l.split_once(' ')?;
            Some((n.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `{"name": value, ...}` for `status --json`; names are `[a-z0-9_]`, so no escaping is needed.
pub fn to_json(pairs: &[(String, u64)]) -> String {
    let body: Vec<String> = pairs.iter().map(|(n, v)| format!("\"{n}\": {v}")).collect();
    format!("{{{}}}", body.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Counter> {
        vec![
            Counter {
                name: "packets",
                help: "queued packets received",
                value: 42,
                monotonic: true,
            },
            Counter {
                name: "tracked",
                help: "sources tracked now",
                value: 7,
                monotonic: false,
            },
        ]
    }

    #[test]
    fn text_round_trip_and_json() {
        let text = render_text(&sample());
        let pairs = parse_text(&text);
        assert_eq!(pairs, vec![("packets".into(), 42), ("tracked".into(), 7)]);
        assert_eq!(to_json(&pairs), r#"{"packets": 42, "tracked": 7}"#);
    }

    #[test]
    fn prometheus_names_and_types() {
        let p = render_prometheus(&sample());
        assert!(p.contains("# TYPE scanban_packets_total counter\nscanban_packets_total 42\n"));
        assert!(p.contains("# TYPE scanban_tracked gauge\nscanban_tracked 7\n"));
    }
}
