//! A run while it executes: the decisions the run worker ([`crate::runs`]) asks the engine to
//! record. Each is one transaction with its timeline entry and audit record, and each is fenced:
//! it is written only while this worker still owns the run (the run's version is unchanged, or
//! changed only by a cancel request), so a worker that lost its run to the stale sweep of another
//! replica writes nothing more.
//!
//! A step's start is committed *before* its process is spawned. A worker that dies mid-step
//! therefore leaves the step `running` and the run's lease lapses; the sweep then marks the run
//! `interrupted` and says so in the channel. Nothing re-runs it by itself.

use super::runbooks::gate_policy;
use super::*;
use crate::domain::{Run, RunState, RunStep, StepState};
use crate::runbook::plan::PlannedStep;
use crate::runbook::{Runbook, StepOutcome};
use crate::store::RunWrite;

/// How long a worker's hold on a run lasts without renewal. The worker renews it every few
/// seconds; a run whose lease lapsed belongs to a dead worker.
pub const RUN_LEASE: chrono::Duration = chrono::Duration::seconds(15);

/// The run was taken from this worker (interrupted by another replica's sweep, or gone).
#[derive(Debug)]
pub struct RunLost;

impl Engine {
    /// Commits `change` applied to the run; on a lost race re-reads the run and applies it
    /// again while this worker still owns it, else gives up with [`RunLost`].
    async fn run_commit(
        &self,
        run: &mut Run,
        owner: &str,
        change: &(dyn Fn(&mut Run, &mut Plan<'_>) + Send + Sync),
    ) -> Result<Result<(), RunLost>, StoreError> {
        let actor = Actor::system("runbooks");
        for attempt in 0..retry::MAX_CONFLICT_RETRIES {
            let now = self.clock.now();
            let mut next = run.clone();
            next.lease_until = Some(now + RUN_LEASE);
            let mut p = Plan::new(self, &actor, now);
            change(&mut next, &mut p);
            p.extra.runs.push(RunWrite::Update(next.clone()));
            match self.commit(p.finish(None)).await {
                Ok(()) => {
                    next.version += 1;
                    *run = next;
                    return Ok(Ok(()));
                }
                Err(StoreError::Conflict(_)) => {
                    retry::conflict_pause(attempt).await;
                    match self.store.run(run.id).await? {
                        Some(fresh)
                            if fresh.owner.as_deref() == Some(owner) && fresh.state.is_active() =>
                        {
                            // Keep what this worker knows (steps) and take what others changed
                            // (a cancel request, the version).
                            run.version = fresh.version;
                            run.cancel_requested = fresh.cancel_requested;
                            run.state = fresh.state;
                        }
                        _ => return Ok(Err(RunLost)),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Err(RunLost))
    }

    fn run_key(run: &Run) -> String {
        format!("run{}:v{}", run.id, run.version)
    }

    /// Approved → running (or running again after a step's approval).
    pub async fn run_started(
        &self,
        run: &mut Run,
        owner: &str,
        steps: usize,
    ) -> Result<Result<(), RunLost>, StoreError> {
        let resumed = run.started_at.is_some();
        let text = if resumed {
            format!(
                "Run #{} of {} resumes at step {} of {steps}",
                run.id,
                run.runbook,
                run.gate + 1
            )
        } else {
            format!(
                "Run #{} of {} started: {}",
                run.id,
                run.runbook,
                render::count(steps, "step")
            )
        };
        let owner_s = owner.to_string();
        self.run_commit(run, owner, &move |r, p| {
            r.state = RunState::Running;
            r.owner = Some(owner_s.clone());
            r.started_at = r.started_at.or(Some(p.at));
            if let Some(i) = r.incident {
                p.note(i, &Self::run_key(r), EventKind::RunStep, text.clone());
            }
        })
        .await
    }

    /// A step begins: recorded before anything is spawned.
    pub async fn step_started(
        &self,
        run: &mut Run,
        owner: &str,
        step: &PlannedStep,
        total: usize,
        detail: &str,
    ) -> Result<Result<(), RunLost>, StoreError> {
        let text = format!(
            "Run #{} step {}/{total} {} started{}: {}",
            run.id,
            step.index + 1,
            step.id,
            if step.destructive {
                " (destructive)"
            } else {
                ""
            },
            step.describe()
        );
        let (index, id, detail_s) = (step.index, step.id.clone(), detail.to_string());
        let result = self
            .run_commit(run, owner, &move |r, p| {
                p.extra.runs.push(RunWrite::StepStart(RunStep {
                    run: r.id,
                    index,
                    step_id: id.clone(),
                    state: StepState::Running,
                    started_at: p.at,
                    finished_at: None,
                    detail: detail_s.clone(),
                    output: String::new(),
                }));
                if let Some(i) = r.incident {
                    p.note(i, &Self::run_key(r), EventKind::RunStep, text.clone());
                }
            })
            .await?;
        if result.is_ok() {
            run.steps.push(RunStep {
                run: run.id,
                index: step.index,
                step_id: step.id.clone(),
                state: StepState::Running,
                started_at: self.clock.now(),
                finished_at: None,
                detail: detail.to_string(),
                output: String::new(),
            });
        }
        Ok(result)
    }

    /// A step skipped at this level: recorded as started and ended at once.
    pub async fn step_skipped(
        &self,
        run: &mut Run,
        owner: &str,
        step: &PlannedStep,
        why: &str,
    ) -> Result<Result<(), RunLost>, StoreError> {
        let (index, id, why) = (step.index, step.id.clone(), why.to_string());
        self.run_commit(run, owner, &move |r, p| {
            p.extra.runs.push(RunWrite::StepStart(RunStep {
                run: r.id,
                index,
                step_id: id.clone(),
                state: StepState::Skipped,
                started_at: p.at,
                finished_at: Some(p.at),
                detail: why.clone(),
                output: String::new(),
            }));
        })
        .await
    }

    /// A step ended; `tail` is the end of its (redacted) output, posted to the channel.
    pub async fn step_finished(
        &self,
        run: &mut Run,
        owner: &str,
        step: &PlannedStep,
        outcome: &StepOutcome,
        took: std::time::Duration,
        tail: &str,
    ) -> Result<Result<(), RunLost>, StoreError> {
        let (state, detail) = step_result(outcome, step);
        let text = format!(
            "Run #{} step {} {} in {}: {detail}",
            run.id,
            step.id,
            state.as_str().replace('_', " "),
            humantime::format_duration(std::time::Duration::from_secs(took.as_secs()))
        );
        let tail_post = (!tail.trim().is_empty()).then(|| {
            format!(
                "Run #{} step {} output (last lines, redacted):\n```\n{}\n```",
                run.id,
                step.id,
                tail.replace("```", "'''")
            )
        });
        let index = step.index;
        let result = self
            .run_commit(run, owner, &move |r, p| {
                p.extra.runs.push(RunWrite::StepEnd {
                    run: r.id,
                    index,
                    state,
                    at: p.at,
                    detail: detail.clone(),
                });
                if let Some(i) = r.incident {
                    let key = Self::run_key(r);
                    if let Some(t) = &tail_post {
                        p.chat(
                            i,
                            &format!("{key}:tail"),
                            crate::store::MessageKind::ChatPost,
                            t.clone(),
                            None,
                        );
                    }
                    p.note(i, &key, EventKind::RunStep, text.clone());
                }
            })
            .await?;
        if result.is_ok() {
            if let Some(s) = run.steps.iter_mut().find(|s| s.index == step.index) {
                s.state = state;
            }
        }
        Ok(result)
    }

    /// The tail of a running step's output, posted while it runs (chat only).
    pub async fn step_progress(
        &self,
        run: &Run,
        step: &PlannedStep,
        n: usize,
        tail: &str,
    ) -> Result<(), StoreError> {
        let Some(i) = run.incident else {
            return Ok(());
        };
        let actor = Actor::system("runbooks");
        let mut p = Plan::new(self, &actor, self.clock.now());
        let text = format!(
            "Run #{} step {} is running; its output so far (last lines, redacted):\n```\n{}\n```",
            run.id,
            step.id,
            tail.replace("```", "'''")
        );
        p.chat(
            i,
            &format!("run{}:s{}:progress{n}", run.id, step.index),
            crate::store::MessageKind::ChatPost,
            text,
            None,
        );
        self.commit(p.finish(None)).await
    }

    /// Running → pending approval at a step that asks for its own approval.
    pub async fn run_parked(
        &self,
        run: &mut Run,
        owner: &str,
        rb: &Runbook,
        steps: &[PlannedStep],
        gate: usize,
    ) -> Result<Result<(), RunLost>, StoreError> {
        let policy = gate_policy(rb, gate);
        let ttl = self.config.runbooks.approval_ttl;
        let steps = steps.to_vec();
        let rb = rb.clone();
        self.run_commit(run, owner, &move |r, p| {
            r.state = RunState::PendingApproval;
            r.gate = gate;
            r.needed = policy.approvals;
            r.role = policy.role;
            r.expires_at = Some(p.at + ttl);
            r.owner = None;
            r.lease_until = None;
            if let Some(i) = r.incident {
                let text = format!(
                    "Run #{} of {} waits at step {} ({}) for {}",
                    r.id,
                    r.runbook,
                    gate + 1,
                    steps.get(gate).map(|s| s.id.as_str()).unwrap_or(""),
                    render::approvals_wanted(r.needed, r.role)
                );
                p.note(i, &Self::run_key(r), EventKind::RunRequested, text);
            }
            let engine = p.engine;
            engine.ask_approval(p, &rb, r, &steps);
        })
        .await
    }

    /// The run ended: succeeded, failed, timed out, cancelled or interrupted.
    pub async fn run_finished(
        &self,
        run: &mut Run,
        owner: &str,
        state: RunState,
        outcome: String,
    ) -> Result<Result<(), RunLost>, StoreError> {
        let text = format!(
            "Run #{} of {} {}: {outcome}",
            run.id,
            run.runbook,
            state.as_str().replace('_', " ")
        );
        let result = self
            .run_commit(run, owner, &move |r, p| {
                r.state = state;
                r.finished_at = Some(p.at);
                r.outcome = Some(outcome.clone());
                r.owner = None;
                r.lease_until = None;
                r.needed = 0;
                r.expires_at = None;
                p.run_event(
                    r,
                    "run.finish",
                    serde_json::json!({"state": state.as_str(), "outcome": outcome}),
                    EventKind::RunFinished,
                    text.clone(),
                );
            })
            .await?;
        self.metrics.run_finished(&run.runbook, state.as_str());
        Ok(result)
    }

    /// Marks the runs of dead workers `interrupted`: their running step ended unknown, and
    /// nothing re-runs it.
    pub async fn interrupt_stale_runs(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let stale = self.store.stale_runs(now).await?;
        let mut n = 0;
        for run in stale {
            let actor = Actor::system("runbooks");
            let running: Vec<RunStep> = run
                .steps
                .iter()
                .filter(|s| s.state == StepState::Running)
                .cloned()
                .collect();
            let during = running
                .iter()
                .map(|s| format!("step {}", s.step_id))
                .collect::<Vec<_>>()
                .join(", ");
            let outcome = format!(
                "Spotter stopped while it ran{}; whether that step finished is unknown. Nothing re-runs it by itself: check the system, then request it again if it is still needed",
                if during.is_empty() { String::new() } else { format!(" ({during})") }
            );
            let mut next = run.clone();
            next.state = RunState::Interrupted;
            next.finished_at = Some(now);
            next.outcome = Some(outcome.clone());
            next.owner = None;
            next.lease_until = None;
            let mut p = Plan::new(self, &actor, now);
            for s in &running {
                p.extra.runs.push(RunWrite::StepEnd {
                    run: run.id,
                    index: s.index,
                    state: StepState::Interrupted,
                    at: now,
                    detail: "interrupted: Spotter stopped while it ran".into(),
                });
            }
            p.extra.runs.push(RunWrite::Update(next));
            p.run_event(
                &run,
                "run.interrupted",
                serde_json::json!({"steps": running.iter().map(|s| &s.step_id).collect::<Vec<_>>()}),
                EventKind::RunFinished,
                format!("Run #{} of {} interrupted: {outcome}", run.id, run.runbook),
            );
            match self.commit(p.finish(None)).await {
                Ok(()) => {
                    n += 1;
                    self.metrics.run_finished(&run.runbook, "interrupted");
                }
                // Another replica's sweep (or the worker itself, alive after all) got there first.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// A step's outcome as its stored state and one-line detail.
fn step_result(outcome: &StepOutcome, step: &PlannedStep) -> (StepState, String) {
    match outcome {
        StepOutcome::Succeeded { detail } => (StepState::Succeeded, detail.clone()),
        StepOutcome::Failed { detail, .. } => (StepState::Failed, detail.clone()),
        StepOutcome::TimedOut => (
            StepState::TimedOut,
            format!(
                "killed after {} (its timeout), with its whole process group",
                humantime::format_duration(step.timeout)
            ),
        ),
        StepOutcome::Cancelled => (
            StepState::Cancelled,
            "cancelled: its process group was killed".into(),
        ),
        StepOutcome::NotStarted { reason } => (StepState::NotStarted, reason.clone()),
    }
}
