//! `ovs-appctl ofproto/trace BRIDGE FLOW`: the packet described by FLOW is built for real (as
//! `vxctl trace` builds it), walked through the published flow tables and then through the
//! real pipeline with nothing sent, and the walk is printed in the shape of OVS's trace:
//!
//! ```text
//! Flow: ip,in_port=3,vlan_tci=0x0000,dl_src=...,nw_src=10.1.1.3,nw_dst=10.1.2.5,...
//!
//! bridge("br0")
//! -------------
//!  0. ip,in_port=3,nw_src=10.1.1.3, priority 100
//!     resubmit(,10)
//! 10. ip,nw_dst=10.1.2.0/24, priority 100, cookie 0x1234
//!     set_field:198.51.100.2->tun_dst
//!     output:1
//!      -> output to native tunnel: tun_id=0x5,tun_dst=198.51.100.2
//!
//! Final flow: ...
//! Megaflow: recirc_id=0,eth,ip,in_port=3,nw_src=10.1.1.3,nw_dst=10.1.2.0/24,nw_frag=no
//! Datapath actions: tnl_push(...)
//! ```
//!
//! Each table visited is a line ` N. MATCH, priority P[, cookie C]` (a miss: ` N. No match.`
//! and `drop`), its actions below it as the flow's dump prints them, and what an output
//! resolved to on a ` -> ` line (`-> output port is N` for an output to a register). A
//! resubmit that is a flow's last action continues on the same level, as in OVS. The
//! megaflow is the union of the fields the matched flows looked at; the datapath actions are
//! what the pipeline did with the packet: port numbers, a `tnl_push(...)` per encapsulation,
//! or `drop`.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use controlplane::flow::{FieldRange, FlowAction, FlowSpec, Match, PortRef, TableMiss, MAX_DEPTH};
use controlplane::flow_syntax::{format_action, format_match};
use controlplane::proto::PORT_TUNNEL;

use crate::buf::PacketBuf;
use crate::counters::WorkerCounters;
use crate::fib::{PortNo, Tables};
use crate::flow::key::{self, FlowKey, Tunnel};
use crate::flow::{resolve_into, End, Observer, Program, Rule, Step, MAX_RESUBMITS};
use crate::pipeline::{Action, Pipeline, PipelineConfig, Recorder};

/// What the walk of the tables did, in order.
#[derive(Debug, Clone)]
enum Ev {
    Lookup {
        table: u8,
        depth: usize,
        rule: Option<Box<(FlowSpec, FlowKey)>>,
        miss: TableMiss,
    },
    Step(Step),
}

struct StepLog<'a>(&'a RefCell<Vec<Ev>>);

impl Program for StepLog<'_> {
    fn step(&mut self, s: Step) {
        self.0.borrow_mut().push(Ev::Step(s));
    }
    fn lookup(&mut self, _: u8, _: u32) {}
    // A trace never learns, as OVS's ofproto/trace suppresses side effects.
    fn learn(&mut self, _: u32, _: &[u64; crate::learn::LEARN_VALS]) {}
}

struct LookupLog<'a>(&'a RefCell<Vec<Ev>>);

impl Observer for LookupLog<'_> {
    fn lookup(&mut self, table: u8, depth: usize, rule: Option<&Rule>, miss: TableMiss) {
        self.0.borrow_mut().push(Ev::Lookup {
            table,
            depth,
            rule: rule.map(|r| Box::new((r.spec.clone(), r.mask))),
            miss,
        });
    }
}

/// Everything the trace needs besides the tables.
pub struct TraceArgs<'a> {
    pub bridge: &'a str,
    pub in_port: PortNo,
    /// The packet's fields, canonical (without in_port).
    pub matches: &'a [Match],
    pub cfg: &'a PipelineConfig,
    /// The VXLAN UDP port (for the datapath's `tnl_push`).
    pub vxlan_port: u16,
    /// Port names to numbers (flows print ports by number, as OVS's trace does).
    pub resolve: &'a dyn Fn(&PortRef) -> Option<PortNo>,
}

