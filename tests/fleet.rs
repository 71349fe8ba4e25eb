//! The fleet end to end, with Debian's real CrowdSec LAPI: on one segment a LAPI host, host A
//! (`scanban run` in managed mode, pushing its bans as a machine and enforcing the decision
//! stream as a bouncer), host B (`--mode bouncer` only, with an allowlisted admin address), and
//! two attackers. A scan seen by A is dropped by B; a /24 decided with cscli is dropped by both
//! and lifted by both; a ban A makes while the LAPI is down reaches it once it is back; a
//! decision against B's admin is refused by B.

use std::process::Command;
use std::time::Duration;

use testbed::lan::{Host, Lan};
use testbed::lapi::Lapi;
use testbed::wait_for;

mod common;
use common::Daemon;

const LAPI: &str = "192.0.2.1";
const A: &str = "192.0.2.10";
const B: &str = "192.0.2.20";
const ATTACKER: &str = "198.51.100.7";
const ATTACKER2: &str = "198.51.100.8";
/// Allowlisted on B only.
const ADMIN: &str = "192.0.2.99";

/// Long enough for a slow machine: every wait ends as soon as its condition holds.
const WAIT: Duration = Duration::from_secs(60);

fn sh(ns: &str, script: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c", script])
        .output()
        .expect("ip netns exec");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `set` of `table inet scanban` in `ns` lists `elem`.
fn holds(ns: &str, set: &str, elem: &str) -> bool {
    sh(ns, &format!("nft list set inet scanban {set} 2>/dev/null"))
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
        .any(|w| w == elem)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool, log: impl Fn() -> String) {
    wait_for(WAIT, || cond().then_some(())).unwrap_or_else(|| panic!("never: {what}\n{}", log()));
}

/// A SYN scan of 100 ports of `target`, bounded in probes and time.
fn scan(ns: &str, target: &str) {
    sh(
        ns,
        &format!(
            "timeout 60 nmap -n -Pn -sS -T4 --max-retries 0 -p 1-100 {target} >/dev/null 2>&1; true"
        ),
    );
}

/// Whether a TCP connect from `ns` to `dst:port` is answered (refused counts as answered) or
/// goes unanswered (dropped), within 3 s.
fn answered(ns: &str, dst: &str, port: u16) -> bool {
    let out = sh(
        ns,
        &format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{dst}/{port}' 2>&1; echo rc=$?"),
    );
    !out.contains("rc=124")
}

#[test]
fn a_scan_seen_by_one_host_is_dropped_by_all() {
    let hosts = [
        Host {
            name: "lapi",
            addrs: &["192.0.2.1/24"],
        },
        Host {
            name: "a",
            addrs: &["192.0.2.10/24"],
        },
        Host {
            name: "b",
            addrs: &["192.0.2.20/24"],
        },
        Host {
            name: "atk",
            addrs: &["198.51.100.7/24"],
        },
        Host {
            name: "atk2",
            addrs: &["198.51.100.8/24"],
        },
    ];
    let Some(lan) = Lan::new("fleet", &hosts, &["192.0.2.0/24", "198.51.100.0/24"]) else {
        return;
    };
    let Some(mut lapi) = Lapi::start(lan.ns("lapi"), &format!("{LAPI}:8080")) else {
        return;
    };
    let machine = lapi.add_machine("host-a", "a-secret-password-123");
    let (_, key_a) = lapi.add_bouncer("host-a");
    let (_, key_b) = lapi.add_bouncer("host-b");
    let (ns_a, ns_b) = (lan.ns("a"), lan.ns("b"));
    // A reads a config file, so that a reload can change its allowlist.
    let conf_a = lapi.dir.join("scanban-a.conf");
    let conf_text = format!(
        "lapi-credentials {}\nlapi-bouncer-key {}\n",
        machine.display(),
        key_a.display()
    );
    std::fs::write(&conf_a, &conf_text).unwrap();
    let a = Daemon::start_in(ns_a, &["-c", &conf_a.to_string_lossy()]);
    let b = Daemon::start_in(
        ns_b,
        &[
            "--mode",
            "bouncer",
            "--lapi-url",
            &lapi.url(),
            "--lapi-bouncer-key",
            &key_b.to_string_lossy(),
            "--allow",
            ADMIN,
        ],
    );
    let lapi_log = lapi.dir.join("crowdsec_api.log");
    let logs = || {
        let l = std::fs::read_to_string(&lapi_log).unwrap_or_default();
        format!("A:\n{}\nB:\n{}\nLAPI:\n{l}", a.log(), b.log())
    };
    for d in [&a, &b] {
        wait_until(
            "the decision stream read",
            || d.log().contains("LAPI decisions (startup)") || d.stat("lapi_polls") > 0,
            logs,
        );
    }
    // Not a secret in either log.
    for (who, d) in [("A", &a), ("B", &b)] {
        assert!(
            !d.log().contains("a-secret-password-123"),
            "{who} logged the password"
        );
    }

    // B answers the attacker before anything happens.
    assert!(
        answered(lan.ns("atk"), B, 9),
        "B dropped the attacker early"
    );

    // The attacker scans A: A bans it, pushes the alert; B drops the attacker.
    scan(lan.ns("atk"), A);
    wait_until(
        "A bans the attacker",
        || holds(ns_a, "banned4", ATTACKER),
        logs,
    );
    wait_until(
        "B holds A's ban as a remote ban",
        || holds(ns_b, "remote4", ATTACKER),
        logs,
    );
    assert!(
        !answered(lan.ns("atk"), B, 9),
        "B still answers the attacker"
    );
    let listing = sh(ns_b, &format!("{} list", env!("CARGO_BIN_EXE_scanban")));
    assert!(
        listing
            .lines()
            .any(|l| l.contains(ATTACKER) && l.contains("remote:")),
        "{listing}"
    );

    // A /24 decided by the admin with cscli: both drop it; deleted: both lift it.
    let range = "198.51.100.0/24";
    lapi.cscli_ok(&["decisions", "add", "--range", range, "--duration", "1h"]);
    for ns in [ns_a, ns_b] {
        wait_until("the /24 applied", || holds(ns, "remote4_net", range), logs);
    }
    assert!(!answered(lan.ns("atk2"), B, 9), "B answers the banned /24");
    lapi.cscli_ok(&["decisions", "delete", "--range", range]);
    for ns in [ns_a, ns_b] {
        wait_until("the /24 lifted", || !holds(ns, "remote4_net", range), logs);
    }
    assert!(
        answered(lan.ns("atk2"), B, 9),
        "B still drops the lifted /24"
    );
    // A's own ban of the attacker is its own: lifting the range left it.
    assert!(holds(ns_a, "banned4", ATTACKER));

    // A decision against B's admin: A applies it, B refuses it and says so.
    lapi.cscli_ok(&["decisions", "add", "--ip", ADMIN, "--duration", "1h"]);
    wait_until(
        "A applies the admin's ban",
        || holds(ns_a, "remote4", ADMIN),
        logs,
    );
    wait_until(
        "B refuses the admin's ban",
        || {
            b.log()
                .contains(&format!("{ADMIN}/32: it covers an allowlisted"))
        },
        logs,
    );
    assert!(
        !holds(ns_b, "remote4", ADMIN),
        "B applied a ban of its admin"
    );
    // A's admin allowlists the address and reloads: A lifts the remote ban it had applied.
    std::fs::write(&conf_a, format!("{conf_text}allow {ADMIN}\n")).unwrap();
    Command::new("kill")
        .args(["-HUP", &a.pid().to_string()])
        .status()
        .unwrap();
    wait_until(
        "A lifts the remote ban of an address a reload allowlisted",
        || !holds(ns_a, "remote4", ADMIN),
        logs,
    );
    assert!(
        a.log().contains(&format!(
            "lifting remote ban of {ADMIN}/32: now allowlisted"
        )),
        "{}",
        a.log()
    );

    // The LAPI goes away; A keeps banning locally; once back, the LAPI gets A's alert and B
    // drops the second attacker too.
    lapi.stop();
    scan(lan.ns("atk2"), A);
    wait_until(
        "A bans locally while the LAPI is down",
        || holds(ns_a, "banned4", ATTACKER2),
        logs,
    );
    wait_until(
        "A notices the LAPI is down",
        || a.stat("lapi_alerts_pending") > 0 || a.stat("lapi_push_failures") > 0,
        logs,
    );
    lapi.restart();
    // B learns of the second attacker from the LAPI alone: A's alert made it there.
    wait_until(
        "the alert made during the outage reaches the LAPI and B",
        || holds(ns_b, "remote4", ATTACKER2),
        logs,
    );
    drop(a);
    drop(b);
}
