//! Upkeep under failure, on both backends: delivery outcomes fenced by the lease, jobs that keep
//! failing dead-lettered instead of retried forever, unreadable jobs set aside, and retention
//! deleting only what is finished and old.

#[macro_use]
mod common;

use chrono::Duration;
use common::RecordingNotifier;
use spotter_core::clock::Clock;
use spotter_core::domain::EventKind;
use spotter_core::store::{DeliveryState, Store};

dual_test!(
    a_dispatcher_whose_lease_ran_out_records_nothing,
    |ctx| async move {
        ctx.declare(1, "Slow pages").await;
        let now = ctx.clock.now();
        let a = ctx
            .store
            .claim_outbox(now, Duration::seconds(1), "replica-a", 1, spotter_core::store::Lane::Chat)
            .await
            .unwrap();
        assert_eq!(a.len(), 1);
        let id = a[0].id;
        // A's lease runs out; B takes the message.
        let later = now + Duration::seconds(5);
        let b = ctx
            .store
            .claim_outbox(later, Duration::seconds(60), "replica-b", 1, spotter_core::store::Lane::Chat)
            .await
            .unwrap();
        assert_eq!(b.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id]);
        // A finally hears back: neither its success nor its failure counts.
        assert!(!ctx
            .store
            .outbox_delivered(id, "replica-a", later)
            .await
            .unwrap());
        assert!(!ctx
            .store
            .outbox_attempt_failed(id, "replica-a", later, "late", None)
            .await
            .unwrap());
        let m = ctx.outbox().await.into_iter().find(|m| m.id == id).unwrap();
        assert_eq!(m.state, DeliveryState::Pending, "{m:#?}");
        assert_eq!(m.attempts, 0);
        // B, which holds the lease, records it.
        assert!(ctx
            .store
            .outbox_delivered(id, "replica-b", later)
            .await
            .unwrap());
        let m = ctx.outbox().await.into_iter().find(|m| m.id == id).unwrap();
        assert_eq!(m.state, DeliveryState::Delivered);
        assert_eq!(m.attempts, 1);
    }
);

/// Makes completing `key` fail in the database, as a persistent fault would.
async fn break_completion_of(ctx: &common::Ctx, key: &str) {
    let sql = if ctx.url.starts_with("sqlite:") {
        format!(
            "CREATE TRIGGER break_job BEFORE UPDATE OF state ON jobs \
             WHEN NEW.state = 'done' AND NEW.job_key = '{key}' \
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END;"
        )
    } else {
        format!(
            "CREATE FUNCTION break_job() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.state = 'done' AND NEW.job_key = '{key}' THEN RAISE EXCEPTION 'injected fault'; END IF; \
               RETURN NEW; END; $$; \
             CREATE TRIGGER break_job BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION break_job();"
        )
    };
    ctx.raw_sql(&sql).await;
}

dual_test!(
    a_job_that_keeps_failing_is_dead_lettered_after_its_attempts,
    |ctx| async move {
        let inc = ctx.declare(1, "Cache slow").await;
        break_completion_of(&ctx, "rto:INC-1:deadline").await;
        ctx.clock.set(inc.rto_deadline + Duration::seconds(1));
        let scheduler = ctx.scheduler();
        let max = ctx.config.jobs.max_attempts as i64;
        for attempt in 1..=max {
            scheduler.tick().await.unwrap();
            let state = ctx
                .scalar("SELECT CASE WHEN state = 'dead' THEN 1 ELSE 0 END FROM jobs WHERE job_key = 'rto:INC-1:deadline'")
                .await;
            assert_eq!(state == 1, attempt == max, "after attempt {attempt}");
            // The next attempt comes after the lease.
            ctx.clock.advance(Duration::seconds(61));
        }
        // Given up, on the record; no further attempts.
        let kinds = ctx.timeline_kinds(1).await;
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == EventKind::JobDeadLettered)
                .count(),
            1,
            "{kinds:?}"
        );
        assert!(!kinds.contains(&EventKind::RtoBreached));
        let attempts = ctx
            .scalar("SELECT attempts FROM jobs WHERE job_key = 'rto:INC-1:deadline'")
            .await;
        assert_eq!(attempts, max);
        scheduler.tick().await.unwrap();
        assert_eq!(
            ctx.scalar("SELECT attempts FROM jobs WHERE job_key = 'rto:INC-1:deadline'")
                .await,
            max
        );
        let metrics = ctx.metrics.render(
            &ctx.store.stats().await.unwrap(),
            ctx.config.levels.keys().copied(),
        );
        assert!(
            metrics.contains(r#"spotter_jobs_dead_lettered_total{kind="rto_breach"} 1"#),
            "{metrics}"
        );
        assert_eq!(ctx.audit_verifies().await, 2, "declare + dead letter");
    }
);

