//! The vxswitchd control protocol, version 1.
//!
//! # Framing
//! Every message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON (see
//! [`crate::codec`]). A message longer than [`MAX_MESSAGE_LEN`] is refused and the connection
//! closed. JSON keeps the protocol readable with `socat` and `jq` while serde gives both ends the
//! same Rust types; every type here is an owned `Repr` that the dataplane converts into its own
//! tables.
//!
//! # Conversation
//! 1. The client sends [`Request::Hello`] with [`PROTOCOL_VERSION`]; the server answers
//!    [`Response::Hello`] or an error if the major version differs. Any other request before
//!    hello is refused with [`ErrorCode::OutOfOrder`].
//! 2. Then any number of requests, each answered by exactly one response, in order.
//!    [`Request::Apply`] carries an atomic batch of [`Change`]s: all are applied or none, and the
//!    answer carries the new table version. When `expected_version` is set and differs from the
//!    current version the batch is refused with [`ErrorCode::VersionMismatch`].
//!
//! Every object carries an [`Owner`]: the agent owns what its file declares, an admin owns what
//! `vxctl` created. A batch may only delete or replace objects of its own owner.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::flow::*;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest message either side accepts, in bytes.
pub const MAX_MESSAGE_LEN: usize = 4 << 20;
/// Name of the one bridge each node has.
pub const BRIDGE: &str = "br0";
/// Port number of the tunnel port `vxlan0`.
pub const PORT_TUNNEL: u16 = 1;
/// Port number of the host port `vxhost0`.
pub const PORT_HOST: u16 = 2;
/// First pod port number.
pub const PORT_FIRST_POD: u16 = 3;
/// Largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// A request from a client to vxswitchd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Must come first on every connection.
    Hello { version: u32, client: String },
    /// An atomic batch of changes.
    Apply(ApplyRequest),
    /// The whole configuration: local node, ports, remote nodes, table version.
    GetState,
    /// Counters: per port, per drop reason, per worker.
    GetStats,
    /// The forwarding database: MAC and IP entries the switch knows.
    GetFdb,
    /// An atomic bundle of flow-table changes (all or nothing).
    FlowMods { mods: Vec<FlowMod> },
    /// Flows with their counters; `table` and `matches` narrow the list (non-strict).
    DumpFlows {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table: Option<u8>,
        #[serde(default)]
        matches: Vec<Match>,
    },
    /// Per-table counters.
    DumpTables,
    /// Runs a packet described by `matches` (exact values) arriving on `in_port` through the
    /// flow tables without sending anything, and reports every step.
    Trace {
        in_port: PortRef,
        matches: Vec<Match>,
    },
    /// Streams flow additions and removals: answered by [`Response::Streaming`], then one
    /// [`Response::FlowEvent`] per change until the client closes the connection.
    Monitor,
    /// Streams the frames a port sends and receives (for the tunnel: the VXLAN datagrams):
    /// [`Response::Streaming`], then [`Response::Frame`]s, then [`Response::StreamEnd`] after
    /// `count` frames (or when the client closes).
    Capture {
        port: PortRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
        /// Only frames matching all of these (exact values).
        #[serde(default)]
        filter: Vec<Match>,
    },
    /// The groups (`group_id`: that one only), ordered by id. Groups are added, changed and
    /// deleted with [`Request::FlowMods`] ([`FlowMod::AddGroup`] and its siblings).
    DumpGroups {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_id: Option<u32>,
    },
    /// Opens a bundle on this connection, for flow programs larger than one message:
    /// [`Request::BundleAdd`] chunks collect in it, [`Request::BundleCommit`] applies them all
    /// or nothing as one [`Request::FlowMods`] would. A connection holds at most one bundle;
    /// it is discarded when the connection closes. Answered by [`Response::Bundle`].
    BundleOpen,
    /// Adds flow changes to the open bundle (at most [`MAX_BUNDLE_BYTES`] of messages and
    /// [`MAX_BUNDLE_FLOWS`] flows in all). With `extend_replace`, the chunk's first change,
    /// a [`FlowMod::Replace`], continues the bundle's last one (its flows are appended to it)
    /// instead of replacing the flows again.
    BundleAdd {
        mods: Vec<FlowMod>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        extend_replace: bool,
    },
    /// Applies the open bundle, all or nothing, and closes it: [`Response::Applied`].
    BundleCommit,
    /// Discards the open bundle, if any.
    BundleDiscard,
}

