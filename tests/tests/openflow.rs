//! OpenFlow end to end: the real, unchanged `ovs-ofctl` (Debian's openvswitch-switch) drives
//! vxswitchd over RUNDIR/br0.mgmt, in OpenFlow 1.3 and 1.4, and sees the same flows as vxctl.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vxswitch_e2e::*;

const VERSIONS: [&str; 2] = ["OpenFlow13", "OpenFlow14"];

fn one_node(prefix: &str, pods: usize) -> LabGuard {
    lab(LabSpec {
        name: unique_name(prefix),
        nodes: 1,
        pods,
        ipv6: false,
        ..LabSpec::default()
    })
}

/// The node's OVS run directory, as `vxlab status` gives it.
fn rundir(lab: &Lab, node: &str) -> PathBuf {
    lab.ovs_rundir(node)
        .unwrap_or_else(|| panic!("{node} is not a vxswitch node: no ovs_rundir"))
}

/// `ovs-ofctl -O VERSION ARGS...` against the node's bridge.
fn ofctl(dir: &Path, version: &str, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("ovs-ofctl");
    cmd.env("OVS_RUNDIR", dir).args(["-O", version]).args(args);
    run_bounded(&mut cmd, Duration::from_secs(20))
}

fn ok(dir: &Path, version: &str, args: &[&str]) -> String {
    let (ok, out) = ofctl(dir, version, args);
    assert!(ok, "ovs-ofctl -O {version} {args:?} failed:\n{out}");
    out
}

/// Flow lines of `dump-flows --no-stats`, sorted.
fn flows(dir: &Path, version: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["dump-flows", "br0", "--no-stats"];
    args.extend_from_slice(extra);
    let out = ok(dir, version, &args);
    let mut v: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with("OFPST_FLOW") && !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn show_ports_and_tables_in_openflow_13_and_14() {
    let lab = one_node("ofshow", 1);
    let dir = rundir(&lab, "n1");
    assert!(
        dir.join("br0.mgmt").exists(),
        "no br0.mgmt in {}",
        dir.display()
    );
    for v in VERSIONS {
        let show = ok(&dir, v, &["show", "br0"]);
        assert!(show.contains("n_tables:255"), "{show}");
        for port in [" 1(vxlan0)", " 2(vxhost0)", " 3(n1p1)"] {
            assert!(show.contains(port), "{v}: show lacks {port}:\n{show}");
        }
        let desc = ok(&dir, v, &["dump-ports-desc", "br0"]);
        assert!(desc.contains(" 3(n1p1)"), "{desc}");
        let ports = ok(&dir, v, &["dump-ports", "br0"]);
        assert!(ports.contains("3 ports"), "{v}:\n{ports}");
        let one = ok(&dir, v, &["dump-ports", "br0", "3"]);
        assert!(
            one.contains("1 ports") && one.contains("port  3"),
            "{v}:\n{one}"
        );
        let tables = ok(&dir, v, &["dump-tables", "br0"]);
        assert!(
            tables.contains("table 0:") && tables.contains("254"),
            "{v}:\n{tables}"
        );
    }
}

#[test]
fn pod_traffic_shows_in_port_stats() {
    let lab = one_node("ofstats", 2);
    let dir = rundir(&lab, "n1");
    let ip2 = lab.nodes()[0].pods[1].ip;
    let (pinged, out) = ping(&lab, "n1p1", ip2, 3, &[]);
    assert!(pinged, "{out}");
    let stats = ok(&dir, "OpenFlow13", &["dump-ports", "br0", "3"]);
    let rx: u64 = stats
        .split("rx pkts=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no rx pkts in:\n{stats}"));
    assert!(rx >= 3, "port 3 received the pings:\n{stats}");
}

