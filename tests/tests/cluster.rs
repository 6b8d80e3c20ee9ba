//! Cluster mode against a real etcd (`vxlab up --etcd`: Debian's etcd in the lab's underlay
//! namespace, every vxagent with `--etcd`): nodes lease distinct subnets in flannel's layout
//! and find each other through them; a stopped agent's lease expires and the others drop its
//! routes, and it takes its subnet back on restart; pods keep talking while etcd is down, and
//! changes flow again once it is back; a lease written as flannel writes it is a node for every
//! switch, and vxswitch's own leases read as flannel's.
//!
//! Remote nodes are found by their subnet (the agent names them after their lease key).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tools::lab::etcd::{self, Stop};
use vxswitch_e2e::*;

/// The agents' lease TTL in these labs: an expired lease shows within seconds.
const TTL: u32 = 4;
/// Bound on a lease expiring and every switch catching up (TTL, etcd's expiry check, watch).
const EXPIRY: Duration = Duration::from_secs(30);
/// Bound on a change in etcd reaching every switch.
const PROPAGATION: Duration = Duration::from_secs(20);

fn cluster_lab(prefix: &str, kinds: Vec<Kind>, nodes: usize) -> LabGuard {
    lab(LabSpec {
        name: unique_name(prefix),
        nodes,
        pods: 1,
        kinds,
        ipv6: false,
        // Frames cross the underlay as the veths hand them over (no ethtool needed).
        underlay_offload: true,
        etcd: true,
        lease_ttl: TTL,
        ..LabSpec::default()
    })
}

/// The remote nodes a node's vxswitchd has: subnet -> (VTEP, VTEP MAC).
fn remotes(lab: &Lab, node: &str) -> BTreeMap<String, (String, String)> {
    let state = lab
        .ctl(node)
        .and_then(|mut c| {
            c.state().map_err(|source| tools::lab::LabError::Control {
                node: node.to_string(),
                source,
            })
        })
        .unwrap_or_else(|e| panic!("state of {node}: {e}"));
    state
        .nodes
        .iter()
        .map(|n| {
            (
                n.spec.subnet.to_string(),
                (n.spec.vtep.to_string(), n.spec.vtep_mac.to_string()),
            )
        })
        .collect()
}

/// Waits until every vxswitch node of `nodes` has (or, `present` false, lacks) a remote node
/// with `subnet`.
fn wait_remote(lab: &Lab, nodes: &[&str], subnet: &str, present: bool, limit: Duration) {
    for n in nodes {
        let ok = wait_until(limit, || remotes(lab, n).contains_key(subnet) == present);
        assert!(
            ok,
            "{n} {} a node for {subnet} after {limit:?}: {:?}",
            if present { "has no" } else { "still has" },
            remotes(lab, n)
        );
    }
}

/// flannel's lease keys and values under the lab's prefix: subnet ("10.1.2.0/24") -> value.
fn leases(lab: &Lab) -> BTreeMap<String, Value> {
    let prefix = format!("{}/subnets/", etcd::PREFIX);
    let out = lab
        .etcdctl(&["get", "--prefix", &prefix])
        .unwrap_or_else(|e| panic!("etcdctl get: {e}"));
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    lines
        .chunks(2)
        .map(|kv| {
            let subnet = kv[0]
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("key {} outside {prefix}", kv[0]))
                .replace('-', "/");
            let value: Value = serde_json::from_str(kv.get(1).copied().unwrap_or(""))
                .unwrap_or_else(|e| panic!("lease {subnet}: {e}: {kv:?}"));
            (subnet, value)
        })
        .collect()
}

/// The etcd lease (ID, as etcdctl prints it in hex) a key is attached to; 0 without one.
fn lease_of(lab: &Lab, key: &str) -> u64 {
    let out = lab
        .etcdctl(&["get", key, "-w", "json"])
        .unwrap_or_else(|e| panic!("etcdctl get {key}: {e}"));
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["kvs"][0]["lease"]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} has no lease field: {out}"))
}

