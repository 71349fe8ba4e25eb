//! Any bytes as a queued packet: parsed and observed. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = detector::packet::parse(data);
    let c = detector::Config {
        capacity: 64,
        offender_capacity: 16,
        ..detector::Config::default()
    };
    let mut d = detector::Detector::new(c, 1);
    let _ = d.observe_packet(0, data, None);
});
