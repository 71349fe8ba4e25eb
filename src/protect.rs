//! Router mode: which traffic the sensor watches (`protect`). `auto` is `both` where the host
//! forwards IPv4 or IPv6, else `input`; whether it forwards is read from /proc at start and at
//! reload (`refresh`), never per packet nor per watchdog round, so the ruleset the watchdog
//! compares against stays the one installed.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::settings::Protect;

const IPV4_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const IPV6_FORWARD: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

/// What the sensor watches, and why (for `scanban ruleset` and the start line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensed {
    /// Probes of this host (chain `sensor`, hook input).
    pub input: bool,
    /// Answers of the hosts this host routes to (chains `forward_sensor` and `output_sensor`).
    pub forward: bool,
    pub why: String,
}

/// Which forwarding switches are on: bit 0 IPv4, bit 1 IPv6; `UNKNOWN` until first read.
const UNKNOWN: u8 = 0xff;
static FORWARDING: AtomicU8 = AtomicU8::new(UNKNOWN);

fn on(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.trim() == "1")
}

/// Reads the forwarding switches again (at start and at reload).
pub fn refresh() {
    let bits = u8::from(on(IPV4_FORWARD)) | (u8::from(on(IPV6_FORWARD)) << 1);
    FORWARDING.store(bits, Ordering::Relaxed);
}

fn forwarding() -> u8 {
    if FORWARDING.load(Ordering::Relaxed) == UNKNOWN {
        refresh();
    }
    FORWARDING.load(Ordering::Relaxed)
}

/// What `protect` means on this host now.
pub fn sensed(protect: Protect) -> Sensed {
    resolve(protect, forwarding())
}

fn resolve(protect: Protect, forwarding: u8) -> Sensed {
    let set = |input, forward, why: &str| Sensed {
        input,
        forward,
        why: why.to_string(),
    };
    match protect {
        Protect::Input => set(true, false, "protect input"),
        Protect::Forward => set(false, true, "protect forward"),
        Protect::Both => set(true, true, "protect both"),
        Protect::Auto => {
            let names: Vec<&str> = [
                (1, "net.ipv4.ip_forward"),
                (2, "net.ipv6.conf.all.forwarding"),
            ]
            .iter()
            .filter(|(bit, _)| forwarding & bit != 0)
            .map(|(_, n)| *n)
            .collect();
            if names.is_empty() {
                set(
                    true,
                    false,
                    "protect auto: input (this host does not forward)",
                )
            } else {
                set(
                    true,
                    true,
                    &format!(
                        "protect auto: both (this host forwards: {} = 1)",
                        names.join(", ")
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_both_where_the_host_forwards_either_family() {
        let plain = resolve(Protect::Auto, 0);
        assert_eq!((plain.input, plain.forward), (true, false));
        assert!(plain.why.contains("does not forward"), "{}", plain.why);
        for bits in [1, 2, 3] {
            let r = resolve(Protect::Auto, bits);
            assert_eq!((r.input, r.forward), (true, true), "{bits}");
        }
        assert!(resolve(Protect::Auto, 2)
            .why
            .contains("net.ipv6.conf.all.forwarding = 1"));
        let fwd = resolve(Protect::Forward, 0);
        assert_eq!((fwd.input, fwd.forward), (false, true));
        let input = resolve(Protect::Input, 3);
        assert_eq!((input.input, input.forward), (true, false));
    }
}
