//! scanban: detects port scanners through NFQUEUE and bans them in an nf_tables set.

#![forbid(unsafe_code)]

mod atomic_file;
mod ban_book;
mod bans;
mod cli;
mod daemon;
mod duration;
mod hostinfo;
mod latency;
mod privilege;
mod ruleset;
mod sessions;
mod settings;
mod signals;
mod state;
mod stats;
mod status;
mod tail;

use std::process::ExitCode;
use std::time::Duration;

use cli::Command;
use detector::SourceKey;
use log::LevelFilter;
use nfnl::NlSocket;
use settings::Settings;

/// Invalid command line or configuration: nothing was changed in the kernel.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let inv = match cli::parse(std::env::args_os().skip(1)) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("scanban: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match inv.command {
        Command::Help => {
            print!("{}", cli::help());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("scanban {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let settings = match inv.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scanban: invalid configuration: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging(settings.verbose);
    let result = match inv.command {
        Command::Run => daemon::run(settings, &|| inv.settings()),
        Command::Ruleset => ruleset_text(&settings).map(|t| print!("{t}")),
        Command::List { json } => list(&settings, json),
        Command::Ban { target, duration } => ban(&settings, target, duration),
        Command::Unban { target } => unban(&settings, target),
        Command::Status { json } => {
            return if status::show(&settings.stats_file, json) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Command::Replay { pcap } => replay(&settings, &pcap),
        Command::Doctor => doctor(&settings),
        Command::Help | Command::Version => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scanban: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: bool) {
    let level = if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    let config = simplelog::ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    let _ = simplelog::WriteLogger::init(level, config, std::io::stderr());
}

fn socket() -> Result<NlSocket, String> {
    NlSocket::open().map_err(|e| format!("netlink socket: {e} (scanban needs CAP_NET_ADMIN)"))
}

/// What `run` would install, in nft syntax, for this kernel and these settings.
fn ruleset_text(s: &Settings) -> Result<String, String> {
    let mut sock = socket()?;
    let f = nft::probe::probe(&mut sock).map_err(|e| format!("probing nf_tables: {e}"))?;
    let parts = ruleset::Parts::for_run(s);
    let mut out = format!(
        "# scanban {} ruleset ({}{}){}\n",
        env!("CARGO_PKG_VERSION"),
        if parts.sensor {
            "managed mode"
        } else {
            "tail mode: no sensor"
        },
        if parts.bans { "" } else { ", dry run: no bans" },
        match (f.native_queue, parts.sensor) {
            (true, _) => "",
            (false, true) => "; queue rules use the xt NFQUEUE target through nft_compat",
            (false, false) =>
                "; this kernel has no nft queue expression: use the iptables-nft form",
        }
    );
    if !parts.sensor {
        out.push_str(&tail::ruleset_comment(s));
    }
    out.push_str(&ruleset::build(s, &f, parts).to_nft());
    Ok(out)
}

fn key_of(s: &Settings, target: settings::Cidr) -> Result<SourceKey, String> {
    let full = if target.addr.is_ipv4() { 32 } else { 128 };
    if target.addr.is_ipv4() && target.len != 32 {
        return Err("IPv4 bans are per address (no prefix)".into());
    }
    if target.addr.is_ipv6() && target.len != full && target.len != s.ipv6_prefix {
        return Err(format!(
            "IPv6 bans are per /{} (ipv6-prefix); give an address or a /{} prefix",
            s.ipv6_prefix, s.ipv6_prefix
        ));
    }
    Ok(SourceKey::new(target.addr, s.ipv6_prefix))
}

/// The addresses of a ban list: one `ADDR[/LEN]` per line, `#` starts a comment. Every line is
/// checked before anything is written; the first bad one is the error, with its line number.
fn read_ban_list(s: &Settings, path: &std::path::Path) -> Result<Vec<SourceKey>, String> {
    let text = if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
            .map_err(|e| format!("stdin: {e}"))?;
        t
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
    };
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let cidr: settings::Cidr = line
            .parse()
            .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        keys.push(key_of(s, cidr).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?);
    }
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(*k));
    Ok(keys)
}

fn ban(s: &Settings, target: cli::BanTarget, duration: Option<Duration>) -> Result<(), String> {
    let keys = match &target {
        cli::BanTarget::One(c) => vec![key_of(s, *c)?],
        cli::BanTarget::File(p) => read_ban_list(s, p)?,
    };
    let d = duration.unwrap_or(s.ban_time);
    let mut sock = socket()?;
    // The sets and the drop rules must exist even if the daemon never ran; a running daemon's
    // table is left as it is.
    let drops = nft::dump::list_rules(
        &mut sock,
        nft::Family::Inet,
        ruleset::TABLE,
        Some("prerouting"),
    )
    .map(|r| r.len())
    .unwrap_or(0);
    let f = nft::probe::probe(&mut sock).map_err(|e| e.to_string())?;
    if drops == 0 {
        let mut b = nft::Batch::new();
        let parts = ruleset::Parts {
            bans: true,
            sensor: false,
        };
        ruleset::build(s, &f, parts).install(&mut b);
        b.send(&mut sock).map_err(|e| e.to_string())?;
    }
    let comment = format!("banned by hand for {}", duration::Human(d));
    let all: Vec<bans::Ban> = keys
        .iter()
        .map(|key| bans::Ban {
            key: *key,
            duration_ms: d.as_millis() as u64,
            comment: comment.clone(),
        })
        .collect();
    // Before 6.12 a re-ban must delete the element first, or it keeps its old timeout. An
    // element that expires between the listing and the write makes the delete fail: list again.
    let mut written = Ok(());
    for _ in 0..3 {
        let present: Vec<SourceKey> = if f.timeout_refresh {
            Vec::new()
        } else {
            let wanted: std::collections::HashSet<SourceKey> = keys.iter().copied().collect();
            bans::list(&mut sock, s.ipv6_prefix)
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.key)
                .filter(|k| wanted.contains(k))
                .collect()
        };
        written = bans::add_replacing(&mut sock, &all, &present);
        match &written {
            Err(nfnl::Error::Request(r)) if r.errno == nix::errno::Errno::ENOENT as i32 => {}
            _ => break,
        }
    }
    written.map_err(|e| bans::describe(&e, s.set_size))?;
    match (&target, keys.as_slice()) {
        (cli::BanTarget::One(_), [key]) => println!("banned {key} for {}", duration::Human(d)),
        _ => println!(
            "banned {} address(es) for {}",
            keys.len(),
            duration::Human(d)
        ),
    }
    Ok(())
}

