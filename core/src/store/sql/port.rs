//! The store port as the SQL adapter implements it: each method hands over to the file of its
//! concern (write, incidents, outbox, jobs, alerts, runs, public, …).

use super::*;
use crate::domain::AlertStatus;

#[async_trait]
impl Store for SqlStore {
    async fn commit(&self, cs: Changeset) -> Result<(), StoreError> {
        self.commit_sql(cs).await
    }

    async fn commit_new_incident(
        &self,
        build: &(dyn Fn(IncidentRef, i64) -> Changeset + Send + Sync),
    ) -> Result<IncidentRef, StoreError> {
        self.commit_new_incident_sql(build).await
    }

    async fn commit_unit(
        &self,
        parts: Unit,
        build: &(dyn Fn(usize, IncidentRef, i64) -> Changeset + Send + Sync),
    ) -> Result<Vec<IncidentRef>, StoreError> {
        self.commit_unit(parts, build).await
    }

    async fn next_incident_number(&self) -> Result<i64, StoreError> {
        self.next_incident_number_sql().await
    }

    async fn incident(&self, r: IncidentRef) -> Result<Option<Incident>, StoreError> {
        self.incident_sql(r).await
    }

    async fn incidents(&self, filter: StateFilter) -> Result<Vec<Incident>, StoreError> {
        self.incidents_sql(filter).await
    }

    async fn timeline(&self, r: IncidentRef) -> Result<Vec<TimelineEntry>, StoreError> {
        self.timeline_sql(r).await
    }

    async fn audit_log(&self) -> Result<AuditLog, StoreError> {
        self.audit_log_sql().await
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owner: &str,
        limit: i64,
        lane: Lane,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.claim_outbox_sql(now, lease, owner, limit, lane).await
    }

    async fn outbox_delivered(
        &self,
        id: i64,
        owner: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.outbox_delivered_sql(id, owner, at).await
    }

    async fn outbox_attempt_failed(
        &self,
        id: i64,
        owner: &str,
        at: DateTime<Utc>,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        self.outbox_attempt_failed_sql(id, owner, at, error, retry_at)
            .await
    }

    async fn outbox_release(&self, ids: &[i64], owner: &str) -> Result<(), StoreError> {
        self.outbox_release_sql(ids, owner).await
    }

    async fn outbox_queued(&self, head: i64, limit: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        self.outbox_queued_sql(head, limit).await
    }

    async fn outbox_lease_queued(
        &self,
        head: i64,
        last: i64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.outbox_lease_queued_sql(head, last, owner, now, until)
            .await
    }

    async fn outbox_defer(
        &self,
        id: i64,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.outbox_defer_sql(id, owner, until).await
    }

    async fn incident_pages(&self, r: IncidentRef) -> Result<Vec<OutboxMessage>, StoreError> {
        self.incident_pages_sql(r).await
    }

    async fn ack_link(&self, id: &str) -> Result<Option<AckLink>, StoreError> {
        self.ack_link_sql(id).await
    }

    async fn rotation_overrides(
        &self,
        after: DateTime<Utc>,
    ) -> Result<Vec<crate::oncall::RotationOverride>, StoreError> {
        self.rotation_overrides_sql(after).await
    }

    async fn run(&self, id: i64) -> Result<Option<crate::domain::Run>, StoreError> {
        self.run_sql_with(id, true).await
    }

    async fn run_summary(&self, id: i64) -> Result<Option<crate::domain::Run>, StoreError> {
        self.run_sql_with(id, false).await
    }

    async fn runs(&self, filter: RunFilter) -> Result<Vec<crate::domain::Run>, StoreError> {
        self.runs_sql(filter).await
    }

    async fn next_run_id(&self) -> Result<i64, StoreError> {
        self.next_run_id_sql().await
    }

    async fn claim_run(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owner: &str,
    ) -> Result<Option<crate::domain::Run>, StoreError> {
        self.claim_run_sql(now, lease, owner).await
    }

    async fn renew_run_lease(
        &self,
        id: i64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.renew_run_lease_sql(id, owner, now, until).await
    }

    async fn append_run_output(
        &self,
        id: i64,
        index: usize,
        owner: &str,
        text: &str,
    ) -> Result<bool, StoreError> {
        self.append_run_output_sql(id, index, owner, text).await
    }

    async fn stale_runs(&self, now: DateTime<Utc>) -> Result<Vec<crate::domain::Run>, StoreError> {
        self.stale_runs_sql(now).await
    }

    async fn public_incidents(
        &self,
        limit: i64,
    ) -> Result<Vec<crate::status::PublicIncident>, StoreError> {
        self.public_incidents_sql(limit).await
    }

    async fn public_incidents_open_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<crate::status::PublicIncident>, StoreError> {
        self.public_incidents_open_since_sql(since).await
    }

    async fn public_incident_of(
        &self,
        incident: IncidentRef,
    ) -> Result<Option<crate::status::PublicIncident>, StoreError> {
        self.public_incident_of_sql(incident).await
    }

