//! The cluster's network configuration, `<prefix>/config`, in flannel's JSON: what the admin
//! writes once with `etcdctl put` and every node reads.
//!
//! ```json
//! {"Network": "10.1.0.0/16", "SubnetLen": 24, "SubnetMin": "10.1.1.0", "SubnetMax": "10.1.254.0",
//!  "EnableIPv6": true, "IPv6Network": "fd00:10:1::/48", "IPv6SubnetLen": 64,
//!  "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}
//! ```
//!
//! Field names are flannel's; like flannel's decoder, a key also matches case-insensitively,
//! and unknown keys are ignored. Defaults follow flannel: `SubnetLen` 24 (or the network's
//! length + 2 when it is smaller than a /22), `SubnetMin` the second subnet, `SubnetMax` the
//! last one; IPv6 alike with /64.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::proto::{Ipv4Cidr, Ipv6Cidr};

/// flannel's vxlan backend's VNI when `Backend.VNI` is not given.
pub const DEFAULT_VNI: u32 = 1;

/// The parsed and checked `<prefix>/config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    pub network: Ipv4Cidr,
    pub subnet_len: u8,
    pub subnet_min: Ipv4Addr,
    pub subnet_max: Ipv4Addr,
    /// Set when `EnableIPv6` is true.
    pub ipv6: Option<Ipv6Config>,
    pub backend: Backend,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Config {
    pub network: Ipv6Cidr,
    pub subnet_len: u8,
    pub subnet_min: Ipv6Addr,
    pub subnet_max: Ipv6Addr,
}

/// `Backend`: vxswitch speaks flannel's `vxlan` backend only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub kind: String,
    pub vni: u32,
    /// The UDP port flannel's vxlan nodes use (`Port`), when given.
    pub port: Option<u16>,
}

/// A bad `<prefix>/config`, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct NetworkError {
    pub key: String,
    pub message: String,
}

fn bad(key: &str, message: impl Into<String>) -> NetworkError {
    NetworkError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Looks a key up as Go's JSON decoder does: the exact name first, then any casing.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

fn string<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, NetworkError> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(bad(name, format!("expected a string, found {v}"))),
    }
}

fn number(obj: &Map<String, Value>, name: &str, max: u64) -> Result<Option<u64>, NetworkError> {
    match field(obj, name) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(bad(
                name,
                format!("expected a whole number from 0 to {max}, found {v}"),
            )),
        },
    }
}

fn boolean(obj: &Map<String, Value>, name: &str) -> Result<Option<bool>, NetworkError> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(bad(name, format!("expected true or false, found {v}"))),
    }
}

