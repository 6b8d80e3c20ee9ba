//! End-to-end tests of the core: two vxswitch nodes with two pods each, in network namespaces.
//! Each test builds its own uniquely named lab and tears it down, also when it fails.

use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch_e2e::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn two_nodes(prefix: &str) -> LabGuard {
    lab(LabSpec {
        name: unique_name(prefix),
        nodes: 2,
        pods: 2,
        ipv6: false,
        ..LabSpec::default()
    })
}

fn netns(lab: &Lab, pod: &str) -> String {
    lab.pod(pod)
        .unwrap_or_else(|| panic!("no pod {pod}"))
        .netns
        .clone()
}

#[test]
fn pods_ping_on_one_node_and_across_nodes_and_reach_their_node() {
    let lab = two_nodes("ping");
    for (from, to) in [
        ("n1p1", "10.1.1.3"), // same node
        ("n1p1", "10.1.2.2"), // across nodes
        ("n2p2", "10.1.1.2"),
        ("n1p2", "10.1.1.1"), // the gateway, on vxhost0
        ("n1", "10.1.1.2"),   // the node reaches its pod through vxhost0
        ("n2", "10.1.1.3"),   // and remote pods through its switch
    ] {
        let (ok, out) = ping(&lab, from, ip(to), 3, &[]);
        assert!(ok, "{from} -> {to} failed:\n{out}");
    }
}

#[test]
fn tcp_transfer_of_100_mb_arrives_intact_on_one_node_and_across() {
    let lab = two_nodes("tcp");
    let mb = 100 << 20;
    let t = tcp_transfer(
        &netns(&lab, "n1p1"),
        &netns(&lab, "n1p2"),
        ip("10.1.1.3"),
        5001,
        mb,
        65536,
        Duration::from_secs(240),
    )
    .expect("same-node transfer");
    eprintln!("same node: 100 MB in {t:?}");
    let t = tcp_transfer(
        &netns(&lab, "n1p1"),
        &netns(&lab, "n2p1"),
        ip("10.1.2.2"),
        5002,
        mb,
        65536,
        Duration::from_secs(240),
    )
    .expect("cross-node transfer");
    eprintln!("across nodes: 100 MB in {t:?}");
    let t = tcp_transfer(
        &netns(&lab, "n2p2"),
        &netns(&lab, "n1p2"),
        ip("10.1.1.3"),
        5003,
        mb,
        1000,
        Duration::from_secs(240),
    )
    .expect("cross-node transfer, small writes");
    eprintln!("across nodes, 1000-byte writes: 100 MB in {t:?}");
}

#[test]
fn arp_is_answered_by_the_switch_and_never_crosses_the_underlay() {
    let lab = two_nodes("arp");
    let dir = std::env::temp_dir().join(format!("vx-{}", lab.name));
    let n1 = lab.node("n1").unwrap().netns.clone();
    // The switch announced the gateway when it attached the pods; forget it, so the pods ask.
    for pod in ["n1p1", "n2p2"] {
        let (ok, out) = run_bounded(
            std::process::Command::new("ip").args([
                "-n",
                &netns(&lab, pod),
                "neigh",
                "flush",
                "all",
            ]),
            Duration::from_secs(5),
        );
        assert!(ok, "ip neigh flush in {pod}: {out}");
    }
    let cap = Capture::start(&n1, "eth0", "udp port 4789", &dir);
    let (ok, out) = ping(&lab, "n1p1", ip("10.1.2.2"), 3, &[]);
    assert!(ok, "{out}");
    let (ok, out) = ping(&lab, "n2p2", ip("10.1.1.3"), 3, &[]);
    assert!(ok, "{out}");
    let frames = cap.finish();
    let _ = std::fs::remove_dir_all(&dir);

    let inner: Vec<(u32, Vec<u8>)> = frames
        .iter()
        .filter_map(|f| vxlan_inner(f, 4789))
        .map(|(v, i)| (v, i.to_vec()))
        .collect();
    assert!(
        inner.len() >= 12,
        "expected the 12 echo packets encapsulated, saw {} VXLAN frames",
        inner.len()
    );
    for (vni, f) in &inner {
        assert_eq!(*vni, 1, "nodes default to VNI 1");
        assert!(f.len() >= 14);
        assert_ne!(f[12..14], [0x08, 0x06], "an ARP frame crossed the underlay");
        assert_eq!(f[12..14], [0x08, 0x00], "only IPv4 expected");
    }
    let stats = lab.ctl("n1").unwrap().stats().unwrap();
    assert!(
        counter(&stats, "arp_replies") >= 1,
        "the switch answered the pod's ARP"
    );
}

