//! The announcer, on SQLite and PostgreSQL alike: each public change becomes one broadcast per
//! subscriber who wants it, once, however many replicas announce at the same time and however
//! often they run; removed subscribers and other components' subscribers get nothing.

mod common;

use spotter_core::clock::Clock;
use spotter_core::store::{MessageKind, OutboxMessage, Store};
use spotter_core::Engine;
use std::sync::Arc;

fn broadcasts_to(outbox: &[OutboxMessage], subscriber: i64) -> Vec<&OutboxMessage> {
    outbox
        .iter()
        .filter(|m| {
            m.kind == MessageKind::Broadcast && m.target == format!("subscriber:{subscriber}")
        })
        .collect()
}

/// Another replica's engine on the same database.
fn replica(ctx: &common::Ctx) -> Arc<Engine> {
    Arc::new(Engine::new(
        ctx.store.clone() as Arc<dyn Store>,
        ctx.config.clone(),
        ctx.clock.clone() as Arc<dyn Clock>,
        ctx.metrics.clone(),
    ))
}

dual_test!(
    multi_thread each_change_is_announced_once_to_those_who_want_it,
    |ctx| async move {
        let all = ctx
            .engine
            .add_webhook_subscriber("https://a.example/hook", "HOOK_A", &[], "cli:test")
            .await
            .unwrap()
            .unwrap();
        let cache = ctx
            .engine
            .add_webhook_subscriber("https://b.example/hook", "HOOK_B", &["cache".into()], "cli:test")
            .await
            .unwrap()
            .unwrap();
        let gone = ctx
            .engine
            .add_webhook_subscriber("https://c.example/hook", "HOOK_C", &[], "cli:test")
            .await
            .unwrap()
            .unwrap();
        ctx.engine
            .remove_subscriber(gone.id, "cli:test")
            .await
            .unwrap()
            .unwrap();
        // The first round only records that every component is fine: nothing to tell.
        ctx.engine.rebuild_status().await.unwrap();
        ctx.engine.announce().await.unwrap();
        assert!(broadcasts_to(&ctx.outbox().await, all.id).is_empty());

        ctx.ok(
            "dba",
            r#"/incident declare level:3 title:"internal words" component:database"#,
        )
        .await;
        ctx.ok("dba", "/status publish").await;
        // Three replicas announce at once, twice each.
        let replicas = [ctx.engine.clone(), replica(&ctx), replica(&ctx)];
        for r in &replicas {
            r.rebuild_status().await.unwrap();
        }
        for _ in 0..2 {
            let rounds = replicas.iter().map(|r| {
                let r = r.clone();
                tokio::spawn(async move { r.announce().await.unwrap() })
            });
            futures::future::join_all(rounds).await;
        }
        let outbox = ctx.outbox().await;
        let mine = broadcasts_to(&outbox, all.id);
        let kinds: Vec<&str> = mine
            .iter()
            .map(|m| m.broadcast.as_ref().unwrap().event.kind())
            .collect();
        assert_eq!(kinds.len(), 2, "the incident and the database, once each: {kinds:?}");
        assert!(kinds.contains(&"incident") && kinds.contains(&"component"));
        for m in &mine {
            let b = m.broadcast.as_ref().unwrap();
            assert_eq!(b.address, "https://a.example/hook");
            assert_eq!(b.secret_env.as_deref(), Some("HOOK_A"));
            assert!(!format!("{b:?}").contains("internal words"));
        }
        assert!(
            broadcasts_to(&outbox, cache.id).is_empty(),
            "a cache subscriber hears nothing of the database"
        );
        assert!(broadcasts_to(&outbox, gone.id).is_empty());

        // A public update is one more broadcast; a replica started afresh finds nothing new.
        ctx.ok("dev", r#"/status post text:"Restoring from backup""#)
            .await;
        ctx.engine.rebuild_status().await.unwrap();
        assert_eq!(ctx.engine.announce().await.unwrap(), 1);
        let fresh = replica(&ctx);
        fresh.rebuild_status().await.unwrap();
        assert_eq!(fresh.announce().await.unwrap(), 0);
        let mine = broadcasts_to(&ctx.outbox().await, all.id).len();
        assert_eq!(mine, 3);
    }
);

dual_test!(
    subscriber_input_is_checked_and_links_are_bound_to_their_subscriber,
    |ctx| async move {
        for (url, var, components, expect) in [
            ("ftp://x.example", "V", vec![], "is not an http(s) URL"),
            (
                "https://x.example/h",
                "BAD-NAME",
                vec![],
                "is not an environment variable name",
            ),
            (
                "https://x.example/h",
                "V",
                vec!["nope".to_string()],
                "is not configured; one of:",
            ),
        ] {
            let why = ctx
                .engine
                .add_webhook_subscriber(url, var, &components, "cli:test")
                .await
                .unwrap()
                .unwrap_err();
            assert!(why.contains(expect), "{why}");
        }
        assert!(ctx.store.subscribers().await.unwrap().is_empty());
        let s = ctx
            .engine
            .add_webhook_subscriber("https://x.example/h", "V", &[], "cli:test")
            .await
            .unwrap()
            .unwrap();
        let links = ctx.engine.subscriber_links(s.id);
        let token = links.unsubscribe.rsplit('/').next().unwrap().to_string();
        // Another subscriber's id with this MAC, a confirm token used to unsubscribe, a bent MAC.
        let other = token.replacen(&format!("{}.", s.id), &format!("{}.", s.id + 1), 1);
        let confirm = links.confirm.rsplit('/').next().unwrap().to_string();
        let mut bent = token.clone();
        let last = bent.pop().unwrap();
        bent.push(if last == '0' { '1' } else { '0' });
        for forged in [other, confirm, bent, "1.zz".into(), "".into()] {
            assert!(
                ctx.engine.unsubscribe(&forged).await.unwrap().is_err(),
                "{forged}"
            );
        }
        assert_eq!(
            ctx.store
                .subscriber(s.id)
                .await
                .unwrap()
                .unwrap()
                .state
                .as_str(),
            "active"
        );
        assert!(ctx.engine.unsubscribe(&token).await.unwrap().is_ok());
        assert!(
            ctx.engine.unsubscribe(&token).await.unwrap().is_err(),
            "once"
        );
        // Nothing personal is kept of someone who left.
        let gone = ctx.store.subscriber(s.id).await.unwrap().unwrap();
        assert_eq!(gone.address, "(removed)");
        assert_eq!(gone.secret_env, None);
        // The audit log names the subscriber by id, never by address.
        let log = ctx.store.audit_log().await.unwrap();
        let text = format!("{log:?}");
        assert!(text.contains("subscriber.add") && text.contains("subscriber.remove"));
        assert!(!text.contains("x.example"), "{text}");
        ctx.audit_verifies().await;
    }
);

dual_test!(
    multi_thread a_public_incident_is_never_read_torn_from_its_updates,
    |ctx| async move {
        ctx.ok(
            "dba",
            r#"/incident declare level:3 title:"x" component:database"#,
        )
        .await;
        ctx.ok("dba", "/status publish").await;
        // One writer posts public updates (each moves the incident's updated_at with it); a
        // reader keeps reading. An incident read with an update newer than its own row would be
        // a torn read, which the announcer would announce as a change of its own.
        let writer = {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    ctx.clock.advance(chrono::Duration::milliseconds(7));
                    ctx.ok("dev", &format!(r#"/status post text:"step {i}""#)).await;
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() {
            for p in ctx.store.public_incidents_open_since(common::start_time()).await.unwrap() {
                let newest = p.updates.first().unwrap().created_at;
                assert!(
                    newest <= p.updated_at,
                    "torn read: update at {newest}, incident row at {}",
                    p.updated_at
                );
            }
            reads += 1;
        }
        writer.await.unwrap();
        assert!(reads > 1);
    }
);
