//! The commands the unixctl socket serves, with OVS's names, arguments, texts and errors.

use controlplane::flow::{Match, PortRef};
use controlplane::proto::{FdbTarget, PORT_TUNNEL};

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

/// `fdb/show BRIDGE`: the switch's MAC entries in OVS's table shape. Pods' MACs are on their
/// ports, remote pods' on the tunnel port (1); every entry is configured, not learned, so its
/// age is `static`. The VLAN column is 0: entries belong to VNIs, not VLANs.
fn fdb_show(sw: &Switch, cx: &Context, bridge: &str) -> Result<String, String> {
    if bridge != cx.bridge {
        return Err("no such bridge".into());
    }
    let fdb = sw.fdb();
    let mut s = String::from(" port  VLAN  MAC                Age\n");
    for e in &fdb.entries {
        let port = match &e.target {
            FdbTarget::Port { no, .. } => *no,
            FdbTarget::Node { .. } => PORT_TUNNEL,
        };
        s.push_str(&format!("{port:>5}  {:>4}  {}  static\n", 0, e.mac));
    }
    Ok(s)
}

/// `ofproto/trace BRIDGE FLOW [-generate]`.
fn trace(sw: &Switch, cx: &Context, args: &[String]) -> Result<String, String> {
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
    let (port, mut ms): (PortRef, Vec<Match>) = controlplane::flow_syntax::parse_trace(flow)
        .map_err(|e| format!("Bad openflow flow syntax: {flow}: {}", e.message))?;
    controlplane::flow_syntax::canonicalize(&mut ms);
    let done = sw.with_tables(|t, cfg, resolve, name| {
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
        };
        Ok(super::trace::ofproto_trace(t, &a, name))
    });
    done.unwrap_or_else(|| Err("the switch is shutting down".into()))
}
