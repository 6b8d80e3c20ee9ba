//! A dedicated thread that runs jobs inside other network namespaces.
//!
//! `setns(CLONE_NEWNET)` changes the namespace of the calling thread only, so namespace
//! switching happens here and never on a worker or a runtime thread. Child processes spawned by
//! a job (`ip ...`) inherit the namespace the job runs in.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread;

use crossbeam_channel::{bounded, unbounded, Sender};

use super::sys::cvt;

type Job = Box<dyn FnOnce() + Send>;

/// Where a namespace name points: a name under /run/netns, or an absolute path.
pub fn netns_path(netns: &str) -> PathBuf {
    if netns.starts_with('/') {
        PathBuf::from(netns)
    } else {
        Path::new("/run/netns").join(netns)
    }
}

fn setns(file: &File) -> io::Result<()> {
    // SAFETY: `file` is an open namespace file; setns only reads the descriptor.
    cvt(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}

/// Handle to the namespace thread.
#[derive(Clone)]
pub struct NetnsThread {
    tx: Sender<(Option<PathBuf>, Job)>,
}

impl NetnsThread {
    /// Starts the thread in the caller's current namespace, which it returns to after each job.
    pub fn start() -> io::Result<NetnsThread> {
        let home = File::open("/proc/thread-self/ns/net")?;
        let (tx, rx) = unbounded::<(Option<PathBuf>, Job)>();
        thread::Builder::new()
            .name("vx-netns".into())
            .spawn(move || {
                for (ns, job) in rx {
                    match ns {
                        None => job(),
                        Some(path) => {
                            // The job itself reports the error when entering fails: we run a
                            // closure that just drops the job.
                            let entered = File::open(&path).and_then(|f| setns(&f));
                            if entered.is_ok() {
                                job();
                                if let Err(e) = setns(&home) {
                                    // Without its home namespace the thread cannot serve anyone.
                                    eprintln!(
                                        "vxswitchd: cannot return to the node namespace: {e}"
                                    );
                                    std::process::abort();
                                }
                            } else {
                                drop(job);
                            }
                        }
                    }
                }
            })?;
        Ok(NetnsThread { tx })
    }

    /// Runs `f` inside namespace `netns` (None: the node's own) and returns its result.
    pub fn run<T, F>(&self, netns: Option<&Path>, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        if let Some(p) = netns {
            if !p.exists() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("network namespace {} does not exist", p.display()),
                ));
            }
        }
        let (rtx, rrx) = bounded(1);
        let job: Job = Box::new(move || {
            let _ = rtx.send(f());
        });
        self.tx
            .send((netns.map(Path::to_path_buf), job))
            .map_err(|_| io::Error::other("namespace thread is gone"))?;
        match rrx.recv() {
            Ok(r) => r,
            Err(_) => Err(io::Error::other(format!(
                "cannot enter network namespace {}",
                netns.map(|p| p.display().to_string()).unwrap_or_default()
            ))),
        }
    }
}

/// Runs a command (e.g. `ip`) in the calling thread's namespace, turning failure into an error
/// that carries the command line and its stderr.
pub fn run_cmd(program: &str, args: &[&str]) -> io::Result<()> {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {program}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
