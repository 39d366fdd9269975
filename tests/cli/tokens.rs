//! Per-person API tokens through the real binary: `spotter token create | list | revoke`, and
//! `spotter chat` with a person's own token.

use super::support::*;
use crate::common::Backend;
use std::path::Path;

fn tokens_are_created_listed_used_and_revoked(dir: &Path, db: Option<&str>) {
    if db.is_none() {
        // No database yet: nothing is created, and the message says what to do.
        let (ok, _, err) = run(dir, db, &["token", "create", "--person", "dba"], "");
        assert!(!ok);
        assert!(
            err.contains("no database at data/spotter.db; start `spotter serve`"),
            "{err}"
        );
        assert!(!dir.join("data").exists());
    }
    let server = Server::start(dir, db);

    // A stranger gets no token; the refusal lists who is configured.
    let (ok, out, err) = run(dir, db, &["token", "create", "--person", "mallory"], "");
    assert!(!ok, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.starts_with("error: `mallory` is not a configured person; the people are: "),
        "{err}"
    );
    assert!(err.contains("dba") && err.contains("sysadmin"), "{err}");
    let (_, out, _) = run(dir, db, &["token", "list"], "");
    assert!(out.starts_with("no API tokens yet"), "{out}");

    let token = create_token(dir, db, "dba");
    let id = spotter_webhooks::api_tokens::id_of(&token)
        .expect("a person token")
        .to_string();
    let secret = token.rsplit('_').next().unwrap().to_string();
    let (ok, out, _) = run(dir, db, &["token", "list"], "");
    assert!(ok);
    let row = out.lines().find(|l| l.starts_with(&id)).expect("listed");
    assert!(
        row.contains("dba") && row.contains("never") && row.ends_with("active"),
        "{row}"
    );
    assert!(!out.contains(&secret), "the list shows no token");

    // The token speaks as dba, without --as.
    let env = [("SPOTTER_TOKEN", token.as_str())];
    let (ok, out, err) = run_with(
        dir,
        db,
        &["chat", "--url", &server.url],
        &env,
        "/incident declare level:2 title:\"Redis down\"\n",
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("by Database Administrator (dba)"), "{out}");
    // ...and as nobody else.
    let (ok, _, err) = run_with(
        dir,
        db,
        &["chat", "--url", &server.url, "--as", "sysadmin"],
        &env,
        "/incident list\n",
    );
    assert!(!ok);
    assert!(
        err.contains("refused (403)") && err.contains("belongs to `dba`"),
        "{err}"
    );
    let (_, out, _) = run(dir, db, &["token", "list"], "");
    let row = out.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(!row.contains("never"), "the use is recorded: {row}");

    // Revoked: refused at once.
    let (ok, out, err) = run(dir, db, &["token", "revoke", &id], "");
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!("API token {id} of dba revoked; requests with it are refused from now on")
    );
    let (ok, _, err) = run_with(
        dir,
        db,
        &["chat", "--url", &server.url],
        &env,
        "/incident list\n",
    );
    assert!(!ok);
    assert!(err.contains("refused the API token (401)"), "{err}");
    let (ok, out, _) = run(dir, db, &["token", "revoke", &token], "");
    assert!(ok);
    assert!(out.contains("was already revoked"), "{out}");
    let (ok, _, err) = run(dir, db, &["token", "revoke", "ffffffffffff"], "");
    assert!(!ok);
    assert!(err.contains("no API token has id `ffffffffffff`"), "{err}");
    let (_, out, _) = run(dir, db, &["token", "list"], "");
    assert!(
        out.lines()
            .find(|l| l.starts_with(&id))
            .unwrap()
            .contains("revoked "),
        "{out}"
    );
    server.settle(dir);
    server.stop();

    // Creating and revoking are in the audit log, whose chain still verifies (with the
    // declaration and the request and end of the emergency response it started).
    let (ok, out, err) = run(dir, db, &["audit", "verify"], "");
    assert!(ok, "{err}");
    assert!(out.starts_with("audit log verified: 5 entries"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_created_once_listed_used_and_revoked_sqlite() {
    with_backend(
        Backend::Sqlite,
        "tokens_sqlite",
        tokens_are_created_listed_used_and_revoked,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_created_once_listed_used_and_revoked_postgres() {
    with_backend(
        Backend::Postgres,
        "tokens_postgres",
        tokens_are_created_listed_used_and_revoked,
    )
    .await;
}
