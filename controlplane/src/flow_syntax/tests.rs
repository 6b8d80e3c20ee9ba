//! Tests of the flow syntax: valid flows to their Repr, round trips, errors with their
//! columns, files, bundles, traces, and inputs that must not panic.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use crate::flow::{Field, FieldRange, FlowAction as A, FlowStats, Match as M, PortRef};
use crate::proto::MacAddr;

const EXACT_MAC: MacAddr = MacAddr([0xff; 6]);
const EXACT4: Ipv4Addr = Ipv4Addr::BROADCAST;

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}
fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn num(n: u16) -> PortRef {
    PortRef::Number(n)
}
fn name(s: &str) -> PortRef {
    PortRef::Name(s.to_string())
}
fn out(n: u16) -> A {
    A::Output { port: num(n) }
}
fn range(field: Field, start: u8, end: u8) -> FieldRange {
    FieldRange { field, start, end }
}
fn flow(table: u8, priority: u16, matches: Vec<M>, actions: Vec<A>) -> FlowSpec {
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
fn ip4_type() -> M {
    M::DlType { value: 0x0800 }
}
fn proto(value: u8) -> M {
    M::NwProto { value }
}

/// The valid flows: input, expected Repr.
fn valid() -> Vec<(&'static str, FlowSpec)> {
    let nw_dst_24 = M::NwDst {
        value: ip("10.1.2.0"),
        mask: ip("255.255.255.0"),
    };
    vec![
        (
            "priority=100,ip,in_port=3,nw_dst=10.1.2.0/24 actions=dec_ttl,output:1",
            flow(
                0,
                100,
                vec![M::InPort { port: num(3) }, ip4_type(), nw_dst_24.clone()],
                vec![A::DecTtl, out(1)],
            ),
        ),
        (
            "table=0, priority=100,ip,in_port=3,nw_dst=10.1.2.0/24 actions=dec_ttl,output:1",
            flow(
                0,
                100,
                vec![M::InPort { port: num(3) }, ip4_type(), nw_dst_24.clone()],
                vec![A::DecTtl, out(1)],
            ),
        ),
        (
            "actions=drop",
            flow(0, DEFAULT_PRIORITY, vec![], vec![A::Drop]),
        ),
        ("actions=", flow(0, DEFAULT_PRIORITY, vec![], vec![A::Drop])),
        (
            "in_port=vxlan0,actions=normal",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![M::InPort {
                    port: name("vxlan0"),
                }],
                vec![A::Normal],
            ),
        ),
        (
            "table=1 priority=200 arp arp_tpa=10.1.2.1 arp_op=1 actions=flood",
            flow(
                1,
                200,
                vec![
                    M::DlType { value: 0x0806 },
                    M::ArpOp { value: 1 },
                    M::ArpTpa {
                        value: ip("10.1.2.1"),
                        mask: EXACT4,
                    },
                ],
                vec![A::Flood],
            ),
        ),
        (
            "cookie=0xa6e470,table=2,priority=50,tcp,nw_src=10.1.0.0/16,tp_dst=80,\
             actions=output:vxhost0",
            FlowSpec {
                cookie: 0xa6e470,
                ..flow(
                    2,
                    50,
                    vec![
                        ip4_type(),
                        M::NwSrc {
                            value: ip("10.1.0.0"),
                            mask: ip("255.255.0.0"),
                        },
                        proto(6),
                        M::TpDst {
                            value: 80,
                            mask: u16::MAX,
                        },
                    ],
                    vec![A::Output {
                        port: name("vxhost0"),
                    }],
                )
            },
        ),
        (
            "udp,tp_src=0x1000/0xf000,actions=3",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    ip4_type(),
                    proto(17),
                    M::TpSrc {
                        value: 0x1000,
                        mask: 0xf000,
                    },
                ],
                vec![out(3)],
            ),
        ),
        (
            "dl_src=0a:58:0a:01:01:02,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    M::DlSrc {
                        value: mac("0a:58:0a:01:01:02"),
                        mask: EXACT_MAC,
                    },
                    M::DlDst {
                        value: mac("01:00:00:00:00:00"),
                        mask: mac("01:00:00:00:00:00"),
                    },
                ],
                vec![A::Drop],
            ),
        ),
        (
            "eth_type=0x0800,ip_dst=10.1.2.3/255.255.0.255,actions=drop",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    ip4_type(),
                    M::NwDst {
                        value: ip("10.1.0.3"),
                        mask: ip("255.255.0.255"),
                    },
                ],
                vec![A::Drop],
            ),
        ),
        (
            "ip,nw_dst=10.1.2.3/24 actions=drop",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![ip4_type(), nw_dst_24.clone()],
                vec![A::Drop],
            ),
        ),
        (
            "ipv6,ipv6_src=fd00::1,ipv6_dst=fd00:1::5/64 actions=drop",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    M::DlType { value: 0x86dd },
                    M::Ipv6Src {
                        value: ip6("fd00::1"),
                        mask: Ipv6Addr::from(u128::MAX),
                    },
                    M::Ipv6Dst {
                        value: ip6("fd00:1::"),
                        mask: ip6("ffff:ffff:ffff:ffff::"),
                    },
                ],
                vec![A::Drop],
            ),
        ),
        (
            "icmp,icmp_type=8,icmp_code=0 actions=drop",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    ip4_type(),
                    proto(1),
                    M::IcmpType { value: 8 },
                    M::IcmpCode { value: 0 },
                ],
                vec![A::Drop],
            ),
        ),
        (
            "icmp6,icmpv6_type=135 actions=normal",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    M::DlType { value: 0x86dd },
                    proto(58),
                    M::IcmpType { value: 135 },
                ],
                vec![A::Normal],
            ),
        ),
        (
            "tcp6,tcp_dst=443 actions=drop",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    M::DlType { value: 0x86dd },
                    proto(6),
                    M::TpDst {
                        value: 443,
                        mask: 0xffff,
                    },
                ],
                vec![A::Drop],
            ),
        ),
        (
            "tun_id=100,tun_src=192.168.0.2,tun_dst=192.168.0.0/24 actions=goto_table:1",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    M::TunId {
                        value: 100,
                        mask: u64::MAX,
                    },
                    M::TunSrc {
                        value: ip("192.168.0.2"),
                        mask: EXACT4,
                    },
                    M::TunDst {
                        value: ip("192.168.0.0"),
                        mask: ip("255.255.255.0"),
                    },
                ],
                vec![A::GotoTable { table: 1 }],
            ),
        ),
        (
            "tunnel_id=0x1264/0xff00 actions=resubmit(,2)",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![M::TunId {
                    value: 0x1200,
                    mask: 0xff00,
                }],
                vec![A::Resubmit {
                    in_port: None,
                    table: 2,
                }],
            ),
        ),
        (
            "reg3=0x12/0xf0,reg0=5 actions=resubmit(vxlan0,3)",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    M::Reg {
                        index: 0,
                        value: 5,
                        mask: u32::MAX,
                    },
                    M::Reg {
                        index: 3,
                        value: 0x10,
                        mask: 0xf0,
                    },
                ],
                vec![A::Resubmit {
                    in_port: Some(name("vxlan0")),
                    table: 3,
                }],
            ),
        ),
        (
            "dl_vlan=100,ip,nw_ttl=64,nw_proto=47 actions=drop",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    ip4_type(),
                    M::DlVlan { value: 100 },
                    proto(47),
                    M::NwTtl { value: 64 },
                ],
                vec![A::Drop],
            ),
        ),
        (
            "priority=0 actions=set_field:0a:58:0a:01:01:09->eth_dst,set_field:10.1.2.2->ip_dst,\
             set_field:5->tun_id,set_field:64->nw_ttl,set_field:0x10->reg2,output:1",
            flow(
                0,
                0,
                vec![],
                vec![
                    A::SetField {
                        field: Field::DlDst,
                        value: 0x0a58_0a01_0109,
                    },
                    A::SetField {
                        field: Field::NwDst,
                        value: 0x0a01_0202,
                    },
                    A::SetField {
                        field: Field::TunId,
                        value: 5,
                    },
                    A::SetField {
                        field: Field::NwTtl,
                        value: 64,
                    },
                    A::SetField {
                        field: Field::Reg(2),
                        value: 0x10,
                    },
                    out(1),
                ],
            ),
        ),
        (
            "actions=load:0x5->NXM_NX_REG0[0..15],load:1->reg1[3],load:0xffffff->tun_id[],\
             load:0x0a5800000001->NXM_OF_ETH_SRC[],load:7->NXM_NX_TUN_IPV4_DST",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![],
                vec![
                    A::Load {
                        dst: range(Field::Reg(0), 0, 15),
                        value: 5,
                    },
                    A::Load {
                        dst: range(Field::Reg(1), 3, 3),
                        value: 1,
                    },
                    A::Load {
                        dst: range(Field::TunId, 0, 63),
                        value: 0xffffff,
                    },
                    A::Load {
                        dst: range(Field::DlSrc, 0, 47),
                        value: 0x0a58_0000_0001,
                    },
                    A::Load {
                        dst: range(Field::TunDst, 0, 31),
                        value: 7,
                    },
                ],
            ),
        ),
        (
            "actions=move:NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23],move:reg1->reg2[]",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![],
                vec![
                    A::Move {
                        src: range(Field::Reg(0), 0, 23),
                        dst: range(Field::TunId, 0, 23),
                    },
                    A::Move {
                        src: range(Field::Reg(1), 0, 31),
                        dst: range(Field::Reg(2), 0, 31),
                    },
                ],
            ),
        ),
        (
            "actions=mod_nw_src:10.1.1.9,mod_nw_dst:10.1.2.3,mod_tp_src:53,mod_tp_dst:7777,mod_nw_ttl:9,output:2",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![],
                vec![
                    A::SetField {
                        field: Field::NwSrc,
                        value: u64::from(u32::from(ip("10.1.1.9"))),
                    },
                    A::SetField {
                        field: Field::NwDst,
                        value: u64::from(u32::from(ip("10.1.2.3"))),
                    },
                    A::SetField {
                        field: Field::TpSrc,
                        value: 53,
                    },
                    A::SetField {
                        field: Field::TpDst,
                        value: 7777,
                    },
                    A::SetField {
                        field: Field::NwTtl,
                        value: 9,
                    },
                    out(2),
                ],
            ),
        ),
        (
            "actions=mod_dl_src:0A:58:0A:01:01:01,mod_dl_dst:0a:58:0a:01:01:02,output:2",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![],
                vec![
                    // Aliases of set_field, as in OVS.
                    A::SetField {
                        field: Field::DlSrc,
                        value: 0x0a58_0a01_0101,
                    },
                    A::SetField {
                        field: Field::DlDst,
                        value: 0x0a58_0a01_0102,
                    },
                    out(2),
                ],
            ),
        ),
        (
            "actions=note:00.01.02,note:abcd,normal",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![],
                vec![
                    // Padded with zeros as OVS stores a note (10 + n bytes to a multiple of 8).
                    A::Note {
                        bytes: vec![0, 1, 2, 0, 0, 0],
                    },
                    A::Note {
                        bytes: vec![0xab, 0xcd, 0, 0, 0, 0],
                    },
                    A::Normal,
                ],
            ),
        ),
        (
            "idle_timeout=10,hard_timeout=30,priority=5 actions=drop",
            FlowSpec {
                idle_timeout: 10,
                hard_timeout: 30,
                ..flow(0, 5, vec![], vec![A::Drop])
            },
        ),
        (
            "arp,arp_spa=10.1.1.0/24,arp_sha=0a:58:0a:01:01:02,arp_tha=00:00:00:00:00:00 \
             actions=normal",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    M::DlType { value: 0x0806 },
                    M::ArpSpa {
                        value: ip("10.1.1.0"),
                        mask: ip("255.255.255.0"),
                    },
                    M::ArpSha {
                        value: mac("0a:58:0a:01:01:02"),
                        mask: EXACT_MAC,
                    },
                    M::ArpTha {
                        value: mac("00:00:00:00:00:00"),
                        mask: EXACT_MAC,
                    },
                ],
                vec![A::Normal],
            ),
        ),
        (
            "ip,tcp,tp_dst=22 actions=drop",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    ip4_type(),
                    proto(6),
                    M::TpDst {
                        value: 22,
                        mask: 0xffff,
                    },
                ],
                vec![A::Drop],
            ),
        ),
        (
            "tcp,nw_proto=6,tp_dst=22 actions=drop",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    ip4_type(),
                    proto(6),
                    M::TpDst {
                        value: 22,
                        mask: 0xffff,
                    },
                ],
                vec![A::Drop],
            ),
        ),
        (
            "ip,nw_dst=0.0.0.0/0,actions=drop",
            flow(0, DEFAULT_PRIORITY, vec![ip4_type()], vec![A::Drop]),
        ),
        (
            "in_port=0x10,priority=0x100 actions=NORMAL",
            flow(0, 256, vec![M::InPort { port: num(16) }], vec![A::Normal]),
        ),
        (
            "actions=set_tunnel:0x64,output:vxlan0",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![],
                vec![
                    A::SetField {
                        field: Field::TunId,
                        value: 0x64,
                    },
                    A::Output {
                        port: name("vxlan0"),
                    },
                ],
            ),
        ),
        (
            "ip,nw_dst=10.1.2.2 actions=dec_ttl , output:1",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    ip4_type(),
                    M::NwDst {
                        value: ip("10.1.2.2"),
                        mask: EXACT4,
                    },
                ],
                vec![A::DecTtl, out(1)],
            ),
        ),
        (
            " cookie=0x0, duration=12.345s, table=0, n_packets=3, n_bytes=294, idle_age=2, \
             priority=100,ip,in_port=3 actions=output:1",
            flow(
                0,
                100,
                vec![M::InPort { port: num(3) }, ip4_type()],
                vec![out(1)],
            ),
        ),
        (
            "reg7=0xffffffff,udp6,udp_src=53 actions=drop",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![
                    M::DlType { value: 0x86dd },
                    proto(17),
                    M::TpSrc {
                        value: 53,
                        mask: 0xffff,
                    },
                    M::Reg {
                        index: 7,
                        value: u32::MAX,
                        mask: u32::MAX,
                    },
                ],
                vec![A::Drop],
            ),
        ),
        (
            "dl_type=0x88cc action=output:4",
            flow(
                0,
                DEFAULT_PRIORITY,
                vec![M::DlType { value: 0x88cc }],
                vec![out(4)],
            ),
        ),
        (
            "\tpriority=1\tip\tnw_src=10.0.0.1\tactions=drop\t",
            flow(
                0,
                1,
                vec![
                    ip4_type(),
                    M::NwSrc {
                        value: ip("10.0.0.1"),
                        mask: EXACT4,
                    },
                ],
                vec![A::Drop],
            ),
        ),
    ]
}

