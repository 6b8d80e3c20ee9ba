use super::*;
use etherparse::{Icmpv4Type, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;

use crate::sample::{GW_MAC, HOST_MAC, PODS, REMOTE_VTEP_MAC, VTEP_MAC};

const POD3: [u8; 6] = PODS[0].1;
const POD4: [u8; 6] = PODS[1].1;
const POD5: [u8; 6] = PODS[2].1;

/// Node n1: pods 10.1.1.2 (port 3, VNI 1), 10.1.1.3 (port 4, VNI 1), 10.1.1.4 (port 5,
/// VNI 20); remote node n2 with 10.1.2.0/24 behind 198.51.100.2.
fn tables() -> Tables {
    crate::sample::tables(0)
}

fn arp_request(src_mac: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f
}

/// An ICMP echo request of `payload` bytes, DF set.
fn ping(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    payload: usize,
) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, ttl)
        .icmpv4_echo_request(7, 1);
    let data = vec![0xab; payload];
    let mut out = Vec::new();
    builder.write(&mut out, &data).unwrap();
    // etherparse sets DF by default; make sure.
    out[14 + 6] |= 0x40;
    let mut ip = Ipv4Packet::new_unchecked(&mut out[14..]);
    ip.fill_checksum();
    out
}

fn run_port(t: &Tables, port: u16, frame: &[u8]) -> (Action, Vec<u8>, WorkerCounters) {
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut buf = PacketBuf::from_frame(frame);
    let a = p.from_port(t, &c, port, &mut buf, &mut Recorder::default());
    (a, buf.frame().to_vec(), c)
}

fn run_tunnel(t: &Tables, src: &str, payload: &[u8]) -> (Action, Vec<u8>, WorkerCounters) {
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut buf = PacketBuf::from_frame(payload);
    let a = p.from_tunnel(
        t,
        &c,
        src.parse().unwrap(),
        None,
        &mut buf,
        &mut Recorder::default(),
    );
    (a, buf.frame().to_vec(), c)
}

fn vxlan(flags: u8, vni: u32, reserved: u8, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let mut p = vec![flags, reserved, 0, 0, v[1], v[2], v[3], 0];
    p.extend_from_slice(inner);
    p
}

#[test]
fn arp_for_the_gateway_and_for_pods_is_answered_in_place() {
    let t = tables();
    let (a, f, c) = run_port(&t, 3, &arp_request(POD3, [10, 1, 1, 2], [10, 1, 1, 1]));
    assert_eq!(a, Action::Output(3));
    let arp = ArpPacket::new_checked(&f[14..]).unwrap();
    assert_eq!(arp.operation(), ArpOperation::Reply);
    assert_eq!(arp.source_hardware_addr(), EthernetAddress(GW_MAC));
    assert_eq!(arp.source_protocol_addr(), Ipv4Addr::new(10, 1, 1, 1));
    assert_eq!(arp.target_hardware_addr(), EthernetAddress(POD3));
    assert_eq!(&f[0..6], &POD3);
    assert_eq!(&f[6..12], &GW_MAC);
    assert_eq!(c.events[Event::ArpReply as usize].get(), 1);

    let (a, f, _) = run_port(&t, 3, &arp_request(POD3, [10, 1, 1, 2], [10, 1, 1, 3]));
    assert_eq!(a, Action::Output(3));
    assert_eq!(
        ArpPacket::new_checked(&f[14..])
            .unwrap()
            .source_hardware_addr(),
        EthernetAddress(POD4)
    );

    // Unknown target, another tenant, and the host asking for a remote pod.
    assert_eq!(
        run_port(&t, 3, &arp_request(POD3, [10, 1, 1, 2], [10, 1, 1, 99])).0,
        Action::Drop(DropReason::Arp)
    );
    assert_eq!(
        run_port(&t, 3, &arp_request(POD3, [10, 1, 1, 2], [10, 1, 1, 4])).0,
        Action::Drop(DropReason::VniMismatch)
    );
    let (a, f, _) = run_port(&t, 2, &arp_request(HOST_MAC, [10, 1, 1, 1], [10, 1, 2, 7]));
    assert_eq!(a, Action::Output(2));
    assert_eq!(
        ArpPacket::new_checked(&f[14..])
            .unwrap()
            .source_hardware_addr(),
        EthernetAddress(GW_MAC)
    );
}

