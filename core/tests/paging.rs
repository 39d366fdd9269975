//! Paging real people, on both backends, on a hand-moved clock: the escalation matrix walked
//! over unacknowledged time, an acknowledgement stopping every pending page, acknowledgements
//! expiring, repeats, escalation, fall-through across contact methods and tiers, a restart
//! between two rows, and acknowledgement links.

mod common;

use async_trait::async_trait;
use chrono::Duration;
use spotter_core::clock::Clock;
use spotter_core::config::Config;
use spotter_core::domain::{Channel, EventKind, IncidentRef, State};
use spotter_core::outbox::{DeliveryError, Dispatcher, Notifier};
use spotter_core::store::{DeliveryState, MessageKind, OutboxMessage, Store};
use spotter_core::{AckLinkRefusal, CommandContext, Engine};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Levels 1-3 (the RTO watch pages at 50 % and 80 %, so only level 2's RTO is short enough to
/// matter within these tests); a, b, c reachable by webhook then ntfy; `mute` has no usable method (email
/// without [smtp]). Level 1 climbs a → b → c at 0/10/20 min and repeats c twice every 10 min;
/// level 2 pages mute + a, then b at 10 min; level 3 pages a, then b at 15 min.
const CONFIG: &str = r#"
[server]
public_url = "https://spotter.example"

[[level]]
id = 1
name = "Service Degradation"
rto = "8h"
[[level]]
id = 2
name = "Partial System Failure"
rto = "30m"
[[level]]
id = 3
name = "Complete System Failure"
rto = "8h"

[[person]]
id = "a"
name = "Ada"
roles = ["commander"]
notify = [
  { kind = "webhook", url = "https://hooks.example/a", hmac_secret_env = "SECRET_A" },
  { kind = "ntfy", url = "https://ntfy.example/a" },
]
[[person]]
id = "b"
name = "Bob"
roles = ["responder"]
notify = [{ kind = "webhook", url = "https://hooks.example/b", hmac_secret_env = "SECRET_B" }]
[[person]]
id = "c"
name = "Cy"
roles = ["responder"]
notify = [{ kind = "webhook", url = "https://hooks.example/c", hmac_secret_env = "SECRET_C" }]
[[person]]
id = "mute"
name = "Mute"
email = "mute@example.com"
external = true

[[escalation]]
level = 1
repeat = 2
repeat_every = "10m"
[[escalation.tier]]
after = "0m"
notify = ["a"]
[[escalation.tier]]
after = "10m"
notify = ["b"]
[[escalation.tier]]
after = "20m"
notify = ["c"]

[[escalation]]
level = 2
[[escalation.tier]]
after = "0m"
notify = ["mute", "a"]
[[escalation.tier]]
after = "10m"
notify = ["b"]

[[escalation]]
level = 3
[[escalation.tier]]
after = "0m"
notify = ["a"]
[[escalation.tier]]
after = "15m"
notify = ["b"]

[paging]
ack_timeout = "30m"
ack_timeout_min_level = 3
ack_link_ttl = "1h"
"#;

/// Records pages; fails every delivery to a person in `failing` on its channel.
#[derive(Default)]
struct Pager {
    failing: Mutex<HashSet<(Channel, String)>>,
    delivered: Mutex<Vec<OutboxMessage>>,
}

impl Pager {
    fn fail(&self, channel: Channel, person: &str) {
        self.failing
            .lock()
            .unwrap()
            .insert((channel, person.into()));
    }
    /// (channel, person, tier) of each delivered page, in order.
    fn pages(&self) -> Vec<(Channel, String, Option<usize>)> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m.channel,
                    m.target.clone(),
                    m.page.as_ref().and_then(|p| p.tier),
                )
            })
            .collect()
    }
    fn people(&self) -> Vec<String> {
        self.pages().into_iter().map(|(_, p, _)| p).collect()
    }
    fn last(&self) -> OutboxMessage {
        self.delivered
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a page")
    }
}

#[async_trait]
impl Notifier for Pager {
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        assert_eq!(
            m.kind,
            MessageKind::Page,
            "the pages lane delivers pages only"
        );
        if self
            .failing
            .lock()
            .unwrap()
            .contains(&(m.channel, m.target.clone()))
        {
            return Err(DeliveryError::Retry {
                reason: "HTTP 503 from the gateway".into(),
                after: None,
            });
        }
        self.delivered.lock().unwrap().push(m.clone());
        Ok(())
    }
}

