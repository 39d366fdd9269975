//! Outbound REST: serenity's `Http` (routes under `…/api/v10/…`, the bot token, the base URL from
//! `discord.api_base_url` via `HttpBuilder::proxy`) and one place that turns Discord's answers
//! into outcomes the outbox understands.
//!
//! Why requests are executed here and not by `Http`'s own methods: with its rate limiter on,
//! serenity 0.12 ignores `proxy` (the limiter builds requests without it), and with the limiter off
//! an unsuccessful answer is reduced to status and message, losing the `retry_after` of a 429. So
//! requests are built by serenity (`Request` + `Route`, with `Http`'s token and proxy) and sent on
//! the same reqwest client here, where the whole answer is visible. Rate limits are then honoured
//! by the outbox (a 429 becomes a retry no earlier than `retry_after`), which also keeps them
//! durable across restarts and shared by every replica.

use crate::transport;
use serde::Serialize;
use serde_json::Value;
use serenity::http::{Http, HttpBuilder, LightMethod, Request, Route};
use serenity::model::id::{ApplicationId, GuildId};
use spotter_core::config::DiscordConfig;
use spotter_core::outbox::DeliveryError;
use spotter_core::Secret;
use std::time::Duration;

/// How long one request may take before it counts as a (retryable) timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Discord's JSON error codes that mean "that thing is gone".
pub const UNKNOWN_CHANNEL: i64 = 10003;
pub const UNKNOWN_MESSAGE: i64 = 10008;

/// A failed call to Discord.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RestError {
    /// 429: Discord wants us to wait `retry_after` (from the body, else the `Retry-After` header).
    #[error("Discord rate limit on {route}: retry after {retry_after:?}")]
    RateLimited {
        route: String,
        retry_after: Option<Duration>,
    },
    /// Any other unsuccessful status; `code` is Discord's JSON error code when it sent one.
    #[error("Discord answered {status} to {route}: {message}")]
    Status {
        route: String,
        status: u16,
        code: Option<i64>,
        message: String,
    },
    /// The request never got an answer (connection refused, timeout, reset).
    #[error("cannot reach Discord ({route}): {message}")]
    Transport { route: String, message: String },
    /// A success whose body was not what Discord sends.
    #[error("unexpected answer from Discord to {route}: {message}")]
    Decode { route: String, message: String },
}

impl RestError {
    /// Worth trying again later: rate limits, Discord's own trouble, the network.
    pub fn is_retryable(&self) -> bool {
        match self {
            RestError::RateLimited { .. } | RestError::Transport { .. } => true,
            RestError::Status { status, .. } => *status >= 500,
            RestError::Decode { .. } => false,
        }
    }

    /// 404: the channel or message addressed does not exist (any more).
    pub fn not_found(&self) -> bool {
        matches!(self, RestError::Status { status: 404, .. })
    }

    /// Discord's JSON error code, when it sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            RestError::Status { code, .. } => *code,
            _ => None,
        }
    }

    /// The outbox's view: 429 → retry no earlier than Discord asked (and no earlier than the
    /// outbox's own backoff for this attempt, so a long rate limit does not burn the attempts a
    /// long outage needs); 5xx and network trouble → retry with backoff; other 4xx → give up.
    pub fn into_delivery(
        self,
        attempts_so_far: i32,
        outbox: &spotter_core::config::OutboxConfig,
    ) -> DeliveryError {
        match &self {
            RestError::RateLimited { retry_after, .. } => {
                let backoff = outbox_backoff(attempts_so_far, outbox);
                let asked = retry_after
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .unwrap_or(backoff);
                DeliveryError::Retry {
                    reason: self.to_string(),
                    after: Some(asked.max(backoff)),
                }
            }
            _ if self.is_retryable() => DeliveryError::Retry {
                reason: self.to_string(),
                after: None,
            },
            _ => DeliveryError::Permanent(self.to_string()),
        }
    }
}

/// The dispatcher's backoff for the attempt after `attempts_so_far` failures, without jitter.
fn outbox_backoff(
    attempts_so_far: i32,
    c: &spotter_core::config::OutboxConfig,
) -> chrono::Duration {
    let base = c.retry_base.num_milliseconds().max(1);
    let exp = base.saturating_mul(1i64 << attempts_so_far.clamp(0, 30));
    chrono::Duration::milliseconds(exp.min(c.retry_max.num_milliseconds().max(base)))
}

/// Discord's REST API as Spotter uses it.
pub struct DiscordRest {
    http: Http,
    client: reqwest::Client,
    application_id: ApplicationId,
    guild_id: GuildId,
}

impl std::fmt::Debug for DiscordRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordRest")
            .field("base", &self.http.proxy)
            .field("application_id", &self.application_id)
            .finish_non_exhaustive()
    }
}