    async fn component_overrides(&self) -> Result<Vec<ComponentOverride>, StoreError> {
        self.component_overrides_sql().await
    }

    async fn status_held(&self, incident: IncidentRef) -> Result<bool, StoreError> {
        self.status_held_sql(incident).await
    }

    async fn status_stamp(&self) -> Result<(i64, i64), StoreError> {
        self.status_stamp_sql().await
    }

    async fn subscribers(&self) -> Result<Vec<Subscriber>, StoreError> {
        self.subscribers_sql().await
    }

    async fn subscriber(&self, id: i64) -> Result<Option<Subscriber>, StoreError> {
        self.subscriber_sql(id).await
    }

    async fn next_subscriber_id(&self) -> Result<i64, StoreError> {
        self.next_subscriber_id_sql().await
    }

    async fn status_notices(
        &self,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        self.status_notices_sql().await
    }

    async fn broadcast_failures(&self) -> Result<Vec<(String, i64, Option<String>)>, StoreError> {
        self.broadcast_failures_sql().await
    }

    async fn outbox(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        self.outbox_sql(limit).await
    }

    async fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owner: &str,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError> {
        self.claim_jobs_sql(now, lease, owner, limit).await
    }

    async fn pending_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.pending_jobs_sql().await
    }

    async fn job_attempt_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.job_attempt_failed_sql(id, error).await
    }

    async fn purge(&self, before: PurgeBefore, batch: i64) -> Result<Purged, StoreError> {
        self.purge_sql(before, batch).await
    }

    async fn remember_signature(
        &self,
        signature: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.remember_signature_sql(signature, expires_at, now)
            .await
    }

    async fn forget_signature(&self, signature: &str) -> Result<(), StoreError> {
        self.forget_signature_sql(signature).await
    }

    async fn chat_binding(
        &self,
        platform: &str,
        incident: IncidentRef,
    ) -> Result<Option<ChatBinding>, StoreError> {
        self.chat_binding_sql(platform, incident).await
    }

    async fn chat_binding_by_channel(
        &self,
        platform: &str,
        channel_id: &str,
    ) -> Result<Option<ChatBinding>, StoreError> {
        self.chat_binding_by_channel_sql(platform, channel_id).await
    }

    async fn save_chat_binding(&self, b: &ChatBinding) -> Result<(), StoreError> {
        self.save_chat_binding_sql(b).await
    }

    async fn announcement_post(
        &self,
        platform: &str,
        channel_id: &str,
        subject: &str,
    ) -> Result<Option<AnnouncementPost>, StoreError> {
        self.announcement_post_sql(platform, channel_id, subject)
            .await
    }

    async fn save_announcement_post(&self, post: &AnnouncementPost) -> Result<(), StoreError> {
        self.save_announcement_post_sql(post).await
    }

    async fn alert(
        &self,
        source: &str,
        fingerprint: &str,
    ) -> Result<Option<AlertRecord>, StoreError> {
        self.alert_sql(source, fingerprint).await
    }

    async fn alerts_of(
        &self,
        source: &str,
        fingerprints: &[String],
    ) -> Result<Vec<AlertRecord>, StoreError> {
        self.alerts_of_sql(source, fingerprints).await
    }

    async fn firing_alert_count(&self, incident: IncidentRef) -> Result<i64, StoreError> {
        self.firing_alert_count_sql(incident).await
    }

    async fn incident_alerts(&self, incident: IncidentRef) -> Result<Vec<AlertRecord>, StoreError> {
        self.incident_alerts_sql(incident).await
    }

    async fn incident_alert_summary(
        &self,
        incident: IncidentRef,
        shown: i64,
    ) -> Result<AlertSummary, StoreError> {
        self.incident_alert_summary_sql(incident, shown).await
    }

    async fn alerts(
        &self,
        status: Option<AlertStatus>,
        limit: i64,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        self.alerts_sql(status, limit).await
    }

    async fn group_incident(
        &self,
        source: &str,
        group_key: &str,
    ) -> Result<Option<IncidentRef>, StoreError> {
        self.group_incident_sql(source, group_key).await
    }

    async fn maintenance_windows(
        &self,
        active_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Maintenance>, StoreError> {
        self.maintenance_windows_sql(active_at).await
    }

    async fn next_maintenance_id(&self) -> Result<i64, StoreError> {
        self.next_maintenance_id_sql().await
    }

    async fn heartbeat(&self, name: &str) -> Result<Option<Heartbeat>, StoreError> {
        self.heartbeat_sql(name).await
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        self.stats_sql().await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.ready_sql().await
    }

    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        SqlStore::insert_api_token(self, token).await
    }

    async fn api_token(&self, id: &str) -> Result<Option<ApiToken>, StoreError> {
        SqlStore::api_token(self, id).await
    }

    async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        SqlStore::api_tokens(self).await
    }

    async fn revoke_api_token(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiToken>, StoreError> {
        SqlStore::revoke_api_token(self, id, at).await
    }

    async fn api_token_used(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        SqlStore::api_token_used(self, id, at).await
    }
}
