//! Address allocation delegated to the configured IPAM plugin (e.g. Debian's `host-local`),
//! run as a runtime runs a plugin: found in `CNI_PATH`, the same environment with the
//! command set, the network configuration on stdin, the result or a CNI error on stdout.

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::conf::{Command, Env, NetConf};
use super::node::NodeNet;
use super::types::{code, CniError, CniResult};

/// How long an IPAM plugin may take before it is killed and the call reported as failed.
pub const IPAM_TIMEOUT: Duration = Duration::from_secs(60);
/// The most output an IPAM plugin's answer may have.
const MAX_OUTPUT: u64 = 1 << 20;

/// The IPAM section with the node's network filled in where the configuration left it out:
/// without `ranges` or `subnet` one range of the node's subnet with its gateway (and
/// `rangeStart`/`rangeEnd` if given beside them); ranges without a subnet get the node's;
/// without `routes` the default route through the gateway.
pub fn fill_ipam(
    ipam: &Map<String, Value>,
    node: Option<&NodeNet>,
) -> Result<Map<String, Value>, CniError> {
    let mut out = ipam.clone();
    let has_subnet = out.get("subnet").is_some_and(|v| !v.is_null());
    let has_ranges = out.get("ranges").is_some_and(|v| !v.is_null());
    let need = |what: &str| {
        CniError::new(
            code::TRY_AGAIN_LATER,
            format!(
                "the IPAM configuration has no {what} and the node's subnet is not known yet \
                 (set \"subnetFile\" to the agent's subnet.env, or start vxswitchd with its node)"
            ),
        )
    };
    if !has_subnet && !has_ranges {
        let node = node.ok_or_else(|| need("subnet"))?;
        let mut range = Map::new();
        range.insert("subnet".into(), json!(node.subnet.to_string()));
        range.insert("gateway".into(), json!(node.gateway.to_string()));
        for key in ["rangeStart", "rangeEnd"] {
            if let Some(v) = out.remove(key) {
                range.insert(key.into(), v);
            }
        }
        if let Some(gw) = out.remove("gateway") {
            range.insert("gateway".into(), gw);
        }
        out.insert("ranges".into(), json!([[Value::Object(range)]]));
    } else if let Some(Value::Array(sets)) = out.get_mut("ranges") {
        for set in sets.iter_mut() {
            let Value::Array(set) = set else {
                return Err(CniError::new(
                    code::DECODE_FAILURE,
                    "\"ipam\".\"ranges\" must be a list of lists",
                ));
            };
            for range in set.iter_mut() {
                let Value::Object(range) = range else {
                    return Err(CniError::new(
                        code::DECODE_FAILURE,
                        "a range in \"ipam\".\"ranges\" must be an object",
                    ));
                };
                if range.get("subnet").is_none_or(Value::is_null) {
                    let node = node.ok_or_else(|| need("subnet in a range"))?;
                    range.insert("subnet".into(), json!(node.subnet.to_string()));
                    range
                        .entry("gateway")
                        .or_insert_with(|| json!(node.gateway.to_string()));
                }
            }
        }
    }
    if !out.contains_key("routes") {
        let gw = node.map(|n| n.gateway).or_else(|| configured_gateway(&out));
        let route = match gw {
            Some(gw) => json!({"dst": "0.0.0.0/0", "gw": gw.to_string()}),
            None => json!({"dst": "0.0.0.0/0"}),
        };
        out.insert("routes".into(), json!([route]));
    }
    Ok(out)
}

/// The gateway of the first range, or the old-style top-level one.
fn configured_gateway(ipam: &Map<String, Value>) -> Option<Ipv4Addr> {
    let top = ipam.get("gateway").and_then(Value::as_str);
    let ranged = ipam
        .get("ranges")
        .and_then(|r| r.get(0))
        .and_then(|s| s.get(0))
        .and_then(|r| r.get("gateway"))
        .and_then(Value::as_str);
    top.or(ranged)?.parse().ok()
}

