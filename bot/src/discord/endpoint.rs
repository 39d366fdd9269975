//! `POST /discord/interactions`: Discord's HTTP interactions mode.
//!
//! Nothing is parsed before the Ed25519 signature (`X-Signature-Ed25519` over
//! `X-Signature-Timestamp` + the raw body, with the application's public key) checks out: a missing
//! or bad signature is a 401, as Discord requires (it sends bad ones on purpose and drops the URL
//! of a bot that accepts them). A timestamp more than 5 minutes off is a 401 too, so a captured
//! request cannot be replayed later. PING is answered `{"type":1}`; everything else goes to the
//! one interaction dispatcher.

use super::interactions::Interactions;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use serenity::all::Interaction;
use serenity::interactions_endpoint::Verifier;
use spotter_core::clock::Clock;
use std::sync::Arc;

/// The path Discord's "Interactions Endpoint URL" must point at.
pub const PATH: &str = "/discord/interactions";
/// How far the signed timestamp may be from our clock.
const MAX_SKEW_SECS: i64 = 5 * 60;
/// Interactions are small; Discord's own limit is far below this.
const MAX_BODY: usize = 256 * 1024;

#[derive(Clone)]
pub struct Endpoint {
    verifier: Verifier,
    interactions: Arc<Interactions>,
    clock: Arc<dyn Clock>,
}

impl Endpoint {
    /// `public_key` is the application's Ed25519 key in hex (Developer Portal → General
    /// Information).
    pub fn new(
        public_key: &str,
        interactions: Arc<Interactions>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Endpoint> {
        let bytes: [u8; 32] = hex::decode(public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow::anyhow!("discord.public_key must be 64 hex characters"))?;
        let verifier = Verifier::try_new(bytes)
            .map_err(|e| anyhow::anyhow!("discord.public_key is not an Ed25519 public key: {e}"))?;
        Ok(Endpoint {
            verifier,
            interactions,
            clock,
        })
    }

    pub fn router(self) -> Router {
        Router::new()
            .route(PATH, post(receive))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self)
    }

    /// Whether a request is Discord's: a valid signature over timestamp + body, and a timestamp
    /// within 5 minutes of now.
    fn authentic(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(signature), Some(timestamp)) = (
            header("x-signature-ed25519"),
            header("x-signature-timestamp"),
        ) else {
            return Err("missing X-Signature-Ed25519 or X-Signature-Timestamp");
        };
        self.verifier
            .verify(signature, timestamp, body)
            .map_err(|()| "bad request signature")?;
        let at: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| "bad X-Signature-Timestamp")?;
        if (self.clock.now().timestamp() - at).abs() > MAX_SKEW_SECS {
            return Err("X-Signature-Timestamp is more than 5 minutes off");
        }
        Ok(())
    }
}

async fn receive(State(ep): State<Endpoint>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(why) = ep.authentic(&headers, &body) {
        tracing::warn!("Discord interaction refused: {why}");
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": why}))).into_response();
    }
    let interaction = match parse(&body) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "a signed Discord interaction did not parse");
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("not an interaction: {e}")})),
            )
                .into_response();
        }
    };
    let handled = ep.interactions.handle(interaction).await;
    if let Some(followup) = handled.followup {
        tokio::spawn(followup);
    }
    Json(handled.response).into_response()
}

/// Parses an interaction into serenity's model. Fields serenity insists on but Discord leaves out
/// of some payloads (older API versions, hand-written examples) get Discord's documented defaults.
pub fn parse(body: &[u8]) -> Result<Interaction, serde_json::Error> {
    let mut v: Value = serde_json::from_slice(body)?;
    if let Some(map) = v.as_object_mut() {
        let kind = map.get("type").and_then(Value::as_u64);
        if matches!(kind, Some(2..=5)) {
            map.entry("locale").or_insert_with(|| json!("en-US"));
            map.entry("entitlements").or_insert_with(|| json!([]));
            map.entry("attachment_size_limit")
                .or_insert_with(|| json!(0));
        }
    }
    serde_json::from_value(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    // shared/fixtures/discord-*.json, the examples of the real wire format.
    const PING: &str = r#"{"id": "1311111111111111111", "application_id": "1300000000000000000", "type": 1, "token": "ping-token", "version": 1}"#;
    const DECLARE: &str = r#"{
      "id": "1312222222222222222", "application_id": "1300000000000000000", "type": 2,
      "guild_id": "1290000000000000000", "channel_id": "1291111111111111111",
      "member": {
        "user": {"id": "1280000000000000001", "username": "sam.sysadmin", "global_name": "Sam", "discriminator": "0", "avatar": null},
        "roles": ["1270000000000000001"], "permissions": "2147483647",
        "joined_at": "2025-01-01T00:00:00.000000+00:00",
        "deaf": false, "mute": false, "nick": null, "pending": false, "flags": 0
      },
      "data": {"id": "1301111111111111111", "name": "incident", "type": 1, "options": [
        {"name": "declare", "type": 1, "options": [
          {"name": "level", "type": 4, "value": 3},
          {"name": "title", "type": 3, "value": "MySQL primary unreachable"}]}]},
      "token": "declare-interaction-token", "version": 1, "locale": "en-US", "guild_locale": "en-US",
      "app_permissions": "2147483647", "entitlements": [],
      "authorizing_integration_owners": {"0": "1290000000000000000"}, "context": 0
    }"#;
    const ACK: &str = r#"{
      "id": "1313333333333333333", "application_id": "1300000000000000000", "type": 3,
      "guild_id": "1290000000000000000", "channel_id": "1292222222222222222",
      "member": {
        "user": {"id": "1280000000000000002", "username": "dana.dba", "global_name": "Dana", "discriminator": "0", "avatar": null},
        "roles": ["1270000000000000001"], "permissions": "2147483647",
        "joined_at": "2025-01-01T00:00:00.000000+00:00",
        "deaf": false, "mute": false, "nick": null, "pending": false, "flags": 0
      },
      "message": {
        "id": "1314444444444444444", "channel_id": "1292222222222222222", "type": 0, "content": "",
        "author": {"id": "1300000000000000000", "username": "spotter", "discriminator": "0", "avatar": null, "bot": true},
        "attachments": [], "embeds": [], "mentions": [], "mention_roles": [], "pinned": false,
        "mention_everyone": false, "tts": false, "timestamp": "2026-11-26T10:00:00.000000+00:00",
        "edited_timestamp": null, "flags": 0, "components": []
      },
      "data": {"custom_id": "incident:INC-1:ack", "component_type": 2},
      "token": "ack-interaction-token", "version": 1, "locale": "en-US",
      "app_permissions": "2147483647", "entitlements": [], "context": 0
    }"#;

    #[test]
    fn the_example_payloads_parse_into_serenitys_model() {
        assert!(matches!(
            parse(PING.as_bytes()).unwrap(),
            Interaction::Ping(_)
        ));
        match parse(DECLARE.as_bytes()).unwrap() {
            Interaction::Command(c) => {
                assert_eq!(c.user.id.get(), 1280000000000000001);
                assert_eq!(c.member.unwrap().roles[0].get(), 1270000000000000001);
                assert_eq!(c.data.name, "incident");
            }
            other => panic!("{other:?}"),
        }
        match parse(ACK.as_bytes()).unwrap() {
            Interaction::Component(c) => {
                assert_eq!(c.data.custom_id, "incident:INC-1:ack");
                assert_eq!(c.user.id.get(), 1280000000000000002);
                assert_eq!(c.message.id.get(), 1314444444444444444);
            }
            other => panic!("{other:?}"),
        }
    }
}
