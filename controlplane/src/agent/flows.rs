//! The agent's flows: the set its file implies, and the one bundle that makes the switch's
//! agent flows equal to it. Pure: no I/O.
//!
//! The agent owns exactly the flows whose cookie is [`AGENT_COOKIE`]. Flows with any other
//! cookie (an admin's) are never deleted or replaced; a desired flow whose rule (table,
//! priority, match) an admin flow already holds is left out and reported as a conflict.
//!
//! Without `multitenant` the agent installs one flow, `table=0,priority=0,actions=normal`: the
//! switch's built-in forwarding does everything. With `multitenant` it installs
//! OpenShift-SDN's model (ports named as the switch names them):
//!
//! ```text
//! table=0,priority=300,in_port=vxlan0,tun_src=VTEP            actions=goto_table:10  (each node)
//! table=0,priority=290,in_port=vxlan0                          actions=drop           (underlay filter)
//! table=0,priority=300,in_port=vxhost0                         actions=goto_table:10
//! table=0,priority=300,in_port=POD,dl_src=MAC,ip,nw_src=IP     actions=goto_table:10  (each pod)
//! table=0,priority=300,in_port=POD,dl_src=MAC,arp,arp_spa=IP,arp_sha=MAC actions=goto_table:10
//! table=0,priority=290,in_port=POD                             actions=drop           (port security)
//! table=0,priority=0                                           actions=drop
//! table=10,priority=0                                          actions=normal         (VNIDs enforced)
//! ```

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use crate::flow_syntax::{canonicalize, format_flow};
use crate::proto::{FlowAction, FlowMod, FlowSpec, MacAddr, Match, PortRef, AGENT_COOKIE};

use super::config::AgentConfig;

/// Table of the multitenant model's forwarding stage.
pub const TABLE_FORWARD: u8 = 10;
/// Priority of the flows that admit traffic.
pub const PRIORITY_ALLOW: u16 = 300;
/// Priority of the flows that drop what the allow flows did not admit.
pub const PRIORITY_DENY: u16 = 290;
/// The tunnel and host ports, by the names the switch gives them.
pub const TUNNEL_PORT: &str = "vxlan0";
pub const HOST_PORT: &str = "vxhost0";

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const MAC_EXACT: MacAddr = MacAddr([0xff; 6]);
const IPV4_EXACT: Ipv4Addr = Ipv4Addr::BROADCAST;

/// What to push, and what had to be left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowPlan {
    /// Deletions (strict, agent cookie only) first, then additions; one bundle.
    pub mods: Vec<FlowMod>,
    /// Desired flows not pushed because a flow with another cookie holds the same rule.
    pub conflicts: Vec<String>,
}

impl FlowPlan {
    pub fn is_noop(&self) -> bool {
        self.mods.is_empty()
    }
}

/// An agent flow, its match canonicalised so that it compares equal to what the switch
/// reports.
fn flow(table: u8, priority: u16, mut matches: Vec<Match>, action: FlowAction) -> FlowSpec {
    canonicalize(&mut matches);
    FlowSpec {
        table,
        priority,
        cookie: AGENT_COOKIE,
        idle_timeout: 0,
        hard_timeout: 0,
        matches,
        actions: vec![action],
    }
}

fn in_port(name: &str) -> Match {
    Match::InPort {
        port: PortRef::Name(name.to_string()),
    }
}

fn goto_forward() -> FlowAction {
    FlowAction::GotoTable {
        table: TABLE_FORWARD,
    }
}

