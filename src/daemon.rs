//! `scanban run`: queue threads feed sharded detectors and write the bans they decide, a
//! follow-up thread logs them, and the main thread handles signals, the stats file, the auto-allowlist and the watchdog.
//!
//! Threads:
//! - one per queue: receive a batch, parse and observe each packet (under the lock of the
//!   detector shard that owns its source), write the bans the batch decided in one nf_tables
//!   transaction (sparing a source with an aged management session, see `sessions`), then
//!   verdict the batch in one send. Nothing is allocated or logged per packet;
//! - the ban follow-up: one log line (and event) per ban, and the ban book;
//! - main: signals (SIGTERM/SIGINT stop, SIGHUP reloads the allowlist), and once a second the
//!   stats file, the ruleset watchdog (an admin's `nft flush ruleset` is repaired within a
//!   second, bans included), bans whose write failed written again, the management sessions
//!   read, and the reconciling of the ban book with the kernel sets.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use detector::{Action, Allowlist, Cidr, Detector, Outcome, SourceKey};
use log::{debug, error, info, warn};
use nfnl::queue::{QueueConfig, QueueSocket, Verdict, VerdictBatcher};
use nfnl::NlSocket;
use nft::probe::Features;
use nft::{dump, Batch, Family};

use crate::ban_book::BanBook;
use crate::bans::{self, Ban, COMMENT_MAX};
use crate::duration;
use crate::hostinfo;
use crate::latency::{self, Acked, BanLatencies, Probe};
use crate::ruleset::{self, TABLE};
use crate::sessions::Sessions;
use crate::settings::{Mode, OnExit, OpenPorts, ProbeVerdict, Settings};
use crate::signals::{SignalEvent, Signals};
use crate::stats::{self, Counter};
use crate::tail::{CameBack, Pass};

/// Detector shards: enough that queue threads rarely wait on the same lock.
const SHARDS: usize = 8;
/// The management sessions are read this often: a read walks the kernel's whole
/// established-hash table (10 ms on a 24 GiB server), and a session must be minutes old to
/// spare anyone, so a few seconds late is nothing.
const SESSIONS_EVERY: Duration = Duration::from_secs(5);
/// A ban whose write failed (the table being restored, the set full) is tried again once a
/// second for this long, its source's probes dropped meanwhile; then the source is forgotten,
/// so its next probes count afresh.
const RETRY_FOR: Duration = Duration::from_secs(60);
/// Failed bans waiting for a retry, at most.
const RETRY_MAX: usize = 4096;
/// Bans retried one by one per tick when they fail together (a full set refuses a whole
/// transaction for one element too many).
const RETRY_SINGLE_MAX: usize = 64;
/// Most bans written in one transaction; more wait for the next one.
const BAN_BATCH_MAX: usize = 4096;
/// The ban book is compared with the kernel sets this often while they are small...
const RECONCILE_SMALL: Duration = Duration::from_secs(2);
/// ...and this often past `RECONCILE_SMALL_MAX` bans (a dump of 100k elements takes ~0.1 s).
const RECONCILE_LARGE: Duration = Duration::from_secs(10);
const RECONCILE_SMALL_MAX: usize = 10_000;
const ALLOWLIST_REFRESH: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Counts {
    packets: AtomicU64,
    malformed: AtomicU64,
    bans_applied: AtomicU64,
    ban_errors: AtomicU64,
    /// Bans written on a retry, and bans given up (their source forgotten).
    bans_retried: AtomicU64,
    bans_lost: AtomicU64,
    spared: AtomicU64,
    set_full: AtomicU64,
    unlogged: AtomicU64,
    ruleset_repairs: AtomicU64,
}

/// Probes that failed open: the sensor's queue rules matched them (rule counters, read by the
/// watchdog's dump) but scanban never received them, because the queue was full and the kernel
/// let them through. The kernel counts no such packets itself when the queue fails open.
#[derive(Default)]
struct FailOpen {
    /// The rule counters' last value, and everything they counted before a reinstall reset them.
    last_counter: u64,
    counted: u64,
    /// `counted - received` at the last log line, to log only what is new.
    logged: u64,
    estimate: u64,
}

impl FailOpen {
    /// `counter`: the queue rules' counters now; `received`: packets scanban has received.
    /// The dump comes first, so packets still in flight are rare and only ever delay the count.
    fn update(&mut self, counter: u64, received: u64) {
        if counter < self.last_counter {
            // The table was reinstalled: its counters started again from 0.
            self.counted += self.last_counter;
        }
        self.last_counter = counter;
        self.estimate = (self.counted + counter).saturating_sub(received);
    }

    /// New failed-open probes since the last call, for the log.
    fn news(&mut self) -> u64 {
        let new = self.estimate.saturating_sub(self.logged);
        self.logged = self.logged.max(self.estimate);
        new
    }
}

/// Lets a repeated error through to the log once per `every`.
struct Throttle {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: Mutex::new(None),
        }
    }

    fn should_say(&self, now: Instant) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        if last.is_some_and(|l| now.duration_since(l) < self.every) {
            return false;
        }
        *last = Some(now);
        true
    }
}

struct Shared {
    detectors: Vec<Mutex<Detector>>,
    ipv6_prefix: u8,
    /// The verdict for probes; a reload may change it.
    drop_probes: AtomicBool,
    /// Settings the ban applier reads (dry run, events); a reload may change them.
    settings: Mutex<Settings>,
    stop: AtomicBool,
    counts: Counts,
    start: Instant,
    /// What the applier wrote, to restore after a table deletion.
    book: Mutex<BanBook>,
    latencies: Mutex<BanLatencies>,
    /// Management sessions, as the main thread last read them.
    sessions: Mutex<Sessions>,
    /// Bans whose kernel write failed, for the main thread to retry.
    retry: Mutex<Vec<Failed>>,
    /// A dry run changes no verdict and writes no ban (restart-only).
    dry_run: bool,
    set_full_said: Throttle,
}

