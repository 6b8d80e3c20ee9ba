//! vxctl's command line: every subcommand, its flags, and the value parsers that check
//! arguments before anything is sent to vxswitchd.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use controlplane::flow::GroupSpec;
use controlplane::flow_syntax::{self, FlowFilter};
use controlplane::proto::{
    FlowSpec, Ipv4Cidr, Ipv6Cidr, MacAddr, Match, PortRef, PortSpec, RemoteNode, TableMiss, BRIDGE,
    MAX_TABLE, MAX_VNI,
};

const EXAMPLES: &str = "\
Examples:
  vxctl show                                  bridge, local node, ports, nodes, VNIs
  vxctl --json show | jq '.ports[].name'      the same state as JSON
  vxctl fdb                                   MAC/IP forwarding entries and routes
  vxctl stats --watch 1                       counters and per-second rates, every second
  vxctl add-port web1 --netns web1 --mac 0a:58:0a:01:01:0a --ip 10.1.1.10
  vxctl del-port web1
  vxctl add-node n3 --vtep 198.51.100.3 --vtep-mac 02:f1:00:00:00:03 --subnet 10.1.3.0/24
  vxctl del-node n3
  vxctl --socket /tmp/vxswitchd.sock version

Flow tables (ovs-ofctl syntax; `vxctl help-flows` lists the match fields and actions):
  vxctl add-flow br0 'priority=200,tcp,nw_dst=10.1.2.0/24,tp_dst=22,actions=drop'
  vxctl add-flows br0 flows.txt               one bundle: all lines or none
  vxctl mod-flows br0 'in_port=n1p1,actions=goto_table:10'
  vxctl del-flows --strict br0 'priority=200,tcp,nw_dst=10.1.2.0/24,tp_dst=22'
  vxctl replace-flows br0 flows.txt           make the tables exactly the file, atomically
  vxctl diff-flows br0 flows.txt              what replace-flows would change
  vxctl dump-flows br0 'in_port=n1p1'         flows with counters
  vxctl dump-ports br0 n1p1                   port counters, ovs-ofctl style
  vxctl dump-tables br0                       per-table lookups, matches and miss behaviour
  vxctl bundle br0 changes.txt                add/modify/delete lines, all or nothing
  vxctl set-miss br0 10 normal                what table 10 does with a frame no flow matches
  vxctl trace br0 'in_port=n1p1,dl_src=0a:58:0a:01:01:02,ip,nw_dst=10.1.2.3'
  vxctl monitor br0                           flow additions and removals as they happen
  vxctl capture vxlan0 -w tunnel.pcap --count 100   then: tcpdump -nr tunnel.pcap
  vxctl help-flows                            the flow syntax

Objects added with vxctl are owned by the admin: vxagent never changes or removes them, and
vxctl cannot remove what vxagent's file declares (edit the file instead). vxagent owns the flows
with cookie 0xa6e470 and never touches flows with another cookie.

Exit status: 0 on success; 1 when vxswitchd refuses or cannot be reached, when a FILE has a
bad line (FILE:LINE: column C: reason, nothing is sent), and when diff-flows finds differences;
2 for usage errors, which include a FLOW or FILTER argument that does not parse (the column is
shown with a caret) and a bridge other than br0.";

