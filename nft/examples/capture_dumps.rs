//! Records real nf_tables dump replies in `fixtures/nft/dumps/` from the running kernel: the
//! seeds of the `dump` fuzz target and what `tests/dump_corpus.rs` decodes on every CI run.
//!
//! ```sh
//! sudo cargo run -p nft --example capture_dumps -- fixtures/nft/dumps
//! ```
//!
//! In a throwaway network namespace, `nft -f fixtures/nft/ruleset.nft` (nft as the independent
//! writer: the dumps do not depend on our encoder) plus a few elements with timeouts and
//! comments, then one dump per object type through our socket, each reply datagram saved
//! exactly as `recv` returned it: `tables-N.bin`, `chains-N.bin`, `sets-N.bin`,
//! `elements-banned4-N.bin`, `elements-banned6-N.bin`, `rules-N.bin`, and
//! `elements-remote4_net-N.bin`: an interval set with timeouts (the fleet's remote ranges) that
//! nft fills with CIDR blocks (docs/WIRE-NOTES.md#interval-sets). That set is added after the
//! other dumps are taken, so they read as before it existed.

use std::path::{Path, PathBuf};

use nfnl::message::Messages;
use nfnl::NlSocket;
use nft::uapi::{elem, msg};
use nft::{dump, Family};
use testbed::Testbed;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fixtures/nft/dumps".into())
        .into();
    std::fs::create_dir_all(&out)?;
    let tb = Testbed::new("dumps").ok_or("cannot build namespaces (root needed)")?;
    let ruleset = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/nft/ruleset.nft");
    tb.sh(&tb.server, &format!("nft -f {}", ruleset.display()))?;
    tb.sh(
        &tb.server,
        "nft add element inet scanban banned4 '{ 198.51.100.9 timeout 2h comment \"by hand\", 192.0.2.99 timeout 30s }' && \
         nft add element inet scanban banned6 '{ 2001:db8:1:2:: timeout 1h comment \"score 21 from 9 ports\" }'",
    )?;
    let saved = tb.in_server(|| -> Result<usize, Box<dyn std::error::Error>> {
        let mut sock = NlSocket::open()?;
        let mut n = 0;
        let mut save =
            |name: &str, kind: u8, set: Option<&str>| -> Result<(), Box<dyn std::error::Error>> {
                let seq = sock.next_seq();
                let family = set.map(|_| Family::Inet);
                let req = dump::request(seq, family, kind, |m| {
                    if let Some(s) = set {
                        m.str(elem::LIST_TABLE, "scanban").str(elem::LIST_SET, s);
                    }
                })?;
                sock.send(&req)?;
                let mut buf = vec![0u8; 64 * 1024];
                for i in 0.. {
                    if !sock.wait_readable(std::time::Duration::from_secs(2))? {
                        return Err(format!("{name}: no reply").into());
                    }
                    let len = sock.recv(&mut buf)?;
                    std::fs::write(out.join(format!("{name}-{i}.bin")), &buf[..len])?;
                    n += 1;
                    let done = Messages::new(&buf[..len])
                        .flatten()
                        .any(|m| m.msg_type == nfnl::message::NLMSG_DONE);
                    if done {
                        break;
                    }
                }
                Ok(())
            };
        save("tables", msg::GETTABLE, None)?;
        save("chains", msg::GETCHAIN, None)?;
        save("sets", msg::GETSET, None)?;
        save("rules", msg::GETRULE, None)?;
        save("elements-banned4", msg::GETSETELEM, Some("banned4"))?;
        save("elements-banned6", msg::GETSETELEM, Some("banned6"))?;
        Ok(n)
    })?;
    tb.sh(
        &tb.server,
        "nft add set inet scanban remote4_net '{ type ipv4_addr; flags interval,timeout; }' && \
         nft add element inet scanban remote4_net '{ 198.51.100.0/25 timeout 2h comment \"remote:cscli\", \
         198.51.100.128/25 timeout 1h, 203.0.113.7 timeout 30m, 255.255.255.0/24 timeout 1h }'",
    )?;
    let saved = saved
        + tb.in_server(|| -> Result<usize, Box<dyn std::error::Error>> {
            let mut sock = NlSocket::open()?;
            let seq = sock.next_seq();
            let req = dump::request(seq, Some(Family::Inet), msg::GETSETELEM, |m| {
                m.str(elem::LIST_TABLE, "scanban")
                    .str(elem::LIST_SET, "remote4_net");
            })?;
            sock.send(&req)?;
            let mut buf = vec![0u8; 64 * 1024];
            let mut n = 0;
            loop {
                if !sock.wait_readable(std::time::Duration::from_secs(2))? {
                    return Err("elements-remote4_net: no reply".into());
                }
                let len = sock.recv(&mut buf)?;
                std::fs::write(
                    out.join(format!("elements-remote4_net-{n}.bin")),
                    &buf[..len],
                )?;
                n += 1;
                if Messages::new(&buf[..len])
                    .flatten()
                    .any(|m| m.msg_type == nfnl::message::NLMSG_DONE)
                {
                    return Ok(n);
                }
            }
        })?;
    println!("{saved} datagrams written to {}", out.display());
    Ok(())
}