fn parse_as<T: std::str::FromStr>(
    obj: &Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<Option<T>, NetworkError> {
    string(obj, name)?
        .map(|s| {
            s.parse::<T>()
                .map_err(|_| bad(name, format!("{s:?} is not {what}")))
        })
        .transpose()
}

impl NetworkConfig {
    /// Parses the JSON text of `<prefix>/config` and applies flannel's defaults and checks.
    pub fn parse(text: &str) -> Result<NetworkConfig, NetworkError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| bad("(document)", format!("not valid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(bad("(document)", "expected a JSON object"));
        };
        if boolean(&obj, "EnableIPv4")? == Some(false) {
            return Err(bad(
                "EnableIPv4",
                "vxswitch nodes need an IPv4 pod network: set EnableIPv4 to true (or leave it out)",
            ));
        }
        let network = ipv4_net(&obj, "Network")?.ok_or_else(|| {
            bad(
                "Network",
                "missing: the cluster's pod network, e.g. \"Network\": \"10.1.0.0/16\"",
            )
        })?;
        let subnet_len = match number(&obj, "SubnetLen", 32)? {
            Some(n) if n > 0 => {
                let n = n as u8;
                if n > 30 {
                    return Err(bad("SubnetLen", format!("{n} must be at most 30")));
                }
                if n < network.prefix() + 2 {
                    return Err(bad(
                        "SubnetLen",
                        format!(
                            "/{n} is too large a subnet for Network {network}: it must hold at \
                             least four subnets (SubnetLen >= {})",
                            network.prefix() + 2
                        ),
                    ));
                }
                n
            }
            _ if network.prefix() > 28 => {
                return Err(bad(
                    "Network",
                    format!("{network} is too small: the smallest useful network is a /28"),
                ))
            }
            _ if network.prefix() <= 22 => 24,
            _ => network.prefix() + 2,
        };
        let size = 1u32 << (32 - subnet_len);
        let mask = u32::MAX << (32 - subnet_len);
        let base = u32::from(network.addr());
        let subnet_min = bound(&obj, "SubnetMin", &network, mask)?
            .unwrap_or_else(|| Ipv4Addr::from(base + size));
        let subnet_max = bound(&obj, "SubnetMax", &network, mask)?
            .unwrap_or_else(|| Ipv4Addr::from(u32::from(network.broadcast()) & mask));
        if subnet_min > subnet_max {
            return Err(bad(
                "SubnetMin",
                format!("{subnet_min} is above SubnetMax {subnet_max}"),
            ));
        }
        let ipv6 = if boolean(&obj, "EnableIPv6")?.unwrap_or(false) {
            Some(Ipv6Config::parse(&obj)?)
        } else {
            None
        };
        let backend = Backend::parse(field(&obj, "Backend"))?;
        Ok(NetworkConfig {
            network,
            subnet_len,
            subnet_min,
            subnet_max,
            ipv6,
            backend,
        })
    }

    /// How many subnets lie in SubnetMin..=SubnetMax.
    pub fn subnet_count(&self) -> u32 {
        let shift = 32 - u32::from(self.subnet_len);
        ((u32::from(self.subnet_max) - u32::from(self.subnet_min)) >> shift) + 1
    }

    /// The i-th subnet from SubnetMin.
    pub fn subnet(&self, i: u32) -> Option<Ipv4Cidr> {
        let shift = 32 - u32::from(self.subnet_len);
        let addr = u32::from(self.subnet_min).checked_add(i.checked_shl(shift)?)?;
        Ipv4Cidr::new(Ipv4Addr::from(addr), self.subnet_len).ok()
    }

    /// True if `s` is one of this network's subnets (right length, inside the range).
    pub fn allows(&self, s: &Ipv4Cidr) -> bool {
        s.prefix() == self.subnet_len && s.addr() >= self.subnet_min && s.addr() <= self.subnet_max
    }
}

fn ipv4_net(obj: &Map<String, Value>, name: &str) -> Result<Option<Ipv4Cidr>, NetworkError> {
    let Some(s) = string(obj, name)? else {
        return Ok(None);
    };
    let c: Ipv4Cidr = s.parse().map_err(|e: String| bad(name, e))?;
    Ok(Some(c))
}

fn bound(
    obj: &Map<String, Value>,
    name: &str,
    network: &Ipv4Cidr,
    mask: u32,
) -> Result<Option<Ipv4Addr>, NetworkError> {
    let Some(a) = parse_as::<Ipv4Addr>(obj, name, "an IPv4 address")? else {
        return Ok(None);
    };
    if !network.contains(a) {
        return Err(bad(name, format!("{a} is not in Network {network}")));
    }
    if u32::from(a) & mask != u32::from(a) {
        return Err(bad(name, format!("{a} is not on a SubnetLen boundary")));
    }
    Ok(Some(a))
}

impl Ipv6Config {
    fn parse(obj: &Map<String, Value>) -> Result<Ipv6Config, NetworkError> {
        let name = "IPv6Network";
        let network: Ipv6Cidr = string(obj, name)?
            .ok_or_else(|| bad(name, "missing, and EnableIPv6 is true"))?
            .parse()
            .map_err(|e: String| bad(name, e))?;
        let subnet_len = match number(obj, "IPv6SubnetLen", 128)? {
            Some(n) if n > 0 => {
                let n = n as u8;
                if n > 126 || n < network.prefix() + 2 {
                    return Err(bad(
                        "IPv6SubnetLen",
                        format!(
                            "/{n} does not fit IPv6Network {network} four times (use {} to 126)",
                            network.prefix() + 2
                        ),
                    ));
                }
                n
            }
            _ if network.prefix() > 124 => {
                return Err(bad(name, format!("{network} is too small (at most /124)")))
            }
            _ if network.prefix() <= 62 => 64,
            _ => network.prefix() + 2,
        };
        let size = 1u128 << (128 - subnet_len);
        let mask = u128::MAX << (128 - subnet_len);
        let base = u128::from(network.addr());
        let last = base | !network.mask();
        let bound6 = |key: &str| -> Result<Option<Ipv6Addr>, NetworkError> {
            let Some(a) = parse_as::<Ipv6Addr>(obj, key, "an IPv6 address")? else {
                return Ok(None);
            };
            if !network.contains(a) {
                return Err(bad(key, format!("{a} is not in IPv6Network {network}")));
            }
            if u128::from(a) & mask != u128::from(a) {
                return Err(bad(key, format!("{a} is not on an IPv6SubnetLen boundary")));
            }
            Ok(Some(a))
        };
        let subnet_min = bound6("IPv6SubnetMin")?.unwrap_or_else(|| Ipv6Addr::from(base + size));
        let subnet_max = bound6("IPv6SubnetMax")?.unwrap_or_else(|| Ipv6Addr::from(last & mask));
        if subnet_min > subnet_max {
            return Err(bad(
                "IPv6SubnetMin",
                format!("{subnet_min} is above IPv6SubnetMax {subnet_max}"),
            ));
        }
        Ok(Ipv6Config {
            network,
            subnet_len,
            subnet_min,
            subnet_max,
        })
    }

    /// How many subnets lie in IPv6SubnetMin..=IPv6SubnetMax (saturating).
    pub fn subnet_count(&self) -> u128 {
        let shift = 128 - u32::from(self.subnet_len);
        ((u128::from(self.subnet_max) - u128::from(self.subnet_min)) >> shift).saturating_add(1)
    }

    pub fn subnet(&self, i: u128) -> Option<Ipv6Cidr> {
        let shift = 128 - u32::from(self.subnet_len);
        let addr = u128::from(self.subnet_min).checked_add(i.checked_shl(shift)?)?;
        Ipv6Cidr::new(Ipv6Addr::from(addr), self.subnet_len).ok()
    }

    pub fn allows(&self, s: &Ipv6Cidr) -> bool {
        s.prefix() == self.subnet_len && s.addr() >= self.subnet_min && s.addr() <= self.subnet_max
    }
}

impl Backend {
    fn parse(v: Option<&Value>) -> Result<Backend, NetworkError> {
        let Some(v) = v else {
            return Err(bad(
                "Backend",
                "missing: vxswitch speaks flannel's vxlan backend, add \
                 \"Backend\": {\"Type\": \"vxlan\"}",
            ));
        };
        let Value::Object(obj) = v else {
            return Err(bad("Backend", format!("expected an object, found {v}")));
        };
        let kind = string(obj, "Type")
            .map_err(|e| bad("Backend.Type", e.message))?
            .unwrap_or("udp")
            .to_string();
        if kind != "vxlan" {
            return Err(bad(
                "Backend.Type",
                format!("{kind:?}: vxswitch speaks flannel's \"vxlan\" backend only"),
            ));
        }
        let vni = number(obj, "VNI", 0x00ff_ffff)
            .map_err(|e| bad("Backend.VNI", e.message))?
            .map_or(DEFAULT_VNI, |n| n as u32);
        if vni == 0 {
            return Err(bad("Backend.VNI", "0 is not a usable VNI (1 to 16777215)"));
        }
        let port = number(obj, "Port", 65535)
            .map_err(|e| bad("Backend.Port", e.message))?
            .filter(|&p| p != 0)
            .map(|p| p as u16);
        Ok(Backend { kind, vni, port })
    }
}
