//! The settings table against its parser: every option documented and accepted, errors that
//! name the line and the setting, ranges, and the config corpus.

use super::*;

#[test]
fn every_documented_option_is_accepted_and_every_accepted_option_documented() {
    for o in OPTIONS {
        let mut s = Settings::default();
        let sample = match o.value {
            None => None,
            Some("managed|tail|bouncer") => Some("tail"),
            Some("N|N-M") => Some("0-3"),
            Some("accept|drop") => Some("drop"),
            Some("auto|socket|proc") => Some("proc"),
            Some("keep|remove") => Some("remove"),
            Some("DURATION") => Some("2h"),
            Some("CIDR") => Some("192.0.2.0/24"),
            Some("PATH") | Some("PATH|-") => Some("/tmp/x"),
            Some("LEN") if o.name == "prefix-v4" => Some("20"),
            Some("LEN") => Some("56"),
            Some("PERCENT") => Some("10"),
            Some("PORT,...|none") => Some("none"),
            Some("NAME") => Some("nobody"),
            Some("BIT") => Some("0x4"),
            Some("auto|input|forward|both") => Some("forward"),
            Some("IFNAME,...|none") => Some("br-lan,wlan0"),
            Some("URL") => Some("http://192.0.2.1:8080"),
            Some(_) => Some("100"),
        };
        s.apply(o.name, sample)
            .unwrap_or_else(|e| panic!("{}: {e}", o.name));
        assert_ne!(s, Settings::default(), "{} changed nothing", o.name);
    }
    assert!(Settings::default().apply("no-such", Some("1")).is_err());
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
    let all = std::fs::read_to_string(root.join("fuzz/corpus/config/all-options.conf")).unwrap();
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
