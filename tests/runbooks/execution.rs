//! Runs as they execute: a dry run runs nothing; planted secrets never leave redacted; a
//! timeout or a cancel kills the step's whole process group; a step's own approval parks the
//! run; a manual step waits for a person; probes against the real services; the emergency
//! response on declaration.

use super::*;
use crate::common;

const PLANTED: &str = "planted-secret-value-5c1d8e";

fn files(root: &Path) -> Vec<(String, String)> {
    let pids = root.join("pids");
    vec![
        (
            "leak.toml".into(),
            r#"name = "leak"
description = "Prints a secret it was given, and a password it was not"
approvals = 0

[[step]]
id = "print"
description = "prints what it should not"
kind = "exec"
argv = ["scripts/leak.sh"]
env = ["PLANTED_TOKEN"]
timeout = "30s"
"#
            .into(),
        ),
        (
            "scripts/leak.sh".into(),
            "#!/bin/bash\necho \"token is $PLANTED_TOKEN\"\necho \"db password=hunter2-but-longer\"\necho 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345'\necho done\n".into(),
        ),
        (
            "hang.toml".into(),
            r#"name = "hang"
description = "Starts a child that sleeps forever, then sleeps itself"
approvals = 0
target = "{{slot}}"

[[param]]
name = "slot"
type = "enum"
values = ["a", "b"]
description = "which one"

[[param]]
name = "seconds"
type = "integer"
min = 1
max = 3600
default = "2"
description = "the timeout is 2 s either way"

[[step]]
id = "sleep"
description = "sleeps past its timeout"
kind = "exec"
argv = ["scripts/hang.sh", "{{slot}}"]
set_env = { PIDS = "PIDS_DIR" }
timeout = "2s"
"#
            .replace("PIDS_DIR", &pids.display().to_string()),
        ),
        (
            "scripts/hang.sh".into(),
            "#!/bin/bash\nmkdir -p \"$PIDS\"\nsleep 1000 &\necho $! > \"$PIDS/$1.child\"\necho $$ > \"$PIDS/$1.leader\"\necho started\nsleep 1000\n".into(),
        ),
        (
            "gated.toml".into(),
            r#"name = "gated"
description = "A safe step at once, then a destructive one with its own approval, then a manual check"
approvals = 0

[[step]]
id = "look"
description = "looks"
kind = "exec"
argv = ["/bin/echo", "looking"]
timeout = "10s"

[[step]]
id = "change"
description = "changes something"
kind = "exec"
argv = ["/bin/echo", "changing"]
timeout = "10s"
destructive = true
approvals = 1
approver_role = "approver"

[[step]]
id = "check"
description = "a person checks the result"
kind = "manual"
instructions = "Open the app and check that workouts load"
timeout = "1m"
"#
            .into(),
        ),
    ]
}

fn alive(pid_file: &Path) -> bool {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    // A killed process may linger as a zombie until reaped: that counts as dead.
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Ok(stat) => !stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')),
        Err(_) => false,
    }
}

async fn app(backend: common::Backend, test: &str) -> Option<(common::TestApp, tempfile::TempDir)> {
    let root = tempfile::tempdir().unwrap();
    let owned = files(root.path());
    let refs: Vec<(&str, &str)> = owned
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = runbook_dir(root.path(), &refs);
    let options = with_runbooks(dir, &[("PLANTED_TOKEN", PLANTED)], |c| {
        c.secrets.env.push("PLANTED_TOKEN".into());
    });
    let app = common::TestApp::spawn_with(backend, test, options).await?;
    Some((app, root))
}

