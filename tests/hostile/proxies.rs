//! Behind a reverse proxy: with `[server] trusted_proxies`, each client the proxy forwards has a
//! failure budget of its own (and is named in the refusal log); without it, or from a peer that
//! is not trusted, `X-Forwarded-For` is the client's own writing and changes nothing.
//!
//! The budgets are lowered to 5 failed authentications (`[limits] auth_failures`), which also
//! shows that setting is obeyed.

use crate::common::binary::{client, spotter, Served};
use crate::common::{self, Options};
use crate::dual_test;
use crate::http::{client_from, retry_after, FIRING};

const FAILURES: u32 = 5;

fn options(trusted: &'static [&'static str]) -> Options {
    Options {
        configure: Some(Box::new(move |c| {
            c.server.trusted_proxies = trusted.iter().map(|s| s.parse().unwrap()).collect();
            c.limits.auth_failures = FAILURES;
            // No try comes back while the test runs, however slow the machine.
            c.limits.auth_failure_refill = chrono::Duration::hours(1);
        })),
        ..Options::default()
    }
}

/// A wrong bearer token for the Alertmanager door, sent from `peer` with `forwarded_for`.
async fn wrong_token(base: &str, peer: &reqwest::Client, forwarded_for: &str) -> reqwest::Response {
    peer.post(format!("{base}/webhooks/alertmanager"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer guessed")
        .header("x-forwarded-for", forwarded_for)
        .body(FIRING)
        .send()
        .await
        .unwrap()
}

/// The statuses of `n` wrong tokens, each forwarded as `forwarded_for(i)`.
async fn statuses(
    base: &str,
    peer: &reqwest::Client,
    n: usize,
    forwarded_for: impl Fn(usize) -> String,
) -> Vec<u16> {
    let mut out = Vec::new();
    for i in 0..n {
        let r = wrong_token(base, peer, &forwarded_for(i)).await;
        if r.status() == 429 {
            assert!(retry_after(&r) >= 1);
        }
        out.push(r.status().as_u16());
    }
    out
}

fn spent_after(failures: u32, total: usize) -> Vec<u16> {
    let mut v = vec![401; failures as usize];
    v.resize(total, 429);
    v
}

dual_test!(
    clients_behind_a_trusted_proxy_have_budgets_of_their_own,
    options = options(&["127.0.0.1", "::1", "10.0.0.0/8"]),
    |app| async {
        // nginx on this host: every connection comes from 127.0.0.1, and nginx appends the
        // address it was connected from to whatever X-Forwarded-For the client sent.
        let proxy = client_from("127.0.0.1");
        let a = statuses(&app.addr, &proxy, 8, |_| "203.0.113.1".into()).await;
        assert_eq!(a, spent_after(FAILURES, 8), "client A");
        // Client B, behind the same proxy, still has all of its tries.
        let b = statuses(&app.addr, &proxy, 2, |_| "203.0.113.2".into()).await;
        assert_eq!(b, [401, 401], "client B paid for client A");
        // Client A cannot escape by writing addresses of its own to the left of nginx's entry,
        // nor through a second trusted proxy.
        let forged = statuses(&app.addr, &proxy, 6, |i| match i % 2 {
            0 => format!("198.51.100.{i}, 203.0.113.1"),
            _ => format!("198.51.100.{i}, 203.0.113.1, 10.0.0.5"),
        })
        .await;
        assert_eq!(
            forged, [429; 6],
            "a forged X-Forwarded-For escaped the budget"
        );
        // A peer that is not a trusted proxy is its own client, whatever it forwards.
        let untrusted = client_from("127.0.0.2");
        let direct = statuses(&app.addr, &untrusted, 7, |i| {
            format!("203.0.113.{}", 100 + i)
        })
        .await;
        assert_eq!(direct, spent_after(FAILURES, 7), "an untrusted peer");
        // The right credential goes through for everyone.
        assert_eq!(app.post_alertmanager(FIRING).await.status(), 200);
    }
);

dual_test!(
    without_trusted_proxies_a_forged_forwarded_for_does_not_escape_the_budget,
    options = options(&[]),
    |app| async {
        let peer = client_from("127.0.0.1");
        let forged = statuses(&app.addr, &peer, 9, |i| format!("203.0.113.{i}")).await;
        assert_eq!(forged, spent_after(FAILURES, 9));
        assert_eq!(app.incidents("all").await.len(), 0);
    }
);

#[test]
fn the_refusal_log_names_the_client_a_trusted_proxy_forwards() {
    let dir = tempfile::tempdir().unwrap();
    let config = spotter_core::config::DEFAULT_TOML.replacen(
        "trusted_proxies = []",
        r#"trusted_proxies = ["127.0.0.1"]"#,
        1,
    );
    assert!(config.contains(r#"trusted_proxies = ["127.0.0.1"]"#));
    std::fs::write(dir.path().join("spotter.toml"), config).unwrap();
    let mut command = spotter(dir.path(), None);
    command.args(["--config", "spotter.toml", "serve"]);
    let mut served = Served::start(command, dir.path());
    let r = client()
        .post(format!("{}/webhooks/alertmanager", served.url))
        .header("authorization", "Bearer guessed")
        .header("x-forwarded-for", "198.51.100.9, 203.0.113.77")
        .body(FIRING)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let line = served.wait_for_log(
        "alert intake refused a request",
        std::time::Duration::from_secs(10),
    );
    assert!(line.contains("client=203.0.113.77"), "{line}");
    served.stop();
}

#[allow(dead_code)]
fn unused(_: common::Backend) {}
