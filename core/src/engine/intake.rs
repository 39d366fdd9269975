//! Alert intake: how alerts become incidents. Part of the [`Engine`], so the same rules (levels,
//! escalation, audit, outbox) apply as to a person's command.
//!
//! For each alert, one decision and one transaction:
//! - **Duplicates change nothing.** A notification repeating an alert's stored status is a no-op
//!   with no write, so Alertmanager HA pairs and retries add no timeline noise.
//! - **Grouping.** Alerts of one group (the route's `group_by` labels, else the sender's
//!   `groupKey`) feed one open incident; a new alert joining it is a timeline event.
//! - **Resolution.** When every alert of an alert-created incident has resolved, the incident
//!   enters post-recovery monitoring and resolves by itself after the quiet period, unless
//!   someone holds it open. A re-fire within the reopen window reopens it.
//! - **Flapping.** Too many state changes within the window: recorded, pages nobody.
//! - **Maintenance windows.** Alerts on a component under maintenance are recorded only.
//! - **Dead man's switch.** The heartbeat alert must keep arriving; when it stops, an incident.
//!
//! Races (an HA pair's two identical notifications at once, several replicas) are settled by
//! the store: new alert rows and groups are inserted, existing ones updated at the version read,
//! and the loser of a race decides again from what the winner wrote.

use super::{retry_on_conflict, Engine, Plan};
use crate::alerts::{self, AlertAction, AlertBatch, AlertStatus, IncomingAlert};
use crate::config::format_duration;
use crate::domain::{Actor, EventKind, Incident, IncidentRef, Phase, Role, RoleSet, Source, State};
use crate::error::StoreError;
use crate::render;
use crate::store::{
    AlertRecord, GroupWrite, IncidentWrite, JobChange, JobKind, JobPayload, NewJob,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What one notification did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub alerts: usize,
    /// Alerts whose state changed (written).
    pub changed: usize,
    /// Repeats of a known state: nothing written.
    pub duplicates: usize,
    /// Recorded but suppressed by a maintenance window.
    pub suppressed: usize,
    /// Recorded, but a rule refused what they asked of their incident (logged with the reason).
    pub refused: usize,
    /// Incidents declared, joined, reopened or moved by this notification.
    pub incidents: Vec<IncidentRef>,
}

pub(crate) enum Outcome {
    Duplicate,
    Changed(Option<IncidentRef>),
    Suppressed,
    /// The alert was recorded; the incident change it implied was refused by a rule.
    Refused,
}

/// The identity an alert source acts as: its own (`source:<id>`), with the least role that
/// opens and moves incidents. Never admin: a source's credential is a machine's, not a person's.
fn source_actor(source: &str) -> Actor {
    Actor {
        id: format!("source:{source}"),
        person: None,
        roles: RoleSet::new([Role::Responder]),
        limited_to: None,
    }
}

impl Engine {
    /// Takes one notification's alerts. Returns after every change they cause is committed.
    ///
    /// # Errors
    /// Storage failures only; the sender should retry (each alert is idempotent, so alerts
    /// already committed from this batch are not applied twice).
    #[tracing::instrument(skip_all, fields(source = %batch.source, alerts = batch.alerts.len()), err)]
    pub async fn ingest(&self, batch: &AlertBatch) -> Result<IngestReport, StoreError> {
        let actor = source_actor(&batch.source);
        let mut report = IngestReport {
            alerts: batch.alerts.len(),
            ..Default::default()
        };
        for alert in &batch.alerts {
            let outcome = if self.is_heartbeat(alert) {
                self.heartbeat_seen(&actor, &batch.source, alert).await?
            } else {
                self.ingest_one(&actor, batch, alert).await?
            };
            match outcome {
                Outcome::Duplicate => report.duplicates += 1,
                Outcome::Suppressed => report.suppressed += 1,
                Outcome::Refused => report.refused += 1,
                Outcome::Changed(r) => {
                    report.changed += 1;
                    if let Some(r) = r.filter(|r| !report.incidents.contains(r)) {
                        report.incidents.push(r);
                    }
                }
            }
        }
        Ok(report)
    }

