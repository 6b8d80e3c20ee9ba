//! The packet pipeline: classify → look up → rewrite → decide. No I/O.
//!
//! The worker hands in a frame (from a port, or a VXLAN datagram from the underlay) in a
//! [`PacketBuf`] and gets back an [`Action`]; headers are rewritten in place. The semantics are
//! those of an OpenShift-SDN / flannel-vxlan node:
//! - the switch answers ARP for the gateway, for every known pod and for remote pod subnets
//!   itself, so ARP never crosses the underlay;
//! - frames are switched between local ports by MAC;
//! - frames sent to the gateway MAC are routed: to a local pod (TTL decremented, source MAC =
//!   gateway MAC), to a remote node (TTL decremented, inner source MAC = this node's VTEP MAC,
//!   inner destination MAC = that node's VTEP MAC, then encapsulated), or to the host port;
//! - VXLAN from a known node with the I flag set and a known VNI is decapsulated, and its inner
//!   frame routed to the local pod owning the destination address when the tenants allow it.
//!
//! Every drop is counted by reason in the worker's counters.
//!
//! - `ingress`: entry from a port or from the tunnel (VXLAN checks), the flow tables;
//! - `forward`: the built-in forwarding (`normal`): ARP, switching, routing, flooding;
//! - `egress`: encapsulation, the outer source port, ICMP errors;
//! - `rewrite`: packet edits asked for by flows.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use controlplane::flow::Field;
use controlplane::proto::{PORT_HOST, PORT_TUNNEL};

use crate::buf::PacketBuf;
use crate::counters::{DropReason, Event, WorkerCounters};
use crate::fib::{vni_allows, LocalInfo, NodeIdx, PortNo, Tables, Target};
use crate::flow::key::{FlowKey, Tunnel};
use crate::flow::{self, Emc, End, FlowSet, Step};
use crate::wire::{
    checksum, ArpOperation, ArpPacket, EtherType, EthernetAddress, EthernetFrame, IpProtocol,
    Ipv4Packet, Ipv6Packet, VxlanPacket, VxlanRepr,
};

mod batch;
#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod conformance_tests;
mod egress;
mod forward;
mod ingress;
#[cfg(test)]
mod isolation_tests;
mod rewrite;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ipv6;
#[cfg(test)]
mod tests_vlan;

pub use batch::BatchPos;
pub use egress::flow_hash;
use rewrite::set_packet_field;

/// What the worker does with a packet after the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Dropped (already counted).
    Drop(DropReason),
    /// Write the frame to this port.
    Output(PortNo),
    /// The buffer now holds a VXLAN header and the inner frame: send it over UDP to the node's
    /// VTEP from this source port, with this outer TOS (DSCP and ECN) and TTL.
    Encap {
        node: NodeIdx,
        src_port: u16,
        tos: u8,
        ttl: u8,
    },
}

/// The outer DSCP of encapsulated packets (the outer ECN always follows the inner packet,
/// RFC 6040).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OuterTos {
    /// The inner packet's DSCP (Linux's `tos inherit`).
    Inherit,
    /// This TOS byte's DSCP bits (its ECN bits are ignored).
    Fixed(u8),
}

/// The outer TTL (hop limit) of encapsulated packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OuterTtl {
    /// The inner packet's TTL or hop limit (after routing decremented it); 64 for non-IP.
    Inherit,
    Fixed(u8),
}

/// Outer TTL when nothing else is said (Linux's `ip_default_ttl`).
pub const DEFAULT_TTL: u8 = 64;

/// Settings of the pipeline that do not change with the tables.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Outer UDP source ports are chosen from this range by a hash of the inner flow.
    pub src_port_min: u16,
    pub src_port_max: u16,
    /// How many of the range's ports a worker holds sockets on (spread evenly over it); a
    /// flow's port is mapped onto one of them.
    pub src_ports: usize,
    /// Generated ICMP errors per second (token bucket rate and burst).
    pub icmp_rate: u32,
    pub icmp_burst: u32,
    /// Outer DSCP (default: 0, as Linux's vxlan without `tos`).
    pub tos: OuterTos,
    /// Outer TTL (default: 64).
    pub ttl: OuterTtl,
    /// The path MTU learned for each remote VTEP (shared with the control side and the
    /// worker's transmit side).
    pub pmtu: Arc<crate::pmtu::PathMtus>,
    /// Most remote nodes a flood replicates to (`usize::MAX`: every node); the nodes beyond it
    /// are counted (`flood_nodes_skipped`), never skipped silently.
    pub flood_max_nodes: usize,
    /// The per-port budget of frames `flood` replicates (shared by every worker).
    pub bum: Arc<BumLimiter>,
    /// Where `learn` actions go (the switch drains it); `None`: nothing is learned (trace).
    pub learn: Option<crate::learn::LearnSender>,
    /// Decapsulation classifies the segments of one GRO batch once and replays the verdict
    /// (`vxswitchd --rx-classify batch`); `false`: every segment runs the whole pipeline.
    pub rx_batch: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            src_port_min: 49152,
            src_port_max: 65535,
            src_ports: DEFAULT_SRC_PORTS,
            icmp_rate: 100,
            icmp_burst: 50,
            tos: OuterTos::Fixed(0),
            ttl: OuterTtl::Fixed(DEFAULT_TTL),
            pmtu: Arc::default(),
            flood_max_nodes: usize::MAX,
            bum: Arc::new(BumLimiter::new(DEFAULT_BUM_RATE, DEFAULT_BUM_BURST)),
            learn: None,
            rx_batch: true,
        }
    }
}

