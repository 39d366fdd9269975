//! The public status page's rules: when an incident is published (after `[status]
//! publish_after`, unless it resolved or was held), what its public incident says (its own
//! title, impact and status, never the internal title or alert text), how it follows the
//! internal incident (phases → public status, resolution → resolved, each with a templated update
//! unless a person posted one in the last minutes), people's own public updates, and component
//! overrides. Every public change is one transaction with its internal timeline note.

use super::*;
use crate::config::TemplateField;
use crate::status::{
    snapshot, ComponentStatus, Impact, PublicIncident, PublicStatus, PublicUpdate,
};
use crate::store::{JobPayload, PublicWrite};

/// The public status an incident's phase and state stand for.
pub(crate) fn public_status_of(inc: &Incident) -> PublicStatus {
    use crate::domain::{Phase, State};
    if matches!(inc.state, State::Resolved | State::Closed) {
        return PublicStatus::Resolved;
    }
    match inc.phase {
        Phase::ImmediateResponse | Phase::Assessment => PublicStatus::Investigating,
        Phase::RecoveryExecution => PublicStatus::Identified,
        Phase::Validation | Phase::PostRecoveryMonitoring => PublicStatus::Monitoring,
    }
}

/// Where the follower moves a public incident in `current` status when its internal incident
/// stands for `derived`: forward through investigating → identified → monitoring, to resolved,
/// and back from resolved on a reopening; never backwards otherwise, so a person who posted
/// `status:identified` ahead of the internal phase is not overruled by it.
fn followed_status(current: PublicStatus, derived: PublicStatus) -> PublicStatus {
    let rank = |s: PublicStatus| match s {
        PublicStatus::Investigating => 0,
        PublicStatus::Identified => 1,
        PublicStatus::Monitoring => 2,
        PublicStatus::Resolved | PublicStatus::Postmortem => 3,
    };
    if current.is_resolved() != derived.is_resolved() || rank(derived) > rank(current) {
        derived
    } else {
        current
    }
}

/// A level's public impact (1 → minor, 2 → major, 3 and above → critical).
pub(crate) fn impact_of(level: LevelId) -> Impact {
    match level.0 {
        0 | 1 => Impact::Minor,
        2 => Impact::Major,
        _ => Impact::Critical,
    }
}

/// The announced windows: upcoming, in progress, and completed within the last 7 days, soonest
/// first.
pub(crate) fn public_maintenances(
    windows: &[crate::store::Maintenance],
    now: DateTime<Utc>,
) -> Vec<crate::status::PublicMaintenance> {
    let mut out: Vec<crate::status::PublicMaintenance> = windows
        .iter()
        .filter(|w| w.public)
        .filter(|w| w.ended_at.unwrap_or(w.ends_at) > now - chrono::Duration::days(7))
        .map(|w| crate::status::PublicMaintenance {
            id: format!("pm_{}", w.id),
            name: w.reason.clone(),
            status: snapshot::maintenance_status(w.starts_at, w.ends_at, w.ended_at, now),
            components: w.components.clone(),
            scheduled_for: w.starts_at,
            scheduled_until: w.ends_at,
            completed_at: w.ended_at.or((now >= w.ends_at).then_some(w.ends_at)),
        })
        .collect();
    out.sort_by_key(|m| m.scheduled_for);
    out
}

