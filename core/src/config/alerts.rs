//! Alert intake configuration: `[alerts]` (behaviour), `[[source]]` (who may send alerts and how
//! they prove it) and `[[route]]` (how an alert's labels become a level, components, a title and
//! a group).

use super::*;
use serde::Deserialize;
use toml::Spanned;

type Report<'a> = &'a mut dyn FnMut(&std::ops::Range<usize>, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Alertmanager,
    Grafana,
    Pagerduty,
    Generic,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Alertmanager => "alertmanager",
            SourceKind::Grafana => "grafana",
            SourceKind::Pagerduty => "pagerduty",
            SourceKind::Generic => "generic",
        }
    }
}

/// How a source proves itself. Each secret is named by the environment variable holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// No variable named: the credential is the kind the sender supports (bearer token, HMAC
    /// secret, routing key), generated on first start into the data folder.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer { token_env: String },
    /// `Authorization: Basic` (Alertmanager's `basic_auth`).
    Basic { user: String, password_env: String },
    /// HMAC-SHA256 of the body (Grafana: optionally of `timestamp:body` with a timestamp header;
    /// generic: of `timestamp.body`, see README).
    Hmac {
        secret_env: String,
        timestamp_header: Option<String>,
    },
    /// PagerDuty Events v2: the `routing_key` in the body.
    RoutingKey { key_env: String },
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub id: String,
    pub kind: SourceKind,
    pub credential: Credential,
    /// Sustained requests per second.
    pub rate_per_second: f64,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
    pub max_body: usize,
    /// Overrides `[alerts] quiet_period` for incidents this source opened. PagerDuty sources
    /// default to 0: in PagerDuty's contract a resolve event resolves.
    pub quiet_period: Option<Duration>,
}

/// One routing rule. Every matcher must hold; the first matching route wins.
#[derive(Debug, Clone)]
pub struct Route {
    /// Only alerts from this source id, when set.
    pub source: Option<String>,
    pub equals: Vec<(String, String)>,
    /// Anchored like Alertmanager's (`^(?:re)$`).
    pub regex: Vec<(String, regex::Regex)>,
    pub level: Option<LevelId>,
    pub components: Vec<ComponentId>,
    /// `{{ label }}` placeholders take labels and annotations.
    pub title: Option<String>,
    pub group_by: Vec<String>,
}

impl Route {
    pub fn matches(&self, source: &str, labels: &BTreeMap<String, String>) -> bool {
        self.source.as_deref().is_none_or(|s| s == source)
            && self.equals.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self
                .regex
                .iter()
                .all(|(k, re)| re.is_match(labels.get(k).map(String::as_str).unwrap_or("")))
    }
}

#[derive(Debug, Clone)]
pub struct HeartbeatConfig {
    /// Labels identifying the heartbeat alert (by default `alertname = "Watchdog"`).
    pub labels: Vec<(String, String)>,
    pub timeout: Duration,
    pub level: LevelId,
}

#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// After every alert of an alert-created incident resolves, how long it stays in
    /// post-recovery monitoring before resolving by itself.
    pub quiet_period: Duration,
    /// A re-fire this soon after the incident resolved reopens it instead of declaring anew.
    pub reopen_window: Duration,
    /// `flap_changes` state changes within `flap_window` mark an alert flapping.
    pub flap_changes: u32,
    pub flap_window: Duration,
    pub heartbeat: Option<HeartbeatConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            quiet_period: Duration::minutes(30),
            reopen_window: Duration::hours(1),
            flap_changes: 4,
            flap_window: Duration::minutes(30),
            heartbeat: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    quiet_period: Option<Spanned<String>>,
    reopen_window: Option<Spanned<String>>,
    flap_changes: Option<Spanned<u32>>,
    flap_window: Option<Spanned<String>>,
    heartbeat: Option<RawHeartbeat>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeartbeat {
    #[serde(rename = "match")]
    matchers: BTreeMap<String, String>,
    timeout: Option<Spanned<String>>,
    level: Option<Spanned<u8>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    id: Spanned<String>,
    kind: Spanned<String>,
    token_env: Option<Spanned<String>>,
    basic_user: Option<String>,
    basic_password_env: Option<Spanned<String>>,
    hmac_secret_env: Option<Spanned<String>>,
    timestamp_header: Option<String>,
    routing_key_env: Option<Spanned<String>>,
    rate: Option<Spanned<String>>,
    burst: Option<u32>,
    max_body: Option<Spanned<String>>,
    quiet_period: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    source: Option<String>,
    #[serde(rename = "match", default)]
    equals: BTreeMap<String, String>,
    #[serde(default)]
    match_re: BTreeMap<String, Spanned<String>>,
    level: Option<Spanned<u8>>,
    #[serde(default)]
    components: Vec<Spanned<String>>,
    title: Option<String>,
    #[serde(default)]
    group_by: Vec<String>,
}

