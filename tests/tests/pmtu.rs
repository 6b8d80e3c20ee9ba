//! Path MTU (RFC 7348 section 4.3: a VTEP must not fragment its VXLAN packets), after the
//! vxlan cases of the kernel's `pmtu.sh`: the underlay route to the peer drops to MTU 1400;
//! pods get ICMP frag-needed reporting 1350, no fragment ever crosses the underlay, and TCP
//! between the pods completes at the lower MTU.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use vxswitch_e2e::*;

fn lower_route_mtu(lab: &Lab) {
    let n1 = lab.node("n1").unwrap().netns.clone();
    let (ok, out) = run_bounded(
        Command::new("ip").args([
            "-n",
            &n1,
            "route",
            "replace",
            "198.51.100.2/32",
            "dev",
            "eth0",
            "mtu",
            "1400",
        ]),
        Duration::from_secs(5),
    );
    assert!(ok, "ip route replace: {out}");
}

fn run(offload: bool, prefix: &str) {
    let lab = lab(LabSpec {
        name: unique_name(prefix),
        nodes: 2,
        pods: 2,
        ipv6: false,
        offload,
        ..LabSpec::default()
    });
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 1, &[]);
    assert!(ok, "the overlay works before the change:\n{out}");
    let n1 = lab.node("n1").unwrap().netns.clone();
    let dir = std::env::temp_dir().join(format!("vx-{}", lab.name));
    // Any IPv4 fragment (MF set or a non-zero offset) on n1's underlay.
    let cap = Capture::start(&n1, "eth0", "ip[6:2] & 0x3fff != 0", &dir);
    lower_route_mtu(&lab);

    // TCP first: its full-sized segments (TSO super-frames with offloads on) no longer fit;
    // the switch learns the path MTU and the pod's TCP follows the frag-needed it gets.
    let p1 = lab.pod("n1p1").unwrap().netns.clone();
    let p2 = lab.pod("n2p1").unwrap().netns.clone();
    tcp_transfer(
        &p1,
        &p2,
        Ipv4Addr::new(10, 1, 2, 2),
        5201,
        20 << 20,
        65536,
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("transfer at the lower path MTU: {e}"));
    // And the other way (n2's route is unchanged; n1 answers with small ACKs).
    let p4 = lab.pod("n1p2").unwrap().netns.clone();
    let p3 = lab.pod("n2p2").unwrap().netns.clone();
    tcp_transfer(
        &p3,
        &p4,
        Ipv4Addr::new(10, 1, 1, 3),
        5202,
        20 << 20,
        65536,
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("transfer toward the node with the lower path MTU: {e}"));

    // A DF ping that fit the 1450-byte tunnel no longer fits: frag-needed with 1400 - 50.
    let (ok, out) = ping(
        &lab,
        "n1p2",
        Ipv4Addr::new(10, 1, 2, 2),
        2,
        &["-M", "do", "-s", "1400"],
    );
    assert!(!ok, "a 1428-byte DF packet must not cross:\n{out}");
    assert!(
        out.contains("mtu = 1350"),
        "expected fragmentation needed with MTU 1350:\n{out}"
    );
    // 1350 bytes (1322 of data) still cross.
    let (ok, out) = ping(
        &lab,
        "n1p2",
        Ipv4Addr::new(10, 1, 2, 2),
        2,
        &["-M", "do", "-s", "1322"],
    );
    assert!(ok, "a 1350-byte packet fits:\n{out}");

    let fragments = cap.finish();
    assert!(
        fragments.is_empty(),
        "{} IP fragments crossed the underlay",
        fragments.len()
    );
    let stats = lab.ctl("n1").unwrap().stats().unwrap();
    assert!(counter(&stats, "icmp_frag_needed_sent") >= 1);
    assert!(counter(&stats, "path_mtu_learned") >= 1);

    if offload {
        // The route's MTU goes back up: within the switch's periodic re-read (10 s) full-sized
        // packets cross again (the pod forgets what it cached).
        let (ok, out) = run_bounded(
            Command::new("ip").args(["-n", &n1, "route", "del", "198.51.100.2/32"]),
            Duration::from_secs(5),
        );
        assert!(ok, "ip route del: {out}");
        let crossed = wait_until(Duration::from_secs(15), || {
            let _ = run_bounded(
                Command::new("ip").args(["-n", &p4, "route", "flush", "cache"]),
                Duration::from_secs(5),
            );
            ping(
                &lab,
                "n1p2",
                Ipv4Addr::new(10, 1, 2, 2),
                1,
                &["-M", "do", "-s", "1400", "-W", "1"],
            )
            .0
        });
        assert!(
            crossed,
            "1428-byte packets cross again once the path allows"
        );
    }
}

#[test]
fn a_lower_underlay_path_mtu_gives_pods_frag_needed_and_never_fragments() {
    run(true, "pmtu");
}

#[test]
fn the_same_with_offloads_off() {
    run(false, "pmtuo");
}