impl Engine {
    /// "Database and Cache", "our service" when no component is named.
    fn public_components(&self, inc: &Incident) -> String {
        let names: Vec<String> = inc
            .components
            .iter()
            .map(|c| {
                self.config
                    .component(c.as_str())
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| c.to_string())
            })
            .collect();
        match names.as_slice() {
            [] => "our service".into(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }

    /// The words of `field` for `inc` (`[status.templates]`: its first component's override,
    /// else its level's, else the default), with its components filled in.
    fn template(&self, field: TemplateField, inc: &Incident) -> String {
        self.config
            .status
            .templates
            .pick(field, inc.level, &inc.components)
            .replace("{components}", &self.public_components(inc))
    }

    /// The templated update of a public status.
    fn status_template(&self, status: PublicStatus, inc: &Incident) -> String {
        let field = match status {
            PublicStatus::Investigating => TemplateField::Investigating,
            PublicStatus::Identified => TemplateField::Identified,
            PublicStatus::Monitoring => TemplateField::Monitoring,
            PublicStatus::Resolved | PublicStatus::Postmortem => TemplateField::Resolved,
        };
        self.template(field, inc)
    }

    fn new_update(&self, status: PublicStatus, body: String, at: DateTime<Utc>) -> PublicUpdate {
        PublicUpdate {
            id: format!("pu_{}", crate::random_token(6)),
            status,
            body,
            created_at: at,
        }
    }

    /// Publishes `inc` in `plan`: its public incident and first update (`first`, else the
    /// template of its status).
    pub(crate) fn publish_in(
        &self,
        plan: &mut Plan<'_>,
        inc: &Incident,
        first: Option<(String, Option<PublicStatus>)>,
    ) -> PublicIncident {
        let at = plan.at;
        let (body, status) = match first {
            Some((text, status)) => (text, status.unwrap_or_else(|| public_status_of(inc))),
            None => {
                let s = public_status_of(inc);
                (self.status_template(s, inc), s)
            }
        };
        let p = PublicIncident {
            id: format!("pi_{}", crate::random_token(6)),
            incident: inc.reference,
            name: self.template(TemplateField::Title, inc),
            impact: impact_of(inc.level),
            status,
            components: inc.components.clone(),
            created_at: at,
            updated_at: at,
            resolved_at: status.is_resolved().then_some(at),
            updates: vec![self.new_update(status, body, at)],
            version: 1,
        };
        plan.extra.public.push(PublicWrite::Insert(p.clone()));
        let text = format!(
            "{} is on the public status page as “{}” (impact {}, {})",
            inc.reference,
            p.name,
            p.impact.as_str(),
            p.status.as_str()
        );
        plan.note(inc.reference, "published", EventKind::Published, text);
        p
    }

    /// A public update in `plan`, moving the public incident to `status` (`None`: it keeps its
    /// status).
    fn post_in(
        &self,
        plan: &mut Plan<'_>,
        p: &PublicIncident,
        body: String,
        status: Option<PublicStatus>,
    ) {
        let at = plan.at;
        let status = status.unwrap_or(p.status);
        let mut next = p.clone();
        next.status = status;
        next.updated_at = at;
        next.resolved_at = if status.is_resolved() {
            p.resolved_at.or(Some(at))
        } else {
            None
        };
        plan.extra.public.push(PublicWrite::AddUpdate {
            public_incident: p.id.clone(),
            update: self.new_update(status, body, at),
        });
        plan.extra.public.push(PublicWrite::Update(next));
        if status.is_resolved() {
            plan.extra.public.push(PublicWrite::EndOverrides {
                incident: p.incident,
            });
        }
    }

    /// A person's public update (`/status post`, `/incident update public:true`): posted to
    /// the incident's public incident, which is published first when it was not yet.
    pub(crate) fn public_post_in(
        &self,
        plan: &mut Plan<'_>,
        inc: &Incident,
        published: Option<&PublicIncident>,
        text: &str,
        status: Option<PublicStatus>,
    ) {
        match published {
            Some(p) => self.post_in(plan, p, text.to_string(), status),
            None => {
                self.publish_in(plan, inc, Some((text.to_string(), status)));
            }
        }
    }

    /// Schedules the publication of a declared incident at or above `[status]
    /// publish_min_level`, after the grace.
    /// With no grace (`publish_after = "0s"`) it is published in the declaring transaction.
    pub(crate) fn schedule_publish(&self, plan: &mut Plan<'_>, inc: &Incident) {
        if inc.level < self.config.status.publish_min_level {
            return;
        }
        if self.config.status.publish_after <= chrono::Duration::zero() {
            self.publish_in(plan, inc, None);
            return;
        }
        plan.jobs.push(JobChange::Schedule(NewJob {
            key: format!("publish:{}", inc.reference),
            incident: Some(inc.reference),
            due_at: plan.at + self.config.status.publish_after,
            payload: JobPayload::PublishIncident,
        }));
    }

    /// The end of the grace: publish, unless it resolved, was held, or is published already.
    pub(crate) async fn run_publish_job(&self, job: &Job) -> Result<(), StoreError> {
        let actor = Actor::system("status");
        retry_on_conflict!(async {
            let now = self.clock.now();
            let mut plan = Plan::new(self, &actor, now);
            if let Some(r) = job.incident {
                if let Some(inc) = self.store.incident(r).await? {
                    let wanted = inc.state.is_open()
                        && !self.store.status_held(r).await?
                        && self.store.public_incident_of(r).await?.is_none();
                    if wanted {
                        self.publish_in(&mut plan, &inc, None);
                    }
                }
            }
            plan.jobs.push(JobChange::Complete {
                id: job.id,
                due_at: job.due_at,
            });
            self.commit_public(plan).await
        })
    }

    /// Commits a plan that may change the public page, and rebuilds the status board.
    pub(crate) async fn commit_public(&self, plan: Plan<'_>) -> Result<(), StoreError> {
        let public = !plan.extra.public.is_empty();
        self.commit(plan.finish(None)).await?;
        if public {
            self.rebuild_status().await?;
        }
        Ok(())
    }

    /// `/status publish`, `/status hold`, `/status post`, `/status component`, `/status show`.
    pub(crate) async fn status_command(
        &self,
        actor: &Actor,
        cmd: &Command,
        ctx: &CommandContext,
    ) -> Result<Reply, StoreError> {
        if let Command::StatusShow = cmd {
            return Ok(Reply::ok(
                render::status_page(&self.status_board.current()),
                None,
            ));
        }
        if let Command::StatusComponent { component, status } = cmd {
            return self.status_component(actor, component, *status).await;
        }
        let named = match cmd {
            Command::StatusPublish { incident }
            | Command::StatusHold { incident }
            | Command::StatusPost { incident, .. } => *incident,
            _ => None,
        };
        let Some(r) = self.resolve_ref(named, ctx).await? else {
            return self.which_incident(StateFilter::Open).await;
        };
        let _turn = self.incident_lock(r).lock().await;
        let result = retry_on_conflict!(async {
            let Some(inc) = self.store.incident(r).await? else {
                return Ok(Err(no_such(r)));
            };
            let published = self.store.public_incident_of(r).await?;
            let now = self.clock.now();
            let mut plan = Plan::new(self, actor, now);
            let text = match cmd {
                Command::StatusPublish { .. } => {
                    if let Some(p) = &published {
                        return Ok(Err(format!(
                            "{r} is on the status page already (“{}”, {}); /status post text:\"…\" updates it",
                            p.name,
                            p.status.as_str()
                        )));
                    }
                    let p = self.publish_in(&mut plan, &inc, None);
                    format!(
                        "{r} is on the status page now as “{}” ({}): {}",
                        p.name,
                        p.status.as_str(),
                        p.updates[0].body
                    )
                }
                Command::StatusHold { .. } => {
                    if let Some(p) = &published {
                        return Ok(Err(format!(
                            "{r} is on the status page already (“{}”); it cannot be held back any more",
                            p.name
                        )));
                    }
                    plan.extra.public.push(PublicWrite::Hold {
                        incident: r,
                        by: actor.id.clone(),
                        at: now,
                    });
                    plan.cancel_jobs(r, crate::store::JobKind::PublishIncident);
                    let text = format!(
                        "{r} is held off the status page by {}",
                        self.config.display_name(&actor.id)
                    );
                    plan.note(r, "status-hold", EventKind::Held, text.clone());
                    text
                }
                Command::StatusPost { text, status, .. } => {
                    self.public_post_in(&mut plan, &inc, published.as_ref(), text, *status);
                    plan.timeline.push(TimelineEntry {
                        incident: r,
                        at: now,
                        actor: actor.id.clone(),
                        kind: EventKind::Update,
                        text: text.clone(),
                        public: true,
                    });
                    format!("Posted to the status page for {r}: {text}")
                }
                _ => unreachable!("a status command"),
            };
            self.commit_public(plan).await?;
            Ok(Ok(text))
        })?;
        Ok(match result {
            Ok(text) => Reply::ok(text, None),
            Err(refusal) => Reply::refused(refusal),
        })
    }

    async fn status_component(
        &self,
        actor: &Actor,
        component: &crate::domain::ComponentId,
        status: Option<ComponentStatus>,
    ) -> Result<Reply, StoreError> {
        let now = self.clock.now();
        // The override lasts as long as the open incident on that component (the newest).
        let during = self
            .store
            .incidents(StateFilter::Open)
            .await?
            .into_iter()
            .find(|i| i.components.contains(component))
            .map(|i| i.reference);
        let mut plan = Plan::new(self, actor, now);
        plan.extra.public.push(PublicWrite::Override {
            component: component.clone(),
            status,
            incident: during,
            by: actor.id.clone(),
            at: now,
        });
        plan.audit.push(AuditRecord {
            at: now,
            actor: actor.id.clone(),
            action: "status.component".into(),
            subject: format!("component:{component}"),
            detail: serde_json::json!({"status": status.map(|s| s.as_str()).unwrap_or("auto"), "incident": during.map(|r| r.to_string())}),
        });
        let text = match (status, during) {
            (Some(s), Some(r)) => format!(
                "{component} shows {} on the status page until {r} resolves",
                s.title()
            ),
            (Some(s), None) => format!(
                "{component} shows {} on the status page until /status component component:{component} status:auto",
                s.title()
            ),
            (None, _) => format!("{component} shows what its incidents say again"),
        };
        if let Some(r) = during {
            plan.note(
                r,
                &format!("override:{component}:{}", now.timestamp_millis()),
                EventKind::Update,
                text.clone(),
            );
        }
        self.commit_public(plan).await?;
        Ok(Reply::ok(text, None))
    }

    /// Brings every public incident whose internal incident moved in line with it: its status
    /// (phases, resolution, reopening) and impact (escalation), each status change with a
    /// templated update unless a person posted a public update within `[status]
    /// quiet_after_update`. Idempotent: runs after commits and on a poll, on every replica.
    pub async fn follow_public(&self) -> Result<usize, StoreError> {
        let actor = Actor::system("status");
        let mut changed = 0;
        // Unresolved ones, and those resolved within the reopen window (a reopening is news).
        let since = self.clock.now()
            - self
                .config
                .alerts
                .reopen_window
                .max(chrono::Duration::days(1));
        for p in self.store.public_incidents_open_since(since).await? {
            let Some(inc) = self.store.incident(p.incident).await? else {
                continue;
            };
            let status = followed_status(p.status, public_status_of(&inc));
            let impact = impact_of(inc.level);
            if status == p.status && impact == p.impact || p.status == PublicStatus::Postmortem {
                continue;
            }
            let now = self.clock.now();
            let mut plan = Plan::new(self, &actor, now);
            if status != p.status {
                let quiet_since = now - self.config.status.quiet_after_update;
                let person_spoke = self
                    .store
                    .timeline(p.incident)
                    .await?
                    .iter()
                    .any(|t| t.public && t.at >= quiet_since && !t.actor.contains(':'));
                // A resolution always says so in its own words: users read the last update.
                if person_spoke && !status.is_resolved() {
                    let mut next = p.clone();
                    next.status = status;
                    next.updated_at = now;
                    next.resolved_at = status.is_resolved().then_some(p.resolved_at.unwrap_or(now));
                    next.impact = impact;
                    plan.extra.public.push(PublicWrite::Update(next));
                } else {
                    let mut with_impact = p.clone();
                    with_impact.impact = impact;
                    self.post_in(
                        &mut plan,
                        &with_impact,
                        self.status_template(status, &inc),
                        Some(status),
                    );
                }
            } else {
                let mut next = p.clone();
                next.impact = impact;
                next.updated_at = now;
                plan.extra.public.push(PublicWrite::Update(next));
            }
            match self.commit_public(plan).await {
                Ok(()) => changed += 1,
                // Another replica followed it first; the next round sees its result.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    }

    /// Rebuilds the status board from the store (public incidents, overrides, maintenance).
    pub async fn rebuild_status(&self) -> Result<bool, StoreError> {
        let _turn = self.status_rebuild.lock().await;
        let now = self.clock.now();
        let incidents = self.store.public_incidents(1000).await?;
        let overrides = self.store.component_overrides().await?;
        let windows = self.store.maintenance_windows(None).await?;
        let under: Vec<crate::domain::ComponentId> = windows
            .iter()
            .filter(|w| w.is_active(now))
            .flat_map(|w| w.components.clone())
            .collect();
        let snap = snapshot::build(
            &self.config,
            incidents,
            public_maintenances(&windows, now),
            &overrides,
            &under,
            self.started_at,
            now,
        );
        Ok(self.status_board.set(snap))
    }
}
