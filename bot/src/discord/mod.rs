//! The Discord bot (serenity 0.12): slash commands, an incident channel per incident with a live
//! card and buttons, in gateway or HTTP-interactions mode. A thin adapter: every command runs
//! through the core engine, every post and edit through the outbox.
//!
//! - [`rest`]: serenity's `Http` pointed at `discord.api_base_url`, and Discord's answers mapped
//!   to retry / give up.
//! - [`commands`]: the slash-command registration generated from the core command table, and
//!   interaction options turned back into the core's text line.
//! - [`approval`]: the Approve / Deny buttons of a runbook run's approval request.
//! - [`card`]: the incident card (embed + buttons) and incident channel names.
//! - [`interactions`]: the one dispatcher over serenity's `Interaction` for both modes, with the
//!   3-second deadline (inline, else deferred and completed through the interaction webhook).
//! - [`endpoint`]: `POST /discord/interactions` with Ed25519 verification (HTTP mode).
//! - [`gateway`]: serenity's `Client` and its `EventHandler` (gateway mode).
//! - [`identity`]: a Discord user as a Spotter actor (by snowflake and role map, never by name).
//! - [`notifier`]: the outbox notifier of the `discord` channel (channels, card, timeline posts).
//! - [`announce`]: the status page's announcement channel (posts, edits, crossposts).
//!
//! [`Discord`] wires them for the application: its router, its notifier, and its background work
//! (registration at start-up, and the gateway in gateway mode).

pub mod announce;
pub mod approval;
pub mod card;
pub mod commands;
pub mod endpoint;
pub mod gateway;
pub mod identity;
pub mod interactions;
pub mod notifier;
pub mod rest;

use anyhow::Context as _;
use serde_json::Value;
use serenity::http::{LightMethod, Route};
use spotter_core::config::{Config, DiscordConfig, DiscordMode, IncidentChannels};
use spotter_core::outbox::Notifier;
use spotter_core::{Engine, Secret};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The platform name of Discord's chat bindings, and the outbox channel it delivers.
pub const DISCORD: &str = spotter_core::domain::Channel::Discord.as_str();

/// The Discord bot of one application.
pub struct Discord {
    engine: Arc<Engine>,
    config: DiscordConfig,
    token: Secret,
    rest: Arc<rest::DiscordRest>,
    interactions: Arc<interactions::Interactions>,
    notifier: Arc<notifier::DiscordNotifier>,
}

