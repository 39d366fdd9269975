//! Building the [`StatusSnapshot`] from what is stored: pure, so the rules of the public page
//! (a component's status, the 90-day bars, the page's indicator) live in one place and are tested
//! without a database.

use super::model::*;
use crate::config::Config;
use crate::domain::ComponentId;
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Days of history on each component's bar.
pub const DAYS: i64 = 90;

/// What an unresolved incident of this impact makes of the components it affects (the issue's
/// default by level: 1 → degraded performance, 2 → partial outage, 3–5 → major outage, through
/// the impact each level publishes with).
pub fn component_status_for(impact: Impact) -> ComponentStatus {
    match impact {
        Impact::None => ComponentStatus::Operational,
        Impact::Minor => ComponentStatus::DegradedPerformance,
        Impact::Major => ComponentStatus::PartialOutage,
        Impact::Critical => ComponentStatus::MajorOutage,
    }
}

/// The status page's URL: `[status] page_url`, else `<server.public_url>/status`.
pub fn page_url(config: &Config) -> String {
    config
        .status
        .page_url
        .clone()
        .unwrap_or_else(|| format!("{}/status", config.server.public_url.trim_end_matches('/')))
}

/// The snapshot of the page now. `incidents` are every public incident (newest first),
/// `overrides` the commanders' words on components, `under_maintenance` the components in an
/// active maintenance window; `since` is when the page counts as last updated when nothing
/// public ever happened.
#[allow(clippy::too_many_arguments)]
pub fn build(
    config: &Config,
    incidents: Vec<PublicIncident>,
    maintenances: Vec<PublicMaintenance>,
    overrides: &[ComponentOverride],
    under_maintenance: &[ComponentId],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StatusSnapshot {
    let url = page_url(config);
    let updated_at = incidents
        .iter()
        .map(|i| i.updated_at)
        .chain(overrides.iter().map(|o| o.set_at))
        .max()
        .unwrap_or(since);
    let today = now.date_naive();
    let components = config
        .components
        .iter()
        .enumerate()
        .map(|(position, c)| {
            let affecting: Vec<&PublicIncident> = incidents
                .iter()
                .filter(|i| i.components.contains(&c.id))
                .collect();
            let mut status = if under_maintenance.contains(&c.id) {
                ComponentStatus::UnderMaintenance
            } else {
                ComponentStatus::Operational
            };
            for i in affecting.iter().filter(|i| !i.status.is_resolved()) {
                status = status.max(component_status_for(i.impact));
            }
            let o = overrides.iter().find(|o| o.component == c.id);
            if let Some(o) = o {
                status = o.status;
            }
            let changed = affecting
                .iter()
                .map(|i| i.updated_at)
                .chain(o.map(|o| o.set_at))
                .max()
                .unwrap_or(since);
            PublicComponent {
                id: c.id.to_string(),
                name: c.name.clone(),
                description: String::new(),
                position,
                group: None,
                status,
                updated_at: changed,
                days: days(&affecting, today, now),
            }
        })
        .collect();
    let indicator = incidents
        .iter()
        .filter(|i| !i.status.is_resolved())
        .map(|i| i.impact)
        .max()
        .unwrap_or(Impact::None);
    StatusSnapshot {
        page: PageInfo {
            id: page_id(&url),
            name: config.status.page_name.clone(),
            url,
            time_zone: config.status.time_zone.clone(),
            updated_at,
            email_subscriptions: config.smtp.is_some(),
        },
        components,
        incidents,
        maintenances,
        indicator,
        description: indicator.page_description().to_string(),
        generation: 0,
    }
}

/// The worst status of each of the last [`DAYS`] days (UTC), oldest first.
fn days(affecting: &[&PublicIncident], today: NaiveDate, now: DateTime<Utc>) -> Vec<DayStatus> {
    (0..DAYS)
        .rev()
        .map(|back| {
            let date = today - Duration::days(back);
            let start = date.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            let end = start + Duration::days(1);
            let worst = affecting
                .iter()
                .filter(|i| i.created_at < end && i.resolved_at.unwrap_or(now) >= start)
                .map(|i| component_status_for(i.impact))
                .max()
                .unwrap_or(ComponentStatus::Operational);
            DayStatus { date, worst }
        })
        .collect()
}

/// A maintenance window as the page announces it, at `now`.
pub fn maintenance_status(
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> MaintenanceStatus {
    if ended_at.is_some() || now >= ends_at {
        MaintenanceStatus::Completed
    } else if now >= starts_at {
        MaintenanceStatus::InProgress
    } else {
        MaintenanceStatus::Scheduled
    }
}

/// A stable page id from its URL: 12 lowercase letters and digits, like Statuspage's.
fn page_id(url: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(url.as_bytes());
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    h.iter()
        .take(12)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IncidentRef;

    fn incident(
        id: &str,
        impact: Impact,
        status: PublicStatus,
        comps: &[&str],
        at: DateTime<Utc>,
    ) -> PublicIncident {
        PublicIncident {
            id: id.into(),
            incident: IncidentRef::new(1),
            name: "x".into(),
            impact,
            status,
            components: comps.iter().map(|c| c.parse().unwrap()).collect(),
            created_at: at,
            updated_at: at,
            resolved_at: status.is_resolved().then_some(at + Duration::hours(1)),
            updates: vec![],
            version: 1,
        }
    }

    #[test]
    fn components_take_the_worst_unresolved_impact_and_an_override_wins() {
        let config = Config::builtin();
        let now: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
        let t = now - Duration::hours(2);
        let incidents = vec![
            incident(
                "a",
                Impact::Minor,
                PublicStatus::Investigating,
                &["database", "cache"],
                t,
            ),
            incident(
                "b",
                Impact::Critical,
                PublicStatus::Identified,
                &["database"],
                t,
            ),
            incident(
                "c",
                Impact::Critical,
                PublicStatus::Resolved,
                &["frontend"],
                t - Duration::days(3),
            ),
        ];
        let overrides = vec![ComponentOverride {
            component: "cache".parse().unwrap(),
            status: ComponentStatus::PartialOutage,
            incident: None,
            set_by: "dba".into(),
            set_at: now,
        }];
        let s = build(
            &config,
            incidents,
            vec![],
            &overrides,
            &["proxy".parse().unwrap()],
            now,
            now,
        );
        let status = |id: &str| s.components.iter().find(|c| c.id == id).unwrap().status;
        assert_eq!(status("database"), ComponentStatus::MajorOutage);
        assert_eq!(
            status("cache"),
            ComponentStatus::PartialOutage,
            "the override wins"
        );
        assert_eq!(status("frontend"), ComponentStatus::Operational, "resolved");
        assert_eq!(status("proxy"), ComponentStatus::UnderMaintenance);
        assert_eq!(s.indicator, Impact::Critical);
        assert_eq!(s.description, "Major Service Outage");
        let frontend = s.components.iter().find(|c| c.id == "frontend").unwrap();
        assert_eq!(frontend.days.len(), 90);
        assert_eq!(
            frontend.days[86].worst,
            ComponentStatus::MajorOutage,
            "3 days ago"
        );
        assert_eq!(frontend.days[89].worst, ComponentStatus::Operational);
        assert_eq!(s.page.id.len(), 12);
        assert_eq!(s.page.url, "http://127.0.0.1:8080/status");
    }

    #[test]
    fn a_quiet_page_is_operational_with_indicator_none() {
        let config = Config::builtin();
        let now: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
        let s = build(
            &config,
            vec![],
            vec![],
            &[],
            &[],
            now - Duration::days(1),
            now,
        );
        assert_eq!(s.indicator, Impact::None);
        assert_eq!(s.description, "All Systems Operational");
        assert!(s
            .components
            .iter()
            .all(|c| c.status == ComponentStatus::Operational));
        assert_eq!(s.page.updated_at, now - Duration::days(1));
    }
}
