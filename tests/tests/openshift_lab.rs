//! A two-node lab whose flows are programmed only with the real `ovs-ofctl`: OpenShift origin
//! 3.6's multitenant program (tests/data/openshift/origin-3.6.template), expanded per node with
//! that node's values. Pods of two tenants (VNIDs 5 and 6) and of VNID 0 on both nodes:
//! same-tenant pods talk across nodes (with their VNID on the wire), cross-tenant pods don't
//! (on one node or across), and VNID 0 reaches both tenants.
//!
//! tests/data/openshift/reference-lab.sh runs the same program, pings and counts on real Open
//! vSwitch (an ovs lab re-plumbed to OpenShift's port layout), with the same results.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vxswitch_e2e::*;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/openshift")
}

/// The tunnel (vxlan0) and host (vxhost0, OpenShift's tun0) ports.
const TUNNEL_PORT: u32 = 1;

struct Pod {
    port: u32,
    ip: Ipv4Addr,
    mac: String,
    vnid: u32,
    /// The container ID (64 hex digits), which the program keeps as a note.
    container: String,
}

struct Remote {
    ip: Ipv4Addr,
    subnet: String,
}

struct Service {
    ip: Ipv4Addr,
    port: u16,
    vnid: u32,
}

/// What origin 3.6 fills its flows with on one node.
struct NodeValues {
    cluster_network: String,
    local_subnet: String,
    gateway: Ipv4Addr,
    service_network: String,
    /// `%02X.%02X` of the plugin id (1, multitenant) and the rule version (3).
    version_note: String,
    pods: Vec<Pod>,
    remotes: Vec<Remote>,
    services: Vec<Service>,
}

/// getPodNote: the container ID's bytes, two hex digits each, joined by dots.
fn pod_note(container: &str) -> String {
    assert_eq!(container.len(), 64, "a container ID is 32 bytes");
    (0..32)
        .map(|i| &container[2 * i..2 * i + 2])
        .collect::<Vec<_>>()
        .join(".")
}

fn fill(line: &str, values: &[(&str, String)]) -> String {
    let mut s = line.to_string();
    for (k, v) in values {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    assert!(
        !s.contains('{'),
        "a placeholder left in {s:?} (template line {line:?})"
    );
    s
}

/// Expands the template (its comment says how): the node's flows, in the order the node adds
/// them.
fn expand(template: &str, v: &NodeValues) -> Vec<String> {
    assert!(
        !v.remotes.is_empty(),
        "UpdateVXLANMulticastFlows writes another line without remote nodes"
    );
    let mut outputs: Vec<String> = v
        .remotes
        .iter()
        .map(|r| format!("set_field:{}->tun_dst,output:{TUNNEL_PORT}", r.ip))
        .collect();
    outputs.sort();
    let globals = vec![
        ("CLUSTER_NETWORK", v.cluster_network.clone()),
        ("LOCAL_SUBNET", v.local_subnet.clone()),
        ("GATEWAY", v.gateway.to_string()),
        ("SERVICE_NETWORK", v.service_network.clone()),
        ("VERSION_NOTE", v.version_note.clone()),
        ("VXLAN_MULTICAST_OUTPUTS", outputs.join(",")),
    ];
    let mut tenants: Vec<u32> = v.pods.iter().map(|p| p.vnid).filter(|&n| n != 0).collect();
    tenants.sort();
    tenants.dedup();
    let with = |extra: Vec<(&'static str, String)>| {
        let mut all = globals.clone();
        all.extend(extra);
        all
    };
    let items = |tag: &str| -> Vec<Vec<(&'static str, String)>> {
        match tag {
            "@pod " => v
                .pods
                .iter()
                .map(|p| {
                    with(vec![
                        ("POD_PORT", p.port.to_string()),
                        ("POD_IP", p.ip.to_string()),
                        ("POD_MAC", p.mac.clone()),
                        ("POD_VNID", p.vnid.to_string()),
                        ("POD_NOTE", pod_note(&p.container)),
                    ])
                })
                .collect(),
            "@tenant " => tenants
                .iter()
                .map(|n| with(vec![("VNID", n.to_string())]))
                .collect(),
            "@node " => v
                .remotes
                .iter()
                .map(|r| {
                    with(vec![
                        ("REMOTE_IP", r.ip.to_string()),
                        ("REMOTE_SUBNET", r.subnet.clone()),
                    ])
                })
                .collect(),
            "@service " => v
                .services
                .iter()
                .map(|s| {
                    with(vec![
                        ("SVC_IP", s.ip.to_string()),
                        ("SVC_PORT", s.port.to_string()),
                        ("SVC_VNID", s.vnid.to_string()),
                    ])
                })
                .collect(),
            _ => unreachable!(),
        }
    };
    let lines: Vec<&str> = template
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let tag = ["@pod ", "@tenant ", "@node ", "@service "]
            .into_iter()
            .find(|t| lines[i].starts_with(t));
        let Some(tag) = tag else {
            out.push(fill(lines[i], &globals));
            i += 1;
            continue;
        };
        let block: Vec<&str> = lines[i..]
            .iter()
            .take_while(|l| l.starts_with(tag))
            .map(|l| &l[tag.len()..])
            .collect();
        for values in items(tag) {
            for b in &block {
                out.push(fill(b, &values));
            }
        }
        i += block.len();
    }
    out
}

