//! IPv6 in the overlay: neighbour discovery answered in place, routed IPv6 across nodes,
//! ICMPv6 errors, and the flow hash over IPv6 flows.

use std::net::Ipv6Addr;

use super::*;
use crate::sample::{pod_ip6, GATEWAY6, GW_MAC, HOST_MAC, PODS, REMOTE_VTEP_MAC, VTEP_MAC};
use crate::wire::{ndisc, Icmpv6Packet, NdiscPacket};

const POD3: [u8; 6] = PODS[0].1;
const POD4: [u8; 6] = PODS[1].1;

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn pod3() -> Ipv6Addr {
    pod_ip6(PODS[0].2)
}

fn pod4() -> Ipv6Addr {
    pod_ip6(PODS[1].2)
}

/// Ethernet + IPv6 + `next_header` payload, with the ICMPv6 checksum filled when it is one.
fn ipv6_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    next_header: IpProtocol,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.push(next_header.into());
    f.push(hop_limit);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(payload);
    if next_header == IpProtocol::Icmpv6 {
        Icmpv6Packet::new_unchecked(&mut f[54..]).fill_checksum(&src, &dst);
    }
    f
}

/// A neighbour solicitation for `target` with the source link-layer address option, to the
/// solicited-node multicast address (or to `unicast` MAC and `target` itself).
fn ns(src_mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr, unicast: Option<[u8; 6]>) -> Vec<u8> {
    let t = target.octets();
    let (dst_mac, dst) = match unicast {
        Some(m) => (m, target),
        None => (
            [0x33, 0x33, 0xff, t[13], t[14], t[15]],
            Ipv6Addr::new(
                0xff02,
                0,
                0,
                0,
                0,
                1,
                0xff00 | t[13] as u16,
                u16::from_be_bytes([t[14], t[15]]),
            ),
        ),
    };
    let mut m = vec![ndisc::TYPE_NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&t);
    m.extend_from_slice(&[ndisc::OPT_SOURCE_LL_ADDR, 1]);
    m.extend_from_slice(&src_mac);
    ipv6_frame(dst_mac, src_mac, src, dst, 255, IpProtocol::Icmpv6, &m)
}

/// An ICMPv6 echo request with `data` bytes.
fn ping6(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop: u8,
    data: usize,
) -> Vec<u8> {
    let mut m = vec![128, 0, 0, 0, 0x12, 0x34, 0, 1];
    m.extend(std::iter::repeat_n(0xab, data));
    ipv6_frame(dst_mac, src_mac, src, dst, hop, IpProtocol::Icmpv6, &m)
}

fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&[0, 12, 0, 0, 1, 2, 3, 4]);
    ipv6_frame(GW_MAC, POD3, src, dst, 64, IpProtocol::Udp, &u)
}

fn run_port(t: &Tables, port: u16, frame: &[u8]) -> (Action, Vec<u8>, WorkerCounters) {
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut buf = PacketBuf::from_frame(frame);
    let a = p.from_port(t, &c, port, &mut buf, &mut Recorder::default());
    (a, buf.frame().to_vec(), c)
}

/// Checks an advertisement from `answer`/`target` to pod 3 and returns its flags.
fn check_na(f: &[u8], answer: [u8; 6], target: Ipv6Addr) -> u8 {
    check_na_to(f, (POD3, pod3()), answer, target)
}

/// Checks an advertisement from `answer`/`target` to the requester (MAC, address) and
/// returns its flags.
fn check_na_to(f: &[u8], requester: ([u8; 6], Ipv6Addr), answer: [u8; 6], target: Ipv6Addr) -> u8 {
    let (req_mac, req_ip) = requester;
    assert_eq!(&f[0..6], &req_mac, "back to the requester");
    assert_eq!(&f[6..12], &answer);
    assert_eq!(&f[12..14], &[0x86, 0xdd]);
    let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(ip.src_addr(), target);
    assert_eq!(ip.dst_addr(), req_ip);
    assert_eq!(
        ip.hop_limit(),
        255,
        "RFC 4861 7.1.2: receivers drop anything else"
    );
    assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
    assert_eq!(ip.payload().len(), 32);
    assert!(Icmpv6Packet::new_checked(ip.payload())
        .unwrap()
        .verify_checksum(&target, &req_ip));
    let na = NdiscPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(na.msg_type(), ndisc::TYPE_NEIGHBOR_ADVERT);
    assert_eq!(na.msg_code(), 0);
    assert_eq!(na.target_addr(), target);
    assert_eq!(
        na.ll_addr_option(ndisc::OPT_TARGET_LL_ADDR),
        Some(EthernetAddress(answer))
    );
    na.flags()
}

