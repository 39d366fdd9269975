//! What the store reads and writes: changesets and the rows they become.

use crate::audit::{AuditEntry, AuditRecord};
use crate::domain::AlertStatus;
use crate::domain::{Channel, ComponentId, Incident, IncidentRef, LevelId, State, TimelineEntry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
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
    pub jobs: Vec<super::JobChange>,
    /// Alert rows to create (`version` 0, must not exist yet) or update (read at `version`).
    pub alerts: Vec<AlertRecord>,
    /// Which incident an alert group feeds.
    pub alert_groups: Vec<GroupWrite>,
    pub maintenance: Vec<MaintenanceWrite>,
    pub heartbeats: Vec<Heartbeat>,
    pub api_tokens: Vec<ApiTokenWrite>,
    /// Delivery outcomes, each fenced by its lease: when one is no longer held the whole
    /// changeset fails with [`crate::StoreError::LeaseLost`] and nothing is written.
    pub outbox_marks: Vec<OutboxMark>,
    /// Incidents whose pending pages are cancelled (acknowledged, held, quiet).
    pub cancel_pages: Vec<IncidentRef>,
    pub ack_links: Vec<AckLinkWrite>,
    pub rotation_overrides: Vec<crate::oncall::RotationOverride>,
    /// Runbook runs: requests, decisions, steps.
    pub runs: Vec<super::RunWrite>,
    /// The public status page: public incidents, their updates, overrides, holds.
    pub public: Vec<super::PublicWrite>,
    /// The status page's subscribers.
    pub subscribers: Vec<super::SubscriberWrite>,
    /// What has been announced about each public subject (see [`super::NoticeWrite`]).
    pub notices: Vec<super::NoticeWrite>,
    /// Incidents that must have no firing alert once this changeset is written (it starts
    /// their quiet period: their last alert resolved); else `Conflict`. An alert joining one
    /// concurrently only guards the incident's version, so this is what orders the two.
    pub all_resolved: Vec<IncidentRef>,
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
            && self.api_tokens.is_empty()
            && self.outbox_marks.is_empty()
            && self.cancel_pages.is_empty()
            && self.ack_links.is_empty()
            && self.rotation_overrides.is_empty()
            && self.runs.is_empty()
            && self.public.is_empty()
            && self.subscribers.is_empty()
            && self.notices.is_empty()
            && self.all_resolved.is_empty()
    }
}

/// What one request writes in one transaction, all or nothing (see [`super::Store::commit_unit`]).
pub type Unit = Vec<Part>;

/// A part of a [`Unit`]. Units are a handful of parts, moved once: the size difference does
/// not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Part {
    Write(Changeset),
    /// A new incident, numbered when it is written: the store asks the request to build it.
    Declare,
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

/// What an incident's card shows of its alerts, counted by the database: a storm of 10,000
/// alerts is three numbers and a handful of rows, not 10,000 rows per card refresh.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertSummary {
    /// Firing and not suppressed by a maintenance window (the card's "Firing alerts (n)").
    pub firing: i64,
    /// Firing, but inside a maintenance window.
    pub suppressed: i64,
    pub resolved: i64,
    /// The first firing, unsuppressed alerts in the card's order (first seen, then
    /// fingerprint), at most as many as were asked for.
    pub shown: Vec<AlertRecord>,
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
    /// Announced on the status page (its reason is the public title).
    pub public: bool,
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
    /// A decision that leaves the incident as read at `incident.version` (an alert joining
    /// it): the write fails with `Conflict` if the incident has moved since, and the version is
    /// not bumped, so such writes do not conflict with each other, only with changes.
    Guard(Incident),
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
    /// A runbook run waits for approval: a chat post with Approve / Deny buttons.
    ApprovalRequest,
    /// A chat post about an alert of the incident (firing, resolved, flapping). Under an alert
    /// storm the chat lane merges a run of them into one post (see [`crate::outbox`]).
    AlertPost,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::ChatPost => "chat_post",
            MessageKind::CardUpdate => "card_update",
            MessageKind::Page => "page",
            MessageKind::Broadcast => "broadcast",
            MessageKind::ApprovalRequest => "approval_request",
            MessageKind::AlertPost => "alert_post",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            MessageKind::ChatPost,
            MessageKind::CardUpdate,
            MessageKind::Page,
            MessageKind::Broadcast,
            MessageKind::ApprovalRequest,
            MessageKind::AlertPost,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outbound message to be delivered by the dispatcher.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Which notifier delivers it.
    pub channel: Channel,
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
    /// What a page carries beyond its text (`kind` = page).
    pub page: Option<Page>,
    /// The run and gate an approval request asks about (`kind` = approval_request).
    pub approval: Option<ApprovalAsk>,
    /// Who a status broadcast goes to and what it says (`kind` = broadcast).
    pub broadcast: Option<super::Broadcast>,
}

/// What an approval request's buttons decide: one gate of one run. A button of an older gate
/// is refused, so a stale message cannot approve a later step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAsk {
    pub run: i64,
    pub gate: usize,
}

