//! Who an HTTP client is, and how much it may ask: `[server] trusted_proxies` (the reverse
//! proxies whose `X-Forwarded-For` is believed) and `[limits]` (the per-client budgets the HTTP
//! server keeps, by client address).
//!
//! No proxy is trusted by default: the peer address is the client. Trusting one is a statement
//! about the network (only that proxy can reach the listener), so it is never guessed.

use super::*;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use toml::Spanned;

type Report<'a> = &'a mut dyn FnMut(&std::ops::Range<usize>, String);

/// The per-client budgets (token buckets keyed by client address).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// `/api/v1` and `/discord/interactions` requests a client may send per second…
    pub api_per_second: f64,
    /// …and at once.
    pub api_burst: u32,
    /// `/metrics` and `/readyz` requests (each reads the database) per second…
    pub metrics_per_second: f64,
    /// …and at once.
    pub metrics_burst: u32,
    /// Failed authentications a client may have at once, on every door that checks a
    /// credential; with none left it is answered 429 before any signature is checked.
    pub auth_failures: u32,
    /// One more failed authentication is allowed this long after the last.
    pub auth_failure_refill: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            api_per_second: 1_000.0,
            api_burst: 2_000,
            metrics_per_second: 10.0,
            metrics_burst: 50,
            auth_failures: 20,
            auth_failure_refill: Duration::seconds(5),
        }
    }
}

/// One address or CIDR block: `127.0.0.1`, `::1`, `10.0.0.0/8`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    /// The network address (host bits cleared).
    base: IpAddr,
    prefix: u8,
}

impl AddressRange {
    /// Whether `ip` lies in the range. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a
    /// dual-stack listener reports) is read as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, unmapped(ip)) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => mask4(ip, self.prefix) == base,
            (IpAddr::V6(base), IpAddr::V6(ip)) => mask6(ip, self.prefix) == base,
            _ => false,
        }
    }
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn mask4(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(ip);
    Ipv4Addr::from(bits & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

fn mask6(ip: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(ip);
    Ipv6Addr::from(bits & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0))
}

impl FromStr for AddressRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not an IP address or CIDR block; write it like 127.0.0.1, ::1 or 10.0.0.0/8"
            )
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let ip = unmapped(IpAddr::from_str(addr).map_err(|_| bad())?);
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => {
                    return Err(format!(
                        "`{s}`: the prefix length after `/` must be 0-{max} for this address"
                    ))
                }
            },
        };
        let base = match ip {
            IpAddr::V4(v4) => IpAddr::V4(mask4(v4, prefix)),
            IpAddr::V6(v6) => IpAddr::V6(mask6(v6, prefix)),
        };
        Ok(AddressRange { base, prefix })
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    api_per_second: Option<Spanned<f64>>,
    api_burst: Option<Spanned<u32>>,
    metrics_per_second: Option<Spanned<f64>>,
    metrics_burst: Option<Spanned<u32>>,
    auth_failures: Option<Spanned<u32>>,
    auth_failure_refill: Option<Spanned<String>>,
}

/// `[server] trusted_proxies`: every entry an address or a CIDR block.
pub(super) fn parse_trusted_proxies(
    raw: Option<Vec<Spanned<String>>>,
    err: Report<'_>,
) -> Vec<AddressRange> {
    raw.unwrap_or_default()
        .into_iter()
        .filter_map(|s| {
            s.get_ref()
                .parse()
                .map_err(|m| err(&s.span(), format!("[server] trusted_proxies: {m}")))
                .ok()
        })
        .collect()
}

