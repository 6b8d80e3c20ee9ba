//! A stand-in for vxswitchd in tests: a Unix socket in a temp dir that speaks the codec, keeps a
//! `StateRepr`, applies batches to it (version checks, owner checks, port numbering) and records
//! every request. Shared by controlplane/tests and tools/tests (included with `#[path]`).
//!
//! Flow tables are kept too: bundles of `FlowMod`s are checked (tables, port names, goto_table
//! forwards only) and applied all or nothing, bumping the table version; `DumpFlows` and
//! `DumpTables` report them; `Monitor` streams the changes live; `Trace` answers what the test
//! put in [`Inner::trace`]; `Capture` streams [`Inner::frames`] of the port.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use controlplane::codec::{decode, read_frame, write_msg};
use controlplane::proto::*;

/// What the fake holds and saw.
#[derive(Debug, Default)]
pub struct Inner {
    pub state: Option<StateRepr>,
    pub stats: StatsRepr,
    pub fdb: FdbRepr,
    /// Batches applied, in order.
    pub applied: Vec<ApplyRequest>,
    /// Batches refused, with the code.
    pub refused: Vec<(ApplyRequest, ErrorCode)>,
    /// Clients that said hello.
    pub hellos: Vec<String>,
    /// Refuse this many upcoming batches with `VersionMismatch` (bumping the version each
    /// time, as if another client had changed the tables).
    pub inject_mismatch: u32,
    /// Refuse every batch with this code (a switch that cannot apply anything yet).
    pub refuse_all: Option<ErrorCode>,
    /// The flow tables, with counters (tests may set them).
    pub flows: Vec<FlowStats>,
    /// Miss behaviour of tables that were given one.
    pub misses: BTreeMap<u8, TableMiss>,
    /// Per-table (lookups, matches) counters, as a test sets them.
    pub table_counters: BTreeMap<u8, (u64, u64)>,
    /// Flow bundles applied, in order.
    pub flow_mods: Vec<Vec<FlowMod>>,
    /// Flow bundles refused, with the reason.
    pub flow_refused: Vec<(Vec<FlowMod>, String)>,
    /// `DumpFlows` requests seen: (table, matches).
    pub dumps: Vec<(Option<u8>, Vec<Match>)>,
    /// `Trace` requests seen.
    pub traces: Vec<(PortRef, Vec<Match>)>,
    /// The answer to `Trace` (an error when unset).
    pub trace: Option<TraceRepr>,
    /// `Capture` requests seen: (port, count, filter).
    pub captures: Vec<(PortRef, Option<u64>, Vec<Match>)>,
    /// Frames a capture streams (those of the requested port, up to its count).
    pub frames: Vec<CapturedFrame>,
    /// `lost` reported at the end of a capture.
    pub lost: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    stop: AtomicBool,
    conns: Mutex<Vec<UnixStream>>,
    /// Open monitors: every applied flow change is sent to each.
    monitors: Mutex<Vec<Sender<FlowEvent>>>,
}

