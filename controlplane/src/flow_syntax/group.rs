//! Groups in ovs-ofctl's syntax (`add-group`, `mod-group`, `dump-groups`):
//! `group_id=1,type=select,bucket=weight:100,output:3,bucket=actions=output:4`.
//!
//! A bucket runs from its `bucket=` to the next one: first its parameters (`bucket_id`,
//! `weight`, `watch_port`, `watch_group`, written `key:value` or `key=value`), then its actions,
//! with or without `actions=`. Printing follows `ovs-ofctl -O OpenFlow13 dump-groups`: type
//! `ff` for fast failover, a select bucket's weight only when it is not 1, `actions=` always.

use super::lex::{self, bad, Res};
use super::{actions, format_actions, ParseError};
use crate::flow::{Bucket, FlowAction, GroupSpec, GroupType, PortRef, MAX_GROUP};

/// Parses a group as `add-group`/`mod-group` take it.
pub fn parse_group(s: &str) -> Result<GroupSpec, ParseError> {
    group_at(s).map_err(|b| ParseError::new(s, b))
}

/// Parses the selection of `del-groups`/`dump-groups`: empty (every group), `group_id=N`
/// or `group_id=all`.
pub fn parse_group_id(s: &str) -> Result<Option<u32>, ParseError> {
    id_filter(s).map_err(|b| ParseError::new(s, b))
}

fn id_filter(s: &str) -> Res<Option<u32>> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let at = s.len() - s.trim_start().len();
    let Some(v) = t.strip_prefix("group_id=") else {
        return bad(
            at,
            format!("expected group_id=N or nothing, found {}", lex::found(t)),
        );
    };
    if v == "all" {
        return Ok(None);
    }
    group_id(v, at + "group_id=".len()).map(Some)
}

fn group_id(v: &str, at: usize) -> Res<u32> {
    match number(v) {
        Some(n) if n <= MAX_GROUP as u64 => Ok(n as u32),
        _ => bad(
            at,
            format!(
                "group_id must be a number from 0 to {MAX_GROUP}, found {}",
                lex::found(v)
            ),
        ),
    }
}

fn number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Byte offsets where each `bucket=` starts (outside parentheses).
fn bucket_starts(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut token_start = true;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && token_start && s[i..].starts_with("bucket=") {
            out.push(i);
        }
        token_start = lex::is_delim(c);
    }
    out
}

fn group_at(s: &str) -> Res<GroupSpec> {
    let starts = bucket_starts(s);
    let head_end = starts.first().copied().unwrap_or(s.len());
    let (mut id, mut kind) = (None, None);
    let mut i = 0;
    loop {
        i = lex::skip_delims(&s[..head_end], i);
        if i >= head_end {
            break;
        }
        let at = i;
        i = lex::scan(&s[..head_end], at, |c| !lex::is_delim(c));
        let item = &s[at..i];
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        let vat = at + k.len() + 1;
        match k {
            "group_id" => id = Some(group_id(v, vat)?),
            "type" => {
                kind = Some(match v {
                    "all" => GroupType::All,
                    "select" => GroupType::Select,
                    "indirect" => GroupType::Indirect,
                    "ff" | "fast_failover" => GroupType::FastFailover,
                    _ => {
                        return bad(
                            vat,
                            format!(
                                "type must be all, select, indirect or ff, found {}",
                                lex::found(v)
                            ),
                        )
                    }
                })
            }
            _ => {
                return bad(
                    at,
                    format!(
                        "expected group_id=, type= or bucket=, found {}",
                        lex::found(item)
                    ),
                )
            }
        }
    }
    let Some(group_id) = id else {
        return bad(0, "must specify a group_id");
    };
    let Some(kind) = kind else {
        return bad(0, "must specify a type");
    };
    let mut buckets = Vec::new();
    for (n, &b) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(s.len());
        let bucket = bucket_at(&s[..end], b + "bucket=".len(), kind, n as u32)?;
        if kind == GroupType::Indirect && n > 0 {
            return bad(b, "indirect groups can have at most one bucket");
        }
        buckets.push(bucket);
    }
    Ok(GroupSpec {
        group_id,
        kind,
        buckets,
    })
}

