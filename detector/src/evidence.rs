//! Why a source was banned, carried with the ban: what logs, set-element comments and event
//! lines show. Fixed size, no allocation.

use std::fmt::{self, Write};

use crate::allowlist::Narrowed;
use crate::packet::Proto;

/// Stealth probe kinds (bit flags).
pub mod stealth {
    pub const NULL: u8 = 1;
    pub const FIN: u8 = 2;
    pub const XMAS: u8 = 4;
    pub const SYN_FIN: u8 = 8;
    pub const SYN_RST: u8 = 16;
    /// ACK or Window probes, and FIN+ACK (Maimon): not stealth, but named in the evidence.
    pub const ACK: u8 = 32;
    pub const FIN_ACK: u8 = 64;
    /// The stealth kinds proper; `ACK` and `FIN_ACK` are shown apart, as ACK probes.
    pub const STEALTH: u8 = NULL | FIN | XMAS | SYN_FIN | SYN_RST;
    pub const NAMES: [(u8, &str); 7] = [
        (NULL, "NULL"),
        (FIN, "FIN"),
        (XMAS, "XMAS"),
        (SYN_FIN, "SYN+FIN"),
        (SYN_RST, "SYN+RST"),
        (ACK, "ACK"),
        (FIN_ACK, "FIN+ACK"),
    ];
}

/// Which score banned: the short-horizon one of the source, its long-horizon one (a slow scan),
/// or the aggregate of its prefix (a scan spread over many addresses).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tier {
    #[default]
    Burst,
    Slow,
    Prefix,
}

/// Ports shown in the evidence (all distinct ports count; these are the first few).
pub const SHOWN_PORTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    /// Score when the ban was decided.
    pub score: u32,
    /// Distinct (protocol, port) pairs probed while tracked.
    pub distinct_ports: u32,
    /// Probes counted from this source while tracked.
    pub probes: u32,
    pub ports: [(Proto, u16); SHOWN_PORTS],
    pub shown: u8,
    /// `stealth::*` bits seen.
    pub stealth: u8,
    pub ban_ms: u64,
    /// 1 for a first ban, n for the n-th within the offender memory.
    pub offence: u32,
    /// When the source's first counted probe came and when the ban was decided (the
    /// detector's clock, milliseconds).
    pub first_ms: u64,
    pub last_ms: u64,
    /// Why an IPv6 key is one address rather than the configured prefix.
    pub narrowed: Narrowed,
    pub tier: Tier,
}

impl Evidence {
    pub fn ports(&self) -> &[(Proto, u16)] {
        &self.ports[..usize::from(self.shown)]
    }

    /// The evidence in at most `max` bytes (set-element comments hold 127): cut at a word.
    pub fn summary(&self, max: usize) -> String {
        let full = self.to_string();
        if full.len() <= max {
            return full;
        }
        let mut cut = max.saturating_sub(3);
        while !full.is_char_boundary(cut) {
            cut -= 1;
        }
        let cut = full[..cut].rfind(' ').unwrap_or(cut);
        format!("{}...", &full[..cut])
    }
}

/// `score 21 from 9 ports (tcp/21,22,23,25,80,110,143,443 ...) stealth FIN, 1h ban #1`
impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "score {} from {} ports (",
            self.score, self.distinct_ports
        )?;
        let mut last: Option<Proto> = None;
        for (i, (proto, port)) in self.ports().iter().enumerate() {
            if last != Some(*proto) {
                if i > 0 {
                    f.write_char(' ')?;
                }
                write!(f, "{}/{port}", proto.name())?;
                last = Some(*proto);
            } else {
                write!(f, ",{port}")?;
            }
        }
        if self.distinct_ports as usize > self.ports().len() {
            f.write_str(" ...")?;
        }
        f.write_char(')')?;
        for (label, bits) in [
            (" stealth", self.stealth & stealth::STEALTH),
            (" ACK probes", self.stealth & !stealth::STEALTH),
        ] {
            if bits == 0 {
                continue;
            }
            f.write_str(label)?;
            let mut sep = ' ';
            for (bit, name) in stealth::NAMES {
                if bits & bit != 0 {
                    write!(f, "{sep}{name}")?;
                    sep = ',';
                }
            }
        }
        match self.narrowed {
            Narrowed::No => {}
            Narrowed::OnLink => f.write_str(", per address: on-link neighbour")?,
            Narrowed::CoversProtected => {
                f.write_str(", per address: its prefix holds a protected address")?
            }
        }
        match self.tier {
            Tier::Burst => {}
            Tier::Slow => f.write_str(", slow scan")?,
            Tier::Prefix => f.write_str(", scan spread over the prefix")?,
        }
        write!(f, ", {} ban #{}", human_ms(self.ban_ms), self.offence)
    }
}

/// `1h`, `2h30m`, `45s`: the units admins read.
pub fn human_ms(ms: u64) -> String {
    let mut s = ms / 1000;
    if s == 0 {
        return format!("{ms}ms");
    }
    let mut out = String::new();
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= secs {
            let _ = write!(out, "{}{unit}", s / secs);
            s %= secs;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ports: &[(Proto, u16)], distinct: u32) -> Evidence {
        let mut e = Evidence {
            score: 21,
            distinct_ports: distinct,
            probes: distinct,
            ports: [(Proto::Tcp, 0); SHOWN_PORTS],
            shown: ports.len() as u8,
            stealth: stealth::FIN | stealth::XMAS,
            ban_ms: 3_600_000,
            offence: 1,
            first_ms: 0,
            last_ms: 0,
            narrowed: Narrowed::No,
            tier: Tier::Burst,
        };
        e.ports[..ports.len()].copy_from_slice(ports);
        e
    }

    #[test]
    fn reads_like_a_log_line_and_fits_a_comment() {
        let e = sample(
            &[
                (Proto::Tcp, 22),
                (Proto::Tcp, 80),
                (Proto::Udp, 53),
                (Proto::Udp, 161),
            ],
            12,
        );
        assert_eq!(
            e.to_string(),
            "score 21 from 12 ports (tcp/22,80 udp/53,161 ...) stealth FIN,XMAS, 1h ban #1"
        );
        let acks = Evidence {
            stealth: stealth::ACK | stealth::FIN_ACK,
            ports: [
                (Proto::Sctp, 80),
                (Proto::Ip, 47),
                (Proto::Tcp, 0),
                (Proto::Tcp, 0),
                (Proto::Tcp, 0),
                (Proto::Tcp, 0),
                (Proto::Tcp, 0),
                (Proto::Tcp, 0),
            ],
            shown: 2,
            distinct_ports: 2,
            ..e
        };
        assert_eq!(
            acks.to_string(),
            "score 21 from 2 ports (sctp/80 ip/47) ACK probes ACK,FIN+ACK, 1h ban #1"
        );
        let narrowed = Evidence {
            narrowed: Narrowed::CoversProtected,
            ..e
        };
        assert!(
            narrowed
                .to_string()
                .contains("per address: its prefix holds a protected address"),
            "{narrowed}"
        );
        let slow = Evidence {
            tier: Tier::Slow,
            ..e
        };
        assert!(
            slow.to_string().ends_with(", slow scan, 1h ban #1"),
            "{slow}"
        );
        assert!(e.summary(40).len() <= 40);
        assert!(e.summary(40).ends_with("..."));
        assert_eq!(human_ms(9_000_000), "2h30m");
        assert_eq!(human_ms(500), "500ms");
    }
}
