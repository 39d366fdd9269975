//! Runs due jobs (RTO breaches, escalation tiers, automatic resolution, the dead man's switch)
//! and the retention sweep. Jobs are rows with a due time; a replica leases the due ones, runs
//! each through the [`Engine`], and the engine marks the job complete in the same transaction as
//! its effects. A crash before that commit leaves the job to be leased again once the lease runs
//! out; idempotency keys keep its messages from going out twice. A job that keeps failing is
//! retried at most `[jobs] max_attempts` times, then dead-lettered (timeline entry and metric),
//! so a poisoned job cannot retry every minute forever.

use crate::engine::Engine;
use crate::store::{Job, PurgeBefore};
use chrono::Duration;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Rows deleted per table per retention round: small, so no sweep holds the writer for long.
const PURGE_BATCH: i64 = 500;
/// Rounds per sweep at most; what is left waits for the next sweep.
const PURGE_ROUNDS: usize = 20;
/// Jobs leased per tick. A full lease means more may be due: the next tick follows at once.
const CLAIM: i64 = 64;
/// Incidents whose jobs run at once: their commits share the store's group commit, so a
/// backlog (a storm of declarations, each with an escalation tier due at once) is worked
/// through at the writer's pace, not one commit after another.
const CONCURRENT_INCIDENTS: usize = 16;

pub struct Scheduler {
    engine: Arc<Engine>,
    owner: String,
    poll: std::time::Duration,
    lease: Duration,
    retention_every: std::time::Duration,
}

impl Scheduler {
    pub fn new(engine: Arc<Engine>) -> Self {
        Scheduler {
            engine,
            owner: format!("scheduler-{}", crate::random_token(6)),
            poll: std::time::Duration::from_secs(1),
            lease: Duration::seconds(60),
            retention_every: std::time::Duration::from_secs(3600),
        }
    }

    pub fn with_poll_interval(mut self, poll: std::time::Duration) -> Self {
        self.poll = poll;
        self
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_sweep: Option<std::time::Instant> = None;
        loop {
            let backlog = match self.lease_and_run().await {
                Ok((leased, _)) => leased >= CLAIM as usize,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler cannot reach the store");
                    false
                }
            };
            if last_sweep.is_none_or(|t| t.elapsed() >= self.retention_every) {
                last_sweep = Some(std::time::Instant::now());
                match self.sweep().await {
                    Ok(n) if n > 0 => tracing::info!(deleted = n, "retention sweep"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "retention sweep failed; next in an hour"),
                }
            }
            if backlog && !shutdown.is_cancelled() {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        tracing::debug!("scheduler stopped");
    }

    /// Runs the jobs due now (up to a lease's worth). Returns how many ran.
    pub async fn tick(&self) -> Result<usize, crate::error::StoreError> {
        Ok(self.lease_and_run().await?.1)
    }

    /// Leases due jobs and runs them: how many were leased, and how many of those ran.
    ///
    /// One incident's jobs run in due order, one after another (an escalation tier before the
    /// next); different incidents' jobs run side by side.
    async fn lease_and_run(&self) -> Result<(usize, usize), crate::error::StoreError> {
        use futures::StreamExt;
        let now = self.engine.clock().now();
        let jobs = self
            .engine
            .store()
            .claim_jobs(now, self.lease, &self.owner, CLAIM)
            .await?;
        let leased = jobs.len();
        let mut groups: Vec<Vec<Job>> = vec![];
        let mut of_incident: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
        for job in jobs {
            match job.incident.and_then(|r| of_incident.get(&r).copied()) {
                Some(g) => groups[g].push(job),
                None => {
                    if let Some(r) = job.incident {
                        of_incident.insert(r, groups.len());
                    }
                    groups.push(vec![job]);
                }
            }
        }
        let results: Vec<Result<usize, crate::error::StoreError>> = futures::stream::iter(groups)
            .map(|group| async move {
                let mut ran = 0;
                for job in &group {
                    ran += usize::from(self.run_one(job).await?);
                }
                Ok(ran)
            })
            .buffer_unordered(CONCURRENT_INCIDENTS)
            .collect()
            .await;
        let mut ran = 0;
        for r in results {
            ran += r?;
        }
        Ok((leased, ran))
    }

    /// Runs one job (`true` when it ran); a failure is recorded (or, out of attempts,
    /// dead-lettered). `Err` only when the store cannot record it.
    async fn run_one(&self, job: &Job) -> Result<bool, crate::error::StoreError> {
        let max = self.engine.config().jobs.max_attempts;
        match self.engine.run_job(job).await {
            Ok(()) => return Ok(true),
            // Out of attempts: given up, on the record.
            Err(e) if job.attempts as u32 >= max => {
                tracing::error!(job = %job.key, attempts = job.attempts, error = %e, "job given up (dead-lettered)");
                self.engine.dead_letter_job(job, &e.to_string()).await?;
            }
            // The lease expires and the job is tried again; nothing of it was written.
            Err(e) => {
                tracing::warn!(job = %job.key, attempts = job.attempts, error = %e, "job failed; will retry after its lease");
                self.engine
                    .store()
                    .job_attempt_failed(job.id, &e.to_string())
                    .await?;
            }
        }
        Ok(false)
    }

    /// Deletes finished rows past `[retention]`, in small batches. Returns how many.
    pub async fn sweep(&self) -> Result<u64, crate::error::StoreError> {
        let now = self.engine.clock().now();
        let r = &self.engine.config().retention;
        let before = PurgeBefore {
            delivered_messages: now - r.delivered_messages,
            finished_jobs: now - r.finished_jobs,
            resolved_alerts: now - r.resolved_alerts,
            signatures: now,
        };
        let mut total = 0;
        for _ in 0..PURGE_ROUNDS {
            let n = self
                .engine
                .store()
                .purge(before, PURGE_BATCH)
                .await?
                .total();
            total += n;
            if n == 0 {
                break;
            }
        }
        Ok(total)
    }
}
