//! Runbooks: the guide's procedures as typed, approval-gated steps.
//!
//! - [`model`]: a checked runbook (parameters, steps, approval policies) and probes.
//! - [`port`]: the executor port, implemented by the webhooks crate's `runner`.
//! - [`file`] (with `file_params`, `file_steps` and `file_actions`): reading and checking one runbook file, every problem as
//!   `FILE:LINE:COL`.
//! - [`load`]: [`Runbooks`], all runbooks by name: a directory, or the built-in ones (the guide,
//!   in `defaults/`, with their scripts).
//! - [`plan`]: checking what a person typed and planning the exact steps of a run.
//! - [`redact`]: keeping secrets out of output, timelines and chat.
//! - [`template`]: `{{name}}` placeholders.

pub mod file;
mod file_actions;
mod file_params;
mod file_steps;
pub mod load;
pub mod model;
pub mod plan;
pub mod port;
pub mod redact;
pub mod template;

pub use load::{write_defaults, Runbooks};
pub use model::*;
pub use plan::{check_params, lock_target, plan, Builtins, PlannedAction, PlannedStep};
pub use port::{Action, Executor, Invocation, OutputSink, ProbeResult, Secrets, StepOutcome};
pub use redact::Redactor;
