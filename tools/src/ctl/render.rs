//! Human-readable views of the protocol's structures. Pure: structures in, text out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use controlplane::proto::{FdbRepr, FdbTarget, NamedCounter, PortKind, StateRepr, StatsRepr};

use super::table::Table;

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn kind(k: PortKind) -> &'static str {
    match k {
        PortKind::Tunnel => "tunnel",
        PortKind::Host => "host",
        PortKind::Pod => "pod",
    }
}

/// `vxctl show`.
pub fn show(s: &StateRepr) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bridge {}  table version {}  workers {}  vxlan udp port {}",
        s.bridge, s.table_version, s.workers, s.vxlan_port
    );
    out.push('\n');
    match &s.local {
        Some(l) => {
            let _ = writeln!(
                out,
                "local node {} (owner {})",
                l.name,
                or_dash(s.local_owner)
            );
            let mut t = Table::new(&["", "", ""]);
            t.row(["  vtep", &l.vtep.to_string(), ""]);
            t.row(["  vtep mac", &l.vtep_mac.to_string(), ""]);
            t.row(["  subnet", &l.subnet.to_string(), ""]);
            let derived = if l.gateway.is_none() {
                "(first host of the subnet)"
            } else {
                ""
            };
            t.row(["  gateway", &l.gateway().to_string(), derived]);
            if let (Some(s6), Some(gw6)) = (l.subnet6, l.gateway6()) {
                t.row(["  subnet6", &s6.to_string(), ""]);
                t.row(["  gateway6", &gw6.to_string(), "(first host of subnet6)"]);
            }
            t.row(["  vni", &l.vni.to_string(), ""]);
            t.row([
                "  pod mtu",
                &l.pod_mtu().to_string(),
                &format!("(underlay {})", l.underlay_mtu),
            ]);
            t.row(["  cluster", &l.cluster_network.to_string(), ""]);
            // Drop the (empty) header line.
            out.extend(t.render().lines().skip(1).map(|l| format!("{l}\n")));
        }
        None => out.push_str("local node: not configured (vxagent has not pushed one yet)\n"),
    }
    out.push('\n');

    let node_vni = s.local.as_ref().map(|l| l.vni);
    let mut ports: Vec<_> = s.ports.iter().collect();
    ports.sort_by_key(|p| p.no);
    let mut t = Table::new(&[
        "PORT", "NAME", "KIND", "DEVICE", "MAC", "IP", "VNID", "OWNER", "STATUS",
    ])
    .right(&[0]);
    let mut vnis: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for p in &ports {
        let spec = p.spec.as_ref().filter(|_| p.kind == PortKind::Pod);
        let vnid = spec.and_then(|s| s.vnid.or(node_vni));
        if let Some(v) = vnid {
            vnis.entry(v).or_default().push(&p.name);
        }
        t.row([
            p.no.to_string(),
            p.name.clone(),
            kind(p.kind).to_string(),
            p.device.clone(),
            or_dash(spec.map(|s| s.mac)),
            or_dash(spec.map(|s| match s.ip6 {
                Some(ip6) => format!("{} {ip6}", s.ip),
                None => s.ip.to_string(),
            })),
            or_dash(vnid),
            or_dash(p.owner),
            p.status.clone(),
        ]);
    }
    out.push_str(&t.render());
    out.push('\n');

    let mut t = Table::new(&["NODE", "VTEP", "VTEP-MAC", "SUBNET", "OWNER"]);
    for n in &s.nodes {
        t.row([
            n.spec.name.clone(),
            n.spec.vtep.to_string(),
            n.spec.vtep_mac.to_string(),
            match n.spec.subnet6 {
                Some(s6) => format!("{} {s6}", n.spec.subnet),
                None => n.spec.subnet.to_string(),
            },
            n.owner.to_string(),
        ]);
    }
    out.push_str(&t.render());
    out.push('\n');

    let mut t = Table::new(&["VNI", "PORTS"]).right(&[0]);
    for (vni, names) in vnis {
        t.row([vni.to_string(), names.join(",")]);
    }
    out.push_str(&t.render());
    out
}

