//! Table-driven tests of the agent's pure parts: file parsing/validation and the diff.

use super::config::{parse, AgentConfig};
use super::diff::plan;
use crate::proto::*;

const GOOD: &str = r#"# node n1
[node]
name = "n1"
vtep = "198.51.100.1"
vtep_mac = "02:f1:00:00:00:01"
subnet = "10.1.1.0/24"

[[pods]]
name = "n1p1"
netns = "lab-n1p1"
mac = "0a:58:0a:01:01:02"
ip = "10.1.1.2"
vnid = 10

[[pods]]
name = "n1p2"
netns = "lab-n1p2"
mac = "0a:58:0a:01:01:03"
ip = "10.1.1.3"

[[nodes]]
name = "n2"
vtep = "198.51.100.2"
vtep_mac = "02:f1:00:00:00:02"
subnet = "10.1.2.0/24"
"#;

fn good() -> AgentConfig {
    parse("agent.toml", GOOD).unwrap()
}

/// The file's text with `from` replaced by `to` (which must occur).
fn edit(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    text[..at].lines().count() + usize::from(text[..at].ends_with('\n') || at == 0)
}

#[test]
fn parses_the_example_with_defaults() {
    let c = good();
    assert_eq!(c.local.name, "n1");
    assert_eq!(c.local.vni, 1);
    assert_eq!(c.local.gateway, None);
    assert_eq!(c.local.gateway().to_string(), "10.1.1.1");
    assert_eq!(c.local.cluster_network.to_string(), "10.1.0.0/16");
    assert_eq!(c.local.underlay_mtu, 1500);
    assert_eq!(c.pods.len(), 2);
    assert_eq!(c.pods[0].vnid, Some(10));
    assert_eq!(c.pods[1].vnid, None);
    assert_eq!(c.nodes[0].subnet.to_string(), "10.1.2.0/24");
}

#[test]
fn a_file_without_pods_or_nodes_is_fine() {
    let text = GOOD.split("[[pods]]").next().unwrap();
    let c = parse("a.toml", text).unwrap();
    assert!(c.pods.is_empty() && c.nodes.is_empty());
}

