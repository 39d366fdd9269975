//! The `ntfy` contact method: ntfy's publish API (phone push notifications). The page's text is
//! the body, POSTed to the method's topic URL; the rest goes in headers:
//!
//! - `Title: INC-7 level 3 Complete System Failure: <incident title>`
//! - `Priority`: from the level, 1 → 3 (default), 2 → 4 (high), 3 and up → 5 (max, which
//!   breaks through do-not-disturb on most phones)
//! - `Tags: rotating_light,level-3`
//! - `Click`: the incident's page
//! - `Actions: http, Acknowledge, <ack url>, method=POST, clear=true`: a button that acknowledges
//!   from the notification itself (a POST, like the confirmation page's own button)
//! - `Authorization: Bearer <token>` when the method has `token_env`.
//!
//! Titles are people's text: every header value is put on one line (no CR or LF can reach the
//! wire), and a non-ASCII title goes as an RFC 2047 encoded-word, which ntfy decodes.

use super::{
    ascii_header, bounded, check_status, headline, http_client, request_failed, resolve,
    text_header, what,
};
use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use spotter_core::config::{Config, ContactMethod};
use spotter_core::domain::Channel;
use spotter_core::outbox::{DeliveryError, Notifier};
use spotter_core::store::{OutboxMessage, Page};
use std::sync::Arc;
use std::time::Duration;

/// Publishes pages to `ntfy` contact methods.
pub struct NtfyNotifier {
    config: Arc<Config>,
    client: reqwest::Client,
    /// Every `token_env` the configuration names, with its value when it was set at start.
    tokens: super::EnvSecrets,
    timeout: Duration,
}

impl std::fmt::Debug for NtfyNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtfyNotifier")
            .field("tokens_set", &self.tokens)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl NtfyNotifier {
    /// Reads every ntfy method's `token_env` through `env`, once. A variable that is not set is
    /// logged by name; deliveries needing it fail (rather than publish without authentication).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: Arc<Config>, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let tokens = super::EnvSecrets::read(
            config
                .people
                .values()
                .flat_map(|p| &p.notify)
                .filter_map(|m| match m {
                    ContactMethod::Ntfy {
                        token_env: Some(var),
                        ..
                    } => Some(var),
                    _ => None,
                }),
            env,
            "token_env",
        );
        let timeout = config
            .paging
            .notifier_timeout
            .to_std()
            .unwrap_or(Duration::from_secs(10));
        Ok(NtfyNotifier {
            client: http_client(timeout)?,
            config,
            tokens,
            timeout,
        })
    }
}

/// ntfy's priority (1-5) for an incident level: every page is at least the default (3); a
/// level-2 incident is high (4); level 3 and up is max (5).
pub fn priority(level: Option<u8>) -> u8 {
    match level {
        Some(0 | 1) => 3,
        Some(2) | None => 4,
        Some(_) => 5,
    }
}

/// A URL as one field of ntfy's `Actions` header, whose fields are separated by `,` and actions
/// by `;`: those (and quotes) are percent-encoded, which means the same in a URL.
fn action_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in ascii_header(url).chars() {
        match c {
            ',' => out.push_str("%2C"),
            ';' => out.push_str("%3B"),
            '"' => out.push_str("%22"),
            '\'' => out.push_str("%27"),
            c => out.push(c),
        }
    }
    out
}

/// The publish headers of a page (all but `Authorization`), names in lowercase as
/// [`HeaderName::from_static`] wants them.
pub fn headers(page: &Page, ack_url: Option<&str>) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    match &page.incident {
        Some(i) => {
            h.push((
                "title",
                text_header(&format!("{}: {}", headline(i), i.title)),
            ));
            h.push(("priority", priority(Some(i.level)).to_string()));
            h.push(("tags", format!("rotating_light,level-{}", i.level)));
            if !i.url.is_empty() {
                h.push(("click", ascii_header(&i.url)));
            }
        }
        None => {
            h.push((
                "title",
                text_header(&format!("Spotter page for {}", page.person_name)),
            ));
            h.push(("priority", priority(None).to_string()));
            h.push(("tags", "rotating_light".to_string()));
        }
    }
    if let Some(url) = ack_url {
        h.push((
            "actions",
            format!(
                "http, Acknowledge, {}, method=POST, clear=true",
                action_url(url)
            ),
        ));
    }
    h
}

#[async_trait]
impl Notifier for NtfyNotifier {
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        let r = resolve(&self.config, m, Channel::Ntfy)?;
        let ContactMethod::Ntfy { url, token_env } = r.method else {
            unreachable!("resolve checked the channel");
        };
        let what = what(&r);
        let mut map = HeaderMap::new();
        for (name, value) in headers(r.page, m.ack_url.as_deref()) {
            let value = HeaderValue::from_str(&value).map_err(|_| {
                DeliveryError::Permanent(format!("{what}: header {name} is not a valid value"))
            })?;
            map.insert(HeaderName::from_static(name), value);
        }
        if let Some(var) = token_env {
            let token = self.tokens.get(var, &format!("{what} (token_env)"))?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| {
                    DeliveryError::Permanent(format!(
                        "{what}: the token in {var} is not a valid header value (printable ASCII only)"
                    ))
                })?;
            // Kept out of any Debug output of the request and out of HTTP/2 header compression.
            value.set_sensitive(true);
            map.insert(reqwest::header::AUTHORIZATION, value);
        }
        let request = self
            .client
            .post(url)
            .timeout(self.timeout)
            .headers(map)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(m.text.clone());
        bounded(self.timeout, &what, async {
            let resp = request
                .send()
                .await
                .map_err(|e| request_failed(&what, self.timeout, e))?;
            check_status(&what, resp).await
        })
        .await
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_the_level() {
        assert_eq!(priority(Some(1)), 3);
        assert_eq!(priority(Some(2)), 4);
        assert_eq!(priority(Some(3)), 5);
        assert_eq!(priority(Some(5)), 5);
    }

    #[test]
    fn an_action_url_cannot_split_the_actions_header() {
        assert_eq!(
            action_url("https://s.example/ack/a,b;c\"d'e"),
            "https://s.example/ack/a%2Cb%3Bc%22d%27e"
        );
    }
}
