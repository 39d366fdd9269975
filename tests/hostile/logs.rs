//! No secret in the logs: the real binary with every secret configured through the environment,
//! driven into logging its errors (refused credentials, a Discord API that cannot be reached, an
//! interaction follow-up that fails), its stdout and stderr captured and searched for every
//! secret value the test configured.

use crate::common::binary::{client, closed_port, spotter, Served};
use crate::common::{self, Backend};
use crate::fake_discord::interactions::{self as ix, GENERAL_CHANNEL};
use crate::fake_discord::{APPLICATION_ID, GUILD_ID};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// A person id configured with a Discord user id below (sysadmin: admin).
const SYSADMIN_DISCORD: &str = "1280000000000000001";

/// The secrets, each in the variable the configuration names; every value is distinctive so a
/// leak of any part of it is found.
fn secrets() -> Vec<(&'static str, String)> {
    [
        "SPOTTER_API_TOKEN",
        "SPOTTER_ALERTMANAGER_TOKEN",
        "SPOTTER_AM_BASIC_PASSWORD",
        "SPOTTER_GRAFANA_TOKEN",
        "SPOTTER_GRAFANA_HMAC_SECRET",
        "SPOTTER_PAGERDUTY_ROUTING_KEY",
        "SPOTTER_BACKUP_JOBS_SECRET",
        "SPOTTER_DISCORD_TOKEN",
        "SPOTTER_AUDIT_KEY",
    ]
    .into_iter()
    .map(|var| {
        let value = format!("{}-{}", var.to_lowercase().replace('_', ""), random_hex());
        (var, value)
    })
    .collect()
}

fn random_hex() -> String {
    let mut b = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
    hex::encode(b)
}

/// The default configuration (bearer, routing-key and HMAC sources) plus a basic-auth and a
/// signed Grafana source, and the Discord bot in interactions mode with its REST API at
/// `discord_api` (a closed port).
fn config(discord_api: &str) -> String {
    let mut text = spotter_core::config::DEFAULT_TOML.replace(
        "[[person]]\nid = \"sysadmin\"",
        &format!("[[person]]\nid = \"sysadmin\"\ndiscord_user_id = \"{SYSADMIN_DISCORD}\""),
    );
    assert!(
        text.contains(SYSADMIN_DISCORD),
        "the sysadmin person block moved"
    );
    text.push_str(&format!(
        r#"
[[source]]
id = "am-basic"
kind = "alertmanager"
basic_user = "alertmanager"
basic_password_env = "SPOTTER_AM_BASIC_PASSWORD"

[[source]]
id = "grafana-hmac"
kind = "grafana"
hmac_secret_env = "SPOTTER_GRAFANA_HMAC_SECRET"
timestamp_header = "X-Grafana-Alerting-Signature-Timestamp"

[discord]
mode = "interactions"
application_id = "{APPLICATION_ID}"
guild_id = "{GUILD_ID}"
public_key = "{key}"
token_env = "SPOTTER_DISCORD_TOKEN"
api_base_url = "{discord_api}"
"#,
        key = ix::public_key_hex(),
    ));
    text
}

/// `url` with a password in its user info (PostgreSQL here trusts local connections, so any
/// password connects), so the logs are searched for a database password too.
fn with_password(url: &str, password: &str) -> String {
    url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{password}@"),
        1,
    )
}

async fn no_secret_reaches_the_logs(backend: Backend, test: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((db_url, pg)) = common::database(backend, test, dir.path()).await else {
        return;
    };
    let mut secrets = secrets();
    let db_url = match backend {
        Backend::Sqlite => db_url,
        Backend::Postgres => {
            let password = format!("dbpassword-{}", random_hex());
            secrets.push(("(database password)", password.clone()));
            let url = with_password(&db_url, &password);
            assert_ne!(
                url, db_url,
                "the test database URL has no `postgres@` to add to"
            );
            url
        }
    };
    let discord_api = format!("http://127.0.0.1:{}", closed_port());
    std::fs::write(dir.path().join("spotter.toml"), config(&discord_api)).unwrap();
    let path = dir.path().to_path_buf();
    let env = secrets.clone();
    let (logs, interaction_tokens) =
        tokio::task::spawn_blocking(move || drive(&path, &db_url, &env))
            .await
            .unwrap();
    secrets.extend(
        interaction_tokens
            .into_iter()
            .map(|t| ("(interaction or person token)", t)),
    );

    // The test did make it log errors, or finding nothing would prove nothing.
    for expected in [
        "cannot register the Discord slash commands yet",
        "cannot complete a deferred interaction response",
        "[token]",
        "cannot reach Spotter at",
    ] {
        assert!(
            logs.contains(expected),
            "nothing logged {expected:?}:\n{logs}"
        );
    }
    for (what, value) in &secrets {
        assert!(
            !logs.contains(value.as_str()),
            "the secret of {what} appears in the output:\n{logs}"
        );
    }
    if let Some(pg) = pg {
        pg.drop_db().await;
    }
}