/// Inspect and configure a running vxswitchd.
#[derive(Debug, Parser)]
#[command(name = "vxctl", version, after_help = EXAMPLES)]
pub struct Cli {
    /// vxswitchd's control socket.
    #[arg(long, global = true, value_name = "PATH", default_value = controlplane::DEFAULT_SOCKET, display_order = 100)]
    pub socket: PathBuf,
    /// Print the protocol's structures as JSON instead of tables.
    #[arg(long, global = true, display_order = 101)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the bridge, the local node, ports, remote nodes and the VNIs in use.
    #[command(after_help = "Example:\n  vxctl show\n  vxctl --json show")]
    Show,
    /// Show the forwarding database: MAC/IP entries and routes to remote subnets.
    #[command(after_help = "Example:\n  vxctl fdb")]
    Fdb,
    /// Show per-port counters, drops by reason and events; --watch adds per-second rates.
    #[command(after_help = "Example:\n  vxctl stats\n  vxctl stats --watch 2 --count 5")]
    Stats(StatsArgs),
    /// Attach a pod port (a TAP in the pod's network namespace), owned by the admin.
    #[command(
        after_help = "Example:\n  vxctl add-port web1 --netns web1 --mac 0a:58:0a:01:01:0a --ip 10.1.1.10 --vnid 10"
    )]
    AddPort(AddPortArgs),
    /// Detach an admin-owned pod port and remove its TAP.
    #[command(after_help = "Example:\n  vxctl del-port web1")]
    DelPort {
        /// Port name.
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Add a remote node (its pod subnet behind its VTEP), owned by the admin.
    #[command(
        after_help = "Example:\n  vxctl add-node n3 --vtep 198.51.100.3 --vtep-mac 02:f1:00:00:00:03 --subnet 10.1.3.0/24"
    )]
    AddNode(AddNodeArgs),
    /// Remove an admin-owned remote node.
    #[command(after_help = "Example:\n  vxctl del-node n3")]
    DelNode {
        /// Node name.
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Show this client's protocol version and vxswitchd's hello.
    #[command(after_help = "Example:\n  vxctl version")]
    Version,
    /// Add a flow, or replace the flow with the same table, priority and match.
    #[command(after_help = "Example:\n  \
        vxctl add-flow br0 \"priority=300,in_port=n1p1,dl_src=0a:58:0a:01:01:02,actions=goto_table:10\"\n\n\
        The syntax: vxctl help-flows")]
    AddFlow {
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
        /// The flow, ovs-ofctl style.
        #[arg(value_parser = parse_flow_arg)]
        flow: FlowSpec,
    },
    /// Add the flows of a file (one per line; - reads stdin) in one bundle: all or none.
    #[command(after_help = "Example:\n  vxctl add-flows br0 flows.txt\n  \
        vxctl dump-flows br0 | vxctl add-flows br0 -\n\n\
        A bad line is reported as FILE:LINE: column C: reason and nothing is sent.")]
    AddFlows(FileArgs),
    /// Change the actions (and cookie) of the flows FLOW's match selects.
    #[command(
        after_help = "Example:\n  vxctl mod-flows br0 \"in_port=n1p1,actions=drop\"\n  \
        vxctl mod-flows --strict br0 \"table=0,priority=300,in_port=n1p1,actions=goto_table:10\"\n\n\
        Without --strict every flow of FLOW's table whose match includes FLOW's match changes;\n\
        with --strict only the flow with FLOW's exact priority and match."
    )]
    ModFlows {
        /// Only the flow with exactly this priority and match.
        #[arg(long)]
        strict: bool,
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
        /// The match that selects, and the actions that replace.
        #[arg(value_parser = parse_flow_arg)]
        flow: FlowSpec,
    },
    /// Delete the flows FILTER selects (every flow without a FILTER).
    #[command(after_help = "Example:\n  vxctl del-flows br0 \"in_port=n1p1\"\n  \
        vxctl del-flows br0 \"cookie=0x10/0xff\"\n  \
        vxctl del-flows --strict br0 \"table=0,priority=200,tcp,tp_dst=22\"\n\n\
        Without --strict every flow whose match includes FILTER's is deleted (in every table\n\
        unless table= is given). With --strict, as in OVS, only the flow whose priority and\n\
        match equal FILTER's (priority 32768 when FILTER gives none).")]
    DelFlows {
        /// Only flows with exactly FILTER's priority and match.
        #[arg(long, requires = "filter")]
        strict: bool,
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
        /// [table=N,][priority=P,][cookie=C[/MASK],]MATCH... (no actions).
        #[arg(value_parser = parse_filter_arg)]
        filter: Option<FlowFilter>,
    },
    /// Make the flow tables exactly the flows of a file, atomically.
    #[command(after_help = "Example:\n  vxctl replace-flows br0 flows.txt\n\n\
        Flows equal to ones the switch has keep their counters. vxctl diff-flows shows the\n\
        difference first.")]
    ReplaceFlows(FileArgs),
    /// Show how the switch's flows differ from a file's: - only in the switch, + only in FILE.
    #[command(after_help = "Example:\n  vxctl diff-flows br0 flows.txt\n\n\
        Flows are compared without counters (table, priority, match, cookie, timeouts, actions).\n\
        Exit status: 0 when they are the same, 1 when they differ (or on an error).")]
    DiffFlows(FileArgs),
    /// Print flows with their counters, by table, highest priority first.
    #[command(after_help = "Example:\n  vxctl dump-flows br0\n  \
        vxctl dump-flows --no-stats br0 \"table=0,in_port=n1p1\"\n  \
        vxctl --json dump-flows br0\n\n\
        Each line parses back as a flow (the counters are ignored), so the output can be fed\n\
        to add-flows or replace-flows.")]
    DumpFlows {
        /// Leave out the counters (cookie, duration, n_packets, ...).
        #[arg(long)]
        no_stats: bool,
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
        /// Only flows whose match includes this one ([table=N,][cookie=C/MASK,]MATCH...).
        #[arg(value_parser = parse_filter_arg)]
        filter: Option<FlowFilter>,
    },
    /// Print port counters, ovs-ofctl dump-ports style.
    #[command(
        after_help = "Example:\n  vxctl dump-ports br0\n  vxctl dump-ports br0 n1p1\n\n\
        Counters the switch does not keep are shown as ?."
    )]
    DumpPorts {
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
        /// One port, by number or name.
        #[arg(value_parser = parse_port)]
        port: Option<PortRef>,
    },
    /// Print each table's flow count, lookups, matches and miss behaviour.
    #[command(after_help = "Example:\n  vxctl dump-tables br0")]
    DumpTables {
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
    },
    /// Apply a file of flow changes (add/modify/delete lines) as one bundle: all or none.
    #[command(after_help = "Example:\n  vxctl bundle br0 changes.txt\n\n\
        changes.txt:\n  \
        delete_strict table=0,priority=200,tcp,tp_dst=22\n  \
        add table=0,priority=200,tcp,tp_dst=2222,actions=drop\n\n\
        The line syntax: vxctl help-flows")]
    Bundle(FileArgs),
    /// Set what a table does with a frame no flow matches.
    #[command(after_help = "Example:\n  vxctl set-miss br0 10 normal\n\n\
        drop: drop and count (the default); continue: go on with the next table; normal: the\n\
        switch's built-in forwarding.")]
    SetMiss {
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
        /// Table number.
        #[arg(value_parser = clap::value_parser!(u8).range(0..=MAX_TABLE as i64))]
        table: u8,
        /// What a miss does.
        miss: MissArg,
    },
    /// Show how the flow tables would handle a frame (nothing is sent).
    #[command(after_help = "Example:\n  \
        vxctl trace br0 \"in_port=n1p1,dl_src=0a:58:0a:01:01:02,ip,nw_src=10.1.1.2,nw_dst=10.1.2.3\"\n\n\
        The frame is described by exact field values; in_port is required.")]
    Trace {
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
        /// The frame: in_port=PORT and field values, flow syntax.
        #[arg(value_parser = parse_trace_arg)]
        frame: TraceFrame,
    },
    /// Print flow additions, changes and removals as they happen, until Ctrl-C.
    #[command(
        after_help = "Example:\n  vxctl monitor br0\n  vxctl --json monitor br0 | jq .flow\n\n\
        Exit status 1 when vxswitchd closes the connection (it stopped or restarted)."
    )]
    Monitor {
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
    },
    /// Capture a port's frames: one line each, or a pcap file for tcpdump and Wireshark.
    #[command(after_help = "Example:\n  vxctl capture n1p1 --count 10\n  \
        vxctl capture vxlan0 -w tunnel.pcap --filter \"ip,nw_dst=10.1.2.3\"\n  \
        vxctl capture n1p1 -w - | tcpdump -nr -\n\n\
        Tunnel frames (vxlan0) are written with outer Ethernet/IP/UDP headers made from the\n\
        node's and the peer's VTEP addresses, so tcpdump decodes the VXLAN inside. The file is\n\
        flushed after every frame: Ctrl-C leaves a complete file. Times are UTC.")]
    Capture(CaptureArgs),
    /// Print the flow syntax: match fields, actions, files and bundles.
    #[command(after_help = "Example:\n  vxctl help-flows")]
    HelpFlows,
    /// Add a group (an error if its id exists), ovs-ofctl add-group style.
    #[command(after_help = "Example:\n  \
        vxctl add-group br0 group_id=1,type=select,bucket=weight:100,output:3,bucket=output:4\n\n\
        Types: all (every bucket, each on its own copy of the frame), select (one bucket by a\n\
        hash of the flow, weighted), indirect (its one bucket), ff (fast failover: the first\n\
        bucket whose watch_port is there). Flows run a group with the group:N action.")]
    AddGroup {
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
        /// group_id=N,type=T,bucket=[weight:W,][watch_port:P,]ACTIONS...
        #[arg(value_parser = parse_group_arg)]
        group: GroupSpec,
    },
    /// Replace a group's type and buckets (an error if its id does not exist).
    #[command(after_help = "Example:\n  vxctl mod-group br0 group_id=1,type=all,bucket=output:3")]
    ModGroup {
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
        /// The group, as add-group takes it.
        #[arg(value_parser = parse_group_arg)]
        group: GroupSpec,
    },
    /// Delete one group (or all), and every flow that uses a deleted group.
    #[command(after_help = "Example:\n  vxctl del-groups br0 group_id=1\n  vxctl del-groups br0")]
    DelGroups {
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
        /// group_id=N (or group_id=all; nothing: all groups).
        #[arg(value_parser = parse_group_id_arg)]
        group: Option<GroupId>,
    },
    /// Print the groups, ovs-ofctl -O OpenFlow13 dump-groups style.
    #[command(
        after_help = "Example:\n  vxctl dump-groups br0\n  vxctl dump-groups br0 group_id=1"
    )]
    DumpGroups {
        /// The bridge: br0 (the switch has one).
        #[arg(value_parser = parse_bridge)]
        bridge: String,
        /// group_id=N: that group only.
        #[arg(value_parser = parse_group_id_arg)]
        group: Option<GroupId>,
    },
}

