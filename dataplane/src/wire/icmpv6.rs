//! ICMPv6 (RFC 4443): header fields, the pseudo-header checksum, and a builder for Packet Too
//! Big messages.

use std::net::Ipv6Addr;

use super::{
    checksum, ipv6, read_u16, read_u32, write_u16, write_u32, Error, IpProtocol, Ipv6Packet,
    Ipv6Repr, Result,
};

/// Destination unreachable.
pub const TYPE_DST_UNREACHABLE: u8 = 1;
/// Packet too big.
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
/// Time exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 3;
/// Echo request.
pub const TYPE_ECHO_REQUEST: u8 = 128;
/// Echo reply.
pub const TYPE_ECHO_REPLY: u8 = 129;

/// The IPv6 minimum MTU: an ICMPv6 error must not exceed it (RFC 4443 section 2.4 (c)).
pub const MIN_MTU: usize = 1280;
/// The shortest buffer [`emit_packet_too_big`] accepts: IPv6 header, ICMPv6 header, and room for
/// the original packet's IPv6 header.
pub const MIN_ERROR_BUFFER: usize = ipv6::HEADER_LEN + HEADER_LEN + ipv6::HEADER_LEN;

/// Field ranges of the ICMPv6 header.
pub mod field {
    use crate::wire::{Field, Rest};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// The MTU of a Packet Too Big message.
    pub const MTU: Field = 4..8;
    /// Echo request/reply identifier.
    pub const ECHO_IDENT: Field = 4..6;
    /// Echo request/reply sequence number.
    pub const ECHO_SEQNO: Field = 6..8;
    pub const DATA: Rest = 8..;
}

/// Length of the ICMPv6 header (type, code, checksum and the 32-bit message-specific word).
pub const HEADER_LEN: usize = field::DATA.start;

/// A read/write view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Length of the header (8).
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Icmpv6Packet<T> {
        Icmpv6Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Icmpv6Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The MTU of a Packet Too Big message.
    pub fn mtu(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::MTU])
    }

    /// The echo identifier (meaningful for echo request/reply).
    pub fn echo_ident(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// The echo sequence number (meaningful for echo request/reply).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }

    /// Everything after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    fn sum_with_pseudo_header(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u64 {
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6.into(), len32(data));
        checksum::accumulate(pseudo, data)
    }

    /// The checksum over the IPv6 pseudo-header and the whole buffer is right (pass exactly the
    /// ICMPv6 message).
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        checksum::finish(self.sum_with_pseudo_header(src, dst)) == 0
    }
}

/// A buffer length as the 32-bit upper-layer length of a pseudo-header.
fn len32(data: &[u8]) -> u32 {
    u32::try_from(data.len()).unwrap_or(u32::MAX)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Sets the MTU of a Packet Too Big message.
    pub fn set_mtu(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::MTU], value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::ECHO_IDENT], value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::ECHO_SEQNO], value);
    }

    /// Everything after the header, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes the checksum over the IPv6 pseudo-header and the whole buffer and stores it.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let value = checksum::finish(self.sum_with_pseudo_header(src, dst));
        self.set_checksum(value);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv6Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Builds a complete ICMPv6 Packet Too Big IPv6 packet in `out` and returns its length.
