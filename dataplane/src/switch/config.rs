//! The declared configuration: one change applied to a copy with ownership checks, and the whole checked for conflicts.

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

/// Reads a state file's bytes into the configuration they declare; why not, if they do not.
pub fn parse_state(bytes: &[u8]) -> Result<Config, String> {
    serde_json::from_slice::<Config>(bytes).map_err(|e| e.to_string())
}

/// Checks a whole configuration for conflicts.
pub fn validate(c: &Config) -> Result<(), String> {
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
    let nodes: Vec<&RemoteNode> = c.nodes.values().map(|n| &n.spec).collect();
    for (i, a) in nodes.iter().enumerate() {
        if let Some(l) = local {
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
        }
        for b in &nodes[i + 1..] {
            if a.subnet.overlaps(&b.subnet) {
                return Err(format!(
                    "nodes {} and {} have overlapping subnets {} and {}",
                    a.name, b.name, a.subnet, b.subnet
                ));
            }
            if let (Some(x), Some(y)) = (a.subnet6, b.subnet6) {
                if x.overlaps(&y) {
                    return Err(format!(
                        "nodes {} and {} have overlapping subnet6 prefixes {x} and {y}",
                        a.name, b.name
                    ));
                }
            }
            if a.vtep == b.vtep {
                return Err(format!(
                    "nodes {} and {} have the same VTEP {}",
                    a.name, b.name, a.vtep
                ));
            }
        }
    }
    Ok(())
}
