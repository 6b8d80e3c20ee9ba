//! The CNI plugin (`vxswitch-cni`, plugin type `vxswitch`): the CNI 1.0 commands, their
//! configuration, results and errors.
//!
//! A runtime runs the plugin once per command with the `CNI_*` environment and the network
//! configuration on stdin:
//! - ADD learns the node's subnet (flannel's `subnet.env`, or vxswitchd's state), has the IPAM
//!   plugin allocate an address in it, and registers the pod with vxswitchd as one
//!   [`Change::AddPort`] owned by [`Owner::Cni`]; vxswitchd creates the TAP named
//!   `CNI_IFNAME` in `CNI_NETNS` and gives it its MAC, MTU, address and default route. When
//!   vxswitchd refuses, the address is released again. The result is printed.
//! - DEL removes the port and releases the address; what is already gone is no error.
//! - CHECK compares vxswitchd's port, the interface in the namespace and the IPAM allocation
//!   with the previous result.
//! - VERSION lists [`SUPPORTED_VERSIONS`].
//!
//! Errors are the specification's JSON object on stdout and a non-zero exit.

pub mod conf;
pub mod ipam;
pub mod netns;
pub mod node;
pub mod types;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde_json::Value;

use crate::client::Client;
use crate::proto::{Change, MacAddr, Owner, PortSpec, StateRepr};
use crate::Error;

pub use conf::{Command, Env, NetConf};
pub use node::NodeNet;
pub use types::{code, CniError, CniResult, SUPPORTED_VERSIONS};
use types::{Interface, IpConfig, LATEST_VERSION};

/// What the process prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub exit: i32,
}

/// Runs one invocation: `var` reads the environment, `stdin` is the configuration.
pub fn run(var: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let version = conf::sniff_version(stdin).unwrap_or_else(|| LATEST_VERSION.to_string());
    match dispatch(var, stdin) {
        Ok(Some(v)) => Outcome {
            stdout: format!("{v}\n"),
            exit: 0,
        },
        Ok(None) => Outcome {
            stdout: String::new(),
            exit: 0,
        },
        Err(e) => Outcome {
            stdout: format!("{}\n", e.to_json(&version)),
            exit: 1,
        },
    }
}

fn dispatch(var: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    let command = var("CNI_COMMAND").unwrap_or_default();
    let command = Command::parse(&command)?;
    if command == Command::Version {
        return Ok(Some(types::version_info(LATEST_VERSION)));
    }
    let env = Env::from_vars(command, var)?;
    let conf = NetConf::parse(stdin)?;
    match command {
        Command::Add => add(&env, &conf).map(|r| Some(r.to_json(&conf.cni_version))),
        Command::Del => del(&env, &conf).map(|()| None),
        Command::Check => check(&env, &conf).map(|()| None),
        Command::Version => Ok(None),
    }
}

/// The port name of a container's interface, unique on the node and within the name limits
/// (1-64 of `A-Za-z0-9-_.`): `cni-` + the container ID's first 12 characters (to recognise
/// it) + a 64-bit hash of the whole ID and the interface name (to keep pairs apart).
pub fn port_name(container_id: &str, ifname: &str) -> String {
    let short: String = container_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(12)
        .collect();
    // FNV-1a over "ID\0IFNAME".
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes().chain([0]).chain(ifname.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("cni-{short}-{h:016x}")
}

/// The pod's MAC: `0a:58:` and the IPv4 address, as Kubernetes networks derive it.
pub fn pod_mac(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x0a, 0x58, o[0], o[1], o[2], o[3]])
}

fn connect(conf: &NetConf) -> Result<Client, CniError> {
    Client::connect(&conf.socket, "vxswitch-cni").map_err(switch_error)
}

/// vxswitchd not reachable is transient (error 11); a refusal is ours (100).
fn switch_error(e: Error) -> CniError {
    let c = match &e {
        Error::Connect { .. } | Error::NoAnswer { .. } | Error::Closed | Error::Io(_) => {
            code::TRY_AGAIN_LATER
        }
        _ => code::SWITCH_REFUSED,
    };
    CniError::new(c, e.to_string())
}

