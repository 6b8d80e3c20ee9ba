//! Ethernet II frames (IEEE 802.3 clause 3.2.6 type field), optionally carrying one IEEE 802.1Q
//! VLAN tag.

use core::fmt;
use core::str::FromStr;

use super::{read_u16, write_u16, Error, Result};

/// A six-octet IEEE 802 MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// Copies an address out of a six-byte slice.
    ///
    /// # Panics
    /// If `data` is not exactly six bytes long.
    pub fn from_bytes(data: &[u8]) -> EthernetAddress {
        let mut bytes = [0u8; 6];
        bytes.copy_from_slice(data);
        EthernetAddress(bytes)
    }

    /// The address as bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The I/G bit is set (group address; broadcast included).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// An individual address that is not all zeros.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && self.0 != [0; 6]
    }

    /// The U/L bit is set (locally administered).
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl From<[u8; 6]> for EthernetAddress {
    fn from(bytes: [u8; 6]) -> Self {
        EthernetAddress(bytes)
    }
}

impl From<EthernetAddress> for [u8; 6] {
    fn from(addr: EthernetAddress) -> Self {
        addr.0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for EthernetAddress {
    type Err = Error;

    /// Parses six two-digit hex octets separated by `:` or `-` (`02:42:0a:00:00:01`).
    fn from_str(s: &str) -> Result<Self> {
        let mut bytes = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut bytes {
            let part = parts.next().ok_or(Error)?;
            if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| Error)?;
        }
        if parts.next().is_some() {
            return Err(Error);
        }
        Ok(EthernetAddress(bytes))
    }
}

/// The EtherType of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EtherType {
    /// 0x0800
    Ipv4,
    /// 0x0806
    Arp,
    /// 0x86dd
    Ipv6,
    /// 0x8100, an IEEE 802.1Q tag follows.
    Vlan,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::Unknown(other) => other,
        }
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherType::Ipv4 => f.write_str("IPv4"),
            EtherType::Arp => f.write_str("ARP"),
            EtherType::Ipv6 => f.write_str("IPv6"),
            EtherType::Vlan => f.write_str("802.1Q"),
            EtherType::Unknown(v) => write!(f, "0x{v:04x}"),
        }
    }
}

/// Field ranges of the Ethernet II header and of the optional 802.1Q tag.
pub mod field {
    use crate::wire::{Field, Rest};

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;

