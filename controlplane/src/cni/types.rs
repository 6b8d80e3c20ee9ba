//! What the plugin prints: the CNI result of ADD (in the layout of the configuration's
//! `cniVersion`), the VERSION answer, and the CNI error object with its well-known codes.

use std::fmt;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

/// Specification versions this plugin speaks, oldest first. 0.3.0 and 0.3.1 share the
/// 0.4.0 result layout; CHECK needs 0.4.0 or later.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];
/// The version a reply carries when the configuration did not say.
pub const LATEST_VERSION: &str = "1.0.0";

/// The well-known error codes of the specification, and ours (100 and up).
pub mod code {
    /// The configuration's `cniVersion` is not one this plugin speaks.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// The configuration holds a field the plugin does not support.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// The container is unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// A necessary environment variable is missing or invalid.
    pub const INVALID_ENV: u32 = 4;
    /// An I/O failure (reading stdin, a file).
    pub const IO_FAILURE: u32 = 5;
    /// stdin could not be decoded (not JSON, wrong types).
    pub const DECODE_FAILURE: u32 = 6;
    /// The configuration is JSON but its values are not valid.
    pub const INVALID_CONFIG: u32 = 7;
    /// A transient condition (vxswitchd not reachable): the runtime should try again later.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// vxswitchd refused or failed to carry out the pod's port change.
    pub const SWITCH_REFUSED: u32 = 100;
    /// The IPAM plugin failed without a CNI error of its own.
    pub const IPAM_FAILED: u32 = 101;
    /// CHECK found the pod's port, interface or address not as the previous result says.
    pub const CHECK_MISMATCH: u32 = 102;
}

/// A CNI error: printed as `{"cniVersion", "code", "msg", "details"}` on stdout, exit 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// The error object in the layout of `version`.
    pub fn to_json(&self, version: &str) -> Value {
        let mut o = Map::new();
        o.insert("cniVersion".into(), json!(version));
        o.insert("code".into(), json!(self.code));
        o.insert("msg".into(), json!(self.msg));
        if !self.details.is_empty() {
            o.insert("details".into(), json!(self.details));
        }
        Value::Object(o)
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// An address with its prefix length, written `10.1.1.5/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpPrefix {
    pub fn parse(s: &str) -> Option<IpPrefix> {
        let (a, p) = s.split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpPrefix { addr, prefix })
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One interface the plugin created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    /// The namespace path; empty for an interface on the host.
    pub sandbox: String,
}

/// One address given to an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub address: IpPrefix,
    pub gateway: Option<IpAddr>,
    /// Index into the result's interfaces.
    pub interface: Option<usize>,
}

/// One route in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpPrefix,
    pub gw: Option<IpAddr>,
}

/// The result of ADD (or of the IPAM plugin it delegates to).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    /// The `dns` object, passed through as the IPAM plugin or the configuration gave it.
    pub dns: Map<String, Value>,
}

impl CniResult {
    /// The result in the layout of `version`: 1.0.0 drops the per-address `version` that
    /// 0.3.x and 0.4.0 carry.
    pub fn to_json(&self, version: &str) -> Value {
        let legacy = version != "1.0.0";
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut o = Map::new();
                o.insert("name".into(), json!(i.name));
                o.insert("mac".into(), json!(i.mac));
                if !i.sandbox.is_empty() {
                    o.insert("sandbox".into(), json!(i.sandbox));
                }
                Value::Object(o)
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = Map::new();
                if legacy {
                    let v = if ip.address.addr.is_ipv4() { "4" } else { "6" };
                    o.insert("version".into(), json!(v));
                }
                o.insert("address".into(), json!(ip.address.to_string()));
                if let Some(gw) = ip.gateway {
                    o.insert("gateway".into(), json!(gw.to_string()));
                }
                if let Some(i) = ip.interface {
                    o.insert("interface".into(), json!(i));
                }
                Value::Object(o)
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("dst".into(), json!(r.dst.to_string()));
                if let Some(gw) = r.gw {
                    o.insert("gw".into(), json!(gw.to_string()));
                }
                Value::Object(o)
            })
            .collect();
        let mut o = Map::new();
        o.insert("cniVersion".into(), json!(version));
        o.insert("interfaces".into(), Value::Array(interfaces));
        o.insert("ips".into(), Value::Array(ips));
        o.insert("routes".into(), Value::Array(routes));
        o.insert("dns".into(), Value::Object(self.dns.clone()));
        Value::Object(o)
    }

    /// Reads a result as the IPAM plugin (or a previous ADD) printed it, in any supported
    /// layout. Entries that do not parse are an error naming them.
    pub fn from_json(v: &Value) -> Result<CniResult, String> {
        let o = v.as_object().ok_or("a result must be a JSON object")?;
        let mut r = CniResult::default();
        for i in arr(o, "interfaces")? {
            let name = str_field(i, "name").ok_or("an interface without a name")?;
            r.interfaces.push(Interface {
                name: name.to_string(),
                mac: str_field(i, "mac").unwrap_or_default().to_string(),
                sandbox: str_field(i, "sandbox").unwrap_or_default().to_string(),
            });
        }
        for ip in arr(o, "ips")? {
            let a = str_field(ip, "address").ok_or("an ips entry without an address")?;
            let address =
                IpPrefix::parse(a).ok_or_else(|| format!("ips address {a:?} is not ADDR/LEN"))?;
            let gateway = match str_field(ip, "gateway") {
                Some(g) => Some(
                    g.parse()
                        .map_err(|_| format!("ips gateway {g:?} is not an address"))?,
                ),
                None => None,
            };
            let interface = ip
                .get("interface")
                .and_then(Value::as_u64)
                .map(|i| i as usize);
            r.ips.push(IpConfig {
                address,
                gateway,
                interface,
            });
        }
        for rt in arr(o, "routes")? {
            let d = str_field(rt, "dst").ok_or("a route without dst")?;
            let dst =
                IpPrefix::parse(d).ok_or_else(|| format!("route dst {d:?} is not ADDR/LEN"))?;
            let gw = match str_field(rt, "gw") {
                Some(g) => Some(
                    g.parse()
                        .map_err(|_| format!("route gw {g:?} is not an address"))?,
                ),
                None => None,
            };
            r.routes.push(Route { dst, gw });
        }
        if let Some(Value::Object(d)) = o.get("dns") {
            r.dns = d.clone();
        }
        Ok(r)
    }
}

