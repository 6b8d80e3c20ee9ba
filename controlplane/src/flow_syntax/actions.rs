//! Actions: parsing the list after `actions=`, and printing it.

use std::net::Ipv4Addr;

use super::lex::{self, bad, found, Res};
use super::matches::REG_NAMES;
use crate::flow::{Field, FieldRange, FlowAction, PortRef};

/// Every action vxswitch knows, with its usage for messages.
const ACTIONS: &[(&str, &str)] = &[
    ("output", "output:PORT"),
    ("normal", "normal"),
    ("flood", "flood"),
    ("drop", "drop"),
    ("set_field", "set_field:VALUE->FIELD"),
    ("load", "load:VALUE->FIELD[BITS]"),
    ("move", "move:FIELD[BITS]->FIELD[BITS]"),
    ("mod_dl_src", "mod_dl_src:MAC"),
    ("mod_dl_dst", "mod_dl_dst:MAC"),
    ("mod_nw_src", "mod_nw_src:IP"),
    ("mod_nw_dst", "mod_nw_dst:IP"),
    ("mod_nw_ttl", "mod_nw_ttl:TTL"),
    ("mod_tp_src", "mod_tp_src:PORT"),
    ("mod_tp_dst", "mod_tp_dst:PORT"),
    ("dec_ttl", "dec_ttl"),
    ("resubmit", "resubmit(,TABLE) or resubmit(PORT,TABLE)"),
    ("goto_table", "goto_table:TABLE"),
    ("note", "note:HEX"),
    ("set_tunnel", "set_tunnel:VNI"),
    ("in_port", "in_port"),
    ("mod_nw_tos", "mod_nw_tos:TOS"),
    ("mod_vlan_vid", "mod_vlan_vid:VID"),
    ("mod_vlan_pcp", "mod_vlan_pcp:PCP"),
    ("strip_vlan", "strip_vlan"),
    ("push_vlan", "push_vlan:ETHERTYPE"),
    ("pop_vlan", "pop_vlan"),
    ("group", "group:GROUP_ID"),
    ("learn", "learn(table=N,...)"),
    ("conjunction", "conjunction(ID,K/N)"),
];

/// OVS actions vxswitch does not implement (named as such rather than as typos).
const UNSUPPORTED: &[&str] = &[
    "controller",
    "local",
    "all",
    "enqueue",
    "push_mpls",
    "pop_mpls",
    "mod_nw_ecn",
    "set_tunnel64",
    "set_queue",
    "pop_queue",
    "bundle",
    "bundle_load",
    "multipath",
    "exit",
    "clone",
    "sample",
    "meter",
    "write_metadata",
    "fin_timeout",
    "dec_mpls_ttl",
    "output_trunc",
    "check_pkt_larger",
    "write_actions",
    "clear_actions",
    "push",
    "pop",
    "encap",
    "decap",
];

