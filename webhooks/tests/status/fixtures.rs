//! Snapshots built by hand, and a helper that sends one request through the status router.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use http_body_util::BodyExt;
use spotter_core::domain::{ComponentId, IncidentRef};
use spotter_core::status::*;
use std::sync::Arc;
use tower::ServiceExt;

/// The title every surface must show as text, never run.
pub const XSS: &str = "<script>alert(1)</script>";

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a test time in RFC 3339")
        .with_timezone(&Utc)
}

/// 90 days ending 2026-12-01, all operational but the ones given.
pub fn days(bad: &[(u32, ComponentStatus)]) -> Vec<DayStatus> {
    let last = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    (0..90u32)
        .map(|i| {
            let date = last - Duration::days(89 - i64::from(i));
            let worst = bad
                .iter()
                .find(|(d, _)| *d == i)
                .map(|(_, s)| *s)
                .unwrap_or(ComponentStatus::Operational);
            DayStatus { date, worst }
        })
        .collect()
}

pub fn component(
    id: &str,
    name: &str,
    position: usize,
    group: Option<&str>,
    status: ComponentStatus,
    bad: &[(u32, ComponentStatus)],
) -> PublicComponent {
    PublicComponent {
        id: id.into(),
        name: name.into(),
        description: format!("The {name}"),
        position,
        group: group.map(str::to_string),
        status,
        updated_at: t("2026-12-01T12:00:00Z"),
        days: days(bad),
    }
}

pub fn update(id: &str, status: PublicStatus, body: &str, at: &str) -> PublicUpdate {
    PublicUpdate {
        id: id.into(),
        status,
        body: body.into(),
        created_at: t(at),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn incident(
    n: i64,
    id: &str,
    name: &str,
    impact: Impact,
    status: PublicStatus,
    components: &[&str],
    updates: Vec<PublicUpdate>,
    resolved_at: Option<&str>,
) -> PublicIncident {
    let created_at = updates
        .last()
        .expect("an incident has an update")
        .created_at;
    let updated_at = updates.first().unwrap().created_at;
    PublicIncident {
        id: id.into(),
        incident: IncidentRef::new(n),
        name: name.into(),
        impact,
        status,
        components: components
            .iter()
            .map(|c| c.parse::<ComponentId>().unwrap())
            .collect(),
        created_at,
        updated_at,
        resolved_at: resolved_at.map(t),
        updates,
        version: 1,
    }
}

pub fn page() -> PageInfo {
    PageInfo {
        id: "pg_workout".into(),
        name: "Workout Tracker".into(),
        url: "https://status.example.test/status".into(),
        time_zone: "Europe/Berlin".into(),
        updated_at: t("2026-12-01T12:30:00Z"),
        email_subscriptions: false,
    }
}

/// Two active incidents (one critical whose title is [`XSS`], one minor) and a resolved one
/// from October; three components, two in the "Backend" group.
pub fn snapshot() -> StatusSnapshot {
    use ComponentStatus::*;
    StatusSnapshot {
        maintenances: vec![],
        page: page(),
        components: vec![
            component(
                "database",
                "Database",
                0,
                Some("Backend"),
                MajorOutage,
                &[
                    (10, DegradedPerformance),
                    (50, PartialOutage),
                    (89, MajorOutage),
                ],
            ),
            component(
                "application",
                "Application",
                1,
                Some("Backend"),
                Operational,
                &[(60, MajorOutage)],
            ),
            PublicComponent {
                description: String::new(),
                ..component(
                    "website",
                    "Website",
                    2,
                    None,
                    DegradedPerformance,
                    &[(89, DegradedPerformance)],
                )
            },
        ],
        incidents: vec![
            incident(
                3,
                "pi_db",
                XSS,
                Impact::Critical,
                PublicStatus::Identified,
                &["database"],
                vec![
                    update(
                        "pu_db2",
                        PublicStatus::Identified,
                        "The primary <b>disk</b> is full & read-only.",
                        "2026-12-01T12:20:00Z",
                    ),
                    update(
                        "pu_db1",
                        PublicStatus::Investigating,
                        "We are investigating problems with the database.",
                        "2026-12-01T12:05:00Z",
                    ),
                ],
                None,
            ),
            incident(
                2,
                "pi_web",
                "Slow pages",
                Impact::Minor,
                PublicStatus::Investigating,
                &["website"],
                vec![update(
                    "pu_web1",
                    PublicStatus::Investigating,
                    "Pages load slowly.",
                    "2026-12-01T11:00:00Z",
                )],
                None,
            ),
            incident(
                1,
                "pi_app",
                "Application errors",
                Impact::Major,
                PublicStatus::Resolved,
                &["application"],
                vec![
                    update(
                        "pu_app3",
                        PublicStatus::Resolved,
                        "Fixed.",
                        "2026-10-02T10:00:00Z",
                    ),
                    update(
                        "pu_app2",
                        PublicStatus::Monitoring,
                        "A fix is deployed; we are watching.",
                        "2026-10-02T09:00:00Z",
                    ),
                    update(
                        "pu_app1",
                        PublicStatus::Investigating,
                        "Logins fail.",
                        "2026-10-02T08:00:00Z",
                    ),
                ],
                Some("2026-10-02T10:00:00Z"),
            ),
        ],
        indicator: Impact::Critical,
        description: Impact::Critical.page_description().into(),
        generation: 7,
    }
}

pub fn router_for(snap: StatusSnapshot) -> (Router, Arc<StatusBoard>) {
    let board = Arc::new(StatusBoard::new(snap));
    (
        spotter_webhooks::status::status_router(board.clone()),
        board,
    )
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("an ASCII header"))
    }
}

pub async fn request(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .expect("the router answers");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn get(router: &Router, path: &str) -> Answer {
    request(router, Method::GET, path, &[]).await
}
