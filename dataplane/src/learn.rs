//! The `learn` action: what a packet's walk asks to learn goes from the worker to the switch
//! through a bounded queue; the switch turns each event into a flow.
//!
//! - On the packet path a learn costs a few reads of the key, one probe of a small per-worker
//!   filter (the same learn within [`REPEAT_MS`] is not sent again) and, for a new one, one
//!   lock-free push into a preallocated queue ([`LearnQueue`], capacity [`QUEUE_LEN`]). A full
//!   queue is a counted loss of the learn (`learn_queue_full`); the packet is forwarded anyway.
//! - The switch drains the queue every few milliseconds and applies the learned flows
//!   ([`build`]) as adds with the spec's table, priority, cookie and timeouts, one batch per
//!   drain; an identical learned flow that is already there only has its timeouts restarted.

use controlplane::flow::{
    Field, FieldRange, FlowAction, FlowSpec, LearnItem, LearnSpec, Match, PortRef,
};
use controlplane::proto::MacAddr;
use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::flow::key::u64_mac;

/// Values of the packet a learn reads (one per item with a source field); a spec with more
/// source items than this is refused when the flows are compiled.
pub const LEARN_VALS: usize = 4;
/// Learn events the queue holds between two drains of the switch.
pub const QUEUE_LEN: usize = 4096;
/// The same learn (same spec, same values) is sent once per this many milliseconds per
/// worker.
pub const REPEAT_MS: u64 = 100;
/// Slots of a worker's repeat filter.
const FILTER_SLOTS: usize = 256;

/// One learn to carry out: spec `index` of flow-set `version`, with the packet's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LearnEvent {
    pub version: u64,
    pub index: u32,
    pub vals: [u64; LEARN_VALS],
}

impl LearnEvent {
    fn hash(&self) -> u64 {
        let mut h = self.version ^ ((self.index as u64) << 40);
        for v in self.vals {
            h = (h.rotate_left(7) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        h
    }
}

/// The workers' side of the queue (cloned into every pipeline).
pub type LearnSender = Sender<LearnEvent>;

/// A bounded queue of learn events, allocated once.
pub struct LearnQueue {
    pub tx: LearnSender,
    pub rx: Receiver<LearnEvent>,
}

impl Default for LearnQueue {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_LEN);
        LearnQueue { tx, rx }
    }
}

/// What became of a learn on the packet path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// The same learn went out less than [`REPEAT_MS`] ago.
    Repeat,
    /// The queue was full: the learn is lost (the packet is not).
    Full,
}

/// A worker's filter of recent learns: a direct-mapped table of (hash, time).
pub struct LearnFilter {
    slots: Box<[(u64, u64)]>,
}

impl Default for LearnFilter {
    fn default() -> Self {
        LearnFilter {
            slots: vec![(0, 0); FILTER_SLOTS].into_boxed_slice(),
        }
    }
}

