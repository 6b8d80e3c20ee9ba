//! Actions: the OpenFlow 1.3/1.4 ones and the Nicira extensions OVS writes in OpenFlow 1.3
//! (resubmit, reg_load/reg_load2, reg_move, note, learn, output_reg/output_reg2,
//! conjunction, set_tunnel/set_tunnel64, dec_ttl), decoded into [`FlowAction`].

use super::error::kind;
use super::fields::{be16, be32, be64, pad8, patch16, put_n, slice, subfield, Mf};
use super::oxm::{port16_to_32, port_from_of, port_to_of, read_oxm};
use super::{port, OfError, NX_VENDOR_ID};
use crate::flow::{Field, FieldRange, FlowAction, LearnItem, LearnSpec, PortRef};
use crate::proto::MacAddr;

/// OFPAT_* types.
pub mod ty {
    pub const OUTPUT: u16 = 0;
    pub const PUSH_VLAN: u16 = 17;
    pub const POP_VLAN: u16 = 18;
    pub const GROUP: u16 = 22;
    pub const DEC_NW_TTL: u16 = 24;
    pub const SET_FIELD: u16 = 25;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// NXAST_* subtypes.
pub mod nx {
    pub const RESUBMIT: u16 = 1;
    pub const SET_TUNNEL: u16 = 2;
    pub const REG_MOVE: u16 = 6;
    pub const REG_LOAD: u16 = 7;
    pub const NOTE: u16 = 8;
    pub const SET_TUNNEL64: u16 = 9;
    pub const RESUBMIT_TABLE: u16 = 14;
    pub const OUTPUT_REG: u16 = 15;
    pub const LEARN: u16 = 16;
    /// OpenFlow 1.0 only: OVS refuses it in 1.3 (OFPAT_DEC_NW_TTL is the action there).
    pub const DEC_TTL: u16 = 18;
    pub const OUTPUT_REG2: u16 = 32;
    pub const REG_LOAD2: u16 = 33;
    pub const CONJUNCTION: u16 = 34;
}

/// OFPBAC_* codes.
pub mod code {
    pub const BAD_TYPE: u16 = 0;
    pub const BAD_LEN: u16 = 1;
    pub const BAD_EXPERIMENTER: u16 = 2;
    pub const BAD_EXP_TYPE: u16 = 3;
    pub const BAD_OUT_PORT: u16 = 4;
    pub const BAD_ARGUMENT: u16 = 5;
    pub const BAD_SET_TYPE: u16 = 13;
    pub const BAD_SET_LEN: u16 = 14;
    pub const BAD_SET_ARGUMENT: u16 = 15;
}

fn err(code: u16, detail: impl Into<String>) -> OfError {
    OfError::new(kind::BAD_ACTION, code, detail)
}

mod field {
    use std::ops::Range;
    pub const TYPE: Range<usize> = 0..2;
    pub const LEN: Range<usize> = 2..4;
    pub const VENDOR: Range<usize> = 4..8;
    pub const SUBTYPE: Range<usize> = 8..10;
}

/// A read view of one action: type, length (a multiple of 8, inside the buffer) and body.
#[derive(Debug, Clone, Copy)]
pub struct ActionView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ActionView<T> {
    pub fn new_checked(buffer: T) -> Result<Self, OfError> {
        let v = ActionView { buffer };
        let b = v.buffer.as_ref();
        if b.len() < 8 {
            return Err(err(code::BAD_LEN, "short action"));
        }
        let len = v.len();
        if len < 8 || len % 8 != 0 || len > b.len() {
            return Err(err(code::BAD_LEN, format!("action length {len}")));
        }
        if v.action_type() == ty::EXPERIMENTER && len < 16 {
            return Err(err(code::BAD_LEN, "short experimenter action"));
        }
        Ok(v)
    }
    pub fn action_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::TYPE], 0)
    }
    pub fn len(&self) -> usize {
        usize::from(be16(&self.buffer.as_ref()[field::LEN], 0))
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn vendor(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::VENDOR], 0)
    }
    pub fn subtype(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SUBTYPE], 0)
    }
    /// The whole action.
    pub fn bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.len()]
    }
}

