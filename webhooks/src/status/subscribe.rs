//! Subscribing from the status page: the form, the confirmation link of the double opt-in, and
//! the unsubscribe link every subscriber's mail carries.
//!
//! - `GET /status/subscribe`: the form (an email address, optionally components).
//! - `POST /status/subscribe`: answers the same page whatever the address: new, pending or
//!   subscribed already (so the form cannot tell who is subscribed). Each source address may
//!   ask `[status] subscribe_per_hour` times an hour, so the form cannot flood anyone's inbox.
//! - `GET /status/subscribe/confirm/{token}` shows a button, its `POST` confirms: mail scanners
//!   fetch links, and fetching must not subscribe anyone.
//! - `GET /status/unsubscribe/{token}` shows a button; `POST` unsubscribes at once. That `POST`
//!   is also RFC 8058's one-click unsubscribe (`List-Unsubscribe-Post: List-Unsubscribe=One-Click`),
//!   which mail clients send without a page.
//!
//! A forged token spends the client's failed-authentication budget, as on `/ack/{token}`.

use crate::ack::{escape, page};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use spotter_core::engine::subscribers::{EmailSubscribed, SubscriberLinkRefusal};
use spotter_core::StoreError;

/// The routes (they need the engine, unlike the rest of the page, which is served from memory).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/status/subscribe", get(form).post(subscribe))
        .route(
            "/status/subscribe/confirm/{token}",
            get(confirm_page).post(confirm),
        )
        .route(
            "/status/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
}

/// The longest form body read (an address and a few component ids).
const MAX_FORM: usize = 8 * 1024;

fn unavailable(e: StoreError) -> Response {
    tracing::error!(error = %e, "status page subscription: storage failed");
    let mut res = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again",
        "<p>The status page cannot reach its database right now; nothing changed. Try again in a moment.</p>",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

fn too_many(secs: u64) -> Response {
    let mut r = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        "<p>Too many subscription requests from this address; try again later.</p>",
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn form_page(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let engine = &state.engine;
    if engine.config().smtp.is_none() {
        return page(
            StatusCode::NOT_FOUND,
            "Email updates are not offered",
            "<p>This status page does not send email. Follow its <a href=\"history.atom\">Atom feed</a> instead.</p>",
        );
    }
    let snap = engine.status_board().current();
    let mut boxes = String::new();
    for c in &snap.components {
        boxes.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"component\" value=\"{id}\"> {name}</label><br>",
            id = escape(&c.id),
            name = escape(&c.name)
        ));
    }
    let error = error
        .map(|e| format!("<p role=\"alert\"><strong>{}</strong></p>", escape(e)))
        .unwrap_or_default();
    page(
        status,
        &format!("Get {} updates by email", snap.page.name),
        &format!(
            "{error}<form method=\"post\" action=\"subscribe\">\
             <p><label>Email address<br><input type=\"email\" name=\"email\" required maxlength=\"254\" autocomplete=\"email\"></label></p>\
             <fieldset><legend>Only these components (none ticked: all of them)</legend>{boxes}</fieldset>\
             <p><button type=\"submit\">Subscribe</button></p></form>\
             <p><small>You will get a mail with a link to confirm; nothing is sent before that. \
             Every mail has a one-click unsubscribe link.</small></p>"
        ),
    )
}

/// `GET /status/subscribe`.
pub async fn form(State(state): State<AppState>) -> Response {
    form_page(&state, StatusCode::OK, None)
}

/// `POST /status/subscribe`: `email=…&component=…&component=…`.
pub async fn subscribe(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let client = state
        .guard
        .client(crate::client::peer(req.extensions()), req.headers());
    if let Err(secs) = state.guard.admit_subscription(client) {
        return too_many(secs);
    }
    let body =
        match axum::body::to_bytes(req.into_body(), MAX_FORM).await {
            Ok(b) => b,
            Err(_) => return form_page(
                &state,
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("The form is too large: send one email address and at most a few components."),
            ),
        };
    let mut email = None;
    let mut components = Vec::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "email" => email = Some(v.into_owned()),
            "component" => components.push(v.into_owned()),
            _ => {}
        }
    }
    let Some(email) = email.filter(|e| !e.trim().is_empty()) else {
        return form_page(
            &state,
            StatusCode::BAD_REQUEST,
            Some("email: give an email address, e.g. someone@example.com"),
        );
    };
    match state
        .engine
        .subscribe_email(&email, &components, "page")
        .await
    {
        Err(e) => unavailable(e),
        Ok(Err(why)) => form_page(&state, StatusCode::BAD_REQUEST, Some(&why)),
        // The same answer whatever the address was: the form is not an oracle.
        Ok(Ok(EmailSubscribed::Pending(_) | EmailSubscribed::Resent(_) | EmailSubscribed::Already(_))) => page(
            StatusCode::OK,
            "Check your inbox",
            "<p>If this address can receive mail, a message with a confirmation link is on its way. \
             Updates start once the link is confirmed.</p>",
        ),
    }
}

