//! HTTP steps: one request (a deploy hook, a DNS provider's failover API, a status page), its
//! answer's status and the start of its body as output.
//!
//! With `hmac_secret_env` the request is signed exactly like Spotter's outbound webhooks (and
//! what generic intake checks), with the same function:
//! `X-Spotter-Timestamp: <unix seconds>` and
//! `X-Spotter-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>`.
//!
//! Redirects are not followed: a signed request must not be replayed at another host, nor a POST
//! turned into a GET; a 3xx is an answer like any other and fails unless `expect_status` lists it.

use super::{human_duration, Lines, Runner};
use crate::intake::signature::sign_hex;
use reqwest::header::{HeaderName, HeaderValue};
use spotter_core::config::redact_url;
use spotter_core::runbook::{Action, Invocation, OutputSink, StepOutcome};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The most of an answer's body that is read and shown.
pub const MAX_BODY: usize = 64 * 1024;

/// The client of HTTP steps and probes: no redirects, no default timeout (each request carries
/// its step's or probe's own).
pub(super) fn build_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("spotter/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", describe(&e)))
}

/// Runs an HTTP step.
pub(super) async fn run(
    runner: &Runner,
    step: &Invocation,
    out: &dyn OutputSink,
    cancel: CancellationToken,
) -> StepOutcome {
    let request = match build(runner, step) {
        Ok(r) => r,
        Err(reason) => return StepOutcome::NotStarted { reason },
    };
    let Action::Http { expect_status, .. } = &step.action else {
        unreachable!("build checked the action");
    };
    let exchange = async {
        let mut resp = request.send().await.map_err(|e| failed(&e))?;
        let status = resp.status().as_u16();
        out.line(&format!("HTTP {status}"));
        let mut lines = Lines::default();
        let mut read = 0usize;
        while read < MAX_BODY {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    let take = c.len().min(MAX_BODY - read);
                    lines.push(&c[..take], out);
                    read += take;
                }
                Ok(None) => break,
                Err(e) => {
                    lines.finish(out);
                    out.line(&format!("note: the body was cut short: {}", describe(&e)));
                    break;
                }
            }
        }
        lines.finish(out);
        if read >= MAX_BODY {
            out.line(&format!(
                "note: the body was cut at {} KiB",
                MAX_BODY / 1024
            ));
        }
        Ok::<u16, StepOutcome>(status)
    };
    let status = tokio::select! {
        biased;
        _ = cancel.cancelled() => return StepOutcome::Cancelled,
        r = tokio::time::timeout(step.timeout, exchange) => match r {
            Err(_) => return StepOutcome::TimedOut,
            Ok(Err(outcome)) => return outcome,
            Ok(Ok(status)) => status,
        },
    };
    if accepted(status, expect_status) {
        StepOutcome::Succeeded {
            detail: format!("HTTP {status}"),
        }
    } else {
        StepOutcome::Failed {
            exit_code: None,
            detail: format!("HTTP {status} (expected {})", expected(expect_status)),
        }
    }
}

/// The request of an HTTP step, or why it cannot be sent.
fn build(runner: &Runner, step: &Invocation) -> Result<reqwest::RequestBuilder, String> {
    let Action::Http {
        method,
        url,
        headers,
        body,
        hmac_secret_env,
        ..
    } = &step.action
    else {
        unreachable!("http::run is only called for HTTP steps");
    };
    let client = runner.client()?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("method `{method}` is not an HTTP method (GET, POST, PUT, …)"))?;
    let parsed = parse_url(url)?;
    let mut request = client
        .request(method, parsed)
        .timeout(step.timeout.max(Duration::from_millis(1)));
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header `{name}` is not a valid header name"))?;
        // The value is not shown: it may be a token.
        let v = HeaderValue::from_str(value).map_err(|_| {
            format!("header `{name}`: its value holds characters a header cannot (line breaks, control characters)")
        })?;
        request = request.header(n, v);
    }
    let body = body.clone().unwrap_or_default();
    if let Some(var) = hmac_secret_env {
        let secret = runner.secret_env(var).ok_or_else(|| {
            format!("hmac_secret_env: the environment variable {var} is not set (or empty); set it and restart Spotter")
        })?;
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = sign_hex(
            secret.as_bytes(),
            &[timestamp.as_bytes(), b".", body.as_bytes()],
        );
        request = request
            .header("X-Spotter-Timestamp", timestamp)
            .header("X-Spotter-Signature", format!("sha256={signature}"));
    }
    Ok(request.body(body))
}

/// An `http://` or `https://` URL (errors show it with its secrets redacted).
pub(super) fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("url `{}` is not a valid URL: {e}", redact_url(url)))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "url `{}` must start with http:// or https://",
            redact_url(url)
        ));
    }
    Ok(parsed)
}

fn accepted(status: u16, expect: &[u16]) -> bool {
    if expect.is_empty() {
        (200..300).contains(&status)
    } else {
        expect.contains(&status)
    }
}

fn expected(expect: &[u16]) -> String {
    match expect {
        [] => "2xx".into(),
        [one] => one.to_string(),
        many => {
            let list: Vec<String> = many.iter().map(u16::to_string).collect();
            format!("one of {}", list.join(", "))
        }
    }
}

/// A request that got no answer: it ran, and failed.
fn failed(e: &reqwest::Error) -> StepOutcome {
    if e.is_timeout() {
        return StepOutcome::TimedOut;
    }
    StepOutcome::Failed {
        exit_code: None,
        detail: describe(e),
    }
}

/// A reqwest error as it may be shown: never its URL (a path or query can be a credential); a
/// refused connection as "connection refused (host:port)".
pub(super) fn describe(e: &reqwest::Error) -> String {
    let target = e
        .url()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)));
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut io_kind = None;
    let mut chain = Vec::new();
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        chain.push(c.to_string());
        cause = c.source();
    }
    let at = target.map(|t| format!(" ({t})")).unwrap_or_default();
    if e.is_timeout() {
        return "timed out".into();
    }
    if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
        return format!("connection refused{at}");
    }
    // reqwest's own message names the URL, so it is replaced by what kind of failure it was.
    let head = if e.is_connect() {
        format!("cannot connect{at}")
    } else if e.is_body() || e.is_decode() {
        "cannot read the answer".to_string()
    } else if e.is_redirect() {
        "redirect refused".to_string()
    } else if e.is_builder() {
        "cannot build the request".to_string()
    } else {
        format!("request failed{at}")
    };
    // Each cause usually repeats the next one; the innermost is the most precise.
    match chain.last() {
        Some(last) => format!("{head}: {last}"),
        None => head,
    }
}

/// "timed out after 2 s" (shared by HTTP probes).
pub(super) fn timed_out_after(d: Duration) -> String {
    format!("timed out after {}", human_duration(d))
}
