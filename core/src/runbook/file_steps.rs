//! The rules of one `[[step]]`: which keys its kind takes, argv lists that never reach a shell,
//! placeholders only as whole argv entries, env names, approvals for destructive steps.

use super::file::{join_levels, role, Context, Report};
use super::model::*;
use super::template;
use crate::config::parse_duration;
use crate::config::raw::is_env_name;
use crate::config::runbooks::{probe_spec, ProbeFields};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub id: Spanned<String>,
    #[serde(default)]
    description: String,
    kind: Spanned<String>,
    timeout: Option<Spanned<String>>,
    destructive: Option<Spanned<bool>>,
    approvals: Option<Spanned<u32>>,
    approver_role: Option<Spanned<String>>,
    levels: Option<Spanned<Vec<Spanned<u8>>>>,
    on_failure: Option<Spanned<String>>,
    // exec
    argv: Option<Spanned<Vec<Spanned<String>>>>,
    env: Option<Spanned<Vec<Spanned<String>>>>,
    set_env: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    workdir: Option<Spanned<String>>,
    // http
    method: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    headers: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    body: Option<Spanned<String>>,
    hmac_secret_env: Option<Spanned<String>>,
    expect_status: Option<Spanned<StatusList>>,
    // probe
    probe: Option<Spanned<String>>,
    probe_kind: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    // manual
    instructions: Option<Spanned<String>>,
}

/// `expect_status = 200` or `[200, 204]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum StatusList {
    One(u16),
    Many(Vec<u16>),
}

impl StatusList {
    fn list(&self) -> Vec<u16> {
        match self {
            StatusList::One(s) => vec![*s],
            StatusList::Many(v) => v.clone(),
        }
    }
}

/// Programs that run a string as a script: never as a step's program with `-c`.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox",
];

const SHELL_MESSAGE: &str = "runbook steps are argv lists, never shell strings: put the commands in a script and run it, e.g. argv = [\"scripts/db-restore.sh\", \"{{recovery_date}}\"]";

