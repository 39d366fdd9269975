//! Status broadcasts to the page's subscribers: the notifiers of the broadcasts lane.
//!
//! **Webhook subscribers** get Statuspage's payload shapes, so a receiver written for Statuspage
//! works unchanged, signed like Spotter's generic intake with the subscriber's own secret:
//!
//! - an incident (and a scheduled maintenance, which Statuspage sends as an incident):
//!   `{"meta": {"unsubscribe", "documentation"}, "page": {"id", "status_indicator",
//!   "status_description"}, "incident": {…as in /api/v2/incidents.json…}}`
//! - a component: `{"meta", "page", "component_update": {"created_at", "new_status",
//!   "old_status", "id", "component_id"}, "component": {"created_at", "id", "name", "status"}}`
//! - headers `X-Spotter-Timestamp`, `X-Spotter-Signature: sha256=<hex HMAC-SHA256(secret,
//!   timestamp "." body)>` and `X-Spotter-Idempotency-Key`.
//!
//! The secret is read from the variable the subscriber names when each broadcast is delivered
//! (subscribers are added while Spotter runs); a variable that is not set is a failure to retry,
//! so setting it and restarting delivers what waited, and it is never a silent drop.
//!
//! **Email subscribers** get a plain-text mail per change, and the confirmation mail of the
//! double opt-in. Every mail carries its one-click unsubscribe link in the body and in the
//! `List-Unsubscribe` / `List-Unsubscribe-Post` headers (RFC 8058).

use super::email::{build_mailer, Mailer};
use super::{bounded, http_client, one_line};
use crate::status::api::{component_json, incident_json};
use crate::status::maintenance::maintenance_json;
use async_trait::async_trait;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::{AsyncTransport, Message};
use serde_json::json;
use spotter_core::config::Config;
use spotter_core::outbox::{DeliveryError, Notifier};
use spotter_core::status::{StatusBoard, StatusSnapshot};
use spotter_core::store::{Broadcast, BroadcastEvent, OutboxMessage};
use std::sync::Arc;
use std::time::Duration;

/// Reads an environment variable when it is needed (the process environment in production).
pub type RuntimeEnv = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

fn broadcast_of(m: &OutboxMessage) -> Result<&Broadcast, DeliveryError> {
    m.broadcast.as_ref().ok_or_else(|| {
        DeliveryError::Permanent(format!(
            "outbox message {} ({}) has no broadcast payload",
            m.id,
            m.kind.as_str()
        ))
    })
}

/// "subscriber 3": how a delivery is named in errors (never the address or URL).
fn what(b: &Broadcast, channel: &str) -> String {
    match b.subscriber {
        Some(id) => format!("{channel} subscriber {id}"),
        None => format!("{channel} announcement"),
    }
}

/// The JSON a webhook subscriber gets for `b` (see the module documentation).
pub fn webhook_body(
    snap: &StatusSnapshot,
    b: &Broadcast,
    unsubscribe: Option<&str>,
) -> serde_json::Value {
    // Statuspage points `documentation` at its help pages; an installation of Spotter has no
    // public docs of its own, so it points at the page these changes are about.
    let meta = json!({"unsubscribe": unsubscribe, "documentation": snap.page.url});
    let page = json!({
        "id": snap.page.id,
        "status_indicator": b.page.indicator.as_str(),
        "status_description": b.page.description,
    });
    match &b.event {
        BroadcastEvent::Incident { incident, .. } => {
            json!({"meta": meta, "page": page, "incident": incident_json(snap, incident)})
        }
        BroadcastEvent::Maintenance { maintenance } => {
            json!({"meta": meta, "page": page, "incident": maintenance_json(snap, maintenance)})
        }
        BroadcastEvent::Component {
            component,
            name,
            old_status,
            new_status,
            update_id,
            at,
        } => {
            let at = crate::status::api::time(*at);
            let mut component_obj = json!({
                "created_at": at,
                "id": component.as_str(),
                "name": name,
                "status": new_status.as_str(),
            });
            if let Some(c) = snap.components.iter().find(|c| c.id == component.as_str()) {
                component_obj =
                    serde_json::to_value(component_json(snap, c)).unwrap_or(component_obj);
                // The status is the one of this change, whatever the page says by now.
                component_obj["status"] = json!(new_status.as_str());
            }
            json!({
                "meta": meta,
                "page": page,
                "component_update": {
                    "created_at": at,
                    "new_status": new_status.as_str(),
                    "old_status": old_status.as_str(),
                    "id": update_id,
                    "component_id": component.as_str(),
                },
                "component": component_obj,
            })
        }
        BroadcastEvent::Confirm { .. } => json!({"meta": meta, "page": page}),
    }
}

/// Signs and POSTs broadcasts to webhook subscribers.
pub struct BroadcastWebhookNotifier {
    client: reqwest::Client,
    env: RuntimeEnv,
    board: Arc<StatusBoard>,
    timeout: Duration,
}

impl BroadcastWebhookNotifier {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: &Config, board: Arc<StatusBoard>, env: RuntimeEnv) -> anyhow::Result<Self> {
        let timeout = config
            .paging
            .notifier_timeout
            .to_std()
            .unwrap_or(Duration::from_secs(10));
        Ok(BroadcastWebhookNotifier {
            client: http_client(timeout)?,
            env,
            board,
            timeout,
        })
    }
}

