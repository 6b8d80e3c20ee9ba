//! Checksums with offloads on, end to end: pods keep TX checksum offload and TSO (the
//! default), so the switch gets partial checksums from them and hands merged super-frames back.
//! Rewritten and replicated UDP arrives with a valid checksum, and a segment corrupted on the
//! underlay of a kernel peer that sends a zero outer UDP checksum is never delivered as data.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use vxswitch_e2e::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A counter of `/proc/net/snmp` in a namespace (`group`: "Udp", "Tcp"; `name`: the column).
fn snmp(netns: &str, group: &str, name: &str) -> u64 {
    let (ok, out) = run_bounded(
        Command::new("ip").args(["netns", "exec", netns, "cat", "/proc/net/snmp"]),
        Duration::from_secs(5),
    );
    assert!(ok, "read /proc/net/snmp in {netns}: {out}");
    let prefix = format!("{group}:");
    let mut rows = out.lines().filter(|l| l.starts_with(&prefix));
    let (Some(names), Some(values)) = (rows.next(), rows.next()) else {
        panic!("no {group} rows in /proc/net/snmp of {netns}:\n{out}");
    };
    let col = names
        .split_whitespace()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no {group} {name} in {names}"));
    values
        .split_whitespace()
        .nth(col)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{group} {name} in {values}"))
}

