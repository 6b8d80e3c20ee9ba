//! Flow tables: a multi-table OpenFlow-style pipeline in front of the built-in forwarding.
//!
//! - [`key`]: the flow key extracted from a frame (16 words).
//! - [`FlowSet`]: one immutable version of every table, compiled from the control plane's
//!   `FlowSpec`s. Each table is a tuple-space-search classifier: flows are grouped by their
//!   mask into subtables, each a hash map from masked key to rules; a lookup costs one hash
//!   probe per distinct mask, not per flow, and stops early once no remaining subtable can
//!   beat the best priority found.
//! - [`resolve`]: walks the tables for a key (set_field/load/move update the key, resubmit and
//!   goto_table recurse) and produces a [`Resolved`]: the straight-line program of packet edits
//!   and outputs, plus the path of (table, flow) pairs to credit. The limits are OVS's:
//!   resubmit/goto_table depth [`MAX_DEPTH`] (64) and [`MAX_RESUBMITS`] (4,096) lookups per
//!   packet; a packet that reaches one ends as [`End::TooDeep`] or [`End::TooManyResubmits`]
//!   and is dropped with that reason, nothing of its program carried out.
//! - [`Program`]: what a walk produces, step by step. [`Resolved`] keeps the first
//!   [`MAX_STEPS`] steps and [`MAX_PATH`] lookups (what the cache can hold); a longer program
//!   is marked `overflow`, never cached, and the pipeline walks the tables again with a
//!   `Program` that carries each step out as it comes — nothing is cut short.
//! - [`Emc`]: a per-worker exact-match cache from the full key to its `Resolved`, invalidated
//!   by the flow-set version (OVS's EMC).

mod classifier;
pub mod key;

pub use classifier::{conj_keys, Classifier};

use std::net::{IpAddr, Ipv6Addr};

use std::collections::BTreeMap;
use std::sync::Arc;

use controlplane::flow::{
    Field, FieldRange, FlowAction, FlowSpec, GroupSpec, GroupType, Match, PortRef, TableMiss,
    MAX_DEPTH,
};
use rustc_hash::FxHashMap;

use crate::fib::PortNo;
use crate::learn::LEARN_VALS;
use key::{field_slot, FlowKey, Slot, IN_PORT, WORDS};

/// Index of a flow in [`FlowSet::rules`] and in the per-worker counters.
pub type FlowId = u32;

/// Most flows a switch holds (per-worker counters are sized for it once).
pub const MAX_FLOWS: usize = 1 << 18;

/// Most rules the conjunctive flows of a switch may expand into (checked when flows are
/// added).
pub const MAX_CONJUNCTION_RULES: usize = 1_000_000;

/// A compiled action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Output(PortNo),
    Normal,
    Flood,
    Drop,
    /// Write `value` into bits `start..=end` of a field.
    Write {
        field: Field,
        start: u8,
        end: u8,
        value: u64,
    },
    Move {
        src: FieldRange,
        dst: FieldRange,
    },
    DecTtl,
    Resubmit {
        in_port: Option<PortNo>,
        table: u8,
    },
    GotoTable(u8),
    /// The IPv6 VTEP of a later output to the tunnel.
    SetTunIpv6Dst(Ipv6Addr),
    /// Output to the port number held in bits of a field.
    OutputField(FieldRange),
    /// Output back out of the ingress port.
    OutputInPort,
    /// Add an 802.1Q tag (the TCI's present bit) if the frame has none.
    PushVlan(u16),
    /// Run group `id`'s buckets.
    Group(u32),
    /// Learn: index into [`FlowSet::learns`].
    Learn(u32),
}

/// A compiled flow.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: FlowId,
    pub table: u8,
    pub priority: u16,
    pub value: FlowKey,
    pub mask: FlowKey,
    pub ops: Vec<Op>,
    pub spec: FlowSpec,
}

/// The rules one masked key selects: (priority, rule index), highest priority first.
#[derive(Debug, Clone)]
enum Hits {
    One(u16, u32),
    Many(Vec<(u16, u32)>),
}

impl Hits {
    #[inline]
    fn first(&self) -> (u16, u32) {
        match self {
            Hits::One(p, r) => (*p, *r),
            Hits::Many(v) => v.first().copied().unwrap_or((0, u32::MAX)),
        }
    }

    /// Adds a rule after the rules of the same priority.
    fn insert(&mut self, p: u16, r: u32) {
        let mut v = match std::mem::replace(self, Hits::Many(Vec::new())) {
            Hits::One(p0, r0) => vec![(p0, r0)],
            Hits::Many(v) => v,
        };
        let at = v.partition_point(|&(q, _)| q >= p);
        v.insert(at, (p, r));
        *self = Hits::Many(v);
    }

    /// Removes rule `r`; whether none are left.
    fn remove(&mut self, r: u32) -> bool {
        match self {
            Hits::One(_, r0) => *r0 == r,
            Hits::Many(v) => {
                v.retain(|&(_, x)| x != r);
                let one = match v.as_slice() {
                    [(p, x)] => Some((*p, *x)),
                    _ => None,
                };
                let empty = v.is_empty();
                if let Some((p, x)) = one {
                    *self = Hits::One(p, x);
                }
                empty
            }
        }
    }

    fn indexes(&self) -> impl Iterator<Item = u32> + '_ {
        let (one, many) = match self {
            Hits::One(_, r) => (Some(*r), &[][..]),
            Hits::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().map(|&(_, r)| r))
    }
}

/// Masked key → rules, one shard of a subtable. Shards are shared between versions: a change
/// copies the one shard it touches.
type Shard = FxHashMap<FlowKey, Hits>;

/// Keys a shard holds on average before its subtable doubles its shards.
const SHARD_KEYS: usize = 128;

#[derive(Debug, Clone)]
struct Subtable {
    mask: FlowKey,
    /// Words the mask uses (the others are zero).
    words: Vec<u8>,
    max_priority: u16,
    /// Rules in the subtable.
    len: usize,
    /// log2 of the number of shards.
    bits: u32,
    shards: Vec<Arc<Shard>>,
    /// How many rules have each priority (for `max_priority` after a removal).
    prios: BTreeMap<u16, u32>,
}

impl Subtable {
    fn new(mask: FlowKey) -> Subtable {
        Subtable {
            mask,
            words: (0..WORDS as u8)
                .filter(|&w| mask.0[w as usize] != 0)
                .collect(),
            max_priority: 0,
            len: 0,
            bits: 0,
            shards: vec![Arc::new(Shard::default())],
            prios: BTreeMap::new(),
        }
    }

    /// The shard of a masked key.
    #[inline]
    fn shard_of(&self, k: &FlowKey) -> usize {
        if self.bits == 0 {
            return 0;
        }
        let mut h = 0u64;
        for &w in &self.words {
            h = (h.rotate_left(5) ^ k.0[w as usize]).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        (h >> (64 - self.bits)) as usize
    }

    #[inline]
    fn probe(&self, key: &FlowKey) -> Option<(u16, u32)> {
        let mut k = [0u64; WORDS];
        for &w in &self.words {
            k[w as usize] = key.0[w as usize] & self.mask.0[w as usize];
        }
        let k = FlowKey(k);
        self.shards[self.shard_of(&k)].get(&k).map(Hits::first)
    }

    fn insert(&mut self, value: FlowKey, p: u16, r: u32) {
        let s = self.shard_of(&value);
        match Arc::make_mut(&mut self.shards[s]).entry(value) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().insert(p, r),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Hits::One(p, r));
            }
        }
        self.len += 1;
        *self.prios.entry(p).or_default() += 1;
        self.max_priority = self.max_priority.max(p);
        if self.len > SHARD_KEYS << self.bits && self.bits < 16 {
            self.reshard(self.bits + 1);
        }
    }

    fn remove(&mut self, value: &FlowKey, p: u16, r: u32) {
        let s = self.shard_of(value);
        let shard = Arc::make_mut(&mut self.shards[s]);
        let Some(h) = shard.get_mut(value) else {
            return;
        };
        if h.remove(r) {
            shard.remove(value);
        }
        self.len = self.len.saturating_sub(1);
        if let Some(n) = self.prios.get_mut(&p) {
            *n -= 1;
            if *n == 0 {
                self.prios.remove(&p);
            }
        }
        self.max_priority = self.prios.keys().next_back().copied().unwrap_or(0);
    }

    fn reshard(&mut self, bits: u32) {
        let old = std::mem::take(&mut self.shards);
        self.bits = bits;
        let mut shards = vec![Shard::default(); 1 << bits];
        for shard in old {
            for (k, h) in shard.iter() {
                shards[self.shard_of(k)].insert(*k, h.clone());
            }
        }
        self.shards = shards.into_iter().map(Arc::new).collect();
    }

    /// Every (masked value, rule index) of the subtable.
    fn entries(&self) -> impl Iterator<Item = (&FlowKey, u32)> + '_ {
        self.shards
            .iter()
            .flat_map(|s| s.iter())
            .flat_map(|(k, h)| h.indexes().map(move |r| (k, r)))
    }
}

