//! The webhook and ntfy notifiers against HTTP receivers started by the test.

use super::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use spotter_core::outbox::{DeliveryError, Notifier};
use spotter_webhooks::intake::signature::{verify_signature, Signed};
use spotter_webhooks::outbound::{NtfyNotifier, WebhookNotifier};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What an HTTP receiver saw.
#[derive(Clone, Debug)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The answer to a request that passes the receiver's check.
    status: StatusCode,
    /// The HMAC secret the receiver verifies with, or the bearer token it wants.
    check: Check,
}

#[derive(Clone)]
enum Check {
    Signature(&'static str),
    Bearer(&'static str),
    Nothing,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.seen.lock().unwrap().push(Seen {
        headers: headers.clone(),
        body: body.clone(),
    });
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ok = match r.check {
        Check::Signature(secret) => {
            let now = chrono::Utc::now().timestamp();
            let signed = Signed::WithTimestamp {
                timestamp: header("x-spotter-timestamp"),
                separator: b".",
                now,
                window: 300,
            };
            verify_signature(
                secret.as_bytes(),
                header("x-spotter-signature"),
                signed,
                &body,
            )
            .is_ok()
        }
        Check::Bearer(token) => header("authorization") == format!("Bearer {token}"),
        Check::Nothing => true,
    };
    if ok {
        r.status
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// Starts an HTTP receiver on 127.0.0.1; its base URL and what it records.
async fn receiver(status: StatusCode, check: Check) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/{*path}", post(receive))
        .with_state(Receiver {
            seen: seen.clone(),
            status,
            check,
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// A listener that accepts connections and never answers on them.
async fn silent() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

fn webhook_person(id: &str, url: &str, var: &str) -> String {
    format!(
        "[[person]]\nid = \"{id}\"\nname = \"Pager Person\"\nnotify = [{{ kind = \"webhook\", url = \"{url}\", hmac_secret_env = \"{var}\" }}]\n"
    )
}

#[tokio::test]
async fn a_webhook_page_is_signed_like_intake_and_carries_the_page() {
    let (base, seen) = receiver(StatusCode::OK, Check::Signature(SECRET)).await;
    let cfg = config(&webhook_person(
        "pager-a",
        &format!("{base}/hook"),
        "HOOK_SECRET",
    ));
    let n = WebhookNotifier::new(cfg, &env(&[("HOOK_SECRET", SECRET)])).unwrap();
    let m = page(Channel::Webhook, "pager-a", 0, "Database down");
    n.deliver(&m).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    assert_eq!(
        h["x-spotter-idempotency-key"],
        "page:INC-7:e3:t1:a0:pager-a:m0"
    );
    assert_eq!(h["content-type"], "application/json");
    let ts: i64 = h["x-spotter-timestamp"].to_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    assert!(h["x-spotter-signature"]
        .to_str()
        .unwrap()
        .starts_with("sha256="));
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["event"], "page");
    assert_eq!(body["idempotency_key"], "page:INC-7:e3:t1:a0:pager-a:m0");
    assert_eq!(
        body["incident"],
        serde_json::json!({
            "ref": "INC-7", "title": "Database down", "level": 3,
            "level_name": "Complete System Failure", "state": "investigating",
            "link": "http://spotter.test/incidents/INC-7"
        })
    );
    assert_eq!(body["tier"], 2, "tier 1 (0-based) is the second tier");
    assert_eq!(
        body["person"],
        serde_json::json!({"id": "pager-a", "name": "Pager Person"})
    );
    assert_eq!(body["message"], m.text);
    assert_eq!(body["ack_url"], ACK_URL);
    assert_eq!(body["reason"], "escalation");
    assert_eq!(body["late_by_seconds"], 12);
    assert_eq!(n.timeout(), Duration::from_secs(1));
}

#[tokio::test]
async fn a_webhook_page_outside_the_matrix_has_null_tier_and_incident() {
    let (base, seen) = receiver(StatusCode::NO_CONTENT, Check::Signature(SECRET)).await;
    let cfg = config(&webhook_person(
        "pager-a",
        &format!("{base}/hook"),
        "HOOK_SECRET",
    ));
    let n = WebhookNotifier::new(cfg, &env(&[("HOOK_SECRET", SECRET)])).unwrap();
    let mut m = page(Channel::Webhook, "pager-a", 0, "x");
    let p = m.page.as_mut().unwrap();
    p.tier = None;
    p.incident = None;
    p.late_by_seconds = None;
    m.ack_url = None;
    n.deliver(&m).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&seen.lock().unwrap()[0].body).unwrap();
    assert!(body["tier"].is_null() && body["incident"].is_null());
    assert!(body["ack_url"].is_null() && body["late_by_seconds"].is_null());
}

#[tokio::test]
async fn a_receiver_with_another_secret_refuses_the_signature_and_the_page_fails() {
    let (base, seen) = receiver(StatusCode::OK, Check::Signature(OTHER_SECRET)).await;
    let cfg = config(&webhook_person(
        "pager-a",
        &format!("{base}/hook"),
        "HOOK_SECRET",
    ));
    let n = WebhookNotifier::new(cfg, &env(&[("HOOK_SECRET", SECRET)])).unwrap();
    let err = n
        .deliver(&page(Channel::Webhook, "pager-a", 0, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("401"), "{text}");
    assert!(text.contains("webhook notify[0] of `pager-a`"), "{text}");
    secrets_absent(&text);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_webhook_answering_500_fails_the_page() {
    let (base, seen) = receiver(StatusCode::INTERNAL_SERVER_ERROR, Check::Signature(SECRET)).await;
    let url = format!("{base}/hook/private-path-token");
    let cfg = config(&webhook_person("pager-a", &url, "HOOK_SECRET"));
    let n = WebhookNotifier::new(cfg, &env(&[("HOOK_SECRET", SECRET)])).unwrap();
    let err = n
        .deliver(&page(Channel::Webhook, "pager-a", 0, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Retry { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("500"), "{text}");
    assert!(!text.contains("private-path-token"), "{text}");
    secrets_absent(&text);
    assert_eq!(seen.lock().unwrap().len(), 1, "the signature verified");
}

#[tokio::test]
async fn a_webhook_that_never_answers_fails_after_the_notifier_timeout() {
    let base = silent().await;
    let cfg = config(&webhook_person(
        "pager-a",
        &format!("{base}/hook"),
        "HOOK_SECRET",
    ));
    let n = WebhookNotifier::new(cfg, &env(&[("HOOK_SECRET", SECRET)])).unwrap();
    let started = Instant::now();
    let err = n
        .deliver(&page(Channel::Webhook, "pager-a", 0, "x"))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(err.to_string().contains("no answer within 1 s"), "{err}");
}

#[tokio::test]
async fn a_missing_webhook_secret_fails_naming_the_variable_never_a_value() {
    let (base, seen) = receiver(StatusCode::OK, Check::Nothing).await;
    let people = format!(
        "{}{}",
        webhook_person("pager-a", &format!("{base}/a"), "HOOK_A_SECRET"),
        webhook_person("pager-b", &format!("{base}/b"), "HOOK_B_SECRET")
    );
    let cfg = config(&people);
    // Only pager-b's secret is set.
    let n = WebhookNotifier::new(cfg, &env(&[("HOOK_B_SECRET", OTHER_SECRET)])).unwrap();
    let debug = format!("{n:?}");
    assert!(debug.contains("HOOK_A_SECRET"), "{debug}");
    secrets_absent(&debug);

    let err = n
        .deliver(&page(Channel::Webhook, "pager-a", 0, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("HOOK_A_SECRET"), "{text}");
    secrets_absent(&text);
    assert!(seen.lock().unwrap().is_empty(), "nothing unsigned went out");

    // The other person's webhook still works.
    n.deliver(&page(Channel::Webhook, "pager-b", 0, "x"))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_message_that_does_not_resolve_to_a_webhook_method_fails_permanently() {
    let (base, seen) = receiver(StatusCode::OK, Check::Nothing).await;
    let cfg = config(&webhook_person(
        "pager-a",
        &format!("{base}/a"),
        "HOOK_SECRET",
    ));
    let n = WebhookNotifier::new(cfg, &env(&[("HOOK_SECRET", SECRET)])).unwrap();
    for (m, expect) in [
        (
            page(Channel::Webhook, "pager-a", 3, "x"),
            "no contact method notify[3]",
        ),
        (
            page(Channel::Webhook, "nobody", 0, "x"),
            "`nobody` is not in the configuration",
        ),
        (
            OutboxMessage {
                page: None,
                approval: None,
                broadcast: None,
                ..page(Channel::Webhook, "pager-a", 0, "x")
            },
            "is not a page",
        ),
    ] {
        let err = n.deliver(&m).await.unwrap_err();
        assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
        assert!(err.to_string().contains(expect), "{err}");
    }
    assert!(seen.lock().unwrap().is_empty());
}

fn ntfy_person(url: &str, token_env: Option<&str>) -> String {
    let token = token_env
        .map(|t| format!(", token_env = \"{t}\""))
        .unwrap_or_default();
    format!(
        "[[person]]\nid = \"pager-n\"\nname = \"Pager Person\"\nnotify = [{{ kind = \"email\" }}, {{ kind = \"ntfy\", url = \"{url}\"{token} }}]\n"
    )
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} header in {h:?}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn an_ntfy_page_carries_title_priority_tags_click_actions_and_token() {
    let (base, seen) = receiver(StatusCode::OK, Check::Bearer(TOKEN)).await;
    let cfg = config(&ntfy_person(&format!("{base}/pages"), Some("NTFY_TOKEN")));
    let n = NtfyNotifier::new(cfg, &env(&[("NTFY_TOKEN", TOKEN)])).unwrap();
    secrets_absent(&format!("{n:?}"));
    let m = page(Channel::Ntfy, "pager-n", 1, "Database down");
    n.deliver(&m).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    assert_eq!(
        header(h, "title"),
        "INC-7 level 3 Complete System Failure: Database down"
    );
    assert_eq!(header(h, "priority"), "5");
    assert_eq!(header(h, "tags"), "rotating_light,level-3");
    assert_eq!(header(h, "click"), "http://spotter.test/incidents/INC-7");
    assert_eq!(
        header(h, "actions"),
        format!("http, Acknowledge, {ACK_URL}, method=POST, clear=true")
    );
    assert_eq!(header(h, "authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(std::str::from_utf8(&seen[0].body).unwrap(), m.text);
}

#[tokio::test]
async fn an_ntfy_title_cannot_inject_a_header_and_non_ascii_survives() {
    use base64::Engine as _;
    let (base, seen) = receiver(StatusCode::OK, Check::Nothing).await;
    let cfg = config(&ntfy_person(&format!("{base}/pages"), None));
    let n = NtfyNotifier::new(cfg, &env(&[])).unwrap();
    let mut m = page(Channel::Ntfy, "pager-n", 1, "Disk full\r\nX-Evil: 1");
    m.page.as_mut().unwrap().incident.as_mut().unwrap().level = 1;
    n.deliver(&m).await.unwrap();
    n.deliver(&page(
        Channel::Ntfy,
        "pager-n",
        1,
        "Müller's DB\r\nX-Evil: 2",
    ))
    .await
    .unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert!(s.headers.get("x-evil").is_none(), "{:?}", s.headers);
        assert!(s.headers.get("authorization").is_none());
    }
    assert_eq!(
        header(&seen[0].headers, "title"),
        "INC-7 level 1 Complete System Failure: Disk full  X-Evil: 1"
    );
    assert_eq!(header(&seen[0].headers, "priority"), "3");
    assert_eq!(header(&seen[0].headers, "tags"), "rotating_light,level-1");
    // RFC 2047, as ntfy decodes it.
    let t = header(&seen[1].headers, "title");
    let b64 = t
        .strip_prefix("=?UTF-8?B?")
        .and_then(|t| t.strip_suffix("?="))
        .unwrap_or_else(|| panic!("{t}"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "INC-7 level 3 Complete System Failure: Müller's DB  X-Evil: 2"
    );
}

#[tokio::test]
async fn an_ntfy_page_without_its_token_or_with_a_wrong_one_fails() {
    let (base, seen) = receiver(StatusCode::OK, Check::Bearer(TOKEN)).await;
    let cfg = config(&ntfy_person(&format!("{base}/pages"), Some("NTFY_TOKEN")));

    let unset = NtfyNotifier::new(cfg.clone(), &env(&[])).unwrap();
    let err = unset
        .deliver(&page(Channel::Ntfy, "pager-n", 1, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("NTFY_TOKEN"), "{err}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing unauthenticated went out"
    );

    let wrong = NtfyNotifier::new(cfg, &env(&[("NTFY_TOKEN", OTHER_SECRET)])).unwrap();
    let err = wrong
        .deliver(&page(Channel::Ntfy, "pager-n", 1, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("401"), "{err}");
    secrets_absent(&err.to_string());
}

#[tokio::test]
async fn an_ntfy_server_answering_503_fails_the_page() {
    let (base, _) = receiver(StatusCode::SERVICE_UNAVAILABLE, Check::Nothing).await;
    let cfg = config(&ntfy_person(&format!("{base}/pages"), None));
    let n = NtfyNotifier::new(cfg, &env(&[])).unwrap();
    let err = n
        .deliver(&page(Channel::Ntfy, "pager-n", 1, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Retry { .. }), "{err:?}");
    assert!(err.to_string().contains("503"), "{err}");
    // The method index is checked: notify[0] of this person is email, not ntfy.
    let err = n
        .deliver(&page(Channel::Ntfy, "pager-n", 0, "x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is email, not ntfy"), "{err}");
}
