//! Runbook runs: one request to run a runbook, its approvals and its steps, and the state
//! machine they move through.
//!
//! ```text
//! pending_approval ──approve×N──▶ approved ──claimed──▶ running ──▶ succeeded | failed | timed_out
//!        │  ╲deny                    │                    │  ╲ a step needing its own approval:
//!        │   ▶ denied                │                    │    back to pending_approval
//!        ╰──window closed──▶ expired ╰───cancel──▶ cancelled ◀──cancel (the process group is killed)
//!                                           the worker died mid-step ──▶ interrupted (never re-run)
//! ```

use super::{IncidentRef, LevelId, Role};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    PendingApproval,
    Approved,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Interrupted,
    Denied,
    Expired,
}

impl RunState {
    pub const ALL: [RunState; 10] = [
        RunState::PendingApproval,
        RunState::Approved,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::TimedOut,
        RunState::Cancelled,
        RunState::Interrupted,
        RunState::Denied,
        RunState::Expired,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::PendingApproval => "pending_approval",
            RunState::Approved => "approved",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed_out",
            RunState::Cancelled => "cancelled",
            RunState::Interrupted => "interrupted",
            RunState::Denied => "denied",
            RunState::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<RunState> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// Still going: it holds its runbook's lock on its target.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            RunState::PendingApproval | RunState::Approved | RunState::Running
        )
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Deny,
    /// A manual step was done (at the gate of that step's index).
    Confirm,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
            Decision::Confirm => "confirm",
        }
    }
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "approve" => Some(Decision::Approve),
            "deny" => Some(Decision::Deny),
            "confirm" => Some(Decision::Confirm),
            _ => None,
        }
    }
}

/// One person's decision at one gate of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunApproval {
    pub run: i64,
    /// The step index the run waited at (0: the run-level approval).
    pub gate: usize,
    pub person: String,
    pub decision: Decision,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Interrupted,
    /// Not for this incident's level.
    Skipped,
    /// Could not start (program missing, bad URL).
    NotStarted,
}

impl StepState {
    pub const ALL: [StepState; 8] = [
        StepState::Running,
        StepState::Succeeded,
        StepState::Failed,
        StepState::TimedOut,
        StepState::Cancelled,
        StepState::Interrupted,
        StepState::Skipped,
        StepState::NotStarted,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Running => "running",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::TimedOut => "timed_out",
            StepState::Cancelled => "cancelled",
            StepState::Interrupted => "interrupted",
            StepState::Skipped => "skipped",
            StepState::NotStarted => "not_started",
        }
    }
    pub fn parse(s: &str) -> Option<StepState> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One step of a run as it happened. Output is stored redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunStep {
    pub run: i64,
    pub index: usize,
    pub step_id: String,
    pub state: StepState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// "exit 0", "HTTP 503", "killed after 10m (timeout)".
    pub detail: String,
    /// Everything it printed, redacted (bounded: see the engine's output cap).
    pub output: String,
}

/// One request to run a runbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub id: i64,
    pub runbook: String,
    pub incident: Option<IncidentRef>,
    /// The incident's level when requested (steps with `levels` are skipped at others).
    pub level: Option<LevelId>,
    /// `runbook:target`: one active run per key (a unique index, so it holds across replicas).
    pub lock_key: String,
    pub state: RunState,
    /// Checked parameter values (never secrets: those are env vars).
    pub params: BTreeMap<String, String>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// The step the run waits at or resumes from.
    pub gate: usize,
    /// Approvals still to collect at the gate, and the role each approver needs.
    pub needed: u32,
    pub role: Role,
    /// When the approval window at the gate closes.
    pub expires_at: Option<DateTime<Utc>>,
    /// Every decision, at every gate.
    pub approvals: Vec<RunApproval>,
    pub steps: Vec<RunStep>,
    /// The replica executing it, and until when its lease holds (renewed while it runs).
    #[serde(skip)]
    pub owner: Option<String>,
    #[serde(skip)]
    pub lease_until: Option<DateTime<Utc>>,
    /// Someone asked to cancel it while it was running: the worker kills the step.
    pub cancel_requested: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// One line: how it ended, and who ended it.
    pub outcome: Option<String>,
    pub version: i64,
}

impl Run {
    /// Approvals given at the current gate.
    pub fn approvals_at_gate(&self) -> impl Iterator<Item = &RunApproval> {
        self.approvals
            .iter()
            .filter(move |a| a.gate == self.gate && a.decision == Decision::Approve)
    }
}
