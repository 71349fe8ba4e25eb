//! `scanban run --mode bouncer`: the real daemon in a server namespace enforcing bans without a
//! queue or a sensor, and the CLI showing remote bans (fleet decisions) with their origin. The
//! remote elements are written here with `nft`, as the fleet's sink writes them (its own kernel
//! tests are in src/fleet/remote/tests.rs).

use std::time::Duration;

use testbed::{wait_for, Testbed, SERVER_V4};

mod common;
use common::{connect_from, scanban, Daemon};

#[test]
fn bouncer_mode_binds_no_queue_installs_no_sensor_and_lists_remote_bans() {
    let Some(tb) = Testbed::new("bouncer") else {
        return;
    };
    let mut d = Daemon::start(&tb, &["--mode", "bouncer"]);
    assert!(d.log().contains("bouncer mode"), "{}", d.log());
    // No queue bound in the namespace (the kernel lists each bound queue), no sensor chain.
    let queues = tb
        .sh(
            &tb.server,
            "cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null; true",
        )
        .unwrap();
    assert!(queues.trim().is_empty(), "{queues}");
    let table = tb.sh(&tb.server, "nft list table inet scanban").unwrap();
    assert!(!table.contains("chain sensor"), "{table}");
    for set in [
        "banned4",
        "remote4",
        "remote6",
        "remote4_net",
        "remote6_net",
    ] {
        assert!(table.contains(&format!("set {set} ")), "{set}: {table}");
    }
    assert!(table.contains("flags interval,timeout"), "{table}");

    // Remote bans as the sink writes them: an address and a range, origin in the comment.
    tb.add_attacker_addr("198.51.100.7/24").unwrap();
    tb.sh(&tb.server, "ip route add 198.51.100.0/24 via 192.0.2.2")
        .unwrap();
    tb.sh(
        &tb.server,
        "nft add element inet scanban remote4 '{ 192.0.2.77 timeout 1h comment \"remote:cscli manual ban\" }' && \
         nft add element inet scanban remote4_net '{ 198.51.100.0/24 timeout 2h comment \"remote:CAPI crowdsecurity/ssh-bf\" }'",
    )
    .unwrap();
    assert_eq!(
        connect_from(&tb, "198.51.100.7", SERVER_V4, 9),
        "timeout",
        "the range is dropped"
    );
    let listing = scanban(&tb, "list");
    let line = |what: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("{what}: {listing}"))
            .to_string()
    };
    assert!(line("SOURCE").contains("ORIGIN"), "{listing}");
    assert!(line("192.0.2.77 ").contains("remote:cscli"), "{listing}");
    assert!(
        line("198.51.100.0/24 ").contains("remote:CAPI")
            && line("198.51.100.0/24 ").contains("crowdsecurity/ssh-bf"),
        "{listing}"
    );
    let json = scanban(&tb, "list --json");
    assert!(
        json.contains("\"source\": \"198.51.100.0/24\"")
            && json.contains("\"origin\": \"remote:CAPI\""),
        "{json}"
    );
    // A local ban next to them says so.
    scanban(&tb, "ban 192.0.2.78");
    assert!(line_of(&scanban(&tb, "list"), "192.0.2.78 ").contains("local"));
    // `unban` lifts no remote ban: it says where the ban comes from.
    let out = tb
        .exec(
            &tb.server,
            &[env!("CARGO_BIN_EXE_scanban"), "unban", "198.51.100.7"],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("banned by the fleet") && err.contains("198.51.100.0/24 (remote:CAPI)"),
        "{err}"
    );
    assert_eq!(connect_from(&tb, "198.51.100.7", SERVER_V4, 9), "timeout");

    // Housekeeping runs: the watchdog puts back a flushed drop chain.
    tb.sh(&tb.server, "nft flush chain inet scanban prerouting")
        .unwrap();
    wait_for(Duration::from_secs(5), || {
        tb.sh(&tb.server, "nft list chain inet scanban prerouting")
            .ok()
            .filter(|t| t.contains("@remote4_net"))
    })
    .unwrap_or_else(|| panic!("drop rules restored:\n{}", d.log()));
    assert_eq!(d.stat("ruleset_repairs"), 1, "{}", d.log());
    assert!(d.stop(), "{}", d.log());
}

fn line_of(listing: &str, what: &str) -> String {
    listing
        .lines()
        .find(|l| l.starts_with(what))
        .unwrap_or_else(|| panic!("{what}: {listing}"))
        .to_string()
}
