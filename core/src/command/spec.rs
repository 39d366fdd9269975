//! The command definitions: one table that the parser, `/help`, the HTTP API and the Discord
//! slash-command registration all read, so help text and options live in one place.

use crate::domain::Role;

/// What kind of value an option takes; decides parsing, validation and the chat platform's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// A configured level id.
    Level,
    /// Free text up to `max` characters.
    Text { max: usize },
    /// `true` or `false`.
    Bool,
    /// An incident reference (`INC-7`).
    Incident,
    /// One or more configured component ids, comma-separated.
    Components,
    /// A configured person id.
    Person,
    /// One of the guide's phases.
    Phase,
    /// `open`, `resolved`, `closed` or `all`.
    StateFilter,
    /// A command name (for `/help`).
    CommandName,
    /// A duration like `30m`, `2h`, `1h 30m`.
    Duration,
    /// A positive whole number (an id).
    Number,
    /// A configured person or team id (who to page).
    Target,
    /// A configured rotation id.
    Rotation,
    /// A runbook's name.
    Runbook,
    /// A moment in UTC: `2026-12-02T02:00:00Z` or `2026-12-02 02:00`.
    Time,
    /// A public incident status: investigating, identified, monitoring, resolved.
    PublicStatus,
    /// A public component status, or `auto` (back to what its incidents say).
    ComponentStatus,
    /// `name:value` pairs (a runbook's parameters, in one option for chat platforms whose
    /// commands have fixed options).
    Params,
}

#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    pub name: &'static str,
    pub kind: OptionKind,
    pub required: bool,
    pub help: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    /// `["incident", "declare"]` for `/incident declare`; `["help"]` for `/help`.
    pub path: &'static [&'static str],
    pub summary: &'static str,
    /// The role needed. For incident commands needing `commander`, the incident's own commander
    /// qualifies too.
    pub role: Role,
    pub options: &'static [OptionSpec],
}

impl CommandSpec {
    pub fn name(&self) -> String {
        format!("/{}", self.path.join(" "))
    }
    pub fn option(&self, name: &str) -> Option<&OptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }
}

const fn req(name: &'static str, kind: OptionKind, help: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        kind,
        required: true,
        help,
    }
}
const fn opt(name: &'static str, kind: OptionKind, help: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        kind,
        required: false,
        help,
    }
}

const INCIDENT: OptionSpec = opt(
    "incident",
    OptionKind::Incident,
    "the incident (default: the incident of this channel, or the only open one)",
);
pub use crate::domain::TITLE_MAX;
pub const TEXT_MAX: usize = 4000;

