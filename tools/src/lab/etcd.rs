//! The lab's etcd (`vxlab up --etcd`): one etcd server in the underlay namespace `LAB-ul`, on
//! an address of the underlay bridge, so every node's vxagent reaches it over the lab's own
//! underlay as it would reach a cluster's etcd over the network. Its data lives in the lab's
//! state directory and goes with it.
//!
//! | what | value |
//! |---|---|
//! | client URL | `http://198.51.100.254:2379` (on `ul0` in `LAB-ul`) |
//! | peer URL | `http://127.0.0.1:2380` (loopback of `LAB-ul`; a one-member cluster) |
//! | files | `/run/vxlab/LAB/etcd/` (`data/`, `etcd.log`, `etcd.pid`) |
//! | network config | `/coreos.com/network/config`, flannel's JSON, written at `up` |
//! | leases | `/coreos.com/network/subnets/10.1.{i}.0-24`, written by the agents |
//!
//! Kernel nodes (the Linux vxlan driver as flannel programs it) get their lease written by
//! vxlab exactly as flannel's daemon would, so the vxswitch nodes learn them from etcd too.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::supervise::{pidfile, read_pidfile};
use super::vxswitch::{
    agent_log, detach, log_tail, spawn_node_daemon, spawn_supervised, Bins, SwitchOrAgent, AGENT,
};
use super::{sh, topo, Kind, Lab, LabError, LabSpec, NodeInfo};

/// etcd's address on the underlay bridge (above every node's: nodes are 1..=200).
pub const ETCD_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;
/// flannel's key prefix, which vxagent uses by default.
pub const PREFIX: &str = "/coreos.com/network";
/// The TTL of the agents' leases in a lab: short, so a stopped node leaves the others' tables
/// within seconds (flannel's, and vxagent's, default is a day).
pub const DEFAULT_LEASE_TTL: u32 = 10;
/// The TTL of the leases vxlab writes for kernel nodes: flannel's default, 24 h.
pub const KERNEL_LEASE_TTL: u32 = 86_400;
/// The name etcd's process has (`/proc/PID/comm`).
pub const COMM: &str = "etcd";

/// How long etcd may take to answer `endpoint health`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(20);
const HEALTH_POLL: Duration = Duration::from_millis(100);
/// One etcdctl call.
const CTL_TIMEOUT: &str = "3s";

/// What lab.json keeps of the lab's etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdInfo {
    /// The client URL the agents use: `http://198.51.100.254:2379`.
    pub endpoint: String,
    /// The namespace etcd runs in (`LAB-ul`).
    pub netns: String,
    /// `/run/vxlab/LAB/etcd/`.
    pub dir: PathBuf,
    pub etcd: PathBuf,
    pub etcdctl: PathBuf,
    /// PID of etcd (its own, not its supervisor's), once started.
    #[serde(default)]
    pub pid: Option<u32>,
}

