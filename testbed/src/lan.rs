//! Several hosts on one Ethernet segment, for tests with more than two parties (a fleet: a LAPI
//! host, two scanban hosts, an attacker): a hub namespace holding a bridge, and one namespace
//! per host joined to it by a veth pair. Addresses from the documentation ranges only, every
//! prefix on-link (no gateway, no default route); all namespaces deleted when the value drops.

use std::io;

use crate::{namespace_base, run, IFACE};

/// One host of a `Lan`: a name for the test, its addresses (`ADDR/LEN`).
pub struct Host<'a> {
    pub name: &'a str,
    pub addrs: &'a [&'a str],
}

pub struct Lan {
    hub: String,
    hosts: Vec<(String, String)>,
}

impl Lan {
    /// Builds the segment, or says why this machine cannot (None, or a panic when
    /// `SCANBAN_REQUIRE_KERNEL_TESTS` is set). `routes` are extra on-link prefixes every host
    /// reaches through the segment (a prefix only some hosts hold an address in).
    pub fn new(tag: &str, hosts: &[Host], routes: &[&str]) -> Option<Lan> {
        let base = namespace_base(tag)?;
        let mut lan = Lan {
            hub: format!("{base}-hub"),
            hosts: Vec::new(),
        };
        lan.build(&base, hosts, routes)
            .unwrap_or_else(|e| panic!("building LAN {base}: {e}"));
        Some(lan)
    }

    fn build(&mut self, base: &str, hosts: &[Host], routes: &[&str]) -> io::Result<()> {
        let hub = self.hub.clone();
        run("ip", &["netns", "add", &hub])?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        for (i, h) in hosts.iter().enumerate() {
            let ns = format!("{base}-{}", h.name);
            run("ip", &["netns", "add", &ns])?;
            self.hosts.push((h.name.to_string(), ns.clone()));
            let port = format!("p{i}");
            run(
                "ip",
                &[
                    "link", "add", "name", &port, "netns", &hub, "type", "veth", "peer", "name",
                    IFACE, "netns", &ns,
                ],
            )?;
            run("ip", &["-n", &hub, "link", "set", &port, "master", "br0"])?;
            run("ip", &["-n", &hub, "link", "set", &port, "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            for a in h.addrs {
                let mut args = vec!["-n", ns.as_str(), "addr", "add", a, "dev", IFACE];
                if a.contains(':') {
                    args.push("nodad");
                }
                run("ip", &args)?;
            }
            run("ip", &["-n", &ns, "link", "set", IFACE, "up"])?;
            for r in routes {
                let fam = if r.contains(':') { "-6" } else { "-4" };
                // A host with an address in the prefix has the route already.
                let _ = run("ip", &["-n", &ns, fam, "route", "add", r, "dev", IFACE]);
            }
        }
        Ok(())
    }

    /// The namespace of host `name`.
    pub fn ns(&self, name: &str) -> &str {
        self.hosts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ns)| ns.as_str())
            .unwrap_or_else(|| panic!("no host {name} in this LAN"))
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for (_, ns) in &self.hosts {
            let _ = run("ip", &["netns", "del", ns]);
        }
        let _ = run("ip", &["netns", "del", &self.hub]);
    }
}
