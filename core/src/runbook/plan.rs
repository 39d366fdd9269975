//! From a runbook and what a person typed to the exact steps a run would take: parameters
//! checked by kind (nothing reaches a process unchecked), placeholders filled in with the
//! escaping each place needs, relative programs resolved, and a dry-run line per step that shows
//! argv and env names but never a secret value.

use super::file_steps::levels_text;
use super::model::*;
use super::port::Action;
use super::template::{json_escape, percent_encode};
use crate::config::{format_duration, redact_url};
use crate::domain::{IncidentRef, LevelId};
use std::collections::BTreeMap;
use std::path::Path;

/// The values of the built-in placeholders for one run.
#[derive(Debug, Clone)]
pub struct Builtins {
    /// `{{incident}}`: `INC-7`, or empty for a run without an incident.
    pub incident: Option<IncidentRef>,
    /// `{{level}}`: the incident's level, or empty.
    pub level: Option<LevelId>,
    /// `{{run}}`: the run's id.
    pub run: i64,
    /// `{{runbook}}`: the runbook's name.
    pub runbook: String,
}

/// One step as a run would take it.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    /// Its place in the runbook, from 0.
    pub index: usize,
    pub id: String,
    pub description: String,
    pub destructive: bool,
    /// The step's own approval, beyond the run's.
    pub approval: Option<ApprovalPolicy>,
    pub on_failure: OnFailure,
    /// Why it is skipped (the incident's level is not one it runs at); `None`: it runs.
    pub skipped: Option<String>,
    pub timeout: std::time::Duration,
    pub action: PlannedAction,
}

#[derive(Debug, Clone)]
pub enum PlannedAction {
    /// Handed to the executor.
    Invoke(Action),
    /// A person does it and confirms.
    Manual { instructions: String },
}

/// What a value of `kind` looks like, for messages: "a date YYYYMMDD, e.g. 20261126".
pub fn accepted_form(kind: &ParamKind) -> String {
    match kind {
        ParamKind::Date { format } => format!(
            "a date {}, e.g. {}",
            format.as_str(),
            match format {
                DateFormat::Compact => "20261126",
                DateFormat::Iso => "2026-11-26",
            }
        ),
        ParamKind::Enum { values } => format!("one of {}", values.join(", ")),
        ParamKind::Regex { pattern } => {
            let p = pattern.as_str();
            let inner = p
                .strip_prefix("^(?:")
                .and_then(|r| r.strip_suffix(")$"))
                .unwrap_or(p);
            format!("a value matching {inner}")
        }
        ParamKind::Integer { min, max } => match (min, max) {
            (Some(a), Some(b)) => format!("a whole number from {a} to {b}"),
            (Some(a), None) => format!("a whole number, at least {a}"),
            (None, Some(b)) => format!("a whole number, at most {b}"),
            (None, None) => "a whole number, e.g. 3".into(),
        },
        ParamKind::Incident => IncidentRef::FORM.to_string(),
    }
}

/// Checks one value of `param`; answers the value the run uses (as typed, except an incident
/// reference, which is written `INC-<n>`).
///
/// # Errors
/// One line: ``bad value for `recovery_date`: `x`; accepted: a date YYYYMMDD, e.g. 20261126``.
pub fn check_value(param: &Param, value: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "bad value for `{}`: `{}`; accepted: {}",
            param.name,
            value.escape_debug(),
            accepted_form(&param.kind)
        )
    };
    // Whatever the kind: a control character (a newline above all) never reaches a process.
    if value.chars().any(char::is_control) {
        return Err(bad());
    }
    match &param.kind {
        ParamKind::Date { format } => {
            let shape_ok = match format {
                DateFormat::Compact => {
                    value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit())
                }
                DateFormat::Iso => {
                    let b = value.as_bytes();
                    b.len() == 10
                        && b.iter().enumerate().all(|(i, c)| {
                            if i == 4 || i == 7 {
                                *c == b'-'
                            } else {
                                c.is_ascii_digit()
                            }
                        })
                }
            };
            if shape_ok && chrono::NaiveDate::parse_from_str(value, format.chrono()).is_ok() {
                Ok(value.to_string())
            } else {
                Err(bad())
            }
        }
        ParamKind::Enum { values } => {
            if values.iter().any(|v| v == value) {
                Ok(value.to_string())
            } else {
                Err(bad())
            }
        }
        ParamKind::Regex { pattern } => {
            if pattern.is_match(value) {
                Ok(value.to_string())
            } else {
                Err(bad())
            }
        }
        ParamKind::Integer { min, max } => {
            let digits = value.strip_prefix('-').unwrap_or(value);
            let n = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<i64>().ok())
                .flatten()
                .ok_or_else(bad)?;
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                return Err(bad());
            }
            Ok(value.to_string())
        }
        ParamKind::Incident => {
            let b = value.as_bytes();
            let plain = !b.is_empty() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
            match value.parse::<IncidentRef>() {
                Ok(r) if plain => Ok(r.to_string()),
                _ => Err(bad()),
            }
        }
    }
}

