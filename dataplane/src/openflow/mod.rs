//! OpenFlow 1.3 and 1.4 on the switch side, so OVS's own `ovs-ofctl` (and any OpenFlow
//! controller) drives vxswitch unchanged.
//!
//! - [`msgs`]: encoders of the messages that carry no flows (hello, features, ports, tables);
//! - [`session`]: one connection's state machine, without I/O, over a [`Datapath`];
//! - [`listener`]: the management socket (`RUNDIR/BRIDGE.mgmt`), `ptcp:` and the
//!   connection out to a controller, with the control socket's access rules and limits.
//!
//! Flow mods, group mods and flow dumps go through the same flow store as `vxctl`, so each
//! sees the other's flows; the flow codec is `controlplane::openflow`.

pub mod listener;
pub mod msgs;
pub mod session;

pub use session::{Datapath, Session};

use controlplane::flow::{FlowMod, FlowSpec, FlowStats, GroupSpec, Match, TableStats};

use crate::switch::Switch;

impl Datapath for Switch {
    fn datapath_id(&self) -> u64 {
        // Stable for a bridge on a node: the VTEP's address bits, else 1.
        match self.vtep() {
            Some(std::net::IpAddr::V4(a)) => u64::from(u32::from(a)),
            Some(std::net::IpAddr::V6(a)) => u128::from(a) as u64 & 0xffff_ffff_ffff,
            None => 1,
        }
    }

    fn bridge(&self) -> String {
        self.state().bridge
    }

    fn ports(&self) -> Vec<msgs::PortInfo> {
        let state = self.state();
        self.stats()
            .ports
            .into_iter()
            .map(|p| msgs::PortInfo {
                no: u32::from(p.no),
                down: state
                    .ports
                    .iter()
                    .find(|s| s.no == p.no)
                    .is_some_and(|s| s.status != "up"),
                name: p.name,
                mac: [0; 6],
                rx_packets: p.rx_packets,
                rx_bytes: p.rx_bytes,
                tx_packets: p.tx_packets,
                tx_bytes: p.tx_bytes,
                tx_errors: p.tx_errors,
            })
            .collect()
    }

    fn flows(&self, table: Option<u8>, matches: &[Match]) -> Result<Vec<FlowStats>, String> {
        self.dump_flows(table, matches).map_err(|r| r.message)
    }

    fn tables(&self) -> Vec<TableStats> {
        self.dump_tables()
    }

    fn groups(&self) -> Vec<GroupSpec> {
        self.dump_groups(None)
    }

    fn flow_mods(&mut self, mods: &[FlowMod]) -> Result<(), String> {
        Switch::flow_mods(self, mods)
            .map(|_| ())
            .map_err(|r| r.message)
    }

    fn overlaps(&self, flow: &FlowSpec) -> bool {
        let resolve = self.resolver();
        let mut ms = flow.matches.clone();
        controlplane::flow_syntax::canonicalize(&mut ms);
        let Ok((v, m)) = crate::flow::key::compile_match(&ms, &resolve) else {
            return false;
        };
        let Ok(others) = self.dump_flows(Some(flow.table), &[]) else {
            return false;
        };
        others
            .iter()
            .filter(|o| o.spec.priority == flow.priority)
            .filter_map(|o| crate::flow::key::compile_match(&o.spec.matches, &resolve).ok())
            .any(|(ov, om)| (0..m.0.len()).all(|i| (v.0[i] ^ ov.0[i]) & m.0[i] & om.0[i] == 0))
    }

    fn uptime_s(&self) -> u32 {
        (crate::clock::now_ms() / 1000) as u32
    }
}
