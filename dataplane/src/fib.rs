//! The forwarding tables, kept as two copies (left-right).
//!
//! Workers read [`Tables`] through a [`FibReader`] without locking and without waiting: entering
//! is one atomic increment of the reader's own epoch counter and one pointer load, leaving is
//! another increment. The control side holds the one [`FibWriter`]: it queues per-entry changes
//! ([`FibWriter::set_ip`], [`FibWriter::set_mac`]) and whole replacements of the small tables
//! ([`FibWriter::set_base`]) against the copy nobody reads, then [`FibWriter::publish`] swaps the
//! copies with one pointer store and replays the same changes onto the other copy once the last
//! reader has left it. A batch of changes is seen by packets entirely or not at all, and an
//! update costs two hash-map writes whatever the table's size — where copying a whole table per
//! version (read-copy-update of one snapshot) costs O(n) per change.
//!
//! The large tables (pod IPs and MACs, remote nodes with their routes and VTEPs) are in
//! [`Tables`] and change entry by entry; a removed node's index goes to the last node, so a
//! node change touches two entries whatever the number of nodes. Everything small (local node,
//! ports, VNIs, the compiled flow tables) sits in one shared [`Base`] that is replaced as a
//! whole.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use controlplane::proto::{Ipv4Cidr, Ipv6Cidr};
use left_right::{Absorb, ReadGuard, ReadHandle, ReadHandleFactory, WriteHandle};
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
    /// The node's IPv6 pod prefix and gateway address (dual stack), when it has one.
    pub subnet6: Option<Ipv6Cidr>,
    pub gateway6: Option<Ipv6Addr>,
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
    /// The node's IPv6 pod prefix, when it has one.
    pub subnet6: Option<Ipv6Cidr>,
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

/// One version of every table: the per-entry maps and the shared small tables.
///
/// Derefs to [`Base`], so `t.ports`, `t.local`, `t.route(ip)` read the small tables directly;
/// mutating them through `DerefMut` copies the base first if it is shared (for building
/// tables on the control side and in tests).
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub base: Arc<Base>,
    pub macs: FxHashMap<EthernetAddress, MacEntry>,
    pub ips: FxHashMap<Ipv4Addr, IpEntry>,
    /// Pod IPv6 addresses (dual stack).
    pub ips6: FxHashMap<Ipv6Addr, IpEntry>,
    /// Remote nodes by index. Dense: removing a node moves the last one into its slot, so a
    /// change touches two entries whatever the number of nodes.
    pub nodes: Vec<NodeEntry>,
    /// Remote subnets, longest prefix first (then by address).
    pub routes: Vec<(Ipv4Cidr, NodeIdx)>,
    /// Remote IPv6 prefixes, longest first (then by address).
    pub routes6: Vec<(Ipv6Cidr, NodeIdx)>,
    /// Source VTEP address → node, for the underlay filter.
    pub vteps: FxHashMap<IpAddr, NodeIdx>,
}

impl Tables {
    /// The remote node whose subnet holds `ip` (longest prefix).
    ///
    /// The list is ordered by prefix length, then address: each group of one prefix length is
    /// searched by halving for the one subnet that could hold `ip`, so a lookup costs a few
    /// comparisons per distinct prefix length, whatever the number of nodes.
    pub fn route(&self, ip: Ipv4Addr) -> Option<NodeIdx> {
        let a = u32::from(ip);
        lookup(&self.routes, |c: &Ipv4Cidr| {
            let p = c.prefix();
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            (p, u32::from(c.addr()) & mask, a & mask)
        })
    }

    /// The remote node whose IPv6 prefix holds `ip` (longest prefix).
    pub fn route6(&self, ip: Ipv6Addr) -> Option<NodeIdx> {
        let a = u128::from(ip);
        lookup(&self.routes6, |c: &Ipv6Cidr| {
            let p = c.prefix();
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            (p, u128::from(c.addr()) & mask, a & mask)
        })
    }

    pub fn node(&self, idx: NodeIdx) -> Option<&NodeEntry> {
        self.nodes.get(idx as usize)
    }

    /// Rebuilds the derived indexes (routes, vteps, vnis) after `nodes`/`ports` changed as a
    /// whole.
    pub fn reindex(&mut self) {
        self.reindex_nodes();
        Arc::make_mut(&mut self.base).reindex();
    }

