//! The one command engine's grammar: `/incident declare level:3 title:"Database down"` in, a typed
//! [`Command`] out. Discord, the HTTP command API and the console all come through here.
//!
//! - `lexer`: words and `name:value` options, and [`quote`], its inverse for adapters.
//! - `spec`: the table of commands and options (also used for help and slash-command registration).
//! - `values`: each option kind's validation against the configuration.
//! - this module: the line against the spec, into [`Command`]; usage and help text.
//!
//! Every error is one line naming the problem and showing the accepted form.

mod lexer;
pub mod spec;
mod values;

pub use lexer::quote;
pub use spec::{CommandSpec, OptionKind, OptionSpec, COMMANDS};

use crate::config::Config;
use crate::domain::{ComponentId, IncidentRef, LevelId, PersonId, Phase, StateFilter};
use lexer::Token;
use std::collections::BTreeMap;
use values::Values;

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
    /// Puts `user` on call in `rotation` from now for `duration` (≤ 30 days).
    OncallOverride {
        rotation: String,
        user: PersonId,
        duration: chrono::Duration,
    },
    MaintenanceStart {
        components: Vec<ComponentId>,
        duration: chrono::Duration,
        reason: String,
    },
    MaintenanceSchedule {
        components: Vec<ComponentId>,
        start: chrono::DateTime<chrono::Utc>,
        duration: chrono::Duration,
        reason: String,
        public: bool,
    },
    MaintenanceList,
    MaintenanceEnd {
        id: Option<i64>,
    },
    Help {
        topic: Option<&'static CommandSpec>,
    },
    RunbookList,
    RunbookShow {
        name: String,
    },
    /// Parameters are checked against the runbook by the engine (the parser does not know
    /// runbooks); unknown ones are refused there.
    RunbookRun {
        name: String,
        params: BTreeMap<String, String>,
        dry_run: bool,
        incident: Option<IncidentRef>,
    },
    RunbookApprove {
        run: i64,
        /// The gate a button was made for (a stale button is refused); typed commands approve
        /// whatever the run waits for.
        gate: Option<usize>,
    },
    RunbookDeny {
        run: i64,
        gate: Option<usize>,
        reason: Option<String>,
    },
    RunbookCancel {
        run: i64,
    },
    RunbookConfirm {
        run: i64,
    },
    RunbookStatus {
        run: i64,
    },
    SystemCheck {
        incident: Option<IncidentRef>,
    },
    StatusShow,
    StatusPublish {
        incident: Option<IncidentRef>,
    },
    StatusHold {
        incident: Option<IncidentRef>,
    },
    StatusPost {
        text: String,
        status: Option<crate::status::PublicStatus>,
        incident: Option<IncidentRef>,
    },
    /// `None`: back to what the component's incidents say.
    StatusComponent {
        component: ComponentId,
        status: Option<crate::status::ComponentStatus>,
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
            Command::Oncall { .. } => &["oncall", "show"],
            Command::OncallOverride { .. } => &["oncall", "override"],
            Command::MaintenanceStart { .. } => &["maintenance", "start"],
            Command::MaintenanceSchedule { .. } => &["maintenance", "schedule"],
            Command::MaintenanceList => &["maintenance", "list"],
            Command::MaintenanceEnd { .. } => &["maintenance", "end"],
            Command::Help { .. } => &["help"],
            Command::RunbookList => &["runbook", "list"],
            Command::RunbookShow { .. } => &["runbook", "show"],
            Command::RunbookRun { .. } => &["runbook", "run"],
            Command::RunbookApprove { .. } => &["runbook", "approve"],
            Command::RunbookDeny { .. } => &["runbook", "deny"],
            Command::RunbookCancel { .. } => &["runbook", "cancel"],
            Command::RunbookConfirm { .. } => &["runbook", "confirm"],
            Command::RunbookStatus { .. } => &["runbook", "status"],
            Command::SystemCheck { .. } => &["system", "check"],
            Command::StatusShow => &["status", "show"],
            Command::StatusPublish { .. } => &["status", "publish"],
            Command::StatusHold { .. } => &["status", "hold"],
            Command::StatusPost { .. } => &["status", "post"],
            Command::StatusComponent { .. } => &["status", "component"],
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
            OptionKind::Rotation => "<rotation>".into(),
            OptionKind::Runbook => "<runbook>".into(),
            OptionKind::Params => "\"<name:value …>\"".into(),
            OptionKind::Time => "\"<YYYY-MM-DD HH:MM>\"".into(),
            OptionKind::PublicStatus => "<investigating|identified|monitoring|resolved>".into(),
            OptionKind::ComponentStatus => "<operational|degraded_performance|partial_outage|major_outage|under_maintenance|auto>".into(),
        };
        let part = format!("{}:{}", o.name, placeholder);
        out.push(' ');
        if o.required {
            out.push_str(&part);
        } else {
            out.push_str(&format!("[{part}]"));
        }
    }
    if spec.path == RUNBOOK_RUN {
        out.push_str(" [<param>:<value> …]");
    }
    out
}

