//! The commands the unixctl socket serves, with OVS's names, arguments, texts and errors.

use controlplane::flow::{Match, PortRef};
use controlplane::proto::{FdbRepr, FdbTarget, PORT_TUNNEL};

use crate::fib::{PortNo, Tables};
use crate::pipeline::PipelineConfig;

use crate::switch::Switch;

/// A command: name, usage (as `list-commands` shows it), fewest and most arguments.
pub struct Command {
    pub name: &'static str,
    pub usage: &'static str,
    pub min: usize,
    pub max: usize,
}

/// Every command, sorted by name (as `list-commands` prints them).
pub const COMMANDS: &[Command] = &[
    Command {
        name: "exit",
        usage: "[--cleanup]",
        min: 0,
        max: 1,
    },
    Command {
        name: "fdb/show",
        usage: "bridge",
        min: 1,
        max: 1,
    },
    Command {
        name: "list-commands",
        usage: "",
        min: 0,
        max: 0,
    },
    Command {
        name: "ofproto/list",
        usage: "",
        min: 0,
        max: 0,
    },
    Command {
        name: "ofproto/trace",
        usage: "bridge br_flow [-generate]",
        min: 1,
        max: 3,
    },
    Command {
        name: "set-options",
        usage: "[--format text]",
        min: 1,
        max: 2,
    },
    Command {
        name: "version",
        usage: "",
        min: 0,
        max: 0,
    },
];

/// What the daemon knows besides the switch.
#[derive(Debug, Clone)]
pub struct Context {
    /// The bridge name OVS's tools use for this switch (`br0`).
    pub bridge: String,
    /// The VXLAN UDP port (shown in traces' datapath actions).
    pub vxlan_port: u16,
}

/// What a command asks of the server besides its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// Reply, then stop the daemon as SIGTERM does.
    Exit,
}

/// Runs a command: the reply text (`Ok`) or the error text (`Err`).
pub fn run(
    sw: &Switch,
    cx: &Context,
    method: &str,
    args: &[String],
) -> (Result<String, String>, After) {
    let Some(c) = COMMANDS.iter().find(|c| c.name == method) else {
        return (
            Err(format!(
                "\"{method}\" is not a valid command (use \"list-commands\" to see a list of \
                 valid commands)"
            )),
            After::Nothing,
        );
    };
    if args.len() < c.min {
        return (
            Err(format!(
                "\"{method}\" command requires at least {} arguments",
                c.min
            )),
            After::Nothing,
        );
    }
    if args.len() > c.max {
        return (
            Err(format!(
                "\"{method}\" command takes at most {} arguments",
                c.max
            )),
            After::Nothing,
        );
    }
    let r = match method {
        "exit" => {
            return match args.first().map(String::as_str) {
                None | Some("--cleanup") => (Ok(String::new()), After::Exit),
                Some(a) => (
                    Err(format!("exit: unknown option {a} (only --cleanup)")),
                    After::Nothing,
                ),
            }
        }
        "list-commands" => Ok(list_commands()),
        "version" => Ok(version()),
        "ofproto/list" => Ok(format!("{}\n", cx.bridge)),
        "fdb/show" => fdb_show(sw, cx, &args[0]),
        "ofproto/trace" => trace(sw, cx, args),
        "set-options" => set_options(args),
        _ => Err(format!("\"{method}\" is not served")),
    };
    (r, After::Nothing)
}

/// `version`: the program and its version, in OVS's shape.
pub fn version() -> String {
    format!("ovs-vswitchd (vxswitch) {}\n", env!("CARGO_PKG_VERSION"))
}

fn list_commands() -> String {
    let mut s = String::from("The available commands are:\n");
    for c in COMMANDS {
        s.push_str(&format!("  {:<23} {}\n", c.name, c.usage));
    }
    s
}

fn set_options(args: &[String]) -> Result<String, String> {
    match args {
        [f, v] if f == "--format" && v.eq_ignore_ascii_case("text") => Ok(String::new()),
        [f, v] if f == "--format" => Err(format!(
            "option format has invalid value {v} (vxswitchd replies in text only)"
        )),
        _ => Err(format!("set-options: unknown option {}", args.join(" "))),
    }
}