/// One table: subtables by mask, highest `max_priority` first.
#[derive(Debug, Clone, Default)]
pub struct Table {
    subtables: Vec<Arc<Subtable>>,
    pub miss: TableMiss,
    pub flows: u32,
}

impl Table {
    /// The highest-priority rule matching `key` (an index into [`FlowSet::rules`]).
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        let mut best: Option<(u16, u32)> = None;
        for st in &self.subtables {
            if let Some((p, _)) = best {
                if st.max_priority <= p {
                    break;
                }
            }
            if let Some((p, r)) = st.probe(key) {
                if best.is_none_or(|(bp, _)| p > bp) {
                    best = Some((p, r));
                }
            }
        }
        best.map(|(_, r)| r)
    }

    /// Number of distinct masks.
    pub fn masks(&self) -> usize {
        self.subtables.len()
    }

    /// Adds rule index `r` (value, mask, priority).
    fn insert(&mut self, value: FlowKey, mask: FlowKey, p: u16, r: u32) {
        self.flows += 1;
        let at = match self.subtables.iter().position(|s| s.mask == mask) {
            Some(i) => i,
            None => {
                self.subtables.push(Arc::new(Subtable::new(mask)));
                self.subtables.len() - 1
            }
        };
        let st = Arc::make_mut(&mut self.subtables[at]);
        let before = st.max_priority;
        st.insert(value, p, r);
        if st.max_priority != before || st.len == 1 {
            self.order();
        }
    }

    /// Removes rule index `r`.
    fn remove(&mut self, value: &FlowKey, mask: &FlowKey, p: u16, r: u32) {
        let Some(at) = self.subtables.iter().position(|s| s.mask == *mask) else {
            return;
        };
        self.flows = self.flows.saturating_sub(1);
        let st = Arc::make_mut(&mut self.subtables[at]);
        let before = st.max_priority;
        st.remove(value, p, r);
        if st.len == 0 {
            self.subtables.remove(at);
        } else if st.max_priority != before {
            self.order();
        }
    }

    fn order(&mut self) {
        self.subtables
            .sort_by_key(|s| std::cmp::Reverse(s.max_priority));
    }

    /// Rule indexes of the rules whose mask covers `mask` and whose value agrees with
    /// `value` under it (the candidates of a loose selection).
    pub fn covering(&self, value: &FlowKey, mask: &FlowKey) -> Vec<u32> {
        let mut out = Vec::new();
        for st in &self.subtables {
            if (0..WORDS).any(|i| st.mask.0[i] & mask.0[i] != mask.0[i]) {
                continue;
            }
            if st.mask == *mask {
                let k = value.masked(mask);
                if let Some(h) = st.shards[st.shard_of(&k)].get(&k) {
                    out.extend(h.indexes());
                }
                continue;
            }
            for (k, r) in st.entries() {
                if (0..WORDS).all(|i| k.0[i] & mask.0[i] == value.0[i] & mask.0[i]) {
                    out.push(r);
                }
            }
        }
        out
    }
}

/// Rules in chunks shared between versions.
const CHUNK: usize = 256;

/// A vector of slots in chunks shared between versions: a copy costs a pointer per chunk, a
/// change copies the chunk it touches (the items themselves are shared).
#[derive(Debug)]
pub struct Slab<T> {
    chunks: Vec<Arc<Vec<Option<Arc<T>>>>>,
    live: usize,
}

impl<T> Clone for Slab<T> {
    fn clone(&self) -> Self {
        Slab {
            chunks: self.chunks.clone(),
            live: self.live,
        }
    }
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            live: 0,
        }
    }
}

impl<T> Slab<T> {
    /// The item in slot `i`, if any.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)?.as_deref()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Every item, by slot.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| c.iter().flatten().map(|a| &**a))
    }

    fn set(&mut self, i: usize, v: Option<Arc<T>>) {
        while self.chunks.len() <= i / CHUNK {
            self.chunks.push(Arc::new(vec![None; CHUNK]));
        }
        let slot = &mut Arc::make_mut(&mut self.chunks[i / CHUNK])[i % CHUNK];
        self.live = self.live + v.is_some() as usize - slot.is_some() as usize;
        *slot = v;
    }
}

impl<T> std::ops::Index<usize> for Slab<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        self.get(i).expect("a slot in use")
    }
}

/// One immutable version of the flow tables. Its parts are shared with the versions before
/// and after it: a version that changed one flow copies a few pointers, not the tables.
#[derive(Debug, Clone)]
pub struct FlowSet {
    pub version: u64,
    pub tables: Vec<Arc<Table>>,
    /// Rules by index (what tables and paths name).
    pub rules: Slab<Rule>,
    /// The `learn` actions' specs ([`Op::Learn`] indexes them).
    pub learns: Slab<controlplane::flow::LearnSpec>,
    /// The groups, by id.
    pub groups: Arc<FxHashMap<u32, Group>>,
}

impl Default for FlowSet {
    fn default() -> Self {
        FlowSet {
            version: 0,
            // One empty table shared by all until each changes.
            tables: {
                let empty = Arc::new(Table::default());
                (0..255).map(|_| empty.clone()).collect()
            },
            rules: Slab::default(),
            learns: Slab::default(),
            groups: Arc::default(),
        }
    }
}
/// A compiled group.
#[derive(Debug, Clone)]
pub struct Group {
    pub kind: GroupType,
    pub buckets: Vec<GroupBucket>,
    /// Sum of the buckets' weights (select groups).
    pub total_weight: u32,
}

/// A compiled bucket.
#[derive(Debug, Clone)]
pub struct GroupBucket {
    pub weight: u16,
    /// Fast failover: whether the watched port (or group) is there; a bucket that watches
    /// nothing is live.
    pub live: bool,
    pub ops: Vec<Op>,
}

impl Group {
    /// Compiles a group's buckets; `groups` tells which group ids exist (for watch_group).
    pub fn build(
        spec: &GroupSpec,
        resolve: &dyn Fn(&PortRef) -> Option<PortNo>,
        group_exists: &dyn Fn(u32) -> bool,
    ) -> Group {
        let buckets: Vec<GroupBucket> = spec
            .buckets
            .iter()
            .map(|b| {
                let port_live = b.watch_port.as_ref().map(|p| resolve(p).is_some());
                let group_live = b.watch_group.map(group_exists);
                GroupBucket {
                    weight: b.weight,
                    live: match (port_live, group_live) {
                        (None, None) => true,
                        (p, g) => p == Some(true) || g == Some(true),
                    },
                    ops: b
                        .actions
                        .iter()
                        .filter_map(|a| compile_action(a, resolve))
                        .collect(),
                }
            })
            .collect();
        Group {
            kind: spec.kind,
            total_weight: buckets.iter().map(|b| b.weight as u32).sum(),
            buckets,
        }
    }

    /// The bucket a select group picks for a flow hash: weighted, stable for a hash.
    #[inline]
    fn select(&self, hash: u64) -> Option<&GroupBucket> {
        if self.total_weight == 0 {
            return None;
        }
        let mut at = (hash % self.total_weight as u64) as u32;
        for b in &self.buckets {
            if at < b.weight as u32 {
                return Some(b);
            }
            at -= b.weight as u32;
        }
        None
    }
}

