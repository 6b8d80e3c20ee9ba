//! The comparison kinds built for real (root): a `plain` lab (routed, no overlay) and an `ovs`
//! lab (Open vSwitch userspace datapath, needs openvswitch-switch) ping pod to pod across
//! nodes and leave nothing behind, mixed labs are refused, and a short `vxbench` run writes
//! every file it documents.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tools::lab::{Kind, Lab, LabGuard, LabSpec};

/// A lab name unique to this test process: `lq` + pid mod 1000 in base 36 + a letter.
fn unique_name(suffix: char) -> String {
    let mut n = std::process::id() % 1000;
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit(n % 36, 36).unwrap());
        n /= 36;
        if n == 0 {
            break;
        }
    }
    let name: String = [
        "lq".to_string(),
        digits.iter().rev().collect(),
        suffix.to_string(),
    ]
    .concat();
    assert!(name.len() <= 6, "leaves room for vxbench's system tags");
    name
}

fn spec(name: &str, kind: Kind) -> LabSpec {
    LabSpec {
        name: name.into(),
        nodes: 2,
        pods: 1,
        kinds: vec![kind],
        ipv6: false,
        ..LabSpec::default()
    }
}

/// The lab's namespaces that exist.
fn ours(name: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| ns.starts_with(&format!("{name}-")))
        .map(str::to_string)
        .collect()
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ping(lab: &Lab, from: &str, to: &str, size: usize) {
    let ip = lab.pod(to).unwrap().ip.to_string();
    output(lab.command(from, "ping").args([
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        &size.to_string(),
        &ip,
    ]));
}

