//! NFQUEUE against the real kernel, in throwaway namespaces (testbed).
//!
//! The server namespace sends chosen traffic to queue 0 with `iptables-nft -j NFQUEUE` (this
//! kernel has no native nft `queue` expression); the attacker namespace makes the traffic. Each
//! test asserts the outcome the verdict must cause and the kernel's own counters in
//! /proc/net/netfilter/nfnetlink_queue.

use std::net::Ipv4Addr;
use std::process::Output;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nfnl::queue::{stats, QueueConfig, QueueSocket, QueueStats, Verdict, VerdictBatcher};
use nfnl::Error;
use testbed::{wait_for, Testbed, SERVER_V4, SERVER_V6};

/// Installs `rules` (iptables-nft / ip6tables-nft argument lists) in the server namespace.
fn rules(tb: &Testbed, rules: &[&str]) {
    for r in rules {
        tb.sh(&tb.server, r).unwrap();
    }
}

fn bind(tb: &Testbed, config: QueueConfig) -> QueueSocket {
    tb.in_server(|| QueueSocket::bind(&config))
        .expect("bind queue")
}

/// Runs a shell snippet in the attacker namespace on another thread.
fn attacker(tb: &Testbed, script: String) -> JoinHandle<Output> {
    let ns = tb.attacker.clone();
    std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "bash", "-c", &script])
            .output()
            .expect("run attacker command")
    })
}

/// A TCP connect attempt, bounded: prints "refused" (RST came back) or "timeout".
fn tcp_connect(addr: &str, port: u16, secs: u32) -> String {
    format!(
        "timeout {secs} bash -c 'exec 3<>/dev/tcp/{addr}/{port}' 2>/dev/null; \
         case $? in 124) echo timeout;; 0) echo connected;; *) echo refused;; esac"
    )
}

/// The kernel's counters for `queue` in the server namespace, read from its proc file in this
/// process (a thread entering the namespace costs nothing; a shell per look costs a fork and
/// three execs, a quarter of a second on an emulated CPU).
fn queue_stats(tb: &Testbed, queue: u16) -> Option<QueueStats> {
    tb.in_server(stats::read)
        .unwrap()
        .into_iter()
        .find(|s| s.queue == queue)
}

/// Receives packets, answering each with `verdict`, until `done` says stop or no packet came for
/// `idle` (a deadline on progress: a slow machine takes longer, a stuck queue still fails).
/// Returns (id, payload) of everything seen.
fn serve(
    q: &mut QueueSocket,
    verdict: Verdict,
    idle: Duration,
    mut done: impl FnMut(&[(u32, Vec<u8>)]) -> bool,
) -> Vec<(u32, Vec<u8>)> {
    let mut seen = Vec::new();
    let mut batcher = VerdictBatcher::new(q.config().queue);
    let mut deadline = Instant::now() + idle;
    while Instant::now() < deadline && !done(&seen) {
        if !q.wait(Duration::from_millis(50)).unwrap() {
            continue;
        }
        q.recv().unwrap();
        for p in q.packets() {
            let p = p.unwrap();
            batcher.push(p.id, verdict);
            seen.push((p.id, p.payload.to_vec()));
        }
        if q.send_verdicts(&mut batcher).unwrap() > 0 {
            deadline = Instant::now() + idle;
        }
    }
    seen
}

