//! `scanban run`: queue threads feed sharded detectors, a ban applier writes the kernel sets,
//! and the main thread handles signals, the stats file, the auto-allowlist and the watchdog.
//!
//! Threads:
//! - one per queue: receive a batch, parse and observe each packet (under the lock of the
//!   detector shard that owns its source), verdict the batch in one send. Nothing is allocated
//!   or logged per packet;
//! - the ban applier: collects ban actions for a few milliseconds and writes them in one nf_tables
//!   transaction, sparing sources with an established TCP session; logs one line per ban;
//! - main: signals (SIGTERM/SIGINT stop, SIGHUP reloads the allowlist), and once a second the
//!   stats file and the ruleset watchdog (an admin's `nft flush ruleset` is repaired within a
//!   second or two).

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use detector::{Action, Allowlist, Cidr, Detector, Outcome, SourceKey};
use log::{debug, error, info, warn};
use nfnl::queue::{QueueConfig, QueueSocket, Verdict, VerdictBatcher};
use nfnl::NlSocket;
use nft::probe::Features;
use nft::{dump, Batch, Family};

use crate::bans::{self, Ban, COMMENT_MAX};
use crate::hostinfo;
use crate::ruleset::{self, TABLE};
use crate::settings::{Mode, OnExit, ProbeVerdict, Settings};
use crate::signals::{SignalEvent, Signals};
use crate::stats::{self, Counter};

/// Detector shards: enough that queue threads rarely wait on the same lock.
const SHARDS: usize = 8;
/// How long the applier gathers bans before writing them in one transaction.
const BAN_BATCH_WINDOW: Duration = Duration::from_millis(5);
const ALLOWLIST_REFRESH: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Counts {
    packets: AtomicU64,
    malformed: AtomicU64,
    bans_applied: AtomicU64,
    ban_errors: AtomicU64,
    spared: AtomicU64,
    ruleset_repairs: AtomicU64,
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
    for n in settings.queue.first..=settings.queue.last {
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
    });
    info!(
        "allowlist: {} entries (configured, own addresses, gateways, resolvers)",
        allow.entries().len()
    );

    let (tx, rx) = mpsc::sync_channel::<Action>(1024);
    let readers: Vec<JoinHandle<()>> = queues
        .into_iter()
        .map(|q| {
            let shared = Arc::clone(&shared);
            let tx = tx.clone();
            std::thread::spawn(move || read_queue(q, &shared, &tx))
        })
        .collect();
    drop(tx);
    let applier = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || apply_bans(rx, &shared))
    };

    let mut last_allow = Instant::now();
    let mut last_save = Instant::now();
    let (mut tick, mut active_bans) = (0u64, kept as u64);

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
        watchdog(&mut sock, &settings, &features, &shared);
        if port_sets {
            open_ports.refresh(&mut sock);
        }
        // Counting the ban elements is a dump of the sets: every 10 s is plenty.
        if tick % 10 == 0 {
            active_bans = bans::list(&mut sock, settings.ipv6_prefix)
                .map(|b| b.len() as u64)
                .unwrap_or(active_bans);
        }
        tick += 1;
        write_stats(&shared, &settings, active_bans);
        if last_save.elapsed() >= crate::state::SAVE_EVERY {
            save_state(&mut sock, &settings);
            last_save = Instant::now();
        }
    }
    save_state(&mut sock, &settings);
    for r in readers {
        let _ = r.join();
    }
    let _ = applier.join();
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

/// One queue: receive, observe, verdict, in batches, until asked to stop.
fn read_queue(mut q: QueueSocket, shared: &Shared, tx: &SyncSender<Action>) {
    let queue = q.config().queue;
    let mut batcher = VerdictBatcher::new(queue);
    while !shared.stop.load(Ordering::Relaxed) {
        match q.wait(Duration::from_millis(200)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                error!("queue {queue}: {e}");
                break;
            }
        }
        if let Err(e) = q.recv() {
            error!("queue {queue}: {e}");
            continue;
        }
        let now = shared.now_ms();
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
            let v = match observe(shared, now, p.payload, p.in_ifindex, tx) {
                Outcome::Banned | Outcome::AlreadyBanned => Verdict::Drop,
                _ => verdict,
            };
            batcher.push(p.id, v);
        }
        if let Err(e) = q.send_verdicts(&mut batcher) {
            warn!("queue {queue}: sending verdicts: {e}");
        }
    }
    // Release what is pending with accept: the host answers as it would without us.
    if let Err(e) = q.shutdown(Verdict::Accept) {
        warn!("queue {queue}: shutdown: {e}");
    }
}

