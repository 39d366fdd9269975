//! The status page's subscribers, and what has been announced about each public subject.

use super::rows::*;
use super::*;

type SubscriberRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    String,
    Option<i64>,
    Option<i64>,
);

const COLUMNS: &str = "id, kind, address, secret_env, components, state, created_at, created_by, \
                       confirmed_at, removed_at";

fn subscriber_of(r: SubscriberRow) -> Result<Subscriber, StoreError> {
    Ok(Subscriber {
        id: r.0,
        kind: SubscriberKind::parse(&r.1).ok_or_else(|| corrupt("subscriber kind", &r.1))?,
        address: r.2,
        secret_env: r.3,
        components: r
            .4
            .split(',')
            .filter(|c| !c.is_empty())
            .map(|c| c.parse().map_err(|e| corrupt("component", e)))
            .collect::<Result<_, _>>()?,
        state: SubscriberState::parse(&r.5).ok_or_else(|| corrupt("subscriber state", &r.5))?,
        created_at: from_ms(r.6)?,
        created_by: r.7,
        confirmed_at: r.8.map(from_ms).transpose()?,
        removed_at: r.9.map(from_ms).transpose()?,
    })
}

fn components_of(c: &[crate::domain::ComponentId]) -> String {
    c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
}

/// Writes the subscriber and notice parts of a changeset inside its transaction.
pub(super) async fn write(
    tx: &mut sqlx::AnyConnection,
    cs: &Changeset,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for w in &cs.subscribers {
        match w {
            SubscriberWrite::Insert(s) => {
                sqlx::query(
                    "INSERT INTO subscribers (id, kind, address, secret_env, components, state, created_at, \
                     created_by, confirmed_at, removed_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
                )
                .bind(s.id)
                .bind(s.kind.as_str())
                .bind(&s.address)
                .bind(&s.secret_env)
                .bind(components_of(&s.components))
                .bind(s.state.as_str())
                .bind(ms(s.created_at))
                .bind(&s.created_by)
                .bind(s.confirmed_at.map(ms))
                .bind(s.removed_at.map(ms))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            SubscriberWrite::Confirm { id, at } => {
                let res = sqlx::query(
                    "UPDATE subscribers SET state = 'active', confirmed_at = $2 \
                     WHERE id = $1 AND state = 'pending'",
                )
                .bind(id)
                .bind(ms(*at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if res.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!(
                        "subscriber {id} is no longer pending"
                    )));
                }
            }
            SubscriberWrite::Remove { id, at } => {
                // The address goes with the subscription: nothing personal is kept of someone
                // who unsubscribed (the row stays, so ids are never reused).
                let res = sqlx::query(
                    "UPDATE subscribers SET state = 'removed', removed_at = $2, address = '(removed)', \
                     secret_env = NULL WHERE id = $1 AND state <> 'removed'",
                )
                .bind(id)
                .bind(ms(*at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if res.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!(
                        "subscriber {id} was removed already"
                    )));
                }
                // What was queued for it is no longer wanted: cancelled, not dead letters.
                sqlx::query(
                    "UPDATE outbox SET state = 'cancelled', last_error = 'no longer wanted: the subscriber was removed', \
                     lease_owner = NULL, lease_until = NULL \
                     WHERE ordering_key = $1 AND kind = 'broadcast' AND state = 'pending'",
                )
                .bind(format!("subscriber:{id}"))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            SubscriberWrite::Components { id, components } => {
                sqlx::query("UPDATE subscribers SET components = $2 WHERE id = $1")
                    .bind(id)
                    .bind(components_of(components))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
        }
    }
    for n in &cs.notices {
        let res = match &n.old {
            None => sqlx::query(
                "INSERT INTO status_notices (subject, state, updated_at) VALUES ($1,$2,$3) \
                 ON CONFLICT (subject) DO NOTHING",
            )
            .bind(&n.subject)
            .bind(&n.new)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?,
            Some(old) => sqlx::query(
                "UPDATE status_notices SET state = $2, updated_at = $3 WHERE subject = $1 AND state = $4",
            )
            .bind(&n.subject)
            .bind(&n.new)
            .bind(ms(now))
            .bind(old)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?,
        };
        if res.rows_affected() != 1 {
            return Err(StoreError::Conflict(format!(
                "{} was announced by someone else meanwhile",
                n.subject
            )));
        }
    }
    Ok(())
}

impl SqlStore {
    pub(super) async fn subscribers_sql(&self) -> Result<Vec<Subscriber>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM subscribers ORDER BY id");
        let rows: Vec<SubscriberRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(subscriber_of).collect()
    }

    pub(super) async fn subscriber_sql(&self, id: i64) -> Result<Option<Subscriber>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM subscribers WHERE id = $1");
        let row: Option<SubscriberRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(subscriber_of).transpose()
    }

    pub(super) async fn next_subscriber_id_sql(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM subscribers")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(n.unwrap_or(0) + 1)
    }

    pub(super) async fn status_notices_sql(
        &self,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT subject, state FROM status_notices")
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
        Ok(rows.into_iter().collect())
    }

    /// Broadcasts given up (dead letters), per channel: what `/metrics` and `subscribers list`
    /// show, so a subscriber that stopped getting mail is never silent.
    pub(super) async fn broadcast_failures_sql(
        &self,
    ) -> Result<Vec<(String, i64, Option<String>)>, StoreError> {
        let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT ordering_key, COUNT(*), MAX(last_error) FROM outbox \
             WHERE kind = 'broadcast' AND state = 'failed' GROUP BY ordering_key ORDER BY ordering_key",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(rows)
    }
}
