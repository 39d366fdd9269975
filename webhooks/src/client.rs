//! Who the client is, for the per-client limits ([`crate::limit`]) and the refusal logs.
//!
//! The peer address, unless the peer is a reverse proxy listed in `[server] trusted_proxies`.
//! Then it is the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy: each proxy
//! appends the address it was connected from, so entries are only as trustworthy as the proxy to
//! their right, and the first untrusted one from the right is the last address a trusted proxy
//! vouched for. Everything to its left was written by the client and is ignored, so a forged
//! header cannot pick the address a client is limited by. An entry that is not an address (or a
//! header that is not text) ends the walk at the proxy that passed it on, which is then the
//! client: conservative, it shares the proxy's budget. No proxy is trusted by default, and then
//! `X-Forwarded-For` is never read.

use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use spotter_core::config::AddressRange;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// At most this many `X-Forwarded-For` entries are walked (a chain of proxies is short).
const MAX_HOPS: usize = 32;

/// The client address of a request from `peer` with `headers`, given the trusted proxies.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[AddressRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut entries: Vec<Option<IpAddr>> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        match value.to_str() {
            Ok(v) => entries.extend(v.split(',').map(forwarded_address)),
            Err(_) => entries.push(None),
        }
    }
    let mut client = peer;
    for entry in entries.into_iter().rev().take(MAX_HOPS) {
        match entry {
            Some(ip) if is_trusted(ip) => client = ip,
            Some(ip) => return ip,
            None => return client,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`203.0.113.9:4711`,
/// `[2001:db8::1]:443`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The peer address, from the connection (unspecified when the router runs without connect
/// info, as in-process tests may).
pub fn peer(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The client of a request as an extractor: `Client(ip): Client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(pub IpAddr);

impl FromRequestParts<AppState> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Client(
            state.guard.client(peer(&parts.extensions), &parts.headers),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ranges(list: &[&str]) -> Vec<AddressRange> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let h = xff(&["203.0.113.9"]);
        assert_eq!(client_address(ip("127.0.0.1"), &h, &[]), ip("127.0.0.1"));
        // A trusted list that does not include the peer changes nothing either.
        let t = ranges(&["10.0.0.0/8"]);
        assert_eq!(client_address(ip("127.0.0.1"), &h, &t), ip("127.0.0.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_entry_is_the_client() {
        let t = ranges(&["127.0.0.1", "::1", "10.0.0.0/8"]);
        let from = |values: &[&str]| client_address(ip("127.0.0.1"), &xff(values), &t);
        assert_eq!(from(&["203.0.113.9"]), ip("203.0.113.9"));
        // What the client wrote itself is to the left, and ignored.
        assert_eq!(from(&["198.51.100.7, 203.0.113.9"]), ip("203.0.113.9"));
        // A chain of trusted proxies is walked through, across header lines too.
        assert_eq!(
            from(&["198.51.100.7, 203.0.113.9", "10.1.2.3, 10.0.0.5"]),
            ip("203.0.113.9")
        );
        assert_eq!(from(&["203.0.113.9:4711"]), ip("203.0.113.9"));
        assert_eq!(from(&["[2001:db8::1]:443"]), ip("2001:db8::1"));
        // No header, or only trusted entries: the last trusted hop.
        assert_eq!(from(&[]), ip("127.0.0.1"));
        assert_eq!(from(&["10.0.0.5"]), ip("10.0.0.5"));
        // Something that is not an address stops the walk at the proxy that passed it on.
        assert_eq!(from(&["203.0.113.9, unknown"]), ip("127.0.0.1"));
        assert_eq!(from(&["203.0.113.9, garbage, 10.0.0.5"]), ip("10.0.0.5"));
        // An IPv4 peer on a dual-stack listener.
        assert_eq!(
            client_address(ip("::ffff:127.0.0.1"), &xff(&["203.0.113.9"]), &t),
            ip("203.0.113.9")
        );
    }
}
