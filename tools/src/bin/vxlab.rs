//! vxlab: stand up N nodes × M pods in network namespaces on this host, joined by vxswitch, by
//! the kernel's vxlan driver, by Open vSwitch's userspace datapath, or routed without an
//! overlay, and take them down again.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};

use clap::{Parser, Subcommand, ValueEnum};
use tools::lab::etcd::Stop;
use tools::lab::{self, topo, vxswitch, Kind, Lab, LabError, LabSpec};

const ABOUT: &str = "Stand up a VXLAN lab: N nodes x M pods in network namespaces on this host";

const LONG_ABOUT: &str = "\
Stand up a VXLAN lab: N nodes x M pods in network namespaces on this host.

Every node is a namespace LAB-n<i> with an underlay eth0 (198.51.100.<i>/24) and a pod subnet
10.1.<i>.0/24; every pod a namespace LAB-n<i>p<j> with 10.1.<i>.<j+1>. A node joins its pods to
the others with one of:
  vxswitch  vxswitchd + vxagent started in the node namespace
  kernel    the Linux vxlan driver programmed as flannel's vxlan backend does
  ovs       Open vSwitch's userspace datapath (datapath_type=netdev): its own ovsdb-server and
            ovs-vswitchd in the node namespace, br-int with the pods and a vxlan port per peer,
            br-phy with the underlay, as OVS's userspace-tunneling guide sets it up
            (needs the package openvswitch-switch)
  plain     no overlay: pod subnets routed over the underlay (flannel's host-gw), pod MTU 1500;
            the upper bound for benchmarks
vxswitch and kernel nodes mix in one lab; ovs and plain labs are all one kind. Nothing outside
the lab's namespaces is touched. Runtime files live in /run/vxlab/LAB/.

With --etcd the lab runs in cluster mode, as flannel's nodes do: an etcd for the lab in LAB-ul
(http://198.51.100.254:2379 on the underlay bridge, data in /run/vxlab/LAB/etcd/), flannel's
network config in it (/coreos.com/network/config), and every vxagent with --etcd: it leases its
node's subnet there (the one planned above), writes subnet.env, and learns the other nodes from
the other leases instead of from its file. Kernel nodes get a lease written as flannel does.

Must run as root.";

const EXAMPLES: &str = "\
Examples:
  vxlab up --kinds kernel                     two kernel (flannel-style) nodes, two pods each
  vxlab up --nodes 3 --pods 4                 three vxswitch nodes on an underlay bridge
  vxlab up --name mix --kinds vxswitch,kernel a vxswitch node talking to a kernel node
  vxlab up --name o --kinds ovs --pods 1      two OVS userspace-datapath nodes
  vxlab up --name p --kinds plain             no overlay, routed (the upper bound)
  vxlab up --name c --nodes 3 --etcd          cluster mode: the nodes meet in the lab's etcd
  vxlab etcdctl --name c -- get --prefix /coreos.com/network
                                              flannel's keys: the config and one lease per node
  vxlab agent stop --name c n2                n2's lease expires, the others drop its routes
  vxlab status                                the topology; --json for scripts
  vxlab exec n1p1 -- ping -c 3 10.1.2.2       ping from pod n1p1 to pod n2p1
  vxlab exec n1 -- tcpdump -ni eth0 udp port 4789
                                              watch the underlay of node n1
  vxlab ctl n1 -- show                        ask node n1's vxswitchd (runs vxctl)
  vxlab list                                  the labs that are up
  vxlab down                                  remove everything, also after a crash

Binaries vxswitchd, vxagent and vxctl are taken from $VXLAB_BIN_DIR if set, else from the
directory of vxlab, else from PATH.";

#[derive(Parser)]
#[command(name = "vxlab", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    /// Lab name: 1-8 characters a-z, 0-9; prefixes its namespaces (LAB-n1, LAB-n1p1, ...).
    #[arg(long, global = true, default_value = "vxlab", value_parser = parse_name)]
    name: String,
    /// Echo every ip/bridge/ethtool/sysctl command before running it.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a lab and print its topology.
    #[command(after_help = "\
Examples:
  vxlab up                                    2 vxswitch nodes x 2 pods
  vxlab up --kinds kernel --nodes 3           3 kernel nodes on an underlay bridge (LAB-ul)
  vxlab up --name b --kinds vxswitch,kernel,kernel --pods 1 --ipv6 off
  vxlab up --workers 2 --offload off          passed on to every vxswitchd
  vxlab exec n1p1 -- ping -6 fd00:10:1:2::2   dual stack (--ipv6 on, the default)
  vxlab up --kinds ovs --tso off              OVS nodes, TSO off in the pods
  vxlab up --kinds vxswitch,kernel --underlay6  VTEPs on 2001:db8::/64
  vxlab up --etcd --nodes 3 --lease-ttl 5     cluster mode, leases of 5 s

On failure everything built so far is removed and the reason printed.")]
    Up {
        /// Number of nodes (1-200). Two nodes share a veth pair; any other count a bridge.
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// Pods per node (0-200).
        #[arg(long, default_value_t = 2)]
        pods: usize,
        /// Node kinds: one for all nodes, or a comma list with one per node
        /// (vxswitch | kernel | ovs | plain; only vxswitch and kernel mix).
        #[arg(long, default_value = "vxswitch", value_parser = parse_kinds)]
        kinds: Kinds,
        /// VXLAN UDP port.
        #[arg(long, default_value_t = 4789)]
        port: u16,
        /// vxswitchd worker threads (vxswitchd's default if not given).
        #[arg(long)]
        workers: Option<usize>,
        /// IPv6 in the pods: on, vxswitch nodes are dual stack (node prefix fd00:10:1:<i>::/64,
        /// gateway ::1, every pod an address in it); off, IPv6 is disabled before the pod
        /// interface exists.
        #[arg(long, value_enum, default_value_t = OnOff::On)]
        ipv6: OnOff,
        /// vxswitchd's --offload (TAP and UDP offloads).
        #[arg(long, value_enum, default_value_t = OnOff::On)]
        offload: OnOff,
        /// One more argument for every vxswitchd; repeat for several
        /// (e.g. --switch-arg=--masquerade).
        #[arg(long = "switch-arg", value_name = "ARG", allow_hyphen_values = true)]
        switch_args: Vec<String>,
        /// Agents install OpenShift-SDN's multitenant flows (port security, tenant VNIDs).
        #[arg(long)]
        multitenant: bool,
        /// VNIDs of pod 1, 2, ... on every node, e.g. --vnids 10,20,0 (0 = admin, reaches all).
        #[arg(long, value_delimiter = ',', value_name = "VNID,...")]
        vnids: Vec<u32>,
        /// TSO in the pods (off: `ethtool -K eth0 tx off` in every pod, and on the node end of
        /// its veth, so every frame is MTU-sized; ovs pods always have it off).
        #[arg(long, value_enum, default_value_t = OnOff::On)]
        tso: OnOff,
        /// TX checksum offload on the underlay veths (off: every frame crosses the underlay
        /// complete and MTU-sized, as on a wire; on: large frames cross whole, as between NICs
        /// with TSO and GRO).
        #[arg(long, value_enum, default_value_t = OnOff::Off)]
        underlay_offload: OnOff,
        /// An IPv6 underlay: node i's VTEP is 2001:db8::i (vxswitch and kernel nodes; kernel
        /// nodes send UDP without checksum, udp6zerocsumtx).
        #[arg(long)]
        underlay6: bool,
        /// Cluster mode: start an etcd for the lab (in LAB-ul, on the underlay at
        /// 198.51.100.254:2379), write flannel's network config there, and run every vxagent
        /// with --etcd, so nodes find each other through their leases (vxswitch and kernel
        /// nodes; the underlay is always a bridge). Pods are IPv4 only in cluster mode.
        #[arg(long)]
        etcd: bool,
        /// With --etcd: the TTL of the agents' leases, in seconds (2-86400). Short in a lab, so
        /// a stopped node leaves the others' tables soon after; the agent's own default is a
        /// day, as flannel's.
        #[arg(long, value_name = "SECS", default_value_t = lab::etcd::DEFAULT_LEASE_TTL)]
        lease_ttl: u32,
    },
    /// Print the lab's nodes and pods.
    #[command(after_help = "\
JSON shape: {\"name\", \"nodes\": [{\"name\", \"netns\", \"kind\", \"vtep\", \"vtep_mac\", \"subnet\",
             \"pods\": [{\"name\", \"netns\", \"ip\", \"mac\"}]}]}; dual-stack nodes add \"subnet6\"
             and their pods \"ip6\"; a lab up with --etcd adds \"etcd\": \"http://IP:PORT\".")]
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a pod (n1p1) or node (n1) namespace; exits with its exit code.
    #[command(after_help = "\
Examples:
  vxlab exec n1p1 -- ping -c 3 10.1.2.2
  vxlab exec n2p1 -- iperf3 -s -D
  vxlab exec n1 -- ip -d link show flannel.1
  vxlab exec ul -- bridge link                the underlay bridge (3 or more nodes)")]
    Exec {
        /// Pod (n<i>p<j>), node (n<i>) or, with an underlay bridge, ul.
        target: String,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Run vxctl against a vxswitch node's switch: vxctl --socket <node socket> ARGS...
    #[command(after_help = "\
Examples:
  vxlab ctl n1 -- show
  vxlab ctl n1 -- stats --watch
  vxlab ctl n2 -- --help")]
    Ctl {
        /// Node (n<i>); must be a vxswitch node.
        node: String,
        /// Arguments for vxctl.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run etcdctl against the lab's etcd (labs up with --etcd): ETCDCTL_API=3 etcdctl
    /// --endpoints <the lab's etcd> ARGS..., inside LAB-ul where etcd listens.
    #[command(after_help = "\
Examples:
  vxlab etcdctl -- get /coreos.com/network/config
  vxlab etcdctl -- get --prefix /coreos.com/network/subnets
  vxlab etcdctl -- watch --prefix /coreos.com/network/subnets")]
    Etcdctl {
        /// Arguments for etcdctl.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Stop or start a vxswitch node's vxagent (stopped, it is not restarted; its vxswitchd
    /// keeps forwarding with the tables it has, and in a lab with etcd its lease expires).
    #[command(after_help = "\
Examples:
  vxlab agent stop n2                         SIGTERM, as an admin stops it
  vxlab agent stop --kill n2                  SIGKILL, as in a crash
  vxlab agent start n2                        the same arguments as at up")]
    Agent {
        #[arg(value_enum)]
        action: Action,
        /// Node (n<i>); must be a vxswitch node.
        node: String,
        /// Stop with SIGKILL instead of SIGTERM.
        #[arg(long)]
        kill: bool,
    },
    /// Stop or start the lab's etcd (labs up with --etcd); its data stays, so a start brings
    /// back every key and lease.
    Etcd {
        #[arg(value_enum)]
        action: Action,
    },
    /// Remove every namespace, process and file of the lab; safe to repeat, works after a crash.
    Down,
    /// List the labs that are up.
    List,
    /// Run a daemon and start it again whenever it exits (what `vxlab up` runs per daemon).
    #[command(hide = true)]
    Supervise {
        /// Log file of the daemon (stdout and stderr), where starts and exits are logged too.
        #[arg(long)]
        log: PathBuf,
        /// Holds the PID of the daemon running now.
        #[arg(long)]
        pidfile: PathBuf,
        /// The daemon and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Action {
    Stop,
    Start,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Clone)]
struct Kinds(Vec<Kind>);

fn parse_name(s: &str) -> Result<String, String> {
    topo::validate_name(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_kinds(s: &str) -> Result<Kinds, String> {
    Kind::parse_list(s).map(Kinds).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lab::set_verbose(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vxlab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, LabError> {
    let name = cli.name;
    match cli.cmd {
        Cmd::Up {
            nodes,
            pods,
            kinds,
            port,
            workers,
            ipv6,
            offload,
            switch_args,
            multitenant,
            vnids,
            tso,
            underlay_offload,
            underlay6,
            etcd,
            lease_ttl,
        } => {
            let spec = LabSpec {
                name,
                nodes,
                pods,
                kinds: kinds.0,
                port,
                workers,
                ipv6: ipv6 == OnOff::On,
                offload: offload == OnOff::On,
                switch_args,
                multitenant,
                pod_vnids: vnids,
                tso: tso == OnOff::On,
                underlay_offload: underlay_offload == OnOff::On,
                underlay6,
                etcd,
                lease_ttl,
            };
            let lab = Lab::up(&spec)?;
            print!("{}", lab.render());
            println!("remove it with: vxlab down --name {}", lab.name);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { json } => {
            let lab = Lab::load(&name)?;
            if json {
                let text = serde_json::to_string_pretty(&lab.status_json()).expect("JSON value");
                println!("{text}");
            } else {
                print!("{}", lab.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Exec { target, cmd } => {
            let lab = Lab::load(&name)?;
            lab.require_netns(&target)?;
            let mut command = lab.command(&target, &cmd[0]);
            command.args(&cmd[1..]);
            pass_through(command)
        }
        Cmd::Ctl { node, args } => {
            let lab = Lab::load(&name)?;
            let socket = lab.socket(&node)?.to_path_buf();
            let vxctl = vxswitch::BinSearch::from_env().find(vxswitch::CTL)?;
            let mut command = Command::new(vxctl);
            command.arg("--socket").arg(socket).args(args);
            pass_through(command)
        }
        Cmd::Etcdctl { args } => {
            let lab = Lab::load(&name)?;
            let mut command = lab.etcdctl_command()?;
            command.args(args);
            pass_through(command)
        }
        Cmd::Agent { action, node, kill } => {
            let mut lab = Lab::load(&name)?;
            match action {
                Action::Stop => {
                    let how = if kill { Stop::Kill } else { Stop::Term };
                    lab.stop_agent(&node, how)?;
                    println!("vxagent of {node} stopped");
                }
                Action::Start => {
                    lab.start_agent(&node)?;
                    println!("vxagent of {node} started");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Etcd { action } => {
            let mut lab = Lab::load(&name)?;
            match action {
                Action::Stop => {
                    lab.stop_etcd()?;
                    println!("etcd of lab {name} stopped (its data stays)");
                }
                Action::Start => {
                    lab.start_etcd()?;
                    let e = lab.etcd().unwrap_or_default();
                    println!("etcd of lab {name} is up at {e}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Supervise { log, pidfile, cmd } => {
            let code = lab::supervise::run(
                &log,
                &pidfile,
                Path::new(&cmd[0]),
                &cmd[1..],
                lab::supervise::Policy::default(),
            );
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Cmd::Down => {
            let report = Lab::teardown(&name)?;
            if report.existed {
                println!(
                    "lab {name} is down: removed {} namespaces, stopped {} processes",
                    report.namespaces.len(),
                    report.killed.len()
                );
            } else {
                println!("lab {name} does not exist; nothing to do");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::List => {
            let labs = Lab::list()?;
            if labs.is_empty() {
                println!("no labs are up");
            }
            for l in labs {
                if l.state_file {
                    let detail = match Lab::load(&l.name) {
                        Ok(lab) => {
                            let kinds: Vec<&str> =
                                lab.nodes().iter().map(|n| n.kind.as_str()).collect();
                            format!(
                                "{} nodes x {} pods ({})",
                                lab.nodes().len(),
                                lab.spec().pods,
                                kinds.join(",")
                            )
                        }
                        Err(e) => format!("unreadable state: {e}"),
                    };
                    println!("{:<9} up    {detail}", l.name);
                } else {
                    println!(
                        "{:<9} stale {} namespaces without /run/vxlab/{}/lab.json; run vxlab down --name {}",
                        l.name, l.namespaces, l.name, l.name
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a command with our stdio and exits as it did (128 + N for death by signal N).
fn pass_through(mut command: Command) -> Result<ExitCode, LabError> {
    let line = format!("{command:?}");
    let status: ExitStatus = command.status().map_err(|source| LabError::Spawn {
        cmdline: line,
        source,
    })?;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
