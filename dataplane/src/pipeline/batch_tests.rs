//! A GRO batch classified once (`rx_batch`) gives the same frames, actions and counters as
//! the same segments classified one by one; a segment that differs is classified alone.

use super::*;
use controlplane::flow::{FlowAction, FlowSpec, Match, PortRef};

use crate::sample::{GW_MAC, PODS, REMOTE_VTEP_MAC, VTEP_MAC};

const SRC: &str = "198.51.100.2:50000";
const POD3: [u8; 6] = PODS[0].1;
const POD4: [u8; 6] = PODS[1].1;

/// One inner TCP segment from remote pod 10.1.2.2 to `dst`, `len` bytes of payload at `seq`.
fn tcp_segment(dst: [u8; 4], seq: u32, flags: u8, len: usize, tos: u8) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ethernet2(REMOTE_VTEP_MAC, VTEP_MAC)
        .ipv4([10, 1, 2, 2], dst, 63)
        .tcp(40000, 5201, seq, 512);
    if flags & 0x08 != 0 {
        b = b.psh();
    }
    if flags & 0x01 != 0 {
        b = b.fin();
    }
    let b = b.ack(7);
    let mut out = Vec::new();
    b.write(&mut out, &vec![0x5a; len]).unwrap();
    out[14 + 1] = tos;
    // Identification differs from segment to segment, as a sender's would.
    out[14 + 4..14 + 6].copy_from_slice(&(seq as u16).to_be_bytes());
    Ipv4Packet::new_unchecked(&mut out[14..]).fill_checksum();
    out
}

fn vxlan(inner: &[u8]) -> Vec<u8> {
    let mut p = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    p.extend_from_slice(inner);
    p
}

/// A batch of `n` full segments and a shorter last one, the `k`th changed by `edit`.
fn batch(n: usize, edit: impl Fn(usize, u32) -> Option<Vec<u8>>) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let seq = 1000 + i as u32 * 1400;
            let inner = edit(i, seq).unwrap_or_else(|| {
                let len = if i + 1 == n { 300 } else { 1400 };
                tcp_segment([10, 1, 1, 2], seq, 0, len, 0)
            });
            vxlan(&inner)
        })
        .collect()
}

/// What a run gives: the actions, the outputs (with the frames) and the counters.
type Run = (Vec<Action>, Vec<(Action, Vec<u8>)>, WorkerCounters);

/// Runs a batch as the worker does (first, later ...) in batch or segment mode.
fn run(t: &Tables, rx_batch: bool, ecn: u8, datagrams: &[Vec<u8>]) -> Run {
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig {
        rx_batch,
        ..PipelineConfig::default()
    });
    let mut rec = Recorder::keeping();
    let mut actions = Vec::new();
    for (i, d) in datagrams.iter().enumerate() {
        let pos = if i == 0 {
            BatchPos::First
        } else {
            BatchPos::Later
        };
        let mut buf = PacketBuf::from_frame(d);
        let a = p.from_tunnel_batch(
            t,
            &c,
            SRC.parse().unwrap(),
            None,
            ecn,
            pos,
            &mut buf,
            &mut rec,
        );
        actions.push(a);
    }
    (actions, rec.outputs, c)
}

/// Every counter that must not depend on the mode: ports, flows, tables, drops and the events
/// other than the flow cache's and the batch's own.
fn figures(c: &WorkerCounters) -> Vec<u64> {
    let mut v = Vec::new();
    for p in c.ports.iter().take(8) {
        v.extend([
            p.rx_packets.get(),
            p.rx_bytes.get(),
            p.tx_packets.get(),
            p.tx_bytes.get(),
        ]);
    }
    for f in c.flows.iter().take(8) {
        v.extend([f.packets.get(), f.bytes.get()]);
    }
    for t in c.tables.iter().take(4) {
        v.extend([t.lookups.get(), t.matches.get()]);
    }
    v.extend(c.drops.iter().map(|d| d.get()));
    for e in Event::ALL {
        if !matches!(
            e,
            Event::FlowCacheHit
                | Event::FlowCacheMiss
                | Event::RxBatchReplayed
                | Event::RxBatchClassified
        ) {
            v.push(c.events[*e as usize].get());
        }
    }
    v
}

/// Runs both modes; asserts equal actions, frames and counters; returns the batch mode's
/// (replayed, classified alone) counts.
fn both_modes_agree(t: &Tables, ecn: u8, datagrams: &[Vec<u8>]) -> (Vec<Action>, u64, u64) {
    let (a1, o1, c1) = run(t, true, ecn, datagrams);
    let (a2, o2, c2) = run(t, false, ecn, datagrams);
    assert_eq!(a1, a2, "actions");
    assert_eq!(o1.len(), o2.len(), "outputs");
    for (i, (x, y)) in o1.iter().zip(&o2).enumerate() {
        assert_eq!(x, y, "output {i}: the same frame either way");
    }
    assert_eq!(figures(&c1), figures(&c2), "counters");
    assert_eq!(c2.events[Event::RxBatchReplayed as usize].get(), 0);
    (
        a1,
        c1.events[Event::RxBatchReplayed as usize].get(),
        c1.events[Event::RxBatchClassified as usize].get(),
    )
}

