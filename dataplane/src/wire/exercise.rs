//! Exercises every wire view on arbitrary bytes: the walk the fuzz target
//! (`fuzz/fuzz_targets/wire_parse.rs`) and the fixture tests share.
//!
//! After `new_checked` succeeds no getter may panic, whatever the bytes; the setters that keep
//! length fields unchanged may not panic either, and every checksum filler must produce a
//! checksum that verifies (checked with `assert!`: this module is for tests and fuzzing).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

/// What the fuzz target does with one input (inputs longer than 2048 bytes are cut).
pub fn fuzz_one(data: &[u8]) {
    let data = &data[..data.len().min(2048)];
    walk_all(data);
    let mut copy = [0u8; 2048];
    let copy = &mut copy[..data.len()];
    copy.copy_from_slice(data);
    mutate_all(copy);
    emit_errors(data);
}

/// Every view's `new_checked` and, when it succeeds, every getter, over `data`.
fn walk_all(data: &[u8]) {
    if let Ok(frame) = EthernetFrame::new_checked(data) {
        let _ = (
            frame.dst_addr(),
            frame.src_addr(),
            frame.ethertype(),
            frame.vlan_id(),
        );
        let _ = (
            frame.payload_ethertype(),
            frame.header_len(),
            frame.payload().len(),
        );
        assert!(EthernetRepr::parse(&frame).is_ok());
        walk_l3(frame.payload_ethertype(), frame.into_payload());
    }
    walk_l3(EtherType::Ipv4, data);
    walk_l3(EtherType::Ipv6, data);
    walk_l3(EtherType::Arp, data);
    for proto in [
        IpProtocol::Udp,
        IpProtocol::Tcp,
        IpProtocol::Icmp,
        IpProtocol::Icmpv6,
    ] {
        walk_l4(proto, data, None);
    }
    walk_vxlan(data);
    walk_ndisc(data);
    walk_vnet(data);
}

