//! The one command engine's grammar: `/incident declare level:3 title:"Database down"` in, a typed
//! [`Command`] out. Discord, the HTTP command API and the console all come through here.
//!
//! - `lexer`: words and `name:value` options, quoting.
//! - `spec`: the table of commands and options (also used for help and slash-command registration).
//! - this module: validation against the spec and the configuration, into [`Command`].
//!
//! Every error is one line naming the problem and showing the accepted form.

mod lexer;
pub mod spec;

pub use spec::{CommandSpec, OptionKind, OptionSpec, COMMANDS};

use crate::config::Config;
use crate::domain::{ComponentId, IncidentRef, LevelId, PersonId, Phase, StateFilter};
use lexer::Token;
use std::collections::BTreeMap;

/// A parsed, validated command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Declare {
        level: LevelId,
        title: String,
        components: Vec<ComponentId>,
        commander: Option<PersonId>,
    },
    Ack {
        incident: Option<IncidentRef>,
    },
    Update {
        incident: Option<IncidentRef>,
        text: String,
        public: bool,
    },
    Escalate {
        incident: Option<IncidentRef>,
        level: Option<LevelId>,
    },
    Resolve {
        incident: Option<IncidentRef>,
        summary: Option<String>,
    },
    Reopen {
        incident: Option<IncidentRef>,
        reason: Option<String>,
    },
    Close {
        incident: Option<IncidentRef>,
    },
    Commander {
        incident: Option<IncidentRef>,
        user: PersonId,
    },
    Phase {
        incident: Option<IncidentRef>,
        phase: Phase,
    },
    Show {
        incident: Option<IncidentRef>,
    },
    Timeline {
        incident: Option<IncidentRef>,
    },
    List {
        filter: StateFilter,
    },
    Hold {
        incident: Option<IncidentRef>,
    },
    Page {
        target: String,
        text: Option<String>,
        incident: Option<IncidentRef>,
    },
    Oncall {
        level: Option<LevelId>,
    },
    MaintenanceStart {
        components: Vec<ComponentId>,
        duration: chrono::Duration,
        reason: String,
    },
    MaintenanceList,
    MaintenanceEnd {
        id: Option<i64>,
    },
    Help {
        topic: Option<&'static CommandSpec>,
    },
}

impl Command {
    /// The spec this command was parsed by (for its role and name).
    pub fn spec(&self) -> &'static CommandSpec {
        let path: &[&str] = match self {
            Command::Declare { .. } => &["incident", "declare"],
            Command::Ack { .. } => &["incident", "ack"],
            Command::Update { .. } => &["incident", "update"],
            Command::Escalate { .. } => &["incident", "escalate"],
            Command::Resolve { .. } => &["incident", "resolve"],
            Command::Reopen { .. } => &["incident", "reopen"],
            Command::Close { .. } => &["incident", "close"],
            Command::Commander { .. } => &["incident", "commander"],
            Command::Phase { .. } => &["incident", "phase"],
            Command::Show { .. } => &["incident", "show"],
            Command::Timeline { .. } => &["incident", "timeline"],
            Command::List { .. } => &["incident", "list"],
            Command::Hold { .. } => &["incident", "hold"],
            Command::Page { .. } => &["page"],
            Command::Oncall { .. } => &["oncall"],
            Command::MaintenanceStart { .. } => &["maintenance", "start"],
            Command::MaintenanceList => &["maintenance", "list"],
            Command::MaintenanceEnd { .. } => &["maintenance", "end"],
            Command::Help { .. } => &["help"],
        };
        spec::find(path).expect("every command has a spec")
    }

    /// The incident the command names explicitly, if it is about one.
    pub fn incident(&self) -> Option<Option<IncidentRef>> {
        match self {
            Command::Ack { incident }
            | Command::Update { incident, .. }
            | Command::Escalate { incident, .. }
            | Command::Resolve { incident, .. }
            | Command::Reopen { incident, .. }
            | Command::Close { incident }
            | Command::Commander { incident, .. }
            | Command::Phase { incident, .. }
            | Command::Show { incident }
            | Command::Hold { incident }
            | Command::Timeline { incident } => Some(*incident),
            _ => None,
        }
    }
}

