//! Aged management sessions: the one thing besides the allowlist that spares a source.
//!
//! An admin who runs a scan from the machine they are logged in from must not cut their own SSH
//! session. Holding *any* session must not be an opt-out, though: a scanner can keep an HTTP
//! keep-alive or a pre-authentication SSH connection open as easily as an admin. So a ban is
//! spared only for a source with an established TCP session to a management port (`spare-ports`,
//! default 22) that existed before the scan began and has lasted at least `spare-after`
//! (default 2 min, sshd's LoginGraceTime: an unauthenticated connection is closed by then).
//!
//! The kernel does not say how old a connection is, so this module remembers when it first saw
//! each session in /proc/net/tcp{,6}. Sessions already open when the daemon starts count from
//! the start: an admin's session is spared `spare-after` after the daemon starts at the latest.

use std::collections::HashMap;
use std::net::IpAddr;

use detector::SourceKey;

use crate::hostinfo::Session;

/// A session to a management port and when it was first seen (milliseconds, daemon clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aged {
    pub peer: IpAddr,
    pub local_port: u16,
    pub since_ms: u64,
}

#[derive(Debug, Default)]
pub struct Sessions {
    ports: Vec<u16>,
    min_age_ms: u64,
    first_seen: HashMap<Session, u64>,
}

impl Sessions {
    pub fn new(ports: &[u16], min_age_ms: u64) -> Self {
        Sessions {
            ports: ports.to_vec(),
            min_age_ms,
            first_seen: HashMap::new(),
        }
    }

    /// New settings; what was seen is kept.
    pub fn configure(&mut self, ports: &[u16], min_age_ms: u64) {
        self.ports = ports.to_vec();
        self.min_age_ms = min_age_ms;
        self.first_seen.retain(|s, _| ports.contains(&s.local_port));
    }

    /// Replaces the known sessions with those established now; a session seen before keeps
    /// its first sighting.
    pub fn refresh(&mut self, established: impl IntoIterator<Item = Session>, now_ms: u64) {
        let mut next = HashMap::with_capacity(self.first_seen.len());
        for s in established {
            if self.ports.contains(&s.local_port) {
                let since = self.first_seen.get(&s).copied().unwrap_or(now_ms);
                next.insert(s, since);
            }
        }
        self.first_seen = next;
    }

    /// The session that spares a ban on `key` whose scan began at `scan_began_ms`: one from
    /// inside the key, open before the scan began, and at least `spare-after` old now.
    pub fn sparing(&self, key: &SourceKey, scan_began_ms: u64, now_ms: u64) -> Option<Aged> {
        self.first_seen
            .iter()
            .filter(|(s, since)| {
                key.contains(&s.peer)
                    && **since <= scan_began_ms
                    && now_ms.saturating_sub(**since) >= self.min_age_ms
            })
            .map(|(s, since)| Aged {
                peer: s.peer,
                local_port: s.local_port,
                since_ms: *since,
            })
            .min_by_key(|a| a.since_ms)
    }

    /// Management sessions old enough to spare their peer now (for `scanban status`).
    pub fn aged(&self, now_ms: u64) -> usize {
        self.first_seen
            .values()
            .filter(|since| now_ms.saturating_sub(**since) >= self.min_age_ms)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(peer: &str, local_port: u16) -> Session {
        Session {
            peer: peer.parse().unwrap(),
            peer_port: 50_000,
            local_port,
        }
    }

    fn key(a: &str) -> SourceKey {
        SourceKey::new(a.parse().unwrap(), 64)
    }

    const MIN: u64 = 120_000;

    #[test]
    fn only_an_aged_management_session_open_before_the_scan_spares() {
        let mut s = Sessions::new(&[22], MIN);
        s.refresh([session("192.0.2.10", 22), session("192.0.2.20", 80)], 0);
        // Too young at first.
        assert_eq!(s.sparing(&key("192.0.2.10"), 1_000, 60_000), None);
        s.refresh(
            [session("192.0.2.10", 22), session("192.0.2.20", 80)],
            130_000,
        );
        let spared = s.sparing(&key("192.0.2.10"), 125_000, 130_000);
        assert_eq!(
            spared.map(|a| a.since_ms),
            Some(0),
            "kept its first sighting"
        );
        // A session to any other port (an HTTP keep-alive) spares nothing, however old.
        assert_eq!(s.sparing(&key("192.0.2.20"), 125_000, 130_000), None);
        // A scan that began before the session was first seen is not spared.
        s.refresh([session("192.0.2.30", 22)], 200_000);
        assert_eq!(s.sparing(&key("192.0.2.30"), 150_000, 400_000), None);
        assert!(s.sparing(&key("192.0.2.30"), 250_000, 400_000).is_some());
    }

    #[test]
    fn a_closed_session_is_forgotten_and_starts_again_when_reopened() {
        let mut s = Sessions::new(&[22], MIN);
        s.refresh([session("192.0.2.10", 22)], 0);
        s.refresh([], 10_000);
        s.refresh([session("192.0.2.10", 22)], 20_000);
        assert_eq!(s.sparing(&key("192.0.2.10"), 100_000, 130_000), None);
        assert_eq!(s.aged(130_000), 0);
        assert_eq!(s.aged(140_000), 1);
    }

    #[test]
    fn ipv6_keys_hold_their_peers_and_mapped_peers_are_ipv4() {
        let mut s = Sessions::new(&[22, 2222], MIN);
        s.refresh(
            [
                session("2001:db8:1:2::10", 2222),
                session("::ffff:192.0.2.10", 22),
            ],
            0,
        );
        assert!(s.sparing(&key("2001:db8:1:2::99"), MIN, MIN).is_some());
        assert!(s.sparing(&key("192.0.2.10"), MIN, MIN).is_some());
        s.configure(&[22], MIN);
        assert!(s.sparing(&key("2001:db8:1:2::99"), MIN, MIN).is_none());
    }
}
