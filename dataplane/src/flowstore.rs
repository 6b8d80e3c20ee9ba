//! The control side of the flow tables: the flows as configured, their ids and counter bases,
//! bundles applied all or nothing, timeouts, and the events monitors see.
//!
//! A bundle changes the store in place and keeps an undo log: a refused bundle is rolled
//! back entry by entry, an accepted one updates the compiled tables flow by flow (see
//! [`Classifier`]). Flows are indexed by id, by rule (table, priority, match) and by the
//! conjunctions they belong to, so one change costs what it touches, not what is present.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use controlplane::flow::*;
use controlplane::flow_syntax::canonicalize;
use controlplane::proto::{FlowEvent, FlowEventKind, PORT_TUNNEL};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::fib::PortNo;
use crate::flow::key::{compile_match, FlowKey};
use crate::flow::{conj_keys, conjunction_rules, Classifier, FlowId, FlowSet, MAX_FLOWS};

/// A configured flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowEntry {
    pub id: FlowId,
    pub spec: FlowSpec,
    /// Clock ([`crate::clock`]) milliseconds when added; not saved across restarts.
    #[serde(skip)]
    pub added_ms: u64,
    /// Worker counter sums when the id was given to this flow.
    #[serde(skip)]
    pub base_packets: u64,
    #[serde(skip)]
    pub base_bytes: u64,
}

/// Every flow and table setting. A copy is cheap (the copies share the store until one of
/// them changes); it is saved as `{"flows": [...], "misses": {...}, "groups": {...}}`.
#[derive(Clone, Default)]
pub struct FlowStore {
    s: Arc<Store>,
}

pub use crate::flow::MAX_CONJUNCTION_RULES;

/// A change a bundle made, for monitors: what happened, why, to which flow.
pub type Change = (FlowEventKind, String, FlowSpec);

/// What the store needs from the switch while applying a bundle.
pub struct Context<'a> {
    pub resolve: &'a dyn Fn(&PortRef) -> Option<PortNo>,
    /// Current worker sums (packets, bytes) of a flow id.
    pub sums: &'a dyn Fn(FlowId) -> (u64, u64),
    pub now_ms: u64,
}

/// What makes two flows the same rule: table, priority, match.
type RuleKey = (u8, u16, Vec<Match>);

fn rule_key(f: &FlowSpec) -> RuleKey {
    (f.table, f.priority, f.matches.clone())
}

/// A conjunction: (table, conjunction id).
type ConjKey = (u8, u32);

#[derive(Default)]
struct Store {
    /// The flows in the order they were added (by sequence number).
    flows: BTreeMap<u64, FlowEntry>,
    seq_of: FxHashMap<FlowId, u64>,
    by_rule: HashMap<RuleKey, FlowId>,
    next_seq: u64,
    /// Ids below `next_id` not in use.
    free_ids: BTreeSet<FlowId>,
    next_id: FlowId,
    /// Flows with a timeout.
    timed: BTreeSet<FlowId>,
    /// The clauses and `conj_id` flows of each conjunction.
    conj: BTreeMap<ConjKey, BTreeSet<FlowId>>,
    /// The rules each conjunction expands into at most, and their sum.
    conj_counts: BTreeMap<ConjKey, usize>,
    conj_total: usize,
    misses: BTreeMap<u8, TableMiss>,
    groups: BTreeMap<u32, GroupSpec>,
    /// The compiled tables (`None`: built at the next [`FlowStore::compile`]).
    cls: Mutex<Option<Classifier>>,
}

