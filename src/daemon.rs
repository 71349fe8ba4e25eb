//! `scanban run`: queue threads feed sharded detectors and write the bans they decide, a
//! follow-up thread logs them, and the main thread handles signals, the stats file, the auto-allowlist and the watchdog.
//!
//! Threads:
//! - one per queue: receive a batch, parse and observe each packet (under the lock of the
//!   detector shard that owns its source), write the bans the batch decided in one nf_tables
//!   transaction (sparing sources known to have an established TCP session), then verdict the
//!   batch in one send. Nothing is allocated or logged per packet;
//! - the ban follow-up: one log line (and event) per ban, the ban book, and lifting at once a
//!   ban on a source that turns out to have an established TCP session;
//! - main: signals (SIGTERM/SIGINT stop, SIGHUP reloads the allowlist), and once a second the
//!   stats file, the ruleset watchdog (an admin's `nft flush ruleset` is repaired within a
//!   second, bans included) and the reconciling of the ban book with the kernel sets.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
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
use crate::hostinfo;
use crate::latency::Latencies;
use crate::ruleset::{self, TABLE};
use crate::settings::{Mode, OnExit, ProbeVerdict, Settings};
use crate::signals::{SignalEvent, Signals};
use crate::stats::{self, Counter};

/// Detector shards: enough that queue threads rarely wait on the same lock.
const SHARDS: usize = 8;
/// The follow-up thread reads the TCP sessions at most this often: a read walks the kernel's
/// whole established-hash table (10 ms on a 24 GiB server), so a sustained ban storm costs at
/// most 5 % of a core, and an admin's session loses at most ~0.2 s of packets (TCP resends).
const SPARE_CHECK_SPACING: Duration = Duration::from_millis(200);
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
    latencies: Mutex<Latencies>,
    /// Peers with an established TCP session, as the follow-up thread last read them.
    peers: Mutex<Vec<IpAddr>>,
    set_full_said: Throttle,
}

/// A ban decided by a detector, with the time its packet batch was received.
struct Decided {
    action: Action,
    seen: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
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
        offender_capacity: (s.capacity / 4 / shards).max(16) as usize,
        ban_jitter_percent: s.ban_jitter_percent,
        // Each shard gets its part of the global rate, at least one ban per second.
        ban_rate: (s.ban_rate / shards).max(1),
        ban_burst: (s.ban_rate * 2 / shards).max(2),
    }
}

