//! A blocking client for vxswitchd's control socket, used by vxctl and vxagent.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::codec::{read_msg, write_msg};
use crate::proto::*;
use crate::Error;

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
        let stream = UnixStream::connect(&path).map_err(|source| Error::Connect {
            path: path.clone(),
            source,
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
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
        match c.call(&hello)? {
            Response::Hello {
                version, server, ..
            } => {
                c.server_version = version;
                c.server = server;
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
        write_msg(&mut self.stream, req)?;
        match read_msg::<_, Response>(&mut self.stream)? {
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
