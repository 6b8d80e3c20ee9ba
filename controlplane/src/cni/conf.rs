//! What a runtime hands the plugin: the `CNI_*` environment and the network configuration on
//! stdin, checked as the specification asks (error 4 for the environment, 6 for what does not
//! decode, 7 for values that are wrong, 1 for a version this plugin does not speak).

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::types::{code, CniError, SUPPORTED_VERSIONS};

/// The command a runtime asks for (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Result<Command, CniError> {
        match s {
            "ADD" => Ok(Command::Add),
            "DEL" => Ok(Command::Del),
            "CHECK" => Ok(Command::Check),
            "VERSION" => Ok(Command::Version),
            other => Err(CniError::new(
                code::INVALID_ENV,
                format!(
                    "unknown CNI_COMMAND {other:?}: this plugin knows ADD, DEL, CHECK and VERSION"
                ),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
        }
    }
}

/// The `CNI_*` variables of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    /// Path of the container's network namespace (empty on DEL when the runtime has none).
    pub netns: String,
    pub ifname: String,
    pub args: String,
    /// Directories where delegated plugins (IPAM) are found, in order.
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Reads and checks the variables `command` needs, through `var` (the process
    /// environment in the binary, a table in tests).
    pub fn from_vars(
        command: Command,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Env, CniError> {
        let get = |name: &str, needed: bool| -> Result<String, CniError> {
            match var(name).filter(|v| !v.is_empty()) {
                Some(v) => Ok(v),
                None if needed => Err(CniError::new(
                    code::INVALID_ENV,
                    format!(
                        "{name} is not set; a runtime sets it for {}",
                        command.as_str()
                    ),
                )),
                None => Ok(String::new()),
            }
        };
        let container_id = get("CNI_CONTAINERID", true)?;
        check_container_id(&container_id)?;
        let netns = get("CNI_NETNS", command != Command::Del)?;
        if !netns.is_empty() && !netns.starts_with('/') {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("CNI_NETNS {netns:?} is not an absolute path"),
            ));
        }
        let ifname = get("CNI_IFNAME", true)?;
        check_ifname(&ifname)?;
        let path = get("CNI_PATH", true)?
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        Ok(Env {
            command,
            container_id,
            netns,
            ifname,
            args: get("CNI_ARGS", false)?,
            path,
        })
    }
}

/// A container ID as the specification allows: alphanumerics first, then also `_ . -`.
fn check_container_id(id: &str) -> Result<(), CniError> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_CONTAINERID {id:?} has characters the specification does not allow"),
        ))
    }
}

/// An interface name Linux accepts: 1-15 bytes, no `/`, `:` or white space, not `.`/`..`.
fn check_ifname(name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_IFNAME {name:?} is not a valid interface name (1-15 bytes, no '/', ':' or spaces)"),
        ))
    }
}

/// The network configuration of the `vxswitch` plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    /// vxswitchd's control socket.
    pub socket: PathBuf,
    /// flannel's `subnet.env`; without it the node's subnet comes from vxswitchd.
    pub subnet_file: Option<PathBuf>,
    /// MTU inside the pod; the node's when not given.
    pub mtu: Option<u16>,
    /// The pod's VNID; the node's VNI when not given.
    pub vnid: Option<u32>,
    /// The `ipam` object (with at least `type`).
    pub ipam: Map<String, Value>,
    /// The `prevResult` of DEL and CHECK.
    pub prev_result: Option<Value>,
    /// The whole configuration as given, passed on to the IPAM plugin.
    pub raw: Map<String, Value>,
}

