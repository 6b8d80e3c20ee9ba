//! Flow tables, as the protocol carries them: owned `Repr` types for matches and actions.
//!
//! The text syntax (a documented subset of ovs-ofctl's) is parsed and printed by
//! [`crate::flow_syntax`]; the dataplane compiles these types into its classifier.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::proto::MacAddr;

/// Default priority when a flow gives none (as in OVS).
pub const DEFAULT_PRIORITY: u16 = 32768;
/// Largest table number.
pub const MAX_TABLE: u8 = 254;
/// Deepest resubmit / goto_table chain before the packet is dropped (and counted).
pub const MAX_DEPTH: usize = 64;
/// Cookie of the flows vxagent installs; it reconciles only flows with this cookie, and leaves
/// every other flow (an admin's) alone.
pub const AGENT_COOKIE: u64 = 0x00a6_e470;
/// Number of registers reg0..reg7.
pub const REGISTERS: u8 = 8;
/// Largest port number a flow may name (OpenFlow's OFPP_MAX); 0 is no port.
pub const MAX_PORT: u16 = 0xff00 - 1;
/// `ip_frag` bits (OVS's `nw_frag`): the packet is a fragment.
pub const FRAG_ANY: u8 = 1;
/// `ip_frag` bits: the packet is a fragment other than the first.
pub const FRAG_LATER: u8 = 2;

/// A port as a flow names it: a number, or a name the switch resolves (vxlan0, vxhost0, a
/// pod port's name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(s) => f.write_str(s),
        }
    }
}

/// One match field with its value and mask. A mask of all ones is an exact match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum Match {
    InPort {
        port: PortRef,
    },
    DlSrc {
        value: MacAddr,
        mask: MacAddr,
    },
    DlDst {
        value: MacAddr,
        mask: MacAddr,
    },
    DlType {
        value: u16,
    },
    /// 802.1Q VLAN id (12 bits).
    DlVlan {
        value: u16,
    },
    /// The whole 802.1Q tag control information, OVS's `vlan_tci`: PCP (3 bits), the
    /// "present" bit 0x1000 (set when the frame carries a tag), VID (12 bits); 0 = untagged.
    VlanTci {
        value: u16,
        mask: u16,
    },
    /// 802.1Q priority (3 bits) of a tagged frame.
    DlVlanPcp {
        value: u8,
    },
    ArpOp {
        value: u16,
    },
    ArpSpa {
        value: Ipv4Addr,
        mask: Ipv4Addr,
    },
    ArpTpa {
        value: Ipv4Addr,
        mask: Ipv4Addr,
    },
    ArpSha {
        value: MacAddr,
        mask: MacAddr,
    },
    ArpTha {
        value: MacAddr,
        mask: MacAddr,
    },
    NwSrc {
        value: Ipv4Addr,
        mask: Ipv4Addr,
    },
    NwDst {
        value: Ipv4Addr,
        mask: Ipv4Addr,
    },
    Ipv6Src {
        value: Ipv6Addr,
        mask: Ipv6Addr,
    },
    Ipv6Dst {
        value: Ipv6Addr,
        mask: Ipv6Addr,
    },
    NwProto {
        value: u8,
    },
    NwTtl {
        value: u8,
    },
    TpSrc {
        value: u16,
        mask: u16,
    },
    TpDst {
        value: u16,
        mask: u16,
    },
    IcmpType {
        value: u8,
    },
    IcmpCode {
        value: u8,
    },
    /// The target address of an IPv6 neighbour solicitation or advertisement.
    NdTarget {
        value: Ipv6Addr,
        mask: Ipv6Addr,
    },
    /// The tunnel id of a packet that came from the tunnel: 64 bits as in OVS, of which
    /// VXLAN carries the low 24 (the VNI).
    TunId {
        value: u64,
        mask: u64,
    },
    TunSrc {
        value: Ipv4Addr,
        mask: Ipv4Addr,
    },
    TunDst {
        value: Ipv4Addr,
        mask: Ipv4Addr,
    },
    /// The outer source address of a packet that came from an IPv6 tunnel.
    TunIpv6Src {
        value: Ipv6Addr,
        mask: Ipv6Addr,
    },
    /// The outer destination address of a packet that came from an IPv6 tunnel.
    TunIpv6Dst {
        value: Ipv6Addr,
        mask: Ipv6Addr,
    },
    Reg {
        index: u8,
        value: u32,
        mask: u32,
    },
    /// OVS's `ip_frag` (`nw_frag`): [`FRAG_ANY`] and [`FRAG_LATER`] bits with a mask.
    IpFrag {
        value: u8,
        mask: u8,
    },
    /// The packet mark (metadata, 32 bits).
    PktMark {
        value: u32,
        mask: u32,
    },
    /// The conjunction id a packet matched (`conj_id=N`; see [`FlowAction::Conjunction`]).
    ConjId {
        value: u32,
    },
}

