//! `vxbench soak`: a two-node vxswitch lab under mixed traffic and table churn for a long time
//! (10 minutes by default), sampled every few seconds: each vxswitchd's resident memory and
//! open descriptors (from /proc), its drops by reason (from its stats), the throughput of the
//! traffic and the changes applied. Memory and descriptors at the end must stay within 5 % of
//! their values after the warm-up.
//!
//! Traffic, from pod n1p1 to pod n2p1, all at once: iperf3 TCP at a capped bit rate and paced
//! UDP from vxbench's own sender, each in back-to-back runs of `chunk` seconds. Churn, on both
//! nodes' control sockets: batches of unrelated remote nodes added and removed, single flows
//! and bundles of flows added and deleted, and every 30 s a `replace-flows` of a 1,000-flow
//! program. Writes samples.csv, soak.json and chart.svg into the output directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::measure::{self, Ctx};
use super::proc::{self, Background};
use super::{sys, BenchError};
use crate::lab::{Lab, LabSpec};
use controlplane::client::Client;
use controlplane::flow::{FlowMod, FlowSpec};
use controlplane::flow_syntax::parse_flow;
use controlplane::proto::{Change, Ipv4Cidr, MacAddr, Owner, RemoteNode, Request};

/// Growth of memory or descriptors, end against after warm-up, that fails the soak.
pub const MAX_GROWTH_PCT: f64 = 5.0;
const IPERF_PORT: u16 = 5211;
const NODES: [&str; 2] = ["n1", "n2"];

/// What `vxbench soak` does.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub duration: Duration,
    /// Time between samples.
    pub interval: Duration,
    /// Samples before this are the warm-up; the first one after it is the baseline.
    pub warmup: Duration,
    /// Length of each traffic run.
    pub chunk: Duration,
    /// Paced UDP datagrams/s.
    pub udp_rate: u64,
    /// UDP payload bytes.
    pub udp_size: usize,
    /// iperf3 `-b` (bits/s; 0: unlimited).
    pub tcp_bitrate: String,
    /// Control requests per second on each node.
    pub churn_rate: u64,
    pub lab: String,
    pub out: PathBuf,
    pub command: String,
}

/// One sample.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub at_s: f64,
    /// Per node: resident memory (kB), open descriptors, drops by reason (cumulative).
    pub rss_kb: Vec<u64>,
    pub fds: Vec<u64>,
    pub drops: Vec<BTreeMap<String, u64>>,
    /// Throughput of the traffic runs that ended in the last interval (None: none ended).
    pub tcp_mbps: Option<f64>,
    pub udp_rx_pps: Option<f64>,
    pub udp_loss_pct: Option<f64>,
    /// Table changes acknowledged so far.
    pub changes: u64,
}

/// How a soak ended.
pub struct SoakOutcome {
    pub samples: Vec<Sample>,
    /// Per node: (name, RSS after warm-up, at the end, fds after warm-up, at the end), each the
    /// mean over a window.
    pub growth: Vec<(String, u64, u64, u64, u64)>,
    pub passed: bool,
    pub report: String,
}

fn pct(from: u64, to: u64) -> f64 {
    if from == 0 {
        return 0.0;
    }
    (to as f64 - from as f64) * 100.0 / from as f64
}

/// VmRSS of a process, in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Open descriptors of a process.
pub fn open_fds(pid: u32) -> Option<u64> {
    Some(
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()?
            .filter(|e| e.is_ok())
            .count() as u64,
    )
}

/// A 1,000-flow program that leaves pod traffic to `normal`.
fn program(variant: u16) -> Vec<FlowSpec> {
    let mut flows: Vec<FlowSpec> = (0..999)
        .filter_map(|i| {
            parse_flow(&format!(
                "table=0,priority=100,udp,nw_dst=10.9.{}.{},tp_dst={},actions=drop",
                i / 250,
                i % 250 + 1,
                1000 + variant
            ))
            .ok()
        })
        .collect();
    flows.extend(parse_flow("table=0,priority=0,actions=normal").ok());
    flows
}

