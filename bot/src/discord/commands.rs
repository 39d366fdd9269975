//! Slash commands, both ways, from the one command table in core
//! ([`spotter_core::command::COMMANDS`]):
//! - out: the registration payload (a bulk overwrite of the guild's commands). Commands sharing a
//!   first word become one command with subcommands (`/incident declare`); single words stay
//!   top-level (`/help`). Whatever the table holds is registered, so commands added to core
//!   appear in Discord without a change here.
//! - in: an interaction's options turned back into the core's text line
//!   (`/incident declare level:3 title:"MySQL down"`), so parsing, validation and every rule stay
//!   in core and Discord says exactly what the console says.

use serenity::all::{
    CommandDataOption, CommandDataOptionValue, CommandOptionType, CreateCommand,
    CreateCommandOption,
};
use spotter_core::command::{quote, CommandSpec, OptionKind, OptionSpec, COMMANDS};
use spotter_core::config::Config;
use spotter_core::domain::{Phase, Role};

/// Discord's limit for command and option descriptions.
const DESCRIPTION_MAX: usize = 100;
/// Discord's limit for a string option's `max_length`.
const STRING_MAX: usize = 6000;

/// The registration payload for `PUT /applications/{app}/guilds/{guild}/commands`.
pub fn registration(config: &Config) -> Vec<CreateCommand> {
    registration_for(COMMANDS, config)
}

/// The same, for any command table (tests use small ones).
pub fn registration_for(specs: &[CommandSpec], config: &Config) -> Vec<CreateCommand> {
    let mut roots: Vec<&str> = Vec::new();
    for s in specs {
        if !roots.contains(&s.path[0]) {
            roots.push(s.path[0]);
        }
    }
    roots
        .into_iter()
        .map(|root| {
            let members: Vec<&CommandSpec> = specs.iter().filter(|s| s.path[0] == root).collect();
            match members.as_slice() {
                [only] if only.path.len() == 1 => {
                    let mut cmd = CreateCommand::new(root).description(clip(only.summary));
                    for o in ordered(only.options) {
                        cmd = cmd.add_option(option(o, config));
                    }
                    cmd
                }
                _ => {
                    let mut cmd =
                        CreateCommand::new(root).description(clip(&group_summary(root, &members)));
                    // Subcommands in table order; a third word makes a subcommand group.
                    let mut seen: Vec<&str> = Vec::new();
                    for m in &members {
                        let Some(&second) = m.path.get(1) else {
                            continue;
                        };
                        if seen.contains(&second) {
                            continue;
                        }
                        seen.push(second);
                        let under: Vec<&&CommandSpec> = members
                            .iter()
                            .filter(|x| x.path.get(1) == Some(&second))
                            .collect();
                        if under.len() == 1 && under[0].path.len() == 2 {
                            cmd = cmd.add_option(subcommand(under[0], second, config));
                        } else {
                            let mut group = CreateCommandOption::new(
                                CommandOptionType::SubCommandGroup,
                                second,
                                clip(&format!("/{root} {second} …")),
                            );
                            for x in under.iter().filter(|x| x.path.len() == 3) {
                                group = group.add_sub_option(subcommand(x, x.path[2], config));
                            }
                            cmd = cmd.add_option(group);
                        }
                    }
                    cmd
                }
            }
        })
        .collect()
}

fn group_summary(root: &str, members: &[&CommandSpec]) -> String {
    let subs: Vec<&str> = members
        .iter()
        .filter_map(|m| m.path.get(1).copied())
        .collect();
    match root {
        "incident" => "Declare, acknowledge, escalate and resolve incidents".to_string(),
        _ => format!("/{root}: {}", subs.join(", ")),
    }
}

fn subcommand(spec: &CommandSpec, name: &str, config: &Config) -> CreateCommandOption {
    let mut sub = CreateCommandOption::new(CommandOptionType::SubCommand, name, clip(spec.summary));
    for o in ordered(spec.options) {
        sub = sub.add_sub_option(option(o, config));
    }
    sub
}

/// Discord wants required options before optional ones; otherwise the table's order.
fn ordered(options: &[OptionSpec]) -> Vec<&OptionSpec> {
    let mut v: Vec<&OptionSpec> = options.iter().collect();
    v.sort_by_key(|o| !o.required);
    v
}

