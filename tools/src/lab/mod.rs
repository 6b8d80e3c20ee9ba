//! vxlab: N nodes × M pods in network namespaces on one host.
//!
//! A lab is a set of namespaces named after it (`LAB-n1`, `LAB-n1p1`, ..., `LAB-ul`), an
//! underlay between the node namespaces (one veth pair for two nodes, a bridge in `LAB-ul` for
//! any other count), and per node either vxswitchd + vxagent ([`Kind::Vxswitch`]), the Linux
//! vxlan driver programmed as flannel does it ([`Kind::Kernel`]), Open vSwitch's userspace
//! datapath ([`Kind::Ovs`]), or no overlay at all, routed ([`Kind::Plain`], the upper bound of
//! benchmarks). vxswitch and kernel nodes mix; ovs and plain labs are all one kind. Names and addresses are a
//! pure function of the lab name and the indices (see [`topo`]); the description, including
//! the PIDs of the daemons started, lives in `/run/vxlab/LAB/lab.json`.
//!
//! Nothing outside the lab's namespaces is touched: no device, route or sysctl of the root
//! namespace, and only processes the lab started or that live in its namespaces are signalled.
//!
//! ```no_run
//! use tools::lab::{Kind, Lab, LabGuard, LabSpec};
//! let spec = LabSpec { name: "demo".into(), kinds: vec![Kind::Kernel], ..LabSpec::default() };
//! let lab = LabGuard(Lab::up(&spec)?); // torn down when `lab` goes out of scope
//! let ok = lab.command("n1p1", "ping").args(["-c", "1", "10.1.2.2"]).status()?.success();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
pub mod etcd;
mod kernel;
mod netns;
pub mod ovs;
mod plain;
mod sh;
pub mod supervise;
mod sys;
pub mod topo;
pub mod vxswitch;

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use error::LabError;
pub use sh::set_verbose;
pub use sys::is_root;
pub use topo::Kind;
use vxswitch::{Bins, SwitchOrAgent};

/// Where labs keep their runtime files: `/run/vxlab/LAB/`.
pub const RUN_ROOT: &str = "/run/vxlab";
/// Version of the lab.json layout.
const FORMAT: u32 = 1;
/// How long processes get to exit after SIGTERM, and after SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
const KILL_GRACE: Duration = Duration::from_secs(3);
/// How many namespaces are set up at once.
const PARALLEL: usize = 8;

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSpec {
    /// 1-8 characters `a-z0-9`; prefixes every namespace name.
    pub name: String,
    /// 1..=200.
    pub nodes: usize,
    /// Pods per node, 0..=200.
    pub pods: usize,
    /// One kind per node, or one kind for all (an empty list means all vxswitch).
    pub kinds: Vec<Kind>,
    /// VXLAN UDP destination port.
    pub port: u16,
    /// vxswitchd worker threads (its own default when `None`).
    pub workers: Option<usize>,
    /// IPv6 inside the pods; when false it is disabled before the pod's interface exists.
    /// When true, vxswitch nodes of a lab without etcd are dual stack: every node gets an IPv6 pod prefix
    /// (`fd00:10:1:{i}::/64`, gateway `::1`) and every pod an IPv6 address in it.
    pub ipv6: bool,
    /// vxswitchd's `--offload on|off`.
    pub offload: bool,
    /// More arguments for every vxswitchd (e.g. `--masquerade`).
    #[serde(default)]
    pub switch_args: Vec<String>,
    /// The agents install OpenShift-SDN's multitenant flows.
    #[serde(default)]
    pub multitenant: bool,
    /// VNID of pod j (0-based) on every node; pods beyond the list carry none.
    #[serde(default)]
    pub pod_vnids: Vec<u32>,
    /// TSO in the pods. When false, every pod's `eth0` (and the node end of its veth) has TX
    /// checksum offload, hence TSO, off (`ethtool -K eth0 tx off`): every system then carries
    /// MTU-sized frames, the per-frame comparison. ovs pods always have it off.
    #[serde(default = "yes")]
    pub tso: bool,
    /// An IPv6 underlay: every node's `eth0` also gets `2001:db8::{i}/64`, which becomes its
    /// VTEP (vxswitch and kernel nodes only; kernel nodes send with `udp6zerocsumtx`, as
    /// deployments that avoid the checksum cost do). Pods get 20 bytes less MTU.
    #[serde(default)]
    pub underlay6: bool,
    /// TX checksum offload on the underlay veths. Off (the default), every frame crosses the
    /// underlay complete and MTU-sized, as on a wire, and the sender's kernel segments in
    /// software; on, large frames cross whole and the receiver segments them, which costs what
    /// a NIC with TSO and GRO costs (the set-up the reference baselines were measured with).
    /// ovs nodes keep it off on their own `eth0` (an AF_PACKET port).
    #[serde(default)]
    pub underlay_offload: bool,
    /// Cluster mode: an etcd for the lab in `LAB-ul` (see [`etcd`]), flannel's network config
    /// in it, and every vxagent in cluster mode against it, leasing the subnet the lab planned
    /// for its node and learning the other nodes from etcd. The underlay is then always a
    /// bridge (etcd sits on it). vxswitch and kernel nodes only; kernel nodes' leases are
    /// written by vxlab as flannel writes them.
    #[serde(default)]
    pub etcd: bool,
    /// The TTL in seconds of the agents' leases in a lab with etcd (`--lease-ttl`).
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: u32,
}

fn yes() -> bool {
    true
}

fn default_lease_ttl() -> u32 {
    etcd::DEFAULT_LEASE_TTL
}

impl Default for LabSpec {
    fn default() -> LabSpec {
        LabSpec {
            name: "vxlab".to_string(),
            nodes: 2,
            pods: 2,
            kinds: vec![Kind::Vxswitch],
            port: 4789,
            workers: None,
            ipv6: true,
            offload: true,
            switch_args: Vec::new(),
            multitenant: false,
            pod_vnids: Vec::new(),
            tso: true,
            underlay_offload: false,
            underlay6: false,
            etcd: false,
            lease_ttl: etcd::DEFAULT_LEASE_TTL,
        }
    }
}

