//! The flow commands' pure parts: ordering and printing flows, diff-flows, and the views of
//! dump-ports, dump-tables, trace and monitor. Structures in, text out.

use std::cmp::Reverse;
use std::fmt::Write as _;

use controlplane::flow_syntax::{
    canonicalize, format_actions, format_flow, format_flow_stats, format_match,
};
use controlplane::proto::{
    FlowEvent, FlowEventKind, FlowSpec, FlowStats, Match, PortCounters, PortRef, StatsRepr,
    TableMiss, TableStats, TraceRepr, BRIDGE,
};

/// The order OVS prints flows in: by table, highest priority first, then by match.
fn order_key(f: &FlowSpec) -> (u8, Reverse<u16>, String) {
    (f.table, Reverse(f.priority), format_match(&f.matches))
}

/// Sorts flows as dump-flows prints them.
pub fn sort(flows: &mut [FlowStats]) {
    flows.sort_by_cached_key(|f| order_key(&f.spec));
}

/// True if `cookie` (value, mask) selects the flow (OVS's `cookie=VALUE/MASK`).
pub fn cookie_selects(f: &FlowSpec, cookie: Option<(u64, u64)>) -> bool {
    cookie.is_none_or(|(value, mask)| f.cookie & mask == value & mask)
}

/// `vxctl dump-flows`: one line per flow, sorted; every line parses back as a flow.
pub fn dump_flows(flows: &[FlowStats], no_stats: bool) -> String {
    let mut sorted = flows.to_vec();
    sort(&mut sorted);
    let mut out = String::new();
    for f in &sorted {
        out.push_str(&if no_stats {
            format_flow(&f.spec)
        } else {
            format_flow_stats(f)
        });
        out.push('\n');
    }
    out
}

/// One line of diff-flows: `-` for a flow only in the switch, `+` only in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    pub sign: char,
    pub flow: FlowSpec,
}

/// Compares flows without counters, as `ovs-ofctl diff-flows` does: a flow equal in every
/// part (table, priority, match, cookie, timeouts, actions) on both sides is no difference; a
/// rule whose other parts differ shows as a `-` line then a `+` line. Lines come in dump-flows
/// order.
pub fn diff(switch: &[FlowSpec], file: &[FlowSpec]) -> Vec<DiffLine> {
    let canon = |flows: &[FlowSpec]| -> Vec<FlowSpec> {
        flows
            .iter()
            .map(|f| {
                let mut c = f.clone();
                canonicalize(&mut c.matches);
                c
            })
            .collect()
    };
    let (a, b) = (canon(switch), canon(file));
    let mut lines: Vec<DiffLine> = Vec::new();
    for (sign, mine, theirs) in [('-', &a, &b), ('+', &b, &a)] {
        for f in mine {
            let dup = lines.iter().any(|l| l.sign == sign && l.flow == *f);
            if !theirs.contains(f) && !dup {
                lines.push(DiffLine {
                    sign,
                    flow: f.clone(),
                });
            }
        }
    }
    // Stable: within one rule, `-` (pushed first) stays before `+`.
    lines.sort_by_cached_key(|l| (order_key(&l.flow), l.sign == '+'));
    lines
}

/// The text of diff-flows.
pub fn render_diff(lines: &[DiffLine]) -> String {
    lines
        .iter()
        .map(|l| format!("{}{}\n", l.sign, format_flow(&l.flow)))
        .collect()
}

/// `vxctl dump-ports`: one line per port (or just `port`), ovs-ofctl dump-ports style;
/// counters the switch does not keep are `?`.
pub fn dump_ports(s: &StatsRepr, port: Option<&PortRef>) -> Result<String, String> {
    let mut ports: Vec<_> = s
        .ports
        .iter()
        .filter(|p| port.is_none_or(|want| port_is(p, want)))
        .collect();
    if let (Some(want), true) = (port, ports.is_empty()) {
        return Err(format!("no port {want} on {BRIDGE}"));
    }
    ports.sort_by_key(|p| p.no);
    let mut out = format!("{BRIDGE}: {} ports\n", ports.len());
    for p in ports {
        let _ = writeln!(
            out,
            "  port {} ({}): rx pkts={}, bytes={}, drop=?, errs=?; tx pkts={}, bytes={}, errs={}",
            p.no, p.name, p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes, p.tx_errors
        );
    }
    Ok(out)
}

