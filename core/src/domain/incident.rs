//! The incident and its state machine.
//!
//! ```text
//! declared ──ack──▶ acknowledged ──resolve──▶ resolved ──close──▶ closed
//!     └────────────────resolve───────────────▲   │
//!                                            └reopen──▶ declared
//! ```
//! Every transition method checks first and changes after, so a refused transition leaves the
//! incident exactly as it was.

use super::DomainError;
use super::{ComponentId, IncidentRef, LevelId, PersonId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Declared,
    Acknowledged,
    Resolved,
    Closed,
}

impl State {
    pub const ALL: [State; 4] = [
        State::Declared,
        State::Acknowledged,
        State::Resolved,
        State::Closed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            State::Declared => "declared",
            State::Acknowledged => "acknowledged",
            State::Resolved => "resolved",
            State::Closed => "closed",
        }
    }
    /// Open incidents still need people: declared or acknowledged.
    pub fn is_open(self) -> bool {
        matches!(self, State::Declared | State::Acknowledged)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                format!("unknown state `{s}`; accepted: declared, acknowledged, resolved, closed")
            })
    }
}

/// The longest incident title (and other one-line texts) accepted, in characters.
pub const TITLE_MAX: usize = 200;

/// Which incidents a listing wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    Open,
    Resolved,
    Closed,
    All,
}

impl StateFilter {
    pub const FORM: &'static str = "open, resolved, closed or all";
    pub fn matches(self, s: State) -> bool {
        match self {
            StateFilter::Open => s.is_open(),
            StateFilter::Resolved => s == State::Resolved,
            StateFilter::Closed => s == State::Closed,
            StateFilter::All => true,
        }
    }
}

impl FromStr for StateFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(StateFilter::Open),
            "resolved" => Ok(StateFilter::Resolved),
            "closed" => Ok(StateFilter::Closed),
            "all" => Ok(StateFilter::All),
            _ => Err(format!(
                "unknown state filter `{s}`; accepted: {}",
                Self::FORM
            )),
        }
    }
}

/// The guide's five recovery phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    ImmediateResponse,
    Assessment,
    RecoveryExecution,
    Validation,
    PostRecoveryMonitoring,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::ImmediateResponse,
        Phase::Assessment,
        Phase::RecoveryExecution,
        Phase::Validation,
        Phase::PostRecoveryMonitoring,
    ];
    pub const FORM: &'static str =
        "immediate_response, assessment, recovery_execution, validation or post_recovery_monitoring";
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::ImmediateResponse => "immediate_response",
            Phase::Assessment => "assessment",
            Phase::RecoveryExecution => "recovery_execution",
            Phase::Validation => "validation",
            Phase::PostRecoveryMonitoring => "post_recovery_monitoring",
        }
    }
    /// The guide's heading for the phase, for people.
    pub fn title(self) -> &'static str {
        match self {
            Phase::ImmediateResponse => "Immediate Response",
            Phase::Assessment => "Assessment and Analysis",
            Phase::RecoveryExecution => "Recovery Execution",
            Phase::Validation => "Validation and Testing",
            Phase::PostRecoveryMonitoring => "Post-Recovery Monitoring",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == norm)
            .ok_or_else(|| format!("unknown phase `{s}`; accepted: {}", Self::FORM))
    }
}

/// Which door the incident came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Chat,
    Api,
    Alert,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Chat => "chat",
            Source::Api => "api",
            Source::Alert => "alert",
        }
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "chat" => Ok(Source::Chat),
            "api" => Ok(Source::Api),
            "alert" => Ok(Source::Alert),
            _ => Err(format!("unknown source `{s}`")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    #[serde(rename = "ref")]
    pub reference: IncidentRef,
    pub level: LevelId,
    pub title: String,
    pub components: Vec<ComponentId>,
    pub commander: Option<PersonId>,
    pub source: Source,
    pub state: State,
    pub phase: Phase,
    pub declared_by: String,
    pub declared_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub rto_deadline: DateTime<Utc>,
    pub summary: Option<String>,
    /// The escalation tier last paged (0-based), while the matrix runs or was stopped by an
    /// acknowledgement: an expired acknowledgement or an RTO warning pages this row again.
    pub escalation_tier: Option<u32>,
    /// Optimistic-concurrency version: bumped by every write, checked by the store.
    pub version: i64,
}

