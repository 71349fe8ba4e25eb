//! What managed mode installs: `table inet scanban`, built from the settings and the kernel's
//! features, as nft objects (to send) and as nft text (what `scanban ruleset` prints).
//!
//! - sets `banned4` (ipv4_addr), `banned6` (ipv6_addr, keys masked to the configured prefix)
//!   and `banned6_host` (single IPv6 addresses: sources whose prefix holds a protected address,
//!   and on-link neighbours), with timeouts, an explicit size and a comment; `banned4_net` and
//!   `banned6_net` (whole prefixes of a distributed scan, keys masked to `prefix-v4`/`prefix-v6`);
//! - the remote-ban sets, filled only by the fleet's decisions (`fleet::remote`), never by local
//!   bans: `remote4`/`remote6` (single addresses, timeouts) and `remote4_net`/`remote6_net`
//!   (CIDR ranges of any length, interval sets with timeouts; only ranges no other range
//!   contains are written, because the kernel refuses overlapping intervals);
//! - chain `prerouting`, hook prerouting priority -450 (before defragmentation and conntrack):
//!   loopback traffic returns at once (a ban never cuts the host off from itself), banned
//!   sources are counted and dropped, local bans first, then remote ones;
//! - chain `sensor`, hook input priority -10 (before the filter priority, so after an accept
//!   verdict the admin's own firewall still decides): loopback, non-unicast and established
//!   traffic return at once; so does anything a local socket will receive; what is left goes to
//!   the queue(s), with `bypass` so a stopped daemon never blackholes traffic: TCP SYN without
//!   ACK; flagless/FIN/XMAS TCP; ACK without SYN or RST (ACK, Window and FIN+ACK Maimon probes,
//!   which conntrack calls `new` (loose pickup) or `invalid`: either way no connection it knows);
//!   new UDP; SCTP (the detector counts INIT and COOKIE ECHO; the nft `socket` expression knows
//!   no SCTP sockets); and any IP protocol but TCP, UDP, SCTP, ICMP and ICMPv6 (nmap -sO). TCP
//!   RST and SYN+ACK are never queued: they answer something, often spoofed by a third party.
//!   IPv6 probes with extension headers go through twin rules that also write the destination
//!   port and the kind into the packet mark, so a transport header past the copy range still
//!   counts (`detector::packet::sensor_mark`); this rewrites the mark of such packets only.
//! - router mode (`protect` forward or both, `crate::protect`): chain `forward_sensor`, hook
//!   forward priority -10, queues the ANSWERS of the hosts behind the router, which it has no
//!   socket for: TCP RST in a connection's reply direction, and ICMP/ICMPv6 destination
//!   unreachable (port, protocol, host/address, admin-prohibited) related to a connection; and
//!   NULL/FIN/Xmas probes themselves (no connection sends TCP without SYN, RST or ACK, and
//!   conntrack ties no answer to them), with the input sensor's twin rule for IPv6 extension
//!   headers (the port and kind in the mark);
//!   chain `output_sensor`, hook output priority -10, queues the router's own host/address
//!   unreachables (an unassigned address of a routed prefix), never its answers for its own
//!   closed ports (the input sensor counts those probes). `detector::packet::reply` reads an
//!   answer into the probe it answers; an answer is accepted unless its scanner was just banned
//!   (`daemon::queue_reader`).

use detector::inet::ipproto;
use detector::packet::{field, sensor_mark, sensor_mark::kind as mark};
use nft::probe::Features;
use nft::rule::{ct_state, tcp_flag};
use nft::uapi::set::{F_INTERVAL, F_TIMEOUT};
use nft::{BaseChain, Chain, Family, Hook, KeyType, Rule, Set, Table, Verdict};

use crate::settings::{Mode, OpenPorts, Settings, MAX_QUEUES};

