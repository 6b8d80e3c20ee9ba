//! Publication: the tables built from the configuration and swapped in, the state file, and the views of them (state, stats, fdb).

use super::*;

/// What a publication brings up to date.
pub(super) struct Dirty {
    pub nodes: Nodes,
    /// The local node and the pod ports (their MACs and IPs).
    pub ports: bool,
    /// The compiled flow tables.
    pub flows: bool,
}

/// The remote nodes a publication brings up to date.
pub(super) enum Nodes {
    None,
    /// These (by name): each leaves the tables if it went or changed, and comes back as it
    /// is now.
    Some(Vec<String>),
    /// All of them, from the configuration.
    All,
}

fn node_entry(n: &RemoteNode) -> NodeEntry {
    NodeEntry {
        name: n.name.clone(),
        vtep: n.vtep,
        vtep_mac: eth(n.vtep_mac),
        subnet: n.subnet,
        subnet6: n.subnet6,
    }
}

impl Switch {
    /// Brings every table up to date with the configuration and publishes them as a new
    /// version (the remote nodes only if they are not kept up to date change by change).
    pub(super) fn publish(&mut self) {
        self.publish_dirty(Dirty {
            nodes: Nodes::None,
            ports: true,
            flows: true,
        });
    }

    /// Publishes a new version with what `d` names brought up to date, entry by entry; the
    /// rest is shared with the published version.
    pub(super) fn publish_dirty(&mut self, d: Dirty) {
        self.version += 1;
        let mut base = match self.fib.read() {
            Some(t) => (*t.base).clone(),
            None => Base::default(),
        };
        base.version = self.version;
        if d.ports {
            self.stage_ports(&mut base);
        }
        let nodes = if self.nodes_synced {
            d.nodes
        } else {
            Nodes::All
        };
        self.stage_nodes(nodes);
        if d.flows || base.flows.is_none() {
            let resolve = self.resolver();
            base.flows = Some(Arc::new(self.config.flows.compile(self.version, &resolve)));
        }
        self.fib.set_base(Arc::new(base));
        self.fib.publish();
    }