///
/// Writes an IPv6 header (`src` → `dst`, hop limit 64, next header 58), an ICMPv6 header (type 2,
/// code 0, `mtu`, checksum over the pseudo-header) and then as much of `original` (the offending
/// IPv6 packet, from its header on) as keeps the packet within 1280 bytes (RFC 4443 sections 2.4
/// (c) and 3.2) and within `out`.
///
/// Err if `out` is shorter than [`MIN_ERROR_BUFFER`] (88 bytes).
pub fn emit_packet_too_big(
    out: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    mtu: u32,
    original: &[u8],
) -> Result<usize> {
    if out.len() < MIN_ERROR_BUFFER {
        return Err(Error);
    }
    let headers = ipv6::HEADER_LEN + HEADER_LEN;
    let quoted = original.len().min(MIN_MTU.min(out.len()) - headers);
    let total = headers + quoted;
    let out = &mut out[..total];

    let (ip_header, icmp) = out.split_at_mut(ipv6::HEADER_LEN);
    let mut icmp = Icmpv6Packet::new_unchecked(icmp);
    icmp.set_msg_type(TYPE_PACKET_TOO_BIG);
    icmp.set_msg_code(0);
    icmp.set_mtu(mtu);
    icmp.data_mut().copy_from_slice(&original[..quoted]);
    icmp.fill_checksum(&src, &dst);

    let repr = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: HEADER_LEN + quoted,
        hop_limit: 64,
    };
    repr.emit(&mut Ipv6Packet::new_unchecked(ip_header));
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    static ECHO_BYTES: [u8; 12] = [
        0x80, 0x00, 0x19, 0xb3, 0x12, 0x34, 0xab, 0xcd, 0xaa, 0x00, 0x00, 0xff,
    ];

    static DATA_BYTES: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];

    fn src() -> Ipv6Addr {
        "fe80::1".parse().unwrap()
    }

    fn dst() -> Ipv6Addr {
        "fe80::2".parse().unwrap()
    }

    #[test]
    fn deconstruct() {
        let packet = Icmpv6Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(packet.msg_type(), TYPE_ECHO_REQUEST);
        assert_eq!(packet.msg_code(), 0);
        assert_eq!(packet.checksum(), 0x19b3);
        assert_eq!(packet.echo_ident(), 0x1234);
        assert_eq!(packet.echo_seq_no(), 0xabcd);
        assert_eq!(packet.mtu(), 0x1234_abcd);
        assert_eq!(packet.data(), &DATA_BYTES[..]);
        assert!(packet.verify_checksum(&src(), &dst()));
        assert!(!packet.verify_checksum(&dst(), &"fe80::3".parse().unwrap()));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 12];
        let mut packet = Icmpv6Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(TYPE_ECHO_REQUEST);
        packet.set_msg_code(0);
        packet.set_echo_ident(0x1234);
        packet.set_echo_seq_no(0xabcd);
        packet.data_mut().copy_from_slice(&DATA_BYTES);
        packet.fill_checksum(&src(), &dst());
        assert_eq!(packet.into_inner(), &ECHO_BYTES[..]);
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(Icmpv6Packet::new_checked(&ECHO_BYTES[..len]), Err(Error));
        }
        assert!(Icmpv6Packet::new_checked(&ECHO_BYTES[..HEADER_LEN])
            .unwrap()
            .data()
            .is_empty());
    }

    #[test]
    fn matches_etherparse() {
        let slice = etherparse::Icmpv6Slice::from_slice(&ECHO_BYTES).unwrap();
        let expected = slice
            .icmp_type()
            .calc_checksum(src().octets(), dst().octets(), slice.payload())
            .unwrap();
        assert_eq!(expected, 0x19b3);
    }

    fn original(len: usize) -> [u8; 1500] {
        let mut packet = [0x5au8; 1500];
        let repr = Ipv6Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8::2".parse().unwrap(),
            next_header: IpProtocol::Udp,
            payload_len: len - 40,
            hop_limit: 63,
        };
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut packet[..]));
        packet
    }

    fn check_ptb(out: &[u8], mtu: u32, quoted: &[u8]) {
        let ip = Ipv6Packet::new_checked(out).unwrap();
        assert_eq!(usize::from(ip.payload_len()) + 40, out.len());
        assert_eq!(ip.hop_limit(), 64);
        assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), TYPE_PACKET_TOO_BIG);
        assert_eq!(icmp.msg_code(), 0);
        assert_eq!(icmp.mtu(), mtu);
        assert!(icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
        assert_eq!(icmp.data(), quoted);

        let sliced = etherparse::SlicedPacket::from_ip(out).unwrap();
        let Some(etherparse::TransportSlice::Icmpv6(slice)) = sliced.transport else {
            panic!("no ICMPv6 found by etherparse");
        };
        assert_eq!(
            slice.icmp_type(),
            etherparse::Icmpv6Type::PacketTooBig { mtu }
        );
        let expected = slice
            .icmp_type()
            .calc_checksum(
                ip.src_addr().octets(),
                ip.dst_addr().octets(),
                slice.payload(),
            )
            .unwrap();
        assert_eq!(expected, icmp.checksum());
    }

    #[test]
    fn packet_too_big_short_original() {
        let original = original(100);
        let mut out = [0u8; 1500];
        let len = emit_packet_too_big(&mut out, dst(), src(), 1400, &original[..100]).unwrap();
        assert_eq!(len, 48 + 100);
        check_ptb(&out[..len], 1400, &original[..100]);
    }

    #[test]
    fn packet_too_big_capped_at_1280() {
        let original = original(1500);
        let mut out = [0u8; 2000];
        let len = emit_packet_too_big(&mut out, dst(), src(), 1400, &original).unwrap();
        assert_eq!(len, MIN_MTU);
        check_ptb(&out[..len], 1400, &original[..1280 - 48]);
    }

    #[test]
    fn packet_too_big_capped_at_out() {
        let original = original(1500);
        for out_len in [MIN_ERROR_BUFFER, 200, 1279] {
            let mut out = [0u8; 1300];
            let len =
                emit_packet_too_big(&mut out[..out_len], dst(), src(), 1280, &original).unwrap();
            assert_eq!(len, out_len);
            check_ptb(&out[..len], 1280, &original[..out_len - 48]);
        }
        for out_len in 0..MIN_ERROR_BUFFER {
            let mut out = [0u8; MIN_ERROR_BUFFER];
            let result = emit_packet_too_big(&mut out[..out_len], dst(), src(), 1280, &original);
            assert_eq!(result, Err(Error));
        }
    }
}