pub const TABLE: &str = "scanban";
pub const SET4: &str = "banned4";
pub const SET6: &str = "banned6";
/// Single IPv6 addresses, for keys narrowed below the prefix (see `detector::Allowlist::key_for`).
pub const SET6_HOST: &str = "banned6_host";
/// Whole IPv4 prefixes (`prefix-v4`) and IPv6 prefixes (`prefix-v6`) banned by the
/// distributed-scan tier, keys masked to those lengths; never one that covers a protected
/// address (see `detector::Allowlist::may_ban_prefix`).
pub const SET4_NET: &str = "banned4_net";
pub const SET6_NET: &str = "banned6_net";
/// Remote bans (fleet decisions): single addresses, and CIDR ranges (interval sets).
pub const REMOTE4: &str = "remote4";
pub const REMOTE6: &str = "remote6";
pub const REMOTE4_NET: &str = "remote4_net";
pub const REMOTE6_NET: &str = "remote6_net";
/// Elements each remote set may hold: a community blocklist and a fleet's own decisions fit
/// many times over (a range takes two elements).
pub const REMOTE_SET_SIZE: u32 = crate::settings::MAX_REMOTE_DECISIONS;
/// Listening ports, kept by the daemon where the nft `socket` expression is missing.
pub const OPEN_TCP: &str = "open_tcp";
pub const OPEN_UDP: &str = "open_udp";
pub const PREROUTING_PRIORITY: i32 = -450;
pub const SENSOR_PRIORITY: i32 = -10;
/// Router mode's chains (see the module doc).
pub const FORWARD_SENSOR: &str = "forward_sensor";
pub const OUTPUT_SENSOR: &str = "output_sensor";
/// Every chain whose queue rules feed the daemon.
pub const SENSOR_CHAINS: [&str; 3] = ["sensor", FORWARD_SENSOR, OUTPUT_SENSOR];

/// Packets the queue rules of a dumped sensor chain have matched (their counters).
pub fn queued_by_rules(rules: &[Rule]) -> u64 {
    use nft::Expr;
    rules
        .iter()
        .filter(|r| {
            r.exprs.iter().any(|e| match e {
                Expr::Queue { .. } => true,
                Expr::Target { name, .. } => name == "NFQUEUE",
                _ => false,
            })
        })
        .flat_map(|r| r.exprs.iter())
        .map(|e| match e {
            Expr::Counter { packets, .. } => *packets,
            _ => 0,
        })
        .sum()
}

/// Everything managed mode installs, in the order it goes into the batch.
pub struct Ruleset {
    pub table: Table,
    pub sets: Vec<Set>,
    pub chains: Vec<Chain>,
    pub rules: Vec<Rule>,
}

pub fn ban_set(name: &str, key: KeyType, settings: &Settings) -> Set {
    Set {
        family: Family::Inet,
        table: TABLE.into(),
        name: name.into(),
        key,
        flags: F_TIMEOUT,
        size: Some(settings.set_size),
        timeout_ms: None,
        comment: Some("scanban bans: they expire on their own".into()),
        raw_key: None,
    }
}

/// A remote-ban set: `interval` for CIDR ranges.
pub fn remote_set(name: &str, key: KeyType, interval: bool) -> Set {
    Set {
        family: Family::Inet,
        table: TABLE.into(),
        name: name.into(),
        key,
        flags: F_TIMEOUT | if interval { F_INTERVAL } else { 0 },
        size: Some(REMOTE_SET_SIZE),
        timeout_ms: None,
        comment: Some("scanban remote bans (fleet decisions): they expire on their own".into()),
        raw_key: None,
    }
}

fn base(name: &str, hook: Hook, priority: i32) -> Chain {
    Chain {
        family: Family::Inet,
        table: TABLE.into(),
        name: name.into(),
        base: Some(BaseChain {
            hook,
            priority,
            kind: "filter".into(),
            policy: Verdict::Accept,
        }),
    }
}

/// Whether the sensor recognises open ports with the `socket` expression (else with the
/// open-port sets the daemon fills from /proc).
pub fn uses_socket(settings: &Settings, features: &Features) -> bool {
    match settings.open_ports {
        OpenPorts::Socket => true,
        OpenPorts::Proc => false,
        OpenPorts::Auto => features.socket,
    }
}

fn port_set(name: &str) -> Set {
    Set {
        family: Family::Inet,
        table: TABLE.into(),
        name: name.into(),
        key: KeyType::InetService,
        flags: 0,
        size: None,
        timeout_ms: None,
        comment: Some("listening ports, kept by scanban from /proc".into()),
        raw_key: None,
    }
}

/// Which parts of the ruleset to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// The ban sets and the prerouting drop (not in a dry run).
    pub bans: bool,
    /// The sensor chain that queues probes (managed mode only).
    pub sensor: bool,
    /// Router mode's chains that queue answers (managed mode, `protect` forward or both).
    pub forward: bool,
}