/// The per-client budgets of a link: requests, then failures (a forged token).
fn admit(state: &AppState, req: &axum::extract::Request) -> Result<std::net::IpAddr, u64> {
    let guard = &state.guard;
    let client = guard.client(crate::client::peer(req.extensions()), req.headers());
    guard.admit_request(client)?;
    guard.before_authentication(client)?;
    Ok(client)
}

fn refused(state: &AppState, client: std::net::IpAddr, why: SubscriberLinkRefusal) -> Response {
    match why {
        // Keeps the failure token: the link space cannot be searched.
        SubscriberLinkRefusal::Invalid => page(
            StatusCode::NOT_FOUND,
            "Unknown link",
            "<p>This link is not one this status page sent; nothing changed. Copy the whole link from the mail.</p>",
        ),
        SubscriberLinkRefusal::Gone => {
            state.guard.authenticated(client);
            page(
                StatusCode::GONE,
                "Not subscribed",
                "<p>This address is not subscribed (any more); nothing changed.</p>",
            )
        }
    }
}

/// A link's `GET`: names the address and asks for the press (`question`, `button`). Changes
/// nothing.
async fn ask(
    state: &AppState,
    purpose: &str,
    token: &str,
    admitted: Result<std::net::IpAddr, u64>,
    title: &str,
    question: &str,
    button: &str,
) -> Response {
    let client = match admitted {
        Ok(c) => c,
        Err(secs) => return too_many(secs),
    };
    match state.engine.subscriber_link_view(purpose, token).await {
        Err(e) => unavailable(e),
        Ok(Err(why)) => refused(state, client, why),
        Ok(Ok(s)) => {
            state.guard.authenticated(client);
            page(
                StatusCode::OK,
                title,
                &format!(
                    "<p>{question} <strong>{}</strong>?</p>\
                     <form method=\"post\"><button type=\"submit\">{button}</button></form>",
                    escape(&s.address)
                ),
            )
        }
    }
}

/// `GET /status/subscribe/confirm/{token}`: asks for the press. Changes nothing.
pub async fn confirm_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let admitted = admit(&state, &req);
    ask(
        &state,
        "confirm",
        &token,
        admitted,
        "Confirm your subscription",
        "Send status updates to",
        "Confirm",
    )
    .await
}

/// `POST /status/subscribe/confirm/{token}`: confirms the address.
pub async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let client = match admit(&state, &req) {
        Ok(c) => c,
        Err(secs) => return too_many(secs),
    };
    match state.engine.confirm_subscriber(&token).await {
        Err(e) => unavailable(e),
        Ok(Err(why)) => refused(&state, client, why),
        Ok(Ok(s)) => {
            state.guard.authenticated(client);
            page(
                StatusCode::OK,
                "Subscribed",
                &format!(
                    "<p><strong>{}</strong> will get status updates. Every mail has a one-click unsubscribe link.</p>",
                    escape(&s.address)
                ),
            )
        }
    }
}

/// `GET /status/unsubscribe/{token}`: asks for the press. Changes nothing.
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let admitted = admit(&state, &req);
    ask(
        &state,
        "unsubscribe",
        &token,
        admitted,
        "Unsubscribe?",
        "Stop sending status updates to",
        "Unsubscribe",
    )
    .await
}

/// `POST /status/unsubscribe/{token}`: the page's button and RFC 8058's one-click POST.
pub async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let client = match admit(&state, &req) {
        Ok(c) => c,
        Err(secs) => return too_many(secs),
    };
    match state.engine.unsubscribe(&token).await {
        Err(e) => unavailable(e),
        Ok(Err(why)) => refused(&state, client, why),
        Ok(Ok(_)) => {
            state.guard.authenticated(client);
            page(
                StatusCode::OK,
                "Unsubscribed",
                "<p>This address gets no more status updates.</p>",
            )
            .into_response()
        }
    }
}
