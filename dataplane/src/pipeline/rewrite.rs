//! Packet edits that flows ask for (`set_field` and its aliases), keeping checksums right.

use super::*;

/// Writes a packet field in place, keeping the IPv4 and TCP/UDP checksums right. Fields the
/// packet does not have are left alone.
///
/// A frame a pod sent with NEEDS_CSUM (TX checksum offload, TSO super-frames too) carries a
/// *partial* TCP/UDP checksum: the field at `csum_start + csum_offset` holds the pseudo-header
/// sum, folded but not inverted, and whoever completes it sums the rest of the segment into
/// it. Such a field follows the kernel's `inet_proto_csum_replace4(..., pseudohdr)` rule: an
/// address (part of the pseudo-header) is replaced in the sum itself, not in its complement,
/// and a port (summed at completion) leaves it alone.
pub(super) fn set_packet_field(buf: &mut PacketBuf, field: Field, value: u64) {
    let vnet = buf.vnet;
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
            let l4_start = ETH_LEN + ip.header_len();
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
            // The checksum at `o` is the partial one the virtio-net header points at.
            let partial = |o: usize| {
                vnet.needs_csum()
                    && vnet.csum_start as usize == l4_start
                    && vnet.csum_offset as usize == o
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
                    let (old, new) = (u32::from(old), u32::from(new));
                    if partial(o) {
                        // The sum itself: fold(sum - old + new), i.e. RFC 1624 on its
                        // complement.
                        let c = !checksum::update32(!old_c, old, new);
                        l4[o..o + 2].copy_from_slice(&c.to_be_bytes());
                    } else {
                        patch(l4, o, checksum::update32(old_c, old, new));
                    }
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
            // A partial checksum does not cover the ports yet: nothing to update.
            if let Some(o) = l4_csum(l4).filter(|&o| !partial(o)) {
                let old_c = u16::from_be_bytes([l4[o], l4[o + 1]]);
                patch(l4, o, checksum::update16(old_c, old, new));
            }
        }
        Field::TunId
        | Field::TunSrc
        | Field::TunDst
        | Field::Reg(_)
        | Field::InPort
        | Field::PktMark
        | Field::DlType
        | Field::NwProto => {}
        // 802.1Q tags: the frame's tag follows the key's TCI (0x1000: present).
        Field::VlanTci | Field::VlanVid | Field::VlanPcp => {
            let cur = EthernetFrame::new_unchecked(&frame[..]).vlan_tci();
            let want = match field {
                Field::VlanTci => value as u16,
                // The present bit and the VID; the priority stays.
                Field::VlanVid => (value as u16 & 0x1fff) | (cur.unwrap_or(0) & 0xe000),
                // A priority for a frame without a tag changes nothing.
                _ => match cur {
                    Some(tci) => (tci & 0x1fff) | 0x1000 | ((value as u16 & 7) << 13),
                    None => return,
                },
            };
            set_vlan(buf, (want & 0x1000 != 0).then_some(want & !0x1000));
        }
        Field::NwTos => set_dscp(frame, value as u8),
    }
}

/// `mod_nw_tos`: writes the DSCP bits of the IPv4 TOS byte (header checksum updated) or the
/// IPv6 traffic class; the ECN bits stay as the packet has them.
fn set_dscp(frame: &mut [u8], tos: u8) {
    let ethertype = match EthernetFrame::new_checked(&frame[..]) {
        Ok(eth) => eth.ethertype(),
        Err(_) => return,
    };
    match ethertype {
        EtherType::Ipv4 => {
            let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[ETH_LEN..]) else {
                return;
            };
            let old = ip.dscp_ecn();
            let new = (tos & !ECN_MASK) | (old & ECN_MASK);
            if new != old {
                let ver_ihl = (ip.version() << 4) | (ip.header_len() / 4) as u8;
                let sum = checksum::update16(
                    ip.checksum(),
                    u16::from_be_bytes([ver_ihl, old]),
                    u16::from_be_bytes([ver_ihl, new]),
                );
                ip.set_dscp_ecn(new);
                ip.set_checksum(sum);
            }
        }
        EtherType::Ipv6 => {
            let Ok(mut ip) = Ipv6Packet::new_checked(&mut frame[ETH_LEN..]) else {
                return;
            };
            let old = ip.traffic_class();
            ip.set_traffic_class((tos & !ECN_MASK) | (old & ECN_MASK));
        }
        _ => {}
    }
}

