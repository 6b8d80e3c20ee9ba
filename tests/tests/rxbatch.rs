//! Decapsulation classifies once per GRO batch (`vxswitchd --rx-classify batch`): a TCP
//! transfer through a two-node lab arrives byte-exact, its flow is credited once per segment
//! received from the tunnel, and most segments had the verdict of their batch's first
//! replayed; with `--rx-classify segment` the same holds and nothing is replayed. And a pod's
//! TAP hands the switch super-frames whose segments leave in one UDP GSO send
//! (`--pod-gso-max auto`).

use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch_e2e::*;

struct Figures {
    /// n_packets of the flow that matches the transfer's data segments on the receiving node.
    flow_packets: u64,
    /// Datagrams the receiving node took from the tunnel during the transfer.
    tunnel_rx: u64,
    replayed: u64,
    gro_segments: u64,
}

fn tunnel_rx(lab: &LabGuard, node: &str) -> u64 {
    let s = lab.ctl(node).unwrap().stats().unwrap();
    s.ports
        .iter()
        .find(|p| p.name == "vxlan0")
        .map(|p| p.rx_packets)
        .expect("the tunnel port's counters")
}

fn transfer(mode: &str) -> Figures {
    let lab = lab(LabSpec {
        name: unique_name(if mode == "batch" { "rxbb" } else { "rxbs" }),
        nodes: 2,
        pods: 1,
        ipv6: false,
        offload: true,
        // Super-frames cross the underlay whole: the receiving socket gets GRO batches.
        underlay_offload: true,
        // The UDP-socket way, where GRO batches and GSO sends are (the TAP way has neither).
        switch_args: vec![
            "--rx-classify".into(),
            mode.into(),
            "--underlay-gso".into(),
            "udp".into(),
        ],
        ..LabSpec::default()
    });
    let flows = "\
table=0,priority=900,tcp,nw_dst=10.1.2.2,tp_dst=5301,actions=normal
table=0,priority=1,actions=normal
";
    let file = std::env::temp_dir().join(format!("{}-flows.txt", lab.name));
    std::fs::write(&file, flows).unwrap();
    let (ok, out) = vxctl(&lab, "n2", &["add-flows", "br0", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(ok, "{out}");
    let before = tunnel_rx(&lab, "n2");
    let flow_before = n_packets(&lab, "n2", &["priority=900"]);
    let a = lab.pod("n1p1").unwrap().netns.clone();
    let b = lab.pod("n2p1").unwrap().netns.clone();
    tcp_transfer(
        &a,
        &b,
        Ipv4Addr::new(10, 1, 2, 2),
        5301,
        32 << 20,
        65536,
        Duration::from_secs(120),
    )
    .expect("n1p1 -> n2p1 arrives intact");
    let s2 = lab.ctl("n2").unwrap().stats().unwrap();
    Figures {
        flow_packets: n_packets(&lab, "n2", &["priority=900"]) - flow_before,
        tunnel_rx: tunnel_rx(&lab, "n2") - before,
        replayed: counter(&s2, "rx_batch_replayed"),
        gro_segments: counter(&s2, "udp_gro_segments"),
    }
}

fn check(f: &Figures) {
    // 32 MB in segments of at most ~1,400 bytes.
    assert!(
        f.flow_packets >= (32 << 20) / 1500,
        "the flow counted every data segment: {}",
        f.flow_packets
    );
    // Only the transfer crosses from n1 to n2: every datagram n2 took is one of its segments.
    assert_eq!(
        f.flow_packets, f.tunnel_rx,
        "the flow is credited once per segment received from the tunnel"
    );
}

#[test]
fn batch_mode_replays_verdicts_and_counts_every_segment() {
    let f = transfer("batch");
    check(&f);
    assert!(f.gro_segments > 0, "GRO batches arrived");
    assert!(
        f.replayed > 0,
        "segments got their batch's verdict replayed ({} of {} from GRO batches)",
        f.replayed,
        f.gro_segments
    );
    eprintln!(
        "rxbatch: {} segments, {} in GRO batches, {} replayed",
        f.tunnel_rx, f.gro_segments, f.replayed
    );
}

#[test]
fn segment_mode_classifies_every_segment_and_counts_the_same() {
    let f = transfer("segment");
    check(&f);
    assert_eq!(f.replayed, 0);
}

/// Sends 32 MB from n1p1 with `--pod-gso-max MODE`; returns n1's (super-frames segmented,
/// UDP GSO sends) and the gso_max_size of n1p1's interface.
fn pod_gso(mode: &str) -> (u64, u64, String) {
    let lab = lab(LabSpec {
        name: unique_name(if mode == "auto" { "pgsoa" } else { "pgsoo" }),
        nodes: 2,
        pods: 1,
        ipv6: false,
        offload: true,
        switch_args: vec![
            "--pod-gso-max".into(),
            mode.into(),
            "--underlay-gso".into(),
            "udp".into(),
        ],
        ..LabSpec::default()
    });
    let a = lab.pod("n1p1").unwrap().netns.clone();
    let b = lab.pod("n2p1").unwrap().netns.clone();
    let (ok, link) = run_bounded(
        std::process::Command::new("ip").args(["-n", &a, "-d", "link", "show", "eth0"]),
        Duration::from_secs(5),
    );
    assert!(ok, "{link}");
    tcp_transfer(
        &a,
        &b,
        Ipv4Addr::new(10, 1, 2, 2),
        5302,
        32 << 20,
        65536,
        Duration::from_secs(120),
    )
    .expect("n1p1 -> n2p1 arrives intact");
    let s1 = lab.ctl("n1").unwrap().stats().unwrap();
    (
        counter(&s1, "tso_superframes_segmented"),
        counter(&s1, "udp_gso_sends"),
        link,
    )
}

#[test]
fn a_pods_super_frames_leave_in_one_udp_gso_send_each() {
    let (frames, sends, link) = pod_gso("auto");
    // MTU 1450: 44 segments of 1,472 bytes per send; 44 × 1,390 + 60.
    assert!(
        link.contains("gso_max_size 61220") && link.contains("gso_max_segs 44"),
        "{link}"
    );
    assert!(frames > 0, "the pod handed the switch super-frames");
    assert!(
        sends <= frames,
        "one send per super-frame at most: {sends} sends for {frames} super-frames"
    );
    eprintln!("pod-gso-max auto: {frames} super-frames, {sends} UDP GSO sends");
}

#[test]
fn with_pod_gso_max_off_large_super_frames_take_two_sends() {
    let (frames, sends, link) = pod_gso("off");
    assert!(link.contains("gso_max_size 65536"), "{link}");
    assert!(frames > 0);
    assert!(
        sends > frames,
        "64 KB super-frames straddle two sends: {sends} sends for {frames} super-frames"
    );
    eprintln!("pod-gso-max off: {frames} super-frames, {sends} UDP GSO sends");
}
