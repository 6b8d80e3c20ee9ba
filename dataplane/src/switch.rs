//! The switch's control side: configuration, ports, workers, and the table it publishes.
//!
//! [`Switch::apply`] takes an atomic batch of changes: it checks the whole batch against a copy
//! of the configuration, carries out the side effects (binding the underlay, creating TAPs in
//! pod namespaces), rolls them back if one fails, and only then publishes the new tables in one
//! atomic swap and saves the configuration to the state file, so a restarted switch comes back
//! with its ports and re-attaches their persistent TAPs.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use controlplane::proto::*;
use serde::{Deserialize, Serialize};

use crate::counters::{DropReason, Event};
use crate::fib::{
    Base, FibWriter, IpEntry, LocalInfo, MacEntry, NodeEntry, PortEntry, PortNo, Tables, Target,
};
use crate::flow::FlowId;
use crate::flowstore::{self, FlowStore};
use crate::io::netns::{netns_path, run_cmd, NetnsThread};
use crate::io::tap::{if_index, Tap, TapOptions, TapQueue};
use crate::io::udp;
use crate::pipeline::PipelineConfig;
use crate::wire::EthernetAddress;
use crate::worker::{self, Control, WorkerConfig, WorkerHandle};

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
    pub pin: bool,
    pub offload: bool,
    /// Masquerade pod traffic that leaves the cluster through the node (an nftables rule).
    pub masquerade: bool,
    pub state_file: Option<PathBuf>,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            local: None,
            ports: BTreeMap::new(),
            nodes: BTreeMap::new(),
            flows: FlowStore::initial(),
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
        for id in 0..cfg.workers.max(1) {
            let wc = WorkerConfig {
                id,
                vxlan_port: cfg.vxlan_port,
                pipeline: PipelineConfig {
                    src_port_min: cfg.src_port_min,
                    src_port_max: cfg.src_port_max,
                    ..PipelineConfig::default()
                },
                busy_poll: cfg.busy_poll,
                spin_us: cfg.spin_us,
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
        })
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    fn tap_options(&self) -> TapOptions {
        TapOptions {
            vnet_hdr: self.cfg.offload,
        }
    }

    /// Loads the state file, if any, and brings its configuration back.
    pub fn restore(&mut self) -> Result<(), String> {
        let Some(path) = self.cfg.state_file.clone() else {
            return Ok(());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cannot read state file {}: {e}", path.display())),
        };
        let saved: Config = serde_json::from_str(&text)
            .map_err(|e| format!("state file {} is not valid: {e}", path.display()))?;
        if let Some(local) = &saved.local {
            self.ensure_local(&local.spec)?;
        }
        for p in saved.ports.values() {
            let attached = match &saved.local {
                Some(l) => self.attach_port(&l.spec, p),
                None => Err("no local node in the state file".into()),
            };
            match attached {
                Ok((rt, queues)) => {
                    self.give_queues(p.no, queues);
                    self.runtime.insert(p.no, rt);
                }
                Err(e) => {
                    eprintln!("vxswitchd: port {} ({}) stays down: {e}", p.spec.name, p.no);
                    self.down.insert(p.no, e);
                }
            }
        }
        self.config = saved;
        self.publish();
        eprintln!(
            "vxswitchd: restored {} ports and {} nodes from {}",
            self.config.ports.len(),
            self.config.nodes.len(),
            path.display()
        );
        Ok(())
    }

    /// Applies an atomic batch.
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
        let mut next = self.config.clone();
        for (i, ch) in req.changes.iter().enumerate() {
            apply_change(&mut next, req.owner, ch).map_err(|r| {
                refuse(
                    r.code,
                    format!("change {} ({}): {}", i + 1, change_name(ch), r.message),
                )
            })?;
        }
        validate(&next).map_err(|m| refuse(ErrorCode::Invalid, m))?;
        if next == self.config {
            return Ok(self.version);
        }

        // Side effects, all or nothing.
        if let Some(local) = &next.local {
            self.ensure_local(&local.spec)
                .map_err(|m| refuse(ErrorCode::Failed, m))?;
        }
        let old_ports: BTreeMap<PortNo, PortCfg> = self
            .config
            .ports
            .values()
            .map(|p| (p.no, p.clone()))
            .collect();
        let new_ports: BTreeMap<PortNo, &PortCfg> =
            next.ports.values().map(|p| (p.no, p)).collect();
        let removed: Vec<PortNo> = old_ports
            .iter()
            .filter(|(no, p)| new_ports.get(no).is_none_or(|q| q.spec != p.spec))
            .map(|(no, _)| *no)
            .collect();
        let added: Vec<&PortCfg> = new_ports
            .iter()
            .filter(|(no, p)| old_ports.get(no).is_none_or(|q| q.spec != p.spec))
            .map(|(_, p)| *p)
            .collect();
        // Devices that stay in use by an added port must not be destroyed with the old port.
        let reused: BTreeSet<(String, String)> = added
            .iter()
            .map(|p| (p.spec.netns.clone(), p.spec.ifname().to_string()))
            .collect();

        let mut created: Vec<(PortNo, (PortRuntime, Vec<TapQueue>))> = Vec::new();
        let local = next.local.as_ref().map(|l| l.spec.clone());
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
                    return Err(refuse(
                        ErrorCode::Failed,
                        format!("port {}: {e}", p.spec.name),
                    ));
                }
            }
        }
        // A number both removed and added had its worker queues replaced by the new port's.
        let added_nos: BTreeSet<PortNo> = added.iter().map(|p| p.no).collect();
        let mut retired = Vec::new();
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
        self.config = next;
        self.publish();
        for (rt, keep) in retired {
            self.destroy(rt, keep);
        }
        self.save();
        Ok(self.version)
    }

    /// Builds the tables from the configuration and publishes them as a new version.
    fn publish(&mut self) {
        self.version += 1;
        let mut t = Tables {
            base: Arc::new(Base {
                version: self.version,
                ..Default::default()
            }),
            ..Default::default()
        };
        if let Some(l) = &self.config.local {
            let l = &l.spec;
            let gw = l.gateway();
            let info = LocalInfo {
                vtep: l.vtep,
                vtep_mac: eth(l.vtep_mac),
                subnet: l.subnet,
                gateway: gw,
                gateway_mac: gateway_mac(gw),
                host_mac: host_mac(gw),
                default_vni: l.vni,
                cluster: l.cluster_network,
                tunnel_mtu: l.pod_mtu(),
            };
            let max_no = self
                .config
                .ports
                .values()
                .map(|p| p.no)
                .max()
                .unwrap_or(PORT_HOST);
            t.ports = vec![None; max_no as usize + 1];
            t.ports[PORT_HOST as usize] = Some(PortEntry {
                name: HOST_PORT_NAME.into(),
                mac: info.host_mac,
                ip: Some(gw),
                vni: 0,
            });
            t.macs.insert(
                info.host_mac,
                MacEntry {
                    target: Target::Port(PORT_HOST),
                    vni: 0,
                },
            );
            for p in self.config.ports.values() {
                if !self.runtime.contains_key(&p.no) {
                    continue;
                }
                let vni = p.spec.vnid.unwrap_or(l.vni);
                let mac = eth(p.spec.mac);
                t.ports[p.no as usize] = Some(PortEntry {
                    name: p.spec.name.clone(),
                    mac,
                    ip: Some(p.spec.ip),
                    vni,
                });
                t.macs.insert(
                    mac,
                    MacEntry {
                        target: Target::Port(p.no),
                        vni,
                    },
                );
                t.ips.insert(
                    p.spec.ip,
                    IpEntry {
                        mac,
                        target: Target::Port(p.no),
                        vni,
                    },
                );
            }
            for n in self.config.nodes.values() {
                t.nodes.push(NodeEntry {
                    name: n.spec.name.clone(),
                    vtep: n.spec.vtep,
                    vtep_mac: eth(n.spec.vtep_mac),
                    subnet: n.spec.subnet,
                });
            }
            t.local = Some(info);
        }
        t.reindex();
        let resolve = self.resolver();
        t.flows = Some(Arc::new(self.config.flows.compile(self.version, &resolve)));
        drop(resolve);
        self.fib.replace(t);
    }

    fn save(&self) {
        let Some(path) = &self.cfg.state_file else {
            return;
        };
        let tmp = path.with_extension("tmp");
        let r = serde_json::to_vec_pretty(&self.config)
            .map_err(io::Error::other)
            .and_then(|b| {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&tmp, b)
            })
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = r {
            eprintln!("vxswitchd: cannot save state to {}: {e}", path.display());
        }
    }

    /// Binds the underlay and creates the host port, once; a later identical call is a no-op.
    fn ensure_local(&mut self, l: &LocalNode) -> Result<(), String> {
        if self.underlay == Some(l.vtep) {
            return Ok(());
        }
        if self.underlay.is_some() {
            return Err(
                "the VTEP address of a running switch cannot change; restart vxswitchd".into(),
            );
        }
        udp::check_port_free(l.vtep, self.cfg.vxlan_port)?;
        let mut socks = Vec::new();
        for _ in &self.workers {
            socks.push(
                udp::bind_underlay(l.vtep, self.cfg.vxlan_port).map_err(|e| {
                    format!("cannot bind UDP {}:{}: {e}", l.vtep, self.cfg.vxlan_port)
                })?,
            );
        }
        if self.cfg.udp_zero_csum && l.vtep.is_ipv4() {
            // Replies from the receive sockets are never sent; the source-port sockets carry
            // the setting. Nothing to do here.
        }
        // The host port: vxhost0 in the node's own namespace, holding the gateway address.
        let gw = l.gateway();
        let n = self.workers.len();
        let opts = self.tap_options();
        let (hmac, mtu, subnet, cluster) = (host_mac(gw), l.pod_mtu(), l.subnet, l.cluster_network);
        let masquerade = self.cfg.masquerade;
        let tap = self
            .netns
            .run(None, move || {
                let tap = Tap::open(HOST_PORT_NAME, n, opts)?;
                tap.control.set_persist(true)?;
                let _ = std::fs::write(
                    format!("/proc/sys/net/ipv6/conf/{HOST_PORT_NAME}/disable_ipv6"),
                    "1",
                );
                let mac = hmac.to_string();
                let mtu = mtu.to_string();
                run_cmd(
                    "ip",
                    &[
                        "link",
                        "set",
                        "dev",
                        HOST_PORT_NAME,
                        "address",
                        &mac,
                        "mtu",
                        &mtu,
                        "up",
                    ],
                )?;
                let addr = format!("{gw}/{}", subnet.prefix());
                run_cmd("ip", &["addr", "replace", &addr, "dev", HOST_PORT_NAME])?;
                run_cmd(
                    "ip",
                    &[
                        "route",
                        "replace",
                        &cluster.to_string(),
                        "dev",
                        HOST_PORT_NAME,
                    ],
                )?;
                if masquerade {
                    install_masquerade(cluster)?;
                }
                Ok(tap)
            })
            .map_err(|e| format!("cannot set up {HOST_PORT_NAME}: {e}"))?;
        for (w, (sock, q)) in self.workers.iter().zip(socks.into_iter().zip(tap.queues)) {
            w.send(Control::Underlay {
                vtep: l.vtep,
                socket: sock,
            });
            w.send(Control::AddPort {
                no: PORT_HOST,
                queue: q,
            });
        }
        self.runtime.insert(
            PORT_HOST,
            PortRuntime {
                device: HOST_PORT_NAME.into(),
                netns: None,
                control: Some(tap.control),
            },
        );
        self.underlay = Some(l.vtep);
        eprintln!(
            "vxswitchd: underlay on {}:{} ({} workers), {HOST_PORT_NAME} holds {gw}",
            l.vtep,
            self.cfg.vxlan_port,
            self.workers.len()
        );
        Ok(())
    }

    /// Creates (or re-attaches) a pod's TAP and hands its queues to the workers.
    fn attach_port(
        &self,
        local: &LocalNode,
        p: &PortCfg,
    ) -> Result<(PortRuntime, Vec<TapQueue>), String> {
        let ns = netns_path(&p.spec.netns);
        let ifname = p.spec.ifname().to_string();
        let n = self.workers.len();
        let opts = self.tap_options();
        let ifn = ifname.clone();
        let exists = self
            .netns
            .run(Some(&ns), move || Ok(if_index(&ifn).is_some()))
            .map_err(|e| e.to_string())?;
        let tap = if exists {
            // A restarted switch finds the pod's persistent TAP and attaches to it again.
            let ifn = ifname.clone();
            self.netns
                .run(Some(&ns), move || {
                    Tap::open(&ifn, n, opts).map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("{ifn} exists in the pod and is not a vxswitch TAP ({e})"),
                        )
                    })
                })
                .map_err(|e| e.to_string())?
        } else {
            let tmp = format!("vxt{}", p.no);
            let nsd = ns.display().to_string();
            let ifn = ifname.clone();
            self.netns
                .run(None, move || {
                    let tap = Tap::open(&tmp, n, opts)?;
                    tap.control.set_persist(true)?;
                    if let Err(e) = run_cmd(
                        "ip",
                        &["link", "set", "dev", &tmp, "netns", &nsd, "name", &ifn],
                    ) {
                        let _ = tap.control.set_persist(false);
                        return Err(e);
                    }
                    Ok(tap)
                })
                .map_err(|e| e.to_string())?
        };
        tap.control.set_persist(true).map_err(|e| e.to_string())?;
        // Address the pod: MAC, MTU, address, default route via the gateway.
        let mac = p.spec.mac.to_string();
        let mtu = p.spec.mtu.unwrap_or(local.pod_mtu()).to_string();
        let addr = format!("{}/{}", p.spec.ip, local.subnet.prefix());
        let gw = local.gateway().to_string();
        let ifn = ifname.clone();
        let configured = self.netns.run(Some(&ns), move || {
            run_cmd(
                "ip",
                &[
                    "link", "set", "dev", &ifn, "address", &mac, "mtu", &mtu, "up",
                ],
            )?;
            run_cmd("ip", &["addr", "replace", &addr, "dev", &ifn])?;
            run_cmd(
                "ip",
                &["route", "replace", "default", "via", &gw, "dev", &ifn],
            )?;
            Ok(())
        });
        if let Err(e) = configured {
            if !exists {
                let _ = tap.control.set_persist(false);
            }
            return Err(e.to_string());
        }
        Ok((
            PortRuntime {
                device: ifname,
                netns: Some(ns),
                control: Some(tap.control),
            },
            tap.queues,
        ))
    }

    /// Hands one queue to each worker.
    fn give_queues(&self, no: PortNo, queues: Vec<TapQueue>) {
        for (w, q) in self.workers.iter().zip(queues) {
            w.send(Control::AddPort { no, queue: q });
        }
    }

    /// Removes a port's TAP (unless another port now uses the same device).
    fn destroy(&mut self, mut rt: PortRuntime, keep_device: bool) {
        if let Some(control) = rt.control.take() {
            if !keep_device {
                let _ = control.set_persist(false);
            }
            // Closing the last queue removes a non-persistent device.
            drop(control);
        }
        let _ = rt.netns;
    }

    /// The configuration as the protocol reports it.
    pub fn state(&self) -> StateRepr {
        let mut ports = vec![PortState {
            no: PORT_TUNNEL,
            name: TUNNEL_PORT_NAME.into(),
            kind: PortKind::Tunnel,
            device: match self.underlay {
                Some(v) => format!("udp {}:{}", v, self.cfg.vxlan_port),
                None => format!("udp port {}", self.cfg.vxlan_port),
            },
            owner: None,
            spec: None,
            status: if self.underlay.is_some() {
                "up".into()
            } else {
                "down: no local node yet".into()
            },
        }];
        ports.push(PortState {
            no: PORT_HOST,
            name: HOST_PORT_NAME.into(),
            kind: PortKind::Host,
            device: HOST_PORT_NAME.into(),
            owner: None,
            spec: None,
            status: if self.runtime.contains_key(&PORT_HOST) {
                "up".into()
            } else {
                "down: no local node yet".into()
            },
        });
        let mut pods: Vec<&PortCfg> = self.config.ports.values().collect();
        pods.sort_by_key(|p| p.no);
        for p in pods {
            let status = match (self.runtime.get(&p.no), self.down.get(&p.no)) {
                (Some(_), _) => "up".to_string(),
                (None, Some(why)) => format!("down: {why}"),
                (None, None) => "down".to_string(),
            };
            let device = self
                .runtime
                .get(&p.no)
                .map(|r| format!("{}@{}", r.device, p.spec.netns))
                .unwrap_or_else(|| format!("{}@{}", p.spec.ifname(), p.spec.netns));
            ports.push(PortState {
                no: p.no,
                name: p.spec.name.clone(),
                kind: PortKind::Pod,
                device,
                owner: Some(p.owner),
                spec: Some(p.spec.clone()),
                status,
            });
        }
        StateRepr {
            bridge: BRIDGE.into(),
            table_version: self.version,
            local: self.config.local.as_ref().map(|l| l.spec.clone()),
            local_owner: self.config.local.as_ref().map(|l| l.owner),
            ports,
            nodes: self
                .config
                .nodes
                .values()
                .map(|n| NodeState {
                    owner: n.owner,
                    spec: n.spec.clone(),
                })
                .collect(),
            vxlan_port: self.cfg.vxlan_port,
            workers: self.workers.len() as u32,
        }
    }

    /// Counters summed over the workers.
    pub fn stats(&self) -> StatsRepr {
        let ws: Vec<_> = self.workers.iter().map(|w| w.counters.clone()).collect();
        let mut names: BTreeMap<PortNo, String> = BTreeMap::new();
        names.insert(PORT_TUNNEL, TUNNEL_PORT_NAME.into());
        names.insert(PORT_HOST, HOST_PORT_NAME.into());
        for p in self.config.ports.values() {
            names.insert(p.no, p.spec.name.clone());
        }
        let ports = names
            .into_iter()
            .map(|(no, name)| {
                let s = |f: &dyn Fn(&crate::counters::PortCounters) -> u64| -> u64 {
                    ws.iter().filter_map(|w| w.port(no)).map(f).sum()
                };
                PortCounters {
                    no,
                    name,
                    rx_packets: s(&|p| p.rx_packets.get()),
                    rx_bytes: s(&|p| p.rx_bytes.get()),
                    tx_packets: s(&|p| p.tx_packets.get()),
                    tx_bytes: s(&|p| p.tx_bytes.get()),
                    tx_errors: s(&|p| p.tx_errors.get()),
                }
            })
            .collect();
        let drops = DropReason::ALL
            .iter()
            .map(|r| NamedCounter {
                name: r.name().into(),
                value: ws.iter().map(|w| w.drops[*r as usize].get()).sum(),
            })
            .collect();
        let events = Event::ALL
            .iter()
            .map(|e| NamedCounter {
                name: e.name().into(),
                value: ws.iter().map(|w| w.events[*e as usize].get()).sum(),
            })
            .collect();
        StatsRepr {
            table_version: self.version,
            ports,
            drops,
            events,
            workers: ws.len() as u32,
        }
    }

    /// The forwarding entries of the current tables.
    pub fn fdb(&self) -> FdbRepr {
        let Some(t) = self.fib.read() else {
            return FdbRepr::default();
        };
        let mut entries: Vec<FdbEntry> = t
            .macs
            .iter()
            .map(|(mac, e)| {
                let ip = t.ips.iter().find(|(_, i)| i.mac == *mac).map(|(ip, _)| *ip);
                let ip = ip.or_else(|| match e.target {
                    Target::Port(PORT_HOST) => t.local.as_ref().map(|l| l.gateway),
                    _ => None,
                });
                FdbEntry {
                    vni: e.vni,
                    mac: MacAddr(mac.0),
                    ip,
                    target: target_repr(&t, e.target),
                }
            })
            .collect();
        entries.sort_by_key(|e| (e.vni, e.mac));
        let routes = t
            .routes
            .iter()
            .filter_map(|(c, n)| {
                let node = t.node(*n)?;
                Some(RouteEntry {
                    subnet: *c,
                    node: node.name.clone(),
                    vtep: node.vtep,
                    vtep_mac: MacAddr(node.vtep_mac.0),
                })
            })
            .collect();
        FdbRepr {
            table_version: t.version,
            entries,
            routes,
        }
    }

    /// Stops the workers; TAPs stay (they are persistent) so pods keep their interfaces.
    pub fn shutdown(&mut self) {
        for w in &mut self.workers {
            w.stop();
        }
    }

    /// Resolves a flow's port reference: vxlan0, vxhost0, a pod port's name, or a number.
    pub fn resolver(&self) -> impl Fn(&PortRef) -> Option<PortNo> + '_ {
        move |p: &PortRef| match p {
            PortRef::Number(n) if (*n as usize) < crate::counters::MAX_PORTS && *n > 0 => Some(*n),
            PortRef::Number(_) => None,
            PortRef::Name(name) => match name.as_str() {
                TUNNEL_PORT_NAME => Some(PORT_TUNNEL),
                HOST_PORT_NAME => Some(PORT_HOST),
                other => self.config.ports.get(other).map(|p| p.no),
            },
        }
    }

    fn port_name(&self, no: PortNo) -> String {
        match no {
            PORT_TUNNEL => TUNNEL_PORT_NAME.into(),
            PORT_HOST => HOST_PORT_NAME.into(),
            n => self
                .config
                .ports
                .values()
                .find(|p| p.no == n)
                .map(|p| p.spec.name.clone())
                .unwrap_or_else(|| format!("port {n}")),
        }
    }

    /// Sums of a flow id's counters over the workers: (packets, bytes, latest hit).
    fn flow_sums(&self, id: FlowId) -> (u64, u64, u64) {
        let mut out = (0, 0, 0);
        for w in &self.workers {
            if let Some(f) = w.counters.flows.get(id as usize) {
                out.0 += f.packets.get();
                out.1 += f.bytes.get();
                out.2 = out.2.max(f.last_hit_ms.get());
            }
        }
        out
    }

    /// Applies a bundle of flow changes, all or nothing.
    pub fn flow_mods(&mut self, mods: &[FlowMod]) -> Result<u64, Refusal> {
        let (next, events) = {
            let resolve = self.resolver();
            let sums = |id: FlowId| {
                let (p, b, _) = self.flow_sums(id);
                (p, b)
            };
            let cx = flowstore::Context {
                resolve: &resolve,
                sums: &sums,
                now_ms: crate::clock::now_ms(),
            };
            let applied = self.config.flows.apply(mods, &cx);
            applied.map_err(|m| refuse(ErrorCode::Invalid, m))?
        };
        self.config.flows = next;
        self.publish();
        self.save();
        for e in flowstore::events(events, self.version) {
            let _ = self.events.send(e);
        }
        Ok(self.version)
    }

    /// Removes flows whose timeouts passed; called periodically.
    pub fn expire_flows(&mut self) {
        let now = crate::clock::now_ms();
        let expired = self.config.flows.expired(now, &|id| self.flow_sums(id).2);
        if expired.is_empty() {
            return;
        }
        let removed = self.config.flows.remove_ids(&expired);
        self.publish();
        self.save();
        for (flow, why) in removed {
            let _ = self.events.send(FlowEvent {
                event: FlowEventKind::Removed,
                reason: why.into(),
                table_version: self.version,
                flow,
            });
        }
    }

    /// A receiver of flow events (for `vxctl monitor`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<FlowEvent> {
        self.events.subscribe()
    }

    /// Flows with counters, optionally narrowed to a table and a (loose) match.
    pub fn dump_flows(
        &self,
        table: Option<u8>,
        matches: &[Match],
    ) -> Result<Vec<FlowStats>, Refusal> {
        let resolve = self.resolver();
        let mut filter = matches.to_vec();
        controlplane::flow_syntax::canonicalize(&mut filter);
        let (fv, fm) = crate::flow::key::compile_match(&filter, &resolve)
            .map_err(|m| refuse(ErrorCode::Invalid, m))?;
        let now = crate::clock::now_ms();
        let mut out = Vec::new();
        for f in &self.config.flows.flows {
            if table.is_some_and(|t| t != f.spec.table) {
                continue;
            }
            if !filter.is_empty() {
                let Ok((v, m)) = crate::flow::key::compile_match(&f.spec.matches, &resolve) else {
                    continue;
                };
                let ok = (0..fm.0.len())
                    .all(|i| m.0[i] & fm.0[i] == fm.0[i] && v.0[i] & fm.0[i] == fv.0[i]);
                if !ok {
                    continue;
                }
            }
            let (p, b, hit) = self.flow_sums(f.id);
            let last = hit.max(f.added_ms);
            out.push(FlowStats {
                spec: f.spec.clone(),
                n_packets: p.saturating_sub(f.base_packets),
                n_bytes: b.saturating_sub(f.base_bytes),
                duration_ms: now.saturating_sub(f.added_ms),
                idle_ms: now.saturating_sub(last),
            });
        }
        out.sort_by(|a, b| {
            (a.spec.table, std::cmp::Reverse(a.spec.priority))
                .cmp(&(b.spec.table, std::cmp::Reverse(b.spec.priority)))
        });
        Ok(out)
    }

    /// Per-table counters (tables with flows, a miss setting, or traffic).
    pub fn dump_tables(&self) -> Vec<TableStats> {
        let mut out = Vec::new();
        for t in 0..=MAX_TABLE {
            let flows = self
                .config
                .flows
                .flows
                .iter()
                .filter(|f| f.spec.table == t)
                .count() as u64;
            let lookups: u64 = self
                .workers
                .iter()
                .map(|w| w.counters.tables[t as usize].lookups.get())
                .sum();
            let matches: u64 = self
                .workers
                .iter()
                .map(|w| w.counters.tables[t as usize].matches.get())
                .sum();
            let miss = self
                .config
                .flows
                .misses
                .get(&t)
                .copied()
                .unwrap_or_default();
            if flows > 0 || lookups > 0 || self.config.flows.misses.contains_key(&t) {
                out.push(TableStats {
                    table: t,
                    flows,
                    lookups,
                    matches,
                    miss,
                });
            }
        }
        out
    }

    /// Runs a described packet through the tables and the built-in forwarding without
    /// sending anything.
    pub fn trace(&self, in_port: &PortRef, matches: &[Match]) -> Result<TraceRepr, Refusal> {
        let resolve = self.resolver();
        let port = resolve(in_port)
            .ok_or_else(|| refuse(ErrorCode::Invalid, format!("no port {in_port}")))?;
        let mut ms = matches.to_vec();
        controlplane::flow_syntax::canonicalize(&mut ms);
        let tables = self
            .fib
            .read()
            .ok_or_else(|| refuse(ErrorCode::Invalid, "the switch is shutting down"))?;
        let frame = crate::trace::synthesize(&ms, &tables, port);
        crate::trace::run(&tables, port, &ms, frame, &|n| self.port_name(n))
            .map_err(|m| refuse(ErrorCode::Invalid, m))
    }

    /// Starts capturing a port on every worker; one capture at a time.
    pub fn capture_start(&mut self, port: &PortRef) -> Result<(PortNo, String), Refusal> {
        let no = self.resolver()(port)
            .ok_or_else(|| refuse(ErrorCode::Invalid, format!("no port {port}")))?;
        if let Some(p) = self.capturing {
            return Err(refuse(
                ErrorCode::Failed,
                format!("a capture of port {p} is running; one at a time"),
            ));
        }
        self.capturing = Some(no);
        for w in &self.workers {
            w.capture.start(no);
        }
        Ok((no, self.port_name(no)))
    }

    /// Hands captured frames to `f`.
    pub fn capture_drain(&self, f: &mut dyn FnMut(&crate::capture::CapBuf)) {
        for w in &self.workers {
            w.capture.drain(&mut *f);
        }
    }

    /// Stops the capture.
    pub fn capture_stop(&mut self) {
        self.capturing = None;
        for w in &self.workers {
            w.capture.stop();
        }
    }

    /// Frames the capture lost so far (its pools were full).
    pub fn capture_lost(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.counters.events[Event::CaptureLost as usize].get())
            .sum()
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
}

