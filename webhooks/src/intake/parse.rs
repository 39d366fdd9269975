//! The wire formats, parsed into [`AlertBatch`]es. Unknown fields are ignored (senders add them
//! over time); a field that is present but wrong is an error naming the field's path.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use spotter_core::alerts::{AlertAction, AlertBatch, IncomingAlert};
use std::collections::BTreeMap;

/// A body that cannot be taken, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPayload {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for BadPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() || self.field == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "field `{}`: {}", self.field, self.message)
        }
    }
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> BadPayload {
    BadPayload {
        field: field.into(),
        message: message.into(),
    }
}

/// JSON → `T`, with serde's message and the path where it failed.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BadPayload> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        // serde_json appends "at line 1 column 42"; the path says more.
        let msg = inner.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        if inner.is_syntax() || inner.is_eof() {
            bad("", format!("the body is not valid JSON: {msg}"))
        } else {
            bad(field, msg)
        }
    })
}

/// RFC 3339, where Alertmanager's zero time (`0001-01-01T00:00:00Z`) means "not set".
fn time(field: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>, BadPayload> {
    match v.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => {
            let t = DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    bad(
                        field,
                        format!("`{s}` is not an RFC 3339 time like 2026-11-26T09:58:12Z"),
                    )
                })?
                .with_timezone(&Utc);
            Ok(if t.timestamp() <= -62_135_596_800 + 86_400 {
                None
            } else {
                Some(t)
            })
        }
    }
}

// ── Alertmanager (webhook_config, version 4) and Grafana (version 1) ──────────────────────────

#[derive(Deserialize)]
struct AmPayload {
    version: String,
    #[serde(rename = "groupKey", default)]
    group_key: String,
    #[serde(rename = "truncatedAlerts", default)]
    truncated_alerts: u64,
    alerts: Vec<AmAlert>,
}

#[derive(Deserialize)]
struct AmAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    starts_at: Option<String>,
    #[serde(rename = "endsAt", default)]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    generator_url: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// What a notification carried beyond its alerts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    /// Alerts the sender left out (Alertmanager's `max_alerts`).
    pub truncated: u64,
}

fn alertmanager_like(
    body: &[u8],
    source: &str,
    version: &str,
) -> Result<(AlertBatch, Notes), BadPayload> {
    let p: AmPayload = json(body)?;
    if p.version != version {
        return Err(bad(
            "version",
            format!("`{}` is not supported; expected \"{version}\"", p.version),
        ));
    }
    let mut alerts = Vec::with_capacity(p.alerts.len());
    for (i, a) in p.alerts.into_iter().enumerate() {
        // Firing alerts carry endsAt in the future or the zero time: status decides.
        let action = match a.status.as_str() {
            "firing" => AlertAction::Fire,
            "resolved" => AlertAction::Resolve,
            other => {
                return Err(bad(
                    format!("alerts[{i}].status"),
                    format!("`{other}` is not accepted; expected \"firing\" or \"resolved\""),
                ))
            }
        };
        if a.labels.is_empty() && a.fingerprint.as_deref().unwrap_or("").is_empty() {
            return Err(bad(
                format!("alerts[{i}].labels"),
                "an alert needs labels or a fingerprint",
            ));
        }
        alerts.push(IncomingAlert {
            fingerprint: a.fingerprint.filter(|f| !f.is_empty()),
            action,
            starts_at: time(&format!("alerts[{i}].startsAt"), &a.starts_at)?,
            ends_at: time(&format!("alerts[{i}].endsAt"), &a.ends_at)?,
            labels: a.labels,
            annotations: a.annotations,
            generator_url: a.generator_url,
        });
    }
    let group_key = Some(p.group_key).filter(|g| !g.is_empty());
    Ok((
        AlertBatch {
            source: source.to_string(),
            group_key,
            alerts,
        },
        Notes {
            truncated: p.truncated_alerts,
        },
    ))
}

pub fn alertmanager(body: &[u8], source: &str) -> Result<(AlertBatch, Notes), BadPayload> {
    alertmanager_like(body, source, "4")
}

pub fn grafana(body: &[u8], source: &str) -> Result<(AlertBatch, Notes), BadPayload> {
    alertmanager_like(body, source, "1")
}

// ── PagerDuty Events API v2 ───────────────────────────────────────────────────────────────────

#[derive(Deserialize)]
pub struct PdEvent {
    pub routing_key: Option<String>,
    pub event_action: Option<String>,
    pub dedup_key: Option<String>,
    pub payload: Option<PdPayload>,
    pub client: Option<String>,
    pub client_url: Option<String>,
}

#[derive(Deserialize)]
pub struct PdPayload {
    pub summary: Option<String>,
    pub source: Option<String>,
    pub severity: Option<String>,
    pub timestamp: Option<String>,
    pub component: Option<String>,
    pub group: Option<String>,
    pub class: Option<String>,
    pub custom_details: Option<serde_json::Value>,
}

