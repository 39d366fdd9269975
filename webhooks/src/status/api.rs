//! Statuspage's public "status API" v2 (`/api/v2/*.json`), with its field names, enum values
//! and shapes, so existing Statuspage clients, widgets and exporters read Spotter unchanged.
//!
//! Where the snapshot has nothing for a Statuspage field the field is still present with the
//! value Statuspage gives it in the same situation (`null`, `false`), never left out: clients
//! index into these objects without checking. Times are RFC 3339 with milliseconds, in UTC.

use super::{serve, Kind, St};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use spotter_core::status::{
    ComponentStatus, PublicComponent, PublicIncident, PublicStatus, StatusSnapshot,
};

/// `incidents.json` lists this many, the newest first (as Statuspage does).
pub const INCIDENTS_LISTED: usize = 50;

pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The page's URL without a trailing slash, to which paths are appended.
pub(crate) fn base_url(snap: &StatusSnapshot) -> &str {
    snap.page.url.trim_end_matches('/')
}

/// `shortlink`: the incident's own page.
pub(crate) fn incident_url(snap: &StatusSnapshot, id: &str) -> String {
    format!("{}/incidents/{}", base_url(snap), id)
}

#[derive(Serialize)]
pub struct PageJson<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub url: &'a str,
    pub time_zone: &'a str,
    pub updated_at: String,
}

#[derive(Serialize)]
pub struct StatusJson<'a> {
    pub indicator: &'static str,
    pub description: &'a str,
}

/// A component, or a group of them (`group: true`, with its members' ids in `components`).
#[derive(Serialize)]
pub struct ComponentJson<'a> {
    pub id: String,
    pub name: &'a str,
    pub status: &'static str,
    pub created_at: String,
    pub updated_at: String,
    pub position: usize,
    pub description: Option<&'a str>,
    pub showcase: bool,
    pub start_date: Option<String>,
    pub group_id: Option<String>,
    pub page_id: &'a str,
    pub group: bool,
    pub only_show_if_degraded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<&'a str>>,
}

#[derive(Serialize)]
pub struct IncidentJson<'a> {
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
}

#[derive(Serialize)]
pub struct IncidentUpdateJson<'a> {
    pub id: &'a str,
    pub status: &'static str,
    pub body: &'a str,
    pub incident_id: &'a str,
    pub created_at: String,
    pub updated_at: String,
    pub display_at: String,
    /// The components the update concerns, each with the status it moved them from and to
    /// (see [`affected_components`]); `null` where there are none, as Statuspage sends.
    pub affected_components: Option<Vec<AffectedComponentJson<'a>>>,
    pub deliver_notifications: bool,
    pub custom_tweet: Option<String>,
    pub tweet_id: Option<String>,
}

/// One component in an update's `affected_components`, as Statuspage writes it: `code` is the
/// component's id.
#[derive(Serialize)]
pub struct AffectedComponentJson<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub old_status: &'static str,
    pub new_status: &'static str,
}

/// Each update's `affected_components`, in `i.updates`' order (newest first).
///
/// The store keeps no component statuses per update, so they are derived, and only from the
/// incident itself: every update lists all of the incident's components (as they are now); an
/// unresolved update sets them to what the incident's impact makes of them (the mapping the
/// snapshot uses: minor → degraded_performance, major → partial_outage, critical →
/// major_outage), a resolved or postmortem one to `operational`; `old_status` is the previous
/// update's `new_status`, `operational` before the first. The impact is the current one (an
/// escalation is not dated per update), and a component's shown status, which also counts
/// overrides, maintenance and other incidents, is in `components`, not here.
pub fn affected_components<'a>(
    snap: &'a StatusSnapshot,
    i: &'a PublicIncident,
) -> Vec<Option<Vec<AffectedComponentJson<'a>>>> {
    let named: Vec<&PublicComponent> = i
        .components
        .iter()
        .filter_map(|id| snap.components.iter().find(|c| c.id == id.as_str()))
        .collect();
    let while_open = spotter_core::status::snapshot::component_status_for(i.impact);
    let mut old = ComponentStatus::Operational;
    let mut out: Vec<_> = i
        .updates
        .iter()
        .rev()
        .map(|u| {
            let new = if u.status.is_resolved() {
                ComponentStatus::Operational
            } else {
                while_open
            };
            let from = std::mem::replace(&mut old, new);
            Some(
                named
                    .iter()
                    .map(|c| AffectedComponentJson {
                        code: &c.id,
                        name: &c.name,
                        old_status: from.as_str(),
                        new_status: new.as_str(),
                    })
                    .collect::<Vec<_>>(),
            )
            .filter(|a| !a.is_empty())
        })
        .collect();
    out.reverse();
    out
}

