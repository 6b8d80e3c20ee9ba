//! Nodes of kind `vxswitch`: the agent file, finding the binaries, and starting vxswitchd and
//! vxagent inside the node namespace with bounded waits for them to become ready.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use controlplane::client::Client;
use serde::{Deserialize, Serialize};

use super::{sh, topo, Lab, LabError, NodeInfo};

pub const SWITCHD: &str = "vxswitchd";
pub const AGENT: &str = "vxagent";
pub const CTL: &str = "vxctl";
pub const LAB: &str = "vxlab";

/// How long vxswitchd may take to answer hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long vxagent may take until every pod port of its node is up.
const PORTS_TIMEOUT: Duration = Duration::from_secs(20);
const HELLO_POLL: Duration = Duration::from_millis(50);
const PORTS_POLL: Duration = Duration::from_millis(100);
/// Lines of a daemon's log quoted in an error.
const LOG_TAIL_LINES: usize = 20;

/// The node agent's file: `[node]`, `[[pods]]` of this node, `[[nodes]]` of every other node
/// (none in a lab with etcd: the agents learn each other from the leases there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFile {
    pub node: AgentNode,
    pub pods: Vec<AgentPod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<AgentPeer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentNode {
    pub name: String,
    pub vtep: String,
    pub vtep_mac: String,
    /// In a lab with etcd, the subnet the agent asks etcd for (the one the lab planned).
    pub subnet: String,
    pub gateway: String,
    /// Absent in a lab with etcd, where the network config's `Backend.VNI` rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    /// Absent in a lab with etcd, where the network config's `Network` rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_network: Option<String>,
    pub underlay_mtu: u16,
    /// OpenShift-SDN's multitenant flows (port security, underlay filter, tenant VNIDs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multitenant: bool,
    /// IPv6 pod prefix (dual-stack labs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPod {
    pub name: String,
    pub netns: String,
    pub mac: String,
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPeer {
    pub name: String,
    pub vtep: String,
    pub vtep_mac: String,
    pub subnet: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
}

/// The agent file of `node`: its own pods, and every other node of the lab whatever its kind
/// (in a lab with etcd, no other node, and no VNI or cluster network: etcd has them).
pub fn agent_file(lab: &Lab, node: &NodeInfo) -> AgentFile {
    let cluster = lab.etcd().is_some();
    AgentFile {
        node: AgentNode {
            name: node.name.clone(),
            vtep: node.vtep6.map_or(node.vtep.to_string(), |v| v.to_string()),
            vtep_mac: node.vtep_mac.clone(),
            subnet: node.subnet.clone(),
            gateway: node.gateway.to_string(),
            vni: (!cluster).then_some(topo::VNI),
            cluster_network: (!cluster).then(|| topo::CLUSTER_NETWORK.to_string()),
            underlay_mtu: topo::UNDERLAY_MTU,
            multitenant: lab.spec().multitenant,
            subnet6: node.subnet6.clone(),
        },
        pods: node
            .pods
            .iter()
            .enumerate()
            .map(|(j, p)| AgentPod {
                name: p.name.clone(),
                netns: p.netns.clone(),
                mac: p.mac.clone(),
                ip: p.ip.to_string(),
                vnid: lab.spec().pod_vnids.get(j).copied(),
                ip6: p.ip6.map(|a| a.to_string()),
            })
            .collect(),
        nodes: lab
            .nodes()
            .iter()
            .filter(|n| n.name != node.name && !cluster)
            .map(|n| AgentPeer {
                name: n.name.clone(),
                vtep: n.vtep6.map_or(n.vtep.to_string(), |v| v.to_string()),
                vtep_mac: n.vtep_mac.clone(),
                subnet: n.subnet.clone(),
                subnet6: n.subnet6.clone(),
            })
            .collect(),
    }
}

/// The agent file as TOML, with a header saying where it came from.
pub fn agent_toml(lab: &Lab, node: &NodeInfo) -> String {
    let body = toml::to_string(&agent_file(lab, node)).expect("agent file serialises");
    format!(
        "# vxagent configuration of node {} in lab {}, written by vxlab up.\n\n{body}",
        node.name, lab.name
    )
}

/// Where vxlab looks for the vxswitch binaries.
#[derive(Debug, Clone)]
pub struct BinSearch {
    /// `VXLAB_BIN_DIR`, which, when set, is the only place searched.
    pub env_dir: Option<PathBuf>,
    /// The directory of the running executable (its parent if that is cargo's `deps`).
    pub exe_dir: Option<PathBuf>,
    /// `PATH`.
    pub path: Vec<PathBuf>,
}

impl BinSearch {
    pub fn from_env() -> BinSearch {
        let exe_dir = std::env::current_exe().ok().and_then(|exe| {
            let dir = exe.parent()?.to_path_buf();
            if dir.file_name().is_some_and(|n| n == "deps") {
                dir.parent().map(Path::to_path_buf)
            } else {
                Some(dir)
            }
        });
        BinSearch {
            env_dir: std::env::var_os("VXLAB_BIN_DIR").map(PathBuf::from),
            exe_dir,
            path: std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
        }
    }

    /// The directories to try, in order.
    fn dirs(&self) -> Vec<PathBuf> {
        match &self.env_dir {
            Some(d) => vec![d.clone()],
            None => self.exe_dir.iter().chain(&self.path).cloned().collect(),
        }
    }

    /// The first executable file called `program` in [`BinSearch::dirs`].
    pub fn find(&self, program: &str) -> Result<PathBuf, LabError> {
        let dirs = self.dirs();
        for d in &dirs {
            let candidate = d.join(program);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
        let looked = match &self.env_dir {
            Some(d) => format!("VXLAB_BIN_DIR={}", d.display()),
            None => {
                let exe = self.exe_dir.as_ref().map(|d| d.display().to_string());
                format!(
                    "{}and PATH",
                    exe.map(|d| format!("the directory of vxlab ({d}) "))
                        .unwrap_or_default()
                )
            }
        };
        Err(LabError::BinaryNotFound {
            program: program.to_string(),
            looked,
        })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The paths of the daemons a lab started, kept in lab.json so a restart runs the same build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bins {
    pub vxswitchd: PathBuf,
    pub vxagent: PathBuf,
    /// vxlab itself, which supervises the daemons (`vxlab supervise`); without it they run
    /// unsupervised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlab: Option<PathBuf>,
}

impl Bins {
    pub fn find() -> Result<Bins, LabError> {
        let search = BinSearch::from_env();
        Ok(Bins {
            vxswitchd: search.find(SWITCHD)?,
            vxagent: search.find(AGENT)?,
            vxlab: search.find(LAB).ok(),
        })
    }
}

/// Paths of a vxswitch node's files under its directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("vxswitchd.sock")
}
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}
pub fn agent_path(dir: &Path) -> PathBuf {
    dir.join("agent.toml")
}
pub fn switch_log(dir: &Path) -> PathBuf {
    dir.join("vxswitchd.log")
}
pub fn agent_log(dir: &Path) -> PathBuf {
    dir.join("vxagent.log")
}
/// Where OVS's tools find the node's switch (vxswitchd --ovs-rundir): `br0.mgmt` for
/// ovs-ofctl; point OVS_RUNDIR at it.
pub fn ovs_rundir(dir: &Path) -> PathBuf {
    dir.join("ovs")
}

/// vxswitchd's arguments for a node; the same every time the node's switch (re)starts.
pub fn switch_args(lab: &Lab, node: &NodeInfo) -> Vec<String> {
    let spec = lab.spec();
    let mut args = vec![
        "--socket".to_string(),
        socket_path(&node.dir).display().to_string(),
        "--state-file".to_string(),
        state_path(&node.dir).display().to_string(),
        "--vxlan-port".to_string(),
        spec.port.to_string(),
        "--ovs-rundir".to_string(),
        ovs_rundir(&node.dir).display().to_string(),
    ];
    if let Some(w) = spec.workers {
        args.extend(["--workers".to_string(), w.to_string()]);
    }
    args.extend([
        "--log-file".to_string(),
        switch_log(&node.dir).display().to_string(),
    ]);
    let offload = if spec.offload { "on" } else { "off" };
    args.extend(["--offload".to_string(), offload.to_string()]);
    args.extend(spec.switch_args.iter().cloned());
    args
}

/// Where the agent of a lab with etcd writes flannel's `subnet.env` for its node.
pub fn subnet_env_path(dir: &Path) -> PathBuf {
    dir.join("subnet.env")
}
/// Where the agent of a lab with etcd remembers its subnet across restarts.
pub fn subnet_lease_path(dir: &Path) -> PathBuf {
    dir.join("subnet.lease")
}

/// vxagent's arguments for a node; in a lab with etcd, cluster mode against the lab's etcd.
pub fn agent_args(lab: &Lab, node: &NodeInfo) -> Vec<String> {
    let mut args = vec![
        "--socket".to_string(),
        socket_path(&node.dir).display().to_string(),
        "--config".to_string(),
        agent_path(&node.dir).display().to_string(),
    ];
    if let Some(endpoint) = lab.etcd() {
        args.extend([
            "--etcd".to_string(),
            endpoint,
            "--subnet-file".to_string(),
            subnet_env_path(&node.dir).display().to_string(),
            "--subnet-lease-file".to_string(),
            subnet_lease_path(&node.dir).display().to_string(),
            "--lease-ttl".to_string(),
            lab.spec().lease_ttl.to_string(),
        ]);
    }
    args
}

/// Starts `bin ARGS` inside `ns` in the background: stdin /dev/null, stdout and stderr appended
/// to `log`, in a process group of its own so it outlives vxlab and the terminal's signals.
/// `ip netns exec` execs the program, so the child's pid is the daemon's.
pub fn spawn_daemon(ns: &str, bin: &Path, args: &[String], log: &Path) -> Result<Child, LabError> {
    let open = |what| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| LabError::Io {
                what,
                path: log.to_path_buf(),
                source,
            })
    };
    let out = open("cannot open the log file")?;
    let err = open("cannot open the log file")?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let line = sh::cmdline(&cmd);
    cmd.spawn().map_err(|source| LabError::Spawn {
        cmdline: line,
        source,
    })
}