/// A refused command line: the one-line message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The accepted form of a command, e.g. `/incident declare level:<1-5> title:"<text>" [component:<ids>]`.
pub fn usage(spec: &CommandSpec, config: &Config) -> String {
    let mut out = spec.name();
    for o in spec.options {
        let placeholder = match o.kind {
            OptionKind::Level => format!("<{}>", config.level_range()),
            OptionKind::Text { .. } => "\"<text>\"".to_string(),
            OptionKind::Bool => "<true|false>".into(),
            OptionKind::Incident => "<INC-n>".into(),
            OptionKind::Components => "<component,…>".into(),
            OptionKind::Person => "<person>".into(),
            OptionKind::Phase => "<phase>".into(),
            OptionKind::StateFilter => "<open|resolved|closed|all>".into(),
            OptionKind::CommandName => "\"<command>\"".into(),
            OptionKind::Duration => "<duration>".into(),
            OptionKind::Number => "<n>".into(),
            OptionKind::Target => "<person|team>".into(),
        };
        let part = format!("{}:{}", o.name, placeholder);
        out.push(' ');
        if o.required {
            out.push_str(&part);
        } else {
            out.push_str(&format!("[{part}]"));
        }
    }
    out
}

/// A value quoted for the grammar (`"…"` with `\` and `"` escaped), for adapters that build a
/// command line from structured input (slash-command options, JSON).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Parses one command line against the spec table and the configuration.
pub fn parse(line: &str, config: &Config) -> Result<Command, ParseError> {
    let tokens = lexer::lex(line).map_err(ParseError)?;
    let mut it = tokens.into_iter().peekable();
    let group = match it.next() {
        Some(Token::Word(w)) => w.trim_start_matches('/').to_ascii_lowercase(),
        Some(Token::Option { name, .. }) => {
            return Err(ParseError(format!(
                "expected a command before `{name}:`; try /help"
            )))
        }
        None => return Err(ParseError("empty command; try /help".into())),
    };
    let groups = spec::groups();
    if !groups.contains(&group.as_str()) {
        let list = groups
            .iter()
            .map(|g| format!("/{g}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ParseError(format!(
            "unknown command `/{group}`; accepted: {list}"
        )));
    }
    let subs = spec::subcommands(&group);
    let spec = if subs.is_empty() {
        spec::find(&[group.as_str()]).expect("group without subcommands has a spec")
    } else {
        match it.next() {
            Some(Token::Word(sub)) => {
                let sub = sub.to_ascii_lowercase();
                spec::find(&[group.as_str(), sub.as_str()]).ok_or_else(|| {
                    ParseError(format!(
                        "unknown subcommand `/{group} {sub}`; accepted: {}",
                        subs.join(", ")
                    ))
                })?
            }
            _ => {
                return Err(ParseError(format!(
                    "missing subcommand for /{group}; accepted: {}",
                    subs.join(", ")
                )))
            }
        }
    };

    let mut args: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut help_words = Vec::new();
    for tok in it {
        match tok {
            Token::Option { name, value } => {
                let Some(o) = spec.option(&name) else {
                    return Err(ParseError(format!(
                        "unknown option `{name}` for {}; usage: {}",
                        spec.name(),
                        usage(spec, config)
                    )));
                };
                if args.insert(o.name, value).is_some() {
                    return Err(ParseError(format!(
                        "option `{name}` is given twice; usage: {}",
                        usage(spec, config)
                    )));
                }
            }
            // `/help incident declare` reads naturally, so /help takes bare words as its topic.
            Token::Word(w) if spec.path == ["help"] => help_words.push(w),
            Token::Word(w) => {
                return Err(ParseError(format!(
                    "unexpected `{w}`: options are written name:value; usage: {}",
                    usage(spec, config)
                )))
            }
        }
    }
    if !help_words.is_empty() && !args.contains_key("command") {
        args.insert("command", help_words.join(" "));
    }
    for o in spec.options.iter().filter(|o| o.required) {
        if !args.contains_key(o.name) {
            return Err(ParseError(format!(
                "missing option `{}`; usage: {}",
                o.name,
                usage(spec, config)
            )));
        }
    }

    let v = Values { spec, config, args };
    let cmd = match spec.path {
        ["incident", "declare"] => Command::Declare {
            level: v.level("level")?.expect("required"),
            title: v.text("title")?.expect("required"),
            components: v.components("component")?.unwrap_or_default(),
            commander: v.person("commander")?,
        },
        ["incident", "ack"] => Command::Ack {
            incident: v.incident()?,
        },
        ["incident", "update"] => Command::Update {
            text: v.text("text")?.expect("required"),
            public: v.bool("public")?.unwrap_or(false),
            incident: v.incident()?,
        },
        ["incident", "escalate"] => Command::Escalate {
            level: v.level("level")?,
            incident: v.incident()?,
        },
        ["incident", "resolve"] => Command::Resolve {
            summary: v.text("summary")?,
            incident: v.incident()?,
        },
        ["incident", "reopen"] => Command::Reopen {
            reason: v.text("reason")?,
            incident: v.incident()?,
        },
        ["incident", "close"] => Command::Close {
            incident: v.incident()?,
        },
        ["incident", "commander"] => Command::Commander {
            user: v.person("user")?.expect("required"),
            incident: v.incident()?,
        },
        ["incident", "phase"] => Command::Phase {
            phase: v.phase("phase")?.expect("required"),
            incident: v.incident()?,
        },
        ["incident", "show"] => Command::Show {
            incident: v.incident()?,
        },
        ["incident", "timeline"] => Command::Timeline {
            incident: v.incident()?,
        },
        ["incident", "list"] => Command::List {
            filter: v.state_filter("state")?.unwrap_or(StateFilter::Open),
        },
        ["incident", "hold"] => Command::Hold {
            incident: v.incident()?,
        },
        ["page"] => Command::Page {
            target: v.target("user")?.expect("required"),
            text: v.text("text")?,
            incident: v.incident()?,
        },
        ["oncall"] => Command::Oncall {
            level: v.level("level")?,
        },
        ["maintenance", "start"] => Command::MaintenanceStart {
            components: v.components("component")?.expect("required"),
            duration: v.duration("duration")?.expect("required"),
            reason: v.text("reason")?.expect("required"),
        },
        ["maintenance", "list"] => Command::MaintenanceList,
        ["maintenance", "end"] => Command::MaintenanceEnd {
            id: v.number("id")?,
        },
        ["help"] => Command::Help {
            topic: v.command_name("command")?,
        },
        other => unreachable!("spec {other:?} has no parser"),
    };
    Ok(cmd)
}

