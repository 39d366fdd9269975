//! One notification, one transaction: the alerts of an Alertmanager or Grafana notification are
//! decided together and written as one unit, so a notification is stored whole or not at all,
//! and a storm of 50 alerts costs one commit (shared with other requests by the store's group
//! commit), not 50.
//!
//! The per-alert decisions are [`intake`](super::intake)'s, made one alert after another on a
//! working copy of what the notification has decided so far:
//! - an alert joining an incident the notification already moved moves the same copy (one
//!   incident write, at the version read);
//! - alerts of a group with no open incident start one declaration, which the later alerts of
//!   that group join;
//! - alerts that change no incident (suppressed, flapping, refused) are recorded in one
//!   changeset of their own.
//!
//! What the timeline and the channel are told is coalesced per incident ([`super::notes`]).
//!
//! A notification naming the same alert twice is taken in segments without a repeat, one unit
//! each, so the alert's second state is decided on what its first wrote.

mod commit;

use super::declare::Declaration;
use super::intake::{alert_label, resolve_by_alerts, Outcome};
use super::notes::{flush_notes, push_fired, push_resolved, Note};
use super::{retry_on_conflict, Engine, Plan};
use crate::alerts::{self, AlertAction, AlertBatch, AlertStatus, IncomingAlert, Routed};
use crate::config::format_duration;
use crate::domain::{Actor, EventKind, Incident, IncidentRef, Phase, Source, State};
use crate::error::StoreError;
use crate::render;
use crate::store::{
    AlertRecord, GroupWrite, IncidentWrite, JobChange, JobKind, JobPayload, NewJob, Part,
};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// An incident this notification reads and may move.
struct Touched<'a> {
    inc: Incident,
    /// As read: an incident that alerts only joined is written as a guard of this version.
    read: Incident,
    plan: Plan<'a>,
    notes: Vec<Note>,
    moved: bool,
    /// An alert of it resolved: its write bumps the version, so two resolutions of its last
    /// alerts cannot both miss that the other made it quiet.
    resolves: bool,
    /// Firing alerts of the incident in the store, read once (for "every alert resolved").
    firing_stored: Option<i64>,
}

impl Touched<'_> {
    /// Alerts only joined it: written as a guard of the version read.
    fn guard_only(&self) -> bool {
        !self.resolves && self.inc == self.read && self.plan.jobs.is_empty()
    }
}

/// A declaration the notification makes, and the alerts of its group that join it.
struct NewIncident {
    group_key: String,
    previous: Option<IncidentRef>,
    routed: Routed,
    alerts: Vec<AlertRecord>,
    notes: Vec<Note>,
}

/// How an alert was decided, before declarations have numbers.
enum Decided {
    Done(Outcome),
    /// Joined the notification's `k`-th declaration.
    New(usize),
}

impl Engine {
    /// Takes a notification's firing and resolving alerts, one unit per segment without a
    /// repeated fingerprint. Outcomes are in the alerts' order.
    pub(crate) async fn ingest_alerts(
        &self,
        actor: &Actor,
        batch: &AlertBatch,
        alerts: &[&IncomingAlert],
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(alerts.len());
        let mut start = 0;
        while start < alerts.len() {
            let mut names = HashSet::new();
            let mut end = start;
            while end < alerts.len() && names.insert(alerts[end].identity()) {
                end += 1;
            }
            let segment = &alerts[start..end];
            outcomes.extend(retry_on_conflict!(
                self.ingest_segment(actor, batch, segment)
            )?);
            start = end;
        }
        Ok(outcomes)
    }

