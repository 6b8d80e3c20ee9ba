//! The switch's control side: configuration, ports, workers, and the table it publishes.
//!
//! [`Switch::apply`] takes an atomic batch of changes: it applies them to the configuration in
//! place with an undo log, checks the entries they changed against the rest (remote nodes
//! against an index of the others' subnets and VTEPs), carries out the side effects (binding
//! the underlay, creating TAPs in pod namespaces), rolls everything back if one fails, and only
//! then publishes what changed in one atomic swap and appends the batch to the state file's
//! journal, so a restarted switch comes back with its ports and re-attaches their persistent
//! TAPs. A change costs what it changes, not what is present.
//!
//! - `config`: one change applied in place (with its undo), conflicts checked entry by entry;
//! - `ports`: the local node, TAPs in pod namespaces, restore after a restart;
//! - `publish`: tables brought up to date entry by entry and swapped in, the state file and its
//!   journal, state/stats/fdb views;
//! - `flows`: flow bundles, timeouts, dumps, trace, capture.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use controlplane::proto::*;
use serde::{Deserialize, Serialize};

use crate::counters::{DropReason, Event};
use crate::fib::{
    Base, FibWriter, IpEntry, LocalInfo, MacEntry, NodeEntry, NodeIdx, PortEntry, PortNo, Tables,
    Target,
};
use crate::flow::FlowId;
use crate::flowstore::{self, FlowStore};
use crate::io::netns::{netns_path, run_cmd, NetnsThread};
use crate::io::tap::{if_index, Tap, TapOptions, TapQueue};
use crate::io::udp;
use crate::pipeline::{OuterTos, OuterTtl, PipelineConfig};
use crate::pmtu::PathMtus;
use crate::wire::EthernetAddress;
use crate::worker::{self, Control, WorkerConfig, WorkerHandle};

mod announce;
mod config;
mod flows;
mod ports;
mod publish;

pub use config::{apply_change, parse_state, validate};
pub use ports::PodGsoMax;
use publish::{Dirty, Nodes, Record};

/// Name of the host port's TAP in the node's namespace.
pub const HOST_PORT_NAME: &str = "vxhost0";
/// Name of the tunnel port.
pub const TUNNEL_PORT_NAME: &str = "vxlan0";

