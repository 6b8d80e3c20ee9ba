//! The OpenFlow header: version, type, length, transaction id.

use super::OfError;

/// Bytes in the header.
pub const HEADER_LEN: usize = 8;

mod field {
    use std::ops::Range;
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const XID: Range<usize> = 4..8;
}

/// Message types of OpenFlow 1.3 and 1.4 (the two agree on every type used here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    Hello,
    Error,
    EchoRequest,
    EchoReply,
    Experimenter,
    FeaturesRequest,
    FeaturesReply,
    GetConfigRequest,
    GetConfigReply,
    SetConfig,
    PacketIn,
    FlowRemoved,
    PortStatus,
    PacketOut,
    FlowMod,
    GroupMod,
    PortMod,
    TableMod,
    MultipartRequest,
    MultipartReply,
    BarrierRequest,
    BarrierReply,
    RoleRequest,
    RoleReply,
    GetAsyncRequest,
    GetAsyncReply,
    SetAsync,
    MeterMod,
    RoleStatus,
    TableStatus,
    RequestForward,
    BundleControl,
    BundleAddMessage,
    Unknown(u8),
}

impl From<u8> for MsgType {
    fn from(v: u8) -> Self {
        use MsgType::*;
        match v {
            0 => Hello,
            1 => Error,
            2 => EchoRequest,
            3 => EchoReply,
            4 => Experimenter,
            5 => FeaturesRequest,
            6 => FeaturesReply,
            7 => GetConfigRequest,
            8 => GetConfigReply,
            9 => SetConfig,
            10 => PacketIn,
            11 => FlowRemoved,
            12 => PortStatus,
            13 => PacketOut,
            14 => FlowMod,
            15 => GroupMod,
            16 => PortMod,
            17 => TableMod,
            18 => MultipartRequest,
            19 => MultipartReply,
            20 => BarrierRequest,
            21 => BarrierReply,
            24 => RoleRequest,
            25 => RoleReply,
            26 => GetAsyncRequest,
            27 => GetAsyncReply,
            28 => SetAsync,
            29 => MeterMod,
            30 => RoleStatus,
            31 => TableStatus,
            32 => RequestForward,
            33 => BundleControl,
            34 => BundleAddMessage,
            n => Unknown(n),
        }
    }
}

impl From<MsgType> for u8 {
    fn from(t: MsgType) -> u8 {
        use MsgType::*;
        match t {
            Hello => 0,
            Error => 1,
            EchoRequest => 2,
            EchoReply => 3,
            Experimenter => 4,
            FeaturesRequest => 5,
            FeaturesReply => 6,
            GetConfigRequest => 7,
            GetConfigReply => 8,
            SetConfig => 9,
            PacketIn => 10,
            FlowRemoved => 11,
            PortStatus => 12,
            PacketOut => 13,
            FlowMod => 14,
            GroupMod => 15,
            PortMod => 16,
            TableMod => 17,
            MultipartRequest => 18,
            MultipartReply => 19,
            BarrierRequest => 20,
            BarrierReply => 21,
            RoleRequest => 24,
            RoleReply => 25,
            GetAsyncRequest => 26,
            GetAsyncReply => 27,
            SetAsync => 28,
            MeterMod => 29,
            RoleStatus => 30,
            TableStatus => 31,
            RequestForward => 32,
            BundleControl => 33,
            BundleAddMessage => 34,
            Unknown(n) => n,
        }
    }
}

/// A read view of a message's header.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Checks that the header is whole and its length field covers at least the header.
    pub fn new_checked(buffer: T) -> Result<Self, OfError> {
        let h = Header { buffer };
        let b = h.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(OfError::bad_len());
        }
        if (h.length() as usize) < HEADER_LEN {
            return Err(OfError::bad_len());
        }
        Ok(h)
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    pub fn msg_type(&self) -> MsgType {
        MsgType::from(self.buffer.as_ref()[field::TYPE])
    }
    /// The whole message's length, header included.
    pub fn length(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub fn xid(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::XID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

/// An owned header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRepr {
    pub version: u8,
    pub msg_type: MsgType,
    pub length: u16,
    pub xid: u32,
}

impl HeaderRepr {
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>) -> HeaderRepr {
        HeaderRepr {
            version: h.version(),
            msg_type: h.msg_type(),
            length: h.length(),
            xid: h.xid(),
        }
    }

    /// Appends the header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.version);
        out.push(u8::from(self.msg_type));
        out.extend_from_slice(&self.length.to_be_bytes());
        out.extend_from_slice(&self.xid.to_be_bytes());
    }
}

/// Starts a message of `msg_type` in `out` (length patched by [`finish`]); returns where it
/// begins.
pub fn start(out: &mut Vec<u8>, version: u8, msg_type: MsgType, xid: u32) -> usize {
    let at = out.len();
    HeaderRepr {
        version,
        msg_type,
        length: 0,
        xid,
    }
    .emit(out);
    at
}

/// Writes the length of the message that starts at `at` (everything after it in `out`).
/// Messages longer than 65,535 bytes cannot be framed: the caller splits them first.
pub fn finish(out: &mut [u8], at: usize) {
    let len = (out.len() - at).min(u16::MAX as usize) as u16;
    out[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_short_ones_are_refused() {
        let mut out = Vec::new();
        let at = start(&mut out, 4, MsgType::EchoRequest, 0x1234_5678);
        out.extend_from_slice(b"ping");
        finish(&mut out, at);
        let h = Header::new_checked(&out[..]).unwrap();
        assert_eq!(
            HeaderRepr::parse(&h),
            HeaderRepr {
                version: 4,
                msg_type: MsgType::EchoRequest,
                length: 12,
                xid: 0x1234_5678
            }
        );
        assert!(Header::new_checked(&out[..7]).is_err());
        let mut bad = out.clone();
        bad[2..4].copy_from_slice(&4u16.to_be_bytes());
        assert!(Header::new_checked(&bad[..]).is_err());
        for t in 0..=255u8 {
            assert_eq!(u8::from(MsgType::from(t)), t);
        }
    }
}
