//! Match fields: the key table (with OVS's synonyms), parsing one field's value,
//! prerequisite checks, canonical order, and printing.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::lex::{self, bad, Res};
use crate::flow::{Match, FRAG_ANY, FRAG_LATER};
use crate::proto::MacAddr;

const ETH_IP: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86dd;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

/// Exact-match mask of `tun_id` (64 bits, as in OVS; VXLAN carries the low 24).
pub(super) const TUN_ID_MASK: u64 = u64::MAX;

/// The register names, indexed by register number.
pub(super) const REG_NAMES: [&str; 8] = [
    "reg0", "reg1", "reg2", "reg3", "reg4", "reg5", "reg6", "reg7",
];

/// A match field, as a key names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fk {
    InPort,
    DlSrc,
    DlDst,
    DlType,
    DlVlan,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    NwSrc,
    NwDst,
    Ipv6Src,
    Ipv6Dst,
    NwProto,
    NwTtl,
    TpSrc,
    TpDst,
    IcmpType,
    IcmpCode,
    TunId,
    TunSrc,
    TunDst,
    NdTarget,
    TunIpv6Src,
    TunIpv6Dst,
    Reg(u8),
    VlanTci,
    DlVlanPcp,
    IpFrag,
    PktMark,
    ConjId,
}

/// A statistics key of `dump-flows` output, accepted and ignored so that its lines parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stat {
    /// `duration=12.345s`
    Duration,
    /// `n_packets=`, `n_bytes=`, `idle_age=`, `hard_age=`
    Counter,
}

/// What a key of the match part is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    Table,
    Priority,
    Cookie,
    IdleTimeout,
    HardTimeout,
    Stat(Stat),
    Field(Fk),
    /// `ip`, `tcp`, ...: sets dl_type and maybe nw_proto.
    Shorthand {
        dl_type: u16,
        nw_proto: Option<u8>,
    },
}

const fn short(dl_type: u16, nw_proto: Option<u8>) -> Key {
    Key::Shorthand { dl_type, nw_proto }
}

