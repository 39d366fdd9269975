//! Storage and engine integration tests. Every test body runs twice, on SQLite and on
//! PostgreSQL (see `common/mod.rs`); time only moves through the `ManualClock`.

#[macro_use]
mod common;

use chrono::Duration;
use common::RecordingNotifier;
use spotter_core::audit::{self, AuditRecord};
use spotter_core::clock::Clock;
use spotter_core::domain::{
    Channel, EventKind, Incident, IncidentRef, LevelId, Phase, Source, State, StateFilter,
    TimelineEntry,
};
use spotter_core::store::{
    Changeset, DeliveryState, IncidentWrite, JobChange, JobPayload, MessageKind, NewJob,
    NewMessage, Store,
};
use spotter_core::{CommandContext, StoreError};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn chat_message(key: &str, text: &str) -> NewMessage {
    NewMessage {
        channel: Channel::Log,
        kind: MessageKind::ChatPost,
        target: "incident:INC-1".into(),
        incident: Some(IncidentRef::new(1)),
        text: text.into(),
        priority: 0,
        idempotency_key: key.into(),
        ordering_key: "chat:INC-1".into(),
        page: None,
        approval: None,
        broadcast: None,
    }
}

// ── 1. Declaring and reading back ──────────────────────────────────────────────────────────────

dual_test!(
    declaring_assigns_sequential_numbers_and_the_store_keeps_exactly_what_was_returned,
    |ctx| async move {
        let t0 = ctx.clock.now();
        let first = ctx
            .ok(
                "sysadmin",
                r#"/incident declare level:3 title:"MySQL down""#,
            )
            .await
            .incident
            .unwrap();
        ctx.clock.advance(Duration::minutes(1));
        let second = ctx
            .ok(
                "dev",
                r#"/incident declare level:2 title:"Redis slow" component:cache,database"#,
            )
            .await
            .incident
            .unwrap();

        assert_eq!(first.reference, IncidentRef::new(1));
        assert_eq!(second.reference, IncidentRef::new(2));
        assert_eq!(first.level, LevelId(3));
        assert_eq!(first.title, "MySQL down");
        assert_eq!(first.declared_at, t0);
        assert_eq!(
            first.rto_deadline,
            t0 + Duration::hours(2),
            "level 3 has a 2h RTO"
        );
        assert_eq!(first.state, State::Declared);
        assert_eq!(first.phase, Phase::ImmediateResponse);
        assert_eq!(first.source, Source::Chat);
        assert_eq!(first.declared_by, "sysadmin");
        assert_eq!(first.version, 1);
        assert_eq!(
            second.rto_deadline,
            t0 + Duration::minutes(1) + Duration::minutes(30),
            "level 2 has a 30m RTO"
        );
        assert_eq!(
            second
                .components
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>(),
            ["cache", "database"]
        );

        assert_eq!(
            ctx.incident(1).await,
            first,
            "the stored incident equals the returned one"
        );
        assert_eq!(ctx.incident(2).await, second);

        // A new store on the same database (a restart) sees the same rows and numbering goes on.
        let fresh = ctx.reconnect().await;
        fresh.ready().await.unwrap();
        assert_eq!(
            fresh.incident(IncidentRef::new(1)).await.unwrap(),
            Some(first)
        );
        assert_eq!(
            fresh.incident(IncidentRef::new(2)).await.unwrap(),
            Some(second)
        );
        assert_eq!(fresh.next_incident_number().await.unwrap(), 3);
        let listed: Vec<i64> = fresh
            .incidents(StateFilter::All)
            .await
            .unwrap()
            .iter()
            .map(|i| i.reference.number())
            .collect();
        assert_eq!(listed, [2, 1], "newest first");
        assert_eq!(fresh.audit_log().await.unwrap().entries.len(), 2);
        fresh.close().await;

        let third = ctx.declare(1, "Slow pages").await;
        assert_eq!(third.reference, IncidentRef::new(3));
    }
);

// ── 2. Full lifecycle ──────────────────────────────────────────────────────────────────────────

