//! 802.1Q tags and `learn` through the pipeline: a VLAN-aware learning switch in flows (the
//! program of OVS's advanced tutorial, on ports 3 (trunk), 4 (VLAN 20) and 5 (VLAN 30)).

use super::*;
use controlplane::flow::{FieldRange, FlowAction, FlowSpec, LearnItem, LearnSpec, Match, PortRef};

use crate::learn::LearnQueue;
use crate::sample::PODS;

const TRUNK: u16 = 3;
const A20: u16 = 4;
const A30: u16 = 5;
const MAC_A: [u8; 6] = PODS[1].1;
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];

fn flow(table: u8, priority: u16, matches: Vec<Match>, actions: Vec<FlowAction>) -> FlowSpec {
    FlowSpec {
        table,
        priority,
        cookie: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        matches,
        actions,
    }
}

fn resubmit(table: u8) -> FlowAction {
    FlowAction::Resubmit {
        in_port: None,
        table,
    }
}

fn out(p: u16) -> FlowAction {
    FlowAction::Output {
        port: PortRef::Number(p),
    }
}

fn reg0(v: u32) -> Match {
    Match::Reg {
        index: 0,
        value: v,
        mask: 0xffff,
    }
}

fn learn() -> LearnSpec {
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

fn program() -> Vec<FlowSpec> {
    let untagged = Match::VlanTci {
        value: 0,
        mask: 0xffff,
    };
    vec![
        flow(0, 0, vec![], vec![resubmit(1)]),
        flow(1, 0, vec![], vec![FlowAction::Drop]),
        flow(
            1,
            99,
            vec![Match::InPort {
                port: PortRef::Number(TRUNK),
            }],
            vec![resubmit(2)],
        ),
        flow(
            1,
            99,
            vec![
                Match::InPort {
                    port: PortRef::Number(A20),
                },
                untagged.clone(),
            ],
            vec![FlowAction::ModVlanVid { vid: 20 }, resubmit(2)],
        ),
        flow(
            1,
            99,
            vec![
                Match::InPort {
                    port: PortRef::Number(A30),
                },
                untagged,
            ],
            vec![FlowAction::ModVlanVid { vid: 30 }, resubmit(2)],
        ),
        flow(
            2,
            0,
            vec![],
            vec![FlowAction::Learn(Box::new(learn())), resubmit(3)],
        ),
        flow(3, 50, vec![], vec![resubmit(10), resubmit(4)]),
        // No learned flow yet: reg0 stays 0 (a resubmit to a table without a match does
        // nothing in OVS; here the table's miss would end the walk).
        flow(
            10,
            0,
            vec![],
            vec![FlowAction::Load {
                dst: FieldRange::whole(Field::Reg(0)),
                value: 0,
            }],
        ),
        flow(
            4,
            99,
            vec![reg0(0), Match::DlVlan { value: 20 }],
            vec![out(TRUNK), FlowAction::PopVlan, out(A20)],
        ),
        flow(
            4,
            99,
            vec![reg0(0), Match::DlVlan { value: 30 }],
            vec![out(TRUNK), FlowAction::PopVlan, out(A30)],
        ),
        flow(
            4,
            50,
            vec![],
            vec![FlowAction::OutputReg {
                src: FieldRange {
                    field: Field::Reg(0),
                    start: 0,
                    end: 15,
                },
            }],
        ),
        flow(
            4,
            51,
            vec![reg0(A20 as u32)],
            vec![FlowAction::PopVlan, out(A20)],
        ),
        flow(
            4,
            51,
            vec![reg0(A30 as u32)],
            vec![FlowAction::PopVlan, out(A30)],
        ),
    ]
}

fn tables(version: u64, flows: &[FlowSpec]) -> Tables {
    let mut t = crate::sample::tables(0);
    let list: Vec<(u32, FlowSpec)> = flows
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, f)| (i as u32, f))
        .collect();
    t.flows = Some(Arc::new(FlowSet::build(
        version,
        &list,
        &[],
        &|p| match p {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(_) => None,
        },
    )));
    t
}

fn frame(dst: [u8; 6], src: [u8; 6], vid: Option<u16>) -> Vec<u8> {
    let mut f = crate::sample::udp_frame(dst, src, [10, 1, 1, 3], [10, 1, 1, 9], 64, 40);
    if let Some(v) = vid {
        f.splice(12..12, [0x81, 0x00, (v >> 8) as u8, v as u8]);
    }
    f
}

fn outputs(rec: &Recorder) -> Vec<(PortNo, Option<u16>)> {
    rec.outputs
        .iter()
        .map(|(a, f)| {
            let Action::Output(p) = a else {
                panic!("not an output: {a:?}")
            };
            (*p, EthernetFrame::new_checked(&f[..]).unwrap().vlan_id())
        })
        .collect()
}