/// Every key of the match part, synonyms included (the first name of a field is the one
/// printed).
pub(super) const KEYS: &[(&str, Key)] = &[
    ("table", Key::Table),
    ("priority", Key::Priority),
    ("cookie", Key::Cookie),
    ("idle_timeout", Key::IdleTimeout),
    ("hard_timeout", Key::HardTimeout),
    ("duration", Key::Stat(Stat::Duration)),
    ("n_packets", Key::Stat(Stat::Counter)),
    ("n_bytes", Key::Stat(Stat::Counter)),
    ("idle_age", Key::Stat(Stat::Counter)),
    ("hard_age", Key::Stat(Stat::Counter)),
    ("in_port", Key::Field(Fk::InPort)),
    ("dl_src", Key::Field(Fk::DlSrc)),
    ("eth_src", Key::Field(Fk::DlSrc)),
    ("dl_dst", Key::Field(Fk::DlDst)),
    ("eth_dst", Key::Field(Fk::DlDst)),
    ("dl_type", Key::Field(Fk::DlType)),
    ("eth_type", Key::Field(Fk::DlType)),
    ("dl_vlan", Key::Field(Fk::DlVlan)),
    ("arp_op", Key::Field(Fk::ArpOp)),
    ("arp_spa", Key::Field(Fk::ArpSpa)),
    ("arp_tpa", Key::Field(Fk::ArpTpa)),
    ("arp_sha", Key::Field(Fk::ArpSha)),
    ("arp_tha", Key::Field(Fk::ArpTha)),
    ("nw_src", Key::Field(Fk::NwSrc)),
    ("ip_src", Key::Field(Fk::NwSrc)),
    ("nw_dst", Key::Field(Fk::NwDst)),
    ("ip_dst", Key::Field(Fk::NwDst)),
    ("ipv6_src", Key::Field(Fk::Ipv6Src)),
    ("ipv6_dst", Key::Field(Fk::Ipv6Dst)),
    ("nw_proto", Key::Field(Fk::NwProto)),
    ("ip_proto", Key::Field(Fk::NwProto)),
    ("nw_ttl", Key::Field(Fk::NwTtl)),
    ("tp_src", Key::Field(Fk::TpSrc)),
    ("tcp_src", Key::Field(Fk::TpSrc)),
    ("udp_src", Key::Field(Fk::TpSrc)),
    ("tp_dst", Key::Field(Fk::TpDst)),
    ("tcp_dst", Key::Field(Fk::TpDst)),
    ("udp_dst", Key::Field(Fk::TpDst)),
    ("icmp_type", Key::Field(Fk::IcmpType)),
    ("icmpv6_type", Key::Field(Fk::IcmpType)),
    ("icmp_code", Key::Field(Fk::IcmpCode)),
    ("icmpv6_code", Key::Field(Fk::IcmpCode)),
    ("tun_id", Key::Field(Fk::TunId)),
    ("tunnel_id", Key::Field(Fk::TunId)),
    ("tun_src", Key::Field(Fk::TunSrc)),
    ("tun_dst", Key::Field(Fk::TunDst)),
    ("nd_target", Key::Field(Fk::NdTarget)),
    ("tun_ipv6_src", Key::Field(Fk::TunIpv6Src)),
    ("tun_ipv6_dst", Key::Field(Fk::TunIpv6Dst)),
    ("reg0", Key::Field(Fk::Reg(0))),
    ("reg1", Key::Field(Fk::Reg(1))),
    ("reg2", Key::Field(Fk::Reg(2))),
    ("reg3", Key::Field(Fk::Reg(3))),
    ("reg4", Key::Field(Fk::Reg(4))),
    ("reg5", Key::Field(Fk::Reg(5))),
    ("reg6", Key::Field(Fk::Reg(6))),
    ("reg7", Key::Field(Fk::Reg(7))),
    ("vlan_tci", Key::Field(Fk::VlanTci)),
    ("dl_vlan_pcp", Key::Field(Fk::DlVlanPcp)),
    ("nw_frag", Key::Field(Fk::IpFrag)),
    ("ip_frag", Key::Field(Fk::IpFrag)),
    ("pkt_mark", Key::Field(Fk::PktMark)),
    ("conj_id", Key::Field(Fk::ConjId)),
    ("ip", short(ETH_IP, None)),
    ("arp", short(ETH_ARP, None)),
    ("ipv6", short(ETH_IPV6, None)),
    ("icmp", short(ETH_IP, Some(PROTO_ICMP))),
    ("tcp", short(ETH_IP, Some(PROTO_TCP))),
    ("udp", short(ETH_IP, Some(PROTO_UDP))),
    ("icmp6", short(ETH_IPV6, Some(PROTO_ICMPV6))),
    ("tcp6", short(ETH_IPV6, Some(PROTO_TCP))),
    ("udp6", short(ETH_IPV6, Some(PROTO_UDP))),
];

/// The key named `name` (case-sensitive).
pub(super) fn lookup(name: &str) -> Option<Key> {
    KEYS.iter().find(|(k, _)| *k == name).map(|&(_, k)| k)
}

/// Every key name, for suggestions.
pub(super) fn key_names() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|&(k, _)| k).chain(["actions"])
}

/// A number of `bits` bits after `key=`.
fn num(v: &str, at: usize, key: &str, bits: u32) -> Res<u64> {
    lex::uint(v, at, &format!("{key}="), key, bits)
}

