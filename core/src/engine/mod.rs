//! The incident service: executes [`Command`]s and scheduled jobs against the store.
//!
//! Every door (chat, HTTP API, alert intake, scheduler) ends here, so every rule is applied once:
//! who may do what, which incident a command means, the state machine, paging the escalation
//! matrix, and what gets written (timeline, audit, outbox, jobs) in the same transaction.
//!
//! Map of the engine:
//! - this file: the [`Engine`], dispatch of a command to its rule, permissions, and which
//!   incident a command means.
//! - [`plan`]: the changeset one decision builds (timeline, audit, outbox, jobs) before commit.
//! - [`retry`]: the one read-decide-commit loop that re-decides after a lost write race.
//! - [`declare`]: declaring an incident (for people, alerts and the dead man's switch alike).
//! - [`commands`]: the rules of each command that changes one incident.
//! - [`paging`]: the escalation matrix walked over unacknowledged time, pages through contact
//!   methods, and `/page`.
//! - [`pages`]: after a page leaves: fall-through to the next contact method, acknowledgement
//!   links.
//! - [`jobs`]: scheduled work (RTO breaches, escalation tiers) run by the scheduler.
//! - [`maintenance`]: maintenance windows.
//! - [`oncall`]: `/oncall override`, someone else on call in a rotation for a while.
//! - [`intake`]: alerts become incidents (dedup, grouping, resolution, flapping, maintenance),
//!   and [`heartbeat`], the dead man's switch; [`notification`] decides a notification's alerts
//!   together, so it is written in one transaction.

use crate::audit::AuditRecord;
use crate::clock::Clock;
use crate::command::{self, Command};
use crate::config::{format_duration, Config};
use crate::domain::{
    Actor, Channel, EventKind, Incident, IncidentRef, LevelId, PersonId, Role, RoleSet, Source,
    StateFilter, TimelineEntry,
};
use crate::error::{DomainError, StoreError};
use crate::metrics::Metrics;
use crate::render;
use crate::store::{
    Changeset, IncidentWrite, Job, JobChange, JobKind, MessageKind, NewJob, NewMessage, Store,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::Notify;

mod announce;
mod approvals;
mod commands;
mod declare;
pub mod heartbeat;
pub mod intake;
mod jobs;
mod maintenance;
mod notes;
mod notification;
mod oncall;
mod pages;
mod paging;
pub(crate) mod plan;
pub(crate) mod retry;
mod runbooks;
mod runs;
mod status;
pub mod subscribers;

pub use pages::{AckLinkRefusal, AckLinkView};
pub(crate) use plan::Plan;
pub(crate) use retry::retry_on_conflict;
pub(crate) use runbooks::gate_policy;
pub use runs::{RunLost, RUN_LEASE};

/// The answer to a command, whatever door it came in by.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub ok: bool,
    /// What to tell the person: the outcome, or why not. (`reply` on the wire.)
    #[serde(rename = "reply")]
    pub text: String,
    pub incident: Option<Incident>,
    /// The run a `/runbook` command requested or acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunBrief>,
}

/// A run as a command's answer carries it: `"run": {"id": 3, "state": "pending_approval"}`. A
/// dry run has no id and carries its plan instead.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunBrief {
    pub id: Option<i64>,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<String>>,
}

