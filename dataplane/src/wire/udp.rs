//! UDP (RFC 768) datagrams, with the IPv4 and IPv6 pseudo-header checksums.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{checksum, read_u16, write_u16, Error, IpProtocol, Result};

/// Field ranges of the UDP header.
pub mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Length of the header (8).
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks: at least 8 bytes, and `8 <= length field <= buffer length`.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN || field_len > len {
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

    /// The length field: header plus payload.
    pub fn len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// The length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field (0: none was computed, allowed on IPv4 only).
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The payload: from the header to the length field (bytes after it excluded).
    pub fn payload(&self) -> &[u8] {
        let end = usize::from(self.len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    /// The datagram as the length field delimits it.
    fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }

    fn sum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u64 {
        let pseudo =
            checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), u32::from(self.len()));
        checksum::accumulate(pseudo, self.datagram())
    }

    fn sum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u64 {
        let pseudo =
            checksum::pseudo_header_v6(src, dst, IpProtocol::Udp.into(), u32::from(self.len()));
        checksum::accumulate(pseudo, self.datagram())
    }

    /// The checksum over the IPv4 pseudo-header and the datagram is right, or is 0 ("none was
    /// computed", RFC 768; RFC 7348 section 5 lets VXLAN senders use it).
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0 || checksum::finish(self.sum_v4(src, dst)) == 0
    }

    /// The checksum over the IPv6 pseudo-header and the datagram is right. A zero checksum is
    /// invalid on IPv6 (RFC 8200 section 8.1); a caller that accepts RFC 6935 zero-checksum
    /// tunnels tests `checksum() == 0` first.
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        self.checksum() != 0 && checksum::finish(self.sum_v6(src, dst)) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpPacket<&'a T> {
    /// The payload with the lifetime of the underlying buffer, so it can outlive the view.
    pub fn into_payload(self) -> &'a [u8] {
        let end = usize::from(self.len());
        let data: &'a [u8] = self.buffer.as_ref();
        &data[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::SRC_PORT], value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::DST_PORT], value);
    }

    /// Sets the length field; keep it within the buffer, or `payload` will panic.
    pub fn set_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// The payload (up to the length field), mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Computes the checksum over the IPv4 pseudo-header and the datagram (as long as the length
    /// field says) and stores it; a computed 0 is stored as 0xffff.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let value = checksum::finish(self.sum_v4(src, dst));
        self.set_checksum(nonzero(value));
    }

    /// Computes the checksum over the IPv6 pseudo-header and the datagram and stores it; a
    /// computed 0 is stored as 0xffff.
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let value = checksum::finish(self.sum_v6(src, dst));
        self.set_checksum(nonzero(value));
    }
}