    /// Rebuilds the routes and VTEPs from `nodes`.
    fn reindex_nodes(&mut self) {
        self.routes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.subnet, i as NodeIdx))
            .collect();
        self.routes.sort_by_key(|r| route_key(&r.0));
        self.routes6 = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.subnet6.map(|s| (s, i as NodeIdx)))
            .collect();
        self.routes6.sort_by_key(|r| route6_key(&r.0));
        self.vteps = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.vtep, i as NodeIdx))
            .collect();
    }

    /// Adds a remote node at the end (index `nodes.len()`), with its routes.
    pub fn add_node(&mut self, n: NodeEntry) -> NodeIdx {
        let idx = self.nodes.len() as NodeIdx;
        let at = self
            .routes
            .partition_point(|r| route_key(&r.0) <= route_key(&n.subnet));
        self.routes.insert(at, (n.subnet, idx));
        if let Some(s) = n.subnet6 {
            let at = self
                .routes6
                .partition_point(|r| route6_key(&r.0) <= route6_key(&s));
            self.routes6.insert(at, (s, idx));
        }
        self.vteps.insert(n.vtep, idx);
        self.nodes.push(n);
        idx
    }

    /// Removes the remote node at `idx`; the last node takes its index (returned as the index
    /// it had, when one moved).
    pub fn remove_node(&mut self, idx: NodeIdx) -> Option<NodeIdx> {
        let i = idx as usize;
        if i >= self.nodes.len() {
            return None;
        }
        let last = (self.nodes.len() - 1) as NodeIdx;
        let gone = self.nodes.swap_remove(i);
        if let Some(at) = find_route(&self.routes, &gone.subnet, idx, route_key) {
            self.routes.remove(at);
        }
        if let Some(s) = gone.subnet6 {
            if let Some(at) = find_route(&self.routes6, &s, idx, route6_key) {
                self.routes6.remove(at);
            }
        }
        if self.vteps.get(&gone.vtep) == Some(&idx) {
            self.vteps.remove(&gone.vtep);
        }
        if idx == last {
            return None;
        }
        let moved = &self.nodes[i];
        if let Some(at) = find_route(&self.routes, &moved.subnet, last, route_key) {
            self.routes[at].1 = idx;
        }
        if let Some(s) = moved.subnet6 {
            if let Some(at) = find_route(&self.routes6, &s, last, route6_key) {
                self.routes6[at].1 = idx;
            }
        }
        if let Some(v) = self.vteps.get_mut(&moved.vtep) {
            if *v == last {
                *v = idx;
            }
        }
        Some(last)
    }
}

/// Order of the route list: longest prefix first, then by address.
fn route_key(c: &Ipv4Cidr) -> (std::cmp::Reverse<u8>, u32) {
    (std::cmp::Reverse(c.prefix()), u32::from(c.addr()))
}

fn route6_key(c: &Ipv6Cidr) -> (std::cmp::Reverse<u8>, u128) {
    (std::cmp::Reverse(c.prefix()), u128::from(c.addr()))
}

/// Longest-prefix match in a route list ordered by prefix length (longest first), then by
/// address. `key(c)` gives a route's prefix length, its network address and the looked-up
/// address under the same mask: within a group of one length, the network equal to the
/// masked address is found by halving; the first group with one wins.
fn lookup<C, A: Ord + Copy>(
    routes: &[(C, NodeIdx)],
    key: impl Fn(&C) -> (u8, A, A),
) -> Option<NodeIdx> {
    let mut from = 0;
    while from < routes.len() {
        let (p, _, want) = key(&routes[from].0);
        let group = &routes[from..];
        let len = group.partition_point(|r| key(&r.0).0 == p);
        let g = &group[..len];
        let at = g.partition_point(|r| key(&r.0).1 < want);
        if let Some(r) = g.get(at) {
            if key(&r.0).1 == want {
                return Some(r.1);
            }
        }
        from += len;
    }
    None
}

/// Where `(c, idx)` sits in a route list ordered by `key`.
fn find_route<C, K: Ord>(
    routes: &[(C, NodeIdx)],
    c: &C,
    idx: NodeIdx,
    key: fn(&C) -> K,
) -> Option<usize> {
    let k = key(c);
    let from = routes.partition_point(|r| key(&r.0) < k);
    routes[from..]
        .iter()
        .take_while(|r| key(&r.0) == k)
        .position(|r| r.1 == idx)
        .map(|p| from + p)
}

