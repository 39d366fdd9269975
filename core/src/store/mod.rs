//! The store port and its SQL adapter.
//!
//! The port is deliberately narrow: reads, and one [`Store::commit`] that writes a whole
//! [`Changeset`] (incident row, timeline, audit entries, outbox messages, scheduled jobs) in one
//! transaction or not at all. The engine decides *what* changes; the store only makes it durable.
//! Concurrency is optimistic: an incident update carries the version it was read at, and a
//! concurrent writer's commit makes this one fail with [`StoreError::Conflict`], after which the
//! engine reads again and decides again.

mod sql;

pub use sql::SqlStore;

use crate::alerts::AlertStatus;
use crate::audit::{AuditEntry, AuditRecord};
use crate::domain::{
    ComponentId, Incident, IncidentRef, LevelId, State, StateFilter, TimelineEntry,
};
use crate::error::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// Everything one decision changes, written atomically.
#[derive(Debug, Default, Clone)]
pub struct Changeset {
    /// When the decision was made (the engine's clock): stamps outbox rows and job rows, so a
    /// test clock governs when they fall due. `None` falls back to the first timeline or audit
    /// time, then the wall clock.
    pub at: Option<DateTime<Utc>>,
    pub incident: Option<IncidentWrite>,
    pub timeline: Vec<TimelineEntry>,
    pub audit: Vec<AuditRecord>,
    pub outbox: Vec<NewMessage>,
    pub jobs: Vec<JobChange>,
    /// Alert rows to create (`version` 0, must not exist yet) or update (read at `version`).
    pub alerts: Vec<AlertRecord>,
    /// Which incident an alert group feeds.
    pub alert_groups: Vec<GroupWrite>,
    pub maintenance: Vec<MaintenanceWrite>,
    pub heartbeats: Vec<Heartbeat>,
}

impl Changeset {
    pub fn is_empty(&self) -> bool {
        self.incident.is_none()
            && self.timeline.is_empty()
            && self.audit.is_empty()
            && self.outbox.is_empty()
            && self.jobs.is_empty()
            && self.alerts.is_empty()
            && self.alert_groups.is_empty()
            && self.maintenance.is_empty()
            && self.heartbeats.is_empty()
    }
}

/// An alert's last known state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRecord {
    pub source: String,
    pub fingerprint: String,
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub summary: String,
    pub group_key: String,
    pub incident: Option<IncidentRef>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
    /// When its status changed recently (within the flap window), oldest first.
    pub recent_changes: Vec<DateTime<Utc>>,
    pub flapping: bool,
    /// The maintenance window that suppressed it, if any.
    pub suppressed_by: Option<i64>,
    /// 0 for an alert not stored yet; else the version it was read at (bumped by each write).
    pub version: i64,
}

/// Points an alert group at an incident. With `previous: None` the group must be new; else it
/// must still point at `previous` — so two notifications racing to open the group's incident
/// cannot both succeed (the loser re-decides and joins the winner's incident).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupWrite {
    pub source: String,
    pub group_key: String,
    pub incident: IncidentRef,
    pub previous: Option<IncidentRef>,
}

/// A maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Maintenance {
    pub id: i64,
    pub components: Vec<ComponentId>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub created_by: String,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
}

impl Maintenance {
    pub fn is_active(&self, at: DateTime<Utc>) -> bool {
        self.ended_at.is_none() && self.starts_at <= at && at < self.ends_at
    }
}

#[derive(Debug, Clone)]
pub enum MaintenanceWrite {
    /// A new window; its `id` must still be free (else `Conflict`).
    Insert(Maintenance),
    End {
        id: i64,
        at: DateTime<Utc>,
        by: String,
    },
}

/// The dead man's switch's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub name: String,
    pub last_seen: DateTime<Utc>,
    /// The "monitoring pipeline silent" incident it opened, if any.
    pub incident: Option<IncidentRef>,
}

#[derive(Debug, Clone)]
pub enum IncidentWrite {
    /// A new incident; its number must still be free (else `Conflict`).
    Insert(Incident),
    /// An update of an incident read at `incident.version`; stored with version + 1.
    Update(Incident),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A post to the incident's chat channel.
    ChatPost,
    /// The incident changed: bring its card (the live summary in its chat channel) up to date.
    /// Only the latest state matters, so a notifier may coalesce these.
    CardUpdate,
    /// A page to a person.
    Page,
    /// A status broadcast to users.
    Broadcast,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::ChatPost => "chat_post",
            MessageKind::CardUpdate => "card_update",
            MessageKind::Page => "page",
            MessageKind::Broadcast => "broadcast",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            MessageKind::ChatPost,
            MessageKind::CardUpdate,
            MessageKind::Page,
            MessageKind::Broadcast,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// An outbound message to be delivered by the dispatcher.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Which notifier delivers it (`log` today; `discord`, `webhook`, `email` later).
    pub channel: String,
    pub kind: MessageKind,
    /// Channel-specific address: a person id for pages, `incident:INC-7` for chat posts.
    pub target: String,
    pub incident: Option<IncidentRef>,
    pub text: String,
    /// Higher first. Pages outrank chat posts so they never wait behind edits.
    pub priority: i32,
    /// Unique: a second message with the same key is dropped, so retried decisions never send
    /// twice.
    pub idempotency_key: String,
    /// Messages with the same ordering key are delivered one at a time, in order.
    pub ordering_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub channel: String,
    pub kind: String,
    pub target: String,
    pub incident: Option<IncidentRef>,
    pub text: String,
    pub priority: i32,
    pub attempts: i32,
    pub state: String,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Work due at a time, claimable by exactly one replica at once.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Unique per logical job (`rto:INC-7`); scheduling the same key again moves its due time.
    pub key: String,
    pub kind: String,
    pub incident: Option<IncidentRef>,
    pub due_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone)]
