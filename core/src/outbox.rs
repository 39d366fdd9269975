//! Delivery of outbound messages.
//!
//! Messages are rows written in the same transaction as the change that caused them (see
//! [`crate::store::Changeset`]), so a crash can delay a message but never lose one. The
//! [`Dispatcher`] leases due rows, hands each to the [`Notifier`] of its channel, and records the
//! outcome: delivered, retried later with exponential backoff (or when the far side says), or
//! given up after `max_attempts`. Leases make it safe to run a dispatcher in every replica.

use crate::clock::Clock;
use crate::config::OutboxConfig;
use crate::error::StoreError;
use crate::metrics::Metrics;
use crate::store::{OutboxMessage, Store};
use async_trait::async_trait;
use chrono::Duration;
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why a delivery failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again (5xx, 429, timeouts); `after` is the far side's own wish (Retry-After).
    #[error("{reason}")]
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Will never succeed (4xx other than 429, an unknown channel).
    #[error("{0}")]
    Permanent(String),
}

/// The outbound port: one implementation per channel (log, Discord, webhook, email).
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    async fn deliver(&self, message: &OutboxMessage) -> Result<(), DeliveryError>;
}

/// Writes messages to the log. The channel every installation has.
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        // Card updates only matter to platforms that show a card; in the log they are noise.
        if m.kind == crate::store::MessageKind::CardUpdate.as_str() {
            tracing::debug!(target: "spotter::outbox", target = %m.target, "{}", m.text);
        } else {
            tracing::info!(target: "spotter::outbox", kind = %m.kind, target = %m.target, "{}", m.text);
        }
        Ok(())
    }
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    config: OutboxConfig,
    notifiers: HashMap<String, Arc<dyn Notifier>>,
    owner: String,
    wakeup: Arc<Notify>,
    /// How long a claimed message is ours before another replica may take it.
    lease: Duration,
    poll: std::time::Duration,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        config: OutboxConfig,
        wakeup: Arc<Notify>,
    ) -> Self {
        Dispatcher {
            store,
            clock,
            metrics,
            config,
            notifiers: HashMap::new(),
            owner: format!("dispatcher-{}", crate::random_token(6)),
            wakeup,
            lease: Duration::seconds(60),
            poll: std::time::Duration::from_millis(500),
        }
    }

    pub fn with_notifier(mut self, channel: &str, n: Arc<dyn Notifier>) -> Self {
        self.notifiers.insert(channel.to_string(), n);
        self
    }

    pub fn with_poll_interval(mut self, poll: std::time::Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Delivers until `shutdown`; a delivery in progress finishes first.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let busy = match self.tick().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox dispatcher cannot reach the store");
                    false
                }
            };
            if busy {
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wakeup.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        tracing::debug!("outbox dispatcher stopped");
    }

    /// One round: claim a batch, deliver each, record outcomes. Returns how many were handled.
    pub async fn tick(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let batch = self
            .store
            .claim_outbox(now, self.lease, &self.owner, 32)
            .await?;
        for m in &batch {
            let result = match self.notifiers.get(&m.channel) {
                Some(n) => n.deliver(m).await,
                None => Err(DeliveryError::Permanent(format!(
                    "no notifier for channel `{}`",
                    m.channel
                ))),
            };
            let now = self.clock.now();
            match result {
                Ok(()) => {
                    self.store.outbox_delivered(m.id, now).await?;
                    self.metrics.outbox_delivered();
                }
                Err(e) => {
                    let attempts = m.attempts + 1;
                    let retry_at = match &e {
                        DeliveryError::Retry { after, .. }
                            if (attempts as u32) < self.config.max_attempts =>
                        {
                            Some(now + after.unwrap_or_else(|| self.backoff(attempts)))
                        }
                        _ => None,
                    };
                    let dead = retry_at.is_none();
                    if dead {
                        tracing::error!(id = m.id, channel = %m.channel, error = %e, "outbox message given up");
                    } else {
                        tracing::warn!(id = m.id, channel = %m.channel, attempts, error = %e, "outbox delivery failed; will retry");
                    }
                    self.metrics.outbox_failure(dead);
                    self.store
                        .outbox_attempt_failed(m.id, &e.to_string(), retry_at)
                        .await?;
                }
            }
        }
        Ok(batch.len())
    }

    /// Exponential backoff with ±20 % jitter, so many failed messages do not retry in lockstep.
    fn backoff(&self, attempts: i32) -> Duration {
        let base = self.config.retry_base.num_milliseconds().max(1) as f64;
        let exp = base * 2f64.powi((attempts - 1).clamp(0, 30));
        let capped = exp.min(self.config.retry_max.num_milliseconds() as f64);
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        Duration::milliseconds((capped * jitter) as i64)
    }
}
