//! The runbook runner against real processes and real services: exec steps (argv, env, output,
//! exit codes) in [`exec`], their process groups on timeout, cancel and exit in [`groups`],
//! HTTP steps against a local receiver in [`http`], probes against the local PostgreSQL,
//! MariaDB and Redis and against listeners that refuse or never answer in [`probe`].

mod exec;
mod groups;
mod http;
mod probe;

use spotter_core::runbook::{Action, Executor, Invocation, OutputSink, Secrets, StepOutcome};
use spotter_webhooks::runner::Runner;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Records every line, in order.
#[derive(Default)]
pub struct Rec(Mutex<Vec<String>>);

impl OutputSink for Rec {
    fn line(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
}

impl Rec {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A runner whose environment is exactly `vars`.
pub fn runner(vars: &[(&str, &str)]) -> Runner {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Runner::new(Arc::new(move |k: &str| {
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }))
}

/// An exec step of `argv` in `workdir`, nothing passed through, 10 s budget.
pub fn exec(argv: &[&str], workdir: &Path) -> Invocation {
    Invocation {
        action: Action::Exec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            workdir: workdir.to_path_buf(),
            pass_env: Vec::new(),
            set_env: Vec::new(),
        },
        timeout: Duration::from_secs(10),
        secrets: Secrets::default(),
    }
}

/// Runs `step` to its end: the outcome and the lines.
pub async fn run(runner: &Runner, step: &Invocation) -> (StepOutcome, Vec<String>) {
    let rec = Rec::default();
    let outcome = runner.run(step, &rec, CancellationToken::new()).await;
    (outcome, rec.lines())
}

/// Whether `pid` is dead: no `/proc/<pid>`, or a zombie (dead, waiting for a parent that may
/// never reap it; in this container pid 1 is not an init that reaps orphans).
pub fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S …": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Waits up to `within` for `pid` to be dead.
pub async fn dies_within(pid: u32, within: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if dead(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dead(pid)
}

/// The pid a step wrote to `dir/name`, waiting up to 5 s for it to appear.
pub async fn pid_file(dir: &Path, name: &str) -> u32 {
    let path = dir.join(name);
    for _ in 0..250 {
        if let Ok(s) = std::fs::read_to_string(&path) {
            if let Ok(pid) = s.trim().parse() {
                return pid;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never held a pid", path.display());
}
