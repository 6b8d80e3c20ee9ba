//! The virtio-net header a TAP opened with `IFF_VNET_HDR` puts in front of every frame
//! (`struct virtio_net_hdr`, 10 bytes, padded to 12 with `TUNSETVNETHDRSZ`; little-endian on
//! x86 and every little-endian host, which is what the kernel uses for TAPs by default).

use super::{Error, Field, Result};

mod field {
    use super::Field;
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const HDR_LEN: Field = 2..4;
    pub const GSO_SIZE: Field = 4..6;
    pub const CSUM_START: Field = 6..8;
    pub const CSUM_OFFSET: Field = 8..10;
}

/// Bytes of header the switch asks the TAP for.
pub const HEADER_LEN: usize = 12;

/// `flags`: the checksum from `csum_start` on is partial and must be completed.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum is known good.
pub const F_DATA_VALID: u8 = 2;

pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
pub const GSO_ECN: u8 = 0x80;

/// What the header says, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the first [`HEADER_LEN`] bytes.
    pub fn parse(b: &[u8]) -> Result<VnetHdr> {
        if b.len() < HEADER_LEN {
            return Err(Error);
        }
        let u = |r: Field| u16::from_le_bytes([b[r.start], b[r.start + 1]]);
        Ok(VnetHdr {
            flags: b[field::FLAGS],
            gso_type: b[field::GSO_TYPE],
            hdr_len: u(field::HDR_LEN),
            gso_size: u(field::GSO_SIZE),
            csum_start: u(field::CSUM_START),
            csum_offset: u(field::CSUM_OFFSET),
        })
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes (the padding is zeroed).
    pub fn emit(&self, b: &mut [u8]) {
        b[..HEADER_LEN].fill(0);
        b[field::FLAGS] = self.flags;
        b[field::GSO_TYPE] = self.gso_type;
        b[field::HDR_LEN].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[field::GSO_SIZE].copy_from_slice(&self.gso_size.to_le_bytes());
        b[field::CSUM_START].copy_from_slice(&self.csum_start.to_le_bytes());
        b[field::CSUM_OFFSET].copy_from_slice(&self.csum_offset.to_le_bytes());
    }

    /// A TCP segmentation request (TSO super-frame).
    pub fn is_tcp_gso(&self) -> bool {
        matches!(self.gso_type & !GSO_ECN, GSO_TCPV4 | GSO_TCPV6)
    }

    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let h = VnetHdr {
            flags: 1,
            gso_type: GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1398,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut b = [0xaau8; 12];
        h.emit(&mut b);
        assert_eq!(b, [1, 1, 66, 0, 0x76, 0x05, 34, 0, 16, 0, 0, 0]);
        assert_eq!(VnetHdr::parse(&b).unwrap(), h);
        assert!(h.is_tcp_gso() && h.needs_csum());
        assert!(VnetHdr::parse(&b[..11]).is_err());
    }
}