impl LearnFilter {
    /// Sends `e` unless the same learn was sent within [`REPEAT_MS`] of `now_ms`.
    #[inline]
    pub fn send(&mut self, tx: &LearnSender, e: LearnEvent, now_ms: u64) -> Sent {
        let h = e.hash() | 1;
        let slot = &mut self.slots[(h as usize) % FILTER_SLOTS];
        if slot.0 == h && now_ms < slot.1 + REPEAT_MS {
            return Sent::Repeat;
        }
        match tx.try_send(e) {
            Ok(()) => {
                *slot = (h, now_ms);
                Sent::Queued
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => Sent::Full,
        }
    }
}

/// Whether the spec can be learned from a packet: at most [`LEARN_VALS`] source items, and
/// every destination one [`build`] can express.
pub fn check(spec: &LearnSpec) -> Result<(), String> {
    let sources = spec.items.iter().filter(|i| source(i).is_some()).count();
    if sources > LEARN_VALS {
        return Err(format!(
            "learn: at most {LEARN_VALS} fields may be read from the packet"
        ));
    }
    Ok(())
}

/// The field an item reads from the packet, if any.
pub fn source(item: &LearnItem) -> Option<FieldRange> {
    match item {
        LearnItem::MatchField { src, .. }
        | LearnItem::LoadField { src, .. }
        | LearnItem::Output { src } => Some(*src),
        LearnItem::MatchValue { .. } | LearnItem::LoadValue { .. } => None,
    }
}

fn range_mask(r: FieldRange) -> u64 {
    let width = (r.end as u32).saturating_sub(r.start as u32) + 1;
    let m = if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    m << r.start
}

/// The flow a learn event asks for: `vals` are the packet's source values, in item order.
pub fn build(spec: &LearnSpec, vals: &[u64; LEARN_VALS]) -> Result<FlowSpec, String> {
    // (field, value, mask) per match field, merged when items share a field.
    let mut fields: Vec<(Field, u64, u64)> = Vec::new();
    let mut actions = Vec::new();
    let mut next = 0usize;
    let mut take = || {
        let v = vals.get(next).copied().unwrap_or(0);
        next += 1;
        v
    };
    for item in &spec.items {
        match item {
            LearnItem::MatchField { dst, .. } | LearnItem::MatchValue { dst, .. } => {
                let value = match item {
                    LearnItem::MatchValue { value, .. } => *value,
                    _ => take(),
                };
                // VLAN VID and PCP are parts of the TCI.
                let (field, shift) = match dst.field {
                    Field::VlanVid => (Field::VlanTci, 0),
                    Field::VlanPcp => (Field::VlanTci, 13),
                    f => (f, 0),
                };
                let mask = range_mask(*dst) << shift;
                let v = (value << (dst.start as u32 + shift)) & mask;
                match fields.iter_mut().find(|(f, _, _)| *f == field) {
                    Some(e) => {
                        e.1 = (e.1 & !mask) | v;
                        e.2 |= mask;
                    }
                    None => fields.push((field, v, mask)),
                }
            }
            LearnItem::LoadField { dst, .. } => actions.push(FlowAction::Load {
                dst: *dst,
                value: take(),
            }),
            LearnItem::LoadValue { dst, value } => actions.push(FlowAction::Load {
                dst: *dst,
                value: *value,
            }),
            LearnItem::Output { .. } => actions.push(FlowAction::Output {
                port: PortRef::Number(take() as u16),
            }),
        }
    }
    let mut matches = Vec::new();
    for (field, value, mask) in fields {
        matches.push(to_match(field, value, mask)?);
    }
    controlplane::flow_syntax::canonicalize(&mut matches);
    Ok(FlowSpec {
        table: spec.table,
        priority: spec.priority,
        cookie: spec.cookie,
        idle_timeout: spec.idle_timeout,
        hard_timeout: spec.hard_timeout,
        matches,
        actions,
    })
}

fn whole(field: Field, mask: u64) -> Result<(), String> {
    let all = range_mask(FieldRange::whole(field));
    if mask == all {
        Ok(())
    } else {
        Err(format!("learn: {field:?} can only be matched whole"))
    }
}

fn to_match(field: Field, value: u64, mask: u64) -> Result<Match, String> {
    let mac = |v: u64| MacAddr(u64_mac(v));
    let ip = |v: u64| std::net::Ipv4Addr::from(v as u32);
    Ok(match field {
        Field::DlSrc => Match::DlSrc {
            value: mac(value),
            mask: mac(mask),
        },
        Field::DlDst => Match::DlDst {
            value: mac(value),
            mask: mac(mask),
        },
        Field::NwSrc => Match::NwSrc {
            value: ip(value),
            mask: ip(mask),
        },
        Field::NwDst => Match::NwDst {
            value: ip(value),
            mask: ip(mask),
        },
        Field::TpSrc => Match::TpSrc {
            value: value as u16,
            mask: mask as u16,
        },
        Field::TpDst => Match::TpDst {
            value: value as u16,
            mask: mask as u16,
        },
        Field::TunId => Match::TunId { value, mask },
        Field::TunSrc => Match::TunSrc {
            value: ip(value),
            mask: ip(mask),
        },
        Field::TunDst => Match::TunDst {
            value: ip(value),
            mask: ip(mask),
        },
        Field::Reg(index) => Match::Reg {
            index,
            value: value as u32,
            mask: mask as u32,
        },
        Field::VlanTci | Field::VlanVid | Field::VlanPcp => Match::VlanTci {
            value: value as u16,
            mask: mask as u16,
        },
        Field::PktMark => Match::PktMark {
            value: value as u32,
            mask: mask as u32,
        },
        Field::InPort => {
            whole(field, mask)?;
            Match::InPort {
                port: PortRef::Number(value as u16),
            }
        }
        Field::NwTtl => {
            whole(field, mask)?;
            Match::NwTtl { value: value as u8 }
        }
        Field::DlType => {
            whole(field, mask)?;
            Match::DlType {
                value: value as u16,
            }
        }
        Field::NwProto => {
            whole(field, mask)?;
            Match::NwProto { value: value as u8 }
        }
        Field::NwTos => return Err("learn: nw_tos cannot be matched".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OVS advanced tutorial's table 2:
    /// `learn(table=10, NXM_OF_VLAN_TCI[0..11], NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],
    /// load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15])`.
    fn tutorial() -> LearnSpec {
        let vid = FieldRange {
            field: Field::VlanTci,
            start: 0,
            end: 11,
        };
        LearnSpec {
            table: 10,
            priority: 32768,
            idle_timeout: 0,
            hard_timeout: 0,
            fin_idle_timeout: 0,
            fin_hard_timeout: 0,
            cookie: 0,
            send_flow_rem: false,
            delete_learned: false,
            items: vec![
                LearnItem::MatchField { dst: vid, src: vid },
                LearnItem::MatchField {
                    dst: FieldRange::whole(Field::DlDst),
                    src: FieldRange::whole(Field::DlSrc),
                },
                LearnItem::LoadField {
                    dst: FieldRange {
                        field: Field::Reg(0),
                        start: 0,
                        end: 15,
                    },
                    src: FieldRange::whole(Field::InPort),
                },
            ],
        }
    }

    #[test]
    fn the_tutorials_learn_builds_a_vlan_mac_flow_loading_the_port() {
        let mut spec = tutorial();
        spec.hard_timeout = 60;
        spec.cookie = 0x77;
        let f = build(&spec, &[20, 0x5000_0000_0001, 3, 0]).unwrap();
        assert_eq!(f.table, 10);
        assert_eq!((f.priority, f.hard_timeout, f.cookie), (32768, 60, 0x77));
        assert_eq!(
            f.matches,
            vec![
                Match::DlDst {
                    value: MacAddr([0x50, 0, 0, 0, 0, 1]),
                    mask: MacAddr([0xff; 6]),
                },
                Match::VlanTci {
                    value: 20,
                    mask: 0x0fff
                },
            ]
        );
        assert_eq!(
            f.actions,
            vec![FlowAction::Load {
                dst: FieldRange {
                    field: Field::Reg(0),
                    start: 0,
                    end: 15
                },
                value: 3
            }]
        );
    }

    #[test]
    fn constants_outputs_and_shared_fields() {
        let spec = LearnSpec {
            items: vec![
                LearnItem::MatchValue {
                    dst: FieldRange::whole(Field::DlType),
                    value: 0x0800,
                },
                LearnItem::MatchField {
                    dst: FieldRange::whole(Field::VlanVid),
                    src: FieldRange::whole(Field::VlanVid),
                },
                LearnItem::MatchValue {
                    dst: FieldRange::whole(Field::VlanPcp),
                    value: 5,
                },
                LearnItem::LoadValue {
                    dst: FieldRange::whole(Field::Reg(1)),
                    value: 9,
                },
                LearnItem::Output {
                    src: FieldRange::whole(Field::InPort),
                },
            ],
            ..tutorial()
        };
        let f = build(&spec, &[0x1000 | 30, 4, 0, 0]).unwrap();
        assert!(f.matches.contains(&Match::DlType { value: 0x0800 }));
        // The whole TCI, in the canonical form the syntax prints (dl_vlan + dl_vlan_pcp).
        let mut tci = vec![Match::VlanTci {
            value: 0xa000 | 0x1000 | 30,
            mask: 0xffff,
        }];
        controlplane::flow_syntax::canonicalize(&mut tci);
        assert!(tci.iter().all(|m| f.matches.contains(m)), "{:?}", f.matches);
        assert_eq!(
            f.actions,
            vec![
                FlowAction::Load {
                    dst: FieldRange::whole(Field::Reg(1)),
                    value: 9
                },
                FlowAction::Output {
                    port: PortRef::Number(4)
                }
            ]
        );
        // Part of a port number is no match the flow language has.
        let bad = LearnSpec {
            items: vec![LearnItem::MatchValue {
                dst: FieldRange {
                    field: Field::InPort,
                    start: 0,
                    end: 7,
                },
                value: 1,
            }],
            ..tutorial()
        };
        assert!(build(&bad, &[0; LEARN_VALS]).is_err());
        let many = LearnSpec {
            items: vec![tutorial().items[0].clone(); LEARN_VALS + 1],
            ..tutorial()
        };
        assert!(check(&many).is_err());
        assert!(check(&tutorial()).is_ok());
    }

    #[test]
    fn the_filter_suppresses_repeats_and_a_full_queue_loses_the_learn() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let mut f = LearnFilter::default();
        let e = |v: u64| LearnEvent {
            version: 1,
            index: 0,
            vals: [v, 0, 0, 0],
        };
        assert_eq!(f.send(&tx, e(1), 1000), Sent::Queued);
        assert_eq!(f.send(&tx, e(1), 1050), Sent::Repeat);
        assert_eq!(f.send(&tx, e(2), 1050), Sent::Queued);
        assert_eq!(f.send(&tx, e(3), 1050), Sent::Full);
        assert_eq!(rx.try_recv(), Ok(e(1)));
        // After the window the same learn goes again (it refreshes the flow's timeouts).
        assert_eq!(f.send(&tx, e(1), 1100), Sent::Queued);
        assert_eq!(rx.try_recv(), Ok(e(2)));
        assert_eq!(rx.try_recv(), Ok(e(1)));
        // A full queue did not mark the learn as sent: it goes once there is room.
        assert_eq!(f.send(&tx, e(3), 1101), Sent::Queued);
    }
}
