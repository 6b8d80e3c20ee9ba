//! ICMP for IPv4 (RFC 792): the header fields a switch needs (echo, destination unreachable with
//! the RFC 1191 next-hop MTU, time exceeded), and a builder for ICMP error packets.

use std::net::Ipv4Addr;

use super::{checksum, ipv4, read_u16, write_u16, Error, IpProtocol, Ipv4Packet, Ipv4Repr, Result};

/// Echo reply.
pub const TYPE_ECHO_REPLY: u8 = 0;
/// Destination unreachable.
pub const TYPE_DST_UNREACHABLE: u8 = 3;
/// Echo request.
pub const TYPE_ECHO_REQUEST: u8 = 8;
/// Time exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 11;
/// Destination unreachable code 4: fragmentation needed and DF set (RFC 1191).
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Time exceeded code 0: TTL exceeded in transit.
pub const CODE_TTL_EXCEEDED: u8 = 0;

/// The largest ICMP error packet, IPv4 header included (RFC 1812 section 4.3.2.3).
pub const MAX_ERROR_LEN: usize = 576;
/// The shortest buffer [`emit_error`] accepts: IPv4 header, ICMP header, and room for the
/// original IPv4 header plus 8 bytes (RFC 792).
pub const MIN_ERROR_BUFFER: usize = ipv4::HEADER_LEN + HEADER_LEN + ipv4::HEADER_LEN + 8;

/// Field ranges of the ICMPv4 header.
pub mod field {
    use crate::wire::{Field, Rest};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// Echo request/reply identifier.
    pub const ECHO_IDENT: Field = 4..6;
    /// Echo request/reply sequence number.
    pub const ECHO_SEQNO: Field = 6..8;
    /// Unused in destination-unreachable messages.
    pub const UNUSED: Field = 4..6;
    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191).
    pub const MTU: Field = 6..8;
    pub const DATA: Rest = 8..;
}

/// Length of the ICMPv4 header.
pub const HEADER_LEN: usize = field::DATA.start;

/// A read/write view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Length of the header (8).
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>> {
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

    /// The echo identifier (meaningful for echo request/reply).
    pub fn echo_ident(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// The echo sequence number (meaningful for echo request/reply).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }

    /// The next-hop MTU (meaningful for type 3 code 4).
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::MTU])
    }

    /// Everything after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// The checksum over the whole buffer is right (pass exactly the ICMP message).
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
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

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::ECHO_IDENT], value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::ECHO_SEQNO], value);
    }

    /// Sets the next-hop MTU and zeroes the unused word before it.
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::UNUSED], 0);
        write_u16(&mut self.buffer.as_mut()[field::MTU], value);
    }

    /// Everything after the header, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes the checksum over the whole buffer and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::data(self.buffer.as_ref());
        self.set_checksum(value);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Builds a complete ICMP error IPv4 packet in `out` and returns its length.