/// Runs the IPAM plugin for `command` with `ipam` as the configuration's `ipam` section.
/// ADD returns its result; DEL and CHECK return an empty one.
pub fn exec(
    env: &Env,
    conf: &NetConf,
    ipam: &Map<String, Value>,
    command: Command,
) -> Result<CniResult, CniError> {
    let plugin = conf.ipam_type();
    let bin = find_plugin(&env.path, plugin)?;
    let mut stdin = conf.raw.clone();
    stdin.insert("ipam".into(), Value::Object(ipam.clone()));
    let input = serde_json::to_vec(&Value::Object(stdin)).map_err(|e| {
        CniError::new(
            code::IPAM_FAILED,
            format!("cannot encode the IPAM configuration: {e}"),
        )
    })?;
    let path = std::env::join_paths(&env.path).unwrap_or_default();
    let mut child = Process::new(&bin)
        .env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", &env.container_id)
        .env("CNI_NETNS", &env.netns)
        .env("CNI_IFNAME", &env.ifname)
        .env("CNI_ARGS", &env.args)
        .env("CNI_PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CniError::new(
                code::IPAM_FAILED,
                format!("cannot run the IPAM plugin {}: {e}", bin.display()),
            )
        })?;
    if let Some(mut w) = child.stdin.take() {
        // A plugin that exits without reading its input shows up in its answer below.
        let _ = w.write_all(&input);
    }
    let readers = [
        child.stdout.take().map(drain),
        child.stderr.take().map(drain),
    ];
    let deadline = Instant::now() + IPAM_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CniError::new(
                    code::TRY_AGAIN_LATER,
                    format!(
                        "the IPAM plugin {plugin} did not finish {} within {} s",
                        command.as_str(),
                        IPAM_TIMEOUT.as_secs()
                    ),
                ));
            }
            Err(e) => {
                return Err(CniError::new(
                    code::IPAM_FAILED,
                    format!("waiting for the IPAM plugin {plugin}: {e}"),
                ));
            }
        }
    };
    let [out, err] = readers.map(|r| r.and_then(|h| h.join().ok()).unwrap_or_default());
    let out_text = String::from_utf8_lossy(&out);
    if !status.success() {
        // The plugin's own CNI error, when it printed one, keeps its code.
        if let Ok(v) = serde_json::from_slice::<Value>(&out) {
            if let (Some(c), Some(m)) = (
                v.get("code").and_then(Value::as_u64),
                v.get("msg").and_then(Value::as_str),
            ) {
                let details = v.get("details").and_then(Value::as_str).unwrap_or_default();
                return Err(CniError::new(
                    c as u32,
                    format!("IPAM plugin {plugin} {}: {m}", command.as_str()),
                )
                .with_details(details));
            }
        }
        return Err(CniError::new(
            code::IPAM_FAILED,
            format!(
                "IPAM plugin {plugin} {} failed ({status})",
                command.as_str()
            ),
        )
        .with_details(format!(
            "{}{}",
            out_text.trim(),
            String::from_utf8_lossy(&err).trim()
        )));
    }
    if command != Command::Add {
        return Ok(CniResult::default());
    }
    let v: Value = serde_json::from_slice(&out).map_err(|e| {
        CniError::new(
            code::IPAM_FAILED,
            format!("IPAM plugin {plugin} printed no JSON result: {e}"),
        )
        .with_details(out_text.trim().to_string())
    })?;
    CniResult::from_json(&v).map_err(|e| {
        CniError::new(
            code::IPAM_FAILED,
            format!("IPAM plugin {plugin} result: {e}"),
        )
    })
}

/// Reads a pipe to its end (bounded) on a thread of its own.
fn drain<R: Read + Send + 'static>(r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.take(MAX_OUTPUT).read_to_end(&mut buf);
        buf
    })
}

/// The executable `name` in the first directory of `path` that has it.
fn find_plugin(path: &[PathBuf], name: &str) -> Result<PathBuf, CniError> {
    path.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let dirs: Vec<String> = path.iter().map(|d| d.display().to_string()).collect();
            CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "IPAM plugin {name:?} is not in CNI_PATH ({})",
                    dirs.join(":")
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeNet {
        NodeNet::from_subnet_env("FLANNEL_SUBNET=10.1.2.1/24\nFLANNEL_MTU=1450\n").unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn an_empty_ipam_section_gets_the_nodes_range_and_default_route() {
        let got = fill_ipam(
            &obj(json!({"type": "host-local", "dataDir": "/tmp/x"})),
            Some(&node()),
        )
        .unwrap();
        assert_eq!(
            Value::Object(got),
            json!({"type": "host-local", "dataDir": "/tmp/x",
                   "ranges": [[{"subnet": "10.1.2.0/24", "gateway": "10.1.2.1"}]],
                   "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}]})
        );
    }

    #[test]
    fn a_range_start_beside_no_subnet_moves_into_the_range() {
        let got = fill_ipam(
            &obj(json!({"type": "host-local", "rangeStart": "10.1.2.100"})),
            Some(&node()),
        )
        .unwrap();
        assert_eq!(got["ranges"][0][0]["rangeStart"], "10.1.2.100");
        assert!(!got.contains_key("rangeStart"));
    }

    #[test]
    fn what_the_configuration_gives_is_kept() {
        let given = obj(json!({"type": "host-local", "subnet": "10.9.0.0/24", "routes": []}));
        assert_eq!(fill_ipam(&given, Some(&node())).unwrap(), given);
        let ranges = obj(
            json!({"type": "host-local", "ranges": [[{"rangeStart": "10.1.2.50"}],
                                [{"subnet": "10.9.0.0/24"}]]}),
        );
        let got = fill_ipam(&ranges, Some(&node())).unwrap();
        assert_eq!(got["ranges"][0][0]["subnet"], "10.1.2.0/24");
        assert_eq!(got["ranges"][1][0], json!({"subnet": "10.9.0.0/24"}));
    }

    #[test]
    fn without_a_node_a_missing_subnet_is_a_try_again() {
        let e = fill_ipam(&obj(json!({"type": "host-local"})), None).unwrap_err();
        assert_eq!(e.code, code::TRY_AGAIN_LATER);
        let e = fill_ipam(
            &obj(json!({"type": "host-local", "ranges": [1]})),
            Some(&node()),
        )
        .unwrap_err();
        assert_eq!(e.code, code::DECODE_FAILURE);
    }

    #[test]
    fn a_missing_plugin_names_the_path() {
        let e = find_plugin(
            &[
                PathBuf::from("/nonexistent-a"),
                PathBuf::from("/nonexistent-b"),
            ],
            "host-local",
        )
        .unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(e.msg.contains("/nonexistent-a:/nonexistent-b"), "{}", e.msg);
    }
}