fn add_flows(lab: &Lab, node: &str, flows: &str) {
    let file = std::env::temp_dir().join(format!("{}-{node}-flows.txt", lab.name));
    std::fs::write(&file, flows).unwrap();
    let (ok, out) = vxctl(lab, node, &["add-flows", "br0", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(ok, "add-flows on {node}: {out}");
}

/// A UDP socket bound in a pod's namespace, with a receive timeout.
fn udp_socket(netns: &str, addr: SocketAddr) -> UdpSocket {
    let s = in_netns(netns, move || UdpSocket::bind(addr))
        .unwrap_or_else(|e| panic!("bind {addr} in {netns}: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

/// Datagram `i`: its number, then a pattern; sizes vary so that checksums do.
fn datagram(i: u32, size: usize) -> Vec<u8> {
    let mut d = vec![0u8; size.max(8)];
    d[..4].copy_from_slice(&i.to_be_bytes());
    Pattern::new(u64::from(i) + 1).fill(&mut d[4..]);
    d
}

/// Sends `datagrams` from `tx` to `to` until `rx` has received each of them intact (a lost
/// first datagram, while ARP resolves, is sent again), within 10 s.
fn send_until_received(tx: &UdpSocket, to: SocketAddr, rxs: &[(&str, &UdpSocket)], n: u32) {
    let sizes = [18usize, 100, 555, 1000, 1400];
    for i in 0..n {
        let d = datagram(i, sizes[i as usize % sizes.len()]);
        let mut pending: Vec<&(&str, &UdpSocket)> = rxs.iter().collect();
        let ok = wait_until(Duration::from_secs(10), || {
            tx.send_to(&d, to).expect("send");
            let mut buf = [0u8; 2048];
            pending.retain(|(name, rx)| {
                // Drop earlier copies of resent datagrams; stop at this one.
                while let Ok(n) = rx.recv(&mut buf) {
                    if n >= 4 && buf[..4] == i.to_be_bytes() {
                        assert_eq!(&buf[..n], &d[..], "datagram {i} at {name} is intact");
                        return false;
                    }
                }
                true
            });
            pending.is_empty()
        });
        let missing: Vec<&str> = pending.iter().map(|(n, _)| *n).collect();
        assert!(ok, "datagram {i} never reached {missing:?}");
    }
}

#[test]
fn udp_rewritten_by_flows_reaches_a_pod_on_another_node_with_a_valid_checksum() {
    let lab = lab(LabSpec {
        name: unique_name("csrw"),
        nodes: 2,
        pods: 2,
        ipv6: false,
        ..LabSpec::default()
    });
    assert!(
        lab.spec().tso && lab.spec().offload,
        "pods with TX offloads"
    );
    // A port rewrite (mod_tp_dst) and an address + port rewrite (mod_nw_dst, mod_tp_dst).
    add_flows(
        &lab,
        "n1",
        "\
table=0,priority=500,in_port=n1p1,udp,nw_dst=10.1.2.2,tp_dst=6000,actions=mod_tp_dst:6001,normal
table=0,priority=500,in_port=n1p1,udp,nw_dst=10.1.2.99,tp_dst=6100,actions=mod_nw_dst:10.1.2.3,set_field:6101->udp_dst,normal
",
    );
    let p1 = lab.pod("n1p1").unwrap().netns.clone();
    let q1 = lab.pod("n2p1").unwrap().netns.clone();
    let q2 = lab.pod("n2p2").unwrap().netns.clone();
    let tx = udp_socket(&p1, SocketAddr::from((ip("10.1.1.2"), 0)));
    let rx1 = udp_socket(&q1, SocketAddr::from((ip("10.1.2.2"), 6001)));
    let rx2 = udp_socket(&q2, SocketAddr::from((ip("10.1.2.3"), 6101)));
    let errors_before = snmp(&q1, "Udp", "InCsumErrors") + snmp(&q2, "Udp", "InCsumErrors");
    send_until_received(
        &tx,
        SocketAddr::from((ip("10.1.2.2"), 6000)),
        &[("n2p1", &rx1)],
        10,
    );
    send_until_received(
        &tx,
        SocketAddr::from((ip("10.1.2.99"), 6100)),
        &[("n2p2", &rx2)],
        10,
    );
    let errors = snmp(&q1, "Udp", "InCsumErrors") + snmp(&q2, "Udp", "InCsumErrors");
    assert_eq!(errors, errors_before, "no datagram failed its checksum");
    let stats = lab.ctl("n1").unwrap().stats().unwrap();
    assert!(
        counter(&stats, "inner_checksum_completed") >= 20,
        "the pod handed over partial checksums, which the switch completed"
    );
    assert!(n_packets(&lab, "n1", &["tp_dst=6000"]) >= 10);
    assert!(n_packets(&lab, "n1", &["tp_dst=6100"]) >= 10);
}

#[test]
fn a_flooded_udp_datagram_arrives_with_a_valid_checksum_on_every_node() {
    let lab = lab(LabSpec {
        name: unique_name("csfl"),
        nodes: 3,
        pods: 2,
        ipv6: false,
        ..LabSpec::default()
    });
    // n1 floods to its pods and, by head-end replication, to n2 and n3; they flood to theirs.
    add_flows(
        &lab,
        "n1",
        "table=0,priority=500,in_port=n1p1,udp,tp_dst=6200,actions=flood\n",
    );
    for n in ["n2", "n3"] {
        add_flows(
            &lab,
            n,
            "table=0,priority=500,udp,tp_dst=6200,actions=flood\n",
        );
    }
    let tx_ns = lab.pod("n1p1").unwrap().netns.clone();
    let tx = udp_socket(&tx_ns, SocketAddr::from((ip("10.1.1.2"), 0)));
    tx.set_broadcast(true).unwrap();
    let receivers = ["n1p2", "n2p1", "n2p2", "n3p1", "n3p2"];
    let sockets: Vec<(&str, UdpSocket, String)> = receivers
        .iter()
        .map(|&p| {
            let ns = lab.pod(p).unwrap().netns.clone();
            (
                p,
                udp_socket(&ns, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 6200))),
                ns,
            )
        })
        .collect();
    let before: Vec<u64> = sockets
        .iter()
        .map(|(_, _, ns)| snmp(ns, "Udp", "InCsumErrors"))
        .collect();
    let rxs: Vec<(&str, &UdpSocket)> = sockets.iter().map(|(p, s, _)| (*p, s)).collect();
    send_until_received(&tx, SocketAddr::from((Ipv4Addr::BROADCAST, 6200)), &rxs, 10);
    for ((p, _, ns), b) in sockets.iter().zip(before) {
        assert_eq!(
            snmp(ns, "Udp", "InCsumErrors"),
            b,
            "{p}: no flooded datagram failed its checksum"
        );
    }
    let stats = lab.ctl("n1").unwrap().stats().unwrap();
    assert!(counter(&stats, "inner_checksum_completed") >= 10);
}

/// An nftables rule on the vxswitch node's underlay ingress that overwrites byte 1000 of the
/// VXLAN payload (the inner TCP payload) of one in `every` full-sized datagrams from `vtep`,
/// without fixing any checksum up: what a flaky link does to a datagram whose outer UDP
/// checksum is zero (nobody on the way can tell).
fn corrupt_underlay(netns: &str, table: &str, vtep: Ipv4Addr, every: u32) {
    let rules = format!(
        "table netdev {table} {{\n\
         \x20 chain ingress {{\n\
         \x20   type filter hook ingress device \"eth0\" priority 0;\n\
         \x20   ip saddr {vtep} udp length > 1200 numgen random mod {every} == 0 @ih,8000,8 set 0x55 counter\n\
         \x20 }}\n\
         }}\n"
    );
    let file = std::env::temp_dir().join(format!("{table}.nft"));
    std::fs::write(&file, rules).unwrap();
    let (ok, out) = run_bounded(
        Command::new("ip")
            .args(["netns", "exec", netns, "nft", "-f"])
            .arg(&file),
        Duration::from_secs(10),
    );
    let _ = std::fs::remove_file(&file);
    assert!(ok, "nft in {netns}: {out}");
}

fn corrupted_count(netns: &str, table: &str) -> u64 {
    let (ok, out) = run_bounded(
        Command::new("ip").args([
            "netns", "exec", netns, "nft", "list", "table", "netdev", table,
        ]),
        Duration::from_secs(10),
    );
    assert!(ok, "{out}");
    out.split("packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no counter in:\n{out}"))
}

/// What a receiver got: bytes, and 8-byte words that differ from the sender's pattern.
struct Received {
    bytes: usize,
    bad_words: usize,
    first_bad: Option<usize>,
}

/// Sends `bytes` of a pattern over TCP from namespace `from` to `to_ip:port` (listening in
/// `to`); the receiver reads to the end and compares every word, so a corrupted stream is
/// reported as such (how much, where) rather than as a reset connection.
fn transfer_and_compare(
    from: &str,
    to: &str,
    to_ip: Ipv4Addr,
    port: u16,
    bytes: usize,
) -> Received {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let addr = SocketAddr::from((to_ip, port));
    let listener = in_netns(to, move || TcpListener::bind(addr)).expect("listen");
    let seed = 0xc0ff_ee00 + u64::from(port);
    let receiver = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut expect = Pattern::new(seed);
        let (mut got, mut want) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
        let mut r = Received {
            bytes: 0,
            bad_words: 0,
            first_bad: None,
        };
        loop {
            // Whole words only, so the pattern stays aligned.
            let mut n = 0;
            while n == 0 || n % 8 != 0 {
                match s.read(&mut got[n..]).expect("read") {
                    0 => break,
                    m => n += m,
                }
            }
            if n == 0 {
                return r;
            }
            expect.fill(&mut want[..n]);
            for (i, (a, b)) in got[..n].chunks(8).zip(want[..n].chunks(8)).enumerate() {
                if a != b {
                    r.bad_words += 1;
                    r.first_bad.get_or_insert(r.bytes + i * 8);
                }
            }
            r.bytes += n;
        }
    });
    let mut stream = in_netns(from, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))
    })
    .expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut p = Pattern::new(seed);
    let mut buf = vec![0u8; 65536];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len());
        p.fill(&mut buf[..n]);
        stream.write_all(&buf[..n]).expect("write");
        left -= n;
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    receiver.join().expect("receiver")
}