/// One option of the core table as a Discord option.
fn option(o: &OptionSpec, config: &Config) -> CreateCommandOption {
    let new = |kind| CreateCommandOption::new(kind, o.name, clip(o.help)).required(o.required);
    #[allow(unreachable_patterns)]
    match o.kind {
        OptionKind::Level => {
            let mut opt = new(CommandOptionType::Integer);
            for l in config.levels.values().take(25) {
                opt =
                    opt.add_int_choice(clip(&format!("{} · {}", l.id, l.name)), i32::from(l.id.0));
            }
            opt
        }
        OptionKind::Text { max } => new(CommandOptionType::String)
            .min_length(1)
            .max_length(max.min(STRING_MAX) as u16),
        OptionKind::Bool => new(CommandOptionType::Boolean),
        OptionKind::Phase => Phase::ALL
            .iter()
            .fold(new(CommandOptionType::String), |opt, p| {
                opt.add_string_choice(p.title(), p.as_str())
            }),
        OptionKind::StateFilter => ["open", "resolved", "closed", "all"]
            .iter()
            .fold(new(CommandOptionType::String), |opt, s| {
                opt.add_string_choice(*s, *s)
            }),
        OptionKind::Number => new(CommandOptionType::Integer).min_int_value(1),
        OptionKind::Duration => new(CommandOptionType::String).min_length(1).max_length(40),
        // Rotations come from the configuration, which registration reads at start-up: fixed
        // choices while they fit Discord's 25, else typed text checked by core's parser.
        OptionKind::Rotation if config.rotations.len() <= 25 => config
            .rotations
            .values()
            .fold(new(CommandOptionType::String), |opt, r| {
                opt.add_string_choice(clip(&format!("{} ({})", r.name, r.id)), r.id.as_str())
            }),
        // Open incidents, people, teams, component lists and command names change or outgrow
        // Discord's 25 fixed choices: they are suggested as the user types.
        k if autocompleted(k) => new(CommandOptionType::String).set_autocomplete(true),
        // Kinds core adds later arrive as text and are checked by core's parser.
        _ => new(CommandOptionType::String),
    }
}

/// Which option kinds are suggested as the user types.
pub fn autocompleted(kind: OptionKind) -> bool {
    matches!(
        kind,
        OptionKind::Incident
            | OptionKind::Person
            | OptionKind::Target
            | OptionKind::Components
            | OptionKind::CommandName
            | OptionKind::Runbook
    )
}

/// Cuts a description to Discord's 100 characters.
fn clip(s: &str) -> String {
    truncate(s, DESCRIPTION_MAX)
}

/// At most `max` characters, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The words and options of a slash-command interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `["incident", "declare"]`.
    pub path: Vec<String>,
    /// `(name, value)` in the order given; values are raw (not yet quoted).
    pub options: Vec<(String, OptionValue)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    Text(String),
    /// Integers and booleans: written without quotes.
    Bare(String),
}

impl Invocation {
    /// Reads a command interaction's name and options (descending into subcommands).
    pub fn from_interaction(name: &str, options: &[CommandDataOption]) -> Invocation {
        let mut inv = Invocation {
            path: vec![name.to_string()],
            options: vec![],
        };
        inv.read(options);
        inv
    }

    fn read(&mut self, options: &[CommandDataOption]) {
        for o in options {
            let value = match &o.value {
                CommandDataOptionValue::SubCommand(inner)
                | CommandDataOptionValue::SubCommandGroup(inner) => {
                    self.path.push(o.name.clone());
                    self.read(inner);
                    continue;
                }
                CommandDataOptionValue::String(s) => OptionValue::Text(s.clone()),
                CommandDataOptionValue::Autocomplete { value, .. } => {
                    OptionValue::Text(value.clone())
                }
                CommandDataOptionValue::Integer(n) => OptionValue::Bare(n.to_string()),
                CommandDataOptionValue::Number(n) => OptionValue::Bare(n.to_string()),
                CommandDataOptionValue::Boolean(b) => OptionValue::Bare(b.to_string()),
                // Discord entities would be snowflakes; the table declares none of these types.
                CommandDataOptionValue::User(id) => OptionValue::Text(id.to_string()),
                CommandDataOptionValue::Role(id) => OptionValue::Text(id.to_string()),
                CommandDataOptionValue::Channel(id) => OptionValue::Text(id.to_string()),
                other => OptionValue::Text(format!("{other:?}")),
            };
            self.options.push((o.name.clone(), value));
        }
    }

    /// The core command line: `/incident declare level:3 title:"MySQL down"`.
    pub fn line(&self) -> String {
        let mut out = format!("/{}", self.path.join(" "));
        for (name, value) in &self.options {
            out.push(' ');
            out.push_str(name);
            out.push(':');
            match value {
                OptionValue::Bare(v) => out.push_str(v),
                OptionValue::Text(v) => out.push_str(&quote(v)),
            }
        }
        out
    }

    /// The spec this invocation names, when the table has it.
    pub fn spec(&self) -> Option<&'static CommandSpec> {
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        spotter_core::command::spec::find(&path)
    }
}

