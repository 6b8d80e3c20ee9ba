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
];

/// OVS actions vxswitch does not implement (named as such rather than as typos).
const UNSUPPORTED: &[&str] = &[
    "controller",
    "local",
    "in_port",
    "all",
    "enqueue",
    "mod_vlan_vid",
    "mod_vlan_pcp",
    "strip_vlan",
    "push_vlan",
    "pop_vlan",
    "push_mpls",
    "pop_mpls",
    "mod_nw_tos",
    "mod_nw_ecn",
    "set_tunnel64",
    "set_queue",
    "pop_queue",
    "learn",
    "ct",
    "ct_clear",
    "group",
    "bundle",
    "bundle_load",
    "multipath",
    "exit",
    "conjunction",
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

/// Field names of set_field, load and move (the first name of a field is the one printed).
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
    ("ip_dst", Field::NwDst),
    ("nw_dst", Field::NwDst),
    ("NXM_OF_IP_DST", Field::NwDst),
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
];

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
        match one(&s[at..i], at)? {
            FlowAction::Drop => drop_at = drop_at.or(Some(at)),
            a => out.push(a),
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

/// One action `tok` at offset `at`.
fn one(tok: &str, at: usize) -> Res<FlowAction> {
    if tok.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(FlowAction::Output {
            port: lex::port(tok, at, "actions=")?,
        });
    }
    let name_end = tok.find([':', '(']).unwrap_or(tok.len());
    let (name, rest) = tok.split_at(name_end);
    let arg = rest.get(1..).unwrap_or("");
    let arg_at = at + name_end + 1;
    let sep = rest.chars().next();
    let lower = name.to_ascii_lowercase();
    Ok(match (name, sep) {
        ("output", Some(':')) => FlowAction::Output {
            port: lex::port(arg, arg_at, "output:")?,
        },
        (_, None) if lower == "normal" => FlowAction::Normal,
        (_, None) if lower == "flood" => FlowAction::Flood,
        (_, None) if lower == "drop" => FlowAction::Drop,
        ("dec_ttl", None) => FlowAction::DecTtl,
        ("set_field", Some(':')) => set_field(arg, arg_at)?,
        ("load", Some(':')) => load(arg, arg_at)?,
        ("move", Some(':')) => move_(arg, arg_at)?,
        ("mod_dl_src", Some(':')) => FlowAction::ModDlSrc {
            mac: lex::mac(arg, arg_at, "mod_dl_src:")?,
        },
        ("mod_dl_dst", Some(':')) => FlowAction::ModDlDst {
            mac: lex::mac(arg, arg_at, "mod_dl_dst:")?,
        },
        // OVS's older spellings of set_field on one field.
        ("mod_nw_src", Some(':')) => set_field(&format!("{arg}->nw_src"), arg_at)?,
        ("mod_nw_dst", Some(':')) => set_field(&format!("{arg}->nw_dst"), arg_at)?,
        ("mod_nw_ttl", Some(':')) => set_field(&format!("{arg}->nw_ttl"), arg_at)?,
        ("mod_tp_src", Some(':')) => set_field(&format!("{arg}->tp_src"), arg_at)?,
        ("mod_tp_dst", Some(':')) => set_field(&format!("{arg}->tp_dst"), arg_at)?,
        ("resubmit", Some('(')) => resubmit(rest, at + name_end)?,
        ("resubmit", Some(':')) => {
            return bad(at, "resubmit:PORT is not supported; use resubmit(,TABLE)")
        }
        ("goto_table", Some(':')) => FlowAction::GotoTable {
            table: lex::table(arg, arg_at, "goto_table:")?,
        },
        ("note", Some(':')) => FlowAction::Note {
            bytes: note(arg, arg_at)?,
        },
        ("set_tunnel", Some(':')) => FlowAction::SetField {
            field: Field::TunId,
            value: lex::uint(arg, arg_at, "set_tunnel:", "tun_id", 24)?,
        },
        _ => return unknown(tok, name, at),
    })
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
            lex::Bad {
                at,
                msg: format!(
                    "unknown field {}{}; fields are eth_src, eth_dst, ip_src, ip_dst, nw_ttl, \
                 tp_src, tp_dst, tun_id, tun_src, tun_dst, reg0-reg7",
                    found(name),
                    lex::did_you_mean(name, names)
                ),
            }
        })
}