/// `vxctl fdb`: entries sorted by VNI then MAC, then the routes.
pub fn fdb(f: &FdbRepr) -> String {
    let mut out = format!("table version {}\n\n", f.table_version);
    let mut entries: Vec<_> = f.entries.iter().collect();
    entries.sort_by_key(|e| (e.vni, e.mac));
    let mut t = Table::new(&["VNI", "MAC", "IP", "TARGET"]).right(&[0]);
    for e in entries {
        let target = match &e.target {
            FdbTarget::Port { no, name } => format!("port {no} {name}"),
            FdbTarget::Node { name, vtep } => format!("node {name} {vtep}"),
        };
        t.row([e.vni.to_string(), e.mac.to_string(), or_dash(e.ip), target]);
    }
    out.push_str(&t.render());
    out.push('\n');
    let mut t = Table::new(&["SUBNET", "NODE", "VTEP", "VTEP-MAC"]);
    for r in &f.routes {
        t.row([
            r.subnet.to_string(),
            r.node.clone(),
            r.vtep.to_string(),
            r.vtep_mac.to_string(),
        ]);
    }
    out.push_str(&t.render());
    out
}

/// The previous sample, for rates.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    pub stats: &'a StatsRepr,
    pub elapsed: Duration,
}

/// A per-second rate, or "-" when there is no earlier sample or the counter went backwards
/// (vxswitchd restarted).
fn rate(cur: u64, prev: Option<u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    match prev {
        Some(p) if cur >= p && secs > 0.0 => {
            let r = (cur - p) as f64 / secs;
            if r < 100.0 {
                format!("{r:.1}")
            } else {
                format!("{r:.0}")
            }
        }
        _ => "-".to_string(),
    }
}

fn counters(
    title: &str,
    cur: &[NamedCounter],
    rates: Option<Option<Previous<'_>>>,
    pick: fn(&StatsRepr) -> &[NamedCounter],
) -> String {
    let mut headers = vec![title, "COUNT"];
    if rates.is_some() {
        headers.push("PER-SEC");
    }
    let mut t = Table::new(&headers).right(&[1, 2]);
    for c in cur {
        let mut row = vec![c.name.clone(), c.value.to_string()];
        if let Some(prev) = rates {
            let before = prev.and_then(|p| {
                pick(p.stats)
                    .iter()
                    .find(|o| o.name == c.name)
                    .map(|o| o.value)
            });
            row.push(rate(
                c.value,
                before,
                prev.map_or(Duration::ZERO, |p| p.elapsed),
            ));
        }
        t.row(row);
    }
    t.render()
}