impl FlowSet {
    /// Compiles flows (`(id, spec)` pairs) with port names resolved by `resolve`; a flow whose
    /// port does not resolve never matches (in_port) or drops (output).
    pub fn build(
        version: u64,
        flows: &[(FlowId, FlowSpec)],
        misses: &[(u8, TableMiss)],
        resolve: &dyn Fn(&PortRef) -> Option<PortNo>,
    ) -> FlowSet {
        Self::build_with_groups(version, flows, misses, &[], resolve)
    }

    /// [`FlowSet::build`] with groups. Conjunctive flows (`conjunction(id,k/n)` actions) and
    /// `conj_id=id` flows are expanded into ordinary rules (see [`expand_conjunctions`]).
    pub fn build_with_groups(
        version: u64,
        flows: &[(FlowId, FlowSpec)],
        misses: &[(u8, TableMiss)],
        groups: &[GroupSpec],
        resolve: &dyn Fn(&PortRef) -> Option<PortNo>,
    ) -> FlowSet {
        let mut c = Classifier::default();
        c.set_groups(groups.iter(), resolve);
        for &(t, m) in misses {
            c.set_miss(t, m);
        }
        let mut conj: BTreeMap<(u8, u32), Vec<(FlowId, FlowSpec)>> = BTreeMap::new();
        for (id, spec) in flows {
            c.add_flow(*id, spec, resolve);
            for k in conj_keys(spec) {
                conj.entry(k).or_default().push((*id, spec.clone()));
            }
        }
        for (k, members) in conj {
            c.set_conjunction(k, &members, resolve);
        }
        c.snapshot(version)
    }
}
/// What a flow is to conjunctive matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConjRole {
    /// An ordinary flow.
    None,
    /// A clause: its actions are all `conjunction(...)`.
    Clause,
    /// A `conj_id=N` flow: it matches through its conjunction's clauses.
    Target(u32),
}

/// Whether `f` is a clause of a conjunction, a `conj_id` flow, or neither.
pub fn conj_role(f: &FlowSpec) -> ConjRole {
    if let Some(id) = f.matches.iter().find_map(|m| match m {
        Match::ConjId { value } => Some(*value),
        _ => None,
    }) {
        return ConjRole::Target(id);
    }
    if f.actions
        .iter()
        .any(|a| matches!(a, FlowAction::Conjunction { .. }))
        && f.actions
            .iter()
            .all(|a| matches!(a, FlowAction::Conjunction { .. } | FlowAction::Note { .. }))
    {
        return ConjRole::Clause;
    }
    ConjRole::None
}

/// A conjunction's clauses in one table at one priority: clause k-1 → its flows' matches.
type Clauses = Vec<Vec<(FlowKey, FlowKey)>>;

/// The clauses of every conjunction, by (table, conjunction id, priority).
fn conjunctions(
    flows: &[(FlowId, FlowSpec)],
    resolve: &dyn Fn(&PortRef) -> Option<PortNo>,
) -> BTreeMap<(u8, u32, u16), Clauses> {
    let mut out: BTreeMap<(u8, u32, u16), Clauses> = BTreeMap::new();
    for (_, f) in flows {
        if conj_role(f) != ConjRole::Clause {
            continue;
        }
        let Ok(vm) = key::compile_match(&f.matches, resolve) else {
            continue;
        };
        for a in &f.actions {
            if let FlowAction::Conjunction {
                id,
                clause,
                n_clauses,
            } = *a
            {
                let n = n_clauses.max(1) as usize;
                let c = out
                    .entry((f.table, id, f.priority))
                    .or_insert_with(|| vec![Vec::new(); n]);
                if c.len() == n && (1..=n).contains(&(clause as usize)) {
                    c[clause as usize - 1].push(vm);
                }
            }
        }
    }
    out
}

/// How many rules the conjunctions of `flows` expand into at most (before conflicting
/// combinations are skipped), for the limit checked when flows are added.
pub fn conjunction_rules(flows: &[(FlowId, FlowSpec)]) -> usize {
    let resolve = |_: &PortRef| Some(1);
    let clauses = conjunctions(flows, &resolve);
    let mut total = 0usize;
    for (_, f) in flows {
        let ConjRole::Target(id) = conj_role(f) else {
            continue;
        };
        for (_, c) in clauses.range((f.table, id, 0)..=(f.table, id, u16::MAX)) {
            let n = c.iter().fold(1usize, |p, v| p.saturating_mul(v.len()));
            total = total.saturating_add(n);
        }
    }
    total
}

/// Expands every `conj_id` flow into ordinary rules: for each priority its conjunction has
/// clauses at, one rule per combination of one flow from each clause (their matches and the
/// `conj_id` flow's other matches merged; a combination whose matches conflict can never
/// match and is skipped), at the clauses' priority, with the `conj_id` flow's actions and id.
/// A packet matching only some clauses matches none of these and falls through to lower
/// priorities, as in OVS. `None` when more than `cap` rules would result.
pub fn expand_conjunctions(
    flows: &[(FlowId, FlowSpec)],
    resolve: &dyn Fn(&PortRef) -> Option<PortNo>,
    cap: usize,
) -> Option<Vec<Rule>> {
    let clauses = conjunctions(flows, resolve);
    let mut out = Vec::new();
    for (id, f) in flows {
        let ConjRole::Target(conj) = conj_role(f) else {
            continue;
        };
        let own: Vec<Match> = f
            .matches
            .iter()
            .filter(|m| !matches!(m, Match::ConjId { .. }))
            .cloned()
            .collect();
        let Ok(base) = key::compile_match(&own, resolve) else {
            continue;
        };
        let ops: Vec<Op> = f
            .actions
            .iter()
            .filter_map(|a| compile_action(a, resolve))
            .map(|op| in_table(op, f.table))
            .collect();
        for (&(table, _, priority), c) in
            clauses.range((f.table, conj, 0)..=(f.table, conj, u16::MAX))
        {
            if c.iter().any(|v| v.is_empty()) {
                continue;
            }
            // Odometer over the clauses' flows.
            let mut idx = vec![0usize; c.len()];
            'combos: loop {
                let mut acc = Some(base);
                for (k, &i) in idx.iter().enumerate() {
                    acc = acc.and_then(|a| merge_match(a, c[k][i]));
                }
                if let Some((value, mask)) = acc {
                    if out.len() >= cap {
                        return None;
                    }
                    out.push(Rule {
                        id: *id,
                        table,
                        priority,
                        value,
                        mask,
                        ops: ops.clone(),
                        spec: f.clone(),
                    });
                }
                for k in (0..idx.len()).rev() {
                    idx[k] += 1;
                    if idx[k] < c[k].len() {
                        continue 'combos;
                    }
                    idx[k] = 0;
                }
                break;
            }
        }
    }
    Some(out)
}

/// Two matches (value, mask) together, or `None` when no packet can match both.
fn merge_match(a: (FlowKey, FlowKey), b: (FlowKey, FlowKey)) -> Option<(FlowKey, FlowKey)> {
    let (mut v, mut m) = a;
    for i in 0..WORDS {
        let common = m.0[i] & b.1 .0[i];
        if (v.0[i] ^ b.0 .0[i]) & common != 0 {
            return None;
        }
        v.0[i] = (v.0[i] & m.0[i]) | (b.0 .0[i] & b.1 .0[i]);
        m.0[i] |= b.1 .0[i];
    }
    Some((v, m))
}

/// `resubmit` without a table (table 255, as OVS writes "this table") resubmits to the
/// table of the flow it is in.
fn in_table(op: Op, table: u8) -> Op {
    match op {
        Op::Resubmit {
            in_port,
            table: 255,
        } => Op::Resubmit { in_port, table },
        op => op,
    }
}