#[test]
fn routed_to_a_remote_node_is_encapsulated_like_flannel() {
    let t = tables();
    let frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 64, 56);
    let (a, out, _) = run_port(&t, 3, &frame);
    let Action::Encap { node, src_port, .. } = a else {
        panic!("{a:?}")
    };
    assert_eq!(node, 0);
    assert!(src_port >= 49152);
    // RFC 7348 section 5: I flag, VNI, reserved zero; then the inner frame.
    let vx = VxlanPacket::new_checked(&out[..]).unwrap();
    assert!(vx.i_flag());
    assert!(!vx.has_reserved_bits());
    assert_eq!(vx.vni(), 1);
    let inner = &out[8..];
    assert_eq!(
        &inner[0..6],
        &REMOTE_VTEP_MAC,
        "inner destination = remote VTEP MAC"
    );
    assert_eq!(
        &inner[6..12],
        &VTEP_MAC,
        "inner source = this node's VTEP MAC"
    );
    let ip = Ipv4Packet::new_checked(&inner[14..]).unwrap();
    assert_eq!(ip.hop_limit(), 63);
    assert!(ip.verify_checksum());
    // Same flow, same source port.
    let (b, _, _) = run_port(&t, 3, &frame);
    assert_eq!(b, a);
}

#[test]
fn decapsulated_frames_reach_the_pod_when_vtep_vni_and_tenant_allow() {
    let t = tables();
    let inner = ping(
        VTEP_MAC,
        REMOTE_VTEP_MAC,
        [10, 1, 2, 2],
        [10, 1, 1, 2],
        63,
        56,
    );
    let (a, out, c) = run_tunnel(&t, "198.51.100.2:50000", &vxlan(0x08, 1, 0, &inner));
    assert_eq!(a, Action::Output(3));
    assert_eq!(&out[0..6], &POD3);
    assert_eq!(&out[6..12], &GW_MAC);
    assert_eq!(Ipv4Packet::new_checked(&out[14..]).unwrap().hop_limit(), 62);
    assert_eq!(c.events[Event::Decapsulated as usize].get(), 1);

    // Reserved bits are ignored but counted (RFC 7348 section 5).
    let (a, _, c) = run_tunnel(&t, "198.51.100.2:50000", &vxlan(0x0c, 1, 0xff, &inner));
    assert_eq!(a, Action::Output(3));
    assert_eq!(c.events[Event::VxlanReservedBits as usize].get(), 1);

    let cases = [
        (
            "198.51.100.9:50000",
            vxlan(0x08, 1, 0, &inner),
            DropReason::UnknownVtep,
        ),
        (
            "198.51.100.2:50000",
            vxlan(0x00, 1, 0, &inner),
            DropReason::NoIFlag,
        ),
        (
            "198.51.100.2:50000",
            vxlan(0x08, 77, 0, &inner),
            DropReason::UnknownVni,
        ),
        (
            "198.51.100.2:50000",
            vxlan(0x08, 20, 0, &inner),
            DropReason::VniMismatch,
        ),
        (
            "198.51.100.2:50000",
            vec![0x08, 0, 0],
            DropReason::Malformed,
        ),
    ];
    for (src, pkt, why) in cases {
        let (a, _, c) = run_tunnel(&t, src, &pkt);
        assert_eq!(a, Action::Drop(why));
        assert_eq!(c.drops[why as usize].get(), 1, "{why:?} counted");
    }
}

