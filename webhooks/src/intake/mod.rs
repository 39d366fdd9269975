//! Alert intake over HTTP: Alertmanager, Grafana, PagerDuty Events v2 and signed generic JSON.
//!
//! Each request goes through the same gates, in this order:
//! 1. The source: unknown → 404.
//! 2. Credentials, within the client's failed-authentication budget ([`crate::limit`]): a header
//!    credential (bearer, basic) is compared first; a signature or routing key, which needs the
//!    body, only while the client has budget left, else 429 with `Retry-After` before the body is
//!    read or any HMAC computed. Missing or wrong, or a stale or replayed signature → 401, and
//!    one token of the budget (429 once it is spent). Every source has a credential; one without
//!    a secret refuses everything. A timestamped signature is checked for replay in memory, then
//!    in the database, which every replica shares and which outlives a restart; a database that
//!    cannot answer → 503 with `Retry-After`.
//! 3. The body, read up to the source's `max_body`: larger → 413.
//! 4. The source's rate: over it → 429 with `Retry-After`.
//! 5. The payload: malformed → 400 naming the field.
//! 6. Ingest, and only then 2xx: every change is committed before the answer. Storage trouble →
//!    503 with `Retry-After` (Alertmanager retries 5xx only); nothing is half-written.
//!
//! Every refusal is counted and logged once ([`reject`]).
//!
//! Modules: [`auth`] (each source's [`auth::Check`] and the credential check), [`signature`] (the
//! pure HMAC check), [`replay`] (the in-memory replay cache; the durable one is `remember`), [`error`] (refusals and their
//! answers), [`reject`] (the trace refusals leave), [`parse`] (each payload format).

pub mod auth;
pub mod error;
pub mod parse;
pub mod reject;
pub mod replay;
pub mod signature;

use crate::client::Client;
use crate::error::ApiError;
use crate::AppState;
use auth::Check;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
pub use error::{IntakeError, Reason};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use spotter_core::alerts::AlertBatch;
use spotter_core::config::{Config, SourceConfig, SourceKind};
use spotter_core::Secret;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// How far a signed request's timestamp may be from now.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;

/// Signatures the replay cache holds at most.
pub const REPLAY_CACHE_CAPACITY: usize = 100_000;

/// The `source` label of refusals that name no configured source.
pub const UNKNOWN_SOURCE: &str = "unknown";

/// A configured alert sender, as intake holds it: its config, its secret and its rate limiter.
/// (Not [`spotter_core::domain::Source`], which says where an incident came from.)
struct AlertSource {
    config: SourceConfig,
    check: Check,
    /// The credential's secret: from its environment variable or the data folder.
    secret: Option<Secret>,
    limiter: DefaultDirectRateLimiter,
}

/// The sources with their secrets and rate limiters, recently used signatures, and the trace of
/// refusals.
pub struct Intake {
    sources: Vec<AlertSource>,
    replays: replay::ReplayCache,
    rejections: reject::RejectionLog,
}

fn limiter(s: &SourceConfig) -> DefaultDirectRateLimiter {
    let per_second = s.rate_per_second;
    let quota = if per_second >= 1.0 {
        Quota::per_second(NonZeroU32::new(per_second.round() as u32).unwrap_or(NonZeroU32::MIN))
    } else {
        Quota::with_period(Duration::from_secs_f64(1.0 / per_second)).expect("a positive period")
    };
    RateLimiter::direct(quota.allow_burst(NonZeroU32::new(s.burst).unwrap_or(NonZeroU32::MIN)))
}

impl Intake {
    /// The configured sources with their secrets, by source id. A source missing from `secrets`
    /// refuses every request (and is reported by [`Intake::switched_off`]).
    pub fn new(config: &Config, mut secrets: HashMap<String, Secret>) -> Intake {
        let sources = config
            .sources
            .iter()
            .map(|s| AlertSource {
                check: Check::for_source(s),
                secret: secrets.remove(&s.id),
                limiter: limiter(s),
                config: s.clone(),
            })
            .collect();
        Intake {
            sources,
            replays: replay::ReplayCache::new(SIGNATURE_WINDOW_SECS, REPLAY_CACHE_CAPACITY),
            rejections: reject::RejectionLog::default(),
        }
    }

