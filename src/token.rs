//! The API bearer token.
//!
//! Taken from the environment variable named by `api.token_env` when it is set; otherwise
//! generated on first start and kept in `<data_dir>/api-token` with mode 0600 (through
//! [`crate::secret_file`]), where `spotter chat` on the same machine finds it. The token is never
//! printed.

use crate::secret_file;
use anyhow::Context;
use spotter_core::config::Config;
use spotter_core::Secret;
use std::path::PathBuf;

pub const TOKEN_FILE: &str = "api-token";

pub fn token_path(config: &Config) -> PathBuf {
    config.server.data_dir.join(TOKEN_FILE)
}

/// Where the server's token came from, for the start-up log.
pub type TokenSource = secret_file::Origin;

fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// The token the server accepts: env var, else the stored file, else a new one written to it.
pub fn load_or_create(config: &Config) -> anyhow::Result<(Secret, TokenSource)> {
    if let Some(t) = secret_file::from_env(&process_env, &config.api.token_env) {
        return Ok((t, TokenSource::Env(config.api.token_env.clone())));
    }
    secret_file::load_or_create(&token_path(config), || spotter_core::random_token(32))
}

/// The token a client (`spotter chat`) should send: env var, else the server's file.
pub fn for_client(config: &Config) -> anyhow::Result<Secret> {
    if let Some(t) = secret_file::from_env(&process_env, &config.api.token_env) {
        return Ok(t);
    }
    let path = token_path(config);
    secret_file::read(&path)?.with_context(|| {
        format!(
            "no API token: set {} or run where the server keeps {} (start `spotter serve` once to create it)",
            config.api.token_env,
            path.display()
        )
    })
}