/// Whether a command only reads (its answers are shown to the asker alone).
pub fn reads_only(spec: Option<&CommandSpec>) -> bool {
    spec.is_some_and(|s| s.role == Role::Viewer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn payload() -> Value {
        serde_json::to_value(registration(&Config::builtin())).unwrap()
    }

    #[test]
    fn every_command_in_the_table_is_registered_with_its_options() {
        let p = payload();
        for spec in COMMANDS {
            let root = p
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == spec.path[0])
                .unwrap_or_else(|| panic!("{} missing", spec.name()));
            let node = match spec.path.len() {
                1 => root.clone(),
                _ => root["options"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|o| o["name"] == spec.path[1] && o["type"] == 1)
                    .unwrap_or_else(|| panic!("{} missing", spec.name()))
                    .clone(),
            };
            let desc = node["description"].as_str().unwrap();
            assert!(!desc.is_empty() && desc.chars().count() <= 100);
            let opts = node["options"].as_array().cloned().unwrap_or_default();
            assert_eq!(opts.len(), spec.options.len(), "{}", spec.name());
            for o in spec.options {
                let got = opts.iter().find(|x| x["name"] == o.name).unwrap();
                assert_eq!(
                    got["required"].as_bool().unwrap_or(false),
                    o.required,
                    "{}",
                    o.name
                );
            }
            // Required options come first, as Discord demands.
            let req: Vec<bool> = opts
                .iter()
                .map(|o| o["required"].as_bool().unwrap_or(false))
                .collect();
            assert!(
                req.windows(2).all(|w| w[0] || !w[1]),
                "{}: {req:?}",
                spec.name()
            );
        }
    }

    #[test]
    fn levels_are_choices_and_incident_refs_autocomplete() {
        let p = payload();
        let incident = p
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "incident")
            .unwrap();
        let declare = incident["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "declare")
            .unwrap();
        let level = &declare["options"][0];
        assert_eq!(level["name"], "level");
        assert_eq!(level["type"], 4);
        assert_eq!(level["choices"].as_array().unwrap().len(), 5);
        assert_eq!(
            level["choices"][2],
            json!({"name": "3 · Complete System Failure", "value": 3})
        );
        let title = &declare["options"][1];
        assert_eq!(title["type"], 3);
        assert_eq!(title["max_length"], 200);
        let ack = incident["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "ack")
            .unwrap();
        assert_eq!(ack["options"][0]["name"], "incident");
        assert_eq!(ack["options"][0]["autocomplete"], true);
    }

    #[test]
    fn oncall_is_a_group_of_show_and_override_with_rotations_as_choices() {
        let toml = format!(
            "{}\n[[rotation]]\nid = \"primary\"\nname = \"Primary on-call\"\nmembers = [\"sysadmin\", \"dba\"]\nshift = \"weekly\"\nhandoff = \"09:00\"\ntimezone = \"Europe/Berlin\"\nstart = \"2026-01-05\"\n",
            spotter_core::config::DEFAULT_TOML
        );
        let config = Config::from_toml(&toml, "<test>").unwrap();
        let p = serde_json::to_value(registration(&config)).unwrap();
        let oncall = p
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "oncall")
            .unwrap();
        let subs: Vec<(&str, u64)> = oncall["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["name"].as_str().unwrap(), o["type"].as_u64().unwrap()))
            .collect();
        assert_eq!(subs, vec![("show", 1), ("override", 1)]);
        let over = &oncall["options"][1];
        let names: Vec<&str> = over["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["rotation", "user", "duration"]);
        assert_eq!(
            over["options"][0]["choices"],
            json!([{"name": "Primary on-call (primary)", "value": "primary"}])
        );
        assert_eq!(over["options"][1]["autocomplete"], true);
        // What Discord sends back reads as the core line, which parses.
        let options: Vec<CommandDataOption> = serde_json::from_value(json!([{
            "name": "override", "type": 1,
            "options": [
                {"name": "rotation", "type": 3, "value": "primary"},
                {"name": "user", "type": 3, "value": "dev"},
                {"name": "duration", "type": 3, "value": "4h"}
            ]
        }]))
        .unwrap();
        let line = Invocation::from_interaction("oncall", &options).line();
        assert_eq!(
            line,
            r#"/oncall override rotation:"primary" user:"dev" duration:"4h""#
        );
        assert!(matches!(
            spotter_core::command::parse(&line, &config),
            Ok(spotter_core::command::Command::OncallOverride { .. })
        ));
    }

    #[test]
    fn options_become_the_core_line_with_quoting() {
        let inv = Invocation {
            path: vec!["incident".into(), "declare".into()],
            options: vec![
                ("level".into(), OptionValue::Bare("3".into())),
                (
                    "title".into(),
                    OptionValue::Text(r#"MySQL "primary" \ down “now”"#.into()),
                ),
            ],
        };
        let line = inv.line();
        assert_eq!(
            line,
            r#"/incident declare level:3 title:"MySQL \"primary\" \\ down \“now\”""#
        );
        let cmd = spotter_core::command::parse(&line, &Config::builtin()).unwrap();
        match cmd {
            spotter_core::command::Command::Declare { title, .. } => {
                assert_eq!(title, r#"MySQL "primary" \ down “now”"#)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_declare_fixture_reads_as_the_core_line() {
        // `data.options` of shared/fixtures/discord-declare.json.
        let options: Vec<CommandDataOption> = serde_json::from_value(json!([{
            "name": "declare", "type": 1,
            "options": [
                {"name": "level", "type": 4, "value": 3},
                {"name": "title", "type": 3, "value": "MySQL primary unreachable"}
            ]
        }]))
        .unwrap();
        let inv = Invocation::from_interaction("incident", &options);
        assert_eq!(
            inv.line(),
            r#"/incident declare level:3 title:"MySQL primary unreachable""#
        );
    }
}
