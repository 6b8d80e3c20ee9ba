//! Lookups of random remote pod addresses in the switch's own published tables while the
//! switch's real control path changes them: the daemon's `Switch::apply` (what vxswitchd runs
//! for an add-node/del-node request from vxctl or vxagent) on another thread, as in
//! `benches/update.rs`, and readers doing what a worker does per packet toward a pod address:
//! the pod-IP map, then the remote subnets (longest prefix first). Run as root:
//! `cargo bench -p vxswitch-benches --bench fib_control`.
//!
//! The tables hold N remote nodes, a /24 each (N subnets and VTEPs); the keys are one random
//! pod address in every subnet, shuffled, so consecutive lookups land anywhere. Only local pods
//! (a TAP each) enter the pod-IP map through the control path, so a million entries through
//! that path are remote subnets, not pods; `VXBENCH_FIB_NODES=1000,10000,100000` picks the
//! sizes (default 1000 and 10000). `benches/fib.rs` measures the pod-IP map alone at 1 M
//! entries, filled directly. The writer adds and deletes one node per request, back to back;
//! the rate it reached is printed.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use controlplane::proto::{ApplyRequest, Change, Ipv4Cidr, LocalNode, MacAddr, Owner, RemoteNode};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::pipeline::{OuterTos, OuterTtl};
use dataplane::switch::{Switch, SwitchConfig};

const BATCH: usize = 64;

fn node(i: u32) -> RemoteNode {
    // Subnets 10.64.0.0/24 onward, VTEPs from 198.18.0.0/15 upward; no packet goes anywhere.
    RemoteNode {
        name: format!("node{i}"),
        vtep: Ipv4Addr::from(0xc612_0000u32 + i + 2).into(),
        vtep_mac: MacAddr([0x02, 0xee, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
        subnet: Ipv4Cidr::new(subnet(i), 24).expect("cidr"),
        subnet6: None,
    }
}

fn subnet(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a40_0000u32 + (i << 8))
}

/// One pod address in every subnet of `n` nodes, shuffled (xorshift, Fisher-Yates).
fn keys(n: u32) -> Vec<Ipv4Addr> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut ks: Vec<Ipv4Addr> = (0..n)
        .map(|i| Ipv4Addr::from(u32::from(subnet(i)) + 2 + (next() % 250) as u32))
        .collect();
    for i in (1..ks.len()).rev() {
        ks.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    ks
}

/// A network namespace of this process's own, with the VTEP address on one end of a veth pair.
fn private_netns() {
    // SAFETY: unshare(2) with a flag, before any other thread of ours exists.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET) (run as root): {}",
        std::io::Error::last_os_error()
    );
    for args in [
        "link set lo up",
        "link add vxb0 type veth peer name vxb1",
        "addr add 198.51.100.1/24 dev vxb0",
        "link set vxb0 up",
        "link set vxb1 up",
    ] {
        let ok = Command::new("ip")
            .args(args.split(' '))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip {args}");
    }
}

fn switch() -> Switch {
    let mut sw = Switch::start(SwitchConfig {
        workers: 1,
        vxlan_port: 4789,
        src_port_min: 49152,
        src_port_max: 65535,
        udp_zero_csum: false,
        busy_poll: false,
        spin_us: 0,
        pin: false,
        offload: false,
        masquerade: false,
        state_file: None,
        tos: OuterTos::Inherit,
        ttl: OuterTtl::Inherit,
        flood_max_nodes: usize::MAX,
        src_ports: 1,
        bum_rate: 0,
        bum_burst: 0,
        polling: Default::default(),
        pod_gso_max: dataplane::switch::PodGsoMax::Auto,
        rx_classify_batch: true,
    })
    .expect("switch");
    let local = LocalNode {
        name: "bench".into(),
        vtep: Ipv4Addr::new(198, 51, 100, 1).into(),
        vtep_mac: MacAddr([0x02, 0xee, 0, 0, 0, 1]),
        subnet: "10.1.1.0/24".parse().expect("cidr"),
        gateway: None,
        vni: 1,
        cluster_network: "10.0.0.0/8".parse().expect("cidr"),
        underlay_mtu: 1500,
        subnet6: None,
    };
    apply(&mut sw, Owner::Agent, vec![Change::SetLocalNode(local)]);
    sw
}

fn apply(sw: &mut Switch, owner: Owner, changes: Vec<Change>) {
    sw.apply(ApplyRequest {
        owner,
        expected_version: None,
        changes,
    })
    .expect("apply");
}

/// The writer: adds and deletes node `n + 1` through the control path until `stop`.
fn writer(
    mut sw: Switch,
    n: u32,
    stop: Arc<AtomicBool>,
    changes: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Switch> {
    std::thread::spawn(move || {
        let extra = node(n + 1);
        while !stop.load(Ordering::Relaxed) {
            apply(&mut sw, Owner::Admin, vec![Change::AddNode(extra.clone())]);
            apply(
                &mut sw,
                Owner::Admin,
                vec![Change::DelNode {
                    name: extra.name.clone(),
                }],
            );
            changes.fetch_add(2, Ordering::Relaxed);
        }
        sw
    })
}

fn sizes() -> Vec<u32> {
    std::env::var("VXBENCH_FIB_NODES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000])
}

fn lookups(c: &mut Criterion) {
    private_netns();
    let mut g = c.benchmark_group("fib_control");
    g.throughput(Throughput::Elements(BATCH as u64))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in sizes() {
        let mut sw = switch();
        apply(
            &mut sw,
            Owner::Admin,
            (0..n).map(|i| Change::AddNode(node(i))).collect(),
        );
        let reader = sw.fib_reader();
        let ks = keys(n);
        let mut sw = Some(sw);
        for with_writer in [false, true] {
            let stop = Arc::new(AtomicBool::new(false));
            let changes = Arc::new(AtomicU64::new(0));
            let handle = with_writer.then(|| {
                let s = sw.take().expect("the switch is back between runs");
                writer(s, n, stop.clone(), changes.clone())
            });
            let started = Instant::now();
            let name = if with_writer {
                "control_writer"
            } else {
                "no_writer"
            };
            g.bench_with_input(BenchmarkId::new(name, n), &ks, |b, ks| {
                let mut at = 0;
                b.iter(|| {
                    let Some(t) = reader.load() else {
                        return 0;
                    };
                    let mut found = 0u32;
                    for k in &ks[at..at + BATCH.min(ks.len())] {
                        // What the pipeline does for a routed packet: a local pod, else the
                        // remote subnet holding the address.
                        found += match t.ips.get(k) {
                            Some(e) => e.vni,
                            None => t.route(*k).map_or(0, |n| n + 1),
                        };
                    }
                    at = (at + BATCH) % (ks.len().saturating_sub(BATCH).max(1));
                    black_box(found)
                })
            });
            stop.store(true, Ordering::Relaxed);
            if let Some(h) = handle {
                sw = Some(h.join().expect("writer thread"));
                let rate = changes.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
                eprintln!("fib_control/{name}/{n}: the control path applied {rate:.0} changes/s");
            }
        }
        if let Some(mut s) = sw {
            s.shutdown();
        }
    }
    g.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