#[test]
fn a_vlan_learning_switch_in_flows_tags_floods_learns_and_forwards() {
    let q = LearnQueue::default();
    let cfg = PipelineConfig {
        learn: Some(q.tx.clone()),
        ..Default::default()
    };
    let mut p = Pipeline::new(cfg);
    p.set_now_ms(1000);
    let c = WorkerCounters::default();
    let t = tables(5, &program());
    let send = |p: &mut Pipeline, port: u16, f: &[u8]| {
        let mut rec = Recorder::keeping();
        let mut buf = PacketBuf::from_frame(f);
        p.from_port(&t, &c, port, &mut buf, &mut rec);
        rec
    };

    // From the VLAN 20 access port to an unknown MAC: tagged to the trunk; its own port
    // is the ingress (not sent back).
    let rec = send(&mut p, A20, &frame(MAC_B, MAC_A, None));
    assert_eq!(outputs(&rec), vec![(TRUNK, Some(20))]);
    let tagged = &rec.outputs[0].1;
    assert_eq!(&tagged[12..16], &[0x81, 0x00, 0x00, 20]);
    assert_eq!(&tagged[16..], &frame(MAC_B, MAC_A, None)[12..]);
    let e = q.rx.try_recv().expect("a learn");
    let learned =
        crate::learn::build(&t.flows.as_ref().unwrap().learns[e.index as usize], &e.vals).unwrap();
    assert_eq!(learned.table, 10);
    assert_eq!(
        learned.matches,
        vec![
            Match::DlDst {
                value: controlplane::proto::MacAddr(MAC_A),
                mask: controlplane::proto::MacAddr([0xff; 6]),
            },
            Match::VlanTci {
                value: 20,
                mask: 0x0fff
            },
        ]
    );
    assert_eq!(
        learned.actions,
        vec![FlowAction::Load {
            dst: FieldRange {
                field: Field::Reg(0),
                start: 0,
                end: 15
            },
            value: A20 as u64
        }]
    );

    // The same packet again comes from the cache: the learn still runs, and is a repeat.
    send(&mut p, A20, &frame(MAC_B, MAC_A, None));
    assert_eq!(c.events[Event::FlowCacheHit as usize].get(), 1);
    assert_eq!(c.events[Event::LearnRepeat as usize].get(), 1);
    assert!(q.rx.try_recv().is_err());
    p.set_now_ms(1000 + crate::learn::REPEAT_MS);
    send(&mut p, A20, &frame(MAC_B, MAC_A, None));
    assert_eq!(q.rx.try_recv().map(|e2| e2.vals), Ok(e.vals));
    assert_eq!(c.events[Event::LearnQueued as usize].get(), 2);

    // From the trunk, tagged VLAN 30 (priority 5 kept): untagged to the VLAN 30 port only.
    let rec = send(&mut p, TRUNK, &frame(MAC_B, MAC_A, Some(0xa000 | 30)));
    assert_eq!(outputs(&rec), vec![(A30, None)]);
    assert_eq!(rec.outputs[0].1, frame(MAC_B, MAC_A, None));

    // With the learned flow in table 10: the trunk's VLAN 20 frame to MAC_A goes to port 4
    // alone, untagged; a VLAN 30 frame to MAC_A still floods VLAN 30.
    let t2 = {
        let mut flows = program();
        flows.push(learned);
        tables(6, &flows)
    };
    let mut rec = Recorder::keeping();
    let mut buf = PacketBuf::from_frame(&frame(MAC_A, MAC_B, Some(20)));
    p.from_port(&t2, &c, TRUNK, &mut buf, &mut rec);
    assert_eq!(outputs(&rec), vec![(A20, None)]);
    let mut rec = Recorder::keeping();
    let mut buf = PacketBuf::from_frame(&frame(MAC_A, MAC_B, Some(30)));
    p.from_port(&t2, &c, TRUNK, &mut buf, &mut rec);
    assert_eq!(outputs(&rec), vec![(A30, None)]);
}

#[test]
fn the_built_in_forwarding_drops_tagged_frames_counted() {
    let t = crate::sample::tables(0);
    let c = WorkerCounters::default();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut buf = PacketBuf::from_frame(&frame(PODS[0].1, MAC_A, Some(20)));
    let a = p.from_port(&t, &c, A20, &mut buf, &mut Recorder::default());
    assert_eq!(a, Action::Drop(DropReason::Vlan));
    assert_eq!(c.drops[DropReason::Vlan as usize].get(), 1);
}

#[test]
fn a_tagged_frames_key_holds_the_whole_tci() {
    let k = FlowKey::extract(&frame(MAC_A, MAC_B, Some(0xa000 | 30)), 3, None);
    assert_eq!(k.get(crate::flow::key::DL_VLAN), 0xb000 | 30);
    assert_eq!(k.get(crate::flow::key::VLAN_PCP), 5);
    assert_eq!(k.get(crate::flow::key::VLAN_VID), 0x1000 | 30);
    assert_eq!(k.get(crate::flow::key::DL_TYPE), 0x0800);
    assert_eq!(k.get(crate::flow::key::NW_DST), 0x0a01_0109);
    let k = FlowKey::extract(&frame(MAC_A, MAC_B, None), 3, None);
    assert_eq!(k.get(crate::flow::key::DL_VLAN), 0);
}