    /// The local node and the pod ports: the small tables into `base`, the MAC and IP entries
    /// that differ from the published ones queued.
    fn stage_ports(&mut self, base: &mut Base) {
        let mut t = Tables::default();
        base.local = None;
        base.ports = Vec::new();
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
                subnet6: l.subnet6,
                gateway6: l.gateway6(),
            };
            let max_no = self
                .config
                .ports
                .values()
                .map(|p| p.no)
                .max()
                .unwrap_or(PORT_HOST);
            base.ports = vec![None; max_no as usize + 1];
            base.ports[PORT_HOST as usize] = Some(PortEntry {
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
                base.ports[p.no as usize] = Some(PortEntry {
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
                if let (Some(ip6), Some(_)) = (p.spec.ip6, l.subnet6) {
                    t.ips6.insert(
                        ip6,
                        IpEntry {
                            mac,
                            target: Target::Port(p.no),
                            vni,
                        },
                    );
                }
            }
            base.local = Some(info);
        }
        base.reindex();
        self.fib.stage_maps(&t);
    }

    /// The remote nodes: each one added or removed is one queued change (a removed node's
    /// index goes to the last node), and only new nodes' path MTUs are read.
    fn stage_nodes(&mut self, which: Nodes) {
        let local = self.config.local.as_ref().map(|l| l.spec.vtep);
        match which {
            Nodes::None => {}
            Nodes::All => {
                let nodes: Vec<NodeEntry> = match local {
                    Some(_) => self
                        .config
                        .nodes
                        .values()
                        .map(|n| node_entry(&n.spec))
                        .collect(),
                    None => Vec::new(),
                };
                self.node_names = nodes.iter().map(|n| n.name.clone()).collect();
                self.node_at = self
                    .node_names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), i as NodeIdx))
                    .collect();
                let vteps: Vec<IpAddr> = nodes.iter().map(|n| n.vtep).collect();
                self.probe_vteps(local, &vteps);
                self.fib.set_nodes(nodes);
                self.nodes_synced = true;
            }
            Nodes::Some(names) => {
                for name in names {
                    if let Some(idx) = self.node_at.remove(&name) {
                        self.fib.remove_node(idx);
                        let last = self.node_names.len() - 1;
                        self.node_names.swap_remove(idx as usize);
                        if idx as usize != last {
                            // The last node takes the freed index, and its path MTU with it.
                            let moved = self.node_names[idx as usize].clone();
                            self.node_at.insert(moved.clone(), idx);
                            if let Some(vtep) = self.config.nodes.get(&moved).map(|n| n.spec.vtep) {
                                match self.pmtu.get(last as NodeIdx, vtep) {
                                    Some(mtu) => self.pmtu.set(idx, vtep, mtu),
                                    None => self.probe_vtep(local, idx, vtep),
                                }
                            }
                        }
                    }
                    if local.is_none() {
                        continue;
                    }
                    let Some(n) = self.config.nodes.get(&name) else {
                        continue;
                    };
                    let entry = node_entry(&n.spec);
                    let idx = self.node_names.len() as NodeIdx;
                    self.probe_vtep(local, idx, entry.vtep);
                    self.fib.add_node(entry);
                    self.node_names.push(name.clone());
                    self.node_at.insert(name, idx);
                }
            }
        }
    }

    fn probe_vteps(&self, local: Option<IpAddr>, vteps: &[IpAddr]) {
        for (i, &vtep) in vteps.iter().enumerate() {
            self.probe_vtep(local, i as NodeIdx, vtep);
        }
    }

    fn probe_vtep(&self, local: Option<IpAddr>, idx: NodeIdx, vtep: IpAddr) {
        if idx as usize >= crate::pmtu::MAX_TRACKED_NODES {
            return;
        }
        let dst = std::net::SocketAddr::new(vtep, self.cfg.vxlan_port);
        match crate::io::udp::path_mtu(local, dst) {
            Ok(mtu) => self.pmtu.set(idx, vtep, mtu),
            Err(_) => self.pmtu.clear(idx),
        }
    }

    /// Reads every path MTU again: a path whose MTU went back up (the route changed, the
    /// kernel's learned PMTU expired) carries full-sized packets again. Called periodically.
    pub fn refresh_path_mtus(&self) {
        let (local, vteps) = {
            let Some(t) = self.fib.read() else {
                return;
            };
            let vteps: Vec<IpAddr> = t.nodes.iter().map(|n| n.vtep).collect();
            (t.local.as_ref().map(|l| l.vtep), vteps)
        };
        self.probe_vteps(local, &vteps);
    }

    /// Writes the whole configuration to the state file; its size in bytes.
    pub(super) fn save(&self) -> Option<u64> {
        let path = self.cfg.state_file.as_ref()?;
        let tmp = path.with_extension("tmp");
        let mut len = 0;
        let r = serde_json::to_vec_pretty(&self.config)
            .map_err(io::Error::other)
            .and_then(|b| {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                len = b.len() as u64;
                // Written whole and flushed to disk before it replaces the old file, and the
                // directory entry flushed after: a crash at any point leaves one or the other.
                let mut f = std::fs::File::create(&tmp)?;
                io::Write::write_all(&mut f, &b)?;
                f.sync_all()
            })
            .and_then(|_| std::fs::rename(&tmp, path))
            .and_then(|_| sync_dir(path));
        match r {
            Ok(()) => Some(len),
            Err(e) => {
                eprintln!("vxswitchd: cannot save state to {}: {e}", path.display());
                None
            }
        }
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
        let mut events: Vec<NamedCounter> = Event::ALL
            .iter()
            .map(|e| NamedCounter {
                name: e.name().into(),
                value: ws.iter().map(|w| w.events[*e as usize].get()).sum(),
            })
            .collect();
        events.extend(
            crate::counters::ControlError::ALL
                .iter()
                .map(|e| NamedCounter {
                    name: e.name().into(),
                    value: self.control.get(*e),
                }),
        );
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

/// A change as the state file records it (see [`Switch::record`]).
#[derive(Debug, Clone)]
pub(super) enum Record {
    /// A batch that applied.
    Apply(ApplyRequest),
    /// A bundle of flow changes that applied.
    #[allow(dead_code)]
    FlowMods(Vec<FlowMod>),
    /// Something else changed (expiry, restore, shutdown): the whole configuration is
    /// written and the journal starts again.
    Snapshot,
}

/// The journal grows to at least this many bytes before it is folded into the state file.
const JOURNAL_MIN_BYTES: u64 = 1 << 20;

/// The state file's journal: the changes applied since the state file was last written whole,
/// one JSON line each, appended and flushed to disk before the change is acknowledged.
///
/// A change then costs one short line whatever the size of the configuration. Once the
/// journal outgrows twice the state file (and at least [`JOURNAL_MIN_BYTES`]) the
/// configuration is written whole again and the journal starts empty, so writing the state
/// file costs, spread over the changes, a few times the size of one line.
pub(super) struct Journal {
    file: std::fs::File,
    bytes: u64,
    limit: u64,
}

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct JournalLine {
    /// Numbers the changes; the state file names the last one it holds (`journal_seq`).
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<ApplyRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_mods: Option<Vec<FlowMod>>,
}

/// The journal that goes with a state file: `state.json` → `state.json.journal`.
pub fn journal_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".journal");
    state.with_file_name(name)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Replays a journal onto the configuration read from the state file: the changes numbered
