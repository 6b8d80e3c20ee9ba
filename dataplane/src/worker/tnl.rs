//! The underlay's TAP on a worker (see [`crate::io::tnl`]): a TCP super-frame leaves in one
//! write behind outer Ethernet/IPv4/UDP headers and a tunnel vnet header, and one arrives in
//! one read and goes to the pod's TAP as one super-frame.

use std::net::Ipv4Addr;

use super::tx::flush_batch;
use super::*;
use crate::wire::checksum;
use crate::wire::vnet::tunnel::{self, TunnelHdr};

const ETH: usize = 14;
const IPV4: usize = 20;
const UDP: usize = 8;
const VXLAN: usize = 8;
/// Outer Ethernet, IPv4 (no options) and UDP: what the switch writes in front of the VXLAN
/// header.
const OUTER: usize = ETH + IPV4 + UDP;

/// Where a super-frame goes: the VTEP and how (the values of the pipeline's `Encap`).
#[derive(Debug, Clone, Copy)]
pub(super) struct TnlDest {
    pub node: NodeIdx,
    pub dst: SocketAddr,
    pub src_port: u16,
    pub tos: u8,
    pub ttl: u8,
}

/// Sends the TCP super-frame in `buf` (a VXLAN header and the inner frame, still with its
/// partial checksum) in one write to the underlay's TAP. `false` when it cannot (no TAP, the
/// VTEP's MAC address not known yet, too large, headers it cannot describe, a failed write):
/// the caller then segments it for the UDP sockets.
pub(super) fn send(
    c: &WorkerCounters,
    u: &mut Underlay,
    batch: &mut TxBatch,
    gso_ok: &mut bool,
    to: TnlDest,
    buf: &mut PacketBuf,
) -> bool {
    let Some(p) = u.tnl.as_ref() else {
        return false;
    };
    let IpAddr::V4(dst_ip) = to.dst.ip() else {
        return false;
    };
    let v = buf.vnet;
    let f = buf.frame();
    let layout = f.get(VXLAN..).and_then(offload::tcp_layout);
    let Some(lay) = layout.filter(|l| {
        v.needs_csum()
            && v.gso_size > 0
            && v.csum_start as usize == l.l4
            && v.csum_offset == 16
            && !(l.ipv6 && v.gso_type & !vnet::GSO_ECN != vnet::GSO_TCPV6)
    }) else {
        c.event(Event::TnlFallback);
        return false;
    };
    // One datagram of at most 64 KiB; each segment within the path MTU (DF is set).
    let ip_len = IPV4 + UDP + f.len();
    let seg = IPV4 + UDP + VXLAN + lay.hdr_len + v.gso_size as usize;
    let limit = u
        .pmtu
        .get(to.node, to.dst.ip())
        .map_or(p.mtu, |m| m.min(p.mtu));
    // Shorter than what the receiving node's rules hand to its TAP, it would reach that
    // node's UDP sockets whole, its inner checksum partial: such frames are segmented here.
    if ip_len > 65_535 || ip_len < crate::io::tnl::min_len() as usize || seg > limit as usize {
        c.event(Event::TnlFallback);
        return false;
    }
    let Some(dst_mac) = p.neigh.get(dst_ip) else {
        c.event(Event::TnlNeighUnknown);
        p.neigh.want();
        return false;
    };
    let (src_mac, src_ip, udp_csum) = (p.mac, p.vtep, p.udp_csum);
    // What is pending for the UDP sockets leaves first: a flow's frames keep their order.
    flush_batch(batch, Some(&mut *u), c, gso_ok);
    let Some(p) = u.tnl.as_mut() else {
        return false;
    };
    let hdr = TunnelHdr {
        base: VnetHdr {
            flags: vnet::F_NEEDS_CSUM
                | if udp_csum {
                    tunnel::F_UDP_TUNNEL_CSUM
                } else {
                    0
                },
            gso_type: tunnel::GSO_UDP_TUNNEL_IPV4 | v.gso_type,
            hdr_len: (OUTER + VXLAN + lay.hdr_len) as u16,
            gso_size: v.gso_size,
            csum_start: (OUTER + VXLAN) as u16 + v.csum_start,
            csum_offset: v.csum_offset,
        },
        outer_th: (ETH + IPV4) as u16,
        inner_nh: (OUTER + VXLAN + ETH) as u16,
    };
    let segs = offload::segment_count(f.len() - VXLAN, lay.hdr_len, v.gso_size as usize);
    let Some(h) = buf.prepend(tunnel::HEADER_LEN + OUTER) else {
        c.event(Event::TnlFallback);
        return false;
    };
    // The mark the receiving node's rules look for (DF is set: the id is free, RFC 6864).
    let ip_id = crate::io::tnl::TNL_IP_ID;
    hdr.emit(h);
    let o = &mut h[tunnel::HEADER_LEN..];
    write_outer(
        o,
        Outer {
            src_mac,
            dst_mac,
            src_ip,
            dst_ip,
            tos: to.tos,
            ttl: to.ttl,
            id: ip_id,
            src_port: to.src_port,
            dst_port: to.dst.port(),
            ip_len: ip_len as u16,
            udp_csum,
        },
    );
    let r = p.queue.write(buf.frame());
    buf.advance(tunnel::HEADER_LEN + OUTER);
    match r {
        Ok(_) => {
            c.tx(PORT_TUNNEL, buf.len());
            c.event(Event::TnlGsoWrites);
            c.event_n(Event::Encapsulated, segs as u64);
            true
        }
        Err(_) => {
            c.event(Event::TnlFallback);
            false
        }
    }
}

