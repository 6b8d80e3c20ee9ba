//! The agent file: TOML in, validated [`AgentConfig`] out, or a `FILE:LINE: reason` error.
//!
//! Every value is read as a [`Spanned`] so that both syntax errors (from the TOML parser) and
//! semantic errors (checked here) can name the line of the offending key or table.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;
use toml::Spanned;

use crate::proto::{Ipv4Cidr, Ipv6Cidr, LocalNode, MacAddr, PortSpec, RemoteNode};

/// Same defaults as [`LocalNode`]'s serde defaults.
const DEFAULT_VNI: u32 = 1;
const DEFAULT_CLUSTER_NETWORK: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 1, 0, 0), 16);
const DEFAULT_UNDERLAY_MTU: u16 = 1500;

/// Port names the switch uses for its own ports.
const RESERVED_PORT_NAMES: [&str; 2] = ["vxlan0", "vxhost0"];

/// What the agent file declares for this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub local: LocalNode,
    /// `[node] multitenant`: install OpenShift-SDN-style flows (underlay filter, port
    /// security, tenant forwarding) instead of the single `actions=normal` flow.
    pub multitenant: bool,
    pub pods: Vec<PortSpec>,
    pub nodes: Vec<RemoteNode>,
}

/// A rejected agent file. Displays as `FILE:LINE: reason` (or `FILE: reason` without a line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line of the offending key or table, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Identity of one version of the file: a change in any part means "read it again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub mtime: Option<SystemTime>,
    pub size: u64,
    pub hash: u64,
}

/// Reads the file and fingerprints it, without parsing.
pub fn read(path: &Path) -> Result<(String, Fingerprint), ConfigError> {
    let unreadable = |e: std::io::Error| ConfigError {
        file: path.display().to_string(),
        line: None,
        message: format!("cannot read the agent file: {e}"),
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    let fp = Fingerprint {
        mtime: meta.modified().ok(),
        size: meta.len(),
        hash: h.finish(),
    };
    Ok((text, fp))
}

/// Reads, parses and validates the file.
pub fn load(path: &Path) -> Result<(AgentConfig, Fingerprint), ConfigError> {
    let (text, fp) = read(path)?;
    Ok((parse(&path.display().to_string(), &text)?, fp))
}

/// Parses and validates the text of an agent file; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<AgentConfig, ConfigError> {
    parse_with(file, text, None)
}

/// What cluster mode takes from etcd instead of the file's `[node]`: the leased subnet(s), and
/// the network config's `Network` and `Backend.VNI`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leased {
    pub subnet: Ipv4Cidr,
    pub subnet6: Option<Ipv6Cidr>,
    pub vni: u32,
    pub cluster_network: Ipv4Cidr,
}

/// The file's `[node]` as cluster mode needs it before a subnet is leased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub name: String,
    pub vtep: IpAddr,
    pub vtep_mac: MacAddr,
    /// `[node] subnet`, optional in cluster mode: the subnet to ask for.
    pub subnet: Option<Ipv4Cidr>,
    /// `[node] subnet6`: the IPv6 prefix to ask for when the network has IPv6.
    pub subnet6: Option<Ipv6Cidr>,
    pub underlay_mtu: u16,
}

