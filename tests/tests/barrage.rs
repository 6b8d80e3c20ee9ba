//! Hostile traffic: a barrage of crafted frames from a pod and datagrams on the underlay while
//! TCP transfers run between two other pods; MAC and ARP floods from a pod; broadcast floods
//! rate-limited per port. The switch stays up, the transfers arrive intact, and every bad
//! packet is accounted for by the drop counters: sent = delivered + dropped by reason, exactly.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use controlplane::proto::StatsRepr;
use vxswitch_e2e::*;

const GW1: [u8; 6] = [0x0a, 0x58, 10, 1, 1, 1];
const VTEP1: [u8; 6] = [0x02, 0xf1, 0, 0, 0, 1];
const VTEP2: [u8; 6] = [0x02, 0xf1, 0, 0, 0, 2];
/// n1p2, the pod that attacks.
const ATTACKER_MAC: [u8; 6] = [0x0a, 0x58, 10, 1, 1, 3];
const ATTACKER_IP: [u8; 4] = [10, 1, 1, 3];
/// n2p2, the pod the barrage is aimed at (it sends nothing itself).
const TARGET_IP: [u8; 4] = [10, 1, 2, 3];

/// A raw AF_PACKET socket bound to a pod's `eth0`: frames go out exactly as given.
struct RawPort(OwnedFd);

impl RawPort {
    fn open(netns: &str) -> RawPort {
        in_netns(netns, || {
            // SAFETY: plain socket(2) call; the result is checked before use.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: `fd` is a socket this thread just opened and nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: a NUL-terminated name.
            let ifindex = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
            assert!(ifindex > 0, "no eth0 in the pod");
            // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: `sll` is a valid sockaddr_ll and the length says so.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            RawPort(fd)
        })
    }

    /// Sends one frame; false when the kernel refuses it (e.g. shorter than an Ethernet
    /// header, longer than the device's MTU).
    fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: the pointer and length describe `frame`, which outlives the call.
        let n = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        n == frame.len() as isize
    }
}

/// Sends frames with a pause every few, so neither the TAP's queue nor a socket buffer
/// overflows before the switch reads: what was sent is what the switch received.
fn paced<T>(items: &[T], mut send: impl FnMut(&T) -> bool) -> u64 {
    let mut sent = 0;
    for (i, f) in items.iter().enumerate() {
        if send(f) {
            sent += 1;
        }
        if i % 16 == 15 {
            std::thread::sleep(Duration::from_micros(400));
        }
    }
    sent
}

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet: header with `options` (padded to 4 bytes), a valid checksum, then
/// `payload`.
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let hl = 20 + options.len().div_ceil(4) * 4;
    let mut p = vec![0u8; hl];
    p[0] = 0x40 | (hl / 4) as u8;
    p[2..4].copy_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = ttl;
    p[9] = proto;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20..20 + options.len()].copy_from_slice(options);
    let s = csum(&p);
    p[10..12].copy_from_slice(&s.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn refill_csum(ip: &mut [u8]) {
    let hl = usize::from(ip[0] & 0x0f) * 4;
    ip[10] = 0;
    ip[11] = 0;
    let s = csum(&ip[..hl.min(ip.len())]);
    ip[10..12].copy_from_slice(&s.to_be_bytes());
}

fn udp(len: usize) -> Vec<u8> {
    let mut u = vec![0u8; 8 + len];
    u[0..2].copy_from_slice(&40000u16.to_be_bytes());
    u[2..4].copy_from_slice(&9u16.to_be_bytes()); // discard
    u[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    u
}

fn arp(op: u16, hlen: u8, plen: u8, sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, hlen, plen];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&tpa);
    a
}

fn vxlan(flags: u8, vni: u32, reserved: u8, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let mut p = vec![flags, reserved, 0, 0, v[1], v[2], v[3], 0];
    p.extend_from_slice(inner);
    p
}

/// Prefixes of `frame` cut at every length in `range`.
fn cuts(frame: &[u8], range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range.map(|n| frame[..n].to_vec()).collect()
}

/// Repeats `frames` until there are at least `n`.
fn repeat(frames: Vec<Vec<u8>>, n: usize) -> Vec<Vec<u8>> {
    assert!(!frames.is_empty());
    frames
        .iter()
        .cycle()
        .take(n.max(frames.len()))
        .cloned()
        .collect()
}

/// A counter of a stats reply: a drop reason or event by name, or `tx:PORT`, `rx:PORT`,
/// `txerr:PORT` of the port named PORT.
fn value(s: &StatsRepr, key: &str) -> u64 {
    if let Some((what, port)) = key.split_once(':') {
        let p = s
            .ports
            .iter()
            .find(|p| p.name == port)
            .unwrap_or_else(|| panic!("no port {port} in {:?}", s.ports));
        return match what {
            "tx" => p.tx_packets,
            "rx" => p.rx_packets,
            "txerr" => p.tx_errors,
            _ => panic!("{key}"),
        };
    }
    counter(s, key)
}

/// One kind of bad traffic and where every packet of it must end up: counters on n1 (index 0)
/// and n2 (index 1) whose increase, summed, equals the packets the switch received.
struct Class {
    name: &'static str,
    outcomes: &'static [(usize, &'static str)],
    /// Frames from the attacking pod, or datagrams on the underlay (with where from).
    traffic: Traffic,
}

enum Traffic {
    Pod(Vec<Vec<u8>>),
    Underlay(UdpSocket, Vec<Vec<u8>>),
}

