//! Flow statistics (OFPMP_FLOW) and aggregate statistics (OFPMP_AGGREGATE) bodies.

use super::OfError;
use crate::flow::{FlowStats, Match};

/// The body of an OFPMP_FLOW or OFPMP_AGGREGATE request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStatsRequest {
    /// 0xff: every table.
    pub table_id: u8,
    pub out_port: u32,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub matches: Vec<Match>,
}

/// Decodes the body of a flow (or aggregate) stats request: what follows the 16-byte
/// multipart request header.
pub fn decode_flow_stats_request(_version: u8, _body: &[u8]) -> Result<FlowStatsRequest, OfError> {
    Err(OfError::bad_type())
}

/// Appends one `ofp_flow_stats` entry of a reply body.
pub fn encode_flow_stats_entry(_version: u8, _s: &FlowStats, _out: &mut Vec<u8>) {}

/// Appends an OFPMP_AGGREGATE reply body.
pub fn encode_aggregate_reply(packets: u64, bytes: u64, flows: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&packets.to_be_bytes());
    out.extend_from_slice(&bytes.to_be_bytes());
    out.extend_from_slice(&flows.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
}
