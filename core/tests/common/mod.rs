//! Harness for storage and engine tests that run the same body against SQLite and PostgreSQL.
//!
//! - [`dual_test!`] writes `mod name { async fn sqlite() … async fn postgres() … }` from one body.
//! - SQLite: a fresh file in a `TempDir` per test.
//! - PostgreSQL: a fresh `spotter_t_<random>` database per test on the server named by
//!   `SPOTTER_TEST_DATABASE_URL`, dropped afterwards (best effort, `WITH (FORCE)`). Without the
//!   variable the PostgreSQL half is skipped with a note on stderr, unless `SPOTTER_TEST_STRICT=1`,
//!   which turns the skip into a failure.
//! - [`Ctx`] builds the engine the way the app does, on a [`ManualClock`], and offers the few
//!   helpers the tests share.

#![allow(dead_code)]

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use spotter_core::clock::{Clock, ManualClock};
use spotter_core::config::Config;
use spotter_core::domain::{Actor, EventKind, Incident, IncidentRef, StateFilter};
use spotter_core::metrics::Metrics;
use spotter_core::outbox::{DeliveryError, Dispatcher, Notifier};
use spotter_core::scheduler::Scheduler;
use spotter_core::store::{OutboxMessage, SqlStore, Store};
use spotter_core::testkit::{self, PostgresTestDb};
use spotter_core::{CommandContext, Engine, Reply};
use sqlx::{AssertSqlSafe, Connection};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// One test body, run once per backend.
///
/// ```ignore
/// dual_test!(a_refused_transition_changes_nothing, |ctx| async move { … });
/// dual_test!(multi_thread concurrent_declares_get_distinct_numbers, |ctx| async move { … });
/// dual_test!(#[ignore = "why"] multi_thread a_known_failure, |ctx| async move { … });
/// ```
#[macro_export]
macro_rules! dual_test {
    (#[ignore = $why:literal] multi_thread $name:ident, $body:expr) => {
        $crate::dual_test!(@gen $name, (flavor = "multi_thread", worker_threads = 4), [#[ignore = $why]], $body);
    };
    (#[ignore = $why:literal] $name:ident, $body:expr) => {
        $crate::dual_test!(@gen $name, (flavor = "current_thread"), [#[ignore = $why]], $body);
    };
    (multi_thread $name:ident, $body:expr) => {
        $crate::dual_test!(@gen $name, (flavor = "multi_thread", worker_threads = 4), [], $body);
    };
    ($name:ident, $body:expr) => {
        $crate::dual_test!(@gen $name, (flavor = "current_thread"), [], $body);
    };
    (@gen $name:ident, ($($flavor:tt)*), [$(#[$attr:meta])*], $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test($($flavor)*)]
            $(#[$attr])*
            async fn sqlite() {
                $crate::common::run($crate::common::Backend::Sqlite, stringify!($name), $body).await;
            }

            #[tokio::test($($flavor)*)]
            $(#[$attr])*
            async fn postgres() {
                $crate::common::run($crate::common::Backend::Postgres, stringify!($name), $body).await;
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, migrated database for one test, and what it takes to clean it up.
pub struct TestDb {
    pub backend: Backend,
    /// The store's URL (the per-test database).
    pub url: String,
    /// PostgreSQL: the per-test database, dropped in `cleanup`.
    pg: Option<PostgresTestDb>,
    /// SQLite: the folder holding the file; deleted when dropped.
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::TempDir::new().expect("creating a temporary directory");
        let url = format!("sqlite://{}/spotter.db", dir.path().display());
        TestDb {
            backend: Backend::Sqlite,
            url,
            pg: None,
            _dir: Some(dir),
        }
    }

    /// `None` when PostgreSQL is not configured (and the run is not strict).
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let server = testkit::postgres_url(test)?;
        let db = PostgresTestDb::create(&server)
            .await
            .expect("creating a PostgreSQL test database");
        Some(TestDb {
            backend: Backend::Postgres,
            url: db.url().to_string(),
            pg: Some(db),
            _dir: None,
        })
    }

    /// Best effort: drops the PostgreSQL database (SQLite's folder goes with `self`).
    pub async fn cleanup(self) {
        if let Some(pg) = self.pg {
            pg.drop_db().await;
        }
    }
}

fn redact(url: &str) -> String {
    spotter_core::config::redact_url(url)
}

/// Where every test's clock starts: a whole second, so stored milliseconds round-trip exactly.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap()
}

/// Runs `body` against a fresh database of `backend`, then cleans up, then re-raises any panic.
pub async fn run<F, Fut>(backend: Backend, test: &str, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = match backend {
        Backend::Sqlite => TestDb::sqlite().await,
        Backend::Postgres => match TestDb::postgres(test).await {
            Some(db) => db,
            None => return,
        },
    };
    let ctx = Ctx::new(backend, &db.url).await;
    let store = ctx.store.clone();
    // A task, so a failing assertion still lets the database be dropped below.
    let outcome = tokio::spawn(body(ctx)).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), store.close()).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(p) => std::panic::resume_unwind(p),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

/// The guide's configuration, with everyone reachable by a (signed) webhook, so the escalation
/// matrix writes pages (as shipped nobody can be paged: no [discord], no [smtp]).
pub fn test_config() -> Config {
    let text = spotter_core::config::DEFAULT_TOML.replace(
        "[[person]]\n",
        "[[person]]\nnotify = [{ kind = \"webhook\", url = \"https://pager.example/hook\", hmac_secret_env = \"SPOTTER_TEST_PAGER\" }]\n",
    );
    Config::from_toml(&text, "core-tests.toml").expect("the test configuration")
}

/// Everything a test needs: the store, an engine built like the app's, and the hand-moved clock.
#[derive(Clone)]
pub struct Ctx {
    pub backend: Backend,
    pub url: String,
    pub store: Arc<SqlStore>,
    pub engine: Arc<Engine>,
    pub clock: Arc<ManualClock>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
}

impl Ctx {
    pub async fn new(backend: Backend, url: &str) -> Ctx {
        let store = Arc::new(connect(url).await);
        store.migrate().await.expect("migrating the test database");
        store.ready().await.expect("the migrated store is ready");
        let config = Arc::new(test_config());
        let clock = Arc::new(ManualClock::new(start_time()));
        let metrics = Arc::new(Metrics::new());
        let engine = Arc::new(Engine::new(
            store.clone() as Arc<dyn Store>,
            config.clone(),
            clock.clone() as Arc<dyn Clock>,
            metrics.clone(),
        ));
        Ctx {
            backend,
            url: url.to_string(),
            store,
            engine,
            clock,
            metrics,
            config,
        }
    }

    pub fn actor(&self, who: &str) -> Actor {
        self.engine.actor_for_person(who)
    }

    /// Runs one command line as `who`; infrastructure errors fail the test.
    pub async fn run(&self, who: &str, line: &str) -> Reply {
        self.engine
            .execute_line(&self.actor(who), line, &CommandContext::default())
            .await
            .unwrap_or_else(|e| panic!("`{line}` as {who} failed in the store: {e}"))
    }

    /// Runs a command that must succeed.
    pub async fn ok(&self, who: &str, line: &str) -> Reply {
        let r = self.run(who, line).await;
        assert!(r.ok, "`{line}` as {who} was refused: {}", r.text);
        r
    }

    /// Runs a command that must be refused with a reply containing `fragment`.
    pub async fn refused(&self, who: &str, line: &str, fragment: &str) -> Reply {
        let r = self.run(who, line).await;
        assert!(
            !r.ok,
            "`{line}` as {who} should have been refused but was accepted: {}",
            r.text
        );
        assert!(r.incident.is_none(), "a refused reply carries no incident");
        assert!(
            r.text.contains(fragment),
            "`{line}` as {who}: expected `{fragment}` in the reply, got: {}",
            r.text
        );
        r
    }

    /// Declares as `sysadmin` and returns the incident.
    pub async fn declare(&self, level: u8, title: &str) -> Incident {
        let r = self
            .ok(
                "sysadmin",
                &format!("/incident declare level:{level} title:\"{title}\""),
            )
            .await;
        r.incident.expect("a declare reply carries the incident")
    }

    pub async fn incident(&self, n: i64) -> Incident {
        self.store
            .incident(IncidentRef::new(n))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("INC-{n} exists"))
    }

    pub async fn timeline_kinds(&self, n: i64) -> Vec<EventKind> {
        self.store
            .timeline(IncidentRef::new(n))
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    pub async fn outbox(&self) -> Vec<OutboxMessage> {
        self.store.outbox(100_000).await.unwrap()
    }

    /// Verifies the audit chain as stored; returns the number of entries.
    pub async fn audit_verifies(&self) -> usize {
        let log = self.store.audit_log().await.unwrap();
        spotter_core::audit::verify(&audit_key(), &log.entries, log.head_seq, &log.head_hash)
            .unwrap_or_else(|v| panic!("the audit chain should verify: {v}"))
    }

    pub fn scheduler(&self) -> Scheduler {
        Scheduler::new(self.engine.clone())
    }

    /// A dispatcher on this store whose `log` channel is `notifier`.
    pub fn dispatcher(&self, notifier: Arc<dyn Notifier>) -> Dispatcher {
        self.bare_dispatcher()
            .with_notifier(spotter_core::domain::Channel::Log, notifier)
    }

    /// A dispatcher with no notifiers at all.
    pub fn bare_dispatcher(&self) -> Dispatcher {
        Dispatcher::new(
            self.store.clone() as Arc<dyn Store>,
            self.clock.clone() as Arc<dyn Clock>,
            self.metrics.clone(),
            self.config.outbox.clone(),
            self.engine.outbox_wakeup(),
        )
    }

    /// Ticks `d` until nothing is pending, moving the clock a minute whenever nothing was due.
    /// Returns the number of ticks. Panics after `max_ticks`.
    pub async fn drain(&self, d: &Dispatcher, max_ticks: usize) -> usize {
        for tick in 1..=max_ticks {
            let handled = d.tick().await.expect("dispatcher tick");
            if handled == 0 {
                if self
                    .outbox()
                    .await
                    .iter()
                    // `d` is a chat-lane dispatcher: pages wait for the pages lane.
                    .all(|m| {
                        m.state != spotter_core::store::DeliveryState::Pending
                            || m.kind == spotter_core::store::MessageKind::Page
                    })
                {
                    return tick;
                }
                self.clock.advance(Duration::minutes(1));
            }
        }
        panic!(
            "the outbox did not drain within {max_ticks} ticks: {:#?}",
            self.outbox().await
        );
    }

    /// A second, independent store on the same database (as after a restart).
    pub async fn reconnect(&self) -> SqlStore {
        let s = connect(&self.url).await;
        s.migrate().await.expect("migrating again is a no-op");
        s
    }

    /// Executes raw SQL through a separate sqlx connection (not the store's pools); returns the
    /// number of rows affected.
    pub async fn raw_sql(&self, sql: &str) -> u64 {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("a separate raw connection");
        let done = sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("raw SQL `{sql}` failed: {e}"));
        let _ = conn.close().await;
        done.rows_affected()
    }

    /// Executes raw SQL on a separate connection; the database's error when it refuses.
    pub async fn try_raw_sql(&self, sql: &str) -> Result<u64, String> {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("a separate raw connection");
        let done = sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .map(|d| d.rows_affected())
            .map_err(|e| e.to_string());
        let _ = conn.close().await;
        done
    }

    /// The single integer a query returns (read on a separate connection).
    pub async fn scalar(&self, sql: &str) -> i64 {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("a separate raw connection");
        let v: i64 = sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
        let _ = conn.close().await;
        v
    }

    /// Runs SQL as an attacker with write access to the database would: first dropping the
    /// triggers that keep the audit log append-only (they stop the application, not an owner).
    pub async fn tamper(&self, sql: &str) -> u64 {
        let drop = if self.url.starts_with("sqlite:") {
            "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;"
        } else {
            "DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log; \
             DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;"
        };
        self.raw_sql(drop).await;
        self.raw_sql(sql).await
    }

    /// Everything a refused command must leave untouched.
    pub async fn snapshot(&self) -> Snapshot {
        let incidents = self.store.incidents(StateFilter::All).await.unwrap();
        let mut timelines = Vec::new();
        for i in &incidents {
            timelines.push((
                i.reference,
                self.store.timeline(i.reference).await.unwrap().len(),
            ));
        }
        Snapshot {
            incidents,
            timelines,
            audit: self.store.audit_log().await.unwrap().entries.len(),
            outbox: self.outbox().await.len(),
            jobs: self.store.pending_jobs().await.unwrap().len(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub incidents: Vec<Incident>,
    pub timelines: Vec<(IncidentRef, usize)>,
    pub audit: usize,
    pub outbox: usize,
    pub jobs: usize,
}

/// The audit key every store of these tests seals with.
pub fn audit_key() -> spotter_core::audit::AuditKey {
    spotter_core::audit::AuditKey::new(spotter_core::Secret::new("core-tests-audit-key"))
}

async fn connect(url: &str) -> SqlStore {
    SqlStore::connect(url, 8)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e:#}", redact(url)))
        .with_audit_key(audit_key())
}

/// A test double for the far side of a channel: records deliveries, and can be told to fail.
pub struct RecordingNotifier {
    mode: Mode,
    attempts: Mutex<HashMap<i64, u32>>,
    delivered: Mutex<Vec<OutboxMessage>>,
}

enum Mode {
    /// The first `n` attempts of every message fail with `Retry { after: Some(0s) }`.
    RetryFirst(u32),
    /// Every attempt fails for good.
    Permanent,
}

impl RecordingNotifier {
    pub fn working() -> Arc<Self> {
        Self::new(Mode::RetryFirst(0))
    }
    /// Fails the first `n` attempts of each message with a retry that is due at once.
    pub fn failing_first(n: u32) -> Arc<Self> {
        Self::new(Mode::RetryFirst(n))
    }
    pub fn permanent() -> Arc<Self> {
        Self::new(Mode::Permanent)
    }
    fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            mode,
            attempts: Mutex::default(),
            delivered: Mutex::default(),
        })
    }
    /// Successful deliveries, in the order they happened.
    pub fn delivered(&self) -> Vec<OutboxMessage> {
        self.delivered.lock().unwrap().clone()
    }
    /// Attempts (failed or not) per message id.
    pub fn attempts(&self) -> HashMap<i64, u32> {
        self.attempts.lock().unwrap().clone()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        let attempt = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(m.id).or_insert(0);
            *n += 1;
            *n
        };
        match self.mode {
            Mode::Permanent => Err(DeliveryError::Permanent(format!("410 gone: {}", m.target))),
            Mode::RetryFirst(n) if attempt <= n => Err(DeliveryError::Retry {
                reason: format!("503 try again (attempt {attempt})"),
                after: Some(Duration::seconds(0)),
            }),
            Mode::RetryFirst(_) => {
                self.delivered.lock().unwrap().push(m.clone());
                Ok(())
            }
        }
    }
}

/// A new firing alert row of incident `r` (version 0), with no labels: tests set what they need
/// with struct update syntax.
#[allow(dead_code)]
pub fn firing_alert_row(
    r: IncidentRef,
    fingerprint: &str,
    at: DateTime<Utc>,
) -> spotter_core::store::AlertRecord {
    spotter_core::store::AlertRecord {
        source: "alertmanager".into(),
        fingerprint: fingerprint.into(),
        status: spotter_core::alerts::AlertStatus::Firing,
        labels: Default::default(),
        annotations: Default::default(),
        summary: fingerprint.into(),
        group_key: format!("group-{r}"),
        incident: Some(r),
        starts_at: None,
        ends_at: None,
        first_seen_at: at,
        changed_at: at,
        recent_changes: vec![],
        flapping: false,
        suppressed_by: None,
        version: 0,
    }
}
