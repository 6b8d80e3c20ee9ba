//! The agent's loop: watch the file, poll vxswitchd, push differences, survive restarts.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::cluster::{Cluster, ClusterOptions, View};
use crate::Error;

use super::config::{self, AgentConfig, Fingerprint, Leased};
use super::reconcile::{Outcome, Reconciler};
use super::signals::Event;

/// First delay before reconnecting to vxswitchd; doubled up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Longest wait before re-sending a batch vxswitchd refused (the wait starts at the interval
/// and doubles), so a batch that cannot apply yet does not flood vxswitchd's log.
pub const REFUSED_RETRY_MAX: Duration = Duration::from_secs(30);

/// Name the agent gives itself in vxswitchd's log.
pub const CLIENT_NAME: &str = "vxagent";

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub socket: PathBuf,
    pub config: PathBuf,
    /// How often the file is re-checked and vxswitchd polled.
    pub interval: Duration,
    /// Cluster mode (`--etcd`): node subnets leased from etcd. The file-derived fields
    /// (`public_ip` unless `--public-ip`, `vtep_mac`, `requested`, `underlay_mtu`) are filled
    /// in from the file's `[node]` by [`run`].
    pub cluster: Option<ClusterOptions>,
    /// `--public-ip`: this node's PublicIP in its lease (default: the file's vtep).
    pub public_ip: Option<Ipv4Addr>,
}

/// Writes one log line to stderr.
pub fn log(msg: impl AsRef<str>) {
    eprintln!("vxagent: {}", msg.as_ref());
}

/// Logs a message unless it is the same as the last one of its kind (a daemon that stays down,
/// a file that stays broken, a batch that stays refused: one line each, not one per interval).
#[derive(Debug, Default)]
struct Quiet(Option<String>);

impl Quiet {
    fn log(&mut self, msg: String) {
        if self.0.as_deref() != Some(msg.as_str()) {
            log(&msg);
            self.0 = Some(msg);
        }
    }
    fn clear(&mut self) {
        self.0 = None;
    }
}

/// Reads and validates the file; a bad file becomes [`Error::Config`] (`FILE:LINE: reason`).
pub fn load(path: &Path) -> Result<(AgentConfig, Fingerprint), Error> {
    config::load(path).map_err(|e| Error::Config(e.to_string()))
}

/// `--once`: loads the file, reconciles once, logs the push.
pub fn once(opts: &Options) -> Result<Outcome, Error> {
    let (desired, _) = load(&opts.config)?;
    let mut client = Client::connect(&opts.socket, CLIENT_NAME)?;
    let out = Reconciler::new().reconcile(&mut client, &desired)?;
    report(&out, None);
    Ok(out)
}

fn report(out: &Outcome, conflicts: Option<&mut Vec<String>>) {
    let fresh: Vec<&String> = match conflicts {
        Some(seen) if *seen == out.conflicts => Vec::new(),
        Some(seen) => {
            let fresh = out.conflicts.iter().filter(|c| !seen.contains(c)).collect();
            seen.clone_from(&out.conflicts);
            fresh
        }
        None => out.conflicts.iter().collect(),
    };
    for c in fresh {
        log(format!("conflict: {c}"));
    }
    let objects = out.pushed - out.flow_changes;
    if objects > 0 {
        log(format!(
            "pushed {objects} changes, table version {}",
            out.objects_version
        ));
    }
    if out.flow_changes > 0 {
        log(format!(
            "pushed {} flow changes, table version {}",
            out.flow_changes, out.version
        ));
    }
}

/// Cluster mode's identity check: the file's `[node]` read, the lease's fields filled in.
pub fn cluster_options(opts: &Options) -> Result<Option<ClusterOptions>, Error> {
    let Some(base) = &opts.cluster else {
        return Ok(None);
    };
    let (text, _) = config::read(&opts.config).map_err(|e| Error::Config(e.to_string()))?;
    let file = opts.config.display().to_string();
    let id = config::identity(&file, &text).map_err(|e| Error::Config(e.to_string()))?;
    let public_ip = match (opts.public_ip, id.vtep) {
        (Some(ip), _) => ip,
        (None, IpAddr::V4(ip)) => ip,
        (None, IpAddr::V6(ip)) => {
            return Err(Error::Config(format!(
                "{file}: [node] vtep {ip} is IPv6, but a flannel lease's PublicIP is IPv4: \
                 give --public-ip"
            )))
        }
    };
    let mut c = base.clone();
    c.public_ip = public_ip;
    c.vtep_mac = id.vtep_mac;
    c.requested = id.subnet;
    c.requested6 = id.subnet6;
    c.underlay_mtu = id.underlay_mtu;
    c.validate().map_err(Error::Config)?;
    Ok(Some(c))
}

