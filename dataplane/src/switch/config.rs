//! The declared configuration: one change applied in place with ownership checks and its undo, and conflicts checked, entry by entry against indexes or the whole at once.

use std::collections::HashMap;

use super::*;

pub(super) fn change_name(c: &Change) -> String {
    match c {
        Change::SetLocalNode(n) => format!("set_local_node {}", n.name),
        Change::AddPort(p) => format!("add_port {}", p.name),
        Change::DelPort { name } => format!("del_port {name}"),
        Change::AddNode(n) => format!("add_node {}", n.name),
        Change::DelNode { name } => format!("del_node {name}"),
    }
}

/// Applies one change to a configuration copy, checking ownership and local consistency.
pub fn apply_change(next: &mut Config, owner: Owner, ch: &Change) -> Result<(), Refusal> {
    match ch {
        Change::SetLocalNode(l) => {
            l.validate().map_err(|m| refuse(ErrorCode::Invalid, m))?;
            if let Some(cur) = &next.local {
                if cur.spec == *l {
                    return Ok(());
                }
                if cur.owner != owner {
                    return Err(refuse(
                        ErrorCode::Owner,
                        format!("the local node is owned by {}", cur.owner),
                    ));
                }
                if cur.spec.vtep != l.vtep
                    || cur.spec.subnet != l.subnet
                    || cur.spec.gateway() != l.gateway()
                    || cur.spec.subnet6 != l.subnet6
                {
                    return Err(refuse(
                        ErrorCode::Invalid,
                        "the VTEP address, subnets and gateway of a running switch cannot change; restart vxswitchd with a fresh state file",
                    ));
                }
            }
            next.local = Some(Owned {
                owner,
                spec: l.clone(),
            });
        }
        Change::AddPort(p) => {
            p.validate().map_err(|m| refuse(ErrorCode::Invalid, m))?;
            if let Some(cur) = next.ports.get(&p.name) {
                if cur.spec == *p && cur.owner == owner {
                    return Ok(());
                }
                return Err(refuse(
                    if cur.owner != owner {
                        ErrorCode::Owner
                    } else {
                        ErrorCode::Invalid
                    },
                    format!(
                        "port {} already exists (owned by {}); delete it first",
                        p.name, cur.owner
                    ),
                ));
            }
            let used: BTreeSet<PortNo> = next.ports.values().map(|p| p.no).collect();
            let no = (PORT_FIRST_POD..crate::counters::MAX_PORTS as u16)
                .find(|n| !used.contains(n))
                .ok_or_else(|| refuse(ErrorCode::Invalid, "no free port number"))?;
            next.ports.insert(
                p.name.clone(),
                PortCfg {
                    no,
                    owner,
                    spec: p.clone(),
                },
            );
        }
        Change::DelPort { name } => match next.ports.get(name) {
            None => return Err(refuse(ErrorCode::Invalid, format!("no port named {name}"))),
            Some(cur) if cur.owner != owner => {
                return Err(refuse(
                    ErrorCode::Owner,
                    format!("port {name} is owned by {}", cur.owner),
                ))
            }
            Some(_) => {
                next.ports.remove(name);
            }
        },
        Change::AddNode(n) => {
            n.validate().map_err(|m| refuse(ErrorCode::Invalid, m))?;
            if let Some(cur) = next.nodes.get(&n.name) {
                if cur.spec == *n && cur.owner == owner {
                    return Ok(());
                }
                return Err(refuse(
                    if cur.owner != owner {
                        ErrorCode::Owner
                    } else {
                        ErrorCode::Invalid
                    },
                    format!(
                        "node {} already exists (owned by {}); delete it first",
                        n.name, cur.owner
                    ),
                ));
            }
            next.nodes.insert(
                n.name.clone(),
                Owned {
                    owner,
                    spec: n.clone(),
                },
            );
        }
        Change::DelNode { name } => match next.nodes.get(name) {
            None => return Err(refuse(ErrorCode::Invalid, format!("no node named {name}"))),
            Some(cur) if cur.owner != owner => {
                return Err(refuse(
                    ErrorCode::Owner,
                    format!("node {name} is owned by {}", cur.owner),
                ))
            }
            Some(_) => {
                next.nodes.remove(name);
            }
        },
    }
    Ok(())
}

