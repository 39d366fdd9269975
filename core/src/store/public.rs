//! What the store writes and reads of the public status page (the public incident itself is
//! [`crate::status::PublicIncident`]).

use crate::domain::{ComponentId, IncidentRef};
use crate::status::{ComponentStatus, PublicIncident, PublicUpdate};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub enum PublicWrite {
    /// A new public incident with its first update; `Conflict` when its incident already has one.
    Insert(PublicIncident),
    /// Its own columns (name, impact, status, components, times) as read at `version`; stored
    /// with version + 1, else `Conflict`.
    Update(PublicIncident),
    /// One more public update.
    AddUpdate {
        public_incident: String,
        update: PublicUpdate,
    },
    /// A commander's word on a component (`None`: back to what its incidents say).
    Override {
        component: ComponentId,
        status: Option<ComponentStatus>,
        incident: Option<IncidentRef>,
        by: String,
        at: DateTime<Utc>,
    },
    /// The overrides set during an incident end with it.
    EndOverrides { incident: IncidentRef },
    /// Keeps an incident off the page.
    Hold {
        incident: IncidentRef,
        by: String,
        at: DateTime<Utc>,
    },
}

pub use crate::status::ComponentOverride;