#[test]
fn valid_flows_parse_to_their_repr() {
    for (input, want) in valid() {
        match parse_flow(input) {
            Ok(got) => assert_eq!(got, want, "{input}"),
            Err(e) => panic!("{input}: {e}"),
        }
    }
}

#[test]
fn a_port_name_that_starts_with_a_digit_is_a_name_and_prints_back() {
    // A pod may be called `61p2`; the agent's flows name its port, and dump-flows must parse
    // back (found by the agent_config fuzz target).
    let f = parse_flow("in_port=61p2,actions=output:7e1").unwrap();
    assert_eq!(
        f.matches,
        vec![M::InPort {
            port: PortRef::Name("61p2".into())
        }]
    );
    assert_eq!(
        f.actions,
        vec![A::Output {
            port: PortRef::Name("7e1".into())
        }]
    );
    assert_eq!(parse_flow(&format_flow(&f)).unwrap(), f);
    for (bad, says) in [
        ("in_port=70000,actions=drop", "too large"),
        ("in_port=0x1ffff,actions=drop", "too large"),
        ("in_port=6/1,actions=drop", "expected a port number or name"),
    ] {
        let e = parse_flow(bad).unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn flows_round_trip() {
    for (input, _) in valid() {
        let f = parse_flow(input).unwrap();
        let text = format_flow(&f);
        assert_eq!(
            parse_flow(&text).as_ref(),
            Ok(&f),
            "{input} printed as {text}"
        );
        assert_eq!(
            format_flow(&parse_flow(&text).unwrap()),
            text,
            "fixed point of {input}"
        );
        let stats = FlowStats {
            spec: f.clone(),
            n_packets: 3,
            n_bytes: 294,
            duration_ms: 12_345,
            idle_ms: 2_900,
        };
        let line = format_flow_stats(&stats);
        assert_eq!(
            parse_flow(&line).as_ref(),
            Ok(&f),
            "{input} printed as {line}"
        );
    }
}

#[test]
fn prints_like_ovs_ofctl() {
    // As ovs-ofctl -O OpenFlow13 dump-flows --no-stats prints them (checked against OVS 3.1).
    let cases = [
        (
            "priority=100,ip,in_port=3,nw_dst=10.1.2.0/24 actions=dec_ttl,output:1",
            "priority=100,ip,in_port=3,nw_dst=10.1.2.0/24 actions=dec_ttl,output:1",
        ),
        // A bare name is not an output (only a bare number is).
        ("tcp actions=vxhost0", ""),
        (
            "tp_dst=80 table=2 tcp priority=50 cookie=0xa6e470 ip_src=10.1.0.0/16 \
             actions=output:vxhost0",
            "cookie=0xa6e470, table=2, priority=50,tcp,nw_src=10.1.0.0/16,tp_dst=80 \
             actions=output:vxhost0",
        ),
        ("actions=", "actions=drop"),
        ("table=3 actions=", "table=3, actions=drop"),
        (
            "actions=resubmit( vxlan0 , 2 ),\toutput:1 ,normal",
            "actions=resubmit(vxlan0,2),output:1,NORMAL",
        ),
        (
            "hard_timeout=30 idle_timeout=10 actions=drop",
            "idle_timeout=10, hard_timeout=30, actions=drop",
        ),
        (
            "ip,nw_dst=10.1.2.3/255.255.0.255,nw_proto=47 actions=drop",
            "ip,nw_dst=10.1.0.3/255.255.0.255,nw_proto=47 actions=drop",
        ),
        (
            "udp,tp_src=0x1000/0xf000,tun_id=0x64,reg1=7/0xf actions=3",
            "udp,reg1=0x7/0xf,tun_id=0x64,tp_src=0x1000/0xf000 actions=output:3",
        ),
        (
            "dl_type=0x88cc,dl_dst=01:80:C2:00:00:0E actions=drop",
            "dl_dst=01:80:c2:00:00:0e,dl_type=0x88cc actions=drop",
        ),
        (
            "actions=load:0x5->NXM_NX_REG0[0..15],load:1->reg1[3],move:NXM_NX_REG0[0..23]->\
             NXM_NX_TUN_ID[0..23],set_field:0a:58:0a:01:01:09->dl_dst,set_field:5->tun_id,\
             set_field:80->tcp_dst,resubmit(,2),resubmit(3,4),note:0a0b0c,NORMAL,FLOOD",
            "actions=load:0x5->NXM_NX_REG0[0..15],load:0x1->NXM_NX_REG1[3],\
             move:NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23],set_field:0a:58:0a:01:01:09->eth_dst,\
             set_field:0x5->tun_id,set_field:80->tcp_dst,resubmit(,2),resubmit(3,4),\
             note:0a.0b.0c.00.00.00,NORMAL,FLOOD",
        ),
        (
            "ipv6,ipv6_dst=fd00::/ffff:0:ffff:: actions=drop",
            "ipv6,ipv6_dst=fd00::/ffff:0:ffff:: actions=drop",
        ),
    ];
    for (input, want) in cases {
        if want.is_empty() {
            assert!(parse_flow(input).is_err(), "{input}");
            continue;
        }
        let f = parse_flow(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(format_flow(&f), want);
    }
    let stats = FlowStats {
        spec: parse_flow("idle_timeout=60,priority=100,ip,in_port=3 actions=output:1").unwrap(),
        n_packets: 3,
        n_bytes: 294,
        duration_ms: 12_345,
        idle_ms: 2_999,
    };
    assert_eq!(
        format_flow_stats(&stats),
        " cookie=0x0, duration=12.345s, table=0, n_packets=3, n_bytes=294, idle_timeout=60, \
         idle_age=2, priority=100,ip,in_port=3 actions=output:1"
    );
    assert_eq!(format_actions(&[]), "drop");
    assert_eq!(
        format_action(&A::Resubmit {
            in_port: Some(name("n1p1")),
            table: 9
        }),
        "resubmit(n1p1,9)"
    );
}

/// Invalid flows: input, column, a phrase of the message.
const INVALID: &[(&str, usize, &str)] = &[
    (
        "priority=100,ip,nw_dst=10.1.2 actions=drop",
        24,
        "expected an IPv4 address or prefix after nw_dst=, found \"10.1.2\"",
    ),
    (
        "nw_dts=10.1.2.2,ip actions=drop",
        1,
        "unknown field \"nw_dts\" (did you mean nw_dst?)",
    ),
    (
        "nw_dst=10.1.2.2 actions=drop",
        1,
        "nw_dst needs ip (add 'ip,' before it)",
    ),
    ("ip_dst=10.1.2.2,ipv6 actions=drop", 1, "ip_dst needs ip"),
    ("ip,nw_dst=10.1.2.2", 19, "expected actions="),
    (
        "tcp,tp_dst=80,tp_dst=81 actions=drop",
        15,
        "tp_dst is given twice (first at column 5)",
    ),
    (
        "arp,tcp actions=drop",
        5,
        "'tcp' conflicts with 'arp' at column 1",
    ),
    (
        "tcp,nw_proto=17 actions=drop",
        5,
        "'nw_proto=17' conflicts with 'tcp' at column 1",
    ),
    (
        "priority=1,table=1,priority=2 actions=drop",
        20,
        "priority is given twice",
    ),
    (
        "priority=70000 actions=drop",
        10,
        "too large for priority (16 bits, at most 65535)",
    ),
    ("table=255 actions=drop", 7, "tables are 0-254"),
    (
        "tun_id=0x10000000000000000 actions=drop",
        8,
        "too large for tun_id (64 bits, at most 0xffffffffffffffff)",
    ),
    (
        "tun_id=5/0x10000000000000000 actions=drop",
        10,
        "too large for the tun_id mask (64 bits",
    ),
    (
        "dl_vlan=4096 actions=drop",
        9,
        "too large for dl_vlan (12 bits",
    ),
    (
        "ip,nw_dst=10.1.2.0/33 actions=drop",
        20,
        "prefix length (0-32)",
    ),
    (
        "ipv6,ipv6_src=fd00::/129 actions=drop",
        22,
        "prefix length (0-128)",
    ),
    (
        "dl_src=0a:58:0a:01:01 actions=drop",
        8,
        "expected a MAC address",
    ),
    (
        "dl_src=0a:58:0a:01:01:02/ff actions=drop",
        26,
        "expected a MAC mask",
    ),
    ("ip=1 actions=drop", 3, "takes no value"),
    ("ip,nw_dst actions=drop", 4, "nw_dst needs a value"),
    ("cookie=0x1/0xff actions=drop", 11, "takes no mask"),
    (
        "tcp,tp_src=80,icmp_type=3 actions=drop",
        15,
        "icmp_type needs icmp or icmp6",
    ),
    ("ipv6_src=fd00::1 actions=drop", 1, "ipv6_src needs ipv6"),
    ("arp_spa=10.0.0.1 actions=drop", 1, "arp_spa needs arp"),
    ("ip,tp_dst=80 actions=drop", 4, "tp_dst needs tcp or udp"),
    ("ip,nw_ttl=1,arp_op=1 actions=drop", 13, "arp_op needs arp"),
    ("tpc,actions=drop", 1, "(did you mean tcp?)"),
    ("Priority=5 actions=drop", 1, "(did you mean priority?)"),
    (
        "priority=1 output:1",
        12,
        "unknown field \"output:1\" (actions go after actions=)",
    ),
    ("=5 actions=drop", 1, "expected a field name"),
    ("in_port=LOCAL actions=drop", 9, "reserved port"),
    (
        "in_port=-1 actions=drop",
        9,
        "expected a port number or name after in_port=",
    ),
    ("in_port=70000 actions=drop", 9, "too large"),
    (
        "in_port=averyveryverylongname actions=drop",
        9,
        "at most 15 characters",
    ),
    (
        "actions=resubmit(,)",
        19,
        "resubmit needs a port or a table",
    ),
    ("actions=resubmit()", 19, "resubmit needs a port or a table"),
    ("actions=resubmit(,255)", 19, "tables are 0-254"),
    ("actions=resubmit(,1)x", 21, "unexpected \"x\""),
    ("actions=resubmit(,1", 9, "unclosed '('"),
    ("actions=output:1)", 17, "unbalanced ')'"),
    ("actions=output:1,drop", 18, "drop must be the only action"),
    ("actions=output", 9, "expected output:PORT"),
    (
        "actions=output:",
        16,
        "expected a port number or name after output:, found nothing",
    ),
    ("actions=output:LOCAL", 16, "reserved port"),
    (
        "ct_state=-trk,ip actions=drop",
        1,
        "connection tracking (ct_state, ct_zone, ct_mark, ct_label, ct(...)) is not supported \
         by vxswitch",
    ),
    (
        "ip actions=ct(commit,table=1)",
        12,
        "connection tracking (ct_state, ct(...)) is not supported by vxswitch",
    ),
    ("actions=ct_clear", 9, "connection tracking"),
    (
        "actions=move:NXM_NX_CT_MARK[]->reg0[]",
        14,
        "connection tracking",
    ),
    (
        "in_port=0 actions=drop",
        9,
        "port 0 is no port (ports are 1-65279)",
    ),
    (
        "in_port=65280 actions=drop",
        9,
        "port number 65280 is too large (ports are 1-65279",
    ),
    ("actions=output:0xff00", 16, "too large"),
    ("actions=resubmit:0", 18, "port 0 is no port"),
    (
        "ip,ip_frag=maybe actions=drop",
        12,
        "expected no, yes, first, later or not_later",
    ),
    ("ip_frag=no actions=drop", 1, "ip_frag needs ip or ipv6"),
    (
        "dl_vlan_pcp=8 actions=drop",
        13,
        "too large for dl_vlan_pcp (3 bits",
    ),
    (
        "pkt_mark=0x100000000 actions=drop",
        10,
        "too large for pkt_mark (32 bits",
    ),
    ("conj_id=x actions=drop", 9, "expected a number"),
    (
        "actions=conjunction(1,3/2)",
        21,
        "expected conjunction(ID,K/N)",
    ),
    ("actions=conjunction(1,1/1)", 21, "2 <= N <= 64"),
    ("actions=conjunction(1)", 21, "expected conjunction(ID,K/N)"),
    (
        "actions=group:0xffffff01",
        15,
        "group 0xffffff01 is out of range",
    ),
    ("actions=group:x", 15, "expected a number"),
    ("actions=mod_nw_tos:3", 20, "multiple of 4"),
    (
        "actions=mod_vlan_vid:4096",
        22,
        "too large for the VLAN id (12 bits",
    ),
    (
        "actions=mod_vlan_pcp:8",
        22,
        "too large for the VLAN priority (3 bits",
    ),
    ("actions=push_vlan:0x800", 19, "push_vlan takes 0x8100"),
    (
        "actions=set_field:1/0->reg0",
        21,
        "the set_field mask is zero",
    ),
    ("actions=output:NXM_NX_TUN_ID[]", 16, "at most 32 bits"),
    (
        "actions=load:1->NXM_NX_ARP_SHA[]",
        17,
        "NXM_NX_ARP_SHA is not supported",
    ),
    ("actions=learn(table=1,foo)", 23, "unknown field \"foo\""),
    (
        "actions=learn(table=1,limit=5)",
        23,
        "learn's limit is not supported",
    ),
    ("actions=learn(table=255)", 21, "tables are 0-254"),
    (
        "actions=learn(NXM_OF_ETH_DST[]=NXM_NX_REG0[])",
        32,
        "learn needs equal widths: NXM_NX_REG0[] is 32 bits but NXM_OF_ETH_DST[] is 48 bits",
    ),
    (
        "actions=learn(load:0x1ff->NXM_NX_REG0[0..7])",
        20,
        "too large for NXM_NX_REG0[0..7]",
    ),
    ("actions=learn(output:)", 22, "unknown field nothing"),
    ("actions=learn(table=1", 9, "unclosed '('"),
    (
        "actions=outptu:1",
        9,
        "unknown action \"outptu\" (did you mean output?)",
    ),
    ("actions=vxlan0", 9, "unknown action \"vxlan0\""),
    ("actions=controller", 9, "not supported"),
    ("actions=dec_ttl(1)", 9, "expected dec_ttl"),
    ("actions=goto_table:255", 20, "tables are 0-254"),
    ("actions=goto_table:x", 20, "expected a table number"),
    (
        "actions=move:reg0[0..15]->tun_id[]",
        27,
        "source NXM_NX_REG0[0..15] is 16 bits but destination NXM_NX_TUN_ID[] is 64 bits",
    ),
    (
        "actions=move:reg0[0..15]",
        14,
        "expected SRC[BITS]->DST[BITS]",
    ),
    (
        "actions=load:0x1ff->reg0[0..7]",
        14,
        "too large for NXM_NX_REG0[0..7] (8 bits",
    ),
    (
        "actions=load:1->reg8[]",
        17,
        "unknown field \"reg8\" (did you mean reg0?)",
    ),
    (
        "actions=load:1->reg0[0..32]",
        21,
        "outside reg0, which has 32 bits",
    ),
    (
        "actions=load:1->reg0[5..2]",
        21,
        "start bit is after the end bit",
    ),
    ("actions=load:1->reg0[x]", 22, "expected a bit number"),
    (
        "actions=load:1->reg0[0..",
        21,
        "expected [], [BIT] or [START..END]",
    ),
    (
        "actions=set_field:0x10000000000000000->tun_id",
        19,
        "too large for tun_id (64 bits",
    ),
    (
        "actions=set_field:10.1.2->ip_dst",
        19,
        "expected an IPv4 address after set_field:",
    ),
    ("actions=set_field:1->reg0[0..3]", 22, "use load"),
    ("actions=set_field:1->nw_tos", 19, "must be a multiple of 4"),
    (
        "actions=set_field:1->nw_tso",
        22,
        "unknown field \"nw_tso\"",
    ),
    ("actions=mod_dl_src:zz", 20, "expected a MAC address"),
    ("actions=mod_tp_dst:70000", 20, "too large for tp_dst"),
    ("actions=mod_nw_dst:10.1", 20, "expected an IPv4 address"),
    ("actions=note:0", 14, "odd number of hex digits"),
    ("actions=note:0g", 15, "expected hex bytes"),
    ("duration=abc actions=drop", 10, "expected seconds"),
    ("n_packets=x actions=drop", 11, "expected a number"),
    ("ip actions", 4, "expected actions=LIST"),
    ("ip actions:drop", 4, "expected actions=LIST"),
    (
        "ip,\u{3000}nw_dts=1 actions=drop",
        5,
        "unknown field \"nw_dts\"",
    ),
    (
        "ip,nw_dst=10.0.0.1,nw_dst=10.0.0.2 actions=drop",
        20,
        "nw_dst is given twice",
    ),
];

#[test]
fn invalid_flows_name_column_and_expectation() {
    for &(input, column, phrase) in INVALID {
        match parse_flow(input) {
            Ok(f) => panic!("{input:?} parsed as {f:?}"),
            Err(e) => {
                assert!(
                    e.message.contains(phrase),
                    "{input:?}: {:?} lacks {phrase:?}",
                    e.message
                );
                assert_eq!(e.column, column, "{input:?}: {e}");
                assert_eq!(e.input, input);
            }
        }
    }
}

#[test]
fn errors_display_a_caret() {
    let e = parse_flow("ip,nw_dts=1 actions=drop").unwrap_err();
    assert_eq!(
        e.to_string(),
        "column 4: unknown field \"nw_dts\" (did you mean nw_dst?)\nip,nw_dts=1 actions=drop\n   ^"
    );
    let e = parse_flow("\tnw_dst=1.2.3.4 actions=drop").unwrap_err();
    assert!(e.to_string().ends_with("\n\t^"), "{e}");
    let e = parse_flow("ip").unwrap_err();
    assert_eq!(e.column, 3);
    assert!(e.to_string().ends_with("\nip\n  ^"), "{e}");
}

#[test]
fn filters() {
    assert_eq!(parse_filter(""), Ok(FlowFilter::default()));
    assert_eq!(parse_filter("  "), Ok(FlowFilter::default()));
    let f = parse_filter("table=1,cookie=0x5/0xff,ip,nw_dst=10.1.2.0/24").unwrap();
    assert_eq!(f.table, Some(1));
    assert_eq!(f.priority, None);
    assert_eq!(f.cookie, Some((5, 0xff)));
    assert_eq!(
        f.matches,
        vec![
            ip4_type(),
            M::NwDst {
                value: ip("10.1.2.0"),
                mask: ip("255.255.255.0")
            }
        ]
    );
    assert_eq!(f.actions, None);
    assert_eq!(
        parse_filter("cookie=0x5").unwrap().cookie,
        Some((5, u64::MAX))
    );
    assert_eq!(
        parse_filter("cookie=0x15/0x0f").unwrap().cookie,
        Some((5, 0xf))
    );
    let f = parse_filter("priority=7 ip actions=output:1").unwrap();
    assert_eq!(f.actions, Some(vec![out(1)]));
    assert_eq!(
        f.to_delete(true),
        FlowMod::Delete {
            table: None,
            priority: Some(7),
            matches: vec![ip4_type()],
            strict: true,
            cookie: None
        }
    );
    assert_eq!(
        parse_filter("ip").unwrap().to_delete(true),
        FlowMod::Delete {
            table: None,
            priority: Some(DEFAULT_PRIORITY),
            matches: vec![ip4_type()],
            strict: true,
            cookie: None
        }
    );
    assert_eq!(
        f.to_modify(false),
        Some(FlowMod::Modify {
            flow: flow(0, 7, vec![ip4_type()], vec![out(1)]),
            strict: false
        })
    );
    assert_eq!(parse_filter("ip").unwrap().to_modify(false), None);
    assert_eq!(
        parse_filter("cookie=1/1 actions=drop")
            .unwrap()
            .to_modify(false),
        None
    );
    let e = parse_filter("idle_timeout=5").unwrap_err();
    assert_eq!(e.column, 1);
    assert!(e.message.contains("cannot select flows"), "{e}");
    let e = parse_filter("ip,nw_dst=10.1.2").unwrap_err();
    assert_eq!(e.column, 11);
    // dump-flows output is a filter too (the counters are ignored).
    let line = " cookie=0x0, duration=1.000s, table=0, n_packets=0, n_bytes=0, idle_age=0, \
                priority=5,arp actions=normal";
    let f = parse_filter(line).unwrap();
    assert_eq!(f.priority, Some(5));
    assert_eq!(f.cookie, Some((0, u64::MAX)));
}

#[test]
fn traces() {
    let (port, m) = parse_trace("in_port=2,dl_src=0a:58:0a:01:01:02,ip,nw_dst=10.1.2.2").unwrap();
    assert_eq!(port, num(2));
    assert_eq!(
        m,
        vec![
            M::DlSrc {
                value: mac("0a:58:0a:01:01:02"),
                mask: EXACT_MAC
            },
            ip4_type(),
            M::NwDst {
                value: ip("10.1.2.2"),
                mask: EXACT4
            },
        ]
    );
    let (port, m) = parse_trace("arp arp_tpa=10.1.2.1 tun_id=100 in_port=vxlan0").unwrap();
    assert_eq!(port, name("vxlan0"));
    assert_eq!(
        m,
        vec![
            M::DlType { value: 0x0806 },
            M::ArpTpa {
                value: ip("10.1.2.1"),
                mask: EXACT4
            },
            M::TunId {
                value: 100,
                mask: u64::MAX
            },
        ]
    );
    let bad = [
        ("ip,nw_dst=10.1.2.2", 1, "needs in_port"),
        (
            "in_port=1,ip,nw_dst=10.1.2.0/24",
            29,
            "remove the mask \"/24\"",
        ),
        ("in_port=1,table=1", 11, "not a packet field"),
        ("in_port=1,n_packets=1", 11, "not a packet field"),
        ("in_port=1 actions=drop", 11, "takes a packet, not actions"),
        ("in_port=1,nw_dst=10.1.2.2", 11, "nw_dst needs ip"),
        ("in_port=1,in_port=2", 11, "in_port is given twice"),
    ];
    for (input, column, phrase) in bad {
        let e = parse_trace(input).unwrap_err();
        assert!(e.message.contains(phrase), "{input}: {e}");
        assert_eq!(e.column, column, "{input}: {e}");
    }
}

#[test]
fn flows_files() {
    let text = "# pod flows\n\
                \n\
                table=0,priority=100,ip,nw_dst=10.1.2.2 actions=output:2\n\
                \x20  # indented comment\n\
                priority=0 actions=drop   # trailing comment\n\
                \t\n";
    let flows = parse_flows_file(text).unwrap();
    assert_eq!(flows.len(), 2);
    assert_eq!(flows[1], flow(0, 0, vec![], vec![A::Drop]));
    assert_eq!(parse_flows_file(""), Ok(vec![]));
    let text = "# pod flows\npriority=1 actions=drop\nip,nw_dst=10.1.2 actions=drop # x\n";
    let e = parse_flows_file(text).unwrap_err();
    assert_eq!(e.line, 3);
    assert_eq!(e.error.column, 11);
    assert_eq!(e.error.input, "ip,nw_dst=10.1.2 actions=drop # x");
    assert_eq!(
        e.to_string(),
        "line 3, column 11: expected an IPv4 address or prefix after nw_dst=, found \"10.1.2\"\n\
         ip,nw_dst=10.1.2 actions=drop # x\n          ^"
    );
    // A missing actions= points at the comment, where it should have been.
    let e = parse_flows_file("ip # no actions").unwrap_err();
    assert_eq!((e.line, e.error.column), (1, 4));
}

#[test]
fn bundles() {
    let text = "# a bundle\n\
                flow add table=0,priority=100,ip,nw_dst=10.1.2.0/24 actions=output:1\n\
                add priority=5 actions=drop\n\
                \n\
                flow modify_strict table=0,priority=100,ip,nw_dst=10.1.2.0/24 actions=output:2\n\
                flow modify cookie=0x5 ip actions=normal\n\
                flow delete table=1,ip\n\
                delete_strict priority=7,arp   # trailing comment\n\
                flow delete\n\
                table=3,priority=1 actions=flood\n\
                delete cookie=0xa6e470/0xffffffffffffffff\n";
    let nw = M::NwDst {
        value: ip("10.1.2.0"),
        mask: ip("255.255.255.0"),
    };
    let want = vec![
        FlowMod::Add {
            flow: flow(0, 100, vec![ip4_type(), nw.clone()], vec![out(1)]),
            reset_counts: false,
        },
        FlowMod::Add {
            flow: flow(0, 5, vec![], vec![A::Drop]),
            reset_counts: false,
        },
        FlowMod::Modify {
            flow: flow(0, 100, vec![ip4_type(), nw], vec![out(2)]),
            strict: true,
        },
        FlowMod::Modify {
            flow: FlowSpec {
                cookie: 5,
                ..flow(0, DEFAULT_PRIORITY, vec![ip4_type()], vec![A::Normal])
            },
            strict: false,
        },
        FlowMod::Delete {
            table: Some(1),
            priority: None,
            matches: vec![ip4_type()],
            strict: false,
            cookie: None,
        },
        FlowMod::Delete {
            table: None,
            priority: Some(7),
            matches: vec![M::DlType { value: 0x0806 }],
            strict: true,
            cookie: None,
        },
        FlowMod::Delete {
            table: None,
            priority: None,
            matches: vec![],
            strict: false,
            cookie: None,
        },
        FlowMod::Add {
            flow: flow(3, 1, vec![], vec![A::Flood]),
            reset_counts: false,
        },
        FlowMod::Delete {
            table: None,
            priority: None,
            matches: vec![],
            strict: false,
            cookie: Some((0xa6e470, u64::MAX)),
        },
    ];
    assert_eq!(parse_bundle(text), Ok(want));

    let bad = [
        (
            "flow add ip actions=drop\nflow remove ip\n",
            2,
            6,
            "expected add, modify",
        ),
        ("flow delete ip actions=drop", 1, 16, "takes no actions"),
        ("flow modify ip", 1, 15, "expected actions="),
        (
            "flow modify cookie=1/1 ip actions=drop",
            1,
            13,
            "a cookie mask cannot select",
        ),
        (
            "# x\n\nflow add ip,nw_dts=1 actions=drop",
            3,
            13,
            "did you mean nw_dst?",
        ),
        ("  add ip", 1, 9, "expected actions="),
        ("flow delete idle_timeout=1", 1, 13, "cannot select flows"),
        ("flow", 1, 5, "expected add, modify"),
        ("flow modfy ip actions=drop", 1, 6, "(did you mean modify?)"),
    ];
    for (text, line, column, phrase) in bad {
        let e = parse_bundle(text).unwrap_err();
        assert!(e.error.message.contains(phrase), "{text:?}: {e}");
        assert_eq!((e.line, e.error.column), (line, column), "{text:?}: {e}");
    }
    let e = parse_bundle("flow add ip actions=drop\nflow remove ip\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 2, column 6: expected add, modify, modify_strict, delete or delete_strict after \
         \"flow\", found \"remove\"\nflow remove ip\n     ^"
    );
}

#[test]
fn canonicalize_sorts_masks_and_dedups() {
    let mut m = vec![
        M::Reg {
            index: 2,
            value: 0xff,
            mask: 0x0f,
        },
        M::TpDst { value: 80, mask: 0 },
        M::NwDst {
            value: ip("10.1.2.3"),
            mask: ip("255.255.255.0"),
        },
        M::TunId {
            value: 0x1234_5678,
            mask: u64::MAX,
        },
        M::DlType { value: 0x0800 },
        M::Reg {
            index: 1,
            value: 1,
            mask: u32::MAX,
        },
        M::DlType { value: 0x0800 },
        M::InPort { port: num(1) },
    ];
    canonicalize(&mut m);
    assert_eq!(
        m,
        vec![
            M::InPort { port: num(1) },
            ip4_type(),
            M::NwDst {
                value: ip("10.1.2.0"),
                mask: ip("255.255.255.0")
            },
            M::TunId {
                value: 0x1234_5678,
                mask: u64::MAX
            },
            M::Reg {
                index: 1,
                value: 1,
                mask: u32::MAX
            },
            M::Reg {
                index: 2,
                value: 0xf,
                mask: 0x0f
            },
        ]
    );
}

#[test]
fn format_match_shorthands() {
    let cases: [(Vec<M>, &str); 6] = [
        (vec![], ""),
        (vec![proto(6), ip4_type()], "tcp"),
        (vec![M::DlType { value: 0x86dd }, proto(58)], "icmp6"),
        (
            vec![M::DlType { value: 0x86dd }, proto(47)],
            "ipv6,nw_proto=47",
        ),
        (vec![proto(6)], "nw_proto=6"),
        (
            vec![M::DlType { value: 0x0806 }, M::InPort { port: num(2) }],
            "arp,in_port=2",
        ),
    ];
    for (m, want) in cases {
        assert_eq!(format_match(&m), want);
    }
}

#[test]
fn suggestions() {
    let keys = ["nw_dst", "tcp", "priority", "in_port"];
    assert_eq!(lex::suggest("nw_dts", keys), Some("nw_dst"));
    assert_eq!(lex::suggest("tpc", keys), Some("tcp"));
    assert_eq!(lex::suggest("PRIORITY", keys), Some("priority"));
    assert_eq!(lex::suggest("inport", keys), Some("in_port"));
    assert_eq!(lex::suggest("xyz", keys), None);
    assert_eq!(lex::suggest("", keys), None);
}

/// A long flow that exercises most of the syntax.
const LONG: &str = "cookie=0xa6e470, table=2, idle_timeout=10, priority=100,tcp,in_port=vxlan0,\
                    dl_src=0a:58:0a:01:01:02,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,\
                    nw_src=10.1.0.0/16,nw_dst=10.1.2.3/255.255.0.255,tp_dst=0x50/0xfff0,\
                    tun_id=0x64,tun_src=192.168.0.1,reg0=5/0xff actions=dec_ttl,\
                    set_field:0a:58:0a:01:01:09->eth_dst,load:0x5->NXM_NX_REG0[0..15],\
                    move:reg1[0..23]->tun_id[0..23],resubmit(vxlan0,3),note:00.01.02,output:1";

/// Parses `s` every way; whatever parses as a flow must round-trip.
fn parse_everything(s: &str) {
    if let Ok(f) = parse_flow(s) {
        let text = format_flow(&f);
        assert_eq!(
            parse_flow(&text).as_ref(),
            Ok(&f),
            "{s:?} printed as {text:?}"
        );
    }
    let _ = parse_filter(s);
    let _ = parse_trace(s);
    let _ = parse_bundle(s);
    let _ = parse_flows_file(s);
}

#[test]
fn no_panics_on_prefixes_and_suffixes() {
    assert!(parse_flow(LONG).is_ok(), "{:?}", parse_flow(LONG));
    for (i, _) in LONG.char_indices() {
        parse_everything(&LONG[..i]);
        parse_everything(&LONG[i..]);
    }
    let trace = "in_port=2,dl_src=0a:58:0a:01:01:02,ip,nw_dst=10.1.2.2";
    for (i, _) in trace.char_indices() {
        parse_everything(&trace[..i]);
    }
}

#[test]
fn no_panics_on_garbage() {
    const PIECES: &[&str] = &[
        "=",
        ",",
        " ",
        "/",
        ":",
        "(",
        ")",
        "[",
        "]",
        "->",
        "..",
        ".",
        "0x",
        "0",
        "1",
        "255",
        "65536",
        "ffffffffffffffffff",
        "ip",
        "tcp",
        "arp",
        "nw_dst",
        "tp_dst",
        "reg0",
        "tun_id",
        "in_port",
        "actions",
        "output",
        "load",
        "move",
        "set_field",
        "resubmit",
        "note",
        "drop",
        "10.1.2.3",
        "fd00::1",
        "0a:58:0a:01:01:02",
        "NXM_NX_REG0",
        "é",
        "\t",
        "#",
        "\n",
        "flow",
        "add",
        "delete_strict",
        "cookie",
        "priority",
        "table",
        "-",
        "ü̈",
        "\u{3000}",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let n = next() % 24;
        let mut s = String::new();
        for _ in 0..n {
            let r = next();
            if r % 7 == 0 {
                s.push(char::from_u32((r >> 8) as u32 % 0x3000).unwrap_or('?'));
            } else {
                s.push_str(PIECES[(r >> 8) as usize % PIECES.len()]);
            }
        }
        parse_everything(&s);
    }
    for _ in 0..500 {
        let bytes: Vec<u8> = (0..next() % 40).map(|_| next() as u8).collect();
        parse_everything(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn ipv6_fields_parse_print_and_round_trip() {
    let cases = [
        (
            "icmp6,icmp_type=135,nd_target=fd00:10:1:1::1 actions=normal",
            "icmp6,icmp_type=135,nd_target=fd00:10:1:1::1 actions=NORMAL",
        ),
        (
            "icmp6,icmpv6_type=136,icmpv6_code=0,nd_target=fd00:10:1::/48 actions=drop",
            "icmp6,icmp_type=136,icmp_code=0,nd_target=fd00:10:1::/48 actions=drop",
        ),
        (
            "tun_ipv6_src=2001:db8::2,tun_ipv6_dst=2001:db8::/32,in_port=1 actions=normal",
            "tun_ipv6_src=2001:db8::2,tun_ipv6_dst=2001:db8::/32,in_port=1 actions=NORMAL",
        ),
        (
            "udp6,ipv6_dst=fd00:10:1:2::/64,udp_dst=53 actions=drop",
            "udp6,ipv6_dst=fd00:10:1:2::/64,tp_dst=53 actions=drop",
        ),
        (
            "in_port=3 actions=set_field:2001:db8::2->tun_ipv6_dst,set_tunnel:5,output:1",
            "in_port=3 actions=set_field:2001:db8::2->tun_ipv6_dst,set_field:0x5->tun_id,output:1",
        ),
    ];
    for (input, printed) in cases {
        let f = parse_flow(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        let text = format_flow(&f);
        assert!(text.ends_with(printed), "{input} printed as {text}");
        assert_eq!(parse_flow(&text).as_ref(), Ok(&f), "{text}");
    }
    let f = parse_flow("icmp6,icmp_type=135,nd_target=fd00::1 actions=drop").unwrap();
    assert!(f.matches.contains(&M::NdTarget {
        value: ip6("fd00::1"),
        mask: Ipv6Addr::from(u128::MAX),
    }));
    // Host bits under the mask are cleared, as for ipv6_dst.
    let f = parse_flow("tun_ipv6_dst=2001:db8::7/32 actions=drop").unwrap();
    assert!(format_flow(&f).contains("tun_ipv6_dst=2001:db8::/32"));

    for (input, col, words) in [
        (
            "nd_target=fd00::1 actions=drop",
            1,
            "nd_target needs icmp6 and icmp_type=135 or 136",
        ),
        (
            "icmp6,nd_target=fd00::1 actions=drop",
            7,
            "nd_target needs icmp6",
        ),
        (
            "icmp6,icmp_type=128,nd_target=fd00::1 actions=drop",
            21,
            "nd_target needs",
        ),
        (
            "icmp,icmp_type=135,nd_target=fd00::1 actions=drop",
            20,
            "nd_target needs",
        ),
        (
            "icmp6,icmp_type=135,nd_target=10.1.1.1 actions=drop",
            31,
            "IPv6",
        ),
        (
            "tun_ipv6_src=fd00::/129 actions=drop",
            21,
            "prefix length (0-128)",
        ),
    ] {
        let e = parse_flow(input).expect_err(input);
        assert_eq!(e.column, col, "{input}: {e}");
        assert!(e.message.contains(words), "{input}: {e}");
    }
}

/// The flows of `tests/data/openshift/GEN.flows` printed (the later of two equal rules wins,
/// as when OVS loads them), against what real OVS 3.1 printed for them in `GEN.dump`
/// (`ovs-ofctl -O OpenFlow13 dump-flows --no-stats --no-names`).
#[test]
fn openshift_programs_print_as_ovs_dumps_them() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/openshift");
    for gen in ["sdn-2015", "origin-3.6", "sdn-4.x"] {
        let flows = std::fs::read_to_string(format!("{dir}/{gen}.flows")).unwrap();
        let dump = std::fs::read_to_string(format!("{dir}/{gen}.dump")).unwrap();
        let parsed = parse_flows_file(&flows).unwrap_or_else(|e| panic!("{gen}: {e}"));
        let mut got: Vec<String> = Vec::new();
        let mut rules: Vec<FlowSpec> = Vec::new();
        for f in parsed {
            match rules.iter_mut().find(|r| r.same_rule(&f)) {
                Some(r) => *r = f,
                None => rules.push(f),
            }
        }
        for f in &rules {
            let text = format_flow(f);
            assert_eq!(parse_flow(&text).as_ref(), Ok(f), "{gen}: {text}");
            got.push(text);
        }
        let mut want: Vec<String> = dump
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim_start().to_string())
            .collect();
        got.sort();
        want.sort();
        let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
        let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{gen}: OVS printed but we did not:\n{}\nwe printed but OVS did not:\n{}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            extra
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(got, want, "{gen}");
    }
}

/// `replace-flows` / `add-flows` with the same flow listed twice: the later line wins, as in
/// ovs-ofctl.
#[test]
fn a_flow_listed_twice_in_a_file_is_the_later_line() {
    let text = "table=1,priority=5,ip actions=output:1\n\
                table=1,priority=6,ip actions=output:2\n\
                table=1, priority=5, ip, actions=output:3  # again\n";
    let flows = parse_flows_file(text).unwrap();
    assert_eq!(flows.len(), 2, "{flows:?}");
    assert_eq!(flows[0].priority, 5);
    assert_eq!(flows[0].actions, vec![A::Output { port: num(3) }]);
    assert_eq!(flows[1].actions, vec![A::Output { port: num(2) }]);
}

/// Flows loaded into a real OVS 3.1 (`ovs-ofctl -O OpenFlow13 add-flow`) and what its
/// `dump-flows --no-stats` printed for them, for what the OpenShift dumps do not cover: VLAN
/// matches and actions, the mod_* aliases, output to a field, IN_PORT, resubmit forms,
/// fragments, pkt_mark, conjunctions, masked set_field, NXM field names, learn variants,
/// notes, groups.
const OVS_PRINTS: &[(&str, &str)] = &[
    ("dl_vlan=5 actions=drop", "dl_vlan=5 actions=drop"),
    ("dl_vlan=5,dl_vlan_pcp=3 actions=drop", "dl_vlan=5,dl_vlan_pcp=3 actions=drop"),
    ("dl_vlan_pcp=3 actions=drop", "dl_vlan_pcp=3 actions=drop"),
    ("vlan_tci=0x1005/0x1fff actions=drop", "dl_vlan=5 actions=drop"),
    ("vlan_tci=0 actions=drop", "vlan_tci=0x0000/0x1fff actions=drop"),
    ("vlan_tci=0x1000/0x1000 actions=drop", "vlan_tci=0x1000/0x1000 actions=drop"),
    ("actions=mod_vlan_vid:5,output:1", "actions=push_vlan:0x8100,set_field:4101->vlan_vid,output:1"),
    ("dl_vlan=7 actions=mod_vlan_vid:5,output:1", "dl_vlan=7 actions=set_field:4101->vlan_vid,output:1"),
    ("actions=mod_vlan_pcp:3,output:1", "actions=push_vlan:0x8100,set_field:3->vlan_pcp,output:1"),
    ("actions=push_vlan:0x8100,set_field:4101->vlan_vid,output:1", "actions=push_vlan:0x8100,set_field:4101->vlan_vid,output:1"),
    ("tcp actions=mod_tp_src:53,mod_tp_dst:7777", "tcp actions=set_field:53->tcp_src,set_field:7777->tcp_dst"),
    ("udp actions=mod_tp_src:53,mod_tp_dst:7777", "udp actions=set_field:53->udp_src,set_field:7777->udp_dst"),
    ("actions=mod_dl_src:0a:58:0a:01:01:01,mod_dl_dst:0a:58:0a:01:01:02,output:2", "actions=set_field:0a:58:0a:01:01:01->eth_src,set_field:0a:58:0a:01:01:02->eth_dst,output:2"),
    ("actions=in_port", "actions=IN_PORT"),
    ("actions=output:IN_PORT", "actions=IN_PORT"),
    ("in_port=3 actions=output:NXM_NX_REG2[0..15]", "in_port=3 actions=output:NXM_NX_REG2[0..15]"),
    ("actions=resubmit:3,resubmit(4),resubmit(,5),resubmit(6,7),resubmit(4,)", "actions=resubmit:3,resubmit:4,resubmit(,5),resubmit(6,7),resubmit:4"),
    ("ip,nw_frag=yes actions=drop", "ip,nw_frag=yes actions=drop"),
    ("ip,nw_frag=no actions=drop", "ip,nw_frag=no actions=drop"),
    ("ip,nw_frag=first actions=drop", "ip,nw_frag=first actions=drop"),
    ("ip,nw_frag=not_later actions=drop", "ip,nw_frag=not_later actions=drop"),
    ("pkt_mark=0x5 actions=drop", "pkt_mark=0x5 actions=drop"),
    ("pkt_mark=0x5/0xff actions=set_field:7->pkt_mark", "pkt_mark=0x5/0xff actions=set_field:0x7->pkt_mark"),
    ("tcp,tp_dst=80 actions=conjunction(7,1/2)", "tcp,tp_dst=80 actions=conjunction(7,1/2)"),
    ("conj_id=7 actions=drop", "conj_id=7 actions=drop"),
    ("actions=set_field:0x5/0xf->reg0,set_field:0xa0000/0xff00ff->reg1", "actions=load:0x5->NXM_NX_REG0[0..3],load:0->NXM_NX_REG1[0..7],load:0xa->NXM_NX_REG1[16..23]"),
    ("actions=load:0->NXM_NX_REG0[],load:0x1->NXM_OF_IN_PORT[],move:NXM_OF_IN_PORT[]->NXM_NX_REG3[0..15]", "actions=load:0->NXM_NX_REG0[],load:0x1->NXM_OF_IN_PORT[],move:NXM_OF_IN_PORT[]->NXM_NX_REG3[0..15]"),
    ("actions=move:NXM_NX_PKT_MARK[]->NXM_NX_REG1[],move:NXM_OF_VLAN_TCI[]->NXM_NX_REG2[0..15],move:NXM_OF_ETH_TYPE[]->NXM_NX_REG2[16..31]", "actions=move:NXM_NX_PKT_MARK[]->NXM_NX_REG1[],move:NXM_OF_VLAN_TCI[]->NXM_NX_REG2[0..15],move:NXM_OF_ETH_TYPE[]->NXM_NX_REG2[16..31]"),
    ("actions=learn(table=10,idle_timeout=30,hard_timeout=60,fin_idle_timeout=5,fin_hard_timeout=10,priority=100,send_flow_rem,delete_learned,cookie=0x99,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:NXM_OF_IN_PORT[])", "actions=learn(table=10,idle_timeout=30,hard_timeout=60,fin_idle_timeout=5,fin_hard_timeout=10,priority=100,send_flow_rem,delete_learned,cookie=0x99,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:NXM_OF_IN_PORT[])"),
    ("actions=learn(priority=7,NXM_OF_ETH_SRC[])", "actions=learn(table=1,priority=7,NXM_OF_ETH_SRC[])"),
    ("actions=note:01.02.03.04.05.06.07", "actions=note:01.02.03.04.05.06.07.00.00.00.00.00.00.00"),
    ("actions=set_field:0x5->tun_id,set_tunnel:7", "actions=set_field:0x5->tun_id,set_field:0x7->tun_id"),
    ("dl_vlan=5 actions=strip_vlan,output:1", "dl_vlan=5 actions=pop_vlan,output:1"),
    ("dl_vlan=5 actions=pop_vlan,output:1", "dl_vlan=5 actions=pop_vlan,output:1"),
    ("ip actions=mod_nw_tos:16,output:1", "ip actions=set_field:4->ip_dscp,output:1"),
    ("dl_vlan=5 actions=set_field:3->vlan_pcp,output:1", "dl_vlan=5 actions=set_field:3->vlan_pcp,output:1"),
    ("dl_vlan=5 actions=mod_vlan_pcp:3,output:1", "dl_vlan=5 actions=set_field:3->vlan_pcp,output:1"),
    ("vlan_tci=0x1000/0x1000 actions=mod_vlan_vid:9,output:1", "vlan_tci=0x1000/0x1000 actions=set_field:4105->vlan_vid,output:1"),
    ("ip actions=set_field:10.0.0.0/255.0.0.0->ip_dst", "ip actions=load:0xa->NXM_OF_IP_DST[24..31]"),
    ("ip actions=move:NXM_OF_IP_PROTO[]->NXM_NX_REG4[0..7],move:NXM_NX_IP_TTL[]->NXM_NX_REG4[8..15],move:NXM_OF_IP_TOS[]->NXM_NX_REG4[16..23]", "ip actions=move:NXM_OF_IP_PROTO[]->NXM_NX_REG4[0..7],move:NXM_NX_IP_TTL[]->NXM_NX_REG4[8..15],move:NXM_OF_IP_TOS[]->NXM_NX_REG4[16..23]"),
    ("udp actions=move:NXM_OF_UDP_SRC[]->NXM_NX_REG6[16..31],load:0x35->NXM_OF_UDP_DST[]", "udp actions=move:NXM_OF_UDP_SRC[]->NXM_NX_REG6[16..31],load:0x35->NXM_OF_UDP_DST[]"),
    ("ip actions=learn(table=2,eth_type=0x800,ip_dst=10.1.1.1,NXM_NX_REG0[0..15]=0x5,load:0x7->NXM_NX_REG1[],nw_proto=6,NXM_OF_IP_SRC[]=NXM_OF_IP_DST[])", "ip actions=learn(table=2,eth_type=0x800,ip_dst=10.1.1.1,NXM_NX_REG0[0..15]=0x5,load:0x7->NXM_NX_REG1[],nw_proto=6,NXM_OF_IP_SRC[]=NXM_OF_IP_DST[])"),
    ("actions=learn(table=3,dl_dst=0a:58:0a:01:01:01,NXM_NX_REG0[]=0,NXM_NX_TUN_ID[0..31]=0x1234,in_port=5)", "actions=learn(table=3,eth_dst=0a:58:0a:01:01:01,reg0=0,NXM_NX_TUN_ID[0..31]=0x1234,in_port=5)"),
    ("arp,nw_dst=10.1.1.1,arp_op=1 actions=drop", "arp,arp_tpa=10.1.1.1,arp_op=1 actions=drop"),
    ("arp,nw_proto=2 actions=drop", "arp,arp_op=2 actions=drop"),
    ("ip,nw_frag=later actions=set_field:0x10->nw_tos", "ip,nw_frag=later actions=set_field:16->nw_tos"),
    ("actions=output:65279", "actions=output:65279"),
    ("in_port=65279 actions=output:1", "in_port=65279 actions=output:1"),
    ("actions=group:5", "actions=group:5"),
];

#[test]
fn prints_what_real_ovs_prints() {
    let mut wrong = Vec::new();
    for (input, ovs) in OVS_PRINTS {
        let f = parse_flow(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        let text = format_flow(&f);
        if text != *ovs {
            wrong.push(format!("{input}\n  OVS: {ovs}\n  we:  {text}"));
        }
        assert_eq!(parse_flow(&text).as_ref(), Ok(&f), "{text}");
        assert_eq!(parse_flow(ovs).as_ref(), Ok(&f), "{ovs}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The syntax real SDN programs use, in one line, for the no-panic test.
const LONG_OVS: &str = "table=3, priority=200, arp, nw_src=10.1.0.0/16, nw_dst=10.1.1.1, \
     dl_vlan=5,dl_vlan_pcp=3,pkt_mark=0x5/0xff,conj_id=7,in_port=65279 \
     actions=learn(table=8, priority=200, hard_timeout=900, NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[], \
     load:NXM_NX_TUN_IPV4_SRC[]->NXM_NX_TUN_IPV4_DST[], output:NXM_OF_IN_PORT[], \
     NXM_NX_REG0[0..15]=0x5,eth_type=0x800),move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG0[],\
     output:NXM_NX_REG2[],IN_PORT,mod_vlan_vid:7,mod_vlan_pcp:2,strip_vlan,push_vlan:0x8100,\
     mod_nw_tos:16,set_field:0a:58:00:00:00:00/ff:ff:00:00:00:00->eth_dst,group:5,\
     conjunction(7,1/2),resubmit:10,resubmit(,4),note:01.0D";

#[test]
fn no_panics_on_prefixes_and_suffixes_of_the_ovs_syntax() {
    let f = parse_flow(LONG_OVS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parse_flow(&format_flow(&f)).as_ref(), Ok(&f));
    for (i, _) in LONG_OVS.char_indices() {
        parse_everything(&LONG_OVS[..i]);
        parse_everything(&LONG_OVS[i..]);
    }
}
