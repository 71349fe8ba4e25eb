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

/// `{"name": value, ...}` for `status --json` (null: unavailable).
pub fn to_json(pairs: &[(String, Option<u64>)]) -> String {
    pairs
        .iter()
        .fold(crate::json::Object::new(), |o, (n, v)| o.num_or_null(n, *v))
        .finish()
}

impl Counter {
    /// A value that goes up and down.
    pub fn gauge(name: &'static str, help: &'static str, value: u64) -> Self {
        Counter {
            name,
            help,
            value: Some(value),
            monotonic: false,
        }
    }

    /// A counter that only grows (`_total` in Prometheus).
    pub fn total(name: &'static str, help: &'static str, value: u64) -> Self {
        Counter {
            monotonic: true,
            ..Counter::gauge(name, help, value)
        }
    }
}

/// What the daemon reports, gathered once per write of the stats file.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub pid: u64,
    pub written_at: u64,
    pub uptime_seconds: u64,
    pub packets: u64,
    pub malformed: u64,
    /// Every detector shard's counters, summed.
    pub detector: detector::Counters,
    pub bans_applied: u64,
    pub ban_errors: u64,
    pub spared: u64,
    pub lan_side: u64,
    pub management_sessions_aged: u64,
    pub bans_retried: u64,
    pub bans_lost: u64,
    pub bans_pending_retry: u64,
    pub bans_unlogged: u64,
    pub set_full: u64,
    pub bans_active: u64,
    pub queue_failed_open: u64,
    pub queue_dropped: u64,
    pub queue_user_dropped: u64,
    pub ruleset_repairs: u64,
    /// The fleet (CrowdSec LAPI): the sensor's pushes and the bouncer's polls
    /// (`fleet::lapi::SensorCounters::figures`, `BouncerCounters::figures`).
    pub lapi: LapiFigures,
}

/// The LAPI counters, all 0 when the fleet is not configured.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LapiFigures {
    pub alerts_pushed: u64,
    pub alerts_dropped: u64,
    pub alerts_pending: u64,
    pub push_failures: u64,
    pub polls: u64,
    pub poll_errors: u64,
    pub decisions: u64,
    pub decisions_skipped: u64,
    pub decisions_applied: u64,
    pub decisions_lifted: u64,
    pub decisions_refused: u64,
    pub decisions_failed: u64,
    pub decisions_over_limit: u64,
}

