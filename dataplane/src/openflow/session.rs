//! One OpenFlow connection's state machine, without I/O: whole messages in, whole messages
//! out. The connection's task (see [`super::listener`]) frames the bytes and runs the
//! switch calls; this file decides what each message means.

use std::collections::BTreeMap;

use controlplane::flow::{FlowMod, FlowSpec, FlowStats, GroupSpec, TableStats};
use controlplane::openflow::error::kind;
use controlplane::openflow::flow_mod::{self, FlowModCommand};
use controlplane::openflow::group::{self, GroupModCommand};
use controlplane::openflow::{
    flow_stats, group_id, packet_out, Header, MsgType, OfError, HEADER_LEN, NX_VENDOR_ID, OFP13,
    OFP14, ONF_VENDOR_ID, TABLE_ALL,
};
use controlplane::proto::{FlowEvent, FlowEventKind};

use super::msgs::{self, mp, MultipartWriter, PortInfo};

/// What the session needs from the switch.
pub trait Datapath {
    fn datapath_id(&self) -> u64;
    fn bridge(&self) -> String;
    fn ports(&self) -> Vec<PortInfo>;
    /// Flows of a table (every table: `None`) that a loose match selects.
    fn flows(
        &self,
        table: Option<u8>,
        matches: &[controlplane::flow::Match],
    ) -> Result<Vec<FlowStats>, String>;
    fn tables(&self) -> Vec<TableStats>;
    fn groups(&self) -> Vec<GroupSpec>;
    /// Applies a batch atomically.
    fn flow_mods(&mut self, mods: &[FlowMod]) -> Result<(), String>;
    /// Whether a flow of the same table and priority overlaps `flow` (check_overlap).
    fn overlaps(&self, flow: &FlowSpec) -> bool;
    /// Seconds since the switch started (port statistics' duration).
    fn uptime_s(&self) -> u32;
}

/// An open bundle: its flags and the changes added so far.
#[derive(Debug, Default)]
struct Bundle {
    flags: u16,
    mods: Vec<FlowMod>,
    closed: bool,
}

/// Which kind of flow monitor the peer asked for, deciding the update format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MonitorKind {
    /// OpenFlow 1.4 OFPMP_FLOW_MONITOR.
    Of14,
    /// The ONF extension of OpenFlow 1.3 (experimenter multipart 1870).
    Onf13,
}

#[derive(Debug, Clone, Copy)]
struct Monitor {
    kind: MonitorKind,
    flags: u16,
    table: u8,
}

/// ONF experimenter types.
const ONFT_BUNDLE_CONTROL: u32 = 2300;
const ONFT_BUNDLE_ADD_MESSAGE: u32 = 2301;
const ONFST_FLOW_MONITOR: u32 = 1870;

/// Bundle control types (`ofp14_bundle_ctrl_type`).
mod bct {
    pub const OPEN_REQUEST: u16 = 0;
    pub const CLOSE_REQUEST: u16 = 2;
    pub const COMMIT_REQUEST: u16 = 4;
    pub const DISCARD_REQUEST: u16 = 6;
}

/// Most bundles one connection may hold open, and most messages in one.
const MAX_BUNDLES: usize = 64;
const MAX_BUNDLE_MSGS: usize = 100_000;

/// The session's answer to one message.
#[derive(Debug, Default)]
pub struct Output {
    pub replies: Vec<Vec<u8>>,
    /// The connection ends after the replies are sent.
    pub close: bool,
    /// Errors sent back (for the counters).
    pub errors: u64,
}

