//! Paging a person on Discord: a mention in the incident channel that may ping exactly that
//! person, and a direct message, both at a recording fake of Discord's REST API.
//!
//! The engine, the real Discord notifier and both outbox lanes (chat and pages) run in this
//! process on a real store; the pages lane is registered here, as the application's start-up
//! will. Both lanes share the one notifier, as they do in the application, so a page and the
//! card of a new incident delivered at once must still open one channel. SQLite and PostgreSQL.

mod common;
mod fake_discord;

use fake_discord::{FakeDiscord, Recorded, APPLICATION_ID, GUILD_ID};
use serde_json::{json, Value};
use spotter_core::clock::{Clock, SystemClock};
use spotter_core::config::{Config, DiscordConfig, DiscordMode, IncidentChannels, DEFAULT_TOML};
use spotter_core::domain::Channel;
use spotter_core::metrics::Metrics;
use spotter_core::outbox::{DeliveryError, Dispatcher, Notifier};
use spotter_core::store::{MessageKind, OutboxMessage, SqlStore, Store};
use spotter_core::{CommandContext, Engine, Secret};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// dba's Discord user id; dba is paged at once by a level-2 incident's first tier.
const DBA: &str = "1280000000000000002";
const CATEGORY: &str = "1295555555555555555";
const ACK_BASE: &str = "https://spotter.test/ack/";

/// The built-in configuration, with dba reachable on Discord only and security configured for
/// Discord without a Discord user id.
fn config(fake: &FakeDiscord, database_url: &str) -> Config {
    let toml = DEFAULT_TOML
        .replace(
            "id = \"dba\"\nname = \"Database Administrator\"\n",
            &format!(
                "id = \"dba\"\nname = \"Database Administrator\"\ndiscord_user_id = \"{DBA}\"\nnotify = [{{ kind = \"discord\" }}]\n"
            ),
        )
        .replace(
            "id = \"security\"\nname = \"Security Team\"\n",
            "id = \"security\"\nname = \"Security Team\"\nnotify = [{ kind = \"discord\" }]\n",
        );
    assert_ne!(
        toml, DEFAULT_TOML,
        "the people to change are in the default file"
    );
    let mut config = Config::from_toml(&toml, "<test>").expect("the test configuration is valid");
    config.database.url = database_url.into();
    config.server.public_url = ACK_BASE.trim_end_matches("/ack/").into();
    config.discord = Some(DiscordConfig {
        mode: DiscordMode::Gateway,
        application_id: APPLICATION_ID.into(),
        guild_id: GUILD_ID.into(),
        public_key: None,
        token_env: "SPOTTER_TEST_DISCORD_BOT_TOKEN".into(),
        api_base_url: fake.base.clone(),
        incident_channels: IncidentChannels::Category(Some(CATEGORY.into())),
        role_map: vec![],
    });
    config
}

struct PagingApp {
    engine: Arc<Engine>,
    notifier: Arc<dyn Notifier>,
    fake: FakeDiscord,
    stop: CancellationToken,
    lanes: Vec<tokio::task::JoinHandle<()>>,
    pg: Option<spotter_core::testkit::PostgresTestDb>,
    _dir: tempfile::TempDir,
}

