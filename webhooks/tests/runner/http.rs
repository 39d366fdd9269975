//! HTTP steps against a receiver started here: what is sent (method, headers, body, the
//! signature intake would accept), what comes back as output, and how each ending is reported.

use super::{run, runner, Rec};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use spotter_core::runbook::{Action, Executor, Invocation, Secrets, StepOutcome};
use spotter_webhooks::intake::signature::{verify_signature, Signed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "deploy-hook-secret-4b1d";

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Answers by path: `/ok` 200 with two lines, `/down` 503, `/moved` a redirect to `/ok`,
/// `/big` 100 KiB of lines, `/slow` after 30 s.
async fn answer(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_string(),
        headers,
        body,
    });
    match uri.path() {
        "/ok" => "line one\r\nline two\n".into_response(),
        "/down" => (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response(),
        "/moved" => (StatusCode::FOUND, [("location", "/ok")], "").into_response(),
        "/big" => "0123456789abcde\n".repeat(100 * 64).into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late".into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A receiver on a free port: its base URL and what it saw.
async fn receiver() -> (String, Log) {
    let log = Log::default();
    let app = Router::new().fallback(answer).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, log)
}

fn step(method: &str, url: &str) -> Invocation {
    Invocation {
        action: Action::Http {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            hmac_secret_env: None,
            expect_status: Vec::new(),
        },
        timeout: Duration::from_secs(10),
        secrets: Secrets::default(),
    }
}

fn with(mut s: Invocation, f: impl FnOnce(&mut Action)) -> Invocation {
    f(&mut s.action);
    s
}

#[tokio::test]
async fn an_http_step_sends_its_method_headers_and_a_body_signed_like_outbound_webhooks() {
    let (base, log) = receiver().await;
    let body = r#"{"action":"failover","region":"eu-2"}"#;
    let s = with(step("PUT", &format!("{base}/ok")), |a| {
        if let Action::Http {
            headers,
            body: b,
            hmac_secret_env,
            ..
        } = a
        {
            headers.push(("Content-Type".into(), "application/json".into()));
            headers.push(("X-Run".into(), "run-17".into()));
            *b = Some(body.into());
            *hmac_secret_env = Some("DEPLOY_HOOK_SECRET".into());
        }
    });
    let (outcome, lines) = run(&runner(&[("DEPLOY_HOOK_SECRET", SECRET)]), &s).await;
    assert_eq!(
        outcome,
        StepOutcome::Succeeded {
            detail: "HTTP 200".into()
        }
    );
    assert_eq!(lines, ["HTTP 200", "line one", "line two"]);

    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.method, Method::PUT);
    assert_eq!(seen.path, "/ok");
    assert_eq!(seen.body, body.as_bytes());
    assert_eq!(seen.headers["x-run"], "run-17");
    assert_eq!(seen.headers["content-type"], "application/json");
    let header = |n: &str| seen.headers[n].to_str().unwrap().to_string();
    let (timestamp, signature) = (header("x-spotter-timestamp"), header("x-spotter-signature"));
    let signed = Signed::WithTimestamp {
        timestamp: &timestamp,
        separator: b".",
        now: chrono::Utc::now().timestamp(),
        window: 300,
    };
    assert!(signature.starts_with("sha256="), "{signature}");
    verify_signature(SECRET.as_bytes(), &signature, signed, &seen.body).unwrap();
    assert!(verify_signature(b"another-secret", &signature, signed, &seen.body).is_err());
}

#[tokio::test]
async fn an_unsigned_step_carries_no_signature_headers() {
    let (base, log) = receiver().await;
    let (outcome, _) = run(&runner(&[]), &step("POST", &format!("{base}/ok"))).await;
    assert!(outcome.is_success(), "{outcome:?}");
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.method, Method::POST);
    assert!(seen.headers.get("x-spotter-signature").is_none());
    assert!(seen.headers.get("x-spotter-timestamp").is_none());
}

