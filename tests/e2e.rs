//! The real `scanban run` binary in a server namespace, real nmap (and friends) in an attacker
//! namespace, the real kernel in between (own namespaces, documentation addresses, no default
//! route, bounded traffic, cleanup on failure too).

use std::process::Command;
use std::time::Duration;

use testbed::{wait_for, Testbed, ATTACKER_V4, ATTACKER_V6, SERVER_V4, SERVER_V6};

mod common;
use common::{banned, connect_from, hold_listener, hold_session, nmap, scanban, Daemon};

#[test]
fn a_syn_scan_is_banned_and_the_rest_of_it_sees_nothing() {
    let Some(tb) = Testbed::new("e2esyn") else {
        return;
    };
    let d = Daemon::start(&tb, &[]);
    // No ban yet: no latency figure, rather than a 0.
    let before = d.fresh_stats();
    assert!(
        before.contains("\nban_latency_from_arrival_p50_us unavailable\n")
            && before.contains("\nban_latency_from_receive_p50_us unavailable\n"),
        "{before}"
    );
    let nmap = tb
        .sh(
            &tb.attacker,
            &format!(
                "timeout 120 nmap -n -Pn -sS --max-retries 0 -T4 --max-rtt-timeout 100ms --min-rate 1000 --top-ports 1000 {SERVER_V4} 2>&1"
            ),
        )
        .unwrap();
    assert!(
        banned(&tb, "banned4", ATTACKER_V4),
        "log:\n{}\nnmap:\n{nmap}",
        d.log()
    );
    // Nearly every port nmap tried after the ban got no answer at all.
    let filtered = nmap
        .lines()
        .find_map(|l| l.strip_prefix("Not shown: "))
        .unwrap_or_default()
        .to_string();
    assert!(filtered.contains("filtered"), "nmap:\n{nmap}");
    eprintln!("nmap after the ban:\n{nmap}\nscanban:\n{}", d.log());
    let listing = scanban(&tb, "list");
    assert!(listing.contains(ATTACKER_V4), "{listing}");
    assert!(listing.contains("score"), "the reason is shown: {listing}");
    let log = d.log();
    assert!(log.contains(&format!("ban {ATTACKER_V4} for")), "{log}");
    let events = std::fs::read_to_string(d.dir.join("events")).unwrap();
    assert!(
        events.contains(&format!("\"source\": \"{ATTACKER_V4}\"")),
        "{events}"
    );
    // The stats file (rewritten every second) tells `status` what happened.
    d.fresh_stats();
    let status = scanban(
        &tb,
        &format!("status --stats-file {}", d.dir.join("stats").display()),
    );
    assert!(status.contains("bans_applied"), "{status}");
    // The ban was timed to the kernel's ACK twice: from the receive of its probe's batch, and
    // from the probe's arrival (the kernel's receive timestamp, which the daemon turns on), which
    // adds the probe's wait in the kernel's queue.
    let latency = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    assert_eq!(latency("ban_latency_from_receive_samples"), 1, "{status}");
    let receive = latency("ban_latency_from_receive_p50_us");
    assert!(
        receive > 0 && receive == latency("ban_latency_from_receive_max_us"),
        "{status}"
    );
    assert_eq!(latency("ban_latency_from_arrival_samples"), 1, "{status}");
    assert_eq!(latency("ban_latency_from_arrival_untimed"), 0, "{status}");
    let arrival = latency("ban_latency_from_arrival_p50_us");
    assert!(
        arrival >= receive && arrival == latency("ban_latency_from_arrival_max_us"),
        "{status}"
    );
    let metrics = std::fs::read_to_string(d.dir.join("metrics")).unwrap();
    assert!(
        metrics
            .contains("# TYPE scanban_bans_applied_total counter\nscanban_bans_applied_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn a_client_retrying_a_closed_port_is_never_banned() {
    let Some(tb) = Testbed::new("e2eretry") else {
        return;
    };
    let d = Daemon::start(&tb, &[]);
    tb.sh(
        &tb.attacker,
        &format!("for i in $(seq 20); do timeout 2 bash -c 'exec 3<>/dev/tcp/{SERVER_V4}/9999' 2>/dev/null; done; true"),
    )
    .unwrap();
    assert!(!banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    assert!(
        !d.log().contains(&format!("ban {ATTACKER_V4}")),
        "{}",
        d.log()
    );
}

#[test]
fn an_ipv6_scanner_is_banned_by_its_64_and_a_neighbour_by_its_address() {
    let Some(tb) = Testbed::new("e2ev6") else {
        return;
    };
    // A remote /64, routed through the attacker (no on-link prefix of the server's).
    tb.add_attacker_addr("2001:db8:1::2/64").unwrap();
    tb.add_attacker_addr("2001:db8:1::99/64").unwrap();
    tb.add_attacker_addr("2001:db8::99/64").unwrap();
    tb.add_attacker_addr("2001:db8::77/64").unwrap();
    tb.sh(
        &tb.server,
        "ip -6 route add 2001:db8:1::/64 via 2001:db8::2",
    )
    .unwrap();
    let d = Daemon::start(&tb, &[]);
    let scan = |src: &str| {
        tb.sh(
            &tb.attacker,
            &format!("timeout 120 nmap -6 -n -Pn -sS -S {src} -e veth0 --max-retries 0 -T4 --top-ports 200 {SERVER_V6} >/dev/null 2>&1; true"),
        )
        .unwrap()
    };
    scan("2001:db8:1::2");
    assert!(banned(&tb, "banned6", "2001:db8:1::"), "{}", d.log());
    // Another address of the same /64 is dropped too.
    assert_eq!(
        connect_from(&tb, "2001:db8:1::99", SERVER_V6, 22),
        "timeout",
        "the whole remote /64 is dropped"
    );
    // A neighbour on the server's own on-link /64 is one host: banned alone, and the /64
    // (which holds the server's own address) is never banned. (2001:db8::2 is the server's
    // gateway to the remote /64, so allowlisted.)
    scan("2001:db8::99");
    wait_for(Duration::from_secs(5), || {
        banned(&tb, "banned6_host", "2001:db8::99").then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    assert!(
        !tb.sh(&tb.server, "nft list set inet scanban banned6")
            .unwrap()
            .contains("2001:db8::,"),
        "{}",
        d.log()
    );
    assert!(d.log().contains("on-link neighbour"), "{}", d.log());
    assert_eq!(
        connect_from(&tb, "2001:db8::77", SERVER_V6, 22),
        "refused",
        "the neighbour's neighbour still reaches the host"
    );
    assert_eq!(connect_from(&tb, "2001:db8::99", SERVER_V6, 22), "timeout");
}

#[test]
fn an_allowlisted_admin_is_never_covered_by_a_neighbours_ban() {
    let Some(tb) = Testbed::new("e2eadmin6") else {
        return;
    };
    // Admin and scanner in one remote /64; the admin is allowlisted by address.
    for a in ["2001:db8:1::10/64", "2001:db8:1::66/64"] {
        tb.add_attacker_addr(a).unwrap();
    }
    tb.sh(
        &tb.server,
        "ip -6 route add 2001:db8:1::/64 via 2001:db8::2",
    )
    .unwrap();
    let d = Daemon::start(&tb, &["--allow", "2001:db8:1::10"]);
    tb.sh(
        &tb.attacker,
        &format!("timeout 120 nmap -6 -n -Pn -sS -S 2001:db8:1::66 -e veth0 --max-retries 0 -T4 --top-ports 200 {SERVER_V6} >/dev/null 2>&1; true"),
    )
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        banned(&tb, "banned6_host", "2001:db8:1::66").then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    assert!(
        d.log().contains("its prefix holds a protected address"),
        "{}",
        d.log()
    );
    assert_eq!(
        connect_from(&tb, "2001:db8:1::10", SERVER_V6, 22),
        "refused",
        "the admin still reaches the host"
    );
    assert_eq!(
        connect_from(&tb, "2001:db8:1::66", SERVER_V6, 22),
        "timeout"
    );
}

#[test]
fn bans_survive_a_restart_and_a_deleted_table_comes_back() {
    let Some(tb) = Testbed::new("e2erestart") else {
        return;
    };
    let mut d = Daemon::start(&tb, &[]);
    scanban(&tb, "ban 198.51.100.9 --for 1h");
    assert!(banned(&tb, "banned4", "198.51.100.9"));
    assert!(d.stop(), "clean exit on SIGTERM:\n{}", d.log());
    assert!(
        banned(&tb, "banned4", "198.51.100.9"),
        "bans live in the kernel"
    );
    let d = Daemon::start(&tb, &[]);
    assert!(d.log().contains("1 existing ban"), "{}", d.log());
    // A ban the daemon decided itself, besides the one it found.
    nmap(&tb, &format!("-sS --top-ports 100 {SERVER_V4}"));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    // The daemon reads its bans back from the kernel every 2 s.
    std::thread::sleep(Duration::from_millis(2500));
    // An admin deletes the table: the daemon restores it, bans included, within a second or so
    // (the watchdog looks once a second). The time is printed for the closing note; the bound
    // here is only "not lost".
    let deleted = std::time::Instant::now();
    tb.sh(&tb.server, "nft delete table inet scanban").unwrap();
    wait_for(Duration::from_secs(5), || {
        (banned(&tb, "banned4", "198.51.100.9") && banned(&tb, "banned4", ATTACKER_V4))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("table and bans restored:\n{}", d.log()));
    eprintln!(
        "table deletion: restored with its bans after {} ms",
        deleted.elapsed().as_millis()
    );
    let sensor = tb
        .sh(&tb.server, "nft list chain inet scanban sensor")
        .unwrap();
    assert!(sensor.contains("queue"), "{sensor}");
    let set = tb
        .sh(&tb.server, "nft list set inet scanban banned4")
        .unwrap();
    assert!(
        set.contains("banned by hand"),
        "comments come back too: {set}"
    );
    // A flushed drop chain comes back as well.
    tb.sh(&tb.server, "nft flush chain inet scanban prerouting")
        .unwrap();
    wait_for(Duration::from_secs(5), || {
        tb.sh(&tb.server, "nft list chain inet scanban prerouting")
            .ok()
            .filter(|t| t.contains("@banned4") && t.contains("drop"))
    })
    .unwrap_or_else(|| panic!("drop rules restored:\n{}", d.log()));
    assert!(d.log().contains("restored with 2 ban(s)"), "{}", d.log());
}

#[test]
fn a_scanner_unbanned_by_hand_is_seen_afresh() {
    let Some(tb) = Testbed::new("e2eunban") else {
        return;
    };
    let d = Daemon::start(&tb, &[]);
    nmap(&tb, &format!("-sS --top-ports 100 {SERVER_V4}"));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    assert!(scanban(&tb, &format!("unban {ATTACKER_V4}")).contains("unbanned"));
    // The daemon notices within its 2 s reconcile and forgets its own "already banned" state;
    // otherwise it would keep dropping the source's probes in the queue without a ban.
    wait_for(Duration::from_secs(5), || {
        d.log().contains("unbanned from outside").then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    let out = nmap(&tb, &format!("-sS -p 1-30 {SERVER_V4}"));
    assert!(
        out.contains("closed"),
        "the host answers the scanner again: {out}"
    );
    assert!(
        banned(&tb, "banned4", ATTACKER_V4),
        "banned again: {}",
        d.log()
    );
}

#[test]
fn run_keeps_only_cap_net_admin() {
    let Some(tb) = Testbed::new("e2ecaps") else {
        return;
    };
    let d = Daemon::start(&tb, &[]);
    let pid = d.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    // CAP_NET_ADMIN is bit 12.
    for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(field(set), "0000000000001000", "{set}\n{status}");
    }
    assert_eq!(field("CapInh:"), "0000000000000000", "{status}");
    assert_eq!(field("CapAmb:"), "0000000000000000", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    // Every thread, not only the main one (capabilities are per thread).
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        assert!(t.contains("CapEff:\t0000000000001000"), "{t}");
    }
    // And it still does its job with what it kept.
    nmap(&tb, &format!("-sS --top-ports 100 {SERVER_V4}"));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
}

#[test]
fn run_as_a_user_is_no_longer_root_and_still_bans() {
    let Some(tb) = Testbed::new("e2euser") else {
        return;
    };
    // Its own directory (named scanban, created by the daemon, given to the user) for the
    // stats; the harness's directories are root's, so the daemon says it cannot write there.
    let base = std::env::temp_dir().join(format!("scanban-user-{}", std::process::id()));
    let stats = base.join("scanban").join("stats");
    let d = Daemon::start(
        &tb,
        &["--user", "nobody", "--stats-file", stats.to_str().unwrap()],
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), "65534 65534 65534 65534", "{status}");
    assert_eq!(field("Groups:"), "65534", "{status}");
    assert_eq!(field("CapEff:"), "0000000000001000", "{status}");
    assert_eq!(field("CapBnd:"), "0000000000001000", "{status}");
    assert!(d.log().contains("running as user nobody"), "{}", d.log());
    assert!(
        d.log().contains("not writable by user nobody"),
        "{}",
        d.log()
    );
    nmap(&tb, &format!("-sS --top-ports 100 {SERVER_V4}"));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    let text = wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&stats)
            .ok()
            .filter(|t| t.contains("\nbans_applied 1\n"))
    })
    .unwrap_or_else(|| panic!("stats not written as nobody: {}", d.log()));
    assert!(text.contains("pid "), "{text}");
    drop(d);
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn stealth_and_udp_scans_are_banned() {
    let Some(tb) = Testbed::new("e2estealth") else {
        return;
    };
    tb.add_attacker_addr("192.0.2.3/24").unwrap();
    let d = Daemon::start(&tb, &[]);
    nmap(&tb, &format!("-sF --top-ports 100 {SERVER_V4}"));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    assert!(d.log().contains("stealth FIN"), "{}", d.log());
    nmap(
        &tb,
        &format!("-sU -S 192.0.2.3 -e veth0 --top-ports 50 {SERVER_V4}"),
    );
    assert!(banned(&tb, "banned4", "192.0.2.3"), "{}", d.log());
    assert!(d.log().contains("udp/"), "{}", d.log());
}

#[test]
fn tail_mode_binds_the_admins_own_queue_rule() {
    let Some(tb) = Testbed::new("e2etail") else {
        return;
    };
    // Another queue and another mark bit than the defaults, in a chain whose policy accepts.
    let rules = documented_tail_rules("--queue-num 3", "0x00000004");
    let printed = scanban(&tb, "ruleset --mode tail --queue 3 --tail-mark 0x4");
    for rule in &rules {
        assert!(printed.contains(rule), "{rule}\nnot in:\n{printed}");
    }
    // The nft form is valid nft: the kernel takes it, or, where it has no nft `queue`
    // expression (kernels that need the iptables-nft form), refuses only that expression.
    let nft_rule = printed
        .lines()
        .find_map(|l| l.strip_prefix("#   ct state "))
        .map(|r| format!("ct state {r}"))
        .unwrap_or_else(|| panic!("no nft rule in:\n{printed}"));
    assert!(
        nft_rule.ends_with("meta mark & 0x00000004 == 0 queue num 3"),
        "{nft_rule}"
    );
    let check = tb
        .exec(
            &tb.server,
            &[
                "bash",
                "-c",
                &format!(
                    "nft add table inet adm && nft add chain inet adm in \
                     '{{ type filter hook input priority 0; }}' && \
                     nft -c add rule inet adm in '{nft_rule}'; e=$?; nft delete table inet adm; exit $e"
                ),
            ],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&check.stderr);
    let native = scanban(&tb, "doctor; true").contains("native nft queue");
    assert!(
        check.status.success()
            || (!native && err.contains("No such file or directory") && err.contains("^^^^^")),
        "{nft_rule}: {err}"
    );
    tb.sh(&tb.server, &rules.join(" && ")).unwrap();
    let d = Daemon::start(
        &tb,
        &["--mode", "tail", "--queue", "3", "--tail-mark", "0x4"],
    );
    let chains = tb.sh(&tb.server, "nft list table inet scanban").unwrap();
    assert!(
        !chains.contains("sensor"),
        "tail mode installs no sensor: {chains}"
    );
    assert!(d.log().contains("mark bit 0x4"), "{}", d.log());
    nmap(&tb, &format!("-sS --top-ports 200 {SERVER_V4}"));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    assert!(!d.log().contains("came back"), "{}", d.log());
}

#[test]
fn a_tail_rule_that_does_not_skip_the_mark_fails_closed_and_says_so() {
    let Some(tb) = Testbed::new("e2etailloop") else {
        return;
    };
    listen(&tb, 8080);
    // The rule the documentation gave before: no mark test (and no bypass). The policy accepts.
    tb.sh(
        &tb.server,
        "iptables-nft -A INPUT -p tcp -m conntrack --ctstate NEW -j NFQUEUE --queue-num 0",
    )
    .unwrap();
    let d = Daemon::start(&tb, &["--mode", "tail"]);
    // Let through once, the SYN comes back to the queue with the bit: repeating it again would
    // loop forever and accepting it would skip the admin's rules, so it is dropped.
    assert!(!connects(&tb, SERVER_V4, 8080), "{}", d.log());
    wait_for(Duration::from_secs(5), || {
        d.log()
            .contains("came back with mark bit 0x10000000")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    assert!(d.stat("packets") >= 2, "{}", d.log());
}

/// The tail-mode queue rules as scanban documents them (README, docs/DEPLOYMENT.md and
/// `scanban ruleset --mode tail`), in their iptables-nft form for IPv4, which works with or
/// without the nft `queue` expression. `queue` is `--queue-num N` or `--queue-balance N:M`.
fn documented_tail_rules(queue: &str, mark: &str) -> Vec<String> {
    vec![format!(
        "iptables-nft -A INPUT -m conntrack --ctstate NEW,INVALID \
         -m mark ! --mark {mark}/{mark} -j NFQUEUE {queue}"
    )]
}

/// An admin's drop-policy input chains, IPv4 and IPv6: loopback, established and SSH (port 22)
/// accepted (and ICMPv6, for neighbour discovery), then `tail` (the iptables-nft queue rules,
/// also given to ip6tables-nft), then the policy drops the rest.
fn drop_policy_firewall(tb: &Testbed, tail: &[String]) {
    let mut script = Vec::new();
    for cmd in ["iptables-nft", "ip6tables-nft"] {
        script.push(format!("{cmd} -P INPUT DROP"));
        script.push(format!("{cmd} -A INPUT -i lo -j ACCEPT"));
        if cmd == "ip6tables-nft" {
            script.push(format!("{cmd} -A INPUT -p ipv6-icmp -j ACCEPT"));
        }
        script.push(format!(
            "{cmd} -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
        ));
        script.push(format!("{cmd} -A INPUT -p tcp --dport 22 -j ACCEPT"));
        for rule in tail {
            script.push(rule.replacen("iptables-nft", cmd, 1));
        }
    }
    tb.sh(&tb.server, &script.join(" && ")).unwrap();
}

/// A TCP listener on the server's `port` (IPv4 and IPv6), for at most two minutes, up when
/// this returns.
fn listen(tb: &Testbed, port: u16) {
    tb.sh(
        &tb.server,
        &format!("nohup timeout 120 python3 -m http.server {port} --bind :: >/dev/null 2>&1 &"),
    )
    .unwrap();
    wait_for(Duration::from_secs(10), || {
        tb.sh(&tb.server, &format!("ss -Hltn 'sport = :{port}'"))
            .ok()
            .filter(|o| !o.trim().is_empty())
    })
    .unwrap_or_else(|| panic!("listener on {port}"));
}

/// Whether a TCP connection from the attacker to `addr` `port` is established within 2 s (a
/// SYN dropped by the policy never is; an answered one takes milliseconds).
fn connects(tb: &Testbed, addr: &str, port: u16) -> bool {
    tb.exec(
        &tb.attacker,
        &[
            "timeout",
            "2",
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{addr}/{port}"),
        ],
    )
    .unwrap()
    .status
    .success()
}

/// Over IPv4 and IPv6, port 22 is reachable (within 10 s) and port 8080 is not.
fn policy_holds(tb: &Testbed, when: &str, log: &dyn Fn() -> String) {
    for addr in [SERVER_V4, SERVER_V6] {
        wait_for(Duration::from_secs(10), || {
            connects(tb, addr, 22).then_some(())
        })
        .unwrap_or_else(|| panic!("{addr} port 22 unreachable {when}:\n{}", log()));
        assert!(
            !connects(tb, addr, 8080),
            "{addr} port 8080, closed by the policy, accepted a connection {when}:\n{}",
            log()
        );
    }
}

#[test]
fn tail_mode_keeps_a_drop_policy_closed_with_the_daemon_up_stopped_and_restarting() {
    let Some(tb) = Testbed::new("e2etaildrop") else {
        return;
    };
    listen(&tb, 22);
    listen(&tb, 8080);
    drop_policy_firewall(&tb, &documented_tail_rules("--queue-num 0", "0x10000000"));
    let none = || String::new();
    policy_holds(
        &tb,
        "before scanban ever ran (no bypass: fails closed)",
        &none,
    );

    let mut d = Daemon::start(&tb, &["--mode", "tail"]);
    policy_holds(&tb, "with the daemon up", &|| d.log());
    // The SYNs to 8080 went through scanban (and came back to the policy), not around it.
    wait_for(Duration::from_secs(5), || {
        (d.stat("packets") > 0).then_some(())
    })
    .unwrap_or_else(|| panic!("nothing was queued:\n{}", d.log()));
    assert!(d.stop(), "{}", d.log());
    policy_holds(&tb, "with the daemon stopped", &none);

    // SYNs to 8080 all along while the daemon starts, is killed and starts again: none may be
    // answered with a SYN-ACK. Bounded: until the stop file appears, 90 s at most.
    let stop = d.dir.with_extension("stop");
    let probes = {
        let ns = tb.attacker.clone();
        let stop = stop.display().to_string();
        std::thread::spawn(move || {
            Command::new("ip")
                .args(["netns", "exec", &ns, "timeout", "90", "bash", "-c"])
                .arg(format!(
                    "sent=0; open=0; while [ ! -e {stop} ]; do \
                     out=$(hping3 -S -p 8080 -c 20 -i u10000 {SERVER_V4} 2>&1); \
                     open=$((open + $(grep -c 'flags=SA' <<<\"$out\"))); sent=$((sent + 20)); \
                     done; echo \"$sent $open\""
                ))
                .output()
        })
    };
    let mut d = Daemon::start(&tb, &["--mode", "tail"]);
    policy_holds(&tb, "after a restart", &|| d.log());
    d.kill9();
    policy_holds(&tb, "with the daemon killed", &none);
    let d = Daemon::start(&tb, &["--mode", "tail"]);
    policy_holds(&tb, "after a second restart", &|| d.log());
    std::fs::write(&stop, "").unwrap();
    let out = probes.join().unwrap().unwrap();
    let _ = std::fs::remove_file(&stop);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let counts: Vec<u64> = text
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        counts.len() == 2 && counts[0] >= 10,
        "probes ran: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        counts[1], 0,
        "SYN-ACKs from 8080 across the restarts: {text}"
    );
    eprintln!("SYNs to 8080 across the restarts, then SYN-ACKs: {text}");

    // And scanban still does its job from behind the policy.
    nmap(&tb, &format!("-sS --top-ports 100 {SERVER_V4}"));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    // The rules this test installed are the ones scanban prints for tail mode.
    let printed = scanban(&tb, "ruleset --mode tail");
    for rule in documented_tail_rules("--queue-num 0", "0x10000000") {
        assert!(printed.contains(&rule), "{rule}\nnot in:\n{printed}");
    }
}

#[test]
fn the_tail_rule_queues_null_fin_and_xmas_probes() {
    let Some(tb) = Testbed::new("e2etailstealth") else {
        return;
    };
    tb.add_attacker_addr("192.0.2.3/24").unwrap();
    tb.add_attacker_addr("192.0.2.4/24").unwrap();
    let printed = scanban(&tb, "ruleset --mode tail");
    let rules = documented_tail_rules("--queue-num 0", "0x10000000");
    for rule in &rules {
        assert!(printed.contains(rule), "{rule}\nnot in:\n{printed}");
    }
    drop_policy_firewall(&tb, &rules);
    let d = Daemon::start(&tb, &["--mode", "tail"]);
    // Conntrack calls these `invalid`, not `new`: a rule on `ct state new` never sees them.
    for (scan, source, name) in [
        ("-sN", ATTACKER_V4, "NULL"),
        ("-sF", "192.0.2.3", "FIN"),
        ("-sX", "192.0.2.4", "XMAS"),
    ] {
        nmap(
            &tb,
            &format!("{scan} -S {source} -e veth0 --top-ports 20 {SERVER_V4}"),
        );
        assert!(banned(&tb, "banned4", source), "{scan}:\n{}", d.log());
        let line = d.ban_line(source);
        assert!(line.contains(&format!("stealth {name}")), "{line}");
    }
}

#[test]
fn dry_run_logs_and_bans_nothing() {
    let Some(tb) = Testbed::new("e2edry") else {
        return;
    };
    let d = Daemon::start(&tb, &["--dry-run"]);
    let table = tb.sh(&tb.server, "nft list table inet scanban").unwrap();
    assert!(table.contains("chain sensor"), "the sensor alone: {table}");
    assert!(
        !table.contains("banned4") && !table.contains("prerouting"),
        "{table}"
    );
    let out = nmap(&tb, &format!("-sS --top-ports 200 {SERVER_V4}"));
    wait_for(Duration::from_secs(5), || {
        d.log()
            .contains(&format!("would ban {ATTACKER_V4}"))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    let table = tb.sh(&tb.server, "nft list table inet scanban").unwrap();
    assert!(!table.contains("banned4"), "{table}");
    // A dry run changes no verdict: every probe, after the "would ban" too, was answered.
    assert!(
        out.contains("200 closed") && !out.contains("filtered"),
        "{out}"
    );
    assert_eq!(connect_from(&tb, ATTACKER_V4, SERVER_V4, 23), "refused");
}

#[test]
fn an_invalid_configuration_exits_2_and_touches_nothing() {
    let Some(tb) = Testbed::new("e2econf") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("scanban-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "threshold 21\nban-time soon\n").unwrap();
    let out = tb
        .exec(
            &tb.server,
            &[
                env!("CARGO_BIN_EXE_scanban"),
                "-c",
                conf.to_str().unwrap(),
                "run",
            ],
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.conf:2: ban-time"), "{err}");
    // Unreadable: missing, or a directory where a file should be.
    for path in [dir.join("missing.conf"), dir.clone()] {
        let out = tb
            .exec(
                &tb.server,
                &[
                    env!("CARGO_BIN_EXE_scanban"),
                    "-c",
                    path.to_str().unwrap(),
                    "run",
                ],
            )
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", path.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(path.to_str().unwrap()), "{err}");
    }
    // A queue range past what one daemon reads is a usage error too (it once wrapped to 0).
    let out = tb
        .exec(
            &tb.server,
            &[env!("CARGO_BIN_EXE_scanban"), "run", "--queue", "0-65535"],
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("65536 queues"));
    let tables = tb.sh(&tb.server, "nft list tables").unwrap();
    assert!(tables.trim().is_empty(), "{tables}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_aged_management_session_spares_an_admin_and_nothing_else_does() {
    let Some(tb) = Testbed::new("e2espare") else {
        return;
    };
    for a in ["192.0.2.3/24", "192.0.2.4/24"] {
        tb.add_attacker_addr(a).unwrap();
    }
    // A "management" service on 2222 and a web server on 8080, both holding their sessions.
    hold_listener(&tb, SERVER_V4, 2222, 90);
    hold_listener(&tb, SERVER_V4, 8080, 90);
    let d = Daemon::start(
        &tb,
        &[
            "--allow",
            "192.0.2.2",
            "--spare-ports",
            "2222",
            "--spare-after",
            "2s",
        ],
    );
    // The admin (192.0.2.3) is logged in; the attacker (192.0.2.4) holds an HTTP keep-alive.
    hold_session(&tb, "192.0.2.3", SERVER_V4, 2222, 60);
    hold_session(&tb, "192.0.2.4", SERVER_V4, 8080, 60);
    // Both sessions age; only the admin's is to a management port.
    wait_for(Duration::from_secs(20), || {
        (d.stat("management_sessions_aged") >= 1).then_some(())
    })
    .unwrap_or_else(|| panic!("the admin's session never aged:\n{}", d.log()));
    nmap(
        &tb,
        &format!("-sS --top-ports 200 -S 192.0.2.3 -e veth0 {SERVER_V4}"),
    );
    nmap(
        &tb,
        &format!("-sS --top-ports 200 -S 192.0.2.4 -e veth0 {SERVER_V4}"),
    );
    nmap(&tb, &format!("-sS --top-ports 200 {SERVER_V4}"));
    wait_for(Duration::from_secs(5), || {
        (d.log().contains("spared 192.0.2.3") && banned(&tb, "banned4", "192.0.2.4")).then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    assert!(!banned(&tb, "banned4", "192.0.2.3"), "{}", d.log());
    assert!(
        !d.log().contains("spared 192.0.2.4"),
        "a keep-alive is no opt-out: {}",
        d.log()
    );
    assert!(
        !banned(&tb, "banned4", ATTACKER_V4),
        "allowlisted: {}",
        d.log()
    );
    // The admin's probes were not dropped as if banned: the host still answers them.
    assert_eq!(connect_from(&tb, "192.0.2.3", SERVER_V4, 23), "refused");
}

#[test]
fn a_fresh_session_to_the_management_port_is_no_opt_out() {
    let Some(tb) = Testbed::new("e2efresh") else {
        return;
    };
    // An attacker opens an SSH-like session (sshd would close it unauthenticated after 2 min)
    // and scans while it is young: default spare-after.
    hold_listener(&tb, SERVER_V4, 22, 60);
    let d = Daemon::start(&tb, &[]);
    hold_session(&tb, ATTACKER_V4, SERVER_V4, 22, 30);
    nmap(&tb, &format!("-sS --top-ports 200 {SERVER_V4}"));
    wait_for(Duration::from_secs(5), || {
        banned(&tb, "banned4", ATTACKER_V4).then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    assert!(!d.log().contains("spared"), "{}", d.log());
}

#[test]
fn bans_expire_and_repeat_offenders_stay_out_longer() {
    let Some(tb) = Testbed::new("e2eexpire") else {
        return;
    };
    let d = Daemon::start(
        &tb,
        &["--ban-time", "2s", "--ban-jitter", "0", "--ban-max", "1h"],
    );
    nmap(&tb, &format!("-sS --top-ports 100 {SERVER_V4}"));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    wait_for(Duration::from_secs(10), || {
        (!banned(&tb, "banned4", ATTACKER_V4)).then_some(())
    })
    .expect("the 2 s ban expires");
    nmap(&tb, &format!("-sS --top-ports 100 {SERVER_V4}"));
    wait_for(Duration::from_secs(5), || {
        d.log().contains("for 4s").then_some(())
    })
    .unwrap_or_else(|| panic!("second ban twice as long:\n{}", d.log()));
    assert!(d.log().contains("ban #2"), "{}", d.log());
}

#[test]
fn the_state_file_brings_bans_back_after_a_reboot() {
    let Some(tb) = Testbed::new("e2estate") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("scanban-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("bans");
    let state_arg = state.to_str().unwrap().to_string();
    let mut d = Daemon::start(&tb, &["--state-file", &state_arg]);
    scanban(&tb, "ban 198.51.100.77 --for 1h");
    assert!(d.stop());
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(saved.contains("198.51.100.77 "), "{saved}");
    // A reboot: the kernel forgets everything.
    tb.sh(&tb.server, "nft delete table inet scanban").unwrap();
    let d = Daemon::start(&tb, &["--state-file", &state_arg]);
    assert!(d.log().contains("restored 1 ban(s)"), "{}", d.log());
    assert!(banned(&tb, "banned4", "198.51.100.77"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_lockout_is_undone_whatever_the_state_file_says() {
    let Some(tb) = Testbed::new("e2elockout") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("scanban-lockout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("bans");
    let state_arg = state.to_str().unwrap().to_string();
    let mut d = Daemon::start(&tb, &["--state-file", &state_arg]);
    scanban(&tb, "ban 198.51.100.7 --for 1h");
    scanban(&tb, "ban 198.51.100.8 --for 1h");
    scanban(&tb, "ban 198.51.100.9 --for 1h");
    assert!(d.stop());
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(saved.contains("198.51.100.7 "), "{saved}");

    // The daemon is down: unban lifts the ban in the kernel and in the state file, so the
    // next start does not bring it back.
    let out = scanban(&tb, &format!("--state-file {state_arg} unban 198.51.100.7"));
    assert!(out.contains("unbanned 198.51.100.7"), "{out}");
    assert!(!banned(&tb, "banned4", "198.51.100.7"));
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(!saved.contains("198.51.100.7 "), "{saved}");

    // A reboot; the admin allowlists .8 in the meantime: it is not restored.
    tb.sh(&tb.server, "nft delete table inet scanban").unwrap();
    let mut d = Daemon::start(
        &tb,
        &["--state-file", &state_arg, "--allow", "198.51.100.8"],
    );
    assert!(d.log().contains("restored 1 ban(s)"), "{}", d.log());
    assert!(
        d.log()
            .contains("not restoring the ban on 198.51.100.8: it covers a protected address"),
        "{}",
        d.log()
    );
    assert!(banned(&tb, "banned4", "198.51.100.9"));
    assert!(!banned(&tb, "banned4", "198.51.100.8"));
    assert!(d.stop());

    // --reset wins over the state file: nothing comes back.
    tb.sh(&tb.server, "nft delete table inet scanban").unwrap();
    let mut d = Daemon::start(&tb, &["--state-file", &state_arg, "--reset"]);
    assert!(d.log().contains("not restoring"), "{}", d.log());
    assert!(!banned(&tb, "banned4", "198.51.100.9"), "{}", d.log());
    assert!(d.stop());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unban_all_is_an_escape_hatch_while_the_daemon_runs() {
    let Some(tb) = Testbed::new("e2ehatch") else {
        return;
    };
    let mut d = Daemon::start(&tb, &[]);
    nmap(&tb, &format!("-sS --top-ports 200 {SERVER_V4}"));
    wait_for(Duration::from_secs(5), || {
        banned(&tb, "banned4", ATTACKER_V4).then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    assert_eq!(connect_from(&tb, ATTACKER_V4, SERVER_V4, 23), "timeout");
    // Deleting the table while the daemon runs is undone (it repairs fw4 reloads), bans too.
    tb.sh(&tb.server, "nft delete table inet scanban").unwrap();
    wait_for(Duration::from_secs(5), || {
        banned(&tb, "banned4", ATTACKER_V4).then_some(())
    })
    .unwrap_or_else(|| panic!("the watchdog restores the table: {}", d.log()));
    // `unban --all` is the hatch that holds: the daemon forgets the sources and restores
    // nothing, and the source's probes are answered again.
    let out = scanban(&tb, "unban --all");
    assert!(out.contains("unbanned all 1 ban(s)"), "{out}");
    wait_for(Duration::from_secs(5), || {
        d.log().contains("was unbanned from outside").then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    assert!(!banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    assert_eq!(connect_from(&tb, ATTACKER_V4, SERVER_V4, 23), "refused");
    // Stopping enforcement altogether: stop the daemon, then delete the table; it stays gone.
    assert!(d.stop());
    tb.sh(&tb.server, "nft delete table inet scanban").unwrap();
    assert!(tb
        .sh(&tb.server, "nft list tables")
        .unwrap()
        .trim()
        .is_empty());
}

#[test]
fn loopback_traffic_is_never_dropped_even_from_a_banned_address() {
    let Some(tb) = Testbed::new("e2elo") else {
        return;
    };
    let _d = Daemon::start(&tb, &[]);
    // An admin bans the host's own address by mistake: the host still talks to itself.
    scanban(&tb, &format!("ban {SERVER_V4} --for 1h"));
    assert!(banned(&tb, "banned4", SERVER_V4));
    let out = tb
        .sh(
            &tb.server,
            &format!("timeout 2 bash -c 'exec 3<>/dev/tcp/{SERVER_V4}/9' 2>/dev/null; echo $?"),
        )
        .unwrap();
    assert_eq!(out.trim(), "1", "refused (answered), not 124 (dropped)");
}

#[test]
fn heavy_normal_traffic_to_an_open_port_is_never_banned() {
    let Some(tb) = Testbed::new("e2enormal") else {
        return;
    };
    tb.sh(
        &tb.server,
        "nohup timeout 60 python3 -m http.server 8080 --bind 192.0.2.1 >/dev/null 2>&1 &",
    )
    .unwrap();
    let d = Daemon::start(&tb, &[]);
    wait_for(Duration::from_secs(5), || {
        tb.sh(&tb.server, "ss -Hltn 'sport = :8080'")
            .ok()
            .filter(|o| !o.trim().is_empty())
    })
    .expect("web server up");
    let ok = tb
        .sh(
            &tb.attacker,
            &format!(
                "n=0; for i in $(seq 300); do curl -s -m 2 -o /dev/null http://{SERVER_V4}:8080/ && n=$((n+1)); done; echo $n"
            ),
        )
        .unwrap();
    assert_eq!(ok.trim(), "300", "every request answered");
    assert!(!banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    let stats = d.fresh_stats();
    assert!(
        stats.contains("\npackets 0\n"),
        "nothing to the open port was queued: {stats}"
    );
}

#[test]
fn sighup_reloads_the_policy_and_keeps_state() {
    let Some(tb) = Testbed::new("e2ehup") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("scanban-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("scanban.conf");
    std::fs::write(&conf, "threshold 1000\n").unwrap();
    let d = Daemon::start(&tb, &["-c", conf.to_str().unwrap()]);
    nmap(&tb, &format!("-sS -p 1-30 {SERVER_V4}"));
    assert!(
        !banned(&tb, "banned4", ATTACKER_V4),
        "threshold 1000: {}",
        d.log()
    );
    std::fs::write(&conf, "threshold 100\n").unwrap();
    let pid = d.child.as_ref().unwrap().id();
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    wait_for(Duration::from_secs(5), || {
        d.log().contains("reloaded").then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    // 30 privileged ports already count 90 points: the next few new ports cross 100 only
    // because the reload kept them.
    nmap(&tb, &format!("-sS -p 31-40 {SERVER_V4}"));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());

    // open-ports decides the sensor's form: changed by a reload, it waits for a restart, and
    // a repair after the reload rebuilds the sensor the daemon keeps (not empty port sets).
    std::fs::write(&conf, "threshold 100\nopen-ports proc\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    wait_for(Duration::from_secs(5), || {
        d.log().contains("open-ports only change").then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    tb.sh(&tb.server, "nft delete table inet scanban").unwrap();
    let chain = wait_for(Duration::from_secs(5), || {
        tb.sh(&tb.server, "nft list chain inet scanban sensor 2>/dev/null")
            .ok()
            .filter(|c| c.contains("queue"))
    })
    .unwrap_or_else(|| panic!("{}", d.log()));
    assert!(
        chain.contains("socket") && !chain.contains("@open_tcp"),
        "{chain}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn on_exit_remove_and_reset_clean_up() {
    let Some(tb) = Testbed::new("e2eexit") else {
        return;
    };
    scanban(&tb, "ban 198.51.100.5 --for 1h");
    let d = Daemon::start(&tb, &["--reset"]);
    assert!(
        !banned(&tb, "banned4", "198.51.100.5"),
        "--reset clears: {}",
        d.log()
    );
    drop(d);
    let mut d = Daemon::start(&tb, &["--on-exit", "remove"]);
    assert!(d.stop());
    let tables = tb.sh(&tb.server, "nft list tables").unwrap();
    assert!(!tables.contains("scanban"), "{tables}");
}

#[test]
fn without_the_socket_expression_open_ports_come_from_proc() {
    let Some(tb) = Testbed::new("e2eproc") else {
        return;
    };
    tb.sh(
        &tb.server,
        "nohup timeout 60 python3 -m http.server 8080 --bind 192.0.2.1 >/dev/null 2>&1 &",
    )
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        tb.sh(&tb.server, "ss -Hltn 'sport = :8080'")
            .ok()
            .filter(|o| !o.trim().is_empty())
    })
    .expect("web server up");
    let d = Daemon::start(&tb, &["--open-ports", "proc"]);
    let set = tb
        .sh(&tb.server, "nft list set inet scanban open_tcp")
        .unwrap();
    assert!(set.contains("8080"), "{set}");
    let ruleset = tb
        .sh(&tb.server, "nft list chain inet scanban sensor")
        .unwrap();
    assert!(
        ruleset.contains("tcp dport @open_tcp return") && !ruleset.contains("socket"),
        "{ruleset}"
    );
    let ok = tb
        .sh(
            &tb.attacker,
            &format!("n=0; for i in $(seq 50); do curl -s -m 2 -o /dev/null http://{SERVER_V4}:8080/ && n=$((n+1)); done; echo $n"),
        )
        .unwrap();
    assert_eq!(ok.trim(), "50");
    let stats = d.fresh_stats();
    assert!(
        stats.contains("\npackets 0\n"),
        "the open port was never queued: {stats}"
    );
    nmap(&tb, &format!("-sS --top-ports 100 {SERVER_V4}"));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
}

#[test]
fn ban_file_bans_a_list_in_one_go_and_refuses_a_bad_line() {
    let Some(tb) = Testbed::new("e2ebanfile") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("scanban-banfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("list");
    std::fs::write(
        &list,
        "# from a feed\n198.51.100.20\n198.51.100.21  # twice below\n\n2001:db8:5:6::/64\n198.51.100.21\n",
    )
    .unwrap();
    let out = scanban(&tb, &format!("ban --file {} --for 2h", list.display()));
    assert!(out.contains("banned 3 address(es) for 2h"), "{out}");
    for a in ["198.51.100.20", "198.51.100.21"] {
        assert!(banned(&tb, "banned4", a), "{a}");
    }
    assert!(banned(&tb, "banned6", "2001:db8:5:6::"));
    // One bad line: nothing is written, and the error names the line.
    let bad = dir.join("bad");
    std::fs::write(&bad, "198.51.100.30\n198.51.100.300\n").unwrap();
    let out = tb
        .exec(
            &tb.server,
            &[
                env!("CARGO_BIN_EXE_scanban"),
                "ban",
                "--file",
                bad.to_str().unwrap(),
            ],
        )
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad:2"), "{err}");
    assert!(!banned(&tb, "banned4", "198.51.100.30"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn spoofed_probes_from_the_upstream_resolver_ban_nothing() {
    let Some(tb) = Testbed::new("e2edns") else {
        return;
    };
    // systemd-resolved's layout: /etc/resolv.conf names the local stub, the upstream server
    // is in /run/systemd/resolve/resolv.conf. Both are mounted for the daemon alone (a private
    // mount namespace), never on the host.
    let dir = std::env::temp_dir().join(format!("scanban-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stub"), "nameserver 127.0.0.53\noptions edns0\n").unwrap();
    std::fs::write(dir.join("upstream"), "nameserver 198.51.100.53\n").unwrap();
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/resolve && \
         cp {up} /run/systemd/resolve/resolv.conf && mount --bind {stub} /etc/resolv.conf && \
         exec \"$@\"",
        up = dir.join("upstream").display(),
        stub = dir.join("stub").display()
    );
    let d = Daemon::spawn_under(
        &tb,
        &[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ],
        &[],
    );
    d.wait_ready();
    // Replies to the spoofed sources go back through the attacker, never on-link.
    tb.sh(&tb.server, "ip route add 198.51.100.0/24 via 192.0.2.2")
        .unwrap();
    let spoof = |src: &str| {
        tb.sh(
            &tb.attacker,
            &format!("timeout 20 hping3 -q -S -a {src} -p ++1 -c 8 -i u20000 {SERVER_V4} >/dev/null 2>&1; true"),
        )
        .unwrap()
    };
    // Eight SYNs to privileged ports (seven reach the threshold, and the score leaks a little
    // between them): a bystander is banned...
    spoof("198.51.100.54");
    wait_for(Duration::from_secs(5), || {
        banned(&tb, "banned4", "198.51.100.54").then_some(())
    })
    .unwrap_or_else(|| panic!("the spoofed scan is seen: {}", d.log()));
    // ...the upstream resolver never is: the host's DNS is not cut.
    spoof("198.51.100.53");
    wait_for(Duration::from_secs(5), || {
        (d.stat("ignored") >= 8).then_some(())
    })
    .unwrap_or_else(|| panic!("the resolver's probes are ignored: {}", d.log()));
    assert!(!banned(&tb, "banned4", "198.51.100.53"), "{}", d.log());
    drop(d);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs each `(nmap arguments, source address, text of its ban line)` from its own attacker
/// address against the zero-config daemon: each source banned, its log line naming the kind.
fn each_scan_is_banned(name: &str, scans: [(&str, &str, &str); 3]) {
    let Some(tb) = Testbed::new(name) else {
        return;
    };
    tb.add_attacker_addr("192.0.2.3/24").unwrap();
    tb.add_attacker_addr("192.0.2.4/24").unwrap();
    let d = Daemon::start(&tb, &[]);
    for (scan, src, shown) in scans {
        nmap(&tb, &format!("{scan} -S {src} -e veth0 {SERVER_V4}"));
        assert!(banned(&tb, "banned4", src), "{scan}: {}", d.log());
        let line = d.ban_line(src);
        assert!(line.contains(shown), "{scan}: {line}");
    }
}

/// ACK (-sA), Window (-sW) and Maimon (-sM) scans: ACK-family probes to closed ports, which
/// conntrack calls `new` (ACK: loose pickup) or `invalid` (FIN+ACK), each banned.
#[test]
fn ack_window_and_maimon_scans_are_banned() {
    each_scan_is_banned(
        "e2eack",
        [
            ("-sA --top-ports 100", ATTACKER_V4, "ACK"),
            ("-sW --top-ports 100", "192.0.2.3", "ACK"),
            ("-sM --top-ports 100", "192.0.2.4", "FIN+ACK"),
        ],
    );
}

/// SCTP INIT (-sY) and COOKIE ECHO (-sZ) scans, and an IP-protocol scan (-sO), each banned.
/// This kernel has no SCTP stack (CONFIG_IP_SCTP unset: every SCTP port is closed) but tracks
/// SCTP in conntrack (INIT is `new`, COOKIE ECHO `invalid`); the nft `socket` expression knows
/// no SCTP sockets on any kernel.
#[test]
fn sctp_and_ip_protocol_scans_are_banned() {
    each_scan_is_banned(
        "e2esctp",
        [
            ("-sY --top-ports 50", ATTACKER_V4, "sctp/"),
            ("-sZ --top-ports 50", "192.0.2.3", "sctp/"),
            ("-sO", "192.0.2.4", "ip/"),
        ],
    );
}

/// A connection that ended, then a stray ACK to its port from the same client (its state gone
/// from the socket table and from conntrack, as after an expiry): counted as one port at
/// most, never a ban. Ordinary traffic besides (HTTP, a UDP exchange, ICMP echo over IPv4 and IPv6)
/// is never even queued.
#[test]
fn a_stray_ack_after_a_connection_and_ordinary_traffic_ban_nobody() {
    let Some(tb) = Testbed::new("e2estray") else {
        return;
    };
    let d = Daemon::start(&tb, &[]);
    hold_listener(&tb, SERVER_V4, 8080, 30);
    tb.sh(
        &tb.server,
        "nohup timeout 30 python3 -c '\
import socket\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind((\"192.0.2.1\",5353))\n\
while True:\n d,a=s.recvfrom(2048);s.sendto(d,a)' >/dev/null 2>&1 &",
    )
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        tb.sh(&tb.server, "ss -Hlun 'sport = :5353'")
            .ok()
            .filter(|o| !o.trim().is_empty())
    })
    .expect("UDP echo up");
    let ordinary = tb
        .sh(
            &tb.attacker,
            &format!(
                "for i in $(seq 20); do timeout 5 python3 -c '\
import socket\n\
c=socket.create_connection((\"{SERVER_V4}\",8080),2);c.close()\n\
u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);u.settimeout(2)\n\
u.sendto(b\"hi\",(\"{SERVER_V4}\",5353));u.recvfrom(100)' 2>&1 || echo failed; done; \
timeout 10 python3 -c '\
import socket\n\
for fam,proto,typ,dst in ((socket.AF_INET,1,8,\"{SERVER_V4}\"),(socket.AF_INET6,58,128,\"{SERVER_V6}\")):\n \
s=socket.socket(fam,socket.SOCK_RAW,proto);s.settimeout(2)\n \
for seq in range(3):\n  \
s.sendto(bytes([typ,0,0,0,0,1,0,seq]) if fam==socket.AF_INET6 else bytes([typ,0,0xf7,0xfe-seq,0,1,0,seq]),(dst,0));s.recvfrom(200)' 2>&1 || echo failed"
            ),
        )
        .unwrap();
    assert!(!ordinary.contains("failed"), "{ordinary}");
    wait_for(Duration::from_secs(5), || {
        d.fresh_stats().contains("\npackets 0\n").then_some(())
    })
    .unwrap_or_else(|| panic!("ordinary traffic was queued: {}", d.fresh_stats()));
    // One connection that ends, then late ACKs for it from a source port conntrack no longer
    // knows (the listener gone too): the ACK rule queues them; they count once.
    let port = 8081;
    hold_listener(&tb, SERVER_V4, port, 3);
    assert_eq!(connect_from(&tb, ATTACKER_V4, SERVER_V4, port), "connected");
    wait_for(Duration::from_secs(10), || {
        tb.sh(&tb.server, &format!("ss -Hltn 'sport = :{port}'"))
            .ok()
            .filter(|o| o.trim().is_empty())
    })
    .expect("listener gone");
    tb.sh(
        &tb.attacker,
        &format!(
            "timeout 10 hping3 -q -A -s 40000 -k -p {port} -c 3 -i u100000 {SERVER_V4} 2>&1; true"
        ),
    )
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        (d.fresh_stats().contains("\nprobes 1\n")).then_some(())
    })
    .unwrap_or_else(|| panic!("the stray ACK counted once: {}", d.fresh_stats()));
    assert!(d.stat("repeats") >= 2, "{}", d.fresh_stats());
    assert!(!banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
}

/// Sends IPv6 TCP SYNs from the attacker to the server's ports `first..first+count`, each behind
/// a Destination Options header of `optlen` bytes (options of a type the host skips, so it
/// answers as to any SYN), crafted with a Python raw socket (IPPROTO_RAW: the whole packet is
/// ours); with `fragment`, each probe carries 1500 bytes of data and is sent as two fragments,
/// the first with the whole header chain (Linux drops a first fragment without it, RFC 7112).
fn crafted_v6_syns(tb: &Testbed, first: u16, count: u16, optlen: usize, fragment: bool) {
    crafted_v6_probes(tb, SERVER_V6, first, count, optlen, fragment, TCP_SYN);
}

const TCP_SYN: u8 = 0x02;

/// As `crafted_v6_syns`, to `dst`, with TCP flags `flags`.
fn crafted_v6_probes(
    tb: &Testbed,
    dst: &str,
    first: u16,
    count: u16,
    optlen: usize,
    fragment: bool,
    flags: u8,
) {
    const SEND: &str = include_str!("../fixtures/pcap/v6-syns.py");
    let out = tb
        .sh(
            &tb.attacker,
            &format!(
                "timeout 20 python3 - {first} {count} {optlen} {} {ATTACKER_V6} {dst} {flags} 2>&1 <<'EOF'\n{SEND}\nEOF",
                u8::from(fragment)
            ),
        )
        .unwrap();
    assert_eq!(out.trim(), "sent", "{out}");
}

/// IPv6 SYNs behind a 256-byte Destination Options header: the TCP header starts at byte 296,
/// past the 128-byte copy range, so the daemon reads the port and the kind from the mark the
/// sensor rule wrote (`detector::packet::sensor_mark`). Ten privileged ports ban the neighbour
/// (by its address: it is on the host's own /64).
#[test]
fn an_ipv6_syn_scan_behind_a_large_destination_options_header_is_banned() {
    let Some(tb) = Testbed::new("e2edstopt") else {
        return;
    };
    let d = Daemon::start(&tb, &[]);
    crafted_v6_syns(&tb, 20, 10, 256, false);
    wait_for(Duration::from_secs(5), || {
        banned(&tb, "banned6_host", ATTACKER_V6).then_some(())
    })
    .unwrap_or_else(|| panic!("{}\n{}", d.log(), d.fresh_stats()));
    let line = d.ban_line(ATTACKER_V6);
    assert!(line.contains("tcp/20,21,22"), "{line}");
}

/// The documented tail rule, behind a drop policy, queues the other probe kinds too: ACK
/// (`new` to conntrack), FIN+ACK (`invalid`), SCTP INIT and IP protocols (no protocol match).
#[test]
fn the_tail_rule_queues_ack_maimon_sctp_and_protocol_probes() {
    let Some(tb) = Testbed::new("e2etailkinds") else {
        return;
    };
    for a in ["192.0.2.3/24", "192.0.2.4/24", "192.0.2.5/24"] {
        tb.add_attacker_addr(a).unwrap();
    }
    drop_policy_firewall(&tb, &documented_tail_rules("--queue-num 0", "0x10000000"));
    let d = Daemon::start(&tb, &["--mode", "tail"]);
    for (scan, source, shown) in [
        ("-sA --top-ports 100", ATTACKER_V4, "ACK"),
        ("-sM --top-ports 100", "192.0.2.3", "FIN+ACK"),
        ("-sY --top-ports 50", "192.0.2.4", "sctp/"),
        ("-sO", "192.0.2.5", "ip/"),
    ] {
        nmap(&tb, &format!("{scan} -S {source} -e veth0 {SERVER_V4}"));
        assert!(banned(&tb, "banned4", source), "{scan}:\n{}", d.log());
        let line = d.ban_line(source);
        assert!(line.contains(shown), "{scan}: {line}");
    }
}

/// Fragmented probes: nmap -f over IPv4 (the TCP header split over 8-byte fragments), and
/// IPv6 SYNs with data in two fragments each, behind a 256-byte Destination Options header (the
/// TCP header past the copy range: read from the sensor mark). The kernel reassembles them
/// before the sensor: each probe is queued and counted once, never per fragment, and never
/// ignored.
#[test]
fn fragmented_probes_count_once() {
    let Some(tb) = Testbed::new("e2efrag") else {
        return;
    };
    let d = Daemon::start(&tb, &[]);
    nmap(&tb, &format!("-f -sS -p 20-29 {SERVER_V4}"));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    crafted_v6_syns(&tb, 20, 10, 256, true);
    wait_for(Duration::from_secs(5), || {
        banned(&tb, "banned6_host", ATTACKER_V6).then_some(())
    })
    .unwrap_or_else(|| panic!("{}\n{}", d.log(), d.fresh_stats()));
    let stats = d.fresh_stats();
    assert!(stats.contains("\nignored 0\n"), "{stats}");
    // Counted per fragment, nmap -f's three fragments per SYN would make every packet three;
    // counted once, each family stops at its ban: 7 ports (weight 3), or 8 when the score
    // leaked a little between probes, never more than the 10 sent.
    // Probes that arrive after the ban and before the kernel set has it are dropped as
    // `already_banned`, not scored.
    let (packets, probes) = (d.stat("packets"), d.stat("probes"));
    assert_eq!(packets, probes + d.stat("already_banned"), "{stats}");
    assert!((14..=16).contains(&probes), "{stats}");
}

#[test]
fn a_scan_spread_over_a_24_bans_the_whole_24_and_nothing_else() {
    let Some(tb) = Testbed::new("e2eprefix") else {
        return;
    };
    // 64 scanning addresses of a remote /24 routed through the attacker, and one more of it
    // that never probes.
    tb.sh(
        &tb.attacker,
        "for i in $(seq 1 64) 200; do ip addr add 198.51.100.$i/32 dev veth0; done",
    )
    .unwrap();
    tb.sh(&tb.server, "ip route add 198.51.100.0/24 via 192.0.2.2")
        .unwrap();
    hold_listener(&tb, SERVER_V4, 8080, 120);
    let d = Daemon::start(&tb, &[]);
    // Each address knocks on 3 closed ports of its own (9 points: under 21 each), one address
    // after the other; bounded: 192 attempts of at most 50 ms.
    tb.sh(
        &tb.attacker,
        &format!(
            "timeout 90 python3 -c '\
import socket\n\
for i in range(192): a = 1 + i // 3; s = socket.socket(); s.settimeout(0.05); \
s.bind((\"198.51.100.%d\" % a, 0)); s.connect_ex((\"{SERVER_V4}\", 100 + i)); s.close()'"
        ),
    )
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || banned(
            &tb,
            "banned4_net",
            "198.51.100.0"
        )
        .then_some(()))
        .is_some(),
        "log:\n{}",
        d.log()
    );
    // The kernel drops the whole /24 (an address that never probed included), and only it;
    // nft lists the element and the prefix rule counts the drops.
    assert_eq!(
        connect_from(&tb, "198.51.100.200", SERVER_V4, 8080),
        "timeout"
    );
    assert_eq!(
        connect_from(&tb, "198.51.100.7", SERVER_V4, 8080),
        "timeout"
    );
    assert_eq!(connect_from(&tb, ATTACKER_V4, SERVER_V4, 8080), "connected");
    prefix_rule_dropped(&tb, "banned4_net", "255.255.255.0");
    assert!(!banned(&tb, "banned4", ATTACKER_V4));
    let log = d.log();
    assert!(
        log.contains("ban 198.51.100.0/24 for") && log.contains("scan spread over the prefix"),
        "{log}"
    );
    let listing = scanban(&tb, "list");
    assert!(listing.contains("198.51.100.0/24"), "{listing}");
    // `unban` takes the prefix as the tier bans it.
    scanban(&tb, "unban 198.51.100.0/24");
    assert!(!banned(&tb, "banned4_net", "198.51.100.0"));
    assert_eq!(
        connect_from(&tb, "198.51.100.200", SERVER_V4, 8080),
        "connected"
    );
}

// Router mode: the server forwards between the attacker (outside) and an inside host.

/// TCP listeners in the inside host on `ports` (every address), for `secs` seconds at most;
/// returns once they listen.
fn listen_inside(tb: &Testbed, inside: &testbed::Inside, ports: &[u16], secs: u32) {
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    tb.sh(
        &inside.ns,
        &format!(
            "nohup timeout {secs} python3 -c '\
import socket,select\n\
ls=[]\n\
for p in [{list}]:\n s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind((\"::\",p));s.listen(64);ls.append(s)\n\
held=[]\n\
while True:\n r,_,_=select.select(ls,[],[])\n for s in r: held.append(s.accept())' >/dev/null 2>&1 &"
        ),
    )
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        let out = tb.sh(&inside.ns, "ss -Hltn").ok()?;
        (out.lines().count() >= ports.len()).then_some(())
    })
    .expect("inside listeners up");
}

/// The open ports nmap reported.
fn open_ports_seen(nmap: &str) -> Vec<String> {
    nmap.lines()
        .filter(|l| l.contains("/tcp") && l.contains(" open "))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// Packets the prerouting drop rules of the ban sets counted.
fn prerouting_drops(tb: &Testbed) -> u64 {
    let chain = tb
        .sh(&tb.server, "nft list chain inet scanban prerouting")
        .unwrap();
    chain
        .lines()
        .filter(|l| l.contains("drop"))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "packets")?;
            w.get(i + 1)?.parse::<u64>().ok()
        })
        .sum()
}

#[test]
fn a_router_bans_a_syn_scan_of_the_host_behind_it() {
    let Some(tb) = Testbed::new("e2erouter") else {
        return;
    };
    let inside = tb.add_inside().unwrap();
    listen_inside(&tb, &inside, &[80, 443, 8080], 120);
    // Zero configuration: the router forwards, so `protect auto` watches both.
    let d = Daemon::start(&tb, &[]);
    assert!(
        d.log().contains("protect auto: both (this host forwards"),
        "{}",
        d.log()
    );
    let text = scanban(&tb, "ruleset");
    assert!(text.contains("chain forward_sensor"), "{text}");
    let out = nmap(&tb, &format!("-sS --top-ports 1000 {}", testbed::INSIDE_V4));
    assert!(
        banned(&tb, "banned4", ATTACKER_V4),
        "log:\n{}\nnmap:\n{out}",
        d.log()
    );
    // The ban drops the rest of the scan at prerouting, before it is forwarded.
    assert!(prerouting_drops(&tb) > 0, "{out}");
    assert!(
        out.contains("filtered"),
        "the rest of the scan saw nothing: {out}"
    );
    let open = open_ports_seen(&out);
    assert!(open.len() <= 3, "{open:?}");
    eprintln!(
        "router, -sS of a host behind it: banned; nmap saw {} open port(s) {open:?}",
        open.len()
    );
    assert!(
        d.log().contains(&format!("ban {ATTACKER_V4}")),
        "{}",
        d.log()
    );
    // Another outside client is served through the router as before, and its RST from a
    // closed inside port is let through.
    tb.add_attacker_addr("192.0.2.3/24").unwrap();
    let client = "192.0.2.3";
    assert_eq!(
        connect_from(&tb, client, testbed::INSIDE_V4, 8080),
        "connected"
    );
    assert_eq!(
        connect_from(&tb, client, testbed::INSIDE_V4, 9999),
        "refused"
    );
}

/// A router testbed: the inside host listens on tcp/8080, the zero-config daemon runs on the
/// router, and the new links have settled over IPv6 (neighbour discovery) before probes that
/// are sent once. Dropped in reverse order: the daemon, the inside host, the testbed.
fn router_ready_for_ipv6(name: &str) -> Option<(Testbed, testbed::Inside, Daemon)> {
    let tb = Testbed::new(name)?;
    let inside = tb.add_inside().unwrap();
    listen_inside(&tb, &inside, &[8080], 120);
    let d = Daemon::start(&tb, &[]);
    wait_for(Duration::from_secs(10), || {
        (connect_from(&tb, ATTACKER_V6, testbed::INSIDE_V6, 8080) == "connected").then_some(())
    })
    .expect("the inside host answers over IPv6");
    Some((tb, inside, d))
}

#[test]
fn a_router_bans_an_ipv6_scan_of_the_host_behind_it() {
    let Some((tb, _inside, d)) = router_ready_for_ipv6("e2erouter6") else {
        return;
    };
    let out = nmap(
        &tb,
        &format!("-6 -sS --top-ports 200 {}", testbed::INSIDE_V6),
    );
    assert!(
        banned(&tb, "banned6", "2001:db8::/64") || banned(&tb, "banned6_host", ATTACKER_V6),
        "log:\n{}\nnmap:\n{out}",
        d.log()
    );
}

/// NULL, FIN and Xmas probes of a host behind the router: conntrack makes no entry for them, so
/// no answer is tied to them; the forward sensor queues the probes themselves. A connection
/// through the router (every segment with SYN, ACK or RST) is never queued by that rule.
#[test]
fn a_router_bans_null_fin_and_xmas_scans_of_the_host_behind_it() {
    let Some(tb) = Testbed::new("e2erstealth") else {
        return;
    };
    tb.add_attacker_addr("192.0.2.3/24").unwrap();
    tb.add_attacker_addr("192.0.2.4/24").unwrap();
    tb.add_attacker_addr("192.0.2.5/24").unwrap();
    let inside = tb.add_inside().unwrap();
    listen_inside(&tb, &inside, &[8080], 120);
    let d = Daemon::start(&tb, &[]);
    for _ in 0..5 {
        assert_eq!(
            connect_from(&tb, "192.0.2.5", testbed::INSIDE_V4, 8080),
            "connected"
        );
    }
    for (scan, source, name) in [
        ("-sN", ATTACKER_V4, "NULL"),
        ("-sF", "192.0.2.3", "FIN"),
        ("-sX", "192.0.2.4", "XMAS"),
    ] {
        let out = nmap(
            &tb,
            &format!(
                "{scan} -S {source} -e veth0 --top-ports 20 {}",
                testbed::INSIDE_V4
            ),
        );
        let ok = wait_for(Duration::from_secs(10), || {
            banned(&tb, "banned4", source).then_some(())
        });
        assert!(ok.is_some(), "{scan}:\n{}\nnmap:\n{out}", d.log());
        let line = d.ban_line(source);
        assert!(line.contains(&format!("stealth {name}")), "{line}");
    }
    assert!(!banned(&tb, "banned4", "192.0.2.5"), "{}", d.log());
}

/// A NULL scan of a host behind the router over IPv6, each probe behind a 256-byte Destination
/// Options header: the TCP header lies past the copy range, so the forward sensor's twin rule
/// hands the port and the kind over in the mark.
#[test]
fn a_router_bans_an_ipv6_null_scan_behind_a_large_destination_options_header() {
    let Some((tb, _inside, d)) = router_ready_for_ipv6("e2erdstopt") else {
        return;
    };
    crafted_v6_probes(&tb, testbed::INSIDE_V6, 20, 10, 256, false, 0);
    let ok = wait_for(Duration::from_secs(5), || {
        (banned(&tb, "banned6", "2001:db8::/64") || banned(&tb, "banned6_host", ATTACKER_V6))
            .then_some(())
    });
    assert!(ok.is_some(), "{}\n{}", d.log(), d.fresh_stats());
    let line = d
        .log()
        .lines()
        .find(|l| l.contains(" for ") && l.contains("tcp/20,21,22"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(line.contains("stealth"), "{}", d.log());
}

/// Both sides of the forward sensor's twin rule. A client whose every segment carries a
/// 256-byte Destination Options header (a sticky IPV6_DSTOPTS on its TCP socket) talks to the
/// inside host and knocks on one closed port, five times: none of its segments is a NULL/FIN/Xmas
/// one, so nothing of it is queued as a probe, and it is not banned. A scanner that also cuts
/// each NULL probe into two fragments (the header chain in the first) gains nothing: the
/// router reassembles before its forward hook, so each probe is counted once and it is banned.
#[test]
fn a_router_counts_fragmented_ipv6_null_probes_once_and_spares_clients_with_extension_headers() {
    let Some((tb, _inside, d)) = router_ready_for_ipv6("e2erfrag6") else {
        return;
    };
    let client = "2001:db8::7";
    tb.add_attacker_addr(&format!("{client}/64")).unwrap();
    // Bounded: 10 connections of at most 3 s each.
    let script = format!(
        r#"
import socket
hdr = bytes([0, 31, 0x1e, 252]) + bytes(252)  # Destination Options, 256 bytes, skippable
done = 0
for i in range(5):
    for port, data in ((8080, bytes(2000)), (9999, b"")):
        s = socket.socket(socket.AF_INET6)
        s.settimeout(3)
        s.bind(("{client}", 0))
        s.setsockopt(socket.IPPROTO_IPV6, 59, hdr)  # IPV6_DSTOPTS, on every segment
        try:
            s.connect(("{inside}", port))
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            done += 1
        except ConnectionRefusedError:
            done += 1
        s.close()
print(done)
"#,
        inside = testbed::INSIDE_V6
    );
    let out = tb
        .sh(
            &tb.attacker,
            &format!("timeout 40 python3 - 2>&1 <<'EOF'\n{script}\nEOF"),
        )
        .unwrap();
    assert_eq!(
        out.trim(),
        "10",
        "every connection and refusal went through: {out}"
    );
    crafted_v6_probes(&tb, testbed::INSIDE_V6, 20, 10, 256, true, 0);
    wait_for(Duration::from_secs(5), || {
        banned(&tb, "banned6_host", ATTACKER_V6).then_some(())
    })
    .unwrap_or_else(|| panic!("{}\n{}", d.log(), d.fresh_stats()));
    assert!(!banned(&tb, "banned6_host", client), "{}", d.log());
    let stats = d.fresh_stats();
    // Every queued packet is one observation: the client's five refusals (RSTs answering its
    // SYNs: its one closed port, counted once, then four repeats) and the scanner's reassembled
    // probes (at most its 10, those after the ban dropped as already banned), none ignored.
    let (packets, probes, repeats) = (d.stat("packets"), d.stat("probes"), d.stat("repeats"));
    assert_eq!(
        packets,
        probes + repeats + d.stat("already_banned"),
        "{stats}"
    );
    assert_eq!(repeats, 4, "{stats}");
    assert!(packets <= 5 + 10, "{stats}");
    assert!(stats.contains("\nignored 0\n"), "{stats}");
    let line = d.ban_line(ATTACKER_V6);
    assert!(
        line.contains("tcp/20,21,22") && line.contains("stealth"),
        "{}",
        d.log()
    );
}

#[test]
fn a_router_bans_a_sweep_of_unassigned_addresses_on_one_port() {
    let Some(tb) = Testbed::new("e2esweep") else {
        return;
    };
    let _inside = tb.add_inside().unwrap();
    let d = Daemon::start(&tb, &[]);
    // One port, a hundred addresses of the routed /24 where only .1 and .10 exist: the
    // router's own host unreachables (neighbour resolution failed, ~3 s each).
    let out = nmap(&tb, "-sS -p 80 --max-rtt-timeout 4s 198.51.100.20-119");
    let ok = wait_for(Duration::from_secs(20), || {
        banned(&tb, "banned4", ATTACKER_V4).then_some(())
    });
    assert!(ok.is_some(), "log:\n{}\nnmap:\n{out}", d.log());
    assert!(
        d.log().contains("ports (ip/"),
        "counted by address: {}",
        d.log()
    );
}

#[test]
fn a_router_bans_an_ipv6_sweep_of_unassigned_addresses_on_one_port() {
    let Some(tb) = Testbed::new("e2esweep6") else {
        return;
    };
    let _inside = tb.add_inside().unwrap();
    let d = Daemon::start(&tb, &[]);
    // One port, sixty addresses of the routed 2001:db8:2::/64 where only ::1 and ::10 exist:
    // the router's own address unreachables (neighbour discovery failed, ~3 s each; ICMPv6
    // errors are rate-limited to a burst of about six, then one a second).
    let targets: Vec<String> = (0x20..0x5c).map(|i| format!("2001:db8:2::{i:x}")).collect();
    let out = nmap(
        &tb,
        &format!("-6 -sS -p 80 --max-rtt-timeout 4s {}", targets.join(" ")),
    );
    let ok = wait_for(Duration::from_secs(20), || {
        (banned(&tb, "banned6", "2001:db8::/64") || banned(&tb, "banned6_host", ATTACKER_V6))
            .then_some(())
    });
    assert!(ok.is_some(), "log:\n{}\nnmap:\n{out}", d.log());
    assert!(
        d.log().contains("ports (ip/"),
        "counted by address: {}",
        d.log()
    );
}

/// Clients of an inside host that connect to many ports of OUTSIDE hosts, which answer RST:
/// `lan0` is the LAN side, so the inside host is reported; banned only with `ban-lan`.
fn lan_scanner(ban_lan: bool) {
    let Some(tb) = Testbed::new(if ban_lan { "e2elanban" } else { "e2elan" }) else {
        return;
    };
    let inside = tb.add_inside().unwrap();
    let mut args = vec!["--lan-interfaces", testbed::ROUTER_INSIDE_IFACE];
    if ban_lan {
        args.push("--ban-lan");
    }
    let d = Daemon::start(&tb, &args);
    // A legitimate outside client retrying ONE closed inside port: never a scan.
    for _ in 0..20 {
        let r = connect_from(&tb, ATTACKER_V4, testbed::INSIDE_V4, 9999);
        assert_eq!(r, "refused");
    }
    assert!(!banned(&tb, "banned4", ATTACKER_V4), "{}", d.log());
    // The inside host scans the outside (the attacker namespace answers RST on closed ports).
    let out = tb
        .sh(
            &inside.ns,
            &format!("timeout 60 nmap -n -Pn -sS --max-retries 0 --max-rtt-timeout 100ms -p 1-200 {ATTACKER_V4} 2>&1; true"),
        )
        .unwrap();
    let reported = wait_for(Duration::from_secs(10), || {
        let log = d.log();
        (log.contains(&format!("lan side {}", testbed::INSIDE_V4))
            || log.contains(&format!("ban {}", testbed::INSIDE_V4)))
        .then_some(log)
    })
    .unwrap_or_else(|| panic!("log:\n{}\nnmap:\n{out}", d.log()));
    if ban_lan {
        assert!(banned(&tb, "banned4", testbed::INSIDE_V4), "{reported}");
    } else {
        assert!(
            reported.contains("not banned (ban-lan is off)"),
            "{reported}"
        );
        assert!(!banned(&tb, "banned4", testbed::INSIDE_V4), "{reported}");
        let events = std::fs::read_to_string(d.dir.join("events")).unwrap_or_default();
        assert!(events.contains("\"event\": \"lan_side\""), "{events}");
        assert_eq!(events.lines().count(), 1, "reported once: {events}");
        assert!(d.stat("lan_side") >= 1, "{}", d.fresh_stats());
    }
}

#[test]
fn a_lan_side_scanner_is_reported_not_banned() {
    lan_scanner(false);
}

#[test]
fn a_lan_side_scanner_is_banned_with_ban_lan() {
    lan_scanner(true);
}

#[test]
fn protect_auto_follows_forwarding_on_reload() {
    let Some(tb) = Testbed::new("e2eprotect") else {
        return;
    };
    let _inside = tb.add_inside().unwrap();
    let forwarding = |on: u8| {
        tb.sh(
            &tb.server,
            &format!("sysctl -qw net.ipv4.ip_forward={on} net.ipv6.conf.all.forwarding={on}"),
        )
        .unwrap();
    };
    let chains = || tb.sh(&tb.server, "nft list table inet scanban").unwrap();
    forwarding(0);
    let d = Daemon::start(&tb, &[]);
    assert!(
        d.log()
            .contains("protect auto: input (this host does not forward)"),
        "{}",
        d.log()
    );
    assert!(!chains().contains("forward_sensor"), "{}", chains());
    let hup = |d: &Daemon| {
        Command::new("kill")
            .args(["-HUP", &d.pid().to_string()])
            .status()
            .unwrap();
    };
    forwarding(1);
    hup(&d);
    wait_for(Duration::from_secs(5), || {
        let c = chains();
        (c.contains("forward_sensor") && c.contains("output_sensor")).then_some(())
    })
    .unwrap_or_else(|| panic!("{}\n{}", chains(), d.log()));
    // Scans of the host behind are now banned.
    let out = nmap(&tb, &format!("-sS --top-ports 200 {}", testbed::INSIDE_V4));
    assert!(banned(&tb, "banned4", ATTACKER_V4), "{}\n{out}", d.log());
    forwarding(0);
    hup(&d);
    wait_for(Duration::from_secs(5), || {
        (!chains().contains("forward_sensor")).then_some(())
    })
    .unwrap_or_else(|| panic!("{}\n{}", chains(), d.log()));
    assert!(chains().contains("chain sensor"), "the input sensor stays");
}

#[test]
fn a_scan_spread_over_a_48_bans_the_whole_48_but_never_the_hosts_own() {
    let Some(tb) = Testbed::new("e2eprefix6") else {
        return;
    };
    // 16 scanning /64s of a remote /48, and one more address of it that never probes; then 16
    // /64s of the server's own /48 (2001:db8::/48 holds its address), all routed through the
    // attacker. Per-source keys are /64s, so each address is a source of its own.
    tb.sh(
        &tb.attacker,
        "for i in $(seq 1 16) ff; do ip addr add 2001:db8:9:$i::1/128 dev veth0 nodad; done; \
         for i in $(seq 1 16); do ip addr add 2001:db8:0:$i::1/128 dev veth0 nodad; done",
    )
    .unwrap();
    tb.sh(
        &tb.server,
        "ip -6 route add 2001:db8:9::/48 via 2001:db8::2 && \
         ip -6 route add 2001:db8::/48 via 2001:db8::2",
    )
    .unwrap();
    hold_listener(&tb, SERVER_V6, 8080, 120);
    let d = Daemon::start(&tb, &[]);
    // Each /64 knocks on 3 closed ports of its own (9 points: under 21 each), one after the
    // other; bounded: 48 attempts of at most 50 ms per /48.
    let spread = |net: &str| {
        tb.sh(
            &tb.attacker,
            &format!(
                "timeout 60 python3 -c '\
import socket\n\
for i in range(48): s = socket.socket(socket.AF_INET6); s.settimeout(0.05); \
s.bind((\"{net}:%d::1\" % (1 + i // 3), 0)); s.connect_ex((\"{SERVER_V6}\", 100 + i)); s.close()'"
            ),
        )
        .unwrap()
    };
    spread("2001:db8:9");
    let set = || {
        tb.sh(&tb.server, "nft list set inet scanban banned6_net")
            .unwrap()
    };
    wait_for(Duration::from_secs(10), || {
        set().contains(" 2001:db8:9:: ").then_some(())
    })
    .unwrap_or_else(|| panic!("{}\n{}", set(), d.log()));
    // The kernel drops the whole /48 (an address that never probed included), and only it.
    assert_eq!(
        connect_from(&tb, "2001:db8:9:ff::1", SERVER_V6, 8080),
        "timeout"
    );
    assert_eq!(connect_from(&tb, ATTACKER_V6, SERVER_V6, 8080), "connected");
    // The set holds the masked address; the prefix rule masks the source to the /48.
    prefix_rule_dropped(&tb, "banned6_net", "ffff:ffff:ffff::");
    let log = d.log();
    assert!(
        log.contains("ban 2001:db8:9::/48 for") && log.contains("scan spread over the prefix"),
        "{log}"
    );
    // The same spread from the server's own /48 reaches the prefix threshold, and is refused
    // the prefix ban: its sources stay counted one by one.
    spread("2001:db8:0");
    wait_for(Duration::from_secs(10), || {
        (d.stat("prefixes_protected") >= 1).then_some(())
    })
    .unwrap_or_else(|| panic!("{}\n{}", d.log(), d.fresh_stats()));
    let listed = set();
    assert!(!listed.contains(" 2001:db8:: "), "{listed}");
    assert!(listed.contains(" 2001:db8:9:: "), "{listed}");
    assert_eq!(connect_from(&tb, ATTACKER_V6, SERVER_V6, 8080), "connected");
    assert_eq!(
        connect_from(&tb, "2001:db8:0:5::1", SERVER_V6, 8080),
        "connected"
    );
}

/// The prerouting rule that drops sources in prefix set `set` masks them with `mask` and has
/// counted drops.
fn prefix_rule_dropped(tb: &Testbed, set: &str, mask: &str) {
    let chain = tb
        .sh(&tb.server, "nft list chain inet scanban prerouting")
        .unwrap();
    let rule = chain
        .lines()
        .find(|l| l.contains(&format!("@{set}")))
        .unwrap_or_else(|| panic!("{chain}"));
    assert!(rule.contains(mask), "{rule}");
    assert!(!rule.contains("packets 0 "), "{rule}");
}
