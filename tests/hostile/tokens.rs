//! Hostile callers of the API: the shared token trying to act as an admin, a person token
//! trying to act as someone else, unknown people, forged and revoked tokens. Each is refused
//! with the right status, and nothing changes.

use crate::common;
use crate::dual_test;
use serde_json::{json, Value};
use spotter_core::clock::{Clock, SystemClock};
use spotter_core::domain::Role;
use spotter_webhooks::api_tokens::{self, IssueError};

async fn body(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A command sent with `token`, naming `user` when given.
async fn command(
    app: &common::TestApp,
    token: &str,
    user: Option<&str>,
    text: &str,
) -> (u16, Value) {
    let mut b = json!({ "text": text });
    if let Some(u) = user {
        b["user"] = json!(u);
    }
    body(app.post_json_as(token, "/api/v1/commands", &b).await).await
}

async fn get_status(addr: &str, token: &str, path: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{addr}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

dual_test!(the_shared_token_cannot_make_anyone_an_admin, |app| async {
    app.ok(
        "sysadmin",
        r#"/incident declare level:2 title:"Redis down""#,
    )
    .await;
    let before = app.incident("INC-1").await;

    // Through the shared token, naming the admin: capped at responder.
    let (status, v) = command(
        &app,
        &app.token,
        Some("sysadmin"),
        r#"/incident resolve summary:"done""#,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    let reply = v["reply"].as_str().unwrap();
    assert!(reply.contains("needs role commander"), "{reply}");
    assert!(reply.contains("shared API token"), "{reply}");
    assert!(reply.contains("at most role responder"), "{reply}");
    let res = app
        .post_json_as(
            &app.token,
            "/api/v1/maintenance",
            &json!({"user": "sysadmin", "components": ["cache"], "duration": "1h", "reason": "x"}),
        )
        .await;
    assert!(res.status().is_client_error(), "{}", res.status());
    // Nothing changed.
    let after = app.incident("INC-1").await;
    assert_eq!(after["state"], before["state"]);
    assert_eq!(after["timeline"], before["timeline"]);
    assert_eq!(
        app.get_json("/api/v1/maintenance").await["maintenance"],
        json!([])
    );

    // Responder work still goes through it (automation relaying a chat).
    let (_, v) = command(
        &app,
        &app.token,
        Some("dev"),
        r#"/incident update text:"looking""#,
    )
    .await;
    assert_eq!(v["ok"], true, "{v}");

    // The admin's own token can.
    app.ok("sysadmin", r#"/incident resolve summary:"done""#)
        .await;
});

dual_test!(
    the_shared_tokens_role_is_the_configured_one,
    options = common::Options {
        configure: Some(Box::new(|c| c.api.shared_token_role = Role::Commander)),
        ..Default::default()
    },
    |app| async {
        app.ok(
            "sysadmin",
            r#"/incident declare level:2 title:"Redis down""#,
        )
        .await;
        // dev is a responder: the cap never adds roles.
        let (_, v) = command(
            &app,
            &app.token,
            Some("dev"),
            r#"/incident resolve summary:"x""#,
        )
        .await;
        assert_eq!(v["ok"], false, "{v}");
        // sysadmin through it: commander, not admin.
        let (_, v) = command(
            &app,
            &app.token,
            Some("sysadmin"),
            r#"/incident resolve summary:"x""#,
        )
        .await;
        assert_eq!(v["ok"], true, "{v}");
    }
);

dual_test!(a_person_token_acts_only_as_its_person, |app| async {
    let dev = app.token_for("dev").await;
    // Naming someone else: 403, and nothing is declared.
    let (status, v) = command(
        &app,
        &dev,
        Some("sysadmin"),
        r#"/incident declare level:1 title:"as admin""#,
    )
    .await;
    assert_eq!(status, 403, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("belongs to `dev`"), "{e}");
    assert!(e.contains("not as `sysadmin`"), "{e}");
    let res = app
        .post_json_as(
            &dev,
            "/api/v1/maintenance",
            &json!({"user": "sysadmin", "components": ["cache"], "duration": "1h", "reason": "x"}),
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(app.incidents("all").await.len(), 0);
    assert_eq!(
        app.get_json("/api/v1/maintenance").await["maintenance"],
        json!([])
    );

    // Without `user` it acts as its person, with their roles.
    let (status, v) = command(
        &app,
        &dev,
        None,
        r#"/incident declare level:1 title:"Slow API""#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["incident"]["declared_by"], "dev");
    let (_, v) = command(&app, &dev, Some("dev"), r#"/incident resolve summary:"x""#).await;
    assert_eq!(v["ok"], false, "dev is no commander: {v}");
    // A malformed `user` is still a 400 naming the field.
    let (status, v) = command(&app, &dev, Some("de v"), "/incident list").await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("field `user`"), "{v}");
});

dual_test!(
    revoked_tokens_are_refused_at_once_on_every_replica,
    |app| async {
        let dba = app.token_for("dba").await;
        let id = api_tokens::id_of(&dba).unwrap().to_string();
        let replica = app.replica(|_| {}).await;
        assert_eq!(get_status(&app.addr, &dba, "/api/v1/incidents").await, 200);
        assert_eq!(
            get_status(&replica.addr, &dba, "/api/v1/incidents").await,
            200
        );
        let used = app
            .engine
            .store()
            .api_token(&id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at;
        assert!(used.is_some(), "the use was recorded");

        let revoked =
            api_tokens::revoke(app.engine.store().as_ref(), &id, "test", SystemClock.now())
                .await
                .unwrap()
                .unwrap();
        assert!(revoked.revoked_at.is_some());
        // No waiting: the very next request, on either replica, is refused.
        for addr in [&app.addr, &replica.addr] {
            assert_eq!(get_status(addr, &dba, "/api/v1/incidents").await, 401);
            let res = reqwest::Client::new()
                .post(format!("{addr}/api/v1/commands"))
                .bearer_auth(&dba)
                .json(&json!({"text": r#"/incident declare level:1 title:"x""#}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 401);
            assert_eq!(res.headers()["www-authenticate"], "Bearer");
        }
        assert_eq!(app.incidents("all").await.len(), 0);
        // Revocation is in the audit log, chain intact.
        let log = app.engine.store().audit_log().await.unwrap();
        assert!(log
            .entries
            .iter()
            .any(|e| e.action == "api_token.revoke" && e.subject == "person:dba"));
        let key = spotter::audit_key::load(&app.config, false).unwrap();
        spotter_core::audit::verify(&key, &log.entries, log.head_seq, &log.head_hash).unwrap();
        replica.stop().await;
    }
);

dual_test!(unknown_people_and_forged_tokens_get_nothing, |app| async {
    // The shared token naming a stranger: a viewer.
    let (_, v) = command(
        &app,
        &app.token,
        Some("mallory"),
        r#"/incident declare level:1 title:"x""#,
    )
    .await;
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["reply"]
            .as_str()
            .unwrap()
            .contains("not a configured person"),
        "{v}"
    );
    // The shared token naming nobody: 400 naming the field.
    let (status, v) = command(&app, &app.token, None, "/incident list").await;
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("missing field `user`"),
        "{v}"
    );

    // No token for a stranger; the refusal lists who is configured.
    let e = api_tokens::issue(
        app.engine.store().as_ref(),
        app.engine.config(),
        "mallory",
        "test",
        SystemClock.now(),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(e, IssueError::UnknownPerson { .. }));
    let e = e.to_string();
    assert!(
        e.starts_with("`mallory` is not a configured person; the people are: "),
        "{e}"
    );
    assert!(e.contains("dba") && e.contains("sysadmin"), "{e}");

    // A real id with another secret; a well-formed token nobody issued; the shared token
    // with a character changed: 401 each.
    let dba = app.token_for("dba").await;
    let id = api_tokens::id_of(&dba).unwrap();
    let forged = format!("{}{id}_{}", api_tokens::PREFIX, "0".repeat(64));
    let unknown = format!(
        "{}{}_{}",
        api_tokens::PREFIX,
        "a".repeat(12),
        "b".repeat(64)
    );
    let mut almost = app.token.clone();
    almost.pop();
    almost.push('x');
    for t in [
        forged.as_str(),
        unknown.as_str(),
        almost.as_str(),
        "",
        "spotter_",
    ] {
        assert_eq!(
            get_status(&app.addr, t, "/api/v1/incidents").await,
            401,
            "{t:?}"
        );
    }

    // A person who left the configuration: their token goes with them.
    let replica = app
        .replica(|c| {
            c.people.retain(|id, _| id.as_str() != "dba");
            for policy in c.escalation.values_mut() {
                for t in &mut policy.tiers {
                    use spotter_core::config::Target;
                    t.notify
                        .retain(|n| !matches!(n, Target::Person(p) if p.as_str() == "dba"));
                    for n in &mut t.notify {
                        if let Target::Team(members) = n {
                            members.retain(|p| p.as_str() != "dba");
                        }
                    }
                }
            }
            for team in c.teams.values_mut() {
                team.members.retain(|p| p.as_str() != "dba");
            }
        })
        .await;
    assert_eq!(
        get_status(&replica.addr, &dba, "/api/v1/incidents").await,
        401
    );
    assert_eq!(get_status(&app.addr, &dba, "/api/v1/incidents").await, 200);
    replica.stop().await;
    assert_eq!(app.incidents("all").await.len(), 0);
});
dual_test!(
    commanding_an_incident_does_not_lift_the_shared_tokens_limit,
    |app| async {
        // dev (a responder) commands INC-1, so with their own token they may resolve it...
        app.ok(
            "sysadmin",
            r#"/incident declare level:2 title:"Redis down" commander:dev"#,
        )
        .await;
        let before = app.incident("INC-1").await;
        // ...but through the shared token, which grants at most responder, they may not.
        let (status, v) = command(
            &app,
            &app.token,
            Some("dev"),
            r#"/incident resolve summary:"done""#,
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["ok"], false, "{v}");
        let reply = v["reply"].as_str().unwrap();
        assert!(reply.contains("needs role commander"), "{reply}");
        assert!(reply.contains("grants at most role responder"), "{reply}");
        let after = app.incident("INC-1").await;
        assert_eq!(after["state"], before["state"]);
        assert_eq!(after["timeline"], before["timeline"]);
        // With dev's own token the incident commander may.
        app.ok("dev", r#"/incident resolve summary:"done""#).await;
    }
);

dual_test!(
    a_token_is_never_stored_without_its_audit_entry,
    |app| async {
        let store = app.engine.store().clone();
        let before = store.api_tokens().await.unwrap().len();
        // The audit log refuses every append (a full disk, a broken trigger, a lost connection).
        let sql = if app.database_url.starts_with("sqlite:") {
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'injected fault'); END;"
                .to_string()
        } else {
            "CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         RAISE EXCEPTION 'injected fault'; END; $$; \
         CREATE TRIGGER no_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION no_audit();"
            .to_string()
        };
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
        let e = api_tokens::issue(
            store.as_ref(),
            app.engine.config(),
            "dba",
            "test",
            SystemClock.now(),
        )
        .await;
        assert!(e.is_err(), "issuing must fail with its audit entry");
        // Nothing half-written: no token row at all, not even a revoked one.
        assert_eq!(store.api_tokens().await.unwrap().len(), before);
    }
);
