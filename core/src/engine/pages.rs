//! After a page leaves: a contact method that failed falls through to the person's next one, and
//! the acknowledgement link a page carries.
//!
//! An acknowledgement link is `<public_url>/ack/<id>.<mac>`: `id` names a row of `ack_links`
//! (person, incident, expiry, use), `mac` is an HMAC of the id under a key derived from the audit
//! key, which is not in the database. So the database alone cannot produce a working link, a
//! forged or altered link is refused before any row is read, and a link works once, for its
//! person and incident, until it expires.

use super::paging::page_message;
use super::*;
use crate::outbox::PageOutcomes;
use crate::store::{AckLinkWrite, OutboxMark, OutboxMessage};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why an acknowledgement link does nothing. Shown on the page the link opens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckLinkRefusal {
    #[error("this acknowledgement link is not valid: it may have been altered or cut short; acknowledge in chat with /incident ack instead")]
    Invalid,
    #[error(
        "this acknowledgement link expired at {0}; acknowledge in chat with /incident ack instead"
    )]
    Expired(String),
    #[error("this acknowledgement link was already used at {0}")]
    Used(String),
    #[error("{reference} is already acknowledged by {by}; nothing changed")]
    AlreadyAcknowledged { reference: String, by: String },
    #[error("{reference} is {state}; there is nothing to acknowledge")]
    NotOpen { reference: String, state: String },
}

/// What the confirmation page shows before the person presses the button.
#[derive(Debug, Clone)]
pub struct AckLinkView {
    pub incident: Incident,
    pub level_name: String,
    pub person: String,
    pub expires_at: DateTime<Utc>,
}

impl Engine {
    /// Sets the key acknowledgement links are signed with (the application derives it from the
    /// audit key, so links survive restarts and work on every replica).
    pub fn with_link_key(mut self, key: [u8; 32]) -> Self {
        self.link_key = key;
        self
    }