/// Runs until SIGTERM/SIGINT (`Event::Stop`). Fails only if the file is bad at start; later a
/// bad file is logged and the previous configuration kept, and a lost vxswitchd is waited for.
/// In cluster mode ([`Options::cluster`]) the node's subnet and the other nodes come from etcd.
pub fn run(opts: &Options, events: Receiver<Event>) -> Result<(), Error> {
    // The loop waits on one channel: the signals, forwarded, and cluster mode's wake-ups.
    let (tx, rx) = mpsc::channel::<Msg>();
    let wake = tx.clone();
    let cluster_opts = cluster_options(opts)?;
    let (text, fingerprint) =
        config::read(&opts.config).map_err(|e| Error::Config(e.to_string()))?;
    let desired = match &cluster_opts {
        None => Some(
            config::parse(&opts.config.display().to_string(), &text)
                .map_err(|e| Error::Config(e.to_string()))?,
        ),
        Some(_) => None,
    };
    let cluster = match cluster_opts {
        None => None,
        Some(c) => {
            log(format!(
                "cluster mode: etcd {}, prefix {}, PublicIP {}",
                c.endpoints.join(","),
                c.prefix,
                c.public_ip
            ));
            let wake = move || {
                let _ = wake.send(Msg::Cluster);
            };
            Some(Cluster::start(c, wake).map_err(Error::Io)?)
        }
    };
    let mut agent = Agent {
        opts,
        desired,
        text,
        cluster,
        generation: 0,
        lease_msg: Quiet::default(),
        skipped: HashSet::new(),
        fingerprint,
        client: None,
        reconciler: Reconciler::new(),
        backoff: BACKOFF_MIN,
        conn_msg: Quiet::default(),
        file_msg: Quiet::default(),
        push_msg: Quiet::default(),
        conflicts: Vec::new(),
        lost: false,
        retry_at: None,
        retry_delay: Duration::ZERO,
    };
    // Ends after forwarding Stop (the loop's only way out) or when the signals end.
    thread::Builder::new()
        .name("vxagent-events".into())
        .spawn(move || {
            while let Ok(ev) = events.recv() {
                let stop = ev == Event::Stop;
                if tx.send(Msg::Signal(ev)).is_err() || stop {
                    break;
                }
            }
        })
        .map_err(Error::Io)?;
    agent.run(&rx);
    Ok(())
}

/// What wakes the loop.
enum Msg {
    Signal(Event),
    /// Cluster mode: the view of etcd changed.
    Cluster,
}

struct Agent<'a> {
    opts: &'a Options,
    /// What vxswitchd should hold; None in cluster mode until a subnet is leased and the
    /// leases listed (nothing is pushed before).
    desired: Option<AgentConfig>,
    /// The file's text as last read.
    text: String,
    cluster: Option<Cluster>,
    /// The cluster view's generation `desired` was built from.
    generation: u64,
    lease_msg: Quiet,
    /// Leases already reported as not usable here.
    skipped: HashSet<String>,
    fingerprint: Fingerprint,
    client: Option<Client>,
    reconciler: Reconciler,
    backoff: Duration,
    conn_msg: Quiet,
    file_msg: Quiet,
    push_msg: Quiet,
    conflicts: Vec<String>,
    /// The connection was lost: wait a backoff before reconnecting.
    lost: bool,
    /// After a refused batch: do not push again before this (only poll).
    retry_at: Option<Instant>,
    retry_delay: Duration,
}

enum Wake {
    Tick,
    Reload,
    Stop,
}