/// Gives the frame the 802.1Q tag `tci` (`None`: no tag): pushes one into the headroom (the
/// MAC addresses move 4 bytes to the front), pops it (they move back), or rewrites the TCI in
/// place. A virtio-net header's offsets (checksum start, GSO header length) move with the
/// payload. A frame too short for its header, or without headroom, is left as it is.
pub(super) fn set_vlan(buf: &mut PacketBuf, tci: Option<u16>) {
    let Ok(eth) = EthernetFrame::new_checked(buf.frame()) else {
        return;
    };
    match (eth.vlan_tci(), tci) {
        (None, None) => {}
        (Some(_), Some(t)) => EthernetFrame::new_unchecked(buf.frame_mut()).set_vlan_tci(t),
        (None, Some(t)) => {
            if buf.prepend(VLAN_TAG_LEN).is_none() {
                return;
            }
            let f = buf.frame_mut();
            f.copy_within(VLAN_TAG_LEN..VLAN_TAG_LEN + 12, 0);
            let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
            eth.set_ethertype(EtherType::Vlan);
            eth.set_vlan_tci(t);
            shift_vnet(buf, VLAN_TAG_LEN as i32);
        }
        (Some(_), None) => {
            buf.frame_mut().copy_within(0..12, VLAN_TAG_LEN);
            buf.advance(VLAN_TAG_LEN);
            shift_vnet(buf, -(VLAN_TAG_LEN as i32));
        }
    }
}

/// Bytes an 802.1Q tag adds (TPID and TCI).
const VLAN_TAG_LEN: usize = 4;