fn compile_action(a: &FlowAction, resolve: &dyn Fn(&PortRef) -> Option<PortNo>) -> Option<Op> {
    Some(match a {
        FlowAction::Output { port } => Op::Output(resolve(port).unwrap_or(0)),
        FlowAction::Normal => Op::Normal,
        FlowAction::Flood => Op::Flood,
        FlowAction::Drop => Op::Drop,
        FlowAction::SetField { field, value } => Op::Write {
            field: *field,
            start: 0,
            end: (field.bits() - 1) as u8,
            value: *value,
        },
        FlowAction::Load { dst, value } => Op::Write {
            field: dst.field,
            start: dst.start,
            end: dst.end,
            value: *value,
        },
        FlowAction::Move { src, dst } => Op::Move {
            src: *src,
            dst: *dst,
        },
        FlowAction::ModDlSrc { mac } => Op::Write {
            field: Field::DlSrc,
            start: 0,
            end: 47,
            value: key::mac_u64(&mac.0),
        },
        FlowAction::ModDlDst { mac } => Op::Write {
            field: Field::DlDst,
            start: 0,
            end: 47,
            value: key::mac_u64(&mac.0),
        },
        FlowAction::DecTtl => Op::DecTtl,
        FlowAction::Resubmit { in_port, table } => Op::Resubmit {
            in_port: in_port.as_ref().map(|p| resolve(p).unwrap_or(0)),
            table: *table,
        },
        FlowAction::GotoTable { table } => Op::GotoTable(*table),
        FlowAction::SetTunIpv6Dst { value } => Op::SetTunIpv6Dst(*value),
        FlowAction::Note { .. } => return None,
        FlowAction::OutputReg { src } => Op::OutputField(*src),
        FlowAction::InPort => Op::OutputInPort,
        FlowAction::PushVlan { ethertype } => Op::PushVlan(*ethertype),
        FlowAction::PopVlan => Op::Write {
            field: Field::VlanTci,
            start: 0,
            end: 15,
            value: 0,
        },
        FlowAction::ModVlanVid { vid } => Op::Write {
            field: Field::VlanTci,
            start: 0,
            end: 12,
            value: 0x1000 | (*vid as u64 & 0xfff),
        },
        FlowAction::ModVlanPcp { pcp } => Op::Write {
            field: Field::VlanTci,
            start: 12,
            end: 15,
            value: ((*pcp as u64 & 7) << 1) | 1,
        },
        FlowAction::ModNwTos { tos } => Op::Write {
            field: Field::NwTos,
            start: 2,
            end: 7,
            value: (*tos >> 2) as u64,
        },
        FlowAction::Group { id } => Op::Group(*id),
        FlowAction::Learn(_) => Op::Learn(u32::MAX),
        // A conjunctive clause does nothing itself: its flow is compiled into the
        // conjunction's flows.
        FlowAction::Conjunction { .. } => return None,
    })
}

/// A packet edit or output, in the order the flows asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Write a packet field (the whole field's new value).
    Set(Field, u64),
    DecTtl,
    Output(PortNo),
    /// Output to the tunnel with this VNI to this VTEP (IPv4, or IPv6 once
    /// `tun_ipv6_dst` is set).
    Tunnel {
        vni: u32,
        dst: IpAddr,
    },
    Normal,
    Flood,
    /// A learn, its values in the [`Resolved`]'s learn slot of this number.
    Learn(u8),
}

/// Why resolution ended without output, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// All actions ran.
    Done,
    /// A drop action (or an empty action list).
    Drop,
    /// A table had no matching flow and its miss policy is drop.
    Miss(u8),
    /// resubmit/goto_table went deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More than [`MAX_RESUBMITS`] table lookups for one packet.
    TooManyResubmits,
    /// A group action named a group the flow set does not hold.
    NoGroup(u32),
}

impl End {
    /// A limit of the flow tables was reached: the packet is dropped, its program not run.
    pub fn is_limit(self) -> bool {
        matches!(self, End::TooDeep | End::TooManyResubmits)
    }
}

/// Steps a [`Resolved`] (and so an exact-match cache entry) holds; longer programs are run by
/// walking the tables again, uncached.
pub const MAX_STEPS: usize = 16;
/// Lookups a [`Resolved`] records for crediting; longer paths are credited by the walk itself.
pub const MAX_PATH: usize = 16;
/// Most table lookups (resubmit, goto_table, a miss that continues) one packet may cause
/// after the first, as OVS allows (its `MAX_RESUBMITS`): resubmits that fan out could
/// otherwise cost 2^64 lookups at depth 64.
pub const MAX_RESUBMITS: usize = 4096;

/// What a walk of the tables produces, in order: the packet's steps and the lookups made.
pub trait Program {
    /// The next packet edit or output.
    fn step(&mut self, s: Step);
    /// A lookup in `table` that found rule index `rule` (`u32::MAX`: a miss).
    fn lookup(&mut self, table: u8, rule: u32);
    /// A `learn` of spec `index` with the packet's values at this point of the walk.
    fn learn(&mut self, index: u32, vals: &[u64; LEARN_VALS]);
}

/// Learns a [`Resolved`] holds; a program with more is walked again, uncached.
pub const MAX_LEARNS: usize = 2;

/// The outcome of the flow tables for one key, without allocation.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    steps: [Step; MAX_STEPS],
    n_steps: u8,
    /// (table, rule index or u32::MAX for a miss)
    path: [(u8, u32); MAX_PATH],
    n_path: u8,
    /// The learns' spec indexes and values, in the order of their [`Step::Learn`]s.
    learns: [(u32, [u64; LEARN_VALS]); MAX_LEARNS],
    n_learns: u8,
    /// More steps or lookups than fit: the result must not be cached.
    pub overflow: bool,
    pub end: End,
}

impl Default for Resolved {
    fn default() -> Self {
        Resolved {
            steps: [Step::Normal; MAX_STEPS],
            n_steps: 0,
            path: [(0, u32::MAX); MAX_PATH],
            n_path: 0,
            learns: [(0, [0; LEARN_VALS]); MAX_LEARNS],
            n_learns: 0,
            overflow: false,
            end: End::Done,
        }
    }
}

impl Resolved {
    pub fn steps(&self) -> &[Step] {
        &self.steps[..self.n_steps as usize]
    }
    pub fn path(&self) -> &[(u8, u32)] {
        &self.path[..self.n_path as usize]
    }
    /// The learn of a [`Step::Learn`]: spec index and values.
    pub fn learn_slot(&self, slot: u8) -> (u32, [u64; LEARN_VALS]) {
        self.learns[(slot as usize).min(MAX_LEARNS - 1)]
    }
    /// Whether the exact-match cache may keep this result: the whole program fits, or the
    /// packet is dropped at a limit (then only the verdict matters).
    pub fn cacheable(&self) -> bool {
        !self.overflow || self.end.is_limit()
    }
}

impl Program for Resolved {
    #[inline]
    fn step(&mut self, s: Step) {
        if (self.n_steps as usize) < MAX_STEPS {
            self.steps[self.n_steps as usize] = s;
            self.n_steps += 1;
        } else {
            self.overflow = true;
        }
    }
    #[inline]
    fn lookup(&mut self, table: u8, rule: u32) {
        if (self.n_path as usize) < MAX_PATH {
            self.path[self.n_path as usize] = (table, rule);
            self.n_path += 1;
        } else {
            self.overflow = true;
        }
    }
    #[inline]
    fn learn(&mut self, index: u32, vals: &[u64; LEARN_VALS]) {
        let n = self.n_learns as usize;
        if n < MAX_LEARNS {
            self.learns[n] = (index, *vals);
            self.n_learns += 1;
            self.step(Step::Learn(n as u8));
        } else {
            self.overflow = true;
        }
    }
}

/// A trace observer: called for each lookup (for `vxctl trace`).
pub trait Observer {
    fn lookup(&mut self, table: u8, depth: usize, rule: Option<&Rule>, miss: TableMiss);
}

impl Observer for () {
    #[inline]
    fn lookup(&mut self, _: u8, _: usize, _: Option<&Rule>, _: TableMiss) {}
}

/// Runs the flow tables for `key` (which is updated by set_field/load/move as it goes).
pub fn resolve(set: &FlowSet, key: &mut FlowKey, obs: &mut dyn Observer) -> Resolved {
    let mut r = Resolved::default();
    r.end = resolve_into(set, key, &mut r, obs);
    r
}

