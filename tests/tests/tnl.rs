//! The underlay through a TAP with UDP-tunnel GSO (`--underlay-gso tap`): a pod's TCP
//! super-frame leaves its node in one write and arrives at the other in one read, and the
//! bytes arrive identical both ways; with `--underlay-gso udp` the same transfer takes the
//! UDP sockets and the TAP's counters stay 0.

use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch_e2e::*;

/// Moves 16 MB each way between n1p1 and n2p1; returns the two nodes' sums of the TAP's
/// writes and reads, of super-frames segmented for the UDP sockets, and of workers that run
/// without the TAP.
fn transfer(tag: &str, mode: &str, underlay_offload: bool) -> (u64, u64, u64, u64) {
    let lab = lab(LabSpec {
        name: unique_name(tag),
        nodes: 2,
        pods: 1,
        ipv6: false,
        offload: true,
        underlay_offload,
        switch_args: vec!["--underlay-gso".into(), mode.into()],
        ..LabSpec::default()
    });
    let a = lab.pod("n1p1").unwrap().netns.clone();
    let b = lab.pod("n2p1").unwrap().netns.clone();
    tcp_transfer(
        &a,
        &b,
        Ipv4Addr::new(10, 1, 2, 2),
        5401,
        16 << 20,
        65536,
        Duration::from_secs(120),
    )
    .expect("n1p1 -> n2p1 arrives intact");
    tcp_transfer(
        &b,
        &a,
        Ipv4Addr::new(10, 1, 1, 2),
        5402,
        16 << 20,
        65536,
        Duration::from_secs(120),
    )
    .expect("n2p1 -> n1p1 arrives intact");
    let s1 = lab.ctl("n1").unwrap().stats().unwrap();
    let s2 = lab.ctl("n2").unwrap().stats().unwrap();
    let both = |n: &str| counter(&s1, n) + counter(&s2, n);
    let r = (
        both("tnl_gso_writes"),
        both("tnl_gso_reads"),
        both("tso_superframes_segmented"),
        both("tnl_unavailable"),
    );
    eprintln!(
        "{mode} (underlay offload {underlay_offload}): tnl writes/reads/segmented/unavailable {r:?}, \
         neighbour unknown {}, fallback {}, rx dropped {}",
        both("tnl_neigh_unknown"),
        both("tnl_fallback"),
        both("tnl_rx_dropped")
    );
    r
}

#[test]
fn through_the_tap_superframes_leave_in_one_write_arrive_in_one_read_intact() {
    let (writes, reads, _, unavailable) = transfer("tnltap", "tap", true);
    assert_eq!(unavailable, 0, "the kernel takes UDP-tunnel GSO on a TAP");
    assert!(writes > 0, "super-frames left in one write ({writes})");
    assert!(reads > 0, "super-frames arrived in one read ({reads})");
}

#[test]
fn through_the_tap_with_a_segmenting_underlay_bytes_arrive_intact() {
    // Underlay TX checksum off: the sending kernel segments and checksums the super-frame in
    // software; the segments arrive small and take the receiver's UDP socket.
    let (writes, _, _, unavailable) = transfer("tnlseg", "tap", false);
    assert_eq!(unavailable, 0);
    assert!(writes > 0, "super-frames left in one write ({writes})");
}

#[test]
fn through_the_udp_sockets_the_tap_counters_stay_zero() {
    let (writes, reads, segmented, _) = transfer("tnludp", "udp", true);
    assert_eq!((writes, reads), (0, 0));
    assert!(segmented > 0, "super-frames were segmented ({segmented})");
}