    async fn ingest_segment(
        &self,
        actor: &Actor,
        batch: &AlertBatch,
        alerts: &[&IncomingAlert],
    ) -> Result<Vec<Outcome>, StoreError> {
        let source = batch.source.as_str();
        let now = self.clock().now();
        let fps: Vec<String> = alerts.iter().map(|a| a.identity()).collect();
        let routed: Vec<Routed> = alerts
            .iter()
            .map(|a| alerts::route(self.config(), source, batch.group_key.as_deref(), a))
            .collect();
        // The duplicate path stays lock-free and write-free: repeats of the stored state are
        // answered from one read.
        let stored = self.records(source, &fps).await?;
        let changed: Vec<usize> = (0..alerts.len())
            .filter(|&i| {
                self.next_record(
                    stored.get(&fps[i]),
                    source,
                    &fps[i],
                    alerts[i],
                    &routed[i].group_key,
                    now,
                )
                .is_some()
            })
            .collect();
        if changed.is_empty() {
            return Ok(alerts.iter().map(|_| Outcome::Duplicate).collect());
        }
        // Decisions about one incident take turns in this process (as commands do), so
        // notifications moving the same incident queue instead of losing version races. Other
        // replicas are settled by the versions. Stripes are taken in order: no deadlock.
        let mut group_keys: Vec<&str> = changed
            .iter()
            .filter(|&&i| alerts[i].action != AlertAction::Resolve)
            .map(|&i| routed[i].group_key.as_str())
            .collect();
        group_keys.sort_unstable();
        group_keys.dedup();
        let mut groups = HashMap::new();
        for k in &group_keys {
            groups.insert(k.to_string(), self.store().group_incident(source, k).await?);
        }
        let mut targets: Vec<IncidentRef> = groups.values().flatten().copied().collect();
        targets.extend(changed.iter().filter_map(|&i| {
            (alerts[i].action == AlertAction::Resolve)
                .then(|| stored.get(&fps[i]).and_then(|r| r.incident))
                .flatten()
        }));
        // Maintenance windows do not depend on the incident: read before waiting for its turn,
        // so the turn is held for what does.
        let windows = self.store().maintenance_windows(Some(now)).await?;
        let ctx = Segment {
            actor,
            now,
            source,
            alerts,
            fps: &fps,
            routed: &routed,
            windows: &windows,
        };
        // Alerts that only join open incidents change none of them: decided without the turns,
        // written as guards of the versions read (a change committed meanwhile makes it a
        // conflict, decided again). Only when a decision changes an incident is it decided
        // again in the incidents' turns. A resolving alert of an open incident always changes
        // it (see `Touched::resolves`): such a segment goes to the turns at once.
        let resolving = changed
            .iter()
            .any(|&i| alerts[i].action == AlertAction::Resolve);
        if !targets.is_empty() && !resolving {
            let (d, decided) = self.decide_segment(&ctx, &stored, &groups).await?;
            if d.leaves_incidents() {
                return d.commit(decided).await;
            }
        }
        let _turns = self.lock_incidents(&targets).await;
        // Everything is read again under the locks.
        let (stored, groups) = if targets.is_empty() {
            (stored, groups)
        } else {
            let mut again = HashMap::new();
            for k in &group_keys {
                again.insert(k.to_string(), self.store().group_incident(source, k).await?);
            }
            (self.records(source, &fps).await?, again)
        };
        let (d, decided) = self.decide_segment(&ctx, &stored, &groups).await?;
        d.commit(decided).await
    }

    /// Decides each alert of the segment, in order, on a working copy.
    async fn decide_segment<'a>(
        &'a self,
        ctx: &Segment<'a>,
        stored: &'a HashMap<String, AlertRecord>,
        groups: &HashMap<String, Option<IncidentRef>>,
    ) -> Result<(Decide<'a>, Vec<Decided>), StoreError> {
        let mut d = Decide {
            engine: self,
            actor: ctx.actor,
            now: ctx.now,
            source: ctx.source,
            stored,
            working: stored.clone(),
            touched: vec![],
            loose: Plan::new(self, ctx.actor, ctx.now),
            news: vec![],
            overrides: None,
        };
        let mut decided = Vec::with_capacity(ctx.alerts.len());
        for (i, alert) in ctx.alerts.iter().enumerate() {
            let outcome = if alert.action == AlertAction::Resolve {
                d.resolved(alert, &ctx.fps[i], &ctx.routed[i]).await?
            } else {
                d.fired(alert, &ctx.fps[i], &ctx.routed[i], groups, ctx.windows)
                    .await?
            };
            decided.push(outcome);
        }
        Ok((d, decided))
    }

    /// The stored alerts among `fingerprints`, by fingerprint.
    async fn records(
        &self,
        source: &str,
        fingerprints: &[String],
    ) -> Result<HashMap<String, AlertRecord>, StoreError> {
        Ok(self
            .store()
            .alerts_of(source, fingerprints)
            .await?
            .into_iter()
            .map(|r| (r.fingerprint.clone(), r))
            .collect())
    }
}

