//! The store port and its SQL adapter.
//!
//! The port is deliberately narrow: reads, and one [`Store::commit`] that writes a whole
//! [`Changeset`] (incident row, timeline, audit entries, outbox messages, scheduled jobs) in one
//! transaction or not at all. The engine decides *what* changes; the store only makes it durable.
//! Concurrency is optimistic: an incident update carries the version it was read at, and a
//! concurrent writer's commit makes this one fail with [`StoreError::Conflict`], after which the
//! engine reads again and decides again.

mod sql;

pub use sql::{Backend, GroupCommitStats, SqlStore};

mod jobs;
mod public;
mod runs;
mod subscribers;
mod types;

pub use jobs::*;
pub use public::*;
pub use runs::*;
pub use subscribers::*;
pub use types::*;

use crate::domain::{AlertStatus, Incident, IncidentRef, StateFilter, TimelineEntry};
use crate::error::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

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
    /// and writes it. Numbers are therefore sequential without gaps and never contended. `build`
    /// also gets the next free run id, read in the same serialised transaction, for a run the
    /// declaration starts (the guide's immediate response): every run insert holds the same
    /// lock, so that id cannot be taken meanwhile either.
    ///
    /// # Errors
    /// As [`Store::commit`].
    async fn commit_new_incident(
        &self,
        build: &(dyn Fn(IncidentRef, i64) -> Changeset + Send + Sync),
    ) -> Result<IncidentRef, StoreError>;
    /// Writes a whole request in one transaction, all or nothing: its changesets, and its
    /// declarations, each numbered as [`Store::commit_new_incident`] numbers one (the `k`-th
    /// [`Part::Declare`] is built by `build(k, number, run_id)`). Concurrent units share a
    /// transaction (group commit) but never each other's failures. Returns the declared
    /// incidents, in order.
    ///
    /// # Errors
    /// As [`Store::commit`].
    async fn commit_unit(
        &self,
        parts: Unit,
        build: &(dyn Fn(usize, IncidentRef, i64) -> Changeset + Send + Sync),
    ) -> Result<Vec<IncidentRef>, StoreError>;
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
        lane: Lane,
    ) -> Result<Vec<OutboxMessage>, StoreError>;
    /// Marks a leased message delivered. Fenced: returns `false` (and changes nothing) when
    /// `owner` no longer holds the lease at `at`.
    async fn outbox_delivered(
        &self,
        id: i64,
        owner: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Records a failed attempt: retried at `retry_at`, or given up (`failed`) when `None`.
    /// Fenced like [`Store::outbox_delivered`].
    async fn outbox_attempt_failed(
        &self,
        id: i64,
        owner: &str,
        at: DateTime<Utc>,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError>;
    /// Gives back leased messages `owner` will not deliver now.
    async fn outbox_release(&self, ids: &[i64], owner: &str) -> Result<(), StoreError>;
    /// The pending messages queued behind message `head` on its ordering key, oldest first, at
    /// most `limit` (what the chat lane may merge into one post).
    async fn outbox_queued(&self, head: i64, limit: i64) -> Result<Vec<OutboxMessage>, StoreError>;
    /// Leases to `owner` until `until` the pending messages behind `head` on its ordering key
    /// with ids up to `last`, skipping any another owner holds a live lease on; returns those
    /// leased, oldest first. Fenced: nothing when `owner` no longer holds `head`'s lease at `now`.
    async fn outbox_lease_queued(
        &self,
        head: i64,
        last: i64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<OutboxMessage>, StoreError>;
    /// Gives back a leased message, not to be claimed before `until`; no attempt is counted.
    /// Fenced like [`Store::outbox_delivered`].
    async fn outbox_defer(
        &self,
        id: i64,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    async fn outbox(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError>;
    /// Every page message of an incident (each method of each page), oldest first.
    async fn incident_pages(&self, r: IncidentRef) -> Result<Vec<OutboxMessage>, StoreError>;
    /// An acknowledgement link by id.
    async fn ack_link(&self, id: &str) -> Result<Option<AckLink>, StoreError>;
    /// Rotation overrides that have not ended by `after`.
    async fn rotation_overrides(
        &self,
        after: DateTime<Utc>,
    ) -> Result<Vec<crate::oncall::RotationOverride>, StoreError>;

    /// A run with its approvals and its steps (with their redacted output).
    async fn run(&self, id: i64) -> Result<Option<crate::domain::Run>, StoreError>;
    /// A run with its approvals and steps, without the steps' output (what a running worker
    /// polls for cancel requests and confirmations).
    async fn run_summary(&self, id: i64) -> Result<Option<crate::domain::Run>, StoreError>;
    /// Runs, newest first, with approvals and steps (without output).
    async fn runs(&self, filter: RunFilter) -> Result<Vec<crate::domain::Run>, StoreError>;
    /// The id the next run would get (a concurrent request taking it makes the insert conflict).
    async fn next_run_id(&self) -> Result<i64, StoreError>;
    /// Leases the oldest approved run no live worker holds to `owner` until `now + lease`.
    async fn claim_run(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owner: &str,
    ) -> Result<Option<crate::domain::Run>, StoreError>;
    /// Extends `owner`'s lease on a run; `false` when it no longer holds it.
    async fn renew_run_lease(
        &self,
        id: i64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Appends (already redacted) output to a running step; `false` (nothing written) when
    /// `owner` no longer runs it.
    async fn append_run_output(
        &self,
        id: i64,
        index: usize,
        owner: &str,
        text: &str,
    ) -> Result<bool, StoreError>;
    /// Running runs whose worker's lease lapsed (it died mid-step).
    async fn stale_runs(&self, now: DateTime<Utc>) -> Result<Vec<crate::domain::Run>, StoreError>;

    /// Public incidents with their updates (newest first), newest first; at most `limit`.
    async fn public_incidents(
        &self,
        limit: i64,
    ) -> Result<Vec<crate::status::PublicIncident>, StoreError>;
    /// Public incidents unresolved, or resolved after `since` (so a reopening is followed).
    async fn public_incidents_open_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<crate::status::PublicIncident>, StoreError>;
    /// The public incident of an internal one, if it was published.
    async fn public_incident_of(
        &self,
        incident: IncidentRef,
    ) -> Result<Option<crate::status::PublicIncident>, StoreError>;
    async fn component_overrides(&self) -> Result<Vec<ComponentOverride>, StoreError>;
    /// Whether the incident is held off the page.
    async fn status_held(&self, incident: IncidentRef) -> Result<bool, StoreError>;
    /// Changes whenever anything public changed (on any replica): the status board rebuilds
    /// when it moves.
    async fn status_stamp(&self) -> Result<(i64, i64), StoreError>;
    /// Every subscriber, removed ones included, oldest first.
    async fn subscribers(&self) -> Result<Vec<Subscriber>, StoreError>;
    async fn subscriber(&self, id: i64) -> Result<Option<Subscriber>, StoreError>;
    async fn next_subscriber_id(&self) -> Result<i64, StoreError>;
    /// What was last announced about each public subject.
    async fn status_notices(&self)
        -> Result<std::collections::HashMap<String, String>, StoreError>;
    /// Dead-lettered broadcasts per ordering key (`subscriber:<id>`, `announce:<channel>`):
    /// how many, and the last error.
    async fn broadcast_failures(&self) -> Result<Vec<(String, i64, Option<String>)>, StoreError>;

    /// Leases up to `limit` due jobs to `owner` until `now + lease`.
    async fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owner: &str,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError>;
    async fn pending_jobs(&self) -> Result<Vec<Job>, StoreError>;
    /// Remembers why a job's attempt failed (it is retried after its lease).
    async fn job_attempt_failed(&self, id: i64, error: &str) -> Result<(), StoreError>;
    /// Deletes a batch of finished rows older than their cutoffs (retention).
    async fn purge(&self, before: PurgeBefore, batch: i64) -> Result<Purged, StoreError>;
    /// Remembers a request signature until `expires_at`; `false` when it is a replay (seen and
    /// still within its window). Shared by every replica and kept across restarts.
    async fn remember_signature(
        &self,
        signature: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Forgets a remembered signature: its request was answered with a "retry" (429, 503), so
    /// the sender's retry of the same signed bytes is not a replay.
    async fn forget_signature(&self, signature: &str) -> Result<(), StoreError>;

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

    /// The post about `subject` in an announcement channel, if one was made.
    async fn announcement_post(
        &self,
        platform: &str,
        channel_id: &str,
        subject: &str,
    ) -> Result<Option<AnnouncementPost>, StoreError>;
    /// Creates or replaces the post of (platform, channel, subject).
    async fn save_announcement_post(&self, post: &AnnouncementPost) -> Result<(), StoreError>;

    async fn alert(
        &self,
        source: &str,
        fingerprint: &str,
    ) -> Result<Option<AlertRecord>, StoreError>;
    /// The stored alerts of `source` among `fingerprints`, in no particular order.
    async fn alerts_of(
        &self,
        source: &str,
        fingerprints: &[String],
    ) -> Result<Vec<AlertRecord>, StoreError>;
    /// How many alerts feeding an incident are firing.
    async fn firing_alert_count(&self, incident: IncidentRef) -> Result<i64, StoreError>;
    /// The alerts feeding an incident.
    async fn incident_alerts(&self, incident: IncidentRef) -> Result<Vec<AlertRecord>, StoreError>;
    /// The incident's alerts counted by status, with its first `shown` firing, unsuppressed
    /// alerts (oldest first): what its card shows, however many alerts feed it.
    async fn incident_alert_summary(
        &self,
        incident: IncidentRef,
        shown: i64,
    ) -> Result<AlertSummary, StoreError>;
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

    // Per-person API tokens (see [`ApiToken`]).

    /// Stores a new token.
    ///
    /// # Errors
    /// `Conflict` when its id is taken.
    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), StoreError>;
    /// The token with this id, revoked or not. Read on every request that presents one, so a
    /// revocation holds at once on every replica.
    async fn api_token(&self, id: &str) -> Result<Option<ApiToken>, StoreError>;
    /// Every token, newest first.
    async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    /// Revokes a token (a second revocation keeps the first time); `None` when no token has
    /// this id.
    async fn revoke_api_token(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiToken>, StoreError>;
    /// Records that the token was used at `at` (never moves the time back).
    async fn api_token_used(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
}
