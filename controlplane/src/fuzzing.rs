//! What the fuzz targets of the control plane do with one input, shared with the tests that
//! replay every saved corpus input on stable (`tests/fuzz_corpus.rs`).
//!
//! Each function takes arbitrary bytes and must return without panicking, looping or growing
//! memory beyond a bound, whatever the bytes; the properties the parsers promise are checked
//! with `assert!` (this module is for tests and fuzzing only). The targets live in `fuzz/`
//! (`cargo +nightly fuzz run control_decode`, `flow_syntax`, `agent_config`).

use std::collections::HashSet;
use std::io::Read;

use crate::agent;
use crate::codec;
use crate::flow_syntax::{self, format_flow};
use crate::proto::{Change, Request, Response, StateRepr};
use crate::Error;

/// Inputs are cut to this many bytes: every parser here reads text a person or a client
/// wrote, and the interesting structure is short.
pub const MAX_INPUT: usize = 64 * 1024;

fn cut(data: &[u8]) -> &[u8] {
    &data[..data.len().min(MAX_INPUT)]
}

/// A reader that hands out its bytes a few at a time, as a socket may.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.len().min(buf.len()).min(self.step);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The control-protocol decoder: the input as one message body (a request and a response),
/// and as a stream of frames read by the framed reader, a few bytes per read. Whatever decodes
/// must encode and decode back to the same message; the batch validators must not panic.
pub fn control_decode(data: &[u8]) {
    let data = cut(data);
    body(data);
    let step = data.first().map_or(1, |b| usize::from(b % 7) + 1);
    let mut r = Trickle { data, step };
    // Every frame consumes at least its 4-byte length, so this ends.
    loop {
        match codec::read_frame(&mut r) {
            Ok(Some(b)) => body(&b),
            Ok(None) => break,
            Err(Error::TooLarge { len, max }) => {
                assert!(len > max);
                break;
            }
            Err(Error::Closed) => break,
            Err(e) => panic!("the framed reader over a byte slice failed with {e}"),
        }
    }
}

fn body(b: &[u8]) {
    if let Ok(req) = codec::decode::<Request>(b) {
        let frame = codec::encode(&req).expect("a decoded request encodes");
        let again: Request = codec::read_msg(&mut &frame[..]).expect("and decodes back");
        assert_eq!(again, req);
        check_request(&req);
    }
    if let Ok(resp) = codec::decode::<Response>(b) {
        let frame = codec::encode(&resp).expect("a decoded response encodes");
        let again: Response = codec::read_msg(&mut &frame[..]).expect("and decodes back");
        assert_eq!(again, resp);
    }
}

/// What the daemon computes from a request before it touches anything.
fn check_request(req: &Request) {
    let Request::Apply(a) = req else {
        return;
    };
    for ch in &a.changes {
        match ch {
            Change::SetLocalNode(l) => {
                if l.validate().is_ok() {
                    let _ = (l.gateway(), l.gateway6(), l.overhead(), l.pod_mtu());
                    let _ = (l.subnet.broadcast(), l.subnet.nth(1), l.subnet.mask());
                }
            }
            Change::AddPort(p) => {
                let _ = (p.validate(), p.ifname());
            }
            Change::AddNode(n) => {
                let _ = n.validate();
            }
            Change::DelPort { .. } | Change::DelNode { .. } => {}
        }
    }
}

/// The flow syntax: the input (UTF-8, else nothing) as a flow, a filter, a trace, a flows file
/// and a bundle. A flow that parses prints in a form that parses back to the same flow, and
/// printing that again gives the same text.
pub fn flow_syntax(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(cut(data)) else {
        return;
    };
    if let Ok(f) = flow_syntax::parse_flow(s) {
        let text = format_flow(&f);
        let back = flow_syntax::parse_flow(&text);
        assert_eq!(back.as_ref(), Ok(&f), "{s:?} printed as {text:?}");
        assert_eq!(format_flow(&f), text);
    }
    if let Ok(filter) = flow_syntax::parse_filter(s) {
        let _ = (filter.to_delete(true), filter.to_delete(false));
        let _ = (filter.to_modify(true), filter.to_modify(false));
    }
    let _ = flow_syntax::parse_trace(s);
    if let Ok(flows) = flow_syntax::parse_flows_file(s) {
        for f in &flows {
            let text = format_flow(f);
            assert_eq!(flow_syntax::parse_flow(&text).as_ref(), Ok(f), "{text:?}");
        }
    }
    if let Ok(mods) = flow_syntax::parse_bundle(s) {
        // A bundle goes over the control socket as JSON: it must survive the trip.
        let frame = codec::encode(&Request::FlowMods { mods: mods.clone() });
        if let Ok(frame) = frame {
            let back: Request = codec::read_msg(&mut &frame[..]).expect("a bundle decodes");
            assert_eq!(back, Request::FlowMods { mods });
        }
    }
}

