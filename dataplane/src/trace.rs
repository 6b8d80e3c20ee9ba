//! `vxctl trace`: a packet described by match fields is built for real and run through the
//! flow tables and the built-in forwarding with a recording sink, like OVS's ofproto/trace.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use controlplane::flow::{Match, TableMiss, MAX_DEPTH};
use controlplane::flow_syntax::{format_actions, format_flow};
use controlplane::proto::{TraceRepr, TraceStep, PORT_TUNNEL};

use crate::buf::PacketBuf;
use crate::counters::{DropReason, WorkerCounters};
use crate::fib::{PortNo, Tables};
use crate::flow::key::{FlowKey, Tunnel};
use crate::flow::{resolve, End, Observer, Rule, MAX_RESUBMITS};
use crate::pipeline::{Action, Pipeline, PipelineConfig, Recorder};
use crate::wire::checksum;

fn find<T>(ms: &[Match], f: impl Fn(&Match) -> Option<T>) -> Option<T> {
    ms.iter().find_map(f)
}

/// Builds the frame a trace describes; fields not given get plausible defaults (the ingress
/// port's MAC and address, the gateway's MAC as destination for IP).
pub fn synthesize(ms: &[Match], t: &Tables, in_port: PortNo) -> Vec<u8> {
    let port = t.port(in_port);
    let local = t.local.as_ref();
    let dl_type = find(ms, |m| match m {
        Match::DlType { value } => Some(*value),
        _ => None,
    })
    .unwrap_or(0x0800);
    let dl_src = find(ms, |m| match m {
        Match::DlSrc { value, .. } => Some(value.0),
        _ => None,
    })
    .or(port.map(|p| p.mac.0))
    .unwrap_or([2, 0, 0, 0, 0, 1]);
    let dl_dst = find(ms, |m| match m {
        Match::DlDst { value, .. } => Some(value.0),
        _ => None,
    })
    .unwrap_or(match (dl_type, local) {
        (0x0806, _) => [0xff; 6],
        (_, Some(l)) if in_port == PORT_TUNNEL => l.vtep_mac.0,
        (_, Some(l)) => l.gateway_mac.0,
        _ => [0xff; 6],
    });
    let nw = |src: bool| {
        find(ms, |m| match (m, src) {
            (Match::NwSrc { value, .. }, true) | (Match::ArpSpa { value, .. }, true) => {
                Some(*value)
            }
            (Match::NwDst { value, .. }, false) | (Match::ArpTpa { value, .. }, false) => {
                Some(*value)
            }
            _ => None,
        })
    };
    let nw_src = nw(true)
        .or(port.and_then(|p| p.ip))
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let nw_dst = nw(false).unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dl_dst);
    f.extend_from_slice(&dl_src);
    f.extend_from_slice(&dl_type.to_be_bytes());
    match dl_type {
        0x0806 => {
            let op = find(ms, |m| match m {
                Match::ArpOp { value } => Some(*value),
                _ => None,
            })
            .unwrap_or(1);
            let sha = find(ms, |m| match m {
                Match::ArpSha { value, .. } => Some(value.0),
                _ => None,
            })
            .unwrap_or(dl_src);
            let tha = find(ms, |m| match m {
                Match::ArpTha { value, .. } => Some(value.0),
                _ => None,
            })
            .unwrap_or([0; 6]);
            f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
            f.extend_from_slice(&op.to_be_bytes());
            f.extend_from_slice(&sha);
            f.extend_from_slice(&nw_src.octets());
            f.extend_from_slice(&tha);
            f.extend_from_slice(&nw_dst.octets());
        }
        0x0800 => {
            let proto = find(ms, |m| match m {
                Match::NwProto { value } => Some(*value),
                _ => None,
            })
            .unwrap_or(1);
            let ttl = find(ms, |m| match m {
                Match::NwTtl { value } => Some(*value),
                _ => None,
            })
            .unwrap_or(64);
            let tp = |src: bool| {
                find(ms, |m| match (m, src) {
                    (Match::TpSrc { value, .. }, true) | (Match::TpDst { value, .. }, false) => {
                        Some(*value)
                    }
                    _ => None,
                })
                .unwrap_or(if src { 40000 } else { 80 })
            };
            let mut l4 = match proto {
                6 => {
                    let mut h = vec![0u8; 20];
                    h[0..2].copy_from_slice(&tp(true).to_be_bytes());
                    h[2..4].copy_from_slice(&tp(false).to_be_bytes());
                    h[12] = 5 << 4;
                    h[13] = 0x02;
                    h[14..16].copy_from_slice(&65535u16.to_be_bytes());
                    h
                }
                17 => {
                    let mut h = vec![0u8; 8];
                    h[0..2].copy_from_slice(&tp(true).to_be_bytes());
                    h[2..4].copy_from_slice(&tp(false).to_be_bytes());
                    h[4..6].copy_from_slice(&8u16.to_be_bytes());
                    h
                }
                1 => {
                    let ty = find(ms, |m| match m {
                        Match::IcmpType { value } => Some(*value),
                        _ => None,
                    })
                    .unwrap_or(8);
                    let code = find(ms, |m| match m {
                        Match::IcmpCode { value } => Some(*value),
                        _ => None,
                    })
                    .unwrap_or(0);
                    vec![ty, code, 0, 0, 0, 1, 0, 1]
                }
                _ => vec![],
            };
            let total = 20 + l4.len();
            let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, ttl, proto, 0, 0];
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            ip.extend_from_slice(&nw_src.octets());
            ip.extend_from_slice(&nw_dst.octets());
            let c = checksum::data(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let sum = match proto {
                6 | 17 => Some(checksum::pseudo_header_v4(
                    nw_src,
                    nw_dst,
                    proto,
                    l4.len() as u32,
                )),
                1 => Some(0),
                _ => None,
            };
            if let Some(s) = sum {
                let at = match proto {
                    6 => 16,
                    17 => 6,
                    _ => 2,
                };
                let c = checksum::finish(checksum::accumulate(s, &l4));
                l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
            f.extend_from_slice(&ip);
            f.extend_from_slice(&l4);
        }
        _ => {}
    }
    f
}