/// Checks what a person typed against the runbook's parameters: each value by its kind,
/// defaults filled in.
///
/// # Errors
/// One line naming the first problem: an unknown parameter (with the accepted ones), a missing
/// required one, or a bad value (with its accepted form).
pub fn check_params(
    rb: &Runbook,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    for name in given.keys() {
        if !rb.params.iter().any(|p| &p.name == name) {
            let name = name.escape_debug();
            return Err(if rb.params.is_empty() {
                format!(
                    "unknown parameter `{name}`: runbook `{}` takes no parameters",
                    rb.name
                )
            } else {
                format!(
                    "unknown parameter `{name}`; accepted: {}",
                    rb.params
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
    }
    let mut out = BTreeMap::new();
    for p in &rb.params {
        let value = match (given.get(&p.name), &p.default) {
            (Some(v), _) => v.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => {
                return Err(format!(
                    "missing parameter `{}` ({}); write it as {}:<value>",
                    p.name,
                    accepted_form(&p.kind),
                    p.name
                ))
            }
        };
        out.insert(p.name.clone(), check_value(p, &value)?);
    }
    Ok(out)
}

/// Parameter values and built-ins, as placeholders see them.
fn placeholder_values(values: &BTreeMap<String, String>, b: &Builtins) -> BTreeMap<String, String> {
    let mut v = values.clone();
    v.insert(
        "incident".into(),
        b.incident.map(|i| i.to_string()).unwrap_or_default(),
    );
    v.insert(
        "level".into(),
        b.level.map(|l| l.to_string()).unwrap_or_default(),
    );
    v.insert("run".into(), b.run.to_string());
    v.insert("runbook".into(), b.runbook.clone());
    v
}

/// What the one-run-at-a-time lock is taken on: the runbook's `target`, filled in.
pub fn lock_target(rb: &Runbook, values: &BTreeMap<String, String>, builtins: &Builtins) -> String {
    rb.target
        .render_plain(&placeholder_values(values, builtins))
}

/// A path as written, or under `dir` when relative.
fn under(dir: &Path, p: &Path) -> std::path::PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// The steps of a run with checked `values` (from [`check_params`]). `probes` are the
/// configuration's, for steps naming one.
pub fn plan(
    rb: &Runbook,
    values: &BTreeMap<String, String>,
    builtins: &Builtins,
    probes: &[Probe],
) -> Vec<PlannedStep> {
    let v = placeholder_values(values, builtins);
    rb.steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let mut skipped = match builtins.level {
                _ if step.levels.is_empty() => None,
                Some(l) if step.levels.contains(&l) => None,
                Some(l) => Some(format!(
                    "runs only at {}; this incident is level {l}",
                    levels_text(&step.levels)
                )),
                None => Some(format!(
                    "runs only at {}; this run has no incident level",
                    levels_text(&step.levels)
                )),
            };
            let action = match &step.kind {
                StepKind::Exec(e) => {
                    let mut argv: Vec<String> = e.argv.iter().map(|a| a.render_plain(&v)).collect();
                    // A program with a path is the runbook's own script; a bare name is looked up
                    // on the executor's fixed PATH.
                    if argv[0].contains('/') {
                        argv[0] = under(&rb.dir, Path::new(&argv[0])).display().to_string();
                    }
                    PlannedAction::Invoke(Action::Exec {
                        argv,
                        workdir: e
                            .workdir
                            .as_deref()
                            .map(|w| under(&rb.dir, w))
                            .unwrap_or_else(|| rb.dir.clone()),
                        pass_env: e.env.clone(),
                        set_env: e
                            .set_env
                            .iter()
                            .map(|(k, t)| (k.clone(), t.render_plain(&v)))
                            .collect(),
                    })
                }
                StepKind::Http(h) => PlannedAction::Invoke(Action::Http {
                    method: h.method.clone(),
                    url: h.url.render(&v, percent_encode),
                    headers: h
                        .headers
                        .iter()
                        .map(|(k, t)| (k.clone(), t.render_plain(&v)))
                        .collect(),
                    body: h.body.as_ref().map(|b| b.render(&v, json_escape)),
                    hmac_secret_env: h.hmac_secret_env.clone(),
                    expect_status: h.expect_status.clone(),
                }),
                StepKind::Probe(ProbeRef::Inline(p)) => {
                    PlannedAction::Invoke(Action::Probe(p.clone()))
                }
                StepKind::Probe(ProbeRef::Named(n)) => match probes.iter().find(|p| &p.id == n) {
                    Some(p) => PlannedAction::Invoke(Action::Probe(p.spec.clone())),
                    None => {
                        // Runbooks are checked against the configuration they run with, so this
                        // only happens when the two were loaded apart.
                        skipped.get_or_insert_with(|| format!("the probe `{n}` is not configured"));
                        PlannedAction::Manual {
                            instructions: format!(
                                "Check `{n}` by hand: it is not a configured [[probe]]."
                            ),
                        }
                    }
                },
                StepKind::Manual { instructions } => PlannedAction::Manual {
                    instructions: Template(instructions.clone()).render_plain(&v),
                },
            };
            PlannedStep {
                index,
                id: step.id.clone(),
                description: step.description.clone(),
                destructive: step.destructive,
                approval: step.approval,
                on_failure: step.on_failure,
                skipped,
                timeout: step.timeout.to_std().unwrap_or_default(),
                action,
            }
        })
        .collect()
}

impl PlannedStep {
    /// The dry-run line: exactly what would run. Env vars are shown by name only (their values
    /// may be secrets); `set_env` values come from parameters, which are not secret.
    pub fn describe(&self) -> String {
        let mut out = format!("{}. {}: ", self.index + 1, self.id);
        if let Some(why) = &self.skipped {
            out.push_str(&format!("skipped ({why}); "));
        }
        match &self.action {
            PlannedAction::Invoke(Action::Exec {
                argv,
                workdir,
                pass_env,
                set_env,
            }) => {
                out.push_str(&format!(
                    "exec {}",
                    serde_json::to_string(argv).unwrap_or_default()
                ));
                if !pass_env.is_empty() {
                    out.push_str(&format!("; env {}", pass_env.join(", ")));
                }
                if !set_env.is_empty() {
                    let s: Vec<String> = set_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    out.push_str(&format!("; set {}", s.join(" ")));
                }
                out.push_str(&format!("; in {}", workdir.display()));
            }
            PlannedAction::Invoke(Action::Http {
                method,
                url,
                headers,
                body,
                hmac_secret_env,
                expect_status,
            }) => {
                out.push_str(&format!("http {method} {}", redact_url(url)));
                if !headers.is_empty() {
                    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
                    out.push_str(&format!("; headers {}", names.join(", ")));
                }
                if let Some(b) = body {
                    out.push_str(&format!("; body {} bytes", b.len()));
                }
                if let Some(e) = hmac_secret_env {
                    out.push_str(&format!("; signed with ${e}"));
                }
                if !expect_status.is_empty() {
                    let s: Vec<String> = expect_status.iter().map(|c| c.to_string()).collect();
                    out.push_str(&format!("; expects {}", s.join(", ")));
                }
            }
            PlannedAction::Invoke(Action::Probe(p)) => {
                out.push_str(&format!("probe {} {}", p.kind(), probe_target(p)));
            }
            PlannedAction::Manual { instructions } => {
                out.push_str(&format!(
                    "manual: {}",
                    instructions.lines().next().unwrap_or("")
                ));
            }
        }
        out.push_str(&format!(
            "; timeout {}",
            format_duration(chrono::Duration::from_std(self.timeout).unwrap_or_default())
        ));
        if self.destructive {
            out.push_str("; DESTRUCTIVE");
        }
        if let Some(a) = &self.approval {
            out.push_str(&format!(
                "; needs {} approval{} ({})",
                a.approvals,
                if a.approvals == 1 { "" } else { "s" },
                a.role
            ));
        }
        if self.on_failure == OnFailure::Continue {
            out.push_str("; continues on failure");
        }
        out
    }
}

/// Where a probe looks, passwords redacted.
fn probe_target(p: &ProbeSpec) -> String {
    match p {
        ProbeSpec::Http { url, expect_status } => {
            format!("{} (expects {expect_status})", redact_url(url))
        }
        ProbeSpec::Tcp { address } => address.clone(),
        ProbeSpec::Mysql { url, url_env } | ProbeSpec::Postgres { url, url_env } => {
            match (url_env, url) {
                (Some(e), Some(u)) => format!("${e}, else {}", redact_url(u)),
                (Some(e), None) => format!("${e}"),
                (None, Some(u)) => redact_url(u),
                (None, None) => String::new(),
            }
        }
        ProbeSpec::Redis {
            address,
            password_env,
        } => match password_env {
            Some(e) => format!("{address} (password from ${e})"),
            None => address.clone(),
        },
    }
}
