//! Numbers from `linux/netfilter/nf_tables.h`, `nf_tables_compat.h` and `nfnetlink.h` (checked
//! against linux-libc-dev 6.1 and the 6.18 kernel). Grouped by the object they describe: a
//! module per kernel enum, its constants named as the kernel names them minus the common prefix
//! the module's doc line states (`payload::DREG` is `NFTA_PAYLOAD_DREG`).
//!
//! Numbers shared with other layers live with their owner, once: `NF_ACCEPT`/`NF_DROP` and the
//! `NFPROTO_*` families in `nfnl`, IP protocol numbers and TCP flags in `detector::inet`.

/// `enum nf_tables_msg_types`.
pub mod msg {
    pub const NEWTABLE: u8 = 0;
    pub const GETTABLE: u8 = 1;
    pub const DELTABLE: u8 = 2;
    pub const NEWCHAIN: u8 = 3;
    pub const GETCHAIN: u8 = 4;
    pub const DELCHAIN: u8 = 5;
    pub const NEWRULE: u8 = 6;
    pub const GETRULE: u8 = 7;
    pub const DELRULE: u8 = 8;
    pub const NEWSET: u8 = 9;
    pub const GETSET: u8 = 10;
    pub const DELSET: u8 = 11;
    pub const NEWSETELEM: u8 = 12;
    pub const GETSETELEM: u8 = 13;
    pub const DELSETELEM: u8 = 14;
    pub const NEWGEN: u8 = 15;
    pub const GETGEN: u8 = 16;
    /// Kernel ≥ 6.3: delete that succeeds when the object is absent
    /// (docs/WIRE-NOTES.md#idempotent-delete).
    pub const DESTROYTABLE: u8 = 26;
    pub const DESTROYSETELEM: u8 = 30;
}

/// `NFNL_MSG_BATCH_BEGIN/END` (subsystem 0) and `enum nfnl_batch_attributes`.
pub mod batch {
    pub const BEGIN: u16 = 0x10;
    pub const END: u16 = 0x11;
    pub const GENID: u16 = 1;
}

pub mod table {
    pub const NAME: u16 = 1;
    pub const FLAGS: u16 = 2;
    pub const USE: u16 = 3;
    pub const HANDLE: u16 = 4;
    pub const USERDATA: u16 = 6;
    pub const OWNER: u16 = 7;
    pub const F_DORMANT: u32 = 0x1;
    pub const F_OWNER: u32 = 0x2;
}

pub mod chain {
    pub const TABLE: u16 = 1;
    pub const HANDLE: u16 = 2;
    pub const NAME: u16 = 3;
    pub const HOOK: u16 = 4;
    pub const POLICY: u16 = 5;
    pub const USE: u16 = 6;
    pub const TYPE: u16 = 7;
    pub const COUNTERS: u16 = 8;
    pub const FLAGS: u16 = 10;
    pub const USERDATA: u16 = 12;
    /// `enum nft_hook_attributes`.
    pub const HOOK_HOOKNUM: u16 = 1;
    pub const HOOK_PRIORITY: u16 = 2;
}

pub mod rule {
    pub const TABLE: u16 = 1;
    pub const CHAIN: u16 = 2;
    pub const HANDLE: u16 = 3;
    pub const EXPRESSIONS: u16 = 4;
    pub const POSITION: u16 = 6;
    pub const USERDATA: u16 = 7;
}

pub mod set {
    pub const TABLE: u16 = 1;
    pub const NAME: u16 = 2;
    pub const FLAGS: u16 = 3;
    pub const KEY_TYPE: u16 = 4;
    pub const KEY_LEN: u16 = 5;
    pub const DATA_TYPE: u16 = 6;
    pub const DATA_LEN: u16 = 7;
    pub const POLICY: u16 = 8;
    pub const DESC: u16 = 9;
    pub const ID: u16 = 10;
    pub const TIMEOUT: u16 = 11;
    pub const GC_INTERVAL: u16 = 12;
    pub const USERDATA: u16 = 13;
    pub const HANDLE: u16 = 16;
    /// `enum nft_set_desc_attributes`.
    pub const DESC_SIZE: u16 = 1;
    pub const DESC_CONCAT: u16 = 2;
    /// `enum nft_set_field_attributes`; lengths are in bytes whatever the header says
    /// (docs/WIRE-NOTES.md#set-keys).
    pub const FIELD_LEN: u16 = 1;

