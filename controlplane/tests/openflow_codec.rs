//! The OpenFlow codec against byte vectors a real ovs-ofctl (OVS 3.1) sent to a real OVS
//! bridge (`tests/data/openflow/`, recorded by `gen.sh` / `capture.py` there): every flow of
//! the OpenShift programs and of `extra.flows`, group mods, packet-outs, dump and delete
//! filters, in OpenFlow 1.3 and 1.4.
//!
//! - Decoding gives the flow the project's flow syntax parses from the same text (where the
//!   syntax parses it; the rest are listed when the test runs with `--nocapture`).
//! - Encoding what was decoded and decoding again gives the same message.
//! - With ovs-ofctl installed: what we encode from the parsed text, `ovs-ofctl ofp-print`
//!   prints exactly as it prints the captured bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use controlplane::flow::{Field, FlowAction, FlowSpec};
use controlplane::flow_syntax::{parse_filter, parse_flow};
use controlplane::openflow::flow_mod::{decode_flow_mod, encode_flow_mod, FlowModCommand, FlowModMsg};
use controlplane::openflow::flow_stats::decode_flow_stats_request;
use controlplane::openflow::group::{decode_group_mod, encode_group_mod};
use controlplane::openflow::packet_out::{decode_packet_out, encode_packet_out};
use controlplane::openflow::{Header, MsgType, NO_BUFFER};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openflow").join(name)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// (command text, messages) of a capture file; commands that OVS refused are left out.
fn captures(name: &str) -> Vec<(String, Vec<Vec<u8>>)> {
    let text = std::fs::read_to_string(data(name)).expect("capture file");
    let mut out: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix("> ") {
            out.push((cmd.to_string(), Vec::new()));
        } else if line.starts_with('!') {
            continue;
        } else if let Some(last) = out.last_mut() {
            if !line.is_empty() {
                last.1.push(hex(line));
            }
        }
    }
    out.retain(|(_, m)| !m.is_empty() && m.iter().all(|x| x.first() != Some(&b'!')));
    out
}

/// The reprs the wire cannot tell apart from set_field, as the decoder gives them.
fn as_wire(actions: &[FlowAction]) -> Vec<FlowAction> {
    let mac = |m: &controlplane::proto::MacAddr| m.0.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b));
    actions
        .iter()
        .map(|a| match a {
            FlowAction::ModDlSrc { mac: m } => FlowAction::SetField {
                field: Field::DlSrc,
                value: mac(m),
            },
            FlowAction::ModDlDst { mac: m } => FlowAction::SetField {
                field: Field::DlDst,
                value: mac(m),
            },
            FlowAction::ModVlanVid { vid } => FlowAction::SetField {
                field: Field::VlanVid,
                value: u64::from(0x1000 | vid),
            },
            FlowAction::ModVlanPcp { pcp } => FlowAction::SetField {
                field: Field::VlanPcp,
                value: u64::from(*pcp),
            },
            // OVS pads a note to fill its action and keeps the padding as part of the note
            // (dump-flows prints it).
            FlowAction::Note { bytes } => {
                let mut bytes = bytes.clone();
                while bytes.len() < 6 || (bytes.len() + 10) % 8 != 0 {
                    bytes.push(0);
                }
                FlowAction::Note { bytes }
            }
            a => a.clone(),
        })
        .collect()
}

fn ofctl() -> Option<&'static str> {
    let ok = Command::new("ovs-ofctl")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some("ovs-ofctl")
}

