//! The control socket: a Unix socket speaking the protocol of `controlplane::proto`.
//!
//! Runs on a tokio runtime, apart from the workers. Peers are checked with `SO_PEERCRED`: root
//! always, members of `--socket-group` when one is given, nobody else; a refused peer is told
//! who it is and why before the connection closes. Every request is answered; a malformed one
//! gets an error and changes nothing. No client can hold the others up: each connection is a
//! task of its own, a connection must say hello within [`HELLO_TIMEOUT`], a message once
//! started must arrive whole within [`MESSAGE_TIMEOUT`], and a client that leaves its replies
//! unread for [`REPLY_TIMEOUT`] is disconnected (what waits for it is bounded by the socket
//! buffers and one request). Each of these is counted by reason (`ControlError`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use controlplane::codec::{decode, nonblocking};
use controlplane::proto::*;
use controlplane::Error as CpError;
use tokio::net::{UnixListener, UnixStream};

use crate::counters::{ControlCounters, ControlError};
use crate::switch::Switch;

/// How long a new connection may take to send its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the rest of a message may take once its first byte has arrived.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a reply may wait for its client to read it before the client is disconnected.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may connect.
#[derive(Debug, Clone)]
pub struct Access {
    /// The group whose members are admitted besides root (gid, name).
    pub group: Option<(u32, String)>,
}

/// Looks a group up in /etc/group.
pub fn lookup_group(name: &str) -> Result<u32, String> {
    let text = std::fs::read_to_string("/etc/group")
        .map_err(|e| format!("cannot read /etc/group: {e}"))?;
    for line in text.lines() {
        let cols: Vec<&str> = line.split(':').collect();
        if cols.len() >= 3 && cols[0] == name {
            return cols[2]
                .parse()
                .map_err(|_| format!("group {name} has a bad gid in /etc/group"));
        }
    }
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    Err(format!("no group named {name} in /etc/group"))
}

/// Supplementary and primary groups of a process, from /proc.
fn process_groups(pid: i32) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return vec![];
    };
    let mut out = Vec::new();
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("Groups:") {
            out.extend(
                rest.split_whitespace()
                    .filter_map(|g| g.parse::<u32>().ok()),
            );
        }
        if let Some(rest) = line.strip_prefix("Gid:") {
            out.extend(
                rest.split_whitespace()
                    .filter_map(|g| g.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Binds the socket with the right owner and mode.
pub fn bind(path: &Path, access: &Access) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{} is in use: another vxswitchd is running on it (stop it, or pass another --socket)",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
    }
    let l = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    let mode = if access.group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    if let Some((gid, _)) = &access.group {
        std::os::unix::fs::chown(path, Some(0), Some(*gid))
            .map_err(|e| format!("cannot give {} to group {gid}: {e}", path.display()))?;
    }
    Ok(l)
}

/// A descriptor kept in reserve: when accept fails for want of descriptors (EMFILE/ENFILE)
/// it is closed so the next accept can take the waiting connection, which is then answered.
fn spare_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// How a run of failed accepts is paced and reported: one log line when it starts, one when
/// it ends (with how many failed), a growing pause in between.
#[derive(Debug, Default)]
struct AcceptBackoff {
    failures: u64,
}

impl AcceptBackoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(10);
    const MAX: std::time::Duration = std::time::Duration::from_secs(1);

    /// Records a failure; returns the line to log (only the first of a run) and the pause.
    fn failed(&mut self, e: &std::io::Error) -> (Option<String>, std::time::Duration) {
        self.failures += 1;
        let line = (self.failures == 1).then(|| {
            format!(
                "vxswitchd: accepting control connections fails: {e}; retrying with back-off \
                 (logged again when it recovers)"
            )
        });
        let shift = (self.failures - 1).min(7) as u32;
        (line, (Self::FIRST * (1 << shift)).min(Self::MAX))
    }

    /// Records a success; returns the line to log when it ends a run of failures.
    fn succeeded(&mut self) -> Option<String> {
        let n = std::mem::take(&mut self.failures);
        (n > 0)
            .then(|| format!("vxswitchd: accepting control connections again ({n} accepts failed)"))
    }
}

