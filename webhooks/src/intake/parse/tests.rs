use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/",
            $name
        ))
    };
}

#[test]
fn alertmanager_firing_fixture() {
    let (b, notes) = alertmanager(fixture!("alertmanager-firing.json"), "am").unwrap();
    assert_eq!(b.source, "am");
    assert_eq!(
        b.group_key.as_deref(),
        Some("{}/{severity=\"critical\"}:{alertname=\"MySQLDown\"}")
    );
    assert_eq!(b.alerts.len(), 2);
    let a = &b.alerts[0];
    assert_eq!(a.action, AlertAction::Fire);
    assert_eq!(a.fingerprint.as_deref(), Some("3f1c2a9b7d4e5f60"));
    assert_eq!(a.labels["instance"], "db-1:9104");
    assert!(a.ends_at.is_none(), "the zero endsAt means not set");
    assert_eq!(
        a.starts_at.unwrap().to_rfc3339(),
        "2026-11-26T09:58:12.123+00:00"
    );
    assert_eq!(notes.truncated, 0);
}

#[test]
fn alertmanager_resolved_fixture() {
    let (b, _) = alertmanager(fixture!("alertmanager-resolved.json"), "am").unwrap();
    assert!(b.alerts.iter().all(|a| a.action == AlertAction::Resolve));
    assert!(b.alerts.iter().all(|a| a.ends_at.is_some()));
}

#[test]
fn truncated_alerts_missing_fingerprints_unknown_fields_and_unicode() {
    let body = r#"{"version":"4","groupKey":"g","truncatedAlerts":3,"status":"firing","receiver":"spotter",
        "notification_reason":"new","routeLabels":{"x":"y"},
        "alerts":[{"status":"firing","labels":{"alertname":"Ünïcødé ⚠ down","service":"база"},"annotations":{},
                   "startsAt":"2026-11-26T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","someNewField":1}]}"#;
    let (b, notes) = alertmanager(body.as_bytes(), "am").unwrap();
    assert_eq!(notes.truncated, 3);
    assert_eq!(b.alerts[0].fingerprint, None);
    assert_eq!(b.alerts[0].identity().len(), 16);
    assert_eq!(b.alerts[0].labels["service"], "база");
}

