//! The command line: `scanban [OPTIONS] COMMAND [ARGS]`.
//!
//! Options are the settings of `settings::OPTIONS` (each also a config-file key) plus `-c/--config`,
//! `-v`, `-h`, `-V`. They may stand before or after the command. Settings from the command line
//! override the config file's, whatever their order.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::duration;
use crate::settings::{self, Cidr, SettingError, Settings, OPTIONS};

mod error;

pub use error::UsageError;

/// The default config file; absent is fine, unreadable or invalid is not.
pub const DEFAULT_CONFIG: &str = "/etc/scanban/scanban.conf";

/// Where OpenWrt's init script writes the configuration it makes from UCI: read when the
/// default file is absent, so that `scanban status`, `unban` and the others find the daemon's
/// stats and state files on a router without `-c`.
pub const OPENWRT_CONFIG: &str = "/var/etc/scanban.conf";

/// What `scanban ban` bans: one address, or a list (`--file PATH`, `-` for stdin).
#[derive(Debug, Clone, PartialEq)]
pub enum BanTarget {
    One(Cidr),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run,
    List {
        json: bool,
    },
    Ban {
        target: BanTarget,
        duration: Option<Duration>,
    },
    /// `None`: every ban (`unban --all`).
    Unban {
        target: Option<Cidr>,
    },
    Status {
        json: bool,
    },
    Replay {
        pcap: PathBuf,
        /// `--host ADDR` (repeatable): this host's addresses, instead of inferring them.
        hosts: Vec<std::net::IpAddr>,
    },
    Ruleset,
    Doctor,
    Help,
    Version,
}

#[derive(Debug)]
pub struct Invocation {
    pub command: Command,
    /// `-c PATH`, or None for the default path (read only if it exists).
    pub config: Option<PathBuf>,
    /// Settings given on the command line, in order, applied after the config file.
    pub overrides: Vec<(String, Option<String>)>,
}

impl Invocation {
    /// Defaults, then the config file, then the command line.
    pub fn settings(&self) -> Result<Settings, SettingError> {
        let mut s = Settings::default();
        let found = match &self.config {
            Some(p) => Some(read_config(p)?),
            None => first_config(&[DEFAULT_CONFIG, OPENWRT_CONFIG].map(std::path::Path::new))?,
        };
        if let Some((path, text)) = found {
            s.apply_file(&text, &path.display().to_string())?;
        }
        for (name, value) in &self.overrides {
            s.apply(name, value.as_deref())?;
        }
        s.validate()?;
        Ok(s)
    }
}

fn read_config(path: &std::path::Path) -> Result<(PathBuf, String), SettingError> {
    std::fs::read_to_string(path)
        .map(|text| (path.to_path_buf(), text))
        .map_err(|e| SettingError {
            name: "config".into(),
            problem: format!("{}: {e}", path.display()),
        })
}

