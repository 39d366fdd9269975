//! What a run would do: parameters checked by kind (injection refused), plans with the exact
//! argv and env names, escaping in http steps, skipped steps, and redaction.

#[path = "runbooks/support.rs"]
mod support;

use proptest::prelude::*;
use spotter_core::config::Config;
use spotter_core::runbook::*;
use support::*;

#[test]
fn parameters_are_checked_by_kind_and_injection_is_refused() {
    let rb = parse(GOOD);
    assert_eq!(
        check_params(&rb, &given(&[("recovery_date", "20261126")])).unwrap(),
        given(&[("recovery_date", "20261126")])
    );
    for (value, shown) in [
        ("20261126; rm -rf /", "20261126; rm -rf /"),
        ("$(id)", "$(id)"),
        ("`id`", "`id`"),
        ("20261126\nid", "20261126\\nid"),
        ("20261332", "20261332"),
        ("2026112", "2026112"),
    ] {
        assert_eq!(
            check_params(&rb, &given(&[("recovery_date", value)])).unwrap_err(),
            format!("bad value for `recovery_date`: `{shown}`; accepted: a date YYYYMMDD, e.g. 20261126")
        );
    }
    assert_eq!(
        check_params(&rb, &given(&[("recovery_date", "20261126"), ("host", "x")])).unwrap_err(),
        "unknown parameter `host`; accepted: recovery_date"
    );
    assert_eq!(
        check_params(&rb, &given(&[])).unwrap_err(),
        "missing parameter `recovery_date` (a date YYYYMMDD, e.g. 20261126); write it as recovery_date:<value>"
    );

    let text = r#"
name = "kinds"
[[param]]
name = "unit"
type = "enum"
values = ["nginx", "workout-tracker"]
default = "nginx"
[[param]]
name = "count"
type = "integer"
min = 1
max = 10
[[param]]
name = "tag"
type = "regex"
pattern = "[a-z0-9.-]+"
[[param]]
name = "inc"
type = "incident"
[[step]]
id = "s"
kind = "exec"
argv = ["scripts/x.sh", "{{unit}}", "{{count}}", "{{tag}}", "{{inc}}"]
"#;
    let rb = parse(text);
    let ok = check_params(
        &rb,
        &given(&[("count", "3"), ("tag", "v1.2"), ("inc", "inc-7")]),
    )
    .unwrap();
    assert_eq!(
        ok,
        given(&[
            ("count", "3"),
            ("inc", "INC-7"),
            ("tag", "v1.2"),
            ("unit", "nginx")
        ])
    );
    let bad = |k: &str, v: &str| {
        let mut g = given(&[("count", "3"), ("tag", "v1"), ("inc", "7")]);
        g.insert(k.into(), v.into());
        check_params(&rb, &g).unwrap_err()
    };
    for attack in ["; rm -rf /", "$(id)", "`id`", "1\n2", "nginx; id"] {
        assert!(
            bad("unit", attack).starts_with("bad value for `unit`"),
            "{attack}"
        );
        assert!(
            bad("count", attack).starts_with("bad value for `count`"),
            "{attack}"
        );
        assert!(
            bad("inc", attack).starts_with("bad value for `inc`"),
            "{attack}"
        );
        assert!(
            bad("tag", attack).starts_with("bad value for `tag`"),
            "{attack}"
        );
    }
    assert_eq!(
        bad("count", "11"),
        "bad value for `count`: `11`; accepted: a whole number from 1 to 10"
    );
    assert_eq!(
        bad("unit", "mysql"),
        "bad value for `unit`: `mysql`; accepted: one of nginx, workout-tracker"
    );
    assert_eq!(
        bad("tag", "a/b"),
        "bad value for `tag`: `a/b`; accepted: a value matching [a-z0-9.-]+"
    );
    // The regex is anchored: a matching part is not enough.
    assert!(bad("tag", "ok/../etc").starts_with("bad value"));
}

#[test]
fn the_db_restore_plan_shows_exactly_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = config();
    let runbooks = Runbooks::builtin(&config, dir.path()).unwrap();
    let rb = runbooks.get("db-restore").unwrap();
    let values = check_params(rb, &given(&[("recovery_date", "20261126")])).unwrap();
    let builtins = Builtins {
        incident: Some("INC-7".parse().unwrap()),
        level: Some(spotter_core::domain::LevelId(4)),
        run: 12,
        runbook: rb.name.clone(),
    };
    assert_eq!(lock_target(rb, &values, &builtins), "database");
    let steps = plan(rb, &values, &builtins, &config.probes);
    let d = dir.path().display().to_string();
    let lines: Vec<String> = steps.iter().map(|s| s.describe()).collect();
    let db_env = "WORKOUT_DB_HOST, WORKOUT_DB_PORT, WORKOUT_DB_USER, WORKOUT_DB_NAME, WORKOUT_DB_PASSWORD, WORKOUT_BACKUP_DIR";
    assert_eq!(
        lines,
        [
            format!("1. stop-app: exec [\"{d}/scripts/service.sh\",\"stop\",\"workout-tracker\"]; env WORKOUT_SERVICES; in {d}; timeout 2m"),
            format!("2. backup-current: exec [\"{d}/scripts/db-backup-current.sh\"]; env {db_env}; in {d}; timeout 30m"),
            format!("3. restore: exec [\"{d}/scripts/db-restore.sh\",\"20261126\"]; env {db_env}, SPOTTER_BACKUP_KEY; set RECOVERY_DATE=20261126; in {d}; timeout 1h; DESTRUCTIVE"),
            format!("4. verify: exec [\"{d}/scripts/db-verify.sh\"]; env WORKOUT_DB_HOST, WORKOUT_DB_PORT, WORKOUT_DB_USER, WORKOUT_DB_NAME, WORKOUT_DB_PASSWORD; in {d}; timeout 5m"),
            format!("5. start-app: exec [\"{d}/scripts/service.sh\",\"start\",\"workout-tracker\"]; env WORKOUT_SERVICES; in {d}; timeout 2m"),
            "6. health: probe http http://localhost:8000/api/health/ (expects 200); timeout 5s".to_string(),
        ]
    );
    let PlannedAction::Invoke(Action::Exec {
        argv,
        workdir,
        pass_env,
        set_env,
    }) = &steps[2].action
    else {
        panic!("restore is an exec step");
    };
    assert_eq!(argv[1], "20261126");
    assert_eq!(workdir, dir.path());
    assert!(pass_env.contains(&"SPOTTER_BACKUP_KEY".to_string()));
    assert_eq!(
        set_env,
        &[("RECOVERY_DATE".to_string(), "20261126".to_string())]
    );
    assert!(steps[2].destructive && steps.iter().all(|s| s.skipped.is_none()));
}