/// after the state file's `journal_seq`, in order. A torn last line (a crash while it was
/// written) is ignored; a line that does not read in the middle stops the replay there.
/// Returns the number of changes replayed and whether the journal ended cleanly.
///
/// The changes were checked when they applied, so they are not checked one by one again;
/// the caller checks the result as a whole.
pub(super) fn replay(bytes: &[u8], c: &mut Config, what: &str) -> usize {
    let mut replayed = 0;
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let last = lines
        .iter()
        .rposition(|l| !l.iter().all(u8::is_ascii_whitespace));
    for (k, line) in lines.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry: JournalLine = match serde_json::from_slice(line) {
            Ok(e) => e,
            Err(e) if Some(k) == last => {
                eprintln!(
                    "vxswitchd: {what}: the last line (line {}) is torn ({e}); ignored",
                    k + 1
                );
                break;
            }
            Err(e) => {
                eprintln!(
                    "vxswitchd: {what}: line {} does not read ({e}); the changes from there \
                     on are not replayed",
                    k + 1
                );
                break;
            }
        };
        if entry.seq <= c.journal_seq {
            continue;
        }
        if let Some(req) = &entry.apply {
            if let Err(r) = config::apply_batch(c, req.owner, &req.changes) {
                eprintln!(
                    "vxswitchd: {what}: change {} no longer applies ({}); skipped",
                    entry.seq, r.message
                );
            }
        }
        if let Some(mods) = &entry.flow_mods {
            let resolve = |p: &PortRef| resolve_port(c, p);
            let sums = |_: FlowId| (0, 0);
            let cx = flowstore::Context {
                resolve: &resolve,
                sums: &sums,
                now_ms: crate::clock::now_ms(),
            };
            // A copy shares the store until it changes; it replaces the configuration's
            // once the closures that read the configuration are done.
            let mut next = c.flows.clone();
            match next.apply(mods, &cx) {
                Ok(_) => c.flows = next,
                Err(m) => eprintln!(
                    "vxswitchd: {what}: flow change {} no longer applies ({m}); skipped",
                    entry.seq
                ),
            }
        }
        c.journal_seq = entry.seq;
        replayed += 1;
    }
    replayed
}

impl Switch {
    /// Records an applied change in the state file: one line appended to its journal.
    pub(super) fn record(&mut self, entry: Record) {
        let Some(path) = self.cfg.state_file.clone() else {
            return;
        };
        let mut line = JournalLine {
            seq: 0,
            apply: None,
            flow_mods: None,
        };
        match entry {
            Record::Snapshot => return self.compact(),
            Record::Apply(req) => line.apply = Some(req),
            Record::FlowMods(mods) => line.flow_mods = Some(mods),
        }
        self.config.journal_seq += 1;
        line.seq = self.config.journal_seq;
        let Some(j) = &mut self.journal else {
            // No journal yet: the state file written whole holds this change.
            return self.compact();
        };
        let r = serde_json::to_vec(&line)
            .map_err(io::Error::other)
            .and_then(|mut b| {
                b.push(b'\n');
                io::Write::write_all(&mut j.file, &b)?;
                j.file.sync_data()?;
                Ok(b.len() as u64)
            });
        match r {
            Ok(n) => {
                j.bytes += n;
                if j.bytes > j.limit {
                    self.compact();
                }
            }
            Err(e) => {
                eprintln!(
                    "vxswitchd: cannot append to {}: {e}; writing the state file whole",
                    journal_path(&path).display()
                );
                self.compact();
            }
        }
    }

    /// Writes the configuration whole to the state file and starts the journal again.
    pub(super) fn compact(&mut self) {
        self.journal = None;
        let Some(path) = self.cfg.state_file.clone() else {
            return;
        };
        let Some(len) = self.save() else {
            return;
        };
        let jp = journal_path(&path);
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&jp)
            .and_then(|f| {
                f.sync_all()?;
                sync_dir(&jp)?;
                Ok(f)
            });
        match opened {
            Ok(file) => {
                self.journal = Some(Journal {
                    file,
                    bytes: 0,
                    limit: JOURNAL_MIN_BYTES.max(2 * len),
                })
            }
            Err(e) => eprintln!(
                "vxswitchd: cannot open the journal {}: {e}; the state file is written whole \
                 per change",
                jp.display()
            ),
        }
    }
}