pub struct FakeDaemon {
    pub path: PathBuf,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// A fresh directory under the system temp dir (short, for the 108-byte socket path limit).
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("vxt-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A daemon's state before any configuration: the tunnel and host ports only.
pub fn base_state() -> StateRepr {
    StateRepr {
        bridge: BRIDGE.into(),
        table_version: 0,
        local: None,
        local_owner: None,
        ports: vec![
            PortState {
                no: PORT_TUNNEL,
                name: "vxlan0".into(),
                kind: PortKind::Tunnel,
                device: "udp/4789".into(),
                owner: None,
                spec: None,
                status: "up".into(),
            },
            PortState {
                no: PORT_HOST,
                name: "vxhost0".into(),
                kind: PortKind::Host,
                device: "vxhost0".into(),
                owner: None,
                spec: None,
                status: "up".into(),
            },
        ],
        nodes: vec![],
        vxlan_port: 4789,
        workers: 2,
    }
}

impl FakeDaemon {
    /// Listens at `path` (replacing a stale socket file) with `state`.
    pub fn start(path: &Path, state: StateRepr) -> FakeDaemon {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                state: Some(state),
                ..Inner::default()
            }),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            monitors: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = thread::spawn(move || accept_loop(listener, s));
        FakeDaemon {
            path: path.to_path_buf(),
            shared,
            accept: Some(accept),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }

    pub fn state(&self) -> StateRepr {
        self.lock().state.clone().unwrap()
    }

    pub fn applied(&self) -> Vec<ApplyRequest> {
        self.lock().applied.clone()
    }

    /// Flow bundles applied so far.
    pub fn flow_mods(&self) -> Vec<Vec<FlowMod>> {
        self.lock().flow_mods.clone()
    }

    /// The flows in the tables, without counters.
    pub fn flows(&self) -> Vec<FlowSpec> {
        self.lock().flows.iter().map(|f| f.spec.clone()).collect()
    }

    /// Number of monitors connected.
    pub fn monitors(&self) -> usize {
        self.shared.monitors.lock().unwrap().len()
    }

    /// Waits until `pred` holds on the recorded data, up to `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Inner) -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if pred(&self.lock()) {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for FakeDaemon {
    /// Stops like a crashed daemon: the socket goes away and every connection is cut.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for c in self.shared.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                shared
                    .conns
                    .lock()
                    .unwrap()
                    .push(stream.try_clone().unwrap());
                let s = shared.clone();
                thread::spawn(move || serve(stream, s));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn serve(mut stream: UnixStream, shared: Arc<Shared>) {
    let mut said_hello = false;
    while let Ok(Some(body)) = read_frame(&mut stream) {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let resp = match decode::<Request>(&body) {
            Err(e) => Response::Error {
                code: ErrorCode::Malformed,
                message: e.to_string(),
            },
            Ok(Request::Hello { version, client }) if !said_hello => {
                said_hello = true;
                let mut inner = shared.inner.lock().unwrap();
                inner.hellos.push(client);
                if version != PROTOCOL_VERSION {
                    Response::Error {
                        code: ErrorCode::Version,
                        message: "bad version".into(),
                    }
                } else {
                    Response::Hello {
                        version: PROTOCOL_VERSION,
                        server: "fake-vxswitchd 0.0".into(),
                        table_version: inner.state.as_ref().unwrap().table_version,
                    }
                }
            }
            Ok(_) if !said_hello => Response::Error {
                code: ErrorCode::OutOfOrder,
                message: "hello first".into(),
            },
            Ok(Request::Monitor) => {
                monitor(stream, &shared);
                return;
            }
            Ok(Request::Capture {
                port,
                count,
                filter,
            }) => {
                capture(stream, &shared, port, count, filter);
                return;
            }
            Ok(req) => {
                let mut inner = shared.inner.lock().unwrap();
                let (resp, events) = answer(&mut inner, req);
                drop(inner);
                publish(&shared, events);
                resp
            }
        };
        if write_msg(&mut stream, &resp).is_err() {
            return;
        }
    }
}

/// Sends flow events to every open monitor, forgetting the ones that went away.
fn publish(shared: &Shared, events: Vec<FlowEvent>) {
    if events.is_empty() {
        return;
    }
    shared
        .monitors
        .lock()
        .unwrap()
        .retain(|tx| events.iter().all(|e| tx.send(e.clone()).is_ok()));
}

/// `Monitor`: `Streaming`, then every flow change until the client or the fake goes away.
fn monitor(mut stream: UnixStream, shared: &Shared) {
    let (tx, rx): (Sender<FlowEvent>, Receiver<FlowEvent>) = mpsc::channel();
    shared.monitors.lock().unwrap().push(tx);
    let start = Response::Streaming {
        detail: "flow events of br0".into(),
    };
    if write_msg(&mut stream, &start).is_err() {
        return;
    }
    while !shared.stop.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(e) => {
                if write_msg(&mut stream, &Response::FlowEvent(e)).is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// `Capture`: `Streaming`, the port's frames (up to `count`), then `StreamEnd` when the count
/// is reached; without a count the stream stays open (no more traffic) until the fake stops.
fn capture(
    mut stream: UnixStream,
    shared: &Shared,
    port: PortRef,
    count: Option<u64>,
    filter: Vec<Match>,
) {
    let (frames, lost) = {
        let mut inner = shared.inner.lock().unwrap();
        inner.captures.push((port.clone(), count, filter.clone()));
        let no = match resolve(inner.state.as_ref().unwrap(), &port) {
            Ok(no) => no,
            Err(message) => {
                drop(inner);
                let _ = write_msg(
                    &mut stream,
                    &Response::Error {
                        code: ErrorCode::Invalid,
                        message,
                    },
                );
                return;
            }
        };
        let frames: Vec<CapturedFrame> = inner
            .frames
            .iter()
            .filter(|f| f.port == no)
            .take(count.map_or(usize::MAX, |c| c as usize))
            .cloned()
            .collect();
        (frames, inner.lost)
    };
    let start = Response::Streaming {
        detail: format!("frames of port {port}"),
    };
    if write_msg(&mut stream, &start).is_err() {
        return;
    }
    let n = frames.len() as u64;
    for f in frames {
        if write_msg(&mut stream, &Response::Frame(f)).is_err() {
            return;
        }
    }
    if count.is_some_and(|c| n >= c) {
        let _ = write_msg(&mut stream, &Response::StreamEnd { frames: n, lost });
        return;
    }
    while !shared.stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(20));
    }
}

/// A port's number, from its number or name.
fn resolve(s: &StateRepr, port: &PortRef) -> Result<u16, String> {
    let found = s.ports.iter().find(|p| match port {
        PortRef::Number(n) => p.no == *n,
        PortRef::Name(name) => p.name == *name,
    });
    found.map(|p| p.no).ok_or_else(|| format!("no port {port}"))
}

fn answer(inner: &mut Inner, req: Request) -> (Response, Vec<FlowEvent>) {
    let resp = match req {
        Request::FlowMods { mods } => return flow_mods(inner, mods),
        other => answer_one(inner, other),
    };
    (resp, Vec::new())
}

fn answer_one(inner: &mut Inner, req: Request) -> Response {
    match req {
        Request::Hello { .. } => Response::Error {
            code: ErrorCode::OutOfOrder,
            message: "hello twice".into(),
        },
        Request::GetState => Response::State(inner.state.clone().unwrap()),
        Request::GetStats => Response::Stats(inner.stats.clone()),
        Request::GetFdb => Response::Fdb(inner.fdb.clone()),
        Request::DumpFlows { table, matches } => {
            inner.dumps.push((table, matches.clone()));
            let flows = inner
                .flows
                .iter()
                .filter(|f| selects(&f.spec, table, &matches))
                .cloned()
                .collect();
            Response::Flows {
                table_version: inner.state.as_ref().unwrap().table_version,
                flows,
            }
        }
        Request::DumpTables => {
            let mut ids: Vec<u8> = vec![0];
            ids.extend(inner.flows.iter().map(|f| f.spec.table));
            ids.extend(inner.misses.keys());
            ids.extend(inner.table_counters.keys());
            ids.sort_unstable();
            ids.dedup();
            let tables = ids
                .into_iter()
                .map(|t| {
                    let (lookups, matches) =
                        inner.table_counters.get(&t).copied().unwrap_or((0, 0));
                    TableStats {
                        table: t,
                        flows: inner.flows.iter().filter(|f| f.spec.table == t).count() as u64,
                        lookups,
                        matches,
                        miss: inner.misses.get(&t).copied().unwrap_or_default(),
                    }
                })
                .collect();
            Response::Tables { tables }
        }
        Request::Trace { in_port, matches } => {
            inner.traces.push((in_port, matches));
            match &inner.trace {
                Some(t) => Response::Trace(t.clone()),
                None => Response::Error {
                    code: ErrorCode::Failed,
                    message: "the fake has no trace to give".into(),
                },
            }
        }
        Request::FlowMods { .. } | Request::Monitor | Request::Capture { .. } => {
            unreachable!("answered elsewhere")
        }
        Request::DumpGroups { .. } => Response::Error {
            code: ErrorCode::Failed,
            message: "the fake keeps no groups".into(),
        },
        Request::BundleOpen
        | Request::BundleAdd { .. }
        | Request::BundleCommit
        | Request::BundleDiscard => Response::Error {
            code: ErrorCode::Failed,
            message: "the fake keeps no bundles".into(),
        },
        Request::Apply(batch) => {
            let state = inner.state.as_mut().unwrap();
            if inner.inject_mismatch > 0 {
                inner.inject_mismatch -= 1;
                state.table_version += 1;
                inner.refused.push((batch, ErrorCode::VersionMismatch));
                return Response::Error {
                    code: ErrorCode::VersionMismatch,
                    message: "injected".into(),
                };
            }
            if let Some(code) = inner.refuse_all {
                inner.refused.push((batch, code));
                return Response::Error {
                    code,
                    message: "refused by the test".into(),
                };
            }
            let mut next = state.clone();
            match apply(&mut next, &batch) {
                Ok(()) => {
                    next.table_version += 1;
                    let version = next.table_version;
                    *state = next;
                    inner.applied.push(batch);
                    Response::Applied { version }
                }
                Err((code, message)) => {
                    inner.refused.push((batch, code));
                    Response::Error { code, message }
                }
            }
        }
    }
}

type Refusal = (ErrorCode, String);

fn invalid(m: String) -> Refusal {
    (ErrorCode::Invalid, m)
}

/// Applies a batch to `s` (a copy: the caller keeps it only on success).
fn apply(s: &mut StateRepr, batch: &ApplyRequest) -> Result<(), Refusal> {
    if let Some(v) = batch.expected_version {
        if v != s.table_version {
            return Err((
                ErrorCode::VersionMismatch,
                format!("expected {v}, at {}", s.table_version),
            ));
        }
    }
    let owner = batch.owner;
    for change in &batch.changes {
        match change {
            Change::SetLocalNode(l) => {
                l.validate().map_err(invalid)?;
                if let (Some(cur), Some(o)) = (&s.local, s.local_owner) {
                    if cur == l {
                        continue;
                    }
                    if o != owner {
                        return Err((ErrorCode::Owner, format!("local node is owned by {o}")));
                    }
                }
                s.local = Some(l.clone());
                s.local_owner = Some(owner);
            }
            Change::AddPort(spec) => {
                spec.validate().map_err(invalid)?;
                if let Some(p) = s.ports.iter().find(|p| p.name == spec.name) {
                    if p.spec.as_ref() == Some(spec) && p.owner == Some(owner) {
                        continue;
                    }
                    return Err(invalid(format!("port {} exists", spec.name)));
                }
                if let Some(p) = s.ports.iter().find(|p| {
                    p.spec
                        .as_ref()
                        .is_some_and(|o| o.ip == spec.ip || o.mac == spec.mac)
                }) {
                    return Err(invalid(format!(
                        "port {}: ip or mac used by {}",
                        spec.name, p.name
                    )));
                }
                let no = s
                    .ports
                    .iter()
                    .map(|p| p.no)
                    .max()
                    .unwrap_or(0)
                    .max(PORT_FIRST_POD - 1)
                    + 1;
                s.ports.push(PortState {
                    no,
                    name: spec.name.clone(),
                    kind: PortKind::Pod,
                    device: format!("{}@{}", spec.ifname(), spec.netns),
                    owner: Some(owner),
                    spec: Some(spec.clone()),
                    status: "up".into(),
                });
            }
            Change::DelPort { name } => {
                let i = s
                    .ports
                    .iter()
                    .position(|p| &p.name == name && p.kind == PortKind::Pod)
                    .ok_or_else(|| invalid(format!("no port {name}")))?;
                if s.ports[i].owner != Some(owner) {
                    return Err((
                        ErrorCode::Owner,
                        format!("port {name} belongs to another owner"),
                    ));
                }
                s.ports.remove(i);
            }
            Change::AddNode(n) => {
                n.validate().map_err(invalid)?;
                if let Some(o) = s.nodes.iter().find(|o| o.spec.name == n.name) {
                    if o.spec == *n && o.owner == owner {
                        continue;
                    }
                    return Err(invalid(format!("node {} exists", n.name)));
                }
                if let Some(o) = s.nodes.iter().find(|o| o.spec.subnet.overlaps(&n.subnet)) {
                    return Err(invalid(format!(
                        "node {}: subnet overlaps {}",
                        n.name, o.spec.name
                    )));
                }
                s.nodes.push(NodeState {
                    owner,
                    spec: n.clone(),
                });
            }
            Change::DelNode { name } => {
                let i = s
                    .nodes
                    .iter()
                    .position(|n| &n.spec.name == name)
                    .ok_or_else(|| invalid(format!("no node {name}")))?;
                if s.nodes[i].owner != owner {
                    return Err((
                        ErrorCode::Owner,
                        format!("node {name} belongs to another owner"),
                    ));
                }
                s.nodes.remove(i);
            }
        }
    }
    Ok(())
}

/// Non-strict selection, as `DumpFlows` and a non-strict delete use it: the table (if given)
/// is the flow's, and every match field given is one of the flow's (equal value and mask).
fn selects(f: &FlowSpec, table: Option<u8>, matches: &[Match]) -> bool {
    table.is_none_or(|t| t == f.table) && matches.iter().all(|m| f.matches.contains(m))
}

fn cookie_selects(f: &FlowSpec, cookie: Option<(u64, u64)>) -> bool {
    cookie.is_none_or(|(value, mask)| f.cookie & mask == value & mask)
}

/// Checks what the real switch would refuse: port names it does not know, goto_table that
/// does not go forward, tables out of range.
fn check_flow(s: &StateRepr, f: &FlowSpec) -> Result<(), String> {
    if f.table > MAX_TABLE {
        return Err(format!("table {} is larger than {MAX_TABLE}", f.table));
    }
    for m in &f.matches {
        if let Match::InPort { port } = m {
            resolve(s, port)?;
        }
    }
    for a in &f.actions {
        match a {
            FlowAction::Output { port } => {
                resolve(s, port)?;
            }
            FlowAction::GotoTable { table } if *table <= f.table => {
                return Err(format!(
                    "goto_table:{table} in table {} must go to a later table",
                    f.table
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn event(kind: FlowEventKind, reason: &str, flow: &FlowSpec) -> FlowEvent {
    FlowEvent {
        event: kind,
        reason: reason.into(),
        table_version: 0,
        flow: flow.clone(),
    }
}

/// Applies a bundle all or nothing; answers `Applied` with the new table version.
fn flow_mods(inner: &mut Inner, mods: Vec<FlowMod>) -> (Response, Vec<FlowEvent>) {
    let refuse = |inner: &mut Inner, mods: Vec<FlowMod>, code: ErrorCode, message: String| {
        inner.flow_refused.push((mods, message.clone()));
        (Response::Error { code, message }, Vec::new())
    };
    if let Some(code) = inner.refuse_all {
        return refuse(inner, mods, code, "refused by the test".into());
    }
    let state = inner.state.clone().unwrap();
    let mut flows = inner.flows.clone();
    let mut misses = inner.misses.clone();
    let mut events = Vec::new();
    let fresh = |spec: &FlowSpec| FlowStats {
        spec: spec.clone(),
        n_packets: 0,
        n_bytes: 0,
        duration_ms: 0,
        idle_ms: 0,
    };
    for (i, m) in mods.iter().enumerate() {
        let checked = match m {
            FlowMod::Add { flow, .. } | FlowMod::Modify { flow, .. } => check_flow(&state, flow),
            FlowMod::Replace { flows } => flows.iter().try_for_each(|f| check_flow(&state, f)),
            FlowMod::Delete { .. } | FlowMod::SetMiss { .. } => Ok(()),
            FlowMod::AddGroup { .. }
            | FlowMod::ModifyGroup { .. }
            | FlowMod::DeleteGroup { .. } => {
                Err("groups are not supported by the fake daemon".to_string())
            }
        };
        if let Err(e) = checked {
            return refuse(
                inner,
                mods,
                ErrorCode::Invalid,
                format!("flow mod {}: {e}", i + 1),
            );
        }
        match m {
            FlowMod::Add { flow, reset_counts } => {
                match flows.iter_mut().find(|f| f.spec.same_rule(flow)) {
                    Some(f) => {
                        f.spec = flow.clone();
                        if *reset_counts {
                            *f = fresh(flow);
                        }
                        events.push(event(FlowEventKind::Modified, "add", flow));
                    }
                    None => {
                        flows.push(fresh(flow));
                        events.push(event(FlowEventKind::Added, "add", flow));
                    }
                }
            }
            FlowMod::Modify { flow, strict } => {
                for f in flows.iter_mut().filter(|f| {
                    if *strict {
                        f.spec.same_rule(flow)
                    } else {
                        selects(&f.spec, Some(flow.table), &flow.matches)
                    }
                }) {
                    f.spec.actions = flow.actions.clone();
                    f.spec.cookie = flow.cookie;
                    events.push(event(FlowEventKind::Modified, "modify", &f.spec));
                }
            }
            FlowMod::Delete {
                table,
                priority,
                matches,
                strict,
                cookie,
            } => {
                flows.retain(|f| {
                    let s = &f.spec;
                    let hit = if *strict {
                        table.is_none_or(|t| t == s.table)
                            && priority.is_none_or(|p| p == s.priority)
                            && s.matches == *matches
                    } else {
                        selects(s, *table, matches)
                    } && cookie_selects(s, *cookie);
                    if hit {
                        events.push(event(FlowEventKind::Removed, "delete", s));
                    }
                    !hit
                });
            }
            FlowMod::Replace { flows: new } => {
                let old = std::mem::take(&mut flows);
                for f in &old {
                    if !new.contains(&f.spec) {
                        events.push(event(FlowEventKind::Removed, "replace", &f.spec));
                    }
                }
                for n in new {
                    match old.iter().find(|f| f.spec == *n) {
                        Some(f) => flows.push(f.clone()),
                        None => {
                            flows.push(fresh(n));
                            events.push(event(FlowEventKind::Added, "replace", n));
                        }
                    }
                }
            }
            FlowMod::SetMiss { table, miss } => {
                misses.insert(*table, *miss);
            }
            FlowMod::AddGroup { .. }
            | FlowMod::ModifyGroup { .. }
            | FlowMod::DeleteGroup { .. } => {}
        }
    }
    let s = inner.state.as_mut().unwrap();
    s.table_version += 1;
    let version = s.table_version;
    for e in &mut events {
        e.table_version = version;
    }
    inner.flows = flows;
    inner.misses = misses;
    inner.flow_mods.push(mods);
    (Response::Applied { version }, events)
}