pub(crate) fn check_step(
    label: &str,
    s: RawStep,
    cx: &Context<'_>,
    err: Report<'_>,
) -> Option<Step> {
    let id = s.id.get_ref().clone();
    let mut ok = true;
    let valid_id = {
        let b = id.as_bytes();
        !b.is_empty()
            && b.len() <= 64
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
    };
    if !valid_id {
        err(
            &s.id.span(),
            format!("{label}: `{id}` is not a step id: use lowercase letters, digits, '-' and '_', e.g. \"restore\""),
        );
        ok = false;
    }
    let kind = s.kind.get_ref().as_str();
    let own: &[&str] = match kind {
        "exec" => &["argv", "env", "set_env", "workdir"],
        "http" => &[
            "method",
            "url",
            "headers",
            "body",
            "hmac_secret_env",
            "expect_status",
        ],
        "probe" => &[
            "probe",
            "probe_kind",
            "url",
            "url_env",
            "address",
            "password_env",
            "expect_status",
        ],
        "manual" => &["instructions"],
        other => {
            err(
                &s.kind.span(),
                format!("{label}: unknown kind `{other}`; accepted: exec, http, probe, manual"),
            );
            return None;
        }
    };
    let span = |o: Option<std::ops::Range<usize>>| o;
    let present = [
        ("argv", span(s.argv.as_ref().map(|v| v.span()))),
        ("env", s.env.as_ref().map(|v| v.span())),
        ("set_env", s.set_env.as_ref().map(|v| v.span())),
        ("workdir", s.workdir.as_ref().map(|v| v.span())),
        ("method", s.method.as_ref().map(|v| v.span())),
        ("url", s.url.as_ref().map(|v| v.span())),
        ("headers", s.headers.as_ref().map(|v| v.span())),
        ("body", s.body.as_ref().map(|v| v.span())),
        (
            "hmac_secret_env",
            s.hmac_secret_env.as_ref().map(|v| v.span()),
        ),
        ("expect_status", s.expect_status.as_ref().map(|v| v.span())),
        ("probe", s.probe.as_ref().map(|v| v.span())),
        ("probe_kind", s.probe_kind.as_ref().map(|v| v.span())),
        ("address", s.address.as_ref().map(|v| v.span())),
        ("url_env", s.url_env.as_ref().map(|v| v.span())),
        ("password_env", s.password_env.as_ref().map(|v| v.span())),
        ("instructions", s.instructions.as_ref().map(|v| v.span())),
    ];
    for (key, at) in &present {
        if let Some(at) = at {
            if !own.contains(key) {
                err(
                    at,
                    format!(
                        "{label}: `{key}` does not belong to a {kind} step; its keys: {}",
                        own.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }

    let approval = match (&s.approvals, &s.approver_role) {
        (Some(a), r) if *a.get_ref() >= 1 => Some(ApprovalPolicy {
            approvals: *a.get_ref(),
            role: r
                .as_ref()
                .map(|r| role(label, r, err))
                .unwrap_or(crate::domain::Role::Approver),
        }),
        (Some(a), _) => {
            err(
                &a.span(),
                format!("{label}: a step's approvals must be at least 1 (leave it out for none)"),
            );
            ok = false;
            None
        }
        (None, Some(r)) => {
            err(
                &r.span(),
                format!("{label}: approver_role needs approvals, e.g. approvals = 1"),
            );
            ok = false;
            None
        }
        (None, None) => None,
    };
    let destructive = s.destructive.as_ref().is_some_and(|d| *d.get_ref());
    if destructive && cx.runbook_auto && approval.is_none() {
        err(
            &s.destructive.as_ref().unwrap().span(),
            format!("{label}: a destructive step cannot run without approval, and this runbook has approvals = 0: give the step approvals = 1, or the runbook approvals = 1"),
        );
        ok = false;
    }
    let levels = cx.levels(label, s.levels.clone(), true, err);
    let on_failure = match s.on_failure.as_ref().map(|o| o.get_ref().as_str()) {
        None | Some("stop") => OnFailure::Stop,
        Some("continue") => OnFailure::Continue,
        Some(other) => {
            err(
                &s.on_failure.as_ref().unwrap().span(),
                format!("{label}: on_failure `{other}` is not accepted; accepted: stop, continue"),
            );
            ok = false;
            OnFailure::Stop
        }
    };

    let mut default_timeout = match kind {
        "exec" => chrono::Duration::minutes(10),
        "manual" => chrono::Duration::hours(1),
        _ => chrono::Duration::seconds(30),
    };
    let step_kind = match kind {
        "exec" => exec(label, &s, cx, err),
        "http" => http(label, &s, cx, err),
        "probe" => {
            let p = probe(label, &s, cx, err);
            if let Some(StepKind::Probe(ProbeRef::Named(n))) = &p {
                if let Some(c) = cx.config.probes.iter().find(|c| &c.id == n) {
                    default_timeout = c.timeout;
                }
            }
            p
        }
        _ => match &s.instructions {
            Some(i) if !i.get_ref().trim().is_empty() => {
                cx.placeholders(&format!("{label}: instructions"), i, err);
                Some(StepKind::Manual {
                    instructions: i.get_ref().clone(),
                })
            }
            _ => {
                err(
                    &s.kind.span(),
                    format!("{label}: a manual step needs `instructions`, e.g. instructions = \"Switch the load balancer to the standby\""),
                );
                None
            }
        },
    };
    let timeout = match &s.timeout {
        None => default_timeout,
        Some(t) => match parse_duration(t.get_ref()) {
            Ok(d) if d > chrono::Duration::zero() => d,
            Ok(_) => {
                err(
                    &t.span(),
                    format!("{label}: timeout must be longer than 0, e.g. \"10m\""),
                );
                ok = false;
                default_timeout
            }
            Err(m) => {
                err(&t.span(), format!("{label}: timeout: {m}"));
                ok = false;
                default_timeout
            }
        },
    };
    let step_kind = step_kind?;
    ok.then_some(Step {
        id,
        description: s.description,
        kind: step_kind,
        timeout,
        destructive,
        approval,
        levels,
        on_failure,
    })
}

fn env_names(
    label: &str,
    key: &str,
    names: &[Spanned<String>],
    err: Report<'_>,
) -> Option<Vec<String>> {
    let mut ok = true;
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !is_env_name(n.get_ref()) || n.get_ref().as_bytes()[0].is_ascii_digit() {
            err(
                &n.span(),
                format!("{label}: {key}: `{}` is not an environment variable name (A-Z, 0-9, _), e.g. \"SPOTTER_BACKUP_KEY\"", n.get_ref()),
            );
            ok = false;
        } else if !out.contains(n.get_ref()) {
            out.push(n.get_ref().clone());
        }
    }
    ok.then_some(out)
}

fn exec(label: &str, s: &RawStep, cx: &Context<'_>, err: Report<'_>) -> Option<StepKind> {
    let mut ok = true;
    let Some(argv) = &s.argv else {
        err(
            &s.kind.span(),
            format!("{label}: an exec step needs `argv`, e.g. argv = [\"scripts/service.sh\", \"restart\", \"workout-tracker\"]"),
        );
        return None;
    };
    let entries = argv.get_ref();
    if entries.is_empty() || entries[0].get_ref().is_empty() {
        err(
            &argv.span(),
            format!("{label}: argv is empty: the program comes first, e.g. argv = [\"scripts/db-restore.sh\", \"{{{{recovery_date}}}}\"]"),
        );
        ok = false;
    } else if !template::names(entries[0].get_ref()).is_empty() {
        err(
            &entries[0].span(),
            format!("{label}: argv[0], the program, must be written out, not a placeholder"),
        );
        ok = false;
    }
    for (i, a) in entries.iter().enumerate() {
        cx.placeholders(&format!("{label}: argv[{i}]"), a, err);
        if !template::is_whole_or_literal(a.get_ref()) {
            err(
                &a.span(),
                format!("{label}: argv[{i}] `{}`: a placeholder must be a whole argv entry, e.g. [\"restore.sh\", \"{{{{recovery_date}}}}\"]", a.get_ref()),
            );
            ok = false;
        }
        let base = a.get_ref().rsplit('/').next().unwrap_or("");
        if SHELLS.contains(&base) {
            let runs_string = entries[i + 1..].iter().any(|f| {
                let f = f.get_ref();
                f.starts_with('-') && !f.starts_with("--") && f.contains('c') || f == "--command"
            });
            if runs_string {
                err(&a.span(), format!("{label}: {SHELL_MESSAGE}"));
                ok = false;
            }
        }
    }
    let env = match &s.env {
        Some(e) => env_names(label, "env", e.get_ref(), err).unwrap_or_else(|| {
            ok = false;
            vec![]
        }),
        None => vec![],
    };
    let mut set_env = BTreeMap::new();
    if let Some(m) = &s.set_env {
        for (k, v) in m.get_ref() {
            if !is_env_name(k) || k.as_bytes()[0].is_ascii_digit() {
                err(
                    &v.span(),
                    format!("{label}: set_env: `{k}` is not an environment variable name (A-Z, 0-9, _), e.g. RECOVERY_DATE"),
                );
                ok = false;
            } else if env.contains(k) || cx.generate.contains(k) {
                err(
                    &v.span(),
                    format!("{label}: set_env: `{k}` is also passed through by `env` or generated: name it once"),
                );
                ok = false;
            }
            cx.placeholders(&format!("{label}: set_env: {k}"), v, err);
            set_env.insert(k.clone(), Template(v.get_ref().clone()));
        }
    }
    let workdir = s.workdir.as_ref().map(|w| {
        if !template::names(w.get_ref()).is_empty() || w.get_ref().is_empty() {
            err(&w.span(), format!("{label}: workdir must be a directory written out, e.g. workdir = \"/opt/workout-tracker\""));
            ok = false;
        }
        PathBuf::from(w.get_ref())
    });
    ok.then_some(StepKind::Exec(ExecStep {
        argv: entries
            .iter()
            .map(|a| Template(a.get_ref().clone()))
            .collect(),
        workdir,
        env,
        set_env,
    }))
}

fn http(label: &str, s: &RawStep, cx: &Context<'_>, err: Report<'_>) -> Option<StepKind> {
    let mut ok = true;
    let method = match &s.method {
        None => "POST".to_string(),
        Some(m) => {
            let up = m.get_ref().to_ascii_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&up.as_str()) {
                err(&m.span(), format!("{label}: method `{}` is not accepted; accepted: GET, POST, PUT, PATCH, DELETE, HEAD", m.get_ref()));
                ok = false;
            }
            up
        }
    };
    let Some(url) = &s.url else {
        err(&s.kind.span(), format!("{label}: an http step needs `url`, e.g. url = \"https://status.example.com/api/incidents\""));
        return None;
    };
    if !(url.get_ref().starts_with("http://") || url.get_ref().starts_with("https://"))
        || url.get_ref().starts_with("http://{{")
        || url.get_ref().starts_with("https://{{")
    {
        err(&url.span(), format!("{label}: url must start with http:// or https:// and a host written out, e.g. \"https://status.example.com/api/incidents/{{{{incident}}}}\""));
        ok = false;
    }
    cx.placeholders(&format!("{label}: url"), url, err);
    let mut headers = BTreeMap::new();
    if let Some(h) = &s.headers {
        for (k, v) in h.get_ref() {
            let token = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token || v.get_ref().chars().any(char::is_control) {
                err(&v.span(), format!("{label}: headers: `{k}` must be a header name with a one-line value, e.g. headers = {{ \"Content-Type\" = \"application/json\" }}"));
                ok = false;
            }
            cx.placeholders(&format!("{label}: headers: {k}"), v, err);
            headers.insert(k.clone(), Template(v.get_ref().clone()));
        }
    }
    if let Some(b) = &s.body {
        cx.placeholders(&format!("{label}: body"), b, err);
    }
    let hmac_secret_env = s.hmac_secret_env.as_ref().and_then(|e| {
        env_names(label, "hmac_secret_env", std::slice::from_ref(e), err)
            .and_then(|v| v.into_iter().next())
            .or_else(|| {
                ok = false;
                None
            })
    });
    let expect_status = s
        .expect_status
        .as_ref()
        .map(|e| e.get_ref().list())
        .unwrap_or_default();
    if let Some(e) = &s.expect_status {
        if expect_status.iter().any(|c| !(100..=599).contains(c)) {
            err(&e.span(), format!("{label}: expect_status takes HTTP statuses from 100 to 599, e.g. expect_status = [200, 204]"));
            ok = false;
        }
    }
    ok.then_some(StepKind::Http(HttpStep {
        method,
        url: Template(url.get_ref().clone()),
        headers,
        body: s.body.as_ref().map(|b| Template(b.get_ref().clone())),
        hmac_secret_env,
        expect_status,
    }))
}

fn probe(label: &str, s: &RawStep, cx: &Context<'_>, err: Report<'_>) -> Option<StepKind> {
    match (&s.probe, &s.probe_kind) {
        (Some(p), None) => {
            let inline_keys = s.url.is_some()
                || s.url_env.is_some()
                || s.address.is_some()
                || s.password_env.is_some()
                || s.expect_status.is_some();
            if inline_keys {
                err(&p.span(), format!("{label}: a step naming a configured probe takes no url, address or other probe keys (they are the [[probe]]'s)"));
                return None;
            }
            if cx.config.probes.iter().any(|c| &c.id == p.get_ref()) {
                Some(StepKind::Probe(ProbeRef::Named(p.get_ref().clone())))
            } else {
                let known: Vec<&str> = cx.config.probes.iter().map(|c| c.id.as_str()).collect();
                err(
                    &p.span(),
                    format!(
                        "{label}: probe `{}` is not a configured [[probe]]; accepted: {}",
                        p.get_ref(),
                        if known.is_empty() {
                            "none configured".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                None
            }
        }
        (None, Some(k)) => {
            let status = match &s.expect_status {
                Some(e) => match e.get_ref().list().as_slice() {
                    [one] => Some(Spanned::new(e.span(), *one)),
                    _ => {
                        err(&e.span(), format!("{label}: an inline http probe takes one expect_status, e.g. expect_status = 200"));
                        return None;
                    }
                },
                None => None,
            };
            let fields = ProbeFields {
                url: s.url.clone(),
                url_env: s.url_env.clone(),
                address: s.address.clone(),
                password_env: s.password_env.clone(),
                expect_status: status,
            };
            probe_spec(label, k, fields, err).map(|p| StepKind::Probe(ProbeRef::Inline(p)))
        }
        (Some(p), Some(_)) => {
            err(&p.span(), format!("{label}: give either `probe` (a configured [[probe]] id) or `probe_kind` with its keys, not both"));
            None
        }
        (None, None) => {
            err(&s.kind.span(), format!("{label}: a probe step needs `probe`, a configured [[probe]] id (e.g. probe = \"database\"), or `probe_kind` with its keys (e.g. probe_kind = \"tcp\", address = \"localhost:3306\")"));
            None
        }
    }
}

/// "levels 4, 5", for skip reasons.
pub(crate) fn levels_text(levels: &[LevelId]) -> String {
    format!(
        "level{} {}",
        if levels.len() == 1 { "" } else { "s" },
        join_levels(levels)
    )
}

use crate::domain::LevelId;
