//! `RemoteBans`: the fleet's decisions in scanban's remote-ban sets (`remote4`, `remote6`,
//! `remote4_net`, `remote6_net`; see `ruleset`), apart from the local bans, which it never
//! touches.
//!
//! Each `apply` is one nf_tables transaction: single addresses are written or lifted one by
//! one; when the ranges change, both interval sets are flushed and the outermost ranges written
//! again in the same transaction (the kernel refuses overlapping intervals, and a flush cannot
//! fail on an element that expired meanwhile: see `book`). When every set is written afresh (the
//! first answer, a full answer after an outage, a rebuilt table, a failed write, an allowlist
//! that now protects a ban), the host sets are read back and only the difference is written,
//! in transactions of `TX_ELEMENTS` changes (`reconcile`): no ban that stays is lifted for a
//! moment, a startup answer of 100,000 decisions costs one transaction's memory, not 7 MB, and
//! the kernel's commits stay small (each builds a notification per element while any process on
//! the machine, in any namespace, listens to nf_tables events). Every element carries the time its
//! decision has left, so the kernel lifts it on its own when LAPI's duration runs out, and the
//! comment `remote:ORIGIN SCENARIO` that `scanban list` shows.
//!
//! A decision whose target holds an allowlisted or auto-allowlisted address is refused and
//! logged once. A write that fails is not lost: the next `apply` (an empty delta is enough)
//! writes every set afresh, as the first one after `new` does, so a daemon restart drops what
//! LAPI deleted meanwhile and keeps nothing stale. So does a table that was deleted and built
//! again (the watchdog's repair after a firewall reload): each `apply` compares the table's
//! handle with the one it last wrote to.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use detector::{Allowlist, SourceKey};
use log::{debug, error, info, warn};
use nfnl::NlSocket;
use nft::{Batch, Element, Family};

use crate::bans::COMMENT_MAX;
use crate::fleet::book::{full_len, is_host, masked, Book, Held, Names};
use crate::fleet::{Applied, Decision, DecisionSink, Delta, Target};
use crate::ruleset::{REMOTE4, REMOTE4_NET, REMOTE6, REMOTE6_NET, REMOTE_SET_SIZE, TABLE};

/// Expired addresses are dropped from the book this often (the kernel lifted them already).
const SWEEP_EVERY_MS: u64 = 60_000;

/// Elements built at a time before they are encoded into the batch (about 500 per message).
const CHUNK: usize = 2048;

/// Element changes per transaction when every set is written afresh (`reconcile`): about 600
/// KB of messages, and a bounded commit for the kernel, which builds a notification per
/// element while anyone on the machine listens to nf_tables events.
const TX_ELEMENTS: usize = 4 * CHUNK;

/// A draining vector of more than this many items gives memory back as it empties.
const SHRINK_ABOVE: usize = 4096;

/// Totals since the sink was made, for the daemon's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub added: u64,
    pub lifted: u64,
    pub refused: u64,
    pub failed: u64,
    /// Transactions sent, and those the kernel refused.
    pub writes: u64,
    pub write_errors: u64,
}

pub struct RemoteBans {
    sock: NlSocket,
    allow: Allowlist,
    allow_updates: Arc<Mutex<Option<Allowlist>>>,
    /// DESTROYSETELEM (kernel ≥ 6.3): lifting an element the kernel already expired is no error.
    destroy: bool,
    epoch: Instant,
    book: Book,
    names: Names,
    /// The outermost ranges the interval sets hold, with their expiry.
    ranges_written: HashMap<Target, u64>,
    /// Decisions refused, so each is logged once.
    refused: HashSet<u64>,
    /// Every set is written afresh at the next apply: at the start, and after a failed write.
    rewrite_all: bool,
    /// Most addresses held per family, and half as many ranges (`lapi-max-decisions`).
    max_held: usize,
    /// Whether the book was found full (logged once until it has room again).
    full_logged: bool,
    /// The handle of the table the sets were last written in: a new one means a rebuilt table.
    table_handle: Option<u64>,
    /// The last write error logged: the same error again (a table missing for a while) is
    /// logged at debug level, not once a poll.
    last_error: Option<String>,
    last_sweep_ms: u64,
    totals: Totals,
}