/// A request that must be refused: path, headers, body.
type Refusal = (&'static str, Vec<(&'static str, String)>, String);

/// Runs the binary and provokes errors; returns everything every process wrote, and the
/// interaction tokens it was sent.
fn drive(dir: &Path, db_url: &str, secrets: &[(&'static str, String)]) -> (String, Vec<String>) {
    let secret = |var: &str| {
        secrets
            .iter()
            .find(|(v, _)| *v == var)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    let command = |args: &[&str]| {
        let mut c = spotter(dir, Some(db_url));
        c.args(["--config", "spotter.toml"]).args(args);
        for (var, value) in secrets.iter().filter(|(v, _)| v.starts_with("SPOTTER_")) {
            c.env(var, value);
        }
        c
    };
    let mut output = String::new();
    let mut served = Served::start(command(&["serve"]), dir);
    let url = served.url.clone();
    let http = client();

    // Refused credentials at every door.
    let api = http
        .post(format!("{url}/api/v1/commands"))
        .bearer_auth("not-the-token")
        .json(&json!({"text": "/incident list", "user": "sysadmin"}))
        .send()
        .unwrap();
    assert_eq!(api.status(), 401);
    let alert = r#"{"version":"4","groupKey":"g","status":"firing","receiver":"spotter","alerts":[{"status":"firing","labels":{"alertname":"X"},"annotations":{},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f"}]}"#;
    let refusals: Vec<Refusal> = vec![
        (
            "/webhooks/alertmanager",
            vec![("authorization", "Bearer wrong".into())],
            alert.into(),
        ),
        (
            "/webhooks/alertmanager/am-basic",
            // alertmanager:wrong
            vec![("authorization", "Basic YWxlcnRtYW5hZ2VyOndyb25n".into())],
            alert.into(),
        ),
        (
            "/webhooks/grafana",
            vec![("authorization", "Bearer wrong".into())],
            "{}".into(),
        ),
        (
            "/webhooks/grafana/grafana-hmac",
            vec![
                ("x-grafana-alerting-signature", "00".repeat(32)),
                (
                    "x-grafana-alerting-signature-timestamp",
                    chrono::Utc::now().timestamp().to_string(),
                ),
            ],
            "{}".into(),
        ),
        (
            "/v2/enqueue",
            vec![],
            r#"{"routing_key":"wrong","event_action":"trigger","payload":{"summary":"s","source":"x","severity":"critical"}}"#.into(),
        ),
        (
            "/webhooks/generic/backup-jobs",
            vec![
                ("x-spotter-signature", "00".repeat(32)),
                ("x-spotter-timestamp", chrono::Utc::now().timestamp().to_string()),
            ],
            "{}".into(),
        ),
    ];
    for (path, headers, body) in refusals {
        let mut req = http
            .post(format!("{url}{path}"))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let status = req.body(body).send().unwrap().status();
        assert!(status.is_client_error(), "{path} answered {status}");
    }
    // A malformed payload with the right token.
    let status = http
        .post(format!("{url}/webhooks/alertmanager"))
        .bearer_auth(secret("SPOTTER_ALERTMANAGER_TOKEN"))
        .body("{not json")
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 400);
    // A badly signed interaction.
    let ts = chrono::Utc::now().timestamp().to_string();
    let status = http
        .post(format!("{url}/discord/interactions"))
        .header("x-signature-ed25519", "00".repeat(64))
        .header("x-signature-timestamp", &ts)
        .body(serde_json::to_vec(&ix::ping()).unwrap())
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 401);

    // A person token: created (printed once, on its own stdout, which is not a log), refused
    // when it names someone else, revoked, then refused.
    let out = command(&["token", "create", "--person", "dba"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    let person_token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let as_other = http
        .post(format!("{url}/api/v1/commands"))
        .bearer_auth(&person_token)
        .json(&json!({"text": "/incident list", "user": "sysadmin"}))
        .send()
        .unwrap();
    assert_eq!(as_other.status(), 403);
    let out = command(&["token", "revoke", &person_token])
        .output()
        .unwrap();
    assert!(out.status.success());
    output.push_str(&String::from_utf8_lossy(&out.stdout));
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    let revoked = http
        .get(format!("{url}/api/v1/incidents"))
        .bearer_auth(&person_token)
        .send()
        .unwrap();
    assert_eq!(revoked.status(), 401);

    // A slash command that outlives the reply budget (the database is locked meanwhile): it is
    // deferred, and its completion through the interaction webhook cannot reach Discord.
    let token = ix::token("deferred");
    let body = ix::command(
        SYSADMIN_DISCORD,
        &[],
        GENERAL_CHANNEL,
        "incident",
        Some("declare"),
        &[("level", json!(2)), ("title", json!("Redis down"))],
        &token,
    );
    let raw = serde_json::to_vec(&body).unwrap();
    let lock = hold_write_lock(db_url, Duration::from_millis(3500));
    let ts = chrono::Utc::now().timestamp().to_string();
    let res = http
        .post(format!("{url}/discord/interactions"))
        .header("content-type", "application/json")
        .header(
            "x-signature-ed25519",
            ix::sign(&ix::signing_key(), &ts, &raw),
        )
        .header("x-signature-timestamp", &ts)
        .body(raw)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = res.json().unwrap();
    assert_eq!(v["type"], 5, "deferred: {v}");
    lock.join().unwrap();
    // Its retries take about 16 s before the failure is logged.
    served.wait_for_log(
        "cannot complete a deferred interaction response",
        Duration::from_secs(60),
    );

    // The CLI's own errors: a chat with a server that is not there, a registration with a
    // Discord that is not there.
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let out = command(&["discord", "register"]).output().unwrap();
    assert!(
        !out.status.success(),
        "discord register reached a closed port"
    );
    output.push_str(&String::from_utf8_lossy(&out.stdout));
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    let mut chat = command(&["chat", "--as", "sysadmin", "--url", dead.as_str()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    chat.stdin
        .take()
        .unwrap()
        .write_all(b"/incident list\n")
        .unwrap();
    let out = chat.wait_with_output().unwrap();
    assert!(!out.status.success());
    output.push_str(&String::from_utf8_lossy(&out.stdout));
    output.push_str(&String::from_utf8_lossy(&out.stderr));

    output.insert_str(0, &served.stop());
    (output, vec![token, person_token])
}

/// Takes the database's write lock on a connection of its own, on a thread of its own, and
/// releases it after `for_`; returns once the lock is held.
fn hold_write_lock(url: &str, for_: Duration) -> std::thread::JoinHandle<()> {
    let url = url.to_string();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                use sqlx::Connection;
                if url.starts_with("sqlite:") {
                    let mut c = sqlx::sqlite::SqliteConnection::connect(&url).await.unwrap();
                    sqlx::query("BEGIN IMMEDIATE")
                        .execute(&mut c)
                        .await
                        .unwrap();
                    locked_tx.send(()).unwrap();
                    tokio::time::sleep(for_).await;
                    sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
                } else {
                    let mut c = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
                    let mut tx = c.begin().await.unwrap();
                    sqlx::query("LOCK TABLE incidents IN EXCLUSIVE MODE")
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    locked_tx.send(()).unwrap();
                    tokio::time::sleep(for_).await;
                    tx.rollback().await.unwrap();
                }
            })
    });
    locked_rx.recv().unwrap();
    handle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_configured_secret_appears_in_any_log_or_error_sqlite() {
    no_secret_reaches_the_logs(Backend::Sqlite, "hostile_logs_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_configured_secret_appears_in_any_log_or_error_postgres() {
    no_secret_reaches_the_logs(Backend::Postgres, "hostile_logs_postgres").await;
}
