//! `spotter chat`: the console chat against a running server.

use crate::server_url;
use spotter_bot::console::ConsoleChat;
use spotter_core::config::Config;
use std::process::ExitCode;

/// The server to talk to and where that came from: `--url`, else the address `serve` left in the
/// data folder (it knows the port it really bound, `SPOTTER_LISTEN` included), else
/// `server.public_url`.
pub fn server(config: &Config, url: Option<String>) -> anyhow::Result<(String, String)> {
    if let Some(u) = url {
        return Ok((u, "from --url".into()));
    }
    if let Some(u) = server_url::read(&config.server.data_dir)? {
        let file = server_url::path(&config.server.data_dir);
        return Ok((
            u,
            format!("from {}, left by `spotter serve`", file.display()),
        ));
    }
    Ok((
        config.server.public_url.clone(),
        "from server.public_url".into(),
    ))
}

/// The variable holding a person's own API token, for `spotter chat`.
pub const PERSON_TOKEN_ENV: &str = "SPOTTER_TOKEN";

pub async fn run(
    config: Config,
    user: Option<String>,
    url: Option<String>,
) -> anyhow::Result<ExitCode> {
    // A person's own token says who speaks; the shared one must be told (and is capped at
    // `api.shared_token_role`).
    let personal = std::env::var(PERSON_TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let (token, user) = match personal {
        Some(t) => (t, user),
        None => {
            let user = user.or_else(|| std::env::var("USER").ok()).ok_or_else(|| {
                anyhow::anyhow!(
                    "say who you are: spotter chat --as PERSON (a person id from the config), or \
                     set {PERSON_TOKEN_ENV} to your own token"
                )
            })?;
            let shared = crate::token::for_client(&config)?;
            (shared.expose().to_string(), Some(user))
        }
    };
    let (url, origin) = server(&config, url)?;
    let chat = ConsoleChat::new(&url, token, user)?.with_origin(origin);
    let summary = chat.run_stdin().await?;
    Ok(
        if summary.refused > 0 && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}
