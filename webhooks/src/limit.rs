//! Per-client limits, so unauthenticated work is bounded.
//!
//! Two kinds of budget, both token buckets keyed by client address:
//! - **Failed authentication.** Each refused credential spends one token of the client's budget;
//!   a client with none left is answered 429 with `Retry-After`. Where checking costs real work
//!   (an HMAC or Ed25519 signature over a body of up to 1 MiB, a routing key inside a JSON body),
//!   the token is taken *before* the body is read and given back when the credential was right,
//!   so a client over its budget gets its 429 before any HMAC is computed. Where the credential
//!   is a header compared in constant time (bearer tokens, basic auth), the comparison comes
//!   first: it costs less than the bookkeeping, and it is what lets a sender that authenticates
//!   through when an attacker has spent the budget of the address they share (every client of a
//!   reverse proxy on the same host has the proxy's address). A right credential never spends
//!   any budget.
//! - **Requests.** Doors anyone may call (`/metrics`, `/readyz`: each reads the database) and the
//!   API and Discord doors take one token per request; the budgets are far above what a scraper,
//!   the console or Discord sends.
//!
//! Budgets are configured in `[limits]`, and the client is the peer address, or behind a proxy
//! listed in `[server] trusted_proxies` the address it forwards ([`crate::client`]).
//!
//! The key set is bounded: at most [`MAX_CLIENTS`] addresses have their own bucket. Buckets that
//! have refilled are dropped by a sweep (at most once a second, only when the map is full), and
//! clients that still find no room share one overflow bucket, so an attacker with many addresses
//! costs at most that much memory and shares one budget. IPv6 clients are keyed by their /64,
//! the block one subscriber usually holds.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use spotter_core::config::{AddressRange, Config, LimitsConfig};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses with a bucket of their own, per budget.
pub const MAX_CLIENTS: usize = 10_000;

/// A budget: `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub burst: u32,
    pub per_second: f64,
}

/// The limits this server applies (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failed authentications per client (by default 20 at once, then one every 5 s).
    pub auth_failures: Budget,
    /// `/api/v1` and `/discord/interactions` requests per client.
    pub api: Budget,
    /// `/metrics` and `/readyz` requests per client.
    pub open: Budget,
}

impl From<&LimitsConfig> for Limits {
    fn from(c: &LimitsConfig) -> Self {
        let refill = c.auth_failure_refill.num_milliseconds().max(1) as f64 / 1000.0;
        Limits {
            auth_failures: Budget {
                burst: c.auth_failures,
                per_second: 1.0 / refill,
            },
            api: Budget {
                burst: c.api_burst,
                per_second: c.api_per_second,
            },
            open: Budget {
                burst: c.metrics_burst,
                per_second: c.metrics_per_second,
            },
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from(&LimitsConfig::default())
    }
}

/// The key a client is limited by.
pub fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Map {
    buckets: HashMap<IpAddr, Bucket>,
    overflow: Bucket,
    last_sweep: Instant,
}

/// Token buckets keyed by client address, bounded (see the module docs).
pub struct Buckets {
    budget: Budget,
    capacity: usize,
    map: Mutex<Map>,
}

impl Buckets {
    pub fn new(budget: Budget, capacity: usize) -> Self {
        let now = Instant::now();
        Buckets {
            budget,
            capacity: capacity.max(1),
            map: Mutex::new(Map {
                buckets: HashMap::new(),
                overflow: Bucket {
                    tokens: f64::from(budget.burst),
                    at: now,
                },
                last_sweep: now,
            }),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.budget.per_second).min(f64::from(self.budget.burst));
        b.at = now;
    }

