//! The public status page, rendered on the server with `maud` (every interpolated string is
//! escaped by the template engine, so a public title like `<script>…</script>` is text).
//!
//! - `/status`: the overall state, the components with their 90-day uptime bars, the active
//!   incidents with every update, a link to the history.
//! - `/status/incidents/{id}`: one incident with its whole history (404 page when unknown).
//! - `/status/history`: every public incident, grouped by month, newest month first.
//!
//! No JavaScript at all and no external assets: the CSS is inline, fluid for phones, with a dark
//! variant under `prefers-color-scheme: dark`. Times are shown in the page's time zone (UTC when
//! it is not an IANA name), months of the history too.

use super::{serve, serve_uncached, Kind, St, CACHE_CONTROL, CONTENT_SECURITY_POLICY};
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use spotter_core::status::{
    ComponentStatus, Impact, PublicComponent, PublicIncident, StatusSnapshot,
};

const STYLE: &str = r#"
:root{--bg:#f6f7f9;--fg:#1d2430;--muted:#5b6472;--card:#fff;--line:#dde1e7;
--ok:#2f9e44;--maint:#1c7ed6;--minor:#e0a800;--major:#e8590c;--critical:#d6336c;--none-bg:#2f9e44}
@media (prefers-color-scheme: dark){:root{--bg:#11151c;--fg:#e6e9ef;--muted:#9aa3b2;
--card:#1a2029;--line:#2c3440;--ok:#40c057;--maint:#4dabf7;--minor:#fcc419;--major:#ff922b;
--critical:#f06595}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,
"Segoe UI",Roboto,sans-serif}
main{max-width:52rem;margin:0 auto;padding:1rem}
a{color:inherit}
h1{font-size:1.6rem;margin:.5rem 0 1rem}
h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
.banner{padding:1rem 1.25rem;border-radius:.5rem;color:#fff;font-weight:600;font-size:1.15rem}
.banner.i-none{background:var(--ok)}.banner.i-minor{background:var(--minor);color:#1d2430}
.banner.i-major{background:var(--major)}.banner.i-critical{background:var(--critical)}
.card{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:1rem;
margin:.75rem 0}
.component{padding:.75rem 0;border-top:1px solid var(--line)}
.component:first-of-type{border-top:0}
.row{display:flex;flex-wrap:wrap;justify-content:space-between;gap:.5rem}
.name{font-weight:600}.desc,.muted{color:var(--muted);font-size:.9rem}
.st{font-weight:600}.s-operational{color:var(--ok)}.s-under_maintenance{color:var(--maint)}
.s-degraded_performance{color:var(--minor)}.s-partial_outage{color:var(--major)}
.s-major_outage{color:var(--critical)}
.bar{display:flex;gap:1px;margin:.4rem 0 .2rem;height:2rem}
.bar span{flex:1;border-radius:1px;background:var(--ok)}
.bar .d-under_maintenance{background:var(--maint)}.bar .d-degraded_performance{background:var(--minor)}
.bar .d-partial_outage{background:var(--major)}.bar .d-major_outage{background:var(--critical)}
.group{margin:.5rem 0 0;font-size:.8rem;text-transform:uppercase;letter-spacing:.05em;
color:var(--muted)}
.incident h3{margin:0 0 .25rem;font-size:1.05rem}
.incident.i-minor{border-left:4px solid var(--minor)}.incident.i-major{border-left:4px solid var(--major)}
.incident.i-critical{border-left:4px solid var(--critical)}.incident.i-none{border-left:4px solid var(--line)}
.update{margin:.75rem 0 0}.update p{margin:.2rem 0;white-space:pre-line;overflow-wrap:anywhere}
footer{margin:2rem 0 1rem;color:var(--muted);font-size:.9rem}
"#;

/// The page's time zone: `time_zone` when it is an IANA name, else UTC.
pub(crate) fn zone(snap: &StatusSnapshot) -> Tz {
    snap.page.time_zone.parse().unwrap_or(Tz::UTC)
}

/// `1 Dec 2026, 13:20 CET`: a time as the page's readers read it.
pub(crate) fn local(snap: &StatusSnapshot, t: DateTime<Utc>) -> String {
    t.with_timezone(&zone(snap))
        .format("%-d %b %Y, %H:%M %Z")
        .to_string()
}

fn when(snap: &StatusSnapshot, t: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(super::api::time(t)) { (local(snap, t)) }
    }
}

fn layout(snap: &StatusSnapshot, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                // An empty icon: the browser asks for /favicon.ico otherwise, and gets a 404.
                link rel="icon" href="data:,";
                link rel="alternate" type="application/atom+xml" title=(format!("{} history", snap.page.name)) href="/status/history.atom";
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    (body)
                    footer {
                        a href="/status" { (snap.page.name) } " · "
                        a href="/status/history" { "Incident history" } " · "
                        a href="/status/history.atom" { "Atom" } " · "
                        a href="/status/history.rss" { "RSS" }
                        @if snap.page.email_subscriptions {
                            " · " a href="/status/subscribe" { "Get updates by email" }
                        }
                    }
                }
            }
        }
    }
}