impl std::fmt::Debug for Discord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discord")
            .field("mode", &self.config.mode)
            .field("application_id", &self.config.application_id)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Discord {
    /// The bot, when `[discord]` is configured; its token comes from the variable named by
    /// `discord.token_env`, looked up with `env` (the process environment, or a test's).
    ///
    /// # Errors
    /// The token variable is unset, or the configuration cannot work (bad public key).
    pub fn from_engine(
        engine: &Arc<Engine>,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> anyhow::Result<Option<Discord>> {
        let Some(config) = engine.config().discord.clone() else {
            return Ok(None);
        };
        let token = token_from(&config, env)?;
        Discord::new(engine.clone(), config, token).map(Some)
    }

    pub fn new(
        engine: Arc<Engine>,
        config: DiscordConfig,
        token: Secret,
    ) -> anyhow::Result<Discord> {
        let rest = Arc::new(rest::DiscordRest::new(&config, &token)?);
        match &config.incident_channels {
            IncidentChannels::Category(Some(c)) => {
                rest::snowflake("discord.incident_category_id", c)?;
            }
            IncidentChannels::Threads(c) => {
                rest::snowflake("discord.incident_channel_id", c)?;
            }
            IncidentChannels::Category(None) => {}
        }
        let interactions = Arc::new(interactions::Interactions::new(
            engine.clone(),
            rest.clone(),
        ));
        let notifier = Arc::new(notifier::DiscordNotifier::new(
            engine.clone(),
            rest.clone(),
            config.clone(),
        ));
        let discord = Discord {
            engine,
            config,
            token,
            rest,
            interactions,
            notifier,
        };
        // Fail at start-up, not at the first interaction.
        discord.endpoint()?;
        Ok(discord)
    }

    pub fn mode(&self) -> DiscordMode {
        self.config.mode
    }

    fn endpoint(&self) -> anyhow::Result<Option<endpoint::Endpoint>> {
        match (self.config.mode, &self.config.public_key) {
            (DiscordMode::Interactions, Some(key)) => Ok(Some(endpoint::Endpoint::new(
                key,
                self.interactions.clone(),
                self.engine.clock().clone(),
            )?)),
            (DiscordMode::Interactions, None) => {
                anyhow::bail!("discord mode = \"interactions\" needs discord.public_key")
            }
            (DiscordMode::Gateway, _) => Ok(None),
        }
    }

    /// `POST /discord/interactions` in HTTP-interactions mode; no routes in gateway mode.
    pub fn router(&self) -> axum::Router {
        match self.endpoint() {
            Ok(Some(ep)) => ep.router(),
            _ => axum::Router::new(),
        }
    }

    /// The outbox notifier for the `discord` channel: the same one for every call, so the chat
    /// lane and the pages lane share its per-incident channel locks.
    pub fn notifier(&self) -> Arc<dyn Notifier> {
        self.notifier.clone()
    }

    /// The background work, until `shutdown`: the slash-command registration (retried while
    /// Discord is unreachable), and in gateway mode the gateway connection.
    pub fn start(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let engine = self.engine.clone();
        let rest = self.rest.clone();
        let config = self.config.clone();
        let token = self.token.clone();
        let interactions = self.interactions.clone();
        tokio::spawn(async move {
            let registration =
                register_until_done(engine.config(), &config, &rest, shutdown.clone());
            if config.mode == DiscordMode::Gateway {
                let gateway = async {
                    if let Err(e) =
                        gateway::run(&config, &token, interactions, shutdown.clone()).await
                    {
                        tracing::error!("{e:#}");
                    }
                };
                tokio::join!(registration, gateway);
            } else {
                registration.await;
            }
        })
    }

    /// Registers the slash commands now; returns how many.
    ///
    /// # Errors
    /// Discord refused or could not be reached.
    pub async fn register(&self) -> Result<usize, rest::RestError> {
        register(self.engine.config(), &self.rest).await
    }
}

/// The bot token from the variable named by `discord.token_env`.
///
/// # Errors
/// The variable is unset or empty (the message names it, never a value).
pub fn token_from(
    config: &DiscordConfig,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> anyhow::Result<Secret> {
    match env(&config.token_env) {
        Some(t) if !t.trim().is_empty() => Ok(Secret::new(t.trim())),
        _ => anyhow::bail!(
            "the Discord bot token is missing: set ${} (Developer Portal → Bot → Reset Token)",
            config.token_env
        ),
    }
}

/// The registration payload, as JSON (what `spotter discord register --dry-run` prints).
pub fn registration_payload(config: &Config) -> Value {
    serde_json::to_value(commands::registration(config)).expect("commands serialise")
}

/// Bulk-overwrites the guild's commands with the ones generated from the core table; idempotent.
async fn register(config: &Config, rest: &rest::DiscordRest) -> Result<usize, rest::RestError> {
    let payload = commands::registration(config);
    rest.call(
        Route::GuildCommands {
            application_id: rest.application_id(),
            guild_id: rest.guild_id(),
        },
        LightMethod::Put,
        Some(&payload),
    )
    .await?;
    Ok(payload.len())
}

async fn register_until_done(
    config: &Config,
    discord: &DiscordConfig,
    rest: &rest::DiscordRest,
    shutdown: CancellationToken,
) {
    let mut wait = Duration::from_secs(1);
    loop {
        match register(config, rest).await {
            Ok(n) => {
                tracing::info!(guild = %discord.guild_id, "registered {n} Discord slash commands");
                return;
            }
            Err(e) if e.is_retryable() => {
                if let rest::RestError::RateLimited {
                    retry_after: Some(d),
                    ..
                } = &e
                {
                    wait = wait.max(*d);
                }
                tracing::warn!(error = %e, "cannot register the Discord slash commands yet; retrying in {wait:?}");
            }
            Err(e) => {
                tracing::error!(error = %e, "Discord refused the slash-command registration");
                return;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(300));
    }
}

/// `spotter discord register`: registers once and reports.
///
/// # Errors
/// No `[discord]` section, no token, or Discord refused.
pub async fn register_once(config: Arc<Config>) -> anyhow::Result<usize> {
    let discord = config
        .discord
        .clone()
        .context("no [discord] section in the configuration")?;
    let token = token_from(&discord, &|var| std::env::var(var).ok())?;
    let rest = rest::DiscordRest::new(&discord, &token)?;
    register(&config, &rest)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}
