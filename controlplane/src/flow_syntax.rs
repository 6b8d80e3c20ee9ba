//! The text syntax of flows: a documented subset of `ovs-ofctl`'s flow syntax, parsed into
//! the [`crate::flow`] types and printed back, so that what an admin types, and what
//! `vxctl dump-flows` prints, reads like Open vSwitch.
//!
//! ```text
//! table=0,priority=100,ip,in_port=3,nw_dst=10.1.2.0/24 actions=dec_ttl,output:1
//! ```
//!
//! A flow is a list of `key=value` fields and bare shorthands (`ip`, `tcp`), separated by
//! commas or whitespace, ending with `actions=` and the action list: everything after
//! `actions=` is actions, so it comes last. Keys are lowercase and case-sensitive; numbers
//! are decimal or `0x` hex. Fields may come in any order; they are stored and printed in
//! canonical order. `dump-flows` output parses back: its statistics keys (`duration=`,
//! `n_packets=`, `n_bytes=`, `idle_age=`, `hard_age=`) are accepted and ignored.
//!
//! # Flow keys
//!
//! | Key | Value | Notes |
//! |---|---|---|
//! | `table=N` | 0-254 | default 0 |
//! | `priority=N` | 0-65535 | default 32768; higher wins |
//! | `cookie=N` | 64 bits | an opaque tag; vxagent's flows carry [`AGENT_COOKIE`](crate::flow::AGENT_COOKIE) |
//! | `cookie=N/MASK` | 64 bits each | selecting flows only (del-flows, mod-flows, dump-flows) |
//! | `idle_timeout=S` | 0-65535 s | remove after S seconds without a hit; 0: never (add-flow only) |
//! | `hard_timeout=S` | 0-65535 s | remove after S seconds; 0: never (add-flow only) |
//! | `actions=LIST` | see below | required by add-flow; must come last |
//!
//! # Match fields
//!
//! Masks: an address takes `/PREFIX` or a `/MASK` in address form; a number takes
//! `/MASK`. Host bits outside the mask are cleared (`nw_dst=10.1.2.3/24` is
//! `10.1.2.0/24`). A field given twice is an error.
//!
//! | Field (synonyms) | Value | Needs |
//! |---|---|---|
//! | `in_port` | port number, or name (`vxlan0`, `vxhost0`, `n1p1`) | |
//! | `dl_src` (`eth_src`), `dl_dst` (`eth_dst`) | MAC`[/MASK]` | |
//! | `dl_type` (`eth_type`) | 16-bit number (`0x0800`) | |
//! | `dl_vlan` | 0-4095 | |
//! | `arp_op` | 16-bit number | `arp` |
//! | `arp_spa`, `arp_tpa` | IPv4`[/PREFIX\|/MASK]` | `arp` |
//! | `arp_sha`, `arp_tha` | MAC`[/MASK]` | `arp` |
//! | `nw_src` (`ip_src`), `nw_dst` (`ip_dst`) | IPv4`[/PREFIX\|/MASK]` | `ip` |
//! | `ipv6_src`, `ipv6_dst` | IPv6`[/PREFIX\|/MASK]` | `ipv6` |
//! | `nw_proto` (`ip_proto`), `nw_ttl` | 0-255 | `ip` or `ipv6` |
//! | `tp_src` (`tcp_src`, `udp_src`), `tp_dst` (`tcp_dst`, `udp_dst`) | 16 bits`[/MASK]` | `tcp` or `udp` (or `tcp6`, `udp6`) |
//! | `icmp_type` (`icmpv6_type`), `icmp_code` (`icmpv6_code`) | 0-255 | `icmp` or `icmp6` |
//! | `nd_target` | IPv6`[/PREFIX\|/MASK]` | `icmp6` and `icmp_type=135` or `136` |
//! | `tun_id` (`tunnel_id`) | 24-bit VNI`[/MASK]` | |
//! | `tun_src`, `tun_dst` | IPv4`[/PREFIX\|/MASK]` | |
//! | `tun_ipv6_src`, `tun_ipv6_dst` | IPv6`[/PREFIX\|/MASK]` | |
//! | `reg0` ... `reg7` | 32 bits`[/MASK]` | |
//!
//! | Shorthand | Means |
//! |---|---|
//! | `ip`, `ipv6`, `arp` | `dl_type=0x0800`, `0x86dd`, `0x0806` |
//! | `icmp`, `tcp`, `udp` | `ip` and `nw_proto=1`, `6`, `17` |
//! | `icmp6`, `tcp6`, `udp6` | `ipv6` and `nw_proto=58`, `6`, `17` |
//!
//! # Actions
//!
//! Comma-separated after `actions=`. An empty list, or `drop` alone, drops.
//!
//! | Action | Does |
//! |---|---|
//! | `output:PORT`, or just `PORT` (a number) | send a copy out of a port (number or name) |
//! | `normal` | the switch's built-in forwarding |
//! | `flood` | every port of the packet's VNI but the one it came in on |
//! | `drop` | drop (must be the only action) |
//! | `set_field:VALUE->FIELD` | write a field: a MAC for `eth_src`/`eth_dst`, an IPv4 address for `ip_src`/`ip_dst`/`tun_src`/`tun_dst`, an IPv6 address for `tun_ipv6_dst`, a number for `nw_ttl`, `tp_src`, `tp_dst`, `tun_id`, `reg0`-`reg7` |
//! | `load:VALUE->FIELD[BITS]` | write bits of a field |
//! | `move:FIELD[BITS]->FIELD[BITS]` | copy bits between fields (equal widths) |
//! | `mod_dl_src:MAC`, `mod_dl_dst:MAC` | set the Ethernet source / destination |
//! | `dec_ttl` | decrement the IP TTL (drop at zero) |
//! | `resubmit(,TABLE)`, `resubmit(PORT,TABLE)` | look the packet up in TABLE (as if from PORT) and come back |
//! | `goto_table:TABLE` | continue in TABLE |
//! | `note:HEX` | nothing; hex bytes for humans, dots allowed (`note:00.01.02`) |
//! | `set_tunnel:VNI` | same as `set_field:VNI->tun_id` |
//!
//! FIELD names for set_field, load and move: `eth_src` (`dl_src`, `NXM_OF_ETH_SRC`),
//! `eth_dst` (`dl_dst`, `NXM_OF_ETH_DST`), `ip_src` (`nw_src`, `NXM_OF_IP_SRC`), `ip_dst`
//! (`nw_dst`, `NXM_OF_IP_DST`), `nw_ttl` (`NXM_NX_IP_TTL`), `tp_src` (`tcp_src`, `udp_src`,
//! `NXM_OF_TCP_SRC`, `NXM_OF_UDP_SRC`), `tp_dst` (likewise), `tun_id` (`tunnel_id`,
//! `NXM_NX_TUN_ID`), `tun_src` (`NXM_NX_TUN_IPV4_SRC`), `tun_dst` (`NXM_NX_TUN_IPV4_DST`),
//! `reg0`-`reg7` (`NXM_NX_REG0`-`NXM_NX_REG7`). BITS is `[]` (the whole field, also written
//! by leaving the brackets out), `[N]` (one bit) or `[START..END]` (inclusive).
//!
//! # Printing
//!
//! Flows print as `ovs-ofctl dump-flows --no-stats` does, always with table and priority:
//! `cookie=0x5, table=0, idle_timeout=10, priority=100,tcp,nw_dst=10.1.2.0/24,tp_dst=80
//! actions=output:1`. Fields print under their first name above; the protocol prints as its
//! shorthand; MACs in lowercase; IP masks as `/PREFIX` when contiguous; `tun_id` and registers
//! in hex. Actions print as written above, with `set_field` and the bit ranges of `load` and
//! `move` under the first field name (`load:0x5->reg0[0..15]`).
//!
//! # Files
//!
//! A flows file ([`parse_flows_file`]) has one flow per line. A bundle ([`parse_bundle`])
//! has one change per line: `flow add FLOW`, `flow modify FILTER actions=...`,
//! `flow modify_strict ...`, `flow delete FILTER`, `flow delete_strict FILTER`, the same
//! without `flow `, or a bare FLOW (an add). In both, blank lines are skipped and `#` starts
//! a comment.
//!
//! # Not supported (unlike ovs-ofctl)
//!
//! Reserved ports (`LOCAL`, `IN_PORT`, `CONTROLLER`, ...), `key:value` for match fields,
//! `resubmit:PORT` (write `resubmit(,TABLE)`), masked set_field, and every action not listed
//! above (they are named "not supported", not "unknown").

