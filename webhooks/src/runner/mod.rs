//! The runbook runner: the outbound adapter of core's executor port
//! ([`spotter_core::runbook::Executor`]). Core decides *what* runs (the plan, the approvals, the
//! redaction of output); this module only runs it, and reports how it ended.
//!
//! - [`exec`]: a program with its exact argv (never a shell), a cleared environment, its own
//!   process group that is killed whole on timeout, cancel and exit.
//! - [`http`]: one HTTP request, signed like Spotter's outbound webhooks when asked.
//! - [`probe`]: the system status checks (HTTP, TCP, MySQL/MariaDB, PostgreSQL, Redis).
//!
//! Output reaches the [`OutputSink`] as whole lines (see [`Lines`]). Secrets reach a step only
//! where the plan names them (an exec step's env, an HTTP step's signing key, a probe's URL or
//! password); none is ever written to a detail or an output line by this module.

pub mod exec;
pub mod http;
pub mod probe;

use async_trait::async_trait;
use spotter_core::runbook::{
    Action, Executor, Invocation, OutputSink, ProbeResult, ProbeSpec, StepOutcome,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the runner reads Spotter's own environment: pass-through variables, `url_env`,
/// `password_env`, `hmac_secret_env`. A function rather than `std::env::var`, so tests (and the
/// lead's wiring) decide what a step may see.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Runs runbook steps and probes for real.
pub struct Runner {
    env: EnvLookup,
    /// Built on first use: an HTTP client cannot be built without a TLS backend, and a runner
    /// without HTTP steps should not fail for that. The error is kept so each step names it.
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner reading Spotter's environment through `env`.
    pub fn new(env: EnvLookup) -> Runner {
        Runner {
            env,
            client: std::sync::OnceLock::new(),
        }
    }

    /// The value of `name` in Spotter's environment.
    fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// A secret from the environment: trimmed and non-empty, the rule of every other secret
    /// Spotter reads (see `outbound::EnvSecrets`).
    fn secret_env(&self, name: &str) -> Option<String> {
        self.env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(http::build_client)
            .as_ref()
            .map_err(Clone::clone)
    }
}

#[async_trait]
impl Executor for Runner {
    async fn run(
        &self,
        step: &Invocation,
        out: &dyn OutputSink,
        cancel: CancellationToken,
    ) -> StepOutcome {
        match &step.action {
            Action::Exec { .. } => exec::run(self, step, out, cancel).await,
            Action::Http { .. } => http::run(self, step, out, cancel).await,
            Action::Probe(spec) => probe::run_step(self, spec, step.timeout, out, cancel).await,
        }
    }

    async fn probe(&self, probe: &ProbeSpec, timeout: Duration) -> ProbeResult {
        probe::probe(self, probe, timeout).await.result
    }
}

/// The longest line handed to the sink; longer lines arrive in pieces of this size.
pub const MAX_LINE: usize = 16 * 1024;

/// Turns a byte stream into the sink's lines: split on `\n` (a `\r` before it is dropped), lossy
/// UTF-8, at most [`MAX_LINE`] bytes each (cut at a character boundary when one is near).
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// Feeds `data`, handing every completed line to `out`.
    pub fn push(&mut self, data: &[u8], out: &dyn OutputSink) {
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            self.buf.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            self.split_long(out);
            emit(&self.buf, out);
            self.buf.clear();
        }
        self.buf.extend_from_slice(rest);
        self.split_long(out);
    }

    /// Hands over what is left (a last line without its newline).
    pub fn finish(&mut self, out: &dyn OutputSink) {
        if !self.buf.is_empty() {
            emit(&self.buf, out);
            self.buf.clear();
        }
    }

    /// Emits `MAX_LINE` pieces while the pending line is longer than that. A piece ends before
    /// a UTF-8 continuation byte when possible, so a character is not cut in two.
    fn split_long(&mut self, out: &dyn OutputSink) {
        while self.buf.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while cut > MAX_LINE - 4 && self.buf[cut] & 0xC0 == 0x80 {
                cut -= 1;
            }
            if cut == MAX_LINE - 4 {
                cut = MAX_LINE;
            }
            emit(&self.buf[..cut], out);
            self.buf.drain(..cut);
        }
    }
}

fn emit(bytes: &[u8], out: &dyn OutputSink) {
    out.line(&String::from_utf8_lossy(bytes));
}

/// "2 s", "300 ms", "1.5 s": a timeout as details show it.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

/// An OS error as people read it: "No such file or directory", without std's "(os error 2)".
pub fn os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Rec(Mutex<Vec<String>>);
    impl OutputSink for Rec {
        fn line(&self, line: &str) {
            self.0.lock().unwrap().push(line.to_string());
        }
    }

    #[test]
    fn lines_split_on_newlines_in_any_chunking() {
        let rec = Rec::default();
        let mut l = Lines::default();
        for chunk in [&b"on"[..], b"e\r\ntwo\n", b"", b"\nthr", b"ee"] {
            l.push(chunk, &rec);
        }
        l.finish(&rec);
        assert_eq!(*rec.0.lock().unwrap(), ["one", "two", "", "three"]);
    }

    #[test]
    fn a_long_line_arrives_in_pieces_without_cutting_a_character() {
        let rec = Rec::default();
        let mut l = Lines::default();
        let mut line = "a".repeat(MAX_LINE - 1).into_bytes();
        line.extend_from_slice("é".as_bytes()); // straddles the limit
        line.extend_from_slice(&[b'b'; 10]);
        line.push(b'\n');
        l.push(&line, &rec);
        let got = rec.0.lock().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], "a".repeat(MAX_LINE - 1));
        assert_eq!(got[1], format!("é{}", "b".repeat(10)));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human_duration(Duration::from_secs(2)), "2 s");
        assert_eq!(human_duration(Duration::from_millis(300)), "300 ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
    }
}
