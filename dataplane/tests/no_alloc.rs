//! The packet path allocates nothing: every kind of frame runs through the pipeline under a
//! counting global allocator, and the count must not move.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dataplane::buf::PacketBuf;
use dataplane::counters::WorkerCounters;
use dataplane::pipeline::{Action, Pipeline, PipelineConfig, Recorder};
use dataplane::sample::{self, GW_MAC, PODS, REMOTE_VTEP_MAC, VTEP_MAC};

struct Counting;

thread_local! {
    /// Allocations made by this thread (tests run in parallel threads).
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn allocs() -> usize {
    ALLOCS.with(|a| a.get())
}

fn count() {
    let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn the_pipeline_allocates_nothing_per_packet() {
    run(sample::tables(100));
}

#[test]
fn the_flow_tables_allocate_nothing_per_packet() {
    run(sample::with_flows(sample::tables(100)));
}

#[test]
fn the_counting_allocator_counts() {
    let before = allocs();
    let v = std::hint::black_box(vec![1u8; 64]);
    assert!(allocs() > before && v.len() == 64);
}

fn run(t: dataplane::fib::Tables) {
    let counters = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let pod = PODS[0];
    let from_pods: Vec<Vec<u8>> = vec![
        sample::arp_request(pod.1, pod.2, [10, 1, 1, 1]),
        sample::arp_request(pod.1, pod.2, [10, 1, 1, 99]),
        sample::udp_frame(GW_MAC, pod.1, pod.2, [10, 1, 2, 2], 64, 1000), // encap
        sample::udp_frame(GW_MAC, pod.1, pod.2, [10, 1, 2, 2], 1, 100),   // TTL: ICMP
        sample::udp_frame(GW_MAC, pod.1, pod.2, [10, 1, 2, 2], 64, 1440), // MTU: ICMP
        sample::udp_frame(PODS[1].1, pod.1, pod.2, [10, 1, 1, 3], 64, 100), // local
        sample::udp_frame(GW_MAC, pod.1, pod.2, [10, 1, 1, 1], 64, 100),  // host
        sample::udp_frame([0xff; 6], pod.1, pod.2, [10, 1, 1, 255], 64, 100),
        vec![1, 2, 3],
    ];
    let inner = sample::udp_frame(VTEP_MAC, REMOTE_VTEP_MAC, [10, 1, 2, 2], pod.2, 63, 1000);
    let from_tunnel: Vec<Vec<u8>> = vec![
        sample::vxlan(0x08, 1, 0, &inner),
        sample::vxlan(0x00, 1, 0, &inner),
        sample::vxlan(0x08, 1, 0xff, &inner),
        sample::vxlan(0x08, 9, 0, &inner),
        vec![0x08],
    ];
    let mut bufs: Vec<PacketBuf> = (0..from_pods.len() + from_tunnel.len())
        .map(|_| PacketBuf::new())
        .collect();
    let src = "198.51.100.2:50000".parse().unwrap();
    let mut encaps = 0;
    let mut sink = Recorder::default();

    let before = allocs();
    for round in 0..1000u64 {
        p.set_now_ms(round * 10);
        for (f, buf) in from_pods.iter().zip(bufs.iter_mut()) {
            buf.receive_area()[..f.len()].copy_from_slice(f);
            buf.set_received(f.len());
            if let Action::Encap { .. } = p.from_port(&t, &counters, pod.0, buf, &mut sink) {
                encaps += 1;
            }
        }
        for (f, buf) in from_tunnel
            .iter()
            .zip(bufs.iter_mut().skip(from_pods.len()))
        {
            buf.receive_area()[..f.len()].copy_from_slice(f);
            buf.set_received(f.len());
            let _ = p.from_tunnel(&t, &counters, src, None, buf, &mut sink);
        }
    }
    let after = allocs();
    assert_eq!(
        after - before,
        0,
        "the packet path allocated {} times",
        after - before
    );
    assert_eq!(encaps, 1000, "the encapsulation path ran");
}

#[test]
fn programs_longer_than_the_cache_and_limits_allocate_nothing_per_packet() {
    use controlplane::flow::{FlowAction, FlowSpec, PortRef};
    let pod = PODS[0];
    let spec = |table: u8, nw_dst: Option<[u8; 4]>, actions: Vec<FlowAction>| FlowSpec {
        table,
        priority: 10,
        cookie: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        matches: nw_dst
            .map(|a| {
                vec![
                    controlplane::flow::Match::DlType { value: 0x0800 },
                    controlplane::flow::Match::NwDst {
                        value: a.into(),
                        mask: std::net::Ipv4Addr::BROADCAST,
                    },
                ]
            })
            .unwrap_or_default(),
        actions,
    };
    let out = FlowAction::Output {
        port: PortRef::Number(PODS[1].0),
    };
    let resubmit = |table| FlowAction::Resubmit {
        in_port: None,
        table,
    };
    // To 10.1.1.3: 20 outputs (run by walking again); to 10.1.1.4: a resubmit fan past 4,096.
    let mut flows = vec![
        (0, spec(0, Some([10, 1, 1, 3]), vec![out.clone(); 20])),
        (
            1,
            spec(0, Some([10, 1, 1, 4]), vec![resubmit(1), resubmit(1)]),
        ),
    ];
    for t in 1..13u8 {
        flows.push((
            100 + t as u32,
            spec(t, None, vec![resubmit(t + 1), resubmit(t + 1)]),
        ));
    }
    flows.push((113, spec(13, None, vec![out.clone()])));
    let mut t = sample::tables(0);
    t.flows = Some(std::sync::Arc::new(dataplane::flow::FlowSet::build(
        1,
        &flows,
        &[],
        &|p| match p {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(_) => None,
        },
    )));
    let frames = [
        sample::udp_frame(PODS[1].1, pod.1, pod.2, [10, 1, 1, 3], 64, 100),
        sample::udp_frame(PODS[1].1, pod.1, pod.2, [10, 1, 1, 4], 64, 100),
    ];
    let counters = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut buf = PacketBuf::new();
    let mut sink = Recorder::default();
    let before = allocs();
    for round in 0..200u64 {
        p.set_now_ms(round);
        for f in &frames {
            buf.receive_area()[..f.len()].copy_from_slice(f);
            buf.set_received(f.len());
            let _ = p.from_port(&t, &counters, pod.0, &mut buf, &mut sink);
        }
    }
    let after = allocs();
    assert_eq!(after - before, 0, "allocated {} times", after - before);
    assert_eq!(sink.count, 200 * 20, "every output of every packet");
    let limit = dataplane::counters::DropReason::ResubmitLimit as usize;
    assert_eq!(
        counters.drops[limit].get(),
        200,
        "the fan stops at the limit"
    );
}
