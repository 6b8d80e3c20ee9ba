//! Neighbour discovery (RFC 4861): the neighbour solicitation and advertisement messages that
//! IPv6 uses where IPv4 uses ARP, and their link-layer address options. The ICMPv6 header
//! (type, code, checksum) is [`super::Icmpv6Packet`]'s; this view adds the body.

use std::net::Ipv6Addr;

use super::{Error, EthernetAddress, Result};

/// Neighbour solicitation (RFC 4861 section 4.3).
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
/// Neighbour advertisement (RFC 4861 section 4.4).
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;
/// Option: source link-layer address.
pub const OPT_SOURCE_LL_ADDR: u8 = 1;
/// Option: target link-layer address.
pub const OPT_TARGET_LL_ADDR: u8 = 2;
/// Advertisement flag: the sender is a router.
pub const FLAG_ROUTER: u8 = 0x80;
/// Advertisement flag: sent in response to a solicitation.
pub const FLAG_SOLICITED: u8 = 0x40;
/// Advertisement flag: the receiver should replace a cached link-layer address.
pub const FLAG_OVERRIDE: u8 = 0x20;
/// Hop limit every neighbour discovery message carries (and must arrive with).
pub const HOP_LIMIT: u8 = 255;

/// Field ranges of a solicitation or advertisement, from the ICMPv6 header on.
pub mod field {
    use crate::wire::{Field, Rest};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// R, S, O flags of an advertisement (reserved in a solicitation).
    pub const FLAGS: usize = 4;
    pub const RESERVED: Field = 5..8;
    pub const TARGET: Field = 8..24;
    pub const OPTIONS: Rest = 24..;
    /// A link-layer address option for Ethernet: type, length in units of 8 bytes, address.
    pub const OPT_TYPE: usize = 0;
    pub const OPT_LEN: usize = 1;
    pub const OPT_LL_ADDR: Field = 2..8;
}

/// Length of a solicitation or advertisement without options.
pub const HEADER_LEN: usize = field::OPTIONS.start;
/// Length of an Ethernet link-layer address option.
pub const LL_OPTION_LEN: usize = field::OPT_LL_ADDR.end;

/// A read/write view of a neighbour solicitation or advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdiscPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NdiscPacket<T> {
    pub fn new_unchecked(buffer: T) -> NdiscPacket<T> {
        NdiscPacket { buffer }
    }

    /// Wraps a buffer holding at least the 24 bytes up to the target address.
    pub fn new_checked(buffer: T) -> Result<NdiscPacket<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error);
        }
        Ok(NdiscPacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn target_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::TARGET]);
        Ipv6Addr::from(a)
    }

    /// The link-layer address of the first option of type `kind` (source or target), if the
    /// options are well formed up to it.
    pub fn ll_addr_option(&self, kind: u8) -> Option<EthernetAddress> {
        let mut opts = &self.buffer.as_ref()[field::OPTIONS];
        while opts.len() >= 2 {
            let len = opts[field::OPT_LEN] as usize * 8;
            if len == 0 || len > opts.len() {
                return None;
            }
            if opts[field::OPT_TYPE] == kind && len >= LL_OPTION_LEN {
                let mut m = [0u8; 6];
                m.copy_from_slice(&opts[field::OPT_LL_ADDR]);
                return Some(EthernetAddress(m));
            }
            opts = &opts[len..];
        }
        None
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NdiscPacket<T> {
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the flags byte and clears the reserved bits after it.
    pub fn set_flags(&mut self, value: u8) {
        let b = self.buffer.as_mut();
        b[field::FLAGS] = value;
        b[field::RESERVED].fill(0);
    }

    pub fn set_target_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&value.octets());
    }

    /// Writes one Ethernet link-layer address option of type `kind` right after the target;
    /// the buffer must hold [`HEADER_LEN`] + [`LL_OPTION_LEN`] bytes.
    pub fn set_ll_addr_option(&mut self, kind: u8, mac: EthernetAddress) {
        let opt = &mut self.buffer.as_mut()[field::OPTIONS];
        opt[field::OPT_TYPE] = kind;
        opt[field::OPT_LEN] = (LL_OPTION_LEN / 8) as u8;
        opt[field::OPT_LL_ADDR].copy_from_slice(&mac.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Icmpv6Packet;

    /// A neighbour solicitation for fd00:10:1:1::1 from fd00:10:1:1::2 (MAC 0a:58:0a:01:01:02),
    /// as Linux sends it to the solicited-node multicast address ff02::1:ff00:1 (ICMPv6 part).
    static NS: [u8; 32] = [
        0x87, 0x00, 0x6a, 0x1a, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01, 0x0a, 0x58, 0x0a, 0x01,
        0x01, 0x02,
    ];

    #[test]
    fn deconstruct_a_solicitation() {
        let p = NdiscPacket::new_checked(&NS[..]).unwrap();
        assert_eq!(p.msg_type(), TYPE_NEIGHBOR_SOLICIT);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(
            p.target_addr(),
            "fd00:10:1:1::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            p.ll_addr_option(OPT_SOURCE_LL_ADDR),
            Some(EthernetAddress([0x0a, 0x58, 0x0a, 1, 1, 2]))
        );
        assert_eq!(p.ll_addr_option(OPT_TARGET_LL_ADDR), None);
        let src: Ipv6Addr = "fd00:10:1:1::2".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
        assert!(Icmpv6Packet::new_checked(&NS[..])
            .unwrap()
            .verify_checksum(&src, &dst));
    }

    #[test]
    fn construct_an_advertisement() {
        let mut b = [0xffu8; HEADER_LEN + LL_OPTION_LEN];
        let mut p = NdiscPacket::new_unchecked(&mut b[..]);
        p.set_msg_type(TYPE_NEIGHBOR_ADVERT);
        p.set_msg_code(0);
        p.set_flags(FLAG_ROUTER | FLAG_SOLICITED | FLAG_OVERRIDE);
        p.set_target_addr("fd00:10:1:1::1".parse().unwrap());
        p.set_ll_addr_option(
            OPT_TARGET_LL_ADDR,
            EthernetAddress([0x0a, 0x58, 1, 2, 3, 4]),
        );
        assert_eq!(&b[4..8], &[0xe0, 0, 0, 0]);
        assert_eq!(&b[24..32], &[2, 1, 0x0a, 0x58, 1, 2, 3, 4]);
        let p = NdiscPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.flags(), 0xe0);
        assert_eq!(
            p.ll_addr_option(OPT_TARGET_LL_ADDR),
            Some(EthernetAddress([0x0a, 0x58, 1, 2, 3, 4]))
        );
    }

    #[test]
    fn short_or_bad_options_never_panic() {
        assert!(NdiscPacket::new_checked(&NS[..23]).is_err());
        let mut b = NS;
        b[25] = 0; // option length 0 would loop forever
        let p = NdiscPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.ll_addr_option(OPT_SOURCE_LL_ADDR), None);
        b[25] = 9; // longer than the buffer
        let p = NdiscPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.ll_addr_option(OPT_SOURCE_LL_ADDR), None);
        let p = NdiscPacket::new_checked(&NS[..27]).unwrap();
        assert_eq!(p.ll_addr_option(OPT_SOURCE_LL_ADDR), None);
    }
}
