//! OFPT_PACKET_OUT.

use super::OfError;
use crate::flow::FlowAction;

/// An owned OFPT_PACKET_OUT. `in_port` is OpenFlow's 32-bit number (OFPP_CONTROLLER when the
/// packet comes from nowhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketOutMsg {
    pub buffer_id: u32,
    pub in_port: u32,
    pub actions: Vec<FlowAction>,
    pub data: Vec<u8>,
}

/// Decodes a whole OFPT_PACKET_OUT message (header included).
pub fn decode_packet_out(_version: u8, _msg: &[u8]) -> Result<PacketOutMsg, OfError> {
    Err(OfError::bad_type())
}
