//! The public face of incidents: what the Workout Tracker's users may see. Kept apart from the
//! internal incident on purpose: a public incident has its own title, impact, status and
//! updates, and nothing internal (timeline, people, alert labels, runbook output) is in it.
//!
//! Names and values follow Statuspage's, so its clients, widgets and exporters work unchanged.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A component's public status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    Operational,
    UnderMaintenance,
    DegradedPerformance,
    PartialOutage,
    MajorOutage,
}

impl ComponentStatus {
    pub const ALL: [ComponentStatus; 5] = [
        ComponentStatus::Operational,
        ComponentStatus::UnderMaintenance,
        ComponentStatus::DegradedPerformance,
        ComponentStatus::PartialOutage,
        ComponentStatus::MajorOutage,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "operational",
            ComponentStatus::UnderMaintenance => "under_maintenance",
            ComponentStatus::DegradedPerformance => "degraded_performance",
            ComponentStatus::PartialOutage => "partial_outage",
            ComponentStatus::MajorOutage => "major_outage",
        }
    }
    pub fn parse(s: &str) -> Option<ComponentStatus> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
    /// "Degraded Performance".
    pub fn title(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "Operational",
            ComponentStatus::UnderMaintenance => "Under Maintenance",
            ComponentStatus::DegradedPerformance => "Degraded Performance",
            ComponentStatus::PartialOutage => "Partial Outage",
            ComponentStatus::MajorOutage => "Major Outage",
        }
    }
}

/// How bad a public incident is; the page's `status.indicator` is the worst unresolved one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    None,
    Minor,
    Major,
    Critical,
}

impl Impact {
    pub const ALL: [Impact; 4] = [Impact::None, Impact::Minor, Impact::Major, Impact::Critical];
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::None => "none",
            Impact::Minor => "minor",
            Impact::Major => "major",
            Impact::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Option<Impact> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
    /// Statuspage's `status.description` for a page whose indicator is this.
    pub fn page_description(self) -> &'static str {
        match self {
            Impact::None => "All Systems Operational",
            Impact::Minor => "Minor Service Outage",
            Impact::Major => "Partial System Outage",
            Impact::Critical => "Major Service Outage",
        }
    }
}

/// A public incident's status (Statuspage's incident statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicStatus {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
    Postmortem,
}

impl PublicStatus {
    pub const ALL: [PublicStatus; 5] = [
        PublicStatus::Investigating,
        PublicStatus::Identified,
        PublicStatus::Monitoring,
        PublicStatus::Resolved,
        PublicStatus::Postmortem,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PublicStatus::Investigating => "investigating",
            PublicStatus::Identified => "identified",
            PublicStatus::Monitoring => "monitoring",
            PublicStatus::Resolved => "resolved",
            PublicStatus::Postmortem => "postmortem",
        }
    }
    pub fn parse(s: &str) -> Option<PublicStatus> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
    pub fn title(self) -> &'static str {
        match self {
            PublicStatus::Investigating => "Investigating",
            PublicStatus::Identified => "Identified",
            PublicStatus::Monitoring => "Monitoring",
            PublicStatus::Resolved => "Resolved",
            PublicStatus::Postmortem => "Postmortem",
        }
    }
    pub fn is_resolved(self) -> bool {
        matches!(self, PublicStatus::Resolved | PublicStatus::Postmortem)
    }
}

/// One public update of a public incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicUpdate {
    /// Random, public (`pu_…`): never the internal timeline's position.
    pub id: String,
    pub status: PublicStatus,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// A public incident. `incident` links it to the internal one for the engine; the public
/// surfaces never show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicIncident {
    /// Random, public (`pi_…`).
    pub id: String,
    #[serde(skip, default = "crate::domain::IncidentRef::unknown")]
    pub incident: crate::domain::IncidentRef,
    /// The public title: chosen by a person or the configured template, never the alert text.
    pub name: String,
    pub impact: Impact,
    pub status: PublicStatus,
    /// Affected components (ids of `[[component]]`).
    pub components: Vec<crate::domain::ComponentId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Newest first, as Statuspage lists them.
    pub updates: Vec<PublicUpdate>,
    #[serde(skip)]
    pub version: i64,
}