impl RemoteBans {
    /// A sink writing to the remote-ban sets of `table inet scanban` through `sock` (the ruleset
    /// must be installed: `ruleset::build` with `Parts::bans`). `allow` is the daemon's allowlist
    /// (`daemon::config::allowlist`: configured plus own addresses, gateways, resolvers, on-link
    /// prefixes); `destroy` is `nft::probe::Features::destroy`. The first `apply` replaces
    /// whatever the remote sets held (a startup answer carries every decision in force).
    pub fn new(sock: NlSocket, allow: Allowlist, destroy: bool) -> RemoteBans {
        RemoteBans {
            sock,
            allow,
            allow_updates: Arc::default(),
            destroy,
            epoch: Instant::now(),
            book: Book::default(),
            names: Names::default(),
            ranges_written: HashMap::new(),
            refused: HashSet::new(),
            rewrite_all: true,
            max_held: REMOTE_SET_SIZE as usize,
            full_logged: false,
            table_handle: None,
            last_error: None,
            last_sweep_ms: 0,
            totals: Totals::default(),
        }
    }

    /// At most `max` addresses per family held, and `max / 2` ranges (`lapi-max-decisions`;
    /// the default is what the kernel sets hold).
    pub fn limit(mut self, max: u32) -> RemoteBans {
        self.max_held = (max as usize).clamp(2, REMOTE_SET_SIZE as usize);
        self
    }

    /// Where the main thread leaves the allowlist it read again (SIGHUP, address changes):
    /// taken at the next `apply`.
    pub fn allowlist_updates(&self) -> AllowlistUpdates {
        AllowlistUpdates(Arc::clone(&self.allow_updates))
    }

    /// A new allowlist: decisions in force that it now protects are lifted at once (an admin
    /// allowlisted after a fleet ban gets back in at the next poll).
    fn set_allowlist(&mut self, allow: Allowlist) {
        self.allow = allow;
        let mut lifted = Vec::new();
        let gone = self.book.retain(|t| {
            let keep = refusal(&self.allow, t).is_none();
            if !keep {
                lifted.push(*t);
            }
            keep
        });
        if gone > 0 {
            for t in &lifted {
                info!(
                    "lifting remote ban of {}/{}: now allowlisted",
                    t.addr, t.prefix_len
                );
            }
            self.rewrite_all = true;
        }
    }

    #[cfg(test)]
    pub fn totals(&self) -> Totals {
        self.totals
    }

    #[cfg(test)]
    /// Decisions in force in the book.
    pub fn len(&self) -> usize {
        self.book.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Why a decision may not be applied, if it may not.
    fn refusal(&self, t: &Target) -> Option<&'static str> {
        refusal(&self.allow, t)
    }

    /// Lifts `t` in its host set (DESTROY where the kernel has it).
    fn lift_host(&self, batch: &mut Batch, t: &Target) {
        lift(
            batch,
            self.destroy,
            host_set(t),
            &[Element::new(&key_bytes(t.addr))],
        );
    }

    /// The outermost ranges in both interval sets, which are flushed first.
    fn write_ranges(&mut self, batch: &mut Batch, now: u64) {
        let top = self.book.outermost_ranges(now);
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (t, h) in &top {
            let (mut start, end) =
                Element::prefix_interval(&key_bytes(t.addr), u32::from(t.prefix_len));
            start.timeout_ms = Some(h.expires_ms.saturating_sub(now).max(1));
            start.comment = Some(comment(&self.names, h));
            let out = if t.addr.is_ipv4() { &mut v4 } else { &mut v6 };
            out.push(start);
            out.extend(end);
        }
        for (set, elements) in [(REMOTE4_NET, v4), (REMOTE6_NET, v6)] {
            batch.flush_set(Family::Inet, TABLE, set);
            if !elements.is_empty() {
                batch.add_elements(Family::Inet, TABLE, set, &elements);
            }
        }
        self.ranges_written = top.into_iter().map(|(t, h)| (t, h.expires_ms)).collect();
    }

    /// Every set brought to what the book says, without lifting even for a moment a ban that
    /// stays: each host set is read back (a dump, one message at a time) and only the
    /// difference written, in transactions of about `TX_ELEMENTS` changes: stale elements
    /// lifted, missing ones added, one whose time is off lifted and added again in the same
    /// transaction. Then the ranges, flushed and filled in one. A first start into empty sets
    /// is all adds; a restart, or a full answer after an outage, mostly nothing. (Flushing and
    /// refilling was one transaction of 7 MB for 100,000 decisions, and took the kernel 4.6 s
    /// with an nf_tables listener on the machine: a notification per element lifted and added.)
    fn reconcile(&mut self, now: u64) -> Result<(), nfnl::Error> {
        for (set, v6) in [(REMOTE4, false), (REMOTE6, true)] {
            self.reconcile_hosts(set, v6, now)?;
        }
        let mut batch = Batch::new();
        self.write_ranges(&mut batch, now);
        self.totals.writes += 1;
        batch.send(&mut self.sock)
    }

