//! The README's alert-intake recipes work as pasted: every `sh` block marked `<!-- recipe: NAME -->`
//! runs with bash against the real `spotter serve` on the default configuration, in a fresh
//! folder with no environment, reading the credentials `serve` generated into `data/sources/`.
//! Each must exit 0 (the recipes use `curl --fail-with-body`, so that means a 2xx) and open its
//! incident.
//!
//! The only change made to a recipe is the port: the server listens on a free one, not 8080,
//! so tests running at once do not collide.
//!
//! Also here, as the README describes it: a generated credential is shown once on standard
//! output, never in the log, and later starts only say where it was read from.

mod common;

use common::binary::{client, spotter};
use serde_json::Value;
use std::io::Read;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const README: &str = include_str!("../README.md");

/// `(name, script)` of every marked block, in README order.
fn recipes(readme: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- recipe:")
            .and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert_eq!(
            fence.trim(),
            "```sh",
            "recipe {name}: the marker must stand right before a ```sh block"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        out.push((name.trim().to_string(), body.join("\n")));
    }
    out
}

struct Server {
    child: Child,
    addr: String,
    token: String,
    /// Every log line (stderr) so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = spotter(dir, None)
            .arg("serve")
            .env("SPOTTER_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                log2.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("spotter says where it listens");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !client()
            .get(format!("http://{addr}/readyz"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "/readyz never answered 200");
            std::thread::sleep(Duration::from_millis(20));
        }
        let token = std::fs::read_to_string(dir.join("data/api-token")).unwrap();
        Server {
            child,
            addr,
            token,
            log,
        }
    }

    /// Stops the server (SIGKILL is enough: nothing is pending) and returns its stdout and log.
    fn stop(mut self) -> (String, Vec<String>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        // The stderr reader finishes once the pipe closes.
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().unwrap().clone();
        (stdout, log)
    }

    fn incidents(&self) -> Vec<Value> {
        let r = client()
            .get(format!("http://{}/api/v1/incidents?state=all", self.addr))
            .bearer_auth(self.token.trim())
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().unwrap()["incidents"]
            .as_array()
            .unwrap()
            .clone()
    }
}

#[test]
fn every_intake_recipe_in_the_readme_works_on_the_default_config() {
    let found = recipes(README);
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["alertmanager", "grafana", "pagerduty", "generic"],
        "the README's marked recipes"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    // Each recipe's alert routes to its own incident (different components and names).
    let titles = [
        "MySQL is not answering",
        "API p99 latency above 2 s",
        "web-1 is down",
        "Nightly backup failed",
    ];
    for ((name, script), title) in found.iter().zip(titles) {
        assert!(
            script.contains("127.0.0.1:8080"),
            "recipe {name} names the default address"
        );
        let script = script.replace("127.0.0.1:8080", &server.addr);
        let before = server.incidents().len();
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "recipe {name} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("recipe {name} answered {stdout:?}: {e}"));
        let ok = answer["status"] == "ok" || answer["status"] == "success";
        assert!(ok, "recipe {name}: {answer}");
        let after = server.incidents();
        assert_eq!(after.len(), before + 1, "recipe {name} opens one incident");
        assert!(
            after.iter().any(|i| i["title"] == title),
            "recipe {name}: no incident titled {title:?} in {after:#?}"
        );
    }
}

#[test]
fn a_generated_credential_is_shown_once_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let sources = ["alertmanager", "grafana", "uptime", "backup-jobs"];
    let (stdout, log) = Server::start(dir.path()).stop();
    let secrets: Vec<String> = sources
        .iter()
        .map(|id| {
            std::fs::read_to_string(dir.path().join(format!("data/sources/{id}.secret"))).unwrap()
        })
        .collect();
    for (id, secret) in sources.iter().zip(&secrets) {
        assert_eq!(
            stdout.matches(secret.as_str()).count(),
            1,
            "{id}'s value, once:\n{stdout}"
        );
        assert!(
            !log.iter().any(|l| l.contains(secret.as_str())),
            "{id}'s value reached the log"
        );
        assert!(
            log.iter().any(
                |l| l.contains(&format!("alert source `{id}`")) && l.contains("generated into")
            ),
            "{log:#?}"
        );
    }
    let file = std::fs::canonicalize(dir.path().join("data/sources/alertmanager.secret")).unwrap();
    assert!(
        stdout.contains(&format!("credentials_file: {}", file.display())),
        "the Alertmanager snippet points at the file:\n{stdout}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The next start reads them back: nothing shown, the log says where from.
    let (stdout, log) = Server::start(dir.path()).stop();
    for (id, secret) in sources.iter().zip(&secrets) {
        assert!(
            !stdout.contains(secret.as_str()),
            "{id} shown again:\n{stdout}"
        );
        assert!(!log.iter().any(|l| l.contains(secret.as_str())));
        assert!(
            log.iter()
                .any(|l| l.contains(&format!("alert source `{id}`")) && l.contains("read from")),
            "{log:#?}"
        );
        let again = std::fs::read_to_string(dir.path().join(format!("data/sources/{id}.secret")));
        assert_eq!(&again.unwrap(), secret, "{id} kept its credential");
    }
}

#[test]
fn the_recipe_extractor_reads_marked_blocks_only() {
    let text = "```sh\nnot this\n```\n<!-- recipe: one -->\n```sh\na\nb\n```\ntext\n";
    assert_eq!(recipes(text), [("one".to_string(), "a\nb".to_string())]);
}
