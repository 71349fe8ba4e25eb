//! Per-queue counters from `/proc/net/netfilter/nfnetlink_queue`.
//!
//! One line per bound queue: queue number, peer port id, packets waiting, copy mode, copy range,
//! packets dropped because the queue was full, packets dropped because our socket buffer was
//! full, last packet id, and a constant 1. Fail-open turns both kinds of drop into accepts
//! without counting them.

use std::io;

/// The counters of one bound queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: u16,
    pub portid: u32,
    /// Packets currently waiting for a verdict.
    pub waiting: u32,
    pub copy_mode: u8,
    pub copy_range: u32,
    /// Dropped because the queue was at its maximum length.
    pub queue_dropped: u32,
    /// Dropped because the reader's socket buffer was full.
    pub user_dropped: u32,
    /// Id of the last packet queued.
    pub id_sequence: u32,
}

/// The proc file of the calling *thread's* network namespace (`/proc/net` follows the process's
/// main thread, which matters when a thread has entered another namespace).
pub const PROC_PATH: &str = "/proc/thread-self/net/netfilter/nfnetlink_queue";

/// Parses the proc file's text; lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<QueueStats> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<QueueStats> {
    let mut f = line.split_whitespace();
    let mut next = || f.next()?.parse::<u64>().ok();
    Some(QueueStats {
        queue: u16::try_from(next()?).ok()?,
        portid: u32::try_from(next()?).ok()?,
        waiting: u32::try_from(next()?).ok()?,
        copy_mode: u8::try_from(next()?).ok()?,
        copy_range: u32::try_from(next()?).ok()?,
        queue_dropped: u32::try_from(next()?).ok()?,
        user_dropped: u32::try_from(next()?).ok()?,
        id_sequence: u32::try_from(next()?).ok()?,
    })
}

/// Reads the counters of every queue bound in this thread's network namespace. A missing file
/// (nfnetlink_queue not loaded yet, no queue ever bound) reads as no queues.
pub fn read() -> io::Result<Vec<QueueStats>> {
    match std::fs::read_to_string(PROC_PATH) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_format() {
        // The kernel's seq_show format: "%5u %6u %5u %1u %5u %5u %5u %8u %2d".
        let text = "    0 2147483649     3 2   128     0     5       17  1\n  garbage\n";
        assert_eq!(
            parse(text),
            vec![QueueStats {
                queue: 0,
                portid: 2147483649,
                waiting: 3,
                copy_mode: 2,
                copy_range: 128,
                queue_dropped: 0,
                user_dropped: 5,
                id_sequence: 17,
            }]
        );
    }
}