impl Deref for Tables {
    type Target = Base;
    fn deref(&self) -> &Base {
        &self.base
    }
}

impl DerefMut for Tables {
    fn deref_mut(&mut self) -> &mut Base {
        Arc::make_mut(&mut self.base)
    }
}

/// The small tables, replaced as a whole.
#[derive(Debug, Clone, Default)]
pub struct Base {
    pub version: u64,
    pub local: Option<LocalInfo>,
    /// Ports by number; `None` for unused numbers.
    pub ports: Vec<Option<PortEntry>>,
    /// VNIs some local port belongs to (plus the default VNI): a packet for any other is
    /// dropped as unknown.
    pub vnis: Vec<u32>,
    /// The flow tables; `None` runs the built-in forwarding alone (as a `normal` flow would).
    pub flows: Option<Arc<crate::flow::FlowSet>>,
}

impl Base {
    pub fn port(&self, no: PortNo) -> Option<&PortEntry> {
        self.ports.get(no as usize).and_then(|p| p.as_ref())
    }

    pub fn knows_vni(&self, vni: u32) -> bool {
        self.vnis.contains(&vni)
    }

    /// Rebuilds the VNIs after `ports` changed.
    pub fn reindex(&mut self) {
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

/// One change to the tables, as the writer queues it (applied to both copies in turn).
#[derive(Debug, Clone)]
pub enum TableOp {
    /// Replace the small tables.
    Base(Arc<Base>),
    /// Add, change (`Some`) or remove (`None`) a pod IP entry.
    Ip(Ipv4Addr, Option<IpEntry>),
    /// Add, change (`Some`) or remove (`None`) a MAC entry.
    Mac(EthernetAddress, Option<MacEntry>),
    /// Add, change (`Some`) or remove (`None`) a pod IPv6 entry.
    Ip6(Ipv6Addr, Option<IpEntry>),
    /// Add a remote node at the end of the node list.
    NodeAdd(NodeEntry),
    /// Remove the remote node at an index; the last node takes its index.
    NodeDel(NodeIdx),
    /// Replace every remote node.
    Nodes(Vec<NodeEntry>),
}

impl Absorb<TableOp> for Tables {
    fn absorb_first(&mut self, op: &mut TableOp, _: &Self) {
        match op {
            TableOp::Base(b) => self.base = b.clone(),
            TableOp::Ip(ip, Some(e)) => {
                self.ips.insert(*ip, *e);
            }
            TableOp::Ip(ip, None) => {
                self.ips.remove(ip);
            }
            TableOp::Mac(mac, Some(e)) => {
                self.macs.insert(*mac, *e);
            }
            TableOp::Mac(mac, None) => {
                self.macs.remove(mac);
            }
            TableOp::Ip6(ip, Some(e)) => {
                self.ips6.insert(*ip, *e);
            }
            TableOp::Ip6(ip, None) => {
                self.ips6.remove(ip);
            }
            TableOp::NodeAdd(n) => {
                self.add_node(n.clone());
            }
            TableOp::NodeDel(idx) => {
                self.remove_node(*idx);
            }
            TableOp::Nodes(nodes) => {
                self.nodes.clone_from(nodes);
                self.reindex_nodes();
            }
        }
    }

    fn sync_with(&mut self, first: &Self) {
        self.clone_from(first);
    }
}

/// Creates the tables (empty): the one writer and a factory of readers.
pub fn new() -> (FibWriter, FibReaders) {
    let (w, r) = left_right::new_from_empty::<Tables, TableOp>(Tables::default());
    let factory = r.factory();
    let mut w = FibWriter { w };
    // The first publish makes both copies live; later ones replay the log.
    w.w.publish();
    (w, FibReaders { factory })
}

/// Hands out readers (one per thread).
#[derive(Clone)]
pub struct FibReaders {
    factory: ReadHandleFactory<Tables>,
}

impl FibReaders {
    pub fn reader(&self) -> FibReader {
        FibReader {
            r: self.factory.handle(),
        }
    }
}

/// One thread's view of the tables.
pub struct FibReader {
    r: ReadHandle<Tables>,
}

impl FibReader {
    /// The current tables, until the guard is dropped; `None` once the writer is gone (the
    /// switch is shutting down). Lock-free and wait-free; hold the guard for one batch at most,
    /// since the writer's next publish waits for it.
    #[inline]
    pub fn load(&self) -> Option<ReadGuard<'_, Tables>> {
        self.r.enter()
    }
}

/// The control side's handle: queues changes and publishes them.
pub struct FibWriter {
    w: WriteHandle<Tables, TableOp>,
}

impl FibWriter {
    /// The published tables (for the control side's reads).
    pub fn read(&self) -> Option<ReadGuard<'_, Tables>> {
        self.w.enter()
    }