#[derive(Clone, Copy)]
enum Addrs {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

fn walk_l3(ethertype: EtherType, data: &[u8]) {
    match ethertype {
        EtherType::Arp => {
            if let Ok(arp) = ArpPacket::new_checked(data) {
                let _ = (arp.hardware_type(), arp.protocol_type(), arp.operation());
                let _ = (arp.hardware_len(), arp.protocol_len());
                let _ = (arp.source_hardware_addr(), arp.source_protocol_addr());
                let _ = (arp.target_hardware_addr(), arp.target_protocol_addr());
                assert!(ArpRepr::parse(&arp).is_ok());
            }
        }
        EtherType::Ipv4 => {
            if let Ok(ip) = Ipv4Packet::new_checked(data) {
                let _ = (
                    ip.version(),
                    ip.header_len(),
                    ip.dscp_ecn(),
                    ip.total_len(),
                    ip.ident(),
                );
                let _ = (
                    ip.dont_frag(),
                    ip.more_frags(),
                    ip.frag_offset(),
                    ip.is_fragment(),
                );
                let _ = (
                    ip.hop_limit(),
                    ip.next_header(),
                    ip.checksum(),
                    ip.verify_checksum(),
                );
                let _ = (ip.options().len(), ip.payload().len());
                let repr = Ipv4Repr::parse(&ip).unwrap();
                assert_eq!(repr.payload_len, ip.payload().len());
                let addrs = Addrs::V4(ip.src_addr(), ip.dst_addr());
                walk_l4(ip.next_header(), ip.into_payload(), Some(addrs));
            }
        }
        EtherType::Ipv6 => {
            if let Ok(ip) = Ipv6Packet::new_checked(data) {
                let _ = (
                    ip.version(),
                    ip.traffic_class(),
                    ip.flow_label(),
                    ip.payload_len(),
                );
                let _ = (ip.next_header(), ip.hop_limit(), ip.payload().len());
                let repr = Ipv6Repr::parse(&ip).unwrap();
                assert_eq!(repr.payload_len, ip.payload().len());
                let addrs = Addrs::V6(ip.src_addr(), ip.dst_addr());
                walk_l4(ip.next_header(), ip.into_payload(), Some(addrs));
            }
        }
        EtherType::Vlan | EtherType::Unknown(_) => {}
    }
}

fn walk_l4(proto: IpProtocol, data: &[u8], addrs: Option<Addrs>) {
    let any_v4 = Addrs::V4(Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST);
    let any_v6 = Addrs::V6(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    let all_addrs = [addrs.unwrap_or(any_v4), any_v4, any_v6];
    match proto {
        IpProtocol::Udp => {
            if let Ok(udp) = UdpPacket::new_checked(data) {
                let _ = (
                    udp.src_port(),
                    udp.dst_port(),
                    udp.len(),
                    udp.is_empty(),
                    udp.checksum(),
                );
                for a in all_addrs {
                    let _ = match a {
                        Addrs::V4(s, d) => udp.verify_checksum_v4(s, d),
                        Addrs::V6(s, d) => udp.verify_checksum_v6(&s, &d),
                    };
                }
                assert!(UdpRepr::parse(&udp).is_ok());
                if udp.dst_port() == vxlan::UDP_PORT {
                    walk_vxlan(udp.into_payload());
                }
            }
        }
        IpProtocol::Tcp => {
            if let Ok(tcp) = TcpPacket::new_checked(data) {
                let _ = (
                    tcp.src_port(),
                    tcp.dst_port(),
                    tcp.seq_number(),
                    tcp.ack_number(),
                );
                let _ = (
                    tcp.header_len(),
                    tcp.flags(),
                    tcp.fin(),
                    tcp.syn(),
                    tcp.rst(),
                );
                let _ = (tcp.psh(), tcp.ack(), tcp.urg(), tcp.ece(), tcp.cwr());
                let _ = (tcp.window_len(), tcp.checksum(), tcp.urgent_at());
                let _ = (tcp.options().len(), tcp.payload().len());
                for a in all_addrs {
                    let _ = match a {
                        Addrs::V4(s, d) => tcp.verify_checksum_v4(s, d),
                        Addrs::V6(s, d) => tcp.verify_checksum_v6(&s, &d),
                    };
                }
            }
        }
        IpProtocol::Icmp => {
            if let Ok(icmp) = Icmpv4Packet::new_checked(data) {
                let _ = (
                    icmp.msg_type(),
                    icmp.msg_code(),
                    icmp.checksum(),
                    icmp.verify_checksum(),
                );
                let _ = (icmp.echo_ident(), icmp.echo_seq_no(), icmp.next_hop_mtu());
                let _ = icmp.data().len();
            }
        }
        IpProtocol::Icmpv6 => {
            if let Ok(icmp) = Icmpv6Packet::new_checked(data) {
                let _ = (
                    icmp.msg_type(),
                    icmp.msg_code(),
                    icmp.checksum(),
                    icmp.mtu(),
                );
                let _ = (icmp.echo_ident(), icmp.echo_seq_no(), icmp.data().len());
                for a in all_addrs {
                    if let Addrs::V6(s, d) = a {
                        let _ = icmp.verify_checksum(&s, &d);
                    }
                }
            }
            walk_ndisc(data);
        }
        IpProtocol::Unknown(_) => {}
    }
}

fn walk_ndisc(data: &[u8]) {
    if let Ok(nd) = NdiscPacket::new_checked(data) {
        let _ = (nd.msg_type(), nd.msg_code(), nd.flags(), nd.target_addr());
        for kind in 0..=3 {
            let _ = nd.ll_addr_option(kind);
        }
    }
}

/// The virtio-net header in front of a TAP read: parses from any 12 bytes and emits back the
/// same bytes but the two padding bytes.
fn walk_vnet(data: &[u8]) {
    if let Ok(h) = vnet::VnetHdr::parse(data) {
        let _ = (h.is_tcp_gso(), h.needs_csum());
        let mut b = [0u8; vnet::HEADER_LEN];
        h.emit(&mut b);
        assert_eq!(vnet::VnetHdr::parse(&b), Ok(h));
        assert_eq!(b[..10], data[..10]);
    } else {
        assert!(data.len() < vnet::HEADER_LEN);
    }
}

fn walk_vxlan(data: &[u8]) {
    if let Ok(vx) = VxlanPacket::new_checked(data) {
        let _ = (
            vx.flags(),
            vx.i_flag(),
            vx.vni(),
            vx.has_reserved_bits(),
            vx.payload().len(),
        );
        assert_eq!(VxlanRepr::parse(&vx).map(|r| r.vni), Ok(vx.vni()));
        // One level of inner frame: VXLAN in VXLAN is not followed.
        if let Ok(inner) = EthernetFrame::new_checked(vx.into_payload()) {
            let _ = (
                inner.dst_addr(),
                inner.src_addr(),
                inner.vlan_id(),
                inner.header_len(),
            );
            walk_l3(inner.payload_ethertype(), inner.into_payload());
        }
    }
}

/// The setters that leave every length field alone must not panic on a checked view, and the
/// checksum fillers must produce checksums that verify.
fn mutate_all(buf: &mut [u8]) {
    let src4 = Ipv4Addr::new(198, 51, 100, 1);
    let dst4 = Ipv4Addr::new(198, 51, 100, 2);
    let src6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let dst6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    if let Ok(mut frame) = EthernetFrame::new_checked(&mut *buf) {
        let (src, dst, ethertype) = (frame.src_addr(), frame.dst_addr(), frame.ethertype());
        frame.set_src_addr(dst);
        frame.set_dst_addr(src);
        frame.set_ethertype(ethertype);
        let _ = frame.payload_mut().len();
    }
    if let Ok(mut arp) = ArpPacket::new_checked(&mut *buf) {
        let repr = ArpRepr::parse(&arp).unwrap();
        arp.set_operation(ArpOperation::Reply);
        arp.set_source_protocol_addr(repr.target_protocol_addr);
        arp.set_target_hardware_addr(repr.source_hardware_addr);
        repr.emit(&mut arp);
        assert_eq!(ArpRepr::parse(&arp), Ok(repr));
    }
    if let Ok(mut ip) = Ipv4Packet::new_checked(&mut *buf) {
        let was_valid = ip.verify_checksum();
        let ttl = ip.hop_limit();
        ip.decrement_ttl();
        assert_eq!(ip.hop_limit(), ttl.saturating_sub(1));
        assert!(
            !was_valid || ip.verify_checksum(),
            "incremental TTL update broke the checksum"
        );
        ip.set_ident(ip.ident().wrapping_add(1));
        ip.set_dont_frag(!ip.dont_frag());
        ip.set_src_addr(src4);
        ip.set_dst_addr(dst4);
        ip.fill_checksum();
        assert!(ip.verify_checksum());
        let _ = ip.payload_mut().len();
    }
    if let Ok(mut ip) = Ipv6Packet::new_checked(&mut *buf) {
        ip.set_hop_limit(ip.hop_limit().wrapping_sub(1));
        ip.set_traffic_class(0);
        ip.set_flow_label(0xfffff);
        ip.set_src_addr(src6);
        ip.set_dst_addr(dst6);
        let _ = ip.payload_mut().len();
    }
    if let Ok(mut udp) = UdpPacket::new_checked(&mut *buf) {
        udp.set_src_port(udp.dst_port());
        udp.fill_checksum_v4(src4, dst4);
        assert!(udp.verify_checksum_v4(src4, dst4) && udp.checksum() != 0);
        udp.fill_checksum_v6(&src6, &dst6);
        assert!(udp.verify_checksum_v6(&src6, &dst6));
        let _ = udp.payload_mut().len();
    }
    if let Ok(mut tcp) = TcpPacket::new_checked(&mut *buf) {
        tcp.set_seq_number(tcp.seq_number().wrapping_add(1));
        tcp.set_flags(tcp.flags());
        tcp.set_fin(true);
        tcp.set_psh(false);
        tcp.fill_checksum_v4(src4, dst4);
        assert!(tcp.verify_checksum_v4(src4, dst4));
        tcp.fill_checksum_v6(&src6, &dst6);
        assert!(tcp.verify_checksum_v6(&src6, &dst6));
        let _ = (tcp.options_mut().len(), tcp.payload_mut().len());
    }
    if let Ok(mut icmp) = Icmpv4Packet::new_checked(&mut *buf) {
        icmp.set_echo_seq_no(icmp.echo_seq_no().wrapping_add(1));
        icmp.fill_checksum();
        assert!(icmp.verify_checksum());
    }
    if let Ok(mut icmp) = Icmpv6Packet::new_checked(&mut *buf) {
        icmp.fill_checksum(&src6, &dst6);
        assert!(icmp.verify_checksum(&src6, &dst6));
    }
    if let Ok(mut nd) = NdiscPacket::new_checked(&mut *buf) {
        let target = nd.target_addr();
        nd.set_msg_type(136);
        nd.set_flags(0x60);
        nd.set_target_addr(target);
        assert_eq!(nd.target_addr(), target);
        if nd.into_inner().len() >= ndisc::HEADER_LEN + ndisc::LL_OPTION_LEN {
            let mut nd = NdiscPacket::new_unchecked(&mut *buf);
            let mac = EthernetAddress([0x0a, 0x58, 10, 1, 1, 2]);
            nd.set_ll_addr_option(2, mac);
            assert_eq!(nd.ll_addr_option(2), Some(mac));
        }
    }
    if let Ok(mut vx) = VxlanPacket::new_checked(&mut *buf) {
        let vni = vx.vni();
        let i_flag = vx.i_flag();
        vx.clear_reserved();
        assert!(!vx.has_reserved_bits());
        assert_eq!((vx.vni(), vx.i_flag()), (vni, i_flag));
        vx.set_vni(vni.wrapping_mul(2654435761));
        assert_eq!(vx.vni(), vni.wrapping_mul(2654435761) & vxlan::VNI_MAX);
        VxlanRepr { vni }.emit(&mut vx);
        assert!(vx.i_flag() && !vx.has_reserved_bits() && vx.vni() == vni);
    }
}

/// The ICMP error builders quote any bytes as the "original packet" and stay within their limits.
fn emit_errors(original: &[u8]) {
    let mut out = [0u8; 1500];
    let src4 = Ipv4Addr::new(198, 51, 100, 254);
    let dst4 = Ipv4Addr::new(198, 51, 100, 1);
    let (t, c) = (icmpv4::TYPE_DST_UNREACHABLE, icmpv4::CODE_FRAG_NEEDED);
    let len = icmpv4::emit_error(&mut out, src4, dst4, t, c, 1450, original).unwrap();
    assert!((28..=icmpv4::MAX_ERROR_LEN).contains(&len));
    let ip = Ipv4Packet::new_checked(&out[..len]).unwrap();
    assert!(ip.verify_checksum() && usize::from(ip.total_len()) == len);
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum() && icmp.next_hop_mtu() == 1450);

    let src6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe);
    let dst6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let len = icmpv6::emit_packet_too_big(&mut out, src6, dst6, 1450, original).unwrap();
    assert!((48..=icmpv6::MIN_MTU).contains(&len));
    let ip = Ipv6Packet::new_checked(&out[..len]).unwrap();
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(&src6, &dst6) && icmp.mtu() == 1450);
}
