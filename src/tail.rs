//! Tail mode: the admin's own ruleset queues the packets, from a rule inside one of its chains,
//! and everything here is about leaving that chain exactly as the admin wrote it.
//!
//! An NFQUEUE accept verdict accepts the packet in the base chain that queued it: the admin's
//! rules after the queue rule, and the chain's policy, are skipped. In a drop-policy chain that
//! opens every port the policy closes. So in tail mode a packet scanban lets through leaves
//! with NF_REPEAT, which runs the same base chain again from its start, and with `tail-mark`
//! added to its mark; the documented queue rule skips packets carrying that bit, so the second
//! pass goes past it to the admin's later rules and policy, as if scanban were not there.
//! Drops (banned sources, `verdict drop`) stay drops. The queue rule has no `bypass` and the
//! queue no fail-open: with scanban down or overrun, queued packets are dropped, which is what
//! a drop-policy chain would do with them anyway (see docs/SECURITY.md for accept policies).
//!
//! Managed mode keeps NF_ACCEPT: its sensor is a base chain of its own (table inet scanban,
//! input priority -10) with nothing after the queue rules, and an accept there only ends that
//! chain; the packet still meets every other base chain on the hook, the admin's included.

use std::time::{Duration, Instant};

use log::error;
use nfnl::queue::Verdict;

use crate::settings::{Mode, Settings};

/// How a packet that scanban does not drop leaves the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Managed mode: accept, which ends scanban's own sensor chain only.
    Accept,
    /// Tail mode: repeat the admin's chain, with `bit` added to the packet's mark.
    Repeat { bit: u32 },
}

impl Pass {
    pub fn for_settings(s: &Settings) -> Pass {
        match s.mode {
            Mode::Managed => Pass::Accept,
            Mode::Tail => Pass::Repeat { bit: s.tail_mark },
            // No queue: nothing passes through scanban.
            Mode::Bouncer => Pass::Accept,
        }
    }

    /// Whether the queue may fail open (accept when full). An accept in the admin's chain
    /// would skip its policy, so only managed mode does.
    pub fn fail_open(self) -> bool {
        self == Pass::Accept
    }

    /// The mark to read as a sensor mark (`detector::packet::sensor_mark`): only scanban's own
    /// sensor writes one (managed mode); in tail mode the mark is the admin's.
    pub fn sensor_mark(self, mark: Option<u32>) -> Option<u32> {
        match self {
            Pass::Accept => mark,
            Pass::Repeat { .. } => None,
        }
    }

    /// Whether a packet queued with `mark` already carries our bit: it was let through once
    /// already, and the queue rule that sent it back does not skip the bit.
    pub fn came_back(self, mark: Option<u32>) -> bool {
        match self {
            Pass::Accept => false,
            Pass::Repeat { bit } => mark.unwrap_or(0) & bit != 0,
        }
    }

    /// The verdict and mark to send for a packet the daemon decided `decided` for (accept or
    /// drop), which arrived with `mark` (`NFQA_MARK`, absent when 0). The verdict's mark
    /// replaces the packet's whole mark, so ours is the packet's with the bit added. A packet
    /// that came back is dropped: repeating it again would loop, and accepting it would skip
    /// the admin's rules.
    pub fn leave(self, decided: Verdict, mark: Option<u32>) -> (Verdict, Option<u32>) {
        match (self, decided) {
            (Pass::Repeat { bit }, Verdict::Accept) => {
                if self.came_back(mark) {
                    (Verdict::Drop, None)
                } else {
                    (Verdict::Repeat, Some(mark.unwrap_or(0) | bit))
                }
            }
            (_, v) => (v, None),
        }
    }
}

/// Counts packets that came back with our bit and says so in the log, at most once a minute.
pub struct CameBack {
    queue: u16,
    bit: u32,
    count: u64,
    said: Option<Instant>,
}

impl CameBack {
    pub fn new(queue: u16, pass: Pass) -> Self {
        let bit = match pass {
            Pass::Accept => 0,
            Pass::Repeat { bit } => bit,
        };
        CameBack {
            queue,
            bit,
            count: 0,
            said: None,
        }
    }

    pub fn note(&mut self) {
        self.count += 1;
    }

    /// Logs what was noted since the last line, if a minute has passed since it.
    pub fn say(&mut self, now: Instant) {
        if self.count == 0 || self.said.is_some_and(|t| now - t < Duration::from_secs(60)) {
            return;
        }
        error!(
            "queue {}: {} packet(s) came back with mark bit {:#x} already set: the rule that \
             queues them does not skip that bit, so they were dropped (a repeat would loop, an \
             accept would skip your rules). Add `meta mark & {:#x} == 0` to it (iptables: -m \
             mark ! --mark {:#x}/{:#x}); `scanban ruleset --mode tail` prints the whole rule",
            self.queue, self.count, self.bit, self.bit, self.bit, self.bit
        );
        self.count = 0;
        self.said = Some(now);
    }
}

/// The `queue` part of the rule: the numbers scanban reads.
fn queue_nft(s: &Settings) -> String {
    let q = s.queue;
    if q.first == q.last {
        format!("queue num {}", q.first)
    } else {
        format!("queue num {}-{}", q.first, q.last)
    }
}

fn queue_xt(s: &Settings) -> String {
    let q = s.queue;
    if q.first == q.last {
        format!("--queue-num {}", q.first)
    } else {
        format!("--queue-balance {}:{}", q.first, q.last)
    }
}