/// Decodes an action list (packet-out, group buckets).
pub fn decode_actions(_version: u8, b: &[u8]) -> Result<Vec<FlowAction>, OfError> {
    let mut out = Vec::new();
    let mut rest = b;
    while !rest.is_empty() {
        let a = ActionView::new_checked(rest)?;
        decode_one(&a, &mut out)?;
        rest = &rest[a.len()..];
    }
    Ok(out)
}

fn need(b: &[u8], len: usize) -> Result<(), OfError> {
    if b.len() != len {
        return Err(err(
            code::BAD_LEN,
            format!("action length {}, want {len}", b.len()),
        ));
    }
    Ok(())
}

fn output_port(p: u32) -> Result<FlowAction, OfError> {
    Ok(match p {
        port::NORMAL => FlowAction::Normal,
        port::FLOOD | port::ALL => FlowAction::Flood,
        port::IN_PORT => FlowAction::InPort,
        p => match port_from_of(p) {
            Some(port) => FlowAction::Output { port },
            None => return Err(err(code::BAD_OUT_PORT, format!("output port {p:#x}"))),
        },
    })
}

/// A set_field of a whole field (or a masked one, as reg_load2 and masked set_field carry)
/// as the project's action.
fn set_field(mf: Mf, value: u128, mask: u128, masked: bool) -> Result<FlowAction, OfError> {
    if masked {
        // A masked write is a load of the mask's bit range, which must be contiguous.
        let field = mf
            .to_field()
            .ok_or_else(|| err(code::BAD_SET_TYPE, format!("set_field {mf:?}")))?;
        if mask == 0 {
            return Err(err(code::BAD_SET_ARGUMENT, "empty mask"));
        }
        let start = mask.trailing_zeros();
        let width = (mask >> start).trailing_ones();
        if (mask >> start).checked_shr(width).unwrap_or(0) != 0 || start + width > field.bits() {
            return Err(err(
                code::BAD_SET_ARGUMENT,
                "set_field mask is not one bit range",
            ));
        }
        return Ok(FlowAction::Load {
            dst: FieldRange {
                field,
                start: start as u8,
                end: (start + width - 1) as u8,
            },
            value: ((value & mask) >> start) as u64,
        });
    }
    Ok(match mf {
        Mf::TunIpv6Dst => FlowAction::SetTunIpv6Dst {
            value: std::net::Ipv6Addr::from(value),
        },
        Mf::IpDscp => {
            if value > 63 {
                return Err(err(code::BAD_SET_ARGUMENT, "ip_dscp above 63"));
            }
            FlowAction::ModNwTos {
                tos: (value as u8) << 2,
            }
        }
        Mf::InPort => {
            let p = value as u32;
            let n = if p <= u32::from(crate::flow::MAX_PORT) {
                p as u16
            } else if p >= 0xffff_ff00 {
                (p & 0xffff) as u16
            } else {
                return Err(err(code::BAD_SET_ARGUMENT, "in_port"));
            };
            FlowAction::SetField {
                field: Field::InPort,
                value: u64::from(n),
            }
        }
        Mf::VlanVid if value & 0xe000 != 0 => {
            return Err(err(code::BAD_SET_ARGUMENT, "vlan_vid above 13 bits"))
        }
        Mf::VlanPcp if value > 7 => return Err(err(code::BAD_SET_ARGUMENT, "vlan_pcp above 7")),
        mf => {
            let field = mf
                .to_field()
                .ok_or_else(|| err(code::BAD_SET_TYPE, format!("set_field {mf:?}")))?;
            FlowAction::SetField {
                field,
                value: value as u64,
            }
        }
    })
}