struct Steps {
    steps: Vec<TraceStep>,
    actions: Vec<String>,
}

impl Observer for Steps {
    fn lookup(&mut self, table: u8, depth: usize, rule: Option<&Rule>, miss: TableMiss) {
        match rule {
            Some(r) => {
                self.actions.push(format_actions(&r.spec.actions));
                self.steps.push(TraceStep {
                    table,
                    flow: Some(r.spec.clone()),
                    note: format_flow(&r.spec),
                    depth: depth as u8,
                })
            }
            None => self.steps.push(TraceStep {
                table,
                flow: None,
                note: format!(
                    "no match: table miss {}",
                    match miss {
                        TableMiss::Drop => "drops",
                        TableMiss::Continue => "continues to the next table",
                        TableMiss::Normal => "uses normal forwarding",
                    }
                ),
                depth: depth as u8,
            }),
        }
    }
}

/// Runs the trace.
pub fn run(
    t: &Tables,
    in_port: PortNo,
    ms: &[Match],
    frame: Vec<u8>,
    name: &dyn Fn(PortNo) -> String,
) -> Result<TraceRepr, String> {
    run_with(&PipelineConfig::default(), t, in_port, ms, frame, name)
}

/// Runs the trace with the switch's pipeline settings (source ports, flood cap).
pub fn run_with(
    cfg: &PipelineConfig,
    t: &Tables,
    in_port: PortNo,
    ms: &[Match],
    frame: Vec<u8>,
    name: &dyn Fn(PortNo) -> String,
) -> Result<TraceRepr, String> {
    let tun_id = find(ms, |m| match m {
        Match::TunId { value, .. } => Some(*value),
        _ => None,
    });
    let tun_src = find(ms, |m| match m {
        Match::TunSrc { value, .. } => Some(*value),
        _ => None,
    });
    let local = t.local.as_ref();
    let vtep = local
        .map(|l| l.vtep)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let from_tunnel = in_port == PORT_TUNNEL;
    let vni = tun_id
        .map(|v| v as u32)
        .unwrap_or(local.map(|l| l.default_vni).unwrap_or(1));
    let src_vtep = tun_src
        .map(IpAddr::V4)
        .or(t.nodes.first().map(|n| n.vtep))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));

    // The flow tables, step by step.
    let mut obs = Steps {
        steps: Vec::new(),
        actions: Vec::new(),
    };
    if let Some(fs) = &t.flows {
        let tunnel = from_tunnel.then_some(Tunnel {
            vni,
            src: src_vtep,
            dst: vtep,
        });
        let mut key = FlowKey::extract(&frame, in_port, tunnel);
        let r = resolve(fs, &mut key, &mut obs);
        let limit = match r.end {
            End::TooDeep => Some(format!(
                "limit reached: resubmit/goto_table deeper than {MAX_DEPTH}; \
                 the packet is dropped (resubmit_depth), none of its actions carried out"
            )),
            End::TooManyResubmits => Some(format!(
                "limit reached: more than {MAX_RESUBMITS} table lookups for one packet; \
                 the packet is dropped (resubmit_limit), none of its actions carried out"
            )),
            _ => None,
        };
        if let Some(note) = limit {
            let depth = obs.steps.last().map(|s| s.depth).unwrap_or(0);
            obs.steps.push(TraceStep {
                table: obs.steps.last().map(|s| s.table).unwrap_or(0),
                flow: None,
                note,
                depth,
            });
        }
    }

    // Then the real pipeline, with nothing sent.
    let counters = WorkerCounters::default();
    let mut p = Pipeline::new(cfg.clone());
    p.set_now_ms(crate::clock::now_ms());
    let mut rec = Recorder::keeping();
    let last = if from_tunnel {
        let mut pkt = vec![0x08, 0, 0, 0];
        pkt.extend_from_slice(&(vni << 8).to_be_bytes());
        pkt.extend_from_slice(&frame);
        let mut buf = PacketBuf::from_frame(&pkt);
        p.from_tunnel(
            t,
            &counters,
            SocketAddr::new(src_vtep, 4789),
            Some(vtep),
            &mut buf,
            &mut rec,
        )
    } else {
        let mut buf = PacketBuf::from_frame(&frame);
        p.from_port(t, &counters, in_port, &mut buf, &mut rec)
    };
    let mut outputs: Vec<String> = rec
        .outputs
        .iter()
        .map(|(a, f)| match a {
            Action::Output(n) => format!("output to port {n} ({})", name(*n)),
            Action::Encap { node, src_port, .. } => {
                let vni = if f.len() >= 8 {
                    u32::from_be_bytes([0, f[4], f[5], f[6]])
                } else {
                    0
                };
                // The port of the worker's socket pool the flow's hashed port maps onto.
                let src_port = crate::io::udp::pool_port(
                    cfg.src_port_min,
                    cfg.src_port_max,
                    cfg.src_ports,
                    *src_port,
                );
                match t.node(*node) {
                    Some(n) => format!(
                        "encapsulate VNI {vni} to {} ({}) from UDP port {src_port}",
                        n.vtep, n.name
                    ),
                    None => "encapsulate to a node that is gone".into(),
                }
            }
            Action::Drop(r) => format!("drop: {}", r.name()),
        })
        .collect();
    let drops: Vec<&str> = DropReason::ALL
        .iter()
        .filter(|r| counters.drops[**r as usize].get() > 0)
        .map(|r| r.name())
        .collect();
    let verdict = if outputs.is_empty() {
        match last {
            Action::Drop(r) => format!("drop: {}", r.name()),
            _ => format!("drop: {}", drops.join(", ")),
        }
    } else {
        let mut v = outputs.join("; ");
        if !drops.is_empty() {
            v.push_str(&format!(" (also dropped: {})", drops.join(", ")));
        }
        v
    };
    if obs.steps.is_empty() {
        obs.steps.push(TraceStep {
            table: 0,
            flow: None,
            note: "no flow tables: normal forwarding".into(),
            depth: 0,
        });
    }
    let mut actions = obs.actions;
    actions.append(&mut outputs);
    Ok(TraceRepr {
        steps: obs.steps,
        actions,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use controlplane::flow::{FlowAction, FlowSpec, PortRef};

    #[test]
    fn a_trace_names_the_limit_and_the_drop() {
        let mut t = crate::sample::tables(0);
        let spec = FlowSpec {
            table: 0,
            priority: 1,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            matches: vec![],
            actions: vec![
                FlowAction::Output {
                    port: PortRef::Number(4),
                },
                FlowAction::Resubmit {
                    in_port: None,
                    table: 0,
                },
            ],
        };
        t.flows = Some(std::sync::Arc::new(crate::flow::FlowSet::build(
            1,
            &[(0, spec)],
            &[],
            &|p| match p {
                PortRef::Number(n) => Some(*n),
                PortRef::Name(_) => None,
            },
        )));
        let ms = vec![Match::DlType { value: 0x0800 }];
        let frame = synthesize(&ms, &t, 3);
        let r = run(&t, 3, &ms, frame, &|n| format!("p{n}")).unwrap();
        assert_eq!(r.verdict, "drop: resubmit_depth");
        let last = r.steps.last().unwrap();
        assert!(last.note.contains("limit reached"), "{}", last.note);
        assert!(
            !r.actions.iter().any(|a| a.starts_with("output to port")),
            "nothing is sent: {:?}",
            r.actions
        );
    }
}