/// A ban whose write failed, and when it first did.
struct Failed {
    ban: Ban,
    evidence: detector::Evidence,
    since: Instant,
}

/// A ban decided by a detector, with its probe's times (batch received, kernel timestamp).
struct Decided {
    action: Action,
    seen: Probe,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The detector shard that owns `key`: the same for every key of one source (a narrowed
    /// /128 and its prefix alike), whichever queue carried the probe.
    fn shard(&self, key: &SourceKey) -> &Mutex<Detector> {
        &self.detectors[key.widen(self.ipv6_prefix).shard(SHARDS)]
    }

    fn forget(&self, key: &SourceKey) {
        if let Ok(mut d) = self.shard(key).lock() {
            d.forget(key);
        }
    }
}

/// The detector's configuration from the settings, for one of `shards` shards.
pub fn detector_config(s: &Settings, shards: usize) -> detector::Config {
    let shards = shards.max(1) as u32;
    detector::Config {
        threshold: s.threshold,
        weight_privileged: s.weight_privileged,
        weight_other: s.weight_other,
        weight_stealth: s.weight_stealth,
        leak_every_ms: s.leak_every.as_millis() as u64,
        ipv6_prefix: s.ipv6_prefix,
        allow: s.allow.clone(),
        capacity: (s.capacity / shards).max(16) as usize,
        ban_ms: s.ban_time.as_millis() as u64,
        ban_factor: s.ban_factor,
        ban_max_ms: s.ban_max.as_millis() as u64,
        offender_memory_ms: s.offender_memory.as_millis() as u64,
        offender_capacity: detector::Config::offender_capacity_for((s.capacity / shards) as usize)
            .max(16),
        ban_jitter_percent: s.ban_jitter_percent,
        // One budget, shared by every shard (`Detector::share_limiter`).
        ban_rate: s.ban_rate,
        ban_burst: detector::Config::burst_for(s.ban_rate),
    }
}

/// The configured allowlist plus this host's addresses, gateways and resolvers, and its
/// on-link IPv6 prefixes (whose sources are keyed per address).
fn allowlist(s: &Settings) -> Allowlist {
    let mut all: Vec<Cidr> = s.allow.clone();
    let if_inet6 = hostinfo::read("/proc/net/if_inet6");
    let own = hostinfo::own_addresses(&hostinfo::read("/proc/net/fib_trie"), &if_inet6);
    let gw = hostinfo::gateways(
        &hostinfo::read("/proc/net/route"),
        &hostinfo::read("/proc/net/ipv6_route"),
    );
    let dns = hostinfo::all_resolvers();
    all.extend(own.iter().chain(&gw).chain(&dns).map(|a| Cidr::host(*a)));
    Allowlist::new(all).with_on_link(hostinfo::on_link_prefixes(&if_inet6))
}

/// The directories of the files `run` writes (stats, metrics, state, events).
fn written_dirs(s: &Settings) -> Vec<std::path::PathBuf> {
    let files = [
        Some(&s.stats_file),
        s.metrics_file.as_ref(),
        s.state_file.as_ref(),
        s.events.as_ref().filter(|p| p.as_os_str() != "-"),
    ];
    let mut dirs: Vec<std::path::PathBuf> = files
        .into_iter()
        .flatten()
        .filter_map(|f| f.parent().map(|d| d.to_path_buf()))
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Installs (or repairs) what this mode needs in the kernel.
fn install(sock: &mut NlSocket, s: &Settings, f: &Features) -> Result<(), nfnl::Error> {
    let parts = ruleset::Parts::for_run(s);
    let rs = ruleset::build(s, f, parts);
    let mut batch = Batch::new();
    rs.install(&mut batch);
    if !parts.sensor {
        // A sensor left by an earlier managed run would keep queueing.
        let chains = dump::list_chains(sock, Family::Inet, TABLE).unwrap_or_default();
        if chains.iter().any(|c| c.name == "sensor") {
            batch.flush_chain(Family::Inet, TABLE, "sensor");
            batch.delete_chain(Family::Inet, TABLE, "sensor");
        }
    }
    batch.send(sock)
}

/// Runs until SIGTERM/SIGINT. `reload` re-reads the configuration on SIGHUP.
pub fn run(
    mut settings: Settings,
    reload: &dyn Fn() -> Result<Settings, crate::settings::SettingError>,
) -> Result<(), String> {
    let mut sock = NlSocket::open().map_err(|e| format!("netlink socket: {e}"))?;
    let features = nft::probe::probe(&mut sock).map_err(|e| format!("probing nf_tables: {e}"))?;
    debug!("kernel features: {features:?}");
    if settings.mode == Mode::Managed {
        if !features.native_queue && !features.compat_queue {
            return Err(
                "this kernel has neither the nft `queue` expression (nft_queue; \
                        kmod-nft-queue on OpenWrt) nor nft_compat with xt_NFQUEUE: \
                        scanban cannot queue probes"
                    .into(),
            );
        }
        if !features.socket && settings.open_ports == OpenPorts::Socket {
            return Err(
                "this kernel lacks the nft `socket` expression (nft_socket; \
                        kmod-nft-socket on OpenWrt) that open-ports socket asks for: install \
                        it, or use open-ports auto or proc (listening ports read from /proc)"
                    .into(),
            );
        }
    }
    if settings.mode == Mode::Managed {
        info!(
            "probes are queued by {}; open ports are told by {}",
            if features.native_queue {
                "the nft queue expression"
            } else {
                "the xt NFQUEUE target through nft_compat (this kernel has no nft queue expression)"
            },
            if ruleset::uses_socket(&settings, &features) {
                "the nft socket expression"
            } else if features.socket {
                "sets of listening ports read from /proc (open-ports proc)"
            } else {
                "sets of listening ports read from /proc (this kernel has no nft socket expression)"
            }
        );
    }
    if settings.reset {
        let mut b = Batch::new();
        b.remove_table(Family::Inet, TABLE, features.destroy);
        b.send(&mut sock).map_err(|e| format!("--reset: {e}"))?;
        info!("--reset: removed table inet {TABLE} and its bans");
    }
    install(&mut sock, &settings, &features).map_err(|e| format!("installing the ruleset: {e}"))?;
    let allow = allowlist(&settings);
    match settings.state_file.as_ref() {
        // --reset means no bans at all: the saved ones stay out too (the file is rewritten
        // from the empty sets at the next save).
        Some(path) if settings.reset => {
            info!(
                "--reset: not restoring the bans saved in {}",
                path.display()
            )
        }
        Some(path) if !settings.dry_run => restore(&mut sock, path, &settings, &allow),
        _ => {}
    }
    let kept = bans::list(&mut sock, settings.ipv6_prefix)
        .map(|b| b.len())
        .unwrap_or(0);
    // Open ports must be known before the first packet is queued.
    let mut open_ports = OpenPortSets::default();
    let port_sets = settings.mode == Mode::Managed && !ruleset::uses_socket(&settings, &features);
    if port_sets {
        open_ports.refresh(&mut sock);
    }
    // Bind every queue before announcing anything: a queue already taken is a clean error.
    let mut queues = Vec::new();
    let mut nft_socks = Vec::new();
    for n in settings.queue.first..=settings.queue.last {
        nft_socks.push(NlSocket::open().map_err(|e| format!("netlink socket: {e}"))?);
        let mut qc = QueueConfig::new(n);
        qc.copy_range = settings.copy_range;
        qc.max_len = settings.queue_max_len;
        qc.fail_open = Pass::for_settings(&settings).fail_open();
        let q = QueueSocket::bind(&qc).map_err(|e| format!("{e}"))?;
        latency::enable_arrival_stamps(&q);
        queues.push(q);
    }
    info!(
        "{} mode, queue {}, verdict {:?}{}; table inet {TABLE} ready with {kept} existing ban(s)",
        match settings.mode {
            Mode::Managed => "managed",
            Mode::Tail => "tail",
        },
        settings.queue,
        settings.verdict,
        if settings.dry_run {
            ", DRY RUN: nothing will be banned"
        } else {
            ""
        },
    );
    if let Some(line) = crate::tail::startup_line(&settings) {
        info!("{line}");
    }

    let mut signals = Signals::install().map_err(|e| format!("signals: {e}"))?;
    // Everything that needed more than CAP_NET_ADMIN is done; no thread exists yet.
    if let Some(user) = &settings.user {
        let dirs = written_dirs(&settings);
        let dirs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
        for w in crate::privilege::become_user(user, &dirs)? {
            warn!("user {user}: {w}");
        }
        info!("running as user {user}");
    }
    crate::privilege::keep_only_net_admin()?;
    debug!("privileges: {}", crate::privilege::status_line());
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let dconf = detector_config(&settings, SHARDS);
    let first = Detector::new(dconf.clone(), seed);
    let limiter = first.limiter();
    let shared = Arc::new(Shared {
        detectors: std::iter::once(first)
            .chain((1..SHARDS).map(|i| Detector::new(dconf.clone(), seed.wrapping_add(i as u64))))
            .map(|mut d| {
                d.set_allowlist(allow.clone());
                d.share_limiter(limiter.clone());
                Mutex::new(d)
            })
            .collect(),
        ipv6_prefix: settings.ipv6_prefix,
        drop_probes: AtomicBool::new(settings.verdict == ProbeVerdict::Drop),
        settings: Mutex::new(settings.clone()),
        stop: AtomicBool::new(false),
        counts: Counts::default(),
        start: Instant::now(),
        book: Mutex::new(BanBook::default()),
        latencies: Mutex::new(BanLatencies::default()),
        sessions: Mutex::new(Sessions::new(
            &settings.spare_ports,
            settings.spare_after.as_millis() as u64,
        )),
        retry: Mutex::new(Vec::new()),
        dry_run: settings.dry_run,
        set_full_said: Throttle::new(Duration::from_secs(60)),
    });
    info!(
        "allowlist: {} entries (configured, own addresses, gateways, resolvers); {} on-link \
         IPv6 prefix(es) keyed per address",
        allow.entries().len(),
        allow.on_link().len()
    );
    read_sessions(&shared);

    let (tx, rx) = mpsc::sync_channel::<Report>(BAN_BATCH_MAX);
    let readers: Vec<JoinHandle<()>> = queues
        .into_iter()
        .zip(nft_socks)
        .map(|(q, nft)| {
            let shared = Arc::clone(&shared);
            let tx = tx.clone();
            std::thread::spawn(move || read_queue(q, nft, &shared, &tx))
        })
        .collect();
    // The main thread keeps a sender for the bans it writes on a retry.
    let retry_tx = tx;
    let follow_up = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || follow_up_bans(rx, &shared))
    };

