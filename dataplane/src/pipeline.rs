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

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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

/// What the worker does with a packet after the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Dropped (already counted).
    Drop(DropReason),
    /// Write the frame to this port.
    Output(PortNo),
    /// The buffer now holds a VXLAN header and the inner frame: send it over UDP to the node's
    /// VTEP from this source port.
    Encap { node: NodeIdx, src_port: u16 },
}

/// Settings of the pipeline that do not change with the tables.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Outer UDP source ports are chosen from this range by a hash of the inner flow.
    pub src_port_min: u16,
    pub src_port_max: u16,
    /// Generated ICMP errors per second (token bucket rate and burst).
    pub icmp_rate: u32,
    pub icmp_burst: u32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            src_port_min: 49152,
            src_port_max: 65535,
            icmp_rate: 100,
            icmp_burst: 50,
        }
    }
}

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
}

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const ICMP_LEN: usize = 8;
const VXLAN_LEN: usize = 8;

impl Pipeline {
    pub fn new(cfg: PipelineConfig) -> Pipeline {
        let icmp = RateLimiter::new(cfg.icmp_rate, cfg.icmp_burst);
        Pipeline {
            cfg,
            icmp,
            now_ms: 0,
            emc: Emc::default(),
        }
    }

    /// Advances the pipeline's clock (milliseconds, monotonic). Called once per batch.
    pub fn set_now_ms(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// A frame read from port `in_port`: every output goes to `sink`; returns the last
    /// decision (an output, or why the packet was dropped — already counted).
    pub fn from_port(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        in_port: PortNo,
        buf: &mut PacketBuf,
        sink: &mut impl Sink,
    ) -> Action {
        let Some(port) = t.port(in_port) else {
            return drop(c, DropReason::PortDown);
        };
        let ingress = Ingress::Port {
            no: in_port,
            vni: port.vni,
        };
        match &t.flows {
            Some(fs) => self.run_flows(t, c, fs, ingress, None, buf, sink),
            None => {
                let a = self.forward(t, c, ingress, buf);
                finish(t, c, a, buf, sink)
            }
        }
    }

    /// A UDP datagram from `src` received on the VXLAN port (VXLAN header + inner frame),
    /// sent to `local`.
    pub fn from_tunnel(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        src: SocketAddr,
        local: Option<IpAddr>,
        buf: &mut PacketBuf,
        sink: &mut impl Sink,
    ) -> Action {
        let vni = match self.decap(t, c, src, buf) {
            Ok(vni) => vni,
            Err(r) => return drop(c, r),
        };
        let ingress = Ingress::Tunnel { vni };
        match &t.flows {
            Some(fs) => {
                let dst = local.or(t.local.as_ref().map(|l| l.vtep));
                let tun = Tunnel {
                    vni,
                    src: v4(canonical(src.ip())),
                    dst: dst.map(v4).unwrap_or(Ipv4Addr::UNSPECIFIED),
                };
                self.run_flows(t, c, fs, ingress, Some(tun), buf, sink)
            }
            None => {
                let a = self.forward(t, c, ingress, buf);
                finish(t, c, a, buf, sink)
            }
        }
    }

    /// Checks the VXLAN header and strips it; returns the VNI.
    fn decap(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        src: SocketAddr,
        buf: &mut PacketBuf,
    ) -> Result<u32, DropReason> {
        if t.local.is_none() {
            return Err(DropReason::NotConfigured);
        }
        let src_ip = canonical(src.ip());
        if !t.vteps.contains_key(&src_ip) {
            return Err(DropReason::UnknownVtep);
        }
        let Ok(vx) = VxlanPacket::new_checked(buf.frame()) else {
            return Err(DropReason::Malformed);
        };
        if !vx.i_flag() {
            return Err(DropReason::NoIFlag);
        }
        if vx.has_reserved_bits() {
            c.event(Event::VxlanReservedBits);
        }
        let vni = vx.vni();
        if !t.knows_vni(vni) {
            return Err(DropReason::UnknownVni);
        }
        buf.advance(VXLAN_LEN);
        c.event(Event::Decapsulated);
        Ok(vni)
    }

    /// Runs the flow tables, then the program they produced.
    #[allow(clippy::too_many_arguments)]
    fn run_flows(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        fs: &FlowSet,
        ingress: Ingress,
        tunnel: Option<Tunnel>,
        buf: &mut PacketBuf,
        sink: &mut impl Sink,
    ) -> Action {
        let in_port = match ingress {
            Ingress::Port { no, .. } => no,
            Ingress::Tunnel { .. } => PORT_TUNNEL,
        };
        let key = FlowKey::extract(buf.frame(), in_port, tunnel);
        let hash = key.hash();
        let resolved = match self.emc.get(fs.version, &key, hash) {
            Some(r) => {
                c.event(Event::FlowCacheHit);
                *r
            }
            None => {
                c.event(Event::FlowCacheMiss);
                let mut k = key;
                let r = flow::resolve(fs, &mut k, &mut ());
                self.emc.insert(fs.version, key, hash, &r);
                r
            }
        };
        let len = buf.len();
        for &(table, rule) in resolved.path() {
            let hit = fs.rules.get(rule as usize);
            c.table_lookup(table, hit.is_some());
            if let Some(r) = hit {
                c.flow_hit(r.id, len, self.now_ms);
            }
        }
        let mut last = None;
        for step in resolved.steps() {
            match *step {
                Step::Set(field, value) => set_packet_field(buf, field, value),
                Step::DecTtl => {
                    if let Err(a) = self.dec_ttl(t, c, ingress, buf, sink) {
                        return a;
                    }
                }
                Step::Output(p) => {
                    let a = if p == in_port {
                        Action::Drop(DropReason::Hairpin)
                    } else {
                        Action::Output(p)
                    };
                    last = Some(finish(t, c, a, buf, sink));
                }
                Step::Tunnel { vni, dst } => {
                    let a = match t.vteps.get(&IpAddr::V4(dst)) {
                        Some(&node) if in_port != PORT_TUNNEL => self.encap(t, node, vni, buf),
                        Some(_) => Action::Drop(DropReason::Hairpin),
                        None => Action::Drop(DropReason::NoRoute),
                    };
                    last = Some(finish(t, c, a, buf, sink));
                    if matches!(a, Action::Encap { .. }) {
                        buf.advance(VXLAN_LEN);
                    }
                }
                Step::Normal => {
                    let a = self.forward(t, c, ingress, buf);
                    last = Some(finish(t, c, a, buf, sink));
                }
                Step::Flood => last = Some(self.flood(t, c, ingress, buf, sink)),
            }
        }
        let end = match resolved.end {
            End::Done => None,
            End::Drop => Some(DropReason::FlowDrop),
            End::Miss(_) => Some(DropReason::TableMiss),
            End::TooDeep => Some(DropReason::ResubmitDepth),
        };
        match (end, last) {
            (Some(r), _) => drop(c, r),
            (None, Some(a)) => a,
            (None, None) => drop(c, DropReason::FlowDrop),
        }
    }

    /// `dec_ttl`: TTL 1 becomes an ICMP time-exceeded back to the sender.
    fn dec_ttl(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        ingress: Ingress,
        buf: &mut PacketBuf,
        sink: &mut impl Sink,
    ) -> Result<(), Action> {
        let frame = buf.frame();
        if frame.len() < ETH_LEN + IPV4_LEN || frame[12..14] != [0x08, 0x00] {
            return Ok(());
        }
        if frame[ETH_LEN + 8] > 1 {
            decrement_ttl(buf);
            return Ok(());
        }
        let Some(local) = t.local.as_ref() else {
            return Err(drop(c, DropReason::Ttl));
        };
        let a = self.icmp_error(t, c, local, ingress, buf, IcmpKind::TimeExceeded);
        if !matches!(a, Action::Drop(_)) {
            sink.emit(t, a, buf);
        }
        Err(a)
    }

    /// Every local port of the packet's tenant but the ingress, and head-end replication to
    /// the remote nodes unless the packet came from a tunnel (split horizon).
    fn flood(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        ingress: Ingress,
        buf: &mut PacketBuf,
        sink: &mut impl Sink,
    ) -> Action {
        let (in_port, vni) = match ingress {
            Ingress::Port { no, vni } => (no, vni),
            Ingress::Tunnel { vni } => (PORT_TUNNEL, vni),
        };
        let mut last = Action::Drop(DropReason::Broadcast);
        for (no, p) in t.ports.iter().enumerate() {
            let no = no as PortNo;
            if let Some(p) = p {
                if no != in_port && no != PORT_TUNNEL && vni_allows(vni, p.vni) {
                    last = Action::Output(no);
                    sink.emit(t, last, buf);
                }
            }
        }
        if in_port != PORT_TUNNEL {
            for node in 0..t.nodes.len().min(MAX_FLOOD_NODES) {
                match self.encap(t, node as NodeIdx, vni, buf) {
                    a @ Action::Encap { .. } => {
                        sink.emit(t, a, buf);
                        buf.advance(VXLAN_LEN);
                        last = a;
                    }
                    Action::Drop(r) => c.drop(r),
                    Action::Output(_) => {}
                }
            }
        }
        last
    }

    fn forward(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        ingress: Ingress,
        buf: &mut PacketBuf,
    ) -> Action {
        let Some(local) = t.local.as_ref() else {
            return Action::Drop(DropReason::NotConfigured);
        };
        let Ok(eth) = EthernetFrame::new_checked(buf.frame()) else {
            return Action::Drop(DropReason::Malformed);
        };
        let ethertype = eth.ethertype();
        if ethertype == EtherType::Vlan {
            return Action::Drop(DropReason::Vlan);
        }
        let dst = eth.dst_addr();
        if ethertype == EtherType::Arp {
            return match ingress {
                Ingress::Port { no, vni } => self.answer_arp(t, c, local, no, vni, buf),
                Ingress::Tunnel { .. } => Action::Drop(DropReason::Arp),
            };
        }
        if !dst.is_unicast() {
            return Action::Drop(DropReason::Broadcast);
        }
        let router_mac = match ingress {
            Ingress::Port { .. } => local.gateway_mac,
            Ingress::Tunnel { .. } => local.vtep_mac,
        };
        if dst == router_mac {
            return self.route(t, c, local, ingress, ethertype, buf);
        }
        match t.macs.get(&dst) {
            Some(entry) => {
                if !vni_allows(ingress.vni(), entry.vni) {
                    return Action::Drop(DropReason::VniMismatch);
                }
                match (entry.target, ingress) {
                    (Target::Port(p), Ingress::Port { no, .. }) if p == no => {
                        Action::Drop(DropReason::Hairpin)
                    }
                    (Target::Port(p), _) => Action::Output(p),
                    (Target::Node(n), Ingress::Port { vni, .. }) => self.encap(t, n, vni, buf),
                    (Target::Node(_), Ingress::Tunnel { .. }) => Action::Drop(DropReason::Hairpin),
                }
            }
            None => Action::Drop(DropReason::UnknownUnicast),
        }
    }

    /// Answers an ARP request in place (the reply goes back out the ingress port).
    fn answer_arp(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        local: &LocalInfo,
        in_port: PortNo,
        in_vni: u32,
        buf: &mut PacketBuf,
    ) -> Action {
        let frame = buf.frame_mut();
        let Ok(mut eth) = EthernetFrame::new_checked(&mut frame[..]) else {
            return Action::Drop(DropReason::Malformed);
        };
        let requester_mac = eth.src_addr();
        let Ok(mut arp) = ArpPacket::new_checked(eth.payload_mut()) else {
            return Action::Drop(DropReason::Malformed);
        };
        if arp.operation() != ArpOperation::Request {
            return Action::Drop(DropReason::Arp);
        }
        let spa = arp.source_protocol_addr();
        let tpa = arp.target_protocol_addr();
        if spa == tpa {
            // Gratuitous ARP announces, it asks nothing.
            return Action::Drop(DropReason::Arp);
        }
        let answer = if tpa == local.gateway {
            local.gateway_mac
        } else if let Some(e) = t.ips.get(&tpa) {
            if !vni_allows(in_vni, e.vni) {
                return Action::Drop(DropReason::VniMismatch);
            }
            match e.target {
                Target::Port(p) if p == in_port => return Action::Drop(DropReason::Arp),
                Target::Port(_) => e.mac,
                Target::Node(_) => local.gateway_mac,
            }
        } else if in_port == PORT_HOST && t.route(tpa).is_some() {
            // The node reaches remote pods on-link through vxhost0: route them.
            local.gateway_mac
        } else {
            return Action::Drop(DropReason::Arp);
        };
        let sha = arp.source_hardware_addr();
        arp.set_operation(ArpOperation::Reply);
        arp.set_target_hardware_addr(sha);
        arp.set_target_protocol_addr(spa);
        arp.set_source_hardware_addr(answer);
        arp.set_source_protocol_addr(tpa);
        eth.set_dst_addr(requester_mac);
        eth.set_src_addr(answer);
        // Pad nothing: the frame keeps its length (at least 42 bytes; the kernel pads short
        // frames itself on real wires).
        buf.vnet = Default::default();
        c.event(Event::ArpReply);
        Action::Output(in_port)
    }

    /// Routes an IP packet sent to the router MAC.
    fn route(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        local: &LocalInfo,
        ingress: Ingress,
        ethertype: EtherType,
        buf: &mut PacketBuf,
    ) -> Action {
        if ethertype == EtherType::Ipv6 {
            return self.route_ipv6(t, c, local, ingress, buf);
        }
        if ethertype != EtherType::Ipv4 {
            return Action::Drop(DropReason::Unsupported);
        }
        let (dst_ip, ttl, total_len) = {
            let Ok(ip) = Ipv4Packet::new_checked(&buf.frame()[ETH_LEN..]) else {
                return Action::Drop(DropReason::Malformed);
            };
            (ip.dst_addr(), ip.hop_limit(), ip.total_len() as usize)
        };
        // Ethernet padding never travels further.
        buf.truncate(ETH_LEN + total_len);

        // The gateway address lives on the host port: deliver without routing.
        if dst_ip == local.gateway || !local.cluster.contains(dst_ip) {
            if ingress
                == (Ingress::Port {
                    no: PORT_HOST,
                    vni: 0,
                })
            {
                return Action::Drop(DropReason::Hairpin);
            }
            set_macs(buf, local.gateway_mac, local.host_mac);
            return Action::Output(PORT_HOST);
        }

        if let Some(e) = t.ips.get(&dst_ip) {
            if !vni_allows(ingress.vni(), e.vni) {
                return Action::Drop(DropReason::VniMismatch);
            }
            return match e.target {
                Target::Port(p) => {
                    if ingress
                        == (Ingress::Port {
                            no: p,
                            vni: ingress.vni(),
                        })
                    {
                        return Action::Drop(DropReason::Hairpin);
                    }
                    if ttl <= 1 {
                        return self.icmp_error(t, c, local, ingress, buf, IcmpKind::TimeExceeded);
                    }
                    decrement_ttl(buf);
                    set_macs(buf, local.gateway_mac, e.mac);
                    Action::Output(p)
                }
                Target::Node(n) => self.route_remote(t, c, local, ingress, n, ttl, total_len, buf),
            };
        }
        if local.subnet.contains(dst_ip) {
            return Action::Drop(DropReason::NoRoute);
        }
        match t.route(dst_ip) {
            Some(n) => self.route_remote(t, c, local, ingress, n, ttl, total_len, buf),
            None => Action::Drop(DropReason::NoRoute),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn route_remote(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        local: &LocalInfo,
        ingress: Ingress,
        node: NodeIdx,
        ttl: u8,
        total_len: usize,
        buf: &mut PacketBuf,
    ) -> Action {
        let vni = match ingress {
            // No transit: what came from a tunnel never goes back into one.
            Ingress::Tunnel { .. } => return Action::Drop(DropReason::NoRoute),
            Ingress::Port { vni, .. } => vni,
        };
        let Some(n) = t.node(node) else {
            return Action::Drop(DropReason::NoRoute);
        };
        if ttl <= 1 {
            return self.icmp_error(t, c, local, ingress, buf, IcmpKind::TimeExceeded);
        }
        if on_wire_len(buf, total_len) > local.tunnel_mtu as usize {
            let df = Ipv4Packet::new_unchecked(&buf.frame()[ETH_LEN..]).dont_frag();
            if df {
                return self.icmp_error(
                    t,
                    c,
                    local,
                    ingress,
                    buf,
                    IcmpKind::FragNeeded(local.tunnel_mtu),
                );
            }
            return Action::Drop(DropReason::Mtu);
        }
        decrement_ttl(buf);
        set_macs(buf, local.vtep_mac, n.vtep_mac);
        self.encap(t, node, vni, buf)
    }

    /// IPv6 is switched, not routed; a too-large IPv6 packet toward a tunnel gets
    /// "packet too big". Routing IPv6 through the gateway is not supported.
    fn route_ipv6(
        &mut self,
        _t: &Tables,
        _c: &WorkerCounters,
        _local: &LocalInfo,
        _ingress: Ingress,
        buf: &mut PacketBuf,
    ) -> Action {
        if Ipv6Packet::new_checked(&buf.frame()[ETH_LEN..]).is_err() {
            return Action::Drop(DropReason::Malformed);
        }
        Action::Drop(DropReason::Unsupported)
    }

    /// Prepends the VXLAN header; the frame must already carry its final inner MACs.
    fn encap(&mut self, t: &Tables, node: NodeIdx, vni: u32, buf: &mut PacketBuf) -> Action {
        let Some(local) = t.local.as_ref() else {
            return Action::Drop(DropReason::NotConfigured);
        };
        // MTU check for frames switched (not routed) toward a tunnel.
        let ip_len = on_wire_len(buf, buf.len().saturating_sub(ETH_LEN));
        if ip_len > local.tunnel_mtu as usize {
            return Action::Drop(DropReason::Mtu);
        }
        // VNID 0 (admin: the host port, admin pods) travels as VNI 0, so the receiving node
        // lets it reach every tenant.
        let src_port = self.src_port(buf.frame());
        let Some(hdr) = buf.prepend(VXLAN_LEN) else {
            return Action::Drop(DropReason::Malformed);
        };
        VxlanRepr { vni }.emit(&mut VxlanPacket::new_unchecked(hdr));
        Action::Encap { node, src_port }
    }

    /// Outer UDP source port: a hash of the inner flow, stable per flow (RFC 7348 section 5).
    fn src_port(&self, frame: &[u8]) -> u16 {
        let h = flow_hash(frame);
        let min = self.cfg.src_port_min as u32;
        let span = (self.cfg.src_port_max as u32).saturating_sub(min) + 1;
        // Scale the hash into the range with a multiply instead of a division (Lemire's
        // fast range): the same spread, a few cycles instead of a few dozen.
        (min + ((u64::from(h) * u64::from(span)) >> 32) as u32) as u16
    }

    /// Replaces the frame, in place, by an ICMP error about the IPv4 packet it carries, and
    /// sends it back toward the packet's source.
    fn icmp_error(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        local: &LocalInfo,
        ingress: Ingress,
        buf: &mut PacketBuf,
        kind: IcmpKind,
    ) -> Action {
        let reason = match kind {
            IcmpKind::TimeExceeded => DropReason::Ttl,
            IcmpKind::FragNeeded(_) => DropReason::Mtu,
        };
        let (orig_src_mac, orig_src_ip, orig_len) = {
            let frame = buf.frame();
            let eth = EthernetFrame::new_unchecked(frame);
            let Ok(ip) = Ipv4Packet::new_checked(&frame[ETH_LEN..]) else {
                return Action::Drop(DropReason::Malformed);
            };
            // Never answer an ICMP error with an ICMP error, nor a non-first fragment.
            if ip.frag_offset() != 0 {
                return Action::Drop(reason);
            }
            if ip.next_header() == IpProtocol::Icmp {
                let p = ip.payload();
                if p.is_empty() || !matches!(p[0], 0 | 8 | 13 | 15 | 17) {
                    return Action::Drop(reason);
                }
            }
            (eth.src_addr(), ip.src_addr(), ip.total_len() as usize)
        };
        if !self.icmp.allow(self.now_ms) {
            c.event(Event::IcmpRateLimited);
            return Action::Drop(reason);
        }
        // RFC 1812 4.3.2.3: quote as much as fits in 576 bytes.
        let quote = orig_len.min(576 - IPV4_LEN - ICMP_LEN);
        let new_len = ETH_LEN + IPV4_LEN + ICMP_LEN + quote;
        // The quoted packet stays where it is; the new headers go in front of it.
        if !buf.reframe(-((IPV4_LEN + ICMP_LEN) as isize), new_len) {
            return Action::Drop(reason);
        }
        buf.vnet = Default::default();
        let frame = buf.frame_mut();
        {
            let icmp = &mut frame[ETH_LEN + IPV4_LEN..];
            let (t_, code, rest) = match kind {
                IcmpKind::TimeExceeded => (11u8, 0u8, 0u32),
                IcmpKind::FragNeeded(mtu) => (3, 4, mtu as u32),
            };
            icmp[0] = t_;
            icmp[1] = code;
            icmp[2] = 0;
            icmp[3] = 0;
            icmp[4..8].copy_from_slice(&rest.to_be_bytes());
            let sum = checksum::finish(checksum::accumulate(0, &icmp[..ICMP_LEN + quote]));
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        {
            let ip = &mut frame[ETH_LEN..ETH_LEN + IPV4_LEN];
            ip[0] = 0x45;
            ip[1] = 0;
            ip[2..4].copy_from_slice(&((IPV4_LEN + ICMP_LEN + quote) as u16).to_be_bytes());
            ip[4..8].copy_from_slice(&[0, 0, 0, 0]);
            ip[8] = 64;
            ip[9] = 1;
            ip[10] = 0;
            ip[11] = 0;
            ip[12..16].copy_from_slice(&local.gateway.octets());
            ip[16..20].copy_from_slice(&orig_src_ip.octets());
            let sum = checksum::finish(checksum::accumulate(0, ip));
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        c.event(match kind {
            IcmpKind::TimeExceeded => Event::IcmpTimeExceeded,
            IcmpKind::FragNeeded(_) => Event::IcmpFragNeeded,
        });
        c.drop(reason);
        match ingress {
            Ingress::Port { no, .. } => {
                set_macs(buf, local.gateway_mac, orig_src_mac);
                Action::Output(no)
            }
            Ingress::Tunnel { vni } => match t.route(orig_src_ip) {
                Some(n) => {
                    let Some(node) = t.node(n) else {
                        return Action::Drop(DropReason::NoRoute);
                    };
                    set_macs(buf, local.vtep_mac, node.vtep_mac);
                    self.encap(t, n, vni, buf)
                }
                None => Action::Drop(DropReason::NoRoute),
            },
        }
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

/// Most remote nodes a flood replicates to.
pub const MAX_FLOOD_NODES: usize = 64;

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

#[inline]
fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v) => v,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// Writes a packet field in place, keeping the IPv4 and TCP/UDP checksums right. Fields the
/// packet does not have are left alone.
fn set_packet_field(buf: &mut PacketBuf, field: Field, value: u64) {
    let frame = buf.frame_mut();
    if frame.len() < ETH_LEN {
        return;
    }
    match field {
        Field::DlSrc => frame[6..12].copy_from_slice(&flow::key::u64_mac(value)),
        Field::DlDst => frame[0..6].copy_from_slice(&flow::key::u64_mac(value)),
        Field::NwSrc | Field::NwDst | Field::NwTtl | Field::TpSrc | Field::TpDst => {
            if frame[12..14] != [0x08, 0x00] {
                return;
            }
            let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[ETH_LEN..]) else {
                return;
            };
            let proto = ip.next_header();
            let first = ip.frag_offset() == 0;
            if field == Field::NwTtl {
                let old = u16::from_be_bytes([ip.hop_limit(), u8::from(proto)]);
                let new = u16::from_be_bytes([value as u8, u8::from(proto)]);
                ip.set_hop_limit(value as u8);
                let c = checksum::update16(ip.checksum(), old, new);
                ip.set_checksum(c);
                return;
            }
            // Where the TCP/UDP checksum is (a zero UDP checksum means none).
            let l4_csum = |l4: &[u8]| match proto {
                IpProtocol::Tcp if first && l4.len() >= 20 => Some(16),
                IpProtocol::Udp if first && l4.len() >= 8 && l4[6..8] != [0, 0] => Some(6),
                _ => None,
            };
            let patch = |l4: &mut [u8], o: usize, c: u16| {
                let c = if proto == IpProtocol::Udp && c == 0 {
                    0xffff
                } else {
                    c
                };
                l4[o..o + 2].copy_from_slice(&c.to_be_bytes());
            };
            if matches!(field, Field::NwSrc | Field::NwDst) {
                let old = if field == Field::NwSrc {
                    ip.src_addr()
                } else {
                    ip.dst_addr()
                };
                let new = Ipv4Addr::from(value as u32);
                if field == Field::NwSrc {
                    ip.set_src_addr(new);
                } else {
                    ip.set_dst_addr(new);
                }
                let c = checksum::update32(ip.checksum(), u32::from(old), u32::from(new));
                ip.set_checksum(c);
                // The pseudo-header changed: patch the TCP/UDP checksum too.
                let l4 = ip.payload_mut();
                if let Some(o) = l4_csum(l4) {
                    let old_c = u16::from_be_bytes([l4[o], l4[o + 1]]);
                    patch(
                        l4,
                        o,
                        checksum::update32(old_c, u32::from(old), u32::from(new)),
                    );
                }
                return;
            }
            let l4 = ip.payload_mut();
            let ports_ok =
                matches!(proto, IpProtocol::Tcp | IpProtocol::Udp) && first && l4.len() >= 8;
            if !ports_ok {
                return;
            }
            let at = if field == Field::TpSrc { 0 } else { 2 };
            let old = u16::from_be_bytes([l4[at], l4[at + 1]]);
            let new = value as u16;
            l4[at..at + 2].copy_from_slice(&new.to_be_bytes());
            if let Some(o) = l4_csum(l4) {
                let old_c = u16::from_be_bytes([l4[o], l4[o + 1]]);
                patch(l4, o, checksum::update16(old_c, old, new));
            }
        }
        Field::TunId | Field::TunSrc | Field::TunDst | Field::Reg(_) => {}
    }
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

/// A hash of the inner flow: addresses, protocol and ports for IPv4, MACs otherwise.
pub fn flow_hash(frame: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |h: u64, v: u64| (h.rotate_left(5) ^ v).wrapping_mul(K);
    let mut h = 0u64;
    if frame.len() >= ETH_LEN + IPV4_LEN && frame[12..14] == [0x08, 0x00] {
        let ip = &frame[ETH_LEN..];
        let ihl = ((ip[0] & 0x0f) as usize) * 4;
        h = mix(
            h,
            u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]) as u64,
        );
        h = mix(
            h,
            u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]) as u64,
        );
        h = mix(h, ip[9] as u64);
        let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
        if first_fragment && matches!(ip[9], 6 | 17) && ip.len() >= ihl + 4 {
            h = mix(
                h,
                u32::from_be_bytes([ip[ihl], ip[ihl + 1], ip[ihl + 2], ip[ihl + 3]]) as u64,
            );
        }
    } else if frame.len() >= 12 {
        let mut m = [0u8; 8];
        m[..6].copy_from_slice(&frame[0..6]);
        h = mix(h, u64::from_le_bytes(m));
        m[..6].copy_from_slice(&frame[6..12]);
        h = mix(h, u64::from_le_bytes(m));
    }
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv4Type, SlicedPacket, TransportSlice};
    use std::net::Ipv4Addr;

    use crate::sample::{GW_MAC, HOST_MAC, PODS, REMOTE_VTEP_MAC, VTEP_MAC};

    const POD3: [u8; 6] = PODS[0].1;
    const POD4: [u8; 6] = PODS[1].1;
    const POD5: [u8; 6] = PODS[2].1;

    /// Node n1: pods 10.1.1.2 (port 3, VNI 1), 10.1.1.3 (port 4, VNI 1), 10.1.1.4 (port 5,
    /// VNI 20); remote node n2 with 10.1.2.0/24 behind 198.51.100.2.
    fn tables() -> Tables {
        crate::sample::tables(0)
    }

    fn arp_request(src_mac: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f
    }

    /// An ICMP echo request of `payload` bytes, DF set.
    fn ping(
        dst_mac: [u8; 6],
        src_mac: [u8; 6],
        src: [u8; 4],
        dst: [u8; 4],
        ttl: u8,
        payload: usize,
    ) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv4(src, dst, ttl)
            .icmpv4_echo_request(7, 1);
        let data = vec![0xab; payload];
        let mut out = Vec::new();
        builder.write(&mut out, &data).unwrap();
        // etherparse sets DF by default; make sure.
        out[14 + 6] |= 0x40;
        let mut ip = Ipv4Packet::new_unchecked(&mut out[14..]);
        ip.fill_checksum();
        out
    }

