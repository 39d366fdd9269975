//! The Discord bot end to end: the real application in HTTP-interactions mode on port 0, signed
//! interactions posted to `/discord/interactions`, and a recording fake of Discord's REST API as
//! `discord.api_base_url`. The flows run on SQLite and on PostgreSQL.

mod common;
mod fake_discord;

use fake_discord::interactions::{self as ix, GENERAL_CHANNEL};
use fake_discord::{FakeDiscord, Recorded, APPLICATION_ID, GUILD_ID};
use serde_json::{json, Value};
use spotter::startup::Application;
use spotter_core::clock::SystemClock;
use spotter_core::config::{Config, DiscordConfig, DiscordMode, IncidentChannels};
use spotter_core::domain::Role;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Discord user ids of configured people (see `DiscordApp::spawn`).
const SYSADMIN: &str = "1280000000000000001"; // admin
const DBA: &str = "1280000000000000002"; // commander, approver
const DEV: &str = "1280000000000000003"; // responder
/// Nobody Spotter knows, without mapped roles: a viewer.
const STRANGER: &str = "1289999999999999999";
/// A Discord role mapped to Spotter's responder.
const ONCALL_ROLE: &str = "1270000000000000009";
const CATEGORY: &str = "1295555555555555555";
const TOKEN_ENV: &str = "SPOTTER_TEST_DISCORD_BOT_TOKEN";
const BOT_TOKEN: &str = "test-bot-token";