/// RFC 768: a computed checksum of zero is transmitted as all ones.
fn nonzero(value: u16) -> u16 {
    if value == 0 {
        0xffff
    } else {
        value
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A UDP header as values (the length and checksum follow from the payload and addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    /// Reads the ports. The checksum is the caller's to verify (it needs the IP addresses).
    pub fn parse<T: AsRef<[u8]>>(packet: &UdpPacket<T>) -> Result<UdpRepr> {
        packet.check_len()?;
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// The header length this repr emits (8).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header: ports, `length = 8 + payload_len`, checksum 0. Fill in the checksum with
    /// `fill_checksum_v4`/`_v6` once the payload is in place (or leave 0 on IPv4).
    ///
    /// # Panics
    /// If the buffer is shorter than 8 bytes. `payload_len` must be at most 65527.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        payload_len: usize,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((HEADER_LEN + payload_len) as u16);
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static PACKET_BYTES: [u8; 12] = [
        0xbf, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x7f, 0x9c, 0xaa, 0x00, 0x00, 0xff,
    ];

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
        let packet = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 48896);
        assert_eq!(packet.dst_port(), 53);
        assert_eq!(packet.len(), 12);
        assert!(!packet.is_empty());
        assert_eq!(packet.checksum(), 0x7f9c);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert!(packet.verify_checksum_v4(SRC, DST));
        assert!(!packet.verify_checksum_v4(DST, Ipv4Addr::new(10, 1, 1, 3)));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 12];
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(48896);
        packet.set_dst_port(53);
        packet.set_len(12);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        packet.fill_checksum_v4(SRC, DST);
        assert_eq!(packet.into_inner(), &PACKET_BYTES[..]);
    }

    #[test]
    fn parse_repr() {
        let packet = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(
            UdpRepr::parse(&packet),
            Ok(UdpRepr {
                src_port: 48896,
                dst_port: 53
            })
        );
    }

    #[test]
    fn emit_repr() {
        let repr = UdpRepr {
            src_port: 48896,
            dst_port: 53,
        };
        assert_eq!(repr.buffer_len(), 8);
        let mut bytes = [0xa5u8; 12];
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet, PAYLOAD_BYTES.len());
        assert_eq!(packet.checksum(), 0);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        packet.fill_checksum_v4(SRC, DST);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn truncated() {
        for len in 0..PACKET_BYTES.len() {
            assert_eq!(
                UdpPacket::new_checked(&PACKET_BYTES[..len]),
                Err(Error),
                "len {len}"
            );
            assert!(UdpRepr::parse(&UdpPacket::new_unchecked(&PACKET_BYTES[..len])).is_err());
        }
        // A length field below 8 is malformed.
        for bad in 0..8u8 {
            let mut bytes = PACKET_BYTES;
            bytes[5] = bad;
            assert_eq!(UdpPacket::new_checked(&bytes[..]), Err(Error));
        }
        // Bytes after the length field are not payload.
        let mut padded = [0u8; 20];
        padded[..12].copy_from_slice(&PACKET_BYTES);
        let packet = UdpPacket::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert!(packet.verify_checksum_v4(SRC, DST));
    }

    #[test]
    fn zero_checksum() {
        let mut bytes = PACKET_BYTES;
        bytes[6] = 0;
        bytes[7] = 0;
        let packet = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert!(
            packet.verify_checksum_v4(SRC, DST),
            "0 means no checksum on IPv4"
        );
        assert!(
            !packet.verify_checksum_v6(&src6(), &dst6()),
            "0 is invalid on IPv6"
        );
    }

    #[test]
    fn computed_zero_sent_as_ffff() {
        // Choose the payload so the checksum computes to 0: set the last word to the checksum
        // the datagram has with that word zero, which makes the total sum 0xffff.
        let mut bytes = PACKET_BYTES;
        bytes[10] = 0;
        bytes[11] = 0;
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        packet.fill_checksum_v4(SRC, DST);
        let word = packet.checksum();
        packet.payload_mut()[2..4].copy_from_slice(&word.to_be_bytes());
        packet.fill_checksum_v4(SRC, DST);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum_v4(SRC, DST));
    }

    #[test]
    fn ipv6_checksum() {
        let mut bytes = PACKET_BYTES;
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        packet.fill_checksum_v6(&src6(), &dst6());
        assert_eq!(packet.checksum(), 0x989c);
        assert!(packet.verify_checksum_v6(&src6(), &dst6()));
        assert!(!packet.verify_checksum_v6(&src6(), &"fe80::3".parse().unwrap()));
    }

    #[test]
    fn matches_etherparse() {
        let header = etherparse::UdpHeaderSlice::from_slice(&PACKET_BYTES)
            .unwrap()
            .to_header();
        assert_eq!(
            header
                .calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), &PAYLOAD_BYTES)
                .unwrap(),
            0x7f9c
        );
        assert_eq!(
            header
                .calc_checksum_ipv6_raw(src6().octets(), dst6().octets(), &PAYLOAD_BYTES)
                .unwrap(),
            0x989c
        );
    }
}
