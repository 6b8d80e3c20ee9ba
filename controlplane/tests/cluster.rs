//! Cluster mode against a real etcd (Debian's etcd-server, started per test on 127.0.0.1 with
//! free ports and a data dir in a temp dir, stopped by a guard): subnets leased in flannel's
//! layout, leases watched, etcd lost and found again.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use controlplane::cluster::{Cluster, ClusterOptions, Lease, View, DEFAULT_PREFIX};

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";
const CONFIG: &str = r#"{"Network": "10.1.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}"#;

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "vxcluster-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Certificates made with openssl: a CA, etcd's server certificate (IP 127.0.0.1), a client's.
struct Certs {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certs(dir: &Path) -> Certs {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=vxswitch-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let ext = format!("{name}.ext");
        std::fs::write(
            dir.join(&ext),
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
                 extendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
            ),
        )
        .unwrap();
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
    Certs {
        ca: dir.join("ca.pem"),
        server: (dir.join("server.pem"), dir.join("server.key")),
        client: (dir.join("client.pem"), dir.join("client.key")),
    }
}

/// One etcd member on 127.0.0.1, stopped (by PID) on drop.
struct Etcd {
    child: Option<Child>,
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<Certs>,
}

impl Etcd {
    fn start() -> Etcd {
        Etcd::start_with(false)
    }

