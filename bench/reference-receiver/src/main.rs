//! The durable reference receiver of issue 11 ("Alert storms at disk speed").
//!
//! POST /webhooks/alertmanager takes an Alertmanager v4 notification and upserts each of its
//! alerts (fingerprint, labels, status, startsAt, endsAt) into one `alerts` table, in one
//! transaction per request, and answers 200 only after the commit. SQLite runs in WAL mode with
//! `synchronous=FULL`, as Spotter's store does, so an acknowledged alert survives power loss.
//! Nothing else: no incidents, no timeline, no audit, no outbox. Whatever Spotter stores per alert
//! beyond this is the price of its decisions; this is the disk's price, measured in the same run.
//!
//! Usage: reference-receiver [--listen 127.0.0.1:18090] [--sqlite PATH | --pg URL]
//!        [--connections 8] [--token TOKEN]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The fields Spotter's parser reads for its alert row; serde skips the rest unread, as there.
#[derive(Deserialize)]
struct Notification {
    alerts: Vec<Alert>,
}

#[derive(Deserialize)]
struct Alert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    starts_at: Option<String>,
    #[serde(rename = "endsAt", default)]
    ends_at: Option<String>,
    fingerprint: String,
}

enum Db {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

struct App {
    db: Db,
    /// The expected `Authorization` header, when a token is set: the same check Spotter makes.
    auth: Option<String>,
}

// `$n` placeholders are read by both drivers. Times are kept as sent (text): parsing them would
// cost microseconds next to a commit's fsync, and the reference is about the commit.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS alerts (fingerprint TEXT PRIMARY KEY, \
     labels TEXT NOT NULL, status TEXT NOT NULL, starts_at TEXT, ends_at TEXT)";
const UPSERT: &str = "INSERT INTO alerts (fingerprint, labels, status, starts_at, ends_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (fingerprint) DO UPDATE SET labels = excluded.labels, \
     status = excluded.status, starts_at = excluded.starts_at, ends_at = excluded.ends_at";

/// One transaction for the whole notification, one prepared statement per alert (sqlx caches it
/// per connection). The same code for both drivers; a macro because sqlx's generic bounds over
/// `Database` would be longer than the two copies.
macro_rules! store {
    ($pool:expr, $alerts:expr) => {{
        let mut tx = $pool.begin().await?;
        for a in $alerts {
            let labels = serde_json::to_string(&a.labels).expect("a string map serializes");
            sqlx::query(UPSERT)
                .bind(&a.fingerprint)
                .bind(labels)
                .bind(&a.status)
                .bind(&a.starts_at)
                .bind(&a.ends_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }};
}

async fn alertmanager(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(n): Json<Notification>,
) -> StatusCode {
    if let Some(want) = &app.auth {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
            return StatusCode::UNAUTHORIZED;
        }
    }
    let stored: Result<(), sqlx::Error> = async {
        match &app.db {
            Db::Sqlite(p) => store!(p, &n.alerts),
            Db::Pg(p) => store!(p, &n.alerts),
        }
    }
    .await;
    match stored {
        // 200 only once the commit returned: the alert is on disk.
        Ok(()) => StatusCode::OK,
        Err(e) => {
            eprintln!("store failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen = "127.0.0.1:18090".to_string();
    let (mut sqlite, mut pg, mut token) = ("reference.db".to_string(), None, None);
    let mut connections = 8u32;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--sqlite" => sqlite = value()?,
            "--pg" => pg = Some(value()?),
            "--token" => token = Some(value()?),
            "--connections" => connections = value()?.parse()?,
            _ => return Err(format!("unknown argument {flag}; see the usage in main.rs").into()),
        }
    }
    let db = match pg {
        // PostgreSQL: a pool as large as Spotter's default (`[database] max_connections = 8`), so
        // concurrent requests commit concurrently and the server's WAL flush can group them.
        Some(url) => Db::Pg(
            PgPoolOptions::new()
                .max_connections(connections)
                .connect(&url)
                .await?,
        ),
        // SQLite: one connection, as Spotter's writer pool. SQLite admits one writer at a time;
        // more connections would only wait on its lock (busy_timeout) instead of on the pool.
        None => Db::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(&sqlite)
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Full),
                )
                .await?,
        ),
    };
    match &db {
        Db::Sqlite(p) => sqlx::query(SCHEMA).execute(p).await.map(|_| ())?,
        Db::Pg(p) => sqlx::query(SCHEMA).execute(p).await.map(|_| ())?,
    }
    let app = Arc::new(App {
        db,
        auth: token.map(|t| format!("Bearer {t}")),
    });
    let router = Router::new()
        .route("/webhooks/alertmanager", post(alertmanager))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("reference-receiver listening on {listen}");
    axum::serve(listener, router).await?;
    Ok(())
}
