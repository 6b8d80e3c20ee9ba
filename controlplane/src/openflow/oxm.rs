//! OXM matches (`ofp_match` of type OFPMT_OXM), NXM fields carried as experimenter OXMs,
//! actions and instructions: the pieces flow mods, flow stats and monitor updates share.
//!
//! Actions live in [`super::actions`], instructions in [`super::instructions`]; their entry
//! points are re-exported here.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::kind;
use super::fields::{be_n, pad8, patch16, put_n, slice, Mf, OXM_EXPERIMENTER};
use super::OfError;
use crate::flow::{Match, PortRef, FRAG_ANY, FRAG_LATER};
use crate::proto::MacAddr;

pub use super::actions::{decode_actions, encode_actions};
pub use super::instructions::{decode_instructions, encode_instructions};

/// `ofp_match` type of an OXM match.
pub const OFPMT_OXM: u16 = 1;

mod field {
    use std::ops::Range;
    pub const TYPE: Range<usize> = 0..2;
    pub const LENGTH: Range<usize> = 2..4;
    pub const OXMS: usize = 4;
}

/// OFPBMC_* codes.
pub mod code {
    pub const BAD_TYPE: u16 = 0;
    pub const BAD_LEN: u16 = 1;
    pub const BAD_WILDCARDS: u16 = 5;
    pub const BAD_FIELD: u16 = 6;
    pub const BAD_VALUE: u16 = 7;
    pub const BAD_MASK: u16 = 8;
    pub const BAD_PREREQ: u16 = 9;
    pub const DUP_FIELD: u16 = 10;
}

fn err(code: u16, detail: impl Into<String>) -> OfError {
    OfError::new(kind::BAD_MATCH, code, detail)
}

/// A read view of an `ofp_match`.
#[derive(Debug, Clone, Copy)]
pub struct MatchView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MatchView<T> {
    /// Checks the type (OXM), that the length covers the 4-byte header and that the match and
    /// its padding lie inside the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, OfError> {
        let v = MatchView { buffer };
        let b = v.buffer.as_ref();
        if b.len() < 4 {
            return Err(err(code::BAD_LEN, "short match"));
        }
        if v.match_type() != OFPMT_OXM {
            return Err(err(code::BAD_TYPE, "match is not OXM"));
        }
        if v.length() < 4 || v.padded_len() > b.len() {
            return Err(err(code::BAD_LEN, "match length"));
        }
        Ok(v)
    }
    pub fn match_type(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TYPE];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// The match's length without padding.
    pub fn length(&self) -> usize {
        let b = &self.buffer.as_ref()[field::LENGTH];
        usize::from(u16::from_be_bytes([b[0], b[1]]))
    }
    /// The length with padding to 8 bytes: what the match takes in its message.
    pub fn padded_len(&self) -> usize {
        self.length().div_ceil(8) * 8
    }
    /// The OXM TLVs.
    pub fn oxms(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OXMS..self.length()]
    }
}

/// One decoded OXM/NXM entry: the field, its value and its mask (all ones when exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oxm {
    pub mf: Mf,
    pub value: u128,
    pub mask: u128,
    pub masked: bool,
}

fn ones(bytes: usize) -> u128 {
    if bytes >= 16 {
        u128::MAX
    } else {
        (1u128 << (bytes * 8)) - 1
    }
}

/// Reads one OXM TLV (header, value, optional mask) from the start of `b`; returns it and
/// the bytes it took. `allow_mask` false refuses masked ones (set_field).
pub fn read_oxm(b: &[u8]) -> Result<(Oxm, usize), OfError> {
    let hdr = slice(b, 0, 4).ok_or_else(|| err(code::BAD_LEN, "short OXM header"))?;
    let h = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let class = (h >> 16) as u16;
    let hasmask = h & 0x100 != 0;
    let len = (h & 0xff) as usize;
    let (start, payload) = if class == OXM_EXPERIMENTER {
        // The experimenter id is part of the payload length.
        if len < 4 || slice(b, 4, len).is_none() {
            return Err(err(code::BAD_LEN, "short experimenter OXM"));
        }
        return Err(err(code::BAD_FIELD, "unsupported experimenter OXM field"));
    } else {
        (4, len)
    };
    let body = slice(b, start, payload).ok_or_else(|| err(code::BAD_LEN, "OXM past match end"))?;
    let mf = Mf::from_header(h)
        .ok_or_else(|| err(code::BAD_FIELD, format!("unsupported field {h:#010x}")))?;
    let n = mf.bytes();
    let want = if hasmask { 2 * n } else { n };
    if payload != want {
        return Err(err(
            code::BAD_LEN,
            format!("field {mf:?}: length {payload}, want {want}"),
        ));
    }
    let value = be_n(&body[..n]);
    let mask = if hasmask { be_n(&body[n..]) } else { ones(n) };
    if value & !mask != 0 {
        return Err(err(
            code::BAD_WILDCARDS,
            format!("field {mf:?}: value bits outside mask"),
        ));
    }
    Ok((
        Oxm {
            mf,
            value,
            mask,
            masked: hasmask,
        },
        start + payload,
    ))
}

