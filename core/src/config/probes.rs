//! `[[probe]]`: the guide's system status check, one dependency each. Runbook steps name a
//! probe by id or write one inline; both are read by [`probe_spec`].

use super::runbooks::a_an;
use super::*;
use serde::Deserialize;
use toml::Spanned;

type Report<'a> = &'a mut dyn FnMut(&std::ops::Range<usize>, String);

/// A check of one dependency (the guide's system status check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeSpec {
    /// GET `url`; healthy when the status is `expect_status` (default 200).
    Http { url: String, expect_status: u16 },
    /// A TCP connect to `host:port`.
    Tcp { address: String },
    /// `SELECT 1` over MySQL/MariaDB; the URL (it may hold a password) comes from `url_env`
    /// when set, else `url`.
    Mysql {
        url: Option<String>,
        url_env: Option<String>,
    },
    /// `SELECT 1` over PostgreSQL, likewise.
    Postgres {
        url: Option<String>,
        url_env: Option<String>,
    },
    /// Redis `PING` → `PONG` at `host:port` (a password from `password_env` when set).
    Redis {
        address: String,
        password_env: Option<String>,
    },
}

impl ProbeSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeSpec::Http { .. } => "http",
            ProbeSpec::Tcp { .. } => "tcp",
            ProbeSpec::Mysql { .. } => "mysql",
            ProbeSpec::Postgres { .. } => "postgres",
            ProbeSpec::Redis { .. } => "redis",
        }
    }
}

/// A configured probe: `[[probe]]` in the configuration.
#[derive(Debug, Clone)]
pub struct Probe {
    pub id: String,
    /// The component it checks, when it checks one (`database`).
    pub component: Option<crate::domain::ComponentId>,
    pub spec: ProbeSpec,
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    id: Spanned<String>,
    component: Option<Spanned<String>>,
    kind: Spanned<String>,
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    expect_status: Option<Spanned<u16>>,
    timeout: Option<Spanned<String>>,
}

/// The kind-specific keys of a probe, shared by `[[probe]]` and a runbook's inline probe step.
#[derive(Default)]
pub(crate) struct ProbeFields {
    pub url: Option<Spanned<String>>,
    pub url_env: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub expect_status: Option<Spanned<u16>>,
}

/// The probes: the file's `[[probe]]`s, or the guide's four when it has none.
pub(super) fn parse_probes(
    raw: Option<Vec<RawProbe>>,
    components: &[Component],
    err: Report<'_>,
) -> Vec<Probe> {
    let Some(raw) = raw else {
        return guide_probes(components);
    };
    let mut out: Vec<Probe> = Vec::new();
    // Ids seen, also of probes with a problem: a second one is still a duplicate.
    let mut seen: Vec<String> = Vec::new();
    for p in raw {
        let id = p.id.get_ref();
        if !crate::domain::is_slug(id) {
            err(
                &p.id.span(),
                format!(
                    "[[probe]] id `{id}` is not valid: use lowercase letters, digits, '-' and '_', e.g. \"database\""
                ),
            );
            continue;
        }
        if seen.contains(id) {
            err(&p.id.span(), format!("duplicate [[probe]] id `{id}`"));
            continue;
        }
        seen.push(id.clone());
        let component = p.component.and_then(|c| {
            match components.iter().find(|k| k.id.as_str() == c.get_ref()) {
                Some(k) => Some(k.id.clone()),
                None => {
                    err(
                        &c.span(),
                        format!(
                            "[[probe]] `{id}`: component `{}` is not a configured [[component]]; accepted: {}",
                            c.get_ref(),
                            if components.is_empty() {
                                "none configured".to_string()
                            } else {
                                components.iter().map(|k| k.id.as_str()).collect::<Vec<_>>().join(", ")
                            }
                        ),
                    );
                    None
                }
            }
        });
        let timeout = match p.timeout {
            None => Duration::seconds(5),
            Some(t) => match parse_duration(t.get_ref()) {
                Ok(d) if d > Duration::zero() => d,
                Ok(_) => {
                    err(
                        &t.span(),
                        format!("[[probe]] `{id}`: timeout must be longer than 0, e.g. \"5s\""),
                    );
                    Duration::seconds(5)
                }
                Err(m) => {
                    err(&t.span(), format!("[[probe]] `{id}`: timeout: {m}"));
                    Duration::seconds(5)
                }
            },
        };
        let label = format!("[[probe]] `{id}`");
        let fields = ProbeFields {
            url: p.url,
            url_env: p.url_env,
            address: p.address,
            password_env: p.password_env,
            expect_status: p.expect_status,
        };
        if let Some(spec) = probe_spec(&label, &p.kind, fields, err) {
            out.push(Probe {
                id: id.clone(),
                component,
                spec,
                timeout,
            });
        }
    }
    out
}