/// The flows the file implies. `skip` names pods to leave out (their port is not the agent's:
/// a flow naming it would police another owner's port, or name a port that does not exist).
pub fn desired(cfg: &AgentConfig, skip: &HashSet<&str>) -> Vec<FlowSpec> {
    if !cfg.multitenant {
        return vec![flow(0, 0, vec![], FlowAction::Normal)];
    }
    let mut out = Vec::new();
    // Underlay filter: only the VTEPs of known nodes may send into the overlay. Config
    // validation makes multitenant underlays IPv4.
    for n in &cfg.nodes {
        if let IpAddr::V4(vtep) = n.vtep {
            out.push(flow(
                0,
                PRIORITY_ALLOW,
                vec![
                    in_port(TUNNEL_PORT),
                    Match::TunSrc {
                        value: vtep,
                        mask: IPV4_EXACT,
                    },
                ],
                goto_forward(),
            ));
        }
    }
    out.push(flow(
        0,
        PRIORITY_DENY,
        vec![in_port(TUNNEL_PORT)],
        FlowAction::Drop,
    ));
    out.push(flow(
        0,
        PRIORITY_ALLOW,
        vec![in_port(HOST_PORT)],
        goto_forward(),
    ));
    // Port security: a pod may send IPv4 and ARP only from its own MAC and IP.
    for p in cfg.pods.iter().filter(|p| !skip.contains(p.name.as_str())) {
        let src_mac = Match::DlSrc {
            value: p.mac,
            mask: MAC_EXACT,
        };
        out.push(flow(
            0,
            PRIORITY_ALLOW,
            vec![
                in_port(&p.name),
                src_mac.clone(),
                Match::DlType {
                    value: ETHERTYPE_IPV4,
                },
                Match::NwSrc {
                    value: p.ip,
                    mask: IPV4_EXACT,
                },
            ],
            goto_forward(),
        ));
        out.push(flow(
            0,
            PRIORITY_ALLOW,
            vec![
                in_port(&p.name),
                src_mac,
                Match::DlType {
                    value: ETHERTYPE_ARP,
                },
                Match::ArpSpa {
                    value: p.ip,
                    mask: IPV4_EXACT,
                },
                Match::ArpSha {
                    value: p.mac,
                    mask: MAC_EXACT,
                },
            ],
            goto_forward(),
        ));
        out.push(flow(
            0,
            PRIORITY_DENY,
            vec![in_port(&p.name)],
            FlowAction::Drop,
        ));
    }
    out.push(flow(0, 0, vec![], FlowAction::Drop));
    // The built-in forwarding enforces VNIDs: same VNID, or either is 0.
    out.push(flow(TABLE_FORWARD, 0, vec![], FlowAction::Normal));
    out
}