struct Barrage<'a> {
    lab: &'a Lab,
    port: RawPort,
    vtep2: SocketAddr,
}

impl Barrage<'_> {
    fn stats(&self) -> [StatsRepr; 2] {
        ["n1", "n2"].map(|n| self.lab.ctl(n).unwrap().stats().unwrap())
    }

    /// Sends a class and checks its accounting; returns the packets sent, or what does not
    /// add up.
    fn run(&self, class: &Class) -> Result<u64, String> {
        let before = self.stats();
        let (sent, received) = match &class.traffic {
            Traffic::Pod(frames) => (paced(frames, |f| self.port.send(f)), (0, "rx:n1p2")),
            Traffic::Underlay(sock, dgrams) => (
                paced(dgrams, |d| {
                    sock.send_to(d, self.vtep2).is_ok_and(|n| n == d.len())
                }),
                (1, "rx:vxlan0"),
            ),
        };
        let delta = |now: &[StatsRepr; 2], (node, key): (usize, &str)| {
            value(&now[node], key) - value(&before[node], key)
        };
        let mut now = self.stats();
        let settled = wait_until(Duration::from_secs(10), || {
            now = self.stats();
            let accounted: u64 = class.outcomes.iter().map(|&o| delta(&now, o)).sum();
            // The pod's port carries nothing else; the tunnel also carries the transfers.
            let in_ok = match class.traffic {
                Traffic::Pod(_) => delta(&now, received) == sent,
                Traffic::Underlay(..) => delta(&now, received) >= sent,
            };
            in_ok && accounted == sent
        });
        // Nothing more arrives later either.
        std::thread::sleep(Duration::from_millis(100));
        now = self.stats();
        let breakdown: Vec<String> = class
            .outcomes
            .iter()
            .map(|&(n, k)| format!("n{}:{k}={}", n + 1, delta(&now, (n, k))))
            .collect();
        let accounted: u64 = class.outcomes.iter().map(|&o| delta(&now, o)).sum();
        eprintln!(
            "{:<24} sent {sent:>5}  accounted {accounted:>5}  {}",
            class.name,
            breakdown.join(" ")
        );
        if !(settled && accounted == sent) {
            return Err(format!(
                "{}: sent {sent}, received {} (n{}), accounted {accounted}: {breakdown:?}\n  \
                 moved on n1: {:?}\n  moved on n2: {:?}",
                class.name,
                delta(&now, received),
                received.0 + 1,
                nonzero(&before[0], &now[0]),
                nonzero(&before[1], &now[1]),
            ));
        }
        Ok(sent)
    }
}

/// The drop reasons and events that moved between two snapshots.
fn nonzero(a: &StatsRepr, b: &StatsRepr) -> Vec<(String, u64)> {
    b.drops
        .iter()
        .chain(b.events.iter())
        .filter_map(|c| {
            let was = counter(a, &c.name);
            (c.value != was).then(|| (c.name.clone(), c.value - was))
        })
        .collect()
}

fn sh(args: &[&str]) {
    let (ok, out) = run_bounded(
        Command::new(args[0]).args(&args[1..]),
        Duration::from_secs(10),
    );
    assert!(ok, "{args:?}: {out}");
}

/// Silences a pod's own stack: it sends no IP, no ARP (raw sockets still send).
fn silence(netns: &str) {
    for rule in [
        "add table inet mute",
        "add chain inet mute out { type filter hook output priority 0; policy drop; }",
        "add table arp mute",
        "add chain arp mute out { type filter hook output priority 0; policy drop; }",
    ] {
        sh(&["ip", "netns", "exec", netns, "nft", rule]);
    }
}