    /// Queues a pod IP change (seen after the next [`publish`](Self::publish)).
    pub fn set_ip(&mut self, ip: Ipv4Addr, entry: Option<IpEntry>) {
        self.w.append(TableOp::Ip(ip, entry));
    }

    /// Queues a MAC change.
    pub fn set_mac(&mut self, mac: EthernetAddress, entry: Option<MacEntry>) {
        self.w.append(TableOp::Mac(mac, entry));
    }

    /// Queues new small tables.
    pub fn set_base(&mut self, base: Arc<Base>) {
        self.w.append(TableOp::Base(base));
    }

    /// Queues a remote node added at the end of the node list (index: the list's length).
    pub fn add_node(&mut self, node: NodeEntry) {
        self.w.append(TableOp::NodeAdd(node));
    }

    /// Queues every remote node replaced by `nodes`.
    pub fn set_nodes(&mut self, nodes: Vec<NodeEntry>) {
        self.w.append(TableOp::Nodes(nodes));
    }

    /// Queues the MAC and IP entries that turn the published maps into `next`'s. Returns the
    /// number of entries changed.
    pub fn stage_maps(&mut self, next: &Tables) -> usize {
        let ops = match self.w.enter() {
            Some(cur) => diff(&cur, next),
            None => return 0,
        };
        let changed = ops.len();
        for op in ops {
            self.w.append(op);
        }
        changed
    }

    /// Queues the removal of the remote node at `idx`; the last node takes that index.
    pub fn remove_node(&mut self, idx: NodeIdx) {
        self.w.append(TableOp::NodeDel(idx));
    }

    /// Makes every queued change visible at once. Waits (briefly) for readers still on the
    /// copy published before the last one.
    pub fn publish(&mut self) {
        self.w.publish();
    }

    /// Makes the published tables equal to `next`: queues what differs (entry by entry for
    /// the maps) and publishes. Returns the number of map entries changed.
    pub fn replace(&mut self, next: Tables) -> usize {
        let (ops, same_nodes) = match self.w.enter() {
            Some(cur) => (diff(&cur, &next), cur.nodes == next.nodes),
            None => return 0,
        };
        let changed = ops.len();
        for op in ops {
            self.w.append(op);
        }
        if !same_nodes {
            self.w.append(TableOp::Nodes(next.nodes));
        }
        self.w.append(TableOp::Base(next.base));
        self.w.publish();
        changed
    }
}

/// The entry changes that turn `cur`'s maps into `next`'s.
fn diff(cur: &Tables, next: &Tables) -> Vec<TableOp> {
    let mut ops = Vec::new();
    for (ip, e) in &next.ips {
        if cur.ips.get(ip) != Some(e) {
            ops.push(TableOp::Ip(*ip, Some(*e)));
        }
    }
    for ip in cur.ips.keys() {
        if !next.ips.contains_key(ip) {
            ops.push(TableOp::Ip(*ip, None));
        }
    }
    for (mac, e) in &next.macs {
        if cur.macs.get(mac) != Some(e) {
            ops.push(TableOp::Mac(*mac, Some(*e)));
        }
    }
    for mac in cur.macs.keys() {
        if !next.macs.contains_key(mac) {
            ops.push(TableOp::Mac(*mac, None));
        }
    }
    for (ip, e) in &next.ips6 {
        if cur.ips6.get(ip) != Some(e) {
            ops.push(TableOp::Ip6(*ip, Some(*e)));
        }
    }
    for ip in cur.ips6.keys() {
        if !next.ips6.contains_key(ip) {
            ops.push(TableOp::Ip6(*ip, None));
        }
    }
    ops
}

