//! The cluster-scale simulation: 1,000 node leases written straight into etcd reach one
//! vxswitchd through one `vxagent --etcd`. The figure printed is the time from the last lease
//! write to the first vxswitchd table version that holds all 1,000 nodes (no timing assert:
//! the test asserts that they all arrive within a bounded wait).
//!
//! vxswitchd runs in a network namespace of the test's own (its VTEP on a veth of its own
//! underlay); etcd runs on 127.0.0.1 with free ports and a data dir in a temp dir. Every
//! process is stopped by PID when the test ends, also when it fails.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use controlplane::client::Client;
use controlplane::proto::Owner;
use etcd_client::PutOptions;
use vxswitch_e2e::{run_bounded, unique_name, wait_until};

const LEASES: usize = 1000;
const PREFIX: &str = "/coreos.com/network";
/// 10.1.0.0/16 in /26s: 1,023 leasable subnets, room for 1,000 nodes and this one.
const CONFIG: &str =
    r#"{"Network": "10.1.0.0/16", "SubnetLen": 26, "Backend": {"Type": "vxlan", "VNI": 1}}"#;

fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("VXLAB_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/release/deps/cluster_scale-HASH -> target/release/NAME
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join(name))
        .expect("target dir")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A process stopped by PID (SIGTERM, then SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) on the PID of a child this test spawned and has not reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test's namespace and temp dir, removed when dropped (after the processes).
struct Place {
    netns: String,
    dir: PathBuf,
}