#[test]
fn path_mtu_and_ttl_get_icmp_from_the_gateway() {
    let lab = two_nodes("mtu");
    let p = netns(&lab, "n1p1");
    let (ok, out) = run_bounded(
        std::process::Command::new("ip")
            .args(["-n", &p, "link", "set", "dev", "eth0", "mtu", "1500"]),
        Duration::from_secs(5),
    );
    assert!(ok, "{out}");
    // 1472 bytes of data + 8 ICMP + 20 IP = 1500 > 1450, with DF set.
    let (ok, out) = ping(&lab, "n1p1", ip("10.1.2.2"), 1, &["-M", "do", "-s", "1472"]);
    assert!(
        !ok,
        "a 1500-byte DF packet must not cross a 1450 tunnel:\n{out}"
    );
    assert!(
        out.contains("mtu = 1450"),
        "expected fragmentation needed with MTU 1450:\n{out}"
    );
    assert!(out.contains("From 10.1.1.1"), "the gateway answers:\n{out}");
    // A packet that fits still crosses.
    let (ok, out) = ping(&lab, "n1p1", ip("10.1.2.2"), 1, &["-M", "do", "-s", "1422"]);
    assert!(ok, "a 1450-byte packet fits:\n{out}");
    let (ok, out) = ping(&lab, "n1p1", ip("10.1.2.2"), 1, &["-t", "1"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("Time to live exceeded"),
        "expected time exceeded:\n{out}"
    );
    let stats = lab.ctl("n1").unwrap().stats().unwrap();
    assert!(counter(&stats, "icmp_frag_needed_sent") >= 1);
    assert!(counter(&stats, "icmp_time_exceeded_sent") >= 1);
    assert!(counter(&stats, "mtu_exceeded") >= 1);
    assert!(counter(&stats, "ttl_exceeded") >= 1);
}

#[test]
fn restarted_switch_keeps_pod_interfaces_and_ping_resumes() {
    let mut lab = two_nodes("rst");
    let p = netns(&lab, "n1p1");
    let mut pinger = lab.command("n1p1", "ping");
    pinger.args(["-n", "-c", "60", "-i", "0.2", "-W", "1", "10.1.2.2"]);
    let handle = std::thread::spawn(move || run_bounded(&mut pinger, Duration::from_secs(30)));
    std::thread::sleep(Duration::from_secs(2));
    let old = lab.switch_pid("n1");
    lab.restart_switch("n1").expect("restart vxswitchd");
    assert_ne!(old, lab.switch_pid("n1"), "a new vxswitchd runs");
    // The pod kept its interface, address and route through the restart.
    let (ok, out) = run_bounded(
        std::process::Command::new("ip").args(["-n", &p, "-br", "addr", "show", "dev", "eth0"]),
        Duration::from_secs(5),
    );
    assert!(
        ok && out.contains("10.1.1.2/24"),
        "pod interface after restart:\n{out}"
    );
    let (_, out) = handle.join().unwrap();
    let replies: Vec<u32> = out
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        replies.iter().any(|&s| s <= 8),
        "ping worked before the restart:\n{out}"
    );
    assert!(
        replies.iter().filter(|&&s| s > 50).count() >= 5,
        "ping resumed after the restart:\n{out}"
    );
}

#[test]
fn pods_reach_the_outside_through_their_node_masqueraded() {
    let lab = lab(LabSpec {
        name: unique_name("masq"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        switch_args: vec!["--masquerade".into()],
        ..LabSpec::default()
    });
    // n2's underlay address is outside the cluster network: the pod's packets leave through
    // n1's own stack, with n1's address as their source.
    let dir = std::env::temp_dir().join(format!("vx-{}", lab.name));
    let n2 = lab.node("n2").unwrap().netns.clone();
    let cap = Capture::start(&n2, "eth0", "icmp", &dir);
    let (ok, out) = ping(&lab, "n1p1", ip("198.51.100.2"), 3, &[]);
    let frames = cap.finish();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{out}");
    let requests: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| f.len() > 34 + 1 && f[12..14] == [8, 0] && f[34] == 8)
        .collect();
    assert_eq!(requests.len(), 3, "three echo requests reached n2");
    for f in requests {
        assert_eq!(f[26..30], [198, 51, 100, 1], "masqueraded to n1's address");
    }
}
