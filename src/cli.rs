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
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Invocation, String> {
        parse(line.split_whitespace().map(OsString::from)).map_err(|e| e.to_string())
    }

    #[test]
    fn commands_and_options_anywhere() {
        let inv = parse_str("--queue 0-3 run --verdict drop -v").unwrap();
        assert_eq!(inv.command, Command::Run);
        let s = inv.settings_without_file();
        assert_eq!(s.queue.count(), 4);
        assert!(s.verbose);

        let inv = parse_str("ban 192.0.2.7 --for 2h").unwrap();
        assert_eq!(
            inv.command,
            Command::Ban {
                target: BanTarget::One("192.0.2.7".parse().unwrap()),
                duration: Some(Duration::from_secs(7200))
            }
        );
        assert_eq!(
            parse_str("ban --file /tmp/list").unwrap().command,
            Command::Ban {
                target: BanTarget::File("/tmp/list".into()),
                duration: None
            }
        );
        assert_eq!(
            parse_str("list --json").unwrap().command,
            Command::List { json: true }
        );
        assert_eq!(parse_str("--help").unwrap().command, Command::Help);
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse_str("").unwrap_err().contains("no command"));
        assert!(parse_str("frobnicate")
            .unwrap_err()
            .contains("unknown command"));
        assert!(parse_str("run --bogus 1").unwrap_err().contains("--bogus"));
        assert!(parse_str("ban").unwrap_err().contains("needs an address"));
        assert!(parse_str("ban --file x 192.0.2.7")
            .unwrap_err()
            .contains("takes no argument"));
        assert!(parse_str("ban 192.0.2.300")
            .unwrap_err()
            .contains("not an address"));
        assert!(parse_str("run extra")
            .unwrap_err()
            .contains("takes no argument"));
    }

    #[test]
    fn config_file_then_command_line() {
        let dir = std::env::temp_dir().join(format!("scanban-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("scanban.conf");
        std::fs::write(&conf, "threshold 30\nverdict drop\n").unwrap();
        let c = conf.display().to_string();

        let s = parse_str(&format!("-c {c} run --threshold 40"))
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(s.threshold, 40, "command line wins");
        assert_eq!(
            s.verdict,
            crate::settings::ProbeVerdict::Drop,
            "file applies"
        );

        let e = parse_str(&format!("-c {c} run --threshold 0"))
            .unwrap()
            .settings()
            .unwrap_err();
        assert_eq!(e.name, "threshold");

        let missing = dir.join("missing.conf").display().to_string();
        let e = parse_str(&format!("-c {missing} run"))
            .unwrap()
            .settings()
            .unwrap_err();
        assert_eq!(e.name, "config", "an explicit config file must exist");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_c_the_first_existing_config_is_read() {
        let dir = std::env::temp_dir().join(format!("scanban-first-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (etc, openwrt) = (dir.join("etc.conf"), dir.join("var-etc.conf"));
        let paths = [etc.as_path(), openwrt.as_path()];
        assert!(first_config(&paths).unwrap().is_none(), "none: defaults");
        std::fs::write(&openwrt, "stats-file /var/run/scanban/stats\n").unwrap();
        let (path, text) = first_config(&paths).unwrap().unwrap();
        assert_eq!(
            (path.as_path(), text.as_str()),
            (openwrt.as_path(), "stats-file /var/run/scanban/stats\n")
        );
        std::fs::write(&etc, "threshold 9\n").unwrap();
        assert_eq!(first_config(&paths).unwrap().unwrap().0, etc, "/etc first");
        // A dangling symlink is a file that is not there.
        std::fs::remove_file(&etc).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere"), &etc).unwrap();
        assert_eq!(first_config(&paths).unwrap().unwrap().0, openwrt);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn help_lists_every_option() {
        let h = help();
        for o in OPTIONS {
            assert!(h.contains(&format!("--{}", o.name)), "{}", o.name);
        }
    }

    /// The man page (packaging/scanban.8, installed by the packages) documents every option
    /// with its value and help exactly as `--help` prints them, and every command.
    #[test]
    fn man_page_matches_help() {
        let page = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/scanban.8"),
        )
        .unwrap();
        let roff = |s: &str| s.replace('\\', "\\\\").replace('-', "\\-");
        for o in OPTIONS {
            let head = match o.value {
                Some(v) => format!(".BI \\-\\-{} \" {}\"", roff(o.name), roff(v)),
                None => format!(".B \\-\\-{}", roff(o.name)),
            };
            let entry = format!("{head}\n{}\n", roff(&settings::help_text(o)));
            assert!(
                page.contains(&entry),
                "man page lacks or differs on:\n{entry}"
            );
        }
        let h = help();
        for cmd in [
            "run", "list", "ban", "unban", "status", "replay", "ruleset", "doctor",
        ] {
            assert!(h.contains(&format!("\n  {cmd}")), "help lacks {cmd}");
            assert!(
                page.contains(&format!(".B {cmd}\n"))
                    || page.contains(&format!(".BR {cmd} "))
                    || page.contains(&format!(".BI {cmd} ")),
                "man page lacks the command {cmd}"
            );
        }
    }

    impl Invocation {
        /// Command-line settings alone, for tests that must not read /etc.
        fn settings_without_file(&self) -> Settings {
            let mut s = Settings::default();
            for (n, v) in &self.overrides {
                let _ = s.apply(n, v.as_deref());
            }
            s
        }
    }
}
