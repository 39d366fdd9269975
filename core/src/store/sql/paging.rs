//! Paging: fenced delivery outcomes, cancelled pages, acknowledgement links and rotation
//! overrides.

use super::rows::*;
use super::*;
use crate::oncall::RotationOverride;

/// Delivered rows per statement at most.
const MARKS_PER_STATEMENT: usize = 200;

/// Marks delivered rows, those of one lease owner and time in one statement each: a dispatcher's
/// batch is one or a few statements, not one per message. Fenced like each single mark: every
/// row must still be leased by the owner, or the whole changeset fails (`LeaseLost`).
async fn mark_delivered(tx: &mut sqlx::AnyConnection, cs: &Changeset) -> Result<(), StoreError> {
    let mut groups: Vec<(&str, DateTime<Utc>, Vec<i64>)> = vec![];
    for m in cs.outbox_marks.iter().filter(|m| m.failed.is_none()) {
        match groups.iter_mut().find(|(owner, at, ids)| {
            *owner == m.owner && *at == m.at && ids.len() < MARKS_PER_STATEMENT
        }) {
            Some((_, _, ids)) => ids.push(m.id),
            None => groups.push((&m.owner, m.at, vec![m.id])),
        }
    }
    for (owner, at, ids) in groups {
        let mut sql = format!(
            "UPDATE outbox {} SET state = 'delivered', attempts = attempts + 1, delivered_at = $1, \
             lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner = $2 AND lease_until >= $3 AND state = 'pending' AND id IN (",
            super::by_rowid(tx)
        );
        for k in 0..ids.len() {
            if k > 0 {
                sql.push(',');
            }
            super::write::push_param(&mut sql, k + 4);
        }
        sql.push(')');
        // The time bound twice: every parameter once, in order, bound by position on SQLite.
        let sql = super::placeholders::positional(tx, sql);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ms(at))
            .bind(owner)
            .bind(ms(at));
        for id in &ids {
            q = q.bind(*id);
        }
        let res = q.execute(&mut *tx).await.map_err(map_err)?;
        // A repeated id would count once: compare with the distinct ids.
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if res.rows_affected() != distinct.len() as u64 {
            return Err(StoreError::LeaseLost);
        }
    }
    Ok(())
}

/// Writes the paging parts of a changeset inside its transaction.
pub(super) async fn write(tx: &mut sqlx::AnyConnection, cs: &Changeset) -> Result<(), StoreError> {
    mark_delivered(&mut *tx, cs).await?;
    for m in cs.outbox_marks.iter().filter(|m| m.failed.is_some()) {
        let (state, error) = match &m.failed {
            None => ("delivered", None),
            Some(e) => ("failed", Some(e.chars().take(1000).collect::<String>())),
        };
        let res = sqlx::query(
            "UPDATE outbox SET state = $2, attempts = attempts + 1, last_error = COALESCE($3, last_error), \
             delivered_at = CASE WHEN $2 = 'delivered' THEN $4 ELSE delivered_at END, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $1 AND lease_owner = $5 AND lease_until >= $4 AND state = 'pending'",
        )
        .bind(m.id)
        .bind(state)
        .bind(error)
        .bind(ms(m.at))
        .bind(&m.owner)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if res.rows_affected() != 1 {
            return Err(StoreError::LeaseLost);
        }
    }
    for l in &cs.ack_links {
        match l {
            AckLinkWrite::Insert(l) => {
                sqlx::query(
                    "INSERT INTO ack_links (id, incident, person, created_at, expires_at, used_at) \
                     VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&l.id)
                .bind(l.incident.number())
                .bind(&l.person)
                .bind(ms(l.created_at))
                .bind(ms(l.expires_at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            AckLinkWrite::Use { id, at } => {
                let res = sqlx::query(
                    "UPDATE ack_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL",
                )
                .bind(id)
                .bind(ms(*at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if res.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!(
                        "acknowledgement link {id} was used meanwhile"
                    )));
                }
            }
        }
    }
    for o in &cs.rotation_overrides {
        sqlx::query(
            "INSERT INTO rotation_overrides (rotation, person, starts_at, ends_at, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&o.rotation)
        .bind(o.person.as_str())
        .bind(ms(o.starts_at))
        .bind(ms(o.ends_at))
        .bind(&o.created_by)
        .bind(ms(o.created_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

/// Cancels the pending pages of acknowledged incidents. Runs before the changeset's own outbox
/// rows are inserted, so pages the same decision sends (a new escalation) survive.
pub(super) async fn cancel_pages(
    tx: &mut sqlx::AnyConnection,
    cs: &Changeset,
) -> Result<(), StoreError> {
    for r in &cs.cancel_pages {
        sqlx::query(
            "UPDATE outbox SET state = 'cancelled', last_error = 'no longer wanted: the incident was acknowledged', \
             lease_owner = NULL, lease_until = NULL \
             WHERE incident = $1 AND kind = 'page' AND state = 'pending'",
        )
        .bind(r.number())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

type LinkRow = (String, i64, String, i64, i64, Option<i64>);
type OverrideRow = (i64, String, String, i64, i64, String, i64);

impl SqlStore {
    pub(super) async fn ack_link_sql(&self, id: &str) -> Result<Option<AckLink>, StoreError> {
        let row: Option<LinkRow> = sqlx::query_as(
            "SELECT id, incident, person, created_at, expires_at, used_at FROM ack_links WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.map(|r| {
            Ok(AckLink {
                id: r.0,
                incident: IncidentRef::new(r.1),
                person: r.2,
                created_at: from_ms(r.3)?,
                expires_at: from_ms(r.4)?,
                used_at: r.5.map(from_ms).transpose()?,
            })
        })
        .transpose()
    }

    /// Overrides that have not ended by `after`, oldest first.
    pub(super) async fn rotation_overrides_sql(
        &self,
        after: DateTime<Utc>,
    ) -> Result<Vec<RotationOverride>, StoreError> {
        let rows: Vec<OverrideRow> = sqlx::query_as(
            "SELECT id, rotation, person, starts_at, ends_at, created_by, created_at \
             FROM rotation_overrides WHERE ends_at > $1 ORDER BY id",
        )
        .bind(ms(after))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(RotationOverride {
                    id: r.0,
                    rotation: r.1,
                    person: r.2.parse().map_err(|e| corrupt("override person", e))?,
                    starts_at: from_ms(r.3)?,
                    ends_at: from_ms(r.4)?,
                    created_by: r.5,
                    created_at: from_ms(r.6)?,
                })
            })
            .collect()
    }

    /// Every page message of an incident, oldest first.
    pub(super) async fn incident_pages_sql(
        &self,
        r: IncidentRef,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE incident = $1 AND kind = 'page' ORDER BY id"
        );
        let rows: Vec<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(r.number())
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(OutboxRow::into_message).collect()
    }
}
