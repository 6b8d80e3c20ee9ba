//! vxctl's command line: every subcommand, its flags, and the value parsers that check
//! arguments before anything is sent to vxswitchd.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use controlplane::proto::{Ipv4Cidr, MacAddr, PortSpec, RemoteNode, MAX_VNI};

const EXAMPLES: &str = "\
Examples:
  vxctl show                                  bridge, local node, ports, nodes, VNIs
  vxctl --json show | jq '.ports[].name'      the same state as JSON
  vxctl fdb                                   MAC/IP forwarding entries and routes
  vxctl stats --watch 1                       counters and per-second rates, every second
  vxctl add-port web1 --netns web1 --mac 0a:58:0a:01:01:0a --ip 10.1.1.10
  vxctl del-port web1
  vxctl add-node n3 --vtep 198.51.100.3 --vtep-mac 02:f1:00:00:00:03 --subnet 10.1.3.0/24
  vxctl del-node n3
  vxctl --socket /tmp/vxswitchd.sock version

Objects added with vxctl are owned by the admin: vxagent never changes or removes them, and
vxctl cannot remove what vxagent's file declares (edit the file instead).";

/// Inspect and configure a running vxswitchd.
#[derive(Debug, Parser)]
#[command(name = "vxctl", version, after_help = EXAMPLES)]
pub struct Cli {
    /// vxswitchd's control socket.
    #[arg(long, global = true, value_name = "PATH", default_value = controlplane::DEFAULT_SOCKET, display_order = 100)]
    pub socket: PathBuf,
    /// Print the protocol's structures as JSON instead of tables.
    #[arg(long, global = true, display_order = 101)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the bridge, the local node, ports, remote nodes and the VNIs in use.
    #[command(after_help = "Example:\n  vxctl show\n  vxctl --json show")]
    Show,
    /// Show the forwarding database: MAC/IP entries and routes to remote subnets.
    #[command(after_help = "Example:\n  vxctl fdb")]
    Fdb,
    /// Show per-port counters, drops by reason and events; --watch adds per-second rates.
    #[command(after_help = "Example:\n  vxctl stats\n  vxctl stats --watch 2 --count 5")]
    Stats(StatsArgs),
    /// Attach a pod port (a TAP in the pod's network namespace), owned by the admin.
    #[command(
        after_help = "Example:\n  vxctl add-port web1 --netns web1 --mac 0a:58:0a:01:01:0a --ip 10.1.1.10 --vnid 10"
    )]
    AddPort(AddPortArgs),
    /// Detach an admin-owned pod port and remove its TAP.
    #[command(after_help = "Example:\n  vxctl del-port web1")]
    DelPort {
        /// Port name.
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Add a remote node (its pod subnet behind its VTEP), owned by the admin.
    #[command(
        after_help = "Example:\n  vxctl add-node n3 --vtep 198.51.100.3 --vtep-mac 02:f1:00:00:00:03 --subnet 10.1.3.0/24"
    )]
    AddNode(AddNodeArgs),
    /// Remove an admin-owned remote node.
    #[command(after_help = "Example:\n  vxctl del-node n3")]
    DelNode {
        /// Node name.
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Show this client's protocol version and vxswitchd's hello.
    #[command(after_help = "Example:\n  vxctl version")]
    Version,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Redraw every SECS seconds (fractions allowed) with per-second rates, until Ctrl-C.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub watch: Option<Duration>,
    /// With --watch: stop after K redraws.
    #[arg(long, value_name = "K", requires = "watch", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct AddPortArgs {
    /// Port name, unique on the node (usually the pod's name).
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The pod's network namespace: a name under /run/netns or an absolute path.
    #[arg(long, value_name = "NS", value_parser = parse_netns)]
    pub netns: String,
    /// The pod's MAC address (unicast).
    #[arg(long, value_parser = parse_unicast_mac)]
    pub mac: MacAddr,
    /// The pod's IPv4 address, inside the node's subnet.
    #[arg(long)]
    pub ip: Ipv4Addr,
    /// The pod's VNID (default: the node's VNI).
    #[arg(long, value_name = "N", value_parser = parse_vni)]
    pub vnid: Option<u32>,
    /// Interface name inside the pod [default: eth0].
    #[arg(long, value_name = "NAME", value_parser = parse_ifname)]
    pub ifname: Option<String>,
    /// MTU inside the pod (default: the node's pod MTU).
    #[arg(long, value_name = "M", value_parser = clap::value_parser!(u16).range(576..=9000))]
    pub mtu: Option<u16>,
}

