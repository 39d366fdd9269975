//! Hostile input across every door: each answer is the right one, nothing changes, the process
//! stays up, and no secret reaches the logs.

mod common;
mod fake_discord;

#[path = "hostile/logs.rs"]
mod logs;

#[path = "hostile/tokens.rs"]
mod tokens;
