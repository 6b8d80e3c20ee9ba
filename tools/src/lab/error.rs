//! The lab's one error type. Every message says what went wrong and what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong building, using or removing a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("bad lab name {0:?}: use 1-8 characters from a-z and 0-9 (the name prefixes namespace names)")]
    BadName(String),

    #[error("vxlab must run as root to {0} (it creates network namespaces); try sudo")]
    NotRoot(&'static str),

    #[error("bad lab spec: {0}")]
    BadSpec(String),

    #[error("lab {0} is already up; run vxlab down --name {0}")]
    AlreadyUp(String),

    #[error("lab {name} is not up ({path} is missing); see vxlab list, or start it with vxlab up --name {name}")]
    NotUp { name: String, path: PathBuf },

    #[error("lab {lab} has no node or pod named {target:?}; nodes are n1, n2, ..., pods n1p1, n1p2, ... (see vxlab status --name {lab})")]
    UnknownTarget { lab: String, target: String },

    #[error("node {node} of lab {lab} is a {kind} node; only vxswitch nodes have a control socket (try vxlab exec --name {lab} {node} -- ip -d link)")]
    NotVxswitch {
        lab: String,
        node: String,
        kind: String,
    },

    #[error("`{cmdline}` failed ({status}){}", stderr_suffix(.stderr))]
    Command {
        cmdline: String,
        status: String,
        stderr: String,
    },

    #[error("cannot run `{cmdline}`: {source} (is the program installed and on PATH?)")]
    Spawn {
        cmdline: String,
        source: std::io::Error,
    },

    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "lab state file {path} is unreadable: {message}; run vxlab down --name {name} to clean up"
    )]
    State {
        name: String,
        path: PathBuf,
        message: String,
    },

    #[error("cannot find the {program} binary (looked in {looked}); build it with `cargo build --workspace` or point VXLAB_BIN_DIR at the directory that holds it")]
    BinaryNotFound { program: String, looked: String },

    #[error("{program} on node {node} exited ({status}) before it was ready; see {log}{}", tail_suffix(.tail))]
    DaemonDied {
        program: &'static str,
        node: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("{program} on node {node} was not ready after {secs} s: {detail}; see {log}{}", tail_suffix(.tail))]
    NotReady {
        program: &'static str,
        node: String,
        secs: u64,
        detail: String,
        log: PathBuf,
        tail: String,
    },

    #[error("node kind ovs needs Open vSwitch, but {0}; install the package openvswitch-switch (apt-get install openvswitch-switch)")]
    OvsMissing(String),

    #[error("talking to vxswitchd of node {node}: {source}")]
    Control {
        node: String,
        source: controlplane::Error,
    },

    #[error("could not remove all of lab {name}: {left}; check with ip netns list / ip netns pids NS, then run vxlab down --name {name} again")]
    Leftovers { name: String, left: String },

    #[error("{up}; tearing the half-built lab down failed too: {down}")]
    UpAndDown {
        up: Box<LabError>,
        down: Box<LabError>,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

fn tail_suffix(tail: &str) -> String {
    let s = tail.trim_end();
    if s.is_empty() {
        String::new()
    } else {
        format!("; its last lines:\n{s}")
    }
}
