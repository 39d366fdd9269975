//! An alert storm on Discord: the incident channel gets a few merged alert posts, not one per
//! alert, with a person's post in the middle keeping its place; the card counts the storm's
//! alerts and lists five. Everything goes to a recording fake of Discord's REST API.
//!
//! The engine, the real Discord notifier and the chat lane run in this process on a real store,
//! on the wall clock (so the alert hold really waits). The storm's outbox rows are written as the
//! engine writes one alert joining an incident: its card update, then its alert post. SQLite and
//! PostgreSQL.

mod common;
mod fake_discord;

use fake_discord::{FakeDiscord, APPLICATION_ID, GUILD_ID};
use serde_json::Value;
use spotter_core::clock::{Clock, SystemClock};
use spotter_core::config::{Config, DiscordConfig, DiscordMode, IncidentChannels};
use spotter_core::domain::{AlertStatus, Channel, IncidentRef};
use spotter_core::metrics::Metrics;
use spotter_core::outbox::{Dispatcher, LogNotifier};
use spotter_core::store::{
    AlertRecord, Changeset, DeliveryState, MessageKind, NewMessage, SqlStore, Store,
};
use spotter_core::{CommandContext, Engine, Secret};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CATEGORY: &str = "1295555555555555555";

struct StormApp {
    engine: Arc<Engine>,
    fake: FakeDiscord,
    stop: CancellationToken,
    lane: Option<tokio::task::JoinHandle<()>>,
    pg: Option<spotter_core::testkit::PostgresTestDb>,
    _dir: tempfile::TempDir,
}

