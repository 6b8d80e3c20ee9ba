//! Decapsulation of one UDP GRO batch: 46 TCP segments of a 64 KB super-frame (MTU 1450),
//! each classified (`--rx-classify segment`) or the first classified and its verdict replayed
//! (`batch`), with the built-in forwarding and with the sample flow tables.
//! Run: `cargo bench -p vxswitch-benches --bench rxbatch -- --quick`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::buf::PacketBuf;
use dataplane::counters::WorkerCounters;
use dataplane::pipeline::{Action, BatchPos, Pipeline, PipelineConfig, Recorder};
use dataplane::sample::{self, PODS, REMOTE_VTEP_MAC, VTEP_MAC};
use dataplane::wire::Ipv4Packet;

const SEGMENTS: usize = 46;
const MSS: usize = 1398;
/// VXLAN + Ethernet + IPv4 + TCP with the timestamp option.
const HDR: usize = 8 + 14 + 20 + 32;

/// The datagrams of one GRO batch: VXLAN (VNI 1) + a TCP segment from 10.1.2.2 to pod 3.
fn batch() -> Vec<Vec<u8>> {
    (0..SEGMENTS)
        .map(|i| {
            let mut d = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
            d.extend_from_slice(&VTEP_MAC);
            d.extend_from_slice(&REMOTE_VTEP_MAC);
            d.extend_from_slice(&[0x08, 0x00]);
            let total = (20 + 32 + MSS) as u16;
            let id = i as u16;
            d.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 63, 6, 0, 0]);
            d[8 + 14 + 2..8 + 14 + 4].copy_from_slice(&total.to_be_bytes());
            d[8 + 14 + 4..8 + 14 + 6].copy_from_slice(&id.to_be_bytes());
            d.extend_from_slice(&[10, 1, 2, 2]);
            d.extend_from_slice(&PODS[0].2);
            let seq = 1000 + (i * MSS) as u32;
            d.extend_from_slice(&40000u16.to_be_bytes());
            d.extend_from_slice(&5201u16.to_be_bytes());
            d.extend_from_slice(&seq.to_be_bytes());
            d.extend_from_slice(&7u32.to_be_bytes());
            d.extend_from_slice(&[0x80, 0x10, 0x01, 0xf5, 0x12, 0x34, 0, 0]);
            d.extend_from_slice(&[1, 1, 8, 10]);
            d.extend_from_slice(&(i as u64).to_be_bytes());
            d.extend(std::iter::repeat_n(0x5a, MSS));
            Ipv4Packet::new_unchecked(&mut d[8 + 14..]).fill_checksum();
            d
        })
        .collect()
}

fn gro_batch(c: &mut Criterion) {
    let plain = sample::tables(0);
    let flows = sample::with_flows(plain.clone());
    let src = "198.51.100.2:50000".parse().unwrap();
    let datagrams = batch();
    let bytes: usize = datagrams.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("rx_gro_batch");
    g.throughput(Throughput::Bytes(bytes as u64));
    for (tname, t) in [("normal", &plain), ("flows", &flows)] {
        for mode in ["segment", "batch"] {
            let counters = WorkerCounters::default();
            let mut p = Pipeline::new(PipelineConfig {
                rx_batch: mode == "batch",
                ..PipelineConfig::default()
            });
            let mut bufs: Vec<PacketBuf> =
                datagrams.iter().map(|d| PacketBuf::from_frame(d)).collect();
            let id = BenchmarkId::new(tname, mode);
            g.bench_function(id, |b| {
                b.iter(|| {
                    let mut rec = Recorder::default();
                    for (i, (buf, d)) in bufs.iter_mut().zip(&datagrams).enumerate() {
                        // Restore the headers the pipeline rewrote in place.
                        buf.set_received(d.len());
                        buf.frame_mut()[..HDR].copy_from_slice(&d[..HDR]);
                        let pos = if i == 0 {
                            BatchPos::First
                        } else {
                            BatchPos::Later
                        };
                        let a = p.from_tunnel_batch(t, &counters, src, None, 0, pos, buf, &mut rec);
                        debug_assert_eq!(a, Action::Output(PODS[0].0));
                        black_box(a);
                    }
                    black_box(rec.count)
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, gro_batch);
criterion_main!(benches);