fn churn_flow(node: usize, n: u32) -> Option<FlowSpec> {
    parse_flow(&format!(
        "table=0,priority=200,udp,nw_src=10.8.{node}.{},tp_src={},actions=drop",
        n % 250 + 1,
        n % 60_000 + 1
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

/// One step of churn on a node's control socket; returns the changes it made.
fn churn_step(c: &mut Client, node: usize, step: u32) -> Result<u64, String> {
    let err = |e: controlplane::Error| e.to_string();
    let names: Vec<String> = (0..4).map(|j| format!("soak{node}-{j}")).collect();
    Ok(match step % 4 {
        0 => {
            let changes = names
                .iter()
                .enumerate()
                .map(|(j, name)| {
                    Change::AddNode(RemoteNode {
                        name: name.clone(),
                        vtep: Ipv4Addr::new(203, 0, 113, (10 + node * 4 + j) as u8).into(),
                        vtep_mac: MacAddr([0x02, 0xcc, node as u8, j as u8, step as u8, 1]),
                        subnet: Ipv4Cidr::new(
                            Ipv4Addr::new(10, 1, (100 + node * 4 + j) as u8, 0),
                            24,
                        )
                        .expect("a /24"),
                        subnet6: None,
                    })
                })
                .collect();
            c.apply(Owner::Admin, None, changes).map_err(err)?;
            4
        }
        2 => {
            let changes = names
                .into_iter()
                .map(|name| Change::DelNode { name })
                .collect();
            c.apply(Owner::Admin, None, changes).map_err(err)?;
            4
        }
        _ => {
            let fs: Vec<FlowSpec> = (0..8)
                .filter_map(|j| churn_flow(node, step * 8 + j))
                .collect();
            let adds = fs
                .iter()
                .map(|f| FlowMod::Add {
                    flow: f.clone(),
                    reset_counts: false,
                })
                .collect();
            c.call(&Request::FlowMods { mods: adds }).map_err(err)?;
            let dels = fs.iter().map(delete_strict).collect();
            c.call(&Request::FlowMods { mods: dels }).map_err(err)?;
            16
        }
    })
}

/// Distinct flows sent each way in the warm-up (see [`open_source_ports`]).
const FILL_FLOWS: u16 = 4096;

/// Sends one small datagram to each of [`FILL_FLOWS`] destination ports of `to` from pod
/// namespace `ns`. Each is a flow of its own, and vxswitchd opens its outer source-port
/// sockets lazily, one per hashed port as flows need them, up to workers × --src-ports
/// (256): 4,096 flows open every one of them (a port missed has odds below 1 in 10,000),
/// so descriptors that grow after the warm-up are not these.
#[allow(unsafe_code)]
fn open_source_ports(ns: &str, to: Ipv4Addr) -> Result<(), BenchError> {
    let path = Path::new("/run/netns").join(ns);
    let ns = ns.to_string();
    std::thread::spawn(move || -> Result<(), String> {
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: `file` is an open network-namespace file; setns changes this thread's
        // namespace only, and the thread ends when this closure returns.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
        }
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
        for i in 0..FILL_FLOWS {
            // ENOBUFS or an ICMP error from the last one may fail a send: that is fine.
            let _ = sock.send_to(b"vxbench soak", (to, 20_000 + i));
            if i % 256 == 255 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    })
    .join()
    .map_err(|_| BenchError::Bad("source-port warm-up panicked".into()))?
    .map_err(BenchError::Bad)
}

/// iperf3 TCP for `secs` seconds at the capped bit rate: received Mb/s.
fn tcp_chunk(ctx: &Ctx, opts: &SoakOptions) -> Result<f64, BenchError> {
    let ip = ctx.server_ip.to_string();
    let port = IPERF_PORT.to_string();
    let mut server = proc::in_netns(&ctx.server_ns, "iperf3");
    server.args(["-s", "-1", "-B", &ip, "-p", &port]);
    let mut server = Background::spawn(&mut server)?;
    proc::wait_listening(&ctx.server_ns, IPERF_PORT, Duration::from_secs(5))?;
    let secs = opts.chunk.as_secs().max(1).to_string();
    let mut client = proc::in_netns(&ctx.client_ns, "iperf3");
    client.args([
        "-c",
        &ip,
        "-p",
        &port,
        "-t",
        &secs,
        "-b",
        &opts.tcp_bitrate,
        "-J",
        "--connect-timeout",
        "3000",
    ]);
    let line = proc::cmdline(&client);
    let out = proc::run(&mut client, opts.chunk + Duration::from_secs(15))?;
    let _ = server.finish(Duration::from_secs(3));
    let r = measure::parse_iperf(&out.stdout).map_err(|e| BenchError::Command {
        cmdline: line.clone(),
        reason: e,
    })?;
    Ok(r.bits_per_second / 1e6)
}

/// Runs the soak. Fails only if it could not run; `passed` says whether memory and
/// descriptors stayed within [`MAX_GROWTH_PCT`].
pub fn run(opts: &SoakOptions) -> Result<SoakOutcome, BenchError> {
    if !crate::lab::is_root() {
        return Err(BenchError::Bad(
            "vxbench soak needs root (network namespaces)".into(),
        ));
    }
    std::fs::create_dir_all(&opts.out).map_err(|source| BenchError::Io {
        what: "cannot create the output directory",
        path: opts.out.clone(),
        source,
    })?;
    sys::install_interrupt_handler().map_err(|source| BenchError::Io {
        what: "cannot install the Ctrl-C handler",
        path: PathBuf::from("-"),
        source,
    })?;
    let exe = std::env::current_exe().map_err(|source| BenchError::Io {
        what: "cannot find this program",
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let spec = LabSpec {
        name: opts.lab.clone(),
        nodes: 2,
        pods: 1,
        ipv6: false,
        ..LabSpec::default()
    };
    let lab = Lab::up(&spec)?;
    let _down = Down(opts.lab.clone());
    let (Some(client), Some(server)) = (lab.pod("n1p1"), lab.pod("n2p1")) else {
        return Err(BenchError::Bad("the lab has no pods n1p1 and n2p1".into()));
    };
    let ctx = Ctx {
        lab: &lab,
        client_ns: client.netns.clone(),
        server_ns: server.netns.clone(),
        server_ip: server.ip,
        exe,
        duration: opts.chunk,
        udp_duration: opts.chunk,
        udp_rate: Some(opts.udp_rate),
        udp_senders: 1,
        udp_trial: opts.chunk,
        udp_search: Default::default(),
        pings: 10,
        rr_count: 100,
    };
    measure::warmup(&ctx)?;
    open_source_ports(&client.netns, server.ip)?;
    open_source_ports(&server.netns, client.ip)?;
    let pids: Vec<u32> = NODES
        .iter()
        .map(|n| {
            lab.switch_pid(n)
                .ok_or_else(|| BenchError::Bad(format!("no vxswitchd on {n}")))
        })
        .collect::<Result<_, _>>()?;
    let mut ctls: Vec<Client> = NODES.iter().map(|n| lab.ctl(n)).collect::<Result<_, _>>()?;
    eprintln!(
        "vxbench soak: {} s, a sample every {} s, warm-up {} s; lab {}; output in {}",
        opts.duration.as_secs(),
        opts.interval.as_secs(),
        opts.warmup.as_secs(),
        opts.lab,
        opts.out.display()
    );

    let t0 = Instant::now();
    let end = t0 + opts.duration;
    let stop = AtomicBool::new(false);
    let changes = AtomicU64::new(0);
    let tcp: Mutex<Vec<f64>> = Mutex::new(Vec::new());
    let udp: Mutex<Vec<(f64, f64)>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut samples: Vec<Sample> = Vec::new();
    let running = || !stop.load(Ordering::Relaxed) && !sys::interrupted();
    let note = |e: String| {
        eprintln!("vxbench soak: {e}");
        errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            while running() && Instant::now() + opts.chunk <= end {
                match tcp_chunk(&ctx, opts) {
                    Ok(m) => tcp.lock().unwrap_or_else(|p| p.into_inner()).push(m),
                    Err(e) => note(format!("tcp: {e}")),
                }
            }
        });
        s.spawn(|| {
            while running() && Instant::now() + opts.chunk <= end {
                match measure::udp(&ctx, opts.udp_size) {
                    Ok(m) => {
                        let k = |x: &str| {
                            m.get(&format!("udp{}_{x}", opts.udp_size))
                                .copied()
                                .unwrap_or(0.0)
                        };
                        udp.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((k("rx_pps"), k("loss_pct")));
                    }
                    Err(e) => note(format!("udp: {e}")),
                }
            }
        });
        for (i, node) in NODES.iter().enumerate() {
            let (lab, changes, running, note) = (&lab, &changes, &running, &note);
            s.spawn(move || {
                let mut c = match lab.ctl(node) {
                    Ok(c) => c,
                    Err(e) => return note(format!("churn on {node}: {e}")),
                };
                let period = Duration::from_secs_f64(1.0 / opts.churn_rate.max(1) as f64);
                let mut step = 0u32;
                let mut next_replace = Instant::now();
                let mut replaced = 0u32;
                while running() && Instant::now() < end {
                    let r = if Instant::now() >= next_replace {
                        next_replace += Duration::from_secs(30);
                        let flows = program((replaced % 2) as u16);
                        replaced += 1;
                        c.call(&Request::FlowMods {
                            mods: vec![FlowMod::Replace { flows }],
                        })
                        .map(|_| 1)
                        .map_err(|e| e.to_string())
                    } else {
                        step += 1;
                        churn_step(&mut c, i, step - 1)
                    };
                    match r {
                        Ok(n) => {
                            changes.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => note(format!("churn on {node}: {e}")),
                    }
                    std::thread::sleep(period);
                }
            });
        }
        // The sampler.
        let mut next = t0;
        while running() && Instant::now() < end {
            let now = Instant::now();
            if now < next {
                std::thread::sleep((next - now).min(Duration::from_millis(200)));
                continue;
            }
            next += opts.interval;
            let mut sample = Sample {
                at_s: t0.elapsed().as_secs_f64(),
                changes: changes.load(Ordering::Relaxed),
                ..Default::default()
            };
            for (i, &pid) in pids.iter().enumerate() {
                sample.rss_kb.push(rss_kb(pid).unwrap_or(0));
                sample.fds.push(open_fds(pid).unwrap_or(0));
                let drops = match ctls[i].stats() {
                    Ok(st) => st.drops.into_iter().map(|d| (d.name, d.value)).collect(),
                    Err(e) => {
                        note(format!("stats of {}: {e}", NODES[i]));
                        BTreeMap::new()
                    }
                };
                sample.drops.push(drops);
            }
            let t: Vec<f64> = std::mem::take(&mut *tcp.lock().unwrap_or_else(|p| p.into_inner()));
            let u: Vec<(f64, f64)> =
                std::mem::take(&mut *udp.lock().unwrap_or_else(|p| p.into_inner()));
            sample.tcp_mbps = (!t.is_empty()).then(|| t.iter().sum::<f64>() / t.len() as f64);
            sample.udp_rx_pps =
                (!u.is_empty()).then(|| u.iter().map(|x| x.0).sum::<f64>() / u.len() as f64);
            sample.udp_loss_pct =
                (!u.is_empty()).then(|| u.iter().map(|x| x.1).sum::<f64>() / u.len() as f64);
            eprintln!(
                "{:>6.0} s  rss {:?} kB  fds {:?}  drops {:?}  tcp {}  udp {}  changes {}",
                sample.at_s,
                sample.rss_kb,
                sample.fds,
                sample
                    .drops
                    .iter()
                    .map(|d| d.values().sum::<u64>())
                    .collect::<Vec<_>>(),
                sample
                    .tcp_mbps
                    .map_or("-".into(), |m| format!("{m:.0} Mb/s")),
                sample
                    .udp_rx_pps
                    .map_or("-".into(), |p| format!("{p:.0} pkt/s")),
                sample.changes
            );
            samples.push(sample);
        }
        stop.store(true, Ordering::Relaxed);
    });
    if sys::interrupted() {
        return Err(BenchError::Interrupted);
    }
    // One last sample once the traffic and churn have stopped.
    let mut last = Sample {
        at_s: t0.elapsed().as_secs_f64(),
        changes: changes.load(Ordering::Relaxed),
        ..Default::default()
    };
    for (i, &pid) in pids.iter().enumerate() {
        last.rss_kb.push(rss_kb(pid).unwrap_or(0));
        last.fds.push(open_fds(pid).unwrap_or(0));
        last.drops.push(
            ctls[i]
                .stats()
                .map(|st| st.drops.into_iter().map(|d| (d.name, d.value)).collect())
                .unwrap_or_default(),
        );
    }
    samples.push(last);

    // Memory moves by a few per cent with every replace-flows (classifiers built and freed):
    // compare means over a window rather than two single samples. The window after the
    // warm-up and the one at the end each last a third of the rest of the run, at most 60 s.
    let warm = opts.warmup.as_secs_f64();
    let last_at = samples.last().map_or(0.0, |s| s.at_s);
    let window = ((last_at - warm) / 3.0).min(60.0);
    let base: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_s >= warm && s.at_s < warm + window)
        .collect();
    let tail: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_s > last_at - window)
        .collect();
    if base.is_empty() || tail.is_empty() {
        return Err(BenchError::Bad(
            "too few samples after the warm-up: lengthen --duration or shorten --interval".into(),
        ));
    }
    let mean_of = |set: &[&Sample], f: &dyn Fn(&Sample) -> u64| -> u64 {
        set.iter().map(|s| f(s)).sum::<u64>() / set.len() as u64
    };
    let fin = samples.last().cloned().unwrap_or_default();
    let mut passed = true;
    let mut report = String::new();
    let mut growth = Vec::new();
    for (i, node) in NODES.iter().enumerate() {
        let rss = |s: &Sample| s.rss_kb.get(i).copied().unwrap_or(0);
        let fds = |s: &Sample| s.fds.get(i).copied().unwrap_or(0);
        let (r0, r1) = (mean_of(&base, &rss), mean_of(&tail, &rss));
        let (f0, f1) = (mean_of(&base, &fds), mean_of(&tail, &fds));
        let ok = pct(r0, r1) <= MAX_GROWTH_PCT && pct(f0, f1) <= MAX_GROWTH_PCT;
        passed &= ok;
        let _ = writeln!(
            report,
            "{node}: RSS {r0} kB after warm-up (mean of {:.0}-{:.0} s), {r1} kB at the end (mean of {:.0}-{:.0} s): {:+.1} %; fds {f0} -> {f1} ({:+.1} %); RSS range over the run after warm-up {}-{} kB{}",
            warm,
            warm + window,
            last_at - window,
            last_at,
            pct(r0, r1),
            pct(f0, f1),
            samples.iter().filter(|s| s.at_s >= warm).map(rss).min().unwrap_or(0),
            samples.iter().filter(|s| s.at_s >= warm).map(rss).max().unwrap_or(0),
            if ok { "" } else { "  GREW MORE THAN 5 %" }
        );
        growth.push((node.to_string(), r0, r1, f0, f1));
    }
    let tcps: Vec<f64> = samples.iter().filter_map(|s| s.tcp_mbps).collect();
    let udps: Vec<f64> = samples.iter().filter_map(|s| s.udp_rx_pps).collect();
    let losses: Vec<f64> = samples.iter().filter_map(|s| s.udp_loss_pct).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let errs = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(
        report,
        "traffic: TCP {:.0} Mb/s mean (capped at {}), UDP {:.0} pkt/s received mean, {:.3} % loss mean; {} table changes ({:.0}/s); {} errors",
        mean(&tcps),
        opts.tcp_bitrate,
        mean(&udps),
        mean(&losses),
        fin.changes,
        fin.changes as f64 / fin.at_s.max(1.0),
        errs.len()
    );
    for (i, node) in NODES.iter().enumerate() {
        let grown: Vec<String> = fin.drops[i]
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            report,
            "{node} drops: {}",
            if grown.is_empty() {
                "none".to_string()
            } else {
                grown.join(", ")
            }
        );
    }
    let _ = writeln!(
        report,
        "verdict: {}",
        if passed {
            "memory and descriptors within 5 %"
        } else {
            "FAILED: memory or descriptors grew more than 5 %"
        }
    );
    write_outputs(opts, &samples, &report, &errs, passed)?;
    Ok(SoakOutcome {
        samples,
        growth,
        passed,
        report,
    })
}