impl Clone for Store {
    fn clone(&self) -> Self {
        Store {
            flows: self.flows.clone(),
            seq_of: self.seq_of.clone(),
            by_rule: self.by_rule.clone(),
            next_seq: self.next_seq,
            free_ids: self.free_ids.clone(),
            next_id: self.next_id,
            timed: self.timed.clone(),
            conj: self.conj.clone(),
            conj_counts: self.conj_counts.clone(),
            conj_total: self.conj_total,
            misses: self.misses.clone(),
            groups: self.groups.clone(),
            cls: Mutex::new(lock(&self.cls).clone()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The classifier is only changed whole-flow at a time; a panic elsewhere leaves it usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One step of a bundle, as the undo log keeps it.
enum Undo {
    Added(FlowId),
    Removed(u64, FlowEntry),
    Changed(FlowId, FlowEntry),
    Moved(FlowId, u64),
    Miss(u8, Option<TableMiss>),
    Group(u32, Option<GroupSpec>),
}

/// A bundle being applied.
#[derive(Default)]
struct Bundle {
    log: Vec<Undo>,
    events: Vec<Change>,
    /// Flows added or changed by this bundle (not in the compiled tables yet).
    fresh: FxHashSet<FlowId>,
}

fn has_timeout(f: &FlowSpec) -> bool {
    f.idle_timeout > 0 || f.hard_timeout > 0
}

impl Store {
    fn get(&self, id: FlowId) -> Option<&FlowEntry> {
        self.flows.get(self.seq_of.get(&id)?)
    }

    fn insert(&mut self, seq: u64, e: FlowEntry) {
        let id = e.id;
        self.seq_of.insert(id, seq);
        self.by_rule.insert(rule_key(&e.spec), id);
        if has_timeout(&e.spec) {
            self.timed.insert(id);
        }
        for k in conj_keys(&e.spec) {
            self.conj.entry(k).or_default().insert(id);
        }
        self.free_ids.remove(&id);
        if id >= self.next_id {
            self.free_ids.extend(self.next_id..id);
            self.next_id = id + 1;
        }
        self.flows.insert(seq, e);
        self.next_seq = self.next_seq.max(seq + 1);
    }

    fn remove(&mut self, id: FlowId) -> Option<(u64, FlowEntry)> {
        let seq = self.seq_of.remove(&id)?;
        let e = self.flows.remove(&seq)?;
        self.by_rule.remove(&rule_key(&e.spec));
        self.timed.remove(&id);
        for k in conj_keys(&e.spec) {
            if let Some(s) = self.conj.get_mut(&k) {
                s.remove(&id);
                if s.is_empty() {
                    self.conj.remove(&k);
                }
            }
        }
        self.free_ids.insert(id);
        Some((seq, e))
    }

    /// Puts `e` in the place of the flow with its id; the entry it replaced.
    fn replace(&mut self, e: FlowEntry) -> Option<FlowEntry> {
        let (seq, old) = self.remove(e.id)?;
        self.insert(seq, e);
        Some(old)
    }

    fn reseq(&mut self, id: FlowId, seq: u64) {
        let Some(old) = self.seq_of.get(&id).copied() else {
            return;
        };
        if let Some(e) = self.flows.remove(&old) {
            self.flows.insert(seq, e);
            self.seq_of.insert(id, seq);
            self.next_seq = self.next_seq.max(seq + 1);
        }
    }

    fn alloc_id(&mut self) -> FlowId {
        match self.free_ids.pop_first() {
            Some(id) => id,
            None => {
                self.next_id += 1;
                self.next_id - 1
            }
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    /// A conjunction's flows, in the store's order.
    fn members(&self, k: ConjKey) -> Vec<(FlowId, FlowSpec)> {
        let mut v: Vec<(u64, FlowId)> = self
            .conj
            .get(&k)
            .into_iter()
            .flatten()
            .filter_map(|id| Some((*self.seq_of.get(id)?, *id)))
            .collect();
        v.sort_unstable();
        v.into_iter()
            .filter_map(|(_, id)| Some((id, self.get(id)?.spec.clone())))
            .collect()
    }

    fn undo(&mut self, log: Vec<Undo>) {
        for u in log.into_iter().rev() {
            match u {
                Undo::Added(id) => {
                    self.remove(id);
                }
                Undo::Removed(seq, e) => self.insert(seq, e),
                Undo::Changed(_, old) => {
                    self.replace(old);
                }
                Undo::Moved(id, seq) => self.reseq(id, seq),
                Undo::Miss(t, old) => match old {
                    Some(m) => {
                        self.misses.insert(t, m);
                    }
                    None => {
                        self.misses.remove(&t);
                    }
                },
                Undo::Group(id, old) => match old {
                    Some(g) => {
                        self.groups.insert(id, g);
                    }
                    None => {
                        self.groups.remove(&id);
                    }
                },
            }
        }
    }

    /// The flows a logged bundle touched (in the order it touched them) and the
    /// conjunctions it changed.
    fn touched(&self, log: &[Undo]) -> (Vec<FlowId>, BTreeSet<ConjKey>) {
        let mut seen = FxHashSet::default();
        let mut ids = Vec::new();
        let mut keys = BTreeSet::new();
        for u in log {
            let (id, old) = match u {
                Undo::Added(id) => (*id, None),
                Undo::Removed(_, e) => (e.id, Some(&e.spec)),
                Undo::Changed(id, e) => (*id, Some(&e.spec)),
                _ => continue,
            };
            keys.extend(old.map(conj_keys).unwrap_or_default());
            if seen.insert(id) {
                ids.push(id);
                keys.extend(self.get(id).map(|e| conj_keys(&e.spec)).unwrap_or_default());
            }
        }
        (ids, keys)
    }

    /// The conjunctions' new expansion counts after a logged bundle, or why they are too many.
    fn conj_limits(&self, keys: &BTreeSet<ConjKey>) -> Result<Vec<(ConjKey, usize)>, String> {
        let mut total = self.conj_total;
        let mut out = Vec::new();
        for &k in keys {
            let n = conjunction_rules(&self.members(k));
            total = total - self.conj_counts.get(&k).copied().unwrap_or(0) + n;
            out.push((k, n));
        }
        if total > MAX_CONJUNCTION_RULES {
            return Err(format!(
                "the conjunctive flows would expand into {total} rules, beyond the limit of \
                 {MAX_CONJUNCTION_RULES} (fewer flows per clause, or fewer clauses)"
            ));
        }
        Ok(out)
    }

    /// Takes an applied bundle into the counts and the compiled tables.
    fn commit(
        &mut self,
        log: &[Undo],
        counts: Vec<(ConjKey, usize)>,
        resolve: &dyn Fn(&PortRef) -> Option<PortNo>,
    ) {
        for (k, n) in counts {
            let old = match n {
                0 => self.conj_counts.remove(&k),
                n => self.conj_counts.insert(k, n),
            };
            self.conj_total = self.conj_total - old.unwrap_or(0) + n;
        }
        let (ids, keys) = self.touched(log);
        let mut cls = lock(&self.cls);
        let Some(c) = cls.as_mut() else {
            return;
        };
        for id in ids {
            match self.get(id) {
                Some(e) => c.add_flow(id, &e.spec, resolve),
                None => c.remove_flow(id),
            }
        }
        for k in keys {
            c.set_conjunction(k, &self.members(k), resolve);
        }
        if log.iter().any(|u| matches!(u, Undo::Group(..))) {
            c.set_groups(self.groups.values(), resolve);
        }
        for u in log {
            if let Undo::Miss(t, _) = u {
                c.set_miss(*t, self.misses.get(t).copied().unwrap_or_default());
            }
        }
    }

    /// Compiles everything.
    fn build(&self, resolve: &dyn Fn(&PortRef) -> Option<PortNo>) -> Classifier {
        let mut c = Classifier::default();
        c.set_groups(self.groups.values(), resolve);
        for (&t, &m) in &self.misses {
            c.set_miss(t, m);
        }
        for e in self.flows.values() {
            c.add_flow(e.id, &e.spec, resolve);
        }
        for &k in self.conj.keys() {
            c.set_conjunction(k, &self.members(k), resolve);
        }
        c
    }

    /// The flows `filter` selects, in the store's order.
    fn select(&self, filter: &Selector, cx: &Context<'_>, b: &Bundle) -> Vec<FlowId> {
        let mut ids: Vec<FlowId> = Vec::new();
        if filter.strict && filter.priority.is_some() {
            // The rule index finds it, in the one table or in each.
            let p = filter.priority.unwrap_or_default();
            let tables = match filter.table {
                Some(t) => t..=t,
                None => 0..=MAX_TABLE,
            };
            for t in tables {
                if let Some(&id) = self.by_rule.get(&(t, p, filter.matches.clone())) {
                    ids.push(id);
                }
            }
        } else if let (false, Some(c)) = (filter.strict, lock(&self.cls).as_ref()) {
            // Loose: the compiled tables give the ordinary flows that can be selected; the
            // conjunctions' flows and this bundle's are looked at one by one.
            let mut cand: FxHashSet<FlowId> = c
                .covering(filter.table, &filter.value, &filter.mask)
                .into_iter()
                .collect();
            cand.extend(self.conj.values().flatten().copied());
            cand.extend(b.fresh.iter().copied());
            ids.extend(cand);
        } else {
            ids.extend(self.flows.values().map(|f| f.id));
        }
        let mut out: Vec<(u64, FlowId)> = ids
            .into_iter()
            .filter_map(|id| {
                let seq = *self.seq_of.get(&id)?;
                let f = self.flows.get(&seq)?;
                filter.selects(&f.spec, cx).then_some((seq, id))
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out.into_iter().map(|(_, id)| id).collect()
    }

    /// Adds a new flow or changes the one with its rule, logging it; whether it is new, and
    /// its id.
    fn put(
        &mut self,
        flow: FlowSpec,
        reset: bool,
        cx: &Context<'_>,
        b: &mut Bundle,
    ) -> (bool, FlowId) {
        match self.by_rule.get(&rule_key(&flow)).copied() {
            Some(id) => {
                let Some(mut e) = self.get(id).cloned() else {
                    return (false, id);
                };
                e.spec = flow;
                if reset {
                    (e.base_packets, e.base_bytes) = (cx.sums)(id);
                    e.added_ms = cx.now_ms;
                }
                if let Some(old) = self.replace(e) {
                    b.log.push(Undo::Changed(id, old));
                }
                b.fresh.insert(id);
                (false, id)
            }
            None => {
                let id = self.alloc_id();
                let (bp, bb) = (cx.sums)(id);
                let seq = self.next_seq();
                self.insert(
                    seq,
                    FlowEntry {
                        id,
                        spec: flow,
                        added_ms: cx.now_ms,
                        base_packets: bp,
                        base_bytes: bb,
                    },
                );
                b.log.push(Undo::Added(id));
                b.fresh.insert(id);
                (true, id)
            }
        }
    }

    fn apply_one(&mut self, m: &FlowMod, cx: &Context<'_>, b: &mut Bundle) -> Result<(), String> {
        match m {
            FlowMod::Add { flow, reset_counts } => {
                let flow = check(flow, cx, &self.groups)?;
                let kind = match self.put(flow.clone(), *reset_counts, cx, b).0 {
                    true => FlowEventKind::Added,
                    false => FlowEventKind::Modified,
                };
                b.events.push((kind, "add".into(), flow));
            }
            FlowMod::Modify { flow, strict } => {
                let flow = check(flow, cx, &self.groups)?;
                let filter = Selector::new(
                    Some(flow.table),
                    strict.then_some(flow.priority),
                    &flow.matches,
                    *strict,
                    None,
                    cx,
                )?;
                for id in self.select(&filter, cx, b) {
                    let Some(mut e) = self.get(id).cloned() else {
                        continue;
                    };
                    e.spec.actions = flow.actions.clone();
                    e.spec.cookie = flow.cookie;
                    b.events
                        .push((FlowEventKind::Modified, "modify".into(), e.spec.clone()));
                    if let Some(old) = self.replace(e) {
                        b.log.push(Undo::Changed(id, old));
                    }
                    b.fresh.insert(id);
                }
            }
            FlowMod::Delete {
                table,
                priority,
                matches,
                strict,
                cookie,
            } => {
                let mut ms = matches.clone();
                canonicalize(&mut ms);
                let filter = Selector::new(*table, *priority, &ms, *strict, *cookie, cx)?;
                for id in self.select(&filter, cx, b) {
                    if let Some((seq, e)) = self.remove(id) {
                        b.events
                            .push((FlowEventKind::Removed, "delete".into(), e.spec.clone()));
                        b.log.push(Undo::Removed(seq, e));
                    }
                }
            }
            FlowMod::Replace { flows } => {
                let mut listed: FxHashSet<FlowId> = FxHashSet::default();
                let old: Vec<FlowId> = self.flows.values().map(|f| f.id).collect();
                for flow in flows {
                    let flow = check(flow, cx, &self.groups)?;
                    match self.by_rule.get(&rule_key(&flow)).copied() {
                        Some(id) if listed.contains(&id) => {
                            return Err(format!(
                                "the same flow is listed twice: table={} priority={}",
                                flow.table, flow.priority
                            ));
                        }
                        Some(id) => {
                            listed.insert(id);
                            if self.get(id).is_some_and(|e| e.spec != flow) {
                                b.events.push((
                                    FlowEventKind::Modified,
                                    "replace".into(),
                                    flow.clone(),
                                ));
                                self.put(flow, false, cx, b);
                            }
                            // The new program's order.
                            let seq = self.next_seq();
                            if let Some(&was) = self.seq_of.get(&id) {
                                self.reseq(id, seq);
                                b.log.push(Undo::Moved(id, was));
                            }
                        }
                        None => {
                            b.events
                                .push((FlowEventKind::Added, "replace".into(), flow.clone()));
                            listed.insert(self.put(flow, false, cx, b).1);
                        }
                    }
                }
                for id in old {
                    if listed.contains(&id) {
                        continue;
                    }
                    if let Some((seq, e)) = self.remove(id) {
                        b.events
                            .push((FlowEventKind::Removed, "replace".into(), e.spec.clone()));
                        b.log.push(Undo::Removed(seq, e));
                    }
                }
            }
            FlowMod::SetMiss { table, miss } => {
                if *table > MAX_TABLE {
                    return Err(format!("table {table} is beyond {MAX_TABLE}"));
                }
                let old = self.misses.insert(*table, *miss);
                b.log.push(Undo::Miss(*table, old));
            }
            FlowMod::AddGroup { group } => {
                check_group(group, cx, &self.groups)?;
                if self.groups.contains_key(&group.group_id) {
                    return Err(format!("group {} already exists", group.group_id));
                }
                self.groups.insert(group.group_id, group.clone());
                b.log.push(Undo::Group(group.group_id, None));
            }
            FlowMod::ModifyGroup { group } => {
                check_group(group, cx, &self.groups)?;
                if !self.groups.contains_key(&group.group_id) {
                    return Err(format!("group {} does not exist", group.group_id));
                }
                let old = self.groups.insert(group.group_id, group.clone());
                b.log.push(Undo::Group(group.group_id, old));
            }
            FlowMod::DeleteGroup { group_id } => {
                let gone = |id: u32| group_id.is_none_or(|g| g == id);
                let ids: Vec<u32> = self.groups.keys().copied().filter(|i| gone(*i)).collect();
                for id in ids {
                    let old = self.groups.remove(&id);
                    b.log.push(Undo::Group(id, old));
                }
                // As in OpenFlow, the flows that use a deleted group go with it.
                let users: Vec<FlowId> = self
                    .flows
                    .values()
                    .filter(|f| uses_group(&f.spec.actions, &gone))
                    .map(|f| f.id)
                    .collect();
                for id in users {
                    if let Some((seq, e)) = self.remove(id) {
                        b.events.push((
                            FlowEventKind::Removed,
                            "group_delete".into(),
                            e.spec.clone(),
                        ));
                        b.log.push(Undo::Removed(seq, e));
                    }
                }
            }
        }
        Ok(())
    }
}

impl FlowStore {
    /// The flows a fresh switch starts with: everything goes to the built-in forwarding.
    pub fn initial() -> FlowStore {
        let spec = FlowSpec {
            table: 0,
            priority: 0,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            matches: vec![],
            actions: vec![FlowAction::Normal],
        };
        FlowStore::from_parts(
            vec![FlowEntry {
                id: 0,
                spec,
                added_ms: 0,
                base_packets: 0,
                base_bytes: 0,
            }],
            BTreeMap::new(),
            BTreeMap::new(),
        )
    }

    /// A store of these flows (in this order), misses and groups.
    pub fn from_parts(
        flows: Vec<FlowEntry>,
        misses: BTreeMap<u8, TableMiss>,
        groups: BTreeMap<u32, GroupSpec>,
    ) -> FlowStore {
        let mut s = Store {
            misses,
            groups,
            ..Default::default()
        };
        for e in flows {
            if s.seq_of.contains_key(&e.id) {
                continue;
            }
            let seq = s.next_seq();
            s.insert(seq, e);
        }
        let keys: Vec<ConjKey> = s.conj.keys().copied().collect();
        for k in keys {
            let n = conjunction_rules(&s.members(k));
            s.conj_counts.insert(k, n);
            s.conj_total += n;
        }
        FlowStore { s: Arc::new(s) }
    }

    /// The flows, in the order they were added (a replace: the order of its program).
    pub fn flows(&self) -> impl Iterator<Item = &FlowEntry> + '_ {
        self.s.flows.values()
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.s.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.s.flows.is_empty()
    }

    /// The flow with this id.
    pub fn get(&self, id: FlowId) -> Option<&FlowEntry> {
        self.s.get(id)
    }

    /// The table-miss settings, by table.
    pub fn misses(&self) -> &BTreeMap<u8, TableMiss> {
        &self.s.misses
    }

    /// The groups, by id.
    pub fn groups(&self) -> &BTreeMap<u32, GroupSpec> {
        &self.s.groups
    }

    /// The compiled tables as version `version`. They are kept compiled as flows change; this
    /// only compiles again the flows naming a port whose number changed since (or everything,
    /// the first time).
    pub fn compile(&self, version: u64, resolve: &dyn Fn(&PortRef) -> Option<PortNo>) -> FlowSet {
        let s = &*self.s;
        let mut cls = lock(&s.cls);
        match cls.as_mut() {
            None => *cls = Some(s.build(resolve)),
            Some(c) => {
                let (ids, groups) = c.stale(resolve);
                let mut keys = BTreeSet::new();
                for id in ids {
                    if let Some(e) = s.get(id) {
                        c.add_flow(id, &e.spec, resolve);
                        keys.extend(conj_keys(&e.spec));
                    }
                }
                for k in keys {
                    c.set_conjunction(k, &s.members(k), resolve);
                }
                if groups {
                    c.set_groups(s.groups.values(), resolve);
                }
            }
        }
        cls.as_ref()
            .map(|c| c.snapshot(version))
            .unwrap_or_default()
    }

    /// Applies a bundle in place; the events, or why the bundle was refused (the store is
    /// as it was then). Errors name the failing modification (1-based).
    pub fn apply(&mut self, mods: &[FlowMod], cx: &Context<'_>) -> Result<Vec<Change>, String> {
        let s = Arc::make_mut(&mut self.s);
        let mut b = Bundle::default();
        let r = mods.iter().enumerate().try_for_each(|(i, m)| {
            s.apply_one(m, cx, &mut b)
                .map_err(|e| format!("flow mod {}: {e}", i + 1))
        });
        let r = r.and_then(|()| {
            if s.flows.len() > MAX_FLOWS {
                return Err(format!(
                    "{} flows exceed the limit of {MAX_FLOWS}",
                    s.flows.len()
                ));
            }
            let (_, keys) = s.touched(&b.log);
            s.conj_limits(&keys)
        });
        match r {
            Ok(counts) => {
                s.commit(&b.log, counts, cx.resolve);
                Ok(b.events)
            }
            Err(e) => {
                s.undo(b.log);
                Err(e)
            }
        }
    }

    /// Flows whose idle or hard timeout has passed at `now_ms`; `last_hit` gives a flow's
    /// latest hit over the workers.
    pub fn expired(
        &self,
        now_ms: u64,
        last_hit: &dyn Fn(FlowId) -> u64,
    ) -> Vec<(FlowId, &'static str)> {
        let mut out = Vec::new();
        for f in self.s.timed.iter().filter_map(|id| self.s.get(*id)) {
            if f.spec.hard_timeout > 0 && now_ms >= f.added_ms + f.spec.hard_timeout as u64 * 1000 {
                out.push((f.id, "hard_timeout"));
            } else if f.spec.idle_timeout > 0 {
                let last = last_hit(f.id).max(f.added_ms);
                if now_ms >= last + f.spec.idle_timeout as u64 * 1000 {
                    out.push((f.id, "idle_timeout"));
                }
            }
        }
        out
    }

    /// Removes flows by id; returns their specs.
    pub fn remove_ids(
        &mut self,
        ids: &[(FlowId, &'static str)],
        resolve: &dyn Fn(&PortRef) -> Option<PortNo>,
    ) -> Vec<(FlowSpec, &'static str)> {
        let s = Arc::make_mut(&mut self.s);
        let mut log = Vec::new();
        let mut out = Vec::new();
        for (id, why) in ids {
            if let Some((seq, e)) = s.remove(*id) {
                out.push((e.spec.clone(), *why));
                log.push(Undo::Removed(seq, e));
            }
        }
        let (_, keys) = s.touched(&log);
        // Fewer flows never expand into more rules.
        let counts = keys
            .iter()
            .map(|&k| (k, conjunction_rules(&s.members(k))))
            .collect();
        s.commit(&log, counts, resolve);
        out
    }

    /// Restarts the timeouts of the flow that is exactly `spec`; whether there is one.
    pub fn restart(&mut self, spec: &FlowSpec, now_ms: u64) -> bool {
        let Some(&id) = self.s.by_rule.get(&rule_key(spec)) else {
            return false;
        };
        if self.s.get(id).is_none_or(|e| e.spec != *spec) {
            return false;
        }
        let s = Arc::make_mut(&mut self.s);
        if let Some(e) = s.seq_of.get(&id).and_then(|q| s.flows.get_mut(q)) {
            e.added_ms = now_ms;
        }
        true
    }
}

impl PartialEq for FlowStore {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.s, &other.s)
            || (self.s.flows.len() == other.s.flows.len()
                && self.s.flows.values().eq(other.s.flows.values())
                && self.s.misses == other.s.misses
                && self.s.groups == other.s.groups)
    }
}

impl std::fmt::Debug for FlowStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowStore")
            .field("flows", &self.s.flows.values().collect::<Vec<_>>())
            .field("misses", &self.s.misses)
            .field("groups", &self.s.groups)
            .finish()
    }
}

impl Serialize for FlowStore {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Flows<'a>(&'a BTreeMap<u64, FlowEntry>);
        impl Serialize for Flows<'_> {
            fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                ser.collect_seq(self.0.values())
            }
        }
        let mut st = ser.serialize_struct("FlowStore", 3)?;
        st.serialize_field("flows", &Flows(&self.s.flows))?;
        st.serialize_field("misses", &self.s.misses)?;
        st.serialize_field("groups", &self.s.groups)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for FlowStore {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Repr {
            flows: Vec<FlowEntry>,
            #[serde(default)]
            misses: BTreeMap<u8, TableMiss>,
            #[serde(default)]
            groups: BTreeMap<u32, GroupSpec>,
        }
        let r = Repr::deserialize(de)?;
        Ok(FlowStore::from_parts(r.flows, r.misses, r.groups))
    }
}

/// Whether any of `actions` runs a group `gone` selects.
fn uses_group(actions: &[FlowAction], gone: &dyn Fn(u32) -> bool) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, FlowAction::Group { id } if gone(*id)))
}

