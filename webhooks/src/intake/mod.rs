//! Alert intake over HTTP: Alertmanager, Grafana, PagerDuty Events v2 and signed generic JSON.
//!
//! Each request goes through the same gates, in this order:
//! 1. The source: unknown → 404.
//! 2. The body, read up to the source's `max_body`: larger → 413.
//! 3. Credentials: missing or wrong, or a stale or replayed signature → 401. A source without a
//!    credential takes requests from loopback only.
//! 4. The source's rate: over it → 429 with `Retry-After`.
//! 5. The payload: malformed → 400 naming the field.
//! 6. Ingest, and only then 2xx: every change is committed before the answer. Storage trouble →
//!    503 with `Retry-After` (Alertmanager retries 5xx only); nothing is half-written.

pub mod parse;

use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use spotter_core::alerts::AlertBatch;
use spotter_core::config::{Config, Credential, SourceConfig, SourceKind};
use spotter_core::Secret;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

/// How far a signed request's timestamp may be from now.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;

struct Source {
    config: SourceConfig,
    /// The credential's secret, read from its environment variable at start-up.
    secret: Option<Secret>,
    limiter: DefaultDirectRateLimiter,
}

/// The sources with their secrets and rate limiters, and recently used signatures.
pub struct Intake {
    sources: Vec<Source>,
    /// Signature → the Unix time it stops mattering (end of its timestamp window).
    seen_signatures: Mutex<HashMap<String, i64>>,
}

impl Intake {
    /// Reads each source's secret through `env`. Returns the warnings to log at start-up.
    pub fn from_config(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> (Intake, Vec<String>) {
        let mut warnings = Vec::new();
        let sources = config
            .sources
            .iter()
            .map(|s| {
                let var = match &s.credential {
                    Credential::None => None,
                    Credential::Bearer { token_env } => Some(token_env),
                    Credential::Basic { password_env, .. } => Some(password_env),
                    Credential::Hmac { secret_env, .. } => Some(secret_env),
                    Credential::RoutingKey { key_env } => Some(key_env),
                };
                let secret = var
                    .and_then(|v| env(v))
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| Secret::new(v.trim()));
                if secret.is_none() {
                    let why = match var {
                        Some(v) => format!("${v} is not set"),
                        None => "no credential is configured".to_string(),
                    };
                    warnings.push(format!(
                        "alert source `{}` ({}): {why}; accepting its requests from loopback only",
                        s.id,
                        s.kind.as_str()
                    ));
                }
                let per_second = s.rate_per_second;
                let quota = if per_second >= 1.0 {
                    Quota::per_second(
                        NonZeroU32::new(per_second.round() as u32).unwrap_or(NonZeroU32::MIN),
                    )
                } else {
                    Quota::with_period(Duration::from_secs_f64(1.0 / per_second))
                        .expect("a positive period")
                };
                let quota = quota.allow_burst(NonZeroU32::new(s.burst).unwrap_or(NonZeroU32::MIN));
                Source {
                    config: s.clone(),
                    secret,
                    limiter: RateLimiter::direct(quota),
                }
            })
            .collect();
        (
            Intake {
                sources,
                seen_signatures: Mutex::new(HashMap::new()),
            },
            warnings,
        )
    }

    fn find(&self, kind: SourceKind, id: Option<&str>) -> Result<&Source, IntakeError> {
        self.sources
            .iter()
            .find(|s| s.config.kind == kind && id.is_none_or(|id| s.config.id == id))
            .ok_or_else(|| {
                IntakeError::UnknownSource(match id {
                    Some(id) => format!("no {} source `{id}` is configured", kind.as_str()),
                    None => format!("no {} source is configured", kind.as_str()),
                })
            })
    }

    /// Remembers a signature until its window closes; `false` when it was already used.
    fn first_use(&self, signature: &str, expires: i64, now: i64) -> bool {
        let mut seen = self.seen_signatures.lock().unwrap();
        if seen.len() > 10_000 {
            seen.retain(|_, exp| *exp > now);
        }
        match seen.get(signature) {
            Some(exp) if *exp > now => false,
            _ => {
                seen.insert(signature.to_string(), expires);
                true
            }
        }
    }
}

/// Why a request was refused before it reached the engine.
#[derive(Debug)]
pub enum IntakeError {
    UnknownSource(String),
    TooLarge(usize),
    Unauthorized(String),
    RateLimited(u64),
    BadPayload(String),
    Api(ApiError),
}

impl From<spotter_core::StoreError> for IntakeError {
    fn from(e: spotter_core::StoreError) -> Self {
        IntakeError::Api(e.into())
    }
}

impl IntakeError {
    fn status(&self) -> StatusCode {
        match self {
            IntakeError::UnknownSource(_) => StatusCode::NOT_FOUND,
            IntakeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IntakeError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            IntakeError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            IntakeError::BadPayload(_) => StatusCode::BAD_REQUEST,
            IntakeError::Api(e) => e.status(),
        }
    }
    fn message(&self) -> String {
        match self {
            IntakeError::UnknownSource(m)
            | IntakeError::Unauthorized(m)
            | IntakeError::BadPayload(m) => m.clone(),
            IntakeError::TooLarge(max) => {
                format!("request body is larger than this source's limit of {max} bytes")
            }
            IntakeError::RateLimited(s) => {
                format!("rate limit exceeded for this source; retry in {s} s")
            }
            IntakeError::Api(e) => e.to_string(),
        }
    }
}

