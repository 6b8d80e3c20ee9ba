//! OFPT_PACKET_OUT (OpenFlow 1.3 and 1.4 share the layout).

use super::actions::{decode_actions, encode_actions};
use super::fields::{be16, be32};
use super::header::{finish, start, Header, MsgType};
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

mod field {
    use std::ops::Range;
    pub const BUFFER_ID: Range<usize> = 8..12;
    pub const IN_PORT: Range<usize> = 12..16;
    pub const ACTIONS_LEN: Range<usize> = 16..18;
    pub const ACTIONS: usize = 24;
}

/// A read view of an OFPT_PACKET_OUT.
#[derive(Debug, Clone, Copy)]
pub struct PacketOutView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PacketOutView<T> {
    /// Checks the header, the fixed part and that the actions fit in the message.
    pub fn new_checked(buffer: T) -> Result<Self, OfError> {
        let h = Header::new_checked(buffer.as_ref())?;
        let len = usize::from(h.length());
        if buffer.as_ref().len() < len || len < field::ACTIONS {
            return Err(OfError::bad_len());
        }
        let v = PacketOutView { buffer };
        if field::ACTIONS + v.actions_len() > len {
            return Err(OfError::bad_len());
        }
        Ok(v)
    }
    fn b(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..usize::from(be16(b, 2))]
    }
    pub fn buffer_id(&self) -> u32 {
        be32(&self.b()[field::BUFFER_ID], 0)
    }
    pub fn in_port(&self) -> u32 {
        be32(&self.b()[field::IN_PORT], 0)
    }
    pub fn actions_len(&self) -> usize {
        usize::from(be16(&self.b()[field::ACTIONS_LEN], 0))
    }
    pub fn actions(&self) -> &[u8] {
        &self.b()[field::ACTIONS..field::ACTIONS + self.actions_len()]
    }
    pub fn data(&self) -> &[u8] {
        &self.b()[field::ACTIONS + self.actions_len()..]
    }
}

/// Decodes a whole OFPT_PACKET_OUT message (header included).
pub fn decode_packet_out(version: u8, msg: &[u8]) -> Result<PacketOutMsg, OfError> {
    let v = PacketOutView::new_checked(msg)?;
    let in_port = v.in_port();
    let valid = in_port <= super::port::MAX
        || in_port == super::port::CONTROLLER
        || in_port == super::port::LOCAL;
    if !valid || in_port == 0 {
        return Err(OfError::bad_port());
    }
    Ok(PacketOutMsg {
        buffer_id: v.buffer_id(),
        in_port,
        actions: decode_actions(version, v.actions())?,
        data: v.data().to_vec(),
    })
}

/// Appends a whole OFPT_PACKET_OUT message.
pub fn encode_packet_out(version: u8, xid: u32, m: &PacketOutMsg, out: &mut Vec<u8>) {
    let at = start(out, version, MsgType::PacketOut, xid);
    out.extend_from_slice(&m.buffer_id.to_be_bytes());
    out.extend_from_slice(&m.in_port.to_be_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0; 8]);
    let actions_at = out.len();
    encode_actions(version, &m.actions, out);
    let n = out.len() - actions_at;
    super::fields::patch16(out, len_at, n);
    out.extend_from_slice(&m.data);
    finish(out, at);
}