/// Field names of set_field, load, move, output and learn, with OVS's synonyms: the OXM-style
/// name (printed by set_field) comes first, the NXM name (printed in bit ranges) in [`nxm_name`].
const FIELDS: &[(&str, Field)] = &[
    ("eth_src", Field::DlSrc),
    ("dl_src", Field::DlSrc),
    ("NXM_OF_ETH_SRC", Field::DlSrc),
    ("eth_dst", Field::DlDst),
    ("dl_dst", Field::DlDst),
    ("NXM_OF_ETH_DST", Field::DlDst),
    ("ip_src", Field::NwSrc),
    ("nw_src", Field::NwSrc),
    ("NXM_OF_IP_SRC", Field::NwSrc),
    // ARP's protocol addresses are the same flow fields as nw_src and nw_dst (as in OVS).
    ("arp_spa", Field::NwSrc),
    ("NXM_OF_ARP_SPA", Field::NwSrc),
    ("ip_dst", Field::NwDst),
    ("nw_dst", Field::NwDst),
    ("NXM_OF_IP_DST", Field::NwDst),
    ("arp_tpa", Field::NwDst),
    ("NXM_OF_ARP_TPA", Field::NwDst),
    ("nw_ttl", Field::NwTtl),
    ("NXM_NX_IP_TTL", Field::NwTtl),
    ("tp_src", Field::TpSrc),
    ("tcp_src", Field::TpSrc),
    ("udp_src", Field::TpSrc),
    ("NXM_OF_TCP_SRC", Field::TpSrc),
    ("NXM_OF_UDP_SRC", Field::TpSrc),
    ("tp_dst", Field::TpDst),
    ("tcp_dst", Field::TpDst),
    ("udp_dst", Field::TpDst),
    ("NXM_OF_TCP_DST", Field::TpDst),
    ("NXM_OF_UDP_DST", Field::TpDst),
    ("tun_id", Field::TunId),
    ("tunnel_id", Field::TunId),
    ("NXM_NX_TUN_ID", Field::TunId),
    ("tun_src", Field::TunSrc),
    ("NXM_NX_TUN_IPV4_SRC", Field::TunSrc),
    ("tun_dst", Field::TunDst),
    ("NXM_NX_TUN_IPV4_DST", Field::TunDst),
    ("reg0", Field::Reg(0)),
    ("reg1", Field::Reg(1)),
    ("reg2", Field::Reg(2)),
    ("reg3", Field::Reg(3)),
    ("reg4", Field::Reg(4)),
    ("reg5", Field::Reg(5)),
    ("reg6", Field::Reg(6)),
    ("reg7", Field::Reg(7)),
    ("NXM_NX_REG0", Field::Reg(0)),
    ("NXM_NX_REG1", Field::Reg(1)),
    ("NXM_NX_REG2", Field::Reg(2)),
    ("NXM_NX_REG3", Field::Reg(3)),
    ("NXM_NX_REG4", Field::Reg(4)),
    ("NXM_NX_REG5", Field::Reg(5)),
    ("NXM_NX_REG6", Field::Reg(6)),
    ("NXM_NX_REG7", Field::Reg(7)),
    ("in_port", Field::InPort),
    ("NXM_OF_IN_PORT", Field::InPort),
    ("vlan_tci", Field::VlanTci),
    ("NXM_OF_VLAN_TCI", Field::VlanTci),
    ("vlan_vid", Field::VlanVid),
    ("vlan_pcp", Field::VlanPcp),
    ("pkt_mark", Field::PktMark),
    ("NXM_NX_PKT_MARK", Field::PktMark),
    ("nw_tos", Field::NwTos),
    ("NXM_OF_IP_TOS", Field::NwTos),
    ("eth_type", Field::DlType),
    ("dl_type", Field::DlType),
    ("NXM_OF_ETH_TYPE", Field::DlType),
    ("nw_proto", Field::NwProto),
    ("ip_proto", Field::NwProto),
    ("NXM_OF_IP_PROTO", Field::NwProto),
];

/// OVS fields that actions here cannot read or write.
const FIELD_UNSUPPORTED: &[&str] = &[
    "arp_op",
    "NXM_OF_ARP_OP",
    "arp_sha",
    "arp_tha",
    "NXM_NX_ARP_SHA",
    "NXM_NX_ARP_THA",
    "metadata",
    "OXM_OF_METADATA",
    "ipv6_src",
    "ipv6_dst",
    "NXM_NX_IPV6_SRC",
    "NXM_NX_IPV6_DST",
    "tun_ipv6_src",
    "NXM_NX_TUN_IPV6_SRC",
    "NXM_NX_TUN_IPV6_DST",
];

/// The NXM name of a field, as ovs-ofctl prints bit ranges (`NXM_NX_REG0[]`); fields that
/// have none print under their OXM name.
fn nxm_name(f: Field, udp: bool) -> String {
    match f {
        Field::TpSrc if udp => "NXM_OF_UDP_SRC",
        Field::TpDst if udp => "NXM_OF_UDP_DST",
        Field::DlSrc => "NXM_OF_ETH_SRC",
        Field::DlDst => "NXM_OF_ETH_DST",
        Field::NwSrc => "NXM_OF_IP_SRC",
        Field::NwDst => "NXM_OF_IP_DST",
        Field::NwTtl => "NXM_NX_IP_TTL",
        Field::TpSrc => "NXM_OF_TCP_SRC",
        Field::TpDst => "NXM_OF_TCP_DST",
        Field::TunId => "NXM_NX_TUN_ID",
        Field::TunSrc => "NXM_NX_TUN_IPV4_SRC",
        Field::TunDst => "NXM_NX_TUN_IPV4_DST",
        Field::Reg(i) => return format!("NXM_NX_REG{i}"),
        Field::InPort => "NXM_OF_IN_PORT",
        Field::VlanTci => "NXM_OF_VLAN_TCI",
        Field::VlanVid => "vlan_vid",
        Field::VlanPcp => "vlan_pcp",
        Field::PktMark => "NXM_NX_PKT_MARK",
        Field::NwTos => "NXM_OF_IP_TOS",
        Field::DlType => "NXM_OF_ETH_TYPE",
        Field::NwProto => "NXM_OF_IP_PROTO",
    }
    .to_string()
}

/// True if `word` starts like an action (`output:1`), to hint that it belongs after
/// `actions=`.
pub(super) fn looks_like_action(word: &str) -> bool {
    let name = word.split([':', '(']).next().unwrap_or(word);
    (name.len() < word.len() || name == "normal" || name == "flood" || name == "dec_ttl")
        && ACTIONS.iter().any(|&(a, _)| a == name)
}

