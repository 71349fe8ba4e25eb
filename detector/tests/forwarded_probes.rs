//! What a router's forward sensor queues as a probe itself rather than as an answer
//! (`packet::is_stealth_tcp`), checked on real captures (fixtures/pcap, recorded by
//! fixtures/pcap/record.sh and record-router.sh): every NULL, FIN and Xmas probe nmap sent is one;
//! no segment of an ordinary connection, and no answer of a host behind a router, is.

use detector::packet::{is_stealth_tcp, parse, Proto};
use detector::pcap;

fn tcp_packets(name: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(format!(
        "{}/../fixtures/pcap/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    pcap::frames(&bytes)
        .unwrap()
        .filter_map(|f| f.ok()?.ip().map(<[u8]>::to_vec))
        .filter(|ip| parse(ip).is_ok_and(|o| o.proto == Proto::Tcp))
        .collect()
}

#[test]
fn nmaps_null_fin_and_xmas_probes_are_stealth_segments() {
    for name in ["nmap-sN.pcap", "nmap-sF.pcap", "nmap-sX.pcap"] {
        let probes: Vec<_> = tcp_packets(name)
            .into_iter()
            .filter(|ip| {
                parse(ip).is_ok_and(|o| o.dst_port != 0 && o.src.to_string() == "192.0.2.2")
            })
            .collect();
        assert!(probes.len() >= 100, "{name}: {} probes", probes.len());
        assert!(probes.iter().all(|p| is_stealth_tcp(p, None)), "{name}");
    }
}

#[test]
fn connections_and_a_routers_answers_are_not() {
    for name in [
        "normal-traffic.pcap",
        "normal-day.pcap",
        "nmap-sT.pcap",
        "router-sS.pcap",
        "router-sA.pcap",
        "nmap-sA.pcap",
        "nmap-sM.pcap",
    ] {
        let packets = tcp_packets(name);
        assert!(!packets.is_empty(), "{name}");
        let stealth = packets.iter().filter(|p| is_stealth_tcp(p, None)).count();
        assert_eq!(stealth, 0, "{name}: {stealth} of {}", packets.len());
    }
}

/// A forwarded IPv6 probe whose TCP header lies past the copy range (a real capture of SYNs
/// behind a 256-byte Destination Options header, taken with a 128-byte snap length, as the queue
/// copies): what it is comes from the mark the forward sensor's twin rule wrote, and only a
/// NULL/FIN/Xmas mark makes it a probe.
#[test]
fn a_probe_cut_by_the_copy_range_is_one_by_its_sensor_mark() {
    use detector::packet::sensor_mark::{self, kind};
    use detector::Ignored;
    let bytes = std::fs::read(format!(
        "{}/../fixtures/pcap/v6-dstopts-syn.pcap",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let cut: Vec<Vec<u8>> = pcap::frames(&bytes)
        .unwrap()
        .filter_map(|f| f.ok()?.ip().map(<[u8]>::to_vec))
        .filter(|ip| ip.len() >= 40 && ip[0] >> 4 == 6 && ip[6] == 60)
        .collect();
    assert_eq!(cut.len(), 10, "the ten probes");
    let mark = |k: u8| u32::from_ne_bytes([0, 22, k, sensor_mark::MAGIC]);
    for p in &cut {
        assert_eq!(parse(p).err(), Some(Ignored::Truncated));
        assert!(is_stealth_tcp(p, Some(mark(kind::STEALTH))));
        for other in [kind::SYN, kind::ACK, kind::UDP, kind::SCTP] {
            assert!(!is_stealth_tcp(p, Some(mark(other))), "kind {other}");
        }
        assert!(!is_stealth_tcp(p, None));
        // Somebody else's mark (no magic byte) says nothing.
        assert!(!is_stealth_tcp(
            p,
            Some(u32::from_ne_bytes([0, 22, kind::STEALTH, 0]))
        ));
    }
}
