//! The supervisor of a lab's daemons: `vxlab supervise --log LOG --pidfile FILE -- PROGRAM
//! ARGS...` runs PROGRAM and starts it again, with the same command line, whenever it exits,
//! until it is told to stop (SIGTERM or SIGINT, which it passes on to the daemon).
//!
//! - The first restart after a run of at least [`Policy::healthy`] comes after
//!   [`Policy::first_delay`]; a daemon that dies sooner again waits twice as long as the last
//!   time, up to [`Policy::max_delay`].
//! - At most [`Policy::burst`] restarts in any [`Policy::window`]; then the supervisor gives up.
//! - A daemon whose very first run exits with a failure status within [`Policy::healthy`] is
//!   not restarted (a bad command line does not get better): the supervisor exits with a
//!   failure, so `vxlab up` reports the daemon's death at once. Killed by a signal, it is.
//! - Every start and exit is a line in LOG (the daemon's own log), and FILE always holds the
//!   PID of the daemon running now (written atomically; removed when the supervisor ends).
//!
//! `vxlab up` runs one supervisor per daemon inside the node's namespace (so `vxlab down`
//! finds it), and stops the supervisors before anything else.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use controlplane::agent::signals::{self, Event};

use super::sys;

/// The command name of a supervisor process (`/proc/PID/comm`).
pub const COMM: &str = "vxlab";

/// When and how often a daemon is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// A run at least this long counts as healthy: the next restart waits `first_delay` again.
    pub healthy: Duration,
    /// Most restarts in any `window`.
    pub burst: usize,
    pub window: Duration,
    /// How long the daemon gets to exit after SIGTERM before SIGKILL.
    pub stop_grace: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(5),
            healthy: Duration::from_secs(1),
            burst: 30,
            window: Duration::from_secs(60),
            stop_grace: Duration::from_secs(3),
        }
    }
}

/// What the supervisor does after the daemon exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Start it again after this delay.
    Restart(Duration),
    /// The first run failed at once: do not restart.
    FailedAtStart,
    /// Too many restarts in the window.
    GiveUp,
}

/// The restart decisions, kept apart from processes and clocks so they can be tested.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    delay: Duration,
    restarts: VecDeque<Instant>,
    runs: u64,
}

impl Backoff {
    pub fn new(policy: Policy) -> Backoff {
        Backoff {
            policy,
            delay: Duration::ZERO,
            restarts: VecDeque::new(),
            runs: 0,
        }
    }

    /// The daemon ended at `now` after running `ran`; `failed`: it exited by itself with a
    /// failure status (not killed by a signal, not exit 0).
    pub fn exited(&mut self, now: Instant, ran: Duration, failed: bool) -> Next {
        self.runs += 1;
        let p = self.policy;
        if self.runs == 1 && ran < p.healthy && failed {
            return Next::FailedAtStart;
        }
        while self
            .restarts
            .front()
            .is_some_and(|&t| now.duration_since(t) >= p.window)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= p.burst {
            return Next::GiveUp;
        }
        self.restarts.push_back(now);
        self.delay = if ran >= p.healthy || self.delay.is_zero() {
            p.first_delay
        } else {
            (self.delay * 2).min(p.max_delay)
        };
        Next::Restart(self.delay)
    }
}

enum Msg {
    Signal(Event),
    Exited(u32, std::io::Result<ExitStatus>),
}

/// Appends one line to the log (opened for each line, so a renamed log is followed).
fn log_line(log: &Path, msg: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
        let _ = writeln!(f, "vxlab supervise: {msg}");
    }
}

