//! Scheduled maintenance in Statuspage's shape (`scheduled_maintenances`): the windows announced
//! with `/maintenance schedule … public:true`, upcoming, in progress, and recently completed.

use super::api::{component_json, time, ComponentJson, IncidentUpdateJson};
use serde::Serialize;
use spotter_core::status::{MaintenanceStatus, PublicMaintenance, StatusSnapshot};

#[derive(Serialize)]
pub struct MaintenanceJson<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub status: &'static str,
    pub created_at: String,
    pub updated_at: String,
    pub monitoring_at: Option<String>,
    pub resolved_at: Option<String>,
    pub impact: &'static str,
    pub shortlink: String,
    pub started_at: String,
    pub page_id: &'a str,
    pub incident_updates: Vec<IncidentUpdateJson<'a>>,
    pub components: Vec<ComponentJson<'a>>,
    pub scheduled_for: String,
    pub scheduled_until: String,
}

/// The one update a window has: what its status says, at the moment it took that status.
fn update_body(m: &PublicMaintenance) -> &'static str {
    match m.status {
        MaintenanceStatus::Scheduled => "Maintenance is scheduled for the times shown.",
        MaintenanceStatus::InProgress | MaintenanceStatus::Verifying => {
            "Maintenance is in progress."
        }
        MaintenanceStatus::Completed => "Maintenance has been completed.",
    }
}

pub fn maintenance_json<'a>(
    snap: &'a StatusSnapshot,
    m: &'a PublicMaintenance,
) -> MaintenanceJson<'a> {
    let changed = match m.status {
        MaintenanceStatus::Scheduled => m.scheduled_for.min(snap.page.updated_at),
        MaintenanceStatus::InProgress | MaintenanceStatus::Verifying => m.scheduled_for,
        MaintenanceStatus::Completed => m.completed_at.unwrap_or(m.scheduled_until),
    };
    MaintenanceJson {
        id: &m.id,
        name: &m.name,
        status: m.status.as_str(),
        created_at: time(m.scheduled_for.min(changed)),
        updated_at: time(changed),
        monitoring_at: None,
        resolved_at: m.completed_at.map(time),
        impact: "maintenance",
        // The page shows a maintenance in its list (it has no page of its own): the link
        // points at its entry there.
        shortlink: format!("{}#{}", super::api::base_url(snap), m.id),
        started_at: time(m.scheduled_for),
        page_id: &snap.page.id,
        incident_updates: vec![IncidentUpdateJson {
            id: &m.id,
            status: m.status.as_str(),
            body: update_body(m),
            incident_id: &m.id,
            created_at: time(changed),
            updated_at: time(changed),
            display_at: time(changed),
            affected_components: None,
            deliver_notifications: true,
            custom_tweet: None,
            tweet_id: None,
        }],
        components: m
            .components
            .iter()
            .filter_map(|id| snap.components.iter().find(|c| c.id == id.as_str()))
            .map(|c| component_json(snap, c))
            .collect(),
        scheduled_for: time(m.scheduled_for),
        scheduled_until: time(m.scheduled_until),
    }
}

pub fn maintenances_json<'a>(
    snap: &'a StatusSnapshot,
    it: impl Iterator<Item = &'a PublicMaintenance>,
) -> Vec<MaintenanceJson<'a>> {
    it.map(|m| maintenance_json(snap, m)).collect()
}
