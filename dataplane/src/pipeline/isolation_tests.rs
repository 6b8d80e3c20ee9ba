//! Isolation, as properties over random tables and random frames (proptest).
//!
//! Each case builds a node's tables (local pods on random port numbers with random MACs,
//! addresses and VNIDs, 0 among them; remote nodes; sometimes pod entries behind remote nodes),
//! with the built-in forwarding alone, with the one `normal` flow of a fresh switch, with the
//! agent's multitenant flows (port security, underlay filter, `normal`), or with flows that
//! flood what is not IPv4, and drives the real pipeline with random frames from pods and
//! random VXLAN datagrams from the underlay. One pipeline serves a whole case, so its flow
//! cache stays warm across frames. What must hold:
//! - a frame from a port of VNID a reaches a port of VNID b only if a = b or either is 0 (the
//!   admin VNID of the host port and admin pods); it is encapsulated with VNI a; an ARP or
//!   neighbour answer never names a station of another tenant;
//! - with port security (the multitenant flows), a frame a pod sends leaves — to another port
//!   or to the wire — only with the pod's own source MAC (or the router's: the gateway MAC
//!   when routed to a local port, the VTEP MAC as the inner source when routed to a node) and
//!   its own source IP. Answers the switch makes itself (ARP, neighbour advertisements, ICMP
//!   errors) go back out the ingress port only. Without port security (the built-in
//!   forwarding, flannel's model) sources are not policed, so this is checked only with it;
//! - a decapsulated frame reaches only a port whose VNID equals the VNI (or either is 0), and
//!   nothing from an unknown VTEP, without the I flag, or with a VNI no local port has;
//! - a port number freed by one pod and taken by another never carries the old pod's
//!   traffic: nothing addressed to the old pod's MAC or IP reaches the number, and no ARP
//!   answer names the old pod.
//!
//! Outside these rules, by design: a flow that says so explicitly — `output:N` to a port of
//! another tenant, `set_field`/`mod_dl_src` of a source, `set_tunnel` to another VNI — does
//! what it says (an admin's decision, as in OVS); the generated flows have none.

use std::collections::HashSet;
use std::net::Ipv6Addr;

use controlplane::agent::AgentConfig;
use controlplane::flow::{FlowAction, FlowSpec, PortRef};
use controlplane::proto::{LocalNode, MacAddr, PortSpec, RemoteNode};
use proptest::prelude::*;
use proptest::test_runner::Config;

use super::*;
use crate::buf::PacketBuf;
use crate::fib::{Base, IpEntry, MacEntry, NodeEntry, PortEntry};
use crate::sample::{GATEWAY6, GW_MAC, HOST_MAC, VTEP_MAC};

/// The tenant rule as the README states it, written out here rather than taken from the
/// code under test: equal VNIDs, or either is 0.
fn may_reach(a: u32, b: u32) -> bool {
    a == b || a == 0 || b == 0
}

/// 256 cases per property unless `PROPTEST_CASES` says otherwise (a longer search:
/// `PROPTEST_CASES=20000 cargo test --release -p vxswitch-dataplane --lib isolation_tests`).
fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

/// A local pod.
#[derive(Debug, Clone, PartialEq)]
struct Pod {
    no: PortNo,
    mac: [u8; 6],
    ip: Ipv4Addr,
    vni: u32,
}

impl Pod {
    fn ip6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x10, 1, 1, 0, 0, 0, self.ip.octets()[3] as u16)
    }
}

/// A pod entry behind a remote node (the tables can hold them; the switch routes by subnet).
#[derive(Debug, Clone, PartialEq)]
struct RemotePod {
    node: usize,
    mac: [u8; 6],
    ip: Ipv4Addr,
    vni: u32,
}

/// Which flow tables run in front of the built-in forwarding.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flows {
    /// None: the built-in forwarding alone.
    Builtin,
    /// A fresh switch's one flow, `actions=normal`.
    Normal,
    /// The agent's multitenant flows (port security, underlay filter, `normal`).
    Multitenant,
    /// IPv4 to `normal`, everything else flooded (a flood reaches only the packet's tenant).
    Flood,
}

#[derive(Debug, Clone)]
struct World {
    pods: Vec<Pod>,
    nodes: usize,
    remote: Vec<RemotePod>,
    flows: Flows,
}

fn node_vtep(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 2 + i as u8)
}

fn node_vtep_mac(i: usize) -> [u8; 6] {
    [0x02, 0xf1, 0, 0, 0, 2 + i as u8]
}

fn node_subnet(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 2 + i as u8, 0)
}

fn vni() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(1), Just(10), Just(20), 1u32..5]
}

fn unicast_mac() -> impl Strategy<Value = [u8; 6]> {
    prop_oneof![
        (2u8..255).prop_map(|h| [0x0a, 0x58, 10, 1, 1, h]),
        any::<[u8; 6]>().prop_map(|mut m| {
            m[0] = (m[0] & 0xfe) | 0x02;
            m
        }),
    ]
}