mod actions;
pub mod group;
mod learn;
mod lex;
mod matches;
#[cfg(test)]
mod tests;

use std::fmt;

pub use actions::{format_action, format_actions, format_actions_for};
pub use matches::{canonicalize, format_match};

use crate::flow::{FlowAction, FlowMod, FlowSpec, FlowStats, Match, PortRef, DEFAULT_PRIORITY};
use lex::{bad, Bad, Res};
use matches::{Entry, Key, Stat};

/// A parse error that names the column (1-based, in characters) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub column: usize,
    pub message: String,
    pub input: String,
}

impl ParseError {
    fn new(input: &str, b: Bad) -> ParseError {
        ParseError {
            column: lex::column(input, b.at),
            message: b.msg,
            input: input.to_string(),
        }
    }
}

/// A line with a caret under `column` (tabs kept so that the caret lines up).
fn caret(input: &str, column: usize) -> String {
    let mut out: String = input
        .chars()
        .chain(std::iter::repeat(' '))
        .take(column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    out.push('^');
    out
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "column {}: {}\n{}\n{}",
            self.column,
            self.message,
            self.input,
            caret(&self.input, self.column)
        )
    }
}

impl std::error::Error for ParseError {}

/// An error in a file of flows or bundle lines: the 1-based line plus the ParseError.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub line: usize,
    pub error: ParseError,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.error;
        write!(
            f,
            "line {}, column {}: {}\n{}\n{}",
            self.line,
            e.column,
            e.message,
            e.input,
            caret(&e.input, e.column)
        )
    }
}