/// Pod traffic leaving the cluster through the node's stack gets the node's address, as
/// OpenShift-SDN's masquerade rule did: table `ip vxswitch`, replaced whole on every start.
fn install_masquerade(cluster: Ipv4Cidr) -> io::Result<()> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
    let _ = run_cmd("nft", &["delete", "table", "ip", "vxswitch"]);
    run_cmd("nft", &["add", "table", "ip", "vxswitch"])?;
    run_cmd(
        "nft",
        &["add chain ip vxswitch postrouting { type nat hook postrouting priority 100 ; }"],
    )?;
    let rule = format!(
        "add rule ip vxswitch postrouting ip saddr {cluster} ip daddr != {cluster} oifname != \"{HOST_PORT_NAME}\" masquerade"
    );
    run_cmd("nft", &[&rule])
}

fn target_repr(t: &Tables, target: Target) -> FdbTarget {
    match target {
        Target::Port(no) => FdbTarget::Port {
            no,
            name: t.port(no).map(|p| p.name.clone()).unwrap_or_default(),
        },
        Target::Node(n) => match t.node(n) {
            Some(node) => FdbTarget::Node {
                name: node.name.clone(),
                vtep: node.vtep,
            },
            None => FdbTarget::Node {
                name: String::new(),
                vtep: IpAddr::from([0, 0, 0, 0]),
            },
        },
    }
}