impl StormApp {
    async fn start(backend: common::Backend, test: &str) -> Option<StormApp> {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = common::database(backend, test, dir.path()).await?;
        let fake = FakeDiscord::start().await;
        let mut config = Config::builtin();
        config.database.url = url.clone();
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
        let config = Arc::new(config);
        let store = SqlStore::connect(&url, 8).await.unwrap().with_audit_key(
            spotter_core::audit::AuditKey::new(Secret::new("discord-storm-audit-key")),
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
        let lane = Dispatcher::new(
            store,
            clock,
            metrics,
            config.outbox.clone(),
            engine.outbox_wakeup(),
        )
        .with_poll_interval(Duration::from_millis(20))
        .with_notifier(Channel::Discord, discord.notifier())
        .with_notifier(Channel::Log, Arc::new(LogNotifier));
        let stop = CancellationToken::new();
        let lane = Some(tokio::spawn(lane.run(stop.clone())));
        Some(StormApp {
            engine,
            fake,
            stop,
            lane,
            pg,
            _dir: dir,
        })
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

    async fn commit(&self, cs: Changeset) {
        self.engine.store().commit(cs).await.unwrap();
        self.engine.outbox_wakeup().notify_one();
    }

    /// Queues what `n` alerts joining `r` write for Discord, one commit per alert.
    async fn alerts_join(&self, r: IncidentRef, from: usize, to: usize) {
        for n in from..to {
            let row = |kind, key: String, text: String| NewMessage {
                channel: Channel::Discord,
                kind,
                target: format!("incident:{r}"),
                incident: Some(r),
                text,
                priority: 0,
                idempotency_key: key,
                ordering_key: format!("chat:{}:{r}", Channel::Discord),
                page: None,
                approval: None,
                broadcast: None,
            };
            self.commit(Changeset {
                at: Some(self.engine.clock().now()),
                outbox: vec![
                    row(
                        MessageKind::CardUpdate,
                        format!("storm-card-{n}"),
                        "card".into(),
                    ),
                    row(
                        MessageKind::AlertPost,
                        format!("storm-alert-{n}"),
                        format!("alert firing: DiskFull host-{n}"),
                    ),
                ],
                ..Default::default()
            })
            .await;
        }
    }

    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(l) = self.lane.take() {
            l.await.unwrap();
        }
        if let Some(pg) = self.pg.take() {
            pg.drop_db().await;
        }
    }
}

fn alert(r: IncidentRef, n: usize, at: chrono::DateTime<chrono::Utc>) -> AlertRecord {
    AlertRecord {
        source: "alertmanager".into(),
        fingerprint: format!("fp-{n:05}"),
        status: AlertStatus::Firing,
        labels: Default::default(),
        annotations: Default::default(),
        summary: format!("DiskFull host-{n}"),
        group_key: "storm".into(),
        incident: Some(r),
        starts_at: None,
        ends_at: None,
        first_seen_at: at + chrono::Duration::milliseconds(n as i64),
        changed_at: at,
        recent_changes: vec![],
        flapping: false,
        suppressed_by: None,
        version: 0,
    }
}

/// How many alert events a post stands for ("… and N more alert events" counts N), or `None`
/// for a post that is not about alerts.
fn events_in(content: &str) -> Option<usize> {
    let mut n = 0;
    for line in content.lines() {
        if let Some(rest) = line.strip_prefix("… and ") {
            n += rest
                .strip_suffix(" more alert events")?
                .replace(',', "")
                .parse::<usize>()
                .ok()?;
        } else if line.starts_with("alert firing: ") {
            n += 1;
        } else {
            return None;
        }
    }
    Some(n)
}

macro_rules! storm_test {
    ($name:ident, |$app:ident| $body:expr) => {
        mod $name {
            use super::*;
            async fn run(backend: common::Backend) {
                let Some($app) = StormApp::start(backend, stringify!($name)).await else {
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

storm_test!(
    a_storm_of_alert_events_is_a_few_posts_and_the_card_counts_it,
    |app| async {
        app.ok(
            "sysadmin",
            r#"/incident declare level:2 title:"Disk storm""#,
        )
        .await;
        let (channel, card) = app.fake.incident_channel_and_card().await;
        let r = IncidentRef::new(1);
        let now = app.engine.clock().now();
        app.commit(Changeset {
            at: Some(now),
            alerts: (0..1_000).map(|n| alert(r, n, now)).collect(),
            ..Default::default()
        })
        .await;

        app.alerts_join(r, 0, 250).await;
        // A person's post in the middle of the storm (and a card update at a new version).
        app.ok("dba", "/incident ack incident:INC-1").await;
        app.alerts_join(r, 250, 500).await;

        let store = app.engine.store().clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let pending = store
                .outbox(100_000)
                .await
                .unwrap()
                .into_iter()
                .filter(|m| m.kind != MessageKind::Page && m.state == DeliveryState::Pending)
                .count();
            if pending == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{pending} still pending"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rows = store.outbox(100_000).await.unwrap();
        let storm_rows: Vec<_> = rows
            .iter()
            .filter(|m| m.idempotency_key.starts_with("storm-"))
            .collect();
        assert_eq!(storm_rows.len(), 1_000);
        assert!(
            storm_rows
                .iter()
                .all(|m| m.state == DeliveryState::Delivered),
            "{storm_rows:#?}"
        );

        // The channel: the card, the declaration's posts, a few alert posts, the ack in order.
        let contents: Vec<String> = app
            .fake
            .messages_in(&channel)
            .into_iter()
            .filter_map(|m| m["content"].as_str().map(str::to_string))
            .filter(|c| !c.is_empty())
            .collect();
        let alert_posts: Vec<(usize, usize)> = contents
            .iter()
            .enumerate()
            .filter_map(|(i, c)| events_in(c).map(|n| (i, n)))
            .collect();
        assert!(
            (2..=8).contains(&alert_posts.len()),
            "{} alert posts: {contents:#?}",
            alert_posts.len()
        );
        assert_eq!(alert_posts.iter().map(|p| p.1).sum::<usize>(), 500);
        for (i, _) in &alert_posts {
            assert!(contents[*i].chars().count() <= 2000);
        }
        let ack = contents
            .iter()
            .position(|c| c.contains("acknowledged"))
            .unwrap_or_else(|| panic!("the acknowledgement was posted: {contents:#?}"));
        let before: usize = alert_posts
            .iter()
            .filter(|(i, _)| *i < ack)
            .map(|p| p.1)
            .sum();
        assert_eq!(before, 250, "{contents:#?}");
        assert!(contents[alert_posts[0].0].starts_with("alert firing: DiskFull host-0\n"));

        // The card, edited in place after the ack: the storm counted, five alerts listed.
        let card: Value = app.fake.message(&card).unwrap();
        let text = card["embeds"].to_string();
        assert!(text.contains("Firing alerts (1,000)"), "{text}");
        assert!(text.contains("… and 995 more"), "{text}");
        assert!(text.contains("DiskFull host-4"), "{text}");
        assert!(!text.contains("DiskFull host-5 "), "{text}");
    }
);
