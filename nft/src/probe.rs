//! Which optional kernel features exist, asked of the kernel itself.
//!
//! The expression probes send one batch that is *meant* to fail: a throwaway table, chain and
//! one rule per feature, then a delete of a table that does not exist. The last message aborts
//! the transaction, so nothing is ever committed, while each earlier message still gets its own
//! answer (docs/WIRE-NOTES.md#acks): 0 where the kernel accepted it, ENOENT for an expression type
//! it does not have (docs/WIRE-NOTES.md#queue-expression). No cleanup is needed, not even after a
//! crash.

use nfnl::{Error, NlSocket};

use crate::batch::Batch;
use crate::expr::{CmpOp, Expr, REG_1};
use crate::object::{BaseChain, Chain, Family, Hook, Table};
use crate::rule::Rule;
use crate::uapi::socket;
use crate::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// The native `queue` expression (nft_queue); otherwise the compat NFQUEUE target is used.
    pub native_queue: bool,
    /// The compat `target` expression with NFQUEUE (nft_compat + xt_NFQUEUE).
    pub compat_queue: bool,
    /// The `socket` expression (nft_socket).
    pub socket: bool,
    /// `NFT_MSG_DESTROY*` (kernel ≥ 6.3): deletes that tolerate absence.
    pub destroy: bool,
    /// Re-adding an element refreshes its timeout (kernel ≥ 6.12, 4201f3938914); older kernels
    /// need delete + add in one batch.
    pub timeout_refresh: bool,
}

pub fn probe(sock: &mut NlSocket) -> Result<Features, Error> {
    let table = format!("scanban_probe_{}", std::process::id());
    let chain = "probe";
    let mut b = Batch::new();
    b.add_table(&Table::new(Family::Inet, &table));
    b.add_chain(&Chain {
        family: Family::Inet,
        table: table.clone(),
        name: chain.into(),
        base: Some(BaseChain {
            hook: Hook::Input,
            priority: 0,
            kind: "filter".into(),
            policy: Verdict::Accept,
        }),
    });
    let rule = |exprs: Vec<Expr>| {
        let mut r = Rule::new(Family::Inet, &table, chain);
        r.exprs = exprs;
        r
    };
    b.add_rule(&Rule::new(Family::Inet, &table, chain).queue(0, 1, true, false));
    b.add_rule(&Rule::new(Family::Inet, &table, chain).queue_compat(0, 1, true, false));
    b.add_rule(&rule(vec![
        Expr::Socket {
            key: socket::TRANSPARENT,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CmpOp::Eq,
            data: vec![0],
        },
    ]));
    b.destroy_table(Family::Inet, &format!("{table}_absent"));
    // Always fails (ENOENT), so the batch never commits.
    b.delete_table(Family::Inet, &format!("{table}_absent"));
    let (_, outcomes) = b.send_with_outcomes(sock);
    let ok = |i: usize| matches!(outcomes.get(i), Some(Some(Ok(()))));
    if !ok(0) || !ok(1) {
        // Without a table and chain nothing below means anything: report why.
        let why = outcomes
            .iter()
            .take(2)
            .find_map(|o| o.clone().and_then(Result::err));
        return Err(match why {
            Some(e) => Error::Request(e),
            None => Error::Timeout {
                waiting_for: "feature probe".into(),
            },
        });
    }
    Ok(Features {
        native_queue: ok(2),
        compat_queue: ok(3),
        socket: ok(4),
        destroy: ok(5),
        timeout_refresh: kernel_at_least(6, 12),
    })
}

/// Compares the running kernel's release (`/proc/sys/kernel/osrelease`) with `major.minor`.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    parse_release(&release).is_some_and(|v| v >= (major, minor))
}

fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_strings() {
        assert_eq!(parse_release("6.18.44-fc-v657\n"), Some((6, 18)));
        assert_eq!(parse_release("6.1.0-28-cloud-amd64"), Some((6, 1)));
        assert_eq!(parse_release("5.15"), Some((5, 15)));
        assert_eq!(parse_release("garbage"), None);
    }
}