    fn run_port(t: &Tables, port: u16, frame: &[u8]) -> (Action, Vec<u8>, WorkerCounters) {
        let c = WorkerCounters::default();
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut buf = PacketBuf::from_frame(frame);
        let a = p.from_port(t, &c, port, &mut buf, &mut Recorder::default());
        (a, buf.frame().to_vec(), c)
    }

    fn run_tunnel(t: &Tables, src: &str, payload: &[u8]) -> (Action, Vec<u8>, WorkerCounters) {
        let c = WorkerCounters::default();
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut buf = PacketBuf::from_frame(payload);
        let a = p.from_tunnel(
            t,
            &c,
            src.parse().unwrap(),
            None,
            &mut buf,
            &mut Recorder::default(),
        );
        (a, buf.frame().to_vec(), c)
    }

    fn vxlan(flags: u8, vni: u32, reserved: u8, inner: &[u8]) -> Vec<u8> {
        let v = vni.to_be_bytes();
        let mut p = vec![flags, reserved, 0, 0, v[1], v[2], v[3], 0];
        p.extend_from_slice(inner);
        p
    }

    #[test]
    fn arp_for_the_gateway_and_for_pods_is_answered_in_place() {
        let t = tables();
        let (a, f, c) = run_port(&t, 3, &arp_request(POD3, [10, 1, 1, 2], [10, 1, 1, 1]));
        assert_eq!(a, Action::Output(3));
        let arp = ArpPacket::new_checked(&f[14..]).unwrap();
        assert_eq!(arp.operation(), ArpOperation::Reply);
        assert_eq!(arp.source_hardware_addr(), EthernetAddress(GW_MAC));
        assert_eq!(arp.source_protocol_addr(), Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(arp.target_hardware_addr(), EthernetAddress(POD3));
        assert_eq!(&f[0..6], &POD3);
        assert_eq!(&f[6..12], &GW_MAC);
        assert_eq!(c.events[Event::ArpReply as usize].get(), 1);

        let (a, f, _) = run_port(&t, 3, &arp_request(POD3, [10, 1, 1, 2], [10, 1, 1, 3]));
        assert_eq!(a, Action::Output(3));
        assert_eq!(
            ArpPacket::new_checked(&f[14..])
                .unwrap()
                .source_hardware_addr(),
            EthernetAddress(POD4)
        );

        // Unknown target, another tenant, and the host asking for a remote pod.
        assert_eq!(
            run_port(&t, 3, &arp_request(POD3, [10, 1, 1, 2], [10, 1, 1, 99])).0,
            Action::Drop(DropReason::Arp)
        );
        assert_eq!(
            run_port(&t, 3, &arp_request(POD3, [10, 1, 1, 2], [10, 1, 1, 4])).0,
            Action::Drop(DropReason::VniMismatch)
        );
        let (a, f, _) = run_port(&t, 2, &arp_request(HOST_MAC, [10, 1, 1, 1], [10, 1, 2, 7]));
        assert_eq!(a, Action::Output(2));
        assert_eq!(
            ArpPacket::new_checked(&f[14..])
                .unwrap()
                .source_hardware_addr(),
            EthernetAddress(GW_MAC)
        );
    }

    #[test]
    fn routed_to_a_remote_node_is_encapsulated_like_flannel() {
        let t = tables();
        let frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 64, 56);
        let (a, out, _) = run_port(&t, 3, &frame);
        let Action::Encap { node, src_port } = a else {
            panic!("{a:?}")
        };
        assert_eq!(node, 0);
        assert!(src_port >= 49152);
        // RFC 7348 section 5: I flag, VNI, reserved zero; then the inner frame.
        let vx = VxlanPacket::new_checked(&out[..]).unwrap();
        assert!(vx.i_flag());
        assert!(!vx.has_reserved_bits());
        assert_eq!(vx.vni(), 1);
        let inner = &out[8..];
        assert_eq!(
            &inner[0..6],
            &REMOTE_VTEP_MAC,
            "inner destination = remote VTEP MAC"
        );
        assert_eq!(
            &inner[6..12],
            &VTEP_MAC,
            "inner source = this node's VTEP MAC"
        );
        let ip = Ipv4Packet::new_checked(&inner[14..]).unwrap();
        assert_eq!(ip.hop_limit(), 63);
        assert!(ip.verify_checksum());
        // Same flow, same source port.
        let (b, _, _) = run_port(&t, 3, &frame);
        assert_eq!(b, a);
    }