fn write_pidfile(path: &Path, pid: u32) {
    let tmp = path.with_extension("pid.tmp");
    if std::fs::write(&tmp, format!("{pid}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .is_err()
    {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Reads a PID file written by the supervisor.
pub fn read_pidfile(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Runs the supervisor until SIGTERM/SIGINT (exit 0) or until it gives up (exit 1).
pub fn run(log: &Path, pidfile: &Path, program: &Path, args: &[String], policy: Policy) -> i32 {
    let (tx, rx) = mpsc::channel::<Msg>();
    match signals::listen() {
        Ok(events) => {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for e in events {
                    if tx.send(Msg::Signal(e)).is_err() {
                        break;
                    }
                }
            });
        }
        Err(e) => {
            log_line(log, &format!("cannot watch signals: {e}"));
            return 1;
        }
    }
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.display().to_string());
    let mut backoff = Backoff::new(policy);
    let end = |code: i32| {
        let _ = std::fs::remove_file(pidfile);
        code
    };
    loop {
        let open = || OpenOptions::new().create(true).append(true).open(log);
        let (out, err) = match (open(), open()) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("vxlab supervise: cannot open {}: {e}", log.display());
                return end(1);
            }
        };
        let started = Instant::now();
        let mut child = match Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                log_line(log, &format!("cannot start {}: {e}", program.display()));
                return end(1);
            }
        };
        let pid = child.id();
        write_pidfile(pidfile, pid);
        log_line(log, &format!("started {name} (pid {pid})"));
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(Msg::Exited(pid, child.wait()));
            });
        }
        // Until the daemon exits, or we are told to stop.
        let status = loop {
            match rx.recv() {
                Ok(Msg::Exited(p, status)) if p == pid => break status,
                Ok(Msg::Signal(Event::Stop)) | Err(_) => {
                    return end(stop(log, &name, pid, &rx, policy.stop_grace));
                }
                // Any other signal (a reload) is the daemon's business, not ours.
                Ok(Msg::Exited(..)) | Ok(Msg::Signal(_)) => {}
            }
        };
        let ran = started.elapsed();
        let (what, failed) = match &status {
            Ok(s) => (describe(s), s.code().is_some_and(|c| c != 0)),
            Err(e) => (format!("could not be waited for ({e})"), false),
        };
        let next = backoff.exited(Instant::now(), ran, failed);
        let ran_s = ran.as_secs_f64();
        let delay = match next {
            Next::Restart(d) => {
                log_line(
                    log,
                    &format!(
                        "{name} (pid {pid}) {what} after {ran_s:.1} s; restarting in {} ms",
                        d.as_millis()
                    ),
                );
                d
            }
            Next::FailedAtStart => {
                log_line(
                    log,
                    &format!(
                        "{name} (pid {pid}) {what} after {ran_s:.1} s, at its first start; \
                         not restarting"
                    ),
                );
                return end(1);
            }
            Next::GiveUp => {
                log_line(
                    log,
                    &format!(
                        "{name} (pid {pid}) {what} after {ran_s:.1} s; {} restarts in {} s, \
                         giving up",
                        policy.burst,
                        policy.window.as_secs()
                    ),
                );
                return end(1);
            }
        };
        // The delay, unless a stop comes first.
        let deadline = Instant::now() + delay;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(Msg::Signal(Event::Stop)) => {
                    log_line(log, &format!("stopped; {name} not restarted"));
                    return end(0);
                }
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }
}

/// Passes SIGTERM on to the daemon and waits for it (SIGKILL after `grace`).
fn stop(log: &Path, name: &str, pid: u32, rx: &mpsc::Receiver<Msg>, grace: Duration) -> i32 {
    let t0 = Instant::now();
    let _ = sys::signal(pid, sys::Signal::Term);
    let deadline = t0 + grace;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(Msg::Exited(p, status)) if p == pid => {
                let what = match status {
                    Ok(s) => describe(&s),
                    Err(e) => format!("could not be waited for ({e})"),
                };
                log_line(
                    log,
                    &format!(
                        "stopped: {name} (pid {pid}) {what} {} ms after SIGTERM",
                        t0.elapsed().as_millis()
                    ),
                );
                return 0;
            }
            Ok(_) => {}
            Err(_) if Instant::now() < deadline => {}
            Err(_) => {
                let _ = sys::signal(pid, sys::Signal::Kill);
                log_line(
                    log,
                    &format!(
                        "{name} (pid {pid}) still running {} ms after SIGTERM; killed",
                        grace.as_millis()
                    ),
                );
                let _ = sys::wait_gone(&[pid], grace);
                return 1;
            }
        }
    }
}

