//! Installs a ban set and a drop rule, then bans one address for a while: the nft crate in
//! action, to look at with `nft list ruleset`. Run it inside a namespace, not on a live host:
//!
//! ```sh
//! ip netns add demo
//! ip netns exec demo cargo run -p nft --example ban -- 192.0.2.7 60
//! ip netns exec demo nft list ruleset
//! ip netns del demo
//! ```

use std::net::IpAddr;

use nfnl::NlSocket;
use nft::uapi::set::F_TIMEOUT;
use nft::{BaseChain, Batch, Chain, Element, Family, Hook, KeyType, Rule, Set, Table, Verdict};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), secs) = (args.next(), args.next()) else {
        eprintln!("usage: ban ADDRESS [SECONDS]");
        std::process::exit(2);
    };
    let addr: IpAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ban: {addr}: {e}");
            std::process::exit(2);
        }
    };
    let secs: u64 = secs.and_then(|s| s.parse().ok()).unwrap_or(60);
    if let Err(e) = run(addr, secs) {
        eprintln!("ban: {e}");
        std::process::exit(1);
    }
}

fn run(addr: IpAddr, secs: u64) -> Result<(), nfnl::Error> {
    let (set_name, key, bytes) = match addr {
        IpAddr::V4(a) => ("banned4", KeyType::Ipv4Addr, a.octets().to_vec()),
        IpAddr::V6(a) => ("banned6", KeyType::Ipv6Addr, a.octets().to_vec()),
    };
    let mut b = Batch::new();
    b.add_table(&Table::new(Family::Inet, "demo"));
    b.add_set(&Set {
        family: Family::Inet,
        table: "demo".into(),
        name: set_name.into(),
        key,
        flags: F_TIMEOUT,
        size: Some(1024),
        timeout_ms: None,
        comment: Some("banned by the nft crate example".into()),
        raw_key: None,
    });
    b.add_chain(&Chain {
        family: Family::Inet,
        table: "demo".into(),
        name: "prerouting".into(),
        base: Some(BaseChain {
            hook: Hook::Prerouting,
            priority: -450,
            kind: "filter".into(),
            policy: Verdict::Accept,
        }),
    });
    b.flush_chain(Family::Inet, "demo", "prerouting");
    let rule = Rule::new(Family::Inet, "demo", "prerouting");
    let rule = match addr {
        IpAddr::V4(_) => rule.ip_saddr_in(set_name),
        IpAddr::V6(_) => rule.ip6_saddr_prefix_in(128, set_name),
    };
    b.add_rule(&rule.counter().drop());
    let mut e = Element::new(&bytes);
    e.timeout_ms = Some(secs * 1000);
    e.comment = Some(format!("example ban of {addr}"));
    b.add_elements(Family::Inet, "demo", set_name, &[e]);
    let mut sock = NlSocket::open()?;
    b.send(&mut sock)?;
    println!("banned {addr} for {secs} s in table inet demo, set {set_name}");
    Ok(())
}