#[test]
fn segments_corrupted_behind_a_zero_outer_checksum_are_never_delivered_as_data() {
    let lab = lab(LabSpec {
        name: unique_name("cscor"),
        nodes: 2,
        pods: 1,
        kinds: vec![Kind::Vxswitch, Kind::Kernel],
        ipv6: false,
        ..LabSpec::default()
    });
    // n2 is the Linux vxlan driver, which sends a zero outer UDP checksum over IPv4 by
    // default: the underlay kernel of n1 checks nothing before vxswitch gets the datagram.
    let n1 = lab.node("n1").unwrap().netns.clone();
    let n2_vtep = lab.node("n2").unwrap().vtep;
    let table = format!("{}corrupt", lab.name);
    corrupt_underlay(&n1, &table, n2_vtep, 300);
    let from = lab.pod("n2p1").unwrap().netns.clone();
    let to = lab.pod("n1p1").unwrap().netns.clone();
    let tcp_errors = snmp(&to, "Tcp", "InCsumErrors");
    let started = std::time::Instant::now();
    let r = transfer_and_compare(&from, &to, ip("10.1.1.2"), 5401, 100 << 20);
    eprintln!("100 MB in {:?}", started.elapsed());
    assert_eq!(
        (r.bad_words, r.first_bad),
        (0, None),
        "{} of {} bytes arrived, {} words of them corrupted",
        r.bytes,
        100 << 20,
        r.bad_words
    );
    assert_eq!(r.bytes, 100 << 20, "every byte arrived");
    let corrupted = corrupted_count(&n1, &table);
    let stats = lab.ctl("n1").unwrap().stats().unwrap();
    let bad = counter(&stats, "gro_csum_bad");
    let dropped_by_pod = snmp(&to, "Tcp", "InCsumErrors") - tcp_errors;
    eprintln!(
        "corrupted on the underlay: {corrupted}; gro_csum_bad: {bad}; pod TCP InCsumErrors: \
         {dropped_by_pod}; tap_gso_writes: {}",
        counter(&stats, "tap_gso_writes")
    );
    assert!(
        corrupted >= 20,
        "the underlay corrupted datagrams ({corrupted})"
    );
    assert!(
        bad > 0 && dropped_by_pod > 0,
        "corrupted segments were caught by the switch ({bad}) and dropped by the pod \
         ({dropped_by_pod}), not merged"
    );
    assert!(
        counter(&stats, "tap_gso_writes") > 0,
        "the rest was merged into super-frames"
    );
}
