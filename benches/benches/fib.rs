//! Forwarding-table lookups (pod IP → entry) at 1 k, 100 k and 1 M entries, in batches of 64
//! uniformly random keys, without and with a concurrent writer publishing new versions.
//! Run: `cargo bench -p vxswitch-benches --bench fib`.
//!
//! The writer clones the table, changes one entry and publishes the copy (read-copy-update of
//! the whole table): the readers never wait for it, but at 1 M entries each update costs a
//! full copy, so the update rate it reaches is printed — the figure a per-entry table must beat.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::fib::{Fib, IpEntry, Tables, Target};
use dataplane::wire::EthernetAddress;

const BATCH: usize = 64;

fn table(n: usize) -> Tables {
    let mut t = Tables::default();
    t.ips.reserve(n);
    for i in 0..n as u32 {
        let ip = Ipv4Addr::from(0x0a00_0000 | i);
        let e = IpEntry {
            mac: EthernetAddress([0x0a, 0x58, 0, 0, 0, 0]),
            target: Target::Port((i % 1000) as u16 + 3),
            vni: 1,
        };
        t.ips.insert(ip, e);
    }
    t
}

fn keys(n: usize) -> Vec<Ipv4Addr> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Ipv4Addr::from(0x0a00_0000 | (x % n as u64) as u32)
        })
        .collect()
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("fib_lookup");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in [1_000usize, 100_000, 1_000_000] {
        let fib = Arc::new(Fib::default());
        fib.publish(table(n));
        let ks = keys(n);
        for writer in [false, true] {
            let stop = Arc::new(AtomicBool::new(false));
            let updates = Arc::new(AtomicU64::new(0));
            let handle = writer.then(|| {
                let (fib, stop, updates) = (fib.clone(), stop.clone(), updates.clone());
                std::thread::spawn(move || {
                    let mut i = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let mut t = (*fib.snapshot()).clone();
                        let ip = Ipv4Addr::from(0x0a00_0000 | (i % n as u32));
                        if let Some(e) = t.ips.get_mut(&ip) {
                            e.vni = e.vni.wrapping_add(1);
                        }
                        t.version += 1;
                        fib.publish(t);
                        updates.fetch_add(1, Ordering::Relaxed);
                        i = i.wrapping_add(7919);
                    }
                })
            });
            let started = Instant::now();
            let name = if writer { "with_writer" } else { "no_writer" };
            g.bench_with_input(BenchmarkId::new(name, n), &ks, |b, ks| {
                let mut at = 0;
                b.iter(|| {
                    let t = fib.load();
                    let mut hits = 0u32;
                    for k in &ks[at..at + BATCH] {
                        hits += t.ips.get(k).map_or(0, |e| e.vni & 1);
                    }
                    at = (at + BATCH) % (ks.len() - BATCH);
                    black_box(hits)
                })
            });
            stop.store(true, Ordering::Relaxed);
            if let Some(h) = handle {
                let _ = h.join();
                let rate = updates.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
                eprintln!("fib_lookup/{name}/{n}: the writer published {rate:.0} versions/s");
            }
        }
    }
    g.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