/// The configured allowlist plus this host's addresses, gateways and resolvers.
fn allowlist(s: &Settings) -> Allowlist {
    let mut all: Vec<Cidr> = s.allow.clone();
    let own = hostinfo::own_addresses(
        &hostinfo::read("/proc/net/fib_trie"),
        &hostinfo::read("/proc/net/if_inet6"),
    );
    let gw = hostinfo::gateways(
        &hostinfo::read("/proc/net/route"),
        &hostinfo::read("/proc/net/ipv6_route"),
    );
    let dns = hostinfo::resolvers(&hostinfo::read("/etc/resolv.conf"));
    all.extend(own.iter().chain(&gw).chain(&dns).map(|a| Cidr::host(*a)));
    Allowlist::new(all)
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
        if !features.socket {
            return Err(
                "this kernel lacks the nft `socket` expression (nft_socket; \
                        kmod-nft-socket on OpenWrt): managed mode cannot tell closed ports \
                        from open ones. Install it, or use --mode tail with your own rule"
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
    if let Some(path) = settings.state_file.as_ref().filter(|_| !settings.dry_run) {
        match crate::state::load(path, settings.ipv6_prefix) {
            Ok(saved) if !saved.is_empty() => match bans::add(&mut sock, &saved) {
                Ok(()) => info!("restored {} ban(s) from {}", saved.len(), path.display()),
                Err(e) => error!("restoring bans from {}: {e}", path.display()),
            },
            Ok(_) => {}
            Err(e) => warn!("state file {}: {e}", path.display()),
        }
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
        queues.push(QueueSocket::bind(&qc).map_err(|e| format!("{e}"))?);
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

    let mut signals = Signals::install().map_err(|e| format!("signals: {e}"))?;
    // Everything that needed more than CAP_NET_ADMIN is done; no thread exists yet.
    crate::privilege::keep_only_net_admin()?;
    debug!("privileges: {}", crate::privilege::status_line());
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let dconf = detector_config(&settings, SHARDS);
    let allow = allowlist(&settings);
    let shared = Arc::new(Shared {
        detectors: (0..SHARDS)
            .map(|i| {
                let mut d = Detector::new(dconf.clone(), seed.wrapping_add(i as u64));
                d.set_allowlist(allow.clone());
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
        latencies: Mutex::new(Latencies::default()),
        peers: Mutex::new(Vec::new()),
        set_full_said: Throttle::new(Duration::from_secs(60)),
    });
    info!(
        "allowlist: {} entries (configured, own addresses, gateways, resolvers)",
        allow.entries().len()
    );

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
    drop(tx);
    let follow_up = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || follow_up_bans(rx, &shared))
    };

    let mut last_allow = Instant::now();
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
    keep!(capacity, "capacity");
    keep!(set_size, "set-size");
    keep!(ipv6_prefix, "ipv6-prefix");
    keep!(stats_file, "stats-file");
    if !restart.is_empty() {
        warn!("SIGHUP: {} only change(s) at restart", restart.join(", "));
    }
    let policy = detector_config(&new, SHARDS);
    let allow = allowlist(&new);
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
            let v = match observe(shared, now, seen, p.payload, p.in_ifindex, &mut decided) {
                Outcome::Banned | Outcome::AlreadyBanned => Verdict::Drop,
                _ => verdict,
            };
            batcher.push(p.id, v);
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
    }
    // Release what is pending with accept: the host answers as it would without us (after the
    // verdicts already decided, if a failed send kept some).
    if batcher.pending() > 0 {
        let _ = q.send_verdicts(&mut batcher);
    }
    if let Err(e) = q.shutdown(Verdict::Accept) {
        warn!("queue {queue}: shutdown: {e}");
    }
}

fn observe(
    shared: &Shared,
    now: u64,
    seen: Instant,
    payload: &[u8],
    ifindex: Option<u32>,
    decided: &mut Vec<Decided>,
) -> Outcome {
    // Parsed once here to pick the shard that owns the source; a packet that does not parse
    // is counted by shard 0.
    let parsed = detector::packet::parse(payload);
    let shard = parsed
        .as_ref()
        .map(|o| SourceKey::new(o.src, shared.ipv6_prefix).shard(SHARDS))
        .unwrap_or(0);
    let Ok(mut d) = shared.detectors[shard].lock() else {
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
    spared: Vec<(SourceKey, detector::Evidence)>,
    dry_run: bool,
}

/// Writes the bans one batch decided in one transaction, skipping sources known to have an
/// established TCP session; logging and everything else is left to the follow-up thread.
fn write_bans(
    sock: &mut NlSocket,
    shared: &Shared,
    decided: &mut Vec<Decided>,
    follow_up: &SyncSender<Report>,
) {
    let dry_run = shared.settings.lock().map(|s| s.dry_run).unwrap_or(true);
    let mut report = Report {
        written: Vec::with_capacity(decided.len()),
        evidence: Vec::with_capacity(decided.len()),
        spared: Vec::new(),
        dry_run,
    };
    let mut seen = Vec::with_capacity(decided.len());
    if let Ok(peers) = shared.peers.lock() {
        for d in decided.drain(..) {
            let Action::Ban {
                key,
                duration_ms,
                evidence,
            } = d.action;
            if peers
                .iter()
                .any(|p| SourceKey::new(*p, shared.ipv6_prefix) == key)
            {
                report.spared.push((key, evidence));
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
    if !dry_run && !report.written.is_empty() {
        match bans::add(sock, &report.written) {
            Ok(()) => {
                let acked = Instant::now();
                if let Ok(mut l) = shared.latencies.lock() {
                    for t in &seen {
                        l.record(acked.duration_since(*t));
                    }
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
                        "writing {} ban(s): {}",
                        report.written.len(),
                        bans::describe(&e, set_size)
                    );
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

/// After the bans are in: one log line (and event) per ban, the ban book, and the check that
/// lifts at once a ban on a source with an established TCP session with this host (an admin
/// who scans from their SSH client). Reading the sessions takes milliseconds (the kernel walks
/// its whole TCP hash table), so it is done here, after the write, at most every
/// `SPARE_CHECK_SPACING`, and covers all bans written meanwhile.
fn follow_up_bans(rx: Receiver<Report>, shared: &Shared) {
    let mut sock = match NlSocket::open() {
        Ok(s) => s,
        Err(e) => {
            error!("ban follow-up: netlink socket: {e}");
            return;
        }
    };
    while let Ok(first) = rx.recv() {
        let mut keys = report(shared, first);
        std::thread::sleep(SPARE_CHECK_SPACING);
        while let Ok(more) = rx.try_recv() {
            keys.extend(report(shared, more));
        }
        let peers = established_peers();
        for key in keys {
            if !peers
                .iter()
                .any(|p| SourceKey::new(*p, shared.ipv6_prefix) == key)
            {
                continue;
            }
            match bans::remove(&mut sock, &key) {
                Ok(_) => {
                    shared.counts.spared.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut d) = shared.detectors[key.shard(SHARDS)].lock() {
                        d.forget(&key);
                    }
                    if let Ok(mut b) = shared.book.lock() {
                        b.forget(&key);
                    }
                    info!("spared {key}: it has an established TCP session with this host (ban lifted)");
                }
                Err(e) => error!("lifting the ban on {key}: {e}"),
            }
        }
        if let Ok(mut p) = shared.peers.lock() {
            *p = peers;
        }
    }
}

/// Logs one batch's bans and records them in the book; returns the keys written.
fn report(shared: &Shared, r: Report) -> Vec<SourceKey> {
    let events = shared.settings.lock().ok().and_then(|s| s.events.clone());
    for (key, e) in &r.spared {
        shared.counts.spared.fetch_add(1, Ordering::Relaxed);
        info!("spared {key}: it has an established TCP session with this host ({e})");
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
        return Vec::new();
    }
    if let Ok(mut book) = shared.book.lock() {
        book.written(&r.written, Instant::now());
    }
    r.written.into_iter().map(|b| b.key).collect()
}

fn established_peers() -> Vec<IpAddr> {
    let mut p = hostinfo::established_peers(&hostinfo::read("/proc/net/tcp"));
    p.extend(hostinfo::established_peers(&hostinfo::read(
        "/proc/net/tcp6",
    )));
    p.into_iter().collect()
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
        if let Ok(mut d) = shared.detectors[key.shard(SHARDS)].lock() {
            d.forget(key);
        }
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
        .map(|l| l.summary())
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
        value,
        monotonic: false,
    };
    let m = |name, help, value| Counter {
        name,
        help,
        value,
        monotonic: true,
    };
    let counters = vec![
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
            "bans skipped or lifted at once: the source had an established TCP session",
            c.spared.load(Ordering::Relaxed),
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
        g(
            "ban_latency_samples",
            "recent bans timed (at most 1024)",
            lat.samples,
        ),
        g(
            "ban_latency_p50_us",
            "median of recent bans: from the probe's arrival to the kernel's ACK, microseconds",
            lat.p50_us,
        ),
        g(
            "ban_latency_p99_us",
            "99th percentile of the same",
            lat.p99_us,
        ),
        g("ban_latency_max_us", "slowest of the same", lat.max_us),
        m(
            "queue_failed_open",
            "probes the sensor queued that scanban never received: the queue was full and the kernel let them through unexamined (managed mode)",
            failed_open,
        ),
        m(
            "queue_dropped",
            "packets the kernel dropped because a queue was full (only without fail-open, which scanban always sets)",
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
