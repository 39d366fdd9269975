//! Outbound pages: the [`Notifier`]s of the `webhook`, `ntfy` and `email` contact methods.
//!
//! The pages dispatcher ([`spotter_core::outbox::Dispatcher::pages`]) hands each page to the
//! notifier of its method's channel; the notifier finds the method itself through the message's
//! [`Page`]: `config.people[target].notify[page.method]`. Every failure is an `Err` (a non-2xx,
//! a timeout, a missing secret), because a failed page falls through to the person's next method
//! at once: nothing here retries.
//!
//! Secrets (HMAC secrets, ntfy tokens, the SMTP password) are read from the environment once, when
//! the notifiers are built, through an `env` lookup the caller passes in. A missing one does not
//! stop Spotter: it is logged (by variable name) and every delivery that needs it fails with a
//! permanent error naming the variable. No secret value ever reaches an error, a log line or a
//! `Debug` output.
//!
//! - [`webhook`]: a JSON POST signed like generic intake.
//! - [`ntfy`]: ntfy's publish API (phone push notifications).
//! - [`email`]: a plain-text mail over `[smtp]`.
//! - [`broadcast`]: the broadcasts lane's notifiers: status changes to the page's webhook and
//!   email subscribers.

pub mod broadcast;
pub mod email;
pub mod ntfy;
pub mod webhook;

pub use email::EmailNotifier;
pub use ntfy::NtfyNotifier;
pub use webhook::WebhookNotifier;

use spotter_core::config::{Config, ContactMethod, Person};
use spotter_core::domain::Channel;
use spotter_core::outbox::{DeliveryError, Notifier};
use spotter_core::store::{OutboxMessage, Page, PageIncident};
use spotter_core::Secret;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The page notifiers of `config`: webhook and ntfy always, email when `[smtp]` is configured.
/// Secrets are looked up through `env` now, once.
///
/// # Errors
/// When an HTTP client or the SMTP transport cannot be built, or `[smtp] from` is not a mailbox.
pub fn page_notifiers(
    config: &Arc<Config>,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> anyhow::Result<Vec<(Channel, Arc<dyn Notifier>)>> {
    let mut out: Vec<(Channel, Arc<dyn Notifier>)> = vec![
        (
            Channel::Webhook,
            Arc::new(WebhookNotifier::new(config.clone(), env)?),
        ),
        (
            Channel::Ntfy,
            Arc::new(NtfyNotifier::new(config.clone(), env)?),
        ),
    ];
    if config.smtp.is_some() {
        out.push((
            Channel::Email,
            Arc::new(EmailNotifier::new(config.clone(), env)?),
        ));
    }
    Ok(out)
}

/// The secrets a notifier's methods name, read through `env` once at start: variable name → its
/// value when it was set. `Debug` shows the names and whether each was set, never a value.
pub(crate) struct EnvSecrets(std::collections::BTreeMap<String, Option<Secret>>);

impl EnvSecrets {
    /// Reads `vars`; an unset one is logged by name (`setting` says which key named it).
    pub(crate) fn read<'a>(
        vars: impl IntoIterator<Item = &'a String>,
        env: &dyn Fn(&str) -> Option<String>,
        setting: &str,
    ) -> Self {
        let mut map = std::collections::BTreeMap::new();
        for var in vars {
            map.entry(var.clone())
                .or_insert_with(|| secret_from(env, var));
        }
        for (var, value) in &map {
            if value.is_none() {
                tracing::warn!(variable = %var, "a contact method's {setting} is not set: its pages will fail over to the next method");
            }
        }
        EnvSecrets(map)
    }

    /// The value of `var`, or the permanent error of a delivery that needs it (`what` names the
    /// method).
    pub(crate) fn get(&self, var: &str, what: &str) -> Result<&Secret, DeliveryError> {
        self.0
            .get(var)
            .and_then(Option::as_ref)
            .ok_or_else(|| missing_secret(what, var))
    }
}

impl std::fmt::Debug for EnvSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v.is_some())))
            .finish()
    }
}

/// The trimmed, non-empty value of `var` through `env` (the same rule as every other secret
/// Spotter reads from the environment).
fn secret_from(env: &dyn Fn(&str) -> Option<String>, var: &str) -> Option<Secret> {
    env(var)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .map(Secret::new)
}

/// The error of a delivery that needs `var` when it was not set at start.
fn missing_secret(what: &str, var: &str) -> DeliveryError {
    DeliveryError::Permanent(format!(
        "{what}: the environment variable {var} was not set (or empty) when Spotter started; set it and restart"
    ))
}

/// What a page message is about, resolved against the configuration.
struct Resolved<'a> {
    person: &'a Person,
    page: &'a Page,
    method: &'a ContactMethod,
}

/// The page of `m`, its person and the contact method it is for, which must be of `channel`.
/// A message that does not resolve can never be delivered: a permanent error naming why.
fn resolve<'a>(
    config: &'a Config,
    m: &'a OutboxMessage,
    channel: Channel,
) -> Result<Resolved<'a>, DeliveryError> {
    let Some(page) = &m.page else {
        return Err(DeliveryError::Permanent(format!(
            "outbox message {} ({}) on the {channel} channel is not a page; only pages go out this way",
            m.id,
            m.kind.as_str()
        )));
    };
    let person = config.person(&m.target).ok_or_else(|| {
        DeliveryError::Permanent(format!("person `{}` is not in the configuration", m.target))
    })?;
    let method = person.notify.get(page.method).ok_or_else(|| {
        DeliveryError::Permanent(format!(
            "person `{}` has no contact method notify[{}] (they have {})",
            person.id,
            page.method,
            person.notify.len()
        ))
    })?;
    if method.channel() != channel {
        return Err(DeliveryError::Permanent(format!(
            "contact method notify[{}] of `{}` is {}, not {channel}",
            page.method,
            person.id,
            method.kind()
        )));
    }
    Ok(Resolved {
        person,
        page,
        method,
    })
}

