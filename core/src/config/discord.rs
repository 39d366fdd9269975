//! The `[discord]` section: how Spotter reaches the team's Discord server.

use super::*;
use serde::Deserialize;
use toml::Spanned;

type Report<'a> = &'a mut dyn FnMut(&std::ops::Range<usize>, String);

/// How Discord delivers interactions to Spotter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscordMode {
    /// A gateway (websocket) connection, serenity's `Client`.
    Gateway,
    /// Discord POSTs signed interactions to `POST /discord/interactions`.
    Interactions,
}

/// Where incident conversations live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentChannels {
    /// A text channel per incident, under this category (or at the top when `None`).
    Category(Option<String>),
    /// A thread per incident in this channel.
    Threads(String),
}

#[derive(Debug, Clone)]
pub struct DiscordConfig {
    pub mode: DiscordMode,
    pub application_id: String,
    pub guild_id: String,
    /// The application's Ed25519 public key (hex); public, not a secret. Required for
    /// `interactions` mode.
    pub public_key: Option<String>,
    /// Name of the variable holding the bot token.
    pub token_env: String,
    /// Discord's REST base (serenity appends `/api/v10/…`); a fake or proxy in tests.
    pub api_base_url: String,
    pub incident_channels: IncidentChannels,
    /// Discord role id → Spotter role, for members not configured as people.
    pub role_map: Vec<(String, Role)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscord {
    mode: Spanned<String>,
    application_id: Spanned<String>,
    guild_id: Spanned<String>,
    public_key: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
    api_base_url: Option<String>,
    incident_category_id: Option<Spanned<String>>,
    incident_channel_id: Option<Spanned<String>>,
    #[serde(default)]
    roles: Vec<RawRoleMap>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoleMap {
    discord_role_id: Spanned<String>,
    role: Spanned<String>,
}

/// A Discord id: 17-20 digits that fit in 64 bits and are not zero.
pub(super) fn is_snowflake(s: &str) -> bool {
    (17..=20).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u64>().is_ok_and(|n| n != 0)
}

pub(super) fn snowflake(sp: &Spanned<String>, what: &str, err: Report<'_>) -> String {
    if !is_snowflake(sp.get_ref()) {
        err(
            &sp.span(),
            format!(
                "{what} `{}` is not a Discord id (a snowflake: 17-20 digits)",
                sp.get_ref()
            ),
        );
    }
    sp.get_ref().clone()
}

pub(super) fn parse(raw: RawDiscord, err: Report<'_>) -> DiscordConfig {
    let mode = match raw.mode.get_ref().as_str() {
        "gateway" => DiscordMode::Gateway,
        "interactions" => DiscordMode::Interactions,
        other => {
            err(
                &raw.mode.span(),
                format!("unknown discord mode `{other}`; accepted: gateway, interactions"),
            );
            DiscordMode::Interactions
        }
    };
    let application_id = snowflake(&raw.application_id, "application_id", err);
    let guild_id = snowflake(&raw.guild_id, "guild_id", err);
    let public_key = raw.public_key.map(|k| {
        let ok = k.get_ref().len() == 64 && k.get_ref().bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            err(
                &k.span(),
                "public_key must be the application's Ed25519 public key: 64 hex characters".into(),
            );
        }
        k.get_ref().to_ascii_lowercase()
    });
    if mode == DiscordMode::Interactions && public_key.is_none() {
        err(
            &raw.mode.span(),
            "mode = \"interactions\" needs public_key (Developer Portal → General Information)"
                .into(),
        );
    }
    let token_env = match raw.token_env {
        Some(t) => super::raw::env_var_name(&t, err),
        None => "SPOTTER_DISCORD_TOKEN".into(),
    };
    let incident_channels = match (raw.incident_category_id, raw.incident_channel_id) {
        (Some(c), Some(t)) => {
            err(&t.span(), "set incident_category_id (a channel per incident) or incident_channel_id (a thread per incident), not both".into());
            IncidentChannels::Category(Some(c.into_inner()))
        }
        (Some(c), None) => {
            IncidentChannels::Category(Some(snowflake(&c, "incident_category_id", err)))
        }
        (None, Some(t)) => IncidentChannels::Threads(snowflake(&t, "incident_channel_id", err)),
        (None, None) => IncidentChannels::Category(None),
    };
    let mut role_map = Vec::new();
    for r in raw.roles {
        let id = snowflake(&r.discord_role_id, "discord_role_id", err);
        match r.role.get_ref().parse::<Role>() {
            Ok(role) => role_map.push((id, role)),
            Err(m) => err(&r.role.span(), m),
        }
    }
    DiscordConfig {
        mode,
        application_id,
        guild_id,
        public_key,
        token_env,
        api_base_url: raw
            .api_base_url
            .unwrap_or_else(|| "https://discord.com".into())
            .trim_end_matches('/')
            .to_string(),
        incident_channels,
        role_map,
    }
}
