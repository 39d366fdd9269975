//! The incident service: executes [`Command`]s and scheduled jobs against the store.
//!
//! Every door (chat, HTTP API, alert intake, scheduler) ends here, so every rule is applied once:
//! who may do what, which incident a command means, the state machine, paging the escalation
//! matrix, and what gets written (timeline, audit, outbox, jobs) in the same transaction.

use crate::audit::AuditRecord;
use crate::clock::Clock;
use crate::command::{self, Command};
use crate::config::{format_duration, Config};
use crate::domain::{
    Actor, EventKind, Incident, IncidentRef, LevelId, PersonId, Role, RoleSet, Source, StateFilter,
    TimelineEntry,
};
use crate::error::{DomainError, StoreError};
use crate::metrics::Metrics;
use crate::render;
use crate::store::{
    Changeset, IncidentWrite, Job, JobChange, MessageKind, NewJob, NewMessage, Store,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::Notify;

/// How many times a decision is re-made after losing a write race to another replica before the
/// caller gets a (transient) conflict. Each loss means another writer made progress.
pub(crate) const MAX_CONFLICT_RETRIES: usize = 50;

/// A short, growing, jittered pause before re-deciding, so racing replicas fall out of step.
pub(crate) async fn conflict_pause(attempt: usize) {
    use rand::Rng;
    let max_ms = (1u64 << attempt.min(6)).min(50);
    let ms = rand::thread_rng().gen_range(0..=max_ms);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// Job kinds the scheduler runs.
pub const JOB_RTO: &str = "rto_breach";
pub const JOB_ESCALATION: &str = "escalation_tier";

/// The outbox channel every installation has: the log.
pub const LOG_CHANNEL: &str = "log";
/// The outbox channel of the Discord bot.
pub const DISCORD_CHANNEL: &str = "discord";

/// The answer to a command, whatever door it came in by.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub ok: bool,
    pub reply: String,
    pub incident: Option<Incident>,
}

impl Reply {
    fn ok(reply: impl Into<String>, incident: Option<Incident>) -> Self {
        Reply {
            ok: true,
            reply: reply.into(),
            incident,
        }
    }
    fn refused(reply: impl Into<String>) -> Self {
        Reply {
            ok: false,
            reply: reply.into(),
            incident: None,
        }
    }
}

/// Where a command came from.
#[derive(Debug, Clone, Default)]
pub struct CommandContext {
    pub source: Option<Source>,
    /// The incident of the chat channel the command was typed in, if any.
    pub channel_incident: Option<IncidentRef>,
}

pub struct Engine {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Rung after every commit that queued messages, so the dispatcher does not wait for its poll.
    outbox_wakeup: Arc<Notify>,
    /// Lock stripes serialising decisions about one incident within this process.
    incident_locks: Vec<tokio::sync::Mutex<()>>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Engine {
            store,
            config,
            clock,
            metrics,
            outbox_wakeup: Arc::new(Notify::new()),
            incident_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
    pub fn outbox_wakeup(&self) -> Arc<Notify> {
        self.outbox_wakeup.clone()
    }

    /// The actor for a person id. Anyone not configured is a viewer under the id they gave.
    pub fn actor_for_person(&self, id: &str) -> Actor {
        match self.config.person(id) {
            Some(p) => Actor {
                id: p.id.to_string(),
                person: Some(p.id.clone()),
                roles: p.roles.clone(),
            },
            None => Actor {
                id: id.to_string(),
                person: None,
                roles: RoleSet::new([Role::Viewer]),
            },
        }
    }

    /// The actor for a Discord member: the configured person with that `discord_user_id`, else
    /// an unconfigured member identified by snowflake (`discord:<id>`) with the Spotter roles
    /// their Discord roles map to (`[[discord.roles]]`), at least viewer. Never a display name.
    pub fn actor_for_discord(&self, user_id: &str, member_roles: &[String]) -> Actor {
        if let Some(p) = self
            .config
            .people
            .values()
            .find(|p| p.discord_user_id.as_deref() == Some(user_id))
        {
            return Actor {
                id: p.id.to_string(),
                person: Some(p.id.clone()),
                roles: p.roles.clone(),
            };
        }
        let mapped = self
            .config
            .discord
            .iter()
            .flat_map(|d| d.role_map.iter())
            .filter(|(id, _)| member_roles.contains(id))
            .map(|(_, r)| *r);
        Actor {
            id: format!("discord:{user_id}"),
            person: None,
            roles: RoleSet::new(std::iter::once(Role::Viewer).chain(mapped)),
        }
    }

    /// Parses and runs one command line.
    ///
    /// # Errors
    /// Only infrastructure failures; a refused command is an `Ok(Reply { ok: false, .. })`.
    #[tracing::instrument(skip_all, fields(actor = %actor.id), err)]
    pub async fn execute(
        &self,
        actor: &Actor,
        line: &str,
        ctx: &CommandContext,
    ) -> Result<Reply, StoreError> {
        let result = match command::parse(line, &self.config) {
            Ok(cmd) => self.run(actor, cmd, ctx).await,
            Err(e) => Ok(Reply::refused(e.0)),
        };
        self.metrics.command_outcome(match &result {
            Ok(r) if r.ok => "ok",
            Ok(_) => "refused",
            Err(_) => "error",
        });
        result
    }

    /// Runs a parsed command.
    pub async fn run(
        &self,
        actor: &Actor,
        cmd: Command,
        ctx: &CommandContext,
    ) -> Result<Reply, StoreError> {
        let spec = cmd.spec();
        // Incident commands needing `commander` also admit that incident's own commander, so the
        // check waits until the incident is known.
        let incident_scoped = cmd.incident().is_some();
        if !permitted(actor, spec.role, incident_scoped) {
            return Ok(Reply::refused(self.denied(actor, spec.role, &spec.name())));
        }
        match cmd {
            Command::Help { topic } => Ok(Reply::ok(command::help(topic, &self.config), None)),
            Command::List { filter } => {
                let list = self.store.incidents(filter).await?;
                Ok(Reply::ok(
                    render::list(&list, filter, &self.config, self.clock.now()),
                    None,
                ))
            }
            Command::Declare {
                level,
                title,
                components,
                commander,
            } => {
                let source = ctx.source.unwrap_or(Source::Chat);
                self.declare(actor, level, title, components, commander, source)
                    .await
            }
            Command::Show { incident } => {
                let Some(inc) = self.resolve_ref(incident, ctx).await? else {
                    return self.which_incident().await;
                };
                match self.store.incident(inc).await? {
                    Some(i) => Ok(Reply::ok(
                        render::incident(&i, &self.config, self.clock.now()),
                        Some(i),
                    )),
                    None => Ok(Reply::refused(no_such(inc))),
                }
            }
            Command::Timeline { incident } => {
                let Some(inc) = self.resolve_ref(incident, ctx).await? else {
                    return self.which_incident().await;
                };
                match self.store.incident(inc).await? {
                    Some(i) => {
                        let t = self.store.timeline(inc).await?;
                        Ok(Reply::ok(render::timeline(&i, &t, &self.config), Some(i)))
                    }
                    None => Ok(Reply::refused(no_such(inc))),
                }
            }
            Command::Oncall { level } => Ok(Reply::ok(render::oncall(&self.config, level), None)),
            Command::Page {
                target,
                text,
                incident,
            } => self.page(actor, &target, text, incident, ctx).await,
            Command::MaintenanceStart {
                components,
                duration,
                reason,
            } => {
                self.maintenance_start(actor, components, duration, reason)
                    .await
            }
            Command::MaintenanceList => {
                let now = self.clock.now();
                let windows = self.store.maintenance_windows(Some(now)).await?;
                Ok(Reply::ok(render::maintenance(&windows, now), None))
            }
            Command::MaintenanceEnd { id } => self.maintenance_end(actor, id).await,
            other => {
                let Some(inc) = self.resolve_ref(other.incident().flatten(), ctx).await? else {
                    return self.which_incident().await;
                };
                self.mutate(actor, inc, &other).await
            }
        }
    }

    fn denied(&self, actor: &Actor, role: Role, what: &str) -> String {
        let who = if actor.person.is_some() {
            format!(
                "{} has roles {}",
                actor.id,
                actor
                    .roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!(
                "`{}` is not a configured person, so only a viewer",
                actor.id
            )
        };
        format!("not allowed: {what} needs role {role}; {who}")
    }

    /// The incident a command means: the one named, else the channel's, else the only open one.
    async fn resolve_ref(
        &self,
        named: Option<IncidentRef>,
        ctx: &CommandContext,
    ) -> Result<Option<IncidentRef>, StoreError> {
        if let Some(r) = named.or(ctx.channel_incident) {
            return Ok(Some(r));
        }
        let open = self.store.incidents(StateFilter::Open).await?;
        Ok(if open.len() == 1 {
            Some(open[0].reference)
        } else {
            None
        })
    }

    async fn which_incident(&self) -> Result<Reply, StoreError> {
        let open = self.store.incidents(StateFilter::Open).await?;
        Ok(Reply::refused(if open.is_empty() {
            "no incident is open; name one with incident:INC-<number>".to_string()
        } else {
            let refs: Vec<String> = open.iter().rev().map(|i| i.reference.to_string()).collect();
            format!(
                "{} incidents are open ({}); name one with incident:INC-<number>",
                refs.len(),
                refs.join(", ")
            )
        }))
    }

    /// Declares an incident. Public so alert intake can declare through the same rules.
    pub async fn declare(
        &self,
        actor: &Actor,
        level: LevelId,
        title: String,
        components: Vec<crate::domain::ComponentId>,
        commander: Option<PersonId>,
        source: Source,
    ) -> Result<Reply, StoreError> {
        self.declare_with(
            actor,
            level,
            title,
            components,
            commander,
            source,
            &|_, _| {},
        )
        .await
    }

    /// Declares an incident; `also` adds what else belongs in the same transaction (the alert
    /// that caused it, a completed job, …), given the numbered incident.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn declare_with(
        &self,
        actor: &Actor,
        level: LevelId,
        title: String,
        components: Vec<crate::domain::ComponentId>,
        commander: Option<PersonId>,
        source: Source,
        also: &(dyn Fn(&mut Plan<'_>, &Incident) + Send + Sync),
    ) -> Result<Reply, StoreError> {
        let Some(lvl) = self.config.level(level) else {
            return Ok(Reply::refused(format!(
                "unknown level {level}; accepted: {}",
                self.config.level_choices()
            )));
        };
        let now = self.clock.now();
        // The store picks the number inside its serialised write and asks for the changeset of
        // that incident, so concurrent declares never contend for a number.
        let built: std::sync::Mutex<Option<Incident>> = std::sync::Mutex::new(None);
        let build = |reference: IncidentRef| {
            let inc = Incident::declare(
                reference,
                level,
                lvl.rto,
                title.clone(),
                components.clone(),
                commander.clone(),
                source,
                actor.id.clone(),
                now,
            );
            let mut plan = Plan::new(self, actor, now);
            let text = format!(
                "{} declared at level {} {} by {}: {} (RTO {}, deadline {})",
                inc.reference,
                level,
                lvl.name,
                self.config.display_name(&actor.id),
                inc.title,
                format_duration(lvl.rto),
                render::time(inc.rto_deadline)
            );
            plan.event(&inc, EventKind::Declared, text, false);
            plan.audit("incident.declare", &inc, serde_json::json!({"level": level.0, "title": inc.title, "source": source.as_str()}));
            plan.start_escalation(&inc);
            plan.schedule_rto(&inc);
            also(&mut plan, &inc);
            *built.lock().unwrap() = Some(inc.clone());
            plan.finish(Some(IncidentWrite::Insert(inc)))
        };
        self.store.commit_new_incident(&build).await?;
        self.outbox_wakeup.notify_one();
        let mut inc = built
            .into_inner()
            .unwrap()
            .expect("the store built the incident");
        inc.version = 1;
        let reply = render::incident(&inc, &self.config, now);
        Ok(Reply::ok(format!("Declared {reply}"), Some(inc)))
    }

    /// Read, decide, commit; again on a lost race.
    async fn mutate(
        &self,
        actor: &Actor,
        r: IncidentRef,
        cmd: &Command,
    ) -> Result<Reply, StoreError> {
        // One decision per incident at a time in this process, so local writers never race;
        // other replicas can still, and lose to optimistic versioning and retry below.
        let _turn = self.incident_lock(r).lock().await;
        for attempt in 0.. {
            let Some(current) = self.store.incident(r).await? else {
                return Ok(Reply::refused(no_such(r)));
            };
            let spec = cmd.spec();
            let is_commander = actor.person.is_some() && actor.person == current.commander;
            if !permitted(actor, spec.role, is_commander) {
                return Ok(Reply::refused(self.denied(actor, spec.role, &spec.name())));
            }
            let now = self.clock.now();
            let mut next = current.clone();
            let mut plan = Plan::new(self, actor, now);
            let done = match self.decide(&mut next, &mut plan, cmd) {
                Ok(text) => text,
                Err(e) => return Ok(Reply::refused(e.0)),
            };
            let cs = plan.finish(Some(IncidentWrite::Update(next.clone())));
            match self.commit(cs).await {
                Ok(()) => {
                    next.version += 1;
                    return Ok(Reply::ok(done, Some(next)));
                }
                Err(StoreError::Conflict(_)) if attempt < MAX_CONFLICT_RETRIES => {
                    conflict_pause(attempt).await
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!()
    }

    pub(crate) fn incident_lock(&self, r: IncidentRef) -> &tokio::sync::Mutex<()> {
        &self.incident_locks[(r.number().unsigned_abs() as usize) % self.incident_locks.len()]
    }

    /// The rules for each mutating command: change `inc`, record in `plan`, return the reply.
    fn decide(
        &self,
        inc: &mut Incident,
        plan: &mut Plan<'_>,
        cmd: &Command,
    ) -> Result<String, DomainError> {
        let who = self.config.display_name(&plan.actor.id);
        let r = inc.reference;
        match cmd {
            Command::Ack { .. } => {
                inc.acknowledge(&plan.actor.id, plan.at)?;
                plan.cancel_escalation(inc);
                plan.event(
                    inc,
                    EventKind::Acknowledged,
                    format!("{r} acknowledged by {who}; paging stopped"),
                    false,
                );
                plan.audit("incident.ack", inc, serde_json::json!({}));
                Ok(format!("{r} acknowledged by {who}; paging stopped"))
            }
            Command::Update { text, public, .. } => {
                inc.ensure_not_closed("updated")?;
                plan.event(inc, EventKind::Update, text.clone(), *public);
                plan.audit(
                    "incident.update",
                    inc,
                    serde_json::json!({"public": public}),
                );
                Ok(format!(
                    "{r}: {} update posted",
                    if *public { "public" } else { "internal" }
                ))
            }
            Command::Escalate { level, .. } => {
                let from = inc.level;
                let to = match level {
                    Some(l) => *l,
                    None => self
                        .config
                        .levels
                        .keys()
                        .find(|l| **l > from)
                        .copied()
                        .ok_or_else(|| {
                            DomainError::new(format!("{r} is already at the highest level {from}"))
                        })?,
                };
                let lvl = self.config.level(to).expect("parser checked the level");
                inc.change_level(to, lvl.rto)?;
                let verb = if to > from {
                    "escalated"
                } else {
                    "de-escalated"
                };
                let text = format!(
                    "{r} {verb} from level {from} to {to} {} by {who}; RTO deadline now {}",
                    lvl.name,
                    render::time(inc.rto_deadline)
                );
                plan.event(inc, EventKind::LevelChanged, text.clone(), false);
                plan.audit(
                    "incident.escalate",
                    inc,
                    serde_json::json!({"from": from.0, "to": to.0}),
                );
                plan.cancel_escalation(inc);
                if to > from {
                    plan.start_escalation(inc);
                }
                plan.schedule_rto(inc);
                Ok(text)
            }
            Command::Resolve { summary, .. } => {
                inc.resolve(summary.clone(), plan.at)?;
                plan.cancel_escalation(inc);
                plan.jobs.push(JobChange::CancelPrefix(format!("rto:{r}:")));
                let took = render::duration_between(inc.declared_at, plan.at);
                let mut text = format!("{r} resolved by {who} after {took}");
                if let Some(s) = summary {
                    text.push_str(&format!(": {s}"));
                }
                let rto_met = plan.at <= inc.rto_deadline;
                text.push_str(if rto_met {
                    " (within RTO)"
                } else {
                    " (RTO missed)"
                });
                plan.event(inc, EventKind::Resolved, text.clone(), false);
                plan.audit(
                    "incident.resolve",
                    inc,
                    serde_json::json!({"summary": summary, "rto_met": rto_met}),
                );
                Ok(text)
            }
            Command::Reopen { reason, .. } => {
                inc.reopen()?;
                let mut text = format!("{r} reopened by {who}");
                if let Some(reason) = reason {
                    text.push_str(&format!(": {reason}"));
                }
                plan.event(inc, EventKind::Reopened, text.clone(), false);
                plan.audit(
                    "incident.reopen",
                    inc,
                    serde_json::json!({"reason": reason}),
                );
                plan.start_escalation(inc);
                plan.schedule_rto(inc);
                Ok(text)
            }
            Command::Close { .. } => {
                inc.close(plan.at)?;
                let text = format!("{r} closed by {who}");
                plan.event(inc, EventKind::Closed, text.clone(), false);
                plan.audit("incident.close", inc, serde_json::json!({}));
                Ok(text)
            }
            Command::Commander { user, .. } => {
                inc.set_commander(user.clone())?;
                let text = format!(
                    "{r}: {} is now the incident commander (set by {who})",
                    self.config.display_name(user.as_str())
                );
                plan.event(inc, EventKind::CommanderChanged, text.clone(), false);
                plan.audit(
                    "incident.commander",
                    inc,
                    serde_json::json!({"commander": user}),
                );
                Ok(text)
            }
            Command::Phase { phase, .. } => {
                let from = inc.phase;
                inc.set_phase(*phase)?;
                let text = format!(
                    "{r} moved from {} to {} by {who}",
                    from.title(),
                    phase.title()
                );
                plan.event(inc, EventKind::PhaseChanged, text.clone(), false);
                plan.audit(
                    "incident.phase",
                    inc,
                    serde_json::json!({"from": from, "to": phase}),
                );
                Ok(text)
            }
            Command::Hold { .. } => {
                if !inc.state.is_open() {
                    return Err(DomainError::new(format!(
                        "{r} is {}; only an open incident can be held open",
                        inc.state
                    )));
                }
                plan.jobs
                    .push(JobChange::CancelPrefix(crate::intake::autoresolve_prefix(
                        r,
                    )));
                let text = format!("{r} held open by {who}: it will not resolve by itself");
                plan.event(inc, EventKind::Update, text.clone(), false);
                plan.audit("incident.hold", inc, serde_json::json!({}));
                Ok(text)
            }
            Command::Declare { .. }
            | Command::Show { .. }
            | Command::Timeline { .. }
            | Command::List { .. }
            | Command::Help { .. }
            | Command::Page { .. }
            | Command::Oncall { .. }
            | Command::MaintenanceStart { .. }
            | Command::MaintenanceList
            | Command::MaintenanceEnd { .. } => {
                unreachable!("not a mutation of one incident")
            }
        }
    }

    async fn commit(&self, cs: Changeset) -> Result<(), StoreError> {
        let wake = !cs.outbox.is_empty();
        self.store.commit(cs).await?;
        if wake {
            self.outbox_wakeup.notify_one();
        }
        Ok(())
    }

    /// Runs one claimed job and marks it complete in the same transaction as its effects.
    #[tracing::instrument(skip_all, fields(job = %job.key), err)]
    pub async fn run_job(&self, job: &Job) -> Result<(), StoreError> {
        match job.kind.as_str() {
            crate::intake::JOB_HEARTBEAT => return self.run_heartbeat_job(job).await,
            crate::intake::JOB_AUTORESOLVE => {
                let _turn = match job.incident {
                    Some(r) => Some(self.incident_lock(r).lock().await),
                    None => None,
                };
                return self.run_autoresolve_job(job).await;
            }
            _ => {}
        }
        let actor = Actor::system("scheduler");
        let _turn = match job.incident {
            Some(r) => Some(self.incident_lock(r).lock().await),
            None => None,
        };
        for attempt in 0.. {
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
            match self.commit(plan.finish(write)).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict(_)) if attempt < MAX_CONFLICT_RETRIES => {
                    conflict_pause(attempt).await
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!()
    }

    /// What a due job does to its incident; returns whether the incident row must be written
    /// (it is, whenever events are added, so the version guards against racing commands).
    fn job_effects(&self, job: &Job, inc: &mut Incident, plan: &mut Plan<'_>) -> bool {
        match job.kind.as_str() {
            JOB_RTO if inc.state.is_open() && plan.at >= inc.rto_deadline => {
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
            JOB_ESCALATION => {
                let tier = job
                    .payload
                    .get("tier")
                    .and_then(|t| t.as_u64())
                    .unwrap_or(0) as usize;
                let level = job
                    .payload
                    .get("level")
                    .and_then(|t| t.as_u64())
                    .unwrap_or(0) as u8;
                // A tier pages only while nobody has acknowledged and the level is unchanged.
                if inc.state == crate::domain::State::Declared && inc.level.0 == level {
                    plan.page_tier(inc, tier);
                    true
                } else {
                    false
                }
            }
            _ => false,
        }
    }
}

/// The permission rule: the role itself, or, for commander work, being the commander of the
/// incident concerned.
fn permitted(actor: &Actor, required: Role, commands_the_incident: bool) -> bool {
    actor.allows(required) || (required == Role::Commander && commands_the_incident)
}

/// Messages about one incident on one chat channel go out one at a time, in order.
fn chat_ordering_key(channel: &str, r: IncidentRef) -> String {
    format!("chat:{channel}:{r}")
}

fn no_such(r: IncidentRef) -> String {
    format!("{r} does not exist; /incident list state:all shows every incident")
}

/// Collects what one decision writes.
pub(crate) struct Plan<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) actor: &'a Actor,
    pub(crate) at: DateTime<Utc>,
    timeline: Vec<TimelineEntry>,
    audit: Vec<AuditRecord>,
    outbox: Vec<NewMessage>,
    pub(crate) jobs: Vec<JobChange>,
    /// Alert rows, alert groups, maintenance windows and heartbeats this decision writes.
    pub(crate) extra: Changeset,
}

impl<'a> Plan<'a> {
    pub(crate) fn new(engine: &'a Engine, actor: &'a Actor, at: DateTime<Utc>) -> Self {
        Plan {
            engine,
            actor,
            at,
            timeline: vec![],
            audit: vec![],
            outbox: vec![],
            jobs: vec![],
            extra: Changeset::default(),
        }
    }

    pub(crate) fn finish(mut self, incident: Option<IncidentWrite>) -> Changeset {
        // Any write to an incident refreshes its card, ahead of the posts it caused (so on
        // declare the card, and the channel it lives in, come first).
        if let Some(IncidentWrite::Insert(i) | IncidentWrite::Update(i)) = &incident {
            let cards: Vec<NewMessage> = self
                .engine
                .config
                .chat_channels()
                .into_iter()
                .map(|channel| NewMessage {
                    channel: channel.into(),
                    kind: MessageKind::CardUpdate,
                    target: format!("incident:{}", i.reference),
                    incident: Some(i.reference),
                    text: format!(
                        "{} is {}, level {}, phase {}",
                        i.reference, i.state, i.level, i.phase
                    ),
                    priority: 0,
                    idempotency_key: format!("card:{channel}:{}:v{}", i.reference, i.version + 1),
                    ordering_key: chat_ordering_key(channel, i.reference),
                })
                .collect();
            self.outbox.splice(0..0, cards);
        }
        Changeset {
            at: Some(self.at),
            incident,
            timeline: self.timeline,
            audit: self.audit,
            outbox: self.outbox,
            jobs: self.jobs,
            alerts: self.extra.alerts,
            alert_groups: self.extra.alert_groups,
            maintenance: self.extra.maintenance,
            heartbeats: self.extra.heartbeats,
        }
    }

    /// A timeline event, and its post to the incident's chat channels.
    pub(crate) fn event(&mut self, inc: &Incident, kind: EventKind, text: String, public: bool) {
        let r = inc.reference;
        let n = self.timeline.len();
        for channel in self.engine.config.chat_channels() {
            self.outbox.push(NewMessage {
                channel: channel.into(),
                kind: MessageKind::ChatPost,
                target: format!("incident:{r}"),
                incident: Some(r),
                text: text.clone(),
                priority: 0,
                idempotency_key: format!("chat:{channel}:{r}:v{}:{n}", inc.version),
                ordering_key: chat_ordering_key(channel, r),
            });
        }
        self.timeline.push(TimelineEntry {
            incident: r,
            at: self.at,
            actor: self.actor.id.clone(),
            kind,
            text,
            public,
        });
    }

    pub(crate) fn audit(&mut self, action: &str, inc: &Incident, mut detail: serde_json::Value) {
        if let Some(map) = detail.as_object_mut() {
            map.insert("state".into(), inc.state.as_str().into());
        }
        self.audit.push(AuditRecord {
            at: self.at,
            actor: self.actor.id.clone(),
            action: action.into(),
            subject: inc.reference.to_string(),
            detail,
        });
    }

    /// Pages the first tier of the incident's level now and schedules the later tiers, which
    /// fire only while the incident stays unacknowledged.
    pub(crate) fn start_escalation(&mut self, inc: &Incident) {
        let Some(tiers) = self.engine.config.escalation.get(&inc.level) else {
            return;
        };
        for (i, tier) in tiers.iter().enumerate() {
            if tier.after <= chrono::Duration::zero() {
                self.page_tier(inc, i);
            } else {
                self.jobs.push(JobChange::Schedule(NewJob {
                    key: format!("esc:{}:v{}:t{i}", inc.reference, inc.version),
                    kind: JOB_ESCALATION.into(),
                    incident: Some(inc.reference),
                    due_at: self.at + tier.after,
                    payload: serde_json::json!({"tier": i, "level": inc.level.0}),
                }));
            }
        }
    }

    pub(crate) fn cancel_escalation(&mut self, inc: &Incident) {
        self.jobs
            .push(JobChange::CancelPrefix(format!("esc:{}:", inc.reference)));
    }

    pub(crate) fn schedule_rto(&mut self, inc: &Incident) {
        self.jobs.push(JobChange::Schedule(NewJob {
            key: format!("rto:{}:deadline", inc.reference),
            kind: JOB_RTO.into(),
            incident: Some(inc.reference),
            due_at: inc.rto_deadline.max(self.at),
            payload: serde_json::json!({}),
        }));
    }

    pub(crate) fn page_tier(&mut self, inc: &Incident, tier: usize) {
        let config = &self.engine.config;
        let Some(t) = config
            .escalation
            .get(&inc.level)
            .and_then(|tiers| tiers.get(tier))
        else {
            return;
        };
        let level = config
            .level(inc.level)
            .map(|l| l.name.as_str())
            .unwrap_or("");
        let r = inc.reference;
        for person in &t.people {
            self.outbox.push(NewMessage {
                channel: LOG_CHANNEL.into(),
                kind: MessageKind::Page,
                target: person.to_string(),
                incident: Some(r),
                text: format!(
                    "[PAGE] {r} level {} {level}: {} — acknowledge with /incident ack incident:{r}",
                    inc.level, inc.title
                ),
                priority: 10,
                idempotency_key: format!(
                    "page:{r}:v{}:L{}:t{tier}:{person}",
                    inc.version, inc.level
                ),
                ordering_key: format!("page:{person}"),
            });
        }
        let names: Vec<String> = t
            .people
            .iter()
            .map(|p| config.display_name(p.as_str()))
            .collect();
        let text = format!(
            "paged tier {} of level {} ({}): {}",
            tier + 1,
            inc.level,
            t.targets.join(", "),
            names.join(", ")
        );
        self.event(inc, EventKind::Paged, text, false);
    }
}

/// Paging by hand and maintenance windows: commands that are not about one incident's state.
impl Engine {
    async fn page(
        &self,
        actor: &Actor,
        target: &str,
        text: Option<String>,
        incident: Option<IncidentRef>,
        ctx: &CommandContext,
    ) -> Result<Reply, StoreError> {
        let people: Vec<PersonId> = match self.config.person(target) {
            Some(p) => vec![p.id.clone()],
            None => self
                .config
                .teams
                .get(target)
                .map(|t| t.members.clone())
                .unwrap_or_default(),
        };
        let who = self.config.display_name(&actor.id);
        let about = incident.or(ctx.channel_incident);
        let token = crate::random_token(8);
        for attempt in 0.. {
            let now = self.clock.now();
            let mut plan = Plan::new(self, actor, now);
            let mut write = None;
            let subject = match about {
                Some(r) => {
                    let Some(inc) = self.store.incident(r).await? else {
                        return Ok(Reply::refused(no_such(r)));
                    };
                    let names: Vec<String> = people
                        .iter()
                        .map(|p| self.config.display_name(p.as_str()))
                        .collect();
                    let mut line = format!("{who} paged {target}: {}", names.join(", "));
                    if let Some(t) = &text {
                        line.push_str(&format!(" — {t}"));
                    }
                    plan.event(&inc, EventKind::Paged, line, false);
                    write = Some(IncidentWrite::Update(inc));
                    r.to_string()
                }
                None => "page".to_string(),
            };
            for person in &people {
                let mut body = format!("[PAGE] from {who}");
                if let Some(r) = about {
                    body.push_str(&format!(" about {r}"));
                }
                if let Some(t) = &text {
                    body.push_str(&format!(": {t}"));
                }
                plan.outbox.push(NewMessage {
                    channel: LOG_CHANNEL.into(),
                    kind: MessageKind::Page,
                    target: person.to_string(),
                    incident: about,
                    text: body,
                    priority: 10,
                    idempotency_key: format!("page:manual:{token}:{person}"),
                    ordering_key: format!("page:{person}"),
                });
            }
            plan.audit.push(AuditRecord {
                at: now,
                actor: actor.id.clone(),
                action: "page".into(),
                subject,
                detail: serde_json::json!({"target": target, "people": people, "text": text}),
            });
            match self.commit(plan.finish(write)).await {
                Ok(()) => {
                    let names: Vec<String> = people
                        .iter()
                        .map(|p| self.config.display_name(p.as_str()))
                        .collect();
                    return Ok(Reply::ok(
                        format!("Paged {target}: {}", names.join(", ")),
                        None,
                    ));
                }
                Err(StoreError::Conflict(_)) if attempt < MAX_CONFLICT_RETRIES => {
                    conflict_pause(attempt).await
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!()
    }

    async fn maintenance_start(
        &self,
        actor: &Actor,
        components: Vec<crate::domain::ComponentId>,
        duration: chrono::Duration,
        reason: String,
    ) -> Result<Reply, StoreError> {
        for attempt in 0.. {
            let now = self.clock.now();
            let id = self.store.next_maintenance_id().await?;
            let window = crate::store::Maintenance {
                id,
                components: components.clone(),
                starts_at: now,
                ends_at: now + duration,
                reason: reason.clone(),
                created_by: actor.id.clone(),
                ended_at: None,
                ended_by: None,
            };
            let mut plan = Plan::new(self, actor, now);
            plan.audit.push(AuditRecord {
                at: now,
                actor: actor.id.clone(),
                action: "maintenance.start".into(),
                subject: format!("maintenance:{id}"),
                detail: serde_json::json!({"components": components, "ends_at": window.ends_at, "reason": reason}),
            });
            plan.extra
                .maintenance
                .push(crate::store::MaintenanceWrite::Insert(window.clone()));
            match self.commit(plan.finish(None)).await {
                Ok(()) => {
                    return Ok(Reply::ok(
                        format!(
                            "Maintenance #{id} started on {} until {}: {reason}. Matching alerts are recorded but open no incident.",
                            render::components(&window.components),
                            render::time(window.ends_at)
                        ),
                        None,
                    ))
                }
                Err(StoreError::Conflict(_)) if attempt < MAX_CONFLICT_RETRIES => conflict_pause(attempt).await,
                Err(e) => return Err(e),
            }
        }
        unreachable!()
    }

    async fn maintenance_end(&self, actor: &Actor, id: Option<i64>) -> Result<Reply, StoreError> {
        let now = self.clock.now();
        let active = self.store.maintenance_windows(Some(now)).await?;
        let window = match id {
            Some(id) => match active.iter().find(|w| w.id == id) {
                Some(w) => w,
                None => {
                    return Ok(Reply::refused(format!(
                        "maintenance #{id} is not active; /maintenance list shows the active ones"
                    )))
                }
            },
            None => match active.as_slice() {
                [one] => one,
                [] => return Ok(Reply::refused("no maintenance window is active")),
                many => {
                    let ids: Vec<String> = many.iter().map(|w| format!("#{}", w.id)).collect();
                    return Ok(Reply::refused(format!(
                        "{} maintenance windows are active ({}); name one with id:<n>",
                        many.len(),
                        ids.join(", ")
                    )));
                }
            },
        };
        let mut plan = Plan::new(self, actor, now);
        plan.audit.push(AuditRecord {
            at: now,
            actor: actor.id.clone(),
            action: "maintenance.end".into(),
            subject: format!("maintenance:{}", window.id),
            detail: serde_json::json!({}),
        });
        plan.extra
            .maintenance
            .push(crate::store::MaintenanceWrite::End {
                id: window.id,
                at: now,
                by: actor.id.clone(),
            });
        self.commit(plan.finish(None)).await?;
        Ok(Reply::ok(
            format!(
                "Maintenance #{} on {} ended",
                window.id,
                render::components(&window.components)
            ),
            None,
        ))
    }
}