#[derive(Debug)]
pub struct Session {
    /// The negotiated version, once both hellos crossed.
    version: Option<u8>,
    miss_send_len: u16,
    config_flags: u16,
    bundles: BTreeMap<u32, Bundle>,
    monitors: BTreeMap<u32, Monitor>,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl Session {
    pub fn new() -> Session {
        Session {
            version: None,
            miss_send_len: 128,
            config_flags: 0,
            bundles: BTreeMap::new(),
            monitors: BTreeMap::new(),
        }
    }

    /// The negotiated version.
    pub fn version(&self) -> Option<u8> {
        self.version
    }

    /// Whether a flow monitor is active (the connection then forwards flow events).
    pub fn monitoring(&self) -> bool {
        !self.monitors.is_empty()
    }

    /// Handles one whole message (`msg` is exactly the header's length).
    pub fn input(&mut self, msg: &[u8], dp: &mut dyn Datapath) -> Output {
        let mut out = Output::default();
        let h = match Header::new_checked(msg) {
            Ok(h) => h,
            Err(e) => {
                self.fail(&mut out, 0, &e, msg);
                out.close = true;
                return out;
            }
        };
        let xid = h.xid();
        let Some(version) = self.version else {
            // The first message must be a hello.
            if h.msg_type() != MsgType::Hello {
                let e = OfError::new(kind::HELLO_FAILED, 0, "expected a hello first");
                out.replies.push(msgs::error(
                    OFP13,
                    xid,
                    &e,
                    b"the first message must be OFPT_HELLO",
                ));
                out.errors += 1;
                out.close = true;
                return out;
            }
            match msgs::negotiate(msg) {
                Some(v) => self.version = Some(v),
                None => {
                    let text = format!(
                        "no common OpenFlow version: this switch speaks OpenFlow 1.3 and 1.4 (0x04, 0x05), the peer offered 0x{:02x}",
                        h.version()
                    );
                    let e = OfError::new(kind::HELLO_FAILED, 0, text.clone());
                    out.replies
                        .push(msgs::error(OFP13, xid, &e, text.as_bytes()));
                    out.errors += 1;
                    out.close = true;
                }
            }
            return out;
        };
        if h.version() != version && h.msg_type() != MsgType::Hello {
            self.fail(&mut out, xid, &OfError::bad_version(), msg);
            return out;
        }
        if let Err(e) = self.dispatch(version, h.msg_type(), xid, msg, dp, &mut out) {
            self.fail(&mut out, xid, &e, msg);
        }
        out
    }

    fn fail(&self, out: &mut Output, xid: u32, e: &OfError, msg: &[u8]) {
        let v = self.version.unwrap_or(OFP13);
        out.replies.push(msgs::error(v, xid, e, msg));
        out.errors += 1;
    }

    fn dispatch(
        &mut self,
        v: u8,
        t: MsgType,
        xid: u32,
        msg: &[u8],
        dp: &mut dyn Datapath,
        out: &mut Output,
    ) -> Result<(), OfError> {
        let body = &msg[HEADER_LEN..];
        match t {
            MsgType::Hello => {}
            MsgType::EchoRequest => {
                out.replies
                    .push(msgs::simple(v, MsgType::EchoReply, xid, body))
            }
            MsgType::EchoReply => {}
            MsgType::FeaturesRequest => {
                out.replies
                    .push(msgs::features_reply(v, xid, dp.datapath_id()))
            }
            MsgType::GetConfigRequest => {
                let mut b = Vec::new();
                b.extend_from_slice(&self.config_flags.to_be_bytes());
                b.extend_from_slice(&self.miss_send_len.to_be_bytes());
                out.replies
                    .push(msgs::simple(v, MsgType::GetConfigReply, xid, &b));
            }
            MsgType::SetConfig => {
                self.config_flags = be16(body, 0).ok_or_else(OfError::bad_len)?;
                self.miss_send_len = be16(body, 2).ok_or_else(OfError::bad_len)?;
            }
            MsgType::BarrierRequest => {
                out.replies
                    .push(msgs::simple(v, MsgType::BarrierReply, xid, &[]))
            }
            MsgType::RoleRequest => {
                if body.len() < 16 {
                    return Err(OfError::bad_len());
                }
                let mut b = body[..16].to_vec();
                // OFPCR_ROLE_NOCHANGE answers with the current role: equal.
                if be32(&b, 0) == Some(0) {
                    b[0..4].copy_from_slice(&1u32.to_be_bytes());
                }
                out.replies
                    .push(msgs::simple(v, MsgType::RoleReply, xid, &b));
            }
            MsgType::SetAsync => {}
            MsgType::GetAsyncRequest => {
                out.replies
                    .push(msgs::simple(v, MsgType::GetAsyncReply, xid, &[]))
            }
            MsgType::FlowMod => {
                let m = flow_mod::decode_flow_mod(v, msg)?;
                let fms = self.to_flow_mod(&m, dp, false)?;
                dp.flow_mods(&fms).map_err(refused)?;
            }
            MsgType::GroupMod => {
                let m = group::decode_group_mod(v, msg)?;
                dp.flow_mods(&[to_group_mod(&m)]).map_err(group_refused)?;
            }
            MsgType::PacketOut => {
                // Decoded (a malformed one gets its own error), then refused as a message
                // type this switch does not carry out: OFPBRC_BAD_TYPE, not EPERM, so the
                // peer is not sent looking for a permission problem.
                let _ = packet_out::decode_packet_out(v, msg)?;
                return Err(OfError::new(
                    kind::BAD_REQUEST,
                    1,
                    "packet-out is not carried out by this switch",
                ));
            }
            MsgType::MultipartRequest => self.multipart(v, xid, msg, dp, out)?,
            MsgType::BundleControl => {
                let reply = self.bundle_control(v, body, dp)?;
                out.replies
                    .push(msgs::simple(v, MsgType::BundleControl, xid, &reply));
            }
            MsgType::BundleAddMessage => self.bundle_add(v, body, dp)?,
            MsgType::Experimenter => self.experimenter(v, xid, body, dp, out)?,
            MsgType::PortMod | MsgType::TableMod | MsgType::MeterMod => {
                return Err(OfError::bad_type())
            }
            _ => return Err(OfError::bad_type()),
        }
        Ok(())
    }

    /// Nicira messages ovs-ofctl sends on connect are accepted; ONF bundles are carried out.
    fn experimenter(
        &mut self,
        v: u8,
        xid: u32,
        body: &[u8],
        dp: &mut dyn Datapath,
        out: &mut Output,
    ) -> Result<(), OfError> {
        let vendor = be32(body, 0).ok_or_else(OfError::bad_len)?;
        let exp_type = be32(body, 4).ok_or_else(OfError::bad_len)?;
        let rest = &body[8..];
        match (vendor, exp_type) {
            // NXT_SET_FLOW_FORMAT (12), NXT_FLOW_MOD_TABLE_ID (15), NXT_SET_PACKET_IN_FORMAT
            // (16), NXT_SET_ASYNC_CONFIG (19), NXT_SET_CONTROLLER_ID (20): nothing to change
            // for a switch that sends no packet-ins and speaks OXM.
            (NX_VENDOR_ID, 12 | 15 | 16 | 19 | 20) => Ok(()),
            (ONF_VENDOR_ID, ONFT_BUNDLE_CONTROL) => {
                let reply = self.bundle_control(v, rest, dp)?;
                let mut b = Vec::with_capacity(8 + reply.len());
                b.extend_from_slice(&ONF_VENDOR_ID.to_be_bytes());
                b.extend_from_slice(&ONFT_BUNDLE_CONTROL.to_be_bytes());
                b.extend_from_slice(&reply);
                out.replies
                    .push(msgs::simple(v, MsgType::Experimenter, xid, &b));
                Ok(())
            }
            (ONF_VENDOR_ID, ONFT_BUNDLE_ADD_MESSAGE) => self.bundle_add(v, rest, dp),
            (NX_VENDOR_ID | ONF_VENDOR_ID, _) => Err(OfError::bad_exp_type()),
            _ => Err(OfError::bad_experimenter()),
        }
    }

    /// A flow mod as the flow store's changes; check_overlap and table ids checked here.
    /// A modify keeps each flow's cookie (OpenFlow 1.1 and later: the cookie and its mask
    /// only select), so it becomes one strict modify per flow it selects. In a bundle the
    /// flows it will select are not known until the changes before it are made, so there it
    /// stays one modify, which sets the cookie given (the flow store's modify semantics).
    fn to_flow_mod(
        &self,
        m: &flow_mod::FlowModMsg,
        dp: &dyn Datapath,
        in_bundle: bool,
    ) -> Result<Vec<FlowMod>, OfError> {
        let adding = m.command == FlowModCommand::Add;
        if m.table_id == TABLE_ALL && adding {
            return Err(OfError::bad_table_id());
        }
        if m.table_id != TABLE_ALL && m.table_id > controlplane::flow::MAX_TABLE {
            return Err(OfError::bad_table_id());
        }
        Ok(vec![match m.command {
            FlowModCommand::Add => {
                if m.flags & flow_mod::flags::CHECK_OVERLAP != 0 && dp.overlaps(&m.flow) {
                    return Err(OfError::overlap());
                }
                FlowMod::Add {
                    flow: m.flow.clone(),
                    reset_counts: m.flags & flow_mod::flags::RESET_COUNTS != 0,
                }
            }
            FlowModCommand::Modify | FlowModCommand::ModifyStrict if in_bundle => FlowMod::Modify {
                flow: m.flow.clone(),
                strict: m.command == FlowModCommand::ModifyStrict,
            },
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
                let strict = m.command == FlowModCommand::ModifyStrict;
                let table = (m.table_id != TABLE_ALL).then_some(m.table_id);
                let mut want = m.flow.matches.clone();
                controlplane::flow_syntax::canonicalize(&mut want);
                let selected = dp
                    .flows(table, &m.flow.matches)
                    .map_err(OfError::bad_field)?;
                return Ok(selected
                    .into_iter()
                    .map(|f| f.spec)
                    .filter(|f| f.cookie & m.cookie_mask == m.flow.cookie & m.cookie_mask)
                    .filter(|f| {
                        !strict
                            || (f.priority == m.flow.priority
                                && f.matches.len() == want.len()
                                && f.matches.iter().all(|x| want.contains(x)))
                    })
                    .map(|f| FlowMod::Modify {
                        flow: FlowSpec {
                            actions: m.flow.actions.clone(),
                            ..f
                        },
                        strict: true,
                    })
                    .collect());
            }
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => {
                let strict = m.command == FlowModCommand::DeleteStrict;
                FlowMod::Delete {
                    table: (m.table_id != TABLE_ALL).then_some(m.table_id),
                    priority: strict.then_some(m.flow.priority),
                    matches: m.flow.matches.clone(),
                    strict,
                    cookie: (m.cookie_mask != 0).then_some((m.flow.cookie, m.cookie_mask)),
                }
            }
        }])
    }

