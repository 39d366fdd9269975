//! The built-in runbooks' scripts, run the way their planned steps run them (a cleared
//! environment plus the names they list): the database restore, credential rotation and
//! level 1 against a real MariaDB (127.0.0.1:3306, root; each test makes and drops its own
//! database or user), the application restore on files.

#[path = "runbooks/support.rs"]
mod support;

use spotter_core::config::Config;
use spotter_core::runbook::*;
use std::collections::BTreeMap;
use support::given;

/// The guide's restore, end to end at the script level: a database made and backed up the
/// guide's way (mysqldump | gzip | openssl enc), then changed, then restored by the runbook's
/// own scripts, run as its steps would run them (a cleared environment plus the names they
/// list).
#[test]
fn the_db_restore_scripts_restore_an_encrypted_backup_into_mariadb() {
    use std::process::Command;
    let mysql_up = Command::new("mysql")
        .args(["-h127.0.0.1", "-uroot", "-e", "SELECT 1"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !mysql_up {
        assert!(
            std::env::var("SPOTTER_TEST_STRICT").as_deref() != Ok("1"),
            "MariaDB is not reachable at 127.0.0.1:3306 (SPOTTER_TEST_STRICT=1)"
        );
        eprintln!("skipped: MariaDB is not reachable at 127.0.0.1:3306");
        return;
    }
    let db = format!("spotter_rb_{}", rand::random::<u32>());
    let sql = |q: &str| {
        let out = Command::new("mysql")
            .args([
                "-h127.0.0.1",
                "-uroot",
                "--batch",
                "--skip-column-names",
                "-e",
                q,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    struct Drop_(String);
    impl Drop for Drop_ {
        fn drop(&mut self) {
            let _ = std::process::Command::new("mysql")
                .args([
                    "-h127.0.0.1",
                    "-uroot",
                    "-e",
                    &format!("DROP DATABASE IF EXISTS `{}`", self.0),
                ])
                .status();
        }
    }
    let _cleanup = Drop_(db.clone());
    sql(&format!(
        "CREATE DATABASE `{db}`; USE `{db}`; \
         CREATE TABLE workouts (id INT PRIMARY KEY, name TEXT); \
         CREATE TABLE workout_logs (id INT PRIMARY KEY, workout_id INT); \
         CREATE TABLE splits (id INT PRIMARY KEY, name TEXT); \
         INSERT INTO workouts VALUES (1, 'push'), (2, 'pull'), (3, 'legs'); \
         INSERT INTO workout_logs VALUES (1, 1), (2, 2); \
         INSERT INTO splits VALUES (1, 'ppl');"
    ));
    let backups = tempfile::tempdir().unwrap();
    let key = "correct horse battery staple";
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -euo pipefail; mysqldump -h127.0.0.1 -uroot {db} | gzip | openssl enc -aes-256-cbc -pbkdf2 -pass env:SPOTTER_BACKUP_KEY > db_backup_20261126.sql.gz.enc"
        ))
        .current_dir(backups.path())
        .env("SPOTTER_BACKUP_KEY", key)
        .status()
        .unwrap();
    assert!(status.success());
    // The incident: data lost after the backup.
    sql(&format!(
        "USE `{db}`; DELETE FROM workouts WHERE id > 1; DROP TABLE splits;"
    ));

    let dir = tempfile::tempdir().unwrap();
    let config = Config::builtin();
    let runbooks = Runbooks::builtin(&config, dir.path()).unwrap();
    let rb = runbooks.get("db-restore").unwrap();
    let values = check_params(rb, &given(&[("recovery_date", "20261126")])).unwrap();
    let b = Builtins {
        incident: None,
        level: None,
        run: 1,
        runbook: rb.name.clone(),
    };
    let ours: BTreeMap<&str, String> = [
        ("WORKOUT_DB_HOST", "127.0.0.1".to_string()),
        ("WORKOUT_DB_USER", "root".to_string()),
        ("WORKOUT_DB_NAME", db.clone()),
        ("WORKOUT_BACKUP_DIR", backups.path().display().to_string()),
        ("SPOTTER_BACKUP_KEY", key.to_string()),
        ("WORKOUT_SERVICES", "none".to_string()),
    ]
    .into();
    let mut outputs = Vec::new();
    for step in plan(rb, &values, &b, &config.probes) {
        let PlannedAction::Invoke(Action::Exec {
            argv,
            workdir,
            pass_env,
            set_env,
        }) = &step.action
        else {
            continue; // the health probe: no application here
        };
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(workdir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin");
        for name in pass_env {
            if let Some(v) = ours.get(name.as_str()) {
                cmd.env(name, v);
            }
        }
        cmd.envs(set_env.iter().cloned());
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{} failed: {text}", step.id);
        assert!(!text.contains(key), "{}: the key was printed", step.id);
        outputs.push((step.id.clone(), text));
    }
    let out = |id: &str| {
        outputs
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    assert!(
        out("stop-app").contains("service control is disabled"),
        "{}",
        out("stop-app")
    );
    assert!(
        out("restore").contains("db_backup_20261126.sql.gz.enc"),
        "{}",
        out("restore")
    );
    assert_eq!(
        out("verify"),
        "workouts: 3 rows\nworkout_logs: 2 rows\nsplits: 1 rows\n"
    );
    assert_eq!(sql(&format!("SELECT COUNT(*) FROM `{db}`.workouts")), "3");
    // The current database was kept before the restore overwrote it.
    let kept: Vec<_> = std::fs::read_dir(backups.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("current_db_backup_")
        })
        .collect();
    assert_eq!(kept.len(), 1);
    let dump = std::fs::read_to_string(kept[0].path()).unwrap();
    assert!(dump.contains("CREATE TABLE `workouts`") && !dump.contains("CREATE TABLE `splits`"));

    // A wrong key, or a date without a backup, fails the step.
    let restore = dir.path().join("scripts/db-restore.sh");
    let run = |date: &str, key: &str| {
        Command::new(&restore)
            .arg(date)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("WORKOUT_DB_HOST", "127.0.0.1")
            .env("WORKOUT_DB_USER", "root")
            .env("WORKOUT_DB_NAME", &db)
            .env("WORKOUT_BACKUP_DIR", backups.path())
            .env("SPOTTER_BACKUP_KEY", key)
            .output()
            .unwrap()
    };
    assert!(!run("20261126", "wrong key").status.success());
    let none = run("20250101", key);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("No backup found for date: 20250101"));
    assert!(!run("2026;id", key).status.success());
}

fn mariadb_up() -> bool {
    let up = std::process::Command::new("mysql")
        .args(["-h127.0.0.1", "-uroot", "-e", "SELECT 1"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        assert!(
            std::env::var("SPOTTER_TEST_STRICT").as_deref() != Ok("1"),
            "MariaDB is not reachable at 127.0.0.1:3306 (SPOTTER_TEST_STRICT=1)"
        );
        eprintln!("skipped: MariaDB is not reachable at 127.0.0.1:3306");
    }
    up
}

fn root_sql(q: &str) -> std::process::Output {
    std::process::Command::new("mysql")
        .args([
            "-h127.0.0.1",
            "-uroot",
            "--batch",
            "--skip-column-names",
            "-e",
            q,
        ])
        .output()
        .unwrap()
}

/// Runs a planned exec step as the executor does: a cleared environment with a fixed PATH, the
/// names it lists taken from `env` (or from the run's generated `secrets`), its `set_env`.
fn run_exec(
    step: &PlannedStep,
    env: &BTreeMap<&str, String>,
    secrets: &[(String, String)],
) -> (bool, String) {
    let PlannedAction::Invoke(Action::Exec {
        argv,
        workdir,
        pass_env,
        set_env,
    }) = &step.action
    else {
        panic!("{} is not an exec step", step.id);
    };
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(workdir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin");
    for name in pass_env {
        let value = secrets
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| env.get(name.as_str()).cloned());
        if let Some(v) = value {
            cmd.env(name, v);
        }
    }
    cmd.envs(set_env.iter().cloned());
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The guide's credential recovery with generated secrets: the database user's password is
/// changed (the new one logs in, the old one no longer does) and the application's .env gets
/// all three values, and no output shows any of them.
#[test]
fn credential_rotation_changes_the_password_and_the_env_file_without_printing_them() {
    if !mariadb_up() {
        return;
    }
    let user = format!("spotter_rb_u{}", rand::random::<u32>());
    struct DropUser(String);
    impl Drop for DropUser {
        fn drop(&mut self) {
            root_sql(&format!("DROP USER IF EXISTS '{}'@'%'", self.0));
        }
    }
    let _cleanup = DropUser(user.clone());
    assert!(root_sql(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'old-password-1'"
    ))
    .status
    .success());

    let dir = tempfile::tempdir().unwrap();
    let config = Config::builtin();
    let runbooks = Runbooks::builtin(&config, dir.path()).unwrap();
    let rb = runbooks.get("credential-rotation").unwrap();
    let values = check_params(rb, &BTreeMap::new()).unwrap();
    let b = Builtins {
        incident: None,
        level: None,
        run: 3,
        runbook: rb.name.clone(),
    };
    // What the executor would generate: base64url-ish values of the declared names.
    let secrets: Vec<(String, String)> = rb
        .generate
        .iter()
        .map(|g| {
            let v: String = (0..g.bytes)
                .map(|_| {
                    let c = rand::random::<u8>() % 64;
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[c as usize]
                        as char
                })
                .collect();
            (g.name.clone(), v)
        })
        .collect();
    let app = dir.path().join("app");
    std::fs::create_dir_all(app.join("backend")).unwrap();
    let env_file = app.join("backend/.env");
    std::fs::write(
        &env_file,
        "DEBUG=0\nDB_PASSWORD=old-password-1\nSECRET_KEY=old-secret\nOTHER=keep=me\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let env: BTreeMap<&str, String> = [
        ("WORKOUT_DB_HOST", "127.0.0.1".to_string()),
        ("WORKOUT_DB_USER", user.clone()),
        ("WORKOUT_DB_USER_HOST", "%".to_string()),
        ("WORKOUT_DB_ADMIN_USER", "root".to_string()),
        ("WORKOUT_APP_DIR", app.display().to_string()),
        ("WORKOUT_SERVICES", "none".to_string()),
    ]
    .into();
    let redactor = Redactor::default()
        .with_secrets(&secrets.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());
    for step in plan(rb, &values, &b, &config.probes) {
        if !matches!(step.action, PlannedAction::Invoke(Action::Exec { .. })) {
            continue;
        }
        // The dry-run line names the secrets, never shows them.
        let line = step.describe();
        for (name, value) in &secrets {
            assert!(!line.contains(value.as_str()), "{line}");
            if step.id == "env-file" {
                assert!(line.contains(name.as_str()), "{line}");
            }
        }
        let (ok, out) = run_exec(&step, &env, &secrets);
        assert!(ok, "{}: {out}", step.id);
        for (_, value) in &secrets {
            assert!(
                !out.contains(value.as_str()),
                "{} printed a secret: {out}",
                step.id
            );
        }
        assert_eq!(redactor.redact(&out), out);
    }
    let new_pw = &secrets
        .iter()
        .find(|(k, _)| k == "NEW_DB_PASSWORD")
        .unwrap()
        .1;
    let login = |pw: &str| {
        std::process::Command::new("mysql")
            .args(["-h127.0.0.1", &format!("-u{user}"), "-e", "SELECT 1"])
            .env("MYSQL_PWD", pw)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(login(new_pw), "the new password logs in");
    assert!(!login("old-password-1"), "the old one no longer does");
    let text = std::fs::read_to_string(&env_file).unwrap();
    let get = |k: &str| &secrets.iter().find(|(n, _)| n == k).unwrap().1;
    assert_eq!(
        text,
        format!(
            "DEBUG=0\nDB_PASSWORD={}\nSECRET_KEY={}\nOTHER=keep=me\nJWT_SECRET={}\n",
            get("NEW_DB_PASSWORD"),
            get("NEW_SECRET_KEY"),
            get("NEW_JWT_SECRET")
        )
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the .env keeps its mode");
    }
}

/// Level 1's database step: OPTIMIZE TABLE on the guide's four tables.
#[test]
fn level_1_optimizes_the_guides_tables() {
    if !mariadb_up() {
        return;
    }
    let db = format!("spotter_rb_{}", rand::random::<u32>());
    struct DropDb(String);
    impl Drop for DropDb {
        fn drop(&mut self) {
            root_sql(&format!("DROP DATABASE IF EXISTS `{}`", self.0));
        }
    }
    let _cleanup = DropDb(db.clone());
    let created = root_sql(&format!(
        "CREATE DATABASE `{db}`; USE `{db}`; CREATE TABLE workouts (id INT PRIMARY KEY); \
         CREATE TABLE workout_logs (id INT PRIMARY KEY); CREATE TABLE splits (id INT PRIMARY KEY); \
         CREATE TABLE split_days (id INT PRIMARY KEY);"
    ));
    assert!(created.status.success());
    let dir = tempfile::tempdir().unwrap();
    let config = Config::builtin();
    let runbooks = Runbooks::builtin(&config, dir.path()).unwrap();
    let rb = runbooks.get("level-1-recovery").unwrap();
    let b = Builtins {
        incident: None,
        level: None,
        run: 4,
        runbook: rb.name.clone(),
    };
    let steps = plan(rb, &BTreeMap::new(), &b, &config.probes);
    let env: BTreeMap<&str, String> = [
        ("WORKOUT_DB_HOST", "127.0.0.1".to_string()),
        ("WORKOUT_DB_USER", "root".to_string()),
        ("WORKOUT_DB_NAME", db.clone()),
        ("WORKOUT_SERVICES", "none".to_string()),
    ]
    .into();
    let optimize = steps.iter().find(|s| s.id == "optimize-db").unwrap();
    let (ok, out) = run_exec(optimize, &env, &[]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{db}.split_days")), "{out}");
    let restart = steps.iter().find(|s| s.id == "restart-app").unwrap();
    let (ok, out) = run_exec(restart, &env, &[]);
    assert!(ok && out.contains("service control is disabled"), "{out}");
    // The FLUSHALL is its own destructive step (not run here: the Redis is shared).
    let flush = steps.iter().find(|s| s.id == "flush-cache").unwrap();
    assert!(flush.destructive);
}

/// The guide's application recovery on a scratch tree: the current application is archived,
/// the backup of the date restored over it, with its configuration backup.
#[test]
fn app_restore_archives_the_current_application_and_restores_the_backup() {
    let root = tempfile::tempdir().unwrap();
    let app = root.path().join("opt/workout-tracker");
    let backups = root.path().join("backups");
    std::fs::create_dir_all(app.join("backend")).unwrap();
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::write(app.join("backend/app.py"), "good = True\n").unwrap();
    std::fs::write(app.join("backend/.env"), "SECRET_KEY=from-config-backup\n").unwrap();
    let tar = |name: &str, what: &str| {
        let ok = std::process::Command::new("tar")
            .arg("-czf")
            .arg(backups.join(name))
            .arg("-C")
            .arg(root.path())
            .arg(what)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    tar(
        "app_backup_20261126.tar.gz",
        "opt/workout-tracker/backend/app.py",
    );
    tar(
        "config_backup_20261126.tar.gz",
        "opt/workout-tracker/backend/.env",
    );
    // The incident: the code was tampered with, the configuration lost.
    std::fs::write(app.join("backend/app.py"), "good = False\n").unwrap();
    std::fs::remove_file(app.join("backend/.env")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = Config::builtin();
    let runbooks = Runbooks::builtin(&config, dir.path()).unwrap();
    let rb = runbooks.get("app-restore").unwrap();
    let values = check_params(rb, &given(&[("recovery_date", "20261126")])).unwrap();
    let b = Builtins {
        incident: None,
        level: None,
        run: 5,
        runbook: rb.name.clone(),
    };
    let env: BTreeMap<&str, String> = [
        ("WORKOUT_APP_DIR", app.display().to_string()),
        ("WORKOUT_BACKUP_DIR", backups.display().to_string()),
        ("WORKOUT_RESTORE_ROOT", root.path().display().to_string()),
        ("WORKOUT_APP_OWNER", "none".to_string()),
        ("WORKOUT_SERVICES", "none".to_string()),
    ]
    .into();
    for step in plan(rb, &values, &b, &config.probes) {
        if matches!(step.action, PlannedAction::Invoke(Action::Exec { .. })) {
            let (ok, out) = run_exec(&step, &env, &[]);
            assert!(ok, "{}: {out}", step.id);
        }
    }
    assert_eq!(
        std::fs::read_to_string(app.join("backend/app.py")).unwrap(),
        "good = True\n"
    );
    assert_eq!(
        std::fs::read_to_string(app.join("backend/.env")).unwrap(),
        "SECRET_KEY=from-config-backup\n"
    );
    let kept = std::fs::read_dir(&backups)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("current_app_backup_")
        })
        .count();
    assert_eq!(kept, 1, "the tampered application was archived first");
}
