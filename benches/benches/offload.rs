//! TCP segmentation of a 64 KB super-frame into MSS-sized frames with complete checksums, and
//! coalescing them back (with and without verifying each segment's checksums), and the Internet
//! checksum alone. Run: `cargo bench -p vxswitch-benches --bench offload`.
//!
//! Each figure has a `reference` twin, the implementation before the wide sum and the fused
//! copy-and-sum (one accumulator, eight bytes per step; segmenting and merging copy, then sum),
//! so the two can be compared on one machine in one run: `segment_64k` against
//! `segment_64k_reference`, `coalesce_64k` against `coalesce_64k_reference`, `sum_N` against
//! `reference_N`, and `copy_and_sum_N` against `copy_then_sum_reference_N`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::net::Ipv4Addr;

use dataplane::offload::{
    segment_count, segment_tcp, segment_tcp_reference, tcp_layout, tcp_v4_checksums_ok, Coalescer,
    TcpLayout,
};
use dataplane::wire::checksum;

/// The verification the coalescer made before the fused copy: IPv4 header, then the whole TCP
/// segment with the previous sum (the copy follows in `offer_verified`).
fn checksums_ok_reference(f: &[u8], lay: &TcpLayout) -> bool {
    if checksum::finish(checksum::accumulate_reference(0, &f[14..lay.l4])) != 0 {
        return false;
    }
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let sum = checksum::pseudo_header_v4(src, dst, 6, (f.len() - lay.l4) as u32);
    checksum::finish(checksum::accumulate_reference(sum, &f[lay.l4..])) == 0
}

fn superframe(payload: usize) -> Vec<u8> {
    let mut f = vec![0x0a, 0x58, 10, 1, 2, 2, 0x0a, 0x58, 10, 1, 2, 1, 0x08, 0x00];
    let total = 20 + 32 + payload;
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
        0,
        0,
    ]);
    f.extend_from_slice(&[
        10, 1, 1, 2, 10, 1, 2, 2, 0x9c, 0x40, 0x13, 0x89, 0, 0, 0, 1, 0, 0, 0, 7,
    ]);
    f.extend_from_slice(&[
        0x80, 0x10, 0x01, 0xf6, 0, 0, 0, 0, 1, 1, 8, 10, 0, 0, 0, 42, 0, 0, 0, 9,
    ]);
    f.extend((0..payload).map(|i| i as u8));
    let c = checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn bench(c: &mut Criterion) {
    let mss = 1398;
    let sf = superframe(65_000 - 66);
    let n = segment_count(sf.len(), 66, mss);
    let mut out = vec![0u8; 80_000];
    let prefix = [0x08, 0, 0, 0, 0, 0, 1, 0];
    let mut g = c.benchmark_group("offload");
    g.throughput(Throughput::Bytes(sf.len() as u64));
    g.bench_function("segment_64k", |b| {
        b.iter(|| black_box(segment_tcp(black_box(&sf), mss, &prefix, 0, 64, &mut out)))
    });
    g.bench_function("segment_64k_reference", |b| {
        b.iter(|| {
            black_box(segment_tcp_reference(
                black_box(&sf),
                mss,
                &prefix,
                0,
                64,
                &mut out,
            ))
        })
    });
    let w = segment_tcp(&sf, mss, &prefix, 0, 64, &mut out).unwrap();
    let unit = 8 + 66 + mss;
    let segs: Vec<Vec<u8>> = (0..n)
        .map(|k| out[k * unit + 8..((k + 1) * unit).min(w)].to_vec())
        .collect();
    let mut co = Coalescer::default();
    // Every segment's IPv4 and TCP checksums verified before it is merged (what the switch
    // does with segments from the tunnel).
    g.bench_function("coalesce_64k", |b| {
        b.iter(|| {
            for s in &segs {
                black_box(co.offer(3, s));
            }
            black_box(co.take().map(|(_, b, n)| (b.len(), n)))
        })
    });
    let lay = tcp_layout(&segs[0]).unwrap();
    g.bench_function("coalesce_64k_reference", |b| {
        b.iter(|| {
            for s in &segs {
                if checksums_ok_reference(s, &lay) {
                    black_box(co.offer_verified(3, s));
                }
            }
            black_box(co.take().map(|(_, b, n)| (b.len(), n)))
        })
    });
    // The same merge without the verification, and the verification alone.
    g.bench_function("coalesce_64k_unverified", |b| {
        b.iter(|| {
            for s in &segs {
                black_box(co.offer_verified(3, s));
            }
            black_box(co.take().map(|(_, b, n)| (b.len(), n)))
        })
    });
    g.bench_function("verify_64k", |b| {
        b.iter(|| {
            segs.iter()
                .filter(|s| tcp_v4_checksums_ok(black_box(s), &lay))
                .count()
        })
    });
    g.finish();
    // The Internet checksum alone, over the sizes a switch sees.
    let mut g = c.benchmark_group("checksum");
    for size in [64, 512, 1450, 9000, 65_536] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("sum_{size}"), |b| {
            b.iter(|| checksum::accumulate(0, black_box(&data)))
        });
        g.bench_function(format!("reference_{size}"), |b| {
            b.iter(|| checksum::accumulate_reference(0, black_box(&data)))
        });
    }
    g.finish();
    // Copying a payload and summing it, as segmenting does per segment: in one pass, and as a
    // copy followed by the previous sum. The copies go to a different alignment than their
    // source, as a payload behind headers does.
    let mut g = c.benchmark_group("copy_sum");
    let mut dst = vec![0u8; 65_536 + 8];
    for size in [64, 512, 1450, 9000, 65_536] {
        let data: Vec<u8> = (0..size + 3).map(|i| (i * 7) as u8).collect();
        let src = &data[3..];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("copy_and_sum_{size}"), |b| {
            b.iter(|| checksum::copy_and_sum(&mut dst[6..6 + size], black_box(src)))
        });
        g.bench_function(format!("copy_then_sum_reference_{size}"), |b| {
            b.iter(|| {
                let d = &mut dst[6..6 + size];
                d.copy_from_slice(black_box(src));
                checksum::accumulate_reference(0, d)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