fn decode_one<T: AsRef<[u8]>>(a: &ActionView<T>, out: &mut Vec<FlowAction>) -> Result<(), OfError> {
    let b = a.bytes();
    match a.action_type() {
        ty::OUTPUT => {
            need(b, 16)?;
            out.push(output_port(be32(b, 4))?);
        }
        ty::PUSH_VLAN => {
            need(b, 8)?;
            let ethertype = be16(b, 4);
            if ethertype != 0x8100 && ethertype != 0x88a8 {
                return Err(err(
                    code::BAD_ARGUMENT,
                    format!("push_vlan ethertype {ethertype:#x}"),
                ));
            }
            out.push(FlowAction::PushVlan { ethertype });
        }
        ty::POP_VLAN => {
            need(b, 8)?;
            out.push(FlowAction::PopVlan);
        }
        ty::GROUP => {
            need(b, 8)?;
            let id = be32(b, 4);
            if id > crate::flow::MAX_GROUP {
                return Err(OfError::new(kind::BAD_ACTION, 9, format!("group {id:#x}")));
            }
            out.push(FlowAction::Group { id });
        }
        ty::DEC_NW_TTL => {
            need(b, 8)?;
            out.push(FlowAction::DecTtl);
        }
        ty::SET_FIELD => {
            let (o, used) = read_oxm(&b[4..]).map_err(|e| match e.code {
                super::oxm::code::BAD_FIELD => err(code::BAD_SET_TYPE, e.detail),
                _ => err(code::BAD_SET_LEN, e.detail),
            })?;
            // The OXM plus padding fill the action exactly.
            if (4 + used).div_ceil(8) * 8 != b.len() {
                return Err(err(code::BAD_SET_LEN, "set_field length"));
            }
            out.push(set_field(o.mf, o.value, o.mask, o.masked)?);
        }
        ty::EXPERIMENTER => {
            if a.vendor() != NX_VENDOR_ID {
                return Err(err(
                    code::BAD_EXPERIMENTER,
                    format!("experimenter {:#x}", a.vendor()),
                ));
            }
            decode_nx(a.subtype(), b, out)?;
        }
        t => return Err(err(code::BAD_TYPE, format!("action type {t}"))),
    }
    Ok(())
}

fn ofs_nbits(v: u16) -> (u32, u32) {
    (u32::from(v >> 6), u32::from(v & 0x3f) + 1)
}

/// Reads a field header (4 bytes, or 8 for an experimenter OXM, which no field here uses).
fn nx_header(b: &[u8], at: usize) -> Result<u32, OfError> {
    let h = slice(b, at, 4).ok_or_else(|| err(code::BAD_LEN, "short field header"))?;
    Ok(be32(h, 0))
}

