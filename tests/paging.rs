//! Paging end to end, as a new user would check it: a config whose tiers are seconds apart and
//! whose people are reached by `webhook` at a local receiver that checks every signature, on
//! both backends. The first row is paged at once and the next after its delay; the ack link's
//! GET changes nothing and its POST stops the rest; a restart between two rows neither loses nor
//! repeats a page; two replicas on one PostgreSQL never double-page.

mod common;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use spotter_core::config::{Config, ContactMethod, Escalation, EscalationTier, Target};
use spotter_core::domain::LevelId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET_ENV: &str = "SPOTTER_TEST_PAGE_SECRET";
const SECRET: &str = "receiver-shared-secret-for-tests";

/// A local receiver for webhook pages: it verifies each signature (as a real SMS gateway
/// would) and keeps the bodies of those that verify.
#[derive(Clone, Default)]
struct Receiver {
    pages: Arc<Mutex<Vec<Value>>>,
    refused: Arc<Mutex<usize>>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route("/page/{person}", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }
    fn pages(&self) -> Vec<Value> {
        self.pages.lock().unwrap().clone()
    }
    /// (person, tier as sent: 1-based) of each page received.
    fn people_and_tiers(&self) -> Vec<(String, i64)> {
        self.pages()
            .iter()
            .map(|p| {
                (
                    p["person"]["id"].as_str().unwrap().to_string(),
                    p["tier"].as_i64().unwrap_or(0),
                )
            })
            .collect()
    }
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let start = std::time::Instant::now();
        while start.elapsed() < within {
            if self.pages().len() >= n {
                return self.pages();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "expected {n} pages within {within:?}, got {:#?}",
            self.pages()
        );
    }
}

async fn receive(
    State(r): State<Receiver>,
    Path(person): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("");
    let now = chrono::Utc::now().timestamp();
    let verified = spotter_webhooks::intake::signature::verify_signature(
        SECRET.as_bytes(),
        header("x-spotter-signature"),
        spotter_webhooks::intake::signature::Signed::WithTimestamp {
            timestamp: header("x-spotter-timestamp"),
            separator: b".",
            now,
            window: 300,
        },
        &body,
    );
    if verified.is_err() {
        *r.refused.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["person"]["id"],
        person.as_str(),
        "the URL is the person's own"
    );
    assert_eq!(
        header("x-spotter-idempotency-key"),
        v["idempotency_key"].as_str().unwrap()
    );
    r.pages.lock().unwrap().push(v);
    StatusCode::OK
}

/// Everyone is paged by webhook at `url`; level 2 pages sysadmin + dba at once, the full team
/// after `second`, and the external contacts after `third`.
fn configure(url: String, second: u64, third: u64) -> common::Configure {
    Box::new(move |c: &mut Config| {
        for p in c.people.values_mut() {
            p.notify = vec![ContactMethod::Webhook {
                url: format!("{url}/page/{}", p.id),
                hmac_secret_env: SECRET_ENV.into(),
            }];
        }
        let team = |id: &str| Target::Team(c.teams[id].members.clone());
        let person = |id: &str| Target::Person(id.parse().unwrap());
        let tier = |after: u64, names: &[&str], notify: Vec<Target>| EscalationTier {
            after: chrono::Duration::seconds(after as i64),
            targets: names.iter().map(|s| s.to_string()).collect(),
            notify,
        };
        let tiers = vec![
            tier(
                0,
                &["sysadmin", "dba"],
                vec![person("sysadmin"), person("dba")],
            ),
            tier(second, &["full-team"], vec![team("full-team")]),
            tier(third, &["external"], vec![team("external")]),
        ];
        c.escalation.insert(
            LevelId(2),
            Escalation {
                tiers,
                repeat: 0,
                repeat_every: chrono::Duration::minutes(30),
            },
        );
        c.paging.notifier_timeout = chrono::Duration::seconds(5);
    })
}

fn options(url: String, second: u64, third: u64) -> common::Options {
    common::Options {
        configure: Some(configure(url, second, third)),
        env: HashMap::from([(SECRET_ENV.to_string(), SECRET.to_string())]),
        clock: None,
    }
}

async fn run(
    backend: common::Backend,
    test: &str,
    body: impl AsyncFnOnce(common::TestApp, Receiver),
) {
    let (receiver, url) = Receiver::start().await;
    let Some(app) = common::TestApp::spawn_with(backend, test, options(url, 3, 6)).await else {
        return;
    };
    body(app, receiver).await;
}

