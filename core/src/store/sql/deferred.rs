//! What the changesets of one batch leave to be inserted together: timeline entries, outbox
//! rows, new alerts, and a declaration's new incident, alert groups and scheduled jobs, in
//! shared multi-row inserts after every unit is written (see [`super::group`]).

use super::rows::*;
use super::write::{
    check_all_resolved, insert_outbox, insert_timeline, multi_row, push_param, sized_chunks,
    ROWS_PER_INSERT,
};
use super::*;

/// Whether a changeset's new incident, its scheduled jobs and its alert groups can wait for the
/// batch's shared inserts: it declares the incident, schedules jobs only (no cancel or hasten,
/// which act on rows in order), creates its alert groups (an update of one is checked by its
/// row count) and writes nothing else on its own that refers to the incident (foreign keys are
/// checked at once, and the shared inserts come after every unit). Nothing else in the batch
/// can refer to an incident it has not read.
pub(super) fn defers_new_incident(cs: &Changeset) -> bool {
    matches!(cs.incident, Some(IncidentWrite::Insert(_)))
        && cs.jobs.iter().all(|j| matches!(j, JobChange::Schedule(_)))
        && cs.alert_groups.iter().all(|g| g.previous.is_none())
        && cs.alerts.iter().all(|a| a.version == 0)
        && cs.ack_links.is_empty()
        && cs.runs.is_empty()
        && cs.public.is_empty()
        && cs.notices.is_empty()
        && cs.heartbeats.is_empty()
        && cs.subscribers.is_empty()
        && cs.cancel_pages.is_empty()
}

/// Rows that changesets written together in one batch leave to be inserted together.
#[derive(Default)]
pub(super) struct Deferred {
    /// New incidents, inserted before every other shared insert (the rows refer to them).
    pub(super) incidents: Vec<Incident>,
    /// Their alert groups and scheduled jobs (each with its changeset's time).
    pub(super) groups: Vec<GroupWrite>,
    pub(super) jobs: Vec<(NewJob, DateTime<Utc>)>,
    pub(super) timeline: Vec<TimelineEntry>,
    pub(super) alerts: Vec<AlertRecord>,
    /// Queued messages, in the order written, with their changeset's time.
    pub(super) outbox: Vec<(NewMessage, DateTime<Utc>)>,
    /// Incidents guarded in this batch, at the version found: a later guard of the same
    /// version needs no statement, until a write of the incident (which moves its version).
    pub(super) guarded: std::collections::HashMap<i64, i64>,
    /// Checked after the inserts (see [`Changeset::all_resolved`]).
    pub(super) all_resolved: Vec<IncidentRef>,
}

impl Deferred {
    pub(super) async fn insert(&mut self, tx: &mut AnyConnection) -> Result<(), StoreError> {
        insert_incidents(&mut *tx, &self.incidents).await?;
        self.flush_outbox(&mut *tx).await?;
        insert_timeline(&mut *tx, &self.timeline.iter().collect::<Vec<_>>()).await?;
        super::alert_rows::insert_new(tx, &self.alerts.iter().collect::<Vec<_>>()).await?;
        insert_groups(&mut *tx, &self.groups).await?;
        let jobs = self
            .jobs
            .iter()
            .map(|(j, at)| (std::borrow::Cow::Borrowed(j), *at));
        super::job_writes::schedule_at(&mut *tx, jobs.collect()).await?;
        check_all_resolved(tx, &self.all_resolved).await
    }
}

impl Deferred {
    /// Reads the versions of the incidents the batch's units guard, in one statement, before
    /// any unit is written: in the batch's transaction they can only move by its own writes,
    /// which drop them from `guarded` (their guards are then checked one by one).
    pub(super) async fn read_guards(
        &mut self,
        tx: &mut AnyConnection,
        backend: Backend,
        incidents: &[i64],
    ) -> Result<(), StoreError> {
        for chunk in incidents.chunks(500) {
            let mut sql = String::from("SELECT number, version FROM incidents WHERE number IN (");
            for k in 0..chunk.len() {
                if k > 0 {
                    sql.push(',');
                }
                push_param(&mut sql, k + 1);
            }
            sql.push(')');
            if backend == Backend::Postgres {
                sql.push_str(" FOR SHARE");
            }
            let sql = super::placeholders::positional(tx, sql);
            let mut q = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(sql));
            for n in chunk {
                q = q.bind(*n);
            }
            for (number, version) in q.fetch_all(&mut *tx).await.map_err(map_err)? {
                self.guarded.insert(number, version);
            }
        }
        Ok(())
    }

    pub(super) async fn flush_outbox(&mut self, tx: &mut AnyConnection) -> Result<(), StoreError> {
        let rows: Vec<(&NewMessage, DateTime<Utc>)> =
            self.outbox.iter().map(|(m, at)| (m, *at)).collect();
        insert_outbox(tx, &rows).await?;
        self.outbox.clear();
        Ok(())
    }
}

/// New incidents, in multi-row inserts.
async fn insert_incidents(tx: &mut AnyConnection, rows: &[Incident]) -> Result<(), StoreError> {
    for chunk in sized_chunks(tx, rows, ROWS_PER_INSERT, 18, |i| {
        i.title.len() + i.declared_by.len() + 300
    }) {
        let head = format!("INSERT INTO incidents ({INCIDENT_COLUMNS}) VALUES ");
        let sql = super::placeholders::positional(tx, multi_row(&head, 18, chunk.len(), ""));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for i in chunk {
            q = bind_incident(q, i, 1);
        }
        q.execute(&mut *tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// New alert groups, in multi-row inserts (a group taken meanwhile is a unique violation:
/// a conflict, decided again).
async fn insert_groups(tx: &mut AnyConnection, rows: &[GroupWrite]) -> Result<(), StoreError> {
    for chunk in sized_chunks(tx, rows, ROWS_PER_INSERT, 3, |g| {
        g.source.len() + g.group_key.len()
    }) {
        let sql = multi_row(
            "INSERT INTO alert_groups (source, group_key, incident) VALUES ",
            3,
            chunk.len(),
            "",
        );
        let sql = super::placeholders::positional(tx, sql);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for g in chunk {
            q = q
                .bind(&g.source)
                .bind(&g.group_key)
                .bind(g.incident.number());
        }
        q.execute(&mut *tx).await.map_err(map_err)?;
    }
    Ok(())
}
