//! Zero-copy wire views.
//!
//! Every protocol follows the same pattern (after smoltcp's `wire` module):
//!
//! * a view such as [`UdpPacket<T>`] wraps any `T: AsRef<[u8]>` without copying. Getters need
//!   `AsRef<[u8]>`, setters need `AsMut<[u8]>` as well;
//! * `new_unchecked` wraps the buffer as is, `new_checked` first validates every length the
//!   accessors rely on, so that **no getter can panic** on a view built with `new_checked`,
//!   whatever the bytes were. `into_inner` gives the buffer back;
//! * field offsets are named ranges in a `field` module of each protocol;
//! * where a header has a natural parsed form there is an owned `Repr` with `parse`, `emit` and
//!   `buffer_len` (the header length; the payload is the caller's);
//! * protocol numbers are lossless enums (`EtherType::Unknown(u16)` round-trips any value).
//!
//! Setters trust their arguments: a setter that changes a length field (`set_total_len`,
//! `set_len`, `set_payload_len`, `set_header_len`) to more than the buffer holds makes the
//! payload accessors panic afterwards, exactly as in smoltcp. Parse errors are the zero-sized
//! [`Error`], meant to become a counted drop reason.

use core::fmt;

pub mod arp;
pub mod checksum;
pub mod ethernet;
#[doc(hidden)]
pub mod exercise;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ndisc;
pub mod tcp;
pub mod udp;
pub mod vnet;
pub mod vxlan;

#[cfg(test)]
mod fixtures;

/// Helpers shared by the wire tests.
#[cfg(test)]
mod testutil {
    /// A small deterministic generator (xorshift64*), so the tests need no extra crate.
    pub struct Rng(u64);
    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed | 1)
        }
        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.next_u64() as u8;
            }
        }
    }
}

pub use self::arp::{ArpOperation, ArpPacket, ArpRepr};
pub use self::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use self::icmpv4::Icmpv4Packet;
pub use self::icmpv6::Icmpv6Packet;
pub use self::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use self::ipv6::{Ipv6Packet, Ipv6Repr};
pub use self::ndisc::NdiscPacket;
pub use self::tcp::TcpPacket;
pub use self::udp::{UdpPacket, UdpRepr};
pub use self::vxlan::{VxlanPacket, VxlanRepr};

/// A byte range of a header field.
pub type Field = core::ops::Range<usize>;
/// The byte range from a header's end to the end of the buffer.
pub type Rest = core::ops::RangeFrom<usize>;

/// The packet is truncated, or a length, version or type field is inconsistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("truncated or malformed packet")
    }
}

impl std::error::Error for Error {}

/// The result of parsing or checking a packet.
pub type Result<T> = core::result::Result<T, Error>;

/// Reads a big-endian `u16` from the first two bytes of `b` (a two-byte field).
#[inline]
fn read_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Reads a big-endian `u32` from the first four bytes of `b` (a four-byte field).
#[inline]
fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Writes `v` big-endian into the first two bytes of `b`.
#[inline]
fn write_u16(b: &mut [u8], v: u16) {
    b[..2].copy_from_slice(&v.to_be_bytes());
}

/// Writes `v` big-endian into the first four bytes of `b`.
#[inline]
fn write_u32(b: &mut [u8], v: u32) {
    b[..4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display() {
        assert_eq!(Error.to_string(), "truncated or malformed packet");
        assert_eq!(core::mem::size_of::<Error>(), 0);
    }

    #[test]
    fn big_endian_helpers() {
        let mut b = [0u8; 4];
        write_u16(&mut b, 0x1234);
        assert_eq!(b, [0x12, 0x34, 0, 0]);
        assert_eq!(read_u16(&b), 0x1234);
        write_u32(&mut b, 0xdead_beef);
        assert_eq!(b, [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(read_u32(&b), 0xdead_beef);
    }
}