#[test]
fn a_peer_that_is_not_root_is_refused() {
    let lab = one_node("ofperm", 0);
    let dir = rundir(&lab, "n1");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .env("OVS_RUNDIR", &dir)
        .args(["ovs-ofctl", "-O", "OpenFlow13", "show", "br0"]);
    let (ran, out) = run_bounded(&mut cmd, Duration::from_secs(20));
    assert!(!ran, "nobody got in:\n{out}");
    assert!(
        out.contains("Permission denied") || out.contains("EPERM"),
        "{out}"
    );
    // Root still gets in.
    ok(&dir, "OpenFlow13", &["show", "br0"]);
}

/// Reads whole OpenFlow messages until EOF or the time limit.
fn read_msgs(s: &mut UnixStream) -> (Vec<Vec<u8>>, bool) {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let eof = loop {
        match s.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    let mut msgs = Vec::new();
    let mut at = 0;
    while at + 8 <= buf.len() {
        let len = u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize;
        if len < 8 || at + len > buf.len() {
            break;
        }
        msgs.push(buf[at..at + len].to_vec());
        at += len;
    }
    (msgs, eof)
}

#[test]
fn garbage_on_the_socket_gets_an_error_and_the_connection_closed() {
    let lab = one_node("ofjunk", 0);
    let dir = rundir(&lab, "n1");
    let sock = dir.join("br0.mgmt");
    // A hello, then a header whose length is under its own size.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&[4, 0, 0, 8, 0, 0, 0, 1]).unwrap();
    s.write_all(&[4, 2, 0, 4, 0, 0, 0, 2]).unwrap();
    let (msgs, eof) = read_msgs(&mut s);
    assert!(eof, "the connection is closed");
    assert_eq!(msgs[0][1], 0, "our hello first");
    let err = msgs.iter().find(|m| m[1] == 1).expect("an OFPT_ERROR");
    assert_eq!(&err[8..12], &[0, 1, 0, 6], "OFPBRC_BAD_LEN");
    // Random bytes instead of a hello: an error, closed.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (msgs, eof) = read_msgs(&mut s);
    assert!(eof, "closed after garbage");
    assert!(msgs.iter().any(|m| m[1] == 1), "an error before closing");
    // An unknown message type after hello: OFPBRC_BAD_TYPE with the request's first bytes.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&[4, 0, 0, 8, 0, 0, 0, 1]).unwrap();
    let mut unknown = vec![4, 99, 0, 80, 0, 0, 0, 7];
    unknown.extend((0..72).map(|i| i as u8));
    s.write_all(&unknown).unwrap();
    s.write_all(&[4, 2, 0, 8, 0, 0, 0, 8]).unwrap(); // echo: the session goes on
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (msgs, _) = read_msgs(&mut s);
    let err = msgs.iter().find(|m| m[1] == 1).expect("an OFPT_ERROR");
    assert_eq!(&err[4..8], &[0, 0, 0, 7], "the request's xid");
    assert_eq!(&err[8..12], &[0, 1, 0, 1], "OFPBRC_BAD_TYPE");
    assert_eq!(
        &err[12..],
        &unknown[..64],
        "the first 64 bytes of the request"
    );
    assert!(
        msgs.iter().any(|m| m[1] == 3),
        "the echo after it is answered"
    );
    // The switch still serves ovs-ofctl.
    ok(&dir, "OpenFlow14", &["show", "br0"]);
    let (_, stats) = vxctl(&lab, "n1", &["stats", "--json"]);
    assert!(stats.contains("openflow_errors"), "{stats}");
}

// ---- Flows (these need the flow codec of controlplane::openflow) ----

#[test]
fn flows_added_by_ovs_ofctl_and_by_vxctl_are_one_table() {
    let lab = one_node("offlows", 2);
    let dir = rundir(&lab, "n1");
    for v in VERSIONS {
        ok(&dir, v, &["del-flows", "br0"]);
        ok(
            &dir,
            v,
            &[
                "add-flow",
                "br0",
                "table=0,priority=100,ip,nw_dst=10.1.1.9,actions=drop",
            ],
        );
        let (done, out) = vxctl(&lab, "n1", &["dump-flows", "br0"]);
        assert!(
            done && out.contains("nw_dst=10.1.1.9"),
            "{v}: vxctl sees ovs-ofctl's flow:\n{out}"
        );
        let (done, out) = vxctl(
            &lab,
            "n1",
            &["add-flow", "br0", "table=1,priority=7,arp,actions=NORMAL"],
        );
        assert!(done, "{out}");
        let got = flows(&dir, v, &[]);
        assert!(
            got.iter()
                .any(|l| l.contains("table=1") && l.contains("arp")),
            "{v}: {got:?}"
        );
        assert!(
            got.iter().any(|l| l.contains("nw_dst=10.1.1.9")),
            "{v}: {got:?}"
        );

        // mod-flows, del-flows --strict, cookie masks.
        ok(
            &dir,
            v,
            &[
                "add-flow",
                "br0",
                "cookie=0x5,table=2,priority=10,ip,nw_src=10.1.1.2,actions=NORMAL",
            ],
        );
        ok(
            &dir,
            v,
            &[
                "add-flow",
                "br0",
                "cookie=0x6,table=2,priority=20,ip,nw_src=10.1.1.2,actions=NORMAL",
            ],
        );
        ok(
            &dir,
            v,
            &[
                "mod-flows",
                "br0",
                "table=2,ip,nw_src=10.1.1.2,actions=drop",
            ],
        );
        let t2 = flows(&dir, v, &["table=2"]);
        assert_eq!(t2.len(), 2, "{t2:?}");
        assert!(t2.iter().all(|l| l.ends_with("actions=drop")), "{t2:?}");
        ok(
            &dir,
            v,
            &[
                "--strict",
                "del-flows",
                "br0",
                "table=2,priority=10,ip,nw_src=10.1.1.2",
            ],
        );
        let t2 = flows(&dir, v, &["table=2"]);
        assert_eq!(t2.len(), 1, "strict removes one: {t2:?}");
        ok(&dir, v, &["del-flows", "br0", "cookie=0x6/-1"]);
        assert!(flows(&dir, v, &["table=2"]).is_empty());

        // Filters, --names, aggregate.
        let named = ok(&dir, v, &["dump-flows", "br0", "--names", "table=0"]);
        assert!(named.contains("nw_dst=10.1.1.9"), "{named}");
        let agg = ok(&dir, v, &["dump-aggregate", "br0"]);
        assert!(agg.contains("flow_count="), "{agg}");

        // check_overlap and a bad table id, as OVS reports them.
        let (added, out) = ofctl(
            &dir,
            v,
            &[
                "--strict",
                "add-flow",
                "br0",
                "check_overlap,table=0,priority=100,ip,actions=drop",
            ],
        );
        assert!(!added && out.contains("OFPFMFC_OVERLAP"), "{v}: {out}");
        // ovs-ofctl reads table=255 as "no table given" and adds into table 0, as with OVS.
        let before = flows(&dir, v, &["table=0"]).len();
        let (added, out) = ofctl(&dir, v, &["add-flow", "br0", "table=255,actions=drop"]);
        assert!(added, "{v}: {out}");
        assert_eq!(flows(&dir, v, &["table=0"]).len(), before + 1, "{v}");
    }
}

#[test]
fn replace_flows_and_diff_flows_with_and_without_bundles() {
    let lab = one_node("ofrepl", 1);
    let dir = rundir(&lab, "n1");
    let tmp = lab.dir().join("of-flows.txt");
    std::fs::write(
        &tmp,
        "table=0,priority=50,ip,nw_dst=10.1.1.5,actions=drop\n\
         table=0,priority=40,arp,actions=NORMAL\n",
    )
    .unwrap();
    let file = tmp.to_str().unwrap();
    for v in VERSIONS {
        ok(
            &dir,
            v,
            &["add-flow", "br0", "table=3,priority=1,actions=drop"],
        );
        ok(&dir, v, &["replace-flows", "br0", file]);
        let got = flows(&dir, v, &[]);
        assert_eq!(got.len(), 2, "{v}: {got:?}");
        let (same, out) = ofctl(&dir, v, &["diff-flows", "br0", file]);
        assert!(same && out.trim().is_empty(), "{v}: {out}");
        ok(
            &dir,
            v,
            &["add-flow", "br0", "table=3,priority=1,actions=drop"],
        );
        ok(&dir, v, &["--bundle", "replace-flows", "br0", file]);
        assert_eq!(flows(&dir, v, &[]).len(), 2);
        ok(&dir, v, &["--bundle", "add-flows", "br0", file]);
        // `bundle` reads a file whose lines name what they change ("flow add ...").
        let bundle = lab.dir().join("of-bundle.txt");
        std::fs::write(
            &bundle,
            "flow delete table=3\n\
             flow add table=3,priority=2,ip,nw_dst=10.1.1.6,actions=drop\n\
             flow modify table=3,ip,actions=NORMAL\n",
        )
        .unwrap();
        ok(&dir, v, &["bundle", "br0", bundle.to_str().unwrap()]);
        let t3 = flows(&dir, v, &["table=3"]);
        assert_eq!(t3.len(), 1, "{v}: {t3:?}");
        assert!(t3[0].ends_with("actions=NORMAL"), "{v}: {t3:?}");
    }
}

#[test]
fn groups_from_ovs_ofctl() {
    let lab = one_node("ofgrp", 2);
    let dir = rundir(&lab, "n1");
    for v in VERSIONS {
        ok(
            &dir,
            v,
            &[
                "add-group",
                "br0",
                "group_id=7,type=all,bucket=output:3,bucket=output:4",
            ],
        );
        let groups = ok(&dir, v, &["dump-groups", "br0"]);
        assert!(groups.contains("group_id=7,type=all"), "{v}: {groups}");
        // The errors OVS gives: adding it again, modifying one that is not there.
        let (done, out) = ofctl(
            &dir,
            v,
            &["add-group", "br0", "group_id=7,type=all,bucket=output:3"],
        );
        assert!(!done && out.contains("OFPGMFC_GROUP_EXISTS"), "{v}: {out}");
        let (done, out) = ofctl(
            &dir,
            v,
            &["mod-group", "br0", "group_id=8,type=all,bucket=output:3"],
        );
        assert!(!done && out.contains("OFPGMFC_UNKNOWN_GROUP"), "{v}: {out}");
        ok(&dir, v, &["del-groups", "br0", "group_id=7"]);
        let groups = ok(&dir, v, &["dump-groups", "br0"]);
        assert!(!groups.contains("group_id=7"), "{v}: {groups}");
    }
}

#[test]
fn monitor_watch_sees_changes_made_by_anyone() {
    let lab = one_node("ofmon", 1);
    let dir = rundir(&lab, "n1");
    for v in VERSIONS {
        let log = lab.dir().join(format!("monitor-{v}.txt"));
        let out = std::fs::File::create(&log).unwrap();
        let mut mon = Command::new("ovs-ofctl")
            .env("OVS_RUNDIR", &dir)
            .args(["-O", v, "monitor", "br0", "watch:"])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let text = || std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            wait_until(Duration::from_secs(10), || text().contains("reply")),
            "{v}: {}",
            text()
        );
        ok(
            &dir,
            v,
            &[
                "add-flow",
                "br0",
                "table=4,priority=9,ip,nw_dst=10.1.1.44,actions=drop",
            ],
        );
        let (done, o) = vxctl(
            &lab,
            "n1",
            &["add-flow", "br0", "table=4,priority=8,arp,actions=NORMAL"],
        );
        assert!(done, "{o}");
        ok(&dir, v, &["del-flows", "br0", "table=4"]);
        let seen = wait_until(Duration::from_secs(10), || {
            let t = text();
            t.contains("event=ADDED")
                && t.contains("10.1.1.44")
                && t.contains("event=DELETED")
                && t.contains("arp")
        });
        let _ = mon.kill();
        let _ = mon.wait();
        assert!(seen, "{v}: monitor output:\n{}", text());
    }
}