/// A component as the public page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicComponent {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Order on the page (0-based, the configuration's order).
    pub position: usize,
    pub group: Option<String>,
    pub status: ComponentStatus,
    pub updated_at: DateTime<Utc>,
    /// The last 90 days, oldest first: the worst status each day had.
    pub days: Vec<DayStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DayStatus {
    pub date: NaiveDate,
    pub worst: ComponentStatus,
}

/// A scheduled maintenance's status (Statuspage's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceStatus {
    Scheduled,
    InProgress,
    Verifying,
    Completed,
}

impl MaintenanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceStatus::Scheduled => "scheduled",
            MaintenanceStatus::InProgress => "in_progress",
            MaintenanceStatus::Verifying => "verifying",
            MaintenanceStatus::Completed => "completed",
        }
    }
    pub fn title(self) -> &'static str {
        match self {
            MaintenanceStatus::Scheduled => "Scheduled",
            MaintenanceStatus::InProgress => "In progress",
            MaintenanceStatus::Verifying => "Verifying",
            MaintenanceStatus::Completed => "Completed",
        }
    }
}

/// A maintenance window announced on the page (`/maintenance schedule … public:true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicMaintenance {
    /// `pm_<window number>`.
    pub id: String,
    /// Its public title (the window's reason).
    pub name: String,
    pub status: MaintenanceStatus,
    pub components: Vec<crate::domain::ComponentId>,
    pub scheduled_for: DateTime<Utc>,
    pub scheduled_until: DateTime<Utc>,
    /// When it ended (early by hand, or at its end).
    pub completed_at: Option<DateTime<Utc>>,
}

/// The page itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageInfo {
    /// Stable for an installation (derived from its public URL).
    pub id: String,
    pub name: String,
    /// The status page's URL.
    pub url: String,
    pub time_zone: String,
    pub updated_at: DateTime<Utc>,
    /// Email subscriptions are offered (`[smtp]` is configured): the page links its form.
    pub email_subscriptions: bool,
}

/// Everything the public surfaces show, built from the database after each public change and
/// served from memory (no query per request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusSnapshot {
    pub page: PageInfo,
    /// In page order.
    pub components: Vec<PublicComponent>,
    /// Newest first: unresolved and resolved (the history).
    pub incidents: Vec<PublicIncident>,
    /// Announced maintenance: upcoming, in progress and recently completed, soonest first.
    pub maintenances: Vec<PublicMaintenance>,
    /// Worst impact among unresolved public incidents (`none` when there is none).
    pub indicator: Impact,
    pub description: String,
    /// A counter bumped on every rebuild that changed something: the `ETag`.
    pub generation: u64,
}

impl StatusSnapshot {
    pub fn unresolved(&self) -> impl Iterator<Item = &PublicIncident> {
        self.incidents.iter().filter(|i| !i.status.is_resolved())
    }
    pub fn upcoming_maintenances(&self) -> impl Iterator<Item = &PublicMaintenance> {
        self.maintenances
            .iter()
            .filter(|m| m.status == MaintenanceStatus::Scheduled)
    }
    pub fn active_maintenances(&self) -> impl Iterator<Item = &PublicMaintenance> {
        self.maintenances.iter().filter(|m| {
            matches!(
                m.status,
                MaintenanceStatus::InProgress | MaintenanceStatus::Verifying
            )
        })
    }
    pub fn incident(&self, id: &str) -> Option<&PublicIncident> {
        self.incidents.iter().find(|i| i.id == id)
    }
}

/// A component override as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentOverride {
    pub component: crate::domain::ComponentId,
    pub status: ComponentStatus,
    pub incident: Option<crate::domain::IncidentRef>,
    pub set_by: String,
    pub set_at: DateTime<Utc>,
}