/// Reads `[node]`'s identity without validating the rest (which needs the leased subnet).
pub fn identity(file: &str, text: &str) -> Result<NodeIdentity, ConfigError> {
    let raw: FileRepr = toml::from_str(text).map_err(|e| ConfigError {
        file: file.to_string(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim().replace('\n', "; "),
    })?;
    let n = raw.node.get_ref();
    Ok(NodeIdentity {
        name: n.name.get_ref().clone(),
        vtep: *n.vtep.get_ref(),
        vtep_mac: *n.vtep_mac.get_ref(),
        subnet: value_of(&n.subnet),
        subnet6: value_of(&n.subnet6),
        underlay_mtu: value_of(&n.underlay_mtu).unwrap_or(DEFAULT_UNDERLAY_MTU),
    })
}

/// Parses and validates the text of an agent file; in cluster mode (`leased`), the node's
/// subnet, VNI and cluster network come from etcd and `[node] subnet` is optional.
pub fn parse_with(
    file: &str,
    text: &str,
    leased: Option<&Leased>,
) -> Result<AgentConfig, ConfigError> {
    let err = |span: Option<Range<usize>>, message: String| ConfigError {
        file: file.to_string(),
        line: span.map(|s| line_of(text, s.start)),
        message,
    };
    let raw: FileRepr =
        toml::from_str(text).map_err(|e| err(e.span(), e.message().trim().replace('\n', "; ")))?;
    raw.validate(text, leased)
        .map_err(|(span, message)| err(Some(span), message))
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

type Checked<T> = Result<T, (Range<usize>, String)>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    node: Spanned<NodeRepr>,
    #[serde(default)]
    pods: Vec<Spanned<PodRepr>>,
    #[serde(default)]
    nodes: Vec<Spanned<RemoteRepr>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeRepr {
    name: Spanned<String>,
    vtep: Spanned<IpAddr>,
    vtep_mac: Spanned<MacAddr>,
    subnet: Option<Spanned<Ipv4Cidr>>,
    gateway: Option<Spanned<Ipv4Addr>>,
    vni: Option<Spanned<u32>>,
    cluster_network: Option<Spanned<Ipv4Cidr>>,
    underlay_mtu: Option<Spanned<u16>>,
    multitenant: Option<Spanned<bool>>,
    subnet6: Option<Spanned<Ipv6Cidr>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PodRepr {
    name: Spanned<String>,
    netns: Spanned<String>,
    mac: Spanned<MacAddr>,
    ip: Spanned<Ipv4Addr>,
    ip6: Option<Spanned<Ipv6Addr>>,
    vnid: Option<Spanned<u32>>,
    ifname: Option<Spanned<String>>,
    mtu: Option<Spanned<u16>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteRepr {
    name: Spanned<String>,
    vtep: Spanned<IpAddr>,
    vtep_mac: Spanned<MacAddr>,
    subnet: Spanned<Ipv4Cidr>,
    subnet6: Option<Spanned<Ipv6Cidr>>,
}

fn span_of<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
    v.as_ref().map(Spanned::span)
}

fn value_of<T: Clone>(v: &Option<Spanned<T>>) -> Option<T> {
    v.as_ref().map(|s| s.get_ref().clone())
}

/// Points a `validate()` message from `proto` at the key it is about, else at the table.
/// `keys` pairs a word the message may contain with the span of the key it names.
fn locate(
    table: Range<usize>,
    message: &str,
    keys: &[(&str, Option<Range<usize>>)],
) -> Range<usize> {
    keys.iter()
        .find_map(|(word, span)| span.clone().filter(|_| message.contains(word)))
        .unwrap_or(table)
}

impl FileRepr {
    fn validate(self, text: &str, leased: Option<&Leased>) -> Checked<AgentConfig> {
        let node = self.node.get_ref();
        let local = node.to_local(self.node.span(), leased)?;
        let multitenant = value_of(&node.multitenant).unwrap_or(false);
        if let (true, Some(key), IpAddr::V6(_)) = (multitenant, &node.multitenant, local.vtep) {
            return Err((
                key.span(),
                format!(
                    "[node]: multitenant needs an IPv4 underlay (its flows match tun_src, which \
                     is IPv4 only), but vtep is {}",
                    local.vtep
                ),
            ));
        }
        let mut pods = Vec::with_capacity(self.pods.len());
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut ips: HashMap<Ipv4Addr, Range<usize>> = HashMap::new();
        let mut ips6: HashMap<Ipv6Addr, Range<usize>> = HashMap::new();
        let mut macs: HashMap<MacAddr, Range<usize>> = HashMap::new();
        let mut ifaces: HashMap<(String, String), Range<usize>> = HashMap::new();
        for pod in &self.pods {
            let p = pod.get_ref();
            let spec = p.to_spec(pod.span(), &local)?;
            if let Some(first) = names.insert(spec.name.clone(), p.name.span()) {
                return Err(dup(text, p.name.span(), "pod name", &spec.name, first));
            }
            if let Some(first) = ips.insert(spec.ip, p.ip.span()) {
                return Err(dup(text, p.ip.span(), "pod IP", &spec.ip, first));
            }
            if let (Some(ip6), Some(key)) = (spec.ip6, &p.ip6) {
                if let Some(first) = ips6.insert(ip6, key.span()) {
                    return Err(dup(text, key.span(), "pod IPv6 address", &ip6, first));
                }
            }
            if let Some(first) = macs.insert(spec.mac, p.mac.span()) {
                return Err(dup(text, p.mac.span(), "pod MAC", &spec.mac, first));
            }
            let iface = (spec.netns.clone(), spec.ifname().to_string());
            if let Some(first) = ifaces.insert(iface, p.netns.span()) {
                let what = format!("interface {} in netns", spec.ifname());
                return Err(dup(text, p.netns.span(), &what, &spec.netns, first));
            }
            pods.push(spec);
        }
        let mut nodes: Vec<(RemoteNode, &RemoteRepr)> = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let r = node.get_ref();
            let spec = r.to_remote(node.span(), &local)?;
            for (other, o) in &nodes {
                if other.name == spec.name {
                    return Err(dup(
                        text,
                        r.name.span(),
                        "node name",
                        &spec.name,
                        o.name.span(),
                    ));
                }
                if other.subnet.overlaps(&spec.subnet) {
                    return Err((
                        r.subnet.span(),
                        format!(
                            "node {}: subnet {} overlaps subnet {} of node {} (line {})",
                            spec.name,
                            spec.subnet,
                            other.subnet,
                            other.name,
                            line_of(text, o.subnet.span().start)
                        ),
                    ));
                }
                if let (Some(a), Some(b), Some(key), Some(okey)) =
                    (spec.subnet6, other.subnet6, &r.subnet6, &o.subnet6)
                {
                    if a.overlaps(&b) {
                        return Err((
                            key.span(),
                            format!(
                                "node {}: subnet6 {a} overlaps subnet6 {b} of node {} (line {})",
                                spec.name,
                                other.name,
                                line_of(text, okey.span().start)
                            ),
                        ));
                    }
                }
            }
            nodes.push((spec, r));
        }
        Ok(AgentConfig {
            local,
            multitenant,
            pods,
            nodes: nodes.into_iter().map(|(n, _)| n).collect(),
        })
    }
}

/// A duplicate-value error at `at`, naming the line of the first use.
fn dup(
    text: &str,
    at: Range<usize>,
    what: &str,
    value: &dyn fmt::Display,
    first: Range<usize>,
) -> (Range<usize>, String) {
    let line = line_of(text, first.start);
    (at, format!("{what} {value} is already used at line {line}"))
}

impl NodeRepr {
    fn to_local(&self, table: Range<usize>, leased: Option<&Leased>) -> Checked<LocalNode> {
        let (net, prefix) = DEFAULT_CLUSTER_NETWORK;
        let mut local = LocalNode {
            name: self.name.get_ref().clone(),
            vtep: *self.vtep.get_ref(),
            vtep_mac: *self.vtep_mac.get_ref(),
            subnet: Ipv4Cidr::new(net, prefix).expect("valid constant"),
            gateway: value_of(&self.gateway),
            vni: value_of(&self.vni).unwrap_or(DEFAULT_VNI),
            cluster_network: value_of(&self.cluster_network)
                .unwrap_or_else(|| Ipv4Cidr::new(net, prefix).expect("valid constant")),
            underlay_mtu: value_of(&self.underlay_mtu).unwrap_or(DEFAULT_UNDERLAY_MTU),
            subnet6: value_of(&self.subnet6),
        };
        match (leased, &self.subnet) {
            (Some(l), _) => {
                local.subnet = l.subnet;
                // A gateway from the file only makes sense inside the leased subnet.
                local.gateway = local.gateway.filter(|g| l.subnet.contains(*g));
                local.vni = l.vni;
                local.cluster_network = l.cluster_network;
                local.subnet6 = l.subnet6;
            }
            (None, Some(s)) => local.subnet = *s.get_ref(),
            (None, None) => {
                return Err((
                    table,
                    "[node]: missing subnet (required unless vxagent runs with --etcd, which \
                     leases one)"
                        .to_string(),
                ))
            }
        }
        let subnet_span = self.subnet.as_ref().map_or(table.clone(), Spanned::span);
        local.validate().map_err(|m| {
            let at = locate(
                table,
                &m,
                &[
                    ("bad name", Some(self.name.span())),
                    ("gateway", span_of(&self.gateway)),
                    ("cluster network", span_of(&self.cluster_network)),
                    ("cluster network", Some(subnet_span.clone())),
                    ("gateway", Some(subnet_span)),
                    ("vtep_mac", Some(self.vtep_mac.span())),
                    ("subnet6", span_of(&self.subnet6)),
                    ("underlay_mtu", span_of(&self.underlay_mtu)),
                    ("VNI", span_of(&self.vni)),
                ],
            );
            (at, format!("[node]: {m}"))
        })?;
        Ok(local)
    }
}

impl PodRepr {
    fn to_spec(&self, table: Range<usize>, local: &LocalNode) -> Checked<PortSpec> {
        let spec = PortSpec {
            name: self.name.get_ref().clone(),
            netns: self.netns.get_ref().clone(),
            mac: *self.mac.get_ref(),
            ip: *self.ip.get_ref(),
            ip6: value_of(&self.ip6),
            vnid: value_of(&self.vnid),
            ifname: value_of(&self.ifname),
            mtu: value_of(&self.mtu),
        };
        spec.validate().map_err(|m| {
            // proto says "port NAME: reason"; keys are matched on the reason only.
            let prefix = format!("port {}: ", spec.name);
            let reason = m.strip_prefix(&prefix).unwrap_or(&m);
            let at = locate(
                table.clone(),
                reason,
                &[
                    ("bad name", Some(self.name.span())),
                    ("netns", Some(self.netns.span())),
                    ("mac", Some(self.mac.span())),
                    ("ip6", span_of(&self.ip6)),
                    ("VNI", span_of(&self.vnid)),
                    ("interface name", span_of(&self.ifname)),
                    ("mtu", span_of(&self.mtu)),
                ],
            );
            (at, format!("pod {}: {reason}", spec.name))
        })?;
        let name = &spec.name;
        if RESERVED_PORT_NAMES.contains(&name.as_str()) {
            return Err((
                self.name.span(),
                format!("pod name {name:?} is reserved for the switch's own port"),
            ));
        }
        let ip = spec.ip;
        let subnet = local.subnet;
        let ip_err = |why: String| Err((self.ip.span(), format!("pod {name}: ip {ip} {why}")));
        if !subnet.contains(ip) {
            return ip_err(format!("is outside the node subnet {subnet}"));
        }
        if ip == subnet.addr() {
            return ip_err(format!("is the network address of {subnet}"));
        }
        if ip == subnet.broadcast() {
            return ip_err(format!("is the broadcast address of {subnet}"));
        }
        if ip == local.gateway() {
            return ip_err("is the node's gateway address".to_string());
        }
        if let (Some(ip6), Some(key)) = (spec.ip6, &self.ip6) {
            let ip6_err = |why: String| Err((key.span(), format!("pod {name}: ip6 {ip6} {why}")));
            match local.subnet6 {
                None => {
                    return ip6_err(
                        "needs an IPv6 prefix on the node: set subnet6 in [node]".into(),
                    )
                }
                Some(s6) if !s6.contains(ip6) => {
                    return ip6_err(format!("is outside the node's subnet6 {s6}"))
                }
                Some(s6) if ip6 == s6.addr() => {
                    return ip6_err(format!("is the subnet-router anycast address of {s6}"))
                }
                Some(_) if Some(ip6) == local.gateway6() => {
                    return ip6_err("is the node's IPv6 gateway address".to_string())
                }
                Some(_) => {}
            }
        }
        if spec.mac == local.vtep_mac {
            return Err((
                self.mac.span(),
                format!("pod {name}: mac {} is the node's vtep_mac", spec.mac),
            ));
        }
        if let Some(mtu) = spec.mtu {
            if mtu > local.pod_mtu() {
                let mtu_span = span_of(&self.mtu).unwrap_or(table);
                return Err((
                    mtu_span,
                    format!(
                        "pod {name}: mtu {mtu} is larger than the node's pod MTU {} (underlay_mtu {} minus {} bytes of VXLAN overhead)",
                        local.pod_mtu(),
                        local.underlay_mtu,
                        local.overhead()
                    ),
                ));
            }
        }
        Ok(spec)
    }
}

impl RemoteRepr {
    fn to_remote(&self, table: Range<usize>, local: &LocalNode) -> Checked<RemoteNode> {
        let spec = RemoteNode {
            name: self.name.get_ref().clone(),
            vtep: *self.vtep.get_ref(),
            vtep_mac: *self.vtep_mac.get_ref(),
            subnet: *self.subnet.get_ref(),
            subnet6: value_of(&self.subnet6),
        };
        spec.validate().map_err(|m| {
            let prefix = format!("node {}: ", spec.name);
            let reason = m.strip_prefix(&prefix).unwrap_or(&m);
            let at = locate(
                table,
                reason,
                &[
                    ("bad name", Some(self.name.span())),
                    ("vtep_mac", Some(self.vtep_mac.span())),
                    ("subnet6", span_of(&self.subnet6)),
                ],
            );
            (at, format!("node {}: {reason}", spec.name))
        })?;
        let name = &spec.name;
        if *name == local.name {
            return Err((
                self.name.span(),
                format!("node {name} has the same name as this node"),
            ));
        }
        if spec.subnet.overlaps(&local.subnet) {
            return Err((
                self.subnet.span(),
                format!(
                    "node {name}: subnet {} overlaps this node's subnet {}",
                    spec.subnet, local.subnet
                ),
            ));
        }
        if let (Some(a), Some(b), Some(key)) = (spec.subnet6, local.subnet6, &self.subnet6) {
            if a.overlaps(&b) {
                return Err((
                    key.span(),
                    format!("node {name}: subnet6 {a} overlaps this node's subnet6 {b}"),
                ));
            }
        }
        if spec.vtep == local.vtep {
            return Err((
                self.vtep.span(),
                format!("node {name}: vtep {} is this node's vtep", spec.vtep),
            ));
        }
        if spec.vtep.is_ipv4() != local.vtep.is_ipv4() {
            let fam = |ip: IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err((
                self.vtep.span(),
                format!(
                    "node {name}: vtep {} is {} but this node's vtep {} is {}",
                    spec.vtep,
                    fam(spec.vtep),
                    local.vtep,
                    fam(local.vtep)
                ),
            ));
        }
        Ok(spec)
    }
}