impl Parts {
    /// What `run` installs with these settings: a dry run installs the sensor alone, tail mode
    /// the bans alone.
    pub fn for_run(s: &Settings) -> Parts {
        let sensed = crate::protect::sensed(s.protect);
        let managed = s.mode == Mode::Managed;
        Parts {
            bans: !s.dry_run,
            sensor: managed && sensed.input,
            forward: managed && sensed.forward,
        }
    }
}

pub fn build(settings: &Settings, features: &Features, parts: Parts) -> Ruleset {
    let r = |chain: &str| Rule::new(Family::Inet, TABLE, chain);
    let q = settings.queue;
    let total = q.count().min(MAX_QUEUES) as u16;
    // The counter lets the daemon tell how many probes failed open (queue full) from how many
    // it received.
    let queue = |rule: Rule| {
        if features.native_queue {
            rule.counter().queue(q.first, total, true, false)
        } else {
            rule.counter().queue_compat(q.first, total, true, false)
        }
    };
    let mut sets = Vec::new();
    let mut chains = Vec::new();
    let mut rules = Vec::new();
    if parts.bans {
        sets.push(ban_set(SET4, KeyType::Ipv4Addr, settings));
        sets.push(ban_set(SET6, KeyType::Ipv6Addr, settings));
        sets.push(ban_set(SET6_HOST, KeyType::Ipv6Addr, settings));
        chains.push(base("prerouting", Hook::Prerouting, PREROUTING_PRIORITY));
        rules.push(r("prerouting").iif_loopback().ret());
        rules.push(r("prerouting").ip_saddr_in(SET4).counter().drop());
        rules.push(
            r("prerouting")
                .ip6_saddr_prefix_in(settings.ipv6_prefix, SET6)
                .counter()
                .drop(),
        );
        rules.push(
            r("prerouting")
                .ip6_saddr_prefix_in(128, SET6_HOST)
                .counter()
                .drop(),
        );
        // After the per-source sets: a prefix ban is rare, a source ban the common case.
        sets.push(ban_set(SET4_NET, KeyType::Ipv4Addr, settings));
        sets.push(ban_set(SET6_NET, KeyType::Ipv6Addr, settings));
        rules.push(
            r("prerouting")
                .ip_saddr_prefix_in(settings.prefix_v4, SET4_NET)
                .counter()
                .drop(),
        );
        rules.push(
            r("prerouting")
                .ip6_saddr_prefix_in(settings.prefix_v6, SET6_NET)
                .counter()
                .drop(),
        );
        // The fleet's decisions, after every local ban: a source banned both ways is counted
        // as a local drop.
        sets.push(remote_set(REMOTE4, KeyType::Ipv4Addr, false));
        sets.push(remote_set(REMOTE6, KeyType::Ipv6Addr, false));
        sets.push(remote_set(REMOTE4_NET, KeyType::Ipv4Addr, true));
        sets.push(remote_set(REMOTE6_NET, KeyType::Ipv6Addr, true));
        for (v6, set) in [
            (false, REMOTE4),
            (true, REMOTE6),
            (false, REMOTE4_NET),
            (true, REMOTE6_NET),
        ] {
            let rule = if v6 {
                r("prerouting").ip6_saddr_prefix_in(128, set)
            } else {
                r("prerouting").ip_saddr_in(set)
            };
            rules.push(rule.counter().drop());
        }
    }
    if parts.sensor {
        chains.push(base("sensor", Hook::Input, SENSOR_PRIORITY));
        rules.push(r("sensor").iif_loopback().ret());
        rules.push(r("sensor").pkttype_not_host().ret());
        rules.push(
            r("sensor")
                .ct_state_in(ct_state::ESTABLISHED | ct_state::RELATED)
                .ret(),
        );
        if uses_socket(settings, features) {
            rules.push(r("sensor").socket_transparent(0).ret());
            rules.push(r("sensor").socket_transparent(1).ret());
        } else {
            sets.push(port_set(OPEN_TCP));
            sets.push(port_set(OPEN_UDP));
            rules.push(r("sensor").dport_in(false, OPEN_TCP).ret());
            rules.push(r("sensor").dport_in(true, OPEN_UDP).ret());
        }
        // Each probe kind: first IPv6 with extension headers before the transport header,
        // which may lie past the copy range: the port and the kind go in the mark
        // (`detector::packet::sensor_mark`); then every other packet of that kind.
        let kinds = [
            (
                r("sensor").tcp_flags(tcp_flag::SYN | tcp_flag::ACK, tcp_flag::SYN),
                mark::SYN,
                "probes: SYN to a closed port",
            ),
            (
                r("sensor").tcp_flags(tcp_flag::SYN | tcp_flag::RST | tcp_flag::ACK, 0),
                mark::STEALTH,
                "probes: NULL, FIN, XMAS",
            ),
            (
                r("sensor").tcp_flags(tcp_flag::SYN | tcp_flag::RST | tcp_flag::ACK, tcp_flag::ACK),
                mark::ACK,
                "probes: ACK, Window, FIN+ACK (Maimon)",
            ),
            (
                r("sensor").l4proto_udp().ct_state_in(ct_state::NEW),
                mark::UDP,
                "probes: UDP to a closed port",
            ),
            (
                r("sensor").l4proto_sctp(),
                mark::SCTP,
                "probes: SCTP INIT, COOKIE ECHO",
            ),
        ];
        for (matched, kind, comment) in kinds {
            let deep = marked_twin(r("sensor"), &matched, kind);
            rules.push(queue(deep).with_comment(&format!("{comment}, IPv6 extension headers")));
            rules.push(queue(matched).with_comment(comment));
            match kind {
                mark::ACK => rules.push(r("sensor").l4proto_tcp().ret()),
                mark::UDP => rules.push(r("sensor").l4proto_udp().ret()),
                _ => {}
            }
        }
        rules.push(r("sensor").l4proto_icmp(false).ret());
        rules.push(r("sensor").l4proto_icmp(true).ret());
        rules.push(queue(r("sensor")).with_comment("probes: IP protocols (nmap -sO)"));
    }
    if parts.forward {
        forward_sensor(&mut chains, &mut rules, &queue);
    }
    Ruleset {
        table: Table::new(Family::Inet, TABLE),
        sets,
        chains,
        rules,
    }
}

