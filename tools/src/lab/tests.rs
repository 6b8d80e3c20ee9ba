//! Unit tests of the lab description: planning, agent files, status JSON, lab.json.

use std::net::Ipv4Addr;

use super::vxswitch::{agent_toml, switch_args, AgentFile, BinSearch};
use super::*;

fn spec(nodes: usize, pods: usize, kinds: &[Kind]) -> LabSpec {
    LabSpec {
        name: "t1".into(),
        nodes,
        pods,
        kinds: kinds.to_vec(),
        ..LabSpec::default()
    }
}

#[test]
fn default_spec_is_two_vxswitch_nodes_with_two_pods() {
    let s = LabSpec::default();
    assert_eq!(
        (s.name.as_str(), s.nodes, s.pods, s.port),
        ("vxlab", 2, 2, 4789)
    );
    assert_eq!((s.workers, s.ipv6, s.offload), (None, true, true));
    assert_eq!(
        (s.kind_of(1), s.kind_of(2)),
        (Kind::Vxswitch, Kind::Vxswitch)
    );
    s.validate().unwrap();
}

#[test]
fn specs_are_checked_with_advice() {
    let cases: &[(LabSpec, &str)] = &[
        (
            LabSpec {
                name: "Bad".into(),
                ..LabSpec::default()
            },
            "1-8 characters",
        ),
        (
            LabSpec {
                nodes: 0,
                ..LabSpec::default()
            },
            "1 to 200 nodes",
        ),
        (
            LabSpec {
                nodes: 201,
                ..LabSpec::default()
            },
            "1 to 200 nodes",
        ),
        (
            LabSpec {
                pods: 201,
                ..LabSpec::default()
            },
            "at most 200 pods",
        ),
        (
            spec(3, 1, &[Kind::Kernel, Kind::Vxswitch]),
            "2 kinds given for 3 nodes",
        ),
        (
            LabSpec {
                port: 0,
                ..LabSpec::default()
            },
            "VXLAN port 0",
        ),
        (
            LabSpec {
                workers: Some(0),
                ..LabSpec::default()
            },
            "0 workers",
        ),
    ];
    for (s, want) in cases {
        let e = Lab::plan(s).unwrap_err().to_string();
        assert!(e.contains(want), "{s:?}: {e}");
    }
    Lab::plan(&spec(200, 200, &[Kind::Kernel])).unwrap();
    Lab::plan(&spec(1, 0, &[])).unwrap();
}

#[test]
fn plan_addresses_nodes_and_pods() {
    let lab = Lab::plan(&spec(3, 2, &[Kind::Kernel, Kind::Vxswitch, Kind::Kernel])).unwrap();
    assert_eq!(lab.underlay(), Underlay::Bridge);
    assert_eq!(lab.dir(), Path::new("/run/vxlab/t1"));
    let n2 = lab.node("n2").unwrap();
    assert_eq!(n2.netns, "t1-n2");
    assert_eq!(n2.kind, Kind::Vxswitch);
    assert_eq!(n2.vtep, Ipv4Addr::new(198, 51, 100, 2));
    assert_eq!(n2.vtep_mac, "02:f1:00:00:00:02");
    assert_eq!(n2.underlay_mac, "02:00:c6:33:64:02");
    assert_eq!(n2.subnet, "10.1.2.0/24");
    assert_eq!(n2.gateway, Ipv4Addr::new(10, 1, 2, 1));
    assert_eq!(n2.dir, Path::new("/run/vxlab/t1/n2"));
    assert_eq!(
        n2.socket.as_deref(),
        Some(Path::new("/run/vxlab/t1/n2/vxswitchd.sock"))
    );
    assert_eq!(lab.node("n1").unwrap().socket, None);
    let p = lab.pod("n3p2").unwrap();
    assert_eq!(
        (p.netns.as_str(), p.ip, p.mac.as_str()),
        ("t1-n3p2", Ipv4Addr::new(10, 1, 3, 3), "0a:58:0a:01:03:03")
    );
    assert_eq!(lab.netns_of("n1").as_deref(), Some("t1-n1"));
    assert_eq!(lab.netns_of("n1p1").as_deref(), Some("t1-n1p1"));
    assert_eq!(lab.netns_of("ul").as_deref(), Some("t1-ul"));
    assert_eq!(lab.netns_of("n4"), None);
    assert!(lab
        .require_netns("n9p1")
        .unwrap_err()
        .to_string()
        .contains("no node or pod named \"n9p1\""));
    let e = lab.socket("n1").unwrap_err().to_string();
    assert!(e.contains("n1 of lab t1 is a kernel node"), "{e}");

    let cmd = lab.command("n2p1", "ping");
    assert_eq!(sh::cmdline(&cmd), "ip netns exec t1-n2p1 ping");

    let two = Lab::plan(&spec(2, 1, &[])).unwrap();
    assert_eq!(two.underlay(), Underlay::Veth);
    assert_eq!(two.netns_of("ul"), None);
}

