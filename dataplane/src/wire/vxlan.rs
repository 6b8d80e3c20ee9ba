//! VXLAN headers (RFC 7348 section 5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The I flag must be 1 for a valid VNI; the reserved bits must be sent as zero and ignored on
//! receipt. Both are policy for the caller: the view only reports them. The header is carried in
//! UDP to destination port 4789.

use super::{read_u32, write_u32, Error, Result};

/// Field ranges of the VXLAN header.
pub mod field {
    use crate::wire::{Field, Rest};

    /// Flags: only I (0x08) is defined.
    pub const FLAGS: Field = 0..1;
    pub const RESERVED1: Field = 1..4;
    /// The 24-bit VXLAN Network Identifier.
    pub const VNI: Field = 4..7;
    pub const RESERVED2: Field = 7..8;
    /// The encapsulated Ethernet frame.
    pub const PAYLOAD: Rest = 8..;
    /// The 32-bit word whose high 24 bits are the VNI.
    pub(crate) const VNI_WORD: Field = VNI.start..RESERVED2.end;
}

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = field::RESERVED2.end;
/// The "VNI is valid" flag.
pub const FLAG_I: u8 = 0x08;
/// The IANA-assigned UDP destination port (RFC 7348 section 5).
pub const UDP_PORT: u16 = 4789;
/// The largest VNI (24 bits).
pub const VNI_MAX: u32 = 0x00ff_ffff;

/// A read/write view of a VXLAN header and the frame it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// Length of the header (8).
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> VxlanPacket<T> {
        VxlanPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<VxlanPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds the 8-byte header. The flags are not checked.
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

    /// The flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS.start]
    }

    /// The I flag: the VNI is valid.
    pub fn i_flag(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The 24-bit VNI.
    pub fn vni(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::VNI_WORD]) >> 8
    }

    /// Any reserved bit is set: a flag other than I, or any bit of the reserved fields.
    pub fn has_reserved_bits(&self) -> bool {
        let data = self.buffer.as_ref();
        self.flags() & !FLAG_I != 0
            || data[field::RESERVED1].iter().any(|&b| b != 0)
            || data[field::RESERVED2].iter().any(|&b| b != 0)
    }

    /// The encapsulated Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> VxlanPacket<&'a T> {
    /// The encapsulated frame with the lifetime of the underlying buffer, so it can outlive the
    /// view.
    pub fn into_payload(self) -> &'a [u8] {
        let data: &'a [u8] = self.buffer.as_ref();
        &data[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// Sets the flags byte.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS.start] = value;
    }

    /// Sets or clears the I flag, leaving the other flag bits.
    pub fn set_i_flag(&mut self, value: bool) {
        let flags = self.flags();
        self.set_flags(if value {
            flags | FLAG_I
        } else {
            flags & !FLAG_I
        });
    }

    /// Sets the VNI (the low 24 bits of `value`), leaving the reserved byte after it.
    pub fn set_vni(&mut self, value: u32) {
        let data = self.buffer.as_mut();
        let reserved = u32::from(data[field::RESERVED2.start]);
        write_u32(
            &mut data[field::VNI_WORD],
            ((value & VNI_MAX) << 8) | reserved,
        );
    }

    /// Zeroes every reserved bit (flags other than I, both reserved fields).
    pub fn clear_reserved(&mut self) {
        let flags = self.flags() & FLAG_I;
        self.set_flags(flags);
        let data = self.buffer.as_mut();
        data[field::RESERVED1].fill(0);
        data[field::RESERVED2].fill(0);
    }

    /// The encapsulated frame, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for VxlanPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A VXLAN header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VxlanRepr {
    /// The 24-bit VNI.
    pub vni: u32,
}

impl VxlanRepr {
    /// Reads the VNI. Only reads: whether a clear I flag or set reserved bits are acceptable is
    /// the caller's policy (`i_flag`, `has_reserved_bits`).
    pub fn parse<T: AsRef<[u8]>>(packet: &VxlanPacket<T>) -> Result<VxlanRepr> {
        packet.check_len()?;
        Ok(VxlanRepr { vni: packet.vni() })
    }

