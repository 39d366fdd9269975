//! Scheduled jobs: leasing due ones.

use super::ops::binds;
use super::rows::*;
use super::*;

impl SqlStore {
    pub(super) async fn claim_jobs_sql(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owner: &str,
        limit: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let sql = format!(
            "UPDATE jobs SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 WHERE id IN (\
               SELECT id FROM jobs WHERE state = 'pending' AND due_at <= $3 \
                 AND (lease_until IS NULL OR lease_until < $3) \
               ORDER BY due_at, id LIMIT $4 {}) \
             RETURNING {JOB_COLUMNS}",
            self.skip_locked()
        );
        let rows: Vec<JobRow> = self.lease_rows(sql, owner, now, lease, limit).await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id;
            match row.into_job() {
                Ok(job) => jobs.push(job),
                // A row that cannot be read would fail every claim forever and hold up every
                // other job: it is dead-lettered at once, with the reason.
                Err(e) => {
                    tracing::error!(job = id, error = %e, "unreadable job dead-lettered");
                    self.write_statement(
                        "UPDATE jobs SET state = 'dead', done_at = $2, last_error = $3, \
                         lease_owner = NULL, lease_until = NULL WHERE id = $1",
                        binds![id, ms(now), e.to_string()],
                    )
                    .await?;
                }
            }
        }
        jobs.sort_by_key(|j| (j.due_at, j.id));
        Ok(jobs)
    }

    pub(super) async fn pending_jobs_sql(&self) -> Result<Vec<Job>, StoreError> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'pending' ORDER BY due_at, id");
        let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    pub(super) async fn job_attempt_failed_sql(
        &self,
        id: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        let error: String = error.chars().take(1000).collect();
        self.write_statement(
            "UPDATE jobs SET last_error = $2 WHERE id = $1 AND state = 'pending'",
            binds![id, error],
        )
        .await?;
        Ok(())
    }

    /// Deletes up to `batch` rows of each kind older than its cutoff, oldest first, each table in
    /// a statement of its own so intake never waits long behind retention.
    pub(super) async fn purge_sql(
        &self,
        before: PurgeBefore,
        batch: i64,
    ) -> Result<Purged, StoreError> {
        // As ops: on SQLite each delete shares a batch of the group writer (which may hold the
        // one writer connection through a storm); on PostgreSQL each is its own transaction.
        let run = |sql: &'static str, cutoff: DateTime<Utc>| {
            self.write_statement(sql, binds![ms(cutoff), batch])
        };
        Ok(Purged {
            messages: run(
                // Delivered messages, and pages cancelled by an acknowledgement (never sent):
                // each through its own partial index (an OR of the two would read every row).
                "DELETE FROM outbox WHERE id IN (SELECT id FROM (\
                   SELECT id FROM (SELECT id FROM outbox WHERE state = 'delivered' AND delivered_at < $1 \
                                   ORDER BY delivered_at LIMIT $2) d \
                   UNION ALL \
                   SELECT id FROM (SELECT id FROM outbox WHERE state = 'cancelled' AND created_at < $1 \
                                   ORDER BY created_at LIMIT $2) c) f \
                 ORDER BY id LIMIT $2)",
                before.delivered_messages,
            )
            .await?,
            jobs: run(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state IN ('done', 'cancelled', 'dead') \
                 AND done_at < $1 ORDER BY done_at LIMIT $2)",
                before.finished_jobs,
            )
            .await?,
            // Only alerts whose incident is no longer open: an open incident's alerts decide
            // when it resolves.
            alerts: run(
                "DELETE FROM alerts WHERE (source, fingerprint) IN (SELECT a.source, a.fingerprint FROM alerts a \
                 LEFT JOIN incidents i ON i.number = a.incident \
                 WHERE a.status = 'resolved' AND a.changed_at < $1 \
                   AND (i.number IS NULL OR i.state IN ('resolved', 'closed')) \
                 ORDER BY a.changed_at LIMIT $2)",
                before.resolved_alerts,
            )
            .await?,
            signatures: run(
                "DELETE FROM seen_signatures WHERE signature IN (SELECT signature FROM seen_signatures \
                 WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
                before.signatures,
            )
            .await?,
        })
    }

    /// Remembers a signature until `expires_at`; `false` when it was already seen and is still
    /// within its window (a replay, whichever replica or process saw it first).
    pub(super) async fn remember_signature_sql(
        &self,
        signature: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // One statement: the insert happens only when the signature is new or its window has
        // passed (the conflict's update is conditional), so "seen" is its row count.
        let n = self
            .write_statement(
                "INSERT INTO seen_signatures (signature, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (signature) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE seen_signatures.expires_at < $3",
                binds![signature, ms(expires_at), ms(now)],
            )
            .await?;
        Ok(n == 1)
    }

    pub(super) async fn forget_signature_sql(&self, signature: &str) -> Result<(), StoreError> {
        self.write_statement(
            "DELETE FROM seen_signatures WHERE signature = $1",
            binds![signature],
        )
        .await?;
        Ok(())
    }
}