/// One bucket: `s` ends where the bucket does; it starts at `from`.
fn bucket_at(s: &str, from: usize, kind: GroupType, index: u32) -> Res<Bucket> {
    let mut b = Bucket {
        bucket_id: index,
        weight: 1,
        watch_port: None,
        watch_group: None,
        actions: Vec::new(),
    };
    let mut i = from;
    let mut actions_at = None;
    loop {
        i = lex::skip_delims(s, i);
        if i >= s.len() {
            break;
        }
        let at = i;
        let end = lex::scan(s, at, |c| !lex::is_delim(c));
        let item = &s[at..end];
        if let Some(rest) = item.strip_prefix("actions=") {
            let _ = rest;
            actions_at = Some(at + "actions=".len());
            break;
        }
        let Some((k, v)) = item.split_once([':', '=']) else {
            actions_at = Some(at);
            break;
        };
        let vat = at + k.len() + 1;
        match k {
            "bucket_id" => match number(v) {
                Some(n) if n <= 0xffff_ff00 => b.bucket_id = n as u32,
                _ => return bad(vat, format!("bad bucket_id {}", lex::found(v))),
            },
            "weight" => {
                if kind != GroupType::Select {
                    return bad(at, "Only select groups can have bucket weights.");
                }
                match number(v) {
                    Some(n) if n <= u16::MAX as u64 => b.weight = n as u16,
                    _ => return bad(vat, format!("bad weight {}", lex::found(v))),
                }
            }
            "watch_port" => {
                b.watch_port = Some(match number(v) {
                    Some(n) if n <= u16::MAX as u64 => PortRef::Number(n as u16),
                    Some(_) => return bad(vat, format!("bad watch_port {}", lex::found(v))),
                    None => PortRef::Name(v.to_string()),
                })
            }
            "watch_group" => b.watch_group = Some(group_id(v, vat)?),
            _ => {
                actions_at = Some(at);
                break;
            }
        }
        i = end;
    }
    let Some(aat) = actions_at else {
        return bad(from, "bucket must specify actions");
    };
    let acts = actions::parse(s, aat)?;
    b.actions = if acts == [FlowAction::Drop] {
        Vec::new()
    } else {
        acts
    };
    if kind == GroupType::FastFailover && b.watch_port.is_none() && b.watch_group.is_none() {
        return bad(
            from,
            "fast failover bucket requires watch_port or watch_group",
        );
    }
    Ok(b)
}

/// A group as `ovs-ofctl -O OpenFlow13 dump-groups` prints it (without the leading space).
pub fn format_group(g: &GroupSpec) -> String {
    let kind = match g.kind {
        GroupType::All => "all",
        GroupType::Select => "select",
        GroupType::Indirect => "indirect",
        GroupType::FastFailover => "ff",
    };
    let mut out = format!("group_id={},type={kind}", g.group_id);
    for b in &g.buckets {
        out.push_str(",bucket=");
        if g.kind == GroupType::Select && b.weight != 1 {
            out.push_str(&format!("weight:{},", b.weight));
        }
        if let Some(p) = &b.watch_port {
            out.push_str(&format!("watch_port:{p},"));
        }
        if let Some(w) = b.watch_group {
            out.push_str(&format!("watch_group:{w},"));
        }
        out.push_str("actions=");
        if b.actions.is_empty() {
            out.push_str("drop");
        } else {
            out.push_str(&format_actions(&b.actions));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse_and_print_as_ovs_ofctl_does() {
        // Inputs and what OVS 3.1's `ovs-ofctl -O OpenFlow13 parse-group` prints for them.
        for (input, ovs) in [
            (
                "group_id=1,type=select,bucket=weight:100,watch_port:3,output:3,bucket=weight=5,actions=output:2",
                "group_id=1,type=select,bucket=weight:100,watch_port:3,actions=output:3,bucket=weight:5,actions=output:2",
            ),
            (
                "group_id=2,type=fast_failover,bucket=watch_port:3,output:3,bucket=watch_group:1,output:2",
                "group_id=2,type=ff,bucket=watch_port:3,actions=output:3,bucket=watch_group:1,actions=output:2",
            ),
            (
                "group_id=3,type=all,bucket=actions=drop",
                "group_id=3,type=all,bucket=actions=drop",
            ),
            ("group_id=3,type=select", "group_id=3,type=select"),
        ] {
            let g = parse_group(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(format_group(&g), ovs);
            assert_eq!(parse_group(ovs).unwrap(), g, "{ovs} parses back");
        }
        let g = parse_group("group_id=1,type=select,bucket=weight:100,output:3,bucket=output:4")
            .unwrap();
        assert_eq!(g.buckets.len(), 2);
        assert_eq!((g.buckets[0].weight, g.buckets[1].weight), (100, 1));
        assert_eq!(
            g.buckets[1].actions,
            vec![FlowAction::Output {
                port: PortRef::Number(4)
            }]
        );
    }

    #[test]
    fn bad_groups_are_refused_as_ovs_ofctl_refuses_them() {
        for (input, says) in [
            ("group_id=3,type=all,bucket=", "bucket must specify actions"),
            (
                "group_id=3,type=all,bucket=weight:3,output:1",
                "Only select groups",
            ),
            ("group_id=3,type=ff,bucket=output:1", "requires watch_port"),
            ("group_id=3,bucket=output:1", "must specify a type"),
            (
                "group_id=1,type=indirect,bucket=output:1,bucket=output:2",
                "at most one bucket",
            ),
            ("group_id=4294967295,type=all", "group_id must be"),
            ("group_id=1,type=fancy", "type must be"),
        ] {
            let e = parse_group(input).unwrap_err();
            assert!(e.message.contains(says), "{input}: {e}");
        }
        assert_eq!(parse_group_id("").unwrap(), None);
        assert_eq!(parse_group_id("group_id=all").unwrap(), None);
        assert_eq!(parse_group_id("group_id=7").unwrap(), Some(7));
    }
}