/// A field an action can write or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    DlSrc,
    DlDst,
    NwSrc,
    NwDst,
    NwTtl,
    TpSrc,
    TpDst,
    TunId,
    TunSrc,
    TunDst,
    Reg(u8),
    /// The port the packet came in on (16 bits; `NXM_OF_IN_PORT`).
    InPort,
    /// 802.1Q TCI (16 bits, as [`Match::VlanTci`]).
    VlanTci,
    /// OpenFlow's `vlan_vid`: the present bit 0x1000 and the VID (13 bits).
    VlanVid,
    /// 802.1Q priority (3 bits).
    VlanPcp,
    /// Packet mark (32 bits).
    PktMark,
    /// IPv4 TOS / IPv6 traffic class, the whole byte (`mod_nw_tos` writes the DSCP bits only).
    NwTos,
    DlType,
    NwProto,
}

impl Field {
    /// Width in bits.
    pub fn bits(self) -> u32 {
        match self {
            Field::DlSrc | Field::DlDst => 48,
            Field::NwSrc | Field::NwDst | Field::TunSrc | Field::TunDst | Field::Reg(_) => 32,
            Field::NwTtl | Field::NwTos | Field::NwProto => 8,
            Field::TpSrc | Field::TpDst | Field::InPort | Field::VlanTci | Field::DlType => 16,
            Field::TunId => 64,
            Field::VlanVid => 13,
            Field::VlanPcp => 3,
            Field::PktMark => 32,
        }
    }
}

/// A bit range of a field, `reg0[0..15]` style (inclusive `start..=end`, as OVS writes
/// `[start..end]`); the whole field when `start == 0 && end == bits - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldRange {
    pub field: Field,
    pub start: u8,
    pub end: u8,
}

impl FieldRange {
    pub fn whole(field: Field) -> FieldRange {
        FieldRange {
            field,
            start: 0,
            end: (field.bits() - 1) as u8,
        }
    }
    pub fn width(&self) -> u32 {
        (self.end - self.start) as u32 + 1
    }
}