/// Settings fixed at start-up.
#[derive(Debug, Clone)]
pub struct SwitchConfig {
    pub workers: usize,
    pub vxlan_port: u16,
    pub src_port_min: u16,
    pub src_port_max: u16,
    pub udp_zero_csum: bool,
    pub busy_poll: bool,
    pub spin_us: u32,
    /// How workers wait for work.
    pub polling: crate::worker::Polling,
    pub pin: bool,
    pub offload: bool,
    /// Masquerade pod traffic that leaves the cluster through the node (an nftables rule).
    pub masquerade: bool,
    pub state_file: Option<PathBuf>,
    /// Outer DSCP of encapsulated packets (the outer ECN follows the inner packet).
    pub tos: OuterTos,
    /// Outer TTL of encapsulated packets.
    pub ttl: OuterTtl,
    /// Most remote nodes a flood replicates to (`usize::MAX`: all).
    pub flood_max_nodes: usize,
    /// Source-port sockets per worker, spread over the source port range.
    pub src_ports: usize,
    /// Frames per second and burst a port may have flooded (0: unlimited).
    pub bum_rate: u32,
    pub bum_burst: u32,
    /// How large a super-frame a pod's TAP may hand the switch.
    pub pod_gso_max: PodGsoMax,
    /// Decapsulated GRO batches classified once (`true`) or once per segment.
    pub rx_classify_batch: bool,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// The declared configuration, as saved in the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub local: Option<Owned<LocalNode>>,
    pub ports: BTreeMap<String, PortCfg>,
    pub nodes: BTreeMap<String, Owned<RemoteNode>>,
    #[serde(default = "FlowStore::initial")]
    pub flows: FlowStore,
    /// The last change of the state file's journal this configuration holds.
    #[serde(default)]
    pub journal_seq: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            local: None,
            ports: BTreeMap::new(),
            nodes: BTreeMap::new(),
            flows: FlowStore::initial(),
            journal_seq: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owned<T> {
    pub owner: Owner,
    pub spec: T,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortCfg {
    pub no: PortNo,
    pub owner: Owner,
    pub spec: PortSpec,
}

/// A port's live side: its TAP's control queue and where it lives.
struct PortRuntime {
    device: String,
    netns: Option<PathBuf>,
    control: Option<TapQueue>,
}

/// The router MAC pods see for their gateway: 0a:58 + the gateway address.
pub fn gateway_mac(gw: Ipv4Addr) -> EthernetAddress {
    let o = gw.octets();
    EthernetAddress([0x0a, 0x58, o[0], o[1], o[2], o[3]])
}

/// MAC of vxhost0: 0e:58 + the gateway address.
pub fn host_mac(gw: Ipv4Addr) -> EthernetAddress {
    let o = gw.octets();
    EthernetAddress([0x0e, 0x58, o[0], o[1], o[2], o[3]])
}

fn eth(m: MacAddr) -> EthernetAddress {
    EthernetAddress(m.0)
}

pub struct Switch {
    cfg: SwitchConfig,
    fib: FibWriter,
    workers: Vec<WorkerHandle>,
    netns: NetnsThread,
    config: Config,
    runtime: BTreeMap<PortNo, PortRuntime>,
    /// Ports of the configuration whose TAP could not be attached (after a restore), with why.
    down: BTreeMap<PortNo, String>,
    underlay: Option<IpAddr>,
    version: u64,
    /// Flow events for monitors.
    events: tokio::sync::broadcast::Sender<FlowEvent>,
    /// The port being captured, if any.
    capturing: Option<PortNo>,
    /// The path MTU to each remote VTEP, shared with the workers.
    pmtu: Arc<PathMtus>,
    /// The remote nodes' subnets and VTEPs, for checking a changed node against the others.
    node_index: config::NodeIndex,
    /// The remote nodes in the published tables, by index (their names), and the reverse.
    node_names: Vec<String>,
    node_at: rustc_hash::FxHashMap<String, NodeIdx>,
    /// Whether the published nodes follow the configuration (else the next publish syncs all).
    nodes_synced: bool,
    /// The state file's journal of applied changes, once open.
    journal: Option<publish::Journal>,
    /// Remote nodes' IPv6 prefixes routed on-link through vxhost0.
    host_routes6: BTreeSet<Ipv6Cidr>,
    /// Failed control requests and connections, by reason.
    control: Arc<crate::counters::ControlCounters>,
    /// `learn` events from the workers.
    learn: crate::learn::LearnQueue,
    /// Readers of the published tables, as the workers hold them (for benches and tests).
    readers: crate::fib::FibReaders,
}

impl Switch {
    /// Starts the workers. Nothing is bound until the local node is configured.
    pub fn start(cfg: SwitchConfig) -> io::Result<Switch> {
        let (fib, readers) = crate::fib::new();
        let netns = NetnsThread::start()?;
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut workers = Vec::new();
        let learn = crate::learn::LearnQueue::default();
        let pmtu = Arc::new(PathMtus::default());
        let bum = Arc::new(crate::pipeline::BumLimiter::new(
            cfg.bum_rate,
            cfg.bum_burst,
        ));
        for id in 0..cfg.workers.max(1) {
            let wc = WorkerConfig {
                id,
                vxlan_port: cfg.vxlan_port,
                pipeline: PipelineConfig {
                    src_port_min: cfg.src_port_min,
                    src_port_max: cfg.src_port_max,
                    tos: cfg.tos,
                    ttl: cfg.ttl,
                    pmtu: pmtu.clone(),
                    flood_max_nodes: cfg.flood_max_nodes,
                    src_ports: cfg.src_ports,
                    bum: bum.clone(),
                    learn: Some(learn.tx.clone()),
                    rx_batch: cfg.rx_classify_batch,
                    ..PipelineConfig::default()
                },
                busy_poll: cfg.busy_poll,
                spin_us: cfg.spin_us,
                polling: cfg.polling,
                pin: cfg.pin.then_some(id % cpus),
                gro: cfg.offload,
                udp_zero_csum: cfg.udp_zero_csum,
            };
            workers.push(worker::spawn(wc, readers.reader())?);
        }
        Ok(Switch {
            cfg,
            fib,
            workers,
            netns,
            config: Config::default(),
            runtime: BTreeMap::new(),
            down: BTreeMap::new(),
            underlay: None,
            version: 0,
            events: tokio::sync::broadcast::channel(1024).0,
            capturing: None,
            pmtu,
            node_index: config::NodeIndex::default(),
            node_names: Vec::new(),
            node_at: Default::default(),
            nodes_synced: false,
            journal: None,
            host_routes6: BTreeSet::new(),
            control: Arc::default(),
            learn,
            readers,
        })
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Applies an atomic batch.
    ///
    /// The batch is applied to the configuration in place with an undo log (nothing is
    /// copied), the entries it changed are checked against indexes of the others, and only
    /// what changed reaches the tables and the state file: a change costs what it changes,
    /// not what is present.
    pub fn apply(&mut self, req: ApplyRequest) -> Result<u64, Refusal> {
        if let Some(v) = req.expected_version {
            if v != self.version {
                return Err(refuse(
                    ErrorCode::VersionMismatch,
                    format!(
                        "table version is {}, the batch expected {v}; re-read the state and retry",
                        self.version
                    ),
                ));
            }
        }
        let undo = config::apply_batch(&mut self.config, req.owner, &req.changes)?;
        let delta = config::delta(&self.config, &undo);
        if delta.is_empty() {
            config::unstage(&mut self.config, undo);
            return Ok(self.version);
        }
        if let Err(m) = self.check(&delta) {
            self.rollback(undo, &delta);
            return Err(refuse(ErrorCode::Invalid, m));
        }

        // Side effects, all or nothing.
        if let Some(local) = self.config.local.as_ref().map(|l| l.spec.clone()) {
            if let Err(m) = self.ensure_local(&local) {
                self.rollback(undo, &delta);
                return Err(refuse(ErrorCode::Failed, m));
            }
        }
        let routes6 = self.host_routes6_delta(&delta);
        if let Err(m) = self.apply_host_routes6(&routes6) {
            self.rollback(undo, &delta);
            return Err(refuse(ErrorCode::Failed, m));
        }
        // The ports the batch changed, by number, as they were and as they are.
        let old_ports: BTreeMap<PortNo, PortCfg> = delta
            .ports
            .values()
            .flatten()
            .map(|p| (p.no, p.clone()))
            .collect();
        let new_ports: BTreeMap<PortNo, PortCfg> = delta
            .ports
            .keys()
            .filter_map(|name| self.config.ports.get(name))
            .map(|p| (p.no, p.clone()))
            .collect();
        let removed: Vec<PortNo> = old_ports
            .iter()
            .filter(|(no, p)| new_ports.get(no).is_none_or(|q| q.spec != p.spec))
            .map(|(no, _)| *no)
            .collect();
        let added: Vec<&PortCfg> = new_ports
            .iter()
            .filter(|(no, p)| old_ports.get(no).is_none_or(|q| q.spec != p.spec))
            .map(|(_, p)| p)
            .collect();
        // Devices that stay in use by an added port must not be destroyed with the old port.
        let reused: BTreeSet<(String, String)> = added
            .iter()
            .map(|p| (p.spec.netns.clone(), p.spec.ifname().to_string()))
            .collect();

        let mut created: Vec<(PortNo, (PortRuntime, Vec<TapQueue>))> = Vec::new();
        let local = self.config.local.as_ref().map(|l| l.spec.clone());
        for p in &added {
            let attached = match &local {
                Some(l) => self.attach_port(l, p),
                None => Err("the local node is not configured yet (set_local_node first)".into()),
            };
            match attached {
                Ok(rt) => created.push((p.no, rt)),
                Err(e) => {
                    for ((_, (rt, _queues)), q) in created.into_iter().zip(&added) {
                        let key = (q.spec.netns.clone(), q.spec.ifname().to_string());
                        let existed = old_ports
                            .values()
                            .any(|o| (o.spec.netns.clone(), o.spec.ifname().to_string()) == key);
                        self.destroy(rt, existed);
                    }
                    let _ = self.apply_host_routes6(&(routes6.1.clone(), routes6.0.clone()));
                    self.rollback(undo, &delta);
                    self.control
                        .inc(crate::counters::ControlError::PortCreateFailed);
                    return Err(refuse(
                        ErrorCode::Failed,
                        format!(
                            "port {}: {e}{}; the batch was rolled back",
                            p.spec.name,
                            out_of_descriptors_hint(&e)
                        ),
                    ));
                }
            }
        }
        let dirty = Dirty {
            nodes: if delta.local.is_some() {
                Nodes::All
            } else {
                Nodes::Some(delta.nodes.keys().cloned().collect())
            },
            ports: delta.local.is_some() || !delta.ports.is_empty(),
            // Flows name ports: their resolution changes only with the ports.
            flows: !delta.ports.is_empty(),
        };
        // A number both removed and added had its worker queues replaced by the new port's.
        let added_nos: BTreeSet<PortNo> = added.iter().map(|p| p.no).collect();
        let mut retired = Vec::new();
        if removed.iter().any(|no| added_nos.contains(no)) {
            // A number freed and re-used in one batch: the old port leaves the tables first,
            // and no worker may still hold tables that map the old pod's addresses to the
            // number, before the number's queues go to the new TAP (possibly another
            // tenant's pod). `publish` builds the tables from ports that have a runtime.
            for no in &removed {
                self.down.remove(no);
                if let Some(rt) = self.runtime.remove(no) {
                    let key = old_ports
                        .get(no)
                        .map(|p| (p.spec.netns.clone(), p.spec.ifname().to_string()));
                    retired.push((rt, key.is_some_and(|k| reused.contains(&k))));
                }
                for w in &self.workers {
                    w.send(Control::DelPort { no: *no });
                }
            }
            self.publish_dirty(Dirty {
                nodes: Nodes::None,
                ports: true,
                flows: true,
            });
            // Waits for the workers to leave the tables published before that one.
            self.fib.publish();
        }
        for no in &removed {
            self.down.remove(no);
            if let Some(rt) = self.runtime.remove(no) {
                let key = old_ports
                    .get(no)
                    .map(|p| (p.spec.netns.clone(), p.spec.ifname().to_string()));
                retired.push((rt, key.is_some_and(|k| reused.contains(&k))));
            }
            if !added_nos.contains(no) {
                for w in &self.workers {
                    w.send(Control::DelPort { no: *no });
                }
            }
        }
        for (no, (rt, queues)) in created {
            self.give_queues(no, queues);
            self.runtime.insert(no, rt);
        }
        self.publish_dirty(dirty);
        for (rt, keep) in retired {
            self.destroy(rt, keep);
        }
        self.record(Record::Apply(req));
        Ok(self.version)
    }

    /// Checks the entries a staged batch changed against the rest of the configuration, and
    /// brings the node index up to date with them.
    fn check(&mut self, delta: &config::Delta) -> Result<(), String> {
        if delta.local.is_some() {
            // The local node changes once in a switch's life: everything is checked again.
            validate(&self.config)?;
            self.node_index = config::NodeIndex::build(&self.config);
            return Ok(());
        }
        if !delta.ports.is_empty() {
            config::validate_ports(&self.config)?;
        }
        config::check_nodes(&mut self.node_index, &self.config, delta)
    }

    /// Puts the configuration and the node index back as they were before a staged batch.
    fn rollback(&mut self, undo: Vec<config::Undo>, delta: &config::Delta) {
        if delta.local.is_none() {
            config::unindex_nodes(&mut self.node_index, &self.config, delta);
        }
        config::unstage(&mut self.config, undo);
        if delta.local.is_some() {
            self.node_index = config::NodeIndex::build(&self.config);
        }
    }

    /// Stops the workers, each after forwarding what was already queued for it, and saves the
    /// configuration to the state file; TAPs stay (they are persistent) so pods keep their
    /// interfaces, and the next start re-attaches them.
    pub fn shutdown(&mut self) {
        for w in &self.workers {
            w.send(Control::Stop);
        }
        for w in &mut self.workers {
            w.stop();
        }
        crate::io::tnl::shutdown();
        self.record(Record::Snapshot);
    }

    /// Resolves a flow's port reference: vxlan0, vxhost0, a pod port's name, or a number.
    pub fn resolver(&self) -> impl Fn(&PortRef) -> Option<PortNo> + '_ {
        move |p: &PortRef| publish::resolve_port(&self.config, p)
    }

    /// The underlay address, once configured.
    pub fn vtep(&self) -> Option<IpAddr> {
        self.underlay
    }

    /// Worker counters (for the metrics endpoint).
    pub fn worker_counters(&self) -> Vec<Arc<crate::counters::WorkerCounters>> {
        self.workers.iter().map(|w| w.counters.clone()).collect()
    }

    /// The state file in use, if any.
    pub fn state_file(&self) -> Option<&Path> {
        self.cfg.state_file.as_deref()
    }

    /// The control side's counters (shared with the socket server).
    pub fn control_counters(&self) -> Arc<crate::counters::ControlCounters> {
        self.control.clone()
    }

    /// A reader of the tables the workers read, seeing every publish of this switch's control
    /// path (for benches: lookups while changes are applied).
    pub fn fib_reader(&self) -> crate::fib::FibReader {
        self.readers.reader()
    }
}

/// When a port failed for want of file descriptors (EMFILE, ENFILE), says so with the
/// limit, so the operator knows what to raise or remove.
fn out_of_descriptors_hint(error: &str) -> String {
    let emfile = io::Error::from_raw_os_error(libc::EMFILE).to_string();
    let enfile = io::Error::from_raw_os_error(libc::ENFILE).to_string();
    if error.contains(&emfile) {
        let limit = crate::io::sys::nofile_limit()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "unknown".into());
        format!(
            " (vxswitchd is out of file descriptors: its RLIMIT_NOFILE is {limit}; each pod \
             port holds one per worker plus one; raise the limit or remove ports)"
        )
    } else if error.contains(&enfile) {
        " (the system is out of file descriptors: fs.file-max)".to_string()
    } else {
        String::new()
    }
}