dual_test!(
    a_full_lifecycle_writes_the_expected_timeline_and_a_verifiable_audit_chain,
    |ctx| async move {
        let inc = ctx.declare(3, "MySQL down").await;
        ctx.clock.advance(Duration::minutes(2));
        let acked = ctx
            .ok("dev", "/incident ack incident:INC-1")
            .await
            .incident
            .unwrap();
        assert_eq!(
            (acked.state, acked.phase),
            (State::Acknowledged, Phase::Assessment)
        );
        assert_eq!(acked.acknowledged_by.as_deref(), Some("dev"));
        ctx.clock.advance(Duration::minutes(3));
        ctx.ok("dev", r#"/incident update text:"restarting mysql""#)
            .await;
        ctx.clock.advance(Duration::minutes(5));
        let escalated = ctx
            .ok("dba", "/incident escalate level:4")
            .await
            .incident
            .unwrap();
        assert_eq!(escalated.level, LevelId(4));
        assert_eq!(
            escalated.rto_deadline,
            inc.declared_at + Duration::hours(4),
            "the deadline is recomputed from declaration"
        );
        ctx.clock.advance(Duration::minutes(20));
        let resolved = ctx
            .ok("dba", r#"/incident resolve summary:"restored from backup""#)
            .await
            .incident
            .unwrap();
        assert_eq!(resolved.state, State::Resolved);
        assert_eq!(resolved.summary.as_deref(), Some("restored from backup"));
        ctx.clock.advance(Duration::minutes(1));
        let closed = ctx
            .ok("dba", "/incident close incident:INC-1")
            .await
            .incident
            .unwrap();

        let stored = ctx.incident(1).await;
        assert_eq!(stored, closed);
        assert_eq!(stored.state, State::Closed);
        assert_eq!(stored.version, 6, "declare + five updates");
        assert_eq!(stored.rto_deadline, inc.declared_at + Duration::hours(4));
        assert_eq!(stored.closed_at, Some(ctx.clock.now()));

        use EventKind::*;
        assert_eq!(
            ctx.timeline_kinds(1).await,
            [
                Declared,
                Paged,
                Acknowledged,
                // Acknowledging moves immediate response to assessment, on the record.
                PhaseChanged,
                Update,
                LevelChanged,
                Paged,
                Resolved,
                Closed
            ]
        );

        assert_eq!(ctx.audit_verifies().await, 6);
        let log = ctx.store.audit_log().await.unwrap();
        let actions: Vec<&str> = log.entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "incident.declare",
                "incident.ack",
                "incident.update",
                "incident.escalate",
                "incident.resolve",
                "incident.close"
            ]
        );
        let actors: Vec<&str> = log.entries.iter().map(|e| e.actor.as_str()).collect();
        assert_eq!(actors, ["sysadmin", "dev", "dev", "dba", "dba", "dba"]);
        assert!(log.entries.iter().all(|e| e.subject == "INC-1"));
        assert_eq!(log.head_seq, 6);
    }
);

// ── 3. Refusals ────────────────────────────────────────────────────────────────────────────────

dual_test!(refused_commands_change_nothing, |ctx| async move {
    ctx.ok(
        "sysadmin",
        r#"/incident declare level:3 title:"MySQL down" commander:dba"#,
    )
    .await;
    ctx.declare(2, "Redis slow").await;
    ctx.ok("sysadmin", "/incident resolve incident:INC-2").await;
    let before = ctx.snapshot().await;
    assert_eq!(before.audit, 3);

    ctx.refused(
        "sysadmin",
        r#"/incident declare level:9 title:"x""#,
        "bad value for `level`: `9`",
    )
    .await;
    ctx.refused(
        "sysadmin",
        r#"/incident declare level:3 title:"MySQL down"#,
        "unterminated quote",
    )
    .await;
    ctx.refused(
        "sysadmin",
        "/incident declare level:3",
        "missing option `title`",
    )
    .await;
    ctx.refused("sysadmin", "/incident explode", "unknown subcommand")
        .await;
    ctx.refused(
        "dev",
        "/incident ack incident:INC-2",
        "is resolved and cannot be acknowledged",
    )
    .await;
    ctx.refused(
        "nobody",
        r#"/incident declare level:3 title:"x""#,
        "not a configured person, so only a viewer",
    )
    .await;
    ctx.refused(
        "nobody",
        "/incident ack incident:INC-1",
        "needs role responder",
    )
    .await;
    ctx.refused(
        "dev",
        "/incident resolve incident:INC-1",
        "not allowed: /incident resolve needs role commander",
    )
    .await;
    ctx.refused(
        "dba",
        "/incident close incident:INC-1",
        "only a resolved incident can be closed",
    )
    .await;
    ctx.refused(
        "dba",
        "/incident escalate incident:INC-1 level:3",
        "already at level 3",
    )
    .await;
    ctx.refused(
        "dba",
        "/incident ack incident:INC-7",
        "INC-7 does not exist",
    )
    .await;

    assert_eq!(ctx.snapshot().await, before, "no row of any table changed");
    assert_eq!(ctx.audit_verifies().await, 3);
});

// ── 4. The incident's own commander ────────────────────────────────────────────────────────────