/// Validates a group: its id, its buckets for its type, and their actions (as a flow's).
fn check_group(
    g: &GroupSpec,
    cx: &Context<'_>,
    groups: &BTreeMap<u32, GroupSpec>,
) -> Result<(), String> {
    if g.group_id > MAX_GROUP {
        return Err(format!(
            "group id {} is beyond the largest, {MAX_GROUP}",
            g.group_id
        ));
    }
    if g.kind == GroupType::Indirect && g.buckets.len() > 1 {
        return Err("indirect groups can have at most one bucket".into());
    }
    for b in &g.buckets {
        if let Some(p) = &b.watch_port {
            if !matches!(p, PortRef::Number(_)) && (cx.resolve)(p).is_none() {
                return Err(format!("watch_port {p}: no such port"));
            }
        }
        for a in &b.actions {
            match a {
                FlowAction::GotoTable { .. } => {
                    return Err("goto_table is an instruction, not allowed in a bucket".into())
                }
                FlowAction::Conjunction { .. } => {
                    return Err("conjunction is not allowed in a bucket".into())
                }
                FlowAction::Group { id } if *id == g.group_id => {
                    return Err(format!("group {id} may not run itself"))
                }
                _ => {}
            }
        }
        check_actions(&b.actions, MAX_TABLE, cx, groups)
            .map_err(|e| format!("bucket {}: {e}", b.bucket_id))?;
    }
    Ok(())
}