#[test]
fn neighbour_solicitations_for_the_gateway_and_pods_are_answered_in_place() {
    let t = crate::sample::tables(0);
    // Multicast (solicited-node) for the gateway: was dropped as broadcast.
    let (a, f, c) = run_port(&t, 3, &ns(POD3, pod3(), GATEWAY6, None));
    assert_eq!(a, Action::Output(3));
    let flags = check_na(&f, GW_MAC, GATEWAY6);
    assert_eq!(
        flags,
        ndisc::FLAG_ROUTER | ndisc::FLAG_SOLICITED | ndisc::FLAG_OVERRIDE
    );
    assert_eq!(c.events[Event::NdAdvert as usize].get(), 1);

    // Unicast to the gateway MAC (neighbour unreachability detection).
    let (a, f, _) = run_port(&t, 3, &ns(POD3, pod3(), GATEWAY6, Some(GW_MAC)));
    assert_eq!(a, Action::Output(3));
    check_na(&f, GW_MAC, GATEWAY6);

    // Another pod of the same tenant: its own MAC, no router flag.
    let (a, f, _) = run_port(&t, 3, &ns(POD3, pod3(), pod4(), None));
    assert_eq!(a, Action::Output(3));
    assert_eq!(
        check_na(&f, POD4, pod4()),
        ndisc::FLAG_SOLICITED | ndisc::FLAG_OVERRIDE
    );
}

