//! Forwarding-table lookups (pod IP → entry) at 1 k, 100 k and 1 M entries, in batches of 64
//! keys, without and with a concurrent writer. The keys are every entry of the table once, in
//! a shuffled order generated before timing: at 1 M entries the lookups touch the whole
//! table, so they miss the caches as a node's real traffic over many pods would (a few
//! thousand keys used over and over would stay in cache and flatter the figure).
//! Run: `cargo bench -p vxswitch-benches --bench fib`.
//!
//! The tables are the switch's own ([`dataplane::fib`], two copies, left-right): a reader
//! enters once per batch, as a worker does per batch of packets. The writer is another thread
//! changing one pod entry per update and publishing every [`PUBLISH_EVERY`] updates, paced at
//! [`WRITER_RATE`] updates/s (the rate it reached is printed); then, unpaced, the most it
//! reaches while the readers keep reading.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::fib::{self, FibWriter, IpEntry, Target};
use dataplane::wire::EthernetAddress;

const BATCH: usize = 64;
/// Updates per second the paced writer aims at.
const WRITER_RATE: f64 = 100_000.0;
/// Updates per publish (one batch of changes from the control side).
const PUBLISH_EVERY: u64 = 64;

fn entry(i: u32) -> IpEntry {
    IpEntry {
        mac: EthernetAddress([0x0a, 0x58, 0, 0, (i >> 8) as u8, i as u8]),
        target: Target::Port((i % 1000) as u16 + 3),
        vni: 1,
    }
}

fn ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 | i)
}

fn fill(w: &mut FibWriter, n: usize) {
    for i in 0..n as u32 {
        w.set_ip(ip(i), Some(entry(i)));
    }
    w.publish();
    // Once more, so both copies hold every entry before timing starts.
    w.publish();
}

/// Every key of a table of `n` entries once, shuffled (Fisher-Yates over a xorshift
/// sequence): consecutive lookups land anywhere in the table.
fn keys(n: usize) -> Vec<Ipv4Addr> {
    let mut ks: Vec<Ipv4Addr> = (0..n as u32).map(ip).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..ks.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ks.swap(i, (x % (i as u64 + 1)) as usize);
    }
    ks
}

/// A writer thread: changes entries of `n` until `stop`; paced at `rate` updates/s, or as
/// fast as it goes with `None`. Counts its updates in `updates`.
fn writer(
    mut w: FibWriter,
    n: usize,
    rate: Option<f64>,
    stop: Arc<AtomicBool>,
    updates: Arc<AtomicU64>,
) -> std::thread::JoinHandle<FibWriter> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut done = 0u64;
        let mut i = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let due = rate.map_or(done + PUBLISH_EVERY, |r| {
                (started.elapsed().as_secs_f64() * r) as u64
            });
            if done >= due {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            while done < due {
                let k = i % n as u32;
                w.set_ip(ip(k), Some(entry(k.wrapping_add(done as u32))));
                done += 1;
                i = i.wrapping_add(7919);
                if done % PUBLISH_EVERY == 0 {
                    w.publish();
                }
            }
            updates.store(done, Ordering::Relaxed);
        }
        w.publish();
        w
    })
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("fib_lookup");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in [1_000usize, 100_000, 1_000_000] {
        let (mut w, readers) = fib::new();
        fill(&mut w, n);
        let reader = readers.reader();
        let ks = keys(n);
        let mut w = Some(w);
        for (name, rate) in [
            ("no_writer", None),
            ("writer_100k_per_s", Some(Some(WRITER_RATE))),
            ("writer_unpaced", Some(None)),
        ] {
            let stop = Arc::new(AtomicBool::new(false));
            let updates = Arc::new(AtomicU64::new(0));
            let handle = rate.map(|r| {
                let w = w.take().expect("the writer is back between runs");
                writer(w, n, r, stop.clone(), updates.clone())
            });
            let started = Instant::now();
            g.bench_with_input(BenchmarkId::new(name, n), &ks, |b, ks| {
                let mut at = 0;
                b.iter(|| {
                    let Some(t) = reader.load() else {
                        return 0;
                    };
                    let mut hits = 0u32;
                    for k in &ks[at..at + BATCH] {
                        hits += t.ips.get(k).map_or(0, |e| e.vni);
                    }
                    at = (at + BATCH) % (ks.len() - BATCH);
                    black_box(hits)
                })
            });
            stop.store(true, Ordering::Relaxed);
            if let Some(h) = handle {
                w = Some(h.join().expect("writer thread"));
                let rate = updates.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
                eprintln!("fib_lookup/{name}/{n}: the writer made {rate:.0} updates/s");
            }
        }
    }
    g.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
