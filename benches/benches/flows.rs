//! Flow lookup cost against the number of flows and of distinct masks: the classifier alone
//! (cache miss) and through the exact-match cache (hit). Run: `cargo bench -p vxswitch-benches --bench flows`.

use std::net::Ipv4Addr;

use controlplane::flow::{FlowAction, FlowSpec, Match, PortRef};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::flow::key::FlowKey;
use dataplane::flow::{resolve, Emc, FlowSet};
use dataplane::sample;

/// `n` flows matching destination addresses under `masks` distinct prefix lengths (/32, /31,
/// ...), each with its own priority band, plus a match-all `normal`.
fn flows(n: usize, masks: u32) -> FlowSet {
    let mut v = Vec::with_capacity(n + 1);
    for i in 0..n {
        let prefix = 32 - (i as u32 % masks);
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        let addr = (0x0a00_0000u32 | (i as u32) << 1) & mask;
        v.push((
            i as u32,
            FlowSpec {
                table: 0,
                priority: 1000 + prefix as u16,
                cookie: 0,
                idle_timeout: 0,
                hard_timeout: 0,
                matches: vec![
                    Match::DlType { value: 0x0800 },
                    Match::NwDst {
                        value: Ipv4Addr::from(addr),
                        mask: Ipv4Addr::from(mask),
                    },
                ],
                actions: vec![FlowAction::Output {
                    port: PortRef::Number(3),
                }],
            },
        ));
    }
    v.push((
        n as u32,
        FlowSpec {
            table: 0,
            priority: 0,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            matches: vec![],
            actions: vec![FlowAction::Normal],
        },
    ));
    FlowSet::build(1, &v, &[], &|p| match p {
        PortRef::Number(n) => Some(*n),
        PortRef::Name(_) => None,
    })
}

/// Keys for uniformly random destinations among the flows' addresses.
fn keys(n: usize, count: usize) -> Vec<FlowKey> {
    let mut x = 0x9e37_79b9u64;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % n.max(1);
            let dst = (0x0a00_0000u32 | (i as u32) << 1).to_be_bytes();
            let f = sample::udp_frame([2; 6], [4; 6], [10, 1, 1, 2], dst, 64, 10);
            FlowKey::extract(&f, 3, None)
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_lookup");
    g.throughput(Throughput::Elements(1));
    for &(n, masks) in &[
        (10usize, 1u32),
        (10, 8),
        (1_000, 1),
        (1_000, 8),
        (100_000, 1),
        (100_000, 8),
        (100_000, 32),
    ] {
        let set = flows(n, masks);
        let ks = keys(n, 4096);
        g.bench_with_input(
            BenchmarkId::new(format!("classifier/{masks}_masks"), n),
            &ks,
            |b, ks| {
                let mut i = 0;
                b.iter(|| {
                    let mut k = ks[i & 4095];
                    i += 1;
                    black_box(resolve(&set, &mut k, &mut ()).end)
                })
            },
        );
        // Through the exact-match cache, warm: a working set that fits.
        let mut emc = Emc::default();
        let hot = &ks[..512];
        for k in hot {
            let mut kk = *k;
            let r = resolve(&set, &mut kk, &mut ());
            emc.insert(set.version, *k, k.hash(), &r);
        }
        g.bench_with_input(
            BenchmarkId::new(format!("cache_hit/{masks}_masks"), n),
            hot,
            |b, hot| {
                let mut i = 0;
                b.iter(|| {
                    let k = &hot[i & 511];
                    i += 1;
                    black_box(emc.get(set.version, k, k.hash()).map(|r| r.end))
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
