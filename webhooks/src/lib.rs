//! Spotter's whole HTTP surface (axum): the API, health and metrics, alert intake, and the shared
//! layers that other adapters' routes (the Discord interactions endpoint) are merged under. A thin
//! inbound adapter: every handler parses and authenticates, then calls the core
//! [`spotter_core::Engine`] or store, and maps the outcome to a response.
//!
//! Map of the modules:
//! - [`error`]: the one error enum of this edge and its mapping to status codes and JSON.
//! - [`extract`]: the JSON body extractor whose rejections are JSON errors too (400, 413).
//! - [`auth`]: bearer-token middleware for `/api/v1` (constant-time comparison).
//! - [`api_tokens`]: who calls: the shared token (capped at a role) or a person's own token.
//! - [`api`]: `POST /api/v1/commands`, `GET /api/v1/incidents[/{ref}]`.
//! - [`api_runs`]: `GET /api/v1/runs[/{id}]`, runbook runs with their steps and approvals.
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`ack`]: `/ack/{token}`, the acknowledgement link of a page (GET confirms, POST acks).
//! - [`intake`]: alert intake — `/webhooks/alertmanager`, `/webhooks/grafana`, `/v2/enqueue`
//!   (PagerDuty Events v2), `/webhooks/generic/{source}`; its `parse` module reads each format.
//! - [`client`]: who the client is: the peer, or behind a trusted proxy the address it forwards.
//! - [`limit`]: per-client budgets — failed authentications on every door that checks a
//!   credential (spent → 429, before any HMAC or signature is computed), requests on `/api/v1`,
//!   `/metrics`, `/readyz` and `/discord/interactions`; bounded key sets.
//! - [`telemetry`]: request spans and the latency histogram.
//! - [`outbound`]: the page notifiers of the `webhook` (signed JSON POST), `ntfy` and `email`
//!   (SMTP) contact methods; [`outbound::page_notifiers`] builds them from the configuration.
//! - [`runner`]: the runbook executor ([`runner::Runner`], core's `Executor` port): exec steps
//!   in their own killed-whole process group, signed HTTP steps, and the dependency probes
//!   (HTTP, TCP, MySQL/MariaDB, PostgreSQL, Redis).
//! - [`status`]: the public status surfaces for the Workout Tracker's users, served from the
//!   in-memory status board by [`status::status_router`]: Statuspage-compatible JSON under
//!   `/api/v2/`, the HTML page `/status…`, Atom/RSS feeds and the badge; unauthenticated,
//!   GET/HEAD only, with ETags and 304s.

pub mod ack;
pub mod api;
pub mod api_runs;
pub mod api_tokens;
pub mod auth;
pub mod client;
pub mod error;
pub mod extract;
pub mod health;
pub mod intake;
pub mod limit;
pub mod outbound;
pub mod runner;
pub mod status;
pub mod telemetry;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use spotter_core::{Engine, Secret};
use std::sync::Arc;
use std::time::Duration;

/// The largest request body accepted anywhere (bigger → 413).
pub const MAX_BODY: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub api_token: Secret,
    pub intake: Arc<intake::Intake>,
    /// Per-client budgets, shared by every door.
    pub guard: Arc<limit::ClientGuard>,
}

/// Only the public status surfaces (`/status…`, `/api/v2/…`), with the shared layers: for
/// `[status] listen`, the listener that may face the internet.
pub fn public_router(state: AppState) -> Router {
    status::status_router(state.engine.status_board().clone())
        .merge(status::subscribe::routes().with_state(state.clone()))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::guard_public,
        ))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(telemetry::trace_layer())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The HTTP application with another adapter's routes (the Discord interactions endpoint)
/// merged in, so they share the body limit, request spans, latency histogram and timeout, and
/// the per-client limits of doors that authenticate.
pub fn router_with(state: AppState, extra: Router) -> Router {
    let api = Router::new()
        .route("/commands", post(api::command))
        .route("/incidents", get(api::list_incidents))
        .route("/incidents/{reference}", get(api::get_incident))
        .route("/alerts", get(api::list_alerts))
        .route("/runs", get(api_runs::list_runs))
        .route("/runs/{id}", get(api_runs::get_run))
        .route(
            "/maintenance",
            get(api::list_maintenance).post(api::start_maintenance),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_bearer,
        ))
        // Outside the bearer check, so its 401s spend the client's failure budget.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::guard_token_door,
        ));
    let open = Router::new()
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::guard_open,
        ));
    // The public status page and its Statuspage-compatible API, answered from the engine's
    // status board (memory), unauthenticated and read-only.
    let public = status::status_router(state.engine.status_board().clone())
        .merge(status::subscribe::routes().with_state(state.clone()))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::guard_public,
        ));
    let extra = if extra.has_routes() {
        extra.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::guard_signed_door,
        ))
    } else {
        extra
    };
    Router::new()
        .route("/healthz", get(health::healthz))
        .merge(open)
        .nest("/api/v1", api)
        .route("/webhooks/alertmanager", post(intake::alertmanager))
        .route(
            "/webhooks/alertmanager/{source}",
            post(intake::alertmanager),
        )
        .route("/webhooks/grafana", post(intake::grafana))
        .route("/webhooks/grafana/{source}", post(intake::grafana))
        .route("/webhooks/generic/{source}", post(intake::generic))
        .route("/v2/enqueue", post(intake::pagerduty))
        .route("/ack/{token}", get(ack::confirm).post(ack::acknowledge))
        .with_state(state.clone())
        .merge(public)
        .merge(extra)
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::record_latency,
        ))
        .layer(telemetry::trace_layer())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
}
