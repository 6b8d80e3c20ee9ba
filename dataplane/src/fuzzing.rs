//! What the fuzz targets of the dataplane do with one input, shared with the tests that replay
//! every saved corpus input on stable (`tests/fuzz_corpus.rs`). The wire views' walk is
//! [`crate::wire::exercise::fuzz_one`].
//!
//! Each function takes arbitrary bytes and must return without panicking, looping or growing
//! memory beyond a bound; the properties checked with `assert!` are ones the code promises
//! (this module is for tests and fuzzing only). The targets live in `fuzz/`
//! (`cargo +nightly fuzz run pipeline`, `state_file`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use controlplane::flow::PortRef;
use controlplane::proto::{PORT_FIRST_POD, PORT_HOST, PORT_TUNNEL};

use crate::buf::PacketBuf;
use crate::counters::{WorkerCounters, MAX_PORTS};
use crate::fib::{PortNo, Tables};
use crate::offload::{self, Coalescer, Offer};
use crate::pipeline::{Action, OuterTos, OuterTtl, Pipeline, PipelineConfig, Sink};
use crate::sample::{self, GW_MAC, PODS, REMOTE_VTEP_MAC, VTEP_MAC};
use crate::switch;
use crate::wire::vnet::{self, VnetHdr};

/// Largest frame the pipeline target passes on (a TCP super-frame from a TAP may be 64 KiB).
pub const MAX_FRAME: usize = 65_536;

/// A flow program in front of the built-in forwarding, in the syntax `vxctl add-flow` takes:
/// port security, tenant registers, field rewrites, bit moves, resubmits, a tunnel output and
/// a flood, ending in `normal`.
pub const FLOW_PROGRAM: &str = "\
table=0,priority=300,in_port=3,dl_src=0a:58:0a:01:01:02,ip,nw_src=10.1.1.2 actions=load:1->reg0[],resubmit(,10)
table=0,priority=290,in_port=3,arp actions=goto_table:10
table=0,priority=280,in_port=3 actions=drop
table=0,priority=200,in_port=vxlan0,tun_id=20 actions=move:tun_id[0..15]->reg1[0..15],goto_table:10
table=0,priority=150,in_port=5 actions=load:0x14->reg1[],set_field:20->tun_id,goto_table:10
table=0,priority=0 actions=goto_table:10
table=10,priority=120,udp,tp_dst=53 actions=set_field:10.1.1.3->nw_dst,set_field:0a:58:0a:01:01:03->eth_dst,dec_ttl,output:4
table=10,priority=110,tcp,reg1=0x14 actions=mod_dl_src:0a:58:0a:01:01:01,set_field:7777->tp_dst,move:reg1[0..7]->nw_ttl[],normal
table=10,priority=100,ip,nw_dst=10.1.2.0/24,reg0=1 actions=set_field:1->tun_id,set_field:198.51.100.2->tun_dst,output:vxlan0
table=10,priority=90,icmp6 actions=flood
table=10,priority=80,udp,tp_src=0x1000/0xf000 actions=resubmit(4,20),resubmit(,20),note:00.01,normal
table=20,priority=10,ip actions=dec_ttl,output:3,output:vxhost0
table=10,priority=0 actions=normal
";

/// The four tables the pipeline target runs against: node n1 (pods on ports 3–5 in VNIs 1
/// and 20, dual stack) with remote node n2 and three more remote nodes; without flows, with
/// the sample port-security flows, and with [`FLOW_PROGRAM`] (twice: the last under a
/// different pipeline configuration).
fn fuzz_tables() -> &'static [Tables; 3] {
    static TABLES: OnceLock<[Tables; 3]> = OnceLock::new();
    TABLES.get_or_init(|| {
        let plain = sample::tables(3);
        let secured = sample::with_flows(plain.clone());
        let flows = controlplane::flow_syntax::parse_flows_file(FLOW_PROGRAM)
            .expect("the fuzz flow program parses");
        let flows: Vec<_> = flows
            .into_iter()
            .enumerate()
            .map(|(i, f)| (i as u32, f))
            .collect();
        let mut programmed = plain.clone();
        programmed.flows = Some(Arc::new(crate::flow::FlowSet::build(
            plain.version,
            &flows,
            &[],
            &sample_resolver,
        )));
        [plain, secured, programmed]
    })
}