impl NetConf {
    /// Decodes stdin: error 6 when it is not a JSON object, 1 when `cniVersion` is not
    /// supported, 7 when a value is wrong.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let v: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODE_FAILURE,
                format!("the network configuration is not JSON: {e}"),
            )
        })?;
        let Value::Object(raw) = v else {
            return Err(CniError::new(
                code::DECODE_FAILURE,
                "the network configuration must be a JSON object",
            ));
        };
        let cni_version = string(&raw, "cniVersion")?.ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                "the configuration has no \"cniVersion\"",
            )
        })?;
        check_version(&cni_version)?;
        let name = string(&raw, "name")?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                CniError::new(code::INVALID_CONFIG, "the configuration has no \"name\"")
            })?;
        match string(&raw, "type")?.as_deref() {
            Some("vxswitch") => {}
            Some(t) => {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    format!("\"type\" is {t:?}; this plugin is \"vxswitch\""),
                ))
            }
            None => {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    "the configuration has no \"type\"",
                ))
            }
        }
        let socket = string(&raw, "socket")?
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(crate::DEFAULT_SOCKET));
        let subnet_file = string(&raw, "subnetFile")?
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        let mtu = match number(&raw, "mtu")? {
            None => None,
            Some(m) if (576..=9000).contains(&m) => Some(m as u16),
            Some(m) => {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    format!("\"mtu\" {m} is outside 576..=9000"),
                ))
            }
        };
        let vnid = match number(&raw, "vnid")? {
            None => None,
            Some(v) if v <= u64::from(crate::proto::MAX_VNI) => Some(v as u32),
            Some(v) => {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    format!("\"vnid\" {v} does not fit in 24 bits"),
                ))
            }
        };
        let ipam = match raw.get("ipam") {
            Some(Value::Object(o)) => o.clone(),
            Some(_) => {
                return Err(CniError::new(
                    code::DECODE_FAILURE,
                    "\"ipam\" must be an object",
                ))
            }
            None => {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    "the configuration has no \"ipam\" (e.g. {\"type\": \"host-local\"})",
                ))
            }
        };
        match ipam.get("type").and_then(Value::as_str) {
            Some(t) if !t.is_empty() && !t.contains('/') => {}
            _ => {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    "\"ipam\" needs a \"type\" naming a plugin in CNI_PATH (e.g. \"host-local\")",
                ))
            }
        }
        let prev_result = raw.get("prevResult").filter(|v| !v.is_null()).cloned();
        Ok(NetConf {
            cni_version,
            name,
            socket,
            subnet_file,
            mtu,
            vnid,
            ipam,
            prev_result,
            raw,
        })
    }

    /// The IPAM plugin's name.
    pub fn ipam_type(&self) -> &str {
        self.ipam.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// Whether the version has CHECK (0.4.0 and later).
    pub fn has_check(&self) -> bool {
        !self.cni_version.starts_with("0.3.")
    }
}

/// Error 1 unless `v` is one of [`SUPPORTED_VERSIONS`].
pub fn check_version(v: &str) -> Result<(), CniError> {
    if SUPPORTED_VERSIONS.contains(&v) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("cniVersion {v:?} is not supported"),
        )
        .with_details(format!("supported: {}", SUPPORTED_VERSIONS.join(", "))))
    }
}

/// The `cniVersion` of stdin if it has one, whatever else is wrong with it: errors are
/// printed in the caller's version when it can be told.
pub fn sniff_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    let s = v.get("cniVersion")?.as_str()?;
    SUPPORTED_VERSIONS.contains(&s).then(|| s.to_string())
}

fn string(o: &Map<String, Value>, key: &str) -> Result<Option<String>, CniError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CniError::new(
            code::DECODE_FAILURE,
            format!("{key:?} must be a string"),
        )),
    }
}

