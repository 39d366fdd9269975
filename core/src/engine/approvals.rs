//! Deciding about runs: approve, deny, cancel, confirm a manual step, and the closing of an
//! approval window.
//!
//! The rules, whatever door a decision comes in by (a typed command, a Discord button, the
//! API): the requester never approves their own run; each approver needs the role the gate asks
//! for (admin always qualifies) and counts once; an approval applies to the gate it was given
//! at and is used up when the run moves on, so a second click on an old button, or an approval
//! after the window closed, is refused and changes nothing.

use super::runbooks::no_such_run;
use super::*;
use crate::domain::{Decision, Run, RunApproval, RunState};
use crate::store::RunWrite;

/// A decision the engine refused: the reply, or that the run's window closed (it is marked
/// expired first).
enum Refusal {
    Say(String),
    Expired,
}

impl Engine {
    /// The gate-independent checks of an approve or deny.
    fn check_decider(
        &self,
        actor: &Actor,
        run: &Run,
        gate: Option<usize>,
        verb: &str,
    ) -> Result<(), Refusal> {
        let id = run.id;
        if run.state == RunState::Expired {
            return Err(Refusal::Say(format!(
                "run #{id} is not waiting for approval: its approval window closed at {}; nothing ran. Request it again with /runbook run",
                run.expires_at.map(render::time).unwrap_or_default()
            )));
        }
        if run.state != RunState::PendingApproval {
            let why = match run.state {
                RunState::Approved | RunState::Running => {
                    "it was approved already (an approval is used once)".to_string()
                }
                s => format!("it is {s}"),
            };
            return Err(Refusal::Say(format!(
                "run #{id} is not waiting for approval: {why}"
            )));
        }
        if gate.is_some_and(|g| g != run.gate) {
            return Err(Refusal::Say(format!(
                "that request was for an earlier step of run #{id}; it now waits at step {} (/runbook status run:{id})",
                run.gate + 1
            )));
        }
        if run.expires_at.is_some_and(|e| self.clock.now() >= e) {
            return Err(Refusal::Expired);
        }
        if actor.id == run.requested_by {
            return Err(Refusal::Say(format!(
                "you requested run #{id}: someone else must {verb} it (/runbook cancel run:{id} withdraws it)"
            )));
        }
        if !actor.allows(run.role) {
            return Err(Refusal::Say(self.denied(
                actor,
                run.role,
                &format!("{verb} run #{id}"),
            )));
        }
        if run
            .approvals
            .iter()
            .any(|a| a.gate == run.gate && a.person == actor.id && a.decision != Decision::Confirm)
        {
            return Err(Refusal::Say(format!(
                "you already decided on run #{id}; each person counts once"
            )));
        }
        Ok(())
    }

    /// `/runbook approve` and `/runbook deny` (and their buttons).
    pub(crate) async fn runbook_decide(
        &self,
        actor: &Actor,
        id: i64,
        gate: Option<usize>,
        decision: Decision,
        reason: Option<String>,
    ) -> Result<Reply, StoreError> {
        let verb = match decision {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
            Decision::Confirm => "confirm",
        };
        let result = retry_on_conflict!(async {
            let Some(run) = self.store.run(id).await? else {
                return Ok(Err(no_such_run(id)));
            };
            match self.check_decider(actor, &run, gate, verb) {
                Ok(()) => {}
                Err(Refusal::Say(s)) => return Ok(Err(s)),
                Err(Refusal::Expired) => {
                    self.expire(&run).await?;
                    return Ok(Err(format!(
                        "the approval window of run #{id} closed at {}; nothing ran. Request it again with /runbook run",
                        run.expires_at.map(render::time).unwrap_or_default()
                    )));
                }
            }
            let now = self.clock.now();
            let mut next = run.clone();
            let mut p = Plan::new(self, actor, now);
            let who = self.config.display_name(&actor.id);
            let text = match decision {
                Decision::Approve if run.needed <= 1 => {
                    next.state = RunState::Approved;
                    next.needed = 0;
                    next.expires_at = None;
                    format!(
                        "Run #{id} of {} approved by {who}; it starts now",
                        run.runbook
                    )
                }
                Decision::Approve => {
                    next.needed = run.needed - 1;
                    format!(
                        "Run #{id} of {} approved by {who}; it still needs {}",
                        run.runbook,
                        render::approvals_wanted(next.needed, run.role)
                    )
                }
                _ => {
                    next.state = RunState::Denied;
                    next.finished_at = Some(now);
                    next.outcome = Some(format!(
                        "denied by {}{}",
                        actor.id,
                        reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ));
                    format!(
                        "Run #{id} of {} denied by {who}{}; nothing ran",
                        run.runbook,
                        reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    )
                }
            };
            p.extra.runs.push(RunWrite::Decide(RunApproval {
                run: id,
                gate: run.gate,
                person: actor.id.clone(),
                decision,
                at: now,
            }));
            p.extra.runs.push(RunWrite::Update(next.clone()));
            p.run_event(
                &run,
                &format!("run.{verb}"),
                serde_json::json!({"gate": run.gate, "state": next.state.as_str(), "reason": reason}),
                EventKind::RunApproval,
                text.clone(),
            );
            self.commit(p.finish(None)).await?;
            next.version += 1;
            Ok(Ok((text, next)))
        })?;
        match result {
            Ok((text, run)) => {
                if run.state == RunState::Approved {
                    self.run_wakeup.notify_one();
                }
                Ok(Reply::ok(text, None).with_run(&run))
            }
            Err(refusal) => Ok(Reply::refused(refusal)),
        }
    }