#[test]
fn ttl_expiry_and_path_mtu_answer_with_icmp_from_the_gateway() {
    let t = tables();
    let frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 1, 56);
    let (a, out, c) = run_port(&t, 3, &frame);
    assert_eq!(a, Action::Output(3));
    assert_eq!(c.drops[DropReason::Ttl as usize].get(), 1);
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), [10, 1, 1, 1]);
    assert_eq!(ip.header().destination(), [10, 1, 1, 2]);
    let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!()
    };
    assert!(matches!(icmp.icmp_type(), Icmpv4Type::TimeExceeded(_)));
    assert!(Ipv4Packet::new_checked(&out[14..])
        .unwrap()
        .verify_checksum());
    assert_eq!(
        crate::wire::checksum::data(&out[34..]),
        0,
        "ICMP checksum verifies"
    );

    // 1500-byte DF packet toward a 1450 tunnel.
    let frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 64, 1472);
    let (a, out, _) = run_port(&t, 3, &frame);
    assert_eq!(a, Action::Output(3));
    let icmp = &out[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1450);
    assert_eq!(crate::wire::checksum::data(icmp), 0);
    // Without DF: dropped and counted.
    let mut frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 64, 1472);
    frame[14 + 6] &= !0x40;
    Ipv4Packet::new_unchecked(&mut frame[14..]).fill_checksum();
    assert_eq!(run_port(&t, 3, &frame).0, Action::Drop(DropReason::Mtu));
}

#[test]
fn local_switching_and_tenants() {
    let t = tables();
    // By MAC on the node.
    let f = ping(POD4, POD3, [10, 1, 1, 2], [10, 1, 1, 3], 64, 10);
    assert_eq!(run_port(&t, 3, &f).0, Action::Output(4));
    // Another tenant's MAC.
    let f = ping(POD5, POD3, [10, 1, 1, 2], [10, 1, 1, 4], 64, 10);
    assert_eq!(run_port(&t, 3, &f).0, Action::Drop(DropReason::VniMismatch));
    // The host (VNID 0) reaches every tenant.
    let f = ping(POD5, HOST_MAC, [10, 1, 1, 1], [10, 1, 1, 4], 64, 10);
    assert_eq!(run_port(&t, 2, &f).0, Action::Output(5));
    // The gateway address and the outside world go to the host port.
    let f = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 1, 1], 64, 10);
    let (a, out, _) = run_port(&t, 3, &f);
    assert_eq!(a, Action::Output(2));
    assert_eq!(&out[0..6], &HOST_MAC);
    let f = ping(GW_MAC, POD3, [10, 1, 1, 2], [192, 0, 2, 1], 64, 10);
    assert_eq!(run_port(&t, 3, &f).0, Action::Output(2));
    // Unknown unicast and broadcast.
    let f = ping(
        [2, 0, 0, 0, 0, 9],
        POD3,
        [10, 1, 1, 2],
        [10, 1, 1, 3],
        64,
        10,
    );
    assert_eq!(
        run_port(&t, 3, &f).0,
        Action::Drop(DropReason::UnknownUnicast)
    );
    let f = ping([0xff; 6], POD3, [10, 1, 1, 2], [10, 1, 1, 3], 64, 10);
    assert_eq!(run_port(&t, 3, &f).0, Action::Drop(DropReason::Broadcast));
    // Nowhere in the cluster.
    let f = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 9, 3], 64, 10);
    assert_eq!(run_port(&t, 3, &f).0, Action::Drop(DropReason::NoRoute));
}

