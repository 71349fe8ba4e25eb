//! Any datagram through every reader the packet path and the control path use: message framing,
//! attributes (recursively), queued-packet views and ACK parsing. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfnl::ack::Ack;
use nfnl::attr::AttrIter;
use nfnl::message::Messages;
use nfnl::queue::PacketView;

fn walk(attrs: AttrIter<'_>, depth: u32) {
    for a in attrs.flatten() {
        let _ = (a.u8("f"), a.be16("f"), a.be32("f"), a.be64("f"), a.str("f"));
        if depth < 4 {
            walk(a.nested(), depth + 1);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for m in Messages::new(data).flatten() {
        let _ = PacketView::parse(&m);
        let _ = Ack::parse(&m);
        if let Ok((_, attrs)) = m.nfgen() {
            walk(AttrIter::new(attrs), 0);
        }
    }
});
