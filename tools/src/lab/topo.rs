//! Names and addresses of a lab: pure functions of the lab name and the node and pod indices,
//! so every run of vxlab builds the same topology and tests can predict it.
//!
//! Node i (1-based) and its pod j (1-based):
//!
//! | what | value |
//! |---|---|
//! | node name / netns | `n{i}` / `LAB-n{i}` |
//! | underlay eth0 | `198.51.100.{i}/24`, MAC `02:00:c6:33:64:{i:02x}` |
//! | VTEP / VTEP MAC | `198.51.100.{i}` / `02:f1:00:00:00:{i:02x}` |
//! | pod subnet / gateway | `10.1.{i}.0/24` / `10.1.{i}.1` |
//! | pod name / netns | `n{i}p{j}` / `LAB-n{i}p{j}` |
//! | pod IP / MAC | `10.1.{i}.{j+1}` / `0a:58:0a:01:{i:02x}:{j+1:02x}` |

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::LabError;

/// Longest lab name: it prefixes namespace names (`LAB-n200p200` must stay short).
pub const MAX_NAME_LEN: usize = 8;
/// Most nodes a lab may have (the last octet of the underlay address).
pub const MAX_NODES: usize = 200;
/// Most pods a node may have (the last octet of the pod address).
pub const MAX_PODS: usize = 200;
/// MTU of the underlay veths.
pub const UNDERLAY_MTU: u16 = 1500;
/// VXLAN over IPv4 costs 50 bytes: outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8.
pub const VXLAN_OVERHEAD: u16 = 50;
/// MTU inside the pods of an overlay (every kind but `plain`).
pub const POD_MTU: u16 = UNDERLAY_MTU - VXLAN_OVERHEAD;
/// MTU inside the pods of a `plain` lab: no encapsulation, the underlay's own.
pub const PLAIN_POD_MTU: u16 = UNDERLAY_MTU;
/// The VXLAN network identifier every node uses (flannel's default).
pub const VNI: u32 = 1;
/// The whole pod network.
pub const CLUSTER_NETWORK: &str = "10.1.0.0/16";
/// Prefix length of the underlay.
pub const UNDERLAY_PREFIX: u8 = 24;
/// Name of the namespace suffix that holds the underlay bridge (3 or more nodes).
pub const UNDERLAY_NS_SUFFIX: &str = "ul";
/// The underlay bridge inside `LAB-ul`.
pub const UNDERLAY_BRIDGE: &str = "ul0";

/// Checks a lab name: 1-8 characters from `a-z0-9`.
pub fn validate_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LabError::BadName(name.to_string()))
    }
}

/// How a node joins its pods to the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// vxswitchd + vxagent in the node namespace.
    #[default]
    Vxswitch,
    /// The Linux vxlan driver, programmed as flannel's vxlan backend does.
    Kernel,
    /// Open vSwitch's userspace datapath (ovsdb-server + ovs-vswitchd per node namespace), set
    /// up as OVS's userspace-tunneling guide does. Only with other `ovs` nodes.
    Ovs,
    /// No overlay: pod subnets routed over the underlay (flannel's host-gw), the upper bound.
    /// Only with other `plain` nodes.
    Plain,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vxswitch => "vxswitch",
            Kind::Kernel => "kernel",
            Kind::Ovs => "ovs",
            Kind::Plain => "plain",
        }
    }

    /// Every kind, in the order help texts list them.
    pub const ALL: [Kind; 4] = [Kind::Vxswitch, Kind::Kernel, Kind::Ovs, Kind::Plain];

    /// The MTU of the pods of a node of this kind.
    pub fn pod_mtu(self) -> u16 {
        match self {
            Kind::Plain => PLAIN_POD_MTU,
            Kind::Vxswitch | Kind::Kernel | Kind::Ovs => POD_MTU,
        }
    }

    /// Whether nodes of this kind can share a lab with nodes of kind `other`: vxswitch and
    /// kernel interoperate on the wire; ovs and plain labs are all-ovs and all-plain.
    pub fn mixes_with(self, other: Kind) -> bool {
        match (self, other) {
            (a, b) if a == b => true,
            (Kind::Vxswitch | Kind::Kernel, Kind::Vxswitch | Kind::Kernel) => true,
            _ => false,
        }
    }

    /// Parses `vxswitch,kernel,...`: one kind per node, or one kind for all nodes.
    pub fn parse_list(s: &str) -> Result<Vec<Kind>, LabError> {
        s.split(',').map(|k| k.trim().parse()).collect()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Self, LabError> {
        match s {
            "vxswitch" => Ok(Kind::Vxswitch),
            "kernel" => Ok(Kind::Kernel),
            "ovs" => Ok(Kind::Ovs),
            "plain" => Ok(Kind::Plain),
            other => Err(LabError::BadSpec(format!(
                "unknown node kind {other:?}: use vxswitch, kernel, ovs or plain"
            ))),
        }
    }
}

