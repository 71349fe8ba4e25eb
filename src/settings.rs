//! Every setting of the daemon, with its default, its validation, and its one spelling.
//!
//! A setting has one name, used both as a long flag (`--ban-time 2h`) and as a config-file key
//! (`ban-time 2h`): "every option is also a flag" holds by construction, and `OPTIONS` is the
//! single list that `--help`, the config parser and the documentation are made from.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::duration;

/// How scanban gets its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// scanban installs and owns `table inet scanban`, sensor included.
    Managed,
    /// The admin's ruleset queues the packets; scanban only binds and bans.
    Tail,
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

impl std::str::FromStr for QueueRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a queue number or range like 0-3");
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
    pub events: Option<PathBuf>,
    pub stats_file: PathBuf,
    pub metrics_file: Option<PathBuf>,
    /// After setup, `run` continues as this user (keeping CAP_NET_ADMIN only).
    pub user: Option<String>,
    pub verbose: bool,
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
            events: None,
            stats_file: PathBuf::from("/run/scanban/stats"),
            metrics_file: None,
            user: None,
            verbose: false,
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
    opt("mode", "managed|tail", "managed: install table inet scanban with its sensor (default); tail: only bind the queue(s) your own ruleset feeds (`scanban ruleset --mode tail` prints the rule)"),
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
    opt("capacity", "N", "sources tracked at once; the least recently seen is forgotten first (default {default})"),
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
    opt("state-file", "PATH", "save active bans here on exit (and every few minutes) and restore them at start"),
    opt("events", "PATH|-", "append one JSON line per ban to PATH, or stdout with -"),
    opt("stats-file", "PATH", "counters for `scanban status`, rewritten every few seconds (default {default})"),
    opt("metrics-file", "PATH", "the same counters in Prometheus text format"),
    opt("user", "NAME", "after setup, run as this user with CAP_NET_ADMIN only (default: stay root, still with CAP_NET_ADMIN only); the directories of the files it writes are given to it if they are its own (named scanban)"),
    switch("verbose", "debug logging"),
];

/// A setting that could not be applied, naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub name: String,
    pub problem: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.problem)
    }
}

impl std::error::Error for SettingError {}

/// Whether `name` is a switch (takes no value), a setting (takes one), or unknown.
pub fn takes_value(name: &str) -> Option<bool> {
    OPTIONS
        .iter()
        .find(|o| o.name == name)
        .map(|o| o.value.is_some())
}

/// `o`'s help as `--help` and the man page print it, `{default}` filled in from
/// `Settings::default()`.
pub fn help_text(o: &OptionDoc) -> String {
    match Settings::default().value_text(o.name) {
        Some(v) => o.help.replace("{default}", &v),
        None => o.help.to_string(),
    }
}

