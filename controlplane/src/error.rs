//! The control plane's one error type.

use std::path::PathBuf;

/// Everything that can go wrong talking to vxswitchd or reading an agent file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot connect to vxswitchd at {path}: {source} (is vxswitchd running? see --socket)"
    )]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "vxswitchd at {path} did not {what} within {secs} s (is it overloaded or stuck? \
         its log says why; `vxswitchd --help` on file descriptors)"
    )]
    NoAnswer {
        path: PathBuf,
        what: &'static str,
        secs: u64,
    },
    #[error("control socket I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("vxswitchd closed the connection")]
    Closed,
    #[error(
        "vxswitchd at {path} refused this client's protocol version {client}: {message} \
         (use the vxctl and vxagent of the same release as vxswitchd)"
    )]
    Version {
        path: PathBuf,
        client: u32,
        /// The daemon's words, naming both versions.
        message: String,
    },
    #[error("vxswitchd at {path} refused this connection: {message}")]
    Denied { path: PathBuf, message: String },
    #[error(
        "no permission to connect to vxswitchd at {path}: {detail}; the socket admits root, \
         and the members of the group given to `vxswitchd --socket-group` if any (run as root, \
         or join that group)"
    )]
    NoPermission { path: PathBuf, detail: String },
    #[error("vxswitchd refused the request ({code:?}): {message}")]
    Refused {
        code: crate::proto::ErrorCode,
        message: String,
    },
    #[error("unexpected reply from vxswitchd: {0}")]
    Unexpected(String),
    #[error("{0}")]
    Config(String),
}