fn observe(
    shared: &Shared,
    now: u64,
    payload: &[u8],
    ifindex: Option<u32>,
    tx: &SyncSender<Action>,
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
        // Bans are rate-limited upstream; if the applier still falls behind, the source is
        // banned again on its next new port.
        let _ = tx.try_send(a);
    }
    outcome
}

/// Writes bans: gathers a few milliseconds' worth, spares sources with a live TCP session, and
/// sends one transaction.
fn apply_bans(rx: Receiver<Action>, shared: &Shared) {
    let mut sock = match NlSocket::open() {
        Ok(s) => s,
        Err(e) => {
            error!("ban applier: netlink socket: {e}");
            return;
        }
    };
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(a) => a,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut pending = vec![first];
        let until = Instant::now() + BAN_BATCH_WINDOW;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(a) => pending.push(a),
                Err(_) => break,
            }
        }
        let s = match shared.settings.lock() {
            Ok(s) => s.clone(),
            Err(_) => return,
        };
        let s = &s;
        let peers = established_peers();
        let mut writes = Vec::new();
        for Action::Ban {
            key,
            duration_ms,
            evidence,
        } in pending
        {
            if peers
                .iter()
                .any(|p| SourceKey::new(*p, s.ipv6_prefix) == key)
            {
                shared.counts.spared.fetch_add(1, Ordering::Relaxed);
                info!(
                    "spared {key}: it has an established TCP session with this host ({evidence})"
                );
                continue;
            }
            let verb = if s.dry_run { "would ban" } else { "ban" };
            info!(
                "{verb} {key} for {}: {evidence}",
                detector::evidence::human_ms(duration_ms)
            );
            event(s, &key, duration_ms, &evidence);
            writes.push(Ban {
                key,
                duration_ms,
                comment: evidence.summary(COMMENT_MAX),
            });
        }
        if s.dry_run || writes.is_empty() {
            continue;
        }
        match bans::add(&mut sock, &writes) {
            Ok(()) => {
                shared
                    .counts
                    .bans_applied
                    .fetch_add(writes.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                shared.counts.ban_errors.fetch_add(1, Ordering::Relaxed);
                error!("writing {} ban(s): {e}", writes.len());
            }
        }
    }
}

fn established_peers() -> Vec<IpAddr> {
    let mut p = hostinfo::established_peers(&hostinfo::read("/proc/net/tcp"));
    p.extend(hostinfo::established_peers(&hostinfo::read(
        "/proc/net/tcp6",
    )));
    p.into_iter().collect()
}

/// One JSON line per ban for log shippers (`--events PATH` or `-`).
fn event(s: &Settings, key: &SourceKey, duration_ms: u64, e: &detector::Evidence) {
    let Some(path) = &s.events else { return };
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
        if s.dry_run { "would_ban" } else { "ban" },
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
fn watchdog(sock: &mut NlSocket, s: &Settings, f: &Features, shared: &Shared) {
    let want = ruleset::build(s, f, ruleset::Parts::for_run(s));
    let intact = want.chains.iter().all(|c| {
        let have = dump::list_rules(sock, Family::Inet, TABLE, Some(&c.name))
            .map(|r| r.len())
            .unwrap_or(usize::MAX);
        have == want.rules.iter().filter(|r| r.chain == c.name).count()
    });
    if intact {
        return;
    }
    warn!("table inet {TABLE} was changed from outside: restoring it");
    match install(sock, s, f) {
        Ok(()) => {
            shared
                .counts
                .ruleset_repairs
                .fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => error!("restoring table inet {TABLE}: {e}"),
    }
}

fn write_stats(shared: &Shared, s: &Settings, active: u64) {
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
            "bans skipped: the source had an established TCP session",
            c.spared.load(Ordering::Relaxed),
        ),
        g("bans_active", "elements in the kernel ban sets", active),
        m(
            "queue_dropped",
            "packets the kernel dropped or failed open because a queue was full",
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
