//! The page notifiers against real listeners started here: an HTTP receiver that verifies
//! Spotter's signature the way intake does, an ntfy-like receiver that records headers
//! ([`http`]), and a tiny SMTP server ([`smtp`]).

mod http;
mod smtp;

use spotter_core::config::{Config, DEFAULT_TOML};
use spotter_core::domain::{Channel, IncidentRef};
use spotter_core::store::{DeliveryState, MessageKind, OutboxMessage, Page, PageIncident};
use std::sync::Arc;

pub const SECRET: &str = "hmac-secret-value-7f3a";
pub const OTHER_SECRET: &str = "other-secret-value-91c2";
pub const TOKEN: &str = "ntfy-token-value-5d1e";
pub const SMTP_PASSWORD: &str = "smtp-password-value-0b8c";
pub const ACK_URL: &str = "http://spotter.test/ack/l1.t0k3n";

/// The built-in configuration with `people` (and any other tables) appended and a 1 s notifier
/// timeout, so the test of a receiver that never answers is quick.
pub fn config(extra: &str) -> Arc<Config> {
    let text = DEFAULT_TOML.replace("notifier_timeout = \"10s\"", "notifier_timeout = \"1s\"");
    assert_ne!(
        text, DEFAULT_TOML,
        "the default sets notifier_timeout = \"10s\""
    );
    let text = format!("{text}\n{extra}");
    Arc::new(Config::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}")))
}

pub fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

/// A page of INC-7 (level 3) for `person`'s method `method`, on `channel`.
pub fn page(channel: Channel, person: &str, method: usize, title: &str) -> OutboxMessage {
    let key = format!("page:INC-7:e3:t1:a0:{person}");
    OutboxMessage {
        id: 41,
        channel,
        kind: MessageKind::Page,
        target: person.to_string(),
        incident: Some(IncidentRef::new(7)),
        text: format!("INC-7 (level 3, Complete System Failure): {title}. You are paged."),
        priority: 0,
        attempts: 0,
        state: DeliveryState::Pending,
        last_error: None,
        created_at: chrono::Utc::now(),
        delivered_at: None,
        idempotency_key: format!("{key}:m{method}"),
        page: Some(Page {
            person: person.to_string(),
            person_name: "Pager Person".into(),
            method,
            reason: "escalation".into(),
            tier: Some(1),
            incident: Some(PageIncident {
                reference: "INC-7".into(),
                title: title.into(),
                level: 3,
                level_name: "Complete System Failure".into(),
                state: "investigating".into(),
                url: "http://spotter.test/incidents/INC-7".into(),
            }),
            ack_link: Some("l1".into()),
            key,
            late_by_seconds: Some(12),
            next_tier_job: None,
        }),
        approval: None,
        broadcast: None,
        ack_url: Some(ACK_URL.into()),
        links: None,
    }
}

/// Fails when any of the test's secret values is in `text`.
pub fn secrets_absent(text: &str) {
    for s in [SECRET, OTHER_SECRET, TOKEN, SMTP_PASSWORD] {
        assert!(!text.contains(s), "a secret leaked into: {text}");
    }
}
