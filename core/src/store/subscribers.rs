//! What the store keeps of the status page's subscribers, and the broadcasts sent to them.
//!
//! A subscriber is a signed webhook (added from the CLI, with the name of the environment
//! variable holding its secret) or an email address (from the CLI or the page's form, confirmed
//! by a link: double opt-in). A broadcast is one outbox message to one subscriber (or to the
//! Discord announcement channel) about one public change, carrying what the change was at the
//! time it happened, so a delivery late by hours still says what was true then.

use crate::domain::ComponentId;
use crate::status::{ComponentStatus, Impact, PublicIncident, PublicMaintenance};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriberKind {
    Webhook,
    Email,
}

impl SubscriberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriberKind::Webhook => "webhook",
            SubscriberKind::Email => "email",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [SubscriberKind::Webhook, SubscriberKind::Email]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Where a subscriber is in its life: an email address waits for its confirmation; a removed one
/// (unsubscribed, or removed from the CLI) is kept for the record and gets nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriberState {
    Pending,
    Active,
    Removed,
}

impl SubscriberState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriberState::Pending => "pending",
            SubscriberState::Active => "active",
            SubscriberState::Removed => "removed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            SubscriberState::Pending,
            SubscriberState::Active,
            SubscriberState::Removed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscriber {
    pub id: i64,
    pub kind: SubscriberKind,
    /// The webhook's URL, or the email address (lower-cased).
    pub address: String,
    /// The variable holding a webhook's signing secret (its value never reaches the database).
    pub secret_env: Option<String>,
    /// The components it wants to hear about; empty: all of them.
    pub components: Vec<ComponentId>,
    pub state: SubscriberState,
    pub created_at: DateTime<Utc>,
    /// `cli:<user>` or `page`.
    pub created_by: String,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
}

impl Subscriber {
    /// Whether a change touching `components` is for this subscriber: everything when it chose
    /// nothing, and changes that name no component (the whole service) go to everyone.
    pub fn wants(&self, components: &[ComponentId]) -> bool {
        self.components.is_empty()
            || components.is_empty()
            || components.iter().any(|c| self.components.contains(c))
    }
}

#[derive(Debug, Clone)]
pub enum SubscriberWrite {
    /// A new subscriber; its id must still be free and its address not taken by another one that
    /// is not removed (else `Conflict`).
    Insert(Subscriber),
    /// A pending subscriber confirmed its address.
    Confirm { id: i64, at: DateTime<Utc> },
    /// Unsubscribed or removed: its undelivered broadcasts are cancelled with it.
    Remove { id: i64, at: DateTime<Utc> },
    /// A pending address asked again: its components are replaced.
    Components {
        id: i64,
        components: Vec<ComponentId>,
    },
}

/// What was last announced about one public subject (`incident:pi_…`, `component:database`,
/// `maintenance:3`), so each change is announced once, by one replica, even across a crash:
/// the write is conditional on `old`, and a replica that lost the race gets `Conflict`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeWrite {
    pub subject: String,
    /// What the announcer read; `None`: nothing was announced about it yet.
    pub old: Option<String>,
    pub new: String,
}

/// The page's overall state when a broadcast was decided (Statuspage's `page` object of a
/// webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageState {
    pub indicator: Impact,
    pub description: String,
}

/// What a broadcast is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BroadcastEvent {
    /// A public incident was published, updated or resolved: as it is after the change.
    Incident {
        incident: PublicIncident,
        /// This broadcast is its first (the opening post in Discord).
        opening: bool,
    },
    /// A component's public status changed.
    Component {
        component: ComponentId,
        name: String,
        old_status: ComponentStatus,
        new_status: ComponentStatus,
        /// Identifies this change (Statuspage's `component_update.id`).
        update_id: String,
        at: DateTime<Utc>,
    },
    /// A maintenance was announced, started or completed.
    Maintenance { maintenance: PublicMaintenance },
    /// An email address asks to subscribe: the mail with its confirmation link.
    Confirm { components: Vec<ComponentId> },
}

impl BroadcastEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            BroadcastEvent::Incident { .. } => "incident",
            BroadcastEvent::Component { .. } => "component",
            BroadcastEvent::Maintenance { .. } => "maintenance",
            BroadcastEvent::Confirm { .. } => "confirm",
        }
    }
}

/// A broadcast outbox message's payload: who gets it and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broadcast {
    /// `None` for the Discord announcement channel.
    pub subscriber: Option<i64>,
    /// The webhook URL, the email address, or the Discord channel id.
    pub address: String,
    pub secret_env: Option<String>,
    pub page: PageState,
    pub event: BroadcastEvent,
}