    fn reconcile_hosts(&mut self, set: &str, v6: bool, now: u64) -> Result<(), nfnl::Error> {
        let Self {
            book,
            names,
            sock,
            totals,
            destroy,
            ..
        } = self;
        // What the set holds: as the book wants it (`seen`), with its time off (`renew`, in
        // `seen` too), or no longer wanted (`stale`).
        let (mut seen, mut stale, mut renew) = (HashSet::new(), Vec::new(), Vec::new());
        nft::dump::each_element(sock, Family::Inet, TABLE, set, |e| {
            let Some(t) = host_of_key(&e.key) else {
                return;
            };
            let held_until = now.saturating_add(e.expiration_ms.unwrap_or(0));
            match book.primary(&t).filter(|h| h.expires_ms > now) {
                None => stale.push(t),
                Some(h) => {
                    if h.expires_ms.abs_diff(held_until) > EXPIRY_SLACK_MS {
                        renew.push(t);
                    }
                    seen.insert(t);
                }
            }
        })?;
        let mut part = Part::new(*destroy, set);
        for t in &renew {
            if let Some(h) = book.primary(t) {
                part.lift(t);
                part.add(host_element(names, t, &h, now));
                part.send_if_full(sock, totals)?;
            }
        }
        for t in &stale {
            part.lift(t);
            part.send_if_full(sock, totals)?;
        }
        drop((renew, stale));
        let missing = book
            .hosts(v6)
            .filter(|(t, h)| h.expires_ms > now && !seen.contains(t));
        for (t, h) in missing {
            part.add(host_element(names, &t, h, now));
            part.send_if_full(sock, totals)?;
        }
        part.send(sock, totals)
    }
}

/// How far an element's time may be from its decision's before it is written again: the same
/// decision in two answers differs by the time between them.
const EXPIRY_SLACK_MS: u64 = 5_000;

/// One transaction of `RemoteBans::reconcile` being filled: the lifts are encoded before the
/// adds, so a lift and an add of the same address in one part renew it.
struct Part<'a> {
    destroy: bool,
    set: &'a str,
    lifts: Vec<Element>,
    adds: Vec<Element>,
}

impl<'a> Part<'a> {
    fn new(destroy: bool, set: &'a str) -> Part<'a> {
        Part {
            destroy,
            set,
            lifts: Vec::new(),
            adds: Vec::new(),
        }
    }

    fn lift(&mut self, t: &Target) {
        self.lifts.push(Element::new(&key_bytes(t.addr)));
    }

    fn add(&mut self, e: Element) {
        self.adds.push(e);
    }

    /// Sends the part once it holds `TX_ELEMENTS` changes (called between a renewal's lift and
    /// add, never inside).
    fn send_if_full(
        &mut self,
        sock: &mut NlSocket,
        totals: &mut Totals,
    ) -> Result<(), nfnl::Error> {
        if self.lifts.len() + self.adds.len() < TX_ELEMENTS {
            return Ok(());
        }
        self.send(sock, totals)
    }

    fn send(&mut self, sock: &mut NlSocket, totals: &mut Totals) -> Result<(), nfnl::Error> {
        let mut batch = Batch::new();
        for chunk in self.lifts.chunks(CHUNK) {
            lift(&mut batch, self.destroy, self.set, chunk);
        }
        for chunk in self.adds.chunks(CHUNK) {
            batch.add_elements(Family::Inet, TABLE, self.set, chunk);
        }
        self.lifts.clear();
        self.adds.clear();
        if batch.is_empty() {
            return Ok(());
        }
        totals.writes += 1;
        batch.send(sock)
    }
}

/// The address target of a host set's key (4 or 16 bytes).
fn host_of_key(key: &[u8]) -> Option<Target> {
    let addr = match key.len() {
        4 => IpAddr::V4(<[u8; 4]>::try_from(key).ok()?.into()),
        16 => IpAddr::V6(<[u8; 16]>::try_from(key).ok()?.into()),
        _ => return None,
    };
    Some(Target {
        prefix_len: full_len(&addr),
        addr,
    })
}

/// Lifts `elements` from `set`: DESTROY where the kernel has it (`destroy`), so an element that
/// expired meanwhile is no error; DELETE before.
fn lift(batch: &mut Batch, destroy: bool, set: &str, elements: &[Element]) {
    if destroy {
        batch.destroy_elements(Family::Inet, TABLE, set, elements);
    } else {
        batch.delete_elements(Family::Inet, TABLE, set, elements);
    }
}

/// The element comment `remote:ORIGIN SCENARIO` that `scanban list` shows.
fn comment(names: &Names, h: &Held) -> String {
    let mut c = format!("remote:{} {}", names.get(h.origin), names.get(h.scenario));
    if c.len() > COMMENT_MAX {
        let mut cut = COMMENT_MAX;
        while !c.is_char_boundary(cut) {
            cut -= 1;
        }
        c.truncate(cut);
    }
    c
}

/// The element of one address, with the time its decision has left at `now`.
fn host_element(names: &Names, t: &Target, h: &Held, now: u64) -> Element {
    let mut e = Element::new(&key_bytes(t.addr));
    e.timeout_ms = Some(h.expires_ms.saturating_sub(now).max(1));
    e.comment = Some(comment(names, h));
    e
}

/// Hands every item of `v` to `f`, last first, giving the vector's memory back as it empties:
/// a startup answer of 100,000 decisions is 7 MB, and the book grows while it shrinks.
fn drain_shrinking<T>(mut v: Vec<T>, mut f: impl FnMut(T)) {
    while let Some(x) = v.pop() {
        f(x);
        if v.capacity() > SHRINK_ABOVE && v.len() < v.capacity() / 2 {
            v.shrink_to_fit();
        }
    }
}

fn key_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn host_set(t: &Target) -> &'static str {
    if t.addr.is_ipv4() {
        REMOTE4
    } else {
        REMOTE6
    }
}

