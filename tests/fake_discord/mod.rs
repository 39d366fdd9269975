//! A recording fake of Discord's REST API (`/api/v10/…`), for end-to-end tests of the bot.
//!
//! It answers the calls Spotter makes with bodies shaped like Discord's (a channel object with an
//! id for a channel create, a message object for a message create or edit, command objects for a
//! bulk overwrite, 204 for interaction callbacks), keeps the channels and messages it created so
//! unknown ids get Discord's 404s, and records every request with the status it got. It can be
//! told to answer 429 (with `retry_after`) or 500 for a while. Channels that exist beforehand
//! (an announcement channel) are added with their type; crossposts work in type-5 channels and
//! can be told to answer 429, as Discord's hourly crosspost limit does.
//!
//! It also plays a minimal gateway (`GET /api/v10/gateway` points serenity's client at its
//! websocket): HELLO, READY after IDENTIFY, heartbeat ACKs, and the events a test dispatches.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod interactions;

/// The application, guild and bot user the fake plays.
pub const APPLICATION_ID: &str = "1300000000000000000";
pub const GUILD_ID: &str = "1290000000000000000";

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub body: Value,
    pub status: u16,
    pub authorization: Option<String>,
    pub at: Instant,
}

impl Recorded {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

/// A stretch of time during which channel and message calls fail.
#[derive(Debug, Clone)]
struct Outage {
    status: u16,
    until: Instant,
    retry_after: f64,
}

#[derive(Default)]
struct Fake {
    log: Mutex<Vec<Recorded>>,
    /// Channel id → channel object.
    channels: Mutex<HashMap<String, Value>>,
    /// Message id → message object.
    messages: Mutex<HashMap<String, Value>>,
    outages: Mutex<Vec<Outage>>,
    next_id: AtomicU64,
    /// `ws://127.0.0.1:PORT/gateway`.
    gateway_url: Mutex<String>,
    /// Gateway events for the connected clients: `(t, d)`.
    events: Mutex<Option<tokio::sync::broadcast::Sender<(String, Value)>>>,
    /// Crossposts answer 429, as Discord does past ~10 an hour per channel.
    crossposts_limited: std::sync::atomic::AtomicBool,
}

impl Fake {
    fn snowflake(&self) -> String {
        (1_400_000_000_000_000_000u64 + self.next_id.fetch_add(1, Ordering::SeqCst)).to_string()
    }
}

pub struct FakeDiscord {
    /// What `discord.api_base_url` should be: `http://127.0.0.1:PORT`.
    pub base: String,
    fake: Arc<Fake>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeDiscord {
    pub async fn start() -> FakeDiscord {
        let fake = Arc::new(Fake::default());
        *fake.events.lock().unwrap() = Some(tokio::sync::broadcast::channel(64).0);
        let app = axum::Router::new()
            .route("/gateway", axum::routing::get(gateway))
            .fallback(handle)
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        *fake.gateway_url.lock().unwrap() = format!("ws://{addr}/gateway");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeDiscord { base, fake, server }
    }

    /// Sends a gateway dispatch (`INTERACTION_CREATE`, …) to every connected client.
    pub fn dispatch(&self, event: &str, data: Value) {
        let tx = self.fake.events.lock().unwrap().clone().unwrap();
        tx.send((event.to_string(), data))
            .expect("a gateway client is connected");
    }

    /// Channel and message calls answer `status` for `duration`, after any outage already set.
    pub fn fail(&self, status: u16, duration: Duration, retry_after: f64) {
        let mut outages = self.fake.outages.lock().unwrap();
        let from = outages
            .last()
            .map(|o| o.until)
            .unwrap_or_else(Instant::now)
            .max(Instant::now());
        outages.push(Outage {
            status,
            until: from + duration,
            retry_after,
        });
    }

    /// A guild channel that exists before Spotter starts (an announcement channel is type 5,
    /// a text channel 0): `GET /channels/{id}` answers it, and messages can be posted in it.
    pub fn add_channel(&self, id: &str, kind: u64, name: &str) {
        let channel = json!({
            "id": id, "type": kind, "guild_id": GUILD_ID, "name": name, "topic": null,
            "parent_id": null, "position": 1, "permission_overwrites": [], "nsfw": false,
            "last_message_id": null, "rate_limit_per_user": 0, "flags": 0
        });
        self.fake
            .channels
            .lock()
            .unwrap()
            .insert(id.to_string(), channel);
    }

    /// From now on, crossposts answer 429 (Discord's hourly crosspost limit) while `limited`.
    pub fn limit_crossposts(&self, limited: bool) {
        self.fake
            .crossposts_limited
            .store(limited, Ordering::SeqCst);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.fake.log.lock().unwrap().clone()
    }

    /// The successful requests with this method whose path starts with `prefix`.
    pub fn ok(&self, method: &str, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.ok() && r.method == method && r.path.starts_with(prefix))
            .collect()
    }

