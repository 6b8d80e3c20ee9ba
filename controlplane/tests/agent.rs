//! vxagent against a fake vxswitchd: the library reconcile, then the binary (--check, --once,
//! and the run loop with file edits, a bad file, a daemon restart, SIGHUP and SIGTERM).

#[path = "support/fake_daemon.rs"]
mod fake_daemon;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use controlplane::agent::{config, reconcile, Reconciler};
use controlplane::client::Client;
use controlplane::flow_syntax::{format_flow, parse_flow};
use controlplane::proto::*;
use fake_daemon::{base_state, temp_dir, FakeDaemon};

const FILE: &str = r#"[node]
name = "n1"
vtep = "198.51.100.1"
vtep_mac = "02:f1:00:00:00:01"
subnet = "10.1.1.0/24"

[[pods]]
name = "n1p1"
netns = "lab-n1p1"
mac = "0a:58:0a:01:01:02"
ip = "10.1.1.2"
vnid = 10

[[pods]]
name = "n1p2"
netns = "lab-n1p2"
mac = "0a:58:0a:01:01:03"
ip = "10.1.1.3"

[[nodes]]
name = "n2"
vtep = "198.51.100.2"
vtep_mac = "02:f1:00:00:00:02"
subnet = "10.1.2.0/24"
"#;

const WAIT: Duration = Duration::from_secs(10);

/// The one flow a single-tenant agent installs.
fn normal_flow() -> FlowSpec {
    FlowSpec {
        table: 0,
        priority: 0,
        cookie: AGENT_COOKIE,
        idle_timeout: 0,
        hard_timeout: 0,
        matches: vec![],
        actions: vec![FlowAction::Normal],
    }
}

/// Base state plus an admin pod port and an admin remote node.
fn state_with_admin() -> StateRepr {
    let mut s = base_state();
    s.table_version = 4;
    s.ports.push(PortState {
        no: 3,
        name: "debug".into(),
        kind: PortKind::Pod,
        device: "eth0@dbg".into(),
        owner: Some(Owner::Admin),
        spec: Some(PortSpec {
            name: "debug".into(),
            netns: "dbg".into(),
            mac: "0a:58:0a:01:01:63".parse().unwrap(),
            ip: "10.1.1.99".parse().unwrap(),
            ip6: None,
            vnid: None,
            ifname: None,
            mtu: None,
        }),
        status: "up".into(),
    });
    s.nodes.push(NodeState {
        owner: Owner::Admin,
        spec: RemoteNode {
            name: "n9".into(),
            vtep: "198.51.100.9".parse().unwrap(),
            vtep_mac: "02:f1:00:00:00:09".parse().unwrap(),
            subnet: "10.1.9.0/24".parse().unwrap(),
            subnet6: None,
        },
    });
    s
}

fn admin_objects(s: &StateRepr) -> (Vec<PortState>, Vec<NodeState>) {
    (
        s.ports
            .iter()
            .filter(|p| p.owner == Some(Owner::Admin))
            .cloned()
            .collect(),
        s.nodes
            .iter()
            .filter(|n| n.owner == Owner::Admin)
            .cloned()
            .collect(),
    )
}

