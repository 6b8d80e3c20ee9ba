//! One reconcile: read vxswitchd's state, plan, push the plan as one batch; then read the
//! flows, plan the agent's flows, push them as one bundle.

use std::collections::HashSet;
use std::thread;
use std::time::Duration;

use crate::client::Client;
use crate::proto::{Change, ErrorCode, FlowMod, FlowSpec, Owner, Request, Response};
use crate::Error;

use super::config::AgentConfig;
use super::diff::plan;
use super::flows;

/// How many times a batch refused for a stale table version is re-planned and re-sent.
pub const MAX_ATTEMPTS: u32 = 5;

/// What one reconcile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Changes pushed, objects and flow changes together (0: vxswitchd already matched, or
    /// the plans were held back as stuck).
    pub pushed: usize,
    /// Of `pushed`, the flow changes (one bundle of adds and strict deletes).
    pub flow_changes: usize,
    /// The table version after the reconcile.
    pub version: u64,
    /// The table version right after the object batch (before the flow bundle).
    pub objects_version: u64,
    /// Declared objects and agent flows left out because they collide with objects or flows
    /// of another owner.
    pub conflicts: Vec<String>,
    /// The same non-empty plan (objects or flows) came back right after it was applied with
    /// nobody else changing the tables: vxswitchd does not converge on it, so it was not
    /// pushed again.
    pub stuck: bool,
}

/// Reconciles vxswitchd with the file, remembering the last pushes to avoid pushing the same
/// batch in a loop when the daemon reports objects or flows differently than they were sent.
#[derive(Debug, Default)]
pub struct Reconciler {
    last_push: Option<(Vec<Change>, u64)>,
    last_flow_push: Option<(Vec<FlowMod>, u64)>,
}

impl Reconciler {
    pub fn new() -> Reconciler {
        Reconciler::default()
    }

    /// Forgets the last pushes (after a reconnect, the daemon's state is new).
    pub fn reset(&mut self) {
        self.last_push = None;
        self.last_flow_push = None;
    }

    /// Reads the state, plans, and applies the plan in one batch as [`Owner::Agent`] with the
    /// table version it was planned against; re-plans when another client changed the tables
    /// in between (bounded by [`MAX_ATTEMPTS`]). Then brings the agent's flows (cookie
    /// [`crate::proto::AGENT_COOKIE`]) in line, in one `FlowMods` bundle, after the ports they
    /// name exist.
    pub fn reconcile(
        &mut self,
        client: &mut Client,
        desired: &AgentConfig,
    ) -> Result<Outcome, Error> {
        let mut attempt = 0;
        let (mut out, skipped) = loop {
            attempt += 1;
            let state = client.state()?;
            let p = plan(desired, &state);
            let mut out = Outcome {
                pushed: 0,
                flow_changes: 0,
                version: state.table_version,
                objects_version: state.table_version,
                conflicts: p.conflicts,
                stuck: false,
            };
            if p.changes.is_empty() {
                break (out, p.skipped_pods);
            }
            if self.last_push.as_ref() == Some(&(p.changes.clone(), state.table_version)) {
                out.stuck = true;
                break (out, p.skipped_pods);
            }
            let n = p.changes.len();
            match client.apply(Owner::Agent, Some(state.table_version), p.changes.clone()) {
                Ok(version) => {
                    self.last_push = Some((p.changes, version));
                    out.pushed = n;
                    out.version = version;
                    out.objects_version = version;
                    break (out, p.skipped_pods);
                }
                Err(Error::Refused {
                    code: ErrorCode::VersionMismatch,
                    ..
                }) if attempt < MAX_ATTEMPTS => {
                    thread::sleep(Duration::from_millis(10 * u64::from(attempt)));
                }
                Err(e) => return Err(e),
            }
        };
        self.reconcile_flows(client, desired, &skipped, &mut out)?;
        Ok(out)
    }

    fn reconcile_flows(
        &mut self,
        client: &mut Client,
        desired: &AgentConfig,
        skipped: &[String],
        out: &mut Outcome,
    ) -> Result<(), Error> {
        let skip: HashSet<&str> = skipped.iter().map(String::as_str).collect();
        let want = flows::desired(desired, &skip);
        let (version, have) = dump_flows(client)?;
        out.version = version;
        let p = flows::plan(&want, &have);
        out.conflicts.extend(p.conflicts);
        if p.mods.is_empty() {
            return Ok(());
        }
        if self.last_flow_push.as_ref() == Some(&(p.mods.clone(), version)) {
            out.stuck = true;
            return Ok(());
        }
        let n = p.mods.len();
        let new = flow_mods(client, p.mods.clone())?;
        // The object push just before is still the last change: keep recognising it.
        if let Some((_, v)) = self.last_push.as_mut().filter(|(_, v)| *v == version) {
            *v = new;
        }
        self.last_flow_push = Some((p.mods, new));
        out.pushed += n;
        out.flow_changes = n;
        out.version = new;
        Ok(())
    }
}

/// Every flow in the switch, with the table version it was read at.
fn dump_flows(client: &mut Client) -> Result<(u64, Vec<FlowSpec>), Error> {
    let req = Request::DumpFlows {
        table: None,
        matches: Vec::new(),
    };
    match client.call(&req)? {
        Response::Flows {
            table_version,
            flows,
        } => Ok((table_version, flows.into_iter().map(|f| f.spec).collect())),
        other => Err(Error::Unexpected(format!("{other:?}"))),
    }
}

/// Applies one bundle; returns the new table version.
fn flow_mods(client: &mut Client, mods: Vec<FlowMod>) -> Result<u64, Error> {
    match client.call(&Request::FlowMods { mods })? {
        Response::Applied { version } => Ok(version),
        other => Err(Error::Unexpected(format!("{other:?}"))),
    }
}

/// One reconcile without memory; see [`Reconciler::reconcile`].
pub fn reconcile(client: &mut Client, desired: &AgentConfig) -> Result<Outcome, Error> {
    Reconciler::new().reconcile(client, desired)
}
