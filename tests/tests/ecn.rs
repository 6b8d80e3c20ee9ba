//! ECN, TOS and TTL on the wire, after the ECN tests of the kernel's forwarding selftest
//! `vxlan_bridge_1d.sh`: encapsulation (`ping -Q TOS` through the overlay, the outer header
//! captured on the underlay) and decapsulation (VXLAN crafted in the peer node's namespace
//! with every inner/outer ECN pair, what reaches the pod captured in the pod).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use vxswitch_e2e::*;

const ECT1: u8 = 0b01;
const ECT0: u8 = 0b10;
const CE: u8 = 0b11;

fn two_nodes(prefix: &str, switch_args: &[&str]) -> LabGuard {
    lab(LabSpec {
        name: unique_name(prefix),
        nodes: 2,
        pods: 1,
        ipv6: false,
        switch_args: switch_args.iter().map(|s| s.to_string()).collect(),
        ..LabSpec::default()
    })
}

/// (inner TOS, outer TOS, outer TTL) of every captured VXLAN packet carrying an ICMP echo
/// request.
fn echo_requests(frames: &[Vec<u8>]) -> Vec<(u8, u8, u8)> {
    let mut out = Vec::new();
    for f in frames {
        let Some((_, inner)) = vxlan_inner(f, 4789) else {
            continue;
        };
        if inner.len() < 14 + 20 + 8 || inner[12..14] != [0x08, 0x00] || inner[14 + 9] != 1 {
            continue;
        }
        let ihl = ((inner[14] & 0x0f) as usize) * 4;
        if inner.get(14 + ihl) != Some(&8) {
            continue;
        }
        out.push((inner[15], f[15], f[14 + 8]));
    }
    out
}

#[test]
fn encapsulation_copies_the_inner_ecn_and_inherits_dscp_and_ttl_when_asked() {
    // As the selftest's vxlan device: `tos inherit ttl 100`.
    let lab = two_nodes("ecne", &["--tos", "inherit", "--ttl", "100"]);
    let n1 = lab.node("n1").unwrap().netns.clone();
    let dir = lab.dir().join("capture");
    let cap = Capture::start(&n1, "eth0", "udp port 4789", &dir);
    // inner TOS → outer TOS: ECN 00→00, 01→01, 10→10, 11 (CE)→10; the DSCP (0xb8, EF)
    // inherited.
    let cases = [
        (0x00, 0x00),
        (0x01, 0x01),
        (0x02, 0x02),
        (0x03, 0x02),
        (0xb8 | CE, 0xb8 | ECT0),
    ];
    for (tos, _) in cases {
        let q = format!("{tos:#04x}");
        let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 2, &["-Q", &q]);
        assert!(ok, "ping -Q {q}:\n{out}");
    }
    let seen = echo_requests(&cap.finish());
    for (tos, want) in cases {
        let outer: Vec<(u8, u8)> = seen
            .iter()
            .filter(|s| s.0 == tos)
            .map(|s| (s.1, s.2))
            .collect();
        assert!(
            !outer.is_empty(),
            "no echo request with inner TOS {tos:#04x} captured: {seen:?}"
        );
        for (o, ttl) in outer {
            assert_eq!(o, want, "inner TOS {tos:#04x}: outer TOS");
            assert_eq!(ttl, 100, "outer TTL");
        }
    }
}

#[test]
fn by_default_the_outer_dscp_is_zero_the_ttl_64_and_the_ecn_still_follows() {
    let lab = two_nodes("ecnd", &[]);
    let n1 = lab.node("n1").unwrap().netns.clone();
    let dir = lab.dir().join("capture");
    let cap = Capture::start(&n1, "eth0", "udp port 4789", &dir);
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 2, &["-Q", "0xbb"]);
    assert!(ok, "{out}");
    let seen = echo_requests(&cap.finish());
    assert!(!seen.is_empty());
    for (inner, outer, ttl) in seen {
        assert_eq!((inner, outer, ttl), (0xbb, ECT0, 64));
    }
}

/// A VXLAN datagram (VNI 1) carrying IPv4/UDP from 10.1.2.2 to the pod 10.1.1.2 port 7777, as
/// n2 would send it after routing; `tag` goes in the payload.
fn crafted(inner_tos: u8, tag: u8) -> Vec<u8> {
    let mut p = vec![0x08, 0, 0, 0, 0, 0, tools::lab::topo::VNI as u8, 0];
    // Inner Ethernet: to n1's VTEP MAC from n2's (flannel's routed overlay frames).
    p.extend_from_slice(&[
        0x02, 0xf1, 0, 0, 0, 0x01, 0x02, 0xf1, 0, 0, 0, 0x02, 0x08, 0x00,
    ]);
    let payload = [tag; 16];
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, inner_tos];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0, 10, 1, 2, 2, 10, 1, 1, 2]);
    let mut sum = 0u32;
    for w in ip.chunks(2) {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p.extend_from_slice(&ip);
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&7777u16.to_be_bytes());
    p.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&payload);
    p
}