/// What a segment's decisions are made from, whichever pass makes them.
struct Segment<'a> {
    actor: &'a Actor,
    now: DateTime<Utc>,
    source: &'a str,
    alerts: &'a [&'a IncomingAlert],
    fps: &'a [String],
    routed: &'a [Routed],
    windows: &'a [crate::store::Maintenance],
}

/// The working state of one segment's decisions.
struct Decide<'a> {
    engine: &'a Engine,
    actor: &'a Actor,
    now: DateTime<Utc>,
    source: &'a str,
    /// The alerts as stored, read under the locks.
    stored: &'a HashMap<String, AlertRecord>,
    /// The alerts as this segment has decided them so far.
    working: HashMap<String, AlertRecord>,
    touched: Vec<Touched<'a>>,
    /// Alert rows that move no incident.
    loose: Plan<'a>,
    news: Vec<NewIncident>,
    overrides: Option<Vec<crate::oncall::RotationOverride>>,
}

impl<'a> Decide<'a> {
    /// No incident changed: alerts only joined them (written as guards).
    fn leaves_incidents(&self) -> bool {
        self.touched
            .iter()
            .filter(|t| t.moved)
            .all(Touched::guard_only)
    }

    /// The working copy of incident `r`, read on first use.
    async fn incident(&mut self, r: IncidentRef) -> Result<Option<usize>, StoreError> {
        if let Some(k) = self.touched.iter().position(|t| t.inc.reference == r) {
            return Ok(Some(k));
        }
        let Some(inc) = self.engine.store().incident(r).await? else {
            return Ok(None);
        };
        self.touched.push(Touched {
            read: inc.clone(),
            inc,
            plan: Plan::new(self.engine, self.actor, self.now),
            notes: vec![],
            moved: false,
            resolves: false,
            firing_stored: None,
        });
        Ok(Some(self.touched.len() - 1))
    }

    async fn overrides(&mut self) -> Result<Vec<crate::oncall::RotationOverride>, StoreError> {
        if self.overrides.is_none() {
            self.overrides = Some(self.engine.current_overrides().await?);
        }
        Ok(self.overrides.clone().unwrap_or_default())
    }

    fn next(
        &self,
        alert: &IncomingAlert,
        fp: &str,
        routed: &Routed,
    ) -> Option<(AlertRecord, bool, String)> {
        let existing = self.working.get(fp);
        let rec = self.engine.next_record(
            existing,
            self.source,
            fp,
            alert,
            &routed.group_key,
            self.now,
        )?;
        let became_flapping = rec.flapping && !existing.is_some_and(|e| e.flapping);
        let label = alert_label(&rec);
        Some((rec, became_flapping, label))
    }

    /// Records an alert row that moves no incident.
    fn record(&mut self, rec: AlertRecord) {
        self.working.insert(rec.fingerprint.clone(), rec.clone());
        self.loose.extra.alerts.push(rec);
    }

    fn refused(&mut self, rec: AlertRecord, refusal: crate::error::DomainError) -> Decided {
        tracing::warn!(actor = %self.actor.id, reason = %refusal, "alert recorded; its incident change was refused");
        self.record(rec);
        Decided::Done(Outcome::Refused)
    }

