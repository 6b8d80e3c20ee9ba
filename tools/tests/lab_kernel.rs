//! All-kernel labs built for real (root): pods ping each other on one node and across nodes,
//! over a veth underlay (2 nodes) and a bridge underlay (3 nodes), and `down` leaves nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use tools::lab::{Kind, Lab, LabGuard, LabSpec};

/// A lab name unique to this test process: `lk` + pid mod 1000 in base 36 + a letter.
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
        "lk".to_string(),
        digits.iter().rev().collect(),
        suffix.to_string(),
    ]
    .concat();
    assert!(name.len() <= 8);
    name
}

fn kernel_spec(name: &str, nodes: usize) -> LabSpec {
    LabSpec {
        name: name.into(),
        nodes,
        pods: 2,
        kinds: vec![Kind::Kernel],
        ..LabSpec::default()
    }
}

fn netns_list() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn ours(name: &str) -> Vec<String> {
    let prefix = format!("{name}-");
    netns_list()
        .into_iter()
        .filter(|ns| ns.starts_with(&prefix))
        .collect()
}

fn ping(lab: &Lab, from: &str, to: &str) {
    let ip = lab.pod(to).unwrap().ip.to_string();
    let out = lab
        .command(from, "ping")
        .args(["-c", "3", "-W", "2", &ip])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ping {from} -> {to} ({ip}) failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn two_kernel_nodes_ping_and_leave_nothing_behind() {
    let name = unique_name('a');
    let _ = Lab::down(&name);
    let lab = LabGuard(Lab::up(&kernel_spec(&name, 2)).expect("lab up"));

    let mut want: Vec<String> = ["n1", "n2", "n1p1", "n1p2", "n2p1", "n2p2"]
        .iter()
        .map(|t| format!("{name}-{t}"))
        .collect();
    want.sort();
    let mut have = ours(&name);
    have.sort();
    assert_eq!(have, want);

    ping(&lab, "n1p1", "n1p2");
    ping(&lab, "n1p1", "n2p1");
    ping(&lab, "n2p2", "n1p2");

    // The node programs flannel's way: route, permanent neighbour and FDB entry per peer.
    let route = lab
        .command("n1", "ip")
        .args(["route", "show", "10.1.2.0/24"])
        .output()
        .unwrap();
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(
        route.contains("via 10.1.2.0 dev flannel.1 onlink"),
        "{route}"
    );
    let fdb = lab
        .command("n1", "bridge")
        .args(["fdb", "show", "dev", "flannel.1"])
        .output()
        .unwrap();
    let fdb = String::from_utf8_lossy(&fdb.stdout);
    assert!(
        fdb.contains("02:f1:00:00:00:02 dst 198.51.100.2 self permanent"),
        "{fdb}"
    );

    // The state file describes the same lab, and status_json has the documented shape.
    let loaded = Lab::load(&name).unwrap();
    let v = loaded.status_json();
    assert_eq!(v, lab.status_json());
    assert_eq!(v["name"], name.as_str());
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for (i, n) in nodes.iter().enumerate() {
        let i = i + 1;
        assert_eq!(n.as_object().unwrap().len(), 7, "{n}");
        assert_eq!(n["name"], format!("n{i}"));
        assert_eq!(n["netns"], format!("{name}-n{i}"));
        assert_eq!(n["kind"], "kernel");
        assert_eq!(n["vtep"], format!("198.51.100.{i}"));
        assert_eq!(n["vtep_mac"], format!("02:f1:00:00:00:{i:02x}"));
        assert_eq!(n["subnet"], format!("10.1.{i}.0/24"));
        let pods = n["pods"].as_array().unwrap();
        assert_eq!(pods.len(), 2);
        for (j, p) in pods.iter().enumerate() {
            let j = j + 1;
            assert_eq!(p.as_object().unwrap().len(), 4, "{p}");
            assert_eq!(p["name"], format!("n{i}p{j}"));
            assert_eq!(p["netns"], format!("{name}-n{i}p{j}"));
            assert_eq!(p["ip"], format!("10.1.{i}.{}", j + 1));
            assert_eq!(p["mac"], format!("0a:58:0a:01:{i:02x}:{:02x}", j + 1));
        }
    }
    let e = Lab::up(&kernel_spec(&name, 2)).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "lab {name} is already up; run vxlab down --name {name}"
        )),
        "{e}"
    );
    assert!(loaded.ctl("n1").is_err());

    drop(lab);
    assert_eq!(ours(&name), Vec::<String>::new());
    assert!(!std::path::Path::new("/run/vxlab").join(&name).exists());
    assert!(matches!(
        Lab::load(&name),
        Err(tools::lab::LabError::NotUp { .. })
    ));
    let again = Lab::teardown(&name).unwrap();
    assert!(!again.existed, "down of a lab that does not exist");
}

#[test]
fn three_kernel_nodes_ping_over_the_underlay_bridge() {
    let name = unique_name('b');
    let _ = Lab::down(&name);
    let lab = LabGuard(Lab::up(&kernel_spec(&name, 3)).expect("lab up"));
    assert!(ours(&name).contains(&format!("{name}-ul")));
    ping(&lab, "n1p1", "n3p1");
    ping(&lab, "n3p2", "n2p1");
    drop(lab);
    assert_eq!(ours(&name), Vec::<String>::new());
}

#[test]
fn down_cleans_up_after_a_crash() {
    // A lab whose state file is gone and which still runs a process in a pod namespace.
    let name = unique_name('c');
    let _ = Lab::down(&name);
    let mut spec = kernel_spec(&name, 2);
    spec.pods = 1;
    spec.ipv6 = false;
    let lab = Lab::up(&spec).expect("lab up");
    let guard = LabGuard(lab);
    let mut sleeper = guard.command("n2p1", "sleep").arg("60").spawn().unwrap();
    // `ip netns exec` joins the namespace just after spawn returns: wait (bounded) for it.
    let in_netns = |pid: u32| {
        let out = Command::new("ip")
            .args(["netns", "pids", &format!("{name}-n2p1")])
            .output();
        String::from_utf8_lossy(&out.unwrap().stdout)
            .split_whitespace()
            .any(|p| p == pid.to_string())
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !in_netns(sleeper.id()) {
        assert!(
            Instant::now() < deadline,
            "sleep never showed up in {name}-n2p1"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // disable_ipv6 was set in the pod namespace before eth0 existed.
    let v6 = guard
        .command("n2p1", "ip")
        .args(["-6", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&v6.stdout).trim().is_empty(),
        "pod has IPv6 addresses"
    );
    std::fs::remove_file(guard.dir().join("lab.json")).unwrap();

    let report = Lab::teardown(&name).unwrap();
    assert!(report.existed);
    assert_eq!(report.namespaces.len(), 4, "{report:?}");
    assert!(report.killed.contains(&sleeper.id()), "{report:?}");
    let status = sleeper.wait().unwrap();
    assert!(!status.success());
    assert_eq!(ours(&name), Vec::<String>::new());
}
