//! The forwarding tables, published read-copy-update.
//!
//! Workers read an immutable [`Tables`] snapshot without locking: [`Fib::load`] is an
//! `arc_swap` load (a few atomic instructions, never blocks, never waits for a writer). The
//! control side builds the next version from the current one and publishes it with one atomic
//! pointer swap ([`Fib::publish`]); writers are serialised by the control side's state lock, so
//! a batch of changes is seen by packets entirely or not at all.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use controlplane::proto::Ipv4Cidr;
use rustc_hash::FxHashMap;

use crate::wire::EthernetAddress;

/// Port number type (1 = tunnel, 2 = host, 3.. = pods).
pub type PortNo = u16;

/// Index of a remote node in [`Tables::nodes`].
pub type NodeIdx = u32;

/// What this node is on the overlay, as the packet path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInfo {
    pub vtep: IpAddr,
    pub vtep_mac: EthernetAddress,
    pub subnet: Ipv4Cidr,
    pub gateway: Ipv4Addr,
    /// The switch's router MAC: pods send routed traffic here.
    pub gateway_mac: EthernetAddress,
    /// MAC of the host port's TAP (vxhost0) in the node's stack.
    pub host_mac: EthernetAddress,
    pub default_vni: u32,
    pub cluster: Ipv4Cidr,
    /// Largest inner IP packet the tunnel carries (underlay MTU - 50, or - 70 on IPv6).
    pub tunnel_mtu: u16,
}

/// Where a MAC or an IP lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Port(PortNo),
    Node(NodeIdx),
}

/// A MAC entry: where the station is and which VNI it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacEntry {
    pub target: Target,
    pub vni: u32,
}

/// A pod IP entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpEntry {
    pub mac: EthernetAddress,
    pub target: Target,
    pub vni: u32,
}

/// A remote node: the VTEP behind which one pod subnet lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    pub name: String,
    pub vtep: IpAddr,
    pub vtep_mac: EthernetAddress,
    pub subnet: Ipv4Cidr,
}

/// A port as the packet path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEntry {
    pub name: String,
    pub mac: EthernetAddress,
    pub ip: Option<Ipv4Addr>,
    /// The port's VNID; 0 (admin) for the host port, which reaches every tenant.
    pub vni: u32,
}

/// One immutable version of every table.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub version: u64,
    pub local: Option<LocalInfo>,
    /// Ports by number; `None` for unused numbers.
    pub ports: Vec<Option<PortEntry>>,
    pub macs: FxHashMap<EthernetAddress, MacEntry>,
    pub ips: FxHashMap<Ipv4Addr, IpEntry>,
    pub nodes: Vec<NodeEntry>,
    /// Remote subnets, longest prefix first.
    pub routes: Vec<(Ipv4Cidr, NodeIdx)>,
    /// Source VTEP address → node, for the underlay filter.
    pub vteps: FxHashMap<IpAddr, NodeIdx>,
    /// VNIs some local port belongs to (plus the default VNI): a packet for any other is
    /// dropped as unknown.
    pub vnis: Vec<u32>,
    /// The flow tables; `None` runs the built-in forwarding alone (as a `normal` flow would).
    pub flows: Option<Arc<crate::flow::FlowSet>>,
}

impl Tables {
    pub fn port(&self, no: PortNo) -> Option<&PortEntry> {
        self.ports.get(no as usize).and_then(|p| p.as_ref())
    }

    /// The remote node whose subnet holds `ip` (longest prefix).
    pub fn route(&self, ip: Ipv4Addr) -> Option<NodeIdx> {
        self.routes
            .iter()
            .find(|(c, _)| c.contains(ip))
            .map(|&(_, n)| n)
    }

    pub fn node(&self, idx: NodeIdx) -> Option<&NodeEntry> {
        self.nodes.get(idx as usize)
    }

    pub fn knows_vni(&self, vni: u32) -> bool {
        self.vnis.contains(&vni)
    }

    /// Rebuilds the derived indexes (routes, vteps, vnis) after `nodes`/`ports` changed.
    pub fn reindex(&mut self) {
        self.routes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.subnet, i as NodeIdx))
            .collect();
        self.routes.sort_by_key(|r| std::cmp::Reverse(r.0.prefix()));
        self.vteps = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.vtep, i as NodeIdx))
            .collect();
        let mut vnis: Vec<u32> = self.ports.iter().flatten().map(|p| p.vni).collect();
        if let Some(l) = &self.local {
            vnis.push(l.default_vni);
        }
        vnis.sort_unstable();
        vnis.dedup();
        self.vnis = vnis;
    }
}

/// Tenant rule: VNID 0 reaches and is reached by everyone; otherwise VNIDs must match.
#[inline]
pub fn vni_allows(src: u32, dst: u32) -> bool {
    src == dst || src == 0 || dst == 0
}

/// The published tables.
pub struct Fib {
    current: ArcSwap<Tables>,
}

impl Default for Fib {
    fn default() -> Self {
        Fib {
            current: ArcSwap::from_pointee(Tables::default()),
        }
    }
}

impl Fib {
    /// The current snapshot. Lock-free; hold the guard for one batch at most.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Tables>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc` (for the control side).
    pub fn snapshot(&self) -> Arc<Tables> {
        self.current.load_full()
    }

    /// Publishes a new version. The caller serialises writers.
    pub fn publish(&self, tables: Tables) {
        self.current.store(Arc::new(tables));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_vnis_are_collected() {
        let mut t = Tables::default();
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        t.nodes.push(NodeEntry {
            name: "wide".into(),
            vtep: "198.51.100.2".parse().unwrap(),
            vtep_mac: mac,
            subnet: "10.1.0.0/16".parse().unwrap(),
        });
        t.nodes.push(NodeEntry {
            name: "narrow".into(),
            vtep: "198.51.100.3".parse().unwrap(),
            vtep_mac: mac,
            subnet: "10.1.3.0/24".parse().unwrap(),
        });
        t.ports = vec![
            None,
            None,
            None,
            Some(PortEntry {
                name: "p".into(),
                mac,
                ip: None,
                vni: 10,
            }),
        ];
        t.reindex();
        assert_eq!(t.route("10.1.3.7".parse().unwrap()), Some(1));
        assert_eq!(t.route("10.1.4.7".parse().unwrap()), Some(0));
        assert_eq!(t.route("10.2.0.1".parse().unwrap()), None);
        assert!(t.knows_vni(10));
        assert_eq!(
            t.vteps.get(&"198.51.100.3".parse::<IpAddr>().unwrap()),
            Some(&1)
        );
    }

    #[test]
    fn readers_see_whole_versions() {
        let fib = Fib::default();
        let before = fib.load();
        let t = Tables {
            version: 7,
            ..Default::default()
        };
        fib.publish(t);
        assert_eq!(before.version, 0);
        assert_eq!(fib.load().version, 7);
    }

    #[test]
    fn tenant_rule() {
        assert!(vni_allows(10, 10));
        assert!(!vni_allows(10, 20));
        assert!(vni_allows(0, 20));
        assert!(vni_allows(10, 0));
    }
}