/// A port named in a flow, as its number when the switch knows the name.
fn numbered(p: &PortRef, resolve: &dyn Fn(&PortRef) -> Option<PortNo>) -> PortRef {
    match p {
        PortRef::Name(_) => resolve(p).map(PortRef::Number).unwrap_or_else(|| p.clone()),
        PortRef::Number(_) => p.clone(),
    }
}

/// Runs the trace and returns OVS's text.
pub fn ofproto_trace(t: &Tables, a: &TraceArgs<'_>, name: &dyn Fn(PortNo) -> String) -> String {
    let ms = a.matches;
    let in_port = a.in_port;
    let frame = crate::trace::synthesize(ms, t, in_port);
    let from_tunnel = in_port == PORT_TUNNEL;
    let local = t.local.as_ref();
    let vtep = local
        .map(|l| l.vtep)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let vni = ms
        .iter()
        .find_map(|m| match m {
            Match::TunId { value, .. } => Some(*value as u32),
            _ => None,
        })
        .unwrap_or(local.map(|l| l.default_vni).unwrap_or(1));
    let src_vtep = ms
        .iter()
        .find_map(|m| match m {
            Match::TunSrc { value, .. } => Some(IpAddr::V4(*value)),
            _ => None,
        })
        .or(t.nodes.first().map(|n| n.vtep))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let tunnel = from_tunnel.then_some(Tunnel {
        vni,
        src: src_vtep,
        dst: vtep,
    });
    let first = FlowKey::extract(&frame, in_port, tunnel);

    // The flow tables, every lookup and step recorded.
    let log = RefCell::new(Vec::new());
    let mut key = first;
    let end = t
        .flows
        .as_ref()
        .map(|fs| resolve_into(fs, &mut key, &mut StepLog(&log), &mut LookupLog(&log)));
    let evs = log.into_inner();

    // Then the real pipeline, with nothing sent.
    let counters = WorkerCounters::default();
    let mut p = Pipeline::new(a.cfg.clone());
    p.set_now_ms(crate::clock::now_ms());
    let mut rec = Recorder::keeping();
    if from_tunnel {
        let mut pkt = vec![0x08, 0, 0, 0];
        pkt.extend_from_slice(&(vni << 8).to_be_bytes());
        pkt.extend_from_slice(&frame);
        let mut buf = PacketBuf::from_frame(&pkt);
        p.from_tunnel(
            t,
            &counters,
            SocketAddr::new(src_vtep, a.vxlan_port),
            Some(vtep),
            &mut buf,
            &mut rec,
        );
    } else {
        let mut buf = PacketBuf::from_frame(&frame);
        p.from_port(t, &counters, in_port, &mut buf, &mut rec);
    }
    let datapath: Vec<String> = rec
        .outputs
        .iter()
        .filter_map(|(act, f)| datapath_action(t, a, act, f))
        .collect();
    // What the built-in forwarding sent: the pipeline's outputs less one for each output
    // the flows made themselves.
    let mut explicit: Vec<Option<PortNo>> = evs
        .iter()
        .filter_map(|e| match e {
            Ev::Step(Step::Output(p)) => Some(Some(*p)),
            Ev::Step(Step::Tunnel { .. }) => Some(None),
            _ => None,
        })
        .collect();
    let forwarded: Vec<String> = rec
        .outputs
        .iter()
        .filter(|(act, _)| {
            let made = match act {
                Action::Output(n) => explicit.iter().position(|e| *e == Some(*n)),
                Action::Encap { .. } => explicit.iter().position(|e| e.is_none()),
                _ => None,
            };
            match made {
                Some(i) => {
                    explicit.swap_remove(i);
                    false
                }
                None => true,
            }
        })
        .filter_map(|(act, _)| match act {
            Action::Output(n) => Some(format!("forwarding to port {n} ({})", name(*n))),
            Action::Encap { node, .. } => t
                .node(*node)
                .map(|n| format!("tunneling to {} ({})", n.vtep, n.name)),
            _ => None,
        })
        .collect();

    // Why the switch dropped what the tables sent somewhere (or never let them act).
    let mut dropped: Vec<&str> = crate::counters::DropReason::ALL
        .iter()
        .filter(|r| counters.drops[**r as usize].get() > 0)
        .map(|r| r.name())
        .collect();
    for (act, _) in &rec.outputs {
        if let Action::Drop(r) = act {
            if !dropped.contains(&r.name()) {
                dropped.push(r.name());
            }
        }
    }
    let tables_output = evs.iter().any(|e| {
        matches!(
            e,
            Ev::Step(Step::Output(_) | Step::Tunnel { .. } | Step::Normal | Step::Flood)
        )
    });

    let mut out = String::new();
    out.push_str(&format!("Flow: {}\n\n", format_key(&first, None)));
    let title = format!("bridge(\"{}\")", a.bridge);
    out.push_str(&format!("{title}\n{}\n", "-".repeat(title.len())));
    let mut r = Render {
        evs: &evs,
        used: vec![false; evs.len()],
        pos: 0,
        lines: Vec::new(),
        in_port,
        forwarded: &forwarded,
        resolve: a.resolve,
        key: first,
    };
    match end {
        None => r
            .lines
            .push((0, " 0. No flow tables: the built-in forwarding".into())),
        Some(_) if evs.is_empty() => r.lines.push((0, " 0. No match.".into())),
        Some(_) => {
            r.table(0, 0);
        }
    }
    match end {
        Some(End::TooDeep) => r.lines.push((
            0,
            format!(
                " >>>> resubmit/goto_table nested deeper than {MAX_DEPTH}: the packet is \
                 dropped (resubmit_depth) <<<<"
            ),
        )),
        Some(End::TooManyResubmits) => r.lines.push((
            0,
            format!(
                " >>>> more than {MAX_RESUBMITS} table lookups for one packet: the packet \
                 is dropped (resubmit_limit) <<<<"
            ),
        )),
        _ => {}
    }
    if datapath.is_empty() && tables_output && !dropped.is_empty() {
        r.lines.push((
            0,
            format!(" >> the switch drops the packet: {}", dropped.join(", ")),
        ));
    }
    for (indent, text) in &r.lines {
        out.push_str(&" ".repeat(*indent));
        out.push_str(text);
        out.push('\n');
    }
    out.push('\n');
    if key == first {
        out.push_str("Final flow: unchanged\n");
    } else {
        out.push_str(&format!("Final flow: {}\n", format_key(&key, None)));
    }
    // The megaflow: what the matched flows looked at (in_port and dl_type always).
    let mut mask = FlowKey::default();
    mask.set(key::IN_PORT, u64::MAX);
    mask.set(key::DL_TYPE, u64::MAX);
    for e in &evs {
        if let Ev::Lookup { rule: Some(r), .. } = e {
            let m = &r.1;
            for (w, mw) in mask.0.iter_mut().zip(m.0.iter()) {
                *w |= mw;
            }
        }
    }
    out.push_str(&format!(
        "Megaflow: recirc_id=0,eth,{}\n",
        format_key(&first, Some(&mask))
    ));
    out.push_str(&format!(
        "Datapath actions: {}\n",
        if datapath.is_empty() {
            "drop".to_string()
        } else {
            datapath.join(",")
        }
    ));
    out
}

