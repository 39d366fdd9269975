//! The file as written, with places. Only this module knows about spans.

use super::document::{Document, Reader};
use super::*;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use toml::Spanned;

/// The file's tables, each read on its own (see [`super::document`]).
#[derive(Default)]
struct RawConfig {
    server: Option<RawServer>,
    database: Option<RawDatabase>,
    api: Option<RawApi>,
    outbox: Option<RawOutbox>,
    level: Vec<RawLevel>,
    rpo: Vec<RawRpo>,
    component: Vec<RawComponent>,
    person: Vec<super::paging::RawPerson>,
    team: Vec<super::paging::RawTeam>,
    rotation: Vec<super::paging::RawRotation>,
    escalation: Vec<super::paging::RawEscalation>,
    smtp: Option<super::delivery::RawSmtp>,
    paging: Option<super::delivery::RawPaging>,
    discord: Option<super::discord::RawDiscord>,
    alerts: Option<super::alerts::RawAlerts>,
    source: Vec<super::alerts::RawSource>,
    route: Vec<super::alerts::RawRoute>,
    audit: Option<super::upkeep::RawAudit>,
    jobs: Option<super::upkeep::RawJobs>,
    retention: Option<super::upkeep::RawRetention>,
    limits: Option<super::limits::RawLimits>,
    status: Option<super::status::RawStatus>,
    runbooks: Option<super::runbooks::RawRunbooks>,
    secrets: Option<super::runbooks::RawSecrets>,
    probe: Option<Vec<super::probes::RawProbe>>,
    /// Tables with an element that could not be read: checks that would only repeat the
    /// problem ("names unknown person") stand down for them.
    incomplete: HashSet<String>,
}

const TABLES: &str = "[server], [database], [api], [outbox], [[level]], [[rpo]], [[component]], \
    [[person]], [[team]], [[rotation]], [[escalation]], [smtp], [paging], [discord], [alerts], [[source]], [[route]], [audit], \
    [jobs], [retention], [limits], [runbooks], [secrets], [[probe]], [status]";

