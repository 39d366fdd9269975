//! kill -9 of the real `spotter` binary during a running step: after the restart the run is
//! `interrupted` (said on the timeline), and nothing ran the step again. The step's process
//! does not outlive the Spotter that started it. Both backends.

use crate::common::binary::{client, spotter, Served};
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "runbook-crash-shared-api-token-0123456789";

const RUNBOOK: &str = r#"name = "long"
description = "Counts its starts, then takes its time"
approvals = 0

[[step]]
id = "work"
description = "appends to the counter and sleeps"
kind = "exec"
argv = ["scripts/long.sh"]
timeout = "10m"
"#;

const SCRIPT: &str =
    "#!/bin/bash\necho $$ >> \"$(dirname \"$0\")/../starts\"\necho working\nexec sleep 1000\n";

fn command(base: &str, user: &str, text: &str) -> serde_json::Value {
    let r = client()
        .post(format!("{base}/api/v1/commands"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"user": user, "text": text}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

fn get(base: &str, path: &str) -> serde_json::Value {
    client()
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn starts(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("starts"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn crash_during_a_step(db: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("runbooks");
    std::fs::create_dir_all(rb.join("scripts")).unwrap();
    std::fs::write(rb.join("long.toml"), RUNBOOK).unwrap();
    std::fs::write(rb.join("scripts/long.sh"), SCRIPT).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            rb.join("scripts/long.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let text = spotter_core::config::DEFAULT_TOML
        .replace(
            "# dir = \"/etc/spotter/runbooks\"",
            &format!("dir = \"{}\"", rb.display()),
        )
        .replace("on_declare = \"emergency-response\"", "on_declare = \"\"");
    std::fs::write(dir.path().join("spotter.toml"), text).unwrap();
    let start = |name: &str| {
        let logs = dir.path().join(name);
        std::fs::create_dir_all(&logs).unwrap();
        let mut cmd = spotter(dir.path(), db);
        cmd.args(["--config", "spotter.toml", "serve"])
            .env("SPOTTER_API_TOKEN", TOKEN)
            .env("SPOTTER_AUDIT_KEY", "runbook-crash-audit-key");
        Served::start(cmd, &logs)
    };
    let mut first = start("first");
    let v = command(
        &first.url,
        "dev",
        r#"/incident declare level:2 title:"Slow""#,
    );
    assert_eq!(v["ok"], true, "{v}");
    let v = command(&first.url, "dev", "/runbook run name:long incident:INC-1");
    assert_eq!(v["ok"], true, "{v}");
    let id = v["run"]["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while starts(&rb).is_empty() {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let step_pid = starts(&rb)[0].clone();
    assert_eq!(
        get(&first.url, &format!("/api/v1/runs/{id}"))["state"],
        "running"
    );
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);

    let second = start("second");
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run = get(&second.url, &format!("/api/v1/runs/{id}"));
        if run["state"] != "running" {
            break run;
        }
        assert!(Instant::now() < deadline, "the run stayed running: {run:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(run["state"], "interrupted", "{run:#}");
    assert_eq!(run["steps"][0]["state"], "interrupted", "{run:#}");
    assert!(
        run["outcome"]
            .as_str()
            .unwrap()
            .contains("Nothing re-runs it"),
        "{run:#}"
    );
    // Nothing re-ran it, and the step's process died with the Spotter that started it.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(starts(&rb).len(), 1, "the step ran again");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{step_pid}/stat"))
        .is_ok_and(|s| !s.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')))
    {
        assert!(Instant::now() < deadline, "the step outlived spotter");
        std::thread::sleep(Duration::from_millis(100));
    }
    let inc = get(&second.url, "/api/v1/incidents/INC-1");
    let said = inc["timeline"].as_array().unwrap().iter().any(|e| {
        e["kind"] == "run_finished" && e["text"].as_str().unwrap().contains("interrupted")
    });
    assert!(said, "{inc:#}");
    second.stop();
}

#[test]
fn a_step_running_when_spotter_is_killed_is_interrupted_on_sqlite() {
    crash_during_a_step(None);
}

#[test]
fn a_step_running_when_spotter_is_killed_is_interrupted_on_postgres() {
    let Some(server) = spotter_core::testkit::postgres_url("runbook_crash") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt
        .block_on(spotter_core::testkit::PostgresTestDb::create(&server))
        .unwrap();
    crash_during_a_step(Some(db.url()));
    rt.block_on(db.drop_db());
}
