//! Reading one runbook file: TOML in, a checked [`Runbook`] out, or every problem of the file at
//! once as `FILE:LINE:COL: message`, the way the configuration reports them (the same lenient
//! [`Reader`]: unknown keys, wrong types, then the runbook's own rules).
//!
//! The top level of the file is read as one table (`name`, `approvals`, …) and each `[[param]]`,
//! `[[generate]]` and `[[step]]` as its own element, so one broken step does not hide the rest.
//! The parameter rules live in `file_params`, the step rules in `file_steps` and
//! `file_actions`.

use super::file_steps::{self, RawStep};
use super::model::*;
use super::template::{self, BUILTIN_NAMES};
use crate::config::document::{parse_root, Problem, Reader};
use crate::config::raw::{is_env_name, Lines};
use crate::config::{Config, ConfigErrors};
use crate::domain::{LevelId, Role};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `param`, `generate`, `step` are read on their own; here they only name keys.
struct RawHeader {
    /// Optional here only so that its absence is reported at 1:1 rather than at whichever key
    /// comes first.
    name: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    approvals: Option<Spanned<u32>>,
    approver_role: Option<Spanned<String>>,
    levels: Option<Spanned<Vec<Spanned<u8>>>>,
    target: Option<Spanned<String>>,
    param: Option<IgnoredAny>,
    generate: Option<IgnoredAny>,
    step: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawParam {
    pub(crate) name: Spanned<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Spanned<String>,
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) default: Option<Spanned<String>>,
    pub(crate) format: Option<Spanned<String>>,
    pub(crate) values: Option<Spanned<Vec<String>>>,
    pub(crate) pattern: Option<Spanned<String>>,
    pub(crate) min: Option<Spanned<i64>>,
    pub(crate) max: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenerate {
    name: Spanned<String>,
    bytes: Option<Spanned<u32>>,
    encoding: Option<Spanned<String>>,
}

/// Where problems go while a file is checked.
pub(crate) type Report<'a> = &'a mut dyn FnMut(&Range<usize>, String);

/// What the step checks need to know about the runbook around them.
pub(crate) struct Context<'a> {
    pub config: &'a Config,
    pub params: Vec<String>,
    pub generate: Vec<String>,
    pub runbook_auto: bool,
    pub runbook_levels: Vec<LevelId>,
}

impl Context<'_> {
    /// Reports each placeholder of `t` that is malformed or names no parameter.
    pub fn placeholders(&self, what: &str, t: &Spanned<String>, err: Report<'_>) {
        if let Err(m) = template::pieces(t.get_ref()) {
            err(&t.span(), format!("{what}: {m}"));
            return;
        }
        for n in template::names(t.get_ref()) {
            if !self.params.iter().any(|p| p == n) && !BUILTIN_NAMES.contains(&n) {
                let mut accepted: Vec<&str> = self.params.iter().map(String::as_str).collect();
                accepted.extend(BUILTIN_NAMES);
                err(
                    &t.span(),
                    format!(
                        "{what}: `{{{{{n}}}}}` names no parameter; accepted: {}",
                        accepted.join(", ")
                    ),
                );
            }
        }
    }

    /// Levels as written, each checked against the configuration (and, for a step, against the
    /// runbook's own).
    pub fn levels(
        &self,
        what: &str,
        levels: Option<Spanned<Vec<Spanned<u8>>>>,
        within_runbook: bool,
        err: Report<'_>,
    ) -> Vec<LevelId> {
        let mut out = Vec::new();
        for l in levels.map(Spanned::into_inner).unwrap_or_default() {
            let id = LevelId(*l.get_ref());
            if !self.config.levels.contains_key(&id) {
                err(
                    &l.span(),
                    format!(
                        "{what}: level {id} is not configured; accepted: {}",
                        self.config.level_choices()
                    ),
                );
            } else if within_runbook
                && !self.runbook_levels.is_empty()
                && !self.runbook_levels.contains(&id)
            {
                err(
                    &l.span(),
                    format!(
                        "{what}: level {id} is not one of the runbook's levels ({}), so the step would never run",
                        join_levels(&self.runbook_levels)
                    ),
                );
            } else if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }
}

