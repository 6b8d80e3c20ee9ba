//! Nodes of kind `plain`: no overlay at all, as flannel's host-gw backend does it — the same
//! `cni0` bridge and pod veths as a kernel node (pod MTU 1500), and per remote node a route to
//! its pod subnet via its underlay address. The upper bound the overlays are measured against;
//! a plain lab has only plain nodes.

use super::kernel::{bridge_and_pods, pod_addresses, BRIDGE};
use super::{sh, Lab, LabError, NodeInfo};
use sh::Batch;

/// Programs one plain node whose namespace, underlay and (empty) pod namespaces exist.
pub fn setup_node(lab: &Lab, node: &NodeInfo) -> Result<(), LabError> {
    let mtu = node.kind.pod_mtu();
    let mut ip = Batch::ip(&node.netns);
    bridge_and_pods(&mut ip, node, mtu);
    for peer in lab.nodes().iter().filter(|n| n.name != node.name) {
        ip.add(format!(
            "route add {} via {} dev eth0",
            peer.subnet, peer.vtep
        ));
    }
    ip.run()?;
    sh::sysctl(&node.netns, &[(sh::ipv4_conf(BRIDGE, "rp_filter"), "0")])?;
    pod_addresses(node, mtu)
}
