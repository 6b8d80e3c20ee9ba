//! A stand-in for vxswitchd in tests: a Unix socket in a temp dir that speaks the codec, keeps a
//! `StateRepr`, applies batches to it (version checks, owner checks, port numbering) and records
//! every request. Shared by controlplane/tests and tools/tests (included with `#[path]`).
#![allow(dead_code)]

use std::io::ErrorKind;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
}

struct Shared {
    inner: Mutex<Inner>,
    stop: AtomicBool,
    conns: Mutex<Vec<UnixStream>>,
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
            Ok(req) => answer(&mut shared.inner.lock().unwrap(), req),
        };
        if write_msg(&mut stream, &resp).is_err() {
            return;
        }
    }
}

fn answer(inner: &mut Inner, req: Request) -> Response {
    match req {
        Request::Hello { .. } => Response::Error {
            code: ErrorCode::OutOfOrder,
            message: "hello twice".into(),
        },
        Request::GetState => Response::State(inner.state.clone().unwrap()),
        Request::GetStats => Response::Stats(inner.stats.clone()),
        Request::GetFdb => Response::Fdb(inner.fdb.clone()),
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