/// Port names of the sample tables: vxlan0, vxhost0, p3..p5, or a number.
fn sample_resolver(p: &PortRef) -> Option<PortNo> {
    match p {
        PortRef::Number(n) if (*n as usize) < MAX_PORTS && *n > 0 => Some(*n),
        PortRef::Number(_) => None,
        PortRef::Name(name) => match name.as_str() {
            switch::TUNNEL_PORT_NAME => Some(PORT_TUNNEL),
            switch::HOST_PORT_NAME => Some(PORT_HOST),
            other => other.strip_prefix('p').and_then(|n| n.parse().ok()),
        },
    }
}

/// What the worker's transmit side does with an output, without the I/O: offer frames from
/// the tunnel to the receive coalescer, complete partial checksums, cut TCP super-frames into
/// segments. Checks that every output names a port or node of the tables.
struct FuzzSink {
    from_tunnel: bool,
    gro: Coalescer,
    scratch: Vec<u8>,
    actions: Vec<Action>,
}

impl Sink for FuzzSink {
    fn emit(&mut self, t: &Tables, action: Action, buf: &mut PacketBuf) {
        self.actions.push(action);
        match action {
            Action::Drop(_) => panic!("a drop handed to the sink"),
            Action::Output(no) => {
                assert!(
                    no == PORT_TUNNEL || t.port(no).is_some(),
                    "output to port {no}, which the tables do not have"
                );
                if self.from_tunnel && buf.vnet == VnetHdr::default() && no != PORT_TUNNEL {
                    let mut offer = self.gro.offer(no, buf.frame());
                    if offer == Offer::Flush {
                        let _ = self.gro.take();
                        offer = self.gro.offer(no, buf.frame());
                    }
                    if offer != Offer::Taken && self.gro.port() == no {
                        let _ = self.gro.take();
                    }
                }
                if buf.vnet.is_tcp_gso() && buf.vnet.gso_size > 0 {
                    let mss = usize::from(buf.vnet.gso_size);
                    let _ = offload::segment_tcp(buf.frame(), mss, &[], 0, 64, &mut self.scratch);
                }
            }
            Action::Encap { node, .. } => {
                assert!(
                    t.node(node).is_some(),
                    "encapsulated to unknown node {node}"
                );
                let super_frame = buf.vnet.is_tcp_gso() && buf.vnet.gso_size > 0;
                offload::complete_partial(buf, 8);
                if super_frame && buf.len() >= 8 {
                    let (prefix, frame) = buf.frame().split_at(8);
                    let mss = usize::from(buf.vnet.gso_size);
                    if let Some(lay) = offload::tcp_layout(frame) {
                        let unit = 8 + lay.hdr_len + mss;
                        let per_send = (65_507 / unit).clamp(1, 64);
                        let total = offload::segment_count(frame.len(), lay.hdr_len, mss);
                        let mut k = 0;
                        while k < total {
                            let got = offload::segment_tcp(
                                frame,
                                mss,
                                prefix,
                                k,
                                per_send,
                                &mut self.scratch,
                            );
                            if got.is_none() {
                                break;
                            }
                            k += per_send;
                        }
                    }
                }
            }
        }
    }
}

/// Where the pipeline target's input enters, from its first byte.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Port(PortNo),
    Tunnel(SocketAddr),
}

fn entry(sel: u8) -> Entry {
    match sel & 0b111 {
        0 => Entry::Port(PORT_HOST),
        1..=3 => Entry::Port(PODS[usize::from(sel & 0b111) - 1].0),
        4 => Entry::Port(9),
        5 => Entry::Tunnel(SocketAddr::new(Ipv4Addr::new(198, 51, 100, 2).into(), 4789)),
        6 => Entry::Tunnel(SocketAddr::new(Ipv4Addr::new(203, 0, 0, 1).into(), 51234)),
        _ => Entry::Tunnel(SocketAddr::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into(),
            4789,
        )),
    }
}

