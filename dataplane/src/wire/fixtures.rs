//! Frames captured from the Linux vxlan driver (see `dataplane/tests/fixtures/README.md`), walked
//! through every view: outer Ethernet → IPv4 → UDP → VXLAN → inner Ethernet → ARP or
//! IPv4 + ICMP. Each step cites the part of RFC 7348 it exercises.
//!
//! Also: re-encapsulating the captured inner frames with our `Repr`s reproduces the driver's
//! frames byte for byte, and no view panics on any prefix or bit-flip of the captures, nor on
//! random bytes.

use std::net::Ipv4Addr;

use super::testutil::Rng;
use super::*;

static ARP_REQUEST: &[u8] = include_bytes!("../../tests/fixtures/vxlan_arp_request.bin");
static ARP_REPLY: &[u8] = include_bytes!("../../tests/fixtures/vxlan_arp_reply.bin");
static ECHO_REQUEST: &[u8] = include_bytes!("../../tests/fixtures/vxlan_icmp_echo_request.bin");
static ECHO_REPLY: &[u8] = include_bytes!("../../tests/fixtures/vxlan_icmp_echo_reply.bin");
static CSUM_ARP_REQUEST: &[u8] =
    include_bytes!("../../tests/fixtures/vxlan_udpcsum_arp_request.bin");
static CSUM_ECHO_REQUEST: &[u8] =
    include_bytes!("../../tests/fixtures/vxlan_udpcsum_icmp_echo_request.bin");

static ALL: [&[u8]; 6] = [
    ARP_REQUEST,
    ARP_REPLY,
    ECHO_REQUEST,
    ECHO_REPLY,
    CSUM_ARP_REQUEST,
    CSUM_ECHO_REQUEST,
];

/// Underlay (VTEP) addresses of namespace A and B.
const VTEP_A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const VTEP_B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const UNDERLAY_MAC_A: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x00, 0x01]);
const UNDERLAY_MAC_B: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x00, 0x02]);
/// Overlay (vxlan device) addresses of namespace A and B.
const OVERLAY_A: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 1);
const OVERLAY_B: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 2);
const OVERLAY_MAC_A: EthernetAddress = EthernetAddress([0x02, 0x42, 0x00, 0x00, 0x00, 0x01]);
const OVERLAY_MAC_B: EthernetAddress = EthernetAddress([0x02, 0x42, 0x00, 0x00, 0x00, 0x02]);
const VNI: u32 = 42;

/// Which way a captured frame went.
#[derive(Clone, Copy)]
enum Dir {
    AtoB,
    BtoA,
}

impl Dir {
    fn underlay(self) -> (EthernetAddress, EthernetAddress, Ipv4Addr, Ipv4Addr) {
        match self {
            Dir::AtoB => (UNDERLAY_MAC_A, UNDERLAY_MAC_B, VTEP_A, VTEP_B),
            Dir::BtoA => (UNDERLAY_MAC_B, UNDERLAY_MAC_A, VTEP_B, VTEP_A),
        }
    }
}

/// The outer headers of a captured frame, as read.
struct Outer<'a> {
    ip_ident: u16,
    udp_src_port: u16,
    udp_checksum: u16,
    /// The UDP payload: VXLAN header and inner frame.
    vxlan: &'a [u8],
    /// The inner Ethernet frame.
    inner: &'a [u8],
}

