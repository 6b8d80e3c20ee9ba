//! Publication: the tables built from the configuration and swapped in, the state file, and the views of them (state, stats, fdb).

use super::*;

impl Switch {
    /// Builds the tables from the configuration and publishes them as a new version.
    pub(super) fn publish(&mut self) {
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
            for n in self.config.nodes.values() {
                t.nodes.push(NodeEntry {
                    name: n.spec.name.clone(),
                    vtep: n.spec.vtep,
                    vtep_mac: eth(n.spec.vtep_mac),
                    subnet: n.spec.subnet,
                    subnet6: n.spec.subnet6,
                });
            }
            t.local = Some(info);
        }
        t.reindex();
        self.probe_path_mtus(&t);
        let resolve = self.resolver();
        t.flows = Some(Arc::new(self.config.flows.compile(self.version, &resolve)));
        drop(resolve);
        self.fib.replace(t);
    }

    /// Reads the path MTU to every remote VTEP from the kernel (the route's MTU, or what ICMP
    /// taught it) for the workers, before they see the new node indexes. A node the kernel
    /// has no route to keeps the node-wide MTU.
    fn probe_path_mtus(&self, t: &Tables) {
        let local = t.local.as_ref().map(|l| l.vtep);
        let vteps: Vec<IpAddr> = t.nodes.iter().map(|n| n.vtep).collect();
        self.probe_vteps(local, &vteps);
    }

    fn probe_vteps(&self, local: Option<IpAddr>, vteps: &[IpAddr]) {
        for (i, &vtep) in vteps.iter().enumerate() {
            let dst = std::net::SocketAddr::new(vtep, self.cfg.vxlan_port);
            match crate::io::udp::path_mtu(local, dst) {
                Ok(mtu) => self.pmtu.set(i as crate::fib::NodeIdx, vtep, mtu),
                Err(_) => self.pmtu.clear(i as crate::fib::NodeIdx),
            }
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

    pub(super) fn save(&self) {
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
                // Written whole and flushed to disk before it replaces the old file, and the
                // directory entry flushed after: a crash at any point leaves one or the other.
                let mut f = std::fs::File::create(&tmp)?;
                io::Write::write_all(&mut f, &b)?;
                f.sync_all()
            })
            .and_then(|_| std::fs::rename(&tmp, path))
            .and_then(|_| match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
                _ => Ok(()),
            });
        if let Err(e) = r {
            eprintln!("vxswitchd: cannot save state to {}: {e}", path.display());
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
    FlowMods(Vec<FlowMod>),
    /// Something else changed (expiry, restore): the whole configuration is written.
    Snapshot,
}

impl Switch {
    /// Records an applied change in the state file.
    pub(super) fn record(&mut self, _entry: Record) {
        self.save();
    }
}

impl Switch {
    /// Publishes a new version in which only the flow tables changed.
    pub(super) fn publish_flows(&mut self) {
        self.publish();
    }
}