/// No IPv6 chatter from a node's own stack (router solicitations, MLD) in the drop counters.
fn no_ipv6(netns: &str) {
    sh(&[
        "ip",
        "netns",
        "exec",
        netns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ]);
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// TCP transfers between n1p1 and n2p1, one after another until `stop`; returns how many
/// completed (each checks every byte it received against what was sent).
fn transfers(lab: &Lab, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Result<u32, String>> {
    let from = lab.netns_of("n1p1").unwrap();
    let to = lab.netns_of("n2p1").unwrap();
    std::thread::spawn(move || {
        let mut done = 0;
        let mut port = 5201;
        while !stop.load(Ordering::Relaxed) || done == 0 {
            tcp_transfer(
                &from,
                &to,
                Ipv4Addr::new(10, 1, 2, 2),
                port,
                4 << 20,
                64 << 10,
                Duration::from_secs(30),
            )?;
            done += 1;
            port += 1;
        }
        Ok(done)
    })
}

#[test]
fn a_barrage_of_bad_packets_is_counted_by_reason_exactly_and_transfers_stay_intact() {
    let lab = lab(LabSpec {
        name: unique_name("barr"),
        nodes: 2,
        pods: 2,
        ipv6: false,
        ..LabSpec::default()
    });
    let pid1 = lab.switch_pid("n1").expect("n1's vxswitchd");
    let pid2 = lab.switch_pid("n2").expect("n2's vxswitchd");
    let n1 = lab.node("n1").unwrap().netns.clone();
    let attacker = lab.netns_of("n1p2").unwrap();
    let target = lab.netns_of("n2p2").unwrap();
    silence(&attacker);
    silence(&target);
    no_ipv6(&n1);
    no_ipv6(&lab.node("n2").unwrap().netns);
    // Jumbo frames can leave the attacking pod.
    sh(&["ip", "-n", &attacker, "link", "set", "eth0", "mtu", "9000"]);
    // An address on the underlay that is no node's VTEP.
    sh(&[
        "ip",
        "-n",
        &n1,
        "addr",
        "add",
        "198.51.100.77/24",
        "dev",
        "eth0",
    ]);
    let known = in_netns(&n1, || UdpSocket::bind("198.51.100.1:0")).expect("bind in n1");
    let stranger = in_netns(&n1, || UdpSocket::bind("198.51.100.77:0")).expect("bind stranger");
    let b = Barrage {
        lab: &lab,
        port: RawPort::open(&attacker),
        vtep2: SocketAddr::from((Ipv4Addr::new(198, 51, 100, 2), 4789)),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let tcp = transfers(&lab, stop.clone());
    let n = 1000;

    // From the pod: a UDP packet routed to the target pod on n2, and variations of it.
    let good_ip = ipv4(ATTACKER_IP, TARGET_IP, 17, 64, &[], &udp(18));
    let good = eth(GW1, ATTACKER_MAC, 0x0800, &good_ip);
    let with_ip = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut ip = good_ip.clone();
        f(&mut ip);
        eth(GW1, ATTACKER_MAC, 0x0800, &ip)
    };
    let tagged = {
        let mut p = vec![0x00, 0x05, 0x08, 0x00];
        p.extend_from_slice(&good_ip);
        eth(GW1, ATTACKER_MAC, 0x8100, &p)
    };
    let gw_request = eth(
        [0xff; 6],
        ATTACKER_MAC,
        0x0806,
        &arp(1, 6, 4, ATTACKER_MAC, ATTACKER_IP, [10, 1, 1, 1]),
    );
    let ipv6 = {
        let mut p = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        p.extend_from_slice(&[0xfd, 0, 0, 0x10, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3]);
        p.extend_from_slice(&[0xfd, 0, 0, 0x10, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3]);
        p.extend_from_slice(&udp(0));
        eth(GW1, ATTACKER_MAC, 0x86dd, &p)
    };
    let jumbo = eth(
        GW1,
        ATTACKER_MAC,
        0x0800,
        &ipv4(ATTACKER_IP, TARGET_IP, 17, 64, &[], &udp(8000)),
    );
    let jumbo_no_df = {
        let mut ip = ipv4(ATTACKER_IP, TARGET_IP, 17, 64, &[], &udp(8000));
        ip[6] = 0;
        refill_csum(&mut ip);
        eth(GW1, ATTACKER_MAC, 0x0800, &ip)
    };

    // Underlay: datagrams to n2 carrying frames for its target pod, and variations.
    let inner_ip = ipv4(ATTACKER_IP, TARGET_IP, 17, 64, &[], &udp(18));
    let inner = eth(VTEP2, VTEP1, 0x0800, &inner_ip);
    let inner_with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut ip = inner_ip.clone();
        f(&mut ip);
        vxlan(0x08, 1, 0, &eth(VTEP2, VTEP1, 0x0800, &ip))
    };
    let dup = |s: &UdpSocket| s.try_clone().unwrap();

    let classes = vec![
        // ---- from the pod ----
        Class {
            name: "pod: eth truncated",
            outcomes: &[(0, "malformed")],
            traffic: Traffic::Pod(repeat(cuts(&good, 0..14), n)),
        },
        Class {
            name: "pod: vlan tag cut",
            outcomes: &[(0, "malformed")],
            traffic: Traffic::Pod(repeat(cuts(&tagged, 14..18), n)),
        },
        Class {
            name: "pod: vlan tagged",
            outcomes: &[(0, "vlan")],
            traffic: Traffic::Pod(repeat(cuts(&tagged, 18..tagged.len() + 1), n)),
        },
        Class {
            name: "pod: arp truncated",
            outcomes: &[(0, "malformed")],
            traffic: Traffic::Pod(repeat(cuts(&gw_request, 14..42), n)),
        },
        Class {
            name: "pod: arp bad lengths",
            outcomes: &[(0, "malformed")],
            traffic: Traffic::Pod(repeat(
                [(6, 6), (8, 4), (0, 4), (6, 0), (16, 16), (4, 6)]
                    .iter()
                    .map(|&(h, p)| {
                        eth(
                            [0xff; 6],
                            ATTACKER_MAC,
                            0x0806,
                            &arp(1, h, p, ATTACKER_MAC, ATTACKER_IP, [10, 1, 1, 1]),
                        )
                    })
                    .collect(),
                n,
            )),
        },
        Class {
            name: "pod: arp unanswerable",
            outcomes: &[(0, "arp_unanswered")],
            traffic: Traffic::Pod(repeat(
                vec![
                    // For nobody; gratuitous for another pod's address; a reply.
                    eth(
                        [0xff; 6],
                        ATTACKER_MAC,
                        0x0806,
                        &arp(1, 6, 4, ATTACKER_MAC, ATTACKER_IP, [10, 1, 1, 200]),
                    ),
                    eth(
                        [0xff; 6],
                        ATTACKER_MAC,
                        0x0806,
                        &arp(1, 6, 4, ATTACKER_MAC, [10, 1, 1, 2], [10, 1, 1, 2]),
                    ),
                    eth(
                        [0xff; 6],
                        ATTACKER_MAC,
                        0x0806,
                        &arp(2, 6, 4, ATTACKER_MAC, [10, 1, 2, 2], [10, 1, 1, 1]),
                    ),
                ],
                n,
            )),
        },
        Class {
            name: "pod: arp for gateway",
            outcomes: &[(0, "tx:n1p2")],
            traffic: Traffic::Pod(repeat(vec![gw_request.clone()], n / 4)),
        },
        Class {
            name: "pod: ipv4 truncated",
            outcomes: &[(0, "malformed")],
            traffic: Traffic::Pod(repeat(cuts(&good, 14..34), n)),
        },
        Class {
            name: "pod: ipv4 bad lengths",
            outcomes: &[(0, "malformed")],
            traffic: Traffic::Pod(repeat(
                vec![
                    with_ip(&|ip| {
                        ip[2..4].copy_from_slice(&2000u16.to_be_bytes());
                        refill_csum(ip);
                    }),
                    with_ip(&|ip| {
                        ip[2..4].copy_from_slice(&12u16.to_be_bytes());
                        refill_csum(ip);
                    }),
                    with_ip(&|ip| {
                        ip[0] = 0x44; // header length 16
                        refill_csum(ip);
                    }),
                    with_ip(&|ip| {
                        ip[0] = 0x4f; // header length 60, longer than the packet
                        refill_csum(ip);
                    }),
                    with_ip(&|ip| {
                        ip[0] = 0x55; // version 5
                        refill_csum(ip);
                    }),
                ],
                n,
            )),
        },
        Class {
            name: "pod: ipv4 bad checksum",
            outcomes: &[(0, "ipv4_bad_checksum")],
            traffic: Traffic::Pod(repeat(
                (0..16u8)
                    .map(|i| with_ip(&|ip| ip[10] ^= 1 << (i % 8)))
                    .collect(),
                n,
            )),
        },
        Class {
            name: "pod: ttl 0 and 1",
            outcomes: &[(0, "ttl_exceeded")],
            traffic: Traffic::Pod(repeat(
                (0..2u8)
                    .map(|ttl| {
                        with_ip(&|ip| {
                            ip[8] = ttl;
                            refill_csum(ip);
                        })
                    })
                    .collect(),
                n,
            )),
        },
        Class {
            name: "pod: jumbo",
            outcomes: &[(0, "mtu_exceeded")],
            traffic: Traffic::Pod(repeat(vec![jumbo, jumbo_no_df], n / 2)),
        },
        Class {
            name: "pod: ipv6 (no prefix)",
            outcomes: &[(0, "unsupported"), (0, "malformed")],
            traffic: Traffic::Pod(repeat(cuts(&ipv6, 14..ipv6.len() + 1), n)),
        },
        Class {
            name: "pod: unknown unicast",
            outcomes: &[(0, "unknown_unicast")],
            traffic: Traffic::Pod(repeat(
                vec![eth(
                    [0x02, 0, 0, 0, 0, 0x99],
                    ATTACKER_MAC,
                    0x0800,
                    &good_ip,
                )],
                n,
            )),
        },
        Class {
            name: "pod: broadcast ip",
            outcomes: &[(0, "broadcast")],
            traffic: Traffic::Pod(repeat(
                vec![eth([0xff; 6], ATTACKER_MAC, 0x0800, &good_ip)],
                n,
            )),
        },
        // Forwarded: what a router forwards, the switch forwards (the target pod's kernel
        // may drop it; the switch delivered it).
        Class {
            name: "pod: forwarded oddities",
            outcomes: &[(1, "tx:n2p2")],
            traffic: Traffic::Pod(repeat(
                vec![
                    // IPv4 options (NOPs, end of list).
                    eth(
                        GW1,
                        ATTACKER_MAC,
                        0x0800,
                        &ipv4(ATTACKER_IP, TARGET_IP, 17, 64, &[1, 1, 1, 0], &udp(18)),
                    ),
                    eth(
                        GW1,
                        ATTACKER_MAC,
                        0x0800,
                        &ipv4(ATTACKER_IP, TARGET_IP, 17, 64, &[1; 40], &udp(18)),
                    ),
                    // Fragments: first (MF), middle, last.
                    with_ip(&|ip| {
                        ip[6] = 0x20;
                        refill_csum(ip);
                    }),
                    with_ip(&|ip| {
                        ip[6] = 0x20;
                        ip[7] = 0x10;
                        refill_csum(ip);
                    }),
                    with_ip(&|ip| {
                        ip[6] = 0x00;
                        ip[7] = 0x20;
                        refill_csum(ip);
                    }),
                    // UDP and TCP headers cut short inside a whole IP packet.
                    eth(
                        GW1,
                        ATTACKER_MAC,
                        0x0800,
                        &ipv4(ATTACKER_IP, TARGET_IP, 17, 64, &[], &[0x9c, 0x40, 0, 9]),
                    ),
                    eth(
                        GW1,
                        ATTACKER_MAC,
                        0x0800,
                        &ipv4(
                            ATTACKER_IP,
                            TARGET_IP,
                            6,
                            64,
                            &[],
                            &[0x9c, 0x40, 0, 9, 0, 0, 0, 1, 0, 0],
                        ),
                    ),
                    eth(
                        GW1,
                        ATTACKER_MAC,
                        0x0800,
                        &ipv4(ATTACKER_IP, TARGET_IP, 6, 64, &[], &[]),
                    ),
                    // Ethernet padding after a short IP packet (total length < frame).
                    {
                        let mut f = good.clone();
                        f.extend_from_slice(&[0xee; 30]);
                        f
                    },
                ],
                n,
            )),
        },
        // ---- on the underlay, to n2 ----
        Class {
            name: "udp: zero-length/cut",
            outcomes: &[(1, "malformed")],
            traffic: Traffic::Underlay(dup(&known), repeat(cuts(&vxlan(0x08, 1, 0, &[]), 0..8), n)),
        },
        Class {
            name: "udp: no I flag",
            outcomes: &[(1, "vxlan_no_i_flag")],
            traffic: Traffic::Underlay(
                dup(&known),
                repeat(
                    [0x00, 0x80, 0x01, 0xf7]
                        .iter()
                        .map(|&f| vxlan(f, 1, 0, &inner))
                        .collect(),
                    n,
                ),
            ),
        },
        Class {
            name: "udp: unknown vni",
            outcomes: &[(1, "unknown_vni")],
            traffic: Traffic::Underlay(
                dup(&known),
                repeat(
                    [2, 999, 0xff_ffff]
                        .iter()
                        .map(|&v| vxlan(0x08, v, 0, &inner))
                        .collect(),
                    n,
                ),
            ),
        },
        Class {
            name: "udp: unknown vtep",
            outcomes: &[(1, "unknown_source_vtep")],
            traffic: Traffic::Underlay(dup(&stranger), repeat(vec![vxlan(0x08, 1, 0, &inner)], n)),
        },
        Class {
            name: "udp: reserved bits",
            outcomes: &[(1, "tx:n2p2")],
            traffic: Traffic::Underlay(
                dup(&known),
                repeat(
                    vec![vxlan(0x0c, 1, 0, &inner), vxlan(0x08, 1, 0x5a, &inner), {
                        let mut d = vxlan(0xff, 1, 0xff, &inner);
                        d[2] = 0xff;
                        d[3] = 0xff;
                        d[7] = 0xff;
                        d
                    }],
                    n,
                ),
            ),
        },
        Class {
            name: "udp: inner eth cut",
            outcomes: &[(1, "malformed")],
            traffic: Traffic::Underlay(
                dup(&known),
                repeat(
                    cuts(&inner, 0..14)
                        .iter()
                        .map(|f| vxlan(0x08, 1, 0, f))
                        .collect(),
                    n,
                ),
            ),
        },
        Class {
            name: "udp: inner vlan tag cut",
            outcomes: &[(1, "malformed")],
            traffic: Traffic::Underlay(dup(&known), {
                let f = eth(VTEP2, VTEP1, 0x8100, &[0x00, 0x05, 0x08, 0x00]);
                repeat(
                    cuts(&f, 14..18)
                        .iter()
                        .map(|f| vxlan(0x08, 1, 0, f))
                        .collect(),
                    n,
                )
            }),
        },
        Class {
            name: "udp: inner vlan",
            outcomes: &[(1, "vlan")],
            traffic: Traffic::Underlay(dup(&known), {
                let mut p = vec![0x00, 0x05, 0x08, 0x00];
                p.extend_from_slice(&inner_ip);
                let f = eth(VTEP2, VTEP1, 0x8100, &p);
                repeat(
                    cuts(&f, 18..f.len() + 1)
                        .iter()
                        .map(|f| vxlan(0x08, 1, 0, f))
                        .collect(),
                    n,
                )
            }),
        },
        Class {
            name: "udp: inner arp",
            outcomes: &[(1, "arp_unanswered")],
            traffic: Traffic::Underlay(dup(&known), {
                let a = eth(
                    [0xff; 6],
                    VTEP1,
                    0x0806,
                    &arp(1, 6, 4, VTEP1, ATTACKER_IP, TARGET_IP),
                );
                let mut all = cuts(&a, 14..a.len() + 1);
                all.push(eth(
                    [0xff; 6],
                    VTEP1,
                    0x0806,
                    &arp(1, 9, 3, VTEP1, ATTACKER_IP, TARGET_IP),
                ));
                repeat(all.iter().map(|f| vxlan(0x08, 1, 0, f)).collect(), n)
            }),
        },
        Class {
            name: "udp: inner ipv4 cut/len",
            outcomes: &[(1, "malformed")],
            traffic: Traffic::Underlay(dup(&known), {
                let mut all = cuts(&inner, 14..34);
                for bad in [2000u16, 12] {
                    let mut ip = inner_ip.clone();
                    ip[2..4].copy_from_slice(&bad.to_be_bytes());
                    refill_csum(&mut ip);
                    all.push(eth(VTEP2, VTEP1, 0x0800, &ip));
                }
                repeat(all.iter().map(|f| vxlan(0x08, 1, 0, f)).collect(), n)
            }),
        },
        Class {
            name: "udp: inner bad checksum",
            outcomes: &[(1, "ipv4_bad_checksum")],
            traffic: Traffic::Underlay(
                dup(&known),
                repeat(vec![inner_with(&|ip| ip[11] ^= 0x40)], n),
            ),
        },
        Class {
            name: "udp: inner ttl 0 and 1",
            outcomes: &[(1, "ttl_exceeded")],
            traffic: Traffic::Underlay(
                dup(&known),
                repeat(
                    (0..2u8)
                        .map(|ttl| {
                            inner_with(&|ip| {
                                ip[8] = ttl;
                                refill_csum(ip);
                            })
                        })
                        .collect(),
                    n,
                ),
            ),
        },
        Class {
            name: "udp: inner ipv6",
            outcomes: &[(1, "unsupported")],
            traffic: Traffic::Underlay(dup(&known), {
                let mut f = ipv6.clone();
                f[..6].copy_from_slice(&VTEP2);
                f[6..12].copy_from_slice(&VTEP1);
                repeat(vec![vxlan(0x08, 1, 0, &f)], n)
            }),
        },
        Class {
            name: "udp: inner unknown/bcast",
            outcomes: &[(1, "unknown_unicast"), (1, "broadcast")],
            traffic: Traffic::Underlay(
                dup(&known),
                repeat(
                    vec![
                        vxlan(
                            0x08,
                            1,
                            0,
                            &eth([0x02, 0, 0, 0, 0, 0x99], VTEP1, 0x0800, &inner_ip),
                        ),
                        vxlan(0x08, 1, 0, &eth([0xff; 6], VTEP1, 0x0800, &inner_ip)),
                    ],
                    n,
                ),
            ),
        },
        Class {
            name: "udp: inner forwarded",
            outcomes: &[(1, "tx:n2p2")],
            traffic: Traffic::Underlay(
                dup(&known),
                repeat(
                    vec![
                        vxlan(
                            0x08,
                            1,
                            0,
                            &eth(
                                VTEP2,
                                VTEP1,
                                0x0800,
                                &ipv4(ATTACKER_IP, TARGET_IP, 17, 64, &[1; 40], &udp(18)),
                            ),
                        ),
                        inner_with(&|ip| {
                            ip[6] = 0x20;
                            ip[7] = 0x08;
                            refill_csum(ip);
                        }),
                        vxlan(
                            0x08,
                            1,
                            0,
                            &eth(
                                VTEP2,
                                VTEP1,
                                0x0800,
                                &ipv4(ATTACKER_IP, TARGET_IP, 6, 64, &[], &[1, 2, 3]),
                            ),
                        ),
                    ],
                    n,
                ),
            ),
        },
        Class {
            name: "udp: jumbo",
            outcomes: &[(1, "tx:n2p2"), (1, "txerr:n2p2")],
            traffic: Traffic::Underlay(
                dup(&known),
                repeat(
                    vec![vxlan(
                        0x08,
                        1,
                        0,
                        &eth(
                            VTEP2,
                            VTEP1,
                            0x0800,
                            &ipv4(ATTACKER_IP, TARGET_IP, 17, 64, &[], &udp(8900)),
                        ),
                    )],
                    n / 4,
                ),
            ),
        },
    ];

    let started = Instant::now();
    let mut total = 0;
    let mut wrong = Vec::new();
    for class in &classes {
        match b.run(class) {
            Ok(sent) => total += sent,
            Err(e) => wrong.push(e),
        }
        assert!(
            pid_alive(pid1) && pid_alive(pid2),
            "a switch died during {}",
            class.name
        );
    }
    assert!(
        wrong.is_empty(),
        "not accounted exactly:\n{}",
        wrong.join("\n")
    );
    eprintln!(
        "barrage: {total} packets in {} classes, {:?}",
        classes.len(),
        started.elapsed()
    );
    assert!(total >= 20_000, "only {total} packets sent");
    stop.store(true, Ordering::Relaxed);
    let done = tcp
        .join()
        .expect("transfer thread")
        .expect("every transfer intact");
    eprintln!("transfers intact: {done} × 4 MiB");
    assert_eq!(
        lab.switch_pid("n1"),
        Some(pid1),
        "n1's switch was not restarted"
    );
    assert_eq!(
        lab.switch_pid("n2"),
        Some(pid2),
        "n2's switch was not restarted"
    );
}

/// The FDB and routes of a node, as `vxctl fdb` shows them.
fn fdb(lab: &Lab, node: &str) -> String {
    let f = lab.ctl(node).unwrap().fdb().unwrap();
    format!("{:?}\n{:?}", f.entries, f.routes)
}

/// A numbered UDP stream from n1p1 to n2p1 at about `rate`/s until `stop`: returns (sent,
/// received, lost or reordered, one-way delays in µs, sorted).
fn udp_stream(
    lab: &Lab,
    rate: u32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64, u64, Vec<u64>)> {
    let from = lab.netns_of("n1p1").unwrap();
    let to = lab.netns_of("n2p1").unwrap();
    let rx = in_netns(&to, || UdpSocket::bind("10.1.2.2:7000")).expect("bind in n2p1");
    let tx = in_netns(&from, || UdpSocket::bind("10.1.1.2:0")).expect("bind in n1p1");
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let epoch = Instant::now();
    let receiver = std::thread::spawn(move || {
        let (mut got, mut bad, mut next) = (0u64, 0u64, 0u64);
        let mut delays = Vec::new();
        let mut buf = [0u8; 64];
        let mut idle = 0;
        while idle < 10 {
            match rx.recv(&mut buf) {
                Ok(16) => {
                    idle = 0;
                    let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                    let at = u64::from_be_bytes(buf[8..16].try_into().unwrap());
                    if seq != next {
                        bad += 1;
                    }
                    next = seq + 1;
                    got += 1;
                    delays.push((epoch.elapsed().as_micros() as u64).saturating_sub(at));
                }
                Ok(_) => bad += 1,
                Err(_) => idle += 1,
            }
        }
        (got, bad, delays)
    });
    std::thread::spawn(move || {
        let gap = Duration::from_secs(1) / rate;
        let start = Instant::now();
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = start + gap * seq as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&seq.to_be_bytes());
            d[8..].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
            tx.send_to(&d, "10.1.2.2:7000").expect("send");
            seq += 1;
        }
        let (got, bad, mut delays) = receiver.join().expect("receiver");
        delays.sort_unstable();
        (seq, got, bad, delays)
    })
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