fn template() -> String {
    std::fs::read_to_string(data_dir().join("origin-3.6.template")).expect("the template")
}

#[test]
fn the_template_expands_to_the_program_real_ovs_was_given() {
    // The values of origin-3.6.flows' header.
    let containers = [
        "e8f822d8326a2d876e644124a228f857ab6bb069fa7b81073b6b6bd7d96c6481",
        "15582ea489cf4e778cc25c49b40cf9de4563366829d90f3a464a50b89013be6a",
        "d61c56cfb334337f134550dc4527903c66b19b0105aecbdd9d2bbac7939aaf38",
        "a42dc20db0844f08f95f455fe798b7163e11c6ffd6603e6e8cd40a463ebd75eb",
    ];
    let values = NodeValues {
        cluster_network: "10.1.0.0/16".into(),
        local_subnet: "10.1.1.0/24".into(),
        gateway: Ipv4Addr::new(10, 1, 1, 1),
        service_network: "172.30.0.0/16".into(),
        version_note: "01.03".into(),
        pods: [0, 5, 6, 5]
            .into_iter()
            .zip(containers)
            .enumerate()
            .map(|(j, (vnid, c))| Pod {
                port: 3 + j as u32,
                ip: Ipv4Addr::new(10, 1, 1, 2 + j as u8),
                mac: format!("0a:58:0a:01:01:{:02x}", 2 + j),
                vnid,
                container: c.into(),
            })
            .collect(),
        remotes: vec![Remote {
            ip: Ipv4Addr::new(198, 51, 100, 2),
            subnet: "10.1.2.0/24".into(),
        }],
        services: vec![Service {
            ip: Ipv4Addr::new(172, 30, 0, 10),
            port: 8080,
            vnid: 5,
        }],
    };
    let want = std::fs::read_to_string(data_dir().join("origin-3.6.flows")).unwrap();
    let want: Vec<&str> = want
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(expand(&template(), &values), want);
}

