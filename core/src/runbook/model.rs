//! What a runbook is, once its file was read and checked: typed parameters, steps of four kinds,
//! and approval policies. Nothing here runs anything; [`super::plan`] turns a runbook and the
//! values a person typed into the exact argv, env names and requests a run would use.

use crate::domain::{LevelId, Role};
use chrono::Duration;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One runbook (one file).
#[derive(Debug, Clone)]
pub struct Runbook {
    /// `[a-z0-9][a-z0-9-]*`, unique: what `/runbook run name:` takes.
    pub name: String,
    pub description: String,
    /// The run-level approval: how many people, holding which role, must approve before the
    /// first step runs. `approvals = 0` is `auto`: it runs at once, so it may only hold safe
    /// steps (no `destructive` one without its own approval).
    pub approval: ApprovalPolicy,
    /// Incident levels it may be used at (empty: any, and without an incident).
    pub levels: Vec<LevelId>,
    /// What it acts on, for the one-run-at-a-time lock: a literal or `{{param}}` (default: the
    /// runbook's name, so one run of it at a time).
    pub target: Template,
    pub params: Vec<Param>,
    /// Secrets generated fresh for each run (credential rotation): handed to steps as env vars
    /// that list them, kept in memory only, redacted from every output.
    pub generate: Vec<GeneratedSecret>,
    pub steps: Vec<Step>,
    /// Where it came from (`runbooks/db-restore.toml`, or `<built-in>/db-restore.toml`); relative
    /// `argv[0]` and `workdir` are resolved against `dir`.
    pub file: String,
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// 0 = auto (pre-approved).
    pub approvals: u32,
    /// The role each approver must hold (default `approver`; admin always qualifies).
    pub role: Role,
}

impl ApprovalPolicy {
    pub const AUTO: ApprovalPolicy = ApprovalPolicy {
        approvals: 0,
        role: Role::Approver,
    };
    pub fn is_auto(&self) -> bool {
        self.approvals == 0
    }
}

/// A typed parameter. Values are checked before anything runs and reach a process only as one
/// whole argv entry or one env var.
#[derive(Debug, Clone)]
pub struct Param {
    /// `[a-z_][a-z0-9_]*`.
    pub name: String,
    pub description: String,
    pub kind: ParamKind,
    /// Required unless it has a default.
    pub default: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ParamKind {
    /// One of the listed values, exactly.
    Enum { values: Vec<String> },
    /// Matches the pattern as a whole (anchored `^(?:…)$`), and has no control characters.
    Regex { pattern: regex::Regex },
    /// A calendar date in `format` (`YYYYMMDD`, `YYYY-MM-DD`).
    Date { format: DateFormat },
    /// A whole number within the bounds.
    Integer { min: Option<i64>, max: Option<i64> },
    /// An incident reference (`INC-7`) that exists.
    Incident,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFormat {
    /// `YYYYMMDD`
    Compact,
    /// `YYYY-MM-DD`
    Iso,
}

impl DateFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DateFormat::Compact => "YYYYMMDD",
            DateFormat::Iso => "YYYY-MM-DD",
        }
    }
    /// The chrono format string.
    pub fn chrono(self) -> &'static str {
        match self {
            DateFormat::Compact => "%Y%m%d",
            DateFormat::Iso => "%Y-%m-%d",
        }
    }
}

/// A secret generated for one run.
#[derive(Debug, Clone)]
pub struct GeneratedSecret {
    /// The env var name it is handed over as (`NEW_DB_PASSWORD`).
    pub name: String,
    /// Random bytes before encoding.
    pub bytes: usize,
    pub encoding: SecretEncoding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretEncoding {
    /// URL-safe base64 without padding (no `/`, `+` or `=` to trip up config files and sed).
    Base64Url,
    Hex,
}

/// A string with `{{name}}` placeholders: parameters, and the built-ins `incident`, `level`,
/// `run` and `runbook`. In an argv entry a placeholder must be the whole entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub String);

#[derive(Debug, Clone)]
pub struct Step {
    /// `[a-z0-9][a-z0-9-_]*`, unique in its runbook.
    pub id: String,
    pub description: String,
    pub kind: StepKind,
    /// Killed (the whole process group) or abandoned after this.
    pub timeout: Duration,
    /// Changes data or state that cannot simply be undone; shown in the approval request, and
    /// never allowed to run without an approval.
    pub destructive: bool,
    /// A step's own approval, asked for when the run reaches it (beyond the run-level one).
    pub approval: Option<ApprovalPolicy>,
    /// Levels it runs at (empty: every level the runbook allows); skipped at other levels.
    pub levels: Vec<LevelId>,
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The run ends `failed` (the default).
    Stop,
    /// The failure is recorded and the next step runs.
    Continue,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Exec(ExecStep),
    Http(HttpStep),
    /// A probe: one of the configured `[[probe]]`s by id, or one written inline.
    Probe(ProbeRef),
    /// A person does it and confirms (`/runbook confirm run:<id>`); `instructions` say what.
    Manual {
        instructions: String,
    },
}

#[derive(Debug, Clone)]
pub struct ExecStep {
    /// argv[0] is the program (relative paths are against the runbook's directory); never run
    /// through a shell.
    pub argv: Vec<Template>,
    /// The working directory (default: the runbook's directory).
    pub workdir: Option<PathBuf>,
    /// Names of Spotter's env vars passed through (and of the run's generated secrets). Every
    /// other variable is cleared, except a fixed safe `PATH`, `HOME`, `LANG`.
    pub env: Vec<String>,
    /// Env vars set from templates (`RECOVERY_DATE = "{{recovery_date}}"`): the other way a
    /// parameter reaches a process.
    pub set_env: BTreeMap<String, Template>,
}

#[derive(Debug, Clone)]
pub struct HttpStep {
    pub method: String,
    /// Placeholders are percent-encoded.
    pub url: Template,
    pub headers: BTreeMap<String, Template>,
    /// Placeholders are JSON-string-escaped (the body is usually JSON).
    pub body: Option<Template>,
    /// Signs the request like Spotter's outbound webhooks (`X-Spotter-Signature` over
    /// `timestamp.body`) with the secret in this env var.
    pub hmac_secret_env: Option<String>,
    /// Accepted statuses (default: any 2xx).
    pub expect_status: Vec<u16>,
}

#[derive(Debug, Clone)]
pub enum ProbeRef {
    /// A `[[probe]]` of the configuration, by id.
    Named(String),
    Inline(ProbeSpec),
}

// A probe is configuration (`[[probe]]`) as much as part of a runbook; it is defined with the
// configuration so that `config` (which core's other modules build on) needs nothing from
// here, and used here under the same names.
pub use crate::config::{Probe, ProbeSpec};