/// One datapath action as OVS prints it: a port number, or a `tnl_push` for an encapsulation.
fn datapath_action(t: &Tables, a: &TraceArgs<'_>, act: &Action, f: &[u8]) -> Option<String> {
    match act {
        Action::Output(n) => Some(n.to_string()),
        Action::Encap {
            node,
            src_port,
            ttl,
            ..
        } => {
            let n = t.node(*node)?;
            let vni = if f.len() >= 8 {
                u32::from_be_bytes([0, f[4], f[5], f[6]])
            } else {
                0
            };
            let src_port = crate::io::udp::pool_port(
                a.cfg.src_port_min,
                a.cfg.src_port_max,
                a.cfg.src_ports,
                *src_port,
            );
            let src = t
                .local
                .as_ref()
                .map(|l| l.vtep)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let ip = match n.vtep {
                IpAddr::V4(d) => format!("ipv4(src={src},dst={d},proto=17,ttl={ttl},frag=0x4000)"),
                IpAddr::V6(d) => format!("ipv6(src={src},dst={d},proto=17,hlimit={ttl})"),
            };
            Some(format!(
                "tnl_push(tnl_port({PORT_TUNNEL}),header({ip},udp(src={src_port},dst={}),\
                 vxlan(flags=0x8000000,vni={vni:#x})),out_port({PORT_TUNNEL}))",
                a.vxlan_port
            ))
        }
        _ => None,
    }
}

