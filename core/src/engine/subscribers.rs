//! The status page's subscribers: adding them (a signed webhook from the CLI, an email address
//! from the CLI or the page's form, confirmed by a link first), their links, unsubscribing and
//! removal.
//!
//! Links are `<id>.<mac>`, an HMAC of the subscriber id and the link's purpose under the link
//! key (derived from the audit key), so whoever reads the database cannot confirm or unsubscribe
//! anyone, and the token is derived when a mail goes out, never stored. The audit log records
//! who added or removed subscriber N, never the address: the log cannot be rewritten, and an
//! address must be erasable.

use super::*;
use crate::domain::ComponentId;
use crate::store::{
    Broadcast, BroadcastEvent, PageState, Subscriber, SubscriberKind, SubscriberLinks,
    SubscriberState, SubscriberWrite,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a subscriber link did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriberLinkRefusal {
    /// Not a link Spotter made (altered, forged, truncated).
    Invalid,
    /// The subscriber was removed (or unsubscribed) already.
    Gone,
}

/// What subscribing an email address did. The page answers the same for every outcome, so it
/// never tells whether an address is subscribed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailSubscribed {
    /// A new pending subscriber; its confirmation mail is queued.
    Pending(Subscriber),
    /// The address was pending: its confirmation is sent again (with the components asked now).
    Resent(Subscriber),
    /// The address is subscribed already: nothing changes, nothing is sent.
    Already(Subscriber),
}

/// The most components one subscriber may choose (there are only so many).
const MAX_COMPONENTS: usize = 64;

/// `true` for an address of the form `local@domain.tld`: no spaces or controls, one `@`, a
/// domain with a dot, within RFC 5321's lengths. The mail server has the last word; this keeps
/// junk out of the database and headers.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && s.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, '<' | '>' | '(' | ')' | ',' | ';' | '"' | '\\')
        })
}

