//! `spotter subscribers add | list | remove`: the status page's subscribers.
//!
//! They work on the server's database (never creating it) through the same engine rules as the
//! page's form: a webhook subscriber is active at once (whoever runs this owns the endpoint),
//! an email address gets a confirmation mail first (the running server sends it). Webhook
//! secrets stay in the environment variable `--secret-env` names; only its name is stored.

use super::database::open_existing;
use spotter_core::clock::SystemClock;
use spotter_core::config::Config;
use spotter_core::engine::subscribers::EmailSubscribed;
use spotter_core::metrics::Metrics;
use spotter_core::store::{Store, SubscriberKind, SubscriberState};
use spotter_core::Engine;
use std::process::ExitCode;
use std::sync::Arc;

/// What `add` was asked to add.
pub enum Add {
    Webhook { url: String, secret_env: String },
    Email { address: String },
}

/// Who did it, for the audit log: the operating-system user at the terminal.
fn by() -> String {
    match std::env::var("USER") {
        Ok(u) if !u.trim().is_empty() => format!("cli:{}", u.trim()),
        _ => "cli".into(),
    }
}

/// The engine on the existing database, with the server's link key (derived from the audit
/// key), so the links it makes are the ones the server accepts.
async fn engine(config: Config) -> anyhow::Result<Engine> {
    let store = open_existing(&config).await?;
    let key = match crate::audit_key::load(&config, false) {
        Ok(k) => k,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    let link_key = key.derive("ack links");
    let store = store.with_audit_key(key);
    Ok(Engine::new(
        Arc::new(store),
        Arc::new(config),
        Arc::new(SystemClock),
        Arc::new(Metrics::new()),
    )
    .with_link_key(link_key))
}

pub async fn add(config: Config, what: Add, components: Vec<String>) -> anyhow::Result<ExitCode> {
    let engine = engine(config).await?;
    match what {
        Add::Webhook { url, secret_env } => {
            let s = engine
                .add_webhook_subscriber(&url, &secret_env, &components, &by())
                .await?
                .map_err(anyhow::Error::msg)?;
            if std::env::var_os(&secret_env).is_none() {
                eprintln!(
                    "warning: {secret_env} is not set in this environment; the server needs it set when it delivers"
                );
            }
            println!(
                "subscriber {} added: webhook {} ({}), signed with ${secret_env}",
                s.id,
                s.address,
                scope(&s.components)
            );
        }
        Add::Email { address } => {
            let outcome = engine
                .subscribe_email(&address, &components, &by())
                .await?
                .map_err(anyhow::Error::msg)?;
            match outcome {
                EmailSubscribed::Pending(s) | EmailSubscribed::Resent(s) => println!(
                    "subscriber {} pending: the server mails {} a confirmation link; updates start once it is confirmed",
                    s.id, s.address
                ),
                EmailSubscribed::Already(s) => println!(
                    "{} is subscribed already (subscriber {}); nothing changed",
                    s.address, s.id
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn scope(c: &[spotter_core::domain::ComponentId]) -> String {
    if c.is_empty() {
        "all components".into()
    } else {
        c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
    }
}

pub async fn list(config: Config) -> anyhow::Result<ExitCode> {
    let store = open_existing(&config).await?;
    let all = store.subscribers().await;
    let failures = store.broadcast_failures().await;
    store.close().await;
    let (all, failures) = (all?, failures?);
    let live: Vec<_> = all
        .iter()
        .filter(|s| s.state != SubscriberState::Removed)
        .collect();
    if live.is_empty() {
        println!("no subscribers; add one with: spotter subscribers add --webhook URL --secret-env VAR (or --email ADDRESS)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<4}  {:<7}  {:<8}  {:<18}  {:<20}  ADDRESS",
        "ID", "KIND", "STATE", "COMPONENTS", "UNDELIVERED"
    );
    for s in live {
        let dead = failures
            .iter()
            .find(|(k, _, _)| k == &format!("subscriber:{}", s.id));
        let undelivered = match dead {
            Some((_, n, _)) => format!("{n} given up"),
            None => "-".into(),
        };
        let kind = match s.kind {
            SubscriberKind::Webhook => "webhook",
            SubscriberKind::Email => "email",
        };
        let address = match &s.secret_env {
            Some(v) => format!("{} (${v})", s.address),
            None => s.address.clone(),
        };
        println!(
            "{:<4}  {:<7}  {:<8}  {:<18}  {:<20}  {address}",
            s.id,
            kind,
            s.state.as_str(),
            scope(&s.components),
            undelivered
        );
        if let Some((_, _, Some(err))) = dead {
            println!("      last error: {err}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(config: Config, id: String) -> anyhow::Result<ExitCode> {
    let id: i64 = id.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "`{id}` is not a subscriber id (a number; spotter subscribers list shows them)"
        )
    })?;
    let engine = engine(config).await?;
    let s = engine
        .remove_subscriber(id, &by())
        .await?
        .map_err(anyhow::Error::msg)?;
    println!(
        "subscriber {} removed ({}); what was queued for it is cancelled",
        s.id, s.address
    );
    Ok(ExitCode::SUCCESS)
}
