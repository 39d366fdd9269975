//! `spotter runbook default` and `spotter runbook check`.

use crate::common::binary::spotter;

#[test]
fn runbook_default_writes_the_guide_and_check_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("runbooks");
    let out = spotter(dir.path(), None)
        .args(["runbook", "default"])
        .arg(&books)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "wrote {}",
            books.join("db-restore.toml").display()
        )),
        "{text}"
    );
    assert!(text.contains("scripts/db-restore.sh"), "{text}");

    // A second time it refuses, and says how to overwrite.
    let again = spotter(dir.path(), None)
        .args(["runbook", "default"])
        .arg(&books)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let out = spotter(dir.path(), None)
        .args(["runbook", "check"])
        .arg(&books)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("db-restore: 6 steps, 1 approval(s) by approver"),
        "{text}"
    );
    assert!(
        text.contains("system-status-check: 5 steps, auto (no approval)"),
        "{text}"
    );
    assert!(text.contains("11 runbooks ok"), "{text}");

    std::fs::write(
        books.join("broken.toml"),
        "name = \"broken\"\napprovals = 0\n\n[[step]]\nid = \"wipe\"\nkind = \"exec\"\nargv = [\"sh\", \"-c\", \"rm -rf /\"]\ndestructive = true\n",
    )
    .unwrap();
    let out = spotter(dir.path(), None)
        .args(["runbook", "check"])
        .arg(&books)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let file = books.join("broken.toml").display().to_string();
    assert!(err.contains(&format!("{file}:7:9: [[step]] #1 (id = \"wipe\"): runbook steps are argv lists, never shell strings")), "{err}");
    assert!(err.contains(&format!("{file}:8:15: [[step]] #1 (id = \"wipe\"): a destructive step cannot run without approval")), "{err}");
}

#[test]
fn runbook_check_uses_the_configuration_given() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("runbooks");
    std::fs::create_dir(&books).unwrap();
    std::fs::write(
        books.join("probe.toml"),
        "name = \"probe\"\napprovals = 0\n[[step]]\nid = \"db\"\nkind = \"probe\"\nprobe = \"database\"\n",
    )
    .unwrap();
    // A configuration whose only probe is `cache`.
    let cfg = dir.path().join("spotter.toml");
    let text = spotter_core::config::DEFAULT_TOML;
    let start = text.find("\n[[probe]]").unwrap() + 1;
    std::fs::write(
        &cfg,
        format!(
            "{}[[probe]]\nid = \"cache\"\nkind = \"tcp\"\naddress = \"localhost:6379\"\n",
            &text[..start]
        ),
    )
    .unwrap();
    let out = spotter(dir.path(), None)
        .arg("--config")
        .arg(&cfg)
        .args(["runbook", "check"])
        .arg(&books)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(":6:9: [[step]] #1 (id = \"db\"): probe `database` is not a configured [[probe]]; accepted: cache"), "{err}");
}