dual_test!(
    the_incidents_own_commander_may_resolve_it_with_only_the_responder_role,
    |ctx| async move {
        ctx.declare(3, "MySQL down").await;
        ctx.refused("dev", "/incident resolve", "needs role commander")
            .await;
        let handed = ctx
            .ok("sysadmin", "/incident commander user:dev")
            .await
            .incident
            .unwrap();
        assert_eq!(handed.commander.as_ref().map(|c| c.as_str()), Some("dev"));
        let resolved = ctx
            .ok("dev", r#"/incident resolve summary:"fixed it""#)
            .await
            .incident
            .unwrap();
        assert_eq!(resolved.state, State::Resolved);
        assert_eq!(ctx.incident(1).await.state, State::Resolved);
        // Commanding one incident gives no rights on another.
        ctx.declare(3, "Proxy down").await;
        ctx.refused(
            "dev",
            "/incident resolve incident:INC-2",
            "needs role commander",
        )
        .await;
        assert_eq!(ctx.audit_verifies().await, 4);
    }
);

// ── 5. Escalation tiers ────────────────────────────────────────────────────────────────────────

/// The outbox's pages sent by the escalation matrix (not the RTO watch's).
async fn escalation_pages(ctx: &common::Ctx) -> Vec<spotter_core::store::OutboxMessage> {
    ctx.outbox()
        .await
        .into_iter()
        .filter(|m| m.page.as_ref().is_some_and(|p| p.reason == "escalation"))
        .collect()
}

fn pages_to(outbox: &[spotter_core::store::OutboxMessage], person: &str) -> usize {
    outbox
        .iter()
        .filter(|m| m.kind == MessageKind::Page && m.target == person)
        .count()
}

dual_test!(
    an_unacknowledged_level_1_incident_pages_the_second_tier_after_15_minutes,
    |ctx| async move {
        ctx.declare(1, "Slow pages").await;
        let out = ctx.outbox().await;
        assert_eq!(pages_to(&out, "sysadmin"), 1, "tier 1 is paged at once");
        assert_eq!(pages_to(&out, "dba"), 0);
        assert_eq!(
            ctx.timeline_kinds(1).await,
            [EventKind::Declared, EventKind::Paged]
        );

        let scheduler = ctx.scheduler();
        ctx.clock.advance(Duration::minutes(14));
        assert_eq!(
            scheduler.tick().await.unwrap(),
            2,
            "before 15 minutes only the RTO watch (50 % and 80 % of 15 min)"
        );
        assert_eq!(pages_to(&ctx.outbox().await, "dba"), 0);

        ctx.clock.advance(Duration::minutes(2));
        assert_eq!(
            scheduler.tick().await.unwrap(),
            2,
            "the tier-2 job and the RTO deadline"
        );
        let timeline = ctx.store.timeline(IncidentRef::new(1)).await.unwrap();
        let tier2: Vec<&TimelineEntry> = timeline
            .iter()
            .filter(|t| t.kind == EventKind::Paged && t.text.contains("tier 2"))
            .collect();
        assert_eq!(tier2.len(), 1, "{timeline:#?}");
        assert_eq!(tier2[0].actor, "system:scheduler");
        // The matrix's page to dba; the RTO watch pages the reached row on its own.
        let out = escalation_pages(&ctx).await;
        assert_eq!(pages_to(&out, "dba"), 1, "{out:#?}");
        let page = out
            .iter()
            .find(|m| m.kind == MessageKind::Page && m.target == "dba")
            .unwrap();
        assert_eq!(page.incident, Some(IncidentRef::new(1)));
        assert_eq!(page.state, DeliveryState::Pending);

        // The job ran once; ticking again changes nothing.
        let before = ctx.outbox().await.len();
        assert_eq!(scheduler.tick().await.unwrap(), 0);
        assert_eq!(ctx.outbox().await.len(), before);
        assert!(
            ctx.store
                .pending_jobs()
                .await
                .unwrap()
                .iter()
                .all(|j| j.key.starts_with("esc:")),
            "only later tiers are left"
        );
        ctx.audit_verifies().await;
    }
);

// One tick runs the due jobs of several incidents side by side (their commits share the
// group writer's transactions) and each incident's in due order: the tier-2 page comes before
// the RTO breach it was due before.
dual_test!(
    multi_thread one_tick_runs_every_incidents_due_jobs_each_in_due_order,
    |ctx| async move {
        for i in 0..5 {
            ctx.declare(1, &format!("Slow pages {i}")).await;
        }
        let scheduler = ctx.scheduler();
        ctx.clock.advance(Duration::minutes(14));
        assert_eq!(scheduler.tick().await.unwrap(), 10, "50 % and 80 % of the RTO, 5 incidents");
        ctx.clock.advance(Duration::minutes(2));
        assert_eq!(scheduler.tick().await.unwrap(), 10, "tier 2 and the RTO deadline, 5 incidents");
        let escalations = escalation_pages(&ctx).await;
        assert_eq!(pages_to(&escalations, "dba"), 5, "each incident's tier 2");
        for n in 1..=5 {
            let kinds = ctx.timeline_kinds(n).await;
            let at = |k: EventKind| kinds.iter().position(|x| *x == k);
            let tier2 = ctx
                .store
                .timeline(IncidentRef::new(n))
                .await
                .unwrap()
                .iter()
                .position(|t| t.kind == EventKind::Paged && t.text.contains("tier 2"));
            assert!(tier2.is_some(), "INC-{n}: {kinds:?}");
            assert!(tier2 < at(EventKind::RtoBreached), "INC-{n} in due order: {kinds:?}");
        }
        ctx.audit_verifies().await;
    }
);

dual_test!(
    acknowledging_before_15_minutes_cancels_the_second_tier,
    |ctx| async move {
        ctx.declare(1, "Slow pages").await;
        ctx.clock.advance(Duration::minutes(5));
        ctx.ok("dev", "/incident ack").await;
        assert!(
            ctx.store
                .pending_jobs()
                .await
                .unwrap()
                .iter()
                .all(|j| !j.key.starts_with("esc:")),
            "the escalation job is cancelled by the ack"
        );
        ctx.clock.advance(Duration::minutes(11));
        ctx.scheduler().tick().await.unwrap();
        ctx.clock.advance(Duration::hours(1));
        ctx.scheduler().tick().await.unwrap();

        assert_eq!(pages_to(&ctx.outbox().await, "dba"), 0);
        let timeline = ctx.store.timeline(IncidentRef::new(1)).await.unwrap();
        assert!(
            !timeline
                .iter()
                .any(|t| t.kind == EventKind::Paged && t.text.contains("tier 2")),
            "{timeline:#?}"
        );
        assert_eq!(
            timeline
                .iter()
                .filter(|t| t.kind == EventKind::Paged && t.text.starts_with("paged tier"))
                .count(),
            1,
            "only tier 1, at declaration (the RTO watch pages on its own): {timeline:#?}"
        );
    }
);

// ── 6. RTO breach ──────────────────────────────────────────────────────────────────────────────

dual_test!(
    an_open_incident_past_its_rto_gets_one_breach_event,
    |ctx| async move {
        ctx.declare(1, "Slow pages").await;
        ctx.ok("dev", "/incident ack").await;
        let scheduler = ctx.scheduler();
        ctx.clock.advance(Duration::minutes(14));
        scheduler.tick().await.unwrap();
        assert!(
            !ctx.timeline_kinds(1)
                .await
                .contains(&EventKind::RtoBreached),
            "not before the deadline"
        );

        ctx.clock.advance(Duration::minutes(2));
        assert_eq!(scheduler.tick().await.unwrap(), 1);
        let timeline = ctx.store.timeline(IncidentRef::new(1)).await.unwrap();
        let breaches: Vec<&TimelineEntry> = timeline
            .iter()
            .filter(|t| t.kind == EventKind::RtoBreached)
            .collect();
        assert_eq!(breaches.len(), 1);
        assert!(
            breaches[0].text.contains("passed its RTO of 15m"),
            "{}",
            breaches[0].text
        );
        let log = ctx.store.audit_log().await.unwrap();
        assert_eq!(log.entries.last().unwrap().action, "incident.rto_breached");

        ctx.clock.advance(Duration::hours(1));
        assert_eq!(
            scheduler.tick().await.unwrap(),
            0,
            "the breach job ran once"
        );
        assert_eq!(
            ctx.timeline_kinds(1)
                .await
                .iter()
                .filter(|k| **k == EventKind::RtoBreached)
                .count(),
            1
        );
        assert_eq!(ctx.audit_verifies().await, 3);
    }
);

dual_test!(
    resolving_before_the_deadline_means_no_breach,
    |ctx| async move {
        ctx.declare(1, "Slow pages").await;
        ctx.clock.advance(Duration::minutes(10));
        let r = ctx.ok("sysadmin", "/incident resolve").await;
        assert!(r.text.contains("within RTO"), "{}", r.text);
        assert!(
            ctx.store.pending_jobs().await.unwrap().is_empty(),
            "the RTO and tier jobs are cancelled"
        );
        ctx.clock.advance(Duration::minutes(10));
        assert_eq!(ctx.scheduler().tick().await.unwrap(), 0);
        ctx.clock.advance(Duration::hours(2));
        assert_eq!(ctx.scheduler().tick().await.unwrap(), 0);
        let kinds = ctx.timeline_kinds(1).await;
        assert!(!kinds.contains(&EventKind::RtoBreached), "{kinds:?}");
        assert_eq!(
            kinds,
            [EventKind::Declared, EventKind::Paged, EventKind::Resolved]
        );
    }
);

// ── 7. Concurrency ─────────────────────────────────────────────────────────────────────────────

dual_test!(multi_thread sixteen_concurrent_declares_get_numbers_1_to_16, |ctx| async move {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let line = format!("/incident declare level:3 title:\"outage {i}\"");
                ctx.engine.execute_line(&ctx.actor("sysadmin"), &line, &CommandContext::default()).await
            })
        })
        .collect();
    // Every task is awaited before anything is asserted, so a failure reports all outcomes.
    let mut numbers = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        match t.await.expect("a declare task") {
            Ok(r) if r.ok => numbers.push(r.incident.expect("a declare reply carries the incident").reference.number()),
            Ok(r) => failures.push(format!("refused: {}", r.text)),
            Err(e) => failures.push(format!("store error: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of 16 concurrent declares failed: {failures:#?}", failures.len());
    let distinct: BTreeSet<i64> = numbers.iter().copied().collect();
    assert_eq!(distinct.len(), 16, "all distinct: {numbers:?}");
    assert_eq!(distinct.into_iter().collect::<Vec<_>>(), (1..=16).collect::<Vec<i64>>());
    assert_eq!(ctx.store.incidents(StateFilter::All).await.unwrap().len(), 16);
    assert_eq!(ctx.audit_verifies().await, 16);
    for n in 1..=16 {
        assert_eq!(ctx.timeline_kinds(n).await, [EventKind::Declared, EventKind::Paged], "INC-{n}");
    }
});