/// One entry of the configuration as it was before a change of a batch touched it.
#[derive(Debug)]
pub(super) enum Undo {
    Local(Option<Owned<LocalNode>>),
    Port(String, Option<PortCfg>),
    Node(String, Option<Owned<RemoteNode>>),
}

/// What a batch changed: each changed entry as it was before the batch (absent entries are
/// `None`). Entries a batch touched but left as they were are not in it.
#[derive(Debug, Default)]
pub(super) struct Delta {
    pub local: Option<Option<Owned<LocalNode>>>,
    pub ports: BTreeMap<String, Option<PortCfg>>,
    pub nodes: BTreeMap<String, Option<Owned<RemoteNode>>>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.local.is_none() && self.ports.is_empty() && self.nodes.is_empty()
    }
}

/// Applies one change in place, returning how to undo it (the entry it touched, as it was).
pub(super) fn stage(c: &mut Config, owner: Owner, ch: &Change) -> Result<Undo, Refusal> {
    let undo = match ch {
        Change::SetLocalNode(_) => Undo::Local(c.local.clone()),
        Change::AddPort(PortSpec { name, .. }) | Change::DelPort { name } => {
            Undo::Port(name.clone(), c.ports.get(name).cloned())
        }
        Change::AddNode(RemoteNode { name, .. }) | Change::DelNode { name } => {
            Undo::Node(name.clone(), c.nodes.get(name).cloned())
        }
    };
    apply_change(c, owner, ch)?;
    Ok(undo)
}

/// Puts back what [`stage`] changed, latest first.
pub(super) fn unstage(c: &mut Config, undo: Vec<Undo>) {
    for u in undo.into_iter().rev() {
        match u {
            Undo::Local(l) => c.local = l,
            Undo::Port(name, Some(p)) => {
                c.ports.insert(name, p);
            }
            Undo::Port(name, None) => {
                c.ports.remove(&name);
            }
            Undo::Node(name, Some(n)) => {
                c.nodes.insert(name, n);
            }
            Undo::Node(name, None) => {
                c.nodes.remove(&name);
            }
        }
    }
}

/// What the staged changes of `undo` changed in `c`.
pub(super) fn delta(c: &Config, undo: &[Undo]) -> Delta {
    let mut d = Delta::default();
    let mut local = None;
    for u in undo {
        match u {
            Undo::Local(l) => {
                local.get_or_insert_with(|| l.clone());
            }
            Undo::Port(name, p) => {
                if !d.ports.contains_key(name) {
                    d.ports.insert(name.clone(), p.clone());
                }
            }
            Undo::Node(name, n) => {
                if !d.nodes.contains_key(name) {
                    d.nodes.insert(name.clone(), n.clone());
                }
            }
        }
    }
    d.local = local.filter(|l| *l != c.local);
    d.ports
        .retain(|name, old| old.as_ref() != c.ports.get(name));
    d.nodes
        .retain(|name, old| old.as_ref() != c.nodes.get(name));
    d
}

/// Applies a batch in place, all or nothing (ownership and each change's own checks; the
/// conflicts between entries are for the caller to check).
pub(super) fn apply_batch(
    c: &mut Config,
    owner: Owner,
    changes: &[Change],
) -> Result<Vec<Undo>, Refusal> {
    let mut undo = Vec::with_capacity(changes.len());
    for (i, ch) in changes.iter().enumerate() {
        match stage(c, owner, ch) {
            Ok(u) => undo.push(u),
            Err(r) => {
                unstage(c, undo);
                return Err(refuse(
                    r.code,
                    format!("change {} ({}): {}", i + 1, change_name(ch), r.message),
                ));
            }
        }
    }
    Ok(undo)
}

/// Checks the nodes a staged batch changed (`delta`, against `c` as it is now) with the node
/// index, and brings the index up to date with them; on a refusal the index may hold part of
/// the batch ([`unindex_nodes`] puts it back).
pub(super) fn check_nodes(ix: &mut NodeIndex, c: &Config, delta: &Delta) -> Result<(), String> {
    for old in delta.nodes.values().flatten() {
        ix.remove(&old.spec);
    }
    let local = c.local.as_ref().map(|l| &l.spec);
    for name in delta.nodes.keys() {
        if let Some(n) = c.nodes.get(name) {
            ix.check_insert(&n.spec, local)?;
        }
    }
    Ok(())
}