    pub(crate) async fn ingest_one(
        &self,
        actor: &Actor,
        batch: &AlertBatch,
        alert: &IncomingAlert,
    ) -> Result<Outcome, StoreError> {
        let fingerprint = alert.identity();
        retry_on_conflict!(async {
            let result = match alert.action {
                AlertAction::Acknowledge => {
                    self.alert_acknowledged(actor, &batch.source, &fingerprint)
                        .await
                }
                AlertAction::Fire | AlertAction::Resolve => {
                    self.alert_changed(actor, batch, alert, &fingerprint).await
                }
            };
            result
        })
    }

    /// The new state of the alert row, or `None` when the notification repeats what is stored.
    pub(crate) fn next_record(
        &self,
        existing: Option<&AlertRecord>,
        source: &str,
        fingerprint: &str,
        alert: &IncomingAlert,
        group_key: &str,
        now: DateTime<Utc>,
    ) -> Option<AlertRecord> {
        let status = if alert.action == AlertAction::Resolve {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        };
        if existing.is_some_and(|e| e.status == status) {
            return None;
        }
        let cfg = &self.config().alerts;
        let mut changes: Vec<DateTime<Utc>> = existing
            .map(|e| e.recent_changes.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| now - *t < cfg.flap_window)
            .collect();
        changes.push(now);
        let flapping = changes.len() >= cfg.flap_changes as usize;
        Some(AlertRecord {
            source: source.to_string(),
            fingerprint: fingerprint.to_string(),
            status,
            // A bare resolve (PagerDuty's names only the dedup key) keeps what the trigger said.
            labels: match existing {
                Some(e) if alert.labels.is_empty() => e.labels.clone(),
                _ => alert.labels.clone(),
            },
            annotations: match existing {
                Some(e) if alert.annotations.is_empty() => e.annotations.clone(),
                _ => alert.annotations.clone(),
            },
            summary: alert
                .stated_summary()
                .or_else(|| existing.map(|e| e.summary.clone()))
                .unwrap_or_else(|| alert.summary()),
            group_key: group_key.to_string(),
            incident: existing.and_then(|e| e.incident),
            starts_at: alert.starts_at.or(existing.and_then(|e| e.starts_at)),
            ends_at: if status == AlertStatus::Resolved {
                alert.ends_at.or(Some(now))
            } else {
                None
            },
            first_seen_at: existing.map(|e| e.first_seen_at).unwrap_or(now),
            changed_at: now,
            recent_changes: changes,
            flapping,
            suppressed_by: None,
            version: existing.map(|e| e.version).unwrap_or(0),
        })
    }