dual_test!(multi_thread eight_concurrent_acks_of_one_incident_let_exactly_one_through, |ctx| async move {
    ctx.declare(3, "MySQL down").await;
    let who = ["dev", "dba", "sysadmin", "security", "dev", "dba", "sysadmin", "security"];
    let tasks: Vec<_> = who
        .iter()
        .map(|w| {
            let ctx = ctx.clone();
            let w = w.to_string();
            tokio::spawn(async move { ctx.run(&w, "/incident ack incident:INC-1").await })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("an ack task"));
    }
    let ok: Vec<_> = replies.iter().filter(|r| r.ok).collect();
    assert_eq!(ok.len(), 1, "{replies:#?}");
    for r in replies.iter().filter(|r| !r.ok) {
        assert!(r.text.contains("already acknowledged"), "{}", r.text);
    }
    let inc = ctx.incident(1).await;
    assert_eq!(inc.state, State::Acknowledged);
    assert_eq!(inc.version, 2);
    assert_eq!(ctx.timeline_kinds(1).await.iter().filter(|k| **k == EventKind::Acknowledged).count(), 1);
    assert_eq!(ctx.audit_verifies().await, 2);
});

// ── 8. Outbox delivery ─────────────────────────────────────────────────────────────────────────

dual_test!(
    retried_messages_are_delivered_exactly_once_and_in_order_per_key,
    |ctx| async move {
        ctx.declare(3, "MySQL down").await; // chat: declared, paged; pages to the full team
        ctx.clock.advance(Duration::seconds(1));
        ctx.ok("dev", r#"/incident update text:"looking""#).await;
        ctx.clock.advance(Duration::seconds(1));
        ctx.ok("dev", "/incident ack").await;
        ctx.clock.advance(Duration::seconds(1));
        ctx.ok("dev", r#"/incident update text:"restarting""#).await;
        let queued = ctx.outbox().await;
        assert_eq!(
            queued
                .iter()
                .filter(|m| m.kind == MessageKind::ChatPost)
                .count(),
            4,
            "declared and paged (one post), update, acknowledged and phase changed (one post), update"
        );
        assert_eq!(
            queued
                .iter()
                .filter(|m| m.kind == MessageKind::Page)
                .count(),
            4
        );
        // Every incident write (declare, update, ack, update) refreshes the card.
        assert_eq!(
            queued
                .iter()
                .filter(|m| m.kind == MessageKind::CardUpdate)
                .count(),
            4
        );

        let notifier = RecordingNotifier::failing_first(2);
        let d = ctx.dispatcher(notifier.clone());
        ctx.drain(&d, 100).await;

        // The chat lane's messages; the pages wait for the pages lane (not running here).
        let out: Vec<_> = ctx
            .outbox()
            .await
            .into_iter()
            .filter(|m| m.kind != MessageKind::Page)
            .collect();
        assert!(
            out.iter()
                .all(|m| m.state == DeliveryState::Delivered && m.attempts == 3),
            "{out:#?}"
        );
        let delivered = notifier.delivered();
        let ids: Vec<i64> = delivered.iter().map(|m| m.id).collect();
        assert_eq!(ids.len(), out.len(), "every message once: {ids:?}");
        assert_eq!(
            ids.iter().copied().collect::<HashSet<_>>().len(),
            ids.len(),
            "no message twice: {ids:?}"
        );
        assert!(notifier.attempts().values().all(|a| *a == 3));

        // The incident's chat posts arrive in creation order.
        let chat: Vec<i64> = delivered
            .iter()
            .filter(|m| m.kind == MessageKind::ChatPost)
            .map(|m| m.id)
            .collect();
        let mut created = chat.clone();
        created.sort();
        assert_eq!(chat, created);
        let texts: Vec<&str> = delivered
            .iter()
            .filter(|m| m.kind == MessageKind::ChatPost)
            .map(|m| m.text.as_str())
            .collect();
        // One post per decision, a line per event.
        let lines: Vec<Vec<&str>> = texts.iter().map(|t| t.lines().collect()).collect();
        assert_eq!(lines.len(), 4, "{texts:?}");
        assert!(
            lines[0].len() == 2
                && lines[0][0].contains("declared")
                && lines[0][1].starts_with("paged tier 1"),
            "{texts:?}"
        );
        assert_eq!(lines[1], ["looking"]);
        assert!(
            lines[2].len() == 2
                && lines[2][0].contains("acknowledged")
                && lines[2][1].contains("moved from Immediate Response"),
            "{texts:?}"
        );
        assert_eq!(lines[3], ["restarting"]);

        let metrics = ctx.metrics.render(
            &ctx.store.stats().await.unwrap(),
            ctx.config.levels.keys().copied(),
        );
        assert!(
            metrics.contains(&format!("spotter_outbox_delivered_total {}", out.len())),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!(
                "spotter_outbox_failures_total{{outcome=\"retry\"}} {}",
                2 * out.len()
            )),
            "{metrics}"
        );
        assert!(
            // The ack cancelled the four pages before any went out.
            metrics.contains("spotter_outbox_messages{state=\"pending\"} 0"),
            "{metrics}"
        );
    }
);

dual_test!(
    a_permanent_failure_fails_the_message_after_one_attempt_and_is_counted,
    |ctx| async move {
        ctx.declare(1, "Slow pages").await; // a card update, one chat post "declared" and "paged", a page to sysadmin
        let notifier = RecordingNotifier::permanent();
        let d = ctx
            .dispatcher(notifier.clone())
            .reporting_to(ctx.engine.clone());
        ctx.drain(&d, 20).await;

        // A card update and a chat post; the page to sysadmin waits for the pages lane.
        let out: Vec<_> = ctx
            .outbox()
            .await
            .into_iter()
            .filter(|m| m.kind != MessageKind::Page)
            .collect();
        assert_eq!(out.len(), 2);
        for m in &out {
            assert_eq!(m.state, DeliveryState::Failed, "{m:#?}");
            assert_eq!(m.attempts, 1, "{m:#?}");
            assert!(
                m.last_error.as_deref().unwrap_or("").contains("410 gone"),
                "{m:#?}"
            );
            assert!(m.delivered_at.is_none());
        }
        assert!(notifier.delivered().is_empty());
        // Each dead letter is on the incident's timeline (and in the audit log), without a
        // chat post of its own that would only fail again.
        let dead: Vec<_> = ctx
            .store
            .timeline(IncidentRef::new(1))
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.kind == EventKind::MessageDeadLettered)
            .collect();
        assert_eq!(dead.len(), 2, "{dead:#?}");
        assert!(
            dead.iter().any(|t| t
                .text
                .contains("a card update to log was given up after 1 attempts")),
            "{dead:#?}"
        );
        assert_eq!(
            ctx.outbox().await.len(),
            3,
            "no new messages about the dead letters"
        );
        assert!(notifier.attempts().values().all(|a| *a == 1));

        let stats = ctx.store.stats().await.unwrap();
        assert_eq!((stats.outbox_pending, stats.outbox_failed), (1, 2));
        let metrics = ctx
            .metrics
            .render(&stats, ctx.config.levels.keys().copied());
        assert!(
            metrics.contains("spotter_outbox_failures_total{outcome=\"dead\"} 2"),
            "{metrics}"
        );
        assert!(
            metrics.contains("spotter_outbox_messages{state=\"failed\"} 2"),
            "{metrics}"
        );
        assert!(
            metrics.contains("spotter_incidents{level=\"1\",state=\"declared\"} 1"),
            "{metrics}"
        );
    }
);