/// The one command whose options are open: the runbook's own parameters follow its name.
const RUNBOOK_RUN: [&str; 2] = ["runbook", "run"];

/// Parses one command line against the spec table and the configuration.
///
/// # Errors
/// A [`ParseError`] of one line: refusals quote what was typed, with control characters
/// written as escapes (`\n`, `\u{0}`), so a reply or a log line cannot be split or rewritten.
pub fn parse(line: &str, config: &Config) -> Result<Command, ParseError> {
    parse_line(line, config).map_err(|e| ParseError(escape_controls(&e.0)))
}

fn escape_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn parse_line(line: &str, config: &Config) -> Result<Command, ParseError> {
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
    // `/oncall` and `/oncall level:2` mean `/oncall show …`: no subcommand word follows.
    let default_sub =
        spec::default_subcommand(&group).filter(|_| !matches!(it.peek(), Some(Token::Word(_))));
    let spec = if subs.is_empty() {
        spec::find(&[group.as_str()]).expect("group without subcommands has a spec")
    } else if let Some(sub) = default_sub {
        spec::find(&[group.as_str(), sub]).expect("a default subcommand has a spec")
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
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let mut help_words = Vec::new();
    for tok in it {
        match tok {
            // A runbook's parameters: checked against the runbook by the engine.
            Token::Option { name, value }
                if spec.path == RUNBOOK_RUN && spec.option(&name).is_none() =>
            {
                if params.insert(name.clone(), value).is_some() {
                    return Err(ParseError(format!(
                        "parameter `{name}` is given twice; usage: {}",
                        usage(spec, config)
                    )));
                }
            }
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
        ["oncall", "show"] => Command::Oncall {
            level: v.level("level")?,
        },
        ["oncall", "override"] => Command::OncallOverride {
            rotation: v.rotation("rotation")?.expect("required"),
            user: v.person("user")?.expect("required"),
            duration: v.duration("duration")?.expect("required"),
        },
        ["maintenance", "start"] => Command::MaintenanceStart {
            components: v.components("component")?.expect("required"),
            duration: v.duration("duration")?.expect("required"),
            reason: v.text("reason")?.expect("required"),
        },
        ["maintenance", "schedule"] => Command::MaintenanceSchedule {
            components: v.components("component")?.expect("required"),
            start: v.time("start")?.expect("required"),
            duration: v.duration("duration")?.expect("required"),
            reason: v.text("reason")?.expect("required"),
            public: v.bool("public")?.unwrap_or(false),
        },
        ["maintenance", "list"] => Command::MaintenanceList,
        ["maintenance", "end"] => Command::MaintenanceEnd {
            id: v.number("id")?,
        },
        ["help"] => Command::Help {
            topic: v.command_name("command")?,
        },
        ["runbook", "list"] => Command::RunbookList,
        ["runbook", "show"] => Command::RunbookShow {
            name: v.runbook("name")?.expect("required"),
        },
        ["runbook", "run"] => {
            for (name, value) in v.params("params")? {
                if params.insert(name.clone(), value).is_some() {
                    return Err(ParseError(format!(
                        "parameter `{name}` is given twice; usage: {}",
                        usage(spec, config)
                    )));
                }
            }
            Command::RunbookRun {
                name: v.runbook("name")?.expect("required"),
                params,
                dry_run: v.bool("dry_run")?.unwrap_or(false),
                incident: v.incident()?,
            }
        }
        ["runbook", "approve"] => Command::RunbookApprove {
            run: v.number("run")?.expect("required"),
            gate: None,
        },
        ["runbook", "deny"] => Command::RunbookDeny {
            run: v.number("run")?.expect("required"),
            gate: None,
            reason: v.text("reason")?,
        },
        ["runbook", "cancel"] => Command::RunbookCancel {
            run: v.number("run")?.expect("required"),
        },
        ["runbook", "confirm"] => Command::RunbookConfirm {
            run: v.number("run")?.expect("required"),
        },
        ["runbook", "status"] => Command::RunbookStatus {
            run: v.number("run")?.expect("required"),
        },
        ["system", "check"] => Command::SystemCheck {
            incident: v.incident()?,
        },
        ["status", "show"] => Command::StatusShow,
        ["status", "publish"] => Command::StatusPublish {
            incident: v.incident()?,
        },
        ["status", "hold"] => Command::StatusHold {
            incident: v.incident()?,
        },
        ["status", "post"] => Command::StatusPost {
            text: v.text("text")?.expect("required"),
            status: v.public_status("status")?,
            incident: v.incident()?,
        },
        ["status", "component"] => {
            let components = v.components("component")?.expect("required");
            let [component] = <[ComponentId; 1]>::try_from(components).map_err(|_| {
                ParseError(format!(
                    "option `component` names one component here; usage: {}",
                    usage(spec, config)
                ))
            })?;
            Command::StatusComponent {
                component,
                status: v.component_status("status")?.expect("required"),
            }
        }
        other => unreachable!("spec {other:?} has no parser"),
    };
    Ok(cmd)
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

#[cfg(test)]
mod proptests;