/// Parses the action list of `s` starting at offset `from` (just after `actions=`). An empty
/// list and `drop` both give `[Drop]`; `drop` must then be the only action.
pub(super) fn parse(s: &str, from: usize) -> Res<Vec<FlowAction>> {
    let mut out = Vec::new();
    let mut drop_at = None;
    let mut i = from;
    loop {
        i = lex::skip_delims(s, i);
        if i >= s.len() {
            break;
        }
        let at = i;
        i = token_end(s, at)?;
        for a in one(&s[at..i], at)? {
            match a {
                FlowAction::Drop => drop_at = drop_at.or(Some(at)),
                a => out.push(a),
            }
        }
    }
    if let (Some(at), false) = (drop_at, out.is_empty()) {
        return bad(
            at,
            "drop must be the only action (a flow with other actions does not drop)",
        );
    }
    if out.is_empty() {
        out.push(FlowAction::Drop);
    }
    Ok(out)
}

/// The end of the action starting at `at`: the next comma or whitespace outside
/// parentheses.
fn token_end(s: &str, at: usize) -> Res<usize> {
    let mut depth = 0usize;
    for (i, c) in s[at..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return bad(at + i, "unbalanced ')'"),
            ')' => depth -= 1,
            c if depth == 0 && lex::is_delim(c) => return Ok(at + i),
            _ => {}
        }
    }
    if depth > 0 {
        return bad(at, format!("unclosed '(' in {:?}", &s[at..]));
    }
    Ok(s.len())
}

/// One action `tok` at offset `at` (a masked set_field gives one load per run of mask bits,
/// as OVS stores it).
fn one(tok: &str, at: usize) -> Res<Vec<FlowAction>> {
    if tok.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(vec![FlowAction::Output {
            port: lex::port(tok, at, "actions=")?,
        }]);
    }
    let name_end = tok.find([':', '(']).unwrap_or(tok.len());
    let (name, rest) = tok.split_at(name_end);
    let arg = rest.get(1..).unwrap_or("");
    let arg_at = at + name_end + 1;
    let sep = rest.chars().next();
    let lower = name.to_ascii_lowercase();
    Ok(vec![match (name, sep) {
        ("output", Some(':')) => output(arg, arg_at)?,
        (_, None) if lower == "normal" => FlowAction::Normal,
        (_, None) if lower == "flood" => FlowAction::Flood,
        (_, None) if lower == "drop" => FlowAction::Drop,
        (_, None) if lower == "in_port" => FlowAction::InPort,
        ("dec_ttl", None) => FlowAction::DecTtl,
        ("set_field", Some(':')) => return set_field(arg, arg_at),
        ("load", Some(':')) => load(arg, arg_at)?,
        ("move", Some(':')) => move_(arg, arg_at)?,
        // OVS's older spellings of set_field on one field.
        ("mod_dl_src", Some(':')) => return set_field(&format!("{arg}->eth_src"), arg_at),
        ("mod_dl_dst", Some(':')) => return set_field(&format!("{arg}->eth_dst"), arg_at),
        ("mod_nw_src", Some(':')) => return set_field(&format!("{arg}->nw_src"), arg_at),
        ("mod_nw_dst", Some(':')) => return set_field(&format!("{arg}->nw_dst"), arg_at),
        ("mod_nw_ttl", Some(':')) => return set_field(&format!("{arg}->nw_ttl"), arg_at),
        ("mod_tp_src", Some(':')) => return set_field(&format!("{arg}->tp_src"), arg_at),
        ("mod_tp_dst", Some(':')) => return set_field(&format!("{arg}->tp_dst"), arg_at),
        ("mod_nw_tos", Some(':')) => {
            let tos = lex::uint(arg, arg_at, "mod_nw_tos:", "nw_tos", 8)? as u8;
            if tos & 3 != 0 {
                return bad(
                    arg_at,
                    format!(
                        "mod_nw_tos:{arg} sets the DSCP bits: the value must be a multiple of 4"
                    ),
                );
            }
            FlowAction::ModNwTos { tos }
        }
        ("mod_vlan_vid", Some(':')) => FlowAction::ModVlanVid {
            vid: lex::uint(arg, arg_at, "mod_vlan_vid:", "the VLAN id", 12)? as u16,
        },
        ("mod_vlan_pcp", Some(':')) => FlowAction::ModVlanPcp {
            pcp: lex::uint(arg, arg_at, "mod_vlan_pcp:", "the VLAN priority", 3)? as u8,
        },
        ("strip_vlan", None) | ("pop_vlan", None) => FlowAction::PopVlan,
        ("push_vlan", Some(':')) => {
            let ethertype = lex::uint(arg, arg_at, "push_vlan:", "an ethertype", 16)? as u16;
            if ethertype != 0x8100 && ethertype != 0x88a8 {
                return bad(
                    arg_at,
                    format!("push_vlan takes 0x8100 (802.1Q) or 0x88a8 (802.1ad), found {arg}"),
                );
            }
            FlowAction::PushVlan { ethertype }
        }
        ("group", Some(':')) => {
            let id = lex::uint(arg, arg_at, "group:", "a group id", 32)? as u32;
            if id > crate::flow::MAX_GROUP {
                return bad(
                    arg_at,
                    format!(
                        "group {arg} is out of range (groups are 0-{:#x})",
                        crate::flow::MAX_GROUP
                    ),
                );
            }
            FlowAction::Group { id }
        }
        ("resubmit", Some('(')) => resubmit(rest, at + name_end)?,
        ("resubmit", Some(':')) => FlowAction::Resubmit {
            in_port: Some(lex::port(arg, arg_at, "resubmit:")?),
            table: CURRENT_TABLE,
        },
        ("goto_table", Some(':')) => FlowAction::GotoTable {
            table: lex::table(arg, arg_at, "goto_table:")?,
        },
        ("note", Some(':')) => FlowAction::Note {
            bytes: note(arg, arg_at)?,
        },
        ("set_tunnel", Some(':')) => FlowAction::SetField {
            field: Field::TunId,
            value: lex::uint(arg, arg_at, "set_tunnel:", "tun_id", 32)?,
        },
        ("set_tunnel64", Some(':')) => FlowAction::SetField {
            field: Field::TunId,
            value: lex::uint(arg, arg_at, "set_tunnel64:", "tun_id", 64)?,
        },
        ("learn", Some('(')) => super::learn::parse(rest, at + name_end)?,
        ("conjunction", Some('(')) => conjunction(rest, at + name_end)?,
        ("ct", _) | ("ct_clear", None) => {
            return bad(
                at,
                format!(
                    "the {name} action: connection tracking (ct_state, ct(...)) is not \
                     supported by vxswitch"
                ),
            )
        }
        _ => return unknown(tok, name, at).map(|a| vec![a]),
    }])
}

