//! Errors of the core, split the way the edges need them: a [`DomainError`] is the user's to fix
//! (a refused command, an invalid transition) and is answered, never logged as a failure; a
//! [`StoreError`] is infrastructure, which edges turn into 503 (transient) or 500.

use crate::domain::State;
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

/// Failures of the store port.
///
/// # Variants
/// - `Conflict`: another writer changed the same rows first (optimistic concurrency); the engine
///   re-reads and decides again.
/// - `Unavailable`: the database cannot be reached or is locked for longer than the timeout;
///   transient, so HTTP senders get 503 + `Retry-After`.
/// - `Other`: anything else (a bug, a corrupt row); 500, logged with its cause.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("write conflict: {0}")]
    Conflict(String),
    #[error("storage unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    #[error("storage error: {0:#}")]
    Other(anyhow::Error),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Conflict(_))
    }
}