impl std::error::Error for FileError {}

/// A selection of flows (del-flows, mod-flows, dump-flows filters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowFilter {
    pub table: Option<u8>,
    pub priority: Option<u16>,
    /// `(value, mask)`; `cookie=N` without a mask selects with an all-ones mask.
    pub cookie: Option<(u64, u64)>,
    pub matches: Vec<Match>,
    /// The new actions of mod-flows.
    pub actions: Option<Vec<FlowAction>>,
}

impl FlowFilter {
    /// The [`FlowMod::Delete`] of the flows this filter selects. A strict delete without a
    /// priority means priority 32768, as in ovs-ofctl.
    pub fn to_delete(&self, strict: bool) -> FlowMod {
        let priority = if strict {
            Some(self.priority.unwrap_or(DEFAULT_PRIORITY))
        } else {
            self.priority
        };
        FlowMod::Delete {
            table: self.table,
            priority,
            matches: self.matches.clone(),
            strict,
            cookie: self.cookie,
        }
    }

    /// The [`FlowMod::Modify`] that gives the selected flows this filter's actions: `None`
    /// without actions, or with a masked cookie (a modify's cookie is the new cookie, given
    /// as `cookie=N`; without one the flows get cookie 0). Table defaults to 0 and priority
    /// to 32768.
    pub fn to_modify(&self, strict: bool) -> Option<FlowMod> {
        let cookie = match self.cookie {
            None => 0,
            Some((value, u64::MAX)) => value,
            Some(_) => return None,
        };
        Some(FlowMod::Modify {
            flow: FlowSpec {
                table: self.table.unwrap_or(0),
                priority: self.priority.unwrap_or(DEFAULT_PRIORITY),
                cookie,
                idle_timeout: 0,
                hard_timeout: 0,
                matches: self.matches.clone(),
                actions: self.actions.clone()?,
            },
            strict,
        })
    }
}

/// What a line is being parsed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// add-flow: actions required.
    Flow,
    /// del-flows, mod-flows, dump-flows: everything optional, no timeouts.
    Filter,
    /// A packet for ofproto/trace: packet fields with exact values only.
    Trace,
}