impl PagingApp {
    async fn start(backend: common::Backend, test: &str) -> Option<PagingApp> {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = common::database(backend, test, dir.path()).await?;
        let fake = FakeDiscord::start().await;
        let config = Arc::new(config(&fake, &url));
        let store = SqlStore::connect(&url, 8).await.unwrap().with_audit_key(
            spotter_core::audit::AuditKey::new(Secret::new("discord-pages-audit-key")),
        );
        store.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let metrics = Arc::new(Metrics::new());
        let engine = Arc::new(Engine::new(
            store.clone(),
            config.clone(),
            clock.clone(),
            metrics.clone(),
        ));
        let discord = spotter_bot::discord::Discord::new(
            engine.clone(),
            config.discord.clone().unwrap(),
            Secret::new("test-bot-token"),
        )
        .unwrap();
        let notifier = discord.notifier();
        let lane = || {
            Dispatcher::new(
                store.clone(),
                clock.clone(),
                metrics.clone(),
                config.outbox.clone(),
                engine.outbox_wakeup(),
            )
            .with_poll_interval(Duration::from_millis(20))
            .with_notifier(Channel::Discord, notifier.clone())
        };
        let stop = CancellationToken::new();
        let lanes = vec![
            tokio::spawn(lane().run(stop.clone())),
            tokio::spawn(lane().pages(engine.clone()).run(stop.clone())),
        ];
        Some(PagingApp {
            engine,
            notifier,
            fake,
            stop,
            lanes,
            pg,
            _dir: dir,
        })
    }

    async fn ok(&self, who: &str, line: &str) -> String {
        let r = self
            .engine
            .execute_line(
                &self.engine.actor_for_person(who),
                line,
                &CommandContext::default(),
            )
            .await
            .unwrap();
        assert!(r.ok, "`{line}` as {who} was refused: {}", r.text);
        r.text
    }

