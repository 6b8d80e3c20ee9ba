//! `vxbench updates`: what one table change costs vxswitchd, with many remote nodes and flows
//! present, asked one request at a time through the control socket as an agent would.
//!
//! For each flow count F it brings up a one-node vxswitch lab (no pods), preloads F flows (in
//! bundles of [`FLOW_CHUNK`]), then for each node count N (ascending) adds remote nodes in
//! batches of [`NODE_CHUNK`] until N are present, and measures:
//! - single `add-node` / `del-node` requests, alternating (each request is one change): the
//!   daemon's CPU per change (utime + stime of its control threads from /proc, the packet
//!   workers left out, delta / changes) and the wall time per request;
//! - the sustained rate: changes acknowledged per second over a few seconds, one at a time;
//! - one `add-flow` and one `del-flow` (strict) request with the F flows present (CPU and wall);
//! - resident memory per remote node and per flow (RSS delta / count).
//!
//! Remote nodes get /29 pod subnets in 10.1.2.0–10.1.255.255 and VTEPs in 198.18.0.0/15 (the
//! benchmarking range); no packet is sent to them. Pod entries need TAPs (a port is a TAP in
//! a namespace), so memory is reported per remote node and per flow, not per pod.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::BenchError;
use crate::lab::{Lab, LabSpec};
use controlplane::client::Client;
use controlplane::flow::{FlowMod, FlowSpec};
use controlplane::flow_syntax::parse_flow;
use controlplane::proto::{Change, Ipv4Cidr, MacAddr, Owner, RemoteNode, Request};

/// Remote nodes per preload batch.
pub const NODE_CHUNK: usize = 500;
/// Flows per preload bundle (well under the control socket's message limit).
pub const FLOW_CHUNK: usize = 2_000;

/// What `vxbench updates` measures.
#[derive(Debug, Clone)]
pub struct UpdatesOptions {
    /// Remote node counts, measured in ascending order in one lab.
    pub nodes: Vec<usize>,
    /// Flow counts, one lab each.
    pub flows: Vec<usize>,
    /// Single changes per measurement (fewer if `limit` runs out first).
    pub changes: usize,
    /// Longest a measurement of single changes runs.
    pub limit: Duration,
    /// Length of the sustained-rate run.
    pub sustain: Duration,
    pub lab: String,
}

/// The node with number `i` (0-based).
fn node(i: usize) -> RemoteNode {
    // /29s from 10.1.2.0 on: 8,128 of them.
    let base = u32::from(Ipv4Addr::new(10, 1, 2, 0)) + 8 * i as u32;
    let vtep = u32::from(Ipv4Addr::new(198, 18, 0, 1)) + i as u32;
    RemoteNode {
        name: format!("bench{i}"),
        vtep: Ipv4Addr::from(vtep).into(),
        vtep_mac: MacAddr([0x02, 0xbe, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1]),
        subnet: Ipv4Cidr::new(Ipv4Addr::from(base), 29).expect("a /29"),
        subnet6: None,
    }
}

/// Flow number `i`: a drop rule on a distinct UDP 5-tuple part.
fn flow(i: usize) -> Option<FlowSpec> {
    parse_flow(&format!(
        "table=0,priority=100,udp,nw_src=10.9.{}.{},tp_dst={},actions=drop",
        (i / 250) % 250,
        i % 250 + 1,
        i / 62_500 + 1
    ))
    .ok()
}

fn delete_strict(f: &FlowSpec) -> FlowMod {
    FlowMod::Delete {
        table: Some(f.table),
        priority: Some(f.priority),
        matches: f.matches.clone(),
        strict: true,
        cookie: None,
    }
}

/// utime + stime (clock ticks) from a `stat` line of /proc, and the command name.
fn stat_ticks(stat: &str) -> Option<(&str, u64)> {
    // The command name is in parentheses and may hold spaces: fields follow the last ')'.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // Fields 14 and 15 (1-based) are utime and stime; after the name, index 11 and 12.
    let t = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((&stat[open + 1..close], t))
}

/// Clock ticks of CPU (utime + stime) of a process: (all but its packet workers, all). The
/// whole process's count includes threads that ended; the workers live as long as it.
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let all = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stat_ticks(&s).map(|(_, t)| t))
        .unwrap_or(0);
    let mut workers = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            if let Some((comm, ticks)) = stat_ticks(&stat) {
                if comm.starts_with("vx-worker") {
                    workers += ticks;
                }
            }
        }
    }
    (all.saturating_sub(workers), all)
}