#[test]
fn mac_and_arp_floods_from_a_pod_leave_memory_tables_and_other_traffic_alone() {
    let lab = lab(LabSpec {
        name: unique_name("macfl"),
        nodes: 2,
        pods: 2,
        ipv6: false,
        ..LabSpec::default()
    });
    let pid1 = lab.switch_pid("n1").expect("n1's vxswitchd");
    let attacker = lab.netns_of("n1p2").unwrap();
    silence(&attacker);
    silence(&lab.netns_of("n2p2").unwrap());
    no_ipv6(&lab.node("n1").unwrap().netns);
    no_ipv6(&lab.node("n2").unwrap().netns);
    let port = RawPort::open(&attacker);
    // Warm up (the stream's path, the switch's buffers), then measure.
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 2, &[]);
    assert!(ok, "{out}");
    let fdbs = [fdb(&lab, "n1"), fdb(&lab, "n2")];
    let rss_before = rss_kb(pid1);
    let before = lab.ctl("n1").unwrap().stats().unwrap();
    let before2 = lab.ctl("n2").unwrap().stats().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stream = udp_stream(&lab, 2000, stop.clone());
    std::thread::sleep(Duration::from_millis(200));

    // 100,000 frames, each from its own source MAC: gratuitous ARP claiming the other pods'
    // addresses (local and remote), ARP requests for the gateway, unicast to unknown MACs,
    // and packets routed to n2p2.
    let count = 100_000u32;
    let frames: Vec<(u32, Vec<u8>)> = (0..count)
        .map(|i| {
            let b = i.to_be_bytes();
            let mac = [0x02, 0xaa, b[0], b[1], b[2], b[3]];
            let f = match i % 4 {
                0 => {
                    let claim = if i % 8 == 0 {
                        [10, 1, 1, 2]
                    } else {
                        [10, 1, 2, 2]
                    };
                    eth([0xff; 6], mac, 0x0806, &arp(1, 6, 4, mac, claim, claim))
                }
                1 => eth(
                    [0xff; 6],
                    mac,
                    0x0806,
                    &arp(1, 6, 4, mac, ATTACKER_IP, [10, 1, 1, 1]),
                ),
                2 => eth(
                    [0x02, 0xbb, b[0], b[1], b[2], b[3]],
                    mac,
                    0x0800,
                    &ipv4(ATTACKER_IP, TARGET_IP, 17, 64, &[], &udp(18)),
                ),
                _ => eth(
                    GW1,
                    mac,
                    0x0800,
                    &ipv4(ATTACKER_IP, TARGET_IP, 17, 64, &[], &udp(18)),
                ),
            };
            (i % 4, f)
        })
        .collect();
    let started = Instant::now();
    let mut sent = [0u64; 4];
    paced(&frames, |(k, f)| {
        let ok = port.send(f);
        if ok {
            sent[*k as usize] += 1;
        }
        ok
    });
    let took = started.elapsed();
    let delta = |a: &StatsRepr, b: &StatsRepr, k: &str| value(b, k) - value(a, k);
    let total: u64 = sent.iter().sum();
    let mut after = lab.ctl("n1").unwrap().stats().unwrap();
    let mut after2 = lab.ctl("n2").unwrap().stats().unwrap();
    let accounted = wait_until(Duration::from_secs(10), || {
        after = lab.ctl("n1").unwrap().stats().unwrap();
        after2 = lab.ctl("n2").unwrap().stats().unwrap();
        delta(&before, &after, "rx:n1p2") == total
            && delta(&before, &after, "arp_unanswered") == sent[0]
            && delta(&before, &after, "tx:n1p2") == sent[1]
            && delta(&before, &after, "unknown_unicast") == sent[2]
            && delta(&before2, &after2, "tx:n2p2") == sent[3]
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (stream_sent, got, bad, delays) = stream.join().expect("stream");
    let rss_after = rss_kb(pid1);
    eprintln!(
        "flood: {total} frames, 100,000 source MACs, in {took:?}; RSS {rss_before} kB -> {rss_after} kB \
         ({:+} kB); stream {got}/{stream_sent} received, {bad} out of order; one-way delay p50 {} µs, \
         p99 {} µs, max {} µs",
        rss_after as i64 - rss_before as i64,
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.last().copied().unwrap_or(0),
    );
    assert_eq!(total, u64::from(count), "the pod's kernel sent every frame");
    assert!(
        accounted,
        "every flood frame accounted: sent {sent:?}, rx {}, arp_unanswered {}, arp replies {}, \
         unknown_unicast {}, delivered to n2p2 {}",
        delta(&before, &after, "rx:n1p2"),
        delta(&before, &after, "arp_unanswered"),
        delta(&before, &after, "tx:n1p2"),
        delta(&before, &after, "unknown_unicast"),
        delta(&before2, &after2, "tx:n2p2"),
    );
    assert_eq!(
        [fdb(&lab, "n1"), fdb(&lab, "n2")],
        fdbs,
        "no entry added, evicted or rewritten"
    );
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "vxswitchd grew from {rss_before} kB to {rss_after} kB during the flood"
    );
    assert!(
        stream_sent > 100,
        "the stream ran ({stream_sent} datagrams)"
    );
    assert_eq!(
        (got, bad),
        (stream_sent, 0),
        "the other pods' stream lost or reordered nothing"
    );
    assert!(
        percentile(&delays, 0.99) < 500_000,
        "p99 one-way delay {} µs during the flood",
        percentile(&delays, 0.99)
    );
    // The pods whose addresses were claimed still reach each other.
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 2, &[]);
    assert!(ok, "{out}");
    assert_eq!(lab.switch_pid("n1"), Some(pid1));
}