fn pods() -> impl Strategy<Value = Vec<Pod>> {
    prop::collection::vec((3u16..14, unicast_mac(), 2u8..255, vni()), 1..7).prop_map(|v| {
        let mut out: Vec<Pod> = Vec::new();
        for (no, mac, host, vni) in v {
            let ip = Ipv4Addr::new(10, 1, 1, host);
            if out
                .iter()
                .any(|p| p.no == no || p.mac == mac || p.ip.octets()[3] == host)
                || mac == GW_MAC
                || mac == HOST_MAC
                || mac == VTEP_MAC
            {
                continue;
            }
            out.push(Pod { no, mac, ip, vni });
        }
        out
    })
}

fn world() -> impl Strategy<Value = World> {
    (
        pods(),
        1usize..4,
        prop::collection::vec((0usize..3, 2u8..255, vni()), 0..4),
        prop_oneof![
            Just(Flows::Builtin),
            Just(Flows::Normal),
            Just(Flows::Multitenant),
            Just(Flows::Flood)
        ],
    )
        .prop_map(|(pods, nodes, remote, flows)| {
            let remote = remote
                .into_iter()
                .map(|(node, host, vni)| {
                    let node = node % nodes;
                    let s = node_subnet(node).octets();
                    RemotePod {
                        node,
                        mac: [0x0a, 0x58, s[0], s[1], s[2], host],
                        ip: Ipv4Addr::new(s[0], s[1], s[2], host),
                        vni,
                    }
                })
                .collect::<Vec<_>>();
            let mut seen = HashSet::new();
            let remote = remote.into_iter().filter(|r| seen.insert(r.ip)).collect();
            World {
                pods,
                nodes,
                remote,
                flows,
            }
        })
}

fn local_node() -> LocalNode {
    LocalNode {
        name: "n1".into(),
        vtep: "198.51.100.1".parse().expect("constant"),
        vtep_mac: MacAddr(VTEP_MAC),
        subnet: "10.1.1.0/24".parse().expect("constant"),
        gateway: None,
        vni: 1,
        cluster_network: "10.0.0.0/8".parse().expect("constant"),
        underlay_mtu: 1500,
        subnet6: Some(crate::sample::SUBNET6.parse().expect("constant")),
    }
}

fn pod_name(no: PortNo) -> String {
    format!("pod{no}")
}

/// The agent's multitenant flows for the world, compiled as the switch compiles them.
fn agent_flows(w: &World, version: u64) -> crate::flow::FlowSet {
    let cfg = AgentConfig {
        local: local_node(),
        multitenant: true,
        pods: w
            .pods
            .iter()
            .map(|p| PortSpec {
                name: pod_name(p.no),
                netns: format!("ns{}", p.no),
                mac: MacAddr(p.mac),
                ip: p.ip,
                ip6: Some(p.ip6()),
                vnid: Some(p.vni),
                ifname: None,
                mtu: None,
            })
            .collect(),
        nodes: (0..w.nodes)
            .map(|i| RemoteNode {
                name: format!("n{}", i + 2),
                vtep: node_vtep(i).into(),
                vtep_mac: MacAddr(node_vtep_mac(i)),
                subnet: format!("{}/24", node_subnet(i)).parse().expect("valid"),
                subnet6: None,
            })
            .collect(),
    };
    let flows: Vec<(u32, FlowSpec)> = controlplane::agent::flows::desired(&cfg, &HashSet::new())
        .into_iter()
        .enumerate()
        .map(|(i, f)| (i as u32, f))
        .collect();
    compile(&flows, w, version)
}

fn compile(flows: &[(u32, FlowSpec)], w: &World, version: u64) -> crate::flow::FlowSet {
    let resolve = |p: &PortRef| match p {
        PortRef::Number(n) => Some(*n),
        PortRef::Name(n) if n == "vxlan0" => Some(PORT_TUNNEL),
        PortRef::Name(n) if n == "vxhost0" => Some(PORT_HOST),
        PortRef::Name(n) => w.pods.iter().find(|p| &pod_name(p.no) == n).map(|p| p.no),
    };
    crate::flow::FlowSet::build(version, flows, &[], &resolve)
}