async fn rows_then_ack_link(app: common::TestApp, rx: Receiver) {
    app.ok("dev", r#"/incident declare level:2 title:"API errors""#)
        .await;
    let first = rx.wait_for(2, Duration::from_secs(5)).await;
    let mut who: Vec<_> = rx.people_and_tiers();
    who.sort();
    assert_eq!(
        who,
        [("dba".into(), 1), ("sysadmin".into(), 1)],
        "row 1 at once"
    );
    assert_eq!(first[0]["incident"]["ref"], "INC-1");
    assert_eq!(first[0]["incident"]["level_name"], "Partial System Failure");
    // Nothing more before the second row's delay.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.pages().len(), 2);
    let all = rx.wait_for(6, Duration::from_secs(6)).await;
    assert!(all[2..].iter().all(|p| p["tier"] == 2), "{all:#?}");

    // The ack link: GET (what a link scanner does) changes nothing.
    let link = all[0]["ack_url"]
        .as_str()
        .unwrap()
        .replace(&app.engine.config().server.public_url, &app.addr);
    let client = reqwest::Client::new();
    let page = client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\">") && html.contains("INC-1"),
        "{html}"
    );
    assert_eq!(app.incident("INC-1").await["state"], "declared");
    // The POST acknowledges, as the link's person.
    let done = client.post(&link).send().await.unwrap();
    assert_eq!(done.status(), 200);
    let inc = app.incident("INC-1").await;
    assert_eq!(inc["state"], "acknowledged");
    let paged_person = all[0]["person"]["id"].as_str().unwrap();
    assert_eq!(inc["acknowledged_by"], paged_person);
    // Used: a clear page, nothing changes.
    let again = client.post(&link).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(again.text().await.unwrap().contains("already used"));
    // Altered: refused.
    let mut altered = link.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == '0' { '1' } else { '0' });
    assert_eq!(client.post(&altered).send().await.unwrap().status(), 404);
    // The third row (6 s) never comes: the ack stopped it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(rx.pages().len(), 6, "{:#?}", rx.people_and_tiers());
    assert_eq!(*rx.refused.lock().unwrap(), 0, "every page was signed");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("spotter_pages_total{method=\"webhook\",outcome=\"sent\"} 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("spotter_time_to_acknowledge_seconds_count{level=\"2\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_paged_on_time_and_the_ack_link_stops_the_rest_sqlite() {
    run(
        common::Backend::Sqlite,
        "rows_ack_sqlite",
        rows_then_ack_link,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_paged_on_time_and_the_ack_link_stops_the_rest_postgres() {
    run(
        common::Backend::Postgres,
        "rows_ack_postgres",
        rows_then_ack_link,
    )
    .await;
}

async fn restart_between_rows(mut app: common::TestApp, rx: Receiver) {
    app.ok("dev", r#"/incident declare level:2 title:"DB slow""#)
        .await;
    rx.wait_for(2, Duration::from_secs(5)).await;
    // Down across the second row's due time, then up again.
    app.restart_after(Duration::from_secs(4)).await;
    rx.wait_for(6, Duration::from_secs(6)).await;
    rx.wait_for(10, Duration::from_secs(8)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut keys: Vec<String> = rx
        .pages()
        .iter()
        .map(|p| p["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "no page twice");
    let tiers: Vec<i64> = rx.people_and_tiers().iter().map(|t| t.1).collect();
    assert_eq!(
        tiers.iter().filter(|t| **t == 1).count(),
        2,
        "row 1 not repeated"
    );
    assert_eq!(
        tiers.iter().filter(|t| **t == 2).count(),
        4,
        "row 2 once each"
    );
    assert_eq!(
        tiers.iter().filter(|t| **t == 3).count(),
        4,
        "row 3 once each"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_rows_neither_loses_nor_repeats_a_page_sqlite() {
    run(
        common::Backend::Sqlite,
        "restart_rows_sqlite",
        restart_between_rows,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_rows_neither_loses_nor_repeats_a_page_postgres() {
    run(
        common::Backend::Postgres,
        "restart_rows_postgres",
        restart_between_rows,
    )
    .await;
}

/// Two replicas on one PostgreSQL database, 200 incidents declared through both: every due page
/// is delivered exactly once, counted at the receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_postgres_page_every_due_page_exactly_once() {
    let (rx, url) = Receiver::start().await;
    // Rows 2 and 3 far away: only row 1 (sysadmin + dba) is due during the test.
    let Some(app) = common::TestApp::spawn_with(
        common::Backend::Postgres,
        "two_replicas_pages",
        options(url, 3600, 7200),
    )
    .await
    else {
        return;
    };
    let replica = app.replica(|_| {}).await;
    let token = app.token_for("dev").await;
    let client = reqwest::Client::new();
    let mut sends = Vec::new();
    for i in 0..200 {
        let base = if i % 2 == 0 {
            app.addr.clone()
        } else {
            replica.addr.clone()
        };
        let (client, token) = (client.clone(), token.clone());
        sends.push(tokio::spawn(async move {
            let res = client
                .post(format!("{base}/api/v1/commands"))
                .bearer_auth(token)
                .json(&serde_json::json!({"user": "dev", "text": format!("/incident declare level:2 title:\"outage {i}\"")}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
    rx.wait_for(400, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pages = rx.pages();
    let mut keys: Vec<&str> = pages
        .iter()
        .map(|p| p["idempotency_key"].as_str().unwrap())
        .collect();
    keys.sort();
    let n = keys.len();
    keys.dedup();
    assert_eq!(
        (n, keys.len()),
        (400, 400),
        "every due page once, none twice"
    );
    let mut incidents: Vec<&str> = pages
        .iter()
        .map(|p| p["incident"]["ref"].as_str().unwrap())
        .collect();
    incidents.sort();
    incidents.dedup();
    assert_eq!(incidents.len(), 200);
    replica.stop().await;
    app.stop().await;
}

/// Guessing links is a failed authentication like a wrong token: the client's failure budget
/// (20 at once) runs out and the answer becomes 429, before any link is looked up.
#[tokio::test]
async fn forged_ack_links_spend_the_failure_budget_and_change_nothing() {
    let Some(app) = common::TestApp::spawn(common::Backend::Sqlite, "forged_ack_links").await
    else {
        return;
    };
    app.ok("dev", r#"/incident declare level:2 title:"x""#)
        .await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..25 {
        let token = format!("{:032x}.{:032x}", i, i);
        let res = client
            .post(format!("{}/ack/{token}", app.addr))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert!(statuses[..20].iter().all(|s| *s == 404), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // Malformed tokens and HTML in the path are answered with the same clear page, escaped.
    let res = client
        .get(format!(
            "{}/ack/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            app.addr
        ))
        .send()
        .await
        .unwrap();
    assert!(!res.text().await.unwrap().contains("<script>"));
    assert_eq!(app.incident("INC-1").await["state"], "declared");
    app.stop().await;
}
