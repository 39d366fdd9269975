//! Runbook approvals on Discord end to end: the real application in HTTP-interactions mode, a
//! recording fake of Discord's REST API, signed slash commands and button presses, and a
//! runbook of the test's own whose only step appends to a marker file (the witness that a
//! process ran). The approval request arrives in the incident channel with Approve / Deny
//! buttons; the engine decides who may press them (never the requester, only the runbook's
//! approver role, once). SQLite and PostgreSQL.

mod common;
mod fake_discord;

use fake_discord::interactions::{self as ix, GENERAL_CHANNEL};
use fake_discord::{FakeDiscord, APPLICATION_ID, GUILD_ID};
use serde_json::{json, Value};
use spotter::startup::Application;
use spotter_core::clock::SystemClock;
use spotter_core::config::{DiscordConfig, DiscordMode, IncidentChannels};
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
}

impl RunApp {
    async fn spawn(backend: common::Backend, test: &str) -> Option<RunApp> {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = common::database(backend, test, dir.path()).await?;
        let fake = FakeDiscord::start().await;
        let marker = dir.path().join("ran");
        let runbooks = dir.path().join("runbooks");
        std::fs::create_dir_all(runbooks.join("scripts")).unwrap();
        std::fs::write(
            runbooks.join("mark.toml"),
            MARK_TOML.replace("MARKER_PATH", &marker.display().to_string()),
        )
        .unwrap();
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
            role_map: vec![],
        });
        config.outbox.retry_base = chrono::Duration::milliseconds(50);
        config.outbox.retry_max = chrono::Duration::milliseconds(300);
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
        let body = ix::button(user, &[], channel, message, custom_id, &ix::token("press"));
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
            .slash(DEV, &channel, "runbook", "run", &[("name", json!("mark"))])
            .await;
        assert_eq!(v["type"], 4, "{v}");
        assert!(!is_ephemeral(&v), "a run request is for everyone: {v}");
        let id = self.newest_run().await;
        let run = self.run(id).await;
        assert_eq!(run["state"], "pending_approval", "{run:#}");
        assert_eq!(run["requested_by"], "dev");
        assert_eq!(
            run["incident"], "INC-1",
            "typed in INC-1's channel: {run:#}"
        );
        (channel, id)
    }

    /// The approval request of run `id` as posted in `channel`: the message, once it arrived.
    async fn approval_request(&self, channel: &str, id: i64) -> Value {
        let approve = format!("run:{id}:g0:approve");
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

/// Writes one test per backend for the app.
macro_rules! discord_test {
    ($name:ident, |$app:ident| $body:expr) => {
        mod $name {
            use super::*;
            async fn run(backend: common::Backend) {
                let Some($app) = RunApp::spawn(backend, stringify!($name)).await else {
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

discord_test!(
    the_approve_button_is_refused_to_the_requester_and_a_stranger_and_runs_once_for_an_approver,
    |app| async {
        let (channel, id) = app.declare_and_request().await;

        // 1. The request, in the incident channel: Approve and Deny for this run and gate, and
        //    words saying which run, who asked and what will run.
        let request = app.approval_request(&channel, id).await;
        let approve = format!("run:{id}:g0:approve");
        let deny = format!("run:{id}:g0:deny");
        assert_eq!(custom_ids(&request), [approve.clone(), deny.clone()]);
        let buttons = &request["components"][0]["components"];
        assert_eq!(buttons[0]["label"], "Approve");
        assert_eq!(buttons[1]["label"], "Deny");
        let text = request["content"].as_str().unwrap();
        assert!(text.contains(&format!("run #{id} of mark")), "{text}");
        assert!(text.contains("requested by Development Team"), "{text}");
        assert!(text.contains("write-marker"), "the step: {text}");
        assert!(
            text.contains("scripts/mark.sh"),
            "the step's command: {text}"
        );
        assert!(text.contains("approver"), "the role it needs: {text}");
        let message = request["id"].as_str().unwrap().to_string();
        // Posted once, and to the incident channel only.
        let posted = app
            .fake
            .requests()
            .iter()
            .filter(|r| r.ok() && custom_ids(&r.body).contains(&approve))
            .map(|r| r.path.clone())
            .collect::<Vec<_>>();
        assert_eq!(
            posted,
            [format!("/api/v10/channels/{channel}/messages")],
            "{posted:?}"
        );

        // 2. The requester's own press.
        let v = app.press(DEV, &channel, &message, &approve).await;
        assert_refused(&v, "someone else must approve");
        assert_still_pending(&app, id).await;

        // 3. Somebody Spotter does not know: a viewer, told the role it takes.
        let v = app.press(STRANGER, &channel, &message, &approve).await;
        assert_refused(&v, "needs role approver");
        assert!(content(&v).contains(&format!("discord:{STRANGER}")), "{v}");
        assert_still_pending(&app, id).await;

        // 4. An approver: accepted, and the run goes through.
        let v = app.press(DBA, &channel, &message, &approve).await;
        assert_eq!(v["type"], 4, "{v}");
        assert!(
            content(&v).contains(&format!("Run #{id} of mark approved by")),
            "{v}"
        );
        let run = app
            .wait_run(id, &["succeeded", "failed", "timed_out"])
            .await;
        assert_eq!(run["state"], "succeeded", "{run:#}");
        assert_eq!(app.marks(), 1);
        let approvals = run["approvals"].as_array().unwrap();
        assert_eq!(approvals.len(), 1, "{run:#}");
        assert_eq!(approvals[0]["person"], "dba");
        assert_eq!(approvals[0]["decision"], "approve");
        assert_eq!(approvals[0]["gate"], 0);
        // The timeline: the approval by dba (the person, never the Discord account's name).
        let timeline = app.run_timeline().await;
        let approval = timeline
            .iter()
            .find(|e| e["kind"] == "run_approval")
            .unwrap_or_else(|| panic!("no approval on the timeline: {timeline:#?}"));
        assert_eq!(approval["actor"], "dba", "{approval}");
        assert!(
            approval["text"]
                .as_str()
                .unwrap()
                .contains(&format!("Run #{id} of mark approved")),
            "{approval}"
        );
        let all = serde_json::to_string(&timeline).unwrap();
        assert!(!all.contains("user002"), "a Discord username: {all}");
        assert!(
            !all.contains(DBA),
            "a snowflake instead of the person: {all}"
        );

        // 5. The same button again: the approval was used; nothing runs twice.
        let v = app.press(DBA, &channel, &message, &approve).await;
        assert_refused(&v, "not waiting for approval");
        // And a Deny after the fact changes nothing either.
        let v = app.press(SECURITY, &channel, &message, &deny).await;
        assert_refused(&v, "not waiting for approval");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.marks(), 1, "the step ran once");
        let after = app.run(id).await;
        assert_eq!(after["state"], "succeeded");
        assert_eq!(after["approvals"], run["approvals"]);
        // Only the one approval request was posted for the run.
        let asks = app
            .fake
            .requests()
            .iter()
            .filter(|r| r.ok() && custom_ids(&r.body).contains(&approve))
            .count();
        assert_eq!(asks, 1);
        // The audit log: one request by dev, one approval by dba; the refused presses none.
        let audit: Vec<(String, String)> = app
            .engine
            .store()
            .audit_log()
            .await
            .unwrap()
            .entries
            .into_iter()
            .filter(|e| e.subject == format!("run:{id}") && e.action != "run.finish")
            .map(|e| (e.action, e.actor))
            .filter(|(a, _)| a == "run.request" || a == "run.approve" || a == "run.deny")
            .collect();
        assert_eq!(
            audit,
            [
                ("run.request".to_string(), "dev".to_string()),
                ("run.approve".to_string(), "dba".to_string())
            ]
        );
    }
);

discord_test!(
    the_deny_button_from_an_approver_ends_the_run_denied_and_nothing_runs,
    |app| async {
        let (channel, first) = app.declare_and_request().await;
        // The first run is cancelled by its requester; the second is the one denied.
        let v = app
            .slash(DEV, &channel, "runbook", "cancel", &[("run", json!(first))])
            .await;
        assert!(!is_ephemeral(&v), "{v}");
        assert_eq!(app.run(first).await["state"], "cancelled");
        let v = app
            .slash(DEV, &channel, "runbook", "run", &[("name", json!("mark"))])
            .await;
        assert_eq!(v["type"], 4, "{v}");
        let id = app.newest_run().await;
        assert_ne!(id, first);
        let request = app.approval_request(&channel, id).await;
        let message = request["id"].as_str().unwrap().to_string();
        let deny = format!("run:{id}:g0:deny");
        assert_eq!(
            custom_ids(&request),
            [format!("run:{id}:g0:approve"), deny.clone()]
        );
        // The first run's buttons are still on its own message; they are not this run's.
        let old = app.approval_request(&channel, first).await;
        let v = app
            .press(
                SECURITY,
                &channel,
                old["id"].as_str().unwrap(),
                &format!("run:{first}:g0:approve"),
            )
            .await;
        assert_refused(&v, "it is cancelled");
        assert_still_pending(&app, id).await;

        // The requester may not deny it either (that is a cancel), nor a stranger.
        let v = app.press(DEV, &channel, &message, &deny).await;
        assert_refused(&v, "someone else must deny");
        let v = app.press(STRANGER, &channel, &message, &deny).await;
        assert_refused(&v, "needs role approver");
        assert_still_pending(&app, id).await;

        let v = app.press(SECURITY, &channel, &message, &deny).await;
        assert_eq!(v["type"], 4, "{v}");
        assert!(
            content(&v).contains(&format!("Run #{id} of mark denied by")),
            "{v}"
        );
        let run = app.run(id).await;
        assert_eq!(run["state"], "denied", "{run:#}");
        assert_eq!(run["approvals"][0]["person"], "security");
        assert_eq!(run["approvals"][0]["decision"], "deny");
        assert_eq!(run["steps"], json!([]));
        assert!(
            run["outcome"]
                .as_str()
                .unwrap()
                .contains("denied by security"),
            "{run:#}"
        );
        let timeline = app.run_timeline().await;
        let denial = timeline
            .iter()
            .find(|e| e["kind"] == "run_approval")
            .unwrap_or_else(|| panic!("no denial on the timeline: {timeline:#?}"));
        assert_eq!(denial["actor"], "security", "{denial}");

        // Denied is final: an approval now is refused, and nothing ever ran.
        let v = app
            .press(DBA, &channel, &message, &format!("run:{id}:g0:approve"))
            .await;
        assert_refused(&v, "it is denied");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.marks(), 0);
        assert_eq!(app.run(id).await["state"], "denied");
    }
);