/// Accepts connections until the future is dropped. Running out of file descriptors slows
/// accepting down but never stops it: a reserve descriptor lets a waiting client in, and
/// accepting resumes by itself once descriptors are free again.
pub async fn serve(listener: UnixListener, switch: Arc<Mutex<Switch>>, access: Access) {
    let mut reserve = spare_fd();
    let mut backoff = AcceptBackoff::default();
    let counters = lock(&switch).control_counters();
    let mut refusals = LogGate::default();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => {
                if let Some(line) = backoff.succeeded() {
                    eprintln!("{line}");
                }
                if reserve.is_none() {
                    reserve = spare_fd();
                }
                s
            }
            Err(e) => {
                counters.inc(ControlError::AcceptFailed);
                let (line, pause) = backoff.failed(&e);
                if let Some(line) = line {
                    eprintln!("{line}");
                }
                let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                if out_of_fds && reserve.take().is_some() {
                    // The reserve is closed: accept again at once.
                    continue;
                }
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        if let Err(why) = admit(&stream, &access) {
            counters.inc(ControlError::Refused);
            if let Some(more) = refusals.pass() {
                let more = match more {
                    0 => String::new(),
                    n => format!(" ({n} more refused since the last line)"),
                };
                eprintln!("vxswitchd: refused a control connection: {why}{more}");
            }
            tokio::spawn(refuse_peer(stream, why));
            continue;
        }
        let sw = switch.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, sw, &counters).await {
                match e {
                    CpError::Closed => {}
                    e => eprintln!("vxswitchd: control connection ended: {e}"),
                }
            }
        });
    }
}

