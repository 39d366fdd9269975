//! Runbook files: every problem of a file at its place with the accepted form, the built-in
//! runbooks (the guide) checking clean, directories, and `for_config`.

#[path = "runbooks/support.rs"]
mod support;

use spotter_core::runbook::*;
use std::collections::BTreeMap;
use support::*;

#[test]
fn a_good_file_reads() {
    let rb = parse(GOOD);
    assert_eq!(rb.name, "db-restore");
    assert_eq!(rb.steps.len(), 1);
    assert!(rb.steps[0].destructive);
    assert_eq!(rb.steps[0].timeout, chrono::Duration::minutes(10));
}

#[test]
fn every_problem_of_a_bad_file_is_reported_at_its_place() {
    let text = r#"name = "Bad Name"
approvals = 0
colour = "red"

[[param]]
name = "n"
type = "integer"
min = 5
max = 1

[[step]]
id = "one"
kind = "exec"
argv = ["restore.sh", "--date={{n}}", "{{nope}}"]
destructive = true

[[step]]
id = "one"
kind = "exec"
argv = ["bash", "-c", "rm -rf /"]
timeout = "0s"

[[step]]
id = "three"
kind = "exec"
argv = []
env = ["lower"]

[[step]]
id = "four"
kind = "probe"
probe = "nowhere"
levels = [9]
"#;
    assert_eq!(
        problems(text),
        vec![
            "rb.toml:1:8: name `Bad Name` is not valid: use lowercase letters, digits and '-', e.g. \"db-restore\"",
            "rb.toml:3:1: runbook: unknown key `colour`; accepted: name, description, approvals, approver_role, levels, target, param, generate, step",
            "rb.toml:8:7: [[param]] #1 (name = \"n\"): min (5) is greater than max (1)",
            "rb.toml:14:23: [[step]] #1 (id = \"one\"): argv[1] `--date={{n}}`: a placeholder must be a whole argv entry, e.g. [\"restore.sh\", \"{{recovery_date}}\"]",
            "rb.toml:14:39: [[step]] #1 (id = \"one\"): argv[2]: `{{nope}}` names no parameter; accepted: n, incident, level, run, runbook",
            "rb.toml:15:15: [[step]] #1 (id = \"one\"): a destructive step cannot run without approval, and this runbook has approvals = 0: give the step approvals = 1, or the runbook approvals = 1",
            "rb.toml:18:6: [[step]] #2 (id = \"one\"): duplicate step id `one`",
            "rb.toml:20:9: [[step]] #2 (id = \"one\"): runbook steps are argv lists, never shell strings: put the commands in a script and run it, e.g. argv = [\"scripts/db-restore.sh\", \"{{recovery_date}}\"]",
            "rb.toml:21:11: [[step]] #2 (id = \"one\"): timeout must be longer than 0, e.g. \"10m\"",
            "rb.toml:26:8: [[step]] #3 (id = \"three\"): argv is empty: the program comes first, e.g. argv = [\"scripts/db-restore.sh\", \"{{recovery_date}}\"]",
            "rb.toml:27:8: [[step]] #3 (id = \"three\"): env: `lower` is not an environment variable name (A-Z, 0-9, _), e.g. \"SPOTTER_BACKUP_KEY\"",
            "rb.toml:32:9: [[step]] #4 (id = \"four\"): probe `nowhere` is not a configured [[probe]]; accepted: application, frontend, database, cache",
            "rb.toml:33:11: [[step]] #4 (id = \"four\"): level 9 is not configured; accepted: 1 Service Degradation, 2 Partial System Failure, 3 Complete System Failure, 4 Data Corruption, 5 Security Breach",
        ]
    );
}

#[test]
fn a_destructive_step_in_an_auto_runbook_passes_with_its_own_approval() {
    let text = GOOD
        .replace("approvals = 1", "approvals = 0")
        .replace("destructive = true", "destructive = true\napprovals = 1");
    let rb = parse(&text);
    assert!(rb.approval.is_auto());
    assert_eq!(rb.steps[0].approval.unwrap().approvals, 1);
}

