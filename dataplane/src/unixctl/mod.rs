//! The unixctl socket OVS's `ovs-appctl` talks to (OVS `lib/unixctl.c`), served next to the
//! control socket so that an OVS admin's `ovs-appctl` commands work on vxswitch unchanged.
//!
//! With `--ovs-rundir DIR` vxswitchd writes `DIR/ovs-vswitchd.pid` (the pid and a newline,
//! held under a POSIX write lock as OVS holds its pidfiles: `ovs-appctl` believes the file only
//! while the lock is held) and listens on `DIR/ovs-vswitchd.PID.ctl`, which is where
//! `OVS_RUNDIR=DIR ovs-appctl ...` looks; `--unixctl PATH` listens on PATH (`ovs-appctl -t
//! PATH`). Both are removed at exit.
//!
//! - [`rpc`]: the JSON-RPC framing (messages back to back on the stream);
//! - [`commands`]: `version`, `exit`, `list-commands`, `ofproto/list`, `fdb/show`,
//!   `ofproto/trace`, `set-options`;
//! - [`trace`]: `ofproto/trace` in OVS's shape.
//!
//! Peers are checked as on the control socket (root, or the `--socket-group`); a refused
//! peer's first request is answered with an error that says why. A connection must send a
//! whole request within [`REQUEST_TIMEOUT`] of connecting or of its last reply, and read its
//! reply within [`REPLY_TIMEOUT`]; garbage closes the connection (OVS does the same: a message
//! that is not a request has no id to answer).

pub mod commands;
pub mod rpc;
pub mod trace;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::server::Access;
use crate::switch::Switch;
pub use commands::Context;

/// How long a request may take to arrive whole, from the connection or the last reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a reply may wait for its client to read it.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The program name OVS's tools look for.
pub const PROGRAM: &str = "ovs-vswitchd";

/// `DIR/ovs-vswitchd.pid`, written and locked; removed when dropped.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    /// Kept open: the lock lives as long as this descriptor.
    _file: std::fs::File,
}

impl Pidfile {
    /// Writes this process's pid to `DIR/ovs-vswitchd.pid` and locks it. Refuses when another
    /// live process holds the lock (another switch serves this directory).
    pub fn create(dir: &Path) -> Result<Pidfile, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(format!("{PROGRAM}.pid"));
        let tmp = dir.join(format!(".{PROGRAM}.pid.tmp{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        let written = crate::io::sys::lock_whole_file(&file)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("cannot write {}: {e}", tmp.display()));
        }
        if let Some(pid) = live_owner(&path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!(
                "{} belongs to process {pid}, which is running: another switch serves {} \
                 (stop it, or pass another --ovs-rundir)",
                path.display(),
                dir.display()
            ));
        }
        // The rename keeps the lock: it is on the file, not on its name.
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot create {}: {e}", path.display())
        })?;
        Ok(Pidfile { path, _file: file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `ovs-appctl` looks for this process's socket: `DIR/ovs-vswitchd.PID.ctl`.
    pub fn socket_path(dir: &Path) -> PathBuf {
        dir.join(format!("{PROGRAM}.{}.ctl", std::process::id()))
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The pid in an existing pidfile, when that process is alive (and is not this one).
fn live_owner(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    (pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()).then_some(pid)
}

/// Binds a unixctl socket (mode and owner as the control socket's).
pub fn bind(path: &Path, access: &Access) -> Result<UnixListener, String> {
    crate::server::bind(path, access).map_err(|e| e.replace("--socket", "--unixctl"))
}

/// Serves connections until the future is dropped; `exit` requests notify `exit`.
pub async fn serve(
    listener: UnixListener,
    switch: Arc<Mutex<Switch>>,
    access: Access,
    cx: Arc<Context>,
    exit: Arc<tokio::sync::Notify>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                eprintln!("vxswitchd: accepting unixctl connections fails: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let refused = crate::server::admit(&stream, &access).err();
        let (sw, cx, exit) = (switch.clone(), cx.clone(), exit.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, sw, &cx, &exit, refused).await {
                eprintln!("vxswitchd: unixctl connection closed: {e}");
            }
        });
    }
}

/// Serves one connection: requests in turn, each answered before the next is read.
async fn connection(
    mut stream: UnixStream,
    switch: Arc<Mutex<Switch>>,
    cx: &Context,
    exit: &tokio::sync::Notify,
    refused: Option<String>,
) -> Result<(), String> {
    let mut dec = rpc::Decoder::default();
    let mut chunk = [0u8; 4096];
    loop {
        let req = tokio::time::timeout(REQUEST_TIMEOUT, async {
            loop {
                match dec.next_request() {
                    Ok(Some(r)) => return Ok(Some(r)),
                    Ok(None) => {}
                    Err(e) => return Err(e.to_string()),
                }
                let n = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return if dec.pending() {
                        Err("the peer closed in the middle of a request".into())
                    } else {
                        Ok(None)
                    };
                }
                dec.push(&chunk[..n]);
            }
        })
        .await;
        let req = match req {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) if !dec.pending() => return Ok(()),
            Err(_) => {
                return Err(format!(
                    "no whole request within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ))
            }
        };
        if let Some(why) = &refused {
            eprintln!("vxswitchd: refused a unixctl connection: {why}");
            let bytes = rpc::reply_error(&req.id, why);
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bytes)).await;
            return Ok(());
        }
        let (result, after) = match req.params {
            Err(e) => (Err(e), commands::After::Nothing),
            Ok(args) => {
                let sw = switch.clone();
                let cx = cx.clone();
                let method = req.method.clone();
                tokio::task::spawn_blocking(move || {
                    let s = sw.lock().unwrap_or_else(|p| p.into_inner());
                    commands::run(&s, &cx, &method, &args)
                })
                .await
                .unwrap_or_else(|e| {
                    (
                        Err(format!("internal error: {e}")),
                        commands::After::Nothing,
                    )
                })
            }
        };
        let bytes = match &result {
            Ok(text) => rpc::reply_ok(&req.id, text),
            Err(text) => rpc::reply_error(&req.id, text),
        };
        match tokio::time::timeout(REPLY_TIMEOUT, stream.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("write: {e}")),
            Err(_) => {
                return Err(format!(
                    "the peer left its reply unread for {} s",
                    REPLY_TIMEOUT.as_secs()
                ))
            }
        }
        if after == commands::After::Exit {
            eprintln!("vxswitchd: exit requested over the unixctl socket");
            exit.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vxunixctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_pidfile_names_this_process_and_goes_with_it() {
        let d = dir("own");
        let p = Pidfile::create(&d).unwrap();
        let text = std::fs::read_to_string(p.path()).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        assert_eq!(
            Pidfile::socket_path(&d),
            d.join(format!("ovs-vswitchd.{}.ctl", std::process::id()))
        );
        let path = p.path().to_path_buf();
        drop(p);
        assert!(!path.exists(), "removed when dropped");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_live_owner_keeps_its_pidfile_and_a_dead_one_loses_it() {
        let d = dir("other");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("ovs-vswitchd.pid");
        // Process 1 is always alive.
        std::fs::write(&path, "1\n").unwrap();
        let e = Pidfile::create(&d).unwrap_err();
        assert!(e.contains("belongs to process 1, which is running"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n", "left alone");
        // A pid no process has (above the kernel's pid_max limit of 2^22).
        std::fs::write(&path, "4194305\n").unwrap();
        let p = Pidfile::create(&d).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(p);
        let _ = std::fs::remove_dir_all(&d);
    }
}
