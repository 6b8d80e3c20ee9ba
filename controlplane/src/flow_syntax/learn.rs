//! The `learn(...)` action: parsing OVS's item syntax, and printing it as ovs-ofctl does.

use super::actions::{field_name, field_value, format_range, format_range_in, set_value, subfield};
use super::lex::{self, bad, found, Res};
use crate::flow::{FieldRange, FlowAction, LearnItem, LearnSpec, DEFAULT_PRIORITY};

/// What a learn item may be, for messages.
const USAGE: &str = "learn items are table=N, priority=N, idle_timeout=S, hard_timeout=S, \
                     fin_idle_timeout=S, fin_hard_timeout=S, cookie=N, send_flow_rem, \
                     delete_learned, FIELD[BITS], DST[BITS]=SRC[BITS], DST[BITS]=VALUE, \
                     field=value, load:SRC[BITS]->DST[BITS], load:VALUE->DST[BITS], \
                     output:SRC[BITS]";

/// The items of `(...)` at `at`: split at commas and whitespace.
fn items(inner: &str, at: usize) -> Vec<(&str, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        i = lex::skip_delims(inner, i);
        if i >= inner.len() {
            return out;
        }
        let start = i;
        i = lex::scan(inner, i, |c| !lex::is_delim(c));
        out.push((&inner[start..i], at + start));
    }
}

/// A number of `bits` bits after `key=`.
fn num(v: &str, at: usize, key: &str, bits: u32) -> Res<u64> {
    lex::uint(v, at, &format!("{key}="), key, bits)
}

/// Splits `A->B` of a learn `load:`.
fn arrow(arg: &str, at: usize) -> Res<(&str, &str, usize)> {
    match arg.split_once("->") {
        Some((a, b)) => Ok((a, b, at + a.len() + 2)),
        None => bad(
            at,
            format!(
                "expected load:SRC[BITS]->DST[BITS] or load:VALUE->DST[BITS] in learn, found {}",
                found(arg)
            ),
        ),
    }
}

/// Fails unless `src` and `dst` have the same width.
fn same_width(src: &FieldRange, dst: &FieldRange, at: usize) -> Res<()> {
    if src.width() == dst.width() {
        return Ok(());
    }
    bad(
        at,
        format!(
            "learn needs equal widths: {} is {} bits but {} is {} bits",
            format_range(src),
            src.width(),
            format_range(dst),
            dst.width()
        ),
    )
}

/// One match or action item of a learn.
fn item(tok: &str, at: usize) -> Res<LearnItem> {
    if let Some(arg) = tok.strip_prefix("load:") {
        let arg_at = at + 5;
        let (a, b, b_at) = arrow(arg, arg_at)?;
        let dst = subfield(b, b_at)?;
        if a.starts_with(|c: char| c.is_ascii_digit()) {
            let value = lex::uint(a, arg_at, "load:", &format_range(&dst), dst.width())?;
            return Ok(LearnItem::LoadValue { dst, value });
        }
        let src = subfield(a, arg_at)?;
        same_width(&src, &dst, b_at)?;
        return Ok(LearnItem::LoadField { dst, src });
    }
    if let Some(arg) = tok.strip_prefix("output:") {
        let src = subfield(arg, at + 7)?;
        return Ok(LearnItem::Output { src });
    }
    let Some((a, b)) = tok.split_once('=') else {
        let dst = subfield(tok, at)?;
        return Ok(LearnItem::MatchField { dst, src: dst });
    };
    let b_at = at + a.len() + 1;
    let dst = subfield(a, at)?;
    if b.starts_with(|c: char| c.is_ascii_digit()) {
        let value = if a.contains('[') {
            lex::uint(b, b_at, &format!("{a}="), &format_range(&dst), dst.width())?
        } else {
            field_value(dst.field, b, b_at, &format!("{a}="))?
        };
        return Ok(LearnItem::MatchValue { dst, value });
    }
    let src = subfield(b, b_at)?;
    same_width(&src, &dst, b_at)?;
    Ok(LearnItem::MatchField { dst, src })
}

/// `learn(...)`; `rest` is `(...)` at `at`.
pub(super) fn parse(rest: &str, at: usize) -> Res<FlowAction> {
    let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) else {
        return bad(at, format!("expected learn(...), found learn{rest}"));
    };
    let mut spec = LearnSpec {
        table: 1,
        priority: DEFAULT_PRIORITY,
        idle_timeout: 0,
        hard_timeout: 0,
        fin_idle_timeout: 0,
        fin_hard_timeout: 0,
        cookie: 0,
        send_flow_rem: false,
        delete_learned: false,
        items: Vec::new(),
    };
    for (tok, t_at) in items(inner, at + 1) {
        let (key, value) = match tok.split_once('=') {
            Some((k, v)) => (k, Some((v, t_at + k.len() + 1))),
            None => (tok, None),
        };
        match (key, value) {
            ("table", Some((v, v_at))) => spec.table = lex::table(v, v_at, "learn(table=")?,
            ("priority", Some((v, v_at))) => spec.priority = num(v, v_at, key, 16)? as u16,
            ("idle_timeout", Some((v, v_at))) => spec.idle_timeout = num(v, v_at, key, 16)? as u16,
            ("hard_timeout", Some((v, v_at))) => spec.hard_timeout = num(v, v_at, key, 16)? as u16,
            ("fin_idle_timeout", Some((v, v_at))) => {
                spec.fin_idle_timeout = num(v, v_at, key, 16)? as u16
            }
            ("fin_hard_timeout", Some((v, v_at))) => {
                spec.fin_hard_timeout = num(v, v_at, key, 16)? as u16
            }
            ("cookie", Some((v, v_at))) => spec.cookie = num(v, v_at, key, 64)?,
            ("send_flow_rem", None) => spec.send_flow_rem = true,
            ("delete_learned", None) => spec.delete_learned = true,
            ("limit" | "result_dst", _) => {
                return bad(t_at, format!("learn's {key} is not supported by vxswitch"))
            }
            _ => {
                let it = item(tok, t_at).map_err(|mut b| {
                    if b.msg.starts_with("unknown field") {
                        b.msg = format!("{}; {USAGE}", b.msg);
                    }
                    b
                })?;
                spec.items.push(it);
            }
        }
    }
    Ok(FlowAction::Learn(Box::new(spec)))
}

/// `learn(...)` as ovs-ofctl prints it: table, the timeouts and priority when set, the flags,
/// the cookie when not zero, then the items in order.
pub(super) fn format(l: &LearnSpec, udp: bool) -> String {
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
    if l.priority != DEFAULT_PRIORITY {
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
            LearnItem::MatchField { dst, src } if dst == src => format_range_in(dst, udp),
            LearnItem::MatchField { dst, src } => {
                format!(
                    "{}={}",
                    format_range_in(dst, udp),
                    format_range_in(src, udp)
                )
            }
            LearnItem::MatchValue { dst, value } if *dst == FieldRange::whole(dst.field) => {
                format!("{}={}", field_name(dst.field), set_value(dst.field, *value))
            }
            LearnItem::MatchValue { dst, value } => {
                format!("{}={}", format_range_in(dst, udp), lex::chex(*value))
            }
            LearnItem::LoadField { dst, src } => {
                format!(
                    "load:{}->{}",
                    format_range_in(src, udp),
                    format_range_in(dst, udp)
                )
            }
            LearnItem::LoadValue { dst, value } => {
                format!("load:{}->{}", lex::chex(*value), format_range_in(dst, udp))
            }
            LearnItem::Output { src } => format!("output:{}", format_range_in(src, udp)),
        });
    }
    format!("learn({})", parts.join(","))
}