#[test]
fn every_default_runbook_checks_clean_and_its_scripts_pass_bash_n() {
    let dir = tempfile::tempdir().unwrap();
    let runbooks = Runbooks::builtin(&config(), dir.path()).unwrap();
    assert_eq!(
        runbooks.names(),
        [
            "app-restore",
            "credential-rotation",
            "db-restore",
            "emergency-response",
            "level-1-recovery",
            "level-2-recovery",
            "level-3-recovery",
            "level-4-recovery",
            "level-5-recovery",
            "security-hardening",
            "system-status-check",
        ]
    );
    for auto in ["emergency-response", "system-status-check"] {
        let rb = runbooks.get(auto).unwrap();
        assert!(rb.approval.is_auto());
        assert!(rb
            .steps
            .iter()
            .all(|s| !s.destructive && s.approval.is_none()));
    }
    let rotation = runbooks.get("credential-rotation").unwrap();
    assert_eq!(rotation.generate.len(), 3);
    let mut scripts = 0;
    for entry in std::fs::read_dir(dir.path().join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        let out = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o755, "{}", path.display());
        }
        scripts += 1;
    }
    assert!(scripts >= 15);
    // Every script a step runs exists.
    for rb in runbooks.iter() {
        assert!(rb.file.starts_with("<built-in>/"), "{}", rb.file);
        for s in &rb.steps {
            if let StepKind::Exec(e) = &s.kind {
                assert!(
                    dir.path().join(&e.argv[0].0).exists(),
                    "{}: {}",
                    rb.name,
                    e.argv[0].0
                );
            }
        }
    }
    // Written again at the next start: a changed script is replaced, a runbook this binary
    // does not have is taken out, the same runbooks load.
    std::fs::write(dir.path().join("scripts/service.sh"), "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::write(
        dir.path().join("old-runbook.toml"),
        GOOD.replace("db-restore", "old"),
    )
    .unwrap();
    assert_eq!(
        Runbooks::builtin(&config(), dir.path()).unwrap().names(),
        runbooks.names()
    );
    assert!(!dir.path().join("old-runbook.toml").exists());
    assert!(
        std::fs::read_to_string(dir.path().join("scripts/service.sh"))
            .unwrap()
            .contains("WORKOUT_SERVICES=none")
    );
    // `runbook default` refuses to overwrite.
    let e = write_defaults(dir.path()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(e.to_string().contains("--force"), "{e}");
    // And a directory of them loads the same, by path.
    let fresh = tempfile::tempdir().unwrap();
    let written = write_defaults(fresh.path()).unwrap();
    assert!(written.iter().any(|p| p.ends_with("db-restore.toml")));
    let loaded = Runbooks::load_dir(fresh.path(), &config()).unwrap();
    assert_eq!(loaded.names(), runbooks.names());
}

#[test]
fn two_files_with_one_name_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), GOOD).unwrap();
    std::fs::write(dir.path().join("b.toml"), GOOD).unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "name = \"x\"\n[[step]]\nid = \"s\"\nkind = \"exec\"\nargv = [\"sh\", \"-c\", \"id\"]\n",
    )
    .unwrap();
    let errs = Runbooks::load_dir(dir.path(), &config()).unwrap_err();
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let b = dir.path().join("b.toml").display().to_string();
    let a = dir.path().join("a.toml").display().to_string();
    let c = dir.path().join("c.toml").display().to_string();
    assert_eq!(
        text,
        [
            format!("{b}:2:1: duplicate runbook name `db-restore`: {a} has it too; names must be unique"),
            format!("{c}:5:9: [[step]] #1 (id = \"s\"): runbook steps are argv lists, never shell strings: put the commands in a script and run it, e.g. argv = [\"scripts/db-restore.sh\", \"{{{{recovery_date}}}}\"]"),
        ]
    );
}

