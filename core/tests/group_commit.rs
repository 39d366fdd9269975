//! Group commit: concurrent writers' units share one transaction, and still each other's
//! failures never. A unit that fails its checks (a version conflict, a malformed declaration)
//! fails alone while the others of its batch commit; a fault of the batch itself (here: its
//! commit refused by the database) answers every waiter with a transient error and writes
//! nothing. SQLite and PostgreSQL alike.
//!
//! To put several units in one batch on purpose, a first declaration holds the writer: its
//! build (which the writer asks for inside its transaction) waits until the test has queued the
//! others, so the writer's next batch takes them all.

mod common;

use chrono::Duration;
use spotter_core::clock::Clock;
use spotter_core::domain::{Incident, IncidentRef, LevelId, Source, TimelineEntry};
use spotter_core::store::{Changeset, IncidentWrite, Part, Store};
use spotter_core::StoreError;
use std::sync::{mpsc, Arc, Mutex};

/// A unit's outcome as the test sees it.
type Answer = Result<Vec<IncidentRef>, StoreError>;

fn new_incident(number: IncidentRef, title: &str) -> Changeset {
    Changeset {
        incident: Some(IncidentWrite::Insert(Incident::declare(
            number,
            LevelId(1),
            Duration::hours(4),
            title.into(),
            vec![],
            None,
            Source::Api,
            "tester".into(),
            common::start_time(),
        ))),
        ..Changeset::default()
    }
}

fn note(r: IncidentRef, text: &str) -> Changeset {
    Changeset {
        timeline: vec![TimelineEntry {
            incident: r,
            at: common::start_time(),
            actor: "tester".into(),
            kind: spotter_core::domain::EventKind::Update,
            text: text.into(),
            public: false,
        }],
        ..Changeset::default()
    }
}

/// Holds the store's writer inside a transaction until the returned sender is used (or
/// dropped): a declaration whose build waits. Returns once the writer is held.
async fn hold_writer(ctx: &common::Ctx) -> (mpsc::Sender<()>, tokio::task::JoinHandle<Answer>) {
    let (release, gate) = mpsc::channel::<()>();
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let gate = Mutex::new(gate);
    let started_tx = Mutex::new(Some(started_tx));
    let store = ctx.store.clone();
    let held = tokio::spawn(async move {
        let build = move |_, number, _| {
            if let Some(tx) = started_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            // Blocks this worker thread (the build is synchronous), so the runtime is told.
            tokio::task::block_in_place(|| {
                let _ = gate.lock().unwrap().recv();
            });
            new_incident(number, "holds the writer")
        };
        store.commit_unit(vec![Part::Declare], &build).await
    });
    tokio::time::timeout(std::time::Duration::from_secs(30), started)
        .await
        .expect("the writer asked for the holding declaration")
        .unwrap();
    (release, held)
}

