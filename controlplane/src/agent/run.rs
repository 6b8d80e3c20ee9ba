//! The agent's loop: watch the file, poll vxswitchd, push differences, survive restarts.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::Error;

use super::config::{self, AgentConfig, Fingerprint};
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

/// Runs until SIGTERM/SIGINT (`Event::Stop`). Fails only if the file is bad at start; later a
/// bad file is logged and the previous configuration kept, and a lost vxswitchd is waited for.
pub fn run(opts: &Options, events: &Receiver<Event>) -> Result<(), Error> {
    let (desired, fingerprint) = load(&opts.config)?;
    let mut agent = Agent {
        opts,
        desired,
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
    agent.run(events);
    Ok(())
}

struct Agent<'a> {
    opts: &'a Options,
    desired: AgentConfig,
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

fn wait(events: &Receiver<Event>, d: Duration) -> Wake {
    match events.recv_timeout(d) {
        Ok(Event::Reload) => Wake::Reload,
        Ok(Event::Stop) => Wake::Stop,
        Err(RecvTimeoutError::Timeout) => Wake::Tick,
        Err(RecvTimeoutError::Disconnected) => {
            thread::sleep(d);
            Wake::Tick
        }
    }
}

impl Agent<'_> {
    fn run(&mut self, events: &Receiver<Event>) {
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
        match self.reconciler.reconcile(client, &self.desired) {
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
        match config::parse(&path.display().to_string(), &text) {
            Ok(cfg) => {
                self.file_msg.clear();
                if cfg != self.desired {
                    log(format!("reloaded {}", path.display()));
                    self.desired = cfg;
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
