//! The flow tables kept compiled between versions: a flow added, changed or removed changes
//! its own rules (and a conjunction it belongs to is expanded again), nothing else; a new
//! version is a copy of pointers ([`FlowSet`] shares its parts). Port names are remembered as
//! resolved, and the flows naming a port that changed are compiled again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use controlplane::flow::{FlowAction, FlowSpec, GroupSpec, Match, PortRef, TableMiss};
use rustc_hash::FxHashMap;

use super::key::{self, FlowKey, IN_PORT};
use super::{
    compile_action, conj_role, expand_conjunctions, in_table, ConjRole, FlowId, FlowSet, Group, Op,
    Rule, MAX_CONJUNCTION_RULES,
};
use crate::fib::PortNo;

/// What one flow put into the tables.
#[derive(Debug, Clone, Default)]
struct Owned {
    rules: Vec<u32>,
    learns: Vec<u32>,
    names: Vec<String>,
}

/// A port name flows use, as resolved when they were compiled.
#[derive(Debug, Clone)]
struct Name {
    port: Option<PortNo>,
    flows: BTreeSet<FlowId>,
}

/// The compiled flow tables, changed flow by flow.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    set: FlowSet,
    next_rule: u32,
    free_rules: Vec<u32>,
    next_learn: u32,
    free_learns: Vec<u32>,
    owned: FxHashMap<FlowId, Owned>,
    /// The rules each conjunction (table, id) expanded into.
    conj: BTreeMap<(u8, u32), Vec<u32>>,
    names: HashMap<String, Name>,
    /// Port names the groups use, as resolved when they were compiled.
    group_names: HashMap<String, Option<PortNo>>,
}

/// The conjunctions (table, id) a flow is a clause or the `conj_id` flow of.
pub fn conj_keys(f: &FlowSpec) -> Vec<(u8, u32)> {
    match conj_role(f) {
        ConjRole::None => Vec::new(),
        ConjRole::Target(id) => vec![(f.table, id)],
        ConjRole::Clause => {
            let mut v: Vec<(u8, u32)> = f
                .actions
                .iter()
                .filter_map(|a| match a {
                    FlowAction::Conjunction { id, .. } => Some((f.table, *id)),
                    _ => None,
                })
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        }
    }
}