///
/// Writes an IPv4 header (`src` → `dst`, TTL 64, DF clear, protocol ICMP, checksum filled), an
/// ICMP header (`msg_type`, `code`, bytes 4..6 zero, bytes 6..8 `next_hop_mtu`: pass 0 unless
/// this is type 3 code 4) and then as much of `original` (the offending IPv4 packet, from its
/// header on) as keeps the packet within 576 bytes (RFC 1812 section 4.3.2.3) and within `out`.
///
/// Err if `out` is shorter than [`MIN_ERROR_BUFFER`] (56 bytes).
pub fn emit_error(
    out: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    msg_type: u8,
    code: u8,
    next_hop_mtu: u16,
    original: &[u8],
) -> Result<usize> {
    if out.len() < MIN_ERROR_BUFFER {
        return Err(Error);
    }
    let headers = ipv4::HEADER_LEN + HEADER_LEN;
    let quoted = original.len().min(MAX_ERROR_LEN.min(out.len()) - headers);
    let total = headers + quoted;
    let out = &mut out[..total];

    let (ip_header, icmp) = out.split_at_mut(ipv4::HEADER_LEN);
    let mut icmp = Icmpv4Packet::new_unchecked(icmp);
    icmp.set_msg_type(msg_type);
    icmp.set_msg_code(code);
    icmp.set_next_hop_mtu(next_hop_mtu);
    icmp.data_mut().copy_from_slice(&original[..quoted]);
    icmp.fill_checksum();

    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmp,
        payload_len: HEADER_LEN + quoted,
        hop_limit: 64,
        dont_frag: false,
        ident: 0,
    };
    repr.emit(&mut Ipv4Packet::new_unchecked(ip_header));
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    static ECHO_BYTES: [u8; 12] = [
        0x08, 0x00, 0x8e, 0xfe, 0x12, 0x34, 0xab, 0xcd, 0xaa, 0x00, 0x00, 0xff,
    ];

    static DATA_BYTES: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];

    static FRAME: &[u8] = include_bytes!("../../tests/fixtures/vxlan_icmp_echo_request.bin");
    // The inner IPv4 packet of that frame: after outer Ethernet (14), IPv4 (20), UDP (8),
    // VXLAN (8) and inner Ethernet (14).
    static ORIGINAL: &[u8] = FRAME.split_at(64).1;

    #[test]
    fn deconstruct() {
        let packet = Icmpv4Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(packet.msg_type(), TYPE_ECHO_REQUEST);
        assert_eq!(packet.msg_code(), 0);
        assert_eq!(packet.checksum(), 0x8efe);
        assert_eq!(packet.echo_ident(), 0x1234);
        assert_eq!(packet.echo_seq_no(), 0xabcd);
        assert_eq!(packet.data(), &DATA_BYTES[..]);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 12];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(TYPE_ECHO_REQUEST);
        packet.set_msg_code(0);
        packet.set_echo_ident(0x1234);
        packet.set_echo_seq_no(0xabcd);
        packet.data_mut().copy_from_slice(&DATA_BYTES);
        packet.fill_checksum();
        assert_eq!(packet.into_inner(), &ECHO_BYTES[..]);
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(Icmpv4Packet::new_checked(&ECHO_BYTES[..len]), Err(Error));
        }
        let packet = Icmpv4Packet::new_checked(&ECHO_BYTES[..HEADER_LEN]).unwrap();
        assert!(packet.data().is_empty());
        assert!(!packet.verify_checksum());
    }

    #[test]
    fn bad_checksum() {
        let mut bytes = ECHO_BYTES;
        bytes[11] ^= 1;
        assert!(!Icmpv4Packet::new_checked(&bytes[..])
            .unwrap()
            .verify_checksum());
    }

    #[test]
    fn matches_etherparse() {
        let slice = etherparse::Icmpv4Slice::from_slice(&ECHO_BYTES).unwrap();
        let packet = Icmpv4Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(slice.type_u8(), packet.msg_type());
        assert_eq!(slice.checksum(), packet.checksum());
        assert_eq!(
            slice.icmp_type().calc_checksum(slice.payload()),
            packet.checksum()
        );
    }

    fn check_error_packet(out: &[u8], len: usize, mtu: u16, quoted: usize) {
        let ip = Ipv4Packet::new_checked(&out[..len]).unwrap();
        assert_eq!(usize::from(ip.total_len()), len);
        assert!(ip.verify_checksum());
        assert_eq!(ip.hop_limit(), 64);
        assert!(!ip.dont_frag());
        assert_eq!(ip.next_header(), IpProtocol::Icmp);
        assert_eq!(ip.src_addr(), Ipv4Addr::new(10, 1, 1, 254));
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 1, 1, 1));
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), TYPE_DST_UNREACHABLE);
        assert_eq!(icmp.msg_code(), CODE_FRAG_NEEDED);
        assert_eq!(icmp.next_hop_mtu(), mtu);
        assert!(icmp.verify_checksum());
        assert_eq!(icmp.data().len(), quoted);

        // etherparse agrees on every field and checksum.
        let sliced = etherparse::SlicedPacket::from_ip(&out[..len]).unwrap();
        let Some(etherparse::TransportSlice::Icmpv4(slice)) = sliced.transport else {
            panic!("no ICMPv4 found by etherparse");
        };
        assert_eq!(
            slice.icmp_type(),
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: mtu
                }
            )
        );
        assert_eq!(
            slice.icmp_type().calc_checksum(slice.payload()),
            icmp.checksum()
        );
    }

    #[test]
    fn error_quotes_whole_short_original() {
        let mut out = [0u8; 1500];
        let len = emit_error(
            &mut out,
            Ipv4Addr::new(10, 1, 1, 254),
            Ipv4Addr::new(10, 1, 1, 1),
            TYPE_DST_UNREACHABLE,
            CODE_FRAG_NEEDED,
            1450,
            ORIGINAL,
        )
        .unwrap();
        assert_eq!(len, 20 + 8 + ORIGINAL.len());
        check_error_packet(&out, len, 1450, ORIGINAL.len());
        assert_eq!(&out[28..len], ORIGINAL);
    }

    #[test]
    fn error_capped_at_576() {
        let mut original = [0x5au8; 1500];
        original[..ORIGINAL.len()].copy_from_slice(ORIGINAL);
        let mut out = [0u8; 2000];
        let len = emit_error(
            &mut out,
            Ipv4Addr::new(10, 1, 1, 254),
            Ipv4Addr::new(10, 1, 1, 1),
            TYPE_DST_UNREACHABLE,
            CODE_FRAG_NEEDED,
            1450,
            &original,
        )
        .unwrap();
        assert_eq!(len, MAX_ERROR_LEN);
        check_error_packet(&out, len, 1450, 576 - 28);
        assert_eq!(&out[28..len], &original[..548]);
    }

    #[test]
    fn error_capped_at_out_len() {
        for out_len in [MIN_ERROR_BUFFER, 100, 575] {
            let mut out = [0u8; 600];
            let out = &mut out[..out_len];
            let original = [0x5au8; 1500];
            let len = emit_error(
                out,
                Ipv4Addr::new(10, 1, 1, 254),
                Ipv4Addr::new(10, 1, 1, 1),
                TYPE_DST_UNREACHABLE,
                CODE_FRAG_NEEDED,
                9000,
                &original,
            )
            .unwrap();
            assert_eq!(len, out_len);
            check_error_packet(out, len, 9000, out_len - 28);
        }
    }

    #[test]
    fn error_needs_room() {
        for out_len in 0..MIN_ERROR_BUFFER {
            let mut out = [0u8; MIN_ERROR_BUFFER];
            let result = emit_error(
                &mut out[..out_len],
                Ipv4Addr::new(10, 1, 1, 254),
                Ipv4Addr::new(10, 1, 1, 1),
                TYPE_TIME_EXCEEDED,
                CODE_TTL_EXCEEDED,
                0,
                ORIGINAL,
            );
            assert_eq!(result, Err(Error));
        }
        // An empty original is fine: the ICMP message is the bare header.
        let mut out = [0u8; MIN_ERROR_BUFFER];
        let len = emit_error(
            &mut out,
            Ipv4Addr::new(10, 1, 1, 254),
            Ipv4Addr::new(10, 1, 1, 1),
            TYPE_TIME_EXCEEDED,
            CODE_TTL_EXCEEDED,
            0,
            &[],
        )
        .unwrap();
        assert_eq!(len, 28);
        let ip = Ipv4Packet::new_checked(&out[..len]).unwrap();
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((icmp.msg_type(), icmp.msg_code()), (TYPE_TIME_EXCEEDED, 0));
        assert!(icmp.verify_checksum());
    }
}
