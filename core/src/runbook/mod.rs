//! Runbooks: the guide's procedures as typed, approval-gated steps.
//!
//! - [`model`]: a checked runbook (parameters, steps, approval policies) and probes.
//! - [`port`]: the executor port, implemented by `spotter_webhooks::runner`.

pub mod model;
pub mod port;

pub use model::*;
pub use port::{Action, Executor, Invocation, OutputSink, ProbeResult, Secrets, StepOutcome};