/// Days the component was operational all day, over the days shown, as a percentage floored to
/// hundredths (so 89.99 never shows as 100.00).
pub fn uptime_percent(c: &PublicComponent) -> String {
    if c.days.is_empty() {
        return "100.00".to_string();
    }
    let up = c
        .days
        .iter()
        .filter(|d| d.worst == ComponentStatus::Operational)
        .count();
    let hundredths = up * 10_000 / c.days.len();
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

fn component(c: &PublicComponent) -> Markup {
    let pct = uptime_percent(c);
    html! {
        div.component id={"component-" (c.id)} {
            div.row {
                span.name { (c.name) }
                span class={"st s-" (c.status.as_str())} { (c.status.title()) }
            }
            @if !c.description.is_empty() { div.desc { (c.description) } }
            div.bar role="img" aria-label={(c.days.len()) "-day history: " (pct) "% uptime"} {
                @for d in &c.days {
                    span class={"d-" (d.worst.as_str())}
                        title={(d.date.format("%-d %b %Y").to_string()) ": " (d.worst.title())} {}
                }
            }
            div.row.muted {
                span { (c.days.len()) " days ago" }
                span.uptime { (pct) "% uptime" }
                span { "Today" }
            }
        }
    }
}

fn impact_class(i: Impact) -> String {
    format!("i-{}", i.as_str())
}

/// An incident with its updates, newest first.
fn incident_card(snap: &StatusSnapshot, i: &PublicIncident, link: bool) -> Markup {
    let names: Vec<&str> = i
        .components
        .iter()
        .filter_map(|id| snap.components.iter().find(|c| c.id == id.as_str()))
        .map(|c| c.name.as_str())
        .collect();
    html! {
        article class={"card incident " (impact_class(i.impact))} id={"incident-" (i.id)} {
            h3 {
                @if link { a href={"/status/incidents/" (i.id)} { (i.name) } } @else { (i.name) }
            }
            div.muted {
                span.st { (i.status.title()) } " · started " (when(snap, i.created_at))
                @if let Some(r) = i.resolved_at { " · resolved " (when(snap, r)) }
                @if !names.is_empty() { " · affects " (names.join(", ")) }
            }
            @for u in &i.updates {
                div.update {
                    div { strong { (u.status.title()) } " — " span.muted { (when(snap, u.created_at)) } }
                    p { (u.body) }
                }
            }
        }
    }
}

fn index_page(snap: &StatusSnapshot) -> Markup {
    let active: Vec<&PublicIncident> = snap.unresolved().collect();
    // A heading wherever the group changes; ungrouped components after a group go under "Other".
    let mut rows: Vec<(Option<&str>, &PublicComponent)> = Vec::new();
    let mut last_group: Option<&str> = None;
    for c in &snap.components {
        let g = c.group.as_deref();
        let heading = if g != last_group {
            Some(g.unwrap_or("Other"))
        } else {
            None
        };
        rows.push((heading, c));
        last_group = g;
    }
    html! {
        h1 { (snap.page.name) }
        div class={"banner " (impact_class(snap.indicator))} role="status" { (snap.description) }
        @if !active.is_empty() {
            h2 { "Active incidents" }
            @for i in &active { (incident_card(snap, i, true)) }
        }
        @let maintenance: Vec<_> = snap.maintenances.iter()
            .filter(|m| m.status != spotter_core::status::MaintenanceStatus::Completed)
            .collect();
        @if !maintenance.is_empty() {
            h2 { "Scheduled maintenance" }
            @for m in &maintenance {
                article.card.maintenance id=(m.id) {
                    h3 { (m.name) }
                    div.muted {
                        span.st { (m.status.title()) } " · "
                        (when(snap, m.scheduled_for)) " – " (when(snap, m.scheduled_until))
                    }
                    @if !m.components.is_empty() {
                        p { "Affects: "
                            (m.components.iter()
                                .map(|c| snap.components.iter().find(|x| x.id == c.as_str()).map(|x| x.name.as_str()).unwrap_or(c.as_str()))
                                .collect::<Vec<_>>().join(", "))
                        }
                    }
                }
            }
        }
        h2 { "Components" }
        section.card {
            @for (heading, c) in &rows {
                @if let Some(g) = heading { div.group { (g) } }
                (component(c))
            }
            @if snap.components.is_empty() { p.muted { "No components are published." } }
        }
        p { a href="/status/history" { "Incident history" } }
        p.muted { "Updated " (when(snap, snap.page.updated_at)) }
    }
}

pub async fn index(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "status.html", Kind::Html, |s| {
        let title = format!("{} status", s.page.name);
        layout(s, &title, index_page(s)).into_string().into_bytes()
    })
}

