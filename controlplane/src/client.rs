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
        write_msg(&mut self.stream, req).map_err(|e| no_answer(e, &self.path))?;
        let reply = read_msg::<_, Response>(&mut self.stream).map_err(|e| no_answer(e, &self.path));
        match reply? {
            Response::Error {
                code: ErrorCode::Version,
                message,
            } => {
                let _ = message;
                Err(Error::Version {
                    server: 0,
                    client: PROTOCOL_VERSION,
                })
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