/// True if the counters are those of `port` (by number or name).
pub fn port_is(p: &PortCounters, port: &PortRef) -> bool {
    match port {
        PortRef::Number(n) => p.no == *n,
        PortRef::Name(name) => p.name == *name,
    }
}

pub fn miss_name(m: TableMiss) -> &'static str {
    match m {
        TableMiss::Drop => "drop",
        TableMiss::Continue => "continue",
        TableMiss::Normal => "normal",
    }
}

/// `vxctl dump-tables`: one line per table, by number.
pub fn dump_tables(tables: &[TableStats]) -> String {
    let mut sorted: Vec<&TableStats> = tables.iter().collect();
    sorted.sort_by_key(|t| t.table);
    sorted
        .iter()
        .map(|t| {
            format!(
                "table {}: active={}, lookup={}, matched={}, miss={}\n",
                t.table,
                t.flows,
                t.lookups,
                t.matches,
                miss_name(t.miss)
            )
        })
        .collect()
}

/// A flow as a trace step shows it (the step names the table): `[cookie=C, ]priority=P[,MATCH]
/// actions=LIST`.
fn step_flow(f: &FlowSpec) -> String {
    let cookie = if f.cookie != 0 {
        format!("cookie={:#x}, ", f.cookie)
    } else {
        String::new()
    };
    let m = format_match(&f.matches);
    let sep = if m.is_empty() { "" } else { "," };
    format!(
        "{cookie}priority={}{sep}{m} actions={}",
        f.priority,
        format_actions(&f.actions)
    )
}

/// `vxctl trace`, in ofproto/trace's shape: the frame, each lookup indented by its depth, the
/// actions that would run, and the verdict.
pub fn trace(in_port: &PortRef, matches: &[Match], t: &TraceRepr) -> String {
    let mut frame = vec![Match::InPort {
        port: in_port.clone(),
    }];
    frame.extend(matches.iter().cloned());
    canonicalize(&mut frame);
    let mut out = format!(
        "Flow: {}\n\nbridge(\"{BRIDGE}\")\n-------------\n",
        format_match(&frame)
    );
    for s in &t.steps {
        let pad = "    ".repeat(usize::from(s.depth));
        match &s.flow {
            Some(f) => {
                let _ = writeln!(out, "{pad}table {}: {}", s.table, step_flow(f));
                if !s.note.is_empty() {
                    let _ = writeln!(out, "{pad}    {}", s.note);
                }
            }
            None => {
                let _ = writeln!(out, "{pad}table {}: {}", s.table, s.note);
            }
        }
    }
    if t.steps.is_empty() {
        out.push_str("no lookups\n");
    }
    let actions = if t.actions.is_empty() {
        "drop".to_string()
    } else {
        t.actions.join(", ")
    };
    let _ = write!(
        out,
        "\nDatapath actions: {actions}\nVerdict: {}\n",
        t.verdict
    );
    out
}