/// Tears the lab down when dropped.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = Lab::teardown(&self.0) {
            eprintln!("vxbench soak: {e}");
        }
    }
}

fn reasons(samples: &[Sample]) -> Vec<String> {
    let mut r: Vec<String> = samples
        .iter()
        .flat_map(|s| s.drops.iter().flat_map(|d| d.keys().cloned()))
        .collect();
    r.sort();
    r.dedup();
    r
}

fn csv(samples: &[Sample]) -> String {
    let reasons = reasons(samples);
    let mut s = String::from("at_s,changes,tcp_mbps,udp_rx_pps,udp_loss_pct");
    for n in NODES {
        let _ = write!(s, ",{n}_rss_kb,{n}_fds");
        for r in &reasons {
            let _ = write!(s, ",{n}_drop_{r}");
        }
    }
    s.push('\n');
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
    for x in samples {
        let _ = write!(
            s,
            "{:.1},{},{},{},{}",
            x.at_s,
            x.changes,
            opt(x.tcp_mbps),
            opt(x.udp_rx_pps),
            opt(x.udp_loss_pct)
        );
        for i in 0..NODES.len() {
            let _ = write!(
                s,
                ",{},{}",
                x.rss_kb.get(i).copied().unwrap_or(0),
                x.fds.get(i).copied().unwrap_or(0)
            );
            for r in &reasons {
                let v = x.drops.get(i).and_then(|d| d.get(r)).copied().unwrap_or(0);
                let _ = write!(s, ",{v}");
            }
        }
        s.push('\n');
    }
    s
}

