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
    /// The VNI of a packet that came from the tunnel (24 bits).
    TunId {
        value: u32,
        mask: u32,
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
}

impl Field {
    /// Width in bits.
    pub fn bits(self) -> u32 {
        match self {
            Field::DlSrc | Field::DlDst => 48,
            Field::NwSrc | Field::NwDst | Field::TunSrc | Field::TunDst | Field::Reg(_) => 32,
            Field::NwTtl => 8,
            Field::TpSrc | Field::TpDst => 16,
            Field::TunId => 24,
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
}

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
}