#[test]
fn steps_outside_the_incident_level_are_skipped_and_http_values_are_escaped() {
    let text = r#"
name = "notify"
approvals = 1
[[param]]
name = "note"
type = "regex"
pattern = ".{1,100}"
[[step]]
id = "post"
kind = "http"
method = "post"
url = "https://status.example.com/api/{{note}}?i={{incident}}"
headers = { Authorization = "Bearer x", "Content-Type" = "application/json" }
body = '{"text": "{{note}}"}'
hmac_secret_env = "STATUS_SECRET"
expect_status = [200, 201]
[[step]]
id = "late"
kind = "manual"
instructions = "Only at level 5: tell {{incident}}"
levels = [5]
"#;
    let rb = parse(text);
    let values = check_params(&rb, &given(&[("note", "a/b\"} ?x=1")])).unwrap();
    let b = Builtins {
        incident: Some("INC-3".parse().unwrap()),
        level: Some(spotter_core::domain::LevelId(2)),
        run: 1,
        runbook: "notify".into(),
    };
    let steps = plan(&rb, &values, &b, &[]);
    let PlannedAction::Invoke(Action::Http {
        method,
        url,
        body,
        headers,
        ..
    }) = &steps[0].action
    else {
        panic!()
    };
    assert_eq!(method, "POST");
    assert_eq!(
        url,
        "https://status.example.com/api/a%2Fb%22%7D%20%3Fx%3D1?i=INC-3"
    );
    assert_eq!(body.as_deref(), Some(r#"{"text": "a/b\"} ?x=1"}"#));
    assert_eq!(headers.len(), 2);
    let line = steps[0].describe();
    assert!(
        line.contains("headers Authorization, Content-Type") && !line.contains("Bearer x"),
        "{line}"
    );
    assert_eq!(
        steps[1].skipped.as_deref(),
        Some("runs only at level 5; this incident is level 2")
    );
    assert!(steps[1].describe().starts_with("2. late: skipped (runs only at level 5; this incident is level 2); manual: Only at level 5: tell INC-3"));
}

#[test]
fn redaction_covers_configured_secrets_and_secret_shapes() {
    let config = Config::builtin();
    let env = |k: &str| match k {
        "SPOTTER_BACKUP_KEY" => Some("backup-key-value-1".to_string()),
        "WORKOUT_DB_URL" => Some("mysql://workout_user:dbpass99@localhost/w".to_string()),
        "SPOTTER_API_TOKEN" => Some("api-token-value".to_string()),
        "UNRELATED" => Some("not-a-secret".to_string()),
        _ => None,
    };
    let r = Redactor::from_env(&config, &env);
    assert_eq!(
        r.redact("key backup-key-value-1 token api-token-value"),
        "key [redacted] token [redacted]"
    );
    assert_eq!(r.redact("not-a-secret"), "not-a-secret");
    let run = r.with_secrets(&["GeneratedPw_123".to_string()]);
    assert_eq!(
        run.redact("pw GeneratedPw_123 backup-key-value-1"),
        "pw [redacted] [redacted]"
    );
    assert_eq!(r.redact("GeneratedPw_123"), "GeneratedPw_123");
    assert!(config
        .secret_env_names()
        .contains(&"WORKOUT_DB_URL".to_string()));
    assert!(config
        .secret_env_names()
        .contains(&"SPOTTER_BACKUP_KEY".to_string()));
}

proptest! {
    #[test]
    fn no_secret_survives_redaction(
        secrets in proptest::collection::vec("[A-Za-z0-9_+/=-]{4,24}", 1..4),
        parts in proptest::collection::vec(".{0,20}", 1..5),
    ) {
        let r = Redactor::new(secrets.clone());
        let mut text = String::new();
        for (i, p) in parts.iter().enumerate() {
            text.push_str(p);
            text.push_str(&secrets[i % secrets.len()]);
        }
        let out = r.redact(&text).into_owned();
        for piece in out.split("[redacted]") {
            for s in &secrets {
                prop_assert!(!piece.contains(s.as_str()), "{s:?} survived in {out:?}");
            }
        }
    }
}