#[test]
fn broken_fields_are_named() {
    let e = alertmanager(br#"{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"}},{"status":"burning","labels":{"a":"c"}}]}"#, "am")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `alerts[1].status`: `burning` is not accepted; expected \"firing\" or \"resolved\""
    );
    let e = alertmanager(
        br#"{"version":"4","alerts":[{"status":"firing","labels":{"a":1}}]}"#,
        "am",
    )
    .unwrap_err();
    assert_eq!(e.field, "alerts[0].labels.a");
    let e = alertmanager(br#"{"version":"4"}"#, "am").unwrap_err();
    assert!(e.to_string().contains("missing field `alerts`"), "{e}");
    let e = alertmanager(br#"{"version":"3","alerts":[]}"#, "am").unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `version`: `3` is not supported; expected \"4\""
    );
    let e = alertmanager(br#"{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"yesterday"}]}"#, "am").unwrap_err();
    assert_eq!(e.field, "alerts[0].startsAt");
    let e = alertmanager(b"{not json", "am").unwrap_err();
    assert!(
        e.to_string().starts_with("the body is not valid JSON"),
        "{e}"
    );
    let e = alertmanager(br#"{"version":"4","alerts":[{"status":"firing"}]}"#, "am").unwrap_err();
    assert_eq!(e.field, "alerts[0].labels");
}

#[test]
fn grafana_fixture_with_its_extra_fields() {
    let (b, _) = grafana(fixture!("grafana-firing.json"), "grafana").unwrap();
    assert!(!b.alerts.is_empty());
    assert!(b.alerts.iter().all(|a| a.action == AlertAction::Fire));
    assert!(grafana(fixture!("alertmanager-firing.json"), "grafana")
        .unwrap_err()
        .to_string()
        .contains("expected \"1\""));
}

#[test]
fn pagerduty_trigger_acknowledge_and_resolve() {
    let ev: PdEvent = json(fixture!("pagerduty-trigger.json")).unwrap();
    let (b, key) = pagerduty(ev, "uptime", "generated").unwrap();
    assert_eq!(key, "frontend-down-web-1");
    let a = &b.alerts[0];
    assert_eq!(a.action, AlertAction::Fire);
    assert_eq!(a.labels["component"], "frontend");
    assert_eq!(a.labels["severity"], "critical");
    assert_eq!(a.annotations["summary"], "Frontend on web-1 returns 502");

    let ev: PdEvent = json(fixture!("pagerduty-resolve.json")).unwrap();
    let (b, key) = pagerduty(ev, "uptime", "generated").unwrap();
    assert_eq!(b.alerts[0].action, AlertAction::Resolve);
    assert_eq!(key, "frontend-down-web-1");

    let ev: PdEvent =
        json(br#"{"routing_key":"r","event_action":"acknowledge","dedup_key":"k"}"#).unwrap();
    assert_eq!(
        pagerduty(ev, "uptime", "g").unwrap().0.alerts[0].action,
        AlertAction::Acknowledge
    );

    // Without a dedup_key a trigger gets the generated one.
    let ev: PdEvent = json(br#"{"routing_key":"r","event_action":"trigger","payload":{"summary":"s","source":"x","severity":"info"}}"#).unwrap();
    assert_eq!(pagerduty(ev, "uptime", "gen-1").unwrap().1, "gen-1");
}

#[test]
fn pagerduty_lists_every_problem() {
    let ev: PdEvent =
        json(br#"{"routing_key":"r","event_action":"trigger","payload":{"severity":"dire"}}"#)
            .unwrap();
    let errors = pagerduty(ev, "uptime", "g").unwrap_err();
    assert_eq!(
        errors,
        vec![
            "'payload.summary' is missing".to_string(),
            "'payload.source' is missing".to_string(),
            "'payload.severity' is invalid: `dire`; expected critical, error, warning or info"
                .to_string(),
        ]
    );
    let ev: PdEvent = json(br#"{"routing_key":"r","event_action":"resolve"}"#).unwrap();
    assert_eq!(
        pagerduty(ev, "uptime", "g").unwrap_err(),
        vec!["'dedup_key' is required for acknowledge and resolve".to_string()]
    );
    let ev: PdEvent = json(br#"{"routing_key":"r","event_action":"explode"}"#).unwrap();
    assert!(pagerduty(ev, "uptime", "g").unwrap_err()[0].contains("'event_action' is invalid"));
}

#[test]
fn a_dedup_key_is_limited_to_255_characters_not_bytes() {
    let event = |key: &str| -> PdEvent {
        json(
            serde_json::json!({"routing_key": "r", "event_action": "resolve", "dedup_key": key})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    };
    // 255 characters of two bytes each (510 bytes): within the limit.
    let accented = "é".repeat(255);
    let (_, key) = pagerduty(event(&accented), "uptime", "g").unwrap();
    assert_eq!(key, accented);
    let errors = pagerduty(event(&"é".repeat(256)), "uptime", "g").unwrap_err();
    assert_eq!(
        errors,
        vec!["'dedup_key' is longer than 255 characters".to_string()]
    );
    assert!(pagerduty(event(&"k".repeat(255)), "uptime", "g").is_ok());
}

#[test]
fn generic_events() {
    let b = generic(br#"{"summary":"Backup failed","severity":"error","component":"database","dedup_key":"backup-nightly","labels":{"job":"backup"}}"#, "backups").unwrap();
    let a = &b.alerts[0];
    assert_eq!(a.fingerprint.as_deref(), Some("backup-nightly"));
    assert_eq!(a.labels["component"], "database");
    assert_eq!(a.labels["severity"], "error");
    assert_eq!(a.action, AlertAction::Fire);
    let b = generic(
        br#"{"summary":"Backup failed","status":"resolved","level":4}"#,
        "backups",
    )
    .unwrap();
    assert_eq!(b.alerts[0].action, AlertAction::Resolve);
    assert_eq!(b.alerts[0].labels["level"], "4");
    assert_eq!(
        generic(br#"{"summary":"x","level":9}"#, "b")
            .unwrap_err()
            .field,
        "level"
    );
    assert!(generic(br#"{"summary":"x","colour":"red"}"#, "b")
        .unwrap_err()
        .to_string()
        .contains("unknown field `colour`"));
    assert!(generic(br#"{"severity":"error"}"#, "b")
        .unwrap_err()
        .to_string()
        .contains("missing field `summary`"));
}