/// A PagerDuty event, validated the way PagerDuty does: every problem is listed.
pub fn pagerduty(
    event: PdEvent,
    source: &str,
    generated_key: &str,
) -> Result<(AlertBatch, String), Vec<String>> {
    let mut errors = Vec::new();
    let action = match event.event_action.as_deref() {
        Some("trigger") => Some(AlertAction::Fire),
        Some("acknowledge") => Some(AlertAction::Acknowledge),
        Some("resolve") => Some(AlertAction::Resolve),
        Some(other) => {
            errors.push(format!(
                "'event_action' is invalid: `{other}`; expected trigger, acknowledge or resolve"
            ));
            None
        }
        None => {
            errors.push("'event_action' is missing".to_string());
            None
        }
    };
    let dedup_key = event.dedup_key.clone().filter(|k| !k.is_empty());
    if matches!(
        action,
        Some(AlertAction::Acknowledge | AlertAction::Resolve)
    ) && dedup_key.is_none()
    {
        errors.push("'dedup_key' is required for acknowledge and resolve".into());
    }
    if dedup_key.as_ref().is_some_and(|k| k.chars().count() > 255) {
        errors.push("'dedup_key' is longer than 255 characters".into());
    }
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let mut starts_at = None;
    if action == Some(AlertAction::Fire) {
        match &event.payload {
            None => errors.push("'payload' is missing".into()),
            Some(p) => {
                match p.summary.as_deref() {
                    None | Some("") => errors.push("'payload.summary' is missing".into()),
                    Some(s) if s.chars().count() > 1024 => {
                        errors.push("'payload.summary' is longer than 1024 characters".into())
                    }
                    Some(_) => {}
                }
                if p.source.as_deref().unwrap_or("").is_empty() {
                    errors.push("'payload.source' is missing".into());
                }
                match p.severity.as_deref() {
                    Some("critical" | "error" | "warning" | "info") => {}
                    Some(other) => errors.push(format!("'payload.severity' is invalid: `{other}`; expected critical, error, warning or info")),
                    None => errors.push("'payload.severity' is missing".into()),
                }
                match time("payload.timestamp", &p.timestamp) {
                    Ok(t) => starts_at = t,
                    Err(e) => errors.push(format!("'payload.timestamp' is invalid: {}", e.message)),
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Some(p) = &event.payload {
        for (k, v) in [
            ("severity", &p.severity),
            ("source", &p.source),
            ("component", &p.component),
            ("group", &p.group),
            ("class", &p.class),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                labels.insert(k.to_string(), v.clone());
            }
        }
        if let Some(s) = &p.summary {
            annotations.insert("summary".to_string(), s.clone());
            labels.entry("alertname".to_string()).or_insert_with(|| {
                p.class
                    .clone()
                    .unwrap_or_else(|| s.chars().take(100).collect())
            });
        }
        if let Some(d) = &p.custom_details {
            annotations.insert("custom_details".to_string(), d.to_string());
        }
    }
    if let Some(c) = &event.client {
        annotations.insert("client".into(), c.clone());
    }
    if let Some(u) = &event.client_url {
        annotations.insert("client_url".into(), u.clone());
    }
    let key = dedup_key.unwrap_or_else(|| generated_key.to_string());
    let alert = IncomingAlert {
        fingerprint: Some(key.clone()),
        action: action.expect("validated"),
        labels,
        annotations,
        starts_at,
        ends_at: None,
        generator_url: event.client_url,
    };
    Ok((
        AlertBatch {
            source: source.to_string(),
            group_key: None,
            alerts: vec![alert],
        },
        key,
    ))
}

// ── Generic signed JSON ───────────────────────────────────────────────────────────────────────

/// The documented generic shape (see README): one alert per request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericEvent {
    summary: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    level: Option<u8>,
    #[serde(default)]
    component: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    dedup_key: Option<String>,
}

pub fn generic(body: &[u8], source: &str) -> Result<AlertBatch, BadPayload> {
    let e: GenericEvent = json(body)?;
    if e.summary.trim().is_empty() {
        return Err(bad("summary", "must not be empty"));
    }
    let action = match e.status.as_deref() {
        None | Some("firing") | Some("trigger") => AlertAction::Fire,
        Some("resolved") | Some("resolve") => AlertAction::Resolve,
        Some(other) => {
            return Err(bad(
                "status",
                format!("`{other}` is not accepted; expected \"firing\" or \"resolved\""),
            ))
        }
    };
    if let Some(l) = e.level.filter(|l| !(1..=5).contains(l)) {
        return Err(bad("level", format!("{l} is not a level; expected 1-5")));
    }
    let mut labels = e.labels;
    if let Some(s) = e.severity {
        labels.insert("severity".into(), s);
    }
    if let Some(l) = e.level {
        labels.insert("level".into(), l.to_string());
    }
    if let Some(c) = e.component {
        labels.insert("component".into(), c);
    }
    let mut annotations = e.annotations;
    annotations.insert("summary".into(), e.summary.clone());
    labels
        .entry("alertname".into())
        .or_insert_with(|| e.summary.chars().take(100).collect());
    Ok(AlertBatch {
        source: source.to_string(),
        group_key: None,
        alerts: vec![IncomingAlert {
            fingerprint: e.dedup_key.filter(|k| !k.is_empty()),
            action,
            labels,
            annotations,
            starts_at: None,
            ends_at: None,
            generator_url: None,
        }],
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
