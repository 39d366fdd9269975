//! The status page's subscribers end to end: the real application, a local SMTP server and a
//! local webhook receiver. A webhook subscriber added the CLI's way and an email subscriber who
//! came through the page's form (double opt-in) get every public change, in Statuspage's shapes,
//! signed or with a one-click unsubscribe; nothing internal reaches them. Both backends.

#[path = "../common/mod.rs"]
mod common;
mod listeners;

use axum::http::StatusCode;
use listeners::{smtp_server, webhook_receiver, Hooks, Mail, Mails};
use serde_json::Value;
use spotter_core::config::{SmtpConfig, SmtpTls};
use std::time::Duration;

const SECRET: &str = "hook-secret-5f2a9c";
const INTERNAL: &str = "db-7 OOM-killed by the ops-cron job";
const INTERNAL_UPDATE: &str = "rotated the root password on db-7";
const READER: &str = "reader@example.com";

fn options(smtp_port: u16) -> common::Options {
    common::Options {
        configure: Some(Box::new(move |c| {
            c.status.publish_after = chrono::Duration::zero();
            c.smtp = Some(SmtpConfig {
                host: "127.0.0.1".into(),
                port: smtp_port,
                tls: SmtpTls::None,
                user: None,
                password_env: None,
                from: "Workout Tracker Status <status@example.com>".into(),
            });
            c.outbox.retry_base = chrono::Duration::milliseconds(50);
            c.outbox.retry_max = chrono::Duration::milliseconds(200);
        })),
        env: [("STATUS_HOOK_SECRET".to_string(), SECRET.to_string())].into(),
        ..Default::default()
    }
}

/// Polls until `check` holds, for up to 15 s.
async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mails_to(mails: &Mails, to: &str) -> Vec<Mail> {
    mails
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .cloned()
        .collect()
}

fn hooks(h: &Hooks) -> Vec<listeners::Hook> {
    h.lock().unwrap().clone()
}