/// Most bytes of messages a bundle collects ([`Request::BundleOpen`]).
pub const MAX_BUNDLE_BYTES: usize = 512 << 20;
/// Most flow changes a bundle collects (each flow of a replace counts).
pub const MAX_BUNDLE_FLOWS: usize = 1 << 20;

/// A response from vxswitchd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Hello {
        version: u32,
        server: String,
        table_version: u64,
    },
    Applied {
        version: u64,
    },
    State(StateRepr),
    Stats(StatsRepr),
    Fdb(FdbRepr),
    Flows {
        table_version: u64,
        flows: Vec<FlowStats>,
    },
    Tables {
        tables: Vec<TableStats>,
    },
    Trace(TraceRepr),
    /// A stream starts; `detail` says what it carries.
    Streaming {
        detail: String,
    },
    FlowEvent(FlowEvent),
    Frame(CapturedFrame),
    StreamEnd {
        frames: u64,
        /// Frames the switch could not hand over in time (the capture ring was full).
        lost: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// The groups a [`Request::DumpGroups`] asked for.
    Groups {
        table_version: u64,
        groups: Vec<crate::flow::GroupSpec>,
    },
    /// What the connection's open bundle holds (after [`Request::BundleOpen`],
    /// [`Request::BundleAdd`] and [`Request::BundleDiscard`]).
    Bundle {
        /// Flow changes (each flow of a replace counts).
        flows: u64,
        /// Bytes of the messages that brought them.
        bytes: u64,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message was not valid JSON for this protocol.
    Malformed,
    /// The message exceeded [`MAX_MESSAGE_LEN`].
    TooLarge,
    /// A request came before hello, or hello came twice.
    OutOfOrder,
    /// The client speaks another protocol version.
    Version,
    /// `expected_version` did not match the current table version.
    VersionMismatch,
    /// A change was invalid (bad address, duplicate name, unknown object, ...).
    Invalid,
    /// A change touched an object of another owner.
    Owner,
    /// The switch could not carry out a valid change (TAP creation failed, ...).
    Failed,
    /// The peer may not use the control socket (neither root nor in its group); the message
    /// says who the peer is and why, then the connection is closed.
    Denied,
    /// The client took too long (no hello, or not the rest of a message); the connection is
    /// closed.
    Timeout,
}

/// Who owns a configuration object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// vxagent: objects declared in the node's agent file.
    Agent,
    /// An administrator using vxctl.
    #[default]
    Admin,
    /// vxswitch-cni: pods a container runtime attached through CNI (the agent leaves them).
    Cni,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Owner::Agent => "agent",
            Owner::Admin => "admin",
            Owner::Cni => "cni",
        })
    }
}

/// An atomic batch of changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRequest {
    pub owner: Owner,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    pub changes: Vec<Change>,
}

/// One change in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Configure this node (VTEP, subnet, gateway). Re-sending the same value is a no-op;
    /// changing the VTEP address or subnet of a running switch is refused.
    SetLocalNode(LocalNode),
    /// Attach a pod port. Re-adding an identical port is a no-op.
    AddPort(PortSpec),
    /// Detach a pod port and remove its TAP.
    DelPort { name: String },
    /// Learn a remote node: its pod subnet behind its VTEP.
    AddNode(RemoteNode),
    /// Forget a remote node.
    DelNode { name: String },
}

/// This node's identity on the overlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalNode {
    pub name: String,
    /// Underlay address the VXLAN sockets bind to.
    pub vtep: IpAddr,
    /// MAC the node's routed overlay frames carry (flannel's VTEP MAC).
    pub vtep_mac: MacAddr,
    /// The node's pod subnet, e.g. 10.1.1.0/24.
    pub subnet: Ipv4Cidr,
    /// Gateway address; the first host of the subnet when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// VNI of pods that carry none of their own.
    #[serde(default = "default_vni")]
    pub vni: u32,
    /// The whole cluster network, routed via vxhost0 from the node (default 10.1.0.0/16).
    #[serde(default = "default_cluster_network")]
    pub cluster_network: Ipv4Cidr,
    /// MTU of the underlay; pods get this minus the encapsulation overhead.
    #[serde(default = "default_underlay_mtu")]
    pub underlay_mtu: u16,
    /// The node's IPv6 pod prefix (dual stack), e.g. fd00:10:1:1::/64; its gateway is the
    /// prefix's first host (::1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Cidr>,
}

fn default_vni() -> u32 {
    1
}
fn default_cluster_network() -> Ipv4Cidr {
    Ipv4Cidr::new(Ipv4Addr::new(10, 1, 0, 0), 16).expect("valid constant")
}
fn default_underlay_mtu() -> u16 {
    1500
}

