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
        assert!(probes.iter().all(|p| is_stealth_tcp(p)), "{name}");
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
        let stealth = packets.iter().filter(|p| is_stealth_tcp(p)).count();
        assert_eq!(stealth, 0, "{name}: {stealth} of {}", packets.len());
    }
}