pub enum JobChange {
    Schedule(NewJob),
    /// Cancels every pending job whose key starts with the prefix.
    CancelPrefix(String),
    /// Marks a claimed job done (in the same transaction as what it caused), provided it is still
    /// pending at the due time it was claimed with: a job rescheduled while its run was in flight
    /// stays pending for its new due time.
    Complete {
        id: i64,
        due_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub key: String,
    pub kind: String,
    pub incident: Option<IncidentRef>,
    pub due_at: DateTime<Utc>,
    pub payload: serde_json::Value,
    pub attempts: i32,
}

/// Where an incident's conversation lives on a chat platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatBinding {
    pub incident: IncidentRef,
    /// `discord`, later `slack`, …
    pub platform: String,
    /// The channel (or thread) id on that platform.
    pub channel_id: String,
    /// The message holding the incident card, once posted.
    pub card_message_id: Option<String>,
}

/// Counts for `/metrics`, computed from the database so every replica reports the same.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub incidents: Vec<(LevelId, State, i64)>,
    pub outbox_pending: i64,
    pub outbox_failed: i64,
}

/// The whole audit log with the head pointer that guards its end.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
    pub head_seq: i64,
    pub head_hash: String,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes the changeset atomically, chaining its audit records onto the log.
    ///
    /// # Errors
    /// `Conflict` when the incident changed since it was read or its number was taken;
    /// `Unavailable` when the database cannot be reached; nothing is written on any error.
    async fn commit(&self, changes: Changeset) -> Result<(), StoreError>;
    /// Declares an incident: inside one serialised write transaction, takes the next free number,
    /// asks `build` for the changeset of the incident with that number (which must insert it),
    /// and writes it. Numbers are therefore sequential without gaps and never contended.
    ///
    /// # Errors
    /// As [`Store::commit`].
    async fn commit_new_incident(
        &self,
        build: &(dyn Fn(IncidentRef) -> Changeset + Send + Sync),
    ) -> Result<IncidentRef, StoreError>;
    /// The number the next declared incident would get (informational; declaring uses
    /// [`Store::commit_new_incident`]).
    async fn next_incident_number(&self) -> Result<i64, StoreError>;
    async fn incident(&self, r: IncidentRef) -> Result<Option<Incident>, StoreError>;
    /// Newest first.
    async fn incidents(&self, filter: StateFilter) -> Result<Vec<Incident>, StoreError>;
    /// Oldest first.
    async fn timeline(&self, r: IncidentRef) -> Result<Vec<TimelineEntry>, StoreError>;
    async fn audit_log(&self) -> Result<AuditLog, StoreError>;

    /// Leases up to `limit` deliverable messages (pending, due, not leased, first of their
    /// ordering key) to `owner` until `now + lease`.
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owner: &str,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>, StoreError>;
    async fn outbox_delivered(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Records a failed attempt: retried at `retry_at`, or given up (`failed`) when `None`.
    async fn outbox_attempt_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;
    async fn outbox(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Leases up to `limit` due jobs to `owner` until `now + lease`.
    async fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owner: &str,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError>;
    async fn pending_jobs(&self) -> Result<Vec<Job>, StoreError>;

    /// The chat channel of an incident on a platform.
    async fn chat_binding(
        &self,
        platform: &str,
        incident: IncidentRef,
    ) -> Result<Option<ChatBinding>, StoreError>;
    /// The incident whose conversation lives in a chat channel (commands there default to it).
    async fn chat_binding_by_channel(
        &self,
        platform: &str,
        channel_id: &str,
    ) -> Result<Option<ChatBinding>, StoreError>;
    /// Creates or replaces the binding of (platform, incident).
    async fn save_chat_binding(&self, binding: &ChatBinding) -> Result<(), StoreError>;

    async fn alert(
        &self,
        source: &str,
        fingerprint: &str,
    ) -> Result<Option<AlertRecord>, StoreError>;
    /// The alerts feeding an incident.
    async fn incident_alerts(&self, incident: IncidentRef) -> Result<Vec<AlertRecord>, StoreError>;
    /// Alerts, most recently changed first; `status` filters (`firing`, `resolved`).
    async fn alerts(
        &self,
        status: Option<AlertStatus>,
        limit: i64,
    ) -> Result<Vec<AlertRecord>, StoreError>;
    /// The incident an alert group feeds.
    async fn group_incident(
        &self,
        source: &str,
        group_key: &str,
    ) -> Result<Option<IncidentRef>, StoreError>;
    /// Maintenance windows; with `active_at`, only those active then.
    async fn maintenance_windows(
        &self,
        active_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Maintenance>, StoreError>;
    async fn next_maintenance_id(&self) -> Result<i64, StoreError>;
    async fn heartbeat(&self, name: &str) -> Result<Option<Heartbeat>, StoreError>;

    async fn stats(&self) -> Result<Stats, StoreError>;
    /// Ok when the database answers and every migration is applied.
    async fn ready(&self) -> Result<(), StoreError>;
}
