//! Configuration: TOML in, a validated [`Config`] out.
//!
//! Parsing happens in two layers. `raw` mirrors the file with [`toml::Spanned`] wherever a later
//! check needs to point at a place, and rejects unknown keys; [`Config::from_toml`] then checks the
//! cross-references (tiers naming people, duplicate ids, levels without escalation) and reports
//! every problem as `FILE:LINE:COL: message`, the form editors and CI logs understand.
//!
//! The built-in default is the commented file `default.toml`, compiled in, so `spotter config
//! default` prints exactly what runs when no file is given.

mod alerts;
mod delivery;
mod discord;
pub(crate) mod document;
mod limits;
mod paging;
pub(crate) mod probes;
pub(crate) mod raw;
pub(crate) mod runbooks;
mod status;
mod upkeep;
pub use alerts::{AlertsConfig, Credential, HeartbeatConfig, Route, SourceConfig, SourceKind};
pub use delivery::{ContactMethod, PagingConfig, SmtpConfig, SmtpTls};
pub use discord::{DiscordConfig, DiscordMode, IncidentChannels};
pub use limits::{AddressRange, LimitsConfig};
pub use paging::{Escalation, EscalationTier, Person, Rotation, Shift, Target, Team};
pub use probes::{Probe, ProbeSpec};
pub use runbooks::{RunbooksConfig, SecretsConfig};
pub use status::{StatusConfig, StatusTemplates, TemplateField, TemplateOverride};
pub use upkeep::{AuditConfig, JobsConfig, RetentionConfig};

use crate::domain::{Channel, ComponentId, LevelId, PersonId, Role, RoleSet};
use chrono::Duration;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The commented default configuration, reproducing the disaster-recovery guide.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub api: ApiConfig,
    pub outbox: OutboxConfig,
    pub levels: BTreeMap<LevelId, Level>,
    pub rpo: Vec<Rpo>,
    pub components: Vec<Component>,
    pub people: BTreeMap<PersonId, Person>,
    pub teams: BTreeMap<String, Team>,
    /// On-call rotations, by id.
    pub rotations: BTreeMap<String, Rotation>,
    pub escalation: BTreeMap<LevelId, Escalation>,
    /// The mail server for `email` pages, when configured.
    pub smtp: Option<SmtpConfig>,
    pub paging: PagingConfig,
    /// The Discord bot, when configured.
    pub discord: Option<DiscordConfig>,
    /// Alert intake behaviour, sources and routes.
    pub alerts: AlertsConfig,
    pub sources: Vec<SourceConfig>,
    pub routes: Vec<Route>,
    pub audit: AuditConfig,
    pub jobs: JobsConfig,
    pub retention: RetentionConfig,
    /// Per-client budgets of the HTTP server.
    pub limits: LimitsConfig,
    /// Where runbooks come from and how runs behave.
    pub runbooks: RunbooksConfig,
    /// Environment variables whose values are redacted everywhere.
    pub secrets: SecretsConfig,
    /// The dependencies a status check probes (`[[probe]]`; the guide's four when none is
    /// given).
    pub probes: Vec<Probe>,
    /// The public status page.
    pub status: StatusConfig,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub public_url: String,
    pub data_dir: PathBuf,
    /// Reverse proxies whose `X-Forwarded-For` names the client (empty: the peer is the client).
    pub trusted_proxies: Vec<AddressRange>,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Name of the environment variable holding the shared API bearer token (never the token
    /// itself).
    pub token_env: String,
    /// The most the shared token may do: a request through it acts as the person it names, with
    /// that person's roles capped at this one (naming an admin does not grant admin). Per-person
    /// tokens (`spotter token create`) act with their person's full roles.
    pub shared_token_role: Role,
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long a post about an alert may wait for more of them, so that a storm's alert
    /// events become one post per incident every few seconds (zero: no waiting; bursts still
    /// merge while a post is in flight).
    pub alert_hold: Duration,
}

#[derive(Debug, Clone)]
pub struct Level {
    pub id: LevelId,
    pub name: String,
    pub description: String,
    pub rto: Duration,
}

#[derive(Debug, Clone)]
pub struct Rpo {
    pub data: String,
    pub target: Duration,
}

#[derive(Debug, Clone)]
pub struct Component {
    pub id: ComponentId,
    pub name: String,
}