    fn start_with(tls: bool) -> Etcd {
        let dir = TempDir::new("etcd");
        let tls = tls.then(|| make_certs(&dir.0));
        let mut e = Etcd {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            tls,
        };
        e.run();
        e
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    fn run(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join("etcd.log"))
            .unwrap();
        let mut cmd = Command::new(ETCD);
        cmd.args(["--name", "t", "--data-dir"])
            .arg(self.dir.0.join("data"))
            .args(["--listen-client-urls", &self.url()])
            .args(["--advertise-client-urls", &self.url()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(c) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&c.server.0)
                .arg("--key-file")
                .arg(&c.server.1)
                .arg("--trusted-ca-file")
                .arg(&c.ca)
                .arg("--client-cert-auth");
        }
        self.child = Some(cmd.spawn().expect("etcd starts (Debian's etcd-server)"));
        let up = wait_until(Duration::from_secs(20), || {
            self.ctl(&["endpoint", "health"]).is_ok()
        });
        assert!(up, "etcd answers: {}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("etcd.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// etcdctl against this member: Ok(stdout) or Err(stderr).
    fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(ETCDCTL);
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url(), "--command-timeout", "3s"]);
        if let Some(c) = &self.tls {
            cmd.arg("--cacert")
                .arg(&c.ca)
                .arg("--cert")
                .arg(&c.client.0)
                .arg("--key")
                .arg(&c.client.1);
        }
        let out = cmd.args(args).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]).expect("etcdctl put");
    }

    fn revision(&self) -> i64 {
        let out = self
            .ctl(&["endpoint", "status", "-w", "json"])
            .expect("status");
        let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
        v[0]["Status"]["header"]["revision"]
            .as_i64()
            .expect("revision")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn subnets_key(sub: &str) -> String {
    format!("{DEFAULT_PREFIX}/subnets/{sub}")
}

fn options(endpoint: String, dir: &Path, n: u8) -> ClusterOptions {
    ClusterOptions {
        endpoints: vec![endpoint],
        prefix: DEFAULT_PREFIX.to_string(),
        ca_file: None,
        cert_file: None,
        key_file: None,
        subnet_file: dir.join(format!("n{n}/subnet.env")),
        subnet_lease_file: None,
        lease_ttl: Duration::from_secs(30),
        public_ip: Ipv4Addr::new(198, 51, 100, n),
        vtep_mac: format!("02:f1:00:00:00:{n:02x}").parse().unwrap(),
        requested: None,
        requested6: None,
        underlay_mtu: 1500,
    }
}

fn start(opts: ClusterOptions) -> Cluster {
    Cluster::start(opts, || {}).expect("cluster thread starts")
}

fn has_lease(c: &Cluster) -> bool {
    let v = c.view();
    v.own.is_some() && v.listed
}

fn view_nodes(v: &View) -> Vec<String> {
    v.leases
        .values()
        .map(|l| l.key.subnet.to_string())
        .collect()
}

#[test]
fn racing_agents_get_distinct_subnets_and_see_each_other() {
    let etcd = Etcd::start();
    etcd.put(&format!("{DEFAULT_PREFIX}/config"), CONFIG);
    let dir = TempDir::new("race");
    // A small network, so that random picks would collide without the transaction.
    etcd.put(
        &format!("{DEFAULT_PREFIX}/config"),
        r#"{"Network": "10.1.0.0/16", "SubnetLen": 24, "SubnetMin": "10.1.1.0", "SubnetMax": "10.1.3.0", "Backend": {"Type": "vxlan"}}"#,
    );
    let agents: Vec<Cluster> = (1..=3)
        .map(|n| start(options(etcd.url(), &dir.0, n)))
        .collect();
    let all = wait_until(Duration::from_secs(20), || {
        agents
            .iter()
            .all(|a| has_lease(a) && a.view().leases.len() == 2)
    });
    let views: Vec<View> = agents.iter().map(Cluster::view).collect();
    assert!(all, "three agents lease and see the two others: {views:#?}");
    let mut subnets: Vec<String> = views
        .iter()
        .map(|v| v.own.unwrap().subnet.to_string())
        .collect();
    subnets.sort();
    assert_eq!(subnets, ["10.1.1.0/24", "10.1.2.0/24", "10.1.3.0/24"]);

    // A fourth finds the network full and says so (it keeps retrying; nothing leased).
    let fourth = start(options(etcd.url(), &dir.0, 4));
    thread::sleep(Duration::from_millis(1500));
    assert!(fourth.view().own.is_none(), "no subnet left for a fourth");
}

#[test]
fn restart_takes_back_the_live_lease_and_expiry_is_seen() {
    let etcd = Etcd::start();
    etcd.put(&format!("{DEFAULT_PREFIX}/config"), CONFIG);
    let dir = TempDir::new("restart");
    let mut o1 = options(etcd.url(), &dir.0, 1);
    o1.lease_ttl = Duration::from_secs(3);
    let a = start(o1.clone());
    let b = start(options(etcd.url(), &dir.0, 2));
    assert!(wait_until(Duration::from_secs(15), || has_lease(&a)
        && has_lease(&b)
        && b.view().leases.len() == 1));
    let first = a.view().own.unwrap();

    // subnet.env as flannel writes it.
    let env = std::fs::read_to_string(dir.0.join("n1/subnet.env")).unwrap();
    let gw = first.subnet.addr().octets();
    assert_eq!(
        env,
        format!(
            "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET={}.{}.{}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n",
            gw[0], gw[1], gw[2]
        )
    );

    // Stopped and started again while its lease lives: the same subnet (found by PublicIP,
    // even without subnet.env).
    drop(a);
    std::fs::remove_file(dir.0.join("n1/subnet.env")).unwrap();
    let a = start(o1.clone());
    assert!(wait_until(Duration::from_secs(15), || has_lease(&a)));
    assert_eq!(
        a.view().own.unwrap(),
        first,
        "the same subnet after a restart"
    );

    // Stopped for good: its lease expires and the other agent's watch sees it go.
    drop(a);
    let gone = wait_until(Duration::from_secs(15), || b.view().leases.is_empty());
    assert!(
        gone,
        "the expired lease left b's view: {:?}",
        view_nodes(&b.view())
    );

    // Its lease is gone, but subnet.env remembers the subnet: asked for first again.
    let a = start(o1);
    assert!(wait_until(Duration::from_secs(15), || has_lease(&a)));
    assert_eq!(a.view().own.unwrap(), first, "the subnet from subnet.env");
}

#[test]
fn flannel_leases_parse_and_ours_read_as_flannel_writes_them() {
    let etcd = Etcd::start();
    etcd.put(&format!("{DEFAULT_PREFIX}/config"), CONFIG);
    // Exactly as flannel's vxlan backend writes a lease (PublicIPv6 null included).
    let flannel = r#"{"PublicIP":"198.51.100.9","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:5b:31:aa:bb:09"}}"#;
    etcd.put(&subnets_key("10.1.9.0-24"), flannel);
    // And one this node cannot reach, which is ignored.
    etcd.put(
        &subnets_key("10.1.10.0-24"),
        r#"{"PublicIP":"198.51.100.10","BackendType":"host-gw"}"#,
    );
    let dir = TempDir::new("flannel");
    let mut o = options(etcd.url(), &dir.0, 1);
    o.requested = Some("10.1.5.0/24".parse().unwrap());
    let a = start(o);
    assert!(wait_until(Duration::from_secs(15), || has_lease(&a)));
    let v = a.view();
    assert_eq!(
        v.own.unwrap().subnet.to_string(),
        "10.1.5.0/24",
        "the requested subnet"
    );
    assert_eq!(view_nodes(&v), ["10.1.9.0/24"], "{v:#?}");
    let node = v.leases.values().next().unwrap().to_remote().unwrap();
    assert_eq!(node.vtep.to_string(), "198.51.100.9");
    assert_eq!(node.vtep_mac.to_string(), "0e:5b:31:aa:bb:09");

    // Ours, read back with etcdctl, has flannel's field names and nothing else.
    let out = etcd
        .ctl(&["get", &subnets_key("10.1.5.0-24"), "--print-value-only"])
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"PublicIP": "198.51.100.1", "BackendType": "vxlan",
                           "BackendData": {"VNI": 1, "VtepMAC": "02:f1:00:00:00:01"}})
    );
    let lease_id = etcd
        .ctl(&["get", &subnets_key("10.1.5.0-24"), "-w", "json"])
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(&lease_id).unwrap();
    assert!(
        j["kvs"][0]["lease"].as_i64().unwrap_or(0) != 0,
        "attached to an etcd lease"
    );
    Lease::parse(&subnets_key("10.1.5.0-24"), out.trim().as_bytes()).unwrap();

    // A changed lease is seen changed; a deleted one goes.
    etcd.put(
        &subnets_key("10.1.9.0-24"),
        &flannel.replace("0e:5b:31:aa:bb:09", "0e:5b:31:aa:bb:99"),
    );
    assert!(wait_until(Duration::from_secs(10), || {
        a.view().leases.values().any(|l| {
            l.to_remote()
                .is_ok_and(|n| n.vtep_mac.to_string() == "0e:5b:31:aa:bb:99")
        })
    }));
    etcd.ctl(&["del", &subnets_key("10.1.9.0-24")]).unwrap();
    assert!(wait_until(Duration::from_secs(10), || a
        .view()
        .leases
        .is_empty()));
}

