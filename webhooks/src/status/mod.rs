//! The public status surfaces for the Workout Tracker's users: everything here is
//! unauthenticated, GET/HEAD only, read-only, and answered from the in-memory
//! [`StatusBoard`] snapshot (no database query per request).
//!
//! - [`api`]: Statuspage-compatible JSON under `/api/v2/` (`summary.json`, `status.json`, …).
//! - [`page`]: the server-rendered HTML page `/status`, `/status/incidents/{id}`,
//!   `/status/history` (no JavaScript, no external assets).
//! - [`feeds`]: Atom and RSS feeds of the incident history, whole and per component.
//! - [`badge`]: `/status/badge.json` (shields.io endpoint schema) and `/status/badge.svg`.
//!
//! This module holds the router and the HTTP caching every surface shares: a strong `ETag`
//! (the snapshot's generation, the representation and a hash of the bytes), `Last-Modified`
//! (the page's `updated_at`), `If-None-Match` → 304, and `Cache-Control: public, max-age=10`.
//! Representations that do not depend on the path are rendered once per snapshot generation
//! and kept, so a busy `summary.json` costs a lookup and a copy of `Bytes`.

pub mod api;
pub mod badge;
pub mod feeds;
pub mod maintenance;
pub mod page;
pub mod subscribe;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use spotter_core::status::{StatusBoard, StatusSnapshot};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How long browsers, proxies and clients may reuse an answer without asking again: short, so an
/// update reaches users within seconds, yet enough to absorb a crowd refreshing the page.
pub const CACHE_CONTROL: &str = "public, max-age=10";

/// The status page's Content-Security-Policy: nothing may load or run, only the inline `<style>`
/// and `data:` images apply. A string that escaped escaping could still not run a script.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// The public surfaces' shared state.
pub struct StatusState {
    board: Arc<StatusBoard>,
    /// Rendered representations of the current generation, by representation name. A std
    /// `Mutex`: it is held for a map lookup or insert, never across an await.
    cache: Mutex<HashMap<&'static str, Rendered>>,
}

/// One rendered representation with its validator.
#[derive(Clone)]
pub(crate) struct Rendered {
    generation: u64,
    body: Bytes,
    etag: HeaderValue,
}

/// Every public status route: `/api/v2/*.json` and `/status…`. Merge it into the main router or
/// serve it alone on a public listener; it needs nothing but the board.
pub fn status_router(board: Arc<StatusBoard>) -> Router {
    let state = Arc::new(StatusState {
        board,
        cache: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/api/v2/summary.json", get(api::summary))
        .route("/api/v2/status.json", get(api::status))
        .route("/api/v2/components.json", get(api::components))
        .route("/api/v2/incidents.json", get(api::incidents))
        .route("/api/v2/incidents/unresolved.json", get(api::unresolved))
        .route(
            "/api/v2/scheduled-maintenances.json",
            get(api::maintenances),
        )
        .route(
            "/api/v2/scheduled-maintenances/upcoming.json",
            get(api::maintenances_upcoming),
        )
        .route(
            "/api/v2/scheduled-maintenances/active.json",
            get(api::maintenances_active),
        )
        .route("/status", get(page::index))
        .route("/status/incidents/{id}", get(page::incident))
        .route("/status/history", get(page::history))
        .route("/status/history.atom", get(feeds::atom))
        .route("/status/history.rss", get(feeds::rss))
        .route(
            "/status/components/{id}/history.atom",
            get(feeds::component_atom),
        )
        .route(
            "/status/components/{id}/history.rss",
            get(feeds::component_rss),
        )
        .route("/status/badge.json", get(badge::json))
        .route("/status/badge.svg", get(badge::svg))
        .with_state(state)
}

/// What kind of body a representation is: its media type and the headers that go with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Json,
    Html,
    Atom,
    Rss,
    Svg,
}

impl Kind {
    fn content_type(self) -> &'static str {
        match self {
            Kind::Json => "application/json",
            Kind::Html => "text/html; charset=utf-8",
            Kind::Atom => "application/atom+xml; charset=utf-8",
            Kind::Rss => "application/rss+xml; charset=utf-8",
            Kind::Svg => "image/svg+xml",
        }
    }

    /// Headers of both the 200 and the 304.
    fn headers(self, h: &mut HeaderMap) {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        match self {
            // The Workout Tracker's own frontend (another origin) reads `status.json` for its banner.
            Kind::Json => {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
            // An SVG opened directly is a document too: same lockdown as the page.
            Kind::Html | Kind::Svg => {
                h.insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CONTENT_SECURITY_POLICY),
                );
            }
            Kind::Atom | Kind::Rss => {}
        }
    }
}