/// Resolves a flow's port reference in a configuration (see [`Switch::resolver`]).
pub(super) fn resolve_port(c: &Config, p: &PortRef) -> Option<PortNo> {
    match p {
        PortRef::Number(n) if (*n as usize) < crate::counters::MAX_PORTS && *n > 0 => Some(*n),
        PortRef::Number(_) => None,
        PortRef::Name(name) => match name.as_str() {
            TUNNEL_PORT_NAME => Some(PORT_TUNNEL),
            HOST_PORT_NAME => Some(PORT_HOST),
            other => c.ports.get(other).map(|p| p.no),
        },
    }
}

impl Switch {
    /// Publishes a new version in which only the flow tables changed.
    #[allow(dead_code)] // the flow path's (switch/flows.rs)
    pub(super) fn publish_flows(&mut self) {
        self.publish_dirty(Dirty {
            nodes: Nodes::None,
            ports: false,
            flows: true,
        });
    }
}

#[cfg(test)]
mod journal_tests {
    use super::*;

    fn node(i: u8) -> RemoteNode {
        RemoteNode {
            name: format!("n{i}"),
            vtep: Ipv4Addr::new(203, 0, 113, i).into(),
            vtep_mac: MacAddr([2, 0, 0, 0, 0, i]),
            subnet: Ipv4Cidr::new(Ipv4Addr::new(10, 1, 100 + i, 0), 24).unwrap(),
            subnet6: None,
        }
    }

    fn line(seq: u64, changes: Vec<Change>) -> String {
        let l = JournalLine {
            seq,
            apply: Some(ApplyRequest {
                owner: Owner::Agent,
                expected_version: None,
                changes,
            }),
            flow_mods: None,
        };
        serde_json::to_string(&l).unwrap() + "\n"
    }

    fn journal() -> String {
        line(1, vec![Change::AddNode(node(1)), Change::AddNode(node(2))])
            + &line(2, vec![Change::DelNode { name: "n1".into() }])
            + &line(3, vec![Change::AddNode(node(3))])
    }

    fn names(c: &Config) -> Vec<&str> {
        c.nodes.keys().map(|n| n.as_str()).collect()
    }

    #[test]
    fn a_journal_replays_in_order_after_the_state_file() {
        let mut c = Config::default();
        assert_eq!(replay(journal().as_bytes(), &mut c, "test"), 3);
        assert_eq!(names(&c), ["n2", "n3"]);
        assert_eq!(c.journal_seq, 3);
        assert!(validate(&c).is_ok());
        // A state file written after change 2 (a crash before the journal was emptied):
        // changes 1 and 2 are in it already and are not applied twice.
        let mut c = Config::default();
        c.nodes.insert(
            "n2".into(),
            Owned {
                owner: Owner::Agent,
                spec: node(2),
            },
        );
        c.journal_seq = 2;
        assert_eq!(replay(journal().as_bytes(), &mut c, "test"), 1);
        assert_eq!(names(&c), ["n2", "n3"]);
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let j = journal();
        let torn = &j[..j.len() - 20];
        let mut c = Config::default();
        assert_eq!(replay(torn.as_bytes(), &mut c, "test"), 2);
        assert_eq!(names(&c), ["n2"]);
        assert_eq!(c.journal_seq, 2);
    }

    #[test]
    fn a_corrupt_line_stops_the_replay_there_and_keeps_what_came_before() {
        let j = line(1, vec![Change::AddNode(node(1))])
            + "{\"seq\": 2, garbage\n"
            + &line(3, vec![Change::AddNode(node(3))]);
        let mut c = Config::default();
        assert_eq!(replay(j.as_bytes(), &mut c, "test"), 1);
        assert_eq!(names(&c), ["n1"]);
        // Binary garbage reads as nothing at all.
        let mut c = Config::default();
        assert_eq!(replay(&[0xff, 0xfe, b'\n', 0], &mut c, "test"), 0);
        assert_eq!(c, Config::default());
    }

    #[test]
    fn a_change_that_no_longer_applies_is_skipped_whole() {
        // Change 2 deletes a node that is not there: none of its batch applies.
        let j = line(1, vec![Change::AddNode(node(1))])
            + &line(
                2,
                vec![
                    Change::AddNode(node(2)),
                    Change::DelNode { name: "n9".into() },
                ],
            )
            + &line(3, vec![Change::AddNode(node(3))]);
        let mut c = Config::default();
        assert_eq!(replay(j.as_bytes(), &mut c, "test"), 3);
        assert_eq!(names(&c), ["n1", "n3"]);
    }

    #[test]
    fn the_journal_sits_next_to_the_state_file() {
        assert_eq!(
            journal_path(Path::new("/var/lib/vxswitch/state.json")),
            Path::new("/var/lib/vxswitch/state.json.journal")
        );
    }
}