/// Takes the nodes of a staged batch (`c` with the batch) out of the index again and puts
/// back the ones they replaced.
pub(super) fn unindex_nodes(ix: &mut NodeIndex, c: &Config, delta: &Delta) {
    for name in delta.nodes.keys() {
        if let Some(n) = c.nodes.get(name) {
            ix.remove(&n.spec);
        }
    }
    for old in delta.nodes.values().flatten() {
        ix.insert(&old.spec);
    }
}

/// Reads a state file's bytes into the configuration they declare; why not, if they do not.
///
/// What is accepted is a configuration the switch could have written: every object valid and
/// saved under its own name, pod port numbers distinct and within the workers' port slots, and
/// the whole passing the checks every batch passes (a restored configuration that failed them
/// would make every later batch fail them too).
pub fn parse_state(bytes: &[u8]) -> Result<Config, String> {
    let c: Config = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if let Some(l) = &c.local {
        l.spec.validate()?;
    }
    let mut numbers = BTreeSet::new();
    for (name, p) in &c.ports {
        if *name != p.spec.name {
            return Err(format!("port {} is saved as {name}", p.spec.name));
        }
        p.spec.validate()?;
        if !(PORT_FIRST_POD..crate::counters::MAX_PORTS as u16).contains(&p.no) {
            return Err(format!(
                "port {name} has number {}, outside {PORT_FIRST_POD}..={}",
                p.no,
                crate::counters::MAX_PORTS - 1
            ));
        }
        if !numbers.insert(p.no) {
            return Err(format!("port number {} is given twice", p.no));
        }
    }
    for (name, n) in &c.nodes {
        if *name != n.spec.name {
            return Err(format!("node {} is saved as {name}", n.spec.name));
        }
        n.spec.validate()?;
    }
    validate(&c)?;
    Ok(c)
}

/// Checks a whole configuration for conflicts.
pub fn validate(c: &Config) -> Result<(), String> {
    validate_ports(c)?;
    validate_nodes(c)
}

/// Checks the pod ports against the local node and each other.
pub(super) fn validate_ports(c: &Config) -> Result<(), String> {
    let local = c.local.as_ref().map(|l| &l.spec);
    if local.is_none() && !c.ports.is_empty() {
        return Err(
            "pods need the local node first (set_local_node in the same batch or before)".into(),
        );
    }
    let mut macs = BTreeMap::new();
    let mut ips = BTreeMap::new();
    let mut ips6 = BTreeMap::new();
    let mut devs = BTreeMap::new();
    for p in c.ports.values() {
        let s = &p.spec;
        if let Some(l) = local {
            let gw = l.gateway();
            if !l.subnet.contains(s.ip) || s.ip == l.subnet.addr() || s.ip == l.subnet.broadcast() {
                return Err(format!(
                    "port {}: {} is not a host address of the node subnet {}",
                    s.name, s.ip, l.subnet
                ));
            }
            if s.ip == gw {
                return Err(format!("port {}: {} is the gateway address", s.name, s.ip));
            }
            if let Some(ip6) = s.ip6 {
                match l.subnet6 {
                    None => {
                        return Err(format!(
                            "port {}: ip6 {ip6} needs an IPv6 prefix (subnet6) on the local node",
                            s.name
                        ))
                    }
                    Some(s6) if !s6.contains(ip6) || ip6 == s6.addr() => {
                        return Err(format!(
                            "port {}: {ip6} is not a host address of the node subnet6 {s6}",
                            s.name
                        ))
                    }
                    Some(_) if Some(ip6) == l.gateway6() => {
                        return Err(format!(
                            "port {}: {ip6} is the IPv6 gateway address",
                            s.name
                        ))
                    }
                    Some(_) => {}
                }
            }
            if s.mac == l.vtep_mac || eth(s.mac) == gateway_mac(gw) || eth(s.mac) == host_mac(gw) {
                return Err(format!(
                    "port {}: MAC {} is reserved by the switch",
                    s.name, s.mac
                ));
            }
        }
        if let Some(other) = macs.insert(s.mac, &s.name) {
            return Err(format!(
                "ports {other} and {} have the same MAC {}",
                s.name, s.mac
            ));
        }
        if let Some(other) = ips.insert(s.ip, &s.name) {
            return Err(format!(
                "ports {other} and {} have the same IP {}",
                s.name, s.ip
            ));
        }
        if let Some(ip6) = s.ip6 {
            if let Some(other) = ips6.insert(ip6, &s.name) {
                return Err(format!(
                    "ports {other} and {} have the same IPv6 address {ip6}",
                    s.name
                ));
            }
        }
        if let Some(other) = devs.insert((s.netns.clone(), s.ifname().to_string()), &s.name) {
            return Err(format!(
                "ports {other} and {} use the same interface {} in {}",
                s.name,
                s.ifname(),
                s.netns
            ));
        }
    }
    Ok(())
}