impl StatusState {
    pub(crate) fn snapshot(&self) -> Arc<StatusSnapshot> {
        self.board.current()
    }

    /// The representation `name` of the current snapshot, rendered at most once per generation.
    pub(crate) fn cached(
        &self,
        snap: &StatusSnapshot,
        name: &'static str,
        render: impl FnOnce(&StatusSnapshot) -> Vec<u8>,
    ) -> Rendered {
        if let Some(r) = self.cache.lock().expect("status cache lock").get(name) {
            if r.generation == snap.generation {
                return r.clone();
            }
        }
        // Rendered outside the lock: two requests racing on a new generation both render, and
        // either result is the same bytes.
        let r = Rendered::new(snap, name, render(snap));
        let mut cache = self.cache.lock().expect("status cache lock");
        match cache.get(name) {
            Some(old) if old.generation > r.generation => {}
            _ => {
                cache.insert(name, r.clone());
            }
        }
        r
    }
}

impl Rendered {
    /// `name` goes into the `ETag` with the generation; the hash of the bytes keeps a validator
    /// from a previous process (whose generations started over) from matching different bytes.
    pub(crate) fn new(snap: &StatusSnapshot, name: &str, body: Vec<u8>) -> Rendered {
        let digest = Sha256::digest(&body);
        let etag = format!(
            "\"{}-{}-{}\"",
            snap.generation,
            name,
            hex::encode(&digest[..8])
        );
        Rendered {
            generation: snap.generation,
            body: Bytes::from(body),
            etag: HeaderValue::from_str(&etag).expect("an ETag of ASCII letters, digits, . - _"),
        }
    }
}

/// The answer for `rendered`: 304 when the request's `If-None-Match` names its `ETag`, else 200
/// with the body. (`HEAD` is answered by axum from the same response, without the body.)
pub(crate) fn respond(
    request: &HeaderMap,
    snap: &StatusSnapshot,
    kind: Kind,
    rendered: Rendered,
) -> Response {
    let mut headers = HeaderMap::new();
    kind.headers(&mut headers);
    headers.insert(header::ETAG, rendered.etag.clone());
    headers.insert(header::LAST_MODIFIED, http_date(snap.page.updated_at));
    // If-Modified-Since is deliberately not honoured: a new day changes the uptime bars without
    // moving the page's `updated_at`, so only the ETag says reliably whether bytes changed.
    if if_none_match(request, &rendered.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(kind.content_type()),
    );
    (StatusCode::OK, headers, rendered.body).into_response()
}

/// A cached representation of the current snapshot, answered with validators.
pub(crate) fn serve(
    state: &StatusState,
    request: &HeaderMap,
    name: &'static str,
    kind: Kind,
    render: impl FnOnce(&StatusSnapshot) -> Vec<u8>,
) -> Response {
    let snap = state.snapshot();
    let rendered = state.cached(&snap, name, render);
    respond(request, &snap, kind, rendered)
}

/// A representation that depends on the path (one incident, one component): rendered per
/// request, still with validators. `None` from `render` is a 404 with `not_found`'s body.
pub(crate) fn serve_uncached(
    state: &StatusState,
    request: &HeaderMap,
    name: &'static str,
    kind: Kind,
    render: impl FnOnce(&StatusSnapshot) -> Option<Vec<u8>>,
    not_found: impl FnOnce(&StatusSnapshot) -> Response,
) -> Response {
    let snap = state.snapshot();
    match render(&snap) {
        Some(body) => {
            let rendered = Rendered::new(&snap, name, body);
            respond(request, &snap, kind, rendered)
        }
        None => not_found(&snap),
    }
}

/// Whether `If-None-Match` (a list of entity tags, or `*`) matches `etag`, by the weak
/// comparison RFC 9110 prescribes for it.
fn if_none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == ours)
}

/// An IMF-fixdate (`Tue, 01 Dec 2026 13:05:00 GMT`), the form `Last-Modified` takes.
fn http_date(t: chrono::DateTime<chrono::Utc>) -> HeaderValue {
    HeaderValue::from_str(&t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .expect("a formatted date is ASCII")
}

/// Extractors the handlers share.
pub(crate) type St = State<Arc<StatusState>>;
