//! The rules of one `[[step]]`: which keys its kind takes, argv lists that never reach a shell,
//! placeholders only as whole argv entries, env names, approvals for destructive steps.

use super::file::{join_levels, role, Context, Report};
use super::file_actions::{exec, http, probe};
use super::model::*;
use crate::config::parse_duration;
use crate::domain::LevelId;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub(crate) id: Spanned<String>,
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) kind: Spanned<String>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) destructive: Option<Spanned<bool>>,
    pub(crate) approvals: Option<Spanned<u32>>,
    pub(crate) approver_role: Option<Spanned<String>>,
    pub(crate) levels: Option<Spanned<Vec<Spanned<u8>>>>,
    pub(crate) on_failure: Option<Spanned<String>>,
    // exec
    pub(crate) argv: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) env: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) set_env: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub(crate) workdir: Option<Spanned<String>>,
    // http
    pub(crate) method: Option<Spanned<String>>,
    pub(crate) url: Option<Spanned<String>>,
    pub(crate) headers: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub(crate) body: Option<Spanned<String>>,
    pub(crate) hmac_secret_env: Option<Spanned<String>>,
    pub(crate) expect_status: Option<Spanned<StatusList>>,
    // probe
    pub(crate) probe: Option<Spanned<String>>,
    pub(crate) probe_kind: Option<Spanned<String>>,
    pub(crate) address: Option<Spanned<String>>,
    pub(crate) url_env: Option<Spanned<String>>,
    pub(crate) password_env: Option<Spanned<String>>,
    // manual
    pub(crate) instructions: Option<Spanned<String>>,
}

/// `expect_status = 200` or `[200, 204]`.
pub(crate) enum StatusList {
    One(u16),
    Many(Vec<u16>),
}

impl<'de> Deserialize<'de> for StatusList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StatusList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an HTTP status or a list of them, e.g. 200 or [200, 204]")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StatusList, E> {
                u16::try_from(v)
                    .map(StatusList::One)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StatusList, E> {
                u16::try_from(v)
                    .map(StatusList::One)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<StatusList, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element::<u16>()? {
                    out.push(v);
                }
                Ok(StatusList::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl StatusList {
    pub(crate) fn list(&self) -> Vec<u16> {
        match self {
            StatusList::One(s) => vec![*s],
            StatusList::Many(v) => v.clone(),
        }
    }
}

/// Programs that run a string as a script: never as a step's program with `-c`.
pub(crate) const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox",
];

pub(crate) const SHELL_MESSAGE: &str = "runbook steps are argv lists, never shell strings: put the commands in a script and run it, e.g. argv = [\"scripts/db-restore.sh\", \"{{recovery_date}}\"]";

/// Checks one step. `clean`: it read without a problem (when it did not, a key taken out for
/// its type is not reported missing again).
pub(crate) fn check_step(
    label: &str,
    s: RawStep,
    clean: bool,
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
    let present = [
        ("argv", s.argv.as_ref().map(|v| v.span())),
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
                        "{label}: `{key}` does not belong to {} step; its keys: {}",
                        crate::config::runbooks::a_an(kind),
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
        "exec" => exec(label, &s, clean, cx, err),
        "http" => http(label, &s, clean, cx, err),
        "probe" => {
            let p = probe(label, &s, clean, cx, err);
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
            _ if !clean => None,
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

/// "levels 4, 5", for skip reasons.
pub(crate) fn levels_text(levels: &[LevelId]) -> String {
    format!(
        "level{} {}",
        if levels.len() == 1 { "" } else { "s" },
        join_levels(levels)
    )
}