#[test]
fn agent_toml_round_trips_and_lists_every_other_node() {
    let lab = Lab::plan(&spec(3, 2, &[Kind::Vxswitch, Kind::Kernel, Kind::Vxswitch])).unwrap();
    let n1 = lab.node("n1").unwrap();
    let text = agent_toml(&lab, n1);
    assert!(
        text.starts_with("# vxagent configuration of node n1 in lab t1"),
        "{text}"
    );

    let v: toml::Value = toml::from_str(&text).unwrap();
    let node = &v["node"];
    assert_eq!(node["name"].as_str(), Some("n1"));
    assert_eq!(node["vtep"].as_str(), Some("198.51.100.1"));
    assert_eq!(node["vtep_mac"].as_str(), Some("02:f1:00:00:00:01"));
    assert_eq!(node["subnet"].as_str(), Some("10.1.1.0/24"));
    assert_eq!(node["gateway"].as_str(), Some("10.1.1.1"));
    assert_eq!(node["vni"].as_integer(), Some(1));
    assert_eq!(node["cluster_network"].as_str(), Some("10.1.0.0/16"));
    assert_eq!(node["underlay_mtu"].as_integer(), Some(1500));
    let pods = v["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[1]["name"].as_str(), Some("n1p2"));
    assert_eq!(pods[1]["netns"].as_str(), Some("t1-n1p2"));
    assert_eq!(pods[1]["mac"].as_str(), Some("0a:58:0a:01:01:03"));
    assert_eq!(pods[1]["ip"].as_str(), Some("10.1.1.3"));
    let nodes = v["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["n2", "n3"],
        "every other node, kernel ones included"
    );
    assert_eq!(nodes[0]["vtep"].as_str(), Some("198.51.100.2"));
    assert_eq!(nodes[0]["vtep_mac"].as_str(), Some("02:f1:00:00:00:02"));
    assert_eq!(nodes[0]["subnet"].as_str(), Some("10.1.2.0/24"));
    assert_eq!(nodes[0].as_table().unwrap().len(), 4);

    // The same file through the typed view, and through the control protocol's own types.
    let file: AgentFile = toml::from_str(&text).unwrap();
    assert_eq!(file, vxswitch::agent_file(&lab, n1));
    let local: controlplane::proto::LocalNode = node.clone().try_into().unwrap();
    local.validate().unwrap();
    assert_eq!(local.pod_mtu(), topo::POD_MTU);
    for p in pods {
        let port: controlplane::proto::PortSpec = p.clone().try_into().unwrap();
        port.validate().unwrap();
    }
    for n in nodes {
        let peer: controlplane::proto::RemoteNode = n.clone().try_into().unwrap();
        peer.validate().unwrap();
    }
}

#[test]
fn switch_arguments_follow_the_spec() {
    let mut s = spec(2, 1, &[]);
    let lab = Lab::plan(&s).unwrap();
    let args = switch_args(&lab, &lab.nodes()[0]).join(" ");
    assert_eq!(
        args,
        "--socket /run/vxlab/t1/n1/vxswitchd.sock --state-file /run/vxlab/t1/n1/state.json \
         --vxlan-port 4789 --ovs-rundir /run/vxlab/t1/n1/ovs \
         --log-file /run/vxlab/t1/n1/vxswitchd.log --offload on"
    );
    s.workers = Some(3);
    s.offload = false;
    s.port = 8472;
    let lab = Lab::plan(&s).unwrap();
    let args = switch_args(&lab, &lab.nodes()[1]).join(" ");
    assert!(
        args.ends_with(
            "--vxlan-port 8472 --ovs-rundir /run/vxlab/t1/n2/ovs --workers 3 --log-file /run/vxlab/t1/n2/vxswitchd.log --offload off"
        ),
        "{args}"
    );
    let args = vxswitch::agent_args(&lab, &lab.nodes()[1]).join(" ");
    assert_eq!(
        args,
        "--socket /run/vxlab/t1/n2/vxswitchd.sock --config /run/vxlab/t1/n2/agent.toml"
    );
}

#[test]
fn status_json_has_exactly_the_documented_shape() {
    let lab = Lab::plan(&spec(2, 1, &[Kind::Kernel])).unwrap();
    let v = lab.status_json();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v), ["name", "nodes"]);
    assert_eq!(v["name"], "t1");
    let n = &v["nodes"][1];
    assert_eq!(
        keys(n),
        ["kind", "name", "netns", "pods", "subnet", "vtep", "vtep_mac"]
    );
    assert_eq!(n["kind"], "kernel");
    assert_eq!(n["vtep"], "198.51.100.2");
    let p = &n["pods"][0];
    assert_eq!(keys(p), ["ip", "mac", "name", "netns"]);
    assert_eq!(p["ip"], "10.1.2.2");
    assert_eq!(p["mac"], "0a:58:0a:01:02:02");
    assert!(lab.render().contains("n2p1"));
}

