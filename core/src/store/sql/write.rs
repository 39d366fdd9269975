//! Writing a changeset: one transaction for everything one decision changes.

use super::deferred::{defers_new_incident, Deferred};
use super::placeholders::positional;
use super::rows::*;
use super::*;
use crate::audit::AuditRecord;

impl SqlStore {
    /// Locks the audit head (PostgreSQL: `FOR UPDATE`) so concurrent writers, including other
    /// replicas, append to the chain one after another and it stays linear.
    pub(super) async fn lock_audit_head(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(i64, String), StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => "SELECT seq, hash FROM audit_head WHERE id = 1",
            Backend::Postgres => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
        };
        let row = sqlx::query(sql)
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok((
            row.try_get::<i64, _>(0).map_err(map_err)?,
            row.try_get::<String, _>(1).map_err(map_err)?,
        ))
    }

    /// Appends audit records to the chain, after the head `head` (locked by the caller), in
    /// multi-row inserts, and moves the head. Returns the new head.
    pub(super) async fn append_audit(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        records: &[AuditRecord],
        head: (i64, String),
    ) -> Result<(i64, String), StoreError> {
        let key = self.audit_key.as_deref().ok_or_else(|| {
            StoreError::Other(anyhow!("no audit key: the store was opened without one"))
        })?;
        let (mut seq, mut hash) = head;
        let mut entries = Vec::with_capacity(records.len());
        for rec in records {
            let e = audit::seal(key, rec, seq, &hash);
            seq = e.seq;
            hash = e.hash.clone();
            entries.push(e);
        }
        let chunks = sized_chunks(tx, &entries, ROWS_PER_INSERT, 8, |e| {
            e.detail.len() + e.subject.len() + e.actor.len() + 200
        });
        let last = chunks.len().saturating_sub(1);
        for (c, chunk) in chunks.into_iter().enumerate() {
            let mut sql = multi_row(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES ",
                8,
                chunk.len(),
                "",
            );
            // SQLite takes the head's move in the same round trip as the last insert (its
            // statements may share one query text and its parameters).
            let with_head = c == last && self.backend == Backend::Sqlite;
            if with_head {
                let n = chunk.len() * 8;
                sql.push_str(&format!(
                    "; UPDATE audit_head SET seq = ${}, hash = ${} WHERE id = 1",
                    n + 1,
                    n + 2
                ));
            }
            let sql = positional(tx, sql);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                q = q
                    .bind(e.seq)
                    .bind(ms(e.at))
                    .bind(&e.actor)
                    .bind(&e.action)
                    .bind(&e.subject)
                    .bind(&e.detail)
                    .bind(&e.prev_hash)
                    .bind(&e.hash);
            }
            if with_head {
                q = q.bind(seq).bind(hash.clone());
            }
            q.execute(&mut **tx).await.map_err(map_err)?;
        }
        if self.backend != Backend::Sqlite || entries.is_empty() {
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(seq)
                .bind(&hash)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
        }
        Ok((seq, hash))
    }

    /// Writes a changeset inside `tx`, all but its audit records (the batch appends those to
    /// the chain at its end, see [`super::group`]).
    ///
    /// With `deferred`, its timeline entries and new alert rows are left there for the batch to
    /// insert together with other changesets' (see [`super::group`]).
    pub(super) async fn write(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        cs: &Changeset,
        deferred: Option<&mut Deferred>,
    ) -> Result<(), StoreError> {
        if !cs.audit.is_empty() && self.audit_key.is_none() {
            return Err(StoreError::Other(anyhow!(
                "no audit key: the store was opened without one"
            )));
        }
        let tx = &mut **tx;
        let mut deferred = deferred;
        // A write of the incident moves its version: guards after it are checked again.
        if let (Some(d), Some(IncidentWrite::Insert(i) | IncidentWrite::Update(i))) =
            (deferred.as_deref_mut(), &cs.incident)
        {
            d.guarded.remove(&i.reference.number());
        }
        // A new incident's own rows go into the batch's shared inserts when nothing of its
        // changeset is written on its own that refers to it (see `Deferred`).
        let new_only = deferred.is_some() && defers_new_incident(cs);
        match &cs.incident {
            Some(IncidentWrite::Insert(i)) if new_only => {
                if let Some(d) = deferred.as_deref_mut() {
                    d.incidents.push(i.clone());
                }
            }
            Some(IncidentWrite::Insert(i)) => {
                let sql = format!(
                    "INSERT INTO incidents ({INCIDENT_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)"
                );
                bind_incident(sqlx::query(sqlx::AssertSqlSafe(sql)), i, 1)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            Some(IncidentWrite::Update(i)) => {
                // The number is the key, never set: SQLite checks every table referencing a
                // parent key named in SET (foreign keys are on), and `alert_groups` has no
                // index on its incident, so `SET number` scanned it on every update.
                let res = bind_incident(
                    sqlx::query(
                        "UPDATE incidents SET level=$2, title=$3, components=$4, commander=$5, source=$6, \
                         state=$7, phase=$8, declared_by=$9, declared_at=$10, acknowledged_at=$11, acknowledged_by=$12, \
                         resolved_at=$13, closed_at=$14, rto_deadline=$15, summary=$16, version=$17, \
                         escalation_tier=$18 WHERE number=$1 AND version=$19",
                    ),
                    i,
                    i.version + 1,
                )
                .bind(i.version)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if res.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!(
                        "{} changed since it was read",
                        i.reference
                    )));
                }
            }
            Some(IncidentWrite::Guard(i)) => match deferred.as_deref_mut() {
                Some(d) if d.guarded.get(&i.reference.number()) == Some(&i.version) => {}
                Some(d) => {
                    guard_incident(&mut *tx, self.backend, i).await?;
                    d.guarded.insert(i.reference.number(), i.version);
                }
                None => guard_incident(&mut *tx, self.backend, i).await?,
            },
            None => {}
        }

        let mut deferred = match deferred {
            Some(d) => {
                d.timeline.extend(cs.timeline.iter().cloned());
                Some(d)
            }
            None => {
                insert_timeline(&mut *tx, &cs.timeline.iter().collect::<Vec<_>>()).await?;
                None
            }
        };

        let now = cs
            .at
            .or_else(|| cs.timeline.first().map(|t| t.at))
            .or_else(|| cs.audit.first().map(|a| a.at))
            .unwrap_or_else(Utc::now);
        // Pages cancelled and subscribers removed act on queued rows: the batch's deferred ones
        // are queued first.
        if !cs.cancel_pages.is_empty() || !cs.subscribers.is_empty() {
            if let Some(d) = deferred.as_deref_mut() {
                d.flush_outbox(&mut *tx).await?;
            }
        }
        super::paging::cancel_pages(&mut *tx, cs).await?;
        let rows: Vec<(&NewMessage, DateTime<Utc>)> = cs.outbox.iter().map(|m| (m, now)).collect();
        match deferred.as_deref_mut() {
            Some(d) => d.outbox.extend(cs.outbox.iter().map(|m| (m.clone(), now))),
            None => insert_outbox(&mut *tx, &rows).await?,
        }

        match deferred.as_deref_mut() {
            Some(d) if new_only => d.jobs.extend(cs.jobs.iter().filter_map(|j| match j {
                JobChange::Schedule(n) => Some((n.clone(), now)),
                _ => None,
            })),
            _ => super::job_writes::write(&mut *tx, &cs.jobs, now).await?,
        }
        let (new, known): (Vec<&AlertRecord>, Vec<&AlertRecord>) =
            cs.alerts.iter().partition(|a| a.version == 0);
        // Inserts first: a row inserted and then updated in one changeset stays in that order.
        match &mut deferred {
            Some(d) => d.alerts.extend(new.into_iter().cloned()),
            None => super::alert_rows::insert_new(&mut *tx, &new).await?,
        }
        super::alert_rows::update_known(&mut *tx, &known).await?;
        for g in &cs.alert_groups {
            if let (Some(d), true) = (deferred.as_deref_mut(), new_only) {
                d.groups.push(g.clone());
                continue;
            }
            let res = match g.previous {
                None => sqlx::query("INSERT INTO alert_groups (source, group_key, incident) VALUES ($1, $2, $3)")
                    .bind(&g.source)
                    .bind(&g.group_key)
                    .bind(g.incident.number())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?,
                Some(prev) => sqlx::query(
                    "UPDATE alert_groups SET incident = $3 WHERE source = $1 AND group_key = $2 AND incident = $4",
                )
                .bind(&g.source)
                .bind(&g.group_key)
                .bind(g.incident.number())
                .bind(prev.number())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?,
            };
            if res.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!(
                    "alert group {}/{} changed since it was read",
                    g.source, g.group_key
                )));
            }
        }
        for m in &cs.maintenance {
            match m {
                MaintenanceWrite::Insert(w) => {
                    sqlx::query(
                        "INSERT INTO maintenance (id, components, starts_at, ends_at, reason, created_by, public) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(w.id)
                    .bind(w.components.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","))
                    .bind(ms(w.starts_at))
                    .bind(ms(w.ends_at))
                    .bind(&w.reason)
                    .bind(&w.created_by)
                    .bind(w.public as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                MaintenanceWrite::End { id, at, by } => {
                    sqlx::query("UPDATE maintenance SET ended_at = $2, ended_by = $3 WHERE id = $1 AND ended_at IS NULL")
                        .bind(*id)
                        .bind(ms(*at))
                        .bind(by)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
            }
        }
        for h in &cs.heartbeats {
            sqlx::query(
                "INSERT INTO heartbeats (name, last_seen, incident) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen, incident = excluded.incident",
            )
            .bind(&h.name)
            .bind(ms(h.last_seen))
            .bind(h.incident.map(|r| r.number()))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        for t in &cs.api_tokens {
            super::api_tokens::write(&mut *tx, t).await?;
        }
        super::paging::write(&mut *tx, cs).await?;
        super::runs::write(&mut *tx, cs).await?;
        super::public::write(&mut *tx, cs).await?;
        super::subscribers::write(&mut *tx, cs, now).await?;
        // After every row of the changeset: with `deferred`, after the batch's shared inserts,
        // which may hold another unit's alert joining the incident.
        match deferred {
            Some(d) => d.all_resolved.extend(cs.all_resolved.iter().copied()),
            None => check_all_resolved(&mut *tx, &cs.all_resolved).await?,
        }
        Ok(())
    }

    pub(super) async fn commit_sql(&self, cs: Changeset) -> Result<(), StoreError> {
        if cs.is_empty() {
            return Ok(());
        }
        self.commit_unit(vec![Part::Write(cs)], &|_, _, _| Changeset::default())
            .await
            .map(|_| ())
    }

    pub(super) async fn commit_new_incident_sql(
        &self,
        build: &(dyn Fn(IncidentRef, i64) -> Changeset + Send + Sync),
    ) -> Result<IncidentRef, StoreError> {
        let refs = self
            .commit_unit(vec![Part::Declare], &|_, number, run_id| {
                build(number, run_id)
            })
            .await?;
        refs.into_iter()
            .next()
            .ok_or_else(|| StoreError::Other(anyhow!("the declaration was not numbered")))
    }
}

/// New outbox rows, each stamped with its changeset's time, in multi-row inserts.
pub(super) async fn insert_outbox(
    tx: &mut AnyConnection,
    rows: &[(&NewMessage, DateTime<Utc>)],
) -> Result<(), StoreError> {
    for chunk in sized_chunks(tx, rows, ROWS_PER_INSERT, 11, |(m, _)| {
        m.text.len() + m.target.len() + m.idempotency_key.len() + m.ordering_key.len() + 512
    }) {
        let sql = rows_sql(
            "INSERT INTO outbox (channel, kind, target, incident, text, priority, idempotency_key, ordering_key, \
             state, attempts, next_attempt_at, created_at, payload) VALUES ",
            11,
            chunk.len(),
            " ON CONFLICT (idempotency_key) DO NOTHING",
            outbox_row,
        );
        let sql = positional(tx, sql);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (m, now) in chunk {
            q = q
                .bind(m.channel.as_str())
                .bind(m.kind.as_str())
                .bind(&m.target)
                .bind(m.incident.map(|r| r.number()))
                .bind(&m.text)
                .bind(m.priority as i64)
                .bind(&m.idempotency_key)
                .bind(&m.ordering_key)
                .bind(ms(*now))
                .bind(ms(*now))
                .bind(match (&m.page, &m.approval, &m.broadcast) {
                    (Some(p), _, _) => Some(serde_json::to_string(p).expect("a page serialises")),
                    (None, Some(a), _) => {
                        Some(serde_json::to_string(a).expect("an ask serialises"))
                    }
                    (None, None, Some(b)) => {
                        Some(serde_json::to_string(b).expect("a broadcast serialises"))
                    }
                    (None, None, None) => None,
                });
        }
        q.execute(&mut *tx).await.map_err(map_err)?;
    }

    Ok(())
}

/// An incident a decision left as read: still at the version read, or `Conflict`. On
/// PostgreSQL the row is share-locked to the commit, so a concurrent change (another replica's)
/// waits for this write and then sees its rows (see [`check_all_resolved`]), or this write
/// waits for the change and then fails here.
async fn guard_incident(
    tx: &mut AnyConnection,
    backend: Backend,
    i: &Incident,
) -> Result<(), StoreError> {
    let sql = match backend {
        Backend::Sqlite => "SELECT version FROM incidents WHERE number = $1",
        Backend::Postgres => "SELECT version FROM incidents WHERE number = $1 FOR SHARE",
    };
    let version: Option<i64> = sqlx::query_scalar(sql)
        .bind(i.reference.number())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
    if version != Some(i.version) {
        return Err(StoreError::Conflict(format!(
            "{} changed since it was read",
            i.reference
        )));
    }
    Ok(())
}

/// Each incident has no firing alert (a quiet period starting), or `Conflict`: an alert that
/// joined it since it was read is decided again with it.
pub(super) async fn check_all_resolved(
    tx: &mut AnyConnection,
    incidents: &[IncidentRef],
) -> Result<(), StoreError> {
    for r in incidents {
        let firing: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM alerts WHERE incident = $1 AND status = 'firing'",
        )
        .bind(r.number())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        if firing > 0 {
            return Err(StoreError::Conflict(format!(
                "an alert of {r} fired since its alerts were read as resolved"
            )));
        }
    }
    Ok(())
}

pub(super) async fn insert_timeline(
    tx: &mut AnyConnection,
    rows: &[&TimelineEntry],
) -> Result<(), StoreError> {
    for chunk in sized_chunks(tx, rows, ROWS_PER_INSERT, 6, |t| {
        t.text.len() + t.actor.len()
    }) {
        let sql = multi_row(
            "INSERT INTO timeline (incident, at, actor, kind, text, public) VALUES ",
            6,
            chunk.len(),
            "",
        );
        let sql = positional(tx, sql);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in chunk {
            q = q
                .bind(t.incident.number())
                .bind(ms(t.at))
                .bind(&t.actor)
                .bind(t.kind.as_str())
                .bind(&t.text)
                .bind(t.public as i64);
        }
        q.execute(&mut *tx).await.map_err(map_err)?;
    }
    Ok(())
}

/// About this many bytes of values per statement on PostgreSQL. sqlx does not set
/// `TCP_NODELAY`, and a large statement's tail waited for the server's delayed ACK: measured in
/// the storm benchmark, merged alert inserts of about 32 KiB took 44 ms each (Nagle's 40 ms), at
/// 6 KiB they take well under a millisecond.
const STATEMENT_BYTES: usize = 6 * 1024;

/// At most this many parameters per statement on SQLite, which has no socket to fill: there a
/// statement costs a round trip to the connection's thread (100–300 µs under load). One
/// statement per batch and table slowed an alert storm of 200-alert batches (3,000 parameters)
/// by a third, when binding was still quadratic in a statement's parameters (named `$n`, see
/// [`super::placeholders`]); chunks of 6 KiB of values cost a storm of declarations five
/// statements for its outbox rows alone. Bound by position, 1,600 parameters still stored a
/// storm slower than 400 (24,047 and 22,128 alerts/s against 25,636 and 23,844, paired).
const SQLITE_PARAMS: usize = 400;

/// `rows` in chunks for multi-row inserts of `columns` parameters a row: on SQLite at most
/// [`SQLITE_PARAMS`] parameters, on PostgreSQL about [`STATEMENT_BYTES`] (by `size`); at most
/// `max_rows` rows either way.
pub(super) fn sized_chunks<'r, T>(
    conn: &AnyConnection,
    rows: &'r [T],
    max_rows: usize,
    columns: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<&'r [T]> {
    if conn.backend_name() == "SQLite" {
        return rows
            .chunks(max_rows.min(SQLITE_PARAMS / columns.max(1)).max(1))
            .collect();
    }
    let limit = STATEMENT_BYTES;
    let mut out = vec![];
    let (mut start, mut bytes) = (0, 0usize);
    for (i, row) in rows.iter().enumerate() {
        let b = size(row) + 64;
        if i > start && (i - start >= max_rows || bytes.saturating_add(b) > limit) {
            out.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += b;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

/// Rows per multi-row insert: well under SQLite's 32,766 and PostgreSQL's 65,535 parameters.
pub(super) const ROWS_PER_INSERT: usize = 200;

/// `INSERT … VALUES ($1,$2),($3,$4)…` for `rows` rows of `columns` plain parameters each,
/// then `tail`.
pub(super) fn multi_row(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    rows_sql(head, columns, rows, tail, |sql, n| {
        for c in 1..=columns {
            if c > 1 {
                sql.push(',');
            }
            push_param(sql, n + c);
        }
    })
}

/// `head`, then `rows` parenthesised rows spelled by `row(sql, n)` (`n`: the number of the
/// parameter before the row's first), then `tail`.
pub(super) fn rows_sql(
    head: &str,
    columns: usize,
    rows: usize,
    tail: &str,
    row: impl Fn(&mut String, usize),
) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (columns * 5 + 3) + tail.len());
    sql.push_str(head);
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        row(&mut sql, r * columns);
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

pub(super) fn push_param(sql: &mut String, n: usize) {
    use std::fmt::Write;
    let _ = write!(sql, "${n}");
}

/// An outbox row: eight parameters, the fixed state and attempt count, the time twice (next
/// attempt and creation: bound twice, so every parameter is used once, in order, and SQLite
/// binds them by position, see [`positional`]), the payload.
fn outbox_row(sql: &mut String, n: usize) {
    for c in 1..=8 {
        push_param(sql, n + c);
        sql.push(',');
    }
    sql.push_str("'pending',0,");
    for c in 9..=11 {
        push_param(sql, n + c);
        if c < 11 {
            sql.push(',');
        }
    }
}
