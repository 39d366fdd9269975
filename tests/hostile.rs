//! Hostile input at every door, through the real application: each answer is the right status,
//! nothing changes in the store, the process stays up, `/metrics` stays small, and no secret
//! reaches the logs. One module per door family.

mod common;
mod fake_discord;

#[path = "hostile/http.rs"]
mod http;

#[path = "hostile/logs.rs"]
mod logs;

#[path = "hostile/tokens.rs"]
mod tokens;

#[path = "hostile/replays.rs"]
mod replays;

#[path = "hostile/proxies.rs"]
mod proxies;