/// The bundle that makes the switch's agent flows equal to `want`. `have` is every flow the
/// switch reports (any cookie); only those with [`AGENT_COOKIE`] are deleted or replaced.
pub fn plan(want: &[FlowSpec], have: &[FlowSpec]) -> FlowPlan {
    let mut p = FlowPlan::default();
    // Compare canonical matches, but delete with the switch's own (strict deletes are exact).
    let canon = |f: &FlowSpec| {
        let mut c = f.clone();
        canonicalize(&mut c.matches);
        c
    };
    let ours: Vec<(&FlowSpec, FlowSpec)> = have
        .iter()
        .filter(|f| f.cookie == AGENT_COOKIE)
        .map(|f| (f, canon(f)))
        .collect();
    let foreign: Vec<FlowSpec> = have
        .iter()
        .filter(|f| f.cookie != AGENT_COOKIE)
        .map(canon)
        .collect();

    for (raw, c) in &ours {
        if !want.iter().any(|w| w.same_rule(c)) {
            p.mods.push(FlowMod::Delete {
                table: Some(raw.table),
                priority: Some(raw.priority),
                matches: raw.matches.clone(),
                strict: true,
                cookie: Some((AGENT_COOKIE, u64::MAX)),
            });
        }
    }
    let mut seen: Vec<&FlowSpec> = Vec::new();
    for w in want {
        // The same rule twice in the desired set: the first one wins.
        if seen.iter().any(|s| s.same_rule(w)) {
            continue;
        }
        seen.push(w);
        if ours.iter().any(|(_, c)| c == w) {
            continue;
        }
        if let Some(f) = foreign.iter().find(|f| f.same_rule(w)) {
            // Another owner's flow that does exactly what ours would (the switch's built-in
            // `priority=0,actions=normal` under cookie 0, say) is no conflict: nothing to do.
            let mut same = f.clone();
            same.cookie = w.cookie;
            if same == *w {
                continue;
            }
            p.conflicts.push(format!(
                "flow {} is held by a flow with cookie {:#x}; not adding it",
                format_flow(w),
                f.cookie
            ));
            continue;
        }
        p.mods.push(FlowMod::Add {
            flow: w.clone(),
            reset_counts: false,
        });
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::config::parse;
    use crate::proto::FlowMod;

    const FILE: &str = r#"[node]
name = "n1"
vtep = "198.51.100.1"
vtep_mac = "02:f1:00:00:00:01"
subnet = "10.1.1.0/24"
MULTI

[[pods]]
name = "n1p1"
netns = "lab-n1p1"
mac = "0a:58:0a:01:01:02"
ip = "10.1.1.2"
vnid = 10

[[nodes]]
name = "n2"
vtep = "198.51.100.2"
vtep_mac = "02:f1:00:00:00:02"
subnet = "10.1.2.0/24"

[[nodes]]
name = "n3"
vtep = "198.51.100.3"
vtep_mac = "02:f1:00:00:00:03"
subnet = "10.1.3.0/24"
"#;

    fn cfg(multi: &str) -> AgentConfig {
        parse("a.toml", &FILE.replace("MULTI", multi)).unwrap()
    }

    fn texts(flows: &[FlowSpec]) -> Vec<String> {
        flows.iter().map(format_flow).collect()
    }

    fn mt() -> Vec<FlowSpec> {
        desired(&cfg("multitenant = true"), &HashSet::new())
    }

    #[test]
    fn the_switchs_own_default_flow_is_no_conflict_but_a_different_one_is() {
        let want = desired(&cfg(""), &HashSet::new());
        let mut builtin = want[0].clone();
        builtin.cookie = 0;
        let p = plan(&want, std::slice::from_ref(&builtin));
        assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
        assert!(p.mods.is_empty(), "nothing to add: {:?}", p.mods);

        let mut other = builtin.clone();
        other.actions = Vec::new();
        let p = plan(&want, &[other]);
        assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
        assert!(p.mods.is_empty());
    }

    #[test]
    fn single_tenant_is_one_normal_flow() {
        for c in [cfg(""), cfg("multitenant = false")] {
            assert!(!c.multitenant);
            let d = desired(&c, &HashSet::new());
            assert_eq!(
                d,
                vec![FlowSpec {
                    table: 0,
                    priority: 0,
                    cookie: AGENT_COOKIE,
                    idle_timeout: 0,
                    hard_timeout: 0,
                    matches: vec![],
                    actions: vec![FlowAction::Normal],
                }]
            );
        }
    }

    #[test]
    fn multitenant_flows_follow_openshift_sdn() {
        let d = mt();
        assert!(d.iter().all(|f| f.cookie == AGENT_COOKIE));
        let goto = vec![FlowAction::GotoTable { table: 10 }];
        let find = |table: u8, priority: u16, m: &[Match]| {
            let mut m = m.to_vec();
            canonicalize(&mut m);
            d.iter()
                .find(|f| f.table == table && f.priority == priority && f.matches == m)
                .unwrap_or_else(|| panic!("no flow {table}/{priority}/{m:?} in {:#?}", texts(&d)))
                .actions
                .clone()
        };
        let tun = in_port("vxlan0");
        for vtep in ["198.51.100.2", "198.51.100.3"] {
            let ts = Match::TunSrc {
                value: vtep.parse().unwrap(),
                mask: IPV4_EXACT,
            };
            assert_eq!(find(0, 300, &[tun.clone(), ts]), goto);
        }
        assert_eq!(find(0, 290, &[tun]), vec![FlowAction::Drop]);
        assert_eq!(find(0, 300, &[in_port("vxhost0")]), goto);
        let mac: MacAddr = "0a:58:0a:01:01:02".parse().unwrap();
        let ip: Ipv4Addr = "10.1.1.2".parse().unwrap();
        let pod = in_port("n1p1");
        let dl_src = Match::DlSrc {
            value: mac,
            mask: MAC_EXACT,
        };
        assert_eq!(
            find(
                0,
                300,
                &[
                    pod.clone(),
                    dl_src.clone(),
                    Match::DlType { value: 0x0800 },
                    Match::NwSrc {
                        value: ip,
                        mask: IPV4_EXACT
                    }
                ]
            ),
            goto
        );
        assert_eq!(
            find(
                0,
                300,
                &[
                    pod.clone(),
                    dl_src,
                    Match::DlType { value: 0x0806 },
                    Match::ArpSpa {
                        value: ip,
                        mask: IPV4_EXACT
                    },
                    Match::ArpSha {
                        value: mac,
                        mask: MAC_EXACT
                    }
                ]
            ),
            goto
        );
        assert_eq!(find(0, 290, &[pod]), vec![FlowAction::Drop]);
        assert_eq!(find(0, 0, &[]), vec![FlowAction::Drop]);
        assert_eq!(find(10, 0, &[]), vec![FlowAction::Normal]);
        // 2 nodes + tunnel drop + host + 3 per pod + 2 defaults.
        assert_eq!(d.len(), 2 + 1 + 1 + 3 + 2, "{:#?}", texts(&d));
        // Canonical: the same flows built again (in another order) compare equal.
        for f in &d {
            let mut m = f.matches.clone();
            m.reverse();
            canonicalize(&mut m);
            assert_eq!(m, f.matches);
        }
        // A skipped pod gets no flows.
        let skip: HashSet<&str> = ["n1p1"].into();
        let d = desired(&cfg("multitenant = true"), &skip);
        assert_eq!(d.len(), 6);
        assert!(!texts(&d).iter().any(|t| t.contains("n1p1")));
    }

    fn admin(priority: u16, actions: Vec<FlowAction>) -> FlowSpec {
        FlowSpec {
            table: 0,
            priority,
            cookie: 0x1234,
            idle_timeout: 0,
            hard_timeout: 0,
            matches: vec![in_port("n1p1")],
            actions,
        }
    }

    fn adds(p: &FlowPlan) -> Vec<FlowSpec> {
        p.mods
            .iter()
            .filter_map(|m| match m {
                FlowMod::Add { flow, .. } => Some(flow.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_empty_switch_gets_every_flow_and_a_second_pass_is_a_noop() {
        let want = mt();
        let p = plan(&want, &[]);
        assert_eq!(adds(&p), want);
        assert_eq!(p.mods.len(), want.len());
        assert!(p.conflicts.is_empty());
        // The switch now has them (and an admin flow): nothing to do.
        let mut have = want.clone();
        have.push(admin(500, vec![FlowAction::Drop]));
        assert!(plan(&want, &have).is_noop());
        // Non-canonical order in the switch's answer is no difference either.
        for f in &mut have {
            f.matches.reverse();
        }
        assert!(plan(&want, &have).is_noop(), "{:?}", plan(&want, &have));
    }

    #[test]
    fn stale_agent_flows_go_changed_ones_are_replaced_admin_flows_stay() {
        let single = desired(&cfg(""), &HashSet::new());
        let mut have = mt();
        // An agent flow with other actions than wanted; an admin flow of every kind.
        have.push(admin(500, vec![FlowAction::Drop]));
        have.push(admin(400, vec![FlowAction::Normal]));
        let p = plan(&single, &have);
        // table=0,priority=0 exists with actions=drop: replaced by an add, not deleted.
        assert_eq!(adds(&p), single);
        let deleted: Vec<(Option<u8>, Option<u16>, Vec<Match>)> = p
            .mods
            .iter()
            .filter_map(|m| match m {
                FlowMod::Delete {
                    table,
                    priority,
                    matches,
                    strict,
                    cookie,
                } => {
                    assert!(*strict);
                    assert_eq!(*cookie, Some((AGENT_COOKIE, u64::MAX)));
                    Some((*table, *priority, matches.clone()))
                }
                _ => None,
            })
            .collect();
        // Every agent flow but table=0,priority=0 is deleted, and nothing of the admin's.
        let expect: Vec<_> = mt()
            .into_iter()
            .filter(|f| !(f.table == 0 && f.priority == 0))
            .map(|f| (Some(f.table), Some(f.priority), f.matches))
            .collect();
        assert_eq!(deleted, expect);
        // Deletions come before additions.
        let first_add = p.mods.iter().position(|m| matches!(m, FlowMod::Add { .. }));
        assert_eq!(first_add, Some(p.mods.len() - 1));
    }

    #[test]
    fn a_rule_held_by_an_admin_flow_is_a_conflict() {
        let want = mt();
        // The admin holds the pod's priority-290 drop rule (with other actions).
        let have = vec![admin(290, vec![FlowAction::Normal])];
        let p = plan(&want, &have);
        assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
        assert!(
            p.conflicts[0].contains("cookie 0x1234"),
            "{:?}",
            p.conflicts
        );
        assert_eq!(adds(&p).len(), want.len() - 1);
        assert!(p.mods.iter().all(|m| !matches!(m, FlowMod::Delete { .. })));
    }

    #[test]
    fn multitenant_needs_an_ipv4_underlay() {
        let text = FILE
            .replace("MULTI", "multitenant = true")
            .replace("198.51.100.1", "2001:db8::1")
            .replace("198.51.100.2", "2001:db8::2")
            .replace("198.51.100.3", "2001:db8::3");
        let e = parse("a.toml", &text).unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("IPv4 underlay"), "{e}");
        let e = parse("a.toml", &FILE.replace("MULTI", "multitenant = 1")).unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
    }
}
