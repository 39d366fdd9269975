//! End to end: the real `spotter` binary, as a new user runs it.

mod common;

#[path = "cli/escalation.rs"]
mod escalation;
#[path = "cli/runbooks.rs"]
mod runbooks;
#[path = "cli/subscribers.rs"]
mod subscribers;
#[path = "cli/support.rs"]
mod support;
#[path = "cli/tokens.rs"]
mod tokens;

use common::binary::spotter;
use common::Backend;
use std::path::Path;
use support::*;

fn declare_chat_and_restart(dir: &Path, db: Option<&str>) {
    let server = Server::start(dir, db);
    if db.is_none() {
        assert!(
            dir.join("data/spotter.db").exists(),
            "the SQLite database is created under ./data"
        );
    }
    let token = dir.join("data/api-token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (ok, out) = chat(
        dir,
        &server.url,
        "sysadmin",
        "/incident declare level:3 title:\"MySQL down\"\n",
    );
    assert!(ok, "{out}");
    assert!(
        out.starts_with("Declared INC-1 · level 3 Complete System Failure"),
        "{out}"
    );

    // Refusals are printed and make the exit status non-zero; nothing changes.
    let (ok, out) = chat(
        dir,
        &server.url,
        "nobody",
        "/incident declare level:1 title:x\n/incident list\n",
    );
    assert!(!ok);
    assert!(
        out.contains("✗ not allowed: /incident declare needs role responder"),
        "{out}"
    );
    assert!(
        out.contains("INC-1 · L3 Complete System Failure · declared · MySQL down"),
        "{out}"
    );

    let list = server.incidents(dir);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["level"], 3);
    assert_eq!(list[0]["level_name"], "Complete System Failure");
    server.stop();

    // After a restart it is still there, with the same token.
    let server = Server::start(dir, db);
    let list = server.incidents(dir);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["ref"], "INC-1");
    let (ok, out) = chat(dir, &server.url, "dba", "/incident ack\n");
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "INC-1 acknowledged by Database Administrator (dba); paging stopped"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_install_declares_over_the_console_and_keeps_it_across_restarts_sqlite() {
    with_backend(
        Backend::Sqlite,
        "fresh_install_sqlite",
        declare_chat_and_restart,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_install_declares_over_the_console_and_keeps_it_across_restarts_postgres() {
    with_backend(
        Backend::Postgres,
        "fresh_install_postgres",
        declare_chat_and_restart,
    )
    .await;
}

fn audit_tampering_is_named(dir: &Path, db: Option<&str>) {
    let server = Server::start(dir, db);
    // Resolving needs a commander: the shared token stops at responder, so sysadmin speaks with
    // their own token.
    let token = create_token(dir, db, "sysadmin");
    let (ok, out, err) = run_with(
        dir,
        db,
        &["chat", "--url", &server.url],
        &[("SPOTTER_TOKEN", &token)],
        "/incident declare level:2 title:\"Redis down\"\n/incident ack\n/incident resolve summary:\"restarted\"\n",
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("resolved"), "{out}");
    // The declaration ran the guide's immediate response, from the built-in runbooks written
    // under the default (relative) data folder: its scripts ran (the probes of services this
    // machine does not have fail, and the run goes on past them).
    let runs = server.settle(dir);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["runbook"], "emergency-response");
    assert_eq!(runs[0]["state"], "succeeded", "{:#}", runs[0]);
    server.stop();

    let verify = |dir: &Path| spotter(dir, db).args(["audit", "verify"]).output().unwrap();
    let out = verify(dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "audit log verified: 6 entries, hash chain intact"
    );

    // Someone edits row 2 by hand.
    let url = db
        .map(str::to_string)
        .unwrap_or_else(|| format!("sqlite://{}/data/spotter.db", dir.display()));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        // Someone with write access drops the append-only trigger first.
        let drop = if url.starts_with("sqlite:") {
            "DROP TRIGGER audit_log_no_update"
        } else {
            "DROP TRIGGER audit_log_no_change ON audit_log"
        };
        sqlx::query(drop).execute(&pool).await.unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let out = verify(dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("audit row 2: contents do not match its hash (the row was edited)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_then_names_a_hand_edited_row_sqlite() {
    with_backend(Backend::Sqlite, "audit_sqlite", audit_tampering_is_named).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_then_names_a_hand_edited_row_postgres() {
    with_backend(
        Backend::Postgres,
        "audit_postgres",
        audit_tampering_is_named,
    )
    .await;
}

#[test]
fn config_check_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    // The printed default is a valid file, equal to the built-in one.
    let out = spotter(dir.path(), None)
        .args(["config", "default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let default = String::from_utf8(out.stdout).unwrap();
    assert_eq!(default, spotter_core::config::DEFAULT_TOML);
    std::fs::write(dir.path().join("spotter.toml"), &default).unwrap();
    let out = spotter(dir.path(), None)
        .args(["config", "check", "spotter.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A tier naming an unknown person.
    let broken = default.replacen(
        "notify = [\"sysadmin\"]",
        "notify = [\"sysadmin\", \"bob\"]",
        1,
    );
    let line = broken.lines().position(|l| l.contains("\"bob\"")).unwrap() + 1;
    std::fs::write(dir.path().join("broken.toml"), &broken).unwrap();
    let out = spotter(dir.path(), None)
        .args(["config", "check", "broken.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim(),
        format!(
            "broken.toml:{line}:23: escalation tier names unknown person, team or rotation `bob`"
        )
    );

    // serve refuses to start on it, with the same message.
    let out = spotter(dir.path(), None)
        .args(["--config", "broken.toml", "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.toml:"));
}

#[test]
fn migrate_applies_the_schema_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = spotter(dir.path(), None).arg("migrate").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.path().join("data/spotter.db").exists());
}

#[test]
fn chat_finds_a_server_started_on_another_port_and_errors_name_the_url_they_used() {
    let dir = tempfile::tempdir().unwrap();
    // `serve` on a free port (SPOTTER_LISTEN=127.0.0.1:0), not the configured 8080.
    let server = Server::start(dir.path(), None);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/server-url"))
            .unwrap()
            .trim(),
        server.url
    );
    // No --url: chat finds it through the data folder.
    let (ok, out, err) = run(
        dir.path(),
        None,
        &["chat", "--as", "sysadmin"],
        "/incident declare level:2 title:\"Redis down\"\n",
    );
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("Declared INC-1"), "{out}");
    server.stop();

    // Stopped: the error names the URL it tried and where it came from.
    let (ok, _, err) = run(
        dir.path(),
        None,
        &["chat", "--as", "sysadmin"],
        "/incident list\n",
    );
    assert!(!ok);
    let port = server_port(&dir);
    assert!(
        err.contains(&format!(
            "cannot reach Spotter at http://127.0.0.1:{port} (from data/server-url"
        )),
        "{err}"
    );

    // --url wins, and is named too.
    let dead = format!("http://127.0.0.1:{}", common::binary::closed_port());
    let (ok, _, err) = run(
        dir.path(),
        None,
        &["chat", "--as", "sysadmin", "--url", &dead],
        "/incident list\n",
    );
    assert!(!ok);
    assert!(
        err.contains(&format!("cannot reach Spotter at {dead} (from --url)")),
        "{err}"
    );

    // Without the file: server.public_url, named as such.
    std::fs::remove_file(dir.path().join("data/server-url")).unwrap();
    let (ok, _, err) = run(
        dir.path(),
        None,
        &["chat", "--as", "sysadmin"],
        "/incident list\n",
    );
    assert!(!ok);
    assert!(
        err.contains("cannot reach Spotter at http://127.0.0.1:8080 (from server.public_url)"),
        "{err}"
    );
}

#[test]
fn audit_verify_in_an_empty_folder_creates_nothing_and_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(dir.path(), None, &["audit", "verify"], "");
    assert!(!ok, "{out}");
    assert_eq!(
        err.trim(),
        "error: no database at data/spotter.db; start `spotter serve` or run `spotter migrate` first"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "audit verify created files: {:?}",
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_on_a_missing_or_empty_postgres_database_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, pg)) =
        common::database(Backend::Postgres, "audit_verify_missing_pg", dir.path()).await
    else {
        return;
    };
    let missing = format!("{}_missing", url);
    let path = dir.path().to_path_buf();
    let (url2, missing2) = (url.clone(), missing.clone());
    let (missing_err, empty_err) = tokio::task::spawn_blocking(move || {
        let (ok, _, missing_err) = run(&path, Some(&missing2), &["audit", "verify"], "");
        assert!(!ok);
        let (ok, _, empty_err) = run(&path, Some(&url2), &["audit", "verify"], "");
        assert!(!ok);
        (missing_err, empty_err)
    })
    .await
    .unwrap();
    assert_eq!(
        missing_err.trim(),
        format!(
            "error: no database at {missing}; start `spotter serve` or run `spotter migrate` first"
        )
    );
    assert!(
        empty_err.starts_with(&format!("error: the database at {url} is not ready (")),
        "{empty_err}"
    );
    assert!(
        empty_err
            .trim_end()
            .ends_with("start `spotter serve` or run `spotter migrate` first"),
        "{empty_err}"
    );
    // Nothing was created in it: no migrations table, no schema.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(tables, 0);
    if let Some(pg) = pg {
        pg.drop_db().await;
    }
}

#[test]
fn discord_register_without_a_discord_section_is_an_error_even_as_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["discord", "register", "--dry-run"][..],
        &["discord", "register"][..],
    ] {
        let (ok, out, err) = run(dir.path(), None, args, "");
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.starts_with("error: no [discord] section in the configuration"),
            "{err}"
        );
    }
}

