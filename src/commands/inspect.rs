//! `ruleset`, `replay` and `doctor`: commands that look and change nothing.

use std::path::Path;

use detector::replay::HostSource;
use nfnl::NlSocket;

use crate::settings::{Mode, Settings};
use crate::{daemon, ruleset, tail};

use super::{socket, Error};

/// What `run` would install, in nft syntax, for this kernel and these settings.
pub fn ruleset_text(s: &Settings) -> Result<String, Error> {
    let mut sock = socket()?;
    let f = nft::probe::probe(&mut sock).map_err(Error::kernel("probing nf_tables"))?;
    let parts = ruleset::Parts::for_run(s);
    let managed = s.mode == Mode::Managed;
    let mut out = format!(
        "# scanban {} ruleset ({}{}){}\n",
        env!("CARGO_PKG_VERSION"),
        match s.mode {
            Mode::Managed => "managed mode",
            Mode::Tail => "tail mode: no sensor",
            Mode::Bouncer => "bouncer mode: no queue, no sensor",
        },
        if parts.bans { "" } else { ", dry run: no bans" },
        match (f.native_queue, managed) {
            (true, _) => "",
            (false, true) => "; queue rules use the xt NFQUEUE target through nft_compat",
            (false, false) if s.mode == Mode::Tail =>
                "; this kernel has no nft queue expression: use the iptables-nft form",
            (false, false) => "",
        }
    );
    if managed {
        out.push_str(&format!("# {}\n", crate::protect::sensed(s.protect).why));
    } else if s.mode == Mode::Tail {
        out.push_str(&tail::ruleset_comment(s));
    }
    out.push_str(&ruleset::build(s, &f, parts).to_nft());
    Ok(out)
}

pub fn replay(s: &Settings, path: &Path, hosts: &[std::net::IpAddr]) -> Result<(), Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::File {
        path: path.to_path_buf(),
        source,
    })?;
    // One shard: the whole capacity and ban budget.
    let config = daemon::detector_config(s, 1);
    let r = detector::replay::run(&bytes, &config, hosts).map_err(|source| Error::Capture {
        path: path.to_path_buf(),
        source,
    })?;
    let hosts: Vec<String> = r.local.iter().map(|a| a.to_string()).collect();
    println!(
        "{} frames, {} would be queued (this host: {}; {} open ports seen)",
        r.frames,
        r.queued,
        if hosts.is_empty() {
            "none found".into()
        } else {
            hosts.join(", ")
        },
        r.open_ports
    );
    println!("{}", host_assumption(r.host_source));
    for b in &r.bans {
        println!(
            "would ban {} after {} probes: {}",
            b.key, b.after_probes, b.evidence
        );
    }
    for (k, n) in &r.unbanned {
        println!("not banned: {k} ({n} probes)");
    }
    Ok(())
}

/// The line that says how replay knew which addresses are this host.
fn host_assumption(h: HostSource) -> &'static str {
    match h {
        HostSource::Given => "this host: as given by --host",
        HostSource::Answers => "this host: inferred from the addresses that answered probes",
        HostSource::InboundProbes => {
            "this host: inferred from where the probes went (nothing in the capture answers: \
             inbound traffic only?); no port is known to be open, so every probe counts; \
             give --host ADDR to say otherwise"
        }
        HostSource::NoneFound => {
            "this host: none found (no answers, no probe target); give --host ADDR"
        }
    }
}

/// Checks what `run` needs, one line per check; long because it is that list of checks.
pub fn doctor(s: &Settings) -> Result<(), Error> {
    let mut ok = true;
    let mut line = |good: bool, what: &str, advice: &str| {
        println!(
            "[{}] {what}{}",
            if good { " ok " } else { "FAIL" },
            if good || advice.is_empty() {
                String::new()
            } else {
                format!(": {advice}")
            }
        );
        ok &= good;
    };
    let root = nix::unistd::geteuid().is_root();
    line(
        root,
        "running as root (CAP_NET_ADMIN)",
        "run as root, or grant CAP_NET_ADMIN",
    );
    let mut sock = match NlSocket::open() {
        Ok(s) => s,
        Err(e) => {
            line(false, "netlink socket", &e.to_string());
            return Err(Error::DoctorFoundProblems);
        }
    };
    match nft::probe::probe(&mut sock) {
        Ok(f) => {
            line(true, "nf_tables with sets and timeouts", "");
            line(
                f.native_queue || f.compat_queue,
                &format!(
                    "queueing: {}",
                    if f.native_queue { "native nft queue" } else if f.compat_queue { "xt NFQUEUE through nft_compat (no native queue)" } else { "none" }
                ),
                "install kmod-nft-queue (OpenWrt) or enable CONFIG_NFT_QUEUE, or nft_compat + xt_NFQUEUE",
            );
            line(f.socket, "nft socket expression (open ports are never probes)", "install kmod-nft-socket (OpenWrt) or enable CONFIG_NFT_SOCKET; else use --mode tail");
            line(
                true,
                &format!(
                    "delete-if-absent (DESTROY): {}",
                    if f.destroy { "yes" } else { "no, emulated" }
                ),
                "",
            );
            line(
                true,
                &format!(
                    "element timeout refresh: {}",
                    if f.timeout_refresh {
                        "yes"
                    } else {
                        "no (kernel < 6.12), delete + add"
                    }
                ),
                "",
            );
        }
        Err(e) => line(false, "nf_tables", &format!("{e}: is nf_tables available?")),
    }
    let queues = nfnl::queue::stats::read().unwrap_or_default();
    for n in s.queue.first..=s.queue.last {
        match queues.iter().find(|q| q.queue == n) {
            Some(q) => line(
                false,
                &format!("queue {n} is free"),
                &format!(
                    "bound by netlink port {} (another scanban, or an IPS)",
                    q.portid
                ),
            ),
            None => line(true, &format!("queue {n} is free"), ""),
        }
    }
    if ok {
        Ok(())
    } else {
        Err(Error::DoctorFoundProblems)
    }
}