dual_test!(
    a_message_for_a_channel_without_a_notifier_fails,
    |ctx| async move {
        ctx.declare(1, "Slow pages").await;
        let d = ctx
            .bare_dispatcher()
            .with_notifier(Channel::Discord, RecordingNotifier::working());
        ctx.drain(&d, 20).await;
        let out: Vec<_> = ctx
            .outbox()
            .await
            .into_iter()
            .filter(|m| m.kind != MessageKind::Page)
            .collect();
        assert!(!out.is_empty());
        for m in &out {
            assert_eq!(m.state, DeliveryState::Failed);
            assert_eq!(m.attempts, 1);
            assert!(
                m.last_error
                    .as_deref()
                    .unwrap_or("")
                    .contains("no notifier for channel `log`"),
                "{m:#?}"
            );
        }
    }
);

// ── 9. Idempotency ─────────────────────────────────────────────────────────────────────────────

dual_test!(
    messages_with_the_same_idempotency_key_are_stored_once,
    |ctx| async move {
        let cs = Changeset {
            outbox: vec![
                chat_message("chat:INC-1:v1:0", "first"),
                chat_message("chat:INC-1:v1:0", "second"),
            ],
            ..Default::default()
        };
        ctx.store
            .commit(cs)
            .await
            .expect("a duplicate key is dropped, not an error");
        let again = Changeset {
            outbox: vec![chat_message("chat:INC-1:v1:0", "third")],
            ..Default::default()
        };
        ctx.store.commit(again).await.unwrap();
        let out = ctx.outbox().await;
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].text, "first");

        let other = Changeset {
            outbox: vec![chat_message("chat:INC-1:v1:1", "fourth")],
            ..Default::default()
        };
        ctx.store.commit(other).await.unwrap();
        assert_eq!(ctx.outbox().await.len(), 2);
    }
);