impl Drop for Place {
    fn drop(&mut self) {
        let _ = run_bounded(
            Command::new("ip").args(["netns", "del", &self.netns]),
            Duration::from_secs(5),
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ip(args: &[&str]) {
    let (ok, out) = run_bounded(Command::new("ip").args(args), Duration::from_secs(5));
    assert!(ok, "ip {args:?}: {out}");
}

fn spawn(cmd: &mut Command, log: &Path) -> Proc {
    let f = std::fs::File::create(log).expect("log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("log file"))
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    Proc(child)
}

fn etcdctl(url: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", url, "--command-timeout", "3s"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn agent_nodes(client: &mut Client) -> Option<(u64, usize)> {
    let s = client.state().ok()?;
    let n = s.nodes.iter().filter(|n| n.owner == Owner::Agent).count();
    Some((s.table_version, n))
}

#[test]
fn thousand_leases_reach_vxswitchd() {
    let name = unique_name("cscale");
    let place = Place {
        netns: name.clone(),
        dir: std::env::temp_dir().join(format!("vx-{name}")),
    };
    let _ = std::fs::remove_dir_all(&place.dir);
    std::fs::create_dir_all(&place.dir).expect("temp dir");
    let dir = &place.dir;

    // etcd on loopback.
    let (cport, pport) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{cport}");
    let peer = format!("http://127.0.0.1:{pport}");
    let _etcd = spawn(
        Command::new("etcd")
            .args(["--name", "sim", "--data-dir"])
            .arg(dir.join("etcd"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("sim={peer}")]),
        &dir.join("etcd.log"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || etcdctl(
            &url,
            &["endpoint", "health"]
        )
        .is_ok()),
        "etcd is up"
    );
    etcdctl(&url, &["put", &format!("{PREFIX}/config"), CONFIG]).expect("config written");

    // vxswitchd in a namespace of its own, its VTEP on a veth pair inside it.
    ip(&["netns", "add", &place.netns]);
    ip(&["-n", &place.netns, "link", "set", "lo", "up"]);
    ip(&[
        "-n",
        &place.netns,
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth1",
    ]);
    ip(&[
        "-n",
        &place.netns,
        "addr",
        "add",
        "198.51.100.1/24",
        "dev",
        "eth0",
    ]);
    ip(&["-n", &place.netns, "link", "set", "eth0", "up"]);
    ip(&["-n", &place.netns, "link", "set", "eth1", "up"]);
    let socket = dir.join("vxswitchd.sock");
    let _switch = spawn(
        Command::new("ip")
            .args(["netns", "exec", &place.netns])
            .arg(bin("vxswitchd"))
            .arg("--socket")
            .arg(&socket)
            .arg("--state-file")
            .arg(dir.join("state.json"))
            .arg("--ovs-rundir")
            .arg(dir.join("ovs"))
            .args(["--workers", "1"]),
        &dir.join("vxswitchd.log"),
    );
    let mut client = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            client = Client::connect(&socket, "cluster-scale").ok();
            client.is_some()
        }),
        "vxswitchd answers: {}",
        std::fs::read_to_string(dir.join("vxswitchd.log")).unwrap_or_default()
    );
    let mut client = client.expect("connected");

    // vxagent in cluster mode; the file names the node only.
    let agent_file = dir.join("agent.toml");
    std::fs::write(
        &agent_file,
        "[node]\nname = \"sim\"\nvtep = \"198.51.100.1\"\nvtep_mac = \"02:f1:00:00:00:01\"\n",
    )
    .expect("agent file");
    let agent_log = dir.join("vxagent.log");
    let _agent = spawn(
        Command::new(bin("vxagent"))
            .arg("--socket")
            .arg(&socket)
            .arg("--config")
            .arg(&agent_file)
            .args(["--etcd", &url, "--lease-ttl", "60"])
            .arg("--subnet-file")
            .arg(dir.join("subnet.env")),
        &agent_log,
    );
    let local = wait_until(Duration::from_secs(30), || {
        client.state().is_ok_and(|s| s.local.is_some())
    });
    let log = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    assert!(local, "the agent set the leased local node:\n{}", log());
    let own = client
        .state()
        .expect("state")
        .local
        .expect("local node")
        .subnet;

    // 1,000 leases, as flannel nodes write them, straight into etcd (concurrent puts).
    let subnets: Vec<String> = (1u32..1024)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 0)) + i * 64))
        .filter(|a| *a != own.addr())
        .take(LEASES)
        .map(|a| format!("{a}-26"))
        .collect();
    assert_eq!(subnets.len(), LEASES);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (first_write, last_write) = rt.block_on(async {
        let mut etcd = etcd_client::Client::connect([url.as_str()], None)
            .await
            .expect("etcd client");
        let lease = etcd.lease_grant(600, None).await.expect("lease").id();
        let mut tasks = tokio::task::JoinSet::new();
        let first = Instant::now();
        for (i, s) in subnets.iter().enumerate() {
            let mut c = etcd.clone();
            let key = format!("{PREFIX}/subnets/{s}");
            // 1,000 distinct VTEPs do not fit the two documentation /24s: the simulated nodes
            // take theirs from 198.18.0.0/15, the range set aside for benchmarking (RFC 2544).
            // They are data only: no interface carries them and no packet is sent to them.
            let public = format!("198.18.{}.{}", i / 250, 1 + i % 250);
            let value = format!(
                r#"{{"PublicIP":"{public}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"0e:{:02x}:{:02x}:00:00:01"}}}}"#,
                i >> 8,
                i & 0xff
            );
            tasks.spawn(async move {
                c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                    .await
                    .map(|_| ())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("put task").expect("put");
        }
        (first, Instant::now())
    });

    // Poll vxswitchd's state until one table version holds them all.
    let mut seen = (0, 0);
    let all = wait_until(Duration::from_secs(120), || {
        if let Some(v) = agent_nodes(&mut client) {
            seen = v;
        }
        seen.1 == LEASES
    });
    let done = Instant::now();
    assert!(
        all,
        "all {LEASES} leases reach vxswitchd (last seen: {} nodes at table version {}):\n{}",
        seen.1,
        seen.0,
        log()
    );
    let after_last = done.duration_since(last_write);
    let after_first = done.duration_since(first_write);
    let writing = last_write.duration_since(first_write);
    let pushes = log().lines().filter(|l| l.contains("pushed")).count();
    println!(
        "cluster_scale: {LEASES} leases written in {:.1} ms; vxswitchd table version {} holds \
         all {LEASES} nodes {:.1} ms after the last write ({:.1} ms after the first); the agent \
         pushed {pushes} batches",
        writing.as_secs_f64() * 1e3,
        seen.0,
        after_last.as_secs_f64() * 1e3,
        after_first.as_secs_f64() * 1e3,
    );

    // One node, checked field by field.
    let state = client.state().expect("state");
    let n = state
        .nodes
        .iter()
        .find(|n| n.spec.subnet.to_string() == subnets[1].replace("-26", "/26"))
        .expect("the second lease's node");
    assert_eq!(n.spec.vtep.to_string(), "198.18.0.2");
    assert_eq!(n.spec.vtep_mac.to_string(), "0e:00:01:00:00:01");
    assert_eq!(n.owner, Owner::Agent);
}