/// A page: one contact method of one person, for one step of an escalation (or `/page`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub person: String,
    pub person_name: String,
    /// Index of the method in the person's `notify` list; a failure falls through to the next.
    pub method: usize,
    /// `escalation`, `repeat`, `manual`, `rto`, `ack_expired`.
    pub reason: String,
    /// The escalation tier (0-based), when the matrix paged.
    pub tier: Option<usize>,
    pub incident: Option<PageIncident>,
    /// The acknowledgement link's id; its token is derived when the page is delivered, so the
    /// database never holds a working link.
    pub ack_link: Option<String>,
    /// The page across its methods (`page:INC-7:e3:t1:a0:dba`): the idempotency key of each
    /// method's message is this plus `:m<index>`.
    pub key: String,
    /// How late it went out, when it fell due while Spotter was not running.
    pub late_by_seconds: Option<i64>,
    /// The job that pages the next tier, hastened to now when this person cannot be reached by
    /// any method (their tier counts as unanswered).
    pub next_tier_job: Option<String>,
}

/// The incident a page is about, as it was when paged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageIncident {
    pub reference: String,
    pub title: String,
    pub level: u8,
    pub level_name: String,
    pub state: String,
    pub url: String,
}

/// Which outbox messages a dispatcher delivers: pages have a lane of their own, so they never
/// wait behind chat posts and card edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Pages,
    Chat,
    /// Status broadcasts to subscribers and the announcement channel: below the other two, so
    /// a slow subscriber never delays a page or an incident channel.
    Broadcasts,
}

/// A fenced delivery outcome.
#[derive(Debug, Clone)]
pub struct OutboxMark {
    pub id: i64,
    pub owner: String,
    pub at: DateTime<Utc>,
    /// `None`: delivered. `Some(error)`: given up (a page falls through to its next method).
    pub failed: Option<String>,
}

/// An acknowledgement link: one person, one incident, used at most once, until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckLink {
    pub id: String,
    pub incident: IncidentRef,
    pub person: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub enum AckLinkWrite {
    Insert(AckLink),
    /// Marks it used; `Conflict` when it already was.
    Use {
        id: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub channel: Channel,
    pub kind: MessageKind,
    pub target: String,
    pub incident: Option<IncidentRef>,
    pub text: String,
    pub priority: i32,
    pub attempts: i32,
    pub state: DeliveryState,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub idempotency_key: String,
    pub page: Option<Page>,
    pub approval: Option<ApprovalAsk>,
    pub broadcast: Option<super::Broadcast>,
    /// The acknowledgement URL of a page, derived by the dispatcher just before delivery (never
    /// stored).
    #[serde(skip)]
    pub ack_url: Option<String>,
    /// A broadcast's confirmation and unsubscribe links, derived by the dispatcher just before
    /// delivery (never stored: the database alone cannot unsubscribe anyone).
    #[serde(skip)]
    pub links: Option<SubscriberLinks>,
}

/// The links a subscriber's mail carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberLinks {
    /// Confirms a pending address (the double opt-in).
    pub confirm: String,
    /// One click unsubscribes (RFC 8058's `List-Unsubscribe` target).
    pub unsubscribe: String,
}

/// Where an outbox message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for (another) delivery attempt.
    Pending,
    Delivered,
    /// Given up: permanent failure, or out of attempts (a dead letter).
    Failed,
    /// No longer wanted: a page of an incident someone acknowledged first.
    Cancelled,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
            DeliveryState::Cancelled,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// How old finished rows must be before [`crate::store::Store::purge`] deletes them.
#[derive(Debug, Clone, Copy)]
pub struct PurgeBefore {
    pub delivered_messages: DateTime<Utc>,
    pub finished_jobs: DateTime<Utc>,
    pub resolved_alerts: DateTime<Utc>,
    /// Seen signatures whose window closed before this.
    pub signatures: DateTime<Utc>,
}

/// What one purge round deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub messages: u64,
    pub jobs: u64,
    pub alerts: u64,
    pub signatures: u64,
}

impl Purged {
    pub fn total(&self) -> u64 {
        self.messages + self.jobs + self.alerts + self.signatures
    }
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

/// A post in a chat announcement channel (the status page's Discord channel) about one public
/// subject, remembered so the subject's later changes edit it rather than post again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncementPost {
    /// `discord`, …
    pub platform: String,
    pub channel_id: String,
    /// `incident:pi_…`, `incident:pi_…:resolved`, `maintenance:pm_…`, `maintenance:pm_…:completed`.
    pub subject: String,
    pub message_id: String,
    pub posted_at: DateTime<Utc>,
}

/// Counts for `/metrics`, computed from the database so every replica reports the same.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub incidents: Vec<(LevelId, State, i64)>,
    pub outbox_pending: i64,
    pub outbox_failed: i64,
    /// This replica's write transactions since it started, and the requests' units they held
    /// (group commit: the ratio is how many requests share one fsync).
    pub transactions: u64,
    pub transaction_units: u64,
}

/// The whole audit log with the head pointer that guards its end.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
    pub head_seq: i64,
    pub head_hash: String,
}

/// A per-person API token as stored: its public id, its person, and the SHA-256 (hex) of the
/// whole token. The token itself is shown once, when created, and never stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiToken {
    pub id: String,
    pub person: String,
    #[serde(skip)]
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A change to the API tokens, written with the audit entry that records it.
#[derive(Debug, Clone)]
pub enum ApiTokenWrite {
    /// A new token; its id must still be free (else `Conflict`).
    Insert(ApiToken),
    /// Revokes it; a second revocation keeps the first time.
    Revoke { id: String, at: DateTime<Utc> },
}
