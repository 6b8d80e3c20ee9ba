//! 802.1Q tags and `learn` end to end: OVS's advanced tutorial program (a VLAN-aware MAC
//! learning switch over tables 0-4 and the learned table 10), loaded with vxctl in the syntax
//! the tutorial writes, on a one-node lab: n1p1 is a trunk, n1p2 and n1p3 are access ports of
//! VLAN 20, n1p4 of VLAN 30.

use std::time::Duration;

use vxswitch_e2e::*;

#[test]
fn the_ovs_advanced_tutorial_program_switches_vlans_and_learns() {
    let lab = lab(LabSpec {
        name: unique_name("vlan"),
        nodes: 1,
        pods: 4,
        ipv6: false,
        ..LabSpec::default()
    });
    let state = lab.ctl("n1").unwrap().state().unwrap();
    let no = |name: &str| {
        state
            .ports
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no port {name}"))
            .no
    };
    let (t, a, b, c) = (no("n1p1"), no("n1p2"), no("n1p3"), no("n1p4"));
    // The tutorial's tables, its port numbers replaced by the lab's.
    let flows = format!(
        "\
table=0,dl_src=01:00:00:00:00:00/01:00:00:00:00:00,actions=drop
table=0,dl_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0,actions=drop
table=0,priority=0,actions=resubmit(,1)
table=1,priority=0,actions=drop
table=1,priority=99,in_port={t},actions=resubmit(,2)
table=1,priority=99,in_port={a},vlan_tci=0,actions=mod_vlan_vid:20,resubmit(,2)
table=1,priority=99,in_port={b},vlan_tci=0,actions=mod_vlan_vid:20,resubmit(,2)
table=1,priority=99,in_port={c},vlan_tci=0,actions=mod_vlan_vid:30,resubmit(,2)
table=2,actions=learn(table=10,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]),resubmit(,3)
table=3,priority=50,actions=resubmit(,10),resubmit(,4)
table=3,priority=99,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=resubmit(,4)
table=4,reg0={t},actions={t}
table=4,reg0={a},actions=strip_vlan,{a}
table=4,reg0={b},actions=strip_vlan,{b}
table=4,reg0={c},actions=strip_vlan,{c}
table=4,reg0=0,priority=99,dl_vlan=20,actions={t},strip_vlan,{a},{b}
table=4,reg0=0,priority=99,dl_vlan=30,actions={t},strip_vlan,{c}
"
    );
    let file = std::env::temp_dir().join(format!("{}-flows.txt", lab.name));
    std::fs::write(&file, &flows).unwrap();
    let (ok, out) = vxctl(
        &lab,
        "n1",
        &["replace-flows", "br0", file.to_str().unwrap()],
    );
    let _ = std::fs::remove_file(&file);
    assert!(ok, "the tutorial's program loads:\n{out}");

    let (p2, p3, p4) = (
        lab.pod("n1p2").unwrap().clone(),
        lab.pod("n1p3").unwrap().clone(),
        lab.pod("n1p4").unwrap().clone(),
    );
    let flood20 = ["table=4", "dl_vlan=20"];
    // Same VLAN: the first exchange floods (to the trunk too, tagged 20) and learns. This
    // kernel may lack 802.1Q sub-interfaces, so the trunk pod only listens: its capture,
    // listening before the first frame, must see the flood tagged 20.
    let dir = std::env::temp_dir().join(format!("{}-cap", lab.name));
    let ns = lab.pod("n1p1").unwrap().netns.clone();
    let cap = Capture::start(&ns, "eth0", "vlan 20", &dir);
    let (ok, out) = ping(&lab, "n1p2", p3.ip, 1, &[]);
    let frames = cap.finish();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "VLAN 20 to VLAN 20:\n{out}");
    let tagged = frames
        .iter()
        .filter(|f| f.len() > 16 && f[12..14] == [0x81, 0x00] && f[14..16] == [0x00, 20])
        .count();
    assert!(
        tagged >= 1,
        "the flood reaches the trunk tagged 20: {tagged}"
    );
    let learned = wait_until(Duration::from_secs(5), || {
        let (_, d) = vxctl(&lab, "n1", &["dump-flows", "br0", "table=10"]);
        [&p2.mac, &p3.mac].iter().all(|m| {
            d.lines()
                .any(|l| l.contains(m.as_str()) && l.contains("REG0"))
        })
    });
    let (_, dump) = vxctl(&lab, "n1", &["dump-flows", "br0", "table=10"]);
    assert!(learned, "both MACs learned in table 10:\n{dump}");
    for (mac, port) in [(&p2.mac, a), (&p3.mac, b)] {
        let line = dump.lines().find(|l| l.contains(mac.as_str())).unwrap();
        assert!(
            line.contains(&format!("load:{port:#x}->NXM_NX_REG0[0..15]"))
                && (line.contains("0x0014/0x0fff") || line.contains("dl_vlan=20")),
            "VLAN 20, MAC and port {port}: {line}"
        );
    }
    // Later pings are unicast: the VLAN 20 flood flow sees none of them.
    let floods = n_packets(&lab, "n1", &flood20);
    let (ok, out) = ping(&lab, "n1p2", p3.ip, 5, &[]);
    assert!(ok, "{out}");
    assert_eq!(
        n_packets(&lab, "n1", &flood20),
        floods,
        "no floods once learned"
    );

    // Different VLANs never reach each other.
    let (ok, out) = ping(&lab, "n1p2", p4.ip, 2, &[]);
    assert!(
        !ok && out.contains("0 received"),
        "VLAN 20 to VLAN 30:\n{out}"
    );

    let stats = lab.ctl("n1").unwrap().stats().unwrap();
    assert!(counter(&stats, "learn_queued") > 0);
}