/// A group selection (`group_id=N`; `None`: all groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupId(pub Option<u32>);

fn parse_group_arg(s: &str) -> Result<GroupSpec, String> {
    flow_syntax::group::parse_group(s).map_err(syntax)
}

fn parse_group_id_arg(s: &str) -> Result<GroupId, String> {
    flow_syntax::group::parse_group_id(s)
        .map(GroupId)
        .map_err(syntax)
}

/// A bridge and a file of flows (or changes); `-` is stdin.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// The bridge: br0 (the switch has one).
    #[arg(value_parser = parse_bridge)]
    pub bridge: String,
    /// The file; - reads stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The port, by number or name (vxlan0 is the tunnel).
    #[arg(value_parser = parse_port)]
    pub port: PortRef,
    /// Write a pcap file instead of printing lines; - writes it to stdout.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Stop after N frames.
    #[arg(long, short = 'c', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Only frames matching these exact field values (flow syntax, e.g. "ip,nw_dst=10.1.2.3").
    #[arg(long, value_name = "MATCH", value_parser = parse_match_arg)]
    pub filter: Option<MatchList>,
}

/// What a table miss does, as the command line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MissArg {
    Drop,
    Continue,
    Normal,
}

impl From<MissArg> for TableMiss {
    fn from(m: MissArg) -> TableMiss {
        match m {
            MissArg::Drop => TableMiss::Drop,
            MissArg::Continue => TableMiss::Continue,
            MissArg::Normal => TableMiss::Normal,
        }
    }
}

