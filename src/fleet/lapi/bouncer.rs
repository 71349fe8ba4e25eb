//! The bouncer side: `GET /v1/decisions/stream` with the bouncer's API key, `startup=true` first
//! (every active decision), then the deltas every `lapi-poll`, each answer handed to a
//! `DecisionSink`. On an error it backs off and retries; after an outage it asks with
//! `startup=true` again, so nothing decided or lifted meanwhile is missed.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::credentials::Secret;
use super::decisions::{self, read_stream};
use super::http::{self, Request, Url};
use super::watcher::status_error;
use super::{Backoff, Stop};
use crate::fleet::DecisionSink;

/// Largest stream answer read: 100,000 decisions are about 15 MB of JSON (read as it arrives,
/// so the bound is on the time spent, not on memory).
pub const MAX_STREAM: usize = 64 * 1024 * 1024;

/// What the poll loop needs.
pub struct BouncerConfig {
    pub url: Url,
    pub api_key: Secret,
    /// Time between two polls (`lapi-poll`).
    pub poll: Duration,
    /// Connect/read/write timeout of one request.
    pub timeout: Duration,
}

/// The poll loop's counters (`lapi_decisions_*`, `lapi_polls*` in the stats).
#[derive(Debug, Default)]
pub struct BouncerCounters {
    /// Answers read and handed to the sink.
    pub polls: AtomicU64,
    /// Polls that failed (the LAPI down, an error status, a malformed answer).
    pub poll_errors: AtomicU64,
    /// Decisions (new and deleted) handed to the sink.
    pub decisions: AtomicU64,
    /// Entries skipped: not a ban of scope Ip or Range, or fields that did not parse.
    pub skipped: AtomicU64,
    /// What the sink reported, summed.
    pub added: AtomicU64,
    pub lifted: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    pub over_limit: AtomicU64,
}

impl BouncerCounters {
    /// Fills the bouncer's part of the stats.
    pub fn figures(&self, f: &mut crate::stats::LapiFigures) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        f.polls = get(&self.polls);
        f.poll_errors = get(&self.poll_errors);
        f.decisions = get(&self.decisions);
        f.decisions_skipped = get(&self.skipped);
        f.decisions_applied = get(&self.added);
        f.decisions_lifted = get(&self.lifted);
        f.decisions_refused = get(&self.refused);
        f.decisions_failed = get(&self.failed);
        f.decisions_over_limit = get(&self.over_limit);
    }
}

/// The running poll loop.
pub struct Bouncer {
    pub counters: Arc<BouncerCounters>,
    pub thread: JoinHandle<()>,
}

impl Bouncer {
    /// Starts the poll loop on a thread of its own; it ends soon after `stop` is set.
    pub fn spawn(
        config: BouncerConfig,
        sink: Box<dyn DecisionSink>,
        stop: Stop,
    ) -> std::io::Result<Bouncer> {
        let counters = Arc::new(BouncerCounters::default());
        let c = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("lapi-bouncer".into())
            .spawn(move || poll_loop(&config, sink, &c, &stop))?;
        Ok(Bouncer { counters, thread })
    }
}

/// One `GET /v1/decisions/stream`, its answer read as it arrives (never held whole).
pub fn fetch(config: &BouncerConfig, startup: bool) -> Result<decisions::Read, String> {
    let path = if startup {
        "/v1/decisions/stream?startup=true"
    } else {
        "/v1/decisions/stream"
    };
    let request = Request {
        method: "GET",
        path,
        headers: &[("X-Api-Key", config.api_key.expose())],
        body: None,
        max_body: MAX_STREAM,
    };
    http::send_with(&config.url, &request, config.timeout, |status, body| {
        if status != 200 {
            // An error answer is small: read it whole for its message.
            let mut text = Vec::new();
            body.take(64 * 1024).read_to_end(&mut text)?;
            return Ok(Err(status_error(status, &text).to_string()));
        }
        Ok(read_stream(body).map_err(|e| e.to_string()))
    })
    .map_err(|e| e.to_string())?
}

fn poll_loop(
    config: &BouncerConfig,
    mut sink: Box<dyn DecisionSink>,
    counters: &BouncerCounters,
    stop: &Stop,
) {
    let mut startup = true;
    let mut backoff = Backoff::new();
    let mut down = false;
    while !stop.is_stopped() {
        let started = Instant::now();
        match fetch(config, startup) {
            Ok(mut read) => {
                let fetched = started.elapsed();
                read.delta.full = startup;
                counters.polls.fetch_add(1, Ordering::Relaxed);
                let n = (read.delta.new.len() + read.delta.deleted.len()) as u64;
                counters.decisions.fetch_add(n, Ordering::Relaxed);
                counters
                    .skipped
                    .fetch_add(read.skipped + read.invalid, Ordering::Relaxed);
                if down {
                    info!("LAPI {}: decision stream back", config.url);
                    down = false;
                }
                // Every poll, even an empty one: the sink retries failed writes, refills a
                // rebuilt table and writes what an expired range uncovered.
                {
                    let (new, deleted) = (read.delta.new.len(), read.delta.deleted.len());
                    let a = sink.apply(std::mem::take(&mut read.delta));
                    let applied = started.elapsed().saturating_sub(fetched);
                    counters.added.fetch_add(a.added, Ordering::Relaxed);
                    counters.lifted.fetch_add(a.lifted, Ordering::Relaxed);
                    counters.refused.fetch_add(a.refused, Ordering::Relaxed);
                    counters.failed.fetch_add(a.failed, Ordering::Relaxed);
                    counters
                        .over_limit
                        .fetch_add(a.over_limit, Ordering::Relaxed);
                    let msg = format!(
                        "LAPI decisions{}: {} new, {} deleted ({} skipped): {} applied, {} lifted, {} refused, {} failed (answer read in {} ms, applied in {} ms)",
                        if startup { " (startup)" } else { "" },
                        new,
                        deleted,
                        read.skipped + read.invalid,
                        a.added,
                        a.lifted,
                        a.refused,
                        a.failed,
                        fetched.as_millis(),
                        applied.as_millis()
                    );
                    if n > 0 || a.failed > 0 {
                        info!("{msg}");
                    } else {
                        debug!("{msg}");
                    }
                }
                startup = false;
                backoff.reset();
                let next = config.poll.saturating_sub(started.elapsed());
                if stop.wait(next) {
                    break;
                }
            }
            Err(e) => {
                counters.poll_errors.fetch_add(1, Ordering::Relaxed);
                if !down {
                    warn!(
                        "LAPI {}: decision stream failed ({e}); retrying with backoff",
                        config.url
                    );
                    down = true;
                }
                // Whatever was decided or lifted meanwhile comes with the next full list.
                startup = true;
                backoff.failed();
                if stop.wait(backoff.remaining().max(config.poll)) {
                    break;
                }
            }
        }
    }
}
