//! `/oncall override`: a person on call in a rotation for exactly the override's duration, the
//! refusals (unknown rotation or person, bad duration, too small a role) changing nothing, and
//! the audit record. Both backends.

#[macro_use]
mod common;

use chrono::Duration;
use spotter_core::clock::Clock;
use spotter_core::config::{Config, DEFAULT_TOML};
use spotter_core::metrics::Metrics;
use spotter_core::oncall;
use spotter_core::store::Store;
use spotter_core::Engine;
use std::sync::Arc;

/// The built-in configuration plus the rotation from its commented example.
fn config_with_rotation() -> Config {
    let toml = format!(
        "{DEFAULT_TOML}
[[rotation]]
id = \"primary\"
name = \"Primary on-call\"
members = [\"sysadmin\", \"dba\"]
shift = \"weekly\"
handoff = \"09:00\"
timezone = \"Europe/Berlin\"
start = \"2026-01-05\"
"
    );
    Config::from_toml(&toml, "<test>").expect("the configuration with a rotation is valid")
}

/// The test context with an engine on the same store and clock that reads that configuration.
fn with_rotation(ctx: common::Ctx) -> common::Ctx {
    let config = Arc::new(config_with_rotation());
    let metrics = Arc::new(Metrics::new());
    let engine = Arc::new(Engine::new(
        ctx.store.clone() as Arc<dyn Store>,
        config.clone(),
        ctx.clock.clone() as Arc<dyn Clock>,
        metrics.clone(),
    ));
    common::Ctx {
        engine,
        config,
        metrics,
        ..ctx
    }
}

/// Who `primary` has on call at the clock's time, overrides as the store has them.
async fn on_call_now(ctx: &common::Ctx) -> (String, Option<i64>) {
    let now = ctx.clock.now();
    let overrides = ctx.store.rotation_overrides(now).await.unwrap();
    let rot = ctx.config.rotation("primary").unwrap();
    let on = oncall::on_call(rot, now, &overrides).expect("the rotation has members");
    (on.person.to_string(), on.override_id)
}

dual_test!(
    an_override_puts_the_person_on_call_for_exactly_its_duration,
    |ctx| async move {
        let ctx = with_rotation(ctx);
        let start = ctx.clock.now();
        let rot = ctx.config.rotation("primary").unwrap().clone();
        let scheduled = |at| oncall::scheduled(&rot, at).unwrap().person.to_string();
        // dev is not a member, so whoever the schedule has is someone else.
        assert_eq!(on_call_now(&ctx).await, (scheduled(start), None));

        let r = ctx
            .ok(
                "dba",
                "/oncall override rotation:primary user:dev duration:4h",
            )
            .await;
        let until = start + Duration::hours(4);
        assert_eq!(
            r.text,
            format!(
                "Primary on-call (primary): Development Team (dev) is on call until {} \
                 (override by Database Administrator (dba); the rotation resumes then)",
                spotter_core::render::time(until)
            )
        );
        let (who, override_id) = on_call_now(&ctx).await;
        assert_eq!(who, "dev");
        assert!(override_id.is_some());
        let stored = ctx.store.rotation_overrides(start).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(
            (
                stored[0].rotation.as_str(),
                stored[0].person.as_str(),
                stored[0].starts_at,
                stored[0].ends_at,
                stored[0].created_by.as_str()
            ),
            ("primary", "dev", start, until, "dba")
        );
        // Plain /oncall shows it, and so do the tiers that page the rotation.
        let shown = ctx.ok("dev", "/oncall").await.text;
        assert!(
            shown.contains(&format!(
                "Primary on-call (primary): Development Team (dev) until {} (override)",
                spotter_core::render::time(until)
            )),
            "{shown}"
        );

        // The last second of the override: still dev.
        ctx.clock.set(until - Duration::seconds(1));
        assert_eq!(on_call_now(&ctx).await.0, "dev");
        assert!(ctx
            .ok("dev", "/oncall show")
            .await
            .text
            .contains("(override)"));
        // Its end: the schedule again.
        ctx.clock.set(until);
        assert_eq!(on_call_now(&ctx).await, (scheduled(until), None));
        let shown = ctx.ok("dev", "/oncall").await.text;
        assert!(!shown.contains("(override)"), "{shown}");
        assert!(!shown.contains("Development Team (dev) until"), "{shown}");
    }
);

dual_test!(
    refused_overrides_change_nothing_and_name_the_option,
    |ctx| async move {
        let ctx = with_rotation(ctx);
        let before = ctx.snapshot().await;
        for (who, line, says) in [
            (
                "dba",
                "/oncall override rotation:night user:dev duration:4h",
                "bad value for `rotation`: `night`; accepted: a configured rotation id (primary)",
            ),
            (
                "dba",
                "/oncall override rotation:primary user:mallory duration:4h",
                "bad value for `user`: `mallory`; accepted: a configured person id (",
            ),
            (
                "dba",
                "/oncall override rotation:primary user:dev duration:0m",
                "bad value for `duration`: `0m`; accepted: a duration from 1m to 30d",
            ),
            (
                "dba",
                "/oncall override rotation:primary user:dev duration:31d",
                "bad value for `duration`: `31d`; accepted: a duration from 1m to 30d",
            ),
            (
                "dba",
                "/oncall override rotation:primary user:dev",
                "missing option `duration`; usage: /oncall override rotation:<rotation> user:<person> duration:<duration>",
            ),
            (
                "mallory",
                "/oncall override rotation:primary user:dev duration:4h",
                "not allowed: /oncall override needs role commander; `mallory` is not a configured person, so only a viewer",
            ),
            (
                "hosting",
                "/oncall override rotation:primary user:hosting duration:4h",
                "not allowed: /oncall override needs role commander",
            ),
            (
                "dev",
                "/oncall override rotation:primary user:dev duration:4h",
                "not allowed: /oncall override needs role commander; dev has roles responder",
            ),
        ] {
            ctx.refused(who, line, says).await;
        }
        assert_eq!(ctx.snapshot().await, before);
        let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        assert!(ctx
            .store
            .rotation_overrides(epoch)
            .await
            .unwrap()
            .is_empty());
    }
);

dual_test!(an_override_is_in_the_audit_log, |ctx| async move {
    let ctx = with_rotation(ctx);
    let start = ctx.clock.now();
    ctx.ok(
        "sysadmin",
        "/oncall override rotation:primary user:security duration:\"1h 30m\"",
    )
    .await;
    let log = ctx.store.audit_log().await.unwrap();
    let e = log
        .entries
        .iter()
        .find(|e| e.action == "oncall.override")
        .expect("an oncall.override entry");
    assert_eq!(
        (e.actor.as_str(), e.subject.as_str(), e.at),
        ("sysadmin", "primary", start)
    );
    let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
    assert_eq!(detail["person"], "security");
    let ends: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(detail["ends_at"].clone()).unwrap();
    assert_eq!(ends, start + Duration::minutes(90));
    assert_eq!(ctx.audit_verifies().await, 1);
});
