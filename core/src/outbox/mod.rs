//! Delivery of outbound messages.
//!
//! Messages are rows written in the same transaction as the change that caused them (see
//! [`crate::store::Changeset`]), so a crash can delay a message but never lose one. The
//! [`Dispatcher`] leases due rows, hands each to the [`Notifier`] of its channel, and records the
//! outcome: delivered, retried later with exponential backoff (or when the far side says), or
//! given up after `max_attempts`. Leases make it safe to run a dispatcher in every replica:
//! every outcome is fenced by the lease (a dispatcher whose lease ran out records nothing, since
//! another replica may own the message by then), each delivery is bounded by its notifier's
//! timeout, and the lease is sized from those timeouts so a batch cannot outlive it.
//!
//! The chat lane merges what only matters in bulk ([`chat`]): a run of alert posts queued for one
//! incident's channel goes out as one post ("… and N more alert events"), and the card updates
//! among them as one edit, so an alert storm cannot bury the channel.
//!
//! Pages have a lane of their own ([`Dispatcher::pages`]): a second dispatcher that claims only
//! pages, never waits behind chat posts and card edits, and delivers a batch in parallel. A page
//! that fails is handed to [`PageOutcomes`] (the engine), which records the failure and falls
//! through to the person's next contact method in one fenced transaction.

use crate::clock::Clock;
use crate::config::OutboxConfig;
use crate::domain::Channel;
use crate::error::StoreError;
use crate::metrics::Metrics;
use crate::store::{Lane, OutboxMessage, Store};
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
    /// The longest one delivery may take; the dispatcher gives up on it after this (a retry) and
    /// sizes its leases from it.
    fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(30)
    }
}

/// What happens to a page's outcome beyond the outbox row: implemented by the engine.
#[async_trait]
pub trait PageOutcomes: Send + Sync + 'static {
    /// The acknowledgement URL for a link id (a token the database does not hold).
    fn ack_url(&self, link: &str) -> String;
    /// Records that one contact method of a page failed and falls through to the next (or, with
    /// none left, counts the person unreachable), fenced by `owner`'s lease. `Ok(false)` when the
    /// lease was lost and nothing was written.
    async fn page_failed(
        &self,
        message: &OutboxMessage,
        owner: &str,
        error: &str,
    ) -> Result<bool, StoreError>;
    /// A chat-lane message was given up (a permanent failure, or out of attempts): put it on its
    /// incident's timeline, so people see that, say, the incident channel missed an update.
    async fn message_given_up(
        &self,
        message: &OutboxMessage,
        error: &str,
    ) -> Result<(), StoreError>;
}

/// The links of a subscriber's messages (confirm, unsubscribe): implemented by the engine, which
/// holds the key they are signed with, so they are derived at delivery and never stored.
pub trait BroadcastLinks: Send + Sync + 'static {
    fn links(&self, subscriber: i64) -> crate::store::SubscriberLinks;
}

/// Writes messages to the log. The channel every installation has.
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        // Card updates only matter to platforms that show a card; in the log they are noise.
        if m.kind == crate::store::MessageKind::CardUpdate {
            tracing::debug!(target: "spotter::outbox", target = %m.target, "{}", m.text);
        } else {
            tracing::info!(target: "spotter::outbox", kind = m.kind.as_str(), target = %m.target, "{}", m.text);
        }
        Ok(())
    }

    fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
}

mod chat;

/// What became of a failed delivery's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    /// Tried again later.
    Retry,
    /// Given up (a dead letter).
    Dead,
    /// Our lease ran out: nothing was written.
    LeaseLost,
}

