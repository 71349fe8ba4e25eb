//! LAN-side sources (`lan-interfaces`, `ban-lan`): a scanner whose probes reach us from a LAN
//! interface (an infected device behind a router) is reported like a spared source and banned
//! only with `ban-lan`. The interfaces are matched by index: names are read into indexes from
//! /sys/class/net at start, at reload and with the allowlist's periodic refresh (an interface
//! that comes back gets a new index), so a decision costs a few atomic loads, never a syscall.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use log::debug;

/// LAN interfaces matched at most; more are ignored (and said so at debug level).
pub const MAX_LAN_INTERFACES: usize = 16;

/// The LAN interfaces' indexes (0: unused) and whether their scanners are banned.
#[derive(Default)]
pub struct LanSide {
    ifindex: [AtomicU32; MAX_LAN_INTERFACES],
    ban: AtomicBool,
}

impl LanSide {
    /// Reads the indexes of `names` (a missing interface matches nothing until it appears).
    pub fn update(&self, names: &[String], ban: bool) {
        let mut found = names.iter().filter_map(|name| {
            let path = format!("/sys/class/net/{name}/ifindex");
            let index = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok());
            if index.is_none() {
                debug!("lan-interfaces: no interface {name} now");
            }
            index
        });
        for slot in &self.ifindex {
            slot.store(found.next().unwrap_or(0), Ordering::Relaxed);
        }
        if found.next().is_some() {
            debug!("lan-interfaces: only the first {MAX_LAN_INTERFACES} are matched");
        }
        self.ban.store(ban, Ordering::Relaxed);
    }

    /// Whether a packet that came in (or, for an answer, goes out) on `ifindex` is on the LAN side.
    pub fn contains(&self, ifindex: Option<u32>) -> bool {
        let Some(i) = ifindex.filter(|i| *i != 0) else {
            return false;
        };
        self.ifindex.iter().any(|s| s.load(Ordering::Relaxed) == i)
    }

    /// Whether a source reached over `ifindex` is LAN side and, `ban-lan` off, not banned.
    pub fn spares(&self, ifindex: Option<u32>) -> bool {
        !self.bans() && self.contains(ifindex)
    }

    /// Whether LAN-side scanners are banned (`ban-lan`).
    pub fn bans(&self) -> bool {
        self.ban.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_by_name_and_nothing_else_matches() {
        let lan = LanSide::default();
        assert!(!lan.contains(Some(1)), "empty: nothing is LAN side");
        lan.update(&["lo".into(), "no-such-if0".into()], false);
        assert!(lan.contains(Some(1)), "lo is ifindex 1");
        assert!(!lan.contains(Some(2)));
        assert!(!lan.contains(None));
        assert!(!lan.contains(Some(0)), "an unused slot matches no packet");
        assert!(!lan.bans());
        lan.update(&[], true);
        assert!(!lan.contains(Some(1)));
        assert!(lan.bans());
    }
}
