//! The daemon's counters as a file: written atomically every few seconds by `run`, read by
//! `scanban status`, optionally also in Prometheus text format for node_exporter's textfile
//! collector (how sshguard and CrowdSec's bouncers are scraped).
//!
//! Format: one `name value` per line, names in `[a-z0-9_]`, values unsigned integers or
//! `unavailable` (a figure the daemon cannot give, e.g. a latency with no sample behind it), `#`
//! comments. The daemon's pid and the time of writing are counters like the others, so `status`
//! can tell a live daemon from a stale file.

use std::fmt::Write;

/// What the text format writes for a value the daemon cannot give.
pub const UNAVAILABLE: &str = "unavailable";

/// A named counter with its help text (the help goes into the Prometheus output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
    /// `None`: unavailable (`unavailable` in the text, NaN for Prometheus, null in JSON).
    pub value: Option<u64>,
    /// Counters only grow (`_total` in Prometheus); gauges go up and down.
    pub monotonic: bool,
}

pub fn render_text(counters: &[Counter]) -> String {
    let mut out = String::from("# scanban status: name value\n");
    for c in counters {
        match c.value {
            Some(v) => {
                let _ = writeln!(out, "{} {v}", c.name);
            }
            None => {
                let _ = writeln!(out, "{} {UNAVAILABLE}", c.name);
            }
        }
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
        match c.value {
            Some(v) => {
                let _ = writeln!(out, "{name} {v}");
            }
            None => {
                let _ = writeln!(out, "{name} NaN");
            }
        }
    }
    out
}

/// Reads a stats file back into `(name, value)` pairs, in file order (`None`: unavailable); bad
/// lines are skipped.
pub fn parse_text(text: &str) -> Vec<(String, Option<u64>)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (n, v) = l.split_once(' ')?;
            let v = v.trim();
            let value = if v == UNAVAILABLE {
                None
            } else {
                Some(v.parse().ok()?)
            };
            Some((n.to_string(), value))
        })
        .collect()
}

/// `{"name": value, ...}` for `status --json` (null: unavailable); names are `[a-z0-9_]`, so no
/// escaping is needed.
pub fn to_json(pairs: &[(String, Option<u64>)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(n, v)| match v {
            Some(v) => format!("\"{n}\": {v}"),
            None => format!("\"{n}\": null"),
        })
        .collect();
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
                value: Some(42),
                monotonic: true,
            },
            Counter {
                name: "tracked",
                help: "sources tracked now",
                value: Some(7),
                monotonic: false,
            },
            Counter {
                name: "latency_p50_us",
                help: "median, when there are samples",
                value: None,
                monotonic: false,
            },
        ]
    }

    #[test]
    fn text_round_trip_and_json() {
        let text = render_text(&sample());
        assert!(text.contains("\nlatency_p50_us unavailable\n"), "{text}");
        let pairs = parse_text(&text);
        assert_eq!(
            pairs,
            vec![
                ("packets".into(), Some(42)),
                ("tracked".into(), Some(7)),
                ("latency_p50_us".into(), None)
            ]
        );
        assert_eq!(
            to_json(&pairs),
            r#"{"packets": 42, "tracked": 7, "latency_p50_us": null}"#
        );
    }

    #[test]
    fn prometheus_names_and_types() {
        let p = render_prometheus(&sample());
        assert!(p.contains("# TYPE scanban_packets_total counter\nscanban_packets_total 42\n"));
        assert!(p.contains("# TYPE scanban_tracked gauge\nscanban_tracked 7\n"));
        assert!(p.contains("# TYPE scanban_latency_p50_us gauge\nscanban_latency_p50_us NaN\n"));
    }
}
