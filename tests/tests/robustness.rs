//! Bad input gets a counted drop or a clear error, and the switch keeps forwarding.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use controlplane::codec;
use controlplane::proto::{ErrorCode, Request, Response, PROTOCOL_VERSION};
use vxswitch_e2e::*;

fn vxlan(flags: u8, vni: u32, reserved: u8, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let mut p = vec![flags, reserved, 0, 0, v[1], v[2], v[3], 0];
    p.extend_from_slice(inner);
    p
}

/// An inner frame for the node's VTEP MAC carrying an IPv4/UDP packet to nobody.
fn inner_frame(dst_mac: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&[0x02, 0xf1, 0, 0, 0, 2]);
    f.extend_from_slice(&[0x08, 0x00]);
    let ip = [
        0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0x23, 0x6b, 10, 1, 2, 2, 10, 1, 1,
        99, // dst: no pod
        0x30, 0x39, 0x30, 0x39, 0, 8, 0, 0,
    ];
    f.extend_from_slice(&ip);
    f
}

#[test]
fn malformed_vxlan_is_counted_by_reason_and_forwarding_goes_on() {
    let lab = lab(LabSpec {
        name: unique_name("bad"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        ..LabSpec::default()
    });
    let n2 = lab.node("n2").unwrap().netns.clone();
    let vtep1 = SocketAddr::from((Ipv4Addr::new(198, 51, 100, 1), 4789));
    let mut ctl = lab.ctl("n1").unwrap();
    let before = ctl.stats().unwrap();

    // From the known VTEP of n2.
    let known = in_netns(&n2, || UdpSocket::bind("198.51.100.2:40000")).expect("bind in n2");
    let vtep_mac = [0x02, 0xf1, 0, 0, 0, 1];
    known.send_to(&[0x08, 0, 0], vtep1).unwrap(); // truncated VXLAN header
    known
        .send_to(&vxlan(0x00, 1, 0, &inner_frame(vtep_mac)), vtep1)
        .unwrap(); // I flag clear
    known
        .send_to(&vxlan(0x08, 999, 0, &inner_frame(vtep_mac)), vtep1)
        .unwrap(); // unknown VNI
    known
        .send_to(&vxlan(0x08, 1, 0x5a, &inner_frame(vtep_mac)), vtep1)
        .unwrap(); // reserved bits, no such pod
    known
        .send_to(&vxlan(0x08, 1, 0, &[1, 2, 3]), vtep1)
        .unwrap(); // truncated inner frame

    // From an address that is no node's VTEP.
    let (ok, out) = run_bounded(
        std::process::Command::new("ip").args([
            "-n",
            &n2,
            "addr",
            "add",
            "198.51.100.77/24",
            "dev",
            "eth0",
        ]),
        Duration::from_secs(5),
    );
    assert!(ok, "{out}");
    let stranger = in_netns(&n2, || UdpSocket::bind("198.51.100.77:40001")).expect("bind stranger");
    stranger
        .send_to(&vxlan(0x08, 1, 0, &inner_frame(vtep_mac)), vtep1)
        .unwrap();

    let want = [
        ("malformed", 2),
        ("vxlan_no_i_flag", 1),
        ("unknown_vni", 1),
        ("vxlan_reserved_bits", 1),
        ("no_route", 1),
        ("unknown_source_vtep", 1),
    ];
    let settled = wait_until(Duration::from_secs(5), || {
        let now = ctl.stats().unwrap();
        want.iter()
            .all(|(n, d)| counter(&now, n) >= counter(&before, n) + d)
    });
    let now = ctl.stats().unwrap();
    for (n, d) in want {
        assert_eq!(
            counter(&now, n) - counter(&before, n),
            d,
            "counter {n} (settled: {settled})"
        );
    }
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 3, &[]);
    assert!(ok, "forwarding continues after bad input:\n{out}");
}

fn raw_frame(s: &mut UnixStream, body: &[u8]) -> Response {
    s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    s.write_all(body).unwrap();
    codec::read_msg(s).expect("a response")
}