fn shift_vnet(buf: &mut PacketBuf, by: i32) {
    let h = &mut buf.vnet;
    if h.needs_csum() {
        h.csum_start = (h.csum_start as i32 + by).max(0) as u16;
    }
    if h.hdr_len != 0 {
        h.hdr_len = (h.hdr_len as i32 + by).max(0) as u16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::complete_checksum;
    use crate::wire::vnet::{self, VnetHdr};
    use crate::wire::{TcpPacket, UdpPacket};

    const SRC: [u8; 4] = [10, 1, 1, 2];
    const DST: [u8; 4] = [10, 1, 2, 2];
    const L4: usize = ETH_LEN + IPV4_LEN;

    #[test]
    fn mod_nw_tos_writes_dscp_and_keeps_ecn() {
        for ecn in [ECN_NOT_ECT, ECN_ECT0, ECN_ECT1, ECN_CE] {
            let mut f = crate::sample::udp_frame([2; 6], [4; 6], SRC, DST, 64, 10);
            f[ETH_LEN + 1] = 0x20 | ecn;
            Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]).fill_checksum();
            let mut buf = PacketBuf::from_frame(&f);
            // The flow key holds the whole byte; a mod_nw_tos:184 wrote its DSCP bits.
            set_packet_field(&mut buf, Field::NwTos, 0xb8);
            let ip = Ipv4Packet::new_checked(&buf.frame()[ETH_LEN..]).unwrap();
            assert_eq!(ip.dscp_ecn(), 0xb8 | ecn, "ECN {ecn} survives");
            assert!(ip.verify_checksum());
        }
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6([0xfd; 16], [0xfe; 16], 64)
            .udp(1, 2);
        let mut f = Vec::new();
        b.write(&mut f, &[0; 4]).unwrap();
        f[ETH_LEN] = 0x60;
        f[ETH_LEN + 1] = ECN_ECT1 << 4;
        let mut buf = PacketBuf::from_frame(&f);
        set_packet_field(&mut buf, Field::NwTos, 0x28);
        let ip = Ipv6Packet::new_checked(&buf.frame()[ETH_LEN..]).unwrap();
        assert_eq!(ip.traffic_class(), 0x28 | ECN_ECT1);
    }

    fn tcp_frame(payload: usize) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4(SRC, DST, 64)
            .tcp(40000, 5001, 77, 500)
            .ack(9);
        let data: Vec<u8> = (0..payload).map(|i| (i * 13 % 251) as u8).collect();
        let mut out = Vec::new();
        b.write(&mut out, &data).unwrap();
        out
    }

    /// The frame as a pod with TX checksum offload hands it over: the TCP/UDP checksum field
    /// holds the pseudo-header sum (folded, not inverted), the virtio-net header says where.
    /// `mss`: a TSO super-frame cut into segments of that size.
    fn partial(mut f: Vec<u8>, mss: u16) -> PacketBuf {
        let proto = f[ETH_LEN + 9];
        let o = if proto == 6 { 16 } else { 6 };
        let len = (f.len() - L4) as u32;
        let sum = checksum::pseudo_header_v4(SRC.into(), DST.into(), proto, len);
        f[L4 + o..L4 + o + 2].copy_from_slice(&checksum::fold(sum).to_be_bytes());
        let mut buf = PacketBuf::from_frame(&f);
        buf.vnet = VnetHdr {
            flags: vnet::F_NEEDS_CSUM,
            gso_type: if mss > 0 { vnet::GSO_TCPV4 } else { 0 },
            hdr_len: if mss > 0 { (L4 + 20) as u16 } else { 0 },
            gso_size: mss,
            csum_start: L4 as u16,
            csum_offset: o as u16,
        };
        buf
    }

    /// Completes the partial checksum as the switch (or the receiving kernel) would, and
    /// verifies the result over the frame's current pseudo-header.
    fn completes_right(buf: &PacketBuf) -> bool {
        let mut f = buf.frame().to_vec();
        let h = buf.vnet;
        assert!(complete_checksum(
            &mut f,
            h.csum_start as usize,
            h.csum_offset as usize
        ));
        final_right(&f)
    }

    fn final_right(f: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(&f[ETH_LEN..]).unwrap();
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        ip.verify_checksum()
            && match ip.next_header() {
                IpProtocol::Tcp => TcpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum_v4(s, d),
                _ => UdpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum_v4(s, d),
            }
    }

    fn edits() -> [(Field, u64); 6] {
        [
            (Field::NwSrc, u32::from(Ipv4Addr::new(10, 1, 7, 9)) as u64),
            (
                Field::NwDst,
                u32::from(Ipv4Addr::new(192, 0, 2, 200)) as u64,
            ),
            (Field::TpSrc, 4242),
            (Field::TpDst, 65000),
            (Field::NwTtl, 3),
            (Field::DlDst, 0x0a58_0a01_0203),
        ]
    }

    #[test]
    fn set_field_on_partial_checksums_updates_the_pseudo_header_sum_and_leaves_ports_alone() {
        let udp = crate::sample::udp_frame([2; 6], [4; 6], SRC, DST, 64, 333);
        for (name, frame, mss) in [
            ("udp", udp, 0),
            ("tcp", tcp_frame(1000), 0),
            ("tso super-frame", tcp_frame(20_000), 1448),
        ] {
            for (field, value) in edits() {
                let mut buf = partial(frame.clone(), mss);
                assert!(completes_right(&buf), "{name}: the test frame itself");
                set_packet_field(&mut buf, field, value);
                assert!(
                    completes_right(&buf),
                    "{name}: {field:?} keeps the partial checksum completable"
                );
            }
            // Every edit at once, in a flow's order.
            let mut buf = partial(frame.clone(), mss);
            for (field, value) in edits() {
                set_packet_field(&mut buf, field, value);
            }
            assert!(completes_right(&buf), "{name}: all edits");
            assert_eq!(buf.vnet.csum_start as usize, L4, "{name}: header untouched");
        }
    }

    #[test]
    fn set_field_on_complete_checksums_still_updates_them() {
        let udp = crate::sample::udp_frame([2; 6], [4; 6], SRC, DST, 64, 333);
        for frame in [udp, tcp_frame(1000)] {
            for (field, value) in edits() {
                let mut buf = PacketBuf::from_frame(&frame);
                set_packet_field(&mut buf, field, value);
                assert!(final_right(buf.frame()), "{field:?}");
            }
        }
    }

    #[test]
    fn a_partial_checksum_elsewhere_leaves_the_field_as_a_final_checksum() {
        // NEEDS_CSUM pointing at another offset: the TCP field is a complete checksum.
        let mut buf = PacketBuf::from_frame(&tcp_frame(100));
        buf.vnet = VnetHdr {
            flags: vnet::F_NEEDS_CSUM,
            csum_start: (L4 + 4) as u16,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        set_packet_field(&mut buf, Field::NwDst, 0x0a01_0303);
        set_packet_field(&mut buf, Field::TpDst, 80);
        assert!(final_right(buf.frame()));
    }

    #[test]
    fn vlan_push_modify_pop_on_real_frames_keeps_offloads_right() {
        let udp = crate::sample::udp_frame([2; 6], [4; 6], SRC, DST, 64, 333);
        for (name, frame, mss) in [
            ("udp", udp, 0),
            ("tcp", tcp_frame(1000), 0),
            ("tso super-frame", tcp_frame(20_000), 1448),
        ] {
            let mut buf = partial(frame.clone(), mss);
            let before = buf.vnet;
            let untagged = buf.frame().to_vec();
            // mod_vlan_vid:20 on an untagged frame pushes a tag.
            set_packet_field(&mut buf, Field::VlanTci, 0x1000 | 20);
            let f = buf.frame();
            assert_eq!(f.len(), untagged.len() + 4, "{name}");
            assert_eq!(&f[..12], &untagged[..12], "{name}: MACs in front");
            assert_eq!(&f[12..16], &[0x81, 0x00, 0x00, 20], "{name}: TPID, TCI");
            assert_eq!(&f[16..], &untagged[12..], "{name}: the rest follows");
            let eth = EthernetFrame::new_checked(f).unwrap();
            assert_eq!(eth.vlan_id(), Some(20));
            assert_eq!(buf.vnet.csum_start, before.csum_start + 4, "{name}");
            if mss > 0 {
                assert_eq!(buf.vnet.hdr_len, before.hdr_len + 4, "{name}");
            }
            // The partial checksum still completes at the offsets the header now gives.
            let mut c = buf.frame().to_vec();
            let h = buf.vnet;
            assert!(complete_checksum(
                &mut c,
                h.csum_start as usize,
                h.csum_offset as usize
            ));
            c.drain(12..16);
            assert!(final_right(&c), "{name}: completes when tagged");
            // mod_vlan_pcp:5 and set_field vlan_vid rewrite the TCI in place.
            set_packet_field(&mut buf, Field::VlanPcp, 5);
            set_packet_field(&mut buf, Field::VlanVid, 0x1000 | 30);
            assert_eq!(&buf.frame()[12..16], &[0x81, 0x00, 0xa0, 30], "{name}");
            assert_eq!(buf.len(), untagged.len() + 4);
            // strip_vlan: back to the frame and header the pod sent.
            set_packet_field(&mut buf, Field::VlanTci, 0);
            assert_eq!(buf.frame(), &untagged[..], "{name}: popped");
            assert_eq!(buf.vnet, before, "{name}: header restored");
            assert!(completes_right(&buf), "{name}");
            // A priority alone does not tag an untagged frame; popping none does nothing.
            set_packet_field(&mut buf, Field::VlanPcp, 3);
            set_packet_field(&mut buf, Field::VlanTci, 0);
            assert_eq!(buf.frame(), &untagged[..], "{name}");
        }
        // A complete checksum needs nothing: the tag is outside of what it covers.
        let mut buf = PacketBuf::from_frame(&tcp_frame(100));
        set_packet_field(&mut buf, Field::VlanTci, 0x1000 | 7);
        assert_eq!(buf.vnet, VnetHdr::default());
        let mut c = buf.frame().to_vec();
        c.drain(12..16);
        assert!(final_right(&c));
    }
}