impl LocalNode {
    /// The gateway address, given or derived.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway.unwrap_or_else(|| self.subnet.nth(1))
    }

    /// The IPv6 gateway address (first host of `subnet6`), when the node has an IPv6 prefix.
    pub fn gateway6(&self) -> Option<Ipv6Addr> {
        self.subnet6.map(|c| c.nth(1))
    }

    /// Encapsulation overhead on this underlay: 50 bytes on IPv4, 70 on IPv6.
    pub fn overhead(&self) -> u16 {
        match self.vtep {
            IpAddr::V4(_) => 50,
            IpAddr::V6(_) => 70,
        }
    }

    /// MTU the pods get.
    pub fn pod_mtu(&self) -> u16 {
        self.underlay_mtu.saturating_sub(self.overhead())
    }

    /// Checks the values for consistency.
    pub fn validate(&self) -> Result<(), String> {
        check_name(&self.name)?;
        check_vni(self.vni)?;
        let gw = self.gateway();
        if !self.subnet.contains(gw) || gw == self.subnet.addr() || gw == self.subnet.broadcast() {
            return Err(format!(
                "gateway {gw} is not a host address of subnet {}",
                self.subnet
            ));
        }
        if !self.cluster_network.covers(&self.subnet) {
            return Err(format!(
                "subnet {} is not inside the cluster network {}",
                self.subnet, self.cluster_network
            ));
        }
        if !self.vtep_mac.is_unicast() {
            return Err(format!("vtep_mac {} is not a unicast MAC", self.vtep_mac));
        }
        if self.underlay_mtu < 576 + self.overhead() {
            return Err(format!("underlay_mtu {} is too small", self.underlay_mtu));
        }
        if let Some(s6) = self.subnet6 {
            check_subnet6(&s6)?;
            if self.pod_mtu() < 1280 {
                return Err(format!(
                    "underlay_mtu {} leaves pods an MTU of {}, below IPv6's 1280 (subnet6 {s6})",
                    self.underlay_mtu,
                    self.pod_mtu()
                ));
            }
        }
        Ok(())
    }
}

/// A pod port: one TAP in the pod's network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// Port name, unique on the node (usually the pod's name).
    pub name: String,
    /// The pod's network namespace: a name under /run/netns or an absolute path.
    pub netns: String,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// The pod's IPv6 address, inside the node's `subnet6` (dual stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// The pod's tenant VNID; the node's VNI when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnid: Option<u32>,
    /// Interface name inside the pod (default eth0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// MTU inside the pod; the node's pod MTU when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
}

impl PortSpec {
    pub fn ifname(&self) -> &str {
        self.ifname.as_deref().unwrap_or("eth0")
    }

    pub fn validate(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if self.netns.is_empty() {
            return Err(format!("port {}: netns is empty", self.name));
        }
        if !self.mac.is_unicast() {
            return Err(format!(
                "port {}: mac {} is not a unicast MAC",
                self.name, self.mac
            ));
        }
        if let Some(v) = self.vnid {
            check_vni(v)?;
        }
        let ifname = self.ifname();
        if ifname.is_empty() || ifname.len() > 15 || ifname.contains(['/', ' ', '\0']) {
            return Err(format!("port {}: bad interface name {ifname:?}", self.name));
        }
        if let Some(m) = self.mtu {
            if !(576..=9000).contains(&m) {
                return Err(format!("port {}: mtu {m} is outside 576..=9000", self.name));
            }
        }
        if let Some(ip6) = self.ip6 {
            if !is_unicast6(ip6) {
                return Err(format!(
                    "port {}: ip6 {ip6} is not a global or unique-local unicast address",
                    self.name
                ));
            }
            if self.mtu.is_some_and(|m| m < 1280) {
                return Err(format!(
                    "port {}: mtu {} is below IPv6's 1280 but the pod has ip6 {ip6}",
                    self.name,
                    self.mtu.unwrap_or(0)
                ));
            }
        }
        Ok(())
    }
}

/// Another node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteNode {
    pub name: String,
    pub vtep: IpAddr,
    pub vtep_mac: MacAddr,
    pub subnet: Ipv4Cidr,
    /// The node's IPv6 pod prefix, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Cidr>,
}

