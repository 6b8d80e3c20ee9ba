//! vxagent: keeps vxswitchd in line with the node's agent file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use controlplane::agent::run::{self, log, Options};
use controlplane::agent::{config, signals};

const AFTER_HELP: &str = "\
The file (TOML) declares this node, its pods and the other nodes:
  [node]     name, vtep, vtep_mac, subnet; optional gateway (default: first host of the
             subnet), vni (1), cluster_network (10.1.0.0/16), underlay_mtu (1500),
             multitenant (false: one flow, table=0,priority=0,actions=normal; true:
             OpenShift-SDN's flows: port security, underlay filter, tenant VNIDs)
  [[pods]]   name, netns, mac, ip; optional vnid (the node's vni), ifname (eth0), mtu
  [[nodes]]  name, vtep, vtep_mac, subnet
Unknown keys are errors. A bad file is reported as FILE:LINE: reason and nothing is pushed.
vxagent owns exactly what the file declares: objects created with vxctl are never deleted or
replaced. It owns the flows with its cookie (0xa6e470) and leaves every other flow alone.

Signals: SIGHUP re-reads the file now; SIGTERM and SIGINT exit.

Examples:
  vxagent --check --config /etc/vxswitch/agent.toml
  vxagent --once --config /etc/vxswitch/agent.toml
  vxagent --config /etc/vxswitch/agent.toml --interval-ms 500";

/// Reconcile vxswitchd with this node's agent file (pods, remote nodes, local node).
#[derive(Debug, Parser)]
#[command(name = "vxagent", version, after_help = AFTER_HELP)]
struct Cli {
    /// vxswitchd's control socket.
    #[arg(long, value_name = "PATH", default_value = controlplane::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// The agent file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Reconcile once and exit: 0 when vxswitchd matches the file, 1 on error.
    #[arg(long, conflicts_with = "check")]
    once: bool,
    /// Only validate the file: exit 0 if it is good, 1 (with FILE:LINE: reason) if not.
    #[arg(long)]
    check: bool,
    /// How often to re-check the file and poll vxswitchd, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    interval_ms: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = Options {
        socket: cli.socket,
        config: cli.config,
        interval: Duration::from_millis(cli.interval_ms),
    };
    if cli.check {
        return match config::load(&opts.config) {
            Ok((cfg, _)) => {
                println!(
                    "{}: ok (node {}, {} pods, {} remote nodes)",
                    opts.config.display(),
                    cfg.local.name,
                    cfg.pods.len(),
                    cfg.nodes.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.once {
        return match run::once(&opts) {
            Ok(out) => {
                if out.pushed == 0 {
                    log(format!("nothing to push, table version {}", out.version));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                log(e.to_string());
                ExitCode::FAILURE
            }
        };
    }
    let events = match signals::listen() {
        Ok(rx) => rx,
        Err(e) => {
            log(format!("cannot install signal handlers: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match run::run(&opts, &events) {
        Ok(()) => {
            log("exiting; vxswitchd keeps its tables");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log(e.to_string());
            ExitCode::FAILURE
        }
    }
}
