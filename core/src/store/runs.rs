//! What the store writes and reads of runbook runs (the run itself is [`crate::domain::Run`]).

use crate::domain::IncidentRef;
use chrono::{DateTime, Utc};

/// A change to the runbook runs, written with the timeline and audit entries that record it.
#[derive(Debug, Clone)]
pub enum RunWrite {
    /// A new run; `Conflict` when its id is taken or another active run holds its lock key.
    Insert(crate::domain::Run),
    /// The run's own columns (state, gate, lease, outcome…) as read at `version`; stored with
    /// version + 1, else `Conflict`. Approvals and steps are written by their own variants.
    Update(crate::domain::Run),
    /// One decision; `Conflict` when that person already decided at that gate.
    Decide(crate::domain::RunApproval),
    /// A step begins (written before its process starts, so a crash leaves it `running` and the
    /// run is found interrupted, never silently re-run).
    StepStart(crate::domain::RunStep),
    /// A step ended.
    StepEnd {
        run: i64,
        index: usize,
        state: crate::domain::StepState,
        at: DateTime<Utc>,
        detail: String,
    },
}

/// Which runs to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFilter {
    /// Only pending, approved and running ones.
    pub active: bool,
    pub incident: Option<IncidentRef>,
    pub limit: i64,
}