/// What ovs-ofctl ofp-print prints for a message, with its xid set to 7.
fn ofp_print(msg: &[u8]) -> String {
    let mut m = msg.to_vec();
    m[4..8].copy_from_slice(&7u32.to_be_bytes());
    let out = Command::new("ovs-ofctl")
        .args(["ofp-print", &to_hex(&m)])
        .output()
        .expect("ovs-ofctl ofp-print");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn check_flow_mods(file: &str, version: u8) {
    let caps = captures(file);
    assert!(caps.len() >= 150, "{} captured flows in {file}", caps.len());
    let mut same = 0;
    let mut unparsed = Vec::new();
    let mut differ = Vec::new();
    let mut printed_same = 0;
    let mut refused = 0;
    let mut reencoded_same = 0;
    let mut misprinted = Vec::new();
    let ofctl = ofctl();
    for (text, msgs) in &caps {
        assert_eq!(msgs.len(), 1, "{text}");
        let msg = &msgs[0];
        assert_eq!(msg[0], version);
        let fm = match decode_flow_mod(version, msg) {
            Ok(fm) => fm,
            // Connection tracking is not part of the project: refused as OVS refuses a field
            // or action it does not know.
            Err(e) if text.contains("ct_state") || text.contains("ct(") => {
                assert!(
                    (e.kind, e.code) == (4, 6) || (e.kind, e.code) == (2, 3),
                    "{text}: {e}"
                );
                refused += 1;
                continue;
            }
            Err(e) => panic!("{text}: {e}"),
        };
        assert_eq!(fm.command, FlowModCommand::Add);
        // Encode and decode again: the same message.
        let mut again = Vec::new();
        encode_flow_mod(version, 7, &fm, &mut again);
        assert_eq!(decode_flow_mod(version, &again).as_ref(), Ok(&fm), "{text}: round trip");
        // And OVS reads what we encode from the decoded flow as it reads its own message.
        if ofctl.is_some() {
            let (want, got) = (ofp_print(msg), ofp_print(&again));
            if got == want {
                reencoded_same += 1;
            } else {
                misprinted.push(format!("{text} (re-encoded)\n  ovs    {want}  ours   {got}"));
            }
        }
        match parse_flow(text) {
            Ok(mut spec) => {
                spec.actions = as_wire(&spec.actions);
                if spec == fm.flow {
                    same += 1;
                } else {
                    differ.push(format!("{text}\n  syntax {spec:?}\n  wire   {:?}", fm.flow));
                }
                if ofctl.is_some() {
                    let ours = FlowModMsg {
                        flow: spec.clone(),
                        ..fm.clone()
                    };
                    let mut b = Vec::new();
                    encode_flow_mod(version, 7, &ours, &mut b);
                    let (want, got) = (ofp_print(msg), ofp_print(&b));
                    if got == want {
                        printed_same += 1;
                    } else {
                        misprinted.push(format!("{text}\n  ovs    {want}  ours   {got}"));
                    }
                }
            }
            Err(e) => unparsed.push(format!("{text}: {e}")),
        }
    }
    println!(
        "{file}: {} flows, {refused} refused (connection tracking); {same} decode to what the syntax parses, {} differ, {} not parsed by the syntax; {printed_same} encodings of the parsed flow and {reencoded_same} of the decoded one printed by ovs-ofctl as it prints the captured message",
        caps.len(),
        differ.len(),
        unparsed.len()
    );
    for d in &differ {
        println!("DIFFERS {d}");
    }
    for u in &unparsed {
        println!("UNPARSED {u}");
    }
    for m in &misprinted {
        println!("MISPRINTED {m}");
    }
    assert!(differ.is_empty(), "{} flows decode differently", differ.len());
    assert!(misprinted.is_empty(), "{} encodings print differently", misprinted.len());
}

#[test]
fn flow_mods_of13_decode_to_what_the_syntax_parses() {
    check_flow_mods("flow_mod_of13.txt", 4);
}

#[test]
fn flow_mods_of14_decode_to_what_the_syntax_parses() {
    check_flow_mods("flow_mod_of14.txt", 5);
}

fn check_misc(file: &str, version: u8) {
    let caps = captures(file);
    let mut kinds = std::collections::BTreeMap::new();
    for (cmd, msgs) in &caps {
        let mut parts = cmd.splitn(3, '|');
        let verb = parts.next().unwrap_or("");
        let arg = parts.next().unwrap_or("");
        for msg in msgs {
            let h = Header::new_checked(&msg[..]).expect("header");
            *kinds.entry(format!("{:?}", h.msg_type())).or_insert(0) += 1;
            match h.msg_type() {
                MsgType::FlowMod => {
                    let fm = decode_flow_mod(version, msg).unwrap_or_else(|e| panic!("{cmd}: {e}"));
                    let mut again = Vec::new();
                    encode_flow_mod(version, 7, &fm, &mut again);
                    assert_eq!(decode_flow_mod(version, &again).as_ref(), Ok(&fm), "{cmd}");
                    if verb.contains("del-flows") || verb.contains("mod-flows") {
                        let Ok(f) = parse_filter(arg) else {
                            println!("UNPARSED {cmd}");
                            continue;
                        };
                        assert_eq!(fm.flow.matches, f.matches, "{cmd}");
                        if let Some((value, mask)) = f.cookie {
                            assert_eq!((fm.flow.cookie, fm.cookie_mask), (value, mask), "{cmd}");
                        }
                        if let Some(t) = f.table {
                            assert_eq!(fm.table_id, t, "{cmd}");
                        } else {
                            assert_eq!(fm.table_id, 0xff, "{cmd}");
                        }
                        let strict = verb.starts_with("--strict");
                        let want = match (verb.contains("del"), strict) {
                            (true, true) => FlowModCommand::DeleteStrict,
                            (true, false) => FlowModCommand::Delete,
                            (false, true) => FlowModCommand::ModifyStrict,
                            (false, false) => FlowModCommand::Modify,
                        };
                        assert_eq!(fm.command, want, "{cmd}");
                        if let Some(a) = f.actions {
                            assert_eq!(fm.flow.actions, as_wire(&a), "{cmd}");
                        }
                    }
                }
                MsgType::GroupMod => {
                    let g = decode_group_mod(version, msg).unwrap_or_else(|e| panic!("{cmd}: {e}"));
                    let mut again = Vec::new();
                    encode_group_mod(version, 7, &g, &mut again);
                    assert_eq!(decode_group_mod(version, &again).as_ref(), Ok(&g), "{cmd}");
                    if ofctl().is_some() {
                        assert_eq!(ofp_print(&again), ofp_print(msg), "{cmd}");
                    }
                }
                MsgType::PacketOut => {
                    let p = decode_packet_out(version, msg).unwrap_or_else(|e| panic!("{cmd}: {e}"));
                    assert_eq!(p.buffer_id, NO_BUFFER);
                    assert!(!p.data.is_empty(), "{cmd}");
                    let mut again = Vec::new();
                    encode_packet_out(version, 7, &p, &mut again);
                    assert_eq!(decode_packet_out(version, &again).as_ref(), Ok(&p), "{cmd}");
                    if ofctl().is_some() {
                        assert_eq!(ofp_print(&again), ofp_print(msg), "{cmd}");
                    }
                }
                MsgType::MultipartRequest => {
                    let mp_type = u16::from_be_bytes([msg[8], msg[9]]);
                    if mp_type == 1 || mp_type == 2 {
                        let r = decode_flow_stats_request(version, &msg[16..])
                            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
                        let Ok(f) = parse_filter(arg) else {
                            println!("UNPARSED {cmd}");
                            continue;
                        };
                        assert_eq!(r.matches, f.matches, "{cmd}");
                        assert_eq!(r.table_id, f.table.unwrap_or(0xff), "{cmd}");
                        if let Some((value, mask)) = f.cookie {
                            assert_eq!((r.cookie, r.cookie_mask), (value, mask), "{cmd}");
                        }
                    }
                }
                _ => {}
            }
        }
    }
    println!("{file}: {kinds:?}");
    for k in ["FlowMod", "GroupMod", "PacketOut", "MultipartRequest"] {
        assert!(kinds.get(k).copied().unwrap_or(0) >= 2, "{file}: few {k} {kinds:?}");
    }
}

#[test]
fn groups_packet_outs_dumps_and_deletes_of13() {
    check_misc("misc_of13.txt", 4);
}

#[test]
fn groups_packet_outs_dumps_and_deletes_of14() {
    check_misc("misc_of14.txt", 5);
}

/// A flow spec for the unit checks below.
#[allow(dead_code)]
fn flow(text: &str) -> FlowSpec {
    parse_flow(text).expect("flow")
}