    /// Tag control information (PCP, DEI, VID), present when ETHERTYPE is 0x8100.
    pub const VLAN_TCI: Field = 14..16;
    /// The EtherType of the payload after an 802.1Q tag.
    pub const VLAN_ETHERTYPE: Field = 16..18;
    pub const VLAN_PAYLOAD: Rest = 18..;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Length of an Ethernet II header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = field::VLAN_PAYLOAD.start;
/// The 12-bit VLAN identifier in the TCI.
const VID_MASK: u16 = 0x0fff;

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of an untagged header (14).
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks the buffer holds the whole header: 14 bytes, or 18 with an 802.1Q tag.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.header_len() {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// 18 when the frame carries an 802.1Q tag, 14 otherwise.
    pub fn header_len(&self) -> usize {
        if self.ethertype() == EtherType::Vlan {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The destination address.
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// The source address.
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// The outer EtherType field (`Vlan` for a tagged frame).
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(read_u16(&self.buffer.as_ref()[field::ETHERTYPE]))
    }

    /// The 12-bit VLAN identifier of an 802.1Q-tagged frame.
    pub fn vlan_id(&self) -> Option<u16> {
        if self.ethertype() == EtherType::Vlan {
            Some(read_u16(&self.buffer.as_ref()[field::VLAN_TCI]) & VID_MASK)
        } else {
            None
        }
    }

    /// The whole tag control information (PCP, DEI, VID) of an 802.1Q-tagged frame.
    pub fn vlan_tci(&self) -> Option<u16> {
        if self.ethertype() == EtherType::Vlan {
            Some(read_u16(&self.buffer.as_ref()[field::VLAN_TCI]))
        } else {
            None
        }
    }

    /// The EtherType of the payload: the inner type after an 802.1Q tag, else the outer field.
    pub fn payload_ethertype(&self) -> EtherType {
        if self.ethertype() == EtherType::Vlan {
            EtherType::from(read_u16(&self.buffer.as_ref()[field::VLAN_ETHERTYPE]))
        } else {
            self.ethertype()
        }
    }

    /// Everything after the header (and tag).
    pub fn payload(&self) -> &[u8] {
        let start = self.header_len();
        &self.buffer.as_ref()[start..]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// The payload with the lifetime of the underlying buffer, so it can outlive the view.
    pub fn into_payload(self) -> &'a [u8] {
        let start = self.header_len();
        let data: &'a [u8] = self.buffer.as_ref();
        &data[start..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the outer EtherType field.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(
            &mut self.buffer.as_mut()[field::ETHERTYPE],
            ethertype.into(),
        );
    }

    /// Sets the tag control information of a tagged frame (the caller checked the tag is
    /// there: [`vlan_tci`](EthernetFrame::vlan_tci) is `Some`).
    pub fn set_vlan_tci(&mut self, tci: u16) {
        write_u16(&mut self.buffer.as_mut()[field::VLAN_TCI], tci);
    }

    /// Everything after the header (and tag), mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The untagged Ethernet II header as values.
///
/// For a tagged frame `ethertype` is [`EtherType::Vlan`]; the tag itself is read through the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    pub src_addr: EthernetAddress,
    pub dst_addr: EthernetAddress,
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header of a frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// The header length this repr emits (14).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 14-byte header.
    ///
    /// # Panics
    /// If the frame's buffer is shorter than 14 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The inner frame of fixtures/vxlan_arp_request.bin (an ARP request from 02:42:00:00:00:01).
    static FRAME_BYTES: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x42, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x01,
        0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x01, 0x01, 0x02,
    ];

    static PAYLOAD_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x42, 0x00, 0x00, 0x00, 0x01, 0x0a,
        0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x01, 0x01, 0x02,
    ];

    // A frame tagged with VLAN 100 (PCP 5), carrying an IPv4 payload stub.
    static VLAN_FRAME_BYTES: [u8; 22] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x81, 0x00, 0xa0,
        0x64, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef,
    ];

    const SRC: EthernetAddress = EthernetAddress([0x02, 0x42, 0x00, 0x00, 0x00, 0x01]);

    #[test]
    fn deconstruct() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(frame.src_addr(), SRC);
        assert_eq!(frame.ethertype(), EtherType::Arp);
        assert_eq!(frame.payload_ethertype(), EtherType::Arp);
        assert_eq!(frame.vlan_id(), None);
        assert_eq!(frame.header_len(), 14);
        assert_eq!(frame.payload(), &PAYLOAD_BYTES[..]);
        assert_eq!(frame.into_inner(), &FRAME_BYTES[..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 42];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(EthernetAddress::BROADCAST);
        frame.set_src_addr(SRC);
        frame.set_ethertype(EtherType::Arp);
        frame.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(frame.into_inner(), &FRAME_BYTES[..]);
    }