#[test]
fn broadcast_flooding_is_rate_limited_per_port_and_counted() {
    let (rate, burst) = (500u64, 200u64);
    let lab = lab(LabSpec {
        name: unique_name("bum"),
        nodes: 2,
        pods: 2,
        ipv6: false,
        switch_args: vec!["--bum-rate".into(), format!("{rate}/{burst}")],
        ..LabSpec::default()
    });
    let attacker = lab.netns_of("n1p2").unwrap();
    for pod in ["n1p1", "n1p2"] {
        silence(&lab.netns_of(pod).unwrap());
    }
    no_ipv6(&lab.node("n1").unwrap().netns);
    let (ok, out) = vxctl(
        &lab,
        "n1",
        &[
            "add-flow",
            "br0",
            "table=0,priority=500,udp,dl_dst=ff:ff:ff:ff:ff:ff,actions=flood",
        ],
    );
    assert!(ok, "{out}");
    let port = RawPort::open(&attacker);
    let frame = eth(
        [0xff; 6],
        ATTACKER_MAC,
        0x0800,
        &ipv4(ATTACKER_IP, [10, 1, 1, 255], 17, 64, &[], &udp(18)),
    );
    let frames = vec![frame; 6000];
    let before = lab.ctl("n1").unwrap().stats().unwrap();
    let started = Instant::now();
    let sent = paced(&frames, |f| port.send(f));
    let delta = |a: &StatsRepr, b: &StatsRepr, k: &str| value(b, k) - value(a, k);
    let mut after = before.clone();
    // Every frame either flooded (one copy to n1p1) or limited.
    let settled = wait_until(Duration::from_secs(10), || {
        after = lab.ctl("n1").unwrap().stats().unwrap();
        delta(&before, &after, "rx:n1p2") == sent
            && delta(&before, &after, "tx:n1p1") + delta(&before, &after, "bum_rate_limited")
                == sent
    });
    let elapsed = started.elapsed();
    let flooded = delta(&before, &after, "tx:n1p1");
    let limited = delta(&before, &after, "bum_rate_limited");
    eprintln!(
        "bum: {sent} broadcasts in {elapsed:?}: {flooded} flooded, {limited} limited \
         (bound {rate}/s × time + {burst})"
    );
    assert_eq!(sent, 6000);
    assert!(settled, "sent {sent}, flooded {flooded}, limited {limited}");
    // One more for the switch's millisecond clock.
    let bound = burst + (rate as f64 * elapsed.as_secs_f64()).ceil() as u64 + 1;
    assert!(flooded <= bound, "{flooded} flooded, more than {bound}");
    assert!(flooded >= burst, "{flooded} flooded: not even the burst");
    assert!(limited > 0);
    // The host port got the same copies; the flood's encapsulations went to n2.
    assert_eq!(delta(&before, &after, "tx:vxhost0"), flooded);
}