impl AddPortArgs {
    pub fn spec(&self) -> PortSpec {
        PortSpec {
            name: self.name.clone(),
            netns: self.netns.clone(),
            mac: self.mac,
            ip: self.ip,
            vnid: self.vnid,
            ifname: self.ifname.clone(),
            mtu: self.mtu,
        }
    }
}

#[derive(Debug, Args)]
pub struct AddNodeArgs {
    /// Node name.
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The node's underlay (VTEP) address, IPv4 or IPv6.
    #[arg(long, value_name = "IP")]
    pub vtep: IpAddr,
    /// The node's VTEP MAC (unicast).
    #[arg(long, value_name = "MAC", value_parser = parse_unicast_mac)]
    pub vtep_mac: MacAddr,
    /// The node's pod subnet, e.g. 10.1.3.0/24.
    #[arg(long, value_name = "CIDR")]
    pub subnet: Ipv4Cidr,
}

impl AddNodeArgs {
    pub fn spec(&self) -> RemoteNode {
        RemoteNode {
            name: self.name.clone(),
            vtep: self.vtep,
            vtep_mac: self.vtep_mac,
            subnet: self.subnet,
        }
    }
}

/// Same rule as the protocol's object names.
fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "bad name {s:?}: use 1-64 letters, digits, '-', '_' or '.'"
        ))
    }
}

fn parse_netns(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('\0') {
        Err("the network namespace is empty".to_string())
    } else {
        Ok(s.to_string())
    }
}

fn parse_unicast_mac(s: &str) -> Result<MacAddr, String> {
    let mac: MacAddr = s.parse()?;
    if mac.is_unicast() {
        Ok(mac)
    } else {
        Err(format!(
            "MAC {s} is not a unicast address (multicast bit set, or all zeros)"
        ))
    }
}

fn parse_vni(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .parse()
        .map_err(|_| format!("VNID {s:?} is not a number"))?;
    if v > MAX_VNI {
        Err(format!("VNID {v} does not fit in 24 bits (max {MAX_VNI})"))
    } else {
        Ok(v)
    }
}

