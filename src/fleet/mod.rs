//! The fleet: bans shared with other hosts through CrowdSec's Local API (LAPI). `lapi/` speaks
//! the protocol (HTTP, JSON, login, alerts pushed as a machine, the decision stream pulled as a
//! bouncer); `remote` applies the decisions to scanban's own kernel sets. They meet only in the
//! types below, so the protocol side never touches the kernel and the kernel side never parses
//! a byte of HTTP.

pub mod book;
pub mod lapi;
pub mod remote;

use std::net::IpAddr;
use std::sync::Arc;

/// What a decision covers: one address (LAPI scope `Ip`, `prefix_len` 32 or 128) or a CIDR
/// range (scope `Range`). `addr` has its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// One `ban` decision from the LAPI decision stream. Decisions of other types (captcha,
/// throttle) and other scopes (Country, AS) are dropped by the protocol side, which counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// LAPI's decision id: a `deleted` entry names the decision it lifts by id and value.
    pub id: u64,
    pub target: Target,
    /// What is left of the ban when the stream delivered it.
    pub duration_ms: u64,
    /// Who decided: `cscli`, `crowdsec`, `CAPI`, `lists`, or another machine's scenario origin.
    /// Shared: the decisions of one answer have a handful of origins and scenarios.
    pub origin: Arc<str>,
    pub scenario: Arc<str>,
}

/// One answer of `GET /v1/decisions/stream`: decisions to apply and decisions to lift. The
/// first answer (`startup=true`) carries every active decision in `new`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub new: Vec<Decision>,
    pub deleted: Vec<Decision>,
    /// The answer of a `startup=true` request: `new` is every decision in force, so whatever
    /// the sink holds that is not in it was lifted while the stream was not read.
    pub full: bool,
}

/// Where the bouncer's poll loop (protocol side) hands each stream answer: the kernel side
/// (`remote::RemoteBans`) applies it to scanban's remote-ban sets, refusing what the allowlist
/// protects. Returns how the delta went, for the loop's log line and counters. The delta is
/// the sink's to drop as soon as it has taken what it keeps: a startup answer of 100,000
/// decisions is megabytes that need not live on while the kernel write is built.
pub trait DecisionSink: Send {
    fn apply(&mut self, delta: Delta) -> Applied;
}

/// What one `DecisionSink::apply` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Decisions now in the kernel (new, or renewed with a new duration).
    pub added: u64,
    /// Decisions lifted.
    pub lifted: u64,
    /// Decisions refused: the target covers an allowlisted or auto-allowlisted address.
    pub refused: u64,
    /// Decisions the kernel write failed for (they are tried again by the sink).
    pub failed: u64,
    /// Decisions skipped because the sink holds as many as it may (`lapi-max-decisions`).
    pub over_limit: u64,
}
