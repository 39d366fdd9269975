//! `/ack/{token}`: the acknowledgement link every page carries.
//!
//! `GET` shows a small confirmation page and changes nothing: mail and chat link scanners fetch
//! every link they see, and must not acknowledge anything. Only the page's button (a `POST`)
//! acknowledges, once, as the paged person (see `spotter_core::engine::pages`). A forged token
//! spends the client's failure budget like a wrong credential on any other door, so the link
//! space cannot be searched.

use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use spotter_core::{AckLinkRefusal, StoreError};

/// The page around a message: no scripts, no external assets, readable on a phone.
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{t}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}}\
         button{{font-size:1.1rem;padding:.6rem 1.4rem}}\
         @media (prefers-color-scheme:dark){{body{{background:#111;color:#eee}}}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    res
}

/// HTML-escapes text from people and alerts (incident titles).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn refused(why: AckLinkRefusal) -> Response {
    let status = match why {
        AckLinkRefusal::Invalid => StatusCode::NOT_FOUND,
        AckLinkRefusal::Expired(_) | AckLinkRefusal::Used(_) => StatusCode::GONE,
        AckLinkRefusal::AlreadyAcknowledged { .. } | AckLinkRefusal::NotOpen { .. } => {
            StatusCode::CONFLICT
        }
    };
    page(
        status,
        "Nothing was acknowledged",
        &format!("<p>{}</p>", escape(&why.to_string())),
    )
}

fn unavailable(e: StoreError) -> Response {
    tracing::error!(error = %e, "acknowledgement link: storage failed");
    let mut res = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again",
        "<p>Spotter cannot reach its database right now; nothing was acknowledged. Reload this page in a moment.</p>",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

/// The per-client budgets: requests, then failures (a forged token is a failed
/// authentication). Returns the client, or the `Retry-After` seconds of a 429.
fn admit(
    state: &AppState,
    headers: &HeaderMap,
    ext: &axum::http::Extensions,
) -> Result<std::net::IpAddr, u64> {
    let guard = &state.guard;
    let client = guard.client(crate::client::peer(ext), headers);
    guard.admit_request(client)?;
    guard.before_authentication(client)?;
    Ok(client)
}

fn too_many(secs: u64) -> Response {
    let mut r = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        "<p>Too many attempts from this address; try again in a while.</p>",
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A forged or unknown token keeps the failure token taken in [`admit`]; any real link gives
/// it back.
fn settle(state: &AppState, client: std::net::IpAddr, refusal: Option<&AckLinkRefusal>) {
    if !matches!(refusal, Some(AckLinkRefusal::Invalid)) {
        state.guard.authenticated(client);
    }
}

/// `GET /ack/{token}`: the confirmation page. Changes nothing.
pub async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let client = match admit(&state, req.headers(), req.extensions()) {
        Ok(c) => c,
        Err(secs) => return too_many(secs),
    };
    match state.engine.ack_link_view(&token).await {
        Err(e) => unavailable(e),
        Ok(Err(why)) => {
            settle(&state, client, Some(&why));
            refused(why)
        }
        Ok(Ok(v)) => {
            settle(&state, client, None);
            let i = &v.incident;
            page(
                StatusCode::OK,
                &format!("Acknowledge {}?", i.reference),
                &format!(
                    "<p><strong>{r}</strong> · level {lvl} {lname}<br>{title}</p>\
                     <p>You are acknowledging as <strong>{who}</strong>: paging stops for everyone.</p>\
                     <form method=\"post\"><button type=\"submit\">Acknowledge {r}</button></form>\
                     <p><small>This link works once, until {exp}.</small></p>",
                    r = escape(&i.reference.to_string()),
                    lvl = i.level,
                    lname = escape(&v.level_name),
                    title = escape(&i.title),
                    who = escape(&v.person),
                    exp = escape(&spotter_core::render::time(v.expires_at)),
                ),
            )
        }
    }
}

/// `POST /ack/{token}`: acknowledges, once.
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(token): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let client = match admit(&state, req.headers(), req.extensions()) {
        Ok(c) => c,
        Err(secs) => return too_many(secs),
    };
    match state.engine.ack_by_link(&token).await {
        Err(e) => unavailable(e),
        Ok(Err(why)) => {
            settle(&state, client, Some(&why));
            refused(why)
        }
        Ok(Ok(reply)) => {
            settle(&state, client, None);
            page(
                StatusCode::OK,
                "Acknowledged",
                &format!("<p>{}</p>", escape(&reply.text)),
            )
        }
    }
}
