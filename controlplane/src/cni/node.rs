//! The node's pod network: its subnet, gateway, cluster network and pod MTU, read from
//! flannel's `subnet.env` as flannel's own CNI plugin reads it, or from vxswitchd's state.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::proto::{Ipv4Cidr, LocalNode};

/// What the IPAM configuration and the pod's port need to know about the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeNet {
    /// The node's pod subnet, e.g. 10.1.1.0/24.
    pub subnet: Ipv4Cidr,
    /// The pods' gateway (vxhost0's address).
    pub gateway: Ipv4Addr,
    /// The whole cluster network, when known.
    pub network: Option<Ipv4Cidr>,
    /// The pods' MTU, when the source says.
    pub mtu: Option<u16>,
}

impl NodeNet {
    /// From the node vxswitchd was configured with.
    pub fn from_local(l: &LocalNode) -> NodeNet {
        NodeNet {
            subnet: l.subnet,
            gateway: l.gateway(),
            network: Some(l.cluster_network),
            mtu: Some(l.pod_mtu()),
        }
    }

    /// Reads flannel's `subnet.env`: `FLANNEL_SUBNET=10.1.1.1/24` (the gateway with the
    /// subnet's length; a file naming the subnet itself, `10.1.1.0/24`, means its first
    /// host), `FLANNEL_NETWORK=10.1.0.0/16`, `FLANNEL_MTU=1450`. Other lines
    /// (`FLANNEL_IPMASQ`, IPv6 keys, comments) are ignored.
    pub fn from_subnet_env(text: &str) -> Result<NodeNet, String> {
        let mut subnet = None;
        let mut network = None;
        let mut mtu = None;
        for line in text.lines() {
            let line = line.trim();
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim() {
                "FLANNEL_SUBNET" => {
                    let (a, p) = v
                        .split_once('/')
                        .ok_or_else(|| format!("FLANNEL_SUBNET={v} is not ADDR/LEN"))?;
                    let gw: Ipv4Addr = a
                        .parse()
                        .map_err(|_| format!("FLANNEL_SUBNET={v}: {a:?} is not an IPv4 address"))?;
                    let len: u8 =
                        p.parse().ok().filter(|l| *l <= 30).ok_or_else(|| {
                            format!("FLANNEL_SUBNET={v}: bad prefix length {p:?}")
                        })?;
                    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    let net = Ipv4Cidr::new(Ipv4Addr::from(u32::from(gw) & mask), len)?;
                    let gw = if gw == net.addr() { net.nth(1) } else { gw };
                    subnet = Some((net, gw));
                }
                "FLANNEL_NETWORK" => {
                    network = Some(
                        v.parse::<Ipv4Cidr>()
                            .map_err(|e| format!("FLANNEL_NETWORK={v}: {e}"))?,
                    )
                }
                "FLANNEL_MTU" => {
                    mtu = Some(
                        v.parse::<u16>()
                            .ok()
                            .filter(|m| (576..=9000).contains(m))
                            .ok_or_else(|| {
                                format!("FLANNEL_MTU={v} is not an MTU in 576..=9000")
                            })?,
                    )
                }
                _ => {}
            }
        }
        let (subnet, gateway) = subnet.ok_or("no FLANNEL_SUBNET line")?;
        if gateway == subnet.addr() || gateway == subnet.broadcast() {
            return Err(format!(
                "FLANNEL_SUBNET={gateway}/{}: the gateway must be a host address",
                subnet.prefix()
            ));
        }
        Ok(NodeNet {
            subnet,
            gateway,
            network,
            mtu,
        })
    }

    /// Reads a `subnet.env` file.
    pub fn from_subnet_file(path: &Path) -> Result<NodeNet, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        NodeNet::from_subnet_env(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flannels_subnet_env_reads_as_flannels_plugin_reads_it() {
        let n = NodeNet::from_subnet_env(
            "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.3.1/24\nFLANNEL_MTU=1450\n\
             FLANNEL_IPMASQ=false\n",
        )
        .unwrap();
        assert_eq!(n.subnet.to_string(), "10.1.3.0/24");
        assert_eq!(n.gateway, Ipv4Addr::new(10, 1, 3, 1));
        assert_eq!(
            n.network.map(|c| c.to_string()).as_deref(),
            Some("10.1.0.0/16")
        );
        assert_eq!(n.mtu, Some(1450));
    }

    #[test]
    fn a_subnet_env_naming_the_subnet_means_its_first_host_as_gateway() {
        let n = NodeNet::from_subnet_env("FLANNEL_SUBNET=10.1.3.0/24\n").unwrap();
        assert_eq!(n.subnet.to_string(), "10.1.3.0/24");
        assert_eq!(n.gateway, Ipv4Addr::new(10, 1, 3, 1));
        assert_eq!((n.network, n.mtu), (None, None));
    }

    #[test]
    fn a_broken_subnet_env_is_refused_with_the_line() {
        for (text, needle) in [
            ("FLANNEL_NETWORK=10.1.0.0/16\n", "no FLANNEL_SUBNET"),
            ("FLANNEL_SUBNET=10.1.3.1\n", "ADDR/LEN"),
            ("FLANNEL_SUBNET=10.1.3.x/24\n", "IPv4"),
            ("FLANNEL_SUBNET=10.1.3.1/33\n", "prefix length"),
            ("FLANNEL_SUBNET=10.1.3.255/24\n", "host address"),
            (
                "FLANNEL_SUBNET=10.1.3.1/24\nFLANNEL_MTU=big\n",
                "FLANNEL_MTU",
            ),
            (
                "FLANNEL_SUBNET=10.1.3.1/24\nFLANNEL_NETWORK=10.1.0.1/16\n",
                "host bits",
            ),
        ] {
            let e = NodeNet::from_subnet_env(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
