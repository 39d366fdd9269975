//! Runbook runs in the store and the engine's sweep, on SQLite and PostgreSQL alike: the one
//! active run per lock key, leases that fence output and renewal, decisions recorded once, and
//! runs of a dead worker found and marked interrupted (never re-run).

mod common;

use chrono::Duration;
use spotter_core::clock::Clock;
use spotter_core::domain::{
    Decision, EventKind, IncidentRef, Role, Run, RunApproval, RunState, RunStep, StepState,
};
use spotter_core::store::{Changeset, RunFilter, RunWrite, Store};
use spotter_core::StoreError;
use std::collections::BTreeMap;

fn run(id: i64, lock: &str, state: RunState, at: chrono::DateTime<chrono::Utc>) -> Run {
    Run {
        id,
        runbook: "mark".into(),
        incident: None,
        level: None,
        lock_key: lock.into(),
        state,
        params: BTreeMap::from([("day".to_string(), "20261126".to_string())]),
        requested_by: "dev".into(),
        requested_at: at,
        gate: 0,
        needed: 1,
        role: Role::Approver,
        expires_at: Some(at + Duration::minutes(15)),
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

fn running_step(id: &str, at: chrono::DateTime<chrono::Utc>) -> RunStep {
    RunStep {
        run: 1,
        index: 0,
        step_id: id.into(),
        state: StepState::Running,
        started_at: at,
        finished_at: None,
        detail: "running".into(),
        output: String::new(),
    }
}

/// Inserts a run of `mark` with that id, lock key and state.
async fn insert(
    store: &spotter_core::store::SqlStore,
    id: i64,
    lock: &str,
    state: RunState,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    store
        .commit(write(RunWrite::Insert(run(id, lock, state, now))))
        .await
}

fn write(w: RunWrite) -> Changeset {
    Changeset {
        runs: vec![w],
        ..Changeset::default()
    }
}

dual_test!(one_active_run_per_lock_key, |ctx| async move {
    let now = ctx.clock.now();
    let store = &ctx.store;
    insert(store, 1, "mark:db", RunState::PendingApproval, now)
        .await
        .unwrap();
    // Another active run on the same key loses, whatever its id; nothing of it is written.
    let second = insert(store, 2, "mark:db", RunState::Approved, now).await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
    // The same id twice is a conflict too (a concurrent request took it).
    let dup = insert(store, 1, "mark:other", RunState::Approved, now).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(store.runs(RunFilter::default()).await.unwrap().len(), 1);
    // Once the first ended, the key is free again.
    let mut first = store.run(1).await.unwrap().unwrap();
    first.state = RunState::Denied;
    store
        .commit(write(RunWrite::Update(first.clone())))
        .await
        .unwrap();
    insert(store, 2, "mark:db", RunState::PendingApproval, now)
        .await
        .unwrap();
    // An update read at an old version loses.
    let stale = store.commit(write(RunWrite::Update(first))).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let active = store
        .runs(RunFilter {
            active: true,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(active.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(store.next_run_id().await.unwrap(), 3);
});

dual_test!(a_person_decides_once_per_gate, |ctx| async move {
    let now = ctx.clock.now();
    let store = &ctx.store;
    insert(store, 1, "mark:db", RunState::PendingApproval, now)
        .await
        .unwrap();
    let decide = |d: Decision, gate: usize| {
        write(RunWrite::Decide(RunApproval {
            run: 1,
            gate,
            person: "dba".into(),
            decision: d,
            at: now,
        }))
    };
    store.commit(decide(Decision::Approve, 0)).await.unwrap();
    let again = store.commit(decide(Decision::Approve, 0)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    // At a later gate the same person decides anew, and a confirmation is a decision of its own.
    store.commit(decide(Decision::Approve, 2)).await.unwrap();
    store.commit(decide(Decision::Confirm, 2)).await.unwrap();
    let r = store.run(1).await.unwrap().unwrap();
    assert_eq!(r.approvals.len(), 3);
    assert_eq!(r.approvals_at_gate().count(), 1);
});

dual_test!(leases_fence_claims_output_and_renewal, |ctx| async move {
    let now = ctx.clock.now();
    let store = &ctx.store;
    insert(store, 1, "mark:a", RunState::PendingApproval, now)
        .await
        .unwrap();
    // Pending runs are not claimable; approved ones are, by one worker at a time.
    assert!(store
        .claim_run(now, Duration::seconds(15), "w1")
        .await
        .unwrap()
        .is_none());
    let mut r = store.run(1).await.unwrap().unwrap();
    r.state = RunState::Approved;
    store.commit(write(RunWrite::Update(r))).await.unwrap();
    let claimed = store
        .claim_run(now, Duration::seconds(15), "w1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.owner.as_deref(), Some("w1"));
    assert!(store
        .claim_run(now, Duration::seconds(15), "w2")
        .await
        .unwrap()
        .is_none());
    // The worker marks it running and starts a step; output goes in only under its lease.
    let mut running = claimed.clone();
    running.state = RunState::Running;
    let step = running_step("mark", now);
    store
        .commit(Changeset {
            runs: vec![RunWrite::StepStart(step), RunWrite::Update(running)],
            ..Changeset::default()
        })
        .await
        .unwrap();
    assert!(store
        .append_run_output(1, 0, "w1", "line one\n")
        .await
        .unwrap());
    assert!(!store
        .append_run_output(1, 0, "w2", "not mine\n")
        .await
        .unwrap());
    assert!(store
        .renew_run_lease(1, "w1", now, now + Duration::seconds(15))
        .await
        .unwrap());
    assert!(!store
        .renew_run_lease(1, "w2", now, now + Duration::seconds(15))
        .await
        .unwrap());
    assert!(store
        .stale_runs(now + Duration::seconds(10))
        .await
        .unwrap()
        .is_empty());
    // Past its lease without renewal, the run is stale: its worker died.
    let later = now + Duration::seconds(16);
    assert!(!store
        .renew_run_lease(1, "w1", later, later + Duration::seconds(15))
        .await
        .unwrap());
    let stale = store.stale_runs(later).await.unwrap();
    assert_eq!(stale.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1]);
    assert_eq!(
        store.run(1).await.unwrap().unwrap().steps[0].output,
        "line one\n"
    );
});

dual_test!(
    the_sweep_marks_a_dead_workers_run_interrupted,
    |ctx| async move {
        let inc = ctx.declare(4, "Data corrupted").await;
        let now = ctx.clock.now();
        let store = &ctx.store;
        let mut r = run(1, "mark:db", RunState::Approved, now);
        r.incident = Some(IncidentRef::new(inc.reference.number()));
        store.commit(write(RunWrite::Insert(r))).await.unwrap();
        let mut claimed = store
            .claim_run(now, Duration::seconds(15), "dead")
            .await
            .unwrap()
            .unwrap();
        claimed.state = RunState::Running;
        let step = running_step("restore", now);
        store
            .commit(Changeset {
                runs: vec![RunWrite::StepStart(step), RunWrite::Update(claimed)],
                ..Changeset::default()
            })
            .await
            .unwrap();
        // Within the lease nothing is swept.
        assert_eq!(ctx.engine.interrupt_stale_runs().await.unwrap(), 0);
        ctx.clock.advance(Duration::seconds(20));
        assert_eq!(ctx.engine.interrupt_stale_runs().await.unwrap(), 1);
        assert_eq!(ctx.engine.interrupt_stale_runs().await.unwrap(), 0, "once");
        let r = store.run(1).await.unwrap().unwrap();
        assert_eq!(r.state, RunState::Interrupted);
        assert_eq!(r.steps[0].state, StepState::Interrupted);
        assert!(r.outcome.unwrap().contains("Nothing re-runs it"));
        // Interrupted is final: not claimable, so nothing runs it again.
        assert!(store
            .claim_run(ctx.clock.now(), Duration::seconds(15), "w")
            .await
            .unwrap()
            .is_none());
        let kinds = ctx.timeline_kinds(inc.reference.number()).await;
        assert!(kinds.contains(&EventKind::RunFinished), "{kinds:?}");
        let audit = store.audit_log().await.unwrap();
        assert!(audit.entries.iter().any(|e| e.action == "run.interrupted"));
    }
);