    let mut last_allow = Instant::now();
    let mut last_sessions = Instant::now();
    let mut last_save = Instant::now();
    let mut last_reconcile: Option<Instant> = None;
    let mut failed_open = FailOpen::default();
    let mut failed_open_said: Option<Instant> = None;
    let mut active_bans = kept as u64;

    while !shared.stop.load(Ordering::Relaxed) {
        match signals.wait(Duration::from_secs(1)) {
            Ok(Some(SignalEvent::Stop)) => {
                info!("stopping");
                shared.stop.store(true, Ordering::Relaxed);
            }
            Ok(Some(SignalEvent::Reload)) => {
                match reload() {
                    Ok(new) => {
                        settings = apply_reload(&shared, &settings, new);
                        info!("SIGHUP: configuration reloaded, tracking state kept");
                    }
                    Err(e) => {
                        error!("SIGHUP: invalid configuration, keeping the current one: {e}")
                    }
                }
                last_allow = Instant::now();
            }
            Ok(None) if last_allow.elapsed() >= ALLOWLIST_REFRESH => {
                refresh_allowlist(&shared, &settings);
                last_allow = Instant::now();
            }
            Ok(None) => {}
            Err(e) => warn!("signals: {e}"),
        }
        let now = shared.now_ms();
        for d in &shared.detectors {
            if let Ok(mut d) = d.lock() {
                if now >= d.next_deadline() {
                    d.on_timer(now);
                }
            }
        }
        watchdog(&mut sock, &settings, &features, &shared, &mut failed_open);
        retry_bans(&mut sock, &shared, &retry_tx);
        if last_sessions.elapsed() >= SESSIONS_EVERY {
            read_sessions(&shared);
            last_sessions = Instant::now();
        }
        if failed_open_said.map_or(true, |t| t.elapsed() >= Duration::from_secs(60)) {
            let new = failed_open.news();
            if new > 0 {
                warn!(
                    "queue full: {new} probe(s) went through unexamined (failed open); raise \
                     queue-max-len or add queues if this goes on"
                );
                failed_open_said = Some(Instant::now());
            }
        }
        if port_sets {
            open_ports.refresh(&mut sock);
        }
        let every = if active_bans as usize > RECONCILE_SMALL_MAX {
            RECONCILE_LARGE
        } else {
            RECONCILE_SMALL
        };
        if last_reconcile.map_or(true, |t| t.elapsed() >= every) {
            if let Some(n) = reconcile(&mut sock, &settings, &shared) {
                active_bans = n;
            }
            last_reconcile = Some(Instant::now());
        }
        write_stats(&shared, &settings, active_bans, failed_open.estimate);
        if last_save.elapsed() >= crate::state::SAVE_EVERY {
            save_state(&mut sock, &settings);
            last_save = Instant::now();
        }
    }
    save_state(&mut sock, &settings);
    for r in readers {
        let _ = r.join();
    }
    drop(retry_tx);
    let _ = follow_up.join();
    if settings.on_exit == OnExit::Remove {
        let mut b = Batch::new();
        b.remove_table(Family::Inet, TABLE, features.destroy);
        match b.send(&mut sock) {
            Ok(()) => info!("removed table inet {TABLE} (--on-exit remove)"),
            Err(e) => error!("removing table inet {TABLE}: {e}"),
        }
    } else {
        info!("bans stay in the kernel and expire on their own");
    }
    Ok(())
}