/// The printed name of a field.
fn field_name(f: Field) -> String {
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
fn subfield(s: &str, at: usize) -> Res<FieldRange> {
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

/// `name[]`, `name[n]` or `name[a..b]`.
fn format_range(r: &FieldRange) -> String {
    let name = field_name(r.field);
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

/// `set_field:VALUE->FIELD`.
fn set_field(arg: &str, at: usize) -> Res<FlowAction> {
    let (v, name, f_at) = arrow(arg, at, "VALUE->FIELD after set_field:")?;
    if name.contains('[') {
        return bad(
            f_at,
            "set_field writes a whole field; use load:VALUE->FIELD[a..b] for bits",
        );
    }
    if name == "tun_ipv6_dst" {
        if let Some(p) = v.find('/') {
            return bad(at + p, "set_field with a mask is not supported");
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
        return Ok(FlowAction::SetTunIpv6Dst { value });
    }
    let field = field(name, f_at)?;
    if let Some(p) = v.find('/') {
        return bad(
            at + p,
            "set_field with a mask is not supported; use load:VALUE->FIELD[a..b]",
        );
    }
    let value = match field {
        Field::DlSrc | Field::DlDst => lex::mac_to_u64(lex::mac(v, at, "set_field:")?),
        Field::NwSrc | Field::NwDst | Field::TunSrc | Field::TunDst => {
            u64::from(u32::from(lex::ipv4(v, at, "set_field:")?))
        }
        f => lex::uint(v, at, "set_field:", &field_name(f), f.bits())?,
    };
    Ok(FlowAction::SetField { field, value })
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

/// `resubmit(,TABLE)` or `resubmit(PORT,TABLE)`; `rest` is `(...)` at `at`.
fn resubmit(rest: &str, at: usize) -> Res<FlowAction> {
    let usage = "resubmit needs a table: resubmit(,TABLE) or resubmit(PORT,TABLE)";
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
    let Some((p, t)) = inner.split_once(',') else {
        return bad(at, usage);
    };
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
    if t.is_empty() {
        return bad(t_at, usage);
    }
    let table = lex::table(t, t_at, "resubmit(PORT,")?;
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
    Ok(bytes)
}

/// Prints one action the way it parses back.
pub fn format_action(a: &FlowAction) -> String {
    match a {
        FlowAction::Output { port } => format!("output:{port}"),
        FlowAction::Normal => "normal".to_string(),
        FlowAction::Flood => "flood".to_string(),
        FlowAction::Drop => "drop".to_string(),
        FlowAction::SetField { field, value } => {
            format!(
                "set_field:{}->{}",
                set_value(*field, *value),
                field_name(*field)
            )
        }
        FlowAction::SetTunIpv6Dst { value } => format!("set_field:{value}->tun_ipv6_dst"),
        FlowAction::Load { dst, value } => format!("load:{value:#x}->{}", format_range(dst)),
        FlowAction::Move { src, dst } => {
            format!("move:{}->{}", format_range(src), format_range(dst))
        }
        FlowAction::ModDlSrc { mac } => format!("mod_dl_src:{mac}"),
        FlowAction::ModDlDst { mac } => format!("mod_dl_dst:{mac}"),
        FlowAction::DecTtl => "dec_ttl".to_string(),
        FlowAction::Resubmit { in_port, table } => {
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
        FlowAction::OutputReg { src } => format!("output:{}", format_range(src)),
        FlowAction::InPort => "IN_PORT".to_string(),
        FlowAction::PushVlan { ethertype } => format!("push_vlan:{ethertype:#x}"),
        FlowAction::PopVlan => "pop_vlan".to_string(),
        FlowAction::ModVlanVid { vid } => format!("mod_vlan_vid:{vid}"),
        FlowAction::ModVlanPcp { pcp } => format!("mod_vlan_pcp:{pcp}"),
        FlowAction::ModNwTos { tos } => format!("mod_nw_tos:{tos}"),
        FlowAction::Group { id } => format!("group:{id}"),
        FlowAction::Learn(spec) => format_learn(spec),
        FlowAction::Conjunction {
            id,
            clause,
            n_clauses,
        } => format!("conjunction({id},{clause}/{n_clauses})"),
    }
}

/// `learn(...)` as ovs-ofctl prints it.
fn format_learn(l: &crate::flow::LearnSpec) -> String {
    use crate::flow::LearnItem;
    let mut parts = vec![format!("table={}", l.table)];
    if l.idle_timeout != 0 {
        parts.push(format!("idle_timeout={}", l.idle_timeout));
    }
    if l.hard_timeout != 0 {
        parts.push(format!("hard_timeout={}", l.hard_timeout));
    }
    if l.fin_idle_timeout != 0 {
        parts.push(format!("fin_idle_timeout={}", l.fin_idle_timeout));
    }
    if l.fin_hard_timeout != 0 {
        parts.push(format!("fin_hard_timeout={}", l.fin_hard_timeout));
    }
    if l.priority != crate::flow::DEFAULT_PRIORITY {
        parts.push(format!("priority={}", l.priority));
    }
    if l.send_flow_rem {
        parts.push("send_flow_rem".to_string());
    }
    if l.delete_learned {
        parts.push("delete_learned".to_string());
    }
    if l.cookie != 0 {
        parts.push(format!("cookie={:#x}", l.cookie));
    }
    for item in &l.items {
        parts.push(match item {
            LearnItem::MatchField { dst, src } if dst == src => format_range(dst),
            LearnItem::MatchField { dst, src } => {
                format!("{}={}", format_range(dst), format_range(src))
            }
            LearnItem::MatchValue { dst, value } => format!("{}={value:#x}", format_range(dst)),
            LearnItem::LoadField { dst, src } => {
                format!("load:{}->{}", format_range(src), format_range(dst))
            }
            LearnItem::LoadValue { dst, value } => {
                format!("load:{value:#x}->{}", format_range(dst))
            }
            LearnItem::Output { src } => format!("output:{}", format_range(src)),
        });
    }
    format!("learn({})", parts.join(","))
}

/// A set_field value as its field writes it: a MAC, an IPv4 address, hex (tun_id and
/// registers) or decimal.
fn set_value(field: Field, value: u64) -> String {
    match field {
        Field::DlSrc | Field::DlDst => lex::mac_from_u64(value).to_string(),
        Field::NwSrc | Field::NwDst | Field::TunSrc | Field::TunDst => {
            Ipv4Addr::from(value as u32).to_string()
        }
        Field::TunId | Field::Reg(_) | Field::PktMark | Field::VlanTci | Field::DlType => {
            format!("{value:#x}")
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
    if a.is_empty() {
        return "drop".to_string();
    }
    a.iter().map(format_action).collect::<Vec<_>>().join(",")
}
