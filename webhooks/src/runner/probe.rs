//! Probes: the guide's system status check, one dependency at a time. Each answers healthy or
//! not with a detail people can act on ("HTTP 200 in 12 ms", "connection refused
//! (127.0.0.1:3306)", "timed out after 2 s").
//!
//! - HTTP: a GET, healthy when the status is the expected one (redirects are not followed).
//! - TCP: a connect.
//! - MySQL/MariaDB and PostgreSQL: one connection (not a pool: a probe must not keep
//!   connections open between checks), `SELECT 1`, closed again.
//! - Redis: `AUTH` (when a password is configured), then `PING`, expecting `+PONG`; a few bytes
//!   of RESP over TCP, so no client library is needed.
//!
//! Database URLs may hold passwords (that is why they usually come from `url_env`): no detail
//! ever shows one. URLs go through [`redact_url`], and every detail is scrubbed of the URL's
//! password in case a driver's message quotes it.

use super::http::{describe, parse_url, timed_out_after};
use super::{os_error, Runner};
use spotter_core::config::redact_url;
use spotter_core::runbook::{OutputSink, ProbeResult, ProbeSpec, StepOutcome};
use sqlx::{ConnectOptions, Connection, Row};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A probe's result, and whether it ended because its time was up.
pub(super) struct Probed {
    pub result: ProbeResult,
    pub timed_out: bool,
}

enum Fail {
    Unhealthy(String),
    TimedOut,
}

/// Runs `spec` within `timeout`.
pub(super) async fn probe(runner: &Runner, spec: &ProbeSpec, timeout: Duration) -> Probed {
    let start = Instant::now();
    let checked = tokio::time::timeout(timeout, check(runner, spec, timeout, start)).await;
    let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (healthy, detail, timed_out) = match checked {
        Ok(Ok(ok)) => (true, format!("{ok} in {elapsed_ms} ms"), false),
        Ok(Err(Fail::Unhealthy(why))) => (false, why, false),
        Ok(Err(Fail::TimedOut)) | Err(_) => (false, timed_out_after(timeout), true),
    };
    Probed {
        result: ProbeResult {
            healthy,
            detail,
            elapsed_ms,
        },
        timed_out,
    }
}

/// A probe as a runbook step: one output line with the detail; healthy → succeeded, unhealthy →
/// failed, out of time → timed out.
pub(super) async fn run_step(
    runner: &Runner,
    spec: &ProbeSpec,
    timeout: Duration,
    out: &dyn OutputSink,
    cancel: CancellationToken,
) -> StepOutcome {
    let probed = tokio::select! {
        biased;
        _ = cancel.cancelled() => return StepOutcome::Cancelled,
        p = probe(runner, spec, timeout) => p,
    };
    let ProbeResult {
        healthy, detail, ..
    } = probed.result;
    out.line(&format!("{} probe: {detail}", spec.kind()));
    if probed.timed_out {
        StepOutcome::TimedOut
    } else if healthy {
        StepOutcome::Succeeded { detail }
    } else {
        StepOutcome::Failed {
            exit_code: None,
            detail,
        }
    }
}

/// The check itself: `Ok` with what went well ("HTTP 200"; the time is added by the caller).
async fn check(
    runner: &Runner,
    spec: &ProbeSpec,
    timeout: Duration,
    start: Instant,
) -> Result<String, Fail> {
    match spec {
        ProbeSpec::Http { url, expect_status } => {
            http(runner, url, *expect_status, timeout, start).await
        }
        ProbeSpec::Tcp { address } => tcp(address).await.map(|_| "connected".to_string()),
        ProbeSpec::Mysql { url, url_env } => {
            let url = database_url(runner, url, url_env)?;
            scrubbed(&url, mysql(&url).await)
        }
        ProbeSpec::Postgres { url, url_env } => {
            let url = database_url(runner, url, url_env)?;
            scrubbed(&url, postgres(&url).await)
        }
        ProbeSpec::Redis {
            address,
            password_env,
        } => {
            let password = match password_env {
                Some(var) => Some(runner.secret_env(var).ok_or_else(|| {
                    Fail::Unhealthy(format!(
                        "password_env: the environment variable {var} is not set (or empty)"
                    ))
                })?),
                None => None,
            };
            let r = redis(address, password.as_deref()).await;
            match &password {
                Some(p) => r.map_err(|f| scrub(f, std::slice::from_ref(p))),
                None => r,
            }
        }
    }
}

