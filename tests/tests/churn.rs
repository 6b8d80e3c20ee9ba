//! Hitless table updates: a numbered UDP stream between pods on two nodes loses nothing and
//! keeps its order while 100,000 table changes go through the control socket of both nodes.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use controlplane::client::Client;
use controlplane::flow::{FlowMod, FlowSpec};
use controlplane::flow_syntax::parse_flow;
use controlplane::proto::{Change, FdbRepr, Ipv4Cidr, MacAddr, Owner, PortSpec, RemoteNode};
use vxswitch_e2e::*;

/// Table changes applied in all (each `Change` of a batch, each flow mod of a bundle, each
/// `replace-flows` counts one).
const CHANGES: u64 = 100_000;
/// Datagrams per second of the stream.
const RATE: u64 = 3_000;
/// Bound on any datagram's delay, sender to receiver (both in this process, one clock). The
/// stream's p99 stays near 13 ms and its worst near 80 ms on an otherwise quiet 2-CPU machine,
/// and reached 300 ms with a CPU-bound benchmark running alongside: the bound is generous so
/// that a busy machine does not fail the test; what it catches is a stall (a publish that
/// waits on something, a worker that stops), while any loss fails the test outright.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// Flows in each `replace-flows` program.
const PROGRAM: usize = 1_000;
/// Pods added and removed (each creates a TAP in a namespace of its own).
const POD_CYCLES: u64 = 40;

const STREAM_PORT: u16 = 5501;

/// A 1,000-flow program that leaves the stream to `normal`: drops for addresses no pod has,
/// `variant` makes each program differ from the last so every replace changes every flow.
fn program(variant: u16) -> Vec<FlowSpec> {
    let mut flows: Vec<FlowSpec> = (0..PROGRAM - 1)
        .map(|i| {
            parse_flow(&format!(
                "table=0,priority=100,udp,nw_dst=10.9.{}.{},tp_dst={},actions=drop",
                i / 250,
                i % 250 + 1,
                1000 + variant
            ))
            .expect("flow")
        })
        .collect();
    flows.push(parse_flow("table=0,priority=0,actions=normal").expect("flow"));
    flows
}

