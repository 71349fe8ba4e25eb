//! Everything `run` does before its threads start: check the kernel, install the table (after
//! `--reset`), restore saved bans, bind the queues, and drop to CAP_NET_ADMIN (as `user`).
//! An error here leaves the daemon before it reads a packet.

use std::path::{Path, PathBuf};

use detector::Allowlist;
use log::{error, info, warn};
use nfnl::queue::{QueueConfig, QueueSocket};
use nfnl::NlSocket;
use nft::probe::Features;
use nft::{Batch, Family};

use crate::bans::{self, Ban};
use crate::latency;
use crate::ruleset::{self, TABLE};
use crate::settings::{Mode, OpenPorts, Settings};
use crate::tail::Pass;

use super::watchdog::install;
use super::Error;

/// The kernel can do what these settings ask (managed mode queues and maybe needs `socket`);
/// logs how probes will be queued.
pub fn check_features(settings: &Settings, features: &Features) -> Result<(), Error> {
    if settings.mode != Mode::Managed {
        return Ok(());
    }
    if !features.native_queue && !features.compat_queue {
        return Err(Error::NoQueueing);
    }
    if !features.socket && settings.open_ports == OpenPorts::Socket {
        return Err(Error::NoSocketExpression);
    }
    info!(
        "probes are queued by {}; open ports are told by {}",
        if features.native_queue {
            "the nft queue expression"
        } else {
            "the xt NFQUEUE target through nft_compat (this kernel has no nft queue expression)"
        },
        if ruleset::uses_socket(settings, features) {
            "the nft socket expression"
        } else if features.socket {
            "sets of listening ports read from /proc (open-ports proc)"
        } else {
            "sets of listening ports read from /proc (this kernel has no nft socket expression)"
        }
    );
    Ok(())
}

/// `--reset`, the table installed, the saved bans restored; how many bans the sets hold.
pub fn prepare_table(
    sock: &mut NlSocket,
    settings: &Settings,
    features: &Features,
    allow: &Allowlist,
) -> Result<usize, Error> {
    if settings.reset {
        let mut b = Batch::new();
        b.remove_table(Family::Inet, TABLE, features.destroy);
        b.send(sock).map_err(|e| Error::kernel("--reset", e))?;
        info!("--reset: removed table inet {TABLE} and its bans");
    }
    install(sock, settings, features).map_err(|e| Error::kernel("installing the ruleset", e))?;
    match settings.state_file.as_ref() {
        // --reset means no bans at all: the saved ones stay out too (the file is rewritten
        // from the empty sets at the next save).
        Some(path) if settings.reset => {
            info!(
                "--reset: not restoring the bans saved in {}",
                path.display()
            )
        }
        Some(path) if !settings.dry_run => restore(sock, path, settings, allow),
        _ => {}
    }
    Ok(bans::list(sock, settings).map_or(0, |b| b.len()))
}

/// Puts the bans of the state file back, except those that would cover a protected address
/// (the allowlist may have grown since they were saved, or the file was edited).
fn restore(sock: &mut NlSocket, path: &Path, s: &Settings, allow: &Allowlist) {
    let saved = match crate::state::load(path, s.ipv6_prefix) {
        Ok(saved) => saved,
        Err(e) => return warn!("state file {}: {e}", path.display()),
    };
    let (refused, saved): (Vec<Ban>, Vec<Ban>) = saved
        .into_iter()
        .partition(|b| allow.covers_protected(&b.key));
    for b in &refused {
        warn!(
            "state file {}: not restoring the ban on {}: it covers a protected address",
            path.display(),
            b.key
        );
    }
    if saved.is_empty() {
        return;
    }
    match bans::add(sock, &saved) {
        Ok(()) => info!("restored {} ban(s) from {}", saved.len(), path.display()),
        Err(e) => error!("restoring bans from {}: {e}", path.display()),
    }
}

/// Every queue bound, each with the nf_tables socket its thread writes bans on. All are bound
/// before anything is announced: a queue already taken is a clean error.
pub fn bind_queues(settings: &Settings) -> Result<Vec<(QueueSocket, NlSocket)>, Error> {
    let mut queues = Vec::new();
    for n in settings.queue.first..=settings.queue.last {
        let nft = NlSocket::open().map_err(Error::Socket)?;
        let mut qc = QueueConfig::new(n);
        qc.copy_range = settings.copy_range;
        qc.max_len = settings.queue_max_len;
        qc.fail_open = Pass::for_settings(settings).fail_open();
        let q = QueueSocket::bind(&qc).map_err(Error::Bind)?;
        latency::enable_arrival_stamps(&q);
        queues.push((q, nft));
    }
    Ok(queues)
}

/// The line that says the daemon is ready, and how.
pub fn announce(settings: &Settings, kept: usize) {
    if settings.mode == Mode::Bouncer {
        return info!(
            "bouncer mode (no queue, no sensor){}; table inet {TABLE} ready with {kept} existing \
             ban(s)",
            if settings.dry_run {
                ", DRY RUN: nothing will be banned"
            } else {
                ""
            },
        );
    }
    info!(
        "{} mode, queue {}, verdict {:?}{}; table inet {TABLE} ready with {kept} existing ban(s)",
        match settings.mode {
            Mode::Managed => "managed",
            Mode::Tail => "tail",
            Mode::Bouncer => "bouncer",
        },
        settings.queue,
        settings.verdict,
        if settings.dry_run {
            ", DRY RUN: nothing will be banned"
        } else {
            ""
        },
    );
    if settings.mode == Mode::Managed {
        let sensed = crate::protect::sensed(settings.protect);
        info!("{}", sensed.why);
        if sensed.forward && settings.lan_interfaces.is_empty() {
            // A LAN device's own outgoing connections to closed ports (a P2P client) answer
            // like a scan of it; only `lan-interfaces` tells the router which side it is on.
            info!(
                "lan-interfaces is not set: a source scanning from any interface is banned;                  name the LAN side to have its devices reported instead (ban-lan bans them too)"
            );
        }
    }
    if let Some(line) = crate::tail::startup_line(settings) {
        info!("{line}");
    }
}

/// Becomes `user` if one is set, then keeps CAP_NET_ADMIN alone. No thread may exist yet.
pub fn drop_privileges(settings: &Settings) -> Result<(), Error> {
    if let Some(user) = &settings.user {
        let dirs = written_dirs(settings);
        let dirs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
        for w in crate::privilege::become_user(user, &dirs)? {
            warn!("user {user}: {w}");
        }
        info!("running as user {user}");
    }
    crate::privilege::keep_only_net_admin()?;
    log::debug!("privileges: {}", crate::privilege::status_line());
    Ok(())
}

/// The directories of the files `run` writes (stats, metrics, state, events).
fn written_dirs(s: &Settings) -> Vec<PathBuf> {
    let files = [
        Some(&s.stats_file),
        s.metrics_file.as_ref(),
        s.state_file.as_ref(),
        s.events.as_ref().filter(|p| p.as_os_str() != "-"),
    ];
    let mut dirs: Vec<PathBuf> = files
        .into_iter()
        .flatten()
        .filter_map(|f| f.parent().map(|d| d.to_path_buf()))
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}
