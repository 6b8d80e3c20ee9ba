//! Packet edits that flows ask for (`set_field` and its aliases), keeping checksums right.

use super::*;

/// Writes a packet field in place, keeping the IPv4 and TCP/UDP checksums right. Fields the
/// packet does not have are left alone.
pub(super) fn set_packet_field(buf: &mut PacketBuf, field: Field, value: u64) {
    let frame = buf.frame_mut();
    if frame.len() < ETH_LEN {
        return;
    }
    match field {
        Field::DlSrc => frame[6..12].copy_from_slice(&flow::key::u64_mac(value)),
        Field::DlDst => frame[0..6].copy_from_slice(&flow::key::u64_mac(value)),
        Field::NwSrc | Field::NwDst | Field::NwTtl | Field::TpSrc | Field::TpDst => {
            if frame[12..14] != [0x08, 0x00] {
                return;
            }
            let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[ETH_LEN..]) else {
                return;
            };
            let proto = ip.next_header();
            let first = ip.frag_offset() == 0;
            if field == Field::NwTtl {
                let old = u16::from_be_bytes([ip.hop_limit(), u8::from(proto)]);
                let new = u16::from_be_bytes([value as u8, u8::from(proto)]);
                ip.set_hop_limit(value as u8);
                let c = checksum::update16(ip.checksum(), old, new);
                ip.set_checksum(c);
                return;
            }
            // Where the TCP/UDP checksum is (a zero UDP checksum means none).
            let l4_csum = |l4: &[u8]| match proto {
                IpProtocol::Tcp if first && l4.len() >= 20 => Some(16),
                IpProtocol::Udp if first && l4.len() >= 8 && l4[6..8] != [0, 0] => Some(6),
                _ => None,
            };
            let patch = |l4: &mut [u8], o: usize, c: u16| {
                let c = if proto == IpProtocol::Udp && c == 0 {
                    0xffff
                } else {
                    c
                };
                l4[o..o + 2].copy_from_slice(&c.to_be_bytes());
            };
            if matches!(field, Field::NwSrc | Field::NwDst) {
                let old = if field == Field::NwSrc {
                    ip.src_addr()
                } else {
                    ip.dst_addr()
                };
                let new = Ipv4Addr::from(value as u32);
                if field == Field::NwSrc {
                    ip.set_src_addr(new);
                } else {
                    ip.set_dst_addr(new);
                }
                let c = checksum::update32(ip.checksum(), u32::from(old), u32::from(new));
                ip.set_checksum(c);
                // The pseudo-header changed: patch the TCP/UDP checksum too.
                let l4 = ip.payload_mut();
                if let Some(o) = l4_csum(l4) {
                    let old_c = u16::from_be_bytes([l4[o], l4[o + 1]]);
                    patch(
                        l4,
                        o,
                        checksum::update32(old_c, u32::from(old), u32::from(new)),
                    );
                }
                return;
            }
            let l4 = ip.payload_mut();
            let ports_ok =
                matches!(proto, IpProtocol::Tcp | IpProtocol::Udp) && first && l4.len() >= 8;
            if !ports_ok {
                return;
            }
            let at = if field == Field::TpSrc { 0 } else { 2 };
            let old = u16::from_be_bytes([l4[at], l4[at + 1]]);
            let new = value as u16;
            l4[at..at + 2].copy_from_slice(&new.to_be_bytes());
            if let Some(o) = l4_csum(l4) {
                let old_c = u16::from_be_bytes([l4[o], l4[o + 1]]);
                patch(l4, o, checksum::update16(old_c, old, new));
            }
        }
        Field::TunId | Field::TunSrc | Field::TunDst | Field::Reg(_) => {}
    }
}
