//! Nodes of kind `kernel`: the Linux vxlan driver programmed exactly as flannel's vxlan backend
//! does it — a `cni0` bridge for the pods, a `flannel.1` vxlan device without learning, and per
//! remote node one onlink route, one permanent neighbour and one permanent FDB entry.

use super::{sh, topo, Lab, LabError, NodeInfo};
use sh::Batch;

/// The pod bridge.
pub const BRIDGE: &str = "cni0";
/// The vxlan device (flannel names it after the VNI).
pub const VXLAN_DEV: &str = "flannel.1";

/// Programs one kernel node whose namespace, underlay and (empty) pod namespaces exist.
pub fn setup_node(lab: &Lab, node: &NodeInfo) -> Result<(), LabError> {
    let mtu = lab.pod_mtu();
    let mut ip = Batch::ip(&node.netns);
    bridge_and_pods(&mut ip, node, mtu);

    // flannel.1 carries the node's VTEP MAC and the subnet's network address as a /32. On an
    // IPv6 underlay it sends UDP without a checksum and accepts the same.
    let (local, csum) = match node.vtep6 {
        Some(v6) => (v6.to_string(), " udp6zerocsumtx udp6zerocsumrx"),
        None => (node.vtep.to_string(), ""),
    };
    ip.add(format!(
        "link add {VXLAN_DEV} type vxlan id {} local {local} dev eth0 dstport {} nolearning{csum}",
        topo::VNI,
        lab.spec().port
    ))
    .add(format!(
        "link set {VXLAN_DEV} address {} mtu {mtu} up",
        node.vtep_mac
    ))
    .add(format!(
        "addr add {}/32 dev {VXLAN_DEV}",
        subnet_network(node)
    ));

    let mut fdb = Batch::bridge(&node.netns);
    for peer in lab.nodes().iter().filter(|n| n.name != node.name) {
        let via = subnet_network(peer);
        ip.add(format!(
            "route add {} via {via} dev {VXLAN_DEV} onlink",
            peer.subnet
        ))
        .add(format!(
            "neigh add {via} lladdr {} dev {VXLAN_DEV} nud permanent",
            peer.vtep_mac
        ));
        fdb.add(format!(
            "fdb add {} dev {VXLAN_DEV} dst {} self permanent",
            peer.vtep_mac,
            peer.vtep6.map_or(peer.vtep.to_string(), |v| v.to_string())
        ));
    }
    ip.run()?;
    fdb.run()?;
    sh::sysctl(
        &node.netns,
        &[
            (sh::ipv4_conf(BRIDGE, "rp_filter"), "0"),
            (sh::ipv4_conf(VXLAN_DEV, "rp_filter"), "0"),
        ],
    )?;
    pod_addresses(node, mtu)
}

/// Adds to `ip` the pod bridge `cni0` holding the gateway address, and one veth per pod
/// (`v{pod}` on the bridge, `eth0` in the pod) with the given MTU.
pub(super) fn bridge_and_pods(ip: &mut Batch, node: &NodeInfo, mtu: u16) {
    ip.add(format!("link add {BRIDGE} type bridge"))
        .add(format!("addr add {}/24 dev {BRIDGE}", node.gateway))
        .add(format!("link set {BRIDGE} up"));
    for pod in &node.pods {
        let host = format!("v{}", pod.name);
        ip.add(format!(
            "link add {host} mtu {mtu} type veth peer name eth0 netns {}",
            pod.netns
        ))
        .add(format!("link set {host} master {BRIDGE} up"));
    }
}

/// Gives every pod of `node` its MAC, MTU, address and a default route via the gateway.
pub(super) fn pod_addresses(node: &NodeInfo, mtu: u16) -> Result<(), LabError> {
    for pod in &node.pods {
        let mut p = Batch::ip(&pod.netns);
        p.add(format!("link set eth0 address {} mtu {mtu} up", pod.mac))
            .add(format!("addr add {}/24 dev eth0", pod.ip))
            .add(format!("route add default via {} dev eth0", node.gateway));
        p.run()?;
    }
    Ok(())
}

/// `10.1.i.0`, the first address of the node's subnet.
fn subnet_network(node: &NodeInfo) -> &str {
    node.subnet
        .split_once('/')
        .map_or(node.subnet.as_str(), |(a, _)| a)
}