/// Typed access to the raw option values, each failure naming the option and the accepted form.
struct Values<'a> {
    spec: &'static CommandSpec,
    config: &'a Config,
    args: BTreeMap<&'static str, String>,
}

impl Values<'_> {
    fn bad(&self, name: &str, value: &str, accepted: impl std::fmt::Display) -> ParseError {
        ParseError(format!(
            "bad value for `{name}`: `{value}`; accepted: {accepted}"
        ))
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.args.get(name).map(String::as_str)
    }

    fn level(&self, name: &str) -> Result<Option<LevelId>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        v.trim()
            .parse::<u8>()
            .ok()
            .map(LevelId)
            .filter(|l| self.config.levels.contains_key(l))
            .map(Some)
            .ok_or_else(|| {
                self.bad(
                    name,
                    v,
                    format!(
                        "{} ({})",
                        self.config.level_range(),
                        self.config.level_choices()
                    ),
                )
            })
    }

    fn text(&self, name: &str) -> Result<Option<String>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let max = match self.spec.option(name).map(|o| o.kind) {
            Some(OptionKind::Text { max }) => max,
            _ => spec::TEXT_MAX,
        };
        let t = v.trim();
        if t.is_empty() {
            return Err(ParseError(format!(
                "option `{name}` is empty; write it like {name}:\"some text\""
            )));
        }
        if t.chars().count() > max {
            return Err(ParseError(format!(
                "option `{name}` is too long: at most {max} characters"
            )));
        }
        // Control characters would let text rewrite terminals and logs; newlines and tabs are fine
        // in long text, never in a title.
        let allow_newlines = max > spec::TITLE_MAX;
        if t.chars()
            .any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\t')))
        {
            return Err(ParseError(format!(
                "option `{name}` contains control characters; use plain text"
            )));
        }
        Ok(Some(t.to_string()))
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "yes" => Ok(Some(true)),
            "false" | "no" => Ok(Some(false)),
            _ => Err(self.bad(name, v, "true or false")),
        }
    }

    fn incident(&self) -> Result<Option<IncidentRef>, ParseError> {
        let Some(v) = self.raw("incident") else {
            return Ok(None);
        };
        v.parse()
            .map(Some)
            .map_err(|_| self.bad("incident", v, IncidentRef::FORM))
    }

    fn components(&self, name: &str) -> Result<Option<Vec<ComponentId>>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let accepted = || {
            self.config
                .components
                .iter()
                .map(|c| c.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out: Vec<ComponentId> = Vec::new();
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match self.config.component(part) {
                Some(c) if !out.contains(&c.id) => out.push(c.id.clone()),
                Some(_) => {}
                None => return Err(self.bad(name, part, accepted())),
            }
        }
        if out.is_empty() {
            return Err(self.bad(name, v, accepted()));
        }
        Ok(Some(out))
    }

    fn person(&self, name: &str) -> Result<Option<PersonId>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        match self.config.person(v.trim()) {
            Some(p) => Ok(Some(p.id.clone())),
            None => Err(self.bad(
                name,
                v,
                format!(
                    "a configured person id ({})",
                    self.config
                        .people
                        .keys()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    fn duration(&self, name: &str) -> Result<Option<chrono::Duration>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        match crate::config::parse_duration(v) {
            Ok(d) if d > chrono::Duration::zero() && d <= chrono::Duration::days(30) => Ok(Some(d)),
            _ => Err(self.bad(name, v, "a duration from 1m to 30d, like 30m, 2h or 1h 30m")),
        }
    }

    fn number(&self, name: &str) -> Result<Option<i64>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        v.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| self.bad(name, v, "a positive whole number"))
    }

    fn target(&self, name: &str) -> Result<Option<String>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let t = v.trim();
        if self.config.person(t).is_some() || self.config.teams.contains_key(t) {
            return Ok(Some(t.to_string()));
        }
        let mut ids: Vec<&str> = self.config.people.keys().map(|p| p.as_str()).collect();
        ids.extend(self.config.teams.keys().map(String::as_str));
        Err(self.bad(
            name,
            v,
            format!("a configured person or team id ({})", ids.join(", ")),
        ))
    }

    fn phase(&self, name: &str) -> Result<Option<Phase>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        v.parse()
            .map(Some)
            .map_err(|_| self.bad(name, v, Phase::FORM))
    }

    fn state_filter(&self, name: &str) -> Result<Option<StateFilter>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        v.parse()
            .map(Some)
            .map_err(|_| self.bad(name, v, StateFilter::FORM))
    }

    fn command_name(&self, name: &str) -> Result<Option<&'static CommandSpec>, ParseError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let words: Vec<String> = v
            .split_whitespace()
            .map(|w| w.trim_start_matches('/').to_ascii_lowercase())
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        // `/help incident` shows the first incident command's group listing via None-topic rules;
        // an exact path shows one command.
        spec::find(&words)
            .or_else(|| {
                if words.len() == 1 {
                    COMMANDS.iter().find(|c| c.path[0] == words[0])
                } else {
                    None
                }
            })
            .map(Some)
            .ok_or_else(|| {
                self.bad(
                    name,
                    v,
                    COMMANDS
                        .iter()
                        .map(|c| c.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
    }
}

/// The text of `/help` (all commands) or `/help command:"incident declare"` (one).
pub fn help(topic: Option<&CommandSpec>, config: &Config) -> String {
    match topic {
        None => {
            let mut out =
                String::from("Commands (options are name:value; quote values with spaces):");
            for c in COMMANDS {
                out.push_str(&format!(
                    "\n  {} — {} [{}]",
                    usage(c, config),
                    c.summary,
                    c.role
                ));
            }
            out
        }
        Some(c) => {
            let mut out = format!(
                "{} — {} (needs role {})\nusage: {}",
                c.name(),
                c.summary,
                c.role,
                usage(c, config)
            );
            for o in c.options {
                out.push_str(&format!(
                    "\n  {}{}: {}",
                    o.name,
                    if o.required { "" } else { " (optional)" },
                    o.help
                ));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests;
