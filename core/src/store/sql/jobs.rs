//! Scheduled jobs: leasing due ones.

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
        let mut jobs: Vec<Job> = rows
            .into_iter()
            .map(JobRow::into_job)
            .collect::<Result<_, _>>()?;
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
}
