//! Watching the switch: capture to pcap (pod port and tunnel), flow monitor with timeouts,
//! the Prometheus endpoint.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use vxswitch_e2e::*;

fn lab2(prefix: &str, switch_args: Vec<String>) -> LabGuard {
    lab(LabSpec {
        name: unique_name(prefix),
        nodes: 2,
        pods: 2,
        ipv6: false,
        switch_args,
        ..LabSpec::default()
    })
}

#[test]
fn capture_writes_pcaps_that_tcpdump_reads_for_a_pod_port_and_the_tunnel() {
    let lab = lab2("cap", vec![]);
    let dir = std::env::temp_dir().join(format!("vx-{}", lab.name));
    std::fs::create_dir_all(&dir).unwrap();
    let pod_file = dir.join("pod.pcap");
    let tun_file = dir.join("tunnel.pcap");
    let pod = Streamer::start(
        &lab,
        "n1",
        &[
            "capture",
            "n1p1",
            "-c",
            "4",
            "--filter",
            "icmp",
            "-w",
            pod_file.to_str().unwrap(),
        ],
    );
    assert!(
        pod.wait_for("capturing port", Duration::from_secs(10)),
        "{}",
        pod.text()
    );
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 1, 3), 2, &[]);
    assert!(ok, "{out}");
    let (ok, text) = pod.finish(Duration::from_secs(10));
    assert!(ok, "capture ends by itself after 4 frames:\n{text}");
    let (ok, dump) = run_bounded(
        std::process::Command::new("tcpdump").args(["-nr", pod_file.to_str().unwrap()]),
        Duration::from_secs(10),
    );
    assert!(ok, "{dump}");
    assert_eq!(dump.matches("ICMP echo request").count(), 2, "{dump}");
    assert_eq!(dump.matches("ICMP echo reply").count(), 2, "{dump}");

    let tun = Streamer::start(
        &lab,
        "n1",
        &[
            "capture",
            "vxlan0",
            "-c",
            "2",
            "--filter",
            "icmp",
            "-w",
            tun_file.to_str().unwrap(),
        ],
    );
    assert!(
        tun.wait_for("capturing port", Duration::from_secs(10)),
        "{}",
        tun.text()
    );
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 1, &[]);
    assert!(ok, "{out}");
    let (ok, text) = tun.finish(Duration::from_secs(10));
    assert!(ok, "{text}");
    let (ok, dump) = run_bounded(
        std::process::Command::new("tcpdump").args(["-nr", tun_file.to_str().unwrap()]),
        Duration::from_secs(10),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{dump}");
    assert!(
        dump.contains("VXLAN") && dump.contains("vni 1"),
        "tcpdump decodes the tunnel:\n{dump}"
    );
    assert!(
        dump.contains("10.1.1.2 > 10.1.2.2: ICMP echo request"),
        "{dump}"
    );
    assert!(
        dump.contains("10.1.2.2 > 10.1.1.2: ICMP echo reply"),
        "{dump}"
    );
}

#[test]
fn monitor_sees_flows_added_and_removed_by_their_hard_timeout() {
    let lab = lab2("mon", vec![]);
    let mon = Streamer::start(&lab, "n1", &["monitor", "br0"]);
    // The monitor is live once it reports a change: add a marker flow until it shows.
    let (ok, out) = vxctl(
        &lab,
        "n1",
        &["add-flow", "br0", "table=3,priority=5,actions=drop"],
    );
    assert!(ok, "{out}");
    assert!(
        mon.wait_for("priority=5", Duration::from_secs(5)) || {
            // The add may have raced the monitor's subscription: change it again.
            let _ = vxctl(
                &lab,
                "n1",
                &["mod-flows", "br0", "table=3,priority=5,actions=normal"],
            );
            mon.wait_for("priority=5", Duration::from_secs(5))
        },
        "monitor output:\n{}",
        mon.text()
    );
    let (ok, out) = vxctl(
        &lab,
        "n1",
        &[
            "add-flow",
            "br0",
            "table=0,priority=900,hard_timeout=1,icmp,nw_dst=10.1.2.2,actions=drop",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        mon.wait_for("removed (hard_timeout)", Duration::from_secs(6)),
        "the flow expires and the monitor says so:\n{}",
        mon.text()
    );
    let (_, flows) = vxctl(&lab, "n1", &["dump-flows", "br0"]);
    assert!(
        !flows.contains("priority=900"),
        "gone from the table:\n{flows}"
    );
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 2, &[]);
    assert!(ok, "{out}");
}

#[test]
fn metrics_endpoint_serves_counters_summed_over_workers() {
    let lab = lab2("met", vec!["--metrics".into(), "127.0.0.1:9110".into()]);
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 3, &[]);
    assert!(ok, "{out}");
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 1, &["-t", "1"]);
    assert!(!ok, "{out}");
    let ns = lab.node("n1").unwrap().netns.clone();
    let body = in_netns(&ns, || -> std::io::Result<String> {
        let mut s = TcpStream::connect("127.0.0.1:9110")?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
    .expect("scrape");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    let value = |line_start: &str| -> u64 {
        body.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{body}"))
    };
    assert!(value("vxswitch_port_rx_packets_total{port=\"3\",name=\"n1p1\"}") >= 4);
    assert!(value("vxswitch_port_tx_packets_total{port=\"1\",name=\"vxlan0\"}") >= 3);
    assert_eq!(value("vxswitch_drops_total{reason=\"ttl_exceeded\"}"), 1);
    assert!(value("vxswitch_table_lookups_total{table=\"0\"}") >= 4);
    assert!(body.contains("vxswitch_flow_cache_hits_total"));
    assert!(body.contains("vxswitch_worker_busy_ratio{worker=\"0\"}"));
}
