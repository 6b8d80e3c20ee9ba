//! A blocking client for vxswitchd's control socket, used by vxctl and vxagent.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::codec::{read_msg, write_msg};
use crate::proto::*;
use crate::Error;

/// How long connecting and the hello exchange may take: a daemon that does not accept or
/// answer within it is reported at once, naming the socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a reply may take (a batch creating many TAPs takes a while).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Connects to a Unix socket, giving up after `limit` (a listener whose backlog is full
/// would otherwise block the caller for as long as the daemon does not accept).
pub fn connect_within(path: &Path, limit: Duration) -> Result<UnixStream, Error> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.to_path_buf();
    // The thread ends when connect returns; the caller does not wait for it.
    std::thread::spawn(move || {
        let _ = tx.send(UnixStream::connect(&p));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(source)) if source.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(Error::NoPermission {
                path: path.to_path_buf(),
                detail: permission_detail(path),
            })
        }
        Ok(Err(source)) => Err(Error::Connect {
            path: path.to_path_buf(),
            source,
        }),
        Err(_) => Err(Error::NoAnswer {
            path: path.to_path_buf(),
            what: "accept the connection",
            secs: limit.as_secs(),
        }),
    }
}

/// Who this process is and what the socket (or the directory in its way) allows, for a
/// refused connect: `socket mode 0600, owner uid 0, group gid 0 (root); this process is uid
/// 1000 gid 1000, groups 1000 27`.
fn permission_detail(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        me.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let (uid, gid, groups) = (field("Uid:"), field("Gid:"), field("Groups:"));
    let me = format!(
        "this process is uid {} gid {}, groups {}",
        uid.get(1).or(uid.first()).copied().unwrap_or("?"),
        gid.get(1).or(gid.first()).copied().unwrap_or("?"),
        if groups.is_empty() {
            "none".to_string()
        } else {
            groups.join(" ")
        }
    );
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "socket mode {:04o}, owner uid {}, group gid {}{}; {me}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            group_name(m.gid())
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
        Err(e) => format!(
            "its directory {} does not let this process in ({e}); {me}",
            path.parent().unwrap_or(Path::new("/")).display()
        ),
    }
}

/// A group's name, from /etc/group.
fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let cols: Vec<&str> = l.split(':').collect();
        (cols.len() >= 3 && cols[2].parse() == Ok(gid)).then(|| cols[0].to_string())
    })
}

/// One connection to vxswitchd, past the hello exchange.
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
    /// Version the server announced at hello.
    pub server_version: u32,
    /// Server software identification.
    pub server: String,
}

impl Client {
    /// Connects and says hello. `client` names the caller in the server's log.
    pub fn connect(path: impl AsRef<Path>, client: &str) -> Result<Client, Error> {
        let path = path.as_ref().to_path_buf();
        let stream = connect_within(&path, CONNECT_TIMEOUT)?;
        stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let mut c = Client {
            stream,
            path,
            server_version: 0,
            server: String::new(),
        };
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            client: client.to_string(),
        };
        match c.call_within(&hello, "answer hello", CONNECT_TIMEOUT)? {
            Response::Hello {
                version, server, ..
            } => {
                c.server_version = version;
                c.server = server;
                c.stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
                Ok(c)
            }
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// The socket path this client is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and reads its response; an error response becomes `Err`.
    pub fn call(&mut self, req: &Request) -> Result<Response, Error> {
        self.call_within(req, "answer", REPLY_TIMEOUT)
    }

    /// `call`, with the reply's time limit named in the error when it passes.
    fn call_within(
        &mut self,
        req: &Request,
        what: &'static str,
        limit: Duration,
    ) -> Result<Response, Error> {
        let no_answer = |e: Error, path: &Path| match e {
            Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Error::NoAnswer {
                    path: path.to_path_buf(),
                    what,
                    secs: limit.as_secs(),
                }
            }
            e => e,
        };
        let sent = write_msg(&mut self.stream, req).map_err(|e| no_answer(e, &self.path));
        let reply = read_msg::<_, Response>(&mut self.stream).map_err(|e| no_answer(e, &self.path));
        let reply = match (sent, reply) {
            (Ok(()), reply) => reply?,
            // The daemon may have said why before it closed (a refused peer): that answer
            // is worth more than the broken pipe.
            (Err(_), Ok(r @ Response::Error { .. })) => r,
            (Err(e), _) => return Err(e),
        };
        match reply {
            Response::Error {
                code: ErrorCode::Version,
                message,
            } => Err(Error::Version {
                path: self.path.clone(),
                client: PROTOCOL_VERSION,
                message,
            }),
            Response::Error {
                code: ErrorCode::Denied,
                message,
            } => Err(Error::Denied {
                path: self.path.clone(),
                message,
            }),
            Response::Error { code, message } => Err(Error::Refused { code, message }),
            r => Ok(r),
        }
    }

