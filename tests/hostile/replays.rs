//! Replays of signed requests that the in-memory cache cannot see: after a restart, and at another
//! replica. Both are refused by the signatures remembered in the database; a database that
//! cannot answer that question makes the request wait (503), never lets it through.
//!
//! Each test replays a *firing* notification after the alert was resolved: accepted, the replay
//! would fire the alert again.

use crate::common::{self, TestApp};
use crate::dual_test;
use crate::http::{now, sample, secret, sign, GENERIC};
use serde_json::Value;

const FIRING: &str =
    r#"{"summary":"Nightly backup failed","component":"database","dedup_key":"nightly"}"#;
const RESOLVED: &str = r#"{"summary":"Nightly backup failed","component":"database","dedup_key":"nightly","status":"resolved"}"#;

/// One signed delivery, kept so it can be sent again byte for byte.
struct Delivery {
    ts: i64,
    signature: String,
    body: &'static str,
}

impl Delivery {
    fn signed(app: &TestApp, ts: i64, body: &'static str) -> Delivery {
        Delivery {
            ts,
            signature: sign(&secret(app, "backup-jobs"), ts, body),
            body,
        }
    }

    async fn send(&self, app: &TestApp, base: &str) -> reqwest::Response {
        app.client
            .post(format!("{base}{GENERIC}"))
            .header("content-type", "application/json")
            .header("x-spotter-timestamp", self.ts.to_string())
            .header("x-spotter-signature", &self.signature)
            .body(self.body)
            .send()
            .await
            .unwrap()
    }
}

/// The one alert's status, and how many alerts there are.
async fn alert_statuses(app: &TestApp) -> Vec<String> {
    let alerts = app.get_json("/api/v1/alerts").await;
    alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap().to_string())
        .collect()
}

async fn assert_replayed(r: reqwest::Response) {
    assert_eq!(r.status(), 401, "the replay was not refused");
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"].as_str().unwrap().starts_with("replayed request"),
        "{e}"
    );
}

/// Fires and then resolves the alert; returns the firing delivery, for replaying.
async fn fire_then_resolve(app: &TestApp) -> Delivery {
    let ts = now();
    let firing = Delivery::signed(app, ts, FIRING);
    assert_eq!(firing.send(app, &app.addr).await.status(), 200);
    let resolved = Delivery::signed(app, ts + 1, RESOLVED);
    assert_eq!(resolved.send(app, &app.addr).await.status(), 200);
    assert_eq!(alert_statuses(app).await, ["resolved"]);
    firing
}

dual_test!(
    a_signed_request_replayed_after_a_restart_is_refused_and_stores_nothing,
    mut |app| async {
        let firing = fire_then_resolve(&app).await;
        app.restart().await;
        assert_replayed(firing.send(&app, &app.addr).await).await;
        assert_eq!(
            alert_statuses(&app).await,
            ["resolved"],
            "the replay fired the alert again"
        );
        assert_eq!(app.incidents("all").await.len(), 1);
        let m = app.metrics().await;
        assert_eq!(
            sample(
                &m,
                "spotter_webhook_rejections_total{source=\"backup-jobs\",reason=\"replayed\"}"
            ),
            1.0,
            "{m}"
        );
        // Signed afresh, the same alert is welcome.
        let again = Delivery::signed(&app, now() + 2, FIRING);
        assert_eq!(again.send(&app, &app.addr).await.status(), 200);
        assert_eq!(alert_statuses(&app).await, ["firing"]);
    }
);

dual_test!(
    a_signed_request_replayed_to_another_replica_is_refused,
    |app| async {
        let replica = app.replica(|_| {}).await;
        let firing = fire_then_resolve(&app).await;
        assert_replayed(firing.send(&app, &replica.addr).await).await;
        assert_eq!(
            alert_statuses(&app).await,
            ["resolved"],
            "the replica let the replay fire the alert again"
        );
        // Sent to both at once, a fresh delivery is accepted by exactly one.
        let fresh = Delivery::signed(&app, now() + 5, FIRING);
        let (a, b) = tokio::join!(fresh.send(&app, &app.addr), fresh.send(&app, &replica.addr));
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 401]);
        replica.stop().await;
    }
);

/// Renames the table of remembered signatures away (or back, `away = false`), as a storage fault
/// the server cannot see coming.
async fn rename_signatures(app: &TestApp, away: bool) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let sql = if away {
        "ALTER TABLE seen_signatures RENAME TO seen_signatures_away"
    } else {
        "ALTER TABLE seen_signatures_away RENAME TO seen_signatures"
    };
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

dual_test!(
    a_signature_that_cannot_be_remembered_is_503_and_stores_nothing,
    |app| async {
        rename_signatures(&app, true).await;
        let firing = Delivery::signed(&app, now(), FIRING);
        let r = firing.send(&app, &app.addr).await;
        assert_eq!(r.status(), 503, "a signature not remembered was accepted");
        assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
        assert!(alert_statuses(&app).await.is_empty(), "an alert was stored");
        assert!(app.incidents("all").await.is_empty());
        // Once storage is back, the sender's retry of the very same delivery goes through.
        rename_signatures(&app, false).await;
        assert_eq!(firing.send(&app, &app.addr).await.status(), 200);
        assert_eq!(alert_statuses(&app).await, ["firing"]);
    }
);

dual_test!(
    a_signed_request_told_to_retry_is_heard_when_retried_byte_for_byte,
    options = common::Options {
        configure: Some(Box::new(|c| {
            let src = c
                .sources
                .iter_mut()
                .find(|s| s.id == "backup-jobs")
                .expect("the default generic source");
            src.rate_per_second = 1.0;
            src.burst = 1;
        })),
        ..Default::default()
    },
    |app| async {
        let ts = now();
        let first = Delivery::signed(&app, ts, FIRING);
        assert_eq!(first.send(&app, &app.addr).await.status(), 200);
        // Over the source's rate: 429, nothing stored, "retry later".
        let second = Delivery::signed(&app, ts + 1, RESOLVED);
        let r = second.send(&app, &app.addr).await;
        assert_eq!(r.status(), 429);
        let wait: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(alert_statuses(&app).await, ["firing"]);
        // The sender does as told, with the same signed bytes: heard, not taken for a replay.
        tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 200)).await;
        let r = second.send(&app, &app.addr).await;
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        assert_eq!(alert_statuses(&app).await, ["resolved"]);
        // Once accepted, the same bytes again are a replay.
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        assert_replayed(second.send(&app, &app.addr).await).await;
    }
);
