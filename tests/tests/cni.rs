//! vxswitch-cni driven as a container runtime drives a CNI plugin: the `CNI_*` environment,
//! the network configuration on stdin, Debian's host-local as the IPAM plugin. ADD gives a
//! container namespace of the test's own a working pod that reaches a pod on another node;
//! CHECK passes; DEL removes the port, the interface and the address allocation, and a second
//! DEL succeeds; bad input gets the specification's error object with its code.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vxswitch_e2e::*;

/// A plugin directory holding `vxswitch` (the built vxswitch-cni), as a runtime's is laid
/// out; Debian's plugins stay in /usr/lib/cni.
fn plugin_dir(under: &Path) -> PathBuf {
    let bin = tools::lab::vxswitch::BinSearch::from_env()
        .find("vxswitch-cni")
        .expect("vxswitch-cni binary (cargo build --release)");
    let dir = under.join("bin");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    std::os::unix::fs::symlink(&bin, dir.join("vxswitch")).expect("symlink vxswitch");
    dir
}

/// One run of the plugin: (exit status ok, stdout).
fn cni(command: &str, vars: &[(&str, &str)], stdin: &[u8], plugins: &Path) -> (bool, String) {
    let mut cmd = Command::new(plugins.join("vxswitch"));
    for k in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
    ] {
        cmd.env_remove(k);
    }
    if !command.is_empty() {
        cmd.env("CNI_COMMAND", command);
    }
    cmd.envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn vxswitch");
    {
        use std::io::Write;
        let mut w = child.stdin.take().expect("stdin");
        let _ = w.write_all(stdin);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.is_empty() {
        eprintln!("vxswitch {command} stderr: {stderr}");
    }
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// The container's variables for a command.
fn vars<'a>(id: &'a str, netns: &'a str, path: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", path),
    ]
}

/// The configuration with `prevResult` set.
fn with_prev(conf: &Value, prev: &Value) -> Vec<u8> {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    serde_json::to_vec(&c).expect("json")
}

