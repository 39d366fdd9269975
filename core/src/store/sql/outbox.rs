//! The outbox: leasing deliverable messages and recording outcomes.

use super::rows::*;
use super::*;

impl SqlStore {
    pub(super) async fn claim_outbox_sql(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owner: &str,
        limit: i64,
        lane: Lane,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let lane = match lane {
            Lane::Pages => "o.kind = 'page'",
            Lane::Chat => "o.kind NOT IN ('page', 'broadcast')",
            Lane::Broadcasts => "o.kind = 'broadcast'",
        };
        // Only the oldest undelivered message of each ordering key is deliverable, so messages
        // to one channel arrive in order even across retries.
        let sql = format!(
            "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE id IN (\
               SELECT o.id FROM outbox o \
               WHERE o.state = 'pending' AND {lane} AND o.next_attempt_at <= $3 \
                 AND (o.lease_until IS NULL OR o.lease_until < $3) \
                 AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.ordering_key = o.ordering_key \
                                 AND p.state = 'pending' AND p.id < o.id) \
               ORDER BY o.priority DESC, o.id LIMIT $4 {skip}) \
             RETURNING {OUTBOX_COLUMNS}",
            skip = self.skip_locked()
        );
        let rows: Vec<OutboxRow> = self.lease_rows(sql, owner, now, lease, limit).await?;
        let mut out: Vec<OutboxMessage> = rows
            .into_iter()
            .map(OutboxRow::into_message)
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|m| (-m.priority, m.id));
        Ok(out)
    }

    /// Marks a message delivered, provided `owner` still holds its lease: a dispatcher whose
    /// lease ran out (and whose message another replica may be delivering) changes nothing.
    pub(super) async fn outbox_delivered_sql(
        &self,
        id: i64,
        owner: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE outbox SET state = 'delivered', delivered_at = $2, attempts = attempts + 1, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $3 AND lease_until >= $2 AND state = 'pending'",
        )
        .bind(id)
        .bind(ms(at))
        .bind(owner)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(res.rows_affected() == 1)
    }

    /// Records a failed attempt, fenced by the lease like [`Self::outbox_delivered`].
    pub(super) async fn outbox_attempt_failed_sql(
        &self,
        id: i64,
        owner: &str,
        at: DateTime<Utc>,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let error: String = error.chars().take(1000).collect();
        let (state, next) = match retry_at {
            Some(t) => ("pending", Some(ms(t))),
            None => ("failed", None),
        };
        let res = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, state = $3, \
             next_attempt_at = COALESCE($4, next_attempt_at), lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $5 AND lease_until >= $6 AND state = 'pending'",
        )
        .bind(id)
        .bind(error)
        .bind(state)
        .bind(next)
        .bind(owner)
        .bind(ms(at))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(res.rows_affected() == 1)
    }

    /// Gives back leased messages that `owner` will not deliver (its batch ran out of lease
    /// time), so they need not wait for the lease to expire.
    pub(super) async fn outbox_release_sql(
        &self,
        ids: &[i64],
        owner: &str,
    ) -> Result<(), StoreError> {
        for id in ids {
            sqlx::query(
                "UPDATE outbox SET lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
            )
            .bind(id)
            .bind(owner)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        }
        Ok(())
    }

    pub(super) async fn outbox_sql(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY id LIMIT $1");
        let rows: Vec<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(OutboxRow::into_message).collect()
    }
}