impl Figures {
    /// The stats file's counters, in file order: the one table of their names and meanings
    /// (long because it is that table, one entry per counter).
    pub fn counters(&self) -> Vec<Counter> {
        let (g, m) = (Counter::gauge, Counter::total);
        let det = &self.detector;
        vec![
            g("pid", "process id of the daemon", self.pid),
            g("written_at", "unix time of this file", self.written_at),
            g("uptime_seconds", "seconds since start", self.uptime_seconds),
            m("packets", "queued packets received", self.packets),
            m("malformed", "queue messages that could not be read", self.malformed),
            m("observed", "packets the detectors looked at", det.observed),
            m("probes", "probes counted (a new closed port of a source)", det.counted),
            m("repeats", "probes to a port the source had already probed", det.repeats),
            m(
                "ignored",
                "packets ignored (allowlisted, ICMP, SCTP other than INIT/COOKIE ECHO, fragments, malformed)",
                det.ignored.iter().sum(),
            ),
            g("tracked", "sources tracked now", det.tracked),
            m("evicted", "sources forgotten to make room", det.evicted),
            m("bans_issued", "bans decided", det.bans),
            m("bans_suppressed", "bans held back by the ban rate limit", det.suppressed),
            m(
                "already_banned",
                "probes from sources banned moments ago (dropped before the kernel set had them)",
                det.already_banned,
            ),
            g(
                "prefixes_tracked",
                "prefixes tracked now (the distributed-scan tier)",
                det.prefixes,
            ),
            m(
                "prefixes_protected",
                "prefixes that reached prefix-threshold but hold an allowed or own address: not banned whole",
                det.prefix_protected,
            ),
            m(
                "actions_dropped",
                "bans decided but lost because the daemon did not collect them (should stay 0)",
                det.actions_dropped,
            ),
            m("bans_applied", "bans written to the kernel", self.bans_applied),
            m("ban_errors", "failed ban transactions", self.ban_errors),
            m(
                "spared",
                "bans not written: the source had an aged session to a management port (spare-ports)",
                self.spared,
            ),
            m(
                "lan_side",
                "bans not written: the source scanned from a LAN interface (lan-interfaces; ban-lan off)",
                self.lan_side,
            ),
            g(
                "management_sessions_aged",
                "sessions to a management port old enough to spare their peer (spare-after)",
                self.management_sessions_aged,
            ),
            m(
                "bans_retried",
                "bans written on a retry after their first write failed",
                self.bans_retried,
            ),
            m(
                "bans_lost",
                "bans given up after failing to reach the kernel for a minute (the source counts afresh)",
                self.bans_lost,
            ),
            g(
                "bans_pending_retry",
                "bans whose write failed, waiting for a retry",
                self.bans_pending_retry,
            ),
            m(
                "bans_unlogged",
                "bans written but not logged (the follow-up thread fell behind a ban storm)",
                self.bans_unlogged,
            ),
            m(
                "set_full",
                "ban transactions refused because a ban set was full",
                self.set_full,
            ),
            g("bans_active", "elements in the kernel ban sets", self.bans_active),
            m(
                "queue_failed_open",
                "probes the sensor queued that scanban never received: the queue was full and the kernel let them through unexamined (managed mode)",
                self.queue_failed_open,
            ),
            m(
                "queue_dropped",
                "packets the kernel dropped because a queue was full (tail mode; managed mode fails open instead)",
                self.queue_dropped,
            ),
            m(
                "queue_user_dropped",
                "packets the kernel dropped because scanban's socket was full",
                self.queue_user_dropped,
            ),
            m(
                "ruleset_repairs",
                "times the table was restored after outside changes",
                self.ruleset_repairs,
            ),
            m("lapi_alerts_pushed", "bans the LAPI accepted as alerts", self.lapi.alerts_pushed),
            m(
                "lapi_alerts_dropped",
                "bans never pushed to the LAPI: its queue was full (a long outage), or the LAPI refused them 5 times",
                self.lapi.alerts_dropped,
            ),
            g(
                "lapi_alerts_pending",
                "bans waiting to be pushed to the LAPI",
                self.lapi.alerts_pending,
            ),
            m(
                "lapi_push_failures",
                "alert pushes or logins that failed (their alerts are kept and pushed again)",
                self.lapi.push_failures,
            ),
            m("lapi_polls", "decision stream answers read", self.lapi.polls),
            m(
                "lapi_poll_errors",
                "decision stream polls that failed (the LAPI down, an error status, a malformed answer)",
                self.lapi.poll_errors,
            ),
            m(
                "lapi_decisions",
                "ban decisions (new and deleted) received from the LAPI",
                self.lapi.decisions,
            ),
            m(
                "lapi_decisions_skipped",
                "decisions skipped: not a ban of scope Ip or Range, or unreadable",
                self.lapi.decisions_skipped,
            ),
            m(
                "lapi_decisions_applied",
                "LAPI decisions put in the kernel",
                self.lapi.decisions_applied,
            ),
            m(
                "lapi_decisions_lifted",
                "LAPI decisions lifted (deleted or expired)",
                self.lapi.decisions_lifted,
            ),
            m(
                "lapi_decisions_refused",
                "LAPI decisions refused: they cover an allowlisted or own address",
                self.lapi.decisions_refused,
            ),
            m(
                "lapi_decisions_failed",
                "LAPI decisions whose kernel write failed",
                self.lapi.decisions_failed,
            ),
            m(
                "lapi_decisions_over_limit",
                "LAPI decisions skipped: as many held as lapi-max-decisions allows",
                self.lapi.decisions_over_limit,
            ),
        ]
    }
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
    fn every_detector_counter_is_in_the_table() {
        let figures = Figures {
            detector: detector::Counters {
                observed: 1,
                ignored: [2, 0, 0, 0, 1],
                counted: 4,
                repeats: 5,
                tracked: 6,
                evicted: 7,
                bans: 8,
                suppressed: 9,
                actions_dropped: 10,
                already_banned: 11,
                prefixes: 12,
                prefix_protected: 13,
            },
            ..Figures::default()
        };
        let counters = figures.counters();
        let get = |n: &str| counters.iter().find(|c| c.name == n).and_then(|c| c.value);
        let expected = [
            ("observed", 1),
            ("ignored", 3),
            ("probes", 4),
            ("repeats", 5),
            ("tracked", 6),
            ("evicted", 7),
            ("bans_issued", 8),
            ("bans_suppressed", 9),
            ("actions_dropped", 10),
            ("already_banned", 11),
            ("prefixes_tracked", 12),
            ("prefixes_protected", 13),
        ];
        for (name, value) in expected {
            assert_eq!(get(name), Some(value), "{name}");
        }
        let mut names: Vec<&str> = counters.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), counters.len(), "names are unique");
    }

    #[test]
    fn prometheus_names_and_types() {
        let p = render_prometheus(&sample());
        assert!(p.contains("# TYPE scanban_packets_total counter\nscanban_packets_total 42\n"));
        assert!(p.contains("# TYPE scanban_tracked gauge\nscanban_tracked 7\n"));
        assert!(p.contains("# TYPE scanban_latency_p50_us gauge\nscanban_latency_p50_us NaN\n"));
    }
}