/// The kind of node `i` (1-based) given the `kinds` list of a spec: an empty list means all
/// vxswitch, a single kind applies to every node, otherwise one entry per node.
pub fn kind_of(kinds: &[Kind], nodes: usize, i: usize) -> Result<Kind, LabError> {
    match kinds.len() {
        0 => Ok(Kind::Vxswitch),
        1 => Ok(kinds[0]),
        n if n == nodes => Ok(kinds[i - 1]),
        n => Err(LabError::BadSpec(format!(
            "{n} kinds given for {nodes} nodes: give one kind for all nodes or exactly one per node"
        ))),
    }
}

pub fn node_name(i: usize) -> String {
    format!("n{i}")
}

pub fn node_netns(lab: &str, i: usize) -> String {
    format!("{lab}-n{i}")
}

pub fn underlay_netns(lab: &str) -> String {
    format!("{lab}-{UNDERLAY_NS_SUFFIX}")
}

pub fn underlay_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, octet(i))
}

/// Node `i`'s address on an IPv6 underlay: `2001:db8::{i}`.
pub fn underlay_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, octet(i) as u16)
}

/// What an IPv6 outer header costs over an IPv4 one (40 - 20 bytes).
pub const IPV6_EXTRA_OVERHEAD: u16 = 20;

pub fn underlay_mac(i: usize) -> String {
    format!("02:00:c6:33:64:{:02x}", octet(i))
}

pub fn vtep_mac(i: usize) -> String {
    format!("02:f1:00:00:00:{:02x}", octet(i))
}

pub fn subnet(i: usize) -> String {
    format!("10.1.{}.0/24", octet(i))
}

/// The subnet's network address, which flannel puts on flannel.1 and routes remote subnets via.
pub fn subnet_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, octet(i), 0)
}

pub fn gateway(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, octet(i), 1)
}

/// Node `i`'s IPv6 pod prefix in a dual-stack lab: `fd00:10:1:{i}::/64`, next to 10.1.{i}.0/24.
pub fn subnet6(i: usize) -> String {
    format!("fd00:10:1:{}::/64", octet(i))
}

/// Pod `j` of node `i`'s IPv6 address: `fd00:10:1:{i}::{j+1}`, as its IPv4 one ends in j+1.
pub fn pod_ip6(i: usize, j: usize) -> Ipv6Addr {
    let hex = |n: u8| u16::from_str_radix(&n.to_string(), 16).expect("decimal digits are hex");
    Ipv6Addr::new(0xfd00, 0x10, 1, hex(octet(i)), 0, 0, 0, hex(octet(j + 1)))
}

/// Node `i`'s IPv6 gateway: the first host of its prefix.
pub fn gateway6(i: usize) -> Ipv6Addr {
    let hex = |n: u8| u16::from_str_radix(&n.to_string(), 16).expect("decimal digits are hex");
    Ipv6Addr::new(0xfd00, 0x10, 1, hex(octet(i)), 0, 0, 0, 1)
}

pub fn pod_name(i: usize, j: usize) -> String {
    format!("n{i}p{j}")
}

pub fn pod_netns(lab: &str, i: usize, j: usize) -> String {
    format!("{lab}-n{i}p{j}")
}

pub fn pod_ip(i: usize, j: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, octet(i), octet(j + 1))
}

pub fn pod_mac(i: usize, j: usize) -> String {
    format!("0a:58:0a:01:{:02x}:{:02x}", octet(i), octet(j + 1))
}

/// The host-side name of pod veths (kernel, ovs and plain nodes): `v{pod}`, at most 9 characters.
pub fn pod_host_ifname(i: usize, j: usize) -> String {
    format!("v{}", pod_name(i, j))
}

/// The MAC of node `i`'s virtual gateway in an `ovs` lab: br-int's own address, which the
/// pods have as a permanent neighbour for their gateway.
pub fn ovs_gateway_mac(i: usize) -> String {
    format!("02:67:77:00:00:{:02x}", octet(i))
}

/// The port of node `i` on the underlay bridge in `LAB-ul`.
pub fn underlay_port(i: usize) -> String {
    format!("n{i}")
}

/// True if `ns` is a namespace name vxlab makes for lab `lab`: `LAB-ul`, `LAB-n{i}` or
/// `LAB-n{i}p{j}`. Anything else, even with the same prefix, is not ours and is left alone.
pub fn is_lab_netns(lab: &str, ns: &str) -> bool {
    let Some(rest) = ns.strip_prefix(lab).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    if rest == UNDERLAY_NS_SUFFIX {
        return true;
    }
    let Some(rest) = rest.strip_prefix('n') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match rest.split_once('p') {
        Some((node, pod)) => digits(node) && digits(pod),
        None => digits(rest),
    }
}

/// The lab a namespace name belongs to, if it looks like one of vxlab's.
pub fn lab_of_netns(ns: &str) -> Option<&str> {
    let (lab, _) = ns.split_once('-')?;
    (validate_name(lab).is_ok() && is_lab_netns(lab, ns)).then_some(lab)
}