/// Lifts a ban in the kernel and in the state file (else a daemon started later would restore
/// it). An IPv6 address is looked for as itself (a narrowed ban) and as its prefix.
fn unban(s: &Settings, target: Option<settings::Cidr>) -> Result<(), String> {
    let Some(target) = target else {
        return unban_all(s);
    };
    let key = key_of(s, target)?;
    let mut keys = vec![key];
    if let (std::net::IpAddr::V6(a), 128) = (target.addr, target.len) {
        if s.ipv6_prefix < 128 {
            keys.insert(0, SourceKey::V6(a, 128));
        }
    }
    let mut sock = socket()?;
    let mut lifted = Vec::new();
    for k in &keys {
        if bans::remove(&mut sock, k).map_err(|e| e.to_string())? {
            lifted.push(*k);
        }
    }
    if let Some(path) = &s.state_file {
        for k in &keys {
            match state::remove(path, k, s.ipv6_prefix) {
                Ok(true) if !lifted.contains(k) => lifted.push(*k),
                Ok(_) => {}
                Err(e) => return Err(format!("state file {}: {e}", path.display())),
            }
        }
    }
    if lifted.is_empty() {
        return Err(format!("{key} is not banned"));
    }
    for k in lifted {
        println!("unbanned {k}");
    }
    Ok(())
}

/// `unban --all`: every ban lifted, in the kernel and in the state file.
fn unban_all(s: &Settings) -> Result<(), String> {
    let mut sock = socket()?;
    let n = bans::remove_all(&mut sock).map_err(|e| match e {
        nfnl::Error::Request(r) if r.errno == nix::errno::Errno::ENOENT as i32 => {
            "no bans: table inet scanban does not exist".to_string()
        }
        e => e.to_string(),
    })?;
    if let Some(path) = s.state_file.as_ref().filter(|p| p.exists()) {
        state::save(path, &[]).map_err(|e| format!("state file {}: {e}", path.display()))?;
    }
    println!("unbanned all {n} ban(s)");
    Ok(())
}

fn list(s: &Settings, json: bool) -> Result<(), String> {
    let mut sock = socket()?;
    let all = bans::list(&mut sock, s.ipv6_prefix).map_err(|e| match e {
        nfnl::Error::Request(r) if r.errno == nix::errno::Errno::ENOENT as i32 => {
            "no bans: table inet scanban does not exist".to_string()
        }
        e => e.to_string(),
    })?;
    if json {
        let items: Vec<String> = all
            .iter()
            .map(|b| {
                format!(
                    "{{\"source\": \"{}\", \"expires_s\": {}, \"timeout_s\": {}, \"reason\": \"{}\"}}",
                    b.key,
                    b.expires_ms.unwrap_or(0) / 1000,
                    b.timeout_ms.unwrap_or(0) / 1000,
                    b.comment.as_deref().unwrap_or("").replace('\\', "\\\\").replace('"', "'")
                )
            })
            .collect();
        println!("[{}]", items.join(", "));
        return Ok(());
    }
    let width = all
        .iter()
        .map(|b| b.key.to_string().len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:<width$}  {:>10}  {:>10}  REASON",
        "SOURCE", "EXPIRES IN", "BANNED FOR"
    );
    for b in &all {
        let h = |ms: Option<u64>| {
            ms.map_or("-".into(), |v| {
                duration::Human(Duration::from_secs(v / 1000)).to_string()
            })
        };
        println!(
            "{:<width$}  {:>10}  {:>10}  {}",
            b.key.to_string(),
            h(b.expires_ms),
            h(b.timeout_ms),
            b.comment.as_deref().unwrap_or("")
        );
    }
    println!("{} ban(s)", all.len());
    Ok(())
}

fn replay(s: &Settings, path: &std::path::Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config = daemon::detector_config(s, 1);
    let config = detector::Config {
        capacity: s.capacity as usize,
        ban_rate: s.ban_rate,
        ban_burst: s.ban_rate * 2,
        ..config
    };
    let r = detector::replay::run(&bytes, &config, &[])
        .map_err(|e| format!("{}: {e}", path.display()))?;
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

fn doctor(s: &Settings) -> Result<(), String> {
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
            return Err("doctor found problems".into());
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
        Err("doctor found problems".into())
    }
}