/// Walks the outer headers of a captured frame, checking each against RFC 7348 section 5.
fn decap(frame: &[u8], dir: Dir) -> Outer<'_> {
    let (src_mac, dst_mac, src_ip, dst_ip) = dir.underlay();

    // RFC 7348 section 5, "Outer Ethernet Header": VTEP MAC addresses, type IPv4.
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(eth.src_addr(), src_mac);
    assert_eq!(eth.dst_addr(), dst_mac);
    assert_eq!(eth.ethertype(), EtherType::Ipv4);
    assert_eq!(eth.vlan_id(), None);

    // RFC 7348 section 5, "Outer IPv4 Header": VTEP addresses, protocol 17; the driver does not
    // set DF by default (df unset) and uses TTL 64 ("ttl auto").
    let ip = Ipv4Packet::new_checked(eth.into_payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), src_ip);
    assert_eq!(ip.dst_addr(), dst_ip);
    assert_eq!(ip.next_header(), IpProtocol::Udp);
    assert_eq!(ip.hop_limit(), 64);
    assert!(!ip.dont_frag() && !ip.is_fragment());
    assert_eq!(ip.header_len(), 20);
    let ip_ident = ip.ident();

    // RFC 7348 section 5, "Outer UDP Header": destination port 4789; the source port is "a hash
    // of fields from the inner packet", Linux picks it from 49152-65535 (the range the RFC
    // recommends); the checksum "SHOULD be transmitted as zero" and, when it is not zero, must
    // be correct.
    let udp = UdpPacket::new_checked(ip.into_payload()).unwrap();
    assert_eq!(udp.dst_port(), vxlan::UDP_PORT);
    assert!(udp.src_port() >= 49152, "source port {}", udp.src_port());
    assert!(udp.verify_checksum_v4(src_ip, dst_ip));
    let (udp_src_port, udp_checksum) = (udp.src_port(), udp.checksum());
    let vxlan_bytes = udp.into_payload();

    // RFC 7348 section 5, "VXLAN Header": I flag set, 24-bit VNI 42, reserved fields zero.
    let vx = VxlanPacket::new_checked(vxlan_bytes).unwrap();
    assert!(vx.i_flag());
    assert_eq!(vx.flags(), vxlan::FLAG_I);
    assert_eq!(vx.vni(), VNI);
    assert!(!vx.has_reserved_bits());
    assert_eq!(VxlanRepr::parse(&vx), Ok(VxlanRepr { vni: VNI }));

    Outer {
        ip_ident,
        udp_src_port,
        udp_checksum,
        vxlan: vxlan_bytes,
        inner: vx.into_payload(),
    }
}

/// The inner frame of an ARP fixture: RFC 7348 section 5 "Inner Ethernet Header" (no 802.1Q
/// tag) carrying ARP, which VXLAN forwards like any other frame (section 4.2, broadcast and
/// ARP).
fn check_inner_arp(inner: &[u8], operation: ArpOperation) -> ArpRepr {
    let eth = EthernetFrame::new_checked(inner).unwrap();
    assert_eq!(eth.ethertype(), EtherType::Arp);
    assert_eq!(eth.vlan_id(), None);
    let arp = ArpPacket::new_checked(eth.payload()).unwrap();
    let repr = ArpRepr::parse(&arp).unwrap();
    assert_eq!(repr.operation, operation);
    assert_eq!(eth.src_addr(), repr.source_hardware_addr);
    match operation {
        ArpOperation::Request => assert!(eth.dst_addr().is_broadcast()),
        _ => assert_eq!(eth.dst_addr(), repr.target_hardware_addr),
    }
    repr
}

/// The inner frame of an ICMP fixture: inner Ethernet → IPv4 → ICMP echo, checksums verified.
fn check_inner_echo(inner: &[u8], dir: Dir, msg_type: u8) {
    let (src_mac, dst_mac, src_ip, dst_ip) = match dir {
        Dir::AtoB => (OVERLAY_MAC_A, OVERLAY_MAC_B, OVERLAY_A, OVERLAY_B),
        Dir::BtoA => (OVERLAY_MAC_B, OVERLAY_MAC_A, OVERLAY_B, OVERLAY_A),
    };
    let eth = EthernetFrame::new_checked(inner).unwrap();
    assert_eq!(eth.src_addr(), src_mac);
    assert_eq!(eth.dst_addr(), dst_mac);
    assert_eq!(eth.payload_ethertype(), EtherType::Ipv4);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (src_ip, dst_ip));
    assert_eq!(ip.next_header(), IpProtocol::Icmp);
    assert_eq!(ip.total_len(), 84); // ping's default 56 data bytes + 8 + 20
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(icmp.msg_type(), msg_type);
    assert_eq!(icmp.msg_code(), 0);
    assert_eq!(icmp.echo_seq_no(), 1);
    assert_eq!(icmp.data().len(), 56);
}

/// etherparse reads the same outer and inner headers.
fn cross_check_etherparse(frame: &[u8], outer: &Outer<'_>) {
    let sliced = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::TransportSlice::Udp(udp)) = sliced.transport else {
        panic!("etherparse found no UDP");
    };
    assert_eq!(udp.destination_port(), 4789);
    assert_eq!(udp.source_port(), outer.udp_src_port);
    assert_eq!(udp.checksum(), outer.udp_checksum);
    assert_eq!(udp.payload(), outer.vxlan);
    let inner = etherparse::SlicedPacket::from_ethernet(outer.inner).unwrap();
    let link = inner.link.unwrap().ether_payload().unwrap();
    let ours = EthernetFrame::new_checked(outer.inner).unwrap();
    assert_eq!(u16::from(link.ether_type), u16::from(ours.ethertype()));
    assert_eq!(link.payload, ours.payload());
}