#[test]
fn lab_json_round_trips() {
    let mut lab = Lab::plan(&spec(3, 1, &[Kind::Vxswitch])).unwrap();
    lab.nodes[2].switch_pid = Some(1234);
    let text = serde_json::to_string(&lab).unwrap();
    let back: Lab = serde_json::from_str(&text).unwrap();
    assert_eq!(back.nodes(), lab.nodes());
    assert_eq!(back.spec(), lab.spec());
    assert_eq!(back.switch_pid("n3"), Some(1234));
    assert_eq!(back.switch_pid("n1"), None);
}

#[test]
fn binaries_are_searched_where_documented() {
    let dir = std::env::temp_dir().join(format!("vxlab-bin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("vxfake");
    std::fs::write(&bin, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();

    let env_only = BinSearch {
        env_dir: Some(dir.clone()),
        exe_dir: None,
        path: vec![],
    };
    assert_eq!(env_only.find("vxfake").unwrap(), bin);
    let e = env_only.find("vxnothere").unwrap_err().to_string();
    assert!(
        e.contains("vxnothere") && e.contains("VXLAB_BIN_DIR="),
        "{e}"
    );

    let exe = BinSearch {
        env_dir: None,
        exe_dir: Some("/nonexistent".into()),
        path: vec![dir.clone()],
    };
    assert_eq!(exe.find("vxfake").unwrap(), bin);
    let e = exe.find("vxnothere").unwrap_err().to_string();
    assert!(e.contains("/nonexistent") && e.contains("PATH"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ovs_and_plain_labs_are_all_one_kind() {
    for kinds in [
        &[Kind::Plain, Kind::Kernel][..],
        &[Kind::Vxswitch, Kind::Plain],
        &[Kind::Ovs, Kind::Kernel],
        &[Kind::Ovs, Kind::Plain],
    ] {
        let e = Lab::plan(&spec(2, 1, kinds)).unwrap_err().to_string();
        assert!(e.contains("cannot share a lab"), "{kinds:?}: {e}");
    }
    let e = Lab::plan(&spec(3, 1, &[Kind::Ovs, Kind::Ovs, Kind::Vxswitch]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("kinds ovs and vxswitch cannot share a lab"),
        "{e}"
    );
    Lab::plan(&spec(3, 1, &[Kind::Ovs])).unwrap();
    Lab::plan(&spec(2, 1, &[Kind::Plain, Kind::Plain])).unwrap();
    Lab::plan(&spec(2, 1, &[Kind::Kernel, Kind::Vxswitch])).unwrap();
}

#[test]
fn plain_labs_have_full_size_pods_and_ovs_labs_record_their_daemons() {
    let plain = Lab::plan(&spec(2, 1, &[Kind::Plain])).unwrap();
    assert_eq!(plain.pod_mtu(), 1500);
    assert!(plain.render().contains("no overlay (routed), pod MTU 1500"));
    assert!(plain.switch_processes().is_empty());

    let mut ovs = Lab::plan(&spec(2, 1, &[Kind::Ovs])).unwrap();
    assert_eq!(ovs.pod_mtu(), 1450);
    assert_eq!(ovs.node("n1").unwrap().socket, None);
    ovs.nodes[0].ovs_vswitchd_pid = Some(4242);
    ovs.nodes[0].ovsdb_server_pid = Some(4241);
    assert_eq!(ovs.switch_processes(), vec![("n1".to_string(), 4242)]);
    let text = ovs.render();
    assert!(
        text.contains("ovs-vswitchd 4242 ovsdb-server 4241"),
        "{text}"
    );
    assert!(
        text.contains("ovs-vsctl --db=unix:/run/vxlab/t1/n1/ovs/db.sock show"),
        "{text}"
    );

    let mut vx = Lab::plan(&spec(2, 1, &[])).unwrap();
    vx.nodes[1].switch_pid = Some(77);
    assert_eq!(vx.switch_processes(), vec![("n2".to_string(), 77)]);
}

#[test]
fn tso_defaults_to_on_also_in_older_state_files() {
    assert!(LabSpec::default().tso);
    let lab = Lab::plan(&spec(2, 1, &[Kind::Kernel])).unwrap();
    let mut v = serde_json::to_value(&lab).unwrap();
    v["spec"].as_object_mut().unwrap().remove("tso");
    for n in v["nodes"].as_array_mut().unwrap() {
        n.as_object_mut().unwrap().remove("ovs_vswitchd_pid");
    }
    v["spec"]
        .as_object_mut()
        .unwrap()
        .remove("underlay_offload");
    let back: Lab = serde_json::from_value(v).unwrap();
    assert!(back.spec().tso);
    assert!(!back.spec().underlay_offload);
    let mut off = spec(2, 1, &[Kind::Kernel]);
    off.tso = false;
    assert!(Lab::plan(&off)
        .unwrap()
        .render()
        .contains("TSO off in the pods"));
    off.underlay_offload = true;
    assert!(Lab::plan(&off)
        .unwrap()
        .render()
        .contains("TSO off in the pods, underlay offload on"));
}

#[test]
fn ipv6_labs_are_dual_stack_on_vxswitch_nodes_only() {
    let mut s = spec(3, 2, &[Kind::Vxswitch, Kind::Kernel, Kind::Vxswitch]);
    s.ipv6 = true;
    let lab = Lab::plan(&s).unwrap();
    let n1 = lab.node("n1").unwrap();
    assert_eq!(n1.subnet6.as_deref(), Some("fd00:10:1:1::/64"));
    assert_eq!(n1.pods[1].ip6, Some("fd00:10:1:1::3".parse().unwrap()));
    assert_eq!(
        lab.node("n2").unwrap().subnet6,
        None,
        "kernel nodes stay IPv4"
    );
    assert!(lab.node("n2").unwrap().pods.iter().all(|p| p.ip6.is_none()));
    assert_eq!(topo::gateway6(12).to_string(), "fd00:10:1:12::1");
    assert_eq!(topo::pod_ip6(12, 199).to_string(), "fd00:10:1:12::200");

    // The agent file carries them, and the agent accepts it.
    let text = agent_toml(&lab, n1);
    let cfg = controlplane::agent::config::parse("agent.toml", &text).unwrap();
    assert_eq!(cfg.local.gateway6().unwrap().to_string(), "fd00:10:1:1::1");
    assert_eq!(cfg.pods[0].ip6.unwrap().to_string(), "fd00:10:1:1::2");
    let n3 = cfg.nodes.iter().find(|n| n.name == "n3").unwrap();
    assert_eq!(n3.subnet6.unwrap().to_string(), "fd00:10:1:3::/64");
    assert_eq!(
        cfg.nodes.iter().find(|n| n.name == "n2").unwrap().subnet6,
        None
    );

    // Status shows them.
    let v = lab.status_json();
    assert_eq!(v["nodes"][0]["subnet6"], "fd00:10:1:1::/64");
    assert_eq!(v["nodes"][0]["pods"][0]["ip6"], "fd00:10:1:1::2");
    assert!(v["nodes"][1].get("subnet6").is_none());
    assert!(lab.render().contains("10.1.1.0/24 fd00:10:1:1::/64"));
    assert!(lab.render().contains("fd00:10:1:3::3"));

    // Without IPv6 nothing changes: no prefix, no address, the same agent file as before.
    s.ipv6 = false;
    let lab = Lab::plan(&s).unwrap();
    assert!(lab.nodes().iter().all(|n| n.subnet6.is_none()));
    let text = agent_toml(&lab, lab.node("n1").unwrap());
    assert!(!text.contains("subnet6") && !text.contains("ip6"), "{text}");
}

#[test]
fn an_ipv6_underlay_puts_the_vteps_on_2001_db8() {
    let mut s = spec(2, 1, &[Kind::Vxswitch, Kind::Kernel]);
    s.underlay6 = true;
    let lab = Lab::plan(&s).unwrap();
    assert_eq!(
        lab.node("n2").unwrap().vtep6,
        Some("2001:db8::2".parse().unwrap())
    );
    assert_eq!(lab.pod_mtu(), 1430, "70 bytes of VXLAN over IPv6");
    let cfg = controlplane::agent::config::parse(
        "agent.toml",
        &agent_toml(&lab, lab.node("n1").unwrap()),
    )
    .unwrap();
    assert_eq!(cfg.local.vtep.to_string(), "2001:db8::1");
    assert_eq!(cfg.local.pod_mtu(), 1430);
    assert_eq!(cfg.nodes[0].vtep.to_string(), "2001:db8::2");
    s.kinds = vec![Kind::Ovs];
    let e = Lab::plan(&s).unwrap_err().to_string();
    assert!(
        e.contains("IPv6 underlay takes vxswitch and kernel nodes only"),
        "{e}"
    );
}

#[test]
fn a_lab_with_etcd_runs_its_agents_in_cluster_mode() {
    let s = LabSpec {
        etcd: true,
        lease_ttl: 4,
        ipv6: false,
        ..spec(2, 1, &[])
    };
    let lab = Lab::plan(&s).unwrap();
    assert_eq!(
        lab.underlay(),
        Underlay::Bridge,
        "etcd sits on the underlay bridge, also with two nodes"
    );
    assert_eq!(lab.etcd().as_deref(), Some("http://198.51.100.254:2379"));
    assert_eq!(
        lab.status_json()["etcd"],
        serde_json::json!("http://198.51.100.254:2379")
    );
    let n2 = &lab.nodes()[1];
    let args = vxswitch::agent_args(&lab, n2).join(" ");
    assert_eq!(
        args,
        "--socket /run/vxlab/t1/n2/vxswitchd.sock --config /run/vxlab/t1/n2/agent.toml \
         --etcd http://198.51.100.254:2379 --subnet-file /run/vxlab/t1/n2/subnet.env \
         --subnet-lease-file /run/vxlab/t1/n2/subnet.lease --lease-ttl 4"
    );
    // The file asks for the planned subnet, lists no other node, and leaves VNI and cluster
    // network to etcd's network config.
    let text = agent_toml(&lab, n2);
    let v: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(v["node"]["subnet"].as_str(), Some("10.1.2.0/24"));
    assert!(v.get("nodes").is_none(), "{text}");
    assert!(v["node"].get("vni").is_none(), "{text}");
    assert!(v["node"].get("cluster_network").is_none(), "{text}");
    assert_eq!(v["pods"].as_array().unwrap().len(), 1);
    assert!(lab.render().contains("etcd: http://198.51.100.254:2379"));

    // Without etcd nothing of it.
    let plain = Lab::plan(&spec(2, 1, &[])).unwrap();
    assert_eq!(plain.etcd(), None);
    assert!(plain.status_json().get("etcd").is_none());
    assert!(!vxswitch::agent_args(&plain, &plain.nodes()[0]).contains(&"--etcd".to_string()));

    for (bad, want) in [
        (
            LabSpec {
                etcd: true,
                ..spec(2, 1, &[Kind::Ovs])
            },
            "vxswitch and kernel nodes only",
        ),
        (
            LabSpec {
                etcd: true,
                underlay6: true,
                ..spec(2, 1, &[])
            },
            "IPv4 underlay",
        ),
        (
            LabSpec {
                etcd: true,
                lease_ttl: 1,
                ..spec(2, 1, &[])
            },
            "2 to 86400",
        ),
    ] {
        let e = Lab::plan(&bad).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn pods_of_a_lab_with_etcd_are_ipv4_only() {
    let lab = Lab::plan(&LabSpec {
        etcd: true,
        ..spec(2, 1, &[])
    })
    .unwrap();
    assert!(lab.spec().ipv6, "IPv6 stays enabled in the pods");
    assert!(lab.nodes().iter().all(|n| n.subnet6.is_none()));
    assert!(lab.pod("n1p1").unwrap().ip6.is_none());
}
