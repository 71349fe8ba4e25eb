//! The detector's policy knobs. Defaults come from the detectors admins already trust:
//! scanlogd's weights and threshold (3 per privileged port, 1 otherwise, ban at 21) and
//! CrowdSec's leaky bucket for port scans (one point leaks away per 5 s).
//!
//! `Config::default()` is the one table of these defaults: the daemon's settings start from it,
//! and `scanban --help` and the man page print it.

use crate::allowlist::Cidr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Score at which a source is banned.
    pub threshold: u32,
    /// Weight of a distinct closed port below 1024.
    pub weight_privileged: u32,
    /// Weight of a distinct closed port from 1024.
    pub weight_other: u32,
    /// Weight of a stealth probe (NULL, FIN, XMAS, SYN+FIN, SYN+RST); 7 bans in three.
    pub weight_stealth: u32,
    /// Weight of an ACK-family probe (ACK, Window, FIN+ACK Maimon) to a closed port: low,
    /// since a late ACK or FIN of an expired connection looks the same (one port, though).
    pub weight_ack: u32,
    /// Weight of an SCTP INIT or COOKIE ECHO to a closed port.
    pub weight_sctp: u32,
    /// Weight of a distinct IP protocol the host does not serve (nmap -sO).
    pub weight_protocol: u32,
    /// One point leaks away per this many milliseconds.
    pub leak_every_ms: u64,
    /// IPv6 sources are keyed by this prefix length.
    pub ipv6_prefix: u8,
    pub allow: Vec<Cidr>,
    /// Sources tracked at once; when full, one not seen again since the eviction hand last
    /// passed it is forgotten first (CLOCK: `table`).
    pub capacity: usize,
    /// First ban, in milliseconds.
    pub ban_ms: u64,
    /// A repeat offender's ban is the previous one times this.
    pub ban_factor: u32,
    /// Longest ban, in milliseconds.
    pub ban_max_ms: u64,
    /// How long a banned source is remembered as an offender, in milliseconds.
    pub offender_memory_ms: u64,
    /// Offenders remembered at once.
    pub offender_capacity: usize,
    /// Random spread of ban lengths, in percent either way.
    pub ban_jitter_percent: u32,
    /// New bans per second (shared by detectors that share their limiter).
    pub ban_rate: u32,
    /// Bans that may be issued at once before the rate applies.
    pub ban_burst: u32,
    /// Long-horizon (slow-scan) score at which a source is banned (never below `threshold`);
    /// 0 turns the tier off.
    pub slow_threshold: u32,
    /// One point of the long-horizon score leaks away per this many milliseconds.
    pub slow_leak_every_ms: u64,
    /// Score of a whole prefix (distinct ports probed from any of its addresses) at which the
    /// prefix is banned; 0 turns the distributed-scan tier off.
    pub prefix_threshold: u32,
    /// One point of a prefix's score leaks away per this many milliseconds.
    pub prefix_leak_every_ms: u64,
    /// IPv4 sources are aggregated by this prefix length.
    pub prefix_v4: u8,
    /// IPv6 sources are aggregated by this prefix length.
    pub prefix_v6: u8,
    /// Prefixes tracked at once.
    pub prefix_capacity: usize,
}

impl Config {
    /// Bans that may be issued at once before `ban_rate` applies: two seconds' worth.
    pub fn burst_for(ban_rate: u32) -> u32 {
        ban_rate.saturating_mul(2)
    }

    /// Prefixes tracked for `capacity` tracked sources: a quarter as many.
    pub fn prefix_capacity_for(capacity: usize) -> usize {
        (capacity / 4).max(1)
    }

    /// Offenders remembered for `capacity` tracked sources: a quarter as many.
    pub fn offender_capacity_for(capacity: usize) -> usize {
        capacity / 4
    }
}

impl Default for Config {
    fn default() -> Self {
        const CAPACITY: usize = 65_536;
        const BAN_RATE: u32 = 20;
        Config {
            threshold: 21,
            weight_privileged: 3,
            weight_other: 1,
            weight_stealth: 7,
            weight_ack: 2,
            weight_sctp: 3,
            weight_protocol: 3,
            leak_every_ms: 5_000,
            ipv6_prefix: 64,
            allow: Vec::new(),
            capacity: CAPACITY,
            ban_ms: 3_600_000,
            ban_factor: 2,
            ban_max_ms: 7 * 86_400_000,
            offender_memory_ms: 86_400_000,
            offender_capacity: Config::offender_capacity_for(CAPACITY),
            ban_jitter_percent: 5,
            ban_rate: BAN_RATE,
            ban_burst: Config::burst_for(BAN_RATE),
            // nmap -T1 (a probe per 15 s) is banned within 30 probes, -T0 (one per 5 min)
            // within 45 (3 h 45 min): each distinct port adds at least 1, and a probe every 5
            // min leaks a third of a point. See docs/DETECTION.md.
            slow_threshold: 30,
            slow_leak_every_ms: 900_000,
            // Twice the per-source threshold, counted on ports distinct across the prefix: a
            // NAT's clients retrying the same few closed ports never add up.
            prefix_threshold: 42,
            prefix_leak_every_ms: 30_000,
            prefix_v4: 24,
            prefix_v6: 48,
            prefix_capacity: Config::prefix_capacity_for(CAPACITY),
        }
    }
}
