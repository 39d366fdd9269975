//! The public status page's rules, on SQLite and PostgreSQL alike: publication after the grace
//! (never for held incidents, ones resolved inside it, or levels below the minimum), a public
//! incident that says nothing internal, statuses that follow the phases with templated updates
//! unless a person just spoke, people's own updates, overrides, and the snapshot's indicator.

mod common;

use chrono::Duration;
use spotter_core::status::{ComponentStatus, Impact, PublicStatus};
use spotter_core::store::Store;

async fn due(ctx: &common::Ctx) {
    ctx.scheduler().tick().await.unwrap();
}

dual_test!(
    an_incident_is_published_after_the_grace_and_follows_its_phases,
    |ctx| async move {
        ctx.ok(
        "dba",
        r#"/incident declare level:3 title:"db-7 mysqld OOM-killed by ops-cron" component:database"#,
    )
    .await;
        due(&ctx).await;
        assert!(
            ctx.store.public_incidents(10).await.unwrap().is_empty(),
            "not within the grace"
        );
        ctx.clock.advance(Duration::minutes(5));
        due(&ctx).await;
        ctx.engine.rebuild_status().await.unwrap();
        let p = &ctx.store.public_incidents(10).await.unwrap()[0];
        assert_eq!(p.name, "Problems with MySQL database");
        assert_eq!(p.impact, Impact::Critical);
        assert_eq!(p.status, PublicStatus::Investigating);
        assert_eq!(p.updates.len(), 1);
        assert_eq!(
            p.updates[0].body,
            "We are investigating problems with MySQL database."
        );
        let public = format!("{p:?}");
        assert!(
            !public.contains("OOM") && !public.contains("ops-cron"),
            "internal words leaked: {public}"
        );
        let snap = ctx.engine.status_board().current();
        assert_eq!(snap.indicator, Impact::Critical);
        let db = snap.components.iter().find(|c| c.id == "database").unwrap();
        assert_eq!(db.status, ComponentStatus::MajorOutage);

        // A phase change moves the public status, with the template's words.
        ctx.ok("dba", "/incident phase phase:recovery_execution")
            .await;
        ctx.engine.follow_public().await.unwrap();
        let p = &ctx.store.public_incidents(10).await.unwrap()[0];
        assert_eq!(p.status, PublicStatus::Identified);
        assert_eq!(p.updates.len(), 2);
        assert!(
            p.updates[0].body.contains("has been identified"),
            "{:?}",
            p.updates[0]
        );
        // A person's own words; the next phase change then moves the status without a template.
        ctx.ok(
            "dev",
            r#"/status post text:"Restoring last night's backup; about 20 minutes left.""#,
        )
        .await;
        ctx.ok("dba", "/incident phase phase:validation").await;
        ctx.engine.follow_public().await.unwrap();
        let p = &ctx.store.public_incidents(10).await.unwrap()[0];
        assert_eq!(p.status, PublicStatus::Monitoring);
        assert_eq!(
            p.updates.len(),
            3,
            "no template right after a person spoke: {:?}",
            p.updates
        );
        assert!(p.updates[0].body.starts_with("Restoring"));
        // Resolving resolves it publicly; the page is green again.
        ctx.ok("dba", r#"/incident resolve summary:"restored""#)
            .await;
        ctx.clock.advance(Duration::minutes(11));
        ctx.engine.follow_public().await.unwrap();
        ctx.engine.rebuild_status().await.unwrap();
        let p = &ctx.store.public_incidents(10).await.unwrap()[0];
        assert_eq!(p.status, PublicStatus::Resolved);
        assert!(p.resolved_at.is_some());
        assert!(p.updates[0]
            .body
            .starts_with("This incident has been resolved"));
        let snap = ctx.engine.status_board().current();
        assert_eq!(snap.indicator, Impact::None);
        assert_eq!(snap.description, "All Systems Operational");
        // Following again changes nothing.
        assert_eq!(ctx.engine.follow_public().await.unwrap(), 0);
    }
);

dual_test!(
    held_quick_and_minor_incidents_never_publish,
    |ctx| async move {
        ctx.ok(
            "dba",
            r#"/incident declare level:3 title:"held" component:cache"#,
        )
        .await;
        ctx.ok("dba", "/status hold incident:INC-1").await;
        ctx.ok(
            "dba",
            r#"/incident declare level:3 title:"quick" component:cache"#,
        )
        .await;
        ctx.ok("dba", "/incident resolve incident:INC-2").await;
        ctx.ok(
            "dba",
            r#"/incident declare level:1 title:"minor" component:cache"#,
        )
        .await;
        ctx.clock.advance(Duration::minutes(6));
        due(&ctx).await;
        assert!(ctx.store.public_incidents(10).await.unwrap().is_empty());
        // Publishing by hand still works for the minor one; a held one can be published by hand too.
        ctx.ok("dba", "/status publish incident:INC-3").await;
        let refused = ctx.run("dba", "/status publish incident:INC-3").await;
        assert!(
            !refused.ok && refused.text.contains("already"),
            "{}",
            refused.text
        );
        let p = ctx.store.public_incidents(10).await.unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].impact, Impact::Minor);
        // Only commanders publish and hold.
        let r = ctx.run("dev", "/status hold incident:INC-3").await;
        assert!(
            !r.ok && r.text.contains("needs role commander"),
            "{}",
            r.text
        );
    }
);