/// The table of `resubmit:PORT` and `resubmit(PORT)`: the current one (OVS's 255).
pub(super) const CURRENT_TABLE: u8 = 255;

/// `output:PORT`, `output:FIELD[BITS]` (the port a field holds) or a reserved port that is an
/// action of its own (`output:NORMAL`, `output:FLOOD`, `output:IN_PORT`).
fn output(arg: &str, at: usize) -> Res<FlowAction> {
    if arg.contains('[') {
        let src = subfield(arg, at)?;
        if src.width() > 32 {
            return bad(
                at,
                format!(
                    "output:{arg}: a port number has at most 32 bits, the range has {}",
                    src.width()
                ),
            );
        }
        return Ok(FlowAction::OutputReg { src });
    }
    match arg.to_ascii_lowercase().as_str() {
        "normal" => return Ok(FlowAction::Normal),
        "flood" => return Ok(FlowAction::Flood),
        "in_port" => return Ok(FlowAction::InPort),
        _ => {}
    }
    Ok(FlowAction::Output {
        port: lex::port(arg, at, "output:")?,
    })
}

/// `conjunction(ID,K/N)`; `rest` is `(...)` at `at`.
fn conjunction(rest: &str, at: usize) -> Res<FlowAction> {
    let usage = "expected conjunction(ID,K/N) (clause K of N, 1 <= K <= N, 2 <= N <= 64)";
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or(lex::Bad {
            at,
            msg: usage.to_string(),
        })?;
    let parsed = inner.split_once(',').and_then(|(id, kn)| {
        let (k, n) = kn.trim().split_once('/')?;
        let id = lex::number(id.trim())
            .ok()
            .and_then(|v| u32::try_from(v).ok())?;
        let k = lex::number(k.trim())
            .ok()
            .and_then(|v| u8::try_from(v).ok())?;
        let n = lex::number(n.trim())
            .ok()
            .and_then(|v| u8::try_from(v).ok())?;
        Some((id, k, n))
    });
    match parsed {
        Some((id, clause, n_clauses))
            if (2..=64).contains(&n_clauses) && (1..=n_clauses).contains(&clause) =>
        {
            Ok(FlowAction::Conjunction {
                id,
                clause,
                n_clauses,
            })
        }
        _ => bad(at + 1, format!("{usage}, found {}", found(inner))),
    }
}

/// The error for an action that is not one of ours, or is misused.
fn unknown(tok: &str, name: &str, at: usize) -> Res<FlowAction> {
    if let Some(&(_, usage)) = ACTIONS.iter().find(|&&(a, _)| a == name) {
        return bad(at, format!("expected {usage}, found {tok:?}"));
    }
    if UNSUPPORTED.contains(&name.to_ascii_lowercase().as_str()) {
        return bad(
            at,
            format!("the {name} action is not supported by vxswitch"),
        );
    }
    let names = ACTIONS.iter().map(|&(a, _)| a);
    bad(
        at,
        format!("unknown action {name:?}{}", lex::did_you_mean(name, names)),
    )
}

