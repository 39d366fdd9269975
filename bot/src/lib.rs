//! Spotter's chat adapters: inbound doors that carry people's words to the core command engine
//! and its replies back. Each adapter is thin; the grammar, roles and rules live in
//! `spotter-core`.
//!
//! Map of the modules:
//! - [`console`]: `spotter chat`, a terminal chat over the HTTP command API (reads stdin line by
//!   line, or prompts when stdin is a terminal).
//!
//! Discord (gateway and HTTP interactions) joins here as `discord`.

pub mod console;
