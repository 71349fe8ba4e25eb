//! Records the nfqueue fixtures in `fixtures/nfqueue/` from the running kernel.
//!
//! ```sh
//! sudo cargo run -p nfnl --example capture_fixtures -- fixtures/nfqueue
//! ```
//!
//! Everything happens in a throwaway pair of network namespaces (`testbed`): an
//! `iptables-nft -j NFQUEUE` rule in the server namespace, traffic from the attacker namespace,
//! and raw datagrams saved exactly as `recv` returned them:
//! - `config-ack.bin`: the kernel's ACK to our one-message BIND+PARAMS+MAXLEN+FLAGS config;
//! - `bind-eperm.bin`: the error a second socket gets binding the same queue;
//! - `packet-v4-tcp-syn.bin`, `packet-v4-udp.bin`, `packet-v6-tcp-syn.bin`: queued packets;
//! - `packet-v4-udp-truncated.bin`: a 1000-byte datagram cut to the 128-byte copy range.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nfnl::ack::{Ack, AckTracker, Expect};
use nfnl::message::Messages;
use nfnl::queue::{QueueConfig, Verdict};
use nfnl::NlSocket;
use testbed::{Testbed, SERVER_V4, SERVER_V6};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fixtures/nfqueue".into())
        .into();
    std::fs::create_dir_all(&out)?;
    let tb = Testbed::new("capture").ok_or("cannot build namespaces (root needed)")?;
    tb.sh(
        &tb.server,
        "iptables-nft -A INPUT -p tcp --dport 7000 -j NFQUEUE --queue-num 0 && \
         iptables-nft -A INPUT -p udp --dport 7001 -j NFQUEUE --queue-num 0 && \
         ip6tables-nft -A INPUT -p tcp --dport 7002 -j NFQUEUE --queue-num 0",
    )?;

    let (sock, second) = tb.in_server(|| (NlSocket::open(), NlSocket::open()));
    let (mut sock, mut second) = (sock?, second?);

    // 1. Our config message and the ACK it earns.
    let seq = sock.next_seq();
    let mut req = Vec::new();
    QueueConfig::new(0).encode_bind(&mut req, seq)?;
    sock.send(&req)?;
    let ack = recv_one(&sock)?;
    save(&out, "config-ack.bin", &ack)?;

    // 2. A second binder: EPERM.
    let seq2 = second.next_seq();
    let mut req2 = Vec::new();
    QueueConfig::new(0).encode_bind(&mut req2, seq2)?;
    second.send(&req2)?;
    let err = recv_one(&second)?;
    save(&out, "bind-eperm.bin", &err)?;
    check_error(&err)?;
    drop(second);

    // 3. Packets: each probe is released with accept right after it is recorded.
    let probes: [(&str, String); 4] = [
        (
            "packet-v4-tcp-syn.bin",
            format!("timeout 2 bash -c 'echo > /dev/tcp/{SERVER_V4}/7000' 2>/dev/null; true"),
        ),
        (
            "packet-v4-udp.bin",
            format!("echo -n scanban > /dev/udp/{SERVER_V4}/7001"),
        ),
        (
            "packet-v4-udp-truncated.bin",
            format!("head -c 1000 /dev/zero > /dev/udp/{SERVER_V4}/7001"),
        ),
        (
            "packet-v6-tcp-syn.bin",
            format!("timeout 2 bash -c 'echo > /dev/tcp/{SERVER_V6}/7002' 2>/dev/null; true"),
        ),
    ];
    for (name, script) in probes {
        let atk = tb.attacker.clone();
        let script_bg = script.clone();
        let child = std::thread::spawn(move || {
            std::process::Command::new("ip")
                .args(["netns", "exec", &atk, "bash", "-c", &script_bg])
                .output()
        });
        let pkt = recv_one(&sock)?;
        save(&out, name, &pkt)?;
        // Release it (and any retransmission) so the sender finishes.
        let id = packet_id(&pkt).ok_or("no packet id")?;
        let mut v = Vec::new();
        nfnl::queue::encode_verdict_batch(&mut v, 0, 0, id, Verdict::Accept, None)?;
        sock.send(&v)?;
        let _ = child.join();
        drain_accept(&sock)?;
    }
    let _ = &mut sock;
    eprintln!("fixtures written to {}", out.display());
    Ok(())
}

fn recv_one(sock: &NlSocket) -> std::io::Result<Vec<u8>> {
    if !sock.wait_readable(Duration::from_secs(5))? {
        return Err(std::io::Error::other("nothing received within 5 s"));
    }
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Accepts whatever else is queued (TCP retransmissions) before the next probe.
fn drain_accept(sock: &NlSocket) -> std::io::Result<()> {
    while sock.wait_readable(Duration::from_millis(200))? {
        let d = recv_one(sock)?;
        if let Some(id) = packet_id(&d) {
            let mut v = Vec::new();
            nfnl::queue::encode_verdict(&mut v, 0, 0, id, Verdict::Accept, None)
                .map_err(std::io::Error::other)?;
            sock.send(&v)?;
        }
    }
    Ok(())
}

fn packet_id(datagram: &[u8]) -> Option<u32> {
    let msg = Messages::new(datagram).next()?.ok()?;
    nfnl::queue::PacketView::parse(&msg).ok().map(|p| p.id)
}

fn check_error(datagram: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    let msg = Messages::new(datagram).next().ok_or("empty")??;
    let ack = Ack::parse(&msg)?.ok_or("not an error message")?;
    let mut t = AckTracker::new();
    t.expect(ack.seq, "bind queue 0", Expect::Ack);
    t.on_ack(&ack);
    eprintln!("second binder: {:?}", t.result());
    Ok(())
}

fn save(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(dir.join(name), bytes)?;
    eprintln!("{name}: {} bytes", bytes.len());
    Ok(())
}