    async fn fired(
        &mut self,
        alert: &IncomingAlert,
        fp: &str,
        routed: &Routed,
        groups: &HashMap<String, Option<IncidentRef>>,
        windows: &[crate::store::Maintenance],
    ) -> Result<Decided, StoreError> {
        let Some((mut rec, became_flapping, label)) = self.next(alert, fp, routed) else {
            return Ok(Decided::Done(Outcome::Duplicate));
        };
        // Under maintenance: recorded, nothing else.
        if let Some(w) = windows
            .iter()
            .find(|w| w.components.iter().any(|c| routed.components.contains(c)))
        {
            rec.suppressed_by = Some(w.id);
            self.record(rec);
            return Ok(Decided::Done(Outcome::Suppressed));
        }
        // Its group's incident is being declared by this notification: it joins that.
        if let Some(k) = self
            .news
            .iter()
            .position(|n| n.group_key == routed.group_key)
        {
            self.working.insert(fp.to_string(), rec.clone());
            let n = &mut self.news[k];
            push_fired(&mut n.notes, label.clone());
            if became_flapping {
                n.notes.push(Note::Event(
                    EventKind::Alert,
                    self.engine.flapping_text(&label),
                ));
            }
            n.alerts.push(rec);
            return Ok(Decided::New(k));
        }
        let group_incident = groups.get(&routed.group_key).copied().flatten();
        let current = match group_incident {
            Some(r) => self.incident(r).await?,
            None => None,
        };
        let cfg = &self.engine.config().alerts;
        let now = self.now;
        let reopens = |inc: &Incident| {
            inc.state == State::Resolved
                && inc
                    .resolved_at
                    .is_some_and(|t| now - t <= cfg.reopen_window)
        };
        match current {
            // Joins the open incident of its group.
            Some(k) if self.touched[k].inc.state.is_open() => {
                let reassess = self.touched[k].inc.phase == Phase::PostRecoveryMonitoring;
                let overrides = if reassess && self.touched[k].inc.state == State::Declared {
                    Some(self.overrides().await?)
                } else {
                    None
                };
                let t = &mut self.touched[k];
                let r = t.inc.reference;
                rec.incident = Some(r);
                push_fired(&mut t.notes, label.clone());
                if reassess {
                    t.inc.phase = Phase::Assessment;
                    t.plan.jobs.push(JobChange::Cancel {
                        incident: r,
                        kind: JobKind::Autoresolve,
                    });
                    t.notes.push(Note::Event(EventKind::PhaseChanged, format!("{r} back to assessment: an alert fired again, automatic resolution cancelled")));
                    // Paging stopped when its alerts went quiet; nobody has acknowledged, so
                    // the escalation starts again.
                    if let Some(o) = overrides {
                        t.plan.overrides = o;
                        t.plan.start_escalation(&mut t.inc);
                    }
                }
                if became_flapping {
                    t.notes.push(Note::Event(
                        EventKind::Alert,
                        self.engine.flapping_text(&label),
                    ));
                }
                t.moved = true;
                self.working.insert(fp.to_string(), rec.clone());
                t.plan.extra.alerts.push(rec);
                Ok(Decided::Done(Outcome::Changed(Some(r))))
            }
            // A re-fire soon after resolution reopens the incident (and pages again), unless the
            // alert is flapping.
            Some(k) if reopens(&self.touched[k].inc) && !rec.flapping => {
                let mut probe = self.touched[k].inc.clone();
                if let Err(e) = probe.reopen() {
                    return Ok(self.refused(rec, e));
                }
                let overrides = self.overrides().await?;
                let t = &mut self.touched[k];
                let r = t.inc.reference;
                let resolved_at = t.inc.resolved_at.unwrap_or(now);
                t.inc = probe;
                rec.incident = Some(r);
                t.notes.push(Note::Event(
                    EventKind::Reopened,
                    format!(
                        "{r} reopened: {label} fired again {} after resolution (reopen window {})",
                        render::duration_between(resolved_at, now),
                        format_duration(cfg.reopen_window)
                    ),
                ));
                t.plan.audit(
                    "incident.reopen",
                    &t.inc,
                    serde_json::json!({"alert": rec.fingerprint, "source": self.source}),
                );
                t.plan.overrides = overrides;
                t.plan.start_escalation(&mut t.inc);
                t.plan.schedule_rto(&t.inc);
                t.moved = true;
                self.working.insert(fp.to_string(), rec.clone());
                t.plan.extra.alerts.push(rec);
                Ok(Decided::Done(Outcome::Changed(Some(r))))
            }
            // A flapping alert with no open incident is recorded and pages nobody.
            _ if rec.flapping => {
                rec.incident = None;
                self.record(rec);
                Ok(Decided::Done(Outcome::Changed(None)))
            }
            // Otherwise a new incident for the group.
            _ => {
                self.working.insert(fp.to_string(), rec.clone());
                let mut notes = vec![Note::Fired(vec![label.clone()])];
                if became_flapping {
                    notes.push(Note::Event(
                        EventKind::Alert,
                        self.engine.flapping_text(&label),
                    ));
                }
                self.news.push(NewIncident {
                    group_key: routed.group_key.clone(),
                    previous: group_incident,
                    routed: routed.clone(),
                    alerts: vec![rec],
                    notes,
                });
                Ok(Decided::New(self.news.len() - 1))
            }
        }
    }