/// Broadcast, unknown-unicast and multicast frames a port may have flooded per second by
/// default. A pod's own BUM traffic is a few frames a second (ARP and neighbour discovery are
/// answered by the switch and never flooded; DHCP, mDNS and the odd gratuitous ARP remain), so
/// 1,000/s never touches it, while one pod's flood costs at most 1,000 × (ports + nodes) copies
/// a second instead of everything the switch can do.
pub const DEFAULT_BUM_RATE: u32 = 1000;
/// Frames a port may flood at once beyond the rate (a start-up burst of announcements).
pub const DEFAULT_BUM_BURST: u32 = 1000;

/// A token bucket per ingress port for flooded frames, shared by the workers: one atomic per
/// port holding the bucket's theoretical arrival time (GCRA, the token bucket's equivalent in
/// one word), updated with a compare-and-swap. No lock, no allocation per packet.
#[derive(Debug)]
pub struct BumLimiter {
    /// Nanoseconds a frame costs (`None`: unlimited).
    interval_ns: Option<u64>,
    /// How far ahead of now a port's arrival time may run: burst − 1 frames.
    tolerance_ns: u64,
    tat: Box<[std::sync::atomic::AtomicU64]>,
}

impl BumLimiter {
    /// `rate` frames per second per port with bursts of `burst` (0 = unlimited).
    pub fn new(rate: u32, burst: u32) -> BumLimiter {
        let interval_ns = (rate > 0).then(|| 1_000_000_000 / rate as u64);
        BumLimiter {
            interval_ns,
            tolerance_ns: interval_ns.unwrap_or(0) * burst.max(1).saturating_sub(1) as u64,
            tat: (0..crate::counters::MAX_PORTS)
                .map(|_| Default::default())
                .collect(),
        }
    }

    /// Takes a token for a frame from `port` at `now_ms`; false when the port's budget is
    /// spent.
    pub fn allow(&self, port: PortNo, now_ms: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(interval) = self.interval_ns else {
            return true;
        };
        let Some(slot) = self.tat.get(port as usize) else {
            return true;
        };
        let now = now_ms.saturating_mul(1_000_000);
        let mut tat = slot.load(Relaxed);
        loop {
            let start = tat.max(now);
            if start - now > self.tolerance_ns {
                return false;
            }
            match slot.compare_exchange_weak(tat, start + interval, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(t) => tat = t,
            }
        }
    }
}

/// Source-port sockets per worker by default: enough entropy for ECMP, a bounded number of
/// file descriptors.
pub const DEFAULT_SRC_PORTS: usize = 256;

/// Where a frame entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ingress {
    Port { no: PortNo, vni: u32 },
    Tunnel { vni: u32 },
}

impl Ingress {
    fn vni(self) -> u32 {
        match self {
            Ingress::Port { vni, .. } | Ingress::Tunnel { vni } => vni,
        }
    }
}

/// A token bucket on a millisecond clock that the worker advances once per batch.
#[derive(Debug, Clone)]
struct RateLimiter {
    rate_per_s: u32,
    burst: u32,
    tokens_milli: u64,
    last_ms: u64,
}

impl RateLimiter {
    fn new(rate_per_s: u32, burst: u32) -> Self {
        RateLimiter {
            rate_per_s,
            burst,
            tokens_milli: burst as u64 * 1000,
            last_ms: 0,
        }
    }

