//! The SQL adapter of the store port: one implementation over SQLite and PostgreSQL through
//! sqlx's `Any` driver, with runtime queries (no live database at build time).
//!
//! Portable SQL throughout: `$n` placeholders (SQLite accepts them), BIGINT milliseconds for
//! time, 0/1 integers for flags, `ON CONFLICT` upserts. Where the backends must differ it is
//! spelled out: SQLite writes begin `IMMEDIATE` on a single writer connection (so a
//! read-then-write never fails on a lock upgrade and writers queue in-process), PostgreSQL
//! claims with `FOR UPDATE SKIP LOCKED` and serialises audit appends on the head row.

use super::*;
use crate::alerts::AlertStatus;
use crate::audit::{self, AuditEntry};
use crate::domain::{
    Incident, IncidentRef, LevelId, Phase, Source, State, StateFilter, TimelineEntry,
};
use anyhow::{anyhow, Context};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Executor, Row};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct SqlStore {
    backend: Backend,
    /// Transactions go here. On SQLite a single connection: one writer at a time is what SQLite
    /// allows anyway, and queueing in-process is fairer and faster than busy-waiting on a lock.
    writer: AnyPool,
    /// Reads go here (the same pool on PostgreSQL).
    reader: AnyPool,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Connects (creating a SQLite file and its folder when missing). Does not migrate.
    ///
    /// # Errors
    /// An unsupported URL, or a database that cannot be reached.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(anyhow!(
                "unsupported database url: use sqlite://PATH or postgres://USER@HOST/DB"
            ));
        };
        let shown = crate::config::redact_url(url);
        match backend {
            Backend::Sqlite => {
                let url = sqlite_url(url)?;
                let writer = pool(&url, 1)
                    .await
                    .with_context(|| format!("cannot open {shown}"))?;
                let reader = pool(&url, max_connections.max(2))
                    .await
                    .with_context(|| format!("cannot open {shown}"))?;
                Ok(SqlStore {
                    backend,
                    writer,
                    reader,
                })
            }
            Backend::Postgres => {
                let p = pool(url, max_connections)
                    .await
                    .with_context(|| format!("cannot connect to {shown}"))?;
                Ok(SqlStore {
                    backend,
                    writer: p.clone(),
                    reader: p,
                })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations; a no-op when the schema is current.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.migrator()
            .run(&self.writer)
            .await
            .context("applying migrations")?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        let stmt = match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        self.writer.begin_with(stmt).await.map_err(map_err)
    }

    /// Runs a claiming `UPDATE … RETURNING` whose parameters are (owner, lease end, now, limit)
    /// in a write transaction: the outbox and the job table lease rows the same way.
    async fn lease_rows<R>(
        &self,
        sql: String,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<R>, StoreError>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let mut tx = self.begin().await?;
        let rows: Vec<R> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(ms(now + lease))
            .bind(ms(now))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(rows)
    }

    fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }
}

/// `sqlite://data/x.db` → make sure `data/` exists and the file is created on first open.
fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    let mut out = format!("sqlite://{path}");
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if !params.iter().any(|p| p.starts_with("mode=")) {
        params.push("mode=rwc");
    }
    out.push('?');
    out.push_str(&params.join("&"));
    Ok(out)
}

