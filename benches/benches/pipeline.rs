//! The packet path without I/O: encapsulation and decapsulation per packet at several sizes,
//! and VXLAN header parsing. Run: `cargo bench -p vxswitch-benches`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::buf::PacketBuf;
use dataplane::counters::WorkerCounters;
use dataplane::pipeline::{Action, Pipeline, PipelineConfig, Recorder};
use dataplane::sample::{self, GW_MAC, PODS, REMOTE_VTEP_MAC, VTEP_MAC};
use dataplane::wire::VxlanPacket;

const SIZES: [usize; 4] = [64, 512, 1450, 9000];

fn tables() -> dataplane::fib::Tables {
    let mut t = sample::tables(0);
    if let Some(l) = t.local.as_mut() {
        l.tunnel_mtu = 9000; // jumbo underlay, so every size is encapsulated
    }
    t
}

/// Frame of `size` bytes of IP packet (the frame adds 14).
fn payload_for(size: usize) -> usize {
    size.saturating_sub(28).max(1)
}

fn encap(c: &mut Criterion) {
    let t = tables();
    let counters = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let pod = PODS[0];
    let mut g = c.benchmark_group("encap");
    for size in SIZES {
        let frame = sample::udp_frame(GW_MAC, pod.1, pod.2, [10, 1, 2, 2], 64, payload_for(size));
        let mut buf = PacketBuf::from_frame(&frame);
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &frame, |b, frame| {
            b.iter(|| {
                // Restore the frame's start and TTL: the copy is a header's worth, not the frame.
                buf.set_received(frame.len());
                buf.frame_mut()[..34].copy_from_slice(&frame[..34]);
                let a = p.from_port(&t, &counters, pod.0, &mut buf, &mut Recorder::default());
                debug_assert!(matches!(a, Action::Encap { .. }));
                black_box(a)
            })
        });
    }
    g.finish();
}

fn decap(c: &mut Criterion) {
    let t = tables();
    let counters = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let pod = PODS[0];
    let src = "198.51.100.2:50000".parse().unwrap();
    let mut g = c.benchmark_group("decap");
    for size in SIZES {
        let inner = sample::udp_frame(
            VTEP_MAC,
            REMOTE_VTEP_MAC,
            [10, 1, 2, 2],
            pod.2,
            64,
            payload_for(size),
        );
        let pkt = sample::vxlan(0x08, 1, 0, &inner);
        let mut buf = PacketBuf::from_frame(&pkt);
        g.throughput(Throughput::Bytes(pkt.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &pkt, |b, pkt| {
            b.iter(|| {
                buf.set_received(pkt.len());
                buf.frame_mut()[..8 + 34].copy_from_slice(&pkt[..8 + 34]);
                let a = p.from_tunnel(&t, &counters, src, None, &mut buf, &mut Recorder::default());
                debug_assert_eq!(a, Action::Output(pod.0));
                black_box(a)
            })
        });
    }
    g.finish();
}

fn parse(c: &mut Criterion) {
    let pkt = sample::vxlan(0x08, 1, 0, &[0u8; 64]);
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    g.bench_function("vxlan_parse", |b| {
        b.iter(|| {
            let v = VxlanPacket::new_checked(black_box(&pkt[..])).unwrap();
            black_box((v.i_flag(), v.vni(), v.has_reserved_bits()))
        })
    });
    g.finish();
}

criterion_group!(benches, encap, decap, parse);
criterion_main!(benches);