/// The outer headers' values.
struct Outer {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    tos: u8,
    ttl: u8,
    id: u16,
    src_port: u16,
    dst_port: u16,
    ip_len: u16,
    udp_csum: bool,
}

/// Writes Ethernet, IPv4 (DF, header checksum) and UDP into `o` ([`OUTER`] bytes). With the
/// outer checksum on, the UDP checksum field holds the pseudo-header sum (the kernel finishes
/// it per segment).
fn write_outer(o: &mut [u8], h: Outer) {
    o[0..6].copy_from_slice(&h.dst_mac);
    o[6..12].copy_from_slice(&h.src_mac);
    o[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut o[ETH..ETH + IPV4];
    ip[0] = 0x45;
    ip[1] = h.tos;
    ip[2..4].copy_from_slice(&h.ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&h.id.to_be_bytes());
    ip[6..8].copy_from_slice(&[0x40, 0x00]);
    ip[8] = h.ttl;
    ip[9] = 17;
    ip[10..12].fill(0);
    ip[12..16].copy_from_slice(&h.src_ip.octets());
    ip[16..20].copy_from_slice(&h.dst_ip.octets());
    let sum = checksum::data(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp_len = h.ip_len - IPV4 as u16;
    let ud = &mut o[ETH + IPV4..OUTER];
    ud[0..2].copy_from_slice(&h.src_port.to_be_bytes());
    ud[2..4].copy_from_slice(&h.dst_port.to_be_bytes());
    ud[4..6].copy_from_slice(&udp_len.to_be_bytes());
    let check = if h.udp_csum {
        checksum::fold(checksum::pseudo_header_v4(
            h.src_ip,
            h.dst_ip,
            17,
            udp_len as u32,
        ))
    } else {
        0
    };
    ud[6..8].copy_from_slice(&check.to_be_bytes());
}

/// What a frame read from the underlay's TAP carries, once its outer headers are checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Received {
    /// The sender's VTEP address and UDP source port.
    pub src: SocketAddr,
    /// Bytes in front of the VXLAN header.
    pub outer: usize,
    /// The outer TOS (its ECN field goes to the inner packet).
    pub tos: u8,
    /// The virtio-net header for the inner frame (offsets from the inner Ethernet header).
    pub inner: VnetHdr,
    /// A GSO frame.
    pub gso: bool,
}

/// Checks a frame read from the underlay's TAP (outer Ethernet onward) and its tunnel header:
/// to our MAC address, IPv4 to our VTEP, UDP to the VXLAN port, lengths consistent. A
/// super-frame must carry a partial inner checksum (built by a kernel, never on a wire as
/// segments) and is passed on partial; `DATA_VALID` is never passed on (it may vouch for the
/// outer checksum only): the pod's kernel verifies. `None`: drop it.
pub(super) fn check(
    h: &TunnelHdr,
    f: &[u8],
    mac: [u8; 6],
    vtep: Ipv4Addr,
    vxlan_port: u16,
) -> Option<Received> {
    if f.len() < OUTER + VXLAN || f[12..14] != [0x08, 0x00] || f[0..6] != mac {
        return None;
    }
    let ihl = ((f[ETH] & 0x0f) as usize) * 4;
    let l4 = ETH + ihl;
    if f[ETH] >> 4 != 4 || ihl < IPV4 || f.len() < l4 + UDP + VXLAN || f[ETH + 9] != 17 {
        return None;
    }
    let ip = &f[ETH..l4];
    let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    if tot != f.len() - ETH || frag != 0 || dst != vtep || checksum::data(ip) != 0 {
        return None;
    }
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let udp = &f[l4..l4 + UDP];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    if dport != vxlan_port || ulen != tot - ihl {
        return None;
    }
    let outer = l4 + UDP;
    let start = outer + VXLAN;
    let b = h.base;
    let partial = b.needs_csum() && b.csum_start as usize >= start;
    let gso = h.is_tunnel_gso();
    let inner = if gso {
        let t = h.inner_gso_type();
        if !b.needs_csum()
            || !matches!(t & !vnet::GSO_ECN, vnet::GSO_TCPV4 | vnet::GSO_TCPV6)
            || h.outer_th as usize != l4
            || (b.csum_start as usize) < start + ETH + IPV4
            || b.gso_size == 0
        {
            return None;
        }
        VnetHdr {
            flags: vnet::F_NEEDS_CSUM,
            gso_type: t,
            hdr_len: b.hdr_len.saturating_sub(start as u16),
            gso_size: b.gso_size,
            csum_start: b.csum_start - start as u16,
            csum_offset: b.csum_offset,
        }
    } else if b.gso_type != vnet::GSO_NONE {
        return None;
    } else {
        // One frame: a partial inner checksum is passed on as such; otherwise the outer
        // UDP checksum (unless a partial one) is verified here and the inner one by the pod.
        let outer_partial = b.needs_csum() && !partial;
        let c = u16::from_be_bytes([udp[6], udp[7]]);
        if !outer_partial && c != 0 {
            let ph = checksum::pseudo_header_v4(src_ip, dst, 17, ulen as u32);
            if checksum::finish(checksum::accumulate(ph, &f[l4..])) != 0 {
                return None;
            }
        }
        if partial {
            VnetHdr {
                flags: vnet::F_NEEDS_CSUM,
                csum_start: b.csum_start - start as u16,
                csum_offset: b.csum_offset,
                ..Default::default()
            }
        } else {
            VnetHdr::default()
        }
    };
    Some(Received {
        src: SocketAddr::new(IpAddr::V4(src_ip), sport),
        outer,
        tos: ip[1],
        inner,
        gso,
    })
}

impl Worker {
    /// Reads a batch from the underlay's TAP and runs each frame through the pipeline as a
    /// datagram from the tunnel.
    pub(super) fn service_tnl(&mut self, t: &Tables) -> Drained {
        let Worker {
            cfg,
            counters,
            underlay,
            bufs,
            ..
        } = self;
        let Some(p) = underlay.as_ref().and_then(|u| u.tnl.as_ref()) else {
            return Drained::Empty;
        };
        let c: &WorkerCounters = counters;
        let mut n = 0;
        let mut drained = false;
        // Read first (the queue is borrowed from the underlay), then forward.
        let mut meta: [Option<Received>; BATCH] = std::array::from_fn(|_| None);
        while n < BATCH {
            let buf = bufs.get_mut(n);
            match p.queue.read(buf.receive_area()) {
                Ok(0) => {
                    drained = true;
                    break;
                }
                Ok(len) => buf.set_received(len),
                Err(_) => {
                    // WouldBlock, or the device went away: wait for the control side.
                    drained = true;
                    break;
                }
            }
            let r = TunnelHdr::parse(buf.frame()).ok().and_then(|h| {
                check(
                    &h,
                    &buf.frame()[tunnel::HEADER_LEN..],
                    p.mac,
                    p.vtep,
                    cfg.vxlan_port,
                )
            });
            match r {
                Some(r) => {
                    buf.advance(tunnel::HEADER_LEN + r.outer);
                    buf.vnet = r.inner;
                    if r.gso {
                        c.event(Event::TnlGsoReads);
                    }
                    meta[n] = Some(r);
                    n += 1;
                }
                None => c.event(Event::TnlRxDropped),
            }
        }
        let local = underlay.as_ref().and_then(|u| u.local);
        let (mut tx, pipeline, bufs) = self.parts(true);
        for (i, m) in meta.iter().enumerate().take(n) {
            let Some(m) = m else { continue };
            let buf = bufs.get_mut(i);
            tx.c.rx(PORT_TUNNEL, buf.len());
            if tx.capture.wants(PORT_TUNNEL) {
                tx.capture
                    .record(tx.c, PORT_TUNNEL, true, buf.frame(), Some(m.src));
            }
            pipeline.from_tunnel_ecn(t, tx.c, m.src, local, m.tos & 0x03, buf, &mut tx);
        }
        tx.flush_gro();
        if drained {
            Drained::Empty
        } else {
            Drained::More
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A super-frame as [`send`] lays it out, checked as [`check`] does on the other side.
    #[test]
    fn outer_headers_written_and_checked() {
        let mac = [2, 0, 0, 0, 0, 2];
        let (a, b) = (
            Ipv4Addr::new(198, 51, 100, 1),
            Ipv4Addr::new(198, 51, 100, 2),
        );
        let inner_len = 14 + 20 + 20 + 3000;
        let ip_len = (IPV4 + UDP + VXLAN + inner_len) as u16;
        let mut f = vec![0u8; ETH + ip_len as usize];
        write_outer(
            &mut f,
            Outer {
                src_mac: [2, 0, 0, 0, 0, 1],
                dst_mac: mac,
                src_ip: a,
                dst_ip: b,
                tos: 0x02,
                ttl: 64,
                id: 7,
                src_port: 50000,
                dst_port: 4789,
                ip_len,
                udp_csum: true,
            },
        );
        assert_eq!(
            checksum::data(&f[ETH..ETH + IPV4]),
            0,
            "IPv4 header checksum"
        );
        assert_eq!(&f[ETH + 6..ETH + 8], &[0x40, 0], "DF");
        // The UDP checksum field: the pseudo-header sum (partial), as the kernel wants it.
        let ph = checksum::pseudo_header_v4(a, b, 17, (ip_len - 20) as u32);
        assert_eq!(
            u16::from_be_bytes([f[40], f[41]]),
            checksum::fold(ph),
            "partial UDP checksum"
        );
        let h = TunnelHdr {
            base: VnetHdr {
                flags: vnet::F_NEEDS_CSUM | tunnel::F_UDP_TUNNEL_CSUM,
                gso_type: tunnel::GSO_UDP_TUNNEL_IPV4 | vnet::GSO_TCPV4,
                hdr_len: 104,
                gso_size: 1398,
                csum_start: 84,
                csum_offset: 16,
            },
            outer_th: 34,
            inner_nh: 64,
        };
        let r = check_with(&h, &f, mac, b).expect("accepted");
        assert_eq!(r.src, SocketAddr::from((a, 50000)));
        assert_eq!((r.outer, r.tos, r.gso), (OUTER, 0x02, true));
        assert_eq!(
            r.inner,
            VnetHdr {
                flags: vnet::F_NEEDS_CSUM,
                gso_type: vnet::GSO_TCPV4,
                hdr_len: 54,
                gso_size: 1398,
                csum_start: 34,
                csum_offset: 16,
            }
        );
        // Not ours, not VXLAN, no partial checksum on a GSO frame, a bad IP checksum.
        assert!(check_with(&h, &f, [2, 0, 0, 0, 0, 9], b).is_none());
        assert!(check_with(&h, &f, mac, a).is_none());
        let mut no_csum = h;
        no_csum.base.flags = 0;
        assert!(check_with(&no_csum, &f, mac, b).is_none());
        let mut g = f.clone();
        g[ETH + 8] ^= 1;
        assert!(check_with(&h, &g, mac, b).is_none());
        let mut g = f.clone();
        g[ETH + IPV4 + 3] = 0x12;
        assert!(check_with(&h, &g, mac, b).is_none(), "another UDP port");
        assert!(
            check_with(&h, &f[..f.len() - 1], mac, b).is_none(),
            "length"
        );
        // One frame with DATA_VALID: never passed on; the outer checksum is verified.
        let dv = TunnelHdr {
            base: VnetHdr {
                flags: vnet::F_DATA_VALID,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(
            check_with(&dv, &f, mac, b).is_none(),
            "partial sum is no valid checksum"
        );
        let mut g = f.clone();
        g[40..42].fill(0);
        let r = check_with(&dv, &g, mac, b).expect("zero UDP checksum");
        assert_eq!(r.inner, VnetHdr::default());
    }

    fn check_with(h: &TunnelHdr, f: &[u8], mac: [u8; 6], vtep: Ipv4Addr) -> Option<Received> {
        check(h, f, mac, vtep, 4789)
    }
}