    /// Marks a run whose approval window closed `expired` (terminal; its lock is released).
    async fn expire(&self, run: &Run) -> Result<(), StoreError> {
        let actor = Actor::system("runbooks");
        let now = self.clock.now();
        let mut next = run.clone();
        next.state = RunState::Expired;
        next.finished_at = Some(now);
        next.outcome = Some("approval window closed".into());
        let mut p = Plan::new(self, &actor, now);
        let text = format!(
            "Run #{} of {}: its approval window closed at {} with {} still missing; nothing ran",
            run.id,
            run.runbook,
            run.expires_at.map(render::time).unwrap_or_default(),
            render::approvals_wanted(run.needed, run.role)
        );
        p.extra.runs.push(RunWrite::Update(next));
        p.run_event(
            run,
            "run.expire",
            serde_json::json!({"gate": run.gate}),
            EventKind::RunExpired,
            text,
        );
        self.commit(p.finish(None)).await
    }

    /// The job at the end of an approval window.
    pub(crate) async fn run_expiry_job(&self, job: &Job) -> Result<(), StoreError> {
        let crate::store::JobPayload::RunApprovalExpiry { run: id, gate } = job.payload else {
            return Ok(());
        };
        let complete = || {
            let mut cs = Changeset {
                at: Some(self.clock.now()),
                ..Changeset::default()
            };
            cs.jobs.push(JobChange::Complete {
                id: job.id,
                due_at: job.due_at,
            });
            cs
        };
        retry_on_conflict!(async {
            match self.store.run(id).await? {
                Some(run)
                    if run.state == RunState::PendingApproval
                        && run.gate == gate
                        && run.expires_at.is_some_and(|e| e <= self.clock.now()) =>
                {
                    self.expire(&run).await?;
                }
                _ => {}
            }
            self.commit(complete()).await
        })
    }

    /// `/runbook cancel`: the requester, a commander (of the incident, or by role) or an admin.
    /// Before it runs it ends at once; while it runs, the worker kills the running step's
    /// process group and ends it `cancelled`.
    pub(crate) async fn runbook_cancel(&self, actor: &Actor, id: i64) -> Result<Reply, StoreError> {
        let result = retry_on_conflict!(async {
            let Some(run) = self.store.run(id).await? else {
                return Ok(Err(no_such_run(id)));
            };
            let inc = match run.incident {
                Some(r) => self.store.incident(r).await?,
                None => None,
            };
            let commands_it =
                actor.person.is_some() && inc.as_ref().is_some_and(|i| i.commander == actor.person);
            if actor.id != run.requested_by && !commands_it && !actor.allows(Role::Commander) {
                return Ok(Err(format!(
                    "not allowed: only who requested run #{id} ({}), a commander or an admin may cancel it",
                    run.requested_by
                )));
            }
            if !run.state.is_active() {
                return Ok(Err(format!("run #{id} already ended: it is {}", run.state)));
            }
            if run.cancel_requested {
                return Ok(Err(format!("run #{id} is being cancelled already")));
            }
            let now = self.clock.now();
            let mut next = run.clone();
            let who = self.config.display_name(&actor.id);
            let text = if run.state == RunState::Running {
                next.cancel_requested = true;
                format!(
                    "Run #{id} of {}: cancel requested by {who}; its running step is being stopped",
                    run.runbook
                )
            } else {
                next.state = RunState::Cancelled;
                next.finished_at = Some(now);
                next.outcome = Some(format!("cancelled by {} before it ran", actor.id));
                format!(
                    "Run #{id} of {} cancelled by {who}; nothing ran",
                    run.runbook
                )
            };
            let mut p = Plan::new(self, actor, now);
            p.extra.runs.push(RunWrite::Update(next.clone()));
            p.run_event(
                &run,
                "run.cancel",
                serde_json::json!({"state": run.state.as_str()}),
                EventKind::RunFinished,
                text.clone(),
            );
            self.commit(p.finish(None)).await?;
            next.version += 1;
            Ok(Ok((text, next)))
        })?;
        match result {
            Ok((text, run)) => {
                self.run_wakeup.notify_waiters();
                Ok(Reply::ok(text, None).with_run(&run))
            }
            Err(refusal) => Ok(Reply::refused(refusal)),
        }
    }

    /// `/runbook confirm`: a person says the manual step the run waits at was done.
    pub(crate) async fn runbook_confirm(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<Reply, StoreError> {
        let result = retry_on_conflict!(async {
            let Some(run) = self.store.run(id).await? else {
                return Ok(Err(no_such_run(id)));
            };
            let waiting = run.state == RunState::Running
                && run.steps.last().is_some_and(|s| {
                    s.state == crate::domain::StepState::Running && s.detail.starts_with("waiting")
                });
            let Some(step) = run.steps.last().filter(|_| waiting) else {
                return Ok(Err(format!(
                    "run #{id} is not waiting for a manual step (it is {})",
                    run.state
                )));
            };
            let now = self.clock.now();
            let mut p = Plan::new(self, actor, now);
            p.extra.runs.push(RunWrite::Decide(RunApproval {
                run: id,
                gate: step.index,
                person: actor.id.clone(),
                decision: Decision::Confirm,
                at: now,
            }));
            p.audit.push(AuditRecord {
                at: now,
                actor: actor.id.clone(),
                action: "run.confirm".into(),
                subject: format!("run:{id}"),
                detail: serde_json::json!({"step": step.step_id}),
            });
            self.commit(p.finish(None)).await?;
            Ok(Ok((
                format!(
                    "Step {} of run #{id} confirmed done by {}",
                    step.step_id,
                    self.config.display_name(&actor.id)
                ),
                run,
            )))
        })?;
        match result {
            Ok((text, run)) => Ok(Reply::ok(text, None).with_run(&run)),
            Err(refusal) => Ok(Reply::refused(refusal)),
        }
    }
}
