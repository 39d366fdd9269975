//! A trace of every refused webhook: counted in `spotter_webhook_rejections_total{source,reason}`
//! and logged at WARN with the source, the reason and the client address, so connecting a sender
//! is not guesswork. Logging is rate-limited per source and reason (one line per
//! [`LOG_EVERY`], carrying the count of the refusals it stood for), so a flood cannot flood the
//! log. Nothing logged here contains a credential: messages name headers and forms, never values.

use super::error::{IntakeError, Reason};
use spotter_core::metrics::Metrics;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one log line per source and reason this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

struct Window {
    logged_at: Instant,
    suppressed: u64,
}

/// Keyed by (source label, reason): the labels are configured ids or `unknown`, and the reasons a
/// fixed set, so the map is bounded.
#[derive(Default)]
pub struct RejectionLog {
    windows: Mutex<HashMap<(String, Reason), Window>>,
}

impl RejectionLog {
    /// Counts and (rate-limited) logs one refusal. `source` is a configured id or `unknown`.
    pub fn note(&self, metrics: &Metrics, source: &str, client: IpAddr, error: &IntakeError) {
        let Some(reason) = error.reason() else { return };
        metrics.webhook_rejection(source, reason.as_str());
        let Some(suppressed) = self.due(source, reason, Instant::now()) else {
            return;
        };
        // The message may quote what the client sent (an unknown source id): escaped, so it
        // cannot forge log lines.
        let message = error.message();
        tracing::warn!(
            source,
            reason = reason.as_str(),
            client = %client,
            status = error.status().as_u16(),
            suppressed_since_last = suppressed,
            "alert intake refused a request: {}",
            message.escape_debug()
        );
    }

    /// Whether a refusal of `source` for `reason` at `now` gets a log line: `Some(n)` with the
    /// number of refusals left unlogged since the last line, or `None` within [`LOG_EVERY`].
    fn due(&self, source: &str, reason: Reason, now: Instant) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get_mut(&(source.to_string(), reason)) {
            Some(w) if now.saturating_duration_since(w.logged_at) < LOG_EVERY => {
                w.suppressed += 1;
                None
            }
            Some(w) => {
                w.logged_at = now;
                Some(std::mem::take(&mut w.suppressed))
            }
            None => {
                windows.insert(
                    (source.to_string(), reason),
                    Window {
                        logged_at: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_source_and_reason_every_ten_seconds_with_the_count_it_stands_for() {
        let log = RejectionLog::default();
        let t = Instant::now();
        assert_eq!(log.due("alertmanager", Reason::BadCredential, t), Some(0));
        for _ in 0..5 {
            assert_eq!(log.due("alertmanager", Reason::BadCredential, t), None);
        }
        // Another reason or source has its own window.
        assert_eq!(log.due("alertmanager", Reason::TooLarge, t), Some(0));
        assert_eq!(log.due("grafana", Reason::BadCredential, t), Some(0));
        assert_eq!(
            log.due("alertmanager", Reason::BadCredential, t + LOG_EVERY),
            Some(5)
        );
        assert_eq!(
            log.due("alertmanager", Reason::BadCredential, t + LOG_EVERY),
            None
        );
    }
}
