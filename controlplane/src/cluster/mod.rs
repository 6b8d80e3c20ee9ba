//! Cluster mode: node subnets leased from etcd in flannel's key layout, watched and pushed to
//! vxswitchd.
//!
//! The pure parts — [`network`] (`<prefix>/config`), [`lease`] (`<prefix>/subnets/KEY` and its
//! JSON, the free-subnet pick) and [`subnet_env`] (flannel's `subnet.env`) — do no I/O.
//! [`registry`] speaks to etcd (the `etcd-client` crate, on a tokio runtime of its own thread):
//! it acquires this node's lease in a transaction, keeps it alive, watches the other leases and
//! keeps a [`View`] of them that the agent's loop reads whenever it is woken.
//!
//! Losing etcd never empties the view: vxswitchd keeps forwarding with the last known nodes,
//! and the watch resumes from the last revision it saw (or the leases are listed again when
//! etcd has compacted that revision away).

pub mod lease;
pub mod network;
pub mod registry;
pub mod subnet_env;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use lease::{Lease, LeaseAttrs, SubnetKey};
pub use network::NetworkConfig;

use crate::proto::{Ipv4Cidr, Ipv6Cidr, MacAddr};

/// flannel's default key prefix.
pub const DEFAULT_PREFIX: &str = "/coreos.com/network";
/// flannel's default subnet file.
pub const DEFAULT_SUBNET_FILE: &str = "/run/flannel/subnet.env";
/// flannel's subnet lease TTL (24 h).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(86_400);

/// How to reach etcd and what to lease.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub endpoints: Vec<String>,
    /// Key prefix, `/coreos.com/network` by default (no trailing slash).
    pub prefix: String,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Where subnet.env is written.
    pub subnet_file: PathBuf,
    /// Remembers the leased subnet across restarts (subnet.env's format).
    pub subnet_lease_file: Option<PathBuf>,
    pub lease_ttl: Duration,
    /// This node's `PublicIP` (its VTEP address).
    pub public_ip: Ipv4Addr,
    pub vtep_mac: MacAddr,
    /// The subnet the agent file asks for, if any.
    pub requested: Option<Ipv4Cidr>,
    /// The IPv6 prefix the agent file asks for, if any (networks with IPv6).
    pub requested6: Option<Ipv6Cidr>,
    /// For FLANNEL_MTU: the pods' MTU is this minus the VXLAN overhead.
    pub underlay_mtu: u16,
}

impl ClusterOptions {
    /// Checks the endpoints and TLS files before anything connects.
    pub fn validate(&self) -> Result<(), String> {
        if self.endpoints.is_empty() {
            return Err("--etcd: no endpoint given (e.g. --etcd http://127.0.0.1:2379)".into());
        }
        for e in &self.endpoints {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            let ok = rest.is_some_and(|r| {
                let hostport = r.trim_end_matches('/');
                !hostport.is_empty() && !hostport.contains('/') && hostport.contains(':')
            });
            if !ok {
                return Err(format!(
                    "--etcd: bad endpoint {e:?}: expected http://HOST:PORT or https://HOST:PORT \
                     (several separated by commas)"
                ));
            }
        }
        let https = self.endpoints.iter().any(|e| e.starts_with("https://"));
        if https && self.ca_file.is_none() {
            return Err(
                "--etcd: https endpoints need --etcd-cafile (the CA that signed etcd's certificate)"
                    .into(),
            );
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("--etcd-certfile and --etcd-keyfile go together".into());
        }
        for (flag, f) in [
            ("--etcd-cafile", &self.ca_file),
            ("--etcd-certfile", &self.cert_file),
            ("--etcd-keyfile", &self.key_file),
        ] {
            if let Some(f) = f {
                if let Err(e) = std::fs::metadata(f) {
                    return Err(format!("{flag} {}: {e}", f.display()));
                }
            }
        }
        let ttl = self.lease_ttl.as_secs();
        if !(2..=i64::MAX as u64).contains(&ttl) {
            return Err("--lease-ttl: at least 2 seconds".into());
        }
        if self.prefix.is_empty() || !self.prefix.starts_with('/') {
            return Err(format!(
                "--etcd-prefix {:?}: a key path starting with '/', e.g. {DEFAULT_PREFIX}",
                self.prefix
            ));
        }
        Ok(())
    }

    pub(crate) fn config_key(&self) -> String {
        format!("{}/config", self.prefix.trim_end_matches('/'))
    }

    pub(crate) fn subnets_prefix(&self) -> String {
        format!("{}/subnets/", self.prefix.trim_end_matches('/'))
    }
}

/// What the agent knows of the cluster: the network config, its own lease, and every other
/// node's lease. Only ever replaced by fresher knowledge from etcd, never emptied because etcd
/// is unreachable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub network: Option<NetworkConfig>,
    /// This node's lease.
    pub own: Option<SubnetKey>,
    /// The other nodes' leases, by key (this node's own excluded).
    pub leases: BTreeMap<SubnetKey, Lease>,
    /// The leases were listed at least once: `leases` is complete.
    pub listed: bool,
    /// The etcd revision the view reflects.
    pub revision: i64,
    /// Counts the changes: a reader compares it to know whether anything changed.
    pub generation: u64,
}

/// The running cluster client: a thread with a tokio runtime that talks to etcd.
pub struct Cluster {
    view: Arc<Mutex<View>>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl Cluster {
    /// Starts talking to etcd; `wake` is called after each change of the [`View`].
    pub fn start(
        opts: ClusterOptions,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Cluster> {
        let view = Arc::new(Mutex::new(View::default()));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let shared = Arc::clone(&view);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("vxagent-etcd".into())
            .spawn(move || {
                rt.block_on(registry::run(opts, shared, Box::new(wake), stop_rx));
            })?;
        Ok(Cluster {
            view,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The view's change counter (cheap: no copy).
    pub fn generation(&self) -> u64 {
        match self.view.lock() {
            Ok(v) => v.generation,
            Err(poisoned) => poisoned.into_inner().generation,
        }
    }

    /// A copy of the current view.
    pub fn view(&self) -> View {
        match self.view.lock() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Drop for Cluster {
    /// Stops the etcd thread; the lease is left to expire (a restarted agent takes it back).
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes one log line to stderr.
pub(crate) fn log(msg: impl AsRef<str>) {
    eprintln!("vxagent: {}", msg.as_ref());
}

#[cfg(test)]
mod tests;