impl Incident {
    /// A freshly declared incident. `rto` is the level's recovery time objective.
    #[allow(clippy::too_many_arguments)]
    pub fn declare(
        reference: IncidentRef,
        level: LevelId,
        rto: Duration,
        title: String,
        components: Vec<ComponentId>,
        commander: Option<PersonId>,
        source: Source,
        declared_by: String,
        at: DateTime<Utc>,
    ) -> Self {
        Incident {
            reference,
            level,
            title,
            components,
            commander,
            source,
            state: State::Declared,
            phase: Phase::ImmediateResponse,
            declared_by,
            declared_at: at,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            closed_at: None,
            rto_deadline: at + rto,
            summary: None,
            escalation_tier: None,
            version: 0,
        }
    }

    /// An acknowledgement that saw no activity for too long lapses: the incident is
    /// unacknowledged again (who acknowledged first, and when, is kept).
    pub fn acknowledgement_expired(&mut self) {
        if self.state == State::Acknowledged {
            self.state = State::Declared;
        }
    }

    pub fn acknowledge(&mut self, by: &str, at: DateTime<Utc>) -> Result<(), DomainError> {
        match self.state {
            State::Declared => {
                self.state = State::Acknowledged;
                // The first acknowledgement stays on record (MTTA) when a lapsed one is renewed.
                if self.acknowledged_at.is_none() {
                    self.acknowledged_at = Some(at);
                }
                self.acknowledged_by = Some(by.to_string());
                if self.phase == Phase::ImmediateResponse {
                    self.phase = Phase::Assessment;
                }
                Ok(())
            }
            State::Acknowledged => Err(DomainError::already(format!(
                "{} is already acknowledged (by {})",
                self.reference,
                self.acknowledged_by.as_deref().unwrap_or("someone")
            ))),
            State::Resolved => Err(DomainError::wrong_state(self.state, format!(
                "{} is resolved and cannot be acknowledged; reopen it first with /incident reopen incident:{}",
                self.reference, self.reference
            ))),
            State::Closed => Err(self.closed_error("acknowledged")),
        }
    }

    pub fn resolve(
        &mut self,
        summary: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        match self.state {
            State::Declared | State::Acknowledged => {
                self.state = State::Resolved;
                self.resolved_at = Some(at);
                if summary.is_some() {
                    self.summary = summary;
                }
                if self.phase < Phase::PostRecoveryMonitoring {
                    self.phase = Phase::PostRecoveryMonitoring;
                }
                Ok(())
            }
            State::Resolved => Err(DomainError::already(format!(
                "{} is already resolved",
                self.reference
            ))),
            State::Closed => Err(self.closed_error("resolved")),
        }
    }

    pub fn close(&mut self, at: DateTime<Utc>) -> Result<(), DomainError> {
        match self.state {
            State::Resolved => {
                self.state = State::Closed;
                self.closed_at = Some(at);
                Ok(())
            }
            State::Closed => Err(DomainError::already(format!(
                "{} is already closed",
                self.reference
            ))),
            _ => Err(DomainError::wrong_state(
                self.state,
                format!(
                    "{} is {}; only a resolved incident can be closed (resolve it first)",
                    self.reference, self.state
                ),
            )),
        }
    }

    /// Back to `declared` from `resolved`: it needs people again, so it needs a new
    /// acknowledgement. The earlier acknowledgement stays on the timeline.
    pub fn reopen(&mut self) -> Result<(), DomainError> {
        match self.state {
            State::Resolved => {
                self.state = State::Declared;
                self.resolved_at = None;
                self.acknowledged_at = None;
                self.acknowledged_by = None;
                self.phase = Phase::Assessment;
                Ok(())
            }
            State::Closed => Err(self.closed_error("reopened")),
            _ => Err(DomainError::wrong_state(
                self.state,
                format!(
                    "{} is {}; only a resolved incident can be reopened",
                    self.reference, self.state
                ),
            )),
        }
    }

    /// Changes the level and recomputes the RTO deadline from the declaration time.
    pub fn change_level(&mut self, level: LevelId, rto: Duration) -> Result<(), DomainError> {
        self.ensure_open("change its level")?;
        if level == self.level {
            return Err(DomainError::already(format!(
                "{} is already at level {}",
                self.reference, level
            )));
        }
        self.level = level;
        self.rto_deadline = self.declared_at + rto;
        Ok(())
    }

