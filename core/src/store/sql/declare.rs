//! Numbering a batch's declarations (see [`super::group`]): the next incident number and run
//! id, read in the batch's transaction or carried from the last one, and each declaration's
//! changeset, asked for ahead or in its turn.

use super::group::Unit;
use super::*;
use tokio::sync::oneshot;

/// The next free incident number and run id, once the batch has read them: later
/// declarations of the batch are numbered on from there without another read.
pub(super) type NextIds = Option<(IncidentRef, i64)>;

/// What the writer carries from one committed batch to the next.
///
/// On SQLite the writer is the database's only writer in this process, so after a commit it
/// knows the next incident number and run id and the audit chain's head, and the next batch
/// need not read them (two statements, each a round trip to the connection's thread). Another
/// process writing the same file (the CLI) takes those keys first: the batch's insert then
/// fails on the primary key, and the batch is written again unit by unit, which reads them.
/// Anything but a committed optimistic batch clears them. PostgreSQL replicas share the
/// database: there they are always read.
#[derive(Default)]
pub(super) struct Carry {
    pub(super) ids: NextIds,
    pub(super) audit_head: Option<(i64, String)>,
    /// Runs started by the last declaration written (see [`Ahead`]).
    pub(super) runs_each: i64,
}

/// The writer asks the waiting request to build declaration `index` of its unit as `number`,
/// with `run_id` the next free run id.
pub(super) struct BuildRequest {
    pub(super) index: usize,
    pub(super) number: IncidentRef,
    pub(super) run_id: i64,
    pub(super) reply: oneshot::Sender<Changeset>,
}

/// Declarations asked for ahead, when a batch starts: declaration `k` of unit `u` was asked as
/// `number` with `run_id`. The writer takes a changeset built ahead only if it is what the
/// declaration would be asked as in its turn (the same number, and the same run id unless it
/// starts no run); otherwise it asks again. Asking every declaration at once lets the requests
/// build side by side, while the writer runs the batch's ops, instead of one after another
/// with two task wakes each on the writer's path.
#[derive(Default)]
pub(super) struct Ahead {
    asked:
        std::collections::HashMap<(usize, usize), (IncidentRef, i64, oneshot::Receiver<Changeset>)>,
    /// Runs started per declaration by the last one written: run ids are asked ahead on that
    /// guess (none, unless declarations start runbooks).
    pub(super) runs_each: i64,
}

impl Ahead {
    /// Run ids guessed at `runs_each` a declaration.
    pub(super) fn guessing(runs_each: i64) -> Ahead {
        Ahead {
            runs_each,
            ..Ahead::default()
        }
    }

    /// Asks every declaration of the batch up to the first changeset that takes numbers or
    /// run ids of its own (after it the numbers are read again), numbered on from `next`.
    pub(super) fn ask(&mut self, units: &[Unit], next: (IncidentRef, i64)) {
        let (mut number, mut run_id) = next;
        for (u, unit) in units.iter().enumerate() {
            let mut k = 0;
            for part in &unit.parts {
                match part {
                    Part::Write(cs) if takes_own_ids(cs) => return,
                    Part::Write(_) => {}
                    Part::Declare => {
                        let (reply, rx) = oneshot::channel();
                        let req = BuildRequest {
                            index: k,
                            number,
                            run_id,
                            reply,
                        };
                        if unit.builds.send(req).is_ok() {
                            self.asked.insert((u, k), (number, run_id, rx));
                        }
                        k += 1;
                        number = IncidentRef::new(number.number() + 1);
                        run_id += self.runs_each;
                    }
                }
            }
        }
    }

    /// Declaration `k` of unit `u` as built ahead, if it was asked as `number` and `run_id`
    /// or starts no run.
    async fn take(
        &mut self,
        u: usize,
        k: usize,
        number: IncidentRef,
        run_id: i64,
    ) -> Option<Changeset> {
        let (n, r, rx) = self.asked.remove(&(u, k))?;
        if n != number {
            return None;
        }
        let cs = rx.await.ok()?;
        (r == run_id || runs_started(&cs) == 0).then_some(cs)
    }
}

fn runs_started(cs: &Changeset) -> i64 {
    cs.runs
        .iter()
        .filter(|w| matches!(w, crate::store::RunWrite::Insert(_)))
        .count() as i64
}

/// A changeset that inserts an incident or runs outside a declaration: the batch's next
/// numbers are read again after it.
pub(super) fn takes_own_ids(cs: &Changeset) -> bool {
    matches!(cs.incident, Some(IncidentWrite::Insert(_))) || !cs.runs.is_empty()
}

impl SqlStore {
    /// Declaration `k` of `unit`: its number and changeset, taken as built ahead or asked for
    /// now, and the batch's next numbers moved on past it.
    pub(super) async fn declaration(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        unit: &Unit,
        declared: usize,
        ids: &mut NextIds,
        mut ahead: Option<&mut (&mut Ahead, usize)>,
    ) -> Result<(IncidentRef, Changeset), StoreError> {
        let (number, run_id) = match *ids {
            Some(next) => next,
            None => self.next_ids(tx).await?,
        };
        let built = match ahead.as_mut() {
            Some((a, u)) => a.take(*u, declared, number, run_id).await,
            None => None,
        };
        let cs = match built {
            Some(cs) => Some(cs),
            None => {
                let (reply, rx) = oneshot::channel();
                let asked = unit.builds.send(BuildRequest {
                    index: declared,
                    number,
                    run_id,
                    reply,
                });
                // A request that went away (its sender timed out) is not written.
                match asked {
                    Ok(()) => rx.await.ok(),
                    Err(_) => None,
                }
            }
        };
        let cs = cs.ok_or_else(|| StoreError::Other(anyhow!("the declaring request went away")))?;
        if !matches!(&cs.incident, Some(IncidentWrite::Insert(i)) if i.reference == number) {
            return Err(StoreError::Other(anyhow!(
                "a declaration's changeset must insert {number}"
            )));
        }
        if let Some((a, _)) = ahead {
            a.runs_each = runs_started(&cs);
        }
        // The next declaration of the batch follows this one without a read.
        let runs = cs.runs.iter().filter_map(|w| match w {
            crate::store::RunWrite::Insert(run) => Some(run.id + 1),
            _ => None,
        });
        *ids = Some((
            IncidentRef::new(number.number() + 1),
            runs.fold(run_id, i64::max),
        ));
        Ok((number, cs))
    }

    pub(super) fn takes_ids(units: &[Unit]) -> bool {
        units.iter().any(|u| {
            u.parts.iter().any(|p| match p {
                Part::Declare => true,
                Part::Write(cs) => !cs.runs.is_empty(),
            })
        })
    }

    /// Serialises the writers that take incident numbers and run ids, across replicas: on
    /// PostgreSQL a transaction-scoped advisory lock, taken before any row, so the audit head
    /// is locked only at the end; on SQLite `BEGIN IMMEDIATE` already made this the only
    /// writer.
    pub(super) async fn lock_ids(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7215001)")
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// The next incident number and run id, read inside the batch's transaction (which holds
    /// the ids lock).
    pub(super) async fn next_ids(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(IncidentRef, i64), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT MAX(number) FROM incidents), (SELECT MAX(id) FROM runbook_runs)",
        )
        .fetch_one(&mut **tx)
        .await
        .map_err(map_err)?;
        let number: Option<i64> = row.try_get(0).map_err(map_err)?;
        let run: Option<i64> = row.try_get(1).map_err(map_err)?;
        Ok((
            IncidentRef::new(number.unwrap_or(0) + 1),
            run.unwrap_or(0) + 1,
        ))
    }
}