/// The node's network: the subnet file when configured, else vxswitchd's node.
fn node_net(conf: &NetConf, state: Option<&StateRepr>) -> Result<NodeNet, CniError> {
    if let Some(file) = &conf.subnet_file {
        if !file.exists() {
            return Err(CniError::new(
                code::TRY_AGAIN_LATER,
                format!(
                    "{} does not exist yet (vxagent writes it once it holds the node's subnet)",
                    file.display()
                ),
            ));
        }
        return NodeNet::from_subnet_file(file).map_err(|e| CniError::new(code::INVALID_CONFIG, e));
    }
    match state.and_then(|s| s.local.as_ref()) {
        Some(l) => Ok(NodeNet::from_local(l)),
        None => Err(CniError::new(
            code::TRY_AGAIN_LATER,
            format!(
                "vxswitchd at {} has no node configured yet (vxagent sets it)",
                conf.socket.display()
            ),
        )),
    }
}

fn add(env: &Env, conf: &NetConf) -> Result<CniResult, CniError> {
    if !Path::new(&env.netns).exists() {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_NETNS {} does not exist", env.netns),
        ));
    }
    let mut client = connect(conf)?;
    let state = client.state().map_err(switch_error)?;
    let node = node_net(conf, Some(&state))?;
    let ipam_conf = ipam::fill_ipam(&conf.ipam, Some(&node))?;
    let allocated = ipam::exec(env, conf, &ipam_conf, Command::Add)?;
    match attach(env, conf, &node, allocated, &mut client) {
        Ok(r) => Ok(r),
        Err(e) => {
            // Nothing may leak: the address goes back to the pool (best effort; the error
            // that matters is the first one).
            let _ = ipam::exec(env, conf, &ipam_conf, Command::Del);
            Err(e)
        }
    }
}

/// Registers the pod's port with vxswitchd and builds the result.
fn attach(
    env: &Env,
    conf: &NetConf,
    node: &NodeNet,
    allocated: CniResult,
    client: &mut Client,
) -> Result<CniResult, CniError> {
    let ip = allocated
        .ips
        .iter()
        .find_map(|c| match c.address.addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| {
            CniError::new(
                code::IPAM_FAILED,
                format!("IPAM plugin {} gave no IPv4 address", conf.ipam_type()),
            )
        })?;
    if !node.subnet.contains(ip) {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!(
                "IPAM gave {ip}, outside the node's subnet {}: fix the ipam ranges",
                node.subnet
            ),
        ));
    }
    let ip6: Option<Ipv6Addr> = allocated.ips.iter().find_map(|c| match c.address.addr {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    });
    let mac = pod_mac(ip);
    let spec = PortSpec {
        name: port_name(&env.container_id, &env.ifname),
        netns: env.netns.clone(),
        mac,
        ip,
        ip6,
        vnid: conf.vnid,
        ifname: Some(env.ifname.clone()),
        mtu: conf.mtu.or(node.mtu),
    };
    spec.validate()
        .map_err(|e| CniError::new(code::INVALID_CONFIG, e))?;
    client
        .apply(Owner::Cni, None, vec![Change::AddPort(spec)])
        .map_err(switch_error)?;
    let ips = allocated
        .ips
        .iter()
        .map(|c| IpConfig {
            address: c.address,
            gateway: c.gateway.or(match c.address.addr {
                IpAddr::V4(_) => Some(IpAddr::V4(node.gateway)),
                IpAddr::V6(_) => None,
            }),
            interface: Some(0),
        })
        .collect();
    let mut dns = allocated.dns;
    if dns.is_empty() {
        if let Some(Value::Object(d)) = conf.raw.get("dns") {
            dns = d.clone();
        }
    }
    Ok(CniResult {
        interfaces: vec![Interface {
            name: env.ifname.clone(),
            mac: mac.to_string(),
            sandbox: env.netns.clone(),
        }],
        ips,
        routes: allocated.routes,
        dns,
    })
}