#[test]
fn tls_with_client_certificates() {
    let etcd = Etcd::start_with(true);
    etcd.put(&format!("{DEFAULT_PREFIX}/config"), CONFIG);
    let dir = TempDir::new("tls");
    let certs = etcd.tls.as_ref().unwrap();
    let mut o = options(etcd.url(), &dir.0, 1);
    o.ca_file = Some(certs.ca.clone());
    o.cert_file = Some(certs.client.0.clone());
    o.key_file = Some(certs.client.1.clone());
    o.validate().unwrap();
    let a = start(o);
    assert!(
        wait_until(Duration::from_secs(15), || has_lease(&a)),
        "leased over TLS: {}",
        etcd.log()
    );
    // Without a client certificate etcd refuses (--client-cert-auth).
    let mut o = options(etcd.url(), &dir.0, 2);
    o.ca_file = Some(certs.ca.clone());
    let b = start(o);
    thread::sleep(Duration::from_secs(2));
    assert!(b.view().own.is_none());
}

#[test]
fn options_refuse_bad_endpoints() {
    let dir = TempDir::new("opts");
    for bad in ["127.0.0.1:2379", "http://", "ftp://x:1", "http://host/path"] {
        let o = options(bad.to_string(), &dir.0, 1);
        let e = o.validate().unwrap_err();
        assert!(e.contains("bad endpoint"), "{bad}: {e}");
    }
    let o = options("https://127.0.0.1:2379".into(), &dir.0, 1);
    assert!(o.validate().unwrap_err().contains("--etcd-cafile"));
}

#[test]
fn etcd_restart_resumes_the_watch_and_keeps_the_view() {
    let mut etcd = Etcd::start();
    etcd.put(&format!("{DEFAULT_PREFIX}/config"), CONFIG);
    let flannel = |n: u8| {
        format!(
            r#"{{"PublicIP":"198.51.100.{n}","BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"02:aa:00:00:00:{n:02x}"}}}}"#
        )
    };
    etcd.put(&subnets_key("10.1.20.0-24"), &flannel(20));
    let dir = TempDir::new("restart-etcd");
    let a = start(options(etcd.url(), &dir.0, 1));
    assert!(wait_until(Duration::from_secs(15), || has_lease(&a)
        && a.view().leases.len() == 1));
    let own = a.view().own;

    etcd.stop();
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        view_nodes(&a.view()),
        ["10.1.20.0/24"],
        "the view outlives etcd"
    );

    etcd.run();
    etcd.put(&subnets_key("10.1.21.0-24"), &flannel(21));
    let seen = wait_until(Duration::from_secs(20), || a.view().leases.len() == 2);
    assert!(
        seen,
        "the lease written after the restart: {:?}",
        view_nodes(&a.view())
    );
    assert_eq!(a.view().own, own, "the same lease after etcd came back");
}

/// A TCP relay between the agent and etcd that the test can cut and restore.
struct Relay {
    port: u16,
    down: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: u16) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (d, c) = (Arc::clone(&down), Arc::clone(&conns));
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: refused while down
                }
                let addr = SocketAddr::from(([127, 0, 0, 1], target));
                let Ok(up) = TcpStream::connect(addr) else {
                    continue;
                };
                if let (Ok(s2), Ok(u2)) = (s.try_clone(), up.try_clone()) {
                    c.lock().unwrap().extend([s2, u2]);
                }
                pipe(&s, &up);
                pipe(&up, &s);
            }
        });
        Relay { port, down, conns }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

