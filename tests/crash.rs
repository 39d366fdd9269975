//! Crash test: `kill -9` the real `spotter` binary in the middle of a burst of concurrent
//! Alertmanager webhook requests. After a restart on the same data, every alert whose request was
//! answered 2xx is stored, with its incident. Runs on SQLite, and on PostgreSQL when
//! `SPOTTER_TEST_DATABASE_URL` is set (under `SPOTTER_TEST_STRICT=1` it must be).

mod common;

use common::crash::{
    assert_audit_verifies, load_and_kill, on_postgres, write_config, Notification, Server,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// Concurrent senders.
const WORKERS: usize = 16;
/// Acknowledged requests before the kill, per round.
const KILL_AFTER: usize = 150;
/// Kill, restart and check this many times on the same data.
const ROUNDS: usize = 2;

/// One Alertmanager notification carrying one alert with its own fingerprint. Four alert names,
/// so the burst opens a few incidents and mostly joins them (the route groups by alertname and
/// service).
fn notification(fingerprint: &str, n: usize) -> Value {
    let alertname = format!("CrashBurst{}", n % 4);
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"),
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "spotter",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname, "service": "database", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{
            "status": "firing",
            "labels": {
                "alertname": alertname,
                "service": "database",
                "severity": "critical",
                "instance": fingerprint
            },
            "annotations": {"summary": format!("crash test alert {fingerprint}")},
            "startsAt": "2026-11-26T09:58:12.123Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
            "fingerprint": fingerprint
        }]
    })
}

/// Fires concurrent one-alert notifications until `KILL_AFTER` were acknowledged, then kills
/// the server. Returns the acknowledged fingerprints.
fn burst_and_kill(server: Server, round: usize) -> Vec<String> {
    let outcome = load_and_kill(
        server,
        &format!("round {round}"),
        WORKERS,
        KILL_AFTER,
        move |w, i| {
            let fp = format!("crash-r{round}-w{w}-{i}");
            Notification {
                body: notification(&fp, w + i),
                fingerprints: vec![fp],
            }
        },
    );
    outcome
        .acked
        .into_iter()
        .flat_map(|n| n.fingerprints)
        .collect()
}

/// Every acknowledged alert is stored, firing, attached to an incident that exists.
fn check_after_restart(server: &Server, acked: &[String]) {
    let stored = server.stored_alerts();
    let incidents = server.incident_refs();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|fp| !stored.contains_key(fp.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged alerts are missing after the restart, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    // Nothing half-written either: every stored alert, acknowledged or caught in flight by the
    // kill, is firing, attached to an incident that exists, and on that incident's timeline.
    let mut timelines: HashMap<String, Vec<String>> = HashMap::new();
    for i in &incidents {
        let t = server.get(&format!("/api/v1/incidents/{i}"))["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["text"].as_str().unwrap().to_string())
            .collect();
        timelines.insert(i.clone(), t);
    }
    for a in stored.values() {
        let fp = a["fingerprint"].as_str().unwrap();
        assert_eq!(a["status"], "firing", "{a}");
        assert_eq!(a["source"], "alertmanager", "{a}");
        let r = a["incident"]
            .as_str()
            .unwrap_or_else(|| panic!("stored alert {fp} has no incident: {a}"));
        let timeline = timelines
            .get(r)
            .unwrap_or_else(|| panic!("alert {fp} points at {r}, which does not exist"));
        let event = format!("alert firing: crash test alert {fp} (instance={fp})");
        assert!(
            timeline.iter().filter(|t| **t == event).count() == 1,
            "{r}'s timeline does not have exactly one {event:?}"
        );
    }
    eprintln!(
        "after restart: all {} acknowledged alerts stored ({} stored in total: a request in flight \
         at the kill may be committed without its answer), {} incidents",
        acked.len(),
        stored.len(),
        incidents.len()
    );
    // Four alert names → four groups → four incidents, however the burst raced.
    assert_eq!(incidents.len(), 4, "{incidents:?}");
    let open = server.get("/api/v1/incidents?state=open")["incidents"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(open, 4);
}

fn crash_and_restart(dir: &Path, db: Option<&str>) {
    write_config(dir);
    let mut acked = Vec::new();
    for round in 1..=ROUNDS {
        let server = Server::start(dir, db);
        acked.extend(burst_and_kill(server, round));
        let server = Server::start(dir, db);
        check_after_restart(&server, &acked);
        server.kill_9();
    }
    assert_audit_verifies(dir, db);
}

#[test]
fn kill_9_mid_burst_loses_no_acknowledged_alert_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crash_and_restart(dir.path(), None);
}

#[test]
fn kill_9_mid_burst_loses_no_acknowledged_alert_postgres() {
    on_postgres(
        "kill_9_mid_burst_loses_no_acknowledged_alert_postgres",
        |url| {
            let dir = tempfile::tempdir().unwrap();
            crash_and_restart(dir.path(), Some(url));
        },
    );
}
