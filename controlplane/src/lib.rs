//! The vxswitch control plane: the typed protocol spoken on vxswitchd's local socket, a
//! blocking client for it, and the node agent that reconciles a node's desired state.
//!
//! Dependencies run one way: the dataplane implements this protocol; nothing here reaches
//! into the dataplane.
#![deny(unsafe_code)]

pub mod agent;
pub mod client;
pub mod cluster;
pub mod cni;
pub mod codec;
pub mod error;
pub mod flow;
pub mod flow_syntax;
#[doc(hidden)]
pub mod fuzzing;
pub mod openflow;
pub mod proto;

pub use error::Error;

/// Where vxswitchd listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/vxswitch/vxswitchd.sock";