#[test]
fn arp_request() {
    // RFC 7348 section 4.2: the ARP broadcast goes to the remote VTEP (head-end replication
    // with a configured remote), zero UDP checksum (section 5).
    let outer = decap(ARP_REQUEST, Dir::AtoB);
    assert_eq!(outer.udp_checksum, 0);
    let arp = check_inner_arp(outer.inner, ArpOperation::Request);
    assert_eq!(arp.source_hardware_addr, OVERLAY_MAC_A);
    assert_eq!(arp.source_protocol_addr, OVERLAY_A);
    assert_eq!(arp.target_protocol_addr, OVERLAY_B);
    assert_eq!(arp.target_hardware_addr, EthernetAddress([0; 6]));
    cross_check_etherparse(ARP_REQUEST, &outer);
}

#[test]
fn arp_reply() {
    // RFC 7348 section 4.1: the reply is unicast back to the VTEP the request came from.
    let outer = decap(ARP_REPLY, Dir::BtoA);
    assert_eq!(outer.udp_checksum, 0);
    let arp = check_inner_arp(outer.inner, ArpOperation::Reply);
    assert_eq!(arp.source_hardware_addr, OVERLAY_MAC_B);
    assert_eq!(arp.source_protocol_addr, OVERLAY_B);
    assert_eq!(arp.target_hardware_addr, OVERLAY_MAC_A);
    assert_eq!(arp.target_protocol_addr, OVERLAY_A);
    cross_check_etherparse(ARP_REPLY, &outer);
}

#[test]
fn icmp_echo_request() {
    // RFC 7348 section 5: unicast IPv4 inner frame, zero outer UDP checksum.
    let outer = decap(ECHO_REQUEST, Dir::AtoB);
    assert_eq!(outer.udp_checksum, 0);
    check_inner_echo(outer.inner, Dir::AtoB, icmpv4::TYPE_ECHO_REQUEST);
    cross_check_etherparse(ECHO_REQUEST, &outer);
}

#[test]
fn icmp_echo_reply() {
    let outer = decap(ECHO_REPLY, Dir::BtoA);
    assert_eq!(outer.udp_checksum, 0);
    check_inner_echo(outer.inner, Dir::BtoA, icmpv4::TYPE_ECHO_REPLY);
    cross_check_etherparse(ECHO_REPLY, &outer);
}