/// Validates and canonicalises a flow.
fn check(
    flow: &FlowSpec,
    cx: &Context<'_>,
    groups: &BTreeMap<u32, GroupSpec>,
) -> Result<FlowSpec, String> {
    let mut f = flow.clone();
    canonicalize(&mut f.matches);
    if f.table > MAX_TABLE {
        return Err(format!("table {} is beyond {MAX_TABLE}", f.table));
    }
    let own: Vec<Match> = f
        .matches
        .iter()
        .filter(|m| !matches!(m, Match::ConjId { .. }))
        .cloned()
        .collect();
    compile_match(&own, cx.resolve)
        .map_err(|e| format!("{e} (ports: vxlan0, vxhost0, pod port names or numbers)"))?;
    let conj = f
        .actions
        .iter()
        .find(|a| matches!(a, FlowAction::Conjunction { .. }));
    if conj.is_some() {
        if let Some(other) = f
            .actions
            .iter()
            .find(|a| !matches!(a, FlowAction::Conjunction { .. } | FlowAction::Note { .. }))
        {
            return Err(format!(
                "\"conjunction\" actions may be used along with \"note\" but not any other \
                 kind of action (such as {})",
                controlplane::flow_syntax::format_action(other)
            ));
        }
    }
    for a in &f.actions {
        if let FlowAction::Conjunction {
            id,
            clause,
            n_clauses,
        } = *a
        {
            if !(2..=64).contains(&n_clauses) {
                return Err(format!(
                    "conjunction({id},{clause}/{n_clauses}): a conjunction has 2 to 64 clauses"
                ));
            }
            if clause == 0 || clause > n_clauses {
                return Err(format!(
                    "conjunction({id},{clause}/{n_clauses}): the clause is 1 to {n_clauses}"
                ));
            }
        }
    }
    check_actions(&f.actions, f.table, cx, groups)?;
    Ok(f)
}

