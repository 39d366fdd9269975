//! The status page's Discord announcement channel end to end: the real application (its
//! broadcasts lane and the Discord notifier) at a recording fake of Discord's REST API, the
//! incident raised by Alertmanager and worked through commands, on SQLite and PostgreSQL.
//!
//! Publication → a new post in the channel (crossposted when the fake calls the channel an
//! announcement channel, not when it is a text channel); a public update → the post edited,
//! nothing new posted; resolution → a new post (crossposted). No announcement request carries the
//! internal title, an internal update or an alert label. A crosspost refused by Discord's hourly
//! limit leaves the post delivered once, never re-posted.

mod common;
mod fake_discord;

use fake_discord::{FakeDiscord, Recorded, APPLICATION_ID, GUILD_ID};
use serde_json::Value;
use spotter::startup::Application;
use spotter_core::clock::SystemClock;
use spotter_core::config::{Config, DiscordConfig, DiscordMode, IncidentChannels};
use spotter_core::store::DeliveryState;
use spotter_core::CommandContext;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const ANNOUNCE: &str = "1296666666666666666";
const CATEGORY: &str = "1295555555555555555";
const TOKEN_ENV: &str = "SPOTTER_TEST_DISCORD_BOT_TOKEN";
const FIRING: &str = include_str!("fixtures/alertmanager-firing.json");
/// Internal words: the alerts' summary (the internal title), their labels, an internal update.
const INTERNAL: [&str; 6] = [
    "MySQL is not answering",
    "MySQLDown",
    "db-1:9104",
    "mysqld",
    "rotated the root password on db-7",
    "INC-1",
];
const PUBLIC_UPDATE: &str = "We are restoring the database from a backup";
const WAIT: Duration = Duration::from_secs(20);

struct AnnounceApp {
    engine: Arc<spotter_core::Engine>,
    addr: String,
    config: Config,
    fake: FakeDiscord,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pg: Option<spotter_core::testkit::PostgresTestDb>,
    _dir: tempfile::TempDir,
}

