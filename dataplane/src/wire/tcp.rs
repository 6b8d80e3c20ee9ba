//! TCP (RFC 9293) segment headers, with the IPv4 and IPv6 pseudo-header checksums.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{checksum, read_u16, read_u32, write_u16, write_u32, Error, IpProtocol, Result};

/// Field ranges of the TCP header.
pub mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset (high nibble) and reserved bits.
    pub const DATA_OFF: usize = 12;
    /// The flag bits CWR ECE URG ACK PSH RST SYN FIN.
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::URGENT.end;

/// FIN flag bit.
pub const FLAG_FIN: u8 = 0x01;
/// SYN flag bit.
pub const FLAG_SYN: u8 = 0x02;
/// RST flag bit.
pub const FLAG_RST: u8 = 0x04;
/// PSH flag bit.
pub const FLAG_PSH: u8 = 0x08;
/// ACK flag bit.
pub const FLAG_ACK: u8 = 0x10;
/// URG flag bit.
pub const FLAG_URG: u8 = 0x20;
/// ECE flag bit.
pub const FLAG_ECE: u8 = 0x40;
/// CWR flag bit.
pub const FLAG_CWR: u8 = 0x80;

/// A read/write view of a TCP segment. The buffer must be exactly the segment (the IP payload):
/// the checksum covers all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Length of a header without options (20).
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks: at least 20 bytes, data offset at least 5, `header_len <= buffer length`.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN || header_len > len {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// The sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::SEQ_NUM])
    }

    /// The acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::ACK_NUM])
    }

    /// The header length in bytes, options included (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flags byte (CWR ECE URG ACK PSH RST SYN FIN, high to low; see `FLAG_*`).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    fn flag(&self, bit: u8) -> bool {
        self.flags() & bit != 0
    }

    /// The FIN flag.
    pub fn fin(&self) -> bool {
        self.flag(FLAG_FIN)
    }

    /// The SYN flag.
    pub fn syn(&self) -> bool {
        self.flag(FLAG_SYN)
    }

    /// The RST flag.
    pub fn rst(&self) -> bool {
        self.flag(FLAG_RST)
    }

    /// The PSH flag.
    pub fn psh(&self) -> bool {
        self.flag(FLAG_PSH)
    }

    /// The ACK flag.
    pub fn ack(&self) -> bool {
        self.flag(FLAG_ACK)
    }

    /// The URG flag.
    pub fn urg(&self) -> bool {
        self.flag(FLAG_URG)
    }

    /// The ECE flag.
    pub fn ece(&self) -> bool {
        self.flag(FLAG_ECE)
    }

    /// The CWR flag.
    pub fn cwr(&self) -> bool {
        self.flag(FLAG_CWR)
    }

    /// The window field (unscaled).
    pub fn window_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::WIN_SIZE])
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::URGENT])
    }

    /// The options, between the fixed header and `header_len`.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    fn sum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u64 {
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_v4(src, dst, IpProtocol::Tcp.into(), len32(data));
        checksum::accumulate(pseudo, data)
    }

    fn sum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u64 {
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Tcp.into(), len32(data));
        checksum::accumulate(pseudo, data)
    }

    /// The checksum over the IPv4 pseudo-header and the whole buffer is right.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::finish(self.sum_v4(src, dst)) == 0
    }

    /// The checksum over the IPv6 pseudo-header and the whole buffer is right.
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        checksum::finish(self.sum_v6(src, dst)) == 0
    }
}