fn wait(events: &Receiver<Msg>, d: Duration) -> Wake {
    match events.recv_timeout(d) {
        Ok(Msg::Signal(Event::Reload)) => Wake::Reload,
        Ok(Msg::Signal(Event::Stop)) => Wake::Stop,
        // A burst of etcd changes wakes the loop once: the view holds them all.
        Ok(Msg::Cluster) => loop {
            match events.try_recv() {
                Ok(Msg::Cluster) => continue,
                Ok(Msg::Signal(Event::Reload)) => break Wake::Reload,
                Ok(Msg::Signal(Event::Stop)) => break Wake::Stop,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break Wake::Tick,
            }
        },
        Err(RecvTimeoutError::Timeout) => Wake::Tick,
        Err(RecvTimeoutError::Disconnected) => {
            thread::sleep(d);
            Wake::Tick
        }
    }
}

impl Agent<'_> {
    fn run(&mut self, events: &Receiver<Msg>) {
        loop {
            if self.client.is_none() {
                if self.lost {
                    let d = self.backoff;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    match wait(events, d) {
                        Wake::Stop => return,
                        Wake::Reload => self.reload(true),
                        Wake::Tick => {}
                    }
                }
                match Client::connect(&self.opts.socket, CLIENT_NAME) {
                    Ok(c) => {
                        self.conn_msg.clear();
                        log(format!(
                            "connected to {} (protocol {}) at {}",
                            c.server,
                            c.server_version,
                            self.opts.socket.display()
                        ));
                        self.client = Some(c);
                        self.reconciler.reset();
                        self.retry_at = None;
                        self.push_msg.clear();
                        self.conflicts.clear();
                        // The file may have changed while vxswitchd was away.
                        self.reload(false);
                    }
                    Err(e) => {
                        self.conn_msg.log(format!("{e}; retrying"));
                        self.lost = true;
                        continue;
                    }
                }
            }
            self.sync();
            if self.client.is_none() {
                continue;
            }
            match wait(events, self.opts.interval) {
                Wake::Stop => return,
                Wake::Reload => self.reload(true),
                Wake::Tick => self.reload(false),
            }
        }
    }

    /// One reconcile on the current connection; a connection failure drops it.
    fn sync(&mut self) {
        self.refresh_cluster();
        let Some(desired) = self.desired.as_ref() else {
            return;
        };
        let Some(client) = self.client.as_mut() else {
            return;
        };
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            // Waiting to re-send a refused batch: only check that vxswitchd is still there.
            if let Err(e) = client.state() {
                self.lose(e);
            }
            return;
        }
        match self.reconciler.reconcile(client, desired) {
            Ok(out) => {
                self.retry_at = None;
                self.retry_delay = Duration::ZERO;
                self.lost = false;
                self.backoff = BACKOFF_MIN;
                report(&out, Some(&mut self.conflicts));
                if out.stuck {
                    self.push_msg.log(format!(
                        "vxswitchd still differs from {} right after a push (table version {}); \
                         not pushing the same changes again until the file or vxswitchd changes",
                        self.opts.config.display(),
                        out.version
                    ));
                } else {
                    self.push_msg.clear();
                }
            }
            Err(e @ Error::Refused { .. }) => {
                let d = (self.retry_delay * 2).clamp(self.opts.interval, REFUSED_RETRY_MAX);
                self.retry_delay = d;
                self.retry_at = Some(Instant::now() + d);
                self.push_msg.log(format!(
                    "{e}; retrying with backoff (at most every {}s) and on every file change",
                    REFUSED_RETRY_MAX.as_secs()
                ));
            }
            Err(e) => self.lose(e),
        }
    }

    fn lose(&mut self, e: Error) {
        log(format!("lost vxswitchd: {e}; reconnecting"));
        self.client = None;
        self.lost = true;
    }

    /// Re-reads the file if it changed (or unconditionally on SIGHUP); keeps the previous
    /// configuration when the new one is bad.
    fn reload(&mut self, forced: bool) {
        let path = &self.opts.config;
        let keep = "keeping the previous configuration, nothing pushed";
        let (text, fp) = match config::read(path) {
            Ok(r) => r,
            Err(e) => {
                if forced {
                    self.file_msg.clear();
                }
                self.file_msg.log(format!("{e}; {keep}"));
                return;
            }
        };
        if !forced && fp == self.fingerprint {
            return;
        }
        self.fingerprint = fp;
        self.text = text;
        if self.cluster.is_some() {
            self.generation = u64::MAX; // rebuild from the new text
            self.refresh_cluster();
            return;
        }
        match config::parse(&path.display().to_string(), &self.text) {
            Ok(cfg) => {
                self.file_msg.clear();
                if Some(&cfg) != self.desired.as_ref() {
                    log(format!("reloaded {}", path.display()));
                    self.desired = Some(cfg);
                    self.reconciler.reset();
                    self.retry_at = None;
                    self.retry_delay = Duration::ZERO;
                } else if forced {
                    log(format!("reloaded {} (no changes)", path.display()));
                }
            }
            Err(e) => {
                let msg = format!("{e} ({keep})");
                if forced {
                    self.file_msg.clear();
                }
                self.file_msg.log(msg);
            }
        }
    }
}