#[async_trait]
impl Notifier for BroadcastWebhookNotifier {
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        let b = broadcast_of(m)?;
        let what = what(b, "webhook");
        let Some(var) = &b.secret_env else {
            return Err(DeliveryError::Permanent(format!(
                "{what} has no secret_env"
            )));
        };
        let Some(secret) = (self.env)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        else {
            return Err(DeliveryError::Retry {
                reason: format!(
                    "{what}: the environment variable {var} (its --secret-env) is not set; set it and restart Spotter"
                ),
                after: None,
            });
        };
        let snap = self.board.current();
        let unsubscribe = m.links.as_ref().map(|l| l.unsubscribe.as_str());
        let body = serde_json::to_vec(&webhook_body(&snap, b, unsubscribe)).map_err(|e| {
            DeliveryError::Permanent(format!("{what}: cannot encode the body: {e}"))
        })?;
        super::signed_post(
            &self.client,
            &b.address,
            secret.as_bytes(),
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

/// The subject and plain-text body of a subscriber's mail about `b`.
pub fn email_text(
    snap: &StatusSnapshot,
    b: &Broadcast,
    confirm: &str,
    unsubscribe: &str,
) -> (String, String) {
    let page = &snap.page.name;
    let url = &snap.page.url;
    let (subject, mut body) = match &b.event {
        BroadcastEvent::Confirm { components } => {
            let which = if components.is_empty() {
                "every component".to_string()
            } else {
                components
                    .iter()
                    .map(|c| {
                        snap.components
                            .iter()
                            .find(|p| p.id == c.as_str())
                            .map(|p| p.name.clone())
                            .unwrap_or_else(|| c.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (
                format!("[{page}] Confirm your subscription"),
                format!(
                    "Someone (hopefully you) asked to receive {page} status updates at this address, for {which}.\n\n\
                     To confirm, open this link and press the button on the page:\n{confirm}\n\n\
                     If you did not ask for this, ignore this mail: nothing will be sent unless the link is confirmed.\n"
                ),
            )
        }
        BroadcastEvent::Incident { incident, .. } => {
            let latest = incident.updates.first();
            let mut text = format!(
                "{}\n\nStatus: {}\nImpact: {}\n",
                incident.name,
                incident.status.title(),
                incident.impact.as_str()
            );
            if let Some(u) = latest {
                text.push_str(&format!(
                    "\n{} ({}):\n{}\n",
                    u.status.title(),
                    crate::status::page::local(snap, u.created_at),
                    u.body
                ));
            }
            text.push_str(&format!(
                "\nThe incident's whole history: {}\n",
                crate::status::api::incident_url(snap, &incident.id)
            ));
            (
                format!("[{page}] {}: {}", incident.status.title(), incident.name),
                text,
            )
        }
        BroadcastEvent::Maintenance { maintenance } => (
            format!(
                "[{page}] Maintenance {}: {}",
                maintenance.status.title().to_lowercase(),
                maintenance.name
            ),
            format!(
                "{}\n\nStatus: {}\nScheduled: {} to {}\n",
                maintenance.name,
                maintenance.status.title(),
                crate::status::page::local(snap, maintenance.scheduled_for),
                crate::status::page::local(snap, maintenance.scheduled_until)
            ),
        ),
        BroadcastEvent::Component {
            name,
            old_status,
            new_status,
            at,
            ..
        } => (
            format!("[{page}] {name} is {}", new_status.title().to_lowercase()),
            format!(
                "{name} changed from {} to {} at {}.\n",
                old_status.title(),
                new_status.title(),
                crate::status::page::local(snap, *at)
            ),
        ),
    };
    body.push_str(&format!(
        "\nStatus page: {url}\n\n-- \nUnsubscribe (one click): {unsubscribe}\n"
    ));
    (one_line(&subject), body)
}

/// Mails broadcasts to email subscribers over `[smtp]`.
pub struct BroadcastEmailNotifier {
    mailer: Mailer,
    board: Arc<StatusBoard>,
    timeout: Duration,
}

impl BroadcastEmailNotifier {
    /// # Errors
    /// When `[smtp] from` is not a mailbox, or the TLS settings cannot be built.
    pub fn new(
        config: &Config,
        board: Arc<StatusBoard>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let timeout = config
            .paging
            .notifier_timeout
            .to_std()
            .unwrap_or(Duration::from_secs(10));
        Ok(BroadcastEmailNotifier {
            mailer: build_mailer(config, env, timeout)?,
            board,
            timeout,
        })
    }
}

#[async_trait]
impl Notifier for BroadcastEmailNotifier {
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        let b = broadcast_of(m)?;
        let what = what(b, "email");
        let (transport, from) = match &self.mailer {
            Mailer::Ready { transport, from } => (transport, from),
            Mailer::Unusable(e) => return Err(e.clone()),
        };
        let Some(links) = &m.links else {
            return Err(DeliveryError::Permanent(format!(
                "{what}: no unsubscribe link (a subscriber's mail never goes out without one)"
            )));
        };
        let to: Mailbox = b.address.parse().map_err(|e| {
            DeliveryError::Permanent(format!("{what}: the address is not a mailbox ({e})"))
        })?;
        let snap = self.board.current();
        let (subject, body) = email_text(&snap, b, &links.confirm, &links.unsubscribe);
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject)
            .message_id(None)
            .header(ContentType::TEXT_PLAIN)
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{}>", super::ascii_header(&links.unsubscribe)),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ))
            .body(body)
            .map_err(|e| DeliveryError::Permanent(format!("{what}: cannot build the mail: {e}")))?;
        bounded(self.timeout, &what, async {
            transport.send(message).await.map(|_| ()).map_err(|e| {
                let reason = format!("{what}: {}", super::email::describe(&e));
                if e.is_permanent() {
                    DeliveryError::Permanent(reason)
                } else {
                    DeliveryError::Retry {
                        reason,
                        after: None,
                    }
                }
            })
        })
        .await
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}
