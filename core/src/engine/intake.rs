//! Alert intake: how alerts become incidents. Part of the [`Engine`], so the same rules (levels,
//! escalation, audit, outbox) apply as to a person's command.
//!
//! For each alert, one decision; for each notification, one transaction ([`super::notification`]
//! decides a notification's alerts together and writes them as one unit):
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
use crate::alerts::{AlertAction, AlertBatch, AlertStatus, IncomingAlert};
use crate::config::format_duration;
use crate::domain::{Actor, EventKind, Incident, IncidentRef, Role, RoleSet, State};
use crate::error::StoreError;
use crate::store::{AlertRecord, IncidentWrite};
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
        // Firing and resolving alerts are decided together and written in one transaction
        // (see `notification`); the heartbeat and PagerDuty's acknowledgements, which never
        // come many to a notification, each in their own.
        let mut outcomes = vec![];
        let mut together = vec![];
        for alert in &batch.alerts {
            if self.is_heartbeat(alert) {
                outcomes.push(self.heartbeat_seen(&actor, &batch.source, alert).await?);
            } else if alert.action == AlertAction::Acknowledge {
                let fingerprint = alert.identity();
                outcomes.push(retry_on_conflict!(self.alert_acknowledged(
                    &actor,
                    &batch.source,
                    &fingerprint
                ))?);
            } else {
                together.push(alert);
            }
        }
        outcomes.extend(self.ingest_alerts(&actor, batch, &together).await?);
        for outcome in outcomes {
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
            // A rule refused it (the incident cannot take it): logged, never a 500, since the
            // sender did nothing wrong and retrying would not help.
            tracing::warn!(actor = %actor.id, reason = %e, "acknowledgement refused");
            return Ok(Outcome::Refused);
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
pub(super) fn alert_label(rec: &AlertRecord) -> String {
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