fn parse_ifname(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 15 || s.contains(['/', ' ', '\0']) {
        Err(format!(
            "bad interface name {s:?}: use 1-15 characters without '/' or spaces"
        ))
    } else {
        Ok(s.to_string())
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs.is_finite() && (0.1..=86400.0).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("{s} seconds is outside 0.1..=86400"))
    }
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("vxctl").chain(args.iter().copied()))
    }

    fn err(args: &[&str]) -> String {
        parse(args).expect_err("must be refused").to_string()
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn globals_work_before_and_after_the_subcommand() {
        let c = parse(&["show"]).unwrap();
        assert_eq!(c.socket, PathBuf::from(controlplane::DEFAULT_SOCKET));
        assert!(!c.json);
        let c = parse(&["--json", "show", "--socket", "/tmp/s"]).unwrap();
        assert!(c.json);
        assert_eq!(c.socket, PathBuf::from("/tmp/s"));
        assert!(matches!(c.command, Command::Show));
    }

    #[test]
    fn add_port_parses_every_flag() {
        let c = parse(&[
            "add-port",
            "web1",
            "--netns",
            "web1",
            "--mac",
            "0a:58:0a:01:01:0a",
            "--ip",
            "10.1.1.10",
            "--vnid",
            "10",
            "--ifname",
            "net0",
            "--mtu",
            "1400",
        ])
        .unwrap();
        let Command::AddPort(a) = c.command else {
            panic!("{:?}", c.command)
        };
        let spec = a.spec();
        assert_eq!(spec.name, "web1");
        assert_eq!(spec.mac.to_string(), "0a:58:0a:01:01:0a");
        assert_eq!(spec.ip, Ipv4Addr::new(10, 1, 1, 10));
        assert_eq!(
            (spec.vnid, spec.ifname.as_deref(), spec.mtu),
            (Some(10), Some("net0"), Some(1400))
        );
        assert!(spec.validate().is_ok());
        let c = parse(&[
            "add-port",
            "w",
            "--netns",
            "/proc/1/ns/net",
            "--mac",
            "02:00:00:00:00:01",
            "--ip",
            "10.1.1.2",
        ])
        .unwrap();
        let Command::AddPort(a) = c.command else {
            panic!()
        };
        assert_eq!((a.vnid, a.ifname, a.mtu), (None, None, None));
    }

    #[test]
    fn bad_arguments_are_refused_naming_the_value() {
        let base = [
            "add-port",
            "web1",
            "--netns",
            "web1",
            "--mac",
            "0a:58:0a:01:01:0a",
            "--ip",
            "10.1.1.10",
        ];
        let with = |flag: &str, value: &str| -> String {
            let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            match v.iter().position(|a| a == flag) {
                Some(i) => v[i + 1] = value.to_string(),
                None => v.extend([flag.to_string(), value.to_string()]),
            }
            err(&v.iter().map(String::as_str).collect::<Vec<_>>())
        };
        for (flag, value, words) in [
            (
                "--mac",
                "0a:58:zz:01:01:0a",
                "bad MAC \"0a:58:zz:01:01:0a\"",
            ),
            ("--mac", "0a:58", "expected 6 octets"),
            ("--mac", "ff:ff:ff:ff:ff:ff", "not a unicast"),
            ("--ip", "10.1.1.300", "10.1.1.300"),
            ("--vnid", "16777216", "24 bits"),
            ("--vnid", "ten", "\"ten\""),
            ("--mtu", "100", "100"),
            ("--ifname", "a/b", "bad interface name"),
        ] {
            let e = with(flag, value);
            assert!(
                e.contains(&format!("'{value}'")) && e.contains(words),
                "{flag} {value}: {e}"
            );
        }
        assert!(err(&[
            "add-port",
            "bad name",
            "--netns",
            "n",
            "--mac",
            "02:00:00:00:00:01",
            "--ip",
            "10.1.1.2"
        ])
        .contains("bad name \"bad name\""));
        let e = parse(&["add-port", "web1", "--netns", "web1", "--ip", "10.1.1.10"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--mac"), "{e}");
    }

    #[test]
    fn add_node_checks_prefix_and_addresses() {
        let ok = [
            "add-node",
            "n3",
            "--vtep",
            "2001:db8::3",
            "--vtep-mac",
            "02:f1:00:00:00:03",
            "--subnet",
            "10.1.3.0/24",
        ];
        let c = parse(&ok).unwrap();
        let Command::AddNode(a) = c.command else {
            panic!()
        };
        assert_eq!(a.spec().subnet.to_string(), "10.1.3.0/24");
        assert!(a.spec().vtep.is_ipv6());
        let mut bad = ok;
        bad[7] = "10.1.3.7/24";
        assert!(err(&bad).contains("host bits"));
        let mut bad = ok;
        bad[3] = "198.51.100";
        assert!(err(&bad).contains("198.51.100"));
        let mut bad = ok;
        bad[5] = "01:00:5e:00:00:01";
        assert!(err(&bad).contains("not a unicast"));
    }

    #[test]
    fn stats_watch_and_count() {
        let c = parse(&["stats", "--watch", "0.5", "--count", "3"]).unwrap();
        let Command::Stats(s) = c.command else {
            panic!()
        };
        assert_eq!(
            (s.watch, s.count),
            (Some(Duration::from_millis(500)), Some(3))
        );
        assert!(err(&["stats", "--count", "3"]).contains("--watch"));
        assert!(err(&["stats", "--watch", "0"]).contains("outside"));
        assert!(err(&["stats", "--watch", "x"]).contains("\"x\""));
    }

    #[test]
    fn help_lists_every_subcommand_with_an_example() {
        let help = Cli::command().render_long_help().to_string();
        let (commands, examples) = help.split_once("Examples:").expect("an Examples section");
        for sub in [
            "show", "fdb", "stats", "add-port", "del-port", "add-node", "del-node", "version",
        ] {
            assert!(
                commands.contains(&format!("\n  {sub} ")),
                "{sub} not listed in\n{help}"
            );
            let example = examples.lines().any(|l| {
                l.trim_start().starts_with("vxctl") && l.split_whitespace().any(|w| w == sub)
            });
            assert!(example, "no example of {sub} in\n{examples}");
        }
        let mut cmd = Cli::command();
        for sub in cmd.get_subcommands_mut() {
            let h = sub.render_long_help().to_string();
            assert!(h.contains("Example:"), "{} has no example", sub.get_name());
        }
    }
}