#[test]
fn accept_lets_the_host_refuse_and_drop_makes_the_connection_time_out() {
    let Some(tb) = Testbed::new("qverdict") else {
        return;
    };
    rules(
        &tb,
        &["iptables-nft -A INPUT -p tcp --dport 7100:7101 -j NFQUEUE --queue-num 0"],
    );
    let mut q = bind(&tb, QueueConfig::new(0));

    // Accept: the SYN reaches the closed port and the host answers RST.
    let client = attacker(&tb, tcp_connect(SERVER_V4, 7100, 3));
    let seen = serve(&mut q, Verdict::Accept, Duration::from_secs(5), |_| {
        client.is_finished()
    });
    let out = String::from_utf8(client.join().unwrap().stdout).unwrap();
    assert_eq!(out.trim(), "refused");
    assert!(!seen.is_empty());
    let syn = &seen[0].1;
    assert_eq!(syn[9], 6, "TCP");
    assert_eq!(u16::from_be_bytes([syn[22], syn[23]]), 7100);

    // Drop: the SYN and its retransmissions vanish; the client gives up.
    let client = attacker(&tb, tcp_connect(SERVER_V4, 7101, 2));
    let seen = serve(&mut q, Verdict::Drop, Duration::from_secs(5), |_| {
        client.is_finished()
    });
    let out = String::from_utf8(client.join().unwrap().stdout).unwrap();
    assert_eq!(out.trim(), "timeout");
    assert!(!seen.is_empty());

    let st = queue_stats(&tb, 0).expect("queue 0 listed");
    assert_eq!(st.portid, q.portid());
    assert_eq!(st.waiting, 0, "every packet got its verdict");
    assert_eq!(st.copy_mode, 2);
    assert_eq!(st.copy_range, 128);
    assert_eq!((st.queue_dropped, st.user_dropped), (0, 0));
    assert!(st.id_sequence >= 2);
}

#[test]
fn udp_v4_and_v6_arrive_with_addresses_ports_and_payload() {
    let Some(tb) = Testbed::new("qudp") else {
        return;
    };
    rules(
        &tb,
        &[
            "iptables-nft -A INPUT -p udp --dport 7200 -j NFQUEUE --queue-num 0",
            "ip6tables-nft -A INPUT -p udp --dport 7200 -j NFQUEUE --queue-num 0",
        ],
    );
    let mut q = bind(&tb, QueueConfig::new(0));
    let sender = attacker(
        &tb,
        format!(
            "echo -n probe4 > /dev/udp/{SERVER_V4}/7200; echo -n probe6 > /dev/udp/{SERVER_V6}/7200"
        ),
    );
    let seen = serve(&mut q, Verdict::Accept, Duration::from_secs(5), |s| {
        s.len() >= 2
    });
    sender.join().unwrap();
    assert_eq!(seen.len(), 2);
    let v4 = &seen[0].1;
    assert_eq!(v4[0] >> 4, 4);
    assert_eq!(
        Ipv4Addr::new(v4[12], v4[13], v4[14], v4[15]),
        Ipv4Addr::new(192, 0, 2, 2)
    );
    assert_eq!(v4[9], 17);
    assert_eq!(u16::from_be_bytes([v4[22], v4[23]]), 7200);
    assert_eq!(&v4[28..], b"probe4");
    let v6 = &seen[1].1;
    assert_eq!(v6[0] >> 4, 6);
    assert_eq!(v6[6], 17);
    assert_eq!(&v6[48..], b"probe6");
    assert!(seen[1].0 > seen[0].0, "ids increase in arrival order");
}

#[test]
fn batch_verdict_releases_exactly_the_ids_up_to_n() {
    let Some(tb) = Testbed::new("qbatch") else {
        return;
    };
    rules(
        &tb,
        &["iptables-nft -A INPUT -p udp --dport 7300 -j NFQUEUE --queue-num 0"],
    );
    let mut q = bind(&tb, QueueConfig::new(0));
    attacker(
        &tb,
        format!("for i in 1 2 3; do echo -n $i > /dev/udp/{SERVER_V4}/7300; done"),
    )
    .join()
    .unwrap();
    let st = wait_for(Duration::from_secs(5), || {
        queue_stats(&tb, 0).filter(|s| s.waiting == 3)
    });
    assert!(st.is_some(), "three packets queued");

    // Read them without answering.
    let mut ids = Vec::new();
    wait_for(Duration::from_secs(5), || {
        q.recv().unwrap();
        ids.extend(q.packets().map(|p| p.unwrap().id));
        (ids.len() == 3).then_some(())
    })
    .expect("three packets read");

    let mut buf = Vec::new();
    nfnl::queue::encode_verdict_batch(&mut buf, 0, 0, ids[1], Verdict::Accept, None).unwrap();
    q.socket().send(&buf).unwrap();
    let st = wait_for(Duration::from_secs(5), || {
        queue_stats(&tb, 0).filter(|s| s.waiting == 1)
    });
    assert!(st.is_some(), "ids ≤ N released, the third still waiting");

    // The released id is gone (ENOENT), the third is still there (accepted without error).
    let errors_before = q.errors();
    for id in [ids[0], ids[2]] {
        buf.clear();
        nfnl::queue::encode_verdict(&mut buf, 0, 0, id, Verdict::Accept, None).unwrap();
        q.socket().send(&buf).unwrap();
    }
    wait_for(Duration::from_secs(5), || {
        q.recv().unwrap();
        q.packets().for_each(drop);
        (q.errors() == errors_before + 1).then_some(())
    })
    .expect("exactly one refused verdict: the id already released");
    assert_eq!(queue_stats(&tb, 0).unwrap().waiting, 0);
}

