//! Child processes with bounded waits that also end on Ctrl-C, and the CPU time of processes.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{sys, BenchError};
use crate::lab;

/// How often waits look at the child and at the interrupt flag.
const POLL: Duration = Duration::from_millis(10);

/// A program that ran to the end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Ok with stdout if it exited 0, else an error with its stderr (or the end of stdout).
    pub fn ok(self, cmdline: &str) -> Result<String, BenchError> {
        if self.status.success() {
            return Ok(self.stdout);
        }
        let said = if self.stderr.trim().is_empty() {
            last_lines(&self.stdout, 3)
        } else {
            last_lines(&self.stderr, 3)
        };
        Err(BenchError::Command {
            cmdline: cmdline.to_string(),
            reason: format!("failed ({}): {}", self.status, said.trim()),
        })
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// The command as a shell would show it.
pub fn cmdline(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A child process whose stdout arrives line by line and whose stderr is collected. Dropping
/// it kills the child (our own, by its PID) and reaps it.
pub struct Background {
    child: Option<Child>,
    cmdline: String,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Background {
    pub fn spawn(cmd: &mut Command) -> Result<Background, BenchError> {
        let cmdline = cmdline(cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::Command {
                cmdline: cmdline.clone(),
                reason: format!("cannot start: {e} (is it installed?)"),
            })?;
        let out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Ok(Background {
            child: Some(child),
            cmdline,
            lines,
            stdout: Vec::new(),
            stderr: Some(stderr),
        })
    }

    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// Waits until the child prints a line for which `want` holds, and returns it.
    pub fn wait_line(
        &mut self,
        want: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> Result<String, BenchError> {
        let deadline = Instant::now() + limit;
        loop {
            if sys::interrupted() {
                return Err(BenchError::Interrupted);
            }
            match self.lines.recv_timeout(POLL) {
                Ok(line) => {
                    let hit = want(&line);
                    self.stdout.push(line.clone());
                    if hit {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let f = self.finish(Duration::from_secs(1))?;
                    return Err(BenchError::Command {
                        cmdline: self.cmdline.clone(),
                        reason: format!(
                            "exited ({}) before it was ready: {}",
                            f.status,
                            last_lines(&f.stderr, 3)
                        ),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Command {
                    cmdline: self.cmdline.clone(),
                    reason: format!("not ready after {} s", limit.as_secs_f64()),
                });
            }
        }
    }

    /// Waits for the child to exit, at most `limit` (then kills it and fails), and returns
    /// everything it printed.
    pub fn finish(&mut self, limit: Duration) -> Result<Finished, BenchError> {
        let deadline = Instant::now() + limit;
        let Some(child) = self.child.as_mut() else {
            return Err(BenchError::Command {
                cmdline: self.cmdline.clone(),
                reason: "already finished".into(),
            });
        };
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| BenchError::Command {
                cmdline: self.cmdline.clone(),
                reason: format!("cannot wait for it: {e}"),
            })? {
                break status;
            }
            if sys::interrupted() {
                self.kill();
                return Err(BenchError::Interrupted);
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(BenchError::Command {
                    cmdline: self.cmdline.clone(),
                    reason: format!("still running after {} s; killed", limit.as_secs_f64()),
                });
            }
            thread::sleep(POLL);
        };
        self.child = None;
        // The pipes close when the child exits (unless it left a grandchild holding them).
        let drain = Instant::now() + Duration::from_secs(1);
        while let Ok(line) = self
            .lines
            .recv_timeout(drain.saturating_duration_since(Instant::now()))
        {
            self.stdout.push(line);
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let mut stdout = self.stdout.join("\n");
        stdout.push('\n');
        Ok(Finished {
            status,
            stdout,
            stderr,
        })
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a command to completion, for at most `limit` (then it is killed) or until Ctrl-C.
pub fn run(cmd: &mut Command, limit: Duration) -> Result<Finished, BenchError> {
    Background::spawn(cmd)?.finish(limit)
}

/// `ip netns exec NS PROGRAM`.
pub fn in_netns(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

/// Waits until something listens on TCP `port` in namespace `ns` (polling `ss`).
pub fn wait_listening(ns: &str, port: u16, limit: Duration) -> Result<(), BenchError> {
    let deadline = Instant::now() + limit;
    loop {
        let mut ss = in_netns(ns, "ss");
        ss.args(["-Hltn", &format!("sport = :{port}")]);
        let out = run(&mut ss, Duration::from_secs(5))?;
        if out.status.success() && !out.stdout.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Bad(format!(
                "nothing listens on TCP port {port} in {ns} after {} s",
                limit.as_secs_f64()
            )));
        }
        if sys::interrupted() {
            return Err(BenchError::Interrupted);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// CPU seconds (user + system, all threads) the processes have used so far, from
/// /proc/PID/stat; None if there are none or one has gone.
pub fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    let ticks = sys::clock_ticks();
    let mut total = 0.0;
    for &pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        total += stat_cpu_ticks(&stat)? as f64 / ticks;
    }
    Some(total)
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line, in clock ticks.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name, in parentheses, may hold spaces and ')'; fields count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field N is f[N - 3].
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The PIDs of the lab's userspace switch processes (vxswitchd, ovs-vswitchd) as recorded.
pub fn switch_pids(lab: &lab::Lab) -> Vec<u32> {
    lab.switch_processes().into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_user_plus_system_ticks() {
        let line = "4242 (ovs-vswitchd) S 1 4242 4242 0 -1 4194560 5000 0 0 0 150 70 0 0 20 0 6 0";
        assert_eq!(stat_cpu_ticks(line), Some(220));
        let odd = "7 (a) b) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0";
        assert_eq!(stat_cpu_ticks(odd), Some(7));
        assert_eq!(stat_cpu_ticks("garbage"), None);
        assert!(cpu_seconds(&[std::process::id()]).is_some());
        assert_eq!(cpu_seconds(&[]), None);
    }

    #[test]
    fn bounded_runs_end_and_report() {
        let out = run(
            Command::new("sh").args(["-c", "echo hi; echo oops >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.stdout, "hi\n");
        assert!(out.stderr.contains("oops"));
        let e = out.ok("sh").unwrap_err().to_string();
        assert!(e.contains("oops"), "{e}");
        let t = Instant::now();
        let e = run(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert!(e.to_string().contains("killed"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
        let mut bg =
            Background::spawn(Command::new("sh").args(["-c", "echo ready; exec sleep 30"]))
                .unwrap();
        assert_eq!(
            bg.wait_line(|l| l == "ready", Duration::from_secs(5))
                .unwrap(),
            "ready"
        );
        drop(bg);
    }
}
