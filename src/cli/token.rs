//! `spotter token create | list | revoke`: per-person API tokens.
//!
//! They need the server's database (the same `database.url`), never create it, and never show a
//! token except once, when it is created.

use super::database::open_existing;
use spotter_core::clock::{Clock, SystemClock};
use spotter_core::config::Config;
use spotter_core::store::SqlStore;
use spotter_core::store::Store;
use spotter_webhooks::api_tokens::{self, IssueError};
use std::process::ExitCode;

/// Who did it, for the audit log: the operating-system user at the terminal.
fn by() -> String {
    match std::env::var("USER") {
        Ok(u) if !u.trim().is_empty() => format!("cli:{}", u.trim()),
        _ => "cli".into(),
    }
}

/// Minutes are enough for a listing (the type is chrono's, reached through the store's rows).
macro_rules! when {
    ($t:expr) => {
        $t.format("%Y-%m-%d %H:%M UTC").to_string()
    };
}

/// The store for a command that writes the audit log: existing only, with the chain's key.
async fn open_for_audit(config: &Config) -> anyhow::Result<SqlStore> {
    // The database first: without one, that is what to say.
    let store = open_existing(config).await?;
    match crate::audit_key::load(config, false) {
        Ok(key) => Ok(store.with_audit_key(key)),
        Err(e) => {
            store.close().await;
            Err(e)
        }
    }
}

pub async fn create(config: Config, person: String) -> anyhow::Result<ExitCode> {
    // Refuse an unknown person before touching the database.
    if config.person(person.trim()).is_none() {
        let e = IssueError::UnknownPerson {
            given: person.clone(),
            known: config
                .people
                .keys()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        anyhow::bail!("{e}");
    }
    let store = open_for_audit(&config).await?;
    let now = SystemClock.now();
    let issued = api_tokens::issue(&store, &config, &person, &by(), now).await;
    store.close().await;
    let issued = issued?;
    let name = config.display_name(issued.person.as_str());
    eprintln!(
        "API token {} created for {name}. It is shown this once; keep it like a password.\n\
         Use it as `Authorization: Bearer <token>`, or SPOTTER_TOKEN=<token> spotter chat.\n\
         Revoke it with: spotter token revoke {}",
        issued.id, issued.id
    );
    // Alone on stdout, so `TOKEN=$(spotter token create --person dba)` captures just the token.
    println!("{}", issued.token.expose());
    Ok(ExitCode::SUCCESS)
}

pub async fn list(config: Config) -> anyhow::Result<ExitCode> {
    let store = open_existing(&config).await?;
    let tokens = store.api_tokens().await;
    store.close().await;
    let tokens = tokens?;
    if tokens.is_empty() {
        println!("no API tokens yet; create one with: spotter token create --person ID");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12}  {:<16}  {:<20}  {:<20}  STATUS",
        "ID", "PERSON", "CREATED", "LAST USED"
    );
    for t in tokens {
        let status = match t.revoked_at {
            Some(r) => format!("revoked {}", when!(r)),
            None if config.person(&t.person).is_none() => {
                "inactive (person no longer configured)".into()
            }
            None => "active".into(),
        };
        println!(
            "{:<12}  {:<16}  {:<20}  {:<20}  {status}",
            t.id,
            t.person,
            when!(t.created_at),
            t.last_used_at
                .map(|u| when!(u))
                .unwrap_or_else(|| "never".into()),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn revoke(config: Config, id: String) -> anyhow::Result<ExitCode> {
    let store = open_for_audit(&config).await?;
    let now = SystemClock.now();
    let revoked = api_tokens::revoke(&store, &id, &by(), now).await;
    store.close().await;
    let shown = api_tokens::id_of(id.trim())
        .unwrap_or(id.trim())
        .to_string();
    match revoked? {
        None => anyhow::bail!("no API token has id `{shown}`; `spotter token list` shows them"),
        Some(t) => {
            let at = t.revoked_at.map(|r| when!(r)).unwrap_or_default();
            if t.revoked_at.is_some_and(|r| r < now) {
                println!(
                    "API token {} of {} was already revoked ({at})",
                    t.id, t.person
                );
            } else {
                println!(
                    "API token {} of {} revoked; requests with it are refused from now on",
                    t.id, t.person
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
