//! Settings shown as text: a value spelled as `apply` reads it, and the help with its
//! `{default}` filled in from `Settings::default()`, so the help cannot drift from the defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::{Mode, OnExit, OpenPorts, OptionDoc, ProbeVerdict, Protect, Settings};
use crate::duration;

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
                Mode::Bouncer => "bouncer".into(),
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
            "weight-ack" => n(self.weight_ack),
            "weight-sctp" => n(self.weight_sctp),
            "weight-protocol" => n(self.weight_protocol),
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
            "state-every" => d(self.state_every),
            "events" => path(&self.events),
            "stats-file" => Some(self.stats_file.display().to_string()),
            "metrics-file" => path(&self.metrics_file),
            "user" => self.user.clone(),
            "slow-threshold" => n(self.slow_threshold),
            "slow-leak-every" => d(self.slow_leak_every),
            "prefix-threshold" => n(self.prefix_threshold),
            "prefix-leak-every" => d(self.prefix_leak_every),
            "prefix-v4" => n(u32::from(self.prefix_v4)),
            "prefix-v6" => n(u32::from(self.prefix_v6)),
            "protect" => Some(
                match self.protect {
                    Protect::Auto => "auto",
                    Protect::Input => "input",
                    Protect::Forward => "forward",
                    Protect::Both => "both",
                }
                .into(),
            ),
            "lan-interfaces" if self.lan_interfaces.is_empty() => None,
            "lan-interfaces" => Some(self.lan_interfaces.join(",")),
            "lapi-url" => self.lapi_url.clone(),
            // The paths only: the secrets in them are never shown.
            "lapi-credentials" => path(&self.lapi_credentials),
            "lapi-bouncer-key" => path(&self.lapi_bouncer_key),
            "lapi-poll" => d(self.lapi_poll),
            "lapi-max-decisions" => n(self.lapi_max_decisions),
            "lapi-ca" => path(&self.lapi_ca),
            _ => None,
        }
    }
}
