//! Feeds of the public incident history: Atom (RFC 4287) and RSS 2.0, for the whole page
//! (`/status/history.atom|rss`) and per component (`/status/components/{id}/history.atom|rss`,
//! the incidents that touched it).
//!
//! One entry per incident (the newest [`FEED_ENTRIES`]): its id never changes, its `updated` is
//! the incident's, and its content lists every public update, so a reader shows the incident
//! once and refreshes it as it changes. Every text goes through [`xml_text`]; the HTML content
//! is built with maud (escaped once as HTML) and then escaped again as XML text, as
//! `type="html"` requires.

use super::api::{base_url, incident_url};
use super::{serve, serve_uncached, Kind, St};
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use maud::html;
use spotter_core::status::{PublicComponent, PublicIncident, StatusSnapshot};
use std::fmt::Write;

/// Entries in a feed: the newest incidents. Readers keep what they have seen; a feed of years of
/// incidents would only make every poll heavier.
pub const FEED_ENTRIES: usize = 50;

/// `s` as XML character data or attribute value: `& < > " '` escaped, and the characters XML 1.0
/// cannot carry at all (controls other than tab, newline, carriage return) dropped, so no public
/// text can make the feed unparsable.
pub fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The entry id: `urn:spotter:incident:<id>`, the id percent-encoded beyond URN-safe characters.
pub fn entry_id(id: &str) -> String {
    let mut out = String::from("urn:spotter:incident:");
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What a feed covers: the whole page, or one component.
struct Scope<'a> {
    title: String,
    /// The feed's own id and where it lives (for `rel="self"`).
    id: String,
    self_path: String,
    incidents: Vec<&'a PublicIncident>,
}

fn page_scope<'a>(snap: &'a StatusSnapshot, ext: &str) -> Scope<'a> {
    Scope {
        title: format!("{} status history", snap.page.name),
        id: format!("urn:spotter:page:{}:history", entry_id_part(&snap.page.id)),
        self_path: format!("/history.{ext}"),
        incidents: snap.incidents.iter().take(FEED_ENTRIES).collect(),
    }
}

fn component_scope<'a>(snap: &'a StatusSnapshot, c: &'a PublicComponent, ext: &str) -> Scope<'a> {
    Scope {
        title: format!("{} status history: {}", snap.page.name, c.name),
        id: format!(
            "urn:spotter:page:{}:component:{}:history",
            entry_id_part(&snap.page.id),
            entry_id_part(&c.id)
        ),
        self_path: format!("/components/{}/history.{ext}", entry_id_part(&c.id)),
        incidents: snap
            .incidents
            .iter()
            .filter(|i| i.components.iter().any(|x| x.as_str() == c.id))
            .take(FEED_ENTRIES)
            .collect(),
    }
}

fn entry_id_part(s: &str) -> String {
    entry_id(s)["urn:spotter:incident:".len()..].to_string()
}

/// The entry's HTML: status, current state and every update (newest first).
fn content_html(snap: &StatusSnapshot, i: &PublicIncident) -> String {
    html! {
        p { strong { (i.status.title()) } " · impact " (i.impact.as_str()) }
        @for u in &i.updates {
            p {
                strong { (u.status.title()) } " — "
                (super::page::local(snap, u.created_at))
                br;
                (u.body)
            }
        }
    }
    .into_string()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn feed_updated(snap: &StatusSnapshot, scope: &Scope) -> DateTime<Utc> {
    scope
        .incidents
        .iter()
        .map(|i| i.updated_at)
        .chain(std::iter::once(snap.page.updated_at))
        .max()
        .unwrap_or(snap.page.updated_at)
}

fn atom_body(snap: &StatusSnapshot, scope: &Scope) -> Vec<u8> {
    let base = base_url(snap);
    let mut x = String::with_capacity(1024 + scope.incidents.len() * 1024);
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"en\">\n");
    let _ = writeln!(x, "  <id>{}</id>", xml_text(&scope.id));
    let _ = writeln!(x, "  <title>{}</title>", xml_text(&scope.title));
    let _ = writeln!(
        x,
        "  <updated>{}</updated>",
        rfc3339(feed_updated(snap, scope))
    );
    let _ = writeln!(
        x,
        "  <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>",
        xml_text(&snap.page.url)
    );
    let _ = writeln!(
        x,
        "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}{}\"/>",
        xml_text(base),
        xml_text(&scope.self_path)
    );
    let _ = writeln!(
        x,
        "  <author><name>{}</name></author>",
        xml_text(&snap.page.name)
    );
    for i in &scope.incidents {
        x.push_str("  <entry>\n");
        let _ = writeln!(x, "    <id>{}</id>", xml_text(&entry_id(&i.id)));
        let _ = writeln!(x, "    <title>{}</title>", xml_text(&i.name));
        let _ = writeln!(x, "    <updated>{}</updated>", rfc3339(i.updated_at));
        let _ = writeln!(x, "    <published>{}</published>", rfc3339(i.created_at));
        let _ = writeln!(
            x,
            "    <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>",
            xml_text(&incident_url(snap, &i.id))
        );
        let _ = writeln!(
            x,
            "    <content type=\"html\">{}</content>",
            xml_text(&content_html(snap, i))
        );
        x.push_str("  </entry>\n");
    }
    x.push_str("</feed>\n");
    x.into_bytes()
}