/// At most one log line a second for a kind of event that a client can cause at will.
#[derive(Debug, Default)]
struct LogGate {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl LogGate {
    /// `Some(n)` when a line may be logged now (`n` lines were held back since the last);
    /// `None` when this one is held back.
    fn pass(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Tells a refused peer why, then closes. The message is small enough for an empty socket
/// buffer; a peer that does not take it within a second is closed anyway.
async fn refuse_peer(mut stream: UnixStream, why: String) {
    let r = Response::Error {
        code: ErrorCode::Denied,
        message: why,
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        nonblocking::write_msg(&mut stream, &r),
    )
    .await;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
}

/// Whether a peer may use a socket: root, or a member of the admitted group.
pub(crate) fn admit(stream: &UnixStream, access: &Access) -> Result<(), String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("cannot read peer credentials: {e}"))?;
    if cred.uid() == 0 {
        return Ok(());
    }
    let who = match cred.pid() {
        Some(pid) => format!("uid {} gid {} (pid {pid})", cred.uid(), cred.gid()),
        None => format!("uid {} gid {}", cred.uid(), cred.gid()),
    };
    match &access.group {
        None => Err(format!(
            "{who} is not root, and only root may use this socket (vxswitchd \
             --socket-group GROUP admits a group's members)"
        )),
        Some((gid, name)) => {
            let member = cred.gid() == *gid
                || cred
                    .pid()
                    .map(process_groups)
                    .unwrap_or_default()
                    .contains(gid);
            if member {
                Ok(())
            } else {
                Err(format!(
                    "{who} is neither root nor a member of group {name} (gid {gid}), the \
                     only ones this socket admits"
                ))
            }
        }
    }
}

/// What waiting for the next request brought.
enum Incoming {
    Frame(Vec<u8>),
    /// The client closed the connection between messages.
    End,
    /// Nothing, or not the whole message, within the limit.
    Late(String),
}

/// Reads the next request. Before hello the first byte must come within [`HELLO_TIMEOUT`];
/// after it a client may stay idle as long as it likes. Once a message has started, all of it
/// must arrive within [`MESSAGE_TIMEOUT`].
async fn next_request(stream: &mut UnixStream, greeted: bool) -> Result<Incoming, CpError> {
    use tokio::io::AsyncReadExt;
    let mut first = [0u8; 1];
    let started = stream.read(&mut first);
    let n = if greeted {
        started.await?
    } else {
        match tokio::time::timeout(HELLO_TIMEOUT, started).await {
            Ok(r) => r?,
            Err(_) => {
                return Ok(Incoming::Late(format!(
                    "no hello within {} s; closing",
                    HELLO_TIMEOUT.as_secs()
                )))
            }
        }
    };
    if n == 0 {
        return Ok(Incoming::End);
    }
    let mut rest = (&first[..]).chain(&mut *stream);
    match tokio::time::timeout(MESSAGE_TIMEOUT, nonblocking::read_frame(&mut rest)).await {
        Ok(Ok(Some(body))) => Ok(Incoming::Frame(body)),
        Ok(Ok(None)) => Ok(Incoming::End),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(Incoming::Late(format!(
            "a message started but did not arrive whole within {} s; closing",
            MESSAGE_TIMEOUT.as_secs()
        ))),
    }
}

/// Writes a reply, giving up on a client that does not read within [`REPLY_TIMEOUT`].
async fn reply(
    stream: &mut UnixStream,
    r: &Response,
    counters: &ControlCounters,
) -> Result<(), CpError> {
    match tokio::time::timeout(REPLY_TIMEOUT, nonblocking::write_msg(stream, r)).await {
        Ok(r) => r,
        Err(_) => {
            counters.inc(ControlError::SlowReader);
            eprintln!(
                "vxswitchd: disconnected a control client that left its replies unread for {} s",
                REPLY_TIMEOUT.as_secs()
            );
            Err(CpError::Closed)
        }
    }
}

async fn connection(
    mut stream: UnixStream,
    switch: Arc<Mutex<Switch>>,
    counters: &ControlCounters,
) -> Result<(), CpError> {
    let mut greeted = false;
    // The connection's open bundle (see `Request::BundleOpen`), dropped with the connection.
    let mut bundle: Option<Bundle> = None;
    loop {
        let body = match next_request(&mut stream, greeted).await {
            Ok(Incoming::Frame(b)) => b,
            Ok(Incoming::End) => return Ok(()),
            Ok(Incoming::Late(why)) => {
                counters.inc(ControlError::Timeout);
                eprintln!("vxswitchd: control connection: {why}");
                let r = Response::Error {
                    code: ErrorCode::Timeout,
                    message: why,
                };
                // The client may not be reading either; the reply waits at most a second.
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    nonblocking::write_msg(&mut stream, &r),
                )
                .await;
                return Ok(());
            }
            Err(CpError::TooLarge { len, max }) => {
                counters.inc(ControlError::TooLarge);
                let r = Response::Error {
                    code: ErrorCode::TooLarge,
                    message: format!("message of {len} bytes exceeds {max}; closing"),
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    nonblocking::write_msg(&mut stream, &r),
                )
                .await;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let response = match decode::<Request>(&body) {
            Err(e) => {
                counters.inc(ControlError::Malformed);
                Response::Error {
                    code: ErrorCode::Malformed,
                    message: e.to_string(),
                }
            }
            Ok(Request::Hello { version, client }) => {
                if greeted {
                    Response::Error {
                        code: ErrorCode::OutOfOrder,
                        message: "hello was already said".into(),
                    }
                } else if version != PROTOCOL_VERSION {
                    Response::Error {
                        code: ErrorCode::Version,
                        message: format!(
                            "client {client} speaks protocol version {version}, this vxswitchd \
                             ({}) speaks protocol version {PROTOCOL_VERSION}",
                            env!("CARGO_PKG_VERSION")
                        ),
                    }
                } else {
                    greeted = true;
                    let v = lock(&switch).version();
                    Response::Hello {
                        version: PROTOCOL_VERSION,
                        server: format!("vxswitchd {}", env!("CARGO_PKG_VERSION")),
                        table_version: v,
                    }
                }
            }
            Ok(_) if !greeted => {
                counters.inc(ControlError::Malformed);
                Response::Error {
                    code: ErrorCode::OutOfOrder,
                    message: "say hello first (send a hello request with the protocol version)"
                        .into(),
                }
            }
            Ok(Request::BundleOpen) => match bundle {
                Some(_) => Response::Error {
                    code: ErrorCode::OutOfOrder,
                    message: "a bundle is already open on this connection (commit or discard \
                              it first)"
                        .into(),
                },
                None => {
                    let b = Bundle::default();
                    let r = b.response();
                    bundle = Some(b);
                    r
                }
            },
            Ok(Request::BundleAdd {
                mods,
                extend_replace,
            }) => match bundle.as_mut() {
                None => no_bundle(),
                Some(b) => match b.add(mods, extend_replace, body.len()) {
                    Ok(()) => b.response(),
                    Err((code, message)) => {
                        // A bundle that cannot take a chunk could never be applied whole.
                        bundle = None;
                        Response::Error { code, message }
                    }
                },
            },
            Ok(Request::BundleDiscard) => {
                bundle = None;
                Bundle::default().response()
            }
            Ok(Request::BundleCommit) => match bundle.take() {
                None => no_bundle(),
                Some(b) => {
                    let sw = switch.clone();
                    let req = Request::FlowMods { mods: b.mods };
                    tokio::task::spawn_blocking(move || handle(&sw, req))
                        .await
                        .unwrap_or_else(|e| Response::Error {
                            code: ErrorCode::Failed,
                            message: format!("internal error: {e}"),
                        })
                }
            },
            Ok(Request::Monitor) => return monitor(stream, switch).await,
            Ok(Request::Capture {
                port,
                count,
                filter,
            }) => return capture(stream, switch, port, count, filter).await,
            Ok(req) => {
                let sw = switch.clone();
                tokio::task::spawn_blocking(move || handle(&sw, req))
                    .await
                    .unwrap_or_else(|e| Response::Error {
                        code: ErrorCode::Failed,
                        message: format!("internal error: {e}"),
                    })
            }
        };
        reply(&mut stream, &response, counters).await?;
    }
}

fn lock(sw: &Arc<Mutex<Switch>>) -> std::sync::MutexGuard<'_, Switch> {
    // A panic while holding the lock would leave it poisoned; the configuration is only
    // replaced after a batch fully succeeded, so the data is still consistent.
    sw.lock().unwrap_or_else(|p| p.into_inner())
}

fn handle(sw: &Arc<Mutex<Switch>>, req: Request) -> Response {
    let mut s = lock(sw);
    match req {
        Request::Hello { .. } => Response::Error {
            code: ErrorCode::OutOfOrder,
            message: "hello was already said".into(),
        },
        Request::Apply(a) => {
            let n = a.changes.len();
            let owner = a.owner;
            match s.apply(a) {
                Ok(version) => {
                    if n > 0 {
                        eprintln!(
                            "vxswitchd: applied {n} changes from {owner}, table version {version}"
                        );
                    }
                    Response::Applied { version }
                }
                Err(r) => {
                    eprintln!("vxswitchd: refused a batch from {owner}: {}", r.message);
                    Response::Error {
                        code: r.code,
                        message: r.message,
                    }
                }
            }
        }
        Request::GetState => Response::State(s.state()),
        Request::GetStats => Response::Stats(s.stats()),
        Request::GetFdb => Response::Fdb(s.fdb()),
        Request::FlowMods { mods } => match s.flow_mods(&mods) {
            Ok(version) => Response::Applied { version },
            Err(r) => Response::Error {
                code: r.code,
                message: r.message,
            },
        },
        Request::DumpFlows { table, matches } => match s.dump_flows(table, &matches) {
            Ok(flows) => Response::Flows {
                table_version: s.version(),
                flows,
            },
            Err(r) => Response::Error {
                code: r.code,
                message: r.message,
            },
        },
        Request::DumpTables => Response::Tables {
            tables: s.dump_tables(),
        },
        Request::DumpGroups { group_id } => Response::Groups {
            table_version: s.version(),
            groups: s.dump_groups(group_id),
        },
        Request::Trace { in_port, matches } => match s.trace(&in_port, &matches) {
            Ok(t) => Response::Trace(t),
            Err(r) => Response::Error {
                code: r.code,
                message: r.message,
            },
        },
        Request::Monitor | Request::Capture { .. } => Response::Error {
            code: ErrorCode::Failed,
            message: "streams are served on the connection itself".into(),
        },
        Request::BundleOpen
        | Request::BundleAdd { .. }
        | Request::BundleCommit
        | Request::BundleDiscard => Response::Error {
            code: ErrorCode::Failed,
            message: "bundles are kept by the connection itself".into(),
        },
    }
}

/// A connection's open bundle of flow changes.
#[derive(Debug, Default)]
struct Bundle {
    mods: Vec<FlowMod>,
    /// Flow changes held (each flow of a replace counts).
    flows: usize,
    /// Bytes of the messages that brought them.
    bytes: usize,
}

impl Bundle {
    fn response(&self) -> Response {
        Response::Bundle {
            flows: self.flows as u64,
            bytes: self.bytes as u64,
        }
    }