    #[test]
    fn decapsulated_frames_reach_the_pod_when_vtep_vni_and_tenant_allow() {
        let t = tables();
        let inner = ping(
            VTEP_MAC,
            REMOTE_VTEP_MAC,
            [10, 1, 2, 2],
            [10, 1, 1, 2],
            63,
            56,
        );
        let (a, out, c) = run_tunnel(&t, "198.51.100.2:50000", &vxlan(0x08, 1, 0, &inner));
        assert_eq!(a, Action::Output(3));
        assert_eq!(&out[0..6], &POD3);
        assert_eq!(&out[6..12], &GW_MAC);
        assert_eq!(Ipv4Packet::new_checked(&out[14..]).unwrap().hop_limit(), 62);
        assert_eq!(c.events[Event::Decapsulated as usize].get(), 1);

        // Reserved bits are ignored but counted (RFC 7348 section 5).
        let (a, _, c) = run_tunnel(&t, "198.51.100.2:50000", &vxlan(0x0c, 1, 0xff, &inner));
        assert_eq!(a, Action::Output(3));
        assert_eq!(c.events[Event::VxlanReservedBits as usize].get(), 1);

        let cases = [
            (
                "198.51.100.9:50000",
                vxlan(0x08, 1, 0, &inner),
                DropReason::UnknownVtep,
            ),
            (
                "198.51.100.2:50000",
                vxlan(0x00, 1, 0, &inner),
                DropReason::NoIFlag,
            ),
            (
                "198.51.100.2:50000",
                vxlan(0x08, 77, 0, &inner),
                DropReason::UnknownVni,
            ),
            (
                "198.51.100.2:50000",
                vxlan(0x08, 20, 0, &inner),
                DropReason::VniMismatch,
            ),
            (
                "198.51.100.2:50000",
                vec![0x08, 0, 0],
                DropReason::Malformed,
            ),
        ];
        for (src, pkt, why) in cases {
            let (a, _, c) = run_tunnel(&t, src, &pkt);
            assert_eq!(a, Action::Drop(why));
            assert_eq!(c.drops[why as usize].get(), 1, "{why:?} counted");
        }
    }

