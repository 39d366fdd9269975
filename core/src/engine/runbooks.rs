//! Runbook commands: listing and showing runbooks, requesting a run (or a dry run), and the
//! system status check. Approvals are in [`super::approvals`]; what happens while a run executes
//! is in [`super::runs`].
//!
//! Every request is checked completely before anything is written: the runbook exists, the
//! incident's level is one it is for, every parameter is known and valid (values reach a
//! process only as whole argv entries or env vars), and no other active run holds the lock on
//! its target. A refused request writes nothing and starts nothing.

use super::*;
use crate::domain::{Run, RunState};
use crate::runbook::plan::{self, Builtins, PlannedStep};
use crate::runbook::{ApprovalPolicy, Runbook};
use crate::store::{ApprovalAsk, JobPayload, RunFilter, RunWrite};
use std::collections::BTreeMap;

/// The approval a run needs before step `gate`: the runbook's own before the first step (or
/// the first step's, when it asks for more), and a step's own before any later step.
pub(crate) fn gate_policy(rb: &Runbook, gate: usize) -> ApprovalPolicy {
    let step = rb
        .steps
        .get(gate)
        .and_then(|s| s.approval)
        .filter(|p| !p.is_auto());
    match (gate, step) {
        (0, Some(p)) if p.approvals > rb.approval.approvals => p,
        (0, _) => rb.approval,
        (_, Some(p)) => p,
        (_, None) => ApprovalPolicy::AUTO,
    }
}