/// Everything a flow, filter or trace line says, with the offsets later checks need.
#[derive(Debug, Default)]
struct Parsed {
    table: Option<u8>,
    priority: Option<u16>,
    cookie: Option<(u64, u64)>,
    /// Offset of the cookie key, and whether it had a mask.
    cookie_at: usize,
    cookie_masked: bool,
    idle_timeout: Option<u16>,
    hard_timeout: Option<u16>,
    /// Canonical.
    matches: Vec<Match>,
    actions: Option<Vec<FlowAction>>,
    /// Offset of the `actions` key.
    actions_at: usize,
}

/// Fails if `name` was already seen; else remembers where.
fn once(s: &str, seen: &mut Vec<(&'static str, usize)>, name: &'static str, at: usize) -> Res<()> {
    if let Some(&(_, first)) = seen.iter().find(|(n, _)| *n == name) {
        return bad(
            at,
            format!(
                "{name} is given twice (first at column {})",
                lex::column(s, first)
            ),
        );
    }
    seen.push((name, at));
    Ok(())
}

/// The error for a key that is not one of ours.
fn unknown_key<T>(key: &str, at: usize) -> Res<T> {
    if key.is_empty() {
        return bad(at, "expected a field name before '='");
    }
    if key.starts_with("ct_") {
        return bad(
            at,
            format!(
                "{key}: connection tracking (ct_state, ct_zone, ct_mark, ct_label, ct(...)) is \
                 not supported by vxswitch"
            ),
        );
    }
    if key == "actions" || key == "action" || key.starts_with("actions:") {
        return bad(
            at,
            "expected actions=LIST (actions= comes last, followed by the actions)",
        );
    }
    if actions::looks_like_action(key) {
        return bad(
            at,
            format!("unknown field {key:?} (actions go after actions=)"),
        );
    }
    bad(
        at,
        format!(
            "unknown field {key:?}{}",
            lex::did_you_mean(key, matches::key_names())
        ),
    )
}

/// Checks `duration=12.345s`.
fn duration(v: &str, at: usize) -> Res<()> {
    let secs = v.strip_suffix('s').unwrap_or(v);
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, "0"));
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if digits(whole) && digits(frac) {
        Ok(())
    } else {
        bad(
            at,
            format!(
                "expected seconds (like 12.345s) after duration=, found {}",
                lex::found(v)
            ),
        )
    }
}

