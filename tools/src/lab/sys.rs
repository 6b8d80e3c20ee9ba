//! The lab's only system calls: sending a signal to a process, and reading /proc.
#![allow(unsafe_code)]

use std::io;
use std::time::{Duration, Instant};

/// The signals vxlab sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

/// Sends a signal to one process. Refuses pid 0, 1 and our own pid, which a bad state file
/// must never make us signal.
pub fn signal(pid: u32, sig: Signal) -> io::Result<()> {
    if pid <= 1 || pid == std::process::id() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal pid {pid}"),
        ));
    }
    let pid = libc::pid_t::try_from(pid).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("pid {pid} out of range"),
        )
    })?;
    let sig = match sig {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; pid is positive, so
    // it addresses exactly one process, never a process group.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True while any thread of the process is still running. A killed multi-threaded process
/// shows its leader as a zombie while other threads are still exiting and holding its files
/// (its listening socket, its TAPs), so every thread is looked at, not just the leader.
pub fn alive(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .flatten()
        .any(|t| std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| running(&stat)))
}

/// Whether a `/proc/.../stat` line shows a task that has not exited (not zombie, not dead).
fn running(stat: &str) -> bool {
    // The state follows the parenthesised command name, which may itself hold ") ".
    match stat.rfind(')') {
        Some(i) => !matches!(
            stat[i + 1..].trim_start().chars().next(),
            Some('Z' | 'X' | 'x')
        ),
        None => false,
    }
}

/// The command name of a process (`/proc/PID/comm`, at most 15 bytes).
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// The parent of a process (from `/proc/PID/stat`).
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let i = stat.rfind(')')?;
    stat[i + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// True if we run with effective user id 0 (from `/proc/self/status`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Waits until none of `pids` is alive, polling every 20 ms, for at most `limit`. Returns the
/// ones still alive.
pub fn wait_gone(pids: &[u32], limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_a_child_and_sees_it_go() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(alive(pid));
        assert_eq!(comm(pid).as_deref(), Some("sleep"));
        assert_eq!(ppid(pid), Some(std::process::id()));
        signal(pid, Signal::Term).unwrap();
        child.wait().unwrap();
        assert!(!alive(pid));
        assert!(wait_gone(&[pid], Duration::from_millis(100)).is_empty());
    }

    #[test]
    fn stat_lines_tell_running_from_exited() {
        assert!(running("42 (vxswitchd) S 1 42 42 0"));
        assert!(running("42 (a) (b)) R 1"));
        assert!(!running("42 (vxswitchd) Z 1 42"));
        assert!(!running("42 (x) X 1"));
        assert!(!running("garbage"));
    }

    #[test]
    fn refuses_init_and_itself() {
        assert!(signal(0, Signal::Term).is_err());
        assert!(signal(1, Signal::Kill).is_err());
        assert!(signal(std::process::id(), Signal::Kill).is_err());
        assert!(alive(std::process::id()));
    }
}
