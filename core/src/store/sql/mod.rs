//! The SQL adapter of the store port: one implementation over SQLite and PostgreSQL through
//! sqlx's `Any` driver, with runtime queries (no live database at build time).
//!
//! Portable SQL throughout: `$n` placeholders (SQLite accepts them; the multi-row statements
//! are bound by position there, [`placeholders`]), BIGINT milliseconds for
//! time, 0/1 integers for flags, `ON CONFLICT` upserts. Where the backends must differ it is
//! spelled out: SQLite writes begin `IMMEDIATE` on a single writer connection (so a
//! read-then-write never fails on a lock upgrade and writers queue in-process), PostgreSQL
//! claims with `FOR UPDATE SKIP LOCKED` and serialises audit appends on the head row.
//!
//! Every changeset goes through the group-commit writer ([`group`]); on SQLite the store's own
//! writes (leases, delivery outcomes) do too, as ops ([`ops`]), so nothing else waits for its
//! one connection, retention's deletes included; only migrations use the writer pool directly.
//! A batch's units leave rows for shared multi-row inserts ([`deferred`]).

use super::*;
use crate::audit::{self, AuditEntry};
use crate::domain::AlertStatus;
use crate::domain::{
    Channel, Incident, IncidentRef, LevelId, Phase, Source, State, StateFilter, TimelineEntry,
};
use anyhow::{anyhow, Context};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rows::*;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Executor, Row};

mod alert_rows;
mod alerts;
mod api_tokens;
mod audit_log;
mod chat;
mod declare;
mod deferred;
mod group;
pub use group::GroupCommitStats;
mod incidents;
mod job_writes;
mod jobs;
mod ops;
mod outbox;
mod paging;
mod placeholders;
mod port;
mod public;
mod rows;
mod runs;
mod subscribers;
mod write;
mod writer_thread;

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
    /// Seals audit entries. Kept by the process, never in the database.
    audit_key: Option<std::sync::Arc<audit::AuditKey>>,
    /// The queue into the group-commit writer (see [`group`]).
    group: std::sync::Arc<group::GroupCommit>,
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
                    audit_key: None,
                    group: std::sync::Arc::default(),
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
                    audit_key: None,
                    group: std::sync::Arc::default(),
                })
            }
        }
    }

    /// The key audit entries are sealed with. A store without one refuses to write audit
    /// entries (an unkeyed chain could be recomputed by anyone who can write the database).
    pub fn with_audit_key(mut self, key: audit::AuditKey) -> Self {
        self.audit_key = Some(std::sync::Arc::new(key));
        // A writer started before the key was set would seal with no key.
        self.group = std::sync::Arc::default();
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(super) fn migrator(&self) -> &'static sqlx::migrate::Migrator {
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

    pub(super) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        self.writer
            .begin_with(self.begin_statement())
            .await
            .map_err(map_err)
    }

    /// A write transaction's `BEGIN` (SQLite: `IMMEDIATE`, taking the write lock at once).
    pub(super) fn begin_statement(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }

    /// Runs a claiming `UPDATE … RETURNING` whose parameters are (owner, lease end, now, limit)
    /// in a write transaction: the outbox and the job table lease rows the same way.
    pub(super) async fn lease_rows<R>(
        &self,
        sql: String,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<R>, StoreError>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin + 'static,
    {
        let owner = owner.to_string();
        // Through the group writer: a claim shares the batch's commit (see `ops`).
        self.write_op(move |conn| {
            let (sql, owner) = (sql.clone(), owner.clone());
            Box::pin(async move {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(owner)
                    .bind(ms(now + lease))
                    .bind(ms(now))
                    .bind(limit)
                    .fetch_all(conn)
                    .await
                    .map_err(map_err)
            })
        })
        .await
    }

    pub(super) fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }
}

/// `sqlite://data/x.db` → make sure `data/` exists and the file is created on first open.
pub(super) fn sqlite_url(url: &str) -> anyhow::Result<String> {
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

/// `NOT INDEXED` on SQLite, for an `UPDATE outbox … WHERE state = 'pending' AND id IN (…)`:
/// without statistics SQLite takes an index on `state` over the list of row ids once the list
/// has more than a few ids, and so walked every pending row (a chat backlog of 15,000 made each
/// delivery mark 1.3 ms). `NOT INDEXED` leaves it the row ids. PostgreSQL plans from its
/// statistics and needs nothing.
pub(super) fn by_rowid(conn: &AnyConnection) -> &'static str {
    if conn.backend_name() == "SQLite" {
        "NOT INDEXED"
    } else {
        ""
    }
}

