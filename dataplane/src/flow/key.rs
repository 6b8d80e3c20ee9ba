//! The flow key: every field a flow can match, extracted from a frame into 20 words, so that
//! masking is 20 ANDs and hashing 20 multiplies.
//!
//! Fields of different protocols share words where no packet can carry both: the
//! neighbour-discovery target (ICMPv6 only) lies over the IPv4/ARP addresses and the transport
//! ports, which an ICMPv6 packet does not have, and in the spare low bits of the ARP MAC words;
//! flows that match it must say `icmp6` and the message type, so a rule for one protocol never
//! matches a packet of another. Only the outer IPv6 addresses of a tunnel got words of their
//! own (16–19), since an inner packet of any kind can come through an IPv6 tunnel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use controlplane::flow::{Field, Match};

use crate::wire::ipv6::Ipv6FragHeader;
use crate::wire::{
    ArpPacket, EtherType, EthernetFrame, Icmpv4Packet, IpProtocol, Ipv4Packet, Ipv6Packet,
};
use controlplane::flow::{FRAG_ANY, FRAG_LATER};

pub const WORDS: usize = 21;

/// All matchable fields of a packet, plus its metadata (in_port, tunnel, registers).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey(pub [u64; WORDS]);

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlowKey(")?;
        for w in self.0 {
            write!(f, "{w:016x} ")?;
        }
        write!(f, ")")
    }
}

/// Where a field lives: word, shift, width in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub word: usize,
    pub shift: u32,
    pub bits: u32,
}

const fn slot(word: usize, shift: u32, bits: u32) -> Slot {
    Slot { word, shift, bits }
}

pub const IN_PORT: Slot = slot(0, 48, 16);
pub const DL_TYPE: Slot = slot(0, 32, 16);
/// The 802.1Q TCI, OVS's `vlan_tci`: PCP (bits 13-15), 0x1000 set when a tag is present,
/// VID (bits 0-11); 0: untagged.
pub const DL_VLAN: Slot = slot(0, 16, 16);
/// OpenFlow's `vlan_vid` (present bit and VID) within [`DL_VLAN`].
pub const VLAN_VID: Slot = slot(0, 16, 13);
/// The 802.1Q priority within [`DL_VLAN`].
pub const VLAN_PCP: Slot = slot(0, 29, 3);
pub const NW_PROTO: Slot = slot(0, 8, 8);
pub const NW_TTL: Slot = slot(0, 0, 8);
pub const DL_SRC: Slot = slot(1, 16, 48);
pub const ICMP_TYPE: Slot = slot(1, 8, 8);
pub const ICMP_CODE: Slot = slot(1, 0, 8);
pub const DL_DST: Slot = slot(2, 16, 48);
pub const ARP_OP: Slot = slot(2, 0, 16);
/// IPv4 source, or ARP's sender protocol address (as OVS does).
pub const NW_SRC: Slot = slot(3, 32, 32);
/// IPv4 destination, or ARP's target protocol address.
pub const NW_DST: Slot = slot(3, 0, 32);
pub const TP_SRC: Slot = slot(4, 48, 16);
pub const TP_DST: Slot = slot(4, 32, 16);
pub const TUN_ID: Slot = slot(4, 0, 32);
pub const TUN_SRC: Slot = slot(5, 32, 32);
pub const TUN_DST: Slot = slot(5, 0, 32);
pub const IPV6_SRC_HI: Slot = slot(6, 0, 64);
pub const IPV6_SRC_LO: Slot = slot(7, 0, 64);
pub const IPV6_DST_HI: Slot = slot(8, 0, 64);
pub const IPV6_DST_LO: Slot = slot(9, 0, 64);
pub const ARP_SHA: Slot = slot(10, 16, 48);
pub const ARP_THA: Slot = slot(11, 16, 48);
/// The target address of a neighbour solicitation or advertisement: the high half over the
/// IPv4 addresses, the low half over the transport ports and the spare bits of words 10, 11.
pub const ND_TARGET_HI: Slot = slot(3, 0, 64);
pub const ND_TARGET_LO_A: Slot = slot(4, 32, 32);
pub const ND_TARGET_LO_B: Slot = slot(10, 0, 16);
pub const ND_TARGET_LO_C: Slot = slot(11, 0, 16);
/// Outer addresses of a packet from an IPv6 tunnel.
pub const TUN_IPV6_SRC_HI: Slot = slot(16, 0, 64);
pub const TUN_IPV6_SRC_LO: Slot = slot(17, 0, 64);
pub const TUN_IPV6_DST_HI: Slot = slot(18, 0, 64);
pub const TUN_IPV6_DST_LO: Slot = slot(19, 0, 64);