fn write_outputs(
    opts: &SoakOptions,
    samples: &[Sample],
    report: &str,
    errors: &[String],
    passed: bool,
) -> Result<(), BenchError> {
    let json_samples: Vec<Value> = samples
        .iter()
        .map(|x| {
            json!({
                "at_s": x.at_s,
                "changes": x.changes,
                "tcp_mbps": x.tcp_mbps,
                "udp_rx_pps": x.udp_rx_pps,
                "udp_loss_pct": x.udp_loss_pct,
                "rss_kb": x.rss_kb,
                "fds": x.fds,
                "drops": x.drops,
            })
        })
        .collect();
    let doc = json!({
        "command": opts.command,
        "started": super::timestamp(SystemTime::now() - Duration::from_secs_f64(samples.last().map_or(0.0, |s| s.at_s))),
        "hostname": super::hostname(),
        "duration_s": opts.duration.as_secs_f64(),
        "interval_s": opts.interval.as_secs_f64(),
        "warmup_s": opts.warmup.as_secs_f64(),
        "udp_rate": opts.udp_rate,
        "udp_size": opts.udp_size,
        "tcp_bitrate": opts.tcp_bitrate,
        "churn_rate_per_node": opts.churn_rate,
        "max_growth_pct": MAX_GROWTH_PCT,
        "passed": passed,
        "report": report.lines().collect::<Vec<_>>(),
        "errors": errors,
        "samples": json_samples,
    });
    super::write_json(&opts.out.join("soak.json"), &doc)?;
    super::write_text(&opts.out.join("samples.csv"), &csv(samples))?;
    super::write_text(&opts.out.join("chart.svg"), &chart(opts, samples))?;
    Ok(())
}