/// The tables the switch would publish for the world (as `switch/publish.rs` builds them).
fn tables(w: &World, version: u64) -> Tables {
    let mut t = crate::sample::tables(0);
    let mut base = Base {
        version,
        local: t.local.clone(),
        ..Default::default()
    };
    t.macs.clear();
    t.ips.clear();
    t.ips6.clear();
    let max = w.pods.iter().map(|p| p.no).max().unwrap_or(PORT_HOST);
    base.ports = vec![None; max as usize + 1];
    base.ports[PORT_HOST as usize] = Some(PortEntry {
        name: "vxhost0".into(),
        mac: EthernetAddress(HOST_MAC),
        ip: Some(Ipv4Addr::new(10, 1, 1, 1)),
        vni: 0,
    });
    t.macs.insert(
        EthernetAddress(HOST_MAC),
        MacEntry {
            target: Target::Port(PORT_HOST),
            vni: 0,
        },
    );
    for p in &w.pods {
        let mac = EthernetAddress(p.mac);
        base.ports[p.no as usize] = Some(PortEntry {
            name: pod_name(p.no),
            mac,
            ip: Some(p.ip),
            vni: p.vni,
        });
        let target = Target::Port(p.no);
        t.macs.insert(mac, MacEntry { target, vni: p.vni });
        let e = IpEntry {
            mac,
            target,
            vni: p.vni,
        };
        t.ips.insert(p.ip, e);
        t.ips6.insert(p.ip6(), e);
    }
    t.nodes.clear();
    for i in 0..w.nodes {
        t.nodes.push(NodeEntry {
            name: format!("n{}", i + 2),
            vtep: node_vtep(i).into(),
            vtep_mac: EthernetAddress(node_vtep_mac(i)),
            subnet: format!("{}/24", node_subnet(i)).parse().expect("valid"),
            subnet6: Some(format!("fd00:10:1:{}::/64", 2 + i).parse().expect("valid")),
        });
    }
    for r in &w.remote {
        let mac = EthernetAddress(r.mac);
        let target = Target::Node(r.node as NodeIdx);
        t.macs.entry(mac).or_insert(MacEntry { target, vni: r.vni });
        t.ips.insert(
            r.ip,
            IpEntry {
                mac,
                target,
                vni: r.vni,
            },
        );
    }
    base.reindex();
    base.flows = match w.flows {
        Flows::Builtin => None,
        Flows::Normal => {
            let normal = FlowSpec {
                table: 0,
                priority: 0,
                cookie: 0,
                idle_timeout: 0,
                hard_timeout: 0,
                matches: vec![],
                actions: vec![FlowAction::Normal],
            };
            Some(Arc::new(compile(&[(0, normal)], w, version)))
        }
        Flows::Multitenant => Some(Arc::new(agent_flows(w, version))),
        Flows::Flood => {
            let flow = |priority, matches, action| FlowSpec {
                table: 0,
                priority,
                cookie: 0,
                idle_timeout: 0,
                hard_timeout: 0,
                matches,
                actions: vec![action],
            };
            let flows = [
                (
                    0,
                    flow(
                        10,
                        vec![controlplane::flow::Match::DlType { value: 0x0800 }],
                        FlowAction::Normal,
                    ),
                ),
                (1, flow(0, vec![], FlowAction::Flood)),
            ];
            Some(Arc::new(compile(&flows, w, version)))
        }
    };
    t.base = Arc::new(base);
    t.reindex();
    t
}

/// A MAC address a random frame uses, chosen against the world.
#[derive(Debug, Clone)]
enum MacSel {
    Own,
    Pod(usize),
    Remote(usize),
    Gateway,
    Host,
    Vtep,
    NodeVtep(usize),
    Broadcast,
    Multicast(u8),
    Random([u8; 6]),
}

/// An IPv4 address a random frame uses.
#[derive(Debug, Clone)]
enum IpSel {
    Own,
    Pod(usize),
    Remote(usize),
    Gateway,
    RemoteSubnet(usize, u8),
    Random([u8; 4]),
}

#[derive(Debug, Clone)]
enum Kind {
    ArpRequest { sha: MacSel, spa: IpSel, tpa: IpSel },
    Udp,
    Tcp,
    Icmp,
    Udp6,
    NeighborSolicit { target: IpSel, multicast: bool },
    Vlan,
    Raw(u16, Vec<u8>),
}

#[derive(Debug, Clone)]
struct FrameSpec {
    dst: MacSel,
    src: MacSel,
    src_ip: IpSel,
    dst_ip: IpSel,
    kind: Kind,
    ttl: u8,
    payload: usize,
}

fn mac_sel() -> impl Strategy<Value = MacSel> {
    prop_oneof![
        3 => Just(MacSel::Own),
        4 => any::<usize>().prop_map(MacSel::Pod),
        1 => any::<usize>().prop_map(MacSel::Remote),
        4 => Just(MacSel::Gateway),
        1 => Just(MacSel::Host),
        1 => Just(MacSel::Vtep),
        1 => any::<usize>().prop_map(MacSel::NodeVtep),
        1 => Just(MacSel::Broadcast),
        1 => any::<u8>().prop_map(MacSel::Multicast),
        1 => any::<[u8; 6]>().prop_map(MacSel::Random),
    ]
}

fn ip_sel() -> impl Strategy<Value = IpSel> {
    prop_oneof![
        3 => Just(IpSel::Own),
        4 => any::<usize>().prop_map(IpSel::Pod),
        1 => any::<usize>().prop_map(IpSel::Remote),
        1 => Just(IpSel::Gateway),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(n, h)| IpSel::RemoteSubnet(n, h)),
        1 => any::<[u8; 4]>().prop_map(IpSel::Random),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => (mac_sel(), ip_sel(), ip_sel())
            .prop_map(|(sha, spa, tpa)| Kind::ArpRequest { sha, spa, tpa }),
        4 => Just(Kind::Udp),
        2 => Just(Kind::Tcp),
        2 => Just(Kind::Icmp),
        2 => Just(Kind::Udp6),
        2 => (ip_sel(), any::<bool>())
            .prop_map(|(target, multicast)| Kind::NeighborSolicit { target, multicast }),
        1 => Just(Kind::Vlan),
        1 => (any::<u16>(), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(e, b)| Kind::Raw(e, b)),
    ]
}

