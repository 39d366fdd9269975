//! Group commit: every write of the engine goes through one writer task, which commits whatever
//! is waiting in one transaction, so one fsync (SQLite `synchronous=FULL`, PostgreSQL's WAL
//! flush) covers many requests.
//!
//! - Each request is a [`Unit`]: its changesets and declarations, all or nothing. A batch is
//!   first written optimistically, every unit in one go and their timeline entries and new
//!   alert rows in shared multi-row inserts. When a unit fails its checks (a version conflict,
//!   a lost lease, a refused duplicate), that attempt is rolled back and the batch is written
//!   again unit by unit, each under its own savepoint: the failing unit is rolled back alone
//!   and its waiter gets that error; the others commit.
//! - A storage fault (the database unreachable, a failed commit, a savepoint that cannot be
//!   rolled back) fails the whole batch: every waiter gets it (503 at the edges) and nothing is
//!   written.
//! - Each waiter is answered only after the transaction holding its unit is committed.
//! - Declarations are numbered inside the batch's transaction: the writer asks the waiting
//!   request to build its changeset for the number (and run id) read there, so the build stays
//!   in the request's task with everything it borrows, and numbers stay sequential without gaps
//!   (a declaration rolled back frees its number for the next). Every declaration of the batch
//!   is asked at once when it starts, numbered on from the first ([`Ahead`]); one asked for
//!   other numbers than it gets in its turn is asked again.
//! - Guards (an alert joining an incident leaves it as read: [`IncidentWrite::Guard`]) are read
//!   for the whole batch in one statement before any unit is written; a unit's own write of
//!   an incident drops it from that read, so a later guard of it is checked again.
//! - The batch reads the next incident number and run id once: its later declarations are
//!   numbered on from the last, until a rollback frees numbers (then they are read again).
//! - The audit chain is appended once per batch, at its end (one multi-row insert): on
//!   PostgreSQL the head row is locked only from there to the commit. Incident numbers and run
//!   ids are serialised by a lock of their own, taken first.
//! - On SQLite the store's own writes (leases and their outcomes: [`super::ops`]) come through
//!   a queue of their own, taken first: a page's claim joins the next batch, not the back of a
//!   storm.
//! - A declaration's new incident, alert group and scheduled jobs join the shared inserts too
//!   (incidents first: the other rows refer to them), when nothing else of its changeset is
//!   written on its own that refers to the incident ([`super::deferred`]): a declaration then
//!   costs the batch no statement of its own.
//! - The writer keeps its connection from batch to batch while work keeps coming, and gives it
//!   back to the pool after a short idle spell. On SQLite it runs on a thread of its own,
//!   beside its connection's thread on one CPU ([`super::writer_thread`]), and carries the
//!   next numbers and the audit head from one committed batch to the next ([`Carry`]).
//! - The queues are bounded: a storm waits for room (backpressure), it does not grow memory.

use super::declare::{takes_own_ids, Ahead, BuildRequest, Carry, NextIds};
use super::deferred::Deferred;
use super::ops::{Op, OpOut};
use super::writer_thread::spawn_on_own_thread;
use super::*;
use crate::audit::AuditRecord;
use crate::store::Unit as UnitParts;
use sqlx::pool::PoolConnection;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Units waiting for the writer before senders wait for room.
const QUEUE: usize = 256;
/// Ops waiting (they come from a few dispatcher lanes and workers, one at a time each).
const OPS_QUEUE: usize = 64;
/// At most this many units per transaction, so one batch's waiters are not held by a long one.
const MAX_BATCH: usize = 128;
/// The writer gives its connection back to the pool after this long without work.
const HOLD: std::time::Duration = std::time::Duration::from_millis(20);

pub(super) struct Unit {
    pub(super) parts: UnitParts,
    /// Or, instead of parts, an op of the store's own.
    op: Option<Op>,
    pub(super) builds: mpsc::UnboundedSender<BuildRequest>,
    done: oneshot::Sender<Outcome>,
}

/// A written unit: the incidents it declared, or what its op returned.
struct Done {
    refs: Vec<IncidentRef>,
    out: Option<OpOut>,
}

