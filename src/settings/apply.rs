//! Settings from text: one setting by name (a flag or a config-file line), a config file, and
//! the checks across settings. Every error names the setting (and the file and line).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::duration;

use super::{Mode, OnExit, OpenPorts, ProbeVerdict, Protect, Settings, MAX_QUEUES, OPTIONS};

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

impl Settings {
    /// Applies one setting by name. Switches take `None`. Long: one arm per setting, in
    /// `OPTIONS` order, so each setting's parsing stands in one place.
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
                    "bouncer" => Mode::Bouncer,
                    other => {
                        return Err(fail(format!("`{other}` is not managed, tail or bouncer")))
                    }
                }
            }
            "queue" => {
                let q: Result<super::QueueRange, _> = v()?.parse();
                self.queue = q.map_err(|e| fail(e.to_string()))?;
            }
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
            "weight-ack" => self.weight_ack = num(0, 1000)?,
            "weight-sctp" => self.weight_sctp = num(0, 1000)?,
            "weight-protocol" => self.weight_protocol = num(0, 1000)?,
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
            "state-every" => self.state_every = dur(Duration::from_secs(10))?,
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
            "slow-threshold" => self.slow_threshold = num(0, 1_000_000)?,
            "slow-leak-every" => self.slow_leak_every = dur(Duration::from_secs(1))?,
            "prefix-threshold" => self.prefix_threshold = num(0, 1_000_000)?,
            "prefix-leak-every" => self.prefix_leak_every = dur(Duration::from_millis(10))?,
            "prefix-v4" => self.prefix_v4 = num(8, 31)? as u8,
            "prefix-v6" => self.prefix_v6 = num(16, 127)? as u8,
            "protect" => {
                self.protect = match v()? {
                    "auto" => Protect::Auto,
                    "input" => Protect::Input,
                    "forward" => Protect::Forward,
                    "both" => Protect::Both,
                    other => {
                        return Err(fail(format!(
                            "`{other}` is not auto, input, forward or both"
                        )))
                    }
                }
            }
            "lan-interfaces" => {
                let text = v()?;
                self.lan_interfaces = if text == "none" {
                    Vec::new()
                } else {
                    // Linux interface names: 1 to 15 bytes, no '/', no whitespace.
                    text.split(',')
                        .map(str::trim)
                        .map(|n| {
                            (!n.is_empty()
                                && n.len() < 16
                                && !n.contains(|c: char| c == '/' || c.is_whitespace()))
                            .then(|| n.to_string())
                        })
                        .collect::<Option<Vec<String>>>()
                        .ok_or_else(|| {
                            fail(format!("`{text}` is not `none` or names like br-lan,wlan0"))
                        })?
                };
            }
            "ban-lan" => self.ban_lan = true,
            "lapi-url" => {
                let text = v()?;
                crate::fleet::lapi::Url::parse(text).map_err(|e| fail(e.to_string()))?;
                self.lapi_url = Some(text.to_string());
            }
            "lapi-credentials" => self.lapi_credentials = Some(PathBuf::from(v()?)),
            "lapi-bouncer-key" => self.lapi_bouncer_key = Some(PathBuf::from(v()?)),
            "lapi-poll" => self.lapi_poll = dur(Duration::from_millis(100))?,
            "lapi-max-decisions" => self.lapi_max_decisions = num(2, super::MAX_REMOTE_DECISIONS)?,
            "lapi-ca" => self.lapi_ca = Some(PathBuf::from(v()?)),
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
        if self.prefix_threshold != 0 && self.prefix_v6 >= self.ipv6_prefix {
            return fail(
                "prefix-v6",
                format!(
                    "/{} is no wider than ipv6-prefix /{}: the prefix tier counts many sources together",
                    self.prefix_v6, self.ipv6_prefix
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