dual_test!(
    a_public_incident_update_publishes_at_once_with_its_words,
    |ctx| async move {
        ctx.ok(
            "dev",
            r#"/incident declare level:2 title:"internal name" component:frontend"#,
        )
        .await;
        ctx.ok(
            "dev",
            r#"/incident update text:"Some pages load slowly; we are on it." public:true"#,
        )
        .await;
        let p = &ctx.store.public_incidents(10).await.unwrap()[0];
        assert_eq!(p.updates[0].body, "Some pages load slowly; we are on it.");
        assert_eq!(p.impact, Impact::Major);
        // The job at the end of the grace does not publish it twice.
        ctx.clock.advance(Duration::minutes(6));
        due(&ctx).await;
        assert_eq!(ctx.store.public_incidents(10).await.unwrap().len(), 1);
        // An internal update stays internal.
        ctx.ok(
            "dev",
            r#"/incident update text:"db password rotated by sam""#,
        )
        .await;
        let p = &ctx.store.public_incidents(10).await.unwrap()[0];
        assert!(p.updates.iter().all(|u| !u.body.contains("password")));
    }
);

dual_test!(
    a_component_override_lasts_until_its_incident_resolves,
    |ctx| async move {
        ctx.ok(
            "dba",
            r#"/incident declare level:3 title:"x" component:database"#,
        )
        .await;
        ctx.ok(
            "dba",
            "/status component component:database status:partial_outage",
        )
        .await;
        ctx.engine.rebuild_status().await.unwrap();
        let status = |ctx: &common::Ctx| {
            ctx.engine
                .status_board()
                .current()
                .components
                .iter()
                .find(|c| c.id == "database")
                .unwrap()
                .status
        };
        assert_eq!(status(&ctx), ComponentStatus::PartialOutage);
        let bad = ctx
            .run("dba", "/status component component:database status:down")
            .await;
        assert!(
            !bad.ok && bad.text.contains("accepted: operational"),
            "{}",
            bad.text
        );
        ctx.ok("dba", "/status publish").await;
        ctx.ok("dba", "/incident resolve").await;
        ctx.engine.follow_public().await.unwrap();
        ctx.engine.rebuild_status().await.unwrap();
        assert_eq!(
            status(&ctx),
            ComponentStatus::Operational,
            "the override ended with the incident"
        );
    }
);

/// `ctx` with an engine whose `[status.templates]` has overrides for level 3, level 2 and the
/// database (the store and clock are shared).
fn with_template_overrides(ctx: common::Ctx) -> common::Ctx {
    use spotter_core::config::TemplateOverride;
    use spotter_core::domain::LevelId;
    use std::sync::Arc;
    let mut config = common::test_config();
    let t = &mut config.status.templates;
    t.by_level.insert(
        LevelId(3),
        TemplateOverride {
            title: Some("Major outage: {components}".into()),
            investigating: Some("Level three on {components}.".into()),
            identified: Some("We know why {components} is down.".into()),
            ..TemplateOverride::default()
        },
    );
    t.by_level.insert(
        LevelId(2),
        TemplateOverride {
            investigating: Some("We are looking into slowness of {components}.".into()),
            ..TemplateOverride::default()
        },
    );
    t.by_component.insert(
        "database".parse().unwrap(),
        TemplateOverride {
            investigating: Some("We are investigating problems with the workout database.".into()),
            ..TemplateOverride::default()
        },
    );
    let config = Arc::new(config);
    let engine = Arc::new(spotter_core::Engine::new(
        ctx.store.clone() as Arc<dyn Store>,
        config.clone(),
        ctx.clock.clone() as Arc<dyn spotter_core::clock::Clock>,
        ctx.metrics.clone(),
    ));
    common::Ctx {
        engine,
        config,
        ..ctx
    }
}

dual_test!(
    templates_come_from_the_component_then_the_level_then_the_default,
    |ctx| async move {
        let ctx = with_template_overrides(ctx);
        ctx.ok(
            "dba",
            r#"/incident declare level:3 title:"db-7 down" component:database"#,
        )
        .await;
        ctx.ok(
            "dev",
            r#"/incident declare level:2 title:"slow pages" component:frontend"#,
        )
        .await;
        ctx.clock.advance(Duration::minutes(5));
        due(&ctx).await;
        let published = ctx.store.public_incidents(10).await.unwrap();
        let of = |n: i64| {
            published
                .iter()
                .find(|p| p.incident.number() == n)
                .unwrap_or_else(|| panic!("INC-{n} is published: {published:?}"))
                .clone()
        };
        // Level 3 on the database: the component's words, the level's title.
        let db = of(1);
        assert_eq!(db.name, "Major outage: MySQL database");
        assert_eq!(
            db.updates[0].body,
            "We are investigating problems with the workout database."
        );
        // Level 2 on the frontend: the level's words, the default title.
        let web = of(2);
        assert_eq!(web.name, "Problems with Frontend (:3000)");
        assert_eq!(
            web.updates[0].body,
            "We are looking into slowness of Frontend (:3000)."
        );
        // The database has no `identified` of its own: its level's; then the default `resolved`.
        ctx.ok(
            "dba",
            "/incident phase incident:INC-1 phase:recovery_execution",
        )
        .await;
        ctx.engine.follow_public().await.unwrap();
        let db = ctx
            .store
            .public_incident_of(db.incident)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(db.updates[0].body, "We know why MySQL database is down.");
        ctx.ok(
            "dba",
            r#"/incident resolve incident:INC-1 summary:"restored""#,
        )
        .await;
        ctx.engine.follow_public().await.unwrap();
        let db = ctx
            .store
            .public_incident_of(db.incident)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            db.updates[0].body,
            "This incident has been resolved: MySQL database are working normally again."
        );
    }
);