// ── 10. Atomicity ──────────────────────────────────────────────────────────────────────────────

fn ghost_changeset(
    ctx: &common::Ctx,
    incident: Option<IncidentWrite>,
    timeline_for: i64,
) -> Changeset {
    let now = ctx.clock.now();
    Changeset {
        at: None,
        incident,
        timeline: vec![TimelineEntry {
            incident: IncidentRef::new(timeline_for),
            at: now,
            actor: "ghost".into(),
            kind: EventKind::Update,
            text: "ghost event".into(),
            public: false,
        }],
        audit: vec![AuditRecord {
            at: now,
            actor: "ghost".into(),
            action: "incident.ghost".into(),
            subject: "INC-1".into(),
            detail: serde_json::json!({}),
        }],
        outbox: vec![chat_message("ghost-message", "ghost message")],
        jobs: vec![JobChange::Schedule(NewJob {
            key: "ghost-job".into(),
            incident: Some(IncidentRef::new(1)),
            due_at: now,
            payload: JobPayload::RtoBreach,
        })],
        ..Default::default()
    }
}

async fn assert_no_ghosts(ctx: &common::Ctx, before: &common::Snapshot) {
    assert_eq!(&ctx.snapshot().await, before);
    assert!(ctx
        .store
        .timeline(IncidentRef::new(1))
        .await
        .unwrap()
        .iter()
        .all(|t| t.actor != "ghost"));
    assert!(ctx
        .store
        .audit_log()
        .await
        .unwrap()
        .entries
        .iter()
        .all(|e| e.actor != "ghost"));
    assert!(ctx.outbox().await.iter().all(|m| m.text != "ghost message"));
    assert!(ctx
        .store
        .pending_jobs()
        .await
        .unwrap()
        .iter()
        .all(|j| j.key != "ghost-job"));
    ctx.audit_verifies().await;
}

dual_test!(
    a_changeset_whose_incident_insert_conflicts_writes_nothing,
    |ctx| async move {
        let existing = ctx.declare(3, "MySQL down").await;
        let before = ctx.snapshot().await;
        let dup = Incident::declare(
            IncidentRef::new(1),
            LevelId(1),
            Duration::minutes(15),
            "duplicate".into(),
            vec![],
            None,
            Source::Api,
            "ghost".into(),
            ctx.clock.now(),
        );
        let err = ctx
            .store
            .commit(ghost_changeset(&ctx, Some(IncidentWrite::Insert(dup)), 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(_)),
            "expected Conflict, got {err:?}"
        );
        assert_no_ghosts(&ctx, &before).await;
        assert_eq!(ctx.incident(1).await, existing);
    }
);

