//! Runbook runs: requests with their lock, decisions, steps, streamed output, and the lease of
//! the worker executing a run.

use super::ops::binds;
use super::rows::*;
use super::*;
use crate::domain::{Decision, Run, RunApproval, RunState, RunStep, StepState};

/// Writes the run parts of a changeset inside its transaction.
pub(super) async fn write(tx: &mut sqlx::AnyConnection, cs: &Changeset) -> Result<(), StoreError> {
    for w in &cs.runs {
        match w {
            RunWrite::Insert(r) => {
                sqlx::query(
                    "INSERT INTO runbook_runs (id, runbook, incident, level, lock_key, state, params, requested_by, \
                     requested_at, gate, needed, role, expires_at, owner, lease_until, cancel_requested, started_at, \
                     finished_at, outcome, version) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,1)",
                )
                .bind(r.id)
                .bind(&r.runbook)
                .bind(r.incident.map(|i| i.number()))
                .bind(r.level.map(|l| l.0 as i64))
                .bind(&r.lock_key)
                .bind(r.state.as_str())
                .bind(serde_json::to_string(&r.params).expect("params serialise"))
                .bind(&r.requested_by)
                .bind(ms(r.requested_at))
                .bind(r.gate as i64)
                .bind(r.needed as i64)
                .bind(r.role.as_str())
                .bind(r.expires_at.map(ms))
                .bind(r.owner.clone())
                .bind(r.lease_until.map(ms))
                .bind(r.cancel_requested as i64)
                .bind(r.started_at.map(ms))
                .bind(r.finished_at.map(ms))
                .bind(r.outcome.clone())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            RunWrite::Update(r) => {
                let res = sqlx::query(
                    "UPDATE runbook_runs SET state = $2, gate = $3, needed = $4, role = $5, expires_at = $6, \
                     owner = $7, lease_until = $8, cancel_requested = $9, started_at = $10, finished_at = $11, \
                     outcome = $12, version = version + 1 WHERE id = $1 AND version = $13",
                )
                .bind(r.id)
                .bind(r.state.as_str())
                .bind(r.gate as i64)
                .bind(r.needed as i64)
                .bind(r.role.as_str())
                .bind(r.expires_at.map(ms))
                .bind(r.owner.clone())
                .bind(r.lease_until.map(ms))
                .bind(r.cancel_requested as i64)
                .bind(r.started_at.map(ms))
                .bind(r.finished_at.map(ms))
                .bind(r.outcome.clone())
                .bind(r.version)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if res.rows_affected() != 1 {
                    return Err(StoreError::Conflict(format!(
                        "run #{} changed since it was read",
                        r.id
                    )));
                }
            }
            RunWrite::Decide(a) => {
                sqlx::query(
                    "INSERT INTO run_approvals (run, gate, person, decision, at) VALUES ($1,$2,$3,$4,$5)",
                )
                .bind(a.run)
                .bind(a.gate as i64)
                .bind(&a.person)
                .bind(a.decision.as_str())
                .bind(ms(a.at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            RunWrite::StepStart(s) => {
                sqlx::query(
                    "INSERT INTO run_steps (run, idx, step_id, state, started_at, finished_at, detail, output) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                )
                .bind(s.run)
                .bind(s.index as i64)
                .bind(&s.step_id)
                .bind(s.state.as_str())
                .bind(ms(s.started_at))
                .bind(s.finished_at.map(ms))
                .bind(&s.detail)
                .bind(&s.output)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            RunWrite::StepEnd {
                run,
                index,
                state,
                at,
                detail,
            } => {
                sqlx::query(
                    "UPDATE run_steps SET state = $3, finished_at = $4, detail = $5 WHERE run = $1 AND idx = $2",
                )
                .bind(*run)
                .bind(*index as i64)
                .bind(state.as_str())
                .bind(ms(*at))
                .bind(detail)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
        }
    }
    Ok(())
}

const RUN_COLUMNS: &str = "id, runbook, incident, level, lock_key, state, params, requested_by, requested_at, gate, \
     needed, role, expires_at, owner, lease_until, cancel_requested, started_at, finished_at, outcome, version";

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    runbook: String,
    incident: Option<i64>,
    level: Option<i64>,
    lock_key: String,
    state: String,
    params: String,
    requested_by: String,
    requested_at: i64,
    gate: i64,
    needed: i64,
    role: String,
    expires_at: Option<i64>,
    owner: Option<String>,
    lease_until: Option<i64>,
    cancel_requested: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    outcome: Option<String>,
    version: i64,
}

impl RunRow {
    fn into_run(self) -> Result<Run, StoreError> {
        Ok(Run {
            id: self.id,
            runbook: self.runbook,
            incident: self.incident.map(IncidentRef::new),
            level: self
                .level
                .map(|l| {
                    u8::try_from(l)
                        .map(LevelId)
                        .map_err(|e| corrupt("run level", e))
                })
                .transpose()?,
            lock_key: self.lock_key,
            state: RunState::parse(&self.state).ok_or_else(|| corrupt("run state", &self.state))?,
            params: serde_json::from_str(&self.params).map_err(|e| corrupt("run params", e))?,
            requested_by: self.requested_by,
            requested_at: from_ms(self.requested_at)?,
            gate: self.gate as usize,
            needed: self.needed as u32,
            role: self.role.parse().map_err(|e| corrupt("run role", e))?,
            expires_at: self.expires_at.map(from_ms).transpose()?,
            approvals: vec![],
            steps: vec![],
            owner: self.owner,
            lease_until: self.lease_until.map(from_ms).transpose()?,
            cancel_requested: self.cancel_requested != 0,
            started_at: self.started_at.map(from_ms).transpose()?,
            finished_at: self.finished_at.map(from_ms).transpose()?,
            outcome: self.outcome,
            version: self.version,
        })
    }
}

type ApprovalRow = (i64, i64, String, String, i64);
type StepRow = (i64, i64, String, String, i64, Option<i64>, String, String);

impl SqlStore {
    /// Fills in approvals and steps (with output only when `output`).
    async fn complete_runs(&self, runs: &mut [Run], output: bool) -> Result<(), StoreError> {
        for r in runs.iter_mut() {
            let approvals: Vec<ApprovalRow> = sqlx::query_as(
                "SELECT run, gate, person, decision, at FROM run_approvals WHERE run = $1 ORDER BY at, gate, person",
            )
            .bind(r.id)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
            r.approvals = approvals
                .into_iter()
                .map(|a| {
                    Ok(RunApproval {
                        run: a.0,
                        gate: a.1 as usize,
                        person: a.2,
                        decision: Decision::parse(&a.3).ok_or_else(|| corrupt("decision", &a.3))?,
                        at: from_ms(a.4)?,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            let sql = if output {
                "SELECT run, idx, step_id, state, started_at, finished_at, detail, output FROM run_steps WHERE run = $1 ORDER BY idx"
            } else {
                "SELECT run, idx, step_id, state, started_at, finished_at, detail, '' FROM run_steps WHERE run = $1 ORDER BY idx"
            };
            let steps: Vec<StepRow> = sqlx::query_as(sql)
                .bind(r.id)
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
            r.steps = steps
                .into_iter()
                .map(|s| {
                    Ok(RunStep {
                        run: s.0,
                        index: s.1 as usize,
                        step_id: s.2,
                        state: StepState::parse(&s.3).ok_or_else(|| corrupt("step state", &s.3))?,
                        started_at: from_ms(s.4)?,
                        finished_at: s.5.map(from_ms).transpose()?,
                        detail: s.6,
                        output: s.7,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
        }
        Ok(())
    }

    pub(super) async fn run_sql_with(
        &self,
        id: i64,
        output: bool,
    ) -> Result<Option<Run>, StoreError> {
        let row: Option<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runbook_runs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let mut runs = [row.into_run()?];
        self.complete_runs(&mut runs, output).await?;
        let [run] = runs;
        Ok(Some(run))
    }

    pub(super) async fn runs_sql(&self, f: RunFilter) -> Result<Vec<Run>, StoreError> {
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runbook_runs WHERE 1 = 1");
        if f.active {
            sql.push_str(" AND state IN ('pending_approval', 'approved', 'running')");
        }
        if f.incident.is_some() {
            sql.push_str(" AND incident = $2");
        }
        sql.push_str(" ORDER BY id DESC LIMIT $1");
        let q =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(if f.limit > 0 { f.limit } else { 100 });
        let q = match f.incident {
            Some(i) => q.bind(i.number()),
            None => q,
        };
        let rows: Vec<RunRow> = q.fetch_all(&self.reader).await.map_err(map_err)?;
        let mut runs = rows
            .into_iter()
            .map(RunRow::into_run)
            .collect::<Result<Vec<_>, _>>()?;
        self.complete_runs(&mut runs, false).await?;
        Ok(runs)
    }

    pub(super) async fn next_run_id_sql(&self) -> Result<i64, StoreError> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM runbook_runs")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(max.unwrap_or(0) + 1)
    }

    /// Leases the oldest approved run that no live worker holds.
    pub(super) async fn claim_run_sql(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        owner: &str,
    ) -> Result<Option<Run>, StoreError> {
        let sql = format!(
            "UPDATE runbook_runs SET owner = $1, lease_until = $2 WHERE id = (\
             SELECT id FROM runbook_runs WHERE state = 'approved' AND (lease_until IS NULL OR lease_until < $3) \
             ORDER BY id LIMIT $4 {}) RETURNING {RUN_COLUMNS}",
            self.skip_locked()
        );
        let rows: Vec<RunRow> = self.lease_rows(sql, owner, now, lease, 1).await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mut runs = [row.into_run()?];
        self.complete_runs(&mut runs, false).await?;
        let [run] = runs;
        Ok(Some(run))
    }

    pub(super) async fn renew_run_lease_sql(
        &self,
        id: i64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .write_statement(
                "UPDATE runbook_runs SET lease_until = $3 WHERE id = $1 AND owner = $2 AND lease_until >= $4 \
                 AND state IN ('approved', 'running')",
                binds![id, owner, ms(until), ms(now)],
            )
            .await?;
        Ok(n == 1)
    }

    pub(super) async fn append_run_output_sql(
        &self,
        id: i64,
        index: usize,
        owner: &str,
        text: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .write_statement(
                "UPDATE run_steps SET output = output || $3 WHERE run = $1 AND idx = $2 AND state = 'running' \
                 AND EXISTS (SELECT 1 FROM runbook_runs WHERE id = $1 AND owner = $4 AND state = 'running')",
                binds![id, index as i64, text, owner],
            )
            .await?;
        Ok(n == 1)
    }

    /// Running runs whose worker's lease lapsed: their worker died mid-step.
    pub(super) async fn stale_runs_sql(&self, now: DateTime<Utc>) -> Result<Vec<Run>, StoreError> {
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runbook_runs WHERE state = 'running' AND (lease_until IS NULL OR lease_until < $1) ORDER BY id"
        )))
        .bind(ms(now))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        let mut runs = rows
            .into_iter()
            .map(RunRow::into_run)
            .collect::<Result<Vec<_>, _>>()?;
        self.complete_runs(&mut runs, false).await?;
        Ok(runs)
    }
}