    pub(crate) async fn alert_changed(
        &self,
        actor: &Actor,
        batch: &AlertBatch,
        alert: &IncomingAlert,
        fingerprint: &str,
    ) -> Result<Outcome, StoreError> {
        let source = batch.source.as_str();
        let now = self.clock().now();
        let routed = alerts::route(self.config(), source, batch.group_key.as_deref(), alert);
        // The duplicate path stays lock-free: a repeat of the stored state is answered here.
        let seen = self.store().alert(source, fingerprint).await?;
        if self
            .next_record(
                seen.as_ref(),
                source,
                fingerprint,
                alert,
                &routed.group_key,
                now,
            )
            .is_none()
        {
            return Ok(Outcome::Duplicate);
        }
        // A change: decisions about one incident take turns in this process (as commands do),
        // so alerts moving the same incident at once queue instead of losing version races and
        // backing off. Other replicas are still settled by the versions. Everything is read
        // again under the lock.
        let resolving = alert.action == AlertAction::Resolve;
        let group_incident = self
            .store()
            .group_incident(source, &routed.group_key)
            .await?;
        let lock_on = if resolving {
            seen.as_ref().and_then(|e| e.incident)
        } else {
            group_incident
        };
        let _turn = match lock_on {
            Some(r) => Some(self.incident_lock(r).lock().await),
            None => None,
        };
        let group_incident = match lock_on {
            Some(_) if !resolving => {
                self.store()
                    .group_incident(source, &routed.group_key)
                    .await?
            }
            _ => group_incident,
        };
        let existing = self.store().alert(source, fingerprint).await?;
        let Some(mut rec) = self.next_record(
            existing.as_ref(),
            source,
            fingerprint,
            alert,
            &routed.group_key,
            now,
        ) else {
            return Ok(Outcome::Duplicate);
        };
        let became_flapping = rec.flapping && !existing.as_ref().is_some_and(|e| e.flapping);
        let label = alert_label(&rec);

        if rec.status == AlertStatus::Resolved {
            return self
                .alert_resolved(actor, rec, &label, became_flapping, now)
                .await;
        }

        // Under maintenance: recorded, nothing else.
        let windows = self.store().maintenance_windows(Some(now)).await?;
        if let Some(w) = windows
            .iter()
            .find(|w| w.components.iter().any(|c| routed.components.contains(c)))
        {
            rec.suppressed_by = Some(w.id);
            let mut plan = Plan::new(self, actor, now);
            plan.extra.alerts.push(rec);
            self.commit_plan(plan, None).await?;
            return Ok(Outcome::Suppressed);
        }

        let current = match group_incident {
            Some(r) => self.store().incident(r).await?,
            None => None,
        };
        let cfg = &self.config().alerts;
        match current {
            // Joins the open incident of its group.
            Some(mut inc) if inc.state.is_open() => {
                let r = inc.reference;
                rec.incident = Some(r);
                let mut plan = Plan::new(self, actor, now);
                plan.event(
                    &inc,
                    EventKind::Alert,
                    format!("alert firing: {label}"),
                    false,
                );
                if inc.phase == Phase::PostRecoveryMonitoring {
                    inc.phase = Phase::Assessment;
                    plan.jobs.push(JobChange::Cancel {
                        incident: r,
                        kind: JobKind::Autoresolve,
                    });
                    plan.event(&inc, EventKind::PhaseChanged, format!("{r} back to assessment: an alert fired again, automatic resolution cancelled"), false);
                    // Paging stopped when its alerts went quiet; nobody has acknowledged, so
                    // the escalation starts again.
                    if inc.state == State::Declared {
                        plan.overrides = self.current_overrides().await?;
                        plan.start_escalation(&mut inc);
                    }
                }
                if became_flapping {
                    plan.event(&inc, EventKind::Alert, self.flapping_text(&label), false);
                }
                plan.extra.alerts.push(rec);
                self.commit_plan(plan, Some(IncidentWrite::Update(inc)))
                    .await?;
                Ok(Outcome::Changed(Some(r)))
            }
            // A re-fire soon after resolution reopens the incident (and pages again), unless the
            // alert is flapping.
            Some(mut inc)
                if inc.state == State::Resolved
                    && inc
                        .resolved_at
                        .is_some_and(|t| now - t <= cfg.reopen_window)
                    && !rec.flapping =>
            {
                let r = inc.reference;
                let resolved_at = inc.resolved_at.unwrap_or(now);
                if let Err(e) = inc.reopen() {
                    return self.record_refused(actor, Some(rec), e, now).await;
                }
                rec.incident = Some(r);
                let mut plan = Plan::new(self, actor, now);
                plan.event(
                    &inc,
                    EventKind::Reopened,
                    format!(
                        "{r} reopened: {label} fired again {} after resolution (reopen window {})",
                        render::duration_between(resolved_at, now),
                        format_duration(cfg.reopen_window)
                    ),
                    false,
                );
                plan.audit(
                    "incident.reopen",
                    &inc,
                    serde_json::json!({"alert": rec.fingerprint, "source": source}),
                );
                plan.overrides = self.current_overrides().await?;
                plan.start_escalation(&mut inc);
                plan.schedule_rto(&inc);
                plan.extra.alerts.push(rec);
                self.commit_plan(plan, Some(IncidentWrite::Update(inc)))
                    .await?;
                Ok(Outcome::Changed(Some(r)))
            }
            // A flapping alert with no open incident is recorded and pages nobody.
            _ if rec.flapping => {
                rec.incident = None;
                let mut plan = Plan::new(self, actor, now);
                plan.extra.alerts.push(rec);
                self.commit_plan(plan, None).await?;
                Ok(Outcome::Changed(None))
            }
            // Otherwise a new incident for the group.
            _ => {
                let group_key = routed.group_key.clone();
                let source_id = source.to_string();
                let rec_template = rec.clone();
                let label2 = label.clone();
                let reply = self
                    .declare_with(
                        actor,
                        routed.level,
                        routed.title.clone(),
                        routed.components.clone(),
                        None,
                        Source::Alert,
                        &move |plan: &mut Plan<'_>, inc: &Incident| {
                            let mut rec = rec_template.clone();
                            rec.incident = Some(inc.reference);
                            plan.event(
                                inc,
                                EventKind::Alert,
                                format!("alert firing: {label2}"),
                                false,
                            );
                            plan.extra.alerts.push(rec);
                            plan.extra.alert_groups.push(GroupWrite {
                                source: source_id.clone(),
                                group_key: group_key.clone(),
                                incident: inc.reference,
                                previous: group_incident,
                            });
                        },
                    )
                    .await?;
                Ok(Outcome::Changed(reply.incident.map(|i| i.reference)))
            }
        }
    }

    pub(crate) async fn alert_resolved(
        &self,
        actor: &Actor,
        rec: AlertRecord,
        label: &str,
        became_flapping: bool,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let incident = match rec.incident {
            Some(r) => self.store().incident(r).await?,
            None => None,
        };
        let mut plan = Plan::new(self, actor, now);
        let Some(mut inc) = incident.filter(|i| i.state.is_open()) else {
            plan.extra.alerts.push(rec);
            self.commit_plan(plan, None).await?;
            return Ok(Outcome::Changed(None));
        };
        let r = inc.reference;
        plan.event(
            &inc,
            EventKind::Alert,
            format!("alert resolved: {label}"),
            false,
        );
        if became_flapping {
            plan.event(&inc, EventKind::Alert, self.flapping_text(label), false);
        }
        let others = self.store().incident_alerts(r).await?;
        let all_resolved = others
            .iter()
            .filter(|a| a.fingerprint != rec.fingerprint || a.source != rec.source)
            .all(|a| a.status == AlertStatus::Resolved);
        if all_resolved && inc.source == Source::Alert && inc.phase != Phase::PostRecoveryMonitoring
        {
            let quiet = self
                .config()
                .sources
                .iter()
                .find(|s| s.id == rec.source)
                .and_then(|s| s.quiet_period)
                .unwrap_or(self.config().alerts.quiet_period);
            inc.phase = Phase::PostRecoveryMonitoring;
            // The alerts say it is over: nobody is woken for it while its quiet period runs.
            plan.cancel_escalation(&inc);
            if quiet <= chrono::Duration::zero() {
                // No quiet period (PagerDuty's contract): resolved in the same transaction, so
                // the sender's answer comes after the incident is resolved.
                if let Err(e) =
                    resolve_by_alerts(&mut plan, &mut inc, "all its alerts resolved".into(), now)
                {
                    return self.record_refused(actor, Some(rec), e, now).await;
                }
            } else {
                plan.event(
                    &inc,
                    EventKind::PhaseChanged,
                    format!(
                        "all alerts of {r} resolved: post-recovery monitoring; it resolves by itself at {} ({} quiet) unless held open with /incident hold",
                        render::time(now + quiet),
                        format_duration(quiet)
                    ),
                    false,
                );
                plan.jobs.push(JobChange::Schedule(NewJob {
                    key: format!("autoresolve:{r}:quiet"),
                    incident: Some(r),
                    due_at: now + quiet,
                    payload: JobPayload::Autoresolve,
                }));
            }
        }
        plan.extra.alerts.push(rec);
        self.commit_plan(plan, Some(IncidentWrite::Update(inc)))
            .await?;
        Ok(Outcome::Changed(Some(r)))
    }

    /// PagerDuty's `acknowledge`: acknowledges the alert's incident.
    pub(crate) async fn alert_acknowledged(
        &self,
        actor: &Actor,
        source: &str,
        fingerprint: &str,
    ) -> Result<Outcome, StoreError> {
        let Some(rec) = self.store().alert(source, fingerprint).await? else {
            return Ok(Outcome::Duplicate);
        };
        let Some(r) = rec.incident else {
            return Ok(Outcome::Duplicate);
        };
        let Some(mut inc) = self.store().incident(r).await? else {
            return Ok(Outcome::Duplicate);
        };
        if inc.state != State::Declared {
            return Ok(Outcome::Duplicate);
        }
        let now = self.clock().now();
        let from = inc.phase;
        if let Err(e) = inc.acknowledge(&actor.id, now) {
            return self.record_refused(actor, None, e, now).await;
        }
        let mut plan = Plan::new(self, actor, now);
        plan.cancel_escalation(&inc);
        plan.touch_ack(&inc);
        plan.event(
            &inc,
            EventKind::Acknowledged,
            format!("{r} acknowledged by {} (alert {})", actor.id, rec.summary),
            false,
        );
        plan.phase_moved(&inc, from, "acknowledged");
        plan.audit(
            "incident.ack",
            &inc,
            serde_json::json!({"alert": fingerprint}),
        );
        self.commit_plan(plan, Some(IncidentWrite::Update(inc)))
            .await?;
        Ok(Outcome::Changed(Some(r)))
    }

    /// A rule refused the incident change an alert implied (it read a state that cannot take
    /// it): the alert is still recorded, so a repeat is a duplicate, and the refusal is logged.
    /// Never a 500: the sender did nothing wrong, and retrying would not help.
    pub(crate) async fn record_refused(
        &self,
        actor: &Actor,
        rec: Option<AlertRecord>,
        refusal: crate::error::DomainError,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        tracing::warn!(actor = %actor.id, reason = %refusal, "alert recorded; its incident change was refused");
        if let Some(rec) = rec {
            let mut plan = Plan::new(self, actor, now);
            plan.extra.alerts.push(rec);
            self.commit_plan(plan, None).await?;
        }
        Ok(Outcome::Refused)
    }

    pub(crate) fn flapping_text(&self, label: &str) -> String {
        let cfg = &self.config().alerts;
        format!(
            "alert is flapping ({} state changes within {}): {label}; it pages nobody until stable",
            cfg.flap_changes,
            format_duration(cfg.flap_window)
        )
    }

    pub(crate) async fn commit_plan(
        &self,
        plan: Plan<'_>,
        write: Option<IncidentWrite>,
    ) -> Result<(), StoreError> {
        // The engine's commit wakes the dispatchers and the status follower.
        self.commit(plan.finish(write)).await
    }
}

