//! The command line: clap's definitions here, one module per group of commands.
//!
//! - [`chat`]: `spotter chat`, the console chat, and how it finds the server.
//! - [`database`]: `migrate`, `audit verify`, and opening the database: read-write for commands
//!   that change it, existing-only for commands that only read (they never create one).
//! - [`discord`]: `spotter discord register`.
//! - [`runbook`]: `spotter runbook default | check`, runbook files.
//! - [`subscribers`]: `spotter subscribers add | list | remove`, the status page's subscribers.
//! - [`simulate`]: `spotter escalation simulate`, who is paged when, from the config.
//! - [`token`]: `spotter token create | list | revoke`, per-person API tokens.

mod chat;
mod database;
mod discord;
mod runbook;
mod simulate;
mod subscribers;
mod token;

use crate::startup::{shutdown_on_signals, Application};
use crate::telemetry;
use clap::{Parser, Subcommand};
use spotter_core::clock::Clock as _;
use spotter_core::config::{Config, DEFAULT_TOML};
use std::path::PathBuf;
use std::process::ExitCode;

/// Spotter: incident response for the Workout Tracking System, from its disaster-recovery guide.
#[derive(Parser)]
#[command(name = "spotter", version, about, long_about = None)]
struct Cli {
    /// Configuration file (default: the built-in configuration, see `spotter config default`).
    #[arg(long, global = true, env = "SPOTTER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: HTTP API, webhooks, outbox dispatcher and scheduler.
    Serve,
    /// Chat with a running server from the terminal, with the same commands as Discord.
    ///
    /// Reads commands line by line from stdin when it is not a terminal (exit status 1 if any
    /// was refused), otherwise prompts.
    Chat {
        /// The person id to speak as (see [[person]] in the config). With your own token in
        /// $SPOTTER_TOKEN it may be left out (the token says who you are).
        #[arg(long = "as", env = "SPOTTER_USER", value_name = "PERSON")]
        user: Option<String>,
        /// The server's base URL (default: the address `serve` left in <data_dir>/server-url,
        /// else server.public_url).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Print the default configuration, or check a configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Per-person API tokens: a request with one acts as its person, with their roles (the
    /// shared token is capped at `api.shared_token_role`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The escalation matrix.
    Escalation {
        #[command(subcommand)]
        command: EscalationCommand,
    },
    /// The Discord bot (see the README's Discord section).
    Discord {
        #[command(subcommand)]
        command: DiscordCommand,
    },
    /// Runbook files: write the guide's, or check a directory of them.
    Runbook {
        #[command(subcommand)]
        command: RunbookCommand,
    },
    /// The status page's subscribers: signed webhooks and email addresses.
    Subscribers {
        #[command(subcommand)]
        command: SubscribersCommand,
    },
}

#[derive(Subcommand)]
enum SubscribersCommand {
    /// Add a webhook subscriber (active at once) or an email address (mailed a confirmation
    /// link first; the running server sends it).
    #[command(group(clap::ArgGroup::new("to").required(true).args(["webhook", "email"])))]
    Add {
        /// An http(s) URL that gets Statuspage-shaped JSON, signed with X-Spotter-Signature.
        #[arg(long, value_name = "URL", requires = "secret_env")]
        webhook: Option<String>,
        /// The environment variable holding the webhook's signing secret (never stored).
        #[arg(long, value_name = "VAR")]
        secret_env: Option<String>,
        /// An email address.
        #[arg(long, value_name = "ADDRESS", conflicts_with = "secret_env")]
        email: Option<String>,
        /// Only changes of this component (repeat for more; default: all).
        #[arg(long = "component", value_name = "ID")]
        components: Vec<String>,
    },
    /// List the subscribers: id, kind, state, components, given-up deliveries, address.
    List,
    /// Remove a subscriber by id: it gets nothing more, and what was queued for it is cancelled.
    Remove {
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Subcommand)]
enum RunbookCommand {
    /// Write the guide's runbooks and their scripts into DIR (for `[runbooks] dir`). Refuses to
    /// overwrite existing files unless --force.
    Default {
        dir: PathBuf,
        /// Overwrite files that exist already.
        #[arg(long)]
        force: bool,
    },
    /// Check every *.toml in DIR against the configuration (its levels and probes); prints
    /// FILE:LINE:COL: message for each problem, else each runbook with its steps and approvals.
    Check { dir: PathBuf },
}

#[derive(Subcommand)]
enum DiscordCommand {
    /// Register the slash commands for the configured guild (a bulk overwrite: safe to repeat).
    /// `serve` does this at start-up too.
    Register {
        /// Print the registration payload instead of sending it (needs no token).
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum EscalationCommand {
    /// Print who is paged when, and how, for an incident nobody acknowledges, from the current
    /// configuration (the real engine on a scratch database; run it in CI before changing the
    /// config).
    Simulate {
        /// The incident's level.
        #[arg(long)]
        level: u8,
        /// When it is declared: RFC 3339 (2026-03-29T01:30:00+01:00) or a local time in --tz
        /// (default: now).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// The IANA time zone times are shown (and --at read) in.
        #[arg(long, default_value = "UTC", value_name = "ZONE")]
        tz: String,
        /// How many hours to follow.
        #[arg(long, default_value_t = 4)]
        hours: i64,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for a configured person; prints it once, on stdout (only its SHA-256 is
    /// stored).
    Create {
        /// The person id (see [[person]] in the config).
        #[arg(long, value_name = "PERSON")]
        person: String,
    },
    /// List the tokens: id, person, created, last used, revoked (never the tokens).
    List,
    /// Revoke a token by its id (or the token itself): refused at once, on every replica.
    Revoke {
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the complete, commented built-in configuration.
    Default,
    /// Check a configuration file; prints FILE:LINE:COL: message for each problem.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the audit log's hash chain; names the first row that was edited, inserted or deleted.
    Verify {
        /// An exported head (`spotter audit head`): also fail when the log no longer contains
        /// it (a database rolled back to an older copy, or rows cut off the end).
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<spotter_core::audit::Head>,
    },
    /// Print the chain's head (`<seq>:<hash>`), to keep somewhere the database's writers cannot
    /// reach; pass it to `audit verify --head` later.
    Head,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Config {
            command: ConfigCommand::Default,
        } => {
            print!("{DEFAULT_TOML}");
            return ExitCode::SUCCESS;
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            return match Config::load(file) {
                Ok(config) => {
                    // Problems that do not stop Spotter but will hurt during an incident.
                    for w in config.warnings() {
                        eprintln!("{}: warning: {w}", file.display());
                    }
                    for var in config.secret_env_names() {
                        if std::env::var_os(&var).is_none() {
                            eprintln!("{}: warning: `{var}` is not set in this environment; what needs it will fail until it is", file.display());
                        }
                    }
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Runbook { command } => return runbook::run(command, cli.config.as_deref()),
        _ => {}
    }
    let config = match load_config(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(match cli.command {
        Command::Serve => "info,sqlx=warn,tower_http=info",
        _ => "warn,sqlx=error",
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve(config).await,
            Command::Chat { user, url } => chat::run(config, user, url).await,
            Command::Migrate => database::migrate(config).await,
            Command::Audit {
                command: AuditCommand::Verify { head },
            } => database::audit_verify(config, head).await,
            Command::Audit {
                command: AuditCommand::Head,
            } => database::audit_head(config).await,
            Command::Discord {
                command: DiscordCommand::Register { dry_run },
            } => discord::register(config, dry_run).await,
            Command::Escalation {
                command:
                    EscalationCommand::Simulate {
                        level,
                        at,
                        tz,
                        hours,
                    },
            } => {
                let zone: chrono_tz::Tz = tz.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "--tz `{tz}` is not an IANA time zone name (like Europe/Berlin or UTC)"
                    )
                })?;
                let at = match at {
                    Some(s) => simulate::parse_at(&s, zone).map_err(anyhow::Error::msg)?,
                    None => spotter_core::clock::SystemClock.now(),
                };
                simulate::simulate(config, level, at, zone, hours.clamp(1, 168)).await
            }
            Command::Token { command } => match command {
                TokenCommand::Create { person } => token::create(config, person).await,
                TokenCommand::List => token::list(config).await,
                TokenCommand::Revoke { id } => token::revoke(config, id).await,
            },
            Command::Subscribers { command } => match command {
                SubscribersCommand::Add {
                    webhook,
                    secret_env,
                    email,
                    components,
                } => {
                    let what = match (webhook, email) {
                        (Some(url), _) => subscribers::Add::Webhook {
                            url,
                            secret_env: secret_env.unwrap_or_default(),
                        },
                        (None, Some(address)) => subscribers::Add::Email { address },
                        (None, None) => unreachable!("clap requires one of them"),
                    };
                    subscribers::add(config, what, components).await
                }
                SubscribersCommand::List => subscribers::list(config).await,
                SubscribersCommand::Remove { id } => subscribers::remove(config, id).await,
            },
            Command::Config { .. } | Command::Runbook { .. } => unreachable!("handled above"),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The file named (or the built-in guide), then the environment overrides.
fn load_config(path: Option<&std::path::Path>) -> Result<Config, String> {
    let mut config = match path {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::builtin(),
    };
    config.apply_env(|k| std::env::var(k).ok());
    Ok(config)
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_on_signals()).await?;
    Ok(ExitCode::SUCCESS)
}