/// Parses `s` from offset `from` as `mode` says.
fn parse_parts(s: &str, from: usize, mode: Mode) -> Res<Parsed> {
    let split = lex::split(s, from);
    let mut p = Parsed::default();
    let mut seen = Vec::new();
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for item in &split.items {
        let Some(key) = matches::lookup(item.key) else {
            return unknown_key(item.key, item.at);
        };
        if let Key::Shorthand { dl_type, nw_proto } = key {
            if let Some((_, v_at)) = item.value {
                return bad(
                    v_at - 1,
                    format!("{} takes no value (it is a shorthand)", item.key),
                );
            }
            for m in matches::shorthand(dl_type, nw_proto) {
                let e = Entry {
                    m,
                    at: item.at,
                    key: item.key,
                    text: item.key,
                    explicit: false,
                };
                matches::add_entry(s, &mut entries, e)?;
            }
            continue;
        }
        let Some((v, v_at)) = item.value else {
            return bad(item.at, format!("{0} needs a value: {0}=...", item.key));
        };
        if mode == Mode::Trace {
            if !matches!(key, Key::Field(_)) {
                return bad(
                    item.at,
                    format!(
                        "{} is not a packet field (a trace takes in_port and packet fields)",
                        item.key
                    ),
                );
            }
            if let Some(slash) = v.find('/') {
                return bad(
                    v_at + slash,
                    format!(
                        "a traced packet has exact field values: remove the mask {:?}",
                        &v[slash..]
                    ),
                );
            }
        }
        match key {
            Key::Table => {
                once(s, &mut seen, "table", item.at)?;
                p.table = Some(lex::table(v, v_at, "table=")?);
            }
            Key::Priority => {
                once(s, &mut seen, "priority", item.at)?;
                p.priority = Some(lex::uint(v, v_at, "priority=", "priority", 16)? as u16);
            }
            Key::Cookie => {
                once(s, &mut seen, "cookie", item.at)?;
                let slash = v.find('/');
                if let (Some(slash), Mode::Flow) = (slash, mode) {
                    return bad(
                        v_at + slash,
                        "a flow's cookie takes no mask (masks select flows: del-flows, mod-flows, \
                         dump-flows)",
                    );
                }
                p.cookie = Some(lex::uint_masked(v, v_at, "cookie", 64)?);
                p.cookie_at = item.at;
                p.cookie_masked = slash.is_some();
            }
            Key::IdleTimeout | Key::HardTimeout => {
                if mode == Mode::Filter {
                    return bad(
                        item.at,
                        format!("{} is for adding flows; it cannot select flows", item.key),
                    );
                }
                let idle = key == Key::IdleTimeout;
                let name = if idle { "idle_timeout" } else { "hard_timeout" };
                once(s, &mut seen, name, item.at)?;
                let t = Some(lex::uint(v, v_at, &format!("{name}="), name, 16)? as u16);
                if idle {
                    p.idle_timeout = t;
                } else {
                    p.hard_timeout = t;
                }
            }
            Key::Stat(Stat::Duration) => duration(v, v_at)?,
            Key::Stat(Stat::Counter) => {
                lex::uint(v, v_at, &format!("{}=", item.key), item.key, 64)?;
            }
            Key::Field(f) => {
                let m = matches::parse_field(f, item.key, v, v_at)?;
                let text = item.text(s);
                let e = Entry {
                    m,
                    at: item.at,
                    key: item.key,
                    text,
                    explicit: true,
                };
                matches::add_entry(s, &mut entries, e)?;
            }
            Key::Shorthand { .. } => {}
        }
    }
    let entries = matches::arp_aliases(s, entries)?;
    matches::check_prerequisites(&entries)?;
    p.matches = entries.into_iter().map(|e| e.m).collect();
    canonicalize(&mut p.matches);
    match (split.actions, mode) {
        (Some((key_at, _)), Mode::Trace) => {
            return bad(key_at, "a trace takes a packet, not actions");
        }
        (Some((key_at, text_at)), _) => {
            let parsed = actions::parse(s, text_at)?;
            p.actions = Some(actions::ovs_vlan_forms(parsed, &p.matches));
            p.actions_at = key_at;
        }
        (None, Mode::Flow) => {
            return bad(
                s.len(),
                "expected actions=... at the end (every flow needs actions; actions=drop drops)",
            );
        }
        (None, _) => {}
    }
    Ok(p)
}

/// A flow from offset `from` of `s`.
fn flow_at(s: &str, from: usize) -> Res<FlowSpec> {
    let p = parse_parts(s, from, Mode::Flow)?;
    Ok(FlowSpec {
        table: p.table.unwrap_or(0),
        priority: p.priority.unwrap_or(DEFAULT_PRIORITY),
        cookie: p.cookie.map_or(0, |(value, _)| value),
        idle_timeout: p.idle_timeout.unwrap_or(0),
        hard_timeout: p.hard_timeout.unwrap_or(0),
        matches: p.matches,
        actions: p.actions.unwrap_or_else(|| vec![FlowAction::Drop]),
    })
}

impl From<&Parsed> for FlowFilter {
    fn from(p: &Parsed) -> FlowFilter {
        FlowFilter {
            table: p.table,
            priority: p.priority,
            cookie: p.cookie,
            matches: p.matches.clone(),
            actions: p.actions.clone(),
        }
    }
}

/// Parses a flow, as add-flow takes it: table defaults to 0, priority to 32768, cookie and
/// timeouts to 0; `actions=` is required and comes last.
pub fn parse_flow(s: &str) -> Result<FlowSpec, ParseError> {
    flow_at(s, 0).map_err(|b| ParseError::new(s, b))
}