impl Agent<'_> {
    /// Cluster mode: rebuilds `desired` when the etcd view (or the file) changed. The file
    /// gives the pods, static nodes and the node's identity; etcd gives the node's subnet, VNI
    /// and cluster network, and the other nodes (every lease but ours).
    fn refresh_cluster(&mut self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let generation = cluster.generation();
        if generation == self.generation {
            return;
        }
        let view = cluster.view();
        self.generation = view.generation;
        let file = self.opts.config.display().to_string();
        let Some(cfg) = cluster_config(&file, &self.text, &view, &mut self.skipped) else {
            return;
        };
        match cfg {
            Ok(cfg) => {
                self.file_msg.clear();
                self.lease_msg.clear();
                if Some(&cfg) != self.desired.as_ref() {
                    self.desired = Some(cfg);
                    self.reconciler.reset();
                    self.retry_at = None;
                    self.retry_delay = Duration::ZERO;
                }
            }
            Err(e) => self.lease_msg.log(format!(
                "{e} (with the leased subnet); keeping the previous configuration, nothing pushed"
            )),
        }
    }
}

/// The desired state in cluster mode from the file's text and the etcd view; None until the
/// view holds a network config, our lease and a full listing.
pub fn cluster_config(
    file: &str,
    text: &str,
    view: &View,
    skipped: &mut HashSet<String>,
) -> Option<Result<AgentConfig, config::ConfigError>> {
    let net = view.network.as_ref()?;
    let own = view.own?;
    if !view.listed {
        return None;
    }
    let leased = Leased {
        subnet: own.subnet,
        subnet6: own.subnet6,
        vni: net.backend.vni,
        cluster_network: net.network,
    };
    let mut cfg = match config::parse_with(file, text, Some(&leased)) {
        Ok(cfg) => cfg,
        Err(e) => return Some(Err(e)),
    };
    let local = cfg.local.clone();
    let mut names: HashSet<String> = cfg.nodes.iter().map(|n| n.name.clone()).collect();
    // vxswitchd refuses two nodes with one VTEP: the first lease (in key order) wins.
    let mut vteps: HashSet<IpAddr> = cfg.nodes.iter().map(|n| n.vtep).collect();
    let statics = cfg.nodes.clone();
    for l in view.leases.values() {
        let key = l.key.to_key();
        let node = match l.to_remote() {
            Ok(n) => n,
            Err(e) => {
                if skipped.insert(format!("{key}: {e}")) {
                    log(format!("ignoring lease {key}: {e}"));
                }
                continue;
            }
        };
        let why = if node.subnet.overlaps(&local.subnet) {
            Some(format!("its subnet overlaps this node's {}", local.subnet))
        } else if node.vtep == local.vtep {
            Some(format!("its PublicIP {} is this node's vtep", node.vtep))
        } else if node.vtep.is_ipv4() != local.vtep.is_ipv4() {
            Some("its PublicIP is not of this node's vtep family".to_string())
        } else if let Some(s) = statics.iter().find(|s| s.subnet.overlaps(&node.subnet)) {
            Some(format!(
                "its subnet overlaps static node {} in the file",
                s.name
            ))
        } else if !names.insert(node.name.clone()) {
            Some(format!("a node named {} is already declared", node.name))
        } else if !vteps.insert(node.vtep) {
            Some(format!("another node already has PublicIP {}", node.vtep))
        } else {
            None
        };
        if let Some(why) = why {
            if skipped.insert(format!("{key}: {why}")) {
                log(format!("ignoring lease {key}: {why}"));
            }
            continue;
        }
        cfg.nodes.push(node);
    }
    Some(Ok(cfg))
}