#[test]
fn bad_files_name_the_line() {
    // (edited text, the text on the line the error must point at, words the reason contains)
    let cases: Vec<(String, &str, &str)> = vec![
        (edit("vnid = 10", "vnid = 10\ncolour = \"red\""), "colour", "unknown field `colour`"),
        (edit("\"0a:58:0a:01:01:03\"", "\"0a:58:zz:01:01:03\""), "0a:58:zz", "bad MAC"),
        (edit("subnet = \"10.1.2.0/24\"", "subnet = \"10.1.2.5/24\""), "10.1.2.5/24", "host bits"),
        (edit("ip = \"10.1.1.3\"\n", ""), "[[pods]]\nname = \"n1p2\"", "missing field `ip`"),
        (edit("[node]", "[node"), "[node", "invalid table header"),
        (edit("vnid = 10", "vnid = \"ten\""), "\"ten\"", "invalid type"),
        // Semantic errors, found after parsing.
        (edit("ip = \"10.1.1.3\"", "ip = \"10.1.9.3\""), "10.1.9.3", "outside the node subnet 10.1.1.0/24"),
        (edit("ip = \"10.1.1.3\"", "ip = \"10.1.1.1\""), "ip = \"10.1.1.1\"", "gateway"),
        (edit("ip = \"10.1.1.3\"", "ip = \"10.1.1.255\""), "10.1.1.255", "broadcast"),
        (edit("ip = \"10.1.1.3\"", "ip = \"10.1.1.0\""), "ip = \"10.1.1.0\"", "network address"),
        (edit("ip = \"10.1.1.3\"", "ip = \"10.1.1.2\""), "ip = \"10.1.1.2\"\n\n[[nodes]]", "already used at line 12"),
        (edit("name = \"n1p2\"", "name = \"n1p1\""), "name = \"n1p1\"\nnetns = \"lab-n1p2\"", "already used at line 9"),
        (edit("\"0a:58:0a:01:01:03\"", "\"0a:58:0a:01:01:02\""), "mac = \"0a:58:0a:01:01:02\"\nip = \"10.1.1.3\"", "pod MAC"),
        (edit("\"0a:58:0a:01:01:03\"", "\"01:00:5e:00:00:01\""), "01:00:5e", "not a unicast MAC"),
        (edit("vnid = 10", "vnid = 16777216"), "16777216", "24 bits"),
        (edit("name = \"n1p2\"", "name = \"vxlan0\""), "vxlan0", "reserved"),
        (edit("netns = \"lab-n1p2\"", "netns = \"lab-n1p2\"\nmtu = 9000"), "mtu = 9000", "pod MTU 1450"),
        (edit("name = \"n1p2\"", "name = \"n1 p2\""), "n1 p2", "bad name"),
        (
            edit("netns = \"lab-n1p2\"", "netns = \"lab-n1p1\""),
            "netns = \"lab-n1p1\"\nmac = \"0a:58:0a:01:01:03\"",
            "interface eth0 in netns lab-n1p1 is already used at line 10",
        ),
        // A pod named like a key still gets the right line.
        (
            edit("name = \"n1p2\"", "name = \"mac\"")
                .replacen("ip = \"10.1.1.3\"", "ip = \"10.1.1.3\"\nifname = \"a/b\"", 1),
            "a/b",
            "pod mac: bad interface name",
        ),
        (edit("subnet = \"10.1.1.0/24\"", "subnet = \"10.1.1.0/24\"\nvni = 99999999"), "vni = 9", "24 bits"),
        (edit("subnet = \"10.1.1.0/24\"", "subnet = \"10.1.1.0/24\"\ngateway = \"10.1.3.1\""), "10.1.3.1", "gateway"),
        (edit("subnet = \"10.1.1.0/24\"", "subnet = \"10.9.1.0/24\""), "10.9.1.0", "cluster network"),
        (edit("subnet = \"10.1.2.0/24\"", "subnet = \"10.1.0.0/16\""), "10.1.0.0/16", "overlaps this node's subnet"),
        (edit("vtep = \"198.51.100.2\"", "vtep = \"198.51.100.1\""), "vtep = \"198.51.100.1\"\nvtep_mac = \"02:f1:00:00:00:02\"", "this node's vtep"),
        (edit("vtep = \"198.51.100.2\"", "vtep = \"2001:db8::2\""), "2001:db8::2", "IPv6"),
        (edit("name = \"n2\"", "name = \"n1\""), "name = \"n1\"\nvtep = \"198.51.100.2\"", "same name as this node"),
        (
            format!("{GOOD}\n[[nodes]]\nname = \"n3\"\nvtep = \"198.51.100.3\"\nvtep_mac = \"02:f1:00:00:00:03\"\nsubnet = \"10.1.2.128/25\"\n"),
            "10.1.2.128/25",
            "overlaps subnet 10.1.2.0/24 of node n2 (line 25)",
        ),
    ];
    for (text, at, words) in cases {
        let e = parse("agent.toml", &text).expect_err(&text);
        let want = line_of(&text, at);
        assert_eq!(e.line, Some(want), "{e}\n---\n{text}");
        assert!(e.message.contains(words), "{e:?} lacks {words:?}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("agent.toml:{want}: ")),
            "{shown}"
        );
        assert!(!shown.contains('\n'), "{shown:?}");
    }
}

/// GOOD with IPv6 prefixes on both nodes and an IPv6 address on pod n1p1.
fn dual_stack() -> String {
    GOOD.replacen(
        "subnet = \"10.1.1.0/24\"",
        "subnet = \"10.1.1.0/24\"\nsubnet6 = \"fd00:10:1:1::/64\"",
        1,
    )
    .replacen("vnid = 10", "vnid = 10\nip6 = \"fd00:10:1:1::2\"", 1)
    .replacen(
        "subnet = \"10.1.2.0/24\"",
        "subnet = \"10.1.2.0/24\"\nsubnet6 = \"fd00:10:1:2::/64\"",
        1,
    )
}

