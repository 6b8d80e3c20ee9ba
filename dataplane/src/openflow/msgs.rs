//! Encoders of the messages the switch sends that carry no flows: hello, errors, features,
//! config, role, multipart framing, and the bodies of port, table, description and group
//! feature replies.

use controlplane::openflow::header::{finish, start};
use controlplane::openflow::{MsgType, OfError, OFP13, OFP14};

/// Bytes of a multipart request or reply header (the OpenFlow header, type, flags, pad).
pub const MULTIPART_HEADER_LEN: usize = 16;
/// Bytes of an experimenter multipart header (the above plus experimenter and type).
pub const EXP_MULTIPART_HEADER_LEN: usize = 24;
/// A reply message grows up to this many bytes before the rest goes into another one.
pub const MULTIPART_SPLIT: usize = 65_000;
/// OFPMPF_REPLY_MORE / OFPMPF_REQ_MORE.
pub const MORE: u16 = 1;

/// Multipart types (`ofp_multipart_type`).
pub mod mp {
    pub const DESC: u16 = 0;
    pub const FLOW: u16 = 1;
    pub const AGGREGATE: u16 = 2;
    pub const TABLE: u16 = 3;
    pub const PORT_STATS: u16 = 4;
    pub const QUEUE: u16 = 5;
    pub const GROUP: u16 = 6;
    pub const GROUP_DESC: u16 = 7;
    pub const GROUP_FEATURES: u16 = 8;
    pub const METER: u16 = 9;
    pub const METER_CONFIG: u16 = 10;
    pub const METER_FEATURES: u16 = 11;
    pub const TABLE_FEATURES: u16 = 12;
    pub const PORT_DESC: u16 = 13;
    pub const FLOW_MONITOR: u16 = 16;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// Our hello: the highest version we speak and a version bitmap of both.
pub fn hello(version: u8, xid: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    let at = start(&mut out, version, MsgType::Hello, xid);
    out.extend_from_slice(&1u16.to_be_bytes()); // OFPHET_VERSIONBITMAP
    out.extend_from_slice(&8u16.to_be_bytes());
    let bitmap: u32 = (1 << OFP13) | (1 << OFP14);
    out.extend_from_slice(&bitmap.to_be_bytes());
    finish(&mut out, at);
    out
}

/// The version both ends speak, from the peer's hello: the highest version set in both
/// bitmaps, or (without a bitmap) the lower of the two headers' versions if we speak it.
pub fn negotiate(peer_hello: &[u8]) -> Option<u8> {
    let header_version = *peer_hello.first()?;
    let ours: u32 = (1 << OFP13) | (1 << OFP14);
    let mut rest = peer_hello.get(8..).unwrap_or(&[]);
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        if len < 4 || len > rest.len() {
            break;
        }
        if kind == 1 && len >= 8 {
            let theirs = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
            let both = ours & theirs;
            return (0..32u8).rev().find(|v| both & (1 << v) != 0);
        }
        rest = &rest[(len.div_ceil(8) * 8).min(rest.len())..];
    }
    let v = header_version.min(OFP14);
    (v >= OFP13).then_some(v)
}

/// An OFPT_ERROR carrying `data` (the first 64 bytes of the request, or for a failed hello
/// an explanation in ASCII).
pub fn error(version: u8, xid: u32, e: &OfError, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + data.len().min(64));
    let at = start(&mut out, version, MsgType::Error, xid);
    out.extend_from_slice(&e.kind.to_be_bytes());
    out.extend_from_slice(&e.code.to_be_bytes());
    out.extend_from_slice(&data[..data.len().min(64)]);
    finish(&mut out, at);
    out
}

/// A message of `t` with `body` after the header.
pub fn simple(version: u8, t: MsgType, xid: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    let at = start(&mut out, version, t, xid);
    out.extend_from_slice(body);
    finish(&mut out, at);
    out
}

/// OFPT_FEATURES_REPLY: 255 tables, no buffers, flow/table/port/group statistics.
pub fn features_reply(version: u8, xid: u32, datapath_id: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&datapath_id.to_be_bytes());
    b.extend_from_slice(&0u32.to_be_bytes()); // n_buffers
    b.push(255); // n_tables
    b.push(0); // auxiliary_id
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&0x0000_000fu32.to_be_bytes()); // FLOW|TABLE|PORT|GROUP stats
    b.extend_from_slice(&0u32.to_be_bytes());
    simple(version, MsgType::FeaturesReply, xid, &b)
}