    /// Adds a chunk of `len` message bytes; refused beyond the bundle limits.
    fn add(
        &mut self,
        mut mods: Vec<FlowMod>,
        extend_replace: bool,
        len: usize,
    ) -> Result<(), (ErrorCode, String)> {
        let flows: usize = mods
            .iter()
            .map(|m| match m {
                FlowMod::Replace { flows } => flows.len(),
                _ => 1,
            })
            .sum();
        let (bytes, total) = (self.bytes + len, self.flows + flows);
        if bytes > MAX_BUNDLE_BYTES || total > MAX_BUNDLE_FLOWS {
            return Err((
                ErrorCode::TooLarge,
                format!(
                    "the bundle would hold {bytes} bytes and {total} flow changes, beyond the \
                     limits of {MAX_BUNDLE_BYTES} bytes and {MAX_BUNDLE_FLOWS} flow changes; \
                     the bundle was discarded"
                ),
            ));
        }
        if extend_replace {
            let more = match mods.first_mut() {
                Some(FlowMod::Replace { flows }) => std::mem::take(flows),
                _ => {
                    return Err((
                        ErrorCode::Invalid,
                        "extend_replace: the chunk must start with a replace; the bundle was \
                         discarded"
                            .into(),
                    ))
                }
            };
            match self.mods.last_mut() {
                Some(FlowMod::Replace { flows }) => flows.extend(more),
                _ => {
                    return Err((
                        ErrorCode::Invalid,
                        "extend_replace: the bundle does not end with a replace; the bundle \
                         was discarded"
                            .into(),
                    ))
                }
            }
            mods.remove(0);
        }
        self.mods.extend(mods);
        (self.bytes, self.flows) = (bytes, total);
        Ok(())
    }
}

fn no_bundle() -> Response {
    Response::Error {
        code: ErrorCode::OutOfOrder,
        message: "no bundle is open on this connection (send bundle_open first)".into(),
    }
}

/// Default state file next to the socket.
pub fn default_state_file(socket: &Path) -> PathBuf {
    socket.with_file_name(format!(
        "{}.state.json",
        socket
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "vxswitchd".into())
    ))
}

