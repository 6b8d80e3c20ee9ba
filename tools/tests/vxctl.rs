//! The vxctl binary against a fake vxswitchd (the same one the agent's tests use).

#[path = "../../controlplane/tests/support/fake_daemon.rs"]
mod fake_daemon;

use std::path::Path;
use std::process::Command;

use controlplane::proto::*;
use fake_daemon::{base_state, temp_dir, FakeDaemon};

fn vxctl(sock: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vxctl"))
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn local() -> LocalNode {
    LocalNode {
        name: "n1".into(),
        vtep: "198.51.100.1".parse().unwrap(),
        vtep_mac: "02:f1:00:00:00:01".parse().unwrap(),
        subnet: "10.1.1.0/24".parse().unwrap(),
        gateway: None,
        vni: 1,
        cluster_network: "10.1.0.0/16".parse().unwrap(),
        underlay_mtu: 1500,
    }
}

/// A configured node: one agent pod with VNID 10, one agent remote node.
fn configured() -> StateRepr {
    let mut s = base_state();
    s.table_version = 3;
    s.local = Some(local());
    s.local_owner = Some(Owner::Agent);
    s.ports.push(PortState {
        no: 3,
        name: "n1p1".into(),
        kind: PortKind::Pod,
        device: "eth0@lab-n1p1".into(),
        owner: Some(Owner::Agent),
        spec: Some(PortSpec {
            name: "n1p1".into(),
            netns: "lab-n1p1".into(),
            mac: "0a:58:0a:01:01:02".parse().unwrap(),
            ip: "10.1.1.2".parse().unwrap(),
            vnid: Some(10),
            ifname: None,
            mtu: None,
        }),
        status: "up".into(),
    });
    s.nodes.push(NodeState {
        owner: Owner::Agent,
        spec: RemoteNode {
            name: "n2".into(),
            vtep: "198.51.100.2".parse().unwrap(),
            vtep_mac: "02:f1:00:00:00:02".parse().unwrap(),
            subnet: "10.1.2.0/24".parse().unwrap(),
        },
    });
    s
}

fn start(tag: &str) -> FakeDaemon {
    FakeDaemon::start(&temp_dir(tag).join("s.sock"), configured())
}

fn line_with<'a>(text: &'a str, word: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.split_whitespace().any(|w| w == word))
        .unwrap_or_else(|| panic!("no line with {word} in\n{text}"))
        .split_whitespace()
        .collect()
}

