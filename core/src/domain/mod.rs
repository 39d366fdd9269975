//! The incident domain in the guide's words: levels, incidents and their state machine, phases,
//! the timeline, people and roles. Pure data and rules; no I/O.

mod alert;
mod channel;
mod error;
mod ids;
mod incident;
mod role;
mod run;
mod timeline;

pub use alert::AlertStatus;
pub use channel::Channel;
pub use error::DomainError;
pub use ids::{is_slug, ComponentId, IncidentRef, LevelId, PersonId};
pub use incident::{Incident, Phase, Source, State, StateFilter, TITLE_MAX};
pub use role::{Actor, Role, RoleSet};
pub use run::{Decision, Run, RunApproval, RunState, RunStep, StepState};
pub use timeline::{EventKind, TimelineEntry};
