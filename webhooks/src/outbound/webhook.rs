//! The `webhook` contact method: a JSON POST to the person's own endpoint (an SMS or voice
//! gateway, a pager bridge), signed exactly like Spotter's generic intake, so one verifier serves
//! both directions:
//!
//! - `X-Spotter-Timestamp: <unix seconds>`
//! - `X-Spotter-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>`
//! - `X-Spotter-Idempotency-Key: <the message's key>`: the same page is never two pages.
//!
//! The body:
//!
//! ```json
//! {"event": "page", "idempotency_key": "page:INC-7:e3:t1:a0:dba:m1",
//!  "incident": {"ref": "INC-7", "title": "…", "level": 3, "level_name": "…", "state": "…",
//!               "link": "https://…"},
//!  "tier": 1, "person": {"id": "dba", "name": "…"}, "message": "…",
//!  "ack_url": "https://…/ack/…", "reason": "escalation", "late_by_seconds": null}
//! ```
//!
//! `tier` is 1-based (`null` for pages outside the matrix), `incident` is `null` for pages about
//! no incident.

use super::{http_client, resolve, what};
use async_trait::async_trait;
use serde_json::json;
use spotter_core::config::{Config, ContactMethod};
use spotter_core::domain::Channel;
use spotter_core::outbox::{DeliveryError, Notifier};
use spotter_core::store::OutboxMessage;
use std::sync::Arc;
use std::time::Duration;

/// Signs and POSTs pages to `webhook` contact methods.
pub struct WebhookNotifier {
    config: Arc<Config>,
    client: reqwest::Client,
    /// Every `hmac_secret_env` the configuration names, with its value when it was set at start.
    secrets: super::EnvSecrets,
    timeout: Duration,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("secrets_set", &self.secrets)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    /// Reads every webhook method's `hmac_secret_env` through `env`, once. A variable that is not
    /// set is logged by name; deliveries needing it fail.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: Arc<Config>, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let secrets = super::EnvSecrets::read(
            config
                .people
                .values()
                .flat_map(|p| &p.notify)
                .filter_map(|m| match m {
                    ContactMethod::Webhook {
                        hmac_secret_env, ..
                    } => Some(hmac_secret_env),
                    _ => None,
                }),
            env,
            "hmac_secret_env",
        );
        let timeout = config
            .paging
            .notifier_timeout
            .to_std()
            .unwrap_or(Duration::from_secs(10));
        Ok(WebhookNotifier {
            client: http_client(timeout)?,
            config,
            secrets,
            timeout,
        })
    }
}

/// The JSON body of a page (see the module documentation).
fn body(m: &OutboxMessage, page: &spotter_core::store::Page) -> serde_json::Value {
    json!({
        "event": "page",
        "idempotency_key": m.idempotency_key,
        "incident": page.incident.as_ref().map(|i| json!({
            "ref": i.reference,
            "title": i.title,
            "level": i.level,
            "level_name": i.level_name,
            "state": i.state,
            "link": i.url,
        })),
        "tier": page.tier.map(|t| t + 1),
        "person": { "id": page.person, "name": page.person_name },
        "message": m.text,
        "ack_url": m.ack_url,
        "reason": page.reason,
        "late_by_seconds": page.late_by_seconds,
    })
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        let r = resolve(&self.config, m, Channel::Webhook)?;
        let ContactMethod::Webhook {
            url,
            hmac_secret_env,
        } = r.method
        else {
            unreachable!("resolve checked the channel");
        };
        let what = what(&r);
        let secret = self
            .secrets
            .get(hmac_secret_env, &format!("{what} (hmac_secret_env)"))?;
        let body = serde_json::to_vec(&body(m, r.page)).map_err(|e| {
            DeliveryError::Permanent(format!("{what}: cannot encode the body: {e}"))
        })?;
        super::signed_post(
            &self.client,
            url,
            secret.expose().as_bytes(),
            body,
            &m.idempotency_key,
            self.timeout,
            &what,
        )
        .await
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
