//! The guide's database restore scripts against a real MariaDB (127.0.0.1:3306, root): a
//! backup made the guide's way, restored by the db-restore runbook's own steps.

use spotter_core::config::Config;
use spotter_core::runbook::*;
use std::collections::BTreeMap;

fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

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