struct DiscordApp {
    addr: String,
    api_token: String,
    client: reqwest::Client,
    fake: FakeDiscord,
    config: Config,
    database_url: String,
    _dir: tempfile::TempDir,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pg: Option<spotter_core::testkit::PostgresTestDb>,
    engine: Arc<spotter_core::Engine>,
    /// Person id → their own API token (the shared token is capped at responder).
    person_tokens: tokio::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl DiscordApp {
    async fn spawn(backend: common::Backend, test: &str) -> Option<DiscordApp> {
        Self::spawn_with(backend, test, |_| {}).await
    }

    async fn spawn_with(
        backend: common::Backend,
        test: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<DiscordApp> {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = common::database(backend, test, dir.path()).await?;
        let fake = FakeDiscord::start().await;
        let mut config = common::test_config(dir.path(), &database_url);
        for (person, id) in [("sysadmin", SYSADMIN), ("dba", DBA), ("dev", DEV)] {
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
            role_map: vec![(ONCALL_ROLE.into(), Role::Responder)],
        });
        // Short retries, so outages resolve within a test's few seconds.
        config.outbox.retry_base = chrono::Duration::milliseconds(50);
        config.outbox.retry_max = chrono::Duration::milliseconds(300);
        config.outbox.max_attempts = 500;
        tweak(&mut config);
        let token_file = config.server.data_dir.join("api-token");
        // The bot token comes from the test's own environment, not the process's.
        let env = |var: &str| (var == TOKEN_ENV).then(|| BOT_TOKEN.to_string());
        let app = Application::build_with(config.clone(), Arc::new(SystemClock), &env)
            .await
            .expect("the application builds");
        let addr = format!("http://{}", app.addr());
        let engine = app.engine().clone();
        let api_token = std::fs::read_to_string(token_file).unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Some(DiscordApp {
            addr,
            api_token,
            client: reqwest::Client::new(),
            fake,
            config,
            database_url,
            _dir: dir,
            shutdown,
            server: Some(server),
            pg,
            engine,
            person_tokens: Default::default(),
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

    /// POSTs a body to `/discord/interactions` signed at `timestamp` with `key`.
    async fn post_signed(
        &self,
        body: &Value,
        timestamp: i64,
        key: &ed25519_dalek::SigningKey,
    ) -> reqwest::Response {
        let raw = serde_json::to_vec(body).unwrap();
        let ts = timestamp.to_string();
        self.client
            .post(format!("{}/discord/interactions", self.addr))
            .header("content-type", "application/json")
            .header("x-signature-ed25519", ix::sign(key, &ts, &raw))
            .header("x-signature-timestamp", &ts)
            .body(raw)
            .send()
            .await
            .unwrap()
    }

    /// A correctly signed interaction; returns the response body and how long it took.
    async fn interact(&self, body: &Value) -> (Value, Duration) {
        let started = Instant::now();
        let res = self
            .post_signed(body, chrono::Utc::now().timestamp(), &ix::signing_key())
            .await;
        assert_eq!(res.status(), 200, "interaction {body}");
        let v: Value = res.json().await.unwrap();
        (v, started.elapsed())
    }

    /// `/incident declare` typed by `user` in the general channel; returns the response.
    async fn declare(&self, user: &str, level: i64, title: &str) -> Value {
        let body = ix::command(
            user,
            &[],
            GENERAL_CHANNEL,
            "incident",
            Some("declare"),
            &[("level", json!(level)), ("title", json!(title))],
            &ix::token("declare"),
        );
        self.interact(&body).await.0
    }

    /// A command through the HTTP API (same engine, another door), with the person's own token.
    async fn api(&self, user: &str, text: &str) -> Value {
        let token = {
            let mut tokens = self.person_tokens.lock().await;
            match tokens.get(user) {
                Some(t) => t.clone(),
                None => {
                    let issued = spotter_webhooks::api_tokens::issue(
                        self.engine.store().as_ref(),
                        self.engine.config(),
                        user,
                        "test",
                        chrono::Utc::now(),
                    )
                    .await
                    .unwrap();
                    let t = issued.token.expose().to_string();
                    tokens.insert(user.to_string(), t.clone());
                    t
                }
            }
        };
        let res = self
            .client
            .post(format!("{}/api/v1/commands", self.addr))
            .bearer_auth(token)
            .json(&json!({"text": text, "user": user}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["ok"], true, "{text}: {}", v["reply"]);
        v
    }

    async fn incident(&self, reference: &str) -> Value {
        self.client
            .get(format!("{}/api/v1/incidents/{reference}", self.addr))
            .bearer_auth(&self.api_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Writes one test per backend, like `dual_test!`, for the Discord app.
macro_rules! discord_test {
    ($name:ident, |$app:ident| $body:expr) => {
        mod $name {
            use super::*;
            async fn run(backend: common::Backend) {
                let Some($app) = DiscordApp::spawn(backend, stringify!($name)).await else {
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

fn card_posts(reqs: &[Recorded], channel: &str) -> usize {
    reqs.iter()
        .filter(|r| {
            r.ok()
                && r.is("POST", &format!("/api/v10/channels/{channel}/messages"))
                && r.body["embeds"].as_array().is_some_and(|e| !e.is_empty())
        })
        .count()
}

// ── The signed endpoint ─────────────────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_ping_is_answered_with_a_pong() {
    let app = DiscordApp::spawn(common::Backend::Sqlite, "ping")
        .await
        .unwrap();
    let (v, _) = app.interact(&ix::ping()).await;
    assert_eq!(v, json!({"type": 1}));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_wrongly_signed_and_stale_requests_are_refused_with_401() {
    let app = DiscordApp::spawn(common::Backend::Sqlite, "signatures")
        .await
        .unwrap();
    let url = format!("{}/discord/interactions", app.addr);
    let body = ix::ping();
    let now = chrono::Utc::now().timestamp();

    // No signature at all.
    let res = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // Signed by another key.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    assert_eq!(app.post_signed(&body, now, &other).await.status(), 401);
    // A valid signature over a different body (the body was tampered with).
    let raw = serde_json::to_vec(&body).unwrap();
    let sig = ix::sign(&ix::signing_key(), &now.to_string(), &raw);
    let res = app
        .client
        .post(&url)
        .header("x-signature-ed25519", sig)
        .header("x-signature-timestamp", now.to_string())
        .body(serde_json::to_vec(&ix::ping()).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Garbage in the signature header.
    let res = app
        .client
        .post(&url)
        .header("x-signature-ed25519", "not-hex")
        .header("x-signature-timestamp", now.to_string())
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Correctly signed, but 6 minutes old, or 6 minutes ahead.
    for skew in [-360, 360] {
        let res = app.post_signed(&body, now + skew, &ix::signing_key()).await;
        assert_eq!(res.status(), 401, "skew {skew}");
    }
    // Within the window it is fine.
    assert_eq!(
        app.post_signed(&body, now - 60, &ix::signing_key())
            .await
            .status(),
        200
    );
    // Nothing reached the engine or Discord.
    assert!(app.fake.ok("POST", "/api/v10/channels").is_empty());
    app.stop().await;
}

// ── Commands, the incident channel and its card ─────────────────────────────────────────────

discord_test!(
    a_declare_from_a_configured_user_opens_a_channel_and_posts_the_card,
    |app| async {
        let body = ix::command(
            SYSADMIN,
            &[],
            GENERAL_CHANNEL,
            "incident",
            Some("declare"),
            &[
                ("level", json!(3)),
                ("title", json!("MySQL primary unreachable")),
            ],
            &ix::token("declare"),
        );
        let (v, took) = app.interact(&body).await;
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert_eq!(v["type"], 4, "{v}");
        assert!(
            v["data"]["content"]
                .as_str()
                .unwrap()
                .starts_with("Declared INC-1"),
            "{v}"
        );
        assert!(!is_ephemeral(&v), "a declaration is for everyone: {v}");

        let i = app.incident("INC-1").await;
        assert_eq!(i["state"], "declared");
        assert_eq!(i["level"], 3);
        assert_eq!(i["source"], "chat");
        assert_eq!(i["declared_by"], "sysadmin");

        // The channel, under the category, named after the incident; then the card in it.
        let (channel, card) = app.fake.incident_channel_and_card().await;
        let created = &app.fake.channels()[0];
        assert_eq!(created["name"], "inc-1-mysql-primary-unreachable");
        assert_eq!(created["parent_id"], CATEGORY);
        let card = app.fake.message(&card).unwrap();
        let embed = &card["embeds"][0];
        assert_eq!(embed["title"], "INC-1 · MySQL primary unreachable");
        assert_eq!(embed["color"], 0xE74C3C);
        let text = embed.to_string();
        assert!(text.contains("3 · Complete System Failure"), "{text}");
        assert!(text.contains("DECLARED"), "{text}");
        assert!(text.contains("Immediate Response"), "{text}");
        let deadline: chrono::DateTime<chrono::Utc> =
            i["rto_deadline"].as_str().unwrap().parse().unwrap();
        assert!(
            text.contains(&format!("<t:{}:R>", deadline.timestamp())),
            "{text}"
        );
        let buttons: Vec<&str> = card["components"][0]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["custom_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            buttons,
            [
                "incident:INC-1:ack",
                "incident:INC-1:escalate",
                "incident:INC-1:resolve"
            ]
        );

        // The timeline follows the card into the channel.
        app.fake
            .wait_for("the declaration posted", Duration::from_secs(10), |_| {
                app.fake
                    .messages_in(&channel)
                    .iter()
                    .any(|m| {
                        m["content"]
                            .as_str()
                            .unwrap()
                            .starts_with("INC-1 declared at level 3")
                    })
                    .then_some(())
            })
            .await;
        // Every call carried the bot token.
        assert!(app
            .fake
            .requests()
            .iter()
            .filter(|r| r.path.contains("/channels"))
            .all(|r| r.authorization.as_deref() == Some("Bot test-bot-token")));
    }
);

discord_test!(
    the_acknowledge_button_from_a_responder_edits_the_card_in_place,
    |app| async {
        app.declare(SYSADMIN, 3, "MySQL down").await;
        let (channel, card) = app.fake.incident_channel_and_card().await;

        let click = ix::button(
            DEV,
            &[],
            &channel,
            &card,
            "incident:INC-1:ack",
            &ix::token("ack"),
        );
        let (v, took) = app.interact(&click).await;
        assert!(took < Duration::from_secs(3), "took {took:?}");
        // The answer is the card itself, updated (type 7).
        assert_eq!(v["type"], 7, "{v}");
        assert!(
            v["data"]["embeds"][0].to_string().contains("ACKNOWLEDGED"),
            "{v}"
        );
        assert_eq!(
            v["data"]["components"][0]["components"][0]["disabled"],
            true
        );

        let i = app.incident("INC-1").await;
        assert_eq!(i["state"], "acknowledged");
        assert_eq!(i["acknowledged_by"], "dev");

        // The card message on Discord is edited in place (PATCH), not posted again.
        let card_path = format!("/api/v10/channels/{channel}/messages/{card}");
        app.fake
            .wait_for(
                "the card edited to acknowledged",
                Duration::from_secs(10),
                |reqs| {
                    reqs.iter()
                        .any(|r| {
                            r.ok()
                                && r.is("PATCH", &card_path)
                                && r.body.to_string().contains("ACKNOWLEDGED")
                        })
                        .then_some(())
                },
            )
            .await;
        app.fake
            .wait_for(
                "the acknowledgement posted",
                Duration::from_secs(10),
                |_| {
                    app.fake
                        .messages_in(&channel)
                        .iter()
                        .any(|m| m["content"].as_str().unwrap().contains("acknowledged by"))
                        .then_some(())
                },
            )
            .await;
        assert_eq!(card_posts(&app.fake.requests(), &channel), 1);
        assert_eq!(app.fake.channels().len(), 1);
        let now = app.fake.message(&card).unwrap();
        assert!(now["embeds"][0].to_string().contains("ACKNOWLEDGED"));
    }
);

discord_test!(
    an_unknown_users_click_is_refused_privately_and_changes_nothing,
    |app| async {
        app.declare(SYSADMIN, 2, "Redis down").await;
        let (channel, card) = app.fake.incident_channel_and_card().await;
        let before = app.incident("INC-1").await;

        let click = ix::button(
            STRANGER,
            &[],
            &channel,
            &card,
            "incident:INC-1:ack",
            &ix::token("ack"),
        );
        let (v, _) = app.interact(&click).await;
        assert_eq!(v["type"], 4, "{v}");
        assert!(is_ephemeral(&v), "{v}");
        let text = v["data"]["content"].as_str().unwrap();
        assert!(text.contains("needs role responder"), "{text}");
        assert!(text.contains(&format!("discord:{STRANGER}")), "{text}");

        let after = app.incident("INC-1").await;
        assert_eq!(after["state"], "declared");
        assert_eq!(after["version"], before["version"]);
        assert_eq!(after["timeline"], before["timeline"]);

        // The same member holding the mapped on-call role may.
        let click = ix::button(
            STRANGER,
            &[ONCALL_ROLE],
            &channel,
            &card,
            "incident:INC-1:ack",
            &ix::token("ack"),
        );
        let (v, _) = app.interact(&click).await;
        assert_eq!(v["type"], 7, "{v}");
        assert_eq!(
            app.incident("INC-1").await["acknowledged_by"],
            format!("discord:{STRANGER}")
        );
    }
);

discord_test!(
    a_slow_command_is_deferred_then_completed_through_the_webhook,
    |app| async {
        // Hold the database's write lock for longer than the reply budget.
        let hold = hold_write_lock(&app.database_url, Duration::from_millis(3500)).await;
        let token = ix::token("slow");
        let body = ix::command(
            SYSADMIN,
            &[],
            GENERAL_CHANNEL,
            "incident",
            Some("declare"),
            &[("level", json!(1)), ("title", json!("Slow API"))],
            &token,
        );
        let (v, took) = app.interact(&body).await;
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert_eq!(v["type"], 5, "deferred: {v}");
        assert!(!is_ephemeral(&v), "{v}");
        hold.await.unwrap();

        let path = format!("/api/v10/webhooks/{APPLICATION_ID}/{token}/messages/@original");
        let done = app
            .fake
            .wait_for(
                "the deferred reply completed",
                Duration::from_secs(15),
                |reqs| {
                    reqs.iter()
                        .find(|r| r.ok() && r.is("PATCH", &path))
                        .cloned()
                },
            )
            .await;
        assert!(
            done.body["content"]
                .as_str()
                .unwrap()
                .starts_with("Declared INC-1"),
            "{}",
            done.body
        );
        assert_eq!(app.incident("INC-1").await["state"], "declared");

        // A slow button: acknowledged at once (type 6), then the card edited through the webhook.
        let (channel, card) = app.fake.incident_channel_and_card().await;
        let hold = hold_write_lock(&app.database_url, Duration::from_millis(3500)).await;
        let token = ix::token("slow-ack");
        let click = ix::button(DEV, &[], &channel, &card, "incident:INC-1:ack", &token);
        let (v, took) = app.interact(&click).await;
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert_eq!(v["type"], 6, "deferred update: {v}");
        hold.await.unwrap();
        let path = format!("/api/v10/webhooks/{APPLICATION_ID}/{token}/messages/@original");
        let done = app
            .fake
            .wait_for(
                "the deferred card update",
                Duration::from_secs(15),
                |reqs| {
                    reqs.iter()
                        .find(|r| r.ok() && r.is("PATCH", &path))
                        .cloned()
                },
            )
            .await;
        assert!(
            done.body["embeds"][0].to_string().contains("ACKNOWLEDGED"),
            "{}",
            done.body
        );
        assert_eq!(app.incident("INC-1").await["state"], "acknowledged");
    }
);

/// Takes the database's write lock on another connection and releases it after `for_`.
async fn hold_write_lock(url: &str, for_: Duration) -> tokio::task::JoinHandle<()> {
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
            sqlx::query("LOCK TABLE incidents IN EXCLUSIVE MODE")
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

discord_test!(
    commands_in_an_incident_channel_default_to_its_incident,
    |app| async {
        app.declare(SYSADMIN, 3, "MySQL down").await;
        let (channel, _) = app.fake.incident_channel_and_card().await;
        app.api("sysadmin", r#"/incident declare level:1 title:"Slow API""#)
            .await;

        // Two incidents are open; typed in INC-1's channel, the update goes to INC-1.
        let update = ix::command(
            DEV,
            &[],
            &channel,
            "incident",
            Some("update"),
            &[("text", json!(r#"failing over to the "replica" \ now"#))],
            &ix::token("update"),
        );
        let (v, _) = app.interact(&update).await;
        assert_eq!(v["type"], 4, "{v}");
        assert!(!is_ephemeral(&v), "{v}");
        let timeline = app.incident("INC-1").await["timeline"].to_string();
        assert!(
            timeline.contains(r#"failing over to the \"replica\" \\ now"#),
            "{timeline}"
        );

        // Elsewhere the same words need an incident named.
        let update = ix::command(
            DEV,
            &[],
            GENERAL_CHANNEL,
            "incident",
            Some("update"),
            &[("text", json!("hello"))],
            &ix::token("update"),
        );
        let (v, _) = app.interact(&update).await;
        assert!(is_ephemeral(&v), "{v}");
        assert!(
            v["data"]["content"]
                .as_str()
                .unwrap()
                .contains("2 incidents are open"),
            "{v}"
        );
    }
);

// ── Delivery through the outbox ─────────────────────────────────────────────────────────────

discord_test!(
    rate_limits_and_outages_lose_nothing_and_send_nothing_twice,
    |app| async {
        app.fake.fail(429, Duration::from_millis(1500), 0.2);
        app.fake.fail(500, Duration::from_millis(1500), 0.0);
        app.api(
            "sysadmin",
            r#"/incident declare level:3 title:"MySQL down""#,
        )
        .await;
        app.api("dev", "/incident ack").await;
        for n in 1..=3 {
            app.api("dev", &format!(r#"/incident update text:"step {n}""#))
                .await;
        }
        app.api("dba", r#"/incident resolve summary:"failed over""#)
            .await;

        let timeline: Vec<String> = app.incident("INC-1").await["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["text"].as_str().unwrap().to_string())
            .collect();
        assert!(timeline.len() >= 6, "{timeline:?}");

        let (channel, card) = app.fake.incident_channel_and_card().await;
        let posts_path = format!("/api/v10/channels/{channel}/messages");
        let posted = app
            .fake
            .wait_for(
                "every timeline event posted",
                Duration::from_secs(20),
                |reqs| {
                    let texts: Vec<String> = reqs
                        .iter()
                        .filter(|r| {
                            r.ok() && r.is("POST", &posts_path) && r.body.get("content").is_some()
                        })
                        .map(|r| r.body["content"].as_str().unwrap().to_string())
                        .collect();
                    (texts.iter().map(|t| t.lines().count()).sum::<usize>() >= timeline.len())
                        .then_some(texts)
                },
            )
            .await;
        // In order, each once: one decision's events are one post, a line each (the
        // declaration's, and the tiers it paged).
        assert_eq!(posted.join("\n"), timeline.join("\n"));
        assert!(posted.len() < timeline.len(), "{posted:?}");
        let reqs = app.fake.requests();
        assert!(
            reqs.iter().any(|r| r.status == 429),
            "the rate limit was hit"
        );
        assert!(reqs.iter().any(|r| r.status == 500), "the outage was hit");
        assert_eq!(app.fake.channels().len(), 1);
        assert_eq!(card_posts(&reqs, &channel), 1);
        // The card ends showing the final state.
        app.fake
            .wait_for("the card showing RESOLVED", Duration::from_secs(10), |_| {
                app.fake.message(&card).unwrap()["embeds"][0]
                    .to_string()
                    .contains("RESOLVED")
                    .then_some(())
            })
            .await;
        // Nothing more arrives later: no duplicate.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let again: Vec<Recorded> = app
            .fake
            .requests()
            .into_iter()
            .filter(|r| r.ok() && r.is("POST", &posts_path) && r.body.get("content").is_some())
            .collect();
        assert_eq!(again.len(), posted.len());
    }
);

// ── Registration, autocomplete, threads ─────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_at_start_up_is_generated_from_the_command_table() {
    let app = DiscordApp::spawn(common::Backend::Sqlite, "registration")
        .await
        .unwrap();
    let path = format!("/api/v10/applications/{APPLICATION_ID}/guilds/{GUILD_ID}/commands");
    let put = app
        .fake
        .wait_for("the bulk overwrite", Duration::from_secs(10), |reqs| {
            reqs.iter().find(|r| r.ok() && r.is("PUT", &path)).cloned()
        })
        .await;
    assert_eq!(
        put.body,
        spotter_bot::discord::registration_payload(&app.config)
    );
    let registered = put.body.as_array().unwrap();
    for spec in spotter_core::command::COMMANDS {
        let root = registered
            .iter()
            .find(|c| c["name"] == spec.path[0])
            .unwrap_or_else(|| panic!("{} is not registered", spec.name()));
        let node = if spec.path.len() == 1 {
            root
        } else {
            root["options"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == spec.path[1])
                .unwrap_or_else(|| panic!("{} is not registered", spec.name()))
        };
        let mut names: Vec<&str> = node["options"]
            .as_array()
            .map(|o| o.iter().map(|o| o["name"].as_str().unwrap()).collect())
            .unwrap_or_default();
        let mut expected: Vec<&str> = spec.options.iter().map(|o| o.name).collect();
        names.sort();
        expected.sort();
        assert_eq!(names, expected, "{}", spec.name());
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_refs_autocomplete_from_open_incidents_and_reads_are_private() {
    let app = DiscordApp::spawn(common::Backend::Sqlite, "autocomplete")
        .await
        .unwrap();
    app.api(
        "sysadmin",
        r#"/incident declare level:3 title:"MySQL down""#,
    )
    .await;
    app.api("sysadmin", r#"/incident declare level:1 title:"Slow API""#)
        .await;
    app.api("sysadmin", "/incident resolve incident:INC-2")
        .await;

    let (v, _) = app
        .interact(&ix::autocomplete(STRANGER, "ack", "incident", ""))
        .await;
    assert_eq!(v["type"], 8, "{v}");
    let choices = v["data"]["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 1, "only open incidents: {v}");
    assert_eq!(choices[0]["value"], "INC-1");
    assert!(choices[0]["name"].as_str().unwrap().contains("MySQL down"));
    let (v, _) = app
        .interact(&ix::autocomplete(STRANGER, "show", "incident", "slow"))
        .await;
    assert!(v["data"]["choices"].as_array().unwrap().is_empty(), "{v}");

    // A viewer's read: answered, privately.
    let list = ix::command(
        STRANGER,
        &[],
        GENERAL_CHANNEL,
        "incident",
        Some("list"),
        &[("state", json!("all"))],
        &ix::token("list"),
    );
    let (v, _) = app.interact(&list).await;
    assert_eq!(v["type"], 4);
    assert!(is_ephemeral(&v), "{v}");
    assert!(
        v["data"]["content"].as_str().unwrap().contains("INC-2"),
        "{v}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_thread_mode_each_incident_gets_a_thread() {
    let parent = "1296666666666666666";
    let app = DiscordApp::spawn_with(common::Backend::Sqlite, "threads", |c| {
        c.discord.as_mut().unwrap().incident_channels = IncidentChannels::Threads(parent.into());
    })
    .await
    .unwrap();
    app.declare(DBA, 4, "Orders table corrupted").await;
    let (thread, _card) = app.fake.incident_channel_and_card().await;
    let created = app
        .fake
        .ok("POST", &format!("/api/v10/channels/{parent}/threads"));
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].body["name"], "inc-1-orders-table-corrupted");
    assert_eq!(created[0].body["type"], 11);
    assert!(app.fake.ok("POST", "/api/v10/guilds").is_empty());
    assert_eq!(app.fake.channels()[0]["id"], thread.as_str());
    app.stop().await;
}

discord_test!(
    an_incident_opened_by_alerts_gets_the_same_channel_and_card,
    |app| async {
        let token = std::fs::read_to_string(
            app.config
                .server
                .data_dir
                .join("sources/alertmanager.secret"),
        )
        .unwrap();
        let res = app
            .client
            .post(format!("{}/webhooks/alertmanager", app.addr))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(include_str!("fixtures/alertmanager-firing.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let (channel, card) = app.fake.incident_channel_and_card().await;
        assert_eq!(
            app.fake.channels()[0]["name"],
            "inc-1-mysql-is-not-answering"
        );
        // The card lists the alerts that are firing.
        let embed = app
            .fake
            .wait_for(
                "the card listing the firing alerts",
                Duration::from_secs(10),
                |_| {
                    let e = app.fake.message(&card)?["embeds"][0].clone();
                    e.to_string().contains("Firing alerts (2)").then_some(e)
                },
            )
            .await;
        assert!(embed.to_string().contains("`alertmanager`"), "{embed}");
        assert_eq!(card_posts(&app.fake.requests(), &channel), 1);
    }
);

// ── `spotter discord register`, the real binary ─────────────────────────────────────────────

/// A configuration file: the built-in guide plus a `[discord]` section pointing at `base`.
fn config_file(dir: &std::path::Path, base: &str) -> std::path::PathBuf {
    let text = format!(
        r#"{default}
[discord]
mode = "interactions"
application_id = "{APPLICATION_ID}"
guild_id = "{GUILD_ID}"
public_key = "{key}"
token_env = "{TOKEN_ENV}"
api_base_url = "{base}"
incident_category_id = "{CATEGORY}"

[[discord.roles]]
discord_role_id = "{ONCALL_ROLE}"
role = "responder"
"#,
        default = spotter_core::config::DEFAULT_TOML,
        key = ix::public_key_hex(),
    );
    let path = dir.join("spotter.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn run_spotter(args: Vec<String>, token: Option<&str>) -> std::process::Output {
    let token = token.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_spotter"));
        c.args(&args)
            .env_remove("SPOTTER_CONFIG")
            .env_remove(TOKEN_ENV);
        if let Some(t) = token {
            c.env(TOKEN_ENV, t);
        }
        c.output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_register_prints_or_performs_the_registration() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path(), &fake.base);
    let config = Config::load(&file).expect("the [discord] section is valid");
    let args = |extra: &[&str]| {
        let mut v = vec![
            "--config".to_string(),
            file.display().to_string(),
            "discord".into(),
            "register".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    // Dry run: the payload on stdout, no token needed, nothing sent.
    let out = run_spotter(args(&["--dry-run"]), None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, spotter_bot::discord::registration_payload(&config));
    assert!(fake.requests().is_empty());

    // Without the token: refused, naming the variable.
    let out = run_spotter(args(&[]), None).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(TOKEN_ENV), "{err}");

    // With it: one bulk overwrite of the guild's commands, with the bot token.
    let out = run_spotter(args(&[]), Some("cli-secret-token")).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("registered"), "{said}");
    assert!(
        !said.contains("cli-secret-token"),
        "the token is never printed: {said}"
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].is(
        "PUT",
        &format!("/api/v10/applications/{APPLICATION_ID}/guilds/{GUILD_ID}/commands")
    ));
    assert_eq!(
        reqs[0].authorization.as_deref(),
        Some("Bot cli-secret-token")
    );
    assert_eq!(reqs[0].body, printed);
}

// ── Gateway mode ────────────────────────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_gateway_mode_interactions_arrive_over_the_websocket_and_answer_through_the_callback() {
    let app = DiscordApp::spawn_with(common::Backend::Sqlite, "gateway", |c| {
        let d = c.discord.as_mut().unwrap();
        d.mode = DiscordMode::Gateway;
        d.public_key = None;
    })
    .await
    .unwrap();
    // No HTTP endpoint in gateway mode.
    let res = app
        .client
        .post(format!("{}/discord/interactions", app.addr))
        .json(&ix::ping())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    let identify = app
        .fake
        .wait_for("the gateway IDENTIFY", Duration::from_secs(10), |reqs| {
            reqs.iter().find(|r| r.is("GATEWAY", "identify")).cloned()
        })
        .await;
    assert_eq!(
        identify.body["intents"], 1,
        "GUILDS only: {}",
        identify.body
    );

    let token = ix::token("gw-declare");
    let declare = ix::command(
        SYSADMIN,
        &[],
        GENERAL_CHANNEL,
        "incident",
        Some("declare"),
        &[("level", json!(2)), ("title", json!("Redis down"))],
        &token,
    );
    let id = declare["id"].as_str().unwrap().to_string();
    app.fake.dispatch("INTERACTION_CREATE", declare);
    let callback = format!("/api/v10/interactions/{id}/{token}/callback");
    let answered = app
        .fake
        .wait_for(
            "the interaction callback",
            Duration::from_secs(10),
            |reqs| {
                reqs.iter()
                    .find(|r| r.ok() && r.is("POST", &callback))
                    .cloned()
            },
        )
        .await;
    assert_eq!(answered.body["type"], 4, "{}", answered.body);
    assert!(answered.body["data"]["content"]
        .as_str()
        .unwrap()
        .starts_with("Declared INC-1"));
    let (channel, card) = app.fake.incident_channel_and_card().await;

    // A button through the gateway: the card updated in the callback (type 7).
    let token = ix::token("gw-ack");
    let click = ix::button(DBA, &[], &channel, &card, "incident:INC-1:ack", &token);
    let id = click["id"].as_str().unwrap().to_string();
    app.fake.dispatch("INTERACTION_CREATE", click);
    let callback = format!("/api/v10/interactions/{id}/{token}/callback");
    let answered = app
        .fake
        .wait_for("the button's callback", Duration::from_secs(10), |reqs| {
            reqs.iter()
                .find(|r| r.ok() && r.is("POST", &callback))
                .cloned()
        })
        .await;
    assert_eq!(answered.body["type"], 7, "{}", answered.body);
    assert_eq!(app.incident("INC-1").await["state"], "acknowledged");

    // The gateway closes with everything else.
    let stopped = Instant::now();
    app.stop().await;
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_payloads_work_as_they_are() {
    let app = DiscordApp::spawn(common::Backend::Sqlite, "fixtures")
        .await
        .unwrap();
    let body = |raw: &str| serde_json::from_str::<Value>(raw).unwrap();
    let (v, _) = app
        .interact(&body(include_str!("fixtures/discord-ping.json")))
        .await;
    assert_eq!(v, json!({"type": 1}));
    // Sam (1280000000000000001) is the configured sysadmin.
    let (v, _) = app
        .interact(&body(include_str!("fixtures/discord-declare.json")))
        .await;
    assert_eq!(v["type"], 4, "{v}");
    assert!(
        v["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Declared INC-1"),
        "{v}"
    );
    // Dana (1280000000000000002) is the DBA, a commander: the click acknowledges INC-1.
    let (v, _) = app
        .interact(&body(include_str!("fixtures/discord-ack-button.json")))
        .await;
    assert_eq!(v["type"], 7, "{v}");
    assert_eq!(app.incident("INC-1").await["acknowledged_by"], "dba");
    app.stop().await;
}