/// One problem found in a configuration file, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// All problems found in one file, printed as `FILE:LINE:COL: message`, one a line.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: String,
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, issue.line, issue.col, issue.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// The built-in default (the guide).
    pub fn builtin() -> Config {
        Config::from_toml(DEFAULT_TOML, "<built-in>").expect("the built-in configuration is valid")
    }

    /// Parses and validates a configuration file's text. `file` names it in error messages.
    ///
    /// # Errors
    /// Every problem found, each with its line and column: syntax, unknown keys, bad values
    /// (durations, roles, ids), and broken cross-references.
    pub fn from_toml(text: &str, file: &str) -> Result<Config, ConfigErrors> {
        raw::parse(text).map_err(|issues| ConfigErrors {
            file: file.to_string(),
            issues,
        })
    }

    /// Reads a file; an unreadable file is reported at 1:1.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::from_toml(&text, &file),
            Err(e) => Err(ConfigErrors {
                file,
                issues: vec![ConfigIssue {
                    line: 1,
                    col: 1,
                    message: format!("cannot read the file: {e}"),
                }],
            }),
        }
    }

    /// Applies the documented environment overrides: `SPOTTER_DATABASE_URL`, `SPOTTER_LISTEN`.
    /// (`SPOTTER_CONFIG` picks the file; `SPOTTER_API_TOKEN` is the default `api.token_env`.)
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(url) = get("SPOTTER_DATABASE_URL").filter(|v| !v.is_empty()) {
            self.database.url = url;
        }
        if let Some(listen) = get("SPOTTER_LISTEN").filter(|v| !v.is_empty()) {
            // A public_url that only mirrored the old listen address follows the new one, so
            // `spotter chat` still finds the server.
            if self.server.public_url == format!("http://{}", self.server.listen) {
                self.server.public_url = format!("http://{listen}");
            }
            self.server.listen = listen;
        }
    }

    /// The outbox channels that carry incident conversations (chat posts and the incident card):
    /// the log always, Discord when configured.
    pub fn chat_channels(&self) -> Vec<Channel> {
        let mut out = vec![Channel::Log];
        if self.discord.is_some() {
            out.push(Channel::Discord);
        }
        out
    }

    pub fn level(&self, id: LevelId) -> Option<&Level> {
        self.levels.get(&id)
    }

    /// "1 Service Degradation, 2 Partial System Failure, …" for error messages and help.
    pub fn level_choices(&self) -> String {
        self.levels
            .values()
            .map(|l| format!("{} {}", l.id, l.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn level_range(&self) -> String {
        match (self.levels.keys().next(), self.levels.keys().last()) {
            (Some(a), Some(b)) if a != b => format!("{a}-{b}"),
            (Some(a), _) => a.to_string(),
            _ => String::new(),
        }
    }

    pub fn person(&self, id: &str) -> Option<&Person> {
        id.parse::<PersonId>()
            .ok()
            .and_then(|p| self.people.get(&p))
    }

    /// The roles of a person id; anyone not configured is a viewer.
    pub fn roles_of(&self, id: &str) -> RoleSet {
        self.person(id)
            .map(|p| p.roles.clone())
            .unwrap_or_else(|| RoleSet::new([Role::Viewer]))
    }

    /// Why `method` cannot reach `person` with this configuration, or `None` when it can.
    pub fn unusable(&self, person: &Person, method: &ContactMethod) -> Option<String> {
        match method {
            ContactMethod::Discord if self.discord.is_none() => {
                Some("discord needs a [discord] section".into())
            }
            ContactMethod::Discord if person.discord_user_id.is_none() => {
                Some("discord needs their discord_user_id".into())
            }
            ContactMethod::Email if self.smtp.is_none() => {
                Some("email needs an [smtp] section".into())
            }
            ContactMethod::Email if person.email.is_none() => {
                Some("email needs their email address".into())
            }
            _ => None,
        }
    }

    /// The person's contact methods that can be tried, with their index in `notify`.
    pub fn usable_methods<'a>(&self, person: &'a Person) -> Vec<(usize, &'a ContactMethod)> {
        person
            .notify
            .iter()
            .enumerate()
            .filter(|(_, m)| self.unusable(person, m).is_none())
            .collect()
    }

    /// Why nobody can page `person`: every method's reason, or that they have none.
    pub fn unreachable_reason(&self, person: &Person) -> String {
        if person.notify.is_empty() {
            return "no contact method: give them `notify`, a discord_user_id or an email".into();
        }
        person
            .notify
            .iter()
            .filter_map(|m| self.unusable(person, m))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Problems that do not stop Spotter but will hurt during an incident: people nobody can
    /// page. `spotter config check` prints them.
    pub fn warnings(&self) -> Vec<String> {
        self.people
            .values()
            .filter(|p| self.usable_methods(p).is_empty())
            .map(|p| {
                format!(
                    "person `{}` has no usable contact method ({}); a tier paging them counts as unanswered at once and the next tier is paged",
                    p.id,
                    self.unreachable_reason(p)
                )
            })
            .collect()
    }

    /// Every environment variable a secret is read from (webhook HMAC secrets, ntfy tokens, the
    /// SMTP password, `[secrets] env`, probes' `url_env` and `password_env`), for `config check`
    /// to say which are unset and for runbook output redaction. A runbook step's `env` is not
    /// automatically secret: only what the configuration names.
    pub fn secret_env_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.people.values() {
            for m in &p.notify {
                match m {
                    ContactMethod::Webhook {
                        hmac_secret_env, ..
                    } => out.push(hmac_secret_env.clone()),
                    ContactMethod::Ntfy {
                        token_env: Some(t), ..
                    } => out.push(t.clone()),
                    _ => {}
                }
            }
        }
        if let Some(p) = self.smtp.as_ref().and_then(|s| s.password_env.clone()) {
            out.push(p);
        }
        out.extend(self.secrets.env.iter().cloned());
        for p in &self.probes {
            match &p.spec {
                ProbeSpec::Mysql {
                    url_env: Some(e), ..
                }
                | ProbeSpec::Postgres {
                    url_env: Some(e), ..
                }
                | ProbeSpec::Redis {
                    password_env: Some(e),
                    ..
                } => out.push(e.clone()),
                _ => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }

    pub fn rotation(&self, id: &str) -> Option<&Rotation> {
        self.rotations.get(id)
    }

    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.id.as_str() == id)
    }

    /// A display name for an actor id: the person's name, else the id itself.
    pub fn display_name(&self, actor: &str) -> String {
        match self.person(actor) {
            Some(p) => format!("{} ({})", p.name, p.id),
            None => actor.to_string(),
        }
    }
}

/// A database URL fit for messages and logs: the password of its user info and the value of every
/// query parameter that carries a secret (`password`, `sslpassword`, `token`, …) are replaced by
/// `[redacted]`. PostgreSQL takes a password either way (`postgres://u:PW@h/db` or
/// `postgres://u@h/db?password=PW`).
pub fn redact_url(url: &str) -> String {
    const REDACTED: &str = "[redacted]";
    // The query starts at the first `?`; a fragment, if any, at the first `#` after it.
    let (before_query, query) = match url.find('?') {
        Some(q) => (&url[..q], Some(&url[q + 1..])),
        None => (url, None),
    };
    let mut out = String::with_capacity(url.len());
    match before_query.find("://") {
        // The user info ends at the authority's last `@` (a raw `@` may sit in a password).
        Some(s) => match before_query[s + 3..].rfind('@').map(|a| s + 3 + a) {
            Some(at) => {
                let userinfo = &before_query[s + 3..at];
                match userinfo.find(':') {
                    Some(c) => {
                        out.push_str(&before_query[..s + 3 + c + 1]);
                        out.push_str(REDACTED);
                        out.push_str(&before_query[at..]);
                    }
                    None => out.push_str(before_query),
                }
            }
            None => out.push_str(before_query),
        },
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        let (query, fragment) = match query.find('#') {
            Some(h) => (&query[..h], Some(&query[h..])),
            None => (query, None),
        };
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _)) if is_secret_parameter(key) => {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
        if let Some(f) = fragment {
            out.push_str(f);
        }
    }
    out
}

/// Query parameters whose value is a credential (compared without case, `-` read as `_`).
fn is_secret_parameter(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    [
        "password", "passwd", "pwd", "pass", "token", "secret", "key", "auth",
    ]
    .iter()
    .any(|w| key == *w)
        || ["password", "passwd", "token", "secret", "apikey", "api_key"]
            .iter()
            .any(|w| key.contains(w))
}

/// Parses a duration in the documented form (`30s`, `15m`, `2h`, `1h 30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| format!("bad duration `{s}`: write it like 30s, 15m, 2h or 1h 30m"))
        .and_then(|d| Duration::from_std(d).map_err(|_| format!("duration `{s}` is too long")))
}

/// Formats a duration the way the config writes it (`2h`, `15m`, `1h 30m`).
pub fn format_duration(d: Duration) -> String {
    let secs = d.num_seconds().max(0) as u64;
    if secs == 0 {
        return "0m".to_string();
    }
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests;
