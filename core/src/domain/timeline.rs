//! The append-only timeline of an incident.

use super::IncidentRef;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Declared,
    Acknowledged,
    Update,
    LevelChanged,
    PhaseChanged,
    CommanderChanged,
    Paged,
    RtoBreached,
    Resolved,
    Reopened,
    Closed,
    /// An alert fired, resolved or started flapping.
    Alert,
    /// Held open: it will not resolve by itself when its alerts do.
    Held,
    /// Scheduled work about the incident failed too often and was given up.
    JobDeadLettered,
    /// 50 % or 80 % of the RTO has passed.
    RtoWarning,
    /// An acknowledgement saw no activity for `[paging] ack_timeout` and lapsed.
    AckExpired,
    /// A page could not be delivered by one contact method (and fell through to the next).
    PageFailed,
    /// A chat post or card update was given up after its attempts (a dead letter).
    MessageDeadLettered,
    /// A runbook run was requested (and what it will run).
    RunRequested,
    /// Someone approved or denied a run.
    RunApproval,
    /// A run's approval window closed before enough people approved.
    RunExpired,
    /// A step of a run started or ended.
    RunStep,
    /// A run ended: succeeded, failed, timed out, cancelled or interrupted.
    RunFinished,
    /// The system status probes ran (`/system check`, or on declaration).
    SystemCheck,
    /// The incident was put on the public status page.
    Published,
}

impl EventKind {
    pub const ALL: [EventKind; 25] = [
        EventKind::Declared,
        EventKind::Acknowledged,
        EventKind::Update,
        EventKind::LevelChanged,
        EventKind::PhaseChanged,
        EventKind::CommanderChanged,
        EventKind::Paged,
        EventKind::RtoBreached,
        EventKind::Resolved,
        EventKind::Reopened,
        EventKind::Closed,
        EventKind::Alert,
        EventKind::Held,
        EventKind::JobDeadLettered,
        EventKind::RtoWarning,
        EventKind::AckExpired,
        EventKind::PageFailed,
        EventKind::MessageDeadLettered,
        EventKind::RunRequested,
        EventKind::RunApproval,
        EventKind::RunExpired,
        EventKind::RunStep,
        EventKind::RunFinished,
        EventKind::SystemCheck,
        EventKind::Published,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Declared => "declared",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Update => "update",
            EventKind::LevelChanged => "level_changed",
            EventKind::PhaseChanged => "phase_changed",
            EventKind::CommanderChanged => "commander_changed",
            EventKind::Paged => "paged",
            EventKind::RtoBreached => "rto_breached",
            EventKind::Resolved => "resolved",
            EventKind::Reopened => "reopened",
            EventKind::Closed => "closed",
            EventKind::Alert => "alert",
            EventKind::Held => "held",
            EventKind::JobDeadLettered => "job_dead_lettered",
            EventKind::RtoWarning => "rto_warning",
            EventKind::AckExpired => "ack_expired",
            EventKind::PageFailed => "page_failed",
            EventKind::MessageDeadLettered => "message_dead_lettered",
            EventKind::RunRequested => "run_requested",
            EventKind::RunApproval => "run_approval",
            EventKind::RunExpired => "run_expired",
            EventKind::RunStep => "run_step",
            EventKind::RunFinished => "run_finished",
            EventKind::SystemCheck => "system_check",
            EventKind::Published => "published",
        }
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown timeline event kind `{s}`"))
    }
}

/// One event. `public` marks text meant for the Workout Tracker's users (status broadcasts);
/// everything else is internal to the responders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    pub incident: IncidentRef,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: EventKind,
    pub text: String,
    pub public: bool,
}