fn duration_or(sp: Option<Spanned<String>>, default: Duration, err: Report<'_>) -> Duration {
    match sp {
        Some(s) => parse_duration(s.get_ref()).unwrap_or_else(|m| {
            err(&s.span(), m);
            default
        }),
        None => default,
    }
}

fn env_name(sp: &Spanned<String>, err: Report<'_>) -> String {
    super::raw::env_var_name(sp, err)
}

pub(super) fn parse_alerts(
    raw: Option<RawAlerts>,
    levels: &BTreeMap<LevelId, Level>,
    err: Report<'_>,
) -> AlertsConfig {
    let d = AlertsConfig::default();
    let Some(raw) = raw else { return d };
    let heartbeat = raw.heartbeat.map(|h| {
        let level = match h.level {
            Some(l) if !levels.contains_key(&LevelId(*l.get_ref())) => {
                err(
                    &l.span(),
                    format!(
                        "heartbeat level {} is not a configured [[level]]",
                        l.get_ref()
                    ),
                );
                LevelId(2)
            }
            Some(l) => LevelId(*l.get_ref()),
            None => LevelId(2),
        };
        HeartbeatConfig {
            labels: h.matchers.into_iter().collect(),
            timeout: duration_or(h.timeout, Duration::minutes(10), err),
            level,
        }
    });
    AlertsConfig {
        quiet_period: duration_or(raw.quiet_period, d.quiet_period, err),
        reopen_window: duration_or(raw.reopen_window, d.reopen_window, err),
        flap_changes: match raw.flap_changes {
            Some(n) if *n.get_ref() < 2 => {
                err(&n.span(), "flap_changes must be at least 2".into());
                d.flap_changes
            }
            Some(n) => n.into_inner(),
            None => d.flap_changes,
        },
        flap_window: duration_or(raw.flap_window, d.flap_window, err),
        heartbeat,
    }
}

/// `50/s`, `600/m`, `3600/h` → requests per second.
fn parse_rate(s: &str) -> Option<f64> {
    let (n, unit) = s.trim().split_once('/')?;
    let n: f64 = n.trim().parse().ok().filter(|n: &f64| *n > 0.0)?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return None,
    };
    Some(n / per)
}

/// `1MiB`, `512KiB`, `64kB`, `1048576` → bytes.
fn parse_size(s: &str) -> Option<usize> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: usize = n.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "KiB" => 1024,
        "MB" => 1_000_000,
        "MiB" => 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult).filter(|b| *b > 0)
}