/// Every command, in the order `/help` lists them.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        path: &["incident", "declare"],
        summary: "Declare an incident at one of the recovery levels",
        role: Role::Responder,
        options: &[
            req("level", OptionKind::Level, "recovery level"),
            req(
                "title",
                OptionKind::Text { max: TITLE_MAX },
                "what is wrong, in a few words",
            ),
            opt(
                "component",
                OptionKind::Components,
                "affected components, comma-separated",
            ),
            opt(
                "commander",
                OptionKind::Person,
                "who commands the response (default: nobody yet)",
            ),
        ],
    },
    CommandSpec {
        path: &["incident", "ack"],
        summary: "Acknowledge an incident: you are on it, stop paging",
        role: Role::Responder,
        options: &[INCIDENT],
    },
    CommandSpec {
        path: &["incident", "update"],
        summary: "Post a status update to the incident's timeline",
        role: Role::Responder,
        options: &[
            req("text", OptionKind::Text { max: TEXT_MAX }, "the update"),
            opt(
                "public",
                OptionKind::Bool,
                "true to share it with the Workout Tracker's users",
            ),
            INCIDENT,
        ],
    },
    CommandSpec {
        path: &["incident", "escalate"],
        summary: "Change an incident's level (default: one level up); the RTO deadline follows",
        role: Role::Commander,
        options: &[opt("level", OptionKind::Level, "the new level"), INCIDENT],
    },
    CommandSpec {
        path: &["incident", "resolve"],
        summary: "Resolve an incident: service is restored",
        role: Role::Commander,
        options: &[
            opt(
                "summary",
                OptionKind::Text { max: TEXT_MAX },
                "what fixed it",
            ),
            INCIDENT,
        ],
    },
    CommandSpec {
        path: &["incident", "reopen"],
        summary: "Reopen a resolved incident",
        role: Role::Commander,
        options: &[
            opt("reason", OptionKind::Text { max: TEXT_MAX }, "why"),
            INCIDENT,
        ],
    },
    CommandSpec {
        path: &["incident", "close"],
        summary: "Close a resolved incident after post-recovery monitoring",
        role: Role::Commander,
        options: &[INCIDENT],
    },
    CommandSpec {
        path: &["incident", "commander"],
        summary: "Hand command of an incident to a person",
        role: Role::Commander,
        options: &[
            req(
                "user",
                OptionKind::Person,
                "the new commander (a person id)",
            ),
            INCIDENT,
        ],
    },
    CommandSpec {
        path: &["incident", "phase"],
        summary: "Move an incident to another recovery phase",
        role: Role::Commander,
        options: &[
            req("phase", OptionKind::Phase, "the recovery phase"),
            INCIDENT,
        ],
    },
    CommandSpec {
        path: &["incident", "hold"],
        summary: "Hold an incident open: cancel its automatic resolution after its alerts resolved",
        role: Role::Responder,
        options: &[INCIDENT],
    },
    CommandSpec {
        path: &["incident", "show"],
        summary: "Show an incident",
        role: Role::Viewer,
        options: &[INCIDENT],
    },
    CommandSpec {
        path: &["incident", "timeline"],
        summary: "Show an incident's timeline",
        role: Role::Viewer,
        options: &[INCIDENT],
    },
    CommandSpec {
        path: &["incident", "list"],
        summary: "List incidents",
        role: Role::Viewer,
        options: &[opt(
            "state",
            OptionKind::StateFilter,
            "which incidents (default: open)",
        )],
    },
    CommandSpec {
        path: &["page"],
        summary: "Page a person or team now (optionally about an incident)",
        role: Role::Responder,
        options: &[
            req("user", OptionKind::Target, "a person or team id"),
            opt(
                "text",
                OptionKind::Text { max: TEXT_MAX },
                "what they need to know",
            ),
            opt("incident", OptionKind::Incident, "the incident it is about"),
        ],
    },
    CommandSpec {
        path: &["oncall", "show"],
        summary: "Show who each level's escalation tiers page, and who each rotation has on call",
        role: Role::Viewer,
        options: &[opt("level", OptionKind::Level, "one level (default: all)")],
    },
    CommandSpec {
        path: &["oncall", "override"],
        summary: "Put a person on call in a rotation from now, for a while",
        role: Role::Commander,
        options: &[
            req("rotation", OptionKind::Rotation, "the rotation (its id)"),
            req("user", OptionKind::Person, "who takes over (a person id)"),
            req(
                "duration",
                OptionKind::Duration,
                "for how long, e.g. 4h (at most 30d; the rotation resumes by itself)",
            ),
        ],
    },
    CommandSpec {
        path: &["maintenance", "start"],
        summary: "Start a maintenance window: matching alerts open no incident and page nobody",
        role: Role::Commander,
        options: &[
            req(
                "component",
                OptionKind::Components,
                "components under maintenance, comma-separated",
            ),
            req(
                "duration",
                OptionKind::Duration,
                "how long, e.g. 2h (the window ends by itself)",
            ),
            req("reason", OptionKind::Text { max: TITLE_MAX }, "why"),
        ],
    },
    CommandSpec {
        path: &["maintenance", "schedule"],
        summary: "Schedule a maintenance window: announced on the status page (public:true), alerts suppressed while it runs",
        role: Role::Commander,
        options: &[
            req(
                "component",
                OptionKind::Components,
                "components under maintenance, comma-separated",
            ),
            req(
                "start",
                OptionKind::Time,
                "when it starts (UTC), e.g. \"2026-12-02 02:00\"",
            ),
            req("duration", OptionKind::Duration, "how long, e.g. 2h"),
            req(
                "reason",
                OptionKind::Text { max: TITLE_MAX },
                "what is done (its public title when public)",
            ),
            opt(
                "public",
                OptionKind::Bool,
                "true to announce it on the status page",
            ),
        ],
    },
    CommandSpec {
        path: &["maintenance", "list"],
        summary: "List active maintenance windows",
        role: Role::Viewer,
        options: &[],
    },
    CommandSpec {
        path: &["maintenance", "end"],
        summary: "End a maintenance window early",
        role: Role::Commander,
        options: &[opt(
            "id",
            OptionKind::Number,
            "the window's number (default: the only active one)",
        )],
    },
    CommandSpec {
        path: &["runbook", "list"],
        summary: "List the runbooks (the guide's procedures) and the runs in progress",
        role: Role::Viewer,
        options: &[],
    },
    CommandSpec {
        path: &["runbook", "show"],
        summary: "Show a runbook: its parameters, steps and approval policy",
        role: Role::Viewer,
        options: &[req("name", OptionKind::Runbook, "the runbook")],
    },
    CommandSpec {
        path: &["runbook", "run"],
        summary: "Request a run of a runbook; its parameters follow as name:value",
        role: Role::Responder,
        options: &[
            req("name", OptionKind::Runbook, "the runbook"),
            opt(
                "params",
                OptionKind::Params,
                "its parameters, e.g. \"recovery_date:20261126\" (or give each as its own name:value)",
            ),
            opt(
                "dry_run",
                OptionKind::Bool,
                "true to show exactly what would run, and run nothing",
            ),
            INCIDENT,
        ],
    },
    CommandSpec {
        path: &["runbook", "approve"],
        summary: "Approve a run someone else requested (needs the runbook's approver role)",
        role: Role::Viewer,
        options: &[req("run", OptionKind::Number, "the run's number")],
    },
    CommandSpec {
        path: &["runbook", "deny"],
        summary: "Deny a run someone else requested",
        role: Role::Viewer,
        options: &[
            req("run", OptionKind::Number, "the run's number"),
            opt("reason", OptionKind::Text { max: TITLE_MAX }, "why"),
        ],
    },
    CommandSpec {
        path: &["runbook", "cancel"],
        summary: "Cancel a run: before it starts, or stop its running step (its processes are killed)",
        role: Role::Responder,
        options: &[req("run", OptionKind::Number, "the run's number")],
    },
    CommandSpec {
        path: &["runbook", "confirm"],
        summary: "Confirm that the manual step a run waits for was done",
        role: Role::Responder,
        options: &[req("run", OptionKind::Number, "the run's number")],
    },
    CommandSpec {
        path: &["runbook", "status"],
        summary: "Show a run: its state, approvals, steps and the tail of their output",
        role: Role::Viewer,
        options: &[req("run", OptionKind::Number, "the run's number")],
    },
    CommandSpec {
        path: &["system", "check"],
        summary: "Run the system status probes (database, application, frontend, cache) and post a summary",
        role: Role::Responder,
        options: &[opt(
            "incident",
            OptionKind::Incident,
            "the incident to post it to (default: this channel's)",
        )],
    },
    CommandSpec {
        path: &["status", "show"],
        summary: "Show what the Workout Tracker's users see on the status page now",
        role: Role::Viewer,
        options: &[],
    },
    CommandSpec {
        path: &["status", "publish"],
        summary: "Put an incident on the public status page now (without waiting for the grace)",
        role: Role::Commander,
        options: &[INCIDENT],
    },
    CommandSpec {
        path: &["status", "hold"],
        summary: "Keep an incident off the public status page",
        role: Role::Commander,
        options: &[INCIDENT],
    },
    CommandSpec {
        path: &["status", "post"],
        summary: "Post a public update for the Workout Tracker's users (publishes the incident if it is not yet)",
        role: Role::Responder,
        options: &[
            req("text", OptionKind::Text { max: TEXT_MAX }, "what users should know"),
            opt(
                "status",
                OptionKind::PublicStatus,
                "the public status: investigating, identified, monitoring or resolved",
            ),
            INCIDENT,
        ],
    },
    CommandSpec {
        path: &["status", "component"],
        summary: "Set a component's public status until the incident resolves (auto: back to what incidents say)",
        role: Role::Commander,
        options: &[
            req("component", OptionKind::Components, "the component"),
            req(
                "status",
                OptionKind::ComponentStatus,
                "operational, degraded_performance, partial_outage, major_outage, under_maintenance or auto",
            ),
        ],
    },
    CommandSpec {
        path: &["help"],
        summary: "Show the commands, or one command's options",
        role: Role::Viewer,
        options: &[opt(
            "command",
            OptionKind::CommandName,
            "a command, e.g. \"incident declare\"",
        )],
    },
];