    /// Takes one token for `client`, or says how long until one is available.
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = client_key(client);
        let mut guard = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let map = &mut *guard;
        let full = f64::from(self.budget.burst);
        if !map.buckets.contains_key(&key) && map.buckets.len() >= self.capacity {
            self.sweep(map, now);
        }
        let bucket = if map.buckets.contains_key(&key) || map.buckets.len() < self.capacity {
            map.buckets.entry(key).or_insert(Bucket {
                tokens: full,
                at: now,
            })
        } else {
            &mut map.overflow
        };
        let mut b = *bucket;
        self.refill(&mut b, now);
        let result = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let per_second = self.budget.per_second.max(f64::MIN_POSITIVE);
            Err(Duration::from_secs_f64(
                ((1.0 - b.tokens) / per_second).min(86_400.0),
            ))
        };
        *bucket = b;
        result
    }

    /// Gives back the token a request took (its credential was right).
    pub fn refund(&self, client: IpAddr, now: Instant) {
        let key = client_key(client);
        let mut guard = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let map = &mut *guard;
        let bucket = match map.buckets.get_mut(&key) {
            Some(b) => b,
            None => &mut map.overflow,
        };
        let mut b = *bucket;
        self.refill(&mut b, now);
        b.tokens = (b.tokens + 1.0).min(f64::from(self.budget.burst));
        *bucket = b;
    }

    /// Drops the buckets that have refilled (they are the same as no bucket): at most once a
    /// second, so a full map costs one pass per second, not one per request.
    fn sweep(&self, map: &mut Map, now: Instant) {
        if now.saturating_duration_since(map.last_sweep) < Duration::from_secs(1) {
            return;
        }
        map.last_sweep = now;
        let (burst, rate) = (f64::from(self.budget.burst), self.budget.per_second);
        map.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
        });
    }

    /// Addresses with a bucket of their own right now.
    pub fn clients(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .buckets
            .len()
    }
}

/// Every per-client budget of one server, and who counts as the client.
pub struct ClientGuard {
    pub auth_failures: Buckets,
    api: Buckets,
    open: Buckets,
    /// The public status surfaces: the `/api/v1` budget, counted on its own.
    public: Buckets,
    /// The status page's subscribe form: `[status] subscribe_per_hour` per client.
    subscribe: Buckets,
    /// `[server] trusted_proxies`: peers whose `X-Forwarded-For` names the client.
    trusted_proxies: Vec<AddressRange>,
}

impl Default for ClientGuard {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// `n` at once, then `n` an hour.
fn per_hour(n: u32) -> Budget {
    Budget {
        burst: n,
        per_second: f64::from(n) / 3600.0,
    }
}

/// Seconds to put in `Retry-After`: at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

impl ClientGuard {
    /// These limits, with no trusted proxy (the peer is the client).
    pub fn new(limits: Limits) -> Self {
        ClientGuard {
            auth_failures: Buckets::new(limits.auth_failures, MAX_CLIENTS),
            api: Buckets::new(limits.api, MAX_CLIENTS),
            open: Buckets::new(limits.open, MAX_CLIENTS),
            public: Buckets::new(limits.api, MAX_CLIENTS),
            subscribe: Buckets::new(per_hour(10), MAX_CLIENTS),
            trusted_proxies: Vec::new(),
        }
    }

    /// The configured `[limits]` and `[server] trusted_proxies`.
    pub fn from_config(config: &Config) -> Self {
        ClientGuard {
            trusted_proxies: config.server.trusted_proxies.clone(),
            subscribe: Buckets::new(per_hour(config.status.subscribe_per_hour), MAX_CLIENTS),
            ..Self::new(Limits::from(&config.limits))
        }
    }

    /// One subscription request from the page's form; `Err(Retry-After)` when the client's
    /// hourly budget is spent.
    pub fn admit_subscription(&self, client: IpAddr) -> Result<(), u64> {
        self.subscribe
            .take(client, Instant::now())
            .map_err(retry_after_secs)
    }

    /// The client of a request from `peer` (see [`crate::client`]).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        crate::client::client_address(peer, headers, &self.trusted_proxies)
    }

    /// One request on a door with the `/api/v1` budget; `Err(Retry-After)` when it is spent.
    pub fn admit_request(&self, client: IpAddr) -> Result<(), u64> {
        self.api
            .take(client, Instant::now())
            .map_err(retry_after_secs)
    }

    /// Before a costly credential check: takes one token of `client`'s failure budget, or gives
    /// the `Retry-After` seconds when the client has none left.
    pub fn before_authentication(&self, client: IpAddr) -> Result<(), u64> {
        self.auth_failures
            .take(client, Instant::now())
            .map_err(retry_after_secs)
    }

    /// After a costly credential check that succeeded: the token goes back.
    pub fn authenticated(&self, client: IpAddr) {
        self.auth_failures.refund(client, Instant::now());
    }

