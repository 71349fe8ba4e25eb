//! Every setting of the daemon, with its default, its validation, and its one spelling.
//!
//! A setting has one name, used both as a long flag (`--ban-time 2h`) and as a config-file key
//! (`ban-time 2h`): "every option is also a flag" holds by construction, and `OPTIONS` is the
//! single list that `--help`, the config parser and the documentation are made from.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How scanban gets its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// scanban installs and owns `table inet scanban`, sensor included.
    Managed,
    /// The admin's ruleset queues the packets; scanban only binds and bans.
    Tail,
    /// Only enforces the fleet's decisions (and bans by hand): the ban sets and their drop
    /// rules, no queue, no sensor chain, no detection.
    Bouncer,
}

/// What happens to a queued probe after scanban has looked at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeVerdict {
    /// The host answers as before (RST / port unreachable); nothing changes for real clients.
    Accept,
    /// Stealth: closed ports stop answering.
    Drop,
}

/// How the sensor tells open ports from closed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenPorts {
    /// The nft `socket` expression where the kernel has it, else `Proc`.
    Auto,
    /// The nft `socket` expression (exact: per address and port).
    Socket,
    /// Sets of listening ports kept from /proc/net/{tcp,udp}{,6} every second.
    Proc,
}

/// What `run` does to its table when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    /// Bans stay in the kernel and expire on their own; the sensor rule has `bypass`.
    Keep,
    /// The whole table goes away with the daemon.
    Remove,
}

/// Which traffic the sensor watches: probes of this host (input), answers of the hosts behind
/// it (forward: a router), or both; `Auto` is both where the host forwards (see `crate::protect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protect {
    Auto,
    Input,
    Forward,
    Both,
}

pub use detector::Cidr;

/// The default `tail-mark`: one bit of the packet mark, high enough to stay clear of the bits
/// common tools use (kube-proxy 0x4000/0x8000, mwan3 0x3f00, OpenWrt pbr and Tailscale
/// 0xff0000, Cilium 0x0f00, wg-quick 0xca6c).
pub const TAIL_MARK: u32 = 0x1000_0000;

/// A range of queue numbers, `0` or `0-3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRange {
    pub first: u16,
    pub last: u16,
}

/// Queues one daemon reads at most (a thread and a socket each).
pub const MAX_QUEUES: u32 = 64;

impl QueueRange {
    pub fn count(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }
}

/// Text that is not a queue number or range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQueueRange(String);

impl fmt::Display for BadQueueRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a queue number or range like 0-3", self.0)
    }
}

impl std::str::FromStr for QueueRange {
    type Err = BadQueueRange;

    fn from_str(s: &str) -> Result<Self, BadQueueRange> {
        let bad = || BadQueueRange(s.to_string());
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if last < first {
            return Err(bad());
        }
        Ok(QueueRange { first, last })
    }
}

