//! The daemon's copy of the bans in the kernel sets, so that it can put them back when an admin
//! (or a firewall reload) deletes the table, and notice bans lifted by `scanban unban` so the
//! detector stops dropping that source's probes.
//!
//! The kernel is the truth: every few seconds the book is replaced by a dump of the sets, keeping
//! only the bans the applier wrote after that dump began (they may be missing from it). The book
//! never holds more than the sets can (`--set-size` per family).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use detector::SourceKey;

use crate::bans::{Ban, Listed};

struct Entry {
    until: Instant,
    comment: String,
    written: Instant,
}

#[derive(Default)]
pub struct BanBook {
    entries: HashMap<SourceKey, Entry>,
}

impl BanBook {
    /// Records bans the kernel has just acknowledged.
    pub fn written(&mut self, bans: &[Ban], now: Instant) {
        for b in bans {
            self.entries.insert(
                b.key,
                Entry {
                    until: now + Duration::from_millis(b.duration_ms),
                    comment: b.comment.clone(),
                    written: now,
                },
            );
        }
    }

    /// Replaces the book with a dump of the sets that began at `dump_began`. Returns the sources
    /// whose ban was lifted from outside: in the book, still running, written before the dump,
    /// and absent from it.
    pub fn reconcile(
        &mut self,
        listed: &[Listed],
        dump_began: Instant,
        now: Instant,
    ) -> Vec<SourceKey> {
        let mut fresh: HashMap<SourceKey, Entry> = listed
            .iter()
            .map(|l| {
                let left = Duration::from_millis(l.expires_ms.or(l.timeout_ms).unwrap_or(0));
                let e = Entry {
                    until: dump_began + left,
                    comment: l.comment.clone().unwrap_or_default(),
                    written: dump_began,
                };
                (l.key, e)
            })
            .collect();
        let mut lifted = Vec::new();
        for (key, e) in self.entries.drain() {
            if fresh.contains_key(&key) {
                continue;
            }
            if e.written >= dump_began {
                fresh.insert(key, e);
            } else if e.until > now + Duration::from_secs(1) {
                lifted.push(key);
            }
        }
        self.entries = fresh;
        lifted
    }

    /// The bans still running, with their remaining time, to write again after the sets were
    /// lost.
    pub fn remaining(&self, now: Instant) -> Vec<Ban> {
        self.entries
            .iter()
            .filter_map(|(key, e)| {
                let left = e.until.checked_duration_since(now)?;
                (left >= Duration::from_secs(1)).then(|| Ban {
                    key: *key,
                    duration_ms: left.as_millis() as u64,
                    comment: e.comment.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(last: u8) -> SourceKey {
        SourceKey::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)), 64)
    }

    fn ban(last: u8, secs: u64) -> Ban {
        Ban {
            key: key(last),
            duration_ms: secs * 1000,
            comment: format!("ban {last}"),
        }
    }

    fn listed(last: u8, left_secs: u64) -> Listed {
        Listed {
            key: key(last),
            timeout_ms: Some(3_600_000),
            expires_ms: Some(left_secs * 1000),
            comment: Some(format!("ban {last}")),
        }
    }

    #[test]
    fn remaining_time_counts_down_and_expired_bans_are_not_restored() {
        let t0 = Instant::now();
        let mut b = BanBook::default();
        b.written(&[ban(1, 60), ban(2, 10)], t0);
        let mut left = b.remaining(t0 + Duration::from_secs(20));
        assert_eq!(left.len(), 1);
        let r = left.pop().unwrap();
        assert_eq!(r.key, key(1));
        assert_eq!(r.duration_ms, 40_000);
        assert_eq!(r.comment, "ban 1");
    }

    #[test]
    fn reconcile_takes_the_kernel_view_and_reports_lifted_bans() {
        let t0 = Instant::now();
        let mut b = BanBook::default();
        b.written(&[ban(1, 3600), ban(2, 3600), ban(3, 5)], t0);
        let dump = t0 + Duration::from_secs(10);
        // Written while the dump ran: not in it, but kept.
        b.written(&[ban(4, 3600)], dump + Duration::from_millis(1));
        // The kernel still has 1 and an admin's ban 9; 2 was unbanned; 3 expired on its own.
        let lifted = b.reconcile(&[listed(1, 3590), listed(9, 100)], dump, dump);
        assert_eq!(lifted, vec![key(2)]);
        let mut keys: Vec<SourceKey> = b.remaining(dump).iter().map(|r| r.key).collect();
        keys.sort_by_key(|k| k.to_string());
        assert_eq!(keys, vec![key(1), key(4), key(9)]);
    }

    #[test]
    fn an_emptied_table_is_not_taken_for_unbans_when_restoring() {
        // The watchdog restores from the book before the next reconcile sees empty sets.
        let t0 = Instant::now();
        let mut b = BanBook::default();
        b.written(&[ban(1, 3600)], t0);
        let restore = b.remaining(t0 + Duration::from_secs(5));
        assert_eq!(restore.len(), 1);
        assert_eq!(restore[0].duration_ms, 3_595_000);
    }
}