#[test]
fn decapsulation_follows_rfc_6040_and_counts_ce_on_not_ect() {
    let lab = two_nodes("ecnx", &[]);
    let n2 = lab.node("n2").unwrap().netns.clone();
    let pod = lab.pod("n1p1").unwrap().netns.clone();
    // (inner ECN, outer ECN) → inner ECN at the pod; None: dropped. vxlan_bridge_1d.sh's
    // decap table.
    let cases: [(u8, u8, Option<u8>); 9] = [
        (0, 0, Some(0)),
        (0, ECT1, Some(0)),
        (0, ECT0, Some(0)),
        (0, CE, None),
        (ECT1, CE, Some(CE)),
        (ECT0, CE, Some(CE)),
        (ECT0, ECT1, Some(ECT1)),
        (CE, 0, Some(CE)),
        (CE, ECT1, Some(CE)),
    ];
    const PER_CASE: usize = 5;
    // The pod receives on a UDP socket that reports each datagram's TOS byte.
    let rx = in_netns(&pod, || UdpSocket::bind("10.1.1.2:7777")).expect("bind in the pod");
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    set_int(&rx, libc::IPPROTO_IP, libc::IP_RECVTOS, 1);
    let datagrams: Vec<(u8, Vec<u8>)> = cases
        .iter()
        .enumerate()
        .map(|(i, &(inner, outer, _))| (outer, crafted(0x20 | inner, i as u8 + 1)))
        .collect();
    in_netns(&n2, move || {
        let s = UdpSocket::bind("198.51.100.2:0").expect("bind in n2");
        let to = SocketAddr::from(([198, 51, 100, 1], 4789));
        for (outer, d) in datagrams {
            set_int(
                &s,
                libc::IPPROTO_IP,
                libc::IP_TOS,
                0x20 | outer as libc::c_int,
            );
            for _ in 0..PER_CASE {
                s.send_to(&d, to).expect("send");
            }
        }
    });
    let expected = cases.iter().filter(|c| c.2.is_some()).count() * PER_CASE;
    // (tag, TOS) of every datagram the pod got, until nothing more comes.
    let mut got: Vec<(u8, u8)> = Vec::new();
    while let Some(d) = recv_with_tos(&rx) {
        got.push(d);
    }
    assert_eq!(got.len(), expected, "datagrams at the pod: {got:?}");
    for (i, &(inner, outer, want)) in cases.iter().enumerate() {
        let tag = i as u8 + 1;
        let tos: Vec<u8> = got.iter().filter(|g| g.0 == tag).map(|g| g.1).collect();
        match want {
            None => assert!(
                tos.is_empty(),
                "inner {inner:02b} outer {outer:02b} must be dropped, got {tos:?}"
            ),
            Some(w) => {
                assert_eq!(
                    tos.len(),
                    PER_CASE,
                    "inner {inner:02b} outer {outer:02b}: all arrive"
                );
                assert!(
                    tos.iter().all(|&t| t == 0x20 | w),
                    "inner {inner:02b} outer {outer:02b}: want {w:02b}, got {tos:x?}"
                );
            }
        }
    }
    let mut ctl = lab.ctl("n1").unwrap();
    let stats = ctl.stats().unwrap();
    assert_eq!(counter(&stats, "ecn_ce_not_ect"), PER_CASE as u64);
}

fn set_int(s: &UdpSocket, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on a live socket with a pointer to a local int and its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

/// One datagram's first payload byte (the case's tag) and the TOS byte it arrived with
/// (`IP_RECVTOS`); `None` once the read times out.
fn recv_with_tos(s: &UdpSocket) -> Option<(u8, u8)> {
    use std::os::fd::AsRawFd;
    let mut data = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is a valid empty value that we then fill in.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `msg` refers to live locals for the duration of the call.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    if n <= 0 {
        return None;
    }
    let mut tos = None;
    // SAFETY: the kernel filled `control` up to msg_controllen; CMSG_FIRSTHDR/NXTHDR stay
    // within it and return null at its end.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_TOS {
                tos = Some(*libc::CMSG_DATA(c));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Some((data[0], tos.expect("IP_TOS control message")))
}