/// Validates a flow's (or bucket's) actions; `table` is the flow's table (goto_table must go
/// later).
fn check_actions(
    actions: &[FlowAction],
    table: u8,
    cx: &Context<'_>,
    groups: &BTreeMap<u32, GroupSpec>,
) -> Result<(), String> {
    for a in actions {
        match a {
            FlowAction::Group { id } if !groups.contains_key(id) => {
                return Err(format!("group:{id}: no such group"));
            }
            FlowAction::Output { port } if (cx.resolve)(port).is_none() => {
                return Err(format!("output to {port}: no such port"));
            }
            FlowAction::Resubmit {
                in_port: Some(port),
                table,
            } if (cx.resolve)(port).is_none() => {
                return Err(format!("resubmit({port},{table}): no such port"));
            }
            // resubmit's table 255 is "this table", as in OVS.
            FlowAction::Resubmit { table, .. } if *table > MAX_TABLE && *table != 255 => {
                return Err(format!("table {table} is beyond {MAX_TABLE}"));
            }
            FlowAction::GotoTable { table } if *table > MAX_TABLE => {
                return Err(format!("table {table} is beyond {MAX_TABLE}"));
            }
            FlowAction::GotoTable { table: to } if *to <= table => {
                return Err(format!(
                    "goto_table:{to} must go to a later table than {table} (use resubmit to go back)"
                ));
            }
            FlowAction::Move { src, .. }
                if src.end as u32 >= src.field.bits() || src.start > src.end =>
            {
                return Err(format!(
                    "move source bits {}..{} are outside the field's {} bits",
                    src.start,
                    src.end,
                    src.field.bits()
                ));
            }
            FlowAction::Load { dst, .. } | FlowAction::Move { dst, .. }
                if dst.end as u32 >= dst.field.bits() || dst.start > dst.end =>
            {
                return Err(format!(
                    "bits {}..{} are outside the field's {} bits",
                    dst.start,
                    dst.end,
                    dst.field.bits()
                ));
            }
            _ => {}
        }
    }
    let _ = PORT_TUNNEL;
    Ok(())
}

/// Which flows a modify/delete selects.
struct Selector {
    table: Option<u8>,
    priority: Option<u16>,
    strict: bool,
    matches: Vec<Match>,
    value: FlowKey,
    mask: FlowKey,
    cookie: Option<(u64, u64)>,
}

impl Selector {
    fn new(
        table: Option<u8>,
        priority: Option<u16>,
        matches: &[Match],
        strict: bool,
        cookie: Option<(u64, u64)>,
        cx: &Context<'_>,
    ) -> Result<Selector, String> {
        let (value, mask) = compile_match(matches, cx.resolve)?;
        Ok(Selector {
            table,
            priority,
            strict,
            matches: matches.to_vec(),
            value,
            mask,
            cookie,
        })
    }

    fn selects(&self, f: &FlowSpec, cx: &Context<'_>) -> bool {
        if self.table.is_some_and(|t| t != f.table) {
            return false;
        }
        if let Some((c, m)) = self.cookie {
            if f.cookie & m != c & m {
                return false;
            }
        }
        if self.strict {
            return self.priority.is_none_or(|p| p == f.priority) && f.matches == self.matches;
        }
        // Loose: the flow is at least as specific as the filter, and agrees with it.
        let Ok((v, m)) = compile_match(&f.matches, cx.resolve) else {
            return false;
        };
        (0..self.mask.0.len()).all(|i| {
            let fm = self.mask.0[i];
            m.0[i] & fm == fm && v.0[i] & fm == self.value.0[i]
        })
    }
}

