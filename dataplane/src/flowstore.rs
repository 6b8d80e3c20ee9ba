//! The control side of the flow tables: the flows as configured, their ids and counter bases,
//! bundles applied all or nothing, timeouts, and the events monitors see.

use std::collections::BTreeMap;

use controlplane::flow::*;
use controlplane::flow_syntax::canonicalize;
use controlplane::proto::{FlowEvent, FlowEventKind, PORT_TUNNEL};
use serde::{Deserialize, Serialize};

use crate::fib::PortNo;
use crate::flow::key::{compile_match, FlowKey};
use crate::flow::{conj_role, conjunction_rules, ConjRole, FlowId, FlowSet, MAX_FLOWS};

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

/// Every flow and table setting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowStore {
    pub flows: Vec<FlowEntry>,
    pub misses: BTreeMap<u8, TableMiss>,
    /// The groups, by id.
    #[serde(default)]
    pub groups: BTreeMap<u32, GroupSpec>,
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
        FlowStore {
            flows: vec![FlowEntry {
                id: 0,
                spec,
                added_ms: 0,
                base_packets: 0,
                base_bytes: 0,
            }],
            misses: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }

    /// Compiles the store into the classifier.
    pub fn compile(&self, version: u64, resolve: &dyn Fn(&PortRef) -> Option<PortNo>) -> FlowSet {
        let flows: Vec<(FlowId, FlowSpec)> =
            self.flows.iter().map(|f| (f.id, f.spec.clone())).collect();
        let misses: Vec<(u8, TableMiss)> = self.misses.iter().map(|(t, m)| (*t, *m)).collect();
        let groups: Vec<GroupSpec> = self.groups.values().cloned().collect();
        FlowSet::build_with_groups(version, &flows, &misses, &groups, resolve)
    }

    /// Applies a bundle to a copy; the copy and the events, or why the bundle was refused (the
    /// store is unchanged then). Errors name the failing modification (1-based).
    pub fn apply(
        &self,
        mods: &[FlowMod],
        cx: &Context<'_>,
    ) -> Result<(FlowStore, Vec<Change>), String> {
        let mut next = self.clone();
        let mut events = Vec::new();
        for (i, m) in mods.iter().enumerate() {
            next.apply_one(m, cx, &mut events)
                .map_err(|e| format!("flow mod {}: {e}", i + 1))?;
        }
        if next.flows.len() > MAX_FLOWS {
            return Err(format!(
                "{} flows exceed the limit of {MAX_FLOWS}",
                next.flows.len()
            ));
        }
        if next
            .flows
            .iter()
            .any(|f| conj_role(&f.spec) != ConjRole::None)
        {
            let flows: Vec<(FlowId, FlowSpec)> =
                next.flows.iter().map(|f| (f.id, f.spec.clone())).collect();
            let n = conjunction_rules(&flows);
            if n > MAX_CONJUNCTION_RULES {
                return Err(format!(
                    "the conjunctive flows would expand into {n} rules, beyond the limit of \
                     {MAX_CONJUNCTION_RULES} (fewer flows per clause, or fewer clauses)"
                ));
            }
        }
        Ok((next, events))
    }

    fn apply_one(
        &mut self,
        m: &FlowMod,
        cx: &Context<'_>,
        ev: &mut Vec<Change>,
    ) -> Result<(), String> {
        match m {
            FlowMod::Add { flow, reset_counts } => {
                let flow = check(flow, cx, &self.groups)?;
                match self.flows.iter_mut().find(|f| f.spec.same_rule(&flow)) {
                    Some(f) => {
                        f.spec = flow.clone();
                        if *reset_counts {
                            (f.base_packets, f.base_bytes) = (cx.sums)(f.id);
                            f.added_ms = cx.now_ms;
                        }
                        ev.push((FlowEventKind::Modified, "add".into(), flow));
                    }
                    None => {
                        let id = self.free_id();
                        let (bp, bb) = (cx.sums)(id);
                        self.flows.push(FlowEntry {
                            id,
                            spec: flow.clone(),
                            added_ms: cx.now_ms,
                            base_packets: bp,
                            base_bytes: bb,
                        });
                        ev.push((FlowEventKind::Added, "add".into(), flow));
                    }
                }
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
                for f in self
                    .flows
                    .iter_mut()
                    .filter(|f| filter.selects(&f.spec, cx))
                {
                    f.spec.actions = flow.actions.clone();
                    f.spec.cookie = flow.cookie;
                    ev.push((FlowEventKind::Modified, "modify".into(), f.spec.clone()));
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
                let mut kept = Vec::with_capacity(self.flows.len());
                for f in self.flows.drain(..) {
                    if filter.selects(&f.spec, cx) {
                        ev.push((FlowEventKind::Removed, "delete".into(), f.spec));
                    } else {
                        kept.push(f);
                    }
                }
                self.flows = kept;
            }
            FlowMod::Replace { flows } => {
                let mut old: Vec<FlowEntry> = std::mem::take(&mut self.flows);
                for flow in flows {
                    let flow = check(flow, cx, &self.groups)?;
                    if self.flows.iter().any(|f| f.spec.same_rule(&flow)) {
                        return Err(format!(
                            "the same flow is listed twice: table={} priority={}",
                            flow.table, flow.priority
                        ));
                    }
                    match old.iter().position(|f| f.spec.same_rule(&flow)) {
                        Some(p) => {
                            let mut f = old.swap_remove(p);
                            if f.spec != flow {
                                ev.push((FlowEventKind::Modified, "replace".into(), flow.clone()));
                            }
                            f.spec = flow;
                            self.flows.push(f);
                        }
                        None => {
                            let id = self.free_id_avoiding(&old);
                            let (bp, bb) = (cx.sums)(id);
                            ev.push((FlowEventKind::Added, "replace".into(), flow.clone()));
                            self.flows.push(FlowEntry {
                                id,
                                spec: flow,
                                added_ms: cx.now_ms,
                                base_packets: bp,
                                base_bytes: bb,
                            });
                        }
                    }
                }
                for f in old {
                    ev.push((FlowEventKind::Removed, "replace".into(), f.spec));
                }
            }
            FlowMod::SetMiss { table, miss } => {
                if *table > MAX_TABLE {
                    return Err(format!("table {table} is beyond {MAX_TABLE}"));
                }
                self.misses.insert(*table, *miss);
            }
            FlowMod::AddGroup { group } => {
                check_group(group, cx, &self.groups)?;
                if self.groups.contains_key(&group.group_id) {
                    return Err(format!("group {} already exists", group.group_id));
                }
                self.groups.insert(group.group_id, group.clone());
            }
            FlowMod::ModifyGroup { group } => {
                check_group(group, cx, &self.groups)?;
                if !self.groups.contains_key(&group.group_id) {
                    return Err(format!("group {} does not exist", group.group_id));
                }
                self.groups.insert(group.group_id, group.clone());
            }
            FlowMod::DeleteGroup { group_id } => {
                let gone = |id: u32| group_id.is_none_or(|g| g == id);
                self.groups.retain(|id, _| !gone(*id));
                // As in OpenFlow, the flows that use a deleted group go with it.
                let mut kept = Vec::with_capacity(self.flows.len());
                for f in self.flows.drain(..) {
                    if uses_group(&f.spec.actions, &gone) {
                        ev.push((FlowEventKind::Removed, "group_delete".into(), f.spec));
                    } else {
                        kept.push(f);
                    }
                }
                self.flows = kept;
            }
        }
        Ok(())
    }

    fn free_id(&self) -> FlowId {
        self.free_id_avoiding(&[])
    }

    fn free_id_avoiding(&self, also: &[FlowEntry]) -> FlowId {
        let mut used: Vec<FlowId> = self.flows.iter().chain(also).map(|f| f.id).collect();
        used.sort_unstable();
        let mut id = 0;
        for u in used {
            if u == id {
                id += 1;
            } else if u > id {
                break;
            }
        }
        id
    }

    /// Flows whose idle or hard timeout has passed at `now_ms`; `last_hit` gives a flow's
    /// latest hit over the workers.
    pub fn expired(
        &self,
        now_ms: u64,
        last_hit: &dyn Fn(FlowId) -> u64,
    ) -> Vec<(FlowId, &'static str)> {
        let mut out = Vec::new();
        for f in &self.flows {
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
    pub fn remove_ids(&mut self, ids: &[(FlowId, &'static str)]) -> Vec<(FlowSpec, &'static str)> {
        let mut out = Vec::new();
        self.flows
            .retain(|f| match ids.iter().find(|(i, _)| *i == f.id) {
                Some((_, why)) => {
                    out.push((f.spec.clone(), *why));
                    false
                }
                None => true,
            });
        out
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

    fn add(f: FlowSpec) -> FlowMod {
        FlowMod::Add {
            flow: f,
            reset_counts: false,
        }
    }

    #[test]
    fn add_replaces_the_same_rule_and_keeps_its_id() {
        let s = FlowStore::default();
        let (s, ev) = s
            .apply(
                &[
                    add(flow(10, [10, 1, 2, 2], 3)),
                    add(flow(10, [10, 1, 2, 3], 4)),
                ],
                &cx(),
            )
            .unwrap();
        assert_eq!(s.flows.len(), 2);
        assert_eq!(ev.len(), 2);
        let id = s.flows[1].id;
        let (s, ev) = s.apply(&[add(flow(10, [10, 1, 2, 3], 5))], &cx()).unwrap();
        assert_eq!(s.flows.len(), 2);
        assert_eq!(s.flows[1].id, id, "same rule keeps its id (and counters)");
        assert_eq!(ev[0].0, FlowEventKind::Modified);
    }

    #[test]
    fn a_bundle_with_one_bad_mod_changes_nothing() {
        let s = FlowStore::initial();
        let mut bad = flow(10, [10, 1, 2, 2], 3);
        bad.actions = vec![FlowAction::Output {
            port: PortRef::Name("nosuch".into()),
        }];
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
            let e = s.apply(&[add(f)], &cx()).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn loose_and_strict_delete() {
        let s = FlowStore::initial();
        let (s, _) = s
            .apply(
                &[
                    add(flow(10, [10, 1, 2, 2], 3)),
                    add(flow(20, [10, 1, 2, 3], 4)),
                ],
                &cx(),
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
        let (s2, ev) = s.apply(&[del], &cx()).unwrap();
        assert_eq!(s2.flows.len(), 1);
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
        let (s3, _) = s.apply(&[del], &cx()).unwrap();
        assert_eq!(s3.flows.len(), 3);
        let del = FlowMod::Delete {
            table: Some(0),
            priority: Some(20),
            matches: f.matches.clone(),
            strict: true,
            cookie: None,
        };
        let (s4, _) = s.apply(&[del], &cx()).unwrap();
        assert_eq!(s4.flows.len(), 2);
    }

    #[test]
    fn replace_keeps_ids_of_unchanged_rules_and_timeouts_expire() {
        let s = FlowStore::initial();
        let (s, _) = s.apply(&[add(flow(10, [10, 1, 2, 2], 3))], &cx()).unwrap();
        let id = s.flows[1].id;
        let mut timed = flow(30, [10, 1, 2, 7], 3);
        timed.idle_timeout = 1;
        let (s, _) = s
            .apply(
                &[FlowMod::Replace {
                    flows: vec![flow(10, [10, 1, 2, 2], 4), timed],
                }],
                &cx(),
            )
            .unwrap();
        assert_eq!(s.flows.len(), 2);
        assert_eq!(s.flows[0].id, id);
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
        let (s, _) = s
            .apply(
                &[
                    add_g(grp(1, GroupType::All, &[2, 3])),
                    add_g(grp(2, GroupType::Select, &[4, 5])),
                ],
                &cx(),
            )
            .unwrap();
        assert_eq!(s.groups.len(), 2);
        let e = s
            .apply(&[add_g(grp(1, GroupType::All, &[2]))], &cx())
            .unwrap_err();
        assert!(e.contains("group 1 already exists"), "{e}");
        let e = s
            .apply(
                &[FlowMod::ModifyGroup {
                    group: grp(9, GroupType::All, &[2]),
                }],
                &cx(),
            )
            .unwrap_err();
        assert!(e.contains("group 9 does not exist"), "{e}");
        let e = s
            .apply(&[add_g(grp(3, GroupType::Indirect, &[2, 3]))], &cx())
            .unwrap_err();
        assert!(e.contains("at most one bucket"), "{e}");
        let mut bad = grp(3, GroupType::All, &[2]);
        bad.buckets[0].actions = vec![FlowAction::Output {
            port: PortRef::Name("nosuch".into()),
        }];
        let e = s.apply(&[add_g(bad)], &cx()).unwrap_err();
        assert!(e.contains("nosuch"), "a bucket is checked as a flow: {e}");
        // A flow naming a missing group is refused; ones naming groups are taken.
        let to = |g: u32, dst: [u8; 4]| {
            let mut f = flow(10, dst, 3);
            f.actions = vec![FlowAction::Group { id: g }];
            add(f)
        };
        let e = s.apply(&[to(7, [10, 1, 2, 2])], &cx()).unwrap_err();
        assert!(e.contains("group:7: no such group"), "{e}");
        let (s, _) = s
            .apply(&[to(1, [10, 1, 2, 2]), to(2, [10, 1, 2, 3])], &cx())
            .unwrap();
        assert_eq!(s.flows.len(), 3);
        let set = s.compile(1, cx().resolve);
        assert_eq!(set.groups.len(), 2);
        // Deleting a group deletes the flows that use it.
        let (s1, ev) = s
            .apply(&[FlowMod::DeleteGroup { group_id: Some(1) }], &cx())
            .unwrap();
        assert_eq!((s1.groups.len(), s1.flows.len(), ev.len()), (1, 2, 1));
        assert_eq!(ev[0].0, FlowEventKind::Removed);
        let (s2, _) = s
            .apply(&[FlowMod::DeleteGroup { group_id: None }], &cx())
            .unwrap();
        assert_eq!((s2.groups.len(), s2.flows.len()), (0, 1));
        // Saved and restored with the flows.
        let text = serde_json::to_string(&s).unwrap();
        let back: FlowStore = serde_json::from_str(&text).unwrap();
        assert_eq!(back.groups, s.groups);
        assert_eq!(back.flows.len(), s.flows.len());
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
        let e = s
            .apply(
                &[clause(
                    1,
                    2,
                    Some(FlowAction::Output {
                        port: PortRef::Number(2),
                    }),
                    0,
                )],
                &cx(),
            )
            .unwrap_err();
        assert!(e.contains("may be used along with \"note\""), "{e}");
        let e = s.apply(&[clause(1, 1, None, 0)], &cx()).unwrap_err();
        assert!(e.contains("2 to 64 clauses"), "{e}");
        let mut target = flow(10, [10, 9, 9, 9], 4);
        target.matches = vec![Match::ConjId { value: 1 }];
        let mut mods = vec![add(target)];
        for i in 0..1001 {
            mods.push(clause(1, 2, None, i));
            mods.push(clause(2, 2, None, i));
        }
        let e = s.apply(&mods, &cx()).unwrap_err();
        assert!(e.contains("1002001 rules") && e.contains("1000000"), "{e}");
        mods.truncate(1 + 2 * 100);
        let (s, _) = s.apply(&mods, &cx()).unwrap();
        assert_eq!(s.compile(1, cx().resolve).rules.len(), 1 + 100 * 100);
    }
}
