//! On the wire: the outer TOS/TTL of encapsulation, RFC 6040's ECN decapsulation table, and the
//! path MTU learned per VTEP.

use super::*;
use std::sync::Arc;

use crate::pmtu::PathMtus;
use crate::sample::{GW_MAC, PODS, REMOTE_VTEP_MAC, VTEP_MAC};

const POD3: [u8; 6] = PODS[0].1;

/// An ICMP echo request of `payload` bytes with this TOS byte and TTL, DF set.
fn ping_tos(dst_mac: [u8; 6], src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], tos: u8) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .icmpv4_echo_request(7, 1);
    let mut out = Vec::new();
    builder.write(&mut out, &[0xab; 56]).unwrap();
    let mut ip = Ipv4Packet::new_unchecked(&mut out[14..]);
    ip.set_dscp_ecn(tos);
    ip.fill_checksum();
    out
}

fn sized_ping(payload: usize, df: bool) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2(POD3, GW_MAC)
        .ipv4([10, 1, 1, 2], [10, 1, 2, 2], 64)
        .icmpv4_echo_request(7, 1);
    let mut out = Vec::new();
    builder.write(&mut out, &vec![0xab; payload]).unwrap();
    let mut ip = Ipv4Packet::new_unchecked(&mut out[14..]);
    ip.set_dont_frag(df);
    ip.fill_checksum();
    out
}

fn encap_with(cfg: PipelineConfig, frame: &[u8]) -> (Action, Vec<u8>) {
    let t = crate::sample::tables(0);
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(cfg);
    let mut buf = PacketBuf::from_frame(frame);
    let a = p.from_port(&t, &c, 3, &mut buf, &mut Recorder::default());
    (a, buf.frame().to_vec())
}

fn outer(a: Action) -> (u8, u8) {
    match a {
        Action::Encap { tos, ttl, .. } => (tos, ttl),
        a => panic!("not encapsulated: {a:?}"),
    }
}

#[test]
fn the_outer_ecn_follows_the_inner_packet_as_linux_encapsulates() {
    // vxlan_bridge_1d.sh's encap table: inner 00→00, 01→01, 02→02, 03→02; the default DSCP
    // is 0 whatever the inner one.
    for (inner, want) in [(0x00, 0x00), (0x01, 0x01), (0x02, 0x02), (0x03, 0x02)] {
        let f = ping_tos(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 0xb8 | inner);
        let (a, _) = encap_with(PipelineConfig::default(), &f);
        assert_eq!(outer(a), (want, 64), "inner ECN {inner:02x}");
    }
}

#[test]
fn the_outer_dscp_and_ttl_are_fixed_or_inherited() {
    let f = ping_tos(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 0xb8 | 0x03);
    let cfg = PipelineConfig {
        tos: OuterTos::Inherit,
        ttl: OuterTtl::Inherit,
        ..PipelineConfig::default()
    };
    // Routed: the inner TTL was decremented to 63 before encapsulation.
    assert_eq!(outer(encap_with(cfg, &f).0), (0xb8 | 0x02, 63));
    let cfg = PipelineConfig {
        tos: OuterTos::Fixed(0x28 | 0x03),
        ttl: OuterTtl::Fixed(17),
        ..PipelineConfig::default()
    };
    // A fixed TOS gives its DSCP; its ECN bits are the inner packet's, never the flag's.
    let f = ping_tos(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 0x01);
    assert_eq!(outer(encap_with(cfg, &f).0), (0x28 | 0x01, 17));
}

#[test]
fn rfc_6040_decapsulation_table() {
    // (inner, outer) → result; None: drop.
    let n = None;
    let table = [
        [Some(0), Some(0), Some(0), n],
        [Some(1), Some(1), Some(1), Some(3)],
        [Some(2), Some(1), Some(2), Some(3)],
        [Some(3), Some(3), Some(3), Some(3)],
    ];
    // Columns: outer Not-ECT, ECT(1), ECT(0), CE (in codepoint order 00, 01, 10, 11).
    for (inner, row) in table.iter().enumerate() {
        for (outer, want) in row.iter().enumerate() {
            assert_eq!(
                ingress::ecn_decapsulate(inner as u8, outer as u8),
                *want,
                "inner {inner:02b} outer {outer:02b}"
            );
        }
    }
}