impl Engine {
    fn subscriber_mac(&self, purpose: &str, id: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.link_key).expect("any key length");
        mac.update(b"subscriber:");
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(id.to_string().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// The subscriber of a presented `<id>.<mac>` token for `purpose`, when its MAC is right
    /// (compared in constant time).
    fn subscriber_of_token(&self, purpose: &str, token: &str) -> Option<i64> {
        let (id, mac) = token.split_once('.')?;
        if id.is_empty() || id.len() > 18 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if mac.len() != 32 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let id: i64 = id.parse().ok()?;
        crate::secrets_equal(
            self.subscriber_mac(purpose, id).as_bytes(),
            mac.to_ascii_lowercase().as_bytes(),
        )
        .then_some(id)
    }

    /// A subscriber's confirmation and unsubscribe links.
    pub fn subscriber_links(&self, id: i64) -> SubscriberLinks {
        let base = crate::status::snapshot::page_url(&self.config);
        let base = base.trim_end_matches('/');
        SubscriberLinks {
            confirm: format!(
                "{base}/subscribe/confirm/{id}.{}",
                self.subscriber_mac("confirm", id)
            ),
            unsubscribe: format!(
                "{base}/unsubscribe/{id}.{}",
                self.subscriber_mac("unsubscribe", id)
            ),
        }
    }

    /// Components named by a subscriber, checked against the configuration.
    fn subscriber_components(&self, given: &[String]) -> Result<Vec<ComponentId>, String> {
        if given.len() > MAX_COMPONENTS {
            return Err(format!(
                "component: at most {MAX_COMPONENTS} components, {} given",
                given.len()
            ));
        }
        let mut out: Vec<ComponentId> = Vec::new();
        for c in given {
            let c = c.trim();
            match self.config.component(c) {
                Some(found) => {
                    let id: ComponentId = found.id.clone();
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
                None => {
                    let known: Vec<&str> = self
                        .config
                        .components
                        .iter()
                        .map(|c| c.id.as_str())
                        .collect();
                    return Err(format!(
                        "component `{}` is not configured; one of: {}",
                        c.chars()
                            .filter(|c| !c.is_control())
                            .take(64)
                            .collect::<String>(),
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(out)
    }

    fn live_subscriber<'a>(
        all: &'a [Subscriber],
        kind: SubscriberKind,
        address: &str,
    ) -> Option<&'a Subscriber> {
        all.iter()
            .find(|s| s.kind == kind && s.address == address && s.state != SubscriberState::Removed)
    }

    fn subscriber_audit(
        &self,
        action: &str,
        s: &Subscriber,
        by: &str,
        at: DateTime<Utc>,
    ) -> AuditRecord {
        AuditRecord {
            at,
            actor: by.to_string(),
            action: action.into(),
            subject: format!("subscriber:{}", s.id),
            detail: serde_json::json!({
                "kind": s.kind.as_str(),
                "components": s.components.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            }),
        }
    }

    /// Adds a signed webhook subscriber. `secret_env` names the variable holding its secret;
    /// the value is read when a broadcast is delivered and never stored. `Ok(Err(why))` refuses
    /// bad input (naming the option and the accepted form) and changes nothing.
    pub async fn add_webhook_subscriber(
        &self,
        url: &str,
        secret_env: &str,
        components: &[String],
        by: &str,
    ) -> Result<Result<Subscriber, String>, StoreError> {
        let url = url.trim();
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        let host = url.split_once("://").map(|(_, r)| r).unwrap_or("");
        if !scheme_ok
            || host.is_empty()
            || host.starts_with('/')
            || url.len() > 2048
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Ok(Err(format!(
                "--webhook `{}` is not an http(s) URL; e.g. https://example.com/hooks/status",
                url.chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect::<String>()
            )));
        }
        let var = secret_env.trim();
        let var_ok = !var.is_empty()
            && var.len() <= 128
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !var.as_bytes()[0].is_ascii_digit();
        if !var_ok {
            return Ok(Err(format!(
                "--secret-env `{}` is not an environment variable name; e.g. STATUS_HOOK_SECRET (letters, digits, _)",
                var.chars().filter(|c| !c.is_control()).take(128).collect::<String>()
            )));
        }
        let components = match self.subscriber_components(components) {
            Ok(c) => c,
            Err(why) => return Ok(Err(format!("--{why}"))),
        };
        retry_on_conflict!(async {
            let all = self.store.subscribers().await?;
            if let Some(s) = Self::live_subscriber(&all, SubscriberKind::Webhook, url) {
                return Ok(Err(format!(
                    "{url} is subscribed already (subscriber {}); remove it first with: spotter subscribers remove {}",
                    s.id, s.id
                )));
            }
            let now = self.clock.now();
            let s = Subscriber {
                id: self.store.next_subscriber_id().await?,
                kind: SubscriberKind::Webhook,
                address: url.to_string(),
                secret_env: Some(var.to_string()),
                components: components.clone(),
                // Whoever runs the CLI owns the endpoint: no confirmation round trip.
                state: SubscriberState::Active,
                created_at: now,
                created_by: by.to_string(),
                confirmed_at: Some(now),
                removed_at: None,
            };
            self.store
                .commit(Changeset {
                    at: Some(now),
                    audit: vec![self.subscriber_audit("subscriber.add", &s, by, now)],
                    subscribers: vec![SubscriberWrite::Insert(s.clone())],
                    ..Default::default()
                })
                .await?;
            Ok(Ok(s))
        })
    }

    /// Subscribes an email address: pending until its confirmation link is followed (double
    /// opt-in), so nobody can subscribe someone else. `by` is `page` or `cli:<user>`.
    pub async fn subscribe_email(
        &self,
        address: &str,
        components: &[String],
        by: &str,
    ) -> Result<Result<EmailSubscribed, String>, StoreError> {
        if self.config.smtp.is_none() {
            return Ok(Err(
                "email subscriptions need an [smtp] section (host, port, tls, from) to send their mail".into(),
            ));
        }
        let address = address.trim().to_ascii_lowercase();
        if !is_email(&address) {
            return Ok(Err(format!(
                "email `{}` is not an email address; e.g. someone@example.com",
                address
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(254)
                    .collect::<String>()
            )));
        }
        let components = match self.subscriber_components(components) {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };
        let out = retry_on_conflict!(async {
            let all = self.store.subscribers().await?;
            let now = self.clock.now();
            let existing = Self::live_subscriber(&all, SubscriberKind::Email, &address).cloned();
            let (subscriber, mut cs, outcome) = match existing {
                Some(s) if s.state == SubscriberState::Active => {
                    return Ok(EmailSubscribed::Already(s));
                }
                Some(mut s) => {
                    s.components = components.clone();
                    let cs = Changeset {
                        at: Some(now),
                        subscribers: vec![SubscriberWrite::Components {
                            id: s.id,
                            components: components.clone(),
                        }],
                        ..Default::default()
                    };
                    (s.clone(), cs, EmailSubscribed::Resent(s))
                }
                None => {
                    let s = Subscriber {
                        id: self.store.next_subscriber_id().await?,
                        kind: SubscriberKind::Email,
                        address: address.clone(),
                        secret_env: None,
                        components: components.clone(),
                        state: SubscriberState::Pending,
                        created_at: now,
                        created_by: by.to_string(),
                        confirmed_at: None,
                        removed_at: None,
                    };
                    let cs = Changeset {
                        at: Some(now),
                        audit: vec![self.subscriber_audit("subscriber.request", &s, by, now)],
                        subscribers: vec![SubscriberWrite::Insert(s.clone())],
                        ..Default::default()
                    };
                    (s.clone(), cs, EmailSubscribed::Pending(s))
                }
            };
            let snap = self.status_board.current();
            cs.outbox.push(NewMessage {
                channel: crate::domain::Channel::Email,
                kind: crate::store::MessageKind::Broadcast,
                target: format!("subscriber:{}", subscriber.id),
                incident: None,
                text: format!("confirm the subscription of subscriber {}", subscriber.id),
                priority: -10,
                // At most one confirmation mail per address an hour, however many sources ask:
                // the form's per-address limit cannot be dodged by asking from many addresses.
                idempotency_key: format!("bc:{}:confirm:{}", subscriber.id, now.timestamp() / 3600),
                ordering_key: format!("subscriber:{}", subscriber.id),
                page: None,
                approval: None,
                broadcast: Some(Broadcast {
                    subscriber: Some(subscriber.id),
                    address: subscriber.address.clone(),
                    secret_env: None,
                    page: PageState {
                        indicator: snap.indicator,
                        description: snap.description.clone(),
                    },
                    event: BroadcastEvent::Confirm {
                        components: subscriber.components.clone(),
                    },
                }),
            });
            self.commit(cs).await?;
            self.broadcast_wakeup.notify_one();
            Ok(outcome)
        })?;
        Ok(Ok(out))
    }

    /// The subscriber a confirmation link is for, changing nothing (its page asks for a press).
    pub async fn subscriber_link_view(
        &self,
        purpose: &str,
        token: &str,
    ) -> Result<Result<Subscriber, SubscriberLinkRefusal>, StoreError> {
        let Some(id) = self.subscriber_of_token(purpose, token) else {
            return Ok(Err(SubscriberLinkRefusal::Invalid));
        };
        Ok(match self.store.subscriber(id).await? {
            Some(s) if s.state != SubscriberState::Removed => Ok(s),
            _ => Err(SubscriberLinkRefusal::Gone),
        })
    }

    /// Follows a confirmation link: a pending address becomes active (an active one stays).
    pub async fn confirm_subscriber(
        &self,
        token: &str,
    ) -> Result<Result<Subscriber, SubscriberLinkRefusal>, StoreError> {
        retry_on_conflict!(async {
            let s = match self.subscriber_link_view("confirm", token).await? {
                Ok(s) => s,
                Err(r) => return Ok(Err(r)),
            };
            if s.state == SubscriberState::Active {
                return Ok(Ok(s));
            }
            let now = self.clock.now();
            self.store
                .commit(Changeset {
                    at: Some(now),
                    audit: vec![self.subscriber_audit("subscriber.confirm", &s, "page", now)],
                    subscribers: vec![SubscriberWrite::Confirm { id: s.id, at: now }],
                    ..Default::default()
                })
                .await?;
            Ok(Ok(Subscriber {
                state: SubscriberState::Active,
                confirmed_at: Some(now),
                ..s
            }))
        })
    }

    /// Follows an unsubscribe link (RFC 8058's one-click POST, or the page's button).
    pub async fn unsubscribe(
        &self,
        token: &str,
    ) -> Result<Result<Subscriber, SubscriberLinkRefusal>, StoreError> {
        let Some(id) = self.subscriber_of_token("unsubscribe", token) else {
            return Ok(Err(SubscriberLinkRefusal::Invalid));
        };
        Ok(self
            .remove_subscriber(id, "page")
            .await?
            .map_err(|_| SubscriberLinkRefusal::Gone))
    }

    /// Removes subscriber `id` (`spotter subscribers remove`, or unsubscribing): it gets
    /// nothing more, and what was queued for it is cancelled in the same transaction.
    pub async fn remove_subscriber(
        &self,
        id: i64,
        by: &str,
    ) -> Result<Result<Subscriber, String>, StoreError> {
        retry_on_conflict!(async {
            let s = match self.store.subscriber(id).await? {
                Some(s) if s.state != SubscriberState::Removed => s,
                Some(_) => return Ok(Err(format!("subscriber {id} was removed already"))),
                None => {
                    return Ok(Err(format!(
                        "there is no subscriber {id}; spotter subscribers list shows them"
                    )))
                }
            };
            let now = self.clock.now();
            self.store
                .commit(Changeset {
                    at: Some(now),
                    audit: vec![self.subscriber_audit("subscriber.remove", &s, by, now)],
                    subscribers: vec![SubscriberWrite::Remove { id, at: now }],
                    ..Default::default()
                })
                .await?;
            Ok(Ok(Subscriber {
                state: SubscriberState::Removed,
                removed_at: Some(now),
                ..s
            }))
        })
    }
}

impl crate::outbox::BroadcastLinks for Engine {
    fn links(&self, subscriber: i64) -> SubscriberLinks {
        self.subscriber_links(subscriber)
    }
}
