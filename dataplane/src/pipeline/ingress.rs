//! Where frames enter: from a port, or from the tunnel (checks and strips the VXLAN header); then the flow tables and the program they produce.

use super::*;

impl Pipeline {
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
    /// sent to `local`, its outer ECN field Not-ECT.
    pub fn from_tunnel(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        src: SocketAddr,
        local: Option<IpAddr>,
        buf: &mut PacketBuf,
        sink: &mut impl Sink,
    ) -> Action {
        self.from_tunnel_ecn(t, c, src, local, ECN_NOT_ECT, buf, sink)
    }

    /// [`from_tunnel`](Self::from_tunnel) of a datagram whose outer header carried the ECN
    /// field `outer_ecn`: after the VXLAN checks, RFC 6040's decapsulation table is applied
    /// to the inner IP header (a CE mark reaches the inner packet; CE on a Not-ECT inner
    /// packet is a drop, counted).
    #[allow(clippy::too_many_arguments)]
    pub fn from_tunnel_ecn(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        src: SocketAddr,
        local: Option<IpAddr>,
        outer_ecn: u8,
        buf: &mut PacketBuf,
        sink: &mut impl Sink,
    ) -> Action {
        let vni = match self.decap(t, c, src, buf) {
            Ok(vni) => vni,
            Err(r) => return drop(c, r),
        };
        if outer_ecn & ECN_MASK != ECN_NOT_ECT {
            if let Err(r) = decap_ecn(buf, outer_ecn) {
                return drop(c, r);
            }
        }
        let ingress = Ingress::Tunnel { vni };
        match &t.flows {
            Some(fs) => {
                let dst = local.or(t.local.as_ref().map(|l| l.vtep));
                let tun = Tunnel {
                    vni,
                    src: canonical(src.ip()),
                    dst: dst.map(canonical).unwrap_or(Ipv4Addr::UNSPECIFIED.into()),
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
    pub(super) fn decap(
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
    pub(super) fn run_flows(
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
        if resolved.end.is_limit() {
            // A limit of the tables: nothing of the program runs (as in OVS).
            credit(c, fs, resolved.path(), len, self.now_ms);
            return drop(c, end_reason(resolved.end).unwrap_or(DropReason::FlowDrop));
        }
        if resolved.overflow {
            // Longer than the cache holds: walk the tables again, carrying out each step as
            // the walk makes it.
            let mut live = Live {
                p: self,
                t,
                c,
                fs,
                ingress,
                in_port,
                len,
                buf,
                sink,
                last: None,
                stopped: None,
            };
            let mut k = key;
            let end = flow::resolve_into(fs, &mut k, &mut live, &mut ());
            let Live { last, stopped, .. } = live;
            if let Some(a) = stopped {
                return a;
            }
            return match (end_reason(end), last) {
                (Some(r), _) => drop(c, r),
                (None, Some(a)) => a,
                (None, None) => drop(c, DropReason::FlowDrop),
            };
        }
        credit(c, fs, resolved.path(), len, self.now_ms);
        self.batch.record_flows(fs.version, &resolved);
        let mut last = None;
        for step in resolved.steps() {
            if let Step::Learn(slot) = *step {
                let (index, vals) = resolved.learn_slot(slot);
                self.learn(c, fs.version, index, vals);
                continue;
            }
            if let Err(a) = self.run_step(t, c, ingress, in_port, *step, buf, sink, &mut last) {
                return a;
            }
        }
        match (end_reason(resolved.end), last) {
            (Some(r), _) => drop(c, r),
            (None, Some(a)) => a,
            (None, None) => drop(c, DropReason::FlowDrop),
        }
    }

    /// Carries out one step of a flow program; `Err` ends the program with that action.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn run_step(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        ingress: Ingress,
        in_port: PortNo,
        step: Step,
        buf: &mut PacketBuf,
        sink: &mut impl Sink,
        last: &mut Option<Action>,
    ) -> Result<(), Action> {
        match step {
            Step::Set(field, value) => set_packet_field(buf, field, value),
            Step::DecTtl => self.dec_ttl(t, c, ingress, buf, sink)?,
            Step::Output(p) => {
                let a = if p == in_port {
                    Action::Drop(DropReason::Hairpin)
                } else {
                    Action::Output(p)
                };
                *last = Some(finish(t, c, a, buf, sink));
            }
            Step::Tunnel { vni, dst } => {
                let a = match t.vteps.get(&dst) {
                    Some(&node) if in_port != PORT_TUNNEL => self.encap(t, node, vni, buf),
                    Some(_) => Action::Drop(DropReason::Hairpin),
                    None => Action::Drop(DropReason::NoRoute),
                };
                *last = Some(finish(t, c, a, buf, sink));
                if matches!(a, Action::Encap { .. }) {
                    buf.advance(VXLAN_LEN);
                }
            }
            Step::Normal => {
                let a = self.forward(t, c, ingress, buf);
                *last = Some(finish(t, c, a, buf, sink));
            }
            Step::Flood => *last = Some(self.flood(t, c, ingress, buf, sink)),
            // Carried out by the caller, which holds the learn's values.
            Step::Learn(_) => {}
        }
        Ok(())
    }

    /// `dec_ttl`: TTL 1 becomes an ICMP time-exceeded back to the sender.
    pub(super) fn dec_ttl(
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
}

/// RFC 6040 section 4.2, the decapsulation table (inner, outer → result), as Linux's
/// `INET_ECN_decapsulate`: `None` is a drop.
///
/// | inner \ outer | Not-ECT | ECT(0) | ECT(1) | CE   |
/// |---------------|---------|--------|--------|------|
/// | Not-ECT       | Not-ECT | Not-ECT| Not-ECT| drop |
/// | ECT(0)        | ECT(0)  | ECT(0) | ECT(1) | CE   |
/// | ECT(1)        | ECT(1)  | ECT(1) | ECT(1) | CE   |
/// | CE            | CE      | CE     | CE     | CE   |
pub fn ecn_decapsulate(inner: u8, outer: u8) -> Option<u8> {
    let (inner, outer) = (inner & ECN_MASK, outer & ECN_MASK);
    match (inner, outer) {
        (ECN_NOT_ECT, ECN_CE) => None,
        (ECN_NOT_ECT, _) => Some(ECN_NOT_ECT),
        (_, ECN_CE) => Some(ECN_CE),
        (ECN_ECT0, ECN_ECT1) => Some(ECN_ECT1),
        (i, _) => Some(i),
    }
}

/// Applies [`ecn_decapsulate`] to the inner IPv4 (header checksum updated) or IPv6 header of
/// the frame in `buf`; other frames pass unchanged.
pub(super) fn decap_ecn(buf: &mut PacketBuf, outer: u8) -> Result<(), DropReason> {
    let frame = buf.frame_mut();
    let ethertype = match EthernetFrame::new_checked(&frame[..]) {
        Ok(eth) => eth.ethertype(),
        Err(_) => return Ok(()),
    };
    match ethertype {
        EtherType::Ipv4 => {
            let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[ETH_LEN..]) else {
                return Ok(());
            };
            let tos = ip.dscp_ecn();
            let ecn = ecn_decapsulate(tos, outer).ok_or(DropReason::EcnCeNotEct)?;
            if ecn != tos & ECN_MASK {
                // Version/IHL and TOS form the header's first 16-bit word: patch the checksum
                // incrementally (RFC 1624), so a damaged header stays damaged.
                let ver_ihl = (ip.version() << 4) | (ip.header_len() / 4) as u8;
                let new_tos = (tos & !ECN_MASK) | ecn;
                let sum = checksum::update16(
                    ip.checksum(),
                    u16::from_be_bytes([ver_ihl, tos]),
                    u16::from_be_bytes([ver_ihl, new_tos]),
                );
                ip.set_dscp_ecn(new_tos);
                ip.set_checksum(sum);
            }
        }
        EtherType::Ipv6 => {
            let Ok(mut ip) = Ipv6Packet::new_checked(&mut frame[ETH_LEN..]) else {
                return Ok(());
            };
            let tc = ip.traffic_class();
            let ecn = ecn_decapsulate(tc, outer).ok_or(DropReason::EcnCeNotEct)?;
            if ecn != tc & ECN_MASK {
                ip.set_traffic_class((tc & !ECN_MASK) | ecn);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The drop reason for how a walk of the tables ended (`None`: all actions ran).
fn end_reason(end: End) -> Option<DropReason> {
    match end {
        End::Done => None,
        End::Drop => Some(DropReason::FlowDrop),
        End::Miss(_) => Some(DropReason::TableMiss),
        End::TooDeep => Some(DropReason::ResubmitDepth),
        End::TooManyResubmits => Some(DropReason::ResubmitLimit),
        End::NoGroup(_) => Some(DropReason::NoGroup),
    }
}

/// Credits the flows and tables of a walk's path to the worker's counters.
#[inline]
pub(super) fn credit(
    c: &WorkerCounters,
    fs: &FlowSet,
    path: &[(u8, u32)],
    len: usize,
    now_ms: u64,
) {
    for &(table, rule) in path {
        credit_one(c, fs, table, rule, len, now_ms);
    }
}

#[inline]
fn credit_one(c: &WorkerCounters, fs: &FlowSet, table: u8, rule: u32, len: usize, now_ms: u64) {
    let hit = fs.rules.get(rule as usize);
    c.table_lookup(table, hit.is_some());
    if let Some(r) = hit {
        c.flow_hit(r.id, len, now_ms);
    }
}

/// A flow program too long for the cache, carried out step by step as the walk makes it.
struct Live<'a, S: Sink> {
    p: &'a mut Pipeline,
    t: &'a Tables,
    c: &'a WorkerCounters,
    fs: &'a FlowSet,
    ingress: Ingress,
    in_port: PortNo,
    len: usize,
    buf: &'a mut PacketBuf,
    sink: &'a mut S,
    last: Option<Action>,
    /// A step ended the program (dec_ttl at TTL 1): later steps are skipped.
    stopped: Option<Action>,
}

impl<S: Sink> flow::Program for Live<'_, S> {
    fn step(&mut self, s: Step) {
        if self.stopped.is_some() {
            return;
        }
        let r = self.p.run_step(
            self.t,
            self.c,
            self.ingress,
            self.in_port,
            s,
            self.buf,
            self.sink,
            &mut self.last,
        );
        if let Err(a) = r {
            self.stopped = Some(a);
        }
    }

    fn lookup(&mut self, table: u8, rule: u32) {
        credit_one(self.c, self.fs, table, rule, self.len, self.p.now_ms);
    }

    fn learn(&mut self, index: u32, vals: &[u64; crate::learn::LEARN_VALS]) {
        if self.stopped.is_none() {
            self.p.learn(self.c, self.fs.version, index, *vals);
        }
    }
}