impl DiscordRest {
    pub fn new(config: &DiscordConfig, token: &Secret) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .use_rustls_tls()
            .build()?;
        let application_id =
            ApplicationId::from(snowflake("discord.application_id", &config.application_id)?);
        let guild_id = GuildId::from(snowflake("discord.guild_id", &config.guild_id)?);
        Ok(DiscordRest {
            http: http_client(config, token).client(client.clone()).build(),
            client,
            application_id,
            guild_id,
        })
    }

    pub fn application_id(&self) -> ApplicationId {
        self.application_id
    }

    /// The guild (Discord server) Spotter works in.
    pub fn guild_id(&self) -> GuildId {
        self.guild_id
    }

    /// Sends one request and returns the JSON answer (`Value::Null` for an empty 204).
    ///
    /// # Errors
    /// See [`RestError`].
    pub async fn call(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<Value, RestError> {
        let name = format!("{} {}", method_name(method), route_name(&route));
        let bytes = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| RestError::Decode {
                route: name.clone(),
                message: format!("cannot encode the request: {e}"),
            })?),
            None => None,
        };
        let request = Request::new(route, method)
            .body(bytes)
            .build(&self.client, self.http.token(), self.http.proxy.as_deref())
            .map_err(|e| RestError::Transport {
                route: name.clone(),
                // URL parse and header errors name neither the URL nor the header's value.
                message: transport::describe_serenity(e),
            })?;
        let response = request.send().await.map_err(|e| RestError::Transport {
            route: name.clone(),
            message: transport::describe(e),
        })?;
        let status = response.status();
        let header_retry = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        let text = response.text().await.map_err(|e| RestError::Transport {
            route: name.clone(),
            message: transport::describe(e),
        })?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return match (json, text.trim().is_empty()) {
                (Some(v), _) => Ok(v),
                (None, true) => Ok(Value::Null),
                (None, false) => Err(RestError::Decode {
                    route: name,
                    message: "the body is not JSON".into(),
                }),
            };
        }
        if status.as_u16() == 429 {
            let secs = json
                .as_ref()
                .and_then(|j| j.get("retry_after"))
                .and_then(Value::as_f64)
                .or(header_retry);
            return Err(RestError::RateLimited {
                route: name,
                retry_after: secs
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s.min(3600.0))),
            });
        }
        let code = json
            .as_ref()
            .and_then(|j| j.get("code"))
            .and_then(Value::as_i64);
        let message = json
            .as_ref()
            .and_then(|j| j.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| text.chars().take(200).collect());
        Err(RestError::Status {
            route: name,
            status: status.as_u16(),
            code,
            message,
        })
    }

    /// Like [`Self::call`], then reads the `id` of the object Discord returned.
    pub async fn call_for_id(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<String, RestError> {
        let name = format!("{} {}", method_name(method), route_name(&route));
        let v = self.call(route, method, body).await?;
        id_of(&v).ok_or_else(|| RestError::Decode {
            route: name,
            message: "the answer has no `id`".into(),
        })
    }
}

/// The `id` of an object Discord returned (a string snowflake; a number is accepted too).
pub fn id_of(v: &serde_json::Value) -> Option<String> {
    let id = v.get("id")?;
    id.as_str()
        .map(str::to_string)
        .or_else(|| id.as_u64().map(|n| n.to_string()))
}

/// A Discord id from the configuration, or an error naming the option and the accepted form. Never
/// a placeholder: a wrong id would send Spotter's calls to somebody else's guild or channel.
///
/// # Errors
/// `value` is not a snowflake: 17 to 20 digits, not zero, within 64 bits.
pub fn snowflake(option: &str, value: &str) -> anyhow::Result<std::num::NonZeroU64> {
    let v = value.trim();
    let digits = (17..=20).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| v.parse::<std::num::NonZeroU64>().ok())
        .flatten()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{option} `{value}` is not a Discord id: write its snowflake, 17-20 digits like \
                 1290000000000000000 (Discord: Settings → Advanced → Developer Mode, then \
                 right-click → Copy ID)"
            )
        })
}

/// serenity's `Http` for Spotter: the token, `api_base_url` as its proxy, and its own rate
/// limiter off (it would bypass the proxy; the outbox honours 429s instead).
pub fn http_client(config: &DiscordConfig, token: &Secret) -> HttpBuilder {
    let mut b = HttpBuilder::new(token.expose())
        .proxy(config.api_base_url.clone())
        .ratelimiter_disabled(true);
    if let Ok(id) = snowflake("discord.application_id", &config.application_id) {
        b = b.application_id(ApplicationId::from(id));
    }
    b
}

fn method_name(m: LightMethod) -> &'static str {
    match m {
        LightMethod::Delete => "DELETE",
        LightMethod::Get => "GET",
        LightMethod::Patch => "PATCH",
        LightMethod::Post => "POST",
        LightMethod::Put => "PUT",
    }
}

