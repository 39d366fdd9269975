//! The API bearer token.
//!
//! Taken from the environment variable named by `api.token_env` when it is set; otherwise
//! generated on first start and kept in `<data_dir>/api-token` with mode 0600, where `spotter
//! chat` on the same machine finds it. The token is never printed.

use anyhow::Context;
use spotter_core::config::Config;
use spotter_core::Secret;
use std::io::Write;
use std::path::PathBuf;

pub const TOKEN_FILE: &str = "api-token";

pub fn token_path(config: &Config) -> PathBuf {
    config.server.data_dir.join(TOKEN_FILE)
}

/// Where the server's token came from, for the start-up log.
pub enum TokenSource {
    Env(String),
    File(PathBuf),
    Generated(PathBuf),
}

/// The token the server accepts: env var, else the stored file, else a new one written to it.
pub fn load_or_create(config: &Config) -> anyhow::Result<(Secret, TokenSource)> {
    if let Some(t) = std::env::var(&config.api.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok((
            Secret::new(t.trim()),
            TokenSource::Env(config.api.token_env.clone()),
        ));
    }
    let path = token_path(config);
    if let Some(t) = read(&path)? {
        return Ok((t, TokenSource::File(path)));
    }
    std::fs::create_dir_all(&config.server.data_dir)
        .with_context(|| format!("cannot create {}", config.server.data_dir.display()))?;
    let token = spotter_core::random_token(32);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(&path) {
        Ok(mut f) => {
            f.write_all(token.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok((Secret::new(token), TokenSource::Generated(path)))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let t = read(&path)?.context("the API token file appeared empty")?;
            Ok((t, TokenSource::File(path)))
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// The token a client (`spotter chat`) should send: env var, else the server's file.
pub fn for_client(config: &Config) -> anyhow::Result<Secret> {
    if let Some(t) = std::env::var(&config.api.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(Secret::new(t.trim()));
    }
    let path = token_path(config);
    read(&path)?.with_context(|| {
        format!(
            "no API token: set {} or run where the server keeps {} (start `spotter serve` once to create it)",
            config.api.token_env,
            path.display()
        )
    })
}

fn read(path: &std::path::Path) -> anyhow::Result<Option<Secret>> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(Secret::new(s.trim()))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}
