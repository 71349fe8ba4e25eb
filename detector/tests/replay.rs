//! Every capture in fixtures/pcap, recorded from real tools in namespaces by
//! fixtures/pcap/record.sh, replayed through the default policy: scans are banned after a known
//! number of queued probes, benign traffic never.

use std::net::IpAddr;

use detector::replay::{self, HostSource, Report};
use detector::{Config, Proto, SourceKey};

fn replay(name: &str) -> Report {
    let bytes = std::fs::read(format!(
        "{}/../fixtures/pcap/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    replay::run(&bytes, &Config::default(), &[]).unwrap()
}

fn server() -> IpAddr {
    "192.0.2.1".parse().unwrap()
}

fn v4_scanner() -> SourceKey {
    SourceKey::V4("192.0.2.2".parse().unwrap())
}

/// One ban of the scanner, after exactly `probes` queued probes, and nothing queued after it.
fn banned_once_after(r: &Report, key: SourceKey, probes: u64) {
    assert_eq!(r.bans.len(), 1, "{:?}", r.bans);
    let b = &r.bans[0];
    assert_eq!(b.key, key);
    assert_eq!(b.after_probes, probes, "{}", b.evidence);
    assert_eq!(r.queued, probes, "the ban stops the scan at the sensor");
    assert!(b.evidence.score >= Config::default().threshold);
    assert_eq!(b.evidence.offence, 1);
    let d = b.duration_ms as f64;
    assert!((0.95 * 3.6e6..=1.05 * 3.6e6).contains(&d), "1 h ± 5 %: {d}");
}

#[test]
fn syn_scan_is_banned_after_nine_probes() {
    // nmap's top ports are mostly privileged (weight 3): 7 of them, or a few more when some
    // are high ports, reach 21.
    let r = replay("nmap-sS.pcap");
    assert_eq!(
        r.local,
        vec!["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
    );
    banned_once_after(&r, v4_scanner(), 9);
    assert!(r.bans[0]
        .evidence
        .ports()
        .iter()
        .all(|(p, _)| *p == Proto::Tcp));
}

#[test]
fn the_same_scan_reads_the_same_from_pcapng_and_linux_cooked_captures() {
    banned_once_after(&replay("nmap-sS-any.pcap"), v4_scanner(), 9);
    banned_once_after(&replay("nmap-sS.pcapng"), v4_scanner(), 10);
}

#[test]
fn connect_scan_is_banned_after_eight_probes() {
    banned_once_after(&replay("nmap-sT.pcap"), v4_scanner(), 8);
}

#[test]
fn udp_scan_is_banned_after_twelve_probes() {
    let r = replay("nmap-sU.pcap");
    banned_once_after(&r, v4_scanner(), 12);
    assert!(r.bans[0]
        .evidence
        .ports()
        .iter()
        .all(|(p, _)| *p == Proto::Udp));
}

#[test]
fn stealth_scans_are_banned_after_three_probes() {
    use detector::evidence::stealth;
    for (file, kind) in [
        ("nmap-sF.pcap", stealth::FIN),
        ("nmap-sX.pcap", stealth::XMAS),
        ("nmap-sN.pcap", stealth::NULL),
    ] {
        let r = replay(file);
        banned_once_after(&r, v4_scanner(), 3);
        assert_eq!(r.bans[0].evidence.stealth, kind, "{file}");
    }
}

#[test]
fn ipv6_scan_is_banned_by_its_64() {
    let r = replay("nmap-6-sS.pcap");
    let key = SourceKey::new("2001:db8::2".parse().unwrap(), 64);
    assert_eq!(key.to_string(), "2001:db8::/64");
    // 10, not 9: the leak is exact at any probe rate (it used to round to nothing between
    // probes a few milliseconds apart), and what leaks during this scan takes one more port.
    banned_once_after(&r, key, 10);
}

#[test]
fn a_slow_scan_leaks_away_and_is_not_banned() {
    // 8 privileged ports, 6 s apart: 24 points arrive, ~8 leak away on the way.
    let r = replay("nmap-slow.pcap");
    assert!(r.bans.is_empty(), "{:?}", r.bans);
    assert_eq!(r.unbanned, vec![(v4_scanner(), 8)]);
}

#[test]
fn a_client_retrying_one_closed_port_is_never_banned() {
    let r = replay("retry-closed-port.pcap");
    assert!(r.bans.is_empty());
    assert_eq!(r.unbanned, vec![(v4_scanner(), 20)]);
    assert_eq!(r.counters.repeats, 19);
}

#[test]
fn normal_traffic_to_open_ports_is_never_even_queued() {
    let r = replay("normal-traffic.pcap");
    assert!(r.bans.is_empty());
    assert_eq!(r.queued, 0);
    assert!(r.frames > 300);
    assert_eq!(r.open_ports, 3, "tcp/8080 on both addresses, udp/5353");
}

#[test]
fn an_inbound_only_capture_finds_the_host_where_the_probes_go() {
    // tcpdump -Q in during nmap -sS: none of the host's answers are in the capture.
    let r = replay("nmap-sS-inbound.pcap");
    assert_eq!(r.host_source, HostSource::InboundProbes);
    assert_eq!(r.local, vec![server()]);
    assert_eq!(r.open_ports, 0, "without answers no port is known open");
    // This run's port order: 7 privileged ports and 4 high ones (8080 among them, open but
    // unknown as such without the SYN-ACK) reach 21.
    banned_once_after(&r, v4_scanner(), 11);
}

#[test]
fn an_inbound_only_capture_with_the_host_given() {
    let bytes = std::fs::read(format!(
        "{}/../fixtures/pcap/nmap-sS-inbound.pcap",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let r = replay::run(&bytes, &Config::default(), &[server()]).unwrap();
    assert_eq!(r.host_source, HostSource::Given);
    assert_eq!(r.local, vec![server()]);
    banned_once_after(&r, v4_scanner(), 11);
    // Another address given: nothing in the capture goes to it.
    let other: IpAddr = "192.0.2.3".parse().unwrap();
    let r = replay::run(&bytes, &Config::default(), &[other]).unwrap();
    assert_eq!(r.host_source, HostSource::Given);
    assert_eq!((r.queued, r.bans.len()), (0, 0));
}

#[test]
fn answers_decide_the_host_when_the_capture_has_them() {
    let r = replay("nmap-sS.pcap");
    assert_eq!(r.host_source, HostSource::Answers);
}

/// Replay follows the sensor's probe kinds: ACK-family scans (weight-ack 2: 11 ports), SCTP
/// INIT/COOKIE ECHO and IP-protocol scans (weight 3: 7), the host inferred from its RSTs and
/// its protocol-unreachables.
#[test]
fn ack_sctp_and_protocol_scans_are_banned_as_the_sensor_queues_them() {
    for (file, probes, proto) in [
        ("nmap-sA.pcap", 11, Proto::Tcp),
        ("nmap-sW.pcap", 11, Proto::Tcp),
        ("nmap-sM.pcap", 11, Proto::Tcp),
        ("nmap-sY.pcap", 7, Proto::Sctp),
        ("nmap-sZ.pcap", 7, Proto::Sctp),
        ("nmap-sO.pcap", 7, Proto::Ip),
    ] {
        let r = replay(file);
        assert_eq!(r.host_source, HostSource::Answers, "{file}");
        assert_eq!(r.local, vec![server()], "{file}");
        banned_once_after(&r, v4_scanner(), probes);
        let ports = r.bans[0].evidence.ports();
        assert!(ports.iter().all(|(p, _)| *p == proto), "{file}: {ports:?}");
    }
}
