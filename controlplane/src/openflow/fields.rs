//! The fields OpenFlow names on the wire (OXM basic fields and Nicira NXM fields), their
//! 32-bit headers and widths, and the byte helpers the codec's views share.

use super::OfError;
use crate::flow::{Field, FieldRange};

/// OXM class of the OpenFlow basic fields.
pub const OXM_BASIC: u16 = 0x8000;
/// NXM class 0 (`NXM_OF_*`).
pub const NXM_0: u16 = 0x0000;
/// NXM class 1 (`NXM_NX_*`).
pub const NXM_1: u16 = 0x0001;
/// Experimenter OXM class (an 8-byte header: the experimenter id follows).
pub const OXM_EXPERIMENTER: u16 = 0xffff;

/// A field as the wire names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mf {
    /// OXM_OF_IN_PORT: 32-bit OpenFlow 1.1+ port number.
    InPort,
    /// NXM_OF_IN_PORT: 16-bit OpenFlow 1.0 port number.
    NxInPort,
    Metadata,
    EthDst,
    EthSrc,
    EthType,
    VlanTci,
    VlanVid,
    VlanPcp,
    IpDscp,
    IpEcn,
    IpTos,
    IpProto,
    Ipv4Src,
    Ipv4Dst,
    TcpSrc,
    TcpDst,
    UdpSrc,
    UdpDst,
    SctpSrc,
    SctpDst,
    Icmpv4Type,
    Icmpv4Code,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    Ipv6Src,
    Ipv6Dst,
    Icmpv6Type,
    Icmpv6Code,
    NdTarget,
    TunId,
    TunSrc,
    TunDst,
    TunIpv6Src,
    TunIpv6Dst,
    Reg(u8),
    PktMark,
    IpFrag,
    IpTtl,
    ConjId,
}

/// (field, class, field number, bytes). A field may appear twice (OXM and NXM); the first
/// entry is the header OVS writes in OpenFlow 1.3/1.4.
const TABLE: &[(Mf, u16, u8, u8)] = &[
    (Mf::InPort, OXM_BASIC, 0, 4),
    (Mf::NxInPort, NXM_0, 0, 2),
    (Mf::Metadata, OXM_BASIC, 2, 8),
    (Mf::EthDst, OXM_BASIC, 3, 6),
    (Mf::EthDst, NXM_0, 1, 6),
    (Mf::EthSrc, OXM_BASIC, 4, 6),
    (Mf::EthSrc, NXM_0, 2, 6),
    (Mf::EthType, OXM_BASIC, 5, 2),
    (Mf::EthType, NXM_0, 3, 2),
    (Mf::VlanTci, NXM_0, 4, 2),
    (Mf::VlanVid, OXM_BASIC, 6, 2),
    (Mf::VlanPcp, OXM_BASIC, 7, 1),
    (Mf::IpDscp, OXM_BASIC, 8, 1),
    (Mf::IpEcn, OXM_BASIC, 9, 1),
    (Mf::IpEcn, NXM_1, 28, 1),
    (Mf::IpTos, NXM_0, 5, 1),
    (Mf::IpProto, OXM_BASIC, 10, 1),
    (Mf::IpProto, NXM_0, 6, 1),
    (Mf::Ipv4Src, OXM_BASIC, 11, 4),
    (Mf::Ipv4Src, NXM_0, 7, 4),
    (Mf::Ipv4Dst, OXM_BASIC, 12, 4),
    (Mf::Ipv4Dst, NXM_0, 8, 4),
    (Mf::TcpSrc, OXM_BASIC, 13, 2),
    (Mf::TcpSrc, NXM_0, 9, 2),
    (Mf::TcpDst, OXM_BASIC, 14, 2),
    (Mf::TcpDst, NXM_0, 10, 2),
    (Mf::UdpSrc, OXM_BASIC, 15, 2),
    (Mf::UdpSrc, NXM_0, 11, 2),
    (Mf::UdpDst, OXM_BASIC, 16, 2),
    (Mf::UdpDst, NXM_0, 12, 2),
    (Mf::SctpSrc, OXM_BASIC, 17, 2),
    (Mf::SctpDst, OXM_BASIC, 18, 2),
    (Mf::Icmpv4Type, OXM_BASIC, 19, 1),
    (Mf::Icmpv4Type, NXM_0, 13, 1),
    (Mf::Icmpv4Code, OXM_BASIC, 20, 1),
    (Mf::Icmpv4Code, NXM_0, 14, 1),
    (Mf::ArpOp, OXM_BASIC, 21, 2),
    (Mf::ArpOp, NXM_0, 15, 2),
    (Mf::ArpSpa, OXM_BASIC, 22, 4),
    (Mf::ArpSpa, NXM_0, 16, 4),
    (Mf::ArpTpa, OXM_BASIC, 23, 4),
    (Mf::ArpTpa, NXM_0, 17, 4),
    (Mf::ArpSha, OXM_BASIC, 24, 6),
    (Mf::ArpSha, NXM_1, 17, 6),
    (Mf::ArpTha, OXM_BASIC, 25, 6),
    (Mf::ArpTha, NXM_1, 18, 6),
    (Mf::Ipv6Src, OXM_BASIC, 26, 16),
    (Mf::Ipv6Src, NXM_1, 19, 16),
    (Mf::Ipv6Dst, OXM_BASIC, 27, 16),
    (Mf::Ipv6Dst, NXM_1, 20, 16),
    (Mf::Icmpv6Type, OXM_BASIC, 29, 1),
    (Mf::Icmpv6Type, NXM_1, 21, 1),
    (Mf::Icmpv6Code, OXM_BASIC, 30, 1),
    (Mf::Icmpv6Code, NXM_1, 22, 1),
    (Mf::NdTarget, OXM_BASIC, 31, 16),
    (Mf::NdTarget, NXM_1, 23, 16),
    (Mf::TunId, OXM_BASIC, 38, 8),
    (Mf::TunId, NXM_1, 16, 8),
    (Mf::Reg(0), NXM_1, 0, 4),
    (Mf::Reg(1), NXM_1, 1, 4),
    (Mf::Reg(2), NXM_1, 2, 4),
    (Mf::Reg(3), NXM_1, 3, 4),
    (Mf::Reg(4), NXM_1, 4, 4),
    (Mf::Reg(5), NXM_1, 5, 4),
    (Mf::Reg(6), NXM_1, 6, 4),
    (Mf::Reg(7), NXM_1, 7, 4),
    (Mf::IpFrag, NXM_1, 26, 1),
    (Mf::IpTtl, NXM_1, 29, 1),
    (Mf::TunSrc, NXM_1, 31, 4),
    (Mf::TunDst, NXM_1, 32, 4),
    (Mf::PktMark, NXM_1, 33, 4),
    (Mf::ConjId, NXM_1, 37, 4),
    (Mf::TunIpv6Src, NXM_1, 109, 16),
    (Mf::TunIpv6Dst, NXM_1, 110, 16),
];

