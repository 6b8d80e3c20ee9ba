//! vxagent: reads the node's desired state from a TOML file and reconciles vxswitchd with it.
//!
//! The pure parts — [`config`] (file → validated [`AgentConfig`] or `FILE:LINE: reason`),
//! [`diff`] (desired + daemon state → one batch of [`crate::proto::Change`]s) and [`flows`]
//! (desired agent flows + the switch's flows → one bundle of [`crate::proto::FlowMod`]s) — do
//! no I/O. [`reconcile()`] pushes the batch, then the flow bundle, through a
//! [`crate::client::Client`]; [`run`] is the loop that watches the file, polls vxswitchd and
//! reconnects when it restarts.
//!
//! In cluster mode ([`run::Options::cluster`], `vxagent --etcd`), [`crate::cluster`] leases
//! the node's subnet from etcd in flannel's layout and watches the other nodes' leases; the
//! desired state is then the file (identity, pods, static nodes) with the leased subnet, the
//! network's VNI and cluster network, and one remote node per other lease
//! ([`run::cluster_config`]). `[node] subnet` becomes optional there.
//!
//! The agent owns exactly the objects its file declares ([`crate::proto::Owner::Agent`]) and
//! the flows with cookie [`crate::proto::AGENT_COOKIE`]; what an administrator created with
//! vxctl (objects, flows with any other cookie) is never deleted or replaced.
//!
//! ```toml
//! [node]
//! name = "n1"
//! vtep = "198.51.100.1"
//! vtep_mac = "02:f1:00:00:00:01"
//! subnet = "10.1.1.0/24"
//! gateway = "10.1.1.1"             # optional, default first host of subnet
//! vni = 1                          # optional, default 1
//! cluster_network = "10.1.0.0/16"  # optional
//! underlay_mtu = 1500              # optional
//! multitenant = false              # optional: true installs OpenShift-SDN-style flows
//!
//! [[pods]]
//! name = "n1p1"
//! netns = "lab-n1p1"
//! mac = "0a:58:0a:01:01:02"
//! ip = "10.1.1.2"
//! vnid = 10                        # optional, default the node's vni
//! ifname = "eth0"                  # optional
//! mtu = 1450                       # optional, default the node's pod MTU
//!
//! [[nodes]]
//! name = "n2"
//! vtep = "198.51.100.2"
//! vtep_mac = "02:f1:00:00:00:02"
//! subnet = "10.1.2.0/24"
//! ```

pub mod config;
pub mod diff;
pub mod flows;
pub mod reconcile;
pub mod run;
pub mod signals;

pub use config::{AgentConfig, ConfigError};
pub use diff::{plan, Plan};
pub use reconcile::{reconcile, Outcome, Reconciler};

#[cfg(test)]
mod tests;
