//! One notification, one transaction: the alerts of a notification are decided together and
//! written in one unit, and what they tell the timeline is coalesced per incident. SQLite and
//! PostgreSQL alike.

mod common;

use spotter_core::alerts::{AlertAction, AlertBatch, IncomingAlert};
use spotter_core::domain::{EventKind, Phase};
use spotter_core::store::Store;
use std::collections::BTreeMap;

fn alert(name: &str, service: &str, instance: &str, action: AlertAction) -> IncomingAlert {
    let labels: BTreeMap<String, String> = [
        ("alertname", name),
        ("service", service),
        ("instance", instance),
        ("severity", "critical"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    IncomingAlert {
        fingerprint: Some(format!("{name}-{service}-{instance}")),
        action,
        labels,
        annotations: [("summary".to_string(), format!("{name} on {instance}"))].into(),
        starts_at: None,
        ends_at: None,
        generator_url: None,
    }
}

fn batch(alerts: Vec<IncomingAlert>) -> AlertBatch {
    AlertBatch {
        source: "alertmanager".into(),
        group_key: None,
        alerts,
    }
}

fn storm(n: usize, action: AlertAction) -> AlertBatch {
    batch(
        (0..n)
            .map(|i| alert("MySQLDown", "database", &format!("db-{i}:9104"), action))
            .collect(),
    )
}

dual_test!(
    a_storm_of_ten_thousand_alerts_is_one_transaction_and_one_event,
    |ctx| async move {
        let before = ctx.store.group_commit_stats();
        let report = ctx
            .engine
            .ingest(&storm(10_000, AlertAction::Fire))
            .await
            .unwrap();
        let after = ctx.store.group_commit_stats();
        assert_eq!((report.alerts, report.changed), (10_000, 10_000));
        assert_eq!(report.incidents.len(), 1, "{report:?}");
        assert_eq!(
            (after.batches - before.batches, after.units - before.units),
            (1, 1),
            "the whole notification is one unit in one transaction"
        );
        let r = report.incidents[0];
        assert_eq!(ctx.store.incident_alerts(r).await.unwrap().len(), 10_000);
        let timeline = ctx.store.timeline(r).await.unwrap();
        let alerts: Vec<_> = timeline
            .iter()
            .filter(|t| t.kind == EventKind::Alert)
            .collect();
        assert_eq!(alerts.len(), 1, "{timeline:?}");
        assert!(
            alerts[0]
                .text
                .starts_with("10000 alerts firing: MySQLDown on db-0:9104 (instance=db-0:9104")
                && alerts[0].text.ends_with("… and 9990 more"),
            "{}",
            alerts[0].text
        );

        // The same notification again (Alertmanager's repeat): duplicates, nothing written.
        let before = ctx.store.group_commit_stats();
        let again = ctx
            .engine
            .ingest(&storm(10_000, AlertAction::Fire))
            .await
            .unwrap();
        assert_eq!((again.duplicates, again.changed), (10_000, 0));
        assert_eq!(
            ctx.store.group_commit_stats().units,
            before.units,
            "no write"
        );

        // All of them resolving: one transaction, one event, post-recovery monitoring.
        let before = ctx.store.group_commit_stats();
        let report = ctx
            .engine
            .ingest(&storm(10_000, AlertAction::Resolve))
            .await
            .unwrap();
        assert_eq!(report.changed, 10_000);
        assert_eq!(ctx.store.group_commit_stats().units - before.units, 1);
        let inc = ctx.store.incident(r).await.unwrap().unwrap();
        assert_eq!(
            inc.phase,
            Phase::PostRecoveryMonitoring,
            "every alert resolved"
        );
        let timeline = ctx.store.timeline(r).await.unwrap();
        let resolved: Vec<_> = timeline
            .iter()
            .filter(|t| t.kind == EventKind::Alert && t.text.contains("resolved"))
            .collect();
        assert_eq!(resolved.len(), 1, "{timeline:?}");
        assert!(resolved[0].text.starts_with("10000 alerts resolved: "));
        assert!(timeline
            .iter()
            .any(|t| t.text.starts_with(&format!("all alerts of {r} resolved"))));
        ctx.audit_verifies().await;
    }
);

dual_test!(
    one_notification_joins_one_incident_and_declares_another_together,
    |ctx| async move {
        let first = ctx
            .engine
            .ingest(&batch(vec![alert(
                "MySQLDown",
                "database",
                "db-1",
                AlertAction::Fire,
            )]))
            .await
            .unwrap();
        let open = first.incidents[0];
        let before = ctx.store.group_commit_stats();
        let report = ctx
            .engine
            .ingest(&batch(vec![
                alert("MySQLDown", "database", "db-2", AlertAction::Fire),
                alert("RedisDown", "cache", "cache-1", AlertAction::Fire),
                alert("MySQLDown", "database", "db-3", AlertAction::Fire),
                alert("RedisDown", "cache", "cache-2", AlertAction::Fire),
            ]))
            .await
            .unwrap();
        assert_eq!(ctx.store.group_commit_stats().units - before.units, 1);
        assert_eq!(report.changed, 4);
        assert_eq!(report.incidents.len(), 2, "{report:?}");
        assert_eq!(
            report.incidents[0], open,
            "the database alerts joined the open incident"
        );
        let new = report.incidents[1];
        assert_eq!(ctx.store.incident_alerts(open).await.unwrap().len(), 3);
        assert_eq!(ctx.store.incident_alerts(new).await.unwrap().len(), 2);
        let declared = ctx.store.timeline(new).await.unwrap();
        assert!(
            declared.iter().any(|t| t.kind == EventKind::Alert
                && t.text.starts_with("2 alerts firing: RedisDown on cache-1")),
            "{declared:?}"
        );
        let joined = ctx.store.timeline(open).await.unwrap();
        assert!(
            joined
                .iter()
                .any(|t| t.text.starts_with("2 alerts firing: MySQLDown on db-2")),
            "{joined:?}"
        );
        ctx.audit_verifies().await;
    }
);

dual_test!(
    an_alert_named_twice_in_one_notification_is_decided_in_order,
    |ctx| async move {
        let report = ctx
            .engine
            .ingest(&batch(vec![
                alert("MySQLDown", "database", "db-1", AlertAction::Fire),
                alert("MySQLDown", "database", "db-2", AlertAction::Fire),
                alert("MySQLDown", "database", "db-1", AlertAction::Resolve),
            ]))
            .await
            .unwrap();
        assert_eq!(report.changed, 3, "{report:?}");
        let r = report.incidents[0];
        let alerts = ctx.store.incident_alerts(r).await.unwrap();
        let db1 = alerts
            .iter()
            .find(|a| a.fingerprint.contains("db-1"))
            .unwrap();
        assert_eq!(db1.status.as_str(), "resolved", "the later state wins");
        let inc = ctx.store.incident(r).await.unwrap().unwrap();
        assert_ne!(inc.phase, Phase::PostRecoveryMonitoring, "db-2 still fires");
    }
);

// Two incidents declared by one notification, with an immediate-response runbook whose lock
// target they share: the first starts it, the second is told it did not start (before, the
// second's run collided with the first's inside the one unit, and the notification was retried
// until it gave up with a 503).
dual_test!(
    declarations_in_one_notification_see_each_others_runs,
    |ctx| async move {
        use spotter_core::clock::Clock;
        use spotter_core::runbook::Runbooks;
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        Runbooks::builtin(&ctx.config, dir.path()).unwrap();
        let path = dir.path().join("emergency-response.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("target = \"{{incident}}\""),
            "the built-in's target changed"
        );
        std::fs::write(
            &path,
            text.replace("target = \"{{incident}}\"", "target = \"the-site\""),
        )
        .unwrap();
        let runbooks = Runbooks::load_dir(dir.path(), &ctx.config)
            .unwrap_or_else(|e| panic!("the edited runbooks load: {e:?}"));
        assert_eq!(
            ctx.config.runbooks.on_declare.as_deref(),
            Some("emergency-response")
        );
        let engine = spotter_core::Engine::new(
            ctx.store.clone() as Arc<dyn Store>,
            ctx.config.clone(),
            ctx.clock.clone() as Arc<dyn Clock>,
            ctx.metrics.clone(),
        )
        .with_runbooks(runbooks);
        let report = engine
            .ingest(&batch(vec![
                alert("MySQLDown", "database", "db-1", AlertAction::Fire),
                alert("RedisDown", "cache", "cache-1", AlertAction::Fire),
            ]))
            .await
            .unwrap();
        assert_eq!(report.incidents.len(), 2, "{report:?}");
        let runs = ctx
            .store
            .runs(spotter_core::store::RunFilter {
                active: false,
                incident: None,
                limit: 100,
            })
            .await
            .unwrap();
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].incident, Some(report.incidents[0]));
        let second = ctx.store.timeline(report.incidents[1]).await.unwrap();
        assert!(
            second.iter().any(|t| t
                .text
                .contains("did not start: another run of it is active")),
            "{second:?}"
        );
    }
);

