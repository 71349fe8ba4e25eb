//! The nfnetlink_queue protocol: configuration, packet messages, verdicts, and a reader socket.
//!
//! Typical loop (what `examples/queue_reader.rs` and the daemon do):
//! ```no_run
//! use nfnl::queue::{QueueConfig, QueueSocket, Verdict, VerdictBatcher};
//! # fn main() -> Result<(), nfnl::Error> {
//! let mut q = QueueSocket::bind(&QueueConfig::new(0))?;
//! let mut verdicts = VerdictBatcher::new(0);
//! loop {
//!     q.wait(std::time::Duration::from_millis(500))?;
//!     q.recv()?;
//!     for pkt in q.packets() {
//!         let Ok(pkt) = pkt else { continue };
//!         verdicts.push(pkt.id, Verdict::Accept);
//!     }
//!     q.send_verdicts(&mut verdicts)?;
//! }
//! # }
//! ```

mod config;
mod packet;
mod reader;
pub mod stats;
mod verdict;

pub use config::{
    copy_mode, encode_unbind, flags, QueueConfig, DEFAULT_COPY_RANGE, DEFAULT_MAX_LEN,
};
pub use packet::{skb_info, PacketView};
pub use reader::{QueueSocket, RECV_SLOTS};
pub use stats::QueueStats;
pub use verdict::{
    encode_verdict, encode_verdict_batch, Verdict, VerdictBatcher, NF_ACCEPT, NF_DROP, NF_QUEUE,
    NF_REPEAT,
};

/// `enum nfqnl_msg_types`.
pub mod msg {
    pub const PACKET: u8 = 0;
    pub const VERDICT: u8 = 1;
    pub const CONFIG: u8 = 2;
    pub const VERDICT_BATCH: u8 = 3;
}

/// `enum nfqnl_attr_type` and `enum nfqnl_attr_config`.
pub mod attr {
    pub const PACKET_HDR: u16 = 1;
    pub const VERDICT_HDR: u16 = 2;
    pub const MARK: u16 = 3;
    pub const TIMESTAMP: u16 = 4;
    pub const IFINDEX_INDEV: u16 = 5;
    pub const IFINDEX_OUTDEV: u16 = 6;
    pub const HWADDR: u16 = 9;
    pub const PAYLOAD: u16 = 10;
    pub const CAP_LEN: u16 = 13;
    pub const SKB_INFO: u16 = 14;

    pub const CFG_CMD: u16 = 1;
    pub const CFG_PARAMS: u16 = 2;
    pub const CFG_QUEUE_MAXLEN: u16 = 3;
    pub const CFG_MASK: u16 = 4;
    pub const CFG_FLAGS: u16 = 5;
}