fn with_specs(t: &Tables, specs: Vec<FlowSpec>) -> Tables {
    let specs: Vec<(u32, FlowSpec)> = specs
        .into_iter()
        .enumerate()
        .map(|(i, s)| (i as u32, s))
        .collect();
    let mut t = t.clone();
    t.flows = Some(std::sync::Arc::new(crate::flow::FlowSet::build(
        9,
        &specs,
        &[],
        &|p| match p {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(_) => None,
        },
    )));
    t
}

fn spec(priority: u16, matches: Vec<Match>, actions: Vec<FlowAction>) -> FlowSpec {
    FlowSpec {
        table: 0,
        priority,
        cookie: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        matches,
        actions,
    }
}

#[test]
fn a_batch_is_classified_once_with_the_same_frames_and_counters() {
    let plain = crate::sample::tables(0);
    let flows = with_specs(&plain, vec![spec(1, vec![], vec![FlowAction::Normal])]);
    for t in [plain, flows] {
        let d = batch(8, |_, _| None);
        let (a, replayed, alone) = both_modes_agree(&t, ECN_NOT_ECT, &d);
        assert!(a.iter().all(|a| *a == Action::Output(3)), "{a:?}");
        assert_eq!((replayed, alone), (7, 0));
    }
    // Flows credited per segment, with each segment's length.
    let t = with_specs(
        &crate::sample::tables(0),
        vec![spec(1, vec![], vec![FlowAction::Normal])],
    );
    let d = batch(5, |_, _| None);
    let (_, out, c) = run(&t, true, ECN_NOT_ECT, &d);
    assert_eq!(c.flows[0].packets.get(), 5);
    let bytes: usize = d.iter().map(|d| d.len() - 8).sum();
    assert_eq!(c.flows[0].bytes.get(), bytes as u64);
    // Rewritten as routing does it: MACs, TTL − 1, a valid header checksum.
    for (_, f) in &out {
        assert_eq!(&f[0..6], &POD3);
        assert_eq!(&f[6..12], &GW_MAC);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.hop_limit(), 62);
        assert!(ip.verify_checksum());
    }
}

#[test]
fn a_segment_with_other_tcp_flags_or_another_destination_is_classified_alone() {
    let t = crate::sample::tables(0);
    let d = batch(6, |i, seq| {
        (i == 2).then(|| tcp_segment([10, 1, 1, 2], seq, 0x09, 1400, 0))
    });
    let (a, replayed, alone) = both_modes_agree(&t, ECN_NOT_ECT, &d);
    assert!(a.iter().all(|a| *a == Action::Output(3)));
    assert_eq!((replayed, alone), (4, 1));

    let d = batch(6, |i, seq| {
        (i == 2).then(|| tcp_segment([10, 1, 1, 3], seq, 0, 1400, 0))
    });
    let (a, replayed, alone) = both_modes_agree(&t, ECN_NOT_ECT, &d);
    assert_eq!(
        a[2],
        Action::Output(4),
        "the third goes where its address says"
    );
    assert!(a
        .iter()
        .enumerate()
        .all(|(i, a)| i == 2 || *a == Action::Output(3)));
    assert_eq!((replayed, alone), (4, 1));
    let (_, out, _) = run(&t, true, ECN_NOT_ECT, &d);
    assert_eq!(&out[2].1[0..6], &POD4);
}

#[test]
fn a_segment_a_flow_drops_is_dropped_alone() {
    let t = with_specs(
        &crate::sample::tables(0),
        vec![
            spec(
                10,
                vec![
                    Match::DlType { value: 0x0800 },
                    Match::NwDst {
                        value: [10, 1, 1, 3].into(),
                        mask: std::net::Ipv4Addr::BROADCAST,
                    },
                ],
                vec![FlowAction::Drop],
            ),
            spec(1, vec![], vec![FlowAction::Normal]),
        ],
    );
    let d = batch(6, |i, seq| {
        (i == 2).then(|| tcp_segment([10, 1, 1, 3], seq, 0, 1400, 0))
    });
    let (a, replayed, alone) = both_modes_agree(&t, ECN_NOT_ECT, &d);
    assert_eq!(a[2], Action::Drop(DropReason::FlowDrop));
    assert_eq!((replayed, alone), (4, 1));
    let (_, _, c) = run(&t, true, ECN_NOT_ECT, &d);
    assert_eq!(
        c.flows[0].packets.get(),
        1,
        "the drop flow: the third segment"
    );
    assert_eq!(c.flows[1].packets.get(), 5, "normal: the others");

    // A first segment the flows drop: nothing to replay, every segment classified.
    let d = batch(4, |_, seq| {
        Some(tcp_segment([10, 1, 1, 3], seq, 0, 1400, 0))
    });
    let (a, replayed, alone) = both_modes_agree(&t, ECN_NOT_ECT, &d);
    assert!(a.iter().all(|a| *a == Action::Drop(DropReason::FlowDrop)));
    assert_eq!((replayed, alone), (0, 3));
}