async fn pool(url: &str, max: u32) -> Result<AnyPool, sqlx::Error> {
    AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(0)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .after_connect(|conn: &mut AnyConnection, _meta| {
            Box::pin(async move {
                if conn.backend_name() == "SQLite" {
                    // WAL lets readers run beside the writer; FULL makes every acknowledged
                    // commit survive power loss, not only a process crash.
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// Classifies a database error for the edges: transient (503, retry) or not.
fn map_err(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &e {
        E::PoolTimedOut
        | E::PoolClosed
        | E::Io(_)
        | E::Tls(_)
        | E::WorkerCrashed
        | E::Protocol(_) => StoreError::Unavailable(anyhow::Error::new(e)),
        E::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_string());
            }
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            // SQLite: BUSY(5), LOCKED(6), READONLY(8), IOERR(10), CORRUPT(11), FULL(13),
            // CANTOPEN(14) and their extended codes. PostgreSQL: connection exceptions (08),
            // insufficient resources (53), operator intervention (57), read-only (25006),
            // serialization failures and deadlocks (40).
            let primary = code.parse::<i64>().ok().map(|c| c & 0xff);
            let sqlite_transient = matches!(primary, Some(5 | 6 | 8 | 10 | 13 | 14));
            // 55000 is what a database refusing connections (ALLOW_CONNECTIONS false, being
            // dropped or restored) answers at connect time.
            let pg_transient = ["08", "53", "57", "40"].iter().any(|p| code.starts_with(p))
                || code == "25006"
                || code == "55000";
            if sqlite_transient || (pg_transient && code.len() == 5) {
                StoreError::Unavailable(anyhow::Error::new(e))
            } else {
                StoreError::Other(anyhow::Error::new(e))
            }
        }
        _ => StoreError::Other(anyhow::Error::new(e)),
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Other(anyhow!("bad timestamp {v} in the database")))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow!("bad {what} in the database: {e}"))
}

const INCIDENT_COLUMNS: &str = "number, level, title, components, commander, source, state, phase, declared_by, \
     declared_at, acknowledged_at, acknowledged_by, resolved_at, closed_at, rto_deadline, summary, version";

#[derive(sqlx::FromRow)]
struct IncidentRow {
    number: i64,
    level: i64,
    title: String,
    components: String,
    commander: Option<String>,
    source: String,
    state: String,
    phase: String,
    declared_by: String,
    declared_at: i64,
    acknowledged_at: Option<i64>,
    acknowledged_by: Option<String>,
    resolved_at: Option<i64>,
    closed_at: Option<i64>,
    rto_deadline: i64,
    summary: Option<String>,
    version: i64,
}

impl IncidentRow {
    fn into_incident(self) -> Result<Incident, StoreError> {
        let opt_ms = |v: Option<i64>| v.map(from_ms).transpose();
        Ok(Incident {
            reference: IncidentRef(self.number),
            level: LevelId(u8::try_from(self.level).map_err(|e| corrupt("level", e))?),
            title: self.title,
            components: self
                .components
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().map_err(|e| corrupt("component", e)))
                .collect::<Result<_, _>>()?,
            commander: self
                .commander
                .map(|c| c.parse().map_err(|e| corrupt("commander", e)))
                .transpose()?,
            source: self
                .source
                .parse::<Source>()
                .map_err(|e| corrupt("source", e))?,
            state: self
                .state
                .parse::<State>()
                .map_err(|e| corrupt("state", e))?,
            phase: self
                .phase
                .parse::<Phase>()
                .map_err(|e| corrupt("phase", e))?,
            declared_by: self.declared_by,
            declared_at: from_ms(self.declared_at)?,
            acknowledged_at: opt_ms(self.acknowledged_at)?,
            acknowledged_by: self.acknowledged_by,
            resolved_at: opt_ms(self.resolved_at)?,
            closed_at: opt_ms(self.closed_at)?,
            rto_deadline: from_ms(self.rto_deadline)?,
            summary: self.summary,
            version: self.version,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TimelineRow {
    incident: i64,
    at: i64,
    actor: String,
    kind: String,
    text: String,
    public: i64,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    subject: String,
    detail: String,
    prev_hash: String,
    hash: String,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    channel: String,
    kind: String,
    target: String,
    incident: Option<i64>,
    text: String,
    priority: i64,
    attempts: i64,
    state: String,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

impl OutboxRow {
    fn into_message(self) -> Result<OutboxMessage, StoreError> {
        Ok(OutboxMessage {
            id: self.id,
            channel: self.channel,
            kind: self.kind,
            target: self.target,
            incident: self.incident.map(IncidentRef),
            text: self.text,
            priority: self.priority as i32,
            attempts: self.attempts as i32,
            state: self.state,
            last_error: self.last_error,
            created_at: from_ms(self.created_at)?,
            delivered_at: self.delivered_at.map(from_ms).transpose()?,
        })
    }
}

const OUTBOX_COLUMNS: &str =
    "id, channel, kind, target, incident, text, priority, attempts, state, last_error, created_at, delivered_at";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    job_key: String,
    kind: String,
    incident: Option<i64>,
    due_at: i64,
    payload: String,
    attempts: i64,
}

impl JobRow {
    fn into_job(self) -> Result<Job, StoreError> {
        Ok(Job {
            id: self.id,
            key: self.job_key,
            kind: self.kind,
            incident: self.incident.map(IncidentRef),
            due_at: from_ms(self.due_at)?,
            payload: serde_json::from_str(&self.payload).map_err(|e| corrupt("job payload", e))?,
            attempts: self.attempts as i32,
        })
    }
}

const JOB_COLUMNS: &str = "id, job_key, kind, incident, due_at, payload, attempts";

const ALERT_COLUMNS: &str = "source, fingerprint, status, labels, annotations, summary, group_key, incident, \
     starts_at, ends_at, first_seen_at, changed_at, recent_changes, flapping, suppressed_by, version";

#[derive(sqlx::FromRow)]
struct AlertRow {
    source: String,
    fingerprint: String,
    status: String,
    labels: String,
    annotations: String,
    summary: String,
    group_key: String,
    incident: Option<i64>,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    first_seen_at: i64,
    changed_at: i64,
    recent_changes: String,
    flapping: i64,
    suppressed_by: Option<i64>,
    version: i64,
}

impl AlertRow {
    fn into_record(self) -> Result<AlertRecord, StoreError> {
        let changes: Vec<i64> =
            serde_json::from_str(&self.recent_changes).map_err(|e| corrupt("alert changes", e))?;
        Ok(AlertRecord {
            source: self.source,
            fingerprint: self.fingerprint,
            status: AlertStatus::parse(&self.status)
                .ok_or_else(|| corrupt("alert status", &self.status))?,
            labels: serde_json::from_str(&self.labels).map_err(|e| corrupt("alert labels", e))?,
            annotations: serde_json::from_str(&self.annotations)
                .map_err(|e| corrupt("alert annotations", e))?,
            summary: self.summary,
            group_key: self.group_key,
            incident: self.incident.map(IncidentRef),
            starts_at: self.starts_at.map(from_ms).transpose()?,
            ends_at: self.ends_at.map(from_ms).transpose()?,
            first_seen_at: from_ms(self.first_seen_at)?,
            changed_at: from_ms(self.changed_at)?,
            recent_changes: changes.into_iter().map(from_ms).collect::<Result<_, _>>()?,
            flapping: self.flapping != 0,
            suppressed_by: self.suppressed_by,
            version: self.version,
        })
    }
}

fn binding_from_row(
    (incident, platform, channel_id, card_message_id): (i64, String, String, Option<String>),
) -> ChatBinding {
    ChatBinding {
        incident: IncidentRef(incident),
        platform,
        channel_id,
        card_message_id,
    }
}

fn components_text(i: &Incident) -> String {
    i.components
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

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
                    "INSERT INTO incidents ({INCIDENT_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)"
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
                         resolved_at=$13, closed_at=$14, rto_deadline=$15, summary=$16, version=$17 \
                         WHERE number=$1 AND version=$18",
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
                let e = audit::seal(rec, seq, &hash);
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
        for m in &cs.outbox {
            sqlx::query(
                "INSERT INTO outbox (channel, kind, target, incident, text, priority, idempotency_key, ordering_key, \
                 state, attempts, next_attempt_at, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'pending',0,$9,$9) \
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(&m.channel)
            .bind(m.kind.as_str())
            .bind(&m.target)
            .bind(m.incident.map(|r| r.number()))
            .bind(&m.text)
            .bind(m.priority as i64)
            .bind(&m.idempotency_key)
            .bind(&m.ordering_key)
            .bind(ms(now))
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
                    .bind(&n.kind)
                    .bind(n.incident.map(|r| r.number()))
                    .bind(ms(n.due_at))
                    .bind(n.payload.to_string())
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                JobChange::CancelPrefix(prefix) => {
                    sqlx::query(
                        "UPDATE jobs SET state = 'cancelled', done_at = $2 \
                         WHERE state = 'pending' AND substr(job_key, 1, length($1)) = $1",
                    )
                    .bind(prefix)
                    .bind(ms(now))
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
                        "INSERT INTO maintenance (id, components, starts_at, ends_at, reason, created_by) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(w.id)
                    .bind(w.components.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","))
                    .bind(ms(w.starts_at))
                    .bind(ms(w.ends_at))
                    .bind(&w.reason)
                    .bind(&w.created_by)
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
        Ok(())
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn commit(&self, cs: Changeset) -> Result<(), StoreError> {
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

    async fn commit_new_incident(
        &self,
        build: &(dyn Fn(IncidentRef) -> Changeset + Send + Sync),
    ) -> Result<IncidentRef, StoreError> {
        let mut tx = self.begin().await?;
        // The audit head lock serialises every declaring writer (on SQLite, BEGIN IMMEDIATE
        // already does), so MAX(number) read here cannot be taken by anyone else before commit.
        let head = self.lock_audit_head(&mut tx).await?;
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(number) FROM incidents")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let reference = IncidentRef(max.unwrap_or(0) + 1);
        let cs = build(reference);
        if !matches!(&cs.incident, Some(IncidentWrite::Insert(i)) if i.reference == reference) {
            return Err(StoreError::Other(anyhow!(
                "commit_new_incident: the changeset must insert {reference}"
            )));
        }
        self.write(&mut tx, &cs, Some(head)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(reference)
    }

    async fn next_incident_number(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(number) FROM incidents")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(n.unwrap_or(0) + 1)
    }

    async fn incident(&self, r: IncidentRef) -> Result<Option<Incident>, StoreError> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE number = $1");
        let row: Option<IncidentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(r.number())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(IncidentRow::into_incident).transpose()
    }

    async fn incidents(&self, filter: StateFilter) -> Result<Vec<Incident>, StoreError> {
        let condition = match filter {
            StateFilter::Open => "WHERE state IN ('declared', 'acknowledged')",
            StateFilter::Resolved => "WHERE state = 'resolved'",
            StateFilter::Closed => "WHERE state = 'closed'",
            StateFilter::All => "",
        };
        let sql =
            format!("SELECT {INCIDENT_COLUMNS} FROM incidents {condition} ORDER BY number DESC");
        let rows: Vec<IncidentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(IncidentRow::into_incident).collect()
    }

    async fn timeline(&self, r: IncidentRef) -> Result<Vec<TimelineEntry>, StoreError> {
        let rows: Vec<TimelineRow> = sqlx::query_as(
            "SELECT incident, at, actor, kind, text, public FROM timeline WHERE incident = $1 ORDER BY id",
        )
        .bind(r.number())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|t| {
                Ok(TimelineEntry {
                    incident: IncidentRef(t.incident),
                    at: from_ms(t.at)?,
                    actor: t.actor,
                    kind: t.kind.parse().map_err(|e| corrupt("timeline kind", e))?,
                    text: t.text,
                    public: t.public != 0,
                })
            })
            .collect()
    }

    async fn audit_log(&self) -> Result<AuditLog, StoreError> {
        // Read the head and the rows in one snapshot so a concurrent append cannot look like
        // tampering.
        let mut tx = self.reader.begin().await.map_err(map_err)?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(AuditLog {
            head_seq: head.try_get(0).map_err(map_err)?,
            head_hash: head.try_get(1).map_err(map_err)?,
            entries: rows
                .into_iter()
                .map(|r| {
                    Ok(AuditEntry {
                        seq: r.seq,
                        at: from_ms(r.at)?,
                        actor: r.actor,
                        action: r.action,
                        subject: r.subject,
                        detail: r.detail,
                        prev_hash: r.prev_hash,
                        hash: r.hash,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
        })
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owner: &str,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        // Only the oldest undelivered message of each ordering key is deliverable, so messages
        // to one channel arrive in order even across retries.
        let sql = format!(
            "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE id IN (\
               SELECT o.id FROM outbox o \
               WHERE o.state = 'pending' AND o.next_attempt_at <= $3 \
                 AND (o.lease_until IS NULL OR o.lease_until < $3) \
                 AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.ordering_key = o.ordering_key \
                                 AND p.state = 'pending' AND p.id < o.id) \
               ORDER BY o.priority DESC, o.id LIMIT $4 {}) \
             RETURNING {OUTBOX_COLUMNS}",
            self.skip_locked()
        );
        let rows: Vec<OutboxRow> = self.lease_rows(sql, owner, now, lease, limit).await?;
        let mut out: Vec<OutboxMessage> = rows
            .into_iter()
            .map(OutboxRow::into_message)
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|m| (-m.priority, m.id));
        Ok(out)
    }

    async fn outbox_delivered(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET state = 'delivered', delivered_at = $2, attempts = attempts + 1, \
             lease_owner = NULL, lease_until = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(ms(at))
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn outbox_attempt_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let error: String = error.chars().take(1000).collect();
        let q = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, \
                 lease_owner = NULL, lease_until = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(ms(at)),
            None => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, state = 'failed', \
                 lease_owner = NULL, lease_until = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(error),
        };
        q.execute(&self.writer).await.map_err(map_err)?;
        Ok(())
    }

    async fn outbox(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY id LIMIT $1");
        let rows: Vec<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(OutboxRow::into_message).collect()
    }

    async fn claim_jobs(
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

    async fn pending_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'pending' ORDER BY due_at, id");
        let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    async fn chat_binding(
        &self,
        platform: &str,
        incident: IncidentRef,
    ) -> Result<Option<ChatBinding>, StoreError> {
        let row: Option<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT incident, platform, channel_id, card_message_id FROM chat_bindings WHERE platform = $1 AND incident = $2",
        )
        .bind(platform)
        .bind(incident.number())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(row.map(binding_from_row))
    }

    async fn chat_binding_by_channel(
        &self,
        platform: &str,
        channel_id: &str,
    ) -> Result<Option<ChatBinding>, StoreError> {
        let row: Option<(i64, String, String, Option<String>)> = sqlx::query_as(
            "SELECT incident, platform, channel_id, card_message_id FROM chat_bindings WHERE platform = $1 AND channel_id = $2",
        )
        .bind(platform)
        .bind(channel_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(row.map(binding_from_row))
    }

    async fn save_chat_binding(&self, b: &ChatBinding) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO chat_bindings (incident, platform, channel_id, card_message_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (incident, platform) DO UPDATE SET channel_id = excluded.channel_id, \
             card_message_id = excluded.card_message_id",
        )
        .bind(b.incident.number())
        .bind(&b.platform)
        .bind(&b.channel_id)
        .bind(b.card_message_id.clone())
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn alert(
        &self,
        source: &str,
        fingerprint: &str,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let sql =
            format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE source = $1 AND fingerprint = $2");
        let row: Option<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(source)
            .bind(fingerprint)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(AlertRow::into_record).transpose()
    }

    async fn incident_alerts(&self, incident: IncidentRef) -> Result<Vec<AlertRecord>, StoreError> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE incident = $1 ORDER BY first_seen_at, fingerprint");
        let rows: Vec<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(incident.number())
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(AlertRow::into_record).collect()
    }

    async fn alerts(
        &self,
        status: Option<AlertStatus>,
        limit: i64,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let (cond, st) = match status {
            Some(s) => ("WHERE status = $2", s.as_str()),
            None => ("WHERE $2 = $2", ""),
        };
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts {cond} ORDER BY changed_at DESC, fingerprint LIMIT $1");
        let rows: Vec<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(st)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(AlertRow::into_record).collect()
    }

    async fn group_incident(
        &self,
        source: &str,
        group_key: &str,
    ) -> Result<Option<IncidentRef>, StoreError> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT incident FROM alert_groups WHERE source = $1 AND group_key = $2",
        )
        .bind(source)
        .bind(group_key)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(n.map(IncidentRef))
    }

    async fn maintenance_windows(
        &self,
        active_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Maintenance>, StoreError> {
        let cols = "id, components, starts_at, ends_at, reason, created_by, ended_at, ended_by";
        let rows: Vec<(i64, String, i64, i64, String, String, Option<i64>, Option<String>)> = match active_at {
            Some(at) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {cols} FROM maintenance WHERE ended_at IS NULL AND starts_at <= $1 AND ends_at > $1 ORDER BY id"
            )))
            .bind(ms(at))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?,
            None => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {cols} FROM maintenance ORDER BY id")))
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?,
        };
        rows.into_iter()
            .map(
                |(id, comps, starts, ends, reason, created_by, ended_at, ended_by)| {
                    Ok(Maintenance {
                        id,
                        components: comps
                            .split(',')
                            .filter(|c| !c.is_empty())
                            .map(|c| c.parse().map_err(|e| corrupt("component", e)))
                            .collect::<Result<_, _>>()?,
                        starts_at: from_ms(starts)?,
                        ends_at: from_ms(ends)?,
                        reason,
                        created_by,
                        ended_at: ended_at.map(from_ms).transpose()?,
                        ended_by,
                    })
                },
            )
            .collect()
    }

    async fn next_maintenance_id(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM maintenance")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(n.unwrap_or(0) + 1)
    }

    async fn heartbeat(&self, name: &str) -> Result<Option<Heartbeat>, StoreError> {
        let row: Option<(String, i64, Option<i64>)> =
            sqlx::query_as("SELECT name, last_seen, incident FROM heartbeats WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.reader)
                .await
                .map_err(map_err)?;
        row.map(|(name, last_seen, incident)| {
            Ok(Heartbeat {
                name,
                last_seen: from_ms(last_seen)?,
                incident: incident.map(IncidentRef),
            })
        })
        .transpose()
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        let rows =
            sqlx::query("SELECT level, state, COUNT(*) FROM incidents GROUP BY level, state")
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
        let mut incidents = Vec::new();
        for r in rows {
            let level: i64 = r.try_get(0).map_err(map_err)?;
            let state: String = r.try_get(1).map_err(map_err)?;
            let n: i64 = r.try_get(2).map_err(map_err)?;
            incidents.push((
                LevelId(u8::try_from(level).map_err(|e| corrupt("level", e))?),
                state.parse().map_err(|e| corrupt("state", e))?,
                n,
            ));
        }
        let rows = sqlx::query("SELECT state, COUNT(*) FROM outbox WHERE state IN ('pending', 'failed') GROUP BY state")
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        let (mut pending, mut failed) = (0, 0);
        for r in rows {
            let state: String = r.try_get(0).map_err(map_err)?;
            let n: i64 = r.try_get(1).map_err(map_err)?;
            if state == "pending" {
                pending = n
            } else {
                failed = n
            }
        }
        Ok(Stats {
            incidents,
            outbox_pending: pending,
            outbox_failed: failed,
        })
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let expected = self
            .migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.reader)
                .await
                .map_err(|e| match map_err(e) {
                    StoreError::Other(e) => {
                        StoreError::Unavailable(e.context("migrations have not been applied"))
                    }
                    other => other,
                })?;
        if applied.unwrap_or(0) < expected {
            return Err(StoreError::Unavailable(anyhow!(
                "schema at version {} but this build needs {expected}; run `spotter migrate`",
                applied.unwrap_or(0)
            )));
        }
        Ok(())
    }
}

fn bind_incident<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    i: &'q Incident,
    version: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let opt_ms = |t: Option<DateTime<Utc>>| t.map(ms);
    q.bind(i.reference.number())
        .bind(i.level.0 as i64)
        .bind(&i.title)
        .bind(components_text(i))
        .bind(i.commander.as_ref().map(|c| c.to_string()))
        .bind(i.source.as_str())
        .bind(i.state.as_str())
        .bind(i.phase.as_str())
        .bind(&i.declared_by)
        .bind(ms(i.declared_at))
        .bind(opt_ms(i.acknowledged_at))
        .bind(i.acknowledged_by.clone())
        .bind(opt_ms(i.resolved_at))
        .bind(opt_ms(i.closed_at))
        .bind(ms(i.rto_deadline))
        .bind(i.summary.clone())
        .bind(version)
}