/// The port names a flow's matches and actions use.
fn port_names(f: &FlowSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |p: &PortRef| {
        if let PortRef::Name(n) = p {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
    };
    for m in &f.matches {
        if let Match::InPort { port } = m {
            add(port);
        }
    }
    for a in &f.actions {
        match a {
            FlowAction::Output { port } => add(port),
            FlowAction::Resubmit {
                in_port: Some(port),
                ..
            } => add(port),
            _ => {}
        }
    }
    out
}

fn group_port_names(g: &GroupSpec) -> Vec<PortRef> {
    let mut out = Vec::new();
    for b in &g.buckets {
        out.extend(b.watch_port.clone());
        for a in &b.actions {
            match a {
                FlowAction::Output { port } => out.push(port.clone()),
                FlowAction::Resubmit {
                    in_port: Some(port),
                    ..
                } => out.push(port.clone()),
                _ => {}
            }
        }
    }
    out.retain(|p| matches!(p, PortRef::Name(_)));
    out
}

impl Classifier {
    /// The tables as they are now, as version `version`.
    pub fn snapshot(&self, version: u64) -> FlowSet {
        let mut s = self.set.clone();
        s.version = version;
        s
    }

    /// The tables as they are now.
    pub fn set(&self) -> &FlowSet {
        &self.set
    }

    /// Whether flow `id` is compiled into the tables.
    pub fn has(&self, id: FlowId) -> bool {
        self.owned.contains_key(&id)
    }

    fn insert_rule(&mut self, rule: Rule) -> u32 {
        let i = self.free_rules.pop().unwrap_or_else(|| {
            self.next_rule += 1;
            self.next_rule - 1
        });
        if let Some(t) = self.set.tables.get_mut(rule.table as usize) {
            Arc::make_mut(t).insert(rule.value, rule.mask, rule.priority, i);
        }
        self.set.rules.set(i as usize, Some(Arc::new(rule)));
        i
    }

    fn remove_rule(&mut self, i: u32) {
        let Some(r) = self.set.rules.get(i as usize) else {
            return;
        };
        let (table, value, mask, p) = (r.table, r.value, r.mask, r.priority);
        if let Some(t) = self.set.tables.get_mut(table as usize) {
            Arc::make_mut(t).remove(&value, &mask, p, i);
        }
        self.set.rules.set(i as usize, None);
        self.free_rules.push(i);
    }

    /// Compiles flow `id` into the tables (a conjunction's clause or `conj_id` flow only
    /// registers its port names: [`Classifier::set_conjunction`] expands it).
    pub fn add_flow(
        &mut self,
        id: FlowId,
        spec: &FlowSpec,
        resolve: &dyn Fn(&PortRef) -> Option<PortNo>,
    ) {
        self.remove_flow(id);
        let mut owned = Owned {
            names: port_names(spec),
            ..Default::default()
        };
        for n in &owned.names {
            self.names
                .entry(n.clone())
                .or_insert_with(|| Name {
                    port: resolve(&PortRef::Name(n.clone())),
                    flows: BTreeSet::new(),
                })
                .flows
                .insert(id);
        }
        if conj_role(spec) == ConjRole::None {
            let (value, mask) = match key::compile_match(&spec.matches, resolve) {
                Ok(vm) => vm,
                Err(_) => never(),
            };
            let mut ops = Vec::new();
            for a in &spec.actions {
                if let FlowAction::Learn(l) = a {
                    // A spec the packet path cannot carry is refused when added; one that
                    // got here anyway learns nothing.
                    if crate::learn::check(l).is_ok() {
                        let li = self.free_learns.pop().unwrap_or_else(|| {
                            self.next_learn += 1;
                            self.next_learn - 1
                        });
                        self.set
                            .learns
                            .set(li as usize, Some(Arc::new((**l).clone())));
                        owned.learns.push(li);
                        ops.push(Op::Learn(li));
                    }
                    continue;
                }
                ops.extend(compile_action(a, resolve).map(|op| in_table(op, spec.table)));
            }
            let r = self.insert_rule(Rule {
                id,
                table: spec.table,
                priority: spec.priority,
                value,
                mask,
                ops,
                spec: spec.clone(),
            });
            owned.rules.push(r);
        }
        self.owned.insert(id, owned);
    }

    /// Takes flow `id`'s rules out of the tables.
    pub fn remove_flow(&mut self, id: FlowId) {
        let Some(o) = self.owned.remove(&id) else {
            return;
        };
        for r in o.rules {
            self.remove_rule(r);
        }
        for l in o.learns {
            self.set.learns.set(l as usize, None);
            self.free_learns.push(l);
        }
        for n in o.names {
            if let Some(e) = self.names.get_mut(&n) {
                e.flows.remove(&id);
                if e.flows.is_empty() {
                    self.names.remove(&n);
                }
            }
        }
    }

    /// Expands conjunction `key` (table, id) again from its flows (its clauses and `conj_id`
    /// flows, in the store's order).
    pub fn set_conjunction(
        &mut self,
        key: (u8, u32),
        members: &[(FlowId, FlowSpec)],
        resolve: &dyn Fn(&PortRef) -> Option<PortNo>,
    ) {
        for r in self.conj.remove(&key).unwrap_or_default() {
            self.remove_rule(r);
        }
        let targets: Vec<(FlowId, FlowSpec)> = members
            .iter()
            .filter(|(_, f)| conj_role(f) == ConjRole::Target(key.1) && f.table == key.0)
            .chain(
                members
                    .iter()
                    .filter(|(_, f)| conj_role(f) == ConjRole::Clause),
            )
            .cloned()
            .collect();
        let rules =
            expand_conjunctions(&targets, resolve, MAX_CONJUNCTION_RULES).unwrap_or_default();
        let slots: Vec<u32> = rules.into_iter().map(|r| self.insert_rule(r)).collect();
        if !slots.is_empty() {
            self.conj.insert(key, slots);
        }
    }

    /// Compiles the groups again.
    pub fn set_groups<'a>(
        &mut self,
        groups: impl Iterator<Item = &'a GroupSpec>,
        resolve: &dyn Fn(&PortRef) -> Option<PortNo>,
    ) {
        let groups: Vec<&GroupSpec> = groups.collect();
        let ids: BTreeSet<u32> = groups.iter().map(|g| g.group_id).collect();
        let exists = |id: u32| ids.contains(&id);
        let mut map = FxHashMap::default();
        self.group_names.clear();
        for g in &groups {
            map.insert(g.group_id, Group::build(g, resolve, &exists));
            for p in group_port_names(g) {
                if let PortRef::Name(n) = &p {
                    self.group_names.insert(n.clone(), resolve(&p));
                }
            }
        }
        self.set.groups = Arc::new(map);
    }

    /// Sets a table's miss policy.
    pub fn set_miss(&mut self, table: u8, miss: TableMiss) {
        if let Some(t) = self.set.tables.get_mut(table as usize) {
            if t.miss != miss {
                Arc::make_mut(t).miss = miss;
            }
        }
    }

    /// The flows naming a port whose resolution changed since they were compiled (their
    /// names are taken as resolved now), and whether the groups name one.
    pub fn stale(&mut self, resolve: &dyn Fn(&PortRef) -> Option<PortNo>) -> (Vec<FlowId>, bool) {
        let mut ids = BTreeSet::new();
        for (n, e) in self.names.iter_mut() {
            let now = resolve(&PortRef::Name(n.clone()));
            if now != e.port {
                e.port = now;
                ids.extend(e.flows.iter().copied());
            }
        }
        let groups = self
            .group_names
            .iter()
            .any(|(n, p)| resolve(&PortRef::Name(n.clone())) != *p);
        (ids.into_iter().collect(), groups)
    }

    /// Ids of the compiled flows whose rules, in `table` (every table: `None`), cover the
    /// match (value, mask): a superset of what a loose selection by that match selects
    /// among the ordinary flows.
    pub fn covering(&self, table: Option<u8>, value: &FlowKey, mask: &FlowKey) -> Vec<FlowId> {
        let mut out = Vec::new();
        let tables: Box<dyn Iterator<Item = &Arc<super::Table>>> = match table {
            Some(t) => Box::new(self.set.tables.get(t as usize).into_iter()),
            None => Box::new(self.set.tables.iter()),
        };
        for t in tables {
            if t.flows == 0 {
                continue;
            }
            for r in t.covering(value, mask) {
                if let Some(rule) = self.set.rules.get(r as usize) {
                    out.push(rule.id);
                }
            }
        }
        out
    }
}

/// The match of a flow whose port is gone: it stays listed but can never match.
fn never() -> (FlowKey, FlowKey) {
    let (mut v, mut m) = (FlowKey::default(), FlowKey::default());
    v.set(IN_PORT, 0xffff);
    m.set(IN_PORT, 0xffff);
    (v, m)
}