const W: f64 = 1000.0;
const PANEL_H: f64 = 150.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 160.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];

/// Line charts over time: RSS, descriptors, throughput, drops, one panel each.
fn chart(opts: &SoakOptions, samples: &[Sample]) -> String {
    type Series = (String, Vec<(f64, f64)>);
    let per_node = |f: &dyn Fn(&Sample, usize) -> Option<f64>| -> Vec<Series> {
        NODES
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    format!("{n} vxswitchd"),
                    samples
                        .iter()
                        .filter_map(|s| f(s, i).map(|v| (s.at_s, v)))
                        .collect(),
                )
            })
            .collect()
    };
    let panels: Vec<(&str, Vec<Series>)> = vec![
        (
            "resident memory (MB)",
            per_node(&|s, i| s.rss_kb.get(i).map(|v| *v as f64 / 1024.0)),
        ),
        (
            "open descriptors",
            per_node(&|s, i| s.fds.get(i).map(|v| *v as f64)),
        ),
        (
            "throughput",
            vec![
                (
                    "TCP Mb/s".into(),
                    samples
                        .iter()
                        .filter_map(|s| s.tcp_mbps.map(|v| (s.at_s, v)))
                        .collect(),
                ),
                (
                    "UDP pkt/s".into(),
                    samples
                        .iter()
                        .filter_map(|s| s.udp_rx_pps.map(|v| (s.at_s, v)))
                        .collect(),
                ),
            ],
        ),
        (
            "drops, all reasons (cumulative)",
            per_node(&|s, i| s.drops.get(i).map(|d| d.values().sum::<u64>() as f64)),
        ),
    ];
    let top = 70.0;
    let h = top + panels.len() as f64 * (PANEL_H + 40.0) + 20.0;
    let xmax = samples.last().map_or(1.0, |s| s.at_s).max(1.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="20" y="24" font-size="16">vxbench soak: {} s, two vxswitch nodes, TCP + UDP + table churn</text>"#,
        opts.duration.as_secs()
    );
    let _ = writeln!(
        s,
        r##"<text x="20" y="44" fill="#555">{} · {} · warm-up {} s (dashed line)</text>"##,
        esc(&super::hostname()),
        esc(&opts.command),
        opts.warmup.as_secs()
    );
    for (p, (title, series)) in panels.iter().enumerate() {
        let y0 = top + p as f64 * (PANEL_H + 40.0) + 20.0;
        let ymax = series
            .iter()
            .flat_map(|(_, v)| v.iter().map(|x| x.1))
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.1;
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}" font-size="13">{}</text>"#,
            y0 - 6.0,
            esc(title)
        );
        let (x1, x2, y1, y2) = (LEFT, W - RIGHT, y0, y0 + PANEL_H);
        let _ = writeln!(
            s,
            r##"<rect x="{x1}" y="{y1}" width="{}" height="{PANEL_H}" fill="none" stroke="#999"/>"##,
            x2 - x1
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end" fill="#555">{}</text><text x="{}" y="{}" text-anchor="end" fill="#555">0</text>"##,
            x1 - 4.0,
            y1 + 10.0,
            short(ymax),
            x1 - 4.0,
            y2
        );
        let _ = writeln!(
            s,
            r##"<text x="{x2}" y="{}" text-anchor="end" fill="#555">{:.0} s</text>"##,
            y2 + 14.0,
            xmax
        );
        let wx = x1 + (x2 - x1) * opts.warmup.as_secs_f64() / xmax;
        let _ = writeln!(
            s,
            r##"<line x1="{wx:.1}" y1="{y1}" x2="{wx:.1}" y2="{y2}" stroke="#999" stroke-dasharray="4 3"/>"##
        );
        for (k, (name, pts)) in series.iter().enumerate() {
            let c = COLOURS[k % COLOURS.len()];
            let path: Vec<String> = pts
                .iter()
                .map(|(t, v)| {
                    format!(
                        "{:.1},{:.1}",
                        x1 + (x2 - x1) * t / xmax,
                        y2 - (y2 - y1) * v / ymax
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{}"/>"#,
                path.join(" ")
            );
            let last = pts.last().map_or(0.0, |p| p.1);
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" fill="{c}">{} ({})</text>"#,
                x2 + 8.0,
                y1 + 16.0 + 16.0 * k as f64,
                esc(name),
                short(last)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1} M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0} k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Default output directory: results/DATE-soak.
pub fn default_out() -> PathBuf {
    Path::new("results").join(format!("{}-soak", super::date(SystemTime::now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_and_proc_readings() {
        assert_eq!(pct(100, 105), 5.0);
        assert!(pct(100, 106) > MAX_GROWTH_PCT);
        assert_eq!(pct(0, 7), 0.0);
        let me = std::process::id();
        assert!(rss_kb(me).is_some_and(|k| k > 0));
        assert!(open_fds(me).is_some_and(|n| n >= 3));
        assert_eq!(program(0).len(), 1000);
    }

    #[test]
    fn csv_has_a_column_per_reason_and_node() {
        let mut d = BTreeMap::new();
        d.insert("no_route".to_string(), 3);
        let s = Sample {
            at_s: 5.0,
            rss_kb: vec![1000, 1100],
            fds: vec![20, 21],
            drops: vec![d.clone(), d],
            tcp_mbps: Some(100.0),
            ..Default::default()
        };
        let text = csv(std::slice::from_ref(&s));
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "at_s,changes,tcp_mbps,udp_rx_pps,udp_loss_pct,n1_rss_kb,n1_fds,n1_drop_no_route,n2_rss_kb,n2_fds,n2_drop_no_route"
        );
        assert_eq!(lines.next().unwrap(), "5.0,0,100.000,,,1000,20,3,1100,21,3");
        let opts = SoakOptions {
            duration: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            warmup: Duration::from_secs(2),
            chunk: Duration::from_secs(1),
            udp_rate: 1,
            udp_size: 64,
            tcp_bitrate: "1M".into(),
            churn_rate: 1,
            lab: "x".into(),
            out: PathBuf::from("/nonexistent"),
            command: "vxbench soak <test>".into(),
        };
        let svg = chart(&opts, &[s]);
        assert!(svg.starts_with("<svg") && svg.contains("&lt;test&gt;"));
    }
}