#[test]
fn unanswerable_solicitations_are_counted_drops() {
    let t = crate::sample::tables(0);
    let cases = [
        // Unknown target, another tenant's pod, the asker itself, duplicate address detection.
        (
            ns(POD3, pod3(), ip6("fd00:10:1:1::99"), None),
            DropReason::Nd,
        ),
        (
            ns(POD3, pod3(), pod_ip6(PODS[2].2), None),
            DropReason::VniMismatch,
        ),
        (ns(POD3, pod3(), pod3(), None), DropReason::Nd),
        (
            ns(POD3, Ipv6Addr::UNSPECIFIED, ip6("fd00:10:1:1::99"), None),
            DropReason::Nd,
        ),
    ];
    for (frame, want) in cases {
        let (a, _, c) = run_port(&t, 3, &frame);
        assert_eq!(a, Action::Drop(want));
        assert_eq!(c.drops[want as usize].get(), 1);
    }
    // Hop limit other than 255: not from the link.
    let mut f = ns(POD3, pod3(), GATEWAY6, None);
    f[21] = 64;
    assert_eq!(run_port(&t, 3, &f).0, Action::Drop(DropReason::Nd));
    // Other IPv6 multicast (router solicitations, MLD) stays a broadcast drop.
    let rs = ipv6_frame(
        [0x33, 0x33, 0, 0, 0, 2],
        POD3,
        pod3(),
        ip6("ff02::2"),
        255,
        IpProtocol::Icmpv6,
        &[133, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(run_port(&t, 3, &rs).0, Action::Drop(DropReason::Broadcast));
    // Truncated solicitation.
    let mut f = ns(POD3, pod3(), GATEWAY6, None);
    f.truncate(14 + 40 + 20);
    f[19] = 20;
    assert_eq!(run_port(&t, 3, &f).0, Action::Drop(DropReason::Nd));
}

#[test]
fn routed_ipv6_is_encapsulated_to_the_node_owning_the_prefix() {
    let t = crate::sample::tables(0);
    let dst = ip6("fd00:10:1:2::5");
    let (a, f, _) = run_port(&t, 3, &ping6(GW_MAC, POD3, pod3(), dst, 64, 56));
    let Action::Encap {
        node: 0, src_port, ..
    } = a
    else {
        panic!("{a:?}");
    };
    assert!(src_port >= 49152);
    let vx = VxlanPacket::new_checked(&f[..]).unwrap();
    assert_eq!(VxlanRepr::parse(&vx).unwrap().vni, 1);
    let inner = &f[VXLAN_LEN..];
    assert_eq!(&inner[0..6], &REMOTE_VTEP_MAC);
    assert_eq!(&inner[6..12], &VTEP_MAC);
    let ip = Ipv6Packet::new_checked(&inner[14..]).unwrap();
    assert_eq!(ip.hop_limit(), 63);
    assert_eq!(ip.dst_addr(), dst);

    // Nothing routes IPv6 outside the node prefixes; a node without IPv6 drops it unrouted.
    let out = ping6(GW_MAC, POD3, pod3(), ip6("2001:db8:99::1"), 64, 8);
    assert_eq!(run_port(&t, 3, &out).0, Action::Drop(DropReason::NoRoute));
    let mut v4only = t.clone();
    if let Some(l) = v4only.local.as_mut() {
        l.subnet6 = None;
        l.gateway6 = None;
    }
    let (a, _, _) = run_port(&v4only, 3, &ping6(GW_MAC, POD3, pod3(), dst, 64, 8));
    assert_eq!(a, Action::Drop(DropReason::Unsupported));
}

#[test]
fn routed_ipv6_between_local_pods_and_from_the_tunnel() {
    let t = crate::sample::tables(0);
    let (a, f, _) = run_port(&t, 3, &ping6(GW_MAC, POD3, pod3(), pod4(), 64, 8));
    assert_eq!(a, Action::Output(4));
    assert_eq!(&f[0..6], &POD4);
    assert_eq!(&f[6..12], &GW_MAC);
    assert_eq!(Ipv6Packet::new_checked(&f[14..]).unwrap().hop_limit(), 63);

    // Decapsulated from node n2, sent to this node's VTEP MAC.
    let inner = ping6(
        VTEP_MAC,
        REMOTE_VTEP_MAC,
        ip6("fd00:10:1:2::5"),
        pod4(),
        63,
        8,
    );
    let mut payload = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    payload.extend_from_slice(&inner);
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut buf = PacketBuf::from_frame(&payload);
    let a = p.from_tunnel(
        &t,
        &c,
        "198.51.100.2:50000".parse().unwrap(),
        None,
        &mut buf,
        &mut Recorder::default(),
    );
    assert_eq!(a, Action::Output(4));
    let f = buf.frame();
    assert_eq!(&f[0..6], &POD4);
    assert_eq!(&f[6..12], &GW_MAC);
    assert_eq!(Ipv6Packet::new_checked(&f[14..]).unwrap().hop_limit(), 62);
}

/// Checks an ICMPv6 error from the gateway to pod 3 and returns (type, the 32-bit word).
fn check_error(f: &[u8], orig: &[u8]) -> (u8, u32) {
    assert_eq!(&f[0..6], &POD3);
    assert_eq!(&f[6..12], &GW_MAC);
    assert_eq!(&f[12..14], &[0x86, 0xdd]);
    assert!(f.len() - 14 <= 1280, "RFC 4443 2.4 (c)");
    let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(ip.src_addr(), GATEWAY6);
    assert_eq!(ip.dst_addr(), pod3());
    assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(&GATEWAY6, &pod3()));
    assert_eq!(icmp.msg_code(), 0);
    let quoted = icmp.data();
    assert_eq!(
        quoted,
        &orig[14..14 + quoted.len()],
        "the offending packet, from its header"
    );
    (icmp.msg_type(), icmp.mtu())
}

#[test]
fn hop_limit_expiry_sends_time_exceeded() {
    let t = crate::sample::tables(0);
    for dst in [pod4(), ip6("fd00:10:1:2::5")] {
        let orig = ping6(GW_MAC, POD3, pod3(), dst, 1, 56);
        let (a, f, c) = run_port(&t, 3, &orig);
        assert_eq!(a, Action::Output(3));
        assert_eq!(check_error(&f, &orig), (3, 0));
        assert_eq!(c.events[Event::Icmpv6TimeExceeded as usize].get(), 1);
        assert_eq!(c.drops[DropReason::Ttl as usize].get(), 1);
    }
    // Never an error about an error.
    let err = ipv6_frame(
        GW_MAC,
        POD3,
        pod3(),
        pod4(),
        1,
        IpProtocol::Icmpv6,
        &[1, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(run_port(&t, 3, &err).0, Action::Drop(DropReason::Ttl));
}

#[test]
fn too_big_for_the_tunnel_sends_packet_too_big_with_the_tunnel_mtu() {
    let t = crate::sample::tables(0);
    // 1451 bytes of IPv6 packet: one more than the tunnel carries.
    let orig = ping6(GW_MAC, POD3, pod3(), ip6("fd00:10:1:2::5"), 64, 1451 - 48);
    let (a, f, c) = run_port(&t, 3, &orig);
    assert_eq!(a, Action::Output(3));
    assert_eq!(check_error(&f, &orig), (2, 1450));
    assert_eq!(f.len(), 14 + 1280, "quoted up to the minimum MTU");
    assert_eq!(c.events[Event::IcmpPacketTooBig as usize].get(), 1);
    // Exactly the tunnel MTU passes.
    let fits = ping6(GW_MAC, POD3, pod3(), ip6("fd00:10:1:2::5"), 64, 1450 - 48);
    assert!(matches!(run_port(&t, 3, &fits).0, Action::Encap { .. }));

    // The same bucket as ICMP limits them.
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig {
        icmp_rate: 1,
        icmp_burst: 2,
        ..Default::default()
    });
    let mut sent = 0;
    for _ in 0..5 {
        let mut buf = PacketBuf::from_frame(&orig);
        if p.from_port(&t, &c, 3, &mut buf, &mut Recorder::default()) == Action::Output(3) {
            sent += 1;
        }
    }
    assert_eq!(sent, 2);
    assert_eq!(c.events[Event::IcmpRateLimited as usize].get(), 3);
}

#[test]
fn the_flow_hash_spreads_ipv6_flows_by_address_and_port() {
    let a = udp6(pod3(), ip6("fd00:10:1:2::5"), 40000, 5201);
    let h = flow_hash(&a);
    assert_eq!(h, flow_hash(&a), "stable per flow");
    let others = [
        udp6(pod3(), ip6("fd00:10:1:2::5"), 40001, 5201),
        udp6(pod3(), ip6("fd00:10:1:2::5"), 40000, 5202),
        udp6(pod3(), ip6("fd00:10:1:2::6"), 40000, 5201),
        udp6(pod4(), ip6("fd00:10:1:2::5"), 40000, 5201),
    ];
    for o in &others {
        assert_ne!(flow_hash(o), h, "same MACs, another flow");
    }
    // Spread over the source-port range: 64 flows differing only in the source port land on
    // many different outer ports.
    let p = Pipeline::new(PipelineConfig::default());
    let mut ports: Vec<u16> = (0..64)
        .map(|i| p.src_port(&udp6(pod3(), ip6("fd00:10:1:2::5"), 40000 + i, 5201)))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert!(ports.len() > 48, "{}", ports.len());
}

#[test]
fn a_pod_packet_to_the_ipv6_gateway_reaches_the_host_port() {
    let t = crate::sample::tables(0);
    // Was dropped as unsupported: the gateway address had no holder.
    let orig = ping6(GW_MAC, POD3, pod3(), GATEWAY6, 64, 8);
    let (a, f, _) = run_port(&t, 3, &orig);
    assert_eq!(a, Action::Output(PORT_HOST));
    assert_eq!(&f[0..6], &HOST_MAC);
    assert_eq!(&f[6..12], &GW_MAC);
    assert_eq!(
        &f[12..],
        &orig[12..],
        "delivered, not routed: hop limit kept"
    );

    // The node's reply from a remote pod, decapsulated, goes the same way.
    let inner = ping6(
        VTEP_MAC,
        REMOTE_VTEP_MAC,
        ip6("fd00:10:1:2::5"),
        GATEWAY6,
        63,
        8,
    );
    let mut payload = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    payload.extend_from_slice(&inner);
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut buf = PacketBuf::from_frame(&payload);
    let a = p.from_tunnel(
        &t,
        &c,
        "198.51.100.2:50000".parse().unwrap(),
        None,
        &mut buf,
        &mut Recorder::default(),
    );
    assert_eq!(a, Action::Output(PORT_HOST));
    assert_eq!(&buf.frame()[0..6], &HOST_MAC);

    // Never back out of the host port.
    let own = ping6(GW_MAC, HOST_MAC, GATEWAY6, GATEWAY6, 64, 8);
    assert_eq!(
        run_port(&t, PORT_HOST, &own).0,
        Action::Drop(DropReason::Hairpin)
    );
}

#[test]
fn host_solicitations_for_local_and_remote_pods_are_answered() {
    let t = crate::sample::tables(0);
    let host = (HOST_MAC, GATEWAY6);
    // A local pod: its own MAC, as for the pods.
    let (a, f, _) = run_port(&t, PORT_HOST, &ns(HOST_MAC, GATEWAY6, pod3(), None));
    assert_eq!(a, Action::Output(PORT_HOST));
    assert_eq!(
        check_na_to(&f, host, POD3, pod3()),
        ndisc::FLAG_SOLICITED | ndisc::FLAG_OVERRIDE
    );
    // Another tenant's pod too: the host port is in every tenant (VNID 0).
    let other = pod_ip6(PODS[2].2);
    let (a, f, _) = run_port(&t, PORT_HOST, &ns(HOST_MAC, GATEWAY6, other, None));
    assert_eq!(a, Action::Output(PORT_HOST));
    check_na_to(&f, host, PODS[2].1, other);

    // A remote pod, on-link through vxhost0: the gateway MAC, which routes it.
    let remote = ip6("fd00:10:1:2::5");
    let (a, f, c) = run_port(&t, PORT_HOST, &ns(HOST_MAC, GATEWAY6, remote, None));
    assert_eq!(a, Action::Output(PORT_HOST));
    assert_eq!(
        check_na_to(&f, host, GW_MAC, remote),
        ndisc::FLAG_ROUTER | ndisc::FLAG_SOLICITED | ndisc::FLAG_OVERRIDE
    );
    assert_eq!(c.events[Event::NdAdvert as usize].get(), 1);
    // Its reachability probe, unicast to the gateway MAC, is answered too, never routed.
    let (a, f, _) = run_port(&t, PORT_HOST, &ns(HOST_MAC, GATEWAY6, remote, Some(GW_MAC)));
    assert_eq!(a, Action::Output(PORT_HOST));
    check_na_to(&f, host, GW_MAC, remote);

    // Not answered: the gateway (vxhost0 holds it), an address in no node's prefix, and a
    // remote pod asked by a pod (pods route through the gateway).
    for target in [GATEWAY6, ip6("2001:db8:99::1")] {
        let (a, _, c) = run_port(&t, PORT_HOST, &ns(HOST_MAC, GATEWAY6, target, None));
        assert_eq!(a, Action::Drop(DropReason::Nd), "{target}");
        assert_eq!(c.drops[DropReason::Nd as usize].get(), 1);
    }
    assert_eq!(
        run_port(&t, 3, &ns(POD3, pod3(), remote, None)).0,
        Action::Drop(DropReason::Nd)
    );
}

#[test]
fn the_hosts_routed_ipv6_reaches_remote_pods_of_every_tenant() {
    let t = crate::sample::tables(0);
    let remote = ip6("fd00:10:1:2::5");
    let (a, f, _) = run_port(
        &t,
        PORT_HOST,
        &ping6(GW_MAC, HOST_MAC, GATEWAY6, remote, 64, 8),
    );
    assert!(matches!(a, Action::Encap { node: 0, .. }), "{a:?}");
    let vx = VxlanPacket::new_checked(&f[..]).unwrap();
    assert_eq!(
        VxlanRepr::parse(&vx).unwrap().vni,
        0,
        "VNID 0: every tenant"
    );
    let inner = &f[VXLAN_LEN..];
    assert_eq!(&inner[0..6], &REMOTE_VTEP_MAC);
    let ip = Ipv6Packet::new_checked(&inner[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (GATEWAY6, remote));
    assert_eq!(ip.hop_limit(), 63);
}