/// Queues `units` behind the held writer, in order: each is queued before the next is sent.
async fn queue_behind(
    ctx: &common::Ctx,
    units: Vec<Changeset>,
) -> Vec<tokio::task::JoinHandle<Answer>> {
    let before = ctx.store.group_commit_stats().waiting;
    let mut handles = Vec::with_capacity(units.len());
    for cs in units {
        let store = ctx.store.clone();
        handles.push(tokio::spawn(async move {
            if cs.incident.is_none() && cs.timeline.is_empty() {
                // An empty changeset stands for "declare": numbered by the writer.
                let build = |_, number, _| new_incident(number, "queued declaration");
                store.commit_unit(vec![Part::Declare], &build).await
            } else {
                store
                    .commit_unit(vec![Part::Write(cs)], &|_, _, _| Changeset::default())
                    .await
            }
        }));
        let want = before + handles.len();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while ctx.store.group_commit_stats().waiting < want {
            assert!(std::time::Instant::now() < deadline, "units never queued");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    handles
}

async fn answers(handles: Vec<tokio::task::JoinHandle<Answer>>) -> Vec<Answer> {
    let mut out = vec![];
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn timeline_texts(ctx: &common::Ctx, r: IncidentRef) -> Vec<String> {
    ctx.store
        .timeline(r)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect()
}

dual_test!(
    multi_thread a_unit_that_fails_its_checks_fails_alone,
    |ctx| async move {
        let first = ctx.declare(2, "the incident the units write to").await;
        let r = first.reference;
        let (release, held) = hold_writer(&ctx).await;
        let before = ctx.store.group_commit_stats();
        // An update at a version that was never current: a conflict.
        let mut stale = first.clone();
        stale.version = 0;
        let stale = Changeset {
            incident: Some(IncidentWrite::Update(stale)),
            ..note(r, "C: written with a stale version")
        };
        let handles = queue_behind(
            &ctx,
            vec![
                note(r, "B: before the failing unit"),
                stale,
                note(r, "D: after it"),
                Changeset::default(),
            ],
        )
        .await;
        release.send(()).unwrap();
        let held = held.await.unwrap().expect("the holding declaration commits");
        let got = answers(handles).await;

        assert!(got[0].is_ok(), "{:?}", got[0]);
        assert!(
            matches!(got[1], Err(StoreError::Conflict(_))),
            "the stale update conflicts: {:?}",
            got[1]
        );
        assert!(got[2].is_ok(), "{:?}", got[2]);
        // Numbers stay sequential: the queued declaration follows the holding one.
        let declared = got[3].as_ref().expect("the queued declaration commits");
        assert_eq!(declared[0].number(), held[0].number() + 1);

        let after = ctx.store.group_commit_stats();
        assert_eq!(
            (after.batches - before.batches, after.units - before.units),
            (2, 5),
            "the holding declaration's batch, then one batch of the four queued units"
        );
        let texts = timeline_texts(&ctx, r).await;
        assert!(texts.iter().any(|t| t.starts_with("B:")), "{texts:?}");
        assert!(texts.iter().any(|t| t.starts_with("D:")), "{texts:?}");
        assert!(!texts.iter().any(|t| t.starts_with("C:")), "{texts:?}");
        assert_eq!(ctx.store.incident(r).await.unwrap().unwrap().version, first.version);
        ctx.audit_verifies().await;
    }
);

dual_test!(
    multi_thread a_declaration_built_wrong_fails_alone_and_frees_its_number,
    |ctx| async move {
        let (release, held) = hold_writer(&ctx).await;
        let store = ctx.store.clone();
        let wrong = tokio::spawn(async move {
            // Inserts a number other than the one it was given.
            let build = |_, number: IncidentRef, _| new_incident(IncidentRef::new(number.number() + 100), "wrong");
            store.commit_unit(vec![Part::Declare], &build).await
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while ctx.store.group_commit_stats().waiting < 1 {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let handles = queue_behind(&ctx, vec![Changeset::default()]).await;
        release.send(()).unwrap();
        let held = held.await.unwrap().unwrap();
        assert!(matches!(wrong.await.unwrap(), Err(StoreError::Other(_))));
        let got = answers(handles).await;
        let declared = got[0].as_ref().expect("the good declaration commits");
        assert_eq!(declared[0].number(), held[0].number() + 1, "no gap where the wrong one was");
        assert!(ctx.store.incident(IncidentRef::new(held[0].number() + 101)).await.unwrap().is_none());
    }
);

/// A deferred constraint that the database checks at COMMIT: a timeline entry saying `POISON`
/// makes the commit of whatever transaction holds it fail.
async fn poison_commits(ctx: &common::Ctx) {
    match ctx.backend {
        common::Backend::Sqlite => {
            ctx.raw_sql(
                "CREATE TABLE poison (incident INTEGER REFERENCES incidents (number) DEFERRABLE INITIALLY DEFERRED); \
                 CREATE TRIGGER poison_at_commit AFTER INSERT ON timeline WHEN NEW.text = 'POISON' \
                 BEGIN INSERT INTO poison VALUES (-1); END;",
            )
            .await;
        }
        common::Backend::Postgres => {
            ctx.raw_sql(
                "CREATE TABLE poison (incident BIGINT REFERENCES incidents (number) DEFERRABLE INITIALLY DEFERRED); \
                 CREATE FUNCTION poison_f() RETURNS trigger AS $$ BEGIN \
                 IF NEW.text = 'POISON' THEN INSERT INTO poison VALUES (-1); END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER poison_at_commit AFTER INSERT ON timeline FOR EACH ROW EXECUTE FUNCTION poison_f();",
            )
            .await;
        }
    }
}

dual_test!(
    multi_thread a_failed_commit_fails_every_waiter_and_writes_nothing,
    |ctx| async move {
        let first = ctx.declare(2, "the incident the units write to").await;
        let r = first.reference;
        poison_commits(&ctx).await;
        let incidents_before = ctx.store.next_incident_number().await.unwrap();
        let (release, held) = hold_writer(&ctx).await;
        let handles = queue_behind(
            &ctx,
            vec![
                note(r, "B: would have committed"),
                note(r, "POISON"),
                Changeset::default(),
            ],
        )
        .await;
        release.send(()).unwrap();
        held.await.unwrap().expect("the holding declaration commits");
        let got = answers(handles).await;
        for (i, a) in got.iter().enumerate() {
            assert!(
                matches!(a, Err(e) if e.is_transient()),
                "unit {i} is told to retry (503): {a:?}"
            );
        }
        let texts = timeline_texts(&ctx, r).await;
        assert!(!texts.iter().any(|t| t.starts_with("B:") || t == "POISON"), "{texts:?}");
        assert_eq!(
            ctx.store.next_incident_number().await.unwrap(),
            incidents_before + 1,
            "only the holding declaration was numbered"
        );
        // The fault was the poisoned unit's: the others' retry commits.
        ctx.store.commit(note(r, "B: retried")).await.unwrap();
        assert!(timeline_texts(&ctx, r).await.iter().any(|t| t == "B: retried"));
        ctx.audit_verifies().await;
    }
);

// Units from many tasks at once are all answered, each after its own commit, in fewer
// transactions than units.
dual_test!(
    multi_thread concurrent_writers_share_transactions,
    |ctx| async move {
        let first = ctx.declare(2, "the incident the units write to").await;
        let r = first.reference;
        let before = ctx.store.group_commit_stats();
        let (release, held) = hold_writer(&ctx).await;
        let units: Vec<Changeset> = (0..64).map(|i| note(r, &format!("note {i}"))).collect();
        let handles = queue_behind(&ctx, units).await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        for a in answers(handles).await {
            a.unwrap();
        }
        let after = ctx.store.group_commit_stats();
        assert_eq!(after.units - before.units, 65);
        assert_eq!(after.batches - before.batches, 2, "64 queued units, one transaction");
        let texts: Arc<Vec<String>> = Arc::new(timeline_texts(&ctx, r).await);
        for i in 0..64 {
            assert!(texts.contains(&format!("note {i}")), "note {i} is stored");
        }
    }
);

/// An alert joining `inc` as read: its row, guarding the incident's version.
fn join(inc: &Incident, name: &str) -> Changeset {
    Changeset {
        incident: Some(IncidentWrite::Guard(inc.clone())),
        alerts: vec![common::firing_alert_row(
            inc.reference,
            name,
            common::start_time(),
        )],
        ..note(inc.reference, &format!("{name} joined"))
    }
}

/// The incident as read moved to its quiet period, which requires it to have no firing alert.
fn go_quiet(inc: &Incident) -> Changeset {
    let mut next = inc.clone();
    next.phase = spotter_core::domain::Phase::PostRecoveryMonitoring;
    Changeset {
        incident: Some(IncidentWrite::Update(next)),
        all_resolved: vec![inc.reference],
        ..note(inc.reference, "quiet")
    }
}

dual_test!(
    multi_thread guards_of_one_version_share_it_and_a_change_fails_the_later_ones,
    |ctx| async move {
        let inc = ctx.declare(2, "alerts join it").await;
        let r = inc.reference;
        let (release, held) = hold_writer(&ctx).await;
        let mut change = inc.clone();
        change.summary = Some("changed".into());
        let change = Changeset {
            incident: Some(IncidentWrite::Update(change)),
            ..note(r, "C: the change")
        };
        // Two joins at the version read, then a change at it, then a join still at it.
        let handles = queue_behind(
            &ctx,
            vec![join(&inc, "A"), join(&inc, "B"), change, join(&inc, "D")],
        )
        .await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        let got = answers(handles).await;
        assert!(got[0].is_ok() && got[1].is_ok(), "{got:?}");
        assert!(got[2].is_ok(), "guards do not bump the version: {:?}", got[2]);
        assert!(
            matches!(got[3], Err(StoreError::Conflict(_))),
            "a guard of a version changed before it conflicts: {:?}",
            got[3]
        );
        let after = ctx.store.incident(r).await.unwrap().unwrap();
        assert_eq!(after.version, inc.version + 1, "only the change bumped it");
        let names: Vec<String> = ctx
            .store
            .incident_alerts(r)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.fingerprint)
            .collect();
        assert_eq!(names, ["A", "B"], "the conflicting join wrote nothing");
        // A guard of an incident that does not exist conflicts too.
        let mut ghost = inc.clone();
        ghost.reference = IncidentRef::new(999);
        let lone = ctx
            .store
            .commit_unit(
                vec![Part::Write(Changeset {
                    incident: Some(IncidentWrite::Guard(ghost)),
                    ..Changeset::default()
                })],
                &|_, _, _| Changeset::default(),
            )
            .await;
        assert!(matches!(lone, Err(StoreError::Conflict(_))), "{lone:?}");
        ctx.audit_verifies().await;
    }
);

dual_test!(
    multi_thread a_quiet_start_fails_when_an_alert_joined_before_it_in_its_batch,
    |ctx| async move {
        let inc = ctx.declare(2, "its last alert resolved").await;
        let r = inc.reference;
        let (release, held) = hold_writer(&ctx).await;
        // The join's new row is one of the batch's shared inserts, written after both units:
        // the quiet start is still checked after it.
        let handles = queue_behind(&ctx, vec![join(&inc, "late"), go_quiet(&inc)]).await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        let got = answers(handles).await;
        assert!(got[0].is_ok(), "{:?}", got[0]);
        assert!(
            matches!(got[1], Err(StoreError::Conflict(_))),
            "quiet with a firing alert: {:?}",
            got[1]
        );
        assert_eq!(
            ctx.store.incident(r).await.unwrap().unwrap().phase,
            inc.phase,
            "the quiet start wrote nothing"
        );
        // With no firing alert it goes through.
        let other = ctx.declare(2, "nothing fires").await;
        let quiet = ctx
            .store
            .commit_unit(vec![Part::Write(go_quiet(&other))], &|_, _, _| {
                Changeset::default()
            })
            .await;
        assert!(quiet.is_ok(), "{quiet:?}");
        ctx.audit_verifies().await;
    }
);

dual_test!(
    multi_thread a_quiet_start_on_another_replica_waits_for_a_join_in_flight_and_fails,
    |ctx| async move {
        // Replica 1 is inside the transaction of a join (its guard taken, its row written: the
        // unit's declaration, built after them, waits); replica 2 starts the quiet period of the
        // same incident at the same version. It must not commit past the join: on PostgreSQL
        // it waits on the join's share lock, on SQLite on the write lock, and then sees the
        // joined alert firing.
        let inc = ctx.declare(2, "replicas race on it").await;
        let r = inc.reference;
        let (release, gate) = mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let gate = Mutex::new(gate);
        let started_tx = Mutex::new(Some(started_tx));
        let store = ctx.store.clone();
        let joined = join(&inc, "in-flight");
        let joining = tokio::spawn(async move {
            let build = move |_, number, _| {
                if let Some(tx) = started_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                tokio::task::block_in_place(|| {
                    let _ = gate.lock().unwrap().recv();
                });
                new_incident(number, "holds the join's transaction open")
            };
            store
                .commit_unit(vec![Part::Write(joined), Part::Declare], &build)
                .await
        });
        started.await.unwrap();
        let replica = Arc::new(ctx.reconnect().await);
        let quiet = {
            let replica = replica.clone();
            let cs = go_quiet(&inc);
            tokio::spawn(async move {
                replica
                    .commit_unit(vec![Part::Write(cs)], &|_, _, _| Changeset::default())
                    .await
            })
        };
        if ctx.backend == common::Backend::Postgres {
            // Released once replica 2 is seen waiting for a lock (or after 10 s regardless: the
            // outcome must be the same either way).
            for _ in 0..1000 {
                let waiting = ctx
                    .scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                    .await;
                if waiting > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        release.send(()).unwrap();
        joining.await.unwrap().expect("the join commits");
        let quiet = quiet.await.unwrap();
        assert!(
            matches!(quiet, Err(StoreError::Conflict(_))),
            "the quiet start saw the joined alert: {quiet:?}"
        );
        assert_ne!(
            ctx.store.incident(r).await.unwrap().unwrap().phase,
            spotter_core::domain::Phase::PostRecoveryMonitoring
        );
    }
);

// On SQLite the store's own writes (here: the pages lane's claim) go through the writer too: a
// claim queued behind a held batch is written in the next one, with the units queued beside
// it, and answered after that commit. The batch is written twice (a unit in it fails its
// checks): the claim answers once, with what the committed run leased. On PostgreSQL the claim
// runs on a connection of its own, beside the held batch.
dual_test!(
    multi_thread a_lease_claim_shares_the_batch_and_survives_its_rewrite,
    |ctx| async move {
        let first = ctx.declare(1, "pages to claim").await;
        let r = first.reference;
        let (release, held) = hold_writer(&ctx).await;
        let before = ctx.store.group_commit_stats();
        let store = ctx.store.clone();
        let now = ctx.clock.now();
        let mut claim = tokio::spawn(async move {
            store
                .claim_outbox(now, Duration::seconds(60), "pager-a", 10, spotter_core::store::Lane::Pages)
                .await
        });
        let sqlite = ctx.backend == common::Backend::Sqlite;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        if sqlite {
            while ctx.store.group_commit_stats().waiting < before.waiting + 1 {
                assert!(std::time::Instant::now() < deadline, "the claim never queued");
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        } else {
            let beside = tokio::time::timeout(std::time::Duration::from_secs(30), &mut claim).await;
            let beside = beside.expect("the claim does not wait for the held batch").unwrap();
            assert!(!beside.as_ref().unwrap().is_empty(), "{beside:?}");
        }
        let mut stale = first.clone();
        stale.version = 0;
        let stale = Changeset {
            incident: Some(IncidentWrite::Update(stale)),
            ..note(r, "C: written with a stale version")
        };
        let handles = queue_behind(&ctx, vec![note(r, "B: beside the claim"), stale]).await;
        release.send(()).unwrap();
        held.await.unwrap().expect("the holding declaration commits");
        let got = answers(handles).await;
        assert!(got[0].is_ok(), "{:?}", got[0]);
        assert!(matches!(got[1], Err(StoreError::Conflict(_))), "{:?}", got[1]);
        let after = ctx.store.group_commit_stats();
        if sqlite {
            let claimed = claim.await.unwrap().expect("the claim commits");
            assert_eq!(
                (after.batches - before.batches, after.units - before.units),
                (2, 4),
                "the holding declaration's batch, then the claim with the two queued units"
            );
            assert!(!claimed.is_empty(), "the declaration's tier-1 pages are claimed");
            assert!(claimed.iter().all(|m| m.incident == Some(r)));
        } else {
            assert_eq!(
                (after.batches - before.batches, after.units - before.units),
                (2, 3),
                "the holding declaration's batch, then the two queued units"
            );
        }
        // Leased once, by the committed run: another owner finds nothing to take.
        let again = ctx
            .store
            .claim_outbox(now, Duration::seconds(60), "pager-b", 10, spotter_core::store::Lane::Pages)
            .await
            .unwrap();
        assert!(again.is_empty(), "{again:?}");
        ctx.audit_verifies().await;
    }
);

/// A declaration that also creates alert group `group` and schedules its RTO breach: what a
/// new alert's declaration writes beside the incident, all of it in the batch's shared inserts.
fn declared_with_group(number: IncidentRef, group: &str) -> Changeset {
    use spotter_core::store::{GroupWrite, JobChange, JobPayload, NewJob};
    Changeset {
        alert_groups: vec![GroupWrite {
            source: "test".into(),
            group_key: group.into(),
            incident: number,
            previous: None,
        }],
        jobs: vec![JobChange::Schedule(NewJob {
            key: format!("rto:{number}"),
            incident: Some(number),
            due_at: common::start_time() + Duration::hours(4),
            payload: JobPayload::RtoBreach,
        })],
        ..new_incident(number, group)
    }
}

dual_test!(
    multi_thread declarations_in_shared_inserts_still_fail_alone,
    |ctx| async move {
        let (release, held) = hold_writer(&ctx).await;
        let before = ctx.store.group_commit_stats();
        // The second declaration takes the alert group the first takes in the same batch (two
        // notifications racing to declare one group): the shared insert of the groups refuses
        // the pair, and written again one by one, only the second fails.
        let mut handles = vec![];
        for group in ["g1", "g1", "g2"] {
            let store = ctx.store.clone();
            let want = ctx.store.group_commit_stats().waiting + 1;
            handles.push(tokio::spawn(async move {
                let build = move |_, number, _| declared_with_group(number, group);
                store.commit_unit(vec![Part::Declare], &build).await
            }));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while ctx.store.group_commit_stats().waiting < want {
                assert!(std::time::Instant::now() < deadline, "units never queued");
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
        release.send(()).unwrap();
        let held = held.await.unwrap().expect("the holding declaration commits");
        let got = answers(handles).await;
        let first = got[0].as_ref().expect("the first declaration commits")[0];
        assert!(
            matches!(got[1], Err(StoreError::Conflict(_))),
            "the second taker of g1 conflicts: {:?}",
            got[1]
        );
        // Its number is free again: the third follows the first.
        let third = got[2].as_ref().expect("the third declaration commits")[0];
        assert_eq!(first.number(), held[0].number() + 1);
        assert_eq!(third.number(), first.number() + 1);
        let after = ctx.store.group_commit_stats();
        assert_eq!(
            (after.batches - before.batches, after.units - before.units),
            (2, 4),
            "the holding declaration's batch, then one batch of the three"
        );
        // What the committed declarations wrote is all there, and nothing of the refused one.
        assert_eq!(
            ctx.store.group_incident("test", "g1").await.unwrap(),
            Some(first)
        );
        assert_eq!(
            ctx.store.group_incident("test", "g2").await.unwrap(),
            Some(third)
        );
        let mut jobs: Vec<String> = ctx
            .store
            .pending_jobs()
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.key)
            .collect();
        jobs.sort();
        assert_eq!(jobs, [format!("rto:{first}"), format!("rto:{third}")]);
        let after_third = IncidentRef::new(third.number() + 1);
        assert!(ctx.store.incident(after_third).await.unwrap().is_none());
        ctx.audit_verifies().await;
    }
);