/// Appends one OXM TLV (masked unless the mask is all ones).
pub fn write_oxm(out: &mut Vec<u8>, mf: Mf, value: u128, mask: u128) {
    let n = mf.bytes();
    let masked = mask & ones(n) != ones(n);
    out.extend_from_slice(&mf.header(masked).to_be_bytes());
    put_n(out, value & mask, n);
    if masked {
        put_n(out, mask, n);
    }
}

/// An OpenFlow 1.1+ port number as the project's port, or None for special ports.
pub fn port_from_of(p: u32) -> Option<PortRef> {
    if p >= 1 && p <= u32::from(crate::flow::MAX_PORT) {
        Some(PortRef::Number(p as u16))
    } else {
        None
    }
}

/// A 16-bit (OpenFlow 1.0 numbering) port as a 32-bit one.
pub fn port16_to_32(p: u16) -> u32 {
    if p >= 0xff00 {
        u32::from(p) | 0xffff_0000
    } else {
        u32::from(p)
    }
}

/// The 32-bit number of a project port; names (which the switch resolves before encoding)
/// encode as OFPP_ANY.
pub fn port_to_of(p: &PortRef) -> u32 {
    match p {
        PortRef::Number(n) => port16_to_32(*n),
        PortRef::Name(_) => super::port::ANY,
    }
}

