//! Errors of the core, split the way the edges need them: a [`DomainError`] is the user's to fix
//! (a refused command, an invalid transition) and is answered, never logged as a failure; a
//! [`StoreError`] is infrastructure, which edges turn into 503 (transient) or 500.

use thiserror::Error;

pub use crate::domain::DomainError;

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
    /// A fenced delivery outcome found that this dispatcher no longer holds the message's lease
    /// (another replica may own it now); nothing was written.
    #[error("outbox lease lost")]
    LeaseLost,
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
