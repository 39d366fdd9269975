//! The Atom and RSS feeds through a real feed parser (feed-rs), and the SVG badge.

use crate::fixtures::*;
use axum::http::StatusCode;
use spotter_core::status::Impact;

fn parse(a: &Answer) -> feed_rs::model::Feed {
    feed_rs::parser::parse(a.body.as_slice())
        .unwrap_or_else(|e| panic!("the feed parses: {e}\n{}", a.text()))
}

fn content_of(e: &feed_rs::model::Entry) -> String {
    e.content
        .as_ref()
        .and_then(|c| c.body.clone())
        .or_else(|| e.summary.as_ref().map(|s| s.content.clone()))
        .expect("the entry has content")
}

#[tokio::test]
async fn the_atom_feed_has_one_entry_per_incident_with_every_update() {
    let snap = snapshot();
    let (r, _) = router_for(snap.clone());
    let a = get(&r, "/status/history.atom").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.header("content-type"),
        Some("application/atom+xml; charset=utf-8")
    );
    let raw = a.text();
    assert!(!raw.contains(XSS), "the title is escaped in the XML");
    let feed = parse(&a);
    assert_eq!(feed.feed_type, feed_rs::model::FeedType::Atom);
    assert_eq!(feed.id, "urn:spotter:page:pg_workout:history");
    assert_eq!(
        feed.title.as_ref().unwrap().content,
        "Workout Tracker status history"
    );
    assert_eq!(feed.updated, Some(t("2026-12-01T12:30:00Z")));
    assert!(feed
        .links
        .iter()
        .any(|l| l.href == "https://status.example.test/status"));
    assert!(feed.links.iter().any(|l| l.rel.as_deref() == Some("self")
        && l.href == "https://status.example.test/status/history.atom"));
    assert_eq!(feed.authors[0].name, "Workout Tracker");

    assert_eq!(feed.entries.len(), snap.incidents.len());
    for (e, i) in feed.entries.iter().zip(&snap.incidents) {
        assert_eq!(e.id, format!("urn:spotter:incident:{}", i.id));
        assert_eq!(
            e.title.as_ref().unwrap().content,
            i.name,
            "title as text, e.g. the <script> one"
        );
        assert_eq!(e.updated, Some(i.updated_at));
        assert_eq!(e.published, Some(i.created_at));
        assert_eq!(
            e.links[0].href,
            format!("https://status.example.test/status/incidents/{}", i.id)
        );
        let html = content_of(e);
        for u in &i.updates {
            let escaped = u
                .body
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            assert!(
                html.contains(&escaped),
                "entry {} lists update {:?}: {html}",
                i.id,
                u.body
            );
            assert!(html.contains(u.status.title()));
        }
    }
}

#[tokio::test]
async fn the_rss_feed_has_one_item_per_incident_with_every_update() {
    let snap = snapshot();
    let (r, _) = router_for(snap.clone());
    let a = get(&r, "/status/history.rss").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.header("content-type"),
        Some("application/rss+xml; charset=utf-8")
    );
    assert!(!a.text().contains(XSS));
    let feed = parse(&a);
    assert_eq!(feed.feed_type, feed_rs::model::FeedType::RSS2);
    assert_eq!(
        feed.title.as_ref().unwrap().content,
        "Workout Tracker status history"
    );
    assert_eq!(feed.entries.len(), snap.incidents.len());
    for (e, i) in feed.entries.iter().zip(&snap.incidents) {
        assert_eq!(e.id, format!("urn:spotter:incident:{}", i.id));
        assert_eq!(e.title.as_ref().unwrap().content, i.name);
        assert_eq!(e.published, Some(i.created_at));
        assert_eq!(
            e.links[0].href,
            format!("https://status.example.test/status/incidents/{}", i.id)
        );
        let html = content_of(e);
        for u in &i.updates {
            let escaped = u
                .body
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            assert!(
                html.contains(&escaped),
                "item {} lists update {:?}: {html}",
                i.id,
                u.body
            );
        }
    }
}

#[tokio::test]
async fn a_component_feed_has_only_the_incidents_that_touched_it() {
    let (r, _) = router_for(snapshot());
    for ext in ["atom", "rss"] {
        let a = get(&r, &format!("/status/components/database/history.{ext}")).await;
        assert_eq!(a.status, StatusCode::OK);
        let feed = parse(&a);
        let ids: Vec<&str> = feed.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["urn:spotter:incident:pi_db"], "{ext}");
        assert!(feed.title.unwrap().content.ends_with(": Database"));
        let a = get(&r, &format!("/status/components/application/history.{ext}")).await;
        let ids: Vec<String> = parse(&a).entries.into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["urn:spotter:incident:pi_app"], "{ext}");
        let missing = get(&r, &format!("/status/components/nope/history.{ext}")).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn characters_xml_cannot_carry_do_not_break_the_feeds() {
    let mut snap = snapshot();
    snap.incidents[1].name = "Slow\u{1} pages \"quoted\" & 'single'".into();
    snap.incidents[1].updates[0].body = "bell\u{7} ]]> end".into();
    let (r, _) = router_for(snap);
    for path in ["/status/history.atom", "/status/history.rss"] {
        let feed = parse(&get(&r, path).await);
        assert_eq!(
            feed.entries[1].title.as_ref().unwrap().content,
            "Slow pages \"quoted\" & 'single'",
            "{path}"
        );
        assert!(
            content_of(&feed.entries[1]).contains("bell ]]&gt; end"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_svg_badge_shows_the_description_escaped() {
    let mut snap = snapshot();
    snap.description = format!("{XSS} & more");
    snap.indicator = Impact::Major;
    let (r, _) = router_for(snap);
    let a = get(&r, "/status/badge.svg").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("image/svg+xml"));
    assert!(a
        .header("content-security-policy")
        .unwrap()
        .starts_with("default-src 'none'"));
    let svg = a.text();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(!svg.contains("<script"));
    assert!(svg.contains(">&lt;script&gt;alert(1)&lt;/script&gt; &amp; more</text>"));
    assert!(svg.contains("fill=\"#fe7d37\""), "orange for major");
    assert!(svg.contains("<text x=\"") && svg.contains(">status</text>"));

    let (r, _) = router_for(snapshot());
    let svg = get(&r, "/status/badge.svg").await.text();
    assert!(svg.contains(">Major Service Outage</text>") && svg.contains("fill=\"#e05d44\""));
}
