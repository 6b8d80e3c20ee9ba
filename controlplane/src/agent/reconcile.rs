//! One reconcile: read vxswitchd's state, plan, push the plan as one batch.

use std::thread;
use std::time::Duration;

use crate::client::Client;
use crate::proto::{Change, ErrorCode, Owner};
use crate::Error;

use super::config::AgentConfig;
use super::diff::plan;

/// How many times a batch refused for a stale table version is re-planned and re-sent.
pub const MAX_ATTEMPTS: u32 = 5;

/// What one reconcile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Changes pushed (0: vxswitchd already matched, or the plan was held back as stuck).
    pub pushed: usize,
    /// The table version after the reconcile.
    pub version: u64,
    /// Declared objects left out because they collide with objects of another owner.
    pub conflicts: Vec<String>,
    /// The same non-empty plan came back right after it was applied with nobody else changing
    /// the tables: vxswitchd does not converge on it, so it was not pushed again.
    pub stuck: bool,
}

/// Reconciles vxswitchd with the file, remembering the last push to avoid pushing the same
/// batch in a loop when the daemon reports objects differently than they were sent.
#[derive(Debug, Default)]
pub struct Reconciler {
    last_push: Option<(Vec<Change>, u64)>,
}

impl Reconciler {
    pub fn new() -> Reconciler {
        Reconciler::default()
    }

    /// Forgets the last push (after a reconnect, the daemon's state is new).
    pub fn reset(&mut self) {
        self.last_push = None;
    }

    /// Reads the state, plans, and applies the plan in one batch as [`Owner::Agent`] with the
    /// table version it was planned against; re-plans when another client changed the tables
    /// in between (bounded by [`MAX_ATTEMPTS`]).
    pub fn reconcile(
        &mut self,
        client: &mut Client,
        desired: &AgentConfig,
    ) -> Result<Outcome, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let state = client.state()?;
            let p = plan(desired, &state);
            let mut out = Outcome {
                pushed: 0,
                version: state.table_version,
                conflicts: p.conflicts,
                stuck: false,
            };
            if p.changes.is_empty() {
                return Ok(out);
            }
            if self.last_push.as_ref() == Some(&(p.changes.clone(), state.table_version)) {
                out.stuck = true;
                return Ok(out);
            }
            let n = p.changes.len();
            match client.apply(Owner::Agent, Some(state.table_version), p.changes.clone()) {
                Ok(version) => {
                    self.last_push = Some((p.changes, version));
                    out.pushed = n;
                    out.version = version;
                    return Ok(out);
                }
                Err(Error::Refused {
                    code: ErrorCode::VersionMismatch,
                    ..
                }) if attempt < MAX_ATTEMPTS => {
                    thread::sleep(Duration::from_millis(10 * u64::from(attempt)));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// One reconcile without memory; see [`Reconciler::reconcile`].
pub fn reconcile(client: &mut Client, desired: &AgentConfig) -> Result<Outcome, Error> {
    Reconciler::new().reconcile(client, desired)
}