/// A buffer length as the upper-layer length of a pseudo-header.
fn len32(data: &[u8]) -> u32 {
    u32::try_from(data.len()).unwrap_or(u32::MAX)
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// The payload with the lifetime of the underlying buffer, so it can outlive the view.
    pub fn into_payload(self) -> &'a [u8] {
        let start = self.header_len();
        let data: &'a [u8] = self.buffer.as_ref();
        &data[start..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::SRC_PORT], value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::DST_PORT], value);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::SEQ_NUM], value);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::ACK_NUM], value);
    }

    /// Sets the header length in bytes (a multiple of 4, 20 to 60); keep it within the buffer.
    pub fn set_header_len(&mut self, value: usize) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | (((value / 4) as u8) << 4);
    }

    /// Sets the whole flags byte.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    fn set_flag(&mut self, bit: u8, value: bool) {
        let flags = self.flags();
        self.set_flags(if value { flags | bit } else { flags & !bit });
    }

    /// Sets or clears FIN.
    pub fn set_fin(&mut self, value: bool) {
        self.set_flag(FLAG_FIN, value);
    }

    /// Sets or clears SYN.
    pub fn set_syn(&mut self, value: bool) {
        self.set_flag(FLAG_SYN, value);
    }

    /// Sets or clears RST.
    pub fn set_rst(&mut self, value: bool) {
        self.set_flag(FLAG_RST, value);
    }

    /// Sets or clears PSH.
    pub fn set_psh(&mut self, value: bool) {
        self.set_flag(FLAG_PSH, value);
    }

    /// Sets or clears ACK.
    pub fn set_ack(&mut self, value: bool) {
        self.set_flag(FLAG_ACK, value);
    }

    /// Sets or clears URG.
    pub fn set_urg(&mut self, value: bool) {
        self.set_flag(FLAG_URG, value);
    }

    /// Sets the window field.
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::WIN_SIZE], value);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::URGENT], value);
    }

    /// The options, mutably.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Everything after the header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes the checksum over the IPv4 pseudo-header and the whole buffer and stores it.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let value = checksum::finish(self.sum_v4(src, dst));
        self.set_checksum(value);
    }

    /// Computes the checksum over the IPv6 pseudo-header and the whole buffer and stores it.
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let value = checksum::finish(self.sum_v6(src, dst));
        self.set_checksum(value);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SYN-ACK with an MSS option (1460) and four bytes of payload.
    static PACKET_BYTES: [u8; 28] = [
        0xbf, 0x00, 0x00, 0x50, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x60, 0x12, 0x01,
        0x23, 0x76, 0x74, 0x02, 0x01, 0x02, 0x04, 0x05, 0xb4, 0xaa, 0x00, 0x00, 0xff,
    ];

    static OPTION_BYTES: [u8; 4] = [0x02, 0x04, 0x05, 0xb4];
    static PAYLOAD_BYTES: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 2);

    fn src6() -> Ipv6Addr {
        "fe80::1".parse().unwrap()
    }

    fn dst6() -> Ipv6Addr {
        "fe80::2".parse().unwrap()
    }

    #[test]
    fn deconstruct() {
        let packet = TcpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 48896);
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.seq_number(), 0x0123_4567);
        assert_eq!(packet.ack_number(), 0x89ab_cdef);
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.flags(), FLAG_SYN | FLAG_ACK);
        assert!(packet.syn() && packet.ack());
        assert!(!packet.fin() && !packet.rst() && !packet.psh() && !packet.urg());
        assert!(!packet.ece() && !packet.cwr());
        assert_eq!(packet.window_len(), 0x0123);
        assert_eq!(packet.checksum(), 0x7674);
        assert_eq!(packet.urgent_at(), 0x0201);
        assert_eq!(packet.options(), &OPTION_BYTES[..]);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert!(packet.verify_checksum_v4(SRC, DST));
        assert!(!packet.verify_checksum_v4(SRC, Ipv4Addr::new(10, 1, 1, 3)));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 28];
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(48896);
        packet.set_dst_port(80);
        packet.set_seq_number(0x0123_4567);
        packet.set_ack_number(0x89ab_cdef);
        packet.set_header_len(24);
        packet.buffer[field::DATA_OFF] &= 0xf0; // the reserved bits
        packet.set_flags(0);
        packet.set_syn(true);
        packet.set_ack(true);
        packet.set_fin(true);
        packet.set_fin(false);
        packet.set_psh(false);
        packet.set_window_len(0x0123);
        packet.set_urgent_at(0x0201);
        packet.options_mut().copy_from_slice(&OPTION_BYTES);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        packet.fill_checksum_v4(SRC, DST);
        assert_eq!(packet.into_inner(), &PACKET_BYTES[..]);
    }

    #[test]
    fn truncated() {
        for len in 0..24 {
            // Shorter than 20 bytes, or than the 24-byte header the data offset announces.
            assert_eq!(
                TcpPacket::new_checked(&PACKET_BYTES[..len]),
                Err(Error),
                "len {len}"
            );
        }
        let packet = TcpPacket::new_checked(&PACKET_BYTES[..24]).unwrap();
        assert!(packet.payload().is_empty());
        for offset in 0..5u8 {
            let mut bytes = PACKET_BYTES;
            bytes[12] = offset << 4;
            assert_eq!(TcpPacket::new_checked(&bytes[..]), Err(Error));
        }
        let mut bytes = PACKET_BYTES;
        bytes[12] = 0xf0; // 60-byte header in a 28-byte buffer
        assert_eq!(TcpPacket::new_checked(&bytes[..]), Err(Error));
    }

    #[test]
    fn ipv6_checksum() {
        let mut bytes = PACKET_BYTES;
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.fill_checksum_v6(&src6(), &dst6());
        assert_eq!(packet.checksum(), 0x8f74);
        assert!(packet.verify_checksum_v6(&src6(), &dst6()));
        assert!(!packet.verify_checksum_v6(&src6(), &"fe80::3".parse().unwrap()));
    }

    #[test]
    fn matches_etherparse() {
        let slice = etherparse::TcpSlice::from_slice(&PACKET_BYTES).unwrap();
        let packet = TcpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(slice.source_port(), packet.src_port());
        assert_eq!(slice.destination_port(), packet.dst_port());
        assert_eq!(slice.sequence_number(), packet.seq_number());
        assert_eq!(slice.acknowledgment_number(), packet.ack_number());
        assert_eq!(usize::from(slice.data_offset()) * 4, packet.header_len());
        assert_eq!(slice.syn(), packet.syn());
        assert_eq!(slice.ack(), packet.ack());
        assert_eq!(slice.window_size(), packet.window_len());
        assert_eq!(slice.options(), packet.options());
        assert_eq!(slice.payload(), packet.payload());
        assert_eq!(
            slice
                .calc_checksum_ipv4(SRC.octets(), DST.octets())
                .unwrap(),
            0x7674
        );
        assert_eq!(
            slice
                .calc_checksum_ipv6(src6().octets(), dst6().octets())
                .unwrap(),
            0x8f74
        );
    }
}