dual_test!(
    a_changeset_with_a_stale_incident_version_conflicts_and_writes_nothing,
    |ctx| async move {
        let stale = ctx.declare(3, "MySQL down").await;
        ctx.ok("dev", "/incident ack").await;
        let before = ctx.snapshot().await;
        let mut edit = stale.clone();
        edit.title = "lost update".into();
        let err = ctx
            .store
            .commit(ghost_changeset(&ctx, Some(IncidentWrite::Update(edit)), 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(_)),
            "expected Conflict, got {err:?}"
        );
        assert_no_ghosts(&ctx, &before).await;
    }
);

dual_test!(
    a_changeset_failing_after_its_incident_write_rolls_the_write_back,
    |ctx| async move {
        let current = ctx.declare(3, "MySQL down").await;
        let before = ctx.snapshot().await;
        let mut edit = current.clone();
        edit.title = "half-written".into();
        // The incident update succeeds, then the timeline row names an incident that does not
        // exist (a foreign-key violation): the whole transaction must roll back.
        let err = ctx
            .store
            .commit(ghost_changeset(&ctx, Some(IncidentWrite::Update(edit)), 99))
            .await
            .unwrap_err();
        assert!(
            !matches!(err, StoreError::Conflict(_)),
            "a foreign-key violation is not a write race: {err:?}"
        );
        assert_no_ghosts(&ctx, &before).await;
        assert_eq!(ctx.incident(1).await, current);
    }
);

// ── 11. Audit tampering ────────────────────────────────────────────────────────────────────────

async fn four_audited_commands(ctx: &common::Ctx) {
    ctx.declare(3, "MySQL down").await;
    ctx.ok("dev", "/incident ack").await;
    ctx.ok("dev", r#"/incident update text:"restarting""#).await;
    ctx.ok("dba", "/incident resolve").await;
    assert_eq!(ctx.audit_verifies().await, 4);
}

fn violation(log: &spotter_core::store::AuditLog) -> audit::Violation {
    audit::verify(
        &common::audit_key(),
        &log.entries,
        log.head_seq,
        &log.head_hash,
    )
    .expect_err("tampering must be detected")
}

dual_test!(
    editing_an_audit_row_by_hand_is_detected_at_that_row,
    |ctx| async move {
        four_audited_commands(&ctx).await;
        assert_eq!(
            ctx.tamper("UPDATE audit_log SET actor='mallory' WHERE seq=2")
                .await,
            1
        );
        let log = ctx.store.audit_log().await.unwrap();
        assert_eq!(log.entries[1].actor, "mallory");
        let v = violation(&log);
        assert_eq!(v.seq, 2, "{v}");
        assert!(v.problem.contains("edited"), "{v}");
    }
);

dual_test!(
    deleting_an_audit_row_in_the_middle_names_the_missing_row,
    |ctx| async move {
        four_audited_commands(&ctx).await;
        assert_eq!(ctx.tamper("DELETE FROM audit_log WHERE seq=3").await, 1);
        let v = violation(&ctx.store.audit_log().await.unwrap());
        assert_eq!(v.seq, 3, "{v}");
        assert!(v.problem.contains("missing"), "{v}");
    }
);

dual_test!(
    cutting_audit_rows_off_the_end_disagrees_with_the_head,
    |ctx| async move {
        four_audited_commands(&ctx).await;
        assert_eq!(ctx.tamper("DELETE FROM audit_log WHERE seq=4").await, 1);
        let v = violation(&ctx.store.audit_log().await.unwrap());
        assert_eq!(v.seq, 4, "{v}");
        assert!(v.problem.contains("deleted at the end"), "{v}");
    }
);

// ── 12. Competing dispatchers ──────────────────────────────────────────────────────────────────

dual_test!(multi_thread two_dispatchers_claiming_at_once_never_get_the_same_message, |ctx| async move {
    for i in 0..10 {
        ctx.declare(3, &format!("outage {i}")).await;
    }
    let total = ctx.outbox().await.len();
    assert_eq!(total, 10 * 6, "per incident: a card update, a chat post (declared and paged) and 4 pages");

    // Each owner claims small batches and marks them delivered, until nothing is pending. A
    // shared counter records the order in which claims were handed out, across both owners.
    let order = Arc::new(AtomicUsize::new(0));
    let claimer = |owner: &'static str| {
        let ctx = ctx.clone();
        let order = order.clone();
        tokio::spawn(async move {
            let mut mine: Vec<(usize, i64)> = Vec::new();
            for _ in 0..10_000 {
                let mut batch = ctx.store.claim_outbox(ctx.clock.now(), Duration::seconds(60), owner, 3, spotter_core::store::Lane::Chat).await.unwrap();
                if batch.is_empty() {
                    batch = ctx.store.claim_outbox(ctx.clock.now(), Duration::seconds(60), owner, 3, spotter_core::store::Lane::Pages).await.unwrap();
                }
                if batch.is_empty() {
                    if ctx.store.stats().await.unwrap().outbox_pending == 0 {
                        return mine;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                for m in &batch {
                    mine.push((order.fetch_add(1, Ordering::SeqCst), m.id));
                }
                for m in batch {
                    assert!(ctx
                        .store
                        .outbox_delivered(m.id, owner, ctx.clock.now())
                        .await
                        .unwrap());
                }
            }
            panic!("{owner} never saw the outbox drain");
        })
    };
    let (a, b) = (claimer("dispatcher-a"), claimer("dispatcher-b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());

    let sa: HashSet<i64> = a.iter().map(|x| x.1).collect();
    let sb: HashSet<i64> = b.iter().map(|x| x.1).collect();
    assert_eq!(sa.len(), a.len(), "dispatcher-a claimed a message twice");
    assert_eq!(sb.len(), b.len(), "dispatcher-b claimed a message twice");
    let both: Vec<_> = sa.intersection(&sb).collect();
    assert!(both.is_empty(), "claimed by both: {both:?}");
    assert_eq!(sa.len() + sb.len(), total);
    assert!(ctx.outbox().await.iter().all(|m| m.state == DeliveryState::Delivered));

    // Across both owners, the messages of one ordering key (one chat target here) were handed
    // out in creation order. (Pages have an ordering key each: they never wait for each other.)
    let claimed_at: HashMap<i64, usize> = a.iter().chain(b.iter()).map(|(seq, id)| (*id, *seq)).collect();
    let mut by_target: HashMap<String, Vec<(usize, i64)>> = HashMap::new();
    for m in ctx.outbox().await.into_iter().filter(|m| m.kind != MessageKind::Page) {
        by_target.entry(m.target.clone()).or_default().push((claimed_at[&m.id], m.id));
    }
    for (target, mut claims) in by_target {
        claims.sort();
        let ids: Vec<i64> = claims.iter().map(|c| c.1).collect();
        let mut created = ids.clone();
        created.sort();
        assert_eq!(ids, created, "{target}: claimed out of order");
    }
});

dual_test!(multi_thread two_dispatchers_ticking_at_once_deliver_every_message_once, |ctx| async move {
    for i in 0..6 {
        ctx.declare(2, &format!("outage {i}")).await;
    }
    // Chat-lane dispatchers (the pages lane has its own test in paging.rs).
    let chat = |ctx: &common::Ctx| {
        let ctx = ctx.clone();
        async move {
            ctx.outbox()
                .await
                .into_iter()
                .filter(|m| m.kind != MessageKind::Page)
                .collect::<Vec<_>>()
        }
    };
    let total = chat(&ctx).await.len();
    let (na, nb) = (RecordingNotifier::working(), RecordingNotifier::working());
    let (da, db) = (Arc::new(ctx.dispatcher(na.clone())), Arc::new(ctx.dispatcher(nb.clone())));
    let spin = |d: Arc<spotter_core::outbox::Dispatcher>| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            for _ in 0..10_000 {
                if d.tick().await.unwrap() == 0 {
                    if ctx.outbox().await.iter().all(|m| m.kind == MessageKind::Page || m.state != DeliveryState::Pending) {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
            }
            panic!("the outbox never drained");
        })
    };
    let (ta, tb) = (spin(da), spin(db));
    ta.await.unwrap();
    tb.await.unwrap();
    let mut ids: Vec<i64> = na.delivered().iter().chain(nb.delivered().iter()).map(|m| m.id).collect();
    ids.sort();
    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "a message was delivered twice");
    assert_eq!(ids.len(), total);
    assert!(chat(&ctx).await.iter().all(|m| m.state == DeliveryState::Delivered && m.attempts == 1));
});

// ── Regressions: races found while writing this suite ────────────────────────

dual_test!(
    multi_thread sixteen_concurrent_updates_of_one_incident_all_succeed,
    |ctx| async move {
        ctx.declare(3, "MySQL down").await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let line = format!("/incident update incident:INC-1 text:\"note {i}\"");
                    ctx.engine.execute_line(&ctx.actor("dev"), &line, &CommandContext::default()).await
                })
            })
            .collect();
        let mut failures = Vec::new();
        for t in tasks {
            match t.await.expect("an update task") {
                Ok(r) if r.ok => {}
                Ok(r) => failures.push(format!("refused: {}", r.text)),
                Err(e) => failures.push(format!("store error: {e}")),
            }
        }
        assert!(failures.is_empty(), "{} of 16 concurrent updates failed: {failures:#?}", failures.len());
        assert_eq!(ctx.incident(1).await.version, 17);
        assert_eq!(ctx.audit_verifies().await, 17);
    }
);

