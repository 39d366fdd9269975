//! An alert storm stays bounded: an incident's card reads three counts and a handful of alerts,
//! however many feed it, and the chat lane turns a run of alert posts queued for one incident into
//! a few merged posts, every merged row marked delivered under the lease, other posts unaffected
//! and in order. SQLite and PostgreSQL alike.

mod common;

use async_trait::async_trait;
use chrono::Duration;
use spotter_core::clock::Clock;
use spotter_core::domain::{AlertStatus, Channel, IncidentRef};
use spotter_core::outbox::{DeliveryError, Notifier, PageOutcomes};
use spotter_core::store::{
    AlertRecord, Changeset, DeliveryState, MessageKind, NewMessage, OutboxMessage, Store,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn alert(r: IncidentRef, n: usize, at: chrono::DateTime<chrono::Utc>) -> AlertRecord {
    AlertRecord {
        labels: [("host".to_string(), format!("host-{n}"))].into(),
        summary: format!("DiskFull host-{n}"),
        group_key: format!("storm-{r}"),
        ..common::firing_alert_row(r, &format!("fp-{r}-{n:05}"), at)
    }
}

/// A message on the log channel's chat key of `r`, as the engine writes it.
fn message(r: IncidentRef, kind: MessageKind, key: &str, text: &str) -> NewMessage {
    NewMessage {
        channel: Channel::Log,
        kind,
        target: format!("incident:{r}"),
        incident: Some(r),
        text: text.into(),
        priority: 0,
        idempotency_key: format!("storm:{r}:{key}"),
        ordering_key: format!("chat:{}:{r}", Channel::Log),
        page: None,
        approval: None,
        broadcast: None,
    }
}

/// What one alert joining `r` writes: the card update its incident write causes, then its post.
fn alert_joined(r: IncidentRef, n: usize) -> Vec<NewMessage> {
    vec![
        message(r, MessageKind::CardUpdate, &format!("card{n}"), "card"),
        message(
            r,
            MessageKind::AlertPost,
            &format!("alert{n}"),
            &format!("alert firing: DiskFull host-{n}"),
        ),
    ]
}

async fn queue(ctx: &common::Ctx, outbox: Vec<NewMessage>) {
    ctx.store
        .commit(Changeset {
            at: Some(ctx.clock.now()),
            outbox,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Declares `n` incidents and delivers everything they wrote, so the storm starts on an empty
/// chat lane.
async fn quiet_incidents(ctx: &common::Ctx, n: usize) -> Vec<IncidentRef> {
    let mut out = vec![];
    for i in 0..n {
        out.push(ctx.declare(2, &format!("storm {i}")).await.reference);
    }
    ctx.drain(&ctx.dispatcher(common::RecordingNotifier::working()), 100)
        .await;
    out
}

/// The posts (not card updates) a notifier got about `r`, in order.
fn posts(delivered: &[OutboxMessage], r: IncidentRef) -> Vec<OutboxMessage> {
    delivered
        .iter()
        .filter(|m| m.incident == Some(r) && m.kind != MessageKind::CardUpdate)
        .cloned()
        .collect()
}

/// How many alert events a delivered post stands for: its lines, the "… and N more" line
/// counted as N.
fn events_in(post: &OutboxMessage) -> usize {
    post.text
        .lines()
        .map(|l| match l.strip_prefix("… and ") {
            Some(rest) => rest
                .trim_end_matches(" more alert events")
                .replace(',', "")
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("a count in `{l}`")),
            None => 1,
        })
        .sum()
}

fn chat_rows(outbox: Vec<OutboxMessage>) -> Vec<OutboxMessage> {
    outbox
        .into_iter()
        .filter(|m| m.kind != MessageKind::Page)
        .collect()
}

dual_test!(
    the_card_summary_counts_a_storm_in_the_database_and_lists_only_the_first_firing_alerts,
    |ctx| async move {
        let [storm, other] = quiet_incidents(&ctx, 2).await[..] else {
            unreachable!()
        };
        let t0 = ctx.clock.now();
        let mut alerts = Vec::new();
        // Seen in reverse order of their numbers, so the order is the store's, not insertion's.
        for n in 0..1_200 {
            let mut a = alert(storm, n, t0 + Duration::seconds(1_200 - n as i64));
            match n % 24 {
                0 => a.suppressed_by = Some(1),
                1..=3 => a.status = AlertStatus::Resolved,
                _ => {}
            }
            alerts.push(a);
        }
        alerts.extend((0..7).map(|n| alert(other, n, t0)));
        ctx.store
            .commit(Changeset {
                at: Some(t0),
                alerts,
                ..Default::default()
            })
            .await
            .unwrap();

        let s = ctx.store.incident_alert_summary(storm, 5).await.unwrap();
        assert_eq!(
            (s.firing, s.suppressed, s.resolved),
            (1_200 - 50 - 150, 50, 150)
        );
        // The same first five the card showed when it read every alert.
        let expected: Vec<AlertRecord> = ctx
            .store
            .incident_alerts(storm)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.status == AlertStatus::Firing && a.suppressed_by.is_none())
            .take(5)
            .collect();
        assert_eq!(s.shown, expected);
        assert_eq!(s.shown[0].summary, "DiskFull host-1199");

        let counts_only = ctx.store.incident_alert_summary(storm, 0).await.unwrap();
        assert!(counts_only.shown.is_empty());
        assert_eq!(counts_only.firing, 1_000);

        let o = ctx.store.incident_alert_summary(other, 5).await.unwrap();
        assert_eq!(
            (o.firing, o.suppressed, o.resolved, o.shown.len()),
            (7, 0, 0, 5)
        );
        let none = ctx
            .store
            .incident_alert_summary(IncidentRef::new(99), 5)
            .await
            .unwrap();
        assert_eq!(none, Default::default());
    }
);

dual_test!(
    five_hundred_alert_events_for_one_incident_go_out_as_a_handful_of_posts_in_order,
    |ctx| async move {
        let [storm, calm] = quiet_incidents(&ctx, 2).await[..] else {
            unreachable!()
        };
        let before = chat_rows(ctx.outbox().await).len();
        // As the engine writes them: one commit per alert, each a card update and a post; a
        // person's post in the middle of the storm; another incident's alerts meanwhile.
        for n in 0..500 {
            queue(&ctx, alert_joined(storm, n)).await;
            if n == 249 {
                let ack = message(
                    storm,
                    MessageKind::ChatPost,
                    "ack",
                    "INC acknowledged by dba",
                );
                queue(&ctx, vec![ack]).await;
            }
            if n % 100 == 0 {
                queue(&ctx, alert_joined(calm, n)).await;
            }
        }
        ctx.clock.advance(Duration::seconds(5));
        let n = common::RecordingNotifier::working();
        let d = ctx.dispatcher(n.clone());
        let ticks = ctx.drain(&d, 50).await;
        assert!(ticks <= 10, "{ticks} ticks");

        let delivered = n.delivered();
        let storm_posts = posts(&delivered, storm);
        let texts: Vec<&str> = storm_posts.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(storm_posts.len(), 3, "{texts:#?}");
        // The person's post keeps its place: after every alert event before it, before the rest.
        assert_eq!(storm_posts[1].text, "INC acknowledged by dba");
        for (post, first) in [(&storm_posts[0], 0), (&storm_posts[2], 250)] {
            assert_eq!(post.kind, MessageKind::AlertPost);
            assert!(post.text.chars().count() <= 2000, "{}", post.text);
            assert_eq!(events_in(post), 250, "{}", post.text);
            assert!(post.text.ends_with("more alert events"), "{}", post.text);
            let lines: Vec<&str> = post.text.lines().collect();
            assert_eq!(lines[0], format!("alert firing: DiskFull host-{first}"));
            assert_eq!(
                lines[1],
                format!("alert firing: DiskFull host-{}", first + 1)
            );
        }
        // One card edit per group, not one per alert.
        let storm_cards = delivered
            .iter()
            .filter(|m| m.incident == Some(storm) && m.kind == MessageKind::CardUpdate)
            .count();
        assert_eq!(storm_cards, 2);
        // The other incident's five alerts are one post of their own, listed in full.
        let calm_posts = posts(&delivered, calm);
        assert_eq!(calm_posts.len(), 1);
        assert_eq!(
            calm_posts[0].text,
            (0..5)
                .map(|i| format!("alert firing: DiskFull host-{}", i * 100))
                .collect::<Vec<_>>()
                .join("\n")
        );

        // Every merged row was marked delivered, once.
        let rows = chat_rows(ctx.outbox().await);
        assert_eq!(rows.len(), before + 2 * 500 + 1 + 2 * 5);
        assert!(
            rows.iter().all(|m| m.state == DeliveryState::Delivered
                && m.attempts == 1
                && m.delivered_at.is_some()),
            "{:#?}",
            rows.iter().find(|m| m.state != DeliveryState::Delivered)
        );
        assert_eq!(
            ctx.metrics
                .render(&Default::default(), std::iter::empty())
                .lines()
                .find(|l| l.starts_with("spotter_outbox_delivered_total")),
            Some(format!("spotter_outbox_delivered_total {}", rows.len()).as_str())
        );
    }
);

dual_test!(
    a_storm_larger_than_one_post_can_stand_for_is_still_a_few_posts,
    |ctx| async move {
        let [storm] = quiet_incidents(&ctx, 1).await[..] else {
            unreachable!()
        };
        let storm_rows: Vec<NewMessage> = (0..2_500)
            .map(|n| {
                message(
                    storm,
                    MessageKind::AlertPost,
                    &format!("a{n}"),
                    &format!("alert resolved: host-{n}"),
                )
            })
            .collect();
        queue(&ctx, storm_rows).await;
        ctx.clock.advance(Duration::seconds(5));
        let n = common::RecordingNotifier::working();
        ctx.drain(&ctx.dispatcher(n.clone()), 50).await;
        let storm_posts = posts(&n.delivered(), storm);
        assert!(
            (2..=5).contains(&storm_posts.len()),
            "{} posts",
            storm_posts.len()
        );
        assert_eq!(storm_posts.iter().map(events_in).sum::<usize>(), 2_500);
        assert_eq!(
            ctx.scalar(
                "SELECT COUNT(*) FROM outbox WHERE state = 'delivered' AND kind = 'alert_post'"
            )
            .await,
            2_500
        );
    }
);

dual_test!(
    alert_posts_wait_for_their_hold_and_a_post_behind_them_does_not,
    |ctx| async move {
        let [r] = quiet_incidents(&ctx, 1).await[..] else {
            unreachable!()
        };
        let hold = ctx.config.outbox.alert_hold;
        assert_eq!(hold, Duration::seconds(2));
        let n = common::RecordingNotifier::working();
        let d = ctx.dispatcher(n.clone());
        let alerts = |n: &common::RecordingNotifier| posts(&n.delivered(), r);

        queue(&ctx, alert_joined(r, 1)).await;
        // The card goes at once; the alert post waits for more.
        d.tick().await.unwrap();
        let cards = |n: &common::RecordingNotifier| {
            n.delivered()
                .iter()
                .filter(|m| m.kind == MessageKind::CardUpdate)
                .count()
        };
        assert_eq!((cards(&n), alerts(&n).len()), (1, 0));
        ctx.clock.advance(Duration::seconds(1));
        queue(&ctx, alert_joined(r, 2)).await;
        assert_eq!(d.tick().await.unwrap(), 0, "held: nothing is claimed again");
        assert!(alerts(&n).is_empty());
        ctx.clock.advance(Duration::seconds(1));
        d.tick().await.unwrap();
        let got = alerts(&n);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].text,
            "alert firing: DiskFull host-1\nalert firing: DiskFull host-2"
        );
        assert_eq!(cards(&n), 2);

        // A post queued behind a fresh alert post: waiting would gain nothing, both go now.
        queue(&ctx, alert_joined(r, 3)).await;
        queue(
            &ctx,
            vec![message(r, MessageKind::ChatPost, "note", "a note")],
        )
        .await;
        d.tick().await.unwrap();
        d.tick().await.unwrap();
        let texts: Vec<String> = alerts(&n).into_iter().map(|m| m.text).collect();
        assert_eq!(
            texts[1..],
            ["alert firing: DiskFull host-3".to_string(), "a note".into()]
        );
        assert!(chat_rows(ctx.outbox().await)
            .iter()
            .all(|m| m.state == DeliveryState::Delivered));
    }
);