/// The field named `name` at `at`.
fn field(name: &str, at: usize) -> Res<Field> {
    FIELDS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, f)| f)
        .ok_or_else(|| {
            let names = FIELDS.iter().map(|&(n, _)| n);
            let msg = if name.starts_with("ct_") || name.starts_with("NXM_NX_CT_") {
                format!(
                    "{name}: connection tracking (ct_state, ct(...)) is not supported by vxswitch"
                )
            } else if FIELD_UNSUPPORTED.contains(&name) {
                format!("the field {name} is not supported by vxswitch in actions")
            } else {
                format!(
                    "unknown field {}{}; fields are eth_src, eth_dst, ip_src, ip_dst, nw_ttl, \
                     nw_tos, tp_src, tp_dst, tun_id, tun_src, tun_dst, reg0-reg7, in_port, \
                     vlan_tci, vlan_vid, vlan_pcp, pkt_mark, eth_type, nw_proto (or their NXM \
                     names)",
                    found(name),
                    lex::did_you_mean(name, names)
                )
            };
            lex::Bad { at, msg }
        })
}

/// The name set_field prints: OVS's OXM name, transport ports after the flow's protocol.
fn print_field_name(f: Field, udp: bool) -> String {
    match (f, udp) {
        (Field::TpSrc, false) => "tcp_src".to_string(),
        (Field::TpDst, false) => "tcp_dst".to_string(),
        (Field::TpSrc, true) => "udp_src".to_string(),
        (Field::TpDst, true) => "udp_dst".to_string(),
        (f, _) => field_name(f),
    }
}

/// The printed name of a field in set_field (OVS's OXM-style name).
pub(super) fn field_name(f: Field) -> String {
    match f {
        Field::Reg(i) => REG_NAMES
            .get(usize::from(i))
            .map_or_else(|| format!("reg{i}"), |n| n.to_string()),
        f => FIELDS
            .iter()
            .find(|&&(_, x)| x == f)
            .map_or("?", |&(n, _)| n)
            .to_string(),
    }
}

/// `FIELD`, `FIELD[]`, `FIELD[BIT]` or `FIELD[START..END]` (inclusive).
pub(super) fn subfield(s: &str, at: usize) -> Res<FieldRange> {
    let (name, brackets) = match s.find('[') {
        Some(i) => (&s[..i], Some((&s[i..], at + i))),
        None => (s, None),
    };
    let field = field(name, at)?;
    let Some((r, r_at)) = brackets else {
        return Ok(FieldRange::whole(field));
    };
    let Some(inner) = r.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return bad(
            r_at,
            format!("expected [], [BIT] or [START..END] after {name}, found {r:?}"),
        );
    };
    let bits = u64::from(field.bits());
    let bit = |b: &str, b_at: usize| -> Res<u64> {
        if b.is_empty() || !b.bytes().all(|c| c.is_ascii_digit()) {
            return bad(
                b_at,
                format!("expected a bit number in {name}{r}, found {}", found(b)),
            );
        }
        Ok(b.parse().unwrap_or(u64::MAX))
    };
    let (start, end) = if inner.is_empty() {
        (0, bits - 1)
    } else if let Some((a, b)) = inner.split_once("..") {
        (bit(a, r_at + 1)?, bit(b, r_at + 1 + a.len() + 2)?)
    } else {
        let n = bit(inner, r_at + 1)?;
        (n, n)
    };
    if start > end {
        return bad(
            r_at,
            format!("{name}{r}: the start bit is after the end bit"),
        );
    }
    if end >= bits {
        return bad(
            r_at,
            format!(
                "{name}{r} is outside {name}, which has {bits} bits [0..{}]",
                bits - 1
            ),
        );
    }
    Ok(FieldRange {
        field,
        start: start as u8,
        end: end as u8,
    })
}

/// `NAME[]`, `NAME[n]` or `NAME[a..b]`, under the field's NXM name as ovs-ofctl prints it.
pub(super) fn format_range(r: &FieldRange) -> String {
    format_range_in(r, false)
}

/// [`format_range`] in a flow that matches UDP (`udp`: transport ports print as UDP's).
pub(super) fn format_range_in(r: &FieldRange, udp: bool) -> String {
    let name = nxm_name(r.field, udp);
    if r.start == 0 && u32::from(r.end) + 1 == r.field.bits() {
        format!("{name}[]")
    } else if r.start == r.end {
        format!("{name}[{}]", r.start)
    } else {
        format!("{name}[{}..{}]", r.start, r.end)
    }
}

