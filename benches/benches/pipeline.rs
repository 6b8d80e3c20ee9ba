//! The packet path without I/O: encapsulation and decapsulation per packet at several sizes,
//! and VXLAN header parsing. Run: `cargo bench -p vxswitch-benches --bench pipeline`.
//!
//! Two figures for encapsulation, which measure different things:
//! - `encap/N`: a frame from a pod port through the whole pipeline to an `Encap` action: flow
//!   tables, the switching/routing decision (IPv4 header checksum verified, TTL decremented,
//!   path-MTU and DF checks, tenant check), the outer TOS/TTL (ECN per RFC 6040) and the VXLAN
//!   header. This is the per-frame cost of the switch's decision plus encapsulation.
//! - `encap_header/N`: the encapsulation alone: the VXLAN header written in front of the frame
//!   and the outer UDP source port (the inner flow hash), by the pipeline's own
//!   `Pipeline::vxlan_header`. The outer IP/UDP headers are the kernel's (UDP socket).
//!   `flow_hash/N` times the hash alone.

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

/// The VXLAN header and the outer source port alone (see the module comment).
fn encap_header(c: &mut Criterion) {
    let p = Pipeline::new(PipelineConfig::default());
    let pod = PODS[0];
    let mut g = c.benchmark_group("encap_header");
    g.throughput(Throughput::Elements(1));
    for size in SIZES {
        let frame = sample::udp_frame(GW_MAC, pod.1, pod.2, [10, 1, 2, 2], 64, payload_for(size));
        let mut buf = PacketBuf::from_frame(&frame);
        g.bench_with_input(BenchmarkId::from_parameter(size), &frame, |b, frame| {
            b.iter(|| {
                // Back to the frame's start: the header goes in the same headroom each time.
                buf.set_received(frame.len());
                black_box(p.vxlan_header(&mut buf, black_box(1)))
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("flow_hash");
    g.throughput(Throughput::Elements(1));
    let frame = sample::udp_frame(GW_MAC, pod.1, pod.2, [10, 1, 2, 2], 64, payload_for(64));
    g.bench_function("64", |b| {
        b.iter(|| black_box(dataplane::pipeline::flow_hash(black_box(&frame))))
    });
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

criterion_group!(benches, encap, encap_header, decap, parse);
criterion_main!(benches);
