//! The HTTP doors on the default configuration (every source with its generated credential):
//! invented methods, floods of bad signatures and bad tokens, a same-host proxy without the
//! credential, replays, oversize bodies.
//!
//! Floods come from other loopback addresses (127.0.0.2, …: all of 127/8 is this host), so the
//! honest sender on 127.0.0.1 can be shown not to be throttled.

use crate::common::{self, TestApp};
use crate::dual_test;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const FIRING: &str = include_str!("../fixtures/alertmanager-firing.json");
const GRAFANA: &str = include_str!("../fixtures/grafana-firing.json");
const PD_TRIGGER: &str = include_str!("../fixtures/pagerduty-trigger.json");
pub(crate) const GENERIC: &str = "/webhooks/generic/backup-jobs";

/// A client whose connections come from `ip`.
pub(crate) fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub(crate) fn secret(app: &TestApp, source: &str) -> String {
    std::fs::read_to_string(app.dir.path().join(format!("data/sources/{source}.secret")))
        .unwrap_or_else(|e| panic!("the {source} source's generated credential: {e}"))
}

pub(crate) fn sign(secret: &str, ts: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn post_generic(
    app: &TestApp,
    client: &reqwest::Client,
    ts: i64,
    signature: &str,
    body: &str,
) -> reqwest::Response {
    client
        .post(format!("{}{GENERIC}", app.addr))
        .header("content-type", "application/json")
        .header("x-spotter-timestamp", ts.to_string())
        .header("x-spotter-signature", signature)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// Nothing reached the store: no incident, no alert.
async fn store_untouched(app: &TestApp) {
    assert!(
        app.incidents("all").await.is_empty(),
        "an incident was opened"
    );
    let alerts = app.get_json("/api/v1/alerts").await;
    assert_eq!(alerts["alerts"], json!([]), "an alert was recorded");
}

pub(crate) async fn still_up(app: &TestApp) {
    let r = app
        .client
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the process is up");
}

pub(crate) fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub(crate) fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()
        .get("retry-after")
        .expect("429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

dual_test!(
    invented_methods_leave_metrics_small_and_labelled_other,
    |app| async {
        let before = app.metrics().await;
        let histogram = |m: &str| {
            m.lines()
                .filter(|l| l.starts_with("spotter_http_request_duration_seconds_count"))
                .count()
        };
        let paths = [
            "/healthz",
            "/api/v1/incidents",
            "/webhooks/alertmanager",
            "/nope",
        ];
        for n in 1..=300 {
            let method = reqwest::Method::from_bytes(format!("FOO{n}").as_bytes()).unwrap();
            let path = paths[n % paths.len()];
            let r = app
                .client
                .request(method, format!("{}{path}", app.addr))
                .send()
                .await
                .unwrap();
            // /api/v1 checks the token before the method (401), and these tokenless requests
            // soon spend this client's failure budget (429).
            assert!(
                [401, 404, 405, 429].contains(&r.status().as_u16()),
                "FOO{n} {path}: {}",
                r.status()
            );
        }
        let after = app.metrics().await;
        assert!(!after.contains("FOO"), "a method token became a label");
        assert!(after.contains(r#"method="other""#), "{after}");
        assert!(
            histogram(&after) <= histogram(&before) + paths.len() * 2,
            "300 methods made {} new series",
            histogram(&after) - histogram(&before)
        );
        assert!(after.len() < 64 * 1024, "/metrics is {} bytes", after.len());
        store_untouched(&app).await;
        still_up(&app).await;
    }
);

dual_test!(
    a_flood_of_bad_signatures_is_refused_before_any_hmac_and_a_signed_sender_is_not_throttled,
    |app| async {
        let key = secret(&app, "backup-jobs");
        let flooder = client_from("127.0.0.2");
        let honest = client_from("127.0.0.1");
        let body =
            r#"{"summary":"Nightly backup failed","component":"database","dedup_key":"nightly"}"#;
        let forged = format!("sha256={}", "0".repeat(64));
        let mut statuses = Vec::new();
        for i in 0..40 {
            let r = post_generic(&app, &flooder, now(), &forged, body).await;
            if r.status() == 429 {
                assert!((1..=60).contains(&retry_after(&r)), "{:?}", r.headers());
            }
            statuses.push(r.status().as_u16());
            // The honest sender keeps getting through, signing each delivery afresh.
            if i % 8 == 0 {
                let ts = now() + i; // a new signature each time
                let r = post_generic(&app, &honest, ts, &sign(&key, ts, body), body).await;
                assert_eq!(r.status(), 200, "the signed sender was throttled at {i}");
            }
        }
        assert_eq!(&statuses[..20], &[401; 20], "{statuses:?}");
        assert_eq!(&statuses[20..], &[429; 20], "{statuses:?}");
        // Over its budget, the flooder is not even heard out: a right signature gets 429 too…
        let ts = now() + 100;
        let r = post_generic(&app, &flooder, ts, &sign(&key, ts, body), body).await;
        assert_eq!(r.status(), 429);
        // …and so does a request whose 1 MiB body never arrives: nothing was read or hashed.
        let raw = raw_request_without_its_body(&app.addr, "127.0.0.2", GENERIC).await;
        assert!(raw.starts_with("HTTP/1.1 429"), "{raw}");
        // The metrics say what happened, by source and reason.
        let m = app.metrics().await;
        let rejected = |reason: &str| {
            sample(
                &m,
                &format!(
                    "spotter_webhook_rejections_total{{source=\"backup-jobs\",reason=\"{reason}\"}}"
                ),
            )
        };
        assert_eq!(rejected("bad_signature"), 20.0, "{m}");
        assert_eq!(rejected("throttled"), 22.0, "{m}");
        // The flood changed nothing: one alert, one incident, both from the honest sender.
        assert_eq!(app.incidents("all").await.len(), 1);
        let alerts = app.get_json("/api/v1/alerts").await;
        assert_eq!(alerts["alerts"].as_array().unwrap().len(), 1);
        still_up(&app).await;
    }
);

/// Sends a POST declaring a 1 MiB body but only its first bytes, and returns what the server
/// answers within 5 s (empty when it waits for the rest).
async fn raw_request_without_its_body(addr: &str, from: &str, path: &str) -> String {
    let target: std::net::SocketAddr = addr.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(target).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\n\
         X-Spotter-Timestamp: {}\r\nX-Spotter-Signature: sha256={}\r\nContent-Length: 1048576\r\n\r\n{{\"summary\":",
        now(),
        "0".repeat(64)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        _ => String::new(),
    }
}

dual_test!(
    a_flood_of_bad_api_tokens_is_refused_and_the_token_holder_is_not_throttled,
    |app| async {
        let flooder = client_from("127.0.0.3");
        let mut statuses = Vec::new();
        for _ in 0..25 {
            let r = flooder
                .get(format!("{}/api/v1/incidents", app.addr))
                .bearer_auth("guessed-token")
                .send()
                .await
                .unwrap();
            statuses.push(r.status().as_u16());
        }
        assert_eq!(&statuses[..20], &[401; 20], "{statuses:?}");
        assert_eq!(&statuses[20..], &[429; 5], "{statuses:?}");
        // The holder of the right token is served, elsewhere and even from the flooding address
        // (a token is compared before the budget is consulted).
        assert!(app.incidents("all").await.is_empty());
        let r = flooder
            .get(format!("{}/api/v1/incidents", app.addr))
            .bearer_auth(app.token.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the token holder was throttled");
        // Commands sent while the flood is refused change nothing.
        let r = flooder
            .post(format!("{}/api/v1/commands", app.addr))
            .bearer_auth("guessed-token")
            .json(&json!({"text": "/incident declare level:5 title:\"x\"", "user": "sysadmin"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        store_untouched(&app).await;
    }
);

dual_test!(
    a_flood_of_bad_tokens_through_a_shared_proxy_does_not_lock_out_the_real_sender,
    |app| async {
        // Attacker and Alertmanager both behind nginx on this host: one address, 127.0.0.1.
        let mut statuses = Vec::new();
        for _ in 0..30 {
            let r = app
                .post_raw(
                    "/webhooks/alertmanager",
                    &[("authorization", "Bearer guessed")],
                    FIRING.to_string(),
                )
                .await;
            if r.status() == 429 {
                assert!(retry_after(&r) >= 1);
            }
            statuses.push(r.status().as_u16());
        }
        assert_eq!(&statuses[..20], &[401; 20], "{statuses:?}");
        assert_eq!(&statuses[20..], &[429; 10], "{statuses:?}");
        store_untouched(&app).await;
        assert_eq!(app.post_alertmanager(FIRING).await.status(), 200);
        assert_eq!(app.incidents("all").await.len(), 1);
    }
);

dual_test!(
    a_flood_of_metrics_scrapes_is_limited_per_client,
    |app| async {
        let flooder = client_from("127.0.0.4");
        let mut limited = 0;
        for _ in 0..80 {
            let r = flooder
                .get(format!("{}/metrics", app.addr))
                .send()
                .await
                .unwrap();
            if r.status() == 429 {
                assert!(retry_after(&r) >= 1);
                limited += 1;
            } else {
                assert_eq!(r.status(), 200);
            }
        }
        assert!(limited >= 20, "only {limited} of 80 scrapes were limited");
        // Another scraper is unaffected.
        assert!(app.metrics().await.contains("spotter_incidents"));
    }
);

dual_test!(
    a_same_host_proxy_without_the_credential_is_refused,
    |app| async {
        // Everything comes from 127.0.0.1, as through nginx on the same host.
        let proxy = [
            ("x-forwarded-for", "203.0.113.9"),
            ("x-real-ip", "203.0.113.9"),
        ];
        let unsigned: &[(&str, &str, &str)] = &[
            ("/webhooks/alertmanager", FIRING, "missing_credential"),
            (
                "/webhooks/alertmanager/alertmanager",
                FIRING,
                "missing_credential",
            ),
            ("/webhooks/grafana", GRAFANA, "missing_credential"),
            ("/v2/enqueue", PD_TRIGGER, "bad_credential"),
            (GENERIC, r#"{"summary":"x"}"#, "missing_credential"),
        ];
        for (path, body, _) in unsigned {
            let r = app.post_raw(path, &proxy, body.to_string()).await;
            assert_eq!(r.status(), 401, "{path} without the credential");
        }
        let wrong = [("authorization", "Bearer not-the-token"), proxy[0]];
        for path in ["/webhooks/alertmanager", "/webhooks/grafana"] {
            let body = if path.contains("grafana") {
                GRAFANA
            } else {
                FIRING
            };
            let r = app.post_raw(path, &wrong, body.to_string()).await;
            assert_eq!(r.status(), 401, "{path} with a wrong token");
        }
        store_untouched(&app).await;
        let m = app.metrics().await;
        for (source, reason, n) in [
            ("alertmanager", "missing_credential", 2.0),
            ("alertmanager", "bad_credential", 1.0),
            ("grafana", "missing_credential", 1.0),
            ("uptime", "bad_credential", 1.0),
            ("backup-jobs", "missing_credential", 1.0),
        ] {
            let series = format!(
                "spotter_webhook_rejections_total{{source=\"{source}\",reason=\"{reason}\"}}"
            );
            assert_eq!(sample(&m, &series), n, "{series}\n{m}");
        }
        // With the credential, the same proxy gets through.
        assert_eq!(app.post_alertmanager(FIRING).await.status(), 200);
        still_up(&app).await;
    }
);

dual_test!(replays_within_the_window_are_refused, |app| async {
    let key = secret(&app, "backup-jobs");
    let body = r#"{"summary":"Disk almost full","component":"database","dedup_key":"disk"}"#;
    let ts = now();
    let sig = sign(&key, ts, body);
    let honest = &app.client;
    assert_eq!(
        post_generic(&app, honest, ts, &sig, body).await.status(),
        200
    );
    // The same delivery again, and dressed up: the same MAC is the same signature.
    let bare = sig.trim_start_matches("sha256=").to_string();
    for again in [sig.clone(), bare.to_ascii_uppercase(), format!("  {sig} ")] {
        let r = post_generic(&app, honest, ts, &again, body).await;
        assert_eq!(r.status(), 401, "{again}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error"].as_str().unwrap().starts_with("replayed request"),
            "{e}"
        );
    }
    // From another address too.
    let r = post_generic(&app, &client_from("127.0.0.5"), ts, &sig, body).await;
    assert_eq!(r.status(), 401);
    // Signed afresh, it is accepted (a duplicate of the known alert: nothing new).
    let ts2 = ts + 1;
    let r = post_generic(&app, honest, ts2, &sign(&key, ts2, body), body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["duplicates"], 1);
    assert_eq!(app.incidents("all").await.len(), 1);
    let m = app.metrics().await;
    assert_eq!(
        sample(
            &m,
            "spotter_webhook_rejections_total{source=\"backup-jobs\",reason=\"replayed\"}"
        ),
        4.0,
        "{m}"
    );
});

dual_test!(oversize_bodies_are_413_and_change_nothing, |app| async {
    let big = format!("{{\"summary\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let am = format!("Bearer {}", secret(&app, "alertmanager"));
    let gf = format!("Bearer {}", secret(&app, "grafana"));
    let ts = now();
    let sig = sign(&secret(&app, "backup-jobs"), ts, &big);
    let ts = ts.to_string();
    let doors: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/webhooks/alertmanager",
            vec![("authorization", am.as_str())],
        ),
        ("/webhooks/grafana", vec![("authorization", gf.as_str())]),
        ("/v2/enqueue", vec![]),
        (
            GENERIC,
            vec![
                ("x-spotter-timestamp", ts.as_str()),
                ("x-spotter-signature", sig.as_str()),
            ],
        ),
    ];
    for (path, headers) in &doors {
        // The server may answer 413 and close before the client has written the whole body:
        // the client then sees a broken pipe instead of the answer. Tried again until the
        // answer is read (it has been on the first try but for rare runs).
        let mut answered = None;
        for _ in 0..5 {
            match app.try_post_raw(path, headers, big.clone()).await {
                Ok(r) => {
                    answered = Some(r.status());
                    break;
                }
                Err(e) => assert!(e.is_request() || e.is_body(), "{path}: {e}"),
            }
        }
        assert_eq!(answered.map(|s| s.as_u16()), Some(413), "{path}");
    }
    // Without a Content-Length (chunked), the limit holds while reading.
    let chunks =
        futures::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])));
    let r = app
        .client
        .post(format!("{}/webhooks/alertmanager", app.addr))
        .header("authorization", &am)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status(), 413, "chunked"),
        // The server answered 413 and closed the connection while the client was still
        // writing the rest of the stream: the client sees the broken pipe, not the answer.
        // What matters holds either way and is checked below: nothing was stored.
        Err(e) => assert!(
            e.is_request() && format!("{e:?}").contains("BrokenPipe"),
            "chunked: {e:?}"
        ),
    }
    let r = app
        .post_json(
            "/api/v1/commands",
            &json!({"text": big, "user": "sysadmin"}),
        )
        .await;
    assert_eq!(r.status(), 413, "/api/v1/commands");
    store_untouched(&app).await;
    let m = app.metrics().await;
    assert!(
        sample(
            &m,
            "spotter_webhook_rejections_total{source=\"alertmanager\",reason=\"too_large\"}"
        ) >= 2.0,
        "{m}"
    );
    still_up(&app).await;
});

#[allow(dead_code)]
fn unused(_: common::Backend) {}