    #[test]
    fn ttl_expiry_and_path_mtu_answer_with_icmp_from_the_gateway() {
        let t = tables();
        let frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 1, 56);
        let (a, out, c) = run_port(&t, 3, &frame);
        assert_eq!(a, Action::Output(3));
        assert_eq!(c.drops[DropReason::Ttl as usize].get(), 1);
        let p = SlicedPacket::from_ethernet(&out).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            panic!()
        };
        assert_eq!(ip.header().source(), [10, 1, 1, 1]);
        assert_eq!(ip.header().destination(), [10, 1, 1, 2]);
        let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
            panic!()
        };
        assert!(matches!(icmp.icmp_type(), Icmpv4Type::TimeExceeded(_)));
        assert!(Ipv4Packet::new_checked(&out[14..])
            .unwrap()
            .verify_checksum());
        assert_eq!(
            crate::wire::checksum::data(&out[34..]),
            0,
            "ICMP checksum verifies"
        );

        // 1500-byte DF packet toward a 1450 tunnel.
        let frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 64, 1472);
        let (a, out, _) = run_port(&t, 3, &frame);
        assert_eq!(a, Action::Output(3));
        let icmp = &out[34..];
        assert_eq!((icmp[0], icmp[1]), (3, 4));
        assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1450);
        assert_eq!(crate::wire::checksum::data(icmp), 0);
        // Without DF: dropped and counted.
        let mut frame = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 64, 1472);
        frame[14 + 6] &= !0x40;
        Ipv4Packet::new_unchecked(&mut frame[14..]).fill_checksum();
        assert_eq!(run_port(&t, 3, &frame).0, Action::Drop(DropReason::Mtu));
    }

    #[test]
    fn local_switching_and_tenants() {
        let t = tables();
        // By MAC on the node.
        let f = ping(POD4, POD3, [10, 1, 1, 2], [10, 1, 1, 3], 64, 10);
        assert_eq!(run_port(&t, 3, &f).0, Action::Output(4));
        // Another tenant's MAC.
        let f = ping(POD5, POD3, [10, 1, 1, 2], [10, 1, 1, 4], 64, 10);
        assert_eq!(run_port(&t, 3, &f).0, Action::Drop(DropReason::VniMismatch));
        // The host (VNID 0) reaches every tenant.
        let f = ping(POD5, HOST_MAC, [10, 1, 1, 1], [10, 1, 1, 4], 64, 10);
        assert_eq!(run_port(&t, 2, &f).0, Action::Output(5));
        // The gateway address and the outside world go to the host port.
        let f = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 1, 1], 64, 10);
        let (a, out, _) = run_port(&t, 3, &f);
        assert_eq!(a, Action::Output(2));
        assert_eq!(&out[0..6], &HOST_MAC);
        let f = ping(GW_MAC, POD3, [10, 1, 1, 2], [192, 0, 2, 1], 64, 10);
        assert_eq!(run_port(&t, 3, &f).0, Action::Output(2));
        // Unknown unicast and broadcast.
        let f = ping(
            [2, 0, 0, 0, 0, 9],
            POD3,
            [10, 1, 1, 2],
            [10, 1, 1, 3],
            64,
            10,
        );
        assert_eq!(
            run_port(&t, 3, &f).0,
            Action::Drop(DropReason::UnknownUnicast)
        );
        let f = ping([0xff; 6], POD3, [10, 1, 1, 2], [10, 1, 1, 3], 64, 10);
        assert_eq!(run_port(&t, 3, &f).0, Action::Drop(DropReason::Broadcast));
        // Nowhere in the cluster.
        let f = ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 9, 3], 64, 10);
        assert_eq!(run_port(&t, 3, &f).0, Action::Drop(DropReason::NoRoute));
    }

    #[test]
    fn every_truncation_of_every_frame_is_a_counted_drop_never_a_panic() {
        let t = tables();
        let frames = [
            arp_request(POD3, [10, 1, 1, 2], [10, 1, 1, 1]),
            ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 64, 100),
            ping(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 1, 100),
            ping(POD4, POD3, [10, 1, 1, 2], [10, 1, 1, 3], 64, 100),
        ];
        let c = WorkerCounters::default();
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut r = Recorder::default();
        let src = "198.51.100.2:1".parse().unwrap();
        for t in [t.clone(), crate::sample::with_flows(t.clone())] {
            for f in &frames {
                for len in 0..f.len() {
                    let _ = p.from_port(&t, &c, 3, &mut PacketBuf::from_frame(&f[..len]), &mut r);
                    let v = vxlan(0x08, 1, 0, &f[..len]);
                    let _ =
                        p.from_tunnel(&t, &c, src, None, &mut PacketBuf::from_frame(&v), &mut r);
                }
            }
        }
        let c = WorkerCounters::default();
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut buf = PacketBuf::from_frame(&[]);
        assert_eq!(
            p.from_port(&t, &c, 3, &mut buf, &mut Recorder::default()),
            Action::Drop(DropReason::Malformed)
        );
        assert_eq!(
            p.from_port(&t, &c, 999, &mut buf, &mut Recorder::default()),
            Action::Drop(DropReason::PortDown)
        );
    }

    #[test]
    fn source_ports_stay_in_range_and_spread_flows() {
        let p = Pipeline::new(PipelineConfig {
            src_port_min: 50000,
            src_port_max: 50009,
            ..Default::default()
        });
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200u8 {
            let f = ping(GW_MAC, POD3, [10, 1, 1, i], [10, 1, 2, 2], 64, 10);
            let port = p.src_port(&f);
            assert!((50000..=50009).contains(&port));
            seen.insert(port);
        }
        assert!(seen.len() >= 8, "flows spread over the range: {seen:?}");
    }

    fn with_flow(t: &Tables, actions: Vec<controlplane::flow::FlowAction>) -> Tables {
        use controlplane::flow::{FlowSpec, PortRef};
        let spec = FlowSpec {
            table: 0,
            priority: 1,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            matches: vec![],
            actions,
        };
        let mut t = t.clone();
        t.flows = Some(std::sync::Arc::new(crate::flow::FlowSet::build(
            9,
            &[(0, spec)],
            &[],
            &|p| match p {
                PortRef::Number(n) => Some(*n),
                PortRef::Name(_) => None,
            },
        )));
        t
    }

    #[test]
    fn flood_reaches_the_tenant_and_the_nodes_with_split_horizon() {
        use controlplane::flow::FlowAction;
        let t = with_flow(&tables(), vec![FlowAction::Flood]);
        let frame = ping([0xff; 6], POD3, [10, 1, 1, 2], [10, 1, 1, 255], 64, 10);
        let c = WorkerCounters::default();
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut rec = Recorder::keeping();
        p.from_port(&t, &c, 3, &mut PacketBuf::from_frame(&frame), &mut rec);
        let outs: Vec<Action> = rec.outputs.iter().map(|(a, _)| *a).collect();
        assert!(
            outs.contains(&Action::Output(2)),
            "the host (VNID 0): {outs:?}"
        );
        assert!(
            outs.contains(&Action::Output(4)),
            "the same tenant: {outs:?}"
        );
        assert!(
            !outs.contains(&Action::Output(5)),
            "not another tenant: {outs:?}"
        );
        assert!(
            !outs.contains(&Action::Output(3)),
            "not back to the sender: {outs:?}"
        );
        let encaps: Vec<&Vec<u8>> = rec
            .outputs
            .iter()
            .filter(|(a, _)| matches!(a, Action::Encap { .. }))
            .map(|(_, f)| f)
            .collect();
        assert_eq!(encaps.len(), 1, "head-end replication to n2");
        assert_eq!(
            &encaps[0][8..],
            &frame[..],
            "the replica carries the frame unchanged"
        );
        // From the tunnel: local ports only.
        let inner = ping(
            [0xff; 6],
            REMOTE_VTEP_MAC,
            [10, 1, 2, 2],
            [10, 1, 1, 255],
            64,
            10,
        );
        let mut rec = Recorder::keeping();
        p.from_tunnel(
            &t,
            &c,
            "198.51.100.2:1".parse().unwrap(),
            None,
            &mut PacketBuf::from_frame(&vxlan(0x08, 1, 0, &inner)),
            &mut rec,
        );
        assert!(
            rec.outputs
                .iter()
                .all(|(a, _)| matches!(a, Action::Output(_))),
            "split horizon: {:?}",
            rec.outputs.len()
        );
        assert!(!rec.outputs.is_empty());
    }

    #[test]
    fn set_field_rewrites_keep_every_checksum_valid() {
        use controlplane::flow::{Field, FlowAction, PortRef};
        let t = with_flow(
            &tables(),
            vec![
                FlowAction::SetField {
                    field: Field::NwDst,
                    value: u32::from(Ipv4Addr::new(10, 1, 1, 3)) as u64,
                },
                FlowAction::SetField {
                    field: Field::TpDst,
                    value: 7777,
                },
                FlowAction::SetField {
                    field: Field::NwTtl,
                    value: 9,
                },
                FlowAction::SetField {
                    field: Field::DlDst,
                    value: crate::flow::key::mac_u64(&POD4),
                },
                FlowAction::Output {
                    port: PortRef::Number(4),
                },
            ],
        );
        let frame = crate::sample::udp_frame(GW_MAC, POD3, [10, 1, 1, 2], [10, 1, 2, 2], 64, 100);
        let c = WorkerCounters::default();
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut rec = Recorder::keeping();
        let a = p.from_port(&t, &c, 3, &mut PacketBuf::from_frame(&frame), &mut rec);
        assert_eq!(a, Action::Output(4));
        let out = &rec.outputs[0].1;
        assert_eq!(&out[0..6], &POD4);
        let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 1, 1, 3));
        assert_eq!(ip.hop_limit(), 9);
        assert!(ip.verify_checksum(), "IPv4 header checksum");
        let udp = crate::wire::UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.dst_port(), 7777);
        assert!(
            udp.verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
            "UDP checksum over the new pseudo-header"
        );
    }
}
