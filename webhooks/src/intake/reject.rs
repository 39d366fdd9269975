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
        let now = Instant::now();
        let suppressed = {
            let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
            match windows.get_mut(&(source.to_string(), reason)) {
                Some(w) if now.saturating_duration_since(w.logged_at) < LOG_EVERY => {
                    w.suppressed += 1;
                    return;
                }
                Some(w) => {
                    w.logged_at = now;
                    std::mem::take(&mut w.suppressed)
                }
                None => {
                    windows.insert(
                        (source.to_string(), reason),
                        Window {
                            logged_at: now,
                            suppressed: 0,
                        },
                    );
                    0
                }
            }
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
}
