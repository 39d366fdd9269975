//! The HTTP API on both backends, through the real application on port 0.

mod common;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

dual_test!(
    a_declared_incident_is_listed_with_its_level_and_rto_deadline,
    |app| async {
        let v = app
            .ok(
                "sysadmin",
                r#"/incident declare level:3 title:"MySQL down" component:database"#,
            )
            .await;
        assert_eq!(v["incident"]["ref"], "INC-1");
        assert!(v["reply"].as_str().unwrap().starts_with("Declared INC-1"));

        let list = app.incidents("all").await;
        assert_eq!(list.len(), 1);
        let i = &list[0];
        assert_eq!(i["ref"], "INC-1");
        assert_eq!(i["level"], 3);
        assert_eq!(i["level_name"], "Complete System Failure");
        assert_eq!(i["title"], "MySQL down");
        assert_eq!(i["state"], "declared");
        assert_eq!(i["phase"], "immediate_response");
        assert_eq!(i["source"], "api");
        assert_eq!(i["components"], json!(["database"]));
        assert!(i["acknowledged_at"].is_null() && i["resolved_at"].is_null());
        assert_eq!(
            time(&i["rto_deadline"]) - time(&i["declared_at"]),
            chrono::Duration::hours(2)
        );

        // A second one gets the next number; the open filter and the default both show them.
        app.ok("dev", r#"/incident declare level:1 title:"Slow API""#)
            .await;
        assert_eq!(app.incidents("open").await.len(), 2);
        assert_eq!(app.incidents("resolved").await.len(), 0);
        let refs: Vec<Value> = app.get_json("/api/v1/incidents").await["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["ref"].clone())
            .collect();
        assert_eq!(refs, vec![json!("INC-2"), json!("INC-1")]);
    }
);

dual_test!(the_incident_endpoint_includes_the_timeline, |app| async {
    app.ok(
        "sysadmin",
        r#"/incident declare level:2 title:"Redis down" component:cache"#,
    )
    .await;
    app.ok("dba", "/incident ack incident:INC-1").await;
    app.ok(
        "dba",
        r#"/incident update text:"flushing and restarting redis" public:true"#,
    )
    .await;
    app.ok("dba", "/incident escalate level:4").await;
    app.ok("dba", r#"/incident resolve summary:"redis restarted""#)
        .await;

    let i = app.incident("INC-1").await;
    assert_eq!(i["state"], "resolved");
    assert_eq!(i["level"], 4);
    assert_eq!(i["level_name"], "Data Corruption");
    assert_eq!(i["phase"], "post_recovery_monitoring");
    assert_eq!(
        time(&i["rto_deadline"]) - time(&i["declared_at"]),
        chrono::Duration::hours(4)
    );
    assert!(!i["acknowledged_at"].is_null() && !i["resolved_at"].is_null());
    let kinds: Vec<&str> = i["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "declared",
            // Nobody in the default configuration has a contact method: each of level 2's
            // three tiers counts as unanswered at once, and the declaration pages them all.
            "paged",
            "paged",
            "paged",
            "acknowledged",
            "phase_changed",
            "update",
            // The update was public: it put the incident on the status page.
            "published",
            "level_changed",
            "paged",
            "resolved"
        ]
    );
    let update = &i["timeline"][6];
    assert_eq!(update["public"], true);
    assert_eq!(update["actor"], "dba");

    // Lowercase and bare references work; unknown ones are 404, malformed ones 400.
    assert_eq!(app.get("/api/v1/incidents/inc-1").await.status(), 200);
    let res = app.get("/api/v1/incidents/INC-99").await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "INC-99 does not exist"
    );
    let res = app.get("/api/v1/incidents/bogus").await;
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("INC-<number>"));
    let res = app.get("/api/v1/incidents?state=sideways").await;
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("query `state`"));
});