#[test]
fn every_truncation_of_every_frame_is_a_counted_drop_never_a_panic() {
    let t = tables();
    let frames = [
        arp_request(POD3, [10, 1, 1, 2], [10, 1, 1, 1]),
        ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 64, 100),
        ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 1, 100),
        ping(POD4, POD3, [10, 1, 1, 2], [10, 1, 1, 3], 64, 100),
    ];
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut r = Recorder::default();
    let src = "198.51.100.2:1".parse().unwrap();
    for t in [t.clone(), crate::sample::with_flows(t.clone())] {
        for f in &frames {
            for len in 0..f.len() {
                let _ = p.from_port(&t, &c, 3, &mut PacketBuf::from_frame(&f[..len]), &mut r);
                let v = vxlan(0x08, 1, 0, &f[..len]);
                let _ = p.from_tunnel(&t, &c, src, None, &mut PacketBuf::from_frame(&v), &mut r);
            }
        }
    }
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut buf = PacketBuf::from_frame(&[]);
    assert_eq!(
        p.from_port(&t, &c, 3, &mut buf, &mut Recorder::default()),
        Action::Drop(DropReason::Malformed)
    );
    assert_eq!(
        p.from_port(&t, &c, 999, &mut buf, &mut Recorder::default()),
        Action::Drop(DropReason::PortDown)
    );
}

#[test]
fn source_ports_stay_in_range_and_spread_flows() {
    let p = Pipeline::new(PipelineConfig {
        src_port_min: 50000,
        src_port_max: 50009,
        ..Default::default()
    });
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..200u8 {
        let f = ping(GW_MAC, POD3, [10, 1, 1, i], [10, 1, 2, 2], 64, 10);
        let port = p.src_port(&f);
        assert!((50000..=50009).contains(&port));
        seen.insert(port);
    }
    assert!(seen.len() >= 8, "flows spread over the range: {seen:?}");
}

fn with_flow(t: &Tables, actions: Vec<controlplane::flow::FlowAction>) -> Tables {
    use controlplane::flow::{FlowSpec, PortRef};
    let spec = FlowSpec {
        table: 0,
        priority: 1,
        cookie: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        matches: vec![],
        actions,
    };
    let mut t = t.clone();
    t.flows = Some(std::sync::Arc::new(crate::flow::FlowSet::build(
        9,
        &[(0, spec)],
        &[],
        &|p| match p {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(_) => None,
        },
    )));
    t
}

#[test]
fn flood_reaches_the_tenant_and_the_nodes_with_split_horizon() {
    use controlplane::flow::FlowAction;
    let t = with_flow(&tables(), vec![FlowAction::Flood]);
    let frame = ping([0xff; 6], POD3, [10, 1, 1, 2], [10, 1, 1, 255], 64, 10);
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut rec = Recorder::keeping();
    p.from_port(&t, &c, 3, &mut PacketBuf::from_frame(&frame), &mut rec);
    let outs: Vec<Action> = rec.outputs.iter().map(|(a, _)| *a).collect();
    assert!(
        outs.contains(&Action::Output(2)),
        "the host (VNID 0): {outs:?}"
    );
    assert!(
        outs.contains(&Action::Output(4)),
        "the same tenant: {outs:?}"
    );
    assert!(
        !outs.contains(&Action::Output(5)),
        "not another tenant: {outs:?}"
    );
    assert!(
        !outs.contains(&Action::Output(3)),
        "not back to the sender: {outs:?}"
    );
    let encaps: Vec<&Vec<u8>> = rec
        .outputs
        .iter()
        .filter(|(a, _)| matches!(a, Action::Encap { .. }))
        .map(|(_, f)| f)
        .collect();
    assert_eq!(encaps.len(), 1, "head-end replication to n2");
    assert_eq!(
        &encaps[0][8..],
        &frame[..],
        "the replica carries the frame unchanged"
    );
    // From the tunnel: local ports only.
    let inner = ping(
        [0xff; 6],
        REMOTE_VTEP_MAC,
        [10, 1, 2, 2],
        [10, 1, 1, 255],
        64,
        10,
    );
    let mut rec = Recorder::keeping();
    p.from_tunnel(
        &t,
        &c,
        "198.51.100.2:1".parse().unwrap(),
        None,
        &mut PacketBuf::from_frame(&vxlan(0x08, 1, 0, &inner)),
        &mut rec,
    );
    assert!(
        rec.outputs
            .iter()
            .all(|(a, _)| matches!(a, Action::Output(_))),
        "split horizon: {:?}",
        rec.outputs.len()
    );
    assert!(!rec.outputs.is_empty());
}