/// Turns store events into protocol events.
pub fn events(list: Vec<Change>, version: u64) -> Vec<FlowEvent> {
    list.into_iter()
        .map(|(event, reason, flow)| FlowEvent {
            event,
            reason,
            table_version: version,
            flow,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn cx() -> Context<'static> {
        Context {
            resolve: &|p| match p {
                PortRef::Number(n) => Some(*n),
                PortRef::Name(n) if n == "vxlan0" => Some(1),
                PortRef::Name(_) => None,
            },
            sums: &|id| (id as u64 * 10, id as u64 * 1000),
            now_ms: 5,
        }
    }

    fn flow(priority: u16, dst: [u8; 4], out: u16) -> FlowSpec {
        FlowSpec {
            table: 0,
            priority,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            matches: vec![
                Match::DlType { value: 0x0800 },
                Match::NwDst {
                    value: Ipv4Addr::from(dst),
                    mask: Ipv4Addr::BROADCAST,
                },
            ],
            actions: vec![FlowAction::Output {
                port: PortRef::Number(out),
            }],
        }
    }

    fn applied(s: &FlowStore, mods: &[FlowMod]) -> Result<(FlowStore, Vec<Change>), String> {
        let mut next = s.clone();
        let ev = next.apply(mods, &cx())?;
        Ok((next, ev))
    }

    fn add(f: FlowSpec) -> FlowMod {
        FlowMod::Add {
            flow: f,
            reset_counts: false,
        }
    }

    #[test]
    fn add_replaces_the_same_rule_and_keeps_its_id() {
        let s = FlowStore::default();
        let (s, ev) = applied(
            &s,
            &[
                add(flow(10, [10, 1, 2, 2], 3)),
                add(flow(10, [10, 1, 2, 3], 4)),
            ],
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(ev.len(), 2);
        let id = s.flows().nth(1).unwrap().id;
        let (s, ev) = applied(&s, &[add(flow(10, [10, 1, 2, 3], 5))]).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.flows().nth(1).unwrap().id,
            id,
            "same rule keeps its id (and counters)"
        );
        assert_eq!(ev[0].0, FlowEventKind::Modified);
    }

    #[test]
    fn a_bundle_with_one_bad_mod_changes_nothing() {
        let mut s = FlowStore::initial();
        let mut bad = flow(10, [10, 1, 2, 2], 3);
        bad.actions = vec![FlowAction::Output {
            port: PortRef::Name("nosuch".into()),
        }];
        let _ = s.compile(1, cx().resolve);
        let e = s
            .apply(&[add(flow(10, [10, 1, 2, 9], 3)), add(bad)], &cx())
            .unwrap_err();
        assert!(e.contains("flow mod 2") && e.contains("nosuch"), "{e}");
        assert_eq!(s, FlowStore::initial());
    }

    #[test]
    fn bit_ranges_beyond_a_field_are_refused_on_either_side_of_a_move() {
        use controlplane::flow::{Field, FieldRange};
        let s = FlowStore::initial();
        let range = |field, start, end| FieldRange { field, start, end };
        for (src, dst, says) in [
            (
                range(Field::Reg(0), 0, 200),
                range(Field::Reg(1), 0, 31),
                "move source bits 0..200",
            ),
            (
                range(Field::Reg(0), 9, 3),
                range(Field::Reg(1), 0, 31),
                "move source bits 9..3",
            ),
            (
                range(Field::Reg(0), 0, 31),
                range(Field::Reg(1), 0, 64),
                "bits 0..64",
            ),
        ] {
            let mut f = flow(10, [10, 1, 2, 2], 3);
            f.actions.insert(0, FlowAction::Move { src, dst });
            let e = applied(&s, &[add(f)]).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn loose_and_strict_delete() {
        let s = FlowStore::initial();
        let (s, _) = applied(
            &s,
            &[
                add(flow(10, [10, 1, 2, 2], 3)),
                add(flow(20, [10, 1, 2, 3], 4)),
            ],
        )
        .unwrap();
        // Loose: "ip" selects both IP flows but not the match-all normal flow.
        let del = FlowMod::Delete {
            table: None,
            priority: None,
            matches: vec![Match::DlType { value: 0x0800 }],
            strict: false,
            cookie: None,
        };
        let (s2, ev) = applied(&s, &[del]).unwrap();
        assert_eq!(s2.len(), 1);
        assert_eq!(ev.len(), 2);
        // Strict needs the priority and the exact match.
        let f = flow(20, [10, 1, 2, 3], 4);
        let del = FlowMod::Delete {
            table: Some(0),
            priority: Some(10),
            matches: f.matches.clone(),
            strict: true,
            cookie: None,
        };
        let (s3, _) = applied(&s, &[del]).unwrap();
        assert_eq!(s3.len(), 3);
        let del = FlowMod::Delete {
            table: Some(0),
            priority: Some(20),
            matches: f.matches.clone(),
            strict: true,
            cookie: None,
        };
        let (s4, _) = applied(&s, &[del]).unwrap();
        assert_eq!(s4.len(), 2);
    }

    #[test]
    fn replace_keeps_ids_of_unchanged_rules_and_timeouts_expire() {
        let s = FlowStore::initial();
        let (s, _) = applied(&s, &[add(flow(10, [10, 1, 2, 2], 3))]).unwrap();
        let id = s.flows().nth(1).unwrap().id;
        let mut timed = flow(30, [10, 1, 2, 7], 3);
        timed.idle_timeout = 1;
        let (s, _) = applied(
            &s,
            &[FlowMod::Replace {
                flows: vec![flow(10, [10, 1, 2, 2], 4), timed],
            }],
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.flows().next().unwrap().id, id);
        assert!(s.expired(900, &|_| 0).is_empty());
        assert_eq!(s.expired(1005, &|_| 0).len(), 1);
        assert!(
            s.expired(1005, &|_| 500).is_empty(),
            "a recent hit keeps it"
        );
    }

    fn grp(id: u32, kind: GroupType, outs: &[u16]) -> GroupSpec {
        GroupSpec {
            group_id: id,
            kind,
            buckets: outs
                .iter()
                .enumerate()
                .map(|(i, &p)| Bucket {
                    bucket_id: i as u32,
                    weight: 1,
                    watch_port: None,
                    watch_group: None,
                    actions: vec![FlowAction::Output {
                        port: PortRef::Number(p),
                    }],
                })
                .collect(),
        }
    }

    #[test]
    fn groups_follow_openflows_rules_and_take_their_flows_with_them() {
        let s = FlowStore::initial();
        let add_g = |g| FlowMod::AddGroup { group: g };
        let (s, _) = applied(
            &s,
            &[
                add_g(grp(1, GroupType::All, &[2, 3])),
                add_g(grp(2, GroupType::Select, &[4, 5])),
            ],
        )
        .unwrap();
        assert_eq!(s.groups().len(), 2);
        let e = applied(&s, &[add_g(grp(1, GroupType::All, &[2]))]).unwrap_err();
        assert!(e.contains("group 1 already exists"), "{e}");
        let e = applied(
            &s,
            &[FlowMod::ModifyGroup {
                group: grp(9, GroupType::All, &[2]),
            }],
        )
        .unwrap_err();
        assert!(e.contains("group 9 does not exist"), "{e}");
        let e = applied(&s, &[add_g(grp(3, GroupType::Indirect, &[2, 3]))]).unwrap_err();
        assert!(e.contains("at most one bucket"), "{e}");
        let mut bad = grp(3, GroupType::All, &[2]);
        bad.buckets[0].actions = vec![FlowAction::Output {
            port: PortRef::Name("nosuch".into()),
        }];
        let e = applied(&s, &[add_g(bad)]).unwrap_err();
        assert!(e.contains("nosuch"), "a bucket is checked as a flow: {e}");
        // A flow naming a missing group is refused; ones naming groups are taken.
        let to = |g: u32, dst: [u8; 4]| {
            let mut f = flow(10, dst, 3);
            f.actions = vec![FlowAction::Group { id: g }];
            add(f)
        };
        let e = applied(&s, &[to(7, [10, 1, 2, 2])]).unwrap_err();
        assert!(e.contains("group:7: no such group"), "{e}");
        let (s, _) = applied(&s, &[to(1, [10, 1, 2, 2]), to(2, [10, 1, 2, 3])]).unwrap();
        assert_eq!(s.len(), 3);
        let set = s.compile(1, cx().resolve);
        assert_eq!(set.groups.len(), 2);
        // Deleting a group deletes the flows that use it.
        let (s1, ev) = applied(&s, &[FlowMod::DeleteGroup { group_id: Some(1) }]).unwrap();
        assert_eq!((s1.groups().len(), s1.len(), ev.len()), (1, 2, 1));
        assert_eq!(ev[0].0, FlowEventKind::Removed);
        let (s2, _) = applied(&s, &[FlowMod::DeleteGroup { group_id: None }]).unwrap();
        assert_eq!((s2.groups().len(), s2.len()), (0, 1));
        // Saved and restored with the flows.
        let text = serde_json::to_string(&s).unwrap();
        let back: FlowStore = serde_json::from_str(&text).unwrap();
        assert_eq!(back.groups(), s.groups());
        assert_eq!(back.len(), s.len());
    }

    #[test]
    fn conjunctions_are_checked_and_their_expansion_capped() {
        let s = FlowStore::initial();
        let clause = |k: u8, n: u8, extra: Option<FlowAction>, i: u32| {
            let mut f = flow(10, [10, 1, (i >> 8) as u8, i as u8], 3);
            if k == 2 {
                f.matches[1] = Match::NwSrc {
                    value: Ipv4Addr::from([10, 2, (i >> 8) as u8, i as u8]),
                    mask: Ipv4Addr::BROADCAST,
                };
            }
            f.actions = vec![FlowAction::Conjunction {
                id: 1,
                clause: k,
                n_clauses: n,
            }];
            f.actions.extend(extra);
            add(f)
        };
        let e = applied(
            &s,
            &[clause(
                1,
                2,
                Some(FlowAction::Output {
                    port: PortRef::Number(2),
                }),
                0,
            )],
        )
        .unwrap_err();
        assert!(e.contains("may be used along with \"note\""), "{e}");
        let e = applied(&s, &[clause(1, 1, None, 0)]).unwrap_err();
        assert!(e.contains("2 to 64 clauses"), "{e}");
        let mut target = flow(10, [10, 9, 9, 9], 4);
        target.matches = vec![Match::ConjId { value: 1 }];
        let mut mods = vec![add(target)];
        for i in 0..1001 {
            mods.push(clause(1, 2, None, i));
            mods.push(clause(2, 2, None, i));
        }
        let e = applied(&s, &mods).unwrap_err();
        assert!(e.contains("1002001 rules") && e.contains("1000000"), "{e}");
        mods.truncate(1 + 2 * 100);
        let (s, _) = applied(&s, &mods).unwrap();
        assert_eq!(s.compile(1, cx().resolve).rules.len(), 1 + 100 * 100);
    }

    /// A small deterministic generator for the randomised tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn ip(r: &mut Rng) -> [u8; 4] {
        [10, r.below(3) as u8, r.below(3) as u8, r.below(4) as u8]
    }

    fn random_matches(r: &mut Rng) -> Vec<Match> {
        let mut m = vec![];
        if r.below(4) > 0 {
            m.push(Match::DlType { value: 0x0800 });
            if r.below(2) == 0 {
                let bits = [8u32, 16, 24, 32][r.below(4) as usize];
                m.push(Match::NwDst {
                    value: Ipv4Addr::from(ip(r)),
                    mask: Ipv4Addr::from(u32::MAX << (32 - bits)),
                });
            }
            if r.below(2) == 0 {
                m.push(Match::NwSrc {
                    value: Ipv4Addr::from(ip(r)),
                    mask: Ipv4Addr::BROADCAST,
                });
            }
        }
        if r.below(3) == 0 {
            m.push(Match::InPort {
                port: PortRef::Number(1 + r.below(3) as u16),
            });
        }
        m
    }

    fn random_flow(r: &mut Rng) -> FlowSpec {
        let table = r.below(3) as u8;
        let priority = [1u16, 5, 10, 20][r.below(4) as usize];
        let out = FlowAction::Output {
            port: PortRef::Number(2 + r.below(5) as u16),
        };
        let mut f = FlowSpec {
            table,
            priority,
            cookie: r.below(3),
            idle_timeout: 0,
            hard_timeout: 0,
            matches: random_matches(r),
            actions: vec![out],
        };
        match r.below(8) {
            // A conjunction's target.
            0 => {
                f.matches = vec![Match::ConjId {
                    value: 1 + r.below(2) as u32,
                }]
            }
            // One of its clauses.
            1 | 2 => {
                let clause = 1 + r.below(2) as u8;
                let field = Ipv4Addr::from(ip(r));
                f.matches = vec![
                    Match::DlType { value: 0x0800 },
                    if clause == 1 {
                        Match::NwSrc {
                            value: field,
                            mask: Ipv4Addr::BROADCAST,
                        }
                    } else {
                        Match::NwDst {
                            value: field,
                            mask: Ipv4Addr::BROADCAST,
                        }
                    },
                ];
                f.actions = vec![FlowAction::Conjunction {
                    id: 1 + r.below(2) as u32,
                    clause,
                    n_clauses: 2,
                }];
            }
            _ => {}
        }
        f
    }

    fn random_mod(r: &mut Rng, s: &FlowStore) -> FlowMod {
        let existing: Vec<&FlowEntry> = s.flows().collect();
        match r.below(10) {
            0..=4 => add(random_flow(r)),
            5 => {
                let mut f = random_flow(r);
                f.table = r.below(3) as u8;
                FlowMod::Modify {
                    strict: r.below(2) == 0,
                    flow: f,
                }
            }
            6 if !existing.is_empty() => {
                let f = &existing[r.below(existing.len() as u64) as usize].spec;
                FlowMod::Delete {
                    table: (r.below(2) == 0).then_some(f.table),
                    priority: Some(f.priority),
                    matches: f.matches.clone(),
                    strict: true,
                    cookie: None,
                }
            }
            7 => FlowMod::Delete {
                table: (r.below(2) == 0).then(|| r.below(3) as u8),
                priority: None,
                matches: random_matches(r),
                strict: false,
                cookie: (r.below(4) == 0).then(|| (r.below(3), u64::MAX)),
            },
            8 if r.below(6) == 0 => FlowMod::Replace {
                flows: (0..r.below(12)).map(|_| random_flow(r)).collect(),
            },
            _ => add(random_flow(r)),
        }
    }

    /// The rules a packet matches at the best priority (by brute force over every rule).
    fn best(set: &FlowSet, table: u8, k: &FlowKey) -> Option<(u16, Vec<FlowId>)> {
        let mut hits: Vec<(u16, FlowId)> = set
            .rules
            .iter()
            .filter(|r| r.table == table && k.masked(&r.mask) == r.value.masked(&r.mask))
            .map(|r| (r.priority, r.id))
            .collect();
        let p = hits.iter().map(|h| h.0).max()?;
        hits.retain(|h| h.0 == p);
        Some((p, hits.into_iter().map(|h| h.1).collect()))
    }

    fn same_lookups(kept: &FlowSet, full: &FlowSet, r: &mut Rng) {
        assert_eq!(kept.rules.len(), full.rules.len());
        for t in 0..3u8 {
            assert_eq!(kept.tables[t as usize].flows, full.tables[t as usize].flows);
        }
        for _ in 0..200 {
            let frame = crate::sample::udp_frame([2; 6], [4; 6], ip(r), ip(r), 64, 10);
            let k = FlowKey::extract(&frame, 1 + r.below(3) as u16, None);
            for t in 0..3u8 {
                let want = best(full, t, &k);
                for set in [kept, full] {
                    let got = set.tables[t as usize]
                        .lookup(&k)
                        .map(|i| (set.rules[i as usize].priority, set.rules[i as usize].id));
                    match (&want, got) {
                        (None, None) => {}
                        (Some((p, ids)), Some((gp, gid))) => {
                            assert_eq!(*p, gp, "table {t} {k:?}");
                            assert!(ids.contains(&gid), "table {t}: {gid} not in {ids:?}");
                        }
                        (w, g) => panic!("table {t}: want {w:?}, got {g:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn the_kept_tables_look_up_as_a_full_compile_after_random_changes() {
        for seed in [1u64, 7, 42, 1234] {
            let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
            let mut s = FlowStore::initial();
            let _ = s.compile(1, cx().resolve);
            for round in 0..250u64 {
                let mut mods: Vec<FlowMod> = (0..1 + r.below(4))
                    .map(|_| random_mod(&mut r, &s))
                    .collect();
                let bad = r.below(10) == 0;
                if bad {
                    let mut f = random_flow(&mut r);
                    f.matches = vec![];
                    f.actions = vec![FlowAction::Output {
                        port: PortRef::Name("nosuch".into()),
                    }];
                    mods.push(add(f));
                }
                let before = s.clone();
                let before_set = before.compile(round, cx().resolve);
                match s.apply(&mods, &cx()) {
                    Ok(_) => assert!(!bad),
                    // Refused as a whole: a bad port, a modify of a conjunction's flow, a
                    // flow listed twice in a replace.
                    Err(_) => assert_eq!(s, before, "a refused bundle changes nothing"),
                }
                let kept = s.compile(round, cx().resolve);
                let flows: Vec<(FlowId, FlowSpec)> =
                    s.flows().map(|f| (f.id, f.spec.clone())).collect();
                let groups: Vec<GroupSpec> = s.groups().values().cloned().collect();
                let misses: Vec<(u8, TableMiss)> =
                    s.misses().iter().map(|(t, m)| (*t, *m)).collect();
                let full =
                    FlowSet::build_with_groups(round, &flows, &misses, &groups, cx().resolve);
                same_lookups(&kept, &full, &mut r);
                // The version published before is untouched by the changes after it.
                let again = FlowStore::from_parts(
                    before.flows().cloned().collect(),
                    before.misses().clone(),
                    before.groups().clone(),
                );
                same_lookups(&before_set, &again.compile(round, cx().resolve), &mut r);
            }
        }
    }

    #[test]
    fn a_port_that_comes_and_goes_recompiles_the_flows_naming_it() {
        let mut s = FlowStore::initial();
        let with = |p: &PortRef| match p {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(n) if n == "pod1" => Some(7),
            PortRef::Name(_) => None,
        };
        let cx = Context {
            resolve: &with,
            sums: &|_| (0, 0),
            now_ms: 0,
        };
        let _ = s.compile(1, &with);
        let mut f = flow(10, [10, 1, 2, 2], 3);
        f.matches.push(Match::InPort {
            port: PortRef::Name("pod1".into()),
        });
        s.apply(&[add(f)], &cx).unwrap();
        let frame = crate::sample::udp_frame([2; 6], [4; 6], [10, 1, 1, 1], [10, 1, 2, 2], 64, 10);
        let k = FlowKey::extract(&frame, 7, None);
        let hit = |set: &FlowSet| {
            set.tables[0]
                .lookup(&k)
                .map(|i| set.rules[i as usize].priority)
        };
        assert_eq!(hit(&s.compile(2, &with)), Some(10));
        let without = |p: &PortRef| match p {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(_) => None,
        };
        assert_eq!(hit(&s.compile(3, &without)), Some(0), "the port is gone");
        assert_eq!(hit(&s.compile(4, &with)), Some(10), "and back");
    }

    #[test]
    fn the_store_saves_and_restores_in_order_with_its_ids() {
        let s = FlowStore::initial();
        let (s, _) = applied(
            &s,
            &[
                add(flow(10, [10, 1, 2, 2], 3)),
                add(flow(30, [10, 1, 2, 3], 4)),
                add(flow(20, [10, 1, 2, 4], 5)),
            ],
        )
        .unwrap();
        let (s, _) = applied(
            &s,
            &[FlowMod::Delete {
                table: Some(0),
                priority: Some(30),
                matches: flow(30, [10, 1, 2, 3], 4).matches,
                strict: true,
                cookie: None,
            }],
        )
        .unwrap();
        let text = serde_json::to_string(&s).unwrap();
        let back: FlowStore = serde_json::from_str(&text).unwrap();
        let specs = |s: &FlowStore| -> Vec<(FlowId, FlowSpec)> {
            s.flows().map(|f| (f.id, f.spec.clone())).collect()
        };
        assert_eq!(specs(&back), specs(&s));
        let ids: Vec<FlowId> = back.flows().map(|f| f.id).collect();
        assert_eq!(ids, vec![0, 1, 3]);
        // The freed id is the next one given.
        let (back, _) = applied(&back, &[add(flow(40, [10, 1, 2, 5], 5))]).unwrap();
        assert_eq!(back.flows().last().unwrap().id, 2);
    }
}