impl fmt::Display for QueueRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The most remote addresses of a family a bouncer may hold (`lapi-max-decisions`): what each
/// remote-ban set holds (`ruleset::REMOTE_SET_SIZE`).
pub const MAX_REMOTE_DECISIONS: u32 = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    // Packets in.
    pub mode: Mode,
    pub queue: QueueRange,
    pub verdict: ProbeVerdict,
    pub open_ports: OpenPorts,
    pub copy_range: u32,
    pub queue_max_len: u32,
    /// Tail mode: the mark bit added to the packets scanban lets through (NF_REPEAT).
    pub tail_mark: u32,
    // Detection.
    pub threshold: u32,
    pub weight_privileged: u32,
    pub weight_other: u32,
    pub weight_stealth: u32,
    pub weight_ack: u32,
    pub weight_sctp: u32,
    pub weight_protocol: u32,
    pub leak_every: Duration,
    pub ipv6_prefix: u8,
    pub allow: Vec<Cidr>,
    pub capacity: u32,
    /// Local ports whose aged sessions spare their peer (empty: nothing is spared).
    pub spare_ports: Vec<u16>,
    pub spare_after: Duration,
    // Bans.
    pub ban_time: Duration,
    pub ban_factor: u32,
    pub ban_max: Duration,
    pub offender_memory: Duration,
    pub ban_jitter_percent: u32,
    pub ban_rate: u32,
    pub set_size: u32,
    pub dry_run: bool,
    pub reset: bool,
    pub on_exit: OnExit,
    // Files.
    pub state_file: Option<PathBuf>,
    /// How often the state file is compared with the kernel's bans (rewritten if they differ).
    pub state_every: Duration,
    pub events: Option<PathBuf>,
    pub stats_file: PathBuf,
    pub metrics_file: Option<PathBuf>,
    /// After setup, `run` continues as this user (keeping CAP_NET_ADMIN only).
    pub user: Option<String>,
    pub verbose: bool,
    // Slow and distributed scans.
    pub slow_threshold: u32,
    pub slow_leak_every: Duration,
    pub prefix_threshold: u32,
    pub prefix_leak_every: Duration,
    pub prefix_v4: u8,
    pub prefix_v6: u8,
    // Router mode.
    pub protect: Protect,
    /// Interfaces on the LAN side: a scanner behind them is reported, banned only with `ban_lan`.
    pub lan_interfaces: Vec<String>,
    pub ban_lan: bool,
    // The fleet (CrowdSec LAPI).
    /// The LAPI's URL; the machine credentials file's `url` when not set.
    pub lapi_url: Option<String>,
    /// Machine credentials (`cscli machines add -f FILE`): each ban is pushed as an alert.
    pub lapi_credentials: Option<PathBuf>,
    /// A file with the bouncer API key: the decision stream is applied to the kernel sets.
    pub lapi_bouncer_key: Option<PathBuf>,
    /// Time between two polls of the decision stream.
    pub lapi_poll: Duration,
    /// Most remote addresses held per family (and half as many ranges): what bounds a
    /// bouncer's memory whatever the LAPI sends.
    pub lapi_max_decisions: u32,
    /// The CA (PEM) an https LAPI's certificate is checked against (feature `tls`).
    pub lapi_ca: Option<PathBuf>,
}

impl Default for Settings {
    /// Detection and ban defaults are the detector's (`detector::Config::default()`), queue
    /// defaults nfnl's: one table each, which `--help` prints (`help_text`).
    fn default() -> Self {
        let d = detector::Config::default();
        Settings {
            mode: Mode::Managed,
            queue: QueueRange { first: 0, last: 0 },
            verdict: ProbeVerdict::Accept,
            open_ports: OpenPorts::Auto,
            copy_range: nfnl::queue::DEFAULT_COPY_RANGE,
            queue_max_len: nfnl::queue::DEFAULT_MAX_LEN,
            tail_mark: TAIL_MARK,
            threshold: d.threshold,
            weight_privileged: d.weight_privileged,
            weight_other: d.weight_other,
            weight_stealth: d.weight_stealth,
            weight_ack: d.weight_ack,
            weight_sctp: d.weight_sctp,
            weight_protocol: d.weight_protocol,
            leak_every: Duration::from_millis(d.leak_every_ms),
            ipv6_prefix: d.ipv6_prefix,
            allow: Vec::new(),
            capacity: u32::try_from(d.capacity).unwrap_or(u32::MAX),
            spare_ports: vec![22],
            spare_after: Duration::from_secs(120),
            ban_time: Duration::from_millis(d.ban_ms),
            ban_factor: d.ban_factor,
            ban_max: Duration::from_millis(d.ban_max_ms),
            offender_memory: Duration::from_millis(d.offender_memory_ms),
            ban_jitter_percent: d.ban_jitter_percent,
            ban_rate: d.ban_rate,
            set_size: 65_536,
            dry_run: false,
            reset: false,
            on_exit: OnExit::Keep,
            state_file: None,
            state_every: Duration::from_secs(300),
            events: None,
            stats_file: PathBuf::from("/run/scanban/stats"),
            metrics_file: None,
            user: None,
            verbose: false,
            slow_threshold: d.slow_threshold,
            slow_leak_every: Duration::from_millis(d.slow_leak_every_ms),
            prefix_threshold: d.prefix_threshold,
            prefix_leak_every: Duration::from_millis(d.prefix_leak_every_ms),
            prefix_v4: d.prefix_v4,
            prefix_v6: d.prefix_v6,
            protect: Protect::Auto,
            lan_interfaces: Vec::new(),
            ban_lan: false,
            lapi_url: None,
            lapi_credentials: None,
            lapi_bouncer_key: None,
            lapi_poll: Duration::from_secs(1),
            lapi_max_decisions: MAX_REMOTE_DECISIONS,
            lapi_ca: None,
        }
    }
}