pub fn page_json(snap: &StatusSnapshot) -> PageJson<'_> {
    PageJson {
        id: &snap.page.id,
        name: &snap.page.name,
        url: &snap.page.url,
        time_zone: &snap.page.time_zone,
        updated_at: time(snap.page.updated_at),
    }
}

pub fn status_json(snap: &StatusSnapshot) -> StatusJson<'_> {
    StatusJson {
        indicator: snap.indicator.as_str(),
        description: &snap.description,
    }
}

/// A group's id: derived from its name (groups are named, not configured with ids), prefixed
/// so it cannot be taken for a component's.
pub fn group_id(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("group-{slug}")
}

pub(crate) fn component_json<'a>(
    snap: &'a StatusSnapshot,
    c: &'a PublicComponent,
) -> ComponentJson<'a> {
    ComponentJson {
        id: c.id.clone(),
        name: &c.name,
        status: c.status.as_str(),
        // The snapshot has no creation time for a component; its last change is the earliest
        // time it is known to have existed in this form.
        created_at: time(c.updated_at),
        updated_at: time(c.updated_at),
        position: c.position + 1,
        description: Some(c.description.as_str()).filter(|d| !d.is_empty()),
        // Every component is shown with its uptime bar on the page.
        showcase: true,
        start_date: None,
        group_id: c.group.as_deref().map(group_id),
        page_id: &snap.page.id,
        group: false,
        only_show_if_degraded: false,
        components: None,
    }
}

/// `components`: every component in page order, each group just before its first member (its
/// status the worst of its members', as Statuspage's groups show).
pub fn components_json(snap: &StatusSnapshot) -> Vec<ComponentJson<'_>> {
    let mut out = Vec::with_capacity(snap.components.len());
    let mut groups_seen: Vec<&str> = Vec::new();
    for c in &snap.components {
        if let Some(g) = c.group.as_deref() {
            if !groups_seen.contains(&g) {
                groups_seen.push(g);
                let members: Vec<&PublicComponent> = snap
                    .components
                    .iter()
                    .filter(|m| m.group.as_deref() == Some(g))
                    .collect();
                let status = members
                    .iter()
                    .map(|m| m.status)
                    .max()
                    .unwrap_or(ComponentStatus::Operational);
                let updated = members
                    .iter()
                    .map(|m| m.updated_at)
                    .max()
                    .unwrap_or(c.updated_at);
                let created = members
                    .iter()
                    .map(|m| m.updated_at)
                    .min()
                    .unwrap_or(c.updated_at);
                out.push(ComponentJson {
                    id: group_id(g),
                    name: g,
                    status: status.as_str(),
                    created_at: time(created),
                    updated_at: time(updated),
                    position: c.position + 1,
                    description: None,
                    showcase: false,
                    start_date: None,
                    group_id: None,
                    page_id: &snap.page.id,
                    group: true,
                    only_show_if_degraded: false,
                    components: Some(members.iter().map(|m| m.id.as_str()).collect()),
                });
            }
        }
        out.push(component_json(snap, c));
    }
    out
}