#[test]
fn garbage_on_the_control_socket_gets_errors_and_changes_nothing() {
    let lab = lab(LabSpec {
        name: unique_name("ctl"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        ..LabSpec::default()
    });
    let socket = lab
        .node("n1")
        .unwrap()
        .socket
        .clone()
        .expect("vxswitch node has a socket");
    let version = lab.ctl("n1").unwrap().state().unwrap().table_version;

    let mut s = UnixStream::connect(&socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A request before hello.
    match raw_frame(&mut s, &serde_json::to_vec(&Request::GetState).unwrap()) {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::OutOfOrder),
        other => panic!("expected out-of-order, got {other:?}"),
    }
    // Garbage that is not JSON, and JSON that is no request.
    for body in [
        &b"\x00\xffnot json"[..],
        br#"{"type":"apply","owner":"admin","changes":[{"op":"explode"}]}"#,
    ] {
        match raw_frame(&mut s, body) {
            Response::Error { code, .. } => assert_eq!(code, ErrorCode::Malformed),
            other => panic!("expected malformed, got {other:?}"),
        }
    }
    // A proper hello still works on the same connection.
    let hello = serde_json::to_vec(&Request::Hello {
        version: PROTOCOL_VERSION,
        client: "test".into(),
    })
    .unwrap();
    assert!(matches!(raw_frame(&mut s, &hello), Response::Hello { .. }));
    // An oversized length is refused and the connection closed.
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    match codec::read_msg::<_, Response>(&mut s) {
        Ok(Response::Error { code, .. }) => assert_eq!(code, ErrorCode::TooLarge),
        other => panic!("expected too-large, got {other:?}"),
    }
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    // A wrong protocol version is refused.
    let mut s2 = UnixStream::connect(&socket).unwrap();
    let bad = serde_json::to_vec(&Request::Hello {
        version: 99,
        client: "test".into(),
    })
    .unwrap();
    assert!(matches!(
        raw_frame(&mut s2, &bad),
        Response::Error {
            code: ErrorCode::Version,
            ..
        }
    ));

    let after = lab.ctl("n1").unwrap().state().unwrap();
    assert_eq!(after.table_version, version, "nothing changed");
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 2, &[]);
    assert!(ok, "{out}");
}

/// While a pod floods the switch with small datagrams as fast as it can send, a configuration
/// change (a publish of the tables, which waits for readers to leave the old copy) still
/// completes and takes effect.
#[test]
fn configuration_changes_apply_during_a_flood() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;
    let lab = lab(LabSpec {
        name: unique_name("flood"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        ..LabSpec::default()
    });
    let a = lab.pod("n1p1").unwrap().netns.clone();
    let sock = in_netns(&a, || UdpSocket::bind("10.1.1.2:0")).expect("bind in n1p1");
    let stop = Arc::new(AtomicBool::new(false));
    // At most 20 s of flood, ended as soon as the check is done.
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let to = SocketAddr::from((Ipv4Addr::new(10, 1, 2, 2), 9));
            let started = Instant::now();
            let payload = [0u8; 18];
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(20) {
                let _ = sock.send_to(&payload, to);
            }
        })
    };
    let rx = |lab: &LabGuard| {
        let s = lab.ctl("n1").unwrap().stats().unwrap();
        s.ports
            .iter()
            .find(|p| p.name == "n1p1")
            .map_or(0, |p| p.rx_packets)
    };
    assert!(
        wait_until(Duration::from_secs(10), || rx(&lab) > 50_000),
        "the flood reaches the switch"
    );
    let t0 = Instant::now();
    let (ok, out) = vxctl(
        &lab,
        "n1",
        &[
            "add-flow",
            "br0",
            "table=0,priority=7,udp,tp_dst=7,actions=drop",
        ],
    );
    let took = t0.elapsed();
    let flooding = !flood.is_finished();
    stop.store(true, Ordering::Relaxed);
    flood.join().expect("flood thread");
    assert!(ok, "add-flow during the flood: {out}");
    assert!(flooding, "the flood was still on when the flow went in");
    assert!(
        took < Duration::from_secs(5),
        "add-flow took {took:?} during the flood"
    );
    let (ok, out) = vxctl(&lab, "n1", &["dump-flows", "br0"]);
    assert!(ok && out.contains("tp_dst=7"), "the flow is in:\n{out}");
}

#[test]
fn a_corrupt_state_file_is_kept_aside_and_the_switch_comes_up_for_the_agent() {
    let mut lab = lab(LabSpec {
        name: unique_name("stc"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        ..LabSpec::default()
    });
    let dir = lab.node("n1").unwrap().dir.clone();
    let state = tools::lab::vxswitch::state_path(&dir);
    assert!(
        wait_until(Duration::from_secs(10), || state.exists()),
        "the switch saved its state"
    );
    // What a crash in the middle of a write, or a stray editor, leaves behind.
    std::fs::write(
        &state,
        b"{\"local\": {\"owner\": \"agent\", \"spec\": {\"na",
    )
    .unwrap();
    lab.restart_switch("n1")
        .expect("a switch with a truncated state file starts");
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the bad file is kept aside: {aside:?}");
    // The agent pushes again and the pods talk across nodes.
    assert!(
        wait_until(Duration::from_secs(20), || ping(
            &lab,
            "n1p1",
            Ipv4Addr::new(10, 1, 2, 2),
            1,
            &["-W", "1"]
        )
        .0),
        "pods reach each other once the agent has pushed"
    );
    // And the state written since is whole again.
    let text = std::fs::read_to_string(&state).expect("state saved again");
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_ok(),
        "{text}"
    );
}