#[test]
fn verdicts_that_are_not_plain_are_never_replayed() {
    let out = |n| FlowAction::Output {
        port: PortRef::Number(n),
    };
    // Two outputs per packet.
    let t = with_specs(
        &crate::sample::tables(0),
        vec![spec(1, vec![], vec![out(4), out(3)])],
    );
    let d = batch(4, |_, _| None);
    let (_, replayed, alone) = both_modes_agree(&t, ECN_NOT_ECT, &d);
    assert_eq!((replayed, alone), (0, 3));
    // A flood.
    let t = with_specs(
        &crate::sample::tables(0),
        vec![spec(1, vec![], vec![FlowAction::Flood])],
    );
    let (_, replayed, _) = both_modes_agree(&t, ECN_NOT_ECT, &d);
    assert_eq!(replayed, 0);
}

#[test]
fn a_damaged_header_is_classified_alone_and_dropped_as_before() {
    let t = crate::sample::tables(0);
    let d = batch(5, |i, seq| {
        (i == 3).then(|| {
            let mut s = tcp_segment([10, 1, 1, 2], seq, 0, 1400, 0);
            s[14 + 10] ^= 0x5a;
            s
        })
    });
    let (a, replayed, alone) = both_modes_agree(&t, ECN_NOT_ECT, &d);
    assert_eq!(a[3], Action::Drop(DropReason::Ipv4Checksum));
    assert_eq!((replayed, alone), (3, 1));
}

#[test]
fn ecn_marks_are_replayed_as_rfc_6040_sets_them() {
    let t = crate::sample::tables(0);
    // ECT(0) inner, CE outer: every inner packet leaves CE with a valid checksum.
    let d = batch(5, |i, seq| {
        let len = if i == 4 { 100 } else { 1400 };
        Some(tcp_segment([10, 1, 1, 2], seq, 0, len, ECN_ECT0))
    });
    let (_, replayed, _) = both_modes_agree(&t, ECN_CE, &d);
    assert_eq!(replayed, 4);
    let (_, out, _) = run(&t, true, ECN_CE, &d);
    for (_, f) in &out {
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.dscp_ecn() & ECN_MASK, ECN_CE);
        assert!(ip.verify_checksum());
    }
    // CE on Not-ECT inner packets: each dropped, counted.
    let d = batch(3, |_, _| None);
    let (a, replayed, _) = both_modes_agree(&t, ECN_CE, &d);
    assert!(a
        .iter()
        .all(|a| *a == Action::Drop(DropReason::EcnCeNotEct)));
    assert_eq!(replayed, 0);
}

#[test]
fn a_segment_with_another_vni_is_classified_alone() {
    let t = crate::sample::tables(0);
    let mut d = batch(4, |_, _| None);
    // VNI 20: another tenant, dropped.
    d[1][6] = 20;
    let (a, replayed, alone) = both_modes_agree(&t, ECN_NOT_ECT, &d);
    assert_eq!(a[1], Action::Drop(DropReason::VniMismatch));
    assert_eq!((replayed, alone), (2, 1));
}

#[test]
fn an_ipv6_batch_is_classified_once_too() {
    let t = crate::sample::tables(0);
    let dst = crate::sample::pod_ip6(PODS[1].2).octets();
    let seg = |i: usize, flags: u8| {
        let mut b = etherparse::PacketBuilder::ethernet2(REMOTE_VTEP_MAC, VTEP_MAC)
            .ipv6(
                "fd00:10:1:2::5"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
                dst,
                63,
            )
            .tcp(40000, 5201, 1000 + i as u32 * 1400, 512);
        if flags & 0x01 != 0 {
            b = b.fin();
        }
        let mut out = Vec::new();
        let len = if i == 5 { 10 } else { 1400 };
        b.ack(9).write(&mut out, &vec![0x33; len]).unwrap();
        vxlan(&out)
    };
    let d: Vec<Vec<u8>> = (0..6).map(|i| seg(i, if i == 3 { 1 } else { 0 })).collect();
    let (a, replayed, alone) = both_modes_agree(&t, ECN_ECT0, &d);
    assert!(a.iter().all(|a| *a == Action::Output(4)), "{a:?}");
    assert_eq!((replayed, alone), (4, 1));
    let (_, out, _) = run(&t, true, ECN_NOT_ECT, &d);
    for (_, f) in &out {
        assert_eq!(&f[0..6], &POD4);
        assert_eq!(Ipv6Packet::new_checked(&f[14..]).unwrap().hop_limit(), 62);
    }
}
