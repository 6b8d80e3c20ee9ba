//! End-to-end tests of IPv6 pods: a dual-stack lab (`vxlab up --ipv6 on`) of two vxswitch
//! nodes with two pods each; every node owns a prefix fd00:10:1:<i>::/64 (gateway ::1), every
//! pod an address in it. Neighbour discovery is answered by the switch; IPv6 across nodes is
//! routed through the gateway and the VXLAN overlay.

use std::net::Ipv6Addr;
use std::time::Duration;

use vxswitch_e2e::*;

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn dual_stack(prefix: &str) -> LabGuard {
    lab(LabSpec {
        name: unique_name(prefix),
        nodes: 2,
        pods: 2,
        ipv6: true,
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
fn pods_ping6_on_one_node_and_across_nodes() {
    let lab = dual_stack("v6png");
    assert_eq!(lab.pod("n2p1").unwrap().ip6, Some(ip6("fd00:10:1:2::2")));
    for (from, to) in [
        ("n1p1", "fd00:10:1:1::3"), // same node: neighbour discovery answered by the switch
        ("n1p1", "fd00:10:1:2::2"), // across nodes: routed via the gateway
        ("n2p2", "fd00:10:1:1::2"),
    ] {
        let (ok, out) = ping6(&lab, from, ip6(to), 3, &[]);
        assert!(ok, "{from} -> {to} failed:\n{out}");
    }
    // IPv4 works as before in the same pods.
    let (ok, out) = ping(&lab, "n1p1", "10.1.2.2".parse().unwrap(), 2, &[]);
    assert!(ok, "IPv4 in a dual-stack lab:\n{out}");

    // The gateway answered the pods' solicitations: their neighbour entry is the gateway MAC.
    let out = lab
        .command("n1p1", "ip")
        .args(["-6", "neigh", "show", "fd00:10:1:1::1"])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&out.stdout);
    assert!(neigh.contains("lladdr 0a:58:0a:01:01:01 router"), "{neigh}");
    let stats = lab.ctl("n1").unwrap().stats().unwrap();
    assert!(counter(&stats, "nd_advertisements") >= 1);
}

#[test]
fn pods_reach_the_ipv6_gateway_and_the_node_reaches_pods_over_ipv6() {
    let lab = dual_stack("v6host");
    for (from, to) in [
        ("n1p1", "fd00:10:1:1::1"), // the gateway, on vxhost0
        ("n1", "fd00:10:1:1::2"),   // the node reaches its pod through vxhost0
        ("n1", "fd00:10:1:2::3"),   // and a remote pod through its switch
        ("n2", "fd00:10:1:1::3"),
    ] {
        let (ok, out) = ping6(&lab, from, ip6(to), 3, &[]);
        assert!(ok, "{from} -> {to} failed:\n{out}");
    }
    // vxhost0 holds the gateway address; remote prefixes are on-link through it.
    let out = lab
        .command("n1", "ip")
        .args(["-6", "route", "show", "dev", "vxhost0"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&out.stdout);
    assert!(routes.contains("fd00:10:1:2::/64"), "{routes}");
    // The node's neighbour entry for the remote pod is the gateway MAC (answered by the
    // switch), for its own pod the pod's MAC.
    let out = lab
        .command("n1", "ip")
        .args(["-6", "neigh", "show", "dev", "vxhost0"])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&out.stdout);
    assert!(
        neigh
            .lines()
            .any(|l| l.starts_with("fd00:10:1:2::3 ") && l.contains("lladdr 0a:58:0a:01:01:01")),
        "{neigh}"
    );
    // A node added later gets its route on vxhost0; a deleted one loses it.
    let routes6 = || {
        let out = lab
            .command("n1", "ip")
            .args(["-6", "route", "show", "dev", "vxhost0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let (ok, out) = vxctl(
        &lab,
        "n1",
        &[
            "add-node",
            "n9",
            "--vtep",
            "198.51.100.9",
            "--vtep-mac",
            "02:f1:00:00:00:09",
            "--subnet",
            "10.1.9.0/24",
            "--subnet6",
            "fd00:10:1:9::/64",
        ],
    );
    assert!(ok, "{out}");
    assert!(routes6().contains("fd00:10:1:9::/64"), "{}", routes6());
    let (ok, out) = vxctl(&lab, "n1", &["del-node", "n9"]);
    assert!(ok, "{out}");
    let after = routes6();
    assert!(
        !after.contains("fd00:10:1:9::") && after.contains("fd00:10:1:2::/64"),
        "{after}"
    );
    let pod_mac = lab.pod("n1p1").unwrap().mac.clone();
    assert!(
        neigh
            .lines()
            .any(|l| l.starts_with("fd00:10:1:1::2 ") && l.contains(&format!("lladdr {pod_mac}"))),
        "{neigh}"
    );
}

#[test]
fn hop_limit_1_across_nodes_gets_time_exceeded_from_the_gateway() {
    let lab = dual_stack("v6ttl");
    // -t 1: the gateway is the first hop; it answers "time exceeded" from fd00:10:1:1::1.
    let (ok, out) = ping6(&lab, "n1p1", ip6("fd00:10:1:2::2"), 1, &["-t", "1"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("fd00:10:1:1::1") && out.to_lowercase().contains("time exceeded"),
        "{out}"
    );
}

#[test]
fn ipv6_tcp_transfer_across_nodes_arrives_intact() {
    let lab = dual_stack("v6tcp");
    let mb = 20 << 20;
    let t = tcp_transfer(
        &netns(&lab, "n1p1"),
        &netns(&lab, "n2p1"),
        ip6("fd00:10:1:2::2"),
        5101,
        mb,
        65536,
        Duration::from_secs(120),
    )
    .expect("cross-node IPv6 transfer");
    eprintln!("across nodes over IPv6: 20 MB in {t:?}");
    let t = tcp_transfer(
        &netns(&lab, "n2p2"),
        &netns(&lab, "n1p2"),
        ip6("fd00:10:1:1::3"),
        5102,
        mb,
        1000,
        Duration::from_secs(120),
    )
    .expect("cross-node IPv6 transfer, small writes");
    eprintln!("across nodes over IPv6, 1000-byte writes: 20 MB in {t:?}");
}

/// Outer UDP checksums of VXLAN over IPv6 in captured Ethernet frames, by source address.
fn udp6_checksums(frames: &[Vec<u8>], port: u16) -> Vec<(Ipv6Addr, u16)> {
    frames
        .iter()
        .filter(|f| f.len() >= 14 + 40 + 8 && f[12..14] == [0x86, 0xdd] && f[14 + 6] == 17)
        .filter(|f| u16::from_be_bytes([f[56], f[57]]) == port)
        .map(|f| {
            let src: [u8; 16] = f[22..38].try_into().unwrap();
            (Ipv6Addr::from(src), u16::from_be_bytes([f[60], f[61]]))
        })
        .collect()
}

#[test]
fn a_kernel_vxlan_node_with_udp6zerocsumtx_talks_to_a_vxswitch_node_over_ipv6() {
    let lab = lab(LabSpec {
        name: unique_name("v6ul"),
        nodes: 2,
        pods: 1,
        kinds: vec![Kind::Vxswitch, Kind::Kernel],
        ipv6: false,
        underlay6: true,
        ..LabSpec::default()
    });
    assert_eq!(lab.node("n2").unwrap().vtep6, Some(ip6("2001:db8::2")));
    let dir = std::env::temp_dir().join(format!("vx-{}", lab.name));
    let n1 = lab.node("n1").unwrap().netns.clone();
    let cap = Capture::start(&n1, "eth0", "ip6 and udp port 4789", &dir);
    for (from, to) in [("n1p1", "10.1.2.2"), ("n2p1", "10.1.1.2")] {
        let (ok, out) = ping(&lab, from, to.parse().unwrap(), 3, &[]);
        assert!(ok, "{from} -> {to} over the IPv6 underlay failed:\n{out}");
    }
    let frames = cap.finish();
    let _ = std::fs::remove_dir_all(&dir);
    let sums = udp6_checksums(&frames, 4789);
    let from_kernel: Vec<u16> = sums
        .iter()
        .filter(|(s, _)| *s == ip6("2001:db8::2"))
        .map(|&(_, c)| c)
        .collect();
    assert!(
        from_kernel.len() >= 6,
        "the kernel node's VXLAN over IPv6: {sums:?}"
    );
    assert!(
        from_kernel.iter().all(|&c| c == 0),
        "udp6zerocsumtx sends a zero checksum: {from_kernel:?}"
    );
    // vxswitch accepted every one of them (a zero-checksum drop would have lost the pings),
    // and a TCP stream crosses both ways intact.
    let pod = |p: &str| lab.pod(p).unwrap().netns.clone();
    tcp_transfer(
        &pod("n1p1"),
        &pod("n2p1"),
        "10.1.2.2".parse::<std::net::Ipv4Addr>().unwrap(),
        5201,
        8 << 20,
        65536,
        Duration::from_secs(60),
    )
    .expect("vxswitch pod -> kernel pod over the IPv6 underlay");
    tcp_transfer(
        &pod("n2p1"),
        &pod("n1p1"),
        "10.1.1.2".parse::<std::net::Ipv4Addr>().unwrap(),
        5202,
        8 << 20,
        65536,
        Duration::from_secs(60),
    )
    .expect("kernel pod -> vxswitch pod over the IPv6 underlay");
}
