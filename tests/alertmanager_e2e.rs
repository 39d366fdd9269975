//! End to end with the real Prometheus Alertmanager (`apt-get install prometheus-alertmanager`):
//! the `spotter` binary and Alertmanager processes talking over loopback, exactly as a user wires
//! them up.
//!
//! - Alertmanager 1 fires MySQLDown → one incident, level 3, component database.
//! - Alertmanager 2 (same config, not clustered: an HA pair that does not gossip) fires the same
//!   alert → still one incident, and its timeline does not grow.
//! - Both resolve it (`endsAt` in the past) → the incident enters post-recovery monitoring.
//! - Alertmanager 3, configured with a wrong token → Spotter answers 401, Alertmanager logs the
//!   failed notification, and Spotter logs and counts the refusal (without the token).
//!
//! Alertmanagers 1 and 2 run the README's `examples/alertmanager.yml` as shipped, but for the
//! URL and shorter timings: its `credentials_file` reads the token Spotter generated on first
//! start into `data/sources/alertmanager.secret`.
//!
//! Without the Alertmanager binary the test says SKIPPED; under `SPOTTER_TEST_STRICT=1` (CI) that
//! is a failure. `SPOTTER_TEST_ALERTMANAGER` may name the binary.

mod common;

use common::binary::{client, spotter};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any one expected change may take. Alertmanager notifies after group_wait (1 s) and
/// then every group_interval (1 s), so this is generous.
const DEADLINE: Duration = Duration::from_secs(20);

type Log = Arc<Mutex<Vec<String>>>;

/// A child process killed (and reaped) on drop; its stderr is kept for assertions and printed
/// when the test fails.
struct Proc {
    name: String,
    child: Child,
    log: Log,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, on_line: impl Fn(&str) + Send + 'static) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let log: Log = Arc::default();
        let stderr = child.stderr.take().unwrap();
        let (log2, name2) = (log.clone(), name.to_string());
        // Keep draining stderr so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                on_line(&line);
                if std::env::var("SPOTTER_TEST_LOG").is_ok() {
                    eprintln!("[{name2}] {line}");
                }
                log2.lock().unwrap().push(line);
            }
        });
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let lines = self.lines();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("--- last stderr lines of {} ---", self.name);
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

/// Polls `f` every 50 ms until it returns `Some`, or fails naming `what`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Alertmanager binary, or `None` (after saying so) when the test should skip.
fn alertmanager_binary() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("SPOTTER_TEST_ALERTMANAGER") {
        Some(p) => vec![PathBuf::from(p)],
        None => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .flat_map(|d| [d.join("prometheus-alertmanager"), d.join("alertmanager")])
                .chain([PathBuf::from("/usr/bin/prometheus-alertmanager")])
                .collect()
        }
    };
    if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
        return Some(found);
    }
    let msg = "the Alertmanager binary was not found (apt-get install prometheus-alertmanager, \
               or set SPOTTER_TEST_ALERTMANAGER)";
    if std::env::var("SPOTTER_TEST_STRICT").as_deref() == Ok("1") {
        panic!("{msg}, and SPOTTER_TEST_STRICT=1 forbids skipping");
    }
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (Alertmanager) real_alertmanager_end_to_end: {msg}"
    );
    None
}

/// The real `spotter serve`, on a free port, in `dir`.
struct Spotter {
    proc: Proc,
    url: String,
    api_token: String,
}

