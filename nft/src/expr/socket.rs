//! `socket`: loads a property of the local socket the packet belongs to (`uapi::socket` keys).
//! With no such socket the rule stops matching here (NFT_BREAK), which is how "a local socket
//! exists" is expressed.

use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use super::attrs::Attrs;
use super::Expr;
use crate::uapi::socket;

/// `NFTA_EXPR_NAME`.
pub(super) const NAME: &str = "socket";

pub(super) fn encode(m: &mut MessageBuilder<'_>, key: u32, dreg: u32) {
    // LEVEL (cgroup v2 ancestry) 0, as nft sends it; ignored for other keys.
    m.be32(socket::KEY, key)
        .be32(socket::DREG, dreg)
        .be32(socket::LEVEL, 0);
}

pub(super) fn parse(tb: &Attrs<'_>) -> Result<Expr, DecodeError> {
    let key = tb.required_be32(socket::KEY, "NFTA_SOCKET_KEY")?;
    let dreg = tb.required_be32(socket::DREG, "NFTA_SOCKET_DREG")?;
    Ok(Expr::Socket { key, dreg })
}
