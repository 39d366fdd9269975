//! Crash test: `kill -9` the real `spotter` binary in the middle of a burst of concurrent
//! Alertmanager webhook requests. After a restart on the same data, every alert whose request was
//! answered 2xx is stored, with its incident. Runs on SQLite, and on PostgreSQL when
//! `SPOTTER_TEST_DATABASE_URL` is set (under `SPOTTER_TEST_STRICT=1` it must be).

mod common;

use common::binary::{client, spotter};
use serde_json::{json, Value};
use spotter_core::testkit::{self, PostgresTestDb};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Concurrent senders.
const WORKERS: usize = 16;
/// Acknowledged requests before the kill, per round.
const KILL_AFTER: usize = 150;
/// Kill, restart and check this many times on the same data.
const ROUNDS: usize = 2;

/// The built-in configuration with the alertmanager source's rate limit raised, so that the
/// burst reaches the store instead of being answered 429.
fn write_config(dir: &Path) {
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

/// The alertmanager source's bearer token, set through its variable (intake has no open door).
const AM_TOKEN: &str = "crash-test-alertmanager-token";

struct Server {
    child: Child,
    url: String,
    token: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(dir: &Path, db: Option<&str>) -> Server {
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

    fn get(&self, path: &str) -> Value {
        let r = client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().unwrap()
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    fn kill_9(mut self) {
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

/// One Alertmanager notification carrying one alert with its own fingerprint. Four alert names,
/// so the burst opens a few incidents and mostly joins them (the route groups by alertname and
/// service).
fn notification(fingerprint: &str, n: usize) -> Value {
    let alertname = format!("CrashBurst{}", n % 4);
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"),
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "spotter",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname, "service": "database", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{
            "status": "firing",
            "labels": {
                "alertname": alertname,
                "service": "database",
                "severity": "critical",
                "instance": fingerprint
            },
            "annotations": {"summary": format!("crash test alert {fingerprint}")},
            "startsAt": "2026-11-26T09:58:12.123Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
            "fingerprint": fingerprint
        }]
    })
}

#[derive(Default)]
struct Burst {
    /// Fingerprints whose request was answered 2xx.
    acked: Mutex<Vec<String>>,
    acked_count: AtomicUsize,
    /// Answers other than 2xx: (status, body).
    refused: Mutex<Vec<(u16, String)>>,
    /// Requests that got no answer (the server died under them).
    unanswered: AtomicUsize,
}

/// Fires concurrent notifications at `url` until the server stops answering; kills the server
/// once `KILL_AFTER` were acknowledged. Returns the acknowledged fingerprints.
fn burst_and_kill(server: Server, round: usize) -> Vec<String> {
    let url = format!("{}/webhooks/alertmanager", server.url);
    let burst = Arc::new(Burst::default());
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (burst, url) = (burst.clone(), url.clone());
            std::thread::spawn(move || {
                let c = client();
                for i in 0.. {
                    let fp = format!("crash-r{round}-w{w}-{i}");
                    match c
                        .post(&url)
                        .bearer_auth(AM_TOKEN)
                        .json(&notification(&fp, w + i))
                        .send()
                    {
                        Ok(r) if r.status().is_success() => {
                            let status = r.status();
                            let body: Value = r.json().unwrap_or_default();
                            assert_eq!(body["status"], "ok", "{status}: {body}");
                            assert_eq!(body["alerts"], 1, "{body}");
                            burst.acked.lock().unwrap().push(fp);
                            burst.acked_count.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body = r.text().unwrap_or_default();
                            burst.refused.lock().unwrap().push((status, body));
                        }
                        Err(_) => {
                            // Connection refused or reset: the server is gone.
                            burst.unanswered.fetch_add(1, Ordering::SeqCst);
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
    while burst.acked_count.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "only {} of {KILL_AFTER} requests acknowledged in 30 s; refused: {:?}",
            burst.acked_count.load(Ordering::SeqCst),
            burst.refused.lock().unwrap().first()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let at_kill = burst.acked_count.load(Ordering::SeqCst);
    server.kill_9();
    for w in workers {
        w.join().expect("a sender panicked");
    }
    let acked = std::mem::take(&mut *burst.acked.lock().unwrap());
    let refused = burst.refused.lock().unwrap();
    let unanswered = burst.unanswered.load(Ordering::SeqCst);
    eprintln!(
        "round {round}: {} acknowledged ({at_kill} when killed), {} refused, {unanswered} unanswered, {:.2} s",
        acked.len(),
        refused.len(),
        started.elapsed().as_secs_f64()
    );
    // Every sender was cut off by the kill: the burst was still going.
    assert_eq!(unanswered, WORKERS, "the kill did not land mid-burst");
    // With the rate limit raised, nothing is refused; storage trouble would be 503.
    assert!(
        refused.is_empty(),
        "{} requests refused, e.g. {:?}",
        refused.len(),
        refused.first()
    );
    acked
}

/// Every acknowledged alert is stored, firing, attached to an incident that exists.
fn check_after_restart(server: &Server, acked: &[String]) {
    let alerts = server.get("/api/v1/alerts?limit=10000")["alerts"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        alerts.len() < 10_000,
        "raise the limit: the check would miss alerts"
    );
    let stored: HashMap<&str, &Value> = alerts
        .iter()
        .map(|a| (a["fingerprint"].as_str().unwrap(), a))
        .collect();
    let incidents: Vec<String> = server.get("/api/v1/incidents?state=all")["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ref"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|fp| !stored.contains_key(fp.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged alerts are missing after the restart, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    // Nothing half-written either: every stored alert, acknowledged or caught in flight by the
    // kill, is firing, attached to an incident that exists, and on that incident's timeline.
    let mut timelines: HashMap<String, Vec<String>> = HashMap::new();
    for i in &incidents {
        let t = server.get(&format!("/api/v1/incidents/{i}"))["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["text"].as_str().unwrap().to_string())
            .collect();
        timelines.insert(i.clone(), t);
    }
    for a in &alerts {
        let fp = a["fingerprint"].as_str().unwrap();
        assert_eq!(a["status"], "firing", "{a}");
        assert_eq!(a["source"], "alertmanager", "{a}");
        let r = a["incident"]
            .as_str()
            .unwrap_or_else(|| panic!("stored alert {fp} has no incident: {a}"));
        let timeline = timelines
            .get(r)
            .unwrap_or_else(|| panic!("alert {fp} points at {r}, which does not exist"));
        let event = format!("alert firing: crash test alert {fp} (instance={fp})");
        assert!(
            timeline.iter().filter(|t| **t == event).count() == 1,
            "{r}'s timeline does not have exactly one {event:?}"
        );
    }
    eprintln!(
        "after restart: all {} acknowledged alerts stored ({} stored in total: a request in flight \
         at the kill may be committed without its answer), {} incidents",
        acked.len(),
        alerts.len(),
        incidents.len()
    );
    // Four alert names → four groups → four incidents, however the burst raced.
    assert_eq!(incidents.len(), 4, "{incidents:?}");
    let open = server.get("/api/v1/incidents?state=open")["incidents"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(open, 4);
}

fn crash_and_restart(dir: &Path, db: Option<&str>) {
    write_config(dir);
    let mut acked = Vec::new();
    for round in 1..=ROUNDS {
        let server = Server::start(dir, db);
        acked.extend(burst_and_kill(server, round));
        let server = Server::start(dir, db);
        check_after_restart(&server, &acked);
        server.kill_9();
    }
    // The audit log's hash chain survived the kills.
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

#[test]
fn kill_9_mid_burst_loses_no_acknowledged_alert_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crash_and_restart(dir.path(), None);
}

#[test]
fn kill_9_mid_burst_loses_no_acknowledged_alert_postgres() {
    let Some(server_url) =
        testkit::postgres_url("kill_9_mid_burst_loses_no_acknowledged_alert_postgres")
    else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg = rt
        .block_on(PostgresTestDb::create(&server_url))
        .expect("creating a PostgreSQL test database");
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url().to_string();
    let result = std::panic::catch_unwind(|| crash_and_restart(dir.path(), Some(&url)));
    rt.block_on(pg.drop_db());
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