dual_test!(
    a_merged_post_that_fails_is_retried_on_its_head_and_given_up_as_a_whole,
    |ctx| async move {
        let [flaky, broken] = quiet_incidents(&ctx, 2).await[..] else {
            unreachable!()
        };
        for n in 0..40 {
            queue(&ctx, alert_joined(flaky, n)).await;
        }
        ctx.clock.advance(Duration::seconds(5));
        // The card's first attempt fails, then the merged post's first: two retries, each on
        // the group's head alone; then one card edit and one post for all forty alerts.
        let n = common::RecordingNotifier::failing_first(1);
        ctx.drain(&ctx.dispatcher(n.clone()), 50).await;
        assert_eq!(posts(&n.delivered(), flaky).len(), 1);
        assert_eq!(events_in(&posts(&n.delivered(), flaky)[0]), 40);
        let rows: Vec<OutboxMessage> = chat_rows(ctx.outbox().await)
            .into_iter()
            .filter(|m| m.incident == Some(flaky) && m.idempotency_key.starts_with("storm:"))
            .collect();
        assert_eq!(rows.len(), 80);
        assert!(rows.iter().all(|m| m.state == DeliveryState::Delivered));
        assert_eq!(
            rows[0].attempts, 3,
            "two failures and the delivery, on the head"
        );
        assert!(rows[1..].iter().all(|m| m.attempts == 1), "{rows:#?}");

        // Given up for good: every row of the group fails with the one error, and the incident's
        // timeline says so once, not forty times.
        for n in 0..40 {
            queue(&ctx, alert_joined(broken, n)).await;
        }
        ctx.clock.advance(Duration::seconds(5));
        let gone = common::RecordingNotifier::permanent();
        let d = ctx
            .dispatcher(gone.clone())
            .reporting_to(ctx.engine.clone() as Arc<dyn PageOutcomes>);
        let dead_before = ctx.timeline_kinds(broken.number()).await.len();
        d.tick().await.unwrap();
        let rows: Vec<OutboxMessage> = chat_rows(ctx.outbox().await)
            .into_iter()
            .filter(|m| m.incident == Some(broken) && m.idempotency_key.starts_with("storm:"))
            .collect();
        assert!(
            rows.iter().all(|m| m.state == DeliveryState::Failed
                && m.last_error.as_deref() == Some("410 gone: incident:INC-2")),
            "{rows:#?}"
        );
        assert_eq!(gone.attempts().values().sum::<u32>(), 1);
        assert_eq!(
            ctx.timeline_kinds(broken.number()).await.len(),
            dead_before + 1
        );
    }
);