/// Runs the flow tables for `key`, handing every step and lookup to `prog` as the walk makes
/// them; returns how the walk ended.
pub fn resolve_into<P: Program>(
    set: &FlowSet,
    key: &mut FlowKey,
    prog: &mut P,
    obs: &mut dyn Observer,
) -> End {
    let mut budget = MAX_RESUBMITS + 1;
    walk(set, key, 0, 0, prog, &mut budget, obs)
}

fn walk<P: Program>(
    set: &FlowSet,
    key: &mut FlowKey,
    mut table: u8,
    depth: usize,
    r: &mut P,
    budget: &mut usize,
    obs: &mut dyn Observer,
) -> End {
    if depth > MAX_DEPTH {
        return End::TooDeep;
    }
    loop {
        if *budget == 0 {
            return End::TooManyResubmits;
        }
        *budget -= 1;
        let Some(t) = set.tables.get(table as usize) else {
            return End::Miss(table);
        };
        let Some((ri, rule)) = t
            .lookup(key)
            .and_then(|ri| Some((ri, set.rules.get(ri as usize)?)))
        else {
            r.lookup(table, u32::MAX);
            obs.lookup(table, depth, None, t.miss);
            return match t.miss {
                TableMiss::Drop => End::Miss(table),
                TableMiss::Normal => {
                    r.step(Step::Normal);
                    End::Done
                }
                TableMiss::Continue if (table as usize) < 254 => {
                    table += 1;
                    continue;
                }
                TableMiss::Continue => End::Miss(table),
            };
        };
        r.lookup(table, ri);
        obs.lookup(table, depth, Some(rule), t.miss);
        if rule.ops.is_empty() {
            return End::Drop;
        }
        let mut goto = None;
        if let Some(e) = run_ops(set, key, &rule.ops, depth, r, budget, obs, &mut goto) {
            return e;
        }
        match goto {
            Some(t2) => {
                return walk(set, key, t2, depth + 1, r, budget, obs);
            }
            None => return End::Done,
        }
    }
}

/// Runs one action list; `Some(end)` ends the walk, `goto` receives a goto_table.
#[allow(clippy::too_many_arguments)]
#[inline]
fn run_ops<P: Program>(
    set: &FlowSet,
    key: &mut FlowKey,
    ops: &[Op],
    depth: usize,
    r: &mut P,
    budget: &mut usize,
    obs: &mut dyn Observer,
    goto: &mut Option<u8>,
) -> Option<End> {
    for op in ops {
        match *op {
            Op::Output(p) => output(key, p, r),
            Op::Normal => r.step(Step::Normal),
            Op::Flood => r.step(Step::Flood),
            Op::Drop => return Some(End::Drop),
            Op::Write {
                field,
                start,
                end,
                value,
            } => {
                write_bits(key, field, start, end, value);
                if is_packet_field(field) {
                    r.step(Step::Set(field, key.get(field_slot(field))));
                }
            }
            Op::Move { src, dst } => {
                let v = read_bits(key, src.field, src.start, src.end);
                write_bits(key, dst.field, dst.start, dst.end, v);
                if is_packet_field(dst.field) {
                    r.step(Step::Set(dst.field, key.get(field_slot(dst.field))));
                }
            }
            Op::DecTtl => {
                r.step(Step::DecTtl);
                let ttl = key.get(key::NW_TTL);
                key.set(key::NW_TTL, ttl.saturating_sub(1));
            }
            Op::Resubmit { in_port, table: t2 } => {
                let saved = key.get(IN_PORT);
                if let Some(p) = in_port {
                    key.set(IN_PORT, p as u64);
                }
                let e = walk(set, key, t2, depth + 1, r, budget, obs);
                key.set(IN_PORT, saved);
                // As in OVS, a resubmitted table that misses or whose flow drops does
                // nothing and the caller's actions go on; only the limits end the walk.
                if e.is_limit() || matches!(e, End::NoGroup(_)) {
                    return Some(e);
                }
            }
            Op::GotoTable(t2) => *goto = Some(t2),
            Op::SetTunIpv6Dst(a) => key.set_ipv6(key::TUN_IPV6_DST_HI, key::TUN_IPV6_DST_LO, a),
            Op::OutputField(src) => {
                let p = read_bits(key, src.field, src.start, src.end);
                output(key, p as PortNo, r);
            }
            Op::OutputInPort => r.step(Step::Output(key.get(IN_PORT) as PortNo)),
            Op::PushVlan(_) => {
                if key.get(key::DL_VLAN) & 0x1000 == 0 {
                    key.set(key::DL_VLAN, 0x1000);
                    r.step(Step::Set(Field::VlanTci, 0x1000));
                }
            }
            Op::Group(id) => {
                if let Some(e) = run_group(set, key, id, depth, r, budget, obs) {
                    return Some(e);
                }
            }
            Op::Learn(i) => {
                if let Some(spec) = set.learns.get(i as usize) {
                    let mut vals = [0u64; LEARN_VALS];
                    let sources = spec.items.iter().filter_map(crate::learn::source);
                    for (v, src) in vals.iter_mut().zip(sources) {
                        *v = read_bits(key, src.field, src.start, src.end);
                    }
                    r.learn(i, &vals);
                }
            }
        }
    }
    None
}

/// Packet fields a bucket of an `all` group may change, restored after it.
const BUCKET_FIELDS: [Field; 9] = [
    Field::DlSrc,
    Field::DlDst,
    Field::VlanTci,
    Field::NwSrc,
    Field::NwDst,
    Field::NwTtl,
    Field::NwTos,
    Field::TpSrc,
    Field::TpDst,
];

/// Runs group `id`: `Some(end)` ends the walk (a limit, or a group that is not there).
#[allow(clippy::too_many_arguments)]
fn run_group<P: Program>(
    set: &FlowSet,
    key: &mut FlowKey,
    id: u32,
    depth: usize,
    r: &mut P,
    budget: &mut usize,
    obs: &mut dyn Observer,
) -> Option<End> {
    let Some(g) = set.groups.get(&id) else {
        return Some(End::NoGroup(id));
    };
    let depth = depth + 1;
    if depth > MAX_DEPTH {
        return Some(End::TooDeep);
    }
    // A bucket's goto_table is refused when the group is added; one here goes nowhere.
    let mut goto = None;
    let bucket = match g.kind {
        GroupType::All => {
            for b in &g.buckets {
                // Each bucket works on its own copy of the packet: afterwards, put back
                // every field it changed so the next bucket starts from the packet as it was.
                let saved = *key;
                let e = run_ops(set, key, &b.ops, depth, r, budget, obs, &mut goto);
                if let Some(e) = e.filter(|e| e.is_limit() || matches!(e, End::NoGroup(_))) {
                    return Some(e);
                }
                for f in BUCKET_FIELDS {
                    let s = field_slot(f);
                    if key.get(s) != saved.get(s) {
                        r.step(Step::Set(f, saved.get(s)));
                    }
                }
                *key = saved;
            }
            return None;
        }
        GroupType::Indirect => g.buckets.first(),
        GroupType::Select => g.select(flow_hash(key)),
        GroupType::FastFailover => g.buckets.iter().find(|b| b.live),
    };
    let b = bucket?;
    let e = run_ops(set, key, &b.ops, depth, r, budget, obs, &mut goto);
    e.filter(|e| e.is_limit() || matches!(e, End::NoGroup(_)))
}

/// A select group's hash: the L2 addresses and type, and the IPv4/IPv6 5-tuple, so one
/// flow always takes the same bucket (and a cached result stays right).
#[inline]
fn flow_hash(key: &FlowKey) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for s in [
        key::DL_SRC,
        key::DL_DST,
        key::DL_TYPE,
        key::NW_PROTO,
        key::NW_SRC,
        key::NW_DST,
        key::IPV6_SRC_HI,
        key::IPV6_SRC_LO,
        key::IPV6_DST_HI,
        key::IPV6_DST_LO,
        key::TP_SRC,
        key::TP_DST,
    ] {
        h = (h ^ key.get(s)).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h
}

/// An output to port `p`: to the tunnel with the key's VNI and VTEP, or to a port.
#[inline]
fn output<P: Program>(key: &FlowKey, p: PortNo, r: &mut P) {
    if p == controlplane::proto::PORT_TUNNEL {
        r.step(Step::Tunnel {
            vni: key.get(key::TUN_ID) as u32,
            dst: tunnel_dst(key),
        })
    } else {
        r.step(Step::Output(p))
    }
}