fn number(o: &Map<String, Value>, key: &str) -> Result<Option<u64>, CniError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            CniError::new(
                code::DECODE_FAILURE,
                format!("{key:?} must be a whole number"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"cniVersion":"1.0.0","name":"vxnet","type":"vxswitch",
        "socket":"/run/vx/s.sock","mtu":1400,"vnid":7,"ipam":{"type":"host-local"}}"#;

    #[test]
    fn a_full_configuration_parses() {
        let c = NetConf::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(c.name, "vxnet");
        assert_eq!(c.socket, PathBuf::from("/run/vx/s.sock"));
        assert_eq!((c.mtu, c.vnid), (Some(1400), Some(7)));
        assert_eq!(c.ipam_type(), "host-local");
        assert!(c.subnet_file.is_none() && c.prev_result.is_none());
    }

    #[test]
    fn bad_configurations_get_the_specified_codes() {
        for (text, want) in [
            ("", code::DECODE_FAILURE),
            ("{not json", code::DECODE_FAILURE),
            ("[1,2]", code::DECODE_FAILURE),
            (
                r#"{"name":"n","type":"vxswitch","ipam":{"type":"host-local"}}"#,
                code::INVALID_CONFIG,
            ),
            (
                r#"{"cniVersion":"0.2.0","name":"n","type":"vxswitch"}"#,
                code::INCOMPATIBLE_VERSION,
            ),
            (
                r#"{"cniVersion":"9.9.9","name":"n","type":"vxswitch"}"#,
                code::INCOMPATIBLE_VERSION,
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"vxswitch","ipam":{"type":"h"}}"#,
                code::INVALID_CONFIG,
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"bridge","ipam":{"type":"h"}}"#,
                code::INVALID_CONFIG,
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"vxswitch"}"#,
                code::INVALID_CONFIG,
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"vxswitch","ipam":{}}"#,
                code::INVALID_CONFIG,
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"vxswitch","ipam":{"type":"../x"}}"#,
                code::INVALID_CONFIG,
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"vxswitch","ipam":"x"}"#,
                code::DECODE_FAILURE,
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"vxswitch","mtu":"big","ipam":{"type":"h"}}"#,
                code::DECODE_FAILURE,
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"vxswitch","mtu":100,"ipam":{"type":"h"}}"#,
                code::INVALID_CONFIG,
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"vxswitch","vnid":16777216,"ipam":{"type":"h"}}"#,
                code::INVALID_CONFIG,
            ),
            (
                r#"{"cniVersion":1,"name":"n","type":"vxswitch"}"#,
                code::DECODE_FAILURE,
            ),
        ] {
            let e = NetConf::parse(text.as_bytes()).unwrap_err();
            assert_eq!(e.code, want, "{text}: {e}");
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |k| m.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone())
    }

    #[test]
    fn the_environment_is_checked_per_command() {
        let full = [
            ("CNI_CONTAINERID", "abc123"),
            ("CNI_NETNS", "/run/netns/c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ];
        let e = Env::from_vars(Command::Add, &vars(&full)).unwrap();
        assert_eq!(
            e.path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        // DEL needs no namespace.
        let no_ns = [full[0], full[2], full[3]];
        assert!(Env::from_vars(Command::Del, &vars(&no_ns)).is_ok());
        assert_eq!(
            Env::from_vars(Command::Add, &vars(&no_ns))
                .unwrap_err()
                .code,
            code::INVALID_ENV
        );
        for bad in [
            [("CNI_CONTAINERID", "-x"), full[1], full[2], full[3]],
            [("CNI_CONTAINERID", "a b"), full[1], full[2], full[3]],
            [full[0], ("CNI_NETNS", "c1"), full[2], full[3]],
            [
                full[0],
                full[1],
                ("CNI_IFNAME", "a-name-longer-than-15"),
                full[3],
            ],
            [full[0], full[1], ("CNI_IFNAME", "a/b"), full[3]],
            [full[0], full[1], full[2], ("CNI_PATH", "")],
        ] {
            let e = Env::from_vars(Command::Add, &vars(&bad)).unwrap_err();
            assert_eq!(e.code, code::INVALID_ENV, "{bad:?}");
        }
        assert_eq!(Command::parse("GC").unwrap_err().code, code::INVALID_ENV);
    }
}
