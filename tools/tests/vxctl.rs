//! The vxctl binary against a fake vxswitchd (the same one the agent's tests use).

#[path = "../../controlplane/tests/support/fake_daemon.rs"]
mod fake_daemon;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use controlplane::client::Client;
use controlplane::flow_syntax::parse_flow;
use controlplane::proto::*;
use fake_daemon::{base_state, temp_dir, FakeDaemon};
use tools::ctl::pcap;

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
        subnet6: None,
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
            ip6: None,
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
            subnet6: None,
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
        ip6: None,
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

/// vxctl with `input` on stdin.
fn vxctl_stdin(sock: &Path, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vxctl"))
        .arg("--socket")
        .arg(sock)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn flow(s: &str) -> FlowSpec {
    parse_flow(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn add(s: &str) -> FlowMod {
    FlowMod::Add {
        flow: flow(s),
        reset_counts: false,
    }
}

#[test]
fn add_flow_sends_one_flow_mod_quietly() {
    let fake = start("addflow");
    let text = "table=0,priority=100,in_port=n1p1,ip,nw_dst=10.1.2.0/24,actions=drop";
    let (code, out, err) = vxctl(&fake.path, &["add-flow", "br0", text]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert_eq!(fake.flow_mods(), vec![vec![add(text)]]);
    assert_eq!(fake.flows(), vec![flow(text)]);

    let (code, out, _) = vxctl(
        &fake.path,
        &["--json", "add-flow", "br0", "priority=5,actions=normal"],
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Response>(&out).unwrap(),
        Response::Applied { version: 5 }
    );

    // A flow naming a port the switch does not have is refused: exit 1 with the reason.
    let (code, _, err) = vxctl(
        &fake.path,
        &["add-flow", "br0", "in_port=nope,actions=drop"],
    );
    assert_eq!(code, 1);
    assert!(
        err.starts_with("vxctl: vxswitchd refused the request (Invalid)"),
        "{err}"
    );
    assert!(err.contains("no port nope"), "{err}");

    // A syntax error on the command line is a usage error: exit 2, nothing sent.
    let hellos = fake.lock().hellos.len();
    let (code, _, err) = vxctl(
        &fake.path,
        &["add-flow", "br0", "priority=5,nw_dst=10.1.1,actions=drop"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("column 19"), "{err}");
    assert!(
        err.contains("\npriority=5,nw_dst=10.1.1,actions=drop\n"),
        "{err}"
    );
    let (code, _, err) = vxctl(&fake.path, &["dump-flows", "br1"]);
    assert_eq!(code, 2);
    assert!(err.contains("no bridge br1; this switch has br0"), "{err}");
    assert_eq!(fake.lock().hellos.len(), hellos);
}

#[test]
fn add_flows_with_a_bad_line_sends_nothing_and_names_line_and_column() {
    let fake = start("addflows");
    let dir = temp_dir("addflows-f");
    let file = dir.join("flows.txt");
    std::fs::write(
        &file,
        "# admin flows\n\
         table=0,priority=10,arp,actions=normal\n\
         \n\
         table=0,priority=20,ip,nw_src=10.1.1.300,actions=drop\n\
         table=0,priority=30,actions=drop\n",
    )
    .unwrap();
    let (code, out, err) = vxctl(&fake.path, &["add-flows", "br0", file.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (1, ""));
    let lines: Vec<&str> = err.lines().collect();
    let head = format!("vxctl: {}:4: column 31: ", file.display());
    assert!(lines[0].starts_with(&head), "{err}");
    assert_eq!(
        lines[1],
        "table=0,priority=20,ip,nw_src=10.1.1.300,actions=drop"
    );
    assert_eq!(lines[2], format!("{}^", " ".repeat(30)));
    // Nothing was sent: not even a connection.
    assert!(fake.lock().hellos.is_empty());
    assert!(fake.flow_mods().is_empty());

    // From stdin, the good file goes in one bundle.
    let good = "table=0,priority=10,arp,actions=normal\ntable=0,priority=30,actions=drop\n";
    let (code, _, err) = vxctl_stdin(&fake.path, &["add-flows", "br0", "-"], good);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        fake.flow_mods(),
        vec![vec![
            add("table=0,priority=10,arp,actions=normal"),
            add("table=0,priority=30,actions=drop")
        ]]
    );
    let (code, _, err) = vxctl_stdin(&fake.path, &["add-flows", "br0", "-"], "actions=bogus\n");
    assert_eq!(code, 1);
    assert!(err.starts_with("vxctl: <stdin>:1: column 9: "), "{err}");
    let (code, _, err) = vxctl(&fake.path, &["add-flows", "br0", "/nonexistent/flows"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent/flows"), "{err}");
    assert_eq!(fake.flow_mods().len(), 1);
}

fn stats(spec: &str, n: u64) -> FlowStats {
    FlowStats {
        spec: flow(spec),
        n_packets: n,
        n_bytes: 98 * n,
        duration_ms: 12_345,
        idle_ms: 2_000,
    }
}

/// A fake with flows in two tables, with counters.
fn with_flows(tag: &str) -> FakeDaemon {
    let fake = start(tag);
    fake.lock().flows = vec![
        stats("table=10,priority=0,actions=normal", 7),
        stats("cookie=0xa6e470,table=0,priority=0,actions=drop", 1),
        stats("table=0,priority=300,in_port=n1p1,dl_src=0a:58:0a:01:01:02,ip,nw_src=10.1.1.2,actions=goto_table:10", 5),
        stats("cookie=0x10,table=0,priority=290,idle_timeout=60,in_port=n1p1,actions=drop", 2),
    ];
    fake
}

#[test]
fn dump_flows_prints_lines_that_parse_back() {
    let fake = with_flows("dump");
    let want: Vec<FlowSpec> = fake.flows();
    let (code, out, err) = vxctl(&fake.path, &["dump-flows", "br0"]);
    assert_eq!(code, 0, "{err}");
    let back: Vec<FlowSpec> = out.lines().map(flow).collect();
    // By table, highest priority first.
    let order: Vec<(u8, u16)> = back.iter().map(|f| (f.table, f.priority)).collect();
    assert_eq!(order, [(0, 300), (0, 290), (0, 0), (10, 0)], "{out}");
    for f in &want {
        assert!(back.contains(f), "{f:?} lost in\n{out}");
    }
    let line = out.lines().find(|l| l.contains("priority=300")).unwrap();
    assert!(line.contains("n_packets=5, n_bytes=490"), "{line}");
    assert!(line.contains("duration=12.345s"), "{line}");

    let (_, plain, _) = vxctl(&fake.path, &["dump-flows", "--no-stats", "br0"]);
    assert!(!plain.contains("n_packets"), "{plain}");
    assert_eq!(plain.lines().map(flow).collect::<Vec<_>>(), back);

    // The filter: table and match go to the switch, the cookie is applied here.
    let (_, out, _) = vxctl(&fake.path, &["dump-flows", "br0", "table=0,in_port=n1p1"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(
        fake.lock().dumps.last().unwrap(),
        &(
            Some(0),
            vec![Match::InPort {
                port: PortRef::Name("n1p1".into())
            }]
        )
    );
    let (_, out, _) = vxctl(&fake.path, &["dump-flows", "br0", "cookie=0xa6e470"]);
    assert_eq!(
        out.lines().map(flow).collect::<Vec<_>>(),
        vec![flow("cookie=0xa6e470,table=0,priority=0,actions=drop")]
    );

    let (code, out, _) = vxctl(&fake.path, &["--json", "dump-flows", "br0"]);
    assert_eq!(code, 0);
    let js: Vec<FlowStats> = serde_json::from_str(&out).unwrap();
    assert_eq!(js.len(), 4);
    assert_eq!((js[0].spec.priority, js[0].n_packets), (300, 5));

    // What dump-flows prints, add-flows takes.
    let (_, dumped, _) = vxctl(&fake.path, &["dump-flows", "br0"]);
    let (code, _, err) = vxctl_stdin(&fake.path, &["replace-flows", "br0", "-"], &dumped);
    assert_eq!(code, 0, "{err}");
    let FlowMod::Replace { flows } = &fake.flow_mods()[0][0] else {
        panic!("{:?}", fake.flow_mods())
    };
    assert_eq!(flows, &back);
}

#[test]
fn diff_flows_exits_1_on_differences() {
    let fake = with_flows("diff");
    let (_, same, _) = vxctl(&fake.path, &["dump-flows", "--no-stats", "br0"]);
    let (code, out, err) = vxctl_stdin(&fake.path, &["diff-flows", "br0", "-"], &same);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));

    let changed = same.replace("idle_timeout=60, ", "").replace(
        "table=10, priority=0 actions=NORMAL",
        "table=10, priority=0 actions=FLOOD",
    ) + "table=20,priority=1,actions=drop\n";
    let (code, out, err) = vxctl_stdin(&fake.path, &["diff-flows", "br0", "-"], &changed);
    assert_eq!((code, err.as_str()), (1, ""), "{out}");
    let lines: Vec<(char, FlowSpec)> = out
        .lines()
        .map(|l| (l.chars().next().unwrap(), flow(&l[1..])))
        .collect();
    let signs: Vec<(char, u8, u16)> = lines
        .iter()
        .map(|(c, f)| (*c, f.table, f.priority))
        .collect();
    assert_eq!(
        signs,
        [
            ('-', 0, 290),
            ('+', 0, 290),
            ('-', 10, 0),
            ('+', 10, 0),
            ('+', 20, 1)
        ],
        "{out}"
    );
    assert_eq!(lines[0].1.idle_timeout, 60);
    assert_eq!(lines[1].1.idle_timeout, 0);
    assert!(fake.flow_mods().is_empty());
}

#[test]
fn mod_del_bundle_set_miss_and_replace_send_their_flow_mods() {
    let fake = with_flows("mods");
    let run = |args: &[&str]| {
        let (code, out, err) = vxctl(&fake.path, args);
        assert_eq!((code, out.as_str()), (0, ""), "{args:?}: {err}");
        fake.flow_mods().pop().unwrap()
    };
    let m = run(&["mod-flows", "br0", "in_port=n1p1,actions=normal"]);
    assert_eq!(
        m,
        vec![FlowMod::Modify {
            flow: flow("in_port=n1p1,actions=normal"),
            strict: false
        }]
    );
    let m = run(&[
        "del-flows",
        "--strict",
        "br0",
        "table=0,priority=290,in_port=n1p1",
    ]);
    assert_eq!(
        m,
        vec![FlowMod::Delete {
            table: Some(0),
            priority: Some(290),
            matches: vec![Match::InPort {
                port: PortRef::Name("n1p1".into())
            }],
            strict: true,
            cookie: None
        }]
    );
    let m = run(&["del-flows", "br0", "cookie=0x10/0xff"]);
    assert!(matches!(
        &m[..],
        [FlowMod::Delete {
            table: None,
            strict: false,
            cookie: Some((0x10, 0xff)),
            ..
        }]
    ));
    let m = run(&["del-flows", "br0"]);
    assert_eq!(
        m,
        vec![FlowMod::Delete {
            table: None,
            priority: None,
            matches: vec![],
            strict: false,
            cookie: None
        }]
    );
    assert!(fake.flows().is_empty());
    let m = run(&["set-miss", "br0", "10", "normal"]);
    assert_eq!(
        m,
        vec![FlowMod::SetMiss {
            table: 10,
            miss: TableMiss::Normal
        }]
    );

    // A bundle is one FlowMods: all lines or none.
    let dir = temp_dir("bundle-f");
    let file = dir.join("changes.txt");
    std::fs::write(
        &file,
        "add table=0,priority=5,arp,actions=normal\n\
         flow delete_strict table=0,priority=5,ip\n\
         modify table=0,arp,actions=drop\n",
    )
    .unwrap();
    let m = run(&["bundle", "br0", file.to_str().unwrap()]);
    assert_eq!(m.len(), 3);
    assert!(matches!(m[1], FlowMod::Delete { strict: true, .. }));
    std::fs::write(
        &file,
        "add table=0,priority=5,arp,actions=normal\nfrobnicate\n",
    )
    .unwrap();
    let before = fake.flow_mods().len();
    let (code, _, err) = vxctl(&fake.path, &["bundle", "br0", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("changes.txt:2: column 1: "), "{err}");
    assert_eq!(fake.flow_mods().len(), before);
}

#[test]
fn dump_ports_and_dump_tables() {
    let fake = with_flows("ports");
    fake.lock().stats = StatsRepr {
        table_version: 3,
        ports: vec![
            PortCounters {
                no: 3,
                name: "n1p1".into(),
                rx_packets: 9,
                rx_bytes: 882,
                tx_packets: 4,
                tx_bytes: 392,
                tx_errors: 1,
            },
            PortCounters {
                no: 1,
                name: "vxlan0".into(),
                ..PortCounters::default()
            },
        ],
        ..StatsRepr::default()
    };
    let (code, out, _) = vxctl(&fake.path, &["dump-ports", "br0"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "br0: 2 ports\n\
         \x20 port 1 (vxlan0): rx pkts=0, bytes=0, drop=?, errs=?; tx pkts=0, bytes=0, errs=0\n\
         \x20 port 3 (n1p1): rx pkts=9, bytes=882, drop=?, errs=?; tx pkts=4, bytes=392, errs=1\n"
    );
    let (_, one, _) = vxctl(&fake.path, &["dump-ports", "br0", "n1p1"]);
    assert_eq!(one.lines().count(), 2);
    let (code, _, err) = vxctl(&fake.path, &["dump-ports", "br0", "7"]);
    assert_eq!(code, 1);
    assert!(err.contains("no port 7 on br0"), "{err}");

    {
        let mut i = fake.lock();
        i.table_counters.insert(0, (100, 90));
        i.misses.insert(10, TableMiss::Normal);
    }
    let (code, out, _) = vxctl(&fake.path, &["dump-tables", "br0"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "table 0: active=3, lookup=100, matched=90, miss=drop\n\
         table 10: active=1, lookup=0, matched=0, miss=normal\n"
    );
}

#[test]
fn trace_prints_steps_actions_and_verdict() {
    let fake = with_flows("trace");
    fake.lock().trace = Some(TraceRepr {
        steps: vec![
            TraceStep {
                table: 0,
                flow: Some(flow("table=0,priority=300,in_port=n1p1,dl_src=0a:58:0a:01:01:02,ip,nw_src=10.1.1.2,actions=goto_table:10")),
                note: String::new(),
                depth: 0,
            },
            TraceStep {
                table: 10,
                flow: Some(flow("table=10,priority=0,actions=normal")),
                note: "normal: routed to node n2 (198.51.100.2), vni 10".into(),
                depth: 1,
            },
        ],
        actions: vec!["goto_table:10".into(), "normal".into()],
        verdict: "encapsulate to 198.51.100.2, vni 10".into(),
    });
    let (code, out, err) = vxctl(
        &fake.path,
        &[
            "trace",
            "br0",
            "in_port=n1p1,dl_src=0a:58:0a:01:01:02,ip,nw_src=10.1.1.2,nw_dst=10.1.2.3",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (port, matches) = fake.lock().traces[0].clone();
    assert_eq!(port, PortRef::Name("n1p1".into()));
    assert_eq!(matches.len(), 4);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Flow: ip,in_port=n1p1,dl_src=0a:58:0a:01:01:02,nw_src=10.1.1.2,nw_dst=10.1.2.3"
    );
    assert!(lines.contains(&"table 0: priority=300,ip,in_port=n1p1,dl_src=0a:58:0a:01:01:02,nw_src=10.1.1.2 actions=goto_table:10"), "{out}");
    assert!(
        lines.contains(&"    table 10: priority=0 actions=NORMAL"),
        "{out}"
    );
    assert!(
        lines.contains(&"        normal: routed to node n2 (198.51.100.2), vni 10"),
        "{out}"
    );
    assert!(out.ends_with("Datapath actions: goto_table:10, normal\nVerdict: encapsulate to 198.51.100.2, vni 10\n"), "{out}");
    let (code, out, _) = vxctl(&fake.path, &["--json", "trace", "br0", "in_port=3"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<TraceRepr>(&out).unwrap().steps.len(),
        2
    );
}

#[test]
fn monitor_prints_events_until_the_daemon_goes_away() {
    let fake = start("monitor");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vxctl"))
        .arg("--socket")
        .arg(&fake.path)
        .args(["monitor", "br0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(fake.wait_for(Duration::from_secs(10), |_| true));
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while fake.monitors() == 0 {
        assert!(
            std::time::Instant::now() < end,
            "vxctl monitor did not subscribe"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut c = Client::connect(&fake.path, "test").unwrap();
    let mods = vec![
        add("table=0,priority=5,arp,actions=normal"),
        FlowMod::Delete {
            table: None,
            priority: None,
            matches: vec![],
            strict: false,
            cookie: None,
        },
    ];
    c.call(&Request::FlowMods { mods }).unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "added priority=5,arp actions=NORMAL");
    let second = lines.next().unwrap().unwrap();
    assert_eq!(second, "removed priority=5,arp actions=NORMAL");
    drop(fake);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("vxswitchd closed the connection"), "{err}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// An ICMP echo request from n1p1 (10.1.1.2) to 10.1.2.3, as the pod sends it.
fn echo() -> Vec<u8> {
    let mut f = vec![
        0x0a, 0x58, 0x0a, 0x01, 0x01, 0x01, 0x0a, 0x58, 0x0a, 0x01, 0x01, 0x02, 0x08, 0x00,
    ];
    let mut ip = vec![
        0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 1, 1, 2, 10, 1, 2, 3,
    ];
    let sum = pcap::checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend(ip);
    f.extend([8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
    f
}

/// The fake's frames: the echo on the pod port (rx), then encapsulated on the tunnel (tx).
fn frames() -> Vec<CapturedFrame> {
    let pod = CapturedFrame {
        ts_ns: 1_700_000_000_000_001_000,
        port: 3,
        direction: Direction::Rx,
        len: 42,
        hex: hex(&echo()),
        local: None,
        peer: None,
    };
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 10, 0];
    vx.extend(echo());
    let tun = CapturedFrame {
        ts_ns: 1_700_000_000_000_050_000,
        port: 1,
        direction: Direction::Tx,
        len: vx.len() as u32,
        hex: hex(&vx),
        local: Some("198.51.100.1:4789".parse().unwrap()),
        peer: Some("198.51.100.2:4789".parse().unwrap()),
    };
    vec![pod, tun]
}

#[test]
fn capture_writes_a_pcap_that_tcpdump_reads() {
    let fake = start("capture");
    fake.lock().frames = frames();
    let dir = temp_dir("capture-f");
    let file = dir.join("t.pcap");
    let (code, out, err) = vxctl(
        &fake.path,
        &[
            "capture",
            "vxlan0",
            "-w",
            file.to_str().unwrap(),
            "--count",
            "1",
            "--filter",
            "icmp",
        ],
    );
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("1 frames captured"), "{err}");
    let (port, count, filter) = fake.lock().captures[0].clone();
    assert_eq!(
        (port, count, filter),
        (
            PortRef::Name("vxlan0".into()),
            Some(1),
            vec![Match::DlType { value: 0x0800 }, Match::NwProto { value: 1 }]
        )
    );
    let bytes = std::fs::read(&file).unwrap();
    let p = pcap::read(&bytes).unwrap();
    assert_eq!(
        (p.magic, p.version, p.snaplen, p.linktype),
        (0xa1b2c3d4, (2, 4), 65535, 1)
    );
    assert_eq!(p.records.len(), 1);
    let (secs, usecs, data, orig) = &p.records[0];
    assert_eq!((*secs, *usecs), (1_700_000_000, 50));
    assert_eq!(data.len(), 14 + 20 + 8 + 8 + 42);
    assert_eq!(*orig as usize, data.len());
    // Outer IPv4 from this node to the peer, checksum right.
    assert_eq!(&data[26..34], &[198, 51, 100, 1, 198, 51, 100, 2]);
    assert_eq!(pcap::checksum(&data[14..34]), 0);

    if let Ok(o) = Command::new("tcpdump").arg("-nr").arg(&file).output() {
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            text.contains("198.51.100.1.4789 > 198.51.100.2.4789: VXLAN"),
            "{text}"
        );
        assert!(text.contains("vni 10"), "{text}");
        assert!(
            text.contains("10.1.1.2 > 10.1.2.3: ICMP echo request"),
            "{text}"
        );
    } else {
        eprintln!("tcpdump not found: the pcap was checked by reading it back only");
    }

    // -w - writes the pcap to stdout.
    let out = Command::new(env!("CARGO_BIN_EXE_vxctl"))
        .arg("--socket")
        .arg(&fake.path)
        .args(["capture", "3", "-w", "-", "-c", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let p = pcap::read(&out.stdout).unwrap();
    assert_eq!(p.records[0].2, echo());

    // Without -w: one line per frame.
    let (code, out, _) = vxctl(&fake.path, &["capture", "n1p1", "--count", "1"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "22:13:20.000001 n1p1 rx 42: 0a:58:0a:01:01:02 > 0a:58:0a:01:01:01, IPv4, 10.1.1.2 > 10.1.2.3: ICMP echo request\n"
    );
    let (_, out, _) = vxctl(&fake.path, &["--json", "capture", "vxlan0", "--count", "1"]);
    assert_eq!(
        serde_json::from_str::<CapturedFrame>(out.trim()).unwrap(),
        frames()[1]
    );
}

#[test]
fn a_capture_cut_short_leaves_a_valid_pcap() {
    let fake = start("capcut");
    fake.lock().frames = frames();
    let dir = temp_dir("capcut-f");
    let file = dir.join("t.pcap");
    // No --count: the fake sends the one tunnel frame, then nothing until it goes away.
    let child = Command::new(env!("CARGO_BIN_EXE_vxctl"))
        .arg("--socket")
        .arg(&fake.path)
        .args(["capture", "vxlan0", "-w"])
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&file).map_or(0, |m| m.len()) < 24 + 16 + 92 {
        assert!(std::time::Instant::now() < end, "no frame written");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(fake);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("closed the connection"));
    let p = pcap::read(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(p.records.len(), 1);
}

#[test]
fn help_flows_prints_the_syntax() {
    let (code, out, _) = vxctl(Path::new("/nonexistent"), &["help-flows"]);
    assert_eq!(code, 0);
    for word in [
        "in_port=PORT",
        "nw_dst=IP",
        "goto_table:N",
        "resubmit(,N)",
        "delete_strict",
        "set-miss",
    ] {
        assert!(out.contains(word), "{word} missing from\n{out}");
    }
    let (_, help, _) = vxctl(Path::new("/nonexistent"), &["--help"]);
    assert!(help.contains("vxctl help-flows"), "{help}");
}