/// `d`'s target with its host bits cleared (LAPI sends them cleared; a hand-made one may not).
fn target_of(d: &Decision) -> Target {
    Target {
        addr: masked(d.target.addr, d.target.prefix_len),
        prefix_len: d.target.prefix_len,
    }
}

/// Why a decision on `t` may not be applied under `allow`, if it may not.
fn refusal(allow: &Allowlist, t: &Target) -> Option<&'static str> {
    if t.prefix_len > full_len(&t.addr) {
        return Some("its prefix length is longer than the address");
    }
    let addr = masked(t.addr, t.prefix_len);
    let protected = match (addr, is_host(t)) {
        (IpAddr::V4(a), true) => allow.covers_protected(&SourceKey::V4(a)),
        (IpAddr::V6(a), true) => allow.covers_protected(&SourceKey::V6(a, 128)),
        (IpAddr::V4(a), false) => !allow.may_ban_prefix(&SourceKey::V4Net(a, t.prefix_len)),
        (IpAddr::V6(a), false) => !allow.may_ban_prefix(&SourceKey::V6Net(a, t.prefix_len)),
    };
    protected.then_some("it covers an allowlisted or own address (or an on-link prefix)")
}

/// The main thread's handle on a `RemoteBans` living in the poll loop's thread.
#[derive(Clone)]
pub struct AllowlistUpdates(Arc<Mutex<Option<Allowlist>>>);

impl AllowlistUpdates {
    pub fn send(&self, allow: Allowlist) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(allow);
        }
    }
}