/// The listening ports last written to the open-port sets.
#[derive(Default)]
struct OpenPortSets {
    tcp: std::collections::BTreeSet<u16>,
    udp: std::collections::BTreeSet<u16>,
    written: bool,
}

impl OpenPortSets {
    /// Rewrites the sets when the host's listening ports changed (or were never written, or
    /// the table was restored).
    fn refresh(&mut self, sock: &mut NlSocket) {
        let read = |f: &str| hostinfo::read(f);
        let mut tcp = hostinfo::open_ports(&read("/proc/net/tcp"), true);
        tcp.extend(hostinfo::open_ports(&read("/proc/net/tcp6"), true));
        let mut udp = hostinfo::open_ports(&read("/proc/net/udp"), false);
        udp.extend(hostinfo::open_ports(&read("/proc/net/udp6"), false));
        let in_kernel = dump::list_elements(sock, Family::Inet, TABLE, ruleset::OPEN_TCP)
            .map(|e| e.len())
            .unwrap_or(usize::MAX);
        if self.written && tcp == self.tcp && udp == self.udp && in_kernel == tcp.len() {
            return;
        }
        let mut b = Batch::new();
        for (set, ports) in [(ruleset::OPEN_TCP, &tcp), (ruleset::OPEN_UDP, &udp)] {
            b.flush_set(Family::Inet, TABLE, set);
            let elements: Vec<nft::Element> = ports
                .iter()
                .map(|p| nft::Element::new(&p.to_be_bytes()))
                .collect();
            if !elements.is_empty() {
                b.add_elements(Family::Inet, TABLE, set, &elements);
            }
        }
        match b.send(sock) {
            Ok(()) => {
                debug!("open ports: tcp {tcp:?} udp {udp:?}");
                self.tcp = tcp;
                self.udp = udp;
                self.written = true;
            }
            Err(e) => warn!("updating the open-port sets: {e}"),
        }
    }
}