impl IntoResponse for IntakeError {
    fn into_response(self) -> Response {
        match self {
            IntakeError::Api(e) => e.into_response(),
            IntakeError::RateLimited(secs) => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(serde_json::json!({"error": self.message()})),
                )
                    .into_response();
                r.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, secs.into());
                r
            }
            IntakeError::TooLarge(_) => {
                // The rest of the body was not read, so this connection cannot carry another
                // request: say so, or a client may reuse it and fail on a closed socket.
                let mut r = (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Json(serde_json::json!({"error": self.message()})),
                )
                    .into_response();
                r.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
                r
            }
            other => (
                other.status(),
                Json(serde_json::json!({"error": other.message()})),
            )
                .into_response(),
        }
    }
}

async fn read_body(
    body: Body,
    headers: &HeaderMap,
    max: usize,
) -> Result<bytes::Bytes, IntakeError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(IntakeError::TooLarge(max));
    }
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| IntakeError::TooLarge(max))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn hmac_hex(secret: &Secret, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Checks the request's credential against the source's.
fn authenticate(
    intake: &Intake,
    src: &Source,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), IntakeError> {
    let id = &src.config.id;
    let Some(secret) = &src.secret else {
        return if peer.ip().is_loopback() {
            Ok(())
        } else {
            Err(IntakeError::Unauthorized(format!(
                "source `{id}` has no credential configured; only loopback requests are accepted"
            )))
        };
    };
    let auth = header(headers, "authorization").unwrap_or("");
    match &src.config.credential {
        Credential::Bearer { .. } => match auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
        {
            Some(t) if secret.matches(t.trim()) => Ok(()),
            _ => Err(IntakeError::Unauthorized(
                "missing or invalid bearer token".into(),
            )),
        },
        Credential::Basic { user, .. } => {
            use base64::Engine as _;
            let decoded = auth
                .strip_prefix("Basic ")
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .and_then(|b| String::from_utf8(b).ok());
            let ok = decoded
                .as_deref()
                .and_then(|d| d.split_once(':'))
                .is_some_and(|(u, p)| {
                    // Both compared in constant time, and both always compared.
                    let user_ok = spotter_core::secrets_equal(u.as_bytes(), user.as_bytes());
                    let pass_ok = secret.matches(p);
                    user_ok & pass_ok
                });
            if ok {
                Ok(())
            } else {
                Err(IntakeError::Unauthorized(
                    "missing or invalid basic credentials".into(),
                ))
            }
        }
        Credential::Hmac {
            timestamp_header, ..
        } => {
            let (sig_header, sep) = match src.config.kind {
                SourceKind::Generic => ("x-spotter-signature", "."),
                _ => ("x-grafana-alerting-signature", ":"),
            };
            let presented = header(headers, sig_header)
                .map(|s| s.trim().trim_start_matches("sha256=").to_ascii_lowercase())
                .ok_or_else(|| IntakeError::Unauthorized(format!("missing {sig_header} header")))?;
            let expected = match timestamp_header {
                Some(th) => {
                    let ts_raw = header(headers, th)
                        .ok_or_else(|| IntakeError::Unauthorized(format!("missing {th} header")))?;
                    let ts: i64 = ts_raw.trim().parse().map_err(|_| {
                        IntakeError::Unauthorized(format!("{th} must be Unix seconds"))
                    })?;
                    let now = chrono::Utc::now().timestamp();
                    if (now - ts).abs() > SIGNATURE_WINDOW_SECS {
                        return Err(IntakeError::Unauthorized(format!(
                            "stale request: {th} is {} s from now (at most {SIGNATURE_WINDOW_SECS} s)",
                            (now - ts).abs()
                        )));
                    }
                    let expected =
                        hmac_hex(secret, &[ts_raw.trim().as_bytes(), sep.as_bytes(), body]);
                    if spotter_core::secrets_equal(expected.as_bytes(), presented.as_bytes())
                        && !intake.first_use(&expected, ts + SIGNATURE_WINDOW_SECS, now)
                    {
                        return Err(IntakeError::Unauthorized("replayed request: this signature was already used; sign each delivery afresh".into()));
                    }
                    expected
                }
                None => hmac_hex(secret, &[body]),
            };
            if spotter_core::secrets_equal(expected.as_bytes(), presented.as_bytes()) {
                Ok(())
            } else {
                Err(IntakeError::Unauthorized("invalid signature".into()))
            }
        }
        Credential::RoutingKey { .. } => Ok(()), // checked against the body's routing_key
        Credential::None => Ok(()),
    }
}

fn rate_limit(src: &Source) -> Result<(), IntakeError> {
    src.limiter.check().map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        IntakeError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64)
    })
}

