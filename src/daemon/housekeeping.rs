//! The main thread while the daemon runs: signals (SIGTERM/SIGINT stop, SIGHUP reloads), and
//! once a second the detectors' timers, the ruleset watchdog, failed bans written again, the
//! management sessions, the open-port sets, the reconciling of the ban book with the kernel
//! sets, the stats file and the state file, each on its own `Every`.

use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use nfnl::NlSocket;
use nft::probe::Features;

use crate::bans;
use crate::hostinfo;
use crate::settings::{SettingError, Settings};
use crate::signals::{SignalEvent, Signals};

use super::config::{apply_reload, refresh_allowlist};
use super::follow_up::Report;
use super::open_ports::OpenPortSets;
use super::retry::retry_bans;
use super::shared::Shared;
use super::stats_file::{write_stats, Outside};
use super::timer::Every;
use super::watchdog::{watchdog, FailOpen};

/// The management sessions are read this often: a read walks the kernel's whole
/// established-hash table (10 ms on a 24 GiB server), and a session must be minutes old to
/// spare anyone, so a few seconds late is nothing.
const SESSIONS_EVERY: Duration = Duration::from_secs(5);
/// The ban book is compared with the kernel sets this often while they are small...
const RECONCILE_SMALL: Duration = Duration::from_secs(2);
/// ...and this often past `RECONCILE_SMALL_MAX` bans (a dump of 100k elements takes ~0.1 s).
const RECONCILE_LARGE: Duration = Duration::from_secs(10);
const RECONCILE_SMALL_MAX: u64 = 10_000;
const ALLOWLIST_REFRESH: Duration = Duration::from_secs(60);
/// A queue that keeps failing open is said at most this often.
const FAILED_OPEN_SAID_EVERY: Duration = Duration::from_secs(60);

/// The main thread's state between ticks.
pub struct Housekeeping {
    pub sock: NlSocket,
    pub settings: Settings,
    features: Features,
    shared: Arc<Shared>,
    /// For the bans written on a retry.
    retry_tx: SyncSender<Report>,
    /// Managed mode without the socket expression.
    open_ports: Option<OpenPortSets>,
    failed_open: FailOpen,
    active_bans: u64,
    allowlist_due: Every,
    sessions_due: Every,
    reconcile_due: Every,
    save_due: Every,
    failed_open_said: Every,
}

impl Housekeeping {
    pub fn new(
        sock: NlSocket,
        settings: Settings,
        features: Features,
        shared: Arc<Shared>,
        retry_tx: SyncSender<Report>,
        open_ports: Option<OpenPortSets>,
        active_bans: u64,
    ) -> Self {
        let now = Instant::now();
        let save_every = settings.state_every;
        Housekeeping {
            sock,
            settings,
            features,
            shared,
            retry_tx,
            open_ports,
            failed_open: FailOpen::default(),
            active_bans,
            allowlist_due: Every::starting_at(ALLOWLIST_REFRESH, now),
            sessions_due: Every::starting_at(SESSIONS_EVERY, now),
            reconcile_due: Every::now_due(RECONCILE_SMALL),
            save_due: Every::starting_at(save_every, now),
            failed_open_said: Every::now_due(FAILED_OPEN_SAID_EVERY),
        }
    }

    /// The main socket and the settings in force, for the shutdown; the retry's sender goes.
    pub fn into_parts(self) -> (NlSocket, Settings) {
        (self.sock, self.settings)
    }

    /// Until SIGTERM/SIGINT; `reload` re-reads the configuration on SIGHUP.
    pub fn run(
        &mut self,
        signals: &mut Signals,
        reload: &dyn Fn() -> Result<Settings, SettingError>,
    ) {
        while !self.shared.stopping() {
            let event = signals.wait(Duration::from_secs(1));
            self.on_signal(event, reload);
            self.tick();
        }
    }

