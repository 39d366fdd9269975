//! Launching the real `spotter` binary, as a user would.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_spotter");

/// Spotter's own variables: removed, so a test sees only what it sets itself. With the source
/// variables unset `serve` generates each source's credential into `data/sources/<id>.secret`;
/// with `RUST_LOG` unset it logs its "listening on" line.
pub const SPOTTER_VARS: &[&str] = &[
    "SPOTTER_CONFIG",
    "SPOTTER_DATABASE_URL",
    "SPOTTER_LISTEN",
    "SPOTTER_API_TOKEN",
    "SPOTTER_USER",
    "SPOTTER_ALERTMANAGER_TOKEN",
    "SPOTTER_GRAFANA_TOKEN",
    "SPOTTER_PAGERDUTY_ROUTING_KEY",
    "SPOTTER_BACKUP_JOBS_SECRET",
    "RUST_LOG",
];

/// `spotter` run in `dir` with a clean environment, on `db` when given (else the embedded
/// SQLite default under `dir/data`).
pub fn spotter(dir: &Path, db: Option<&str>) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir);
    for var in SPOTTER_VARS {
        c.env_remove(var);
    }
    if let Some(db) = db {
        c.env("SPOTTER_DATABASE_URL", db);
    }
    c
}

/// A blocking client for talking to a spawned server (never through a proxy).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}