/// Where an output to the tunnel goes: `tun_ipv6_dst` when a flow set one (or the packet came
/// from an IPv6 tunnel), else `tun_dst`.
fn tunnel_dst(key: &FlowKey) -> IpAddr {
    let v6 = key::ipv6(key, key::TUN_IPV6_DST_HI, key::TUN_IPV6_DST_LO);
    if v6.is_unspecified() {
        IpAddr::V4(key.ipv4(key::TUN_DST))
    } else {
        IpAddr::V6(v6)
    }
}

fn is_packet_field(f: Field) -> bool {
    !matches!(
        f,
        Field::Reg(_)
            | Field::TunId
            | Field::TunSrc
            | Field::TunDst
            | Field::InPort
            | Field::PktMark
            | Field::DlType
            | Field::NwProto
    )
}

fn range_mask(start: u8, end: u8) -> u64 {
    let width = (end - start) as u32 + 1;
    let m = if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    m << start
}

fn read_bits(key: &FlowKey, field: Field, start: u8, end: u8) -> u64 {
    // Ranges are checked when a flow is added; one beyond a 64-bit slot reads nothing.
    if end < start || end > 63 {
        return 0;
    }
    (key.get(field_slot(field)) & range_mask(start, end)) >> start
}

fn write_bits(key: &mut FlowKey, field: Field, start: u8, end: u8, value: u64) {
    if end < start || end > 63 {
        return;
    }
    let s: Slot = field_slot(field);
    let m = range_mask(start, end);
    let old = key.get(s);
    key.set(s, (old & !m) | ((value << start) & m));
}

/// Per-worker exact-match cache.
pub struct Emc {
    entries: Box<[EmcEntry]>,
}

#[derive(Clone, Copy)]
struct EmcEntry {
    version: u64,
    key: FlowKey,
    resolved: Resolved,
}

/// Entries in a worker's exact-match cache.
pub const EMC_ENTRIES: usize = 2048;

impl Default for Emc {
    fn default() -> Self {
        let empty = EmcEntry {
            version: u64::MAX,
            key: FlowKey::default(),
            resolved: Resolved::default(),
        };
        Emc {
            entries: vec![empty; EMC_ENTRIES].into_boxed_slice(),
        }
    }
}

impl Emc {
    /// The cached result for `key` under flow-set `version`.
    #[inline]
    pub fn get(&self, version: u64, key: &FlowKey, hash: u64) -> Option<&Resolved> {
        let e = &self.entries[(hash as usize) & (EMC_ENTRIES - 1)];
        (e.version == version && e.key == *key).then_some(&e.resolved)
    }

