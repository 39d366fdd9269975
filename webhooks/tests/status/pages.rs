//! The HTML status page: what it shows, that it escapes, and that it is self-contained.

use crate::fixtures::*;
use axum::http::StatusCode;

const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

/// Self-contained and locked down: no script, nothing loaded from elsewhere.
fn assert_self_contained(html: &str) {
    assert!(
        html.starts_with("<!DOCTYPE html><html lang=\"en\">"),
        "{}",
        &html[..80]
    );
    assert!(
        html.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
    );
    assert!(html.contains("@media (prefers-color-scheme: dark)"));
    assert!(
        !html.to_lowercase().contains("<script"),
        "no script element at all"
    );
    assert!(!html.contains("src="), "no external resource");
    assert!(
        !html.contains("href=\"http"),
        "no link off the page's own paths"
    );
    assert!(!html.contains(XSS));
}

fn assert_csp(a: &Answer) {
    assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        a.header("content-security-policy"),
        Some("default-src 'none'; style-src 'unsafe-inline'; img-src data:")
    );
}

#[tokio::test]
async fn the_status_page_shows_the_state_components_uptime_and_active_incidents() {
    let (r, _) = router_for(snapshot());
    let a = get(&r, "/status").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_csp(&a);
    let html = a.text();
    assert_self_contained(&html);

    assert!(html
        .contains("<div class=\"banner i-critical\" role=\"status\">Major Service Outage</div>"));
    // Components in order, each with its status, 90 day cells and the uptime beneath.
    let db = html.find("id=\"component-database\"").expect("database");
    let app = html
        .find("id=\"component-application\"")
        .expect("application");
    let web = html.find("id=\"component-website\"").expect("website");
    assert!(db < app && app < web, "page order");
    assert!(html.contains("<span class=\"st s-major_outage\">Major Outage</span>"));
    assert!(html.contains("<span class=\"st s-operational\">Operational</span>"));
    assert!(html.contains("<span class=\"st s-degraded_performance\">Degraded Performance</span>"));
    assert!(html.contains("<div class=\"group\">Backend</div>"));
    assert!(html.contains("<div class=\"group\">Other</div>"));
    assert_eq!(
        html.matches("<span class=\"d-").count(),
        270,
        "90 cells for each of 3 components"
    );
    assert!(
        html.contains("<span class=\"d-major_outage\" title=\"1 Dec 2026: Major Outage\"></span>")
    );
    assert!(
        html.contains("<span class=\"d-operational\" title=\"3 Sep 2026: Operational\"></span>")
    );
    assert!(html.contains("title=\"13 Sep 2026: Degraded Performance\""));
    // 87 of 90 days operational for the database, 89 for the others (floored to hundredths).
    assert!(html.contains("<span class=\"uptime\">96.66% uptime</span>"));
    assert_eq!(
        html.matches("<span class=\"uptime\">98.88% uptime</span>")
            .count(),
        2
    );

    // Active incidents only, with every update newest first, escaped.
    assert!(html.contains(ESCAPED));
    assert!(html.contains("Slow pages"));
    assert!(
        !html.contains("Application errors"),
        "a resolved incident is history, not active"
    );
    let newer = html
        .find("The primary &lt;b&gt;disk&lt;/b&gt; is full &amp; read-only.")
        .expect("update 2");
    let older = html
        .find("We are investigating problems with the database.")
        .expect("update 1");
    assert!(newer < older, "newest update first");
    assert!(
        html.contains("<time datetime=\"2026-12-01T12:20:00.000Z\">1 Dec 2026, 13:20 CET</time>"),
        "in the page's time zone (Europe/Berlin)"
    );
    assert!(html.contains("<a href=\"/status/incidents/pi_db\">"));
    assert!(html.contains("<a href=\"/status/history\">"));
}

#[tokio::test]
async fn one_incident_page_has_its_whole_history_and_an_unknown_one_is_404() {
    let (r, _) = router_for(snapshot());
    let a = get(&r, "/status/incidents/pi_app").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_csp(&a);
    let html = a.text();
    assert_self_contained(&html);
    assert!(html.contains("<title>Application errors</title>"));
    let pos: Vec<usize> = [
        "Fixed.",
        "A fix is deployed; we are watching.",
        "Logins fail.",
    ]
    .iter()
    .map(|b| html.find(b).unwrap_or_else(|| panic!("update {b:?}")))
    .collect();
    assert!(
        pos[0] < pos[1] && pos[1] < pos[2],
        "every update, newest first"
    );
    assert!(html.contains("resolved <time datetime=\"2026-10-02T10:00:00.000Z\">"));
    assert!(html.contains("affects Application"));

    let x = get(&r, "/status/incidents/pi_db").await.text();
    assert!(x.contains(&format!("<title>{ESCAPED}</title>")));
    assert!(!x.contains(XSS));

    let missing = get(&r, "/status/incidents/pi_nope%3Cb%3E").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_csp(&missing);
    let html = missing.text();
    assert_self_contained(&html);
    assert!(html.contains("Not found"));
    assert!(!html.contains("pi_nope<b>"));
}

#[tokio::test]
async fn history_groups_incidents_by_month_newest_first() {
    let (r, _) = router_for(snapshot());
    let a = get(&r, "/status/history").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_csp(&a);
    let html = a.text();
    assert_self_contained(&html);
    let dec = html.find("<h2>December 2026</h2>").expect("December");
    let oct = html.find("<h2>October 2026</h2>").expect("October");
    assert!(dec < oct, "newest month first");
    let app = html.find("Application errors").unwrap();
    let db = html.find(ESCAPED).unwrap();
    let web = html.find("Slow pages").unwrap();
    assert!(dec < db && db < web && web < oct && oct < app);

    let mut empty = snapshot();
    empty.incidents.clear();
    let (r, _) = router_for(empty);
    assert!(get(&r, "/status/history")
        .await
        .text()
        .contains("No incidents reported."));
}

#[tokio::test]
async fn times_and_months_are_in_the_pages_time_zone() {
    // 23:30 UTC on 31 October is 00:30 on 1 November in Berlin: November's incident there.
    let mut snap = snapshot();
    let late = &mut snap.incidents[2];
    late.created_at = t("2026-10-31T23:30:00Z");
    late.updates.last_mut().unwrap().created_at = t("2026-10-31T23:30:00Z");
    let (r, _) = router_for(snap.clone());
    let html = get(&r, "/status/history").await.text();
    assert!(html.contains("<h2>November 2026</h2>"), "{html}");
    assert!(!html.contains("<h2>October 2026</h2>"));
    assert!(html.contains(">1 Nov 2026, 00:30 CET</time>"));
    let atom = get(&r, "/status/history.atom").await.text();
    assert!(
        atom.contains("1 Nov 2026, 00:30 CET"),
        "feed content in the page's zone too"
    );

    // A time zone that is not an IANA name: UTC.
    snap.page.time_zone = "Mars/Olympus".into();
    let (r, _) = router_for(snap);
    let html = get(&r, "/status/history").await.text();
    assert!(html.contains("<h2>October 2026</h2>"));
    assert!(html.contains(">31 Oct 2026, 23:30 UTC</time>"));
}