dual_test!(
    an_unreadable_job_is_set_aside_and_the_others_still_run,
    |ctx| async move {
        let inc = ctx.declare(1, "Cache slow").await;
        ctx.raw_sql(
            "INSERT INTO jobs (job_key, kind, incident, due_at, payload, state, attempts, created_at) \
             VALUES ('poison', 'escalation_tier', 1, 0, '{}', 'pending', 0, 0)",
        )
        .await;
        ctx.clock.set(inc.rto_deadline + Duration::seconds(1));
        ctx.scheduler().tick().await.unwrap();
        assert_eq!(
            ctx.scalar("SELECT CASE WHEN state = 'dead' THEN 1 ELSE 0 END FROM jobs WHERE job_key = 'poison'")
                .await,
            1
        );
        assert!(ctx
            .timeline_kinds(1)
            .await
            .contains(&EventKind::RtoBreached));
    }
);

dual_test!(
    retention_deletes_only_what_is_finished_and_old,
    |ctx| async move {
        ctx.declare(1, "Old").await;
        ctx.ok("dba", r#"/incident resolve summary:"fixed""#).await;
        ctx.drain(&ctx.dispatcher(RecordingNotifier::working()), 20)
            .await;
        let delivered = ctx.outbox().await.len() as i64;
        assert!(delivered > 0);
        let now = ctx.clock.now();
        assert!(ctx
            .store
            .remember_signature(
                "gone",
                now - Duration::minutes(10),
                now - Duration::minutes(20)
            )
            .await
            .unwrap());
        // A month later a new incident is open, its messages still pending.
        ctx.clock.advance(Duration::days(31));
        ctx.declare(2, "New").await;
        let pending = ctx
            .scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
            .await;
        assert!(pending > 0);
        let finished_jobs = ctx
            .scalar("SELECT COUNT(*) FROM jobs WHERE state <> 'pending'")
            .await;
        assert!(finished_jobs > 0, "resolving cancelled the jobs of INC-1");

        let deleted = ctx.scheduler().sweep().await.unwrap();
        assert_eq!(
            ctx.scalar("SELECT COUNT(*) FROM outbox WHERE state = 'delivered'")
                .await,
            0
        );
        assert_eq!(
            ctx.scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
                .await,
            pending,
            "undelivered messages are never deleted"
        );
        assert_eq!(
            ctx.scalar("SELECT COUNT(*) FROM jobs WHERE state <> 'pending'")
                .await,
            0
        );
        assert!(
            ctx.scalar("SELECT COUNT(*) FROM jobs WHERE state = 'pending'")
                .await
                > 0
        );
        assert_eq!(ctx.scalar("SELECT COUNT(*) FROM seen_signatures").await, 0);
        assert_eq!(deleted as i64, delivered + finished_jobs + 1);
        // Incidents, their timelines and the audit log are history: kept.
        assert_eq!(
            ctx.timeline_kinds(1).await.first(),
            Some(&EventKind::Declared)
        );
        ctx.audit_verifies().await;
        // A second sweep finds nothing.
        assert_eq!(ctx.scheduler().sweep().await.unwrap(), 0);
    }
);
