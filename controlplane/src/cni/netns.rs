//! Looking at the pod's interface inside its namespace, for CHECK.
//!
//! The control plane has no `unsafe`, and entering a namespace is `setns(2)`; so a child
//! process does it: `nsenter --net=PATH ip -j addr show dev IFNAME`. nsenter takes any
//! namespace path (runtimes use paths outside /run/netns, which `ip -n` does not take), and
//! `ip -j` answers in JSON, so nothing parses text meant for people.

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the look may take.
const LOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the namespace holds for the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenInterface {
    pub mac: String,
    pub mtu: u32,
    /// Addresses with their prefix lengths.
    pub addrs: Vec<(IpAddr, u8)>,
}

/// The interface `ifname` in the namespace at `netns`; `Ok(None)` when it does not exist.
pub fn look(netns: &str, ifname: &str) -> Result<Option<SeenInterface>, String> {
    let mut child = Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["ip", "-j", "addr", "show", "dev", ifname])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nsenter (util-linux) and ip (iproute2): {e}"))?;
    let deadline = Instant::now() + LOOK_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("nsenter: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("does not exist") {
            return Ok(None);
        }
        return Err(format!(
            "cannot look into {netns}: {} ({})",
            stderr.trim(),
            out.status
        ));
    }
    parse_ip_json(&out.stdout, ifname)
}

/// Reads `ip -j addr show dev IFNAME`'s answer.
pub fn parse_ip_json(text: &[u8], ifname: &str) -> Result<Option<SeenInterface>, String> {
    let v: Value =
        serde_json::from_slice(text).map_err(|e| format!("ip -j printed no JSON: {e}"))?;
    let Some(link) = v.as_array().and_then(|a| {
        a.iter()
            .find(|l| l.get("ifname").and_then(Value::as_str) == Some(ifname))
    }) else {
        return Ok(None);
    };
    let addrs = link
        .get("addr_info")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    let ip: IpAddr = i.get("local")?.as_str()?.parse().ok()?;
                    let len = u8::try_from(i.get("prefixlen")?.as_u64()?).ok()?;
                    Some((ip, len))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(SeenInterface {
        mac: link
            .get("address")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        mtu: link.get("mtu").and_then(Value::as_u64).unwrap_or(0) as u32,
        addrs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_json_answer_parses() {
        let text = br#"[{"ifindex":5,"ifname":"eth0","flags":["UP"],"mtu":1450,
            "link_type":"ether","address":"0a:58:0a:01:01:64","addr_info":[
            {"family":"inet","local":"10.1.1.100","prefixlen":24,"scope":"global"}]}]"#;
        let seen = parse_ip_json(text, "eth0").unwrap().unwrap();
        assert_eq!(seen.mac, "0a:58:0a:01:01:64");
        assert_eq!(seen.mtu, 1450);
        assert_eq!(seen.addrs, vec![("10.1.1.100".parse().unwrap(), 24)]);
        assert_eq!(parse_ip_json(b"[]", "eth0").unwrap(), None);
        assert!(parse_ip_json(b"oops", "eth0").is_err());
    }
}
