//! What the CLI tests share: `spotter serve` as a child process, and running a command with
//! its stdin, environment and outputs.

use crate::common;
use crate::common::binary::spotter;
use crate::common::Backend;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    /// Starts `spotter serve` on a free port and waits until /readyz answers 200.
    pub fn start(dir: &Path, db: Option<&str>) -> Server {
        let mut child = spotter(dir, db)
            .arg("serve")
            .env("SPOTTER_LISTEN", "127.0.0.1:0")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                if std::env::var("SPOTTER_TEST_LOG").is_ok() {
                    eprintln!("[spotter] {line}");
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server says where it listens");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::blocking::get(format!("{url}/readyz")) {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "/readyz never answered 200");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, url }
    }

    /// Waits until no runbook run is active (the emergency response every declaration starts
    /// runs by itself), so what the test counts afterwards does not depend on its timing.
    /// Returns every run, ended.
    pub fn settle(&self, dir: &Path) -> Vec<Value> {
        let token = std::fs::read_to_string(dir.join("data/api-token")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let get = |path: &str| -> Value {
            reqwest::blocking::Client::new()
                .get(format!("{}{path}", self.url))
                .bearer_auth(token.trim())
                .send()
                .unwrap()
                .json()
                .unwrap()
        };
        loop {
            let runs = get("/api/v1/runs?state=active");
            if runs["runs"].as_array().is_some_and(|r| r.is_empty()) {
                return get("/api/v1/runs")["runs"].as_array().unwrap().clone();
            }
            assert!(Instant::now() < deadline, "runs still active: {runs}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then wait: a graceful stop exits 0.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "spotter exited with {status} after SIGTERM"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "spotter did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn incidents(&self, dir: &Path) -> Vec<Value> {
        let token = std::fs::read_to_string(dir.join("data/api-token")).unwrap();
        let v: Value = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/incidents", self.url))
            .bearer_auth(token.trim())
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["incidents"].as_array().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// `printf 'LINES' | spotter chat --as USER --url URL` → (exit ok, stdout).
pub fn chat(dir: &Path, url: &str, user: &str, lines: &str) -> (bool, String) {
    let mut child = spotter(dir, None)
        .args(["chat", "--as", user, "--url", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.stderr.is_empty() || out.status.success(),
        "chat stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), stdout)
}

pub async fn with_backend(
    backend: Backend,
    test: &str,
    f: impl FnOnce(&Path, Option<&str>) + Send + 'static,
) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, pg)) = common::database(backend, test, dir.path()).await else {
        return;
    };
    let db = match backend {
        Backend::Sqlite => None, // the embedded default, as a new user runs it
        Backend::Postgres => Some(url),
    };
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || f(&path, db.as_deref()))
        .await
        .unwrap();
    if let Some(pg) = pg {
        pg.drop_db().await;
    }
}

/// `spotter ARGS` with `stdin` → (exit ok, stdout, stderr).
pub fn run(dir: &Path, db: Option<&str>, args: &[&str], stdin: &str) -> (bool, String, String) {
    run_with(dir, db, args, &[], stdin)
}

pub fn server_port(dir: &tempfile::TempDir) -> String {
    let url = std::fs::read_to_string(dir.path().join("data/server-url")).unwrap();
    url.trim().rsplit(':').next().unwrap().to_string()
}

/// `spotter token create --person PERSON` → the token it printed.
pub fn create_token(dir: &Path, db: Option<&str>, person: &str) -> String {
    let (ok, out, err) = run(dir, db, &["token", "create", "--person", person], "");
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().count(),
        1,
        "stdout holds the token alone: {out}"
    );
    out.trim().to_string()
}

/// `spotter ARGS` with extra environment variables and `stdin` → (exit ok, stdout, stderr).
pub fn run_with(
    dir: &Path,
    db: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> (bool, String, String) {
    let mut cmd = spotter(dir, db);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
