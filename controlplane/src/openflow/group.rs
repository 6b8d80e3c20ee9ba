//! OFPT_GROUP_MOD and the group description / statistics bodies (OpenFlow 1.3 layout, which
//! 1.4 keeps).

use super::actions::{decode_actions, encode_actions};
use super::error::kind;
use super::fields::{be16, be32, patch16};
use super::header::{finish, start, Header, MsgType};
use super::oxm::{port_from_of, port_to_of};
use super::{group_id, port, OfError};
use crate::flow::{Bucket, GroupSpec, GroupType};

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

/// OFPGMFC_* codes.
pub mod code {
    pub const INVALID_GROUP: u16 = 2;
    pub const BAD_TYPE: u16 = 10;
    pub const BAD_COMMAND: u16 = 11;
    pub const BAD_BUCKET: u16 = 12;
    pub const BAD_WATCH: u16 = 13;
}

fn err(code: u16, detail: impl Into<String>) -> OfError {
    OfError::new(kind::GROUP_MOD_FAILED, code, detail)
}

mod field {
    use std::ops::Range;
    pub const COMMAND: Range<usize> = 8..10;
    pub const TYPE: usize = 10;
    pub const GROUP_ID: Range<usize> = 12..16;
    pub const BUCKETS: usize = 16;
}

/// A read view of an OFPT_GROUP_MOD.
#[derive(Debug, Clone, Copy)]
pub struct GroupModView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GroupModView<T> {
    pub fn new_checked(buffer: T) -> Result<Self, OfError> {
        let h = Header::new_checked(buffer.as_ref())?;
        let len = usize::from(h.length());
        if buffer.as_ref().len() < len || len < field::BUCKETS {
            return Err(OfError::bad_len());
        }
        Ok(GroupModView { buffer })
    }
    fn b(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..usize::from(be16(b, 2))]
    }
    pub fn command(&self) -> u16 {
        be16(&self.b()[field::COMMAND], 0)
    }
    pub fn group_type(&self) -> u8 {
        self.b()[field::TYPE]
    }
    pub fn group_id(&self) -> u32 {
        be32(&self.b()[field::GROUP_ID], 0)
    }
    pub fn buckets(&self) -> &[u8] {
        &self.b()[field::BUCKETS..]
    }
}

mod bucket {
    use std::ops::Range;
    pub const LEN: Range<usize> = 0..2;
    pub const WEIGHT: Range<usize> = 2..4;
    pub const WATCH_PORT: Range<usize> = 4..8;
    pub const WATCH_GROUP: Range<usize> = 8..12;
    pub const ACTIONS: usize = 16;
}