async fn ingest(
    state: &AppState,
    batch: &AlertBatch,
    truncated: u64,
) -> Result<Response, IntakeError> {
    if truncated > 0 {
        tracing::warn!(source = %batch.source, truncated, "the sender left alerts out of this notification (Alertmanager max_alerts)");
    }
    let report = state.engine.ingest(batch).await?;
    state.engine.metrics().alerts_received(
        &batch.source,
        report.changed as u64,
        report.duplicates as u64,
    );
    let mut body = serde_json::to_value(&report).expect("a report serialises");
    body["status"] = "ok".into();
    body["truncated"] = truncated.into();
    Ok((StatusCode::OK, Json(body)).into_response())
}

async fn alertmanager_like(
    state: AppState,
    kind: SourceKind,
    id: Option<String>,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let src = state.intake.find(kind, id.as_deref())?;
    let bytes = read_body(body, &headers, src.config.max_body).await?;
    authenticate(&state.intake, src, peer, &headers, &bytes)?;
    rate_limit(src)?;
    let parsed = match kind {
        SourceKind::Grafana => parse::grafana(&bytes, &src.config.id),
        _ => parse::alertmanager(&bytes, &src.config.id),
    };
    let (batch, notes) = parsed.map_err(|e| IntakeError::BadPayload(e.to_string()))?;
    ingest(&state, &batch, notes.truncated).await
}

/// `POST /webhooks/alertmanager[/{source}]`: Alertmanager's webhook_config (version 4).
pub async fn alertmanager(
    State(state): State<AppState>,
    source: Option<Path<String>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let id = source.map(|Path(id)| id);
    alertmanager_like(state, SourceKind::Alertmanager, id, peer, headers, body).await
}

/// `POST /webhooks/grafana[/{source}]`: Grafana's webhook contact point (version 1).
pub async fn grafana(
    State(state): State<AppState>,
    source: Option<Path<String>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let id = source.map(|Path(id)| id);
    alertmanager_like(state, SourceKind::Grafana, id, peer, headers, body).await
}

/// `POST /webhooks/generic/{source}`: the documented JSON shape, HMAC-signed.
pub async fn generic(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let src = state.intake.find(SourceKind::Generic, Some(&id))?;
    let bytes = read_body(body, &headers, src.config.max_body).await?;
    authenticate(&state.intake, src, peer, &headers, &bytes)?;
    rate_limit(src)?;
    let batch = parse::generic(&bytes, &src.config.id)
        .map_err(|e| IntakeError::BadPayload(e.to_string()))?;
    ingest(&state, &batch, 0).await
}

fn pd_invalid(status: StatusCode, message: &str, errors: Vec<String>) -> Response {
    (
        status,
        Json(serde_json::json!({"status": "invalid event", "message": message, "errors": errors})),
    )
        .into_response()
}

/// `POST /v2/enqueue`: PagerDuty Events API v2, answered the way PagerDuty answers, so existing
/// senders work by changing only the URL.
pub async fn pagerduty(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let candidates: Vec<&Source> = state
        .intake
        .sources
        .iter()
        .filter(|s| s.config.kind == SourceKind::Pagerduty)
        .collect();
    if candidates.is_empty() {
        return IntakeError::UnknownSource("no pagerduty source is configured".into())
            .into_response();
    }
    let max = candidates
        .iter()
        .map(|s| s.config.max_body)
        .max()
        .unwrap_or(crate::MAX_BODY);
    let bytes = match read_body(body, &headers, max).await {
        Ok(b) => b,
        Err(e) => return pd_invalid(e.status(), &e.message(), vec![e.message()]),
    };
    let event: parse::PdEvent = match parse::json(&bytes) {
        Ok(e) => e,
        Err(e) => {
            return pd_invalid(
                StatusCode::BAD_REQUEST,
                "Event object is invalid",
                vec![e.to_string()],
            )
        }
    };
    let key = event.routing_key.clone().unwrap_or_default();
    // The routing key names the source (and is its credential): compared in constant time
    // against every PagerDuty source's key.
    let src = candidates.iter().copied().find(|s| match &s.secret {
        Some(secret) => secret.matches(&key),
        None => peer.ip().is_loopback(),
    });
    let Some(src) = src else {
        let msg = if key.is_empty() {
            "'routing_key' is missing"
        } else {
            "Invalid routing key"
        };
        return pd_invalid(StatusCode::UNAUTHORIZED, msg, vec![msg.to_string()]);
    };
    if let Err(e) = rate_limit(src) {
        return e.into_response();
    }
    let generated = spotter_core::random_token(16);
    let (batch, dedup_key) = match parse::pagerduty(event, &src.config.id, &generated) {
        Ok(x) => x,
        Err(errors) => {
            return pd_invalid(StatusCode::BAD_REQUEST, "Event object is invalid", errors)
        }
    };
    match state.engine.ingest(&batch).await {
        Ok(report) => {
            state.engine.metrics().alerts_received(
                &batch.source,
                report.changed as u64,
                report.duplicates as u64,
            );
            (StatusCode::ACCEPTED, Json(serde_json::json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key})))
                .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