pub fn incident_json<'a>(snap: &'a StatusSnapshot, i: &'a PublicIncident) -> IncidentJson<'a> {
    // When it first went to monitoring (updates are newest first, so the last such one).
    let monitoring_at = i
        .updates
        .iter()
        .rev()
        .find(|u| u.status == PublicStatus::Monitoring)
        .map(|u| time(u.created_at));
    IncidentJson {
        id: &i.id,
        name: &i.name,
        status: i.status.as_str(),
        created_at: time(i.created_at),
        updated_at: time(i.updated_at),
        monitoring_at,
        resolved_at: i.resolved_at.map(time),
        impact: i.impact.as_str(),
        shortlink: incident_url(snap, &i.id),
        started_at: time(i.created_at),
        page_id: &snap.page.id,
        incident_updates: i
            .updates
            .iter()
            .zip(affected_components(snap, i))
            .map(|(u, affected_components)| IncidentUpdateJson {
                id: &u.id,
                status: u.status.as_str(),
                body: &u.body,
                incident_id: &i.id,
                created_at: time(u.created_at),
                updated_at: time(u.created_at),
                display_at: time(u.created_at),
                affected_components,
                deliver_notifications: true,
                custom_tweet: None,
                tweet_id: None,
            })
            .collect(),
        components: i
            .components
            .iter()
            .filter_map(|id| snap.components.iter().find(|c| c.id == id.as_str()))
            .map(|c| component_json(snap, c))
            .collect(),
    }
}

fn incidents_json<'a>(
    snap: &'a StatusSnapshot,
    it: impl Iterator<Item = &'a PublicIncident>,
) -> Vec<IncidentJson<'a>> {
    it.map(|i| incident_json(snap, i)).collect()
}

#[derive(Serialize)]
struct Summary<'a> {
    page: PageJson<'a>,
    components: Vec<ComponentJson<'a>>,
    incidents: Vec<IncidentJson<'a>>,
    scheduled_maintenances: Vec<super::maintenance::MaintenanceJson<'a>>,
    status: StatusJson<'a>,
}

#[derive(Serialize)]
struct PageAndStatus<'a> {
    page: PageJson<'a>,
    status: StatusJson<'a>,
}

#[derive(Serialize)]
struct PageAndComponents<'a> {
    page: PageJson<'a>,
    components: Vec<ComponentJson<'a>>,
}

#[derive(Serialize)]
struct PageAndIncidents<'a> {
    page: PageJson<'a>,
    incidents: Vec<IncidentJson<'a>>,
}

#[derive(Serialize)]
struct PageAndMaintenances<'a> {
    page: PageJson<'a>,
    scheduled_maintenances: Vec<super::maintenance::MaintenanceJson<'a>>,
}

fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("the status JSON serialises (no maps with non-string keys)")
}

pub async fn summary(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "summary.json", Kind::Json, |s| {
        to_vec(&Summary {
            page: page_json(s),
            components: components_json(s),
            incidents: incidents_json(s, s.unresolved()),
            // Statuspage's summary lists the upcoming and in-progress ones.
            scheduled_maintenances: super::maintenance::maintenances_json(
                s,
                s.maintenances
                    .iter()
                    .filter(|m| m.status != spotter_core::status::MaintenanceStatus::Completed),
            ),
            status: status_json(s),
        })
    })
}

pub async fn status(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "status.json", Kind::Json, |s| {
        to_vec(&PageAndStatus {
            page: page_json(s),
            status: status_json(s),
        })
    })
}

pub async fn components(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "components.json", Kind::Json, |s| {
        to_vec(&PageAndComponents {
            page: page_json(s),
            components: components_json(s),
        })
    })
}

pub async fn incidents(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "incidents.json", Kind::Json, |s| {
        to_vec(&PageAndIncidents {
            page: page_json(s),
            incidents: incidents_json(s, s.incidents.iter().take(INCIDENTS_LISTED)),
        })
    })
}

pub async fn unresolved(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "unresolved.json", Kind::Json, |s| {
        to_vec(&PageAndIncidents {
            page: page_json(s),
            incidents: incidents_json(s, s.unresolved()),
        })
    })
}

fn maintenances_of<'a>(
    s: &'a StatusSnapshot,
    it: impl Iterator<Item = &'a spotter_core::status::PublicMaintenance>,
) -> Vec<u8> {
    to_vec(&PageAndMaintenances {
        page: page_json(s),
        scheduled_maintenances: super::maintenance::maintenances_json(s, it),
    })
}

pub async fn maintenances(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "maintenances.json", Kind::Json, |s| {
        maintenances_of(s, s.maintenances.iter())
    })
}

pub async fn maintenances_upcoming(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "upcoming.json", Kind::Json, |s| {
        maintenances_of(s, s.upcoming_maintenances())
    })
}

pub async fn maintenances_active(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "active.json", Kind::Json, |s| {
        maintenances_of(s, s.active_maintenances())
    })
}