pub(super) fn parse_limits(raw: Option<RawLimits>, err: Report<'_>) -> LimitsConfig {
    let d = LimitsConfig::default();
    let Some(raw) = raw else { return d };
    let mut rate = |v: Option<Spanned<f64>>, key: &str, default: f64| match v {
        Some(v) if v.get_ref().is_finite() && *v.get_ref() > 0.0 => *v.get_ref(),
        Some(v) => {
            err(
                &v.span(),
                format!("[limits] {key} must be a number of requests per second above 0, e.g. {default}"),
            );
            default
        }
        None => default,
    };
    let api_per_second = rate(raw.api_per_second, "api_per_second", d.api_per_second);
    let metrics_per_second = rate(
        raw.metrics_per_second,
        "metrics_per_second",
        d.metrics_per_second,
    );
    let mut count = |v: Option<Spanned<u32>>, key: &str, default: u32| match v {
        Some(v) if *v.get_ref() == 0 => {
            err(
                &v.span(),
                format!("[limits] {key} must be at least 1, e.g. {default}"),
            );
            default
        }
        Some(v) => v.into_inner(),
        None => default,
    };
    let api_burst = count(raw.api_burst, "api_burst", d.api_burst);
    let metrics_burst = count(raw.metrics_burst, "metrics_burst", d.metrics_burst);
    let auth_failures = count(raw.auth_failures, "auth_failures", d.auth_failures);
    let auth_failure_refill = match raw.auth_failure_refill {
        Some(s) => match parse_duration(s.get_ref()) {
            Ok(t) if t >= Duration::seconds(1) => t,
            Ok(_) => {
                err(
                    &s.span(),
                    "[limits] auth_failure_refill must be at least 1s, e.g. \"5s\"".into(),
                );
                d.auth_failure_refill
            }
            Err(m) => {
                err(&s.span(), format!("[limits] auth_failure_refill: {m}"));
                d.auth_failure_refill
            }
        },
        None => d.auth_failure_refill,
    };
    LimitsConfig {
        api_per_second,
        api_burst,
        metrics_per_second,
        metrics_burst,
        auth_failures,
        auth_failure_refill,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> AddressRange {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_blocks_contain_what_they_say() {
        assert!(range("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!range("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(range("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!range("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(range("::1").contains(ip("::1")));
        assert!(!range("::1").contains(ip("127.0.0.1")));
        assert!(range("fd00::/8").contains(ip("fd12:3456::1")));
        assert!(range("0.0.0.0/0").contains(ip("203.0.113.9")));
        // What a dual-stack listener reports for an IPv4 peer.
        assert!(range("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        // Host bits are cleared.
        assert_eq!(range("10.1.2.3/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn a_bad_range_names_the_accepted_form() {
        for (s, expected) in [
            (
                "localhost",
                "is not an IP address or CIDR block; write it like 127.0.0.1, ::1 or 10.0.0.0/8",
            ),
            ("10.0.0.0/33", "the prefix length after `/` must be 0-32"),
            ("::/129", "the prefix length after `/` must be 0-128"),
            ("10.0.0.0/x", "the prefix length"),
        ] {
            let e = s.parse::<AddressRange>().unwrap_err();
            assert!(e.contains(expected), "{s}: {e}");
        }
    }

    /// The default file with the lines that set these keys replaced.
    fn with(lines: &[&str]) -> String {
        let d = super::super::DEFAULT_TOML;
        let text: String = d
            .lines()
            .map(|l| {
                let key = l.split(' ').next().unwrap_or_default();
                lines
                    .iter()
                    .find(|n| !key.is_empty() && n.starts_with(&format!("{key} =")))
                    .copied()
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        for line in lines {
            assert!(
                text.contains(line),
                "the default file does not set `{line}`'s key"
            );
        }
        text
    }

    #[test]
    fn no_proxy_is_trusted_and_the_limits_are_todays_by_default() {
        let c = Config::builtin();
        assert!(c.server.trusted_proxies.is_empty());
        assert_eq!(c.limits, LimitsConfig::default());
    }

    #[test]
    fn trusted_proxies_and_limits_are_read() {
        let text = with(&[
            r#"trusted_proxies = ["127.0.0.1", "::1", "10.0.0.0/8"]"#,
            "api_per_second = 5000",
            "api_burst = 9000",
            "metrics_per_second = 0.5",
            "auth_failures = 3",
            r#"auth_failure_refill = "1m""#,
        ]);
        let c = Config::from_toml(&text, "t.toml").unwrap();
        let shown: Vec<String> = c
            .server
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]);
        assert_eq!(c.limits.api_per_second, 5000.0);
        assert_eq!(c.limits.api_burst, 9000);
        assert_eq!(c.limits.metrics_per_second, 0.5);
        assert_eq!(c.limits.metrics_burst, 50);
        assert_eq!(c.limits.auth_failures, 3);
        assert_eq!(c.limits.auth_failure_refill, Duration::minutes(1));
    }

    #[test]
    fn bad_proxies_and_limits_are_named_with_their_accepted_form() {
        for (line, expected) in [
            (r#"trusted_proxies = ["127.0.0.1", "proxy.local"]"#, "[server] trusted_proxies: `proxy.local` is not an IP address or CIDR block; write it like 127.0.0.1, ::1 or 10.0.0.0/8"),
            ("api_per_second = 0", "[limits] api_per_second must be a number of requests per second above 0, e.g. 1000"),
            ("metrics_per_second = -1.5", "[limits] metrics_per_second must be a number of requests per second above 0"),
            ("api_burst = 0", "[limits] api_burst must be at least 1, e.g. 2000"),
            ("auth_failures = 0", "[limits] auth_failures must be at least 1, e.g. 20"),
            (r#"auth_failure_refill = "0s""#, "[limits] auth_failure_refill must be at least 1s"),
            (r#"auth_failure_refill = "soon""#, "[limits] auth_failure_refill: bad duration `soon`"),
        ] {
            let e = Config::from_toml(&with(&[line]), "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{line}: {e}");
        }
    }
}
