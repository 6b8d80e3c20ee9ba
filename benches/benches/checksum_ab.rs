//! The wide sum, the fused copy-and-sum, segmenting and merging against their `reference`
//! twins (the implementation before them), interleaved: each round times new then reference,
//! a few thousand calls each, and the minimum and median over the rounds are printed. On a
//! busy machine the minimum is the figure least disturbed by other work. Run:
//! `cargo bench -p vxswitch-benches --bench checksum_ab` (`VXBENCH_ROUNDS`, default 31).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use dataplane::offload::{segment_count, segment_tcp, segment_tcp_reference, tcp_layout};
use dataplane::offload::{Coalescer, TcpLayout};
use dataplane::wire::checksum;

fn superframe(payload: usize) -> Vec<u8> {
    let total = 20 + 32 + payload;
    let mut f = vec![0x0a, 0x58, 10, 1, 2, 2, 0x0a, 0x58, 10, 1, 2, 1, 0x08, 0x00];
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0x12,
        0x34,
        0x40,
        0,
        63,
        6,
    ]);
    f.extend_from_slice(&[
        0, 0, 10, 1, 1, 2, 10, 1, 2, 2, 0x9c, 0x40, 0x13, 0x89, 0, 0, 0, 1,
    ]);
    f.extend_from_slice(&[0, 0, 0, 7, 0x80, 0x10, 0x01, 0xf6, 0, 0, 0, 0, 1, 1, 8, 10]);
    f.extend_from_slice(&[0, 0, 0, 42, 0, 0, 0, 9]);
    f.extend((0..payload).map(|i| (i * 7) as u8));
    let c = checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn checksums_ok_reference(f: &[u8], lay: &TcpLayout) -> bool {
    if checksum::finish(checksum::accumulate_reference(0, &f[14..lay.l4])) != 0 {
        return false;
    }
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let sum = checksum::pseudo_header_v4(src, dst, 6, (f.len() - lay.l4) as u32);
    checksum::finish(checksum::accumulate_reference(sum, &f[lay.l4..])) == 0
}

/// Nanoseconds per call of `f` over `iters` calls.
fn time(iters: u32, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn report(name: &str, new: &mut [f64], reference: &mut [f64]) {
    for v in [&mut *new, &mut *reference] {
        v.sort_by(f64::total_cmp);
    }
    let (nm, rm) = (new[0], reference[0]);
    let (nd, rd) = (new[new.len() / 2], reference[reference.len() / 2]);
    println!(
        "{name:24} new min {nm:9.1} ns median {nd:9.1} ns | reference min {rm:9.1} ns median \
         {rd:9.1} ns | min ratio {:.2}",
        nm / rm
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("VXBENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(31);
    let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut dst = vec![0u8; 70_000];
    for size in [64usize, 512, 1450, 9000, 65_536] {
        let src = &data[3..3 + size];
        let iters = (4_000_000 / size).clamp(200, 100_000) as u32;
        let (mut a, mut b, mut c, mut d) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            a.push(time(iters, || {
                black_box(checksum::accumulate(0, black_box(src)));
            }));
            b.push(time(iters, || {
                black_box(checksum::accumulate_reference(0, black_box(src)));
            }));
            c.push(time(iters, || {
                black_box(checksum::copy_and_sum(
                    &mut dst[6..6 + size],
                    black_box(src),
                ));
            }));
            d.push(time(iters, || {
                let o = &mut dst[6..6 + size];
                o.copy_from_slice(black_box(src));
                black_box(checksum::accumulate_reference(0, o));
            }));
        }
        report(&format!("sum_{size}"), &mut a, &mut b);
        report(&format!("copy_and_sum_{size}"), &mut c, &mut d);
    }
    let mss = 1398;
    let sf = superframe(65_000 - 66);
    let n = segment_count(sf.len(), 66, mss);
    let prefix = [0x08, 0, 0, 0, 0, 0, 1, 0];
    let mut out = vec![0u8; 80_000];
    let (mut a, mut b) = (vec![], vec![]);
    for _ in 0..rounds {
        a.push(time(200, || {
            black_box(segment_tcp(black_box(&sf), mss, &prefix, 0, 64, &mut out));
        }));
        b.push(time(200, || {
            black_box(segment_tcp_reference(
                black_box(&sf),
                mss,
                &prefix,
                0,
                64,
                &mut out,
            ));
        }));
    }
    report("segment_64k", &mut a, &mut b);
    let w = segment_tcp(&sf, mss, &prefix, 0, 64, &mut out).unwrap_or(0);
    let unit = 8 + 66 + mss;
    let segs: Vec<Vec<u8>> = (0..n)
        .map(|k| out[k * unit + 8..((k + 1) * unit).min(w)].to_vec())
        .collect();
    let Some(lay) = tcp_layout(&segs[0]) else {
        return;
    };
    let mut co = Coalescer::default();
    let (mut a, mut b) = (vec![], vec![]);
    for _ in 0..rounds {
        a.push(time(200, || {
            for s in &segs {
                black_box(co.offer(3, s));
            }
            black_box(co.take().map(|(_, b, n)| (b.len(), n)));
        }));
        b.push(time(200, || {
            for s in &segs {
                if checksums_ok_reference(s, &lay) {
                    black_box(co.offer_verified(3, s));
                }
            }
            black_box(co.take().map(|(_, b, n)| (b.len(), n)));
        }));
    }
    report("coalesce_64k", &mut a, &mut b);
}
