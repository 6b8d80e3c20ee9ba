//! Where frames leave: the VXLAN header and its outer source port, and ICMP errors built in place.

use super::*;
use crate::wire::{icmpv6, ipv6, Icmpv6Packet, Ipv6Repr};

/// An ICMPv6 error the switch sends as a router (RFC 4443).
#[derive(Debug, Clone, Copy)]
pub(super) enum Icmp6Kind {
    /// Time exceeded, hop limit exceeded in transit (type 3, code 0).
    TimeExceeded,
    /// Packet too big (type 2) with this MTU.
    PacketTooBig(u16),
}

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
        let inner = inner_tos_ttl(buf.frame());
        self.encap_checked(node, vni, buf, inner)
    }

    /// [`encap`](Self::encap) for a frame the caller already checked against the inner MTU
    /// toward `node` (the routed paths do, to answer a packet too big with an ICMP error), with
    /// the inner TOS and TTL (hop limit) it already read: the frame is not parsed again.
    pub(super) fn encap_checked(
        &self,
        node: NodeIdx,
        vni: u32,
        buf: &mut PacketBuf,
        inner: Option<(u8, u8)>,
    ) -> Action {
        let (tos, ttl) = self.outer_tos_ttl_of(inner);
        // VNID 0 (admin: the host port, admin pods) travels as VNI 0, so the receiving node
        // lets it reach every tenant.
        let Some(src_port) = self.vxlan_header(buf, vni) else {
            return Action::Drop(DropReason::Malformed);
        };
        Action::Encap {
            node,
            src_port,
            tos,
            ttl,
        }
    }

    /// Writes the VXLAN header for `vni` in front of the frame and returns the outer UDP source
    /// port, a hash of the inner flow: the part of encapsulation that writes the packet (the
    /// outer IP/UDP headers are the kernel's, from the UDP socket). `None` without headroom.
    /// Public so the benches can time it alone (`cargo bench --bench pipeline -- encap_header`).
    #[inline]
    pub fn vxlan_header(&self, buf: &mut PacketBuf, vni: u32) -> Option<u16> {
        let src_port = self.src_port(buf.frame());
        let hdr = buf.prepend(VXLAN_LEN)?;
        VxlanRepr { vni }.emit(&mut VxlanPacket::new_unchecked(hdr));
        Some(src_port)
    }

    /// The outer TOS and TTL for an inner frame's TOS and TTL (`None`: not IP). The outer ECN
    /// field follows the inner one as Linux's `INET_ECN_encapsulate` does (RFC 6040 normal mode:
    /// Not-ECT, ECT(1), ECT(0) copied, CE sent as ECT(0)); the DSCP is fixed or inherited; the
    /// TTL fixed or inherited.
    #[inline]
    fn outer_tos_ttl_of(&self, inner: Option<(u8, u8)>) -> (u8, u8) {
        let (inner_tos, inner_ttl) = inner.unwrap_or((0, DEFAULT_TTL));
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
        let back = t.route(orig_src_ip);
        self.send_back(t, local, ingress, orig_src_mac, back, buf)
    }

    /// Replaces the frame, in place, by an ICMPv6 error about the IPv6 packet it carries, from
    /// the gateway's IPv6 address, and sends it back toward the packet's source; rate-limited
    /// by the same bucket as ICMP.
    pub(super) fn icmp6_error(
        &mut self,
        t: &Tables,
        c: &WorkerCounters,
        local: &LocalInfo,
        ingress: Ingress,
        buf: &mut PacketBuf,
        kind: Icmp6Kind,
    ) -> Action {
        let reason = match kind {
            Icmp6Kind::TimeExceeded => DropReason::Ttl,
            Icmp6Kind::PacketTooBig(_) => DropReason::Mtu,
        };
        let Some(gateway6) = local.gateway6 else {
            return Action::Drop(reason);
        };
        let (orig_src_mac, orig_src_ip, orig_len) = {
            let frame = buf.frame();
            let eth = EthernetFrame::new_unchecked(frame);
            let Ok(ip) = Ipv6Packet::new_checked(&frame[ETH_LEN..]) else {
                return Action::Drop(DropReason::Malformed);
            };
            let src = ip.src_addr();
            // RFC 4443 section 2.4 (e): never about an ICMPv6 error, nor to a source that is
            // not one node's unicast address.
            if ip.next_header() == IpProtocol::Icmpv6 {
                match ip.payload().first() {
                    Some(&t_) if t_ >= 128 => {}
                    _ => return Action::Drop(reason),
                }
            }
            if src.is_multicast() || src.is_unspecified() {
                return Action::Drop(reason);
            }
            (
                eth.src_addr(),
                src,
                ipv6::HEADER_LEN + ip.payload_len() as usize,
            )
        };
        if !self.icmp.allow(self.now_ms) {
            c.event(Event::IcmpRateLimited);
            return Action::Drop(reason);
        }
        // RFC 4443 section 2.4 (c): quote as much as fits in the minimum MTU.
        let head = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
        let quote = orig_len.min(icmpv6::MIN_MTU - head);
        // The quoted packet stays where it is; the new headers go in front of it.
        if !buf.reframe(-(head as isize), ETH_LEN + head + quote) {
            return Action::Drop(reason);
        }
        buf.vnet = Default::default();
        let frame = buf.frame_mut();
        EthernetFrame::new_unchecked(&mut frame[..]).set_ethertype(EtherType::Ipv6);
        let (ip_hdr, msg) = frame[ETH_LEN..].split_at_mut(ipv6::HEADER_LEN);
        {
            let mut icmp = Icmpv6Packet::new_unchecked(&mut msg[..]);
            match kind {
                Icmp6Kind::TimeExceeded => {
                    icmp.set_msg_type(icmpv6::TYPE_TIME_EXCEEDED);
                    icmp.set_mtu(0);
                }
                Icmp6Kind::PacketTooBig(mtu) => {
                    icmp.set_msg_type(icmpv6::TYPE_PACKET_TOO_BIG);
                    icmp.set_mtu(mtu as u32);
                }
            }
            icmp.set_msg_code(0);
            icmp.fill_checksum(&gateway6, &orig_src_ip);
        }
        Ipv6Repr {
            src_addr: gateway6,
            dst_addr: orig_src_ip,
            next_header: IpProtocol::Icmpv6,
            payload_len: icmpv6::HEADER_LEN + quote,
            hop_limit: 64,
        }
        .emit(&mut Ipv6Packet::new_unchecked(ip_hdr));
        c.event(match kind {
            Icmp6Kind::TimeExceeded => Event::Icmpv6TimeExceeded,
            Icmp6Kind::PacketTooBig(_) => Event::IcmpPacketTooBig,
        });
        c.drop(reason);
        let back = t.route6(orig_src_ip);
        self.send_back(t, local, ingress, orig_src_mac, back, buf)
    }

    /// Sends an ICMP error built in place back toward the packet's source: out the port it
    /// came in on, or through the tunnel to `back`, the node owning the source address.
    fn send_back(
        &mut self,
        t: &Tables,
        local: &LocalInfo,
        ingress: Ingress,
        orig_src_mac: EthernetAddress,
        back: Option<NodeIdx>,
        buf: &mut PacketBuf,
    ) -> Action {
        match ingress {
            Ingress::Port { no, .. } => {
                set_macs(buf, local.gateway_mac, orig_src_mac);
                Action::Output(no)
            }
            Ingress::Tunnel { vni } => match back.and_then(|n| Some((n, t.node(n)?))) {
                Some((n, node)) => {
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

/// A hash of the inner flow: addresses, protocol and ports for IPv4 and IPv6, MACs otherwise.
pub fn flow_hash(frame: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |h: u64, v: u64| (h.rotate_left(5) ^ v).wrapping_mul(K);
    if frame.len() >= ETH_LEN + ipv6::HEADER_LEN && frame[12..14] == [0x86, 0xdd] {
        return flow_hash_ipv6(&frame[ETH_LEN..]);
    }
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

/// The IPv6 part of [`flow_hash`]: both addresses, the next header, and the ports of TCP and
/// UDP (without extension headers, where the transport header follows the fixed one).
fn flow_hash_ipv6(ip: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mix = |h: u64, v: u64| (h.rotate_left(5) ^ v).wrapping_mul(K);
    let p = Ipv6Packet::new_unchecked(ip);
    let (s, d) = (u128::from(p.src_addr()), u128::from(p.dst_addr()));
    let mut h = 0u64;
    for w in [(s >> 64) as u64, s as u64, (d >> 64) as u64, d as u64] {
        h = mix(h, w);
    }
    let nh = u8::from(p.next_header());
    h = mix(h, nh as u64);
    let l4 = &ip[ipv6::HEADER_LEN..];
    if matches!(nh, 6 | 17) && l4.len() >= 4 {
        h = mix(h, u32::from_be_bytes([l4[0], l4[1], l4[2], l4[3]]) as u64);
    }
    (h ^ (h >> 32)) as u32
}