#[test]
fn a_bad_default_or_regex_is_reported_in_the_file() {
    let text = r#"name = "x"
[[param]]
name = "d"
type = "date"
default = "tomorrow"
[[param]]
name = "r"
type = "regex"
pattern = "(["
[[param]]
name = "e"
type = "enum"
values = []
[[step]]
id = "s"
kind = "manual"
instructions = "do {{d}}"
"#;
    let p = problems(text);
    assert_eq!(p.len(), 3, "{p:#?}");
    assert_eq!(p[0], "rb.toml:5:11: [[param]] #1 (name = \"d\"): default: bad value for `d`: `tomorrow`; accepted: a date YYYYMMDD, e.g. 20261126");
    assert!(
        p[1].starts_with("rb.toml:9:11: [[param]] #2 (name = \"r\"): pattern does not compile"),
        "{}",
        p[1]
    );
    assert!(
        p[2].starts_with(
            "rb.toml:13:10: [[param]] #3 (name = \"e\"): an enum parameter needs `values`"
        ),
        "{}",
        p[2]
    );
}

#[test]
fn wrong_types_are_reported_with_the_accepted_form_and_not_echoed() {
    let text = r#"name = "x"
target = 5
levels = 3
approvals = "one"

[[step]]
id = "s"
kind = "exec"
argv = "scripts/x.sh"
set_env = ["A"]
destructive = "yes"
expect_status = "200"
"#;
    assert_eq!(
        problems(text),
        [
            r#"rb.toml:2:10: runbook: target: expected a lock target in quotes, e.g. "database" or "{{param}}"; found integer `5`"#,
            r#"rb.toml:3:10: runbook: levels: expected an array of level numbers, e.g. [3, 4, 5]; found integer `3`"#,
            r#"rb.toml:4:13: runbook: approvals: expected a whole number, e.g. 1; found string "one""#,
            r#"rb.toml:9:8: [[step]] #1 (id = "s"): argv: expected an array of strings, the program first, e.g. ["scripts/db-restore.sh", "{{recovery_date}}"]; found string "scripts/x.sh""#,
            r#"rb.toml:10:11: [[step]] #1 (id = "s"): set_env: expected a table of NAME = "value", e.g. { RECOVERY_DATE = "{{recovery_date}}" }; found an array"#,
            r#"rb.toml:11:15: [[step]] #1 (id = "s"): destructive: expected true or false; found string "yes""#,
            r#"rb.toml:12:17: [[step]] #1 (id = "s"): expect_status: expected an HTTP status or a list of them, e.g. 200 or [200, 204]; found string "200""#,
        ]
    );
}

#[test]
fn probe_steps_name_a_configured_probe_or_write_one_inline() {
    let text = r#"name = "p"
approvals = 0
[[step]]
id = "tcp"
kind = "probe"
probe_kind = "tcp"
address = "localhost:3306"
timeout = "3s"
[[step]]
id = "both"
kind = "probe"
probe = "database"
probe_kind = "tcp"
[[step]]
id = "named-with-keys"
kind = "probe"
probe = "database"
address = "localhost:1"
[[step]]
id = "inline-bad"
kind = "probe"
probe_kind = "http"
address = "x:1"
"#;
    assert_eq!(
        problems(text),
        [
            "rb.toml:12:9: [[step]] #2 (id = \"both\"): give either `probe` (a configured [[probe]] id) or `probe_kind` with its keys, not both",
            "rb.toml:17:9: [[step]] #3 (id = \"named-with-keys\"): a step naming a configured probe takes no url, address or other probe keys (they are the [[probe]]'s)",
            "rb.toml:22:14: [[step]] #4 (id = \"inline-bad\"): an http probe needs `url`, e.g. url = \"http://localhost:8000/api/health/\"",
            "rb.toml:23:11: [[step]] #4 (id = \"inline-bad\"): `address` is not used by an http probe; accepted: url, expect_status",
        ]
    );
    let good: String = text.lines().take(8).map(|l| format!("{l}\n")).collect();
    let rb = parse(&good);
    let b = Builtins {
        incident: None,
        level: None,
        run: 1,
        runbook: "p".into(),
    };
    let steps = plan(&rb, &BTreeMap::new(), &b, &[]);
    assert_eq!(
        steps[0].describe(),
        "1. tcp: probe tcp localhost:3306; timeout 3s"
    );
}