/// Checks the remote nodes against the local node and each other.
fn validate_nodes(c: &Config) -> Result<(), String> {
    let local = c.local.as_ref().map(|l| &l.spec);
    let nodes: Vec<&RemoteNode> = c.nodes.values().map(|n| &n.spec).collect();
    for a in &nodes {
        if let Some(l) = local {
            against_local(a, l)?;
        }
    }
    // Pairs in O(n log n), not O(n²): prefixes either nest or are disjoint, so sorted by first
    // address (the wider first), any prefix that overlaps a later one overlaps the very next.
    let mut by_subnet: Vec<&RemoteNode> = nodes.clone();
    by_subnet.sort_by_key(|n| {
        (
            u32::from(n.subnet.addr()) & n.subnet.mask(),
            n.subnet.prefix(),
        )
    });
    for w in by_subnet.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.subnet.overlaps(&b.subnet) {
            return Err(overlap4(a, b));
        }
    }
    let mut by_subnet6: Vec<(&RemoteNode, Ipv6Cidr)> = nodes
        .iter()
        .filter_map(|n| n.subnet6.map(|s| (*n, s)))
        .collect();
    by_subnet6.sort_by_key(|(_, s)| (u128::from(s.addr()) & s.mask(), s.prefix()));
    for w in by_subnet6.windows(2) {
        let ((a, x), (b, y)) = (w[0], w[1]);
        if x.overlaps(&y) {
            return Err(overlap6(&a.name, x, &b.name, y));
        }
    }
    let mut vteps: BTreeMap<IpAddr, &str> = BTreeMap::new();
    for n in &nodes {
        if let Some(other) = vteps.insert(n.vtep, &n.name) {
            return Err(same_vtep(other, n));
        }
    }
    Ok(())
}

fn overlap4(a: &RemoteNode, b: &RemoteNode) -> String {
    format!(
        "nodes {} and {} have overlapping subnets {} and {}",
        a.name, b.name, a.subnet, b.subnet
    )
}

fn overlap6(a: &str, x: Ipv6Cidr, b: &str, y: Ipv6Cidr) -> String {
    format!("nodes {a} and {b} have overlapping subnet6 prefixes {x} and {y}")
}

fn same_vtep(other: &str, n: &RemoteNode) -> String {
    format!("nodes {other} and {} have the same VTEP {}", n.name, n.vtep)
}

/// A remote node's conflicts with the local node.
fn against_local(a: &RemoteNode, l: &LocalNode) -> Result<(), String> {
    if a.subnet.overlaps(&l.subnet) {
        return Err(format!(
            "node {}: subnet {} overlaps this node's subnet {}",
            a.name, a.subnet, l.subnet
        ));
    }
    if let (Some(x), Some(y)) = (a.subnet6, l.subnet6) {
        if x.overlaps(&y) {
            return Err(format!(
                "node {}: subnet6 {x} overlaps this node's subnet6 {y}",
                a.name
            ));
        }
    }
    if a.vtep == l.vtep {
        return Err(format!(
            "node {}: VTEP {} is this node's own",
            a.name, a.vtep
        ));
    }
    Ok(())
}

/// The remote nodes' subnets and VTEPs, indexed so that one changed node is checked against
/// the others in O(log n) rather than by sorting them all again.
///
/// The nodes it holds never overlap (every configuration is checked before it is kept), so
/// their subnets are disjoint ranges keyed by first address: a new subnet overlaps one of them
/// exactly when it overlaps the range that starts at or before it, or the next one.
#[derive(Debug, Default)]
pub(super) struct NodeIndex {
    v4: BTreeMap<u32, (u32, Ipv4Cidr, String)>,
    v6: BTreeMap<u128, (u128, Ipv6Cidr, String)>,
    vteps: HashMap<IpAddr, String>,
}

fn range4(c: &Ipv4Cidr) -> (u32, u32) {
    let start = u32::from(c.addr()) & c.mask();
    (start, start | !c.mask())
}