#[test]
fn udpcsum_arp_request() {
    // RFC 7348 section 5, "UDP Checksum": with `udpcsum` the driver fills in a real checksum,
    // which must verify over the pseudo-header and the whole datagram.
    let outer = decap(CSUM_ARP_REQUEST, Dir::AtoB);
    assert_ne!(outer.udp_checksum, 0);
    check_inner_arp(outer.inner, ArpOperation::Request);
    cross_check_etherparse(CSUM_ARP_REQUEST, &outer);
    // A flipped bit in the inner frame breaks the outer checksum.
    let mut bytes = [0u8; 92];
    bytes.copy_from_slice(CSUM_ARP_REQUEST);
    bytes[80] ^= 0x01;
    let ip = Ipv4Packet::new_checked(&bytes[ethernet::HEADER_LEN..]).unwrap();
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(!udp.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
}

#[test]
fn udpcsum_icmp_echo_request() {
    // RFC 7348 section 5, "UDP Checksum", non-zero; inner IPv4/ICMP checksums verify too.
    let outer = decap(CSUM_ECHO_REQUEST, Dir::AtoB);
    assert_ne!(outer.udp_checksum, 0);
    check_inner_echo(outer.inner, Dir::AtoB, icmpv4::TYPE_ECHO_REQUEST);
    cross_check_etherparse(CSUM_ECHO_REQUEST, &outer);
}

#[test]
fn source_port_depends_on_inner_flow() {
    // RFC 7348 section 5: the source port comes from a hash of the inner frame, so the ARP and
    // the ICMP flows got different ports, while one flow keeps its port.
    let arp = decap(ARP_REQUEST, Dir::AtoB).udp_src_port;
    let echo = decap(ECHO_REQUEST, Dir::AtoB).udp_src_port;
    assert_ne!(arp, echo);
    assert_eq!(decap(CSUM_ECHO_REQUEST, Dir::AtoB).udp_src_port, echo);
}

#[test]
fn emit_vxlan_header_reproduces_capture() {
    // RFC 7348 section 5: flags 0x08, reserved zero, VNI 42 in bytes 4..7, then the frame.
    for (frame, dir) in [
        (ARP_REQUEST, Dir::AtoB),
        (ARP_REPLY, Dir::BtoA),
        (ECHO_REQUEST, Dir::AtoB),
        (ECHO_REPLY, Dir::BtoA),
        (CSUM_ARP_REQUEST, Dir::AtoB),
        (CSUM_ECHO_REQUEST, Dir::AtoB),
    ] {
        let outer = decap(frame, dir);
        let mut buf = [0xa5u8; 256];
        let len = vxlan::HEADER_LEN + outer.inner.len();
        let mut packet = VxlanPacket::new_unchecked(&mut buf[..len]);
        VxlanRepr { vni: VNI }.emit(&mut packet);
        packet.payload_mut().copy_from_slice(outer.inner);
        assert_eq!(&buf[..len], outer.vxlan);
    }
}

#[test]
fn full_encapsulation_reproduces_capture() {
    // Rebuild every outer header with our Reprs around the captured inner frame: the result is
    // the Linux driver's frame, byte for byte (RFC 7348 section 5, the whole encapsulation).
    for (frame, dir) in [
        (ARP_REQUEST, Dir::AtoB),
        (ARP_REPLY, Dir::BtoA),
        (ECHO_REQUEST, Dir::AtoB),
        (ECHO_REPLY, Dir::BtoA),
        (CSUM_ARP_REQUEST, Dir::AtoB),
        (CSUM_ECHO_REQUEST, Dir::AtoB),
    ] {
        let outer = decap(frame, dir);
        let (src_mac, dst_mac, src_ip, dst_ip) = dir.underlay();
        let headers = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN + vxlan::HEADER_LEN;
        let len = headers + outer.inner.len();
        let mut buf = [0u8; 256];
        let out = &mut buf[..len];

        let mut eth = EthernetFrame::new_unchecked(&mut *out);
        EthernetRepr {
            src_addr: src_mac,
            dst_addr: dst_mac,
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut eth);
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        let ip_repr = Ipv4Repr {
            src_addr: src_ip,
            dst_addr: dst_ip,
            next_header: IpProtocol::Udp,
            payload_len: udp::HEADER_LEN + vxlan::HEADER_LEN + outer.inner.len(),
            hop_limit: 64,
            dont_frag: false,
            ident: outer.ip_ident,
        };
        ip_repr.emit(&mut ip);
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        UdpRepr {
            src_port: outer.udp_src_port,
            dst_port: vxlan::UDP_PORT,
        }
        .emit(&mut udp, vxlan::HEADER_LEN + outer.inner.len());
        let mut vx = VxlanPacket::new_unchecked(udp.payload_mut());
        VxlanRepr { vni: VNI }.emit(&mut vx);
        vx.payload_mut().copy_from_slice(outer.inner);
        if outer.udp_checksum != 0 {
            udp.fill_checksum_v4(src_ip, dst_ip);
        }
        assert_eq!(&buf[..len], frame);
    }
}

use super::exercise::fuzz_one;

#[test]
fn every_prefix_parses_or_errs_without_panic() {
    for frame in ALL {
        for len in 0..=frame.len() {
            fuzz_one(&frame[..len]);
        }
        // Every prefix shorter than the whole frame fails somewhere on the way to the inner
        // frame, since each length field points at the end of the capture.
        for len in 0..frame.len() {
            let reached_inner = EthernetFrame::new_checked(&frame[..len])
                .and_then(|eth| Ipv4Packet::new_checked(eth.into_payload()))
                .and_then(|ip| UdpPacket::new_checked(ip.into_payload()))
                .and_then(|udp| VxlanPacket::new_checked(udp.into_payload()))
                .is_ok();
            assert!(!reached_inner, "prefix of {len} bytes");
        }
    }
}

#[test]
fn bit_flips_never_panic() {
    let mut rng = Rng::new(0xf1a5);
    let mut buf = [0u8; 160];
    for round in 0..20_000 {
        let frame = ALL[round % ALL.len()];
        let bytes = &mut buf[..frame.len()];
        bytes.copy_from_slice(frame);
        for _ in 0..=(rng.next_u64() % 4) {
            let at = (rng.next_u64() as usize) % bytes.len();
            bytes[at] ^= 1 << (rng.next_u64() % 8);
        }
        let len = if round % 3 == 0 {
            (rng.next_u64() as usize) % (bytes.len() + 1)
        } else {
            bytes.len()
        };
        fuzz_one(&bytes[..len]);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(0xbad);
    let mut buf = [0u8; 128];
    for _ in 0..20_000 {
        let len = (rng.next_u64() as usize) % (buf.len() + 1);
        rng.fill(&mut buf[..len]);
        // Bias towards plausible headers so the deeper views are reached.
        if len > 0 && rng.next_u64() % 2 == 0 {
            buf[0] = if rng.next_u64() % 2 == 0 { 0x45 } else { 0x60 };
        }
        fuzz_one(&buf[..len]);
    }
}
