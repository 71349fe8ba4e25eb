//! `scanban run`. The parts, and the path of one probe through them:
//!
//! - `queue_reader` — the NFQUEUE input: one thread per queue receives a batch and hands it to
//!   its `Pipeline`, then sends every verdict of the batch in one message;
//! - `pipeline` — what does not depend on the input: observe each packet in the detector shard
//!   that owns its source (`shards`; a shard's packets of the batch together, under one
//!   lock), then write the bans the batch decided in one nf_tables
//!   transaction (sparing a source with an aged management session) before the verdicts go;
//!   a new input (another chain's sensor, decisions from elsewhere) is a new reader that
//!   calls the pipeline;
//! - `follow_up` — a thread that logs each ban (and writes its JSON event) and keeps the ban
//!   book, out of the ban's path;
//! - `housekeeping` — the main thread: signals, and once a second the detectors' timers, the
//!   `watchdog` (the table restored, bans included), the `retry` of failed ban writes, the
//!   management sessions, the open-port sets (`open_ports`), the reconciling of the ban book
//!   with the kernel, the stats file (`stats_file`) and the state file;
//! - `startup` — what happens before any thread starts; `config` — settings made into
//!   detector configuration and allowlist, and SIGHUP reloads; `shared` — what the threads
//!   share; `timer` — the `Every` of periodic work.

mod config;
mod fleet;
mod follow_up;
mod housekeeping;
mod lan_side;
mod open_ports;
mod pipeline;
mod queue_reader;
mod retry;
mod shards;
mod shared;
mod startup;
mod stats_file;
mod timer;
mod watchdog;

use std::fmt;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{debug, error, info};
use nfnl::NlSocket;
use nft::{Batch, Family};

use crate::fleet::remote::{AllowlistUpdates, RemoteBans};
use crate::fleet::DecisionSink;
use crate::ruleset::{self, TABLE};
use crate::settings::{Mode, OnExit, SettingError, Settings};
use crate::signals::Signals;

pub use config::detector_config;

use fleet::Fleet;
use follow_up::Report;
use housekeeping::Housekeeping;
use open_ports::OpenPortSets;
use pipeline::{Pipeline, BAN_BATCH_MAX};
use shards::Shards;
use shared::Shared;

/// Why the daemon could not start.
#[derive(Debug)]
pub enum Error {
    /// A netlink socket could not be opened.
    Socket(std::io::Error),
    /// A netlink exchange failed: what was being done, and the kernel's answer.
    Kernel {
        doing: &'static str,
        source: nfnl::Error,
    },
    /// A queue could not be bound (taken by another process, or refused).
    Bind(nfnl::Error),
    /// Managed mode on a kernel that can queue no packet from nf_tables.
    NoQueueing,
    /// `open-ports socket` on a kernel without the nft socket expression.
    NoSocketExpression,
    Signals(std::io::Error),
    Privilege(crate::privilege::Error),
    /// A LAPI setting that cannot be used (a bad URL, an unreadable or world-readable secret).
    Fleet(crate::fleet::lapi::ConfigError),
    /// A thread could not be started.
    Thread(std::io::Error),
}

