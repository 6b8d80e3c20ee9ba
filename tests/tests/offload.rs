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
        // The UDP-socket way, which this file is about (tests/tests/tnl.rs covers the TAP).
        switch_args: vec!["--underlay-gso".into(), "udp".into()],
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

/// Sends `bursts` × `per_burst` numbered datagrams of `size` bytes from n1p1 to n2p1, a burst
/// at a time (the next only once the receiver has the last, so no queue overflows), and
/// checks every one arrives once, intact, in order. Returns n1's count of frames that left in
/// shared UDP GSO sends.
fn small_datagrams(offload: bool, bursts: u32, per_burst: u32, size: usize) -> u64 {
    use std::net::{SocketAddr, UdpSocket};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let lab = lab(LabSpec {
        name: unique_name(if offload { "ofsm" } else { "ofsmo" }),
        nodes: 2,
        pods: 1,
        ipv6: false,
        offload,
        ..LabSpec::default()
    });
    let a = lab.pod("n1p1").unwrap().netns.clone();
    let b = lab.pod("n2p1").unwrap().netns.clone();
    // The path is up (both nodes configured, the gateway's MAC resolved) before counting.
    assert!(
        wait_until(Duration::from_secs(10), || ping(
            &lab,
            "n1p1",
            Ipv4Addr::new(10, 1, 2, 2),
            1,
            &["-W", "1"]
        )
        .0),
        "n1p1 reaches n2p1"
    );
    let to = SocketAddr::from((Ipv4Addr::new(10, 1, 2, 2), 5310));
    let rx = in_netns(&b, move || UdpSocket::bind(to)).expect("bind in n2p1");
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tx = in_netns(&a, || UdpSocket::bind("10.1.1.2:0")).expect("bind in n1p1");
    let got = Arc::new(AtomicU32::new(0));
    let total = bursts * per_burst;
    let receiver = {
        let got = got.clone();
        std::thread::spawn(move || -> Result<(), String> {
            let mut buf = vec![0u8; 2048];
            for i in 0..total {
                let n = rx
                    .recv(&mut buf)
                    .map_err(|e| format!("datagram {i} of {total}: {e}"))?;
                let want = datagram(i, size);
                if buf[..n] != want[..] {
                    return Err(format!(
                        "datagram {i}: got {n} bytes, not the ones sent: {:02x?} for {:02x?}",
                        &buf[..n.min(16)],
                        &want[..16]
                    ));
                }
                got.store(i + 1, Ordering::Release);
            }
            Ok(())
        })
    };
    for burst in 0..bursts {
        for k in 0..per_burst {
            tx.send_to(&datagram(burst * per_burst + k, size), to)
                .expect("send");
        }
        let want = (burst + 1) * per_burst;
        let arrived = wait_until(Duration::from_secs(10), || {
            got.load(Ordering::Acquire) >= want || receiver.is_finished()
        });
        if receiver.is_finished() {
            break; // all arrived, or the receiver found a fault: its result says which
        }
        assert!(
            arrived,
            "burst {burst}: {} of {want} datagrams arrived",
            got.load(Ordering::Acquire)
        );
    }
    receiver
        .join()
        .expect("receiver thread")
        .expect("every datagram arrives once, intact and in order");
    let s1 = lab.ctl("n1").unwrap().stats().unwrap();
    counter(&s1, "udp_gso_batched_frames")
}

/// Datagram `i`: its number, then bytes derived from it.
fn datagram(i: u32, size: usize) -> Vec<u8> {
    let mut d: Vec<u8> = (0..size).map(|k| (k as u32 ^ i) as u8).collect();
    d[..4].copy_from_slice(&i.to_be_bytes());
    d
}

#[test]
fn small_datagrams_leave_batched_in_gso_sends_and_arrive_intact_in_order() {
    let batched = small_datagrams(true, 50, 40, 64);
    assert!(batched > 0, "small frames shared UDP GSO sends ({batched})");
}

#[test]
fn small_datagrams_with_offloads_off_arrive_intact_and_are_not_batched() {
    assert_eq!(small_datagrams(false, 10, 40, 64), 0);
}
