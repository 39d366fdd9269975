//! The restore drill, as the guide's Database Recovery describes it, on the local MariaDB: a
//! `workout_tracker`-shaped database of the test's own, a backup taken the guide's way
//! (`mysqldump | gzip | openssl enc -aes-256-cbc -pbkdf2`, key from an env var), the tables
//! corrupted, then the built-in `db-restore` runbook requested through the command API by one
//! person and approved by another. Both backends.

use super::*;
use crate::common;
use std::process::Command;

const KEY: &str = "drill-backup-key-7f3a9c1e5b2d4086";

/// Runs SQL on the local MariaDB as root; returns stdout.
fn mariadb(db: Option<&str>, sql: &str) -> String {
    let mut c = Command::new("mariadb");
    c.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B"]);
    if let Some(db) = db {
        c.arg(db);
    }
    let out = c
        .arg("-e")
        .arg(sql)
        .output()
        .expect("the mariadb client runs");
    assert!(
        out.status.success(),
        "mariadb {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn counts(db: &str) -> Vec<i64> {
    ["workouts", "workout_logs", "splits"]
        .iter()
        .map(|t| {
            mariadb(Some(db), &format!("SELECT COUNT(*) FROM {t}"))
                .trim()
                .parse()
                .unwrap()
        })
        .collect()
}

/// A database shaped like the Workout Tracker's, with rows.
fn seed(db: &str) {
    mariadb(
        None,
        &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"),
    );
    mariadb(
        Some(db),
        "CREATE TABLE workouts (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL);
         CREATE TABLE splits (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL);
         CREATE TABLE workout_logs (id INT PRIMARY KEY, workout_id INT NOT NULL, reps INT NOT NULL);
         INSERT INTO workouts VALUES (1,'squat'),(2,'bench'),(3,'deadlift'),(4,'row'),(5,'press');
         INSERT INTO splits VALUES (1,'push'),(2,'pull'),(3,'legs');
         INSERT INTO workout_logs VALUES (1,1,5),(2,1,5),(3,2,8),(4,3,3),(5,4,10),(6,5,6),(7,2,8);",
    );
}

/// The guide's backup: `mysqldump | gzip | openssl enc -aes-256-cbc -pbkdf2`, the key from the
/// environment (the test may use a shell; runbook steps never do).
fn backup(db: &str, dir: &Path, date: &str) {
    let file = dir.join(format!("db_backup_{date}_0200.sql.gz.enc"));
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; mysqldump -h 127.0.0.1 -u root {db} | gzip | openssl enc -aes-256-cbc -pbkdf2 -pass env:SPOTTER_BACKUP_KEY > '{}'",
            file.display()
        ))
        .env("SPOTTER_BACKUP_KEY", KEY)
        .status()
        .unwrap();
    assert!(status.success(), "the backup was taken");
}