/// A field's 32-bit header: class, field number, has-mask bit, payload length.
pub fn header(class: u16, field: u8, hasmask: bool, len: u8) -> u32 {
    (u32::from(class) << 16)
        | (u32::from(field & 0x7f) << 9)
        | (u32::from(hasmask) << 8)
        | u32::from(len)
}

impl Mf {
    /// Looks a header up (the has-mask bit and length ignored).
    pub fn from_header(h: u32) -> Option<Mf> {
        let class = (h >> 16) as u16;
        let field = ((h >> 9) & 0x7f) as u8;
        TABLE
            .iter()
            .find(|e| e.1 == class && e.2 == field)
            .map(|e| e.0)
    }
    fn entry(self) -> (Mf, u16, u8, u8) {
        // Every Mf has an entry.
        *TABLE.iter().find(|e| e.0 == self).unwrap_or(&TABLE[0])
    }
    /// Payload bytes (the value alone).
    pub fn bytes(self) -> usize {
        usize::from(self.entry().3)
    }
    /// Width in bits (what a subfield may address).
    pub fn bits(self) -> u32 {
        match self {
            Mf::VlanVid => 13,
            Mf::VlanPcp => 3,
            Mf::IpDscp => 6,
            Mf::IpEcn | Mf::IpFrag => 2,
            Mf::NxInPort => 16,
            m => m.bytes() as u32 * 8,
        }
    }
    /// The header OVS writes in OpenFlow 1.3/1.4 (OXM where the field has one, else NXM).
    pub fn header(self, hasmask: bool) -> u32 {
        let (_, class, field, bytes) = self.entry();
        header(
            class,
            field,
            hasmask,
            if hasmask { bytes * 2 } else { bytes },
        )
    }
    /// The NXM header (OpenFlow 1.0 style) Nicira actions use for subfields: NXM where the
    /// field has one, else its OXM.
    pub fn nxm_header(self) -> u32 {
        let (_, class, field, bytes) = TABLE
            .iter()
            .find(|e| e.0 == self && e.1 != OXM_BASIC)
            .copied()
            .unwrap_or_else(|| self.entry());
        header(class, field, false, bytes)
    }