/// Puts the bans of the state file back, except those that would cover a protected address
/// (the allowlist may have grown since they were saved, or the file was edited).
fn restore(sock: &mut NlSocket, path: &std::path::Path, s: &Settings, allow: &Allowlist) {
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

/// Reads the established TCP sessions into the management-session book.
fn read_sessions(shared: &Shared) {
    let mut all = hostinfo::established_sessions(&hostinfo::read("/proc/net/tcp"));
    all.extend(hostinfo::established_sessions(&hostinfo::read(
        "/proc/net/tcp6",
    )));
    let now = shared.now_ms();
    if let Ok(mut s) = shared.sessions.lock() {
        s.refresh(all, now);
    }
}

/// Writes again the bans whose write failed; gives up on those older than `RETRY_FOR` and
/// forgets their source, so its next probes are counted (and banned) afresh.
fn retry_bans(sock: &mut NlSocket, shared: &Shared, follow_up: &SyncSender<Report>) {
    let failed = match shared.retry.lock() {
        Ok(mut r) if !r.is_empty() => std::mem::take(&mut *r),
        _ => return,
    };
    let now = Instant::now();
    let (expired, failed): (Vec<Failed>, Vec<Failed>) = failed
        .into_iter()
        .partition(|f| now.duration_since(f.since) >= RETRY_FOR);
    for f in &expired {
        shared.forget(&f.ban.key);
        shared.counts.bans_lost.fetch_add(1, Ordering::Relaxed);
        warn!(
            "gave up writing the ban on {} after {}: it will be counted afresh",
            f.ban.key,
            duration::Human(RETRY_FOR)
        );
    }
    if failed.is_empty() {
        return;
    }
    // All in one transaction first; if that fails (one full set fails them all), one by one,
    // a bounded number per tick, so those that fit get in.
    let bans: Vec<Ban> = failed.iter().map(|f| f.ban.clone()).collect();
    let (written, left): (Vec<Failed>, Vec<Failed>) = if bans::add(sock, &bans).is_ok() {
        (failed, Vec::new())
    } else {
        let mut tries = 0;
        failed.into_iter().partition(|f| {
            tries += 1;
            tries <= RETRY_SINGLE_MAX && bans::add(sock, std::slice::from_ref(&f.ban)).is_ok()
        })
    };
    if let Ok(mut r) = shared.retry.lock() {
        r.extend(left);
    }
    if written.is_empty() {
        return;
    }
    let n = written.len() as u64;
    shared.counts.bans_retried.fetch_add(n, Ordering::Relaxed);
    shared.counts.bans_applied.fetch_add(n, Ordering::Relaxed);
    let report = Report {
        evidence: written.iter().map(|f| f.evidence).collect(),
        written: written.into_iter().map(|f| f.ban).collect(),
        spared: Vec::new(),
        dry_run: false,
    };
    if follow_up.try_send(report).is_err() {
        shared.counts.unlogged.fetch_add(n, Ordering::Relaxed);
    }
}

fn save_state(sock: &mut NlSocket, s: &Settings) {
    let Some(path) = &s.state_file else { return };
    match bans::list(sock, s.ipv6_prefix) {
        Ok(all) => match crate::state::save(path, &all) {
            Ok(()) => debug!("saved {} ban(s) to {}", all.len(), path.display()),
            Err(e) => warn!("state file {}: {e}", path.display()),
        },
        Err(e) => warn!("listing bans for the state file: {e}"),
    }
}

/// Applies what a reload may change at run time; what needs a restart keeps its old value, and
/// the log says so.
fn apply_reload(shared: &Shared, old: &Settings, mut new: Settings) -> Settings {
    let mut restart = Vec::new();
    macro_rules! keep {
        ($field:ident, $name:expr) => {
            if new.$field != old.$field {
                restart.push($name);
                new.$field = old.$field.clone();
            }
        };
    }
    keep!(mode, "mode");
    keep!(queue, "queue");
    keep!(copy_range, "copy-range");
    keep!(queue_max_len, "queue-max-len");
    keep!(tail_mark, "tail-mark");
    keep!(capacity, "capacity");
    keep!(set_size, "set-size");
    keep!(ipv6_prefix, "ipv6-prefix");
    keep!(stats_file, "stats-file");
    // The sensor's form (socket expression or port sets) and whether the ban sets exist are
    // set up at start; a repair must rebuild the same ruleset.
    keep!(open_ports, "open-ports");
    keep!(dry_run, "dry-run");
    keep!(user, "user");
    if !restart.is_empty() {
        warn!("SIGHUP: {} only change(s) at restart", restart.join(", "));
    }
    let policy = detector_config(&new, SHARDS);
    let allow = allowlist(&new);
    if let Ok(mut s) = shared.sessions.lock() {
        s.configure(&new.spare_ports, new.spare_after.as_millis() as u64);
    }
    for d in &shared.detectors {
        if let Ok(mut d) = d.lock() {
            d.set_policy(policy.clone());
            d.set_allowlist(allow.clone());
        }
    }
    shared
        .drop_probes
        .store(new.verdict == ProbeVerdict::Drop, Ordering::Relaxed);
    if let Ok(mut s) = shared.settings.lock() {
        *s = new.clone();
    }
    new
}

fn refresh_allowlist(shared: &Shared, s: &Settings) {
    let allow = allowlist(s);
    for d in &shared.detectors {
        if let Ok(mut d) = d.lock() {
            d.set_allowlist(allow.clone());
        }
    }
}

/// One queue: receive, observe, write the bans the batch decided (here and at once: no hand-over
/// to another thread in a ban's path), verdict, in batches, until asked to stop.
fn read_queue(
    mut q: QueueSocket,
    mut nft: NlSocket,
    shared: &Shared,
    follow_up: &SyncSender<Report>,
) {
    let queue = q.config().queue;
    // How what we let through leaves: accept (managed) or repeat with a mark (tail).
    let pass = match shared.settings.lock() {
        Ok(s) => Pass::for_settings(&s),
        Err(poisoned) => Pass::for_settings(&poisoned.into_inner()),
    };
    let mut came_back = CameBack::new(queue, pass);
    let mut batcher = VerdictBatcher::new(queue);
    let mut decided: Vec<Decided> = Vec::with_capacity(BAN_BATCH_MAX);
    while !shared.stop.load(Ordering::Relaxed) {
        match q.wait(Duration::from_millis(200)) {
            Ok(true) => {}
            Ok(false) => {
                // Verdicts a failed send kept: once the burst is over, no later packet's batch
                // verdict would release those packets, so they go out now.
                if batcher.pending() > 0 {
                    if let Err(e) = q.send_verdicts(&mut batcher) {
                        warn!("queue {queue}: sending verdicts: {e}");
                    }
                }
                continue;
            }
            Err(e) => {
                error!("queue {queue}: {e}");
                break;
            }
        }
        if let Err(e) = q.recv() {
            error!("queue {queue}: {e}");
            continue;
        }
        let seen = Instant::now();
        let now = seen.duration_since(shared.start).as_millis() as u64;
        let verdict = if shared.drop_probes.load(Ordering::Relaxed) {
            Verdict::Drop
        } else {
            Verdict::Accept
        };
        // A dry run only watches: the verdict is the configured one, banned or not.
        let enforce = !shared.dry_run;
        for p in q.packets() {
            let p = match p {
                Ok(p) => p,
                Err(_) => {
                    shared.counts.malformed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            shared.counts.packets.fetch_add(1, Ordering::Relaxed);
            // A source banned moments ago loses its probes here, before the kernel set has
            // the element: a fast scan is cut right at the threshold.
            let probe = Probe {
                received: seen,
                stamp: p.timestamp,
            };
            let v = match observe(shared, now, probe, p.payload, p.in_ifindex, &mut decided) {
                Outcome::Banned | Outcome::AlreadyBanned if enforce => Verdict::Drop,
                _ => verdict,
            };
            if pass.came_back(p.mark) {
                came_back.note();
            }
            let (v, mark) = pass.leave(v, p.mark);
            batcher.push_marked(p.id, v, mark);
        }
        // Bans first: the set has the element before any packet of this batch moves on, and
        // the verdict syscall (which also runs the softirq work queued meanwhile) is not in
        // the ban's latency.
        if !decided.is_empty() {
            write_bans(&mut nft, shared, &mut decided, follow_up);
        }
        if let Err(e) = q.send_verdicts(&mut batcher) {
            warn!("queue {queue}: sending verdicts: {e}");
        }
        came_back.say(seen);
    }
    // Release what is pending as if we had let it through: the host answers as it would
    // without us (managed), or the admin's rules decide (tail); after the verdicts already
    // decided, if a failed send kept some.
    if batcher.pending() > 0 {
        let _ = q.send_verdicts(&mut batcher);
    }
    if let Err(e) = q.shutdown_with(|p| pass.leave(Verdict::Accept, p.and_then(|p| p.mark))) {
        warn!("queue {queue}: shutdown: {e}");
    }
}

fn observe(
    shared: &Shared,
    now: u64,
    seen: Probe,
    payload: &[u8],
    ifindex: Option<u32>,
    decided: &mut Vec<Decided>,
) -> Outcome {
    // Parsed once here to pick the shard that owns the source; a packet that does not parse
    // is counted by shard 0.
    let parsed = detector::packet::parse(payload);
    let shard = match &parsed {
        Ok(o) => shared.shard(&SourceKey::new(o.src, shared.ipv6_prefix)),
        Err(_) => &shared.detectors[0],
    };
    let Ok(mut d) = shard.lock() else {
        return Outcome::Repeat;
    };
    let outcome = match parsed {
        Ok(mut obs) => {
            obs.ifindex = ifindex;
            d.observe(now, &obs)
        }
        Err(_) => d.observe_packet(now, payload, ifindex),
    };
    while let Some(a) = d.poll_action() {
        // Bans are rate-limited upstream; past this many in one batch, the source is banned
        // again on its next new port.
        if decided.len() < BAN_BATCH_MAX {
            decided.push(Decided { action: a, seen });
        }
    }
    outcome
}

/// What a queue thread did with the bans of one batch, for the follow-up thread.
struct Report {
    /// The bans written (or, in a dry run, that would have been), and the evidence of each.
    written: Vec<Ban>,
    evidence: Vec<detector::Evidence>,
    spared: Vec<(SourceKey, detector::Evidence, crate::sessions::Aged)>,
    dry_run: bool,
}

/// Writes the bans one batch decided in one transaction, sparing a source with an aged
/// management session; logging and everything else is left to the follow-up thread. A failed
/// write goes to the retry list: the detector keeps the source as banned (its probes are
/// dropped) while the main thread tries again.
fn write_bans(
    sock: &mut NlSocket,
    shared: &Shared,
    decided: &mut Vec<Decided>,
    follow_up: &SyncSender<Report>,
) {
    let dry_run = shared.dry_run;
    let mut report = Report {
        written: Vec::with_capacity(decided.len()),
        evidence: Vec::with_capacity(decided.len()),
        spared: Vec::new(),
        dry_run,
    };
    let mut seen = Vec::with_capacity(decided.len());
    let now_ms = shared.now_ms();
    if let Ok(sessions) = shared.sessions.lock() {
        for d in decided.drain(..) {
            let Action::Ban {
                key,
                duration_ms,
                evidence,
            } = d.action;
            if let Some(aged) = sessions.sparing(&key, evidence.first_ms, now_ms) {
                report.spared.push((key, evidence, aged));
                continue;
            }
            report.written.push(Ban {
                key,
                duration_ms,
                comment: evidence.summary(COMMENT_MAX),
            });
            report.evidence.push(evidence);
            seen.push(d.seen);
        }
    }
    decided.clear();
    // A spared source is not banned, so its probes must not be dropped as if it were.
    for (key, _, _) in &report.spared {
        shared.forget(key);
    }
    if !dry_run && !report.written.is_empty() {
        match bans::add(sock, &report.written) {
            Ok(()) => {
                let acked = Acked::now();
                if let Ok(mut l) = shared.latencies.lock() {
                    l.record(acked, &seen);
                }
                shared
                    .counts
                    .bans_applied
                    .fetch_add(report.written.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                shared.counts.ban_errors.fetch_add(1, Ordering::Relaxed);
                let full = bans::is_set_full(&e);
                if full {
                    shared.counts.set_full.fetch_add(1, Ordering::Relaxed);
                }
                // A full set fails every ban until elements expire: say so once a minute.
                if !full || shared.set_full_said.should_say(Instant::now()) {
                    let set_size = shared.settings.lock().map(|s| s.set_size).unwrap_or(0);
                    error!(
                        "writing {} ban(s): {} (trying again for {})",
                        report.written.len(),
                        bans::describe(&e, set_size),
                        duration::Human(RETRY_FOR)
                    );
                }
                let since = Instant::now();
                if let Ok(mut r) = shared.retry.lock() {
                    let room = RETRY_MAX.saturating_sub(r.len());
                    let mut pending = report.written.drain(..).zip(report.evidence.drain(..));
                    r.extend(pending.by_ref().take(room).map(|(ban, evidence)| Failed {
                        ban,
                        evidence,
                        since,
                    }));
                    // No room to retry: forget them now, they count afresh.
                    for (ban, _) in pending {
                        shared.forget(&ban.key);
                        shared.counts.bans_lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
                report.written.clear();
                report.evidence.clear();
            }
        }
    }
    if !report.written.is_empty() || !report.spared.is_empty() {
        let n = (report.written.len() + report.spared.len()) as u64;
        // Only a storm far past any sane ban rate fills this; the bans are in the kernel
        // anyway, and the counter says how many went unlogged.
        if follow_up.try_send(report).is_err() {
            shared.counts.unlogged.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// After the bans are in: one log line (and event) per ban, and the ban book.
fn follow_up_bans(rx: Receiver<Report>, shared: &Shared) {
    while let Ok(r) = rx.recv() {
        report(shared, r);
    }
}

/// Logs one batch's bans and records them in the book.
fn report(shared: &Shared, r: Report) {
    let events = shared.settings.lock().ok().and_then(|s| s.events.clone());
    let now_ms = shared.now_ms();
    for (key, e, aged) in &r.spared {
        shared.counts.spared.fetch_add(1, Ordering::Relaxed);
        info!(
            "spared {key}: {} has had a session to port {} for {}, open before its scan ({e})",
            aged.peer,
            aged.local_port,
            detector::evidence::human_ms(now_ms.saturating_sub(aged.since_ms))
        );
    }
    let verb = if r.dry_run { "would ban" } else { "ban" };
    for (b, e) in r.written.iter().zip(&r.evidence) {
        info!(
            "{verb} {} for {}: {e}",
            b.key,
            detector::evidence::human_ms(b.duration_ms)
        );
        if let Some(path) = &events {
            event(path, r.dry_run, &b.key, b.duration_ms, e);
        }
    }
    if r.dry_run {
        return;
    }
    if let Ok(mut book) = shared.book.lock() {
        book.written(&r.written, Instant::now());
    }
}

/// One JSON line per ban for log shippers (`--events PATH` or `-`).
fn event(
    path: &std::path::Path,
    dry_run: bool,
    key: &SourceKey,
    duration_ms: u64,
    e: &detector::Evidence,
) {
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ports: Vec<String> = e
        .ports()
        .iter()
        .map(|(p, n)| format!("\"{}/{n}\"", p.name()))
        .collect();
    let line = format!(
        "{{\"time\": {time}, \"event\": \"{}\", \"source\": \"{key}\", \"duration_s\": {}, \
         \"offence\": {}, \"score\": {}, \"distinct_ports\": {}, \"ports\": [{}], \
         \"evidence\": \"{}\"}}\n",
        if dry_run { "would_ban" } else { "ban" },
        duration_ms / 1000,
        e.offence,
        e.score,
        e.distinct_ports,
        ports.join(", "),
        e.to_string().replace('\\', "\\\\").replace('"', "'"),
    );
    if path.as_os_str() == "-" {
        print!("{line}");
        let _ = std::io::stdout().flush();
        return;
    }
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(mut f) => {
            let _ = f.write_all(line.as_bytes());
        }
        Err(e) => warn!("events file {}: {e}", path.display()),
    }
}

/// Puts the ruleset back if an admin (or a firewall reload) removed part of it.
fn watchdog(
    sock: &mut NlSocket,
    s: &Settings,
    f: &Features,
    shared: &Shared,
    failed_open: &mut FailOpen,
) {
    let want = ruleset::build(s, f, ruleset::Parts::for_run(s));
    let intact = want.chains.iter().all(|c| {
        let have = dump::list_rules(sock, Family::Inet, TABLE, Some(&c.name));
        if let (Ok(rules), "sensor") = (&have, c.name.as_str()) {
            failed_open.update(
                ruleset::queued_by_rules(rules),
                shared.counts.packets.load(Ordering::Relaxed),
            );
        }
        have.map(|r| r.len()).unwrap_or(usize::MAX)
            == want.rules.iter().filter(|r| r.chain == c.name).count()
    });
    if intact {
        return;
    }
    warn!("table inet {TABLE} was changed from outside: restoring it");
    if let Err(e) = install(sock, s, f) {
        error!("restoring table inet {TABLE}: {e}");
        return;
    }
    shared
        .counts
        .ruleset_repairs
        .fetch_add(1, Ordering::Relaxed);
    if s.dry_run {
        return;
    }
    // Bans already in the sets are rewritten with their remaining time: harmless.
    let bans = match shared.book.lock() {
        Ok(b) => b.remaining(Instant::now()),
        Err(_) => return,
    };
    match bans::add(sock, &bans) {
        Ok(()) => info!("table inet {TABLE} restored with {} ban(s)", bans.len()),
        Err(e) => error!("restoring {} ban(s): {e}", bans.len()),
    }
}

/// Replaces the ban book with the kernel's sets; a ban lifted from outside (`scanban unban`)
/// is forgotten by the detector, so it stops dropping that source's probes. Returns how many
/// bans the sets hold.
fn reconcile(sock: &mut NlSocket, s: &Settings, shared: &Shared) -> Option<u64> {
    let began = Instant::now();
    let listed = bans::list(sock, s.ipv6_prefix).ok()?;
    let lifted = shared
        .book
        .lock()
        .ok()?
        .reconcile(&listed, began, Instant::now());
    for key in &lifted {
        shared.forget(key);
        info!("{key} was unbanned from outside: forgetting it");
    }
    Some(listed.len() as u64)
}

fn write_stats(shared: &Shared, s: &Settings, active: u64, failed_open: u64) {
    let mut det = detector::Counters::default();
    for d in &shared.detectors {
        if let Ok(d) = d.lock() {
            let c = d.counters();
            det.observed += c.observed;
            det.counted += c.counted;
            det.repeats += c.repeats;
            det.tracked += c.tracked;
            det.evicted += c.evicted;
            det.bans += c.bans;
            det.suppressed += c.suppressed;
            for (a, b) in det.ignored.iter_mut().zip(c.ignored) {
                *a += b;
            }
        }
    }
    let lat = shared
        .latencies
        .lock()
        .map(|l| l.counters())
        .unwrap_or_default();
    let queues = nfnl::queue::stats::read().unwrap_or_default();
    let mine = |f: fn(&nfnl::queue::QueueStats) -> u32| -> u64 {
        queues
            .iter()
            .filter(|q| q.queue >= s.queue.first && q.queue <= s.queue.last)
            .map(|q| u64::from(f(q)))
            .sum()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let c = &shared.counts;
    let g = |name, help, value| Counter {
        name,
        help,
        value: Some(value),
        monotonic: false,
    };
    let m = |name, help, value| Counter {
        name,
        help,
        value: Some(value),
        monotonic: true,
    };
    let mut counters = vec![
        g(
            "pid",
            "process id of the daemon",
            u64::from(std::process::id()),
        ),
        g("written_at", "unix time of this file", now),
        g(
            "uptime_seconds",
            "seconds since start",
            shared.start.elapsed().as_secs(),
        ),
        m(
            "packets",
            "queued packets received",
            c.packets.load(Ordering::Relaxed),
        ),
        m(
            "malformed",
            "queue messages that could not be read",
            c.malformed.load(Ordering::Relaxed),
        ),
        m(
            "probes",
            "probes counted (a new closed port of a source)",
            det.counted,
        ),
        m(
            "repeats",
            "probes to a port the source had already probed",
            det.repeats,
        ),
        m(
            "ignored",
            "packets ignored (allowlisted, not TCP/UDP, fragments, malformed)",
            det.ignored.iter().sum(),
        ),
        g("tracked", "sources tracked now", det.tracked),
        m("evicted", "sources forgotten to make room", det.evicted),
        m("bans_issued", "bans decided", det.bans),
        m(
            "bans_suppressed",
            "bans held back by the ban rate limit",
            det.suppressed,
        ),
        m(
            "bans_applied",
            "bans written to the kernel",
            c.bans_applied.load(Ordering::Relaxed),
        ),
        m(
            "ban_errors",
            "failed ban transactions",
            c.ban_errors.load(Ordering::Relaxed),
        ),
        m(
            "spared",
            "bans not written: the source had an aged session to a management port (spare-ports)",
            c.spared.load(Ordering::Relaxed),
        ),
        g(
            "management_sessions_aged",
            "sessions to a management port old enough to spare their peer (spare-after)",
            shared
                .sessions
                .lock()
                .map_or(0, |x| x.aged(shared.now_ms()) as u64),
        ),
        m(
            "bans_retried",
            "bans written on a retry after their first write failed",
            c.bans_retried.load(Ordering::Relaxed),
        ),
        m(
            "bans_lost",
            "bans given up after failing to reach the kernel for a minute (the source counts afresh)",
            c.bans_lost.load(Ordering::Relaxed),
        ),
        g(
            "bans_pending_retry",
            "bans whose write failed, waiting for a retry",
            shared.retry.lock().map_or(0, |r| r.len() as u64),
        ),
        m(
            "bans_unlogged",
            "bans written but not logged (the follow-up thread fell behind a ban storm)",
            c.unlogged.load(Ordering::Relaxed),
        ),
        m(
            "set_full",
            "ban transactions refused because a ban set was full",
            c.set_full.load(Ordering::Relaxed),
        ),
        g("bans_active", "elements in the kernel ban sets", active),
        m(
            "queue_failed_open",
            "probes the sensor queued that scanban never received: the queue was full and the kernel let them through unexamined (managed mode)",
            failed_open,
        ),
        m(
            "queue_dropped",
            "packets the kernel dropped because a queue was full (tail mode; managed mode fails open instead)",
            mine(|q| q.queue_dropped),
        ),
        m(
            "queue_user_dropped",
            "packets the kernel dropped because scanban's socket was full",
            mine(|q| q.user_dropped),
        ),
        m(
            "ruleset_repairs",
            "times the table was restored after outside changes",
            c.ruleset_repairs.load(Ordering::Relaxed),
        ),
    ];
    counters.extend(lat);
    if let Err(e) = crate::atomic_file::write(
        &s.stats_file,
        stats::render_text(&counters).as_bytes(),
        false,
    ) {
        debug!("stats file {}: {e}", s.stats_file.display());
    }
    if let Some(p) = &s.metrics_file {
        if let Err(e) =
            crate::atomic_file::write(p, stats::render_prometheus(&counters).as_bytes(), false)
        {
            debug!("metrics file {}: {e}", p.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_open_is_counted_minus_received_across_a_reinstall() {
        let mut f = FailOpen::default();
        f.update(100, 100);
        assert_eq!(f.estimate, 0);
        f.update(300, 250);
        assert_eq!(f.estimate, 50);
        assert_eq!(f.news(), 50);
        assert_eq!(f.news(), 0, "said once");
        // The table was restored: its counters restart from 0, nothing is lost.
        f.update(20, 260);
        assert_eq!(f.estimate, 60);
        assert_eq!(f.news(), 10);
    }

    #[test]
    fn throttle_lets_one_through_per_period() {
        let t = Throttle::new(Duration::from_secs(60));
        let now = Instant::now();
        assert!(t.should_say(now));
        assert!(!t.should_say(now + Duration::from_secs(59)));
        assert!(t.should_say(now + Duration::from_secs(61)));
    }
}