    pub const F_ANONYMOUS: u32 = 0x1;
    pub const F_CONSTANT: u32 = 0x2;
    pub const F_INTERVAL: u32 = 0x4;
    pub const F_MAP: u32 = 0x8;
    pub const F_TIMEOUT: u32 = 0x10;
    pub const F_EVAL: u32 = 0x20;
    pub const F_CONCAT: u32 = 0x80;
}

pub mod elem {
    /// `enum nft_set_elem_list_attributes`.
    pub const LIST_TABLE: u16 = 1;
    pub const LIST_SET: u16 = 2;
    pub const LIST_ELEMENTS: u16 = 3;
    pub const LIST_SET_ID: u16 = 4;
    /// `enum nft_set_elem_attributes`.
    pub const KEY: u16 = 1;
    pub const DATA: u16 = 2;
    pub const FLAGS: u16 = 3;
    pub const TIMEOUT: u16 = 4;
    pub const EXPIRATION: u16 = 5;
    pub const USERDATA: u16 = 6;
    pub const KEY_END: u16 = 10;
    pub const F_INTERVAL_END: u32 = 0x1;
}

/// `enum nft_list_attributes`.
pub const LIST_ELEM: u16 = 1;

/// `enum nft_data_attributes` and `enum nft_verdict_attributes`.
pub mod data {
    pub const VALUE: u16 = 1;
    pub const VERDICT: u16 = 2;
    pub const VERDICT_CODE: u16 = 1;
    pub const VERDICT_CHAIN: u16 = 2;
}

/// `enum nft_expr_attributes`: `NFTA_EXPR_*`.
pub mod expr {
    pub const NAME: u16 = 1;
    pub const DATA: u16 = 2;
}

/// `enum nft_registers`: `NFT_REG_VERDICT` and `NFT_REG_1`, the registers scanban's rules use.
pub const REG_VERDICT: u32 = 0;
pub const REG_1: u32 = 1;

/// `enum nft_verdicts`: `NFT_*`, the nf_tables verdicts beyond netfilter's `NF_*` codes.
pub mod verdict {
    pub const CONTINUE: i32 = -1;
    pub const BREAK: i32 = -2;
    pub const JUMP: i32 = -3;
    pub const GOTO: i32 = -4;
    pub const RETURN: i32 = -5;
}

/// `enum nft_payload_attributes`: `NFTA_PAYLOAD_*`; bases are `enum nft_payload_bases`
/// (`NFT_PAYLOAD_*_HEADER`).
pub mod payload {
    pub const DREG: u16 = 1;
    pub const BASE: u16 = 2;
    pub const OFFSET: u16 = 3;
    pub const LEN: u16 = 4;
    pub const LL_HEADER: u32 = 0;
    pub const NETWORK_HEADER: u32 = 1;
    pub const TRANSPORT_HEADER: u32 = 2;
}

/// `enum nft_meta_attributes`: `NFTA_META_*`; keys are `enum nft_meta_keys` (`NFT_META_*`), the
/// ones scanban uses.
pub mod meta {
    pub const DREG: u16 = 1;
    pub const KEY: u16 = 2;
    pub const SREG: u16 = 3;
    pub const MARK: u32 = 3;
    pub const IIF: u32 = 4;
    pub const OIF: u32 = 5;
    pub const NFPROTO: u32 = 15;
    pub const L4PROTO: u32 = 16;
    pub const PKTTYPE: u32 = 19;
}