#[test]
fn reconcile_pushes_the_file_then_only_differences() {
    let dir = temp_dir("rec");
    let fake = FakeDaemon::start(&dir.join("s.sock"), state_with_admin());
    let admin_before = admin_objects(&fake.state());
    let desired = config::parse("agent.toml", FILE).unwrap();
    let mut client = Client::connect(&fake.path, "test").unwrap();

    // First reconcile: everything, in one batch, as the agent, at the version it read; then
    // the agent's one flow in one bundle.
    let out = reconcile(&mut client, &desired).unwrap();
    assert_eq!(
        (
            out.pushed,
            out.flow_changes,
            out.objects_version,
            out.version
        ),
        (5, 1, 5, 6)
    );
    assert_eq!(
        fake.flow_mods(),
        vec![vec![FlowMod::Add {
            flow: normal_flow(),
            reset_counts: false
        }]]
    );
    let batches = fake.applied();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].owner, Owner::Agent);
    assert_eq!(batches[0].expected_version, Some(4));
    assert_eq!(
        batches[0].changes,
        vec![
            Change::SetLocalNode(desired.local.clone()),
            Change::AddPort(desired.pods[0].clone()),
            Change::AddPort(desired.pods[1].clone()),
            Change::AddNode(desired.nodes[0].clone()),
        ]
    );
    let s = fake.state();
    assert_eq!(admin_objects(&s), admin_before);
    let nos: Vec<(u16, &str)> = s.ports.iter().map(|p| (p.no, p.name.as_str())).collect();
    assert_eq!(
        nos,
        [
            (1, "vxlan0"),
            (2, "vxhost0"),
            (3, "debug"),
            (4, "n1p1"),
            (5, "n1p2")
        ]
    );

    // Second reconcile: nothing to do, no batch sent.
    let out = reconcile(&mut client, &desired).unwrap();
    assert_eq!((out.pushed, out.version), (0, 6));
    assert_eq!(fake.applied().len(), 1);
    assert_eq!(fake.flow_mods().len(), 1);

    // A changed file: n1p2 gets another IP, n1p1 goes away, n3 arrives.
    let text = FILE.replacen("10.1.1.3", "10.1.1.30", 1).replacen(
        "[[pods]]\nname = \"n1p1\"\nnetns = \"lab-n1p1\"\nmac = \"0a:58:0a:01:01:02\"\nip = \"10.1.1.2\"\nvnid = 10\n",
        "",
        1,
    ) + "\n[[nodes]]\nname = \"n3\"\nvtep = \"198.51.100.3\"\nvtep_mac = \"02:f1:00:00:00:03\"\nsubnet = \"10.1.3.0/24\"\n";
    let changed = config::parse("agent.toml", &text).unwrap();
    let out = reconcile(&mut client, &changed).unwrap();
    assert_eq!((out.pushed, out.flow_changes), (4, 0));
    let last = fake.applied().pop().unwrap();
    assert_eq!(last.expected_version, Some(6));
    assert_eq!(
        last.changes,
        vec![
            Change::DelPort {
                name: "n1p1".into()
            },
            Change::DelPort {
                name: "n1p2".into()
            },
            Change::AddPort(changed.pods[0].clone()),
            Change::AddNode(changed.nodes[1].clone()),
        ]
    );
    assert_eq!(admin_objects(&fake.state()), admin_before);
    assert_eq!(reconcile(&mut client, &changed).unwrap().pushed, 0);
}

