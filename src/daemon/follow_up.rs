//! After the bans are in: one log line (and JSON event) per ban or spared source, and the ban
//! book, on a thread of their own so none of it is in a ban's path.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use detector::evidence::human_ms;
use detector::{Evidence, SourceKey};
use log::{info, warn};

use crate::bans::Ban;
use crate::fleet::lapi::BanAlert;
use crate::json;
use crate::sessions::Aged;

use super::shared::Shared;

/// What an input (or the retry) did with the bans of one batch, for the follow-up thread.
pub struct Report {
    /// The bans written (or, in a dry run, that would have been), and the evidence of each.
    pub written: Vec<Ban>,
    pub evidence: Vec<Evidence>,
    pub spared: Vec<(SourceKey, Evidence, Aged)>,
    /// Scanners on the LAN side (`lan-interfaces`), reported, not banned (`ban-lan` off).
    pub lan_side: Vec<(SourceKey, Evidence)>,
    pub dry_run: bool,
}

/// Gives a report to the follow-up thread without waiting. Only a storm far past any sane ban
/// rate fills the channel; the bans are in the kernel anyway, and a counter says how many went
/// unlogged.
pub fn hand_over(tx: &SyncSender<Report>, shared: &Shared, report: Report) {
    let n = (report.written.len() + report.spared.len() + report.lan_side.len()) as u64;
    if n > 0 && tx.try_send(report).is_err() {
        shared.counts.unlogged.fetch_add(n, Ordering::Relaxed);
    }
}

/// The follow-up thread: until every sender is gone.
pub fn follow_up_bans(rx: Receiver<Report>, shared: &Shared) {
    let mut lan_said = LanSaid::default();
    while let Ok(r) = rx.recv() {
        report(shared, r, &mut lan_said);
    }
}

/// How often one LAN-side source is reported at most: a scanner that is not banned crosses
/// the threshold again and again (every few ports of a fast scan).
const LAN_SIDE_EVERY: Duration = Duration::from_secs(600);
/// Sources remembered for that; past it the oldest reports are forgotten first.
const LAN_SIDE_MAX: usize = 4096;

/// LAN-side sources reported lately (`LAN_SIDE_EVERY`), on the follow-up thread only.
#[derive(Default)]
struct LanSaid {
    when: HashMap<SourceKey, Instant>,
}

impl LanSaid {
    /// Whether `key` is due a report now (and if so, it is noted as reported).
    fn due(&mut self, key: &SourceKey, now: Instant) -> bool {
        if self.when.len() >= LAN_SIDE_MAX {
            self.when
                .retain(|_, t| now.saturating_duration_since(*t) < LAN_SIDE_EVERY);
            if self.when.len() >= LAN_SIDE_MAX {
                self.when.clear();
            }
        }
        match self.when.get(key) {
            Some(t) if now.saturating_duration_since(*t) < LAN_SIDE_EVERY => false,
            _ => {
                self.when.insert(*key, now);
                true
            }
        }
    }
}

/// Logs one batch's bans and records them in the book.
fn report(shared: &Shared, r: Report, lan_said: &mut LanSaid) {
    let events = shared.settings.lock().ok().and_then(|s| s.events.clone());
    let now_ms = shared.now_ms();
    for (key, e, aged) in &r.spared {
        info!(
            "spared {key}: {} has had a session to port {} for {}, open before its scan ({e})",
            aged.peer,
            aged.local_port,
            human_ms(now_ms.saturating_sub(aged.since_ms))
        );
    }
    let now = Instant::now();
    for (key, e) in r.lan_side.iter().filter(|(k, _)| lan_said.due(k, now)) {
        info!("lan side {key}: scanning from a LAN interface, reported, not banned (ban-lan is off): {e}");
        if let Some(path) = &events {
            write_event(path, &lan_side_event(key, e));
        }
    }
    let verb = if r.dry_run { "would ban" } else { "ban" };
    for (b, e) in r.written.iter().zip(&r.evidence) {
        info!("{verb} {} for {}: {e}", b.key, human_ms(b.duration_ms));
        if let Some(path) = &events {
            write_event(path, &event(r.dry_run, b, e));
        }
    }
    if r.dry_run {
        return;
    }
    if let Some(alerts) = &shared.fleet.alerts {
        let unix_ms = crate::fleet::lapi::unix_ms_now();
        for (b, e) in r.written.iter().zip(&r.evidence) {
            alerts.push(BanAlert::new(&b.key, b.duration_ms, e, now_ms, unix_ms));
        }
    }
    if let Ok(mut book) = shared.book.lock() {
        book.written(&r.written, Instant::now());
    }
}

/// One JSON line per ban for log shippers (`--events PATH` or `-`).
fn event(dry_run: bool, b: &Ban, e: &Evidence) -> String {
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let line = json::Object::new()
        .num("time", time)
        .str("event", if dry_run { "would_ban" } else { "ban" })
        .str("source", b.key)
        .num("duration_s", b.duration_ms / 1000)
        .num("offence", u64::from(e.offence));
    event_line(with_evidence(line, e))
}

/// The evidence fields every event carries, in this order.
fn with_evidence(o: json::Object, e: &Evidence) -> json::Object {
    o.num("score", u64::from(e.score))
        .num("distinct_ports", u64::from(e.distinct_ports))
        .strs(
            "ports",
            e.ports().iter().map(|(p, n)| format!("{}/{n}", p.name())),
        )
        .str("evidence", e)
}

fn event_line(o: json::Object) -> String {
    let mut line = o.finish();
    line.push('\n');
    line
}

/// One JSON line per LAN-side scanner reported and not banned.
fn lan_side_event(key: &SourceKey, e: &Evidence) -> String {
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let line = json::Object::new()
        .num("time", time)
        .str("event", "lan_side")
        .str("source", key);
    event_line(with_evidence(line, e))
}

fn write_event(path: &std::path::Path, line: &str) {
    if path.as_os_str() == "-" {
        print!("{line}");
        let _ = std::io::stdout().flush();
        return;
    }
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(mut f) => {
            let _ = f.write_all(line.as_bytes());
        }
        Err(e) => warn!("events file {}: {e}", path.display()),
    }
}
