//! The kind-specific part of a `[[step]]`: an exec step's argv (never a shell string, a
//! placeholder only as a whole entry) and env names, an http step's request, a probe step's
//! probe (a configured one by id, or one written inline).

use super::file::{Context, Report};
use super::file_steps::{RawStep, SHELLS, SHELL_MESSAGE};
use super::model::*;
use super::template;
use crate::config::probes::{probe_spec, ProbeFields};
use crate::config::raw::is_env_name;
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

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

pub(crate) fn exec(
    label: &str,
    s: &RawStep,
    clean: bool,
    cx: &Context<'_>,
    err: Report<'_>,
) -> Option<StepKind> {
    let mut ok = true;
    let Some(argv) = &s.argv else {
        if !clean {
            return None;
        }
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
            // A shell's options come before its script; up to the script, a `-c` (or a
            // placeholder, whose value could be one) would make it run a string.
            let mut runs_string = false;
            for f in &entries[i + 1..] {
                let f = f.get_ref();
                let flag = f.starts_with('-');
                if flag && !f.starts_with("--") && f.contains('c') || f == "--command" {
                    runs_string = true;
                }
                if !template::names(f).is_empty() {
                    runs_string = true;
                }
                if !flag {
                    break;
                }
            }
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

pub(crate) fn http(
    label: &str,
    s: &RawStep,
    clean: bool,
    cx: &Context<'_>,
    err: Report<'_>,
) -> Option<StepKind> {
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
        if !clean {
            return None;
        }
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

pub(crate) fn probe(
    label: &str,
    s: &RawStep,
    clean: bool,
    cx: &Context<'_>,
    err: Report<'_>,
) -> Option<StepKind> {
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
        (None, None) if !clean => None,
        (None, None) => {
            err(&s.kind.span(), format!("{label}: a probe step needs `probe`, a configured [[probe]] id (e.g. probe = \"database\"), or `probe_kind` with its keys (e.g. probe_kind = \"tcp\", address = \"localhost:3306\")"));
            None
        }
    }
}
