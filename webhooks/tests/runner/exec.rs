//! Exec steps: what reaches the program (argv, env, stdin), what comes back (lines, exit
//! codes, signals), and the steps that cannot start.

use super::{exec, run, runner};
use spotter_core::runbook::{Action, Secrets, StepOutcome};
use std::os::unix::fs::PermissionsExt;

fn succeeded() -> StepOutcome {
    StepOutcome::Succeeded {
        detail: "exit 0".into(),
    }
}

#[tokio::test]
async fn hostile_arguments_reach_the_program_as_one_literal_argument_each() {
    let dir = tempfile::tempdir().unwrap();
    // A file a glob would expand to, and one a `rm -rf` through a shell would have to remove.
    std::fs::write(dir.path().join("keep.txt"), "x").unwrap();
    let hostile = [
        "; rm -rf /",
        "$(id)",
        "`id`",
        "a\nb",
        "*",
        "$HOME",
        "x' \"y",
        "&& touch pwned",
    ];
    let mut argv = vec!["/usr/bin/printf", "[%s]\\n"];
    argv.extend(hostile);
    let (outcome, lines) = run(&runner(&[]), &exec(&argv, dir.path())).await;
    assert_eq!(outcome, succeeded());
    assert_eq!(
        lines,
        [
            "[; rm -rf /]",
            "[$(id)]",
            "[`id`]",
            "[a",
            "b]",
            "[*]",
            "[$HOME]",
            "[x' \"y]",
            "[&& touch pwned]"
        ]
    );
    assert!(dir.path().join("keep.txt").exists());
    assert!(!dir.path().join("pwned").exists());
}

#[tokio::test]
async fn the_environment_is_cleared_but_for_the_safe_set_pass_env_secrets_and_set_env() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&[
        ("HOME", "/home/spotter"),
        ("NOT_PASSED", "must-not-leak"),
        ("BACKUP_BUCKET", "s3://backups"),
        ("NEW_DB_PASSWORD", "from-the-environment"),
    ]);
    let mut step = exec(&["/usr/bin/env"], dir.path());
    step.action = Action::Exec {
        argv: vec!["/usr/bin/env".into()],
        workdir: dir.path().to_path_buf(),
        pass_env: vec![
            "BACKUP_BUCKET".into(),
            "NEW_DB_PASSWORD".into(),
            "UNSET_VAR".into(),
        ],
        set_env: vec![("RECOVERY_DATE".into(), "20261201".into())],
    };
    step.secrets = Secrets(vec![("NEW_DB_PASSWORD".into(), "generated-s3cr3t".into())]);
    let (outcome, lines) = run(&r, &step).await;
    assert_eq!(outcome, succeeded());
    assert_eq!(lines[0], "note: env UNSET_VAR is not set");
    let mut env: Vec<&str> = lines[1..].iter().map(String::as_str).collect();
    env.sort_unstable();
    assert_eq!(
        env,
        [
            "BACKUP_BUCKET=s3://backups",
            "HOME=/home/spotter",
            "LANG=C.UTF-8",
            "NEW_DB_PASSWORD=generated-s3cr3t",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "RECOVERY_DATE=20261201",
        ]
    );
}

#[tokio::test]
async fn home_defaults_to_the_root_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lines) = run(&runner(&[]), &exec(&["/usr/bin/env"], dir.path())).await;
    assert!(lines.contains(&"HOME=/".to_string()), "{lines:?}");
}

#[tokio::test]
async fn stdin_is_empty_so_a_step_reading_it_does_not_wait() {
    let dir = tempfile::tempdir().unwrap();
    let step = exec(&["/bin/sh", "-c", "cat; echo read-to-end"], dir.path());
    let (outcome, lines) = run(&runner(&[]), &step).await;
    assert_eq!(outcome, succeeded());
    assert_eq!(lines, ["read-to-end"]);
}

#[tokio::test]
async fn output_lines_arrive_in_order_with_stderr_interleaved() {
    let dir = tempfile::tempdir().unwrap();
    let script = "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; sleep 0.1; printf 'no newline' >&2";
    let (outcome, lines) = run(&runner(&[]), &exec(&["/bin/sh", "-c", script], dir.path())).await;
    assert_eq!(outcome, succeeded());
    assert_eq!(lines, ["one", "two", "three", "no newline"]);
}

#[tokio::test]
async fn a_long_line_arrives_in_16_kib_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let script = "head -c 40000 /dev/zero | tr '\\0' a; echo; echo after";
    let (outcome, lines) = run(&runner(&[]), &exec(&["/bin/sh", "-c", script], dir.path())).await;
    assert_eq!(outcome, succeeded());
    let lens: Vec<usize> = lines.iter().map(String::len).collect();
    assert_eq!(lens, [16384, 16384, 40000 - 2 * 16384, 5]);
    assert!(lines[..3].iter().all(|l| l.bytes().all(|b| b == b'a')));
    assert_eq!(lines[3], "after");
}