    /// The project's field for a wire field an action writes or reads.
    pub fn to_field(self) -> Option<Field> {
        Some(match self {
            Mf::InPort | Mf::NxInPort => Field::InPort,
            Mf::EthDst => Field::DlDst,
            Mf::EthSrc => Field::DlSrc,
            Mf::EthType => Field::DlType,
            Mf::VlanTci => Field::VlanTci,
            Mf::VlanVid => Field::VlanVid,
            Mf::VlanPcp => Field::VlanPcp,
            Mf::IpTos => Field::NwTos,
            Mf::IpProto => Field::NwProto,
            Mf::Ipv4Src => Field::NwSrc,
            Mf::Ipv4Dst => Field::NwDst,
            Mf::TcpSrc | Mf::UdpSrc | Mf::SctpSrc => Field::TpSrc,
            Mf::TcpDst | Mf::UdpDst | Mf::SctpDst => Field::TpDst,
            Mf::TunId => Field::TunId,
            Mf::TunSrc => Field::TunSrc,
            Mf::TunDst => Field::TunDst,
            Mf::Reg(i) => Field::Reg(i),
            Mf::PktMark => Field::PktMark,
            Mf::IpTtl => Field::NwTtl,
            _ => return None,
        })
    }

    /// The wire field for a project field (transport ports as TCP's).
    pub fn from_field(f: Field) -> Mf {
        match f {
            Field::DlSrc => Mf::EthSrc,
            Field::DlDst => Mf::EthDst,
            Field::NwSrc => Mf::Ipv4Src,
            Field::NwDst => Mf::Ipv4Dst,
            Field::NwTtl => Mf::IpTtl,
            Field::TpSrc => Mf::TcpSrc,
            Field::TpDst => Mf::TcpDst,
            Field::TunId => Mf::TunId,
            Field::TunSrc => Mf::TunSrc,
            Field::TunDst => Mf::TunDst,
            Field::Reg(i) => Mf::Reg(i.min(7)),
            Field::InPort => Mf::NxInPort,
            Field::VlanTci => Mf::VlanTci,
            Field::VlanVid => Mf::VlanVid,
            Field::VlanPcp => Mf::VlanPcp,
            Field::PktMark => Mf::PktMark,
            Field::NwTos => Mf::IpTos,
            Field::DlType => Mf::EthType,
            Field::NwProto => Mf::IpProto,
        }
    }
}

/// A subfield as Nicira actions carry it: an NXM header and a bit offset; `n_bits` from the
/// action. Checks that the bits lie inside the field.
pub fn subfield(hdr: u32, ofs: u32, n_bits: u32) -> Result<FieldRange, OfError> {
    let bad = || OfError::new(super::error::kind::BAD_ACTION, 5, "bad subfield");
    let mf = Mf::from_header(hdr).ok_or_else(bad)?;
    let field = mf.to_field().ok_or_else(bad)?;
    if n_bits == 0 || ofs + n_bits > field.bits() {
        return Err(bad());
    }
    Ok(FieldRange {
        field,
        start: ofs as u8,
        end: (ofs + n_bits - 1) as u8,
    })
}

/// Big-endian readers over byte slices the caller has checked the length of.
pub fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
pub fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}
/// Up to 16 big-endian bytes as a number.
pub fn be_n(b: &[u8]) -> u128 {
    b.iter().fold(0u128, |acc, &x| (acc << 8) | u128::from(x))
}
/// The low `n` bytes of `v`, big-endian.
pub fn put_n(out: &mut Vec<u8>, v: u128, n: usize) {
    let bytes = v.to_be_bytes();
    out.extend_from_slice(&bytes[16 - n.min(16)..]);
}
/// Pads `out` with zeros so that the part from `from` on is a multiple of 8 bytes.
pub fn pad8(out: &mut Vec<u8>, from: usize) {
    while (out.len() - from) % 8 != 0 {
        out.push(0);
    }
}
/// Writes a u16 length at `at`.
pub fn patch16(out: &mut [u8], at: usize, v: usize) {
    let v = v.min(usize::from(u16::MAX)) as u16;
    out[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
/// `b[range]` if it is inside `b`.
pub fn slice(b: &[u8], from: usize, len: usize) -> Option<&[u8]> {
    b.get(from..from.checked_add(len)?)
}