struct Render<'a> {
    evs: &'a [Ev],
    /// Steps already shown under an action.
    used: Vec<bool>,
    /// The next event to look at.
    pos: usize,
    lines: Vec<(usize, String)>,
    in_port: PortNo,
    /// What the built-in forwarding did (for `normal` and `flood`).
    forwarded: &'a [String],
    resolve: &'a dyn Fn(&PortRef) -> Option<PortNo>,
    /// The packet's fields as the flows shown so far left them (for `-> ... is now ...`).
    key: FlowKey,
}

/// Bits `start..=end` set.
fn bits(start: u8, end: u8) -> u64 {
    let width = u32::from(end.saturating_sub(start)) + 1;
    let ones = if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    ones.checked_shl(u32::from(start)).unwrap_or(0)
}

fn read_range(k: &FlowKey, r: &FieldRange) -> u64 {
    if r.end < r.start || r.end > 63 {
        return 0;
    }
    (k.get(key::field_slot(r.field)) & bits(r.start, r.end)) >> r.start
}

fn write_range(k: &mut FlowKey, r: &FieldRange, v: u64) {
    if r.end < r.start || r.end > 63 {
        return;
    }
    let s = key::field_slot(r.field);
    let m = bits(r.start, r.end);
    k.set(s, (k.get(s) & !m) | ((v << r.start) & m));
}

