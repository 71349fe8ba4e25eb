//! Transactions: BATCH_BEGIN, object messages, BATCH_END, sent in one `sendmsg` and answered
//! as one.
//!
//! What the kernel does with it (docs/WIRE-NOTES.md#batches and the sections after it):
//! - BEGIN/END are in subsystem 0 with `res_id = NFNL_SUBSYS_NFTABLES` big-endian; they carry no
//!   `NLM_F_ACK` (kernels ≥ 6.10 would answer them, older ones never do,
//!   docs/WIRE-NOTES.md#begin-end-acks);
//! - every object message carries `NLM_F_ACK`, so exactly one reply comes per object;
//! - the whole batch must be one datagram or it is aborted silently
//!   (docs/WIRE-NOTES.md#one-datagram), hence the send buffer is raised to fit it;
//! - an ACK of 0 does not mean committed: when any message fails the whole batch is rolled back,
//!   so success is "no error at all", never "an ACK for mine";
//! - commit-phase errors (and ERESTART for a stale generation id) come against BEGIN's seq.
//!
//! Sequence numbers are assigned at send time from the socket, so one `Batch` value can be built
//! without a socket and tested as bytes.

use nfnl::ack::{AckTracker, Expect};
use nfnl::message::{
    family as nfproto, nfnl_type, subsys, MessageBuilder, NfGenMsg, NLM_F_ACK, NLM_F_APPEND,
    NLM_F_CREATE, NLM_F_REQUEST,
};
use nfnl::{EncodeError, Error, NlSocket};

use crate::object::{Chain, Element, Family, Set, Table};
use crate::rule::{Position, Rule};
use crate::uapi::{batch, elem, msg, rule, table};

/// Element-list bytes per NEWSETELEM message: well under the 64 KiB nest limit.
const ELEMENTS_PER_MESSAGE_BYTES: usize = 48 * 1024;

/// One object message's reply: `None` if none came, else its ACK or error.
pub(crate) type Outcome = Option<Result<(), nfnl::ack::RequestError>>;

#[derive(Debug)]
struct Sent {
    offset: usize,
    label: String,
    expect: Expect,
}