    async fn resolved(
        &mut self,
        alert: &IncomingAlert,
        fp: &str,
        routed: &Routed,
    ) -> Result<Decided, StoreError> {
        let Some((rec, became_flapping, label)) = self.next(alert, fp, routed) else {
            return Ok(Decided::Done(Outcome::Duplicate));
        };
        let k = match rec.incident {
            Some(r) => self.incident(r).await?,
            None => None,
        };
        let Some(k) = k.filter(|&k| self.touched[k].inc.state.is_open()) else {
            self.record(rec);
            return Ok(Decided::Done(Outcome::Changed(None)));
        };
        let r = self.touched[k].inc.reference;
        if self.touched[k].firing_stored.is_none() {
            self.touched[k].firing_stored = Some(self.engine.store().firing_alert_count(r).await?);
        }
        // Every other alert of the incident resolved? The store's count, corrected by what this
        // segment has decided about its own alerts so far.
        let firing = |a: &AlertRecord| a.incident == Some(r) && a.status == AlertStatus::Firing;
        let stored_here = self.stored.values().filter(|a| firing(a)).count() as i64;
        let working_here = self
            .working
            .values()
            .filter(|a| firing(a) && a.fingerprint != fp)
            .count() as i64;
        let others = self.touched[k].firing_stored.unwrap_or(0) - stored_here + working_here;
        let t = &self.touched[k];
        let quiet_starts = others <= 0
            && t.inc.source == Source::Alert
            && t.inc.phase != Phase::PostRecoveryMonitoring;
        let quiet = self
            .engine
            .config()
            .sources
            .iter()
            .find(|s| s.id == rec.source)
            .and_then(|s| s.quiet_period)
            .unwrap_or(self.engine.config().alerts.quiet_period);
        let now = self.now;
        // No quiet period (PagerDuty's contract): resolved in the same transaction, so the
        // sender's answer comes after the incident is resolved. A state that cannot resolve
        // refuses it before anything is changed.
        if quiet_starts && quiet <= chrono::Duration::zero() {
            let mut probe = t.inc.clone();
            if let Err(e) = probe.resolve(None, now) {
                return Ok(self.refused(rec, e));
            }
        }
        self.working.insert(fp.to_string(), rec.clone());
        let t = &mut self.touched[k];
        t.moved = true;
        t.resolves = true;
        push_resolved(&mut t.notes, label.clone());
        if became_flapping {
            t.notes.push(Note::Event(
                EventKind::Alert,
                self.engine.flapping_text(&label),
            ));
        }
        if quiet_starts {
            // Checked by the store after the write: an alert that joined meanwhile (guarding
            // the version only) makes this a conflict, decided again with it.
            t.plan.extra.all_resolved.push(r);
            t.inc.phase = Phase::PostRecoveryMonitoring;
            // The alerts say it is over: nobody is woken for it while its quiet period runs.
            t.plan.cancel_escalation(&t.inc);
            if quiet <= chrono::Duration::zero() {
                flush_notes(&mut t.plan, &t.inc, &mut t.notes);
                resolve_by_alerts(
                    &mut t.plan,
                    &mut t.inc,
                    "all its alerts resolved".into(),
                    now,
                )
                .expect("the resolution was checked on a copy");
            } else {
                t.notes.push(Note::Event(
                    EventKind::PhaseChanged,
                    format!(
                        "all alerts of {r} resolved: post-recovery monitoring; it resolves by itself at {} ({} quiet) unless held open with /incident hold",
                        render::time(now + quiet),
                        format_duration(quiet)
                    ),
                ));
                t.plan.jobs.push(JobChange::Schedule(NewJob {
                    key: format!("autoresolve:{r}:quiet"),
                    incident: Some(r),
                    due_at: now + quiet,
                    payload: JobPayload::Autoresolve,
                }));
            }
        }
        t.plan.extra.alerts.push(rec);
        Ok(Decided::Done(Outcome::Changed(Some(r))))
    }
}
