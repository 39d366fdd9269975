//! The announcer: turns what changed on the public page into broadcasts, one outbox message per
//! subscriber (and one for the Discord announcement channel), written in the same transaction
//! as the record of what was announced.
//!
//! It compares the page as it is (the status board, rebuilt just before) with what was last
//! announced about each subject (`status_notices`): a public incident that has a new update or
//! status, a component whose status moved, a maintenance that was announced, started or ended.
//! Each change is one transaction: the notice, conditional on what was read, and its messages.
//! So a change is announced once even with several replicas (the loser of the race gets a
//! conflict and finds nothing left to do) and even across a crash (the notice is written with
//! its messages or not at all, and a restarted Spotter finds the change still unannounced).
//! The messages carry the change as it was, so a delivery retried for an hour still says what
//! was true then.

use super::*;
use crate::domain::ComponentId;
use crate::status::{ComponentStatus, MaintenanceStatus, StatusSnapshot};
use crate::store::{
    Broadcast, BroadcastEvent, MessageKind, NoticeWrite, PageState, Subscriber, SubscriberKind,
    SubscriberState,
};

/// Broadcasts sit below chat posts and pages in every ordering.
const PRIORITY: i32 = -10;

/// One change to announce.
struct Change {
    notice: NoticeWrite,
    /// `None`: record it without telling anyone (the first sight of a component that is fine).
    event: Option<BroadcastEvent>,
    components: Vec<ComponentId>,
    /// A one-line summary: the message's text (what the log channel shows).
    summary: String,
}

/// What a public incident's notice records: its updates and its last change.
fn incident_state(p: &crate::status::PublicIncident) -> String {
    format!(
        "{}:{}:{}",
        p.updates.len(),
        p.status.as_str(),
        p.updated_at.timestamp_millis()
    )
}

impl Engine {
    /// The changes between the page and what was announced.
    fn changes(
        &self,
        snap: &StatusSnapshot,
        incidents: &[crate::status::PublicIncident],
        notices: &std::collections::HashMap<String, String>,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        for p in incidents {
            let subject = format!("incident:{}", p.id);
            let state = incident_state(p);
            let old = notices.get(&subject);
            if old == Some(&state) {
                continue;
            }
            let latest = p.updates.first().map(|u| u.body.as_str()).unwrap_or("");
            out.push(Change {
                notice: NoticeWrite {
                    subject,
                    old: old.cloned(),
                    new: state,
                },
                summary: format!("{}: {} ({})", p.name, latest, p.status.as_str()),
                components: p.components.clone(),
                event: Some(BroadcastEvent::Incident {
                    incident: p.clone(),
                    opening: old.is_none(),
                }),
            });
        }
        for c in &snap.components {
            let subject = format!("component:{}", c.id);
            let old = notices.get(&subject);
            let new = c.status.as_str().to_string();
            if old == Some(&new) {
                continue;
            }
            let old_status = old
                .and_then(|o| ComponentStatus::parse(o))
                .unwrap_or(ComponentStatus::Operational);
            let quiet = old.is_none() && c.status == ComponentStatus::Operational;
            let Ok(id) = c.id.parse::<ComponentId>() else {
                continue;
            };
            let at = self.clock.now();
            out.push(Change {
                notice: NoticeWrite {
                    subject,
                    old: old.cloned(),
                    new,
                },
                summary: format!(
                    "{} is {} (was {})",
                    c.name,
                    c.status.title(),
                    old_status.title()
                ),
                components: vec![id.clone()],
                event: (!quiet).then(|| BroadcastEvent::Component {
                    component: id,
                    name: c.name.clone(),
                    old_status,
                    new_status: c.status,
                    update_id: format!("cu_{}", crate::random_token(6)),
                    at,
                }),
            });
        }
        for m in &snap.maintenances {
            let subject = format!("maintenance:{}", m.id);
            let old = notices.get(&subject);
            let new = m.status.as_str().to_string();
            if old == Some(&new) {
                continue;
            }
            // A window first seen when it is over already is history, not news.
            let quiet = old.is_none() && m.status == MaintenanceStatus::Completed;
            out.push(Change {
                notice: NoticeWrite {
                    subject,
                    old: old.cloned(),
                    new,
                },
                summary: format!("Maintenance {}: {}", m.status.title(), m.name),
                components: m.components.clone(),
                event: (!quiet).then(|| BroadcastEvent::Maintenance {
                    maintenance: m.clone(),
                }),
            });
        }
        out
    }

