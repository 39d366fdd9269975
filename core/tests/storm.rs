//! An alert storm stays bounded: an incident's card reads three counts and a handful of alerts,
//! however many feed it. SQLite and PostgreSQL alike.

mod common;

use chrono::Duration;
use spotter_core::clock::Clock;
use spotter_core::domain::{AlertStatus, IncidentRef};
use spotter_core::store::{AlertRecord, Changeset, Store};

fn alert(r: IncidentRef, n: usize, at: chrono::DateTime<chrono::Utc>) -> AlertRecord {
    AlertRecord {
        source: "alertmanager".into(),
        fingerprint: format!("fp-{r}-{n:05}"),
        status: AlertStatus::Firing,
        labels: [("host".to_string(), format!("host-{n}"))].into(),
        annotations: Default::default(),
        summary: format!("DiskFull host-{n}"),
        group_key: format!("storm-{r}"),
        incident: Some(r),
        starts_at: None,
        ends_at: None,
        first_seen_at: at,
        changed_at: at,
        recent_changes: vec![],
        flapping: false,
        suppressed_by: None,
        version: 0,
    }
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