#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    messages: Vec<Sent>,
    next_set_id: u32,
    error: Option<EncodeError>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Self {
        Self::begin(None)
    }

    /// A batch the kernel refuses with ERESTART if the ruleset changed since generation `genid`
    /// (docs/WIRE-NOTES.md#generation-id): optimistic concurrency against fw4 or an admin running
    /// nft at the same time.
    pub fn with_genid(genid: u32) -> Self {
        Self::begin(Some(genid))
    }

    fn begin(genid: Option<u32>) -> Self {
        let mut b = Batch {
            buf: Vec::with_capacity(4096),
            messages: Vec::new(),
            next_set_id: 1,
            error: None,
        };
        let offset = b.buf.len();
        let mut m = MessageBuilder::new(
            &mut b.buf,
            batch::BEGIN,
            NLM_F_REQUEST,
            0,
            NfGenMsg::new(nfproto::UNSPEC, u16::from(subsys::NFTABLES)),
        );
        if let Some(g) = genid {
            m.be32(batch::GENID, g);
        }
        // BEGIN has one small attribute at most; it cannot overflow.
        let _ = m.finish();
        b.messages.push(Sent {
            offset,
            label: "batch".into(),
            expect: Expect::ErrorOnly,
        });
        b
    }

    /// Object messages in the batch.
    pub fn len(&self) -> usize {
        self.messages.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes so far.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    fn push(
        &mut self,
        family: Family,
        kind: u8,
        flags: u16,
        label: String,
        fill: impl FnOnce(&mut MessageBuilder<'_>),
    ) {
        let offset = self.buf.len();
        let mut m = MessageBuilder::new(
            &mut self.buf,
            nfnl_type(subsys::NFTABLES, kind),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            0,
            NfGenMsg::new(family as u8, 0),
        );
        fill(&mut m);
        match m.finish() {
            Ok(_) => self.messages.push(Sent {
                offset,
                label,
                expect: Expect::Ack,
            }),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    /// Creates the table if absent (no `NLM_F_EXCL`: an existing table is kept as is).
    pub fn add_table(&mut self, t: &Table) {
        let label = format!("table {} {}", t.family, t.name);
        self.push(t.family, msg::NEWTABLE, NLM_F_CREATE, label, |m| {
            t.encode(m)
        });
    }

    /// Deletes the table and everything in it; ENOENT if it does not exist.
    pub fn delete_table(&mut self, family: Family, name: &str) {
        let label = format!("delete table {family} {name}");
        self.push(family, msg::DELTABLE, 0, label, |m| {
            m.str(table::NAME, name);
        });
    }

    /// Deletes the table if it exists (kernel ≥ 6.3, `Features::destroy`).
    pub fn destroy_table(&mut self, family: Family, name: &str) {
        let label = format!("destroy table {family} {name}");
        self.push(family, msg::DESTROYTABLE, 0, label, |m| {
            m.str(table::NAME, name);
        });
    }

    /// Deletes the table whether or not it exists, on any kernel: create-if-absent then delete,
    /// in the same batch (docs/WIRE-NOTES.md#idempotent-delete).
    pub fn remove_table(&mut self, family: Family, name: &str, have_destroy: bool) {
        if have_destroy {
            self.destroy_table(family, name);
        } else {
            self.add_table(&Table::new(family, name));
            self.delete_table(family, name);
        }
    }

    /// Creates the chain if absent; a base chain's hook and priority must match an existing one.
    pub fn add_chain(&mut self, c: &Chain) {
        let label = format!("chain {} {} {}", c.family, c.table, c.name);
        self.push(c.family, msg::NEWCHAIN, NLM_F_CREATE, label, |m| {
            c.encode(m)
        });
    }

    /// Deletes a chain (it must exist and hold no rules: flush it first in the same batch).
    pub fn delete_chain(&mut self, family: Family, table: &str, chain: &str) {
        let label = format!("delete chain {family} {table} {chain}");
        self.push(family, msg::DELCHAIN, 0, label, |m| {
            m.str(crate::uapi::chain::TABLE, table)
                .str(crate::uapi::chain::NAME, chain);
        });
    }

    /// Removes every rule of a chain (DELRULE naming only table and chain).
    pub fn flush_chain(&mut self, family: Family, table: &str, chain: &str) {
        let label = format!("flush chain {family} {table} {chain}");
        self.push(family, msg::DELRULE, 0, label, |m| {
            m.str(rule::TABLE, table).str(rule::CHAIN, chain);
        });
    }

    /// Creates the set if absent.
    pub fn add_set(&mut self, s: &Set) {
        let label = format!("set {} {} {}", s.family, s.table, s.name);
        let id = self.next_set_id;
        self.next_set_id += 1;
        self.push(s.family, msg::NEWSET, NLM_F_CREATE, label, |m| {
            s.encode(m, id)
        });
    }

    /// Adds a rule: at the end of its chain, or before/after the rule named by `r.position`.
    /// The kernel reads `NLM_F_APPEND` as "after" (the end, without a position) and its absence
    /// as "before" (the head, without a position, docs/WIRE-NOTES.md#rule-position).
    pub fn add_rule(&mut self, r: &Rule) {
        let mut text = r.to_nft();
        if text.len() > 80 {
            let mut cut = 77;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        let label = format!("rule {} {} {}: {text}", r.family, r.table, r.chain);
        let append = match r.position {
            Some(Position::Before(_)) => 0,
            _ => NLM_F_APPEND,
        };
        self.push(r.family, msg::NEWRULE, NLM_F_CREATE | append, label, |m| {
            r.encode(m)
        });
    }

    /// Inserts a rule at the head of its chain.
    pub fn insert_rule_first(&mut self, r: &Rule) {
        let label = format!(
            "rule {} {} {} (first): {}",
            r.family,
            r.table,
            r.chain,
            r.to_nft()
        );
        self.push(r.family, msg::NEWRULE, NLM_F_CREATE, label, |m| r.encode(m));
    }

    /// Adds elements (with their timeouts and comments), split over as many messages as the
    /// 64 KiB attribute limit requires; all still commit or fail together.
    pub fn add_elements(&mut self, family: Family, table: &str, set: &str, elements: &[Element]) {
        self.elements(msg::NEWSETELEM, NLM_F_CREATE, family, table, set, elements);
    }

    /// Removes every element of a set (DELSETELEM without an element list).
    pub fn flush_set(&mut self, family: Family, table: &str, set: &str) {
        let label = format!("flush set {family} {table} {set}");
        self.push(family, msg::DELSETELEM, 0, label, |m| {
            m.str(elem::LIST_TABLE, table).str(elem::LIST_SET, set);
        });
    }

    /// Deletes elements by key; ENOENT for one that is absent.
    pub fn delete_elements(&mut self, family: Family, table: &str, set: &str, keys: &[Element]) {
        self.elements(msg::DELSETELEM, 0, family, table, set, keys);
    }

    /// Deletes elements by key, tolerating absent ones (kernel ≥ 6.3).
    pub fn destroy_elements(&mut self, family: Family, table: &str, set: &str, keys: &[Element]) {
        self.elements(msg::DESTROYSETELEM, 0, family, table, set, keys);
    }

    fn elements(
        &mut self,
        kind: u8,
        flags: u16,
        family: Family,
        table: &str,
        set: &str,
        elements: &[Element],
    ) {
        let verb = match kind {
            msg::NEWSETELEM => "add",
            msg::DELSETELEM => "delete",
            _ => "destroy",
        };
        let total = elements.len();
        let mut start = 0;
        while start < total {
            let mut end = start;
            let mut bytes = 0;
            while end < total
                && (end == start
                    || bytes + elements[end].encoded_len() <= ELEMENTS_PER_MESSAGE_BYTES)
            {
                bytes += elements[end].encoded_len();
                end += 1;
            }
            let chunk = &elements[start..end];
            let label = if total == 1 {
                format!("{verb} element in {family} {table} {set}")
            } else {
                format!(
                    "{verb} elements {}-{} of {total} in {family} {table} {set}",
                    start + 1,
                    end
                )
            };
            self.push(family, kind, flags, label, |m| {
                m.str(elem::LIST_TABLE, table)
                    .str(elem::LIST_SET, set)
                    .nest(elem::LIST_ELEMENTS, |m| {
                        for e in chunk {
                            e.encode(m);
                        }
                    });
            });
            start = end;
        }
    }

    /// The bytes as they will be sent (with sequence numbers 0 until `send`); for tests.
    pub fn bytes_with_end(&self) -> Vec<u8> {
        let mut b = self.buf.clone();
        end_message(&mut b);
        b
    }

    /// Sends the batch as one datagram and waits for every reply. `Ok` means committed: no
    /// message failed and the commit itself did not.
    pub fn send(self, sock: &mut NlSocket) -> Result<(), Error> {
        self.send_with_outcomes(sock).0
    }

    /// Like `send`, also returning every object message's own outcome in batch order (`None`:
    /// no reply). Probes use it: in a deliberately aborted batch, a message that was acceptable
    /// still gets its 0 ACK (docs/WIRE-NOTES.md#acks).
    pub(crate) fn send_with_outcomes(
        mut self,
        sock: &mut NlSocket,
    ) -> (Result<(), Error>, Vec<Outcome>) {
        if let Some(e) = self.error {
            return (Err(Error::Encode(e)), Vec::new());
        }
        let end_offset = self.buf.len();
        end_message(&mut self.buf);
        self.messages.push(Sent {
            offset: end_offset,
            label: "batch end".into(),
            expect: Expect::ErrorOnly,
        });
        let mut tracker = AckTracker::new();
        let mut seqs = Vec::with_capacity(self.messages.len());
        for s in &self.messages {
            let seq = sock.next_seq();
            self.buf[s.offset + 8..s.offset + 12].copy_from_slice(&seq.to_ne_bytes());
            tracker.expect(seq, s.label.clone(), s.expect);
            seqs.push(seq);
        }
        let r = self
            .size_buffers(sock)
            .and_then(|()| sock.transact(&self.buf, &mut tracker, |_| {}));
        let outcomes = seqs[1..seqs.len() - 1]
            .iter()
            .map(|s| tracker.outcome(*s).cloned())
            .collect();
        (r, outcomes)
    }

    fn size_buffers(&self, sock: &mut NlSocket) -> Result<(), Error> {
        // The kernel refuses a datagram over sk_sndbuf - 32 with EMSGSIZE
        // (docs/WIRE-NOTES.md#one-datagram).
        sock.ensure_send_buffer(self.buf.len() * 2 + 4096)?;
        // Replies: one per object; error replies echo only the header (CAP_ACK).
        sock.ensure_recv_buffer((self.messages.len() * 64).max(1 << 20))?;
        Ok(())
    }
}

fn end_message(buf: &mut Vec<u8>) {
    let m = MessageBuilder::new(
        buf,
        batch::END,
        NLM_F_REQUEST,
        0,
        NfGenMsg::new(nfproto::UNSPEC, u16::from(subsys::NFTABLES)),
    );
    let _ = m.finish();
}
