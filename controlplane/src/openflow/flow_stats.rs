//! Flow statistics (OFPMP_FLOW) and aggregate statistics (OFPMP_AGGREGATE) bodies.

use super::fields::{be32, be64, patch16};
use super::oxm::{decode_match, encode_instructions, encode_match};
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

mod field {
    use std::ops::Range;
    pub const TABLE_ID: usize = 0;
    pub const OUT_PORT: Range<usize> = 4..8;
    pub const OUT_GROUP: Range<usize> = 8..12;
    pub const COOKIE: Range<usize> = 16..24;
    pub const COOKIE_MASK: Range<usize> = 24..32;
    pub const MATCH: usize = 32;
}

/// A read view of a flow stats request body.
#[derive(Debug, Clone, Copy)]
pub struct FlowStatsRequestView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FlowStatsRequestView<T> {
    pub fn new_checked(buffer: T) -> Result<Self, OfError> {
        if buffer.as_ref().len() < field::MATCH + 4 {
            return Err(OfError::bad_len());
        }
        Ok(FlowStatsRequestView { buffer })
    }
    pub fn table_id(&self) -> u8 {
        self.buffer.as_ref()[field::TABLE_ID]
    }
    pub fn out_port(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::OUT_PORT], 0)
    }
    pub fn out_group(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::OUT_GROUP], 0)
    }
    pub fn cookie(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::COOKIE], 0)
    }
    pub fn cookie_mask(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::COOKIE_MASK], 0)
    }
    pub fn match_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[field::MATCH..]
    }
}

/// Decodes the body of a flow (or aggregate) stats request: what follows the 16-byte
/// multipart request header.
pub fn decode_flow_stats_request(version: u8, body: &[u8]) -> Result<FlowStatsRequest, OfError> {
    let v = FlowStatsRequestView::new_checked(body)?;
    let (matches, used) = decode_match(version, v.match_bytes())?;
    if used != v.match_bytes().len() {
        return Err(OfError::bad_len());
    }
    Ok(FlowStatsRequest {
        table_id: v.table_id(),
        out_port: v.out_port(),
        out_group: v.out_group(),
        cookie: v.cookie(),
        cookie_mask: v.cookie_mask(),
        matches,
    })
}

/// Appends a flow stats request body (what ovs-ofctl dump-flows sends).
pub fn encode_flow_stats_request(version: u8, r: &FlowStatsRequest, out: &mut Vec<u8>) {
    out.push(r.table_id);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&r.out_port.to_be_bytes());
    out.extend_from_slice(&r.out_group.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&r.cookie.to_be_bytes());
    out.extend_from_slice(&r.cookie_mask.to_be_bytes());
    encode_match(version, &r.matches, out);
}

/// Appends one `ofp_flow_stats` entry of a reply body.
pub fn encode_flow_stats_entry(version: u8, s: &FlowStats, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    out.push(s.spec.table);
    out.push(0);
    let secs = s.duration_ms / 1000;
    let nsecs = (s.duration_ms % 1000) * 1_000_000;
    out.extend_from_slice(&(secs.min(u64::from(u32::MAX)) as u32).to_be_bytes());
    out.extend_from_slice(&(nsecs as u32).to_be_bytes());
    out.extend_from_slice(&s.spec.priority.to_be_bytes());
    out.extend_from_slice(&s.spec.idle_timeout.to_be_bytes());
    out.extend_from_slice(&s.spec.hard_timeout.to_be_bytes());
    // flags, then padding (1.3) or importance and padding (1.4): none kept.
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&s.spec.cookie.to_be_bytes());
    out.extend_from_slice(&s.n_packets.to_be_bytes());
    out.extend_from_slice(&s.n_bytes.to_be_bytes());
    encode_match(version, &s.spec.matches, out);
    encode_instructions(version, &s.spec.actions, out);
    let len = out.len() - at;
    patch16(out, at, len);
}

/// Appends an OFPMP_AGGREGATE reply body.
pub fn encode_aggregate_reply(packets: u64, bytes: u64, flows: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&packets.to_be_bytes());
    out.extend_from_slice(&bytes.to_be_bytes());
    out.extend_from_slice(&flows.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
}
