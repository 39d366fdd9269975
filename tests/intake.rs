//! Alert intake through the real application on both backends: every status code, dedup,
//! grouping, resolution, reopen, flapping, maintenance windows and the dead man's switch.

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::Options;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use spotter_core::clock::ManualClock;
use std::sync::Arc;

const FIRING: &str = include_str!("fixtures/alertmanager-firing.json");
const RESOLVED: &str = include_str!("fixtures/alertmanager-resolved.json");
const PD_TRIGGER: &str = include_str!("fixtures/pagerduty-trigger.json");
const PD_RESOLVE: &str = include_str!("fixtures/pagerduty-resolve.json");
const GRAFANA: &str = include_str!("fixtures/grafana-firing.json");

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now()))
}

fn with_clock(c: &Arc<ManualClock>) -> Options {
    Options {
        clock: Some(c.clone()),
        ..Default::default()
    }
}

/// One Alertmanager alert in a version-4 payload.
fn am(status: &str, fingerprint: &str, labels: Value) -> String {
    json!({
        "version": "4", "groupKey": format!("gk-{fingerprint}"), "status": status, "receiver": "spotter", "truncatedAlerts": 0,
        "alerts": [{"status": status, "labels": labels, "annotations": {"summary": format!("{} is {status}", labels["alertname"].as_str().unwrap_or("x"))},
                    "startsAt": "2026-11-26T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fingerprint}]
    })
    .to_string()
}

async fn json_of(res: reqwest::Response) -> Value {
    res.json().await.unwrap()
}

dual_test!(
    firing_opens_one_incident_and_a_duplicate_changes_nothing,
    |app| async {
        let res = app.post_alertmanager(FIRING).await;
        assert_eq!(res.status(), 200);
        let r = json_of(res).await;
        assert_eq!(
            (
                r["alerts"].as_u64(),
                r["changed"].as_u64(),
                r["duplicates"].as_u64()
            ),
            (Some(2), Some(2), Some(0))
        );
        assert_eq!(r["incidents"], json!(["INC-1"]));

        let list = app.incidents("all").await;
        assert_eq!(list.len(), 1, "both alerts of the group feed one incident");
        let i = &list[0];
        assert_eq!(i["level"], 3, "severity=critical routes to level 3");
        assert_eq!(i["level_name"], "Complete System Failure");
        assert_eq!(i["source"], "alert");
        assert_eq!(i["components"], json!(["database"]));
        assert_eq!(i["title"], "MySQL is not answering");
        assert_eq!(i["declared_by"], "source:alertmanager");
        let before = app.timeline_kinds("INC-1").await;
        // Level 3's first tier has nobody reachable in the default configuration: its second
        // is paged by the declaration too. The notification's two alerts are one event
        // (coalesced per incident), naming both.
        assert_eq!(before, ["declared", "paged", "paged", "alert"]);
        let alert_event = app.incident("INC-1").await["timeline"][3]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            alert_event.starts_with("2 alerts firing: ")
                && alert_event.matches("MySQL").count() == 2,
            "{alert_event}"
        );

        // The HA twin's identical notification: no new incident, no timeline noise.
        let r = json_of(app.post_alertmanager(FIRING).await).await;
        assert_eq!(
            (r["changed"].as_u64(), r["duplicates"].as_u64()),
            (Some(0), Some(2))
        );
        assert_eq!(app.incidents("all").await.len(), 1);
        assert_eq!(app.timeline_kinds("INC-1").await, before);
        let alerts = app.get_json("/api/v1/alerts").await["alerts"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(alerts.len(), 2);
        assert!(alerts
            .iter()
            .all(|a| a["incident"] == "INC-1" && a["status"] == "firing"));
        let m = app.metrics().await;
        assert!(
            m.contains(
                r#"spotter_alerts_received_total{source="alertmanager",outcome="duplicate"} 2"#
            ),
            "{m}"
        );
    }
);

dual_test!(
    two_identical_notifications_at_once_open_one_incident,
    |app| async {
        let posts: Vec<_> = (0..8).map(|_| app.post_alertmanager(FIRING)).collect();
        for res in futures::future::join_all(posts).await {
            assert_eq!(res.status(), 200);
        }
        assert_eq!(app.incidents("all").await.len(), 1);
        let alert_events = app
            .timeline_kinds("INC-1")
            .await
            .iter()
            .filter(|k| *k == "alert")
            .count();
        assert_eq!(
            alert_events, 1,
            "the notification's alerts joined once (one coalesced event)"
        );
    }
);

dual_test!(
    resolution_enters_monitoring_then_resolves_after_the_quiet_period,
    options = with_clock(&CLOCK_A),
    |app| async {
        let c = CLOCK_A.clone();
        app.post_alertmanager(FIRING).await;
        // One of the two alerts resolves: still assessment.
        let one = RESOLVED.replacen("8a0b1c2d3e4f5061", "not-this-one", 1);
        let one: Value = serde_json::from_str(&one).unwrap();
        let mut first_only = one.clone();
        first_only["alerts"] = json!([one["alerts"][0].clone()]);
        assert_eq!(
            app.post_alertmanager(&first_only.to_string())
                .await
                .status(),
            200
        );
        assert_ne!(
            app.incident("INC-1").await["phase"],
            "post_recovery_monitoring"
        );
        // All resolved: post-recovery monitoring, said on the timeline.
        assert_eq!(app.post_alertmanager(RESOLVED).await.status(), 200);
        let i = app.incident("INC-1").await;
        assert_eq!(i["phase"], "post_recovery_monitoring");
        assert_eq!(i["state"], "declared");
        let last = i["timeline"].as_array().unwrap().last().unwrap()["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            last.contains("post-recovery monitoring") && last.contains("unless held open"),
            "{last}"
        );
        // After the quiet period it resolves by itself.
        c.advance(Duration::minutes(31));
        app.eventually("INC-1 resolves by itself", || async {
            app.incident("INC-1").await["state"] == "resolved"
        })
        .await;
        // A re-fire within the reopen window reopens it instead of declaring anew.
        c.advance(Duration::minutes(5));
        let r = json_of(app.post_alertmanager(FIRING).await).await;
        assert_eq!(r["incidents"], json!(["INC-1"]));
        assert_eq!(app.incident("INC-1").await["state"], "declared");
        assert!(app
            .timeline_kinds("INC-1")
            .await
            .contains(&"reopened".to_string()));
        assert_eq!(app.incidents("all").await.len(), 1);
    }
);

static CLOCK_A: std::sync::LazyLock<Arc<ManualClock>> = std::sync::LazyLock::new(clock);
static CLOCK_B: std::sync::LazyLock<Arc<ManualClock>> = std::sync::LazyLock::new(clock);
static CLOCK_C: std::sync::LazyLock<Arc<ManualClock>> = std::sync::LazyLock::new(clock);

dual_test!(
    a_person_can_hold_a_monitored_incident_open,
    options = with_clock(&CLOCK_B),
    |app| async {
        let c = CLOCK_B.clone();
        app.post_alertmanager(FIRING).await;
        app.post_alertmanager(RESOLVED).await;
        app.ok("dba", "/incident hold incident:INC-1").await;
        c.advance(Duration::minutes(40));
        // Give the scheduler a few polls: nothing may happen.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(app.incident("INC-1").await["state"], "declared");
    }
);

dual_test!(
    the_dead_mans_switch_declares_and_resolves,
    options = with_clock(&CLOCK_C),
    |app| async {
        let c = CLOCK_C.clone();
        let watchdog = am(
            "firing",
            "watchdog-1",
            json!({"alertname": "Watchdog", "severity": "none"}),
        );
        assert_eq!(app.post_alertmanager(&watchdog).await.status(), 200);
        assert!(
            app.incidents("all").await.is_empty(),
            "the heartbeat itself opens nothing"
        );
        c.advance(Duration::minutes(11));
        app.eventually("a silent pipeline is declared", || async {
            app.incidents("open").await.len() == 1
        })
        .await;
        let i = &app.incidents("open").await[0];
        assert_eq!(i["level"], 2);
        assert!(
            i["title"]
                .as_str()
                .unwrap()
                .starts_with("Monitoring pipeline silent"),
            "{i}"
        );
        // The heartbeat returns: resolved.
        app.post_alertmanager(&watchdog).await;
        assert_eq!(app.incident("INC-1").await["state"], "resolved");
    }
);

dual_test!(a_flapping_alert_stops_paging, |app| async {
    let labels = json!({"alertname": "CacheFlaps", "service": "redis", "severity": "error"});
    let post = |status: &str| am(status, "flappy", labels.clone());
    // Changes 1-3: declared, resolved (monitoring), fired again (back to assessment).
    for status in ["firing", "resolved", "firing"] {
        assert_eq!(app.post_alertmanager(&post(status)).await.status(), 200);
    }
    assert!(!app.timeline_kinds("INC-1").await.is_empty());
    // Change 4 within the window (default 4 in 30 m): flapping, and the timeline says so once.
    app.post_alertmanager(&post("resolved")).await;
    let texts: Vec<String> = app.incident("INC-1").await["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts.iter().filter(|t| t.contains("is flapping")).count(),
        1,
        "{texts:#?}"
    );
    assert_eq!(
        app.get_json("/api/v1/alerts").await["alerts"][0]["flapping"],
        true
    );
    // Closed by people; the flapping alert fires again: recorded, no new incident, no page.
    app.ok("dba", "/incident resolve incident:INC-1").await;
    app.ok("dba", "/incident close incident:INC-1").await;
    let r: Value = app
        .post_alertmanager(&post("firing"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["changed"], 1);
    assert_eq!(r["incidents"], json!([]));
    assert_eq!(app.incidents("all").await.len(), 1);
});

dual_test!(
    a_maintenance_window_suppresses_matching_alerts,
    |app| async {
        let v = app
            .ok(
                "dba",
                r#"/maintenance start component:database duration:2h reason:"MySQL upgrade""#,
            )
            .await;
        assert!(
            v["reply"]
                .as_str()
                .unwrap()
                .starts_with("Maintenance #1 started on database"),
            "{v}"
        );
        let r = json_of(app.post_alertmanager(FIRING).await).await;
        assert_eq!(r["suppressed"], 2);
        assert!(app.incidents("all").await.is_empty());
        let alerts = app.get_json("/api/v1/alerts").await;
        assert_eq!(alerts["alerts"][0]["suppressed_by"], 1);
        // Other components still page.
        let r = json_of(
            app.post_alertmanager(&am(
                "firing",
                "fe",
                json!({"alertname": "FrontendDown", "service": "frontend", "severity": "error"}),
            ))
            .await,
        )
        .await;
        assert_eq!(r["incidents"], json!(["INC-1"]));
        // The API shows and starts windows; responders may not.
        assert_eq!(
            app.get_json("/api/v1/maintenance").await["maintenance"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let res = app
            .post_json(
                "/api/v1/maintenance",
                &json!({"user": "dev", "components": ["cache"], "duration": "1h", "reason": "x"}),
            )
            .await;
        assert_eq!(res.status(), 403, "a role refusal is Forbidden");
        assert!(json_of(res).await["error"]
            .as_str()
            .unwrap()
            .contains("needs role commander"));
        let res = app.post_json("/api/v1/maintenance", &json!({"user": "sysadmin", "components": ["cache"], "duration": "1h", "reason": "redis restart"})).await;
        assert_eq!(res.status(), 201);
        app.ok("sysadmin", "/maintenance end id:1").await;
        let r = json_of(
            app.post_alertmanager(&am(
                "firing",
                "db2",
                json!({"alertname": "DiskFull", "service": "database", "severity": "warning"}),
            ))
            .await,
        )
        .await;
        assert_eq!(r["suppressed"], 0);
    }
);

fn secured() -> Options {
    Options {
        configure: Some(Box::new(|c| {
            c.sources = spotter_core::config::Config::from_toml(
                &format!(
                    "{}\n{}",
                    spotter_core::config::DEFAULT_TOML
                        .split("[[source]]")
                        .next()
                        .unwrap(),
                    r#"
[[source]]
id = "alertmanager"
kind = "alertmanager"
token_env = "AM_TOKEN"
max_body = "64KiB"

[[source]]
id = "am-basic"
kind = "alertmanager"
basic_user = "alertmanager"
basic_password_env = "AM_PASSWORD"

[[source]]
id = "grafana"
kind = "grafana"
hmac_secret_env = "GRAFANA_SECRET"

[[source]]
id = "grafana-ts"
kind = "grafana"
hmac_secret_env = "GRAFANA_SECRET"
timestamp_header = "X-Grafana-Alerting-Signature-Timestamp"

[[source]]
id = "uptime"
kind = "pagerduty"
routing_key_env = "PD_KEY"

[[source]]
id = "backups"
kind = "generic"
hmac_secret_env = "BACKUP_SECRET"

[[source]]
id = "slow"
kind = "generic"
hmac_secret_env = "BACKUP_SECRET"
rate = "1/m"
burst = 1
"#
                ),
                "test",
            )
            .unwrap()
            .sources;
        })),
        env: [
            ("AM_TOKEN", "am-secret-token"),
            ("AM_PASSWORD", "hunter2"),
            ("GRAFANA_SECRET", "grafana-secret"),
            ("PD_KEY", "R0123456789abcdef0123456789abcde"),
            ("BACKUP_SECRET", "backup-secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        clock: None,
    }
}

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

dual_test!(
    alertmanager_credentials_are_checked,
    options = secured(),
    |app| async {
        let a = &app;
        let post = |auth: Option<&'static str>| {
            let headers: Vec<(&str, &str)> =
                auth.map(|h| vec![("authorization", h)]).unwrap_or_default();
            async move {
                a.post_raw("/webhooks/alertmanager", &headers, FIRING.to_string())
                    .await
            }
        };
        for bad in [
            None,
            Some("Bearer wrong"),
            Some("Bearer am-secret-toke"),
            Some("Basic YWxlcnRtYW5hZ2VyOmh1bnRlcjI="),
        ] {
            let res = post(bad).await;
            assert_eq!(res.status(), 401, "{bad:?}");
            assert!(json_of(res).await["error"]
                .as_str()
                .unwrap()
                .contains("bearer token"));
        }
        assert!(
            app.incidents("all").await.is_empty(),
            "nothing half-written"
        );
        assert_eq!(post(Some("Bearer am-secret-token")).await.status(), 200);
        assert_eq!(app.incidents("all").await.len(), 1);

        // Basic auth (Alertmanager's basic_auth): alertmanager:hunter2.
        let other = am(
            "firing",
            "basic-1",
            json!({"alertname": "ApiSlow", "service": "api", "severity": "warning"}),
        );
        let res = app
            .post_raw(
                "/webhooks/alertmanager/am-basic",
                &[("authorization", "Basic YWxlcnRtYW5hZ2VyOndyb25n")],
                other.clone(),
            )
            .await;
        assert_eq!(res.status(), 401);
        let res = app
            .post_raw(
                "/webhooks/alertmanager/am-basic",
                &[("authorization", "Basic YWxlcnRtYW5hZ2VyOmh1bnRlcjI=")],
                other,
            )
            .await;
        assert_eq!(res.status(), 200);
    }
);

dual_test!(
    bad_requests_get_the_right_status_and_change_nothing,
    options = secured(),
    |app| async {
        let auth = [("authorization", "Bearer am-secret-token")];
        // 400 naming the field.
        let broken = FIRING.replacen(
            "\"status\": \"firing\",\n      \"labels\"",
            "\"status\": \"burning\",\n      \"labels\"",
            1,
        );
        let res = app.post_raw("/webhooks/alertmanager", &auth, broken).await;
        assert_eq!(res.status(), 400);
        assert_eq!(json_of(res).await["error"], "field `alerts[0].status`: `burning` is not accepted; expected \"firing\" or \"resolved\"");
        let res = app
            .post_raw(
                "/webhooks/alertmanager",
                &auth,
                "{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\",\"labels\":{\"a\":7}}]}",
            )
            .await;
        assert_eq!(res.status(), 400);
        assert!(json_of(res).await["error"]
            .as_str()
            .unwrap()
            .starts_with("field `alerts[0].labels.a`"));
        // 413 over the source's limit (64 KiB here), before anything is parsed.
        let res = app
            .post_raw("/webhooks/alertmanager", &auth, vec![b' '; 70 * 1024])
            .await;
        assert_eq!(res.status(), 413);
        // 404 for an unknown source.
        let res = app.post_raw("/webhooks/generic/nope", &[], "{}").await;
        assert_eq!(res.status(), 404);
        assert_eq!(
            json_of(res).await["error"],
            "no generic source `nope` is configured"
        );
        assert!(app.incidents("all").await.is_empty());
        assert!(app.get_json("/api/v1/alerts").await["alerts"]
            .as_array()
            .unwrap()
            .is_empty());
    }
);

fn signed_generic(body: &str, ts: i64) -> (String, String) {
    let ts = ts.to_string();
    let sig = hmac_hex("backup-secret", &[ts.as_bytes(), b".", body.as_bytes()]);
    (ts, format!("sha256={sig}"))
}

dual_test!(
    generic_json_is_signed_fresh_and_not_replayable,
    options = secured(),
    |app| async {
        let body = r#"{"summary":"Nightly backup failed","severity":"error","component":"database","dedup_key":"backup-nightly"}"#;
        let now = Utc::now().timestamp();
        let (ts, sig) = signed_generic(body, now);
        let a = &app;
        let post = |ts: String, sig: String, body: &'static str| async move {
            a.post_raw(
                "/webhooks/generic/backups",
                &[("x-spotter-timestamp", &ts), ("x-spotter-signature", &sig)],
                body,
            )
            .await
        };
        // Wrong signature, missing signature, stale timestamp: 401.
        assert_eq!(
            post(ts.clone(), "sha256=00".into(), body).await.status(),
            401
        );
        assert_eq!(
            app.post_raw("/webhooks/generic/backups", &[], body)
                .await
                .status(),
            401
        );
        let (old_ts, old_sig) = signed_generic(body, now - 301);
        let res = post(old_ts, old_sig, body).await;
        assert_eq!(res.status(), 401);
        assert!(json_of(res).await["error"]
            .as_str()
            .unwrap()
            .starts_with("stale request"));
        // Signed over a different body: 401.
        assert_eq!(
            post(
                ts.clone(),
                sig.clone(),
                r#"{"summary":"Nightly backup failed","level":5}"#
            )
            .await
            .status(),
            401
        );
        assert!(app.incidents("all").await.is_empty());
        // Correct: 200, level 2 (severity error), component database.
        let res = post(ts.clone(), sig.clone(), body).await;
        assert_eq!(res.status(), 200);
        let i = &app.incidents("all").await[0];
        assert_eq!(
            (i["level"].as_u64(), i["components"].clone()),
            (Some(2), json!(["database"]))
        );
        // The same signed request again is a replay.
        let res = post(ts, sig, body).await;
        assert_eq!(res.status(), 401);
        assert!(json_of(res).await["error"]
            .as_str()
            .unwrap()
            .starts_with("replayed request"));
        // Bad payload, properly signed: 400 naming the field.
        let bad = r#"{"summary":"x","level":9}"#;
        let (ts, sig) = signed_generic(bad, Utc::now().timestamp());
        let res = post(ts, sig, bad).await;
        assert_eq!(res.status(), 400);
        assert_eq!(
            json_of(res).await["error"],
            "field `level`: 9 is not a level; expected 1-5"
        );
    }
);

dual_test!(
    a_source_over_its_rate_gets_429_with_retry_after,
    options = secured(),
    |app| async {
        let body = r#"{"summary":"ping"}"#;
        let mut statuses = vec![];
        for _ in 0..2 {
            let (ts, sig) = signed_generic(body, Utc::now().timestamp());
            // Different signatures need different timestamps or bodies; vary the body instead.
            let _ = (ts, sig);
        }
        for n in 0..2 {
            let b: &'static str = if n == 0 {
                r#"{"summary":"ping 0"}"#
            } else {
                r#"{"summary":"ping 1"}"#
            };
            let (ts, sig) = signed_generic(b, Utc::now().timestamp());
            let res = app
                .post_raw(
                    "/webhooks/generic/slow",
                    &[("x-spotter-timestamp", &ts), ("x-spotter-signature", &sig)],
                    b,
                )
                .await;
            statuses.push((
                res.status().as_u16(),
                res.headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string()),
            ));
        }
        let _ = body;
        assert_eq!(statuses[0].0, 200);
        assert_eq!(statuses[1].0, 429);
        let wait: u64 = statuses[1]
            .1
            .as_ref()
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(app.incidents("all").await.len(), 1);
    }
);

dual_test!(
    grafana_signatures_with_and_without_timestamp,
    options = secured(),
    |app| async {
        let sig = hmac_hex("grafana-secret", &[GRAFANA.as_bytes()]);
        assert_eq!(
            app.post_raw(
                "/webhooks/grafana",
                &[("x-grafana-alerting-signature", "deadbeef")],
                GRAFANA
            )
            .await
            .status(),
            401
        );
        let res = app
            .post_raw(
                "/webhooks/grafana",
                &[("x-grafana-alerting-signature", &sig)],
                GRAFANA,
            )
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        assert_eq!(app.incidents("all").await.len(), 1);
        // With a timestamp header: HMAC over "timestamp:body".
        let ts = Utc::now().timestamp().to_string();
        let tsig = hmac_hex("grafana-secret", &[ts.as_bytes(), b":", GRAFANA.as_bytes()]);
        let h = |s: &str| {
            vec![
                ("x-grafana-alerting-signature", s.to_string()),
                ("x-grafana-alerting-signature-timestamp", ts.clone()),
            ]
        };
        let plain = h(&sig);
        let headers: Vec<(&str, &str)> = plain.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            app.post_raw("/webhooks/grafana/grafana-ts", &headers, GRAFANA)
                .await
                .status(),
            401,
            "the plain signature is not enough"
        );
        let good = h(&tsig);
        let headers: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            app.post_raw("/webhooks/grafana/grafana-ts", &headers, GRAFANA)
                .await
                .status(),
            200
        );
    }
);

dual_test!(
    pagerduty_events_open_acknowledge_and_resolve_one_incident,
    options = secured(),
    |app| async {
        let res = app.post_raw("/v2/enqueue", &[], PD_TRIGGER).await;
        assert_eq!(res.status(), 202);
        assert_eq!(
            json_of(res).await,
            json!({"status": "success", "message": "Event processed", "dedup_key": "frontend-down-web-1"})
        );
        let list = app.incidents("all").await;
        assert_eq!(list.len(), 1);
        assert_eq!(
            (list[0]["level"].as_u64(), list[0]["components"].clone()),
            (Some(3), json!(["frontend"]))
        );
        // The same trigger again: still one.
        assert_eq!(
            app.post_raw("/v2/enqueue", &[], PD_TRIGGER).await.status(),
            202
        );
        assert_eq!(app.incidents("all").await.len(), 1);
        let ack = json!({"routing_key": "R0123456789abcdef0123456789abcde", "event_action": "acknowledge", "dedup_key": "frontend-down-web-1"});
        assert_eq!(
            app.post_raw("/v2/enqueue", &[], ack.to_string())
                .await
                .status(),
            202
        );
        assert_eq!(app.incident("INC-1").await["state"], "acknowledged");
        assert_eq!(
            app.post_raw("/v2/enqueue", &[], PD_RESOLVE).await.status(),
            202
        );
        // A resolve resolves (PagerDuty's contract: pagerduty sources have no quiet period),
        // before the 202; the incident passed through post-recovery monitoring on the way.
        let i = app.incident("INC-1").await;
        assert_eq!(
            (i["state"].as_str(), i["phase"].as_str()),
            (Some("resolved"), Some("post_recovery_monitoring"))
        );
        assert_eq!(app.incidents("all").await.len(), 1);

        // PagerDuty-shaped errors.
        let res = app.post_raw("/v2/enqueue", &[], r#"{"routing_key":"R0123456789abcdef0123456789abcde","event_action":"trigger","payload":{"severity":"dire"}}"#).await;
        assert_eq!(res.status(), 400);
        let e = json_of(res).await;
        assert_eq!(e["status"], "invalid event");
        assert_eq!(e["errors"].as_array().unwrap().len(), 3);
        let res = app
            .post_raw(
                "/v2/enqueue",
                &[],
                PD_TRIGGER.replace("R0123456789abcdef0123456789abcde", "R-wrong"),
            )
            .await;
        assert_eq!(res.status(), 401);
        assert_eq!(app.incidents("all").await.len(), 1);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_trouble_answers_503_and_writes_nothing_sqlite() {
    let app = common::TestApp::spawn(common::Backend::Sqlite, "storage_503_sqlite")
        .await
        .unwrap();
    // Another process holds SQLite's write lock for longer than the busy timeout.
    let url = format!("{}?mode=rw", app.database_url);
    sqlx::any::install_default_drivers();
    let mut locker = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    let res = app.post_alertmanager(FIRING).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert!(
        app.incidents("all").await.is_empty(),
        "nothing half-written"
    );
    // Alertmanager's retry then succeeds.
    assert_eq!(app.post_alertmanager(FIRING).await.status(), 200);
    assert_eq!(app.incidents("all").await.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_trouble_answers_503_and_writes_nothing_postgres() {
    let Some(app) = common::TestApp::spawn(common::Backend::Postgres, "storage_503_postgres").await
    else {
        return;
    };
    let server = spotter_core::testkit::postgres_url("storage_503_postgres").unwrap();
    let db = app
        .database_url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&server).await.unwrap();
    let sql = |s: String| sqlx::query(sqlx::AssertSqlSafe(s));
    sql(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .execute(&admin)
        .await
        .unwrap();
    sql(format!(
        "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity WHERE datname = '{db}'"
    ))
    .execute(&admin)
    .await
    .unwrap();
    let res = app.post_alertmanager(FIRING).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    sql(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .unwrap();
    assert!(
        app.incidents("all").await.is_empty(),
        "nothing half-written"
    );
    assert_eq!(app.post_alertmanager(FIRING).await.status(), 200);
    assert_eq!(app.incidents("all").await.len(), 1);
    admin.close().await;
    app.stop().await;
}

#[allow(dead_code)]
fn unused() -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(0, 0).unwrap()
}