fn frame_spec() -> impl Strategy<Value = FrameSpec> {
    (
        mac_sel(),
        prop_oneof![4 => Just(MacSel::Own), 1 => mac_sel()],
        prop_oneof![4 => Just(IpSel::Own), 1 => ip_sel()],
        ip_sel(),
        kind(),
        prop_oneof![4 => Just(64u8), 1 => Just(1u8), 1 => any::<u8>()],
        prop_oneof![4 => 0usize..200, 1 => 1400usize..1500],
    )
        .prop_map(|(dst, src, src_ip, dst_ip, kind, ttl, payload)| FrameSpec {
            dst,
            src,
            src_ip,
            dst_ip,
            kind,
            ttl,
            payload,
        })
}

/// Where a datagram from the underlay claims to come from, and its VXLAN header.
#[derive(Debug, Clone)]
struct TunnelSpec {
    vtep: Option<usize>,
    random_vtep: [u8; 4],
    flags: u8,
    vni: VniSel,
    inner: FrameSpec,
}

#[derive(Debug, Clone)]
enum VniSel {
    OfPod(usize),
    Zero,
    Default,
    Random(u32),
}

fn tunnel_spec() -> impl Strategy<Value = TunnelSpec> {
    (
        prop_oneof![6 => any::<usize>().prop_map(Some), 1 => Just(None)],
        any::<[u8; 4]>(),
        prop_oneof![6 => Just(0x08u8), 1 => any::<u8>()],
        prop_oneof![
            4 => any::<usize>().prop_map(VniSel::OfPod),
            1 => Just(VniSel::Zero),
            1 => Just(VniSel::Default),
            1 => (0u32..1 << 24).prop_map(VniSel::Random),
        ],
        frame_spec(),
    )
        .prop_map(|(vtep, random_vtep, flags, vni, inner)| TunnelSpec {
            vtep,
            random_vtep,
            flags,
            vni,
            inner,
        })
}

/// Where a frame enters.
#[derive(Debug, Clone)]
enum Entry {
    /// From the pod at this index.
    Pod(usize, FrameSpec),
    /// From the host port (vxhost0, VNID 0).
    Host(FrameSpec),
    Tunnel(TunnelSpec),
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        6 => (any::<usize>(), frame_spec()).prop_map(|(i, f)| Entry::Pod(i, f)),
        1 => frame_spec().prop_map(Entry::Host),
        4 => tunnel_spec().prop_map(Entry::Tunnel),
    ]
}

fn pick<T>(v: &[T], i: usize) -> Option<&T> {
    (!v.is_empty()).then(|| &v[i % v.len()])
}

/// The sender: a pod, the host port, or (inner frames) a remote node.
struct Sender {
    mac: [u8; 6],
    ip: Ipv4Addr,
    ip6: Ipv6Addr,
}

fn mac_of(w: &World, me: &Sender, s: &MacSel) -> [u8; 6] {
    match s {
        MacSel::Own => me.mac,
        MacSel::Pod(i) => pick(&w.pods, *i).map_or(me.mac, |p| p.mac),
        MacSel::Remote(i) => pick(&w.remote, *i).map_or(me.mac, |r| r.mac),
        MacSel::Gateway => GW_MAC,
        MacSel::Host => HOST_MAC,
        MacSel::Vtep => VTEP_MAC,
        MacSel::NodeVtep(i) => node_vtep_mac(i % w.nodes),
        MacSel::Broadcast => [0xff; 6],
        MacSel::Multicast(x) => {
            if x % 2 == 0 {
                [0x01, 0x00, 0x5e, 0, 0, *x]
            } else {
                [0x33, 0x33, 0, 0, 0, *x]
            }
        }
        MacSel::Random(m) => *m,
    }
}

fn ip_of(w: &World, me: &Sender, s: &IpSel) -> Ipv4Addr {
    match s {
        IpSel::Own => me.ip,
        IpSel::Pod(i) => pick(&w.pods, *i).map_or(me.ip, |p| p.ip),
        IpSel::Remote(i) => pick(&w.remote, *i).map_or(me.ip, |r| r.ip),
        IpSel::Gateway => Ipv4Addr::new(10, 1, 1, 1),
        IpSel::RemoteSubnet(n, h) => {
            let s = node_subnet(n % w.nodes).octets();
            Ipv4Addr::new(s[0], s[1], s[2], *h)
        }
        IpSel::Random(a) => Ipv4Addr::from(*a),
    }
}