    /// The header length this repr emits (8).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header: flags I only, reserved fields zero, the VNI (low 24 bits).
    ///
    /// # Panics
    /// If the buffer is shorter than 8 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut VxlanPacket<T>) {
        packet.set_flags(FLAG_I);
        packet.clear_reserved();
        packet.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7348 section 5: flags 0x08 (I), reserved zero, VNI 42, reserved zero; then the start
    // of an inner Ethernet frame.
    static PACKET_BYTES: [u8; 12] = [
        0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0xff, 0xff, 0xff, 0xff,
    ];

    static PAYLOAD_BYTES: [u8; 4] = [0xff, 0xff, 0xff, 0xff];

    #[test]
    fn deconstruct() {
        let packet = VxlanPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.flags(), FLAG_I);
        assert!(packet.i_flag());
        assert_eq!(packet.vni(), 42);
        assert!(!packet.has_reserved_bits());
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 12];
        let mut packet = VxlanPacket::new_unchecked(&mut bytes[..]);
        packet.set_flags(0);
        packet.set_i_flag(true);
        packet.clear_reserved();
        packet.set_vni(42);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(packet.into_inner(), &PACKET_BYTES[..]);
    }

    #[test]
    fn parse_repr() {
        let packet = VxlanPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(VxlanRepr::parse(&packet), Ok(VxlanRepr { vni: 42 }));
    }

    #[test]
    fn emit_repr() {
        let repr = VxlanRepr { vni: 42 };
        assert_eq!(repr.buffer_len(), 8);
        let mut bytes = [0xa5u8; 12];
        let mut packet = VxlanPacket::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(VxlanPacket::new_checked(&PACKET_BYTES[..len]), Err(Error));
            assert!(VxlanRepr::parse(&VxlanPacket::new_unchecked(&PACKET_BYTES[..len])).is_err());
        }
        assert!(VxlanPacket::new_checked(&PACKET_BYTES[..8])
            .unwrap()
            .payload()
            .is_empty());
    }

    #[test]
    fn vni_is_24_bits() {
        let mut bytes = [0u8; 8];
        let mut packet = VxlanPacket::new_unchecked(&mut bytes[..]);
        packet.set_vni(VNI_MAX);
        assert_eq!(packet.vni(), VNI_MAX);
        packet.set_vni(0x0123_4567); // the top byte is dropped
        assert_eq!(packet.vni(), 0x23_4567);
        assert_eq!(bytes, [0, 0, 0, 0, 0x23, 0x45, 0x67, 0]);
        VxlanRepr { vni: 0xff00_0001 }.emit(&mut VxlanPacket::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, [0x08, 0, 0, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn reserved_bits() {
        // RFC 7348 section 5: every bit but I is reserved; each one is reported, and
        // clear_reserved removes it without touching I or the VNI.
        for byte in [0usize, 1, 2, 3, 7] {
            for bit in 0..8 {
                let mut bytes = PACKET_BYTES;
                bytes[byte] ^= 1 << bit;
                let mut packet = VxlanPacket::new_checked(&mut bytes[..]).unwrap();
                let flipped_i = byte == 0 && 1 << bit == FLAG_I;
                assert_eq!(
                    packet.has_reserved_bits(),
                    !flipped_i,
                    "byte {byte} bit {bit}"
                );
                assert_eq!(packet.vni(), 42);
                packet.clear_reserved();
                assert!(!packet.has_reserved_bits());
                assert_eq!(packet.i_flag(), !flipped_i);
                assert_eq!(packet.vni(), 42);
            }
        }
        // set_vni keeps the reserved byte; the I flag clear is not a reserved bit.
        let mut bytes = [0u8, 0, 0, 0, 0, 0, 0, 0x5a];
        let mut packet = VxlanPacket::new_unchecked(&mut bytes[..]);
        packet.set_vni(7);
        assert_eq!(packet.vni(), 7);
        assert!(packet.has_reserved_bits());
        assert!(!packet.i_flag());
        assert_eq!(VxlanRepr::parse(&packet), Ok(VxlanRepr { vni: 7 }));
    }
}