/// The whole pipeline: the first byte picks where the rest enters (the host port, a pod port
/// of VNI 1 or 20, a port that is down, or the underlay from n2, from another node, from an
/// unknown IPv6 VTEP), which tables it meets and, for a port, whether a virtio-net header
/// (the next 12 bytes) comes first; for the tunnel its top bits are the outer ECN. The frame
/// goes through twice on one pipeline — the second time the exact-match cache answers — and
/// must get the same verdict and outputs both times.
pub fn pipeline(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let rest = &rest[..rest.len().min(MAX_FRAME + vnet::HEADER_LEN)];
    let tables = fuzz_tables();
    let which = usize::from((sel >> 3) & 0b11);
    let t = &tables[which.min(2)];
    let mut cfg = PipelineConfig::default();
    if which == 3 {
        cfg.tos = OuterTos::Inherit;
        cfg.ttl = OuterTtl::Inherit;
        cfg.flood_max_nodes = 2;
        cfg.src_ports = 3;
    }
    let with_vnet = sel & 0b10_0000 != 0;
    let entry = entry(sel);
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(cfg);
    let mut sink = FuzzSink {
        from_tunnel: matches!(entry, Entry::Tunnel(_)),
        gro: Coalescer::default(),
        scratch: vec![0u8; 2 * MAX_FRAME],
        actions: Vec::new(),
    };
    let mut buf = PacketBuf::with_capacity(MAX_FRAME + 256);
    let mut rounds = Vec::new();
    for _ in 0..2 {
        if !fill(&mut buf, rest, with_vnet && matches!(entry, Entry::Port(_))) {
            return;
        }
        let a = match entry {
            Entry::Port(no) => p.from_port(t, &c, no, &mut buf, &mut sink),
            Entry::Tunnel(src) => {
                let local = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
                p.from_tunnel_ecn(t, &c, src, local, sel >> 6, &mut buf, &mut sink)
            }
        };
        rounds.push((a, std::mem::take(&mut sink.actions)));
    }
    assert_eq!(
        rounds[0], rounds[1],
        "the exact-match cache changed the verdict"
    );
    let _ = sink.gro.take();
}

/// Loads the input into the buffer as a read from a TAP (with or without the virtio-net
/// header) or a datagram would; `false` where the worker drops it before the pipeline.
fn fill(buf: &mut PacketBuf, data: &[u8], with_vnet: bool) -> bool {
    if with_vnet {
        let area = buf.receive_area_vnet();
        let n = data.len().min(area.len());
        area[..n].copy_from_slice(&data[..n]);
        buf.set_received_vnet(n)
    } else {
        let area = buf.receive_area();
        let n = data.len().min(area.len());
        area[..n].copy_from_slice(&data[..n]);
        buf.set_received(n);
        true
    }
}

/// The state file reader: what [`switch::parse_state`] accepts is a configuration the switch
/// could have written — it saves and reads back unchanged, passes the checks every batch
/// passes, and its flows compile and forward frames without a panic.
pub fn state_file(data: &[u8]) {
    let Ok(config) = switch::parse_state(data) else {
        return;
    };
    let again = serde_json::to_vec(&config).expect("a configuration serialises");
    assert_eq!(
        switch::parse_state(&again).as_ref(),
        Ok(&config),
        "saved and read back"
    );
    switch::validate(&config).expect("a restored configuration passes the batch checks");
    let resolve = |p: &PortRef| -> Option<PortNo> {
        match p {
            PortRef::Number(n) if (*n as usize) < MAX_PORTS && *n > 0 => Some(*n),
            PortRef::Number(_) => None,
            PortRef::Name(name) => match name.as_str() {
                switch::TUNNEL_PORT_NAME => Some(PORT_TUNNEL),
                switch::HOST_PORT_NAME => Some(PORT_HOST),
                other => config.ports.get(other).map(|p| p.no),
            },
        }
    };
    for p in config.ports.values() {
        assert!((PORT_FIRST_POD as usize..MAX_PORTS).contains(&(p.no as usize)));
    }
    let mut t = sample::tables(1);
    t.flows = Some(Arc::new(config.flows.compile(t.version, &resolve)));
    let frames = [
        (
            PODS[0].0,
            sample::udp_frame(GW_MAC, PODS[0].1, PODS[0].2, [10, 1, 2, 2], 64, 32),
        ),
        (
            PODS[2].0,
            sample::arp_request(PODS[2].1, PODS[2].2, [10, 1, 1, 1]),
        ),
    ];
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut rec = crate::pipeline::Recorder::default();
    for (no, f) in &frames {
        p.from_port(&t, &c, *no, &mut PacketBuf::from_frame(f), &mut rec);
    }
    let inner = sample::udp_frame(VTEP_MAC, REMOTE_VTEP_MAC, [10, 1, 2, 2], PODS[1].2, 63, 16);
    let src = SocketAddr::new(Ipv4Addr::new(198, 51, 100, 2).into(), 4789);
    let mut buf = PacketBuf::from_frame(&sample::vxlan(0x08, 1, 0, &inner));
    p.from_tunnel(&t, &c, src, None, &mut buf, &mut rec);
}
