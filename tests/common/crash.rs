//! Crash-test machinery shared by `tests/crash.rs` and `tests/crash_storm.rs`: the real
//! `spotter serve` process that can be `kill -9`ed, a closed-loop load of Alertmanager
//! notifications that kills it mid-stream and remembers which notifications were answered, and a
//! fresh PostgreSQL database per test.

use super::binary::{client, spotter};
use serde_json::Value;
use spotter_core::testkit::{self, PostgresTestDb};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The alertmanager source's bearer token, set through its variable (intake has no open door).
pub const AM_TOKEN: &str = "crash-test-alertmanager-token";

/// The built-in configuration with the alertmanager source's rate limit raised, so that the
/// load reaches the store instead of being answered 429.
pub fn write_config(dir: &Path) {
    let out = spotter(dir, None)
        .args(["config", "default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let default = String::from_utf8(out.stdout).unwrap();
    let limits = "rate = \"50/s\"\nburst = 100\n";
    assert!(
        default.contains(limits),
        "the default alertmanager source no longer says {limits:?}"
    );
    let config = default.replacen(limits, "rate = \"100000/s\"\nburst = 100000\n", 1);
    std::fs::write(dir.join("spotter.toml"), config).unwrap();
}

/// `spotter serve` on `dir`'s data, with its stderr kept in memory (shown when a test fails).
pub struct Server {
    child: Child,
    pub url: String,
    token: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts it on a free port and waits until `/readyz` answers 200.
    pub fn start(dir: &Path, db: Option<&str>) -> Server {
        let mut child = spotter(dir, db)
            .args(["--config", "spotter.toml", "serve"])
            .env("SPOTTER_LISTEN", "127.0.0.1:0")
            .env("SPOTTER_ALERTMANAGER_TOKEN", AM_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let log2 = log.clone();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                if std::env::var("SPOTTER_TEST_LOG").is_ok() {
                    eprintln!("[spotter] {line}");
                }
                log2.lock().unwrap().push(line);
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "spotter never said where it listens:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        let mut server = Server {
            child,
            url,
            token: String::new(),
            log,
        };
        let c = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c
            .get(format!("{}/readyz", server.url))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "/readyz never answered 200");
            std::thread::sleep(Duration::from_millis(20));
        }
        server.token = std::fs::read_to_string(dir.join("data/api-token"))
            .unwrap()
            .trim()
            .to_string();
        server
    }

    /// `GET path` with the admin API token; asserts 200.
    pub fn get(&self, path: &str) -> Value {
        let r = client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().unwrap()
    }

    /// Every stored alert, by fingerprint (asserts none was cut off by the listing's limit).
    pub fn stored_alerts(&self) -> std::collections::HashMap<String, Value> {
        let alerts = self.get("/api/v1/alerts?limit=10000")["alerts"]
            .as_array()
            .unwrap()
            .clone();
        assert!(
            alerts.len() < 10_000,
            "raise the limit: the check would miss alerts"
        );
        alerts
            .into_iter()
            .map(|a| (a["fingerprint"].as_str().unwrap().to_string(), a))
            .collect()
    }

    /// The references of every incident, in any state.
    pub fn incident_refs(&self) -> std::collections::BTreeSet<String> {
        self.get("/api/v1/incidents?state=all")["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["ref"].as_str().unwrap().to_string())
            .collect()
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "spotter was not killed by SIGKILL"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap();
            eprintln!("--- last stderr lines of spotter ---");
            for l in &log[log.len().saturating_sub(40)..] {
                eprintln!("{l}");
            }
        }
    }
}

/// One notification to send: its body and the fingerprints of the alerts it carries.
pub struct Notification {
    pub body: Value,
    pub fingerprints: Vec<String>,
}

/// What the load saw, notification by notification.
#[derive(Default)]
pub struct Outcome {
    /// Notifications answered 2xx.
    pub acked: Vec<Notification>,
    /// Notifications sent (or about to be) when the server died: no answer, so the sender
    /// cannot know whether they were taken.
    pub unanswered: Vec<Notification>,
}

#[derive(Default)]
struct Shared {
    outcome: Mutex<Outcome>,
    acked_count: AtomicUsize,
    /// Answers other than 2xx: (status, body).
    refused: Mutex<Vec<(u16, String)>>,
}

