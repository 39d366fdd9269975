//! Commands on the database: `migrate` (which may create it) and the read-only ones (which never
//! do: they open an existing database or say what is missing).

use spotter_core::audit;
use spotter_core::config::{redact_url, Config};
use spotter_core::store::{SqlStore, Store};
use std::path::PathBuf;
use std::process::ExitCode;

/// What to do when the database is missing.
const FIRST: &str = "start `spotter serve` or run `spotter migrate` first";

/// Opens the database for a command that changes it: a SQLite file is created when missing.
pub async fn open_for_writing(config: &Config) -> anyhow::Result<SqlStore> {
    SqlStore::connect(&config.database.url, 2).await
}

/// Opens the database for a command that only reads: never creates a file or a schema. A SQLite
/// file must exist (and is opened `mode=rw`, so a race cannot create it either); a PostgreSQL
/// database must exist; both must carry this build's schema.
///
/// # Errors
/// Names what is missing and how to get it: "no database at data/spotter.db; start `spotter
/// serve` or run `spotter migrate` first".
pub async fn open_existing(config: &Config) -> anyhow::Result<SqlStore> {
    let url = &config.database.url;
    let shown = redact_url(url);
    let url = match sqlite_path(url) {
        Some(path) => {
            if !path.is_file() {
                anyhow::bail!("no database at {}; {FIRST}", path.display());
            }
            read_write_only(url)
        }
        None => url.clone(),
    };
    let store = match SqlStore::connect(&url, 2).await {
        Ok(s) => s,
        Err(e) if format!("{e:#}").contains("does not exist") => {
            anyhow::bail!("no database at {shown}; {FIRST}")
        }
        Err(e) => return Err(e.context(format!("cannot open the database at {shown}"))),
    };
    if let Err(e) = store.ready().await {
        store.close().await;
        anyhow::bail!("the database at {shown} is not ready ({e}); {FIRST}");
    }
    Ok(store)
}

/// The file of a `sqlite:` URL (relative to the working folder, as SQLite opens it); `None` for
/// other backends and in-memory databases.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// The URL with `mode=rw`: open read-write, never create.
fn read_write_only(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("mode="))
        .collect();
    params.push("mode=rw");
    format!("{base}?{}", params.join("&"))
}

pub async fn migrate(config: Config) -> anyhow::Result<ExitCode> {
    let store = open_for_writing(&config).await?;
    store.migrate().await?;
    println!("migrations applied ({:?})", store.backend());
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn audit_verify(config: Config, head: Option<audit::Head>) -> anyhow::Result<ExitCode> {
    let store = open_existing(&config).await?;
    let read = async {
        let key = crate::audit_key::load(&config, false)?;
        anyhow::Ok((key, store.audit_log().await?))
    }
    .await;
    store.close().await;
    let (key, log) = read?;
    let checked =
        audit::verify(&key, &log.entries, log.head_seq, &log.head_hash).and_then(|n| match &head {
            Some(h) => audit::verify_head(&log.entries, h).map(|()| n),
            None => Ok(n),
        });
    match checked {
        Ok(n) => {
            let pinned = match &head {
                Some(h) => format!("; contains the exported head {h}"),
                None => String::new(),
            };
            println!("audit log verified: {n} entries, hash chain intact{pinned}");
            Ok(ExitCode::SUCCESS)
        }
        Err(v) => {
            eprintln!("audit log verification FAILED: {v}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn audit_head(config: Config) -> anyhow::Result<ExitCode> {
    let store = open_existing(&config).await?;
    let log = store.audit_log().await;
    store.close().await;
    println!("{}", audit::head_of(&log?.entries));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file_and_open_without_creating() {
        assert_eq!(
            sqlite_path("sqlite://data/spotter.db?mode=rwc"),
            Some(PathBuf::from("data/spotter.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://u@h/db"), None);
        assert_eq!(
            read_write_only("sqlite://data/x.db?mode=rwc&cache=shared"),
            "sqlite://data/x.db?cache=shared&mode=rw"
        );
        assert_eq!(
            read_write_only("sqlite:///abs/x.db"),
            "sqlite:///abs/x.db?mode=rw"
        );
    }
}
