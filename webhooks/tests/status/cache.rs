//! HTTP caching and the read-only contract on every public surface: `Cache-Control`,
//! `Last-Modified`, `ETag`, `If-None-Match` → 304 until the snapshot changes, HEAD, 405; and the
//! CORS header on the JSON.

use crate::api::JSON_ENDPOINTS;
use crate::fixtures::*;
use axum::http::{Method, StatusCode};
use spotter_core::status::PublicStatus;

#[tokio::test]
async fn json_is_open_to_every_origin_and_every_surface_is_cacheable() {
    let (r, _) = router_for(snapshot());
    for path in JSON_ENDPOINTS.iter().chain(&["/status/badge.json"]) {
        let a = get(&r, path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(a.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    let all = JSON_ENDPOINTS.iter().copied().chain([
        "/status/badge.json",
        "/status",
        "/status/history",
        "/status/incidents/pi_db",
        "/status/history.atom",
        "/status/history.rss",
        "/status/components/database/history.atom",
        "/status/components/database/history.rss",
        "/status/badge.svg",
    ]);
    for path in all {
        let a = get(&r, path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(
            a.header("cache-control"),
            Some("public, max-age=10"),
            "{path}"
        );
        assert_eq!(
            a.header("last-modified"),
            Some("Tue, 01 Dec 2026 12:30:00 GMT"),
            "{path}"
        );
        let etag = a
            .header("etag")
            .unwrap_or_else(|| panic!("{path} has an ETag"));
        assert!(
            etag.starts_with("\"7-") && etag.ends_with('"'),
            "{path}: {etag}"
        );
        // HEAD: the same headers, no body.
        let h = request(&r, Method::HEAD, path, &[]).await;
        assert_eq!(h.status, StatusCode::OK, "HEAD {path}");
        assert_eq!(h.header("etag"), Some(etag), "HEAD {path}");
        assert!(h.body.is_empty(), "HEAD {path} has no body");
        // Read-only.
        let p = request(&r, Method::POST, path, &[]).await;
        assert_eq!(p.status, StatusCode::METHOD_NOT_ALLOWED, "POST {path}");
    }
}

#[tokio::test]
async fn a_matching_etag_gets_304_until_the_snapshot_changes() {
    let (r, board) = router_for(snapshot());
    let first = get(&r, "/api/v2/summary.json").await;
    let etag = first.header("etag").unwrap().to_string();
    let other = get(&r, "/api/v2/status.json").await;
    assert_ne!(
        other.header("etag"),
        Some(etag.as_str()),
        "each representation has its own ETag"
    );

    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"nope\", {etag}"),
        "*".to_string(),
    ] {
        let a = request(
            &r,
            Method::GET,
            "/api/v2/summary.json",
            &[("if-none-match", &inm)],
        )
        .await;
        assert_eq!(a.status, StatusCode::NOT_MODIFIED, "If-None-Match: {inm}");
        assert!(a.body.is_empty());
        assert_eq!(a.header("etag"), Some(etag.as_str()));
        assert_eq!(a.header("access-control-allow-origin"), Some("*"));
        assert_eq!(a.header("cache-control"), Some("public, max-age=10"));
    }
    let stale = request(
        &r,
        Method::GET,
        "/api/v2/summary.json",
        &[("if-none-match", "\"6-summary.json-0\"")],
    )
    .await;
    assert_eq!(stale.status, StatusCode::OK);

    // The same for the page and the feeds.
    for path in [
        "/status",
        "/status/history.atom",
        "/status/incidents/pi_db",
        "/status/badge.svg",
    ] {
        let e = get(&r, path).await.header("etag").unwrap().to_string();
        let a = request(&r, Method::GET, path, &[("if-none-match", &e)]).await;
        assert_eq!(a.status, StatusCode::NOT_MODIFIED, "{path}");
    }

    // A change: a new generation, a new ETag, the new content.
    let mut next = snapshot();
    next.incidents[0].status = PublicStatus::Monitoring;
    assert!(board.set(next));
    let a = request(
        &r,
        Method::GET,
        "/api/v2/summary.json",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let new_etag = a.header("etag").unwrap();
    assert_ne!(new_etag, etag);
    assert!(new_etag.starts_with("\"8-"), "{new_etag}");
    assert_eq!(a.json()["incidents"][0]["status"], "monitoring");
}
