//! What the daemon makes of its settings: the detectors' configuration, the allowlist (the
//! configured one plus this host's own addresses, gateways and resolvers), and what a SIGHUP
//! reload may change while it runs.

use std::sync::atomic::Ordering;

use detector::{Allowlist, Cidr};
use log::warn;

use crate::hostinfo;
use crate::settings::{ProbeVerdict, Settings};

use super::shards::Shards;
use super::shared::Shared;

/// The detector's configuration from the settings, for one of `shards` shards.
pub fn detector_config(s: &Settings, shards: usize) -> detector::Config {
    let shards = shards.max(1) as u32;
    detector::Config {
        threshold: s.threshold,
        weight_privileged: s.weight_privileged,
        weight_other: s.weight_other,
        weight_stealth: s.weight_stealth,
        weight_ack: s.weight_ack,
        weight_sctp: s.weight_sctp,
        weight_protocol: s.weight_protocol,
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
        slow_threshold: s.slow_threshold,
        slow_leak_every_ms: s.slow_leak_every.as_millis() as u64,
        prefix_threshold: s.prefix_threshold,
        prefix_leak_every_ms: s.prefix_leak_every.as_millis() as u64,
        prefix_v4: s.prefix_v4,
        prefix_v6: s.prefix_v6,
        prefix_capacity: detector::Config::prefix_capacity_for((s.capacity / shards) as usize),
    }
}

/// The configured allowlist plus this host's addresses, gateways and resolvers, and its
/// on-link IPv6 prefixes (whose sources are keyed per address).
pub fn allowlist(s: &Settings) -> Allowlist {
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

/// The allowlist read again (addresses and routes change).
pub fn refresh_allowlist(shared: &Shared, s: &Settings) {
    // LAN interfaces change with them (an interface that comes back has a new index).
    shared.lan.update(&s.lan_interfaces, s.ban_lan);
    let allow = allowlist(s);
    shared.shards.each(|d| d.set_allowlist(allow.clone()));
    shared.fleet.allowlist(&allow);
}

/// Applies what a reload may change at run time; what needs a restart keeps its old value, and
/// the log says so.
pub fn apply_reload(shared: &Shared, old: &Settings, mut new: Settings) -> Settings {
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
    // The prefix ban rules mask sources at these lengths, and the shards own whole prefixes.
    keep!(prefix_v4, "prefix-v4");
    keep!(prefix_v6, "prefix-v6");
    keep!(stats_file, "stats-file");
    // The sensor's form (socket expression or port sets) and whether the ban sets exist are
    // set up at start; a repair must rebuild the same ruleset.
    keep!(open_ports, "open-ports");
    keep!(dry_run, "dry-run");
    keep!(user, "user");
    // The LAPI threads and their secrets are set up before privileges are dropped.
    keep!(lapi_url, "lapi-url");
    keep!(lapi_credentials, "lapi-credentials");
    keep!(lapi_bouncer_key, "lapi-bouncer-key");
    keep!(lapi_poll, "lapi-poll");
    keep!(lapi_max_decisions, "lapi-max-decisions");
    keep!(lapi_ca, "lapi-ca");
    if !restart.is_empty() {
        warn!("SIGHUP: {} only change(s) at restart", restart.join(", "));
    }
    let policy = detector_config(&new, Shards::COUNT);
    let allow = allowlist(&new);
    if let Ok(mut s) = shared.sessions.lock() {
        s.configure(&new.spare_ports, new.spare_after.as_millis() as u64);
    }
    shared.shards.each(|d| {
        d.set_policy(policy.clone());
        d.set_allowlist(allow.clone());
    });
    shared.fleet.allowlist(&allow);
    shared
        .drop_probes
        .store(new.verdict == ProbeVerdict::Drop, Ordering::Relaxed);
    shared.lan.update(&new.lan_interfaces, new.ban_lan);
    if let Ok(mut s) = shared.settings.lock() {
        *s = new.clone();
    }
    new
}