#[test]
fn a_stale_version_is_retried_with_a_fresh_plan() {
    let dir = temp_dir("retry");
    let fake = FakeDaemon::start(&dir.join("s.sock"), base_state());
    fake.lock().inject_mismatch = 2;
    let desired = config::parse("agent.toml", FILE).unwrap();
    let mut client = Client::connect(&fake.path, "test").unwrap();
    let out = reconcile(&mut client, &desired).unwrap();
    assert_eq!(out.pushed, 5);
    let inner = fake.lock();
    assert_eq!(inner.refused.len(), 2);
    assert_eq!(inner.applied.len(), 1);
    assert_eq!(inner.applied[0].expected_version, Some(2));

    // Endless mismatches give up with the daemon's refusal.
    drop(inner);
    fake.lock().inject_mismatch = 100;
    let changed = config::parse("a.toml", &FILE.replacen("lab-n1p2", "lab-x", 1)).unwrap();
    let err = reconcile(&mut client, &changed).unwrap_err();
    assert!(
        matches!(
            err,
            controlplane::Error::Refused {
                code: ErrorCode::VersionMismatch,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_plan_the_daemon_does_not_converge_on_is_not_pushed_twice() {
    let dir = temp_dir("stuck");
    let fake = FakeDaemon::start(&dir.join("s.sock"), base_state());
    let desired = config::parse("agent.toml", FILE).unwrap();
    let mut client = Client::connect(&fake.path, "test").unwrap();
    let mut r = Reconciler::new();
    assert_eq!(r.reconcile(&mut client, &desired).unwrap().pushed, 5);
    // The daemon "forgets" a port's spec: the same DelPort+AddPort would come back every time.
    fake.lock().state.as_mut().unwrap().ports[3].spec = None;
    let first = r.reconcile(&mut client, &desired).unwrap();
    assert_eq!(first.pushed, 2);
    fake.lock()
        .state
        .as_mut()
        .unwrap()
        .ports
        .last_mut()
        .unwrap()
        .spec = None;
    let again = r.reconcile(&mut client, &desired).unwrap();
    assert!(again.stuck && again.pushed == 0, "{again:?}");
}

fn vxagent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vxagent"))
}

fn write(path: &Path, text: &str) {
    // Write a temporary file and rename, as editors do, so the agent never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn check_accepts_good_files_and_names_the_line_of_bad_ones() {
    let dir = temp_dir("check");
    let file = dir.join("agent.toml");
    write(&file, FILE);
    let (code, out, _) = run(vxagent().arg("--check").arg("--config").arg(&file));
    assert_eq!(code, 0);
    assert!(
        out.contains("ok (node n1, 2 pods, 1 remote nodes)"),
        "{out}"
    );

    write(&file, &FILE.replacen("10.1.1.3", "10.1.7.3", 1));
    let (code, _, err) = run(vxagent().arg("--check").arg("--config").arg(&file));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!(
            "{}:18: pod n1p2: ip 10.1.7.3 is outside the node subnet 10.1.1.0/24",
            file.display()
        )
    );

    let (code, _, err) = run(vxagent()
        .arg("--check")
        .arg("--config")
        .arg(dir.join("missing.toml")));
    assert_eq!(code, 1);
    assert!(
        err.contains("missing.toml: cannot read the agent file"),
        "{err}"
    );
}

#[test]
fn once_pushes_then_finds_nothing_to_push() {
    let dir = temp_dir("once");
    let file = dir.join("agent.toml");
    write(&file, FILE);
    let sock = dir.join("s.sock");

    // No daemon: exit 1 with a hint.
    let (code, _, err) = run(vxagent()
        .arg("--once")
        .arg("--socket")
        .arg(&sock)
        .arg("--config")
        .arg(&file));
    assert_eq!(code, 1);
    assert!(err.contains("is vxswitchd running?"), "{err}");

    let fake = FakeDaemon::start(&sock, state_with_admin());
    let (code, _, err) = run(vxagent()
        .arg("--once")
        .arg("--socket")
        .arg(&sock)
        .arg("--config")
        .arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            "vxagent: pushed 4 changes, table version 5",
            "vxagent: pushed 1 flow changes, table version 6"
        ]
    );
    assert_eq!(fake.lock().hellos, ["vxagent"]);
    let (code, _, err) = run(vxagent()
        .arg("--once")
        .arg("--socket")
        .arg(&sock)
        .arg("--config")
        .arg(&file));
    assert_eq!(code, 0);
    assert_eq!(err.trim(), "vxagent: nothing to push, table version 6");
    assert_eq!(fake.applied().len(), 1);

    // A bad file pushes nothing and fails.
    write(&file, &FILE.replacen("vnid = 10", "vnid = 10\nvlan = 3", 1));
    let (code, _, err) = run(vxagent()
        .arg("--once")
        .arg("--socket")
        .arg(&sock)
        .arg("--config")
        .arg(&file));
    assert_eq!(code, 1);
    assert!(err.contains("agent.toml:13: unknown field `vlan`"), "{err}");
    assert_eq!(fake.applied().len(), 1);
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = run(vxagent().arg("--once"));
    assert_eq!(code, 2);
    assert!(err.contains("--config"), "{err}");
    let (code, _, _) = run(vxagent().args(["--config", "x", "--interval-ms", "0"]));
    assert_eq!(code, 2);
}

struct Agent {
    child: Child,
}

impl Agent {
    fn start(sock: &Path, file: &Path) -> Agent {
        let child = vxagent()
            .arg("--socket")
            .arg(sock)
            .arg("--config")
            .arg(file)
            .args(["--interval-ms", "50"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Agent { child }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Sends SIGTERM and returns the exit code and everything logged.
    fn stop(mut self) -> (Option<i32>, String) {
        self.signal("TERM");
        let end = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < end, "vxagent did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut log = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        (status.code(), log)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn last_changes(fake: &FakeDaemon) -> Vec<Change> {
    fake.applied().pop().map(|b| b.changes).unwrap_or_default()
}

#[test]
fn the_run_loop_follows_the_file_and_survives_a_daemon_restart() {
    let dir = temp_dir("loop");
    let file: PathBuf = dir.join("agent.toml");
    write(&file, FILE);
    let sock = dir.join("s.sock");
    let fake = FakeDaemon::start(&sock, state_with_admin());
    let agent = Agent::start(&sock, &file);
    assert!(
        fake.wait_for(WAIT, |i| i.applied.len() == 1),
        "no initial push"
    );
    let desired = config::parse("a", FILE).unwrap();

    // An edit is noticed at the next interval and only the difference is pushed.
    write(&file, &FILE.replacen("lab-n1p2", "lab-n1p2b", 1));
    assert!(
        fake.wait_for(WAIT, |i| i.applied.len() == 2),
        "edit not pushed"
    );
    let mut p2 = desired.pods[1].clone();
    p2.netns = "lab-n1p2b".into();
    assert_eq!(
        last_changes(&fake),
        vec![
            Change::DelPort {
                name: "n1p2".into()
            },
            Change::AddPort(p2)
        ]
    );

    // A bad file is logged and nothing is pushed.
    write(
        &file,
        &FILE.replacen("subnet = \"10.1.2.0/24\"", "subnet = \"10.1.1.0/25\"", 1),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake.applied().len(), 2);

    // The daemon restarts empty: the agent reconnects and pushes everything (the last good file).
    drop(fake);
    std::thread::sleep(Duration::from_millis(300));
    let fake = FakeDaemon::start(&sock, base_state());
    assert!(
        fake.wait_for(WAIT, |i| i.applied.len() == 1),
        "nothing pushed after the restart"
    );
    let full = last_changes(&fake);
    assert_eq!(full.len(), 4, "{full:?}");
    assert!(matches!(&full[0], Change::SetLocalNode(l) if *l == desired.local));

    // SIGHUP re-reads the (now fixed) file at once.
    write(&file, FILE);
    agent.signal("HUP");
    assert!(
        fake.wait_for(WAIT, |i| i.applied.len() == 2),
        "fixed file not pushed"
    );
    assert_eq!(
        last_changes(&fake),
        vec![
            Change::DelPort {
                name: "n1p2".into()
            },
            Change::AddPort(desired.pods[1].clone())
        ]
    );

    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    let lines: Vec<&str> = log.lines().collect();
    let has = |s: &str| lines.iter().any(|l| l.contains(s));
    assert!(has("vxagent: pushed 4 changes, table version 5"), "{log}");
    assert!(
        has("vxagent: pushed 1 flow changes, table version 6"),
        "{log}"
    );
    assert!(has("vxagent: pushed 2 changes, table version 7"), "{log}");
    assert!(
        has("agent.toml:24: node n2: subnet 10.1.1.0/25 overlaps this node's subnet 10.1.1.0/24"),
        "{log}"
    );
    assert!(has("lost vxswitchd"), "{log}");
    assert!(has("vxagent: pushed 4 changes, table version 1"), "{log}");
    assert!(
        has("vxagent: pushed 1 flow changes, table version 2"),
        "{log}"
    );
    assert!(has("vxagent: exiting"), "{log}");
    // The bad file and the absent daemon are each logged once, not once per interval.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("agent.toml:24:"))
            .count(),
        1,
        "{log}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l.contains("cannot connect"))
            .count()
            <= 1,
        "{log}"
    );
}

#[test]
fn a_refused_batch_is_retried_with_backoff_and_at_once_after_an_edit() {
    let dir = temp_dir("backoff");
    let file = dir.join("agent.toml");
    write(&file, FILE);
    let sock = dir.join("s.sock");
    let fake = FakeDaemon::start(&sock, base_state());
    fake.lock().refuse_all = Some(ErrorCode::Failed);
    let agent = Agent::start(&sock, &file);
    assert!(
        fake.wait_for(WAIT, |i| !i.refused.is_empty()),
        "nothing sent"
    );
    std::thread::sleep(Duration::from_millis(1500));
    // At a 50 ms interval, 1.5 s is 30 intervals; backoff (50, 100, 200, 400, 800 ms) sends ~5.
    let refused = fake.lock().refused.len();
    assert!((2..=7).contains(&refused), "{refused} batches sent");

    // The switch can apply now, and the file changes: pushed at the next interval.
    fake.lock().refuse_all = None;
    write(&file, &FILE.replacen("lab-n1p2", "lab-n1p2b", 1));
    assert!(
        fake.wait_for(Duration::from_millis(1000), |i| i.applied.len() == 1),
        "edit not pushed promptly"
    );
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0));
    let refusals = log
        .lines()
        .filter(|l| l.contains("refused the request (Failed)"))
        .count();
    assert_eq!(refusals, 1, "{log}");
}

fn agent_flows(fake: &FakeDaemon) -> Vec<FlowSpec> {
    let mut v: Vec<FlowSpec> = fake
        .flows()
        .into_iter()
        .filter(|f| f.cookie == AGENT_COOKIE)
        .collect();
    v.sort_by_key(|f| (f.table, std::cmp::Reverse(f.priority), format_flow(f)));
    v
}

fn parsed(lines: &[&str]) -> Vec<FlowSpec> {
    let mut v: Vec<FlowSpec> = lines
        .iter()
        .map(|l| parse_flow(&format!("cookie={AGENT_COOKIE:#x},{l}")).unwrap())
        .collect();
    v.sort_by_key(|f| (f.table, std::cmp::Reverse(f.priority), format_flow(f)));
    v
}

#[test]
fn multitenant_flows_follow_the_file_and_leave_admin_flows_alone() {
    let dir = temp_dir("mt");
    let fake = FakeDaemon::start(&dir.join("s.sock"), state_with_admin());
    // An admin flow is in the switch before the agent comes.
    let admin = parse_flow("cookie=0x42,table=0,priority=1000,in_port=debug,actions=drop").unwrap();
    fake.lock().flows.push(FlowStats {
        spec: admin.clone(),
        n_packets: 7,
        n_bytes: 700,
        duration_ms: 1000,
        idle_ms: 10,
    });
    let text = FILE.replacen(
        "subnet = \"10.1.1.0/24\"\n",
        "subnet = \"10.1.1.0/24\"\nmultitenant = true\n",
        1,
    );
    let desired = config::parse("agent.toml", &text).unwrap();
    assert!(desired.multitenant);
    let mut client = Client::connect(&fake.path, "test").unwrap();
    let out = reconcile(&mut client, &desired).unwrap();
    assert_eq!((out.pushed, out.flow_changes), (4 + 11, 11), "{out:?}");
    // The ports came first: the fake refuses flows that name ports it does not have.
    assert!(fake.lock().flow_refused.is_empty());
    assert_eq!(fake.flow_mods().len(), 1);
    let want = parsed(&[
        "table=0,priority=300,in_port=vxlan0,tun_src=198.51.100.2,actions=goto_table:10",
        "table=0,priority=290,in_port=vxlan0,actions=drop",
        "table=0,priority=300,in_port=vxhost0,actions=goto_table:10",
        "table=0,priority=300,in_port=n1p1,dl_src=0a:58:0a:01:01:02,ip,nw_src=10.1.1.2,actions=goto_table:10",
        "table=0,priority=300,in_port=n1p1,dl_src=0a:58:0a:01:01:02,arp,arp_spa=10.1.1.2,arp_sha=0a:58:0a:01:01:02,actions=goto_table:10",
        "table=0,priority=290,in_port=n1p1,actions=drop",
        "table=0,priority=300,in_port=n1p2,dl_src=0a:58:0a:01:01:03,ip,nw_src=10.1.1.3,actions=goto_table:10",
        "table=0,priority=300,in_port=n1p2,dl_src=0a:58:0a:01:01:03,arp,arp_spa=10.1.1.3,arp_sha=0a:58:0a:01:01:03,actions=goto_table:10",
        "table=0,priority=290,in_port=n1p2,actions=drop",
        "table=0,priority=0,actions=drop",
        "table=10,priority=0,actions=normal",
    ]);
    assert_eq!(agent_flows(&fake), want);
    assert!(fake.flows().contains(&admin));

    // Nothing changed: nothing pushed.
    let out = reconcile(&mut client, &desired).unwrap();
    assert_eq!(out.pushed, 0, "{out:?}");
    assert_eq!(fake.flow_mods().len(), 1);

    // n1p2 leaves the file: its port goes, then its three flows, strictly and by cookie.
    let text2 = text.replacen(
        "[[pods]]\nname = \"n1p2\"\nnetns = \"lab-n1p2\"\nmac = \"0a:58:0a:01:01:03\"\nip = \"10.1.1.3\"\n",
        "",
        1,
    );
    let fewer = config::parse("agent.toml", &text2).unwrap();
    let out = reconcile(&mut client, &fewer).unwrap();
    assert_eq!((out.pushed, out.flow_changes), (1 + 3, 3), "{out:?}");
    let bundle = fake.flow_mods().pop().unwrap();
    assert!(bundle.iter().all(|m| matches!(
        m,
        FlowMod::Delete {
            strict: true,
            cookie: Some((AGENT_COOKIE, u64::MAX)),
            ..
        }
    )));
    assert_eq!(agent_flows(&fake).len(), 8);
    assert!(!agent_flows(&fake)
        .iter()
        .any(|f| format_flow(f).contains("n1p2")));

    // Back to a single tenant: one flow replaces (table=0,priority=0) and the rest go.
    let single = config::parse("agent.toml", FILE).unwrap();
    reconcile(&mut client, &single).unwrap();
    assert_eq!(agent_flows(&fake), vec![normal_flow()]);
    assert!(fake.flows().contains(&admin));
    assert!(fake.lock().flow_refused.is_empty());
}

#[test]
fn agent_flows_colliding_with_admin_flows_and_pods_are_left_out() {
    let dir = temp_dir("mtc");
    let fake = FakeDaemon::start(&dir.join("s.sock"), state_with_admin());
    // The admin holds the rule of the agent's table-10 flow.
    let admin = parse_flow("cookie=0x42,table=10,priority=0,actions=drop").unwrap();
    fake.lock().flows.push(FlowStats {
        spec: admin.clone(),
        n_packets: 0,
        n_bytes: 0,
        duration_ms: 0,
        idle_ms: 0,
    });
    // n1p2 wants the admin port's IP: no port, so no flows for it either (the switch would
    // refuse flows naming a port it does not have).
    let text = FILE
        .replacen(
            "subnet = \"10.1.1.0/24\"\n",
            "subnet = \"10.1.1.0/24\"\nmultitenant = true\n",
            1,
        )
        .replacen("10.1.1.3", "10.1.1.99", 1);
    let desired = config::parse("agent.toml", &text).unwrap();
    let mut client = Client::connect(&fake.path, "test").unwrap();
    let out = reconcile(&mut client, &desired).unwrap();
    assert_eq!(out.conflicts.len(), 2, "{:?}", out.conflicts);
    assert!(out.conflicts[0].contains("n1p2"), "{:?}", out.conflicts);
    assert!(
        out.conflicts[1].contains("cookie 0x42"),
        "{:?}",
        out.conflicts
    );
    assert!(fake.lock().flow_refused.is_empty());
    let flows = agent_flows(&fake);
    assert!(!flows.iter().any(|f| format_flow(f).contains("n1p2")));
    assert!(!flows.iter().any(|f| f.table == 10));
    assert!(fake.flows().contains(&admin));
    assert_eq!(reconcile(&mut client, &desired).unwrap().pushed, 0);
}