pub(super) fn parse_sources(raw: Vec<RawSource>, err: Report<'_>) -> Vec<SourceConfig> {
    let mut out: Vec<SourceConfig> = Vec::new();
    for s in raw {
        let id = s.id.get_ref().clone();
        if !crate::domain::is_slug(&id) {
            err(
                &s.id.span(),
                format!(
                    "`{id}` is not a valid source id: use lowercase letters, digits, '-' and '_'"
                ),
            );
        }
        if out.iter().any(|o| o.id == id) {
            err(&s.id.span(), format!("duplicate source id `{id}`"));
            continue;
        }
        let kind = match s.kind.get_ref().as_str() {
            "alertmanager" => SourceKind::Alertmanager,
            "grafana" => SourceKind::Grafana,
            "pagerduty" => SourceKind::Pagerduty,
            "generic" => SourceKind::Generic,
            other => {
                err(&s.kind.span(), format!("unknown source kind `{other}`; accepted: alertmanager, grafana, pagerduty, generic"));
                continue;
            }
        };
        let credential = match (
            kind,
            &s.token_env,
            &s.basic_password_env,
            &s.hmac_secret_env,
            &s.routing_key_env,
        ) {
            (
                SourceKind::Alertmanager | SourceKind::Grafana | SourceKind::Generic,
                Some(t),
                None,
                None,
                None,
            ) => Credential::Bearer {
                token_env: env_name(t, err),
            },
            (SourceKind::Alertmanager, None, Some(p), None, None) => {
                let Some(user) = s.basic_user.clone() else {
                    err(&p.span(), "basic_password_env needs basic_user".into());
                    continue;
                };
                Credential::Basic {
                    user,
                    password_env: env_name(p, err),
                }
            }
            (SourceKind::Grafana | SourceKind::Generic, None, None, Some(h), None) => {
                Credential::Hmac {
                    secret_env: env_name(h, err),
                    timestamp_header: s.timestamp_header.clone().or_else(|| {
                        // The generic format always signs with a timestamp.
                        (kind == SourceKind::Generic).then(|| "X-Spotter-Timestamp".to_string())
                    }),
                }
            }
            (SourceKind::Pagerduty, None, None, None, Some(k)) => Credential::RoutingKey {
                key_env: env_name(k, err),
            },
            (_, None, None, None, None) => Credential::None,
            _ => {
                let accepted = match kind {
                    SourceKind::Alertmanager => "token_env, or basic_user + basic_password_env",
                    SourceKind::Grafana => "token_env or hmac_secret_env",
                    SourceKind::Pagerduty => "routing_key_env",
                    SourceKind::Generic => "hmac_secret_env (or token_env)",
                };
                err(
                    &s.kind.span(),
                    format!(
                        "source `{id}` of kind {}: set one credential: {accepted}",
                        kind.as_str()
                    ),
                );
                continue;
            }
        };
        let rate_per_second = match &s.rate {
            Some(r) => parse_rate(r.get_ref()).unwrap_or_else(|| {
                err(
                    &r.span(),
                    format!("bad rate `{}`: write it like 50/s, 600/m", r.get_ref()),
                );
                50.0
            }),
            None => 50.0,
        };
        let max_body = match &s.max_body {
            Some(m) => parse_size(m.get_ref()).unwrap_or_else(|| {
                err(
                    &m.span(),
                    format!(
                        "bad size `{}`: write it like 1MiB, 512KiB, 65536",
                        m.get_ref()
                    ),
                );
                1024 * 1024
            }),
            None => 1024 * 1024,
        };
        let burst = s
            .burst
            .unwrap_or_else(|| (rate_per_second * 2.0).ceil().max(1.0) as u32)
            .max(1);
        let quiet_period = match &s.quiet_period {
            Some(q) => match parse_duration(q.get_ref()) {
                Ok(d) => Some(d),
                Err(m) => {
                    err(&q.span(), m);
                    None
                }
            },
            None if kind == SourceKind::Pagerduty => Some(Duration::zero()),
            None => None,
        };
        out.push(SourceConfig {
            quiet_period,
            id,
            kind,
            credential,
            rate_per_second,
            burst,
            max_body,
        });
    }
    out
}

pub(super) fn parse_routes(
    raw: Vec<RawRoute>,
    levels: &BTreeMap<LevelId, Level>,
    components: &[Component],
    err: Report<'_>,
) -> Vec<Route> {
    let mut out = Vec::new();
    for r in raw {
        let mut regex = Vec::new();
        for (k, v) in r.match_re {
            match regex::Regex::new(&format!("^(?:{})$", v.get_ref())) {
                Ok(re) => regex.push((k, re)),
                Err(e) => err(
                    &v.span(),
                    format!("bad regular expression `{}`: {e}", v.get_ref()),
                ),
            }
        }
        let level = r.level.and_then(|l| {
            let id = LevelId(*l.get_ref());
            if levels.contains_key(&id) {
                Some(id)
            } else {
                err(
                    &l.span(),
                    format!("route level {id} is not a configured [[level]]"),
                );
                None
            }
        });
        let mut comps = Vec::new();
        for c in r.components {
            match components.iter().find(|x| x.id.as_str() == c.get_ref()) {
                Some(x) => comps.push(x.id.clone()),
                None => err(
                    &c.span(),
                    format!("route names unknown component `{}`", c.get_ref()),
                ),
            }
        }
        out.push(Route {
            source: r.source,
            equals: r.equals.into_iter().collect(),
            regex,
            level,
            components: comps,
            title: r.title,
            group_by: r.group_by,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_sizes_parse() {
        assert_eq!(parse_rate("50/s"), Some(50.0));
        assert_eq!(parse_rate("600/m"), Some(10.0));
        assert_eq!(parse_rate("fast"), None);
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("64kB"), Some(64_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("1GB"), None);
    }
}
