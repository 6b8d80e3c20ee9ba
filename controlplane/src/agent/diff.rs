//! The difference between what the agent file declares and what vxswitchd holds, as one batch.
//!
//! Only agent-owned objects are ever deleted or replaced. A declared object that collides with
//! an object the agent does not own (an admin port of the same name, IP or MAC; an admin node of
//! the same name or an overlapping subnet) is left out of the batch and reported as a conflict,
//! so one admin override cannot block the rest of the node's configuration.

use std::collections::HashMap;

use crate::proto::{
    Change, LocalNode, NodeState, Owner, PortKind, PortSpec, PortState, RemoteNode, StateRepr,
};

use super::config::AgentConfig;

/// What to push, and what had to be left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In order: `SetLocalNode`, then `DelPort`/`DelNode`, then `AddPort`/`AddNode`.
    pub changes: Vec<Change>,
    /// Declared objects not pushed because they collide with objects of another owner.
    pub conflicts: Vec<String>,
    /// Names of the declared pods among those conflicts (no agent port: no agent flows).
    pub skipped_pods: Vec<String>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Computes the batch that makes `state` match `desired`, touching agent objects only.
pub fn plan(desired: &AgentConfig, state: &StateRepr) -> Plan {
    let mut plan = Plan::default();
    let local = &desired.local;

    let local_differs = state
        .local
        .as_ref()
        .is_none_or(|cur| !same_local(cur, local));
    if local_differs {
        match (state.local.is_some(), state.local_owner) {
            (true, Some(owner)) if owner != Owner::Agent => plan.conflicts.push(format!(
                "the local node is owned by {owner} and differs from the file; not changing it"
            )),
            _ => plan.changes.push(Change::SetLocalNode(local.clone())),
        }
    }

    let mut dels = Vec::new();
    let mut adds = Vec::new();

    // Ports.
    let ours: HashMap<&str, &PortState> = state
        .ports
        .iter()
        .filter(|p| p.kind == PortKind::Pod && p.owner == Some(Owner::Agent))
        .map(|p| (p.name.as_str(), p))
        .collect();
    let declared: HashMap<&str, &PortSpec> =
        desired.pods.iter().map(|p| (p.name.as_str(), p)).collect();
    for p in state
        .ports
        .iter()
        .filter(|p| ours.contains_key(p.name.as_str()))
    {
        let keep = match (declared.get(p.name.as_str()), &p.spec) {
            (Some(want), Some(have)) => same_port(have, want, local),
            _ => false,
        };
        if !keep {
            dels.push(Change::DelPort {
                name: p.name.clone(),
            });
        }
    }
    let foreign_ports: Vec<&PortState> = state
        .ports
        .iter()
        .filter(|p| !ours.contains_key(p.name.as_str()))
        .collect();
    for want in &desired.pods {
        if let Some(have) = ours.get(want.name.as_str()) {
            if have
                .spec
                .as_ref()
                .is_some_and(|s| same_port(s, want, local))
            {
                continue;
            }
        }
        if let Some(why) = port_conflict(want, &foreign_ports) {
            plan.conflicts.push(why);
            plan.skipped_pods.push(want.name.clone());
            continue;
        }
        adds.push(Change::AddPort(want.clone()));
    }

    // Remote nodes.
    let ours: HashMap<&str, &RemoteNode> = state
        .nodes
        .iter()
        .filter(|n| n.owner == Owner::Agent)
        .map(|n| (n.spec.name.as_str(), &n.spec))
        .collect();
    let declared: HashMap<&str, &RemoteNode> =
        desired.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    for n in state.nodes.iter().filter(|n| n.owner == Owner::Agent) {
        if declared.get(n.spec.name.as_str()) != Some(&&n.spec) {
            dels.push(Change::DelNode {
                name: n.spec.name.clone(),
            });
        }
    }
    let foreign_nodes: Vec<&NodeState> = state
        .nodes
        .iter()
        .filter(|n| n.owner != Owner::Agent)
        .collect();
    for want in &desired.nodes {
        if ours.get(want.name.as_str()) == Some(&want) {
            continue;
        }
        if let Some(why) = node_conflict(want, &foreign_nodes) {
            plan.conflicts.push(why);
            continue;
        }
        adds.push(Change::AddNode(want.clone()));
    }

    // Ports before nodes within each group; the order of each group follows the daemon's state
    // (deletions) and the file (additions), so the port numbers follow the file.
    dels.sort_by_key(|c| matches!(c, Change::DelNode { .. }));
    adds.sort_by_key(|c| matches!(c, Change::AddNode(_)));
    plan.changes.extend(dels);
    plan.changes.extend(adds);
    plan
}

/// Local nodes compare equal when they configure the same thing (a derived gateway equals the
/// same gateway given explicitly).
fn same_local(a: &LocalNode, b: &LocalNode) -> bool {
    let norm = |n: &LocalNode| LocalNode {
        gateway: Some(n.gateway()),
        ..n.clone()
    };
    norm(a) == norm(b)
}

/// Ports compare equal when they configure the same pod: unset optional fields equal their
/// effective values (so a daemon that reports the defaults it filled in does not cause churn).
fn same_port(have: &PortSpec, want: &PortSpec, local: &LocalNode) -> bool {
    let norm = |p: &PortSpec| PortSpec {
        vnid: Some(p.vnid.unwrap_or(local.vni)),
        ifname: Some(p.ifname().to_string()),
        mtu: Some(p.mtu.unwrap_or_else(|| local.pod_mtu())),
        ..p.clone()
    };
    norm(have) == norm(want)
}

fn port_conflict(want: &PortSpec, foreign: &[&PortState]) -> Option<String> {
    let owner = |p: &PortState| {
        p.owner
            .map_or_else(|| "the switch".to_string(), |o| o.to_string())
    };
    for p in foreign {
        if p.name == want.name {
            return Some(format!(
                "pod {}: a port of that name is owned by {}; not adding it",
                want.name,
                owner(p)
            ));
        }
        if let Some(s) = p.spec.as_ref().filter(|_| p.kind == PortKind::Pod) {
            if s.ip == want.ip {
                return Some(format!(
                    "pod {}: ip {} is used by port {} (owned by {}); not adding it",
                    want.name,
                    want.ip,
                    p.name,
                    owner(p)
                ));
            }
            if s.mac == want.mac {
                return Some(format!(
                    "pod {}: mac {} is used by port {} (owned by {}); not adding it",
                    want.name,
                    want.mac,
                    p.name,
                    owner(p)
                ));
            }
            if s.netns == want.netns && s.ifname() == want.ifname() {
                return Some(format!(
                    "pod {}: interface {} in {} is used by port {} (owned by {}); not adding it",
                    want.name,
                    want.ifname(),
                    want.netns,
                    p.name,
                    owner(p)
                ));
            }
        }
    }
    None
}

fn node_conflict(want: &RemoteNode, foreign: &[&NodeState]) -> Option<String> {
    for n in foreign {
        if n.spec.name == want.name {
            return Some(format!(
                "node {}: a node of that name is owned by {}; not adding it",
                want.name, n.owner
            ));
        }
        if n.spec.subnet.overlaps(&want.subnet) {
            return Some(format!(
                "node {}: subnet {} overlaps subnet {} of node {} (owned by {}); not adding it",
                want.name, want.subnet, n.spec.subnet, n.spec.name, n.owner
            ));
        }
    }
    None
}