impl Render<'_> {
    /// Carries out an action's change of the packet's fields on [`Render::key`]; after a
    /// move, says what the destination now holds, as OVS does.
    fn replay(&mut self, indent: usize, act: &FlowAction, text: &str) {
        match act {
            FlowAction::Load { dst, value } => write_range(&mut self.key, dst, *value),
            FlowAction::SetField { field, value } => {
                write_range(&mut self.key, &FieldRange::whole(*field), *value)
            }
            FlowAction::Move { src, dst } => {
                let v = read_range(&self.key, src);
                write_range(&mut self.key, dst, v);
                let now = read_range(&self.key, dst);
                let name = text.rsplit("->").next().unwrap_or(text);
                self.lines
                    .push((indent + 4, format!(" -> {name} is now {now:#x}")));
            }
            _ => {}
        }
    }

    /// The next lookup from `pos` on, if any.
    fn next_lookup(&self) -> Option<usize> {
        (self.pos..self.evs.len()).find(|&i| matches!(self.evs[i], Ev::Lookup { .. }))
    }

    /// The next output-like step of the current flow (before the next lookup), taken.
    fn take_output(&mut self) -> Option<Step> {
        for i in self.pos..self.evs.len() {
            match self.evs[i] {
                Ev::Lookup { .. } => return None,
                Ev::Step(
                    s @ (Step::Output(_) | Step::Tunnel { .. } | Step::Normal | Step::Flood),
                ) if !self.used[i] => {
                    self.used[i] = true;
                    return Some(s);
                }
                Ev::Step(_) => {}
            }
        }
        None
    }

    /// Prints the lookup at the next lookup event, its actions below it, and the tables its
    /// resubmits lead to, indented as OVS indents its trace tree: a node at `level` is
    /// printed at `(level + more) * 4` where `more` says whether more actions follow it in its
    /// parent flow, and its children are at level `level + 2 * more` (actions one step in).
    fn table(&mut self, level: usize, more: usize) {
        let head_indent = (level + more) * 4;
        let sub = level + 2 * more;
        // Actions are printed at `indent + 4`.
        let indent = sub * 4;
        let Some(at) = self.next_lookup() else {
            return;
        };
        self.pos = at + 1;
        let Ev::Lookup {
            table,
            depth,
            rule,
            miss,
        } = &self.evs[at]
        else {
            return;
        };
        let (table, depth, miss) = (*table, *depth, *miss);
        let Some(spec) = rule.as_ref().map(|r| &r.0) else {
            self.lines
                .push((head_indent, format!("{table:2}. No match.")));
            match miss {
                TableMiss::Drop => self.lines.push((indent + 4, "drop".into())),
                TableMiss::Normal => {
                    self.lines
                        .push((indent + 4, "table miss: the built-in forwarding".into()));
                    self.forwarding_details(indent);
                }
                TableMiss::Continue => {
                    self.lines.push((
                        indent + 4,
                        format!("table miss: continuing to table {}", table as u16 + 1),
                    ));
                    self.table(sub, 0);
                }
            }
            return;
        };
        let matches: Vec<Match> = spec
            .matches
            .iter()
            .map(|m| match m {
                Match::InPort { port } => Match::InPort {
                    port: numbered(port, self.resolve),
                },
                other => other.clone(),
            })
            .collect();
        let m = format_match(&matches);
        let mut head = format!("{table:2}. ");
        if !m.is_empty() {
            head.push_str(&m);
            head.push_str(", ");
        }
        head.push_str(&format!("priority {}", spec.priority));
        if spec.cookie != 0 {
            head.push_str(&format!(", cookie {:#x}", spec.cookie));
        }
        self.lines.push((head_indent, head));
        if spec.actions.is_empty() {
            self.lines.push((indent + 4, "drop".into()));
            return;
        }
        let n = spec.actions.len();
        for (i, act) in spec.actions.iter().enumerate() {
            let text = match act {
                FlowAction::Output { port } => format_action(&FlowAction::Output {
                    port: numbered(port, self.resolve),
                }),
                FlowAction::Resubmit {
                    in_port: Some(p),
                    table,
                } => format_action(&FlowAction::Resubmit {
                    in_port: Some(numbered(p, self.resolve)),
                    table: *table,
                }),
                other => format_action(other),
            };
            self.lines.push((indent + 4, text.clone()));
            self.replay(indent, act, &text);
            match act {
                FlowAction::Resubmit { .. } | FlowAction::GotoTable { .. } => {
                    let nested = self.next_lookup().is_some_and(
                        |j| matches!(self.evs[j], Ev::Lookup { depth: d, .. } if d == depth + 1),
                    );
                    if nested {
                        // A flow's last action continues on the same level, as in OVS.
                        let last = i + 1 == n
                            || matches!(act, FlowAction::GotoTable { .. })
                                && spec.actions[i + 1..]
                                    .iter()
                                    .all(|a| matches!(a, FlowAction::GotoTable { .. }));
                        self.table(sub, usize::from(!last));
                    }
                }
                FlowAction::Drop => break,
                FlowAction::Group { .. } => {
                    // The group's outputs, indented as OVS prints a bucket's actions (the
                    // bucket's edits are not shown). A group last in its flow owns every
                    // output that follows; elsewhere, one.
                    let mut taken = 0;
                    while let Some(s) = self.take_output() {
                        match s {
                            Step::Output(p) => self.lines.push((indent + 8, format!("output:{p}"))),
                            other => self.output_details(indent + 4, "", other),
                        }
                        taken += 1;
                        if i + 1 < n && taken == 1 {
                            break;
                        }
                    }
                }
                _ => {
                    let outputs = text.starts_with("output:")
                        || matches!(act, FlowAction::Normal | FlowAction::Flood);
                    if outputs {
                        if let Some(s) = self.take_output() {
                            self.output_details(indent, &text, s);
                        }
                    }
                }
            }
        }
    }

    fn forwarding_details(&mut self, indent: usize) {
        if self.forwarded.is_empty() {
            self.lines.push((
                indent + 4,
                " >> the built-in forwarding drops the packet".into(),
            ));
        }
        for f in self.forwarded {
            self.lines.push((indent + 4, format!(" -> {f}")));
        }
    }

    fn output_details(&mut self, indent: usize, text: &str, s: Step) {
        match s {
            Step::Output(p) => {
                if text != format!("output:{p}") {
                    self.lines
                        .push((indent + 4, format!(" -> output port is {p}")));
                }
                if p == self.in_port {
                    self.lines
                        .push((indent + 4, " >> skipping output to input port".into()));
                }
            }
            Step::Tunnel { vni, dst } => {
                let dst = match dst {
                    IpAddr::V4(a) => format!("tun_dst={a}"),
                    IpAddr::V6(a) => format!("tun_ipv6_dst={a}"),
                };
                self.lines.push((
                    indent + 4,
                    format!(" -> output to native tunnel: tun_id={vni:#x},{dst}"),
                ));
            }
            Step::Normal | Step::Flood => self.forwarding_details(indent),
            _ => {}
        }
    }
}