    fn on_signal(
        &mut self,
        event: std::io::Result<Option<SignalEvent>>,
        reload: &dyn Fn() -> Result<Settings, SettingError>,
    ) {
        let now = Instant::now();
        match event {
            Ok(Some(SignalEvent::Stop)) => {
                info!("stopping");
                self.shared.stop.store(true, Ordering::Relaxed);
            }
            Ok(Some(SignalEvent::Reload)) => {
                match reload() {
                    Ok(new) => {
                        // `protect auto` follows the forwarding switches as they are now.
                        let before = crate::protect::sensed(self.settings.protect);
                        crate::protect::refresh();
                        self.settings = apply_reload(&self.shared, &self.settings, new);
                        let after = crate::protect::sensed(self.settings.protect);
                        if after != before {
                            info!("SIGHUP: {}", after.why);
                            let (sock, s, f) = (&mut self.sock, &self.settings, &self.features);
                            if let Err(e) = super::watchdog::install(sock, s, f) {
                                error!("SIGHUP: installing the sensor for {}: {e}", after.why);
                            }
                        }
                        self.save_due.set_period(self.settings.state_every);
                        info!("SIGHUP: configuration reloaded, tracking state kept");
                    }
                    Err(e) => {
                        error!("SIGHUP: invalid configuration, keeping the current one: {e}")
                    }
                }
                self.allowlist_due.restart(now);
            }
            Ok(None) if self.allowlist_due.due(now) => {
                refresh_allowlist(&self.shared, &self.settings);
            }
            Ok(None) => {}
            Err(e) => warn!("signals: {e}"),
        }
    }

    /// Once a second, whatever the signals.
    fn tick(&mut self) {
        let shared = &*self.shared;
        let now_ms = shared.now_ms();
        shared.shards.each(|d| {
            if now_ms >= d.next_deadline() {
                d.on_timer(now_ms);
            }
        });
        let (sock, s, f) = (&mut self.sock, &self.settings, &self.features);
        watchdog(sock, s, f, shared, &mut self.failed_open);
        retry_bans(sock, shared, &self.retry_tx);
        let now = Instant::now();
        if self.sessions_due.due(now) {
            read_sessions(shared);
        }
        if self.failed_open_said.is_due(now) {
            let new = self.failed_open.news();
            if new > 0 {
                warn!(
                    "queue full: {new} probe(s) went through unexamined (failed open); raise \
                     queue-max-len or add queues if this goes on"
                );
                self.failed_open_said.restart(now);
            }
        }
        if let Some(o) = &mut self.open_ports {
            o.refresh(sock);
        }
        self.reconcile_due
            .set_period(if self.active_bans > RECONCILE_SMALL_MAX {
                RECONCILE_LARGE
            } else {
                RECONCILE_SMALL
            });
        if self.reconcile_due.due(now) {
            if let Some(n) = reconcile(sock, s, shared) {
                self.active_bans = n;
            }
        }
        let outside = Outside {
            bans_active: self.active_bans,
            failed_open: self.failed_open.estimate,
        };
        write_stats(shared, s, outside);
        if self.save_due.due(Instant::now()) {
            save_state(sock, s);
        }
    }
}

/// Reads the established TCP sessions into the management-session book.
pub fn read_sessions(shared: &Shared) {
    let mut all = hostinfo::established_sessions(&hostinfo::read("/proc/net/tcp"));
    all.extend(hostinfo::established_sessions(&hostinfo::read(
        "/proc/net/tcp6",
    )));
    let now = shared.now_ms();
    if let Ok(mut s) = shared.sessions.lock() {
        s.refresh(all, now);
    }
}

/// Replaces the ban book with the kernel's sets; a ban lifted from outside (`scanban unban`)
/// is forgotten by the detector, so it stops dropping that source's probes. Returns how many
/// bans the sets hold.
fn reconcile(sock: &mut NlSocket, s: &Settings, shared: &Shared) -> Option<u64> {
    let began = Instant::now();
    let listed = bans::list(sock, s).ok()?;
    let lifted = shared
        .book
        .lock()
        .ok()?
        .reconcile(&listed, began, Instant::now());
    for key in &lifted {
        shared.shards.forget(key);
        info!("{key} was unbanned from outside: forgetting it");
    }
    Some(listed.len() as u64)
}

/// The kernel's bans into the state file (`--state-file`), for the next start.
pub fn save_state(sock: &mut NlSocket, s: &Settings) {
    let Some(path) = &s.state_file else { return };
    match bans::list(sock, s) {
        Ok(all) => match crate::state::save_if_changed(path, &all, s.ipv6_prefix) {
            Ok(true) => debug!("saved {} ban(s) to {}", all.len(), path.display()),
            Ok(false) => {}
            Err(e) => warn!("state file {}: {e}", path.display()),
        },
        Err(e) => warn!("listing bans for the state file: {e}"),
    }
}
