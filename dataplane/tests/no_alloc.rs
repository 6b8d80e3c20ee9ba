//! The packet path allocates nothing: every kind of frame runs through the pipeline under a
//! counting global allocator, and the count must not move. The same holds for the offloads
//! (merging TCP segments for a TAP, segmenting a super-frame, completing a partial checksum),
//! for the underlay send with its control messages, and for a whole worker — TAP reads and
//! writes, the GSO batch of encapsulated frames, merged super-frames to the TAP — running
//! against a TAP and loopback sockets in a network namespace of the test's own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

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

/// Allocations made by every thread (the worker test's worker thread among them).
static ALL_ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn count() {
    ALL_ALLOCS.fetch_add(1, Ordering::Relaxed);
    let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
}

/// The tests of this file run one at a time: the worker test counts every thread's
/// allocations, so no other test may allocate meanwhile.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
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
    let _serial = serial();
    run(sample::tables(100));
}

#[test]
fn the_flow_tables_allocate_nothing_per_packet() {
    let _serial = serial();
    run(sample::with_flows(sample::tables(100)));
}

#[test]
fn the_counting_allocator_counts() {
    let _serial = serial();
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
    let _serial = serial();
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

/// An IPv4/TCP super-frame from the remote node's pod 10.1.2.2 to the local pod 10.1.1.2
/// (routed: to this node's VTEP MAC), with `payload` bytes; the IPv4 checksum is complete.
fn tcp_superframe(payload: usize) -> Vec<u8> {
    use dataplane::wire::checksum;
    let mut f = VTEP_MAC.to_vec();
    f.extend_from_slice(&REMOTE_VTEP_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
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
    ]);
    f.extend_from_slice(&[64, 6, 0, 0, 10, 1, 2, 2, 10, 1, 1, 2]);
    // Ports 40000 → 5002, sequence 1, ack 7, a 32-byte header (timestamps), ACK.
    f.extend_from_slice(&[0x9c, 0x40, 0x13, 0x8a, 0, 0, 0, 1, 0, 0, 0, 7]);
    f.extend_from_slice(&[
        0x80, 0x10, 0x01, 0xf6, 0, 0, 0, 0, 1, 1, 8, 10, 0, 0, 0, 42, 0, 0, 0, 9,
    ]);
    f.extend((0..payload).map(|i| i as u8));
    let c = checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

const MSS: usize = 1398;
const TCP_HDR: usize = 14 + 20 + 32;
const VXLAN_VNI1: [u8; 8] = [0x08, 0, 0, 0, 0, 0, 1, 0];

/// The segments of a super-frame of `n` MSS-sized segments, each behind a VXLAN header (VNI
/// 1): datagrams as the remote node sends them.
fn tcp_segments(n: usize) -> Vec<Vec<u8>> {
    let sf = tcp_superframe(n * MSS);
    let mut out = vec![0u8; n * (8 + TCP_HDR + MSS)];
    let w = dataplane::offload::segment_tcp(&sf, MSS, &VXLAN_VNI1, 0, n, &mut out)
        .expect("room for every segment");
    out[..w]
        .chunks(8 + TCP_HDR + MSS)
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn the_offloads_allocate_nothing_per_packet() {
    use dataplane::offload::{complete_partial, segment_tcp, Coalescer, Offer};
    use dataplane::wire::vnet::{VnetHdr, F_NEEDS_CSUM};
    let _serial = serial();
    let sf = tcp_superframe(46 * MSS);
    let mut out = vec![0u8; 80_000];
    let segs: Vec<Vec<u8>> = tcp_segments(46)
        .into_iter()
        .map(|d| d[8..].to_vec())
        .collect();
    let mut co = Coalescer::default();
    // A UDP frame with a partial checksum (the pseudo-header sum in the field), as a pod
    // hands it over with offloads on.
    let udp = sample::udp_frame(GW_MAC, PODS[0].1, PODS[0].2, [10, 1, 2, 2], 64, 1000);
    let mut buf = PacketBuf::new();
    let (mut merged, mut completed) = (0, 0);

    let before = allocs();
    for _ in 0..200 {
        let w = segment_tcp(&sf, MSS, &VXLAN_VNI1, 0, 64, &mut out);
        assert!(w.is_some());
        for s in &segs {
            if co.offer(3, s) == Offer::Flush {
                co.take();
                co.offer(3, s);
            }
        }
        if let Some((_, _, n)) = co.take() {
            merged += n;
        }
        buf.receive_area()[..udp.len()].copy_from_slice(&udp);
        buf.set_received(udp.len());
        buf.vnet = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 6,
            ..VnetHdr::default()
        };
        if complete_partial(&mut buf, 0) {
            completed += 1;
        }
    }
    let after = allocs();
    assert_eq!(
        after - before,
        0,
        "the offloads allocated {} times",
        after - before
    );
    assert_eq!(merged, 200 * 46, "every segment was merged");
    assert_eq!(completed, 200, "every partial checksum was completed");
}

#[test]
fn the_underlay_send_allocates_nothing_per_datagram() {
    use dataplane::io::udp::{send_meta, SendMeta};
    let _serial = serial();
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
    rx.set_nonblocking(true).expect("non-blocking");
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
    let to = rx.local_addr().expect("bound");
    let datagram = [0x5au8; 100];
    let batch = [0x5au8; 100 * 16];
    let mut got = [0u8; 2048];
    let (mut sent, mut received) = (0, 0);

    let before = allocs();
    for _ in 0..200 {
        let plain = SendMeta {
            tos: 2,
            ttl: 64,
            segment: None,
        };
        if send_meta(&tx, &datagram, to, plain).is_ok() {
            sent += 1;
        }
        let gso = SendMeta {
            segment: Some(100),
            ..plain
        };
        if send_meta(&tx, &batch, to, gso).is_ok() {
            sent += 16;
        }
        while rx.recv(&mut got).is_ok() {
            received += 1;
        }
    }
    let after = allocs();
    assert_eq!(
        after - before,
        0,
        "sending allocated {} times",
        after - before
    );
    assert!(
        sent >= 200 && received > 0,
        "{sent} sent, {received} received"
    );
}

/// A network namespace of the test's own, deleted on drop (also on panic).
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ns = Netns(name);
        ns.ip(&["netns", "add", &ns.0]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("ip (iproute2) runs");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs a command inside the namespace.
    fn exec(&self, cmd: &[&str]) {
        let mut args = vec!["netns", "exec", &self.0];
        args.extend_from_slice(cmd);
        self.ip(&args);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// A whole worker, transmit side included: frames a pod's kernel sends through the TAP are
/// read, routed, encapsulated and leave in UDP GSO batches; VXLAN datagrams from the remote
/// node are decapsulated, their TCP segments merged into super-frames, and written to the
/// TAP; the pod's kernel answers the segments (resets), which go back out through the tunnel.
/// Everything runs in a namespace of the test's own: a TAP for pod 10.1.1.2 and loopback
/// sockets (this node's VTEP 127.0.0.1, the remote node's 127.0.0.2). After a warm-up, not
/// one allocation on any thread. Needs root (CAP_NET_ADMIN and /dev/net/tun), as CI has.
#[test]
fn the_worker_allocates_nothing_per_packet_transmit_side_included() {
    use controlplane::proto::PORT_TUNNEL;
    use dataplane::counters::Event;
    use dataplane::io::netns::{netns_path, NetnsThread};
    use dataplane::io::tap::{offload, TapOptions, TapQueue};
    use dataplane::worker::{self, Control, WorkerConfig};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
    use std::time::{Duration, Instant};

    let _serial = serial();
    let ns = Netns::new(format!("vxna{}", std::process::id()));
    ns.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
    ns.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"]);
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    let thread = NetnsThread::start().expect("a namespace thread");
    let path = netns_path(&ns.0);
    let tap = thread
        .run(Some(&path), || {
            let q = TapQueue::open("vxt0", TapOptions { vnet_hdr: true })?;
            q.set_offload(offload::CSUM | offload::TSO4 | offload::TSO6)?;
            Ok(q)
        })
        .expect("a TAP (needs root and /dev/net/tun)");
    let pod_mac = "0a:58:0a:01:01:02";
    ns.exec(&["ip", "link", "set", "vxt0", "address", pod_mac]);
    ns.exec(&["ip", "addr", "add", "10.1.1.2/24", "dev", "vxt0"]);
    ns.exec(&["ip", "link", "set", "vxt0", "up"]);
    ns.exec(&[
        "ip",
        "neigh",
        "replace",
        "10.1.1.1",
        "lladdr",
        "0a:58:0a:01:01:01",
        "dev",
        "vxt0",
        "nud",
        "permanent",
    ]);
    ns.exec(&[
        "ip",
        "route",
        "add",
        "10.1.2.0/24",
        "via",
        "10.1.1.1",
        "dev",
        "vxt0",
    ]);
    let local_vtep: IpAddr = Ipv4Addr::new(127, 0, 0, 1).into();
    let (underlay, remote, pod_tx, pod_rx) = thread
        .run(Some(&path), move || {
            let underlay = dataplane::io::udp::bind_underlay(local_vtep, 4789)?;
            let remote = UdpSocket::bind("127.0.0.2:4789")?;
            let pod_tx = UdpSocket::bind("10.1.1.2:7000")?;
            let pod_rx = UdpSocket::bind("10.1.1.2:5001")?;
            remote.set_nonblocking(true)?;
            pod_rx.set_nonblocking(true)?;
            Ok((underlay, remote, pod_tx, pod_rx))
        })
        .expect("sockets in the namespace");

    // Node n1 (VTEP 127.0.0.1) with pod 10.1.1.2 on port 3; n2 (10.1.2.0/24) at 127.0.0.2.
    let mut t = sample::tables(0);
    t.local.as_mut().expect("a local node").vtep = local_vtep;
    t.nodes[0].vtep = Ipv4Addr::new(127, 0, 0, 2).into();
    t.reindex();
    let (mut fib, readers) = dataplane::fib::new();
    fib.replace(t);
    let cfg = WorkerConfig {
        id: 0,
        vxlan_port: 4789,
        pipeline: PipelineConfig {
            src_ports: 4,
            ..PipelineConfig::default()
        },
        busy_poll: false,
        spin_us: 0,
        polling: Default::default(),
        pin: None,
        gro: true,
        udp_zero_csum: false,
    };
    let mut w = worker::spawn(cfg, readers.reader()).expect("a worker");
    w.send(Control::Underlay {
        vtep: local_vtep,
        socket: underlay,
    });
    w.send(Control::AddPort {
        no: PODS[0].0,
        queue: tap,
    });

    // What each round sends: from the pod, 40 datagrams to the remote pod; from the remote
    // node, 20 VXLAN datagrams to the pod and the 10 segments of a TCP super-frame.
    let to_remote_pod = SocketAddr::from(([10, 1, 2, 2], 9000));
    let to_vtep = SocketAddr::from(([127, 0, 0, 1], 4789));
    let payload = [0x33u8; 100];
    let inner = sample::udp_frame(VTEP_MAC, REMOTE_VTEP_MAC, [10, 1, 2, 2], PODS[0].2, 64, 100);
    let udp_datagram = sample::vxlan(0x08, 1, 0, &inner);
    let segments = tcp_segments(10);
    let mut scratch = [0u8; 65536];
    let c = w.counters.clone();
    let pod = c.port(PODS[0].0).expect("port counters");
    let tunnel = c.port(PORT_TUNNEL).expect("port counters");
    let mut round = |sent_pod: &mut u64, sent_tunnel: &mut u64| {
        for _ in 0..40 {
            if pod_tx.send_to(&payload, to_remote_pod).is_ok() {
                *sent_pod += 1;
            }
        }
        for _ in 0..20 {
            if remote.send_to(&udp_datagram, to_vtep).is_ok() {
                *sent_tunnel += 1;
            }
        }
        for s in &segments {
            if remote.send_to(s, to_vtep).is_ok() {
                *sent_tunnel += 1;
            }
        }
        // Until the worker has read all of it (bounded), draining what it sends.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            while remote.recv(&mut scratch).is_ok() {}
            while pod_rx.recv(&mut scratch).is_ok() {}
            let done = pod.rx_packets.get() >= *sent_pod && tunnel.rx_packets.get() >= *sent_tunnel;
            if done || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let (mut sent_pod, mut sent_tunnel) = (0u64, 0u64);
    for _ in 0..30 {
        round(&mut sent_pod, &mut sent_tunnel);
    }
    let ev = |e: Event| c.events[e as usize].get();
    let (batched0, gso_writes0, encap0, decap0) = (
        ev(Event::GsoBatched),
        ev(Event::TapGsoWrites),
        ev(Event::Encapsulated),
        ev(Event::Decapsulated),
    );

    let before = ALL_ALLOCS.load(Ordering::SeqCst);
    for _ in 0..200 {
        round(&mut sent_pod, &mut sent_tunnel);
    }
    let after = ALL_ALLOCS.load(Ordering::SeqCst);

    w.stop();
    let (pod_rx_n, tunnel_rx_n) = (pod.rx_packets.get(), tunnel.rx_packets.get());
    assert!(
        pod_rx_n >= sent_pod && tunnel_rx_n >= sent_tunnel,
        "the worker read {pod_rx_n} of {sent_pod} frames from the TAP and {tunnel_rx_n} of \
         {sent_tunnel} datagrams"
    );
    let batched = ev(Event::GsoBatched) - batched0;
    let gso_writes = ev(Event::TapGsoWrites) - gso_writes0;
    let encap = ev(Event::Encapsulated) - encap0;
    let decap = ev(Event::Decapsulated) - decap0;
    assert_eq!(
        after - before,
        0,
        "the worker allocated {} times for {} frames from the TAP and {} datagrams \
         ({encap} encapsulated, {batched} of them in GSO batches; {decap} decapsulated, {gso_writes} \
         super-frames written to the TAP)",
        after - before,
        40 * 200,
        30 * 200
    );
    assert!(
        encap >= 40 * 200 && decap >= 30 * 200,
        "{encap} encapsulated, {decap} decapsulated"
    );
    assert!(batched > 0, "no encapsulated frame left in a GSO batch");
    assert!(
        gso_writes > 0,
        "no merged super-frame was written to the TAP"
    );
}