#[tokio::test]
async fn an_unexpected_status_fails_and_an_expected_one_succeeds() {
    let (base, _) = receiver().await;
    let r = runner(&[]);
    let down = step("GET", &format!("{base}/down"));
    let (outcome, lines) = run(&r, &down).await;
    assert_eq!(
        outcome,
        StepOutcome::Failed {
            exit_code: None,
            detail: "HTTP 503 (expected 2xx)".into()
        }
    );
    assert_eq!(lines, ["HTTP 503", "down for maintenance"]);

    let expected = with(down.clone(), |a| {
        if let Action::Http { expect_status, .. } = a {
            *expect_status = vec![503, 504];
        }
    });
    let (outcome, _) = run(&r, &expected).await;
    assert!(outcome.is_success(), "{outcome:?}");

    let only_201 = with(step("GET", &format!("{base}/ok")), |a| {
        if let Action::Http { expect_status, .. } = a {
            *expect_status = vec![201];
        }
    });
    let (outcome, _) = run(&r, &only_201).await;
    assert_eq!(
        outcome,
        StepOutcome::Failed {
            exit_code: None,
            detail: "HTTP 200 (expected 201)".into()
        }
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (base, log) = receiver().await;
    let (outcome, lines) = run(&runner(&[]), &step("POST", &format!("{base}/moved"))).await;
    assert_eq!(
        outcome,
        StepOutcome::Failed {
            exit_code: None,
            detail: "HTTP 302 (expected 2xx)".into()
        }
    );
    assert_eq!(lines, ["HTTP 302"]);
    assert_eq!(log.lock().unwrap().len(), 1, "the redirect was followed");
}

#[tokio::test]
async fn a_big_body_is_cut_at_64_kib() {
    let (base, _) = receiver().await;
    let (outcome, lines) = run(&runner(&[]), &step("GET", &format!("{base}/big"))).await;
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(lines[0], "HTTP 200");
    assert_eq!(lines.last().unwrap(), "note: the body was cut at 64 KiB");
    let body = &lines[1..lines.len() - 1];
    assert_eq!(body.len(), 64 * 1024 / 16);
    assert!(body.iter().all(|l| l == "0123456789abcde"));
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_times_out_and_a_cancel_cancels() {
    let (base, _) = receiver().await;
    let r = runner(&[]);
    let mut slow = step("GET", &format!("{base}/slow"));
    slow.timeout = Duration::from_millis(500);
    let start = Instant::now();
    let (outcome, _) = run(&r, &slow).await;
    assert_eq!(outcome, StepOutcome::TimedOut);
    assert!(start.elapsed() < Duration::from_secs(3));

    slow.timeout = Duration::from_secs(20);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let start = Instant::now();
    let outcome = r.run(&slow, &Rec::default(), cancel).await;
    assert_eq!(outcome, StepOutcome::Cancelled);
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_refused_connection_fails_naming_the_address() {
    let port = super::probe::closed_port().await;
    let (outcome, lines) = run(
        &runner(&[]),
        &step("POST", &format!("http://127.0.0.1:{port}/hook")),
    )
    .await;
    assert_eq!(
        outcome,
        StepOutcome::Failed {
            exit_code: None,
            detail: format!("connection refused (127.0.0.1:{port})")
        }
    );
    assert!(lines.is_empty(), "{lines:?}");
}

#[tokio::test]
async fn steps_that_cannot_be_sent_say_why() {
    let (base, log) = receiver().await;
    let r = runner(&[]);
    let unsigned = with(step("POST", &format!("{base}/ok")), |a| {
        if let Action::Http {
            hmac_secret_env, ..
        } = a
        {
            *hmac_secret_env = Some("MISSING_HOOK_SECRET".into());
        }
    });
    let (outcome, _) = run(&r, &unsigned).await;
    let StepOutcome::NotStarted { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains("MISSING_HOOK_SECRET is not set"),
        "{reason}"
    );

    let (outcome, _) = run(&r, &step("POST", "ftp://example.test/x")).await;
    assert!(
        matches!(&outcome, StepOutcome::NotStarted { reason } if reason.contains("http:// or https://")),
        "{outcome:?}"
    );
    let (outcome, _) = run(&r, &step("POST", "https://user:hunter2@[bad")).await;
    assert!(
        matches!(&outcome, StepOutcome::NotStarted { reason } if reason.contains("not a valid URL") && !reason.contains("hunter2")),
        "{outcome:?}"
    );
    let (outcome, _) = run(&r, &step("GE T", &format!("{base}/ok"))).await;
    assert!(
        matches!(&outcome, StepOutcome::NotStarted { reason } if reason.contains("`GE T` is not an HTTP method")),
        "{outcome:?}"
    );
    let injected = with(step("POST", &format!("{base}/ok")), |a| {
        if let Action::Http { headers, .. } = a {
            headers.push(("X-Note".into(), "ok\r\nX-Evil: 1".into()));
        }
    });
    let (outcome, _) = run(&r, &injected).await;
    assert!(
        matches!(&outcome, StepOutcome::NotStarted { reason } if reason.starts_with("header `X-Note`")),
        "{outcome:?}"
    );
    assert!(log.lock().unwrap().is_empty(), "nothing was sent");
}