/// Parses the value of field `f`, written as `key=v` with `v` at offset `at`.
pub(super) fn parse_field(f: Fk, key: &str, v: &str, at: usize) -> Res<Match> {
    let mac = || lex::mac_masked(v, at, key);
    let ip4 = || lex::ipv4_masked(v, at, key);
    let ip6 = || lex::ipv6_masked(v, at, key);
    Ok(match f {
        Fk::InPort => Match::InPort {
            port: lex::port(v, at, &format!("{key}="))?,
        },
        Fk::DlSrc => mac().map(|(value, mask)| Match::DlSrc { value, mask })?,
        Fk::DlDst => mac().map(|(value, mask)| Match::DlDst { value, mask })?,
        Fk::DlType => Match::DlType {
            value: num(v, at, key, 16)? as u16,
        },
        Fk::DlVlan => Match::DlVlan {
            value: num(v, at, key, 12)? as u16,
        },
        Fk::ArpOp => Match::ArpOp {
            value: num(v, at, key, 16)? as u16,
        },
        Fk::ArpSpa => ip4().map(|(value, mask)| Match::ArpSpa { value, mask })?,
        Fk::ArpTpa => ip4().map(|(value, mask)| Match::ArpTpa { value, mask })?,
        Fk::ArpSha => mac().map(|(value, mask)| Match::ArpSha { value, mask })?,
        Fk::ArpTha => mac().map(|(value, mask)| Match::ArpTha { value, mask })?,
        Fk::NwSrc => ip4().map(|(value, mask)| Match::NwSrc { value, mask })?,
        Fk::NwDst => ip4().map(|(value, mask)| Match::NwDst { value, mask })?,
        Fk::Ipv6Src => ip6().map(|(value, mask)| Match::Ipv6Src { value, mask })?,
        Fk::Ipv6Dst => ip6().map(|(value, mask)| Match::Ipv6Dst { value, mask })?,
        Fk::NwProto => Match::NwProto {
            value: num(v, at, key, 8)? as u8,
        },
        Fk::NwTtl => Match::NwTtl {
            value: num(v, at, key, 8)? as u8,
        },
        Fk::TpSrc => {
            let (value, mask) = lex::uint_masked(v, at, key, 16)?;
            Match::TpSrc {
                value: value as u16,
                mask: mask as u16,
            }
        }
        Fk::TpDst => {
            let (value, mask) = lex::uint_masked(v, at, key, 16)?;
            Match::TpDst {
                value: value as u16,
                mask: mask as u16,
            }
        }
        Fk::IcmpType => Match::IcmpType {
            value: num(v, at, key, 8)? as u8,
        },
        Fk::IcmpCode => Match::IcmpCode {
            value: num(v, at, key, 8)? as u8,
        },
        Fk::TunId => {
            let (value, mask) = lex::uint_masked(v, at, key, 64)?;
            Match::TunId { value, mask }
        }
        Fk::TunSrc => ip4().map(|(value, mask)| Match::TunSrc { value, mask })?,
        Fk::TunDst => ip4().map(|(value, mask)| Match::TunDst { value, mask })?,
        Fk::NdTarget => ip6().map(|(value, mask)| Match::NdTarget { value, mask })?,
        Fk::TunIpv6Src => ip6().map(|(value, mask)| Match::TunIpv6Src { value, mask })?,
        Fk::TunIpv6Dst => ip6().map(|(value, mask)| Match::TunIpv6Dst { value, mask })?,
        Fk::VlanTci => {
            let (value, mask) = lex::uint_masked(v, at, key, 16)?;
            Match::VlanTci {
                value: value as u16,
                mask: mask as u16,
            }
        }
        Fk::DlVlanPcp => Match::DlVlanPcp {
            value: num(v, at, key, 3)? as u8,
        },
        Fk::IpFrag => {
            let (value, mask) = match v {
                "no" => (0, FRAG_ANY | FRAG_LATER),
                "yes" => (FRAG_ANY, FRAG_ANY),
                "first" => (FRAG_ANY, FRAG_ANY | FRAG_LATER),
                "later" => (FRAG_ANY | FRAG_LATER, FRAG_ANY | FRAG_LATER),
                "not_later" => (0, FRAG_LATER),
                _ => {
                    return bad(
                        at,
                        format!(
                            "expected no, yes, first, later or not_later after {key}=, found {}",
                            lex::found(v)
                        ),
                    )
                }
            };
            Match::IpFrag { value, mask }
        }
        Fk::PktMark => {
            let (value, mask) = lex::uint_masked(v, at, key, 32)?;
            Match::PktMark {
                value: value as u32,
                mask: mask as u32,
            }
        }
        Fk::ConjId => Match::ConjId {
            value: num(v, at, key, 32)? as u32,
        },
        Fk::Reg(index) => {
            let (value, mask) = lex::uint_masked(v, at, key, 32)?;
            Match::Reg {
                index,
                value: value as u32,
                mask: mask as u32,
            }
        }
    })
}

/// The entries a shorthand stands for.
pub(super) fn shorthand(dl_type: u16, nw_proto: Option<u8>) -> Vec<Match> {
    let mut m = vec![Match::DlType { value: dl_type }];
    if let Some(value) = nw_proto {
        m.push(Match::NwProto { value });
    }
    m
}