/// A CNI error object: its code.
fn error_code(out: &str) -> u64 {
    let v: Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("not a CNI error ({e}): {out}"));
    assert!(
        v["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "error without msg: {out}"
    );
    assert!(
        v["cniVersion"].is_string(),
        "error without cniVersion: {out}"
    );
    v["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("error without code: {out}"))
}

fn ping_from(netns: &str, to: &str) -> (bool, String) {
    run_bounded(
        Command::new("ip").args([
            "netns", "exec", netns, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", to,
        ]),
        Duration::from_secs(20),
    )
}

fn port_of(lab: &Lab, node: &str, ip: &str) -> Option<controlplane::proto::PortState> {
    let state = lab
        .ctl(node)
        .expect("control socket")
        .state()
        .expect("state");
    state
        .ports
        .into_iter()
        .find(|p| p.spec.as_ref().is_some_and(|s| s.ip.to_string() == ip))
}

/// Checks an ADD result field by field against the specification's layout of `version`.
fn check_result(r: &Value, version: &str, netns: &str, ip: &str, gw: &str) {
    assert_eq!(r["cniVersion"], version, "{r}");
    let ifs = r["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 1, "{r}");
    assert_eq!(ifs[0]["name"], "eth0");
    assert_eq!(ifs[0]["sandbox"], netns);
    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
    let mac = format!(
        "0a:58:{:02x}:{:02x}:{:02x}:{:02x}",
        octets[0], octets[1], octets[2], octets[3]
    );
    assert_eq!(ifs[0]["mac"], mac.as_str(), "{r}");
    let ips = r["ips"].as_array().expect("ips");
    assert_eq!(ips.len(), 1, "{r}");
    assert_eq!(ips[0]["address"], format!("{ip}/24").as_str(), "{r}");
    assert_eq!(ips[0]["gateway"], gw, "{r}");
    assert_eq!(ips[0]["interface"], 0, "{r}");
    if version == "1.0.0" {
        assert!(
            ips[0].get("version").is_none(),
            "1.0.0 has no address version: {r}"
        );
    } else {
        assert_eq!(
            ips[0]["version"], "4",
            "{version} has the address version: {r}"
        );
    }
    let routes = r["routes"].as_array().expect("routes");
    assert!(
        routes.iter().any(|rt| rt["dst"] == "0.0.0.0/0"),
        "a default route: {r}"
    );
    assert!(r["dns"].is_object(), "{r}");
}

#[test]
fn add_attaches_a_working_pod_check_passes_del_removes_everything_twice() {
    let lab = lab(LabSpec {
        name: unique_name("cni"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        ..LabSpec::default()
    });
    let tmp = TempDir::new(&lab.name);
    let plugins = plugin_dir(&tmp.0);
    let cni_path = format!("{}:/usr/lib/cni", plugins.display());
    let ipam_dir = tmp.0.join("ipam");
    let net = format!("vxnet-{}", lab.name);
    // Named like the lab's namespaces, so a lab teardown removes them too.
    let c1 = Netns::new(format!("{}-cni1", lab.name));
    let c2 = Netns::new(format!("{}-cni2", lab.name));
    let c3 = Netns::new(format!("{}-cni3", lab.name));

    // Node 1: the subnet comes from vxswitchd; addresses from .100 on (the lab's pods hold
    // the first ones).
    let conf1 = json!({
        "cniVersion": "1.0.0", "name": net, "type": "vxswitch",
        "socket": lab.socket("n1").unwrap(),
        "ipam": {"type": "host-local", "dataDir": ipam_dir, "rangeStart": "10.1.1.100"}
    });
    // Node 2: the subnet comes from a subnet.env as vxagent (and flannel) write it, and the
    // runtime speaks CNI 0.4.0.
    let env2 = tmp.0.join("subnet-n2.env");
    std::fs::write(
        &env2,
        "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.2.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n",
    )
    .unwrap();
    let conf2 = json!({
        "cniVersion": "0.4.0", "name": net, "type": "vxswitch",
        "socket": lab.socket("n2").unwrap(), "subnetFile": env2,
        "ipam": {"type": "host-local", "dataDir": ipam_dir, "rangeStart": "10.1.2.100"}
    });
    let (p1, p2) = (c1.path(), c2.path());
    let v1 = vars("ctr-one", &p1, &cni_path);
    let v2 = vars("ctr-two", &p2, &cni_path);
    let stdin1 = serde_json::to_vec(&conf1).unwrap();
    let stdin2 = serde_json::to_vec(&conf2).unwrap();

    let started = Instant::now();
    let (ok, out) = cni("ADD", &v1, &stdin1, &plugins);
    eprintln!(
        "ADD (host-local, vxswitchd's AddPort): {:?}",
        started.elapsed()
    );
    assert!(ok, "ADD on n1: {out}");
    let r1: Value = serde_json::from_str(&out).expect("ADD prints JSON");
    check_result(&r1, "1.0.0", &p1, "10.1.1.100", "10.1.1.1");
    let (ok, out) = cni("ADD", &v2, &stdin2, &plugins);
    assert!(ok, "ADD on n2: {out}");
    let r2: Value = serde_json::from_str(&out).expect("ADD prints JSON");
    check_result(&r2, "0.4.0", &p2, "10.1.2.100", "10.1.2.1");

    // vxswitchd holds the ports as cni's, and host-local its allocations.
    let port = port_of(&lab, "n1", "10.1.1.100").expect("n1 has the container's port");
    assert_eq!(port.owner, Some(controlplane::proto::Owner::Cni));
    assert_eq!(port.status, "up");
    let alloc1 = ipam_dir.join(&net).join("10.1.1.100");
    assert!(
        alloc1.exists(),
        "host-local's allocation {}",
        alloc1.display()
    );

    // The containers reach a lab pod on the other node, each other, and their gateway.
    for (ns, to) in [
        (&c1.0, "10.1.2.2"),
        (&c1.0, "10.1.2.100"),
        (&c2.0, "10.1.1.100"),
        (&c2.0, "10.1.1.2"),
        (&c1.0, "10.1.1.1"),
    ] {
        let (ok, out) = ping_from(ns, to);
        assert!(ok, "{ns} -> {to}:\n{out}");
    }
    let (ok, out) = ping(&lab, "n2p1", "10.1.1.100".parse().unwrap(), 3, &[]);
    assert!(ok, "n2p1 -> the container on n1:\n{out}");

    // CHECK passes for both.
    let started = Instant::now();
    let (ok, out) = cni("CHECK", &v1, &with_prev(&conf1, &r1), &plugins);
    eprintln!("CHECK: {:?}", started.elapsed());
    assert!(ok && out.trim().is_empty(), "CHECK on n1: {out}");
    let (ok, out) = cni("CHECK", &v2, &with_prev(&conf2, &r2), &plugins);
    assert!(ok && out.trim().is_empty(), "CHECK on n2: {out}");

    // DEL removes the port, the interface and the allocation.
    let started = Instant::now();
    let (ok, out) = cni("DEL", &v1, &with_prev(&conf1, &r1), &plugins);
    eprintln!("DEL: {:?}", started.elapsed());
    assert!(ok && out.trim().is_empty(), "DEL: {out}");
    assert!(port_of(&lab, "n1", "10.1.1.100").is_none(), "port removed");
    let gone = wait_until(Duration::from_secs(5), || {
        !run_bounded(
            Command::new("ip").args(["-n", &c1.0, "link", "show", "eth0"]),
            Duration::from_secs(5),
        )
        .0
    });
    assert!(gone, "eth0 is gone from the container's namespace");
    assert!(!alloc1.exists(), "host-local's allocation released");
    // A second DEL (and one without prevResult) succeeds.
    let (ok, out) = cni("DEL", &v1, &with_prev(&conf1, &r1), &plugins);
    assert!(ok && out.trim().is_empty(), "second DEL: {out}");
    let (ok, out) = cni("DEL", &v1, &stdin1, &plugins);
    assert!(ok && out.trim().is_empty(), "DEL without prevResult: {out}");
    // CHECK now finds nothing: our code for a mismatch.
    let (ok, out) = cni("CHECK", &v1, &with_prev(&conf1, &r1), &plugins);
    assert!(!ok, "CHECK after DEL fails");
    assert_eq!(error_code(&out), 102, "{out}");

    // A container whose eth0 is taken: vxswitchd refuses, and the address goes back.
    let (ok, out) = run_bounded(
        Command::new("ip").args([
            "-n", &c3.0, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer",
        ]),
        Duration::from_secs(5),
    );
    assert!(ok, "{out}");
    let p3 = c3.path();
    let v3 = vars("ctr-three", &p3, &cni_path);
    let (ok, out) = cni("ADD", &v3, &stdin1, &plugins);
    assert!(!ok, "ADD over a foreign eth0 fails: {out}");
    assert_eq!(error_code(&out), 100, "{out}");
    let leftovers: Vec<String> = std::fs::read_dir(ipam_dir.join(&net))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("10.1.1."))
        .collect();
    assert!(leftovers.is_empty(), "no allocation leaked: {leftovers:?}");

    let (ok, out) = cni("DEL", &v2, &with_prev(&conf2, &r2), &plugins);
    assert!(ok, "DEL on n2: {out}");
    assert!(port_of(&lab, "n2", "10.1.2.100").is_none());
    drop((c1, c2, c3));
}

#[test]
fn bad_input_gets_the_specified_error_objects() {
    let tmp = TempDir::new("bad");
    let plugins = plugin_dir(&tmp.0);
    let cni_path = format!("{}:/usr/lib/cni", plugins.display());
    let v = vars("ctr-bad", "/run/netns/vxcni-none", &cni_path);
    let good = json!({
        "cniVersion": "1.0.0", "name": "vxnet", "type": "vxswitch",
        "socket": tmp.0.join("no-such.sock"),
        "ipam": {"type": "host-local", "dataDir": tmp.0.join("ipam")}
    });

    // VERSION lists what the plugin speaks.
    let (ok, out) = cni("VERSION", &[], br#"{"cniVersion":"1.0.0"}"#, &plugins);
    assert!(ok, "{out}");
    let info: Value = serde_json::from_str(&out).unwrap();
    for want in ["0.3.1", "0.4.0", "1.0.0"] {
        assert!(
            info["supportedVersions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == want),
            "{out}"
        );
    }

    let mut no_name = good.clone();
    no_name.as_object_mut().unwrap().remove("name");
    let mut old = good.clone();
    old["cniVersion"] = json!("0.2.0");
    let mut check03 = good.clone();
    check03["cniVersion"] = json!("0.3.1");
    // (command, environment, stdin, expected code)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u64);
    let cases: Vec<Case> = vec![
        // Not JSON: decode failure.
        (
            "ADD",
            v.clone(),
            b"{\"cniVersion\": \"1.0.0\", ".to_vec(),
            6,
        ),
        ("ADD", v.clone(), b"".to_vec(), 6),
        // JSON, but no name: invalid configuration.
        ("ADD", v.clone(), serde_json::to_vec(&no_name).unwrap(), 7),
        // A version it does not speak.
        ("ADD", v.clone(), serde_json::to_vec(&old).unwrap(), 1),
        // CHECK does not exist before 0.4.0.
        ("CHECK", v.clone(), serde_json::to_vec(&check03).unwrap(), 1),
        // An unknown command, and a missing variable: invalid environment.
        ("FROB", v.clone(), serde_json::to_vec(&good).unwrap(), 4),
        (
            "ADD",
            v[1..].to_vec(),
            serde_json::to_vec(&good).unwrap(),
            4,
        ),
        // The container's namespace does not exist.
        ("ADD", v.clone(), serde_json::to_vec(&good).unwrap(), 4),
    ];
    for (command, vars, stdin, want) in cases {
        let (ok, out) = cni(command, &vars, &stdin, &plugins);
        assert!(!ok, "{command} {}: {out}", String::from_utf8_lossy(&stdin));
        assert_eq!(
            error_code(&out),
            want,
            "{command} {}: {out}",
            String::from_utf8_lossy(&stdin)
        );
    }

    // vxswitchd not running: try again later, and nothing allocated.
    let ns = Netns::new(unique_name("vxcni"));
    let p = ns.path();
    let v = vars("ctr-bad", &p, &cni_path);
    let (ok, out) = cni("ADD", &v, &serde_json::to_vec(&good).unwrap(), &plugins);
    assert!(!ok);
    assert_eq!(error_code(&out), 11, "{out}");
    assert!(!tmp.0.join("ipam").join("vxnet").exists());
    // DEL without vxswitchd cannot remove the port: try again later too.
    let (ok, out) = cni("DEL", &v, &serde_json::to_vec(&good).unwrap(), &plugins);
    assert!(!ok);
    assert_eq!(error_code(&out), 11, "{out}");

    // Without CNI_COMMAND (or with --help) it says what it is.
    let (ok, out) = cni("", &[], b"", &plugins);
    assert!(
        ok && out.starts_with("CNI vxswitch plugin version"),
        "{out}"
    );
    assert!(out.contains("\"type\": \"vxswitch\""), "{out}");
}