#[tokio::test]
async fn bytes_that_are_not_utf8_become_replacement_characters() {
    let dir = tempfile::tempdir().unwrap();
    let step = exec(&["/usr/bin/printf", "\\377\\376ok\\n\\303"], dir.path());
    let (outcome, lines) = run(&runner(&[]), &step).await;
    assert_eq!(outcome, succeeded());
    assert_eq!(lines, ["\u{FFFD}\u{FFFD}ok", "\u{FFFD}"]);
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&[]);
    let (ok, _) = run(&r, &exec(&["/bin/true"], dir.path())).await;
    assert_eq!(ok, succeeded());
    let (three, _) = run(&r, &exec(&["/bin/sh", "-c", "exit 3"], dir.path())).await;
    assert_eq!(
        three,
        StepOutcome::Failed {
            exit_code: Some(3),
            detail: "exit 3".into()
        }
    );
    let (killed, _) = run(&r, &exec(&["/bin/sh", "-c", "kill -9 $$"], dir.path())).await;
    assert_eq!(
        killed,
        StepOutcome::Failed {
            exit_code: None,
            detail: "killed by signal 9".into()
        }
    );
    let (term, _) = run(&r, &exec(&["/bin/sh", "-c", "kill -TERM $$"], dir.path())).await;
    assert_eq!(
        term,
        StepOutcome::Failed {
            exit_code: None,
            detail: "killed by signal 15".into()
        }
    );
}

#[tokio::test]
async fn a_relative_program_is_run_from_the_workdir_and_not_searched_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    let hello = scripts.join("hello.sh");
    std::fs::write(&hello, "#!/bin/sh\necho \"hello from $(pwd) as $0\"\n").unwrap();
    std::fs::set_permissions(&hello, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = runner(&[]);
    let (outcome, lines) = run(&r, &exec(&["scripts/hello.sh"], dir.path())).await;
    assert_eq!(outcome, succeeded());
    let cwd = dir.path().canonicalize().unwrap();
    // `$0` of a script is the path the kernel was given: joined onto the workdir.
    assert_eq!(
        lines,
        [format!(
            "hello from {} as {}/scripts/hello.sh",
            cwd.display(),
            dir.path().display()
        )]
    );

    // `sh` exists on PATH, `scripts/sh` does not: no search.
    let (missing, _) = run(&r, &exec(&["scripts/sh"], dir.path())).await;
    assert_eq!(
        missing,
        StepOutcome::NotStarted {
            reason: "cannot run `scripts/sh`: No such file or directory".into()
        }
    );
}

#[tokio::test]
async fn a_bare_name_is_found_on_the_safe_path_only() {
    let dir = tempfile::tempdir().unwrap();
    // A program of that name in the workdir is not what runs.
    let decoy = dir.path().join("printf");
    std::fs::write(&decoy, "#!/bin/sh\necho decoy\n").unwrap();
    std::fs::set_permissions(&decoy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = runner(&[("PATH", dir.path().to_str().unwrap())]);
    let (outcome, lines) = run(&r, &exec(&["printf", "%s\\n", "real"], dir.path())).await;
    assert_eq!(outcome, succeeded());
    assert_eq!(lines, ["real"]);

    let (missing, _) = run(&r, &exec(&["no-such-program-7f3a"], dir.path())).await;
    let StepOutcome::NotStarted { reason } = missing else {
        panic!("{missing:?}")
    };
    assert!(
        reason.starts_with("cannot run `no-such-program-7f3a`: not found on the PATH steps get"),
        "{reason}"
    );
}

#[tokio::test]
async fn steps_that_cannot_start_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(&[]);
    let (outcome, _) = run(&r, &exec(&["scripts/x.sh"], dir.path())).await;
    assert_eq!(
        outcome,
        StepOutcome::NotStarted {
            reason: "cannot run `scripts/x.sh`: No such file or directory".into()
        }
    );

    let plain = dir.path().join("plain.sh");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (outcome, _) = run(&r, &exec(&["./plain.sh"], dir.path())).await;
    assert_eq!(
        outcome,
        StepOutcome::NotStarted {
            reason: "cannot run `./plain.sh`: Permission denied".into()
        }
    );

    let gone = dir.path().join("gone");
    let (outcome, _) = run(&r, &exec(&["/bin/true"], &gone)).await;
    assert_eq!(
        outcome,
        StepOutcome::NotStarted {
            reason: format!(
                "cannot run `/bin/true`: workdir {}: No such file or directory",
                gone.display()
            )
        }
    );

    let (outcome, _) = run(&r, &exec(&[], dir.path())).await;
    assert!(
        matches!(&outcome, StepOutcome::NotStarted { reason } if reason.contains("argv is empty")),
        "{outcome:?}"
    );
}