#[test]
fn a_second_binder_is_told_who_holds_the_queue() {
    let Some(tb) = Testbed::new("qtaken") else {
        return;
    };
    let first = bind(&tb, QueueConfig::new(4));
    let second = tb.in_server(|| QueueSocket::bind(&QueueConfig::new(4)));
    match second {
        Err(Error::QueueTaken { queue, portid }) => {
            assert_eq!((queue, portid), (4, first.portid()));
        }
        Err(other) => panic!("expected QueueTaken, got {other}"),
        Ok(_) => panic!("second bind succeeded"),
    }
    let msg = tb
        .in_server(|| QueueSocket::bind(&QueueConfig::new(4)))
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("queue 4 is already bound by another process"),
        "{msg}"
    );
    // Another queue number is free.
    let _other = bind(&tb, QueueConfig::new(5));
}

#[test]
fn packets_arriving_during_a_config_exchange_are_kept() {
    let Some(tb) = Testbed::new("qstash") else {
        return;
    };
    rules(
        &tb,
        &["iptables-nft -A INPUT -p udp --dport 7400 -j NFQUEUE --queue-num 0"],
    );
    let mut q = bind(&tb, QueueConfig::new(0));
    attacker(
        &tb,
        format!("for i in 1 2 3; do echo -n $i > /dev/udp/{SERVER_V4}/7400; done"),
    )
    .join()
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        queue_stats(&tb, 0).filter(|s| s.waiting == 3)
    })
    .expect("three packets queued, sitting in our socket");

    // The reply to this exchange is queued behind the three packets.
    let mut cfg = q.config().clone();
    cfg.max_len = 2048;
    q.reconfigure(&cfg).unwrap();

    let n = q.recv().unwrap();
    assert_eq!(n, 3, "the stashed packets come out first");
    let mut batcher = VerdictBatcher::new(0);
    let mut payloads = Vec::new();
    for p in q.packets() {
        let p = p.unwrap();
        batcher.push(p.id, Verdict::Accept);
        payloads.push(p.payload[28..].to_vec());
    }
    assert_eq!(payloads, vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
    assert_eq!(q.send_verdicts(&mut batcher).unwrap(), 3);
    wait_for(Duration::from_secs(5), || {
        queue_stats(&tb, 0).filter(|s| s.waiting == 0)
    })
    .expect("all three released");
    assert_eq!(q.errors(), 0);
}