fn decode_nx(sub: u16, b: &[u8], out: &mut Vec<FlowAction>) -> Result<(), OfError> {
    match sub {
        nx::RESUBMIT | nx::RESUBMIT_TABLE => {
            need(b, 16)?;
            let in_port = be16(b, 10);
            let table = if sub == nx::RESUBMIT { 0xff } else { b[12] };
            if sub == nx::RESUBMIT_TABLE && b[13..16] != [0, 0, 0] {
                return Err(err(code::BAD_ARGUMENT, "resubmit padding"));
            }
            let in_port = match port16_to_32(in_port) {
                port::IN_PORT => None,
                p => Some(
                    port_from_of(p)
                        .ok_or_else(|| err(code::BAD_OUT_PORT, format!("resubmit port {p:#x}")))?,
                ),
            };
            out.push(FlowAction::Resubmit { in_port, table });
        }
        nx::SET_TUNNEL => {
            need(b, 16)?;
            out.push(FlowAction::SetField {
                field: Field::TunId,
                value: u64::from(be32(b, 12)),
            });
        }
        nx::SET_TUNNEL64 => {
            need(b, 24)?;
            out.push(FlowAction::SetField {
                field: Field::TunId,
                value: be64(b, 16),
            });
        }
        nx::REG_MOVE => {
            if b.len() < 24 {
                return Err(err(code::BAD_LEN, "short move"));
            }
            let n_bits = u32::from(be16(b, 10));
            let src_ofs = u32::from(be16(b, 12));
            let dst_ofs = u32::from(be16(b, 14));
            let src = subfield(nx_header(b, 16)?, src_ofs, n_bits)?;
            let dst = subfield(nx_header(b, 20)?, dst_ofs, n_bits)?;
            out.push(FlowAction::Move { src, dst });
        }
        nx::REG_LOAD => {
            need(b, 24)?;
            let (ofs, n) = ofs_nbits(be16(b, 10));
            let dst = subfield(be32(b, 12), ofs, n)?;
            let value = be64(b, 16);
            if n < 64 && value >> n != 0 {
                return Err(err(code::BAD_ARGUMENT, "load value wider than its field"));
            }
            out.push(FlowAction::Load { dst, value });
        }
        nx::REG_LOAD2 => {
            let (o, used) = read_oxm(&b[10..]).map_err(|e| err(code::BAD_SET_LEN, e.detail))?;
            if (10 + used).div_ceil(8) * 8 != b.len() {
                return Err(err(code::BAD_LEN, "reg_load2 length"));
            }
            out.push(set_field(o.mf, o.value, o.mask, o.masked)?);
        }
        nx::NOTE => {
            // Trailing zeros are padding OVS adds; ovs-ofctl prints them, so keep them.
            out.push(FlowAction::Note {
                bytes: b[10..].to_vec(),
            });
        }
        nx::OUTPUT_REG => {
            need(b, 24)?;
            let (ofs, n) = ofs_nbits(be16(b, 10));
            let src = subfield(be32(b, 12), ofs, n)?;
            out.push(FlowAction::OutputReg { src });
        }
        nx::OUTPUT_REG2 => {
            if b.len() < 24 {
                return Err(err(code::BAD_LEN, "short output_reg2"));
            }
            let (ofs, n) = ofs_nbits(be16(b, 10));
            let src = subfield(nx_header(b, 14)?, ofs, n)?;
            out.push(FlowAction::OutputReg { src });
        }
        nx::CONJUNCTION => {
            need(b, 16)?;
            let clause = b[10];
            let n_clauses = b[11];
            let id = be32(b, 12);
            if !(2..=64).contains(&n_clauses) || clause >= n_clauses {
                return Err(err(code::BAD_ARGUMENT, "conjunction clause"));
            }
            out.push(FlowAction::Conjunction {
                id,
                clause: clause + 1,
                n_clauses,
            });
        }
        nx::LEARN => out.push(FlowAction::Learn(Box::new(decode_learn(b)?))),
        s => return Err(err(code::BAD_EXP_TYPE, format!("Nicira action {s}"))),
    }
    Ok(())
}

/// NX_LEARN flags.
const LEARN_SEND_FLOW_REM: u16 = 1;
const LEARN_DELETE_LEARNED: u16 = 2;
const LEARN_SRC_IMMEDIATE: u16 = 1 << 13;
const LEARN_DST_MATCH: u16 = 0;
const LEARN_DST_LOAD: u16 = 1 << 11;
const LEARN_DST_OUTPUT: u16 = 2 << 11;
const LEARN_HEADER: usize = 32;