    /// The message as the fake holds it now (after edits).
    pub fn message(&self, id: &str) -> Option<Value> {
        self.fake.messages.lock().unwrap().get(id).cloned()
    }

    /// Polls until `pred` holds for the requests, or panics after `within`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&[Recorded]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            let reqs = self.requests();
            if let Some(v) = pred(&reqs) {
                return v;
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = reqs
                    .iter()
                    .map(|r| format!("{} {} → {} {}", r.method, r.path, r.status, r.body))
                    .collect();
                panic!(
                    "timed out waiting for {what}; the fake saw:\n{}",
                    seen.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The DM channel the fake opened for `recipient`, if any.
    pub fn dm_channel(&self, recipient: &str) -> Option<String> {
        self.channels()
            .into_iter()
            .find(|c| c["type"] == 1 && c["recipients"][0]["id"] == recipient)
            .and_then(|c| c["id"].as_str().map(str::to_string))
    }

    /// The channels the fake created, oldest first.
    pub fn channels(&self) -> Vec<Value> {
        let mut v: Vec<Value> = self
            .fake
            .channels
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|c| c["id"].as_str().unwrap().parse::<u64>().unwrap());
        v
    }

    /// The messages now in a channel (edits applied), oldest first.
    pub fn messages_in(&self, channel_id: &str) -> Vec<Value> {
        let mut v: Vec<Value> = self
            .fake
            .messages
            .lock()
            .unwrap()
            .values()
            .filter(|m| m["channel_id"] == channel_id)
            .cloned()
            .collect();
        v.sort_by_key(|m| m["id"].as_str().unwrap().parse::<u64>().unwrap());
        v
    }

    /// The incident channel the fake created first, and the card (the message with an embed)
    /// posted in it.
    pub async fn incident_channel_and_card(&self) -> (String, String) {
        self.wait_for(
            "an incident channel with its card",
            Duration::from_secs(10),
            |_| {
                let channel = self.channels().into_iter().next()?;
                let channel_id = channel["id"].as_str()?.to_string();
                let card = self
                    .messages_in(&channel_id)
                    .into_iter()
                    .find(|m| m["embeds"].as_array().is_some_and(|e| !e.is_empty()))?;
                Some((channel_id, card["id"].as_str()?.to_string()))
            },
        )
        .await
    }
}

fn error(status: StatusCode, code: i64, message: &str) -> Response {
    (status, Json(json!({"message": message, "code": code}))).into_response()
}

fn bot_user() -> Value {
    json!({"id": APPLICATION_ID, "username": "Spotter", "global_name": null, "discriminator": "0", "avatar": null, "bot": true})
}

fn message(fake: &Fake, id: &str, channel_id: &str, body: &Value) -> Value {
    json!({
        "id": id,
        "channel_id": channel_id,
        "type": 0,
        "author": bot_user(),
        "content": body.get("content").cloned().unwrap_or(json!("")),
        "embeds": body.get("embeds").cloned().unwrap_or(json!([])),
        "components": body.get("components").cloned().unwrap_or(json!([])),
        "attachments": [], "mentions": [], "mention_roles": [], "mention_everyone": false,
        "pinned": false, "tts": false, "flags": body.get("flags").cloned().unwrap_or(json!(0)),
        "timestamp": "2026-11-26T10:00:00.000000+00:00",
        "edited_timestamp": null,
        "application_id": APPLICATION_ID,
        "webhook_id": null,
        "nonce": fake.next_id.load(Ordering::SeqCst).to_string(),
    })
}

async fn handle(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let response = answer(&fake, &method, &path, &body);
    fake.log.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path,
        body,
        status: response.status().as_u16(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        at: Instant::now(),
    });
    response
}

fn answer(fake: &Fake, method: &Method, path: &str, body: &Value) -> Response {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let Some(["api", "v10", rest @ ..]) = Some(segs.as_slice()) else {
        return error(StatusCode::NOT_FOUND, 0, "404: Not Found");
    };
    // Outages hit what the outbox sends: channels and messages.
    if matches!(rest.first(), Some(&"channels") | Some(&"guilds")) {
        let now = Instant::now();
        let outage = fake
            .outages
            .lock()
            .unwrap()
            .iter()
            .find(|o| o.until > now)
            .cloned();
        if let Some(o) = outage {
            return if o.status == 429 {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", format!("{}", o.retry_after.ceil()))],
                    Json(json!({"message": "You are being rate limited.", "retry_after": o.retry_after, "global": false})),
                )
                    .into_response()
            } else {
                error(
                    StatusCode::from_u16(o.status).unwrap(),
                    0,
                    "Discord is having trouble",
                )
            };
        }
    }
    match (method.as_str(), rest) {
        ("GET", ["gateway"]) => Json(json!({"url": *fake.gateway_url.lock().unwrap()})).into_response(),
        ("GET", ["gateway", "bot"]) => Json(json!({
            "url": *fake.gateway_url.lock().unwrap(), "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        }))
        .into_response(),
        ("POST", ["guilds", guild, "channels"]) => {
            if *guild != GUILD_ID {
                return error(StatusCode::NOT_FOUND, 10004, "Unknown Guild");
            }
            let id = fake.snowflake();
            let channel = json!({
                "id": id, "type": body.get("type").cloned().unwrap_or(json!(0)), "guild_id": guild,
                "name": body["name"], "topic": body.get("topic").cloned().unwrap_or(Value::Null),
                "parent_id": body.get("parent_id").cloned().unwrap_or(Value::Null),
                "position": 7, "permission_overwrites": [], "nsfw": false,
                "last_message_id": null, "rate_limit_per_user": 0, "flags": 0
            });
            fake.channels.lock().unwrap().insert(id, channel.clone());
            (StatusCode::CREATED, Json(channel)).into_response()
        }
        // A DM channel: the same one for the same recipient, as Discord does.
        ("POST", ["users", "@me", "channels"]) => {
            let Some(recipient) = body["recipient_id"].as_str().map(str::to_string) else {
                return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
            };
            let mut channels = fake.channels.lock().unwrap();
            if let Some(dm) = channels
                .values()
                .find(|c| c["type"] == 1 && c["recipients"][0]["id"] == recipient.as_str())
            {
                return Json(dm.clone()).into_response();
            }
            let id = fake.snowflake();
            let dm = json!({
                "id": id, "type": 1, "last_message_id": null, "flags": 0,
                "recipients": [{"id": recipient, "username": "someone", "global_name": null, "discriminator": "0", "avatar": null}]
            });
            channels.insert(id, dm.clone());
            Json(dm).into_response()
        }
        ("POST", ["channels", parent, "threads"]) => {
            let id = fake.snowflake();
            let thread = json!({
                "id": id, "type": body.get("type").cloned().unwrap_or(json!(11)), "guild_id": GUILD_ID,
                "parent_id": parent, "owner_id": APPLICATION_ID, "name": body["name"],
                "last_message_id": null, "rate_limit_per_user": 0, "message_count": 0, "member_count": 1,
                "thread_metadata": {"archived": false, "auto_archive_duration": body.get("auto_archive_duration").cloned().unwrap_or(json!(10080)), "archive_timestamp": "2026-11-26T10:00:00.000000+00:00", "locked": false},
                "total_message_sent": 0, "flags": 0
            });
            fake.channels.lock().unwrap().insert(id, thread.clone());
            (StatusCode::CREATED, Json(thread)).into_response()
        }
        ("POST", ["channels", channel, "messages"]) => {
            if !fake.channels.lock().unwrap().contains_key(*channel) {
                return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
            }
            let id = fake.snowflake();
            let m = message(fake, &id, channel, body);
            fake.messages.lock().unwrap().insert(id, m.clone());
            Json(m).into_response()
        }
        ("GET", ["channels", channel]) => match fake.channels.lock().unwrap().get(*channel) {
            Some(c) => Json(c.clone()).into_response(),
            None => error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"),
        },
        // Publishing to followers: only in an announcement channel, only once per message.
        ("POST", ["channels", channel, "messages", id, "crosspost"]) => {
            if fake.crossposts_limited.load(Ordering::SeqCst) {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "3600")],
                    Json(json!({"message": "You are being rate limited.", "retry_after": 3600.0, "global": false})),
                )
                    .into_response();
            }
            let kind = fake.channels.lock().unwrap().get(*channel).map(|c| c["type"].clone());
            match kind {
                None => return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"),
                Some(k) if k != 5 => {
                    return error(StatusCode::BAD_REQUEST, 50024, "Cannot execute action on this channel type")
                }
                Some(_) => {}
            }
            let mut messages = fake.messages.lock().unwrap();
            match messages.get_mut(*id) {
                Some(m) if m["channel_id"] == *channel => {
                    if m["flags"].as_u64().unwrap_or(0) & 1 == 1 {
                        return error(StatusCode::BAD_REQUEST, 40033, "This message has already been crossposted.");
                    }
                    m["flags"] = json!(m["flags"].as_u64().unwrap_or(0) | 1);
                    Json(m.clone()).into_response()
                }
                _ => error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
            }
        }
        ("PATCH", ["channels", channel, "messages", id]) => {
            let mut messages = fake.messages.lock().unwrap();
            match messages.get_mut(*id) {
                Some(m) if m["channel_id"] == *channel => {
                    for key in ["content", "embeds", "components"] {
                        if let Some(v) = body.get(key) {
                            m[key] = v.clone();
                        }
                    }
                    m["edited_timestamp"] = json!("2026-11-26T10:05:00.000000+00:00");
                    Json(m.clone()).into_response()
                }
                _ => error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
            }
        }
        ("PUT", ["applications", app, "guilds", _guild, "commands"]) => {
            let commands: Vec<Value> = body
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut c| {
                    c["id"] = json!(fake.snowflake());
                    c["application_id"] = json!(app);
                    c["version"] = json!("1");
                    c["type"] = c.get("type").cloned().unwrap_or(json!(1));
                    c
                })
                .collect();
            Json(Value::Array(commands)).into_response()
        }
        ("POST", ["interactions", _id, _token, "callback"]) => StatusCode::NO_CONTENT.into_response(),
        ("PATCH", ["webhooks", _app, _token, "messages", "@original"]) => {
            let id = fake.snowflake();
            Json(message(fake, &id, "1291111111111111111", body)).into_response()
        }
        ("DELETE", ["webhooks", _app, _token, "messages", "@original"]) => {
            StatusCode::NO_CONTENT.into_response()
        }
        ("POST", ["webhooks", _app, _token]) => {
            let id = fake.snowflake();
            Json(message(fake, &id, "1291111111111111111", body)).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, 0, "404: Not Found"),
    }
}