/// The node's OVS run directory (`vxlab status`: "ovs_rundir", vxswitchd's --ovs-rundir).
fn ovs_rundir(lab: &Lab, node: &str) -> PathBuf {
    let status = lab.status_json();
    let dir = status["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["name"] == node))
        .and_then(|n| n["ovs_rundir"].as_str())
        .map(PathBuf::from);
    dir.unwrap_or_else(|| {
        panic!(
            "vxlab status gives no ovs_rundir for {node} (vxswitchd's --ovs-rundir):\n{status:#}"
        )
    })
}

fn ofctl(rundir: &Path, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("ovs-ofctl");
    cmd.env("OVS_RUNDIR", rundir)
        .args(["-O", "OpenFlow13"])
        .args(args);
    run_bounded(&mut cmd, Duration::from_secs(30))
}

/// `n_packets` of the one flow of `ovs-ofctl dump-flows br0 FILTER` that contains `needle`.
fn n_packets(rundir: &Path, filter: &str, needle: &str) -> u64 {
    let (ok, out) = ofctl(rundir, &["dump-flows", "br0", filter]);
    assert!(ok, "dump-flows:\n{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(lines.len(), 1, "one flow with {needle:?} in:\n{out}");
    lines[0]
        .split("n_packets=")
        .nth(1)
        .and_then(|s| s.split([',', ' ']).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("n_packets in {}", lines[0]))
}

const VNIDS: [u32; 3] = [0, 5, 6];

fn ip(node: u8, pod: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, node, 1 + pod)
}

#[test]
fn openshift_3_6_multitenant_program_isolates_tenants_across_two_nodes() {
    let lab = lab(LabSpec {
        name: unique_name("osl"),
        nodes: 2,
        pods: VNIDS.len(),
        ipv6: false,
        pod_vnids: VNIDS.to_vec(),
        ..LabSpec::default()
    });
    let template = template();
    for node in lab.nodes() {
        let state = lab.ctl(&node.name).unwrap().state().unwrap();
        let pods = node
            .pods
            .iter()
            .zip(VNIDS)
            .enumerate()
            .map(|(j, (p, vnid))| Pod {
                port: state
                    .ports
                    .iter()
                    .find(|s| s.name == p.name)
                    .map(|s| s.no as u32)
                    .unwrap_or_else(|| panic!("no port {}", p.name)),
                ip: p.ip,
                mac: p.mac.clone(),
                vnid,
                container: format!("{:02x}{:02x}{}", node.index, j, "c0".repeat(30)),
            })
            .collect();
        let values = NodeValues {
            cluster_network: "10.1.0.0/16".into(),
            local_subnet: node.subnet.clone(),
            gateway: node.gateway,
            service_network: "172.30.0.0/16".into(),
            version_note: "01.03".into(),
            pods,
            remotes: lab
                .nodes()
                .iter()
                .filter(|n| n.name != node.name)
                .map(|n| Remote {
                    ip: n.vtep,
                    subnet: n.subnet.clone(),
                })
                .collect(),
            services: vec![Service {
                ip: Ipv4Addr::new(172, 30, 0, 10),
                port: 8080,
                vnid: 5,
            }],
        };
        let program = expand(&template, &values).join("\n") + "\n";
        let file = std::env::temp_dir().join(format!("{}-{}.flows", lab.name, node.name));
        std::fs::write(&file, program).unwrap();
        let rundir = ovs_rundir(&lab, &node.name);
        let (ok, out) = ofctl(&rundir, &["add-flows", "br0", file.to_str().unwrap()]);
        let _ = std::fs::remove_file(&file);
        assert!(ok, "{}: add-flows:\n{out}", node.name);
        // The program's table=0, priority=0 drop took the rule of the node's NORMAL fallback
        // flow (vxswitchd's default, or the agent's): every flow is the program's.
        let (ok, out) = ofctl(&rundir, &["dump-flows", "br0", "--no-stats"]);
        assert!(ok && !out.contains("NORMAL"), "{}:\n{out}", node.name);
        // OpenShift's pod set-up routes the cluster network on-link (origin 3.6's IPAM gives
        // the pod a route to it without a gateway): pods ARP for each other, across nodes too.
        for p in &node.pods {
            for args in [
                vec![
                    "-n",
                    &p.netns,
                    "route",
                    "replace",
                    "10.1.0.0/16",
                    "dev",
                    "eth0",
                ],
                vec!["-n", &p.netns, "neigh", "flush", "all"],
            ] {
                let (ok, out) = run_bounded(Command::new("ip").args(&args), Duration::from_secs(5));
                assert!(ok, "ip {args:?}: {out}");
            }
        }
    }
    let n1 = lab.node("n1").unwrap().clone();
    let n2 = lab.node("n2").unwrap().clone();

    // Same tenant across nodes, both ways, with the tenant's VNID on the wire.
    let capture = Capture::start(
        &n1.netns,
        "eth0",
        "udp port 4789",
        &std::env::temp_dir().join(&lab.name),
    );
    let (ok, out) = ping(&lab, "n1p2", ip(2, 2), 3, &[]);
    assert!(ok, "VNID 5 -> VNID 5 across nodes:\n{out}");
    let frames = capture.finish();
    let (a, b) = (ip(1, 2).octets(), ip(2, 2).octets());
    let vnis: Vec<u32> = frames
        .iter()
        .filter_map(|f| vxlan_inner(f, 4789))
        .filter(|(_, inner)| {
            // The echo requests and replies between the two pods (ICMP over IPv4).
            inner.len() >= 34
                && inner[12..14] == [0x08, 0x00]
                && inner[23] == 1
                && ((inner[26..30] == a && inner[30..34] == b)
                    || (inner[26..30] == b && inner[30..34] == a))
        })
        .map(|(vni, _)| vni)
        .collect();
    assert_eq!(vnis, [5; 6], "three requests and three replies, with VNI 5");
    let (ok, out) = ping(&lab, "n2p2", ip(1, 2), 3, &[]);
    assert!(ok, "VNID 5 -> VNID 5 back:\n{out}");

    // Different tenants: not across nodes, not on one node.
    for (from, to) in [("n1p2", ip(2, 3)), ("n1p2", ip(1, 3))] {
        let (ok, out) = ping(&lab, from, to, 3, &[]);
        assert!(
            !ok && out.contains("3 packets transmitted, 0 received"),
            "VNID 5 -> VNID 6 ({from} -> {to}) is dropped:\n{out}"
        );
    }
    for (node, what) in [(&n2, "across nodes"), (&n1, "on the node")] {
        let rundir = ovs_rundir(&lab, &node.name);
        assert_eq!(
            n_packets(&rundir, "table=80", "priority=0 actions=drop"),
            3,
            "{}: the three echo requests {what} end in table 80's drop",
            node.name
        );
    }

    // VNID 0 reaches both tenants and both reach it, across nodes.
    for (from, to) in [
        ("n1p1", ip(2, 2)),
        ("n1p1", ip(2, 3)),
        ("n2p2", ip(1, 1)),
        ("n2p3", ip(1, 1)),
        ("n1p1", ip(2, 1)),
    ] {
        let (ok, out) = ping(&lab, from, to, 3, &[]);
        assert!(ok, "{from} -> {to}:\n{out}");
    }
}