async fn dry_runs_and_redaction(backend: common::Backend) {
    let Some((app, root)) = app(backend, "runbook_dry_run").await else {
        return;
    };
    // A dry run shows the exact argv, env names and timeouts, and runs nothing.
    let dry = app
        .ok("dev", "/runbook run name:hang slot:a dry_run:true")
        .await;
    assert_eq!(dry["run"]["state"], "dry_run");
    assert!(dry["run"]["id"].is_null());
    let plan = dry["run"]["plan"][0].as_str().unwrap();
    assert!(
        plan.contains("scripts/hang.sh") && plan.contains(r#""a""#),
        "{plan}"
    );
    assert!(plan.contains("PIDS="), "{plan}");
    let dry = app.ok("dev", "/runbook run name:leak dry_run:true").await;
    let plan = dry["run"]["plan"][0].as_str().unwrap();
    assert!(
        plan.contains("PLANTED_TOKEN") && !plan.contains(PLANTED),
        "env names, never values: {plan}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !root.path().join("pids").exists(),
        "a dry run started a process"
    );
    assert_eq!(
        app.get_json("/api/v1/runs").await["runs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Output with a planted secret (and secret-shaped values) is stored and posted redacted.
    app.ok("dev", r#"/incident declare level:2 title:"Leaky""#)
        .await;
    let id = run_id(&app.ok("dev", "/runbook run name:leak incident:INC-1").await);
    let run = wait_run(&app, id, &["succeeded", "failed"], Duration::from_secs(20)).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let out = run["steps"][0]["output"].as_str().unwrap();
    assert!(out.contains("token is [redacted]"), "{out}");
    assert!(
        !out.contains("hunter2") && !out.contains("abcdefghijklmnop"),
        "{out}"
    );
    assert!(out.contains("done"), "{out}");
    // The tail went to the incident channel, redacted too.
    let posts: Vec<String> = app
        .engine
        .store()
        .outbox(10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    let tail = posts
        .iter()
        .find(|t| t.contains("output (last lines, redacted)"))
        .expect("the tail is posted");
    assert!(
        tail.contains("token is [redacted]") && tail.contains("done"),
        "{tail}"
    );
    let status = app.ok("dev", &format!("/runbook status run:{id}")).await;
    let all = everything_stored(&app).await + &status.to_string();
    assert!(
        !all.contains(PLANTED) && !all.contains("hunter2"),
        "a planted secret leaked"
    );
    app.stop().await;
}

async fn timeouts_and_cancels(backend: common::Backend) {
    let Some((app, root)) = app(backend, "runbook_timeout").await else {
        return;
    };
    let pids = root.path().join("pids");
    // A timeout kills the whole group: the leader and the child it started.
    let id = run_id(&app.ok("dev", "/runbook run name:hang slot:a").await);
    let run = wait_run(
        &app,
        id,
        &["timed_out", "succeeded", "failed"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(run["state"], "timed_out", "{run:#}");
    assert_eq!(run["steps"][0]["state"], "timed_out");
    assert!(run["steps"][0]["output"]
        .as_str()
        .unwrap()
        .contains("started"));
    for f in ["a.leader", "a.child"] {
        assert!(!alive(&pids.join(f)), "{f} survived the timeout");
    }
    // A cancel during the step kills it too; meanwhile the same target is locked.
    let id = run_id(
        &app.ok("dev", "/runbook run name:hang slot:b seconds:60")
            .await,
    );
    app.eventually("the step started", || async {
        pids.join("b.child").exists()
    })
    .await;
    let reply = app.refused("dev", "/runbook run name:hang slot:b").await;
    assert!(reply.contains(&format!("run #{id}")), "{reply}");
    app.ok("dev", "/runbook run name:hang slot:a dry_run:true")
        .await;
    let reply = app.ok("dev", &format!("/runbook cancel run:{id}")).await;
    assert!(
        reply["reply"].as_str().unwrap().contains("being stopped"),
        "{reply}"
    );
    let run = wait_run(
        &app,
        id,
        &["cancelled", "timed_out", "succeeded", "failed"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(run["state"], "cancelled", "{run:#}");
    for f in ["b.leader", "b.child"] {
        assert!(!alive(&pids.join(f)), "{f} survived the cancel");
    }
    app.stop().await;
}

async fn gates_and_manual_steps(backend: common::Backend) {
    let Some((app, _root)) = app(backend, "runbook_gates").await else {
        return;
    };
    app.ok("dev", r#"/incident declare level:3 title:"Gated""#)
        .await;
    // Pre-approved first step runs; the destructive one waits for its own approval.
    let id = run_id(
        &app.ok("dev", "/runbook run name:gated incident:INC-1")
            .await,
    );
    let run = wait_run(&app, id, &["pending_approval"], Duration::from_secs(20)).await;
    assert_eq!(run["gate"], 1, "{run:#}");
    assert_eq!(run["steps"].as_array().unwrap().len(), 1);
    assert!(app
        .refused("dev", &format!("/runbook approve run:{id}"))
        .await
        .contains("someone else"));
    app.ok("dba", &format!("/runbook approve run:{id}")).await;
    // Then the manual step waits for a person to confirm.
    app.eventually("the manual step waits", || async {
        let run = app.get_json(&format!("/api/v1/runs/{id}")).await;
        run["steps"].as_array().unwrap().len() == 3
    })
    .await;
    assert_eq!(
        app.get_json(&format!("/api/v1/runs/{id}")).await["state"],
        "running"
    );
    app.ok("dev", &format!("/runbook confirm run:{id}")).await;
    let run = wait_run(&app, id, &["succeeded", "failed"], Duration::from_secs(20)).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert!(
        run["steps"][2]["detail"]
            .as_str()
            .unwrap()
            .contains("confirmed done by dev"),
        "{run:#}"
    );
    let status = app.ok("dev", &format!("/runbook status run:{id}")).await;
    assert!(
        status["reply"].as_str().unwrap().contains("approve by"),
        "{status}"
    );
    app.stop().await;
}

macro_rules! both {
    ($name:ident, $f:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$f(crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$f(crate::common::Backend::Postgres).await
            }
        }
    };
}
both!(
    a_dry_run_runs_nothing_and_output_is_redacted,
    dry_runs_and_redaction
);
both!(
    timeouts_and_cancels_kill_the_process_group,
    timeouts_and_cancels
);
both!(
    step_approvals_park_the_run_and_manual_steps_wait,
    gates_and_manual_steps
);

/// `/system check` against the machine's real PostgreSQL, MariaDB and Redis, and a closed port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_check_probes_the_real_services() {
    use spotter_core::runbook::{Probe, ProbeSpec};
    // Port 1 (tcpmux) is never served here; a port freed by this test could be taken by a
    // concurrent one before the probe connects.
    let closed = 1;
    let probe = |id: &str, spec: ProbeSpec| Probe {
        id: id.into(),
        component: None,
        spec,
        timeout: chrono::Duration::seconds(3),
    };
    let probes = vec![
        probe(
            "pg",
            ProbeSpec::Postgres {
                url: Some("postgres://postgres@127.0.0.1:5432/postgres".into()),
                url_env: None,
            },
        ),
        probe(
            "mariadb",
            ProbeSpec::Mysql {
                url: None,
                url_env: Some("TEST_MARIADB_URL".into()),
            },
        ),
        probe(
            "redis",
            ProbeSpec::Redis {
                address: "127.0.0.1:6379".into(),
                password_env: None,
            },
        ),
        probe(
            "closed",
            ProbeSpec::Tcp {
                address: format!("127.0.0.1:{closed}"),
            },
        ),
    ];
    let options = common::Options {
        configure: Some(Box::new(move |c| {
            c.probes = probes;
            // Probes of its own: the built-in runbooks (which name the guide's) are not loaded.
            let empty = std::env::temp_dir().join(format!(
                "spotter-no-runbooks-{}",
                spotter_core::random_token(4)
            ));
            std::fs::create_dir_all(&empty).unwrap();
            c.runbooks.dir = Some(empty);
            c.runbooks.on_declare = None;
        })),
        env: [(
            "TEST_MARIADB_URL".to_string(),
            "mysql://root@127.0.0.1:3306/mysql".to_string(),
        )]
        .into(),
        clock: None,
    };
    let app = common::TestApp::spawn_with(common::Backend::Sqlite, "system_check", options)
        .await
        .unwrap();
    app.ok("dev", r#"/incident declare level:1 title:"Slow""#)
        .await;
    let v = app.ok("dev", "/system check incident:INC-1").await;
    let text = v["reply"].as_str().unwrap();
    assert!(text.contains("1 of 4 probes failing (closed)"), "{text}");
    for ok in [
        "✅ pg (postgres): ONLINE",
        "✅ mariadb (mysql): ONLINE",
        "✅ redis (redis): ONLINE",
        "❌ closed (tcp): OFFLINE",
    ] {
        assert!(text.contains(ok), "{ok} in {text}");
    }
    assert!(app
        .timeline_kinds("INC-1")
        .await
        .contains(&"system_check".to_string()));
    app.stop().await;
}

/// Declaring runs the guide's immediate response (the built-in runbook) at once, unapproved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_runs_the_emergency_response() {
    let options = common::Options {
        configure: Some(Box::new(|c| {
            c.runbooks.on_declare = Some("emergency-response".into())
        })),
        ..Default::default()
    };
    let app = common::TestApp::spawn_with(common::Backend::Sqlite, "emergency_response", options)
        .await
        .unwrap();
    app.ok(
        "dev",
        r#"/incident declare level:2 title:"Partial failure""#,
    )
    .await;
    let runs = app.get_json("/api/v1/runs").await;
    let run = &runs["runs"][0];
    assert_eq!(run["runbook"], "emergency-response", "{runs:#}");
    assert_eq!(run["incident"], "INC-1");
    let id = run["id"].as_i64().unwrap();
    let run = wait_run(&app, id, &["succeeded", "failed"], Duration::from_secs(60)).await;
    assert_eq!(
        run["state"], "succeeded",
        "probes that fail do not stop it: {run:#}"
    );
    let kinds = app.timeline_kinds("INC-1").await;
    assert!(
        kinds.iter().filter(|k| *k == "run_step").count() >= 6,
        "{kinds:?}"
    );
    app.stop().await;
}