/// Writes the bodies of a multipart reply of `mp_type` (and, for experimenter replies, the
/// experimenter id and type) into as many messages as it takes: every message but the last
/// has OFPMPF_REPLY_MORE set. Entries are never split.
pub struct MultipartWriter {
    version: u8,
    xid: u32,
    mp_type: u16,
    exp: Option<(u32, u32)>,
    msgs: Vec<Vec<u8>>,
}

impl MultipartWriter {
    pub fn new(version: u8, xid: u32, mp_type: u16) -> MultipartWriter {
        let mut w = MultipartWriter {
            version,
            xid,
            mp_type,
            exp: None,
            msgs: Vec::new(),
        };
        w.open();
        w
    }

    pub fn experimenter(version: u8, xid: u32, vendor: u32, exp_type: u32) -> MultipartWriter {
        let mut w = MultipartWriter {
            version,
            xid,
            mp_type: mp::EXPERIMENTER,
            exp: Some((vendor, exp_type)),
            msgs: Vec::new(),
        };
        w.open();
        w
    }

    fn open(&mut self) {
        let mut m = Vec::with_capacity(256);
        start(&mut m, self.version, MsgType::MultipartReply, self.xid);
        m.extend_from_slice(&self.mp_type.to_be_bytes());
        m.extend_from_slice(&0u16.to_be_bytes());
        m.extend_from_slice(&[0; 4]);
        if let Some((vendor, t)) = self.exp {
            m.extend_from_slice(&vendor.to_be_bytes());
            m.extend_from_slice(&t.to_be_bytes());
        }
        self.msgs.push(m);
    }

    fn header_len(&self) -> usize {
        if self.exp.is_some() {
            EXP_MULTIPART_HEADER_LEN
        } else {
            MULTIPART_HEADER_LEN
        }
    }

    /// Appends one entry, written by `f` into the buffer it is given.
    pub fn entry(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        let mut e = Vec::new();
        f(&mut e);
        let hl = self.header_len();
        let cur = self.msgs.last().map_or(0, Vec::len);
        if cur > hl && cur + e.len() > MULTIPART_SPLIT {
            if let Some(m) = self.msgs.last_mut() {
                m[10..12].copy_from_slice(&MORE.to_be_bytes());
            }
            self.open();
        }
        if let Some(m) = self.msgs.last_mut() {
            m.extend_from_slice(&e);
        }
    }

    /// The finished messages, lengths written.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        for m in &mut self.msgs {
            finish(m, 0);
        }
        self.msgs
    }
}

fn put_str(out: &mut Vec<u8>, s: &str, len: usize) {
    let b = s.as_bytes();
    let n = b.len().min(len - 1);
    out.extend_from_slice(&b[..n]);
    out.resize(out.len() + len - n, 0);
}

/// OFPMP_DESC body.
pub fn desc_body(out: &mut Vec<u8>, bridge: &str) {
    put_str(out, "vxswitch", 256);
    put_str(out, "userspace VXLAN switch", 256);
    put_str(out, env!("CARGO_PKG_VERSION"), 256);
    put_str(out, "None", 32);
    put_str(out, bridge, 256);
}

/// A port as OpenFlow shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortInfo {
    pub no: u32,
    pub name: String,
    pub mac: [u8; 6],
    pub down: bool,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