/// A stand-in for the Workout Tracker's health endpoint (the runbook's last step probes it).
async fn health_endpoint() -> String {
    let app = axum::Router::new().route("/api/health/", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/health/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The configuration change pointing the guide's `application` probe at `url`.
fn application_at(url: String) -> common::Configure {
    Box::new(move |c: &mut spotter_core::config::Config| {
        for p in &mut c.probes {
            if p.id == "application" {
                p.spec = spotter_core::runbook::ProbeSpec::Http {
                    url: url.clone(),
                    expect_status: 200,
                };
            }
        }
    })
}

async fn drill(backend: common::Backend) {
    let db = format!("spotter_drill_{}", spotter_core::random_token(4));
    seed(&db);
    let before = counts(&db);
    assert_eq!(before, vec![5, 7, 3]);
    let backups = tempfile::tempdir().unwrap();
    backup(&db, backups.path(), "20261126");
    // Data corruption (level 4): rows gone, a table dropped, values overwritten.
    mariadb(
        Some(&db),
        "DELETE FROM workouts WHERE id > 1; DROP TABLE splits; UPDATE workout_logs SET reps = -1; DELETE FROM workout_logs WHERE id < 5",
    );
    let health = health_endpoint().await;
    let backup_dir = backups.path().display().to_string();
    let env = [
        ("SPOTTER_BACKUP_KEY", KEY),
        ("WORKOUT_DB_HOST", "127.0.0.1"),
        ("WORKOUT_DB_PORT", "3306"),
        ("WORKOUT_DB_USER", "root"),
        ("WORKOUT_DB_NAME", db.as_str()),
        ("WORKOUT_BACKUP_DIR", backup_dir.as_str()),
        ("WORKOUT_SERVICES", "none"),
    ];
    let options = common::Options {
        // The built-in runbooks, with the application probe at the stand-in.
        configure: Some(application_at(health)),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        clock: None,
    };
    let Some(app) = common::TestApp::spawn_with(backend, "runbook_drill", options).await else {
        mariadb(None, &format!("DROP DATABASE {db}"));
        return;
    };
    app.ok(
        "dba",
        r#"/incident declare level:4 title:"Workout data corrupted" component:database"#,
    )
    .await;

    // dev requests (a responder may ask), dba approves (an approver, and not the requester).
    let asked = app
        .ok(
            "dev",
            "/runbook run name:db-restore recovery_date:20261126 incident:INC-1",
        )
        .await;
    assert_eq!(asked["run"]["state"], "pending_approval", "{asked:#}");
    let id = run_id(&asked);
    assert!(app
        .refused("dev", &format!("/runbook approve run:{id}"))
        .await
        .contains("someone else must approve"));
    let approved = app.ok("dba", &format!("/runbook approve run:{id}")).await;
    assert_eq!(approved["run"]["id"], id);

    let run = wait_run(
        &app,
        id,
        &["succeeded", "failed", "timed_out", "interrupted"],
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(counts(&db), before, "the row counts are restored");
    let steps: Vec<&str> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "stop-app",
            "backup-current",
            "restore",
            "verify",
            "start-app",
            "health"
        ]
    );
    assert!(
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "succeeded"),
        "{run:#}"
    );
    assert_eq!(run["approvals"][0]["person"], "dba");
    let verify = &run["steps"][3]["output"];
    assert!(
        verify.as_str().unwrap().contains('5') && verify.as_str().unwrap().contains('7'),
        "{verify}"
    );

    // Every step is on the timeline, with the request, the approval and the end.
    let inc = app.incident("INC-1").await;
    let timeline: Vec<String> = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    for step in &steps {
        assert!(
            timeline
                .iter()
                .any(|t| t.contains(&format!("step {step} succeeded"))),
            "{step} not on the timeline: {timeline:#?}"
        );
    }
    let kinds = app.timeline_kinds("INC-1").await;
    for k in ["run_requested", "run_approval", "run_step", "run_finished"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing: {kinds:?}");
    }
    // The key appears nowhere Spotter wrote or said anything.
    let all = everything_stored(&app).await;
    assert!(!all.contains(KEY), "the backup key leaked");
    assert!(!asked.to_string().contains(KEY) && !approved.to_string().contains(KEY));
    app.stop().await;
    mariadb(None, &format!("DROP DATABASE {db}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_restores_mariadb_on_sqlite() {
    drill(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_restores_mariadb_on_postgres() {
    drill(common::Backend::Postgres).await;
}

/// The guide's credential recovery, built in: new secrets generated for the run, applied (the
/// database user's password changed, the app's .env rewritten), and never shown anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_rotation_applies_secrets_it_never_shows() {
    let user = format!("spotter_rot_{}", spotter_core::random_token(4));
    mariadb(
        None,
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'old-password-1'"),
    );
    let app_dir = tempfile::tempdir().unwrap();
    let env_file = app_dir.path().join(".env");
    std::fs::write(
        &env_file,
        "DEBUG=false\nDB_PASSWORD=old-password-1\nSECRET_KEY=old\n",
    )
    .unwrap();
    let health = health_endpoint().await;
    let env_path = env_file.display().to_string();
    let env = [
        ("WORKOUT_DB_HOST", "127.0.0.1"),
        ("WORKOUT_DB_USER", user.as_str()),
        ("WORKOUT_DB_USER_HOST", "%"),
        ("WORKOUT_ENV_FILE", env_path.as_str()),
        ("WORKOUT_SERVICES", "none"),
    ];
    let options = common::Options {
        configure: Some(application_at(health)),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        clock: None,
    };
    let app = common::TestApp::spawn_with(common::Backend::Sqlite, "credential_rotation", options)
        .await
        .unwrap();
    app.ok(
        "security",
        r#"/incident declare level:5 title:"Credentials leaked""#,
    )
    .await;
    let asked = app
        .ok(
            "security",
            "/runbook run name:credential-rotation incident:INC-1",
        )
        .await;
    let id = run_id(&asked);
    let approved = app.ok("dba", &format!("/runbook approve run:{id}")).await;
    let run = wait_run(
        &app,
        id,
        &["succeeded", "failed", "timed_out"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");

    let written = std::fs::read_to_string(&env_file).unwrap();
    let value = |key: &str| {
        written
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap()
            .to_string()
    };
    let (password, secret, jwt) = (
        value("DB_PASSWORD"),
        value("SECRET_KEY"),
        value("JWT_SECRET"),
    );
    assert!(
        password.len() >= 40 && secret.len() >= 80 && jwt.len() >= 80,
        "{written}"
    );
    assert!(
        written.contains("DEBUG=false"),
        "the rest of the file is kept"
    );
    // The new password is in force: the user logs in with it, not with the old one.
    let login = |pw: &str| {
        Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", &user, "-e", "SELECT 1"])
            .env("MYSQL_PWD", pw)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(login(&password), "the new password works");
    assert!(!login("old-password-1"), "the old password no longer does");
    // And none of the new secrets was shown or stored anywhere.
    let all = everything_stored(&app).await + &asked.to_string() + &approved.to_string();
    for s in [&password, &secret, &jwt] {
        assert!(!all.contains(s.as_str()), "a generated secret leaked");
    }
    app.stop().await;
    mariadb(None, &format!("DROP USER '{user}'@'%'"));
}
