//! Path MTU (RFC 7348 section 4.3: a VTEP must not fragment its VXLAN packets), after the
//! vxlan cases of the kernel's `pmtu.sh`: the underlay route to the peer drops to MTU 1400;
//! pods get ICMP frag-needed reporting 1350, no fragment ever crosses the underlay, and TCP
//! between the pods completes at the lower MTU.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use vxswitch_e2e::*;

fn lower_route_mtu(lab: &Lab) {
    let n1 = lab.node("n1").unwrap().netns.clone();
    let (ok, out) = run_bounded(
        Command::new("ip").args([
            "-n",
            &n1,
            "route",
            "replace",
            "198.51.100.2/32",
            "dev",
            "eth0",
            "mtu",
            "1400",
        ]),
        Duration::from_secs(5),
    );
    assert!(ok, "ip route replace: {out}");
}

fn run(offload: bool, prefix: &str) {
    let lab = lab(LabSpec {
        name: unique_name(prefix),
        nodes: 2,
        pods: 2,
        ipv6: false,
        offload,
        ..LabSpec::default()
    });
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 1, &[]);
    assert!(ok, "the overlay works before the change:\n{out}");
    let n1 = lab.node("n1").unwrap().netns.clone();
    let dir = std::env::temp_dir().join(format!("vx-{}", lab.name));
    // Any IPv4 fragment (MF set or a non-zero offset) on n1's underlay.
    let cap = Capture::start(&n1, "eth0", "ip[6:2] & 0x3fff != 0", &dir);
    lower_route_mtu(&lab);

    // TCP first: its full-sized segments (TSO super-frames with offloads on) no longer fit;
    // the switch learns the path MTU and the pod's TCP follows the frag-needed it gets.
    let p1 = lab.pod("n1p1").unwrap().netns.clone();
    let p2 = lab.pod("n2p1").unwrap().netns.clone();
    tcp_transfer(
        &p1,
        &p2,
        Ipv4Addr::new(10, 1, 2, 2),
        5201,
        20 << 20,
        65536,
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("transfer at the lower path MTU: {e}"));
    // And the other way (n2's route is unchanged; n1 answers with small ACKs).
    let p4 = lab.pod("n1p2").unwrap().netns.clone();
    let p3 = lab.pod("n2p2").unwrap().netns.clone();
    tcp_transfer(
        &p3,
        &p4,
        Ipv4Addr::new(10, 1, 1, 3),
        5202,
        20 << 20,
        65536,
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("transfer toward the node with the lower path MTU: {e}"));

    // A DF ping that fit the 1450-byte tunnel no longer fits: frag-needed with 1400 - 50.
    let (ok, out) = ping(
        &lab,
        "n1p2",
        Ipv4Addr::new(10, 1, 2, 2),
        2,
        &["-M", "do", "-s", "1400"],
    );
    assert!(!ok, "a 1428-byte DF packet must not cross:\n{out}");
    assert!(
        out.contains("mtu = 1350"),
        "expected fragmentation needed with MTU 1350:\n{out}"
    );
    // 1350 bytes (1322 of data) still cross.
    let (ok, out) = ping(
        &lab,
        "n1p2",
        Ipv4Addr::new(10, 1, 2, 2),
        2,
        &["-M", "do", "-s", "1322"],
    );
    assert!(ok, "a 1350-byte packet fits:\n{out}");

    let fragments = cap.finish();
    assert!(
        fragments.is_empty(),
        "{} IP fragments crossed the underlay",
        fragments.len()
    );
    let stats = lab.ctl("n1").unwrap().stats().unwrap();
    assert!(counter(&stats, "icmp_frag_needed_sent") >= 1);
    assert!(counter(&stats, "path_mtu_learned") >= 1);

    if offload {
        // The route's MTU goes back up: within the switch's periodic re-read (10 s) full-sized
        // packets cross again (the pod forgets what it cached).
        let (ok, out) = run_bounded(
            Command::new("ip").args(["-n", &n1, "route", "del", "198.51.100.2/32"]),
            Duration::from_secs(5),
        );
        assert!(ok, "ip route del: {out}");
        let crossed = wait_until(Duration::from_secs(15), || {
            let _ = run_bounded(
                Command::new("ip").args(["-n", &p4, "route", "flush", "cache"]),
                Duration::from_secs(5),
            );
            ping(
                &lab,
                "n1p2",
                Ipv4Addr::new(10, 1, 2, 2),
                1,
                &["-M", "do", "-s", "1400", "-W", "1"],
            )
            .0
        });
        assert!(
            crossed,
            "1428-byte packets cross again once the path allows"
        );
    }
}

#[test]
fn a_lower_underlay_path_mtu_gives_pods_frag_needed_and_never_fragments() {
    run(true, "pmtu");
}

#[test]
fn the_same_with_offloads_off() {
    run(false, "pmtuo");
}

/// An ICMP frag-needed (type 3 code 4) from `from` reporting `mtu`, about a VXLAN datagram
/// `quoted_src` → `quoted_dst` (both port 4789) of 1478 bytes with DF.
fn frag_needed(mtu: u16, quoted_src: [u8; 4], quoted_dst: [u8; 4]) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0x05, 0xc6, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&quoted_src);
    ip.extend_from_slice(&quoted_dst);
    let udp = [0x12, 0xb5, 0x12, 0xb5, 0x05, 0xb2, 0, 0];
    let mut icmp = vec![3, 4, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(&ip);
    icmp.extend_from_slice(&udp);
    let mut sum = 0u32;
    for w in icmp.chunks(2) {
        sum += u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    icmp[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    icmp
}

#[test]
fn icmp_frag_needed_arriving_on_the_underlay_lowers_the_path_mtu() {
    let lab = lab(LabSpec {
        name: unique_name("pmtui"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        ..LabSpec::default()
    });
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 1, &[]);
    assert!(ok, "{out}");
    // A router on the way says 1300: the frag-needed arrives at n1's VXLAN socket's address.
    let n2 = lab.node("n2").unwrap().netns.clone();
    let icmp = frag_needed(1300, [198, 51, 100, 1], [198, 51, 100, 2]);
    in_netns(&n2, move || {
        // SAFETY: socket(2) with constant arguments; the descriptor is closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([198, 51, 100, 1]),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: `icmp` and `to` are live locals and their exact sizes are passed.
        let n = unsafe {
            libc::sendto(
                fd,
                icmp.as_ptr().cast(),
                icmp.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(
            n,
            icmp.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
        // SAFETY: closing the descriptor opened above, once.
        unsafe { libc::close(fd) };
    });
    // The switch learns 1300 at its next oversize send; pods then get 1300 - 50.
    let mut last = String::new();
    let learned = wait_until(Duration::from_secs(10), || {
        let (_, out) = ping(
            &lab,
            "n1p1",
            Ipv4Addr::new(10, 1, 2, 2),
            1,
            &["-M", "do", "-s", "1300", "-W", "1"],
        );
        last = out;
        last.contains("mtu = 1250")
    });
    assert!(learned, "expected frag-needed with MTU 1250:\n{last}");
    let (ok, out) = ping(
        &lab,
        "n1p1",
        Ipv4Addr::new(10, 1, 2, 2),
        1,
        &["-M", "do", "-s", "1222"],
    );
    assert!(ok, "a 1250-byte packet fits:\n{out}");
}