/// `matched`'s twin for IPv6 packets with extension headers, whose transport header may lie past
/// the copy range: it also writes the destination port and the probe `kind` into the packet
/// mark (`detector::packet::sensor_mark`). Starts from `empty`, a rule of the same chain; goes
/// before `matched`, which would queue the packet without the mark.
fn marked_twin(empty: Rule, matched: &Rule, kind: u8) -> Rule {
    let (proto, name, port) = match kind {
        mark::UDP => (ipproto::UDP, "udp", field::udp::DST_PORT),
        mark::SCTP => (ipproto::SCTP, "sctp", field::sctp::DST_PORT),
        _ => (ipproto::TCP, "tcp", field::tcp::DST_PORT),
    };
    let mut deep = empty.ip6_nexthdr_not(proto, name);
    deep.exprs.extend(matched.exprs.iter().cloned());
    // nft lists the rule without the `meta l4proto` that `dport` implies.
    let implied = format!("meta l4proto {name}");
    deep.text
        .extend(matched.text.iter().filter(|t| **t != implied).cloned());
    deep.mark_set_port(name, port, sensor_mark::MASK, sensor_mark::xor(kind))
}

/// Router mode's chains (see the module doc): the answers of the hosts behind the router, and
/// its own host/address unreachables, to the same queue(s) as the input sensor.
fn forward_sensor(chains: &mut Vec<Chain>, rules: &mut Vec<Rule>, queue: &dyn Fn(Rule) -> Rule) {
    use detector::packet::field::icmp;
    let r = |chain: &str| Rule::new(Family::Inet, TABLE, chain);
    chains.push(base(FORWARD_SENSOR, Hook::Forward, SENSOR_PRIORITY));
    // A RST in the reply direction: the host behind has no socket on the probed port (RST+ACK
    // answers SYN, bare RST an ACK-family probe). A RST in the original direction is no answer
    // of a host behind (often a forged one): never queued.
    rules.push(
        queue(
            r(FORWARD_SENSOR)
                .ct_direction_reply()
                .tcp_flags(tcp_flag::RST, tcp_flag::RST),
        )
        .with_comment("answers: RST of a closed port behind the router"),
    );
    // NULL, FIN and Xmas probes have no answer tied to them (conntrack makes no entry for
    // them), and no connection sends a segment without SYN, RST or ACK: such a segment passing
    // through is queued itself, as a probe (before a filter that drops invalid packets, as
    // OpenWrt's does, has its say).
    let stealth = r(FORWARD_SENSOR).tcp_flags(tcp_flag::SYN | tcp_flag::RST | tcp_flag::ACK, 0);
    // Behind IPv6 extension headers the TCP header may lie past the copy range: as in the input
    // sensor, a twin rule hands the port over in the mark.
    rules.push(
        queue(marked_twin(r(FORWARD_SENSOR), &stealth, mark::STEALTH))
            .with_comment("probes: NULL, FIN, XMAS through the router, IPv6 extension headers"),
    );
    rules.push(queue(stealth).with_comment("probes: NULL, FIN, XMAS through the router"));
    let unreachable = [
        (false, icmp::V4_PORT, "port-unreachable"),
        (false, icmp::V4_PROTOCOL, "prot-unreachable"),
        (false, icmp::V4_HOST, "host-unreachable"),
        (false, icmp::V4_ADMIN, "admin-prohibited"),
        (true, icmp::V6_PORT, "port-unreachable"),
        (true, icmp::V6_ADDRESS, "addr-unreachable"),
        (true, icmp::V6_ADMIN, "admin-prohibited"),
    ];
    for (v6, code, name) in unreachable {
        rules.push(
            queue(
                r(FORWARD_SENSOR)
                    .ct_state_in(ct_state::RELATED)
                    .icmp_unreachable(v6, code, name),
            )
            .with_comment("answers: unreachable behind the router"),
        );
    }
    chains.push(base(OUTPUT_SENSOR, Hook::Output, SENSOR_PRIORITY));
    // An error about the host's own traffic goes to itself over loopback.
    rules.push(r(OUTPUT_SENSOR).oif_loopback().ret());
    for (v6, code, name) in [
        (false, icmp::V4_HOST, "host-unreachable"),
        (true, icmp::V6_ADDRESS, "addr-unreachable"),
    ] {
        rules.push(
            queue(
                r(OUTPUT_SENSOR)
                    .ct_state_in(ct_state::RELATED)
                    .icmp_unreachable(v6, code, name),
            )
            .with_comment("answers: unassigned address of a routed prefix"),
        );
    }
}

