//! Probes against the real PostgreSQL, MariaDB and Redis, and against listeners started here:
//! a closed port (refused), one that answers 503, one that accepts and never answers, and a
//! small Redis stand-in that checks `AUTH` comes first.

use super::{run, runner, Rec};
use spotter_core::runbook::{Action, Executor, Invocation, ProbeSpec, Secrets, StepOutcome};
use spotter_webhooks::runner::Runner;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const MARIADB: &str = "mysql://root@127.0.0.1:3306/mysql";
const REDIS: &str = "127.0.0.1:6379";
const T: Duration = Duration::from_secs(5);

/// A port nothing listens on: bound, then let go.
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A listener that accepts and then says nothing, ever (the connections are kept open).
async fn silent() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    port
}

/// An HTTP listener answering every request with `status`.
async fn answering(status: u16) -> u16 {
    let app = axum::Router::new()
        .fallback(move || async move { axum::http::StatusCode::from_u16(status).unwrap() });
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    port
}

fn mysql(url: &str) -> ProbeSpec {
    ProbeSpec::Mysql {
        url: Some(url.into()),
        url_env: None,
    }
}

fn postgres(url: &str) -> ProbeSpec {
    ProbeSpec::Postgres {
        url: Some(url.into()),
        url_env: None,
    }
}

fn redis(address: &str) -> ProbeSpec {
    ProbeSpec::Redis {
        address: address.into(),
        password_env: None,
    }
}

fn http(url: &str) -> ProbeSpec {
    ProbeSpec::Http {
        url: url.into(),
        expect_status: 200,
    }
}

fn tcp(address: &str) -> ProbeSpec {
    ProbeSpec::Tcp {
        address: address.into(),
    }
}

/// Asserts `spec` is healthy with a detail `"<ok> in N ms"`.
async fn healthy(r: &Runner, spec: ProbeSpec, ok: &str) {
    let res = r.probe(&spec, T).await;
    assert!(res.healthy, "{spec:?}: {res:?}");
    let ms = res
        .detail
        .strip_prefix(&format!("{ok} in "))
        .and_then(|rest| rest.strip_suffix(" ms"))
        .unwrap_or_else(|| panic!("{spec:?}: {res:?}"));
    assert!(ms.parse::<u64>().unwrap() <= res.elapsed_ms, "{res:?}");
}

/// Asserts `spec` is unhealthy with exactly `detail`.
async fn unhealthy(r: &Runner, spec: ProbeSpec, timeout: Duration, detail: &str) {
    let res = r.probe(&spec, timeout).await;
    assert!(!res.healthy, "{spec:?}: {res:?}");
    assert_eq!(res.detail, detail, "{spec:?}");
}

#[tokio::test]
async fn the_real_services_are_healthy() {
    let r = runner(&[]);
    healthy(&r, postgres(POSTGRES), "SELECT 1 ok").await;
    healthy(&r, mysql(MARIADB), "SELECT 1 ok").await;
    healthy(&r, redis(REDIS), "PONG").await;
    healthy(&r, tcp("127.0.0.1:5432"), "connected").await;
    let port = answering(200).await;
    healthy(
        &r,
        http(&format!("http://127.0.0.1:{port}/healthz")),
        "HTTP 200",
    )
    .await;
}

#[tokio::test]
async fn a_database_url_comes_from_url_env_when_it_is_set() {
    let r = runner(&[("PG_URL", POSTGRES), ("MY_URL", MARIADB)]);
    let from_env = |url_env: &str| {
        (
            Some("postgres://nobody@127.0.0.1:1/none".to_string()),
            Some(url_env.to_string()),
        )
    };
    let (url, url_env) = from_env("PG_URL");
    healthy(&r, ProbeSpec::Postgres { url, url_env }, "SELECT 1 ok").await;
    let (url, url_env) = from_env("MY_URL");
    healthy(&r, ProbeSpec::Mysql { url, url_env }, "SELECT 1 ok").await;
    unhealthy(
        &r,
        ProbeSpec::Postgres {
            url: None,
            url_env: Some("UNSET_DB_URL".into()),
        },
        T,
        "url_env: the environment variable UNSET_DB_URL is not set (or empty)",
    )
    .await;
}

#[tokio::test]
async fn a_closed_port_is_refused_naming_the_address() {
    let r = runner(&[]);
    let port = closed_port().await;
    let refused = format!("connection refused (127.0.0.1:{port})");
    unhealthy(&r, tcp(&format!("127.0.0.1:{port}")), T, &refused).await;
    unhealthy(&r, redis(&format!("127.0.0.1:{port}")), T, &refused).await;
    unhealthy(
        &r,
        mysql(&format!("mysql://root@127.0.0.1:{port}/mysql")),
        T,
        &refused,
    )
    .await;
    unhealthy(
        &r,
        postgres(&format!("postgres://postgres@127.0.0.1:{port}/postgres")),
        T,
        &refused,
    )
    .await;
    unhealthy(
        &r,
        http(&format!("http://127.0.0.1:{port}/healthz")),
        T,
        &refused,
    )
    .await;
}

#[tokio::test]
async fn an_http_probe_expecting_200_is_unhealthy_on_503() {
    let r = runner(&[]);
    let port = answering(503).await;
    let res = r
        .probe(&http(&format!("http://127.0.0.1:{port}/healthz")), T)
        .await;
    assert!(!res.healthy, "{res:?}");
    assert!(
        res.detail.starts_with("HTTP 503 in ") && res.detail.ends_with(" ms (expected 200)"),
        "{res:?}"
    );
}