fn change_name(c: &Change) -> String {
    match c {
        Change::SetLocalNode(n) => format!("set_local_node {}", n.name),
        Change::AddPort(p) => format!("add_port {}", p.name),
        Change::DelPort { name } => format!("del_port {name}"),
        Change::AddNode(n) => format!("add_node {}", n.name),
        Change::DelNode { name } => format!("del_node {name}"),
    }
}

/// Applies one change to a configuration copy, checking ownership and local consistency.
pub fn apply_change(next: &mut Config, owner: Owner, ch: &Change) -> Result<(), Refusal> {
    match ch {
        Change::SetLocalNode(l) => {
            l.validate().map_err(|m| refuse(ErrorCode::Invalid, m))?;
            if let Some(cur) = &next.local {
                if cur.spec == *l {
                    return Ok(());
                }
                if cur.owner != owner {
                    return Err(refuse(
                        ErrorCode::Owner,
                        format!("the local node is owned by {}", cur.owner),
                    ));
                }
                if cur.spec.vtep != l.vtep
                    || cur.spec.subnet != l.subnet
                    || cur.spec.gateway() != l.gateway()
                {
                    return Err(refuse(
                        ErrorCode::Invalid,
                        "the VTEP address, subnet and gateway of a running switch cannot change; restart vxswitchd with a fresh state file",
                    ));
                }
            }
            next.local = Some(Owned {
                owner,
                spec: l.clone(),
            });
        }
        Change::AddPort(p) => {
            p.validate().map_err(|m| refuse(ErrorCode::Invalid, m))?;
            if let Some(cur) = next.ports.get(&p.name) {
                if cur.spec == *p && cur.owner == owner {
                    return Ok(());
                }
                return Err(refuse(
                    if cur.owner != owner {
                        ErrorCode::Owner
                    } else {
                        ErrorCode::Invalid
                    },
                    format!(
                        "port {} already exists (owned by {}); delete it first",
                        p.name, cur.owner
                    ),
                ));
            }
            let used: BTreeSet<PortNo> = next.ports.values().map(|p| p.no).collect();
            let no = (PORT_FIRST_POD..crate::counters::MAX_PORTS as u16)
                .find(|n| !used.contains(n))
                .ok_or_else(|| refuse(ErrorCode::Invalid, "no free port number"))?;
            next.ports.insert(
                p.name.clone(),
                PortCfg {
                    no,
                    owner,
                    spec: p.clone(),
                },
            );
        }
        Change::DelPort { name } => match next.ports.get(name) {
            None => return Err(refuse(ErrorCode::Invalid, format!("no port named {name}"))),
            Some(cur) if cur.owner != owner => {
                return Err(refuse(
                    ErrorCode::Owner,
                    format!("port {name} is owned by {}", cur.owner),
                ))
            }
            Some(_) => {
                next.ports.remove(name);
            }
        },
        Change::AddNode(n) => {
            n.validate().map_err(|m| refuse(ErrorCode::Invalid, m))?;
            if let Some(cur) = next.nodes.get(&n.name) {
                if cur.spec == *n && cur.owner == owner {
                    return Ok(());
                }
                return Err(refuse(
                    if cur.owner != owner {
                        ErrorCode::Owner
                    } else {
                        ErrorCode::Invalid
                    },
                    format!(
                        "node {} already exists (owned by {}); delete it first",
                        n.name, cur.owner
                    ),
                ));
            }
            next.nodes.insert(
                n.name.clone(),
                Owned {
                    owner,
                    spec: n.clone(),
                },
            );
        }
        Change::DelNode { name } => match next.nodes.get(name) {
            None => return Err(refuse(ErrorCode::Invalid, format!("no node named {name}"))),
            Some(cur) if cur.owner != owner => {
                return Err(refuse(
                    ErrorCode::Owner,
                    format!("node {name} is owned by {}", cur.owner),
                ))
            }
            Some(_) => {
                next.nodes.remove(name);
            }
        },
    }
    Ok(())
}