impl Engine {
    /// The runbook of that name, or the refusal naming the accepted ones.
    pub(crate) fn runbook_named(&self, name: &str) -> Result<&Runbook, String> {
        self.runbooks.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.runbooks.iter().map(|r| r.name.as_str()).collect();
            if names.is_empty() {
                format!("unknown runbook `{name}`: no runbooks are loaded ([runbooks] dir)")
            } else {
                format!("unknown runbook `{name}`; accepted: {}", names.join(", "))
            }
        })
    }

    pub(crate) async fn runbook_list(&self) -> Result<Reply, StoreError> {
        let active = self
            .store
            .runs(RunFilter {
                active: true,
                incident: None,
                limit: 50,
            })
            .await?;
        Ok(Reply::ok(
            render::runbook_list(&self.runbooks, &active),
            None,
        ))
    }

    pub(crate) fn runbook_show(&self, name: &str) -> Reply {
        match self.runbook_named(name) {
            Ok(rb) => Reply::ok(render::runbook(rb), None),
            Err(refusal) => Reply::refused(refusal),
        }
    }

    /// The incident a run is about: required (and at one of its levels) for a runbook with
    /// levels; for one without, only when named or when typed in an incident's channel.
    async fn run_incident(
        &self,
        rb: &Runbook,
        named: Option<IncidentRef>,
        ctx: &CommandContext,
    ) -> Result<Result<Option<Incident>, Reply>, StoreError> {
        let r = if rb.levels.is_empty() {
            named.or(ctx.channel_incident)
        } else {
            match self.resolve_ref(named, ctx).await? {
                Some(r) => Some(r),
                None => {
                    let levels = render::level_list(&rb.levels);
                    return Ok(Err(Reply::refused(format!(
                        "{} is for incidents at levels {levels}: name one with incident:INC-<number>",
                        rb.name
                    ))));
                }
            }
        };
        let Some(r) = r else { return Ok(Ok(None)) };
        let Some(inc) = self.store.incident(r).await? else {
            return Ok(Err(Reply::refused(no_such(r))));
        };
        if !rb.levels.is_empty() && !rb.levels.contains(&inc.level) {
            return Ok(Err(Reply::refused(format!(
                "{} is for incidents at levels {}; {} is level {}",
                rb.name,
                render::level_list(&rb.levels),
                inc.reference,
                inc.level
            ))));
        }
        if !inc.state.is_open() {
            return Ok(Err(Reply::refused(format!(
                "{} is {}; runbooks run for open incidents",
                inc.reference, inc.state
            ))));
        }
        Ok(Ok(Some(inc)))
    }

    /// Checks the values against the runbook's parameters, incident references included.
    async fn run_params(
        &self,
        rb: &Runbook,
        given: &BTreeMap<String, String>,
    ) -> Result<Result<BTreeMap<String, String>, Reply>, StoreError> {
        let values = match plan::check_params(rb, given) {
            Ok(v) => v,
            Err(e) => return Ok(Err(Reply::refused(e))),
        };
        for p in &rb.params {
            if let (crate::runbook::ParamKind::Incident, Some(v)) = (&p.kind, values.get(&p.name)) {
                let exists = match v.parse::<IncidentRef>() {
                    Ok(r) => self.store.incident(r).await?.is_some(),
                    Err(_) => false,
                };
                if !exists {
                    return Ok(Err(Reply::refused(format!(
                        "bad value for `{}`: `{v}`; accepted: an incident that exists, e.g. INC-1",
                        p.name
                    ))));
                }
            }
        }
        Ok(Ok(values))
    }

    /// `/runbook run`: a dry run shows the plan; otherwise the run is recorded (pending its
    /// approvals, or approved at once for an `auto` runbook) and the worker is woken.
    pub(crate) async fn runbook_run(
        &self,
        actor: &Actor,
        name: &str,
        given: &BTreeMap<String, String>,
        dry_run: bool,
        named: Option<IncidentRef>,
        ctx: &CommandContext,
    ) -> Result<Reply, StoreError> {
        let rb = match self.runbook_named(name) {
            Ok(rb) => rb,
            Err(refusal) => return Ok(Reply::refused(refusal)),
        };
        let inc = match self.run_incident(rb, named, ctx).await? {
            Ok(i) => i,
            Err(refusal) => return Ok(refusal),
        };
        let values = match self.run_params(rb, given).await? {
            Ok(v) => v,
            Err(refusal) => return Ok(refusal),
        };
        if dry_run {
            let builtins = self.builtins(rb, inc.as_ref(), 0);
            let steps = plan::plan(rb, &values, &builtins, &self.config.probes);
            let lines: Vec<String> = steps.iter().map(PlannedStep::describe).collect();
            let policy = gate_policy(rb, 0);
            let text = format!(
                "Dry run of {}: nothing was run. It would {}, then:\n{}",
                rb.name,
                render::approval_need(&policy),
                // Each line carries its step's own number already.
                lines.join("\n")
            );
            let mut reply = Reply::ok(text, inc);
            reply.run = Some(RunBrief {
                id: None,
                state: "dry_run".into(),
                plan: Some(lines),
            });
            return Ok(reply);
        }
        self.request_run(actor, rb, values, inc).await
    }

    fn builtins(&self, rb: &Runbook, inc: Option<&Incident>, run: i64) -> Builtins {
        Builtins {
            incident: inc.map(|i| i.reference),
            level: inc.map(|i| i.level),
            run,
            runbook: rb.name.clone(),
        }
    }

    async fn request_run(
        &self,
        actor: &Actor,
        rb: &Runbook,
        values: BTreeMap<String, String>,
        inc: Option<Incident>,
    ) -> Result<Reply, StoreError> {
        let result = retry_on_conflict!(async {
            let now = self.clock.now();
            let id = self.store.next_run_id().await?;
            let builtins = self.builtins(rb, inc.as_ref(), id);
            let lock_key = format!("{}:{}", rb.name, plan::lock_target(rb, &values, &builtins));
            // The unique index is the guard across replicas; this read gives the clear refusal.
            let active = self
                .store
                .runs(RunFilter {
                    active: true,
                    incident: None,
                    limit: 1000,
                })
                .await?;
            if let Some(other) = active.iter().find(|r| r.lock_key == lock_key) {
                return Ok(Err(Reply::refused(format!(
                    "run #{} of {} on {} is {}; one run per runbook and target at a time \
                     (/runbook status run:{} shows it, /runbook cancel run:{} ends it)",
                    other.id,
                    rb.name,
                    lock_key.split_once(':').map(|(_, t)| t).unwrap_or(""),
                    other.state,
                    other.id,
                    other.id
                ))));
            }
            let steps = plan::plan(rb, &values, &builtins, &self.config.probes);
            let run = self.new_run(actor, rb, id, lock_key, values.clone(), inc.as_ref(), now);
            let mut p = Plan::new(self, actor, now);
            self.record_request(&mut p, rb, &run, &steps);
            p.extra.runs.push(RunWrite::Insert(run.clone()));
            self.commit(p.finish(None)).await?;
            Ok(Ok(run))
        })?;
        let run = match result {
            Ok(run) => run,
            Err(refusal) => return Ok(refusal),
        };
        if run.state == RunState::Approved {
            self.run_wakeup.notify_one();
        }
        let text = match run.state {
            RunState::Approved => format!(
                "Run #{} of {} approved (it needs no approval) and starting: /runbook status run:{}",
                run.id, rb.name, run.id
            ),
            _ => format!(
                "Run #{} of {} requested: it waits for {} until {} (/runbook approve run:{}); nothing runs before that",
                run.id,
                rb.name,
                render::approvals_wanted(run.needed, run.role),
                run.expires_at.map(render::time).unwrap_or_default(),
                run.id
            ),
        };
        Ok(Reply::ok(text, inc).with_run(&run))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_run(
        &self,
        actor: &Actor,
        rb: &Runbook,
        id: i64,
        lock_key: String,
        params: BTreeMap<String, String>,
        inc: Option<&Incident>,
        now: DateTime<Utc>,
    ) -> Run {
        let policy = gate_policy(rb, 0);
        let pending = !policy.is_auto();
        Run {
            id,
            runbook: rb.name.clone(),
            incident: inc.map(|i| i.reference),
            level: inc.map(|i| i.level),
            lock_key,
            state: if pending {
                RunState::PendingApproval
            } else {
                RunState::Approved
            },
            params,
            requested_by: actor.id.clone(),
            requested_at: now,
            gate: 0,
            needed: policy.approvals,
            role: policy.role,
            expires_at: pending.then(|| now + self.config.runbooks.approval_ttl),
            approvals: vec![],
            steps: vec![],
            owner: None,
            lease_until: None,
            cancel_requested: false,
            started_at: None,
            finished_at: None,
            outcome: None,
            version: 1,
        }
    }

    /// The request's timeline entry, audit record, approval request and expiry job.
    pub(crate) fn record_request(
        &self,
        p: &mut Plan<'_>,
        rb: &Runbook,
        run: &Run,
        steps: &[PlannedStep],
    ) {
        let destructive: Vec<&str> = steps
            .iter()
            .filter(|s| s.destructive)
            .map(|s| s.id.as_str())
            .collect();
        let text = format!(
            "Run #{} of {} requested by {}{}: {}{}; {}",
            run.id,
            rb.name,
            self.config.display_name(&run.requested_by),
            render::params(&run.params),
            render::count(steps.len(), "step"),
            if destructive.is_empty() {
                String::new()
            } else {
                format!(", destructive: {}", destructive.join(", "))
            },
            if run.state == RunState::Approved {
                "pre-approved, starting".to_string()
            } else {
                format!(
                    "waits for {} until {}",
                    render::approvals_wanted(run.needed, run.role),
                    run.expires_at.map(render::time).unwrap_or_default()
                )
            }
        );
        p.audit.push(AuditRecord {
            at: p.at,
            actor: p.actor.id.clone(),
            action: "run.request".into(),
            subject: format!("run:{}", run.id),
            detail: serde_json::json!({
                "runbook": rb.name, "incident": run.incident.map(|r| r.to_string()),
                "params": run.params, "state": run.state.as_str(),
                "plan": steps.iter().map(PlannedStep::describe).collect::<Vec<_>>(),
            }),
        });
        if let Some(r) = run.incident {
            p.note(
                r,
                &format!("run{}:requested", run.id),
                EventKind::RunRequested,
                text,
            );
        }
        if run.state == RunState::PendingApproval {
            self.ask_approval(p, rb, run, steps);
        }
    }

    /// The approval request (a message with Approve / Deny buttons in the incident channel)
    /// and the job that closes its window.
    pub(crate) fn ask_approval(
        &self,
        p: &mut Plan<'_>,
        rb: &Runbook,
        run: &Run,
        steps: &[PlannedStep],
    ) {
        let Some(expires) = run.expires_at else {
            return;
        };
        if let Some(r) = run.incident {
            let lines: Vec<String> = steps
                .iter()
                .filter(|s| s.index >= run.gate)
                .map(PlannedStep::describe)
                .collect();
            let text = format!(
                "Approval needed: run #{} of {} (requested by {}{}){} needs {} by {}. It will run:\n{}\n/runbook approve run:{} or /runbook deny run:{}",
                run.id,
                rb.name,
                self.config.display_name(&run.requested_by),
                render::params(&run.params),
                if run.gate > 0 {
                    format!(" is at step {} ({})", run.gate + 1, steps.get(run.gate).map(|s| s.id.as_str()).unwrap_or(""))
                } else {
                    String::new()
                },
                render::approvals_wanted(run.needed, run.role),
                render::time(expires),
                // Each line carries its step's own number (a later gate lists from its step).
                lines.join("\n"),
                run.id,
                run.id
            );
            p.chat(
                r,
                &format!("run{}:ask{}", run.id, run.gate),
                crate::store::MessageKind::ApprovalRequest,
                text,
                Some(ApprovalAsk {
                    run: run.id,
                    gate: run.gate,
                }),
            );
        }
        p.jobs.push(JobChange::Schedule(NewJob {
            key: format!("run-expiry:{}:{}", run.id, run.gate),
            incident: run.incident,
            due_at: expires,
            payload: JobPayload::RunApprovalExpiry {
                run: run.id,
                gate: run.gate,
            },
        }));
    }

    /// The runbook `[runbooks] on_declare` names, when it is loaded, pre-approved and for this
    /// level.
    pub(crate) fn on_declare_runbook(&self, level: LevelId) -> Option<&Runbook> {
        let name = self.config.runbooks.on_declare.as_deref()?;
        let rb = self.runbooks.get(name)?;
        (gate_policy(rb, 0).is_auto() && (rb.levels.is_empty() || rb.levels.contains(&level)))
            .then_some(rb)
    }

    /// Adds the automatic emergency-response run to a declaration's plan (unless another run
    /// holds its lock: then the timeline says so).
    pub(crate) fn request_on_declare(
        &self,
        p: &mut Plan<'_>,
        rb: &Runbook,
        inc: &Incident,
        id: i64,
        active_locks: &[String],
    ) {
        let values = match plan::check_params(rb, &BTreeMap::new()) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(runbook = %rb.name, error = %e, "on_declare runbook needs parameters; not run");
                return;
            }
        };
        let builtins = self.builtins(rb, Some(inc), id);
        let lock_key = format!("{}:{}", rb.name, plan::lock_target(rb, &values, &builtins));
        if active_locks.contains(&lock_key) {
            p.note(
                inc.reference,
                "auto-run",
                EventKind::RunRequested,
                format!("{} did not start: another run of it is active", rb.name),
            );
            return;
        }
        let steps = plan::plan(rb, &values, &builtins, &self.config.probes);
        let actor = p.actor.clone();
        let run = self.new_run(&actor, rb, id, lock_key, values, Some(inc), p.at);
        self.record_request(p, rb, &run, &steps);
        p.extra.runs.push(RunWrite::Insert(run));
    }

    /// `/runbook status`.
    pub(crate) async fn runbook_status(&self, id: i64) -> Result<Reply, StoreError> {
        match self.store.run(id).await? {
            Some(run) => Ok(Reply::ok(
                render::run(&run, &self.config, self.config.runbooks.output_tail),
                None,
            )
            .with_run(&run)),
            None => Ok(Reply::refused(no_such_run(id))),
        }
    }

    /// `/system check`: every configured probe, at once, summarised; on the incident's
    /// timeline when there is one.
    pub(crate) async fn system_check(
        &self,
        actor: &Actor,
        named: Option<IncidentRef>,
        ctx: &CommandContext,
    ) -> Result<Reply, StoreError> {
        let Some(executor) = self.executor.clone() else {
            return Ok(Reply::refused(
                "this Spotter has no executor: probes cannot run here",
            ));
        };
        let inc = match named.or(ctx.channel_incident) {
            Some(r) => match self.store.incident(r).await? {
                Some(i) => Some(i),
                None => return Ok(Reply::refused(no_such(r))),
            },
            None => None,
        };
        let probes = self.config.probes.clone();
        let results = futures::future::join_all(probes.iter().map(|p| {
            let executor = executor.clone();
            async move {
                let timeout = p
                    .timeout
                    .to_std()
                    .unwrap_or(std::time::Duration::from_secs(5));
                executor.probe(&p.spec, timeout).await
            }
        }))
        .await;
        let summary = render::system_check(&probes, &results);
        let now = self.clock.now();
        let mut p = Plan::new(self, actor, now);
        p.audit.push(AuditRecord {
            at: now,
            actor: actor.id.clone(),
            action: "system.check".into(),
            subject: inc
                .as_ref()
                .map(|i| i.reference.to_string())
                .unwrap_or_else(|| "system".into()),
            detail: serde_json::json!({
                "results": probes.iter().zip(&results).map(|(p, r)| serde_json::json!({"probe": p.id, "healthy": r.healthy, "detail": r.detail})).collect::<Vec<_>>(),
            }),
        });
        if let Some(i) = &inc {
            let key = format!("check:{}", now.timestamp_millis());
            p.note(i.reference, &key, EventKind::SystemCheck, summary.clone());
        }
        self.commit(p.finish(None)).await?;
        Ok(Reply::ok(summary, inc))
    }
}

pub(crate) fn no_such_run(id: i64) -> String {
    format!("run #{id} does not exist; /runbook list shows the runs in progress")
}