fn ip6_of(w: &World, me: &Sender, s: &IpSel) -> Ipv6Addr {
    match s {
        IpSel::Own => me.ip6,
        IpSel::Pod(i) => pick(&w.pods, *i).map_or(me.ip6, Pod::ip6),
        IpSel::Gateway => GATEWAY6,
        IpSel::Remote(_) | IpSel::RemoteSubnet(..) => {
            let v4 = ip_of(w, me, s).octets();
            Ipv6Addr::new(0xfd00, 0x10, 1, v4[2] as u16, 0, 0, 0, v4[3] as u16)
        }
        IpSel::Random(a) => Ipv6Addr::new(0xfd00, 0x10, 1, 1, 0, 0, a[0] as u16, a[1] as u16),
    }
}

/// The bytes of a frame spec, sent by `me`.
fn render(w: &World, me: &Sender, f: &FrameSpec) -> Vec<u8> {
    use etherparse::PacketBuilder;
    let dst = mac_of(w, me, &f.dst);
    let src = mac_of(w, me, &f.src);
    let sip = ip_of(w, me, &f.src_ip).octets();
    let dip = ip_of(w, me, &f.dst_ip).octets();
    let payload: Vec<u8> = (0..f.payload).map(|i| i as u8).collect();
    let mut out = Vec::new();
    match &f.kind {
        Kind::ArpRequest { sha, spa, tpa } => {
            let mut a = crate::sample::arp_request(
                mac_of(w, me, sha),
                ip_of(w, me, spa).octets(),
                ip_of(w, me, tpa).octets(),
            );
            a[0..6].copy_from_slice(&dst);
            a[6..12].copy_from_slice(&src);
            return a;
        }
        Kind::Udp => PacketBuilder::ethernet2(src, dst)
            .ipv4(sip, dip, f.ttl)
            .udp(40000, 5000)
            .write(&mut out, &payload),
        Kind::Tcp => PacketBuilder::ethernet2(src, dst)
            .ipv4(sip, dip, f.ttl)
            .tcp(40000, 80, 1, 1000)
            .ack(7)
            .write(&mut out, &payload),
        Kind::Icmp => PacketBuilder::ethernet2(src, dst)
            .ipv4(sip, dip, f.ttl)
            .icmpv4_echo_request(1, 1)
            .write(&mut out, &payload),
        Kind::Udp6 => PacketBuilder::ethernet2(src, dst)
            .ipv6(
                ip6_of(w, me, &f.src_ip).octets(),
                ip6_of(w, me, &f.dst_ip).octets(),
                f.ttl,
            )
            .udp(40000, 5000)
            .write(&mut out, &payload),
        Kind::NeighborSolicit { target, multicast } => {
            let target = ip6_of(w, me, target);
            let (dst_mac, dst_ip) = if *multicast {
                let t = target.octets();
                (
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
                )
            } else {
                (dst, target)
            };
            let mut body = target.octets().to_vec();
            body.extend_from_slice(&[1, 1]);
            body.extend_from_slice(&src);
            PacketBuilder::ethernet2(src, dst_mac)
                .ipv6(ip6_of(w, me, &f.src_ip).octets(), dst_ip.octets(), 255)
                .icmpv6_raw(135, 0, [0; 4])
                .write(&mut out, &body)
        }
        Kind::Vlan => {
            out.extend_from_slice(&dst);
            out.extend_from_slice(&src);
            out.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
            out.extend_from_slice(&payload);
            return out;
        }
        Kind::Raw(ethertype, bytes) => {
            out.extend_from_slice(&dst);
            out.extend_from_slice(&src);
            out.extend_from_slice(&ethertype.to_be_bytes());
            out.extend_from_slice(bytes);
            return out;
        }
    }
    .expect("a frame is built in memory");
    out
}

fn vni_of(w: &World, s: &VniSel) -> u32 {
    match s {
        VniSel::OfPod(i) => pick(&w.pods, *i).map_or(1, |p| p.vni),
        VniSel::Zero => 0,
        VniSel::Default => 1,
        VniSel::Random(v) => *v,
    }
}

/// One frame through the pipeline: every output with a copy of the frame as it left.
fn run(
    p: &mut Pipeline,
    t: &Tables,
    from: Result<PortNo, (SocketAddr, &[u8])>,
    frame: &[u8],
) -> Vec<(Action, Vec<u8>)> {
    let c = WorkerCounters::default();
    let mut sink = Recorder::keeping();
    match from {
        Ok(no) => {
            let mut buf = PacketBuf::from_frame(frame);
            p.from_port(t, &c, no, &mut buf, &mut sink);
        }
        Err((src, hdr)) => {
            let mut d = hdr.to_vec();
            d.extend_from_slice(frame);
            let mut buf = PacketBuf::from_frame(&d);
            p.from_tunnel(t, &c, src, None, &mut buf, &mut sink);
        }
    }
    sink.outputs
}