/// /proc reports CPU times in USER_HZ ticks, 100 a second on Linux whatever the kernel's HZ.
fn ticks_per_sec() -> f64 {
    100.0
}

fn rss_kb(pid: u32) -> u64 {
    super::soak::rss_kb(pid).unwrap_or(0)
}

/// CPU and wall time of a run of requests.
struct Cost {
    n: usize,
    cpu_ms: f64,
    cpu_all_ms: f64,
    wall_ms: f64,
}

impl Cost {
    fn json(&self) -> Value {
        let per = |v: f64| if self.n > 0 { v / self.n as f64 } else { 0.0 };
        json!({
            "changes": self.n,
            "cpu_ms_per_change": per(self.cpu_ms),
            "cpu_all_threads_ms_per_change": per(self.cpu_all_ms),
            "wall_ms_per_change": per(self.wall_ms),
        })
    }
}

/// Runs `step(i)` until `max` steps or `limit` passed (at least `min`), and measures it.
fn measure(
    pid: u32,
    max: usize,
    min: usize,
    limit: Duration,
    mut step: impl FnMut(usize) -> Result<(), BenchError>,
) -> Result<Cost, BenchError> {
    let hz = ticks_per_sec();
    let (c0, a0) = cpu_ticks(pid);
    let t0 = Instant::now();
    let mut n = 0;
    while n < max && (n < min || t0.elapsed() < limit) {
        step(n)?;
        n += 1;
    }
    let wall = t0.elapsed();
    let (c1, a1) = cpu_ticks(pid);
    Ok(Cost {
        n,
        cpu_ms: c1.saturating_sub(c0) as f64 * 1000.0 / hz,
        cpu_all_ms: a1.saturating_sub(a0) as f64 * 1000.0 / hz,
        wall_ms: wall.as_secs_f64() * 1000.0,
    })
}

/// Adds and deletes `extra` in turn, one request each, and leaves it deleted.
fn toggle_node(
    c: &mut Client,
    pid: u32,
    extra: &RemoteNode,
    max: usize,
    min: usize,
    limit: Duration,
) -> Result<Cost, BenchError> {
    let del = || Change::DelNode {
        name: extra.name.clone(),
    };
    let cost = measure(pid, max, min, limit, |k| {
        let ch = if k % 2 == 0 {
            Change::AddNode(extra.clone())
        } else {
            del()
        };
        c.apply(Owner::Admin, None, vec![ch])
            .map(|_| ())
            .map_err(bad("a single change"))
    })?;
    if cost.n % 2 == 1 {
        c.apply(Owner::Admin, None, vec![del()])
            .map_err(bad("a single change"))?;
    }
    Ok(cost)
}

fn bad(what: &str) -> impl Fn(controlplane::Error) -> BenchError + '_ {
    move |e| BenchError::Bad(format!("{what}: {e}"))
}