/// `enum nft_cmp_attributes`: `NFTA_CMP_*`; operators are `enum nft_cmp_ops` (`NFT_CMP_*`).
pub mod cmp {
    pub const SREG: u16 = 1;
    pub const OP: u16 = 2;
    pub const DATA: u16 = 3;
    pub const EQ: u32 = 0;
    pub const NEQ: u32 = 1;
    pub const LT: u32 = 2;
    pub const LTE: u32 = 3;
    pub const GT: u32 = 4;
    pub const GTE: u32 = 5;
}

/// `enum nft_bitwise_attributes`: `NFTA_BITWISE_*`.
pub mod bitwise {
    pub const SREG: u16 = 1;
    pub const DREG: u16 = 2;
    pub const LEN: u16 = 3;
    pub const MASK: u16 = 4;
    pub const XOR: u16 = 5;
}

/// `enum nft_lookup_attributes`: `NFTA_LOOKUP_*`; `F_INV` is `NFT_LOOKUP_F_INV`.
pub mod lookup {
    pub const SET: u16 = 1;
    pub const SREG: u16 = 2;
    pub const FLAGS: u16 = 5;
    pub const F_INV: u32 = 0x1;
}

/// `enum nft_ct_attributes`: `NFTA_CT_*`; keys are `enum nft_ct_keys` (`NFT_CT_*`).
pub mod ct {
    pub const DREG: u16 = 1;
    pub const KEY: u16 = 2;
    pub const STATE: u32 = 0;
    /// `NFT_CT_DIRECTION`: one byte, `IP_CT_DIR_ORIGINAL` 0 or `IP_CT_DIR_REPLY` 1.
    pub const DIRECTION: u32 = 1;
}

/// `enum nft_socket_attributes`: `NFTA_SOCKET_*`; keys are `enum nft_socket_keys`
/// (`NFT_SOCKET_*`).
pub mod socket {
    pub const KEY: u16 = 1;
    pub const DREG: u16 = 2;
    pub const LEVEL: u16 = 3;
    pub const TRANSPARENT: u32 = 0;
    pub const MARK: u32 = 1;
    pub const WILDCARD: u32 = 2;
}

/// `enum nft_counter_attributes`: `NFTA_COUNTER_*`.
pub mod counter {
    pub const BYTES: u16 = 1;
    pub const PACKETS: u16 = 2;
}

/// `enum nft_limit_attributes`: `NFTA_LIMIT_*`; types are `enum nft_limit_type`
/// (`NFT_LIMIT_PKTS`, `NFT_LIMIT_PKT_BYTES`), `F_INV` is `NFT_LIMIT_F_INV`.
pub mod limit {
    pub const RATE: u16 = 1;
    pub const UNIT: u16 = 2;
    pub const BURST: u16 = 3;
    pub const TYPE: u16 = 4;
    pub const FLAGS: u16 = 5;
    pub const PKTS: u32 = 0;
    pub const PKT_BYTES: u32 = 1;
    pub const F_INV: u32 = 0x1;
}

/// `enum nft_immediate_attributes`: `NFTA_IMMEDIATE_*`.
pub mod immediate {
    pub const DREG: u16 = 1;
    pub const DATA: u16 = 2;
}

/// `enum nft_queue_attributes`: `NFTA_QUEUE_*`; flags are `NFT_QUEUE_FLAG_*`
/// (docs/WIRE-NOTES.md#queue-expression), the same two bits as xt_NFQUEUE's `NFQ_FLAG_*`.
pub mod queue {
    pub const NUM: u16 = 1;
    pub const TOTAL: u16 = 2;
    pub const FLAGS: u16 = 3;
    pub const FLAG_BYPASS: u16 = 0x1;
    pub const FLAG_CPU_FANOUT: u16 = 0x2;
}

/// `enum nft_target_attributes` (`nf_tables_compat.h`): `NFTA_TARGET_*`.
pub mod target {
    pub const NAME: u16 = 1;
    pub const REV: u16 = 2;
    pub const INFO: u16 = 3;
}

pub mod gen {
    pub const ID: u16 = 1;
}