type Outcome = Result<Done, StoreError>;

/// The writer's two queues.
#[derive(Clone)]
struct Queues {
    units: mpsc::Sender<Unit>,
    ops: mpsc::Sender<Unit>,
}

/// The handle the store keeps: the queue into the writer task, started on first use (in the
/// runtime of whoever writes first), and started again if it ever stopped (a panic in a
/// write): the units it held are answered "unavailable", the next ones get a new writer.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: std::sync::Mutex<Option<Queues>>,
    counters: Arc<Counters>,
}

/// Transactions the writer ran, and the units they held (the mean batch size is what group
/// commit saves: fsyncs per request). Shared with the writer, which must not hold the queue.
#[derive(Default)]
struct Counters {
    batches: std::sync::atomic::AtomicU64,
    units: std::sync::atomic::AtomicU64,
}

/// What the group-commit writer has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupCommitStats {
    /// Transactions committed or rolled back.
    pub batches: u64,
    /// Units they held.
    pub units: u64,
    /// Units and ops waiting for the writer now.
    pub waiting: usize,
}

impl SqlStore {
    /// The writer's counters (for tests, `/metrics` and benchmarks).
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        use std::sync::atomic::Ordering::Relaxed;
        GroupCommitStats {
            batches: self.group.counters.batches.load(Relaxed),
            units: self.group.counters.units.load(Relaxed),
            waiting: self.group.queue.lock().unwrap().as_ref().map_or(0, |q| {
                q.units.max_capacity() - q.units.capacity() + q.ops.max_capacity()
                    - q.ops.capacity()
            }),
        }
    }

    /// Writes `parts` in one transaction, grouped with whatever else is waiting. Declaration
    /// `k` of the unit is built by `build(k, number, run_id)` when the writer has its number.
    /// Returns the declared incidents' references, in order.
    pub(super) async fn commit_unit(
        &self,
        parts: UnitParts,
        build: &(dyn Fn(usize, IncidentRef, i64) -> Changeset + Send + Sync),
    ) -> Result<Vec<IncidentRef>, StoreError> {
        if parts.is_empty() {
            return Ok(vec![]);
        }
        let (builds, mut build_rx) = mpsc::unbounded_channel();
        let (done, mut done_rx) = oneshot::channel();
        self.queues()
            .units
            .send(Unit {
                parts,
                op: None,
                builds,
                done,
            })
            .await
            .map_err(|_| stopped())?;
        loop {
            tokio::select! {
                biased;
                Some(req) = build_rx.recv() => {
                    let cs = build(req.index, req.number, req.run_id);
                    let _ = req.reply.send(cs);
                }
                res = &mut done_rx => {
                    return res.unwrap_or_else(|_| Err(stopped())).map(|d| d.refs);
                }
            }
        }
    }

    /// Runs `op` in the writer's next transaction (see [`super::ops`]).
    pub(super) async fn commit_op(&self, op: Op) -> Result<OpOut, StoreError> {
        // An op declares nothing: nobody is asked to build.
        let (builds, _) = mpsc::unbounded_channel();
        let (done, done_rx) = oneshot::channel();
        self.queues()
            .ops
            .send(Unit {
                parts: vec![],
                op: Some(op),
                builds,
                done,
            })
            .await
            .map_err(|_| stopped())?;
        let done = done_rx.await.unwrap_or_else(|_| Err(stopped()))?;
        done.out
            .ok_or_else(|| StoreError::Other(anyhow!("an op was written without its result")))
    }

    /// The writer's queues, starting the writer if none runs.
    fn queues(&self) -> Queues {
        let mut slot = self.group.queue.lock().unwrap();
        match slot.as_ref() {
            Some(q) if !q.units.is_closed() && !q.ops.is_closed() => q.clone(),
            _ => {
                let (units, units_rx) = mpsc::channel(QUEUE);
                let (ops, ops_rx) = mpsc::channel(OPS_QUEUE);
                let counters = self.group.counters.clone();
                let writer = self
                    .clone_for_writer()
                    .run_writer(units_rx, ops_rx, counters);
                match self.backend {
                    Backend::Sqlite => spawn_on_own_thread(writer),
                    Backend::Postgres => {
                        tokio::spawn(writer);
                    }
                }
                let q = Queues { units, ops };
                *slot = Some(q.clone());
                q
            }
        }
    }

    /// The writer's own handle: the pools and key, but not the queue, so the task ends when
    /// the last store handle (and with it the queue's sender) is dropped.
    fn clone_for_writer(&self) -> SqlStore {
        SqlStore {
            backend: self.backend,
            writer: self.writer.clone(),
            reader: self.reader.clone(),
            audit_key: self.audit_key.clone(),
            group: std::sync::Arc::default(),
        }
    }

    async fn run_writer(
        self,
        mut units: mpsc::Receiver<Unit>,
        mut ops: mpsc::Receiver<Unit>,
        counters: Arc<Counters>,
    ) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        // The writer keeps its connection from one batch to the next while work keeps coming:
        // taking it from the pool and giving it back each time cost two round trips to the
        // connection (sqlx pings it on the way back, in a task of its own) and two task wakes,
        // about a tenth of a batch in a storm of declarations. Idle for `HOLD`, it gives the
        // connection back, so whatever else uses the pool (migrations, closing) gets it.
        let mut held: Option<PoolConnection<sqlx::Any>> = None;
        let mut carry = Carry::default();
        if self.backend == Backend::Sqlite {
            self.reopen_writer_connection_here().await;
        }
        loop {
            tokio::select! {
                biased;
                Some(op) = ops.recv() => batch.push(op),
                Some(unit) = units.recv() => batch.push(unit),
                _ = tokio::time::sleep(HOLD), if held.is_some() => {
                    held = None;
                    continue;
                }
                // Both queues closed: the last store handle is gone.
                else => break,
            }
            // Whatever else waits joins the batch, ops first.
            while batch.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            while batch.len() < MAX_BATCH {
                match units.try_recv() {
                    Ok(unit) => batch.push(unit),
                    Err(_) => break,
                }
            }
            let units = std::mem::take(&mut batch);
            self.commit_batch(&mut held, units, &mut carry, &counters)
                .await;
        }
    }

    async fn commit_batch(
        &self,
        held: &mut Option<PoolConnection<sqlx::Any>>,
        units: Vec<Unit>,
        carry: &mut Carry,
        counters: &Counters,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut outcomes: Vec<Option<Outcome>> = (0..units.len()).map(|_| None).collect();
        let result = match held {
            Some(conn) => self.write_batch(conn, &units, &mut outcomes, carry).await,
            None => match self.writer.acquire().await {
                Ok(conn) => {
                    self.write_batch(held.insert(conn), &units, &mut outcomes, carry)
                        .await
                }
                Err(e) => Err(map_err(e)),
            },
        };
        if result.is_err() {
            // A fault of the batch as a whole may be the connection's: the pool checks it on
            // its way back and the next batch takes a sound one.
            *held = None;
        }
        // Counted before anyone is answered, so whoever reads the counters after its answer
        // (tests, `/metrics`) sees its own batch.
        counters.units.fetch_add(units.len() as u64, Relaxed);
        counters.batches.fetch_add(1, Relaxed);
        for (unit, outcome) in units.into_iter().zip(outcomes) {
            let answer = match (&result, outcome) {
                (Ok(()), Some(outcome)) => outcome,
                (Ok(()), None) => Err(StoreError::Other(anyhow!("unit was not written"))),
                // The whole batch was rolled back: nobody's unit is written, whatever it did.
                (Err(e), _) => Err(StoreError::Unavailable(anyhow!("{e:#}"))),
            };
            let _ = unit.done.send(answer);
        }
    }

    /// Writes every unit; `Err` when the batch as a whole failed (nothing was written).
    ///
    /// First optimistically, all units in one go with their rows in shared inserts; only when
    /// a unit fails its checks is the batch rolled back and written again unit by unit, each
    /// under a savepoint, so that unit fails alone. Failures are rare; savepoints cost two
    /// statements per unit and the shared inserts save one per table per unit. A lone unit
    /// takes the same way (so every batch uses SQLite's carried keys): one that fails its
    /// checks is written twice.
    async fn write_batch(
        &self,
        conn: &mut AnyConnection,
        units: &[Unit],
        outcomes: &mut [Option<Outcome>],
        carry: &mut Carry,
    ) -> Result<(), StoreError> {
        // The merged attempt took what was carried: after any other end the next batch reads
        // the keys again.
        if self.write_merged(conn, units, outcomes, carry).await? {
            return Ok(());
        }
        self.write_isolated(conn, units, outcomes).await
    }

    /// A write transaction on the writer's connection (SQLite: `BEGIN IMMEDIATE`, taking the
    /// database's write lock at once rather than at the first write).
    async fn begin_on<'c>(
        &self,
        conn: &'c mut AnyConnection,
    ) -> Result<sqlx::Transaction<'c, sqlx::Any>, StoreError> {
        sqlx::Connection::begin_with(conn, self.begin_statement())
            .await
            .map_err(map_err)
    }

    /// All units at once; `Ok(false)` (nothing written) when one of them failed its checks.
    async fn write_merged(
        &self,
        conn: &mut AnyConnection,
        units: &[Unit],
        outcomes: &mut [Option<Outcome>],
        carry: &mut Carry,
    ) -> Result<bool, StoreError> {
        // Taken: only a commit puts them back.
        let (carried_ids, carried_head) = match self.backend {
            Backend::Sqlite => (carry.ids.take(), carry.audit_head.take()),
            Backend::Postgres => (None, None),
        };
        let mut tx = self.begin_on(conn).await?;
        if Self::takes_ids(units) {
            self.lock_ids(&mut tx).await?;
        }
        let mut ids: NextIds = carried_ids;
        let mut ahead = Ahead::guessing(carry.runs_each);
        if units
            .iter()
            .any(|u| u.parts.iter().any(|p| matches!(p, Part::Declare)))
        {
            let next = match ids {
                Some(next) => next,
                None => self.next_ids(&mut tx).await?,
            };
            ids = Some(next);
            ahead.ask(units, next);
        }
        let mut deferred = Deferred::default();
        let mut guarded: Vec<i64> = units
            .iter()
            .flat_map(|u| &u.parts)
            .filter_map(|p| match p {
                Part::Write(Changeset {
                    incident: Some(IncidentWrite::Guard(i)),
                    ..
                }) => Some(i.reference.number()),
                _ => None,
            })
            .collect();
        guarded.sort_unstable();
        guarded.dedup();
        if !guarded.is_empty() {
            deferred
                .read_guards(&mut tx, self.backend, &guarded)
                .await?;
        }
        let mut audit: Vec<AuditRecord> = vec![];
        let mut refs = Vec::with_capacity(units.len());
        for (u, unit) in units.iter().enumerate() {
            let ahead = Some((&mut ahead, u));
            match self
                .write_unit(
                    &mut tx,
                    unit,
                    &mut audit,
                    Some(&mut deferred),
                    &mut ids,
                    ahead,
                )
                .await
            {
                Ok(r) => refs.push(r),
                Err(e @ StoreError::Unavailable(_)) => return Err(e),
                Err(_) => {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
            }
        }
        match deferred.insert(&mut tx).await {
            Ok(()) => {}
            Err(e @ StoreError::Unavailable(_)) => return Err(e),
            Err(_) => {
                tx.rollback().await.map_err(map_err)?;
                return Ok(false);
            }
        }
        let head = match (audit.is_empty(), carried_head) {
            (true, head) => head,
            (false, carried) => {
                let head = match carried {
                    Some(head) => head,
                    None => self.lock_audit_head(&mut tx).await?,
                };
                // A carried head another process moved meanwhile fails on the log's primary
                // key: the batch is written again, unit by unit, from the head read.
                match self.append_audit(&mut tx, &audit, head).await {
                    Ok(head) => Some(head),
                    Err(e @ StoreError::Unavailable(_)) => return Err(e),
                    Err(_) => {
                        tx.rollback().await.map_err(map_err)?;
                        return Ok(false);
                    }
                }
            }
        };
        tx.commit().await.map_err(map_err)?;
        carry.runs_each = ahead.runs_each;
        if self.backend == Backend::Sqlite {
            (carry.ids, carry.audit_head) = (ids, head);
        }
        for (outcome, r) in outcomes.iter_mut().zip(refs) {
            *outcome = Some(Ok(r));
        }
        Ok(true)
    }

    /// Unit by unit, each under a savepoint: a unit that fails is rolled back alone.
    async fn write_isolated(
        &self,
        conn: &mut AnyConnection,
        units: &[Unit],
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_on(conn).await?;
        if Self::takes_ids(units) {
            self.lock_ids(&mut tx).await?;
        }
        let single = units.len() == 1;
        let mut audit: Vec<AuditRecord> = vec![];
        let mut ids: NextIds = None;
        for (unit, outcome) in units.iter().zip(outcomes.iter_mut()) {
            if !single {
                exec(&mut tx, "SAVEPOINT unit").await?;
            }
            let mut unit_audit = vec![];
            match self
                .write_unit(&mut tx, unit, &mut unit_audit, None, &mut ids, None)
                .await
            {
                Ok(refs) => {
                    if !single {
                        exec(&mut tx, "RELEASE SAVEPOINT unit").await?;
                    }
                    audit.extend(unit_audit);
                    *outcome = Some(Ok(refs));
                }
                // A storage fault: the batch fails as a whole.
                Err(e @ StoreError::Unavailable(_)) => return Err(e),
                // The unit's own failure: it alone is rolled back.
                Err(e) if !single => {
                    // Its numbers are free again.
                    ids = None;
                    exec(&mut tx, "ROLLBACK TO SAVEPOINT unit").await?;
                    exec(&mut tx, "RELEASE SAVEPOINT unit").await?;
                    *outcome = Some(Err(e));
                }
                Err(e) => {
                    tx.rollback().await.map_err(map_err)?;
                    *outcome = Some(Err(e));
                    return Ok(());
                }
            }
        }
        if !audit.is_empty() {
            let head = self.lock_audit_head(&mut tx).await?;
            self.append_audit(&mut tx, &audit, head).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn write_unit(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        unit: &Unit,
        audit: &mut Vec<AuditRecord>,
        mut deferred: Option<&mut Deferred>,
        ids: &mut NextIds,
        mut ahead: Option<(&mut Ahead, usize)>,
    ) -> Outcome {
        if let Some(op) = &unit.op {
            let out = op(tx).await?;
            return Ok(Done {
                refs: vec![],
                out: Some(out),
            });
        }
        let mut refs = vec![];
        let mut declared = 0;
        for part in &unit.parts {
            let cs = match part {
                Part::Write(cs) => {
                    // Numbers or run ids taken outside a declaration: read them again.
                    if takes_own_ids(cs) {
                        *ids = None;
                    }
                    self.write(tx, cs, deferred.as_deref_mut()).await?;
                    audit.extend(cs.audit.iter().cloned());
                    continue;
                }
                Part::Declare => {
                    let cs = self
                        .declaration(tx, unit, declared, ids, ahead.as_mut())
                        .await?;
                    declared += 1;
                    refs.push(cs.0);
                    cs.1
                }
            };
            self.write(tx, &cs, deferred.as_deref_mut()).await?;
            audit.extend(cs.audit);
        }
        Ok(Done { refs, out: None })
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable(anyhow!("the store's writer has stopped"))
}

async fn exec(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sql: &'static str,
) -> Result<(), StoreError> {
    // A savepoint statement that fails means the connection is in trouble: a storage fault.
    sqlx::query(sql)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(|e| match map_err(e) {
            StoreError::Unavailable(e) | StoreError::Other(e) => StoreError::Unavailable(e),
            other => StoreError::Unavailable(anyhow!("{other}")),
        })
}