struct Paging {
    ctx: common::Ctx,
    engine: Arc<Engine>,
    pager: Arc<Pager>,
    lane: Dispatcher,
}

impl Paging {
    fn new(ctx: common::Ctx) -> Paging {
        let config = Arc::new(Config::from_toml(CONFIG, "paging.toml").expect("the test config"));
        let engine = Arc::new(
            Engine::new(
                ctx.store.clone() as Arc<dyn Store>,
                config.clone(),
                ctx.clock.clone() as Arc<dyn Clock>,
                ctx.metrics.clone(),
            )
            .with_link_key([7; 32]),
        );
        let pager = Arc::new(Pager::default());
        let lane = Self::lane(&ctx, &engine, &pager);
        Paging {
            ctx,
            engine,
            pager,
            lane,
        }
    }

    fn lane(ctx: &common::Ctx, engine: &Arc<Engine>, pager: &Arc<Pager>) -> Dispatcher {
        Dispatcher::new(
            ctx.store.clone() as Arc<dyn Store>,
            ctx.clock.clone() as Arc<dyn Clock>,
            ctx.metrics.clone(),
            engine.config().outbox.clone(),
            engine.page_wakeup(),
        )
        .pages(engine.clone())
        .with_notifier(Channel::Webhook, pager.clone())
        .with_notifier(Channel::Ntfy, pager.clone())
    }

    async fn run(&self, who: &str, line: &str) -> spotter_core::Reply {
        let r = self
            .engine
            .execute_line(
                &self.engine.actor_for_person(who),
                line,
                &CommandContext::default(),
            )
            .await
            .unwrap();
        assert!(r.ok, "`{line}` as {who}: {}", r.text);
        r
    }

    /// Runs due jobs and delivers due pages until nothing is left to do now.
    async fn settle(&self) {
        let scheduler = spotter_core::scheduler::Scheduler::new(self.engine.clone());
        for _ in 0..20 {
            let jobs = scheduler.tick().await.unwrap();
            let pages = self.lane.tick().await.unwrap();
            if jobs == 0 && pages == 0 {
                return;
            }
        }
        panic!("paging did not settle");
    }

    /// Moves the clock by `minutes` and settles.
    async fn at_plus(&self, minutes: i64) {
        self.ctx.clock.advance(Duration::minutes(minutes));
        self.settle().await;
    }

    async fn timeline(&self, n: i64) -> Vec<(EventKind, String)> {
        self.ctx
            .store
            .timeline(IncidentRef::new(n))
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text))
            .collect()
    }

    async fn pages_in(&self, state: DeliveryState) -> usize {
        self.ctx
            .outbox()
            .await
            .iter()
            .filter(|m| m.kind == MessageKind::Page && m.state == state)
            .count()
    }
}

dual_test!(
    an_unacknowledged_incident_climbs_the_rows_then_repeats_the_last_and_stops,
    |ctx| async move {
        let p = Paging::new(ctx);
        p.run("a", "/incident declare level:1 title:\"API slow\"")
            .await;
        p.settle().await;
        assert_eq!(p.pager.people(), ["a"], "tier 1 at once");
        p.at_plus(9).await;
        assert_eq!(p.pager.people(), ["a"], "nothing before 10 min");
        p.at_plus(1).await;
        assert_eq!(p.pager.people(), ["a", "b"], "tier 2 at 10 min");
        p.at_plus(10).await;
        assert_eq!(p.pager.people(), ["a", "b", "c"], "tier 3 at 20 min");
        p.at_plus(10).await;
        p.at_plus(10).await;
        assert_eq!(
            p.pager.people(),
            ["a", "b", "c", "c", "c"],
            "two repeats of the last tier"
        );
        p.at_plus(120).await;
        assert_eq!(p.pager.pages().len(), 5, "then no more");
        let tiers: Vec<_> = p.pager.pages().into_iter().map(|(_, _, t)| t).collect();
        assert_eq!(tiers, [Some(0), Some(1), Some(2), Some(2), Some(2)]);
        // Each page carries an acknowledgement link of this server for its person.
        let last = p.pager.last();
        assert!(last
            .ack_url
            .as_deref()
            .unwrap()
            .starts_with("https://spotter.example/ack/"));
        assert!(last.text.contains("INC-1") && last.text.contains("API slow"));
        let inc = p.ctx.incident(1).await;
        assert_eq!(inc.escalation_tier, Some(2));
    }
);