fn decap_with_ecn(inner_tos: u8, outer: u8) -> (Action, Vec<u8>, WorkerCounters) {
    let t = crate::sample::tables(0);
    let inner = ping_tos(
        VTEP_MAC,
        REMOTE_VTEP_MAC,
        [10, 1, 2, 2],
        [10, 1, 1, 2],
        inner_tos,
    );
    let mut pkt = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    pkt.extend_from_slice(&inner);
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut buf = PacketBuf::from_frame(&pkt);
    let a = p.from_tunnel_ecn(
        &t,
        &c,
        "198.51.100.2:50000".parse().unwrap(),
        None,
        outer,
        &mut buf,
        &mut Recorder::default(),
    );
    (a, buf.frame().to_vec(), c)
}

#[test]
fn decapsulation_marks_the_inner_ipv4_header_and_keeps_its_checksum_valid() {
    // vxlan_bridge_1d.sh's decap cases, inner/outer → what reaches the pod.
    for (inner, outer, want) in [
        (0x00, 0x00, 0x00),
        (0x00, 0x01, 0x00),
        (0x00, 0x02, 0x00),
        (0x01, 0x03, 0x03),
        (0x02, 0x03, 0x03),
        (0x02, 0x01, 0x01),
        (0x03, 0x00, 0x03),
        (0x03, 0x01, 0x03),
    ] {
        let (a, out, _) = decap_with_ecn(0xb8 | inner, outer);
        assert_eq!(a, Action::Output(3), "{inner:02b}/{outer:02b}");
        let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
        assert_eq!(ip.dscp_ecn(), 0xb8 | want, "{inner:02b}/{outer:02b}");
        assert!(ip.verify_checksum(), "{inner:02b}/{outer:02b}");
    }
    let (a, _, c) = decap_with_ecn(0xb8, 0x03);
    assert_eq!(a, Action::Drop(DropReason::EcnCeNotEct));
    assert_eq!(c.drops[DropReason::EcnCeNotEct as usize].get(), 1);
}

#[test]
fn decapsulation_marks_the_inner_ipv6_traffic_class() {
    let builder = etherparse::PacketBuilder::ethernet2(REMOTE_VTEP_MAC, POD3)
        .ipv6([0xfd; 16], [0xfe; 16], 64)
        .udp(1, 2);
    let mut f = Vec::new();
    builder.write(&mut f, &[0; 8]).unwrap();
    let mut ip = Ipv6Packet::new_unchecked(&mut f[14..]);
    ip.set_traffic_class(0xb8 | ECN_ECT0);
    let mut buf = PacketBuf::from_frame(&f);
    assert_eq!(ingress::decap_ecn(&mut buf, ECN_CE), Ok(()));
    let ip = Ipv6Packet::new_checked(&buf.frame()[14..]).unwrap();
    assert_eq!(ip.traffic_class(), 0xb8 | ECN_CE);
    Ipv6Packet::new_unchecked(&mut f[14..]).set_traffic_class(0xb8);
    let mut buf = PacketBuf::from_frame(&f);
    assert_eq!(
        ingress::decap_ecn(&mut buf, ECN_CE),
        Err(DropReason::EcnCeNotEct)
    );
}

#[test]
fn a_learned_path_mtu_lowers_the_limit_for_that_vtep_only() {
    let pmtu = Arc::new(PathMtus::default());
    let cfg = PipelineConfig {
        pmtu: pmtu.clone(),
        ..PipelineConfig::default()
    };
    // 1428-byte IP packet: fits the node-wide 1450.
    assert!(matches!(
        encap_with(cfg.clone(), &sized_ping(1400, true)).0,
        Action::Encap { .. }
    ));
    // The route to 198.51.100.2 (node 0) now has MTU 1400: 1350 bytes of inner IP packet.
    pmtu.set(0, "198.51.100.2".parse().unwrap(), 1400);
    let (a, out) = encap_with(cfg.clone(), &sized_ping(1400, true));
    assert_eq!(a, Action::Output(3), "frag-needed back to the pod");
    let icmp = &out[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1350);
    assert_eq!(crate::wire::checksum::data(icmp), 0);
    // 1350 bytes still cross; DF clear over the limit is a counted drop.
    assert!(matches!(
        encap_with(cfg.clone(), &sized_ping(1350 - 28, true)).0,
        Action::Encap { .. }
    ));
    assert_eq!(
        encap_with(cfg.clone(), &sized_ping(1400, false)).0,
        Action::Drop(DropReason::Mtu)
    );
    // A slot written for another VTEP (node indexes moved) is ignored.
    pmtu.set(0, "198.51.100.77".parse().unwrap(), 1400);
    assert!(matches!(
        encap_with(cfg, &sized_ping(1400, true)).0,
        Action::Encap { .. }
    ));
}
