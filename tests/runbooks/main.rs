//! Runbooks end to end, as a new user would check them: through the command API, with real
//! processes, a real MariaDB, real probes, on both backends.
//!
//! - `drill`: the guide's database recovery on MariaDB: backup the guide's way, corrupt, request,
//!   a second person approves, row counts restored, every step on the timeline, the backup key
//!   nowhere in stored output, timeline, audit log, chat or replies.
//! - `refusals`: self-approval, an expired approval, a used approval, a viewer requesting,
//!   injection in parameters, unknown parameters; each refused and no process started.
//! - `execution`: dry runs, redaction of planted secrets, timeouts and cancels that kill the
//!   process group, one run per target, probes, the emergency response on declaration.
//! - `crash`: kill -9 during a running step; after the restart the run is `interrupted` and
//!   nothing re-ran.

#[path = "../common/mod.rs"]
mod common;

mod crash;
mod drill;
mod execution;
mod refusals;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A runbook directory of the test's own: `files` are (relative path, content); scripts are made
/// executable.
pub fn runbook_dir(root: &Path, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join("runbooks");
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        if name.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    dir
}

/// Options for an app whose runbooks are `dir` (no automatic run on declaration unless asked).
pub fn with_runbooks(
    dir: PathBuf,
    env: &[(&str, &str)],
    also: impl FnOnce(&mut spotter_core::config::Config) + Send + 'static,
) -> common::Options {
    common::Options {
        configure: Some(Box::new(move |c| {
            c.runbooks.dir = Some(dir);
            c.runbooks.on_declare = None;
            also(c);
        })),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        clock: None,
    }
}

/// Waits until the run reaches one of `states`; returns it.
pub async fn wait_run(app: &common::TestApp, id: i64, states: &[&str], within: Duration) -> Value {
    let start = std::time::Instant::now();
    loop {
        let run = app.get_json(&format!("/api/v1/runs/{id}")).await;
        if states.contains(&run["state"].as_str().unwrap_or("")) {
            return run;
        }
        assert!(
            start.elapsed() < within,
            "run #{id} did not reach {states:?} within {within:?}: {run:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The run id of a `/runbook run` answer.
pub fn run_id(v: &Value) -> i64 {
    v["run"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no run id in {v:#}"))
}

/// Everything Spotter stored or sent that a secret must not be in: every run with its output,
/// every incident with its timeline, the audit log and the outbox (chat posts, pages).
pub async fn everything_stored(app: &common::TestApp) -> String {
    let mut out = String::new();
    let runs = app.get_json("/api/v1/runs?state=all").await;
    out.push_str(&runs.to_string());
    for r in runs["runs"].as_array().unwrap() {
        let id = r["id"].as_i64().unwrap();
        out.push_str(
            &app.get_json(&format!("/api/v1/runs/{id}"))
                .await
                .to_string(),
        );
    }
    for i in app.incidents("all").await {
        let r = i["ref"].as_str().unwrap().to_string();
        out.push_str(&app.incident(&r).await.to_string());
    }
    let store = app.engine.store();
    for e in store.audit_log().await.unwrap().entries {
        out.push_str(&e.detail);
        out.push_str(&e.subject);
    }
    for m in store.outbox(100_000).await.unwrap() {
        out.push_str(&m.text);
    }
    out
}
