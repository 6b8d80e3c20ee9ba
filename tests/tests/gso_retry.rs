//! A failed UDP GSO send turns GSO off for a while, not for good: the worker tries again later
//! and counts it. The kernel refuses UDP GSO on a socket without outer checksums
//! (`--udp-csum off`), so every GSO send fails there: the worker keeps sending one datagram
//! per call, every datagram arrives, and it tries GSO again, later each time.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use vxswitch_e2e::*;

#[test]
fn a_failed_gso_send_is_retried_later_and_counted() {
    let lab = lab(LabSpec {
        name: unique_name("gsor"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        offload: true,
        switch_args: vec!["--udp-csum".into(), "off".into()],
        ..LabSpec::default()
    });
    assert!(
        wait_until(Duration::from_secs(10), || ping(
            &lab,
            "n1p1",
            Ipv4Addr::new(10, 1, 2, 2),
            1,
            &["-W", "1"]
        )
        .0),
        "n1p1 reaches n2p1"
    );
    let a = lab.pod("n1p1").unwrap().netns.clone();
    let b = lab.pod("n2p1").unwrap().netns.clone();
    let to = SocketAddr::from((Ipv4Addr::new(10, 1, 2, 2), 5320));
    let rx = in_netns(&b, move || UdpSocket::bind(to)).expect("bind in n2p1");
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tx = in_netns(&a, || UdpSocket::bind("10.1.1.2:0")).expect("bind in n1p1");
    let mut ctl = lab.ctl("n1").unwrap();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut seq = 0u32;
    let (mut fallbacks, mut retries) = (0, 0);
    // Bursts of small datagrams (they leave batched in GSO sends when GSO works) until the
    // worker has fallen back, tried again and fallen back again.
    while Instant::now() < deadline {
        for _ in 0..20 {
            let mut d = [0u8; 64];
            d[..4].copy_from_slice(&seq.to_be_bytes());
            tx.send_to(&d, to).expect("send");
            seq += 1;
        }
        for i in seq - 20..seq {
            let n = rx
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("datagram {i}: {e}"));
            assert_eq!(
                (n, &buf[..4]),
                (64, &i.to_be_bytes()[..]),
                "in order, intact"
            );
        }
        let s = ctl.stats().unwrap();
        fallbacks = counter(&s, "udp_gso_fallback");
        // (A switch that never retries has no such counter.)
        retries = s
            .events
            .iter()
            .find(|c| c.name == "udp_gso_retries")
            .map_or(0, |c| c.value);
        if fallbacks >= 2 && retries >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        retries >= 1 && fallbacks >= 2,
        "GSO tried again after a failure: {retries} retries, {fallbacks} fallbacks"
    );
}