impl EtcdInfo {
    /// The lab's etcd as planned; the binaries are looked for in PATH and /usr/bin.
    pub fn plan(lab: &str, lab_dir: &Path) -> Result<EtcdInfo, LabError> {
        Ok(EtcdInfo {
            endpoint: endpoint(),
            netns: topo::underlay_netns(lab),
            dir: lab_dir.join("etcd"),
            etcd: find_system("etcd")?,
            etcdctl: find_system("etcdctl")?,
            pid: None,
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    pub fn pidfile(&self) -> PathBuf {
        super::supervise::pidfile(&self.dir, COMM)
    }

    /// etcd's arguments: a one-member cluster, clients on the underlay, peers on loopback.
    pub fn args(&self) -> Vec<String> {
        let peer = format!("http://127.0.0.1:{PEER_PORT}");
        [
            "--name",
            "vxlab",
            "--data-dir",
            &self.data_dir().display().to_string(),
            "--listen-client-urls",
            &self.endpoint,
            "--advertise-client-urls",
            &self.endpoint,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("vxlab={peer}"),
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `ip netns exec LAB-ul env ETCDCTL_API=3 etcdctl --endpoints URL --command-timeout 3s`;
    /// add the etcdctl command and its arguments.
    pub fn etcdctl(&self) -> Command {
        let mut cmd = sh::netns_exec(&self.netns, "env");
        cmd.arg("ETCDCTL_API=3")
            .arg(&self.etcdctl)
            .args(["--endpoints", &self.endpoint])
            .arg(format!("--command-timeout={CTL_TIMEOUT}"));
        cmd
    }

    /// Runs etcdctl with `args`; its stdout, or an error with its stderr.
    pub fn run(&self, args: &[&str]) -> Result<String, LabError> {
        sh::run(self.etcdctl().args(args))
    }

    /// Waits until etcd answers `endpoint health`; fails at once if it exits (`alive` false).
    pub fn wait_healthy(&self, mut alive: impl FnMut() -> bool) -> Result<(), LabError> {
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        loop {
            let last = match self.run(&["endpoint", "health"]) {
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            };
            if !alive() {
                return Err(LabError::DaemonDied {
                    program: COMM,
                    node: self.netns.clone(),
                    status: "exited".into(),
                    log: self.log(),
                    tail: super::vxswitch::log_tail(&self.log()),
                });
            }
            if Instant::now() >= deadline {
                return Err(LabError::NotReady {
                    program: COMM,
                    node: self.netns.clone(),
                    secs: HEALTH_TIMEOUT.as_secs(),
                    detail: format!("endpoint {} not healthy ({last})", self.endpoint),
                    log: self.log(),
                    tail: super::vxswitch::log_tail(&self.log()),
                });
            }
            std::thread::sleep(HEALTH_POLL);
        }
    }

    /// Writes `<prefix>/config`, as an admin does with `etcdctl put`.
    pub fn put_network_config(&self, spec: &LabSpec) -> Result<(), LabError> {
        let key = format!("{PREFIX}/config");
        self.run(&["put", &key, &network_config(spec)]).map(drop)
    }

    /// Writes the lease of a node that runs no agent (a kernel node), as flannel's daemon
    /// writes its own: an etcd lease of `ttl` seconds, flannel's key and JSON.
    pub fn put_flannel_lease(&self, node: &NodeInfo, ttl: u32) -> Result<(), LabError> {
        let granted = self.run(&["lease", "grant", &ttl.to_string()])?;
        // "lease 694d8e4f1ad5a00b granted with TTL(86400s)"
        let id = granted
            .split_whitespace()
            .nth(1)
            .filter(|id| id.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| LabError::Command {
                cmdline: format!("etcdctl lease grant {ttl}"),
                status: "unexpected output".into(),
                stderr: granted.clone(),
            })?;
        let value = lease_value(&node.vtep.to_string(), topo::VNI, &node.vtep_mac);
        self.run(&[
            "put",
            &format!("--lease={id}"),
            &subnet_key(&node.subnet),
            &value,
        ])
        .map(drop)
    }
}

/// How long a stopped daemon gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(4);
/// How long a started agent may take to show up in its PID file.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long every vxswitchd may take, at `up`, to list every other node from etcd.
const MESH_TIMEOUT: Duration = Duration::from_secs(30);

/// How [`Lab::stop_agent`] stops a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, as an admin stops it.
    Term,
    /// SIGKILL, a crash: nothing of the daemon's own clean-up runs (its lease is left to
    /// expire).
    Kill,
}

/// Cluster mode of a lab: its etcd, and stopping and starting agents and etcd.
impl Lab {
    /// The lab's etcd client URL (`http://198.51.100.254:2379`), in a lab with etcd.
    pub fn etcd(&self) -> Option<String> {
        self.spec.etcd.then(endpoint)
    }

    fn etcd_info(&self) -> Result<&EtcdInfo, LabError> {
        self.etcd.as_ref().ok_or_else(|| {
            LabError::BadSpec(format!(
                "lab {} has no etcd; build it with vxlab up --etcd",
                self.name
            ))
        })
    }

    /// `etcdctl` against the lab's etcd, run in the namespace that reaches it (`ETCDCTL_API=3`
    /// and `--endpoints` set); add the command and its arguments.
    pub fn etcdctl_command(&self) -> Result<Command, LabError> {
        Ok(self.etcd_info()?.etcdctl())
    }

    /// Runs `etcdctl ARGS` against the lab's etcd; its stdout.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String, LabError> {
        self.etcd_info()?.run(args)
    }

    /// The PID of the lab's etcd: the one its supervisor runs now, else as recorded.
    pub fn etcd_pid(&self) -> Option<u32> {
        let e = self.etcd.as_ref()?;
        super::supervise::read_pidfile(&e.pidfile()).or(e.pid)
    }

    /// At `up`, after the underlay: etcd's address on the bridge, etcd itself, flannel's
    /// network config, and the leases of the kernel nodes.
    pub(super) fn start_etcd_first(&mut self) -> Result<(), LabError> {
        let Some(info) = self.etcd.clone() else {
            return Ok(());
        };
        sh::ip(
            Some(&info.netns),
            &[
                "addr",
                "add",
                &format!("{ETCD_IP}/{}", topo::UNDERLAY_PREFIX),
                "dev",
                topo::UNDERLAY_BRIDGE,
            ],
        )?;
        std::fs::create_dir_all(info.data_dir()).map_err(|source| LabError::Io {
            what: "cannot create etcd's data directory",
            path: info.data_dir(),
            source,
        })?;
        self.start_etcd()?;
        info.put_network_config(&self.spec)?;
        for node in self.nodes.iter().filter(|n| n.kind == Kind::Kernel) {
            info.put_flannel_lease(node, KERNEL_LEASE_TTL)?;
        }
        Ok(())
    }

    /// Starts the lab's etcd (supervised) on its data, and waits until it is healthy.
    pub fn start_etcd(&mut self) -> Result<(), LabError> {
        let info = self.etcd_info()?.clone();
        if self.etcd_pid().is_some_and(super::sys::alive) {
            return Ok(());
        }
        let vxlab = self.vxlab_bin();
        let pidfile = info.pidfile();
        let _ = std::fs::remove_file(&pidfile);
        let mut child = spawn_supervised(
            &info.netns,
            vxlab.as_deref(),
            &info.etcd,
            &info.args(),
            &info.log(),
            &pidfile,
        )?;
        let direct = child.id();
        let ready = info.wait_healthy(|| matches!(child.try_wait(), Ok(None)));
        detach(child);
        ready?;
        let pid = super::supervise::read_pidfile(&pidfile).unwrap_or(direct);
        if let Some(e) = self.etcd.as_mut() {
            e.pid = Some(pid);
        }
        self.save_if_up()
    }

    /// Stops the lab's etcd (SIGTERM to it through its supervisor); its data stays, so
    /// [`Lab::start_etcd`] brings back every key and lease.
    pub fn stop_etcd(&mut self) -> Result<(), LabError> {
        let info = self.etcd_info()?.clone();
        stop_daemon(&info.netns, &info.pidfile(), info.pid, COMM, Stop::Term)
    }

    /// Stops a vxswitch node's vxagent and its supervisor, so nothing starts it again; its
    /// vxswitchd keeps forwarding with the tables it has.
    pub fn stop_agent(&mut self, node: &str, how: Stop) -> Result<(), LabError> {
        let n = self.vxswitch_node(node)?;
        stop_daemon(&n.netns, &pidfile(&n.dir, AGENT), n.agent_pid, AGENT, how)
    }

    /// Starts a node's vxagent (supervised) again with the arguments `up` gave it; returns
    /// once it runs (not once it has pushed anything).
    pub fn start_agent(&mut self, node: &str) -> Result<(), LabError> {
        let n = self.vxswitch_node(node)?.clone();
        let bins = match &self.bins {
            Some(b) => b.clone(),
            None => Bins::find()?,
        };
        let pidfile = pidfile(&n.dir, AGENT);
        if read_pidfile(&pidfile).is_some_and(super::sys::alive) {
            return Ok(());
        }
        let _ = std::fs::remove_file(&pidfile);
        let args = super::vxswitch::agent_args(self, &n);
        let log = agent_log(&n.dir);
        let mut child =
            spawn_node_daemon(&n.netns, &bins, SwitchOrAgent::Agent, &args, &log, &pidfile)?;
        let direct = child.id();
        let deadline = Instant::now() + START_TIMEOUT;
        let started = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Err(LabError::DaemonDied {
                    program: AGENT,
                    node: n.name.clone(),
                    status: status.to_string(),
                    log: log.clone(),
                    tail: log_tail(&log),
                });
            }
            if bins.vxlab.is_none() {
                break Ok(direct);
            }
            if let Some(pid) = read_pidfile(&pidfile).filter(|&p| super::sys::alive(p)) {
                break Ok(pid);
            }
            if Instant::now() >= deadline {
                break Err(LabError::NotReady {
                    program: AGENT,
                    node: n.name.clone(),
                    secs: START_TIMEOUT.as_secs(),
                    detail: format!("no PID in {}", pidfile.display()),
                    log: log.clone(),
                    tail: log_tail(&log),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        detach(child);
        let pid = started?;
        if let Some(info) = self.nodes.iter_mut().find(|x| x.name == n.name) {
            info.agent_pid = Some(pid);
        }
        self.save_if_up()
    }

    /// At `up`: waits until every vxswitchd lists every other node of the lab (learnt from
    /// etcd), so the lab is whole when `up` returns.
    pub(super) fn wait_mesh(&self) -> Result<(), LabError> {
        let deadline = Instant::now() + MESH_TIMEOUT;
        for node in self.nodes.iter().filter(|n| n.kind == Kind::Vxswitch) {
            let want: Vec<&str> = self
                .nodes
                .iter()
                .filter(|n| n.name != node.name)
                .map(|n| n.subnet.as_str())
                .collect();
            loop {
                let missing: Vec<&str> = match self.ctl(&node.name).and_then(|mut c| {
                    c.state().map_err(|source| LabError::Control {
                        node: node.name.clone(),
                        source,
                    })
                }) {
                    Ok(state) => {
                        let have: Vec<String> = state
                            .nodes
                            .iter()
                            .map(|n| n.spec.subnet.to_string())
                            .collect();
                        want.iter()
                            .copied()
                            .filter(|s| !have.iter().any(|h| h == s))
                            .collect()
                    }
                    Err(_) => want.clone(),
                };
                if missing.is_empty() {
                    break;
                }
                if Instant::now() >= deadline {
                    let log = agent_log(&node.dir);
                    return Err(LabError::NotReady {
                        program: AGENT,
                        node: node.name.clone(),
                        secs: MESH_TIMEOUT.as_secs(),
                        detail: format!(
                            "its vxswitchd has no node for {} (not learnt from etcd)",
                            missing.join(", ")
                        ),
                        tail: log_tail(&log),
                        log,
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    fn vxswitch_node(&self, node: &str) -> Result<&NodeInfo, LabError> {
        self.socket(node)?;
        self.node(node).ok_or_else(|| LabError::UnknownTarget {
            lab: self.name.clone(),
            target: node.to_string(),
        })
    }

    fn vxlab_bin(&self) -> Option<PathBuf> {
        match &self.bins {
            Some(b) => b.vxlab.clone(),
            None => super::vxswitch::BinSearch::from_env()
                .find(super::vxswitch::LAB)
                .ok(),
        }
    }

    /// Records a new PID in lab.json, unless the lab is still being built (`up` saves it).
    fn save_if_up(&self) -> Result<(), LabError> {
        if super::state_file(&self.name).exists() {
            self.save()
        } else {
            Ok(())
        }
    }
}

/// Stops a daemon of the lab that runs in `ns`: through its supervisor (the daemon's parent,
/// if it is `vxlab supervise`) so that nothing restarts it, or directly. Done when it was not
/// running.
fn stop_daemon(
    ns: &str,
    pidfile: &Path,
    recorded: Option<u32>,
    program: &str,
    how: Stop,
) -> Result<(), LabError> {
    use super::sys::{self, Signal};
    let in_ns = super::netns::pids(ns)?;
    let Some(daemon) = read_pidfile(pidfile)
        .or(recorded)
        .filter(|&p| sys::alive(p) && in_ns.contains(&p))
        .filter(|&p| sys::comm(p).as_deref() == Some(program))
    else {
        return Ok(());
    };
    let supervisor = sys::ppid(daemon)
        .filter(|&p| in_ns.contains(&p) && sys::comm(p).as_deref() == Some(super::supervise::COMM));
    let all: Vec<u32> = supervisor.into_iter().chain([daemon]).collect();
    match how {
        Stop::Term => {
            // The supervisor passes SIGTERM on to the daemon and waits for it.
            let _ = sys::signal(supervisor.unwrap_or(daemon), Signal::Term);
        }
        Stop::Kill => {
            for &p in &all {
                let _ = sys::signal(p, Signal::Kill);
            }
        }
    }
    let stubborn = sys::wait_gone(&all, STOP_GRACE);
    for &p in &stubborn {
        let _ = sys::signal(p, Signal::Kill);
    }
    let left = sys::wait_gone(&stubborn, STOP_GRACE);
    let _ = std::fs::remove_file(pidfile);
    if left.is_empty() {
        Ok(())
    } else {
        Err(LabError::Leftovers {
            name: ns.to_string(),
            left: format!("{program} {left:?} survived SIGKILL"),
        })
    }
}

/// The lab's etcd client URL.
pub fn endpoint() -> String {
    format!("http://{ETCD_IP}:{CLIENT_PORT}")
}

/// flannel's network config for the lab: its pod network, /24 per node, the vxlan backend with
/// the lab's VNI and port. IPv4 only: pods of a lab with etcd have no IPv6 prefix (see
/// [`LabSpec::ipv6`]).
pub fn network_config(spec: &LabSpec) -> String {
    json!({
        "Network": topo::CLUSTER_NETWORK,
        "SubnetLen": 24,
        "Backend": {"Type": "vxlan", "VNI": topo::VNI, "Port": spec.port},
    })
    .to_string()
}

/// flannel's lease key of a subnet: `10.1.2.0/24` -> `/coreos.com/network/subnets/10.1.2.0-24`.
pub fn subnet_key(subnet: &str) -> String {
    format!("{PREFIX}/subnets/{}", subnet.replace('/', "-"))
}

/// flannel's lease value for a vxlan node.
pub fn lease_value(public_ip: &str, vni: u32, vtep_mac: &str) -> String {
    json!({
        "PublicIP": public_ip,
        "BackendType": "vxlan",
        "BackendData": {"VNI": vni, "VtepMAC": vtep_mac},
    })
    .to_string()
}

/// A program of the system (etcd, etcdctl): PATH, then /usr/bin and /usr/local/bin.
fn find_system(program: &str) -> Result<PathBuf, LabError> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/local/bin"].map(PathBuf::from));
    dirs.iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::BinaryNotFound {
            program: program.to_string(),
            looked: "PATH, /usr/bin and /usr/local/bin; install the packages etcd-server and \
                     etcd-client"
                .into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_config_and_leases_are_flannels() {
        let spec = LabSpec {
            port: 8472,
            ipv6: false,
            ..LabSpec::default()
        };
        let v: serde_json::Value = serde_json::from_str(&network_config(&spec)).unwrap();
        assert_eq!(
            v,
            json!({"Network": "10.1.0.0/16", "SubnetLen": 24,
                   "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}})
        );
        assert_eq!(
            subnet_key("10.1.2.0/24"),
            "/coreos.com/network/subnets/10.1.2.0-24"
        );
        let lease: serde_json::Value =
            serde_json::from_str(&lease_value("198.51.100.2", 1, "02:f1:00:00:00:02")).unwrap();
        assert_eq!(
            lease,
            json!({"PublicIP": "198.51.100.2", "BackendType": "vxlan",
                   "BackendData": {"VNI": 1, "VtepMAC": "02:f1:00:00:00:02"}})
        );
    }

    #[test]
    fn etcd_listens_on_the_underlay_and_keeps_data_in_the_lab() {
        let info = EtcdInfo {
            endpoint: endpoint(),
            netns: "t1-ul".into(),
            dir: PathBuf::from("/run/vxlab/t1/etcd"),
            etcd: PathBuf::from("/usr/bin/etcd"),
            etcdctl: PathBuf::from("/usr/bin/etcdctl"),
            pid: None,
        };
        assert_eq!(info.endpoint, "http://198.51.100.254:2379");
        let args = info.args().join(" ");
        assert!(
            args.contains("--data-dir /run/vxlab/t1/etcd/data"),
            "{args}"
        );
        assert!(
            args.contains("--listen-client-urls http://198.51.100.254:2379"),
            "{args}"
        );
        assert!(
            args.contains("--initial-cluster vxlab=http://127.0.0.1:2380"),
            "{args}"
        );
        let ctl = sh::cmdline(&info.etcdctl());
        assert_eq!(
            ctl,
            "ip netns exec t1-ul env ETCDCTL_API=3 /usr/bin/etcdctl --endpoints \
             http://198.51.100.254:2379 --command-timeout=3s"
        );
    }
}
