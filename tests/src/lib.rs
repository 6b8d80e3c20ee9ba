//! Helpers for the end-to-end tests: unique lab names, sockets opened inside a pod's network
//! namespace, verified TCP transfers, bounded waits, and captures on the underlay.
//!
//! The tests need root (network namespaces, TAP devices); CI runs them as root.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use tools::lab::{Kind, Lab, LabGuard, LabSpec};

/// A lab name unique to this test process and call (≤ 8 characters).
pub fn unique_name(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = std::process::id() % 1296 * 36 + SEQ.fetch_add(1, Ordering::Relaxed) % 36;
    let mut s = String::new();
    let mut v = n;
    for _ in 0..3 {
        s.push(std::char::from_digit(v % 36, 36).unwrap_or('0'));
        v /= 36;
    }
    let p: String = prefix.chars().take(5).collect();
    format!("{p}{s}")
}

/// Brings a lab up for one test; it is torn down when the guard drops (also on panic).
pub fn lab(spec: LabSpec) -> LabGuard {
    let name = spec.name.clone();
    match Lab::up(&spec) {
        Ok(l) => LabGuard(l),
        Err(e) => {
            let _ = Lab::down(&name);
            panic!("vxlab up {name} failed: {e}");
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `netns` (a name under
/// /run/netns). Sockets created there stay in that namespace wherever they are used later.
pub fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = Path::new("/run/netns").join(netns);
    std::thread::spawn(move || {
        let file =
            std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        use std::os::fd::AsRawFd;
        // SAFETY: `file` is an open network-namespace file; setns affects this thread only,
        // which exits when `f` returns.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            r,
            0,
            "setns {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

/// A deterministic byte stream (xorshift), so the receiver can check every byte.
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern(seed | 1)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Sends `bytes` of a pattern over TCP from pod namespace `from_ns` to `to_ip:port` whose
/// listener is opened in `to_ns`, in writes of `write_size` bytes, and checks every byte that
/// arrives. Bounded by `limit`. `to_ip` is an IPv4 or an IPv6 address.
pub fn tcp_transfer(
    from_ns: &str,
    to_ns: &str,
    to_ip: impl Into<IpAddr>,
    port: u16,
    bytes: usize,
    write_size: usize,
    limit: Duration,
) -> Result<Duration, String> {
    let to_ip: IpAddr = to_ip.into();
    let listener = in_netns(to_ns, move || {
        TcpListener::bind(SocketAddr::from((to_ip, port)))
    })
    .map_err(|e| format!("listen on {to_ip}:{port} in {to_ns}: {e}"))?;
    let seed = 0x5eed_0000 + port as u64;
    let receiver = std::thread::spawn(move || -> Result<usize, String> {
        listener.set_nonblocking(false).map_err(|e| e.to_string())?;
        let (mut s, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let mut expect = Pattern::new(seed);
        let mut got = vec![0u8; 1 << 16];
        let mut want = vec![0u8; 1 << 16];
        let mut total = 0usize;
        loop {
            let n = s
                .read(&mut got)
                .map_err(|e| format!("read after {total} bytes: {e}"))?;
            if n == 0 {
                return Ok(total);
            }
            // The pattern is generated in 8-byte words; keep reads word-aligned by topping up.
            let mut filled = n;
            while filled % 8 != 0 {
                let m = s
                    .read(&mut got[filled..filled + (8 - filled % 8)])
                    .map_err(|e| e.to_string())?;
                if m == 0 {
                    break;
                }
                filled += m;
            }
            expect.fill(&mut want[..filled]);
            if got[..filled] != want[..filled] {
                let at = got[..filled]
                    .iter()
                    .zip(&want[..filled])
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                return Err(format!("byte {} differs", total + at));
            }
            total += filled;
        }
    });
    let started = Instant::now();
    let stream = in_netns(from_ns, move || {
        TcpStream::connect_timeout(&SocketAddr::from((to_ip, port)), Duration::from_secs(5))
    })
    .map_err(|e| format!("connect to {to_ip}:{port} from {from_ns}: {e}"))?;
    let sender = std::thread::spawn(move || -> Result<(), String> {
        let mut stream = stream;
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let mut p = Pattern::new(seed);
        let ws = write_size.max(8) / 8 * 8;
        let mut buf = vec![0u8; ws];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(ws);
            p.fill(&mut buf[..n]);
            stream
                .write_all(&buf[..n])
                .map_err(|e| format!("write with {left} bytes left: {e}"))?;
            left -= n;
        }
        stream
            .shutdown(std::net::Shutdown::Write)
            .map_err(|e| e.to_string())?;
        Ok(())
    });
    sender.join().map_err(|_| "sender panicked".to_string())??;
    let got = receiver
        .join()
        .map_err(|_| "receiver panicked".to_string())??;
    let took = started.elapsed();
    if got != bytes {
        return Err(format!("received {got} of {bytes} bytes"));
    }
    if took > limit {
        return Err(format!("transfer took {took:?}, over the {limit:?} bound"));
    }
    Ok(took)
}

/// Runs a command to completion with a bound on its time; returns (status ok, stdout+stderr).
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    let out = child.wait_with_output().expect("wait");
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `ping` from a lab target; returns (all answered, output).
pub fn ping(lab: &Lab, from: &str, to: Ipv4Addr, count: u32, extra: &[&str]) -> (bool, String) {
    let mut cmd = lab.command(from, "ping");
    cmd.args(["-n", "-c", &count.to_string(), "-i", "0.2", "-W", "2"])
        .args(extra)
        .arg(to.to_string());
    run_bounded(&mut cmd, Duration::from_secs(10 + count as u64))
}

/// `ping -6` from a lab target; returns (all answered, output).
pub fn ping6(lab: &Lab, from: &str, to: Ipv6Addr, count: u32, extra: &[&str]) -> (bool, String) {
    let mut cmd = lab.command(from, "ping");
    cmd.args(["-6", "-n", "-c", &count.to_string(), "-i", "0.2", "-W", "2"])
        .args(extra)
        .arg(to.to_string());
    run_bounded(&mut cmd, Duration::from_secs(10 + count as u64))
}

/// Polls `f` until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A tcpdump capture running in a namespace, stopped (and its file read) on `finish`.
pub struct Capture {
    child: Child,
    pub file: PathBuf,
}

impl Capture {
    /// Starts `tcpdump -i IFACE -w FILE FILTER` in `netns` and waits until it is listening.
    pub fn start(netns: &str, iface: &str, filter: &str, dir: &Path) -> Capture {
        std::fs::create_dir_all(dir).expect("capture dir");
        let file = dir.join(format!("{netns}-{iface}.pcap"));
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "tcpdump",
                "-Z",
                "root",
                "--immediate-mode",
                "-i",
                iface,
                "-n",
                "-U",
                "-w",
            ])
            .arg(&file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump (install tcpdump)");
        // tcpdump says "listening on ..." once the capture is live.
        let mut err = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let mut seen = String::new();
            let mut said = false;
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                if !said && seen.contains("listening on") {
                    let _ = tx.send(());
                    said = true;
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("tcpdump did not start listening within 10 s");
        Capture { child, file }
    }

    /// Stops the capture (SIGINT, so tcpdump flushes) and returns the captured frames.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        // SAFETY: kill(2) with the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        read_pcap(&self.file)
    }
}

/// Reads the frames of a classic pcap file (Ethernet link type).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    if data.len() < 24 {
        return out;
    }
    let le = data[0..4] == [0xd4, 0xc3, 0xb2, 0xa1] || data[0..4] == [0x4d, 0x3c, 0xb2, 0xa1];
    let u32_at = |b: &[u8]| -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut off = 24;
    while off + 16 <= data.len() {
        let incl = u32_at(&data[off + 8..off + 12]) as usize;
        off += 16;
        if off + incl > data.len() {
            break;
        }
        out.push(data[off..off + incl].to_vec());
        off += incl;
    }
    out
}

/// For a captured underlay frame carrying VXLAN on `port`: (VNI, inner frame).
pub fn vxlan_inner(frame: &[u8], port: u16) -> Option<(u32, &[u8])> {
    if frame.len() < 14 + 20 + 8 + 8 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if ip[9] != 17 || ip.len() < ihl + 16 {
        return None;
    }
    let udp = &ip[ihl..];
    if u16::from_be_bytes([udp[2], udp[3]]) != port {
        return None;
    }
    let vx = &udp[8..];
    let vni = u32::from_be_bytes([0, vx[4], vx[5], vx[6]]);
    Some((vni, &vx[8..]))
}

/// The counter named `name` from a stats reply (drops or events).
pub fn counter(stats: &controlplane::proto::StatsRepr, name: &str) -> u64 {
    stats
        .drops
        .iter()
        .chain(stats.events.iter())
        .find(|c| c.name == name)
        .map(|c| c.value)
        .unwrap_or_else(|| panic!("no counter {name}"))
}

/// Runs `vxctl --socket <node's socket> ARGS...`; returns (exit status ok, stdout+stderr).
pub fn vxctl(lab: &Lab, node: &str, args: &[&str]) -> (bool, String) {
    let bin = tools::lab::vxswitch::BinSearch::from_env()
        .find("vxctl")
        .expect("vxctl binary (cargo build --bins)");
    let sock = lab.socket(node).expect("a vxswitch node").to_path_buf();
    let mut cmd = Command::new(bin);
    cmd.arg("--socket").arg(sock).args(args);
    run_bounded(&mut cmd, Duration::from_secs(30))
}

/// `n_packets` of the one dump-flows line that contains every one of `needles`.
pub fn n_packets(lab: &Lab, node: &str, needles: &[&str]) -> u64 {
    let (ok, out) = vxctl(lab, node, &["dump-flows", "br0"]);
    assert!(ok, "dump-flows failed:\n{out}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one flow with {needles:?} in:\n{out}"
    );
    let v = lines[0]
        .split("n_packets=")
        .nth(1)
        .and_then(|s| s.split([',', ' ']).next())
        .expect("n_packets");
    v.parse().expect("a number")
}

/// A long-running vxctl (capture, monitor) whose output lines are collected as they come.
pub struct Streamer {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Streamer {
    /// Starts `vxctl --socket <node socket> ARGS...`, collecting stdout and stderr lines.
    pub fn start(lab: &Lab, node: &str, args: &[&str]) -> Streamer {
        let bin = tools::lab::vxswitch::BinSearch::from_env()
            .find("vxctl")
            .expect("vxctl binary");
        let mut child = Command::new(bin)
            .arg("--socket")
            .arg(lab.socket(node).expect("a vxswitch node"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vxctl");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn Read + Send>,
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap_or_else(|p| p.into_inner()).push(l);
                }
            });
        }
        Streamer { child, lines }
    }

    /// Waits (bounded) until a line contains `needle`.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || self.text().contains(needle))
    }

    pub fn text(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Waits (bounded) for the process to exit by itself; kills it otherwise.
    pub fn finish(mut self, limit: Duration) -> (bool, String) {
        let deadline = Instant::now() + limit;
        let ok = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break false;
                }
            }
        };
        std::thread::sleep(Duration::from_millis(50));
        (ok, self.text())
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `ping` from a lab target with iputils' ping, or busybox's where iputils is not installed;
/// returns (replies received, output). Bounded like [`ping`].
pub fn ping_count(lab: &Lab, from: &str, to: Ipv4Addr, count: u32) -> (u32, String) {
    let iputils = ["/usr/bin/ping", "/bin/ping"]
        .iter()
        .any(|p| Path::new(p).exists());
    let mut cmd = if iputils {
        lab.command(from, "ping")
    } else {
        let mut c = lab.command(from, "busybox");
        c.arg("ping");
        c
    };
    cmd.args(["-c", &count.to_string(), "-i", "0.2", "-W", "2"])
        .arg(to.to_string());
    let (_, out) = run_bounded(&mut cmd, Duration::from_secs(10 + count as u64));
    // iputils: "3 packets transmitted, 3 received"; busybox: "..., 3 packets received".
    let received = out
        .split("transmitted, ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (received, out)
}

/// The path of one of the project's binaries: in `VXLAB_BIN_DIR` when set, else where vxlab
/// looks (next to the test binary's build).
pub fn bin(name: &str) -> PathBuf {
    tools::lab::vxswitch::BinSearch::from_env()
        .find(name)
        .unwrap_or_else(|e| panic!("{name} binary (cargo build --bins): {e}"))
}

/// A directory under the temp dir that any user may enter (to reach a socket in it), removed
/// on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let p = std::env::temp_dir().join(format!("vx-{tag}-{}", unique_name("d")));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A network namespace the test makes (loopback up), deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: String) -> Netns {
        let (ok, out) = run_bounded(
            Command::new("ip").args(["netns", "add", &name]),
            Duration::from_secs(5),
        );
        assert!(ok, "ip netns add {name}: {out}");
        let ns = Netns(name);
        let _ = run_bounded(
            Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]),
            Duration::from_secs(5),
        );
        ns
    }

    /// The namespace's path, as CNI_NETNS and vxswitchd take it.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_bounded(
            Command::new("ip").args(["netns", "delete", &self.0]),
            Duration::from_secs(5),
        );
    }
}