#[test]
fn set_field_rewrites_keep_every_checksum_valid() {
    use controlplane::flow::{Field, FlowAction, PortRef};
    let t = with_flow(
        &tables(),
        vec![
            FlowAction::SetField {
                field: Field::NwDst,
                value: u32::from(Ipv4Addr::new(10, 1, 1, 3)) as u64,
            },
            FlowAction::SetField {
                field: Field::TpDst,
                value: 7777,
            },
            FlowAction::SetField {
                field: Field::NwTtl,
                value: 9,
            },
            FlowAction::SetField {
                field: Field::DlDst,
                value: crate::flow::key::mac_u64(&POD4),
            },
            FlowAction::Output {
                port: PortRef::Number(4),
            },
        ],
    );
    let frame = crate::sample::udp_frame(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 64, 100);
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut rec = Recorder::keeping();
    let a = p.from_port(&t, &c, 3, &mut PacketBuf::from_frame(&frame), &mut rec);
    assert_eq!(a, Action::Output(4));
    let out = &rec.outputs[0].1;
    assert_eq!(&out[0..6], &POD4);
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 1, 1, 3));
    assert_eq!(ip.hop_limit(), 9);
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    let udp = crate::wire::UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(udp.dst_port(), 7777);
    assert!(
        udp.verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
        "UDP checksum over the new pseudo-header"
    );
}

fn with_flows_in(t: &Tables, flows: Vec<(u8, Vec<controlplane::flow::FlowAction>)>) -> Tables {
    use controlplane::flow::{FlowSpec, PortRef};
    let specs: Vec<(u32, FlowSpec)> = flows
        .into_iter()
        .enumerate()
        .map(|(i, (table, actions))| {
            let spec = FlowSpec {
                table,
                priority: 1,
                cookie: 0,
                idle_timeout: 0,
                hard_timeout: 0,
                matches: vec![],
                actions,
            };
            (i as u32, spec)
        })
        .collect();
    let mut t = t.clone();
    t.flows = Some(std::sync::Arc::new(crate::flow::FlowSet::build(
        9,
        &specs,
        &[],
        &|p| match p {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(_) => None,
        },
    )));
    t
}

#[test]
fn a_flow_with_twenty_outputs_outputs_twenty_times_cached_or_not() {
    use controlplane::flow::{FlowAction, PortRef};
    let out = |n| FlowAction::Output {
        port: PortRef::Number(n),
    };
    let mut actions: Vec<FlowAction> = (0..20).map(|_| out(4)).collect();
    actions.push(FlowAction::DecTtl);
    actions.push(out(2));
    let t = with_flow(&tables(), actions);
    let frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 1, 3], 64, 10);
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    // Twice: the second packet finds whatever the first left in the exact-match cache.
    for round in 0..2 {
        let mut rec = Recorder::keeping();
        let a = p.from_port(&t, &c, 3, &mut PacketBuf::from_frame(&frame), &mut rec);
        let outs: Vec<Action> = rec.outputs.iter().map(|(a, _)| *a).collect();
        assert_eq!(outs.len(), 21, "round {round}: every output carried out");
        assert!(outs[..20].iter().all(|a| *a == Action::Output(4)));
        assert_eq!(a, Action::Output(2), "round {round}: the last step is last");
        assert_eq!(rec.outputs[0].1[14 + 8], 64, "before dec_ttl");
        assert_eq!(rec.outputs[20].1[14 + 8], 63, "after dec_ttl, in order");
    }
    assert_eq!(
        c.flows[0].packets.get(),
        2,
        "the flow is credited once per packet"
    );
}