/// Delivers everything; during its first alert post it hands every leased row to another owner
/// (as a replica would once the lease ran out).
struct Thief {
    ctx: common::Ctx,
    posts: AtomicUsize,
}

#[async_trait]
impl Notifier for Thief {
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        if m.kind == MessageKind::AlertPost && self.posts.fetch_add(1, Ordering::SeqCst) == 0 {
            self.ctx
                .raw_sql("UPDATE outbox SET lease_owner = 'thief' WHERE lease_owner IS NOT NULL")
                .await;
        }
        Ok(())
    }
}

dual_test!(
    a_merged_post_whose_lease_was_taken_marks_none_of_its_rows,
    |ctx| async move {
        let [r] = quiet_incidents(&ctx, 1).await[..] else {
            unreachable!()
        };
        for n in 0..30 {
            queue(&ctx, alert_joined(r, n)).await;
        }
        ctx.clock.advance(Duration::seconds(5));
        let thief = Arc::new(Thief {
            ctx: ctx.clone(),
            posts: AtomicUsize::new(0),
        });
        ctx.dispatcher(thief.clone()).tick().await.unwrap();
        assert_eq!(thief.posts.load(Ordering::SeqCst), 1);
        let rows: Vec<OutboxMessage> = chat_rows(ctx.outbox().await)
            .into_iter()
            .filter(|m| m.idempotency_key.starts_with("storm:"))
            .collect();
        assert_eq!(rows.len(), 60);
        assert!(
            rows.iter()
                .all(|m| m.state == DeliveryState::Pending && m.attempts == 0),
            "{rows:#?}"
        );
        assert_eq!(
            ctx.scalar("SELECT COUNT(*) FROM outbox WHERE lease_owner = 'thief'")
                .await,
            60
        );
    }
);