/// `fdb/show BRIDGE`.
fn fdb_show(sw: &Switch, cx: &Context, bridge: &str) -> Result<String, String> {
    if bridge != cx.bridge {
        return Err("no such bridge".into());
    }
    Ok(fdb_text(&sw.fdb()))
}

/// The switch's MAC entries in OVS's table shape. Pods' MACs are on their ports, remote
/// pods' on the tunnel port (1); every entry is configured, not learned, so its age is
/// `static`. The VLAN column is 0: entries belong to VNIs, not VLANs.
pub fn fdb_text(fdb: &FdbRepr) -> String {
    let mut s = String::from(" port  VLAN  MAC                Age\n");
    for e in &fdb.entries {
        let port = match &e.target {
            FdbTarget::Port { no, .. } => *no,
            FdbTarget::Node { .. } => PORT_TUNNEL,
        };
        s.push_str(&format!("{port:>5}  {:>4}  {}  static\n", 0, e.mac));
    }
    s
}

/// `ofproto/trace BRIDGE FLOW [-generate]`.
fn trace(sw: &Switch, cx: &Context, args: &[String]) -> Result<String, String> {
    sw.with_tables(|t, cfg, resolve, name| trace_text(t, cfg, resolve, name, cx, args))
        .unwrap_or_else(|| Err("the switch is shutting down".into()))
}

