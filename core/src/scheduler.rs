//! Runs due jobs (RTO breaches, escalation tiers). Jobs are rows with a due time; a replica
//! leases the due ones, runs each through the [`Engine`], and the engine marks the job complete in
//! the same transaction as its effects. A crash before that commit leaves the job to be leased
//! again once the lease runs out; idempotency keys keep its messages from going out twice.

use crate::engine::Engine;
use chrono::Duration;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct Scheduler {
    engine: Arc<Engine>,
    owner: String,
    poll: std::time::Duration,
    lease: Duration,
}

impl Scheduler {
    pub fn new(engine: Arc<Engine>) -> Self {
        Scheduler {
            engine,
            owner: format!("scheduler-{}", crate::random_token(6)),
            poll: std::time::Duration::from_secs(1),
            lease: Duration::seconds(60),
        }
    }

    pub fn with_poll_interval(mut self, poll: std::time::Duration) -> Self {
        self.poll = poll;
        self
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "scheduler cannot reach the store");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        tracing::debug!("scheduler stopped");
    }

    /// Runs every job due now. Returns how many ran.
    pub async fn tick(&self) -> Result<usize, crate::error::StoreError> {
        let now = self.engine.clock().now();
        let jobs = self
            .engine
            .store()
            .claim_jobs(now, self.lease, &self.owner, 64)
            .await?;
        let mut ran = 0;
        for job in &jobs {
            match self.engine.run_job(job).await {
                Ok(()) => ran += 1,
                // The lease expires and the job is tried again; nothing of it was written.
                Err(e) => {
                    tracing::warn!(job = %job.key, error = %e, "job failed; will retry after its lease")
                }
            }
        }
        Ok(ran)
    }
}
