//! Large flow programs through vxctl against the real vxswitchd: a replace-flows of 100,000
//! flows (about 9 MB, more than one control message holds) goes through in chunks of one
//! bundle, and is still all or nothing — a flow the switch refuses in the last chunk leaves
//! the program before it whole, and a line that does not parse sends nothing.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use controlplane::client::Client;
use controlplane::proto::{FlowStats, Match, Request, Response, TableStats};
use vxswitch_e2e::*;

/// A vxswitchd of its own (one worker, no state file, no local node) in a namespace of its
/// own. Stopped by PID on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    dir: TempDir,
    _ns: Netns,
}

impl Daemon {
    fn start(tag: &str) -> Daemon {
        let dir = TempDir::new(tag);
        let ns = Netns::new(unique_name(tag));
        let socket = dir.0.join("vxswitchd.sock");
        let log = dir.0.join("vxswitchd.log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(bin("vxswitchd"))
            .arg("--socket")
            .arg(&socket)
            .args(["--no-state", "--workers", "1"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn vxswitchd");
        let d = Daemon {
            child,
            socket,
            log,
            dir,
            _ns: ns,
        };
        let up = wait_until(Duration::from_secs(10), || {
            d.socket.exists() && Client::connect(&d.socket, "test").is_ok()
        });
        assert!(
            up,
            "vxswitchd did not come up:\n{}",
            std::fs::read_to_string(&d.log).unwrap_or_default()
        );
        d
    }

    fn vxctl(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(bin("vxctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("vxctl runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    fn tables(&self) -> Vec<TableStats> {
        let mut c = Client::connect(&self.socket, "test").expect("connect");
        match c.call(&Request::DumpTables).expect("dump-tables") {
            Response::Tables { tables } => tables,
            other => panic!("{other:?}"),
        }
    }

    fn flows_to(&self, dst: Ipv4Addr) -> Vec<FlowStats> {
        let mut c = Client::connect(&self.socket, "test").expect("connect");
        let req = Request::DumpFlows {
            table: Some(0),
            matches: vec![
                Match::DlType { value: 0x0800 },
                Match::NwDst {
                    value: dst,
                    mask: Ipv4Addr::BROADCAST,
                },
            ],
        };
        match c.call(&req).expect("dump-flows") {
            Response::Flows { flows, .. } => flows,
            other => panic!("{other:?}"),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = run_bounded(
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]),
            Duration::from_secs(5),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dst(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a40_0000 + i)
}

/// A program of `n` flows, flow i to 10.64.0.0 + i, out of `port`.
fn program(n: u32, port: u16) -> String {
    let mut s = String::with_capacity(n as usize * 90);
    for i in 0..n {
        s.push_str(&format!(
            "table=0,priority=100,ip,nw_dst={},actions=mod_nw_tos:8,output:{port}\n",
            dst(i)
        ));
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write the flow file");
    p.to_string_lossy().into_owned()
}

fn table0(d: &Daemon) -> u64 {
    d.tables()
        .iter()
        .find(|t| t.table == 0)
        .map_or(0, |t| t.flows)
}

#[test]
fn a_100k_flow_replace_goes_through_in_chunks_all_or_nothing() {
    const N: u32 = 100_000;
    let d = Daemon::start("fscale");
    let first = write(&d.dir.0, "first.txt", &program(N, 2));
    assert!(
        std::fs::metadata(&first).unwrap().len() > 4 << 20,
        "more than one message"
    );
    let t = Instant::now();
    let (code, out) = d.vxctl(&["replace-flows", "br0", &first]);
    assert_eq!(code, 0, "{out}");
    println!("replace-flows of {N} flows: {:?}", t.elapsed());
    assert_eq!(table0(&d), N as u64);
    assert_eq!(
        d.flows_to(dst(N - 1)).len(),
        1,
        "the last chunk's flows are in"
    );

    // The same program out of another port, with a flow the switch refuses at its end (a
    // port that does not exist): the whole replace is refused, the first program stays.
    let mut second = program(N, 3);
    second.push_str("table=0,priority=100,ip,nw_dst=10.99.0.1,actions=output:nosuchport\n");
    let second = write(&d.dir.0, "second.txt", &second);
    let (code, out) = d.vxctl(&["replace-flows", "br0", &second]);
    assert_ne!(code, 0, "refused: {out}");
    assert!(out.contains("nosuchport"), "{out}");
    assert_eq!(table0(&d), N as u64);
    for i in [0, N / 2, N - 1] {
        let f = d.flows_to(dst(i));
        assert_eq!(f.len(), 1, "flow {i}");
        let text = format!("{:?}", f[0].spec.actions);
        assert!(text.contains("Number(2)"), "the first program's: {text}");
    }

    // A line that does not parse, at the very end: nothing is sent at all.
    let mut third = program(N, 4);
    third.push_str("table=0,priority=100,ip,nw_dst=10.99.0.1,actions=bogus_action\n");
    let third = write(&d.dir.0, "third.txt", &third);
    let (code, out) = d.vxctl(&["replace-flows", "br0", &third]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&format!("{}", N + 1)), "names the line: {out}");
    assert_eq!(table0(&d), N as u64);

    // add-flows and del-flows of as many flows go through too.
    let more: String = (0..N)
        .map(|i| format!("table=1,priority=5,ip,nw_src={},actions=drop\n", dst(i)))
        .collect();
    let more = write(&d.dir.0, "more.txt", &more);
    let (code, out) = d.vxctl(&["add-flows", "br0", &more]);
    assert_eq!(code, 0, "{out}");
    let t1 = d
        .tables()
        .iter()
        .find(|t| t.table == 1)
        .map_or(0, |t| t.flows);
    assert_eq!(t1, N as u64);
    let (code, out) = d.vxctl(&["del-flows", "br0", "table=1"]);
    assert_eq!(code, 0, "{out}");
    let t1 = d
        .tables()
        .iter()
        .find(|t| t.table == 1)
        .map_or(0, |t| t.flows);
    assert_eq!(t1, 0);
}
