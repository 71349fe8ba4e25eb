//! Least privilege: once `run` has its sockets and its table, it keeps CAP_NET_ADMIN (every
//! nfnetlink message is checked against it) and nothing else, and sets `no_new_privs`, so a bug
//! in the packet path cannot be turned into more than what the daemon already does.
//!
//! With `user NAME` it also stops being root: the uid and gids become the user's, with
//! CAP_NET_ADMIN kept across the switch (PR_SET_KEEPCAPS), so a compromise of the packet path
//! gets an unprivileged user that can talk to netfilter and nothing more.
//!
//! Capabilities are per thread in Linux: this must run before any thread is spawned (threads
//! inherit the caller's sets).

use std::fmt;
use std::path::Path;

use caps::errors::CapsError;
use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};

/// Why the daemon could not give up its privileges (it stops: it never runs with more).
#[derive(Debug)]
pub enum Error {
    /// The user could not be looked up (`None`: there is no such user).
    User {
        name: String,
        lookup: Option<nix::Error>,
    },
    /// A step of the switch to the user failed.
    Become {
        name: String,
        step: &'static str,
        source: nix::Error,
    },
    /// A capability set could not be read or changed (`doing` says which).
    Capabilities {
        doing: &'static str,
        source: CapsError,
    },
    NoNewPrivs(nix::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::User { name, lookup: None } => write!(f, "user {name}: no such user"),
            Error::User {
                name,
                lookup: Some(e),
            } => write!(f, "user {name}: {e}"),
            Error::Become { name, step, source } => {
                write!(f, "becoming user {name} ({step}): {source}")
            }
            Error::Capabilities { doing, source } => write!(f, "{doing}: {source}"),
            Error::NoNewPrivs(e) => write!(f, "no_new_privs: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Becomes `name` (uid, primary gid, no supplementary groups), keeping the capabilities it has;
/// `keep_only_net_admin` must follow. `dirs` are the directories of the files the daemon writes:
/// those named `scanban` (its own: /run/scanban, /var/lib/scanban) are given to the user, any
/// other one the user cannot write to is named in the returned warnings.
pub fn become_user(name: &str, dirs: &[&Path]) -> Result<Vec<String>, Error> {
    let unknown = |lookup| Error::User {
        name: name.to_string(),
        lookup,
    };
    let user = User::from_name(name)
        .map_err(|e| unknown(Some(e)))?
        .ok_or_else(|| unknown(None))?;
    let mut warnings = Vec::new();
    for dir in dirs {
        if let Err(e) = std::fs::create_dir_all(dir) {
            warnings.push(format!("{}: {e}", dir.display()));
            continue;
        }
        if dir.file_name().is_some_and(|n| n == "scanban") {
            if let Err(e) =
                std::os::unix::fs::chown(dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            {
                warnings.push(format!("{}: chown to {name}: {e}", dir.display()));
            }
        } else if !writable_by(dir, user.uid, user.gid) {
            warnings.push(format!(
                "{} is not writable by user {name}: files there will not be updated",
                dir.display()
            ));
        }
    }
    let err = |step, source| Error::Become {
        name: name.to_string(),
        step,
        source,
    };
    let caps_err = |doing| move |source| Error::Capabilities { doing, source };
    nix::sys::prctl::set_keepcaps(true).map_err(|e| err("keepcaps", e))?;
    nix::unistd::setgroups(&[user.gid]).map_err(|e| err("setgroups", e))?;
    nix::unistd::setresgid(user.gid, user.gid, user.gid).map_err(|e| err("setresgid", e))?;
    nix::unistd::setresuid(user.uid, user.uid, user.uid).map_err(|e| err("setresuid", e))?;
    // The switch cleared the effective set; the permitted one survived (keepcaps). Raise them
    // again so the capability drop that follows may change the bounding set.
    let permitted =
        caps::read(None, CapSet::Permitted).map_err(caps_err("reading capabilities"))?;
    caps::set(None, CapSet::Effective, &permitted).map_err(caps_err("raising capabilities"))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| err("keepcaps", e))?;
    Ok(warnings)
}

/// Whether `uid`/`gid` may create files in `dir`, by its owner and mode bits.
fn writable_by(dir: &Path, uid: Uid, gid: Gid) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(dir) else {
        return false;
    };
    let mode = m.mode();
    if m.uid() == uid.as_raw() {
        mode & 0o300 == 0o300
    } else if m.gid() == gid.as_raw() {
        mode & 0o030 == 0o030
    } else {
        mode & 0o003 == 0o003
    }
}

pub fn keep_only_net_admin() -> Result<(), Error> {
    let keep: CapsHashSet = [Capability::CAP_NET_ADMIN].into_iter().collect();
    let err = |doing| move |source| Error::Capabilities { doing, source };
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes next. Under a
    // service manager that already bounded us to CAP_NET_ADMIN there is nothing to drop.
    let bounding =
        caps::read(None, CapSet::Bounding).map_err(err("dropping capabilities (bounding)"))?;
    for c in bounding.difference(&keep) {
        caps::drop(None, CapSet::Bounding, *c).map_err(err("dropping capabilities (bounding)"))?;
    }
    caps::clear(None, CapSet::Ambient).map_err(err("dropping capabilities (ambient)"))?;
    caps::clear(None, CapSet::Inheritable).map_err(err("dropping capabilities (inheritable)"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(err("dropping capabilities (effective)"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(err("dropping capabilities (permitted)"))?;
    nix::sys::prctl::set_no_new_privs().map_err(Error::NoNewPrivs)?;
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