impl Spotter {
    /// Started with no source variables: the alertmanager source's token is generated.
    fn start(dir: &Path) -> Spotter {
        let mut cmd = spotter(dir, None);
        cmd.arg("serve").env("SPOTTER_LISTEN", "127.0.0.1:0");
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let proc = Proc::spawn("spotter", cmd, move |line| {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.lock().unwrap().send(rest.trim().to_string());
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("spotter says where it listens");
        let c = client();
        wait_for("spotter's /readyz to answer 200", || {
            c.get(format!("{url}/readyz"))
                .send()
                .ok()
                .filter(|r| r.status() == 200)
        });
        let api_token = std::fs::read_to_string(dir.join("data/api-token"))
            .expect("spotter generated data/api-token")
            .trim()
            .to_string();
        Spotter {
            proc,
            url,
            api_token,
        }
    }

    fn get(&self, path: &str) -> Value {
        let r = client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.api_token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().unwrap()
    }

    fn incidents(&self) -> Vec<Value> {
        self.get("/api/v1/incidents?state=all")["incidents"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn incident(&self, reference: &str) -> Value {
        self.get(&format!("/api/v1/incidents/{reference}"))
    }

    /// The incident's timeline, without the entries of the emergency response the declaration
    /// started (`run_*`): that run goes on at its own pace beside what this test watches.
    fn timeline(&self, reference: &str) -> Vec<Value> {
        self.incident(reference)["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| !e["kind"].as_str().unwrap_or("").starts_with("run_"))
            .cloned()
            .collect()
    }

    /// One counter or histogram count from `/metrics` (0 when absent).
    fn metric(&self, series: &str) -> f64 {
        metric(&format!("{}/metrics", self.url), series)
    }
}

/// The value of the sample line starting with `series ` at `url`, 0 when absent.
fn metric(url: &str, series: &str) -> f64 {
    let Ok(r) = client().get(url).send() else {
        return 0.0;
    };
    r.text()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const EXAMPLE: &str = include_str!("../examples/alertmanager.yml");
const EXAMPLE_CREDENTIALS: &str = "credentials_file: ../data/sources/alertmanager.secret";

/// `examples/alertmanager.yml` pointed at `spotter_url`, notifying within a second.
fn example_config(spotter_url: &str) -> String {
    let mut config = EXAMPLE.to_string();
    for (from, to) in [
        ("http://127.0.0.1:8080", spotter_url),
        ("group_wait: 30s", "group_wait: 1s"),
        ("group_interval: 5m", "group_interval: 1s"),
        ("repeat_interval: 4h", "repeat_interval: 24h"),
        (EXAMPLE_CREDENTIALS, EXAMPLE_CREDENTIALS),
    ] {
        assert!(
            config.contains(from),
            "examples/alertmanager.yml no longer says {from:?}"
        );
        config = config.replacen(from, to, 1);
    }
    config
}

/// An Alertmanager whose only receiver is Spotter's webhook, run with `config` from its own
/// folder under `dir` (beside Spotter's `data/`, as the example expects).
struct Alertmanager {
    proc: Proc,
    url: String,
}

impl Alertmanager {
    fn start(bin: &Path, name: &str, dir: &Path, config_text: &str) -> Alertmanager {
        let home = dir.join(name);
        std::fs::create_dir_all(home.join("data")).unwrap();
        let config = home.join("alertmanager.yml");
        std::fs::write(&config, config_text).unwrap();
        // The port is free when picked; should another process take it in between, try again.
        for attempt in 0.. {
            let url = format!("http://127.0.0.1:{}", free_port());
            let mut cmd = Command::new(bin);
            cmd.current_dir(&home).args([
                format!("--config.file={}", config.display()),
                format!("--storage.path={}", home.join("data").display()),
                format!("--web.listen-address={}", &url["http://".len()..]),
                // Empty: no clustering, so two instances do not deduplicate for each other.
                "--cluster.listen-address=".to_string(),
                "--log.level=debug".to_string(),
            ]);
            let mut proc = Proc::spawn(name, cmd, |_| {});
            let c = client();
            let deadline = Instant::now() + DEADLINE;
            loop {
                if c.get(format!("{url}/-/ready"))
                    .send()
                    .is_ok_and(|r| r.status() == 200)
                {
                    return Alertmanager { proc, url };
                }
                if let Some(status) = proc.exited() {
                    let lines = proc.lines();
                    let port_taken = lines.iter().any(|l| l.contains("address already in use"));
                    assert!(
                        port_taken && attempt < 5,
                        "{name} exited with {status}:\n{}",
                        lines.join("\n")
                    );
                    break;
                }
                assert!(Instant::now() < deadline, "{name} never became ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        unreachable!()
    }

    /// `POST /api/v2/alerts`, the way Prometheus hands alerts to Alertmanager.
    fn post_alerts(&self, alerts: &Value) {
        let r = client()
            .post(format!("{}/api/v2/alerts", self.url))
            .json(alerts)
            .send()
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{}: POST /api/v2/alerts: {}",
            self.proc.name,
            r.text().unwrap_or_default()
        );
    }

    /// Webhook notifications this Alertmanager attempted and failed.
    fn webhook_metric(&self, name: &str) -> f64 {
        metric(
            &format!("{}/metrics", self.url),
            &format!("{name}{{integration=\"webhook\"}}"),
        )
    }
}

fn mysql_down(starts_at: &str, ends_at: Option<&str>) -> Value {
    let mut alert = json!({
        "labels": {
            "alertname": "MySQLDown",
            "severity": "critical",
            "service": "database",
            "instance": "db-1"
        },
        "annotations": {"summary": "MySQL is not answering on db-1"},
        "startsAt": starts_at,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=mysql_up+%3D%3D+0"
    });
    if let Some(e) = ends_at {
        alert["endsAt"] = e.into();
    }
    json!([alert])
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn kinds(timeline: &[Value], kind: &str) -> usize {
    timeline.iter().filter(|e| e["kind"] == kind).count()
}

const RECEIVED: &str = "spotter_alerts_received_total{source=\"alertmanager\",outcome=";

#[test]
fn real_alertmanager_end_to_end() {
    let Some(am_bin) = alertmanager_binary() else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let spotter = Spotter::start(dir.path());
    let token = std::fs::read_to_string(dir.path().join("data/sources/alertmanager.secret"))
        .expect("spotter generated the alertmanager source's token");
    let changed = || spotter.metric(&format!("{RECEIVED}\"changed\"}}"));
    let duplicates = || spotter.metric(&format!("{RECEIVED}\"duplicate\"}}"));
    let unauthorized = || {
        spotter.metric(
            "spotter_http_request_duration_seconds_count{method=\"POST\",route=\"/webhooks/alertmanager\",status=\"401\"}",
        )
    };

    // Three Alertmanagers: two running the example (an HA pair that does not gossip), one with a
    // wrong token.
    let example = example_config(&spotter.url);
    let am1 = Alertmanager::start(&am_bin, "alertmanager-1", dir.path(), &example);
    let am2 = Alertmanager::start(&am_bin, "alertmanager-2", dir.path(), &example);
    let wrong = format!("{}-wrong", token.trim());
    let am3 = Alertmanager::start(
        &am_bin,
        "alertmanager-3",
        dir.path(),
        &example.replacen(EXAMPLE_CREDENTIALS, &format!("credentials: {wrong}"), 1),
    );

    let starts_at = rfc3339(chrono::Utc::now() - chrono::Duration::minutes(2));
    let firing = mysql_down(&starts_at, None);

    // ── Firing through Alertmanager 1: one incident with the routed level. ──────────────────────
    am1.post_alerts(&firing);
    let incidents = wait_for("an incident from Alertmanager 1's notification", || {
        Some(spotter.incidents()).filter(|l| !l.is_empty())
    });
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    let r = inc["ref"].as_str().unwrap().to_string();
    assert_eq!(r, "INC-1");
    assert_eq!(inc["level"], 3, "{inc:#}");
    assert_eq!(inc["level_name"], "Complete System Failure", "{inc:#}");
    assert_eq!(inc["components"], json!(["database"]), "{inc:#}");
    assert_eq!(inc["source"], "alert", "{inc:#}");
    assert_eq!(inc["declared_by"], "source:alertmanager", "{inc:#}");
    assert_eq!(inc["title"], "MySQL is not answering on db-1", "{inc:#}");
    let alerts = spotter.get("/api/v1/alerts")["alerts"].clone();
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{alerts:#}");
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["incident"], r.as_str());
    // The counter moves just after the commit that made the incident visible.
    wait_for("the changed-alerts counter", || {
        (changed() >= 1.0).then_some(())
    });
    assert_eq!(changed(), 1.0);
    let timeline = spotter.timeline(&r);
    assert_eq!(kinds(&timeline, "declared"), 1, "{timeline:#?}");
    assert_eq!(kinds(&timeline, "alert"), 1, "{timeline:#?}");

    // ── The same alert through Alertmanager 2: a duplicate, no noise. ───────────────────────────
    am2.post_alerts(&firing);
    wait_for(
        "Spotter to take Alertmanager 2's notification as a duplicate",
        || (duplicates() >= 1.0).then_some(()),
    );
    assert_eq!(
        am2.webhook_metric("alertmanager_notifications_failed_total"),
        0.0
    );
    assert!(am2.webhook_metric("alertmanager_notifications_total") >= 1.0);
    assert_eq!(changed(), 1.0, "the duplicate changed something");
    let incidents = spotter.incidents();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(
        spotter.timeline(&r),
        timeline,
        "the duplicate notification added timeline noise"
    );

    // ── Resolved (endsAt in the past) through both: post-recovery monitoring. ───────────────────
    let ends_at = rfc3339(chrono::Utc::now() - chrono::Duration::seconds(1));
    let resolved = mysql_down(&starts_at, Some(&ends_at));
    am1.post_alerts(&resolved);
    am2.post_alerts(&resolved);
    let inc = wait_for("the incident to enter post-recovery monitoring", || {
        Some(spotter.incident(&r)).filter(|i| i["phase"] == "post_recovery_monitoring")
    });
    // Both resolved notifications arrive: one changes the alert, the other is a duplicate.
    wait_for("both resolved notifications", || {
        (changed() + duplicates() >= 4.0).then_some(())
    });
    assert_eq!((changed(), duplicates()), (2.0, 2.0));
    assert_eq!(inc["state"], "declared", "{inc:#}");
    let timeline = spotter.timeline(&r);
    let phase: Vec<&Value> = timeline
        .iter()
        .filter(|e| e["kind"] == "phase_changed")
        .collect();
    assert_eq!(phase.len(), 1, "{timeline:#?}");
    let text = phase[0]["text"].as_str().unwrap();
    assert!(
        text.contains("all alerts of INC-1 resolved: post-recovery monitoring"),
        "{text}"
    );
    let resolved_events = timeline
        .iter()
        .filter(|e| {
            e["kind"] == "alert" && e["text"].as_str().unwrap().starts_with("alert resolved")
        })
        .count();
    assert_eq!(resolved_events, 1, "{timeline:#?}");
    assert_eq!(spotter.incidents().len(), 1);
    let alerts = spotter.get("/api/v1/alerts")["alerts"].clone();
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{alerts:#}");
    assert_eq!(alerts[0]["status"], "resolved");

    // ── A wrong token: 401, and Alertmanager logs the failed notification. ──────────────────────
    am3.post_alerts(&firing);
    let failure = wait_for("Alertmanager 3 to log the failed notification", || {
        am3.proc
            .lines()
            .into_iter()
            .find(|l| l.contains("Notify for alerts failed") && l.contains("401"))
    });
    assert!(
        failure.contains("unexpected status code 401"),
        "Alertmanager 3 logged: {failure}"
    );
    assert!(unauthorized() >= 1.0);
    assert!(am3.webhook_metric("alertmanager_notifications_failed_total") >= 1.0);
    // Stopped now: it would keep retrying.
    drop(am3);
    // Spotter left a trace: counted by source and reason, logged at WARN with the client, and
    // neither the wrong token nor the right one in its log.
    assert!(
        spotter.metric(
            "spotter_webhook_rejections_total{source=\"alertmanager\",reason=\"bad_credential\"}"
        ) >= 1.0
    );
    let log = spotter.proc.lines();
    let refusal = log
        .iter()
        .find(|l| l.contains("alert intake refused a request"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{}", log.join("\n")));
    assert!(
        refusal.contains("WARN")
            && refusal.contains("source=\"alertmanager\"")
            && refusal.contains("reason=\"bad_credential\"")
            && refusal.contains("client=127.0.0.1"),
        "{refusal}"
    );
    for secret in [wrong.as_str(), token.trim()] {
        assert!(
            !log.iter().any(|l| l.contains(secret)),
            "a credential reached the log"
        );
    }
    // Nothing of it reached the store.
    assert_eq!(spotter.incidents().len(), 1);
    assert_eq!(spotter.timeline(&r), timeline);
    assert_eq!(
        spotter.get("/api/v1/alerts")["alerts"][0]["status"],
        "resolved"
    );
    assert_eq!((changed(), duplicates()), (2.0, 2.0));

    // Nobody crashed along the way.
    let mut spotter = spotter;
    assert!(spotter.proc.exited().is_none(), "spotter exited");
    eprintln!(
        "real Alertmanager end to end took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