/// `ofproto/trace`'s reply on these tables.
pub fn trace_text(
    t: &Tables,
    cfg: &PipelineConfig,
    resolve: &dyn Fn(&PortRef) -> Option<PortNo>,
    name: &dyn Fn(PortNo) -> String,
    cx: &Context,
    args: &[String],
) -> Result<String, String> {
    let (bridge, flow) = match args {
        [one] => {
            return Err(format!(
                "syntax error at {one} (or the bridge name was omitted)"
            ))
        }
        [b, f] => (b, f),
        [b, f, g] if g == "-generate" => (b, f),
        [_, _, other] => {
            return Err(format!(
                "{other}: only -generate is accepted after the flow (vxswitchd traces flows, \
                 not packets given in hex)"
            ))
        }
        _ => return Err("\"ofproto/trace\" command takes at most 3 arguments".into()),
    };
    if *bridge != cx.bridge {
        return Err(format!("{bridge}: unknown bridge"));
    }
    // The datapath's own metadata (OVS needs dp_hash to trace a select group): vxswitch picks
    // a select group's bucket by a hash of the flow itself, so these say nothing here.
    let fields: Vec<&str> = flow
        .split(',')
        .filter(|f| !f.starts_with("dp_hash=") && !f.starts_with("recirc_id="))
        .collect();
    let (port, mut ms): (PortRef, Vec<Match>) =
        controlplane::flow_syntax::parse_trace(&fields.join(","))
            .map_err(|e| format!("Bad openflow flow syntax: {flow}: {}", e.message))?;
    controlplane::flow_syntax::canonicalize(&mut ms);
    let in_port = match resolve(&port) {
        Some(n) => n,
        None => match port {
            PortRef::Number(n) => n,
            PortRef::Name(ref n) => {
                return Err(format!(
                    "Bad openflow flow syntax: {flow}: {n}: unknown port"
                ))
            }
        },
    };
    let a = super::trace::TraceArgs {
        bridge,
        in_port,
        matches: &ms,
        cfg,
        vxlan_port: cx.vxlan_port,
        resolve,
    };
    Ok(super::trace::ofproto_trace(t, &a, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use controlplane::flow::FlowAction;
    use controlplane::proto::{FdbEntry, MacAddr};

    /// The program of the reference run against OVS 3.1 (see `expected` in each test), on the
    /// sample node: pods 10.1.1.2-4 on ports 3-5, node n2 (10.1.2.0/24) at 198.51.100.2.
    const FLOWS: &str = "\
table=0,priority=200,in_port=1,tun_src=198.51.100.2,actions=move:NXM_NX_TUN_ID[0..23]->NXM_NX_REG0[0..23],resubmit(,10)
table=0,priority=100,in_port=4,ip,nw_src=10.1.1.3,actions=load:0x5->NXM_NX_REG0[],resubmit(,10)
table=0,priority=100,in_port=4,arp,actions=goto_table:10
table=10,cookie=0x1234,priority=100,ip,nw_dst=10.1.2.0/24,actions=move:NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23],set_field:198.51.100.2->tun_dst,output:1
table=10,priority=100,ip,nw_dst=10.1.1.4,actions=output:5
table=10,priority=50,arp,arp_tpa=10.1.1.3,actions=output:4
table=10,priority=0,actions=drop
";

    fn cx() -> Context {
        Context {
            bridge: "br0".into(),
            vxlan_port: 4789,
        }
    }

    fn tables() -> Tables {
        let mut t = crate::sample::tables(0);
        let flows = controlplane::flow_syntax::parse_flows_file(FLOWS).expect("flows parse");
        let flows: Vec<_> = flows
            .into_iter()
            .enumerate()
            .map(|(i, f)| (i as u32, f))
            .collect();
        t.flows = Some(std::sync::Arc::new(crate::flow::FlowSet::build(
            1,
            &flows,
            &[],
            &|p| match p {
                PortRef::Number(n) => Some(*n),
                PortRef::Name(_) => None,
            },
        )));
        t
    }

    fn trace(args: &[&str]) -> Result<String, String> {
        let t = tables();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        trace_text(
            &t,
            &PipelineConfig::default(),
            &|p| match p {
                PortRef::Number(n) => Some(*n),
                PortRef::Name(n) if n == "vxlan0" => Some(1),
                PortRef::Name(_) => None,
            },
            &|n| format!("p{n}"),
            &cx(),
            &args,
        )
    }

    /// An action line as the trace prints it: four spaces and the action as a dump prints it.
    fn act(a: &str) -> String {
        let f = controlplane::flow_syntax::parse_flow(&format!("actions={a}")).unwrap();
        format!(
            "    {}",
            controlplane::flow_syntax::format_action(&f.actions[0])
        )
    }

    /// The line after a move: its destination as the dump prints it, and the value.
    fn is_now(a: &str, v: u64) -> String {
        let text = act(a);
        let dst = text.rsplit("->").next().unwrap().to_string();
        format!("     -> {dst} is now {v:#x}")
    }

    /// The lines between the `-----` rule and the blank line before "Final flow".
    fn table_lines(text: &str) -> Vec<&str> {
        text.lines()
            .skip_while(|l| !l.starts_with("---"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect()
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in\n{text}"))
    }

    #[test]
    fn a_pod_to_a_remote_node_is_traced_as_ovs_traces_it() {
        let text = trace(&["br0", "in_port=4,ip,nw_src=10.1.1.3,nw_dst=10.1.2.5"]).unwrap();
        assert!(
            text.starts_with("Flow: icmp,in_port=4,vlan_tci=0x0000,dl_src=0a:58:0a:01:01:03,"),
            "{text}"
        );
        assert!(
            text.contains("\n\nbridge(\"br0\")\n-------------\n"),
            "{text}"
        );
        assert_eq!(
            table_lines(&text),
            [
                " 0. ip,in_port=4,nw_src=10.1.1.3, priority 100",
                &act("load:0x5->NXM_NX_REG0[]"),
                "    resubmit(,10)",
                "10. ip,nw_dst=10.1.2.0/24, priority 100, cookie 0x1234",
                &act("move:NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23]"),
                &is_now("move:NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23]", 5),
                "    set_field:198.51.100.2->tun_dst",
                "    output:1",
                "     -> output to native tunnel: tun_id=0x5,tun_dst=198.51.100.2",
            ],
            "{text}"
        );
        let fin = line(&text, "Final flow: ");
        assert!(
            fin.contains(",reg0=0x5,tun_id=0x5,tun_dst=198.51.100.2,in_port=4,"),
            "{fin}"
        );
        assert_eq!(
            line(&text, "Megaflow: "),
            "Megaflow: recirc_id=0,eth,ip,in_port=4,nw_src=10.1.1.3,nw_dst=10.1.2.0/24,nw_frag=no"
        );
        let dp = line(&text, "Datapath actions: ");
        assert!(
            dp.starts_with("Datapath actions: tnl_push(tnl_port(1),header(ipv4(src=198.51.100.1,dst=198.51.100.2,")
                && dp.contains("udp(src=")
                && dp.contains(",dst=4789),vxlan(flags=0x8000000,vni=0x5)),out_port(1))"),
            "{dp}"
        );
    }

    #[test]
    fn a_table_miss_is_no_match_and_drop() {
        let text = trace(&["br0", "in_port=4,ip,nw_src=10.1.1.9,nw_dst=10.1.1.4"]).unwrap();
        assert_eq!(table_lines(&text), [" 0. No match.", "    drop"], "{text}");
        assert_eq!(line(&text, "Final flow: "), "Final flow: unchanged");
        assert_eq!(line(&text, "Datapath actions: "), "Datapath actions: drop");
    }

    #[test]
    fn a_drop_flow_prints_its_priority_alone_and_drop() {
        let text = trace(&["br0", "in_port=4,icmp,nw_src=10.1.1.3,nw_dst=10.1.9.9"]).unwrap();
        let lines = table_lines(&text);
        assert_eq!(lines[3..], ["10. priority 0", "    drop"], "{text}");
        assert_eq!(line(&text, "Datapath actions: "), "Datapath actions: drop");
    }

    #[test]
    fn arp_from_the_tunnel_reaches_its_pod() {
        let text = trace(&[
            "br0",
            "in_port=1,tun_id=0x1,tun_src=198.51.100.2,arp,arp_tpa=10.1.1.3,arp_op=1",
            "-generate",
        ])
        .unwrap();
        assert!(
            text.starts_with(
                "Flow: arp,tun_id=0x1,tun_src=198.51.100.2,tun_dst=198.51.100.1,in_port=1,"
            ),
            "{text}"
        );
        assert_eq!(
            table_lines(&text),
            [
                " 0. tun_src=198.51.100.2,in_port=1, priority 200",
                &act("move:NXM_NX_TUN_ID[0..23]->NXM_NX_REG0[0..23]"),
                &is_now("move:NXM_NX_TUN_ID[0..23]->NXM_NX_REG0[0..23]", 1),
                "    resubmit(,10)",
                "10. arp,arp_tpa=10.1.1.3, priority 50",
                "    output:4",
            ],
            "{text}"
        );
        assert_eq!(line(&text, "Datapath actions: "), "Datapath actions: 4");
    }

    #[test]
    fn a_packet_the_switch_refuses_says_why() {
        // VNI 5 is no VNI of this node: the switch drops it before the flow tables act.
        let text = trace(&[
            "br0",
            "in_port=1,tun_id=0x5,tun_src=198.51.100.2,arp,arp_tpa=10.1.1.3,arp_op=1",
        ])
        .unwrap();
        assert_eq!(
            table_lines(&text).last().copied(),
            Some(" >> the switch drops the packet: unknown_vni"),
            "{text}"
        );
        assert_eq!(line(&text, "Datapath actions: "), "Datapath actions: drop");
    }

    #[test]
    fn output_to_the_input_port_is_skipped_as_in_ovs() {
        let text = trace(&["br0", "in_port=4,arp,arp_tpa=10.1.1.3,arp_op=1"]).unwrap();
        assert_eq!(
            table_lines(&text),
            [
                " 0. arp,in_port=4, priority 100",
                "    goto_table:10",
                "10. arp,arp_tpa=10.1.1.3, priority 50",
                "    output:4",
                "     >> skipping output to input port",
                " >> the switch drops the packet: hairpin",
            ],
            "{text}"
        );
        assert_eq!(line(&text, "Final flow: "), "Final flow: unchanged");
        assert_eq!(line(&text, "Datapath actions: "), "Datapath actions: drop");
    }

    #[test]
    fn nested_resubmits_are_indented_as_ovs_indents_them() {
        // OVS 3.1's trace of this program (ports 3 and 4 internal, nothing learned):
        //  0. ip,in_port=3, priority 100
        //     resubmit(,10)
        //     10. ip, priority 100
        //             resubmit(,30)
        //             30. ip, priority 100
        //                     load:0x2->NXM_NX_REG2[]
        //             load:0x1->NXM_NX_REG1[]
        //     output:4
        //     resubmit(,20)
        // 20. ip, priority 100
        //     NORMAL
        //      -> no learned MAC for destination, flooding
        let mut t = crate::sample::tables(0);
        let flows = controlplane::flow_syntax::parse_flows_file(
            "table=0,priority=100,in_port=3,ip,actions=resubmit(,10),output:4,resubmit(,20)
table=10,priority=100,ip,actions=resubmit(,30),load:0x1->NXM_NX_REG1[]
table=20,priority=100,ip,actions=normal
table=30,priority=100,ip,actions=load:0x2->NXM_NX_REG2[]
",
        )
        .unwrap();
        let flows: Vec<_> = flows
            .into_iter()
            .enumerate()
            .map(|(i, f)| (i as u32, f))
            .collect();
        t.flows = Some(std::sync::Arc::new(crate::flow::FlowSet::build(
            1,
            &flows,
            &[],
            &|p| match p {
                PortRef::Number(n) => Some(*n),
                PortRef::Name(_) => None,
            },
        )));
        let args: Vec<String> = ["br0", "in_port=3,ip,nw_src=10.1.1.2,nw_dst=10.1.1.3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let text = trace_text(
            &t,
            &PipelineConfig::default(),
            &|p| match p {
                PortRef::Number(n) => Some(*n),
                PortRef::Name(_) => None,
            },
            &|n| format!("p{n}"),
            &cx(),
            &args,
        )
        .unwrap();
        let lines = table_lines(&text);
        let normal = format!(
            "    {}",
            controlplane::flow_syntax::format_action(&FlowAction::Normal)
        );
        assert_eq!(
            lines[..10],
            [
                " 0. ip,in_port=3, priority 100",
                "    resubmit(,10)",
                "    10. ip, priority 100",
                "            resubmit(,30)",
                "            30. ip, priority 100",
                &format!("                {}", act("load:0x2->NXM_NX_REG2[]")),
                &format!("        {}", act("load:0x1->NXM_NX_REG1[]")),
                "    output:4",
                "    resubmit(,20)",
                "20. ip, priority 100",
            ],
            "{text}"
        );
        assert_eq!(lines[10], normal, "{text}");
        assert_eq!(lines[11..], ["     -> forwarding to port 4 (p4)"], "{text}");
        assert_eq!(line(&text, "Datapath actions: "), "Datapath actions: 4,4");
    }

    #[test]
    fn trace_errors_read_as_ovs_errors() {
        assert_eq!(
            trace(&["br1", "in_port=3"]).unwrap_err(),
            "br1: unknown bridge"
        );
        assert_eq!(
            trace(&["br0"]).unwrap_err(),
            "syntax error at br0 (or the bridge name was omitted)"
        );
        let e = trace(&["br0", "in_port=3,foo=1"]).unwrap_err();
        assert!(
            e.starts_with("Bad openflow flow syntax: in_port=3,foo=1: "),
            "{e}"
        );
        let e = trace(&["br0", "in_port=3,ip", "0a0b"]).unwrap_err();
        assert!(e.contains("-generate"), "{e}");
    }

    #[test]
    fn fdb_show_has_ovs_columns() {
        let fdb = FdbRepr {
            table_version: 1,
            entries: vec![
                FdbEntry {
                    vni: 1,
                    mac: MacAddr([0x0a, 0x58, 10, 1, 1, 2]),
                    ip: None,
                    target: FdbTarget::Port {
                        no: 3,
                        name: "n1p1".into(),
                    },
                },
                FdbEntry {
                    vni: 1,
                    mac: MacAddr([0x0a, 0x58, 10, 1, 2, 2]),
                    ip: None,
                    target: FdbTarget::Node {
                        name: "n2".into(),
                        vtep: "198.51.100.2".parse().unwrap(),
                    },
                },
            ],
            routes: vec![],
        };
        assert_eq!(
            fdb_text(&fdb),
            " port  VLAN  MAC                Age\n    3     0  0a:58:0a:01:01:02  static\n    1     0  0a:58:0a:01:02:02  static\n"
        );
    }

    #[test]
    fn list_commands_and_argument_counts_read_as_ovs() {
        let l = list_commands();
        assert!(l.starts_with("The available commands are:\n"), "{l}");
        assert!(l.contains("\n  fdb/show                bridge\n"), "{l}");
        assert!(l.contains("\n  version                 \n"), "{l}");
        assert_eq!(
            version(),
            format!("ovs-vswitchd (vxswitch) {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}
