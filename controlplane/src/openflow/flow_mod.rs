//! OFPT_FLOW_MOD: decoded into (and encoded from) the project's flow reprs.

use super::OfError;
use crate::flow::FlowSpec;

/// A flow mod's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowModCommand {
    Add,
    Modify,
    ModifyStrict,
    Delete,
    DeleteStrict,
}

/// Flow mod flags (`ofp_flow_mod_flags`).
pub mod flags {
    pub const SEND_FLOW_REM: u16 = 1 << 0;
    pub const CHECK_OVERLAP: u16 = 1 << 1;
    pub const RESET_COUNTS: u16 = 1 << 2;
    pub const NO_PKT_COUNTS: u16 = 1 << 3;
    pub const NO_BYT_COUNTS: u16 = 1 << 4;
}

/// An owned OFPT_FLOW_MOD. `flow.table` is `table_id` unless that is 0xff (every table, for
/// deletes); `flow.cookie` is the message's cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowModMsg {
    pub command: FlowModCommand,
    pub table_id: u8,
    pub cookie_mask: u64,
    pub buffer_id: u32,
    pub out_port: u32,
    pub out_group: u32,
    pub flags: u16,
    pub flow: FlowSpec,
}

/// Decodes a whole OFPT_FLOW_MOD message (header included).
pub fn decode_flow_mod(_version: u8, _msg: &[u8]) -> Result<FlowModMsg, OfError> {
    Err(OfError::bad_type())
}

/// Appends a whole OFPT_FLOW_MOD message.
pub fn encode_flow_mod(_version: u8, _xid: u32, _m: &FlowModMsg, _out: &mut Vec<u8>) {}