async fn http(
    runner: &Runner,
    url: &str,
    expect: u16,
    timeout: Duration,
    start: Instant,
) -> Result<String, Fail> {
    let client = runner.client().map_err(Fail::Unhealthy)?;
    let parsed = parse_url(url).map_err(Fail::Unhealthy)?;
    let resp = client
        .get(parsed)
        .timeout(timeout.max(Duration::from_millis(1)))
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                Fail::TimedOut
            } else {
                Fail::Unhealthy(describe(&e))
            }
        })?;
    let status = resp.status().as_u16();
    if status == expect {
        Ok(format!("HTTP {status}"))
    } else {
        Err(Fail::Unhealthy(format!(
            "HTTP {status} in {} ms (expected {expect})",
            start.elapsed().as_millis()
        )))
    }
}

async fn tcp(address: &str) -> Result<TcpStream, Fail> {
    TcpStream::connect(address).await.map_err(|e| {
        Fail::Unhealthy(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => format!("connection refused ({address})"),
            _ => format!("cannot connect to {address}: {}", os_error(&e)),
        })
    })
}

/// The URL of a database probe: from `url_env` when set, else `url`.
fn database_url(
    runner: &Runner,
    url: &Option<String>,
    url_env: &Option<String>,
) -> Result<String, Fail> {
    match (url_env, url) {
        (Some(var), _) => runner.secret_env(var).ok_or_else(|| {
            Fail::Unhealthy(format!(
                "url_env: the environment variable {var} is not set (or empty)"
            ))
        }),
        (None, Some(url)) => Ok(url.clone()),
        (None, None) => Err(Fail::Unhealthy(
            "no database URL: set `url` or `url_env`".into(),
        )),
    }
}

async fn mysql(url: &str) -> Result<String, Fail> {
    let options: sqlx::mysql::MySqlConnectOptions =
        url.parse().map_err(|e| Fail::Unhealthy(bad_url(url, &e)))?;
    let mut conn = options
        .connect()
        .await
        .map_err(|e| Fail::Unhealthy(db_error(url, &e)))?;
    let one = sqlx::query("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .and_then(|row| row.try_get::<i64, _>(0));
    let _ = conn.close().await;
    select_one(url, one)
}

async fn postgres(url: &str) -> Result<String, Fail> {
    let options: sqlx::postgres::PgConnectOptions =
        url.parse().map_err(|e| Fail::Unhealthy(bad_url(url, &e)))?;
    let mut conn = options
        .connect()
        .await
        .map_err(|e| Fail::Unhealthy(db_error(url, &e)))?;
    let one = sqlx::query("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .and_then(|row| row.try_get::<i32, _>(0).map(i64::from));
    let _ = conn.close().await;
    select_one(url, one)
}

fn select_one(url: &str, one: Result<i64, sqlx::Error>) -> Result<String, Fail> {
    match one {
        Ok(1) => Ok("SELECT 1 ok".into()),
        Ok(n) => Err(Fail::Unhealthy(format!("SELECT 1 answered {n}"))),
        Err(e) => Err(Fail::Unhealthy(format!(
            "SELECT 1 failed: {}",
            db_error(url, &e)
        ))),
    }
}

fn bad_url(url: &str, e: &sqlx::Error) -> String {
    format!("url `{}` is not usable: {e}", redact_url(url))
}

/// A driver error as a detail: a refused connection names the server, a server's refusal is
/// its own message ("Access denied for user 'root'@'localhost'").
fn db_error(url: &str, e: &sqlx::Error) -> String {
    let server = reqwest::Url::parse(url).ok().and_then(|u| {
        let port = u.port().or(match u.scheme() {
            "mysql" | "mariadb" => Some(3306),
            "postgres" | "postgresql" => Some(5432),
            _ => None,
        })?;
        Some(format!("{}:{port}", u.host_str()?))
    });
    let at = server
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused{at}")
        }
        sqlx::Error::Io(io) => format!("cannot connect{at}: {}", os_error(io)),
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::Tls(tls) => format!("TLS{at}: {tls}"),
        other => other.to_string(),
    }
}