/// Streams flow events until the client goes away.
async fn monitor(mut stream: UnixStream, switch: Arc<Mutex<Switch>>) -> Result<(), CpError> {
    let mut rx = lock(&switch).subscribe();
    nonblocking::write_msg(
        &mut stream,
        &Response::Streaming {
            detail: "flow events".into(),
        },
    )
    .await?;
    let (mut rd, mut wr) = stream.into_split();
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(e) => nonblocking::write_msg(&mut wr, &Response::FlowEvent(e)).await?,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("vxswitchd: a monitor fell {n} events behind");
                }
                Err(_) => return Ok(()),
            },
            r = tokio::io::AsyncReadExt::read(&mut rd, &mut probe) => {
                // The client closed (or sent something): the stream ends.
                let _ = r;
                return Ok(());
            }
        }
    }
}

/// Streams captured frames of a port.
async fn capture(
    mut stream: UnixStream,
    switch: Arc<Mutex<Switch>>,
    port: PortRef,
    count: Option<u64>,
    filter: Vec<Match>,
) -> Result<(), CpError> {
    let started = lock(&switch).capture_start(&port);
    let (no, name) = match started {
        Ok(p) => p,
        Err(r) => {
            let resp = Response::Error {
                code: r.code,
                message: r.message,
            };
            return nonblocking::write_msg(&mut stream, &resp).await;
        }
    };
    let lost_before = lock(&switch).capture_lost();
    let vtep = lock(&switch).vtep();
    let vxlan_port = lock(&switch).state().vxlan_port;
    let detail = format!("capturing port {no} ({name})");
    let r = capture_loop(
        &mut stream,
        &switch,
        no,
        count,
        &filter,
        vtep,
        vxlan_port,
        detail,
    )
    .await;
    let lost = lock(&switch).capture_lost().saturating_sub(lost_before);
    lock(&switch).capture_stop();
    match r {
        Ok(frames) => {
            nonblocking::write_msg(&mut stream, &Response::StreamEnd { frames, lost }).await
        }
        Err(e) => Err(e),
    }
}