/// Groups that also run alone: `/oncall` means `/oncall show`. Discord cannot invoke a command
/// that has subcommands, so there the subcommand is always named; typed lines keep the short form
/// they had before the group gained `/oncall override`.
pub static DEFAULT_SUBCOMMANDS: &[(&str, &str)] = &[("oncall", "show"), ("status", "show")];

/// The subcommand a group runs when none is named, if it has one.
pub fn default_subcommand(group: &str) -> Option<&'static str> {
    DEFAULT_SUBCOMMANDS
        .iter()
        .find(|(g, _)| *g == group)
        .map(|(_, sub)| *sub)
}

/// The groups (`incident`, `help`) with their subcommands, for "unknown command" messages.
pub fn groups() -> Vec<&'static str> {
    let mut g: Vec<&str> = COMMANDS.iter().map(|c| c.path[0]).collect();
    g.dedup();
    g
}

pub fn subcommands(group: &str) -> Vec<&'static str> {
    COMMANDS
        .iter()
        .filter(|c| c.path[0] == group && c.path.len() > 1)
        .map(|c| c.path[1])
        .collect()
}

pub fn find(path: &[&str]) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.path == path)
}

/// Two specs are the same command when their paths are.
impl PartialEq for CommandSpec {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}
impl Eq for CommandSpec {}