impl RawConfig {
    /// Reads every table; each problem goes to `err`.
    fn read(doc: Document<'_>, err: &mut dyn FnMut(&std::ops::Range<usize>, String)) -> RawConfig {
        let mut r = Reader::default();
        let mut raw = RawConfig::default();
        for (key, key_span, value) in doc.tables {
            match key.as_str() {
                "server" => raw.server = r.table(&key, value),
                "database" => raw.database = r.table(&key, value),
                "api" => raw.api = r.table(&key, value),
                "outbox" => raw.outbox = r.table(&key, value),
                "discord" => raw.discord = r.table(&key, value),
                "alerts" => raw.alerts = r.table(&key, value),
                "level" => raw.level = r.array(&key, value, Some("id")),
                "rpo" => raw.rpo = r.array(&key, value, Some("data")),
                "component" => raw.component = r.array(&key, value, Some("id")),
                "person" => raw.person = r.array(&key, value, Some("id")),
                "team" => raw.team = r.array(&key, value, Some("id")),
                "rotation" => raw.rotation = r.array(&key, value, Some("id")),
                "smtp" => raw.smtp = r.table(&key, value),
                "paging" => raw.paging = r.table(&key, value),
                "escalation" => raw.escalation = r.array(&key, value, Some("level")),
                "source" => raw.source = r.array(&key, value, Some("id")),
                "route" => raw.route = r.array(&key, value, None),
                "audit" => raw.audit = r.table(&key, value),
                "jobs" => raw.jobs = r.table(&key, value),
                "retention" => raw.retention = r.table(&key, value),
                "limits" => raw.limits = r.table(&key, value),
                "status" => raw.status = r.table(&key, value),
                "runbooks" => raw.runbooks = r.table(&key, value),
                "secrets" => raw.secrets = r.table(&key, value),
                "probe" => raw.probe = Some(r.array(&key, value, Some("id"))),
                other => err(
                    &key_span,
                    format!("unknown table `{other}`; accepted: {TABLES}"),
                ),
            }
        }
        for (span, message) in r.problems {
            err(&span, message);
        }
        raw.incomplete = r.incomplete.into_iter().collect();
        raw
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    public_url: Option<String>,
    data_dir: Option<String>,
    trusted_proxies: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<Spanned<String>>,
    max_connections: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    token_env: Option<Spanned<String>>,
    shared_token_role: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    max_attempts: Option<Spanned<u32>>,
    retry_base: Option<Spanned<String>>,
    retry_max: Option<Spanned<String>>,
    alert_hold: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    id: Spanned<u8>,
    name: String,
    #[serde(default)]
    description: String,
    rto: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRpo {
    data: String,
    target: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    id: Spanned<String>,
    name: String,
}

/// Turns byte offsets into 1-based line and column (in characters).
pub(crate) struct Lines<'a>(pub &'a str);

impl Lines<'_> {
    pub(crate) fn at(&self, offset: usize, message: impl Into<String>) -> ConfigIssue {
        let offset = offset.min(self.0.len());
        let before = &self.0[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        ConfigIssue {
            line,
            col,
            message: message.into(),
        }
    }
}

pub(super) fn parse(text: &str) -> Result<Config, Vec<ConfigIssue>> {
    let lines = Lines(text);
    let doc = Document::parse(text).map_err(|problems| {
        problems
            .into_iter()
            .map(|(at, m)| lines.at(at.start, m))
            .collect::<Vec<_>>()
    })?;
    let mut issues = Vec::new();
    let mut err = |s: &std::ops::Range<usize>, m: String| issues.push(lines.at(s.start, m));
    let mut raw = RawConfig::read(doc, &mut err);
    let incomplete_tables = std::mem::take(&mut raw.incomplete);
    let incomplete = |t: &str| incomplete_tables.contains(t);

    let duration = |sp: &Spanned<String>, err: &mut dyn FnMut(&std::ops::Range<usize>, String)| {
        parse_duration(sp.get_ref())
            .map_err(|m| err(&sp.span(), m))
            .ok()
    };

    // [server], [database], [api], [outbox]: every key optional, defaults from the guide's file.
    let server = raw.server.unwrap_or(RawServer {
        listen: None,
        public_url: None,
        data_dir: None,
        trusted_proxies: None,
    });
    let listen = server.listen.map(|l| {
        if l.get_ref().parse::<std::net::SocketAddr>().is_err() {
            err(
                &l.span(),
                format!(
                    "bad listen address `{}`: write it like 127.0.0.1:8080",
                    l.get_ref()
                ),
            );
        }
        l.into_inner()
    });
    let listen = listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let public_url = server
        .public_url
        .unwrap_or_else(|| format!("http://{listen}"));
    let server = ServerConfig {
        listen,
        public_url,
        data_dir: PathBuf::from(server.data_dir.unwrap_or_else(|| "data".into())),
        trusted_proxies: super::limits::parse_trusted_proxies(server.trusted_proxies, &mut err),
    };

    let db = raw.database.unwrap_or(RawDatabase {
        url: None,
        max_connections: None,
    });
    let url = match db.url {
        Some(u) => {
            let s = u.get_ref();
            if !(s.starts_with("sqlite:")
                || s.starts_with("postgres://")
                || s.starts_with("postgresql://"))
            {
                err(&u.span(), format!("unsupported database url `{}`: use sqlite://PATH or postgres://USER@HOST/DB", redact_url(s)));
            }
            u.into_inner()
        }
        None => "sqlite://data/spotter.db".into(),
    };
    let max_connections = match db.max_connections {
        Some(m) if *m.get_ref() == 0 => {
            err(&m.span(), "max_connections must be at least 1".into());
            1
        }
        Some(m) => m.into_inner(),
        None => 8,
    };
    let database = DatabaseConfig {
        url,
        max_connections,
    };

    let (token_env, shared_role) = match raw.api {
        Some(a) => (a.token_env, a.shared_token_role),
        None => (None, None),
    };
    let token_env = match token_env {
        Some(t) => env_var_name(&t, &mut err),
        None => "SPOTTER_API_TOKEN".into(),
    };
    let shared_token_role = match shared_role {
        Some(r) => r.get_ref().parse::<Role>().unwrap_or_else(|m| {
            err(&r.span(), format!("shared_token_role: {m}"));
            Role::Responder
        }),
        None => Role::Responder,
    };
    let api = ApiConfig {
        token_env,
        shared_token_role,
    };

    let ob = raw.outbox.unwrap_or(RawOutbox {
        max_attempts: None,
        retry_base: None,
        retry_max: None,
        alert_hold: None,
    });
    let outbox = OutboxConfig {
        max_attempts: match ob.max_attempts {
            Some(m) if *m.get_ref() == 0 => {
                err(&m.span(), "max_attempts must be at least 1".into());
                1
            }
            Some(m) => m.into_inner(),
            None => 12,
        },
        retry_base: ob
            .retry_base
            .and_then(|d| duration(&d, &mut err))
            .unwrap_or(Duration::seconds(2)),
        retry_max: ob
            .retry_max
            .and_then(|d| duration(&d, &mut err))
            .unwrap_or(Duration::minutes(5)),
        alert_hold: match ob.alert_hold {
            Some(d) => match duration(&d, &mut err) {
                // A hold is for merging a burst, not for sitting on news of an incident.
                Some(h) if h > Duration::minutes(1) => {
                    err(&d.span(), "alert_hold must be at most 1m".into());
                    Duration::seconds(2)
                }
                Some(h) => h,
                None => Duration::seconds(2),
            },
            None => Duration::seconds(2),
        },
    };

    // Levels.
    let mut levels = BTreeMap::new();
    let mut level_spans = BTreeMap::new();
    for l in raw.level {
        let id = LevelId(*l.id.get_ref());
        if id.0 == 0 {
            err(&l.id.span(), "level ids start at 1".into());
            continue;
        }
        if levels.contains_key(&id) {
            err(&l.id.span(), format!("duplicate level id {id}"));
            continue;
        }
        // A bad rto is reported once; the level is still known, so nothing downstream repeats it.
        let rto = duration(&l.rto, &mut err).unwrap_or_else(Duration::zero);
        level_spans.insert(id, l.id.span());
        levels.insert(
            id,
            Level {
                id,
                name: l.name,
                description: l.description,
                rto,
            },
        );
    }
    if levels.is_empty() && !incomplete("level") {
        err(
            &(0..0),
            "no [[level]] is defined; at least one is needed".into(),
        );
    }

    let rpo = raw
        .rpo
        .into_iter()
        .filter_map(|r| {
            duration(&r.target, &mut err).map(|target| Rpo {
                data: r.data,
                target,
            })
        })
        .collect();

    let mut components = Vec::new();
    let mut seen_components = HashSet::new();
    for c in raw.component {
        match c.id.get_ref().parse::<ComponentId>() {
            Err(m) => err(&c.id.span(), m),
            Ok(id) if !seen_components.insert(id.clone()) => {
                err(&c.id.span(), format!("duplicate component id `{id}`"))
            }
            Ok(id) => components.push(Component { id, name: c.name }),
        }
    }

    let paging = super::paging::parse(
        super::paging::Tables {
            person: raw.person,
            team: raw.team,
            rotation: raw.rotation,
            escalation: raw.escalation,
            smtp: raw.smtp,
            paging: raw.paging,
        },
        &levels,
        &level_spans,
        &incomplete,
        &mut err,
    );

    let discord = raw.discord.map(|d| super::discord::parse(d, &mut err));
    let alerts = super::alerts::parse_alerts(raw.alerts, &levels, &mut err);
    let sources = super::alerts::parse_sources(raw.source, &mut err);
    let routes = super::alerts::parse_routes(raw.route, &levels, &components, &mut err);
    let audit = super::upkeep::parse_audit(raw.audit, &mut err);
    let jobs = super::upkeep::parse_jobs(raw.jobs, &mut err);
    let retention = super::upkeep::parse_retention(raw.retention, &mut err);
    let limits = super::limits::parse_limits(raw.limits, &mut err);
    let runbooks = super::runbooks::parse_runbooks(raw.runbooks, &mut err);
    let secrets = super::runbooks::parse_secrets(raw.secrets, &mut err);
    let probes = super::probes::parse_probes(raw.probe, &components, &mut err);
    let status = super::status::parse_status(raw.status, &levels, &components, &mut err);

    if !issues.is_empty() {
        issues.sort_by_key(|i| (i.line, i.col));
        return Err(issues);
    }
    Ok(Config {
        server,
        database,
        api,
        outbox,
        levels,
        rpo,
        components,
        people: paging.people,
        teams: paging.teams,
        rotations: paging.rotations,
        escalation: paging.escalation,
        smtp: paging.smtp,
        paging: paging.paging,
        discord,
        alerts,
        sources,
        routes,
        audit,
        jobs,
        retention,
        limits,
        runbooks,
        secrets,
        probes,
        status,
    })
}

/// The name of an environment variable holding a secret, checked (the value is never in config).
pub(super) fn env_var_name(
    sp: &Spanned<String>,
    err: &mut dyn FnMut(&std::ops::Range<usize>, String),
) -> String {
    if !is_env_name(sp.get_ref()) {
        err(
            &sp.span(),
            format!(
                "`{}` is not an environment variable name (A-Z, 0-9, _)",
                sp.get_ref()
            ),
        );
    }
    sp.get_ref().clone()
}

pub(crate) fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
