//! Rules, and the small vocabulary scanban writes them in.
//!
//! Every builder method appends the kernel expressions of one nft statement *and* that
//! statement's nft text, so a rule built here can be printed in nft syntax exactly as installed
//! (`scanban ruleset`). The expression sequences are the ones `nft --debug=netlink` shows for
//! the same statement on nft 1.0.6 (fixtures/nft), including the implicit protocol guards
//! nft adds in `inet` tables (`ip saddr` first checks `meta nfproto ipv4`).

use nfnl::attr::AttrIter;
use nfnl::message::MessageBuilder;
use nfnl::DecodeError;

use detector::inet::{ipproto, prefix_mask_v4, prefix_mask_v6};
use detector::packet::field::{self, Field};
use nfnl::message::family as nfproto;

use crate::expr::{nfqueue_v3_info, CmpOp, Expr, PayloadBase, Verdict, REG_1};
use crate::object::Family;
use crate::uapi::{ct, meta, queue, rule, socket, LIST_ELEM};
use crate::userdata;

/// TCP flag bits, for `tcp_flags` (defined once, in `detector::inet`).
pub use detector::inet::tcp_flag;

/// Conntrack state bits (`NF_CT_STATE_*` as nft's `ct state` uses them).
pub mod ct_state {
    pub const INVALID: u32 = 1;
    pub const ESTABLISHED: u32 = 2;
    pub const RELATED: u32 = 4;
    pub const NEW: u32 = 8;
    pub const UNTRACKED: u32 = 64;
}

/// A rule's place in its chain, relative to the rule with this handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Before(u64),
    After(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub family: Family,
    pub table: String,
    pub chain: String,
    pub exprs: Vec<Expr>,
    pub comment: Option<String>,
    /// Set by the kernel; in dumps.
    pub handle: Option<u64>,
    /// Where to put the rule relative to an existing one (`NFTA_RULE_POSITION`, a handle).
    pub position: Option<Position>,
    /// The nft text of what the builder added; empty for rules read from the kernel.
    pub text: Vec<String>,
    /// Remarks printed after the rule as an nft comment line (`# ...`), e.g. how a statement
    /// was installed when that differs from its nft syntax.
    pub notes: Vec<String>,
}