/// A node's subnet.env as key -> value.
fn subnet_env(lab: &Lab, node: &str) -> BTreeMap<String, String> {
    let dir = &lab.node(node).expect("node").dir;
    let path = tools::lab::vxswitch::subnet_env_path(dir);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The subnet of `FLANNEL_SUBNET=10.1.2.1/24`: `10.1.2.0/24`.
fn network_of(gateway_cidr: &str) -> String {
    let (ip, len) = gateway_cidr.split_once('/').expect("IP/LEN");
    let ip: Ipv4Addr = ip.parse().expect("an IPv4 address");
    let len: u32 = len.parse().expect("a prefix length");
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    format!("{}/{len}", Ipv4Addr::from(u32::from(ip) & mask))
}

/// Every pod pings every pod on another node, three replies each.
fn all_pairs_ping(lab: &Lab) {
    let pods: Vec<(String, String, Ipv4Addr)> = lab
        .nodes()
        .iter()
        .flat_map(|n| {
            n.pods
                .iter()
                .map(|p| (n.name.clone(), p.name.clone(), p.ip))
        })
        .collect();
    for (from_node, from, _) in &pods {
        for (to_node, to, ip) in &pods {
            if from_node == to_node {
                continue;
            }
            let (got, out) = ping_count(lab, from, *ip, 3);
            assert_eq!(got, 3, "{from} -> {to} ({ip}):\n{out}");
        }
    }
}

fn pod_ip(lab: &Lab, pod: &str) -> Ipv4Addr {
    lab.pod(pod).expect("pod").ip
}

#[test]
fn three_agents_lease_distinct_subnets_in_flannels_format_and_every_pair_pings() {
    let lab = cluster_lab("cjoin", vec![Kind::Vxswitch], 3);
    let endpoint = lab.etcd().expect("a lab with etcd");
    assert_eq!(lab.status_json()["etcd"], Value::from(endpoint.clone()));

    // Three leases, three distinct subnets, each the one subnet.env of its node names.
    let leases = leases(&lab);
    assert_eq!(leases.len(), 3, "{leases:?}");
    let mut seen = Vec::new();
    for node in lab.nodes() {
        let env = subnet_env(&lab, &node.name);
        assert_eq!(
            env.get("FLANNEL_NETWORK").map(String::as_str),
            Some("10.1.0.0/16")
        );
        let subnet = network_of(env.get("FLANNEL_SUBNET").expect("FLANNEL_SUBNET"));
        assert!(env.contains_key("FLANNEL_MTU") && env.contains_key("FLANNEL_IPMASQ"));
        assert_eq!(
            subnet, node.subnet,
            "the node holds the subnet its pods live in"
        );
        assert!(!seen.contains(&subnet), "{subnet} leased twice");
        seen.push(subnet.clone());

        // vxswitch's own lease reads as flannel's: its field names and values.
        let v = &leases[&subnet];
        assert_eq!(v["PublicIP"], Value::from(node.vtep.to_string()), "{v}");
        assert_eq!(v["BackendType"], "vxlan", "{v}");
        assert_eq!(
            v["BackendData"]["VtepMAC"],
            Value::from(node.vtep_mac.clone()),
            "{v}"
        );
        assert_eq!(v["BackendData"]["VNI"], 1, "{v}");
        // And it lives as long as an etcd lease that the agent keeps alive, as flannel's does.
        let id = lease_of(&lab, &etcd::subnet_key(&subnet));
        assert_ne!(id, 0, "the lease of {subnet} has an etcd lease");
        let ttl = lab
            .etcdctl(&["lease", "timetolive", &format!("{id:x}")])
            .expect("lease timetolive");
        assert!(ttl.contains(&format!("granted with TTL({TTL}s)")), "{ttl}");
    }

    // Every switch knows the other two from etcd, at their VTEPs.
    for node in lab.nodes() {
        let r = remotes(&lab, &node.name);
        for other in lab.nodes().iter().filter(|o| o.name != node.name) {
            let (vtep, mac) = r
                .get(&other.subnet)
                .unwrap_or_else(|| panic!("{} has no node for {}: {r:?}", node.name, other.subnet));
            assert_eq!(vtep, &other.vtep.to_string());
            assert_eq!(mac, &other.vtep_mac);
        }
    }
    all_pairs_ping(&lab);
}

#[test]
fn a_stopped_agent_loses_its_lease_and_routes_and_takes_its_subnet_back() {
    let mut lab = cluster_lab("cstop", vec![Kind::Vxswitch], 3);
    let n3 = lab.node("n3").expect("n3").clone();
    let key = etcd::subnet_key(&n3.subnet);

    // A crash: SIGKILL, nothing revokes the lease; it expires after its TTL.
    let t0 = Instant::now();
    lab.stop_agent("n3", Stop::Kill).expect("stop n3's agent");
    let expired = wait_until(EXPIRY, || !leases(&lab).contains_key(&n3.subnet));
    assert!(
        expired,
        "{key} still there after {EXPIRY:?}: {:?}",
        leases(&lab)
    );
    let t_expired = t0.elapsed();
    wait_remote(&lab, &["n1", "n2"], &n3.subnet, false, PROPAGATION);
    eprintln!(
        "figure: agent killed -> lease gone {:.2} s, -> n1 and n2 without its node {:.2} s \
         (TTL {TTL} s)",
        t_expired.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    // n1 has no way to n3's pods any more; n1 and n2 still talk.
    let (got, out) = ping_count(&lab, "n1p1", pod_ip(&lab, "n3p1"), 2);
    assert_eq!(got, 0, "n3's routes are gone from n1:\n{out}");
    let (got, out) = ping_count(&lab, "n1p1", pod_ip(&lab, "n2p1"), 3);
    assert_eq!(got, 3, "{out}");

    // Restarted, it takes back the same subnet and everyone learns it again.
    let t0 = Instant::now();
    lab.start_agent("n3").expect("start n3's agent");
    let back = wait_until(PROPAGATION, || leases(&lab).contains_key(&n3.subnet));
    assert!(
        back,
        "no lease for {} after the restart: {:?}",
        n3.subnet,
        leases(&lab)
    );
    assert_eq!(leases(&lab).len(), 3, "one lease per node, no new subnet");
    assert_eq!(
        network_of(&subnet_env(&lab, "n3")["FLANNEL_SUBNET"]),
        n3.subnet
    );
    wait_remote(&lab, &["n1", "n2"], &n3.subnet, true, PROPAGATION);
    eprintln!(
        "figure: agent restarted -> n1 and n2 with its node again {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    all_pairs_ping(&lab);

    // A clean stop (SIGTERM) also takes n3 out of the others' tables, by revocation or expiry.
    lab.stop_agent("n3", Stop::Term).expect("stop n3's agent");
    wait_remote(&lab, &["n1", "n2"], &n3.subnet, false, EXPIRY);
}

#[test]
fn pods_keep_talking_while_etcd_is_down_and_changes_flow_again_after() {
    let mut lab = cluster_lab("cetcd", vec![Kind::Vxswitch], 3);
    let n3 = lab.node("n3").expect("n3").clone();
    all_pairs_ping(&lab);

    lab.stop_etcd().expect("stop etcd");
    assert!(
        lab.etcdctl(&["endpoint", "health"]).is_err(),
        "etcd is down"
    );
    // Longer than a lease TTL without etcd: the switches keep their tables and forward.
    let count = TTL * 5 + 5;
    let (got, out) = ping_count(&lab, "n1p1", pod_ip(&lab, "n2p1"), count);
    assert_eq!(got, count, "pings while etcd is down:\n{out}");
    let (got, out) = ping_count(&lab, "n2p1", pod_ip(&lab, "n3p1"), 3);
    assert_eq!(got, 3, "{out}");
    for n in ["n1", "n2", "n3"] {
        assert_eq!(
            remotes(&lab, n).len(),
            2,
            "{n} keeps its nodes while etcd is down"
        );
    }
    // A change while etcd is down: n3's agent crashes, so nothing will renew its lease.
    lab.stop_agent("n3", Stop::Kill).expect("stop n3's agent");

    let t0 = Instant::now();
    lab.start_etcd().expect("start etcd");
    eprintln!(
        "figure: etcd restart to healthy {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    // etcd renews every lease as it comes back; the agents of n1 and n2 keep theirs alive,
    // n3's expires and n1 and n2 drop it.
    wait_remote(&lab, &["n1", "n2"], &n3.subnet, false, EXPIRY);
    let l = leases(&lab);
    assert!(
        l.contains_key("10.1.1.0/24") && l.contains_key("10.1.2.0/24"),
        "{l:?}"
    );
    let (got, out) = ping_count(&lab, "n1p1", pod_ip(&lab, "n2p1"), 3);
    assert_eq!(got, 3, "after etcd's return:\n{out}");

    // A change after the restart reaches every switch: the watches were resumed.
    lab.start_agent("n3").expect("start n3's agent");
    wait_remote(&lab, &["n1", "n2"], &n3.subnet, true, PROPAGATION);
    wait_remote(&lab, &["n3"], "10.1.1.0/24", true, PROPAGATION);
    wait_remote(&lab, &["n3"], "10.1.2.0/24", true, PROPAGATION);
    all_pairs_ping(&lab);
}

#[test]
fn leases_written_as_flannel_writes_them_are_nodes_for_every_switch() {
    // n3 is a kernel node (the Linux vxlan driver as flannel programs it), and its lease was
    // written by vxlab as flannel's daemon writes its own.
    let lab = cluster_lab(
        "cflan",
        vec![Kind::Vxswitch, Kind::Vxswitch, Kind::Kernel],
        3,
    );
    let n3 = lab.node("n3").expect("n3").clone();
    assert_ne!(lease_of(&lab, &etcd::subnet_key(&n3.subnet)), 0);
    for n in ["n1", "n2"] {
        let r = remotes(&lab, n);
        assert_eq!(
            r.get(&n3.subnet),
            Some(&(n3.vtep.to_string(), n3.vtep_mac.clone())),
            "{n}: {r:?}"
        );
    }
    all_pairs_ping(&lab);

    // One more, by hand, exactly as flannel writes it: an etcd lease, then the key on it.
    let subnet = "10.1.200.0/24";
    let key = etcd::subnet_key(subnet);
    let granted = lab.etcdctl(&["lease", "grant", "60"]).expect("lease grant");
    let id = granted
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("lease grant said: {granted}"))
        .to_string();
    let value = r#"{"PublicIP":"198.51.100.200","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:f1:00:00:00:c8"}}"#;
    lab.etcdctl(&["put", &format!("--lease={id}"), &key, value])
        .expect("put the lease");
    wait_remote(&lab, &["n1", "n2"], subnet, true, PROPAGATION);
    for n in ["n1", "n2"] {
        assert_eq!(
            remotes(&lab, n)[subnet],
            (
                "198.51.100.200".to_string(),
                "02:f1:00:00:00:c8".to_string()
            ),
            "{n}"
        );
    }
    // Revoked, as when flannel's node goes: gone from every switch.
    lab.etcdctl(&["lease", "revoke", &id])
        .expect("lease revoke");
    wait_remote(&lab, &["n1", "n2"], subnet, false, PROPAGATION);
    all_pairs_ping(&lab);
}
