//! The cost of one table change on the control side, as the daemon pays it per request, at
//! 100, 10 k and 100 k entries: a flow added and deleted (each a bundle of one), and a remote
//! node added and deleted (each a batch of one), against a switch already holding that many
//! flows or remote nodes. Each iteration is two changes (the throughput is changes/s). Run as root: `cargo bench -p vxswitch-benches --bench update`.
//!
//! The switch is the daemon's own ([`dataplane::switch::Switch`], one worker), in a network
//! namespace of the bench's own (the local node's VTEP on a veth device there), without a
//! state file unless `VXBENCH_STATE_DIR` names a directory for one (then each change also
//! writes and flushes it, as the daemon does). A change today copies and checks the whole
//! configuration, rebuilds every table from it, compiles every flow, reads the path MTU of
//! every remote node and diffs the maps: it costs O(table size), not O(1).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use controlplane::flow::{FlowMod, FlowSpec};
use controlplane::flow_syntax::parse_flow;
use controlplane::proto::{ApplyRequest, Change, Ipv4Cidr, LocalNode, MacAddr, Owner, RemoteNode};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::pipeline::{OuterTos, OuterTtl};
use dataplane::switch::{Switch, SwitchConfig};

fn flow(i: u32) -> FlowSpec {
    parse_flow(&format!(
        "table=0,priority=100,udp,nw_dst=10.9.{}.{},tp_dst={},actions=drop",
        (i >> 8) & 0xff,
        i & 0xff,
        i / 65536 + 1
    ))
    .expect("flow")
}

fn node(i: u32) -> RemoteNode {
    // Subnets 10.64.0.0/24 onward (a /24 each), VTEPs from 198.18.0.0/15 upward as plain
    // numbers; no packet goes anywhere.
    RemoteNode {
        name: format!("node{i}"),
        vtep: Ipv4Addr::from(0xc612_0000u32 + i + 2).into(),
        vtep_mac: MacAddr([0x02, 0xee, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
        subnet: Ipv4Cidr::new(Ipv4Addr::from(0x0a40_0000u32 + (i << 8)), 24).expect("cidr"),
        subnet6: None,
    }
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

fn switch(state_dir: Option<&PathBuf>) -> Switch {
    let mut sw = Switch::start(SwitchConfig {
        workers: 1,
        vxlan_port: 4789,
        src_port_min: 49152,
        src_port_max: 65535,
        udp_zero_csum: false,
        busy_poll: false,
        spin_us: 0,
        polling: Default::default(),
        pin: false,
        offload: false,
        masquerade: false,
        state_file: state_dir.map(|d| d.join(format!("state-{}.json", std::process::id()))),
        tos: OuterTos::Inherit,
        ttl: OuterTtl::Inherit,
        flood_max_nodes: usize::MAX,
        src_ports: 1,
        bum_rate: 0,
        bum_burst: 0,
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
    sw.apply(ApplyRequest {
        owner: Owner::Agent,
        expected_version: None,
        changes: vec![Change::SetLocalNode(local)],
    })
    .expect("local node");
    sw
}

fn apply(sw: &mut Switch, changes: Vec<Change>) {
    sw.apply(ApplyRequest {
        owner: Owner::Admin,
        expected_version: None,
        changes,
    })
    .expect("apply");
}

fn update(c: &mut Criterion) {
    private_netns();
    let state_dir = std::env::var_os("VXBENCH_STATE_DIR").map(PathBuf::from);
    let mut g = c.benchmark_group("update");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(2));
    for n in [100u32, 10_000, 100_000] {
        let extra = flow(n + 1);
        // Set up on first use (criterion calls the routine once per sample), so that a filter
        // which skips this size skips its set-up too.
        let mut cell: Option<Switch> = None;
        g.bench_with_input(BenchmarkId::new("flow_add_delete", n), &n, |b, _| {
            let sw = cell.get_or_insert_with(|| {
                let mut sw = switch(state_dir.as_ref());
                let program: Vec<FlowSpec> = (0..n)
                    .map(flow)
                    .chain([parse_flow("table=0,priority=0,actions=normal").expect("flow")])
                    .collect();
                sw.flow_mods(&[FlowMod::Replace { flows: program }])
                    .expect("program");
                sw
            });
            b.iter(|| {
                sw.flow_mods(&[FlowMod::Add {
                    flow: extra.clone(),
                    reset_counts: false,
                }])
                .expect("add");
                sw.flow_mods(&[FlowMod::Delete {
                    table: Some(extra.table),
                    priority: Some(extra.priority),
                    matches: extra.matches.clone(),
                    strict: true,
                    cookie: None,
                }])
                .expect("delete");
            });
        });
        if let Some(mut sw) = cell {
            sw.shutdown();
        }
    }
    for n in [100u32, 10_000, 100_000] {
        let extra = node(n + 1);
        let mut cell: Option<Switch> = None;
        g.bench_with_input(BenchmarkId::new("node_add_delete", n), &n, |b, _| {
            let sw = cell.get_or_insert_with(|| {
                let mut sw = switch(state_dir.as_ref());
                apply(&mut sw, (0..n).map(|i| Change::AddNode(node(i))).collect());
                sw
            });
            b.iter(|| {
                apply(sw, vec![Change::AddNode(extra.clone())]);
                apply(
                    sw,
                    vec![Change::DelNode {
                        name: extra.name.clone(),
                    }],
                );
            });
        });
        if let Some(mut sw) = cell {
            sw.shutdown();
        }
    }
    g.finish();
}

criterion_group!(benches, update);
criterion_main!(benches);