/// `vxctl stats`. `rates` is `None` for a single look; with `--watch` it is `Some(previous
/// sample)` (`Some(None)` on the first redraw) and per-second columns are added.
pub fn stats(s: &StatsRepr, rates: Option<Option<Previous<'_>>>) -> String {
    let mut out = format!(
        "table version {}  workers {}\n\n",
        s.table_version, s.workers
    );
    let mut headers = vec![
        "PORT", "NAME", "RX-PKTS", "RX-BYTES", "TX-PKTS", "TX-BYTES", "TX-ERR",
    ];
    if rates.is_some() {
        headers.extend(["RX-PKT/S", "RX-BYTE/S", "TX-PKT/S", "TX-BYTE/S"]);
    }
    let mut t = Table::new(&headers).right(&[0, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    let mut ports: Vec<_> = s.ports.iter().collect();
    ports.sort_by_key(|p| p.no);
    for p in ports {
        let mut row = vec![
            p.no.to_string(),
            p.name.clone(),
            p.rx_packets.to_string(),
            p.rx_bytes.to_string(),
            p.tx_packets.to_string(),
            p.tx_bytes.to_string(),
            p.tx_errors.to_string(),
        ];
        if let Some(prev) = rates {
            let before = prev.and_then(|q| {
                q.stats
                    .ports
                    .iter()
                    .find(|o| o.no == p.no && o.name == p.name)
            });
            let elapsed = prev.map_or(Duration::ZERO, |q| q.elapsed);
            row.push(rate(p.rx_packets, before.map(|b| b.rx_packets), elapsed));
            row.push(rate(p.rx_bytes, before.map(|b| b.rx_bytes), elapsed));
            row.push(rate(p.tx_packets, before.map(|b| b.tx_packets), elapsed));
            row.push(rate(p.tx_bytes, before.map(|b| b.tx_bytes), elapsed));
        }
        t.row(row);
    }
    out.push_str(&t.render());
    out.push('\n');
    out.push_str(&counters("DROP-REASON", &s.drops, rates, |s| &s.drops));
    out.push('\n');
    out.push_str(&counters("EVENT", &s.events, rates, |s| &s.events));
    out
}

#[cfg(test)]
mod tests {
    use controlplane::proto::*;

    use super::*;

    fn state() -> StateRepr {
        let pod =
            |no: u16, name: &str, ip: &str, mac: &str, vnid: Option<u32>, owner: Owner| PortState {
                no,
                name: name.into(),
                kind: PortKind::Pod,
                device: format!("eth0@{name}"),
                owner: Some(owner),
                spec: Some(PortSpec {
                    name: name.into(),
                    netns: name.into(),
                    mac: mac.parse().unwrap(),
                    ip: ip.parse().unwrap(),
                    ip6: None,
                    vnid,
                    ifname: None,
                    mtu: None,
                }),
                status: "up".into(),
            };
        StateRepr {
            bridge: "br0".into(),
            table_version: 7,
            local: Some(LocalNode {
                name: "n1".into(),
                vtep: "198.51.100.1".parse().unwrap(),
                vtep_mac: "02:f1:00:00:00:01".parse().unwrap(),
                subnet: "10.1.1.0/24".parse().unwrap(),
                gateway: None,
                vni: 1,
                cluster_network: "10.1.0.0/16".parse().unwrap(),
                underlay_mtu: 1500,
                subnet6: None,
            }),
            local_owner: Some(Owner::Agent),
            ports: vec![
                pod(
                    4,
                    "n1p2",
                    "10.1.1.3",
                    "0a:58:0a:01:01:03",
                    None,
                    Owner::Admin,
                ),
                PortState {
                    no: 1,
                    name: "vxlan0".into(),
                    kind: PortKind::Tunnel,
                    device: "udp/4789".into(),
                    owner: None,
                    spec: None,
                    status: "up".into(),
                },
                PortState {
                    no: 2,
                    name: "vxhost0".into(),
                    kind: PortKind::Host,
                    device: "vxhost0".into(),
                    owner: None,
                    spec: None,
                    status: "up".into(),
                },
                pod(
                    3,
                    "n1p1",
                    "10.1.1.2",
                    "0a:58:0a:01:01:02",
                    Some(10),
                    Owner::Agent,
                ),
                pod(
                    5,
                    "n1p3",
                    "10.1.1.4",
                    "0a:58:0a:01:01:04",
                    Some(10),
                    Owner::Agent,
                ),
            ],
            nodes: vec![NodeState {
                owner: Owner::Agent,
                spec: RemoteNode {
                    name: "n2".into(),
                    vtep: "198.51.100.2".parse().unwrap(),
                    vtep_mac: "02:f1:00:00:00:02".parse().unwrap(),
                    subnet: "10.1.2.0/24".parse().unwrap(),
                    subnet6: None,
                },
            }],
            vxlan_port: 4789,
            workers: 2,
        }
    }

    #[test]
    fn show_renders_every_section() {
        let text = show(&state());
        let expected = "\
bridge br0  table version 7  workers 2  vxlan udp port 4789

local node n1 (owner agent)
  vtep      198.51.100.1
  vtep mac  02:f1:00:00:00:01
  subnet    10.1.1.0/24
  gateway   10.1.1.1           (first host of the subnet)
  vni       1
  pod mtu   1450               (underlay 1500)
  cluster   10.1.0.0/16

PORT  NAME     KIND    DEVICE     MAC                IP        VNID  OWNER  STATUS
   1  vxlan0   tunnel  udp/4789   -                  -         -     -      up
   2  vxhost0  host    vxhost0    -                  -         -     -      up
   3  n1p1     pod     eth0@n1p1  0a:58:0a:01:01:02  10.1.1.2  10    agent  up
   4  n1p2     pod     eth0@n1p2  0a:58:0a:01:01:03  10.1.1.3  1     admin  up
   5  n1p3     pod     eth0@n1p3  0a:58:0a:01:01:04  10.1.1.4  10    agent  up

NODE  VTEP          VTEP-MAC           SUBNET       OWNER
n2    198.51.100.2  02:f1:00:00:00:02  10.1.2.0/24  agent

VNI  PORTS
  1  n1p2
 10  n1p1,n1p3
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn show_lists_ipv6_prefixes_and_addresses_of_dual_stack_nodes() {
        let mut s = state();
        if let Some(l) = s.local.as_mut() {
            l.subnet6 = Some("fd00:10:1:1::/64".parse().unwrap());
        }
        for p in &mut s.ports {
            if let Some(spec) = p.spec.as_mut() {
                spec.ip6 = Some("fd00:10:1:1::2".parse().unwrap());
            }
        }
        s.nodes[0].spec.subnet6 = Some("fd00:10:1:2::/64".parse().unwrap());
        let text = show(&s);
        assert!(text.contains("subnet6   fd00:10:1:1::/64"), "{text}");
        assert!(text.contains("gateway6  fd00:10:1:1::1"), "{text}");
        assert!(text.contains("fd00:10:1:1::2"), "{text}");
        assert!(text.contains("10.1.2.0/24 fd00:10:1:2::/64"), "{text}");
        assert!(
            !show(&state()).contains("subnet6"),
            "IPv4-only nodes print as before"
        );
    }

    #[test]
    fn show_without_a_local_node() {
        let mut s = state();
        s.local = None;
        let text = show(&s);
        assert!(text.contains("local node: not configured"), "{text}");
        // Pods without their own VNID have none to show.
        assert!(text.contains("VNI  PORTS\n 10  n1p1,n1p3\n"), "{text}");
    }

    #[test]
    fn fdb_sorts_entries_and_lists_routes() {
        let f = FdbRepr {
            table_version: 3,
            entries: vec![
                FdbEntry {
                    vni: 10,
                    mac: "0a:58:0a:01:02:02".parse().unwrap(),
                    ip: Some("10.1.2.2".parse().unwrap()),
                    target: FdbTarget::Node {
                        name: "n2".into(),
                        vtep: "198.51.100.2".parse().unwrap(),
                    },
                },
                FdbEntry {
                    vni: 1,
                    mac: "0a:58:0a:01:01:02".parse().unwrap(),
                    ip: None,
                    target: FdbTarget::Port {
                        no: 3,
                        name: "n1p1".into(),
                    },
                },
            ],
            routes: vec![RouteEntry {
                subnet: "10.1.2.0/24".parse().unwrap(),
                node: "n2".into(),
                vtep: "198.51.100.2".parse().unwrap(),
                vtep_mac: "02:f1:00:00:00:02".parse().unwrap(),
            }],
        };
        assert_eq!(
            fdb(&f),
            "\
table version 3

VNI  MAC                IP        TARGET
  1  0a:58:0a:01:01:02  -         port 3 n1p1
 10  0a:58:0a:01:02:02  10.1.2.2  node n2 198.51.100.2

SUBNET       NODE  VTEP          VTEP-MAC
10.1.2.0/24  n2    198.51.100.2  02:f1:00:00:00:02
"
        );
    }

    fn sample(rx: u64, drops: u64) -> StatsRepr {
        StatsRepr {
            table_version: 1,
            ports: vec![PortCounters {
                no: 3,
                name: "n1p1".into(),
                rx_packets: rx,
                rx_bytes: rx * 100,
                tx_packets: 0,
                tx_bytes: 0,
                tx_errors: 0,
            }],
            drops: vec![
                NamedCounter {
                    name: "no_route".into(),
                    value: drops,
                },
                NamedCounter {
                    name: "bad_vni".into(),
                    value: 0,
                },
            ],
            events: vec![NamedCounter {
                name: "icmp_frag_needed".into(),
                value: 0,
            }],
            workers: 1,
        }
    }

    #[test]
    fn stats_once_lists_zeros_too() {
        assert_eq!(
            stats(&sample(5, 2), None),
            "\
table version 1  workers 1

PORT  NAME  RX-PKTS  RX-BYTES  TX-PKTS  TX-BYTES  TX-ERR
   3  n1p1        5       500        0         0       0

DROP-REASON  COUNT
no_route         2
bad_vni          0

EVENT             COUNT
icmp_frag_needed      0
"
        );
    }

    #[test]
    fn stats_watch_adds_rates() {
        let first = stats(&sample(5, 2), Some(None));
        assert!(first.contains("RX-PKT/S"), "{first}");
        assert!(
            first.contains(
                "500        0         0       0         -          -         -          -"
            ),
            "{first}"
        );
        let prev = sample(5, 2);
        let text = stats(
            &sample(25, 3),
            Some(Some(Previous {
                stats: &prev,
                elapsed: Duration::from_secs(2),
            })),
        );
        let row = text.lines().find(|l| l.contains("n1p1")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[7..], ["10.0", "1000", "0.0", "0.0"], "{text}");
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().eq(["no_route", "3", "0.5"])),
            "{text}"
        );
        // A counter that went backwards (daemon restart) has no rate.
        let text = stats(
            &sample(1, 0),
            Some(Some(Previous {
                stats: &prev,
                elapsed: Duration::from_secs(1),
            })),
        );
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().eq(["no_route", "0", "-"])),
            "{text}"
        );
    }
}