/// The node's network for DEL and CHECK, from whatever still knows it: the subnet file,
/// vxswitchd's node, or the previous result's address.
fn node_for_release(conf: &NetConf, state: Option<&StateRepr>) -> Option<NodeNet> {
    if let Ok(n) = node_net(conf, state) {
        return Some(n);
    }
    let prev = CniResult::from_json(conf.prev_result.as_ref()?).ok()?;
    prev.ips
        .iter()
        .find_map(|c| match (c.address.addr, c.gateway) {
            (IpAddr::V4(a), Some(IpAddr::V4(gw))) => {
                let len = u32::from(c.address.prefix);
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                let subnet = crate::proto::Ipv4Cidr::new(
                    Ipv4Addr::from(u32::from(a) & mask),
                    c.address.prefix,
                )
                .ok()?;
                Some(NodeNet {
                    subnet,
                    gateway: gw,
                    network: None,
                    mtu: None,
                })
            }
            _ => None,
        })
}

fn del(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let name = port_name(&env.container_id, &env.ifname);
    let mut client = connect(conf)?;
    let state = client.state().map_err(switch_error)?;
    if state.ports.iter().any(|p| p.name == name) {
        client
            .apply(
                Owner::Cni,
                None,
                vec![Change::DelPort { name: name.clone() }],
            )
            .map_err(switch_error)?;
    }
    let node = node_for_release(conf, Some(&state));
    let ipam_conf = ipam::fill_ipam(&conf.ipam, node.as_ref())?;
    ipam::exec(env, conf, &ipam_conf, Command::Del)?;
    Ok(())
}

fn mismatch(msg: String) -> CniError {
    CniError::new(code::CHECK_MISMATCH, msg)
}

fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    if !conf.has_check() {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "cniVersion {} has no CHECK (0.4.0 and later have)",
                conf.cni_version
            ),
        ));
    }
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "CHECK needs the ADD result as \"prevResult\"",
        )
    })?;
    let prev = CniResult::from_json(prev)
        .map_err(|e| CniError::new(code::DECODE_FAILURE, format!("prevResult: {e}")))?;
    let index = prev
        .interfaces
        .iter()
        .position(|i| i.name == env.ifname && i.sandbox == env.netns)
        .ok_or_else(|| {
            mismatch(format!(
                "prevResult has no interface {} in {}",
                env.ifname, env.netns
            ))
        })?;
    let (ip, prefix) = prev
        .ips
        .iter()
        .find_map(|c| match (c.interface, c.address.addr) {
            (Some(i), IpAddr::V4(a)) if i == index => Some((a, c.address.prefix)),
            _ => None,
        })
        .ok_or_else(|| mismatch(format!("prevResult has no IPv4 address on {}", env.ifname)))?;
    let name = port_name(&env.container_id, &env.ifname);
    let mut client = connect(conf)?;
    let state = client.state().map_err(switch_error)?;
    let port = state
        .ports
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| mismatch(format!("vxswitchd has no port {name} for this container")))?;
    let spec = port
        .spec
        .as_ref()
        .ok_or_else(|| mismatch(format!("vxswitchd's port {name} is not a pod port")))?;
    if spec.ip != ip || spec.netns != env.netns || spec.ifname() != env.ifname {
        return Err(mismatch(format!(
            "vxswitchd's port {name} is {} in {} as {}, the previous result says {ip} in {} as {}",
            spec.ip,
            spec.netns,
            spec.ifname(),
            env.netns,
            env.ifname
        )));
    }
    if port.owner != Some(Owner::Cni) {
        return Err(mismatch(format!(
            "vxswitchd's port {name} is not owned by cni"
        )));
    }
    if port.status != "up" {
        return Err(mismatch(format!(
            "vxswitchd's port {name} is {}",
            port.status
        )));
    }
    let seen = netns::look(&env.netns, &env.ifname)
        .map_err(|e| CniError::new(code::IO_FAILURE, e))?
        .ok_or_else(|| mismatch(format!("{} has no interface {}", env.netns, env.ifname)))?;
    if !seen.addrs.contains(&(IpAddr::V4(ip), prefix)) {
        return Err(mismatch(format!(
            "{} in {} does not hold {ip}/{prefix} (it holds {:?})",
            env.ifname, env.netns, seen.addrs
        )));
    }
    if !seen.mac.eq_ignore_ascii_case(&spec.mac.to_string()) {
        return Err(mismatch(format!(
            "{} in {} has MAC {}, vxswitchd's port {}",
            env.ifname, env.netns, seen.mac, spec.mac
        )));
    }
    let node = node_for_release(conf, Some(&state));
    let ipam_conf = ipam::fill_ipam(&conf.ipam, node.as_ref())?;
    ipam::exec(env, conf, &ipam_conf, Command::Check)?;
    Ok(())
}