async fn gateway(ws: WebSocketUpgrade, State(fake): State<Arc<Fake>>) -> Response {
    ws.on_upgrade(move |socket| gateway_session(socket, fake))
}

fn record(fake: &Fake, what: &str, body: Value) {
    fake.log.lock().unwrap().push(Recorded {
        method: "GATEWAY".into(),
        path: what.into(),
        body,
        status: 200,
        authorization: None,
        at: Instant::now(),
    });
}

/// One gateway connection: HELLO; READY after IDENTIFY; ACK for each heartbeat; then the
/// dispatched events, with increasing sequence numbers.
async fn gateway_session(mut socket: WebSocket, fake: Arc<Fake>) {
    let send = |v: Value| Message::Text(v.to_string().into());
    if socket
        .send(send(
            json!({"op": 10, "d": {"heartbeat_interval": 41250}, "s": null, "t": null}),
        ))
        .await
        .is_err()
    {
        return;
    }
    let mut events = fake.events.lock().unwrap().as_ref().unwrap().subscribe();
    let mut seq = 0u64;
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(Message::Text(text))) = msg else {
                    match msg {
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            record(&fake, "closed", Value::Null);
                            return;
                        }
                        _ => continue,
                    }
                };
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                match v["op"].as_u64() {
                    Some(1) => {
                        let _ = socket.send(send(json!({"op": 11, "d": null, "s": null, "t": null}))).await;
                    }
                    Some(2) => {
                        let mut d = v["d"].clone();
                        d["token"] = json!("[seen]");
                        record(&fake, "identify", d);
                        seq += 1;
                        let ready = json!({"op": 0, "t": "READY", "s": seq, "d": {
                            "v": 10,
                            "user": bot_user(),
                            "guilds": [{"id": GUILD_ID, "unavailable": true}],
                            "session_id": "fake-session",
                            "resume_gateway_url": *fake.gateway_url.lock().unwrap(),
                            "shard": [0, 1],
                            "application": {"id": APPLICATION_ID, "flags": 0}
                        }});
                        let _ = socket.send(send(ready)).await;
                    }
                    _ => {}
                }
            }
            ev = events.recv() => {
                let Ok((t, d)) = ev else { continue };
                seq += 1;
                if socket.send(send(json!({"op": 0, "t": t, "s": seq, "d": d}))).await.is_err() {
                    return;
                }
            }
        }
    }
}