#[test]
fn config_check_reports_every_problem_in_one_run_naming_table_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let broken = spotter_core::config::DEFAULT_TOML
        .replacen(
            "id = \"dba\"\nname = \"Database Administrator\"\nemail = \"dba@company.com\"\nroles = [\"commander\", \"approver\"]",
            "id = \"dba\"\nname = \"Database Administrator\"\nemail = \"dba@company.com\"\nroles = \"commander\"",
            1,
        )
        .replacen("max_connections = 8", "max_connections = \"eight\"", 1)
        .replacen(
            "notify = [\"sysadmin\"]",
            "notify = [\"sysadmin\", \"bob\"]",
            1,
        );
    let line = |needle: &str| broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
    std::fs::write(dir.path().join("broken.toml"), &broken).unwrap();
    let (ok, out, err) = run(dir.path(), None, &["config", "check", "broken.toml"], "");
    assert!(!ok, "{out}");
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        vec![
            format!(
                "broken.toml:{}:19: [database]: max_connections: expected a whole number, e.g. 8; found string \"eight\"",
                line("max_connections")
            ),
            format!(
                "broken.toml:{}:9: [[person]] #2 (id = \"dba\"): roles: expected an array of role names, e.g. [\"responder\"]; found string \"commander\"",
                line("roles = \"commander\"")
            ),
            format!(
                "broken.toml:{}:23: escalation tier names unknown person, team or rotation `bob`",
                line("\"bob\"")
            ),
        ]
    );
}