/// A flow for traffic nobody sends: client `id`'s `n`th.
fn drop_flow(id: u32, n: u32) -> FlowSpec {
    parse_flow(&format!(
        "table=0,priority=200,udp,nw_src=10.8.{id}.{},tp_src={},actions=drop",
        n % 250 + 1,
        n % 60_000 + 1
    ))
    .expect("flow")
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

fn flow_mods(c: &mut Client, mods: Vec<FlowMod>) {
    let r = c.call(&controlplane::proto::Request::FlowMods { mods });
    assert!(
        matches!(r, Ok(controlplane::proto::Response::Applied { .. })),
        "flow mods refused: {r:?}"
    );
}

fn apply(c: &mut Client, changes: Vec<Change>) {
    if let Err(e) = c.apply(Owner::Admin, None, changes) {
        panic!("batch refused: {e}");
    }
}

/// The entries of the stream's two pods and the routes, as the switch publishes them.
fn stream_entries(fdb: &FdbRepr, ips: &[Ipv4Addr]) -> String {
    let mut out: Vec<String> = fdb
        .entries
        .iter()
        .filter(|e| e.ip.is_some_and(|ip| ips.contains(&ip)))
        .map(|e| format!("{e:?}"))
        .collect();
    out.extend(fdb.routes.iter().map(|r| format!("{r:?}")));
    out.sort();
    out.join("\n")
}

/// `Udp: RcvbufErrors` of a namespace (datagrams its sockets had no room for).
fn udp_rcvbuf_errors(netns: &str) -> u64 {
    let (ok, out) = run_bounded(
        Command::new("ip").args(["netns", "exec", netns, "cat", "/proc/net/snmp"]),
        Duration::from_secs(5),
    );
    assert!(ok, "{out}");
    let udp: Vec<&str> = out.lines().filter(|l| l.starts_with("Udp: ")).collect();
    let (names, values) = (udp[0].split_whitespace(), udp[1].split_whitespace());
    names
        .zip(values)
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .expect("RcvbufErrors")
}

/// Deletes the extra namespace on drop (also on panic).
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Remote nodes per batch, flows per bundle.
const BATCH: u32 = 10;
const BUNDLE: u32 = 40;

/// One churning client: batches of unrelated remote nodes added and removed, a single flow
/// added and deleted, bundles of flow adds and deletes, and every so often a `replace-flows`
/// of a 1,000-flow program. Returns (changes, requests) it made.
fn churn(mut c: Client, id: u32, budget: u64) -> (u64, u64) {
    let (mut made, mut requests) = (0u64, 0u64);
    let mut round = 0u32;
    while made < budget {
        // Remote nodes nobody routes to: subnets 10.1.1xx.0/24, documentation VTEPs.
        let names: Vec<String> = (0..BATCH).map(|j| format!("churn{id}-{j}")).collect();
        let nodes = (0..BATCH)
            .map(|j| {
                Change::AddNode(RemoteNode {
                    name: names[j as usize].clone(),
                    vtep: Ipv4Addr::new(203, 0, 113, (10 + id * BATCH + j) as u8).into(),
                    vtep_mac: MacAddr([0x02, 0xcc, id as u8, j as u8, round as u8, 1]),
                    subnet: Ipv4Cidr::new(
                        Ipv4Addr::new(10, 1, (100 + id * BATCH + j) as u8, 0),
                        24,
                    )
                    .expect("cidr"),
                    subnet6: None,
                })
            })
            .collect();
        apply(&mut c, nodes);
        // One flow added and deleted.
        let f = drop_flow(id, round);
        flow_mods(
            &mut c,
            vec![FlowMod::Add {
                flow: f.clone(),
                reset_counts: false,
            }],
        );
        flow_mods(&mut c, vec![delete_strict(&f)]);
        // A bundle of adds, then one of deletes.
        let fs: Vec<FlowSpec> = (0..BUNDLE)
            .map(|j| drop_flow(id, round * BUNDLE + j + 1))
            .collect();
        flow_mods(
            &mut c,
            fs.iter()
                .map(|f| FlowMod::Add {
                    flow: f.clone(),
                    reset_counts: false,
                })
                .collect(),
        );
        flow_mods(&mut c, fs.iter().map(delete_strict).collect());
        apply(
            &mut c,
            names
                .into_iter()
                .map(|name| Change::DelNode { name })
                .collect(),
        );
        made += 2 * BATCH as u64 + 2 + 2 * BUNDLE as u64;
        requests += 6;
        if round % 50 == 0 {
            flow_mods(
                &mut c,
                vec![FlowMod::Replace {
                    flows: program((round / 50 % 2) as u16),
                }],
            );
            made += 1;
            requests += 1;
        }
        round += 1;
    }
    (made, requests)
}

#[test]
fn a_stream_loses_nothing_while_100000_table_changes_go_through() {
    let lab = lab(LabSpec {
        name: unique_name("churn"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        ..LabSpec::default()
    });
    let src = lab.pod("n1p1").unwrap().netns.clone();
    let dst = lab.pod("n2p1").unwrap().netns.clone();
    let dst_ip = lab.pod("n2p1").unwrap().ip;
    let src_ip = lab.pod("n1p1").unwrap().ip;
    let to = SocketAddr::from((dst_ip, STREAM_PORT));
    let rx = in_netns(&dst, move || UdpSocket::bind(to)).expect("bind receiver");
    let tx = in_netns(&src, || UdpSocket::bind("0.0.0.0:0")).expect("bind sender");
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // A receive buffer for seconds of the stream: the test's own receiver may be starved of
    // CPU on a busy machine, and what this test judges is the switch, not that thread.
    let rcvbuf: libc::c_int = 16 << 20;
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt(2) on an open socket with a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            rx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&rcvbuf as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    let (ok, out) = ping(&lab, "n1p1", dst_ip, 2, &[]);
    assert!(ok, "the pods reach each other before the churn:\n{out}");

    // Neighbours resolved: a marker datagram (seq u64::MAX) goes through before the stream.
    let mut buf = [0u8; 64];
    let warm = wait_until(Duration::from_secs(10), || {
        tx.send_to(&u64::MAX.to_be_bytes(), to).unwrap();
        matches!(rx.recv(&mut buf), Ok(8))
    });
    assert!(warm, "no marker datagram arrived");
    while rx.recv(&mut buf).is_ok() {}

    let mut c1 = lab.ctl("n1").unwrap();
    let mut c2 = lab.ctl("n2").unwrap();
    let before = (
        stream_entries(&c1.fdb().unwrap(), &[src_ip, dst_ip]),
        stream_entries(&c2.fdb().unwrap(), &[src_ip, dst_ip]),
    );
    let stats_before = c1.stats().unwrap();
    let rcvbuf_errors_before = udp_rcvbuf_errors(&dst);
    let n2_ns = lab.node("n2").unwrap().netns.clone();
    let n2_rcvbuf_errors_before = udp_rcvbuf_errors(&n2_ns);

    // The receiver: arrival order and delay of every datagram.
    let clock = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut got: Vec<(u64, Duration)> = Vec::with_capacity(1 << 20);
            let mut buf = [0u8; 64];
            let mut quiet_since = None;
            loop {
                match rx.recv(&mut buf) {
                    Ok(16) => {
                        let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                        let sent = u64::from_be_bytes(buf[8..16].try_into().unwrap());
                        let delay = clock.elapsed().saturating_sub(Duration::from_nanos(sent));
                        got.push((seq, delay));
                        quiet_since = None;
                    }
                    Ok(_) => {}
                    Err(_) if stop.load(Ordering::Relaxed) => {
                        // Stopped and nothing for a second: everything in flight has come.
                        let q = *quiet_since.get_or_insert_with(Instant::now);
                        if q.elapsed() > Duration::from_secs(1) {
                            return got;
                        }
                    }
                    Err(_) => {}
                }
            }
        })
    };
    // The sender: a fixed rate, paced against the clock, until told to stop.
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = Duration::from_nanos(seq * 1_000_000_000 / RATE);
                let now = start.elapsed();
                if now < due {
                    std::thread::sleep(due - now);
                }
                let mut p = [0u8; 16];
                p[..8].copy_from_slice(&seq.to_be_bytes());
                p[8..].copy_from_slice(&(clock.elapsed().as_nanos() as u64).to_be_bytes());
                tx.send_to(&p, to).expect("send");
                seq += 1;
            }
            seq
        })
    };

    // Pods come and go on both nodes in a namespace of their own, while the others churn.
    let extra: Vec<Netns> = ["n1", "n2"]
        .iter()
        .map(|n| {
            let name = format!("{}-{n}x", lab.name);
            let (ok, out) = run_bounded(
                Command::new("ip").args(["netns", "add", &name]),
                Duration::from_secs(5),
            );
            assert!(ok, "ip netns add {name}: {out}");
            Netns(name)
        })
        .collect();
    let started = Instant::now();
    let mut threads = Vec::new();
    for (i, node) in ["n1", "n2"].iter().enumerate() {
        let mut c = lab.ctl(node).unwrap();
        let ns = extra[i].0.clone();
        threads.push(std::thread::spawn(move || {
            let mut made = (0, 0);
            for j in 0..POD_CYCLES {
                let name = format!("churnpod{j}");
                let spec = PortSpec {
                    name: name.clone(),
                    netns: ns.clone(),
                    mac: MacAddr([0x02, 0xcd, i as u8, 0, j as u8, 1]),
                    ip: Ipv4Addr::new(10, 1, i as u8 + 1, 100 + j as u8),
                    ip6: None,
                    vnid: None,
                    ifname: Some("pod0".into()),
                    mtu: None,
                };
                apply(&mut c, vec![Change::AddPort(spec)]);
                apply(&mut c, vec![Change::DelPort { name }]);
                made.0 += 2;
                made.1 += 2;
            }
            made
        }));
    }
    let clients = 4u32;
    let budget = (CHANGES - 2 * 2 * POD_CYCLES).div_ceil(clients as u64);
    for id in 0..clients {
        let c = lab.ctl(if id % 2 == 0 { "n1" } else { "n2" }).unwrap();
        threads.push(std::thread::spawn(move || churn(c, id, budget)));
    }
    let (made, requests) = threads
        .into_iter()
        .map(|t| t.join().expect("churn thread"))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().expect("sender");
    let got = receiver.join().expect("receiver");

    let mut reordered = 0u64;
    let mut last = None;
    let mut seen = vec![false; sent as usize];
    for &(seq, _) in &got {
        if last.is_some_and(|l| seq <= l) {
            reordered += 1;
        }
        last = Some(seq);
        if let Some(s) = seen.get_mut(seq as usize) {
            *s = true;
        }
    }
    let lost = seen.iter().filter(|s| !**s).count();
    let mut delays: Vec<Duration> = got.iter().map(|g| g.1).collect();
    delays.sort();
    let pct = |p: f64| {
        delays
            .get(((delays.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    let max = delays.last().copied().unwrap_or_default();
    eprintln!(
        "churn: {made} changes in {requests} requests in {:.1} s = {:.0} changes/s, {:.0} requests/s on two nodes; stream {sent} datagrams at {RATE}/s: \
         {lost} lost, {reordered} reordered, delay p50 {:?} p99 {:?} max {:?} (bound {MAX_DELAY:?})",
        took.as_secs_f64(),
        made as f64 / took.as_secs_f64(),
        requests as f64 / took.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        max,
    );

    let rcvbuf_errors = udp_rcvbuf_errors(&dst) - rcvbuf_errors_before;
    eprintln!("  receiving pod: {rcvbuf_errors} datagrams dropped by its own full socket buffer");
    let n2_rcvbuf_errors = udp_rcvbuf_errors(&n2_ns) - n2_rcvbuf_errors_before;
    eprintln!(
        "  receiving node n2: {n2_rcvbuf_errors} datagrams dropped by its full VXLAN socket buffers"
    );
    // Where a loss happened, if one did: the switches' drops by reason, and the sending pod's
    // own count of frames its TAP had no room for (the switch not reading it in time).
    let stats_after = c1.stats().unwrap();
    for d in &stats_after.drops {
        let was = counter(&stats_before, &d.name);
        if d.value > was {
            eprintln!("  n1 drop {}: +{}", d.name, d.value - was);
        }
    }
    let (_, link) = run_bounded(
        Command::new("ip").args(["-n", &src, "-s", "link", "show", "eth0"]),
        Duration::from_secs(5),
    );
    eprintln!("  sending pod's eth0:\n{link}");
    assert!(made >= CHANGES, "only {made} changes were acknowledged");
    assert_eq!(lost, 0, "datagrams lost of {sent}");
    assert_eq!(reordered, 0, "datagrams arrived out of order");
    assert_eq!(got.len() as u64, sent, "duplicates");
    assert!(max <= MAX_DELAY, "a datagram took {max:?}");
    let after = (
        stream_entries(&c1.fdb().unwrap(), &[src_ip, dst_ip]),
        stream_entries(&c2.fdb().unwrap(), &[src_ip, dst_ip]),
    );
    assert_eq!(before, after, "the stream's entries changed");
    drop(extra);
}
