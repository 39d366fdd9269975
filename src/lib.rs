//! The `spotter` application: wires the core, the HTTP surface and the chat adapters into one
//! process, and the command line that drives it.
//!
//! Map of the modules:
//! - [`startup`]: [`startup::Application`] — build (connect, migrate, bind), run until stopped.
//! - [`cli`]: the clap command line (`serve`, `chat`, `config`, `migrate`, `audit verify`,
//!   `discord register`).
//! - [`server_url`]: the address `serve` bound, left in the data folder for `spotter chat`.
//! - [`token`]: the API bearer token: from the environment, or generated once into the data folder.
//! - [`sources`]: the alert sources' credentials, likewise; a generated one is shown once with
//!   the snippet to paste into the sender.
//! - [`secret_file`]: the one way secrets are kept in files (mode 0600, created exactly once).
//! - [`telemetry`]: tracing subscriber set-up, once per process.

pub mod audit_key;
pub mod cli;
pub mod secret_file;
pub mod server_url;
pub mod sources;
pub mod startup;
pub mod telemetry;
pub mod token;