/// One action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FlowAction {
    /// Send a copy out of a port (the tunnel port sends to `tun_dst` with VNI `tun_id`).
    Output {
        port: PortRef,
    },
    /// The switch's built-in forwarding (ARP answering, switching, routing, encapsulation).
    Normal,
    /// Every port of the packet's VNI but the one it came in on, and head-end replication to
    /// the remote nodes unless it came from a tunnel (split horizon).
    Flood,
    /// Stop here: the packet is dropped (counted).
    Drop,
    /// `set_field:VALUE->FIELD`: the value is a number (MACs and addresses as their bits).
    SetField {
        field: Field,
        value: u64,
    },
    /// `set_field:IPV6->tun_ipv6_dst`: the IPv6 VTEP a later output to the tunnel sends to.
    SetTunIpv6Dst {
        value: Ipv6Addr,
    },
    /// `load:VALUE->FIELD[range]`.
    Load {
        dst: FieldRange,
        value: u64,
    },
    /// `move:SRC[range]->DST[range]`.
    Move {
        src: FieldRange,
        dst: FieldRange,
    },
    ModDlSrc {
        mac: MacAddr,
    },
    ModDlDst {
        mac: MacAddr,
    },
    DecTtl,
    /// `resubmit(,TABLE)` (or `resubmit(PORT,TABLE)`: with in_port replaced).
    Resubmit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_port: Option<PortRef>,
        table: u8,
    },
    GotoTable {
        table: u8,
    },
    /// `note:HEX`: does nothing; kept for humans.
    Note {
        bytes: Vec<u8>,
    },
    /// `output:NXM_NX_REG2[]`: output to the port number held in a field.
    OutputReg {
        src: FieldRange,
    },
    /// `in_port` / `IN_PORT`: send the packet back out of the port it came in on.
    InPort,
    /// `push_vlan:ETHERTYPE`: add an 802.1Q tag (VID 0 until set).
    PushVlan {
        ethertype: u16,
    },
    /// `pop_vlan` / `strip_vlan`: remove the 802.1Q tag, if any.
    PopVlan,
    /// `mod_vlan_vid:VID`: set the VID, adding a tag if the frame has none.
    ModVlanVid {
        vid: u16,
    },
    /// `mod_vlan_pcp:PCP`: set the priority, adding a tag if the frame has none.
    ModVlanPcp {
        pcp: u8,
    },
    /// `mod_nw_tos:TOS`: set the DSCP bits (a multiple of 4), keeping ECN.
    ModNwTos {
        tos: u8,
    },
    /// `group:ID`: run the group's buckets.
    Group {
        id: u32,
    },
    /// `learn(...)`: add or refresh a flow built from this packet's fields.
    Learn(Box<LearnSpec>),
    /// `conjunction(ID,K/N)`: this flow is clause `clause` (1-based) of `n_clauses` of
    /// conjunctive match `id`; a packet matching one flow of every clause matches `conj_id=ID`.
    Conjunction {
        id: u32,
        clause: u8,
        n_clauses: u8,
    },
}

/// What a `learn` action builds (OVS's `learn(...)`): a flow in `table` whose match and
/// actions are taken from the packet being processed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LearnSpec {
    pub table: u8,
    pub priority: u16,
    #[serde(default)]
    pub idle_timeout: u16,
    #[serde(default)]
    pub hard_timeout: u16,
    #[serde(default)]
    pub fin_idle_timeout: u16,
    #[serde(default)]
    pub fin_hard_timeout: u16,
    #[serde(default)]
    pub cookie: u64,
    /// `send_flow_rem`.
    #[serde(default)]
    pub send_flow_rem: bool,
    /// `delete_learned`: the learned flows go when the learning flow does.
    #[serde(default)]
    pub delete_learned: bool,
    pub items: Vec<LearnItem>,
}

/// One item of a `learn` action, in the order written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "item", rename_all = "snake_case")]
pub enum LearnItem {
    /// `DST[range]=SRC[range]` (or `FIELD[range]` alone: `src == dst`): the learned flow
    /// matches DST against this packet's SRC.
    MatchField { dst: FieldRange, src: FieldRange },
    /// `DST[range]=VALUE` (or `field=value` in the match syntax): a constant match.
    MatchValue { dst: FieldRange, value: u64 },
    /// `load:SRC[range]->DST[range]`: the learned flow loads this packet's SRC into DST.
    LoadField { dst: FieldRange, src: FieldRange },
    /// `load:VALUE->DST[range]`.
    LoadValue { dst: FieldRange, value: u64 },
    /// `output:SRC[range]`: the learned flow outputs to the port this packet's SRC holds.
    Output { src: FieldRange },
}