dual_test!(
    an_acknowledgement_stops_every_pending_page_and_tier_on_every_path,
    |ctx| async move {
        let p = Paging::new(ctx);
        p.run("a", "/incident declare level:1 title:\"disk full\"")
            .await;
        // A page by hand too, still pending (not delivered yet) when someone acknowledges.
        p.run("a", "/page user:c text:\"please look\" incident:INC-1")
            .await;
        assert_eq!(p.pages_in(DeliveryState::Pending).await, 2);
        p.run("b", "/incident ack incident:INC-1").await;
        assert_eq!(p.pages_in(DeliveryState::Pending).await, 0);
        assert_eq!(p.pages_in(DeliveryState::Cancelled).await, 2);
        p.at_plus(180).await;
        assert!(
            p.pager.pages().is_empty(),
            "nothing went out after the ack: {:?}",
            p.pager.pages()
        );
        // Level 1 does not expire its acknowledgement.
        assert_eq!(p.ctx.incident(1).await.state, State::Acknowledged);
    }
);

dual_test!(
    a_hold_and_a_quiet_period_stop_paging_too,
    |ctx| async move {
        let p = Paging::new(ctx);
        p.run("a", "/incident declare level:3 title:\"outage\"")
            .await;
        p.settle().await;
        assert_eq!(p.pager.people(), ["a"]);
        p.run("a", "/incident hold incident:INC-1").await;
        p.at_plus(45).await;
        assert_eq!(
            p.pager.people(),
            ["a"],
            "a held incident pages nobody further"
        );
    }
);

dual_test!(
    an_acknowledgement_without_activity_expires_and_the_reached_row_is_paged_again,
    |ctx| async move {
        let p = Paging::new(ctx);
        p.run("a", "/incident declare level:3 title:\"db down\"")
            .await;
        p.settle().await;
        p.at_plus(16).await;
        assert_eq!(p.pager.people(), ["a", "b"], "tier 2 at 15 min");
        p.run("b", "/incident ack incident:INC-1").await;
        // Activity at +20 min moves the expiry to +50 min.
        p.at_plus(20).await;
        p.run("b", "/incident update incident:INC-1 text:\"restoring\"")
            .await;
        p.at_plus(29).await;
        assert_eq!(p.pager.people(), ["a", "b"], "not yet expired");
        assert_eq!(p.ctx.incident(1).await.state, State::Acknowledged);
        p.at_plus(1).await;
        let inc = p.ctx.incident(1).await;
        assert_eq!(inc.state, State::Declared, "the acknowledgement lapsed");
        assert_eq!(
            p.pager.people(),
            ["a", "b", "b"],
            "the row it had reached (tier 2) again"
        );
        assert_eq!(p.pager.last().page.unwrap().reason, "ack_expired");
        assert!(p
            .timeline(1)
            .await
            .iter()
            .any(|(k, t)| *k == EventKind::AckExpired && t.contains("paging tier 2 again")));
        // Acknowledged again: nothing more.
        p.run("a", "/incident ack incident:INC-1").await;
        p.at_plus(20).await;
        assert_eq!(p.pager.pages().len(), 3);
    }
);

dual_test!(
    escalating_restarts_the_matrix_of_the_new_level_and_drops_the_old_one,
    |ctx| async move {
        let p = Paging::new(ctx);
        p.run("a", "/incident declare level:1 title:\"slow\"").await;
        p.settle().await;
        p.at_plus(5).await;
        p.run("a", "/incident escalate incident:INC-1 level:3")
            .await;
        p.settle().await;
        assert_eq!(p.pager.people(), ["a", "a"], "level 3's tier 1 at once");
        p.at_plus(10).await;
        assert_eq!(
            p.pager.people(),
            ["a", "a"],
            "level 1's tier 2 (b at 10 min) is gone"
        );
        p.at_plus(5).await;
        assert_eq!(
            p.pager.people(),
            ["a", "a", "b"],
            "level 3's tier 2, 15 min after the escalation"
        );
    }
);

