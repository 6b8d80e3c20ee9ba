//! The built-in forwarding (`normal`): ARP answered in place, switching by MAC, routing through the gateway, flooding.

use super::*;

impl Pipeline {
    /// Every local port of the packet's tenant but the ingress, and head-end replication to
    /// the remote nodes unless the packet came from a tunnel (split horizon).
    pub(super) fn flood(
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
            let nodes = t.nodes.len();
            let reach = nodes.min(self.cfg.flood_max_nodes);
            if reach < nodes {
                c.event_n(Event::FloodNodesSkipped, (nodes - reach) as u64);
            }
            for node in 0..reach {
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

    pub(super) fn forward(
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
    pub(super) fn answer_arp(
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
    pub(super) fn route(
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
    pub(super) fn route_remote(
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
        // The path MTU learned for this VTEP, when lower than the node-wide one.
        let mtu = self.cfg.pmtu.inner_mtu(node, n.vtep, local.tunnel_mtu);
        if on_wire_len(buf, total_len) > mtu as usize {
            let df = Ipv4Packet::new_unchecked(&buf.frame()[ETH_LEN..]).dont_frag();
            if df {
                return self.icmp_error(t, c, local, ingress, buf, IcmpKind::FragNeeded(mtu));
            }
            return Action::Drop(DropReason::Mtu);
        }
        decrement_ttl(buf);
        set_macs(buf, local.vtep_mac, n.vtep_mac);
        self.encap(t, node, vni, buf)
    }

    /// IPv6 is switched, not routed; a too-large IPv6 packet toward a tunnel gets
    /// "packet too big". Routing IPv6 through the gateway is not supported.
    pub(super) fn route_ipv6(
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
}
