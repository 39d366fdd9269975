//! `/api/v2/*.json` against Statuspage's documented shapes, field by field; the indicator and
//! its description; the CORS header; the caching validators and 304s.

use crate::fixtures::*;
use axum::http::StatusCode;
use serde_json::Value;
use spotter_core::status::{Impact, PublicStatus};
use std::collections::BTreeSet;

pub const JSON_ENDPOINTS: [&str; 8] = [
    "/api/v2/summary.json",
    "/api/v2/status.json",
    "/api/v2/components.json",
    "/api/v2/incidents.json",
    "/api/v2/incidents/unresolved.json",
    "/api/v2/scheduled-maintenances.json",
    "/api/v2/scheduled-maintenances/upcoming.json",
    "/api/v2/scheduled-maintenances/active.json",
];

const PAGE_KEYS: [&str; 5] = ["id", "name", "url", "time_zone", "updated_at"];
const COMPONENT_KEYS: [&str; 13] = [
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "position",
    "description",
    "showcase",
    "start_date",
    "group_id",
    "page_id",
    "group",
    "only_show_if_degraded",
];
const INCIDENT_KEYS: [&str; 13] = [
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "monitoring_at",
    "resolved_at",
    "impact",
    "shortlink",
    "started_at",
    "page_id",
    "incident_updates",
    "components",
];
const UPDATE_KEYS: [&str; 11] = [
    "id",
    "status",
    "body",
    "incident_id",
    "created_at",
    "updated_at",
    "display_at",
    "affected_components",
    "deliver_notifications",
    "custom_tweet",
    "tweet_id",
];
const COMPONENT_STATUSES: [&str; 5] = [
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
];
const INCIDENT_STATUSES: [&str; 5] = [
    "investigating",
    "identified",
    "monitoring",
    "resolved",
    "postmortem",
];
const IMPACTS: [&str; 4] = ["none", "minor", "major", "critical"];

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<const N: usize>(k: [&'static str; N]) -> BTreeSet<&'static str> {
    k.into_iter().collect()
}

/// An RFC 3339 time, as a string.
fn assert_time(v: &Value, what: &str) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is a string: {v}"));
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{what} = {s:?} is not RFC 3339: {e}"));
}

fn assert_page(p: &Value) {
    assert_eq!(keys(p), set(PAGE_KEYS));
    assert_eq!(p["id"], "pg_workout");
    assert_eq!(p["name"], "Workout Tracker");
    assert_eq!(p["url"], "https://status.example.test/status");
    assert_eq!(p["time_zone"], "Europe/Berlin");
    assert_eq!(p["updated_at"], "2026-12-01T12:30:00.000Z");
}

fn assert_component(c: &Value) {
    let mut expected = set(COMPONENT_KEYS);
    if c["group"] == true {
        expected.insert("components");
    }
    assert_eq!(keys(c), expected, "component {c}");
    assert!(c["id"].is_string() && c["name"].is_string());
    assert!(
        COMPONENT_STATUSES.contains(&c["status"].as_str().unwrap()),
        "{c}"
    );
    assert_time(&c["created_at"], "component.created_at");
    assert_time(&c["updated_at"], "component.updated_at");
    assert!(c["position"].is_u64());
    assert!(c["description"].is_string() || c["description"].is_null());
    assert!(
        c["showcase"].is_boolean()
            && c["group"].is_boolean()
            && c["only_show_if_degraded"].is_boolean()
    );
    assert!(c["start_date"].is_null() || c["start_date"].is_string());
    assert!(c["group_id"].is_null() || c["group_id"].is_string());
    assert_eq!(c["page_id"], "pg_workout");
}

fn assert_incident(i: &Value) {
    assert_eq!(keys(i), set(INCIDENT_KEYS), "incident {i}");
    assert!(INCIDENT_STATUSES.contains(&i["status"].as_str().unwrap()));
    assert!(IMPACTS.contains(&i["impact"].as_str().unwrap()));
    for k in ["created_at", "updated_at", "started_at"] {
        assert_time(&i[k], k);
    }
    for k in ["monitoring_at", "resolved_at"] {
        if !i[k].is_null() {
            assert_time(&i[k], k);
        }
    }
    assert_eq!(
        i["shortlink"].as_str().unwrap(),
        format!(
            "https://status.example.test/status/incidents/{}",
            i["id"].as_str().unwrap()
        )
    );
    assert_eq!(i["page_id"], "pg_workout");
    let component_ids: Vec<&Value> = i["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    // Oldest first: each update starts its components where the one before left them.
    let mut before = "operational".to_string();
    for u in i["incident_updates"].as_array().unwrap().iter().rev() {
        let affected = u["affected_components"]
            .as_array()
            .unwrap_or_else(|| panic!("an incident update names its components: {u}"));
        let mut after = None;
        for a in affected {
            assert_eq!(
                keys(a),
                set(["code", "name", "old_status", "new_status"]),
                "{a}"
            );
            assert!(
                component_ids.contains(&&a["code"]),
                "{a} in {component_ids:?}"
            );
            assert!(a["name"].is_string());
            assert_eq!(a["old_status"], before.as_str(), "{a}");
            assert!(COMPONENT_STATUSES.contains(&a["new_status"].as_str().unwrap()));
            after = Some(a["new_status"].as_str().unwrap().to_string());
        }
        before = after.unwrap_or(before);
    }
    for u in i["incident_updates"].as_array().unwrap() {
        assert_eq!(keys(u), set(UPDATE_KEYS), "update {u}");
        assert_eq!(u["incident_id"], i["id"]);
        assert!(INCIDENT_STATUSES.contains(&u["status"].as_str().unwrap()));
        assert!(u["body"].is_string());
        for k in ["created_at", "updated_at", "display_at"] {
            assert_time(&u[k], k);
        }
        assert!(u["deliver_notifications"].is_boolean());
        assert!(u["custom_tweet"].is_null() && u["tweet_id"].is_null());
    }
    for c in i["components"].as_array().unwrap() {
        assert_component(c);
    }
}

#[tokio::test]
async fn summary_json_has_statuspage_fields_and_values() {
    let (r, _) = router_for(snapshot());
    let a = get(&r, "/api/v2/summary.json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("application/json"));
    let v = a.json();
    assert_eq!(
        keys(&v),
        set([
            "page",
            "components",
            "incidents",
            "scheduled_maintenances",
            "status"
        ])
    );
    assert_page(&v["page"]);
    assert_eq!(
        v["status"],
        serde_json::json!({"indicator": "critical", "description": "Major Service Outage"})
    );
    assert_eq!(v["scheduled_maintenances"], serde_json::json!([]));

    let comps = v["components"].as_array().unwrap();
    comps.iter().for_each(assert_component);
    let ids: Vec<&str> = comps.iter().map(|c| c["id"].as_str().unwrap()).collect();
    // The group first, then its members, then the ungrouped component, in page order.
    assert_eq!(ids, ["group-backend", "database", "application", "website"]);
    let group = &comps[0];
    assert_eq!(group["group"], true);
    assert_eq!(group["name"], "Backend");
    assert_eq!(
        group["status"], "major_outage",
        "a group is as bad as its worst member"
    );
    assert_eq!(
        group["components"],
        serde_json::json!(["database", "application"])
    );
    let db = &comps[1];
    assert_eq!(db["name"], "Database");
    assert_eq!(db["status"], "major_outage");
    assert_eq!(db["position"], 1);
    assert_eq!(db["description"], "The Database");
    assert_eq!(db["group_id"], "group-backend");
    assert_eq!(db["group"], false);
    assert_eq!(db["updated_at"], "2026-12-01T12:00:00.000Z");
    assert_eq!(comps[2]["status"], "operational");
    assert_eq!(comps[3]["status"], "degraded_performance");
    assert_eq!(
        comps[3]["description"],
        Value::Null,
        "an empty description is null"
    );
    assert_eq!(comps[3]["group_id"], Value::Null);
    assert_eq!(comps[3]["position"], 3);

    // Only the unresolved incidents, newest first.
    let inc = v["incidents"].as_array().unwrap();
    inc.iter().for_each(assert_incident);
    let ids: Vec<&str> = inc.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["pi_db", "pi_web"]);
    let db = &inc[0];
    assert_eq!(db["name"], XSS, "JSON carries the title as data");
    assert_eq!(db["status"], "identified");
    assert_eq!(db["impact"], "critical");
    assert_eq!(db["created_at"], "2026-12-01T12:05:00.000Z");
    assert_eq!(db["started_at"], "2026-12-01T12:05:00.000Z");
    assert_eq!(db["updated_at"], "2026-12-01T12:20:00.000Z");
    assert_eq!(db["resolved_at"], Value::Null);
    assert_eq!(db["monitoring_at"], Value::Null);
    assert_eq!(
        db["shortlink"],
        "https://status.example.test/status/incidents/pi_db"
    );
    let ups = db["incident_updates"].as_array().unwrap();
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[0]["id"], "pu_db2");
    assert_eq!(ups[0]["status"], "identified");
    assert_eq!(
        ups[0]["body"],
        "The primary <b>disk</b> is full & read-only."
    );
    assert_eq!(ups[0]["created_at"], "2026-12-01T12:20:00.000Z");
    assert_eq!(ups[0]["display_at"], "2026-12-01T12:20:00.000Z");
    assert_eq!(ups[0]["deliver_notifications"], true);
    // The critical incident keeps its component in major outage until it resolves.
    assert_eq!(
        ups[0]["affected_components"],
        serde_json::json!([{"code": "database", "name": "Database", "old_status": "major_outage", "new_status": "major_outage"}])
    );
    assert_eq!(ups[1]["id"], "pu_db1");
    assert_eq!(
        ups[1]["affected_components"],
        serde_json::json!([{"code": "database", "name": "Database", "old_status": "operational", "new_status": "major_outage"}])
    );
    let affected: Vec<&str> = db["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(affected, ["database"]);
}

#[tokio::test]
async fn every_endpoint_has_its_documented_top_level_shape() {
    let (r, _) = router_for(snapshot());
    let shape = |v: &Value| keys(v).into_iter().map(str::to_string).collect::<Vec<_>>();
    let v = get(&r, "/api/v2/status.json").await.json();
    assert_eq!(shape(&v), ["page", "status"]);
    assert_page(&v["page"]);
    assert_eq!(keys(&v["status"]), set(["indicator", "description"]));

    let v = get(&r, "/api/v2/components.json").await.json();
    assert_eq!(shape(&v), ["components", "page"]);
    assert_page(&v["page"]);
    assert_eq!(v["components"].as_array().unwrap().len(), 4);
    v["components"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(assert_component);

    let v = get(&r, "/api/v2/incidents.json").await.json();
    assert_eq!(shape(&v), ["incidents", "page"]);
    let all = v["incidents"].as_array().unwrap();
    all.iter().for_each(assert_incident);
    let ids: Vec<&str> = all.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["pi_db", "pi_web", "pi_app"],
        "resolved ones too, newest first"
    );
    let app = &all[2];
    assert_eq!(app["status"], "resolved");
    assert_eq!(app["resolved_at"], "2026-10-02T10:00:00.000Z");
    assert_eq!(app["monitoring_at"], "2026-10-02T09:00:00.000Z");
    let statuses: Vec<&str> = app["incident_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["resolved", "monitoring", "investigating"]);
    // A major incident: partial outage while open, operational from its resolution.
    let moves: Vec<(&str, &str, &str)> = app["incident_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let a = &u["affected_components"][0];
            (
                a["code"].as_str().unwrap(),
                a["old_status"].as_str().unwrap(),
                a["new_status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("application", "partial_outage", "operational"),
            ("application", "partial_outage", "partial_outage"),
            ("application", "operational", "partial_outage"),
        ]
    );

    let v = get(&r, "/api/v2/incidents/unresolved.json").await.json();
    assert_eq!(shape(&v), ["incidents", "page"]);
    let ids: Vec<&str> = v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["pi_db", "pi_web"]);

    for path in &JSON_ENDPOINTS[5..] {
        let v = get(&r, path).await.json();
        assert_eq!(shape(&v), ["page", "scheduled_maintenances"], "{path}");
        assert_page(&v["page"]);
        assert_eq!(v["scheduled_maintenances"], serde_json::json!([]), "{path}");
    }
}

#[tokio::test]
async fn incidents_json_lists_the_fifty_newest() {
    let mut snap = snapshot();
    let template = snap.incidents[2].clone();
    snap.incidents = (0..60)
        .map(|n| {
            let mut i = template.clone();
            i.id = format!("pi_{n:02}");
            i
        })
        .collect();
    let (r, _) = router_for(snap);
    let v = get(&r, "/api/v2/incidents.json").await.json();
    let list = v["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 50);
    assert_eq!(list[0]["id"], "pi_00");
    assert_eq!(list[49]["id"], "pi_49");
}

#[tokio::test]
async fn the_indicator_and_its_description_are_statuspages() {
    // Statuspage's own words for each indicator.
    let documented = [
        (
            Impact::None,
            "none",
            "All Systems Operational",
            "brightgreen",
        ),
        (Impact::Minor, "minor", "Minor Service Outage", "yellow"),
        (Impact::Major, "major", "Partial System Outage", "orange"),
        (Impact::Critical, "critical", "Major Service Outage", "red"),
    ];
    for (impact, indicator, description, color) in documented {
        assert_eq!(impact.page_description(), description);
        let mut snap = snapshot();
        snap.indicator = impact;
        snap.description = impact.page_description().into();
        if impact == Impact::None {
            snap.incidents.retain(|i| i.status.is_resolved());
        }
        let (r, _) = router_for(snap);
        let v = get(&r, "/api/v2/status.json").await.json();
        assert_eq!(v["status"]["indicator"], indicator);
        assert_eq!(v["status"]["description"], description);
        let b = get(&r, "/status/badge.json").await;
        assert_eq!(b.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            b.json(),
            serde_json::json!({"schemaVersion": 1, "label": "status", "message": description, "color": color})
        );
        let page = get(&r, "/status").await.text();
        assert!(
            page.contains(&format!("class=\"banner i-{indicator}\"")),
            "banner colour for {indicator}"
        );
        assert!(page.contains(description));
    }
    // With nothing unresolved, nothing is listed as unresolved.
    let mut snap = snapshot();
    snap.incidents
        .iter_mut()
        .for_each(|i| i.status = PublicStatus::Resolved);
    let (r, _) = router_for(snap);
    let v = get(&r, "/api/v2/summary.json").await.json();
    assert_eq!(v["incidents"], serde_json::json!([]));
}