#[test]
fn show_prints_the_tables_and_json_round_trips() {
    let fake = start("show");
    let (code, out, err) = vxctl(&fake.path, &["show"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("bridge br0  table version 3  workers 2"),
        "{out}"
    );
    assert_eq!(
        line_with(&out, "gateway"),
        ["gateway", "10.1.1.1", "(first", "host", "of", "the", "subnet)"]
    );
    assert_eq!(
        line_with(&out, "PORT"),
        ["PORT", "NAME", "KIND", "DEVICE", "MAC", "IP", "VNID", "OWNER", "STATUS"]
    );
    assert_eq!(
        line_with(&out, "vxlan0"),
        ["1", "vxlan0", "tunnel", "udp/4789", "-", "-", "-", "-", "up"]
    );
    assert_eq!(
        line_with(&out, "vxhost0"),
        ["2", "vxhost0", "host", "vxhost0", "-", "-", "-", "-", "up"]
    );
    assert_eq!(
        line_with(&out, "n1p1")[..8],
        [
            "3",
            "n1p1",
            "pod",
            "eth0@lab-n1p1",
            "0a:58:0a:01:01:02",
            "10.1.1.2",
            "10",
            "agent"
        ]
    );
    assert_eq!(
        line_with(&out, "NODE"),
        ["NODE", "VTEP", "VTEP-MAC", "SUBNET", "OWNER"]
    );
    assert_eq!(
        line_with(&out, "n2"),
        [
            "n2",
            "198.51.100.2",
            "02:f1:00:00:00:02",
            "10.1.2.0/24",
            "agent"
        ]
    );
    assert!(out.ends_with("VNI  PORTS\n 10  n1p1\n"), "{out}");

    let (code, out, _) = vxctl(&fake.path, &["show", "--json"]);
    assert_eq!(code, 0);
    let back: StateRepr = serde_json::from_str(&out).unwrap();
    assert_eq!(back, fake.state());
    assert_eq!(
        fake.lock().hellos[0],
        format!("vxctl {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn add_and_delete_as_the_admin() {
    let fake = start("add");
    let (code, out, err) = vxctl(
        &fake.path,
        &[
            "add-port",
            "web1",
            "--netns",
            "web1",
            "--mac",
            "0a:58:0a:01:01:0a",
            "--ip",
            "10.1.1.10",
            "--vnid",
            "20",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "added port web1, table version 4\n");
    let batch = fake.applied().pop().unwrap();
    assert_eq!(batch.owner, Owner::Admin);
    assert_eq!(batch.expected_version, None);
    let want = PortSpec {
        name: "web1".into(),
        netns: "web1".into(),
        mac: "0a:58:0a:01:01:0a".parse().unwrap(),
        ip: "10.1.1.10".parse().unwrap(),
        vnid: Some(20),
        ifname: None,
        mtu: None,
    };
    assert_eq!(batch.changes, vec![Change::AddPort(want)]);

    let (_, out, _) = vxctl(&fake.path, &["show"]);
    assert_eq!(line_with(&out, "web1")[6..8], ["20", "admin"]);
    assert!(out.contains(" 10  n1p1\n 20  web1\n"), "{out}");

    let (code, out, _) = vxctl(
        &fake.path,
        &[
            "--json",
            "add-node",
            "n3",
            "--vtep",
            "198.51.100.3",
            "--vtep-mac",
            "02:f1:00:00:00:03",
            "--subnet",
            "10.1.3.0/24",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Response>(&out).unwrap(),
        Response::Applied { version: 5 }
    );
    assert_eq!(
        vxctl(&fake.path, &["del-node", "n3"]).1,
        "deleted node n3, table version 6\n"
    );
    assert_eq!(
        vxctl(&fake.path, &["del-port", "web1"]).1,
        "deleted port web1, table version 7\n"
    );
    assert_eq!(fake.state().ports.len(), 3);
}

#[test]
fn refusals_and_connection_errors_exit_1_with_a_message() {
    let fake = start("refuse");
    // The agent's objects are not the admin's to delete.
    let (code, out, err) = vxctl(&fake.path, &["del-port", "n1p1"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with("vxctl: vxswitchd refused the request (Owner): "),
        "{err}"
    );
    // An IP already in use.
    let (code, _, err) = vxctl(
        &fake.path,
        &[
            "add-port",
            "x",
            "--netns",
            "x",
            "--mac",
            "0a:58:0a:01:01:0b",
            "--ip",
            "10.1.1.2",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("(Invalid)"), "{err}");
    assert_eq!(fake.applied().len(), 0);

    let gone = temp_dir("gone").join("nothing.sock");
    let (code, _, err) = vxctl(&gone, &["show"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "vxctl: cannot connect to vxswitchd at {}",
            gone.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("is vxswitchd running?") && err.contains("--socket"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2_before_connecting() {
    let fake = start("usage");
    let (code, _, err) = vxctl(
        &fake.path,
        &[
            "add-port",
            "w",
            "--netns",
            "w",
            "--mac",
            "0a:58:zz:01:01:0a",
            "--ip",
            "10.1.1.10",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("'0a:58:zz:01:01:0a'") && err.contains("--mac"),
        "{err}"
    );
    let (code, _, err) = vxctl(
        &fake.path,
        &[
            "add-node",
            "n3",
            "--vtep",
            "198.51.100.3",
            "--vtep-mac",
            "02:f1:00:00:00:03",
            "--subnet",
            "10.1.3.1/24",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("host bits"), "{err}");
    let (code, _, _) = vxctl(&fake.path, &["frobnicate"]);
    assert_eq!(code, 2);
    assert!(fake.lock().hellos.is_empty());
}

#[test]
fn fdb_stats_and_version() {
    let fake = start("misc");
    {
        let mut inner = fake.lock();
        inner.fdb = FdbRepr {
            table_version: 3,
            entries: vec![FdbEntry {
                vni: 10,
                mac: "0a:58:0a:01:01:02".parse().unwrap(),
                ip: Some("10.1.1.2".parse().unwrap()),
                target: FdbTarget::Port {
                    no: 3,
                    name: "n1p1".into(),
                },
            }],
            routes: vec![RouteEntry {
                subnet: "10.1.2.0/24".parse().unwrap(),
                node: "n2".into(),
                vtep: "198.51.100.2".parse().unwrap(),
                vtep_mac: "02:f1:00:00:00:02".parse().unwrap(),
            }],
        };
        inner.stats = StatsRepr {
            table_version: 3,
            ports: vec![PortCounters {
                no: 3,
                name: "n1p1".into(),
                rx_packets: 9,
                ..PortCounters::default()
            }],
            drops: vec![NamedCounter {
                name: "no_route".into(),
                value: 0,
            }],
            events: vec![],
            workers: 2,
        };
    }
    let (code, out, _) = vxctl(&fake.path, &["fdb"]);
    assert_eq!(code, 0);
    assert_eq!(
        line_with(&out, "0a:58:0a:01:01:02"),
        ["10", "0a:58:0a:01:01:02", "10.1.1.2", "port", "3", "n1p1"]
    );
    assert_eq!(
        line_with(&out, "n2"),
        ["10.1.2.0/24", "n2", "198.51.100.2", "02:f1:00:00:00:02"]
    );

    let (code, out, _) = vxctl(&fake.path, &["stats"]);
    assert_eq!(code, 0);
    assert_eq!(
        line_with(&out, "n1p1"),
        ["3", "n1p1", "9", "0", "0", "0", "0"]
    );
    assert_eq!(line_with(&out, "no_route"), ["no_route", "0"]);

    let (code, out, _) = vxctl(&fake.path, &["stats", "--watch", "0.1", "--count", "3"]);
    assert_eq!(code, 0);
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("n1p1")).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[0].ends_with("-          -         -          -"),
        "{out}"
    );
    assert!(
        rows[2].split_whitespace().skip(7).all(|c| c == "0.0"),
        "{out}"
    );

    let (code, out, _) = vxctl(
        &fake.path,
        &["--json", "stats", "--watch", "0.1", "--count", "2"],
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2);
    for l in out.lines() {
        assert_eq!(
            serde_json::from_str::<StatsRepr>(l).unwrap().ports[0].rx_packets,
            9
        );
    }

    let (code, out, _) = vxctl(&fake.path, &["version"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "vxctl {} protocol 1\nserver fake-vxswitchd 0.0 protocol 1 table version 3\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let (_, out, _) = vxctl(&fake.path, &["version", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["client"]["protocol"], 1);
    assert_eq!(v["server"]["type"], "hello");
    assert_eq!(v["server"]["table_version"], 3);
}