#[allow(clippy::too_many_arguments)]
async fn capture_loop(
    stream: &mut UnixStream,
    switch: &Arc<Mutex<Switch>>,
    no: u16,
    count: Option<u64>,
    filter: &[Match],
    vtep: Option<std::net::IpAddr>,
    vxlan_port: u16,
    detail: String,
) -> Result<u64, CpError> {
    nonblocking::write_msg(stream, &Response::Streaming { detail }).await?;
    let (fv, fm) = crate::flow::key::compile_match(filter, &|_| Some(no)).unwrap_or_default();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stream.readable() => {
                // A readable socket here means the client closed it (or broke the protocol).
                match stream.try_read(&mut probe) {
                    Ok(_) => return Ok(sent),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return Ok(sent),
                }
            }
        }
        let mut frames = Vec::new();
        lock(switch).capture_drain(&mut |b| {
            let tunnel = b.port == PORT_TUNNEL;
            let inner = if tunnel && b.kept > 8 {
                &b.data[8..b.kept]
            } else {
                &b.data[..b.kept]
            };
            let key = crate::flow::key::FlowKey::extract(inner, b.port, None).masked(&fm);
            if key != fv.masked(&fm) {
                return;
            }
            let local = vtep.map(|ip| std::net::SocketAddr::new(ip, vxlan_port));
            frames.push(CapturedFrame {
                ts_ns: b.ts_ns,
                port: b.port,
                direction: if b.rx { Direction::Rx } else { Direction::Tx },
                len: b.len,
                hex: hex(&b.data[..b.kept]),
                local: if tunnel { local } else { None },
                peer: if tunnel { b.peer } else { None },
            });
        });
        for f in frames {
            nonblocking::write_msg(stream, &Response::Frame(f)).await?;
            sent += 1;
            if count.is_some_and(|c| sent >= c) {
                return Ok(sent);
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// Expires timed-out flows twice a second.
pub async fn expire_flows(switch: Arc<Mutex<Switch>>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        let sw = switch.clone();
        let _ = tokio::task::spawn_blocking(move || lock(&sw).expire_flows()).await;
    }
}

/// Applies the workers' learned flows (see [`Switch::drain_learns`]) every 5 ms when there
/// are any; the switch's lock is taken only then.
pub async fn learn_flows(switch: Arc<Mutex<Switch>>) {
    let rx = lock(&switch).learn_receiver();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if rx.is_empty() {
            continue;
        }
        let sw = switch.clone();
        let _ = tokio::task::spawn_blocking(move || lock(&sw).drain_learns()).await;
    }
}

/// Reads the path MTU to every remote VTEP again every 10 seconds (see
/// [`Switch::refresh_path_mtus`]).
pub async fn refresh_path_mtus(switch: Arc<Mutex<Switch>>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tick.tick().await;
        let sw = switch.clone();
        let _ = tokio::task::spawn_blocking(move || lock(&sw).refresh_path_mtus()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_logs_at_most_a_line_a_second_and_counts_the_rest() {
        let mut g = LogGate::default();
        assert_eq!(g.pass(), Some(0), "the first is logged");
        let held = (0..1000).filter(|_| g.pass().is_none()).count();
        assert_eq!(held, 1000, "the rest of the second is held back");
        g.last = g.last.map(|t| t - Duration::from_secs(2));
        assert_eq!(
            g.pass(),
            Some(1000),
            "the next line says how many were held back"
        );
        assert_eq!(g.pass(), None);
    }

    #[test]
    fn a_run_of_failed_accepts_logs_twice_and_backs_off() {
        let mut b = AcceptBackoff::default();
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        let mut lines = 0;
        let mut pauses = Vec::new();
        for _ in 0..500 {
            let (line, pause) = b.failed(&e);
            lines += line.is_some() as usize;
            pauses.push(pause);
        }
        assert_eq!(lines, 1, "one line for the whole run");
        assert_eq!(pauses[0], std::time::Duration::from_millis(10));
        assert!(
            pauses.windows(2).all(|w| w[0] <= w[1]),
            "the pause only grows"
        );
        assert_eq!(*pauses.last().unwrap(), std::time::Duration::from_secs(1));
        let end = b.succeeded().expect("the recovery is logged");
        assert!(end.contains("500"), "{end}");
        assert!(b.succeeded().is_none(), "and only once");
        assert!(b.failed(&e).0.is_some(), "a new run is logged again");
    }
}