    /// Decodes a message carried in a bundle into the change it makes.
    fn bundled_change(
        &self,
        v: u8,
        inner: &[u8],
        dp: &dyn Datapath,
    ) -> Result<Vec<FlowMod>, OfError> {
        let h = Header::new_checked(inner)?;
        if h.length() as usize != inner.len() {
            return Err(OfError::bad_len());
        }
        match h.msg_type() {
            MsgType::FlowMod => {
                let m = flow_mod::decode_flow_mod(v, inner)?;
                self.to_flow_mod(&m, dp, true)
            }
            MsgType::GroupMod => Ok(vec![to_group_mod(&group::decode_group_mod(v, inner)?)]),
            // OFPBFC_MSG_UNSUP
            _ => Err(OfError::new(
                kind::BUNDLE_FAILED,
                9,
                "only flow and group mods in bundles",
            )),
        }
    }

    /// OFPT_BUNDLE_CONTROL (or its ONF form): returns the reply's body.
    fn bundle_control(
        &mut self,
        _v: u8,
        b: &[u8],
        dp: &mut dyn Datapath,
    ) -> Result<Vec<u8>, OfError> {
        let id = be32(b, 0).ok_or_else(OfError::bad_len)?;
        let t = be16(b, 4).ok_or_else(OfError::bad_len)?;
        let flags = be16(b, 6).ok_or_else(OfError::bad_len)?;
        // OFPBFC_* codes.
        let bad_id = || OfError::new(kind::BUNDLE_FAILED, 3, "no such bundle");
        match t {
            bct::OPEN_REQUEST => {
                if self.bundles.contains_key(&id) {
                    return Err(OfError::new(kind::BUNDLE_FAILED, 4, "bundle exists"));
                }
                if self.bundles.len() >= MAX_BUNDLES {
                    return Err(OfError::new(kind::BUNDLE_FAILED, 6, "too many bundles"));
                }
                self.bundles.insert(
                    id,
                    Bundle {
                        flags,
                        ..Bundle::default()
                    },
                );
            }
            bct::CLOSE_REQUEST => {
                let bundle = self.bundles.get_mut(&id).ok_or_else(bad_id)?;
                if bundle.closed {
                    return Err(OfError::new(kind::BUNDLE_FAILED, 5, "bundle closed"));
                }
                bundle.closed = true;
            }
            bct::COMMIT_REQUEST => {
                let bundle = self.bundles.remove(&id).ok_or_else(bad_id)?;
                let _ = bundle.flags;
                dp.flow_mods(&bundle.mods).map_err(refused)?;
            }
            bct::DISCARD_REQUEST => {
                self.bundles.remove(&id).ok_or_else(bad_id)?;
            }
            // OFPBFC_BAD_TYPE
            _ => {
                return Err(OfError::new(
                    kind::BUNDLE_FAILED,
                    1,
                    "bad bundle control type",
                ))
            }
        }
        let mut reply = Vec::with_capacity(8);
        reply.extend_from_slice(&id.to_be_bytes());
        reply.extend_from_slice(&(t + 1).to_be_bytes());
        reply.extend_from_slice(&flags.to_be_bytes());
        Ok(reply)
    }

