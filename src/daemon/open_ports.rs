//! Open-port sets (managed mode without the nft socket expression): the host's listening ports,
//! read from /proc, kept in two sets the sensor consults so open ports are never probes.

use std::collections::BTreeSet;

use log::{debug, warn};
use nfnl::NlSocket;
use nft::{dump, Batch, Family};

use crate::hostinfo;
use crate::ruleset::{self, TABLE};

/// The listening ports last written to the open-port sets.
#[derive(Default)]
pub struct OpenPortSets {
    tcp: BTreeSet<u16>,
    udp: BTreeSet<u16>,
    written: bool,
}

impl OpenPortSets {
    /// Rewrites the sets when the host's listening ports changed (or were never written, or
    /// the table was restored).
    pub fn refresh(&mut self, sock: &mut NlSocket) {
        let read = |f: &str| hostinfo::read(f);
        let mut tcp = hostinfo::open_ports(&read("/proc/net/tcp"), true);
        tcp.extend(hostinfo::open_ports(&read("/proc/net/tcp6"), true));
        let mut udp = hostinfo::open_ports(&read("/proc/net/udp"), false);
        udp.extend(hostinfo::open_ports(&read("/proc/net/udp6"), false));
        let in_kernel = dump::list_elements(sock, Family::Inet, TABLE, ruleset::OPEN_TCP)
            .map(|e| e.len())
            .unwrap_or(usize::MAX);
        if self.written && tcp == self.tcp && udp == self.udp && in_kernel == tcp.len() {
            return;
        }
        let mut b = Batch::new();
        for (set, ports) in [(ruleset::OPEN_TCP, &tcp), (ruleset::OPEN_UDP, &udp)] {
            b.flush_set(Family::Inet, TABLE, set);
            let elements: Vec<nft::Element> = ports
                .iter()
                .map(|p| nft::Element::new(&p.to_be_bytes()))
                .collect();
            if !elements.is_empty() {
                b.add_elements(Family::Inet, TABLE, set, &elements);
            }
        }
        match b.send(sock) {
            Ok(()) => {
                debug!("open ports: tcp {tcp:?} udp {udp:?}");
                self.tcp = tcp;
                self.udp = udp;
                self.written = true;
            }
            Err(e) => warn!("updating the open-port sets: {e}"),
        }
    }
}