dual_test!(
    a_failing_method_falls_through_and_an_unreachable_person_pages_the_next_row_now,
    |ctx| async move {
        let p = Paging::new(ctx);
        p.pager.fail(Channel::Webhook, "a");
        // Level 2's first tier: `mute` has no usable method, so tier 2 (b) is paged at once; `a`'s
        // webhook fails, so their page falls through to ntfy.
        p.run("b", "/incident declare level:2 title:\"partial\"")
            .await;
        p.settle().await;
        let pages = p.pager.pages();
        assert!(
            pages.contains(&(Channel::Ntfy, "a".into(), Some(0))),
            "{pages:?}"
        );
        assert!(
            pages.contains(&(Channel::Webhook, "b".into(), Some(1))),
            "{pages:?}"
        );
        assert_eq!(pages.len(), 2);
        let t = p.timeline(1).await;
        assert!(
            t.iter().any(|(_, x)| x
                .contains("cannot page Mute (mute): email needs an [smtp] section")
                && x.contains("tier 2 is paged now")),
            "{t:#?}"
        );
        assert!(
            t.iter().any(|(k, x)| *k == EventKind::PageFailed
                && x.contains("by webhook")
                && x.contains("trying ntfy next")),
            "{t:#?}"
        );
        // b was paged early; the 10-minute job does not page them again.
        p.at_plus(12).await;
        assert_eq!(p.pager.pages().len(), 2);
    }
);

dual_test!(
    an_unreachable_first_row_has_the_next_row_paged_in_the_declaration_itself,
    |ctx| async move {
        let p = Paging::new(ctx);
        // Level 2's first row holds `mute`, who has no usable method: row 2 (b, at 10 min) is
        // paged by the declaration's own write, before any scheduled job has run.
        p.run("b", "/incident declare level:2 title:\"partial\"")
            .await;
        let t = p.timeline(1).await;
        let paged: Vec<&String> = t
            .iter()
            .filter(|(k, _)| *k == EventKind::Paged)
            .map(|(_, x)| x)
            .collect();
        assert_eq!(paged.len(), 2, "{t:#?}");
        assert!(paged[0].contains("tier 2 is paged now"), "{t:#?}");
        assert!(paged[1].starts_with("paged tier 2 of level 2"), "{t:#?}");
        // Row 2's job is not written, so nothing pages b again at 10 min.
        let jobs = p.ctx.store.pending_jobs().await.unwrap();
        let keys: Vec<&str> = jobs.iter().map(|j| j.key.as_str()).collect();
        assert!(!keys.iter().any(|k| k.ends_with(":t1")), "{keys:?}");
        // What the scheduler would have done, the declaration did: the pages go out as before.
        p.settle().await;
        let pages = p.pager.pages();
        assert!(
            pages.contains(&(Channel::Webhook, "b".into(), Some(1))),
            "{pages:?}"
        );
        p.at_plus(12).await;
        assert_eq!(
            p.pager.people().iter().filter(|x| *x == "b").count(),
            1,
            "{:?}",
            p.pager.people()
        );
    }
);

dual_test!(
    a_person_out_of_methods_makes_their_tier_count_as_unanswered,
    |ctx| async move {
        let p = Paging::new(ctx);
        p.pager.fail(Channel::Webhook, "a");
        p.pager.fail(Channel::Ntfy, "a");
        p.run("b", "/incident declare level:3 title:\"outage\"")
            .await;
        p.settle().await;
        assert_eq!(
            p.pager.people(),
            ["b"],
            "tier 2 at once: a could not be reached"
        );
        let t = p.timeline(1).await;
        assert!(
            t.iter().any(
                |(_, x)| x.contains("could not reach Ada (a) by any contact method")
                    && x.contains("tier 2 is paged now")
            ),
            "{t:#?}"
        );
        assert_eq!(p.pages_in(DeliveryState::Failed).await, 2);
    }
);

dual_test!(
    a_restart_between_two_rows_pages_the_later_row_once_and_late,
    |ctx| async move {
        let p = Paging::new(ctx);
        p.run("a", "/incident declare level:1 title:\"down\"").await;
        p.settle().await;
        // Spotter is down from here: the clock moves, nothing runs.
        p.ctx.clock.advance(Duration::minutes(14));
        // A new process on the same database.
        let again = Paging {
            engine: p.engine.clone(),
            lane: Paging::lane(&p.ctx, &p.engine, &p.pager),
            pager: p.pager.clone(),
            ctx: p.ctx.clone(),
        };
        again.settle().await;
        assert_eq!(
            again.pager.people(),
            ["a", "b"],
            "tier 2 once, tier 1 not again"
        );
        let page = again.pager.last();
        assert!(page.text.contains("late by"), "{}", page.text);
        assert!(again
            .timeline(1)
            .await
            .iter()
            .any(|(_, t)| t.contains("late by 4m") && t.contains("not running")));
        again.settle().await;
        assert_eq!(again.pager.pages().len(), 2);
    }
);