#[test]
fn resubmits_that_fan_out_stop_at_the_limit_and_send_nothing() {
    use controlplane::flow::{FlowAction, PortRef};
    // Table i resubmits twice to table i+1: 2^13 = 8,192 lookups, more than 4,096.
    let mut flows: Vec<(u8, Vec<FlowAction>)> = (0..13u8)
        .map(|i| {
            let r = FlowAction::Resubmit {
                in_port: None,
                table: i + 1,
            };
            (i, vec![r.clone(), r])
        })
        .collect();
    flows.push((
        13,
        vec![FlowAction::Output {
            port: PortRef::Number(4),
        }],
    ));
    let t = with_flows_in(&tables(), flows);
    let frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 1, 3], 64, 10);
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    for _ in 0..2 {
        let mut rec = Recorder::default();
        let a = p.from_port(&t, &c, 3, &mut PacketBuf::from_frame(&frame), &mut rec);
        assert_eq!(a, Action::Drop(DropReason::ResubmitLimit));
        assert_eq!(rec.count, 0, "nothing of a program cut short is sent");
    }
    assert_eq!(c.drops[DropReason::ResubmitLimit as usize].get(), 2);
    assert_eq!(
        c.events[Event::FlowCacheHit as usize].get(),
        1,
        "the verdict is cached"
    );
}

#[test]
fn a_resubmit_loop_is_dropped_at_depth_64_with_nothing_sent() {
    use controlplane::flow::{FlowAction, PortRef};
    let t = with_flows_in(
        &tables(),
        vec![(
            0,
            vec![
                FlowAction::Output {
                    port: PortRef::Number(4),
                },
                FlowAction::Resubmit {
                    in_port: None,
                    table: 0,
                },
            ],
        )],
    );
    let frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 1, 3], 64, 10);
    let c = WorkerCounters::default();
    let mut rec = Recorder::default();
    let a = Pipeline::new(PipelineConfig::default()).from_port(
        &t,
        &c,
        3,
        &mut PacketBuf::from_frame(&frame),
        &mut rec,
    );
    assert_eq!(a, Action::Drop(DropReason::ResubmitDepth));
    assert_eq!(rec.count, 0, "not 16 copies, not 64: none");
}

#[test]
fn flood_reaches_every_node_unless_capped_and_counts_what_it_skips() {
    use controlplane::flow::FlowAction;
    // n2 and 70 more remote nodes.
    let t = with_flow(&crate::sample::tables(70), vec![FlowAction::Flood]);
    let frame = ping([0xff; 6], POD3, [10, 1, 1, 2], [10, 1, 1, 255], 64, 10);
    let encaps = |cfg: PipelineConfig| {
        let c = WorkerCounters::default();
        let mut rec = Recorder::keeping();
        Pipeline::new(cfg).from_port(&t, &c, 3, &mut PacketBuf::from_frame(&frame), &mut rec);
        let n = rec
            .outputs
            .iter()
            .filter(|(a, _)| matches!(a, Action::Encap { .. }))
            .count();
        (n, c.events[Event::FloodNodesSkipped as usize].get())
    };
    assert_eq!(encaps(PipelineConfig::default()), (71, 0), "every node");
    let capped = PipelineConfig {
        flood_max_nodes: 10,
        ..PipelineConfig::default()
    };
    assert_eq!(encaps(capped), (10, 61), "capped, and counted");
}

/// Floods `n` broadcast frames from `port` at `now_ms` through `p`; returns how many were
/// replicated (not limited).
fn flood_from(
    p: &mut Pipeline,
    t: &Tables,
    c: &WorkerCounters,
    port: u16,
    now_ms: u64,
    n: usize,
) -> usize {
    let src = PODS.iter().find(|x| x.0 == port).map_or(POD3, |x| x.1);
    let frame = ping([0xff; 6], src, [10, 1, 1, 2], [10, 1, 1, 255], 64, 10);
    p.set_now_ms(now_ms);
    (0..n)
        .filter(|_| {
            let a = p.from_port(
                t,
                c,
                port,
                &mut PacketBuf::from_frame(&frame),
                &mut Recorder::default(),
            );
            a != Action::Drop(DropReason::BumRateLimited)
        })
        .count()
}