fn vxlan_header(flags: u8, vni: u32) -> [u8; 8] {
    let v = vni.to_be_bytes();
    [flags, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// The VNID of a station the tables know by IPv4 address, if any.
fn vni_of_ip(t: &Tables, ip: Ipv4Addr) -> Option<u32> {
    t.ips.get(&ip).map(|e| e.vni)
}

/// The tenant rules for what one frame from port `in_no` (VNID `a`) produced.
fn check_from_port(
    t: &Tables,
    in_no: PortNo,
    a: u32,
    owner: Option<&Pod>,
    policed: bool,
    outs: &[(Action, Vec<u8>)],
) -> Result<(), TestCaseError> {
    for (action, f) in outs {
        match *action {
            Action::Output(q) => {
                let Some(port) = t.port(q) else {
                    return Err(TestCaseError::fail(format!(
                        "output to port {q}, which the tables do not have"
                    )));
                };
                if q == in_no {
                    // An answer of the switch's own: it must not name another tenant.
                    check_answer(t, a, f)?;
                    continue;
                }
                prop_assert!(
                    may_reach(a, port.vni),
                    "port {in_no} (VNID {a}) reached port {q} (VNID {})",
                    port.vni
                );
                if let (true, Some(pod)) = (policed, owner) {
                    check_source(f, pod, &[pod.mac, GW_MAC])?;
                }
            }
            Action::Encap { node, .. } => {
                prop_assert!(t.node(node).is_some(), "encapsulated to node {node}");
                let vx = VxlanPacket::new_checked(&f[..]).expect("a VXLAN header");
                prop_assert_eq!(vx.vni(), a, "port {}'s frame left with another VNI", in_no);
                if let (true, Some(pod)) = (policed, owner) {
                    check_source(&f[VXLAN_LEN..], pod, &[pod.mac, VTEP_MAC])?;
                }
            }
            Action::Drop(_) => {}
        }
    }
    Ok(())
}

/// An ARP reply or neighbour advertisement sent back to a port of VNID `a` names no station
/// of another tenant.
fn check_answer(t: &Tables, a: u32, f: &[u8]) -> Result<(), TestCaseError> {
    let Ok(eth) = EthernetFrame::new_checked(f) else {
        return Ok(());
    };
    match eth.ethertype() {
        EtherType::Arp => {
            if let Ok(arp) = ArpPacket::new_checked(eth.payload()) {
                if arp.operation() == ArpOperation::Reply {
                    let ip = arp.source_protocol_addr();
                    if let Some(b) = vni_of_ip(t, ip) {
                        prop_assert!(may_reach(a, b), "ARP answer names {ip} (VNID {b})");
                    }
                }
            }
        }
        EtherType::Ipv6 => {
            if let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) {
                if let Some(e) = t.ips6.get(&ip.src_addr()) {
                    prop_assert!(
                        may_reach(a, e.vni),
                        "an answer from {} (VNID {})",
                        ip.src_addr(),
                        e.vni
                    );
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// A frame a pod sent leaves with the pod's source IP and one of `macs` as source MAC.
fn check_source(f: &[u8], pod: &Pod, macs: &[[u8; 6]]) -> Result<(), TestCaseError> {
    let eth = EthernetFrame::new_checked(f).expect("an Ethernet frame");
    prop_assert!(
        macs.contains(&eth.src_addr().0),
        "port {} sent from MAC {}",
        pod.no,
        eth.src_addr()
    );
    match eth.ethertype() {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).expect("an IPv4 header");
            prop_assert_eq!(
                ip.src_addr(),
                pod.ip,
                "port {} sent from another IP",
                pod.no
            );
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).expect("an IPv6 header");
            prop_assert_eq!(
                ip.src_addr(),
                pod.ip6(),
                "port {} sent from another IP",
                pod.no
            );
        }
        EtherType::Arp => {
            let arp = ArpPacket::new_checked(eth.payload()).expect("an ARP packet");
            prop_assert_eq!(arp.source_protocol_addr(), pod.ip);
            prop_assert_eq!(arp.source_hardware_addr().0, pod.mac);
        }
        other => {
            return Err(TestCaseError::fail(format!(
                "port {} sent {other:?} past port security",
                pod.no
            )))
        }
    }
    Ok(())
}

/// The rules for what one datagram from the underlay produced.
fn check_from_tunnel(
    t: &Tables,
    spec: &TunnelSpec,
    vni: u32,
    outs: &[(Action, Vec<u8>)],
) -> Result<(), TestCaseError> {
    let known_vtep = spec.vtep.is_some();
    let admitted = known_vtep && spec.flags & 0x08 != 0 && t.knows_vni(vni);
    if !admitted {
        prop_assert!(
            outs.is_empty(),
            "a datagram from an unknown VTEP, without the I flag or with an unknown VNI went \
             out: {:?}",
            outs.iter().map(|o| o.0).collect::<Vec<_>>()
        );
        return Ok(());
    }
    for (action, f) in outs {
        match *action {
            Action::Output(q) => {
                prop_assert!(q != PORT_TUNNEL);
                let port = t.port(q).expect("output to a port in the tables");
                prop_assert!(
                    may_reach(vni, port.vni),
                    "VNI {vni} was delivered to port {q} (VNID {})",
                    port.vni
                );
            }
            Action::Encap { .. } => {
                let vx = VxlanPacket::new_checked(&f[..]).expect("a VXLAN header");
                prop_assert_eq!(vx.vni(), vni, "an answer left with another VNI");
            }
            Action::Drop(_) => {}
        }
    }
    Ok(())
}

/// Runs one entry against the tables and checks the rules.
fn drive(p: &mut Pipeline, w: &World, t: &Tables, e: &Entry) -> Result<(), TestCaseError> {
    let policed = w.flows == Flows::Multitenant;
    match e {
        Entry::Pod(i, f) => {
            let Some(pod) = pick(&w.pods, *i) else {
                return Ok(());
            };
            let me = Sender {
                mac: pod.mac,
                ip: pod.ip,
                ip6: pod.ip6(),
            };
            let frame = render(w, &me, f);
            let outs = run(p, t, Ok(pod.no), &frame);
            check_from_port(t, pod.no, pod.vni, Some(pod), policed, &outs)
        }
        Entry::Host(f) => {
            let me = Sender {
                mac: HOST_MAC,
                ip: Ipv4Addr::new(10, 1, 1, 1),
                ip6: GATEWAY6,
            };
            let frame = render(w, &me, f);
            let outs = run(p, t, Ok(PORT_HOST), &frame);
            check_from_port(t, PORT_HOST, 0, None, false, &outs)
        }
        Entry::Tunnel(s) => {
            let n = s.vtep.map(|i| i % w.nodes);
            let vtep = n.map_or(Ipv4Addr::from(s.random_vtep), node_vtep);
            if n.is_none() && (0..w.nodes).any(|i| node_vtep(i) == vtep) {
                return Ok(());
            }
            let me = Sender {
                mac: n.map_or(s.random_vtep_mac(), node_vtep_mac),
                ip: n.map_or(Ipv4Addr::new(10, 1, 2, 2), |n| {
                    let o = node_subnet(n).octets();
                    Ipv4Addr::new(o[0], o[1], o[2], 2)
                }),
                ip6: Ipv6Addr::new(0xfd00, 0x10, 1, 2, 0, 0, 0, 2),
            };
            let vni = vni_of(w, &s.vni);
            let frame = render(w, &me, &s.inner);
            let hdr = vxlan_header(s.flags, vni);
            let src = SocketAddr::new(vtep.into(), 50000);
            let outs = run(p, t, Err((src, &hdr)), &frame);
            check_from_tunnel(t, s, vni, &outs)
        }
    }
}

impl TunnelSpec {
    fn random_vtep_mac(&self) -> [u8; 6] {
        let v = self.random_vtep;
        [0x02, 0xaa, v[0], v[1], v[2], v[3]]
    }
}

proptest! {
    #![proptest_config(config())]

    /// Tenants stay apart, decapsulation respects the VNI, and with port security nothing
    /// leaves with a source its port does not own.
    #[test]
    fn tenants_stay_apart_and_sources_are_owned(
        w in world(),
        entries in prop::collection::vec(entry(), 1..40),
    ) {
        let t = tables(&w, 1);
        let mut p = Pipeline::new(PipelineConfig::default());
        for e in &entries {
            drive(&mut p, &w, &t, e)?;
        }
    }

    /// A port number freed by one pod and taken by another never carries the old pod's
    /// traffic, however warm the pipeline's caches are.
    #[test]
    fn a_reused_port_number_never_carries_the_old_pods_traffic(
        w in world(),
        old in any::<usize>(),
        new_mac in unicast_mac(),
        new_host in 2u8..255,
        new_vni in vni(),
        before in prop::collection::vec(entry(), 0..20),
        after in prop::collection::vec(entry(), 0..20),
    ) {
        let Some(gone) = pick(&w.pods, old).cloned() else {
            return Ok(());
        };
        let new_ip = Ipv4Addr::new(10, 1, 1, new_host);
        prop_assume!(!w.pods.iter().any(|p| p.mac == new_mac || p.ip == new_ip));
        prop_assume!(![GW_MAC, HOST_MAC, VTEP_MAC].contains(&new_mac));
        let mut w2 = w.clone();
        let taker = Pod { no: gone.no, mac: new_mac, ip: new_ip, vni: new_vni };
        for p in &mut w2.pods {
            if p.no == gone.no {
                *p = taker.clone();
            }
        }
        let t1 = tables(&w, 1);
        let t2 = tables(&w2, 2);
        let mut p = Pipeline::new(PipelineConfig::default());
        // Warm the caches with traffic from, to and about the old pod.
        let idx = w.pods.iter().position(|p| p.no == gone.no).unwrap_or(0);
        let to_old = targeted(&w, idx);
        for e in before.iter().chain(&to_old) {
            drive(&mut p, &w, &t1, e)?;
        }
        // The number changes hands; the old pod's addresses are no longer in the tables.
        for e in after.iter().chain(&to_old) {
            drive(&mut p, &w2, &t2, e)?;
        }
        for (i, e) in targeted(&w, idx).iter().enumerate() {
            // A broadcast (the ARP request) may reach every port of its tenant; what is
            // addressed to the old pod may not reach the number.
            let unicast = !matches!(e, Entry::Pod(_, f) if matches!(f.dst, MacSel::Broadcast));
            let outs = run_entry(&mut p, &w, &t2, e);
            for (a, f) in &outs {
                let ingress_is_number = matches!(e, Entry::Pod(j, _) if pick(&w.pods, *j).map(|p| p.no) == Some(gone.no));
                if let Action::Output(q) = a {
                    prop_assert!(
                        *q != gone.no || ingress_is_number || !unicast,
                        "frame {i} for the old pod (MAC {:?}, IP {}) reached port {} now \
                         held by {:?}",
                        gone.mac, gone.ip, gone.no, taker
                    );
                }
                if let Ok(eth) = EthernetFrame::new_checked(&f[..]) {
                    if let Ok(arp) = ArpPacket::new_checked(eth.payload()) {
                        if eth.ethertype() == EtherType::Arp && arp.operation() == ArpOperation::Reply {
                            prop_assert!(
                                arp.source_protocol_addr() != gone.ip,
                                "an ARP answer still names the old pod's {}",
                                gone.ip
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Frames addressed to the pod at `idx` (by MAC, by routed IP, by ARP) from every other pod,
/// the host, and a remote node.
fn targeted(w: &World, idx: usize) -> Vec<Entry> {
    let udp = |dst: MacSel, dst_ip: IpSel| FrameSpec {
        dst,
        src: MacSel::Own,
        src_ip: IpSel::Own,
        dst_ip,
        kind: Kind::Udp,
        ttl: 64,
        payload: 32,
    };
    let arp = FrameSpec {
        dst: MacSel::Broadcast,
        src: MacSel::Own,
        src_ip: IpSel::Own,
        dst_ip: IpSel::Pod(idx),
        kind: Kind::ArpRequest {
            sha: MacSel::Own,
            spa: IpSel::Own,
            tpa: IpSel::Pod(idx),
        },
        ttl: 64,
        payload: 0,
    };
    let mut out = Vec::new();
    for j in 0..w.pods.len() {
        out.push(Entry::Pod(j, udp(MacSel::Pod(idx), IpSel::Pod(idx))));
        out.push(Entry::Pod(j, udp(MacSel::Gateway, IpSel::Pod(idx))));
        out.push(Entry::Pod(j, arp.clone()));
    }
    out.push(Entry::Host(udp(MacSel::Pod(idx), IpSel::Pod(idx))));
    out.push(Entry::Host(udp(MacSel::Gateway, IpSel::Pod(idx))));
    for (mac, vni) in [
        (MacSel::Vtep, VniSel::OfPod(idx)),
        (MacSel::Pod(idx), VniSel::OfPod(idx)),
        (MacSel::Vtep, VniSel::Zero),
    ] {
        out.push(Entry::Tunnel(TunnelSpec {
            vtep: Some(0),
            random_vtep: [0; 4],
            flags: 0x08,
            vni,
            inner: FrameSpec {
                src: MacSel::NodeVtep(0),
                src_ip: IpSel::RemoteSubnet(0, 2),
                ..udp(mac, IpSel::Pod(idx))
            },
        }));
    }
    out
}

/// Runs an entry without checking, for the outputs alone.
fn run_entry(p: &mut Pipeline, w: &World, t: &Tables, e: &Entry) -> Vec<(Action, Vec<u8>)> {
    match e {
        Entry::Pod(i, f) => {
            let Some(pod) = pick(&w.pods, *i) else {
                return vec![];
            };
            let me = Sender {
                mac: pod.mac,
                ip: pod.ip,
                ip6: pod.ip6(),
            };
            run(p, t, Ok(pod.no), &render(w, &me, f))
        }
        Entry::Host(f) => {
            let me = Sender {
                mac: HOST_MAC,
                ip: Ipv4Addr::new(10, 1, 1, 1),
                ip6: GATEWAY6,
            };
            run(p, t, Ok(PORT_HOST), &render(w, &me, f))
        }
        Entry::Tunnel(s) => {
            let n = s.vtep.map_or(0, |i| i % w.nodes);
            let o = node_subnet(n).octets();
            let me = Sender {
                mac: node_vtep_mac(n),
                ip: Ipv4Addr::new(o[0], o[1], o[2], 2),
                ip6: Ipv6Addr::new(0xfd00, 0x10, 1, 2, 0, 0, 0, 2),
            };
            let hdr = vxlan_header(s.flags, vni_of(w, &s.vni));
            let src = SocketAddr::new(node_vtep(n).into(), 50000);
            run(p, t, Err((src, &hdr)), &render(w, &me, &s.inner))
        }
    }
}