pub(super) async fn pool(url: &str, max: u32) -> Result<AnyPool, sqlx::Error> {
    AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(0)
        // A SQLite connection is a file handle, not a socket that can go stale: pinging it
        // before each use was a round trip to its worker thread before every transaction
        // (about half of the writer's `BEGIN`). A server connection is still checked.
        .test_before_acquire(!url.starts_with("sqlite:"))
        .acquire_timeout(std::time::Duration::from_secs(5))
        .after_connect(|conn: &mut AnyConnection, _meta| {
            Box::pin(async move {
                if conn.backend_name() == "SQLite" {
                    // WAL lets readers run beside the writer; FULL makes every acknowledged
                    // commit survive power loss, not only a process crash. Temporary storage
                    // in memory: a multi-row insert keeps a statement journal (its undo, if
                    // it fails half way), which SQLite spills to a temporary file past 64 KiB;
                    // in a storm of declarations those writes were an eighth of the writer's
                    // time. Nothing of it needs to survive the statement.
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; \
                         PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// The tables whose unique keys writers race for on purpose: the loser of the race re-reads
/// and decides again (an alert or alert group inserted by a concurrent notification, a
/// maintenance id or incident number taken by another replica, a random token id drawn twice).
const RACED_TABLES: [&str; 13] = [
    "alerts",
    "alert_groups",
    "maintenance",
    "incidents",
    "api_tokens",
    // A run id or a lock key taken by a concurrent request, a decision or step written twice.
    "runbook_runs",
    "runbook_runs_one_active",
    "run_approvals",
    "run_steps",
    // Two replicas publishing the same incident at once.
    "public_incidents",
    // A subscriber id drawn twice, one address subscribing twice at once, two replicas
    // announcing the same change.
    "subscribers",
    "subscribers_live_address",
    "status_notices",
];

/// Whether a unique violation is one of those races. PostgreSQL names the constraint
/// (`alerts_pkey`); SQLite names the columns in its message (`UNIQUE constraint failed:
/// alerts.source, alerts.fingerprint`).
fn unique_violation_is_a_race(constraint: Option<&str>, message: &str) -> bool {
    let table = match constraint {
        Some(c) => c.strip_suffix("_pkey").unwrap_or(c).to_string(),
        None => message
            .rsplit(": ")
            .next()
            .and_then(|cols| cols.split('.').next())
            .unwrap_or("")
            .to_string(),
    };
    RACED_TABLES.contains(&table.as_str())
}

/// Classifies a database error for the edges: transient (503, retry) or not.
pub(super) fn map_err(e: sqlx::Error) -> StoreError {
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
                return if unique_violation_is_a_race(db.constraint(), db.message()) {
                    StoreError::Conflict(db.message().to_string())
                } else {
                    // A duplicate nobody races for is a bug or a corrupt row: retrying cannot
                    // help, so it is not a conflict (500, logged with its cause).
                    StoreError::Other(anyhow::Error::new(e).context("unexpected duplicate"))
                };
            }
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            // PostgreSQL's serialization failure and deadlock: two writers took rows in
            // opposite orders; one was rolled back and deciding again settles it.
            if code == "40001" || code == "40P01" {
                return StoreError::Conflict(db.message().to_string());
            }
            // SQLite: BUSY(5), LOCKED(6), READONLY(8), IOERR(10), CORRUPT(11), FULL(13),
            // CANTOPEN(14) and their extended codes. PostgreSQL: connection exceptions (08),
            // insufficient resources (53), operator intervention (57), read-only (25006),
            // other transaction rollbacks (40).
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

#[cfg(test)]
mod tests {
    use super::unique_violation_is_a_race as race;

    /// Every SQLite connection of the pool is set up the same way: a durability setting lost
    /// (a pragma dropped from the list, a typo SQLite ignores) would not fail any other test.
    #[tokio::test]
    async fn every_sqlite_connection_is_durable_and_keeps_temporary_data_in_memory() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
        let pool = super::pool(&url, 2).await.unwrap();
        // Each connection is kept until the end, so the second `acquire` opens another.
        let mut held = vec![];
        for _ in 0..2 {
            let mut conn = pool.acquire().await.unwrap();
            let mut got = vec![];
            for pragma in ["journal_mode", "synchronous", "foreign_keys", "temp_store"] {
                let row: (String,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT CAST({pragma} AS TEXT) FROM pragma_{pragma}"
                )))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
                got.push(row.0);
            }
            // synchronous 2 is FULL, temp_store 2 is MEMORY.
            assert_eq!(got, ["wal", "2", "1", "2"]);
            held.push(conn);
        }
    }

    #[test]
    fn only_the_raced_keys_are_conflicts() {
        assert!(race(Some("alerts_pkey"), ""));
        assert!(race(Some("alert_groups_pkey"), ""));
        assert!(race(Some("incidents_pkey"), ""));
        assert!(race(
            None,
            "UNIQUE constraint failed: alerts.source, alerts.fingerprint"
        ));
        assert!(race(None, "UNIQUE constraint failed: maintenance.id"));
        assert!(!race(Some("audit_log_pkey"), ""));
        assert!(race(Some("api_tokens_pkey"), ""));
        assert!(!race(None, "UNIQUE constraint failed: audit_log.seq"));
        assert!(!race(
            None,
            "UNIQUE constraint failed: outbox.idempotency_key"
        ));
        assert!(!race(None, "something else"));
    }
}
