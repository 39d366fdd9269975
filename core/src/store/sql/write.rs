//! Writing a changeset: one transaction for everything one decision changes.

use super::rows::*;
use super::*;

impl SqlStore {
    /// Locks the audit head (PostgreSQL: `FOR UPDATE`) so concurrent writers, including other
    /// replicas, append to the chain one after another and it stays linear.
    async fn lock_audit_head(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
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

    /// Writes a changeset inside `tx`; `head` is the locked audit head when it has audit records.
    async fn write(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        cs: &Changeset,
        head: Option<(i64, String)>,
    ) -> Result<(), StoreError> {
        let tx = &mut **tx;
        match &cs.incident {
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
                let res = bind_incident(
                    sqlx::query(
                        "UPDATE incidents SET number=$1, level=$2, title=$3, components=$4, commander=$5, source=$6, \
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
            None => {}
        }

        for t in &cs.timeline {
            sqlx::query("INSERT INTO timeline (incident, at, actor, kind, text, public) VALUES ($1,$2,$3,$4,$5,$6)")
                .bind(t.incident.number())
                .bind(ms(t.at))
                .bind(&t.actor)
                .bind(t.kind.as_str())
                .bind(&t.text)
                .bind(t.public as i64)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }

        if let Some((mut seq, mut hash)) = head {
            for rec in &cs.audit {
                let key = self.audit_key.as_deref().ok_or_else(|| {
                    StoreError::Other(anyhow!("no audit key: the store was opened without one"))
                })?;
                let e = audit::seal(key, rec, seq, &hash);
                sqlx::query(
                    "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                )
                .bind(e.seq)
                .bind(ms(e.at))
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.subject)
                .bind(&e.detail)
                .bind(&e.prev_hash)
                .bind(&e.hash)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                seq = e.seq;
                hash = e.hash;
            }
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(seq)
                .bind(&hash)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }

        let now = cs
            .at
            .or_else(|| cs.timeline.first().map(|t| t.at))
            .or_else(|| cs.audit.first().map(|a| a.at))
            .unwrap_or_else(Utc::now);
        super::paging::cancel_pages(&mut *tx, cs).await?;
        for m in &cs.outbox {
            sqlx::query(
                "INSERT INTO outbox (channel, kind, target, incident, text, priority, idempotency_key, ordering_key, \
                 state, attempts, next_attempt_at, created_at, payload) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'pending',0,$9,$9,$10) \
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(m.channel.as_str())
            .bind(m.kind.as_str())
            .bind(&m.target)
            .bind(m.incident.map(|r| r.number()))
            .bind(&m.text)
            .bind(m.priority as i64)
            .bind(&m.idempotency_key)
            .bind(&m.ordering_key)
            .bind(ms(now))
            .bind(match (&m.page, &m.approval, &m.broadcast) {
                (Some(p), _, _) => Some(serde_json::to_string(p).expect("a page serialises")),
                (None, Some(a), _) => Some(serde_json::to_string(a).expect("an ask serialises")),
                (None, None, Some(b)) => {
                    Some(serde_json::to_string(b).expect("a broadcast serialises"))
                }
                (None, None, None) => None,
            })
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }

        for j in &cs.jobs {
            match j {
                JobChange::Schedule(n) => {
                    sqlx::query(
                        "INSERT INTO jobs (job_key, kind, incident, due_at, payload, state, attempts, created_at) \
                         VALUES ($1,$2,$3,$4,$5,'pending',0,$6) \
                         ON CONFLICT (job_key) DO UPDATE SET kind = excluded.kind, incident = excluded.incident, \
                         due_at = excluded.due_at, payload = excluded.payload, state = 'pending', \
                         lease_owner = NULL, lease_until = NULL, done_at = NULL",
                    )
                    .bind(&n.key)
                    .bind(n.payload.kind().as_str())
                    .bind(n.incident.map(|r| r.number()))
                    .bind(ms(n.due_at))
                    .bind(n.payload.to_json().to_string())
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
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
        for a in &cs.alerts {
            let labels = serde_json::to_string(&a.labels).expect("labels serialise");
            let annotations = serde_json::to_string(&a.annotations).expect("annotations serialise");
            let changes =
                serde_json::to_string(&a.recent_changes.iter().map(|t| ms(*t)).collect::<Vec<_>>())
                    .expect("times serialise");
            let sql = if a.version == 0 {
                "INSERT INTO alerts (source, fingerprint, status, labels, annotations, summary, group_key, incident, \
                 starts_at, ends_at, first_seen_at, changed_at, recent_changes, flapping, suppressed_by, version) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,1)"
            } else {
                "UPDATE alerts SET status = $3, labels = $4, annotations = $5, summary = $6, group_key = $7, \
                 incident = $8, starts_at = $9, ends_at = $10, first_seen_at = $11, changed_at = $12, \
                 recent_changes = $13, flapping = $14, suppressed_by = $15, version = version + 1 \
                 WHERE source = $1 AND fingerprint = $2 AND version = $16"
            };
            let res = sqlx::query(sql)
                .bind(&a.source)
                .bind(&a.fingerprint)
                .bind(a.status.as_str())
                .bind(labels)
                .bind(annotations)
                .bind(&a.summary)
                .bind(&a.group_key)
                .bind(a.incident.map(|r| r.number()))
                .bind(a.starts_at.map(ms))
                .bind(a.ends_at.map(ms))
                .bind(ms(a.first_seen_at))
                .bind(ms(a.changed_at))
                .bind(changes)
                .bind(a.flapping as i64)
                .bind(a.suppressed_by);
            let res = if a.version == 0 {
                res
            } else {
                res.bind(a.version)
            };
            let res = res.execute(&mut *tx).await.map_err(map_err)?;
            if res.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!(
                    "alert {}/{} changed since it was read",
                    a.source, a.fingerprint
                )));
            }
        }
        for g in &cs.alert_groups {
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
        Ok(())
    }

    pub(super) async fn commit_sql(&self, cs: Changeset) -> Result<(), StoreError> {
        if cs.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let head = if cs.audit.is_empty() {
            None
        } else {
            Some(self.lock_audit_head(&mut tx).await?)
        };
        self.write(&mut tx, &cs, head).await?;
        tx.commit().await.map_err(map_err)
    }

    pub(super) async fn commit_new_incident_sql(
        &self,
        build: &(dyn Fn(IncidentRef, i64) -> Changeset + Send + Sync),
    ) -> Result<IncidentRef, StoreError> {
        let mut tx = self.begin().await?;
        // The audit head lock serialises every declaring writer (on SQLite, BEGIN IMMEDIATE
        // already does), so MAX(number) read here cannot be taken by anyone else before commit.
        let head = self.lock_audit_head(&mut tx).await?;
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(number) FROM incidents")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let reference = IncidentRef::new(max.unwrap_or(0) + 1);
        // Every run insert carries an audit record, so it holds the head lock taken above.
        let max_run: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM runbook_runs")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let cs = build(reference, max_run.unwrap_or(0) + 1);
        if !matches!(&cs.incident, Some(IncidentWrite::Insert(i)) if i.reference == reference) {
            return Err(StoreError::Other(anyhow!(
                "commit_new_incident: the changeset must insert {reference}"
            )));
        }
        self.write(&mut tx, &cs, Some(head)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(reference)
    }
}