/// Runs the measurements; returns them as JSON (also printed as a table on stderr).
pub fn run(opts: &UpdatesOptions) -> Result<Value, BenchError> {
    let mut nodes = opts.nodes.clone();
    nodes.sort_unstable();
    nodes.dedup();
    let max_nodes = nodes.last().copied().unwrap_or(0);
    if max_nodes + 2 > 8_128 {
        return Err(BenchError::Bad("at most 8,126 remote nodes".into()));
    }
    let mut results = Vec::new();
    for &flows in &opts.flows {
        let spec = LabSpec {
            name: opts.lab.clone(),
            nodes: 1,
            pods: 0,
            ipv6: false,
            ..LabSpec::default()
        };
        let lab = Lab::up(&spec)?;
        let _down = Down(opts.lab.clone());
        let pid = lab
            .switch_pid("n1")
            .ok_or_else(|| BenchError::Bad("no vxswitchd on n1".into()))?;
        let mut c: Client = lab.ctl("n1")?;
        let rss0 = rss_kb(pid);
        // Flows, in bundles.
        let t0 = Instant::now();
        let mut i = 0;
        while i < flows {
            let end = (i + FLOW_CHUNK).min(flows);
            let mods = (i..end)
                .filter_map(flow)
                .map(|flow| FlowMod::Add {
                    flow,
                    reset_counts: false,
                })
                .collect();
            c.call(&Request::FlowMods { mods })
                .map_err(bad("preloading flows"))?;
            i = end;
        }
        let rss_flows = rss_kb(pid);
        eprintln!(
            "vxbench updates: {flows} flows loaded in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let mut present = 0;
        for &n in &nodes {
            let t0 = Instant::now();
            let rss_before = rss_kb(pid);
            let from = present;
            while present < n {
                let end = (present + NODE_CHUNK).min(n);
                let changes = (present..end).map(|i| Change::AddNode(node(i))).collect();
                c.apply(Owner::Admin, None, changes)
                    .map_err(bad("preloading nodes"))?;
                present = end;
            }
            let rss_nodes = rss_kb(pid);
            let preload_s = t0.elapsed().as_secs_f64();
            // One node beyond those present, added and deleted in turn.
            let extra = node(n);
            let singles = toggle_node(&mut c, pid, &extra, opts.changes, 20, opts.limit)?;
            let sustained = toggle_node(&mut c, pid, &extra, usize::MAX, 2, opts.sustain)?;
            // One flow added and deleted in turn.
            let f = flow(flows + 1).ok_or_else(|| BenchError::Bad("a flow".into()))?;
            let mut adds = Vec::new();
            let mut dels = Vec::new();
            for k in 0..2 * opts.changes.min(200) {
                let (mods, into) = if k % 2 == 0 {
                    (
                        vec![FlowMod::Add {
                            flow: f.clone(),
                            reset_counts: false,
                        }],
                        &mut adds,
                    )
                } else {
                    (vec![delete_strict(&f)], &mut dels)
                };
                let cost = measure(pid, 1, 1, Duration::ZERO, |_| {
                    c.call(&Request::FlowMods { mods: mods.clone() })
                        .map(|_| ())
                        .map_err(bad("a flow change"))
                })?;
                into.push(cost);
                if k >= 20 && t0.elapsed() > opts.limit * 4 {
                    break;
                }
            }
            let sum = |v: &[Cost]| Cost {
                n: v.iter().map(|c| c.n).sum(),
                cpu_ms: v.iter().map(|c| c.cpu_ms).sum(),
                cpu_all_ms: v.iter().map(|c| c.cpu_all_ms).sum(),
                wall_ms: v.iter().map(|c| c.wall_ms).sum(),
            };
            let (adds, dels) = (sum(&adds), sum(&dels));
            let added = (n - from).max(1) as f64;
            let r = json!({
                "nodes": n,
                "flows": flows,
                "preload_nodes_s": preload_s,
                "node_change": singles.json(),
                "sustained_changes_per_s": sustained.n as f64 / (sustained.wall_ms / 1000.0),
                "sustained": sustained.json(),
                "add_flow": adds.json(),
                "del_flow": dels.json(),
                "rss_kb": rss_kb(pid),
                "rss_bytes_per_node": (rss_nodes as f64 - rss_before as f64) * 1024.0 / added,
                "rss_bytes_per_flow": if flows > 0 {
                    (rss_flows as f64 - rss0 as f64) * 1024.0 / flows as f64
                } else {
                    0.0
                },
            });
            eprintln!(
                "vxbench updates: N={n} F={flows}: node change {:.3} ms CPU ({:.3} ms all \
                 threads), {:.3} ms wall ({} changes); sustained {:.0}/s; add-flow {:.3} ms CPU \
                 {:.3} ms wall; del-flow {:.3} ms CPU {:.3} ms wall; RSS {:.0} B/node",
                r["node_change"]["cpu_ms_per_change"]
                    .as_f64()
                    .unwrap_or(0.0),
                r["node_change"]["cpu_all_threads_ms_per_change"]
                    .as_f64()
                    .unwrap_or(0.0),
                r["node_change"]["wall_ms_per_change"]
                    .as_f64()
                    .unwrap_or(0.0),
                singles.n,
                r["sustained_changes_per_s"].as_f64().unwrap_or(0.0),
                r["add_flow"]["cpu_ms_per_change"].as_f64().unwrap_or(0.0),
                r["add_flow"]["wall_ms_per_change"].as_f64().unwrap_or(0.0),
                r["del_flow"]["cpu_ms_per_change"].as_f64().unwrap_or(0.0),
                r["del_flow"]["wall_ms_per_change"].as_f64().unwrap_or(0.0),
                r["rss_bytes_per_node"].as_f64().unwrap_or(0.0),
            );
            results.push(r);
        }
        drop(c);
        drop(lab);
    }
    Ok(json!({ "results": results }))
}

/// Tears the lab down when dropped.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = Lab::teardown(&self.0) {
            eprintln!("vxbench updates: {e}");
        }
    }
}
