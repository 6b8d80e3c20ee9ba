//! A small sample node used by tests, benchmarks and fuzz targets: node n1 (VTEP
//! 198.51.100.1, subnet 10.1.1.0/24) with pods on ports 3–5 and a remote node n2 (10.1.2.0/24
//! behind 198.51.100.2), plus builders for the frames pods send.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::fib::{Base, IpEntry, LocalInfo, MacEntry, NodeEntry, PortEntry, Tables, Target};
use crate::wire::{checksum, EthernetAddress, Ipv4Packet};

pub const VTEP_MAC: [u8; 6] = [0x02, 0xf1, 0, 0, 0, 1];
pub const REMOTE_VTEP_MAC: [u8; 6] = [0x02, 0xf1, 0, 0, 0, 2];
pub const GW_MAC: [u8; 6] = [0x0a, 0x58, 10, 1, 1, 1];
pub const HOST_MAC: [u8; 6] = [0x0e, 0x58, 10, 1, 1, 1];
/// Pods: (port, MAC, IP, VNI).
pub const PODS: [(u16, [u8; 6], [u8; 4], u32); 3] = [
    (3, [0x0a, 0x58, 10, 1, 1, 2], [10, 1, 1, 2], 1),
    (4, [0x0a, 0x58, 10, 1, 1, 3], [10, 1, 1, 3], 1),
    (5, [0x0a, 0x58, 10, 1, 1, 4], [10, 1, 1, 4], 20),
];

/// The node's IPv6 prefix (dual stack); pod `10.1.1.x` has `fd00:10:1:1::x`.
pub const SUBNET6: &str = "fd00:10:1:1::/64";
/// The IPv6 gateway address.
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x10, 1, 1, 0, 0, 0, 1);
/// Node n2's IPv6 prefix.
pub const REMOTE_SUBNET6: &str = "fd00:10:1:2::/64";

/// The IPv6 address of the sample pod with IPv4 address `ip`.
pub fn pod_ip6(ip: [u8; 4]) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x10, 1, 1, 0, 0, 0, ip[3] as u16)
}

/// The sample tables, with `extra_nodes` more remote nodes (10.2.x.y/24 subnets) for
/// benchmarks of larger tables.
pub fn tables(extra_nodes: usize) -> Tables {
    let mut t = Tables {
        base: Arc::new(Base {
            version: 1,
            ..Default::default()
        }),
        ..Default::default()
    };
    t.local = Some(LocalInfo {
        vtep: "198.51.100.1".parse().expect("constant"),
        vtep_mac: EthernetAddress(VTEP_MAC),
        subnet: "10.1.1.0/24".parse().expect("constant"),
        gateway: Ipv4Addr::new(10, 1, 1, 1),
        gateway_mac: EthernetAddress(GW_MAC),
        host_mac: EthernetAddress(HOST_MAC),
        default_vni: 1,
        cluster: "10.0.0.0/8".parse().expect("constant"),
        tunnel_mtu: 1450,
        subnet6: Some(SUBNET6.parse().expect("constant")),
        gateway6: Some(GATEWAY6),
    });
    t.ports = vec![None; 6];
    t.ports[2] = Some(PortEntry {
        name: "vxhost0".into(),
        mac: EthernetAddress(HOST_MAC),
        ip: None,
        vni: 0,
    });
    t.macs.insert(
        EthernetAddress(HOST_MAC),
        MacEntry {
            target: Target::Port(2),
            vni: 0,
        },
    );
    for (no, mac, ip, vni) in PODS {
        let mac = EthernetAddress(mac);
        t.ips6.insert(
            pod_ip6(ip),
            IpEntry {
                mac,
                target: Target::Port(no),
                vni,
            },
        );
        let ip = Ipv4Addr::from(ip);
        t.ports[no as usize] = Some(PortEntry {
            name: format!("p{no}"),
            mac,
            ip: Some(ip),
            vni,
        });
        t.macs.insert(
            mac,
            MacEntry {
                target: Target::Port(no),
                vni,
            },
        );
        t.ips.insert(
            ip,
            IpEntry {
                mac,
                target: Target::Port(no),
                vni,
            },
        );
    }
    t.nodes.push(NodeEntry {
        name: "n2".into(),
        vtep: "198.51.100.2".parse().expect("constant"),
        vtep_mac: EthernetAddress(REMOTE_VTEP_MAC),
        subnet: "10.1.2.0/24".parse().expect("constant"),
        subnet6: Some(REMOTE_SUBNET6.parse().expect("constant")),
    });
    for i in 0..extra_nodes {
        let (a, b) = ((i >> 8) as u8, i as u8);
        t.nodes.push(NodeEntry {
            name: format!("x{i}"),
            vtep: Ipv4Addr::new(203, 0, a, b).into(),
            vtep_mac: EthernetAddress([0x02, 0xf2, 0, 0, a, b]),
            subnet: format!("10.2{}.{b}.0/24", a % 10).parse().expect("valid"),
            subnet6: None,
        });
    }
    t.reindex();
    t
}