/// Canonical position of a match: the order of [`Match`]'s variants, registers by index.
/// Two entries with the same position set the same field.
pub(super) fn order(m: &Match) -> (u8, u8) {
    let variant = match m {
        Match::InPort { .. } => 0,
        Match::DlSrc { .. } => 1,
        Match::DlDst { .. } => 2,
        Match::DlType { .. } => 3,
        Match::DlVlan { .. } => 4,
        Match::ArpOp { .. } => 5,
        Match::ArpSpa { .. } => 6,
        Match::ArpTpa { .. } => 7,
        Match::ArpSha { .. } => 8,
        Match::ArpTha { .. } => 9,
        Match::NwSrc { .. } => 10,
        Match::NwDst { .. } => 11,
        Match::Ipv6Src { .. } => 12,
        Match::Ipv6Dst { .. } => 13,
        Match::NwProto { .. } => 14,
        Match::NwTtl { .. } => 15,
        Match::TpSrc { .. } => 16,
        Match::TpDst { .. } => 17,
        Match::IcmpType { .. } => 18,
        Match::IcmpCode { .. } => 19,
        Match::NdTarget { .. } => return (19, 1),
        Match::TunId { .. } => 20,
        Match::TunSrc { .. } => 21,
        Match::TunDst { .. } => 22,
        Match::TunIpv6Src { .. } => return (22, 1),
        Match::TunIpv6Dst { .. } => return (22, 2),
        Match::Reg { index, .. } => return (23, *index),
        Match::VlanTci { .. } => return (4, 1),
        Match::DlVlanPcp { .. } => return (4, 2),
        Match::IpFrag { .. } => return (15, 1),
        Match::PktMark { .. } => 24,
        Match::ConjId { .. } => 25,
    };
    (variant, 0)
}

/// The canonical (printed) name of a match's field.
pub(super) fn field_name(m: &Match) -> String {
    let name = match m {
        Match::InPort { .. } => "in_port",
        Match::DlSrc { .. } => "dl_src",
        Match::DlDst { .. } => "dl_dst",
        Match::DlType { .. } => "dl_type",
        Match::DlVlan { .. } => "dl_vlan",
        Match::ArpOp { .. } => "arp_op",
        Match::ArpSpa { .. } => "arp_spa",
        Match::ArpTpa { .. } => "arp_tpa",
        Match::ArpSha { .. } => "arp_sha",
        Match::ArpTha { .. } => "arp_tha",
        Match::NwSrc { .. } => "nw_src",
        Match::NwDst { .. } => "nw_dst",
        Match::Ipv6Src { .. } => "ipv6_src",
        Match::Ipv6Dst { .. } => "ipv6_dst",
        Match::NwProto { .. } => "nw_proto",
        Match::NwTtl { .. } => "nw_ttl",
        Match::TpSrc { .. } => "tp_src",
        Match::TpDst { .. } => "tp_dst",
        Match::IcmpType { .. } => "icmp_type",
        Match::IcmpCode { .. } => "icmp_code",
        Match::TunId { .. } => "tun_id",
        Match::TunSrc { .. } => "tun_src",
        Match::TunDst { .. } => "tun_dst",
        Match::NdTarget { .. } => "nd_target",
        Match::TunIpv6Src { .. } => "tun_ipv6_src",
        Match::TunIpv6Dst { .. } => "tun_ipv6_dst",
        Match::Reg { index, .. } => return format!("reg{index}"),
        Match::VlanTci { .. } => "vlan_tci",
        Match::DlVlanPcp { .. } => "dl_vlan_pcp",
        Match::IpFrag { .. } => "nw_frag",
        Match::PktMark { .. } => "pkt_mark",
        Match::ConjId { .. } => "conj_id",
    };
    name.to_string()
}

/// A parsed match entry with where it came from, for duplicate and prerequisite errors.
#[derive(Debug)]
pub(super) struct Entry<'a> {
    pub m: Match,
    /// Offset of the key.
    pub at: usize,
    /// The key as written (`ip_dst`, `tcp`).
    pub key: &'a str,
    /// The whole token (`ip_dst=10.0.0.1`, `tcp`).
    pub text: &'a str,
    /// Given as a field rather than implied by a shorthand.
    pub explicit: bool,
}

