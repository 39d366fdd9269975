//! Gateway mode: serenity's `Client` holds a websocket to Discord, and every interaction it
//! receives (`EventHandler::interaction_create`) goes to the same dispatcher as the HTTP mode. The
//! initial response is POSTed to the interaction's callback; a deferred answer's completion runs
//! only after that POST succeeded, so it never races its own deferral.

use super::interactions::Interactions;
use super::rest;
use serenity::all::{Context, EventHandler, GatewayIntents, Interaction, Ready};
use serenity::http::{LightMethod, Route};
use spotter_core::config::DiscordConfig;
use spotter_core::Secret;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

struct Handler {
    interactions: Arc<Interactions>,
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        let id = interaction.id();
        let token = interaction.token().to_string();
        let handled = self.interactions.handle(interaction).await;
        let sent = self
            .interactions
            .rest()
            .call(
                Route::InteractionResponse {
                    interaction_id: id,
                    token: &token,
                },
                LightMethod::Post,
                Some(&handled.response),
            )
            .await;
        match sent {
            Ok(_) => {
                if let Some(followup) = handled.followup {
                    tokio::spawn(followup);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot answer a Discord interaction"),
        }
    }

    async fn ready(&self, _ctx: Context, ready: Ready) {
        tracing::info!(
            bot = %ready.user.id,
            guilds = ready.guilds.len(),
            "connected to the Discord gateway"
        );
    }
}

/// Runs the gateway client until `shutdown`; serenity reconnects by itself in between.
///
/// # Errors
/// The client could not start (bad token, Discord unreachable at start-up).
pub async fn run(
    config: &DiscordConfig,
    token: &Secret,
    interactions: Arc<Interactions>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Slash commands and buttons need no privileged intents; GUILDS keeps the guild list known.
    let http = rest::http_client(config, token).build();
    let mut client = serenity::all::ClientBuilder::new_with_http(http, GatewayIntents::GUILDS)
        .event_handler(Handler { interactions })
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot build the Discord gateway client: {}",
                crate::transport::describe_serenity(e)
            )
        })?;
    let shards = client.shard_manager.clone();
    tokio::select! {
        result = client.start() => {
            result.map_err(|e| {
                anyhow::anyhow!(
                    "the Discord gateway connection ended: {}",
                    crate::transport::describe_serenity(e)
                )
            })
        }
        _ = shutdown.cancelled() => {
            shards.shutdown_all().await;
            tracing::info!("Discord gateway closed");
            Ok(())
        }
    }
}