/// The running application of a configuration: engine, address, stop token and task.
type Running = (
    Arc<spotter_core::Engine>,
    String,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

async fn start(config: &Config) -> Running {
    let env = |var: &str| (var == TOKEN_ENV).then(|| "test-bot-token".to_string());
    let app = Application::build_with(config.clone(), Arc::new(SystemClock), &env)
        .await
        .expect("the application builds");
    let addr = format!("http://{}", app.addr());
    let engine = app.engine().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    (engine, addr, shutdown, server)
}

impl AnnounceApp {
    /// The application with `[status] discord_channel_id` set to a channel of `kind` (5: an
    /// announcement channel, 0: a text channel) that exists in the fake's guild.
    async fn spawn(backend: common::Backend, test: &str, kind: u64) -> Option<AnnounceApp> {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = common::database(backend, test, dir.path()).await?;
        let fake = FakeDiscord::start().await;
        fake.add_channel(ANNOUNCE, kind, "status");
        let mut config = common::test_config(dir.path(), &database_url);
        config.discord = Some(DiscordConfig {
            mode: DiscordMode::Interactions,
            application_id: APPLICATION_ID.into(),
            guild_id: GUILD_ID.into(),
            public_key: Some(fake_discord::interactions::public_key_hex()),
            token_env: TOKEN_ENV.into(),
            api_base_url: fake.base.clone(),
            incident_channels: IncidentChannels::Category(Some(CATEGORY.into())),
            role_map: vec![],
        });
        config.status.discord_channel_id = Some(ANNOUNCE.into());
        config.status.publish_after = chrono::Duration::zero();
        config.outbox.retry_base = chrono::Duration::milliseconds(50);
        config.outbox.retry_max = chrono::Duration::milliseconds(300);
        let (engine, addr, shutdown, server) = start(&config).await;
        Some(AnnounceApp {
            engine,
            addr,
            config,
            fake,
            shutdown,
            server: Some(server),
            pg,
            _dir: dir,
        })
    }

    /// Stops the application and starts it again on the same database (nothing in memory
    /// survives: not the posts' ids, not the channel's type).
    async fn restart(&mut self) {
        self.shutdown.cancel();
        self.server.take().unwrap().await.unwrap().unwrap();
        let (engine, addr, shutdown, server) = start(&self.config).await;
        self.engine = engine;
        self.addr = addr;
        self.shutdown = shutdown;
        self.server = Some(server);
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        self.server.take().unwrap().await.unwrap().unwrap();
        if let Some(pg) = self.pg.take() {
            pg.drop_db().await;
        }
    }

    async fn ok(&self, who: &str, line: &str) {
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
    }

    /// Alertmanager's notification of two firing MySQL alerts: a level-3 incident on `database`.
    async fn fire(&self) {
        let secret = std::fs::read_to_string(
            self.config
                .server
                .data_dir
                .join("sources/alertmanager.secret"),
        )
        .unwrap();
        let res = reqwest::Client::new()
            .post(format!("{}/webhooks/alertmanager", self.addr))
            .bearer_auth(secret.trim())
            .header("content-type", "application/json")
            .body(FIRING)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    /// The successful posts of new messages in the announcement channel.
    fn posts(&self) -> Vec<Recorded> {
        self.fake
            .ok("POST", &format!("/api/v10/channels/{ANNOUNCE}/messages"))
            .into_iter()
            .filter(|r| r.path == format!("/api/v10/channels/{ANNOUNCE}/messages"))
            .collect()
    }

    /// The crosspost requests (whatever they were answered) in the announcement channel.
    fn crossposts(&self) -> Vec<Recorded> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/crosspost"))
            .collect()
    }

    /// The message ids of the channel's posts, oldest first, once there are `n`.
    async fn wait_posts(&self, n: usize) -> Vec<String> {
        self.fake
            .wait_for(&format!("{n} announcement post(s)"), WAIT, |_| {
                let ids: Vec<String> = self
                    .fake
                    .messages_in(ANNOUNCE)
                    .iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect();
                (ids.len() >= n).then_some(ids)
            })
            .await
    }

    /// Every request the announcement made, as text, for "nothing internal" checks.
    fn announcement_bodies(&self) -> String {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.path.contains(ANNOUNCE))
            .map(|r| r.body.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn embed_of(m: &Value) -> &Value {
    &m["embeds"][0]
}

/// Writes one test per backend.
macro_rules! announce_test {
    ($name:ident, kind = $kind:expr, |$app:ident| $body:expr) => {
        mod $name {
            use super::*;
            async fn run(backend: common::Backend) {
                let Some(app) = AnnounceApp::spawn(backend, stringify!($name), $kind).await else {
                    return;
                };
                #[allow(unused_mut)]
                let mut $app = app;
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

announce_test!(
    an_incident_is_posted_edited_and_resolved_in_the_announcement_channel,
    kind = 5,
    |app| async {
        app.fire().await;
        let opening = app.wait_posts(1).await.remove(0);
        let post = app.fake.message(&opening).unwrap();
        let embed = embed_of(&post);
        assert_eq!(embed["fields"][0]["value"], "Investigating", "{post:#}");
        assert_eq!(embed["fields"][1]["value"], "Critical", "{post:#}");
        let link = embed["url"].as_str().unwrap();
        assert!(link.contains("/status/incidents/pi_"), "{link}");
        app.fake
            .wait_for("the opening crosspost", WAIT, |_| {
                app.crossposts()
                    .iter()
                    .any(|r| r.ok() && r.path.contains(&opening))
                    .then_some(())
            })
            .await;

        // An internal update is not public; a public one edits the post, posts nothing.
        app.ok(
            "dev",
            r#"/incident update text:"rotated the root password on db-7""#,
        )
        .await;
        app.ok("dev", &format!(r#"/status post text:"{PUBLIC_UPDATE}""#))
            .await;
        let path = format!("/api/v10/channels/{ANNOUNCE}/messages/{opening}");
        app.fake
            .wait_for("the post edited with the update", WAIT, |reqs| {
                reqs.iter()
                    .any(|r| r.ok() && r.is("PATCH", &path))
                    .then_some(())
            })
            .await;
        let post = app.fake.message(&opening).unwrap();
        let embed = embed_of(&post);
        assert!(
            embed["description"]
                .as_str()
                .unwrap()
                .starts_with(PUBLIC_UPDATE),
            "{post:#}"
        );
        assert_eq!(embed["fields"][0]["value"], "Investigating");
        assert_eq!(app.posts().len(), 1, "an update edits, it does not post");

        app.ok("dba", r#"/incident resolve summary:"restored""#)
            .await;
        let ids = app.wait_posts(2).await;
        assert_eq!(ids.len(), 2, "one opening, one resolution");
        let resolution = &ids[1];
        let post = app.fake.message(resolution).unwrap();
        let embed = embed_of(&post);
        assert!(
            embed["title"].as_str().unwrap().starts_with("Resolved: "),
            "{post:#}"
        );
        assert_eq!(embed["fields"][0]["value"], "Resolved");
        app.fake
            .wait_for("the resolution crosspost", WAIT, |_| {
                app.crossposts()
                    .iter()
                    .any(|r| r.ok() && r.path.contains(resolution.as_str()))
                    .then_some(())
            })
            .await;
        assert_eq!(app.crossposts().len(), 2, "each new post published once");

        let bodies = app.announcement_bodies();
        for secret in INTERNAL {
            assert!(
                !bodies.contains(secret),
                "`{secret}` reached the announcement channel: {bodies}"
            );
        }
    }
);

announce_test!(
    a_text_channel_gets_the_posts_without_crossposts,
    kind = 0,
    |app| async {
        app.fire().await;
        app.wait_posts(1).await;
        app.ok("dba", r#"/incident resolve summary:"restored""#)
            .await;
        app.wait_posts(2).await;
        // The channel's type was asked once, and no crosspost was tried.
        let lookups = app
            .fake
            .requests()
            .into_iter()
            .filter(|r| r.is("GET", &format!("/api/v10/channels/{ANNOUNCE}")))
            .count();
        assert_eq!(lookups, 1, "the channel type is cached");
        assert!(app.crossposts().is_empty(), "{:?}", app.crossposts());
    }
);

announce_test!(
    a_crosspost_past_discords_limit_does_not_post_again,
    kind = 5,
    |app| async {
        app.fake.limit_crossposts(true);
        app.fire().await;
        app.wait_posts(1).await;
        app.fake
            .wait_for("the refused crosspost", WAIT, |_| {
                app.crossposts()
                    .iter()
                    .any(|r| r.status == 429)
                    .then_some(())
            })
            .await;
        // Give a wrongly retried delivery time to post again; then the outbox has it delivered.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(app.posts().len(), 1, "the post went out once");
        assert_eq!(app.crossposts().len(), 1, "the crosspost was not retried");
        let announcements: Vec<_> = app
            .engine
            .store()
            .outbox(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.target.starts_with("announce:"))
            .collect();
        assert_eq!(announcements.len(), 1, "{announcements:?}");
        let m = &announcements[0];
        assert_eq!(m.state, DeliveryState::Delivered, "{m:?}");
        assert!(
            m.last_error.is_none(),
            "delivered at the first attempt, the crosspost failure not held against it: {m:?}"
        );
    }
);

announce_test!(
    an_update_after_a_restart_edits_the_remembered_post_and_edits_are_spaced,
    kind = 5,
    |app| async {
        app.fire().await;
        let opening = app.wait_posts(1).await.remove(0);
        app.restart().await;
        app.ok("dev", &format!(r#"/status post text:"{PUBLIC_UPDATE}""#))
            .await;
        let path = format!("/api/v10/channels/{ANNOUNCE}/messages/{opening}");
        let edits = |reqs: &[Recorded]| {
            reqs.iter()
                .filter(|r| r.ok() && r.is("PATCH", &path))
                .count()
        };
        app.fake
            .wait_for("the remembered post edited", WAIT, |reqs| {
                (edits(reqs) == 1).then_some(())
            })
            .await;
        assert_eq!(app.posts().len(), 1, "the restarted Spotter found its post");

        // A second update within the minute is held back, not dropped and not posted.
        app.ok("dev", r#"/status post text:"The backup is 40% restored""#)
            .await;
        let deadline = std::time::Instant::now() + WAIT;
        let held = loop {
            let outbox = app.engine.store().outbox(100).await.unwrap();
            let found = outbox.into_iter().find(|m| {
                m.target.starts_with("announce:")
                    && m.state == DeliveryState::Pending
                    && m.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("edited less than 60s ago"))
            });
            if let Some(m) = found {
                break m;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the second edit was not held back"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert!(held.text.contains("40% restored"), "{}", held.text);
        assert_eq!(edits(&app.fake.requests()), 1, "one edit within the minute");
        assert_eq!(app.posts().len(), 1);
        let post = app.fake.message(&opening).unwrap();
        assert!(
            embed_of(&post)["description"]
                .as_str()
                .unwrap()
                .starts_with(PUBLIC_UPDATE),
            "{post:#}"
        );
    }
);

announce_test!(
    a_public_maintenance_is_posted_edited_when_it_starts_and_completed_in_a_new_post,
    kind = 5,
    |app| async {
        let start = chrono::Utc::now() + chrono::Duration::seconds(2);
        let at = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        app.ok(
            "dba",
            &format!(r#"/maintenance schedule component:cache start:"{at}" duration:2s reason:"Redis upgrade" public:true"#),
        )
        .await;
        let scheduled = app.wait_posts(1).await.remove(0);
        let post = app.fake.message(&scheduled).unwrap();
        assert_eq!(
            embed_of(&post)["title"],
            "Scheduled maintenance: Redis upgrade",
            "{post:#}"
        );
        assert_eq!(embed_of(&post)["fields"][0]["value"], "Scheduled");
        let path = format!("/api/v10/channels/{ANNOUNCE}/messages/{scheduled}");
        let edit = app
            .fake
            .wait_for("the post edited when the window starts", WAIT, |reqs| {
                reqs.iter()
                    .find(|r| r.ok() && r.is("PATCH", &path))
                    .map(|r| r.body.clone())
            })
            .await;
        assert_eq!(
            edit["embeds"][0]["fields"][0]["value"], "In progress",
            "{edit:#}"
        );
        let ids = app.wait_posts(2).await;
        let post = app.fake.message(&ids[1]).unwrap();
        assert_eq!(
            embed_of(&post)["title"],
            "Maintenance completed: Redis upgrade",
            "{post:#}"
        );
        app.fake
            .wait_for("both posts crossposted", WAIT, |_| {
                (app.crossposts().iter().filter(|r| r.ok()).count() == 2).then_some(())
            })
            .await;
    }
);
