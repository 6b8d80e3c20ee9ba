//! Crash, restart and shutdown: `kill -9` of vxswitchd during a numbered UDP stream (restarted
//! by vxlab's supervisor with the same command line) costs under a second of traffic and
//! nothing but what was in flight, with the same tables after; a restart of vxagent alone costs
//! nothing; SIGTERM drains, saves and exits 0 leaving the pods' interfaces; SIGHUP reopens the
//! log; the systemd units verify.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use controlplane::client::Client;
use controlplane::proto::{FlowSpec, Request, Response, StateRepr};
use tools::lab::supervise;
use tools::lab::vxswitch::{self, AGENT, SWITCHD};
use vxswitch_e2e::*;

/// Datagrams per second of each stream.
const RATE: u64 = 2_000;
/// Bytes of each datagram: the sequence number and padding.
const SIZE: usize = 64;

fn two_nodes(prefix: &str) -> LabGuard {
    lab(LabSpec {
        name: unique_name(prefix),
        nodes: 2,
        pods: 1,
        ipv6: false,
        ..LabSpec::default()
    })
}

/// On a failed test, copies the lab's logs to the temporary directory before the lab goes.
struct KeepLogs(Vec<std::path::PathBuf>, String);

impl KeepLogs {
    fn new(lab: &Lab) -> KeepLogs {
        KeepLogs(
            lab.nodes().iter().map(|n| n.dir.clone()).collect(),
            lab.name.clone(),
        )
    }
}

impl Drop for KeepLogs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let to = std::env::temp_dir().join(format!("vxswitch-restart-{}", self.1));
        for dir in &self.0 {
            let node = dir.file_name().unwrap_or_default();
            let _ = std::fs::create_dir_all(to.join(node));
            for f in ["vxswitchd.log", "vxagent.log"] {
                let _ = std::fs::copy(dir.join(f), to.join(node).join(f));
            }
        }
        eprintln!("logs kept in {}", to.display());
    }
}

/// A numbered UDP stream at a fixed rate from one pod to another, with the send time of every
/// datagram and the receive time of every one that arrived (both from one clock).
struct Stream {
    stop: Arc<AtomicBool>,
    sender: JoinHandle<Vec<Instant>>,
    receiver: JoinHandle<Vec<(u64, Instant)>>,
}

struct Record {
    sent: Vec<Instant>,
    got: Vec<(u64, Instant)>,
}

impl Stream {
    /// Starts the receiver (bound before the first datagram is sent), then the sender; both
    /// end by themselves after `limit`.
    fn start(
        lab: &Lab,
        from: &str,
        to: &str,
        to_ip: Ipv4Addr,
        port: u16,
        limit: Duration,
    ) -> Stream {
        let from_ns = lab.pod(from).unwrap().netns.clone();
        let to_ns = lab.pod(to).unwrap().netns.clone();
        let from_ip = lab.pod(from).unwrap().ip;
        let rx = in_netns(&to_ns, move || {
            UdpSocket::bind(SocketAddr::from((to_ip, port)))
        })
        .expect("bind the receiver");
        rx.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let tx = in_netns(&from_ns, move || {
            UdpSocket::bind(SocketAddr::from((from_ip, 0)))
        })
        .expect("bind the sender");
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let end = started + limit;
        let receiver = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut got = Vec::with_capacity((RATE * limit.as_secs()) as usize + 1024);
                let mut buf = [0u8; 2048];
                // Datagrams still on their way when the sender stops are waited for.
                let mut quiet_since: Option<Instant> = None;
                while Instant::now() < end + Duration::from_secs(2) {
                    match rx.recv(&mut buf) {
                        Ok(n) if n >= 8 => {
                            let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                            got.push((seq, Instant::now()));
                            quiet_since = None;
                        }
                        Ok(_) => {}
                        Err(_) => {
                            if stop.load(Ordering::Relaxed) {
                                let q = *quiet_since.get_or_insert_with(Instant::now);
                                if q.elapsed() > Duration::from_millis(300) {
                                    break;
                                }
                            }
                        }
                    }
                }
                got
            })
        };
        let sender = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let to = SocketAddr::from((to_ip, port));
                let mut sent = Vec::with_capacity((RATE * limit.as_secs()) as usize + 1024);
                let mut buf = [0u8; SIZE];
                let mut seq: u64 = 0;
                while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                    let due = started + Duration::from_micros(seq * 1_000_000 / RATE);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    buf[..8].copy_from_slice(&seq.to_be_bytes());
                    // A send may fail while the pod has no route to the gateway (its
                    // interface lost carrier): the datagram is lost, as in a real pod.
                    let _ = tx.send_to(&buf, to);
                    sent.push(Instant::now());
                    seq += 1;
                }
                sent
            })
        };
        Stream {
            stop,
            sender,
            receiver,
        }
    }

    fn finish(self) -> Record {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.join().expect("sender");
        let got = self.receiver.join().expect("receiver");
        Record { sent, got }
    }
}