/// `r` with every detail scrubbed of the passwords `url` holds.
fn scrubbed(url: &str, r: Result<String, Fail>) -> Result<String, Fail> {
    r.map_err(|f| scrub(f, &url_secrets(url)))
}

fn scrub(f: Fail, secrets: &[String]) -> Fail {
    match f {
        Fail::Unhealthy(mut detail) => {
            // Very short values are skipped: replacing "ab" everywhere would garble the detail,
            // and no driver message quotes a password anyway (this is a second line of defence).
            for s in secrets.iter().filter(|s| s.len() >= 3) {
                detail = detail.replace(s.as_str(), "[redacted]");
            }
            Fail::Unhealthy(detail)
        }
        t => t,
    }
}

/// The password of `url`'s user info and of its password-like query parameters, both as
/// written and percent-decoded.
fn url_secrets(url: &str) -> Vec<String> {
    let Ok(u) = reqwest::Url::parse(url) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(p) = u.password() {
        out.push(p.to_string());
        out.push(percent_decode(p));
    }
    for (k, v) in u.query_pairs() {
        let k = k.to_ascii_lowercase();
        if k.contains("password") || k.contains("token") || k.contains("secret") {
            out.push(v.to_string());
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `AUTH` when there is a password, then `PING` → `+PONG`.
async fn redis(address: &str, password: Option<&str>) -> Result<String, Fail> {
    let stream = tcp(address).await?;
    let mut stream = BufReader::new(stream);
    if let Some(p) = password {
        send(&mut stream, &[b"AUTH", p.as_bytes()], address).await?;
        let reply = reply_line(&mut stream, address).await?;
        if !reply.starts_with('+') {
            return Err(Fail::Unhealthy(format!("AUTH refused: {reply}")));
        }
    }
    send(&mut stream, &[b"PING"], address).await?;
    let reply = reply_line(&mut stream, address).await?;
    if reply == "+PONG" {
        Ok("PONG".into())
    } else {
        Err(Fail::Unhealthy(format!("PING answered {reply}")))
    }
}

/// One RESP command (an array of bulk strings: binary-safe, so a password is sent as is).
async fn send(
    stream: &mut BufReader<TcpStream>,
    parts: &[&[u8]],
    address: &str,
) -> Result<(), Fail> {
    let mut frame = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        frame.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        frame.extend_from_slice(p);
        frame.extend_from_slice(b"\r\n");
    }
    stream
        .get_mut()
        .write_all(&frame)
        .await
        .map_err(|e| Fail::Unhealthy(format!("cannot write to {address}: {}", os_error(&e))))
}

/// The longest reply line read (a PONG or an error is a few dozen bytes).
const MAX_REPLY: u64 = 1024;

/// One reply line, without its CRLF and with control characters made spaces.
async fn reply_line(stream: &mut BufReader<TcpStream>, address: &str) -> Result<String, Fail> {
    let mut line = Vec::new();
    let mut limited = (&mut *stream).take(MAX_REPLY);
    let n = limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| Fail::Unhealthy(format!("cannot read from {address}: {}", os_error(&e))))?;
    if n == 0 {
        return Err(Fail::Unhealthy(format!(
            "connection closed by {address} without an answer"
        )));
    }
    let text: String = String::from_utf8_lossy(&line)
        .trim_end_matches(['\r', '\n'])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Ok(text)
}