impl Ruleset {
    /// Adds everything to `batch`: objects created if absent, our chains' rules replaced.
    pub fn install(&self, batch: &mut nft::Batch) {
        batch.add_table(&self.table);
        for s in &self.sets {
            batch.add_set(s);
        }
        for c in &self.chains {
            batch.add_chain(c);
            batch.flush_chain(c.family, &c.table, &c.name);
        }
        for r in &self.rules {
            batch.add_rule(r);
        }
    }

    /// The ruleset in nft syntax, exactly as installed.
    pub fn to_nft(&self) -> String {
        let mut out = format!("table inet {TABLE} {{\n");
        for s in &self.sets {
            out.push_str(&format!("\tset {} {{\n\t\ttype {}\n", s.name, s.key.name()));
            if let Some(size) = s.size {
                out.push_str(&format!("\t\tsize {size}\n"));
            }
            match (s.flags & F_INTERVAL != 0, s.flags & F_TIMEOUT != 0) {
                (true, true) => out.push_str("\t\tflags interval,timeout\n"),
                (false, true) => out.push_str("\t\tflags timeout\n"),
                (true, false) => out.push_str("\t\tflags interval\n"),
                (false, false) => {}
            }
            out.push_str(&format!(
                "\t\tcomment \"{}\"\n\t}}\n\n",
                s.comment.as_deref().unwrap_or("")
            ));
        }
        for (i, c) in self.chains.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!("\tchain {} {{\n", c.name));
            if let Some(b) = &c.base {
                out.push_str(&format!(
                    "\t\ttype {} hook {} priority {}; policy accept;\n",
                    b.kind,
                    b.hook.name(),
                    b.priority
                ));
            }
            for r in self.rules.iter().filter(|r| r.chain == c.name) {
                out.push_str(&format!("\t\t{}\n", r.to_nft()));
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }
}