impl DecisionSink for RemoteBans {
    fn apply(&mut self, delta: Delta) -> Applied {
        let update = self.allow_updates.lock().ok().and_then(|mut s| s.take());
        if let Some(allow) = update {
            self.set_allowlist(allow);
        }
        if delta.full {
            // A full list replaces the book: what it lacks was lifted meanwhile.
            self.book = Book::default();
            self.refused.clear();
            self.rewrite_all = true;
        }
        let now = self.now_ms();
        let mut applied = Applied::default();
        // Host targets touched, with the expiry their element had before (`None`: no element).
        let mut touched: HashMap<Target, Option<u64>> = HashMap::new();
        let mut ranges_changed = false;
        // Not when every set is written afresh anyway (a full list): for a startup answer of
        // 100,000 decisions that map alone would be megabytes.
        let track = !self.rewrite_all;
        let remember = |book: &Book, touched: &mut HashMap<Target, Option<u64>>, t: Target| {
            if track {
                touched
                    .entry(t)
                    .or_insert_with(|| book.primary(&t).map(|h| h.expires_ms).filter(|e| *e > now));
            }
        };
        let Delta { new, deleted, .. } = delta;
        drain_shrinking(deleted, |d| {
            self.refused.remove(&d.id);
            let t = target_of(&d);
            if is_host(&t) {
                remember(&self.book, &mut touched, t);
            }
            if self.book.remove(&t, d.id) {
                applied.lifted += 1;
                ranges_changed |= !is_host(&t);
            }
        });
        drain_shrinking(new, |d| {
            let t = target_of(&d);
            if let Some(why) = self.refusal(&t) {
                applied.refused += 1;
                if self.refused.insert(d.id) {
                    warn!(
                        "refusing remote decision {} (origin {}, {}): {}/{}: {why}",
                        d.id, d.origin, d.scenario, t.addr, t.prefix_len
                    );
                }
                return;
            }
            if d.duration_ms == 0 {
                return;
            }
            if self.book.primary(&t).is_none() && self.book.full_for(&t, self.max_held) {
                applied.over_limit += 1;
                return;
            }
            let held = Held {
                id: d.id,
                expires_ms: now.saturating_add(d.duration_ms),
                origin: self.names.intern(&d.origin),
                scenario: self.names.intern(&d.scenario),
            };
            if is_host(&t) {
                remember(&self.book, &mut touched, t);
            } else {
                ranges_changed = true;
            }
            self.book.insert(t, held);
            applied.added += 1;
        });
        if applied.over_limit > 0 && !self.full_logged {
            warn!(
                "remote decisions: {} held, as many as lapi-max-decisions {} allows; {} skipped, \
                 and more will be until some expire or are deleted (counted as \
                 lapi_decisions_over_limit)",
                self.book.len(),
                self.max_held,
                applied.over_limit
            );
        }
        self.full_logged = applied.over_limit > 0 || (self.full_logged && applied.added == 0);
        // A range that ran out uncovers what it contained.
        ranges_changed |= self.ranges_written.values().any(|expires| *expires <= now);
        if now.saturating_sub(self.last_sweep_ms) >= SWEEP_EVERY_MS {
            self.book.expire(now, true);
            self.last_sweep_ms = now;
        } else if ranges_changed {
            self.book.expire(now, false);
        }

        // One small dump per apply: a rebuilt table holds none of the remote bans.
        let handle = nft::dump::table_handle(&mut self.sock, Family::Inet, TABLE)
            .ok()
            .flatten();
        if handle.is_none() || handle != self.table_handle {
            self.rewrite_all = true;
        }
        let mut batch = Batch::new();
        let mut loaded = None;
        if self.rewrite_all {
            loaded = Some(self.reconcile(now));
        } else {
            let mut adds: [Vec<Element>; 2] = Default::default();
            for (t, before) in &touched {
                let after = self.book.primary(t).filter(|h| h.expires_ms > now);
                if after.map(|h| h.expires_ms) == *before {
                    continue;
                }
                // Kernels before 6.12 keep an element's old timeout when it is added again: a
                // renewal is a lift and an add, in the same transaction.
                if before.is_some() {
                    self.lift_host(&mut batch, t);
                }
                if let Some(h) = after {
                    adds[usize::from(t.addr.is_ipv6())].push(host_element(&self.names, t, &h, now));
                }
            }
            for (set, elements) in [REMOTE4, REMOTE6].iter().zip(&adds) {
                if !elements.is_empty() {
                    batch.add_elements(Family::Inet, TABLE, set, elements);
                }
            }
            if ranges_changed {
                self.write_ranges(&mut batch, now);
            }
        }
        let result = match loaded {
            Some(result) => result,
            None if batch.is_empty() => {
                self.totals.added += applied.added;
                self.totals.lifted += applied.lifted;
                self.totals.refused += applied.refused;
                return applied;
            }
            None => {
                self.totals.writes += 1;
                batch.send(&mut self.sock)
            }
        };
        match result {
            Ok(()) => {
                if self.rewrite_all {
                    debug!(
                        "remote bans: all {} decision(s) in force written",
                        self.book.len()
                    );
                }
                self.rewrite_all = false;
                self.table_handle = handle;
                if self.last_error.take().is_some() {
                    info!("remote bans written again");
                }
            }
            Err(e) => {
                let e = e.to_string();
                if self.last_error.as_ref() != Some(&e) {
                    error!("writing remote bans: {e}; every remote set is written again next time");
                } else {
                    debug!("writing remote bans: {e}");
                }
                self.last_error = Some(e);
                self.totals.write_errors += 1;
                self.rewrite_all = true;
                applied.failed = applied.added + applied.lifted;
                applied.added = 0;
                applied.lifted = 0;
            }
        }
        self.totals.added += applied.added;
        self.totals.lifted += applied.lifted;
        self.totals.refused += applied.refused;
        self.totals.failed += applied.failed;
        applied
    }
}

#[cfg(test)]
mod tests;