/// The first of `paths` that exists; none is fine, one that exists but cannot be read is not.
fn first_config(paths: &[&std::path::Path]) -> Result<Option<(PathBuf, String)>, SettingError> {
    for p in paths {
        match std::fs::read_to_string(p) {
            Ok(text) => return Ok(Some((p.to_path_buf(), text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return read_config(p).map(Some),
        }
    }
    Ok(None)
}

/// The command line. Long: one arm per flag and command, so each is read in one place.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, UsageError> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut command: Option<String> = None;
    let mut positional: Vec<String> = Vec::new();
    let mut config = None;
    let mut overrides = Vec::new();
    let mut json = false;
    let mut ban_for = None;
    let mut ban_file = None;
    let mut all = false;
    let mut hosts = Vec::new();
    let mut help = false;
    let mut version = false;
    while let Some(arg) = p.next().map_err(UsageError::Parser)? {
        match arg {
            Short('h') | Long("help") => help = true,
            Short('V') | Long("version") => version = true,
            Short('v') => overrides.push(("verbose".to_string(), None)),
            Short('c') | Long("config") => config = Some(PathBuf::from(value_of(&mut p)?)),
            Long("json") => json = true,
            Long("all") => all = true,
            Long("file") => ban_file = Some(PathBuf::from(value_of(&mut p)?)),
            Long("host") => {
                let v = value_of(&mut p)?;
                let addr = v.parse::<std::net::IpAddr>().map_err(|_| {
                    UsageError::Address(format!("--host: `{v}` is not an IP address"))
                })?;
                hosts.push(addr);
            }
            Long("for") => {
                let v = value_of(&mut p)?;
                let bad = |problem| UsageError::BadDuration {
                    flag: "--for",
                    problem,
                };
                ban_for = Some(duration::parse(&v).map_err(bad)?);
            }
            Long(name) => {
                let name = name.to_string();
                match settings::takes_value(&name) {
                    Some(true) => {
                        let v = value_of(&mut p)?;
                        overrides.push((name, Some(v)));
                    }
                    Some(false) => overrides.push((name, None)),
                    None => return Err(UsageError::UnknownOption(name)),
                }
            }
            Value(v) => {
                let v = v.string().map_err(|_| UsageError::NotUtf8)?;
                if command.is_none() {
                    command = Some(v);
                } else {
                    positional.push(v);
                }
            }
            other => return Err(UsageError::Parser(other.unexpected())),
        }
    }
    let command = if help {
        Command::Help
    } else if version {
        Command::Version
    } else {
        let cmd = command.ok_or(UsageError::NoCommand)?;
        let command = cmd.clone();
        let one = |what: &'static str| -> Result<String, UsageError> {
            match positional.as_slice() {
                [x] => Ok(x.clone()),
                [] => Err(UsageError::Needs { command, what }),
                _ => Err(UsageError::TakesOnly { command, what }),
            }
        };
        let none = || -> Result<(), UsageError> {
            match positional.first() {
                None => Ok(()),
                Some(x) => Err(UsageError::TakesNone {
                    command: cmd.clone(),
                    got: x.clone(),
                }),
            }
        };
        let address = |text: String| text.parse::<Cidr>().map_err(UsageError::Address);
        match cmd.as_str() {
            "run" => none().map(|_| Command::Run)?,
            "list" => none().map(|_| Command::List { json })?,
            "status" => none().map(|_| Command::Status { json })?,
            "ruleset" => none().map(|_| Command::Ruleset)?,
            "doctor" => none().map(|_| Command::Doctor)?,
            "ban" => Command::Ban {
                target: match ban_file {
                    Some(f) => none().map(|_| BanTarget::File(f))?,
                    None => BanTarget::One(address(one("an address or prefix (or --file PATH)")?)?),
                },
                duration: ban_for,
            },
            "unban" if all => none().map(|_| Command::Unban { target: None })?,
            "unban" => Command::Unban {
                target: Some(address(one("an address or prefix (or --all)")?)?),
            },
            "replay" => Command::Replay {
                pcap: PathBuf::from(one("a pcap file")?),
                hosts,
            },
            other => return Err(UsageError::UnknownCommand(other.to_string())),
        }
    };
    Ok(Invocation {
        command,
        config,
        overrides,
    })
}

fn value_of(p: &mut lexopt::Parser) -> Result<String, UsageError> {
    p.value()
        .map_err(UsageError::Parser)?
        .into_string()
        .map_err(|_| UsageError::NotUtf8)
}

/// The `--help` text, generated from the same table as the config parser.
pub fn help() -> String {
    let mut out = String::from(
        "scanban: detect port scanners through NFQUEUE and ban them in nf_tables\n\n\
         usage: scanban [OPTIONS] COMMAND\n\n\
         commands:\n  \
         run                     detect and ban (managed mode installs table inet scanban)\n  \
         list [--json]           bans in the kernel: address, time left, reason\n  \
         ban ADDR[/LEN] [--for D]  ban by hand (default: ban-time)\n  \
         ban --file PATH [--for D] ban every address in PATH (one per line, # comments;\n  \
         \x20                        - for stdin), in one transaction\n  \
         unban ADDR[/LEN]        lift a ban (works whether the daemon runs or not)\n  \
         unban --all             lift every ban: the escape hatch (the daemon keeps running)\n  \
         status [--json]         counters of the running daemon\n  \
         replay FILE.pcap        what would be banned in a capture, offline\n  \
         \x20 [--host ADDR]...      this host's addresses (repeatable; default: inferred\n  \
         \x20                        from the answers, else from where the probes go)\n  \
         ruleset                 print, in nft syntax, exactly what run installs (tail\n  \
         \x20                        mode: after the queue rule your own chain needs)\n  \
         doctor                  check kernel features and privileges\n\n\
         options (each is also a line `NAME VALUE` in the config file):\n  \
         -c, --config PATH       config file (default /etc/scanban/scanban.conf, else
                           /var/etc/scanban.conf made by OpenWrt's init script, if present)\n  \
         -v                      same as --verbose\n  \
         -h, --help / -V, --version\n",
    );
    for o in OPTIONS {
        let left = match o.value {
            Some(v) => format!("--{} {v}", o.name),
            None => format!("--{}", o.name),
        };
        out.push_str(&format!("  {left:<32} {}\n", settings::help_text(o)));
    }
    out
}

#[cfg(test)]
mod tests;
