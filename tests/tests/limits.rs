//! No silent limits: long flow programs run in full or are dropped with a reason, file
//! descriptors stay bounded however many flows pass and their exhaustion degrades gracefully,
//! and a port number re-used in one batch never shows the old pod's traffic to the new pod.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use controlplane::proto::{Change, MacAddr, Owner, PortSpec};
use vxswitch_e2e::*;

/// A network namespace this test makes (besides the lab's), removed on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        let (ok, out) = run_bounded(
            Command::new("ip").args(["netns", "add", &name]),
            Duration::from_secs(5),
        );
        assert!(ok, "ip netns add {name}: {out}");
        let ns = Netns(name);
        // No IPv6 chatter in captures.
        let (ok, out) = run_bounded(
            Command::new("ip").args([
                "netns",
                "exec",
                &ns.0,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]),
            Duration::from_secs(5),
        );
        assert!(ok, "{out}");
        ns
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

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Sends one datagram from each of `count` source ports of pod `netns` (`src`) to `dst`,
/// paced so the pod's queue never overflows: `count` distinct flows.
fn distinct_flows(netns: &str, src: Ipv4Addr, dst: SocketAddr, count: u16) {
    in_netns(netns, move || {
        for i in 0..count {
            let s = UdpSocket::bind((src, 20000 + i)).expect("bind in the pod");
            s.send_to(b"flow", dst).expect("send");
            if i % 20 == 19 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
}

fn encapsulated(lab: &Lab) -> u64 {
    counter(&lab.ctl("n1").unwrap().stats().unwrap(), "encapsulated")
}

/// `vxctl show` answers within a few seconds; returns how long it took.
fn show_answers(lab: &Lab) -> Duration {
    let start = Instant::now();
    let (ok, out) = vxctl(lab, "n1", &["show"]);
    let took = start.elapsed();
    assert!(ok && out.contains("br0"), "vxctl show:\n{out}");
    assert!(took < Duration::from_secs(5), "vxctl show took {took:?}");
    took
}

fn add_port(lab: &Lab, name: &str, netns: &str, ip: &str, mac: &str) -> (bool, String) {
    vxctl(
        lab,
        "n1",
        &["add-port", name, "--netns", netns, "--mac", mac, "--ip", ip],
    )
}

#[test]
fn three_thousand_flows_leave_descriptors_bounded_and_the_control_plane_working() {
    const WORKERS: usize = 2;
    const SRC_PORTS: usize = 32;
    let lab = lab(LabSpec {
        name: unique_name("fds"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        workers: Some(WORKERS),
        switch_args: vec!["--src-ports".into(), SRC_PORTS.to_string()],
        ..LabSpec::default()
    });
    let pid = lab.switch_pid("n1").expect("n1's vxswitchd");
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 2, &[]);
    assert!(ok, "{out}");
    let fds_before = open_fds(pid);
    let enc_before = encapsulated(&lab);
    let pod = lab.pod("n1p1").unwrap().netns.clone();
    distinct_flows(
        &pod,
        Ipv4Addr::new(10, 1, 1, 2),
        "10.1.2.2:9".parse().unwrap(),
        3000,
    );
    let sent = wait_until(Duration::from_secs(10), || {
        encapsulated(&lab) >= enc_before + 3000
    });
    assert!(sent, "{} encapsulated", encapsulated(&lab) - enc_before);
    let fds_after = open_fds(pid);
    assert!(
        fds_after <= fds_before + WORKERS * SRC_PORTS,
        "descriptors went from {fds_before} to {fds_after}: more than {WORKERS} workers × \
         {SRC_PORTS} source ports"
    );
    show_answers(&lab);
    let ns = Netns::new(format!("{}-x", lab.name));
    let (ok, out) = add_port(&lab, "extra", &ns.0, "10.1.1.50", "0a:58:0a:01:01:32");
    assert!(ok, "add-port after 3,000 flows:\n{out}");
}

#[test]
fn out_of_descriptors_the_flows_fall_back_and_the_control_socket_still_answers() {
    let lab = lab(LabSpec {
        name: unique_name("nofd"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        workers: Some(2),
        ..LabSpec::default()
    });
    let pid = lab.switch_pid("n1").expect("n1's vxswitchd");
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 2, &[]);
    assert!(ok, "{out}");
    // A limit just above what the daemon holds now: 2 workers × 256 source ports do not fit.
    let limit = open_fds(pid) + 48;
    let (ok, out) = run_bounded(
        Command::new("prlimit").args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ]),
        Duration::from_secs(5),
    );
    assert!(ok, "prlimit: {out}");
    let before = lab.ctl("n1").unwrap().stats().unwrap();
    let pod = lab.pod("n1p1").unwrap().netns.clone();
    distinct_flows(
        &pod,
        Ipv4Addr::new(10, 1, 1, 2),
        "10.1.2.2:9".parse().unwrap(),
        3000,
    );
    let base = counter(&before, "encapsulated");
    let sent = wait_until(Duration::from_secs(10), || {
        encapsulated(&lab) >= base + 3000
    });
    assert!(sent, "the flows still leave, from the VXLAN port");
    let after = lab.ctl("n1").unwrap().stats().unwrap();
    assert!(
        counter(&after, "src_port_open_failed") > counter(&before, "src_port_open_failed"),
        "sockets that could not open are counted"
    );
    assert!(open_fds(pid) <= limit);
    for _ in 0..5 {
        show_answers(&lab);
    }
    let ns = Netns::new(format!("{}-x", lab.name));
    let (ok, out) = add_port(&lab, "extra", &ns.0, "10.1.1.50", "0a:58:0a:01:01:32");
    assert!(ok, "add-port with source ports exhausted:\n{out}");
    show_answers(&lab);
}

#[test]
fn a_flow_with_twenty_outputs_takes_effect_twenty_times_and_a_loop_is_dropped_with_a_reason() {
    let lab = lab(LabSpec {
        name: unique_name("f20"),
        nodes: 2,
        pods: 2,
        ipv6: false,
        ..LabSpec::default()
    });
    let outputs = vec!["output:n1p2"; 20].join(",");
    let flow = format!("table=0,priority=1000,in_port=n1p1,udp,tp_dst=7777,actions={outputs}");
    let (ok, out) = vxctl(&lab, "n1", &["add-flow", "br0", &flow]);
    assert!(ok, "{out}");
    let looped = "table=0,priority=1000,in_port=n1p1,udp,tp_dst=7778,actions=resubmit(,0)";
    let (ok, out) = vxctl(&lab, "n1", &["add-flow", "br0", looped]);
    assert!(ok, "{out}");

    let p2 = lab.pod("n1p2").unwrap().netns.clone();
    let rx = in_netns(&p2, || UdpSocket::bind("10.1.1.3:7777")).expect("bind in n1p2");
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let p1 = lab.pod("n1p1").unwrap().netns.clone();
    let tx = in_netns(&p1, || UdpSocket::bind("10.1.1.2:0")).expect("bind in n1p1");
    // ARP first (answered by normal forwarding), then five datagrams.
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 1, 3), 1, &[]);
    assert!(ok, "{out}");
    for i in 0..5u8 {
        tx.send_to(&[i; 8], "10.1.1.3:7777").unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut got = 0;
    let mut buf = [0u8; 64];
    while rx.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    assert_eq!(got, 5 * 20, "every output of every packet");
    assert_eq!(n_packets(&lab, "n1", &["tp_dst=7777"]), 5);

    let before = lab.ctl("n1").unwrap().stats().unwrap();
    for _ in 0..3 {
        tx.send_to(b"loop", "10.1.1.3:7778").unwrap();
    }
    let counted = wait_until(Duration::from_secs(5), || {
        let now = lab.ctl("n1").unwrap().stats().unwrap();
        counter(&now, "resubmit_depth") >= counter(&before, "resubmit_depth") + 3
    });
    assert!(counted, "the loop's packets are dropped as resubmit_depth");
    let (ok, out) = vxctl(
        &lab,
        "n1",
        &[
            "trace",
            "br0",
            "in_port=n1p1,udp,nw_dst=10.1.1.3,tp_dst=7778",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("limit reached") && out.contains("drop: resubmit_depth"),
        "the trace shows the limit and the drop:\n{out}"
    );
}

#[test]
fn a_port_number_reused_in_one_batch_never_carries_the_old_pods_traffic_to_the_new_pod() {
    let lab = lab(LabSpec {
        name: unique_name("reuse"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        workers: Some(2),
        ..LabSpec::default()
    });
    let a_ns = Netns::new(format!("{}-a", lab.name));
    let b_ns = Netns::new(format!("{}-b", lab.name));
    let mac = |s: &str| -> MacAddr { s.parse().unwrap() };
    let pod_a = PortSpec {
        name: "a".into(),
        netns: a_ns.0.clone(),
        mac: mac("0a:58:0a:01:01:32"),
        ip: Ipv4Addr::new(10, 1, 1, 50),
        vnid: None,
        ifname: None,
        mtu: None,
        ip6: None,
    };
    // Another tenant's pod, which will get A's port number.
    let pod_b = PortSpec {
        name: "b".into(),
        netns: b_ns.0.clone(),
        mac: mac("0a:58:0a:01:01:3c"),
        ip: Ipv4Addr::new(10, 1, 1, 60),
        vnid: Some(20),
        ifname: None,
        mtu: None,
        ip6: None,
    };
    // Flows in a table no packet visits: every publish compiles them, which widens the time
    // between a batch's start and its tables going live.
    let flows: String = (1..=10_000)
        .map(|n| format!("table=200,priority=10,udp,tp_dst={n},actions=drop\n"))
        .collect();
    let file = std::env::temp_dir().join(format!("{}-flows.txt", lab.name));
    std::fs::write(&file, flows).unwrap();
    let (ok, out) = vxctl(&lab, "n1", &["add-flows", "br0", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(ok, "{out}");
    let mut ctl = lab.ctl("n1").unwrap();
    ctl.apply(Owner::Admin, None, vec![Change::AddPort(pod_a.clone())])
        .expect("add A");
    let no_of = |ctl: &mut controlplane::client::Client, name: &str| {
        ctl.state()
            .unwrap()
            .ports
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.no)
    };
    let a_no = no_of(&mut ctl, "a").expect("A's port");

    // B's namespace sees every frame of whatever interface appears there.
    let dir = std::env::temp_dir().join(format!("{}-cap", lab.name));
    let cap_b = Capture::start(&b_ns.0, "any", "udp and dst host 10.1.1.50", &dir);
    let cap_a = Capture::start(&a_ns.0, "any", "udp and dst host 10.1.1.50", &dir);

    // A stream from the remote pod to A while the batches run.
    let stop = Arc::new(AtomicBool::new(false));
    let remote = lab.pod("n2p1").unwrap().netns.clone();
    let (ok, out) = ping(&lab, "n2p1", Ipv4Addr::new(10, 1, 1, 50), 1, &[]);
    assert!(ok, "A is reachable before the batches:\n{out}");
    let streamer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let s = in_netns(&remote, || UdpSocket::bind("10.1.2.2:0")).expect("bind");
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if s.send_to(b"for A only", "10.1.1.50:9").is_ok() {
                    n += 1;
                }
                if n % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for round in 0..10 {
        ctl.apply(
            Owner::Admin,
            None,
            vec![
                Change::DelPort { name: "a".into() },
                Change::AddPort(pod_b.clone()),
            ],
        )
        .expect("A out, B in");
        assert_eq!(
            no_of(&mut ctl, "b"),
            Some(a_no),
            "round {round}: B got A's number"
        );
        std::thread::sleep(Duration::from_millis(100));
        ctl.apply(
            Owner::Admin,
            None,
            vec![
                Change::DelPort { name: "b".into() },
                Change::AddPort(pod_a.clone()),
            ],
        )
        .expect("B out, A in");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = streamer.join().expect("streamer");
    let to_b = cap_b.finish();
    let to_a = cap_a.finish();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        to_a.len() > 100,
        "the stream reached A ({} of {sent} frames)",
        to_a.len()
    );
    assert_eq!(to_b.len(), 0, "A's traffic on B's interface ({sent} sent)");
}
