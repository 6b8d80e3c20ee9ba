//! ARP (RFC 826) for Ethernet hardware addresses and IPv4 protocol addresses only.

use core::fmt;
use std::net::Ipv4Addr;

use super::{read_u16, write_u16, Error, EtherType, EthernetAddress, Result};

/// The ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1
    Request,
    /// 2
    Reply,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(value: u16) -> Self {
        match value {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(value: ArpOperation) -> Self {
        match value {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

impl fmt::Display for ArpOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArpOperation::Request => f.write_str("request"),
            ArpOperation::Reply => f.write_str("reply"),
            ArpOperation::Unknown(v) => write!(f, "operation {v}"),
        }
    }
}

/// Field ranges of an Ethernet/IPv4 ARP packet.
pub mod field {
    use crate::wire::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const LEN: usize = field::TPA.end;
/// Hardware type 1: Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// Length of an Ethernet address.
const HLEN_ETHERNET: u8 = 6;
/// Length of an IPv4 address.
const PLEN_IPV4: u8 = 4;

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of an Ethernet/IPv4 ARP packet (28).
    pub const LEN: usize = LEN;

    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds 28 bytes and that the packet is Ethernet (htype 1, hlen 6) over
    /// IPv4 (ptype 0x0800, plen 4).
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < LEN
            || self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != EtherType::Ipv4
            || self.hardware_len() != HLEN_ETHERNET
            || self.protocol_len() != PLEN_IPV4
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

    /// The hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::HTYPE])
    }

    /// The protocol type (0x0800 for IPv4).
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(read_u16(&self.buffer.as_ref()[field::PTYPE]))
    }

    /// The hardware address length (6).
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// The protocol address length (4).
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The operation.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(read_u16(&self.buffer.as_ref()[field::OPER]))
    }

    /// The sender hardware address.
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    /// The sender protocol address.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::SPA.start)
    }

    /// The target hardware address.
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    /// The target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::TPA.start)
    }
}

fn ipv4_at(data: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(data[at], data[at + 1], data[at + 2], data[at + 3])
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::HTYPE], value);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        write_u16(&mut self.buffer.as_mut()[field::PTYPE], value.into());
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, value: ArpOperation) {
        write_u16(&mut self.buffer.as_mut()[field::OPER], value.into());
    }

    /// Sets the sender hardware address.
    pub fn set_source_hardware_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&value.0);
    }

    /// Sets the sender protocol address.
    pub fn set_source_protocol_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&value.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&value.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&value.octets());
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for ArpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An Ethernet/IPv4 ARP packet as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub source_hardware_addr: EthernetAddress,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads a packet; Err unless it is 28 bytes of Ethernet/IPv4 ARP.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        packet.check_len()?;
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// The packet length this repr emits (28).
    pub const fn buffer_len(&self) -> usize {
        LEN
    }

    /// Writes the whole packet, hardware and protocol types and lengths included.
    ///
    /// # Panics
    /// If the buffer is shorter than 28 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(HLEN_ETHERNET);
        packet.set_protocol_len(PLEN_IPV4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The ARP reply inside fixtures/vxlan_arp_reply.bin, captured from Linux.
    static PACKET_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x42, 0x00, 0x00, 0x00, 0x02, 0x0a,
        0x01, 0x01, 0x02, 0x02, 0x42, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x01, 0x01, 0x01,
    ];

    fn repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress([0x02, 0x42, 0, 0, 0, 0x02]),
            source_protocol_addr: Ipv4Addr::new(10, 1, 1, 2),
            target_hardware_addr: EthernetAddress([0x02, 0x42, 0, 0, 0, 0x01]),
            target_protocol_addr: Ipv4Addr::new(10, 1, 1, 1),
        }
    }

    #[test]
    fn deconstruct() {
        let packet = ArpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.hardware_type(), 1);
        assert_eq!(packet.protocol_type(), EtherType::Ipv4);
        assert_eq!(packet.hardware_len(), 6);
        assert_eq!(packet.protocol_len(), 4);
        assert_eq!(packet.operation(), ArpOperation::Reply);
        assert_eq!(
            packet.source_hardware_addr(),
            EthernetAddress([0x02, 0x42, 0, 0, 0, 0x02])
        );
        assert_eq!(packet.source_protocol_addr(), Ipv4Addr::new(10, 1, 1, 2));
        assert_eq!(
            packet.target_hardware_addr(),
            EthernetAddress([0x02, 0x42, 0, 0, 0, 0x01])
        );
        assert_eq!(packet.target_protocol_addr(), Ipv4Addr::new(10, 1, 1, 1));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 28];
        let mut packet = ArpPacket::new_unchecked(&mut bytes[..]);
        packet.set_hardware_type(1);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(ArpOperation::Reply);
        packet.set_source_hardware_addr(EthernetAddress([0x02, 0x42, 0, 0, 0, 0x02]));
        packet.set_source_protocol_addr(Ipv4Addr::new(10, 1, 1, 2));
        packet.set_target_hardware_addr(EthernetAddress([0x02, 0x42, 0, 0, 0, 0x01]));
        packet.set_target_protocol_addr(Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(packet.into_inner(), &PACKET_BYTES[..]);
    }

    #[test]
    fn parse_repr() {
        let packet = ArpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(ArpRepr::parse(&packet), Ok(repr()));
    }

    #[test]
    fn emit_repr() {
        let mut bytes = [0xa5u8; 28];
        assert_eq!(repr().buffer_len(), 28);
        repr().emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn truncated() {
        for len in 0..LEN {
            assert_eq!(ArpPacket::new_checked(&PACKET_BYTES[..len]), Err(Error));
            assert!(ArpRepr::parse(&ArpPacket::new_unchecked(&PACKET_BYTES[..len])).is_err());
        }
        // Trailing bytes (Ethernet padding) are fine.
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&PACKET_BYTES);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&padded[..]).unwrap()),
            Ok(repr())
        );
    }

    #[test]
    fn rejects_other_hardware_or_protocol() {
        for (at, value) in [(1, 6u8), (2, 0x86), (3, 0xdd), (4, 8), (5, 16)] {
            let mut bytes = PACKET_BYTES;
            bytes[at] = value;
            assert_eq!(ArpPacket::new_checked(&bytes[..]), Err(Error), "byte {at}");
        }
    }

    #[test]
    fn operation_round_trip() {
        for v in [0u16, 1, 2, 3, 8, 0xffff] {
            assert_eq!(u16::from(ArpOperation::from(v)), v);
        }
    }

    #[test]
    fn matches_etherparse() {
        let mut frame = [0u8; 42];
        frame[..6].copy_from_slice(&[0x02, 0x42, 0, 0, 0, 0x01]);
        frame[6..12].copy_from_slice(&[0x02, 0x42, 0, 0, 0, 0x02]);
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        frame[14..].copy_from_slice(&PACKET_BYTES);
        // etherparse 0.16 does not decode ARP; it hands over the Ethernet payload and type.
        let sliced = etherparse::SlicedPacket::from_ethernet(&frame).unwrap();
        let payload = sliced.link.unwrap().ether_payload().unwrap();
        assert_eq!(u16::from(payload.ether_type), 0x0806);
        let packet = ArpPacket::new_checked(payload.payload).unwrap();
        assert_eq!(ArpRepr::parse(&packet), Ok(repr()));
    }
}
