//! Two `spotter serve` processes on one PostgreSQL database page 100 incidents, and one of them
//! is killed with SIGKILL halfway: every due page still reaches the (signature-checking)
//! receiver. At least once across crashes: a page the dead replica delivered but had not yet
//! marked may come twice, and is counted, never lost.

mod common;

use common::binary::{client, spotter, Served};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "replica-kill-secret";
const TOKEN: &str = "replica-kill-shared-api-token-0123456789";

type Seen = Arc<Mutex<Vec<(String, i64, String)>>>;

/// The receiver: checks each page's signature and records (incident, tier, person).
fn receiver(rt: &tokio::runtime::Runtime) -> (Seen, String) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    let seen: Seen = Arc::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/page", listener.local_addr().unwrap());
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/page",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
                let ok = spotter_webhooks::intake::signature::verify_signature(
                    SECRET.as_bytes(),
                    h("x-spotter-signature"),
                    spotter_webhooks::intake::signature::Signed::WithTimestamp {
                        timestamp: h("x-spotter-timestamp"),
                        separator: b".",
                        now: chrono::Utc::now().timestamp(),
                        window: 300,
                    },
                    &body,
                );
                if ok.is_err() {
                    return StatusCode::UNAUTHORIZED;
                }
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                s.lock().unwrap().push((
                    v["incident"]["ref"].as_str().unwrap().to_string(),
                    v["tier"].as_i64().unwrap_or(0),
                    v["person"]["id"].as_str().unwrap().to_string(),
                ));
                StatusCode::OK
            }
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (seen, url)
}

#[test]
fn a_replica_killed_mid_run_loses_no_page() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(server) = spotter_core::testkit::postgres_url("replicas_kill") else {
        return;
    };
    let db = rt
        .block_on(spotter_core::testkit::PostgresTestDb::create(&server))
        .unwrap();
    let (seen, url) = receiver(&rt);
    let dir = tempfile::tempdir().unwrap();
    // Everyone by webhook; level 2: sysadmin + dba at once, the full team 2 s later.
    let text = spotter_core::config::DEFAULT_TOML
        .replace(
            "[[person]]\n",
            &format!("[[person]]\nnotify = [{{ kind = \"webhook\", url = \"{url}\", hmac_secret_env = \"SPOTTER_TEST_PAGE_SECRET\" }}]\n"),
        )
        .replace(
            "after = \"15m\"\nnotify = [\"full-team\"]\n",
            "after = \"2s\"\nnotify = [\"full-team\"]\n",
        )
        .replace("notifier_timeout = \"10s\"", "notifier_timeout = \"3s\"");
    std::fs::write(dir.path().join("spotter.toml"), text).unwrap();
    let start = |name: &str| {
        let logs = dir.path().join(name);
        std::fs::create_dir_all(&logs).unwrap();
        let mut cmd = spotter(dir.path(), Some(db.url()));
        cmd.args(["--config", "spotter.toml", "serve"])
            .env("SPOTTER_TEST_PAGE_SECRET", SECRET)
            .env("SPOTTER_API_TOKEN", TOKEN)
            .env("SPOTTER_AUDIT_KEY", "replica-kill-audit-key");
        Served::start(cmd, &logs)
    };
    let mut a = Some(start("a"));
    let b = start("b");
    let http = client();
    let declare = |base: &str, i: usize| {
        let r = http
            .post(format!("{base}/api/v1/commands"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"user": "dev", "text": format!("/incident declare level:2 title:\"outage {i}\"")}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    for i in 0..100 {
        if i == 50 {
            // SIGKILL: whatever replica A had leased (pages, jobs) is left mid-flight.
            let mut dead = a.take().unwrap();
            dead.child.kill().unwrap();
            dead.child.wait().unwrap();
        }
        match &a {
            Some(a) if i % 2 == 0 => declare(&a.url, i),
            _ => declare(&b.url, i),
        }
    }
    // Every incident: 2 pages for row 1, 4 for row 2. Jobs a dead replica leased come back
    // when their lease (60 s) runs out.
    let expected: HashSet<(String, i64, String)> = (1..=100)
        .flat_map(|n| {
            let r = format!("INC-{n}");
            let mut v = vec![
                (r.clone(), 1, "sysadmin".to_string()),
                (r.clone(), 1, "dba".into()),
            ];
            for p in ["sysadmin", "dba", "security", "dev"] {
                v.push((r.clone(), 2, p.to_string()));
            }
            v
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let got: HashSet<_> = seen.lock().unwrap().iter().cloned().collect();
        if expected.is_subset(&got) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pages lost: {} of {} missing, e.g. {:?}",
            expected.difference(&got).count(),
            expected.len(),
            expected.difference(&got).take(5).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let all = seen.lock().unwrap().clone();
    let mut counts: HashMap<&(String, i64, String), usize> = HashMap::new();
    for k in &all {
        *counts.entry(k).or_default() += 1;
    }
    let repeated = counts.values().filter(|c| **c > 1).count();
    eprintln!(
        "{} pages received for {} due, {repeated} received more than once (the killed replica's in-flight deliveries)",
        all.len(),
        expected.len()
    );
    // At most what A could have had in flight when it died: one batch of the pages lane.
    assert!(repeated <= 32, "{repeated} pages repeated");
    drop(b);
    rt.block_on(db.drop_db());
}