fn describe(s: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("ended ({s})"),
    }
}

/// Where a node keeps the PID of its supervised daemon `program`.
pub fn pidfile(dir: &Path, program: &str) -> PathBuf {
    dir.join(format!("{program}.pid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(80),
            healthy: Duration::from_secs(1),
            burst: 3,
            window: Duration::from_secs(60),
            stop_grace: Duration::from_secs(1),
        }
    }

    #[test]
    fn healthy_runs_restart_quickly_and_crash_loops_back_off() {
        let mut b = Backoff::new(policy());
        let t = Instant::now();
        let long = Duration::from_secs(5);
        let short = Duration::from_millis(100);
        assert_eq!(
            b.exited(t, long, false),
            Next::Restart(Duration::from_millis(10))
        );
        assert_eq!(
            b.exited(t, short, false),
            Next::Restart(Duration::from_millis(20))
        );
        assert_eq!(
            b.exited(t, long, true),
            Next::Restart(Duration::from_millis(10)),
            "a healthy run resets the delay"
        );
        assert_eq!(b.exited(t, long, false), Next::GiveUp, "3 in the window");
        // After the window has passed, restarts are allowed again.
        let later = t + Duration::from_secs(61);
        assert_eq!(
            b.exited(later, long, false),
            Next::Restart(Duration::from_millis(10))
        );
    }

    #[test]
    fn the_delay_doubles_up_to_the_cap() {
        let mut b = Backoff::new(Policy {
            burst: 100,
            ..policy()
        });
        let t = Instant::now();
        let short = Duration::from_millis(5);
        assert_eq!(
            b.exited(t, Duration::from_secs(2), false),
            Next::Restart(Duration::from_millis(10))
        );
        let delays: Vec<u128> = (0..5)
            .map(|_| match b.exited(t, short, false) {
                Next::Restart(d) => d.as_millis(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays, [20, 40, 80, 80, 80]);
    }

    #[test]
    fn a_first_run_that_fails_at_once_is_not_restarted() {
        let mut b = Backoff::new(policy());
        assert_eq!(
            b.exited(Instant::now(), Duration::from_millis(30), true),
            Next::FailedAtStart
        );
        // Exit 0, or killed (kill -9 right after a start), is restarted.
        let mut b = Backoff::new(policy());
        assert!(matches!(
            b.exited(Instant::now(), Duration::from_millis(30), false),
            Next::Restart(_)
        ));
    }

    #[test]
    fn restarts_a_killed_process_and_stops_for_good() {
        let dir = std::env::temp_dir().join(format!("vxlab-supervise-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let pf = dir.join("sleep.pid");
        let (l, p) = (log.clone(), pf.clone());
        let sup = std::thread::spawn(move || {
            run(
                &l,
                &p,
                Path::new("/bin/sleep"),
                &["30".to_string()],
                Policy::default(),
            )
        });
        let wait_pid = |not: Option<u32>| {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if let Some(pid) = read_pidfile(&pf).filter(|&p| Some(p) != not) {
                    if sys::alive(pid) {
                        return pid;
                    }
                }
                assert!(Instant::now() < deadline, "no new pid in {}", pf.display());
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let first = wait_pid(None);
        std::thread::sleep(Duration::from_millis(1100)); // a healthy run
        sys::signal(first, sys::Signal::Kill).unwrap();
        let second = wait_pid(Some(first));
        assert_ne!(first, second);
        // SIGTERM to this process reaches the handler `run` installed (the test harness has
        // none), which stops the daemon and returns.
        let me = std::process::id().to_string();
        let killed = Command::new("kill").args(["-TERM", &me]).status().unwrap();
        assert!(killed.success());
        assert_eq!(sup.join().unwrap(), 0);
        assert!(
            !sys::alive(second),
            "the daemon is stopped with the supervisor"
        );
        assert!(!pf.exists(), "the pidfile is removed");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("was killed by signal 9"), "{text}");
        assert!(text.contains("stopped: sleep"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
