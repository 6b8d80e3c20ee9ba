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

/// The longer header of a TAP that carries UDP-tunnel GSO (`struct
/// virtio_net_hdr_v1_hash_tunnel`, 24 bytes): the 12 bytes above (`num_buffers` in the padding),
/// the hash fields the TAP leaves zero (8), then the offsets of the outer transport header and
/// of the inner network header. The switch asks for it with `TUNSETVNETHDRSZ` 24 on the
/// underlay's TAP, whose frames are whole VXLAN datagrams with their outer headers.
pub mod tunnel {
    use super::{Error, Field, Result, VnetHdr};

    mod field {
        use super::Field;
        pub const OUTER_TH: Field = 20..22;
        pub const INNER_NH: Field = 22..24;
    }

    /// Bytes of header on the underlay's TAP.
    pub const HEADER_LEN: usize = 24;

    /// `gso_type`: the GSO frame is inside a UDP tunnel over IPv4 (outer header).
    pub const GSO_UDP_TUNNEL_IPV4: u8 = 0x20;
    /// `gso_type`: the GSO frame is inside a UDP tunnel over IPv6.
    pub const GSO_UDP_TUNNEL_IPV6: u8 = 0x40;
    /// `flags`: the outer UDP checksum is to be computed per segment (the field holds the
    /// pseudo-header sum).
    pub const F_UDP_TUNNEL_CSUM: u8 = 0x08;

    /// The tunnel header, parsed: the plain part and the two offsets.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct TunnelHdr {
        pub base: VnetHdr,
        /// Offset of the outer UDP header from the frame's start.
        pub outer_th: u16,
        /// Offset of the inner IP header from the frame's start.
        pub inner_nh: u16,
    }

    impl TunnelHdr {
        /// Parses the first [`HEADER_LEN`] bytes.
        pub fn parse(b: &[u8]) -> Result<TunnelHdr> {
            if b.len() < HEADER_LEN {
                return Err(Error);
            }
            let u = |r: Field| u16::from_le_bytes([b[r.start], b[r.start + 1]]);
            Ok(TunnelHdr {
                base: VnetHdr::parse(b)?,
                outer_th: u(field::OUTER_TH),
                inner_nh: u(field::INNER_NH),
            })
        }

        /// Writes the header into the first [`HEADER_LEN`] bytes (hash fields zero).
        pub fn emit(&self, b: &mut [u8]) {
            b[..HEADER_LEN].fill(0);
            self.base.emit(b);
            b[field::OUTER_TH].copy_from_slice(&self.outer_th.to_le_bytes());
            b[field::INNER_NH].copy_from_slice(&self.inner_nh.to_le_bytes());
        }

        /// A GSO frame inside a UDP tunnel (either outer IP version).
        pub fn is_tunnel_gso(&self) -> bool {
            self.base.gso_type & (GSO_UDP_TUNNEL_IPV4 | GSO_UDP_TUNNEL_IPV6) != 0
        }

        /// The inner GSO type (TCPv4/TCPv6, with the ECN bit), tunnel bits removed.
        pub fn inner_gso_type(&self) -> u8 {
            self.base.gso_type & !(GSO_UDP_TUNNEL_IPV4 | GSO_UDP_TUNNEL_IPV6)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::super::{F_NEEDS_CSUM, GSO_ECN, GSO_TCPV4};
        use super::*;

        /// What the kernel's tun driver hands a reader for a 30,000-byte TCP super-frame over
        /// VXLAN/UDP/IPv4 with the outer UDP checksum on (captured on this project's lab:
        /// flags 0x09, gso_type 0x21, hdr_len 104, gso_size 1398, csum_start 84, csum_offset
        /// 16, outer_th 34, inner_nh 64).
        const KERNEL: [u8; 24] = [
            0x09, 0x21, 104, 0, 0x76, 0x05, 84, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 34, 0, 64,
            0,
        ];

        #[test]
        fn parses_what_the_kernel_writes_and_emits_it_back() {
            let h = TunnelHdr::parse(&KERNEL).unwrap();
            assert_eq!(h.base.flags, F_NEEDS_CSUM | F_UDP_TUNNEL_CSUM);
            assert!(h.is_tunnel_gso() && h.base.needs_csum());
            assert_eq!(h.inner_gso_type(), GSO_TCPV4);
            assert_eq!((h.base.hdr_len, h.base.gso_size), (104, 1398));
            assert_eq!((h.base.csum_start, h.base.csum_offset), (84, 16));
            assert_eq!((h.outer_th, h.inner_nh), (34, 64));
            let mut b = [0xaau8; 24];
            h.emit(&mut b);
            assert_eq!(b, KERNEL);
            assert!(TunnelHdr::parse(&KERNEL[..23]).is_err());
        }

        #[test]
        fn the_inner_type_keeps_the_ecn_bit() {
            let h = TunnelHdr {
                base: VnetHdr {
                    gso_type: GSO_UDP_TUNNEL_IPV6 | GSO_TCPV4 | GSO_ECN,
                    ..Default::default()
                },
                ..Default::default()
            };
            assert!(h.is_tunnel_gso());
            assert_eq!(h.inner_gso_type(), GSO_TCPV4 | GSO_ECN);
            assert!(!TunnelHdr::default().is_tunnel_gso());
        }
    }
}
