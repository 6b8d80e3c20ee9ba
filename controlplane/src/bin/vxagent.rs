//! vxagent: keeps vxswitchd in line with the node's agent file.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use controlplane::agent::run::{self, log, Options};
use controlplane::agent::{config, signals};
use controlplane::cluster::{self, ClusterOptions};

const AFTER_HELP: &str = r#"The file (TOML) declares this node, its pods and the other nodes:
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

Cluster mode (--etcd): nodes lease their pod subnets from etcd in flannel's layout and learn
each other from it, so vxswitch nodes and flannel vxlan nodes can share one etcd.
  <prefix>/config         the network, written once by the admin (vxagent waits for it):
                          {"Network": "10.1.0.0/16", "SubnetLen": 24, "SubnetMin": "10.1.1.0",
                           "SubnetMax": "10.1.254.0", "Backend": {"Type": "vxlan", "VNI": 1}}
                          (optional: EnableIPv6, IPv6Network, IPv6SubnetLen as flannel names them)
  <prefix>/subnets/10.1.2.0-24
                          one lease per node, with an etcd lease (--lease-ttl) kept alive:
                          {"PublicIP": "198.51.100.2", "BackendType": "vxlan",
                           "BackendData": {"VNI": 1, "VtepMAC": "02:f1:00:00:00:02"}}
  The file's [node] keeps name, vtep, vtep_mac (and underlay_mtu); subnet is optional (the
  subnet to ask for); vni and cluster_network come from the config's Backend.VNI and Network.
  A restarted agent takes back the subnet leased to its PublicIP (or the one in
  --subnet-lease-file / --subnet-file). Every other lease becomes a remote node in vxswitchd
  (named after its key, e.g. 10.1.2.0-24); an expired lease removes it. Losing etcd keeps
  vxswitchd's tables as they are; the agent reconnects and catches up.
  subnet.env (--subnet-file) gets FLANNEL_NETWORK, FLANNEL_SUBNET (the gateway, 10.1.2.1/24),
  FLANNEL_MTU and FLANNEL_IPMASQ, for the CNI plugin.

Examples:
  vxagent --check --config /etc/vxswitch/agent.toml
  vxagent --once --config /etc/vxswitch/agent.toml
  vxagent --config /etc/vxswitch/agent.toml --interval-ms 500
  ETCDCTL_API=3 etcdctl --endpoints http://10.0.0.1:2379 put /coreos.com/network/config \
      '{"Network": "10.1.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan", "VNI": 1}}'
  vxagent --config /etc/vxswitch/agent.toml --etcd http://10.0.0.1:2379
  vxagent --config /etc/vxswitch/agent.toml --etcd https://10.0.0.1:2379,https://10.0.0.2:2379 \
      --etcd-cafile /etc/etcd/ca.pem --etcd-certfile /etc/etcd/node.pem \
      --etcd-keyfile /etc/etcd/node-key.pem
  ETCDCTL_API=3 etcdctl --endpoints http://10.0.0.1:2379 get --prefix /coreos.com/network/subnets/"#;

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
    #[arg(long, conflicts_with_all = ["check", "etcd"])]
    once: bool,
    /// Only validate the file: exit 0 if it is good, 1 (with FILE:LINE: reason) if not.
    #[arg(long)]
    check: bool,
    /// How often to re-check the file and poll vxswitchd, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    interval_ms: u64,
    /// Cluster mode: etcd endpoints, comma-separated (http://HOST:PORT or https://HOST:PORT).
    #[arg(long, value_name = "URL[,URL...]", value_delimiter = ',')]
    etcd: Vec<String>,
    /// Key prefix of the network in etcd (flannel's).
    #[arg(long, value_name = "PREFIX", default_value = cluster::DEFAULT_PREFIX)]
    etcd_prefix: String,
    /// CA certificate (PEM) that signed etcd's server certificate (https endpoints).
    #[arg(long, value_name = "FILE")]
    etcd_cafile: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's --client-cert-auth.
    #[arg(long, value_name = "FILE", requires = "etcd_keyfile")]
    etcd_certfile: Option<PathBuf>,
    /// Client key (PEM) of --etcd-certfile.
    #[arg(long, value_name = "FILE", requires = "etcd_certfile")]
    etcd_keyfile: Option<PathBuf>,
    /// Where to write subnet.env (flannel's default).
    #[arg(long, value_name = "PATH", default_value = cluster::DEFAULT_SUBNET_FILE)]
    subnet_file: PathBuf,
    /// Remembers this node's subnet across restarts (when its lease is gone from etcd).
    #[arg(long, value_name = "PATH")]
    subnet_lease_file: Option<PathBuf>,
    /// TTL of this node's etcd lease, in seconds (kept alive while the agent runs).
    #[arg(long, value_name = "SECS", default_value_t = cluster::DEFAULT_LEASE_TTL.as_secs(),
          value_parser = clap::value_parser!(u64).range(2..=31_536_000))]
    lease_ttl: u64,
    /// This node's PublicIP in its lease (default: the file's [node] vtep).
    #[arg(long, value_name = "IP")]
    public_ip: Option<Ipv4Addr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let etcd_only = cli.etcd.is_empty()
        && (cli.etcd_cafile.is_some()
            || cli.subnet_lease_file.is_some()
            || cli.public_ip.is_some());
    if etcd_only {
        log("--etcd-cafile, --subnet-lease-file and --public-ip need --etcd");
        return ExitCode::FAILURE;
    }
    let cluster = (!cli.etcd.is_empty()).then(|| ClusterOptions {
        endpoints: cli.etcd.iter().map(|e| e.trim().to_string()).collect(),
        prefix: cli.etcd_prefix.trim_end_matches('/').to_string(),
        ca_file: cli.etcd_cafile,
        cert_file: cli.etcd_certfile,
        key_file: cli.etcd_keyfile,
        subnet_file: cli.subnet_file,
        subnet_lease_file: cli.subnet_lease_file,
        lease_ttl: Duration::from_secs(cli.lease_ttl),
        public_ip: Ipv4Addr::UNSPECIFIED,
        vtep_mac: Default::default(),
        requested: None,
        requested6: None,
        underlay_mtu: 1500,
    });
    let opts = Options {
        socket: cli.socket,
        config: cli.config,
        interval: Duration::from_millis(cli.interval_ms),
        cluster,
        public_ip: cli.public_ip,
    };
    if cli.check && opts.cluster.is_some() {
        return match run::cluster_options(&opts) {
            Ok(Some(c)) => {
                println!(
                    "{}: ok for cluster mode (PublicIP {}, VtepMAC {}, subnet {})",
                    opts.config.display(),
                    c.public_ip,
                    c.vtep_mac,
                    c.requested.map_or_else(
                        || "leased from etcd".to_string(),
                        |s| format!("{s} requested")
                    )
                );
                ExitCode::SUCCESS
            }
            Ok(None) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
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
    match run::run(&opts, events) {
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