    /// OFPT_BUNDLE_ADD_MESSAGE (or its ONF form): the message is checked now, applied at
    /// commit.
    fn bundle_add(&mut self, v: u8, b: &[u8], dp: &mut dyn Datapath) -> Result<(), OfError> {
        let id = be32(b, 0).ok_or_else(OfError::bad_len)?;
        let inner = b.get(8..).ok_or_else(OfError::bad_len)?;
        let ih = Header::new_checked(inner)?;
        let inner = inner
            .get(..ih.length() as usize)
            .ok_or_else(OfError::bad_len)?;
        let change = self.bundled_change(v, inner, dp)?;
        let bundle = match self.bundles.get_mut(&id) {
            Some(b) => b,
            None => {
                // An add to an unknown bundle opens it (OpenFlow 1.4, 7.3.9.6).
                if self.bundles.len() >= MAX_BUNDLES {
                    return Err(OfError::new(kind::BUNDLE_FAILED, 6, "too many bundles"));
                }
                self.bundles.entry(id).or_default()
            }
        };
        if bundle.closed {
            return Err(OfError::new(kind::BUNDLE_FAILED, 5, "bundle closed"));
        }
        if bundle.mods.len() >= MAX_BUNDLE_MSGS {
            return Err(OfError::new(kind::BUNDLE_FAILED, 7, "bundle full"));
        }
        bundle.mods.extend(change);
        Ok(())
    }

    fn multipart(
        &mut self,
        v: u8,
        xid: u32,
        msg: &[u8],
        dp: &mut dyn Datapath,
        out: &mut Output,
    ) -> Result<(), OfError> {
        if msg.len() < msgs::MULTIPART_HEADER_LEN {
            return Err(OfError::bad_len());
        }
        let t = be16(msg, 8).ok_or_else(OfError::bad_len)?;
        let body = &msg[msgs::MULTIPART_HEADER_LEN..];
        let mut w = MultipartWriter::new(v, xid, t);
        match t {
            mp::DESC => w.entry(|o| msgs::desc_body(o, &dp.bridge())),
            mp::PORT_DESC => {
                for p in dp.ports() {
                    w.entry(|o| msgs::port_desc_entry(v, &p, o));
                }
            }
            mp::PORT_STATS => {
                let want = be32(body, 0).ok_or_else(OfError::bad_len)?;
                let up = dp.uptime_s();
                let ports = dp.ports();
                if want != controlplane::openflow::port::ANY && !ports.iter().any(|p| p.no == want)
                {
                    return Err(OfError::bad_port());
                }
                for p in ports
                    .iter()
                    .filter(|p| want == controlplane::openflow::port::ANY || p.no == want)
                {
                    w.entry(|o| msgs::port_stats_entry(v, p, up, o));
                }
            }
            mp::TABLE => {
                let tables = dp.tables();
                for t in 0..=controlplane::flow::MAX_TABLE {
                    let s = tables.iter().find(|s| s.table == t);
                    let (a, l, m) = s.map_or((0, 0, 0), |s| (s.flows as u32, s.lookups, s.matches));
                    w.entry(|o| msgs::table_stats_entry(t, a, l, m, o));
                }
            }
            mp::FLOW | mp::AGGREGATE => {
                let rq = flow_stats::decode_flow_stats_request(v, body)?;
                let flows = self.select(&rq, dp)?;
                if t == mp::FLOW {
                    for f in &flows {
                        w.entry(|o| flow_stats::encode_flow_stats_entry(v, f, o));
                    }
                } else {
                    let p = flows.iter().map(|f| f.n_packets).sum();
                    let b = flows.iter().map(|f| f.n_bytes).sum();
                    w.entry(|o| flow_stats::encode_aggregate_reply(p, b, flows.len() as u32, o));
                }
            }
            mp::GROUP_DESC | mp::GROUP => {
                let want = if t == mp::GROUP {
                    be32(body, 0).unwrap_or(group_id::ALL)
                } else {
                    group_id::ALL
                };
                for g in dp
                    .groups()
                    .iter()
                    .filter(|g| want == group_id::ALL || g.group_id == want)
                {
                    if t == mp::GROUP_DESC {
                        w.entry(|o| group::encode_group_desc_entry(v, g, o));
                    } else {
                        w.entry(|o| msgs::group_stats_entry(g.group_id, g.buckets.len(), o));
                    }
                }
            }
            mp::GROUP_FEATURES => w.entry(msgs::group_features_body),
            mp::TABLE_FEATURES => {
                // One entry per table with the properties OVS requires.
                for t in 0..=controlplane::flow::MAX_TABLE {
                    w.entry(|o| msgs::table_features_entry(t, o));
                }
            }
            mp::METER | mp::METER_CONFIG | mp::QUEUE => {}
            mp::FLOW_MONITOR if v >= OFP14 => {
                let mut w = self.monitor_request(v, xid, MonitorKind::Of14, body, dp)?;
                out.replies.append(&mut w);
                return Ok(());
            }
            mp::EXPERIMENTER => {
                let vendor = be32(body, 0).ok_or_else(OfError::bad_len)?;
                let exp_type = be32(body, 4).ok_or_else(OfError::bad_len)?;
                if (vendor, exp_type) == (ONF_VENDOR_ID, ONFST_FLOW_MONITOR) {
                    let mut w = self.monitor_request(v, xid, MonitorKind::Onf13, &body[8..], dp)?;
                    out.replies.append(&mut w);
                    return Ok(());
                }
                return Err(if matches!(vendor, NX_VENDOR_ID | ONF_VENDOR_ID) {
                    OfError::bad_exp_type()
                } else {
                    OfError::bad_experimenter()
                });
            }
            _ => return Err(OfError::bad_multipart()),
        }
        out.replies.extend(w.finish());
        Ok(())
    }