#[test]
fn with_port_security_a_spoofed_source_mac_or_ip_is_a_counted_drop() {
    let lab = lab(LabSpec {
        name: unique_name("spoof"),
        nodes: 2,
        pods: 2,
        ipv6: false,
        multitenant: true,
        pod_vnids: vec![10, 10],
        ..LabSpec::default()
    });
    let attacker = lab.netns_of("n1p2").unwrap();
    silence(&attacker);
    silence(&lab.netns_of("n2p2").unwrap());
    no_ipv6(&lab.node("n1").unwrap().netns);
    no_ipv6(&lab.node("n2").unwrap().netns);
    let b = Barrage {
        lab: &lab,
        port: RawPort::open(&attacker),
        vtep2: SocketAddr::from((Ipv4Addr::new(198, 51, 100, 2), 4789)),
    };
    let n1p1_mac = [0x0a, 0x58, 10, 1, 1, 2];
    let n1p1_ip = [10, 1, 1, 2];
    let routed = |mac: [u8; 6], ip: [u8; 4]| {
        eth(
            GW1,
            mac,
            0x0800,
            &ipv4(ip, TARGET_IP, 17, 64, &[], &udp(18)),
        )
    };
    let claim = |mac: [u8; 6], sha: [u8; 6], spa: [u8; 4]| {
        eth(
            [0xff; 6],
            mac,
            0x0806,
            &arp(1, 6, 4, sha, spa, [10, 1, 1, 1]),
        )
    };
    let spoofed = Class {
        name: "spoofed source",
        outcomes: &[(0, "flow_drop")],
        traffic: Traffic::Pod(repeat(
            vec![
                routed(n1p1_mac, ATTACKER_IP),
                routed(ATTACKER_MAC, n1p1_ip),
                routed([0x02, 0, 0, 0, 0, 7], [10, 9, 9, 9]),
                claim(ATTACKER_MAC, ATTACKER_MAC, n1p1_ip),
                claim(ATTACKER_MAC, n1p1_mac, ATTACKER_IP),
                claim(n1p1_mac, n1p1_mac, n1p1_ip),
            ],
            1200,
        )),
    };
    let own = Class {
        name: "own source",
        outcomes: &[(1, "tx:n2p2")],
        traffic: Traffic::Pod(repeat(vec![routed(ATTACKER_MAC, ATTACKER_IP)], 200)),
    };
    let fdbs = [fdb(&lab, "n1"), fdb(&lab, "n2")];
    for class in [&spoofed, &own] {
        b.run(class).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!([fdb(&lab, "n1"), fdb(&lab, "n2")], fdbs);
}