impl Settings {
    /// A setting's value spelled as `apply` reads it (`1h`, `0x10000000`, `22,2222`), or None
    /// for one with nothing to show (a path not set, a switch, the allowlist).
    pub fn value_text(&self, name: &str) -> Option<String> {
        let d = |d: Duration| Some(duration::Human(d).to_string());
        let n = |n: u32| Some(n.to_string());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        match name {
            "mode" => Some(match self.mode {
                Mode::Managed => "managed".into(),
                Mode::Tail => "tail".into(),
            }),
            "queue" => Some(self.queue.to_string()),
            "verdict" => Some(match self.verdict {
                ProbeVerdict::Accept => "accept".into(),
                ProbeVerdict::Drop => "drop".into(),
            }),
            "open-ports" => Some(match self.open_ports {
                OpenPorts::Auto => "auto".into(),
                OpenPorts::Socket => "socket".into(),
                OpenPorts::Proc => "proc".into(),
            }),
            "copy-range" => n(self.copy_range),
            "queue-max-len" => n(self.queue_max_len),
            "tail-mark" => Some(format!("{:#x}", self.tail_mark)),
            "threshold" => n(self.threshold),
            "weight-privileged" => n(self.weight_privileged),
            "weight-other" => n(self.weight_other),
            "weight-stealth" => n(self.weight_stealth),
            "leak-every" => d(self.leak_every),
            "ipv6-prefix" => n(u32::from(self.ipv6_prefix)),
            "capacity" => n(self.capacity),
            "spare-ports" if self.spare_ports.is_empty() => Some("none".into()),
            "spare-ports" => Some(
                self.spare_ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            "spare-after" => d(self.spare_after),
            "ban-time" => d(self.ban_time),
            "ban-factor" => n(self.ban_factor),
            "ban-max" => d(self.ban_max),
            "offender-memory" => d(self.offender_memory),
            "ban-jitter" => n(self.ban_jitter_percent),
            "ban-rate" => n(self.ban_rate),
            "set-size" => n(self.set_size),
            "on-exit" => Some(match self.on_exit {
                OnExit::Keep => "keep".into(),
                OnExit::Remove => "remove".into(),
            }),
            "state-file" => path(&self.state_file),
            "events" => path(&self.events),
            "stats-file" => Some(self.stats_file.display().to_string()),
            "metrics-file" => path(&self.metrics_file),
            "user" => self.user.clone(),
            _ => None,
        }
    }

    /// Applies one setting by name. Switches take `None`.
    pub fn apply(&mut self, name: &str, value: Option<&str>) -> Result<(), SettingError> {
        let fail = |problem: String| SettingError {
            name: name.to_string(),
            problem,
        };
        let v = || value.ok_or_else(|| fail("needs a value".into()));
        let num = |lo: u32, hi: u32| -> Result<u32, SettingError> {
            let text = v()?;
            text.parse::<u32>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| fail(format!("`{text}` must be a whole number from {lo} to {hi}")))
        };
        let dur = |min: Duration| -> Result<Duration, SettingError> {
            let d = duration::parse(v()?).map_err(|e| fail(e.to_string()))?;
            if d < min {
                return Err(fail(format!("must be at least {}", duration::Human(min))));
            }
            Ok(d)
        };
        match name {
            "mode" => {
                self.mode = match v()? {
                    "managed" => Mode::Managed,
                    "tail" => Mode::Tail,
                    other => return Err(fail(format!("`{other}` is not managed or tail"))),
                }
            }
            "queue" => self.queue = v()?.parse().map_err(fail)?,
            "verdict" => {
                self.verdict = match v()? {
                    "accept" => ProbeVerdict::Accept,
                    "drop" => ProbeVerdict::Drop,
                    other => return Err(fail(format!("`{other}` is not accept or drop"))),
                }
            }
            "open-ports" => {
                self.open_ports = match v()? {
                    "auto" => OpenPorts::Auto,
                    "socket" => OpenPorts::Socket,
                    "proc" => OpenPorts::Proc,
                    other => return Err(fail(format!("`{other}` is not auto, socket or proc"))),
                }
            }
            "copy-range" => self.copy_range = num(64, 65_531)?,
            "queue-max-len" => self.queue_max_len = num(16, 65_536)?,
            "tail-mark" => {
                let text = v()?;
                let n = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => text.parse::<u32>().ok(),
                };
                self.tail_mark = n.filter(|n| n.is_power_of_two()).ok_or_else(|| {
                    fail(format!(
                        "`{text}` is not one bit of the mark, like 0x10000000"
                    ))
                })?;
            }
            "threshold" => self.threshold = num(1, 1_000_000)?,
            "weight-privileged" => self.weight_privileged = num(0, 1000)?,
            "weight-other" => self.weight_other = num(0, 1000)?,
            "weight-stealth" => self.weight_stealth = num(0, 1000)?,
            "leak-every" => self.leak_every = dur(Duration::from_millis(10))?,
            "ipv6-prefix" => self.ipv6_prefix = num(8, 128)? as u8,
            "allow" => self.allow.push(v()?.parse().map_err(fail)?),
            "capacity" => self.capacity = num(16, 16_777_216)?,
            "spare-ports" => {
                let text = v()?;
                self.spare_ports = if text == "none" {
                    Vec::new()
                } else {
                    text.split(',')
                        .map(|p| p.trim().parse::<u16>().ok().filter(|p| *p != 0))
                        .collect::<Option<Vec<u16>>>()
                        .ok_or_else(|| {
                            fail(format!("`{text}` is not `none` or ports like 22,2222"))
                        })?
                };
            }
            "spare-after" => self.spare_after = dur(Duration::ZERO)?,
            "ban-time" => self.ban_time = dur(Duration::from_secs(1))?,
            "ban-factor" => self.ban_factor = num(1, 100)?,
            "ban-max" => self.ban_max = dur(Duration::from_secs(1))?,
            "offender-memory" => self.offender_memory = dur(Duration::ZERO)?,
            "ban-jitter" => self.ban_jitter_percent = num(0, 50)?,
            "ban-rate" => self.ban_rate = num(1, 100_000)?,
            "set-size" => self.set_size = num(16, 16_777_216)?,
            "dry-run" => self.dry_run = true,
            "reset" => self.reset = true,
            "on-exit" => {
                self.on_exit = match v()? {
                    "keep" => OnExit::Keep,
                    "remove" => OnExit::Remove,
                    other => return Err(fail(format!("`{other}` is not keep or remove"))),
                }
            }
            "state-file" => self.state_file = Some(PathBuf::from(v()?)),
            "events" => self.events = Some(PathBuf::from(v()?)),
            "stats-file" => self.stats_file = PathBuf::from(v()?),
            "metrics-file" => self.metrics_file = Some(PathBuf::from(v()?)),
            "user" => {
                let name = v()?;
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(fail(format!("`{name}` is not a user name")));
                }
                self.user = Some(name.to_string());
            }
            "verbose" => self.verbose = true,
            _ => return Err(fail("unknown setting".into())),
        }
        Ok(())
    }

    /// Checks that settings agree with each other.
    pub fn validate(&self) -> Result<(), SettingError> {
        let fail = |name: &str, problem: String| {
            Err(SettingError {
                name: name.into(),
                problem,
            })
        };
        if self.ban_max < self.ban_time {
            return fail(
                "ban-max",
                format!(
                    "{} is shorter than ban-time {}",
                    duration::Human(self.ban_max),
                    duration::Human(self.ban_time)
                ),
            );
        }
        if self.queue.count() > MAX_QUEUES {
            return fail(
                "queue",
                format!(
                    "{} queues: at most {MAX_QUEUES}, one thread each",
                    self.queue.count()
                ),
            );
        }
        Ok(())
    }

    /// Reads a config file's text: one setting per line, `name value` (or `name` for a switch),
    /// `#` starts a comment. Errors name the line and the setting.
    pub fn apply_file(&mut self, text: &str, path: &str) -> Result<(), SettingError> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (name, value) = match line.split_once(char::is_whitespace) {
                Some((n, v)) => (n, Some(v.trim())),
                None => (line, None),
            };
            let at = |e: SettingError| SettingError {
                name: format!("{path}:{}: {}", i + 1, e.name),
                problem: e.problem,
            };
            match takes_value(name) {
                None => {
                    return Err(at(SettingError {
                        name: name.into(),
                        problem: "unknown setting".into(),
                    }))
                }
                Some(false) if value.is_some() => {
                    return Err(at(SettingError {
                        name: name.into(),
                        problem: "is a switch and takes no value".into(),
                    }))
                }
                _ => self.apply(name, value).map_err(at)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_option_is_accepted_and_every_accepted_option_documented() {
        for o in OPTIONS {
            let mut s = Settings::default();
            let sample = match o.value {
                None => None,
                Some("managed|tail") => Some("tail"),
                Some("N|N-M") => Some("0-3"),
                Some("accept|drop") => Some("drop"),
                Some("auto|socket|proc") => Some("proc"),
                Some("keep|remove") => Some("remove"),
                Some("DURATION") => Some("2h"),
                Some("CIDR") => Some("192.0.2.0/24"),
                Some("PATH") | Some("PATH|-") => Some("/tmp/x"),
                Some("LEN") => Some("56"),
                Some("PERCENT") => Some("10"),
                Some("PORT,...|none") => Some("none"),
                Some("NAME") => Some("nobody"),
                Some("BIT") => Some("0x4"),
                Some(_) => Some("100"),
            };
            s.apply(o.name, sample)
                .unwrap_or_else(|e| panic!("{}: {e}", o.name));
            assert_ne!(s, Settings::default(), "{} changed nothing", o.name);
        }
        assert!(Settings::default().apply("no-such", Some("1")).is_err());
    }

    /// `--help` shows every default from the one table: each `{default}` is filled in, and the
    /// text it shows, applied as a setting, is exactly the default (so `--ban-time` says `1h`
    /// because the detector's first ban is an hour). A default shown in words (the choice
    /// marked "default") names the default choice.
    #[test]
    fn help_shows_the_real_defaults() {
        let default = Settings::default();
        for o in OPTIONS {
            let text = help_text(o);
            assert!(!text.contains('{'), "{}: {text}", o.name);
            let Some(value) = default.value_text(o.name) else {
                assert!(!o.help.contains("{default}"), "{} has no default", o.name);
                continue;
            };
            assert!(text.contains(&value), "{}: {text} lacks {value}", o.name);
            let mut s = Settings::default();
            s.apply(o.name, Some(&value)).unwrap();
            assert_eq!(s, default, "{} {value} is not the default", o.name);
        }
        let d = detector::Config::default();
        assert_eq!(default.threshold, d.threshold);
        assert_eq!(default.ban_max.as_millis(), u128::from(d.ban_max_ms));
        let ban_time = OPTIONS.iter().find(|o| o.name == "ban-time").unwrap();
        assert_eq!(help_text(ban_time), "first ban's length (default 1h)");
    }

    /// Every setting's value shows in the spelling `apply` reads back.
    #[test]
    fn values_show_as_they_are_read() {
        let mut s = Settings::default();
        s.apply_file(
            "mode tail\nverdict drop\nopen-ports socket\non-exit remove\nspare-ports none\nqueue 2-5\nuser nobody\n",
            "x.conf",
        )
        .unwrap();
        for o in OPTIONS {
            if let Some(v) = s.value_text(o.name) {
                let mut t = s.clone();
                t.apply(o.name, Some(&v)).unwrap();
                assert_eq!(t, s, "{} {v}", o.name);
            }
        }
    }

    #[test]
    fn config_file_errors_name_the_line_and_setting() {
        let mut s = Settings::default();
        let text = "# comment\nmode tail\nqueue 0-3   # four queues\nallow 192.0.2.0/24\nallow 2001:db8::/32\ndry-run\n";
        s.apply_file(text, "scanban.conf").unwrap();
        assert_eq!(s.mode, Mode::Tail);
        assert_eq!(s.queue, QueueRange { first: 0, last: 3 });
        assert_eq!(s.allow.len(), 2);
        assert!(s.dry_run);

        let e = Settings::default()
            .apply_file("mode managed\nban-time soon\n", "x.conf")
            .unwrap_err();
        assert_eq!(e.name, "x.conf:2: ban-time");
        assert!(e.problem.contains("not a duration"), "{e}");
        let e = Settings::default()
            .apply_file("threshhold 5\n", "x.conf")
            .unwrap_err();
        assert_eq!(e.to_string(), "x.conf:1: threshhold: unknown setting");
        let e = Settings::default()
            .apply_file("dry-run yes\n", "x.conf")
            .unwrap_err();
        assert!(e.problem.contains("switch"));
    }

    #[test]
    fn values_are_range_checked() {
        let mut s = Settings::default();
        assert!(s.apply("ipv6-prefix", Some("129")).is_err());
        assert!(s.apply("queue", Some("3-1")).is_err());
        s.apply("queue", Some("0-65535")).unwrap();
        assert_eq!(s.queue.count(), 65_536, "no wrap to 0");
        assert_eq!(s.validate().unwrap_err().name, "queue");
        s.queue = QueueRange { first: 0, last: 0 };
        assert!(s.apply("spare-ports", Some("22,x")).is_err());
        assert!(s.apply("spare-ports", Some("0")).is_err());
        s.apply("spare-ports", Some("22, 2222")).unwrap();
        assert_eq!(s.spare_ports, [22, 2222]);
        assert!(s.apply("allow", Some("192.0.2.0/33")).is_err());
        assert!(s.apply("threshold", Some("0")).is_err());
        for bad in ["0", "0x3", "0x", "5", "0x100000000", "bit"] {
            assert!(s.apply("tail-mark", Some(bad)).is_err(), "{bad}");
        }
        s.apply("tail-mark", Some("0x80000000")).unwrap();
        assert_eq!(s.tail_mark, 1 << 31);
        s.apply("tail-mark", Some("1024")).unwrap();
        assert_eq!(s.tail_mark, 0x400);
        s.apply("ban-time", Some("2w")).unwrap();
        assert_eq!(s.validate().unwrap_err().name, "ban-max");
    }

    #[test]
    fn cidr_and_queue_range_print_as_parsed() {
        for c in ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32"] {
            assert_eq!(c.parse::<Cidr>().unwrap().to_string(), c);
        }
        assert_eq!("2001:db8::1".parse::<Cidr>().unwrap().len, 128);
        assert_eq!("0-3".parse::<QueueRange>().unwrap().count(), 4);
        assert_eq!("7".parse::<QueueRange>().unwrap().to_string(), "7");
    }

    /// The `config` fuzz corpus (fuzz/corpus/config) and regression inputs (fixtures/fuzz/config)
    /// replayed on stable Rust: every file, and every prefix of it, parses or fails with an
    /// error, never a panic.
    #[test]
    fn config_corpus_replays_without_panicking() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["fuzz/corpus/config", "fixtures/fuzz/config"] {
            if let Ok(d) = std::fs::read_dir(root.join(dir)) {
                files.extend(d.flatten().map(|e| e.path()));
            }
        }
        assert!(files.len() >= 3, "{files:?}");
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            for cut in (0..=text.len()).filter(|c| text.is_char_boundary(*c)) {
                let _ = Settings::default().apply_file(&text[..cut], "corpus.conf");
            }
        }
        let all =
            std::fs::read_to_string(root.join("fuzz/corpus/config/all-options.conf")).unwrap();
        Settings::default()
            .apply_file(&all, "all-options.conf")
            .expect("every option, valid");
        let bad = std::fs::read_to_string(root.join("fuzz/corpus/config/bad-values.conf")).unwrap();
        let e = Settings::default()
            .apply_file(&bad, "bad-values.conf")
            .unwrap_err();
        assert!(
            e.to_string().contains("bad-values.conf:1: threshold"),
            "{e}"
        );
    }
}
