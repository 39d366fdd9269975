//! Spotter's chat adapters: inbound doors that carry people's words to the core command engine
//! and its replies back. Each adapter is thin; the grammar, roles and rules live in
//! `spotter-core`.
//!
//! Map of the modules:
//! - [`console`]: `spotter chat`, a terminal chat over the HTTP command API (reads stdin line by
//!   line, or prompts when stdin is a terminal).
//! - [`discord`]: the Discord bot (serenity): slash commands generated from the core command
//!   table, incident channels with a live card and buttons, gateway or HTTP-interactions mode,
//!   and the outbox notifier that posts and edits through Discord's REST API.
//! - [`transport`]: outbound HTTP errors as they may be shown: without their URL.

pub mod console;
pub mod discord;
pub mod transport;
