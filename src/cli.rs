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

/// The default config file; absent is fine, unreadable or invalid is not.
pub const DEFAULT_CONFIG: &str = "/etc/scanban/scanban.conf";

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
        let (path, required) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => s.apply_file(&text, &path.display().to_string())?,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(SettingError {
                    name: "config".into(),
                    problem: format!("{}: {e}", path.display()),
                })
            }
        }
        for (name, value) in &self.overrides {
            s.apply(name, value.as_deref())?;
        }
        s.validate()?;
        Ok(s)
    }
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, String> {
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
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
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
                ban_for = Some(duration::parse(&v).map_err(|e| format!("--for: {e}"))?);
            }
            Long(name) => {
                let name = name.to_string();
                match settings::takes_value(&name) {
                    Some(true) => {
                        let v = value_of(&mut p)?;
                        overrides.push((name, Some(v)));
                    }
                    Some(false) => overrides.push((name, None)),
                    None => return Err(format!("unknown option --{name} (see scanban --help)")),
                }
            }
            Value(v) => {
                let v = v
                    .string()
                    .map_err(|_| "arguments must be UTF-8".to_string())?;
                if command.is_none() {
                    command = Some(v);
                } else {
                    positional.push(v);
                }
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    let command = if help {
        Command::Help
    } else if version {
        Command::Version
    } else {
        let cmd = command.ok_or("no command given (see scanban --help)")?;
        let one = |what: &str| -> Result<String, String> {
            match positional.as_slice() {
                [x] => Ok(x.clone()),
                [] => Err(format!("`scanban {cmd}` needs {what}")),
                _ => Err(format!("`scanban {cmd}` takes only {what}")),
            }
        };
        let none = || -> Result<(), String> {
            match positional.first() {
                None => Ok(()),
                Some(x) => Err(format!("`scanban {cmd}` takes no argument, got `{x}`")),
            }
        };
        match cmd.as_str() {
            "run" => none().map(|_| Command::Run)?,
            "list" => none().map(|_| Command::List { json })?,
            "status" => none().map(|_| Command::Status { json })?,
            "ruleset" => none().map(|_| Command::Ruleset)?,
            "doctor" => none().map(|_| Command::Doctor)?,
            "ban" => Command::Ban {
                target: match ban_file {
                    Some(f) => none().map(|_| BanTarget::File(f))?,
                    None => BanTarget::One(one("an address or prefix (or --file PATH)")?.parse()?),
                },
                duration: ban_for,
            },
            "unban" if all => none().map(|_| Command::Unban { target: None })?,
            "unban" => Command::Unban {
                target: Some(one("an address or prefix (or --all)")?.parse()?),
            },
            "replay" => Command::Replay {
                pcap: PathBuf::from(one("a pcap file")?),
            },
            other => return Err(format!("unknown command `{other}` (see scanban --help)")),
        }
    };
    Ok(Invocation {
        command,
        config,
        overrides,
    })
}

fn value_of(p: &mut lexopt::Parser) -> Result<String, String> {
    p.value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|_| "arguments must be UTF-8".to_string())
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
         -c, --config PATH       config file (default /etc/scanban/scanban.conf, if present)\n  \
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
        parse(line.split_whitespace().map(OsString::from))
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