impl RemoteNode {
    pub fn validate(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if !self.vtep_mac.is_unicast() {
            return Err(format!(
                "node {}: vtep_mac {} is not unicast",
                self.name, self.vtep_mac
            ));
        }
        if let Some(s6) = &self.subnet6 {
            check_subnet6(s6).map_err(|m| format!("node {}: {m}", self.name))?;
        }
        Ok(())
    }
}

/// An IPv6 pod prefix must be unicast and leave room for a gateway and pods.
fn check_subnet6(s6: &Ipv6Cidr) -> Result<(), String> {
    if s6.prefix() > 120 {
        return Err(format!(
            "subnet6 {s6}: the prefix length must be at most 120 (usually 64)"
        ));
    }
    if !is_unicast6(s6.addr()) {
        return Err(format!(
            "subnet6 {s6} is not a global or unique-local unicast prefix"
        ));
    }
    Ok(())
}

/// Global or unique-local unicast: not multicast, link-local, loopback, unspecified or
/// IPv4-mapped.
fn is_unicast6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_loopback()
        || first & 0xffc0 == 0xfe80
        || ip.to_ipv4_mapped().is_some())
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
        ))
    }
}

fn check_vni(vni: u32) -> Result<(), String> {
    if vni > MAX_VNI {
        Err(format!("VNI {vni} does not fit in 24 bits (max {MAX_VNI})"))
    } else {
        Ok(())
    }
}

/// What kind of port a port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortKind {
    Tunnel,
    Host,
    Pod,
}

/// A port as vxswitchd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortState {
    pub no: u16,
    pub name: String,
    pub kind: PortKind,
    /// The device name (TAP name in its namespace, or the tunnel's UDP port).
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PortSpec>,
    /// "up", or what is wrong.
    pub status: String,
}

/// A remote node as vxswitchd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub owner: Owner,
    pub spec: RemoteNode,
}

/// The switch's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRepr {
    pub bridge: String,
    pub table_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalNode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_owner: Option<Owner>,
    pub ports: Vec<PortState>,
    pub nodes: Vec<NodeState>,
    /// VXLAN destination UDP port.
    pub vxlan_port: u16,
    pub workers: u32,
}

/// Counters of one port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCounters {
    pub no: u16,
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

/// All counters, summed over the workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsRepr {
    pub table_version: u64,
    pub ports: Vec<PortCounters>,
    /// Drops by reason, every reason listed (zeros included).
    pub drops: Vec<NamedCounter>,
    /// Other events worth counting (reserved VXLAN bits seen, ICMP generated, ...).
    pub events: Vec<NamedCounter>,
    pub workers: u32,
}

/// A counter with a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCounter {
    pub name: String,
    pub value: u64,
}

/// Where an FDB entry points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FdbTarget {
    Port { no: u16, name: String },
    Node { name: String, vtep: IpAddr },
}

/// One forwarding entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbEntry {
    pub vni: u32,
    pub mac: MacAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    pub target: FdbTarget,
}

/// The forwarding database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbRepr {
    pub table_version: u64,
    pub entries: Vec<FdbEntry>,
    /// Remote subnets: where routed traffic goes.
    pub routes: Vec<RouteEntry>,
}

/// A route to a remote node's subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    pub subnet: Ipv4Cidr,
    pub node: String,
    pub vtep: IpAddr,
    pub vtep_mac: MacAddr,
}

/// One step of a trace: a table lookup and what it led to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStep {
    pub table: u8,
    /// The flow that matched, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowSpec>,
    /// What happened, in words (e.g. "no match: table miss drops").
    pub note: String,
    /// How deep in resubmit / goto_table chains this lookup was.
    pub depth: u8,
}

/// The result of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceRepr {
    pub steps: Vec<TraceStep>,
    /// The actions that would run, in order, as text.
    pub actions: Vec<String>,
    /// The final verdict, e.g. "output to port 4 (n1p2)" or "drop: table miss in table 10".
    pub verdict: String,
}

/// A flow-table change seen by a monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEvent {
    pub event: FlowEventKind,
    /// Why: "add", "modify", "delete", "idle_timeout", "hard_timeout", "replace".
    pub reason: String,
    pub table_version: u64,
    pub flow: FlowSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowEventKind {
    Added,
    Modified,
    Removed,
}

/// Whether a captured frame entered or left the switch through the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Rx,
    Tx,
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedFrame {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub port: u16,
    pub direction: Direction,
    /// Length on the wire (the data may be cut to the capture's snap length).
    pub len: u32,
    /// The frame as hex. For the tunnel port: the UDP payload (VXLAN header + inner frame);
    /// a capture tool wraps it in outer headers (from `local` and `peer`) to make a pcap.
    pub hex: String,
    /// Tunnel frames: this node's VTEP address and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<std::net::SocketAddr>,
    /// Tunnel frames: the remote VTEP's address and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<std::net::SocketAddr>,
}