/// The packet mark (metadata).
pub const PKT_MARK: Slot = slot(20, 32, 32);
/// IPv4 TOS / IPv6 traffic class byte.
pub const NW_TOS: Slot = slot(20, 8, 8);
/// `ip_frag` bits: [`controlplane::flow::FRAG_ANY`], [`controlplane::flow::FRAG_LATER`].
pub const IP_FRAG: Slot = slot(20, 0, 2);

/// Register `i` (0..8).
pub const fn reg(i: u8) -> Slot {
    slot(12 + (i as usize) / 2, if i % 2 == 0 { 32 } else { 0 }, 32)
}

#[inline]
fn ones(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

impl FlowKey {
    #[inline]
    pub fn get(&self, s: Slot) -> u64 {
        (self.0[s.word] >> s.shift) & ones(s.bits)
    }

    #[inline]
    pub fn set(&mut self, s: Slot, v: u64) {
        let m = ones(s.bits) << s.shift;
        self.0[s.word] = (self.0[s.word] & !m) | ((v << s.shift) & m);
    }

    /// `self & mask`, word by word.
    #[inline]
    pub fn masked(&self, mask: &FlowKey) -> FlowKey {
        let mut out = [0u64; WORDS];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i] & mask.0[i];
        }
        FlowKey(out)
    }

    /// A fast hash of the key.
    #[inline]
    pub fn hash(&self) -> u64 {
        let mut h = 0u64;
        for w in self.0 {
            h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        h
    }

    /// Extracts the key of an Ethernet frame arriving on `in_port` (with its tunnel metadata
    /// when it came from the tunnel). Fields of headers that are missing or truncated stay 0.
    pub fn extract(frame: &[u8], in_port: u16, tunnel: Option<Tunnel>) -> FlowKey {
        let mut k = FlowKey::default();
        k.set(IN_PORT, in_port as u64);
        if let Some(t) = tunnel {
            k.set(TUN_ID, t.vni as u64);
            match t.src {
                IpAddr::V4(a) => k.set(TUN_SRC, u32::from(a) as u64),
                IpAddr::V6(a) => k.set_ipv6(TUN_IPV6_SRC_HI, TUN_IPV6_SRC_LO, a),
            }
            match t.dst {
                IpAddr::V4(a) => k.set(TUN_DST, u32::from(a) as u64),
                IpAddr::V6(a) => k.set_ipv6(TUN_IPV6_DST_HI, TUN_IPV6_DST_LO, a),
            }
        }
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return k;
        };
        k.set(DL_SRC, mac_u64(&eth.src_addr().0));
        k.set(DL_DST, mac_u64(&eth.dst_addr().0));
        if let Some(tci) = eth.vlan_tci() {
            // The whole TCI (PCP, VID); the CFI/DEI bit's place marks a tag present.
            k.set(DL_VLAN, (tci | 0x1000) as u64);
        }
        let ethertype = eth.payload_ethertype();
        k.set(DL_TYPE, u16::from(ethertype) as u64);
        let payload = eth.payload();
        match ethertype {
            EtherType::Arp => {
                if let Ok(arp) = ArpPacket::new_checked(payload) {
                    k.set(ARP_OP, u16::from(arp.operation()) as u64);
                    k.set(NW_SRC, u32::from(arp.source_protocol_addr()) as u64);
                    k.set(NW_DST, u32::from(arp.target_protocol_addr()) as u64);
                    k.set(ARP_SHA, mac_u64(&arp.source_hardware_addr().0));
                    k.set(ARP_THA, mac_u64(&arp.target_hardware_addr().0));
                }
            }
            EtherType::Ipv4 => {
                if let Ok(ip) = Ipv4Packet::new_checked(payload) {
                    k.set(NW_SRC, u32::from(ip.src_addr()) as u64);
                    k.set(NW_DST, u32::from(ip.dst_addr()) as u64);
                    let proto = u8::from(ip.next_header());
                    k.set(NW_PROTO, proto as u64);
                    k.set(NW_TTL, ip.hop_limit() as u64);
                    ipv4_tos_frag(&mut k, &ip);
                    if ip.frag_offset() == 0 {
                        l4(&mut k, ip.next_header(), ip.payload());
                    }
                }
            }
            EtherType::Ipv6 => {
                if let Ok(ip) = Ipv6Packet::new_checked(payload) {
                    let (s, d) = (u128::from(ip.src_addr()), u128::from(ip.dst_addr()));
                    k.set(IPV6_SRC_HI, (s >> 64) as u64);
                    k.set(IPV6_SRC_LO, s as u64);
                    k.set(IPV6_DST_HI, (d >> 64) as u64);
                    k.set(IPV6_DST_LO, d as u64);
                    k.set(NW_PROTO, u8::from(ip.next_header()) as u64);
                    k.set(NW_TTL, ip.hop_limit() as u64);
                    ipv6_tc_frag(&mut k, &ip);
                    l4(&mut k, ip.next_header(), ip.payload());
                    if ip.next_header() == IpProtocol::Icmpv6 {
                        nd(&mut k, ip.payload());
                    }
                }
            }
            _ => {}
        }
        k
    }

    pub fn ipv4(&self, s: Slot) -> Ipv4Addr {
        Ipv4Addr::from(self.get(s) as u32)
    }

    /// Stores an IPv6 address in two 64-bit slots.
    #[inline]
    pub fn set_ipv6(&mut self, hi: Slot, lo: Slot, a: Ipv6Addr) {
        let v = u128::from(a);
        self.set(hi, (v >> 64) as u64);
        self.set(lo, v as u64);
    }

    /// The neighbour-discovery target.
    pub fn nd_target(&self) -> Ipv6Addr {
        let lo = (self.get(ND_TARGET_LO_A) << 32)
            | (self.get(ND_TARGET_LO_B) << 16)
            | self.get(ND_TARGET_LO_C);
        Ipv6Addr::from(((self.get(ND_TARGET_HI) as u128) << 64) | lo as u128)
    }
}

