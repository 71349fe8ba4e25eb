//! Any bytes as a capture file, through the reader and the replay. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frames) = detector::pcap::frames(data) {
        for f in frames.flatten() {
            let _ = f.ip();
        }
    }
    let _ = detector::replay::run(data, &detector::Config::default(), &[]);
});
