//! `[runbooks]` (where runbook files live, how long an approval request stays open, what runs on
//! declare) and `[secrets]` (which environment variables hold secrets that must never reach
//! chat).

use super::*;
use serde::Deserialize;
use toml::Spanned;

type Report<'a> = &'a mut dyn FnMut(&std::ops::Range<usize>, String);

#[derive(Debug, Clone)]
pub struct RunbooksConfig {
    /// A directory of runbook files (`*.toml`). Unset: the built-in runbooks (the guide),
    /// written to `<data_dir>/builtin-runbooks` at start so their scripts match the binary.
    pub dir: Option<PathBuf>,
    /// An approval request not answered within this expires (the run is then refused).
    pub approval_ttl: Duration,
    /// The runbook started (pre-approved runbooks only run at once) when an incident is
    /// declared; `None` for none.
    pub on_declare: Option<String>,
    /// How many characters of a step's output tail are posted to chat.
    pub output_tail: usize,
}

impl Default for RunbooksConfig {
    fn default() -> Self {
        RunbooksConfig {
            dir: None,
            approval_ttl: Duration::minutes(15),
            on_declare: Some("emergency-response".into()),
            output_tail: 1500,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SecretsConfig {
    /// Environment variables whose values are redacted from every runbook output, timeline
    /// entry and chat post (beyond the ones the config names for its own secrets).
    pub env: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRunbooks {
    dir: Option<String>,
    approval_ttl: Option<Spanned<String>>,
    on_declare: Option<Spanned<String>>,
    output_tail: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecrets {
    env: Option<Vec<Spanned<String>>>,
}

pub(super) fn parse_runbooks(raw: Option<RawRunbooks>, err: Report<'_>) -> RunbooksConfig {
    let mut out = RunbooksConfig::default();
    let Some(raw) = raw else { return out };
    out.dir = raw.dir.filter(|d| !d.is_empty()).map(PathBuf::from);
    if let Some(t) = raw.approval_ttl {
        match parse_duration(t.get_ref()) {
            Ok(d) if d > Duration::zero() => out.approval_ttl = d,
            Ok(_) => err(
                &t.span(),
                "[runbooks] approval_ttl must be longer than 0, e.g. \"15m\"".into(),
            ),
            Err(m) => err(&t.span(), format!("[runbooks] approval_ttl: {m}")),
        }
    }
    if let Some(o) = raw.on_declare {
        if o.get_ref().is_empty() {
            out.on_declare = None;
        } else if is_runbook_name(o.get_ref()) {
            out.on_declare = Some(o.into_inner());
        } else {
            err(
                &o.span(),
                format!(
                    "[runbooks] on_declare: `{}` is not a runbook name (lowercase letters, digits and '-', e.g. \"emergency-response\"; \"\" for none)",
                    o.get_ref()
                ),
            );
        }
    }
    if let Some(t) = raw.output_tail {
        out.output_tail = *t.get_ref() as usize;
    }
    out
}

pub(super) fn parse_secrets(raw: Option<RawSecrets>, err: Report<'_>) -> SecretsConfig {
    SecretsConfig {
        env: raw
            .and_then(|s| s.env)
            .unwrap_or_default()
            .iter()
            .map(|e| super::raw::env_var_name(e, err))
            .collect(),
    }
}

/// `[a-z0-9][a-z0-9-]*`, at most 64: what `/runbook run name:` takes.
pub(crate) fn is_runbook_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// "a tcp", "an http", "an exec": the article for a kind's name in messages.
pub(crate) fn a_an(word: &str) -> String {
    let an = word.starts_with(['a', 'e', 'i', 'o', 'u']) || word.starts_with("http");
    format!("{} {word}", if an { "an" } else { "a" })
}