/// Splits `A->B`; `after` names the action for the message.
fn arrow<'a>(arg: &'a str, at: usize, usage: &str) -> Res<(&'a str, &'a str, usize)> {
    match arg.split_once("->") {
        Some((a, b)) => Ok((a, b, at + a.len() + 2)),
        None => bad(at, format!("expected {usage}, found {}", found(arg))),
    }
}

/// A value of `field` as set_field and learn write it: a MAC, an IPv4 address, a port, or
/// a number that fits the field.
pub(super) fn field_value(field: Field, v: &str, at: usize, after: &str) -> Res<u64> {
    Ok(match field {
        Field::DlSrc | Field::DlDst => lex::mac_to_u64(lex::mac(v, at, after)?),
        Field::NwSrc | Field::NwDst | Field::TunSrc | Field::TunDst => {
            u64::from(u32::from(lex::ipv4(v, at, after)?))
        }
        Field::NwTos => {
            let tos = lex::uint(v, at, after, "nw_tos", 8)?;
            if tos & 3 != 0 {
                return bad(
                    at,
                    format!("nw_tos {v} is not a DSCP value: it must be a multiple of 4 (the ECN bits are not writable)"),
                );
            }
            tos
        }
        f => lex::uint(v, at, after, &field_name(f), f.bits())?,
    })
}

/// The loads that write `value` into the bits of `field` that `mask` selects: one per run of
/// ones (how OVS stores a masked set_field).
fn masked_loads(field: Field, value: u64, mask: u64) -> Vec<FlowAction> {
    let bits = field.bits();
    let mut out = Vec::new();
    let mut bit = 0;
    while bit < bits {
        if mask >> bit & 1 == 0 {
            bit += 1;
            continue;
        }
        let start = bit;
        while bit < bits && mask >> bit & 1 == 1 {
            bit += 1;
        }
        let dst = FieldRange {
            field,
            start: start as u8,
            end: (bit - 1) as u8,
        };
        out.push(FlowAction::Load {
            dst,
            value: (value >> start) & lex::max_of(dst.width()),
        });
    }
    out
}

/// `set_field:VALUE->FIELD` or `set_field:VALUE/MASK->FIELD` (stored as loads of the masked
/// bits, as OVS does).
fn set_field(arg: &str, at: usize) -> Res<Vec<FlowAction>> {
    let (v, name, f_at) = arrow(arg, at, "VALUE->FIELD after set_field:")?;
    if name.contains('[') {
        return bad(
            f_at,
            "set_field writes a whole field; use load:VALUE->FIELD[a..b] for bits",
        );
    }
    if name == "tun_ipv6_dst" {
        if let Some(p) = v.find('/') {
            return bad(
                at + p,
                "set_field with a mask is not supported on tun_ipv6_dst",
            );
        }
        let value = v.parse().or_else(|_| {
            bad(
                at,
                format!(
                    "expected an IPv6 address after set_field:, found {}",
                    found(v)
                ),
            )
        })?;
        return Ok(vec![FlowAction::SetTunIpv6Dst { value }]);
    }
    if name == "ip_dscp" {
        let dscp = lex::uint(v, at, "set_field:", "ip_dscp", 6)?;
        return Ok(vec![FlowAction::ModNwTos {
            tos: (dscp as u8) << 2,
        }]);
    }
    let field = field(name, f_at)?;
    let Some((v, m)) = v.split_once('/') else {
        let value = field_value(field, v, at, "set_field:")?;
        return Ok(vec![FlowAction::SetField { field, value }]);
    };
    let value = field_value(field, v, at, "set_field:")?;
    let m_at = at + v.len() + 1;
    let mask = field_value(field, m, m_at, &format!("set_field:{v}/"))?;
    if mask == 0 {
        return bad(m_at, "the set_field mask is zero: it would write nothing");
    }
    if mask == lex::max_of(field.bits()) {
        return Ok(vec![FlowAction::SetField { field, value }]);
    }
    Ok(masked_loads(field, value & mask, mask))
}

/// `load:VALUE->FIELD[BITS]`.
fn load(arg: &str, at: usize) -> Res<FlowAction> {
    let (v, d, d_at) = arrow(arg, at, "VALUE->FIELD[BITS] after load:")?;
    let dst = subfield(d, d_at)?;
    let value = lex::uint(v, at, "load:", &format_range(&dst), dst.width())?;
    Ok(FlowAction::Load { dst, value })
}