impl LabSpec {
    /// Checks every field; the error says which value to change.
    pub fn validate(&self) -> Result<(), LabError> {
        topo::validate_name(&self.name)?;
        if !(1..=topo::MAX_NODES).contains(&self.nodes) {
            return Err(LabError::BadSpec(format!(
                "{} nodes: a lab has 1 to {} nodes",
                self.nodes,
                topo::MAX_NODES
            )));
        }
        if self.pods > topo::MAX_PODS {
            return Err(LabError::BadSpec(format!(
                "{} pods per node: a node has at most {} pods",
                self.pods,
                topo::MAX_PODS
            )));
        }
        topo::kind_of(&self.kinds, self.nodes, 1)?;
        let kinds: Vec<Kind> = (1..=self.nodes).map(|i| self.kind_of(i)).collect();
        for (i, &a) in kinds.iter().enumerate() {
            if let Some(&b) = kinds[i + 1..].iter().find(|&&b| !a.mixes_with(b)) {
                return Err(LabError::BadSpec(format!(
                    "kinds {a} and {b} cannot share a lab: an ovs lab is all ovs and a plain lab \
                     all plain (only vxswitch and kernel nodes mix)"
                )));
            }
        }
        if self.underlay6 {
            if let Some(k) = kinds
                .iter()
                .find(|k| !matches!(k, Kind::Vxswitch | Kind::Kernel))
            {
                return Err(LabError::BadSpec(format!(
                    "an IPv6 underlay takes vxswitch and kernel nodes only, not {k}"
                )));
            }
        }
        if self.etcd {
            if let Some(k) = kinds
                .iter()
                .find(|k| !matches!(k, Kind::Vxswitch | Kind::Kernel))
            {
                return Err(LabError::BadSpec(format!(
                    "a lab with etcd takes vxswitch and kernel nodes only, not {k}"
                )));
            }
            if self.underlay6 {
                return Err(LabError::BadSpec(
                    "a lab with etcd has an IPv4 underlay: leave out --underlay6".into(),
                ));
            }
            if !(2..=86_400).contains(&self.lease_ttl) {
                return Err(LabError::BadSpec(format!(
                    "lease TTL of {} s: use 2 to 86400 seconds",
                    self.lease_ttl
                )));
            }
        }
        if self.port == 0 {
            return Err(LabError::BadSpec(
                "VXLAN port 0: use 1-65535 (usually 4789)".into(),
            ));
        }
        if self.workers == Some(0) {
            return Err(LabError::BadSpec(
                "0 workers: give at least 1, or leave it out".into(),
            ));
        }
        Ok(())
    }

    /// The kind of node `i` (1-based).
    pub fn kind_of(&self, i: usize) -> Kind {
        topo::kind_of(&self.kinds, self.nodes, i).unwrap_or_default()
    }
}

/// One pod: a namespace with one interface `eth0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInfo {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// The pod's IPv6 address (dual-stack labs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
}

/// One node: a namespace with the underlay `eth0` and the node's switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    /// 1-based index: the last octet of the VTEP address.
    pub index: usize,
    pub netns: String,
    pub kind: Kind,
    pub vtep: Ipv4Addr,
    /// The IPv6 underlay address, which is then the node's VTEP (labs with `underlay6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep6: Option<Ipv6Addr>,
    pub vtep_mac: String,
    /// MAC of the underlay `eth0`.
    pub underlay_mac: String,
    pub subnet: String,
    pub gateway: Ipv4Addr,
    /// The node's IPv6 pod prefix (dual-stack labs: vxswitch nodes with `ipv6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    /// vxswitchd's control socket (vxswitch nodes).
    pub socket: Option<PathBuf>,
    /// `/run/vxlab/LAB/n{i}/`.
    pub dir: PathBuf,
    pub pods: Vec<PodInfo>,
    /// PID of vxswitchd (vxswitch nodes, once started).
    #[serde(default)]
    pub switch_pid: Option<u32>,
    /// PID of vxagent (vxswitch nodes, once started).
    #[serde(default)]
    pub agent_pid: Option<u32>,
    /// PID of ovs-vswitchd (ovs nodes, once started).
    #[serde(default)]
    pub ovs_vswitchd_pid: Option<u32>,
    /// PID of ovsdb-server (ovs nodes, once started).
    #[serde(default)]
    pub ovsdb_server_pid: Option<u32>,
}

/// How the node namespaces are wired together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Underlay {
    /// Two nodes: one veth pair, `eth0` at both ends.
    Veth,
    /// Any other count: bridge `ul0` in `LAB-ul`, one veth per node.
    Bridge,
}

/// A lab: its description, as created by [`Lab::up`] or loaded from lab.json. Dropping it
/// leaves the lab running; [`Lab::down`] (or a [`LabGuard`]) removes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lab {
    format: u32,
    pub name: String,
    spec: LabSpec,
    underlay: Underlay,
    dir: PathBuf,
    /// The vxswitch binaries the lab runs (when it has vxswitch nodes).
    #[serde(default)]
    bins: Option<Bins>,
    nodes: Vec<NodeInfo>,
    /// The lab's etcd (labs with `etcd`, once up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etcd: Option<etcd::EtcdInfo>,
}

/// What [`Lab::teardown`] found and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    /// False if there was no trace of the lab: no state directory and no namespace.
    pub existed: bool,
    /// Namespaces removed.
    pub namespaces: Vec<String>,
    /// Processes signalled.
    pub killed: Vec<u32>,
}

/// A lab as [`Lab::list`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// lab.json exists (false: namespaces left by a crash; `vxlab down` removes them).
    pub state_file: bool,
    /// How many of its namespaces exist.
    pub namespaces: usize,
}