fn arr<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("result field {key:?} must be a list")),
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The answer to VERSION.
pub fn version_info(version: &str) -> Value {
    json!({ "cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "0a:58:0a:01:01:64".into(),
                sandbox: "/run/netns/c1".into(),
            }],
            ips: vec![IpConfig {
                address: IpPrefix::parse("10.1.1.100/24").unwrap(),
                gateway: Some("10.1.1.1".parse().unwrap()),
                interface: Some(0),
            }],
            routes: vec![Route {
                dst: IpPrefix::parse("0.0.0.0/0").unwrap(),
                gw: Some("10.1.1.1".parse().unwrap()),
            }],
            dns: Map::new(),
        }
    }

    #[test]
    fn a_1_0_0_result_has_the_specified_fields_and_no_address_version() {
        let v = sample().to_json("1.0.0");
        assert_eq!(
            v,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:01:64",
                                "sandbox": "/run/netns/c1"}],
                "ips": [{"address": "10.1.1.100/24", "gateway": "10.1.1.1", "interface": 0}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}],
                "dns": {}
            })
        );
    }

    #[test]
    fn older_layouts_carry_the_address_version() {
        for v in ["0.3.0", "0.3.1", "0.4.0"] {
            let j = sample().to_json(v);
            assert_eq!(j["cniVersion"], v);
            assert_eq!(j["ips"][0]["version"], "4", "{v}");
        }
    }

    #[test]
    fn a_result_reads_back_in_every_layout() {
        for v in SUPPORTED_VERSIONS {
            let back = CniResult::from_json(&sample().to_json(v)).unwrap();
            assert_eq!(back, sample(), "{v}");
        }
    }

    #[test]
    fn a_host_local_result_parses() {
        let text = r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.1.2/24",
            "gateway":"10.1.1.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#;
        let r = CniResult::from_json(&serde_json::from_str(text).unwrap()).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.1.1.2/24");
        assert_eq!(r.ips[0].interface, None);
        assert_eq!(r.routes[0].gw, None);
    }

    #[test]
    fn bad_result_entries_are_named() {
        for (text, needle) in [
            (r#"[]"#, "object"),
            (r#"{"ips":[{"address":"10.1.1.2"}]}"#, "ADDR/LEN"),
            (r#"{"ips":[{"address":"10.1.1.2/40"}]}"#, "ADDR/LEN"),
            (r#"{"ips":{}}"#, "list"),
            (r#"{"routes":[{"gw":"10.1.1.1"}]}"#, "dst"),
        ] {
            let e = CniResult::from_json(&serde_json::from_str(text).unwrap()).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn an_error_prints_as_the_specification_says() {
        let e = CniError::new(code::INVALID_CONFIG, "no name").with_details("add \"name\"");
        assert_eq!(
            e.to_json("0.4.0"),
            json!({"cniVersion": "0.4.0", "code": 7, "msg": "no name", "details": "add \"name\""})
        );
        let e = CniError::new(code::TRY_AGAIN_LATER, "later");
        assert!(e.to_json("1.0.0").get("details").is_none());
    }
}
