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
                    let a = match t.vteps.get(&dst) {
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