/// The runtime directory of a lab.
pub fn lab_dir(name: &str) -> PathBuf {
    Path::new(RUN_ROOT).join(name)
}

fn state_file(name: &str) -> PathBuf {
    lab_dir(name).join("lab.json")
}

/// Where a failed `up` leaves the daemons' logs: `/run/vxlab/LAB.failed/`.
fn failed_dir(name: &str) -> PathBuf {
    Path::new(RUN_ROOT).join(format!("{name}.failed"))
}

impl Lab {
    /// The description of the lab `spec` asks for, without building anything.
    pub fn plan(spec: &LabSpec) -> Result<Lab, LabError> {
        spec.validate()?;
        let name = spec.name.as_str();
        let dir = lab_dir(name);
        let nodes = (1..=spec.nodes)
            .map(|i| {
                let kind = spec.kind_of(i);
                let node_dir = dir.join(topo::node_name(i));
                // Not yet with etcd: the agent leases a /64 of its own choosing, not the
                // node's planned prefix its pods' addresses are in.
                let dual = spec.ipv6 && kind == Kind::Vxswitch && !spec.etcd;
                NodeInfo {
                    name: topo::node_name(i),
                    index: i,
                    netns: topo::node_netns(name, i),
                    kind,
                    vtep: topo::underlay_ip(i),
                    vtep6: spec.underlay6.then(|| topo::underlay_ip6(i)),
                    vtep_mac: topo::vtep_mac(i),
                    underlay_mac: topo::underlay_mac(i),
                    subnet: topo::subnet(i),
                    gateway: topo::gateway(i),
                    subnet6: dual.then(|| topo::subnet6(i)),
                    socket: (kind == Kind::Vxswitch).then(|| vxswitch::socket_path(&node_dir)),
                    dir: node_dir,
                    pods: (1..=spec.pods)
                        .map(|j| PodInfo {
                            name: topo::pod_name(i, j),
                            netns: topo::pod_netns(name, i, j),
                            ip: topo::pod_ip(i, j),
                            mac: topo::pod_mac(i, j),
                            ip6: dual.then(|| topo::pod_ip6(i, j)),
                        })
                        .collect(),
                    switch_pid: None,
                    agent_pid: None,
                    ovs_vswitchd_pid: None,
                    ovsdb_server_pid: None,
                }
            })
            .collect();
        Ok(Lab {
            format: FORMAT,
            name: name.to_string(),
            spec: spec.clone(),
            underlay: if spec.nodes == 2 && !spec.etcd {
                Underlay::Veth
            } else {
                Underlay::Bridge
            },
            dir,
            bins: None,
            nodes,
            etcd: None,
        })
    }

    /// Builds the lab. Fails if a lab of that name exists; on any failure removes whatever was
    /// built and returns the reason.
    pub fn up(spec: &LabSpec) -> Result<Lab, LabError> {
        let mut lab = Lab::plan(spec)?;
        if !sys::is_root() {
            return Err(LabError::NotRoot("build a lab"));
        }
        if state_file(&lab.name).exists() || !lab_namespaces(&lab.name)?.is_empty() {
            return Err(LabError::AlreadyUp(lab.name));
        }
        if lab.nodes.iter().any(|n| n.kind == Kind::Vxswitch) {
            lab.bins = Some(Bins::find()?);
        }
        if lab.nodes.iter().any(|n| n.kind == Kind::Ovs) {
            ovs::check_installed()?;
        }
        if spec.etcd {
            lab.etcd = Some(etcd::EtcdInfo::plan(&lab.name, &lab.dir)?);
        }
        let _ = fs::remove_dir_all(failed_dir(&lab.name));
        fs::create_dir_all(&lab.dir).map_err(|source| LabError::Io {
            what: "cannot create the lab directory",
            path: lab.dir.clone(),
            source,
        })?;
        match lab.build().and_then(|()| lab.save()) {
            Ok(()) => Ok(lab),
            Err(up) => {
                let up = lab.keep_logs(up);
                match teardown(&lab.name, false) {
                    Ok(_) => Err(up),
                    Err(down) => Err(LabError::UpAndDown {
                        up: Box::new(up),
                        down: Box::new(down),
                    }),
                }
            }
        }
    }

    /// Copies the daemons' files of a failed `up` to `/run/vxlab/LAB.failed/`, which outlives
    /// the teardown, and points the error there.
    fn keep_logs(&self, err: LabError) -> LabError {
        let keep = failed_dir(&self.name);
        if let Some(e) = &self.etcd {
            let from = e.log();
            if from.exists() && fs::create_dir_all(keep.join("etcd")).is_ok() {
                let _ = fs::copy(&from, keep.join("etcd").join("etcd.log"));
            }
        }
        for node in self.nodes.iter().filter(|n| n.kind == Kind::Vxswitch) {
            let to = keep.join(&node.name);
            for file in ["vxswitchd.log", "vxagent.log", "agent.toml", "subnet.env"] {
                let from = node.dir.join(file);
                if from.exists() && fs::create_dir_all(&to).is_ok() {
                    let _ = fs::copy(&from, to.join(file));
                }
            }
        }
        for node in self.nodes.iter().filter(|n| n.kind == Kind::Ovs) {
            let to = ovs::ovs_dir(&keep.join(&node.name));
            for program in [ovs::VSWITCHD, ovs::OVSDB] {
                let from = ovs::log_file(&node.dir, program);
                if from.exists() && fs::create_dir_all(&to).is_ok() {
                    let _ = fs::copy(&from, to.join(format!("{program}.log")));
                }
            }
        }
        let moved = |log: PathBuf| match log.strip_prefix(&self.dir) {
            Ok(rel) if keep.join(rel).exists() => keep.join(rel),
            _ => log,
        };
        match err {
            LabError::DaemonDied {
                program,
                node,
                status,
                log,
                tail,
            } => LabError::DaemonDied {
                program,
                node,
                status,
                log: moved(log),
                tail,
            },
            LabError::NotReady {
                program,
                node,
                secs,
                detail,
                log,
                tail,
            } => LabError::NotReady {
                program,
                node,
                secs,
                detail,
                log: moved(log),
                tail,
            },
            other => other,
        }
    }

