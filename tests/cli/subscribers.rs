//! `spotter subscribers add | list | remove` through the real binary, beside a running server.

use super::support::*;
use crate::common::Backend;
use std::path::Path;

fn subscribers_are_added_listed_and_removed(dir: &Path, db: Option<&str>) {
    let server = Server::start(dir, db);
    let (ok, out, _) = run(dir, db, &["subscribers", "list"], "");
    assert!(ok && out.starts_with("no subscribers"), "{out}");

    // Bad input names the option and the accepted form, and adds nothing.
    for (args, expect) in [
        (
            vec![
                "--webhook",
                "ftp://example.com/x",
                "--secret-env",
                "HOOK_SECRET",
            ],
            "--webhook `ftp://example.com/x` is not an http(s) URL; e.g. https://",
        ),
        (
            vec![
                "--webhook",
                "https://example.com/x",
                "--secret-env",
                "1-bad",
            ],
            "--secret-env `1-bad` is not an environment variable name",
        ),
        (
            vec![
                "--webhook",
                "https://example.com/x",
                "--secret-env",
                "HOOK_SECRET",
                "--component",
                "nope",
            ],
            "--component `nope` is not configured; one of: ",
        ),
        (
            vec!["--email", "someone@example.com"],
            "email subscriptions need an [smtp] section",
        ),
    ] {
        let mut all = vec!["subscribers", "add"];
        all.extend(args);
        let (ok, out, err) = run(dir, db, &all, "");
        assert!(!ok, "{out}");
        assert!(err.contains(expect), "{err}");
    }
    let (_, out, err) = run(dir, db, &["subscribers", "add", "--secret-env", "X"], "");
    assert!(
        err.contains("--webhook") && err.contains("--email"),
        "clap names both: {out}{err}"
    );

    let (ok, out, err) = run(
        dir,
        db,
        &[
            "subscribers",
            "add",
            "--webhook",
            "https://hooks.example.com/status",
            "--secret-env",
            "HOOK_SECRET",
            "--component",
            "database",
        ],
        "",
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("subscriber 1 added: webhook https://hooks.example.com/status (database), signed with $HOOK_SECRET"), "{out}");
    let (ok, _, err) = run(
        dir,
        db,
        &[
            "subscribers",
            "add",
            "--webhook",
            "https://hooks.example.com/status",
            "--secret-env",
            "HOOK_SECRET",
        ],
        "",
    );
    assert!(
        !ok && err.contains("is subscribed already (subscriber 1)"),
        "{err}"
    );
    let (ok, out, _) = run(dir, db, &["subscribers", "list"], "");
    assert!(ok);
    let row = out.lines().find(|l| l.starts_with("1 ")).expect("listed");
    assert!(
        row.contains("webhook") && row.contains("active") && row.contains("database"),
        "{row}"
    );
    assert!(
        row.ends_with("https://hooks.example.com/status ($HOOK_SECRET)"),
        "{row}"
    );

    let (ok, _, err) = run(dir, db, &["subscribers", "remove", "abc"], "");
    assert!(!ok && err.contains("`abc` is not a subscriber id"), "{err}");
    let (ok, out, err) = run(dir, db, &["subscribers", "remove", "1"], "");
    assert!(ok && out.starts_with("subscriber 1 removed"), "{out}{err}");
    let (ok, _, err) = run(dir, db, &["subscribers", "remove", "1"], "");
    assert!(
        !ok && err.contains("subscriber 1 was removed already"),
        "{err}"
    );
    let (_, out, _) = run(dir, db, &["subscribers", "list"], "");
    assert!(out.starts_with("no subscribers"), "{out}");
    server.stop();

    // Adding and removing are in the audit log (by id, never the address), and it verifies.
    let (ok, out, err) = run(dir, db, &["audit", "verify"], "");
    assert!(ok, "{err}");
    assert!(out.starts_with("audit log verified: 2 entries"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_are_added_listed_and_removed_sqlite() {
    with_backend(
        Backend::Sqlite,
        "subs_sqlite",
        subscribers_are_added_listed_and_removed,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_are_added_listed_and_removed_postgres() {
    with_backend(
        Backend::Postgres,
        "subs_postgres",
        subscribers_are_added_listed_and_removed,
    )
    .await;
}
