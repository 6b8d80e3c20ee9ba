//! The gateway announced to a pod when its port is (re-)attached.
//!
//! A pod's `eth0` is a TAP whose carrier follows the switch: when vxswitchd dies, the carrier
//! drops and the pod's kernel flushes its neighbour entry for the gateway; a packet the pod
//! sends meanwhile starts a resolution whose first ARP request (or neighbour solicitation)
//! cannot leave, and the next one goes a whole `retrans_time` (1 s) later. So the switch, as
//! soon as it holds the TAP again, writes into it what makes the pod's kernel learn the
//! gateway at once:
//!
//! - an ARP request from the gateway asking for the pod's own address: a request addressed to
//!   it makes Linux create (or update) its entry for the sender, and an entry waiting for
//!   resolution sends the packets it queued (`arp_process`, `neigh_event_ns`);
//! - a gratuitous ARP of the gateway (broadcast), which refreshes an entry that exists;
//! - on a dual-stack pod, a neighbour solicitation from the gateway's IPv6 address for the
//!   pod's, with the gateway MAC as source link-layer address (`ndisc_recv_ns` creates the
//!   entry for the sender), and an unsolicited neighbour advertisement of the gateway with the
//!   router and override flags to all nodes (RFC 4861 section 7.2.6).
//!
//! The pod answers the request and the solicitation; the switch drops those answers as it
//! drops any ARP reply or advertisement it did not ask for (counted by reason). Frames are
//! built here without I/O; `ports.rs` writes them on the control thread, never on the packet
//! path.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::{
    arp, ethernet, ipv6, ndisc, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress,
    EthernetFrame, EthernetRepr, Icmpv6Packet, IpProtocol, Ipv6Packet, Ipv6Repr, NdiscPacket,
};

/// The frames announcing the gateway (`gw`, `gw_mac`, and `gw6` on a dual-stack node) to a pod
/// with MAC `pod_mac`, IPv4 address `pod_ip` and, if it has one, IPv6 address `pod_ip6`.
pub fn gateway_frames(
    gw: Ipv4Addr,
    gw_mac: EthernetAddress,
    gw6: Option<Ipv6Addr>,
    pod_mac: EthernetAddress,
    pod_ip: Ipv4Addr,
    pod_ip6: Option<Ipv6Addr>,
) -> Vec<Vec<u8>> {
    let mut frames = vec![
        arp_frame(
            gw_mac,
            pod_mac,
            ArpRepr {
                operation: ArpOperation::Request,
                source_hardware_addr: gw_mac,
                source_protocol_addr: gw,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: pod_ip,
            },
        ),
        arp_frame(
            gw_mac,
            EthernetAddress::BROADCAST,
            ArpRepr {
                operation: ArpOperation::Request,
                source_hardware_addr: gw_mac,
                source_protocol_addr: gw,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: gw,
            },
        ),
    ];
    if let (Some(gw6), Some(ip6)) = (gw6, pod_ip6) {
        frames.push(nd_frame(
            gw_mac,
            pod_mac,
            gw6,
            ip6,
            ndisc::TYPE_NEIGHBOR_SOLICIT,
            0,
            ip6,
            ndisc::OPT_SOURCE_LL_ADDR,
        ));
        frames.push(nd_frame(
            gw_mac,
            EthernetAddress([0x33, 0x33, 0, 0, 0, 1]),
            gw6,
            ALL_NODES,
            ndisc::TYPE_NEIGHBOR_ADVERT,
            ndisc::FLAG_ROUTER | ndisc::FLAG_OVERRIDE,
            gw6,
            ndisc::OPT_TARGET_LL_ADDR,
        ));
    }
    frames
}

/// ff02::1, every node on the link.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn arp_frame(src: EthernetAddress, dst: EthernetAddress, repr: ArpRepr) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + arp::LEN];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype: EtherType::Arp,
    }
    .emit(&mut eth);
    repr.emit(&mut ArpPacket::new_unchecked(
        &mut f[ethernet::HEADER_LEN..],
    ));
    f
}