/// A read view of one `ofp_bucket`.
#[derive(Debug, Clone, Copy)]
pub struct BucketView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> BucketView<T> {
    pub fn new_checked(buffer: T) -> Result<Self, OfError> {
        let b = buffer.as_ref();
        if b.len() < bucket::ACTIONS {
            return Err(err(code::BAD_BUCKET, "short bucket"));
        }
        let len = usize::from(be16(&b[bucket::LEN], 0));
        if len < bucket::ACTIONS || len % 8 != 0 || len > b.len() {
            return Err(err(code::BAD_BUCKET, format!("bucket length {len}")));
        }
        Ok(BucketView { buffer })
    }
    pub fn len(&self) -> usize {
        usize::from(be16(&self.buffer.as_ref()[bucket::LEN], 0))
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn weight(&self) -> u16 {
        be16(&self.buffer.as_ref()[bucket::WEIGHT], 0)
    }
    pub fn watch_port(&self) -> u32 {
        be32(&self.buffer.as_ref()[bucket::WATCH_PORT], 0)
    }
    pub fn watch_group(&self) -> u32 {
        be32(&self.buffer.as_ref()[bucket::WATCH_GROUP], 0)
    }
    pub fn actions(&self) -> &[u8] {
        &self.buffer.as_ref()[bucket::ACTIONS..self.len()]
    }
}

fn type_from_wire(t: u8) -> Option<GroupType> {
    Some(match t {
        0 => GroupType::All,
        1 => GroupType::Select,
        2 => GroupType::Indirect,
        3 => GroupType::FastFailover,
        _ => return None,
    })
}

fn type_to_wire(t: GroupType) -> u8 {
    match t {
        GroupType::All => 0,
        GroupType::Select => 1,
        GroupType::Indirect => 2,
        GroupType::FastFailover => 3,
    }
}

/// Decodes a list of buckets; ids are their positions, as OVS numbers OpenFlow 1.3 buckets.
pub fn decode_buckets(version: u8, kind: GroupType, b: &[u8]) -> Result<Vec<Bucket>, OfError> {
    let mut out = Vec::new();
    let mut rest = b;
    while !rest.is_empty() {
        let v = BucketView::new_checked(rest)?;
        let watch_port = match v.watch_port() {
            port::ANY => None,
            p => Some(
                port_from_of(p)
                    .ok_or_else(|| err(code::BAD_WATCH, format!("watch_port {p:#x}")))?,
            ),
        };
        let watch_group = match v.watch_group() {
            group_id::ANY => None,
            g if g <= group_id::MAX => Some(g),
            g => return Err(err(code::BAD_WATCH, format!("watch_group {g:#x}"))),
        };
        let weight = match kind {
            GroupType::Select => v.weight(),
            _ if v.weight() != 0 => {
                return Err(err(code::BAD_BUCKET, "weight outside a select group"))
            }
            _ => 1,
        };
        out.push(Bucket {
            bucket_id: out.len() as u32,
            weight,
            watch_port,
            watch_group,
            actions: decode_actions(version, v.actions())?,
        });
        rest = &rest[v.len()..];
    }
    Ok(out)
}

/// Appends buckets.
pub fn encode_buckets(version: u8, kind: GroupType, buckets: &[Bucket], out: &mut Vec<u8>) {
    for b in buckets {
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        let weight = if kind == GroupType::Select {
            b.weight
        } else {
            0
        };
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(
            &b.watch_port
                .as_ref()
                .map_or(port::ANY, port_to_of)
                .to_be_bytes(),
        );
        out.extend_from_slice(&b.watch_group.unwrap_or(group_id::ANY).to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        encode_actions(version, &b.actions, out);
        let len = out.len() - at;
        patch16(out, at, len);
    }
}

/// Decodes a whole OFPT_GROUP_MOD message (header included).
pub fn decode_group_mod(version: u8, msg: &[u8]) -> Result<GroupModMsg, OfError> {
    let v = GroupModView::new_checked(msg)?;
    let command = match v.command() {
        0 => GroupModCommand::Add,
        1 => GroupModCommand::Modify,
        2 => GroupModCommand::Delete,
        c => return Err(err(code::BAD_COMMAND, format!("group command {c}"))),
    };
    let group_id = v.group_id();
    let valid_id = group_id <= group_id::MAX
        || (command == GroupModCommand::Delete && group_id == group_id::ALL);
    if !valid_id {
        return Err(err(code::INVALID_GROUP, format!("group id {group_id:#x}")));
    }
    let kind = match command {
        // A delete's type and buckets do not count.
        GroupModCommand::Delete => type_from_wire(v.group_type()).unwrap_or_default(),
        _ => type_from_wire(v.group_type())
            .ok_or_else(|| err(code::BAD_TYPE, format!("group type {}", v.group_type())))?,
    };
    let buckets = match command {
        GroupModCommand::Delete => Vec::new(),
        _ => decode_buckets(version, kind, v.buckets())?,
    };
    if kind == GroupType::Indirect && buckets.len() != 1 && command != GroupModCommand::Delete {
        return Err(err(code::BAD_BUCKET, "an indirect group has one bucket"));
    }
    Ok(GroupModMsg {
        command,
        group: GroupSpec {
            group_id,
            kind,
            buckets,
        },
    })
}

/// Appends a whole OFPT_GROUP_MOD message.
pub fn encode_group_mod(version: u8, xid: u32, m: &GroupModMsg, out: &mut Vec<u8>) {
    let at = start(out, version, MsgType::GroupMod, xid);
    let command: u16 = match m.command {
        GroupModCommand::Add => 0,
        GroupModCommand::Modify => 1,
        GroupModCommand::Delete => 2,
    };
    out.extend_from_slice(&command.to_be_bytes());
    out.push(type_to_wire(m.group.kind));
    out.push(0);
    out.extend_from_slice(&m.group.group_id.to_be_bytes());
    if m.command != GroupModCommand::Delete {
        encode_buckets(version, m.group.kind, &m.group.buckets, out);
    }
    finish(out, at);
}

/// Appends one `ofp_group_desc` entry of an OFPMP_GROUP_DESC reply body.
pub fn encode_group_desc_entry(version: u8, g: &GroupSpec, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    out.push(type_to_wire(g.kind));
    out.push(0);
    out.extend_from_slice(&g.group_id.to_be_bytes());
    encode_buckets(version, g.kind, &g.buckets, out);
    let len = out.len() - at;
    patch16(out, at, len);
}
