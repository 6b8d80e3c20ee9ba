//! OFPT_FLOW_MOD: decoded into (and encoded from) the project's flow reprs.

use super::error::kind;
use super::fields::{be16, be32, be64};
use super::header::{finish, start, Header, MsgType, HEADER_LEN};
use super::oxm::{decode_instructions, decode_match, encode_instructions, encode_match};
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

impl FlowModCommand {
    fn from_wire(v: u8) -> Option<FlowModCommand> {
        Some(match v {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            _ => return None,
        })
    }
    fn to_wire(self) -> u8 {
        match self {
            FlowModCommand::Add => 0,
            FlowModCommand::Modify => 1,
            FlowModCommand::ModifyStrict => 2,
            FlowModCommand::Delete => 3,
            FlowModCommand::DeleteStrict => 4,
        }
    }
    /// Deletes carry no instructions that count.
    pub fn is_delete(self) -> bool {
        matches!(self, FlowModCommand::Delete | FlowModCommand::DeleteStrict)
    }
}

/// Flow mod flags (`ofp_flow_mod_flags`).
pub mod flags {
    pub const SEND_FLOW_REM: u16 = 1 << 0;
    pub const CHECK_OVERLAP: u16 = 1 << 1;
    pub const RESET_COUNTS: u16 = 1 << 2;
    pub const NO_PKT_COUNTS: u16 = 1 << 3;
    pub const NO_BYT_COUNTS: u16 = 1 << 4;
}

/// OFPFMFC_BAD_COMMAND.
const BAD_COMMAND: u16 = 5;

mod field {
    use std::ops::Range;
    pub const COOKIE: Range<usize> = 8..16;
    pub const COOKIE_MASK: Range<usize> = 16..24;
    pub const TABLE_ID: usize = 24;
    pub const COMMAND: usize = 25;
    pub const IDLE_TIMEOUT: Range<usize> = 26..28;
    pub const HARD_TIMEOUT: Range<usize> = 28..30;
    pub const PRIORITY: Range<usize> = 30..32;
    pub const BUFFER_ID: Range<usize> = 32..36;
    pub const OUT_PORT: Range<usize> = 36..40;
    pub const OUT_GROUP: Range<usize> = 40..44;
    pub const FLAGS: Range<usize> = 44..46;
    /// OpenFlow 1.4's importance; padding in 1.3.
    pub const IMPORTANCE: Range<usize> = 46..48;
    pub const MATCH: usize = 48;
}

/// A read view of an OFPT_FLOW_MOD (OpenFlow 1.3 and 1.4 share the layout).
#[derive(Debug, Clone, Copy)]
pub struct FlowModView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FlowModView<T> {
    /// Checks the header, that the buffer holds the whole message and its fixed part.
    pub fn new_checked(buffer: T) -> Result<Self, OfError> {
        let h = Header::new_checked(buffer.as_ref())?;
        let len = usize::from(h.length());
        if buffer.as_ref().len() < len || len < field::MATCH + 4 {
            return Err(OfError::bad_len());
        }
        Ok(FlowModView { buffer })
    }
    fn b(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..usize::from(be16(b, 2))]
    }
    pub fn cookie(&self) -> u64 {
        be64(&self.b()[field::COOKIE], 0)
    }
    pub fn cookie_mask(&self) -> u64 {
        be64(&self.b()[field::COOKIE_MASK], 0)
    }
    pub fn table_id(&self) -> u8 {
        self.b()[field::TABLE_ID]
    }
    pub fn command(&self) -> u8 {
        self.b()[field::COMMAND]
    }
    pub fn idle_timeout(&self) -> u16 {
        be16(&self.b()[field::IDLE_TIMEOUT], 0)
    }
    pub fn hard_timeout(&self) -> u16 {
        be16(&self.b()[field::HARD_TIMEOUT], 0)
    }
    pub fn priority(&self) -> u16 {
        be16(&self.b()[field::PRIORITY], 0)
    }
    pub fn buffer_id(&self) -> u32 {
        be32(&self.b()[field::BUFFER_ID], 0)
    }
    pub fn out_port(&self) -> u32 {
        be32(&self.b()[field::OUT_PORT], 0)
    }
    pub fn out_group(&self) -> u32 {
        be32(&self.b()[field::OUT_GROUP], 0)
    }
    pub fn flags(&self) -> u16 {
        be16(&self.b()[field::FLAGS], 0)
    }
    pub fn importance(&self) -> u16 {
        be16(&self.b()[field::IMPORTANCE], 0)
    }
    /// The match and the instructions after it.
    pub fn rest(&self) -> &[u8] {
        &self.b()[field::MATCH..]
    }
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
pub fn decode_flow_mod(version: u8, msg: &[u8]) -> Result<FlowModMsg, OfError> {
    let v = FlowModView::new_checked(msg)?;
    let command = FlowModCommand::from_wire(v.command()).ok_or_else(|| {
        OfError::new(
            kind::FLOW_MOD_FAILED,
            BAD_COMMAND,
            format!("command {}", v.command()),
        )
    })?;
    let (matches, used) = decode_match(version, v.rest())?;
    let instructions = &v.rest()[used..];
    let actions = if command.is_delete() {
        // OVS ignores a delete's instructions, but they must still be well formed.
        decode_instructions(version, instructions)?;
        Vec::new()
    } else {
        decode_instructions(version, instructions)?
    };
    let table_id = v.table_id();
    if table_id == super::TABLE_ALL && !command.is_delete() {
        return Err(OfError::flow_mod_bad_table());
    }
    Ok(FlowModMsg {
        command,
        table_id,
        cookie_mask: v.cookie_mask(),
        buffer_id: v.buffer_id(),
        out_port: v.out_port(),
        out_group: v.out_group(),
        flags: v.flags(),
        flow: FlowSpec {
            table: if table_id == super::TABLE_ALL {
                0
            } else {
                table_id
            },
            priority: v.priority(),
            cookie: v.cookie(),
            idle_timeout: v.idle_timeout(),
            hard_timeout: v.hard_timeout(),
            matches,
            actions,
        },
    })
}

/// Appends a whole OFPT_FLOW_MOD message.
pub fn encode_flow_mod(version: u8, xid: u32, m: &FlowModMsg, out: &mut Vec<u8>) {
    let at = start(out, version, MsgType::FlowMod, xid);
    out.extend_from_slice(&m.flow.cookie.to_be_bytes());
    out.extend_from_slice(&m.cookie_mask.to_be_bytes());
    out.push(m.table_id);
    out.push(m.command.to_wire());
    out.extend_from_slice(&m.flow.idle_timeout.to_be_bytes());
    out.extend_from_slice(&m.flow.hard_timeout.to_be_bytes());
    out.extend_from_slice(&m.flow.priority.to_be_bytes());
    out.extend_from_slice(&m.buffer_id.to_be_bytes());
    out.extend_from_slice(&m.out_port.to_be_bytes());
    out.extend_from_slice(&m.out_group.to_be_bytes());
    out.extend_from_slice(&m.flags.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    debug_assert_eq!(out.len() - at, field::MATCH);
    encode_match(version, &m.flow.matches, out);
    if !m.command.is_delete() {
        encode_instructions(version, &m.flow.actions, out);
    }
    finish(out, at);
}

/// Bytes in the fixed part before the match.
pub const FIXED_LEN: usize = field::MATCH;
const _: () = assert!(FIXED_LEN > HEADER_LEN);