fn octet(i: usize) -> u8 {
    u8::try_from(i).expect("node and pod indices are checked against MAX_NODES/MAX_PODS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_alphanumerics() {
        for good in ["vxlab", "a", "lk1", "12345678", "z9"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "123456789", "Lab", "a-b", "a_b", "a.b", "lab ", "é"] {
            let e = validate_name(bad).unwrap_err();
            assert!(e.to_string().contains("1-8 characters"), "{bad}: {e}");
        }
    }

    #[test]
    fn addresses_follow_the_plan() {
        assert_eq!(node_netns("lab", 3), "lab-n3");
        assert_eq!(underlay_ip(2), Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(underlay_mac(200), "02:00:c6:33:64:c8");
        assert_eq!(vtep_mac(1), "02:f1:00:00:00:01");
        assert_eq!(ovs_gateway_mac(2), "02:67:77:00:00:02");
        assert_eq!(subnet(12), "10.1.12.0/24");
        assert_eq!(subnet_addr(12), Ipv4Addr::new(10, 1, 12, 0));
        assert_eq!(gateway(2), Ipv4Addr::new(10, 1, 2, 1));
        assert_eq!(pod_name(2, 1), "n2p1");
        assert_eq!(pod_netns("x", 2, 1), "x-n2p1");
        assert_eq!(pod_ip(1, 1), Ipv4Addr::new(10, 1, 1, 2));
        assert_eq!(pod_ip(200, 200), Ipv4Addr::new(10, 1, 200, 201));
        assert_eq!(pod_mac(1, 1), "0a:58:0a:01:01:02");
        assert_eq!(pod_mac(16, 15), "0a:58:0a:01:10:10");
        assert_eq!(pod_host_ifname(200, 200), "vn200p200");
        assert!(pod_host_ifname(200, 200).len() <= 15);
        assert_eq!(POD_MTU, 1450);
    }

    #[test]
    fn kinds_parse_and_spread_over_nodes() {
        assert_eq!(Kind::parse_list("kernel").unwrap(), vec![Kind::Kernel]);
        assert_eq!(
            Kind::parse_list("vxswitch, kernel").unwrap(),
            vec![Kind::Vxswitch, Kind::Kernel]
        );
        assert_eq!(
            Kind::parse_list("ovs,plain").unwrap(),
            vec![Kind::Ovs, Kind::Plain]
        );
        let e = Kind::parse_list("vxswitch,bgp").unwrap_err().to_string();
        assert!(
            e.contains("\"bgp\"") && e.contains("vxswitch, kernel, ovs or plain"),
            "{e}"
        );
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
        }
        assert!(Kind::parse_list("").is_err());

        assert_eq!(kind_of(&[], 3, 2).unwrap(), Kind::Vxswitch);
        assert_eq!(kind_of(&[Kind::Kernel], 3, 3).unwrap(), Kind::Kernel);
        let mixed = [Kind::Kernel, Kind::Vxswitch, Kind::Kernel];
        assert_eq!(kind_of(&mixed, 3, 2).unwrap(), Kind::Vxswitch);
        let e = kind_of(&mixed[..2], 3, 1).unwrap_err().to_string();
        assert!(e.contains("2 kinds given for 3 nodes"), "{e}");
        assert_eq!(Kind::Kernel.to_string(), "kernel");
        assert_eq!(
            serde_json::to_string(&Kind::Vxswitch).unwrap(),
            "\"vxswitch\""
        );
        assert_eq!(serde_json::to_string(&Kind::Ovs).unwrap(), "\"ovs\"");
    }

    #[test]
    fn only_overlay_kinds_mix_and_plain_pods_get_the_full_mtu() {
        assert!(Kind::Vxswitch.mixes_with(Kind::Kernel));
        assert!(Kind::Kernel.mixes_with(Kind::Vxswitch));
        assert!(Kind::Ovs.mixes_with(Kind::Ovs));
        assert!(Kind::Plain.mixes_with(Kind::Plain));
        for other in [Kind::Vxswitch, Kind::Kernel, Kind::Ovs] {
            assert!(!Kind::Plain.mixes_with(other), "{other}");
            assert!(!other.mixes_with(Kind::Plain), "{other}");
        }
        assert!(!Kind::Ovs.mixes_with(Kind::Kernel));
        assert!(!Kind::Vxswitch.mixes_with(Kind::Ovs));
        assert_eq!(Kind::Plain.pod_mtu(), 1500);
        assert_eq!(Kind::Ovs.pod_mtu(), 1450);
    }

    #[test]
    fn only_our_namespace_names_are_ours() {
        for ours in ["lab-n1", "lab-n200", "lab-n1p1", "lab-n12p200", "lab-ul"] {
            assert!(is_lab_netns("lab", ours), "{ours}");
            assert_eq!(lab_of_netns(ours), Some("lab"), "{ours}");
        }
        for other in [
            "lab",
            "lab-",
            "lab-n",
            "lab-np1",
            "lab-n1p",
            "lab-n1x",
            "lab-ulx",
            "labx-n1",
            "lab-n1-p1",
            "la-n1",
            "lab-n1p1p1",
        ] {
            assert!(!is_lab_netns("lab", other), "{other}");
        }
        assert_eq!(lab_of_netns("Foo-n1"), None);
        assert_eq!(lab_of_netns("cni-1234"), None);
    }
}