impl Rule {
    pub fn new(family: Family, table: &str, chain: &str) -> Self {
        Rule {
            family,
            table: table.to_string(),
            chain: chain.to_string(),
            exprs: Vec::new(),
            comment: None,
            handle: None,
            position: None,
            text: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn add(mut self, text: String, exprs: impl IntoIterator<Item = Expr>) -> Self {
        self.exprs.extend(exprs);
        self.text.push(text);
        self
    }

    fn cmp(op: CmpOp, data: &[u8]) -> Expr {
        Expr::Cmp {
            sreg: REG_1,
            op,
            data: data.to_vec(),
        }
    }

    fn meta(key: u32) -> Expr {
        Expr::Meta { key, dreg: REG_1 }
    }

    /// Loads header field `f` (the detector's own layout, `detector::packet::field`).
    fn payload(base: PayloadBase, f: Field) -> Expr {
        Expr::Payload {
            base,
            offset: f.start as u32,
            len: f.len() as u32,
            dreg: REG_1,
        }
    }

    fn nfproto(family: u8) -> [Expr; 2] {
        [Self::meta(meta::NFPROTO), Self::cmp(CmpOp::Eq, &[family])]
    }

    fn l4proto(proto: u8) -> [Expr; 2] {
        [Self::meta(meta::L4PROTO), Self::cmp(CmpOp::Eq, &[proto])]
    }

    /// `ip saddr @set`
    pub fn ip_saddr_in(self, set: &str) -> Self {
        let mut e = Self::nfproto(nfproto::IPV4).to_vec();
        e.push(Self::payload(PayloadBase::Network, field::ipv4::SRC_ADDR));
        e.push(Expr::Lookup {
            sreg: REG_1,
            set: set.into(),
            invert: false,
        });
        self.add(format!("ip saddr @{set}"), e)
    }

    /// `ip saddr & <prefix mask> @set`: whole IPv4 prefixes banned (the distributed-scan
    /// tier), the address masked before the lookup as the detector masks its keys.
    pub fn ip_saddr_prefix_in(self, prefix_len: u8, set: &str) -> Self {
        let mask = prefix_mask_v4(prefix_len).to_be_bytes();
        let mut e = Self::nfproto(nfproto::IPV4).to_vec();
        e.push(Self::payload(PayloadBase::Network, field::ipv4::SRC_ADDR));
        if prefix_len < 32 {
            e.push(Expr::Bitwise {
                sreg: REG_1,
                dreg: REG_1,
                len: 4,
                mask: mask.to_vec(),
                xor: vec![0; 4],
            });
        }
        let text = if prefix_len < 32 {
            format!("ip saddr & {} == @{set}", std::net::Ipv4Addr::from(mask))
        } else {
            format!("ip saddr @{set}")
        };
        e.push(Expr::Lookup {
            sreg: REG_1,
            set: set.into(),
            invert: false,
        });
        self.add(text, e)
    }

    /// `ip6 saddr & <prefix mask> @set`: sources are banned by prefix, so the address is masked
    /// before the lookup and the set holds masked keys.
    pub fn ip6_saddr_prefix_in(self, prefix_len: u8, set: &str) -> Self {
        // The detector keys a source by this same mask (`detector::inet`), so the lookup finds
        // exactly the keys it bans.
        let mask = prefix_mask_v6(prefix_len).to_be_bytes();
        let mut e = Self::nfproto(nfproto::IPV6).to_vec();
        e.push(Self::payload(PayloadBase::Network, field::ipv6::SRC_ADDR));
        if prefix_len < 128 {
            e.push(Expr::Bitwise {
                sreg: REG_1,
                dreg: REG_1,
                len: 16,
                mask: mask.to_vec(),
                xor: vec![0; 16],
            });
        }
        let text = if prefix_len < 128 {
            format!("ip6 saddr & {} == @{set}", std::net::Ipv6Addr::from(mask))
        } else {
            format!("ip6 saddr @{set}")
        };
        e.push(Expr::Lookup {
            sreg: REG_1,
            set: set.into(),
            invert: false,
        });
        self.add(text, e)
    }

    /// `tcp dport @set` / `udp dport @set` (with nft's implicit l4proto match).
    pub fn dport_in(self, udp: bool, set: &str) -> Self {
        let (proto, name, dport) = if udp {
            (ipproto::UDP, "udp", field::udp::DST_PORT)
        } else {
            (ipproto::TCP, "tcp", field::tcp::DST_PORT)
        };
        let mut e = Self::l4proto(proto).to_vec();
        e.push(Self::payload(PayloadBase::Transport, dport));
        e.push(Expr::Lookup {
            sreg: REG_1,
            set: set.into(),
            invert: false,
        });
        self.add(format!("{name} dport @{set}"), e)
    }

    /// `iif "lo"` by index: loopback is always ifindex 1.
    pub fn iif_loopback(self) -> Self {
        self.add(
            "iif \"lo\"".into(),
            [
                Self::meta(meta::IIF),
                Self::cmp(CmpOp::Eq, &1u32.to_ne_bytes()),
            ],
        )
    }

    /// `oif "lo"` by index (loopback is always ifindex 1).
    pub fn oif_loopback(self) -> Self {
        self.add(
            "oif \"lo\"".into(),
            [
                Self::meta(meta::OIF),
                Self::cmp(CmpOp::Eq, &1u32.to_ne_bytes()),
            ],
        )
    }

    /// `ct direction reply`: the packet travels against its connection's first packet (an
    /// answer). Matches nothing without a conntrack entry.
    pub fn ct_direction_reply(self) -> Self {
        self.add(
            "ct direction reply".into(),
            [
                Expr::Ct {
                    key: ct::DIRECTION,
                    dreg: REG_1,
                },
                Self::cmp(CmpOp::Eq, &[1]),
            ],
        )
    }

    /// `icmp type destination-unreachable icmp code <code>` (IPv4) or the `icmpv6` form, with
    /// nft's implicit `meta nfproto` and `meta l4proto`; `code_name` as nft prints the code.
    pub fn icmp_unreachable(self, v6: bool, code: u8, code_name: &str) -> Self {
        use field::icmp;
        let (family, proto, name, ty) = if v6 {
            (nfproto::IPV6, ipproto::ICMPV6, "icmpv6", icmp::V6_UNREACH)
        } else {
            (nfproto::IPV4, ipproto::ICMP, "icmp", icmp::V4_UNREACH)
        };
        let mut e = Self::nfproto(family).to_vec();
        e.extend(Self::l4proto(proto));
        e.push(Self::payload(PayloadBase::Transport, icmp::TYPE));
        e.push(Self::cmp(CmpOp::Eq, &[ty]));
        e.push(Self::payload(PayloadBase::Transport, icmp::CODE));
        e.push(Self::cmp(CmpOp::Eq, &[code]));
        self.add(
            format!("{name} type destination-unreachable {name} code {code_name}"),
            e,
        )
    }

    /// `meta pkttype != host`: broadcast and multicast are not probes of this host.
    pub fn pkttype_not_host(self) -> Self {
        self.add(
            "meta pkttype != host".into(),
            [Self::meta(meta::PKTTYPE), Self::cmp(CmpOp::Neq, &[0])],
        )
    }

    /// `ct state` matching any of `bits` (host-endian register, docs/WIRE-NOTES.md#byte-order).
    pub fn ct_state_in(self, bits: u32) -> Self {
        let names: Vec<&str> = [
            (ct_state::INVALID, "invalid"),
            (ct_state::ESTABLISHED, "established"),
            (ct_state::RELATED, "related"),
            (ct_state::NEW, "new"),
            (ct_state::UNTRACKED, "untracked"),
        ]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
        let text = format!("ct state {}", names.join(","));
        self.add(
            text,
            [
                Expr::Ct {
                    key: ct::STATE,
                    dreg: REG_1,
                },
                Expr::Bitwise {
                    sreg: REG_1,
                    dreg: REG_1,
                    len: 4,
                    mask: bits.to_ne_bytes().to_vec(),
                    xor: vec![0; 4],
                },
                Self::cmp(CmpOp::Neq, &[0; 4]),
            ],
        )
    }

    /// `meta l4proto tcp` / `udp`.
    pub fn l4proto_tcp(self) -> Self {
        self.add("meta l4proto tcp".into(), Self::l4proto(ipproto::TCP))
    }

    pub fn l4proto_udp(self) -> Self {
        self.add("meta l4proto udp".into(), Self::l4proto(ipproto::UDP))
    }

    /// `meta l4proto sctp`.
    pub fn l4proto_sctp(self) -> Self {
        self.add("meta l4proto sctp".into(), Self::l4proto(ipproto::SCTP))
    }

    /// `meta l4proto icmp` / `ipv6-icmp` (as nft names them).
    pub fn l4proto_icmp(self, v6: bool) -> Self {
        let (proto, name) = if v6 {
            (ipproto::ICMPV6, "ipv6-icmp")
        } else {
            (ipproto::ICMP, "icmp")
        };
        self.add(format!("meta l4proto {name}"), Self::l4proto(proto))
    }

    /// `tcp flags & (mask) == value`, printed as nft 1.0.6 lists it (`tcp flags syn / syn,ack`,
    /// or `tcp flags ! syn,rst,ack` when `value` is 0), with nft's implicit `meta l4proto tcp`.
    pub fn tcp_flags(self, mask: u8, value: u8) -> Self {
        let text = if value == 0 {
            format!("tcp flags ! {}", flag_names(mask).join(","))
        } else {
            format!(
                "tcp flags {} / {}",
                flag_names(value).join(","),
                flag_names(mask).join(",")
            )
        };
        let mut e = Self::l4proto(ipproto::TCP).to_vec();
        e.extend([
            Self::payload(
                PayloadBase::Transport,
                field::tcp::FLAGS..field::tcp::FLAGS + 1,
            ),
            Expr::Bitwise {
                sreg: REG_1,
                dreg: REG_1,
                len: 1,
                mask: vec![mask],
                xor: vec![0],
            },
            Self::cmp(CmpOp::Eq, &[value]),
        ]);
        self.add(text, e)
    }

    /// `socket transparent <value>`: matches only if a local socket owns the packet's
    /// destination (the socket expression breaks the rule otherwise); with both 0 and 1 in two
    /// rules, "any local socket".
    pub fn socket_transparent(self, value: u8) -> Self {
        self.add(
            format!("socket transparent {value}"),
            [
                Expr::Socket {
                    key: socket::TRANSPARENT,
                    dreg: REG_1,
                },
                Self::cmp(CmpOp::Eq, &[value]),
            ],
        )
    }

    /// `ip6 nexthdr != <proto>` (the fixed header's next header, with nft's implicit `meta
    /// nfproto ipv6`): the packet has extension headers before `proto`, or is another protocol.
    pub fn ip6_nexthdr_not(self, proto: u8, name: &str) -> Self {
        let mut e = Self::nfproto(nfproto::IPV6).to_vec();
        e.push(Self::payload(
            PayloadBase::Network,
            field::ipv6::NXT_HDR..field::ipv6::NXT_HDR + 1,
        ));
        e.push(Self::cmp(CmpOp::Neq, &[proto]));
        self.add(format!("ip6 nexthdr != {name}"), e)
    }

    /// `meta mark set` to the register holding the 16-bit port at `port` of the transport
    /// header `proto` (network order, the register's first two bytes), then `& mask ^ xor`:
    /// how the sensor hands the daemon the port of a probe whose transport header the copy
    /// range cuts (`detector::packet::sensor_mark`). Printed as nft 1.0.6 lists it
    /// (`tcp dport & (mask | xor) | xor`, the register read in network order).
    pub fn mark_set_port(self, proto: &str, port: Field, mask: [u8; 4], xor: [u8; 4]) -> Self {
        let or: [u8; 4] = std::array::from_fn(|i| mask[i] | xor[i]);
        let text = format!(
            "meta mark set {proto} dport & {} | {}",
            u32::from_be_bytes(or),
            u32::from_be_bytes(xor)
        );
        self.add(
            text,
            [
                Self::payload(PayloadBase::Transport, port),
                Expr::Bitwise {
                    sreg: REG_1,
                    dreg: REG_1,
                    len: 4,
                    mask: mask.to_vec(),
                    xor: xor.to_vec(),
                },
                Expr::MetaSet {
                    key: meta::MARK,
                    sreg: REG_1,
                },
            ],
        )
    }

    pub fn counter(self) -> Self {
        self.add(
            "counter".into(),
            [Expr::Counter {
                packets: 0,
                bytes: 0,
            }],
        )
    }

    /// Native `queue` (kernel module nft_queue).
    pub fn queue(self, first: u16, total: u16, bypass: bool, fanout: bool) -> Self {
        let mut flags = 0;
        let mut words = Vec::new();
        if bypass {
            flags |= queue::FLAG_BYPASS;
            words.push("bypass");
        }
        if fanout {
            flags |= queue::FLAG_CPU_FANOUT;
            words.push("fanout");
        }
        let range = queue_range_text(first, total);
        let flags_text = if words.is_empty() {
            String::new()
        } else {
            format!("flags {} ", words.join(","))
        };
        self.add(
            format!("queue {flags_text}to {range}"),
            [Expr::Queue {
                num: first,
                total,
                flags,
            }],
        )
    }

    /// The same through nft_compat and the x_tables NFQUEUE target, revision 3
    /// (docs/WIRE-NOTES.md#compat-nfqueue), for kernels without nft_queue. nft prints it like a
    /// native queue; the text says which it is.
    pub fn queue_compat(self, first: u16, total: u16, bypass: bool, fanout: bool) -> Self {
        let mut flags = 0;
        if bypass {
            flags |= queue::FLAG_BYPASS;
        }
        if fanout {
            flags |= queue::FLAG_CPU_FANOUT;
        }
        let range = queue_range_text(first, total);
        let mut text = format!("queue num {range}");
        if bypass {
            text.push_str(" bypass");
        }
        if fanout {
            text.push_str(" fanout");
        }
        let mut rule = self;
        rule.notes.push(
            "installed as xt target NFQUEUE rev 3 through nft_compat (no native queue)".into(),
        );
        rule.add(
            text,
            [Expr::Target {
                name: "NFQUEUE".into(),
                rev: 3,
                info: nfqueue_v3_info(first, total, flags),
            }],
        )
    }

    pub fn accept(self) -> Self {
        self.verdict(Verdict::Accept, "accept")
    }

    pub fn drop(self) -> Self {
        self.verdict(Verdict::Drop, "drop")
    }

    pub fn ret(self) -> Self {
        self.verdict(Verdict::Return, "return")
    }

    pub fn jump(self, chain: &str) -> Self {
        let text = format!("jump {chain}");
        self.verdict(Verdict::Jump(chain.into()), &text)
    }

    fn verdict(self, verdict: Verdict, text: &str) -> Self {
        self.add(text.into(), [Expr::Immediate { verdict }])
    }

    pub fn with_comment(mut self, comment: &str) -> Self {
        self.comment = Some(comment.to_string());
        self
    }

    /// The rule in nft syntax, as `nft list` shows it inside its chain, followed by the notes
    /// as a `#` comment.
    pub fn to_nft(&self) -> String {
        let mut s = self.text.join(" ");
        if let Some(c) = &self.comment {
            s.push_str(&format!(" comment \"{}\"", c.replace('"', "'")));
        }
        if !self.notes.is_empty() {
            s.push_str(" # ");
            s.push_str(&self.notes.join("; "));
        }
        s
    }

    pub(crate) fn encode(&self, m: &mut MessageBuilder<'_>) {
        m.str(rule::TABLE, &self.table)
            .str(rule::CHAIN, &self.chain);
        if let Some(Position::Before(h) | Position::After(h)) = self.position {
            m.be64(rule::POSITION, h);
        }
        m.nest(rule::EXPRESSIONS, |m| {
            for e in &self.exprs {
                e.encode(m);
            }
        });
        if let Some(c) = &self.comment {
            let mut ud = Vec::new();
            userdata::push_comment(&mut ud, userdata::kind::RULE_COMMENT, c);
            m.bytes(rule::USERDATA, &ud);
        }
    }

    pub(crate) fn parse(family: Family, attrs: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Rule::new(family, "", "");
        for a in AttrIter::new(attrs) {
            let a = a?;
            match a.kind() {
                rule::TABLE => r.table = a.str("NFTA_RULE_TABLE")?.to_string(),
                rule::CHAIN => r.chain = a.str("NFTA_RULE_CHAIN")?.to_string(),
                rule::HANDLE => r.handle = Some(a.be64("NFTA_RULE_HANDLE")?),
                rule::EXPRESSIONS => {
                    for e in a.nested() {
                        let e = e?;
                        if e.kind() == LIST_ELEM {
                            r.exprs.push(Expr::parse(&e)?);
                        }
                    }
                }
                rule::USERDATA => {
                    r.comment = userdata::comment(a.value(), userdata::kind::RULE_COMMENT)
                }
                _ => {}
            }
        }
        Ok(r)
    }
}

fn queue_range_text(first: u16, total: u16) -> String {
    if total <= 1 {
        first.to_string()
    } else {
        format!("{first}-{}", first + total - 1)
    }
}

fn flag_names(bits: u8) -> Vec<&'static str> {
    [
        (tcp_flag::FIN, "fin"),
        (tcp_flag::SYN, "syn"),
        (tcp_flag::RST, "rst"),
        (tcp_flag::PSH, "psh"),
        (tcp_flag::ACK, "ack"),
        (tcp_flag::URG, "urg"),
    ]
    .iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, n)| *n)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_like_nft() {
        let r = Rule::new(Family::Inet, "scanban", "prerouting")
            .ip6_saddr_prefix_in(64, "banned6")
            .counter()
            .drop();
        assert_eq!(
            r.to_nft(),
            "ip6 saddr & ffff:ffff:ffff:ffff:: == @banned6 counter drop"
        );
        let r = Rule::new(Family::Inet, "scanban", "sensor")
            .tcp_flags(tcp_flag::SYN | tcp_flag::ACK, tcp_flag::SYN)
            .queue(0, 2, true, false)
            .with_comment("probes");
        assert_eq!(
            r.to_nft(),
            "tcp flags syn / syn,ack queue flags bypass to 0-1 comment \"probes\""
        );
        let r = Rule::new(Family::Inet, "t", "c").tcp_flags(0x16, 0);
        assert_eq!(r.to_nft(), "tcp flags ! syn,rst,ack");
        // Loads at the offsets nft uses: `udp dport` is transport 2..4, `tcp flags` 13..14.
        let loads = |r: Rule| -> Vec<(u32, u32)> {
            r.exprs
                .iter()
                .filter_map(|e| match e {
                    Expr::Payload { offset, len, .. } => Some((*offset, *len)),
                    _ => None,
                })
                .collect()
        };
        let r = Rule::new(Family::Inet, "t", "c");
        assert_eq!(loads(r.clone().dport_in(true, "s")), [(2, 2)]);
        assert_eq!(loads(r.clone().tcp_flags(0x02, 0x02)), [(13, 1)]);
        assert_eq!(loads(r.clone().ip_saddr_in("s")), [(12, 4)]);
        assert_eq!(loads(r.ip6_saddr_prefix_in(64, "s")), [(8, 16)]);
    }
}