/// An Ethernet MAC address, written `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0 && self.0 != [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts
                .next()
                .ok_or_else(|| format!("bad MAC {s:?}: expected 6 octets"))?;
            if p.is_empty() || p.len() > 2 {
                return Err(format!("bad MAC {s:?}: octet {p:?} is not 1-2 hex digits"));
            }
            *b = u8::from_str_radix(p, 16)
                .map_err(|_| format!("bad MAC {s:?}: octet {p:?} is not hex"))?;
        }
        if parts.next().is_some() {
            return Err(format!("bad MAC {s:?}: more than 6 octets"));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IPv4 prefix, written `10.1.1.0/24`. The address is stored with host bits cleared.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// A prefix; host bits must be zero.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        if prefix > 32 {
            return Err(format!("prefix length {prefix} is larger than 32"));
        }
        let c = Ipv4Cidr { addr, prefix };
        if u32::from(addr) & !c.mask() != 0 {
            return Err(format!(
                "{addr}/{prefix} has host bits set (did you mean {}?)",
                c.network()
            ));
        }
        Ok(c)
    }
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }
    fn network(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            prefix: self.prefix,
        }
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }
    /// True if `other` lies entirely inside this prefix.
    pub fn covers(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.covers(other) || other.covers(self)
    }
    /// The n-th address of the prefix (0 is the network address).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr).wrapping_add(n))
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("bad prefix {s:?}: expected A.B.C.D/N"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("bad prefix {s:?}: {a:?} is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("bad prefix {s:?}: {p:?} is not a length"))?;
        Ipv4Cidr::new(addr, prefix)
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IPv6 prefix, written `fd00:10:1:1::/64`. The address is stored with host bits cleared.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Cidr {
    addr: Ipv6Addr,
    prefix: u8,
}

impl Ipv6Cidr {
    /// A prefix; host bits must be zero.
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Result<Self, String> {
        if prefix > 128 {
            return Err(format!("prefix length {prefix} is larger than 128"));
        }
        let c = Ipv6Cidr { addr, prefix };
        if u128::from(addr) & !c.mask() != 0 {
            return Err(format!(
                "{addr}/{prefix} has host bits set (did you mean {}/{prefix}?)",
                Ipv6Addr::from(u128::from(addr) & c.mask())
            ));
        }
        Ok(c)
    }
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    pub fn mask(&self) -> u128 {
        if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix)
        }
    }
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.addr)
    }
    /// True if `other` lies entirely inside this prefix.
    pub fn covers(&self, other: &Ipv6Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }
    pub fn overlaps(&self, other: &Ipv6Cidr) -> bool {
        self.covers(other) || other.covers(self)
    }
    /// The n-th address of the prefix (0 is the subnet-router anycast address).
    pub fn nth(&self, n: u128) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr).wrapping_add(n))
    }
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Ipv6Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("bad prefix {s:?}: expected IPV6/N, e.g. fd00:10:1:1::/64"))?;
        let addr: Ipv6Addr = a
            .parse()
            .map_err(|_| format!("bad prefix {s:?}: {a:?} is not an IPv6 address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("bad prefix {s:?}: {p:?} is not a length"))?;
        Ipv6Cidr::new(addr, prefix)
    }
}

impl Serialize for Ipv6Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv6Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_and_rejects_garbage() {
        let m: MacAddr = "0a:58:0a:01:01:02".parse().unwrap();
        assert_eq!(m.to_string(), "0a:58:0a:01:01:02");
        assert!(m.is_unicast());
        for bad in [
            "",
            "0a:58",
            "0a:58:0a:01:01:02:03",
            "zz:58:0a:01:01:02",
            "0a::0a:01:01:02",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!(!"ff:ff:ff:ff:ff:ff".parse::<MacAddr>().unwrap().is_unicast());
    }