impl Reply {
    fn ok(reply: impl Into<String>, incident: Option<Incident>) -> Self {
        Reply {
            ok: true,
            text: reply.into(),
            incident,
            run: None,
        }
    }
    fn refused(reply: impl Into<String>) -> Self {
        Reply {
            ok: false,
            text: reply.into(),
            incident: None,
            run: None,
        }
    }
    fn with_run(mut self, run: &crate::domain::Run) -> Self {
        self.run = Some(RunBrief {
            id: Some(run.id),
            state: run.state.as_str().to_string(),
            plan: None,
        });
        self
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
    /// Rung after every commit that queued messages, so the dispatchers (chat, and the pages
    /// lane) do not wait for their poll.
    outbox_wakeup: Arc<Notify>,
    page_wakeup: Arc<Notify>,
    /// Lock stripes serialising decisions about one incident within this process.
    incident_locks: Vec<tokio::sync::Mutex<()>>,
    /// Signs acknowledgement links (see [`pages`]); random unless the application sets it.
    link_key: [u8; 32],
    /// The loaded runbooks (none unless the application loads them).
    runbooks: Arc<crate::runbook::Runbooks>,
    /// Redacts secrets from everything a run writes or posts.
    redactor: Arc<crate::runbook::redact::Redactor>,
    /// Runs probes for `/system check` (the run worker holds its own handle).
    executor: Option<Arc<dyn crate::runbook::Executor>>,
    /// Rung when a run is approved, so the run worker does not wait for its poll.
    run_wakeup: Arc<Notify>,
    /// What the public status page shows, rebuilt after public changes.
    status_board: Arc<crate::status::StatusBoard>,
    /// Held from a rebuild's reads to its `set`: rebuilds racing (after two commits, or a
    /// commit and the publisher's refresh) would otherwise let the one that read first set its
    /// older snapshot last, and the public page would go back until the next refresh.
    status_rebuild: tokio::sync::Mutex<()>,
    /// Rung after commits that changed an incident, so the public status follows at once.
    status_wakeup: Arc<Notify>,
    /// Rung when broadcasts were queued, so the broadcasts lane does not wait for its poll.
    broadcast_wakeup: Arc<Notify>,
    /// When this engine was built: the page's `updated_at` before anything public happened.
    started_at: DateTime<Utc>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let started_at = clock.now();
        let status_board = Arc::new(crate::status::StatusBoard::new(
            crate::status::snapshot::build(
                &config,
                vec![],
                vec![],
                &[],
                &[],
                started_at,
                started_at,
            ),
        ));
        Engine {
            store,
            config,
            clock,
            metrics,
            outbox_wakeup: Arc::new(Notify::new()),
            page_wakeup: Arc::new(Notify::new()),
            incident_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            link_key: {
                use rand::RngCore;
                let mut k = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut k);
                k
            },
            status_board,
            status_rebuild: tokio::sync::Mutex::new(()),
            status_wakeup: Arc::new(Notify::new()),
            broadcast_wakeup: Arc::new(Notify::new()),
            started_at,
            runbooks: Arc::new(crate::runbook::Runbooks::default()),
            redactor: Arc::new(crate::runbook::redact::Redactor::default()),
            executor: None,
            run_wakeup: Arc::new(Notify::new()),
        }
    }

    /// The runbooks `/runbook` offers (and `[runbooks] on_declare` runs).
    pub fn with_runbooks(mut self, runbooks: crate::runbook::Runbooks) -> Self {
        self.runbooks = Arc::new(runbooks);
        self
    }
    /// The redactor for run output and run messages (the configured secrets' values).
    pub fn with_redactor(mut self, redactor: crate::runbook::redact::Redactor) -> Self {
        self.redactor = Arc::new(redactor);
        self
    }
    /// The executor `/system check` probes through.
    pub fn with_executor(mut self, executor: Arc<dyn crate::runbook::Executor>) -> Self {
        self.executor = Some(executor);
        self
    }
    pub fn runbooks(&self) -> &crate::runbook::Runbooks {
        &self.runbooks
    }
    pub fn redactor(&self) -> &crate::runbook::redact::Redactor {
        &self.redactor
    }
    /// The run worker's wakeup.
    pub fn run_wakeup(&self) -> Arc<Notify> {
        self.run_wakeup.clone()
    }
    /// The public status page's snapshot.
    pub fn status_board(&self) -> &Arc<crate::status::StatusBoard> {
        &self.status_board
    }
    /// Rung after commits that changed an incident (the status follower waits on it).
    pub fn status_wakeup(&self) -> Arc<Notify> {
        self.status_wakeup.clone()
    }
    /// Rung when status broadcasts were queued (the broadcasts lane waits on it).
    pub fn broadcast_wakeup(&self) -> Arc<Notify> {
        self.broadcast_wakeup.clone()
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
    /// The pages lane's wakeup (see [`crate::outbox::Dispatcher::pages`]).
    pub fn page_wakeup(&self) -> Arc<Notify> {
        self.page_wakeup.clone()
    }
    /// Wakes both dispatchers: something was queued.
    pub(crate) fn wake_dispatchers(&self) {
        self.outbox_wakeup.notify_one();
        self.page_wakeup.notify_one();
    }

    /// Wakes the lanes that have new messages among `messages`: a lane woken for nothing
    /// claims in a write of its own, which on SQLite queues behind (and in front of) intake's.
    pub(crate) fn wake_for(&self, kinds: impl IntoIterator<Item = MessageKind>) {
        let (mut pages, mut chat, mut broadcasts) = (false, false, false);
        for kind in kinds {
            match kind {
                MessageKind::Page => pages = true,
                MessageKind::Broadcast => broadcasts = true,
                _ => chat = true,
            }
        }
        if pages {
            self.page_wakeup.notify_one();
        }
        if chat {
            self.outbox_wakeup.notify_one();
        }
        if broadcasts {
            self.broadcast_wakeup.notify_one();
        }
    }

    /// The actor for a person id. Anyone not configured is a viewer under the id they gave.
    pub fn actor_for_person(&self, id: &str) -> Actor {
        match self.config.person(id) {
            Some(p) => Actor {
                id: p.id.to_string(),
                person: Some(p.id.clone()),
                roles: p.roles.clone(),
                limited_to: None,
            },
            None => Actor {
                id: id.to_string(),
                person: None,
                roles: RoleSet::new([Role::Viewer]),
                limited_to: None,
            },
        }
    }

    /// Parses and runs one command line.
    ///
    /// # Errors
    /// Only infrastructure failures; a refused command is an `Ok(Reply { ok: false, .. })`.
    #[tracing::instrument(skip_all, fields(actor = %actor.id), err)]
    pub async fn execute_line(
        &self,
        actor: &Actor,
        line: &str,
        ctx: &CommandContext,
    ) -> Result<Reply, StoreError> {
        let result = match command::parse(line, &self.config) {
            Ok(cmd) => self.execute(actor, cmd, ctx).await,
            Err(e) => Ok(Reply::refused(e.0)),
        };
        self.metrics.command_outcome(match &result {
            Ok(r) if r.ok => "ok",
            Ok(_) => "refused",
            Err(_) => "error",
        });
        result
    }

    /// Runs a parsed command (the typed door: chat lines go through [`Engine::execute_line`]).
    pub async fn execute(
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
                    return self.which_incident(StateFilter::Open).await;
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
                    return self.which_incident(StateFilter::Open).await;
                };
                match self.store.incident(inc).await? {
                    Some(i) => {
                        let t = self.store.timeline(inc).await?;
                        Ok(Reply::ok(render::timeline(&i, &t, &self.config), Some(i)))
                    }
                    None => Ok(Reply::refused(no_such(inc))),
                }
            }
            Command::Oncall { level } => {
                let overrides = self.current_overrides().await?;
                Ok(Reply::ok(
                    render::oncall(&self.config, level, self.clock.now(), &overrides),
                    None,
                ))
            }
            Command::OncallOverride {
                rotation,
                user,
                duration,
            } => self.oncall_override(actor, &rotation, user, duration).await,
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
            Command::MaintenanceSchedule {
                components,
                start,
                duration,
                reason,
                public,
            } => {
                self.maintenance_schedule(actor, components, start, duration, reason, public)
                    .await
            }
            Command::RunbookList => self.runbook_list().await,
            Command::RunbookShow { name } => Ok(self.runbook_show(&name)),
            Command::RunbookRun {
                name,
                params,
                dry_run,
                incident,
            } => {
                self.runbook_run(actor, &name, &params, dry_run, incident, ctx)
                    .await
            }
            Command::RunbookApprove { run, gate } => {
                self.runbook_decide(actor, run, gate, crate::domain::Decision::Approve, None)
                    .await
            }
            Command::RunbookDeny { run, gate, reason } => {
                self.runbook_decide(actor, run, gate, crate::domain::Decision::Deny, reason)
                    .await
            }
            Command::RunbookCancel { run } => self.runbook_cancel(actor, run).await,
            Command::RunbookConfirm { run } => self.runbook_confirm(actor, run).await,
            Command::RunbookStatus { run } => self.runbook_status(run).await,
            Command::SystemCheck { incident } => self.system_check(actor, incident, ctx).await,
            ref c @ (Command::StatusShow
            | Command::StatusPublish { .. }
            | Command::StatusHold { .. }
            | Command::StatusPost { .. }
            | Command::StatusComponent { .. }) => self.status_command(actor, c, ctx).await,
            other => {
                // Close and reopen act on a resolved incident, so without a name they mean the
                // only resolved one, as the others mean the only open one.
                let among = match other {
                    Command::Close { .. } | Command::Reopen { .. } => StateFilter::Resolved,
                    _ => StateFilter::Open,
                };
                let named = other.incident().flatten().or(ctx.channel_incident);
                let Some(inc) = self.only_incident(named, among).await? else {
                    return self.which_incident(among).await;
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
        match actor.limited_to {
            // Named only when the limit is why: a viewer is refused with or without it.
            Some(cap) if !cap.grants(role) => format!(
                "not allowed: {what} needs role {role}; {who}, acting through a credential that grants at most role {cap}"
            ),
            _ => format!("not allowed: {what} needs role {role}; {who}"),
        }
    }

    /// The incident a command means: the one named, else the channel's, else the only open one.
    async fn resolve_ref(
        &self,
        named: Option<IncidentRef>,
        ctx: &CommandContext,
    ) -> Result<Option<IncidentRef>, StoreError> {
        self.only_incident(named.or(ctx.channel_incident), StateFilter::Open)
            .await
    }

    /// `named`, else the only incident `among` (open, or resolved for close and reopen).
    async fn only_incident(
        &self,
        named: Option<IncidentRef>,
        among: StateFilter,
    ) -> Result<Option<IncidentRef>, StoreError> {
        if let Some(r) = named {
            return Ok(Some(r));
        }
        let candidates = self.store.incidents(among).await?;
        Ok(match candidates.as_slice() {
            [only] => Some(only.reference),
            _ => None,
        })
    }

    async fn which_incident(&self, among: StateFilter) -> Result<Reply, StoreError> {
        let candidates = self.store.incidents(among).await?;
        let what = match among {
            StateFilter::Resolved => "resolved",
            _ => "open",
        };
        Ok(Reply::refused(if candidates.is_empty() {
            format!("no incident is {what}; name one with incident:INC-<number>")
        } else {
            let refs: Vec<String> = candidates
                .iter()
                .rev()
                .map(|i| i.reference.to_string())
                .collect();
            format!(
                "{} incidents are {what} ({}); name one with incident:INC-<number>",
                refs.len(),
                refs.join(", ")
            )
        }))
    }

    pub(crate) fn incident_lock(&self, r: IncidentRef) -> &tokio::sync::Mutex<()> {
        &self.incident_locks[(r.number().unsigned_abs() as usize) % self.incident_locks.len()]
    }

    /// Takes the lock stripes of `incidents` in stripe order (so two callers never wait on
    /// each other), each once.
    pub(crate) async fn lock_incidents(
        &self,
        incidents: &[IncidentRef],
    ) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let n = self.incident_locks.len();
        let mut stripes: Vec<usize> = incidents
            .iter()
            .map(|r| (r.number().unsigned_abs() as usize) % n)
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut turns = Vec::with_capacity(stripes.len());
        for s in stripes {
            turns.push(self.incident_locks[s].lock().await);
        }
        turns
    }

    async fn commit(&self, cs: Changeset) -> Result<(), StoreError> {
        let kinds: Vec<MessageKind> = cs.outbox.iter().map(|m| m.kind).collect();
        // The status follower and announcer react to incidents, public changes and maintenance.
        let incident = cs.incident.is_some() || !cs.public.is_empty() || !cs.maintenance.is_empty();
        self.store.commit(cs).await?;
        self.wake_for(kinds);
        if incident {
            self.status_wakeup.notify_one();
        }
        Ok(())
    }
}

/// The permission rule: the role itself, or, for commander work, being the commander of the
/// incident concerned.
fn permitted(actor: &Actor, required: Role, commands_the_incident: bool) -> bool {
    let cap_allows_command = actor
        .limited_to
        .is_none_or(|cap| cap.grants(Role::Commander));
    actor.allows(required)
        || (required == Role::Commander && commands_the_incident && cap_allows_command)
}

fn no_such(r: IncidentRef) -> String {
    format!("{r} does not exist; /incident list state:all shows every incident")
}
