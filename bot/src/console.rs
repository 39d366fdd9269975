//! The console chat: the same words as Discord, typed in a terminal or piped in.
//!
//! It talks to a running server through `POST /api/v1/commands`, so what it does is exactly what
//! any other door does, with the server's roles and rules.

use anyhow::{bail, Context};
use serde::Deserialize;
use std::io::{BufRead, IsTerminal, Write};

pub struct ConsoleChat {
    client: reqwest::Client,
    url: String,
    /// Where the URL came from (`--url`, the file `serve` left, the config), for error messages.
    origin: Option<String>,
    token: String,
    /// The person id to speak as; `None` with a person token (the server knows whose it is).
    user: Option<String>,
}

#[derive(Deserialize)]
struct CommandResponse {
    ok: bool,
    reply: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

/// How a session ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub sent: usize,
    pub refused: usize,
}

impl ConsoleChat {
    /// `url` is the server's base URL (`http://127.0.0.1:8080`); `token` the API bearer token (a
    /// person's own, or the shared one); `user` the person id to speak as (required with the
    /// shared token; with a person token it must be that person, or `None`).
    pub fn new(url: &str, token: String, user: Option<String>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(ConsoleChat {
            client,
            url: url.trim_end_matches('/').to_string(),
            origin: None,
            token,
            user,
        })
    }

    /// Says in every error where the URL came from ("from data/server-url").
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// "http://127.0.0.1:8080 (from data/server-url)".
    fn server(&self) -> String {
        match &self.origin {
            Some(o) => format!("{} ({o})", self.url),
            None => self.url.clone(),
        }
    }

    /// Sends one line; returns (ok, reply).
    pub async fn send(&self, line: &str) -> anyhow::Result<(bool, String)> {
        let res = self
            .client
            .post(format!("{}/api/v1/commands", self.url))
            .bearer_auth(&self.token)
            .json(&match &self.user {
                Some(user) => serde_json::json!({"text": line, "user": user, "source": "chat"}),
                None => serde_json::json!({"text": line, "source": "chat"}),
            })
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach Spotter at {}: {}; is `spotter serve` running? (--url picks \
                     another server)",
                    self.server(),
                    crate::transport::describe(e)
                )
            })?;
        let status = res.status();
        let body = res.text().await.map_err(|e| {
            anyhow::anyhow!(
                "reading the reply from {}: {}",
                self.server(),
                crate::transport::describe(e)
            )
        })?;
        if status.is_success() {
            let r: CommandResponse = serde_json::from_str(&body).with_context(|| {
                format!(
                    "the reply from {} is not a Spotter command response; is that Spotter?",
                    self.server()
                )
            })?;
            return Ok((r.ok, r.reply));
        }
        let msg = serde_json::from_str::<ErrorResponse>(&body)
            .map(|e| e.error)
            .unwrap_or(body);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "{} refused the API token (401): set SPOTTER_TOKEN to your own token (`spotter \
                 token create --person ID`), or SPOTTER_API_TOKEN to the shared one, or run next \
                 to the server's data folder",
                self.server()
            );
        }
        if status == reqwest::StatusCode::FORBIDDEN {
            bail!("{} refused (403): {msg}", self.server());
        }
        bail!("{} answered {status}: {msg}", self.server())
    }

    /// Reads commands from stdin until EOF: a prompt on a terminal, silent line-by-line otherwise.
    pub async fn run_stdin(&self) -> anyhow::Result<Summary> {
        let stdin = std::io::stdin();
        let interactive = stdin.is_terminal();
        if interactive {
            let who = match &self.user {
                Some(u) => format!("as `{u}`"),
                None => "with your own token".to_string(),
            };
            println!(
                "Spotter chat {who} on {} — /help lists commands, Ctrl-D quits.",
                self.url
            );
        }
        let mut summary = Summary::default();
        let mut lines = stdin.lock().lines();
        loop {
            if interactive {
                print!("spotter> ");
                std::io::stdout().flush().ok();
            }
            // stdin is read on a blocking thread so the runtime keeps serving the HTTP client.
            let next = tokio::task::block_in_place(|| lines.next());
            let Some(line) = next else { break };
            let line = line.context("reading stdin")?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if interactive && matches!(line, "exit" | "quit" | "/quit" | "/exit") {
                break;
            }
            summary.sent += 1;
            match self.send(line).await {
                Ok((ok, reply)) => {
                    if !ok {
                        summary.refused += 1;
                        println!("✗ {reply}");
                    } else {
                        println!("{reply}");
                    }
                }
                Err(e) if interactive => {
                    summary.refused += 1;
                    eprintln!("error: {e:#}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(summary)
    }
}