    /// Applies a batch atomically; returns the new table version.
    pub fn apply(
        &mut self,
        owner: Owner,
        expected_version: Option<u64>,
        changes: Vec<Change>,
    ) -> Result<u64, Error> {
        let req = Request::Apply(ApplyRequest {
            owner,
            expected_version,
            changes,
        });
        match self.call(&req)? {
            Response::Applied { version } => Ok(version),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    /// Applies flow changes all or nothing, however many: in one [`Request::FlowMods`] when
    /// they fit in a message, else in a bundle ([`Request::BundleOpen`]) of chunks below the
    /// message limit, committed at once (a replace's flows are spread over chunks). Returns
    /// the new table version.
    pub fn flow_mods(&mut self, mods: Vec<FlowMod>) -> Result<u64, Error> {
        let req = Request::FlowMods { mods };
        let len = serde_json::to_vec(&req)
            .map_err(|e| Error::Malformed(e.to_string()))?
            .len();
        let mods = match req {
            _ if len <= MAX_MESSAGE_LEN => return self.applied(&req),
            Request::FlowMods { mods } => mods,
            _ => Vec::new(),
        };
        let chunks = chunks(mods, CHUNK_BYTES)?;
        match self.call(&Request::BundleOpen)? {
            Response::Bundle { .. } => {}
            other => return Err(Error::Unexpected(format!("{other:?}"))),
        }
        let sent = chunks.into_iter().try_for_each(|(mods, extend_replace)| {
            match self.call(&Request::BundleAdd {
                mods,
                extend_replace,
            })? {
                Response::Bundle { .. } => Ok(()),
                other => Err(Error::Unexpected(format!("{other:?}"))),
            }
        });
        if let Err(e) = sent {
            // Nothing was applied; the bundle goes with the connection anyway.
            let _ = self.call(&Request::BundleDiscard);
            return Err(e);
        }
        self.applied(&Request::BundleCommit)
    }

    fn applied(&mut self, req: &Request) -> Result<u64, Error> {
        match self.call(req)? {
            Response::Applied { version } => Ok(version),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    pub fn state(&mut self) -> Result<StateRepr, Error> {
        match self.call(&Request::GetState)? {
            Response::State(s) => Ok(s),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    pub fn stats(&mut self) -> Result<StatsRepr, Error> {
        match self.call(&Request::GetStats)? {
            Response::Stats(s) => Ok(s),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }

    pub fn fdb(&mut self) -> Result<FdbRepr, Error> {
        match self.call(&Request::GetFdb)? {
            Response::Fdb(s) => Ok(s),
            other => Err(Error::Unexpected(format!("{other:?}"))),
        }
    }
}

/// Bytes of flow changes a bundle chunk carries (well below [`MAX_MESSAGE_LEN`]).
pub const CHUNK_BYTES: usize = 3 << 20;

/// Splits flow changes into chunks of at most about `budget` bytes of JSON each: (changes,
/// whether the chunk's first change continues the previous chunk's replace).
pub fn chunks(mods: Vec<FlowMod>, budget: usize) -> Result<Vec<(Vec<FlowMod>, bool)>, Error> {
    let mut out: Vec<(Vec<FlowMod>, bool)> = Vec::new();
    let mut cur: Vec<FlowMod> = Vec::new();
    let mut cur_extends = false;
    let mut used = 0usize;
    for m in mods {
        match m {
            FlowMod::Replace { flows } => {
                let head = json_len(&FlowMod::Replace { flows: vec![] })?;
                if used + head > budget && !cur.is_empty() {
                    out.push((std::mem::take(&mut cur), cur_extends));
                    (used, cur_extends) = (0, false);
                }
                cur.push(FlowMod::Replace { flows: vec![] });
                used += head;
                for f in flows {
                    let n = json_len(&f)? + 1;
                    if used + n > budget && !cur.is_empty() {
                        out.push((std::mem::take(&mut cur), cur_extends));
                        cur.push(FlowMod::Replace { flows: vec![] });
                        (used, cur_extends) = (head, true);
                    }
                    if let Some(FlowMod::Replace { flows }) = cur.last_mut() {
                        flows.push(f);
                    }
                    used += n;
                }
            }
            m => {
                let n = json_len(&m)? + 1;
                if used + n > budget && !cur.is_empty() {
                    out.push((std::mem::take(&mut cur), cur_extends));
                    (used, cur_extends) = (0, false);
                }
                cur.push(m);
                used += n;
            }
        }
    }
    if !cur.is_empty() {
        out.push((cur, cur_extends));
    }
    Ok(out)
}

/// Bytes of a value as JSON.
fn json_len<T: serde::Serialize>(v: &T) -> Result<usize, Error> {
    serde_json::to_vec(v)
        .map(|v| v.len())
        .map_err(|e| Error::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(i: u32) -> FlowSpec {
        FlowSpec {
            table: 0,
            priority: 100,
            cookie: i as u64,
            idle_timeout: 0,
            hard_timeout: 0,
            matches: vec![Match::DlType { value: 0x0800 }],
            actions: vec![FlowAction::Normal],
        }
    }

    #[test]
    fn chunks_stay_under_the_budget_and_a_replace_spreads_over_them() {
        let mods = vec![
            FlowMod::Add {
                flow: flow(0),
                reset_counts: false,
            },
            FlowMod::Replace {
                flows: (1..2000).map(flow).collect(),
            },
            FlowMod::Add {
                flow: flow(9999),
                reset_counts: false,
            },
        ];
        let budget = 20_000;
        let out = chunks(mods.clone(), budget).unwrap();
        assert!(out.len() > 5, "{}", out.len());
        for (c, _) in &out {
            assert!(serde_json::to_vec(c).unwrap().len() <= budget + 200);
        }
        assert!(!out[0].1 && out[1].1, "later chunks continue the replace");
        // Put back together as the switch does, they are the changes sent.
        let mut back: Vec<FlowMod> = Vec::new();
        for (mut c, extend) in out {
            if extend {
                let FlowMod::Replace { flows: more } = c.remove(0) else {
                    panic!("a continuing chunk starts with a replace")
                };
                let Some(FlowMod::Replace { flows }) = back.last_mut() else {
                    panic!("continues a replace")
                };
                flows.extend(more);
            }
            back.extend(c);
        }
        assert_eq!(back, mods);
    }

    #[test]
    fn a_refusal_sent_before_the_daemon_closed_is_reported_not_the_broken_pipe() {
        let (client_end, mut daemon_end) = UnixStream::pair().unwrap();
        write_msg(
            &mut daemon_end,
            &Response::Error {
                code: ErrorCode::Denied,
                message: "uid 65534 gid 65534 is not root".into(),
            },
        )
        .unwrap();
        // Closed before the client's hello: writing it fails with a broken pipe.
        drop(daemon_end);
        client_end
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut c = Client {
            stream: client_end,
            path: PathBuf::from("/run/test/vxswitchd.sock"),
            server_version: 0,
            server: String::new(),
        };
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            client: "test".into(),
        };
        let e = c.call(&hello).expect_err("refused");
        let msg = e.to_string();
        assert!(matches!(e, Error::Denied { .. }), "{msg}");
        assert!(
            msg.contains("/run/test/vxswitchd.sock") && msg.contains("uid 65534 gid 65534"),
            "{msg}"
        );
    }

    #[test]
    fn a_version_refusal_names_both_versions() {
        let (client_end, mut daemon_end) = UnixStream::pair().unwrap();
        write_msg(
            &mut daemon_end,
            &Response::Error {
                code: ErrorCode::Version,
                message: "client test speaks protocol version 1, this vxswitchd (9.0.0) speaks \
                          protocol version 7"
                    .into(),
            },
        )
        .unwrap();
        let mut c = Client {
            stream: client_end,
            path: PathBuf::from("/run/test/vxswitchd.sock"),
            server_version: 0,
            server: String::new(),
        };
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            client: "test".into(),
        };
        let msg = c.call(&hello).expect_err("refused").to_string();
        assert!(
            msg.contains(&format!("protocol version {PROTOCOL_VERSION}"))
                && msg.contains("protocol version 7"),
            "{msg}"
        );
    }

    #[test]
    fn a_daemon_that_never_answers_is_reported_promptly_naming_the_socket() {
        let dir = std::env::temp_dir().join(format!("vxclient-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stuck.sock");
        let _ = std::fs::remove_file(&path);
        // Bound and listening, never accepting: connect succeeds, hello is never answered.
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let start = std::time::Instant::now();
        let r = Client::connect(&path, "test");
        let took = start.elapsed();
        let _ = std::fs::remove_dir_all(&dir);
        let e = r.err().expect("no answer is an error");
        let msg = e.to_string();
        assert!(matches!(e, Error::NoAnswer { .. }), "{msg}");
        assert!(
            msg.contains("stuck.sock") && msg.contains("answer hello"),
            "{msg}"
        );
        assert!(took < CONNECT_TIMEOUT + Duration::from_secs(3), "{took:?}");
    }
}
