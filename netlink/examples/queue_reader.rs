//! A queue reader that prints one line per packet, like libnetfilter_queue's `nfqnl_test`.
//!
//! ```sh
//! # in a namespace whose ruleset sends something to queue 0, e.g.
//! #   iptables-nft -A INPUT -p tcp --syn -j NFQUEUE --queue-num 0
//! ip netns exec NS cargo run --release -p nfnl --example queue_reader -- --queue 0
//! ```
//!
//! Options: `--queue N`, `--drop` (default accept), `--quiet` (no per-packet lines, a summary at
//! the end), `--count N` (stop after N packets), `--idle SECS` (stop after SECS without packets,
//! default 10), `--per-packet` (one VERDICT per packet instead of batch verdicts),
//! `--copy-range BYTES`, `--max-len N`, `--start-after SECS` (bind, then wait before reading, so
//! the kernel queues a backlog: the drain benchmark), `--timestamps` (set `SO_TIMESTAMPNS` on the
//! queue socket, which makes the kernel stamp received packets: `NFQA_TIMESTAMP`, shown as
//! `ts=`). The summary reports packets, how many carried a kernel timestamp, seconds from the
//! first to the last packet, packets/s and the kernel's drop counters.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use nfnl::queue::{
    encode_verdict, stats, PacketView, QueueConfig, QueueSocket, Verdict, VerdictBatcher,
};

struct Options {
    queue: u16,
    verdict: Verdict,
    quiet: bool,
    count: u64,
    idle: Duration,
    per_packet: bool,
    copy_range: u32,
    max_len: u32,
    start_after: Duration,
    timestamps: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        queue: 0,
        verdict: Verdict::Accept,
        quiet: false,
        count: u64::MAX,
        idle: Duration::from_secs(10),
        per_packet: false,
        copy_range: nfnl::queue::DEFAULT_COPY_RANGE,
        max_len: nfnl::queue::DEFAULT_MAX_LEN,
        start_after: Duration::ZERO,
        timestamps: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or(format!("{name} needs a value"))
                .and_then(|v| v.parse::<u64>().map_err(|e| format!("{name}: {e}")))
        };
        match a.as_str() {
            "--queue" => o.queue = u16::try_from(value("--queue")?).map_err(|e| e.to_string())?,
            "--drop" => o.verdict = Verdict::Drop,
            "--quiet" => o.quiet = true,
            "--count" => o.count = value("--count")?,
            "--idle" => o.idle = Duration::from_secs(value("--idle")?),
            "--per-packet" => o.per_packet = true,
            "--copy-range" => {
                o.copy_range = u32::try_from(value("--copy-range")?).map_err(|e| e.to_string())?
            }
            "--max-len" => {
                o.max_len = u32::try_from(value("--max-len")?).map_err(|e| e.to_string())?
            }
            "--start-after" => o.start_after = Duration::from_secs(value("--start-after")?),
            "--timestamps" => o.timestamps = true,
            "-h" | "--help" => {
                return Err(
                    "usage: queue_reader [--queue N] [--drop] [--quiet] [--count N] \
                            [--idle SECS] [--per-packet] [--copy-range BYTES] [--max-len N] \
                            [--start-after SECS] [--timestamps]"
                        .into(),
                )
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut config = QueueConfig::new(o.queue);
    config.copy_range = o.copy_range;
    config.max_len = o.max_len;
    let mut q = match QueueSocket::bind(&config) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("queue_reader: {e}");
            std::process::exit(1);
        }
    };
    if o.timestamps {
        if let Err(e) = q.socket().enable_receive_timestamps() {
            eprintln!("queue_reader: SO_TIMESTAMPNS: {e}");
            std::process::exit(1);
        }
    }
    eprintln!(
        "queue_reader: bound queue {} (netlink port {}), verdict {:?}",
        o.queue,
        q.portid(),
        o.verdict
    );

    std::thread::sleep(o.start_after);
    let mut batcher = VerdictBatcher::new(o.queue);
    let mut single = Vec::with_capacity(64);
    let mut packets = 0u64;
    let mut stamped = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut line = String::with_capacity(160);
    while packets < o.count {
        match q.wait(Duration::from_millis(100)) {
            Ok(true) => {}
            Ok(false) => {
                if last.elapsed() >= o.idle {
                    break;
                }
                continue;
            }
            Err(e) => {
                eprintln!("queue_reader: {e}");
                break;
            }
        }
        if let Err(e) = q.recv() {
            eprintln!("queue_reader: {e}");
            break;
        }
        for p in q.packets() {
            let p = match p {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("queue_reader: malformed message: {e}");
                    continue;
                }
            };
            packets += 1;
            stamped += u64::from(p.timestamp.is_some());
            if !o.quiet {
                line.clear();
                describe(&p, &mut line);
                println!("{line}");
            }
            if o.per_packet {
                single.clear();
                if encode_verdict(&mut single, o.queue, 0, p.id, o.verdict, None).is_ok() {
                    let _ = q.socket().send(&single);
                }
            } else {
                batcher.push(p.id, o.verdict);
            }
        }
        if let Err(e) = q.send_verdicts(&mut batcher) {
            eprintln!("queue_reader: verdict: {e}");
        }
        last = Instant::now();
        first.get_or_insert(last);
    }
    let span = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let kernel = stats::read()
        .ok()
        .and_then(|all| all.into_iter().find(|s| s.queue == o.queue));
    eprintln!(
        "queue_reader: {packets} packets in {span:.3} s ({:.0} packets/s, {stamped} with a kernel \
         timestamp); kernel: {} dropped \
         (queue full), {} dropped (socket full); {} refused verdicts",
        if span > 0.0 {
            packets as f64 / span
        } else {
            0.0
        },
        kernel.map_or(0, |k| k.queue_dropped),
        kernel.map_or(0, |k| k.user_dropped),
        q.errors(),
    );
    if let Err(e) = q.shutdown(o.verdict) {
        eprintln!("queue_reader: shutdown: {e}");
    }
}