/// Closed loop: `workers` senders each post `make(worker, n)` for n = 0, 1, … to the
/// Alertmanager webhook, the next when the last was answered, until the server stops answering;
/// the server is killed with SIGKILL once `kill_after` notifications were answered 2xx. Asserts
/// the kill cut off every sender (it landed mid-load) and that nothing was refused.
pub fn load_and_kill(
    server: Server,
    label: &str,
    workers: usize,
    kill_after: usize,
    make: impl Fn(usize, usize) -> Notification + Send + Sync + 'static,
) -> Outcome {
    let url = format!("{}/webhooks/alertmanager", server.url);
    let shared = Arc::new(Shared::default());
    let make = Arc::new(make);
    let started = Instant::now();
    let senders: Vec<_> = (0..workers)
        .map(|w| {
            let (shared, url, make) = (shared.clone(), url.clone(), make.clone());
            std::thread::spawn(move || {
                let c = client();
                for n in 0.. {
                    let notification = make(w, n);
                    match c
                        .post(&url)
                        .bearer_auth(AM_TOKEN)
                        .json(&notification.body)
                        .send()
                    {
                        Ok(r) if r.status().is_success() => {
                            // The status line is the answer; the body is checked when it came
                            // whole (the kill may cut it off, and then it still counts as 2xx).
                            let status = r.status();
                            if let Ok(body) = r.json::<Value>() {
                                assert_eq!(body["status"], "ok", "{status}: {body}");
                                assert_eq!(
                                    body["alerts"],
                                    notification.fingerprints.len(),
                                    "{body}"
                                );
                            }
                            shared.outcome.lock().unwrap().acked.push(notification);
                            shared.acked_count.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body = r.text().unwrap_or_default();
                            shared.refused.lock().unwrap().push((status, body));
                        }
                        Err(_) => {
                            // Connection refused or reset: the server is gone.
                            shared.outcome.lock().unwrap().unanswered.push(notification);
                            return;
                        }
                    }
                    if started.elapsed() > Duration::from_secs(60) {
                        return; // a safety net; the kill comes long before
                    }
                }
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.acked_count.load(Ordering::SeqCst) < kill_after {
        assert!(
            Instant::now() < deadline,
            "only {} of {kill_after} notifications acknowledged in 30 s; refused: {:?}",
            shared.acked_count.load(Ordering::SeqCst),
            shared.refused.lock().unwrap().first()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let at_kill = shared.acked_count.load(Ordering::SeqCst);
    server.kill_9();
    for s in senders {
        s.join().expect("a sender panicked");
    }
    let outcome = std::mem::take(&mut *shared.outcome.lock().unwrap());
    let refused = shared.refused.lock().unwrap();
    eprintln!(
        "{label}: {} acknowledged ({at_kill} when killed), {} refused, {} unanswered, {:.2} s",
        outcome.acked.len(),
        refused.len(),
        outcome.unanswered.len(),
        started.elapsed().as_secs_f64()
    );
    // Every sender was cut off by the kill: the load was still going.
    assert_eq!(
        outcome.unanswered.len(),
        workers,
        "the kill did not land mid-load"
    );
    // With the rate limit raised, nothing is refused; storage trouble would be 503.
    assert!(
        refused.is_empty(),
        "{} notifications refused, e.g. {:?}",
        refused.len(),
        refused.first()
    );
    outcome
}

/// Runs `test` on a fresh PostgreSQL database of `SPOTTER_TEST_DATABASE_URL`'s server, dropped
/// afterwards even when the test fails; skips (or, under `SPOTTER_TEST_STRICT=1`, fails) when the
/// variable is unset.
pub fn on_postgres(name: &str, test: impl FnOnce(&str) + std::panic::UnwindSafe) {
    let Some(server_url) = testkit::postgres_url(name) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg = rt
        .block_on(PostgresTestDb::create(&server_url))
        .expect("creating a PostgreSQL test database");
    let url = pg.url().to_string();
    let result = std::panic::catch_unwind(|| test(&url));
    rt.block_on(pg.drop_db());
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// `spotter audit verify` on the data: the audit log's hash chain survived the kills.
pub fn assert_audit_verifies(dir: &Path, db: Option<&str>) {
    let out = spotter(dir, db)
        .args(["--config", "spotter.toml", "audit", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify after kill -9: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