/// The route's path without interaction tokens (they are credentials for 15 minutes).
fn route_name(route: &Route<'_>) -> String {
    let path = route.path().into_owned();
    let path = path
        .strip_prefix("https://discord.com")
        .unwrap_or(&path)
        .to_string();
    match route {
        Route::InteractionResponse { token, .. }
        | Route::WebhookOriginalInteractionResponse { token, .. }
        | Route::WebhookFollowupMessages { token, .. }
        | Route::WebhookFollowupMessage { token, .. } => path.replace(token, "[token]"),
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox() -> spotter_core::config::OutboxConfig {
        spotter_core::config::OutboxConfig {
            max_attempts: 12,
            retry_base: chrono::Duration::seconds(2),
            retry_max: chrono::Duration::minutes(5),
            alert_hold: chrono::Duration::seconds(2),
        }
    }

    #[test]
    fn a_rate_limit_waits_at_least_what_discord_asked_and_at_least_the_backoff() {
        let rl = |secs: f64| RestError::RateLimited {
            route: "POST /x".into(),
            retry_after: Some(Duration::from_secs_f64(secs)),
        };
        let after = |e: DeliveryError| match e {
            DeliveryError::Retry { after, .. } => after.unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            after(rl(30.0).into_delivery(0, &outbox())),
            chrono::Duration::seconds(30)
        );
        assert_eq!(
            after(rl(0.5).into_delivery(0, &outbox())),
            chrono::Duration::seconds(2)
        );
        assert_eq!(
            after(rl(0.5).into_delivery(3, &outbox())),
            chrono::Duration::seconds(16)
        );
        assert_eq!(
            after(rl(0.5).into_delivery(20, &outbox())),
            chrono::Duration::minutes(5)
        );
    }

    #[test]
    fn server_errors_retry_and_client_errors_give_up() {
        let status = |s: u16| RestError::Status {
            route: "POST /x".into(),
            status: s,
            code: None,
            message: "m".into(),
        };
        assert!(matches!(
            status(502).into_delivery(0, &outbox()),
            DeliveryError::Retry { after: None, .. }
        ));
        assert!(matches!(
            status(403).into_delivery(0, &outbox()),
            DeliveryError::Permanent(_)
        ));
        let t = RestError::Transport {
            route: "x".into(),
            message: "timeout".into(),
        };
        assert!(matches!(
            t.into_delivery(0, &outbox()),
            DeliveryError::Retry { .. }
        ));
    }

    #[test]
    fn interaction_tokens_never_reach_error_messages() {
        let r = Route::WebhookOriginalInteractionResponse {
            application_id: ApplicationId::new(1300000000000000000),
            token: "secret-token",
        };
        let name = route_name(&r);
        assert!(!name.contains("secret-token"), "{name}");
        assert!(
            name.starts_with("/api/v10/webhooks/1300000000000000000/[token]"),
            "{name}"
        );
    }

    #[tokio::test]
    async fn a_transport_error_names_the_route_but_never_the_interaction_token() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = DiscordConfig {
            mode: spotter_core::config::DiscordMode::Interactions,
            application_id: "1300000000000000000".into(),
            guild_id: "1290000000000000000".into(),
            public_key: None,
            token_env: "UNUSED".into(),
            api_base_url: format!("http://127.0.0.1:{port}"),
            incident_channels: spotter_core::config::IncidentChannels::Category(None),
            role_map: vec![],
        };
        let rest = DiscordRest::new(&config, &Secret::new("Bot bot-token")).unwrap();
        let e = rest
            .call(
                Route::WebhookOriginalInteractionResponse {
                    application_id: rest.application_id(),
                    token: "secret-interaction-token",
                },
                LightMethod::Patch,
                Some(&serde_json::json!({"content": "x"})),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, RestError::Transport { .. }), "{e:?}");
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains("secret-interaction-token"), "{shown}");
            assert!(!shown.contains("bot-token"), "{shown}");
        }
        assert!(e.to_string().contains("[token]"), "{e}");
    }

    fn config(guild_id: &str) -> DiscordConfig {
        DiscordConfig {
            mode: spotter_core::config::DiscordMode::Interactions,
            application_id: "1300000000000000000".into(),
            guild_id: guild_id.into(),
            public_key: None,
            token_env: "UNUSED".into(),
            api_base_url: "http://127.0.0.1:9".into(),
            incident_channels: spotter_core::config::IncidentChannels::Category(None),
            role_map: vec![],
        }
    }

    #[test]
    fn a_guild_id_that_is_no_snowflake_is_an_error_naming_the_option() {
        let token = Secret::new("t");
        for bad in [
            "",
            "my-server",
            "0",
            "00000000000000000",
            "99999999999999999999",
        ] {
            let e = DiscordRest::new(&config(bad), &token)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("discord.guild_id `{bad}` is not a Discord id")),
                "{e}"
            );
            assert!(e.contains("17-20 digits"), "{e}");
        }
        let rest = DiscordRest::new(&config("1290000000000000000"), &token).unwrap();
        assert_eq!(rest.guild_id().get(), 1290000000000000000);
    }
}