/// An Ethernet/IPv4/UDP frame with `payload` bytes, DF set, checksums complete.
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    payload: usize,
) -> Vec<u8> {
    let ip_len = 20 + 8 + payload;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0, ttl, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[0x9c, 0x40, 0x13, 0x89]);
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend((0..payload).map(|i| i as u8));
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    let sum = checksum::pseudo_header_v4(
        Ipv4Addr::from(src),
        Ipv4Addr::from(dst),
        17,
        (8 + payload) as u32,
    );
    let c = checksum::finish(checksum::accumulate(sum, &f[34..]));
    let c = if c == 0 { 0xffff } else { c };
    f[40..42].copy_from_slice(&c.to_be_bytes());
    f
}

/// An ARP request from `src_mac`/`spa` for `tpa`.
pub fn arp_request(src_mac: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f
}

/// A VXLAN header (flags, VNI, reserved byte 1) followed by `inner`.
pub fn vxlan(flags: u8, vni: u32, reserved: u8, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let mut p = vec![flags, reserved, 0, 0, v[1], v[2], v[3], 0];
    p.extend_from_slice(inner);
    p
}

/// The tables with flow tables in front: port security for pod port 3, a resubmit chain, a
/// register, and `normal` at the end (the shape the agent's multitenant flows have).
pub fn with_flows(mut t: Tables) -> Tables {
    use controlplane::flow::*;
    use controlplane::proto::MacAddr;
    let (no, mac, ip, _) = PODS[0];
    let f = |table: u8, priority: u16, matches: Vec<Match>, actions: Vec<FlowAction>| FlowSpec {
        table,
        priority,
        cookie: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        matches,
        actions,
    };
    let flows = vec![
        f(
            0,
            300,
            vec![
                Match::InPort {
                    port: PortRef::Number(no),
                },
                Match::DlSrc {
                    value: MacAddr(mac),
                    mask: MacAddr([0xff; 6]),
                },
                Match::DlType { value: 0x0800 },
                Match::NwSrc {
                    value: Ipv4Addr::from(ip),
                    mask: Ipv4Addr::BROADCAST,
                },
            ],
            vec![
                FlowAction::Load {
                    dst: FieldRange::whole(Field::Reg(0)),
                    value: 1,
                },
                FlowAction::Resubmit {
                    in_port: None,
                    table: 10,
                },
            ],
        ),
        f(
            0,
            290,
            vec![
                Match::InPort {
                    port: PortRef::Number(no),
                },
                Match::DlType { value: 0x0806 },
            ],
            vec![FlowAction::GotoTable { table: 10 }],
        ),
        f(
            0,
            100,
            vec![Match::InPort {
                port: PortRef::Number(no),
            }],
            vec![FlowAction::Drop],
        ),
        f(0, 0, vec![], vec![FlowAction::GotoTable { table: 10 }]),
        f(10, 0, vec![], vec![FlowAction::Normal]),
    ];
    let flows: Vec<(u32, FlowSpec)> = flows
        .into_iter()
        .enumerate()
        .map(|(i, f)| (i as u32, f))
        .collect();
    let resolve = |p: &PortRef| match p {
        PortRef::Number(n) => Some(*n),
        PortRef::Name(_) => None,
    };
    t.flows = Some(std::sync::Arc::new(crate::flow::FlowSet::build(
        t.version,
        &flows,
        &[],
        &resolve,
    )));
    t
}