#[test]
fn dual_stack_prefixes_and_pod_addresses_parse() {
    let c = parse("agent.toml", &dual_stack()).unwrap();
    assert_eq!(c.local.subnet6.unwrap().to_string(), "fd00:10:1:1::/64");
    assert_eq!(c.local.gateway6().unwrap().to_string(), "fd00:10:1:1::1");
    assert_eq!(c.pods[0].ip6.unwrap().to_string(), "fd00:10:1:1::2");
    assert_eq!(c.pods[1].ip6, None);
    assert_eq!(c.nodes[0].subnet6.unwrap().to_string(), "fd00:10:1:2::/64");
    assert_eq!(good().local.subnet6, None, "IPv6 stays optional");
}

#[test]
fn bad_ipv6_values_name_the_line() {
    let d = dual_stack();
    let ed = |from: &str, to: &str| {
        assert!(d.contains(from), "{from}");
        d.replacen(from, to, 1)
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (ed("ip6 = \"fd00:10:1:1::2\"", "ip6 = \"fd00:10:1:9::2\""), "fd00:10:1:9::2", "outside the node's subnet6"),
        (ed("ip6 = \"fd00:10:1:1::2\"", "ip6 = \"fd00:10:1:1::1\""), "ip6 = \"fd00:10:1:1::1\"", "IPv6 gateway"),
        (ed("ip6 = \"fd00:10:1:1::2\"", "ip6 = \"fe80::2\""), "fe80::2", "unicast"),
        (ed("ip6 = \"fd00:10:1:1::2\"", "ip6 = \"10.1.1.2\""), "ip6 = \"10.1.1.2\"", "invalid IPv6"),
        (ed("subnet6 = \"fd00:10:1:1::/64\"", "subnet6 = \"fd00:10:1:1::5/64\""), "fd00:10:1:1::5/64", "host bits"),
        (ed("subnet6 = \"fd00:10:1:1::/64\"", "subnet6 = \"ff00::/64\""), "ff00::/64", "unicast"),
        (ed("subnet6 = \"fd00:10:1:2::/64\"", "subnet6 = \"fd00:10:1::/48\""), "fd00:10:1::/48", "overlaps this node's subnet6"),
        (ed("subnet6 = \"fd00:10:1:1::/64\"\n", ""), "ip6 = ", "set subnet6"),
        (
            format!("{d}\n[[nodes]]\nname = \"n3\"\nvtep = \"198.51.100.3\"\nvtep_mac = \"02:f1:00:00:00:03\"\nsubnet = \"10.1.3.0/24\"\nsubnet6 = \"fd00:10:1:2::/64\"\n"),
            "subnet6 = \"fd00:10:1:2::/64\"\n",
            "overlaps subnet6 fd00:10:1:2::/64 of node n2",
        ),
    ];
    for (text, at, words) in cases {
        let e = parse("agent.toml", &text).expect_err(&text);
        let want = if at == "subnet6 = \"fd00:10:1:2::/64\"\n" {
            // The second use, in node n3.
            text[..text.rfind(at).unwrap()].lines().count() + 1
        } else {
            line_of(&text, at)
        };
        assert_eq!(e.line, Some(want), "{e}\n---\n{text}");
        assert!(e.message.contains(words), "{e:?} lacks {words:?}");
    }
}

