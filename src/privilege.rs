//! Least privilege: once `run` has its sockets and its table, it keeps CAP_NET_ADMIN (every
//! nfnetlink message is checked against it) and nothing else, and sets `no_new_privs`, so a bug
//! in the packet path cannot be turned into more than what the daemon already does.
//!
//! Capabilities are per thread in Linux: this must run before any thread is spawned (threads
//! inherit the caller's sets).

use caps::{CapSet, Capability, CapsHashSet};

pub fn keep_only_net_admin() -> Result<(), String> {
    let keep: CapsHashSet = [Capability::CAP_NET_ADMIN].into_iter().collect();
    let err =
        |what: &str, e: caps::errors::CapsError| format!("dropping capabilities ({what}): {e}");
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes next. Under a
    // service manager that already bounded us to CAP_NET_ADMIN there is nothing to drop.
    let bounding = caps::read(None, CapSet::Bounding).map_err(|e| err("bounding", e))?;
    for c in bounding.difference(&keep) {
        caps::drop(None, CapSet::Bounding, *c).map_err(|e| err("bounding", e))?;
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| err("ambient", e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| err("inheritable", e))?;
    caps::set(None, CapSet::Effective, &keep).map_err(|e| err("effective", e))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| err("permitted", e))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    Ok(())
}

/// The capability sets of this process as `/proc/self/status` shows them (hex masks), for the
/// log line that says what the daemon kept.
pub fn status_line() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("Cap") || l.starts_with("NoNewPrivs"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}