/// Messages claimed per round. Small, because they are delivered one after another within one
/// lease: the lease must cover this many notifier timeouts.
const BATCH: usize = 16;
/// Pages claimed per round: delivered in parallel, so the lease covers one notifier timeout.
const PAGE_BATCH: usize = 32;
/// How long delivered chat messages may wait for their mark while more are delivered, so marks
/// are batched over a burst and the record still follows the deliveries closely.
const MARK_DELAY: std::time::Duration = std::time::Duration::from_millis(50);
/// How long the chat lane, woken from idle, waits for more before it claims.
const CHAT_GATHER: std::time::Duration = std::time::Duration::from_millis(20);
/// Lease time beyond the deliveries themselves: claiming, recording outcomes, clock skew.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Dispatcher {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    config: OutboxConfig,
    notifiers: HashMap<Channel, Arc<dyn Notifier>>,
    owner: String,
    wakeup: Arc<Notify>,
    poll: std::time::Duration,
    lane: Lane,
    pages: Option<Arc<dyn PageOutcomes>>,
    links: Option<Arc<dyn BroadcastLinks>>,
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
            poll: std::time::Duration::from_millis(500),
            lane: Lane::Chat,
            pages: None,
            links: None,
        }
    }

    /// Reports messages this (chat-lane) dispatcher gives up to `outcomes` (the engine).
    pub fn reporting_to(mut self, outcomes: Arc<dyn PageOutcomes>) -> Self {
        self.pages = Some(outcomes);
        self
    }

    /// The priority lane: a dispatcher of pages only, delivering each batch in parallel, with
    /// failures falling through through `outcomes`.
    pub fn pages(mut self, outcomes: Arc<dyn PageOutcomes>) -> Self {
        self.lane = Lane::Pages;
        self.pages = Some(outcomes);
        self.owner = format!("pager-{}", crate::random_token(6));
        self
    }

    /// The lowest lane: status broadcasts to subscribers and the announcement channel, with the
    /// subscribers' links from `links` (the engine), retried with backoff like chat posts.
    pub fn broadcasts(mut self, links: Arc<dyn BroadcastLinks>) -> Self {
        self.lane = Lane::Broadcasts;
        self.links = Some(links);
        self.owner = format!("broadcaster-{}", crate::random_token(6));
        self
    }

    pub fn with_notifier(mut self, channel: Channel, n: Arc<dyn Notifier>) -> Self {
        self.notifiers.insert(channel, n);
        self
    }

    /// How long a claimed batch is ours before another replica may take it: enough for every
    /// message of the batch to take its notifier's whole timeout, plus a margin.
    /// Leases up to `limit` deliverable messages of `lane` to this dispatcher, for as long as
    /// its slowest notifier may take.
    async fn claim(&self, lane: Lane, limit: usize) -> Result<Vec<OutboxMessage>, StoreError> {
        let lease = Duration::from_std(self.lease()).unwrap_or(Duration::seconds(600));
        self.store
            .claim_outbox(self.clock.now(), lease, &self.owner, limit as i64, lane)
            .await
    }

    pub fn lease(&self) -> std::time::Duration {
        let slowest = self
            .notifiers
            .values()
            .map(|n| n.timeout())
            .max()
            .unwrap_or(std::time::Duration::from_secs(30));
        match self.lane {
            Lane::Chat => slowest * BATCH as u32 + LEASE_MARGIN,
            Lane::Pages | Lane::Broadcasts => slowest + LEASE_MARGIN,
        }
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
            let woken = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wakeup.notified() => true,
                _ = tokio::time::sleep(self.poll) => false,
            };
            // Chat posts and card updates written together are claimed together: under a storm
            // of alerts joining incidents, one claim (one write) per gather, not one per alert.
            // Pages never wait.
            if woken && self.lane == Lane::Chat {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(CHAT_GATHER) => {}
                }
            }
        }
        tracing::debug!("outbox dispatcher stopped");
    }

    /// One round: claim a batch, deliver each, record outcomes. Returns how many were handled.
    pub async fn tick(&self) -> Result<usize, StoreError> {
        match self.lane {
            Lane::Pages => self.tick_pages().await,
            Lane::Broadcasts => self.tick_broadcasts().await,
            Lane::Chat => self.tick_chat().await,
        }
    }

    /// One delivery, bounded by its notifier's timeout.
    async fn deliver(&self, m: &OutboxMessage) -> Result<(), DeliveryError> {
        let Some(n) = self.notifiers.get(&m.channel) else {
            return Err(DeliveryError::Permanent(format!(
                "no notifier for channel `{}`",
                m.channel
            )));
        };
        let timeout = n.timeout();
        match tokio::time::timeout(timeout, n.deliver(m)).await {
            Ok(r) => r,
            Err(_) => Err(DeliveryError::Retry {
                reason: format!("no answer within {} s", timeout.as_secs_f64()),
                after: None,
            }),
        }
    }

    /// The pages lane: claim, deliver the whole batch at once, record each outcome. A failure
    /// is not retried on the same method: the page falls through to the person's next method
    /// at once (waking someone matters more than waiting for one gateway to recover).
    async fn tick_pages(&self) -> Result<usize, StoreError> {
        let outcomes = self
            .pages
            .as_ref()
            .expect("the pages lane has its outcomes");
        let mut batch = self.claim(Lane::Pages, PAGE_BATCH).await?;
        for m in &mut batch {
            m.ack_url = m
                .page
                .as_ref()
                .and_then(|p| p.ack_link.as_deref())
                .map(|l| outcomes.ack_url(l));
        }
        let results = futures::future::join_all(batch.iter().map(|m| self.deliver(m))).await;
        let mut lost = false;
        let mut delivered = Vec::new();
        for (m, result) in batch.iter().zip(results) {
            let method = m.channel.as_str();
            match result {
                Ok(()) => delivered.push(m),
                Err(e) => {
                    let held = outcomes.page_failed(m, &self.owner, &e.to_string()).await?;
                    if held {
                        self.metrics.page_outcome(method, "failed");
                        self.metrics.outbox_failure(true);
                        tracing::warn!(id = m.id, method, person = %m.target, error = %e, "page not delivered; falling through to the next contact method");
                    } else {
                        lost = true;
                    }
                }
            }
        }
        let ids: Vec<i64> = delivered.iter().map(|m| m.id).collect();
        let held = self.mark_delivered(&ids).await?;
        for (m, held) in delivered.iter().zip(held) {
            if held {
                let method = m.channel.as_str();
                self.metrics.outbox_delivered();
                self.metrics.page_outcome(method, "sent");
                tracing::info!(target: "spotter::outbox", id = m.id, method, person = %m.target, "page delivered");
            } else {
                lost = true;
            }
        }
        if lost {
            tracing::warn!("outbox lease lost before a page's outcome was recorded");
            self.metrics.outbox_lease_lost();
        }
        Ok(batch.len())
    }

    /// Records a failed delivery on a lane that retries (chat, broadcasts): again later with
    /// backoff, or given up (a dead letter: logged, counted, and for chat put on the incident's
    /// timeline). Fenced by the lease: [`Recorded::LeaseLost`] when it was lost and nothing was
    /// written.
    async fn record_failure(
        &self,
        m: &OutboxMessage,
        e: &DeliveryError,
    ) -> Result<Recorded, StoreError> {
        let now = self.clock.now();
        let attempts = m.attempts + 1;
        let retry_at = match e {
            DeliveryError::Retry { after, .. } if (attempts as u32) < self.config.max_attempts => {
                Some(now + after.unwrap_or_else(|| self.backoff(attempts)))
            }
            _ => None,
        };
        let held = self
            .store
            .outbox_attempt_failed(m.id, &self.owner, now, &e.to_string(), retry_at)
            .await?;
        if !held {
            return Ok(Recorded::LeaseLost);
        }
        let dead = retry_at.is_none();
        {
            if dead {
                tracing::error!(id = m.id, channel = %m.channel, kind = m.kind.as_str(), target = %m.target, attempts, error = %e, "outbox message given up (dead letter)");
                if self.lane == Lane::Broadcasts {
                    self.metrics.broadcast_dead(m.channel.as_str());
                } else if let Some(o) = &self.pages {
                    if let Err(err) = o.message_given_up(m, &e.to_string()).await {
                        tracing::warn!(id = m.id, error = %err, "could not record the given-up message on the timeline");
                    }
                }
            } else {
                tracing::warn!(id = m.id, channel = %m.channel, attempts, error = %e, "outbox delivery failed; will retry");
            }
            self.metrics.outbox_failure(dead);
        }
        Ok(if dead {
            Recorded::Dead
        } else {
            Recorded::Retry
        })
    }

    /// Marks the messages `unmarked` delivered (one write) and empties it; `true` when a lease
    /// was lost for any of them.
    async fn flush_marks(&self, unmarked: &mut Vec<i64>) -> Result<bool, StoreError> {
        if unmarked.is_empty() {
            return Ok(false);
        }
        let held = self.mark_delivered(unmarked).await?;
        let mut lost = false;
        for h in held {
            if h {
                self.metrics.outbox_delivered();
            } else {
                lost = true;
            }
        }
        unmarked.clear();
        Ok(lost)
    }

    fn lease_lost(&self, id: i64) {
        tracing::warn!(id, "outbox lease lost before the outcome was recorded");
        self.metrics.outbox_lease_lost();
    }

    /// Marks delivered messages in one transaction (one fsync, not one per message); when a
    /// lease was lost meanwhile that fails as a whole, and each is marked alone. Returns, for
    /// each, whether its lease still held.
    async fn mark_delivered(&self, delivered: &[i64]) -> Result<Vec<bool>, StoreError> {
        self.mark(delivered, None).await
    }

    /// Records one outcome for several leased messages in one transaction: delivered, or given
    /// up with `failed`; each alone when a lease was lost meanwhile. For each, whether its lease
    /// still held.
    async fn mark(&self, ids: &[i64], failed: Option<&str>) -> Result<Vec<bool>, StoreError> {
        let now = self.clock.now();
        let delivered = ids;
        let marks: Vec<crate::store::OutboxMark> = ids
            .iter()
            .map(|&id| crate::store::OutboxMark {
                id,
                owner: self.owner.clone(),
                at: now,
                failed: failed.map(str::to_string),
            })
            .collect();
        if marks.is_empty() {
            return Ok(vec![]);
        }
        match self
            .store
            .commit(crate::store::Changeset {
                at: Some(now),
                outbox_marks: marks,
                ..Default::default()
            })
            .await
        {
            Ok(()) => Ok(vec![true; delivered.len()]),
            Err(StoreError::LeaseLost) => {
                let mut held = Vec::with_capacity(delivered.len());
                for &id in delivered {
                    let one = crate::store::Changeset {
                        at: Some(now),
                        outbox_marks: vec![crate::store::OutboxMark {
                            id,
                            owner: self.owner.clone(),
                            at: now,
                            failed: failed.map(str::to_string),
                        }],
                        ..Default::default()
                    };
                    held.push(match failed {
                        None => self.store.outbox_delivered(id, &self.owner, now).await?,
                        Some(_) => match self.store.commit(one).await {
                            Ok(()) => true,
                            Err(StoreError::LeaseLost) => false,
                            Err(e) => return Err(e),
                        },
                    });
                }
                Ok(held)
            }
            Err(e) => Err(e),
        }
    }

    /// The broadcasts lane: claim, give each its subscriber's links, deliver the batch at once
    /// (one slow subscriber does not hold up the others; one subscriber's messages are claimed
    /// one at a time, in order, by the ordering key), record each outcome.
    async fn tick_broadcasts(&self) -> Result<usize, StoreError> {
        let mut batch = self.claim(Lane::Broadcasts, PAGE_BATCH).await?;
        if let Some(links) = &self.links {
            for m in &mut batch {
                m.links = m
                    .broadcast
                    .as_ref()
                    .and_then(|b| b.subscriber)
                    .map(|id| links.links(id));
            }
        }
        let results = futures::future::join_all(batch.iter().map(|m| self.deliver(m))).await;
        let mut lost = false;
        let mut delivered = Vec::new();
        for (m, result) in batch.iter().zip(results) {
            match result {
                Ok(()) => delivered.push(m),
                Err(e) => lost |= self.record_failure(m, &e).await? == Recorded::LeaseLost,
            }
        }
        let ids: Vec<i64> = delivered.iter().map(|m| m.id).collect();
        for (m, held) in delivered.iter().zip(self.mark_delivered(&ids).await?) {
            if held {
                self.metrics.outbox_delivered();
                tracing::debug!(target: "spotter::outbox", id = m.id, channel = %m.channel, target = %m.target, "broadcast delivered");
            } else {
                lost = true;
            }
        }
        if lost {
            tracing::warn!("outbox lease lost before a broadcast's outcome was recorded");
            self.metrics.outbox_lease_lost();
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
