//! The dead man's switch: the heartbeat alert must keep arriving; when it stops, an incident.
//! Also the automatic resolution after the quiet period.

use super::intake::{resolve_by_alerts, Outcome};
use super::{retry_on_conflict, Engine, Plan};
use crate::alerts::{AlertAction, AlertStatus, IncomingAlert};
use crate::config::format_duration;
use crate::domain::{Actor, EventKind, Incident, Phase, Source};
use crate::error::StoreError;
use crate::render;
use crate::store::{Heartbeat, IncidentWrite, Job, JobChange, JobPayload, NewJob};

impl Engine {
    pub(crate) fn is_heartbeat(&self, alert: &IncomingAlert) -> bool {
        self.config().alerts.heartbeat.as_ref().is_some_and(|h| {
            !h.labels.is_empty() && h.labels.iter().all(|(k, v)| alert.labels.get(k) == Some(v))
        })
    }

    pub(crate) async fn heartbeat_seen(
        &self,
        actor: &Actor,
        source: &str,
        alert: &IncomingAlert,
    ) -> Result<Outcome, StoreError> {
        if alert.action != AlertAction::Fire {
            // A resolved Watchdog means the pipeline said goodbye; the timeout will notice.
            return Ok(Outcome::Duplicate);
        }
        let Some(hb) = self.config().alerts.heartbeat.clone() else {
            return Ok(Outcome::Duplicate);
        };
        retry_on_conflict!(async {
            let now = self.clock().now();
            let name = source.to_string();
            let previous = self.store().heartbeat(&name).await?;
            let mut plan = Plan::new(self, actor, now);
            let mut write = None;
            if let Some(r) = previous.as_ref().and_then(|p| p.incident) {
                if let Some(mut inc) = self
                    .store()
                    .incident(r)
                    .await?
                    .filter(|i| i.state.is_open())
                {
                    let why = format!("the monitoring heartbeat from {source} returned");
                    match resolve_by_alerts(&mut plan, &mut inc, why, now) {
                        Ok(()) => write = Some(IncidentWrite::Update(inc)),
                        Err(e) => {
                            tracing::warn!(reason = %e, "heartbeat returned; its incident was not resolved")
                        }
                    }
                }
            }
            plan.extra.heartbeats.push(Heartbeat {
                name: name.clone(),
                last_seen: now,
                incident: None,
            });
            plan.jobs.push(JobChange::Schedule(NewJob {
                key: format!("heartbeat:{name}"),
                incident: None,
                due_at: now + hb.timeout,
                payload: JobPayload::Heartbeat { name: name.clone() },
            }));
            let changed = write.is_some();
            self.commit_plan(plan, write).await?;
            Ok(if changed {
                Outcome::Changed(previous.and_then(|p| p.incident))
            } else {
                Outcome::Duplicate
            })
        })
    }

    /// The heartbeat's timeout passed: declare, unless it was seen since or already declared.
    pub(crate) async fn run_heartbeat_job(&self, job: &Job) -> Result<(), StoreError> {
        let actor = Actor::system("heartbeat");
        let name = match &job.payload {
            JobPayload::Heartbeat { name } => name.clone(),
            other => {
                return Err(StoreError::Other(anyhow::anyhow!(
                    "heartbeat job {} carries {other:?}",
                    job.key
                )))
            }
        };
        let now = self.clock().now();
        let hb_cfg = self.config().alerts.heartbeat.clone();
        let hb = self.store().heartbeat(&name).await?;
        let open_incident = match hb.as_ref().and_then(|h| h.incident) {
            Some(r) => self
                .store()
                .incident(r)
                .await?
                .is_some_and(|i| i.state.is_open()),
            None => false,
        };
        let complete = JobChange::Complete {
            id: job.id,
            due_at: job.due_at,
        };
        match (hb, hb_cfg) {
            (Some(hb), Some(cfg)) if now - hb.last_seen >= cfg.timeout && !open_incident => {
                let title = format!(
                    "Monitoring pipeline silent: no heartbeat from {name} for {}",
                    format_duration(cfg.timeout)
                );
                let last_seen = hb.last_seen;
                let name2 = name.clone();
                let complete2 = complete.clone();
                self.declare_with(
                    &actor,
                    cfg.level,
                    title,
                    vec![],
                    None,
                    Source::Alert,
                    &move |plan: &mut Plan<'_>, inc: &Incident| {
                        plan.event(
                            inc,
                            EventKind::Alert,
                            format!(
                                "the heartbeat alert from {name2} was last seen at {}",
                                render::time(last_seen)
                            ),
                            false,
                        );
                        plan.extra.heartbeats.push(Heartbeat {
                            name: name2.clone(),
                            last_seen,
                            incident: Some(inc.reference),
                        });
                        plan.jobs.push(complete2.clone());
                    },
                )
                .await?;
                Ok(())
            }
            _ => {
                let mut plan = Plan::new(self, &actor, now);
                plan.jobs.push(complete);
                self.commit_plan(plan, None).await
            }
        }
    }

    /// The quiet period after every alert resolved is over: resolve, if still quiet.
    pub(crate) async fn run_autoresolve_job(&self, job: &Job) -> Result<(), StoreError> {
        let actor = Actor::system("autoresolve");
        let now = self.clock().now();
        let complete = JobChange::Complete {
            id: job.id,
            due_at: job.due_at,
        };
        let mut plan = Plan::new(self, &actor, now);
        let mut write = None;
        if let Some(r) = job.incident {
            let alerts = self.store().incident_alerts(r).await?;
            let quiet = alerts.iter().all(|a| a.status == AlertStatus::Resolved);
            if let Some(mut inc) =
                self.store().incident(r).await?.filter(|i| {
                    i.state.is_open() && i.phase == Phase::PostRecoveryMonitoring && quiet
                })
            {
                let q = format_duration(self.config().alerts.quiet_period);
                let why = format!("all alerts resolved and quiet for {q}");
                match resolve_by_alerts(&mut plan, &mut inc, why, now) {
                    Ok(()) => write = Some(IncidentWrite::Update(inc)),
                    Err(e) => tracing::warn!(reason = %e, "automatic resolution refused"),
                }
            }
        }
        plan.jobs.push(complete);
        self.commit_plan(plan, write).await
    }
}