/// The queue rule for the end of an nft input chain whose policy is drop: every new and invalid
/// packet not yet seen by scanban, whatever its protocol: conntrack calls NULL, FIN, XMAS,
/// FIN+ACK and SCTP COOKIE ECHO probes invalid, and the detector counts SCTP and IP-protocol
/// probes too (an ICMP packet that gets this far is let through to the rules after it).
pub fn nft_rule(s: &Settings) -> String {
    format!(
        "ct state {{ new, invalid }} meta mark & {:#010x} == 0 {}",
        s.tail_mark,
        queue_nft(s)
    )
}

/// The same as an iptables-nft (or ip6tables-nft) rule, appended to INPUT.
pub fn xt_rules(s: &Settings, cmd: &str) -> Vec<String> {
    vec![format!(
        "{cmd} -A INPUT -m conntrack --ctstate NEW,INVALID -m mark ! --mark \
         {m:#010x}/{m:#010x} -j NFQUEUE {}",
        queue_xt(s),
        m = s.tail_mark
    )]
}

/// What `scanban ruleset` says in tail mode, as nft comments: the rules to add.
pub fn ruleset_comment(s: &Settings) -> String {
    let mut out = String::from(
        "# Tail mode: end your input chain, after your accept rules, with this rule (no `bypass`,\n\
         # except as the last rule of a chain whose policy is accept: docs/DEPLOYMENT.md):\n",
    );
    out.push_str(&format!("#   {}\n", nft_rule(s)));
    out.push_str("# or with iptables-nft (and the same with ip6tables-nft):\n");
    for r in xt_rules(s, "iptables-nft") {
        out.push_str(&format!("#   {r}\n"));
    }
    out.push_str(&format!(
        "# What scanban lets through goes back to the start of that chain with mark bit {:#x}\n\
         # and skips the rule: your later rules and policy decide. Nothing before the rule may\n\
         # overwrite the mark.\n",
        s.tail_mark
    ));
    out
}

/// The run's log line about how packets leave the queue, in tail mode.
pub fn startup_line(s: &Settings) -> Option<String> {
    match Pass::for_settings(s) {
        Pass::Accept => None,
        Pass::Repeat { bit } => Some(format!(
            "tail mode: packets scanban lets through go back to the start of your chain with \
             mark bit {bit:#x} (NF_REPEAT), to your rules after the queue rule, which must skip \
             that bit: `scanban ruleset --mode tail` prints it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail() -> Settings {
        Settings {
            mode: Mode::Tail,
            ..Settings::default()
        }
    }

    #[test]
    fn tail_mode_repeats_with_the_packets_mark_plus_the_bit_and_drops_what_comes_back() {
        let p = Pass::for_settings(&tail());
        let bit = 0x1000_0000;
        assert_eq!(p, Pass::Repeat { bit });
        assert!(!p.fail_open());
        assert_eq!(p.leave(Verdict::Accept, None), (Verdict::Repeat, Some(bit)));
        assert_eq!(
            p.leave(Verdict::Accept, Some(0x5)),
            (Verdict::Repeat, Some(0x5 | bit)),
            "the packet's own mark bits are kept"
        );
        assert_eq!(p.leave(Verdict::Drop, Some(0x5)), (Verdict::Drop, None));
        assert!(p.came_back(Some(bit | 0x5)));
        assert_eq!(
            p.leave(Verdict::Accept, Some(bit | 0x5)),
            (Verdict::Drop, None),
            "a rule that does not skip the bit would loop"
        );
    }

    #[test]
    fn managed_mode_accepts_and_fails_open() {
        let p = Pass::for_settings(&Settings::default());
        assert_eq!(p, Pass::Accept);
        assert!(p.fail_open());
        assert_eq!(p.leave(Verdict::Accept, Some(0x5)), (Verdict::Accept, None));
        assert_eq!(p.leave(Verdict::Drop, None), (Verdict::Drop, None));
        assert!(!p.came_back(Some(u32::MAX)));
    }

    #[test]
    fn the_rules_name_the_queues_and_the_mark() {
        let mut s = tail();
        assert_eq!(
            nft_rule(&s),
            "ct state { new, invalid } meta mark & 0x10000000 == 0 queue num 0"
        );
        assert_eq!(
            xt_rules(&s, "iptables-nft"),
            ["iptables-nft -A INPUT -m conntrack --ctstate NEW,INVALID -m mark ! --mark 0x10000000/0x10000000 -j NFQUEUE --queue-num 0"]
        );
        s.apply("queue", Some("2-5")).unwrap();
        s.apply("tail-mark", Some("0x4")).unwrap();
        assert!(nft_rule(&s).ends_with("meta mark & 0x00000004 == 0 queue num 2-5"));
        assert!(xt_rules(&s, "ip6tables-nft")[0]
            .ends_with("-m mark ! --mark 0x00000004/0x00000004 -j NFQUEUE --queue-balance 2:5"));
        let text = ruleset_comment(&s);
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
    }

    /// Every place that tells admins what to write gives the rule scanban prints, and none
    /// gives the one that opened the firewall.
    #[test]
    fn the_documentation_gives_the_safe_rule() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let s = tail();
        for doc in [
            "README.md",
            "docs/DEPLOYMENT.md",
            "packaging/openwrt/files/scanban.config",
            "packaging/scanban.8",
        ] {
            let text = std::fs::read_to_string(root.join(doc)).unwrap();
            assert!(text.contains(&nft_rule(&s)), "{doc} lacks {}", nft_rule(&s));
            assert!(!text.contains("ct state new queue"), "{doc}");
        }
        for doc in ["README.md", "docs/DEPLOYMENT.md"] {
            let text = std::fs::read_to_string(root.join(doc)).unwrap();
            for r in xt_rules(&s, "iptables-nft") {
                assert!(text.contains(&r), "{doc} lacks {r}");
            }
        }
    }
}