/// `move:SRC[BITS]->DST[BITS]`, of equal widths.
fn move_(arg: &str, at: usize) -> Res<FlowAction> {
    let (a, b, b_at) = arrow(arg, at, "SRC[BITS]->DST[BITS] after move:")?;
    let src = subfield(a, at)?;
    let dst = subfield(b, b_at)?;
    if src.width() != dst.width() {
        return bad(
            b_at,
            format!(
                "move needs equal widths: source {} is {} bits but destination {} is {} bits",
                format_range(&src),
                src.width(),
                format_range(&dst),
                dst.width()
            ),
        );
    }
    Ok(FlowAction::Move { src, dst })
}

/// `resubmit(,TABLE)`, `resubmit(PORT,TABLE)`, `resubmit(PORT)` or `resubmit(PORT,)` (the
/// current table); `rest` is `(...)` at `at`.
fn resubmit(rest: &str, at: usize) -> Res<FlowAction> {
    let usage = "resubmit needs a port or a table: resubmit(,TABLE), resubmit(PORT,TABLE) or \
                 resubmit:PORT";
    let Some(close) = rest.find(')') else {
        return bad(at, usage);
    };
    if close + 1 != rest.len() {
        return bad(
            at + close + 1,
            format!("unexpected {:?} after resubmit(...)", &rest[close + 1..]),
        );
    }
    let inner = &rest[1..close];
    let (p, t) = inner.split_once(',').unwrap_or((inner, ""));
    fn trimmed(x: &str, x_at: usize) -> (&str, usize) {
        let lead = x.len() - x.trim_start().len();
        (x.trim(), x_at + lead)
    }
    let (p, p_at) = trimmed(p, at + 1);
    let (t, t_at) = trimmed(t, at + 1 + inner.find(',').unwrap_or(0) + 1);
    let in_port = if p.is_empty() {
        None
    } else {
        Some(lex::port(p, p_at, "resubmit(")?)
    };
    if t.is_empty() && in_port.is_none() {
        return bad(t_at, usage);
    }
    let table = if t.is_empty() {
        CURRENT_TABLE
    } else {
        lex::table(t, t_at, "resubmit(PORT,")?
    };
    Ok(FlowAction::Resubmit { in_port, table })
}

/// `note:HEX`: hex bytes, optionally separated by dots (`00.01.02`).
fn note(arg: &str, at: usize) -> Res<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut chars = arg.char_indices().filter(|&(_, c)| c != '.');
    while let Some((i, hi)) = chars.next() {
        let Some(hi) = hi.to_digit(16) else {
            return bad(
                at + i,
                format!("expected hex bytes (like 00.01.02) after note:, found {hi:?}"),
            );
        };
        let lo = match chars.next() {
            Some((j, c)) => c.to_digit(16).ok_or(lex::Bad {
                at: at + j,
                msg: format!("expected hex bytes (like 00.01.02) after note:, found {c:?}"),
            })?,
            None => {
                return bad(
                    at + i,
                    "note: odd number of hex digits (write bytes as 2 digits)",
                )
            }
        };
        bytes.push((hi * 16 + lo) as u8);
    }
    // OVS carries a note in an action of 10 header bytes plus the note, padded with zeros to
    // a multiple of 8, and prints the padding as part of the note: store what it prints.
    let padded = (bytes.len() + 10).div_ceil(8) * 8 - 10;
    bytes.resize(padded, 0);
    Ok(bytes)
}

/// Prints one action the way it parses back.
pub fn format_action(a: &FlowAction) -> String {
    format_action_in(a, false)
}

