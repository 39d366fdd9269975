//! Scheduled work run by the scheduler: RTO breaches and escalation tiers here; the automatic
//! resolution and the dead man's switch in [`super::heartbeat`].

use super::*;
use crate::store::JobPayload;

impl Engine {
    /// Runs one claimed job and marks it complete in the same transaction as its effects.
    #[tracing::instrument(skip_all, fields(job = %job.key), err)]
    pub async fn run_job(&self, job: &Job) -> Result<(), StoreError> {
        // Decisions about one incident take turns in this process, as commands do.
        let _turn = match job.incident {
            Some(r) => Some(self.incident_lock(r).lock().await),
            None => None,
        };
        match job.kind() {
            JobKind::Heartbeat => return self.run_heartbeat_job(job).await,
            JobKind::Autoresolve => return self.run_autoresolve_job(job).await,
            JobKind::RtoBreach | JobKind::EscalationTier => {}
        }
        let actor = Actor::system("scheduler");
        retry_on_conflict!(async {
            let now = self.clock.now();
            let mut plan = Plan::new(self, &actor, now);
            let mut write = None;
            if let Some(r) = job.incident {
                if let Some(mut inc) = self.store.incident(r).await? {
                    if self.job_effects(job, &mut inc, &mut plan) {
                        write = Some(IncidentWrite::Update(inc));
                    }
                }
            }
            plan.jobs.push(JobChange::Complete {
                id: job.id,
                due_at: job.due_at,
            });
            self.commit(plan.finish(write)).await
        })
    }

    /// Gives up a job that failed `[jobs] max_attempts` times: marked dead with its error, a
    /// timeline entry on its incident (so people see that, say, an escalation tier never fired),
    /// the audit log, and `spotter_jobs_dead_lettered_total`.
    pub async fn dead_letter_job(&self, job: &Job, error: &str) -> Result<(), StoreError> {
        let actor = Actor::system("scheduler");
        retry_on_conflict!(async {
            let now = self.clock.now();
            let mut plan = Plan::new(self, &actor, now);
            let mut write = None;
            if let Some(inc) = match job.incident {
                Some(r) => self.store.incident(r).await?,
                None => None,
            } {
                let text = format!(
                    "scheduled {} ({}) given up after {} failed attempts: {error}",
                    job.kind().as_str().replace('_', " "),
                    job.key,
                    job.attempts
                );
                plan.event(&inc, EventKind::JobDeadLettered, text, false);
                plan.audit(
                    "job.dead_lettered",
                    &inc,
                    serde_json::json!({"job": job.key, "attempts": job.attempts, "error": error}),
                );
                write = Some(IncidentWrite::Update(inc));
            }
            plan.jobs.push(JobChange::DeadLetter {
                id: job.id,
                error: error.to_string(),
            });
            self.commit(plan.finish(write)).await
        })?;
        self.metrics.job_dead_lettered(job.kind().as_str());
        Ok(())
    }

    /// What a due job does to its incident; returns whether the incident row must be written
    /// (it is, whenever events are added, so the version guards against racing commands).
    fn job_effects(&self, job: &Job, inc: &mut Incident, plan: &mut Plan<'_>) -> bool {
        match &job.payload {
            JobPayload::RtoBreach if inc.state.is_open() && plan.at >= inc.rto_deadline => {
                let lvl = self
                    .config
                    .level(inc.level)
                    .map(|l| format_duration(l.rto))
                    .unwrap_or_default();
                let text = format!(
                    "{} has passed its RTO of {lvl} (deadline {}) and is still {}",
                    inc.reference,
                    render::time(inc.rto_deadline),
                    inc.state
                );
                plan.event(inc, EventKind::RtoBreached, text, false);
                plan.audit(
                    "incident.rto_breached",
                    inc,
                    serde_json::json!({"deadline": inc.rto_deadline}),
                );
                true
            }
            // A tier pages only while nobody has acknowledged and the level is unchanged.
            JobPayload::EscalationTier { tier, level }
                if inc.state == crate::domain::State::Declared && inc.level == *level =>
            {
                plan.page_tier(inc, *tier);
                true
            }
            _ => false,
        }
    }
}

impl Plan<'_> {
    /// Cancels the incident's pending jobs of one kind.
    pub(crate) fn cancel_jobs(&mut self, incident: IncidentRef, kind: JobKind) {
        self.jobs.push(JobChange::Cancel { incident, kind });
    }

    /// (Re)schedules the RTO breach job for the incident's deadline.
    pub(crate) fn schedule_rto(&mut self, inc: &Incident) {
        self.jobs.push(JobChange::Schedule(NewJob {
            key: format!("rto:{}:deadline", inc.reference),
            incident: Some(inc.reference),
            due_at: inc.rto_deadline.max(self.at),
            payload: JobPayload::RtoBreach,
        }));
    }
}