/// Resolves an incident because its alerts say so (not a person): stops the escalation tiers
/// and the RTO clock, and records why on the timeline and in the audit log.
pub(super) fn resolve_by_alerts(
    plan: &mut Plan<'_>,
    inc: &mut Incident,
    why: String,
    now: DateTime<Utc>,
) -> Result<(), crate::error::DomainError> {
    let r = inc.reference;
    inc.resolve(Some(why.clone()), now)?;
    plan.cancel_escalation(inc);
    plan.cancel_rto(r);
    let met = if now <= inc.rto_deadline {
        "within RTO"
    } else {
        "RTO missed"
    };
    plan.event(
        inc,
        EventKind::Resolved,
        format!("{r} resolved by itself: {why} ({met})"),
        false,
    );
    plan.audit("incident.resolve", inc, serde_json::json!({"reason": why}));
    Ok(())
}

/// `MySQLDown (instance=db-1:9104)`: the summary and the labels that tell alerts apart.
fn alert_label(rec: &AlertRecord) -> String {
    let distinguishing: Vec<String> = ["instance", "pod", "host", "job"]
        .iter()
        .filter_map(|k| rec.labels.get(*k).map(|v| format!("{k}={v}")))
        .take(2)
        .collect();
    if distinguishing.is_empty() {
        rec.summary.clone()
    } else {
        format!("{} ({})", rec.summary, distinguishing.join(", "))
    }
}
