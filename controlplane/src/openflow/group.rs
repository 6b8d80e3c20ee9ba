//! OFPT_GROUP_MOD and the group description / statistics bodies.

use super::OfError;
use crate::flow::GroupSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupModCommand {
    Add,
    Modify,
    Delete,
}

/// An owned OFPT_GROUP_MOD. For deletes only `group.group_id` counts (OFPG_ALL: every
/// group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupModMsg {
    pub command: GroupModCommand,
    pub group: GroupSpec,
}

/// Decodes a whole OFPT_GROUP_MOD message (header included).
pub fn decode_group_mod(_version: u8, _msg: &[u8]) -> Result<GroupModMsg, OfError> {
    Err(OfError::bad_type())
}

/// Appends a whole OFPT_GROUP_MOD message.
pub fn encode_group_mod(_version: u8, _xid: u32, _m: &GroupModMsg, _out: &mut Vec<u8>) {}

/// Appends one `ofp_group_desc` entry of an OFPMP_GROUP_DESC reply body.
pub fn encode_group_desc_entry(_version: u8, _g: &GroupSpec, _out: &mut Vec<u8>) {}
