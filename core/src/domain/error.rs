//! The domain's refusals: a business rule said no.

use super::State;
use thiserror::Error;

/// A business rule said no. The message is shown to the user as it is, so it names the problem
/// and, where there is one, the accepted form. The variant says which kind of no it is, so a
/// caller can tell "already so" (safe to treat as done) from "not now" and from "never".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// What was asked is already so: acknowledged twice, the same level or phase again.
    #[error("{0}")]
    AlreadyDone(String),
    /// The incident's state does not allow it now (acknowledging a resolved incident, closing an
    /// open one, changing a closed one).
    #[error("{message}")]
    WrongState { state: State, message: String },
    /// Any other rule (the highest level cannot be escalated, …).
    #[error("{0}")]
    Refused(String),
}

impl DomainError {
    pub fn refused(msg: impl Into<String>) -> Self {
        Self::Refused(msg.into())
    }
    pub fn already(msg: impl Into<String>) -> Self {
        Self::AlreadyDone(msg.into())
    }
    pub fn wrong_state(state: State, msg: impl Into<String>) -> Self {
        Self::WrongState {
            state,
            message: msg.into(),
        }
    }
}
