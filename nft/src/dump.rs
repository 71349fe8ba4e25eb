//! Reading the kernel's state back: NLM_F_DUMP requests decoded into the same types the batch
//! writes. Unknown attributes are skipped, unknown expressions kept as `Expr::Other`, so a newer
//! kernel never breaks a listing.

use nfnl::ack::{AckTracker, Expect};
use nfnl::message::{
    family as nfproto, nfnl_type, subsys, Message, MessageBuilder, NfGenMsg, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use nfnl::{Error, NlSocket};

use crate::object::{Chain, Element, Family, Set, Table};
use crate::rule::Rule;
use crate::uapi::{chain, elem, gen, msg, rule, set, table};

/// The NLM_F_DUMP request for `kind` (`msg::GET*`) in `family` (all families: `None`);
/// `filter` adds attributes (e.g. the table and set of a GETSETELEM).
pub fn request(
    seq: u32,
    family: Option<Family>,
    kind: u8,
    filter: impl FnOnce(&mut MessageBuilder<'_>),
) -> Result<Vec<u8>, Error> {
    let mut req = Vec::new();
    let mut m = MessageBuilder::new(
        &mut req,
        nfnl_type(subsys::NFTABLES, kind),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        NfGenMsg::new(family.map_or(nfproto::UNSPEC, |f| f as u8), 0),
    );
    filter(&mut m);
    m.finish()?;
    Ok(req)
}

fn dump<T>(
    sock: &mut NlSocket,
    family: Option<Family>,
    kind: u8,
    label: &str,
    filter: impl FnOnce(&mut MessageBuilder<'_>),
    mut parse: impl FnMut(Family, &Message<'_>, &[u8]) -> Result<Option<T>, Error>,
) -> Result<Vec<T>, Error> {
    let seq = sock.next_seq();
    let req = request(seq, family, kind, filter)?;
    let mut out = Vec::new();
    sock.dump(&req, seq, label, |msg| {
        let (gen, attrs) = msg.nfgen()?;
        // Families scanban does not model (arp, bridge, netdev) are skipped.
        let Some(fam) = Family::from_u8(gen.family) else {
            return Ok(());
        };
        if let Some(item) = parse(fam, msg, attrs)? {
            out.push(item);
        }
        Ok(())
    })?;
    Ok(out)
}

pub fn list_tables(sock: &mut NlSocket, family: Option<Family>) -> Result<Vec<Table>, Error> {
    dump(
        sock,
        family,
        msg::GETTABLE,
        "list tables",
        |_| {},
        |f, _, a| Ok(Some(Table::parse(f, a)?)),
    )
}

/// The handle of table `name` (`NFTA_TABLE_HANDLE`), `None` if there is no such table. A table
/// deleted and created again has a new handle: how a writer notices that its sets were emptied
/// by a rebuild.
pub fn table_handle(sock: &mut NlSocket, family: Family, name: &str) -> Result<Option<u64>, Error> {
    let label = format!("list tables of {family}");
    let handles = dump(
        sock,
        Some(family),
        msg::GETTABLE,
        &label,
        |_| {},
        |_, _, attrs| {
            let (mut found, mut handle) = (false, None);
            for a in nfnl::attr::AttrIter::new(attrs) {
                let a = a?;
                match a.kind() {
                    table::NAME => found = a.str("NFTA_TABLE_NAME")? == name,
                    table::HANDLE => handle = Some(a.be64("NFTA_TABLE_HANDLE")?),
                    _ => {}
                }
            }
            Ok(found.then_some(handle).flatten())
        },
    )?;
    Ok(handles.into_iter().next())
}

pub fn list_chains(sock: &mut NlSocket, family: Family, table: &str) -> Result<Vec<Chain>, Error> {
    let label = format!("list chains of {family} {table}");
    let chains = dump(
        sock,
        Some(family),
        msg::GETCHAIN,
        &label,
        |m| {
            m.str(chain::TABLE, table);
        },
        |f, _, a| Ok(Some(Chain::parse(f, a)?)),
    )?;
    Ok(chains.into_iter().filter(|c| c.table == table).collect())
}

pub fn list_sets(sock: &mut NlSocket, family: Family, table: &str) -> Result<Vec<Set>, Error> {
    let label = format!("list sets of {family} {table}");
    let sets = dump(
        sock,
        Some(family),
        msg::GETSET,
        &label,
        |m| {
            m.str(set::TABLE, table);
        },
        |f, _, a| Ok(Some(Set::parse(f, a)?)),
    )?;
    Ok(sets.into_iter().filter(|s| s.table == table).collect())
}

/// Elements of a set, with the time each has left (`expiration_ms`) and its comment.
pub fn list_elements(
    sock: &mut NlSocket,
    family: Family,
    table: &str,
    set_name: &str,
) -> Result<Vec<Element>, Error> {
    let mut all = Vec::new();
    each_element(sock, family, table, set_name, |e| all.push(e))?;
    Ok(all)
}

/// Every element of a set, handed to `f` as each dump message is decoded: a set of 100,000
/// elements is never held whole.
pub fn each_element(
    sock: &mut NlSocket,
    family: Family,
    table: &str,
    set_name: &str,
    mut f: impl FnMut(Element),
) -> Result<(), Error> {
    let label = format!("list set {family} {table} {set_name}");
    let seq = sock.next_seq();
    let req = request(seq, Some(family), msg::GETSETELEM, |m| {
        m.str(elem::LIST_TABLE, table).str(elem::LIST_SET, set_name);
    })?;
    sock.dump(&req, seq, &label, |msg| {
        let (_, attrs) = msg.nfgen()?;
        elements(attrs)?.into_iter().for_each(&mut f);
        Ok(())
    })
}

/// The elements in the attributes of one NEWSETELEM dump message.
pub fn elements(attrs: &[u8]) -> Result<Vec<Element>, Error> {
    let mut found = Vec::new();
    for a in nfnl::attr::AttrIter::new(attrs) {
        let a = a?;
        if a.kind() == elem::LIST_ELEMENTS {
            for e in a.nested() {
                found.push(Element::parse(&e?)?);
            }
        }
    }
    Ok(found)
}

pub fn list_rules(
    sock: &mut NlSocket,
    family: Family,
    table: &str,
    chain_name: Option<&str>,
) -> Result<Vec<Rule>, Error> {
    let label = format!("list rules of {family} {table}");
    let rules = dump(
        sock,
        Some(family),
        msg::GETRULE,
        &label,
        |m| {
            m.str(rule::TABLE, table);
            if let Some(c) = chain_name {
                m.str(rule::CHAIN, c);
            }
        },
        |f, _, a| Ok(Some(Rule::parse(f, a)?)),
    )?;
    Ok(rules
        .into_iter()
        .filter(|r| r.table == table && chain_name.map_or(true, |c| r.chain == c))
        .collect())
}

/// The ruleset generation id (`NFT_MSG_GETGEN`), for `Batch::with_genid`.
pub fn generation(sock: &mut NlSocket) -> Result<u32, Error> {
    let seq = sock.next_seq();
    let mut req = Vec::new();
    MessageBuilder::new(
        &mut req,
        nfnl_type(subsys::NFTABLES, msg::GETGEN),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NfGenMsg::new(nfproto::UNSPEC, 0),
    )
    .finish()?;
    let mut tracker = AckTracker::new();
    tracker.expect(seq, "get generation", Expect::Ack);
    let mut id = None;
    sock.transact(&req, &mut tracker, |m| {
        if m.subsystem_msg() == msg::NEWGEN {
            if let Ok((_, attrs)) = m.nfgen() {
                for a in nfnl::attr::AttrIter::new(attrs).flatten() {
                    if a.kind() == gen::ID {
                        id = a.be32("NFTA_GEN_ID").ok();
                    }
                }
            }
        }
    })?;
    id.ok_or(Error::Decode(nfnl::DecodeError::Missing {
        what: "NFTA_GEN_ID",
    }))
}

/// One nf_tables message as a dump returns it, decoded by its type.
#[derive(Debug)]
pub enum Decoded {
    Table(Table),
    Chain(Chain),
    Set(Set),
    Elements(Vec<Element>),
    Rule(Rule),
    /// Another subsystem, another message type, or a family scanban does not model.
    Other,
}

/// Decodes one dump message with the decoders the `list_*` functions use: what the fuzzer
/// (nft/fuzz) and the corpus replay (tests/dump_corpus.rs) drive with arbitrary bytes.
pub fn decode(m: &Message<'_>) -> Result<Decoded, Error> {
    if m.msg_type >> 8 != u16::from(subsys::NFTABLES) {
        return Ok(Decoded::Other);
    }
    let (gen, attrs) = m.nfgen()?;
    let Some(f) = Family::from_u8(gen.family) else {
        return Ok(Decoded::Other);
    };
    Ok(match (m.msg_type & 0xff) as u8 {
        msg::NEWTABLE => Decoded::Table(Table::parse(f, attrs)?),
        msg::NEWCHAIN => Decoded::Chain(Chain::parse(f, attrs)?),
        msg::NEWSET => Decoded::Set(Set::parse(f, attrs)?),
        msg::NEWSETELEM => Decoded::Elements(elements(attrs)?),
        msg::NEWRULE => Decoded::Rule(Rule::parse(f, attrs)?),
        _ => Decoded::Other,
    })
}
