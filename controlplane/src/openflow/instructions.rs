//! Instructions (OpenFlow 1.3/1.4): apply-actions and goto-table carry a flow's actions;
//! clear-actions is accepted (the project keeps no action set); write-actions,
//! write-metadata and meter are refused with the codes OVS would send for them.

use super::actions::{decode_actions, encode_actions};
use super::error::kind;
use super::fields::{be16, patch16};
use super::OfError;
use crate::flow::FlowAction;

/// OFPIT_* types.
pub mod ty {
    pub const GOTO_TABLE: u16 = 1;
    pub const WRITE_METADATA: u16 = 2;
    pub const WRITE_ACTIONS: u16 = 3;
    pub const APPLY_ACTIONS: u16 = 4;
    pub const CLEAR_ACTIONS: u16 = 5;
    pub const METER: u16 = 6;
}

/// OFPBIC_* codes.
pub mod code {
    pub const UNKNOWN_INST: u16 = 0;
    pub const UNSUP_INST: u16 = 1;
    pub const BAD_TABLE_ID: u16 = 2;
    pub const UNSUP_METADATA: u16 = 3;
    pub const BAD_LEN: u16 = 7;
}

fn err(code: u16, detail: impl Into<String>) -> OfError {
    OfError::new(kind::BAD_INSTRUCTION, code, detail)
}

mod field {
    use std::ops::Range;
    pub const TYPE: Range<usize> = 0..2;
    pub const LEN: Range<usize> = 2..4;
}

/// A read view of one instruction.
#[derive(Debug, Clone, Copy)]
pub struct InstructionView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> InstructionView<T> {
    pub fn new_checked(buffer: T) -> Result<Self, OfError> {
        let v = InstructionView { buffer };
        let b = v.buffer.as_ref();
        if b.len() < 8 {
            return Err(err(code::BAD_LEN, "short instruction"));
        }
        let len = v.len();
        if len < 8 || len % 8 != 0 || len > b.len() {
            return Err(err(code::BAD_LEN, format!("instruction length {len}")));
        }
        Ok(v)
    }
    pub fn inst_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::TYPE], 0)
    }
    pub fn len(&self) -> usize {
        usize::from(be16(&self.buffer.as_ref()[field::LEN], 0))
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.len()]
    }
}

/// Decodes a list of instructions (OpenFlow 1.3/1.4) into the flat action list the project
/// uses (apply-actions, then goto_table as [`FlowAction::GotoTable`]). No actions at all is
/// `[Drop]`, as the flow syntax writes it.
pub fn decode_instructions(version: u8, b: &[u8]) -> Result<Vec<FlowAction>, OfError> {
    let mut actions = Vec::new();
    let mut goto = None;
    let mut seen = Vec::new();
    let mut rest = b;
    while !rest.is_empty() {
        let i = InstructionView::new_checked(rest)?;
        let body = i.bytes();
        let t = i.inst_type();
        if seen.contains(&t) {
            // OVS answers with its ONF extension code OFPBIC_DUP_INST; the nearest standard
            // code is an unsupported instruction.
            return Err(err(code::UNSUP_INST, format!("instruction {t} twice")));
        }
        seen.push(t);
        match t {
            ty::APPLY_ACTIONS => actions = decode_actions(version, &body[8..])?,
            ty::GOTO_TABLE => {
                if body.len() != 8 {
                    return Err(err(code::BAD_LEN, "goto_table length"));
                }
                let table = body[4];
                if table > crate::flow::MAX_TABLE {
                    return Err(err(code::BAD_TABLE_ID, format!("goto_table:{table}")));
                }
                goto = Some(table);
            }
            ty::CLEAR_ACTIONS => {
                if body.len() != 8 {
                    return Err(err(code::BAD_LEN, "clear_actions length"));
                }
            }
            ty::WRITE_ACTIONS => {
                // Check the actions, then refuse: the project has no action set.
                decode_actions(version, &body[8..])?;
                return Err(err(code::UNSUP_INST, "write_actions is not supported"));
            }
            ty::WRITE_METADATA => {
                if body.len() != 24 {
                    return Err(err(code::BAD_LEN, "write_metadata length"));
                }
                return Err(err(code::UNSUP_METADATA, "write_metadata is not supported"));
            }
            ty::METER => return Err(err(code::UNSUP_INST, "meters are not supported")),
            t => return Err(err(code::UNKNOWN_INST, format!("instruction type {t}"))),
        }
        rest = &rest[i.len()..];
    }
    if let Some(table) = goto {
        actions.push(FlowAction::GotoTable { table });
    }
    if actions.is_empty() {
        actions.push(FlowAction::Drop);
    }
    Ok(actions)
}

/// Appends instructions for an action list (apply-actions plus goto-table).
pub fn encode_instructions(version: u8, a: &[FlowAction], out: &mut Vec<u8>) {
    let apply: Vec<FlowAction> = a
        .iter()
        .filter(|x| !matches!(x, FlowAction::GotoTable { .. } | FlowAction::Drop))
        .cloned()
        .collect();
    if !apply.is_empty() {
        let at = out.len();
        out.extend_from_slice(&ty::APPLY_ACTIONS.to_be_bytes());
        out.extend_from_slice(&[0; 6]);
        encode_actions(version, &apply, out);
        let len = out.len() - at;
        patch16(out, at + 2, len);
    }
    if let Some(table) = a.iter().find_map(|x| match x {
        FlowAction::GotoTable { table } => Some(*table),
        _ => None,
    }) {
        out.extend_from_slice(&ty::GOTO_TABLE.to_be_bytes());
        out.extend_from_slice(&8u16.to_be_bytes());
        out.push(table);
        out.extend_from_slice(&[0; 3]);
    }
}