fn bum_cfg(rate: u32, burst: u32) -> PipelineConfig {
    PipelineConfig {
        bum: Arc::new(BumLimiter::new(rate, burst)),
        ..PipelineConfig::default()
    }
}

#[test]
fn flooding_is_rate_limited_per_port_and_every_limited_frame_is_counted() {
    use controlplane::flow::FlowAction;
    let t = with_flow(&crate::sample::tables(0), vec![FlowAction::Flood]);
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(bum_cfg(100, 5));
    let limited = |c: &WorkerCounters| c.drops[DropReason::BumRateLimited as usize].get();
    // The burst, then nothing.
    assert_eq!(flood_from(&mut p, &t, &c, 3, 1_000, 50), 5);
    assert_eq!(limited(&c), 45);
    // Another port has its own budget.
    assert_eq!(flood_from(&mut p, &t, &c, 4, 1_000, 50), 5);
    assert_eq!(limited(&c), 90);
    // 100/s: 50 ms later, 5 more; a full second later no more than the burst.
    assert_eq!(flood_from(&mut p, &t, &c, 3, 1_050, 50), 5);
    assert_eq!(flood_from(&mut p, &t, &c, 3, 1_060, 50), 1);
    assert_eq!(flood_from(&mut p, &t, &c, 3, 9_000, 50), 5);
    assert_eq!(limited(&c), 90 + 45 + 49 + 45);
    // Over a simulated second at 1 ms steps: rate × time + burst, never more.
    let mut p = Pipeline::new(bum_cfg(100, 5));
    let passed: usize = (0..1000)
        .map(|ms| flood_from(&mut p, &t, &c, 3, 20_000 + ms, 3))
        .sum();
    assert_eq!(passed, 5 + 99);
}

#[test]
fn the_flood_budget_is_shared_by_the_workers_and_zero_means_unlimited() {
    use controlplane::flow::FlowAction;
    let t = with_flow(&crate::sample::tables(0), vec![FlowAction::Flood]);
    let c = WorkerCounters::default();
    let cfg = bum_cfg(10, 8);
    let (mut a, mut b) = (Pipeline::new(cfg.clone()), Pipeline::new(cfg));
    assert_eq!(
        flood_from(&mut a, &t, &c, 3, 500, 5) + flood_from(&mut b, &t, &c, 3, 500, 5),
        8
    );
    let mut p = Pipeline::new(bum_cfg(0, 1));
    assert_eq!(flood_from(&mut p, &t, &c, 3, 0, 5_000), 5_000);
    assert_eq!(c.drops[DropReason::BumRateLimited as usize].get(), 2);
}

#[test]
fn ipv4_with_a_bad_header_checksum_is_dropped_with_its_reason_not_routed() {
    let t = tables();
    let mut frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 64, 56);
    frame[14 + 10] ^= 0x5a;
    let (a, _, c) = run_port(&t, 3, &frame);
    assert_eq!(a, Action::Drop(DropReason::Ipv4Checksum));
    assert_eq!(c.drops[DropReason::Ipv4Checksum as usize].get(), 1);
    // To a local pod, and from the tunnel, the same.
    let mut local = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 1, 3], 64, 56);
    local[14 + 11] ^= 1;
    assert_eq!(
        run_port(&t, 3, &local).0,
        Action::Drop(DropReason::Ipv4Checksum)
    );
    let mut inner = ping(
        VTEP_MAC,
        REMOTE_VTEP_MAC,
        [10, 1, 2, 2],
        [10, 1, 1, 2],
        64,
        56,
    );
    inner[14 + 10] ^= 0xff;
    let (a, _, _) = run_tunnel(&t, "198.51.100.2:50000", &vxlan(0x08, 1, 0, &inner));
    assert_eq!(a, Action::Drop(DropReason::Ipv4Checksum));
}