fn decode_learn(b: &[u8]) -> Result<LearnSpec, OfError> {
    if b.len() < LEARN_HEADER {
        return Err(err(code::BAD_LEN, "short learn"));
    }
    let flags = be16(b, 24);
    if flags & !(LEARN_SEND_FLOW_REM | LEARN_DELETE_LEARNED) != 0 {
        return Err(err(code::BAD_ARGUMENT, "learn flags"));
    }
    let table = b[26];
    if table == 0xff {
        return Err(err(code::BAD_ARGUMENT, "learn table"));
    }
    let mut spec = LearnSpec {
        idle_timeout: be16(b, 10),
        hard_timeout: be16(b, 12),
        priority: be16(b, 14),
        cookie: be64(b, 16),
        send_flow_rem: flags & LEARN_SEND_FLOW_REM != 0,
        delete_learned: flags & LEARN_DELETE_LEARNED != 0,
        table,
        fin_idle_timeout: be16(b, 28),
        fin_hard_timeout: be16(b, 30),
        items: Vec::new(),
    };
    let mut at = LEARN_HEADER;
    let bad = || err(code::BAD_ARGUMENT, "learn spec");
    while at + 2 <= b.len() {
        let h = be16(b, at);
        if h == 0 {
            break;
        }
        at += 2;
        let n_bits = u32::from(h & 0x7ff);
        let immediate = h & LEARN_SRC_IMMEDIATE != 0;
        let dst_type = h & (3 << 11);
        if h & 0xc000 != 0 || dst_type == 3 << 11 || n_bits == 0 {
            return Err(bad());
        }
        let mut value = 0u64;
        let mut src = None;
        if immediate {
            let n = (n_bits as usize).div_ceil(16) * 2;
            let v = slice(b, at, n).ok_or_else(bad)?;
            if n > 8 && v[..n - 8].iter().any(|&x| x != 0) {
                return Err(bad());
            }
            value = super::fields::be_n(&v[n.saturating_sub(8)..]) as u64;
            at += n;
        } else {
            let f = slice(b, at, 6).ok_or_else(bad)?;
            src = Some(subfield(be32(f, 0), u32::from(be16(f, 4)), n_bits)?);
            at += 6;
        }
        let mut dst = None;
        if dst_type != LEARN_DST_OUTPUT {
            let f = slice(b, at, 6).ok_or_else(bad)?;
            dst = Some(subfield(be32(f, 0), u32::from(be16(f, 4)), n_bits)?);
            at += 6;
        }
        let item = match (dst_type, src, dst) {
            (LEARN_DST_MATCH, Some(src), Some(dst)) => LearnItem::MatchField { dst, src },
            (LEARN_DST_MATCH, None, Some(dst)) => LearnItem::MatchValue { dst, value },
            (LEARN_DST_LOAD, Some(src), Some(dst)) => LearnItem::LoadField { dst, src },
            (LEARN_DST_LOAD, None, Some(dst)) => LearnItem::LoadValue { dst, value },
            (LEARN_DST_OUTPUT, Some(src), None) => LearnItem::Output { src },
            _ => return Err(bad()),
        };
        spec.items.push(item);
    }
    Ok(spec)
}

/// Appends an action list.
pub fn encode_actions(_version: u8, a: &[FlowAction], out: &mut Vec<u8>) {
    for x in a {
        encode_one(x, out);
    }
}

fn simple(out: &mut Vec<u8>, t: u16, arg: u32) {
    out.extend_from_slice(&t.to_be_bytes());
    out.extend_from_slice(&8u16.to_be_bytes());
    out.extend_from_slice(&arg.to_be_bytes());
}

fn output(out: &mut Vec<u8>, p: u32) {
    out.extend_from_slice(&ty::OUTPUT.to_be_bytes());
    out.extend_from_slice(&16u16.to_be_bytes());
    out.extend_from_slice(&p.to_be_bytes());
    // max_len: what OVS sends (only meaningful for the controller).
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&[0; 6]);
}

/// Starts a Nicira action; returns where it begins (length patched by [`nx_end`]).
fn nx_start(out: &mut Vec<u8>, sub: u16) -> usize {
    let at = out.len();
    out.extend_from_slice(&ty::EXPERIMENTER.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&NX_VENDOR_ID.to_be_bytes());
    out.extend_from_slice(&sub.to_be_bytes());
    at
}

fn nx_end(out: &mut Vec<u8>, at: usize) {
    pad8(out, at);
    let len = out.len() - at;
    patch16(out, at + 2, len);
}