/// The state a daemon holds after applying `c` as the agent (ports numbered from 3).
fn state_of(c: &AgentConfig, version: u64) -> StateRepr {
    let mut ports = vec![
        PortState {
            no: PORT_TUNNEL,
            name: "vxlan0".into(),
            kind: PortKind::Tunnel,
            device: "udp/4789".into(),
            owner: None,
            spec: None,
            status: "up".into(),
        },
        PortState {
            no: PORT_HOST,
            name: "vxhost0".into(),
            kind: PortKind::Host,
            device: "vxhost0".into(),
            owner: None,
            spec: None,
            status: "up".into(),
        },
    ];
    for (i, p) in c.pods.iter().enumerate() {
        ports.push(pod_port(PORT_FIRST_POD + i as u16, Owner::Agent, p.clone()));
    }
    StateRepr {
        bridge: BRIDGE.into(),
        table_version: version,
        local: Some(c.local.clone()),
        local_owner: Some(Owner::Agent),
        ports,
        nodes: c
            .nodes
            .iter()
            .map(|n| NodeState {
                owner: Owner::Agent,
                spec: n.clone(),
            })
            .collect(),
        vxlan_port: 4789,
        workers: 1,
    }
}

fn pod_port(no: u16, owner: Owner, spec: PortSpec) -> PortState {
    PortState {
        no,
        name: spec.name.clone(),
        kind: PortKind::Pod,
        device: "tap0".into(),
        owner: Some(owner),
        spec: Some(spec),
        status: "up".into(),
    }
}

fn admin_pod() -> PortSpec {
    PortSpec {
        name: "debug".into(),
        netns: "dbg".into(),
        mac: "0a:58:0a:01:01:63".parse().unwrap(),
        ip: "10.1.1.99".parse().unwrap(),
        ip6: None,
        vnid: None,
        ifname: None,
        mtu: None,
    }
}

fn admin_node() -> RemoteNode {
    RemoteNode {
        name: "n9".into(),
        vtep: "198.51.100.9".parse().unwrap(),
        vtep_mac: "02:f1:00:00:00:09".parse().unwrap(),
        subnet: "10.1.9.0/24".parse().unwrap(),
        subnet6: None,
    }
}

/// `state` plus an admin port and an admin node.
fn with_admin(mut s: StateRepr) -> StateRepr {
    let no = s.ports.iter().map(|p| p.no).max().unwrap() + 1;
    s.ports.push(pod_port(no, Owner::Admin, admin_pod()));
    s.nodes.push(NodeState {
        owner: Owner::Admin,
        spec: admin_node(),
    });
    s
}

fn empty_state() -> StateRepr {
    let mut s = state_of(&good(), 0);
    s.local = None;
    s.local_owner = None;
    s.ports.truncate(2);
    s.nodes.clear();
    s
}

#[test]
fn a_fresh_daemon_gets_everything_in_order() {
    let c = good();
    let p = plan(&c, &with_admin(empty_state()));
    assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
    assert_eq!(
        p.changes,
        vec![
            Change::SetLocalNode(c.local.clone()),
            Change::AddPort(c.pods[0].clone()),
            Change::AddPort(c.pods[1].clone()),
            Change::AddNode(c.nodes[0].clone()),
        ]
    );
}

#[test]
fn equal_state_is_a_noop() {
    let c = good();
    assert!(plan(&c, &state_of(&c, 7)).is_noop());
    assert!(plan(&c, &with_admin(state_of(&c, 7))).is_noop());
}

#[test]
fn defaults_filled_in_by_the_daemon_are_not_differences() {
    let c = good();
    let mut s = state_of(&c, 3);
    let local = s.local.as_mut().unwrap();
    local.gateway = Some(local.gateway());
    for p in &mut s.ports {
        if let Some(spec) = p.spec.as_mut() {
            spec.ifname = Some("eth0".into());
            spec.mtu = Some(1450);
            spec.vnid = Some(spec.vnid.unwrap_or(1));
        }
    }
    let p = plan(&c, &s);
    assert!(p.is_noop(), "{:?}", p.changes);
}