dual_test!(
    multi_thread alerts_joining_an_incident_concurrently_leave_its_version_and_all_land,
    |ctx| async move {
        let first = ctx
            .engine
            .ingest(&batch(vec![alert("DiskFull", "database", "db-0", AlertAction::Fire)]))
            .await
            .unwrap();
        let r = first.incidents[0];
        let before = ctx.store.incident(r).await.unwrap().unwrap();
        // 32 notifications of one new alert each, all at once: they only join the incident, so
        // none waits for another's turn and none conflicts with another.
        let joins: Vec<_> = (1..=32)
            .map(|i| {
                let engine = ctx.engine.clone();
                tokio::spawn(async move {
                    let b = batch(vec![alert("DiskFull", "database", &format!("db-{i}"), AlertAction::Fire)]);
                    engine.ingest(&b).await
                })
            })
            .collect();
        for j in joins {
            let report = j.await.unwrap().expect("every join commits");
            assert_eq!(report.incidents, vec![r]);
        }
        let after = ctx.store.incident(r).await.unwrap().unwrap();
        assert_eq!(after, before, "joining alerts change nothing of the incident row");
        assert_eq!(ctx.store.incident_alerts(r).await.unwrap().len(), 33);
        // Each join still brings the card up to date (the card counts alerts): one card update
        // per join, none lost to another's idempotency key.
        let cards = ctx
            .outbox()
            .await
            .into_iter()
            .filter(|m| m.kind == spotter_core::store::MessageKind::CardUpdate && m.incident == Some(r))
            .count();
        assert_eq!(cards, 33, "the declaration's card and one per join");
        ctx.audit_verifies().await;
    }
);

