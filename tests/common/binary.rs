//! Launching the real `spotter` binary, as a user would.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_spotter");

/// Spotter's own variables: removed, so a test sees only what it sets itself. With the source
/// variables unset `serve` generates each source's credential into `data/sources/<id>.secret`;
/// with `RUST_LOG` unset it logs its "listening on" line.
pub const SPOTTER_VARS: &[&str] = &[
    "SPOTTER_CONFIG",
    "SPOTTER_DATABASE_URL",
    "SPOTTER_LISTEN",
    "SPOTTER_API_TOKEN",
    "SPOTTER_USER",
    "SPOTTER_TOKEN",
    "SPOTTER_AUDIT_KEY",
    "SPOTTER_ALERTMANAGER_TOKEN",
    "SPOTTER_GRAFANA_TOKEN",
    "SPOTTER_PAGERDUTY_ROUTING_KEY",
    "SPOTTER_BACKUP_JOBS_SECRET",
    "RUST_LOG",
];

/// `spotter` run in `dir` with a clean environment, on `db` when given (else the embedded
/// SQLite default under `dir/data`).
pub fn spotter(dir: &Path, db: Option<&str>) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir);
    for var in SPOTTER_VARS {
        c.env_remove(var);
    }
    if let Some(db) = db {
        c.env("SPOTTER_DATABASE_URL", db);
    }
    c
}

/// A blocking client for talking to a spawned server (never through a proxy).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A `spotter serve` process whose stdout and stderr are captured whole (into files under its
/// folder), for tests that read what it logged.
pub struct Served {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`, from its "listening on" line.
    pub url: String,
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
}

impl Served {
    /// Starts `command` (a `spotter(…)` with `serve` and its environment) on a free port and
    /// waits until `/readyz` answers 200.
    pub fn start(mut command: Command, logs_dir: &Path) -> Served {
        let stdout = logs_dir.join("serve.stdout");
        let stderr = logs_dir.join("serve.stderr");
        let child = command
            .env("SPOTTER_LISTEN", "127.0.0.1:0")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut served = Served {
            child,
            url: String::new(),
            stdout,
            stderr,
        };
        let line = served.wait_for_log("listening on", Duration::from_secs(60));
        served.url = line
            .split("listening on ")
            .nth(1)
            .unwrap()
            .trim()
            .to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client().get(format!("{}/readyz", served.url)).send() {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/readyz never answered 200"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        served
    }

    /// Everything written to stdout and stderr so far.
    pub fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("{}{}", read(&self.stdout), read(&self.stderr))
    }

    /// Waits until a line containing `needle` was logged; returns that line.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(line) = self.logs().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "spotter exited ({status}) before logging {needle:?}:\n{}",
                    self.logs()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "spotter did not log {needle:?} within {timeout:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait for a graceful exit; returns everything it wrote.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "spotter exited with {status} after SIGTERM"
                );
                return self.logs();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "spotter did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local port nobody listens on (bound, read, closed).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