#[test]
fn removed_changed_and_added_objects() {
    let old = good();
    let s = with_admin(state_of(&old, 5));
    let text = GOOD
        // n1p1 removed (its block renamed to a new pod n1p4 with another IP/MAC),
        .replacen("name = \"n1p1\"", "name = \"n1p4\"", 1)
        .replacen("ip = \"10.1.1.2\"", "ip = \"10.1.1.4\"", 1)
        .replacen("0a:58:0a:01:01:02", "0a:58:0a:01:01:04", 1)
        // n1p2 changed (new netns),
        .replacen("lab-n1p2", "lab-n1p2b", 1)
        // n2 changed (new VTEP).
        .replacen("198.51.100.2", "198.51.100.22", 1);
    let new = parse("a.toml", &text).unwrap();
    let p = plan(&new, &s);
    assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
    assert_eq!(
        p.changes,
        vec![
            Change::DelPort {
                name: "n1p1".into()
            },
            Change::DelPort {
                name: "n1p2".into()
            },
            Change::DelNode { name: "n2".into() },
            Change::AddPort(new.pods[0].clone()),
            Change::AddPort(new.pods[1].clone()),
            Change::AddNode(new.nodes[0].clone()),
        ]
    );
    // Nothing of the admin's is touched, and the local node is unchanged.
    for c in &p.changes {
        let name = match c {
            Change::DelPort { name } | Change::DelNode { name } => name.clone(),
            Change::AddPort(p) => p.name.clone(),
            Change::AddNode(n) => n.name.clone(),
            Change::SetLocalNode(_) => panic!("local node unchanged: {c:?}"),
        };
        assert!(name != "debug" && name != "n9", "{c:?}");
    }
}

#[test]
fn an_empty_file_section_removes_only_agent_objects() {
    let old = good();
    let s = with_admin(state_of(&old, 5));
    let new = AgentConfig {
        pods: vec![],
        nodes: vec![],
        ..old.clone()
    };
    assert_eq!(
        plan(&new, &s).changes,
        vec![
            Change::DelPort {
                name: "n1p1".into()
            },
            Change::DelPort {
                name: "n1p2".into()
            },
            Change::DelNode { name: "n2".into() },
        ]
    );
}

#[test]
fn a_changed_local_node_comes_first() {
    let old = good();
    let s = state_of(&old, 5);
    let new = parse(
        "a.toml",
        &edit("name = \"n1\"", "name = \"n1\"\nunderlay_mtu = 9000"),
    )
    .unwrap();
    let p = plan(&new, &s);
    // Only the node changes: the pods declare no MTU of their own, so they are left alone.
    assert_eq!(p.changes, vec![Change::SetLocalNode(new.local.clone())]);
}

#[test]
fn collisions_with_admin_objects_are_conflicts_not_changes() {
    let c = good();
    let mut s = empty_state();
    // The admin took n1p1's name, n1p2's IP, and a subnet overlapping n2's.
    let mut a = admin_pod();
    a.name = "n1p1".into();
    s.ports.push(pod_port(3, Owner::Admin, a));
    let mut b = admin_pod();
    b.ip = "10.1.1.3".parse().unwrap();
    s.ports.push(pod_port(4, Owner::Admin, b));
    let mut n = admin_node();
    n.subnet = "10.1.2.0/23".parse().unwrap();
    s.nodes.push(NodeState {
        owner: Owner::Admin,
        spec: n,
    });
    let p = plan(&c, &s);
    assert_eq!(p.changes, vec![Change::SetLocalNode(c.local.clone())]);
    assert_eq!(p.conflicts.len(), 3, "{:?}", p.conflicts);
    assert!(p.conflicts[0].contains("n1p1") && p.conflicts[0].contains("admin"));
    assert!(p.conflicts[1].contains("ip 10.1.1.3 is used by port debug"));
    assert!(p.conflicts[2].contains("overlaps"));
    // The same interface in the same namespace is taken too.
    let mut s = empty_state();
    let mut a = admin_pod();
    a.netns = "lab-n1p2".into();
    s.ports.push(pod_port(3, Owner::Admin, a));
    let p = plan(&c, &s);
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    assert!(
        p.conflicts[0].contains("interface eth0 in lab-n1p2 is used by port debug"),
        "{:?}",
        p.conflicts
    );
}

