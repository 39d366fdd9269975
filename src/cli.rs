//! The command line.

use crate::startup::{shutdown_on_signals, Application};
use crate::telemetry;
use clap::{Parser, Subcommand};
use spotter_bot::console::ConsoleChat;
use spotter_core::audit;
use spotter_core::config::{Config, DEFAULT_TOML};
use spotter_core::store::{SqlStore, Store};
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
        /// The person id to speak as (see [[person]] in the config).
        #[arg(long = "as", env = "SPOTTER_USER", value_name = "PERSON")]
        user: Option<String>,
        /// The server's base URL (default: server.public_url).
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
    /// The Discord bot (see the README's Discord section).
    Discord {
        #[command(subcommand)]
        command: DiscordCommand,
    },
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
                Ok(_) => {
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::FAILURE
                }
            };
        }
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
            Command::Chat { user, url } => chat(config, user, url).await,
            Command::Migrate => migrate(config).await,
            Command::Audit {
                command: AuditCommand::Verify { head },
            } => audit_verify(config, head).await,
            Command::Audit {
                command: AuditCommand::Head,
            } => audit_head(config).await,
            Command::Discord {
                command: DiscordCommand::Register { dry_run },
            } => discord_register(config, dry_run).await,
            Command::Config { .. } => unreachable!("handled above"),
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

async fn chat(
    config: Config,
    user: Option<String>,
    url: Option<String>,
) -> anyhow::Result<ExitCode> {
    let user = user.or_else(|| std::env::var("USER").ok()).ok_or_else(|| {
        anyhow::anyhow!("say who you are: spotter chat --as PERSON (a person id from the config)")
    })?;
    let token = crate::token::for_client(&config)?;
    let url = url.unwrap_or_else(|| config.server.public_url.clone());
    let chat = ConsoleChat::new(&url, token.expose().to_string(), user)?;
    let summary = chat.run_stdin().await?;
    Ok(
        if summary.refused > 0 && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

async fn connect(config: &Config) -> anyhow::Result<SqlStore> {
    SqlStore::connect(&config.database.url, 2).await
}

async fn migrate(config: Config) -> anyhow::Result<ExitCode> {
    let store = connect(&config).await?;
    store.migrate().await?;
    println!("migrations applied ({:?})", store.backend());
    Ok(ExitCode::SUCCESS)
}

async fn audit_verify(config: Config, head: Option<audit::Head>) -> anyhow::Result<ExitCode> {
    let key = crate::audit_key::load(&config, false)?;
    let store = connect(&config).await?;
    store.ready().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let log = store.audit_log().await?;
    let checked =
        audit::verify(&key, &log.entries, log.head_seq, &log.head_hash).and_then(|n| match &head {
            Some(h) => audit::verify_head(&log.entries, h).map(|()| n),
            None => Ok(n),
        });
    match checked {
        Ok(n) => {
            let pinned = match &head {
                Some(h) => format!("; contains the exported head {h}"),
                None => String::new(),
            };
            println!("audit log verified: {n} entries, hash chain intact{pinned}");
            Ok(ExitCode::SUCCESS)
        }
        Err(v) => {
            eprintln!("audit log verification FAILED: {v}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn audit_head(config: Config) -> anyhow::Result<ExitCode> {
    let store = connect(&config).await?;
    store.ready().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let log = store.audit_log().await?;
    println!("{}", audit::head_of(&log.entries));
    Ok(ExitCode::SUCCESS)
}

async fn discord_register(config: Config, dry_run: bool) -> anyhow::Result<ExitCode> {
    if dry_run {
        if let Some(d) = &config.discord {
            eprintln!(
                "PUT {}/api/v10/applications/{}/guilds/{}/commands",
                d.api_base_url, d.application_id, d.guild_id
            );
        }
        let payload = spotter_bot::discord::registration_payload(&config);
        println!("{}", serde_json::to_string_pretty(&payload)?);
        return Ok(ExitCode::SUCCESS);
    }
    let guild = config
        .discord
        .as_ref()
        .map(|d| d.guild_id.clone())
        .unwrap_or_default();
    let n = spotter_bot::discord::register_once(std::sync::Arc::new(config)).await?;
    println!("registered {n} slash commands for guild {guild}");
    Ok(ExitCode::SUCCESS)
}
