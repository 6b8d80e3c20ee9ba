//! One flow change on the control side's flow path — the store applying a bundle of one and
//! the compiled tables published as a new version — at 0, 10,000 and 100,000 flows present:
//! a flow added then deleted (strictly, as `del-flows --strict` or an OpenFlow controller
//! does), and added then deleted by a loose match (as `vxctl del-flows` does). Each iteration
//! is two changes (the throughput is changes/s). No root needed:
//! `cargo bench -p vxswitch-benches --bench update_flows`.
//!
//! The store keeps the tables compiled and changes them flow by flow, and a version shares
//! every table, subtable shard and rule chunk it did not change with the one before: a
//! change should cost the same with 0 or 100,000 flows present.

use std::sync::Arc;
use std::time::Duration;

use controlplane::flow::{FlowMod, FlowSpec, PortRef};
use controlplane::flow_syntax::parse_flow;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::flow::{FlowId, FlowSet};
use dataplane::flowstore::{Context, FlowStore};

fn flow(i: u32) -> FlowSpec {
    parse_flow(&format!(
        "table=0,priority=100,udp,nw_dst=10.{}.{}.{},tp_dst={},actions=output:2",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff,
        i % 1000 + 1
    ))
    .expect("flow")
}

fn resolve(p: &PortRef) -> Option<u16> {
    match p {
        PortRef::Number(n) => Some(*n),
        PortRef::Name(_) => Some(3),
    }
}

fn sums(_: FlowId) -> (u64, u64) {
    (0, 0)
}

/// A store holding `n` flows, compiled once.
fn store(n: u32) -> FlowStore {
    let cx = Context {
        resolve: &resolve,
        sums: &sums,
        now_ms: 0,
    };
    let mut s = FlowStore::initial();
    s.apply(
        &[FlowMod::Replace {
            flows: (0..n).map(flow).collect(),
        }],
        &cx,
    )
    .expect("the flows apply");
    let _ = s.compile(1, &resolve);
    s
}

fn update_flows(c: &mut Criterion) {
    let cx = Context {
        resolve: &resolve,
        sums: &sums,
        now_ms: 0,
    };
    let mut g = c.benchmark_group("update_flows");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(2));
    for n in [0u32, 10_000, 100_000] {
        let mut s = store(n);
        let extra = flow(1 << 23);
        let add = [FlowMod::Add {
            flow: extra.clone(),
            reset_counts: false,
        }];
        let strict = [FlowMod::Delete {
            table: Some(0),
            priority: Some(extra.priority),
            matches: extra.matches.clone(),
            strict: true,
            cookie: None,
        }];
        let loose = [FlowMod::Delete {
            table: None,
            priority: None,
            matches: extra.matches.clone(),
            strict: false,
            cookie: None,
        }];
        // The version the workers hold while the next one is made.
        let mut version = 1u64;
        let mut published: Arc<FlowSet> = Arc::new(s.compile(version, &resolve));
        for (name, del) in [("add_delete_strict", &strict), ("add_delete_loose", &loose)] {
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    for m in [&add[..], &del[..]] {
                        s.apply(m, &cx).expect("applies");
                        version += 1;
                        published = Arc::new(s.compile(version, &resolve));
                    }
                })
            });
        }
        assert_eq!(s.len(), n as usize);
        drop(published);
    }
    g.finish();
}

criterion_group!(benches, update_flows);
criterion_main!(benches);