    #[test]
    fn cidr_parses_and_checks_host_bits() {
        let c: Ipv4Cidr = "10.1.2.0/24".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(10, 1, 2, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 1, 3, 1)));
        assert_eq!(c.nth(1), Ipv4Addr::new(10, 1, 2, 1));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 1, 2, 255));
        let e = "10.1.2.5/24".parse::<Ipv4Cidr>().unwrap_err();
        assert!(e.contains("host bits"), "{e}");
        assert!("10.1.2.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("10.1.2.0".parse::<Ipv4Cidr>().is_err());
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.covers(&c));
    }

    #[test]
    fn requests_round_trip_through_json() {
        let req = Request::Apply(ApplyRequest {
            owner: Owner::Agent,
            expected_version: Some(3),
            changes: vec![
                Change::AddPort(PortSpec {
                    name: "p1".into(),
                    netns: "lab-n1-p1".into(),
                    mac: "0a:58:0a:01:01:02".parse().unwrap(),
                    ip: Ipv4Addr::new(10, 1, 1, 2),
                    ip6: None,
                    vnid: None,
                    ifname: None,
                    mtu: None,
                }),
                Change::DelNode { name: "n3".into() },
            ],
        });
        let text = serde_json::to_string(&req).unwrap();
        let back: Request = serde_json::from_str(&text).unwrap();
        assert_eq!(req, back);
    }

    #[test]
    fn local_node_validation_explains() {
        let mut n = LocalNode {
            name: "n1".into(),
            vtep: "198.51.100.1".parse().unwrap(),
            vtep_mac: "02:f1:00:00:00:01".parse().unwrap(),
            subnet: "10.1.1.0/24".parse().unwrap(),
            gateway: None,
            vni: 1,
            cluster_network: "10.1.0.0/16".parse().unwrap(),
            underlay_mtu: 1500,
            subnet6: None,
        };
        assert!(n.validate().is_ok());
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(n.pod_mtu(), 1450);
        n.vni = 1 << 24;
        assert!(n.validate().unwrap_err().contains("24 bits"));
        n.vni = 1;
        n.subnet = "10.2.1.0/24".parse().unwrap();
        assert!(n.validate().unwrap_err().contains("cluster network"));
    }

    #[test]
    fn ipv6_prefix_parses_and_old_messages_still_parse() {
        let c: Ipv6Cidr = "fd00:10:1:1::/64".parse().unwrap();
        assert!(c.contains("fd00:10:1:1::2".parse().unwrap()));
        assert!(!c.contains("fd00:10:1:2::2".parse().unwrap()));
        assert_eq!(c.nth(1), "fd00:10:1:1::1".parse::<Ipv6Addr>().unwrap());
        let e = "fd00:10:1:1::5/64".parse::<Ipv6Cidr>().unwrap_err();
        assert!(e.contains("host bits"), "{e}");
        assert!("fd00::/129".parse::<Ipv6Cidr>().is_err());
        assert!("10.1.1.0/24".parse::<Ipv6Cidr>().is_err());
        // A state file or client from before IPv6 pods: no subnet6, no ip6.
        let old = r#"{"name":"n1","vtep":"198.51.100.1","vtep_mac":"02:f1:00:00:00:01","subnet":"10.1.1.0/24"}"#;
        let n: LocalNode = serde_json::from_str(old).unwrap();
        assert_eq!(n.subnet6, None);
        assert_eq!(n.gateway6(), None);
        let old = r#"{"name":"p","netns":"x","mac":"0a:58:0a:01:01:02","ip":"10.1.1.2"}"#;
        assert_eq!(serde_json::from_str::<PortSpec>(old).unwrap().ip6, None);
        // And what it writes without IPv6 is what it wrote before.
        assert!(!serde_json::to_string(&n).unwrap().contains("subnet6"));
    }

    #[test]
    fn ipv6_prefix_validation_explains() {
        let mut n = LocalNode {
            name: "n1".into(),
            vtep: "198.51.100.1".parse().unwrap(),
            vtep_mac: "02:f1:00:00:00:01".parse().unwrap(),
            subnet: "10.1.1.0/24".parse().unwrap(),
            gateway: None,
            vni: 1,
            cluster_network: "10.1.0.0/16".parse().unwrap(),
            underlay_mtu: 1500,
            subnet6: Some("fd00:10:1:1::/64".parse().unwrap()),
        };
        assert!(n.validate().is_ok());
        assert_eq!(n.gateway6(), Some("fd00:10:1:1::1".parse().unwrap()));
        n.subnet6 = Some("fe80::/64".parse().unwrap());
        assert!(n.validate().unwrap_err().contains("unicast"));
        n.subnet6 = Some("fd00:10:1:1::/124".parse().unwrap());
        assert!(n.validate().unwrap_err().contains("at most 120"));
        n.subnet6 = Some("fd00:10:1:1::/64".parse().unwrap());
        n.underlay_mtu = 1300;
        assert!(n.validate().unwrap_err().contains("1280"));
    }
}
