//! Runbook approvals on Discord end to end: the real application in HTTP-interactions mode, a
//! recording fake of Discord's REST API, signed slash commands and button presses, and a
//! runbook of the test's own whose only step appends to a marker file (the witness that a
//! process ran). The approval request arrives in the incident channel with Approve / Deny
//! buttons; the engine decides who may press them (never the requester, only the runbook's
//! approver role, once). SQLite and PostgreSQL.
//!
//! - `approve`: the request's buttons and words; the requester's and a stranger's presses
//!   refused; an approver's accepted, the step run once; the used button refused; two
//!   approvers at once; a press after the window closed; a slow decision deferred.
//! - `deny`: an approver denies; nothing runs; a cancelled run's buttons stay refused.
//! - `gates`: a step with its own approval gets new buttons, the earlier gate's are refused; an
//!   approver who requested may not approve; a Discord role mapped to approver may.

#[path = "../common/mod.rs"]
mod common;
#[path = "../fake_discord/mod.rs"]
mod fake_discord;

use fake_discord::interactions::{self as ix, GENERAL_CHANNEL};
use fake_discord::{FakeDiscord, APPLICATION_ID, GUILD_ID};
use serde_json::{json, Value};
use spotter::startup::Application;
use spotter_core::clock::SystemClock;
use spotter_core::config::{DiscordConfig, DiscordMode, IncidentChannels};
use spotter_core::domain::Role;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Discord user ids of configured people: dev is a responder; dba and security are
/// commanders and approvers.
const DBA: &str = "1280000000000000002";
const DEV: &str = "1280000000000000003";
const SECURITY: &str = "1280000000000000004";
/// Nobody Spotter knows, without mapped roles: a viewer.
const STRANGER: &str = "1289999999999999999";
/// A Discord role mapped to Spotter's approver.
const APPROVER_ROLE: &str = "1270000000000000007";
const CATEGORY: &str = "1295555555555555555";
const TOKEN_ENV: &str = "SPOTTER_TEST_DISCORD_BOT_TOKEN";

/// `mark`: one approval by an `approver`, one exec step appending a line to the marker.
const MARK_TOML: &str = r#"name = "mark"
description = "Writes a marker: the test's witness that a process ran"
approvals = 1
approver_role = "approver"

[[step]]
id = "write-marker"
description = "append a line to the marker"
kind = "exec"
argv = ["scripts/mark.sh"]
set_env = { MARKER = "MARKER_PATH" }
timeout = "30s"
"#;
/// `two-step`: the run-level approval, then a second step asking for its own.
const TWO_STEP_TOML: &str = r#"name = "two-step"
description = "Two markers, the second after its own approval"
approvals = 1
approver_role = "approver"

[[step]]
id = "first"
description = "the first marker"
kind = "exec"
argv = ["scripts/mark.sh"]
set_env = { MARKER = "MARKER_PATH" }
timeout = "30s"

[[step]]
id = "second"
description = "the second marker, after its own approval"
kind = "exec"
argv = ["scripts/mark.sh"]
set_env = { MARKER = "MARKER_PATH" }
timeout = "30s"
approvals = 1
approver_role = "approver"
"#;
const MARK_SH: &str = "#!/bin/bash\nset -euo pipefail\necho ran >> \"$MARKER\"\necho marked\n";

struct RunApp {
    addr: String,
    client: reqwest::Client,
    fake: FakeDiscord,
    marker: PathBuf,
    _dir: tempfile::TempDir,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pg: Option<spotter_core::testkit::PostgresTestDb>,
    engine: Arc<spotter_core::Engine>,
    /// dev's own API token, for reading runs and incidents as a person.
    dev_token: String,
    database_url: String,
}

