//! `nft`: nf_tables objects, batches and dumps, encoded and decoded by hand on top of `nfnl`
//! (no libnftnl, no `nft` binary).
//!
//! - [`object`]: tables, chains, sets, set elements.
//! - [`rule`]: rules and the vocabulary that writes them (and prints them in nft syntax).
//! - [`expr`]: the kernel's rule expressions.
//! - [`batch`]: transactions sent as one datagram, errors mapped to the object that caused them.
//! - [`dump`]: listing what the kernel holds.
//! - [`probe`]: which optional kernel features exist.
//! - [`userdata`]: nft's comment TLVs. [`uapi`]: numbers from the kernel headers.

#![forbid(unsafe_code)]

pub mod batch;
pub mod dump;
pub mod expr;
pub mod object;
pub mod probe;
pub mod rule;
pub mod uapi;
pub mod userdata;

pub use batch::Batch;
pub use expr::{Expr, Verdict};
pub use object::{BaseChain, Chain, Element, Family, Hook, KeyType, Set, Table};
pub use rule::{Position, Rule};