/// `id=5 hook=1 in=2 len=60 tcp 192.0.2.2:53124 -> 192.0.2.1:7000 [S]`
fn describe(p: &PacketView<'_>, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "id={} hook={} in={} len={}",
        p.id,
        p.hook,
        p.in_ifindex.unwrap_or(0),
        p.original_len()
    );
    if let Some(m) = p.mark {
        let _ = write!(out, " mark={m:#x}");
    }
    if let Some((sec, usec)) = p.timestamp {
        let _ = write!(out, " ts={sec}.{usec:06}");
    }
    let b = p.payload;
    let (proto, l4, src, dst): (u8, &[u8], String, String) = match b.first().map(|v| v >> 4) {
        Some(4) if b.len() >= 20 => {
            let ihl = usize::from(b[0] & 0x0f) * 4;
            (
                b[9],
                b.get(ihl..).unwrap_or(&[]),
                Ipv4Addr::new(b[12], b[13], b[14], b[15]).to_string(),
                Ipv4Addr::new(b[16], b[17], b[18], b[19]).to_string(),
            )
        }
        Some(6) if b.len() >= 40 => {
            let addr = |at: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[at..at + 16]);
                format!("[{}]", Ipv6Addr::from(a))
            };
            // Extension headers are not followed here: this is a debugging aid.
            (b[6], &b[40..], addr(8), addr(24))
        }
        _ => {
            let _ = write!(out, " (not IP)");
            return;
        }
    };
    let ports = |l4: &[u8]| -> Option<(u16, u16)> {
        Some((
            u16::from_be_bytes([*l4.first()?, *l4.get(1)?]),
            u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]),
        ))
    };
    match (proto, ports(l4)) {
        (6, Some((sp, dp))) => {
            let flags = l4.get(13).copied().unwrap_or(0);
            let mut f = String::new();
            for (bit, c) in [
                (0x02, 'S'),
                (0x10, '.'),
                (0x01, 'F'),
                (0x04, 'R'),
                (0x08, 'P'),
                (0x20, 'U'),
            ] {
                if flags & bit != 0 {
                    f.push(c);
                }
            }
            let _ = write!(out, " tcp {src}:{sp} -> {dst}:{dp} [{f}]");
        }
        (17, Some((sp, dp))) => {
            let _ = write!(out, " udp {src}:{sp} -> {dst}:{dp}");
        }
        _ => {
            let _ = write!(out, " proto {proto} {src} -> {dst}");
        }
    }
}