#[test]
fn for_config_uses_the_directory_when_set_and_checks_on_declare() {
    let data = tempfile::tempdir().unwrap();
    let mut config = config();
    config.server.data_dir = data.path().to_path_buf();
    let builtin = Runbooks::for_config(&config).unwrap();
    assert_eq!(builtin.len(), 11);
    assert!(data
        .path()
        .join("builtin-runbooks/scripts/db-restore.sh")
        .exists());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db.toml"), GOOD).unwrap();
    config.runbooks.dir = Some(dir.path().to_path_buf());
    let e = Runbooks::for_config(&config).unwrap_err().to_string();
    assert_eq!(
        e,
        "[runbooks] on_declare names `emergency-response`, which is not a runbook; accepted: db-restore (or \"\" for none)"
    );
    config.runbooks.on_declare = None;
    assert_eq!(
        Runbooks::for_config(&config).unwrap().names(),
        ["db-restore"]
    );
}

#[test]
fn missing_keys_say_what_they_take() {
    let text = r#"description = "no name"
[[param]]
type = "date"
[[step]]
kind = "exec"
argv = ["scripts/x.sh"]
[[step]]
id = "ok"
argv = ["scripts/x.sh"]
"#;
    assert_eq!(
        problems(text),
        [
            r#"rb.toml:1:1: runbook: missing key `name` (the runbook's name in quotes, e.g. "db-restore")"#,
            r#"rb.toml:2:1: [[param]] #1: missing key `name` (a parameter name in quotes, e.g. "recovery_date")"#,
            r#"rb.toml:4:1: [[step]] #1: missing key `id` (a step id in quotes, e.g. "restore")"#,
            r#"rb.toml:7:1: [[step]] #2 (id = "ok"): missing key `kind` (the step's kind in quotes: "exec", "http", "probe" or "manual")"#,
        ]
    );
}

#[test]
fn a_shell_runs_scripts_never_strings() {
    let step = |argv: &str| {
        format!(
            "name = \"x\"\n[[param]]\nname = \"p\"\ntype = \"regex\"\npattern = \".*\"\n[[step]]\nid = \"s\"\nkind = \"exec\"\nargv = {argv}\n"
        )
    };
    for refused in [
        r#"["sh", "-c", "id"]"#,
        r#"["/bin/bash", "-xc", "id"]"#,
        r#"["env", "bash", "-e", "-c", "id"]"#,
        r#"["bash", "--command", "id"]"#,
        r#"["bash", "{{p}}", "id"]"#,
    ] {
        let p = problems(&step(refused));
        assert_eq!(p.len(), 1, "{refused}: {p:?}");
        assert!(
            p[0].contains("runbook steps are argv lists, never shell strings"),
            "{refused}: {p:?}"
        );
    }
    for allowed in [
        r#"["bash", "scripts/x.sh", "{{p}}"]"#,
        r#"["bash", "-e", "scripts/x.sh", "-c"]"#,
        r#"["scripts/x.sh", "-c", "{{p}}"]"#,
    ] {
        assert_eq!(problems(&step(allowed)), Vec::<String>::new(), "{allowed}");
    }
}

#[test]
fn generated_secrets_and_a_later_steps_own_approval_do_not_mix() {
    let text = r#"name = "rotate"
description = "rotates"
approvals = 1

[[generate]]
name = "NEW_PASSWORD"
bytes = 16

[[step]]
id = "apply"
kind = "exec"
argv = ["/bin/true"]
env = ["NEW_PASSWORD"]

[[step]]
id = "restart"
kind = "exec"
argv = ["/bin/true"]
approvals = 1
"#;
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].contains("[[step]] #2 (id = \"restart\")")
            && p[0].contains("cannot wait for a step's own approval"),
        "{p:#?}"
    );
    // On the runbook itself it is fine: the secrets then live through one uninterrupted run.
    let ok = text.replace(
        "argv = [\"/bin/true\"]\napprovals = 1\n",
        "argv = [\"/bin/true\"]\n",
    );
    assert_eq!(problems(&ok), Vec::<String>::new());
}
