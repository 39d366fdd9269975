//! Writing job changes: schedules in multi-row upserts (a declaration schedules its RTO clock,
//! every escalation tier and its publication at once), the rest one statement each, in order.

use super::rows::*;
use super::*;
use std::borrow::Cow;

/// Parameters per scheduled job row.
const COLUMNS: usize = 6;
const ROWS: usize = 200;

pub(super) async fn write(
    tx: &mut AnyConnection,
    jobs: &[JobChange],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut schedules: Vec<Cow<'_, NewJob>> = vec![];
    for j in jobs {
        if let JobChange::Schedule(n) = j {
            schedules.push(Cow::Borrowed(n));
            continue;
        }
        // Hastening a job this changeset schedules is done on the row before it is written
        // (what the statement would do to it: the earlier of the two times), so a declaration
        // whose first tier cannot be reached stays one upsert.
        if let JobChange::Hasten { key, due_at } = j {
            if let Some(n) = schedules.iter_mut().rev().find(|n| n.key == *key) {
                if n.due_at > *due_at {
                    n.to_mut().due_at = *due_at;
                }
                continue;
            }
        }
        // Order matters (a cancel after a schedule cancels it): what came before goes first.
        schedule(&mut *tx, std::mem::take(&mut schedules), now).await?;
        match j {
            JobChange::Schedule(_) => unreachable!("taken above"),
            JobChange::Cancel { incident, kind } => {
                sqlx::query(
                    "UPDATE jobs SET state = 'cancelled', done_at = $3, lease_owner = NULL, lease_until = NULL \
                     WHERE incident = $1 AND kind = $2 AND state = 'pending'",
                )
                .bind(incident.number())
                .bind(kind.as_str())
                .bind(ms(now))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            JobChange::Hasten { key, due_at } => {
                sqlx::query(
                    "UPDATE jobs SET due_at = $2 WHERE job_key = $1 AND state = 'pending' AND due_at > $2",
                )
                .bind(key)
                .bind(ms(*due_at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            JobChange::Complete { id, due_at } => {
                sqlx::query(
                    "UPDATE jobs SET state = 'done', done_at = $2, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $1 AND due_at = $3 AND state = 'pending'",
                )
                .bind(*id)
                .bind(ms(now))
                .bind(ms(*due_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            JobChange::DeadLetter { id, error } => {
                let error: String = error.chars().take(1000).collect();
                sqlx::query(
                    "UPDATE jobs SET state = 'dead', done_at = $2, last_error = $3, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $1 AND state = 'pending'",
                )
                .bind(*id)
                .bind(ms(now))
                .bind(error)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
        }
    }
    schedule(tx, schedules, now).await
}

/// Upserts scheduled jobs; a key scheduled twice keeps the last (as one upsert after another
/// would, and PostgreSQL refuses one statement touching a row twice).
async fn schedule(
    tx: &mut AnyConnection,
    jobs: Vec<Cow<'_, NewJob>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    schedule_at(tx, jobs.into_iter().map(|j| (j, now)).collect()).await
}

/// Upserts scheduled jobs, each created at its own time (the batch's declarations' schedules
/// are written together: see [`super::write::Deferred`]).
pub(super) async fn schedule_at(
    tx: &mut AnyConnection,
    jobs: Vec<(Cow<'_, NewJob>, DateTime<Utc>)>,
) -> Result<(), StoreError> {
    let mut last: Vec<(Cow<'_, NewJob>, DateTime<Utc>)> = Vec::with_capacity(jobs.len());
    for j in jobs {
        last.retain(|k| k.0.key != j.0.key);
        last.push(j);
    }
    for chunk in last.chunks(ROWS) {
        let sql = super::write::rows_sql(
            "INSERT INTO jobs (job_key, kind, incident, due_at, payload, state, attempts, created_at) VALUES ",
            COLUMNS,
            chunk.len(),
            " ON CONFLICT (job_key) DO UPDATE SET kind = excluded.kind, incident = excluded.incident, \
             due_at = excluded.due_at, payload = excluded.payload, state = 'pending', \
             lease_owner = NULL, lease_until = NULL, done_at = NULL",
            |sql, n| {
                for c in 1..=5 {
                    super::write::push_param(sql, n + c);
                    sql.push(',');
                }
                sql.push_str("'pending',0,");
                super::write::push_param(sql, n + 6);
            },
        );
        let sql = super::placeholders::positional(tx, sql);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (n, now) in chunk {
            q = q
                .bind(&n.key)
                .bind(n.payload.kind().as_str())
                .bind(n.incident.map(|r| r.number()))
                .bind(ms(n.due_at))
                .bind(n.payload.to_json().to_string())
                .bind(ms(*now));
        }
        q.execute(&mut *tx).await.map_err(map_err)?;
    }
    Ok(())
}