    /// Loads the description of a running lab from `/run/vxlab/NAME/lab.json`.
    pub fn load(name: &str) -> Result<Lab, LabError> {
        topo::validate_name(name)?;
        let path = state_file(name);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LabError::NotUp {
                    name: name.to_string(),
                    path,
                });
            }
            Err(source) => {
                return Err(LabError::Io {
                    what: "cannot read",
                    path,
                    source,
                });
            }
        };
        let lab: Lab = serde_json::from_str(&text).map_err(|e| LabError::State {
            name: name.to_string(),
            path: path.clone(),
            message: e.to_string(),
        })?;
        if lab.format != FORMAT || lab.name != name {
            return Err(LabError::State {
                name: name.to_string(),
                path,
                message: format!(
                    "format {} of lab {:?}, expected format {FORMAT}",
                    lab.format, lab.name
                ),
            });
        }
        Ok(lab)
    }

    /// Removes everything the lab made; see [`Lab::teardown`].
    pub fn down(name: &str) -> Result<(), LabError> {
        Lab::teardown(name).map(drop)
    }

    /// Removes every namespace, device, process and file of lab `name`, also when lab.json is
    /// gone or stale: the lab's namespaces are found by name (`ip netns list`), the processes
    /// in them by `ip netns pids`, and they get SIGTERM, then SIGKILL after a bounded wait.
    /// Idempotent: a lab that does not exist is reported with `existed: false`.
    pub fn teardown(name: &str) -> Result<DownReport, LabError> {
        teardown(name, true)
    }

    /// Every lab with a state file or a namespace, sorted by name.
    pub fn list() -> Result<Vec<Listed>, LabError> {
        let mut labs: std::collections::BTreeMap<String, Listed> = Default::default();
        if let Ok(entries) = fs::read_dir(RUN_ROOT) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if topo::validate_name(&name).is_ok() && e.path().join("lab.json").exists() {
                    labs.insert(
                        name.clone(),
                        Listed {
                            name,
                            state_file: true,
                            namespaces: 0,
                        },
                    );
                }
            }
        }
        for ns in netns::list()? {
            if let Some(lab) = topo::lab_of_netns(&ns) {
                let entry = labs.entry(lab.to_string()).or_insert_with(|| Listed {
                    name: lab.to_string(),
                    state_file: false,
                    namespaces: 0,
                });
                entry.namespaces += 1;
            }
        }
        Ok(labs.into_values().collect())
    }

    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    pub fn underlay(&self) -> Underlay {
        self.underlay
    }

    /// `/run/vxlab/LAB/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn pod(&self, name: &str) -> Option<&PodInfo> {
        self.nodes
            .iter()
            .flat_map(|n| &n.pods)
            .find(|p| p.name == name)
    }

    /// The namespace of a node (`n1`), a pod (`n1p1`), or the underlay bridge (`ul`, labs
    /// with a bridge underlay).
    pub fn netns_of(&self, target: &str) -> Option<String> {
        if let Some(n) = self.node(target) {
            return Some(n.netns.clone());
        }
        if let Some(p) = self.pod(target) {
            return Some(p.netns.clone());
        }
        (target == topo::UNDERLAY_NS_SUFFIX && self.underlay == Underlay::Bridge)
            .then(|| topo::underlay_netns(&self.name))
    }

    /// `ip netns exec NS program`, for a target of [`Lab::netns_of`]; add arguments and run it.
    ///
    /// # Panics
    /// If the lab has no such target: that is a bug in the caller.
    pub fn command(&self, target: &str, program: &str) -> Command {
        let ns = self.netns_of(target).unwrap_or_else(|| {
            panic!(
                "{}",
                LabError::UnknownTarget {
                    lab: self.name.clone(),
                    target: target.into()
                }
            )
        });
        sh::netns_exec(&ns, program)
    }

    /// The namespace of a target, or an error naming the valid targets.
    pub fn require_netns(&self, target: &str) -> Result<String, LabError> {
        self.netns_of(target)
            .ok_or_else(|| LabError::UnknownTarget {
                lab: self.name.clone(),
                target: target.to_string(),
            })
    }

    /// The control socket of a vxswitch node.
    pub fn socket(&self, node: &str) -> Result<&Path, LabError> {
        let n = self.node(node).ok_or_else(|| LabError::UnknownTarget {
            lab: self.name.clone(),
            target: node.to_string(),
        })?;
        n.socket.as_deref().ok_or_else(|| LabError::NotVxswitch {
            lab: self.name.clone(),
            node: node.to_string(),
            kind: n.kind.to_string(),
        })
    }

    /// A control connection to a vxswitch node's switch.
    pub fn ctl(&self, node: &str) -> Result<controlplane::client::Client, LabError> {
        let socket = self.socket(node)?;
        controlplane::client::Client::connect(socket, "vxlab").map_err(|source| LabError::Control {
            node: node.to_string(),
            source,
        })
    }

    /// The PID of a node's vxswitchd: the one its supervisor runs now, else as recorded.
    pub fn switch_pid(&self, node: &str) -> Option<u32> {
        let n = self.node(node)?;
        supervise::read_pidfile(&supervise::pidfile(&n.dir, vxswitch::SWITCHD)).or(n.switch_pid)
    }

    /// The PID of a node's vxagent: the one its supervisor runs now, else as recorded.
    pub fn agent_pid(&self, node: &str) -> Option<u32> {
        let n = self.node(node)?;
        supervise::read_pidfile(&supervise::pidfile(&n.dir, vxswitch::AGENT)).or(n.agent_pid)
    }

    /// The userspace switch processes of the lab, as recorded: vxswitchd of vxswitch nodes,
    /// ovs-vswitchd of ovs nodes (kernel and plain nodes have none). For CPU accounting.
    pub fn switch_processes(&self) -> Vec<(String, u32)> {
        self.nodes
            .iter()
            .filter_map(|n| match n.kind {
                Kind::Vxswitch => self.switch_pid(&n.name).map(|p| (n.name.clone(), p)),
                Kind::Ovs => n.ovs_vswitchd_pid.map(|p| (n.name.clone(), p)),
                Kind::Kernel | Kind::Plain => None,
            })
            .collect()
    }

    /// The MTU of the lab's pods: 1500 in a plain lab, 1450 under an overlay.
    pub fn pod_mtu(&self) -> u16 {
        let mtu = self.spec.kind_of(1).pod_mtu();
        if self.spec.underlay6 {
            mtu - topo::IPV6_EXTRA_OVERHEAD
        } else {
            mtu
        }
    }

    /// `{"name", "nodes": [{"name", "netns", "kind", "vtep", "vtep_mac", "subnet",
    /// "pods": [{"name", "netns", "ip", "mac"}]}]}`; dual-stack nodes add "subnet6" and their
    /// pods "ip6"; vxswitch nodes "ovs_rundir" (where ovs-ofctl finds br0.mgmt).
    pub fn status_json(&self) -> serde_json::Value {
        self.status_value()
    }

    /// Where OVS's tools find vxswitch node `node` (its vxswitchd's --ovs-rundir: br0.mgmt
    /// for ovs-ofctl, ovs-vswitchd.pid for ovs-appctl); `None` for other kinds of node.
    pub fn ovs_rundir(&self, node: &str) -> Option<PathBuf> {
        self.nodes
            .iter()
            .find(|n| n.name == node && n.kind == Kind::Vxswitch)
            .map(|n| vxswitch::ovs_rundir(&n.dir))
    }

    fn status_value(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .map(|n| {
                let pods: Vec<serde_json::Value> = n
                    .pods
                    .iter()
                    .map(|p| {
                        let mut v =
                            json!({"name": p.name, "netns": p.netns, "ip": p.ip, "mac": p.mac});
                        if let Some(ip6) = p.ip6 {
                            v["ip6"] = json!(ip6);
                        }
                        v
                    })
                    .collect();
                let mut v = json!({
                    "name": n.name,
                    "netns": n.netns,
                    "kind": n.kind,
                    "vtep": n.vtep,
                    "vtep_mac": n.vtep_mac,
                    "subnet": n.subnet,
                    "pods": pods,
                });
                if let Some(s6) = &n.subnet6 {
                    v["subnet6"] = json!(s6);
                }
                if let Some(v6) = n.vtep6 {
                    v["vtep6"] = json!(v6);
                }
                if n.kind == Kind::Vxswitch {
                    v["ovs_rundir"] = json!(vxswitch::ovs_rundir(&n.dir));
                }
                v
            })
            .collect();
        let mut v = json!({"name": self.name, "nodes": nodes});
        if let Some(e) = self.etcd() {
            v["etcd"] = json!(e);
        }
        v
    }

    /// The topology as a table for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let underlay = match self.underlay {
            Underlay::Veth => "veth pair".to_string(),
            Underlay::Bridge => {
                format!(
                    "bridge {} in {}",
                    topo::UNDERLAY_BRIDGE,
                    topo::underlay_netns(&self.name)
                )
            }
        };
        let overlay = if self.spec.kind_of(1) == Kind::Plain {
            "no overlay (routed)".to_string()
        } else {
            format!("VXLAN VNI {} port {}", topo::VNI, self.spec.port)
        };
        let _ = writeln!(
            out,
            "lab {}: {} nodes x {} pods, underlay {underlay} (198.51.100.0/24), {overlay}, pod MTU {}{}",
            self.name,
            self.nodes.len(),
            self.spec.pods,
            self.pod_mtu(),
            match (self.spec.tso, self.spec.underlay_offload) {
                (true, false) => "",
                (false, false) => ", TSO off in the pods",
                (true, true) => ", underlay offload on",
                (false, true) => ", TSO off in the pods, underlay offload on",
            }
        );
        let w = self
            .nodes
            .iter()
            .flat_map(|n| std::iter::once(&n.netns).chain(n.pods.iter().map(|p| &p.netns)))
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max(5);
        let _ = writeln!(
            out,
            "{:<10} {:<9} {:<w$} {:<15} {:<18} SUBNET/PIDS",
            "NODE/POD", "KIND", "NETNS", "VTEP/IP", "VTEP MAC/MAC"
        );
        for n in &self.nodes {
            let pid = |p: Option<u32>| p.map_or("-".into(), |p| p.to_string());
            let extra = match (n.switch_pid, n.agent_pid) {
                _ if n.kind == Kind::Ovs => format!(
                    "  ovs-vswitchd {} ovsdb-server {}",
                    pid(n.ovs_vswitchd_pid),
                    pid(n.ovsdb_server_pid)
                ),
                (None, None) => String::new(),
                (s, a) => format!("  vxswitchd {} vxagent {}", pid(s), pid(a)),
            };
            let _ = writeln!(
                out,
                "{:<10} {:<9} {:<w$} {:<15} {:<18} {}{extra}",
                n.name,
                n.kind,
                n.netns,
                n.vtep,
                n.vtep_mac,
                match &n.subnet6 {
                    Some(s6) => format!("{} {s6}", n.subnet),
                    None => n.subnet.clone(),
                }
            );
            for p in &n.pods {
                let _ = writeln!(
                    out,
                    "  {:<8} {:<9} {:<w$} {:<15} {}{}",
                    p.name,
                    "pod",
                    p.netns,
                    p.ip,
                    p.mac,
                    p.ip6.map(|a| format!(" {a}")).unwrap_or_default()
                );
            }
        }
        if let Some(n) = self.nodes.iter().find(|n| n.kind == Kind::Vxswitch) {
            let _ = writeln!(
                out,
                "vxswitch files: {}/ (socket, agent.toml, state.json, logs)",
                n.dir.display()
            );
            let _ = writeln!(
                out,
                "OpenFlow of {}: OVS_RUNDIR={} ovs-ofctl -O OpenFlow13 dump-flows br0",
                n.name,
                vxswitch::ovs_rundir(&n.dir).display()
            );
        }
        if let Some(n) = self.nodes.iter().find(|n| n.kind == Kind::Ovs) {
            let _ = writeln!(out, "ovs of {}: {}", n.name, ovs::hint(n));
        }
        if let Some(e) = self.etcd() {
            let _ = writeln!(
                out,
                "etcd: {e} in {} (agents lease their subnet for {} s); the leases: vxlab etcdctl \
                 --name {} -- get --prefix {}/subnets",
                topo::underlay_netns(&self.name),
                self.spec.lease_ttl,
                self.name,
                etcd::PREFIX
            );
        }
        out
    }

    /// Kills a node's vxswitchd (SIGKILL to its recorded PID), starts it again with the same
    /// arguments, waits for hello, and records the new PID.
    pub fn restart_switch(&mut self, node: &str) -> Result<(), LabError> {
        let idx = self
            .nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| LabError::UnknownTarget {
                lab: self.name.clone(),
                target: node.to_string(),
            })?;
        self.socket(node)?;
        let bins = match &self.bins {
            Some(b) => b.clone(),
            None => Bins::find()?,
        };
        let info = &self.nodes[idx];
        let pidfile = supervise::pidfile(&info.dir, vxswitch::SWITCHD);
        if let Some(old) = supervise::read_pidfile(&pidfile).filter(|&p| sys::alive(p)) {
            // Supervised: kill it, and its supervisor starts it again with the same arguments.
            if netns::pids(&info.netns)?.contains(&old) {
                let _ = sys::signal(old, sys::Signal::Kill);
            }
            let socket = vxswitch::socket_path(&info.dir);
            let log = vxswitch::switch_log(&info.dir);
            let pid = vxswitch::wait_restarted(node, &pidfile, old, &socket, &log)?;
            self.nodes[idx].switch_pid = Some(pid);
            return self.save();
        }
        if let Some(pid) = info.switch_pid {
            // Only if that PID still lives in the node's namespace: it may have been reused.
            if sys::alive(pid) && netns::pids(&info.netns)?.contains(&pid) {
                let _ = sys::signal(pid, sys::Signal::Kill);
                if !sys::wait_gone(&[pid], KILL_GRACE).is_empty() {
                    return Err(LabError::Leftovers {
                        name: self.name.clone(),
                        left: format!("vxswitchd {pid} of {node} survived SIGKILL"),
                    });
                }
            }
        }
        let args = vxswitch::switch_args(self, info);
        let log = vxswitch::switch_log(&info.dir);
        let mut child = vxswitch::spawn_daemon(&info.netns, &bins.vxswitchd, &args, &log)?;
        let pid = child.id();
        let ready = vxswitch::wait_hello(node, &mut child, &vxswitch::socket_path(&info.dir), &log);
        vxswitch::detach(child);
        self.nodes[idx].switch_pid = Some(pid);
        self.save()?;
        ready
    }

    /// Writes lab.json (atomically: a temporary file renamed over it).
    fn save(&self) -> Result<(), LabError> {
        let path = state_file(&self.name);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("lab serialises");
        fs::write(&tmp, text + "\n")
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|source| LabError::Io {
                what: "cannot write",
                path,
                source,
            })
    }

    /// Builds namespaces, underlay and nodes; [`Lab::up`] cleans up when this fails.
    fn build(&mut self) -> Result<(), LabError> {
        let spec = self.spec.clone();
        // The first `ip netns add` may have to set /run/netns up; let it do so alone.
        let first = match self.underlay {
            Underlay::Bridge => topo::underlay_netns(&self.name),
            Underlay::Veth => self.nodes[0].netns.clone(),
        };
        netns::add(&first)?;

        // Node and pod namespaces.
        parallel(&self.nodes, |node| {
            if node.netns != first {
                netns::add(&node.netns)?;
            }
            let mut settings = vec![("net.ipv4.ip_forward".to_string(), "1")];
            for ifname in ["all", "default", "lo"] {
                settings.push((sh::ipv4_conf(ifname, "rp_filter"), "0"));
            }
            sh::sysctl(&node.netns, &settings)?;
            fs::create_dir_all(&node.dir).map_err(|source| LabError::Io {
                what: "cannot create the node directory",
                path: node.dir.clone(),
                source,
            })?;
            for pod in &node.pods {
                netns::add(&pod.netns)?;
                if !spec.ipv6 {
                    // Before the pod's interface exists, so it never gets an IPv6 address.
                    sh::sysctl(
                        &pod.netns,
                        &[
                            ("net.ipv6.conf.all.disable_ipv6".to_string(), "1"),
                            ("net.ipv6.conf.default.disable_ipv6".to_string(), "1"),
                        ],
                    )?;
                }
            }
            Ok(())
        })?;

        self.build_underlay()?;
        self.start_etcd_first()?;

        parallel(&self.nodes, |node| match node.kind {
            Kind::Kernel => kernel::setup_node(self, node),
            Kind::Plain => plain::setup_node(self, node),
            Kind::Ovs => ovs::setup_node(self, node),
            Kind::Vxswitch => {
                let path = vxswitch::agent_path(&node.dir);
                fs::write(&path, vxswitch::agent_toml(self, node)).map_err(|source| LabError::Io {
                    what: "cannot write",
                    path,
                    source,
                })
            }
        })?;
        for node in self.nodes.iter_mut().filter(|n| n.kind == Kind::Ovs) {
            (node.ovs_vswitchd_pid, node.ovsdb_server_pid) = ovs::recorded_pids(&node.dir);
        }

        self.start_daemons()?;
        parallel(&self.nodes, |node| self.pods_tx_off(node))
    }

    /// TX checksum offload (hence TSO) off in the pods when the spec says so, and always in
    /// ovs pods (done by their setup): on the pod's `eth0` — a veth, or vxswitchd's TAP once
    /// the agent has moved it in — and on the node end of a veth.
    fn pods_tx_off(&self, node: &NodeInfo) -> Result<(), LabError> {
        if self.spec.tso || node.kind == Kind::Ovs {
            return Ok(());
        }
        for pod in &node.pods {
            sh::tx_off(&pod.netns, "eth0")?;
            if node.kind != Kind::Vxswitch {
                sh::tx_off(&node.netns, &format!("v{}", pod.name))?;
            }
        }
        Ok(())
    }

    /// The underlay: a veth pair for two nodes, otherwise a bridge in `LAB-ul`. Every veth end
    /// has TX checksum offload off, so a frame crosses it complete, as on a real wire — unless
    /// the spec asks for `underlay_offload`.
    fn build_underlay(&self) -> Result<(), LabError> {
        let ul = topo::underlay_netns(&self.name);
        match self.underlay {
            Underlay::Veth => {
                let peer = &self.nodes[1].netns;
                sh::ip(
                    Some(&self.nodes[0].netns),
                    &[
                        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
                        peer,
                    ],
                )?;
            }
            Underlay::Bridge => {
                let mut b = sh::Batch::ip(&ul);
                b.add(format!("link add {} type bridge", topo::UNDERLAY_BRIDGE))
                    .add(format!("link set {} up", topo::UNDERLAY_BRIDGE));
                for n in &self.nodes {
                    let port = topo::underlay_port(n.index);
                    b.add(format!(
                        "link add {port} type veth peer name eth0 netns {}",
                        n.netns
                    ))
                    .add(format!(
                        "link set {port} master {} up",
                        topo::UNDERLAY_BRIDGE
                    ));
                }
                b.run()?;
            }
        }
        parallel(&self.nodes, |n| {
            let mut b = sh::Batch::ip(&n.netns);
            b.add(format!(
                "link set eth0 address {} mtu {} up",
                n.underlay_mac,
                topo::UNDERLAY_MTU
            ))
            .add(format!(
                "addr add {}/{} dev eth0",
                n.vtep,
                topo::UNDERLAY_PREFIX
            ));
            if let Some(v6) = n.vtep6 {
                b.add(format!("addr add {v6}/64 dev eth0 nodad"));
            }
            b.run()?;
            sh::sysctl(&n.netns, &[(sh::ipv4_conf("eth0", "rp_filter"), "0")])?;
            if !self.spec.underlay_offload {
                sh::tx_off(&n.netns, "eth0")?;
                if self.underlay == Underlay::Bridge {
                    sh::tx_off(&ul, &topo::underlay_port(n.index))?;
                }
            }
            Ok(())
        })
    }

    /// Starts vxswitchd on every vxswitch node and waits for hello, then vxagent and waits for
    /// the pods' ports. Every child is handed to a reaper thread whatever happens.
    fn start_daemons(&mut self) -> Result<(), LabError> {
        let Some(bins) = self.bins.clone() else {
            return Ok(());
        };
        let idxs: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].kind == Kind::Vxswitch)
            .collect();
        let mut switches: Vec<(usize, Child)> = Vec::new();
        let mut agents: Vec<(usize, Child)> = Vec::new();
        let result = (|| {
            for &i in &idxs {
                let node = &self.nodes[i];
                let args = vxswitch::switch_args(self, node);
                let log = vxswitch::switch_log(&node.dir);
                let pidfile = supervise::pidfile(&node.dir, vxswitch::SWITCHD);
                let child = vxswitch::spawn_node_daemon(
                    &node.netns,
                    &bins,
                    SwitchOrAgent::Switch,
                    &args,
                    &log,
                    &pidfile,
                )?;
                self.nodes[i].switch_pid = Some(child.id());
                switches.push((i, child));
            }
            for (i, child) in &mut switches {
                let node = &self.nodes[*i];
                let log = vxswitch::switch_log(&node.dir);
                vxswitch::wait_hello(&node.name, child, &vxswitch::socket_path(&node.dir), &log)?;
            }
            for &i in &idxs {
                let node = &self.nodes[i];
                let args = vxswitch::agent_args(self, node);
                let log = vxswitch::agent_log(&node.dir);
                let pidfile = supervise::pidfile(&node.dir, vxswitch::AGENT);
                let child = vxswitch::spawn_node_daemon(
                    &node.netns,
                    &bins,
                    SwitchOrAgent::Agent,
                    &args,
                    &log,
                    &pidfile,
                )?;
                self.nodes[i].agent_pid = Some(child.id());
                agents.push((i, child));
            }
            for ((i, switch), (_, agent)) in switches.iter_mut().zip(agents.iter_mut()) {
                vxswitch::wait_ports_up(&self.nodes[*i], switch, agent)?;
            }
            if self.etcd.is_some() {
                self.wait_mesh()?;
            }
            // Supervised daemons: record the daemons' own PIDs, not their supervisors'.
            for &i in &idxs {
                let dir = self.nodes[i].dir.clone();
                if let Some(p) =
                    supervise::read_pidfile(&supervise::pidfile(&dir, vxswitch::SWITCHD))
                {
                    self.nodes[i].switch_pid = Some(p);
                }
                if let Some(p) = supervise::read_pidfile(&supervise::pidfile(&dir, vxswitch::AGENT))
                {
                    self.nodes[i].agent_pid = Some(p);
                }
            }
            Ok(())
        })();
        for (_, child) in switches.into_iter().chain(agents) {
            vxswitch::detach(child);
        }
        result
    }
}