/// A parsed trace frame: the input port and the field values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceFrame {
    pub in_port: PortRef,
    pub matches: Vec<Match>,
}

/// Match fields without table, priority or actions (a capture filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchList(pub Vec<Match>);

/// The flow commands' BRIDGE: this switch has exactly one.
fn parse_bridge(s: &str) -> Result<String, String> {
    if s == BRIDGE {
        Ok(s.to_string())
    } else {
        Err(format!("no bridge {s}; this switch has {BRIDGE}"))
    }
}

/// `column C: reason`, then the input and a caret on lines of their own (so they line up
/// whatever clap puts before the first line).
fn syntax(e: flow_syntax::ParseError) -> String {
    e.to_string()
}

fn parse_flow_arg(s: &str) -> Result<FlowSpec, String> {
    flow_syntax::parse_flow(s).map_err(syntax)
}

fn parse_filter_arg(s: &str) -> Result<FlowFilter, String> {
    let f = flow_syntax::parse_filter(s).map_err(syntax)?;
    if f.actions.is_some() {
        return Err("a filter selects flows and takes no actions".to_string());
    }
    Ok(f)
}

fn parse_trace_arg(s: &str) -> Result<TraceFrame, String> {
    let (in_port, matches) = flow_syntax::parse_trace(s).map_err(syntax)?;
    Ok(TraceFrame { in_port, matches })
}

fn parse_match_arg(s: &str) -> Result<MatchList, String> {
    let f = flow_syntax::parse_filter(s).map_err(syntax)?;
    let extra = [
        (f.table.is_some(), "table"),
        (f.priority.is_some(), "priority"),
        (f.cookie.is_some(), "cookie"),
        (f.actions.is_some(), "actions"),
    ];
    if let Some((_, what)) = extra.iter().find(|(set, _)| *set) {
        return Err(format!(
            "a capture filter is match fields only; {what} does not belong in it"
        ));
    }
    Ok(MatchList(f.matches))
}

