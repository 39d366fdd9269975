//! Scheduled work as the store keeps it: kinds, typed payloads, and the changes a decision
//! makes to jobs.

use crate::domain::{IncidentRef, LevelId};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The kinds of scheduled work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// The incident's RTO deadline passed.
    RtoBreach,
    /// The next tier of the escalation matrix is due.
    EscalationTier,
    /// The quiet period after every alert resolved is over.
    Autoresolve,
    /// The dead man's switch: the heartbeat alert should have arrived by now.
    Heartbeat,
    /// 50 % or 80 % of the RTO has passed.
    RtoWarning,
    /// An acknowledgement saw no activity for `[paging] ack_timeout`.
    AckExpiry,
    /// A run's approval window closes.
    RunApprovalExpiry,
    /// The grace before an incident is published on the status page is over.
    PublishIncident,
}

impl JobKind {
    pub const ALL: [JobKind; 8] = [
        JobKind::RtoBreach,
        JobKind::EscalationTier,
        JobKind::Autoresolve,
        JobKind::Heartbeat,
        JobKind::RtoWarning,
        JobKind::AckExpiry,
        JobKind::RunApprovalExpiry,
        JobKind::PublishIncident,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::RtoBreach => "rto_breach",
            JobKind::EscalationTier => "escalation_tier",
            JobKind::Autoresolve => "autoresolve",
            JobKind::Heartbeat => "heartbeat",
            JobKind::RtoWarning => "rto_warning",
            JobKind::AckExpiry => "ack_expiry",
            JobKind::RunApprovalExpiry => "run_approval_expiry",
            JobKind::PublishIncident => "publish_incident",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What a job needs to run, typed per kind (stored as JSON beside the kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPayload {
    RtoBreach,
    /// Tier `tier` (0-based) of the matrix of `level`; it pages only while the incident is
    /// still unacknowledged at that level.
    EscalationTier {
        tier: usize,
        level: LevelId,
        /// 0 for the tier itself; n for its n-th repeat (last tier only).
        repeat: u32,
        /// The incident version the escalation started at (see [`crate::engine`]'s paging).
        epoch: i64,
    },
    Autoresolve,
    /// `percent` of the RTO has passed.
    RtoWarning {
        percent: u8,
    },
    AckExpiry,
    /// Run `run`'s approval window at `gate` closes.
    RunApprovalExpiry {
        run: i64,
        gate: usize,
    },
    PublishIncident,
    /// The heartbeat source's name.
    Heartbeat {
        name: String,
    },
}

impl JobPayload {
    pub fn kind(&self) -> JobKind {
        match self {
            JobPayload::RtoBreach => JobKind::RtoBreach,
            JobPayload::EscalationTier { .. } => JobKind::EscalationTier,
            JobPayload::Autoresolve => JobKind::Autoresolve,
            JobPayload::Heartbeat { .. } => JobKind::Heartbeat,
            JobPayload::RtoWarning { .. } => JobKind::RtoWarning,
            JobPayload::AckExpiry => JobKind::AckExpiry,
            JobPayload::RunApprovalExpiry { .. } => JobKind::RunApprovalExpiry,
            JobPayload::PublishIncident => JobKind::PublishIncident,
        }
    }

    /// The stored JSON (the kind is stored in its own column).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            JobPayload::RtoBreach
            | JobPayload::Autoresolve
            | JobPayload::AckExpiry
            | JobPayload::PublishIncident => {
                serde_json::json!({})
            }
            JobPayload::EscalationTier {
                tier,
                level,
                repeat,
                epoch,
            } => {
                serde_json::json!({"tier": tier, "level": level.0, "repeat": repeat, "epoch": epoch})
            }
            JobPayload::RtoWarning { percent } => serde_json::json!({"percent": percent}),
            JobPayload::Heartbeat { name } => serde_json::json!({"name": name}),
            JobPayload::RunApprovalExpiry { run, gate } => {
                serde_json::json!({"run": run, "gate": gate})
            }
        }
    }

    /// Reads a stored payload; an error names what is missing.
    pub fn from_json(kind: JobKind, v: &serde_json::Value) -> Result<Self, String> {
        let field = |name: &str| {
            v.get(name)
                .ok_or_else(|| format!("{} job without `{name}`", kind.as_str()))
        };
        Ok(match kind {
            JobKind::RtoBreach => JobPayload::RtoBreach,
            JobKind::Autoresolve => JobPayload::Autoresolve,
            JobKind::AckExpiry => JobPayload::AckExpiry,
            JobKind::PublishIncident => JobPayload::PublishIncident,
            JobKind::RtoWarning => JobPayload::RtoWarning {
                percent: u8::try_from(
                    field("percent")?
                        .as_u64()
                        .ok_or("percent is not a number")?,
                )
                .map_err(|e| e.to_string())?,
            },
            JobKind::EscalationTier => JobPayload::EscalationTier {
                tier: field("tier")?
                    .as_u64()
                    .ok_or("escalation tier is not a number")? as usize,
                level: LevelId(
                    u8::try_from(field("level")?.as_u64().ok_or("level is not a number")?)
                        .map_err(|e| e.to_string())?,
                ),
                // Jobs written before repeats existed are the tier itself.
                repeat: v.get("repeat").and_then(|r| r.as_u64()).unwrap_or(0) as u32,
                epoch: v.get("epoch").and_then(|r| r.as_i64()).unwrap_or(0),
            },
            JobKind::RunApprovalExpiry => JobPayload::RunApprovalExpiry {
                run: field("run")?.as_i64().ok_or("run is not a number")?,
                gate: field("gate")?.as_u64().ok_or("gate is not a number")? as usize,
            },
            JobKind::Heartbeat => JobPayload::Heartbeat {
                name: field("name")?
                    .as_str()
                    .ok_or("heartbeat name is not a string")?
                    .to_string(),
            },
        })
    }
}

/// Work due at a time, claimable by exactly one replica at once.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Unique per logical job (`rto:INC-7`); scheduling the same key again moves its due time.
    pub key: String,
    pub incident: Option<IncidentRef>,
    pub due_at: DateTime<Utc>,
    pub payload: JobPayload,
}

#[derive(Debug, Clone)]
pub enum JobChange {
    Schedule(NewJob),
    /// Cancels the incident's pending jobs of one kind (through the `jobs_by_incident` index).
    Cancel {
        incident: IncidentRef,
        kind: JobKind,
    },
    /// Moves a pending job earlier (never later); nothing when it already ran or was cancelled.
    /// A tier nobody in the previous one could answer is paged now this way.
    Hasten {
        key: String,
        due_at: DateTime<Utc>,
    },
    /// Marks a claimed job done (in the same transaction as what it caused), provided it is still
    /// pending at the due time it was claimed with: a job rescheduled while its run was in flight
    /// stays pending for its new due time.
    Complete {
        id: i64,
        due_at: DateTime<Utc>,
    },
    /// Gives up a job that failed too often: state `dead`, with the last error kept.
    DeadLetter {
        id: i64,
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub key: String,
    pub incident: Option<IncidentRef>,
    pub due_at: DateTime<Utc>,
    pub payload: JobPayload,
    pub attempts: i32,
}

impl Job {
    pub fn kind(&self) -> JobKind {
        self.payload.kind()
    }
}