impl RunApp {
    /// The application with the test's runbooks; `tweak` changes its configuration last.
    async fn spawn(
        backend: common::Backend,
        test: &str,
        tweak: fn(&mut spotter_core::config::Config),
    ) -> Option<RunApp> {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = common::database(backend, test, dir.path()).await?;
        let fake = FakeDiscord::start().await;
        let marker = dir.path().join("ran");
        let runbooks = dir.path().join("runbooks");
        std::fs::create_dir_all(runbooks.join("scripts")).unwrap();
        for (file, text) in [("mark.toml", MARK_TOML), ("two-step.toml", TWO_STEP_TOML)] {
            let text = text.replace("MARKER_PATH", &marker.display().to_string());
            std::fs::write(runbooks.join(file), text).unwrap();
        }
        let script = runbooks.join("scripts/mark.sh");
        std::fs::write(&script, MARK_SH).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

        let mut config = common::test_config(dir.path(), &database_url);
        config.runbooks.dir = Some(runbooks);
        config.runbooks.on_declare = None;
        for (person, id) in [("dba", DBA), ("dev", DEV), ("security", SECURITY)] {
            config
                .people
                .values_mut()
                .find(|p| p.id.as_str() == person)
                .unwrap()
                .discord_user_id = Some(id.into());
        }
        config.discord = Some(DiscordConfig {
            mode: DiscordMode::Interactions,
            application_id: APPLICATION_ID.into(),
            guild_id: GUILD_ID.into(),
            public_key: Some(ix::public_key_hex()),
            token_env: TOKEN_ENV.into(),
            api_base_url: fake.base.clone(),
            incident_channels: IncidentChannels::Category(Some(CATEGORY.into())),
            role_map: vec![(APPROVER_ROLE.into(), Role::Approver)],
        });
        config.outbox.retry_base = chrono::Duration::milliseconds(50);
        config.outbox.retry_max = chrono::Duration::milliseconds(300);
        tweak(&mut config);
        let env = |var: &str| (var == TOKEN_ENV).then(|| "test-bot-token".to_string());
        // Generated source credentials go to the data folder, not to the test's output.
        let app = Application::build_announcing(
            config,
            Arc::new(SystemClock),
            &env,
            &mut std::io::sink(),
        )
        .await
        .expect("the application builds");
        let addr = format!("http://{}", app.addr());
        let engine = app.engine().clone();
        let dev_token = spotter_webhooks::api_tokens::issue(
            engine.store().as_ref(),
            engine.config(),
            "dev",
            "test",
            chrono::Utc::now(),
        )
        .await
        .unwrap()
        .token
        .expose()
        .to_string();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Some(RunApp {
            addr,
            client: reqwest::Client::new(),
            fake,
            marker,
            _dir: dir,
            shutdown,
            server: Some(server),
            pg,
            engine,
            dev_token,
            database_url,
        })
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            s.await.unwrap().unwrap();
        }
        if let Some(pg) = self.pg.take() {
            pg.drop_db().await;
        }
    }

    /// A correctly signed interaction; returns Discord's answer.
    async fn interact(&self, body: &Value) -> Value {
        let raw = serde_json::to_vec(body).unwrap();
        let ts = chrono::Utc::now().timestamp().to_string();
        let res = self
            .client
            .post(format!("{}/discord/interactions", self.addr))
            .header("content-type", "application/json")
            .header(
                "x-signature-ed25519",
                ix::sign(&ix::signing_key(), &ts, &raw),
            )
            .header("x-signature-timestamp", &ts)
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "interaction {body}");
        res.json().await.unwrap()
    }

    /// A slash command typed by `user` in `channel`.
    async fn slash(
        &self,
        user: &str,
        channel: &str,
        name: &str,
        sub: &str,
        options: &[(&str, Value)],
    ) -> Value {
        let body = ix::command(
            user,
            &[],
            channel,
            name,
            Some(sub),
            options,
            &ix::token(sub),
        );
        self.interact(&body).await
    }

    /// `user` presses the button `custom_id` of `message` in `channel`.
    async fn press(&self, user: &str, channel: &str, message: &str, custom_id: &str) -> Value {
        self.press_with_roles(user, &[], channel, message, custom_id)
            .await
    }

    /// The same, by a member holding the Discord `roles`.
    async fn press_with_roles(
        &self,
        user: &str,
        roles: &[&str],
        channel: &str,
        message: &str,
        custom_id: &str,
    ) -> Value {
        // Discord sends the whole message a button belongs to: its content as posted.
        let posted = self.fake.message(message);
        let text = posted
            .as_ref()
            .and_then(|m| m["content"].as_str())
            .unwrap_or("");
        let body = ix::button_on(
            user,
            roles,
            channel,
            message,
            text,
            custom_id,
            &ix::token("press"),
        );
        self.interact(&body).await
    }

    /// A GET of the API with dev's own token.
    async fn get(&self, path: &str) -> Value {
        let res = self
            .client
            .get(format!("{}{path}", self.addr))
            .bearer_auth(&self.dev_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    async fn run(&self, id: i64) -> Value {
        self.get(&format!("/api/v1/runs/{id}")).await
    }

    /// The newest run's id.
    async fn newest_run(&self) -> i64 {
        self.get("/api/v1/runs?state=all").await["runs"][0]["id"]
            .as_i64()
            .expect("a run was recorded")
    }

    /// Waits until run `id` is in one of `states`.
    async fn wait_run(&self, id: i64, states: &[&str]) -> Value {
        let start = Instant::now();
        loop {
            let run = self.run(id).await;
            if states.contains(&run["state"].as_str().unwrap_or("")) {
                return run;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "run #{id} did not reach {states:?}: {run:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// dev declares an incident in the general channel and asks for a run of `mark` in its
    /// channel; returns the channel and the run's id.
    async fn declare_and_request(&self) -> (String, i64) {
        self.declare_and_request_as(DEV, "dev", "mark").await
    }

    /// dev declares an incident; `user` (person `person`) asks for a run of `runbook` in its
    /// channel.
    async fn declare_and_request_as(
        &self,
        user: &str,
        person: &str,
        runbook: &str,
    ) -> (String, i64) {
        let v = self
            .slash(
                DEV,
                GENERAL_CHANNEL,
                "incident",
                "declare",
                &[
                    ("level", json!(3)),
                    ("title", json!("Orders table corrupted")),
                ],
            )
            .await;
        assert_eq!(v["type"], 4, "{v}");
        let (channel, _card) = self.fake.incident_channel_and_card().await;
        let v = self
            .slash(
                user,
                &channel,
                "runbook",
                "run",
                &[("name", json!(runbook))],
            )
            .await;
        assert_eq!(v["type"], 4, "{v}");
        assert!(!is_ephemeral(&v), "a run request is for everyone: {v}");
        let id = self.newest_run().await;
        let run = self.run(id).await;
        assert_eq!(run["state"], "pending_approval", "{run:#}");
        assert_eq!(run["requested_by"], person);
        assert_eq!(
            run["incident"], "INC-1",
            "typed in INC-1's channel: {run:#}"
        );
        (channel, id)
    }

    /// The approval request of run `id` as posted in `channel`: the message, once it arrived.
    async fn approval_request(&self, channel: &str, id: i64) -> Value {
        self.approval_request_at(channel, id, 0).await
    }

    /// The approval request of run `id` for the step with index `gate`.
    async fn approval_request_at(&self, channel: &str, id: i64, gate: usize) -> Value {
        let approve = format!("run:{id}:g{gate}:approve");
        self.fake
            .wait_for(
                "the approval request with its buttons",
                Duration::from_secs(10),
                |_| {
                    self.fake
                        .messages_in(channel)
                        .into_iter()
                        .find(|m| custom_ids(m).contains(&approve))
                },
            )
            .await
    }

    /// The lines the runbook's step wrote: one per process that ran.
    fn marks(&self) -> usize {
        std::fs::read_to_string(&self.marker)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// The incident's timeline entries about runs.
    async fn run_timeline(&self) -> Vec<Value> {
        self.get("/api/v1/incidents/INC-1").await["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"].as_str().unwrap_or("").starts_with("run"))
            .cloned()
            .collect()
    }
}

/// Writes one test per backend for the app (configured by `tweak`, when given).
macro_rules! discord_test {
    ($name:ident, |$app:ident| $body:expr) => {
        discord_test!($name, |_| {}, |$app| $body);
    };
    ($name:ident, $tweak:expr, |$app:ident| $body:expr) => {
        mod $name {
            use super::*;
            async fn run(backend: common::Backend) {
                let Some($app) = RunApp::spawn(backend, stringify!($name), $tweak).await else {
                    return;
                };
                $body.await;
                $app.stop().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(common::Backend::Postgres).await
            }
        }
    };
}

fn is_ephemeral(response: &Value) -> bool {
    response["data"]["flags"]
        .as_u64()
        .is_some_and(|f| f & 64 == 64)
}

fn content(response: &Value) -> &str {
    response["data"]["content"].as_str().unwrap_or("")
}

/// The custom ids of a message's buttons, in order.
fn custom_ids(message: &Value) -> Vec<String> {
    message["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["custom_id"].as_str().map(str::to_string))
        .collect()
}

/// A refusal the presser alone sees, saying `says`.
fn assert_refused(v: &Value, says: &str) {
    assert_eq!(v["type"], 4, "{v}");
    assert!(is_ephemeral(v), "a refusal is private: {v}");
    assert!(content(v).contains(says), "expected {says:?} in {v}");
}

/// Nothing ran: the marker is absent and the run still waits for approval with no decision.
async fn assert_still_pending(app: &RunApp, id: i64) {
    // Long enough for a worker that was wrongly woken to have spawned the step.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.marks(), 0, "no process may have run");
    assert!(!Path::new(&app.marker).exists());
    let run = app.run(id).await;
    assert_eq!(run["state"], "pending_approval", "{run:#}");
    assert_eq!(run["approvals"], json!([]), "{run:#}");
    assert_eq!(run["steps"], json!([]), "{run:#}");
}

/// Takes the database's write lock on runs on another connection; releases it after `for_`.
async fn hold_run_writes(url: &str, for_: Duration) -> tokio::task::JoinHandle<()> {
    use sqlx::Connection;
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let url = url.to_string();
    let task = tokio::spawn(async move {
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
            // Reads go on (EXCLUSIVE allows SELECT); the decision's update of the run waits.
            sqlx::query("LOCK TABLE runbook_runs IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .unwrap();
            locked_tx.send(()).unwrap();
            tokio::time::sleep(for_).await;
            tx.rollback().await.unwrap();
        }
    });
    locked_rx.await.unwrap();
    task
}

mod approve;
mod deny;
mod gates;