/// What `vxswitch-cni --help` (or a run without `CNI_COMMAND`) prints.
pub fn help(version: &str) -> String {
    format!(
        "CNI vxswitch plugin version {version} (CNI specification {})\n\
         \n\
         A container runtime runs this program as the CNI plugin of type \"vxswitch\" (install\n\
         it as `vxswitch` in the runtime's CNI plugin directory). It attaches the container to\n\
         vxswitchd: ADD has the IPAM plugin allocate an address in the node's subnet and\n\
         registers the pod's port (a TAP named CNI_IFNAME in CNI_NETNS) with vxswitchd; DEL\n\
         removes it and releases the address; CHECK verifies both.\n\
         \n\
         Network configuration (keys besides cniVersion, name, type):\n\
         \x20 socket      vxswitchd's control socket (default {})\n\
         \x20 subnetFile  flannel's subnet.env as vxagent writes it; without it the node's\n\
         \x20             subnet is read from vxswitchd\n\
         \x20 mtu, vnid   the pod's MTU and VNID (default: the node's)\n\
         \x20 ipam        the IPAM plugin; subnet, gateway and routes are filled in from the\n\
         \x20             node when absent\n\
         \n\
         Example (/etc/cni/net.d/10-vxnet.conflist):\n\
         {{\n\
         \x20 \"cniVersion\": \"1.0.0\",\n\
         \x20 \"name\": \"vxnet\",\n\
         \x20 \"plugins\": [{{\n\
         \x20   \"type\": \"vxswitch\",\n\
         \x20   \"socket\": \"{}\",\n\
         \x20   \"subnetFile\": \"/run/flannel/subnet.env\",\n\
         \x20   \"ipam\": {{\"type\": \"host-local\"}}\n\
         \x20 }}]\n\
         }}\n",
        SUPPORTED_VERSIONS.join(", "),
        crate::DEFAULT_SOCKET,
        crate::DEFAULT_SOCKET,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names_fit_the_limits_and_keep_pairs_apart() {
        let long = "f".repeat(64);
        let a = port_name(&long, "eth0");
        assert!(a.len() <= 64 && a.starts_with("cni-ffffffffffff-"), "{a}");
        assert_ne!(a, port_name(&long, "eth1"));
        assert_ne!(port_name("abc", "eth0"), port_name("abcd", "eth0"));
        assert_eq!(port_name("abc", "eth0"), port_name("abc", "eth0"));
        let p = PortSpec {
            name: a,
            netns: "/run/netns/x".into(),
            mac: pod_mac(Ipv4Addr::new(10, 1, 1, 5)),
            ip: Ipv4Addr::new(10, 1, 1, 5),
            ip6: None,
            vnid: None,
            ifname: None,
            mtu: None,
        };
        p.validate().unwrap();
        assert_eq!(p.mac.to_string(), "0a:58:0a:01:01:05");
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(a, _)| *a == k)
                .map(|(_, b)| b.to_string())
        }
    }

    #[test]
    fn version_and_errors_are_printed_as_json() {
        let o = run(
            &env(&[("CNI_COMMAND", "VERSION")]),
            br#"{"cniVersion":"0.4.0"}"#,
        );
        assert_eq!(o.exit, 0);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(
            v["supportedVersions"],
            serde_json::json!(SUPPORTED_VERSIONS)
        );

        let o = run(
            &env(&[("CNI_COMMAND", "FROB")]),
            br#"{"cniVersion":"0.4.0"}"#,
        );
        assert_eq!(o.exit, 1);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(
            (v["code"].as_u64(), v["cniVersion"].as_str()),
            (Some(4), Some("0.4.0"))
        );

        let vars: &[(&str, &str)] = &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/none"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ];
        let o = run(&env(vars), b"{\"cniVersion\": ");
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!((o.exit, v["code"].as_u64()), (1, Some(6)));
    }
}
