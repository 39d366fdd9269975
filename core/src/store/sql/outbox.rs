//! The outbox: leasing deliverable messages and recording outcomes.

use super::ops::binds;
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
        let (lane, index) = match lane {
            Lane::Pages => ("o.kind = 'page'", "outbox_page_claim"),
            Lane::Chat => ("o.kind NOT IN ('page', 'broadcast')", "outbox_claim"),
            Lane::Broadcasts => ("o.kind = 'broadcast'", "outbox_broadcast_claim"),
        };
        // SQLite without statistics prefers a range over the due time and sorts every pending
        // row; the index in claim order lets it stop at the limit (SQLite migrations 0012 and
        // 0013: partial indexes of pending rows, whose conditions the query repeats).
        // PostgreSQL plans from its statistics, with its indexes by due time.
        let indexed = match self.backend {
            Backend::Sqlite => format!("INDEXED BY {index}"),
            Backend::Postgres => String::new(),
        };
        // Only the oldest undelivered message of each ordering key is deliverable, so messages
        // to one channel arrive in order even across retries.
        let sql = format!(
            "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE id IN (\
               SELECT o.id FROM outbox o {indexed} \
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
        let n = self
            .write_statement(
                "UPDATE outbox SET state = 'delivered', delivered_at = $2, attempts = attempts + 1, \
                 lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $3 AND lease_until >= $2 AND state = 'pending'",
                binds![id, ms(at), owner],
            )
            .await?;
        Ok(n == 1)
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
        let n = self
            .write_statement(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, state = $3, \
                 next_attempt_at = COALESCE($4, next_attempt_at), lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $5 AND lease_until >= $6 AND state = 'pending'",
                binds![id, error, state, next, owner, ms(at)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Gives back leased messages that `owner` will not deliver (its batch ran out of lease
    /// time, or a merged post is retried later), so they need not wait for the lease to expire.
    /// A few statements, not one per message: a merged post may stand for hundreds of rows.
    pub(super) async fn outbox_release_sql(
        &self,
        ids: &[i64],
        owner: &str,
    ) -> Result<(), StoreError> {
        let (ids, owner) = (ids.to_vec(), owner.to_string());
        self.write_op(move |conn| {
            let (ids, owner) = (ids.clone(), owner.clone());
            Box::pin(async move {
                // Well below SQLite's limit on bound parameters.
                for chunk in ids.chunks(500) {
                    let list = (0..chunk.len())
                        .map(|i| format!("${}", i + 2))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "UPDATE outbox {} SET lease_owner = NULL, lease_until = NULL \
                         WHERE lease_owner = $1 AND state = 'pending' AND id IN ({list})",
                        super::by_rowid(conn)
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner.clone());
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    q.execute(&mut *conn).await.map_err(map_err)?;
                }
                Ok(())
            })
        })
        .await
    }

    /// The pending messages behind `head` on its ordering key, oldest first.
    pub(super) async fn outbox_queued_sql(
        &self,
        head: i64,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox \
             WHERE ordering_key = (SELECT ordering_key FROM outbox WHERE id = $1) \
               AND state = 'pending' AND id > $1 ORDER BY id LIMIT $2"
        );
        let rows: Vec<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(head)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(OutboxRow::into_message).collect()
    }

    /// Leases the pending messages behind `head` on its key, up to id `last`, to the owner of
    /// `head`'s lease (fenced: nothing when `owner` no longer holds it), skipping any another
    /// owner holds a live lease on.
    pub(super) async fn outbox_lease_queued_sql(
        &self,
        head: i64,
        last: i64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = format!(
            "UPDATE outbox SET lease_owner = $1, lease_until = $2 \
             WHERE ordering_key = (SELECT ordering_key FROM outbox WHERE id = $3) \
               AND state = 'pending' AND id > $3 AND id <= $4 \
               AND (lease_until IS NULL OR lease_until < $5 OR lease_owner = $1) \
               AND EXISTS (SELECT 1 FROM outbox h WHERE h.id = $3 AND h.state = 'pending' \
                           AND h.lease_owner = $1 AND h.lease_until >= $5) \
             RETURNING {OUTBOX_COLUMNS}"
        );
        let owner = owner.to_string();
        let rows: Vec<OutboxRow> = self
            .write_op(move |conn| {
                let (sql, owner) = (sql.clone(), owner.clone());
                Box::pin(async move {
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(owner)
                        .bind(ms(until))
                        .bind(head)
                        .bind(last)
                        .bind(ms(now))
                        .fetch_all(conn)
                        .await
                        .map_err(map_err)
                })
            })
            .await?;
        let mut out: Vec<OutboxMessage> = rows
            .into_iter()
            .map(OutboxRow::into_message)
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|m| m.id);
        Ok(out)
    }

    /// Gives back a leased message not to be claimed before `until`, counting no attempt;
    /// fenced like [`Self::outbox_delivered_sql`].
    pub(super) async fn outbox_defer_sql(
        &self,
        id: i64,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .write_statement(
                "UPDATE outbox SET next_attempt_at = $3, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
                binds![id, owner, ms(until)],
            )
            .await?;
        Ok(n == 1)
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