fn range6(c: &Ipv6Cidr) -> (u128, u128) {
    let start = u128::from(c.addr()) & c.mask();
    (start, start | !c.mask())
}

impl NodeIndex {
    /// The index of a configuration that passed [`validate`].
    pub(super) fn build(c: &Config) -> NodeIndex {
        let mut ix = NodeIndex::default();
        for n in c.nodes.values() {
            ix.insert(&n.spec);
        }
        ix
    }

    fn insert(&mut self, n: &RemoteNode) {
        let (start, end) = range4(&n.subnet);
        self.v4.insert(start, (end, n.subnet, n.name.clone()));
        if let Some(s) = n.subnet6 {
            let (start, end) = range6(&s);
            self.v6.insert(start, (end, s, n.name.clone()));
        }
        self.vteps.insert(n.vtep, n.name.clone());
    }

    /// Takes a node out (as it was inserted).
    pub(super) fn remove(&mut self, n: &RemoteNode) {
        let (start, _) = range4(&n.subnet);
        if self.v4.get(&start).is_some_and(|e| e.2 == n.name) {
            self.v4.remove(&start);
        }
        if let Some(s) = n.subnet6 {
            let (start, _) = range6(&s);
            if self.v6.get(&start).is_some_and(|e| e.2 == n.name) {
                self.v6.remove(&start);
            }
        }
        if self.vteps.get(&n.vtep).is_some_and(|v| *v == n.name) {
            self.vteps.remove(&n.vtep);
        }
    }

    /// Checks a node against the local node and the indexed ones, and indexes it if it fits;
    /// the refusal reads as [`validate`]'s.
    pub(super) fn check_insert(
        &mut self,
        n: &RemoteNode,
        local: Option<&LocalNode>,
    ) -> Result<(), String> {
        if let Some(l) = local {
            against_local(n, l)?;
        }
        let (start, end) = range4(&n.subnet);
        let before = self.v4.range(..=start).next_back();
        let after = self.v4.range(start..).next();
        for (&s, (e, c, name)) in before.into_iter().chain(after) {
            if s <= end && start <= *e {
                let other = RemoteNode {
                    name: name.clone(),
                    subnet: *c,
                    ..n.clone()
                };
                // Named in the order of the full check: by first address, the wider first.
                let (a, b) = if (s, c.prefix()) < (start, n.subnet.prefix()) {
                    (&other, n)
                } else {
                    (n, &other)
                };
                return Err(overlap4(a, b));
            }
        }
        if let Some(x) = n.subnet6 {
            let (start, end) = range6(&x);
            let before = self.v6.range(..=start).next_back();
            let after = self.v6.range(start..).next();
            for (&s, (e, y, name)) in before.into_iter().chain(after) {
                if s <= end && start <= *e {
                    return Err(if (s, y.prefix()) < (start, x.prefix()) {
                        overlap6(name, *y, &n.name, x)
                    } else {
                        overlap6(&n.name, x, name, *y)
                    });
                }
            }
        }
        if let Some(other) = self.vteps.get(&n.vtep) {
            return Err(same_vtep(other, n));
        }
        self.insert(n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, subnet: &str, vtep: [u8; 4], subnet6: Option<&str>) -> Owned<RemoteNode> {
        Owned {
            owner: Owner::Admin,
            spec: RemoteNode {
                name: name.into(),
                vtep: Ipv4Addr::from(vtep).into(),
                vtep_mac: MacAddr([2, 0, 0, 0, 0, 1]),
                subnet: subnet.parse().unwrap(),
                subnet6: subnet6.map(|s| s.parse().unwrap()),
            },
        }
    }

    fn with(nodes: Vec<Owned<RemoteNode>>) -> Config {
        let mut c = Config::default();
        for n in nodes {
            c.nodes.insert(n.spec.name.clone(), n);
        }
        c
    }

    #[test]
    fn node_conflicts_are_found_whatever_the_order() {
        // z covers a and b; by name, z comes last.
        let c = with(vec![
            node("a", "10.64.0.0/24", [203, 0, 113, 1], None),
            node("b", "10.64.1.0/24", [203, 0, 113, 2], None),
            node("z", "10.64.0.0/16", [203, 0, 113, 3], None),
        ]);
        let e = validate(&c).unwrap_err();
        assert!(e.contains("overlapping subnets"), "{e}");
        let c = with(vec![
            node("a", "10.64.0.0/24", [203, 0, 113, 1], None),
            node("m", "10.65.0.0/24", [203, 0, 113, 9], None),
            node("z", "10.66.0.0/24", [203, 0, 113, 1], None),
        ]);
        let e = validate(&c).unwrap_err();
        assert!(e.contains("same VTEP") && e.contains("a and z"), "{e}");
        let c = with(vec![
            node("a", "10.64.0.0/24", [203, 0, 113, 1], Some("fd00:1::/48")),
            node("b", "10.64.1.0/24", [203, 0, 113, 2], Some("fd00:2::/48")),
            node(
                "c",
                "10.64.2.0/24",
                [203, 0, 113, 3],
                Some("fd00:1:0:5::/64"),
            ),
        ]);
        let e = validate(&c).unwrap_err();
        assert!(e.contains("subnet6") && e.contains("a and c"), "{e}");
    }

    /// The sorted check accepts and refuses exactly what comparing every pair does.
    #[test]
    fn node_overlaps_agree_with_every_pair_compared() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..500 {
            let n = 2 + round % 12;
            let nodes: Vec<Owned<RemoteNode>> = (0..n)
                .map(|i| {
                    let prefix = 8 + (next() % 17) as u8;
                    let mask = u32::MAX << (32 - prefix);
                    let addr = (0x0a00_0000 | (next() as u32 & 0x00ff_ffff)) & mask;
                    let subnet = Ipv4Cidr::new(Ipv4Addr::from(addr), prefix).unwrap();
                    node(
                        &format!("n{}", next() % 1000),
                        &subnet.to_string(),
                        [203, 0, 113, i as u8],
                        None,
                    )
                })
                .collect();
            let c = with(nodes);
            let specs: Vec<&RemoteNode> = c.nodes.values().map(|n| &n.spec).collect();
            let pairwise = specs
                .iter()
                .enumerate()
                .any(|(i, a)| specs[i + 1..].iter().any(|b| a.subnet.overlaps(&b.subnet)));
            assert_eq!(validate(&c).is_err(), pairwise, "{specs:?}");
        }
    }
}

