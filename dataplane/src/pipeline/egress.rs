//! Where frames leave: the VXLAN header and its outer source port, and ICMP errors built in place.

use super::*;

impl Pipeline {
    /// Prepends the VXLAN header; the frame must already carry its final inner MACs.
    pub(super) fn encap(
        &mut self,
        t: &Tables,
        node: NodeIdx,
        vni: u32,
        buf: &mut PacketBuf,
    ) -> Action {
        let Some(local) = t.local.as_ref() else {
            return Action::Drop(DropReason::NotConfigured);
        };
        // MTU check for frames switched (not routed) toward a tunnel.
        let ip_len = on_wire_len(buf, buf.len().saturating_sub(ETH_LEN));
        let mtu = match t.node(node) {
            Some(n) => self.cfg.pmtu.inner_mtu(node, n.vtep, local.tunnel_mtu),
            None => local.tunnel_mtu,
        };
        if ip_len > mtu as usize {
            return Action::Drop(DropReason::Mtu);
        }
        let (tos, ttl) = self.outer_tos_ttl(buf.frame());
        // VNID 0 (admin: the host port, admin pods) travels as VNI 0, so the receiving node
        // lets it reach every tenant.
        let src_port = self.src_port(buf.frame());
        let Some(hdr) = buf.prepend(VXLAN_LEN) else {
            return Action::Drop(DropReason::Malformed);
        };
        VxlanRepr { vni }.emit(&mut VxlanPacket::new_unchecked(hdr));
        Action::Encap {
            node,
            src_port,
            tos,
            ttl,
        }
    }

    /// The outer TOS and TTL for an inner frame. The outer ECN field follows the inner one as
    /// Linux's `INET_ECN_encapsulate` does (RFC 6040 normal mode: Not-ECT, ECT(1), ECT(0)
    /// copied, CE sent as ECT(0)); the DSCP is fixed or inherited; the TTL fixed or inherited.
    pub(super) fn outer_tos_ttl(&self, frame: &[u8]) -> (u8, u8) {
        let (inner_tos, inner_ttl) = inner_tos_ttl(frame).unwrap_or((0, DEFAULT_TTL));
        let dscp = match self.cfg.tos {
            OuterTos::Inherit => inner_tos,
            OuterTos::Fixed(v) => v,
        } & !ECN_MASK;
        let ecn = match inner_tos & ECN_MASK {
            ECN_CE => ECN_ECT0,
            e => e,
        };
        let ttl = match self.cfg.ttl {
            OuterTtl::Inherit => inner_ttl,
            OuterTtl::Fixed(v) => v,
        };
        (dscp | ecn, ttl.max(1))
    }

    /// Outer UDP source port: a hash of the inner flow, stable per flow (RFC 7348 section 5).
    pub(super) fn src_port(&self, frame: &[u8]) -> u16 {
        let h = flow_hash(frame);
        let min = self.cfg.src_port_min as u32;
        let span = (self.cfg.src_port_max as u32).saturating_sub(min) + 1;
        // Scale the hash into the range with a multiply instead of a division (Lemire's
        // fast range): the same spread, a few cycles instead of a few dozen.
        (min + ((u64::from(h) * u64::from(span)) >> 32) as u32) as u16
    }

    /// Replaces the frame, in place, by an ICMP error about the IPv4 packet it carries, and
    /// sends it back toward the packet's source.
    pub(super) fn icmp_error(
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

/// The TOS (traffic class) and TTL (hop limit) of the IP packet in an Ethernet frame.
pub(super) fn inner_tos_ttl(frame: &[u8]) -> Option<(u8, u8)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    match eth.ethertype() {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            Some((ip.dscp_ecn(), ip.hop_limit()))
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            Some((ip.traffic_class(), ip.hop_limit()))
        }
        _ => None,
    }
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