#[test]
fn shutdown_accepts_what_is_pending_and_unbinds() {
    let Some(tb) = Testbed::new("qshut") else {
        return;
    };
    rules(
        &tb,
        &["iptables-nft -A INPUT -p udp --dport 7500 -j NFQUEUE --queue-num 0"],
    );
    // A listener counts what the host really receives.
    let listener = {
        let ns = tb.server.clone();
        std::thread::spawn(move || {
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns, "timeout", "6", "python3", "-c"])
                .arg(format!(
                    "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                     s.bind(('{SERVER_V4}',7500))\ns.settimeout(3)\nn=0\ntry:\n    \
                     while n<2:\n        s.recv(64); n+=1\nexcept OSError:\n    pass\nprint(n)"
                ))
                .output()
                .unwrap()
        })
    };
    let q = bind(&tb, QueueConfig::new(0));
    // Wait until the listener's socket exists, then queue two datagrams we never read.
    wait_for(Duration::from_secs(5), || {
        tb.sh(&tb.server, "ss -Hlun 'sport = :7500'")
            .ok()
            .filter(|o| !o.trim().is_empty())
    })
    .expect("listener up");
    attacker(
        &tb,
        format!("for i in 1 2; do echo -n x > /dev/udp/{SERVER_V4}/7500; done"),
    )
    .join()
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        queue_stats(&tb, 0).filter(|s| s.waiting == 2)
    })
    .expect("two packets pending");

    q.shutdown(Verdict::Accept).unwrap();
    let received = String::from_utf8(listener.join().unwrap().stdout).unwrap();
    assert_eq!(
        received.trim(),
        "2",
        "pending packets were accepted, not dropped"
    );
    assert_eq!(queue_stats(&tb, 0), None, "queue unbound");
}

#[test]
fn config_exchanges_finish_during_a_flood() {
    let Some(tb) = Testbed::new("qflood") else {
        return;
    };
    rules(
        &tb,
        &["iptables-nft -A INPUT -p udp --dport 7600 -j NFQUEUE --queue-num 0"],
    );
    let mut q = bind(&tb, QueueConfig::new(0));
    // A bounded flood: 2 s at most, 200,000 packets at most.
    let flood = attacker(
        &tb,
        format!(
            "timeout -s INT 2 hping3 --udp -p 7600 --flood -c 200000 {SERVER_V4} 2>&1 | tail -3"
        ),
    );
    wait_for(Duration::from_secs(5), || {
        queue_stats(&tb, 0).filter(|s| s.id_sequence > 1000)
    })
    .expect("flood reaches the queue");
    // Each exchange must return although the socket never runs dry.
    let mut cfg = q.config().clone();
    for i in 0..10 {
        cfg.max_len = 4096 + i;
        q.reconfigure(&cfg).expect("reconfigure under flood");
    }
    flood.join().unwrap();
    let after_flood = queue_stats(&tb, 0).unwrap();
    // Release everything: stashed packets first, then the rest, until the queue is empty.
    let seen = serve(&mut q, Verdict::Drop, Duration::from_secs(10), |_| {
        queue_stats(&tb, 0).is_some_and(|s| s.waiting == 0)
    });
    let st = queue_stats(&tb, 0).unwrap();
    assert_eq!(
        st.waiting,
        0,
        "nothing left behind ({} handed out, {after_flood:?} after the flood, now {st:?})",
        seen.len()
    );
    // Each waiting packet came out once, in id order: the stashed ones, then the socket's.
    assert!(seen.len() >= after_flood.waiting as usize);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "ids in order");
    assert!(seen.last().is_some_and(|l| l.0 <= st.id_sequence));
    assert_eq!(q.errors(), 0, "no verdict refused");
}

/// What the reader's design rests on: a packet whose message does not fit in our socket buffer
/// is never queued (the kernel drops it and counts it, or with fail-open accepts it). Every packet
/// left waiting has its message in our socket, so answering each message read, or one batch
/// verdict for the last id read, leaves nothing behind.
#[test]
fn a_full_socket_buffer_leaves_no_packet_waiting_unseen() {
    let Some(tb) = Testbed::new("qoverrun") else {
        return;
    };
    rules(
        &tb,
        &["iptables-nft -A INPUT -p udp --dport 7800 -j NFQUEUE --queue-num 0"],
    );
    let mut cfg = QueueConfig::new(0);
    cfg.fail_open = false; // so that the kernel counts what did not fit
    let mut q = bind(&tb, cfg);
    q.set_recv_buffer(4096).unwrap();
    attacker(
        &tb,
        format!("for i in $(seq 200); do echo -n $i > /dev/udp/{SERVER_V4}/7800; done"),
    )
    .join()
    .unwrap();
    let st = wait_for(Duration::from_secs(10), || {
        queue_stats(&tb, 0).filter(|s| s.id_sequence == 200)
    })
    .expect("200 packets through the queue");
    assert!(st.user_dropped > 0, "the socket buffer overflowed: {st:?}");
    assert_eq!(st.waiting + st.user_dropped, 200, "{st:?}");

    // Read everything there is, answering nothing yet.
    let mut ids = Vec::new();
    while q.recv().unwrap() > 0 {
        ids.extend(q.packets().map(|p| p.unwrap().id));
    }
    assert_eq!(
        ids.len(),
        st.waiting as usize,
        "one message per waiting packet"
    );
    assert_eq!(queue_stats(&tb, 0).unwrap().waiting, st.waiting);
    let mut buf = Vec::new();
    let last = *ids.last().expect("some packets fit");
    nfnl::queue::encode_verdict_batch(&mut buf, 0, 0, last, Verdict::Accept, None).unwrap();
    q.socket().send(&buf).unwrap();
    wait_for(Duration::from_secs(5), || {
        queue_stats(&tb, 0).filter(|s| s.waiting == 0)
    })
    .expect("one batch verdict for the last id read releases every waiting packet");
}

