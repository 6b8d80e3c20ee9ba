//! Interoperation on the wire with the Linux kernel's VXLAN, programmed as flannel's vxlan
//! backend does: a vxswitch node and a kernel node, pods pinging and transferring both ways.

use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch_e2e::*;

fn mixed_lab(prefix: &str, port: u16) -> LabGuard {
    lab(LabSpec {
        name: unique_name(prefix),
        nodes: 2,
        pods: 1,
        kinds: vec![Kind::Vxswitch, Kind::Kernel],
        port,
        ipv6: false,
        ..LabSpec::default()
    })
}

fn check_both_ways(lab: &Lab, port: u16) {
    let p1 = lab.pod("n1p1").unwrap().netns.clone();
    let p2 = lab.pod("n2p1").unwrap().netns.clone();
    let (ok, out) = ping(lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 3, &[]);
    assert!(ok, "vxswitch pod -> kernel pod on port {port}:\n{out}");
    let (ok, out) = ping(lab, "n2p1", Ipv4Addr::new(10, 1, 1, 2), 3, &[]);
    assert!(ok, "kernel pod -> vxswitch pod on port {port}:\n{out}");
    let mb = 50 << 20;
    tcp_transfer(
        &p1,
        &p2,
        Ipv4Addr::new(10, 1, 2, 2),
        5101,
        mb,
        65536,
        Duration::from_secs(180),
    )
    .unwrap_or_else(|e| panic!("vxswitch -> kernel transfer on port {port}: {e}"));
    tcp_transfer(
        &p2,
        &p1,
        Ipv4Addr::new(10, 1, 1, 2),
        5102,
        mb,
        65536,
        Duration::from_secs(180),
    )
    .unwrap_or_else(|e| panic!("kernel -> vxswitch transfer on port {port}: {e}"));
    let stats = lab.ctl("n1").unwrap().stats().unwrap();
    assert!(
        counter(&stats, "decapsulated") > 1000,
        "traffic from the kernel node was decapsulated"
    );
    assert_eq!(counter(&stats, "unknown_source_vtep"), 0);
    assert_eq!(counter(&stats, "vxlan_no_i_flag"), 0);
}

#[test]
fn kernel_vxlan_interop_on_port_4789() {
    let lab = mixed_lab("ik", 4789);
    check_both_ways(&lab, 4789);
}

#[test]
fn kernel_vxlan_interop_on_port_8472() {
    let lab = mixed_lab("ik", 8472);
    check_both_ways(&lab, 8472);
}