/// `nw_tos` (the whole TOS byte: DSCP and ECN) and `ip_frag` of an IPv4 packet.
fn ipv4_tos_frag(k: &mut FlowKey, ip: &Ipv4Packet<&[u8]>) {
    k.set(NW_TOS, ip.dscp_ecn() as u64);
    let mut frag = 0;
    if ip.more_frags() || ip.frag_offset() != 0 {
        frag |= FRAG_ANY;
    }
    if ip.frag_offset() != 0 {
        frag |= FRAG_LATER;
    }
    k.set(IP_FRAG, frag as u64);
}

/// `nw_tos` (the traffic class) and `ip_frag` of an IPv6 packet: a Fragment header right
/// after the fixed header makes it a fragment.
fn ipv6_tc_frag(k: &mut FlowKey, ip: &Ipv6Packet<&[u8]>) {
    k.set(NW_TOS, ip.traffic_class() as u64);
    if u8::from(ip.next_header()) != Ipv6FragHeader::<&[u8]>::PROTOCOL {
        return;
    }
    let Ok(fh) = Ipv6FragHeader::new_checked(ip.payload()) else {
        return;
    };
    let mut frag = FRAG_ANY;
    if fh.frag_offset() != 0 {
        frag |= FRAG_LATER;
    }
    k.set(IP_FRAG, frag as u64);
}

/// Sets the neighbour-discovery target (value or mask) across its slots.
fn put_nd_target(k: &mut FlowKey, v: u128) {
    let lo = v as u64;
    k.set(ND_TARGET_HI, (v >> 64) as u64);
    k.set(ND_TARGET_LO_A, lo >> 32);
    k.set(ND_TARGET_LO_B, (lo >> 16) & 0xffff);
    k.set(ND_TARGET_LO_C, lo & 0xffff);
}

/// The target of a neighbour solicitation or advertisement.
fn nd(k: &mut FlowKey, p: &[u8]) {
    if let Ok(m) = crate::wire::NdiscPacket::new_checked(p) {
        if matches!(
            m.msg_type(),
            crate::wire::ndisc::TYPE_NEIGHBOR_SOLICIT | crate::wire::ndisc::TYPE_NEIGHBOR_ADVERT
        ) {
            put_nd_target(k, u128::from(m.target_addr()));
        }
    }
}

