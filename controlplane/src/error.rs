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
    #[error("vxswitchd speaks protocol version {server}, this client speaks {client}")]
    Version { server: u32, client: u32 },
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