/// The guide's system status check: the API's health endpoint, the frontend, the database and
/// the cache.
fn guide_probes(components: &[Component]) -> Vec<Probe> {
    let component = |id: &str| {
        components
            .iter()
            .find(|c| c.id.as_str() == id)
            .map(|c| c.id.clone())
    };
    let probe = |id: &str, spec: ProbeSpec| Probe {
        id: id.into(),
        component: component(id),
        spec,
        timeout: Duration::seconds(5),
    };
    vec![
        probe(
            "application",
            ProbeSpec::Http {
                url: "http://localhost:8000/api/health/".into(),
                expect_status: 200,
            },
        ),
        probe(
            "frontend",
            ProbeSpec::Http {
                url: "http://localhost:3000/".into(),
                expect_status: 200,
            },
        ),
        probe(
            "database",
            ProbeSpec::Mysql {
                url: Some("mysql://workout_user@localhost:3306/workout_tracker".into()),
                url_env: Some("WORKOUT_DB_URL".into()),
            },
        ),
        probe(
            "cache",
            ProbeSpec::Redis {
                address: "localhost:6379".into(),
                password_env: None,
            },
        ),
    ]
}

pub(crate) const PROBE_KINDS: &str = "http, tcp, mysql, postgres, redis";

/// A probe of `kind` from its keys; each key that does not belong to the kind, and each
/// missing one, is reported.
pub(crate) fn probe_spec(
    label: &str,
    kind: &Spanned<String>,
    f: ProbeFields,
    err: Report<'_>,
) -> Option<ProbeSpec> {
    let k = kind.get_ref().as_str();
    let allowed: &[&str] = match k {
        "http" => &["url", "expect_status"],
        "tcp" => &["address"],
        "mysql" | "postgres" => &["url", "url_env"],
        "redis" => &["address", "password_env"],
        other => {
            err(
                &kind.span(),
                format!("{label}: unknown probe kind `{other}`; accepted: {PROBE_KINDS}"),
            );
            return None;
        }
    };
    let present: [(&str, Option<std::ops::Range<usize>>); 5] = [
        ("url", f.url.as_ref().map(|s| s.span())),
        ("url_env", f.url_env.as_ref().map(|s| s.span())),
        ("address", f.address.as_ref().map(|s| s.span())),
        ("password_env", f.password_env.as_ref().map(|s| s.span())),
        ("expect_status", f.expect_status.as_ref().map(|s| s.span())),
    ];
    let mut ok = true;
    for (key, span) in &present {
        if let Some(span) = span {
            if !allowed.contains(key) {
                err(
                    span,
                    format!(
                        "{label}: `{key}` is not used by {} probe; accepted: {}",
                        a_an(k),
                        allowed.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    let env = |e: &Option<Spanned<String>>, err: Report<'_>| {
        e.as_ref().map(|e| super::raw::env_var_name(e, err))
    };
    let mut need = |what: &str, example: &str, err: Report<'_>| {
        err(
            &kind.span(),
            format!(
                "{label}: {} probe needs `{what}`, e.g. {what} = {example}",
                a_an(k)
            ),
        );
        ok = false;
    };
    let spec = match k {
        "http" => match &f.url {
            Some(u)
                if u.get_ref().starts_with("http://") || u.get_ref().starts_with("https://") =>
            {
                Some(ProbeSpec::Http {
                    url: u.get_ref().clone(),
                    expect_status: f
                        .expect_status
                        .as_ref()
                        .map(|s| *s.get_ref())
                        .unwrap_or(200),
                })
            }
            Some(u) => {
                err(
                    &u.span(),
                    format!(
                        "{label}: `{}` is not an http(s) URL, e.g. \"http://localhost:8000/api/health/\"",
                        redact_url(u.get_ref())
                    ),
                );
                None
            }
            None => {
                need("url", "\"http://localhost:8000/api/health/\"", err);
                None
            }
        },
        "tcp" | "redis" => match &f.address {
            Some(a)
                if a.get_ref()
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
            {
                if k == "tcp" {
                    Some(ProbeSpec::Tcp {
                        address: a.get_ref().clone(),
                    })
                } else {
                    Some(ProbeSpec::Redis {
                        address: a.get_ref().clone(),
                        password_env: env(&f.password_env, err),
                    })
                }
            }
            Some(a) => {
                err(
                    &a.span(),
                    format!(
                        "{label}: address `{}` must be HOST:PORT, e.g. \"localhost:6379\"",
                        a.get_ref()
                    ),
                );
                None
            }
            None => {
                need("address", "\"localhost:6379\"", err);
                None
            }
        },
        _ => {
            let scheme: &[&str] = if k == "mysql" {
                &["mysql://", "mariadb://"]
            } else {
                &["postgres://", "postgresql://"]
            };
            let url = match &f.url {
                Some(u) if scheme.iter().any(|s| u.get_ref().starts_with(s)) => {
                    Some(u.get_ref().clone())
                }
                Some(u) => {
                    err(
                        &u.span(),
                        format!(
                            "{label}: `{}` is not a {k} URL, e.g. \"{}user@localhost/db\"",
                            redact_url(u.get_ref()),
                            scheme[0]
                        ),
                    );
                    None
                }
                None => None,
            };
            let url_env = env(&f.url_env, err);
            if f.url.is_none() && url_env.is_none() {
                need("url or url_env", "\"WORKOUT_DB_URL\"", err);
            }
            if k == "mysql" {
                Some(ProbeSpec::Mysql { url, url_env })
            } else {
                Some(ProbeSpec::Postgres { url, url_env })
            }
        }
    };
    spec.filter(|_| ok)
}