dual_test!(
    an_rto_job_rescheduled_while_its_run_is_in_flight_still_fires_at_the_new_deadline,
    |ctx| async move {
        let inc = ctx.declare(1, "Slow pages").await; // RTO 15m
        ctx.clock.advance(Duration::minutes(16));
        // The scheduler has claimed the due RTO job…
        let claimed = ctx
            .store
            .claim_jobs(ctx.clock.now(), Duration::seconds(60), "scheduler-x", 64)
            .await
            .unwrap();
        let rto = claimed
            .iter()
            .find(|j| j.key.starts_with("rto:"))
            .expect("the RTO job is due")
            .clone();
        // …when a commander escalates: the deadline moves to declared + 4h and the job is rescheduled.
        ctx.ok("dba", "/incident escalate level:4").await;
        assert!(ctx
            .store
            .pending_jobs()
            .await
            .unwrap()
            .iter()
            .any(|j| j.key == rto.key));
        // The in-flight run finds the new deadline not yet passed, and completes "its" job.
        ctx.engine.run_job(&rto).await.unwrap();
        assert!(
            ctx.store
                .pending_jobs()
                .await
                .unwrap()
                .iter()
                .any(|j| j.key == rto.key),
            "the rescheduled RTO job must stay pending"
        );
        ctx.clock
            .set(inc.declared_at + Duration::hours(4) + Duration::minutes(1));
        ctx.scheduler().tick().await.unwrap();
        assert!(
            ctx.timeline_kinds(1)
                .await
                .contains(&EventKind::RtoBreached),
            "the 4h deadline passed unreported"
        );
    }
);
