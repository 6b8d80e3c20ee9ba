//! OXM matches (`ofp_match` of type OFPMT_OXM), NXM fields carried as experimenter OXMs,
//! actions and instructions: the pieces flow mods, flow stats and monitor updates share.

use super::OfError;
use crate::flow::{FlowAction, Match};

/// Decodes an `ofp_match` (type, length, OXM TLVs, padding to 8) at the start of `b`;
/// returns the matches (canonical order) and the bytes it took, padding included.
pub fn decode_match(_version: u8, _b: &[u8]) -> Result<(Vec<Match>, usize), OfError> {
    Err(OfError::bad_type())
}

/// Appends an `ofp_match`, padded to 8 bytes.
pub fn encode_match(_version: u8, _m: &[Match], _out: &mut Vec<u8>) {}

/// Decodes a list of instructions (OpenFlow 1.3/1.4) into the flat action list the project
/// uses (apply-actions, then goto_table as [`FlowAction::GotoTable`]).
pub fn decode_instructions(_version: u8, _b: &[u8]) -> Result<Vec<FlowAction>, OfError> {
    Err(OfError::bad_type())
}

/// Appends instructions for an action list (apply-actions plus goto-table).
pub fn encode_instructions(_version: u8, _a: &[FlowAction], _out: &mut Vec<u8>) {}

/// Decodes an action list (packet-out, group buckets).
pub fn decode_actions(_version: u8, _b: &[u8]) -> Result<Vec<FlowAction>, OfError> {
    Err(OfError::bad_type())
}

/// Appends an action list.
pub fn encode_actions(_version: u8, _a: &[FlowAction], _out: &mut Vec<u8>) {}
