//! Alerts as Spotter understands them, whatever sent them: a normalised [`IncomingAlert`], its
//! identity, and the routing rules that turn its labels into a level, components, a title and a
//! group. Pure functions; the engine's intake (`intake.rs`) applies them.

use crate::config::{Config, Route};
use crate::domain::{ComponentId, LevelId};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub use crate::domain::AlertStatus;

/// What a sender asks for about one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    Fire,
    Resolve,
    /// PagerDuty's `acknowledge`: someone is on it (acknowledges the incident).
    Acknowledge,
}

/// One alert from any sender, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingAlert {
    /// The sender's identity for the alert (Alertmanager `fingerprint`, PagerDuty `dedup_key`);
    /// `None` → a hash of the sorted labels.
    pub fingerprint: Option<String>,
    pub action: AlertAction,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: Option<String>,
}

impl IncomingAlert {
    /// The alert's stable identity.
    pub fn identity(&self) -> String {
        match &self.fingerprint {
            Some(f) if !f.is_empty() => f.clone(),
            _ => labels_fingerprint(&self.labels),
        }
    }

    /// A one-line summary: the `summary` annotation, else `description`, else the alertname.
    pub fn summary(&self) -> String {
        self.stated_summary().unwrap_or_else(|| "alert".into())
    }

    /// The summary the sender gave, if any (a PagerDuty `resolve` names only the dedup key, and
    /// must not replace what the trigger said with a placeholder).
    pub fn stated_summary(&self) -> Option<String> {
        self.annotations
            .get("summary")
            .or_else(|| self.annotations.get("description"))
            .or_else(|| self.labels.get("alertname"))
            .cloned()
    }
}

/// Alerts from one notification.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertBatch {
    /// The configured source id.
    pub source: String,
    /// Alertmanager's / Grafana's `groupKey`: alerts of one key belong to one incident.
    pub group_key: Option<String>,
    pub alerts: Vec<IncomingAlert>,
}

/// A hash of the sorted labels, for senders that give no fingerprint. Length-prefixed so no two
/// label sets collide by concatenation.
pub fn labels_fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in labels {
        for part in [k, v] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    hex::encode(&h.finalize()[..8])
}

/// Where an alert goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub level: LevelId,
    pub components: Vec<ComponentId>,
    pub title: String,
    pub group_key: String,
}

/// The level from labels: a `level` label 1-5 wins, else `severity` (critical → 3, error → 2,
/// warning → 1), else `None`.
pub fn level_from_labels(labels: &BTreeMap<String, String>) -> Option<LevelId> {
    if let Some(l) = labels
        .get("level")
        .and_then(|l| l.trim().parse::<u8>().ok())
        .filter(|l| (1..=5).contains(l))
    {
        return Some(LevelId(l));
    }
    match labels
        .get("severity")
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("critical") => Some(LevelId(3)),
        Some("error") => Some(LevelId(2)),
        Some("warning") => Some(LevelId(1)),
        _ => None,
    }
}

/// `{{ name }}` → a label or annotation value (empty when absent).
pub fn render_title(template: &str, alert: &IncomingAlert) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                let value = alert.labels.get(key).or_else(|| alert.annotations.get(key));
                out.push_str(value.map(String::as_str).unwrap_or(""));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Applies the first matching route (and the default rules) to an alert.