/// See [`Lab::teardown`]; `failed_logs` also removes the logs a failed `up` kept.
fn teardown(name: &str, failed_logs: bool) -> Result<DownReport, LabError> {
    topo::validate_name(name)?;
    if !sys::is_root() {
        return Err(LabError::NotRoot("remove a lab"));
    }
    let dir = lab_dir(name);
    let recorded = Lab::load(name).ok();
    let mut namespaces = lab_namespaces(name)?;
    // Pods first, the underlay last: purely cosmetic, deleting any end removes a veth pair.
    namespaces.sort_by_key(|ns| {
        let rest = &ns[name.len() + 1..];
        (rest == topo::UNDERLAY_NS_SUFFIX, !rest.contains('p'))
    });
    let mut report = DownReport {
        existed: dir.exists() || !namespaces.is_empty(),
        ..DownReport::default()
    };

    let mut pids: Vec<u32> = Vec::new();
    for ns in &namespaces {
        pids.extend(netns::pids(ns).unwrap_or_default());
    }
    // A recorded daemon that somehow left its namespace, but only if it is still the
    // program we started (a PID may have been reused since).
    for node in recorded.iter().flat_map(|l| &l.nodes) {
        for (pid, program) in [
            (node.switch_pid, vxswitch::SWITCHD),
            (node.agent_pid, vxswitch::AGENT),
        ] {
            if let Some(pid) = pid.filter(|&p| sys::comm(p).as_deref() == Some(program)) {
                pids.push(pid);
            }
        }
    }
    // The lab's etcd lives in `LAB-ul`; the same check for the recorded one.
    if let Some(pid) = recorded
        .iter()
        .filter_map(|l| l.etcd.as_ref())
        .find_map(|e| supervise::read_pidfile(&e.pidfile()).or(e.pid))
        .filter(|&p| sys::comm(p).as_deref() == Some(etcd::COMM))
    {
        pids.push(pid);
    }
    // OVS daemons by their pidfiles (they live in the node namespaces, so this is belt and
    // braces), again only if the PID still runs that program.
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            for program in [ovs::VSWITCHD, ovs::OVSDB] {
                if let Some(pid) = ovs::read_pid(&ovs::pidfile(&e.path(), program))
                    .filter(|&p| sys::comm(p).as_deref() == Some(program))
                {
                    pids.push(pid);
                }
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids.retain(|&p| sys::alive(p));
    // Supervisors first, so none restarts a daemon being stopped; each passes SIGTERM on to
    // its daemon and waits for it.
    let supervisors: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| sys::comm(p).as_deref() == Some(supervise::COMM))
        .collect();
    for &pid in &supervisors {
        let _ = sys::signal(pid, sys::Signal::Term);
    }
    let _ = sys::wait_gone(&supervisors, TERM_GRACE + Duration::from_secs(1));
    let found = pids.clone();
    pids.retain(|&p| sys::alive(p));
    for &pid in &pids {
        let _ = sys::signal(pid, sys::Signal::Term);
    }
    let stubborn = sys::wait_gone(&pids, TERM_GRACE);
    for &pid in &stubborn {
        let _ = sys::signal(pid, sys::Signal::Kill);
    }
    let survivors = sys::wait_gone(&stubborn, KILL_GRACE);
    report.killed = found;

    let mut problems = Vec::new();
    for ns in &namespaces {
        if let Err(e) = netns::del(ns) {
            problems.push(e.to_string());
        }
    }
    let failed = failed_dir(name);
    for d in std::iter::once(&dir).chain(failed_logs.then_some(&failed)) {
        if let Err(e) = fs::remove_dir_all(d) {
            if e.kind() != std::io::ErrorKind::NotFound {
                problems.push(format!("cannot remove {}: {e}", d.display()));
            }
        }
    }
    let left = lab_namespaces(name)?;
    if !left.is_empty() {
        problems.push(format!("namespaces still there: {}", left.join(" ")));
    }
    if !survivors.is_empty() {
        let list: Vec<String> = survivors.iter().map(u32::to_string).collect();
        problems.push(format!("processes survived SIGKILL: {}", list.join(" ")));
    }
    if !problems.is_empty() {
        return Err(LabError::Leftovers {
            name: name.to_string(),
            left: problems.join("; "),
        });
    }
    report.namespaces = namespaces;
    Ok(report)
}

/// The namespaces of lab `name` that exist.
fn lab_namespaces(name: &str) -> Result<Vec<String>, LabError> {
    Ok(netns::list()?
        .into_iter()
        .filter(|ns| topo::is_lab_netns(name, ns))
        .collect())
}

/// Runs `f` on every item, up to [`PARALLEL`] at a time; stops starting new items after the
/// first error, which it returns.
fn parallel<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), LabError> + Sync,
) -> Result<(), LabError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<LabError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(items.len()) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if let Err(e) = f(item) {
                        failed.store(true, Ordering::Relaxed);
                        first_error
                            .lock()
                            .expect("no panics while locked")
                            .get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_error.into_inner().expect("no panics while locked") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A lab that is torn down when the guard is dropped, also when a test panics.
pub struct LabGuard(pub Lab);

impl LabGuard {
    /// [`Lab::up`], guarded.
    pub fn up(spec: &LabSpec) -> Result<LabGuard, LabError> {
        Lab::up(spec).map(LabGuard)
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = Lab::down(&self.0.name);
    }
}

impl Deref for LabGuard {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.0
    }
}

impl DerefMut for LabGuard {
    fn deref_mut(&mut self) -> &mut Lab {
        &mut self.0
    }
}

#[cfg(test)]
mod tests;
