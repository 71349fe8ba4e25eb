//! Any datagram through the nf_tables dump decoders (tables, chains, sets, elements, rules and
//! every expression). Must never panic. Seeds: fixtures/nft/dumps (real kernel replies).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfnl::message::Messages;

fuzz_target!(|data: &[u8]| {
    for m in Messages::new(data).flatten() {
        let _ = nft::dump::decode(&m);
    }
});
