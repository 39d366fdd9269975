//! Scheduled work run by the scheduler: escalation tiers, the RTO watch (50 %, 80 %, 100 %) and
//! expired acknowledgements here; the automatic resolution and the dead man's switch in
//! [`super::heartbeat`].

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
            JobKind::RunApprovalExpiry => return self.run_expiry_job(job).await,
            JobKind::PublishIncident => return self.run_publish_job(job).await,
            JobKind::RtoBreach
            | JobKind::RtoWarning
            | JobKind::EscalationTier
            | JobKind::AckExpiry => {}
        }
        let actor = Actor::system("scheduler");
        let overrides = self.current_overrides().await?;
        retry_on_conflict!(async {
            let now = self.clock.now();
            let mut plan = Plan::new(self, &actor, now);
            plan.overrides = overrides.clone();
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
        // A job that runs well after its due time ran late because Spotter was not running (or
        // could not reach its database): the page and the timeline say so.
        let late = Some(plan.at - job.due_at).filter(|l| *l > chrono::Duration::seconds(60));
        let unacknowledged = inc.state == crate::domain::State::Declared
            && inc.phase != crate::domain::Phase::PostRecoveryMonitoring;
        match &job.payload {
            JobPayload::RtoWarning { percent } if inc.state.is_open() => {
                let left = render::duration_between(plan.at, inc.rto_deadline);
                let text = format!(
                    "{} has used {percent} % of its RTO: {left} left until {}",
                    inc.reference,
                    render::time(inc.rto_deadline)
                );
                plan.event(inc, EventKind::RtoWarning, text, false);
                self.rto_page(inc, plan, late);
                true
            }
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
                self.rto_page(inc, plan, late);
                true
            }
            // A tier pages only while nobody has acknowledged and the level is unchanged.
            JobPayload::EscalationTier {
                tier,
                level,
                repeat,
                epoch,
            } if unacknowledged && inc.level == *level => {
                let why = if *repeat > 0 {
                    super::paging::PageReason::Repeat
                } else {
                    super::paging::PageReason::Escalation
                };
                plan.page_tier(inc, *epoch, *tier, *repeat, why, late);
                true
            }
            JobPayload::AckExpiry
                if inc.state == crate::domain::State::Acknowledged
                    && inc.phase != crate::domain::Phase::PostRecoveryMonitoring =>
            {
                let by = inc
                    .acknowledged_by
                    .as_deref()
                    .map(|a| self.config.display_name(a))
                    .unwrap_or_default();
                let tier = inc.escalation_tier.unwrap_or(0) as usize;
                inc.acknowledgement_expired();
                let text = format!(
                    "acknowledgement by {by} expired: no update, runbook step or status post for {}; paging tier {} again",
                    format_duration(self.config.paging.ack_timeout),
                    tier + 1
                );
                plan.event(inc, EventKind::AckExpired, text, false);
                plan.audit(
                    "incident.ack_expired",
                    inc,
                    serde_json::json!({"tier": tier}),
                );
                plan.continue_escalation(inc, tier, super::paging::PageReason::AckExpired);
                true
            }
            _ => false,
        }
    }

    /// The RTO watch pages the commander, or the tier the escalation reached when there is none.
    fn rto_page(&self, inc: &Incident, plan: &mut Plan<'_>, late: Option<chrono::Duration>) {
        let people = match &inc.commander {
            Some(c) => vec![c.clone()],
            None => {
                let tier = inc.escalation_tier.unwrap_or(0) as usize;
                self.config
                    .escalation
                    .get(&inc.level)
                    .and_then(|p| p.tiers.get(tier))
                    .map(|t| {
                        crate::oncall::tier_people(
                            &self.config,
                            &t.notify,
                            plan.at,
                            &plan.overrides,
                        )
                    })
                    .unwrap_or_default()
            }
        };
        let key = format!("page:{}:rto:{}", inc.reference, plan.at.timestamp_millis());
        let paged = plan.page_people(
            Some(inc),
            &people,
            super::paging::PageSpec {
                key: &key,
                why: super::paging::PageReason::Rto,
                tier: None,
                next_tier_job: None,
                late,
                note: None,
            },
        );
        let mut text = format!(
            "RTO watch paged {}",
            if paged.reached.is_empty() {
                "nobody".to_string()
            } else {
                paged.reached.join(", ")
            }
        );
        if !paged.unreachable.is_empty() {
            text.push_str(&format!("; cannot page {}", paged.unreachable.join("; ")));
        }
        plan.event(inc, EventKind::Paged, text, false);
    }
}

impl Plan<'_> {
    /// Cancels the incident's pending jobs of one kind.
    pub(crate) fn cancel_jobs(&mut self, incident: IncidentRef, kind: JobKind) {
        self.jobs.push(JobChange::Cancel { incident, kind });
    }

    /// (Re)schedules the RTO watch for the incident's deadline: warnings at 50 % and 80 % of the
    /// RTO (those already past are skipped, so a level change does not replay them), and the
    /// breach at 100 %.
    pub(crate) fn schedule_rto(&mut self, inc: &Incident) {
        let rto = inc.rto_deadline - inc.declared_at;
        for percent in [50u8, 80] {
            let due = inc.declared_at + rto * i32::from(percent) / 100;
            if due > self.at {
                self.jobs.push(JobChange::Schedule(NewJob {
                    key: format!("rto:{}:{percent}", inc.reference),
                    incident: Some(inc.reference),
                    due_at: due,
                    payload: JobPayload::RtoWarning { percent },
                }));
            }
        }
        self.jobs.push(JobChange::Schedule(NewJob {
            key: format!("rto:{}:deadline", inc.reference),
            incident: Some(inc.reference),
            due_at: inc.rto_deadline.max(self.at),
            payload: JobPayload::RtoBreach,
        }));
    }

    /// Stops the RTO watch (resolution).
    pub(crate) fn cancel_rto(&mut self, r: IncidentRef) {
        self.cancel_jobs(r, JobKind::RtoBreach);
        self.cancel_jobs(r, JobKind::RtoWarning);
        self.cancel_jobs(r, JobKind::AckExpiry);
    }

    /// Activity on an acknowledged incident of a level whose acknowledgements expire: (re)starts
    /// the clock. An acknowledgement with no update, runbook step or status post for
    /// `[paging] ack_timeout` expires.
    pub(crate) fn touch_ack(&mut self, inc: &Incident) {
        let paging = &self.engine.config.paging;
        if inc.state == crate::domain::State::Acknowledged
            && inc.level >= paging.ack_timeout_min_level
        {
            self.jobs.push(JobChange::Schedule(NewJob {
                key: format!("ack:{}:expiry", inc.reference),
                incident: Some(inc.reference),
                due_at: self.at + paging.ack_timeout,
                payload: JobPayload::AckExpiry,
            }));
        }
    }
}