/// Checks a whole configuration for conflicts.
pub fn validate(c: &Config) -> Result<(), String> {
    let local = c.local.as_ref().map(|l| &l.spec);
    if local.is_none() && !c.ports.is_empty() {
        return Err(
            "pods need the local node first (set_local_node in the same batch or before)".into(),
        );
    }
    let mut macs = BTreeMap::new();
    let mut ips = BTreeMap::new();
    let mut devs = BTreeMap::new();
    for p in c.ports.values() {
        let s = &p.spec;
        if let Some(l) = local {
            let gw = l.gateway();
            if !l.subnet.contains(s.ip) || s.ip == l.subnet.addr() || s.ip == l.subnet.broadcast() {
                return Err(format!(
                    "port {}: {} is not a host address of the node subnet {}",
                    s.name, s.ip, l.subnet
                ));
            }
            if s.ip == gw {
                return Err(format!("port {}: {} is the gateway address", s.name, s.ip));
            }
            if s.mac == l.vtep_mac || eth(s.mac) == gateway_mac(gw) || eth(s.mac) == host_mac(gw) {
                return Err(format!(
                    "port {}: MAC {} is reserved by the switch",
                    s.name, s.mac
                ));
            }
        }
        if let Some(other) = macs.insert(s.mac, &s.name) {
            return Err(format!(
                "ports {other} and {} have the same MAC {}",
                s.name, s.mac
            ));
        }
        if let Some(other) = ips.insert(s.ip, &s.name) {
            return Err(format!(
                "ports {other} and {} have the same IP {}",
                s.name, s.ip
            ));
        }
        if let Some(other) = devs.insert((s.netns.clone(), s.ifname().to_string()), &s.name) {
            return Err(format!(
                "ports {other} and {} use the same interface {} in {}",
                s.name,
                s.ifname(),
                s.netns
            ));
        }
    }
    let nodes: Vec<&RemoteNode> = c.nodes.values().map(|n| &n.spec).collect();
    for (i, a) in nodes.iter().enumerate() {
        if let Some(l) = local {
            if a.subnet.overlaps(&l.subnet) {
                return Err(format!(
                    "node {}: subnet {} overlaps this node's subnet {}",
                    a.name, a.subnet, l.subnet
                ));
            }
            if a.vtep == l.vtep {
                return Err(format!(
                    "node {}: VTEP {} is this node's own",
                    a.name, a.vtep
                ));
            }
        }
        for b in &nodes[i + 1..] {
            if a.subnet.overlaps(&b.subnet) {
                return Err(format!(
                    "nodes {} and {} have overlapping subnets {} and {}",
                    a.name, b.name, a.subnet, b.subnet
                ));
            }
            if a.vtep == b.vtep {
                return Err(format!(
                    "nodes {} and {} have the same VTEP {}",
                    a.name, b.name, a.vtep
                ));
            }
        }
    }
    Ok(())
}