/// Adds `new` unless it sets a field already set: a field given twice is an error; a
/// shorthand may repeat what is already set (`ip,tcp`), but not contradict it (`arp,tcp`).
pub(super) fn add_entry<'a>(s: &str, entries: &mut Vec<Entry<'a>>, new: Entry<'a>) -> Res<()> {
    let Some(old) = entries.iter().find(|e| order(&e.m) == order(&new.m)) else {
        entries.push(new);
        return Ok(());
    };
    let first = lex::column(s, old.at);
    if old.explicit && new.explicit {
        return bad(
            new.at,
            format!("{} is given twice (first at column {first})", new.key),
        );
    }
    if old.m == new.m {
        return Ok(());
    }
    bad(
        new.at,
        format!(
            "'{}' conflicts with '{}' at column {first}",
            new.text, old.text
        ),
    )
}

/// On an `arp` flow, OVS reads `nw_src`, `nw_dst` and `nw_proto` as `arp_spa`, `arp_tpa` and
/// `arp_op` (they are the same flow fields); this rewrites them so, refusing a field given
/// under both names.
pub(super) fn arp_aliases<'a>(s: &str, entries: Vec<Entry<'a>>) -> Res<Vec<Entry<'a>>> {
    let is_arp = entries
        .iter()
        .any(|e| matches!(e.m, Match::DlType { value: ETH_ARP }));
    if !is_arp {
        return Ok(entries);
    }
    let mut out: Vec<Entry<'a>> = Vec::with_capacity(entries.len());
    for mut e in entries {
        e.m = match e.m {
            Match::NwSrc { value, mask } => Match::ArpSpa { value, mask },
            Match::NwDst { value, mask } => Match::ArpTpa { value, mask },
            Match::NwProto { value } if e.explicit => Match::ArpOp {
                value: u16::from(value),
            },
            m => m,
        };
        add_entry(s, &mut out, e)?;
    }
    Ok(out)
}

