//! Spotter's core: the incident domain of the Workout Tracking System's disaster-recovery guide,
//! and every rule about it. No transport lives here (no axum, no serenity): the HTTP surface and
//! the chat adapters call into [`engine::Engine`], and outbound adapters implement the ports.
//!
//! Map of the modules:
//! - [`alerts`]: alerts from any sender, normalised; their identity and routing rules.
//! - [`domain`]: levels, incidents and their state machine, phases, timeline, people and roles,
//!   outbound channels, and the domain's refusals ([`DomainError`]). Below everything else.
//! - [`command`]: the chat grammar (`/incident declare level:3 title:"…"`) parsed into one typed
//!   [`command::Command`]; its spec table also feeds `/help` and slash-command registration.
//! - [`config`]: the TOML configuration, its built-in default (the guide), and `config check`.
//! - [`engine`]: the incident service. Executes commands, scheduled jobs and alert intake
//!   (dedup, grouping, resolution, flapping, maintenance windows, the dead man's switch); decides
//!   what to write (incident, timeline, audit, outbox, jobs) as one atomic changeset.
//! - [`store`]: the store port and its SQL adapter (SQLite by default, PostgreSQL for teams).
//! - [`audit`]: the keyed (HMAC) hash-chained audit log, its verification and exported heads.
//! - [`oncall`]: who a rotation puts on call at a time (shifts across DST, overrides).
//! - [`outbox`]: the notifier port and the dispatcher that delivers outbox rows with retries,
//!   every outcome fenced by its lease; its chat lane merges a storm's alert posts.
//! - [`runbook`]: runbook files, parameters and plans, redaction, and the executor port.
//! - [`publisher`]: the status follower: public incidents follow their internal ones, and the
//!   status board is rebuilt on change.
//! - [`runs`]: the run worker: executes approved runs step by step through the executor.
//! - [`status`]: the public status (components, public incidents and updates) and the
//!   in-memory snapshot its surfaces serve.
//! - [`scheduler`]: runs due jobs claimed from the database (dead-lettering those that keep
//!   failing) and the retention sweep.
//! - [`clock`]: time as a port, so tests move it by hand.
//! - [`metrics`]: counters and database-derived gauges rendered for `/metrics`.
//! - [`render`]: plain-text renderings of incidents for chat replies.
//! - [`error`]: store errors (conflict, transient or not) beside the domain's refusals.
//! - `testkit` (feature `testkit`, tests only): the PostgreSQL skip/strict rule and a fresh
//!   database per test.

pub mod alerts;
pub mod audit;
pub mod clock;
pub mod command;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod oncall;
pub mod outbox;
pub mod publisher;
pub mod render;
pub mod runbook;
pub mod runs;
pub mod scheduler;
pub mod status;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use engine::{AckLinkRefusal, AckLinkView, CommandContext, Engine, Reply, RunBrief};
pub use error::{DomainError, StoreError};

/// A random token of `bytes` random bytes, hex-encoded (API tokens, replica ids).
pub fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Constant-time equality for secrets (tokens, signatures), so timing does not reveal how much of
/// a guess was right.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A secret value (API token, signing key). Its `Debug` and `Display` never show it, so a secret
/// cannot reach a log line by accident; [`Secret::expose`] is the one explicit way out.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &str) -> bool {
        secrets_equal(self.0.as_bytes(), presented.as_bytes())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}