/// A port by number or name.
fn parse_port(s: &str) -> Result<PortRef, String> {
    if s.is_empty() {
        return Err("the port is empty".to_string());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(PortRef::Number)
            .map_err(|_| format!("port number {s} is larger than 65535"));
    }
    parse_name(s).map(PortRef::Name)
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Redraw every SECS seconds (fractions allowed) with per-second rates, until Ctrl-C.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub watch: Option<Duration>,
    /// With --watch: stop after K redraws.
    #[arg(long, value_name = "K", requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct AddPortArgs {
    /// Port name, unique on the node (usually the pod's name).
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The pod's network namespace: a name under /run/netns or an absolute path.
    #[arg(long, value_name = "NS", value_parser = parse_netns)]
    pub netns: String,
    /// The pod's MAC address (unicast).
    #[arg(long, value_parser = parse_unicast_mac)]
    pub mac: MacAddr,
    /// The pod's IPv4 address, inside the node's subnet.
    #[arg(long)]
    pub ip: Ipv4Addr,
    /// The pod's IPv6 address, inside the node's subnet6 (dual stack).
    #[arg(long, value_name = "IP6")]
    pub ip6: Option<Ipv6Addr>,
    /// The pod's VNID (default: the node's VNI).
    #[arg(long, value_name = "N", value_parser = parse_vni)]
    pub vnid: Option<u32>,
    /// Interface name inside the pod [default: eth0].
    #[arg(long, value_name = "NAME", value_parser = parse_ifname)]
    pub ifname: Option<String>,
    /// MTU inside the pod (default: the node's pod MTU).
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u16).range(576..=9000))]
    pub mtu: Option<u16>,
}

impl AddPortArgs {
    pub fn spec(&self) -> PortSpec {
        PortSpec {
            name: self.name.clone(),
            netns: self.netns.clone(),
            mac: self.mac,
            ip: self.ip,
            ip6: self.ip6,
            vnid: self.vnid,
            ifname: self.ifname.clone(),
            mtu: self.mtu,
        }
    }
}

#[derive(Debug, Args)]
pub struct AddNodeArgs {
    /// Node name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The node's underlay (VTEP) address, IPv4 or IPv6.
    #[arg(long, value_name = "IP")]
    pub vtep: IpAddr,
    /// The node's VTEP MAC (unicast).
    #[arg(long, value_name = "MAC", value_parser = parse_unicast_mac)]
    pub vtep_mac: MacAddr,
    /// The node's pod subnet, e.g. 10.1.3.0/24.
    #[arg(long, value_name = "CIDR")]
    pub subnet: Ipv4Cidr,
    /// The node's IPv6 pod prefix, e.g. fd00:10:1:3::/64 (dual stack).
    #[arg(long, value_name = "CIDR6")]
    pub subnet6: Option<Ipv6Cidr>,
}

impl AddNodeArgs {
    pub fn spec(&self) -> RemoteNode {
        RemoteNode {
            name: self.name.clone(),
            vtep: self.vtep,
            vtep_mac: self.vtep_mac,
            subnet: self.subnet,
            subnet6: self.subnet6,
        }
    }
}

/// Same rule as the protocol's object names.
fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "bad name {s:?}: use 1-64 letters, digits, '-', '_' or '.'"
        ))
    }
}

fn parse_netns(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('\0') {
        Err("the network namespace is empty".to_string())
    } else {
        Ok(s.to_string())
    }
}

fn parse_unicast_mac(s: &str) -> Result<MacAddr, String> {
    let mac: MacAddr = s.parse()?;
    if mac.is_unicast() {
        Ok(mac)
    } else {
        Err(format!(
            "MAC {s} is not a unicast address (multicast bit set, or all zeros)"
        ))
    }
}

fn parse_vni(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .parse()
        .map_err(|_| format!("VNID {s:?} is not a number"))?;
    if v > MAX_VNI {
        Err(format!("VNID {v} does not fit in 24 bits (max {MAX_VNI})"))
    } else {
        Ok(v)
    }
}