/// Checks OVS's prerequisites: a field of a protocol needs the match to say the packet is
/// of that protocol (`nw_dst` needs `ip`).
pub(super) fn check_prerequisites(entries: &[Entry<'_>]) -> Res<()> {
    let dl_type = entries.iter().find_map(|e| match e.m {
        Match::DlType { value } => Some(value),
        _ => None,
    });
    let nw_proto = entries.iter().find_map(|e| match e.m {
        Match::NwProto { value } => Some(value),
        _ => None,
    });
    let is_ip = matches!(dl_type, Some(ETH_IP | ETH_IPV6));
    let icmp_type = entries.iter().find_map(|e| match e.m {
        Match::IcmpType { value } => Some(value),
        _ => None,
    });
    for e in entries {
        let need = match e.m {
            Match::NwSrc { .. } | Match::NwDst { .. } if dl_type != Some(ETH_IP) => {
                "ip (add 'ip,' before it)"
            }
            Match::NwProto { .. } | Match::NwTtl { .. } | Match::IpFrag { .. } if !is_ip => {
                "ip or ipv6 (add 'ip,' before it)"
            }
            Match::ArpOp { .. }
            | Match::ArpSpa { .. }
            | Match::ArpTpa { .. }
            | Match::ArpSha { .. }
            | Match::ArpTha { .. }
                if dl_type != Some(ETH_ARP) =>
            {
                "arp (add 'arp,' before it)"
            }
            Match::Ipv6Src { .. } | Match::Ipv6Dst { .. } if dl_type != Some(ETH_IPV6) => {
                "ipv6 (add 'ipv6,' before it)"
            }
            Match::TpSrc { .. } | Match::TpDst { .. }
                if !(is_ip && matches!(nw_proto, Some(PROTO_TCP | PROTO_UDP))) =>
            {
                "tcp or udp (add 'tcp,' or 'udp,' before it)"
            }
            Match::IcmpType { .. } | Match::IcmpCode { .. }
                if !matches!(
                    (dl_type, nw_proto),
                    (Some(ETH_IP), Some(PROTO_ICMP)) | (Some(ETH_IPV6), Some(PROTO_ICMPV6))
                ) =>
            {
                "icmp or icmp6 (add 'icmp,' before it)"
            }
            Match::NdTarget { .. }
                if !(dl_type == Some(ETH_IPV6)
                    && nw_proto == Some(PROTO_ICMPV6)
                    && matches!(icmp_type, Some(135 | 136))) =>
            {
                "icmp6 and icmp_type=135 or 136 (a neighbour solicitation or advertisement)"
            }
            _ => continue,
        };
        return bad(e.at, format!("{} needs {need}", e.key));
    }
    Ok(())
}

/// Masks a value and keeps tun_id to its 24 bits.
fn normalise(m: &mut Match) {
    match m {
        Match::DlSrc { value, mask }
        | Match::DlDst { value, mask }
        | Match::ArpSha { value, mask }
        | Match::ArpTha { value, mask } => *value = lex::mac_and(*value, *mask),
        Match::ArpSpa { value, mask }
        | Match::ArpTpa { value, mask }
        | Match::NwSrc { value, mask }
        | Match::NwDst { value, mask }
        | Match::TunSrc { value, mask }
        | Match::TunDst { value, mask } => {
            *value = Ipv4Addr::from(u32::from(*value) & u32::from(*mask));
        }
        Match::Ipv6Src { value, mask }
        | Match::Ipv6Dst { value, mask }
        | Match::NdTarget { value, mask }
        | Match::TunIpv6Src { value, mask }
        | Match::TunIpv6Dst { value, mask } => {
            *value = Ipv6Addr::from(u128::from(*value) & u128::from(*mask));
        }
        Match::TpSrc { value, mask } | Match::TpDst { value, mask } => *value &= *mask,
        Match::TunId { value, mask } => *value &= *mask,
        Match::Reg { value, mask, .. } | Match::PktMark { value, mask } => *value &= *mask,
        Match::VlanTci { value, mask } => *value &= *mask,
        Match::IpFrag { value, mask } => *value &= *mask,
        _ => {}
    }
}

/// A `vlan_tci` that says "tagged" and matches the whole VID and/or the whole PCP is what OVS
/// prints (and stores) as `dl_vlan` and/or `dl_vlan_pcp`: rewrite it so.
/// A `vlan_tci` that says "untagged" needs no PCP bits (an untagged frame has none): OVS keeps
/// it as `vlan_tci=0x0000/0x1fff`.
fn vlan_names(m: &mut Vec<Match>) {
    for x in m.iter_mut() {
        if let Match::VlanTci { value, mask } = x {
            if *mask & 0x1000 != 0 && *value & 0x1000 == 0 {
                *mask &= 0x1fff;
                *value &= *mask;
            }
        }
    }
    let Some(i) = m.iter().position(|x| {
        matches!(x, Match::VlanTci { value, mask }
            if value & 0x1000 != 0 && matches!(*mask, 0x1fff | 0xf000 | 0xffff))
    }) else {
        return;
    };
    let Match::VlanTci { value, mask } = m.remove(i) else {
        return;
    };
    if mask & 0x0fff != 0 {
        m.push(Match::DlVlan {
            value: value & 0x0fff,
        });
    }
    if mask & 0xe000 != 0 {
        m.push(Match::DlVlanPcp {
            value: (value >> 13) as u8,
        });
    }
}

/// True for a masked field whose mask is all zeros: it matches everything.
fn is_wildcard(m: &Match) -> bool {
    match m {
        Match::DlSrc { mask, .. }
        | Match::DlDst { mask, .. }
        | Match::ArpSha { mask, .. }
        | Match::ArpTha { mask, .. } => mask.0 == [0; 6],
        Match::ArpSpa { mask, .. }
        | Match::ArpTpa { mask, .. }
        | Match::NwSrc { mask, .. }
        | Match::NwDst { mask, .. }
        | Match::TunSrc { mask, .. }
        | Match::TunDst { mask, .. } => mask.is_unspecified(),
        Match::Ipv6Src { mask, .. }
        | Match::Ipv6Dst { mask, .. }
        | Match::NdTarget { mask, .. }
        | Match::TunIpv6Src { mask, .. }
        | Match::TunIpv6Dst { mask, .. } => mask.is_unspecified(),
        Match::TpSrc { mask, .. } | Match::TpDst { mask, .. } => *mask == 0,
        Match::TunId { mask, .. } => *mask == 0,
        Match::Reg { mask, .. } | Match::PktMark { mask, .. } => *mask == 0,
        Match::VlanTci { mask, .. } => *mask == 0,
        Match::IpFrag { mask, .. } => *mask == 0,
        _ => false,
    }
}

/// Sorts matches into canonical order (the order of [`Match`]'s variants, registers by
/// index) and normalises them: values are masked (`value &= mask`), tun_id masks are cut to
/// 24 bits, fields with an all-zero mask (which match everything) are dropped, and exact
/// duplicates removed. Parsed flows are canonical; the switch canonicalises flows that
/// arrive as JSON so that equal rules compare equal.
pub fn canonicalize(m: &mut Vec<Match>) {
    m.iter_mut().for_each(normalise);
    vlan_names(m);
    m.retain(|x| !is_wildcard(x));
    m.sort_by_key(order);
    m.dedup();
}

/// The shorthand a dl_type / nw_proto pair prints as, and whether it covers nw_proto.
fn shorthand_name(dl_type: Option<u16>, nw_proto: Option<u8>) -> Option<(&'static str, bool)> {
    Some(match (dl_type?, nw_proto) {
        (ETH_IP, Some(PROTO_ICMP)) => ("icmp", true),
        (ETH_IP, Some(PROTO_TCP)) => ("tcp", true),
        (ETH_IP, Some(PROTO_UDP)) => ("udp", true),
        (ETH_IP, _) => ("ip", false),
        (ETH_IPV6, Some(PROTO_ICMPV6)) => ("icmp6", true),
        (ETH_IPV6, Some(PROTO_TCP)) => ("tcp6", true),
        (ETH_IPV6, Some(PROTO_UDP)) => ("udp6", true),
        (ETH_IPV6, _) => ("ipv6", false),
        (ETH_ARP, _) => ("arp", false),
        _ => return None,
    })
}

/// Where ovs-ofctl prints a field (its `match_format` order): pkt_mark, conj_id, the
/// protocol shorthand, registers, tunnel fields, in_port, VLAN, Ethernet addresses, dl_type,
/// network addresses, nw_proto / arp_op, ARP hardware addresses, TTL, fragments, then the
/// transport fields.
fn print_rank(m: &Match) -> (u8, u8) {
    let r = match m {
        Match::PktMark { .. } => 0,
        Match::ConjId { .. } => 1,
        Match::Reg { index, .. } => return (2, *index),
        Match::TunId { .. } => 3,
        Match::TunSrc { .. } => 4,
        Match::TunDst { .. } => 5,
        Match::TunIpv6Src { .. } => 6,
        Match::TunIpv6Dst { .. } => 7,
        Match::InPort { .. } => 8,
        Match::DlVlan { .. } => 9,
        Match::DlVlanPcp { .. } => 10,
        Match::VlanTci { .. } => 11,
        Match::DlSrc { .. } => 12,
        Match::DlDst { .. } => 13,
        Match::DlType { .. } => 14,
        Match::Ipv6Src { .. } | Match::ArpSpa { .. } | Match::NwSrc { .. } => 15,
        Match::Ipv6Dst { .. } | Match::ArpTpa { .. } | Match::NwDst { .. } => 16,
        Match::NwProto { .. } | Match::ArpOp { .. } => 17,
        Match::ArpSha { .. } => 18,
        Match::ArpTha { .. } => 19,
        Match::NwTtl { .. } => 20,
        Match::IpFrag { .. } => 21,
        Match::IcmpType { .. } => 22,
        Match::IcmpCode { .. } => 23,
        Match::NdTarget { .. } => 24,
        Match::TpSrc { .. } => 25,
        Match::TpDst { .. } => 26,
    };
    (r, 0)
}

/// Prints a match the way ovs-ofctl does: the protocol shorthand first (`ip`, `tcp`,
/// `arp`, ...) when dl_type and nw_proto allow one, then the fields in canonical order,
/// comma-separated. An empty match prints as "".
pub fn format_match(m: &[Match]) -> String {
    let dl_type = m.iter().find_map(|x| match x {
        Match::DlType { value } => Some(*value),
        _ => None,
    });
    let nw_proto = m.iter().find_map(|x| match x {
        Match::NwProto { value } => Some(*value),
        _ => None,
    });
    let short = shorthand_name(dl_type, nw_proto);
    let mut sorted: Vec<&Match> = m.iter().collect();
    sorted.sort_by_key(|x| (print_rank(x), order(x)));
    let mut parts: Vec<String> = Vec::new();
    let mut short_done = short.is_none();
    for x in sorted {
        if !short_done && print_rank(x).0 >= 2 {
            parts.extend(short.iter().map(|(name, _)| name.to_string()));
            short_done = true;
        }
        let covered = match x {
            Match::DlType { value } => short.is_some() && Some(*value) == dl_type,
            Match::NwProto { value } => {
                short.is_some_and(|(_, proto)| proto) && Some(*value) == nw_proto
            }
            _ => false,
        };
        if !covered {
            parts.push(format_one(x));
        }
    }
    if !short_done {
        parts.extend(short.iter().map(|(name, _)| name.to_string()));
    }
    parts.join(",")
}

/// `mac` or `mac/mask`.
fn fmt_mac(value: MacAddr, mask: MacAddr) -> String {
    if mask.0 == [0xff; 6] {
        value.to_string()
    } else {
        format!("{value}/{mask}")
    }
}

/// `ip`, `ip/prefix` for contiguous masks, or `ip/mask`.
fn fmt_ipv4(value: Ipv4Addr, mask: Ipv4Addr) -> String {
    let bits = u32::from(mask);
    match bits.leading_ones() {
        32 => value.to_string(),
        n if lex::prefix_mask32(n) == bits => format!("{value}/{n}"),
        _ => format!("{value}/{mask}"),
    }
}

/// `ip6`, `ip6/prefix` for contiguous masks, or `ip6/mask`.
fn fmt_ipv6(value: Ipv6Addr, mask: Ipv6Addr) -> String {
    let bits = u128::from(mask);
    match bits.leading_ones() {
        128 => value.to_string(),
        n if lex::prefix_mask128(n) == bits => format!("{value}/{n}"),
        _ => format!("{value}/{mask}"),
    }
}

/// `0xVALUE` or `0xVALUE/0xMASK` (tun_id, registers, masked ports).
fn fmt_hex(value: u64, mask: u64, exact: u64) -> String {
    if mask & exact == exact {
        lex::chex(value)
    } else {
        format!("{}/{}", lex::chex(value), lex::chex(mask))
    }
}

/// One field as `name=value`.
fn format_one(m: &Match) -> String {
    let mut out = field_name(m);
    out.push('=');
    let value = match m {
        Match::InPort { port } => port.to_string(),
        Match::DlSrc { value, mask }
        | Match::DlDst { value, mask }
        | Match::ArpSha { value, mask }
        | Match::ArpTha { value, mask } => fmt_mac(*value, *mask),
        Match::DlType { value } => format!("{value:#06x}"),
        Match::DlVlan { value } | Match::ArpOp { value } => value.to_string(),
        Match::ArpSpa { value, mask }
        | Match::ArpTpa { value, mask }
        | Match::NwSrc { value, mask }
        | Match::NwDst { value, mask }
        | Match::TunSrc { value, mask }
        | Match::TunDst { value, mask } => fmt_ipv4(*value, *mask),
        Match::Ipv6Src { value, mask }
        | Match::Ipv6Dst { value, mask }
        | Match::NdTarget { value, mask }
        | Match::TunIpv6Src { value, mask }
        | Match::TunIpv6Dst { value, mask } => fmt_ipv6(*value, *mask),
        Match::NwProto { value }
        | Match::NwTtl { value }
        | Match::IcmpType { value }
        | Match::IcmpCode { value } => value.to_string(),
        Match::TpSrc { value, mask } | Match::TpDst { value, mask } => {
            if *mask == u16::MAX {
                value.to_string()
            } else {
                format!("{value:#x}/{mask:#x}")
            }
        }
        Match::TunId { value, mask } => fmt_hex(*value, *mask, TUN_ID_MASK),
        Match::VlanTci { value, mask } => {
            if *mask == u16::MAX {
                format!("0x{value:04x}")
            } else {
                format!("0x{value:04x}/0x{mask:04x}")
            }
        }
        Match::DlVlanPcp { value } => value.to_string(),
        Match::IpFrag { value, mask } => match (*value, *mask) {
            (0, 3) | (0, 1) => "no".to_string(),
            (1, 1) => "yes".to_string(),
            (1, 3) => "first".to_string(),
            (3, 3) | (2, 2) => "later".to_string(),
            (0, 2) => "not_later".to_string(),
            (v, m) => format!("{}/{}", lex::chex(u64::from(v)), lex::chex(u64::from(m))),
        },
        Match::PktMark { value, mask } => {
            fmt_hex(u64::from(*value), u64::from(*mask), u64::from(u32::MAX))
        }
        Match::ConjId { value } => value.to_string(),
        Match::Reg { value, mask, .. } => {
            fmt_hex(u64::from(*value), u64::from(*mask), u64::from(u32::MAX))
        }
    };
    out.push_str(&value);
    out
}