fn history_page(snap: &StatusSnapshot) -> Markup {
    // Months newest first, incidents newest first inside each.
    let mut incidents: Vec<&PublicIncident> = snap.incidents.iter().collect();
    incidents.sort_by_key(|i| std::cmp::Reverse(i.created_at));
    let tz = zone(snap);
    let mut months: Vec<((i32, u32), Vec<&PublicIncident>)> = Vec::new();
    for i in incidents {
        let local = i.created_at.with_timezone(&tz);
        let key = (local.year(), local.month());
        match months.last_mut() {
            Some((k, v)) if *k == key => v.push(i),
            _ => months.push((key, vec![i])),
        }
    }
    html! {
        h1 { (snap.page.name) " — incident history" }
        @if months.is_empty() { p.muted { "No incidents reported." } }
        @for (_, list) in &months {
            section {
                h2 { (list[0].created_at.with_timezone(&tz).format("%B %Y").to_string()) }
                @for i in list {
                    article class={"card incident " (impact_class(i.impact))} {
                        h3 { a href={"/status/incidents/" (i.id)} { (i.name) } }
                        div.muted {
                            span.st { (i.status.title()) } " · " (when(snap, i.created_at))
                            @if let Some(r) = i.resolved_at { " – " (when(snap, r)) }
                        }
                        @if let Some(u) = i.updates.first() { p { (u.body) } }
                    }
                }
            }
        }
        p { a href="/status" { "Current status" } }
    }
}

pub async fn history(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "history.html", Kind::Html, |s| {
        let title = format!("{} incident history", s.page.name);
        layout(s, &title, history_page(s))
            .into_string()
            .into_bytes()
    })
}

pub async fn incident(state: St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    serve_uncached(
        &state,
        &headers,
        "incident.html",
        Kind::Html,
        |s| {
            let i = s.incident(&id)?;
            let body = html! {
                h1 { (s.page.name) }
                (incident_card(s, i, false))
                p { a href="/status" { "Current status" } " · " a href="/status/history" { "Incident history" } }
            };
            Some(layout(s, &i.name, body).into_string().into_bytes())
        },
        not_found_page,
    )
}

/// The 404 page: the same look, the same locked-down headers.
pub(crate) fn not_found_page(snap: &StatusSnapshot) -> Response {
    let body = html! {
        h1 { "Not found" }
        p { "There is no such incident or component on this status page." }
        p { a href="/status" { "Current status" } }
    };
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, CACHE_CONTROL),
        ],
        layout(snap, "Not found", body).into_string(),
    )
        .into_response()
}