/// [`format_action`] in a flow that matches UDP or not (`udp`): ovs-ofctl names transport
/// ports after the flow's protocol.
pub(super) fn format_action_in(a: &FlowAction, udp: bool) -> String {
    match a {
        FlowAction::Output { port } => format!("output:{port}"),
        FlowAction::Normal => "NORMAL".to_string(),
        FlowAction::Flood => "FLOOD".to_string(),
        FlowAction::Drop => "drop".to_string(),
        FlowAction::SetField { field, value } => {
            format!(
                "set_field:{}->{}",
                set_value(*field, *value),
                print_field_name(*field, udp)
            )
        }
        FlowAction::SetTunIpv6Dst { value } => format!("set_field:{value}->tun_ipv6_dst"),
        FlowAction::Load { dst, value } => {
            format!("load:{}->{}", lex::chex(*value), format_range_in(dst, udp))
        }
        FlowAction::Move { src, dst } => {
            format!(
                "move:{}->{}",
                format_range_in(src, udp),
                format_range_in(dst, udp)
            )
        }
        FlowAction::ModDlSrc { mac } => format!("mod_dl_src:{mac}"),
        FlowAction::ModDlDst { mac } => format!("mod_dl_dst:{mac}"),
        FlowAction::DecTtl => "dec_ttl".to_string(),
        FlowAction::Resubmit {
            in_port: Some(port),
            table: CURRENT_TABLE,
        } => format!("resubmit:{port}"),
        FlowAction::Resubmit { in_port, table } => {
            let table = if *table == CURRENT_TABLE {
                String::new()
            } else {
                table.to_string()
            };
            format!(
                "resubmit({},{table})",
                in_port.as_ref().map(PortRef::to_string).unwrap_or_default()
            )
        }
        FlowAction::GotoTable { table } => format!("goto_table:{table}"),
        FlowAction::Note { bytes } => {
            let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("note:{}", hex.join("."))
        }
        FlowAction::OutputReg { src } => format!("output:{}", format_range_in(src, udp)),
        FlowAction::InPort => "IN_PORT".to_string(),
        FlowAction::PushVlan { ethertype } => format!("push_vlan:{ethertype:#x}"),
        FlowAction::PopVlan => "pop_vlan".to_string(),
        FlowAction::ModVlanVid { vid } => format!("mod_vlan_vid:{vid}"),
        FlowAction::ModVlanPcp { pcp } => format!("mod_vlan_pcp:{pcp}"),
        // OVS stores mod_nw_tos as a set_field of the DSCP bits.
        FlowAction::ModNwTos { tos } => format!("set_field:{}->ip_dscp", tos >> 2),
        FlowAction::Group { id } => format!("group:{id}"),
        FlowAction::Learn(spec) => super::learn::format(spec, udp),
        FlowAction::Conjunction {
            id,
            clause,
            n_clauses,
        } => format!("conjunction({id},{clause}/{n_clauses})"),
    }
}

/// A set_field value as its field writes it: a MAC, an IPv4 address, hex (tun_id and
/// registers) or decimal.
pub(super) fn set_value(field: Field, value: u64) -> String {
    match field {
        Field::DlSrc | Field::DlDst => lex::mac_from_u64(value).to_string(),
        Field::NwSrc | Field::NwDst | Field::TunSrc | Field::TunDst => {
            Ipv4Addr::from(value as u32).to_string()
        }
        Field::TunId | Field::Reg(_) | Field::PktMark | Field::VlanTci | Field::DlType => {
            lex::chex(value)
        }
        Field::NwTtl
        | Field::TpSrc
        | Field::TpDst
        | Field::InPort
        | Field::VlanVid
        | Field::VlanPcp
        | Field::NwTos
        | Field::NwProto => value.to_string(),
    }
}

/// Prints an action list, comma-separated; an empty list prints as `drop`.
pub fn format_actions(a: &[FlowAction]) -> String {
    format_actions_in(a, false)
}

/// [`format_actions`] of a flow with match `m`, as ovs-ofctl prints them in that flow
/// (transport ports named after the flow's protocol).
pub fn format_actions_for(a: &[FlowAction], m: &[crate::flow::Match]) -> String {
    let udp = m
        .iter()
        .any(|x| matches!(x, crate::flow::Match::NwProto { value: 17 }));
    format_actions_in(a, udp)
}

fn format_actions_in(a: &[FlowAction], udp: bool) -> String {
    if a.is_empty() {
        return "drop".to_string();
    }
    a.iter()
        .map(|x| format_action_in(x, udp))
        .collect::<Vec<_>>()
        .join(",")
}

/// Rewrites `mod_vlan_vid` and `mod_vlan_pcp` as OVS stores them for OpenFlow 1.3: a
/// set_field of `vlan_vid` (with the tag-present bit 0x1000) or `vlan_pcp`, after a
/// `push_vlan:0x8100` when neither the match nor an earlier action gives the frame a tag.
pub(super) fn ovs_vlan_forms(
    actions: Vec<FlowAction>,
    matches: &[crate::flow::Match],
) -> Vec<FlowAction> {
    use crate::flow::Match;
    let mut tagged = matches.iter().any(|m| match m {
        Match::DlVlan { .. } | Match::DlVlanPcp { .. } => true,
        Match::VlanTci { value, mask } => value & mask & 0x1000 != 0,
        _ => false,
    });
    let mut out = Vec::with_capacity(actions.len() + 1);
    for a in actions {
        let set = match a {
            FlowAction::ModVlanVid { vid } => FlowAction::SetField {
                field: Field::VlanVid,
                value: 0x1000 | u64::from(vid),
            },
            FlowAction::ModVlanPcp { pcp } => FlowAction::SetField {
                field: Field::VlanPcp,
                value: u64::from(pcp),
            },
            FlowAction::PushVlan { .. } => {
                tagged = true;
                out.push(a);
                continue;
            }
            FlowAction::PopVlan => {
                tagged = false;
                out.push(a);
                continue;
            }
            a => {
                out.push(a);
                continue;
            }
        };
        if !tagged {
            out.push(FlowAction::PushVlan { ethertype: 0x8100 });
            tagged = true;
        }
        out.push(set);
    }
    out
}