    /// The flows a flow or aggregate request selects: table and loose match by the switch,
    /// cookie and out_port here.
    fn select(
        &self,
        rq: &flow_stats::FlowStatsRequest,
        dp: &dyn Datapath,
    ) -> Result<Vec<FlowStats>, OfError> {
        let table = (rq.table_id != TABLE_ALL).then_some(rq.table_id);
        let flows = dp.flows(table, &rq.matches).map_err(OfError::bad_field)?;
        Ok(flows
            .into_iter()
            .filter(|f| f.spec.cookie & rq.cookie_mask == rq.cookie & rq.cookie_mask)
            .filter(|f| outputs_to(&f.spec, rq.out_port))
            .collect())
    }

    /// A flow monitor request: registers the monitor, answers with the initial flows.
    fn monitor_request(
        &mut self,
        v: u8,
        xid: u32,
        kind_: MonitorKind,
        b: &[u8],
        dp: &dyn Datapath,
    ) -> Result<Vec<Vec<u8>>, OfError> {
        if b.len() < 16 {
            return Err(OfError::bad_len());
        }
        let id = be32(b, 0).ok_or_else(OfError::bad_len)?;
        let (flags, table, command) = match kind_ {
            MonitorKind::Of14 => (be16(b, 12).unwrap_or(0), b[14], b[15]),
            MonitorKind::Onf13 => (be16(b, 4).unwrap_or(0), b[12], 0),
        };
        // OFPFMC_DELETE
        if command == 2 {
            self.monitors.remove(&id);
            return Ok(MultipartWriter::new(v, xid, mp::FLOW_MONITOR).finish());
        }
        self.monitors.insert(
            id,
            Monitor {
                kind: kind_,
                flags,
                table,
            },
        );
        let mut w = match kind_ {
            MonitorKind::Of14 => MultipartWriter::new(v, xid, mp::FLOW_MONITOR),
            MonitorKind::Onf13 => {
                MultipartWriter::experimenter(v, xid, ONF_VENDOR_ID, ONFST_FLOW_MONITOR)
            }
        };
        // Bit 0 is "initial" in both numberings.
        if flags & 1 != 0 {
            let t = (table != TABLE_ALL).then_some(table);
            for f in dp.flows(t, &[]).unwrap_or_default() {
                w.entry(|o| flow_update(v, kind_, Update::Initial, &f.spec, flags, o));
            }
        }
        Ok(w.finish())
    }

    /// The unsolicited updates a flow event makes for this connection's monitors.
    pub fn flow_event(&self, ev: &FlowEvent) -> Vec<Vec<u8>> {
        let Some(v) = self.version else { return vec![] };
        let mut out = Vec::new();
        for m in self.monitors.values() {
            if m.table != TABLE_ALL && m.table != ev.flow.table {
                continue;
            }
            // add 2, removed 4, modify 8 in both numberings
            let (u, bit) = match ev.event {
                FlowEventKind::Added => (Update::Added, 2),
                FlowEventKind::Removed => (Update::Removed(removed_reason(&ev.reason)), 4),
                FlowEventKind::Modified => (Update::Modified, 8),
            };
            if m.flags & bit == 0 {
                continue;
            }
            let mut w = match m.kind {
                MonitorKind::Of14 => MultipartWriter::new(v, 0, mp::FLOW_MONITOR),
                MonitorKind::Onf13 => {
                    MultipartWriter::experimenter(v, 0, ONF_VENDOR_ID, ONFST_FLOW_MONITOR)
                }
            };
            w.entry(|o| flow_update(v, m.kind, u, &ev.flow, m.flags, o));
            out.extend(w.finish());
            // One update per event is enough for one connection.
            break;
        }
        out
    }
}