dual_test!(
    the_rto_watch_pages_at_half_and_four_fifths_and_at_the_deadline,
    |ctx| async move {
        let p = Paging::new(ctx);
        // Level 2, RTO 30 min: warnings at 15 and 24 min, the breach at 30.
        p.run("b", "/incident declare level:2 title:\"slow restore\"")
            .await;
        p.run("a", "/incident ack incident:INC-1").await;
        p.run("a", "/incident commander incident:INC-1 user:a")
            .await;
        p.settle().await;
        let before = p.pager.pages().len();
        p.at_plus(15).await;
        p.at_plus(9).await;
        p.at_plus(6).await;
        let t = p.timeline(1).await;
        for (kind, what) in [
            (EventKind::RtoWarning, "50 %"),
            (EventKind::RtoWarning, "80 %"),
            (EventKind::RtoBreached, "passed its RTO"),
        ] {
            assert!(
                t.iter().any(|(k, x)| *k == kind && x.contains(what)),
                "{what}: {t:#?}"
            );
        }
        let rto: Vec<_> = p.pager.delivered.lock().unwrap()[before..].to_vec();
        assert_eq!(rto.len(), 3, "three RTO pages: {rto:#?}");
        assert!(
            rto.iter()
                .all(|m| m.target == "a" && m.page.as_ref().unwrap().reason == "rto"),
            "the commander each time"
        );
    }
);

dual_test!(
    an_ack_link_acknowledges_once_and_only_by_post,
    |ctx| async move {
        let p = Paging::new(ctx);
        p.run("b", "/incident declare level:1 title:\"api\"").await;
        p.settle().await;
        let url = p.pager.last().ack_url.unwrap();
        let token = url.rsplit('/').next().unwrap().to_string();
        // Reading the link (a scanner's GET) changes nothing.
        let view = p.engine.ack_link_view(&token).await.unwrap().unwrap();
        assert_eq!(view.incident.reference.to_string(), "INC-1");
        assert!(view.person.contains("Ada"));
        assert_eq!(p.ctx.incident(1).await.state, State::Declared);
        // Forged and altered tokens are refused before anything is read.
        let mut altered = token.clone();
        altered.replace_range(0..1, if token.starts_with('0') { "1" } else { "0" });
        for bad in [altered.as_str(), "abc", "", &token[..token.len() - 1]] {
            assert_eq!(
                p.engine.ack_by_link(bad).await.unwrap().unwrap_err(),
                AckLinkRefusal::Invalid,
                "{bad}"
            );
        }
        let reply = p.engine.ack_by_link(&token).await.unwrap().unwrap();
        assert!(reply.ok);
        let inc = p.ctx.incident(1).await;
        assert_eq!(inc.state, State::Acknowledged);
        assert_eq!(
            inc.acknowledged_by.as_deref(),
            Some("a"),
            "as the link's person"
        );
        let again = p.engine.ack_by_link(&token).await.unwrap().unwrap_err();
        assert!(matches!(again, AckLinkRefusal::Used(_)), "{again:?}");
        assert!(p.ctx.audit_verifies().await > 0);
    }
);

dual_test!(
    an_expired_link_or_one_for_an_acknowledged_incident_changes_nothing,
    |ctx| async move {
        let p = Paging::new(ctx);
        p.run("b", "/incident declare level:1 title:\"api\"").await;
        p.settle().await;
        let token = p
            .pager
            .last()
            .ack_url
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        p.run("b", "/incident ack incident:INC-1").await;
        let e = p.engine.ack_by_link(&token).await.unwrap().unwrap_err();
        assert!(
            matches!(e, AckLinkRefusal::AlreadyAcknowledged { .. }),
            "{e:?}"
        );
        p.run("b", "/incident declare level:1 title:\"other\"")
            .await;
        p.settle().await;
        let token = p
            .pager
            .last()
            .ack_url
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let before = p.ctx.snapshot().await;
        p.ctx.clock.advance(Duration::minutes(61));
        let e = p.engine.ack_by_link(&token).await.unwrap().unwrap_err();
        assert!(matches!(e, AckLinkRefusal::Expired(_)), "{e:?}");
        assert_eq!(p.ctx.snapshot().await, before);
    }
);
