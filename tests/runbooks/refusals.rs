//! What must be refused, and start no process: self-approval, an expired approval, a used
//! approval, a viewer (or an unknown user) requesting, injection in parameters, unknown
//! parameters. The witness is a marker file the runbook's only step would write.

use super::*;
use crate::common;

/// `mark`: one approval, a date parameter, one step that appends its argument to `ran`.
fn files(marker: &Path) -> Vec<(String, String)> {
    vec![
        (
            "mark.toml".into(),
            r#"name = "mark"
description = "Writes a marker: the test's witness that a process ran"
approvals = 1
approver_role = "approver"

[[param]]
name = "day"
type = "date"
format = "YYYYMMDD"
description = "any date"

[[step]]
id = "mark"
description = "append the day to the marker"
kind = "exec"
argv = ["scripts/mark.sh", "{{day}}"]
set_env = { MARKER = "MARKER_PATH" }
timeout = "30s"
"#
            .replace("MARKER_PATH", &marker.display().to_string()),
        ),
        (
            "scripts/mark.sh".into(),
            "#!/bin/bash\nset -euo pipefail\nprintf '%s\\n' \"$1\" >> \"$MARKER\"\necho marked \"$1\"\n".into(),
        ),
    ]
}

fn marks(marker: &Path) -> Vec<String> {
    std::fs::read_to_string(marker)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

async fn refusals(backend: common::Backend) {
    let root = tempfile::tempdir().unwrap();
    let marker = root.path().join("ran");
    let owned = files(&marker);
    let refs: Vec<(&str, &str)> = owned
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = runbook_dir(root.path(), &refs);
    let options = with_runbooks(dir, &[], |c| {
        c.runbooks.approval_ttl = chrono::Duration::seconds(2);
    });
    let Some(app) = common::TestApp::spawn_with(backend, "runbook_refusals", options).await else {
        return;
    };
    let runs_before = app.get_json("/api/v1/runs").await["runs"]
        .as_array()
        .unwrap()
        .len();

    // Injection and unknown parameters: refused before anything is recorded.
    for (line, says) in [
        (
            r#"/runbook run name:mark day:"20261126; rm -rf /""#,
            "bad value for `day`",
        ),
        (
            r#"/runbook run name:mark day:"$(id)""#,
            "bad value for `day`",
        ),
        ("/runbook run name:mark day:`id`", "bad value for `day`"),
        ("/runbook run name:mark day:\"2026\n1126\"", "day"),
        ("/runbook run name:mark day:20261126 extra:1", "extra"),
        (
            r#"/runbook run name:mark params:"day:20261126 mode:x""#,
            "mode",
        ),
        ("/runbook run name:mark", "day"),
        ("/runbook run name:mark day:20261331", "bad value for `day`"),
        (
            "/runbook run name:nope day:20261126",
            "unknown runbook `nope`; accepted: mark",
        ),
    ] {
        let reply = app.refused("dev", line).await;
        assert!(reply.contains(says), "{line:?}: {reply}");
    }
    // A viewer, and someone Spotter does not know (a viewer too), may not request.
    for who in ["stranger"] {
        let reply = app
            .refused(who, "/runbook run name:mark day:20261126")
            .await;
        assert!(reply.contains("needs role responder"), "{reply}");
    }
    let runs = app.get_json("/api/v1/runs").await;
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        runs_before,
        "nothing recorded: {runs:#}"
    );

    // Self-approval: dba requests, dba may not approve; dev (no approver role) may not either.
    let asked = app.ok("dba", "/runbook run name:mark day:20261126").await;
    let id = run_id(&asked);
    let reply = app
        .refused("dba", &format!("/runbook approve run:{id}"))
        .await;
    assert!(reply.contains("someone else must approve"), "{reply}");
    let reply = app
        .refused("dev", &format!("/runbook approve run:{id}"))
        .await;
    assert!(reply.contains("needs role approver"), "{reply}");
    let reply = app
        .refused("stranger", &format!("/runbook approve run:{id}"))
        .await;
    assert!(reply.contains("not a configured person"), "{reply}");
    // One run per runbook and target: a second request while this one waits is refused.
    let reply = app
        .refused("dev", "/runbook run name:mark day:20261127")
        .await;
    assert!(reply.contains(&format!("run #{id} of mark")), "{reply}");

    // An expired approval: the window (2 s here) closes; approving after it is refused.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let reply = app
        .refused("security", &format!("/runbook approve run:{id}"))
        .await;
    assert!(
        reply.contains("approval window") && reply.contains("closed"),
        "{reply}"
    );
    let run = wait_run(&app, id, &["expired"], Duration::from_secs(10)).await;
    assert!(
        run["outcome"].as_str().unwrap().contains("window"),
        "{run:#}"
    );

    // A used approval: approved once, it runs once; the same approval again is refused.
    let asked = app.ok("dba", "/runbook run name:mark day:20261128").await;
    let id = run_id(&asked);
    app.ok("security", &format!("/runbook approve run:{id}"))
        .await;
    wait_run(&app, id, &["succeeded"], Duration::from_secs(20)).await;
    let reply = app
        .refused("security", &format!("/runbook approve run:{id}"))
        .await;
    assert!(reply.contains("not waiting for approval"), "{reply}");
    let reply = app
        .refused("sysadmin", &format!("/runbook approve run:{id}"))
        .await;
    assert!(reply.contains("not waiting for approval"), "{reply}");
    // Only the approved run's process ran, once, with its value as one literal argument.
    assert_eq!(marks(&marker), vec!["20261128"]);

    let kinds = app.timeline_kinds_of_audit().await;
    for k in ["run.request", "run.approve", "run.expire", "run.finish"] {
        assert!(kinds.iter().any(|x| x == k), "{k} not audited: {kinds:?}");
    }
    app.stop().await;
}

impl common::TestApp {
    /// The audit log's actions, in order.
    async fn timeline_kinds_of_audit(&self) -> Vec<String> {
        self.engine
            .store()
            .audit_log()
            .await
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.action)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_and_approvals_start_nothing_on_sqlite() {
    refusals(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_and_approvals_start_nothing_on_postgres() {
    refusals(common::Backend::Postgres).await;
}
