//! The real `scanban run` binary in a server namespace, real nmap (and friends) in an attacker
//! namespace, the real kernel in between (../shared/TESTING.md rules: own namespaces, documentation
//! addresses, no default route, bounded traffic, cleanup on failure too).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nfnl::testbed::{wait_for, Testbed, ATTACKER_V4, SERVER_V4, SERVER_V6};

struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
}

impl Daemon {
    fn start(tb: &Testbed, args: &[&str]) -> Daemon {
        let dir =
            std::env::temp_dir().join(format!("scanban-e2e-{}-{}", std::process::id(), tb.server));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &tb.server,
                env!("CARGO_BIN_EXE_scanban"),
                "run",
            ])
            .arg("--stats-file")
            .arg(dir.join("stats"))
            .arg("--events")
            .arg(dir.join("events"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon {
            child: Some(child),
            dir,
        };
        wait_for(Duration::from_secs(10), || {
            d.log().contains("ready").then_some(())
        })
        .unwrap_or_else(|| panic!("daemon did not start:\n{}", d.log()));
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit status success.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let ok = wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten())
            .map(|s| s.success());
        if ok.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        ok.unwrap_or(false)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn banned(tb: &Testbed, set: &str, addr: &str) -> bool {
    tb.sh(
        &tb.server,
        &format!("nft list set inet scanban {set} 2>/dev/null"),
    )
    .map(|t| t.contains(addr))
    .unwrap_or(false)
}

fn scanban(tb: &Testbed, args: &str) -> String {
    tb.sh(
        &tb.server,
        &format!("{} {args}", env!("CARGO_BIN_EXE_scanban")),
    )
    .unwrap()
}

#[test]
fn a_syn_scan_is_banned_and_the_rest_of_it_sees_nothing() {
    let Some(tb) = Testbed::new("e2esyn") else {
        return;
    };
    let d = Daemon::start(&tb, &[]);
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
    wait_for(Duration::from_secs(5), || {
        d.dir.join("stats").exists().then_some(())
    })
    .expect("stats file written");
    let status = scanban(
        &tb,
        &format!("status --stats-file {}", d.dir.join("stats").display()),
    );
    assert!(status.contains("bans_applied"), "{status}");
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
fn an_ipv6_scanner_is_banned_by_its_64() {
    let Some(tb) = Testbed::new("e2ev6") else {
        return;
    };
    tb.add_attacker_addr("2001:db8::99/64").unwrap();
    let d = Daemon::start(&tb, &[]);
    tb.sh(
        &tb.attacker,
        &format!("timeout 120 nmap -6 -n -Pn -sS --max-retries 0 -T4 --top-ports 200 {SERVER_V6} >/dev/null 2>&1; true"),
    )
    .unwrap();
    assert!(banned(&tb, "banned6", "2001:db8::"), "{}", d.log());
    // Another address of the same /64 is dropped too: its connection attempt times out.
    let out = tb
        .sh(
            &tb.attacker,
            &format!("timeout 2 bash -c 'exec 3<>/dev/tcp/{SERVER_V6}/22' 2>/dev/null; echo $?"),
        )
        .unwrap();
    assert_eq!(out.trim(), "124", "the whole /64 is dropped: {out}");
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
    // An admin deletes the table: the daemon restores it within a couple of seconds.
    tb.sh(&tb.server, "nft delete table inet scanban").unwrap();
    wait_for(Duration::from_secs(5), || {
        tb.sh(&tb.server, "nft list chain inet scanban sensor 2>/dev/null")
            .ok()
            .filter(|t| t.contains("queue"))
    })
    .unwrap_or_else(|| panic!("table restored:\n{}", d.log()));
}