/// How a group picks its buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupType {
    /// Every bucket, each on its own copy of the packet.
    #[default]
    All,
    /// One bucket, chosen by a hash of the packet's flow, weighted.
    Select,
    /// The one bucket.
    Indirect,
    /// The first bucket whose watched port is live.
    FastFailover,
}

/// One bucket of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bucket {
    /// `bucket_id`, as OpenFlow 1.5 and OVS number buckets (0.. in order when not given).
    #[serde(default)]
    pub bucket_id: u32,
    /// Select groups: relative weight (OVS's default 1... here as given, default 1).
    #[serde(default = "one")]
    pub weight: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_port: Option<PortRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_group: Option<u32>,
    pub actions: Vec<FlowAction>,
}

fn one() -> u16 {
    1
}

/// A group (`ovs-ofctl add-group`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupSpec {
    pub group_id: u32,
    #[serde(rename = "type")]
    pub kind: GroupType,
    pub buckets: Vec<Bucket>,
}

/// Largest group id (OpenFlow's OFPG_MAX).
pub const MAX_GROUP: u32 = 0xffff_ff00;

/// A flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowSpec {
    pub table: u8,
    pub priority: u16,
    #[serde(default)]
    pub cookie: u64,
    /// Seconds without a hit before the flow is removed (0: never).
    #[serde(default)]
    pub idle_timeout: u16,
    /// Seconds after which the flow is removed whatever happens (0: never).
    #[serde(default)]
    pub hard_timeout: u16,
    /// The match, one entry per field; canonical order is the order of [`Match`]'s variants.
    pub matches: Vec<Match>,
    pub actions: Vec<FlowAction>,
}

impl FlowSpec {
    /// Two flows are "the same flow" (for add replacing, strict delete and counters) when
    /// table, priority and match are equal.
    pub fn same_rule(&self, other: &FlowSpec) -> bool {
        self.table == other.table
            && self.priority == other.priority
            && self.matches == other.matches
    }
}

/// A flow as the switch reports it, with its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowStats {
    pub spec: FlowSpec,
    pub n_packets: u64,
    pub n_bytes: u64,
    /// Milliseconds since the flow was added.
    pub duration_ms: u64,
    /// Milliseconds since the flow last matched a packet (or since it was added).
    pub idle_ms: u64,
}

/// Counters of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStats {
    pub table: u8,
    pub flows: u64,
    pub lookups: u64,
    pub matches: u64,
    /// What a miss does: "drop" unless set otherwise.
    pub miss: TableMiss,
}

/// What a table does with a packet no flow matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableMiss {
    /// Drop and count (OpenFlow 1.3's default).
    #[default]
    Drop,
    /// Continue with the next table.
    Continue,
    /// The built-in forwarding.
    Normal,
}

/// A change to the flow tables; a list of them is applied all or nothing (a bundle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FlowMod {
    /// Add, or replace a flow with the same table, priority and match (keeping its counters
    /// unless `reset_counts`).
    Add {
        flow: FlowSpec,
        #[serde(default)]
        reset_counts: bool,
    },
    /// Change the actions (and cookie) of every flow the match selects (`strict`: the same
    /// rule only); counters are kept.
    Modify { flow: FlowSpec, strict: bool },
    /// Delete every flow the match selects (`strict`: table, priority and match equal).
    /// `table: None` deletes in every table.
    Delete {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<u16>,
        matches: Vec<Match>,
        strict: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cookie: Option<(u64, u64)>,
    },
    /// Replace every table with these flows (flows equal to existing ones keep their counters).
    Replace { flows: Vec<FlowSpec> },
    /// Set a table's miss behaviour.
    SetMiss { table: u8, miss: TableMiss },
    /// Add a group (an error if the id exists).
    AddGroup { group: GroupSpec },
    /// Replace a group's type and buckets (an error if the id does not exist).
    ModifyGroup { group: GroupSpec },
    /// Delete a group and every flow that outputs to it (`None`: all groups).
    DeleteGroup {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_id: Option<u32>,
    },
}