/// A solicitation or advertisement with one link-layer address option (the gateway MAC).
#[allow(clippy::too_many_arguments)]
fn nd_frame(
    src: EthernetAddress,
    dst: EthernetAddress,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    msg_type: u8,
    flags: u8,
    target: Ipv6Addr,
    option: u8,
) -> Vec<u8> {
    let msg_len = ndisc::HEADER_LEN + ndisc::LL_OPTION_LEN;
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv6::HEADER_LEN + msg_len];
    EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype: EtherType::Ipv6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    let (ip_hdr, msg) = f[ethernet::HEADER_LEN..].split_at_mut(ipv6::HEADER_LEN);
    Ipv6Repr {
        src_addr: src_ip,
        dst_addr: dst_ip,
        next_header: IpProtocol::Icmpv6,
        payload_len: msg_len,
        hop_limit: ndisc::HOP_LIMIT,
    }
    .emit(&mut Ipv6Packet::new_unchecked(ip_hdr));
    {
        let mut nd = NdiscPacket::new_unchecked(&mut msg[..]);
        nd.set_msg_type(msg_type);
        nd.set_msg_code(0);
        nd.set_flags(flags);
        nd.set_target_addr(target);
        nd.set_ll_addr_option(option, src);
    }
    Icmpv6Packet::new_unchecked(&mut msg[..]).fill_checksum(&src_ip, &dst_ip);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW_MAC: EthernetAddress = EthernetAddress([0x0a, 0x58, 10, 1, 1, 1]);
    const POD_MAC: EthernetAddress = EthernetAddress([0x0a, 0x58, 10, 1, 1, 2]);

    fn frames(v6: bool) -> Vec<Vec<u8>> {
        gateway_frames(
            Ipv4Addr::new(10, 1, 1, 1),
            GW_MAC,
            v6.then(|| "fd00:10:1:1::1".parse().unwrap()),
            POD_MAC,
            Ipv4Addr::new(10, 1, 1, 2),
            v6.then(|| "fd00:10:1:1::2".parse().unwrap()),
        )
    }

    #[test]
    fn asks_the_pod_for_its_address_from_the_gateway_and_announces_it() {
        let f = frames(false);
        assert_eq!(f.len(), 2, "IPv4 only: the request and the gratuitous ARP");
        let eth = EthernetFrame::new_checked(&f[0][..]).unwrap();
        assert_eq!(eth.dst_addr(), POD_MAC);
        assert_eq!(eth.src_addr(), GW_MAC);
        assert_eq!(eth.ethertype(), EtherType::Arp);
        let req = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(req.operation, ArpOperation::Request);
        assert_eq!(req.source_hardware_addr, GW_MAC);
        assert_eq!(req.source_protocol_addr, Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(req.target_protocol_addr, Ipv4Addr::new(10, 1, 1, 2));

        let eth = EthernetFrame::new_checked(&f[1][..]).unwrap();
        assert!(eth.dst_addr().is_broadcast());
        let garp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(garp.source_protocol_addr, garp.target_protocol_addr);
        assert_eq!(garp.source_hardware_addr, GW_MAC);
    }

    #[test]
    fn solicits_a_dual_stack_pod_from_the_gateway_with_valid_checksums() {
        let f = frames(true);
        assert_eq!(f.len(), 4);
        let gw6: Ipv6Addr = "fd00:10:1:1::1".parse().unwrap();
        let pod6: Ipv6Addr = "fd00:10:1:1::2".parse().unwrap();

        let eth = EthernetFrame::new_checked(&f[2][..]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), (POD_MAC, GW_MAC));
        assert_eq!(eth.ethertype(), EtherType::Ipv6);
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (gw6, pod6));
        assert_eq!(ip.hop_limit(), ndisc::HOP_LIMIT);
        assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&gw6, &pod6));
        let ns = NdiscPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(ns.msg_type(), ndisc::TYPE_NEIGHBOR_SOLICIT);
        assert_eq!(ns.target_addr(), pod6);
        assert_eq!(ns.ll_addr_option(ndisc::OPT_SOURCE_LL_ADDR), Some(GW_MAC));

        let eth = EthernetFrame::new_checked(&f[3][..]).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress([0x33, 0x33, 0, 0, 0, 1]));
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (gw6, ALL_NODES));
        assert!(Icmpv6Packet::new_checked(ip.payload())
            .unwrap()
            .verify_checksum(&gw6, &ALL_NODES));
        let na = NdiscPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(na.msg_type(), ndisc::TYPE_NEIGHBOR_ADVERT);
        assert_eq!(na.flags(), ndisc::FLAG_ROUTER | ndisc::FLAG_OVERRIDE);
        assert_eq!(na.target_addr(), gw6);
        assert_eq!(na.ll_addr_option(ndisc::OPT_TARGET_LL_ADDR), Some(GW_MAC));
    }
}