    fn link_mac(&self, id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.link_key).expect("any key length");
        mac.update(b"ack-link:");
        mac.update(id.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// The link that acknowledges as the page's person.
    pub fn ack_url_for(&self, id: &str) -> String {
        format!(
            "{}/ack/{id}.{}",
            self.config.server.public_url.trim_end_matches('/'),
            self.link_mac(id)
        )
    }

    /// The link id of a presented token, when its MAC is right (compared in constant time).
    fn link_id(&self, token: &str) -> Option<String> {
        let (id, mac) = token.split_once('.')?;
        let well_formed =
            |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed(id, 32) || !well_formed(mac, 32) {
            return None;
        }
        crate::secrets_equal(
            self.link_mac(id).as_bytes(),
            mac.to_ascii_lowercase().as_bytes(),
        )
        .then(|| id.to_string())
    }

    /// Reads a link for its confirmation page; changes nothing (link scanners fetch links).
    pub async fn ack_link_view(
        &self,
        token: &str,
    ) -> Result<Result<AckLinkView, AckLinkRefusal>, StoreError> {
        let Some(id) = self.link_id(token) else {
            return Ok(Err(AckLinkRefusal::Invalid));
        };
        let Some(link) = self.store.ack_link(&id).await? else {
            return Ok(Err(AckLinkRefusal::Invalid));
        };
        let Some(inc) = self.store.incident(link.incident).await? else {
            return Ok(Err(AckLinkRefusal::Invalid));
        };
        if let Err(why) = self.link_usable(&link, &inc) {
            return Ok(Err(why));
        }
        Ok(Ok(AckLinkView {
            level_name: self
                .config
                .level(inc.level)
                .map(|l| l.name.clone())
                .unwrap_or_default(),
            person: self.config.display_name(&link.person),
            expires_at: link.expires_at,
            incident: inc,
        }))
    }

    fn link_usable(
        &self,
        link: &crate::store::AckLink,
        inc: &Incident,
    ) -> Result<(), AckLinkRefusal> {
        if let Some(at) = link.used_at {
            return Err(AckLinkRefusal::Used(render::time(at)));
        }
        if self.clock.now() >= link.expires_at {
            return Err(AckLinkRefusal::Expired(render::time(link.expires_at)));
        }
        match inc.state {
            crate::domain::State::Declared => Ok(()),
            crate::domain::State::Acknowledged => Err(AckLinkRefusal::AlreadyAcknowledged {
                reference: inc.reference.to_string(),
                by: inc
                    .acknowledged_by
                    .as_deref()
                    .map(|a| self.config.display_name(a))
                    .unwrap_or_else(|| "someone".into()),
            }),
            s => Err(AckLinkRefusal::NotOpen {
                reference: inc.reference.to_string(),
                state: s.to_string(),
            }),
        }
    }

    /// Acknowledges through a link, as the link's person: the link itself is the grant (it was
    /// sent to them only), so a paged outside vendor can acknowledge without a role. The link is
    /// used up in the same transaction, so a second press changes nothing.
    pub async fn ack_by_link(
        &self,
        token: &str,
    ) -> Result<Result<Reply, AckLinkRefusal>, StoreError> {
        let Some(id) = self.link_id(token) else {
            return Ok(Err(AckLinkRefusal::Invalid));
        };
        let Some(link) = self.store.ack_link(&id).await? else {
            return Ok(Err(AckLinkRefusal::Invalid));
        };
        let _turn = self.incident_lock(link.incident).lock().await;
        let actor = self.actor_for_person(&link.person);
        let outcome = retry_on_conflict!(async {
            let Some(link) = self.store.ack_link(&id).await? else {
                return Ok(Err(AckLinkRefusal::Invalid));
            };
            let Some(current) = self.store.incident(link.incident).await? else {
                return Ok(Err(AckLinkRefusal::Invalid));
            };
            if let Err(why) = self.link_usable(&link, &current) {
                return Ok(Err(why));
            }
            let now = self.clock.now();
            let mut next = current.clone();
            let mut plan = Plan::new(self, &actor, now);
            let cmd = Command::Ack {
                incident: Some(current.reference),
            };
            let text = match self.decide(&mut next, &mut plan, &cmd) {
                Ok(t) => t,
                Err(e) => {
                    return Ok(Err(AckLinkRefusal::NotOpen {
                        reference: current.reference.to_string(),
                        state: e.to_string(),
                    }))
                }
            };
            plan.audit(
                "ack_link.used",
                &next,
                serde_json::json!({"link": id, "person": link.person}),
            );
            plan.extra.ack_links.push(AckLinkWrite::Use {
                id: id.clone(),
                at: now,
            });
            self.commit(plan.finish(Some(IncidentWrite::Update(next.clone()))))
                .await?;
            self.observe_transition(&current, &next, now);
            next.version += 1;
            Ok(Ok(Reply::ok(text, Some(next))))
        })?;
        Ok(outcome)
    }

    /// MTTA and MTTR, observed by the replica that made the change.
    pub(crate) fn observe_transition(
        &self,
        before: &Incident,
        after: &Incident,
        at: DateTime<Utc>,
    ) {
        use crate::domain::State;
        let secs = (at - after.declared_at).num_milliseconds() as f64 / 1000.0;
        if before.state == State::Declared
            && after.state == State::Acknowledged
            && before.acknowledged_at.is_none()
        {
            self.metrics.acknowledged_after(after.level.0, secs);
        }
        if before.state.is_open() && after.state == State::Resolved {
            self.metrics.resolved_after(after.level.0, secs);
        }
    }

    /// A page's contact method failed: recorded (fenced), and the page falls through to the
    /// person's next usable method. With none left the person is unreachable: the timeline says
    /// so, and their tier counts as unanswered (the next tier is paged now). Nothing falls
    /// through once the incident is acknowledged or no longer open (escalation pages), or no
    /// longer open (pages by hand and the RTO watch).
    async fn page_failed_sql(
        &self,
        m: &OutboxMessage,
        owner: &str,
        error: &str,
    ) -> Result<bool, StoreError> {
        let error: String = error.chars().take(300).collect();
        let actor = Actor::system("pager");
        let _turn = match m.incident {
            Some(r) => Some(self.incident_lock(r).lock().await),
            None => None,
        };
        let result = retry_on_conflict!(async {
            let now = self.clock.now();
            let mut plan = Plan::new(self, &actor, now);
            plan.extra.outbox_marks.push(OutboxMark {
                id: m.id,
                owner: owner.to_string(),
                at: now,
                failed: Some(error.clone()),
            });
            let Some(page) = &m.page else {
                return self.commit(plan.finish(None)).await;
            };
            let person = self.config.person(&page.person);
            let next = person.and_then(|p| {
                self.config
                    .usable_methods(p)
                    .into_iter()
                    .find(|(i, _)| *i > page.method)
            });
            let inc = match m.incident {
                Some(r) => self.store.incident(r).await?,
                None => None,
            };
            let by_hand = matches!(page.reason.as_str(), "manual" | "rto");
            let wanted = match &inc {
                Some(i) => {
                    i.state.is_open() && (i.state == crate::domain::State::Declared || by_hand)
                }
                None => true,
            };
            let was = person
                .and_then(|p| p.notify.get(page.method))
                .map(|c| c.kind())
                .unwrap_or("?");
            let who = self.config.display_name(&page.person);
            let mut write = None;
            if wanted {
                let text = match next {
                    Some((i, method)) => {
                        let mut p = page.clone();
                        p.method = i;
                        plan.outbox.push(page_message(
                            method,
                            m.incident,
                            m.text.clone(),
                            p,
                            page.next_tier_job.clone(),
                        ));
                        format!(
                            "could not page {who} by {was} ({error}); trying {} next",
                            method.kind()
                        )
                    }
                    None => {
                        self.metrics.page_outcome(was, "fell_through");
                        let mut t = format!(
                            "could not reach {who} by any contact method (last: {was}: {error})"
                        );
                        match &page.next_tier_job {
                            Some(job)
                                if inc
                                    .as_ref()
                                    .is_some_and(|i| i.state == crate::domain::State::Declared) =>
                            {
                                plan.jobs.push(JobChange::Hasten {
                                    key: job.clone(),
                                    due_at: now,
                                });
                                let tier = page.tier.map(|t| t + 2).unwrap_or(0);
                                t.push_str(&format!(
                                    "; their tier counts as unanswered: tier {tier} is paged now"
                                ));
                            }
                            _ => {}
                        }
                        t
                    }
                };
                if let Some(i) = inc {
                    plan.event(&i, EventKind::PageFailed, text, false);
                    write = Some(IncidentWrite::Update(i));
                }
            }
            self.commit(plan.finish(write)).await
        });
        match result {
            Ok(()) => Ok(true),
            Err(StoreError::LeaseLost) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Engine {
    /// A timeline entry (and an audit record) for a chat-lane message that was given up. It is
    /// written without a chat post of its own: the channel that failed would only fail again.
    async fn message_given_up_sql(&self, m: &OutboxMessage, error: &str) -> Result<(), StoreError> {
        let Some(r) = m.incident else {
            return Ok(());
        };
        let now = self.clock.now();
        let error: String = error.chars().take(300).collect();
        let what = m.kind.as_str().replace('_', " ");
        let text = format!(
            "a {what} to {} was given up after {} attempts: {error}",
            m.channel,
            m.attempts + 1
        );
        self.store
            .commit(crate::store::Changeset {
                at: Some(now),
                timeline: vec![TimelineEntry {
                    incident: r,
                    at: now,
                    actor: "system:outbox".into(),
                    kind: EventKind::MessageDeadLettered,
                    text,
                    public: false,
                }],
                audit: vec![AuditRecord {
                    at: now,
                    actor: "system:outbox".into(),
                    action: "message.dead_lettered".into(),
                    subject: r.to_string(),
                    detail: serde_json::json!({"channel": m.channel, "kind": m.kind, "attempts": m.attempts + 1, "error": error}),
                }],
                ..Default::default()
            })
            .await
    }
}

#[async_trait::async_trait]
impl PageOutcomes for Engine {
    async fn message_given_up(
        &self,
        message: &OutboxMessage,
        error: &str,
    ) -> Result<(), StoreError> {
        self.message_given_up_sql(message, error).await
    }

    fn ack_url(&self, link: &str) -> String {
        self.ack_url_for(link)
    }

    async fn page_failed(
        &self,
        message: &OutboxMessage,
        owner: &str,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.page_failed_sql(message, owner, error).await
    }
}
