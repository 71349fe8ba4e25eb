//! Throwaway network namespaces for kernel tests (docs/TESTING.md's namespace rules, in code).
//!
//! A dev-dependency of every crate with kernel tests, never a normal one: it runs `ip` and
//! panics on failure, which has no place in the product (`cargo tree -e normal` shows it absent).
//!
//! A `Testbed` is two namespaces joined by a veth pair: a *server* (where the code under test
//! runs) and an *attacker* (where traffic comes from). Addresses come only from the
//! documentation ranges (192.0.2.0/24, 2001:db8::/32), there is no default route, and both
//! namespaces are deleted when the value drops, on failure too. Names carry the pid and a
//! counter so tests run in parallel.
//!
//! Kernel tests call [`Testbed::new`]; it returns `None` (and says why) when the machine cannot
//! run them, unless `SCANBAN_REQUIRE_KERNEL_TESTS` is set, as CI does, in which case a
//! skip is a failure.

#![forbid(unsafe_code)]

pub mod lan;
pub mod lapi;

use std::fs::File;
use std::io;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const SERVER_V4: &str = "192.0.2.1";
pub const ATTACKER_V4: &str = "192.0.2.2";
pub const SERVER_V6: &str = "2001:db8::1";
pub const ATTACKER_V6: &str = "2001:db8::2";
/// The veth end's name inside each namespace.
pub const IFACE: &str = "veth0";

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Testbed {
    pub server: String,
    pub attacker: String,
}

impl Testbed {
    /// Builds the two namespaces, or explains why this machine cannot (and then returns `None`,
    /// or panics when `SCANBAN_REQUIRE_KERNEL_TESTS` is set).
    pub fn new(tag: &str) -> Option<Testbed> {
        let base = namespace_base(tag)?;
        let tb = Testbed {
            server: format!("{base}-srv"),
            attacker: format!("{base}-atk"),
        };
        tb.build()
            .unwrap_or_else(|e| panic!("building testbed {base}: {e}"));
        Some(tb)
    }

    fn build(&self) -> io::Result<()> {
        run("ip", &["netns", "add", &self.server])?;
        run("ip", &["netns", "add", &self.attacker])?;
        run(
            "ip",
            &[
                "link",
                "add",
                "name",
                IFACE,
                "netns",
                &self.server,
                "type",
                "veth",
                "peer",
                "name",
                IFACE,
                "netns",
                &self.attacker,
            ],
        )?;
        for (ns, v4, v6) in [
            (&self.server, SERVER_V4, SERVER_V6),
            (&self.attacker, ATTACKER_V4, ATTACKER_V6),
        ] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", IFACE],
            )?;
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    IFACE,
                    "nodad",
                ],
            )?;
            run("ip", &["-n", ns, "link", "set", IFACE, "up"])?;
        }
        Ok(())
    }

    /// Adds another address on the attacker side (e.g. a second source in the same /64).
    pub fn add_attacker_addr(&self, cidr: &str) -> io::Result<()> {
        let mut args = vec!["-n", &self.attacker, "addr", "add", cidr, "dev", IFACE];
        if cidr.contains(':') {
            args.push("nodad");
        }
        run("ip", &args)
    }

    /// Runs a command in a namespace and returns its output, whatever its exit status.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> io::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .output()
    }

    /// Runs a shell snippet in a namespace; fails unless it exits 0.
    pub fn sh(&self, ns: &str, script: &str) -> io::Result<String> {
        let out = self.exec(ns, &["bash", "-c", script])?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "`{script}` in {ns}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `f` with the calling thread inside the server namespace. Sockets opened in `f` stay
    /// in that namespace after the thread returns to its own.
    pub fn in_server<T>(&self, f: impl FnOnce() -> T) -> T {
        in_netns(&self.server, f)
    }

    pub fn in_attacker<T>(&self, f: impl FnOnce() -> T) -> T {
        in_netns(&self.attacker, f)
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth and with it the peer.
        let _ = run("ip", &["netns", "del", &self.server]);
        let _ = run("ip", &["netns", "del", &self.attacker]);
    }
}

/// A host behind the server: a third namespace joined to the server by its own veth pair, with
/// routes both ways through the server, which forwards: the server becomes a router between
/// the attacker (outside) and this host (inside, 198.51.100.0/24 and 2001:db8:2::/64). Deleted
/// when the value drops. See [`Testbed::add_inside`].
pub struct Inside {
    pub ns: String,
}

