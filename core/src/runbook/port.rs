//! The executor port: how a planned step becomes a real process, request or probe. Core owns the
//! trait and decides *what* runs (the plan, the approvals, the redaction); the adapter
//! (the webhooks crate's `runner`) only runs it.

use super::model::ProbeSpec;
use async_trait::async_trait;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One step, fully resolved: nothing in it is parsed by a shell.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub action: Action,
    /// The whole step's budget; past it the adapter kills (an exec step's whole process group)
    /// and answers [`StepOutcome::TimedOut`].
    pub timeout: Duration,
    /// Secrets generated for this run (`NEW_DB_PASSWORD` → value): handed to an exec step as env
    /// vars when its `pass_env` names them. Never logged, never in `Debug` output.
    pub secrets: Secrets,
}

#[derive(Debug, Clone)]
pub enum Action {
    Exec {
        /// argv[0] is the program: absolute, or found on the fixed safe `PATH`.
        argv: Vec<String>,
        workdir: PathBuf,
        /// Names of Spotter's own env vars to pass through (unset ones are skipped and said so
        /// in the output); a name in [`Invocation::secrets`] takes the generated value.
        pass_env: Vec<String>,
        /// Set from parameter values.
        set_env: Vec<(String, String)>,
    },
    Http {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        body: Option<String>,
        /// Sign with the secret in this env var (`X-Spotter-Timestamp`, `X-Spotter-Signature:
        /// sha256=hex(hmac(secret, "timestamp.body"))`).
        hmac_secret_env: Option<String>,
        /// Accepted statuses; empty = any 2xx.
        expect_status: Vec<u16>,
    },
    Probe(ProbeSpec),
}

/// Generated secret values, with a `Debug` that shows names only.
#[derive(Clone, Default)]
pub struct Secrets(pub Vec<(String, String)>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=<redacted>")))
            .finish()
    }
}

impl Secrets {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Exit status 0, an accepted HTTP status, a healthy probe. `detail`: "exit 0", "HTTP 200".
    Succeeded { detail: String },
    /// Ran and failed: a non-zero exit (or a signal), an unexpected status, an unhealthy probe.
    Failed {
        exit_code: Option<i32>,
        detail: String,
    },
    /// Past its timeout; the process group was killed.
    TimedOut,
    /// Cancelled by a person; the process group was killed.
    Cancelled,
    /// Could not start at all (program not found, bad URL).
    NotStarted { reason: String },
}

impl StepOutcome {
    pub fn is_success(&self) -> bool {
        matches!(self, StepOutcome::Succeeded { .. })
    }
}

/// Where a running step's output goes, as it arrives: whole lines (stdout and stderr
/// interleaved as they come, each without its newline; a line longer than 16 KiB arrives in
/// pieces). The engine's sink redacts each line before it is stored or posted.
pub trait OutputSink: Send + Sync {
    fn line(&self, line: &str);
}

/// A probe's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub healthy: bool,
    /// "HTTP 200 in 12 ms", "connection refused", "SELECT 1 ok".
    pub detail: String,
    pub elapsed_ms: u64,
}

#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Runs one step to its end, streaming output to `out`. `cancel` (a person's
    /// `/runbook cancel`, or shutdown) kills an exec step's whole process group.
    async fn run(
        &self,
        step: &Invocation,
        out: &dyn OutputSink,
        cancel: CancellationToken,
    ) -> StepOutcome;

    /// Runs one probe within `timeout`.
    async fn probe(&self, probe: &ProbeSpec, timeout: Duration) -> ProbeResult;
}