#[test]
fn compaction_while_away_lists_the_leases_again() {
    let etcd = Etcd::start();
    etcd.put(&format!("{DEFAULT_PREFIX}/config"), CONFIG);
    let flannel = |n: u8| {
        format!(
            r#"{{"PublicIP":"198.51.100.{n}","BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"02:aa:00:00:00:{n:02x}"}}}}"#
        )
    };
    etcd.put(&subnets_key("10.1.30.0-24"), &flannel(30));
    let relay = Relay::start(etcd.client_port);
    let dir = TempDir::new("compact");
    let a = start(options(
        format!("http://127.0.0.1:{}", relay.port),
        &dir.0,
        1,
    ));
    assert!(wait_until(Duration::from_secs(15), || has_lease(&a)
        && a.view().leases.len() == 1));

    relay.cut();
    // While the agent is away: one lease goes, another comes, and history is compacted.
    etcd.ctl(&["del", &subnets_key("10.1.30.0-24")]).unwrap();
    etcd.put(&subnets_key("10.1.31.0-24"), &flannel(31));
    let rev = etcd.revision();
    etcd.ctl(&["compact", &rev.to_string()]).unwrap();
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        view_nodes(&a.view()),
        ["10.1.30.0/24"],
        "kept while etcd is unreachable"
    );

    relay.restore();
    let relisted = wait_until(Duration::from_secs(20), || {
        view_nodes(&a.view()) == ["10.1.31.0/24"]
    });
    assert!(
        relisted,
        "re-listed after compaction: {:?}",
        view_nodes(&a.view())
    );
}

#[test]
fn a_revoked_lease_is_acquired_again() {
    let etcd = Etcd::start();
    etcd.put(&format!("{DEFAULT_PREFIX}/config"), CONFIG);
    let dir = TempDir::new("revoke");
    let a = start(options(etcd.url(), &dir.0, 1));
    assert!(wait_until(Duration::from_secs(15), || has_lease(&a)));
    let own = a.view().own.unwrap();
    let key = subnets_key(&own.to_key());
    let out = etcd.ctl(&["get", &key, "-w", "json"]).unwrap();
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = j["kvs"][0]["lease"].as_i64().expect("an etcd lease");
    // An admin revokes it (the key goes with it): the agent acquires one again, asking for
    // the same subnet first (from subnet.env).
    etcd.ctl(&["lease", "revoke", &format!("{id:x}")]).unwrap();
    let back = wait_until(Duration::from_secs(15), || {
        etcd.ctl(&["get", &key, "-w", "json"]).is_ok_and(|out| {
            serde_json::from_str::<serde_json::Value>(&out)
                .is_ok_and(|j| j["kvs"][0]["lease"].as_i64().is_some_and(|l| l != id))
        })
    });
    assert!(back, "the subnet is leased again under a new etcd lease");
    assert_eq!(a.view().own.unwrap(), own);
}

#[test]
fn a_dead_endpoint_among_several_is_skipped() {
    let etcd = Etcd::start();
    etcd.put(&format!("{DEFAULT_PREFIX}/config"), CONFIG);
    let dir = TempDir::new("endpoints");
    let mut o = options(format!("http://127.0.0.1:{}", free_port()), &dir.0, 1);
    o.endpoints.push(etcd.url());
    o.validate().unwrap();
    let a = start(o);
    assert!(wait_until(Duration::from_secs(15), || has_lease(&a)));
}

#[test]
fn the_files_subnet6_is_asked_for_on_an_ipv6_network() {
    let etcd = Etcd::start();
    etcd.put(
        &format!("{DEFAULT_PREFIX}/config"),
        r#"{"Network": "10.1.0.0/16", "SubnetLen": 24, "EnableIPv6": true, "IPv6Network": "fd00:10:1::/48", "IPv6SubnetLen": 64, "Backend": {"Type": "vxlan"}}"#,
    );
    let dir = TempDir::new("subnet6");
    let mut o = options(etcd.url(), &dir.0, 1);
    o.requested = Some("10.1.1.0/24".parse().unwrap());
    o.requested6 = Some("fd00:10:1:1::/64".parse().unwrap());
    let a = start(o);
    assert!(wait_until(Duration::from_secs(15), || has_lease(&a)));
    let own = a.view().own.unwrap();
    assert_eq!(own.subnet.to_string(), "10.1.1.0/24");
    assert_eq!(
        own.subnet6.map(|s| s.to_string()).as_deref(),
        Some("fd00:10:1:1::/64"),
        "the IPv6 prefix the file asks for, not a random one"
    );
}
