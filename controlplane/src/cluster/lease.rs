//! One node's lease, `<prefix>/subnets/10.1.2.0-24` (or `10.1.2.0-24&fd00:10:1:2::-64` with an
//! IPv6 subnet), holding flannel's lease attributes:
//!
//! ```json
//! {"PublicIP":"198.51.100.2","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:f1:00:00:00:02"}}
//! ```
//!
//! Parsing tolerates unknown fields (and the `"PublicIPv6":null` flannel writes); what vxswitch
//! writes is exactly what flannel's decoder reads.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::proto::{Ipv4Cidr, Ipv6Cidr, MacAddr, RemoteNode};

use super::network::NetworkConfig;

/// flannel's backend name for VXLAN.
pub const BACKEND_VXLAN: &str = "vxlan";

/// The subnet part of a lease key: `10.1.2.0-24`, with `&fd00:10:1:2::-64` for dual stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubnetKey {
    pub subnet: Ipv4Cidr,
    pub subnet6: Option<Ipv6Cidr>,
}

impl SubnetKey {
    /// The key's text, as flannel's `MakeSubnetKey` writes it.
    pub fn to_key(&self) -> String {
        let v4 = format!("{}-{}", self.subnet.addr(), self.subnet.prefix());
        match self.subnet6 {
            Some(s6) => format!("{v4}&{}-{}", s6.addr(), s6.prefix()),
            None => v4,
        }
    }

    /// Parses the last path element of a lease key; None for keys that are not leases.
    pub fn parse(key: &str) -> Option<SubnetKey> {
        let last = key.rsplit('/').next()?;
        let (v4, v6) = match last.split_once('&') {
            Some((a, b)) => (a, Some(b)),
            None => (last, None),
        };
        let (a, p) = v4.rsplit_once('-')?;
        let subnet = Ipv4Cidr::new(a.parse().ok()?, p.parse().ok()?).ok()?;
        let subnet6 = match v6 {
            Some(v6) => {
                let (a, p) = v6.rsplit_once('-')?;
                Some(Ipv6Cidr::new(a.parse().ok()?, p.parse().ok()?).ok()?)
            }
            None => None,
        };
        Some(SubnetKey { subnet, subnet6 })
    }

    /// The node name a lease gets in vxswitchd: the IPv4 part of its key (`10.1.2.0-24`).
    pub fn node_name(&self) -> String {
        format!("{}-{}", self.subnet.addr(), self.subnet.prefix())
    }
}

/// flannel's `LeaseAttrs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseAttrs {
    #[serde(rename = "PublicIP")]
    pub public_ip: Ipv4Addr,
    #[serde(
        rename = "PublicIPv6",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub public_ipv6: Option<Ipv6Addr>,
    #[serde(
        rename = "BackendType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub backend_type: String,
    #[serde(
        rename = "BackendData",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub backend_data: Option<Value>,
    #[serde(
        rename = "BackendV6Data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub backend_v6_data: Option<Value>,
}

/// The vxlan backend's `BackendData`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanData {
    #[serde(rename = "VNI")]
    pub vni: u32,
    #[serde(rename = "VtepMAC")]
    pub vtep_mac: MacAddr,
}

impl LeaseAttrs {
    /// The attributes of a vxlan node.
    pub fn vxlan(public_ip: Ipv4Addr, vni: u32, vtep_mac: MacAddr) -> LeaseAttrs {
        LeaseAttrs {
            public_ip,
            public_ipv6: None,
            backend_type: BACKEND_VXLAN.to_string(),
            backend_data: serde_json::to_value(VxlanData { vni, vtep_mac }).ok(),
            backend_v6_data: None,
        }
    }

    pub fn parse(value: &[u8]) -> Result<LeaseAttrs, String> {
        serde_json::from_slice(value).map_err(|e| format!("bad lease JSON: {e}"))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The vxlan backend data, when this is a vxlan lease.
    pub fn vxlan_data(&self) -> Result<VxlanData, String> {
        if self.backend_type != BACKEND_VXLAN {
            return Err(format!(
                "backend {:?} is not vxlan: vxswitch cannot reach this node",
                self.backend_type
            ));
        }
        let data = self
            .backend_data
            .clone()
            .ok_or("vxlan lease without BackendData")?;
        serde_json::from_value(data).map_err(|e| format!("bad BackendData: {e}"))
    }
}

/// Another node's lease, as read from etcd.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub key: SubnetKey,
    pub attrs: LeaseAttrs,
}

impl Lease {
    /// Parses a lease key and value; errors say what is wrong with it.
    pub fn parse(key: &str, value: &[u8]) -> Result<Lease, String> {
        let sk = SubnetKey::parse(key).ok_or_else(|| format!("{key}: not a subnet lease key"))?;
        let attrs = LeaseAttrs::parse(value).map_err(|e| format!("{key}: {e}"))?;
        Ok(Lease { key: sk, attrs })
    }

    /// The remote node this lease describes for vxswitchd.
    pub fn to_remote(&self) -> Result<RemoteNode, String> {
        let data = self.attrs.vxlan_data()?;
        let node = RemoteNode {
            name: self.key.node_name(),
            vtep: IpAddr::V4(self.attrs.public_ip),
            vtep_mac: data.vtep_mac,
            subnet: self.key.subnet,
            subnet6: self.key.subnet6,
        };
        node.validate()?;
        Ok(node)
    }
}

/// Picks a free subnet: `count` candidates numbered from 0, `taken` holds the numbers in use.
/// Small ranges are enumerated and one free number picked at random (as flannel does, so
/// agents starting together rarely race for the same one); huge ranges are probed at random.
pub fn pick(count: u128, taken: &HashSet<u128>, seed: &mut u64) -> Option<u128> {
    const ENUMERATE: u128 = 1 << 16;
    if count <= ENUMERATE {
        let free: Vec<u128> = (0..count).filter(|i| !taken.contains(i)).collect();
        if free.is_empty() {
            return None;
        }
        let i = (next(seed) as u128) % free.len() as u128;
        return free.get(i as usize).copied();
    }
    (0..4096)
        .map(|_| ((u128::from(next(seed)) << 64) | u128::from(next(seed))) % count)
        .find(|i| !taken.contains(i))
}

/// xorshift64*: enough to spread agents over the free subnets.
fn next(seed: &mut u64) -> u64 {
    let mut x = *seed | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *seed = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// The index of `s` in the network's range, if it is one of its subnets.
pub fn index_of(net: &NetworkConfig, s: &Ipv4Cidr) -> Option<u128> {
    net.allows(s).then(|| {
        u128::from((u32::from(s.addr()) - u32::from(net.subnet_min)) >> (32 - net.subnet_len))
    })
}

/// The index of `s` in the network's IPv6 range.
pub fn index_of6(net: &NetworkConfig, s: &Ipv6Cidr) -> Option<u128> {
    let v6 = net.ipv6.as_ref()?;
    v6.allows(s).then(|| {
        (u128::from(s.addr()) - u128::from(v6.subnet_min)) >> (128 - u32::from(v6.subnet_len))
    })
}