/// `vxctl monitor`: `added|modified|removed [(reason)] FLOW`; the reason is shown when it is
/// not the plain one (an add, a modify, a delete).
pub fn flow_event(e: &FlowEvent) -> String {
    let (word, plain) = match e.event {
        FlowEventKind::Added => ("added", "add"),
        FlowEventKind::Modified => ("modified", "modify"),
        FlowEventKind::Removed => ("removed", "delete"),
    };
    let why = if e.reason == plain || e.reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", e.reason)
    };
    format!("{word}{why} {}", format_flow(&e.flow))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use controlplane::flow_syntax::parse_flow;
    use controlplane::proto::*;

    use super::*;

    fn f(s: &str) -> FlowSpec {
        parse_flow(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn stats(s: &str, n: u64) -> FlowStats {
        FlowStats {
            spec: f(s),
            n_packets: n,
            n_bytes: n * 100,
            duration_ms: 1500,
            idle_ms: 500,
        }
    }

    #[test]
    fn dump_flows_sorts_by_table_then_priority_and_lines_parse_back() {
        let flows = vec![
            stats("table=10,priority=0,actions=normal", 1),
            stats("table=0,priority=0,actions=drop", 2),
            stats(
                "table=0,priority=300,in_port=vxhost0,actions=goto_table:10",
                3,
            ),
            stats("table=0,priority=290,in_port=vxlan0,actions=drop", 4),
        ];
        let text = dump_flows(&flows, false);
        let back: Vec<FlowSpec> = text.lines().map(f).collect();
        let order: Vec<(u8, u16)> = back.iter().map(|f| (f.table, f.priority)).collect();
        assert_eq!(order, [(0, 300), (0, 290), (0, 0), (10, 0)], "{text}");
        assert!(text.contains("n_packets=3"), "{text}");
        let plain = dump_flows(&flows, true);
        assert!(!plain.contains("n_packets"), "{plain}");
        assert_eq!(plain.lines().map(f).collect::<Vec<_>>(), back);
    }

    #[test]
    fn diff_shows_only_differences_in_dump_order() {
        let switch = vec![
            f("table=0,priority=0,actions=normal"),
            f("table=0,priority=100,ip,nw_dst=10.1.2.0/24,actions=drop"),
            f("table=10,priority=5,arp,actions=normal"),
        ];
        let file = vec![
            // Same as the switch's, fields in another order.
            f("priority=100,nw_dst=10.1.2.0/24,ip,actions=drop"),
            // Same rule, other actions: - then +.
            f("table=0,priority=0,actions=drop"),
            f("table=0,priority=200,in_port=n1p1,actions=drop"),
        ];
        let d = diff(&switch, &file);
        let text = render_diff(&d);
        let signs: Vec<(char, u8, u16)> = d
            .iter()
            .map(|l| (l.sign, l.flow.table, l.flow.priority))
            .collect();
        assert_eq!(
            signs,
            [('+', 0, 200), ('-', 0, 0), ('+', 0, 0), ('-', 10, 5)],
            "{text}"
        );
        for l in text.lines() {
            let (sign, flow) = l.split_at(1);
            assert!(sign == "-" || sign == "+");
            f(flow);
        }
        assert!(diff(&switch, &switch).is_empty());
        assert!(diff(&[], &[]).is_empty());
        // A cookie or timeout is a difference too.
        let c = vec![f("cookie=0x5,table=0,priority=0,actions=normal")];
        assert_eq!(diff(&switch[..1], &c).len(), 2);
    }

    #[test]
    fn ports_and_tables() {
        let s = StatsRepr {
            ports: vec![
                PortCounters {
                    no: 3,
                    name: "n1p1".into(),
                    rx_packets: 9,
                    rx_bytes: 900,
                    tx_packets: 1,
                    tx_bytes: 98,
                    tx_errors: 0,
                },
                PortCounters {
                    no: 1,
                    name: "vxlan0".into(),
                    ..PortCounters::default()
                },
            ],
            ..StatsRepr::default()
        };
        assert_eq!(
            dump_ports(&s, None).unwrap(),
            "br0: 2 ports\n\
             \x20 port 1 (vxlan0): rx pkts=0, bytes=0, drop=?, errs=?; tx pkts=0, bytes=0, errs=0\n\
             \x20 port 3 (n1p1): rx pkts=9, bytes=900, drop=?, errs=?; tx pkts=1, bytes=98, errs=0\n"
        );
        let one = dump_ports(&s, Some(&PortRef::Name("n1p1".into()))).unwrap();
        assert_eq!(one.lines().count(), 2);
        assert_eq!(dump_ports(&s, Some(&PortRef::Number(3))).unwrap(), one);
        assert_eq!(
            dump_ports(&s, Some(&PortRef::Number(9))).unwrap_err(),
            "no port 9 on br0"
        );
        let t = vec![
            TableStats {
                table: 10,
                flows: 1,
                lookups: 5,
                matches: 5,
                miss: TableMiss::Normal,
            },
            TableStats {
                table: 0,
                flows: 3,
                lookups: 9,
                matches: 7,
                miss: TableMiss::Drop,
            },
        ];
        assert_eq!(
            dump_tables(&t),
            "table 0: active=3, lookup=9, matched=7, miss=drop\n\
             table 10: active=1, lookup=5, matched=5, miss=normal\n"
        );
    }

    #[test]
    fn trace_indents_by_depth_and_ends_with_the_verdict() {
        let t = TraceRepr {
            steps: vec![
                TraceStep {
                    table: 0,
                    flow: Some(f("table=0,priority=300,in_port=n1p1,actions=goto_table:10")),
                    note: String::new(),
                    depth: 0,
                },
                TraceStep {
                    table: 10,
                    flow: Some(f("table=10,priority=0,actions=normal")),
                    note: "normal: to port 4 (n1p2)".into(),
                    depth: 1,
                },
                TraceStep {
                    table: 20,
                    flow: None,
                    note: "no match: table miss drops".into(),
                    depth: 2,
                },
            ],
            actions: vec!["goto_table:10".into(), "normal".into()],
            verdict: "output to port 4 (n1p2)".into(),
        };
        let ip: Ipv4Addr = "10.1.1.3".parse().unwrap();
        let m = vec![
            Match::NwDst {
                value: ip,
                mask: Ipv4Addr::BROADCAST,
            },
            Match::DlType { value: 0x0800 },
        ];
        let text = trace(&PortRef::Name("n1p1".into()), &m, &t);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Flow: ip,in_port=n1p1,nw_dst=10.1.1.3", "{text}");
        assert_eq!(lines[2], "bridge(\"br0\")");
        let t0 = lines.iter().find(|l| l.starts_with("table 0: ")).unwrap();
        assert!(!t0.contains("table=0"), "{t0}");
        assert!(
            t0.contains("in_port=n1p1") && t0.ends_with("goto_table:10"),
            "{t0}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("    table 10: ")),
            "{text}"
        );
        assert!(
            lines.contains(&"        normal: to port 4 (n1p2)"),
            "{text}"
        );
        assert!(
            lines.contains(&"        table 20: no match: table miss drops"),
            "{text}"
        );
        assert!(text.ends_with(
            "\nDatapath actions: goto_table:10, normal\nVerdict: output to port 4 (n1p2)\n"
        ));
        let empty = TraceRepr {
            steps: vec![],
            actions: vec![],
            verdict: "drop: no such port".into(),
        };
        let text = trace(&PortRef::Number(9), &[], &empty);
        assert!(text.contains("Datapath actions: drop\n"), "{text}");
    }

    #[test]
    fn events_name_unusual_reasons() {
        let e = |event, reason: &str| FlowEvent {
            event,
            reason: reason.into(),
            table_version: 3,
            flow: f("table=1,priority=5,idle_timeout=10,actions=drop"),
        };
        let added = flow_event(&e(FlowEventKind::Added, "add"));
        assert!(added.starts_with("added table=1"), "{added}");
        let gone = flow_event(&e(FlowEventKind::Removed, "idle_timeout"));
        assert!(gone.starts_with("removed (idle_timeout) table=1"), "{gone}");
        assert!(flow_event(&e(FlowEventKind::Removed, "delete")).starts_with("removed table"));
        assert!(flow_event(&e(FlowEventKind::Modified, "modify")).starts_with("modified table"));
    }
}
