//! Flow tables on the control side: bundles of flow changes, timeouts, dumps, trace, capture.

use super::publish::Record;
use super::*;

impl Switch {
    pub(super) fn port_name(&self, no: PortNo) -> String {
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
    pub(super) fn flow_sums(&self, id: FlowId) -> (u64, u64, u64) {
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
        // The store is taken out while it changes (the resolver reads the ports beside it).
        let mut flows = std::mem::take(&mut self.config.flows);
        let applied = {
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
            flows.apply(mods, &cx)
        };
        self.config.flows = flows;
        let events = applied.map_err(|m| refuse(ErrorCode::Invalid, m))?;
        self.publish_flows();
        self.record(Record::FlowMods(mods.to_vec()));
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
        let mut flows = std::mem::take(&mut self.config.flows);
        let removed = flows.remove_ids(&expired, &self.resolver());
        self.config.flows = flows;
        self.publish_flows();
        // Recorded as the strict deletes that remove exactly these flows.
        let mods: Vec<FlowMod> = removed
            .iter()
            .map(|(f, _)| FlowMod::Delete {
                table: Some(f.table),
                priority: Some(f.priority),
                matches: f.matches.clone(),
                strict: true,
                cookie: None,
            })
            .collect();
        self.record(Record::FlowMods(mods));
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
    /// The groups (one when `group_id` is given), ordered by id.
    pub fn dump_groups(&self, group_id: Option<u32>) -> Vec<GroupSpec> {
        self.config
            .flows
            .groups()
            .values()
            .filter(|g| group_id.is_none_or(|id| id == g.group_id))
            .cloned()
            .collect()
    }

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
        for f in self.config.flows.flows() {
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
        let mut per_table = [0u64; MAX_TABLE as usize + 1];
        for f in self.config.flows.flows() {
            if let Some(n) = per_table.get_mut(f.spec.table as usize) {
                *n += 1;
            }
        }
        for t in 0..=MAX_TABLE {
            let flows = per_table[t as usize];
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
                .misses()
                .get(&t)
                .copied()
                .unwrap_or_default();
            if flows > 0 || lookups > 0 || self.config.flows.misses().contains_key(&t) {
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
        let cfg = crate::pipeline::PipelineConfig {
            src_port_min: self.cfg.src_port_min,
            src_port_max: self.cfg.src_port_max,
            src_ports: self.cfg.src_ports,
            flood_max_nodes: self.cfg.flood_max_nodes,
            ..Default::default()
        };
        crate::trace::run_with(&cfg, &tables, port, &ms, frame, &|n| self.port_name(n))
            .map_err(|m| refuse(ErrorCode::Invalid, m))
    }

    /// Runs `f` on the published tables with the switch's pipeline settings, its port
    /// resolver and port names (for traces shaped otherwise than [`Switch::trace`], such as
    /// `ovs-appctl ofproto/trace`). `None` while the switch shuts down.
    pub fn with_tables<R>(
        &self,
        f: impl FnOnce(
            &Tables,
            &crate::pipeline::PipelineConfig,
            &dyn Fn(&PortRef) -> Option<PortNo>,
            &dyn Fn(PortNo) -> String,
        ) -> R,
    ) -> Option<R> {
        let resolve = self.resolver();
        let tables = self.fib.read()?;
        let cfg = crate::pipeline::PipelineConfig {
            src_port_min: self.cfg.src_port_min,
            src_port_max: self.cfg.src_port_max,
            src_ports: self.cfg.src_ports,
            flood_max_nodes: self.cfg.flood_max_nodes,
            ..Default::default()
        };
        Some(f(&tables, &cfg, &resolve, &|n| self.port_name(n)))
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

    /// The receiving end of the workers' learn events (to wait for some without the lock).
    pub fn learn_receiver(&self) -> crossbeam_channel::Receiver<crate::learn::LearnEvent> {
        self.learn.rx.clone()
    }

    /// Applies what the workers learned since the last call: one bundle of flow adds; a
    /// learned flow that is already there as it would be added only has its timeouts
    /// restarted. Returns how many flows were added or changed.
    pub fn drain_learns(&mut self) -> usize {
        let fs = match self.fib.read() {
            Some(t) => t.flows.clone(),
            None => None,
        };
        let now = crate::clock::now_ms();
        let mut adds: Vec<FlowSpec> = Vec::new();
        while let Ok(e) = self.learn.rx.try_recv() {
            // A learn of an older flow set: its spec index may mean another spec now; the
            // packets of the new version learn again.
            let Some(spec) = fs
                .as_ref()
                .filter(|fs| fs.version == e.version)
                .and_then(|fs| fs.learns.get(e.index as usize))
            else {
                continue;
            };
            let Ok(flow) = crate::learn::build(spec, &e.vals) else {
                continue;
            };
            if self.config.flows.restart(&flow, now) {
                continue;
            }
            if !adds.contains(&flow) {
                adds.push(flow);
            }
        }
        if adds.is_empty() {
            return 0;
        }
        let mods: Vec<FlowMod> = adds
            .into_iter()
            .map(|flow| FlowMod::Add {
                flow,
                reset_counts: false,
            })
            .collect();
        if self.flow_mods(&mods).is_ok() {
            return mods.len();
        }
        // One flow the store refuses does not keep the others out.
        mods.chunks(1).filter(|m| self.flow_mods(m).is_ok()).count()
    }
}