fn mac(v: u128) -> MacAddr {
    let b = (v as u64).to_be_bytes();
    MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn mac_bits(m: &MacAddr) -> u128 {
    be_n(&m.0)
}

fn exact<T>(o: &Oxm, what: T) -> Result<T, OfError> {
    if o.mask != ones(o.mf.bytes()) {
        return Err(err(
            code::BAD_MASK,
            format!("field {:?} cannot be masked", o.mf),
        ));
    }
    Ok(what)
}

/// Decodes an `ofp_match` (type, length, OXM TLVs, padding to 8) at the start of `b`;
/// returns the matches (canonical order) and the bytes it took, padding included.
pub fn decode_match(_version: u8, b: &[u8]) -> Result<(Vec<Match>, usize), OfError> {
    let view = MatchView::new_checked(b)?;
    let mut oxms: Vec<Oxm> = Vec::new();
    let mut rest = view.oxms();
    while !rest.is_empty() {
        let (o, used) = read_oxm(rest)?;
        rest = &rest[used..];
        if oxms.iter().any(|x| x.mf == o.mf) {
            return Err(err(code::DUP_FIELD, format!("field {:?} twice", o.mf)));
        }
        oxms.push(o);
    }
    let matches = oxms_to_matches(&oxms)?;
    Ok((matches, view.padded_len()))
}

fn get(oxms: &[Oxm], mf: Mf) -> Option<&Oxm> {
    oxms.iter().find(|o| o.mf == mf)
}

/// The exact value of a prerequisite field, if matched exactly.
fn exact_of(oxms: &[Oxm], mf: Mf) -> Option<u128> {
    get(oxms, mf)
        .filter(|o| o.mask == ones(mf.bytes()))
        .map(|o| o.value)
}

fn prereq(oxms: &[Oxm], o: &Oxm) -> Result<(), OfError> {
    const IP4: u128 = 0x0800;
    const IP6: u128 = 0x86dd;
    const ARP: u128 = 0x0806;
    let et = exact_of(oxms, Mf::EthType);
    let proto = exact_of(oxms, Mf::IpProto);
    let ip = et == Some(IP4) || et == Some(IP6);
    let ok = match o.mf {
        Mf::Ipv4Src | Mf::Ipv4Dst => et == Some(IP4),
        Mf::Ipv6Src | Mf::Ipv6Dst => et == Some(IP6),
        Mf::ArpOp | Mf::ArpSpa | Mf::ArpTpa | Mf::ArpSha | Mf::ArpTha => et == Some(ARP),
        Mf::IpProto | Mf::IpDscp | Mf::IpEcn | Mf::IpTos | Mf::IpTtl | Mf::IpFrag => ip,
        Mf::TcpSrc | Mf::TcpDst => ip && proto == Some(6),
        Mf::UdpSrc | Mf::UdpDst => ip && proto == Some(17),
        Mf::SctpSrc | Mf::SctpDst => ip && proto == Some(132),
        Mf::Icmpv4Type | Mf::Icmpv4Code => et == Some(IP4) && proto == Some(1),
        Mf::Icmpv6Type | Mf::Icmpv6Code => et == Some(IP6) && proto == Some(58),
        Mf::NdTarget => {
            et == Some(IP6)
                && proto == Some(58)
                && matches!(exact_of(oxms, Mf::Icmpv6Type), Some(135) | Some(136))
        }
        Mf::VlanPcp => get(oxms, Mf::VlanVid).is_some_and(|v| v.value & 0x1000 != 0),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(err(
            code::BAD_PREREQ,
            format!("field {:?} without its prerequisites", o.mf),
        ))
    }
}

fn oxms_to_matches(oxms: &[Oxm]) -> Result<Vec<Match>, OfError> {
    let mut out = Vec::new();
    // 802.1Q: OXM VLAN_VID/VLAN_PCP and NXM_OF_VLAN_TCI both become one TCI value/mask.
    let mut tci: Option<(u16, u16)> = None;
    for o in oxms {
        prereq(oxms, o)?;
        let v = o.value;
        let m = o.mask;
        let ip4 = |x: u128| Ipv4Addr::from(x as u32);
        let ip6 = |x: u128| Ipv6Addr::from(x);
        let item = match o.mf {
            Mf::InPort => {
                let p = exact(o, v as u32)?;
                let port = port_from_of(p).ok_or_else(|| {
                    OfError::new(kind::BAD_MATCH, code::BAD_VALUE, format!("in_port {p:#x}"))
                })?;
                Match::InPort { port }
            }
            Mf::NxInPort => {
                let p = exact(o, v as u16)?;
                let port = port_from_of(port16_to_32(p))
                    .ok_or_else(|| err(code::BAD_VALUE, format!("in_port {p:#x}")))?;
                Match::InPort { port }
            }
            Mf::Metadata => return Err(err(code::BAD_FIELD, "metadata matches are not supported")),
            Mf::EthDst => Match::DlDst {
                value: mac(v),
                mask: mac(m),
            },
            Mf::EthSrc => Match::DlSrc {
                value: mac(v),
                mask: mac(m),
            },
            Mf::EthType => Match::DlType {
                value: exact(o, v as u16)?,
            },
            Mf::VlanTci => {
                tci = Some((v as u16, m as u16));
                continue;
            }
            Mf::VlanVid => {
                let (tv, tm) = tci.unwrap_or((0, 0));
                tci = Some((tv | (v as u16 & 0x1fff), tm | (m as u16 & 0x1fff)));
                continue;
            }
            Mf::VlanPcp => {
                let pcp = exact(o, v as u16)?;
                let (tv, tm) = tci.unwrap_or((0, 0));
                tci = Some((tv | (pcp & 7) << 13, tm | 0xe000));
                continue;
            }
            Mf::IpDscp | Mf::IpEcn | Mf::IpTos => {
                return Err(err(
                    code::BAD_FIELD,
                    format!("{:?} matches are not supported", o.mf),
                ))
            }
            Mf::IpProto => Match::NwProto {
                value: exact(o, v as u8)?,
            },
            Mf::Ipv4Src => Match::NwSrc {
                value: ip4(v),
                mask: ip4(m),
            },
            Mf::Ipv4Dst => Match::NwDst {
                value: ip4(v),
                mask: ip4(m),
            },
            Mf::TcpSrc | Mf::UdpSrc | Mf::SctpSrc => Match::TpSrc {
                value: v as u16,
                mask: m as u16,
            },
            Mf::TcpDst | Mf::UdpDst | Mf::SctpDst => Match::TpDst {
                value: v as u16,
                mask: m as u16,
            },
            Mf::Icmpv4Type | Mf::Icmpv6Type => Match::IcmpType {
                value: exact(o, v as u8)?,
            },
            Mf::Icmpv4Code | Mf::Icmpv6Code => Match::IcmpCode {
                value: exact(o, v as u8)?,
            },
            Mf::ArpOp => Match::ArpOp {
                value: exact(o, v as u16)?,
            },
            Mf::ArpSpa => Match::ArpSpa {
                value: ip4(v),
                mask: ip4(m),
            },
            Mf::ArpTpa => Match::ArpTpa {
                value: ip4(v),
                mask: ip4(m),
            },
            Mf::ArpSha => Match::ArpSha {
                value: mac(v),
                mask: mac(m),
            },
            Mf::ArpTha => Match::ArpTha {
                value: mac(v),
                mask: mac(m),
            },
            Mf::Ipv6Src => Match::Ipv6Src {
                value: ip6(v),
                mask: ip6(m),
            },
            Mf::Ipv6Dst => Match::Ipv6Dst {
                value: ip6(v),
                mask: ip6(m),
            },
            Mf::NdTarget => Match::NdTarget {
                value: ip6(v),
                mask: ip6(m),
            },
            Mf::TunId => Match::TunId {
                value: v as u64,
                mask: m as u64,
            },
            Mf::TunSrc => Match::TunSrc {
                value: ip4(v),
                mask: ip4(m),
            },
            Mf::TunDst => Match::TunDst {
                value: ip4(v),
                mask: ip4(m),
            },
            Mf::TunIpv6Src => Match::TunIpv6Src {
                value: ip6(v),
                mask: ip6(m),
            },
            Mf::TunIpv6Dst => Match::TunIpv6Dst {
                value: ip6(v),
                mask: ip6(m),
            },
            Mf::Reg(index) => Match::Reg {
                index,
                value: v as u32,
                mask: m as u32,
            },
            Mf::PktMark => Match::PktMark {
                value: v as u32,
                mask: m as u32,
            },
            Mf::IpFrag => {
                if v as u8 & !(FRAG_ANY | FRAG_LATER) != 0 {
                    return Err(err(code::BAD_VALUE, "ip_frag bits"));
                }
                Match::IpFrag {
                    value: v as u8,
                    mask: m as u8 & (FRAG_ANY | FRAG_LATER),
                }
            }
            Mf::IpTtl => Match::NwTtl {
                value: exact(o, v as u8)?,
            },
            Mf::ConjId => Match::ConjId {
                value: exact(o, v as u32)?,
            },
        };
        out.push(item);
    }
    if let Some((v, m)) = tci {
        out.extend(tci_to_matches(v, m));
    }
    crate::flow_syntax::canonicalize(&mut out);
    Ok(out)
}

/// A TCI value/mask as the matches the flow syntax writes for it: `dl_vlan`, `dl_vlan_pcp`
/// where they say it exactly, else `vlan_tci`.
fn tci_to_matches(v: u16, m: u16) -> Vec<Match> {
    let v = v & m;
    match m {
        0x1fff if v & 0x1000 != 0 => vec![Match::DlVlan { value: v & 0xfff }],
        0xffff if v & 0x1000 != 0 => vec![
            Match::DlVlan { value: v & 0xfff },
            Match::DlVlanPcp {
                value: (v >> 13) as u8,
            },
        ],
        0xf000 if v & 0x1000 != 0 => vec![Match::DlVlanPcp {
            value: (v >> 13) as u8,
        }],
        // OFPVID_NONE: untagged, which is the whole TCI being zero.
        0x1fff if v == 0 => vec![Match::VlanTci {
            value: 0,
            mask: 0xffff,
        }],
        _ => vec![Match::VlanTci { value: v, mask: m }],
    }
}

/// The OXM form of a TCI value/mask (VLAN_VID value and mask, VLAN_PCP), when decoding it
/// gives the same matches back.
#[allow(clippy::type_complexity)]
fn tci_as_oxm(v: u16, k: u16) -> Option<(Option<(u16, u16)>, Option<u16>)> {
    let vid_mask = k & 0x1fff;
    let vid = (vid_mask != 0).then_some((v & vid_mask, vid_mask));
    let pcp = (v & k & 0x1000 != 0 && k & 0xe000 != 0).then_some((v >> 13) & 7);
    let (mut bv, mut bk) = (0u16, 0u16);
    if let Some((a, b)) = vid {
        bv |= a;
        bk |= b;
    }
    if let Some(p) = pcp {
        bv |= p << 13;
        bk |= 0xe000;
    }
    (tci_to_matches(bv, bk) == tci_to_matches(v, k)).then_some((vid, pcp))
}

/// The TCI value/mask a match's VLAN entries add up to.
fn matches_to_tci(m: &[Match]) -> Option<(u16, u16)> {
    let mut tci: Option<(u16, u16)> = None;
    for x in m {
        let (v, k) = match x {
            Match::DlVlan { value } => (0x1000 | (value & 0xfff), 0x1fff),
            Match::DlVlanPcp { value } => (0x1000 | (u16::from(*value & 7) << 13), 0xf000),
            Match::VlanTci { value, mask } => (value & mask, *mask),
            _ => continue,
        };
        let (tv, tm) = tci.unwrap_or((0, 0));
        tci = Some((tv | v, tm | k));
    }
    tci
}

/// Appends the OXMs of a match (no `ofp_match` header).
pub fn encode_oxms(m: &[Match], out: &mut Vec<u8>) {
    let dl_type = m.iter().find_map(|x| match x {
        Match::DlType { value } => Some(*value),
        _ => None,
    });
    let proto = m.iter().find_map(|x| match x {
        Match::NwProto { value } => Some(*value),
        _ => None,
    });
    let mut sorted: Vec<&Match> = m.iter().collect();
    // Prerequisites (eth_type, ip_proto) go first, as OVS writes them.
    sorted.sort_by_key(|x| match x {
        Match::InPort { .. } => 0,
        Match::DlType { .. } => 1,
        Match::NwProto { .. } => 2,
        _ => 3,
    });
    let mut vlan_done = false;
    for x in sorted {
        let ip4 = |a: &Ipv4Addr| u128::from(u32::from(*a));
        let ip6 = |a: &Ipv6Addr| u128::from(*a);
        match x {
            Match::InPort { port } => {
                write_oxm(out, Mf::InPort, u128::from(port_to_of(port)), u128::MAX)
            }
            Match::DlSrc { value, mask } => {
                write_oxm(out, Mf::EthSrc, mac_bits(value), mac_bits(mask))
            }
            Match::DlDst { value, mask } => {
                write_oxm(out, Mf::EthDst, mac_bits(value), mac_bits(mask))
            }
            Match::DlType { value } => write_oxm(out, Mf::EthType, u128::from(*value), u128::MAX),
            Match::DlVlan { .. } | Match::VlanTci { .. } | Match::DlVlanPcp { .. } => {
                if vlan_done {
                    continue;
                }
                vlan_done = true;
                let Some((v, k)) = matches_to_tci(m) else {
                    continue;
                };
                match tci_as_oxm(v, k) {
                    // As OVS: VID and the present bit as OXM_OF_VLAN_VID, the priority as
                    // OXM_OF_VLAN_PCP when the frame must be tagged.
                    Some((vid, pcp)) => {
                        if let Some((vv, vm)) = vid {
                            let mask = if vm == 0x1fff {
                                u128::MAX
                            } else {
                                u128::from(vm)
                            };
                            write_oxm(out, Mf::VlanVid, u128::from(vv), mask);
                        }
                        if let Some(p) = pcp {
                            write_oxm(out, Mf::VlanPcp, u128::from(p), u128::MAX);
                        }
                    }
                    // What OXM cannot say (a priority of a frame that may be untagged, part
                    // of the priority bits) goes as NXM_OF_VLAN_TCI.
                    None => write_oxm(out, Mf::VlanTci, u128::from(v), u128::from(k)),
                }
            }
            Match::ArpOp { value } => write_oxm(out, Mf::ArpOp, u128::from(*value), u128::MAX),
            Match::ArpSpa { value, mask } => write_oxm(out, Mf::ArpSpa, ip4(value), ip4(mask)),
            Match::ArpTpa { value, mask } => write_oxm(out, Mf::ArpTpa, ip4(value), ip4(mask)),
            Match::ArpSha { value, mask } => {
                write_oxm(out, Mf::ArpSha, mac_bits(value), mac_bits(mask))
            }
            Match::ArpTha { value, mask } => {
                write_oxm(out, Mf::ArpTha, mac_bits(value), mac_bits(mask))
            }
            Match::NwSrc { value, mask } => {
                let f = if dl_type == Some(0x0806) {
                    Mf::ArpSpa
                } else {
                    Mf::Ipv4Src
                };
                write_oxm(out, f, ip4(value), ip4(mask))
            }
            Match::NwDst { value, mask } => {
                let f = if dl_type == Some(0x0806) {
                    Mf::ArpTpa
                } else {
                    Mf::Ipv4Dst
                };
                write_oxm(out, f, ip4(value), ip4(mask))
            }
            Match::Ipv6Src { value, mask } => write_oxm(out, Mf::Ipv6Src, ip6(value), ip6(mask)),
            Match::Ipv6Dst { value, mask } => write_oxm(out, Mf::Ipv6Dst, ip6(value), ip6(mask)),
            Match::NwProto { value } => write_oxm(out, Mf::IpProto, u128::from(*value), u128::MAX),
            Match::NwTtl { value } => write_oxm(out, Mf::IpTtl, u128::from(*value), u128::MAX),
            Match::TpSrc { value, mask } => {
                let f = match proto {
                    Some(17) => Mf::UdpSrc,
                    Some(132) => Mf::SctpSrc,
                    _ => Mf::TcpSrc,
                };
                write_oxm(out, f, u128::from(*value), u128::from(*mask))
            }
            Match::TpDst { value, mask } => {
                let f = match proto {
                    Some(17) => Mf::UdpDst,
                    Some(132) => Mf::SctpDst,
                    _ => Mf::TcpDst,
                };
                write_oxm(out, f, u128::from(*value), u128::from(*mask))
            }
            Match::IcmpType { value } => {
                let f = if dl_type == Some(0x86dd) {
                    Mf::Icmpv6Type
                } else {
                    Mf::Icmpv4Type
                };
                write_oxm(out, f, u128::from(*value), u128::MAX)
            }
            Match::IcmpCode { value } => {
                let f = if dl_type == Some(0x86dd) {
                    Mf::Icmpv6Code
                } else {
                    Mf::Icmpv4Code
                };
                write_oxm(out, f, u128::from(*value), u128::MAX)
            }
            Match::NdTarget { value, mask } => write_oxm(out, Mf::NdTarget, ip6(value), ip6(mask)),
            Match::TunId { value, mask } => {
                write_oxm(out, Mf::TunId, u128::from(*value), u128::from(*mask))
            }
            Match::TunSrc { value, mask } => write_oxm(out, Mf::TunSrc, ip4(value), ip4(mask)),
            Match::TunDst { value, mask } => write_oxm(out, Mf::TunDst, ip4(value), ip4(mask)),
            Match::TunIpv6Src { value, mask } => {
                write_oxm(out, Mf::TunIpv6Src, ip6(value), ip6(mask))
            }
            Match::TunIpv6Dst { value, mask } => {
                write_oxm(out, Mf::TunIpv6Dst, ip6(value), ip6(mask))
            }
            Match::Reg { index, value, mask } => write_oxm(
                out,
                Mf::Reg((*index).min(7)),
                u128::from(*value),
                u128::from(*mask),
            ),
            Match::IpFrag { value, mask } => {
                // ovs-ofctl's `ip_frag=` keywords always send both bits in the mask.
                write_oxm(out, Mf::IpFrag, u128::from(*value), u128::from(*mask))
            }
            Match::PktMark { value, mask } => {
                write_oxm(out, Mf::PktMark, u128::from(*value), u128::from(*mask))
            }
            Match::ConjId { value } => write_oxm(out, Mf::ConjId, u128::from(*value), u128::MAX),
        }
    }
}

/// Appends an `ofp_match`, padded to 8 bytes.
pub fn encode_match(_version: u8, m: &[Match], out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&OFPMT_OXM.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    encode_oxms(m, out);
    let len = out.len() - at;
    patch16(out, at + 2, len);
    pad8(out, at);
}