#[cfg(test)]
mod incremental_tests {
    use super::*;

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// Batches of node adds and deletes, checked in place against the node index, are
    /// accepted and refused exactly as the whole configuration checked from scratch, and a
    /// refused batch leaves the configuration and the index as they were.
    #[test]
    fn checking_a_batch_against_the_index_agrees_with_checking_everything() {
        let mut next = rng(0x2545_f491_4f6c_dd1d);
        let local = LocalNode {
            name: "n1".into(),
            vtep: "198.51.100.1".parse().unwrap(),
            vtep_mac: MacAddr([2, 0xf1, 0, 0, 0, 1]),
            subnet: "10.1.1.0/24".parse().unwrap(),
            gateway: None,
            vni: 1,
            cluster_network: "10.1.0.0/16".parse().unwrap(),
            underlay_mtu: 1500,
            subnet6: Some("fd00:10:1:1::/64".parse().unwrap()),
        };
        let mut c = Config::default();
        apply_change(&mut c, Owner::Admin, &Change::SetLocalNode(local)).unwrap();
        let mut ix = NodeIndex::build(&c);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..3000 {
            let len = 1 + (next() % 4) as usize;
            let changes: Vec<Change> = (0..len)
                .map(|_| {
                    let name = format!("n{}", next() % 40);
                    if next() % 3 == 0 {
                        return Change::DelNode { name };
                    }
                    let prefix = 20 + (next() % 9) as u8;
                    let mask = u32::MAX << (32 - prefix);
                    let addr = (0x0a01_0000 | (next() as u32 & 0xffff)) & mask;
                    let p6 = 56 + (next() % 9) as u8;
                    let a6: u128 =
                        (0xfd00_0010_0001_u128 << 80) | ((next() as u128 & 0xffff) << 64);
                    let a6 = a6 & (u128::MAX << (128 - p6));
                    Change::AddNode(RemoteNode {
                        name,
                        vtep: Ipv4Addr::new(203, 0, 113, (next() % 60) as u8 + 1).into(),
                        vtep_mac: MacAddr([2, 0, 0, 0, 0, 9]),
                        subnet: Ipv4Cidr::new(Ipv4Addr::from(addr), prefix).unwrap(),
                        subnet6: (next() % 2 == 0)
                            .then(|| Ipv6Cidr::new(std::net::Ipv6Addr::from(a6), p6).unwrap()),
                    })
                })
                .collect();
            let before = c.clone();
            let Ok(undo) = apply_batch(&mut c, Owner::Admin, &changes) else {
                assert_eq!(c, before, "a refused change leaves the configuration");
                continue;
            };
            let d = delta(&c, &undo);
            let whole = validate(&c);
            let by_index = check_nodes(&mut ix, &c, &d);
            assert_eq!(
                whole.is_ok(),
                by_index.is_ok(),
                "{changes:?}: whole {whole:?}, by index {by_index:?}"
            );
            if by_index.is_err() {
                unindex_nodes(&mut ix, &c, &d);
                unstage(&mut c, undo);
                assert_eq!(c, before);
                refused += 1;
            } else {
                accepted += 1;
            }
            let rebuilt = NodeIndex::build(&c);
            assert_eq!(ix.v4, rebuilt.v4);
            assert_eq!(ix.v6, rebuilt.v6);
            assert_eq!(ix.vteps, rebuilt.vteps);
        }
        assert!(accepted > 100 && refused > 100, "{accepted} {refused}");
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;

    /// A state file as the switch writes it: node n1 with pods n1p1 (port 3) and n1p2 (4).
    fn saved() -> serde_json::Value {
        let mut c = Config::default();
        let local = LocalNode {
            name: "n1".into(),
            vtep: "198.51.100.1".parse().unwrap(),
            vtep_mac: MacAddr([2, 0xf1, 0, 0, 0, 1]),
            subnet: "10.1.1.0/24".parse().unwrap(),
            gateway: None,
            vni: 1,
            cluster_network: "10.1.0.0/16".parse().unwrap(),
            underlay_mtu: 1500,
            subnet6: None,
        };
        apply_change(&mut c, Owner::Agent, &Change::SetLocalNode(local)).unwrap();
        for (name, i) in [("n1p1", 2), ("n1p2", 3)] {
            let p = PortSpec {
                name: name.into(),
                netns: format!("lab-{name}"),
                mac: MacAddr([0x0a, 0x58, 10, 1, 1, i]),
                ip: Ipv4Addr::new(10, 1, 1, i),
                ip6: None,
                vnid: None,
                ifname: None,
                mtu: None,
            };
            apply_change(&mut c, Owner::Agent, &Change::AddPort(p)).unwrap();
        }
        serde_json::to_value(&c).unwrap()
    }

    fn parse(v: &serde_json::Value) -> Result<Config, String> {
        parse_state(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn a_saved_configuration_reads_back() {
        let c = parse(&saved()).unwrap();
        assert_eq!(c.ports["n1p2"].no, 4);
        assert_eq!(serde_json::to_value(&c).unwrap(), saved());
    }

    /// A state file the batch checks would refuse (two pods with one MAC, a port number the
    /// workers have no slot for, a port saved under another name, an invalid pod) is refused
    /// like a corrupt one: restored, it would make every later batch fail the same checks
    /// (the switch could not be reconfigured without deleting the file), or leave a port no
    /// worker serves.
    #[test]
    fn a_state_file_that_breaks_the_batch_checks_is_refused() {
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit); 6] = [
            ("same MAC", |v| {
                v["ports"]["n1p2"]["spec"]["mac"] = v["ports"]["n1p1"]["spec"]["mac"].clone()
            }),
            ("IP outside the subnet", |v| {
                v["ports"]["n1p2"]["spec"]["ip"] = "10.9.9.9".into()
            }),
            ("port number beyond the last", |v| {
                v["ports"]["n1p2"]["no"] = 5000.into()
            }),
            ("the tunnel's port number", |v| {
                v["ports"]["n1p2"]["no"] = 1.into()
            }),
            ("one port number twice", |v| {
                v["ports"]["n1p2"]["no"] = 3.into()
            }),
            ("saved under another name", |v| {
                v["ports"]["n1p2"]["spec"]["name"] = "n1p9".into()
            }),
        ];
        for (what, edit) in cases {
            let mut v = saved();
            edit(&mut v);
            assert!(parse(&v).is_err(), "{what}: accepted");
        }
        let mut v = saved();
        v["local"]["spec"]["underlay_mtu"] = 10.into();
        assert!(parse(&v).is_err(), "an invalid local node: accepted");
    }
}