/// The inside host's addresses and the server's (router's) addresses on the inside link.
pub const INSIDE_V4: &str = "198.51.100.10";
pub const INSIDE_V6: &str = "2001:db8:2::10";
pub const ROUTER_INSIDE_V4: &str = "198.51.100.1";
pub const ROUTER_INSIDE_V6: &str = "2001:db8:2::1";
/// The server's end of the inside link.
pub const ROUTER_INSIDE_IFACE: &str = "lan0";

impl Testbed {
    /// Adds an inside host behind the server and turns forwarding on in the server.
    pub fn add_inside(&self) -> io::Result<Inside> {
        let inside = Inside {
            ns: format!("{}-in", self.server),
        };
        run("ip", &["netns", "add", &inside.ns])?;
        run(
            "ip",
            &[
                "link",
                "add",
                "name",
                ROUTER_INSIDE_IFACE,
                "netns",
                &self.server,
                "type",
                "veth",
                "peer",
                "name",
                IFACE,
                "netns",
                &inside.ns,
            ],
        )?;
        let (srv, ins, atk) = (
            self.server.as_str(),
            inside.ns.as_str(),
            self.attacker.as_str(),
        );
        let lan = ROUTER_INSIDE_IFACE;
        let steps: [&[&str]; 12] = [
            &["-n", ins, "link", "set", "lo", "up"],
            &["-n", ins, "addr", "add", "198.51.100.10/24", "dev", IFACE],
            &[
                "-n",
                ins,
                "addr",
                "add",
                "2001:db8:2::10/64",
                "dev",
                IFACE,
                "nodad",
            ],
            &["-n", ins, "link", "set", IFACE, "up"],
            &["-n", srv, "addr", "add", "198.51.100.1/24", "dev", lan],
            &[
                "-n",
                srv,
                "addr",
                "add",
                "2001:db8:2::1/64",
                "dev",
                lan,
                "nodad",
            ],
            &["-n", srv, "link", "set", lan, "up"],
            // Routes, never a default one.
            &[
                "-n",
                atk,
                "route",
                "add",
                "198.51.100.0/24",
                "via",
                SERVER_V4,
            ],
            &[
                "-n",
                atk,
                "-6",
                "route",
                "add",
                "2001:db8:2::/64",
                "via",
                SERVER_V6,
            ],
            &[
                "-n",
                ins,
                "route",
                "add",
                "192.0.2.0/24",
                "via",
                ROUTER_INSIDE_V4,
            ],
            &[
                "-n",
                ins,
                "-6",
                "route",
                "add",
                "2001:db8::/64",
                "via",
                ROUTER_INSIDE_V6,
            ],
            &[
                "netns",
                "exec",
                srv,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ],
        ];
        for args in steps {
            run("ip", args)?;
        }
        Ok(inside)
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.ns]);
    }
}

/// Runs `f` with the calling thread in namespace `name` (from `ip netns add`), then returns.
pub fn in_netns<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let home = File::open("/proc/thread-self/ns/net").expect("open own netns");
    let target = File::open(format!("/run/netns/{name}")).expect("open target netns");
    setns(&target).expect("enter netns");
    let out = f();
    setns(&home).expect("return to own netns");
    out
}

/// Moves the calling thread alone into the network namespace `ns` refers to.
fn setns(ns: &File) -> io::Result<()> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// Polls `check` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A unique prefix for the namespaces of test `tag`, or None (said on stderr) where kernel
/// tests cannot run here; that is a panic when `SCANBAN_REQUIRE_KERNEL_TESTS` is set.
fn namespace_base(tag: &str) -> Option<String> {
    if let Some(why) = unavailable() {
        if std::env::var_os("SCANBAN_REQUIRE_KERNEL_TESTS").is_some() {
            panic!("kernel test {tag} cannot run: {why}");
        }
        eprintln!("SKIPPED kernel test {tag}: {why}");
        return None;
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Some(format!("sb-{tag}-{}-{n}", std::process::id()))
}

fn run(cmd: &str, args: &[&str]) -> io::Result<()> {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (network namespaces, nf_tables, nfnetlink_queue)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`ip` (iproute2) is not installed".into()),
    }
}
