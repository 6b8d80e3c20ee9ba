//! The built-in forwarding (`normal`): ARP answered in place, switching by MAC, routing through the gateway, flooding.

use super::egress::Icmp6Kind;
use super::*;
use crate::wire::{ipv6, ndisc, Icmpv6Packet, Ipv6Repr, NdiscPacket};

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
        if !self.cfg.bum.allow(in_port, self.now_ms) {
            return drop(c, DropReason::BumRateLimited);
        }
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
            // Neighbour solicitations to a solicited-node address are IPv6's ARP requests.
            if let (EtherType::Ipv6, Ingress::Port { no, vni }) = (ethertype, ingress) {
                if is_neighbor_solicit(buf.frame()) {
                    return self.answer_nd(t, c, local, no, vni, buf);
                }
            }
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
            if !ip.verify_checksum() {
                return Action::Drop(DropReason::Ipv4Checksum);
            }
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
        // Checked against the same inner MTU above; the inner TTL is now one less.
        let tos = Ipv4Packet::new_unchecked(&buf.frame()[ETH_LEN..]).dscp_ecn();
        self.encap_checked(node, vni, buf, Some((tos, ttl - 1)))
    }

    /// Routes an IPv6 packet sent to the router MAC: to a local pod (hop limit − 1, MACs
    /// rewritten) or to the node owning the destination's prefix; a packet to the gateway
    /// address goes to vxhost0, which holds it; a solicitation is answered. Without an IPv6
    /// prefix on this node IPv6 is switched only.
    pub(super) fn route_ipv6(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        local: &LocalInfo,
        ingress: Ingress,
        buf: &mut PacketBuf,
    ) -> Action {
        let (dst_ip, hop_limit, ip_len) = {
            let Ok(ip) = Ipv6Packet::new_checked(&buf.frame()[ETH_LEN..]) else {
                return Action::Drop(DropReason::Malformed);
            };
            let ip_len = ipv6::HEADER_LEN + ip.payload_len() as usize;
            if ETH_LEN + ip_len > buf.len() {
                return Action::Drop(DropReason::Malformed);
            }
            (ip.dst_addr(), ip.hop_limit(), ip_len)
        };
        let Some(gateway6) = local.gateway6 else {
            return Action::Drop(DropReason::Unsupported);
        };
        // Ethernet padding never travels further.
        buf.truncate(ETH_LEN + ip_len);
        // Neighbour discovery never leaves the link: a unicast solicitation to the router
        // MAC (the gateway's, or the host's for a remote pod) is answered as a multicast one.
        if let Ingress::Port { no, vni } = ingress {
            if is_neighbor_solicit(buf.frame()) {
                return self.answer_nd(t, c, local, no, vni, buf);
            }
        }
        // The gateway address lives on the host port: deliver without routing.
        if dst_ip == gateway6 {
            if matches!(ingress, Ingress::Port { no: PORT_HOST, .. }) {
                return Action::Drop(DropReason::Hairpin);
            }
            set_macs(buf, local.gateway_mac, local.host_mac);
            return Action::Output(PORT_HOST);
        }
        if let Some(e) = t.ips6.get(&dst_ip) {
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
                    if hop_limit <= 1 {
                        return self.icmp6_error(
                            t,
                            c,
                            local,
                            ingress,
                            buf,
                            Icmp6Kind::TimeExceeded,
                        );
                    }
                    decrement_hop_limit(buf);
                    set_macs(buf, local.gateway_mac, e.mac);
                    Action::Output(p)
                }
                Target::Node(n) => {
                    self.route_remote6(t, c, local, ingress, n, hop_limit, ip_len, buf)
                }
            };
        }
        if local.subnet6.is_some_and(|s| s.contains(dst_ip)) {
            return Action::Drop(DropReason::NoRoute);
        }
        match t.route6(dst_ip) {
            Some(n) => self.route_remote6(t, c, local, ingress, n, hop_limit, ip_len, buf),
            None => Action::Drop(DropReason::NoRoute),
        }
    }

    /// An IPv6 packet to a remote node: hop limit − 1, MACs as for IPv4, then encapsulated.
    /// Routers do not fragment IPv6: a packet larger than the tunnel gets "packet too big".
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route_remote6(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        local: &LocalInfo,
        ingress: Ingress,
        node: NodeIdx,
        hop_limit: u8,
        ip_len: usize,
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
        if hop_limit <= 1 {
            return self.icmp6_error(t, c, local, ingress, buf, Icmp6Kind::TimeExceeded);
        }
        // The path MTU learned for this VTEP, when lower than the node-wide one.
        let mtu = self.cfg.pmtu.inner_mtu(node, n.vtep, local.tunnel_mtu);
        if on_wire_len(buf, ip_len) > mtu as usize {
            return self.icmp6_error(t, c, local, ingress, buf, Icmp6Kind::PacketTooBig(mtu));
        }
        decrement_hop_limit(buf);
        set_macs(buf, local.vtep_mac, n.vtep_mac);
        // Checked against the same inner MTU above; the hop limit is now one less.
        let tc = Ipv6Packet::new_unchecked(&buf.frame()[ETH_LEN..]).traffic_class();
        self.encap_checked(node, vni, buf, Some((tc, hop_limit - 1)))
    }

    /// Answers a neighbour solicitation in place, as [`answer_arp`](Self::answer_arp) answers
    /// ARP: for the gateway's IPv6 address (with the router flag; not to vxhost0, which holds
    /// it), for the pods of this node, and, to vxhost0, for remote pods' addresses with the
    /// gateway MAC. The advertisement goes back out the ingress port.
    pub(super) fn answer_nd(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        local: &LocalInfo,
        in_port: PortNo,
        in_vni: u32,
        buf: &mut PacketBuf,
    ) -> Action {
        let (requester_mac, src_ip, target) = {
            let frame = buf.frame();
            let Ok(eth) = EthernetFrame::new_checked(frame) else {
                return Action::Drop(DropReason::Malformed);
            };
            let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
                return Action::Drop(DropReason::Malformed);
            };
            let Ok(ns) = NdiscPacket::new_checked(ip.payload()) else {
                return Action::Drop(DropReason::Nd);
            };
            // RFC 4861 section 7.1.1: only from an on-link sender, code 0, unicast target.
            if ip.hop_limit() != ndisc::HOP_LIMIT
                || ns.msg_code() != 0
                || ns.target_addr().is_multicast()
            {
                return Action::Drop(DropReason::Nd);
            }
            (eth.src_addr(), ip.src_addr(), ns.target_addr())
        };
        // Duplicate address detection (source ::) asks nobody in particular: the switch checks
        // pod addresses for duplicates itself.
        if src_ip.is_unspecified() {
            return Action::Drop(DropReason::Nd);
        }
        let (answer, flags) = if Some(target) == local.gateway6 {
            if in_port == PORT_HOST {
                // vxhost0 holds the gateway address itself.
                return Action::Drop(DropReason::Nd);
            }
            (local.gateway_mac, ndisc::FLAG_ROUTER)
        } else if let Some(e) = t.ips6.get(&target) {
            if !vni_allows(in_vni, e.vni) {
                return Action::Drop(DropReason::VniMismatch);
            }
            match e.target {
                Target::Port(p) if p == in_port => return Action::Drop(DropReason::Nd),
                Target::Port(_) => (e.mac, 0),
                Target::Node(_) => (local.gateway_mac, ndisc::FLAG_ROUTER),
            }
        } else if in_port == PORT_HOST && t.route6(target).is_some() {
            // The node reaches remote pods on-link through vxhost0: route them.
            (local.gateway_mac, ndisc::FLAG_ROUTER)
        } else {
            return Action::Drop(DropReason::Nd);
        };
        // The advertisement: IPv6 header, 24 bytes of message and the target link-layer
        // address option, in the same buffer.
        let na_len = ndisc::HEADER_LEN + ndisc::LL_OPTION_LEN;
        if !buf.reframe(0, ETH_LEN + ipv6::HEADER_LEN + na_len) {
            return Action::Drop(DropReason::Nd);
        }
        buf.vnet = Default::default();
        let frame = buf.frame_mut();
        {
            let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
            eth.set_dst_addr(requester_mac);
            eth.set_src_addr(answer);
            eth.set_ethertype(EtherType::Ipv6);
        }
        let (ip_hdr, msg) = frame[ETH_LEN..].split_at_mut(ipv6::HEADER_LEN);
        Ipv6Repr {
            src_addr: target,
            dst_addr: src_ip,
            next_header: IpProtocol::Icmpv6,
            payload_len: na_len,
            hop_limit: ndisc::HOP_LIMIT,
        }
        .emit(&mut Ipv6Packet::new_unchecked(ip_hdr));
        {
            let mut na = NdiscPacket::new_unchecked(&mut msg[..]);
            na.set_msg_type(ndisc::TYPE_NEIGHBOR_ADVERT);
            na.set_msg_code(0);
            na.set_flags(flags | ndisc::FLAG_SOLICITED | ndisc::FLAG_OVERRIDE);
            na.set_target_addr(target);
            na.set_ll_addr_option(ndisc::OPT_TARGET_LL_ADDR, answer);
        }
        Icmpv6Packet::new_unchecked(&mut msg[..]).fill_checksum(&target, &src_ip);
        c.event(Event::NdAdvert);
        Action::Output(in_port)
    }
}

/// The frame is Ethernet + IPv6 + ICMPv6 neighbour solicitation (no extension headers, as
/// RFC 4861 sends them).
#[inline]
fn is_neighbor_solicit(frame: &[u8]) -> bool {
    let Ok(ip) = Ipv6Packet::new_checked(frame.get(ETH_LEN..).unwrap_or(&[])) else {
        return false;
    };
    ip.next_header() == IpProtocol::Icmpv6
        && ip.payload().first() == Some(&ndisc::TYPE_NEIGHBOR_SOLICIT)
}

#[inline]
fn decrement_hop_limit(buf: &mut PacketBuf) {
    let mut ip = Ipv6Packet::new_unchecked(&mut buf.frame_mut()[ETH_LEN..]);
    let h = ip.hop_limit();
    ip.set_hop_limit(h.saturating_sub(1));
}