fn parse_ifname(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 15 || s.contains(['/', ' ', '\0']) {
        Err(format!(
            "bad interface name {s:?}: use 1-15 characters without '/' or spaces"
        ))
    } else {
        Ok(s.to_string())
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs.is_finite() && (0.1..=86400.0).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("{s} seconds is outside 0.1..=86400"))
    }
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("vxctl").chain(args.iter().copied()))
    }

    fn err(args: &[&str]) -> String {
        parse(args).expect_err("must be refused").to_string()
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn globals_work_before_and_after_the_subcommand() {
        let c = parse(&["show"]).unwrap();
        assert_eq!(c.socket, PathBuf::from(controlplane::DEFAULT_SOCKET));
        assert!(!c.json);
        let c = parse(&["--json", "show", "--socket", "/tmp/s"]).unwrap();
        assert!(c.json);
        assert_eq!(c.socket, PathBuf::from("/tmp/s"));
        assert!(matches!(c.command, Command::Show));
    }

    #[test]
    fn add_port_parses_every_flag() {
        let c = parse(&[
            "add-port",
            "web1",
            "--netns",
            "web1",
            "--mac",
            "0a:58:0a:01:01:0a",
            "--ip",
            "10.1.1.10",
            "--vnid",
            "10",
            "--ifname",
            "net0",
            "--mtu",
            "1400",
        ])
        .unwrap();
        let Command::AddPort(a) = c.command else {
            panic!("{:?}", c.command)
        };
        let spec = a.spec();
        assert_eq!(spec.name, "web1");
        assert_eq!(spec.mac.to_string(), "0a:58:0a:01:01:0a");
        assert_eq!(spec.ip, Ipv4Addr::new(10, 1, 1, 10));
        assert_eq!(
            (spec.vnid, spec.ifname.as_deref(), spec.mtu),
            (Some(10), Some("net0"), Some(1400))
        );
        assert!(spec.validate().is_ok());
        let c = parse(&[
            "add-port",
            "w",
            "--netns",
            "/proc/1/ns/net",
            "--mac",
            "02:00:00:00:00:01",
            "--ip",
            "10.1.1.2",
        ])
        .unwrap();
        let Command::AddPort(a) = c.command else {
            panic!()
        };
        assert_eq!((a.vnid, a.ifname, a.mtu), (None, None, None));
    }

    #[test]
    fn bad_arguments_are_refused_naming_the_value() {
        let base = [
            "add-port",
            "web1",
            "--netns",
            "web1",
            "--mac",
            "0a:58:0a:01:01:0a",
            "--ip",
            "10.1.1.10",
        ];
        let with = |flag: &str, value: &str| -> String {
            let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            match v.iter().position(|a| a == flag) {
                Some(i) => v[i + 1] = value.to_string(),
                None => v.extend([flag.to_string(), value.to_string()]),
            }
            err(&v.iter().map(String::as_str).collect::<Vec<_>>())
        };
        for (flag, value, words) in [
            (
                "--mac",
                "0a:58:zz:01:01:0a",
                "bad MAC \"0a:58:zz:01:01:0a\"",
            ),
            ("--mac", "0a:58", "expected 6 octets"),
            ("--mac", "ff:ff:ff:ff:ff:ff", "not a unicast"),
            ("--ip", "10.1.1.300", "10.1.1.300"),
            ("--vnid", "16777216", "24 bits"),
            ("--vnid", "ten", "\"ten\""),
            ("--mtu", "100", "100"),
            ("--ifname", "a/b", "bad interface name"),
        ] {
            let e = with(flag, value);
            assert!(
                e.contains(&format!("'{value}'")) && e.contains(words),
                "{flag} {value}: {e}"
            );
        }
        assert!(err(&[
            "add-port",
            "bad name",
            "--netns",
            "n",
            "--mac",
            "02:00:00:00:00:01",
            "--ip",
            "10.1.1.2"
        ])
        .contains("bad name \"bad name\""));
        let e = parse(&["add-port", "web1", "--netns", "web1", "--ip", "10.1.1.10"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--mac"), "{e}");
    }

    #[test]
    fn add_node_checks_prefix_and_addresses() {
        let ok = [
            "add-node",
            "n3",
            "--vtep",
            "2001:db8::3",
            "--vtep-mac",
            "02:f1:00:00:00:03",
            "--subnet",
            "10.1.3.0/24",
        ];
        let c = parse(&ok).unwrap();
        let Command::AddNode(a) = c.command else {
            panic!()
        };
        assert_eq!(a.spec().subnet.to_string(), "10.1.3.0/24");
        assert!(a.spec().vtep.is_ipv6());
        let mut bad = ok;
        bad[7] = "10.1.3.7/24";
        assert!(err(&bad).contains("host bits"));
        let mut bad = ok;
        bad[3] = "198.51.100";
        assert!(err(&bad).contains("198.51.100"));
        let mut bad = ok;
        bad[5] = "01:00:5e:00:00:01";
        assert!(err(&bad).contains("not a unicast"));
    }

    #[test]
    fn stats_watch_and_count() {
        let c = parse(&["stats", "--watch", "0.5", "--count", "3"]).unwrap();
        let Command::Stats(s) = c.command else {
            panic!()
        };
        assert_eq!(
            (s.watch, s.count),
            (Some(Duration::from_millis(500)), Some(3))
        );
        assert!(err(&["stats", "--count", "3"]).contains("--watch"));
        assert!(err(&["stats", "--watch", "0"]).contains("outside"));
        assert!(err(&["stats", "--watch", "x"]).contains("\"x\""));
    }

    #[test]
    fn help_lists_every_subcommand_with_an_example() {
        let help = Cli::command().render_long_help().to_string();
        let (commands, examples) = help.split_once("Examples:").expect("an Examples section");
        for sub in [
            "show",
            "fdb",
            "stats",
            "add-port",
            "del-port",
            "add-node",
            "del-node",
            "version",
            "add-flow",
            "add-flows",
            "mod-flows",
            "del-flows",
            "replace-flows",
            "diff-flows",
            "dump-flows",
            "dump-ports",
            "dump-tables",
            "bundle",
            "set-miss",
            "trace",
            "monitor",
            "capture",
            "help-flows",
        ] {
            assert!(
                commands.contains(&format!("\n  {sub} ")),
                "{sub} not listed in\n{help}"
            );
            let example = examples.lines().any(|l| {
                l.trim_start().starts_with("vxctl") && l.split_whitespace().any(|w| w == sub)
            });
            assert!(example, "no example of {sub} in\n{examples}");
        }
        let mut cmd = Cli::command();
        for sub in cmd.get_subcommands_mut() {
            let h = sub.render_long_help().to_string();
            assert!(h.contains("Example:"), "{} has no example", sub.get_name());
        }
    }

    #[test]
    fn flow_commands_parse_their_flows_and_filters() {
        let c = parse(&[
            "add-flow",
            "br0",
            "priority=5,ip,nw_dst=10.1.2.0/24,actions=drop",
        ])
        .unwrap();
        let Command::AddFlow { flow, .. } = c.command else {
            panic!("{:?}", c.command)
        };
        assert_eq!((flow.table, flow.priority), (0, 5));
        assert_eq!(flow.actions, vec![controlplane::proto::FlowAction::Drop]);

        let c = parse(&["del-flows", "br0"]).unwrap();
        assert!(matches!(
            c.command,
            Command::DelFlows {
                strict: false,
                filter: None,
                ..
            }
        ));
        let c = parse(&[
            "del-flows",
            "--strict",
            "br0",
            "table=1,priority=7,in_port=n1p1",
        ])
        .unwrap();
        let Command::DelFlows {
            strict: true,
            filter: Some(f),
            ..
        } = c.command
        else {
            panic!("{:?}", c.command)
        };
        assert_eq!(
            (f.table, f.priority, f.matches.len()),
            (Some(1), Some(7), 1)
        );
        // --strict without a filter would delete nothing in particular: refused.
        assert!(err(&["del-flows", "--strict", "br0"]).contains("<FILTER>"));
        assert!(err(&["del-flows", "br0", "in_port=1,actions=drop"]).contains("no actions"));

        let c = parse(&[
            "mod-flows",
            "--strict",
            "br0",
            "in_port=n1p1,actions=normal",
        ])
        .unwrap();
        assert!(matches!(c.command, Command::ModFlows { strict: true, .. }));

        let c = parse(&["dump-flows", "--no-stats", "br0", "cookie=0x10/0xff"]).unwrap();
        let Command::DumpFlows {
            no_stats: true,
            filter: Some(f),
            ..
        } = c.command
        else {
            panic!()
        };
        assert_eq!(f.cookie, Some((0x10, 0xff)));

        let c = parse(&["set-miss", "br0", "10", "continue"]).unwrap();
        assert!(matches!(
            c.command,
            Command::SetMiss {
                table: 10,
                miss: MissArg::Continue,
                ..
            }
        ));
        assert!(err(&["set-miss", "br0", "255", "drop"]).contains("255"));
        assert!(err(&["set-miss", "br0", "1", "flood"]).contains("flood"));

        let c = parse(&["trace", "br0", "in_port=3,ip,nw_dst=10.1.1.3"]).unwrap();
        let Command::Trace { frame, .. } = c.command else {
            panic!()
        };
        assert_eq!(frame.in_port, PortRef::Number(3));
        assert_eq!(frame.matches.len(), 2);
        assert!(err(&["trace", "br0", "ip,nw_dst=10.1.1.3"]).contains("in_port"));

        for (args, port) in [
            (
                &["dump-ports", "br0", "n1p1"][..],
                Some(PortRef::Name("n1p1".into())),
            ),
            (&["dump-ports", "br0", "3"][..], Some(PortRef::Number(3))),
            (&["dump-ports", "br0"][..], None),
        ] {
            let Command::DumpPorts { port: p, .. } = parse(args).unwrap().command else {
                panic!()
            };
            assert_eq!(p, port);
        }
        assert!(err(&["dump-ports", "br0", "99999"]).contains("larger than 65535"));
    }

    #[test]
    fn file_commands_take_a_path_or_stdin() {
        for sub in ["add-flows", "replace-flows", "diff-flows", "bundle"] {
            let c = parse(&[sub, "br0", "-"]).unwrap();
            let (Command::AddFlows(f)
            | Command::ReplaceFlows(f)
            | Command::DiffFlows(f)
            | Command::Bundle(f)) = c.command
            else {
                panic!("{sub}: {:?}", c.command)
            };
            assert_eq!(f.file, PathBuf::from("-"));
            assert!(err(&[sub, "br0"]).contains("<FILE>"), "{sub}");
        }
    }

    #[test]
    fn only_br0_exists() {
        for args in [
            &["add-flow", "br1", "actions=drop"][..],
            &["dump-flows", "br-int"][..],
            &["add-flows", "ovsbr", "f"][..],
            &["monitor", "br1"][..],
            &["set-miss", "br1", "0", "drop"][..],
        ] {
            let e = err(args);
            assert!(
                e.contains(&format!("no bridge {}; this switch has br0", args[1])),
                "{args:?}: {e}"
            );
        }
    }

    #[test]
    fn a_bad_flow_shows_the_column_and_a_caret() {
        let e = parse(&["add-flow", "br0", "priority=5,nw_dts=10.1.1.1,actions=drop"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains(": column 12: unknown field \"nw_dts\""))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(lines[at + 1], "priority=5,nw_dts=10.1.1.1,actions=drop");
        assert_eq!(lines[at + 2], "           ^");
    }

    #[test]
    fn capture_arguments() {
        let c = parse(&[
            "capture",
            "vxlan0",
            "-w",
            "t.pcap",
            "--count",
            "5",
            "--filter",
            "ip,nw_dst=10.1.2.3",
        ])
        .unwrap();
        let Command::Capture(a) = c.command else {
            panic!()
        };
        assert_eq!(a.port, PortRef::Name("vxlan0".into()));
        assert_eq!(a.write, Some(PathBuf::from("t.pcap")));
        assert_eq!(a.count, Some(5));
        assert_eq!(a.filter.unwrap().0.len(), 2);
        let c = parse(&["capture", "3", "-c", "1"]).unwrap();
        let Command::Capture(a) = c.command else {
            panic!()
        };
        assert_eq!(
            (a.port, a.write, a.count),
            (PortRef::Number(3), None, Some(1))
        );
        assert!(err(&["capture", "n1p1", "--count", "0"]).contains("0"));
        assert!(err(&["capture", "n1p1", "--filter", "table=1,ip"]).contains("table"));
        assert!(err(&["capture", "n1p1", "--filter", "ip,actions=drop"]).contains("actions"));
    }

    /// Shell words of an example line up to a pipe or the description (two spaces outside
    /// quotes), quotes removed.
    fn example_words(line: &str) -> Vec<String> {
        let mut words = vec![String::new()];
        let mut quote: Option<char> = None;
        let mut prev_space = false;
        for c in line.trim().chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => words.last_mut().unwrap().push(c),
                (None, '\'' | '"') => quote = Some(c),
                (None, '|') => break,
                (None, ' ') if prev_space => break,
                (None, ' ') => words.push(String::new()),
                (None, c) => words.last_mut().unwrap().push(c),
            }
            prev_space = c == ' ' && quote.is_none();
        }
        words.retain(|w| !w.is_empty());
        words
    }

    #[test]
    fn every_example_parses() {
        let mut texts = vec![
            EXAMPLES.to_string(),
            crate::ctl::commands::HELP_FLOWS.to_string(),
        ];
        let mut cmd = Cli::command();
        for sub in cmd.get_subcommands_mut() {
            texts.push(sub.render_long_help().to_string());
        }
        let mut n = 0;
        // Examples are indented; prose that starts with "vxctl" is not.
        for line in texts.iter().flat_map(|t| t.lines()) {
            if !line.starts_with(' ') || !line.trim().starts_with("vxctl ") {
                continue;
            }
            let line = line.trim();
            let words = example_words(line);
            if let Err(e) = Cli::try_parse_from(&words) {
                panic!("example {line:?} ({words:?}) does not parse:\n{e}");
            }
            n += 1;
        }
        assert!(n > 40, "only {n} examples found");
    }
}