/// Which daemon of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchOrAgent {
    Switch,
    Agent,
}

/// Starts `bin ARGS` in `ns` under a supervisor (`vxlab supervise`, see
/// [`spawn_node_daemon`]), or directly when `vxlab` is not at hand.
pub fn spawn_supervised(
    ns: &str,
    vxlab: Option<&Path>,
    bin: &Path,
    args: &[String],
    log: &Path,
    pidfile: &Path,
) -> Result<Child, LabError> {
    let Some(vxlab) = vxlab else {
        return spawn_daemon(ns, bin, args, log);
    };
    let mut sup = vec![
        "supervise".to_string(),
        "--log".to_string(),
        log.display().to_string(),
        "--pidfile".to_string(),
        pidfile.display().to_string(),
        "--".to_string(),
        bin.display().to_string(),
    ];
    sup.extend(args.iter().cloned());
    spawn_daemon(ns, vxlab, &sup, log)
}

/// Starts a node's daemon under a supervisor (`vxlab supervise`, which restarts it whenever it
/// exits and keeps its PID in `pidfile`), or, when the vxlab binary is not at hand, directly.
/// The child returned is the supervisor (or the daemon).
pub fn spawn_node_daemon(
    ns: &str,
    bins: &Bins,
    which: SwitchOrAgent,
    args: &[String],
    log: &Path,
    pidfile: &Path,
) -> Result<Child, LabError> {
    let bin = match which {
        SwitchOrAgent::Switch => &bins.vxswitchd,
        SwitchOrAgent::Agent => &bins.vxagent,
    };
    spawn_supervised(ns, bins.vxlab.as_deref(), bin, args, log, pidfile)
}