pub fn route(
    config: &Config,
    source: &str,
    batch_group_key: Option<&str>,
    alert: &IncomingAlert,
) -> Routed {
    let matched: Option<&Route> = config
        .routes
        .iter()
        .find(|r| r.matches(source, &alert.labels));
    // An explicit `level` label wins, then the route's level, then severity, then 1.
    let explicit = alert
        .labels
        .get("level")
        .and_then(|l| l.trim().parse::<u8>().ok())
        .map(LevelId)
        .filter(|l| config.levels.contains_key(l));
    let level = explicit
        .or_else(|| matched.and_then(|r| r.level))
        .or_else(|| level_from_labels(&alert.labels).filter(|l| config.levels.contains_key(l)))
        .or_else(|| config.levels.keys().next().copied())
        .unwrap_or(LevelId(1));
    let mut components: Vec<ComponentId> =
        matched.map(|r| r.components.clone()).unwrap_or_default();
    // A `component` label naming a configured component counts too (PagerDuty, generic JSON).
    if let Some(c) = alert
        .labels
        .get("component")
        .and_then(|c| config.component(c))
    {
        if !components.contains(&c.id) {
            components.push(c.id.clone());
        }
    }
    let title = matched
        .and_then(|r| r.title.as_deref())
        .map(|t| render_title(t, alert))
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| alert.summary());
    let title: String = title
        .chars()
        .filter(|c| !c.is_control())
        .take(crate::domain::TITLE_MAX)
        .collect();
    let group_key = match matched.filter(|r| !r.group_by.is_empty()) {
        Some(r) => {
            let values: Vec<String> = r
                .group_by
                .iter()
                .map(|k| {
                    format!(
                        "{k}={}",
                        alert.labels.get(k).map(String::as_str).unwrap_or("")
                    )
                })
                .collect();
            format!("route:{}", values.join(","))
        }
        None => match batch_group_key {
            Some(k) if !k.is_empty() => format!("group:{k}"),
            _ => format!("alert:{}", alert.identity()),
        },
    };
    Routed {
        level,
        components,
        title,
        group_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(labels: &[(&str, &str)]) -> IncomingAlert {
        IncomingAlert {
            fingerprint: None,
            action: AlertAction::Fire,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            starts_at: None,
            ends_at: None,
            generator_url: None,
        }
    }

    #[test]
    fn the_level_label_wins_then_severity() {
        let c = Config::builtin();
        let r = |l: &[(&str, &str)]| route(&c, "alertmanager", None, &alert(l)).level;
        assert_eq!(r(&[("severity", "critical"), ("level", "5")]), LevelId(5));
        assert_eq!(r(&[("severity", "critical")]), LevelId(3));
        assert_eq!(r(&[("severity", "error")]), LevelId(2));
        assert_eq!(r(&[("severity", "warning")]), LevelId(1));
        assert_eq!(r(&[("severity", "info")]), LevelId(1));
        assert_eq!(r(&[("level", "9"), ("severity", "error")]), LevelId(2));
    }

    #[test]
    fn default_routes_map_services_to_components_and_groups() {
        let c = Config::builtin();
        let a = alert(&[
            ("alertname", "MySQLDown"),
            ("service", "database"),
            ("instance", "db-1"),
        ]);
        let r = route(&c, "alertmanager", Some("{}:{alertname=\"MySQLDown\"}"), &a);
        assert_eq!(
            r.components,
            vec!["database".parse::<ComponentId>().unwrap()]
        );
        assert_eq!(r.group_key, "route:alertname=MySQLDown,service=database");
        assert_eq!(r.title, "MySQLDown");
        let other = alert(&[("alertname", "Disk"), ("host", "x")]);
        assert_eq!(
            route(&c, "alertmanager", Some("gk"), &other).group_key,
            "group:gk"
        );
        assert!(route(&c, "alertmanager", None, &other)
            .group_key
            .starts_with("alert:"));
        let pd = alert(&[("component", "frontend")]);
        assert_eq!(
            route(&c, "uptime", None, &pd).components,
            vec!["frontend".parse::<ComponentId>().unwrap()]
        );
    }

    #[test]
    fn fingerprints_fall_back_to_a_hash_of_sorted_labels_including_unicode() {
        let a = alert(&[("alertname", "Ünïcødé ⚠"), ("b", "2")]);
        let b = alert(&[("b", "2"), ("alertname", "Ünïcødé ⚠")]);
        assert_eq!(a.identity(), b.identity());
        assert_eq!(a.identity().len(), 16);
        assert_ne!(
            a.identity(),
            alert(&[("alertname", "Ünïcødé ⚠"), ("b", "3")]).identity()
        );
        // Length prefixes: "ab"+"c" differs from "a"+"bc".
        assert_ne!(
            alert(&[("ab", "c")]).identity(),
            alert(&[("a", "bc")]).identity()
        );
    }

    #[test]
    fn titles_render_from_labels_and_annotations() {
        let mut a = alert(&[("alertname", "MySQLDown"), ("instance", "db-1")]);
        a.annotations
            .insert("summary".into(), "MySQL is not answering".into());
        assert_eq!(
            render_title("{{ alertname }} on {{instance}}: {{ summary }}", &a),
            "MySQLDown on db-1: MySQL is not answering"
        );
        assert_eq!(render_title("{{ missing }}x{{", &a), "x{{");
        assert_eq!(a.summary(), "MySQL is not answering");
    }
}
