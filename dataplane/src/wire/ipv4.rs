//! IPv4 (RFC 791) headers, and the IP protocol numbers shared with IPv6.

use core::fmt;
use std::net::Ipv4Addr;

use super::{checksum, read_u16, write_u16, Error, Result};

/// An IP protocol number (IPv4 protocol field, IPv6 next header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpProtocol {
    /// 1
    Icmp,
    /// 6
    Tcp,
    /// 17
    Udp,
    /// 58
    Icmpv6,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(value: u8) -> Self {
        match value {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            58 => IpProtocol::Icmpv6,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(value: IpProtocol) -> Self {
        match value {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::Icmp => f.write_str("ICMP"),
            IpProtocol::Tcp => f.write_str("TCP"),
            IpProtocol::Udp => f.write_str("UDP"),
            IpProtocol::Icmpv6 => f.write_str("ICMPv6"),
            IpProtocol::Unknown(v) => write!(f, "protocol {v}"),
        }
    }
}

/// Field ranges of the IPv4 header.
pub mod field {
    use crate::wire::Field;

    /// Version (high nibble) and IHL, the header length in 32-bit words (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP (high six bits) and ECN.
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    /// Flags (reserved, DF, MF) and the fragment offset in 8-byte units.
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of a header without options (20).
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks: at least 20 bytes, version 4, `20 <= header_len <= total_len <= buffer length`.
    ///
    /// Bytes after `total_len` are allowed: Ethernet pads short frames to 60 bytes.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || self.version() != 4 {
            return Err(Error);
        }
        let header_len = self.header_len();
        let total_len = usize::from(self.total_len());
        if header_len < HEADER_LEN || header_len > len || total_len < header_len || total_len > len
        {
            return Err(Error);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes, options included (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole second byte: DSCP and ECN (the old type-of-service byte).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// The total length field: header plus payload.
    pub fn total_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::IDENT])
    }

    /// The don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_DF != 0
    }

    /// The more-fragments flag.
    pub fn more_frags(&self) -> bool {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & FLAG_MF != 0
    }

    /// The fragment offset **in bytes** (the field times 8).
    pub fn frag_offset(&self) -> u16 {
        (read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & FRAG_OFFSET_MASK) << 3
    }

    /// A fragment: MF set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// The time-to-live field.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol field.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(super::read_u32(&self.buffer.as_ref()[field::SRC_ADDR]))
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(super::read_u32(&self.buffer.as_ref()[field::DST_ADDR]))
    }

    /// The header checksum is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0
    }

    /// The options, between the fixed header and `header_len`.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The payload: from `header_len` to `total_len` (padding after `total_len` excluded).
    pub fn payload(&self) -> &[u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The payload with the lifetime of the underlying buffer, so it can outlive the view.
    pub fn into_payload(self) -> &'a [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        let data: &'a [u8] = self.buffer.as_ref();
        &data[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version nibble.
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, 20 to 60).
    pub fn set_header_len(&mut self, value: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP/ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length; keep it within the buffer, or `payload` will panic.
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::IDENT], value);
    }

    fn set_flg_off(&mut self, mask: u16, value: u16) {
        let raw = read_u16(&self.buffer.as_ref()[field::FLG_OFF]);
        write_u16(
            &mut self.buffer.as_mut()[field::FLG_OFF],
            (raw & !mask) | (value & mask),
        );
    }

    /// Clears the flags and the fragment offset.
    pub fn clear_flags(&mut self) {
        write_u16(&mut self.buffer.as_mut()[field::FLG_OFF], 0);
    }

    /// Sets or clears the don't-fragment flag.
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flg_off(FLAG_DF, if value { FLAG_DF } else { 0 });
    }

    /// Sets or clears the more-fragments flag.
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flg_off(FLAG_MF, if value { FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset, given **in bytes** (a multiple of 8).
    pub fn set_frag_offset(&mut self, value: u16) {
        self.set_flg_off(FRAG_OFFSET_MASK, value >> 3);
    }

    /// Sets the time-to-live field (the checksum is not updated; see `decrement_ttl`).
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol field.
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Computes the header checksum and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let value = checksum::data(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(value);
    }

    /// Lowers the TTL by one and patches the header checksum incrementally (RFC 1624), as a
    /// router does (RFC 1812 section 5.3.1). A TTL of 0 is left alone: the caller should have
    /// dropped the packet (and sent Time Exceeded) when the TTL was 1 or less.
    pub fn decrement_ttl(&mut self) {
        let ttl = self.hop_limit();
        if ttl == 0 {
            return;
        }
        // TTL and protocol form one aligned 16-bit word of the header.
        let proto = self.buffer.as_ref()[field::PROTOCOL];
        let old = u16::from_be_bytes([ttl, proto]);
        let new = u16::from_be_bytes([ttl - 1, proto]);
        let value = checksum::update16(self.checksum(), old, new);
        self.set_hop_limit(ttl - 1);
        self.set_checksum(value);
    }

    /// The payload (from `header_len` to `total_len`), mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An IPv4 header as values (no options, DSCP/ECN zero, never a fragment when emitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub next_header: IpProtocol,
    /// Length of the payload (`total_len - header_len`).
    pub payload_len: usize,
    pub hop_limit: u8,
    pub dont_frag: bool,
    pub ident: u16,
}

impl Ipv4Repr {
    /// Reads a header. Only reads: options are skipped, and the checksum, the fragment fields
    /// and DSCP/ECN are left to the caller (`verify_checksum`, `is_fragment`).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            hop_limit: packet.hop_limit(),
            dont_frag: packet.dont_frag(),
            ident: packet.ident(),
        })
    }

    /// The header length this repr emits (20).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with `total_len = 20 + payload_len` and a filled checksum.
    ///
    /// # Panics
    /// If the buffer is shorter than 20 bytes. `payload_len` must be at most 65515.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp_ecn(0);
        packet.set_total_len((HEADER_LEN + self.payload_len) as u16);
        packet.set_ident(self.ident);
        packet.clear_flags();
        packet.set_dont_frag(self.dont_frag);
        packet.set_hop_limit(self.hop_limit);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::Rng;

    static PACKET_BYTES: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, 0x01, 0x02, 0x40, 0x00, 0x40, 0x11, 0x23, 0xcf, 0x0a, 0x01, 0x01,
        0x01, 0x0a, 0x01, 0x01, 0x02, 0xaa, 0x00, 0x00, 0xff,
    ];

    static PAYLOAD_BYTES: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 1, 1, 1),
            dst_addr: Ipv4Addr::new(10, 1, 1, 2),
            next_header: IpProtocol::Udp,
            payload_len: 4,
            hop_limit: 64,
            dont_frag: true,
            ident: 0x0102,
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Ipv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp_ecn(), 0);
        assert_eq!(packet.total_len(), 24);
        assert_eq!(packet.ident(), 0x0102);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.next_header(), IpProtocol::Udp);
        assert_eq!(packet.checksum(), 0x23cf);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(10, 1, 1, 2));
        assert!(packet.verify_checksum());
        assert!(packet.options().is_empty());
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 24];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_dscp_ecn(0);
        packet.set_total_len(24);
        packet.set_ident(0x0102);
        packet.clear_flags();
        packet.set_dont_frag(true);
        packet.set_more_frags(false);
        packet.set_frag_offset(0);
        packet.set_hop_limit(64);
        packet.set_next_header(IpProtocol::Udp);
        packet.set_src_addr(Ipv4Addr::new(10, 1, 1, 1));
        packet.set_dst_addr(Ipv4Addr::new(10, 1, 1, 2));
        packet.fill_checksum();
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(packet.into_inner(), &PACKET_BYTES[..]);
    }

    #[test]
    fn parse_repr() {
        let packet = Ipv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&packet), Ok(repr()));
    }

    #[test]
    fn emit_repr() {
        let mut bytes = [0xa5u8; 24];
        assert_eq!(repr().buffer_len(), 20);
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn truncated() {
        for len in 0..PACKET_BYTES.len() {
            // Shorter than 20 bytes, or than total_len (24): both are errors.
            assert_eq!(
                Ipv4Packet::new_checked(&PACKET_BYTES[..len]),
                Err(Error),
                "len {len}"
            );
            assert!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&PACKET_BYTES[..len])).is_err());
        }
    }

    #[test]
    fn trailing_padding_allowed() {
        // Ethernet pads to 60 bytes: 46 bytes of IP payload area, 24 of them the packet.
        let mut padded = [0u8; 46];
        padded[..24].copy_from_slice(&PACKET_BYTES);
        let packet = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert_eq!(Ipv4Repr::parse(&packet), Ok(repr()));
    }

    #[test]
    fn malformed_headers() {
        // (byte, value): version 6; IHL 4; total_len 19 < header_len; total_len 25 > buffer;
        // IHL 7 (a 28-byte header) > total_len and buffer.
        for (at, value) in [(0, 0x65), (0, 0x44), (3, 0x13), (3, 0x19), (0, 0x47)] {
            let mut bytes = PACKET_BYTES;
            bytes[at] = value;
            assert_eq!(
                Ipv4Packet::new_checked(&bytes[..]),
                Err(Error),
                "byte {at} = {value:#x}"
            );
        }
        // IHL 6 with total_len 24: four bytes of options and an empty payload is valid.
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x46;
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.options(), &PAYLOAD_BYTES[..]);
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn fragments() {
        let mut bytes = PACKET_BYTES;
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        assert!(packet.dont_frag() && packet.more_frags() && packet.is_fragment());
        assert_eq!(packet.frag_offset(), 1480);
        packet.set_dont_frag(false);
        assert!(!packet.dont_frag());
        assert_eq!(packet.frag_offset(), 1480);
        assert_eq!(&bytes[6..8], &[0x20, 0xb9]);
    }

    #[test]
    fn decrement_ttl_keeps_checksum_valid() {
        let mut rng = Rng::new(64);
        let mut bytes = PACKET_BYTES;
        for ttl in (0..=255u8).rev() {
            let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
            packet.set_hop_limit(ttl);
            packet.set_ident(rng.next_u64() as u16);
            packet.fill_checksum();
            packet.decrement_ttl();
            assert_eq!(packet.hop_limit(), ttl.saturating_sub(1));
            assert!(packet.verify_checksum(), "ttl {ttl}");
            let incremental = packet.checksum();
            packet.fill_checksum();
            // Equal to a full recomputation (up to the two forms of zero).
            assert!(incremental == packet.checksum() || incremental ^ packet.checksum() == 0xffff);
        }
    }

    #[test]
    fn decrement_ttl_captured() {
        // The inner echo request of fixtures/vxlan_icmp_echo_request.bin: TTL 64, checksum 20c0.
        let mut header = [
            0x45, 0x00, 0x00, 0x14, 0x03, 0xe5, 0x40, 0x00, 0x40, 0x01, 0x20, 0xc0, 0x0a, 0x01,
            0x01, 0x01, 0x0a, 0x01, 0x01, 0x02,
        ];
        // (total_len patched to 20 so the header alone passes new_checked; fix the checksum.)
        let mut packet = Ipv4Packet::new_unchecked(&mut header[..]);
        packet.fill_checksum();
        let mut packet = Ipv4Packet::new_checked(&mut header[..]).unwrap();
        packet.decrement_ttl();
        assert_eq!(packet.hop_limit(), 63);
        assert!(packet.verify_checksum());
        let expected = etherparse::Ipv4HeaderSlice::from_slice(packet.as_ref())
            .unwrap()
            .to_header()
            .calc_header_checksum();
        assert_eq!(packet.checksum(), expected);
    }

    #[test]
    fn matches_etherparse() {
        let sliced = etherparse::Ipv4HeaderSlice::from_slice(&PACKET_BYTES).unwrap();
        let packet = Ipv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(sliced.total_len(), packet.total_len());
        assert_eq!(sliced.identification(), packet.ident());
        assert_eq!(sliced.dont_fragment(), packet.dont_frag());
        assert_eq!(sliced.ttl(), packet.hop_limit());
        assert_eq!(sliced.protocol().0, u8::from(packet.next_header()));
        assert_eq!(sliced.header_checksum(), packet.checksum());
        assert_eq!(sliced.source_addr(), packet.src_addr());
        assert_eq!(sliced.destination_addr(), packet.dst_addr());
        assert_eq!(sliced.to_header().calc_header_checksum(), packet.checksum());
    }

    #[test]
    fn protocol_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
        assert_eq!(IpProtocol::from(58), IpProtocol::Icmpv6);
    }
}
