//! The run worker: claims approved runbook runs from the database and executes their steps
//! through the [`Executor`] port, one step after another, recording each through the engine.
//!
//! Every replica runs one. A run is leased to one worker at a time (renewed every few seconds
//! while it runs); a worker that dies leaves a lease that lapses, and any worker's sweep then
//! marks the run `interrupted`. While a step runs the worker streams its output, redacted, into
//! the database, posts the tail to the incident channel every few seconds, polls for a cancel
//! request (which kills the step's process group) and renews the lease; when it cannot renew,
//! it kills the step and stops, since the run may be someone else's by then.

use crate::domain::{Decision, Run, RunState, StepState};
use crate::engine::{RunLost, RUN_LEASE};
use crate::runbook::plan::{self, PlannedAction, PlannedStep};
use crate::runbook::redact::Redactor;
use crate::runbook::{
    Executor, GeneratedSecret, Invocation, OnFailure, OutputSink, Runbook, SecretEncoding, Secrets,
    StepOutcome,
};
use crate::Engine;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Output kept per step in the database; beyond it only the count of what was cut is kept.
pub const OUTPUT_CAP: usize = 4 * 1024 * 1024;
/// Runs executed at once by one worker.
const CONCURRENCY: usize = 4;
/// How often a running step's output is flushed, its cancel flag read and its lease renewed.
const TICK: Duration = Duration::from_secs(1);
/// Lease renewals, in ticks.
const RENEW_EVERY_TICKS: u32 = 4;
/// How often the tail of a running step's output is posted to the channel (when it changed).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

pub struct RunWorker {
    engine: Arc<Engine>,
    executor: Arc<dyn Executor>,
    owner: String,
}

impl RunWorker {
    pub fn new(engine: Arc<Engine>, executor: Arc<dyn Executor>) -> Self {
        RunWorker {
            engine,
            executor,
            owner: format!("runs-{}", crate::random_token(8)),
        }
    }