/// The incident payloads received, in order: (status, latest update body).
fn incident_events(h: &Hooks) -> Vec<(String, String)> {
    hooks(h)
        .iter()
        .map(|h| h.json())
        .filter(|j| j.get("incident").is_some())
        .map(|j| {
            (
                j["incident"]["status"].as_str().unwrap().to_string(),
                j["incident"]["incident_updates"][0]["body"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

async fn form(app: &common::TestApp, body: &str) -> (StatusCode, String) {
    let res = app
        .client
        .post(format!("{}/status/subscribe", app.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

/// A link from a mail, fetched on this server (the page's base URL is the configured public one).
fn local(app: &common::TestApp, link: &str) -> String {
    let path = &link[link.find("/status/").unwrap()..];
    format!("{}{path}", app.addr)
}

async fn lifecycle(backend: common::Backend) {
    let (smtp, mails) = smtp_server().await;
    let (url, got) = webhook_receiver(StatusCode::OK).await;
    let Some(app) = common::TestApp::spawn_with(backend, "subscribers", options(smtp)).await else {
        return;
    };
    let engine = app.engine.clone();
    let hook = engine
        .add_webhook_subscriber(&url, "STATUS_HOOK_SECRET", &[], "cli:test")
        .await
        .unwrap()
        .unwrap();

    // The reader subscribes on the page, to the database only; nothing is sent before the
    // confirmation but the confirmation itself.
    let (status, page) = form(&app, &format!("email={READER}&component=database")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Check your inbox"), "{page}");
    let confirm = until("the confirmation mail", || {
        mails_to(&mails, READER).first().cloned()
    })
    .await;
    assert!(confirm
        .header("subject")
        .unwrap()
        .contains("Confirm your subscription"));
    let link = confirm.link("http").unwrap();
    assert!(link.contains("/status/subscribe/confirm/"), "{link}");
    // Fetching the link (as a mail scanner does) confirms nothing.
    let view = app.client.get(local(&app, &link)).send().await.unwrap();
    assert_eq!(view.status(), 200);
    let pending = engine.store().subscribers().await.unwrap();
    assert_eq!(pending[1].state.as_str(), "pending");
    let done = app.client.post(local(&app, &link)).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains(READER));
    let active = engine.store().subscribers().await.unwrap();
    assert_eq!(active[1].state.as_str(), "active");

    // Declare: published at once (no grace), announced to both.
    app.ok(
        "dba",
        &format!(r#"/incident declare level:3 title:"{INTERNAL}" component:database"#),
    )
    .await;
    let opened = until("the incident webhook", || {
        hooks(&got)
            .into_iter()
            .find(|h| h.json().get("incident").is_some())
    })
    .await;
    assert!(
        opened.verified(SECRET),
        "the payload verifies with the subscriber's secret"
    );
    assert!(!opened.verified("another-secret"));
    let j = opened.json();
    assert_eq!(j["incident"]["status"], "investigating");
    assert_eq!(j["incident"]["impact"], "critical");
    assert_eq!(j["page"]["status_indicator"], "critical");
    assert!(j["page"]["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(j["meta"]["unsubscribe"]
        .as_str()
        .unwrap()
        .contains(&format!("/status/unsubscribe/{}.", hook.id)));
    assert!(j["incident"]["shortlink"]
        .as_str()
        .unwrap()
        .contains("/status/incidents/"));
    let component = until("the component webhook", || {
        hooks(&got)
            .into_iter()
            .map(|h| h.json())
            .find(|j| j.get("component_update").is_some())
    })
    .await;
    assert_eq!(component["component"]["id"], "database");
    assert_eq!(component["component_update"]["old_status"], "operational");
    assert_eq!(component["component_update"]["new_status"], "major_outage");
    assert_eq!(component["component_update"]["component_id"], "database");
    let mail = until("the incident mail", || {
        mails_to(&mails, READER).into_iter().nth(1)
    })
    .await;
    let unsubscribe = mail.header("list-unsubscribe").unwrap();
    assert!(unsubscribe.starts_with('<') && unsubscribe.contains("/status/unsubscribe/"));
    assert_eq!(
        mail.header("list-unsubscribe-post").unwrap(),
        "List-Unsubscribe=One-Click"
    );
    assert!(
        mail.body().contains("We are investigating"),
        "{}",
        mail.body()
    );

    // A person's public update, then an internal one, then the resolution.
    app.ok(
        "dev",
        r#"/status post text:"Restoring the database from last night's backup" status:identified"#,
    )
    .await;
    app.ok(
        "dev",
        &format!(r#"/incident update text:"{INTERNAL_UPDATE}""#),
    )
    .await;
    app.ok("dba", r#"/incident resolve summary:"restored""#)
        .await;
    let events = until("the resolution webhook", || {
        let e = incident_events(&got);
        e.iter().any(|(s, _)| s == "resolved").then_some(e)
    })
    .await;
    assert!(
        events
            .iter()
            .any(|(s, b)| s == "identified" && b.contains("last night's backup")),
        "{events:?}"
    );
    until("the database back to operational", || {
        hooks(&got).into_iter().map(|h| h.json()).find(|j| {
            j["component_update"]["new_status"] == "operational"
                && j["component_update"]["old_status"] == "major_outage"
        })
    })
    .await;
    let resolved_mail = until("the resolution mail", || {
        mails_to(&mails, READER)
            .into_iter()
            .find(|m| m.header("subject").unwrap_or_default().contains("Resolved"))
    })
    .await;
    assert!(resolved_mail.body().contains("resolved"));

    // Every payload was signed, nothing internal reached a subscriber, and each change went
    // out once (the announcer's notices hold across its rounds).
    for h in hooks(&got) {
        assert!(h.verified(SECRET));
        let text = String::from_utf8_lossy(&h.body).to_string();
        assert!(
            !text.contains(INTERNAL) && !text.contains(INTERNAL_UPDATE),
            "{text}"
        );
    }
    for m in mails_to(&mails, READER) {
        assert!(!m.data.contains(INTERNAL) && !m.data.contains(INTERNAL_UPDATE));
    }
    let keys: Vec<String> = hooks(&got)
        .iter()
        .map(|h| {
            h.headers["x-spotter-idempotency-key"]
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        keys.len(),
        unique.len(),
        "no change was sent twice: {keys:?}"
    );

    // One-click unsubscribe (RFC 8058: a POST with this body, no page in between), once what
    // was queued for the reader went out (a mail being sent cannot be called back).
    let reader = active[1].id;
    app.eventually("the reader's queue empty", || async {
        !app.engine
            .store()
            .outbox(10_000)
            .await
            .unwrap()
            .iter()
            .any(|m| {
                m.target == format!("subscriber:{reader}")
                    && m.state == spotter_core::store::DeliveryState::Pending
            })
    })
    .await;
    let before = mails_to(&mails, READER).len();
    let link = unsubscribe.trim_matches(['<', '>']);
    let res = app
        .client
        .post(local(&app, link))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let again = app.client.post(local(&app, link)).send().await.unwrap();
    assert_eq!(again.status(), 410, "a second press changes nothing");
    app.ok(
        "dba",
        r#"/incident declare level:3 title:"second" component:database"#,
    )
    .await;
    until("the second incident's webhook", || {
        (incident_events(&got).len() > events.len()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<String> = mails_to(&mails, READER)[before..]
        .iter()
        .map(|m| m.header("subject").unwrap_or_default())
        .collect();
    assert!(
        after.is_empty(),
        "an unsubscribed reader gets nothing: {after:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_every_public_change_sqlite() {
    lifecycle(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_every_public_change_postgres() {
    lifecycle(common::Backend::Postgres).await;
}

/// The form: one answer whatever the address, bad input named, a flood limited per source;
/// links: forged ones refused and spending the failure budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_tells_nothing_refuses_junk_and_is_rate_limited() {
    let (smtp, mails) = smtp_server().await;
    let app = common::TestApp::spawn_with(common::Backend::Sqlite, "subscribe_form", {
        let mut o = options(smtp);
        let configure = o.configure.take().unwrap();
        o.configure = Some(Box::new(move |c| {
            configure(c);
            c.status.subscribe_per_hour = 4;
        }));
        o
    })
    .await
    .unwrap();
    let page = app.get("/status").await.text().await.unwrap();
    assert!(
        page.contains("/status/subscribe"),
        "the page links the form"
    );
    let form_page = app.get("/status/subscribe").await.text().await.unwrap();
    assert!(form_page.contains("name=\"email\"") && form_page.contains("value=\"database\""));

    let hour = || chrono::Utc::now().timestamp() / 3600;
    let first_hour = hour();
    let (s1, new) = form(&app, "email=someone%40example.com").await;
    let (s2, again) = form(&app, "email=SOMEONE%40example.com").await;
    let same_hour = hour() == first_hour;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(new, again, "a known address gets the same answer");
    let (s, bad) = form(&app, "email=not-an-address").await;
    assert_eq!(s, 400);
    assert!(
        bad.contains("is not an email address") && bad.contains("someone@example.com"),
        "{bad}"
    );
    let (s, _) = form(&app, "email=x%40example.com&component=nope").await;
    assert_eq!(s, 400);
    let (s, _) = form(&app, "email=y%40example.com").await;
    assert_eq!(s, 429, "the fifth request within the hour is refused");
    let subs = app.engine.store().subscribers().await.unwrap();
    assert_eq!(
        subs.len(),
        1,
        "one pending address, the junk stored nothing: {subs:?}"
    );

    // Forged and altered links change nothing, and 20 of them exhaust the failure budget.
    let mut last = 0;
    for i in 0..25 {
        let res = app
            .client
            .post(format!(
                "{}/status/unsubscribe/{}.{:032x}",
                app.addr, subs[0].id, i
            ))
            .send()
            .await
            .unwrap();
        last = res.status().as_u16();
        if last == 429 {
            break;
        }
        assert_eq!(last, 404);
    }
    assert_eq!(last, 429);
    assert_eq!(
        app.engine.store().subscribers().await.unwrap()[0]
            .state
            .as_str(),
        "pending"
    );
    // One confirmation mail an hour per address, however often it is asked for.
    until("the confirmation mail", || {
        (!mails_to(&mails, "someone@example.com").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expected = if same_hour { 1 } else { 2 };
    assert_eq!(mails_to(&mails, "someone@example.com").len(), expected);
    app.stop().await;
}

/// A maintenance announced on the page reaches subscribers when scheduled, when it starts and
/// when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_is_announced_when_scheduled_started_and_completed() {
    let (smtp, _mails) = smtp_server().await;
    let (url, got) = webhook_receiver(StatusCode::OK).await;
    let app =
        common::TestApp::spawn_with(common::Backend::Sqlite, "subscribers_maint", options(smtp))
            .await
            .unwrap();
    app.engine
        .add_webhook_subscriber(&url, "STATUS_HOOK_SECRET", &["cache".into()], "cli:test")
        .await
        .unwrap()
        .unwrap();
    let start = chrono::Utc::now() + chrono::Duration::seconds(2);
    let at = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    app.ok(
        "dba",
        &format!(r#"/maintenance schedule component:cache start:"{at}" duration:2s reason:"Redis upgrade" public:true"#),
    )
    .await;
    let statuses = until("scheduled, in progress, completed", || {
        let s: Vec<String> = hooks(&got)
            .iter()
            .map(|h| h.json())
            .filter(|j| j["incident"]["name"] == "Redis upgrade")
            .map(|j| j["incident"]["status"].as_str().unwrap().to_string())
            .collect();
        s.iter().any(|s| s == "completed").then_some(s)
    })
    .await;
    assert_eq!(statuses.first().map(String::as_str), Some("scheduled"));
    assert!(statuses.iter().any(|s| s == "in_progress"), "{statuses:?}");
    // The cache went under maintenance and back, as component updates.
    let moves: Vec<(Value, Value)> = hooks(&got)
        .iter()
        .map(|h| h.json())
        .filter(|j| j["component"]["id"] == "cache")
        .map(|j| {
            (
                j["component_update"]["old_status"].clone(),
                j["component_update"]["new_status"].clone(),
            )
        })
        .collect();
    assert!(
        moves.contains(&("operational".into(), "under_maintenance".into())),
        "{moves:?}"
    );
    app.stop().await;
}

/// A subscriber that keeps failing is retried, then dead-lettered and counted; never dropped
/// in silence. Removing it cancels what waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_subscriber_is_retried_then_dead_lettered_and_counted() {
    let (smtp, _mails) = smtp_server().await;
    let (url, got) = webhook_receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let app = common::TestApp::spawn_with(common::Backend::Sqlite, "subscribers_dead", {
        let mut o = options(smtp);
        let configure = o.configure.take().unwrap();
        o.configure = Some(Box::new(move |c| {
            configure(c);
            c.outbox.max_attempts = 3;
        }));
        o
    })
    .await
    .unwrap();
    let s = app
        .engine
        .add_webhook_subscriber(&url, "STATUS_HOOK_SECRET", &[], "cli:test")
        .await
        .unwrap()
        .unwrap();
    app.ok(
        "dba",
        r#"/incident declare level:3 title:"x" component:database"#,
    )
    .await;
    app.eventually("a broadcast dead-lettered", || async {
        app.metrics()
            .await
            .contains("spotter_broadcasts_dead_total{channel=\"webhook\"}")
    })
    .await;
    let failures = app.engine.store().broadcast_failures().await.unwrap();
    let mine = failures
        .iter()
        .find(|(k, _, _)| k == &format!("subscriber:{}", s.id))
        .unwrap();
    assert!(mine.2.as_deref().unwrap().contains("500"), "{failures:?}");
    assert!(
        hooks(&got).len() >= 3,
        "three attempts of the first broadcast"
    );
    app.engine
        .remove_subscriber(s.id, "cli:test")
        .await
        .unwrap()
        .unwrap();
    let pending: Vec<_> = app
        .engine
        .store()
        .outbox(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.target == format!("subscriber:{}", s.id))
        .filter(|m| m.state == spotter_core::store::DeliveryState::Pending)
        .collect();
    assert!(
        pending.is_empty(),
        "nothing waits for a removed subscriber: {pending:?}"
    );
    app.stop().await;
}
