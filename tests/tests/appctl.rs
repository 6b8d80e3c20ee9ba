//! OVS's own `ovs-appctl` (Debian's openvswitch-common) against vxswitchd: found through
//! `OVS_RUNDIR` (the pidfile and `ovs-vswitchd.PID.ctl`) or `-t PATH`, it prints the version,
//! the bridge, the MAC table and flow traces in OVS's shapes, fails with OVS's errors and exit
//! status 2, stops the switch with `exit`; peers that are not root are refused with a reason,
//! and garbage or a stalled request closes only that connection.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vxswitch_e2e::*;

/// The daemon's limit on a request's arrival (dataplane::unixctl::REQUEST_TIMEOUT).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs ovs-appctl with OVS_RUNDIR=rundir; returns (exit code, stdout, stderr).
fn appctl(rundir: &Path, args: &[&str]) -> (i32, String, String) {
    appctl_as(rundir, None, args)
}

fn appctl_as(rundir: &Path, user: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={u}"),
                "--regid=nogroup",
                "--clear-groups",
                "ovs-appctl",
            ]);
            c
        }
        None => Command::new("ovs-appctl"),
    };
    // ovs-appctl waits for its reply without a limit: bound it here.
    cmd.env("OVS_RUNDIR", rundir).arg("--timeout=20").args(args);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ovs-appctl (Debian's openvswitch-common) is installed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The pid in DIR/ovs-vswitchd.pid.
fn pidfile_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("ovs-vswitchd.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The lines between the `-----` rule and the blank line before "Final flow".
fn table_lines(text: &str) -> Vec<&str> {
    text.lines()
        .skip_while(|l| !l.starts_with("---"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in\n{text}"))
}

#[test]
fn ovs_appctl_reads_traces_and_stops_a_lab_switch() {
    let dir = TempDir::new("lab");
    let explicit = dir.0.join("explicit.ctl");
    let lab = lab(LabSpec {
        name: unique_name("apc"),
        nodes: 1,
        pods: 2,
        ipv6: false,
        workers: Some(1),
        switch_args: vec!["--unixctl".into(), explicit.display().to_string()],
        ..LabSpec::default()
    });
    // vxlab gives every vxswitch node its own OVS run directory.
    let rundir = lab.ovs_rundir("n1").expect("n1's OVS run directory");
    let pid = lab.switch_pid("n1").expect("n1's vxswitchd");
    assert_eq!(
        pidfile_pid(&rundir),
        Some(pid),
        "the pidfile names the switch"
    );
    let socket = rundir.join(format!("ovs-vswitchd.{pid}.ctl"));
    assert!(socket.exists(), "{} exists", socket.display());
    let (p1, p2) = (
        lab.pod("n1p1").unwrap().clone(),
        lab.pod("n1p2").unwrap().clone(),
    );

    // A remote node, and a few flows.
    let (ok, out) = vxctl(
        &lab,
        "n1",
        &[
            "add-node",
            "n2",
            "--vtep",
            "198.51.100.2",
            "--vtep-mac",
            "02:f1:00:00:00:02",
            "--subnet",
            "10.1.2.0/24",
        ],
    );
    assert!(ok, "{out}");
    for f in [
        "table=0,priority=100,in_port=3,ip,nw_dst=10.1.2.0/24,actions=set_field:198.51.100.2->tun_dst,set_field:0x1->tun_id,output:1".to_string(),
        format!("table=0,priority=100,in_port=3,ip,nw_dst={},actions=resubmit(,10)", p2.ip),
        "table=0,priority=90,in_port=3,ip,actions=drop".to_string(),
        "table=10,cookie=0x1234,priority=10,ip,actions=output:4".to_string(),
    ] {
        let (ok, out) = vxctl(&lab, "n1", &["add-flow", "br0", &f]);
        assert!(ok, "{f}: {out}");
    }

    // version, ofproto/list, list-commands, through OVS_RUNDIR and through -t.
    let (code, out, err) = appctl(&rundir, &["version"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ovs-vswitchd (vxswitch) "), "{out}");
    let t = explicit.display().to_string();
    assert_eq!(appctl(&rundir, &["-t", &t, "version"]).1, out, "-t PATH");
    assert_eq!(appctl(&rundir, &["ofproto/list"]).1, "br0\n");
    let (code, cmds, _) = appctl(&rundir, &["list-commands"]);
    assert_eq!(code, 0);
    for c in ["exit", "fdb/show", "ofproto/trace", "version"] {
        assert!(cmds.contains(&format!("\n  {c:<23} ")), "{c} in\n{cmds}");
    }

    // fdb/show: both pods on their ports.
    let (code, fdb, err) = appctl(&rundir, &["fdb/show", "br0"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        fdb.starts_with(" port  VLAN  MAC                Age\n"),
        "{fdb}"
    );
    for (port, pod) in [(3, &p1), (4, &p2)] {
        let want = format!("{port:>5}  {:>4}  {}  static", 0, pod.mac.to_lowercase());
        assert!(fdb.lines().any(|l| l == want), "{want:?} in\n{fdb}");
    }

    // ofproto/trace: to the remote node, to the other pod, dropped.
    let flow = format!("in_port=3,ip,nw_src={},nw_dst=10.1.2.5", p1.ip);
    let (code, text, err) = appctl(&rundir, &["ofproto/trace", "br0", &flow]);
    assert_eq!(code, 0, "{err}");
    assert!(text.starts_with("Flow: icmp,in_port=3,"), "{text}");
    assert!(
        text.contains("\nbridge(\"br0\")\n-------------\n"),
        "{text}"
    );
    let lines = table_lines(&text);
    assert_eq!(
        lines[0], " 0. ip,in_port=3,nw_dst=10.1.2.0/24, priority 100",
        "{text}"
    );
    assert!(
        lines.contains(&"    set_field:198.51.100.2->tun_dst"),
        "{text}"
    );
    assert!(lines.contains(&"    output:1"), "{text}");
    let dp = line(&text, "Datapath actions: ");
    assert!(
        dp.starts_with("Datapath actions: tnl_push(")
            && dp.contains("dst=198.51.100.2")
            && dp.contains("vni=0x1)"),
        "{dp}"
    );

    let flow = format!("in_port=3,tcp,nw_src={},nw_dst={},tp_dst=80", p1.ip, p2.ip);
    let (code, text, err) = appctl(&rundir, &["ofproto/trace", "br0", &flow, "-generate"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        table_lines(&text),
        [
            &format!(" 0. ip,in_port=3,nw_dst={}, priority 100", p2.ip),
            "    resubmit(,10)",
            "10. ip, priority 10, cookie 0x1234",
            "    output:4",
        ],
        "{text}"
    );
    assert_eq!(line(&text, "Datapath actions: "), "Datapath actions: 4");

    let flow = format!("in_port=3,ip,nw_src={},nw_dst=10.1.9.9", p1.ip);
    let (code, text, _) = appctl(&rundir, &["ofproto/trace", "br0", &flow]);
    assert_eq!(code, 0);
    assert_eq!(
        table_lines(&text),
        [" 0. ip,in_port=3, priority 90", "    drop"],
        "{text}"
    );
    assert_eq!(line(&text, "Datapath actions: "), "Datapath actions: drop");

    // Errors as OVS gives them: the text on stderr, exit status 2.
    let (code, _, err) = appctl(&rundir, &["ofproto/trace", "br1", "in_port=3"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("br1: unknown bridge\n") && err.contains("server returned an error"),
        "{err}"
    );
    let (code, _, err) = appctl(&rundir, &["ofproto/trace", "br0", "in_port=3,foo=1"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("Bad openflow flow syntax: in_port=3,foo=1: "),
        "{err}"
    );
    let (code, _, err) = appctl(&rundir, &["fdb/show", "br1"]);
    assert_eq!((code, err.lines().next()), (2, Some("no such bridge")));
    let (code, _, err) = appctl(&rundir, &["no/such"]);
    assert_eq!(code, 2);
    assert!(err.contains("\"no/such\" is not a valid command"), "{err}");

    // exit: the switch stops as on SIGTERM and takes its pidfile and sockets with it.
    let (code, out, err) = appctl(&rundir, &["exit"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let gone = wait_until(Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(gone, "vxswitchd {pid} exited");
    assert!(!socket.exists(), "{} is removed", socket.display());
    assert_ne!(
        pidfile_pid(&rundir),
        Some(pid),
        "the pidfile no longer names the stopped switch"
    );
}

#[test]
fn peers_that_are_not_root_are_refused_and_garbage_closes_only_its_connection() {
    let dir = TempDir::new("peer");
    let explicit = dir.0.join("explicit.ctl");
    let lab = lab(LabSpec {
        name: unique_name("apr"),
        nodes: 1,
        pods: 0,
        ipv6: false,
        workers: Some(1),
        switch_args: vec!["--unixctl".into(), explicit.display().to_string()],
        ..LabSpec::default()
    });
    // vxlab gives every vxswitch node its own OVS run directory.
    let rundir = lab.ovs_rundir("n1").expect("n1's OVS run directory");
    let t = explicit.display().to_string();

    // The socket is root's alone (0600): the kernel refuses nobody.
    let (code, out, err) = appctl_as(&rundir, Some("nobody"), &["-t", &t, "version"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("cannot connect"), "{err}");

    // Opened to everyone by mistake, the switch itself refuses and says why.
    std::fs::set_permissions(&explicit, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, out, err) = appctl_as(&rundir, Some("nobody"), &["-t", &t, "version"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("is not root, and only root may use this socket"),
        "{err}"
    );

    // Garbage: the connection is closed, nothing else changes.
    let mut s = UnixStream::connect(&explicit).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"garbage{{\x00\xff").unwrap();
    let mut buf = Vec::new();
    let n = s.read_to_end(&mut buf).expect("closed, not timed out");
    assert_eq!(
        n,
        0,
        "no reply to garbage: {:?}",
        String::from_utf8_lossy(&buf)
    );

    // A request that never ends is cut off after the limit, and only it.
    let mut slow = UnixStream::connect(&explicit).unwrap();
    slow.write_all(br#"{"method":"version","params":["#)
        .unwrap();
    slow.set_read_timeout(Some(REQUEST_TIMEOUT + Duration::from_secs(5)))
        .unwrap();
    let t0 = Instant::now();
    let (code, _, err) = appctl(&rundir, &["version"]);
    assert_eq!(code, 0, "others are served meanwhile: {err}");
    let n = slow.read(&mut [0u8; 64]).expect("closed, not timed out");
    assert_eq!(n, 0);
    assert!(t0.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(5));

    // A JSON-RPC request written by hand gets OVS's reply shape.
    let mut s = UnixStream::connect(&explicit).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(br#"{"id":7,"method":"ofproto/list","params":[]}"#)
        .unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        br#"{"id":7,"result":"br0\n","error":null}"#.as_slice()
    );
    drop(lab);
}