/// One kill: when it happened and when the supervisor's new daemon was seen running.
struct Kill {
    at: Instant,
    restarted: Instant,
}

/// What one kill cost a stream.
#[derive(Debug)]
struct Outage {
    /// From the kill to the arrival of the first datagram sent after the last one lost.
    from_kill: Duration,
    /// From the new daemon's start to that arrival.
    from_restart: Duration,
    /// Datagrams lost around this kill.
    lost: usize,
    /// Datagrams sent from 50 ms before the kill until that first one after the last loss.
    in_gap: usize,
}

/// Per kill: the outage. Every datagram is accounted for: each one sent before the first kill
/// (less 50 ms) arrived, none arrived twice or was never sent, and the datagrams lost after a
/// kill all lie between it (less 50 ms, what was in flight) and the arrival that ends the
/// outage: `from_kill` bounds the loss.
fn outages(name: &str, rec: &Record, kills: &[Kill]) -> Vec<Outage> {
    let mut arrived: Vec<Option<Instant>> = vec![None; rec.sent.len()];
    for &(seq, at) in &rec.got {
        let slot = arrived
            .get_mut(seq as usize)
            .unwrap_or_else(|| panic!("{name}: datagram {seq} was never sent"));
        assert!(slot.is_none(), "{name}: datagram {seq} arrived twice");
        *slot = Some(at);
    }
    let sent_after = |t: Instant| {
        rec.sent
            .iter()
            .position(|&s| s + Duration::from_millis(50) > t)
            .unwrap_or(rec.sent.len())
    };
    // The last 300 ms of the stream may still be on the way when the receiver gives up.
    let tail = rec
        .sent
        .iter()
        .position(|&t| t + Duration::from_millis(300) > *rec.sent.last().unwrap())
        .unwrap_or(rec.sent.len());
    let first = kills.first().map_or(tail, |k| sent_after(k.at)).min(tail);
    let early: Vec<usize> = (0..first).filter(|&i| arrived[i].is_none()).collect();
    assert!(
        early.is_empty(),
        "{name}: {} datagrams lost before any kill, e.g. {:?}",
        early.len(),
        &early[..early.len().min(10)]
    );
    let mut out = Vec::new();
    for (n, k) in kills.iter().enumerate() {
        let from = sent_after(k.at);
        let to = kills
            .get(n + 1)
            .map_or(tail, |next| sent_after(next.at))
            .min(tail);
        let lost: Vec<usize> = (from..to).filter(|&i| arrived[i].is_none()).collect();
        let (resumed, end) = match lost.last() {
            Some(&last) => {
                let i = (last + 1..to)
                    .find(|&i| arrived[i].is_some())
                    .unwrap_or_else(|| panic!("{name}: nothing arrived after kill {}", n + 1));
                (arrived[i].unwrap(), i)
            }
            None => {
                let (i, at) = (from..to)
                    .filter_map(|i| Some((i, arrived[i].filter(|&a| a > k.restarted)?)))
                    .min_by_key(|&(_, at)| at)
                    .unwrap_or_else(|| panic!("{name}: nothing arrived after restart {}", n + 1));
                (at, i)
            }
        };
        out.push(Outage {
            from_kill: resumed.saturating_duration_since(k.at),
            from_restart: resumed.saturating_duration_since(k.restarted),
            lost: lost.len(),
            in_gap: end - from,
        });
    }
    out
}

/// The tables as the protocol reports them, counters and table version aside: the local node,
/// every port (number, name, spec, owner, status), every node, every flow's spec.
fn tables(c: &mut Client) -> (StateRepr, Vec<FlowSpec>) {
    let mut state = c.state().expect("state");
    state.table_version = 0;
    let flows = match c
        .call(&Request::DumpFlows {
            table: None,
            matches: Vec::new(),
        })
        .expect("dump-flows")
    {
        Response::Flows { flows, .. } => flows.into_iter().map(|f| f.spec).collect(),
        other => panic!("dump-flows: {other:?}"),
    };
    (state, flows)
}