fn l4(k: &mut FlowKey, proto: IpProtocol, p: &[u8]) {
    match proto {
        IpProtocol::Tcp | IpProtocol::Udp if p.len() >= 4 => {
            k.set(TP_SRC, u16::from_be_bytes([p[0], p[1]]) as u64);
            k.set(TP_DST, u16::from_be_bytes([p[2], p[3]]) as u64);
        }
        IpProtocol::Icmp | IpProtocol::Icmpv6 => {
            if let Ok(icmp) = Icmpv4Packet::new_checked(p) {
                k.set(ICMP_TYPE, icmp.msg_type() as u64);
                k.set(ICMP_CODE, icmp.msg_code() as u64);
            }
        }
        _ => {}
    }
}

/// Tunnel metadata of a decapsulated packet: the VNI and the outer addresses (IPv4 or IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    pub vni: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
}

#[inline]
pub fn mac_u64(m: &[u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

#[inline]
pub fn u64_mac(v: u64) -> [u8; 6] {
    let b = v.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// The slot of a writable field.
pub fn field_slot(f: Field) -> Slot {
    match f {
        Field::DlSrc => DL_SRC,
        Field::DlDst => DL_DST,
        Field::NwSrc => NW_SRC,
        Field::NwDst => NW_DST,
        Field::NwTtl => NW_TTL,
        Field::TpSrc => TP_SRC,
        Field::TpDst => TP_DST,
        Field::TunId => TUN_ID,
        Field::TunSrc => TUN_SRC,
        Field::TunDst => TUN_DST,
        Field::Reg(i) => reg(i.min(7)),
        Field::InPort => IN_PORT,
        Field::VlanTci => DL_VLAN,
        Field::VlanVid => VLAN_VID,
        Field::VlanPcp => VLAN_PCP,
        Field::PktMark => PKT_MARK,
        Field::NwTos => NW_TOS,
        Field::DlType => DL_TYPE,
        Field::NwProto => NW_PROTO,
    }
}

/// Value and mask keys of a match list; `None` for a port name that does not resolve.
pub fn compile_match(
    matches: &[Match],
    resolve: &dyn Fn(&controlplane::flow::PortRef) -> Option<u16>,
) -> Result<(FlowKey, FlowKey), String> {
    let mut v = FlowKey::default();
    let mut m = FlowKey::default();
    let mut put = |s: Slot, value: u64, mask: u64| {
        v.set(s, value & mask);
        m.set(s, mask);
    };
    let all = |s: Slot| ones(s.bits);
    for x in matches {
        match x {
            Match::InPort { port } => {
                let p = resolve(port).ok_or_else(|| format!("no port {port}"))?;
                put(IN_PORT, p as u64, all(IN_PORT));
            }
            Match::DlSrc { value, mask } => put(DL_SRC, mac_u64(&value.0), mac_u64(&mask.0)),
            Match::DlDst { value, mask } => put(DL_DST, mac_u64(&value.0), mac_u64(&mask.0)),
            Match::DlType { value } => put(DL_TYPE, *value as u64, all(DL_TYPE)),
            Match::DlVlan { value } => put(DL_VLAN, (*value as u64 & 0xfff) | 0x1000, 0x1fff),
            Match::ArpOp { value } => put(ARP_OP, *value as u64, all(ARP_OP)),
            Match::ArpSpa { value, mask } | Match::NwSrc { value, mask } => {
                put(NW_SRC, u32::from(*value) as u64, u32::from(*mask) as u64)
            }
            Match::ArpTpa { value, mask } | Match::NwDst { value, mask } => {
                put(NW_DST, u32::from(*value) as u64, u32::from(*mask) as u64)
            }
            Match::ArpSha { value, mask } => put(ARP_SHA, mac_u64(&value.0), mac_u64(&mask.0)),
            Match::ArpTha { value, mask } => put(ARP_THA, mac_u64(&value.0), mac_u64(&mask.0)),
            Match::Ipv6Src { value, mask } => {
                let (a, b) = (u128::from(*value), u128::from(*mask));
                put(IPV6_SRC_HI, (a >> 64) as u64, (b >> 64) as u64);
                put(IPV6_SRC_LO, a as u64, b as u64);
            }
            Match::Ipv6Dst { value, mask } => {
                let (a, b) = (u128::from(*value), u128::from(*mask));
                put(IPV6_DST_HI, (a >> 64) as u64, (b >> 64) as u64);
                put(IPV6_DST_LO, a as u64, b as u64);
            }
            Match::NwProto { value } => put(NW_PROTO, *value as u64, all(NW_PROTO)),
            Match::NwTtl { value } => put(NW_TTL, *value as u64, all(NW_TTL)),
            Match::TpSrc { value, mask } => put(TP_SRC, *value as u64, *mask as u64),
            Match::TpDst { value, mask } => put(TP_DST, *value as u64, *mask as u64),
            Match::IcmpType { value } => put(ICMP_TYPE, *value as u64, all(ICMP_TYPE)),
            Match::IcmpCode { value } => put(ICMP_CODE, *value as u64, all(ICMP_CODE)),
            Match::TunId { value, mask } => {
                // VXLAN carries 24 bits: a flow that wants any of the upper 32 set never
                // matches.
                if value & mask >> 32 != 0 {
                    return Err(format!("tun_id {value:#x} is wider than the key"));
                }
                put(TUN_ID, *value, *mask & 0xffff_ffff)
            }
            Match::VlanTci { value, mask } => put(DL_VLAN, *value as u64, *mask as u64),
            Match::DlVlanPcp { value } => {
                put(DL_VLAN, ((*value as u64 & 7) << 13) | 0x1000, 0xf000)
            }
            Match::IpFrag { value, mask } => put(IP_FRAG, *value as u64, *mask as u64 & 3),
            Match::PktMark { value, mask } => put(PKT_MARK, *value as u64, *mask as u64),
            Match::ConjId { value } => {
                return Err(format!(
                    "conj_id={value} is matched through its conjunctions"
                ))
            }
            Match::TunSrc { value, mask } => {
                put(TUN_SRC, u32::from(*value) as u64, u32::from(*mask) as u64)
            }
            Match::TunDst { value, mask } => {
                put(TUN_DST, u32::from(*value) as u64, u32::from(*mask) as u64)
            }
            Match::NdTarget { value, mask } => {
                let (a, b) = (u128::from(*value), u128::from(*mask));
                let lo = (a as u64, b as u64);
                put(ND_TARGET_HI, (a >> 64) as u64, (b >> 64) as u64);
                put(ND_TARGET_LO_A, lo.0 >> 32, lo.1 >> 32);
                put(ND_TARGET_LO_B, (lo.0 >> 16) & 0xffff, (lo.1 >> 16) & 0xffff);
                put(ND_TARGET_LO_C, lo.0 & 0xffff, lo.1 & 0xffff);
            }
            Match::TunIpv6Src { value, mask } => {
                let (a, b) = (u128::from(*value), u128::from(*mask));
                put(TUN_IPV6_SRC_HI, (a >> 64) as u64, (b >> 64) as u64);
                put(TUN_IPV6_SRC_LO, a as u64, b as u64);
            }
            Match::TunIpv6Dst { value, mask } => {
                let (a, b) = (u128::from(*value), u128::from(*mask));
                put(TUN_IPV6_DST_HI, (a >> 64) as u64, (b >> 64) as u64);
                put(TUN_IPV6_DST_LO, a as u64, b as u64);
            }
            Match::Reg { index, value, mask } => {
                if *index >= 8 {
                    return Err(format!("no register reg{index}"));
                }
                put(reg(*index), *value as u64, *mask as u64)
            }
        }
    }
    Ok((v, m))
}

/// Builds a key from exact-valued matches (for trace).
pub fn key_from_matches(in_port: u16, matches: &[Match]) -> FlowKey {
    let (v, _) = compile_match(matches, &|_| Some(in_port)).unwrap_or_default();
    let mut k = v;
    k.set(IN_PORT, in_port as u64);
    k
}

/// IPv6 address of a key slot pair.
pub fn ipv6(k: &FlowKey, hi: Slot, lo: Slot) -> Ipv6Addr {
    Ipv6Addr::from(((k.get(hi) as u128) << 64) | k.get(lo) as u128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    #[test]
    fn tos_and_ip_frag_are_extracted() {
        let mut f = sample::udp_frame([2; 6], [4; 6], [10, 1, 1, 2], [10, 1, 2, 2], 64, 10);
        f[15] = 0xb9; // DSCP 46, ECN 1
        let k = FlowKey::extract(&f, 3, None);
        assert_eq!(k.get(NW_TOS), 0xb9);
        assert_eq!(k.get(IP_FRAG), 0);
        // The first fragment (MF set, offset 0), then a later one (offset 10).
        f[20..22].copy_from_slice(&0x2000u16.to_be_bytes());
        assert_eq!(FlowKey::extract(&f, 3, None).get(IP_FRAG), FRAG_ANY as u64);
        f[20..22].copy_from_slice(&10u16.to_be_bytes());
        let k = FlowKey::extract(&f, 3, None);
        assert_eq!(k.get(IP_FRAG), (FRAG_ANY | FRAG_LATER) as u64);
        assert_eq!(k.get(TP_SRC), 0, "a later fragment has no ports");
        // IPv6: traffic class 0xb8, then a Fragment header (offset 0, M set; offset 3).
        let mut v6 = vec![4u8; 6];
        v6.extend_from_slice(&[2; 6]);
        v6.extend_from_slice(&[0x86, 0xdd, 0x6b, 0x80, 0, 0, 0, 16, 44, 64]);
        v6.extend_from_slice(&sample::pod_ip6([10, 1, 1, 2]).octets());
        v6.extend_from_slice(&sample::pod_ip6([10, 1, 2, 2]).octets());
        v6.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 7]);
        v6.extend_from_slice(&[0x9c, 0x40, 0x13, 0x89, 0, 8, 0, 0]);
        let k = FlowKey::extract(&v6, 3, None);
        assert_eq!(k.get(NW_TOS), 0xb8);
        assert_eq!(k.get(IP_FRAG), FRAG_ANY as u64);
        v6[56..58].copy_from_slice(&(3u16 << 3).to_be_bytes());
        let k = FlowKey::extract(&v6, 3, None);
        assert_eq!(k.get(IP_FRAG), (FRAG_ANY | FRAG_LATER) as u64);
    }

    #[test]
    fn extracts_ipv4_udp_and_arp_fields() {
        let f = sample::udp_frame(
            sample::GW_MAC,
            sample::PODS[0].1,
            [10, 1, 1, 2],
            [10, 1, 2, 2],
            64,
            10,
        );
        let k = FlowKey::extract(&f, 3, None);
        assert_eq!(k.get(IN_PORT), 3);
        assert_eq!(k.get(DL_TYPE), 0x0800);
        assert_eq!(k.get(NW_PROTO), 17);
        assert_eq!(k.ipv4(NW_DST), Ipv4Addr::new(10, 1, 2, 2));
        assert_eq!(k.get(TP_DST), 5001);
        assert_eq!(k.get(NW_TTL), 64);
        assert_eq!(u64_mac(k.get(DL_DST)), sample::GW_MAC);
        let a = sample::arp_request(sample::PODS[0].1, [10, 1, 1, 2], [10, 1, 1, 1]);
        let k = FlowKey::extract(
            &a,
            3,
            Some(Tunnel {
                vni: 5,
                src: Ipv4Addr::new(1, 2, 3, 4).into(),
                dst: Ipv4Addr::new(5, 6, 7, 8).into(),
            }),
        );
        assert_eq!(k.get(ARP_OP), 1);
        assert_eq!(k.ipv4(NW_DST), Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(k.get(TUN_ID), 5);
        assert_eq!(k.ipv4(TUN_SRC), Ipv4Addr::new(1, 2, 3, 4));
        // Truncated frames give a key without panicking.
        for n in 0..f.len() {
            let _ = FlowKey::extract(&f[..n], 3, None);
        }
    }

    #[test]
    fn registers_do_not_overlap() {
        let mut k = FlowKey::default();
        for i in 0..8u8 {
            k.set(reg(i), 0x1000_0000 + i as u64);
        }
        for i in 0..8u8 {
            assert_eq!(k.get(reg(i)), 0x1000_0000 + i as u64);
        }
    }

    fn matches(k: &FlowKey, ms: &[Match]) -> bool {
        let (v, m) = compile_match(ms, &|_| Some(1)).unwrap();
        k.masked(&m) == v
    }

    fn exact6(s: &str) -> (Ipv6Addr, Ipv6Addr) {
        (s.parse().unwrap(), Ipv6Addr::from(u128::MAX))
    }

    #[test]
    fn nd_target_is_extracted_and_matched_apart_from_other_protocols() {
        let target: Ipv6Addr = "fd00:10:1:1::1".parse().unwrap();
        // Ethernet + IPv6 + neighbour solicitation for the target.
        let mut f = vec![0x33, 0x33, 0xff, 0, 0, 1, 2, 0, 0, 0, 0, 3, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 24, 58, 255]);
        f.extend_from_slice(&"fd00:10:1:1::2".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&"ff02::1:ff00:1".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&target.octets());
        let k = FlowKey::extract(&f, 3, None);
        assert_eq!(k.nd_target(), target);
        assert_eq!(k.get(ICMP_TYPE), 135);
        let nd = |value: Ipv6Addr, mask: Ipv6Addr| {
            vec![
                Match::DlType { value: 0x86dd },
                Match::NwProto { value: 58 },
                Match::IcmpType { value: 135 },
                Match::NdTarget { value, mask },
            ]
        };
        let (t, all) = exact6("fd00:10:1:1::1");
        assert!(matches(&k, &nd(t, all)));
        let (other, _) = exact6("fd00:10:1:1::2");
        assert!(!matches(&k, &nd(other, all)), "the low bits count");
        let (hi_other, _) = exact6("fd00:10:1:2::1");
        assert!(!matches(&k, &nd(hi_other, all)), "the high bits count");
        let (p48, m48) = (
            "fd00:10:1::".parse().unwrap(),
            "ffff:ffff:ffff::".parse().unwrap(),
        );
        assert!(matches(&k, &nd(p48, m48)), "prefix");
        // An ARP packet whose addresses and MACs fill the shared words is not an ND packet.
        let a = sample::arp_request(sample::PODS[0].1, [0xfd, 0, 0, 0x10], [0, 1, 0, 1]);
        assert!(!matches(&FlowKey::extract(&a, 3, None), &nd(t, all)));
        // Echo requests carry no target.
        let mut echo = f.clone();
        echo[54] = 128;
        assert_eq!(
            FlowKey::extract(&echo, 3, None).nd_target(),
            Ipv6Addr::UNSPECIFIED
        );
    }

    #[test]
    fn ipv6_tunnel_addresses_are_metadata_of_their_own() {
        let f = sample::udp_frame(
            sample::GW_MAC,
            sample::PODS[0].1,
            [10, 1, 1, 2],
            [10, 1, 2, 2],
            64,
            10,
        );
        let src: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let k = FlowKey::extract(
            &f,
            1,
            Some(Tunnel {
                vni: 1,
                src: src.into(),
                dst: dst.into(),
            }),
        );
        assert_eq!(ipv6(&k, TUN_IPV6_SRC_HI, TUN_IPV6_SRC_LO), src);
        assert_eq!(ipv6(&k, TUN_IPV6_DST_HI, TUN_IPV6_DST_LO), dst);
        assert_eq!(k.get(TUN_SRC), 0);
        assert_eq!(
            k.ipv4(NW_DST),
            Ipv4Addr::new(10, 1, 2, 2),
            "the inner packet is intact"
        );
        let (v, m) = exact6("2001:db8::2");
        assert!(matches(&k, &[Match::TunIpv6Src { value: v, mask: m }]));
        let pfx: Ipv6Addr = "ffff:ffff::".parse().unwrap();
        assert!(matches(
            &k,
            &[Match::TunIpv6Dst {
                value: "2001:db8::".parse().unwrap(),
                mask: pfx
            }]
        ));
        let (v, m) = exact6("2001:db8::3");
        assert!(!matches(&k, &[Match::TunIpv6Src { value: v, mask: m }]));
        // An IPv4 tunnel leaves them zero.
        let k4 = FlowKey::extract(
            &f,
            1,
            Some(Tunnel {
                vni: 1,
                src: Ipv4Addr::new(198, 51, 100, 2).into(),
                dst: Ipv4Addr::new(198, 51, 100, 1).into(),
            }),
        );
        assert_eq!(
            ipv6(&k4, TUN_IPV6_SRC_HI, TUN_IPV6_SRC_LO),
            Ipv6Addr::UNSPECIFIED
        );
    }
}
