//! Crash test of an alert storm (issue 11): `kill -9` the real `spotter` binary while 8 senders
//! post Alertmanager notifications of 50 new alerts each (a handful of alert names, so they join
//! a few incidents: bench/storm.py's `storm` shape). After a restart on the same data:
//! 1. every alert of every notification answered 2xx is stored, attached to its incident;
//! 2. a notification the kill left unanswered is stored whole or not at all, never in part: a
//!    sender that got no answer retries it, and a retry of a half-stored notification would
//!    page for half a storm while the rest is still unknown.
//!
//! Runs on SQLite, and on PostgreSQL when `SPOTTER_TEST_DATABASE_URL` is set (under
//! `SPOTTER_TEST_STRICT=1` it must be).

mod common;

use common::crash::{
    assert_audit_verifies, load_and_kill, on_postgres, write_config, Notification, Server,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// Concurrent senders.
const SENDERS: usize = 8;
/// New alerts per notification.
const BATCH: usize = 50;
/// Alert names: Alertmanager sends one notification per group, so a storm is many alerts of few
/// names, and each name is one group and one incident.
const GROUPS: usize = 4;
/// Notifications answered 2xx before the kill, per round: a few seconds into the storm, with
/// every sender mid-notification.
const KILL_AFTER: usize = 40;
/// Kill, restart and check this many times on the same data.
const ROUNDS: usize = 2;

/// Sender `s`'s `n`th notification of round `round`: `BATCH` alerts never seen before, all of one
/// alert name.
fn notification(round: usize, s: usize, n: usize) -> Notification {
    let alertname = format!("CrashStorm{}", (s + n) % GROUPS);
    let fingerprints: Vec<String> = (0..BATCH)
        .map(|a| format!("storm-r{round}-s{s}-n{n}-a{a}"))
        .collect();
    let alerts: Vec<Value> = fingerprints
        .iter()
        .map(|fp| {
            json!({
                "status": "firing",
                "labels": {
                    "alertname": alertname,
                    "service": "database",
                    "severity": "critical",
                    "instance": fp
                },
                "annotations": {"summary": format!("storm alert {fp}")},
                "startsAt": "2026-11-26T09:58:12.123Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example:9090/graph",
                "fingerprint": fp
            })
        })
        .collect();
    let body = json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"),
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "spotter",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname, "service": "database", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts
    });
    Notification { body, fingerprints }
}

/// A notification's name in messages: its first fingerprint without the alert's number.
fn name(n: &Notification) -> &str {
    n.fingerprints[0].trim_end_matches("-a0")
}

fn alertname(n: &Notification) -> &str {
    n.body["groupLabels"]["alertname"].as_str().unwrap()
}

/// Everything sent so far, across rounds.
#[derive(Default)]
struct Sent {
    acked: Vec<Notification>,
    unanswered: Vec<Notification>,
}

fn check_after_restart(server: &Server, sent: &Sent, round: usize) {
    let stored = server.stored_alerts();
    let incidents = server.incident_refs();

    // Every stored alert is one this test sent, firing, attached to an incident that exists, and
    // the incident is its alert name's: one group, one incident.
    let sent_by_fp: HashMap<&str, &Notification> = sent
        .acked
        .iter()
        .chain(&sent.unanswered)
        .flat_map(|n| n.fingerprints.iter().map(move |fp| (fp.as_str(), n)))
        .collect();
    let mut incident_of_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for a in stored.values() {
        let fp = a["fingerprint"].as_str().unwrap();
        let n = sent_by_fp
            .get(fp)
            .unwrap_or_else(|| panic!("stored alert {fp} was never sent: {a}"));
        assert_eq!(a["status"], "firing", "{a}");
        assert_eq!(a["source"], "alertmanager", "{a}");
        let r = a["incident"]
            .as_str()
            .unwrap_or_else(|| panic!("stored alert {fp} has no incident: {a}"));
        assert!(
            incidents.contains(r),
            "alert {fp} points at {r}, which does not exist"
        );
        incident_of_name.entry(alertname(n)).or_default().insert(r);
    }

    // 1. Every alert of every acknowledged notification is stored.
    let missing: Vec<(&str, usize)> = sent
        .acked
        .iter()
        .map(|n| {
            let absent = n
                .fingerprints
                .iter()
                .filter(|fp| !stored.contains_key(fp.as_str()))
                .count();
            (name(n), absent)
        })
        .filter(|(_, absent)| *absent > 0)
        .collect();
    // 2. An unanswered notification is stored whole or not at all.
    let stored_of = |n: &Notification| {
        n.fingerprints
            .iter()
            .filter(|fp| stored.contains_key(fp.as_str()))
            .count()
    };
    let whole = sent
        .unanswered
        .iter()
        .filter(|n| stored_of(n) == BATCH)
        .count();
    let torn: Vec<(&str, usize)> = sent
        .unanswered
        .iter()
        .map(|n| (name(n), stored_of(n)))
        .filter(|(_, k)| *k > 0 && *k < BATCH)
        .collect();
    eprintln!(
        "after restart {round}: {} alerts stored, {} incidents; {} acknowledged notifications, {} \
         of them missing alerts; {} unanswered: {whole} stored whole, {} half stored {torn:?}",
        stored.len(),
        incidents.len(),
        sent.acked.len(),
        missing.len(),
        sent.unanswered.len(),
        torn.len(),
    );
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged notifications lost alerts after kill -9 ({} alerts of {}): \
         (notification, alerts missing of {BATCH}) {missing:?}",
        missing.len(),
        sent.acked.len(),
        missing.iter().map(|(_, k)| k).sum::<usize>(),
        sent.acked.len() * BATCH,
    );
    assert!(
        torn.is_empty(),
        "{} of {} unanswered notifications are half stored after kill -9 ({} alerts stored of \
         {} sent in them; {whole} stored whole): (notification, alerts stored of {BATCH}) \
         {torn:?}",
        torn.len(),
        sent.unanswered.len(),
        torn.iter().map(|(_, k)| k).sum::<usize>(),
        torn.len() * BATCH,
    );
    for (alertname, refs) in &incident_of_name {
        assert_eq!(refs.len(), 1, "{alertname}'s alerts are on {refs:?}");
    }
    assert_eq!(incidents.len(), GROUPS, "{incidents:?}");
    let open = server.get("/api/v1/incidents?state=open")["incidents"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(open, GROUPS);
}

fn storm_crash_and_restart(dir: &Path, db: Option<&str>) {
    write_config(dir);
    let mut sent = Sent::default();
    for round in 1..=ROUNDS {
        let server = Server::start(dir, db);
        let outcome = load_and_kill(
            server,
            &format!("storm round {round}"),
            SENDERS,
            KILL_AFTER,
            move |s, n| notification(round, s, n),
        );
        sent.acked.extend(outcome.acked);
        sent.unanswered.extend(outcome.unanswered);
        let server = Server::start(dir, db);
        check_after_restart(&server, &sent, round);
        server.kill_9();
    }
    assert_audit_verifies(dir, db);
}

#[test]
fn kill_9_mid_storm_stores_each_notification_whole_or_not_at_all_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    storm_crash_and_restart(dir.path(), None);
}

#[test]
fn kill_9_mid_storm_stores_each_notification_whole_or_not_at_all_postgres() {
    on_postgres(
        "kill_9_mid_storm_stores_each_notification_whole_or_not_at_all_postgres",
        |url| {
            let dir = tempfile::tempdir().unwrap();
            storm_crash_and_restart(dir.path(), Some(url));
        },
    );
}
