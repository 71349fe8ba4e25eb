//! The ruleset watchdog: what `run` installs, put back within a second if an admin (or a
//! firewall reload) removed part of it, bans included; and the count of probes that failed
//! open, from the sensor's queue-rule counters in the same dump.

use std::sync::atomic::Ordering;
use std::time::Instant;

use log::{error, info, warn};
use nfnl::NlSocket;
use nft::probe::Features;
use nft::{dump, Batch, Family};

use crate::bans;
use crate::ruleset::{self, TABLE};
use crate::settings::Settings;

use super::shared::Shared;

/// Installs (or repairs) what this mode needs in the kernel.
pub fn install(sock: &mut NlSocket, s: &Settings, f: &Features) -> Result<(), nfnl::Error> {
    let parts = ruleset::Parts::for_run(s);
    let rs = ruleset::build(s, f, parts);
    let mut batch = Batch::new();
    rs.install(&mut batch);
    // A sensor chain left by an earlier run (managed, or another `protect`) would keep
    // queueing.
    let unwanted: Vec<&str> = ruleset::SENSOR_CHAINS
        .into_iter()
        .filter(|name| !rs.chains.iter().any(|c| c.name == *name))
        .collect();
    if !unwanted.is_empty() {
        let chains = dump::list_chains(sock, Family::Inet, TABLE).unwrap_or_default();
        for name in unwanted {
            if chains.iter().any(|c| c.name == name) {
                batch.flush_chain(Family::Inet, TABLE, name);
                batch.delete_chain(Family::Inet, TABLE, name);
            }
        }
    }
    batch.send(sock)
}

/// Probes that failed open: the sensor's queue rules matched them (rule counters, read by the
/// watchdog's dump) but scanban never received them, because the queue was full and the kernel
/// let them through. The kernel counts no such packets itself when the queue fails open.
#[derive(Default)]
pub struct FailOpen {
    /// The rule counters' last value, and everything they counted before a reinstall reset them.
    last_counter: u64,
    counted: u64,
    /// `counted - received` at the last log line, to log only what is new.
    logged: u64,
    pub estimate: u64,
}

impl FailOpen {
    /// `counter`: the queue rules' counters now; `received`: packets scanban has received.
    /// The dump comes first, so packets still in flight are rare and only ever delay the count.
    pub fn update(&mut self, counter: u64, received: u64) {
        if counter < self.last_counter {
            // The table was reinstalled: its counters started again from 0.
            self.counted += self.last_counter;
        }
        self.last_counter = counter;
        self.estimate = (self.counted + counter).saturating_sub(received);
    }

    /// New failed-open probes since the last call, for the log.
    pub fn news(&mut self) -> u64 {
        let new = self.estimate.saturating_sub(self.logged);
        self.logged = self.logged.max(self.estimate);
        new
    }
}

/// Puts the ruleset back if part of it is missing. Every chain is dumped, even after one is
/// found changed, so the sensor's counters always reach `failed_open`.
pub fn watchdog(
    sock: &mut NlSocket,
    s: &Settings,
    f: &Features,
    shared: &Shared,
    failed_open: &mut FailOpen,
) {
    let want = ruleset::build(s, f, ruleset::Parts::for_run(s));
    let mut intact = true;
    let mut queued = None;
    for c in &want.chains {
        let have = dump::list_rules(sock, Family::Inet, TABLE, Some(&c.name));
        if let Ok(rules) = &have {
            if ruleset::SENSOR_CHAINS.contains(&c.name.as_str()) {
                *queued.get_or_insert(0) += ruleset::queued_by_rules(rules);
            }
        }
        let wanted = want.rules.iter().filter(|r| r.chain == c.name).count();
        intact &= have.is_ok_and(|r| r.len() == wanted);
    }
    if let Some(queued) = queued {
        failed_open.update(queued, shared.counts.packets.load(Ordering::Relaxed));
    }
    if intact {
        return;
    }
    warn!("table inet {TABLE} was changed from outside: restoring it");
    if let Err(e) = install(sock, s, f) {
        error!("restoring table inet {TABLE}: {e}");
        return;
    }
    shared
        .counts
        .ruleset_repairs
        .fetch_add(1, Ordering::Relaxed);
    if s.dry_run {
        return;
    }
    // Bans already in the sets are rewritten with their remaining time: harmless.
    let bans = match shared.book.lock() {
        Ok(b) => b.remaining(Instant::now()),
        Err(_) => return,
    };
    match bans::add(sock, &bans) {
        Ok(()) => info!("table inet {TABLE} restored with {} ban(s)", bans.len()),
        Err(e) => error!("restoring {} ban(s): {e}", bans.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_open_is_counted_minus_received_across_a_reinstall() {
        let mut f = FailOpen::default();
        f.update(100, 100);
        assert_eq!(f.estimate, 0);
        f.update(300, 250);
        assert_eq!(f.estimate, 50);
        assert_eq!(f.news(), 50);
        assert_eq!(f.news(), 0, "said once");
        // The table was restored: its counters restart from 0, nothing is lost.
        f.update(20, 260);
        assert_eq!(f.estimate, 60);
        assert_eq!(f.news(), 10);
    }
}