#[test]
fn several_single_verdicts_share_one_datagram() {
    let Some(tb) = Testbed::new("qmulti") else {
        return;
    };
    rules(
        &tb,
        &["iptables-nft -A INPUT -p udp --dport 7700 -j NFQUEUE --queue-num 0"],
    );
    let mut q = bind(&tb, QueueConfig::new(0));
    attacker(
        &tb,
        format!("for i in 1 2 3; do echo -n $i > /dev/udp/{SERVER_V4}/7700; done"),
    )
    .join()
    .unwrap();
    let mut ids = Vec::new();
    wait_for(Duration::from_secs(5), || {
        q.recv().unwrap();
        ids.extend(q.packets().map(|p| p.unwrap().id));
        (ids.len() == 3).then_some(())
    })
    .expect("three packets read");
    // Accept the first and the last, drop the middle one: three messages, one send.
    let mut buf = Vec::new();
    for (id, v) in [
        (ids[0], Verdict::Accept),
        (ids[1], Verdict::Drop),
        (ids[2], Verdict::Accept),
    ] {
        nfnl::queue::encode_verdict(&mut buf, 0, 0, id, v, Some(7)).unwrap();
    }
    q.socket().send(&buf).unwrap();
    wait_for(Duration::from_secs(5), || {
        queue_stats(&tb, 0).filter(|s| s.waiting == 0)
    })
    .expect("all three released by one datagram");
    q.recv().unwrap();
    q.packets().for_each(drop);
    assert_eq!(q.errors(), 0, "no verdict refused");
}

/// Packets counted by each rule of the server's iptables-nft INPUT chain, in order.
fn input_counters(tb: &Testbed) -> Vec<u64> {
    tb.sh(&tb.server, "iptables-nft -L INPUT -v -n -x --line-numbers")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            f.next()?.parse::<u32>().ok()?;
            f.next()?.parse().ok()
        })
        .collect()
}