    fn allow(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = now_ms.max(self.last_ms);
        let cap = self.burst as u64 * 1000;
        self.tokens_milli = (self.tokens_milli + elapsed * self.rate_per_s as u64).min(cap);
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// One worker's pipeline state.
pub struct Pipeline {
    cfg: PipelineConfig,
    icmp: RateLimiter,
    now_ms: u64,
    emc: Emc,
    learn_filter: crate::learn::LearnFilter,
    /// The verdict of the current GRO batch's first segment (see [`batch`]).
    batch: batch::Plan,
}

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const ICMP_LEN: usize = 8;
const VXLAN_LEN: usize = 8;

/// The ECN field: the low two bits of the IPv4 TOS / IPv6 traffic class (RFC 3168).
pub const ECN_MASK: u8 = 0b11;
pub const ECN_NOT_ECT: u8 = 0b00;
pub const ECN_ECT1: u8 = 0b01;
pub const ECN_ECT0: u8 = 0b10;
pub const ECN_CE: u8 = 0b11;

impl Pipeline {
    pub fn new(cfg: PipelineConfig) -> Pipeline {
        let icmp = RateLimiter::new(cfg.icmp_rate, cfg.icmp_burst);
        Pipeline {
            cfg,
            icmp,
            now_ms: 0,
            emc: Emc::default(),
            learn_filter: Default::default(),
            batch: batch::Plan::default(),
        }
    }

    /// Hands a learn of spec `index` of flow-set `version` to the switch (unless the same
    /// went out just now); a full queue loses the learn, counted.
    #[inline]
    fn learn(
        &mut self,
        c: &WorkerCounters,
        version: u64,
        index: u32,
        vals: [u64; crate::learn::LEARN_VALS],
    ) {
        use crate::learn::{LearnEvent, Sent};
        let Some(tx) = self.cfg.learn.as_ref() else {
            return;
        };
        let e = LearnEvent {
            version,
            index,
            vals,
        };
        match self.learn_filter.send(tx, e, self.now_ms) {
            Sent::Queued => c.event(Event::LearnQueued),
            Sent::Repeat => c.event(Event::LearnRepeat),
            Sent::Full => c.event(Event::LearnQueueFull),
        }
    }

    /// Advances the pipeline's clock (milliseconds, monotonic). Called once per batch.
    pub fn set_now_ms(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }
}

#[derive(Debug, Clone, Copy)]
enum IcmpKind {
    TimeExceeded,
    FragNeeded(u16),
}

/// Where the pipeline's outputs go: the worker writes them to TAPs and sockets; tests and
/// `vxctl trace` record them.
pub trait Sink {
    /// Carries out an output (`Output` or `Encap`) with the buffer as it is now.
    ///
    /// A packet may be emitted more than once (a flood, several outputs), from the same buffer.
    /// A sink that changes the bytes in place must leave the buffer consistent for the next
    /// copy: one that completes a partial checksum clears NEEDS_CSUM in `buf.vnet` (see
    /// [`crate::offload::complete_partial`]).
    fn emit(&mut self, t: &Tables, action: Action, buf: &mut PacketBuf);
}

/// A sink that only remembers what it was given (tests, benchmarks, trace).
#[derive(Debug, Default)]
pub struct Recorder {
    /// The outputs, with a copy of the frame as it was sent (when `keep_frames`).
    pub outputs: Vec<(Action, Vec<u8>)>,
    /// Keep copies of the frames (allocates; off for allocation-free counting).
    pub keep_frames: bool,
    pub count: usize,
}

impl Recorder {
    /// A recorder that keeps copies of the frames.
    pub fn keeping() -> Recorder {
        Recorder {
            keep_frames: true,
            ..Default::default()
        }
    }
}

impl Sink for Recorder {
    fn emit(&mut self, _t: &Tables, action: Action, buf: &mut PacketBuf) {
        self.count += 1;
        if self.keep_frames {
            self.outputs.push((action, buf.frame().to_vec()));
        }
    }
}

/// Counts a drop, or hands an output to the sink.
#[inline]
fn finish(
    t: &Tables,
    c: &WorkerCounters,
    a: Action,
    buf: &mut PacketBuf,
    sink: &mut impl Sink,
) -> Action {
    match a {
        Action::Drop(r) => c.drop(r),
        a => sink.emit(t, a, buf),
    }
    a
}

/// The largest IP packet a frame puts on the wire: for a TCP super-frame from a TAP, one
/// segment (headers + MSS), since it is segmented before it leaves.
#[inline]
fn on_wire_len(buf: &PacketBuf, ip_len: usize) -> usize {
    if buf.vnet.is_tcp_gso() && buf.vnet.gso_size > 0 {
        if let Some(l) = crate::offload::tcp_layout(buf.frame()) {
            return l.hdr_len - ETH_LEN + buf.vnet.gso_size as usize;
        }
    }
    ip_len
}

#[inline]
fn drop(c: &WorkerCounters, r: DropReason) -> Action {
    c.drop(r);
    Action::Drop(r)
}

/// IPv4-mapped IPv6 source addresses (dual-stack sockets) compare as IPv4.
#[inline]
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[inline]
fn set_macs(buf: &mut PacketBuf, src: EthernetAddress, dst: EthernetAddress) {
    let mut eth = EthernetFrame::new_unchecked(buf.frame_mut());
    eth.set_src_addr(src);
    eth.set_dst_addr(dst);
}

#[inline]
fn decrement_ttl(buf: &mut PacketBuf) {
    let mut ip = Ipv4Packet::new_unchecked(&mut buf.frame_mut()[ETH_LEN..]);
    ip.decrement_ttl();
}
