//! Interaction bodies in Discord's wire format, shaped like `shared/fixtures/discord-*.json`, and
//! their Ed25519 signatures.

use super::{APPLICATION_ID, GUILD_ID};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// The channel the fixtures' slash commands are typed in (not an incident channel).
pub const GENERAL_CHANNEL: &str = "1291111111111111111";

/// The test application's key pair (a fixed seed: tests must be repeatable).
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

/// The public key in hex, as `discord.public_key` takes it.
pub fn public_key_hex() -> String {
    hex::encode(signing_key().verifying_key().to_bytes())
}

/// The `X-Signature-Ed25519` for a timestamp and body.
pub fn sign(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
    hex::encode(key.sign(&[timestamp.as_bytes(), body].concat()).to_bytes())
}

static NEXT: AtomicU64 = AtomicU64::new(1);

fn interaction_id() -> String {
    (1_312_000_000_000_000_000u64 + NEXT.fetch_add(1, Ordering::SeqCst)).to_string()
}

/// A fresh interaction token, so webhook calls can be told apart.
pub fn token(what: &str) -> String {
    format!("{what}-token-{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

fn member(user_id: &str, roles: &[&str]) -> Value {
    json!({
        "user": {"id": user_id, "username": format!("user{}", &user_id[user_id.len() - 3..]), "global_name": null, "discriminator": "0", "avatar": null},
        "roles": roles,
        "permissions": "2147483647",
        "joined_at": "2025-01-01T00:00:00.000000+00:00",
        "deaf": false, "mute": false, "nick": null, "pending": false, "flags": 0
    })
}

pub fn ping() -> Value {
    json!({"id": interaction_id(), "application_id": APPLICATION_ID, "type": 1, "token": token("ping"), "version": 1})
}

/// A slash command: `/incident declare level:3 title:"…"` is
/// `command(user, roles, channel, "incident", Some("declare"), [("level", json!(3)), ("title", json!("…"))])`.
pub fn command(
    user_id: &str,
    roles: &[&str],
    channel_id: &str,
    name: &str,
    sub: Option<&str>,
    options: &[(&str, Value)],
    token: &str,
) -> Value {
    let opts: Vec<Value> = options
        .iter()
        .map(|(n, v)| {
            let kind = match v {
                Value::Number(_) => 4,
                Value::Bool(_) => 5,
                _ => 3,
            };
            json!({"name": n, "type": kind, "value": v})
        })
        .collect();
    let options = match sub {
        Some(s) => json!([{"name": s, "type": 1, "options": opts}]),
        None => Value::Array(opts),
    };
    json!({
        "id": interaction_id(),
        "application_id": APPLICATION_ID,
        "type": 2,
        "guild_id": GUILD_ID,
        "channel_id": channel_id,
        "member": member(user_id, roles),
        "data": {"id": "1301111111111111111", "name": name, "type": 1, "options": options},
        "token": token,
        "version": 1,
        "locale": "en-US",
        "guild_locale": "en-US",
        "app_permissions": "2147483647",
        "entitlements": [],
        "attachment_size_limit": 10485760,
        "authorizing_integration_owners": {"0": GUILD_ID},
        "context": 0
    })
}

/// An autocomplete request while typing `option` of `/incident <sub>`.
pub fn autocomplete(user_id: &str, sub: &str, option: &str, typed: &str) -> Value {
    let mut v = command(
        user_id,
        &[],
        GENERAL_CHANNEL,
        "incident",
        Some(sub),
        &[],
        &token("auto"),
    );
    v["type"] = json!(4);
    v["data"]["options"][0]["options"] =
        json!([{"name": option, "type": 3, "value": typed, "focused": true}]);
    v
}

/// A click on a button of the card `message_id` in `channel_id`.
pub fn button(
    user_id: &str,
    roles: &[&str],
    channel_id: &str,
    message_id: &str,
    custom_id: &str,
    token: &str,
) -> Value {
    button_on(user_id, roles, channel_id, message_id, "", custom_id, token)
}

/// A button press on a message with this `content`, as Discord sends it (the whole message).
pub fn button_on(
    user_id: &str,
    roles: &[&str],
    channel_id: &str,
    message_id: &str,
    content: &str,
    custom_id: &str,
    token: &str,
) -> Value {
    json!({
        "id": interaction_id(),
        "application_id": APPLICATION_ID,
        "type": 3,
        "guild_id": GUILD_ID,
        "channel_id": channel_id,
        "member": member(user_id, roles),
        "message": {
            "id": message_id,
            "channel_id": channel_id,
            "type": 0,
            "content": content,
            "author": {"id": APPLICATION_ID, "username": "spotter", "discriminator": "0", "avatar": null, "bot": true},
            "attachments": [], "embeds": [], "mentions": [], "mention_roles": [], "pinned": false,
            "mention_everyone": false, "tts": false, "timestamp": "2026-11-26T10:00:00.000000+00:00",
            "edited_timestamp": null, "flags": 0, "components": []
        },
        "data": {"custom_id": custom_id, "component_type": 2},
        "token": token,
        "version": 1,
        "locale": "en-US",
        "app_permissions": "2147483647",
        "entitlements": [],
        "attachment_size_limit": 10485760,
        "context": 0
    })
}
