//! What the end-to-end test files share: the real `scanban run` started in a testbed's server
//! namespace, its counters, and the attacker's tools. The rules of every kernel test here: own
//! namespaces, documentation addresses, bounded traffic, cleanup on failure too.
#![allow(dead_code)] // each test file uses its own part

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use testbed::{wait_for, Testbed};

/// A running `scanban run`, with its stats, events and metrics files and its log in `dir`.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
}

static STARTED: AtomicU32 = AtomicU32::new(0);

impl Daemon {
    /// Starts the daemon and waits for its "ready" line.
    pub fn start(tb: &Testbed, args: &[&str]) -> Daemon {
        let d = Daemon::spawn_under(tb, &[], args);
        d.wait_ready();
        d
    }

    /// Starts the daemon without waiting for anything (for runs expected to fail).
    pub fn spawn(tb: &Testbed, args: &[&str]) -> Daemon {
        Daemon::spawn_under(tb, &[], args)
    }

    /// Like `spawn`, with `wrapper` (e.g. `setpriv ...`) between `ip netns exec` and scanban.
    pub fn spawn_under(tb: &Testbed, wrapper: &[&str], args: &[&str]) -> Daemon {
        Daemon::spawn_in(&tb.server, wrapper, args)
    }

    /// Starts the daemon in namespace `ns` and waits for its "ready" line.
    pub fn start_in(ns: &str, args: &[&str]) -> Daemon {
        let d = Daemon::spawn_in(ns, &[], args);
        d.wait_ready();
        d
    }

    pub fn spawn_in(ns: &str, wrapper: &[&str], args: &[&str]) -> Daemon {
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("scanban-e2e-{}-{ns}-{n}", std::process::id(),));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(wrapper)
            .args([env!("CARGO_BIN_EXE_scanban"), "run"])
            .arg("--stats-file")
            .arg(dir.join("stats"))
            .arg("--events")
            .arg(dir.join("events"))
            .arg("--metrics-file")
            .arg(dir.join("metrics"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            dir,
        }
    }

    pub fn wait_ready(&self) {
        wait_for(Duration::from_secs(10), || {
            self.log().contains("ready").then_some(())
        })
        .unwrap_or_else(|| panic!("daemon did not start:\n{}", self.log()));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The log line of `source`'s (first) ban, or an empty string.
    pub fn ban_line(&self, source: &str) -> String {
        let log = self.log();
        let ban = format!("ban {source} for");
        log.lines()
            .find(|l| l.contains(&ban))
            .unwrap_or_default()
            .to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// The stats file once it has been rewritten after now.
    pub fn fresh_stats(&self) -> String {
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        wait_for(Duration::from_secs(5), || {
            let text = std::fs::read_to_string(self.dir.join("stats")).ok()?;
            let written: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("written_at "))?
                .parse()
                .ok()?;
            (written > after).then_some(text)
        })
        .unwrap_or_else(|| panic!("stats file not rewritten:\n{}", self.log()))
    }

    /// One counter from a fresh stats file.
    pub fn stat(&self, name: &str) -> u64 {
        let text = self.fresh_stats();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no counter {name}:\n{text}"))
    }

    /// SIGTERM and wait; whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
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

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself; its exit code.
    pub fn exit_code(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let code = wait_for(Duration::from_secs(10), || c.try_wait().ok().flatten())
            .and_then(|s| s.code());
        let _ = c.kill();
        let _ = c.wait();
        code
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `addr` is an element of the ban set `set` (as nft lists it).
pub fn banned(tb: &Testbed, set: &str, addr: &str) -> bool {
    tb.sh(
        &tb.server,
        &format!("nft list set inet scanban {set} 2>/dev/null"),
    )
    .map(|t| t.contains(addr))
    .unwrap_or(false)
}

/// The scanban CLI in the server namespace; its stdout.
pub fn scanban(tb: &Testbed, args: &str) -> String {
    tb.sh(
        &tb.server,
        &format!("{} {args}", env!("CARGO_BIN_EXE_scanban")),
    )
    .unwrap()
}

/// nmap from the attacker namespace, bounded: no retries, short timeouts, 2 minutes at most.
pub fn nmap(tb: &Testbed, args: &str) -> String {
    tb.sh(
        &tb.attacker,
        &format!(
            "timeout 120 nmap -n -Pn --max-retries 0 --max-rtt-timeout 100ms --min-rate 1000 {args} 2>&1; true"
        ),
    )
    .unwrap()
}

/// Python's socket family for an address.
fn socket_family(addr: &str) -> &'static str {
    if addr.contains(':') {
        "AF_INET6"
    } else {
        "AF_INET"
    }
}

/// A TCP connection attempt from `src` (an address of the attacker namespace) to `dst`:`port`,
/// 2 s at most: "connected", "refused" (the host answered: not dropped) or "timeout" (dropped).
pub fn connect_from(tb: &Testbed, src: &str, dst: &str, port: u16) -> String {
    let family = socket_family(dst);
    tb.sh(
        &tb.attacker,
        &format!(
            "timeout 5 python3 -c '\
import socket\n\
s=socket.socket(socket.{family});s.settimeout(2);s.bind((\"{src}\",0))\n\
try:\n s.connect((\"{dst}\",{port}));print(\"connected\")\n\
except ConnectionRefusedError:\n print(\"refused\")\n\
except (socket.timeout, TimeoutError):\n print(\"timeout\")'"
        ),
    )
    .unwrap()
    .trim()
    .to_string()
}

/// A TCP listener in the server namespace on `addr`:`port` that accepts and holds every
/// connection, for `secs` seconds at most; returns once it listens.
pub fn hold_listener(tb: &Testbed, addr: &str, port: u16, secs: u32) {
    let family = socket_family(addr);
    tb.sh(
        &tb.server,
        &format!(
            "nohup timeout {secs} python3 -c '\
import socket\n\
s=socket.socket(socket.{family});s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
s.bind((\"{addr}\",{port}));s.listen(64);held=[]\n\
while True: held.append(s.accept())' >/dev/null 2>&1 &"
        ),
    )
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        tb.sh(&tb.server, &format!("ss -Hltn 'sport = :{port}'"))
            .ok()
            .filter(|o| !o.trim().is_empty())
    })
    .expect("listener up");
}

/// A TCP session from `src` in the attacker namespace to `dst`:`port`, held for `secs` seconds
/// at most; returns once the server sees it established.
pub fn hold_session(tb: &Testbed, src: &str, dst: &str, port: u16, secs: u32) {
    let family = socket_family(dst);
    tb.sh(
        &tb.attacker,
        &format!(
            "nohup timeout {secs} python3 -c '\
import socket,time\n\
c=socket.socket(socket.{family});c.bind((\"{src}\",0));c.connect((\"{dst}\",{port}));time.sleep({secs})' \
>/dev/null 2>&1 &"
        ),
    )
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        tb.sh(
            &tb.server,
            &format!("ss -Htn state established 'sport = :{port}'"),
        )
        .ok()
        .filter(|o| o.contains(src))
    })
    .unwrap_or_else(|| panic!("session from {src} to port {port} not established"));
}
