//! Flow tables end to end, programmed with vxctl in the syntax OVS admins type.

use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch_e2e::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn lab2(prefix: &str) -> LabGuard {
    lab(LabSpec {
        name: unique_name(prefix),
        nodes: 2,
        pods: 2,
        ipv6: false,
        ..LabSpec::default()
    })
}

#[test]
fn a_drop_flow_stops_ping_counts_every_packet_and_deleting_it_restores_traffic() {
    let lab = lab2("fdrop");
    let flow = "table=0,priority=1000,in_port=n1p1,icmp,nw_dst=10.1.2.2,actions=drop";
    let (ok, out) = vxctl(&lab, "n1", &["add-flow", "br0", flow]);
    assert!(ok, "{out}");
    let (ok, out) = ping(&lab, "n1p1", ip("10.1.2.2"), 5, &[]);
    assert!(
        !ok && out.contains("5 packets transmitted, 0 received"),
        "{out}"
    );
    assert_eq!(
        n_packets(&lab, "n1", &["priority=1000", "nw_dst=10.1.2.2"]),
        5,
        "one count per ping"
    );
    let (ok, out) = vxctl(&lab, "n1", &["dump-tables", "br0"]);
    assert!(ok && out.contains("table 0"), "{out}");
    let (ok, out) = vxctl(
        &lab,
        "n1",
        &[
            "del-flows",
            "--strict",
            "br0",
            "table=0,priority=1000,in_port=n1p1,icmp,nw_dst=10.1.2.2",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = ping(&lab, "n1p1", ip("10.1.2.2"), 3, &[]);
    assert!(ok, "traffic is back:\n{out}");
    let stats = lab.ctl("n1").unwrap().stats().unwrap();
    assert_eq!(counter(&stats, "flow_drop"), 5);
}

#[test]
fn a_resubmit_chain_with_set_field_rewrites_addresses_both_ways() {
    let lab = lab2("fset");
    // n1p1 talks to a virtual address 10.1.1.200 that the flows map to n1p2 (10.1.1.3).
    let flows = "\
table=0,priority=500,in_port=n1p1,icmp,nw_dst=10.1.1.200,actions=set_field:10.1.1.3->nw_dst,set_field:0a:58:0a:01:01:03->dl_dst,resubmit(,5)
table=5,priority=10,icmp,actions=output:n1p2
table=0,priority=500,in_port=n1p2,icmp,nw_src=10.1.1.3,nw_dst=10.1.1.2,actions=set_field:10.1.1.200->nw_src,resubmit(,6)
table=6,priority=10,actions=normal
";
    let file = std::env::temp_dir().join(format!("{}-flows.txt", lab.name));
    std::fs::write(&file, flows).unwrap();
    let (ok, out) = vxctl(&lab, "n1", &["add-flows", "br0", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(ok, "{out}");
    let p = lab.pod("n1p1").unwrap().netns.clone();
    let (ok, out) = run_bounded(
        std::process::Command::new("ip").args([
            "-n",
            &p,
            "neigh",
            "replace",
            "10.1.1.200",
            "lladdr",
            "0a:58:0a:01:01:99",
            "dev",
            "eth0",
        ]),
        Duration::from_secs(5),
    );
    assert!(ok, "{out}");
    let (ok, out) = ping(&lab, "n1p1", ip("10.1.1.200"), 3, &[]);
    assert!(ok, "replies come back from the virtual address:\n{out}");
    assert_eq!(n_packets(&lab, "n1", &["table=5"]), 3);
    assert_eq!(n_packets(&lab, "n1", &["table=6"]), 3);
    let (ok, out) = vxctl(
        &lab,
        "n1",
        &[
            "trace",
            "br0",
            "in_port=n1p1,icmp,nw_src=10.1.1.2,nw_dst=10.1.1.200",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("table=5") || out.contains("table 5"),
        "the trace visits table 5:\n{out}"
    );
    assert!(out.contains("n1p2"), "and ends at n1p2:\n{out}");
}

#[test]
fn a_bundle_with_one_bad_line_changes_nothing() {
    let lab = lab2("fbun");
    let (_, before) = vxctl(&lab, "n1", &["dump-flows", "--no-stats", "br0"]);
    for bundle in [
        // A syntax error on the second line.
        "flow add table=0,priority=700,in_port=n1p1,icmp,actions=drop\nflow add table=0,priority=701,nw_dst=10.1.2.2,actions=drop\n",
        // A line the switch refuses: no such port.
        "flow add table=0,priority=700,in_port=n1p1,icmp,actions=drop\nflow add table=0,priority=702,ip,actions=output:nosuchport\n",
    ] {
        let file = std::env::temp_dir().join(format!("{}-bundle.txt", lab.name));
        std::fs::write(&file, bundle).unwrap();
        let (ok, out) = vxctl(&lab, "n1", &["bundle", "br0", file.to_str().unwrap()]);
        let _ = std::fs::remove_file(&file);
        assert!(!ok, "the bundle is refused:\n{out}");
        let (_, after) = vxctl(&lab, "n1", &["dump-flows", "--no-stats", "br0"]);
        assert_eq!(before, after, "no flow changed");
    }
    let (ok, out) = ping(&lab, "n1p1", ip("10.1.2.2"), 2, &[]);
    assert!(ok, "{out}");
}

#[test]
fn tenants_are_isolated_admin_reaches_all_and_spoofing_is_dropped() {
    let lab = lab(LabSpec {
        name: unique_name("tnt"),
        nodes: 2,
        pods: 3,
        ipv6: false,
        multitenant: true,
        pod_vnids: vec![10, 20, 0],
        ..LabSpec::default()
    });
    // Pods: nXp1 VNID 10 (10.1.X.2), nXp2 VNID 20 (10.1.X.3), nXp3 VNID 0 (10.1.X.4).
    for (from, to, should) in [
        ("n1p1", "10.1.2.2", true),  // 10 -> 10 across nodes
        ("n1p2", "10.1.2.3", true),  // 20 -> 20
        ("n1p1", "10.1.2.3", false), // 10 -> 20 across nodes
        ("n1p1", "10.1.1.3", false), // 10 -> 20 on one node
        ("n1p3", "10.1.2.2", true),  // admin reaches 10
        ("n1p3", "10.1.2.3", true),  // and 20
        ("n2p2", "10.1.1.4", true),  // and is reached by everyone
    ] {
        let (ok, out) = ping(&lab, from, ip(to), 2, &[]);
        assert_eq!(ok, should, "{from} -> {to}:\n{out}");
    }
    let n2 = lab.ctl("n2").unwrap().stats().unwrap();
    assert!(
        counter(&n2, "vni_mismatch") >= 2,
        "the receiving node dropped the cross-tenant pings"
    );

    // A spoofed source IP and a spoofed source MAC are dropped by port security.
    let ns = lab.pod("n1p1").unwrap().netns.clone();
    let before = counter(&lab.ctl("n1").unwrap().stats().unwrap(), "flow_drop");
    let sh = |args: &[&str]| {
        let (ok, out) = run_bounded(
            std::process::Command::new("ip")
                .arg("-n")
                .arg(&ns)
                .args(args),
            Duration::from_secs(5),
        );
        assert!(ok, "{args:?}: {out}");
    };
    sh(&["addr", "add", "10.1.1.99/24", "dev", "eth0"]);
    let (ok, out) = ping(&lab, "n1p1", ip("10.1.2.2"), 2, &["-I", "10.1.1.99"]);
    assert!(!ok, "spoofed source IP:\n{out}");
    sh(&["addr", "del", "10.1.1.99/24", "dev", "eth0"]);
    sh(&["link", "set", "dev", "eth0", "address", "0a:58:0a:01:01:77"]);
    let (ok, out) = ping(&lab, "n1p1", ip("10.1.2.2"), 2, &[]);
    assert!(!ok, "spoofed source MAC:\n{out}");
    sh(&[
        "link",
        "set",
        "dev",
        "eth0",
        "address",
        &lab.pod("n1p1").unwrap().mac,
    ]);
    let after = counter(&lab.ctl("n1").unwrap().stats().unwrap(), "flow_drop");
    assert!(
        after >= before + 4,
        "spoofed frames are counted as flow drops ({before} -> {after})"
    );
    let (ok, out) = ping(&lab, "n1p1", ip("10.1.2.2"), 2, &[]);
    assert!(ok, "with its own MAC and IP the pod talks again:\n{out}");
}