dual_test!(
    multi_thread an_alert_joining_while_the_last_one_resolves_keeps_the_incident_out_of_quiet,
    |ctx| async move {
        // The incident has one firing alert; "it resolves" and "a new one fires" race. Whichever
        // is written second is decided again on what the first wrote (the store's checks), so
        // with the new alert firing the incident is never quiet, whatever the order.
        let first = ctx
            .engine
            .ingest(&batch(vec![alert("DiskFull", "database", "db-a", AlertAction::Fire)]))
            .await
            .unwrap();
        let r = first.incidents[0];
        let mut last = "db-a".to_string();
        for round in 0..8 {
            let next = format!("db-b{round}");
            let (e1, e2) = (ctx.engine.clone(), ctx.engine.clone());
            let (gone, new) = (last.clone(), next.clone());
            let a = tokio::spawn(async move {
                e1.ingest(&batch(vec![alert("DiskFull", "database", &gone, AlertAction::Resolve)]))
                    .await
            });
            let b = tokio::spawn(async move {
                e2.ingest(&batch(vec![alert("DiskFull", "database", &new, AlertAction::Fire)]))
                    .await
            });
            a.await.unwrap().unwrap();
            b.await.unwrap().unwrap();
            let inc = ctx.store.incident(r).await.unwrap().unwrap();
            assert_eq!(ctx.store.firing_alert_count(r).await.unwrap(), 1, "round {round}");
            assert_ne!(
                inc.phase,
                Phase::PostRecoveryMonitoring,
                "round {round}: an alert fires, yet the incident went quiet"
            );
            last = next;
        }
        ctx.audit_verifies().await;
    }
);