/// One setting's documentation: its name, the value it takes (None for a switch) and what it does.
/// `{default}` in `help` stands for the setting's default value, filled in by `help_text`.
pub struct OptionDoc {
    pub name: &'static str,
    pub value: Option<&'static str>,
    pub help: &'static str,
}

const fn opt(name: &'static str, value: &'static str, help: &'static str) -> OptionDoc {
    OptionDoc {
        name,
        value: Some(value),
        help,
    }
}

const fn switch(name: &'static str, help: &'static str) -> OptionDoc {
    OptionDoc {
        name,
        value: None,
        help,
    }
}

pub const OPTIONS: &[OptionDoc] = &[
    opt("mode", "managed|tail|bouncer", "managed: install table inet scanban with its sensor (default); tail: only bind the queue(s) your own ruleset feeds (`scanban ruleset --mode tail` prints the rule); bouncer: no queue and no sensor, only the ban sets that enforce the fleet's decisions"),
    opt("queue", "N|N-M", "queue number(s) to read, one thread each (default {default})"),
    opt("verdict", "accept|drop", "what queued probes get: accept lets the host answer as before (default), drop makes closed ports silent"),
    opt("open-ports", "auto|socket|proc", "how the sensor skips open ports: the nft socket expression, or sets of listening ports read from /proc (auto: socket where the kernel has it)"),
    opt("copy-range", "BYTES", "bytes of each packet copied from the kernel (default {default}: IP and TCP headers with options)"),
    opt("queue-max-len", "N", "packets the kernel holds for scanban; past that, managed mode lets probes through unexamined (fail-open), tail mode drops them (default {default})"),
    opt("tail-mark", "BIT", "tail mode: packets scanban lets through go back to the start of your chain with this mark bit added, which your queue rule must skip (default {default}; see `scanban ruleset --mode tail`)"),
    opt("threshold", "SCORE", "score at which a source is banned (default {default}: 7 privileged or 21 other closed ports)"),
    opt("weight-privileged", "N", "score of a distinct closed port below 1024 (default {default})"),
    opt("weight-other", "N", "score of a distinct closed port from 1024 (default {default})"),
    opt("weight-stealth", "N", "score of a NULL/FIN/XMAS/SYN+FIN/SYN+RST probe (default {default})"),
    opt("leak-every", "DURATION", "a source's score drops by one point per DURATION (default {default})"),
    opt("ipv6-prefix", "LEN", "IPv6 sources are counted and banned by this prefix (default {default})"),
    opt("allow", "CIDR", "never track or ban these sources; repeatable (loopback, link-local and multicast are always allowed)"),
    opt("capacity", "N", "sources tracked at once; when full, one not seen again lately is forgotten first (default {default})"),
    opt("spare-ports", "PORT,...|none", "a source with a TCP session to one of these local ports, open before its scan began and for at least spare-after, is not banned (default {default})"),
    opt("spare-after", "DURATION", "how old such a management session must be (default {default}, sshd's LoginGraceTime)"),
    opt("ban-time", "DURATION", "first ban's length (default {default})"),
    opt("ban-factor", "N", "each repeat ban lasts N times the previous one (default {default})"),
    opt("ban-max", "DURATION", "longest ban (default {default})"),
    opt("offender-memory", "DURATION", "how long a banned source counts as a repeat offender (default {default})"),
    opt("ban-jitter", "PERCENT", "random spread of ban lengths so bans do not all expire together (default {default})"),
    opt("ban-rate", "N", "most new bans per second, against spoofed floods (default {default})"),
    opt("set-size", "N", "most bans the kernel sets hold (default {default})"),
    switch("dry-run", "detect and log what would be banned, ban nothing"),
    switch("reset", "remove existing bans at start (they are kept by default)"),
    opt("on-exit", "keep|remove", "keep the table and its bans when stopping (default), or remove it"),
    opt("state-file", "PATH", "save active bans here and restore them at start; rewritten at stop and every state-every, only when the bans changed"),
    opt("state-every", "DURATION", "how often the state file is brought up to date if the bans changed (default {default}; 1h spares a router's flash)"),
    opt("events", "PATH|-", "append one JSON line per ban to PATH, or stdout with -"),
    opt("stats-file", "PATH", "counters for `scanban status`, rewritten every few seconds (default {default})"),
    opt("metrics-file", "PATH", "the same counters in Prometheus text format"),
    opt("user", "NAME", "after setup, run as this user with CAP_NET_ADMIN only (default: stay root, still with CAP_NET_ADMIN only); the directories of the files it writes are given to it if they are its own (named scanban)"),
    switch("verbose", "debug logging"),
    opt("weight-ack", "N", "score of an ACK, Window or FIN+ACK (Maimon) probe to a closed port; low because a late ACK or FIN of an expired connection looks the same (default {default})"),
    opt("weight-sctp", "N", "score of an SCTP INIT or COOKIE ECHO to a distinct closed port (default {default})"),
    opt("weight-protocol", "N", "score of a distinct IP protocol the host does not serve (nmap -sO; ICMP never counts) (default {default})"),
    opt("slow-threshold", "SCORE", "long-horizon score at which a source is banned: the same weights, leaking far slower, catch scans slower than leak-every (nmap -T1 within 40 probes, -T0 within 4h); never below threshold; 0 turns it off (default {default})"),
    opt("slow-leak-every", "DURATION", "the long-horizon score drops by one point per DURATION (default {default})"),
    opt("prefix-threshold", "SCORE", "score of a whole prefix (ports distinct across its addresses, from at least 4 of them) at which the prefix is banned: a scan spread over many addresses; never a prefix holding an allowed or own address; 0 turns it off (default {default})"),
    opt("prefix-leak-every", "DURATION", "a prefix's score drops by one point per DURATION (default {default})"),
    opt("prefix-v4", "LEN", "IPv4 sources are also counted together by this prefix (default {default})"),
    opt("prefix-v6", "LEN", "IPv6 sources are also counted together by this prefix (default {default})"),
    opt("protect", "auto|input|forward|both", "what the sensor watches: probes of this host (input), the answers of the hosts it routes to (forward: closed ports and unassigned addresses behind a router), or both; auto is both where the host forwards IPv4 or IPv6, else input (default {default})"),
    opt("lan-interfaces", "IFNAME,...|none", "interfaces on the LAN side: a source scanning from behind them (an infected device) is reported as \"lan side\" and banned only with ban-lan (default: none)"),
    switch("ban-lan", "ban LAN-side scanners too (see lan-interfaces)"),
    opt("lapi-url", "URL", "CrowdSec Local API to share bans with, http://ADDR:PORT, an IP address (default: the url in lapi-credentials)"),
    opt("lapi-credentials", "PATH", "machine credentials file from `cscli machines add NAME -f PATH` (chmod 600): each ban is pushed to the LAPI as an alert with its decision"),
    opt("lapi-bouncer-key", "PATH", "file holding the API key from `cscli bouncers add NAME -o raw` (chmod 600): the LAPI's ban decisions are enforced"),
    opt("lapi-poll", "DURATION", "how often the LAPI's decision stream is polled (default {default})"),
    opt("lapi-max-decisions", "N", "most remote addresses held per family, and half as many ranges; further decisions are skipped and counted (default {default}, about 60 bytes each)"),
    opt("lapi-ca", "PATH", "PEM file of the CA that signed an https LAPI's certificate (builds with the tls feature)"),
];

mod apply;
mod show;
pub use show::help_text;
#[cfg(test)]
mod tests;

pub use apply::{takes_value, SettingError};