fn connect(lab: &Lab, node: &str) -> Client {
    let socket = lab.socket(node).unwrap().to_path_buf();
    let mut last = None;
    for _ in 0..100 {
        match Client::connect(&socket, "restart-test") {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("cannot connect to {}: {last:?}", socket.display());
}

/// The PID in a supervisor's PID file once it names a living process other than `not`.
fn new_pid(pidfile: &Path, not: Option<u32>, limit: Duration) -> Option<u32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(p) = supervise::read_pidfile(pidfile).filter(|&p| Some(p) != not) {
            if Path::new(&format!("/proc/{p}")).exists() {
                return Some(p);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

fn kill(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill(1)")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

fn count_in(file: &Path, needle: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// `kill -9` of one node's vxswitchd, eight times, during a 2,000/s stream each way between
/// pods on two nodes; vxlab's supervisor starts it again with the same command line. Each
/// time: the tables are back the same (before the agent says anything), both streams resume
/// within a second of the restart (the new daemon's start; the killed one may take a while
/// to exit, its TAP queues torn down by the kernel), nothing is lost but what was sent in the gap, and the agent's
/// reconnect changes nothing (the table version stays where the restore put it).
#[test]
fn kill_9_of_vxswitchd_during_a_stream_recovers_within_a_second_with_the_same_tables() {
    const KILLS: usize = 8;
    let lab = two_nodes("k9");
    let _keep = KeepLogs::new(&lab);
    let dir = lab.node("n1").unwrap().dir.clone();
    let pidfile = supervise::pidfile(&dir, SWITCHD);
    let agent_log = vxswitch::agent_log(&dir);
    let mut ctl = connect(&lab, "n1");
    let before = tables(&mut ctl);
    drop(ctl);
    let announced_before = counter(
        &lab.ctl("n1").unwrap().stats().unwrap(),
        "gateway_announced",
    );
    let connects_before = count_in(&agent_log, "connected to");

    let limit = Duration::from_secs(3 + 3 * KILLS as u64);
    let out = Stream::start(
        &lab,
        "n1p1",
        "n2p1",
        Ipv4Addr::new(10, 1, 2, 2),
        7001,
        limit,
    );
    let back = Stream::start(
        &lab,
        "n2p1",
        "n1p1",
        Ipv4Addr::new(10, 1, 1, 2),
        7002,
        limit,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let mut kills = Vec::new();
    for k in 0..KILLS {
        let old = supervise::read_pidfile(&pidfile).expect("vxswitchd's pid");
        let at = Instant::now();
        kill(old, "-KILL");
        let pid = new_pid(&pidfile, Some(old), Duration::from_secs(10))
            .unwrap_or_else(|| panic!("kill {}: no new vxswitchd", k + 1));
        let restarted = Instant::now();
        kills.push(Kill { at, restarted });
        // The restored tables, before the agent has pushed anything.
        let mut ctl = connect(&lab, "n1");
        let restored_version = ctl.state().unwrap().table_version;
        assert_eq!(
            tables(&mut ctl),
            before,
            "kill {}: the restarted switch (pid {pid}) has the tables it had",
            k + 1
        );
        // The agent reconnects and finds nothing to change: no flush, no refill.
        assert!(
            wait_until(Duration::from_secs(10), || count_in(
                &agent_log,
                "connected to"
            ) > connects_before + k),
            "kill {}: the agent reconnected",
            k + 1
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            ctl.state().unwrap().table_version,
            restored_version,
            "kill {}: the agent's reconnect changed nothing",
            k + 1
        );
        let next = at + Duration::from_millis(2500);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let out = out.finish();
    let back = back.finish();
    let announced = counter(
        &lab.ctl("n1").unwrap().stats().unwrap(),
        "gateway_announced",
    );

    let mut worst = Duration::ZERO;
    let mut worst_restart = Duration::ZERO;
    let mut failures = Vec::new();
    for (name, rec) in [("n1p1 -> n2p1", &out), ("n2p1 -> n1p1", &back)] {
        let o = outages(name, rec, &kills);
        for (i, o) in o.iter().enumerate() {
            eprintln!(
                "{name} kill {}: resumed {:.0} ms after the kill ({:.0} ms after the restart), \
                 lost {} of the {} sent in the gap",
                i + 1,
                o.from_kill.as_secs_f64() * 1e3,
                o.from_restart.as_secs_f64() * 1e3,
                o.lost,
                o.in_gap
            );
            worst = worst.max(o.from_kill);
            worst_restart = worst_restart.max(o.from_restart);
        }
        let slow: Vec<String> = o
            .iter()
            .enumerate()
            .filter(|(_, o)| o.from_restart >= Duration::from_secs(1))
            .map(|(i, o)| format!("kill {}: {:?} after the restart", i + 1, o.from_restart))
            .collect();
        if !slow.is_empty() {
            failures.push(format!("{name}: {slow:?}"));
        }
        eprintln!(
            "{name}: {} sent, {} received",
            rec.sent.len(),
            rec.got.len()
        );
    }
    eprintln!(
        "worst recovery over {KILLS} kills: {:.0} ms from the restart, {:.0} ms from the kill",
        worst_restart.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    assert!(
        failures.is_empty(),
        "traffic resumed a second or more after these kills: {failures:?}"
    );
    assert!(
        announced >= 2,
        "the last restart announced the gateway to the pod ({announced_before} before the kills)"
    );
}

/// vxagent killed three times during a stream (its supervisor restarts it): not one datagram
/// lost, and every reconnect leaves the tables as they were (table version unchanged: the
/// agent reads the state and pushes only differences, none here).
#[test]
fn restarting_vxagent_alone_loses_nothing_and_changes_no_table() {
    let lab = two_nodes("agr");
    let _keep = KeepLogs::new(&lab);
    let dir = lab.node("n1").unwrap().dir.clone();
    let pidfile = supervise::pidfile(&dir, AGENT);
    let agent_log = vxswitch::agent_log(&dir);
    let mut ctl = connect(&lab, "n1");
    let version = ctl.state().unwrap().table_version;
    let before = tables(&mut ctl);
    let connects = count_in(&agent_log, "connected to");
    let stream = Stream::start(
        &lab,
        "n1p1",
        "n2p1",
        Ipv4Addr::new(10, 1, 2, 2),
        7003,
        Duration::from_secs(8),
    );
    std::thread::sleep(Duration::from_millis(1000));
    for k in 0..3 {
        let old = supervise::read_pidfile(&pidfile).expect("vxagent's pid");
        kill(old, "-KILL");
        new_pid(&pidfile, Some(old), Duration::from_secs(10)).expect("a new vxagent");
        assert!(
            wait_until(Duration::from_secs(10), || count_in(
                &agent_log,
                "connected to"
            ) > connects + k),
            "the agent reconnected after kill {}",
            k + 1
        );
        std::thread::sleep(Duration::from_millis(1000));
    }
    let rec = stream.finish();
    assert_eq!(outages("n1p1 -> n2p1", &rec, &[]).len(), 0);
    assert!(rec.got.len() > 6_000, "{} datagrams arrived", rec.got.len());
    assert_eq!(
        ctl.state().unwrap().table_version,
        version,
        "no reconnect changed the tables"
    );
    assert_eq!(tables(&mut ctl), before);
}

fn ifindex(netns: &str) -> String {
    let (ok, out) = run_bounded(
        Command::new("ip").args(["-n", netns, "-o", "link", "show", "dev", "eth0"]),
        Duration::from_secs(5),
    );
    assert!(ok, "{out}");
    out.split(':').next().unwrap_or_default().trim().to_string()
}

/// SIGTERM during a stream: vxswitchd exits 0 (its supervisor logs the status) soon, having
/// written the state file (deleted just before, so it is the shutdown that wrote it) with the
/// ports and nodes it had; the pod's TAP is the same device after (same ifindex); and once the
/// supervisor has started it again, the pods talk. Then `vxlab down` stops the supervisor for
/// good.
#[test]
fn sigterm_drains_saves_the_state_exits_0_and_leaves_the_pods_interfaces() {
    let lab = two_nodes("term");
    let _keep = KeepLogs::new(&lab);
    let name = lab.name.clone();
    let dir = lab.node("n1").unwrap().dir.clone();
    let pod_ns = lab.pod("n1p1").unwrap().netns.clone();
    let pidfile = supervise::pidfile(&dir, SWITCHD);
    let log = vxswitch::switch_log(&dir);
    let state_file = vxswitch::state_path(&dir);
    let mut ctl = connect(&lab, "n1");
    let state = ctl.state().unwrap();
    drop(ctl);
    let index = ifindex(&pod_ns);
    let stream = Stream::start(
        &lab,
        "n1p1",
        "n2p1",
        Ipv4Addr::new(10, 1, 2, 2),
        7004,
        Duration::from_secs(6),
    );
    std::thread::sleep(Duration::from_millis(1000));

    let pid = supervise::read_pidfile(&pidfile).expect("vxswitchd's pid");
    std::fs::remove_file(&state_file).expect("remove the state file");
    let t0 = Instant::now();
    kill(pid, "-TERM");
    while Path::new(&format!("/proc/{pid}")).exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = t0.elapsed();
    eprintln!(
        "vxswitchd exited {:.1} ms after SIGTERM",
        took.as_secs_f64() * 1e3
    );
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert!(
        wait_until(Duration::from_secs(5), || count_in(
            &log,
            &format!("vxswitchd (pid {pid}) exited with status 0")
        ) == 1),
        "vxswitchd exited 0:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(count_in(&log, "vxswitchd: stopped (SIGTERM) in"), 1);

    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).expect("state written at stop"))
            .expect("a whole state file");
    let ports: Vec<(&str, u64)> = saved["ports"]
        .as_object()
        .expect("ports")
        .iter()
        .map(|(n, p)| (n.as_str(), p["no"].as_u64().unwrap()))
        .collect();
    let want: Vec<(&str, u64)> = state
        .ports
        .iter()
        .filter(|p| p.spec.is_some())
        .map(|p| (p.name.as_str(), u64::from(p.no)))
        .collect();
    assert_eq!(ports, want, "the state file holds the ports");
    let nodes: Vec<&str> = saved["nodes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let want: Vec<&str> = state.nodes.iter().map(|n| n.spec.name.as_str()).collect();
    assert_eq!(nodes, want, "the state file holds the nodes");
    assert_eq!(ifindex(&pod_ns), index, "the pod kept its interface");

    // The supervisor has started it again: the stream flows to its end.
    let again = new_pid(&pidfile, Some(pid), Duration::from_secs(10)).expect("restarted");
    std::thread::sleep(
        (t0 + Duration::from_millis(2500)).saturating_duration_since(Instant::now()),
    );
    let rec = stream.finish();
    let tail_ok = rec
        .got
        .iter()
        .any(|&(_, at)| at > t0 + Duration::from_millis(1500));
    assert!(tail_ok, "the stream resumed after the restart");

    // vxlab down stops the supervisor for good.
    let supervisor = std::fs::read_to_string(format!("/proc/{again}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<u32>()
                .ok()
        })
        .expect("the supervisor's pid");
    Lab::down(&name).expect("vxlab down");
    std::thread::sleep(Duration::from_millis(500));
    for p in [again, supervisor] {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "process {p} is gone after vxlab down"
        );
    }
}

/// SIGHUP reopens --log-file: after the log is renamed (as logrotate does), the next line
/// lands in a new file of the old name, and nothing more in the renamed one.
#[test]
fn sighup_reopens_the_log_file() {
    let lab = two_nodes("hup");
    let _keep = KeepLogs::new(&lab);
    let dir = lab.node("n1").unwrap().dir.clone();
    let log = vxswitch::switch_log(&dir);
    let rotated = dir.join("vxswitchd.log.1");
    let pid = supervise::read_pidfile(&supervise::pidfile(&dir, SWITCHD)).expect("pid");
    std::fs::rename(&log, &rotated).unwrap();
    kill(pid, "-HUP");
    assert!(
        wait_until(Duration::from_secs(5), || count_in(
            &log,
            "log reopened (SIGHUP)"
        ) == 1),
        "the new log has the line"
    );
    // A later line goes there too: a batch the switch refuses (and logs).
    let (ok, out) = vxctl(&lab, "n1", &["del-port", "nosuchpod"]);
    assert!(!ok, "{out}");
    assert!(wait_until(Duration::from_secs(5), || count_in(
        &log,
        "refused a batch"
    ) == 1));
    assert_eq!(count_in(&rotated, "refused a batch"), 0);
    assert_eq!(count_in(&rotated, "log reopened"), 0);
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "SIGHUP did not stop it"
    );
}

/// The systemd units in contrib/systemd verify cleanly, with ExecStart pointed at the built
/// binaries (systemd-analyze comes with Debian's systemd package, which scripts/deps installs).
#[test]
fn the_systemd_units_verify() {
    assert!(
        Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok(),
        "systemd-analyze is not installed (apt-get install systemd; scripts/deps does)"
    );
    let bins = vxswitch::BinSearch::from_env();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd");
    let tmp = std::env::temp_dir().join(format!("vxswitch-units-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut units = Vec::new();
    for (unit, bin) in [("vxswitchd.service", SWITCHD), ("vxagent.service", AGENT)] {
        let text = std::fs::read_to_string(root.join(unit)).unwrap();
        assert!(text.contains("Restart=always"), "{unit}");
        let path = bins.find(bin).expect("built binaries");
        let text = text.replace(
            &format!("/usr/local/bin/{bin}"),
            &path.display().to_string(),
        );
        std::fs::write(tmp.join(unit), text).unwrap();
        units.push(tmp.join(unit));
    }
    let (ok, out) = run_bounded(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(&units),
        Duration::from_secs(30),
    );
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );
}