fn rss_body(snap: &StatusSnapshot, scope: &Scope) -> Vec<u8> {
    let base = base_url(snap);
    let mut x = String::with_capacity(1024 + scope.incidents.len() * 1024);
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<rss version=\"2.0\" xmlns:atom=\"http://www.w3.org/2005/Atom\">\n<channel>\n");
    let _ = writeln!(x, "  <title>{}</title>", xml_text(&scope.title));
    let _ = writeln!(x, "  <link>{}</link>", xml_text(&snap.page.url));
    let _ = writeln!(
        x,
        "  <description>{}</description>",
        xml_text(&format!("Incidents reported on {}", snap.page.name))
    );
    x.push_str("  <language>en</language>\n");
    let _ = writeln!(
        x,
        "  <lastBuildDate>{}</lastBuildDate>",
        feed_updated(snap, scope).to_rfc2822()
    );
    let _ = writeln!(
        x,
        "  <atom:link rel=\"self\" type=\"application/rss+xml\" href=\"{}{}\"/>",
        xml_text(base),
        xml_text(&scope.self_path)
    );
    for i in &scope.incidents {
        x.push_str("  <item>\n");
        let _ = writeln!(x, "    <title>{}</title>", xml_text(&i.name));
        let _ = writeln!(
            x,
            "    <link>{}</link>",
            xml_text(&incident_url(snap, &i.id))
        );
        let _ = writeln!(
            x,
            "    <guid isPermaLink=\"false\">{}</guid>",
            xml_text(&entry_id(&i.id))
        );
        let _ = writeln!(x, "    <pubDate>{}</pubDate>", i.created_at.to_rfc2822());
        let _ = writeln!(
            x,
            "    <description>{}</description>",
            xml_text(&content_html(snap, i))
        );
        x.push_str("  </item>\n");
    }
    x.push_str("</channel>\n</rss>\n");
    x.into_bytes()
}

pub async fn atom(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "history.atom", Kind::Atom, |s| {
        atom_body(s, &page_scope(s, "atom"))
    })
}

pub async fn rss(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "history.rss", Kind::Rss, |s| {
        rss_body(s, &page_scope(s, "rss"))
    })
}

fn unknown_component(_: &StatusSnapshot) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        "no such component on this status page\n",
    )
        .into_response()
}

pub async fn component_atom(state: St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    serve_uncached(
        &state,
        &headers,
        "component.atom",
        Kind::Atom,
        |s| {
            let c = s.components.iter().find(|c| c.id == id)?;
            Some(atom_body(s, &component_scope(s, c, "atom")))
        },
        unknown_component,
    )
}

pub async fn component_rss(state: St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    serve_uncached(
        &state,
        &headers,
        "component.rss",
        Kind::Rss,
        |s| {
            let c = s.components.iter().find(|c| c.id == id)?;
            Some(rss_body(s, &component_scope(s, c, "rss")))
        },
        unknown_component,
    )
}
