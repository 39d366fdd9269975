//! The status badge: `/status/badge.json` in shields.io's endpoint schema (so
//! `https://img.shields.io/endpoint?url=…` draws it) and `/status/badge.svg`, a small flat badge
//! drawn here for pages that should not depend on shields.io.

use super::feeds::xml_text;
use super::{serve, Kind, St};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;
use spotter_core::status::{Impact, StatusSnapshot};

pub const LABEL: &str = "status";

/// shields.io's named colour for the page's indicator.
pub fn color(indicator: Impact) -> &'static str {
    match indicator {
        Impact::None => "brightgreen",
        Impact::Minor => "yellow",
        Impact::Major => "orange",
        Impact::Critical => "red",
    }
}

/// The same colours as shields.io draws them.
fn hex_color(indicator: Impact) -> &'static str {
    match indicator {
        Impact::None => "#4c1",
        Impact::Minor => "#dfb317",
        Impact::Major => "#fe7d37",
        Impact::Critical => "#e05d44",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint<'a> {
    schema_version: u8,
    label: &'static str,
    message: &'a str,
    color: &'static str,
}

pub async fn json(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "badge.json", Kind::Json, |s| {
        serde_json::to_vec(&Endpoint {
            schema_version: 1,
            label: LABEL,
            message: &s.description,
            color: color(s.indicator),
        })
        .expect("the badge serialises")
    })
}

/// The width Verdana 11px gives `text`, roughly: 7 px a character (wide enough for capitals and
/// digits, so the text never overflows its box).
fn text_width(text: &str) -> usize {
    text.chars().count() * 7
}

pub fn svg_body(snap: &StatusSnapshot) -> String {
    let message = &snap.description;
    let lw = text_width(LABEL) + 10;
    let mw = text_width(message) + 10;
    let w = lw + mw;
    let (label, message_x) = (xml_text(LABEL), lw + mw / 2);
    let message = xml_text(message);
    let fill = hex_color(snap.indicator);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{mw}" height="20" fill="{fill}"/><rect width="{w}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{message_x}" y="14">{message}</text></g></svg>"##,
        lx = lw / 2,
    )
}

pub async fn svg(state: St, headers: HeaderMap) -> Response {
    serve(&state, &headers, "badge.svg", Kind::Svg, |s| {
        svg_body(s).into_bytes()
    })
}