    /// After a cheap credential check that failed: spends one token; `Err(Retry-After)` when
    /// there was none left, so the answer becomes 429.
    pub fn failed(&self, client: IpAddr) -> Result<(), u64> {
        self.auth_failures
            .take(client, Instant::now())
            .map_err(retry_after_secs)
    }
}

fn client(state: &AppState, req: &Request) -> IpAddr {
    state
        .guard
        .client(crate::client::peer(req.extensions()), req.headers())
}

fn too_many(secs: u64, what: &str) -> Response {
    ApiError::RateLimited {
        retry_after: secs,
        what: what.to_string(),
    }
    .into_response()
}

const TOO_MANY_FAILURES: &str = "too many failed authentications from this address";

/// Middleware for `/api/v1` (a bearer token, compared first): the request budget; then a 401
/// spends one token of the failure budget, and becomes 429 once that is spent.
pub async fn guard_token_door(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let client = client(&state, &req);
    let guard = &state.guard;
    if let Err(wait) = guard.api.take(client, Instant::now()) {
        return too_many(
            retry_after_secs(wait),
            "too many requests from this address",
        );
    }
    let res = next.run(req).await;
    if res.status() == StatusCode::UNAUTHORIZED {
        if let Err(secs) = guard.failed(client) {
            return too_many(secs, TOO_MANY_FAILURES);
        }
    }
    res
}

/// Middleware for `/discord/interactions` (an Ed25519 signature over the body): the request
/// budget, then the failure budget *before* the handler reads or verifies anything; a 401 keeps
/// the failure token, any other answer gives it back.
pub async fn guard_signed_door(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let client = client(&state, &req);
    let guard = &state.guard;
    if let Err(wait) = guard.api.take(client, Instant::now()) {
        return too_many(
            retry_after_secs(wait),
            "too many requests from this address",
        );
    }
    if let Err(secs) = guard.before_authentication(client) {
        return too_many(secs, TOO_MANY_FAILURES);
    }
    let res = next.run(req).await;
    if res.status() != StatusCode::UNAUTHORIZED {
        guard.authenticated(client);
    }
    res
}

/// Middleware for doors anyone may call that still cost a database read (`/metrics`, `/readyz`).
pub async fn guard_open(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let client = client(&state, &req);
    if let Err(wait) = state.guard.open.take(client, Instant::now()) {
        return too_many(
            retry_after_secs(wait),
            "too many requests from this address",
        );
    }
    next.run(req).await
}

/// Middleware for the public status surfaces (`/status…`, `/api/v2/…`): served from memory, so
/// the budget is the API's, counted apart, against one client hammering the page.
pub async fn guard_public(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let client = client(&state, &req);
    if let Err(wait) = state.guard.public.take(client, Instant::now()) {
        return too_many(
            retry_after_secs(wait),
            "too many requests from this address",
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn a_bucket_empties_then_refills_at_its_rate() {
        let b = Buckets::new(
            Budget {
                burst: 3,
                per_second: 1.0,
            },
            10,
        );
        let t = Instant::now();
        for _ in 0..3 {
            assert!(b.take(ip(1), t).is_ok());
        }
        let wait = b.take(ip(1), t).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(
            b.take(ip(2), t).is_ok(),
            "another client has its own budget"
        );
        assert!(b.take(ip(1), t + Duration::from_secs(1)).is_ok());
        // A refund gives the token back.
        b.refund(ip(1), t + Duration::from_secs(1));
        assert!(b.take(ip(1), t + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn past_the_capacity_new_clients_share_one_overflow_bucket() {
        let budget = Budget {
            burst: 2,
            per_second: 0.001,
        };
        let b = Buckets::new(budget, 100);
        let t = Instant::now();
        for n in 0..100 {
            assert!(b.take(ip(n), t).is_ok());
        }
        assert_eq!(b.clients(), 100);
        // Thousands more addresses: no new buckets, one shared budget of 2.
        let allowed = (100..5_000).filter(|&n| b.take(ip(n), t).is_ok()).count();
        assert_eq!(allowed, 2);
        assert_eq!(b.clients(), 100);
        // Once the old buckets have refilled, a sweep makes room again.
        let later = t + Duration::from_secs(10_000);
        assert!(b.take(ip(9_999), later).is_ok());
        assert_eq!(b.clients(), 1);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), ip(1));
    }
}