    /// Discord page messages that failed (the engine recorded them and fell through).
    async fn discord_failures(&self) -> Vec<(String, String, String)> {
        self.engine
            .store()
            .outbox(10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| {
                m.channel == Channel::Discord
                    && m.state == spotter_core::store::DeliveryState::Failed
            })
            .map(|m| {
                (
                    m.channel.to_string(),
                    m.target,
                    m.last_error.unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn stop(mut self) {
        self.stop.cancel();
        for l in self.lanes.drain(..) {
            l.await.unwrap();
        }
        if let Some(pg) = self.pg.take() {
            pg.drop_db().await;
        }
    }
}

/// The DM the fake saw posted to `recipient`: its channel's `POST …/messages` body.
async fn dm_to(fake: &FakeDiscord, recipient: &str) -> Value {
    fake.wait_for("the direct message", Duration::from_secs(10), |reqs| {
        let dm = fake.dm_channel(recipient)?;
        reqs.iter()
            .find(|r| r.ok() && r.is("POST", &format!("/api/v10/channels/{dm}/messages")))
            .map(|r| r.body.clone())
    })
    .await
}

fn dm_channel_requests(reqs: &[Recorded]) -> Vec<Value> {
    reqs.iter()
        .filter(|r| r.ok() && r.is("POST", "/api/v10/users/@me/channels"))
        .map(|r| r.body.clone())
        .collect()
}

/// Writes one test per backend.
macro_rules! pages_test {
    ($name:ident, |$app:ident| $body:expr) => {
        mod $name {
            use super::*;
            async fn run(backend: common::Backend) {
                let Some($app) = PagingApp::start(backend, stringify!($name)).await else {
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

pages_test!(
    a_level_2_incident_mentions_exactly_the_paged_person_and_sends_a_dm,
    |app| async {
        app.ok(
            "sysadmin",
            r#"/incident declare level:2 title:"Checkout failing @everyone""#,
        )
        .await;
        let (channel, _card) = app.fake.incident_channel_and_card().await;
        let mention = app
            .fake
            .wait_for(
                "the page in the incident channel",
                Duration::from_secs(10),
                |reqs| {
                    reqs.iter()
                        .find(|r| {
                            r.ok()
                                && r.is("POST", &format!("/api/v10/channels/{channel}/messages"))
                                && r.body["content"]
                                    .as_str()
                                    .is_some_and(|c| c.starts_with(&format!("<@{DBA}> ")))
                        })
                        .map(|r| r.body.clone())
                },
            )
            .await;
        // Exactly dba may be pinged: not roles, not @everyone (which the title carries).
        let allowed = &mention["allowed_mentions"];
        assert_eq!(allowed["users"], json!([DBA]), "{mention}");
        assert_eq!(allowed["parse"], json!([]), "{mention}");
        assert!(
            allowed["roles"].as_array().is_none_or(|r| r.is_empty()),
            "{mention}"
        );
        let content = mention["content"].as_str().unwrap();
        assert!(content.contains("Checkout failing"), "{content}");
        assert!(
            content.contains(&format!("\nAcknowledge: {ACK_BASE}")),
            "{content}"
        );
        assert!(content.chars().count() <= 2000);

        // The DM: its channel opened for dba, and the same text without the mention.
        let dm = dm_to(&app.fake, DBA).await;
        assert_eq!(
            dm["content"].as_str().unwrap(),
            content.strip_prefix(&format!("<@{DBA}> ")).unwrap()
        );
        assert_eq!(dm["allowed_mentions"]["parse"], json!([]), "{dm}");
        let opened = dm_channel_requests(&app.fake.requests());
        assert_eq!(opened, vec![json!({"recipient_id": DBA})]);

        // The card (chat lane) and the page (pages lane) went out in parallel: one channel.
        let created = app
            .fake
            .ok("POST", &format!("/api/v10/guilds/{GUILD_ID}/channels"));
        assert_eq!(created.len(), 1, "{created:?}");
        // Nobody else was mentioned anywhere.
        for r in app.fake.ok("POST", "/api/v10/channels/") {
            if let Some(users) = r.body["allowed_mentions"]["users"].as_array() {
                assert!(users.is_empty() || users == &vec![json!(DBA)], "{}", r.body);
            }
        }
        assert!(
            app.discord_failures().await.is_empty(),
            "{:?}",
            app.discord_failures().await
        );
    }
);

pages_test!(
    a_page_about_no_incident_is_only_a_direct_message,
    |app| async {
        app.ok(
            "sysadmin",
            r#"/page user:dba text:"Can you look at the backups?""#,
        )
        .await;
        let dm = dm_to(&app.fake, DBA).await;
        let content = dm["content"].as_str().unwrap();
        assert!(
            content.contains("Can you look at the backups?"),
            "{content}"
        );
        assert_eq!(dm_channel_requests(&app.fake.requests()).len(), 1);
        // No incident, so no channel and no mention anywhere.
        assert!(app.fake.channels().iter().all(|c| c["type"] == 1));
        assert!(app
            .fake
            .ok("POST", "/api/v10/channels/")
            .iter()
            .all(|r| !r.body["content"].as_str().unwrap_or("").contains("<@")));
        assert!(
            app.discord_failures().await.is_empty(),
            "{:?}",
            app.discord_failures().await
        );
    }
);

pages_test!(
    a_person_without_a_discord_user_id_is_a_permanent_failure_naming_them,
    |app| async {
        let m = OutboxMessage {
            id: 1,
            channel: Channel::Discord,
            kind: MessageKind::Page,
            target: "security".into(),
            incident: None,
            text: "Spotter page".into(),
            priority: 0,
            attempts: 0,
            state: spotter_core::store::DeliveryState::Pending,
            last_error: None,
            created_at: chrono::Utc::now(),
            delivered_at: None,
            idempotency_key: "page:test:m0".into(),
            page: None,
            approval: None,
            broadcast: None,
            ack_url: None,
            links: None,
        };
        match app.notifier.deliver(&m).await {
            Err(DeliveryError::Permanent(why)) => assert_eq!(
                why,
                "Security Team (security) has no discord_user_id: Discord cannot page them"
            ),
            other => panic!("{other:?}"),
        }
        // The engine already refuses that method when it plans the page: nothing reaches
        // Discord. The notifier's refusal above covers a row queued before the configuration
        // changed.
        let r = app
            .engine
            .execute_line(
                &app.engine.actor_for_person("sysadmin"),
                "/page user:security",
                &CommandContext::default(),
            )
            .await
            .unwrap();
        assert!(
            r.text.contains("discord needs their discord_user_id"),
            "{}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(app.fake.requests().is_empty(), "{:?}", app.fake.requests());
    }
);
