//! The command line against its parser, the help text and the man page.

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
    assert_eq!(
        parse_str("replay in.pcap --host 192.0.2.1 --host 2001:db8::1")
            .unwrap()
            .command,
        Command::Replay {
            pcap: "in.pcap".into(),
            hosts: vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()]
        }
    );
    assert!(parse_str("replay in.pcap --host 192.0.2.0/24")
        .unwrap_err()
        .contains("not an IP address"));
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