#[test]
fn repeat_with_a_mark_reruns_the_chain_past_the_queue_rule_keeping_the_packets_mark() {
    let Some(tb) = Testbed::new("qrepeat") else {
        return;
    };
    const BIT: u32 = 0x1000_0000;
    // 7800 arrives marked 0x5 (as another tool's rule might mark it; a native nft rule, as
    // the MARK target would need a module the kernel-matrix guests do not load), 7801
    // unmarked. The queue rule skips packets with BIT; the rules after it drop what comes back
    // with BIT added to its own mark. An accept verdict would deliver both datagrams instead.
    rules(
        &tb,
        &[
            "nft add table ip marker && \
             nft add chain ip marker pre '{ type filter hook prerouting priority -150; }' && \
             nft add rule ip marker pre udp dport 7800 meta mark set 0x5",
            "iptables-nft -A INPUT -p udp --dport 7800:7801 -m mark ! --mark 0x10000000/0x10000000 -j NFQUEUE --queue-num 0",
            "iptables-nft -A INPUT -p udp -m mark --mark 0x10000005 -j DROP",
            "iptables-nft -A INPUT -p udp -m mark --mark 0x10000000 -j DROP",
        ],
    );
    let mut q = bind(&tb, QueueConfig::new(0));
    attacker(
        &tb,
        format!("echo -n a > /dev/udp/{SERVER_V4}/7800; echo -n b > /dev/udp/{SERVER_V4}/7801"),
    )
    .join()
    .unwrap();
    let mut marks = Vec::new();
    let mut batcher = VerdictBatcher::new(0);
    wait_for(Duration::from_secs(5), || {
        q.wait(Duration::from_millis(50)).unwrap();
        q.recv().unwrap();
        for p in q.packets() {
            let p = p.unwrap();
            marks.push(p.mark);
            let mark = p.mark.unwrap_or(0) | BIT;
            batcher.push_marked(p.id, Verdict::Repeat, Some(mark));
        }
        q.send_verdicts(&mut batcher).unwrap();
        (marks.len() >= 2).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "two packets read: {marks:?}, counters {:?}, {:?}\n{}",
            input_counters(&tb),
            queue_stats(&tb, 0),
            tb.sh(
                &tb.server,
                "nft -a list ruleset; iptables-nft -L INPUT -v -n -x --line-numbers"
            )
            .unwrap_or_default()
        )
    });
    assert_eq!(
        marks,
        vec![Some(0x5), None],
        "NFQA_MARK only when the mark is set"
    );
    wait_for(Duration::from_secs(5), || {
        (input_counters(&tb) == [2, 1, 1]).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "each queued once, then dropped with its own mark plus the bit: {:?}",
            input_counters(&tb)
        )
    });

    // Shutdown releases what is pending the same way.
    attacker(&tb, format!("echo -n c > /dev/udp/{SERVER_V4}/7801"))
        .join()
        .unwrap();
    wait_for(Duration::from_secs(5), || {
        queue_stats(&tb, 0).filter(|s| s.waiting == 1)
    })
    .expect("one packet pending");
    q.shutdown_with(|p| {
        (
            Verdict::Repeat,
            Some(p.and_then(|p| p.mark).unwrap_or(0) | BIT),
        )
    })
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        (input_counters(&tb) == [3, 1, 2]).then_some(())
    })
    .unwrap_or_else(|| panic!("{:?}", input_counters(&tb)));
}

#[test]
fn receive_timestamps_put_the_arrival_on_queued_packets() {
    let Some(tb) = Testbed::new("qstamp") else {
        return;
    };
    rules(
        &tb,
        &["iptables-nft -A INPUT -p udp --dport 7800 -j NFQUEUE --queue-num 0"],
    );
    let mut q = bind(&tb, QueueConfig::new(0));
    q.socket().enable_receive_timestamps().unwrap();
    let micros = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
    };
    let mut batcher = VerdictBatcher::new(0);
    // The kernel turns stamping on from a work queue: one datagram at a time until one comes
    // stamped, its stamp taken between the send and the receive.
    let stamp = wait_for(Duration::from_secs(5), || {
        let before = micros(std::time::SystemTime::now());
        attacker(&tb, format!("echo -n t > /dev/udp/{SERVER_V4}/7800"))
            .join()
            .unwrap();
        if !q.wait(Duration::from_millis(500)).unwrap() {
            return None;
        }
        q.recv().unwrap();
        let after = micros(std::time::SystemTime::now());
        let mut found = None;
        for p in q.packets() {
            let p = p.unwrap();
            batcher.push(p.id, Verdict::Drop);
            if let Some((sec, usec)) = p.timestamp {
                found = Some((before, sec * 1_000_000 + usec, after));
            }
        }
        q.send_verdicts(&mut batcher).unwrap();
        found
    })
    .expect("a queued packet with NFQA_TIMESTAMP");
    let (before, at, after) = stamp;
    // The stamp is in microseconds, truncated: it may read up to 1 µs before `before`.
    assert!(
        before <= at + 1 && at <= after,
        "stamp {at} not between {before} and {after}"
    );
}