    #[inline]
    pub fn insert(&mut self, version: u64, key: FlowKey, hash: u64, resolved: &Resolved) {
        if !resolved.cacheable() {
            return;
        }
        let e = &mut self.entries[(hash as usize) & (EMC_ENTRIES - 1)];
        e.version = version;
        e.key = key;
        e.resolved = *resolved;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use controlplane::flow::{Match, DEFAULT_PRIORITY};
    use controlplane::proto::MacAddr;
    use std::net::Ipv4Addr;

    fn flow(table: u8, priority: u16, matches: Vec<Match>, actions: Vec<FlowAction>) -> FlowSpec {
        FlowSpec {
            table,
            priority,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            matches,
            actions,
        }
    }

    fn num(p: &PortRef) -> Option<PortNo> {
        match p {
            PortRef::Number(n) => Some(*n),
            PortRef::Name(n) if n == "vxlan0" => Some(1),
            PortRef::Name(_) => None,
        }
    }

    fn ip() -> Match {
        Match::DlType { value: 0x0800 }
    }

    fn dst(a: [u8; 4], prefix: u32) -> Match {
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Match::NwDst {
            value: Ipv4Addr::from(a),
            mask: Ipv4Addr::from(mask),
        }
    }

    fn key_to(a: [u8; 4], in_port: u16) -> FlowKey {
        let f = crate::sample::udp_frame([2; 6], [4; 6], [10, 1, 1, 2], a, 64, 10);
        FlowKey::extract(&f, in_port, None)
    }

    #[test]
    fn highest_priority_wins_across_masks() {
        let flows = vec![
            (0, flow(0, 0, vec![], vec![FlowAction::Normal])),
            (
                1,
                flow(
                    0,
                    100,
                    vec![ip(), dst([10, 1, 2, 0], 24)],
                    vec![FlowAction::Output {
                        port: PortRef::Number(4),
                    }],
                ),
            ),
            (
                2,
                flow(
                    0,
                    200,
                    vec![ip(), dst([10, 1, 2, 7], 32)],
                    vec![FlowAction::Drop],
                ),
            ),
            (
                3,
                flow(
                    0,
                    50,
                    vec![ip(), dst([10, 1, 0, 0], 16)],
                    vec![FlowAction::Output {
                        port: PortRef::Number(5),
                    }],
                ),
            ),
        ];
        let set = FlowSet::build(1, &flows, &[], &num);
        assert_eq!(set.tables[0].masks(), 4);
        let mut k = key_to([10, 1, 2, 7], 3);
        assert_eq!(resolve(&set, &mut k, &mut ()).end, End::Drop);
        let mut k = key_to([10, 1, 2, 8], 3);
        let r = resolve(&set, &mut k, &mut ());
        assert_eq!(r.steps(), &[Step::Output(4)]);
        let mut k = key_to([10, 1, 3, 8], 3);
        assert_eq!(resolve(&set, &mut k, &mut ()).steps(), &[Step::Output(5)]);
        let mut k = key_to([192, 0, 2, 1], 3);
        assert_eq!(resolve(&set, &mut k, &mut ()).steps(), &[Step::Normal]);
    }

    #[test]
    fn resubmit_set_field_registers_and_depth_cap() {
        let flows = vec![
            (
                0,
                flow(
                    0,
                    DEFAULT_PRIORITY,
                    vec![],
                    vec![
                        FlowAction::Load {
                            dst: FieldRange::whole(Field::Reg(0)),
                            value: 7,
                        },
                        FlowAction::Resubmit {
                            in_port: None,
                            table: 5,
                        },
                    ],
                ),
            ),
            (
                1,
                flow(
                    5,
                    10,
                    vec![Match::Reg {
                        index: 0,
                        value: 7,
                        mask: u32::MAX,
                    }],
                    vec![
                        FlowAction::SetField {
                            field: Field::DlDst,
                            value: 0x0a58_0a01_0103,
                        },
                        FlowAction::SetField {
                            field: Field::TunDst,
                            value: u32::from(Ipv4Addr::new(198, 51, 100, 2)) as u64,
                        },
                        FlowAction::SetField {
                            field: Field::TunId,
                            value: 10,
                        },
                        FlowAction::Output {
                            port: PortRef::Name("vxlan0".into()),
                        },
                    ],
                ),
            ),
            // A loop: table 9 resubmits to itself.
            (
                2,
                flow(
                    9,
                    1,
                    vec![],
                    vec![FlowAction::Resubmit {
                        in_port: None,
                        table: 9,
                    }],
                ),
            ),
        ];
        let set = FlowSet::build(1, &flows, &[], &num);
        let mut k = key_to([10, 1, 2, 2], 3);
        let r = resolve(&set, &mut k, &mut ());
        assert_eq!(r.end, End::Done);
        assert_eq!(
            r.steps(),
            &[
                Step::Set(Field::DlDst, 0x0a58_0a01_0103),
                Step::Tunnel {
                    vni: 10,
                    dst: Ipv4Addr::new(198, 51, 100, 2).into()
                }
            ]
        );
        assert_eq!(r.path(), &[(0, 0), (5, 1)]);
        let set2 = FlowSet::build(
            2,
            &[
                (
                    0,
                    flow(0, 1, vec![], vec![FlowAction::GotoTable { table: 9 }]),
                ),
                flows[2].clone(),
            ],
            &[],
            &num,
        );
        let mut k = key_to([10, 1, 2, 2], 3);
        let r = resolve(&set2, &mut k, &mut ());
        assert_eq!(r.end, End::TooDeep);
        assert!(
            r.overflow && r.cacheable(),
            "a limit's verdict is cached, not its steps"
        );
        let _ = MacAddr([0; 6]);
    }

    /// Collects everything a walk produces, unbounded.
    #[derive(Default)]
    struct All {
        steps: Vec<Step>,
        lookups: usize,
    }

    impl Program for All {
        fn step(&mut self, s: Step) {
            self.steps.push(s);
        }
        fn lookup(&mut self, _: u8, _: u32) {
            self.lookups += 1;
        }
        fn learn(&mut self, _: u32, _: &[u64; LEARN_VALS]) {}
    }

    #[test]
    fn long_programs_are_marked_and_walked_in_full() {
        let outs: Vec<FlowAction> = (0..20)
            .map(|i| FlowAction::Output {
                port: PortRef::Number(10 + i),
            })
            .collect();
        // 20 outputs in table 0, then 20 lookups down a goto_table chain.
        let mut flows = vec![(
            0,
            flow(
                0,
                1,
                vec![],
                [outs, vec![FlowAction::GotoTable { table: 1 }]].concat(),
            ),
        )];
        for t in 1..20u8 {
            flows.push((
                t as u32,
                flow(t, 1, vec![], vec![FlowAction::GotoTable { table: t + 1 }]),
            ));
        }
        flows.push((20, flow(20, 1, vec![], vec![FlowAction::Normal])));
        let set = FlowSet::build(1, &flows, &[], &num);
        let mut k = key_to([10, 1, 2, 2], 3);
        let r = resolve(&set, &mut k, &mut ());
        assert_eq!(r.end, End::Done);
        assert!(r.overflow && !r.cacheable(), "too long for the cache");
        assert_eq!(r.steps().len(), MAX_STEPS);
        let mut all = All::default();
        let mut k = key_to([10, 1, 2, 2], 3);
        assert_eq!(resolve_into(&set, &mut k, &mut all, &mut ()), End::Done);
        assert_eq!(all.steps.len(), 21);
        assert_eq!(all.steps[19], Step::Output(29));
        assert_eq!(all.steps[20], Step::Normal);
        assert_eq!(all.lookups, 21);
        let mut emc = Emc::default();
        emc.insert(1, k, k.hash(), &r);
        assert!(emc.get(1, &k, k.hash()).is_none(), "never cached cut short");
    }

    #[test]
    fn lookups_per_packet_are_capped_like_ovs() {
        // A chain of `continue` misses is cheap; resubmits fanning out are not.
        let mut flows = Vec::new();
        for t in 0..13u8 {
            let r = FlowAction::Resubmit {
                in_port: None,
                table: t + 1,
            };
            flows.push((t as u32, flow(t, 1, vec![], vec![r.clone(), r])));
        }
        flows.push((13, flow(13, 1, vec![], vec![FlowAction::Normal])));
        let set = FlowSet::build(1, &flows, &[], &num);
        let mut all = All::default();
        let mut k = key_to([10, 1, 2, 2], 3);
        let end = resolve_into(&set, &mut k, &mut all, &mut ());
        assert_eq!(end, End::TooManyResubmits);
        assert_eq!(all.lookups, MAX_RESUBMITS + 1);
        // Two misses that continue, then tables 2..=13: 2 + 2^12 - 1 = 4,097 lookups, the
        // first and 4,096 more: just within the limit.
        let set = FlowSet::build(
            1,
            &[flows[2..].to_vec()].concat(),
            &[(0, TableMiss::Continue), (1, TableMiss::Continue)],
            &num,
        );
        let mut k = key_to([10, 1, 2, 2], 3);
        let r = resolve(&set, &mut k, &mut ());
        assert_eq!(r.end, End::Done);
    }

    #[test]
    fn table_miss_policies() {
        let set = FlowSet::build(
            1,
            &[],
            &[(0, TableMiss::Continue), (1, TableMiss::Normal)],
            &num,
        );
        let mut k = key_to([10, 1, 2, 2], 3);
        assert_eq!(resolve(&set, &mut k, &mut ()).steps(), &[Step::Normal]);
        let set = FlowSet::build(1, &[], &[], &num);
        assert_eq!(resolve(&set, &mut k, &mut ()).end, End::Miss(0));
    }

    #[test]
    fn emc_hits_only_the_same_key_and_version() {
        let mut emc = Emc::default();
        let k = key_to([10, 1, 2, 2], 3);
        let r = Resolved {
            end: End::Drop,
            ..Default::default()
        };
        emc.insert(4, k, k.hash(), &r);
        assert_eq!(emc.get(4, &k, k.hash()).map(|r| r.end), Some(End::Drop));
        assert!(emc.get(5, &k, k.hash()).is_none());
        let k2 = key_to([10, 1, 2, 3], 3);
        assert!(emc.get(4, &k2, k.hash()).is_none());
    }

    #[test]
    fn set_field_tun_ipv6_dst_sends_to_an_ipv6_vtep() {
        let vtep: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let flows = vec![(
            0,
            flow(
                0,
                1,
                vec![],
                vec![
                    FlowAction::SetTunIpv6Dst { value: vtep },
                    FlowAction::SetField {
                        field: Field::TunId,
                        value: 7,
                    },
                    FlowAction::Output {
                        port: PortRef::Number(1),
                    },
                ],
            ),
        )];
        let set = FlowSet::build(1, &flows, &[], &num);
        let mut k = key_to([10, 1, 2, 2], 3);
        let r = resolve(&set, &mut k, &mut ());
        assert_eq!(r.end, End::Done);
        assert_eq!(
            r.steps(),
            &[Step::Tunnel {
                vni: 7,
                dst: IpAddr::V6(vtep)
            }]
        );
        // The metadata is matchable in a later table, as OVS's is.
        let (v, m) = key::compile_match(
            &[Match::TunIpv6Dst {
                value: vtep,
                mask: Ipv6Addr::from(u128::MAX),
            }],
            &|_| Some(1),
        )
        .unwrap();
        assert_eq!(k.masked(&m), v);
    }

    fn out(p: u16) -> FlowAction {
        FlowAction::Output {
            port: PortRef::Number(p),
        }
    }

    fn resubmit(table: u8) -> FlowAction {
        FlowAction::Resubmit {
            in_port: None,
            table,
        }
    }

    #[test]
    fn a_resubmit_that_misses_or_drops_lets_the_caller_go_on() {
        // OVS's tutorial pattern: resubmit(,10),resubmit(,4) where table 10 may miss.
        let flows = vec![
            (
                0,
                flow(0, 1, vec![], vec![resubmit(10), resubmit(11), resubmit(4)]),
            ),
            (1, flow(11, 1, vec![], vec![FlowAction::Drop])),
            (2, flow(4, 1, vec![], vec![out(5)])),
        ];
        let set = FlowSet::build(1, &flows, &[], &num);
        let mut k = key_to([10, 1, 2, 2], 3);
        let r = resolve(&set, &mut k, &mut ());
        assert_eq!(r.end, End::Done);
        assert_eq!(r.steps(), &[Step::Output(5)]);
        assert_eq!(r.path(), &[(0, 0), (10, u32::MAX), (11, 1), (4, 2)]);
        // goto_table keeps OpenFlow's semantics: a miss there ends the packet.
        let flows = vec![(
            0,
            flow(
                0,
                1,
                vec![],
                vec![out(5), FlowAction::GotoTable { table: 10 }],
            ),
        )];
        let set = FlowSet::build(1, &flows, &[], &num);
        let mut k = key_to([10, 1, 2, 2], 3);
        assert_eq!(resolve(&set, &mut k, &mut ()).end, End::Miss(10));
    }

    #[test]
    fn resubmit_to_a_port_without_a_table_stays_in_the_flows_table() {
        // `resubmit:7` is resubmit(7,) in OVS: in_port 7, this table (255 in the repr).
        use controlplane::flow::PortRef;
        let back = FlowAction::Resubmit {
            in_port: Some(PortRef::Number(7)),
            table: 255,
        };
        let flows = vec![
            (0, flow(3, 1, vec![], vec![back])),
            (
                1,
                flow(
                    3,
                    2,
                    vec![Match::InPort {
                        port: PortRef::Number(7),
                    }],
                    vec![out(5)],
                ),
            ),
            (
                2,
                flow(0, 1, vec![], vec![FlowAction::GotoTable { table: 3 }]),
            ),
        ];
        let set = FlowSet::build(1, &flows, &[], &num);
        let mut k = key_to([10, 1, 2, 2], 3);
        let r = resolve(&set, &mut k, &mut ());
        assert_eq!(r.steps(), &[Step::Output(5)]);
        assert_eq!(r.path(), &[(0, 2), (3, 0), (3, 1)]);
    }

    fn group(id: u32, kind: GroupType, buckets: Vec<Vec<FlowAction>>) -> GroupSpec {
        GroupSpec {
            group_id: id,
            kind,
            buckets: buckets
                .into_iter()
                .enumerate()
                .map(|(i, actions)| controlplane::flow::Bucket {
                    bucket_id: i as u32,
                    weight: 1,
                    watch_port: None,
                    watch_group: None,
                    actions,
                })
                .collect(),
        }
    }

    fn to_group(id: u32) -> Vec<(FlowId, FlowSpec)> {
        vec![(
            0,
            flow(0, 1, vec![], vec![FlowAction::Group { id }, out(7)]),
        )]
    }

    #[test]
    fn an_all_group_runs_every_bucket_on_the_packet_as_it_was() {
        let mac = 0x0a58_0a01_0109;
        let g = group(
            1,
            GroupType::All,
            vec![
                vec![
                    FlowAction::SetField {
                        field: Field::DlDst,
                        value: mac,
                    },
                    FlowAction::ModNwTos { tos: 0xb8 },
                    out(2),
                ],
                vec![out(3)],
            ],
        );
        let set = FlowSet::build_with_groups(1, &to_group(1), &[], &[g], &num);
        let mut k = key_to([10, 1, 2, 2], 3);
        let dl_dst = k.get(key::DL_DST);
        let r = resolve(&set, &mut k, &mut ());
        assert_eq!(r.end, End::Done);
        assert_eq!(
            r.steps(),
            &[
                Step::Set(Field::DlDst, mac),
                Step::Set(Field::NwTos, 0xb8),
                Step::Output(2),
                Step::Set(Field::DlDst, dl_dst),
                Step::Set(Field::NwTos, 0),
                Step::Output(3),
                Step::Output(7),
            ]
        );
        assert_eq!(
            k.get(key::DL_DST),
            dl_dst,
            "the flow goes on with its packet"
        );
    }

    #[test]
    fn indirect_fast_failover_and_missing_groups() {
        let ind = group(1, GroupType::Indirect, vec![vec![out(2)]]);
        let mut ff = group(2, GroupType::FastFailover, vec![vec![out(3)], vec![out(4)]]);
        ff.buckets[0].watch_port = Some(PortRef::Name("gone".into()));
        ff.buckets[1].watch_port = Some(PortRef::Number(4));
        let set =
            FlowSet::build_with_groups(1, &to_group(1), &[], &[ind.clone(), ff.clone()], &num);
        let mut k = key_to([10, 1, 2, 2], 3);
        assert_eq!(
            resolve(&set, &mut k, &mut ()).steps(),
            &[Step::Output(2), Step::Output(7)]
        );
        let set = FlowSet::build_with_groups(1, &to_group(2), &[], &[ind.clone(), ff], &num);
        assert_eq!(
            resolve(&set, &mut k, &mut ()).steps(),
            &[Step::Output(4), Step::Output(7)]
        );
        let set = FlowSet::build_with_groups(1, &to_group(3), &[], &[ind], &num);
        assert_eq!(resolve(&set, &mut k, &mut ()).end, End::NoGroup(3));
    }

    #[test]
    fn a_select_group_spreads_flows_by_weight_and_keeps_each_flow_on_one_bucket() {
        let mut g = group(
            1,
            GroupType::Select,
            vec![vec![out(2)], vec![out(3)], vec![out(4)]],
        );
        g.buckets[0].weight = 100;
        g.buckets[1].weight = 100;
        g.buckets[2].weight = 0;
        let set = FlowSet::build_with_groups(1, &to_group(1), &[], &[g], &num);
        let mut seen = [0u32; 5];
        for sport in 0..1000u16 {
            let f = crate::sample::udp_frame([2; 6], [4; 6], [10, 1, 1, 2], [10, 1, 2, 2], 64, 10);
            let mut f = f.to_vec();
            // The UDP source port (after 14 + 20 bytes of headers).
            f[34..36].copy_from_slice(&(40000 + sport).to_be_bytes());
            let mut k = FlowKey::extract(&f, 3, None);
            let r = resolve(&set, &mut k, &mut ());
            let Step::Output(p) = r.steps()[0] else {
                panic!("{:?}", r.steps())
            };
            seen[p as usize] += 1;
            let mut k2 = FlowKey::extract(&f, 3, None);
            assert_eq!(resolve(&set, &mut k2, &mut ()).steps(), r.steps(), "stable");
        }
        assert_eq!(seen[4], 0, "weight 0 is never chosen");
        assert!(seen[2] > 400 && seen[3] > 400, "{seen:?}");
    }

    /// ovs-fields(7)'s conjunctive match example: `ip_src` one of {10.0.0.1, 10.0.0.4} and
    /// `ip_dst` one of {10.0.0.2, 10.0.0.5}, `tp_dst` (third clause) 80 or 443.
    #[test]
    fn conjunctions_expand_to_every_combination_of_their_clauses() {
        let conj = |k: u8, n: u8| FlowAction::Conjunction {
            id: 1234,
            clause: k,
            n_clauses: n,
        };
        let src = |a: [u8; 4]| Match::NwSrc {
            value: Ipv4Addr::from(a),
            mask: Ipv4Addr::BROADCAST,
        };
        let d = |a: [u8; 4]| dst(a, 32);
        let mut flows = vec![
            (0, flow(0, 1, vec![], vec![out(9)])),
            (
                1,
                flow(0, 5, vec![Match::ConjId { value: 1234 }], vec![out(5)]),
            ),
        ];
        let mut id = 2;
        for (k, m) in [
            (1, src([10, 0, 0, 1])),
            (1, src([10, 0, 0, 4])),
            (2, d([10, 0, 0, 2])),
            (2, d([10, 0, 0, 5])),
        ] {
            flows.push((id, flow(0, 100, vec![ip(), m], vec![conj(k, 2)])));
            id += 1;
        }
        // A clause flow of another protocol conflicts with every other clause: skipped.
        flows.push((
            id,
            flow(
                0,
                100,
                vec![Match::DlType { value: 0x86dd }],
                vec![conj(1, 2)],
            ),
        ));
        assert_eq!(conjunction_rules(&flows), 6);
        let set = FlowSet::build(1, &flows, &[], &num);
        assert_eq!(
            set.rules.len(),
            1 + 4,
            "the fallback and the 2x2 combinations"
        );
        let pkt = |s: [u8; 4], d: [u8; 4]| {
            let f = crate::sample::udp_frame([2; 6], [4; 6], s, d, 64, 10);
            FlowKey::extract(&f, 3, None)
        };
        for (s, d, want) in [
            ([10, 0, 0, 1], [10, 0, 0, 2], 5),
            ([10, 0, 0, 4], [10, 0, 0, 5], 5),
            ([10, 0, 0, 1], [10, 0, 0, 5], 5),
            // Only one clause matches: the packet falls through to the lower priority.
            ([10, 0, 0, 1], [10, 0, 0, 3], 9),
            ([10, 0, 0, 3], [10, 0, 0, 2], 9),
        ] {
            let mut k = pkt(s, d);
            let r = resolve(&set, &mut k, &mut ());
            assert_eq!(r.steps(), &[Step::Output(want)], "{s:?} -> {d:?}");
            if want == 5 {
                assert_eq!(
                    set.rules[r.path()[0].1 as usize].id,
                    1,
                    "credited to conj_id"
                );
            }
        }
    }
}