impl Error {
    fn kernel(doing: &'static str, source: nfnl::Error) -> Self {
        Error::Kernel { doing, source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Socket(e) => write!(f, "netlink socket: {e}"),
            Error::Kernel { doing, source } => write!(f, "{doing}: {source}"),
            Error::Bind(e) => e.fmt(f),
            Error::NoQueueing => f.write_str(
                "this kernel has neither the nft `queue` expression (nft_queue; \
                 kmod-nft-queue on OpenWrt) nor nft_compat with xt_NFQUEUE: \
                 scanban cannot queue probes",
            ),
            Error::NoSocketExpression => f.write_str(
                "this kernel lacks the nft `socket` expression (nft_socket; \
                 kmod-nft-socket on OpenWrt) that open-ports socket asks for: install \
                 it, or use open-ports auto or proc (listening ports read from /proc)",
            ),
            Error::Signals(e) => write!(f, "signals: {e}"),
            Error::Privilege(e) => e.fmt(f),
            Error::Fleet(e) => e.fmt(f),
            Error::Thread(e) => write!(f, "starting a thread: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::privilege::Error> for Error {
    fn from(e: crate::privilege::Error) -> Self {
        Error::Privilege(e)
    }
}

/// Runs until SIGTERM/SIGINT. `reload` re-reads the configuration on SIGHUP.
pub fn run(
    settings: Settings,
    reload: &dyn Fn() -> Result<Settings, SettingError>,
) -> Result<(), Error> {
    let mut sock = NlSocket::open().map_err(Error::Socket)?;
    let features =
        nft::probe::probe(&mut sock).map_err(|e| Error::kernel("probing nf_tables", e))?;
    debug!("kernel features: {features:?}");
    startup::check_features(&settings, &features)?;
    let fleet_config = fleet::config(&settings)?;
    let allow = config::allowlist(&settings);
    let kept = startup::prepare_table(&mut sock, &settings, &features, &allow)?;
    // Open ports must be known before the first packet is queued.
    let mut open_ports = (settings.mode == Mode::Managed
        && !ruleset::uses_socket(&settings, &features))
    .then(OpenPortSets::default);
    if let Some(o) = &mut open_ports {
        o.refresh(&mut sock);
    }
    // A bouncer only enforces: no queue, so no reader thread and no detection.
    let queues = if settings.mode == Mode::Bouncer {
        Vec::new()
    } else {
        startup::bind_queues(&settings)?
    };
    let mut signals = Signals::install().map_err(Error::Signals)?;
    // Everything that needed more than CAP_NET_ADMIN is done; no thread exists yet.
    startup::drop_privileges(&settings)?;
    // After the drop: what "ready" announces runs with the privileges it will keep.
    startup::announce(&settings, kept);

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let dconf = detector_config(&settings, Shards::COUNT);
    let fleet = Fleet::start(fleet_config, &settings, &allow, &features)?;
    let shards = Shards::new(&dconf, seed, &allow);
    let shared = Arc::new(Shared::new(&settings, shards, fleet.handles()));
    info!(
        "allowlist: {} entries (configured, own addresses, gateways, resolvers); {} on-link \
         IPv6 prefix(es) keyed per address",
        allow.entries().len(),
        allow.on_link().len()
    );
    housekeeping::read_sessions(&shared);

    let (tx, rx) = mpsc::sync_channel::<Report>(BAN_BATCH_MAX);
    let readers: Vec<JoinHandle<()>> = queues
        .into_iter()
        .map(|(q, nft)| {
            let pipeline = Pipeline::new(Arc::clone(&shared), nft, tx.clone());
            std::thread::spawn(move || queue_reader::read_queue(q, pipeline))
        })
        .collect();
    let follow_up = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || follow_up::follow_up_bans(rx, &shared))
    };
    // The main thread keeps a sender for the bans it writes on a retry.
    let mut main = Housekeeping::new(
        sock,
        settings,
        features,
        Arc::clone(&shared),
        tx,
        open_ports,
        kept as u64,
    );
    main.run(&mut signals, reload);
    shutdown(main, readers, follow_up, fleet, features.destroy);
    Ok(())
}

/// The sink the fleet's decision stream (the LAPI poll loop of `fleet::lapi`) writes through:
/// the remote-ban sets of the table `run` installed, refusing what `allow` protects, and the
/// handle that hands it a new allowlist. Its own netlink socket, so it may live in its own
/// thread.
pub fn remote_sink(
    allow: &detector::Allowlist,
    features: &nft::probe::Features,
    max_decisions: u32,
) -> Result<(Box<dyn DecisionSink>, AllowlistUpdates), Error> {
    let sock = NlSocket::open().map_err(Error::Socket)?;
    let sink = RemoteBans::new(sock, allow.clone(), features.destroy).limit(max_decisions);
    let updates = sink.allowlist_updates();
    Ok((Box::new(sink), updates))
}

/// After SIGTERM: the bans saved, the readers' queues released, the follow-up thread drained,
/// the fleet's last alerts pushed, and the table removed if `on-exit remove`.
fn shutdown(
    mut main: Housekeeping,
    readers: Vec<JoinHandle<()>>,
    follow_up: JoinHandle<()>,
    fleet: Fleet,
    destroy: bool,
) {
    housekeeping::save_state(&mut main.sock, &main.settings);
    for r in readers {
        let _ = r.join();
    }
    // The last sender goes with `main`: the follow-up thread ends once it has logged all.
    let (mut sock, settings) = main.into_parts();
    let _ = follow_up.join();
    fleet.stop();
    if settings.on_exit == OnExit::Remove {
        let mut b = Batch::new();
        b.remove_table(Family::Inet, TABLE, destroy);
        match b.send(&mut sock) {
            Ok(()) => info!("removed table inet {TABLE} (--on-exit remove)"),
            Err(e) => error!("removing table inet {TABLE}: {e}"),
        }
    } else {
        info!("bans stay in the kernel and expire on their own");
    }
}