    #[test]
    fn parse_repr() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(
            repr,
            EthernetRepr {
                src_addr: SRC,
                dst_addr: EthernetAddress::BROADCAST,
                ethertype: EtherType::Arp,
            }
        );
    }

    #[test]
    fn emit_repr() {
        let repr = EthernetRepr {
            src_addr: SRC,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EtherType::Arp,
        };
        assert_eq!(repr.buffer_len(), 14);
        let mut bytes = [0u8; 42];
        bytes[14..].copy_from_slice(&PAYLOAD_BYTES);
        repr.emit(&mut EthernetFrame::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, FRAME_BYTES);
    }

    #[test]
    fn vlan_tagged() {
        let frame = EthernetFrame::new_checked(&VLAN_FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.ethertype(), EtherType::Vlan);
        assert_eq!(frame.vlan_id(), Some(100));
        assert_eq!(frame.vlan_tci(), Some((5 << 13) | 100));
        assert_eq!(frame.payload_ethertype(), EtherType::Ipv4);
        assert_eq!(frame.header_len(), 18);
        let mut copy = VLAN_FRAME_BYTES;
        let mut f = EthernetFrame::new_checked(&mut copy[..]).unwrap();
        f.set_vlan_tci((2 << 13) | 30);
        assert_eq!(f.vlan_id(), Some(30));
        assert_eq!(f.vlan_tci(), Some(0x4000 | 30));
        assert_eq!(f.payload_ethertype(), EtherType::Ipv4);
        let untagged = EthernetFrame::new_checked(&VLAN_FRAME_BYTES[4..]).unwrap();
        assert_eq!(untagged.vlan_tci(), None);
        assert_eq!(frame.payload(), &[0xde, 0xad, 0xbe, 0xef]);

        // Cross-check with etherparse.
        let tag = etherparse::SingleVlanHeaderSlice::from_slice(&VLAN_FRAME_BYTES[14..]).unwrap();
        assert_eq!(tag.vlan_identifier().value(), 100);
        assert_eq!(tag.priority_code_point().value(), 5);
        assert_eq!(
            u16::from(tag.ether_type()),
            u16::from(frame.payload_ethertype())
        );
    }

    #[test]
    fn vlan_tag_needs_18_bytes() {
        for len in 0..18 {
            assert_eq!(
                EthernetFrame::new_checked(&VLAN_FRAME_BYTES[..len]),
                Err(Error)
            );
        }
        let frame = EthernetFrame::new_checked(&VLAN_FRAME_BYTES[..18]).unwrap();
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(EthernetFrame::new_checked(&FRAME_BYTES[..len]), Err(Error));
            assert!(
                EthernetRepr::parse(&EthernetFrame::new_unchecked(&FRAME_BYTES[..len])).is_err()
            );
        }
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..HEADER_LEN]).unwrap();
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn ethertype_round_trip() {
        for v in [0x0800, 0x0806, 0x86dd, 0x8100, 0x88a8, 0x0000, 0xffff] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
        assert_eq!(EtherType::from(0x86dd), EtherType::Ipv6);
        assert_eq!(EtherType::from(0x88cc), EtherType::Unknown(0x88cc));
        assert_eq!(EtherType::Unknown(0x88cc).to_string(), "0x88cc");
    }

    #[test]
    fn address_classes_and_text() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(!EthernetAddress::BROADCAST.is_unicast());
        let mcast = EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);
        assert!(mcast.is_multicast() && !mcast.is_broadcast() && !mcast.is_unicast());
        assert!(SRC.is_unicast() && SRC.is_local() && !SRC.is_multicast());
        assert!(!EthernetAddress::default().is_unicast());
        assert_eq!(SRC.to_string(), "02:42:00:00:00:01");
        assert_eq!("02:42:00:00:00:01".parse::<EthernetAddress>(), Ok(SRC));
        assert_eq!("02-42-00-00-00-01".parse::<EthernetAddress>(), Ok(SRC));
        assert_eq!("FF:ff:FF:ff:FF:ff".parse(), Ok(EthernetAddress::BROADCAST));
        for bad in [
            "",
            "02:42:00:00:00",
            "02:42:00:00:00:01:02",
            "2:42:00:00:00:01",
            "0x:42:00:00:00:01",
            "+2:42:00:00:00:01",
        ] {
            assert_eq!(bad.parse::<EthernetAddress>(), Err(Error), "{bad}");
        }
        assert_eq!(EthernetAddress::from_bytes(&FRAME_BYTES[6..12]), SRC);
        assert!(EthernetAddress([0, 0, 0, 0, 0, 1]) > EthernetAddress([0; 6]));
    }

    #[test]
    fn matches_etherparse() {
        let sliced = etherparse::Ethernet2HeaderSlice::from_slice(&FRAME_BYTES).unwrap();
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(sliced.destination(), frame.dst_addr().0);
        assert_eq!(sliced.source(), frame.src_addr().0);
        assert_eq!(u16::from(sliced.ether_type()), u16::from(frame.ethertype()));
    }
}