/// Parses a selection of flows (del-flows, mod-flows, dump-flows): the keys of a flow, all
/// optional ("" selects every flow); `cookie=N/MASK` allowed; `actions=` (for mod-flows)
/// optional; no timeouts.
pub fn parse_filter(s: &str) -> Result<FlowFilter, ParseError> {
    parse_parts(s, 0, Mode::Filter)
        .map(|p| FlowFilter::from(&p))
        .map_err(|b| ParseError::new(s, b))
}

/// Parses the packet of a trace: `in_port=PORT` (required) and packet fields with exact
/// values (no masks), e.g. `in_port=2,dl_src=0a:58:0a:01:01:02,ip,nw_dst=10.1.2.2`. Returns
/// the port and the other fields, canonical.
pub fn parse_trace(s: &str) -> Result<(PortRef, Vec<Match>), ParseError> {
    let run = || {
        let mut p = parse_parts(s, 0, Mode::Trace)?;
        let pos = p
            .matches
            .iter()
            .position(|m| matches!(m, Match::InPort { .. }));
        match pos.map(|i| p.matches.remove(i)) {
            Some(Match::InPort { port }) => Ok((port, p.matches)),
            _ => bad(
                0,
                "a trace needs in_port=PORT (the port the packet arrives on)",
            ),
        }
    };
    run().map_err(|b| ParseError::new(s, b))
}

/// The lines of a file worth parsing: 1-based number, the whole line (for messages), and the
/// part before any `#` comment. Blank and comment-only lines are skipped.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let content = line.split('#').next().unwrap_or("");
        (!content.trim().is_empty()).then_some((i + 1, line, content))
    })
}

/// Parses a file of flows, one per line; blank lines and `#` comments are skipped. A flow
/// listed twice (same table, priority and match) is kept once, with what the later line says,
/// as ovs-ofctl's add-flows and replace-flows do.
pub fn parse_flows_file(text: &str) -> Result<Vec<FlowSpec>, FileError> {
    let mut flows: Vec<FlowSpec> = Vec::new();
    // Where each rule (table, priority, match) is in `flows`: a later line replaces it.
    let mut at: std::collections::HashMap<(u8, u16, Vec<Match>), usize> = Default::default();
    for (line, whole, content) in content_lines(text) {
        let f = flow_at(content, 0).map_err(|b| FileError {
            line,
            error: ParseError::new(whole, b),
        })?;
        match at.entry((f.table, f.priority, f.matches.clone())) {
            std::collections::hash_map::Entry::Occupied(e) => flows[*e.get()] = f,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(flows.len());
                flows.push(f);
            }
        }
    }
    Ok(flows)
}

/// The next whitespace-separated word at or after `from`: the word and its offset.
fn word(s: &str, from: usize) -> (&str, usize) {
    let at = lex::scan(s, from, char::is_whitespace);
    let end = lex::scan(s, at, |c| !c.is_whitespace());
    (&s[at..end], at)
}

/// The change one bundle line asks for.
fn bundle_line(s: &str) -> Res<FlowMod> {
    const OPS: &[&str] = &["add", "modify", "modify_strict", "delete", "delete_strict"];
    let (first, first_at) = word(s, 0);
    let (op, op_at) = if first == "flow" {
        let (op, op_at) = word(s, first_at + first.len());
        if !OPS.contains(&op) {
            return bad(
                op_at,
                format!(
                    "expected add, modify, modify_strict, delete or delete_strict after \"flow\", \
                     found {}{}",
                    lex::found(op),
                    lex::did_you_mean(op, OPS.iter().copied())
                ),
            );
        }
        (op, op_at)
    } else if OPS.contains(&first) {
        (first, first_at)
    } else {
        return Ok(FlowMod::Add {
            flow: flow_at(s, 0)?,
            reset_counts: false,
        });
    };
    let rest = op_at + op.len();
    let strict = op.ends_with("_strict");
    match op {
        "add" => Ok(FlowMod::Add {
            flow: flow_at(s, rest)?,
            reset_counts: false,
        }),
        "modify" | "modify_strict" => {
            let p = parse_parts(s, rest, Mode::Filter)?;
            if p.actions.is_none() {
                return bad(
                    s.len(),
                    format!("expected actions=... at the end (flow {op} sets new actions)"),
                );
            }
            if p.cookie_masked {
                return bad(
                    p.cookie_at,
                    format!(
                        "flow {op} sets the cookie to cookie=N; a cookie mask cannot select \
                         flows here"
                    ),
                );
            }
            FlowFilter::from(&p).to_modify(strict).ok_or_else(|| Bad {
                at: p.cookie_at,
                msg: "cannot modify".to_string(),
            })
        }
        _ => {
            let p = parse_parts(s, rest, Mode::Filter)?;
            if p.actions.is_some() {
                return bad(p.actions_at, format!("flow {op} takes no actions"));
            }
            Ok(FlowFilter::from(&p).to_delete(strict))
        }
    }
}