#[test]
fn plain_lab_routes_full_size_frames_without_tso_and_refuses_other_kinds() {
    let name = unique_name('a');
    let _ = Lab::down(&name);
    let mut s = spec(&name, Kind::Plain);
    s.tso = false;
    let lab = LabGuard(Lab::up(&s).expect("lab up"));

    // 1472 bytes of ICMP payload with DF: a 1500-byte packet, which no overlay carries.
    ping(&lab, "n1p1", "n2p1", 1472);
    ping(&lab, "n2p1", "n1p1", 56);
    let route = output(
        lab.command("n1", "ip")
            .args(["route", "show", "10.1.2.0/24"]),
    );
    assert!(route.contains("via 198.51.100.2 dev eth0"), "{route}");
    let mtu = output(lab.command("n1p1", "cat").arg("/sys/class/net/eth0/mtu"));
    assert_eq!(mtu.trim(), "1500");
    // TSO off: TX checksum offload off in the pod and on the node end of its veth.
    for (target, dev) in [("n1p1", "eth0"), ("n1", "vn1p1")] {
        let k = output(lab.command(target, "ethtool").args(["-k", dev]));
        assert!(k.contains("tx-checksumming: off"), "{target} {dev}:\n{k}");
    }
    assert!(lab.switch_processes().is_empty());
    // The underlay keeps vxlab's default: complete frames on the wire.
    let k = output(lab.command("n2", "ethtool").args(["-k", "eth0"]));
    assert!(k.contains("tx-checksumming: off"), "{k}");

    drop(lab);
    assert_eq!(ours(&name), Vec::<String>::new());

    for kinds in [
        vec![Kind::Plain, Kind::Kernel],
        vec![Kind::Ovs, Kind::Vxswitch],
    ] {
        let mixed = LabSpec {
            kinds,
            ..spec(&name, Kind::Plain)
        };
        let e = Lab::up(&mixed).unwrap_err().to_string();
        assert!(e.contains("cannot share a lab"), "{e}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_vxlab"))
        .args(["up", "--name", &name, "--kinds", "plain,kernel"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kinds plain and kernel cannot share a lab"),
        "{err}"
    );
    assert_eq!(ours(&name), Vec::<String>::new());
}

#[test]
fn ovs_lab_pings_across_nodes_and_down_stops_its_daemons() {
    let name = unique_name('b');
    let _ = Lab::down(&name);
    // With underlay offload on, as vxbench builds it; OVS's AF_PACKET eth0 keeps it off.
    let s = LabSpec {
        underlay_offload: true,
        ..spec(&name, Kind::Ovs)
    };
    let lab = LabGuard(Lab::up(&s).expect(
        "lab up (kind ovs needs the package openvswitch-switch: apt-get install openvswitch-switch)",
    ));

    // 1422 bytes of ICMP payload with DF: a 1450-byte packet, the pod MTU under VXLAN.
    ping(&lab, "n1p1", "n2p1", 1422);
    ping(&lab, "n2p1", "n1p1", 56);

    let mut daemons = Vec::new();
    for n in lab.nodes() {
        let (vswitchd, ovsdb) = (n.ovs_vswitchd_pid.unwrap(), n.ovsdb_server_pid.unwrap());
        for (pid, comm) in [(vswitchd, "ovs-vswitchd"), (ovsdb, "ovsdb-server")] {
            let have = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
            assert_eq!(have.trim(), comm);
            daemons.push(pid);
        }
        // Each node's own database, with the tunnel towards the other node and key 1.
        let db = format!("--db=unix:{}/ovs/db.sock", n.dir.display());
        let show = output(Command::new("ovs-vsctl").args([&db, "show"]));
        let peer = if n.name == "n1" {
            "198.51.100.2"
        } else {
            "198.51.100.1"
        };
        assert!(show.contains(&format!("remote_ip=\"{peer}\"")), "{show}");
        assert!(show.contains("key=\"1\""), "{show}");
    }
    assert_eq!(lab.switch_processes().len(), 2);
    for (target, dev) in [("n1", "eth0"), ("n1", "vn1p1"), ("n1p1", "eth0")] {
        let k = output(lab.command(target, "ethtool").args(["-k", dev]));
        assert!(k.contains("tx-checksumming: off"), "{target} {dev}:\n{k}");
    }
    let addr = output(
        lab.command("n1", "ip")
            .args(["-4", "addr", "show", "dev", "br-phy"]),
    );
    assert!(addr.contains("198.51.100.1/24"), "{addr}");

    drop(lab);
    assert_eq!(ours(&name), Vec::<String>::new());
    assert!(!Path::new("/run/vxlab").join(&name).exists());
    let deadline = Instant::now() + Duration::from_secs(5);
    for pid in daemons {
        // Gone, or at most a zombie until its parent (init) reaps it.
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            if stat.is_empty() || state.starts_with('Z') {
                break;
            }
            assert!(Instant::now() < deadline, "OVS daemon {pid} survived down");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs a command for at most `limit`; kills it (our child, by PID) if it takes longer.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} took longer than {limit:?}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_short_vxbench_run_writes_samples_summary_markdown_and_chart() {
    let prefix = unique_name('c');
    let dir = TempDir(std::env::temp_dir().join(format!("vxbench-smoke-{}", std::process::id())));
    let _ = Lab::down(&format!("{prefix}k"));
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_vxbench")).args([
            "--systems",
            "kernel",
            "--repeats",
            "1",
            "--duration",
            "1",
            "--pings",
            "10",
            "--rr-count",
            "100",
            "--lab-prefix",
            &prefix,
            "--out",
            &dir.0.display().to_string(),
        ]),
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "vxbench failed:\n{stdout}{stderr}");
    assert!(
        stderr.contains("[1/1 kernel]") && stderr.contains("tcp4"),
        "{stderr}"
    );
    assert!(stdout.contains("TCP 1 stream, Gb/s"), "{stdout}");
    assert!(ours(&format!("{prefix}k")).is_empty(), "the lab is gone");

    let read =
        |f: &str| std::fs::read_to_string(dir.0.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let samples: serde_json::Value = serde_json::from_str(&read("samples.json")).unwrap();
    let tests: Vec<&str> = samples
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["test"].as_str().unwrap())
        .collect();
    assert_eq!(
        tests,
        ["lab", "ping", "tcp_rr", "tcp1", "tcp4", "udp64", "udp1400"]
    );
    let summary: serde_json::Value = serde_json::from_str(&read("summary.json")).unwrap();
    let kernel = &summary["kernel"];
    for key in [
        "tcp1_gbps",
        "tcp4_gbps",
        "udp64_rx_pps",
        "udp64_loss_pct",
        "udp1400_rx_pps",
        "ping_p50_ms",
        "ping_p99_ms",
        "tcp_rr_p50_ms",
        "tcp_rr_p99_ms",
    ] {
        let v = kernel[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {summary}"));
        assert!(v >= 0.0, "{key} = {v}");
    }
    assert!(kernel["tcp1_gbps"].as_f64().unwrap() > 0.0);
    assert!(kernel["udp64_rx_pps"].as_f64().unwrap() > 0.0);
    // The kernel has no switch process to charge CPU to.
    assert!(kernel["tcp1_cpu_s_per_gbit"].is_null());
    let md = read("summary.md");
    assert!(
        md.contains("| TCP 1 stream, Gb/s |") && md.contains("chart.svg"),
        "{md}"
    );
    let svg = read("chart.svg");
    assert!(svg.starts_with("<svg") && svg.contains("kernel"), "{svg}");
    let meta: serde_json::Value = serde_json::from_str(&read("meta.json")).unwrap();
    assert_eq!(meta["repeats"], 1);
    assert!(meta["command"]
        .as_str()
        .unwrap()
        .starts_with("vxbench --systems kernel"));
}