pub(crate) fn join_levels(levels: &[LevelId]) -> String {
    levels
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A role name, checked.
pub(crate) fn role(what: &str, r: &Spanned<String>, err: Report<'_>) -> Role {
    r.get_ref().parse::<Role>().unwrap_or_else(|m| {
        err(&r.span(), format!("{what}: {m}"));
        Role::Approver
    })
}

/// Reads and checks one runbook file's text. `file` names it in messages; relative programs
/// and working directories are resolved against `dir`.
///
/// # Errors
/// Every problem of the file, each at its line and column.
pub fn parse_runbook(
    text: &str,
    file: &str,
    dir: &Path,
    config: &Config,
) -> Result<Runbook, ConfigErrors> {
    let lines = Lines(text);
    let errors = |problems: Vec<Problem>| {
        let mut issues: Vec<_> = problems
            .into_iter()
            .map(|(at, m)| lines.at(at.start, m))
            .collect();
        issues.sort_by_key(|i| (i.line, i.col));
        ConfigErrors {
            file: file.to_string(),
            issues,
        }
    };
    let root = parse_root(text).map_err(errors)?;
    let mut r = Reader::default();
    let (mut params, mut generate, mut steps) = (Vec::new(), Vec::new(), Vec::new());
    let mut header = DeTable::new();
    for (k, v) in root {
        match k.get_ref().as_ref() {
            "param" => params = r.array::<RawParam>("param", v, Some("name")),
            "generate" => generate = r.array::<RawGenerate>("generate", v, Some("name")),
            "step" => steps = r.array_checked::<RawStep>("step", v, Some("id")),
            _ => {
                header.insert(k, v);
            }
        }
    }
    let header = r.read::<RawHeader>(
        "runbook",
        "runbook",
        Spanned::new(0..text.len(), DeValue::Table(header)),
    );
    let incomplete = !r.incomplete.is_empty();
    let mut problems = std::mem::take(&mut r.problems);
    let mut err = |s: &Range<usize>, m: String| problems.push((s.clone(), m));
    let runbook = header.and_then(|h| {
        let rb = check(h, params, generate, steps, file, dir, config, &mut err);
        rb.filter(|_| !incomplete)
    });
    match runbook {
        Some(rb) if problems.is_empty() => Ok(rb),
        _ => {
            if problems.is_empty() {
                problems.push((0..0, "the runbook could not be read".into()));
            }
            Err(errors(problems))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check(
    h: RawHeader,
    raw_params: Vec<RawParam>,
    raw_generate: Vec<RawGenerate>,
    raw_steps: Vec<(RawStep, bool)>,
    file: &str,
    dir: &Path,
    config: &Config,
    err: Report<'_>,
) -> Option<Runbook> {
    let Some(name_at) = &h.name else {
        err(
            &(0..0),
            r#"runbook: missing key `name` (the runbook's name in quotes, e.g. "db-restore")"#
                .into(),
        );
        return None;
    };
    let name = name_at.get_ref().clone();
    if !crate::config::runbooks::is_runbook_name(&name) {
        err(
            &name_at.span(),
            format!("name `{name}` is not valid: use lowercase letters, digits and '-', e.g. \"db-restore\""),
        );
    }
    let approval = ApprovalPolicy {
        approvals: h.approvals.as_ref().map(|a| *a.get_ref()).unwrap_or(1),
        role: h
            .approver_role
            .as_ref()
            .map(|r| role("approver_role", r, err))
            .unwrap_or(Role::Approver),
    };
    let mut cx = Context {
        config,
        params: Vec::new(),
        generate: Vec::new(),
        runbook_auto: approval.is_auto(),
        runbook_levels: Vec::new(),
    };
    cx.runbook_levels = cx.levels("levels", h.levels, false, err);

    let mut params: Vec<Param> = Vec::new();
    for (i, p) in raw_params.into_iter().enumerate() {
        let label = format!("[[param]] #{} (name = \"{}\")", i + 1, p.name.get_ref());
        // A parameter with a problem is still known by name: its placeholders are not
        // reported again.
        if template::is_param_name(p.name.get_ref()) {
            cx.params.push(p.name.get_ref().clone());
        }
        if let Some(param) = super::file_params::check_param(&label, p, &params, err) {
            params.push(param);
        }
    }

    let mut generate: Vec<GeneratedSecret> = Vec::new();
    for (i, g) in raw_generate.into_iter().enumerate() {
        let n = g.name.get_ref().clone();
        let label = format!("[[generate]] #{} (name = \"{n}\")", i + 1);
        if !is_env_name(&n) || n.as_bytes()[0].is_ascii_digit() {
            err(
                &g.name.span(),
                format!("{label}: `{n}` is not an environment variable name (A-Z, 0-9, _), e.g. \"NEW_DB_PASSWORD\""),
            );
        } else if generate.iter().any(|o| o.name == n) {
            err(
                &g.name.span(),
                format!("{label}: duplicate generated secret `{n}`"),
            );
        } else if let Some(p) = params.iter().find(|p| p.name.eq_ignore_ascii_case(&n)) {
            err(
                &g.name.span(),
                format!(
                    "{label}: `{n}` clashes with the parameter `{}`: give the secret another name",
                    p.name
                ),
            );
        }
        let bytes = g.bytes.as_ref().map(|b| *b.get_ref()).unwrap_or(32);
        if !(16..=1024).contains(&bytes) {
            err(
                &g.bytes.as_ref().map(|b| b.span()).unwrap_or(g.name.span()),
                format!("{label}: bytes must be from 16 to 1024, e.g. bytes = 32"),
            );
        }
        let encoding = match g.encoding.as_ref().map(|e| e.get_ref().as_str()) {
            None | Some("base64url") => SecretEncoding::Base64Url,
            Some("hex") => SecretEncoding::Hex,
            Some(other) => {
                err(
                    &g.encoding.as_ref().unwrap().span(),
                    format!("{label}: unknown encoding `{other}`; accepted: base64url, hex"),
                );
                SecretEncoding::Base64Url
            }
        };
        generate.push(GeneratedSecret {
            name: n,
            bytes: bytes as usize,
            encoding,
        });
    }
    cx.generate = generate.iter().map(|g| g.name.clone()).collect();

    let target = match &h.target {
        Some(t) => {
            cx.placeholders("target", t, err);
            Template(t.get_ref().clone())
        }
        None => Template(name.clone()),
    };

    let mut steps: Vec<Step> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let no_steps = raw_steps.is_empty();
    for (i, (s, clean)) in raw_steps.into_iter().enumerate() {
        let label = format!("[[step]] #{} (id = \"{}\")", i + 1, s.id.get_ref());
        if ids.contains(s.id.get_ref()) {
            err(
                &s.id.span(),
                format!("{label}: duplicate step id `{}`", s.id.get_ref()),
            );
        }
        ids.push(s.id.get_ref().clone());
        let at = s.id.span();
        if let Some(step) = file_steps::check_step(&label, s, clean, &cx, err) {
            // A run waiting at a step's approval may resume on another replica, and generated
            // secrets live only in the memory of the one run that made them.
            if i > 0 && !generate.is_empty() && step.approval.is_some_and(|p| !p.is_auto()) {
                err(
                    &at,
                    format!("{label}: a runbook with [[generate]] secrets cannot wait for a step's own approval (the secrets exist only while one run goes through); ask for it on the runbook instead, e.g. approvals = 1"),
                );
            }
            steps.push(step);
        }
    }
    if no_steps {
        err(
            &(0..0),
            "the runbook has no [[step]]; add at least one, e.g. [[step]] id = \"restart\" kind = \"exec\" argv = [\"scripts/service.sh\", \"restart\", \"workout-tracker\"]".into(),
        );
    }
    Some(Runbook {
        name,
        description: h.description,
        approval,
        levels: cx.runbook_levels,
        target,
        params,
        generate,
        steps,
        file: file.to_string(),
        dir: dir.to_path_buf(),
    })
}
