//! IPv6 (RFC 8200) fixed headers. Extension headers are not walked: `next_header` is whatever
//! the fixed header says, and the payload starts right after it.

use std::net::Ipv6Addr;

use super::{read_u16, read_u32, write_u16, write_u32, Error, IpProtocol, Result};

/// Field ranges of the IPv6 fixed header.
pub mod field {
    use crate::wire::Field;

    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the IPv6 fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Length of the fixed header (40).
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks: at least 40 bytes, version 6, `40 + payload_len <= buffer length` (trailing
    /// padding allowed).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN
            || self.version() != 6
            || HEADER_LEN + usize::from(self.payload_len()) > len
        {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn ver_tc_flow(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::VER_TC_FLOW])
    }

    /// The version field (6).
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// The traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & FLOW_LABEL_MASK
    }

    /// The payload length field (extension headers included).
    pub fn payload_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The next header field.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr_bytes(&self.buffer.as_ref()[field::SRC_ADDR]))
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr_bytes(&self.buffer.as_ref()[field::DST_ADDR]))
    }

    /// The payload: `payload_len` bytes after the fixed header.
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }
}

fn addr_bytes(data: &[u8]) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(data);
    bytes
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// The payload with the lifetime of the underlying buffer, so it can outlive the view.
    pub fn into_payload(self) -> &'a [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        let data: &'a [u8] = self.buffer.as_ref();
        &data[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_ver_tc_flow(&mut self, mask: u32, value: u32) {
        let raw = self.ver_tc_flow();
        write_u32(
            &mut self.buffer.as_mut()[field::VER_TC_FLOW],
            (raw & !mask) | (value & mask),
        );
    }

    /// Sets the version nibble.
    pub fn set_version(&mut self, value: u8) {
        self.set_ver_tc_flow(0xf000_0000, u32::from(value) << 28);
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, value: u8) {
        self.set_ver_tc_flow(0x0ff0_0000, u32::from(value) << 20);
    }

    /// Sets the flow label (the low 20 bits of `value`).
    pub fn set_flow_label(&mut self, value: u32) {
        self.set_ver_tc_flow(FLOW_LABEL_MASK, value);
    }

    /// Sets the payload length; keep it within the buffer, or `payload` will panic.
    pub fn set_payload_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Sets the next header field.
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.into();
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv6Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An IPv6 fixed header as values (traffic class and flow label zero when emitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: IpProtocol,
    pub payload_len: usize,
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Reads the fixed header.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Ipv6Repr> {
        packet.check_len()?;
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
        })
    }

    /// The header length this repr emits (40).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte fixed header.
    ///
    /// # Panics
    /// If the buffer is shorter than 40 bytes. `payload_len` must be at most 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        write_u32(&mut packet.buffer.as_mut()[field::VER_TC_FLOW], 6 << 28);
        packet.set_payload_len(self.payload_len as u16);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

/// The IPv6 Fragment extension header (RFC 8200 section 4.5), read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6FragHeader<T: AsRef<[u8]>> {
    buffer: T,
}

/// Field ranges of the Fragment header.
pub mod frag_field {
    use crate::wire::Field;

    pub const NXT_HDR: usize = 0;
    /// Fragment offset (13 bits, in 8-byte units), 2 reserved bits, the M flag.
    pub const OFFSET_FLAGS: Field = 2..4;
    pub const IDENT: Field = 4..8;
}

impl<T: AsRef<[u8]>> Ipv6FragHeader<T> {
    /// The next-header value that announces a Fragment header.
    pub const PROTOCOL: u8 = 44;

    /// Wraps a buffer holding at least the header's 8 bytes.
    pub fn new_checked(buffer: T) -> Result<Ipv6FragHeader<T>> {
        if buffer.as_ref().len() < frag_field::IDENT.end {
            return Err(Error);
        }
        Ok(Ipv6FragHeader { buffer })
    }

    /// The offset of this fragment's data, in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[frag_field::OFFSET_FLAGS]) >> 3
    }

    /// More fragments follow.
    pub fn more_frags(&self) -> bool {
        read_u16(&self.buffer.as_ref()[frag_field::OFFSET_FLAGS]) & 1 == 1
    }

    /// The protocol of the fragmented payload.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[frag_field::NXT_HDR]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static PACKET_BYTES: [u8; 52] = [
        0x61, 0x23, 0x45, 0x67, 0x00, 0x0c, 0x11, 0x40, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x02, 0x00,
        0x0c, 0x02, 0x4e, 0xff, 0xff, 0xff, 0xff,
    ];

    static PAYLOAD_BYTES: [u8; 12] = [
        0x00, 0x01, 0x00, 0x02, 0x00, 0x0c, 0x02, 0x4e, 0xff, 0xff, 0xff, 0xff,
    ];

    fn src() -> Ipv6Addr {
        "fe80::1".parse().unwrap()
    }

    fn dst() -> Ipv6Addr {
        "ff02::1".parse().unwrap()
    }

    fn repr() -> Ipv6Repr {
        Ipv6Repr {
            src_addr: src(),
            dst_addr: dst(),
            next_header: IpProtocol::Udp,
            payload_len: 12,
            hop_limit: 64,
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Ipv6Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0x12);
        assert_eq!(packet.flow_label(), 0x34567);
        assert_eq!(packet.payload_len(), 12);
        assert_eq!(packet.next_header(), IpProtocol::Udp);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.src_addr(), src());
        assert_eq!(packet.dst_addr(), dst());
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 52];
        let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(6);
        packet.set_traffic_class(0x12);
        packet.set_flow_label(0x34567);
        packet.set_payload_len(12);
        packet.set_next_header(IpProtocol::Udp);
        packet.set_hop_limit(64);
        packet.set_src_addr(src());
        packet.set_dst_addr(dst());
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(packet.into_inner(), &PACKET_BYTES[..]);
    }

    #[test]
    fn parse_repr() {
        let packet = Ipv6Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&packet), Ok(repr()));
    }

    #[test]
    fn emit_repr() {
        let mut bytes = [0xa5u8; 52];
        assert_eq!(repr().buffer_len(), 40);
        let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        let mut expected = PACKET_BYTES;
        expected[..4].copy_from_slice(&[0x60, 0, 0, 0]); // emit writes TC and flow label 0
        assert_eq!(bytes, expected);
    }

    #[test]
    fn truncated() {
        for len in 0..PACKET_BYTES.len() {
            assert_eq!(
                Ipv6Packet::new_checked(&PACKET_BYTES[..len]),
                Err(Error),
                "len {len}"
            );
            assert!(Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&PACKET_BYTES[..len])).is_err());
        }
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x41; // version 4
        assert_eq!(Ipv6Packet::new_checked(&bytes[..]), Err(Error));
        // Trailing bytes beyond payload_len are allowed and excluded from the payload.
        let mut padded = [0u8; 60];
        padded[..52].copy_from_slice(&PACKET_BYTES);
        let packet = Ipv6Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn matches_etherparse() {
        let sliced = etherparse::Ipv6HeaderSlice::from_slice(&PACKET_BYTES).unwrap();
        let packet = Ipv6Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(sliced.traffic_class(), packet.traffic_class());
        assert_eq!(sliced.flow_label().value(), packet.flow_label());
        assert_eq!(sliced.payload_length(), packet.payload_len());
        assert_eq!(sliced.next_header().0, u8::from(packet.next_header()));
        assert_eq!(sliced.hop_limit(), packet.hop_limit());
        assert_eq!(sliced.source_addr(), packet.src_addr());
        assert_eq!(sliced.destination_addr(), packet.dst_addr());
    }
}