/// Waits until a supervisor has replaced daemon `old` (its PID file names another, living
/// process) and the new vxswitchd answers hello on `socket`; returns the new PID.
pub fn wait_restarted(
    node: &str,
    pidfile: &Path,
    old: u32,
    socket: &Path,
    log: &Path,
) -> Result<u32, LabError> {
    let deadline = Instant::now() + HELLO_TIMEOUT;
    let mut last = String::from("no new process yet");
    loop {
        if let Some(pid) = super::supervise::read_pidfile(pidfile).filter(|&p| p != old) {
            match Client::connect(socket, "vxlab") {
                Ok(_) => return Ok(pid),
                Err(e) => last = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            return Err(LabError::NotReady {
                program: SWITCHD,
                node: node.to_string(),
                secs: HELLO_TIMEOUT.as_secs(),
                detail: format!("not restarted by its supervisor ({last})"),
                log: log.to_path_buf(),
                tail: log_tail(log),
            });
        }
        std::thread::sleep(HELLO_POLL);
    }
}

/// Lets a started daemon run on: a thread reaps it when it exits, so it never lingers as a
/// zombie of a long-lived caller (a test binary that restarts switches).
pub fn detach(mut child: Child) {
    std::thread::spawn(move || {
        let _ = child.wait();
    });
}

/// Waits until vxswitchd answers hello on `socket`, or fails if it exits first.
pub fn wait_hello(
    node: &str,
    child: &mut Child,
    socket: &Path,
    log: &Path,
) -> Result<(), LabError> {
    let deadline = Instant::now() + HELLO_TIMEOUT;
    let mut last = String::from("the socket does not exist yet");
    loop {
        check_running(SWITCHD, node, child, log)?;
        if socket.exists() {
            match Client::connect(socket, "vxlab") {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            return Err(LabError::NotReady {
                program: SWITCHD,
                node: node.to_string(),
                secs: HELLO_TIMEOUT.as_secs(),
                detail: format!("no hello on {} ({last})", socket.display()),
                log: log.to_path_buf(),
                tail: log_tail(log),
            });
        }
        std::thread::sleep(HELLO_POLL);
    }
}

/// Waits until vxswitchd lists every pod of `node` as a port with status "up".
pub fn wait_ports_up(
    node: &NodeInfo,
    switch: &mut Child,
    agent: &mut Child,
) -> Result<(), LabError> {
    let socket = socket_path(&node.dir);
    let deadline = Instant::now() + PORTS_TIMEOUT;
    let mut client: Option<Client> = None;
    let mut detail;
    loop {
        check_running(SWITCHD, &node.name, switch, &switch_log(&node.dir))?;
        // vxagent may reconcile once and exit 0; only a failed exit is an error.
        if let Ok(Some(status)) = agent.try_wait() {
            if !status.success() {
                return Err(died(
                    AGENT,
                    &node.name,
                    status.to_string(),
                    &agent_log(&node.dir),
                ));
            }
        }
        let state = match client
            .take()
            .map_or_else(|| Client::connect(&socket, "vxlab"), Ok)
        {
            Ok(mut c) => {
                let s = c.state();
                if s.is_ok() {
                    client = Some(c);
                }
                s
            }
            Err(e) => Err(e),
        };
        match state {
            Ok(state) => {
                let status: BTreeMap<&str, &str> = state
                    .ports
                    .iter()
                    .map(|p| (p.name.as_str(), p.status.as_str()))
                    .collect();
                let waiting: Vec<String> = node
                    .pods
                    .iter()
                    .filter_map(|p| match status.get(p.name.as_str()) {
                        Some(&"up") => None,
                        Some(s) => Some(format!("{}: {s}", p.name)),
                        None => Some(format!("{}: no port", p.name)),
                    })
                    .collect();
                if waiting.is_empty() {
                    return Ok(());
                }
                detail = format!("pods not up: {}", waiting.join(", "));
            }
            Err(e) => detail = format!("cannot read the switch state: {e}"),
        }
        if Instant::now() >= deadline {
            let log = agent_log(&node.dir);
            return Err(LabError::NotReady {
                program: AGENT,
                node: node.name.clone(),
                secs: PORTS_TIMEOUT.as_secs(),
                detail,
                tail: log_tail(&log),
                log,
            });
        }
        std::thread::sleep(PORTS_POLL);
    }
}

fn check_running(
    program: &'static str,
    node: &str,
    child: &mut Child,
    log: &Path,
) -> Result<(), LabError> {
    match child.try_wait() {
        Ok(Some(status)) => Err(died(program, node, status.to_string(), log)),
        Ok(None) => Ok(()),
        Err(e) => Err(died(program, node, format!("cannot wait for it: {e}"), log)),
    }
}

fn died(program: &'static str, node: &str, status: String, log: &Path) -> LabError {
    LabError::DaemonDied {
        program,
        node: node.to_string(),
        status,
        log: log.to_path_buf(),
        tail: log_tail(log),
    }
}

/// The last lines of a log file (at most the last 64 KiB are read).
pub fn log_tail(log: &Path) -> String {
    let Ok(mut f) = File::open(log) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
