//! The public status surfaces (`spotter_webhooks::status`) against hand-built snapshots: the
//! Statuspage-compatible JSON field by field, the HTML page, the Atom and RSS feeds through a
//! real feed parser, the badge, HTTP caching, and the page in a real headless browser.

mod api;
mod browser;
mod cache;
mod feeds;
mod fixtures;
mod pages;