#[derive(Debug, Clone, Copy)]
enum Update {
    Initial,
    Added,
    Removed(u8),
    Modified,
}

/// OFPRR_*: why a flow went.
fn removed_reason(why: &str) -> u8 {
    match why {
        "idle_timeout" => 0,
        "hard_timeout" => 1,
        "group_delete" => 3,
        _ => 2,
    }
}

/// One full flow update entry (`nx_flow_update_full` with an OXM match for the ONF form,
/// `ofp_flow_update_full` for 1.4).
fn flow_update(v: u8, k: MonitorKind, u: Update, f: &FlowSpec, flags: u16, out: &mut Vec<u8>) {
    use controlplane::openflow::oxm;
    let at = out.len();
    let (event, reason) = match (k, u) {
        (MonitorKind::Of14, Update::Initial) => (0u16, 0u8),
        (MonitorKind::Of14, Update::Added) => (1, 0),
        (MonitorKind::Of14, Update::Removed(r)) => (2, r),
        (MonitorKind::Of14, Update::Modified) => (3, 0),
        (MonitorKind::Onf13, Update::Initial | Update::Added) => (0, 0),
        (MonitorKind::Onf13, Update::Removed(r)) => (1, r),
        (MonitorKind::Onf13, Update::Modified) => (2, 0),
    };
    out.extend_from_slice(&[0, 0]); // length, patched below
    out.extend_from_slice(&event.to_be_bytes());
    match k {
        MonitorKind::Of14 => {
            out.push(f.table);
            out.push(reason);
            out.extend_from_slice(&f.idle_timeout.to_be_bytes());
            out.extend_from_slice(&f.hard_timeout.to_be_bytes());
            out.extend_from_slice(&f.priority.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
        }
        MonitorKind::Onf13 => {
            out.extend_from_slice(&(reason as u16).to_be_bytes());
            out.extend_from_slice(&f.priority.to_be_bytes());
            out.extend_from_slice(&f.idle_timeout.to_be_bytes());
            out.extend_from_slice(&f.hard_timeout.to_be_bytes());
            out.extend_from_slice(&[0, 0]); // match_len, patched below
            out.push(f.table);
            out.push(0);
        }
    }
    out.extend_from_slice(&f.cookie.to_be_bytes());
    let m_at = out.len();
    oxm::encode_match(v, &f.matches, out);
    let match_len = be16(out, m_at + 2).unwrap_or(0);
    // Actions go with the update when asked for (NXFMF_ACTIONS, OFPFMF_INSTRUCTIONS: 16).
    if flags & 16 != 0 {
        oxm::encode_instructions(v, &f.actions, out);
    }
    let len = (out.len() - at) as u16;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    if k == MonitorKind::Onf13 {
        out[at + 12..at + 14].copy_from_slice(&match_len.to_be_bytes());
    }
}

/// Whether a flow's actions output to `port` (OFPP_ANY: every flow).
fn outputs_to(f: &FlowSpec, port: u32) -> bool {
    use controlplane::flow::{FlowAction, PortRef};
    if port == controlplane::openflow::port::ANY {
        return true;
    }
    f.actions.iter().any(|a| match a {
        FlowAction::Output {
            port: PortRef::Number(n),
        } => u32::from(*n) == port,
        FlowAction::Normal => port == controlplane::openflow::port::NORMAL,
        FlowAction::Flood => port == controlplane::openflow::port::FLOOD,
        _ => false,
    })
}

fn to_group_mod(m: &group::GroupModMsg) -> FlowMod {
    match m.command {
        GroupModCommand::Add => FlowMod::AddGroup {
            group: m.group.clone(),
        },
        GroupModCommand::Modify => FlowMod::ModifyGroup {
            group: m.group.clone(),
        },
        GroupModCommand::Delete => FlowMod::DeleteGroup {
            group_id: (m.group.group_id != group_id::ALL).then_some(m.group.group_id),
        },
    }
}

/// A group mod the flow store refused: OFPGMFC_GROUP_EXISTS (0) and OFPGMFC_UNKNOWN_GROUP
/// (8) as OVS gives them, OFPGMFC_BAD_BUCKET (12) for the rest.
fn group_refused(why: String) -> OfError {
    let code = if why.contains("already exists") {
        0
    } else if why.contains("does not exist") {
        8
    } else {
        12
    };
    OfError::new(kind::GROUP_MOD_FAILED, code, why)
}

/// A batch the flow store refused: OFPFMFC_UNKNOWN with the reason in the switch's log.
fn refused(why: String) -> OfError {
    OfError::new(kind::FLOW_MOD_FAILED, 0, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use controlplane::flow::Match;

    #[derive(Default)]
    struct Fake {
        ports: Vec<PortInfo>,
        applied: Vec<Vec<FlowMod>>,
    }

    impl Datapath for Fake {
        fn datapath_id(&self) -> u64 {
            0x1234
        }
        fn bridge(&self) -> String {
            "br0".into()
        }
        fn ports(&self) -> Vec<PortInfo> {
            self.ports.clone()
        }
        fn flows(&self, _: Option<u8>, _: &[Match]) -> Result<Vec<FlowStats>, String> {
            Ok(vec![])
        }
        fn tables(&self) -> Vec<TableStats> {
            vec![]
        }
        fn groups(&self) -> Vec<GroupSpec> {
            vec![]
        }
        fn flow_mods(&mut self, mods: &[FlowMod]) -> Result<(), String> {
            self.applied.push(mods.to_vec());
            Ok(())
        }
        fn overlaps(&self, _: &FlowSpec) -> bool {
            false
        }
        fn uptime_s(&self) -> u32 {
            5
        }
    }

    fn msg(version: u8, t: u8, xid: u32, body: &[u8]) -> Vec<u8> {
        let mut m = vec![version, t];
        m.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        m.extend_from_slice(&xid.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// ovs-ofctl -O OpenFlow13's hello: version 4, a bitmap with only bit 4.
    const HELLO_13: [u8; 16] = [4, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 8, 0, 0, 0, 0x10];

    fn greeted(v: u8) -> (Session, Fake) {
        let mut s = Session::new();
        let mut dp = Fake::default();
        let hello = if v == OFP13 {
            HELLO_13.to_vec()
        } else {
            msg(v, 0, 1, &[])
        };
        let out = s.input(&hello, &mut dp);
        assert!(out.replies.is_empty() && !out.close);
        (s, dp)
    }

    #[test]
    fn hello_negotiates_the_highest_common_version() {
        let (s, _) = greeted(OFP13);
        assert_eq!(s.version(), Some(OFP13));
        // A 1.5 header without a bitmap: we answer in 1.4.
        let (s, _) = greeted(6);
        assert_eq!(s.version(), Some(OFP14));
        // Only 1.0 offered: OFPHFC_INCOMPATIBLE and the connection ends.
        let mut s = Session::new();
        let out = s.input(&[1, 0, 0, 8, 0, 0, 0, 9], &mut Fake::default());
        assert!(out.close);
        assert_eq!(&out.replies[0][8..12], &[0, 0, 0, 0]);
        assert_eq!(&out.replies[0][4..8], &[0, 0, 0, 9]);
    }

    #[test]
    fn anything_before_hello_is_refused_and_closes() {
        let mut s = Session::new();
        let out = s.input(&msg(4, 2, 3, b"hi"), &mut Fake::default());
        assert!(out.close);
        assert_eq!(out.replies[0][1], 1, "an error");
    }

    #[test]
    fn echo_features_barrier_and_config() {
        let (mut s, mut dp) = greeted(OFP13);
        let out = s.input(&msg(4, 2, 7, b"ping"), &mut dp);
        assert_eq!(out.replies, vec![msg(4, 3, 7, b"ping")]);
        let out = s.input(&msg(4, 5, 8, &[]), &mut dp);
        let f = &out.replies[0];
        assert_eq!(f[1], 6);
        assert_eq!(&f[8..16], &0x1234u64.to_be_bytes());
        assert_eq!(f[20], 255, "n_tables");
        let out = s.input(&msg(4, 20, 9, &[]), &mut dp);
        assert_eq!(out.replies, vec![msg(4, 21, 9, &[])]);
        s.input(&msg(4, 9, 10, &[0, 0, 0xff, 0xe5]), &mut dp);
        let out = s.input(&msg(4, 7, 11, &[]), &mut dp);
        assert_eq!(out.replies, vec![msg(4, 8, 11, &[0, 0, 0xff, 0xe5])]);
    }

    #[test]
    fn an_unknown_type_gets_bad_type_with_the_first_64_bytes() {
        let (mut s, mut dp) = greeted(OFP14);
        let body: Vec<u8> = (0..100).collect();
        let m = msg(5, 77, 0x42, &body);
        let out = s.input(&m, &mut dp);
        assert_eq!(out.errors, 1);
        let e = &out.replies[0];
        assert_eq!(e[0], 5);
        assert_eq!(e[1], 1);
        assert_eq!(&e[4..8], &0x42u32.to_be_bytes());
        assert_eq!(&e[8..12], &[0, 1, 0, 1]);
        assert_eq!(&e[12..], &m[..64]);
        assert!(!out.close, "the session goes on");
    }

    #[test]
    fn a_message_in_another_version_is_bad_version() {
        let (mut s, mut dp) = greeted(OFP13);
        let out = s.input(&msg(5, 2, 1, &[]), &mut dp);
        assert_eq!(&out.replies[0][8..12], &[0, 1, 0, 0]);
    }

    #[test]
    fn bundles_open_close_discard_and_commit_in_both_forms() {
        let (mut s, mut dp) = greeted(OFP14);
        let ctl = |id: u32, t: u16| {
            let mut b = id.to_be_bytes().to_vec();
            b.extend_from_slice(&t.to_be_bytes());
            b.extend_from_slice(&3u16.to_be_bytes());
            b
        };
        let out = s.input(&msg(5, 33, 1, &ctl(9, 0)), &mut dp);
        assert_eq!(out.replies, vec![msg(5, 33, 1, &ctl(9, 1))]);
        let out = s.input(&msg(5, 33, 2, &ctl(9, 2)), &mut dp);
        assert_eq!(out.replies, vec![msg(5, 33, 2, &ctl(9, 3))]);
        let out = s.input(&msg(5, 33, 3, &ctl(9, 4)), &mut dp);
        assert_eq!(out.replies, vec![msg(5, 33, 3, &ctl(9, 5))]);
        assert_eq!(
            dp.applied,
            vec![Vec::<FlowMod>::new()],
            "committed as one batch"
        );
        // Committing it again: OFPBFC_BAD_ID.
        let out = s.input(&msg(5, 33, 4, &ctl(9, 4)), &mut dp);
        assert_eq!(&out.replies[0][8..12], &[0, 17, 0, 3]);
        // The ONF form in 1.3.
        let (mut s, mut dp) = greeted(OFP13);
        let onf = |id: u32, t: u16| {
            let mut b = ONF_VENDOR_ID.to_be_bytes().to_vec();
            b.extend_from_slice(&ONFT_BUNDLE_CONTROL.to_be_bytes());
            b.extend(ctl(id, t));
            b
        };
        let out = s.input(&msg(4, 4, 5, &onf(1, 0)), &mut dp);
        assert_eq!(out.replies, vec![msg(4, 4, 5, &onf(1, 1))]);
        let out = s.input(&msg(4, 4, 6, &onf(1, 6)), &mut dp);
        assert_eq!(out.replies, vec![msg(4, 4, 6, &onf(1, 7))]);
        assert!(dp.applied.is_empty(), "a discarded bundle changes nothing");
    }

    #[test]
    fn nicira_setup_messages_are_accepted() {
        let (mut s, mut dp) = greeted(OFP13);
        for t in [12u32, 16, 20] {
            let mut b = NX_VENDOR_ID.to_be_bytes().to_vec();
            b.extend_from_slice(&t.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, 2]);
            let out = s.input(&msg(4, 4, 1, &b), &mut dp);
            assert!(out.replies.is_empty(), "NXT type {t}");
        }
    }

    #[test]
    fn long_multipart_replies_are_split_with_reply_more() {
        let (mut s, mut dp) = greeted(OFP13);
        dp.ports = (1..=2000)
            .map(|n| PortInfo {
                no: n,
                name: format!("p{n}"),
                ..PortInfo::default()
            })
            .collect();
        let mut rq = vec![0, 13, 0, 0, 0, 0, 0, 0]; // PORT_DESC
        rq.truncate(8);
        let out = s.input(&msg(4, 18, 3, &rq), &mut dp);
        assert!(
            out.replies.len() >= 2,
            "2000 x 64 bytes do not fit one message"
        );
        let mut entries = 0;
        for (i, r) in out.replies.iter().enumerate() {
            let len = u16::from_be_bytes([r[2], r[3]]) as usize;
            assert_eq!(len, r.len());
            let more = u16::from_be_bytes([r[10], r[11]]);
            assert_eq!(more, u16::from(i + 1 < out.replies.len()));
            entries += (r.len() - 16) / 64;
        }
        assert_eq!(entries, 2000);
        // Table stats: all 255 tables.
        let out = s.input(&msg(4, 18, 4, &[0, 3, 0, 0, 0, 0, 0, 0]), &mut dp);
        assert_eq!(out.replies[0].len(), 16 + 255 * 24);
    }

    #[test]
    fn table_features_carry_every_property_ovs_requires() {
        let (mut s, mut dp) = greeted(OFP13);
        let out = s.input(&msg(4, 18, 5, &[0, 12, 0, 0, 0, 0, 0, 0]), &mut dp);
        let mut tables = 0;
        for r in &out.replies {
            let mut at = 16;
            while at < r.len() {
                let len = u16::from_be_bytes([r[at], r[at + 1]]) as usize;
                assert_eq!(len % 8, 0);
                let table = r[at + 2];
                let mut seen = 0u32;
                let mut p = at + 64;
                while p < at + len {
                    let t = u16::from_be_bytes([r[p], r[p + 1]]);
                    let plen = u16::from_be_bytes([r[p + 2], r[p + 3]]) as usize;
                    assert!(plen >= 4);
                    if t == 2 {
                        let next = &r[p + 4..p + plen];
                        assert_eq!(next.len(), 254 - table as usize, "table {table}");
                        assert!(next.iter().all(|&n| n > table && n < 255));
                    }
                    seen |= 1 << t;
                    p += plen.div_ceil(8) * 8;
                }
                // OFPTFPT13_REQUIRED in OVS: properties 0, 2, 4, 6, 8, 10, 12, 14.
                assert_eq!(seen & 0x5555, 0x5555, "table {table}");
                tables += 1;
                at += len;
            }
        }
        assert_eq!(tables, 255);
        assert!(out.replies.len() > 1, "split with REPLY_MORE");
    }

    #[test]
    fn packet_out_is_refused_as_an_unsupported_type() {
        let (mut s, mut dp) = greeted(OFP13);
        let mut b = 0xffff_ffffu32.to_be_bytes().to_vec(); // no buffer
        b.extend_from_slice(&0xffff_fffdu32.to_be_bytes()); // in_port CONTROLLER
        b.extend_from_slice(&16u16.to_be_bytes());
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&[0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]); // output:1
        b.extend_from_slice(&[0xff; 14]); // a frame
        let out = s.input(&msg(4, 13, 3, &b), &mut dp);
        assert_eq!(out.errors, 1);
        assert_eq!(&out.replies[0][8..12], &[0, 1, 0, 1], "OFPBRC_BAD_TYPE");
        assert!(dp.applied.is_empty());
    }
}