    /// The ids of sources that have no secret and so accept nothing.
    pub fn switched_off(&self) -> Vec<&str> {
        self.sources
            .iter()
            .filter(|s| s.secret.is_none())
            .map(|s| s.config.id.as_str())
            .collect()
    }

    /// Signatures in the replay cache right now.
    pub fn remembered_signatures(&self) -> usize {
        self.replays.len()
    }

    fn find(&self, kind: SourceKind, id: Option<&str>) -> Result<&AlertSource, IntakeError> {
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
}

/// Counts and logs a refusal.
fn refuse(state: &AppState, source: &str, client: IpAddr, e: IntakeError) -> IntakeError {
    state
        .intake
        .rejections
        .note(state.engine.metrics(), source, client, &e);
    e
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

/// Gates 2 and 3: the credential within the client's failure budget, and the body (see [`crate::limit`]).
/// A header credential is compared first and a failure spends a token (429 once none is left);
/// for a signature the token is taken before the body is read and given back when it verifies.
async fn read_and_authenticate(
    state: &AppState,
    src: &AlertSource,
    client: IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<(bytes::Bytes, Option<Remembered>), IntakeError> {
    let now = chrono::Utc::now().timestamp();
    if !src.check.reads_body() {
        if let Err(e) = auth::authenticate(&state.intake, src, headers, &[], now) {
            return Err(match state.guard.failed(client) {
                Ok(()) => e,
                Err(secs) => IntakeError::Throttled(secs),
            });
        }
        return Ok((read_body(body, headers, src.config.max_body).await?, None));
    }
    state
        .guard
        .before_authentication(client)
        .map_err(IntakeError::Throttled)?;
    let result = match read_body(body, headers, src.config.max_body).await {
        Ok(bytes) => match auth::authenticate(&state.intake, src, headers, &bytes, now) {
            Ok(Some(fresh)) => remember(state, src, fresh, now)
                .await
                .map(|seen| (bytes, Some(seen))),
            Ok(None) => Ok((bytes, None)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if !result.as_ref().is_err_and(IntakeError::is_auth_failure) {
        state.guard.authenticated(client);
    }
    result
}

/// The durable replay check, behind the in-memory one: the signature is remembered in the
/// database (`seen_signatures`, keyed by source and MAC) until its timestamp window closes, so a
/// replay is refused by every replica and after a restart. When the database cannot say, the
/// answer is 503 with `Retry-After` and nothing is written: never an accept on trust. The
/// in-memory cache then forgets the signature, so the sender's retry of the same delivery is
/// heard.
async fn remember(
    state: &AppState,
    src: &AlertSource,
    fresh: auth::FreshSignature,
    now: i64,
) -> Result<Remembered, IntakeError> {
    let key = format!("{}:{}", src.config.id, hex::encode(fresh.mac));
    let at = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    };
    let expires_at = at(fresh.timestamp.saturating_add(SIGNATURE_WINDOW_SECS));
    match state
        .engine
        .store()
        .remember_signature(&key, expires_at, at(now))
        .await
    {
        Ok(true) => Ok(Remembered {
            key,
            mac: fresh.mac,
        }),
        Ok(false) => Err(auth::replayed()),
        Err(e) => {
            state.intake.replays.forget(&fresh.mac);
            // Whatever the fault, the question is unanswered for now: retry, not 500.
            Err(IntakeError::Api(ApiError::Unavailable(
                anyhow::Error::new(e).context("remembering a request signature"),
            )))
        }
    }
}

/// A signature remembered for a request still being answered.
struct Remembered {
    key: String,
    mac: [u8; 32],
}

/// When the answer asks the sender to retry (429, 503: nothing was stored), the signature is
/// forgotten again, in the database and in memory, so the retry of the same signed bytes is
/// heard rather than refused as a replay. Every other answer keeps it remembered.
async fn settle(
    state: &AppState,
    seen: Option<Remembered>,
    result: Result<Response, IntakeError>,
) -> Result<Response, IntakeError> {
    // Decided before any await: a response is not `Sync`, so no reference to it may be held.
    let retry = matches!(&result, Err(e) if e.asks_for_retry());
    if let (Some(seen), true) = (seen, retry) {
        state.intake.replays.forget(&seen.mac);
        if let Err(err) = state.engine.store().forget_signature(&seen.key).await {
            tracing::warn!(error = %err, "could not forget a signature; the sender must sign its retry afresh");
        }
    }
    result
}

fn rate_limit(src: &AlertSource) -> Result<(), IntakeError> {
    src.limiter.check().map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        IntakeError::RateLimited(crate::limit::retry_after_secs(wait))
    })
}

async fn ingest(
    state: &AppState,
    batch: &AlertBatch,
) -> Result<spotter_core::engine::intake::IngestReport, IntakeError> {
    let report = state.engine.ingest(batch).await?;
    state.engine.metrics().alerts_received(
        &batch.source,
        report.changed as u64,
        report.suppressed as u64,
        report.duplicates as u64,
    );
    Ok(report)
}

async fn alertmanager_like(
    state: &AppState,
    src: &AlertSource,
    client: IpAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let (bytes, seen) = read_and_authenticate(state, src, client, &headers, body).await?;
    let result = async {
        rate_limit(src)?;
        let parsed = match src.config.kind {
            SourceKind::Grafana => parse::grafana(&bytes, &src.config.id),
            _ => parse::alertmanager(&bytes, &src.config.id),
        };
        let (batch, notes) = parsed.map_err(|e| IntakeError::BadPayload(e.to_string()))?;
        if notes.truncated > 0 {
            tracing::warn!(source = %batch.source, truncated = notes.truncated, "the sender left alerts out of this notification (Alertmanager max_alerts)");
        }
        ok_response(ingest(state, &batch).await?, notes.truncated)
    }
    .await;
    settle(state, seen, result).await
}

fn ok_response(
    report: spotter_core::engine::intake::IngestReport,
    truncated: u64,
) -> Result<Response, IntakeError> {
    let mut body = serde_json::to_value(&report).expect("a report serialises");
    body["status"] = "ok".into();
    body["truncated"] = truncated.into();
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// One of the formats whose source is named in the path (or is the first of its kind).
async fn by_path(
    state: AppState,
    kind: SourceKind,
    id: Option<String>,
    client: IpAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let src = match state.intake.find(kind, id.as_deref()) {
        Ok(s) => s,
        Err(e) => return refuse(&state, UNKNOWN_SOURCE, client, e).into_response(),
    };
    let result = match kind {
        SourceKind::Generic => generic_inner(&state, src, client, headers, body).await,
        _ => alertmanager_like(&state, src, client, headers, body).await,
    };
    result.unwrap_or_else(|e| refuse(&state, &src.config.id, client, e).into_response())
}

/// `POST /webhooks/alertmanager[/{source}]`: Alertmanager's webhook_config (version 4).
pub async fn alertmanager(
    State(state): State<AppState>,
    source: Option<Path<String>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let id = source.map(|Path(id)| id);
    by_path(state, SourceKind::Alertmanager, id, client, headers, body).await
}

/// `POST /webhooks/grafana[/{source}]`: Grafana's webhook contact point (version 1).
pub async fn grafana(
    State(state): State<AppState>,
    source: Option<Path<String>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let id = source.map(|Path(id)| id);
    by_path(state, SourceKind::Grafana, id, client, headers, body).await
}

/// `POST /webhooks/generic/{source}`: the documented JSON shape, HMAC-signed.
pub async fn generic(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Response {
    by_path(state, SourceKind::Generic, Some(id), client, headers, body).await
}

async fn generic_inner(
    state: &AppState,
    src: &AlertSource,
    client: IpAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    let (bytes, seen) = read_and_authenticate(state, src, client, &headers, body).await?;
    let result = async {
        rate_limit(src)?;
        let batch = parse::generic(&bytes, &src.config.id)
            .map_err(|e| IntakeError::BadPayload(e.to_string()))?;
        ok_response(ingest(state, &batch).await?, 0)
    }
    .await;
    settle(state, seen, result).await
}

/// `POST /v2/enqueue`: PagerDuty Events API v2, answered the way PagerDuty answers, so existing
/// senders work by changing only the URL.
pub async fn pagerduty(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let candidates: Vec<&AlertSource> = state
        .intake
        .sources
        .iter()
        .filter(|s| s.config.kind == SourceKind::Pagerduty)
        .collect();
    // Until the routing key names the source, refusals are the only PagerDuty source's, if
    // there is one.
    let mut label = match candidates.as_slice() {
        [only] => only.config.id.as_str(),
        _ => UNKNOWN_SOURCE,
    };
    match pagerduty_inner(&state, &candidates, &mut label, client, &headers, body).await {
        Ok(r) => r,
        Err(e) => refuse(&state, label, client, e).into_pagerduty_response(),
    }
}

async fn pagerduty_inner<'a>(
    state: &AppState,
    candidates: &[&'a AlertSource],
    label: &mut &'a str,
    client: IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, IntakeError> {
    if candidates.is_empty() {
        return Err(IntakeError::UnknownSource(
            "no pagerduty source is configured".into(),
        ));
    }
    state
        .guard
        .before_authentication(client)
        .map_err(IntakeError::Throttled)?;
    let src = pagerduty_source(candidates, headers, body).await;
    if !src.as_ref().is_err_and(IntakeError::is_auth_failure) {
        state.guard.authenticated(client);
    }
    let (src, event) = src?;
    *label = src.config.id.as_str();
    rate_limit(src)?;
    let generated = spotter_core::random_token(16);
    let (batch, dedup_key) =
        parse::pagerduty(event, &src.config.id, &generated).map_err(IntakeError::InvalidEvent)?;
    ingest(state, &batch).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key})),
    )
        .into_response())
}

/// Reads the event and finds the source whose routing key it carries (the key names the source
/// and is its credential), comparing in constant time against every PagerDuty source's key.
async fn pagerduty_source<'a>(
    candidates: &[&'a AlertSource],
    headers: &HeaderMap,
    body: Body,
) -> Result<(&'a AlertSource, parse::PdEvent), IntakeError> {
    let max = candidates
        .iter()
        .map(|s| s.config.max_body)
        .max()
        .unwrap_or(crate::MAX_BODY);
    let bytes = read_body(body, headers, max).await?;
    let event: parse::PdEvent =
        parse::json(&bytes).map_err(|e| IntakeError::InvalidEvent(vec![e.to_string()]))?;
    let key = event.routing_key.clone().unwrap_or_default();
    // Every key is compared (no early exit), so timing does not tell which source matched.
    let found = candidates.iter().copied().fold(None, |found, s| {
        let matches = s.secret.as_ref().is_some_and(|secret| secret.matches(&key));
        found.or(matches.then_some(s))
    });
    match found {
        Some(src) => Ok((src, event)),
        None if key.is_empty() => Err(IntakeError::Unauthorized(
            Reason::MissingCredential,
            "'routing_key' is missing".into(),
        )),
        None => Err(IntakeError::Unauthorized(
            Reason::BadCredential,
            "Invalid routing key".into(),
        )),
    }
}

impl From<ApiError> for IntakeError {
    fn from(e: ApiError) -> Self {
        IntakeError::Api(e)
    }
}