#[tokio::test]
async fn a_listener_that_never_answers_times_out() {
    let r = runner(&[]);
    let port = silent().await;
    let short = Duration::from_millis(300);
    let addr = format!("127.0.0.1:{port}");
    for spec in [
        http(&format!("http://{addr}/healthz")),
        redis(&addr),
        mysql(&format!("mysql://root@{addr}/mysql")),
        postgres(&format!("postgres://postgres@{addr}/postgres")),
    ] {
        let res = r.probe(&spec, short).await;
        assert!(!res.healthy, "{spec:?}: {res:?}");
        assert_eq!(res.detail, "timed out after 300 ms", "{spec:?}");
        assert!((250..2000).contains(&res.elapsed_ms), "{spec:?}: {res:?}");
    }
    // A TCP probe only connects, so the same listener is healthy to it.
    healthy(&r, tcp(&addr), "connected").await;
}

#[tokio::test]
async fn no_detail_shows_a_password() {
    let r = runner(&[
        ("MY_URL", "mysql://root:hunter2-my@127.0.0.1:3306/mysql"),
        (
            "PG_URL",
            "postgres://postgres:hunter2-pg@127.0.0.1:5432/no_such_db_7f3a",
        ),
        ("REDIS_PASSWORD", "hunter2-redis"),
    ]);
    let cases = [
        (
            ProbeSpec::Mysql {
                url: None,
                url_env: Some("MY_URL".into()),
            },
            "hunter2-my",
            "Access denied",
        ),
        (
            ProbeSpec::Postgres {
                url: None,
                url_env: Some("PG_URL".into()),
            },
            "hunter2-pg",
            "no_such_db_7f3a",
        ),
        (
            ProbeSpec::Redis {
                address: REDIS.into(),
                password_env: Some("REDIS_PASSWORD".into()),
            },
            "hunter2-redis",
            "AUTH refused: -ERR",
        ),
        (
            mysql("mysql://root:hunter2-my@127.0.0.1:3306/mysql?ssl-mode=bogus"),
            "hunter2-my",
            "not usable",
        ),
    ];
    for (spec, password, says) in cases {
        let res = r.probe(&spec, T).await;
        assert!(!res.healthy, "{spec:?}: {res:?}");
        assert!(!res.detail.contains(password), "{res:?}");
        assert!(res.detail.contains(says), "{spec:?}: {res:?}");
    }
}

#[tokio::test]
async fn a_redis_password_is_sent_with_auth_before_ping() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let heard = Arc::new(Mutex::new(Vec::<u8>::new()));
    let log = heard.clone();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 1024];
        // AUTH, then PING: answer each once it is whole.
        for answer in [&b"+OK\r\n"[..], b"+PONG\r\n"] {
            let want = if answer == b"+OK\r\n" {
                b"AUTH".as_slice()
            } else {
                b"PING".as_slice()
            };
            loop {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early");
                log.lock().unwrap().extend_from_slice(&buf[..n]);
                let seen = log.lock().unwrap().clone();
                if seen.windows(4).any(|w| w == want) && seen.ends_with(b"\r\n") {
                    break;
                }
            }
            s.write_all(answer).await.unwrap();
        }
    });
    let r = runner(&[("REDIS_PASSWORD", "p@ss word")]);
    let spec = ProbeSpec::Redis {
        address: addr,
        password_env: Some("REDIS_PASSWORD".into()),
    };
    healthy(&r, spec, "PONG").await;
    assert_eq!(
        String::from_utf8(heard.lock().unwrap().clone()).unwrap(),
        "*2\r\n$4\r\nAUTH\r\n$9\r\np@ss word\r\n*1\r\n$4\r\nPING\r\n"
    );
}

fn probe_step(spec: ProbeSpec, timeout: Duration) -> Invocation {
    Invocation {
        action: Action::Probe(spec),
        timeout,
        secrets: Secrets::default(),
    }
}

#[tokio::test]
async fn a_probe_step_succeeds_fails_or_times_out_with_one_line_of_output() {
    let r = runner(&[]);
    let (outcome, lines) = run(&r, &probe_step(postgres(POSTGRES), T)).await;
    let StepOutcome::Succeeded { detail } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(detail.starts_with("SELECT 1 ok in "), "{detail}");
    assert_eq!(lines, [format!("postgres probe: {detail}")]);

    let port = closed_port().await;
    let (outcome, lines) = run(&r, &probe_step(redis(&format!("127.0.0.1:{port}")), T)).await;
    let refused = format!("connection refused (127.0.0.1:{port})");
    assert_eq!(
        outcome,
        StepOutcome::Failed {
            exit_code: None,
            detail: refused.clone()
        }
    );
    assert_eq!(lines, [format!("redis probe: {refused}")]);

    let port = silent().await;
    let spec = redis(&format!("127.0.0.1:{port}"));
    let (outcome, lines) = run(&r, &probe_step(spec.clone(), Duration::from_millis(200))).await;
    assert_eq!(outcome, StepOutcome::TimedOut);
    assert_eq!(lines, ["redis probe: timed out after 200 ms"]);

    let cancel = tokio_util::sync::CancellationToken::new();
    cancel.cancel();
    let outcome = r.run(&probe_step(spec, T), &Rec::default(), cancel).await;
    assert_eq!(outcome, StepOutcome::Cancelled);
}