dual_test!(refused_commands_change_nothing, |app| async {
    app.ok(
        "sysadmin",
        r#"/incident declare level:3 title:"MySQL down""#,
    )
    .await;
    app.ok("sysadmin", "/incident resolve").await;
    let before = app.incident("INC-1").await;

    let r = app
        .refused(
            "sysadmin",
            r#"/incident declare level:3 title:"unterminated"#,
        )
        .await;
    assert!(r.contains("unterminated quote"), "{r}");
    let r = app
        .refused("sysadmin", "/incident declare level:9 title:x")
        .await;
    assert!(
        r.starts_with("bad value for `level`: `9`; accepted: 1-5"),
        "{r}"
    );
    let r = app
        .refused("sysadmin", "/incident ack incident:INC-1")
        .await;
    assert!(
        r.contains("INC-1 is resolved and cannot be acknowledged"),
        "{r}"
    );
    let r = app
        .refused("nobody", r#"/incident declare level:1 title:"x""#)
        .await;
    assert_eq!(r, "not allowed: /incident declare needs role responder; `nobody` is not a configured person, so only a viewer");
    let r = app.refused("dev", "/incident reopen incident:INC-1").await;
    assert!(
        r.starts_with(
            "not allowed: /incident reopen needs role commander; dev has roles responder"
        ),
        "{r}"
    );
    let r = app
        .refused("sysadmin", "/incident ack incident:INC-7")
        .await;
    assert!(r.starts_with("INC-7 does not exist"), "{r}");

    assert_eq!(app.incident("INC-1").await, before, "nothing changed");
    assert_eq!(app.incidents("all").await.len(), 1);
    // Viewers may still read.
    let v = app.ok("nobody", "/incident show incident:INC-1").await;
    assert!(v["reply"].as_str().unwrap().contains("MySQL down"));
    let m = app.metrics().await;
    assert!(
        m.contains(r#"spotter_commands_total{outcome="refused"} 6"#),
        "{m}"
    );
});

dual_test!(
    commands_without_an_incident_use_the_only_open_one_or_ask,
    |app| async {
        let r = app.refused("sysadmin", "/incident ack").await;
        assert_eq!(
            r,
            "no incident is open; name one with incident:INC-<number>"
        );
        app.ok("sysadmin", r#"/incident declare level:1 title:"one""#)
            .await;
        app.ok("dev", "/incident ack").await;
        app.ok("sysadmin", r#"/incident declare level:1 title:"two""#)
            .await;
        let r = app
            .refused("dev", r#"/incident update text:"which?""#)
            .await;
        assert_eq!(
            r,
            "2 incidents are open (INC-1, INC-2); name one with incident:INC-<number>"
        );
        // A client may say which incident its conversation is about.
        let v = app
            .post_json(
                "/api/v1/commands",
                &json!({"text": "/incident ack", "user": "dev", "incident": "INC-2"}),
            )
            .await
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["incident"]["ref"], "INC-2");
    }
);

dual_test!(the_api_requires_the_bearer_token, |app| async {
    let url = format!("{}/api/v1/incidents", app.addr);
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"error": "missing or invalid bearer token"})
    );
    let res = app
        .client
        .get(&url)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let almost = format!("{}x", &app.token[..app.token.len() - 1]);
    assert_eq!(
        app.client
            .get(&url)
            .bearer_auth(almost)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let res = app
        .client
        .post(format!("{}/api/v1/commands", app.addr))
        .json(&json!({"text": "/incident declare level:1 title:x", "user": "sysadmin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        app.incidents("all").await.is_empty(),
        "nothing was declared"
    );
});

dual_test!(bad_bodies_get_clear_errors, |app| async {
    // Over 1 MiB → 413, JSON.
    let huge = json!({"text": "x".repeat(1024 * 1024 + 10), "user": "sysadmin"});
    let res = app.post_json("/api/v1/commands", &huge).await;
    assert_eq!(res.status(), 413);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("larger than the limit"));
    // A missing field is named.
    let res = app
        .post_json("/api/v1/commands", &json!({"text": "/help"}))
        .await;
    assert_eq!(res.status(), 400);
    let e = res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(e.contains("missing field `user`"), "{e}");
    // Unknown fields too.
    let res = app
        .post_json(
            "/api/v1/commands",
            &json!({"text": "/help", "user": "dev", "admin": true}),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("unknown field `admin`"));
    // Not JSON.
    let res = app
        .client
        .post(format!("{}/api/v1/commands", app.addr))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A user id with spaces or control characters.
    let res = app
        .post_json(
            "/api/v1/commands",
            &json!({"text": "/help", "user": "sys admin"}),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .starts_with("field `user`"));
    let res = app
        .post_json(
            "/api/v1/commands",
            &json!({"text": "/help", "user": "dev", "source": "alert"}),
        )
        .await;
    assert_eq!(res.status(), 400);
    // Unknown routes are JSON 404s.
    let res = app.get("/api/v1/nothing").await;
    assert_eq!(res.status(), 404);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("no such endpoint"));
    assert!(app.incidents("all").await.is_empty());
});

dual_test!(health_readiness_and_metrics_answer, |app| async {
    let res = app
        .client
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .get(format!("{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"status": "ready"})
    );
    app.ok(
        "sysadmin",
        r#"/incident declare level:3 title:"MySQL down""#,
    )
    .await;
    app.ok("sysadmin", r#"/incident declare level:5 title:"Breach""#)
        .await;
    app.ok("sysadmin", "/incident ack incident:INC-2").await;
    let m = app.metrics().await;
    for line in [
        r#"spotter_incidents{level="3",state="declared"} 1"#,
        r#"spotter_incidents{level="5",state="acknowledged"} 1"#,
        r#"spotter_incidents{level="1",state="declared"} 0"#,
        r#"spotter_commands_total{outcome="ok"} 3"#,
        "# TYPE spotter_outbox_messages gauge",
        "# TYPE spotter_http_request_duration_seconds histogram",
        r#"route="/api/v1/commands""#,
    ] {
        assert!(m.contains(line), "metrics lack {line}:\n{m}");
    }
});

dual_test!(
    the_incident_commander_may_resolve_their_own_incident,
    |app| async {
        app.ok(
            "sysadmin",
            r#"/incident declare level:2 title:"API 502s" commander:dev"#,
        )
        .await;
        // dev is only a responder, but commands INC-1: commander rights on it.
        app.ok("dev", "/incident escalate incident:INC-1").await;
        let v = app.ok("dev", "/incident resolve incident:INC-1").await;
        assert_eq!(v["incident"]["state"], "resolved");
        app.ok("sysadmin", r#"/incident declare level:2 title:"other""#)
            .await;
        let r = app.refused("dev", "/incident resolve incident:INC-2").await;
        assert!(
            r.starts_with("not allowed: /incident resolve needs role commander"),
            "{r}"
        );
    }
);

dual_test!(
    a_maintenance_reason_with_every_kind_of_quote_is_stored_as_sent,
    |app| async {
        // The API builds a command line from the JSON; typographic quotes end a quoted value in
        // the grammar, so they must be escaped like straight ones, or the reason is cut short.
        let reason = r#"swap “disk” at C:\data, say "done" ” \“ end"#;
        let res = app
            .post_json(
                "/api/v1/maintenance",
                &json!({"user": "sysadmin", "components": ["database"], "duration": "1h", "reason": reason}),
            )
            .await;
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["maintenance"]["reason"], reason);
        let listed = app.get_json("/api/v1/maintenance").await;
        assert_eq!(listed["maintenance"][0]["reason"], reason, "{listed}");
    }
);