    pub fn set_phase(&mut self, phase: Phase) -> Result<(), DomainError> {
        if self.state == State::Closed {
            return Err(self.closed_error("changed"));
        }
        if phase == self.phase {
            return Err(DomainError::already(format!(
                "{} is already in phase {}",
                self.reference, phase
            )));
        }
        self.phase = phase;
        Ok(())
    }

    pub fn set_commander(&mut self, person: PersonId) -> Result<(), DomainError> {
        self.ensure_open("hand over command")?;
        if self.commander.as_ref() == Some(&person) {
            return Err(DomainError::already(format!(
                "{person} is already the commander of {}",
                self.reference
            )));
        }
        self.commander = Some(person);
        Ok(())
    }

    pub fn ensure_not_closed(&self, what: &str) -> Result<(), DomainError> {
        if self.state == State::Closed {
            return Err(self.closed_error(what));
        }
        Ok(())
    }

    fn ensure_open(&self, what: &str) -> Result<(), DomainError> {
        if self.state.is_open() {
            Ok(())
        } else {
            Err(DomainError::wrong_state(
                self.state,
                format!(
                    "{} is {}; cannot {what} (reopen it first)",
                    self.reference, self.state
                ),
            ))
        }
    }

    fn closed_error(&self, what: &str) -> DomainError {
        DomainError::wrong_state(
            self.state,
            format!("{} is closed and cannot be {what}", self.reference),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn inc() -> Incident {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
        Incident::declare(
            IncidentRef::new(1),
            LevelId(3),
            Duration::hours(2),
            "MySQL down".into(),
            vec![],
            None,
            Source::Chat,
            "sysadmin".into(),
            at,
        )
    }

    #[test]
    fn a_declared_incident_has_its_rto_deadline_from_the_level() {
        let i = inc();
        assert_eq!(i.rto_deadline - i.declared_at, Duration::hours(2));
        assert_eq!(i.state, State::Declared);
        assert_eq!(i.phase, Phase::ImmediateResponse);
    }

    #[test]
    fn the_happy_path_runs_declared_to_closed() {
        let mut i = inc();
        let t = i.declared_at + Duration::minutes(3);
        i.acknowledge("dba", t).unwrap();
        assert_eq!((i.state, i.phase), (State::Acknowledged, Phase::Assessment));
        i.resolve(Some("restarted".into()), t).unwrap();
        assert_eq!(i.state, State::Resolved);
        assert_eq!(i.phase, Phase::PostRecoveryMonitoring);
        i.close(t).unwrap();
        assert_eq!(i.state, State::Closed);
    }

    #[test]
    fn refused_transitions_change_nothing() {
        let mut i = inc();
        let t = i.declared_at;
        i.resolve(None, t).unwrap();
        let before = i.clone();
        let err = i.acknowledge("dba", t).unwrap_err();
        assert!(
            matches!(&err, DomainError::WrongState { state: State::Resolved, message } if message.contains("is resolved and cannot be acknowledged")),
            "{err}"
        );
        assert!(i.resolve(None, t).is_err());
        assert!(i.change_level(LevelId(4), Duration::hours(4)).is_err());
        assert_eq!(i, before);
        i.close(t).unwrap();
        let closed = i.clone();
        assert!(i.reopen().is_err());
        assert!(i.set_phase(Phase::Validation).is_err());
        assert_eq!(i, closed);
    }

    #[test]
    fn reopen_needs_a_new_acknowledgement() {
        let mut i = inc();
        i.acknowledge("dba", i.declared_at).unwrap();
        i.resolve(None, i.declared_at).unwrap();
        i.reopen().unwrap();
        assert_eq!(i.state, State::Declared);
        assert!(i.acknowledged_at.is_none() && i.resolved_at.is_none());
        i.acknowledge("sysadmin", i.declared_at).unwrap();
    }

    #[test]
    fn changing_the_level_recomputes_the_deadline_from_declaration() {
        let mut i = inc();
        i.change_level(LevelId(4), Duration::hours(4)).unwrap();
        assert_eq!(i.rto_deadline - i.declared_at, Duration::hours(4));
        assert!(i.change_level(LevelId(4), Duration::hours(4)).is_err());
    }

    #[test]
    fn an_open_incident_cannot_be_closed_or_reopened() {
        let mut i = inc();
        assert!(i
            .close(i.declared_at)
            .unwrap_err()
            .to_string()
            .contains("only a resolved incident can be closed"));
        assert!(i.reopen().is_err());
        assert!("recovery execution".parse::<Phase>().is_ok());
    }
}
