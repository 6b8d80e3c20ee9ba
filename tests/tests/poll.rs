//! How workers wait for work (`--poll adaptive|sleep|busy`, `--spin-us`, `--busy-poll`,
//! `--worker-nice`):
//! pings and a verified TCP transfer cross a two-node lab in every mode, and an adaptive
//! worker whose traffic has stopped goes back to sleep (its polls without sleeping stop),
//! while a busy-polling one keeps polling.

use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch_e2e::*;

const N2P1: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 2);

fn poll_lab(tag: &str, args: &[&str]) -> LabGuard {
    lab(LabSpec {
        name: unique_name(tag),
        nodes: 2,
        pods: 1,
        ipv6: false,
        offload: true,
        switch_args: args.iter().map(|a| a.to_string()).collect(),
        ..LabSpec::default()
    })
}

/// The sum of one event counter over the lab's two nodes.
fn events(lab: &Lab, name: &str) -> u64 {
    ["n1", "n2"]
        .iter()
        .map(|n| {
            let mut ctl = lab.ctl(n).expect("control connection");
            counter(&ctl.stats().expect("stats"), name)
        })
        .sum()
}

/// Pings, then 4 MB of TCP checked byte for byte, from n1p1 to n2p1.
fn forwards(lab: &Lab, port: u16) {
    assert!(
        wait_until(Duration::from_secs(10), || ping(
            lab,
            "n1p1",
            N2P1,
            1,
            &["-W", "1"]
        )
        .0),
        "n1p1 reaches n2p1"
    );
    let (received, out) = ping_count(lab, "n1p1", N2P1, 20);
    assert_eq!(received, 20, "every ping answered: {out}");
    let a = lab.pod("n1p1").unwrap().netns.clone();
    let b = lab.pod("n2p1").unwrap().netns.clone();
    tcp_transfer(
        &a,
        &b,
        N2P1,
        port,
        4 << 20,
        64 << 10,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("TCP transfer: {e}"));
}

#[test]
fn every_poll_mode_forwards_pings_and_tcp() {
    let modes: [(&str, &[&str]); 7] = [
        ("pola", &["--poll", "adaptive"]),
        (
            "polt",
            &[
                "--poll",
                "adaptive",
                "--poll-budget-us",
                "20",
                "--poll-yield",
                "off",
            ],
        ),
        ("pols", &["--poll", "sleep"]),
        ("polb", &["--poll", "busy"]),
        ("polsp", &["--spin-us", "50"]),
        ("polbp", &["--busy-poll", "--workers", "1"]),
        ("poln", &["--poll", "adaptive", "--worker-nice", "-5"]),
    ];
    for (i, (tag, args)) in modes.iter().enumerate() {
        let lab = poll_lab(tag, args);
        forwards(&lab, 5400 + i as u16);
    }
}

#[test]
fn an_idle_adaptive_worker_sleeps_and_a_busy_one_polls() {
    // Polls without sleeping that found nothing, counted over a short window: none once an
    // adaptive worker's traffic has stopped (it polls at most one budget after its last
    // work), a steady stream of them from a busy-polling worker.
    fn empty_polls_in_window(lab: &Lab) -> u64 {
        let before = events(lab, "worker_polls_empty");
        std::thread::sleep(Duration::from_millis(300));
        events(lab, "worker_polls_empty") - before
    }

    let lab = poll_lab("poli", &["--poll", "adaptive", "--poll-budget-us", "1000"]);
    forwards(&lab, 5410);
    assert!(
        events(&lab, "worker_poll_hits") + events(&lab, "worker_polls_empty") > 0,
        "the adaptive workers polled without sleeping while traffic flowed"
    );
    // A stray frame from a node's own stack may wake a worker now and then, so the window is
    // taken again until one is quiet (bounded).
    assert!(
        wait_until(Duration::from_secs(10), || empty_polls_in_window(&lab) == 0),
        "idle adaptive workers stop polling"
    );
    let sleeps = events(&lab, "worker_sleeps");
    assert!(sleeps > 0, "the adaptive workers went to sleep");
    drop(lab);

    let lab = poll_lab("polj", &["--poll", "busy"]);
    forwards(&lab, 5411);
    assert!(
        empty_polls_in_window(&lab) > 0,
        "busy-polling workers keep polling while idle"
    );
}