/// How a delivery is named in errors: the method and the person, never the URL (a topic URL or
/// a webhook path can be a credential).
fn what(r: &Resolved<'_>) -> String {
    format!(
        "{} notify[{}] of `{}`",
        r.method.kind(),
        r.page.method,
        r.person.id
    )
}

/// `fut`, given up after `limit`: a delivery never outlives the notifier timeout, whatever the
/// client libraries' own timeouts cover (lettre's bound each command, not the conversation).
async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, DeliveryError>>,
) -> Result<T, DeliveryError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(what, limit)),
    }
}

fn timed_out(what: &str, limit: Duration) -> DeliveryError {
    DeliveryError::Retry {
        reason: format!(
            "{what}: no answer within {} s ([paging] notifier_timeout)",
            limit.as_secs_f64()
        ),
        after: None,
    }
}

/// The HTTP client of the webhook and ntfy notifiers: bounded by the notifier timeout, and no
/// redirects, so a signed POST is never replayed elsewhere (or turned into a GET): a 3xx is a
/// failure like any other non-2xx.
fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("spotter/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for pages: {}", describe(e)))
}

/// A reqwest error as it may be shown: without its URL, with its causes.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A failed request: a timeout or anything else, both worth another method (and, on a lane that
/// retries, another try).
fn request_failed(what: &str, limit: Duration, e: reqwest::Error) -> DeliveryError {
    if e.is_timeout() {
        return timed_out(what, limit);
    }
    DeliveryError::Retry {
        reason: format!("{what}: {}", describe(e)),
        after: None,
    }
}

/// POSTs `body` (JSON) to `url`, signed like generic intake (`X-Spotter-Timestamp`,
/// `X-Spotter-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>`) and carrying the
/// message's idempotency key, bounded by `limit`: pages' webhooks and subscribers' alike.
pub(crate) async fn signed_post(
    client: &reqwest::Client,
    url: &str,
    secret: &[u8],
    body: Vec<u8>,
    idempotency_key: &str,
    limit: Duration,
    what: &str,
) -> Result<(), DeliveryError> {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature =
        crate::intake::signature::sign_hex(secret, &[timestamp.as_bytes(), b".", &body]);
    let request = client
        .post(url)
        .timeout(limit)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Spotter-Timestamp", &timestamp)
        .header("X-Spotter-Signature", format!("sha256={signature}"))
        .header("X-Spotter-Idempotency-Key", ascii_header(idempotency_key))
        .body(body);
    bounded(limit, what, async {
        let resp = request
            .send()
            .await
            .map_err(|e| request_failed(what, limit, e))?;
        check_status(what, resp).await
    })
    .await
}

/// The most of a refusing answer's body that goes into the error: enough for ntfy's
/// `{"code":40101,"error":"unauthorized"}`.
const BODY_SNIPPET: usize = 200;

/// `Ok` for a 2xx answer; otherwise an error with the status and the start of the body:
/// `Retry` for 5xx and 429 (with the far side's `Retry-After` seconds), `Permanent` for the rest.
async fn check_status(what: &str, mut resp: reqwest::Response) -> Result<(), DeliveryError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|s| *s >= 0)
        .map(chrono::Duration::seconds);
    let mut body = Vec::new();
    while body.len() < BODY_SNIPPET {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    body.truncate(BODY_SNIPPET);
    let snippet: String = String::from_utf8_lossy(&body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let snippet = snippet.trim();
    let reason = if snippet.is_empty() {
        format!("{what}: answered {status}")
    } else {
        format!("{what}: answered {status}: {snippet}")
    };
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(DeliveryError::Retry { reason, after })
    } else {
        Err(DeliveryError::Permanent(reason))
    }
}

/// Text without control characters (CR, LF, tab, …: each becomes a space), trimmed, for headers
/// and subjects. This is what stops header injection through user text such as titles.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// An HTTP header value that is visible ASCII and spaces only: controls become spaces, anything
/// else non-ASCII is dropped. For values a receiver parses (URLs, tags, actions).
fn ascii_header(s: &str) -> String {
    one_line(s)
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect()
}

/// A header value for human text (a title): on one line; left as is when it is ASCII, otherwise
/// one RFC 2047 encoded-word (`=?UTF-8?B?…?=`, which ntfy decodes since 2.4), so names like
/// "Müller" survive. Base64 has no CR or LF, so the result is always a safe header value.
fn text_header(s: &str) -> String {
    use base64::Engine as _;
    let line = one_line(s);
    if line.is_ascii() {
        line
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(line.as_bytes())
        )
    }
}

/// "INC-7 level 3 Complete System Failure": the incident as a page's headline.
fn headline(i: &PageIncident) -> String {
    format!("{} level {} {}", i.reference, i.level, i.level_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_never_carry_a_line_break() {
        let evil = "Disk full\r\nX-Evil: 1\n\u{7f}";
        assert_eq!(one_line(evil), "Disk full  X-Evil: 1");
        assert_eq!(
            ascii_header("https://x.example/ä\r\nA: b"),
            "https://x.example/  A: b"
        );
        let t = text_header("Müller\r\nX-Evil: 1");
        assert!(t.starts_with("=?UTF-8?B?") && t.ends_with("?="), "{t}");
        assert!(!t.contains('\r') && !t.contains('\n'));
        assert!(reqwest::header::HeaderValue::from_str(&t).is_ok());
        assert_eq!(text_header("plain title"), "plain title");
    }
}