/// One port description entry (`ofp_port` in 1.3, `ofp14_port` with an Ethernet property
/// in 1.4).
pub fn port_desc_entry(version: u8, p: &PortInfo, out: &mut Vec<u8>) {
    // OFPPC_PORT_DOWN in config, OFPPS_LINK_DOWN in state; OFPPS_LIVE otherwise.
    let config: u32 = if p.down { 1 } else { 0 };
    let state: u32 = if p.down { 1 } else { 4 };
    let speeds = [0u32, 0, 0, 0, 10_000_000, 10_000_000]; // curr..peer, curr/max speed kbps
    out.extend_from_slice(&p.no.to_be_bytes());
    if version >= OFP14 {
        out.extend_from_slice(&72u16.to_be_bytes());
        out.extend_from_slice(&[0; 2]);
    } else {
        out.extend_from_slice(&[0; 4]);
    }
    out.extend_from_slice(&p.mac);
    out.extend_from_slice(&[0; 2]);
    put_str(out, &p.name, 16);
    out.extend_from_slice(&config.to_be_bytes());
    out.extend_from_slice(&state.to_be_bytes());
    if version >= OFP14 {
        out.extend_from_slice(&0u16.to_be_bytes()); // OFPPDPT_ETHERNET
        out.extend_from_slice(&32u16.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
    }
    for s in speeds {
        out.extend_from_slice(&s.to_be_bytes());
    }
}

/// One port statistics entry.
pub fn port_stats_entry(version: u8, p: &PortInfo, duration_s: u32, out: &mut Vec<u8>) {
    let main = [
        p.rx_packets,
        p.tx_packets,
        p.rx_bytes,
        p.tx_bytes,
        0, // rx_dropped
        0, // tx_dropped
        0, // rx_errors
        p.tx_errors,
    ];
    if version >= OFP14 {
        out.extend_from_slice(&80u16.to_be_bytes());
        out.extend_from_slice(&[0; 2]);
        out.extend_from_slice(&p.no.to_be_bytes());
        out.extend_from_slice(&duration_s.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        for v in main {
            out.extend_from_slice(&v.to_be_bytes());
        }
    } else {
        out.extend_from_slice(&p.no.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        for v in main {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for _ in 0..4 {
            out.extend_from_slice(&0u64.to_be_bytes()); // frame, over, crc, collisions
        }
        out.extend_from_slice(&duration_s.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
    }
}

/// One `ofp_table_stats` entry.
pub fn table_stats_entry(table: u8, active: u32, lookups: u64, matched: u64, out: &mut Vec<u8>) {
    out.push(table);
    out.extend_from_slice(&[0; 3]);
    out.extend_from_slice(&active.to_be_bytes());
    out.extend_from_slice(&lookups.to_be_bytes());
    out.extend_from_slice(&matched.to_be_bytes());
}

/// OFPMP_GROUP_FEATURES body: all, select, indirect groups.
pub fn group_features_body(out: &mut Vec<u8>) {
    let types: u32 = (1 << 0) | (1 << 1) | (1 << 2);
    out.extend_from_slice(&types.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // capabilities
    for max in [
        controlplane::flow::MAX_GROUP,
        controlplane::flow::MAX_GROUP,
        controlplane::flow::MAX_GROUP,
        0,
    ] {
        out.extend_from_slice(&max.to_be_bytes());
    }
    // Actions per group type: output, set_field, push/pop VLAN, group.
    let actions: u32 = 1 | (1 << 17) | (1 << 18) | (1 << 22) | (1 << 25);
    for a in [actions, actions, actions, 0] {
        out.extend_from_slice(&a.to_be_bytes());
    }
}

/// An `ofp_group_stats` entry without buckets' counters beyond zeros.
pub fn group_stats_entry(group_id: u32, buckets: usize, out: &mut Vec<u8>) {
    let len = 40 + 16 * buckets;
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&[0; 2]);
    out.extend_from_slice(&group_id.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // ref_count
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&0u64.to_be_bytes()); // packets
    out.extend_from_slice(&0u64.to_be_bytes()); // bytes
    out.extend_from_slice(&0u32.to_be_bytes()); // duration
    out.extend_from_slice(&0u32.to_be_bytes());
    for _ in 0..buckets {
        out.extend_from_slice(&[0; 16]);
    }
}

/// Table feature property types (`ofp13_table_feature_prop_type`) vxswitch reports.
mod tfpt {
    pub const INSTRUCTIONS: u16 = 0;
    pub const NEXT_TABLES: u16 = 2;
    pub const WRITE_ACTIONS: u16 = 4;
    pub const APPLY_ACTIONS: u16 = 6;
    pub const MATCH: u16 = 8;
    pub const WILDCARDS: u16 = 10;
    pub const WRITE_SETFIELD: u16 = 12;
    pub const APPLY_SETFIELD: u16 = 14;
}

/// The fields a flow may match on, and whether a mask is allowed.
const MATCH_FIELDS: &[(controlplane::openflow::fields::Mf, bool)] = {
    use controlplane::openflow::fields::Mf;
    &[
        (Mf::InPort, false),
        (Mf::EthDst, true),
        (Mf::EthSrc, true),
        (Mf::EthType, false),
        (Mf::VlanTci, true),
        (Mf::VlanVid, true),
        (Mf::VlanPcp, false),
        (Mf::IpDscp, false),
        (Mf::IpEcn, false),
        (Mf::IpProto, false),
        (Mf::IpTtl, false),
        (Mf::IpFrag, true),
        (Mf::Ipv4Src, true),
        (Mf::Ipv4Dst, true),
        (Mf::Ipv6Src, true),
        (Mf::Ipv6Dst, true),
        (Mf::TcpSrc, true),
        (Mf::TcpDst, true),
        (Mf::UdpSrc, true),
        (Mf::UdpDst, true),
        (Mf::Icmpv4Type, false),
        (Mf::Icmpv4Code, false),
        (Mf::Icmpv6Type, false),
        (Mf::Icmpv6Code, false),
        (Mf::ArpOp, false),
        (Mf::ArpSpa, true),
        (Mf::ArpTpa, true),
        (Mf::ArpSha, true),
        (Mf::ArpTha, true),
        (Mf::TunId, true),
        (Mf::TunSrc, true),
        (Mf::TunDst, true),
        (Mf::Reg(0), true),
        (Mf::Reg(1), true),
        (Mf::Reg(2), true),
        (Mf::Reg(3), true),
        (Mf::Reg(4), true),
        (Mf::Reg(5), true),
        (Mf::Reg(6), true),
        (Mf::Reg(7), true),
        (Mf::PktMark, true),
        (Mf::ConjId, false),
    ]
};

/// The fields set_field may write (every matchable field but the ones a packet cannot
/// carry changed: in_port, ip_frag, conj_id).
fn settable(f: controlplane::openflow::fields::Mf) -> bool {
    use controlplane::openflow::fields::Mf;
    !matches!(f, Mf::InPort | Mf::IpFrag | Mf::ConjId | Mf::EthType)
}

/// Starts a table feature property; `prop_end` writes its length and pads it to 8.
fn prop_start(out: &mut Vec<u8>, t: u16) -> usize {
    let at = out.len();
    out.extend_from_slice(&t.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    at
}

fn prop_end(out: &mut Vec<u8>, at: usize) {
    let len = (out.len() - at) as u16;
    out[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
    out.resize(at + usize::from(len).div_ceil(8) * 8, 0);
}

/// A property listing ids as 4-byte (type, length 4) headers: instruction or action ids.
fn ids_prop(out: &mut Vec<u8>, t: u16, ids: &[u16]) {
    let at = prop_start(out, t);
    for id in ids {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
    }
    prop_end(out, at);
}

/// A property listing OXM headers.
fn fields_prop(
    out: &mut Vec<u8>,
    t: u16,
    fields: impl Iterator<Item = (controlplane::openflow::fields::Mf, bool)>,
) {
    let at = prop_start(out, t);
    for (f, masked) in fields {
        out.extend_from_slice(&f.header(masked).to_be_bytes());
    }
    prop_end(out, at);
}

/// One `ofp13_table_features` entry with the properties OVS requires of a reply:
/// instructions, next tables (every later table), write and apply actions, match,
/// wildcards, write and apply set-fields. The miss variants are left out: they then equal
/// the non-miss ones.
pub fn table_features_entry(table: u8, out: &mut Vec<u8>) {
    use controlplane::openflow::instructions::ty;
    let at = out.len();
    out.extend_from_slice(&[0, 0]); // length, patched below
    out.push(table);
    out.extend_from_slice(&[0; 5]);
    put_str(out, &format!("table{table}"), 32);
    out.extend_from_slice(&0u64.to_be_bytes()); // metadata_match
    out.extend_from_slice(&0u64.to_be_bytes()); // metadata_write
    out.extend_from_slice(&0u32.to_be_bytes()); // config / capabilities
    out.extend_from_slice(&1_000_000u32.to_be_bytes()); // max_entries
    let mut insts = vec![ty::APPLY_ACTIONS, ty::WRITE_ACTIONS, ty::CLEAR_ACTIONS];
    if table < controlplane::flow::MAX_TABLE {
        insts.insert(0, ty::GOTO_TABLE);
    }
    ids_prop(out, tfpt::INSTRUCTIONS, &insts);
    let nt = prop_start(out, tfpt::NEXT_TABLES);
    out.extend(table.saturating_add(1)..=controlplane::flow::MAX_TABLE);
    prop_end(out, nt);
    // OFPAT_OUTPUT, PUSH_VLAN, POP_VLAN, GROUP, DEC_NW_TTL, SET_FIELD.
    let actions = [0u16, 17, 18, 22, 24, 25];
    ids_prop(out, tfpt::WRITE_ACTIONS, &actions);
    ids_prop(out, tfpt::APPLY_ACTIONS, &actions);
    fields_prop(out, tfpt::MATCH, MATCH_FIELDS.iter().copied());
    fields_prop(
        out,
        tfpt::WILDCARDS,
        MATCH_FIELDS.iter().map(|&(f, _)| (f, false)),
    );
    let set = || {
        MATCH_FIELDS
            .iter()
            .filter(|(f, _)| settable(*f))
            .map(|&(f, _)| (f, false))
    };
    fields_prop(out, tfpt::WRITE_SETFIELD, set());
    fields_prop(out, tfpt::APPLY_SETFIELD, set());
    let len = (out.len() - at) as u16;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
}