#[cfg(test)]
mod tests {

    #[test]
    fn route_lookup_finds_the_longest_prefix_as_a_scan_would() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20 {
            let mut t = Tables::default();
            let n = 1 + next() % 300;
            for i in 0..n {
                let prefix = [8u8, 16, 20, 24, 24, 24, 28, 32][(next() % 8) as usize];
                let a = u32::from(Ipv4Addr::new(
                    10,
                    (next() % 4) as u8,
                    (next() % 8) as u8,
                    next() as u8,
                ));
                let mask = u32::MAX << (32 - prefix);
                let subnet = Ipv4Cidr::new(Ipv4Addr::from(a & mask), prefix).unwrap();
                t.add_node(NodeEntry {
                    name: format!("n{i}"),
                    vtep: Ipv4Addr::from(0xc633_6400 | i as u32).into(),
                    vtep_mac: EthernetAddress([2, 0, 0, 0, 0, i as u8]),
                    subnet,
                    subnet6: None,
                });
            }
            for _ in 0..2000 {
                let ip = Ipv4Addr::new(10, (next() % 4) as u8, (next() % 8) as u8, next() as u8);
                let scan = t.routes.iter().find(|(c, _)| c.contains(ip)).map(|r| r.1);
                assert_eq!(t.route(ip), scan, "{ip}");
            }
        }
    }
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
            subnet6: Some("fd00:10:1::/48".parse().unwrap()),
        });
        t.nodes.push(NodeEntry {
            name: "narrow".into(),
            vtep: "198.51.100.3".parse().unwrap(),
            vtep_mac: mac,
            subnet: "10.1.3.0/24".parse().unwrap(),
            subnet6: Some("fd00:10:1:3::/64".parse().unwrap()),
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
        assert_eq!(t.route6("fd00:10:1:3::7".parse().unwrap()), Some(1));
        assert_eq!(t.route6("fd00:10:1:4::7".parse().unwrap()), Some(0));
        assert_eq!(t.route6("fd00:10:2::1".parse().unwrap()), None);
        assert!(t.knows_vni(10));
        assert_eq!(
            t.vteps.get(&"198.51.100.3".parse::<IpAddr>().unwrap()),
            Some(&1)
        );
    }

    fn entry(port: PortNo) -> IpEntry {
        IpEntry {
            mac: EthernetAddress([2, 0, 0, 0, 0, port as u8]),
            target: Target::Port(port),
            vni: 1,
        }
    }

    #[test]
    fn readers_see_a_batch_only_once_published() {
        let (mut w, readers) = new();
        let r = readers.reader();
        let ip: Ipv4Addr = "10.1.1.2".parse().unwrap();
        w.set_ip(ip, Some(entry(3)));
        w.set_base(Arc::new(Base {
            version: 7,
            ..Default::default()
        }));
        {
            let t = r.load().unwrap();
            assert_eq!(t.version, 0);
            assert!(t.ips.is_empty());
        }
        w.publish();
        let t = r.load().unwrap();
        assert_eq!(t.version, 7);
        assert_eq!(t.ips.get(&ip), Some(&entry(3)));
    }

    #[test]
    fn both_copies_converge_entry_by_entry() {
        let (mut w, readers) = new();
        let r = readers.reader();
        let ip = |i: u32| Ipv4Addr::from(0x0a01_0000 | i);
        for i in 0..100 {
            w.set_ip(ip(i), Some(entry(3 + (i % 5) as PortNo)));
            w.publish();
        }
        for i in (0..100).step_by(2) {
            w.set_ip(ip(i), None);
        }
        w.publish();
        // Two more swaps: each copy has now been the published one with every change.
        for _ in 0..2 {
            w.publish();
            let t = r.load().unwrap();
            assert_eq!(t.ips.len(), 50);
            assert!(!t.ips.contains_key(&ip(2)));
            assert_eq!(t.ips.get(&ip(7)), Some(&entry(5)));
        }
    }

    #[test]
    fn replace_changes_only_what_differs() {
        let (mut w, readers) = new();
        let r = readers.reader();
        let mut t = Tables::default();
        for i in 0..10u32 {
            t.ips.insert(Ipv4Addr::from(0x0a01_0100 | i), entry(3));
        }
        t.version = 1;
        assert_eq!(w.replace(t.clone()), 10);
        t.ips.remove(&Ipv4Addr::from(0x0a01_0100));
        t.ips.insert(Ipv4Addr::from(0x0a01_0101), entry(4));
        t.version = 2;
        assert_eq!(w.replace(t.clone()), 2);
        let ip6: Ipv6Addr = "fd00:10:1:1::2".parse().unwrap();
        t.ips6.insert(ip6, entry(3));
        t.version = 3;
        assert_eq!(w.replace(t.clone()), 1);
        assert_eq!(r.load().unwrap().ips6.get(&ip6), Some(&entry(3)));
        t.ips6.clear();
        t.version = 2;
        assert_eq!(w.replace(t.clone()), 1);
        let got = r.load().unwrap();
        assert_eq!(got.version, 2);
        assert_eq!(got.ips, t.ips);
        assert!(got.ips6.is_empty());
        drop(got);
        drop(w);
        assert!(r.load().is_none(), "readers learn that the writer is gone");
    }

    /// Nodes added and removed one at a time, through the writer into both copies, give the
    /// same tables as the same nodes indexed from scratch (indexes aside: a removal moves the
    /// last node into the freed one).
    #[test]
    fn per_entry_node_changes_equal_a_full_rebuild() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut w, readers) = new();
        let r = readers.reader();
        let mut present: Vec<NodeEntry> = Vec::new();
        let node = |i: u64| NodeEntry {
            name: format!("n{i}"),
            vtep: Ipv4Addr::from(0xcb00_7100 | (i as u32 & 0xff)).into(),
            vtep_mac: EthernetAddress([2, 0, 0, 0, 0, i as u8]),
            subnet: Ipv4Cidr::new(Ipv4Addr::from(0x0a01_0000 | ((i as u32) << 8)), 24).unwrap(),
            subnet6: (i % 3 != 0).then(|| {
                Ipv6Cidr::new(
                    Ipv6Addr::from((0xfd00_u128 << 112) | ((i as u128) << 64)),
                    64,
                )
                .unwrap()
            }),
        };
        // Names as the switch's mirror of the node list keeps them.
        let mut names: Vec<String> = Vec::new();
        for round in 0..400 {
            for _ in 0..1 + next() % 3 {
                let i = next() % 200;
                let name = format!("n{i}");
                if let Some(at) = names.iter().position(|n| *n == name) {
                    w.remove_node(at as NodeIdx);
                    names.swap_remove(at);
                    present.retain(|n| n.name != name);
                } else {
                    w.add_node(node(i));
                    names.push(name);
                    present.push(node(i));
                }
            }
            w.publish();
            let got = r.load().unwrap();
            let mut want = Tables {
                nodes: present.clone(),
                ..Default::default()
            };
            want.reindex();
            let by_name = |t: &Tables| {
                let mut nodes: Vec<NodeEntry> = t.nodes.clone();
                nodes.sort_by(|a, b| a.name.cmp(&b.name));
                let routes: Vec<(Ipv4Cidr, String)> = t
                    .routes
                    .iter()
                    .map(|(c, i)| (*c, t.nodes[*i as usize].name.clone()))
                    .collect();
                let routes6: Vec<(Ipv6Cidr, String)> = t
                    .routes6
                    .iter()
                    .map(|(c, i)| (*c, t.nodes[*i as usize].name.clone()))
                    .collect();
                let mut vteps: Vec<(IpAddr, String)> = t
                    .vteps
                    .iter()
                    .map(|(v, i)| (*v, t.nodes[*i as usize].name.clone()))
                    .collect();
                vteps.sort();
                (nodes, routes, routes6, vteps)
            };
            assert_eq!(by_name(&got), by_name(&want), "round {round}");
            let listed: Vec<&str> = got.nodes.iter().map(|n| n.name.as_str()).collect();
            assert_eq!(listed, names, "the writer's mirror of the indexes");
        }
    }

    #[test]
    fn tenant_rule() {
        assert!(vni_allows(10, 10));
        assert!(!vni_allows(10, 20));
        assert!(vni_allows(0, 20));
        assert!(vni_allows(10, 0));
    }
}