#[test]
fn an_admin_local_node_is_not_replaced() {
    let c = good();
    let mut s = state_of(&c, 2);
    s.local_owner = Some(Owner::Admin);
    assert!(plan(&c, &s).is_noop());
    s.local.as_mut().unwrap().vni = 7;
    let p = plan(&c, &s);
    assert!(p
        .changes
        .iter()
        .all(|c| !matches!(c, Change::SetLocalNode(_))));
    assert_eq!(p.conflicts.len(), 1);
}

/// Cluster mode: the leased subnet, VNI and network replace the file's; leases become nodes,
/// minus those that collide with this node, a static node or an earlier lease's VTEP.
#[test]
fn cluster_mode_merges_the_file_with_the_leases() {
    use super::config::{identity, parse_with, Leased};
    use super::run::cluster_config;
    use crate::cluster::{Lease, NetworkConfig, SubnetKey, View};
    use std::collections::{BTreeMap, HashSet};

    let text = "[node]\nname = \"n1\"\nvtep = \"198.51.100.1\"\nvtep_mac = \"02:f1:00:00:00:01\"\n\n\
                [[pods]]\nname = \"p\"\nnetns = \"ns-p\"\nmac = \"0a:58:0a:01:05:02\"\nip = \"10.1.5.2\"\n\n\
                [[nodes]]\nname = \"static\"\nvtep = \"198.51.100.3\"\nvtep_mac = \"02:f1:00:00:00:03\"\nsubnet = \"10.1.3.0/24\"\n";
    // Without --etcd the subnet is required, and the error says why.
    let e = parse("a.toml", text).unwrap_err();
    assert!(e.message.contains("missing subnet"), "{e}");
    assert_eq!(identity("a.toml", text).unwrap().subnet, None);

    let leased = Leased {
        subnet: "10.1.5.0/24".parse().unwrap(),
        subnet6: None,
        vni: 7,
        cluster_network: "10.1.0.0/16".parse().unwrap(),
    };
    let cfg = parse_with("a.toml", text, Some(&leased)).unwrap();
    assert_eq!(cfg.local.subnet, leased.subnet);
    assert_eq!(cfg.local.vni, 7);

    let lease = |sub: &str, ip: &str, mac: &str| {
        let key = format!("/coreos.com/network/subnets/{sub}");
        let value = format!(
            r#"{{"PublicIP":"{ip}","BackendType":"vxlan","BackendData":{{"VNI":7,"VtepMAC":"{mac}"}}}}"#
        );
        Lease::parse(&key, value.as_bytes()).unwrap()
    };
    let leases = [
        lease("10.1.6.0-24", "198.51.100.6", "02:f1:00:00:00:06"),
        lease("10.1.3.0-24", "198.51.100.9", "02:f1:00:00:00:09"), // a static node's subnet
        lease("10.1.7.0-24", "198.51.100.6", "02:f1:00:00:00:07"), // 10.1.6.0's VTEP
        lease("10.1.8.0-24", "198.51.100.1", "02:f1:00:00:00:08"), // this node's VTEP
    ];
    let mut view = View {
        network: Some(
            NetworkConfig::parse(r#"{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":7}}"#)
                .unwrap(),
        ),
        own: Some(SubnetKey {
            subnet: leased.subnet,
            subnet6: None,
        }),
        leases: leases
            .into_iter()
            .map(|l| (l.key, l))
            .collect::<BTreeMap<_, _>>(),
        listed: false,
        revision: 9,
        generation: 1,
    };
    let mut skipped = HashSet::new();
    assert!(
        cluster_config("a.toml", text, &view, &mut skipped).is_none(),
        "nothing before the first listing"
    );
    view.listed = true;
    let cfg = cluster_config("a.toml", text, &view, &mut skipped)
        .unwrap()
        .unwrap();
    let names: Vec<&str> = cfg.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["static", "10.1.6.0-24"]);
    assert_eq!(cfg.local.subnet, leased.subnet);
    assert_eq!(cfg.pods.len(), 1);
    assert_eq!(skipped.len(), 3, "{skipped:?}");
}
