//! Numbers from `linux/netfilter/nf_tables.h` and `nfnetlink.h` (checked against linux-libc-dev
//! 6.1 and the 6.18 kernel). Grouped by the object they describe; names drop the common prefix.

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

/// `enum nft_expr_attributes`.
pub mod expr {
    pub const NAME: u16 = 1;
    pub const DATA: u16 = 2;
}

pub mod gen {
    pub const ID: u16 = 1;
}