/// The agent's TOML file: parsed and validated; a file that passes yields the batch for an
/// empty switch and the agent's flows, which the flow syntax prints and parses back.
pub fn agent_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(cut(data)) else {
        return;
    };
    let cfg = match agent::config::parse("agent.toml", text) {
        Ok(cfg) => cfg,
        Err(e) => {
            // Errors name the file and, when known, a line inside it.
            let shown = e.to_string();
            assert!(shown.starts_with("agent.toml:"), "{shown}");
            if let Some(line) = e.line {
                assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
            }
            return;
        }
    };
    let empty = StateRepr {
        bridge: "vxbr0".into(),
        table_version: 0,
        local: None,
        local_owner: None,
        ports: vec![],
        nodes: vec![],
        vxlan_port: 4789,
        workers: 1,
    };
    let plan = agent::plan(&cfg, &empty);
    let _ = plan.is_noop();
    let want = agent::flows::desired(&cfg, &HashSet::new());
    for f in &want {
        let text = format_flow(f);
        assert_eq!(flow_syntax::parse_flow(&text).as_ref(), Ok(f), "{text:?}");
    }
    let fp = agent::flows::plan(&want, &[]);
    let _ = fp.is_noop();
    let again = agent::flows::plan(&want, &want);
    assert!(
        again.is_noop(),
        "the agent's flows against themselves need no change"
    );
}

/// The OpenFlow codec: the input as every message and body the decoders take, in OpenFlow
/// 1.3 and 1.4 (the first byte, if a known version, also picks the version), each decoder
/// returning a message or an error. Whatever decodes must encode and decode back to the
/// same repr.
pub fn openflow_decode(data: &[u8]) {
    use crate::openflow::{flow_mod, flow_stats, group, oxm, packet_out};
    let data = cut(data);
    for version in crate::openflow::VERSIONS {
        if let Ok(m) = flow_mod::decode_flow_mod(version, data) {
            let mut out = Vec::new();
            flow_mod::encode_flow_mod(version, 1, &m, &mut out);
            let again = flow_mod::decode_flow_mod(version, &out);
            assert_eq!(again.as_ref(), Ok(&m), "flow mod round trip");
        }
        if let Ok(g) = group::decode_group_mod(version, data) {
            let mut out = Vec::new();
            group::encode_group_mod(version, 1, &g, &mut out);
            assert_eq!(
                group::decode_group_mod(version, &out).as_ref(),
                Ok(&g),
                "group mod round trip"
            );
        }
        if let Ok(p) = packet_out::decode_packet_out(version, data) {
            let mut out = Vec::new();
            packet_out::encode_packet_out(version, 1, &p, &mut out);
            assert_eq!(
                packet_out::decode_packet_out(version, &out).as_ref(),
                Ok(&p),
                "packet-out round trip"
            );
        }
        if let Ok(r) = flow_stats::decode_flow_stats_request(version, data) {
            let mut out = Vec::new();
            flow_stats::encode_flow_stats_request(version, &r, &mut out);
            let again = flow_stats::decode_flow_stats_request(version, &out);
            assert_eq!(again.as_ref(), Ok(&r), "flow stats request round trip");
        }
        if let Ok((m, used)) = oxm::decode_match(version, data) {
            assert!(used <= data.len());
            let mut out = Vec::new();
            oxm::encode_match(version, &m, &mut out);
            let again = oxm::decode_match(version, &out).map(|x| x.0);
            assert_eq!(again.as_ref(), Ok(&m), "match round trip");
        }
        if let Ok(a) = oxm::decode_actions(version, data) {
            let mut out = Vec::new();
            oxm::encode_actions(version, &a, &mut out);
            assert_eq!(
                oxm::decode_actions(version, &out).as_ref(),
                Ok(&a),
                "actions round trip"
            );
        }
        if let Ok(a) = oxm::decode_instructions(version, data) {
            let mut out = Vec::new();
            oxm::encode_instructions(version, &a, &mut out);
            let again = oxm::decode_instructions(version, &out);
            assert_eq!(again.as_ref(), Ok(&a), "instructions round trip");
        }
        // Bodies after the message headers they usually follow.
        for skip in [8, 16] {
            if let Some(body) = data.get(skip..) {
                let _ = oxm::decode_actions(version, body);
                let _ = oxm::decode_instructions(version, body);
                let _ = oxm::decode_match(version, body);
                let _ = flow_stats::decode_flow_stats_request(version, body);
            }
        }
    }
}