    /// The messages of one change: one per active subscriber who wants it, and the Discord
    /// announcement channel's for incidents and maintenance.
    fn broadcasts(
        &self,
        change: &Change,
        event: &BroadcastEvent,
        page: &PageState,
        subscribers: &[Subscriber],
    ) -> Vec<NewMessage> {
        let key = format!("{}:{}", change.notice.subject, change.notice.new);
        let mut out = Vec::new();
        let mut push = |channel: Channel, target: String, b: Broadcast| {
            out.push(NewMessage {
                channel,
                kind: MessageKind::Broadcast,
                idempotency_key: format!("bc:{target}:{key}"),
                ordering_key: target.clone(),
                target,
                incident: None,
                text: change.summary.clone(),
                priority: PRIORITY,
                page: None,
                approval: None,
                broadcast: Some(b),
            });
        };
        for s in subscribers
            .iter()
            .filter(|s| s.state == SubscriberState::Active && s.wants(&change.components))
        {
            let channel = match s.kind {
                SubscriberKind::Webhook => Channel::Webhook,
                SubscriberKind::Email => Channel::Email,
            };
            push(
                channel,
                format!("subscriber:{}", s.id),
                Broadcast {
                    subscriber: Some(s.id),
                    address: s.address.clone(),
                    secret_env: s.secret_env.clone(),
                    page: page.clone(),
                    event: event.clone(),
                },
            );
        }
        let announced = matches!(
            event,
            BroadcastEvent::Incident { .. } | BroadcastEvent::Maintenance { .. }
        );
        if let (Some(channel), true) = (&self.config.status.discord_channel_id, announced) {
            if self.config.discord.is_some() {
                push(
                    Channel::Discord,
                    format!("announce:{channel}"),
                    Broadcast {
                        subscriber: None,
                        address: channel.clone(),
                        secret_env: None,
                        page: page.clone(),
                        event: event.clone(),
                    },
                );
            }
        }
        out
    }

    /// Announces what changed on the page since the last announcement. Idempotent: runs after
    /// every rebuild of the board, on every replica. Returns how many changes it recorded.
    pub async fn announce(&self) -> Result<usize, StoreError> {
        let since = self.clock.now()
            - self
                .config
                .alerts
                .reopen_window
                .max(chrono::Duration::days(1));
        let incidents = self.store.public_incidents_open_since(since).await?;
        let notices = self.store.status_notices().await?;
        let snap = self.status_board.current();
        let changes = self.changes(&snap, &incidents, &notices);
        if changes.is_empty() {
            return Ok(0);
        }
        let subscribers = self.store.subscribers().await?;
        let page = PageState {
            indicator: snap.indicator,
            description: snap.description.clone(),
        };
        let mut done = 0;
        let mut queued = false;
        for change in changes {
            let outbox = match &change.event {
                Some(e) => self.broadcasts(&change, e, &page, &subscribers),
                None => vec![],
            };
            queued |= !outbox.is_empty();
            let cs = Changeset {
                at: Some(self.clock.now()),
                notices: vec![change.notice],
                outbox,
                ..Default::default()
            };
            match self.store.commit(cs).await {
                Ok(()) => done += 1,
                // Another replica announced it first.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if queued {
            self.broadcast_wakeup.notify_one();
        }
        Ok(done)
    }
}