/// Parses a bundle: one change per line, applied all or nothing. Lines are `flow add FLOW`,
/// `flow modify FILTER actions=...`, `flow modify_strict ...`, `flow delete FILTER`,
/// `flow delete_strict FILTER`, the same without `flow `, or a bare FLOW (an add); blank
/// lines and `#` comments are skipped.
pub fn parse_bundle(text: &str) -> Result<Vec<FlowMod>, FileError> {
    content_lines(text)
        .map(|(line, whole, content)| {
            bundle_line(content).map_err(|b| FileError {
                line,
                error: ParseError::new(whole, b),
            })
        })
        .collect()
}

/// `idle_timeout=N, hard_timeout=N, ` for the timeouts that are set.
fn timeouts(f: &FlowSpec) -> String {
    let mut out = String::new();
    if f.idle_timeout != 0 {
        out += &format!("idle_timeout={}, ", f.idle_timeout);
    }
    if f.hard_timeout != 0 {
        out += &format!("hard_timeout={}, ", f.hard_timeout);
    }
    out
}

/// `priority=N,MATCH actions=LIST` as ovs-ofctl prints it after `prefix` (`cookie=...,
/// table=N, ` and so on): the priority only when it is not 32768, a space before `actions=`
/// unless the text already ends with one.
fn rule(prefix: String, f: &FlowSpec) -> String {
    let mut out = prefix;
    let m = format_match(&f.matches);
    if f.priority != DEFAULT_PRIORITY {
        out += &format!("priority={}", f.priority);
        if !m.is_empty() {
            out.push(',');
        }
    }
    out += &m;
    if !out.is_empty() && !out.ends_with(' ') {
        out.push(' ');
    }
    out += "actions=";
    out += &actions::format_actions_for(&f.actions, &f.matches);
    out
}

/// Prints a flow like `ovs-ofctl -O OpenFlow13 dump-flows --no-stats` (without the line's
/// leading space): `cookie=0x5, table=1, idle_timeout=10, priority=100,ip,in_port=3,
/// nw_dst=10.1.2.0/24 actions=dec_ttl,output:1`; cookie and table only when not zero,
/// priority only when not 32768, timeouts when set. It parses back to the same flow.
pub fn format_flow(f: &FlowSpec) -> String {
    let mut prefix = String::new();
    if f.cookie != 0 {
        prefix += &format!("cookie={:#x}, ", f.cookie);
    }
    if f.table != 0 {
        prefix += &format!("table={}, ", f.table);
    }
    prefix += &timeouts(f);
    rule(prefix, f)
}

/// Prints a flow with its counters like `ovs-ofctl dump-flows`:
/// ` cookie=0x0, duration=12.345s, table=0, n_packets=3, n_bytes=294, idle_age=2,
/// priority=100,ip actions=...`. It parses back to the flow (the counters are ignored).
pub fn format_flow_stats(s: &FlowStats) -> String {
    let f = &s.spec;
    let prefix = format!(
        " cookie={:#x}, duration={}.{:03}s, table={}, n_packets={}, n_bytes={}, {}idle_age={}, ",
        f.cookie,
        s.duration_ms / 1000,
        s.duration_ms % 1000,
        f.table,
        s.n_packets,
        s.n_bytes,
        timeouts(f),
        s.idle_ms / 1000,
    );
    rule(prefix, f)
}