fn set_field_oxm(out: &mut Vec<u8>, mf: Mf, value: u128) {
    let at = out.len();
    out.extend_from_slice(&ty::SET_FIELD.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&mf.header(false).to_be_bytes());
    put_n(out, value, mf.bytes());
    pad8(out, at);
    let len = out.len() - at;
    patch16(out, at + 2, len);
}

fn ofs_nbits_of(r: &FieldRange) -> u16 {
    (u16::from(r.start) << 6) | (r.width() as u16 - 1)
}

fn mac_bits(m: &MacAddr) -> u128 {
    super::fields::be_n(&m.0)
}

fn encode_one(a: &FlowAction, out: &mut Vec<u8>) {
    match a {
        FlowAction::Output { port } => output(out, port_to_of(port)),
        FlowAction::Normal => output(out, port::NORMAL),
        FlowAction::Flood => output(out, port::FLOOD),
        FlowAction::InPort => output(out, port::IN_PORT),
        FlowAction::Drop => {}
        FlowAction::SetField { field, value } => match field {
            Field::InPort => {
                set_field_oxm(out, Mf::InPort, u128::from(port16_to_32(*value as u16)))
            }
            f => set_field_oxm(out, Mf::from_field(*f), u128::from(*value)),
        },
        FlowAction::SetTunIpv6Dst { value } => {
            set_field_oxm(out, Mf::TunIpv6Dst, u128::from(*value))
        }
        FlowAction::Load { dst, value } => {
            let at = nx_start(out, nx::REG_LOAD);
            out.extend_from_slice(&ofs_nbits_of(dst).to_be_bytes());
            out.extend_from_slice(&Mf::from_field(dst.field).nxm_header().to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
            nx_end(out, at);
        }
        FlowAction::Move { src, dst } => {
            let at = nx_start(out, nx::REG_MOVE);
            out.extend_from_slice(&(src.width() as u16).to_be_bytes());
            out.extend_from_slice(&u16::from(src.start).to_be_bytes());
            out.extend_from_slice(&u16::from(dst.start).to_be_bytes());
            out.extend_from_slice(&Mf::from_field(src.field).nxm_header().to_be_bytes());
            out.extend_from_slice(&Mf::from_field(dst.field).nxm_header().to_be_bytes());
            nx_end(out, at);
        }
        FlowAction::ModDlSrc { mac } => set_field_oxm(out, Mf::EthSrc, mac_bits(mac)),
        FlowAction::ModDlDst { mac } => set_field_oxm(out, Mf::EthDst, mac_bits(mac)),
        FlowAction::DecTtl => simple(out, ty::DEC_NW_TTL, 0),
        FlowAction::Resubmit { in_port, table } => {
            let p = in_port.as_ref().map_or(port::IN_PORT, port_to_of);
            let at = nx_start(out, nx::RESUBMIT_TABLE);
            out.extend_from_slice(&((p & 0xffff) as u16).to_be_bytes());
            out.push(*table);
            out.extend_from_slice(&[0; 3]);
            nx_end(out, at);
        }
        FlowAction::GotoTable { .. } => {}
        FlowAction::Note { bytes } => {
            let at = nx_start(out, nx::NOTE);
            out.extend_from_slice(bytes);
            // At least 6 bytes of note (the action is at least 16 bytes).
            while out.len() - at < 16 {
                out.push(0);
            }
            nx_end(out, at);
        }
        FlowAction::OutputReg { src } => {
            let at = nx_start(out, nx::OUTPUT_REG);
            out.extend_from_slice(&ofs_nbits_of(src).to_be_bytes());
            out.extend_from_slice(&Mf::from_field(src.field).nxm_header().to_be_bytes());
            out.extend_from_slice(&0u16.to_be_bytes());
            out.extend_from_slice(&[0; 6]);
            nx_end(out, at);
        }
        FlowAction::PushVlan { ethertype } => {
            simple(out, ty::PUSH_VLAN, u32::from(*ethertype) << 16)
        }
        FlowAction::PopVlan => simple(out, ty::POP_VLAN, 0),
        FlowAction::ModVlanVid { vid } => {
            set_field_oxm(out, Mf::VlanVid, u128::from(0x1000 | (vid & 0xfff)))
        }
        FlowAction::ModVlanPcp { pcp } => set_field_oxm(out, Mf::VlanPcp, u128::from(pcp & 7)),
        FlowAction::ModNwTos { tos } => set_field_oxm(out, Mf::IpDscp, u128::from(tos >> 2)),
        FlowAction::Group { id } => simple(out, ty::GROUP, *id),
        FlowAction::Learn(spec) => encode_learn(spec, out),
        FlowAction::Conjunction {
            id,
            clause,
            n_clauses,
        } => {
            let at = nx_start(out, nx::CONJUNCTION);
            out.push(clause.saturating_sub(1));
            out.push(*n_clauses);
            out.extend_from_slice(&id.to_be_bytes());
            nx_end(out, at);
        }
    }
}

fn learn_field(out: &mut Vec<u8>, r: &FieldRange) {
    out.extend_from_slice(&Mf::from_field(r.field).nxm_header().to_be_bytes());
    out.extend_from_slice(&u16::from(r.start).to_be_bytes());
}

fn learn_value(out: &mut Vec<u8>, value: u64, n_bits: u32) {
    let n = (n_bits as usize).div_ceil(16) * 2;
    put_n(out, u128::from(value), n);
}

fn encode_learn(l: &LearnSpec, out: &mut Vec<u8>) {
    let at = nx_start(out, nx::LEARN);
    out.extend_from_slice(&l.idle_timeout.to_be_bytes());
    out.extend_from_slice(&l.hard_timeout.to_be_bytes());
    out.extend_from_slice(&l.priority.to_be_bytes());
    out.extend_from_slice(&l.cookie.to_be_bytes());
    let flags = if l.send_flow_rem {
        LEARN_SEND_FLOW_REM
    } else {
        0
    } | if l.delete_learned {
        LEARN_DELETE_LEARNED
    } else {
        0
    };
    out.extend_from_slice(&flags.to_be_bytes());
    out.push(l.table);
    out.push(0);
    out.extend_from_slice(&l.fin_idle_timeout.to_be_bytes());
    out.extend_from_slice(&l.fin_hard_timeout.to_be_bytes());
    for item in &l.items {
        match item {
            LearnItem::MatchField { dst, src } => {
                out.extend_from_slice(&(LEARN_DST_MATCH | dst.width() as u16).to_be_bytes());
                learn_field(out, src);
                learn_field(out, dst);
            }
            LearnItem::MatchValue { dst, value } => {
                out.extend_from_slice(
                    &(LEARN_SRC_IMMEDIATE | LEARN_DST_MATCH | dst.width() as u16).to_be_bytes(),
                );
                learn_value(out, *value, dst.width());
                learn_field(out, dst);
            }
            LearnItem::LoadField { dst, src } => {
                out.extend_from_slice(&(LEARN_DST_LOAD | dst.width() as u16).to_be_bytes());
                learn_field(out, src);
                learn_field(out, dst);
            }
            LearnItem::LoadValue { dst, value } => {
                out.extend_from_slice(
                    &(LEARN_SRC_IMMEDIATE | LEARN_DST_LOAD | dst.width() as u16).to_be_bytes(),
                );
                learn_value(out, *value, dst.width());
                learn_field(out, dst);
            }
            LearnItem::Output { src } => {
                out.extend_from_slice(&(LEARN_DST_OUTPUT | src.width() as u16).to_be_bytes());
                learn_field(out, src);
            }
        }
    }
    nx_end(out, at);
}

/// The port a flow's output names, for out_port filters: numbers as themselves.
pub fn port_number(p: &PortRef) -> u32 {
    port_to_of(p)
}
