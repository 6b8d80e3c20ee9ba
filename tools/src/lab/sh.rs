//! Running `ip`, `bridge`, `ethtool` and `sysctl`: one helper that puts the full command line
//! and the program's stderr into the error, bounds every wait, and can echo what it runs.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::{sys, LabError};

/// How long one helper command may take before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Echo every command to stderr before running it (`vxlab --verbose`).
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// The command as a shell would show it.
pub fn cmdline(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs a command to completion with `input` on stdin, and returns its stdout. A non-zero exit
/// becomes [`LabError::Command`] carrying the command line and stderr.
pub fn run_with_input(cmd: &mut Command, input: Option<&str>) -> Result<String, LabError> {
    let line = cmdline(cmd);
    if verbose() {
        eprintln!("+ {line}");
        if let Some(text) = input {
            for l in text.lines() {
                eprintln!("+   {l}");
            }
        }
    }
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
        cmdline: line.clone(),
        source,
    })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A program that exits early closes the pipe; its exit status tells the story.
        let _ = stdin.write_all(text.as_bytes());
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out: Output = match rx.recv_timeout(COMMAND_TIMEOUT) {
        Ok(Ok(out)) => out,
        Ok(Err(source)) => {
            return Err(LabError::Spawn {
                cmdline: line,
                source,
            })
        }
        Err(_) => {
            // Our own child, not yet reaped (the waiter thread is still in wait()).
            let _ = sys::signal(pid, sys::Signal::Kill);
            return Err(LabError::Command {
                cmdline: line,
                status: format!("killed after {} s", COMMAND_TIMEOUT.as_secs()),
                stderr: String::new(),
            });
        }
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            cmdline: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Runs a command to completion; see [`run_with_input`].
pub fn run(cmd: &mut Command) -> Result<String, LabError> {
    run_with_input(cmd, None)
}

/// `ip [-n NS] ARGS...`
pub fn ip(ns: Option<&str>, args: &[&str]) -> Result<String, LabError> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    run(cmd.args(args))
}

/// `ip netns exec NS PROGRAM`: the command to run a program inside a namespace.
pub fn netns_exec(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

/// Sets sysctls inside a namespace, all in one `sysctl -qw` call.
pub fn sysctl(ns: &str, settings: &[(String, &str)]) -> Result<(), LabError> {
    let mut cmd = netns_exec(ns, "sysctl");
    cmd.arg("-qw");
    for (key, value) in settings {
        cmd.arg(format!("{key}={value}"));
    }
    run(&mut cmd).map(drop)
}

/// The sysctl key of a per-interface IPv4 setting; sysctl writes a dot in a name as `/`.
pub fn ipv4_conf(ifname: &str, key: &str) -> String {
    format!("net.ipv4.conf.{}.{key}", ifname.replace('.', "/"))
}

/// Turns TX checksum offload off on an interface, so it hands its peer complete frames.
pub fn tx_off(ns: &str, ifname: &str) -> Result<(), LabError> {
    run(netns_exec(ns, "ethtool").args(["-K", ifname, "tx", "off"])).map(drop)
}

/// Commands for `ip -batch` or `bridge -batch` in one namespace: one process for many commands.
/// A failure names the command of the batch that failed, as if it had been run alone.
pub struct Batch {
    tool: &'static str,
    ns: String,
    lines: Vec<String>,
}

impl Batch {
    pub fn ip(ns: &str) -> Batch {
        Batch {
            tool: "ip",
            ns: ns.to_string(),
            lines: Vec::new(),
        }
    }

    pub fn bridge(ns: &str) -> Batch {
        Batch {
            tool: "bridge",
            ns: ns.to_string(),
            lines: Vec::new(),
        }
    }

    /// Adds one command, written as after `ip -n NS` (e.g. `link set lo up`).
    pub fn add(&mut self, line: impl Into<String>) -> &mut Self {
        self.lines.push(line.into());
        self
    }

    pub fn run(&self) -> Result<(), LabError> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let mut input = self.lines.join("\n");
        input.push('\n');
        let mut cmd = Command::new(self.tool);
        cmd.args(["-n", &self.ns, "-batch", "-"]);
        match run_with_input(&mut cmd, Some(&input)) {
            Ok(_) => Ok(()),
            Err(LabError::Command {
                cmdline,
                status,
                stderr,
            }) => {
                // iproute2 reports "Command failed -:N" with the 1-based line number.
                let failed = stderr
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("Command failed -:"))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .and_then(|n| self.lines.get(n.wrapping_sub(1)));
                let cmdline = match failed {
                    Some(l) => format!("{} -n {} {l}", self.tool, self.ns),
                    None => format!("{cmdline} <<< {:?}", self.lines),
                };
                Err(LabError::Command {
                    cmdline,
                    status,
                    stderr,
                })
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_quoted_like_a_shell() {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", "x-n1", "addr", "add", "10.1.1.1/24", "dev", "cni0"]);
        assert_eq!(cmdline(&cmd), "ip -n x-n1 addr add 10.1.1.1/24 dev cni0");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo it's", ""]);
        assert_eq!(cmdline(&cmd), r"sh -c 'echo it'\''s' ''");
    }

    #[test]
    fn failures_carry_command_line_and_stderr() {
        let e = run(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`sh -c 'echo oops >&2; exit 3'` failed"),
            "{msg}"
        );
        assert!(
            msg.contains("exit status: 3") && msg.ends_with(": oops"),
            "{msg}"
        );
        let e = run(&mut Command::new("/nonexistent/vxlab-test")).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot run `/nonexistent/vxlab-test`"),
            "{e}"
        );
        assert_eq!(run(Command::new("cat").arg("/dev/null")).unwrap(), "");
        assert_eq!(
            run_with_input(&mut Command::new("cat"), Some("hi\n")).unwrap(),
            "hi\n"
        );
    }

    #[test]
    fn interface_names_with_dots_become_slashes_in_sysctl_keys() {
        assert_eq!(
            ipv4_conf("flannel.1", "rp_filter"),
            "net.ipv4.conf.flannel/1.rp_filter"
        );
        assert_eq!(
            ipv4_conf("eth0", "rp_filter"),
            "net.ipv4.conf.eth0.rp_filter"
        );
    }
}