    /// Sweeps, claims and executes until `shutdown`; then stops the steps in hand (they are
    /// recorded as interrupted: Spotter stopped them).
    pub async fn run(self, shutdown: CancellationToken) {
        let wakeup = self.engine.run_wakeup();
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            if let Err(e) = self.engine.interrupt_stale_runs().await {
                tracing::warn!(error = %e, "cannot sweep interrupted runs");
            }
            while tasks.len() < CONCURRENCY {
                let now = self.engine.clock().now();
                match self
                    .engine
                    .store()
                    .claim_run(now, RUN_LEASE, &self.owner)
                    .await
                {
                    Ok(Some(run)) => {
                        let job = Execution {
                            engine: self.engine.clone(),
                            executor: self.executor.clone(),
                            owner: self.owner.clone(),
                            shutdown: shutdown.clone(),
                        };
                        tasks.spawn(async move { job.execute(run).await });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim runs");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wakeup.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

struct Execution {
    engine: Arc<Engine>,
    executor: Arc<dyn Executor>,
    owner: String,
    shutdown: CancellationToken,
}

/// Where a step's output goes while it runs: each line redacted, kept up to [`OUTPUT_CAP`].
struct Capture {
    redactor: Redactor,
    state: Mutex<CaptureState>,
}

#[derive(Default)]
struct CaptureState {
    /// Not yet written to the database.
    unflushed: String,
    /// The last lines, for the channel.
    tail: std::collections::VecDeque<String>,
    kept: usize,
    cut: usize,
    lines: usize,
}

impl OutputSink for Capture {
    fn line(&self, line: &str) {
        let clean = self.redactor.redact(line).into_owned();
        let mut s = self.state.lock().expect("capture lock");
        s.lines += 1;
        if s.kept + clean.len() < OUTPUT_CAP {
            s.kept += clean.len() + 1;
            s.unflushed.push_str(&clean);
            s.unflushed.push('\n');
        } else {
            s.cut += clean.len() + 1;
        }
        s.tail.push_back(clean);
        while s.tail.len() > 40 {
            s.tail.pop_front();
        }
    }
}

impl Capture {
    fn take(&self) -> String {
        std::mem::take(&mut self.state.lock().expect("capture lock").unflushed)
    }
    /// The last lines that fit in `max` characters.
    fn tail(&self, max: usize) -> String {
        let s = self.state.lock().expect("capture lock");
        let mut out: Vec<&str> = Vec::new();
        let mut len = 0;
        for l in s.tail.iter().rev() {
            let n = l.chars().count() + 1;
            if len + n > max {
                break;
            }
            len += n;
            out.push(l);
        }
        out.reverse();
        out.join("\n")
    }
    fn lines(&self) -> usize {
        self.state.lock().expect("capture lock").lines
    }
    fn cut(&self) -> usize {
        self.state.lock().expect("capture lock").cut
    }
}

/// Fresh random values for a run's `[[generate]]` secrets.
fn generate(specs: &[GeneratedSecret]) -> Secrets {
    use base64::Engine as _;
    use rand::RngCore;
    Secrets(
        specs
            .iter()
            .map(|g| {
                let mut buf = vec![0u8; g.bytes];
                rand::rngs::OsRng.fill_bytes(&mut buf);
                let value = match g.encoding {
                    SecretEncoding::Base64Url => {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&buf)
                    }
                    SecretEncoding::Hex => hex::encode(&buf),
                };
                (g.name.clone(), value)
            })
            .collect(),
    )
}

/// Why a step stopped early, besides its own outcome.
enum Stop {
    /// The worker lost the run (another replica's sweep, or the lease could not be renewed).
    Lost,
    /// Spotter is shutting down.
    Shutdown,
}

impl Execution {
    async fn execute(self, run: Run) {
        let id = run.id;
        if let Err(e) = self.execute_inner(run).await {
            // The lease lapses and the sweep reports the run interrupted.
            tracing::error!(run = id, error = %e, "run stopped on a store error");
        }
    }

    async fn execute_inner(&self, mut run: Run) -> Result<(), crate::StoreError> {
        let engine = &self.engine;
        let Some(rb) = engine.runbooks().get(&run.runbook).cloned() else {
            let why = format!("runbook `{}` is no longer loaded", run.runbook);
            let _ = engine
                .run_finished(&mut run, &self.owner, RunState::Failed, why)
                .await?;
            return Ok(());
        };
        let secrets = generate(&rb.generate);
        let redactor = engine
            .redactor()
            .with_secrets(&secrets.0.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>());
        let builtins = plan::Builtins {
            incident: run.incident,
            level: run.level,
            run: run.id,
            runbook: rb.name.clone(),
        };
        let steps = plan::plan(&rb, &run.params, &builtins, &engine.config().probes);
        if engine
            .run_started(&mut run, &self.owner, steps.len())
            .await?
            .is_err()
        {
            return Ok(());
        }
        let resume_at = run.gate;
        let mut failures: Vec<String> = Vec::new();
        for step in steps.iter().filter(|s| s.index >= resume_at) {
            if step.index > resume_at && !crate::engine::gate_policy(&rb, step.index).is_auto() {
                let _ = engine
                    .run_parked(&mut run, &self.owner, &rb, &steps, step.index)
                    .await?;
                return Ok(());
            }
            if let Some(why) = &step.skipped {
                if engine
                    .step_skipped(&mut run, &self.owner, step, why)
                    .await?
                    .is_err()
                {
                    return Ok(());
                }
                continue;
            }
            let (outcome, stop) = match self
                .run_step(&mut run, &rb, step, steps.len(), &secrets, &redactor)
                .await?
            {
                Ok(r) => r,
                Err(RunLost) => return Ok(()),
            };
            match stop {
                Some(Stop::Lost) => return Ok(()),
                Some(Stop::Shutdown) => {
                    // Spotter stopped it: honest, and never re-run by itself.
                    let _ = engine
                        .run_finished(
                            &mut run,
                            &self.owner,
                            RunState::Interrupted,
                            format!("Spotter shut down during step {}; its process group was killed. Nothing re-runs it by itself", step.id),
                        )
                        .await?;
                    return Ok(());
                }
                None => {}
            }
            if outcome.is_success() {
                continue;
            }
            let (state, what) = match &outcome {
                StepOutcome::TimedOut => (RunState::TimedOut, "timed out"),
                StepOutcome::Cancelled => (RunState::Cancelled, "was cancelled"),
                _ => (RunState::Failed, "failed"),
            };
            if step.on_failure == OnFailure::Continue && state == RunState::Failed {
                failures.push(step.id.clone());
                continue;
            }
            let outcome = format!("step {} {what}; the steps after it did not run", step.id);
            let _ = engine
                .run_finished(&mut run, &self.owner, state, outcome)
                .await?;
            return Ok(());
        }
        let outcome = if failures.is_empty() {
            format!("{} done", crate::render::count(steps.len(), "step"))
        } else {
            format!(
                "done, but {} failed and the run went on (on_failure = continue)",
                failures.join(", ")
            )
        };
        let _ = engine
            .run_finished(&mut run, &self.owner, RunState::Succeeded, outcome)
            .await?;
        Ok(())
    }

    /// Runs one step: its start recorded first, then the process (or request, probe, manual
    /// confirmation) with the output streamed and the lease renewed, then its end.
    async fn run_step(
        &self,
        run: &mut Run,
        rb: &Runbook,
        step: &PlannedStep,
        total: usize,
        secrets: &Secrets,
        redactor: &Redactor,
    ) -> Result<Result<(StepOutcome, Option<Stop>), RunLost>, crate::StoreError> {
        let engine = &self.engine;
        let detail = match &step.action {
            PlannedAction::Manual { .. } => "waiting for /runbook confirm",
            PlannedAction::Invoke(_) => "running",
        };
        if let Err(lost) = engine
            .step_started(run, &self.owner, step, total, detail)
            .await?
        {
            return Ok(Err(lost));
        }
        let capture = Arc::new(Capture {
            redactor: redactor.clone(),
            state: Mutex::new(CaptureState::default()),
        });
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let work = {
            let cancel = cancel.clone();
            let capture = capture.clone();
            let executor = self.executor.clone();
            let action = step.action.clone();
            let timeout = step.timeout;
            let secrets = secrets.clone();
            async move {
                match action {
                    PlannedAction::Invoke(action) => {
                        let inv = Invocation {
                            action,
                            timeout,
                            secrets,
                        };
                        executor.run(&inv, capture.as_ref(), cancel).await
                    }
                    // Confirmed by a person: the monitor below sees the confirmation and ends
                    // this wait by cancelling it with `confirmed` set.
                    PlannedAction::Manual { instructions } => {
                        capture.line(&format!("manual step: {instructions}"));
                        capture.line("waiting for a person: /runbook confirm run:<id>");
                        tokio::select! {
                            _ = cancel.cancelled() => StepOutcome::Cancelled,
                            _ = tokio::time::sleep(timeout) => StepOutcome::TimedOut,
                        }
                    }
                }
            }
        };
        tokio::pin!(work);
        let mut stop: Option<Stop> = None;
        let mut confirmed_by: Option<String> = None;
        let mut last_post = Instant::now();
        let mut posted_lines = 0;
        let mut progress = 0;
        let mut ticks: u32 = 0;
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                _ = self.shutdown.cancelled(), if stop.is_none() => {
                    stop = Some(Stop::Shutdown);
                    cancel.cancel();
                }
                _ = tokio::time::sleep(TICK) => {
                    let text = capture.take();
                    if !text.is_empty()
                        && !engine.store().append_run_output(run.id, step.index, &self.owner, &text).await.unwrap_or(true)
                    {
                        stop = Some(Stop::Lost);
                        cancel.cancel();
                        continue;
                    }
                    let now = engine.clock().now();
                    ticks += 1;
                    // The lease (15 s) is renewed every few seconds: often enough to survive a
                    // slow commit, rarely enough not to crowd the single SQLite writer.
                    let renew = ticks >= RENEW_EVERY_TICKS;
                    if renew {
                        ticks = 0;
                    }
                    if renew
                        && !engine.store().renew_run_lease(run.id, &self.owner, now, now + RUN_LEASE).await.unwrap_or(false)
                    {
                        stop = Some(Stop::Lost);
                        cancel.cancel();
                        continue;
                    }
                    if let Ok(Some(fresh)) = engine.store().run_summary(run.id).await {
                        if fresh.cancel_requested && !cancel.is_cancelled() {
                            cancel.cancel();
                        }
                        if confirmed_by.is_none() {
                            confirmed_by = fresh
                                .approvals
                                .iter()
                                .find(|a| a.gate == step.index && a.decision == Decision::Confirm)
                                .map(|a| a.person.clone());
                            if confirmed_by.is_some() {
                                cancel.cancel();
                            }
                        }
                    }
                    if capture.lines() > posted_lines && last_post.elapsed() >= PROGRESS_EVERY {
                        posted_lines = capture.lines();
                        last_post = Instant::now();
                        progress += 1;
                        let tail = capture.tail(engine.config().runbooks.output_tail);
                        let _ = engine.step_progress(run, step, progress, &tail).await;
                    }
                }
            }
        };
        let outcome = match (&step.action, confirmed_by) {
            (PlannedAction::Manual { .. }, Some(who)) => StepOutcome::Succeeded {
                detail: format!("confirmed done by {who}"),
            },
            _ => outcome,
        };
        let mut rest = capture.take();
        if capture.cut() > 0 {
            rest.push_str(&format!(
                "[{} bytes of output not kept: a step keeps at most {} MiB]\n",
                capture.cut(),
                OUTPUT_CAP / (1024 * 1024)
            ));
        }
        if !rest.is_empty() {
            let _ = engine
                .store()
                .append_run_output(run.id, step.index, &self.owner, &rest)
                .await;
        }
        if matches!(stop, Some(Stop::Lost)) {
            return Ok(Ok((outcome, stop)));
        }
        let tail = capture.tail(engine.config().runbooks.output_tail);
        let _ = rb;
        match engine
            .step_finished(run, &self.owner, step, &outcome, started.elapsed(), &tail)
            .await?
        {
            Ok(()) => {}
            Err(lost) => return Ok(Err(lost)),
        }
        if matches!(stop, Some(Stop::Shutdown)) {
            if let Some(s) = run.steps.iter_mut().find(|s| s.index == step.index) {
                s.state = StepState::Interrupted;
            }
        }
        Ok(Ok((outcome, stop)))
    }
}