fn mac(v: u64) -> String {
    let m = key::u64_mac(v);
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn v4(v: u64) -> Ipv4Addr {
    Ipv4Addr::from(v as u32)
}

fn v6(k: &FlowKey, hi: key::Slot, lo: key::Slot) -> Ipv6Addr {
    key::ipv6(k, hi, lo)
}

/// A flow key as OVS prints a flow: every field of the packet's headers (`mask: None`), or
/// only the fields the mask covers, masked ones as `value/mask` (a megaflow).
pub fn format_key(k: &FlowKey, mask: Option<&FlowKey>) -> String {
    let dl_type = k.get(key::DL_TYPE) as u16;
    let proto = k.get(key::NW_PROTO) as u8;
    let wants = |s: key::Slot| mask.is_none_or(|m| m.get(s) != 0);
    let all = |s: key::Slot| u64::MAX >> (64 - s.bits.clamp(1, 64));
    let partial = |s: key::Slot| mask.map(|m| m.get(s)).filter(|&v| v != all(s));
    let proto_known = mask.is_none_or(|m| m.get(key::NW_PROTO) != 0);
    let mut parts: Vec<String> = Vec::new();
    let ip4 = |s: key::Slot| -> String {
        let v = v4(k.get(s));
        match partial(s) {
            None => v.to_string(),
            Some(m) => {
                let m = m as u32;
                if m.leading_ones() + m.trailing_zeros() == 32 {
                    format!("{}/{}", v4(k.get(s) & m as u64), m.leading_ones())
                } else {
                    format!("{}/{}", v4(k.get(s) & m as u64), v4(m as u64))
                }
            }
        }
    };
    let hex = |s: key::Slot| -> String {
        match partial(s) {
            None => format!("{:#x}", k.get(s)),
            Some(m) => format!("{:#x}/{m:#x}", k.get(s) & m),
        }
    };
    let name = match (dl_type, proto_known.then_some(proto)) {
        (0x0800, Some(1)) => Some("icmp"),
        (0x0800, Some(6)) => Some("tcp"),
        (0x0800, Some(17)) => Some("udp"),
        (0x0800, _) => Some("ip"),
        (0x86dd, Some(58)) => Some("icmp6"),
        (0x86dd, Some(6)) => Some("tcp6"),
        (0x86dd, Some(17)) => Some("udp6"),
        (0x86dd, _) => Some("ipv6"),
        (0x0806, _) => Some("arp"),
        _ => None,
    };
    match name {
        Some(n) => parts.push(n.into()),
        None => parts.push(format!("dl_type={dl_type:#06x}")),
    }
    for i in 0..controlplane::flow::REGISTERS {
        let s = key::reg(i);
        let shown = match mask {
            None => k.get(s) != 0,
            Some(m) => m.get(s) != 0,
        };
        if shown {
            parts.push(format!("reg{i}={}", hex(s)));
        }
    }
    let tun = |s: key::Slot| match mask {
        None => k.get(s) != 0,
        Some(m) => m.get(s) != 0,
    };
    if tun(key::TUN_ID) {
        parts.push(format!("tun_id={}", hex(key::TUN_ID)));
    }
    if tun(key::TUN_SRC) {
        parts.push(format!("tun_src={}", ip4(key::TUN_SRC)));
    }
    if tun(key::TUN_DST) {
        parts.push(format!("tun_dst={}", ip4(key::TUN_DST)));
    }
    parts.push(format!("in_port={}", k.get(key::IN_PORT)));
    if mask.is_none() {
        parts.push(format!("vlan_tci={:#06x}", k.get(key::DL_VLAN)));
    } else if wants(key::DL_VLAN) {
        parts.push(format!("vlan_tci={}", hex(key::DL_VLAN)));
    }
    if wants(key::DL_SRC) {
        parts.push(format!("dl_src={}", mac(k.get(key::DL_SRC))));
    }
    if wants(key::DL_DST) {
        parts.push(format!("dl_dst={}", mac(k.get(key::DL_DST))));
    }
    let full = mask.is_none();
    match dl_type {
        0x0806 => {
            if wants(key::NW_SRC) {
                parts.push(format!("arp_spa={}", ip4(key::NW_SRC)));
            }
            if wants(key::NW_DST) {
                parts.push(format!("arp_tpa={}", ip4(key::NW_DST)));
            }
            if wants(key::ARP_OP) {
                parts.push(format!("arp_op={}", k.get(key::ARP_OP)));
            }
            if wants(key::ARP_SHA) {
                parts.push(format!("arp_sha={}", mac(k.get(key::ARP_SHA))));
            }
            if wants(key::ARP_THA) {
                parts.push(format!("arp_tha={}", mac(k.get(key::ARP_THA))));
            }
        }
        0x0800 | 0x86dd => {
            if dl_type == 0x0800 {
                if wants(key::NW_SRC) {
                    parts.push(format!("nw_src={}", ip4(key::NW_SRC)));
                }
                if wants(key::NW_DST) {
                    parts.push(format!("nw_dst={}", ip4(key::NW_DST)));
                }
            } else {
                if wants(key::IPV6_SRC_HI) || wants(key::IPV6_SRC_LO) {
                    let a = v6(k, key::IPV6_SRC_HI, key::IPV6_SRC_LO);
                    parts.push(format!("ipv6_src={a}"));
                }
                if wants(key::IPV6_DST_HI) || wants(key::IPV6_DST_LO) {
                    let a = v6(k, key::IPV6_DST_HI, key::IPV6_DST_LO);
                    parts.push(format!("ipv6_dst={a}"));
                }
                if full {
                    parts.push("ipv6_label=0x00000".into());
                }
            }
            if full && !matches!(proto, 1 | 6 | 17 | 58) {
                parts.push(format!("nw_proto={proto}"));
            }
            if full {
                parts.push("nw_tos=0".into());
                parts.push("nw_ecn=0".into());
            }
            if wants(key::NW_TTL) {
                parts.push(format!("nw_ttl={}", k.get(key::NW_TTL)));
            }
            parts.push("nw_frag=no".into());
            match proto {
                1 | 58 => {
                    if wants(key::ICMP_TYPE) {
                        parts.push(format!("icmp_type={}", k.get(key::ICMP_TYPE)));
                    }
                    if wants(key::ICMP_CODE) {
                        parts.push(format!("icmp_code={}", k.get(key::ICMP_CODE)));
                    }
                }
                6 | 17 => {
                    if wants(key::TP_SRC) {
                        parts.push(format!("tp_src={}", k.get(key::TP_SRC)));
                    }
                    if wants(key::TP_DST) {
                        parts.push(format!("tp_dst={}", k.get(key::TP_DST)));
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
    parts.join(",")
}
