//! The offload path is correct: TCP super-frames from a pod are segmented and sent with UDP
//! GSO, segments from the tunnel are merged back into super-frames for the pod, and the bytes
//! arrive identical; with offloads off the same transfer is identical and the counters stay 0.

use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch_e2e::*;

fn transfer(offload: bool) -> (u64, u64, u64) {
    let lab = lab(LabSpec {
        name: unique_name(if offload { "ofon" } else { "ofoff" }),
        nodes: 2,
        pods: 1,
        ipv6: false,
        offload,
        ..LabSpec::default()
    });
    let a = lab.pod("n1p1").unwrap().netns.clone();
    let b = lab.pod("n2p1").unwrap().netns.clone();
    // 64 KB writes: the pod's stack hands the switch TSO super-frames.
    tcp_transfer(
        &a,
        &b,
        Ipv4Addr::new(10, 1, 2, 2),
        5301,
        64 << 20,
        65536,
        Duration::from_secs(120),
    )
    .expect("n1p1 -> n2p1 arrives intact");
    tcp_transfer(
        &b,
        &a,
        Ipv4Addr::new(10, 1, 1, 2),
        5302,
        64 << 20,
        65536,
        Duration::from_secs(120),
    )
    .expect("n2p1 -> n1p1 arrives intact");
    let s1 = lab.ctl("n1").unwrap().stats().unwrap();
    let s2 = lab.ctl("n2").unwrap().stats().unwrap();
    let both = |n: &str| counter(&s1, n) + counter(&s2, n);
    (
        both("tso_superframes_segmented"),
        both("udp_gso_sends"),
        both("tap_gso_writes"),
    )
}

#[test]
fn with_offloads_superframes_are_segmented_and_merged_and_bytes_arrive_identical() {
    let (tso, gso, gro) = transfer(true);
    assert!(tso > 0, "super-frames from the pods were segmented ({tso})");
    assert!(gso > 0, "segments left in UDP GSO sends ({gso})");
    assert!(
        gro > 0,
        "segments from the tunnel were merged for the pods ({gro})"
    );
}

#[test]
fn with_offloads_off_bytes_arrive_identical_and_the_counters_stay_zero() {
    let (tso, gso, gro) = transfer(false);
    assert_eq!((tso, gso, gro), (0, 0, 0));
}
